// SPDX-License-Identifier: MIT
// queue-length (drivers/md/dm-ps-queue-length.c, 0.2.0): pick the valid path
// with the fewest in-flight I/Os. The list is walked in order, a path replaces
// the best so far only if it has strictly fewer, and the walk stops at the
// first idle path; the chosen path moves to the end of the list, so ties go
// to the least recently chosen.
//   selector args: none (the kernel ignores any it is given)
//   per-path args: [<repeat_count>], default 1; above 1 is deprecated and
//                  replaced by 1 (table_args 1, printed back normalised)
//   INFO per path: "<in-flight I/Os> " (info_args 1)
// Per queue: each queue counts the I/Os it has in flight on each path and
// balances its own share; INFO prints the sum over the queues.
#include <fmt/format.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "targets/multipath/selector_common.hpp"

namespace ubdm::mpath {
namespace {

constexpr std::string_view kName = "queue-length";

class QueueLengthQueue final : public SelectorQueue {
 public:
  explicit QueueLengthQueue(std::span<SelectorPath* const> paths)
      : order_(paths, PathOrder::Reinstated::kToTail), in_flight_(paths.size()) {}

  // The valid path with the fewest I/Os in flight; an idle one ends the scan.
  int select_path(std::uint64_t /*bytes*/) override {
    return order_.select([this](std::uint32_t a, std::uint32_t b) { return in_flight(a) < in_flight(b); },
                         [this](std::uint32_t a) { return in_flight(a) == 0; });
  }

  void start_io(unsigned path, std::uint64_t /*bytes*/) override { relaxed_add(in_flight_[path], 1); }
  void end_io(unsigned path, std::uint64_t /*bytes*/, std::uint64_t /*start_ns*/,
              std::uint64_t /*now_ns*/) override {
    relaxed_sub(in_flight_[path], 1);
  }

  // Control thread (status).
  std::uint64_t in_flight(unsigned path) const { return in_flight_[path].load(std::memory_order_relaxed); }

 private:
  PathOrder order_;
  std::vector<std::atomic<std::uint64_t>> in_flight_;  // by path index; written by this queue only
};

class QueueLength final : public RepeatCountSelector<QueueLengthQueue> {
 public:
  QueueLength(unsigned nr_queues, std::vector<SelectorPath*> paths)
      : RepeatCountSelector(nr_queues, std::move(paths), "queue-length ps") {}

  std::string_view name() const override { return kName; }
  std::string path_status(unsigned index, StatusType type) const override {
    check_path_index(*this, index);
    if (type != StatusType::kInfo) {
      return table_words(index);
    }
    std::uint64_t sum = 0;  // each queue counts its own I/Os
    for (const auto& q : queues_) {
      sum += q->in_flight(index);
    }
    return fmt::format("{} ", sum);
  }
  unsigned info_args() const override { return 1; }
};

}  // namespace

std::unique_ptr<Selector> create_queue_length(std::span<const std::string> /*args*/, unsigned nr_queues,
                                              std::vector<SelectorPath*> paths) {
  // ql_create ignores its arguments.
  return std::make_unique<QueueLength>(nr_queues, std::move(paths));
}

}  // namespace ubdm::mpath
