// SPDX-License-Identifier: MIT
// historical-service-time (drivers/md/dm-ps-historical-service-time.c,
// 0.1.1): keep, per path, an exponential moving average of the measured
// service time (10-bit fixed point, in ns) and estimate an I/O's service time
// on a path as (1 + outstanding) * average. Paths whose averages are within
// the threshold factor of each other are compared by outstanding I/Os only.
// A path with no completion for valid_paths * average is "stale": if it is
// idle it gets the next I/O (a probe, in case it got better), and a stale
// path that would win is held to the same number of outstanding I/Os as the
// other.
//   selector args: [<base_weight> [<threshold_multiplier>]]; base_weight is
//                  the EMA weight in [0, 1024) (10-bit fixed point, default
//                  972 ~ 0.95, 0 ignores history); threshold_multiplier is a
//                  u32, default 0 (0 and 1 make every difference count).
//                  Group status: "2 <base_weight> <threshold_multiplier> ".
//   per-path args: [<repeat_count>], any u32, unused; printed back as "0 "
//                  (table_args 1).
//   INFO per path: "<average> <outstanding> <stale_after> " (info_args 3).
//
// The weight of a new sample depends on its service time: times are put in
// 64 buckets of 2^24 ns (~16.8 ms) and bucket n weighs the history by
// base_weight^(n+1); the last bucket (>= ~1.06 s) discards the history.
//
// Per queue: each queue keeps its own average, outstanding count, stale
// deadline and last completion for every path, measured from its own
// completions, and selects on those. INFO prints for each path the sum of
// the outstanding counts, and the average and stale deadline of the queue
// that completed an I/O on the path most recently (queue 0 if none has):
// that pair is the one the kernel would print right after that completion,
// and a queue that stopped using the path does not hold an old figure up.
//
// Time: select_path reads the NsClock given at creation (the kernel reads
// sched_clock()); end_io takes start_ns and now_ns from the caller. Both must
// be the same monotonic ns clock. A reinstated path keeps its history, as in
// the kernel (hst_reinstate_path only moves it back to the tail of the list);
// staleness is what gets a recovered path used again.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "targets/multipath/selector_common.hpp"

namespace ubdm::mpath {
namespace {

constexpr std::string_view kName = "historical-service-time";
constexpr unsigned kFixedShift = 10;  // 10 bits of fraction
constexpr std::uint64_t kFixed1 = std::uint64_t{1} << kFixedShift;
constexpr std::uint64_t kFixedMax = std::numeric_limits<std::uint64_t>::max() >> kFixedShift;
constexpr unsigned kFixed95 = 972;
// With this many outstanding I/Os or more, (1 + outstanding) * average may
// overflow, so the averages are shifted down first.
constexpr std::uint64_t kMaxInFlight = kFixed1;
constexpr unsigned kBucketShift = 24;
constexpr std::size_t kWeightCount = 64;

// x^n for 10-bit fixed point x, rounding each product (the kernel's fixed_power).
std::uint64_t fixed_power(std::uint64_t x, unsigned n) {
  std::uint64_t result = kFixed1;
  constexpr std::uint64_t kHalf = std::uint64_t{1} << (kFixedShift - 1);
  while (n != 0) {
    if ((n & 1U) != 0) {
      result = (result * x + kHalf) >> kFixedShift;
    }
    n >>= 1;
    if (n == 0) {
      break;
    }
    x = (x * x + kHalf) >> kFixedShift;
  }
  return result;
}

// last * weight + next * (1 - weight), weight in [0, 1], rounded.
std::uint64_t fixed_ema(std::uint64_t last, std::uint64_t next, std::uint64_t weight) {
  return (last * weight + next * (kFixed1 - weight) + (std::uint64_t{1} << (kFixedShift - 1))) >> kFixedShift;
}

struct HstConfig {
  std::array<std::uint64_t, kWeightCount> weights{};  // weights[n] = base^(n+1), last 0
  std::uint64_t threshold_multiplier = 0;
};

// One queue's view of one path. Written by the queue thread only; the
// atomics are for status() on the control thread.
struct PathHistory {
  std::atomic<std::uint64_t> average{kFixed1};  // fixed point ns
  std::atomic<std::uint64_t> outstanding{0};
  std::atomic<std::uint64_t> stale_after{0};  // ns
  std::atomic<std::uint64_t> last_finish{0};  // ns
};

class HstQueue final : public SelectorQueue {
 public:
  HstQueue(std::span<SelectorPath* const> paths, const HstConfig& config, const NsClock& clock)
      : paths_(paths),
        order_(paths, PathOrder::Reinstated::kToTail),
        config_(config),
        clock_(clock),
        history_(paths.size()) {}

  int select_path(std::uint64_t /*bytes*/) override {
    const std::uint64_t now = clock_.now_ns();
    return order_.select([this, now](std::uint32_t a, std::uint32_t b) { return compare(a, b, now) < 0; },
                         [](std::uint32_t) { return false; });
  }

  void start_io(unsigned path, std::uint64_t /*bytes*/) override {
    relaxed_add(history_[path].outstanding, 1);
  }

  void end_io(unsigned path, std::uint64_t /*bytes*/, std::uint64_t start_ns, std::uint64_t now_ns) override {
    PathHistory& h = history_[path];
    // If an earlier I/O on this path finished after this one was sent, count
    // from that finish, as if the path served them one after the other.
    const std::uint64_t last_finish = h.last_finish.load(std::memory_order_relaxed);
    if (static_cast<std::int64_t>(start_ns - last_finish) < 0) {
      start_ns = last_finish;
    }
    h.last_finish.store(now_ns, std::memory_order_relaxed);
    const std::uint64_t st = static_cast<std::int64_t>(now_ns - start_ns) < 0 ? 0 : now_ns - start_ns;

    relaxed_sub(h.outstanding, 1);
    const std::uint64_t sample = st > (kFixedMax >> kFixedShift) ? kFixedMax : st << kFixedShift;
    const std::uint64_t weight =
        config_.weights[std::min<std::uint64_t>(st >> kBucketShift, kWeightCount - 1)];
    const std::uint64_t average = fixed_ema(h.average.load(std::memory_order_relaxed), sample, weight);
    h.average.store(average, std::memory_order_relaxed);

    // Fresh until every valid path could have served one I/O at this speed.
    // The kernel's multipath_end_io fails the path before it calls the
    // selector's end_io, so a path failed by this I/O's error is not counted;
    // the target should keep that order.
    std::uint64_t valid = 0;
    for (const SelectorPath* p : paths_) {
      valid += p->valid.load(std::memory_order_relaxed) ? 1 : 0;
    }
    h.stale_after.store(now_ns + valid * (average >> kFixedShift), std::memory_order_relaxed);
  }

  // Control thread (status).
  const PathHistory& history(unsigned path) const { return history_[path]; }

 private:
  // The kernel's hst_compare: < 0 if path 1 is better, > 0 if path 2 is.
  std::int64_t compare(unsigned path1, unsigned path2, std::uint64_t now) const {
    const PathHistory& h1 = history_[path1];
    const PathHistory& h2 = history_[path2];
    std::uint64_t hst1 = h1.average.load(std::memory_order_relaxed);
    std::uint64_t hst2 = h2.average.load(std::memory_order_relaxed);
    const std::uint64_t out1 = h1.outstanding.load(std::memory_order_relaxed);
    const std::uint64_t out2 = h2.outstanding.load(std::memory_order_relaxed);
    const std::uint64_t stale1 = h1.stale_after.load(std::memory_order_relaxed);
    const std::uint64_t stale2 = h2.stale_after.load(std::memory_order_relaxed);
    const auto out_diff = static_cast<std::int64_t>(out1) - static_cast<std::int64_t>(out2);

    // Averages too close to tell apart: fewer outstanding wins. (With a
    // multiplier of 0 or 1 only equal averages are "close"; with 0 even
    // those are not, unless they are 0. The products wrap as the kernel's.)
    const bool over_threshold =
        hst1 > hst2 ? hst1 > config_.threshold_multiplier * hst2 : hst2 > config_.threshold_multiplier * hst1;
    if (!over_threshold) {
      return out_diff;
    }

    // An idle path that is stale beats a busy one (it gets a probe); of two
    // idle paths the more stale (earlier deadline) wins. This is the
    // kernel's (!out2 * stale1) - (!out1 * stale2), so against a busy path
    // that has never completed (deadline 0) it is a tie instead.
    if ((out1 == 0 && stale1 < now) || (out2 == 0 && stale2 < now) || (out1 == 0 && out2 == 0)) {
      return (out2 == 0 ? static_cast<std::int64_t>(stale1) : 0) -
             (out1 == 0 ? static_cast<std::int64_t>(stale2) : 0);
    }

    bool path2_better = false;
    if (out1 == out2) {
      path2_better = hst1 > hst2;
    } else {
      if (out1 >= kMaxInFlight || out2 >= kMaxInFlight) {
        hst1 >>= kFixedShift;
        hst2 >>= kFixedShift;
      }
      path2_better = (1 + out1) * hst1 > (1 + out2) * hst2;
    }
    // A stale winner gets no more outstanding I/Os than the other path.
    if (path2_better) {
      return stale2 < now ? out_diff : 1;
    }
    return stale1 < now ? out_diff : -1;
  }

  std::span<SelectorPath* const> paths_;
  PathOrder order_;
  const HstConfig& config_;
  const NsClock& clock_;
  std::vector<PathHistory> history_;  // by path index
};

class HistoricalServiceTime final : public Selector {
 public:
  HistoricalServiceTime(unsigned nr_queues, std::vector<SelectorPath*> paths, const HstConfig& config,
                        const NsClock& clock)
      : Selector(std::move(paths)), config_(config) {
    queues_.reserve(nr_queues);
    for (unsigned q = 0; q < nr_queues; ++q) {
      queues_.push_back(std::make_unique<HstQueue>(this->paths(), config_, clock));
    }
  }

  std::string_view name() const override { return kName; }

  void add_path(unsigned index, std::span<const std::string> args) override {
    check_path_index(*this, index);
    ArgReader in("historical-service-time ps", args);
    expect_at_most(in, 1, "per-path", "[<repeat_count>]");
    // Checked, then unused: the kernel keeps it but prints 0.
    (void)read_repeat_count(in, false);
  }

  SelectorQueue& queue(unsigned q) override { return *queues_.at(q); }

  // weights[0] is base_weight^1, i.e. the base weight given.
  std::string group_status(StatusType /*type*/) const override {
    return fmt::format("2 {} {} ", config_.weights[0], config_.threshold_multiplier);
  }

  std::string path_status(unsigned index, StatusType type) const override {
    check_path_index(*this, index);
    if (type == StatusType::kTable) {
      return "0 ";
    }
    std::uint64_t outstanding = 0;
    const PathHistory* freshest = nullptr;
    std::uint64_t freshest_finish = 0;
    for (const auto& q : queues_) {
      const PathHistory& h = q->history(index);
      outstanding += h.outstanding.load(std::memory_order_relaxed);
      const std::uint64_t finish = h.last_finish.load(std::memory_order_relaxed);
      if (freshest == nullptr || finish > freshest_finish) {
        freshest = &h;
        freshest_finish = finish;
      }
    }
    std::uint64_t average = kFixed1;
    std::uint64_t stale_after = 0;
    if (freshest != nullptr) {
      average = freshest->average.load(std::memory_order_relaxed);
      stale_after = freshest->stale_after.load(std::memory_order_relaxed);
    }
    return fmt::format("{} {} {} ", average, outstanding, stale_after);
  }

  unsigned info_args() const override { return 3; }
  unsigned table_args() const override { return 1; }

 private:
  HstConfig config_;
  std::vector<std::unique_ptr<HstQueue>> queues_;
};

}  // namespace

std::unique_ptr<Selector> create_historical_service_time(std::span<const std::string> args,
                                                         unsigned nr_queues, std::vector<SelectorPath*> paths,
                                                         const NsClock& clock) {
  ArgReader in("historical-service-time ps", args);
  expect_at_most(in, 2, "selector", "[<base_weight> [<threshold_multiplier>]]");
  std::uint64_t base_weight = kFixed95;
  HstConfig config;
  if (!in.done()) {
    base_weight = in.next_u64_in("base_weight", 0, kFixed1 - 1);
  }
  if (!in.done()) {
    config.threshold_multiplier =
        in.next_u64_in("threshold_multiplier", 0, std::numeric_limits<std::uint32_t>::max());
  }
  for (std::size_t i = 0; i + 1 < kWeightCount; ++i) {
    config.weights[i] = fixed_power(base_weight, static_cast<unsigned>(i + 1));
  }
  config.weights[kWeightCount - 1] = 0;
  return std::make_unique<HistoricalServiceTime>(nr_queues, std::move(paths), config, clock);
}

}  // namespace ubdm::mpath
