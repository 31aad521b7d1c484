// SPDX-License-Identifier: MIT
// delay: "<dev> <off> <delay_ms> [<wdev> <woff> <wdelay_ms> [<fdev> <foff> <fdelay_ms>]]"
// holds each request for a fixed time before passing it on, as dm-delay does.
// Three classes of I/O, each with its own device, offset and delay: reads,
// writes (WRITE, DISCARD, WRITE_ZEROES) and flushes. With 3 arguments every
// class uses the first triple; with 6, flushes use the write triple.
#include <array>
#include <atomic>
#include <cstdint>
#include <iterator>
#include <limits>
#include <memory>
#include <string>

#include "targets/target_args.hpp"
#include "targets/targets.hpp"
#include "ubdm/error.hpp"

namespace ubdm {
namespace {

enum DelayClassIndex : std::uint8_t { kReadClass = 0, kWriteClass = 1, kFlushClass = 2, kNumClasses = 3 };

struct DelayClass {
  BlockDevicePtr dev;
  sector_t offset = 0;
  unsigned delay_ms = 0;
  // Clones of this class held right now. Queue threads change it, status reads it.
  std::atomic<std::uint64_t> held{0};
};

// Per-clone memory: the class whose counter the held clone is in.
struct DelayIo {
  std::uint8_t cls;
};

class DelayTarget final : public Target {
 public:
  DelayTarget(DeviceContext& device, std::size_t argc) : device_(device), argc_(argc) {}

  MapResult map(Clone& clone) override {
    const std::uint8_t cls = class_of(clone.op());
    DelayClass& c = classes_[cls];
    if (clone.op() == Op::kFlush) {
      clone.remap(*c.dev, 0);
    } else {
      clone.remap(*c.dev, c.offset + clone.target_offset());
    }
    // dm-delay stops delaying once presuspend has run (it flushes what it
    // holds then), so a suspend is not held up by new or requeued I/O.
    if (c.delay_ms == 0 || device_.suspending()) {
      return MapResult::kRemapped;
    }
    c.held.fetch_add(1, std::memory_order_relaxed);
    clone.per_io<DelayIo>().cls = cls;
    clone.start_timer(c.delay_ms);
    return MapResult::kSubmitted;
  }

  // The delay elapsed, or the device began to suspend: send the I/O on.
  void timer_fired(Clone& clone) override {
    classes_[clone.per_io<DelayIo>().cls].held.fetch_sub(1, std::memory_order_relaxed);
    clone.issue();
  }

  std::string status(StatusType type) const override {
    if (type == StatusType::kInfo) {
      return fmt::format("{} {} {}", classes_[kReadClass].held.load(std::memory_order_relaxed),
                         classes_[kWriteClass].held.load(std::memory_order_relaxed),
                         classes_[kFlushClass].held.load(std::memory_order_relaxed));
    }
    // Echo the triples that were given, no more.
    fmt::memory_buffer out;
    const std::size_t given = argc_ / 3;
    for (std::size_t i = 0; i < given; ++i) {
      const DelayClass& c = classes_[i];
      fmt::format_to(std::back_inserter(out), "{}{} {} {}", i == 0 ? "" : " ", c.dev->display_name(),
                     c.offset, c.delay_ms);
    }
    return fmt::to_string(out);
  }

  void iterate_devices(const DeviceVisitor& visit) const override {
    const std::size_t given = argc_ / 3;
    for (std::size_t i = 0; i < given; ++i) {
      bool seen = false;
      for (std::size_t j = 0; j < i; ++j) {
        seen = seen || (classes_[j].dev == classes_[i].dev && classes_[j].offset == classes_[i].offset);
      }
      if (!seen) {
        visit(*classes_[i].dev, classes_[i].offset, len());
      }
    }
  }

  // Constructor helpers (control plane).
  void set_class(std::size_t i, BlockDevicePtr dev, sector_t offset, unsigned delay_ms) {
    classes_[i].dev = std::move(dev);
    classes_[i].offset = offset;
    classes_[i].delay_ms = delay_ms;
  }
  void copy_class(std::size_t to, std::size_t from) {
    set_class(to, classes_[from].dev, classes_[from].offset, classes_[from].delay_ms);
  }

 private:
  static std::uint8_t class_of(Op op) {
    switch (op) {
      case Op::kRead:
        return kReadClass;
      case Op::kFlush:
        return kFlushClass;
      case Op::kWrite:
      case Op::kDiscard:
      case Op::kWriteZeroes:
        break;
    }
    return kWriteClass;
  }

  DeviceContext& device_;
  std::size_t argc_;  // 3, 6 or 9: how many triples the table gave
  std::array<DelayClass, kNumClasses> classes_;
};

}  // namespace

std::unique_ptr<Target> create_delay_target(TargetEnv& env, std::span<const std::string> args) {
  ArgReader in("delay", args);
  in.expect_count_in({3, 6, 9},
                     "3, 6 or 9: <dev> <offset> <delay_ms> [<write_dev> <write_offset> "
                     "<write_delay_ms> [<flush_dev> <flush_offset> <flush_delay_ms>]]");
  auto target = std::make_unique<DelayTarget>(env.device, args.size());
  static constexpr std::array<std::string_view, kNumClasses> kNames{"read", "write", "flush"};
  const std::size_t given = args.size() / 3;
  for (std::size_t i = 0; i < given; ++i) {
    const std::string& path = in.next(fmt::format("{} device", kNames[i]));
    const sector_t offset = in.next_u64(fmt::format("{} offset", kNames[i]));
    const auto delay = static_cast<unsigned>(
        in.next_u64_in(fmt::format("{} delay", kNames[i]), 0, std::numeric_limits<unsigned>::max()));
    target->set_class(i, open_device_range(env, "delay", path, offset, env.len), offset, delay);
  }
  if (given == 1) {
    target->copy_class(kWriteClass, kReadClass);
  }
  if (given <= 2) {
    target->copy_class(kFlushClass, kWriteClass);
  }
  return target;
}

}  // namespace ubdm
