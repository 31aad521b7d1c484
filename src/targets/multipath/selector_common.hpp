// SPDX-License-Identifier: MIT
// Private to the path selectors (and their unit tests): the factories behind
// create_selector, the per-queue path order that mirrors the kernel's
// valid_paths list, argument helpers and the time source of
// historical-service-time.
#pragma once

#include <fmt/format.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "targets/multipath/path_selector.hpp"
#include "targets/target_args.hpp"

namespace ubdm::mpath {

// Monotonic nanoseconds, read by a selector that needs "now" while selecting
// (historical-service-time, as the kernel reads sched_clock() in
// hst_select_path). It must be the clock that end_io's start_ns and now_ns
// come from. now_ns() is called on queue threads: no lock, no allocation.
class NsClock {
 public:
  virtual ~NsClock() = default;
  virtual std::uint64_t now_ns() const = 0;
};

// CLOCK_MONOTONIC in nanoseconds.
const NsClock& monotonic_ns_clock();

// One factory per selector (create_selector's registry). Each throws
// ubdm::Error for bad selector arguments.
std::unique_ptr<Selector> create_round_robin(std::span<const std::string> args, unsigned nr_queues,
                                             std::vector<SelectorPath*> paths);
std::unique_ptr<Selector> create_queue_length(std::span<const std::string> args, unsigned nr_queues,
                                              std::vector<SelectorPath*> paths);
std::unique_ptr<Selector> create_service_time(std::span<const std::string> args, unsigned nr_queues,
                                              std::vector<SelectorPath*> paths);
// `clock` must outlive the selector; tests pass a manual one.
std::unique_ptr<Selector> create_historical_service_time(std::span<const std::string> args,
                                                         unsigned nr_queues, std::vector<SelectorPath*> paths,
                                                         const NsClock& clock);

// The kernel selectors keep their valid paths in a list and move the path
// they pick to the tail, which is what breaks ties in favour of the least
// recently used path; a reinstated path re-enters at the tail (queue-length,
// service-time, historical-service-time: list_move_tail) or at the head
// (round-robin: list_move). PathOrder is one queue's copy of that list: every
// path in table order, failed ones left where they were (they are skipped by
// the validity check, so the relative order of the valid ones is the
// kernel's). Reinstates are noticed through SelectorPath::reinstate_count at
// the next sync(). Queue thread only; allocates only in the constructor.
class PathOrder {
 public:
  enum class Reinstated : std::uint8_t { kToHead, kToTail };

  PathOrder(std::span<SelectorPath* const> paths, Reinstated where);

  // The selection every kernel selector makes: sync, scan the valid paths
  // in list order, keep the first that no later one beats (`better(a, b)`:
  // path a is strictly better than path b, so ties go to the earlier one),
  // move it to the tail and return its index; -1 if none is valid.
  // `unbeatable(a)` ends the scan early once path a cannot be beaten.
  template <class Better, class Unbeatable>
  int select(Better better, Unbeatable unbeatable) {
    sync();
    std::size_t best_pos = 0;
    int best = -1;
    for (std::size_t pos = 0; pos < order_.size(); ++pos) {
      if (!valid_at(pos)) {
        continue;
      }
      const std::uint32_t idx = order_[pos];
      if (best < 0 || better(idx, static_cast<std::uint32_t>(best))) {
        best = static_cast<int>(idx);
        best_pos = pos;
      }
      if (unbeatable(static_cast<std::uint32_t>(best))) {
        break;
      }
    }
    if (best >= 0) {
      move_to_tail(best_pos);
    }
    return best;
  }

 private:
  // Move the paths reinstated since the last call to the head or tail (the
  // start of every selection).
  void sync();
  bool valid_at(std::size_t pos) const { return paths_[order_[pos]]->valid.load(std::memory_order_relaxed); }
  // list_move_tail: the path at `pos` becomes the last.
  void move_to_tail(std::size_t pos);
  void move_to_head(std::size_t pos);

  std::span<SelectorPath* const> paths_;
  std::vector<std::uint32_t> order_;  // path indices, list order
  std::vector<std::uint32_t> seen_;   // by path index: reinstate_count at the last sync
  Reinstated where_;
};

// Throw unless `in` holds at most `max` arguments; `usage` names them. For
// per-path arguments (`what` = "per-path") and selector arguments ("selector").
void expect_at_most(const ArgReader& in, std::size_t max, std::string_view what, std::string_view usage);

// Throw unless `index` is a path of `sel` (add_path's contract).
void check_path_index(const Selector& sel, unsigned index);

// Per-path repeat_count ("[<repeat_count>]" for every kernel selector):
// an unsigned 32-bit decimal, default 1. `selector` names the selector in
// messages ("round-robin ps"). With `deprecated_above_one` (round-robin,
// queue-length, service-time) a value above 1 is logged as the kernel does
// and replaced by 1; historical-service-time keeps what it is given.
std::uint32_t read_repeat_count(ArgReader& in, bool deprecated_above_one);

// Round-robin and queue-length share everything but selection and their
// INFO words: per-path args are "[<repeat_count>]" (normalised to 1), the
// group status is "0 ", TABLE prints the repeat count, and there is one
// QueueT per queue. `ps_name` names the selector in messages; a literal.
template <typename QueueT>
class RepeatCountSelector : public Selector {
 public:
  void add_path(unsigned index, std::span<const std::string> args) override {
    check_path_index(*this, index);
    ArgReader in(ps_name_, args);
    expect_at_most(in, 1, "per-path", "[<repeat_count>]");
    repeat_count_[index] = read_repeat_count(in, true);
  }
  SelectorQueue& queue(unsigned q) override { return *queues_.at(q); }
  std::string group_status(StatusType /*type*/) const override { return "0 "; }
  unsigned table_args() const override { return 1; }

 protected:
  RepeatCountSelector(unsigned nr_queues, std::vector<SelectorPath*> paths, const char* ps_name)
      : Selector(std::move(paths)), ps_name_(ps_name), repeat_count_(this->paths().size(), 1) {
    queues_.reserve(nr_queues);
    for (unsigned q = 0; q < nr_queues; ++q) {
      queues_.push_back(std::make_unique<QueueT>(this->paths()));
    }
  }
  // The TABLE words for a path.
  std::string table_words(unsigned index) const { return fmt::format("{} ", repeat_count_[index]); }

  const char* ps_name_;
  std::vector<std::uint32_t> repeat_count_;  // by path index, normalised
  std::vector<std::unique_ptr<QueueT>> queues_;
};

// For status(): the relaxed atomics below are written by one queue thread
// each, so a plain load + store is enough and avoids a locked RMW.
inline void relaxed_add(std::atomic<std::uint64_t>& a, std::uint64_t d) {
  a.store(a.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
}
inline void relaxed_sub(std::atomic<std::uint64_t>& a, std::uint64_t d) {
  a.store(a.load(std::memory_order_relaxed) - d, std::memory_order_relaxed);
}

}  // namespace ubdm::mpath
