// SPDX-License-Identifier: MIT
// round-robin (drivers/md/dm-ps-round-robin.c, 1.2.0): every selection takes
// the first valid path and moves it to the end of the list.
//   selector args: none (the kernel ignores any it is given)
//   per-path args: [<repeat_count>], default 1; above 1 is deprecated and
//                  replaced by 1 (table_args 1, printed back normalised)
//   INFO per path: nothing (info_args 0)
// Per queue: each queue rotates over its own copy of the list, so the queues
// together spread I/O evenly without sharing a cursor. A reinstated path goes
// to the head of the list (the kernel's list_move), so it is used next.
#include <fmt/format.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "targets/multipath/selector_common.hpp"

namespace ubdm::mpath {
namespace {

constexpr std::string_view kName = "round-robin";

class RoundRobinQueue final : public SelectorQueue {
 public:
  explicit RoundRobinQueue(std::span<SelectorPath* const> paths)
      : order_(paths, PathOrder::Reinstated::kToHead) {}

  // The first valid path in list order.
  int select_path(std::uint64_t /*bytes*/) override {
    return order_.select([](std::uint32_t, std::uint32_t) { return false; }, [](std::uint32_t) { return true; });
  }
  void start_io(unsigned /*path*/, std::uint64_t /*bytes*/) override {}
  void end_io(unsigned /*path*/, std::uint64_t /*bytes*/, std::uint64_t /*start_ns*/,
              std::uint64_t /*now_ns*/) override {}

 private:
  PathOrder order_;
};

class RoundRobin final : public RepeatCountSelector<RoundRobinQueue> {
 public:
  RoundRobin(unsigned nr_queues, std::vector<SelectorPath*> paths)
      : RepeatCountSelector(nr_queues, std::move(paths), "round-robin ps") {}

  std::string_view name() const override { return kName; }
  std::string path_status(unsigned index, StatusType type) const override {
    check_path_index(*this, index);
    return type == StatusType::kInfo ? std::string() : table_words(index);
  }
  unsigned info_args() const override { return 0; }
};

}  // namespace

std::unique_ptr<Selector> create_round_robin(std::span<const std::string> /*args*/, unsigned nr_queues,
                                             std::vector<SelectorPath*> paths) {
  // rr_create ignores its arguments; so do we, so that tables the kernel
  // accepts load here too.
  return std::make_unique<RoundRobin>(nr_queues, std::move(paths));
}

}  // namespace ubdm::mpath
