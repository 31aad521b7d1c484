// SPDX-License-Identifier: MIT
// service-time (drivers/md/dm-ps-service-time.c, 0.3.0): pick the valid path
// with the shortest estimated service time for the incoming I/O,
// (in-flight bytes + incoming bytes) / relative_throughput. The list is
// walked in order, a path replaces the best so far only if it compares
// strictly better, and the chosen path moves to the end of the list.
//   selector args: none (the kernel ignores any it is given)
//   per-path args: [<repeat_count> [<relative_throughput>]]; repeat_count as
//                  for round-robin, relative_throughput 0..100, default 1.
//                  A path with 0 is used only while no path with a positive
//                  value is valid. (table_args 2: "<repeat_count> <rt> ")
//   INFO per path: "<in-flight bytes> <rt> " (info_args 2)
// Per queue: each queue counts its own in-flight bytes per path; INFO prints
// the sum over the queues.
#include <fmt/format.h>

#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "targets/multipath/selector_common.hpp"

namespace ubdm::mpath {
namespace {

constexpr std::string_view kName = "service-time";
constexpr std::uint64_t kMaxRelativeThroughput = 100;
// Sizes at or above this could overflow when multiplied by a throughput
// (<= 100 < 2^7), so both sides are shifted down by 7 first.
constexpr unsigned kThroughputShift = 7;
constexpr std::uint64_t kMaxInFlightSize = std::numeric_limits<std::uint64_t>::max() >> kThroughputShift;

// The kernel's st_compare_load: < 0 if path 1 is better for `incoming` bytes,
// 0 if neither is, > 0 if path 2 is.
int compare_load(std::uint64_t size1, unsigned rt1, std::uint64_t size2, unsigned rt2,
                 std::uint64_t incoming) {
  const int prefer_higher_rt = static_cast<int>(rt2) - static_cast<int>(rt1);
  // Same throughput: the less loaded path. (The kernel returns sz1 - sz2
  // truncated to int, which gets the sign wrong once the loads differ by
  // 2 GiB or more; we compare.)
  if (rt1 == rt2) {
    return size1 < size2 ? -1 : (size1 > size2 ? 1 : 0);
  }
  // Same load, or one path has no throughput value: the higher throughput.
  // This is what keeps rt 0 paths idle while any rt > 0 path is valid.
  if (size1 == size2 || rt1 == 0 || rt2 == 0) {
    return prefer_higher_rt;
  }
  // (size1 + incoming) / rt1 against (size2 + incoming) / rt2, cross-multiplied
  // to avoid the division.
  size1 += incoming;
  size2 += incoming;
  if (size1 >= kMaxInFlightSize || size2 >= kMaxInFlightSize) {
    size1 >>= kThroughputShift;
    size2 >>= kThroughputShift;
  }
  const std::uint64_t st1 = size1 * rt2;
  const std::uint64_t st2 = size2 * rt1;
  if (st1 != st2) {
    return st1 < st2 ? -1 : 1;
  }
  // Same service time: the higher throughput.
  return prefer_higher_rt;
}

class ServiceTimeQueue final : public SelectorQueue {
 public:
  // `rt` is the selector's per-path throughput, filled by add_path before
  // this queue is first used.
  ServiceTimeQueue(std::span<SelectorPath* const> paths, const std::vector<unsigned>& rt)
      : order_(paths, PathOrder::Reinstated::kToTail), rt_(rt), in_flight_(paths.size()) {}

  int select_path(std::uint64_t bytes) override {
    return order_.select(
        [this, bytes](std::uint32_t a, std::uint32_t b) {
          return compare_load(in_flight(a), rt_[a], in_flight(b), rt_[b], bytes) < 0;
        },
        [](std::uint32_t) { return false; });
  }

  void start_io(unsigned path, std::uint64_t bytes) override { relaxed_add(in_flight_[path], bytes); }
  void end_io(unsigned path, std::uint64_t bytes, std::uint64_t /*start_ns*/,
              std::uint64_t /*now_ns*/) override {
    relaxed_sub(in_flight_[path], bytes);
  }

  // Control thread (status).
  std::uint64_t in_flight(unsigned path) const { return in_flight_[path].load(std::memory_order_relaxed); }

 private:
  PathOrder order_;
  const std::vector<unsigned>& rt_;
  std::vector<std::atomic<std::uint64_t>> in_flight_;  // bytes, by path index; written by this queue only
};

class ServiceTime final : public Selector {
 public:
  ServiceTime(unsigned nr_queues, std::vector<SelectorPath*> paths)
      : Selector(std::move(paths)), repeat_count_(this->paths().size(), 1), rt_(this->paths().size(), 1) {
    queues_.reserve(nr_queues);
    for (unsigned q = 0; q < nr_queues; ++q) {
      queues_.push_back(std::make_unique<ServiceTimeQueue>(this->paths(), rt_));
    }
  }

  std::string_view name() const override { return kName; }

  void add_path(unsigned index, std::span<const std::string> args) override {
    check_path_index(*this, index);
    ArgReader in("service-time ps", args);
    expect_at_most(in, 2, "per-path", "[<repeat_count> [<relative_throughput>]]");
    const std::uint32_t repeat_count = read_repeat_count(in, true);
    unsigned rt = 1;
    if (!in.done()) {
      rt = static_cast<unsigned>(in.next_u64_in("relative_throughput", 0, kMaxRelativeThroughput));
    }
    repeat_count_[index] = repeat_count;
    rt_[index] = rt;
  }

  SelectorQueue& queue(unsigned q) override { return *queues_.at(q); }

  std::string group_status(StatusType /*type*/) const override { return "0 "; }
  std::string path_status(unsigned index, StatusType type) const override {
    check_path_index(*this, index);
    if (type == StatusType::kInfo) {
      std::uint64_t sum = 0;
      for (const auto& q : queues_) {
        sum += q->in_flight(index);
      }
      return fmt::format("{} {} ", sum, rt_[index]);
    }
    return fmt::format("{} {} ", repeat_count_[index], rt_[index]);
  }
  unsigned info_args() const override { return 2; }
  unsigned table_args() const override { return 2; }

 private:
  std::vector<std::uint32_t> repeat_count_;  // by path index, normalised
  std::vector<unsigned> rt_;                 // relative_throughput by path index; fixed after add_path
  std::vector<std::unique_ptr<ServiceTimeQueue>> queues_;
};

}  // namespace

std::unique_ptr<Selector> create_service_time(std::span<const std::string> /*args*/, unsigned nr_queues,
                                              std::vector<SelectorPath*> paths) {
  // st_create ignores its arguments.
  return std::make_unique<ServiceTime>(nr_queues, std::move(paths));
}

}  // namespace ubdm::mpath
