// SPDX-License-Identifier: MIT
// striped: "<#stripes> <chunk_sectors> (<dev> <offset>){#stripes}" spreads the
// target over several devices in chunk-sized pieces, round robin (RAID-0), as
// dm-stripe does. Chunk k of the target lives on stripe k % #stripes, in that
// stripe's chunk k / #stripes.
#include <atomic>
#include <cerrno>
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

// Smallest chunk we accept: one 4 KiB page (dm-stripe requires chunk >= PAGE_SIZE).
constexpr std::uint64_t kMinChunkSectors = 8;
// dm-stripe stops raising table events for a stripe after this many errors
// (DM_IO_ERROR_THRESHOLD), so a dying disk does not flood event waiters.
constexpr std::uint64_t kErrorEventThreshold = 15;

struct Stripe {
  BlockDevicePtr dev;
  sector_t offset = 0;
  // Written by queue threads (end_io), read by the control thread (status).
  std::atomic<std::uint64_t> errors{0};
};

// Per-clone memory: which stripe the piece went to, for end_io.
struct StripedIo {
  std::uint32_t stripe;
};

class StripedTarget final : public Target {
 public:
  StripedTarget(DeviceContext& device, std::unique_ptr<Stripe[]> stripes, std::uint32_t count, sector_t chunk,
                sector_t width)
      : device_(device), stripes_(std::move(stripes)), count_(count), chunk_(chunk), width_(width) {}

  MapResult map(Clone& clone) override {
    if (clone.op() == Op::kFlush) {
      // One flush clone per stripe (num_flush_clones), so every disk's cache is flushed.
      const unsigned i = clone.flush_index();
      if (i >= count_) {
        return MapResult::kKill;
      }
      clone.per_io<StripedIo>().stripe = i;
      clone.remap(*stripes_[i].dev, 0);
      return MapResult::kRemapped;
    }
    const sector_t offset = clone.target_offset();
    const sector_t chunk_index = offset / chunk_;
    const sector_t in_chunk = offset % chunk_;
    // max_io_len() makes the core cut pieces at chunk boundaries. A piece that
    // still crosses one would silently land on the wrong disk, so refuse it.
    if (in_chunk + clone.nr_sectors() > chunk_) {
      return MapResult::kKill;
    }
    const auto stripe = static_cast<std::uint32_t>(chunk_index % count_);
    const sector_t stripe_chunk = chunk_index / count_;
    clone.per_io<StripedIo>().stripe = stripe;
    clone.remap(*stripes_[stripe].dev, stripes_[stripe].offset + stripe_chunk * chunk_ + in_chunk);
    return MapResult::kRemapped;
  }

  EndIoResult end_io(Clone& clone, int error) override {
    // EOPNOTSUPP says nothing about the disk's health (dm-stripe skips it too).
    if (error == 0 || error == -EOPNOTSUPP) {
      return EndIoResult::kDone;
    }
    const BlockDevice* failed = stripes_[clone.per_io<StripedIo>().stripe].dev.get();
    // The same device may back several stripes; like dm-stripe, blame all of them.
    for (std::uint32_t i = 0; i < count_; ++i) {
      if (stripes_[i].dev.get() == failed) {
        const std::uint64_t n = stripes_[i].errors.fetch_add(1, std::memory_order_relaxed) + 1;
        if (n < kErrorEventThreshold) {
          device_.trigger_event();
        }
      }
    }
    return EndIoResult::kDone;
  }

  sector_t max_io_len(sector_t target_offset) const override { return chunk_ - target_offset % chunk_; }

  unsigned num_flush_clones() const override { return count_; }

  // As dm-stripe: the chunk is the minimum I/O, a full stripe the optimal one.
  void io_hints(IoLimits& limits) const override {
    const std::uint64_t chunk_bytes = chunk_ << kSectorShift;
    if (chunk_bytes <= UINT32_MAX && chunk_bytes * count_ <= UINT32_MAX) {
      limits.io_min = static_cast<std::uint32_t>(chunk_bytes);
      limits.io_opt = static_cast<std::uint32_t>(chunk_bytes * count_);
    }
  }

  std::string status(StatusType type) const override {
    fmt::memory_buffer out;
    if (type == StatusType::kInfo) {
      // "<#stripes> <dev>... 1 <A|D>...": the 1 is the count of status words that follow.
      fmt::format_to(std::back_inserter(out), "{}", count_);
      for (std::uint32_t i = 0; i < count_; ++i) {
        fmt::format_to(std::back_inserter(out), " {}", stripes_[i].dev->display_name());
      }
      out.append(std::string_view(" 1 "));
      for (std::uint32_t i = 0; i < count_; ++i) {
        out.push_back(stripes_[i].errors.load(std::memory_order_relaxed) > 0 ? 'D' : 'A');
      }
    } else {
      fmt::format_to(std::back_inserter(out), "{} {}", count_, chunk_);
      for (std::uint32_t i = 0; i < count_; ++i) {
        fmt::format_to(std::back_inserter(out), " {} {}", stripes_[i].dev->display_name(),
                       stripes_[i].offset);
      }
    }
    return fmt::to_string(out);
  }

  void iterate_devices(const DeviceVisitor& visit) const override {
    for (std::uint32_t i = 0; i < count_; ++i) {
      visit(*stripes_[i].dev, stripes_[i].offset, width_);
    }
  }

 private:
  DeviceContext& device_;
  std::unique_ptr<Stripe[]> stripes_;
  std::uint32_t count_;
  sector_t chunk_;
  sector_t width_;  // sectors used on each stripe: len / #stripes
};

}  // namespace

std::unique_ptr<Target> create_striped_target(TargetEnv& env, std::span<const std::string> args) {
  ArgReader in("striped", args);
  if (args.size() < 2) {
    in.bad(
        fmt::format("expected at least 2 arguments (<#stripes> <chunk_sectors> followed by <dev> <offset> "
                    "per stripe), got {}",
                    args.size()));
  }
  const auto count = static_cast<std::uint32_t>(
      in.next_u64_in("number of stripes", 1, std::numeric_limits<std::uint32_t>::max()));
  const sector_t chunk =
      in.next_u64_in("chunk size", kMinChunkSectors, std::numeric_limits<std::uint32_t>::max());
  if (chunk % kMinChunkSectors != 0) {
    in.bad(fmt::format("invalid chunk size {}: must be a multiple of {} sectors (4 KiB)", chunk,
                       kMinChunkSectors));
  }
  if (in.remaining() != 2 * static_cast<std::uint64_t>(count)) {
    in.bad(fmt::format("{} {} {} device arguments (<dev> <offset> per stripe), got {}", count,
                       count == 1 ? "stripe needs" : "stripes need", 2 * static_cast<std::uint64_t>(count),
                       in.remaining()));
  }
  if (env.len % count != 0) {
    in.bad(fmt::format("target length {} not divisible by number of stripes {}", env.len, count));
  }
  const sector_t width = env.len / count;
  if (width % chunk != 0) {
    in.bad(fmt::format("target length {} not divisible by chunk size {} times number of stripes {}", env.len,
                       chunk, count));
  }

  auto stripes = std::make_unique<Stripe[]>(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::string& path = in.next(fmt::format("device of stripe {}", i));
    const sector_t offset = in.next_u64(fmt::format("offset of stripe {}", i));
    stripes[i].dev = open_device_range(env, "striped", path, offset, width);
    stripes[i].offset = offset;
  }
  return std::make_unique<StripedTarget>(env.device, std::move(stripes), count, chunk, width);
}

}  // namespace ubdm
