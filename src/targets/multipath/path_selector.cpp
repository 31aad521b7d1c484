// SPDX-License-Identifier: MIT
// The selector registry (one explicit list, as for targets) and the pieces
// the selectors share.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <ctime>
#include <limits>

#include "targets/multipath/selector_common.hpp"
#include "ubdm/error.hpp"

namespace ubdm::mpath {
namespace {

class MonotonicNsClock final : public NsClock {
 public:
  std::uint64_t now_ns() const override {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000U + static_cast<std::uint64_t>(ts.tv_nsec);
  }
};

std::unique_ptr<Selector> create_hst_monotonic(std::span<const std::string> args, unsigned nr_queues,
                                               std::vector<SelectorPath*> paths) {
  return create_historical_service_time(args, nr_queues, std::move(paths), monotonic_ns_clock());
}

using Factory = std::unique_ptr<Selector> (*)(std::span<const std::string>, unsigned,
                                              std::vector<SelectorPath*>);

// Versions are the kernel modules' (RR_VERSION, QL_VERSION, ST_VERSION,
// HST_VERSION in drivers/md/dm-ps-*.c).
constexpr std::array<SelectorType, 4> kTypes{{
    {"round-robin", {1, 2, 0}},
    {"queue-length", {0, 2, 0}},
    {"service-time", {0, 3, 0}},
    {"historical-service-time", {0, 1, 1}},
}};
// Same order as kTypes.
constexpr std::array<Factory, 4> kFactories{
    &create_round_robin,
    &create_queue_length,
    &create_service_time,
    &create_hst_monotonic,
};
static_assert(kTypes.size() == kFactories.size());

}  // namespace

const NsClock& monotonic_ns_clock() {
  static const MonotonicNsClock clock;
  return clock;
}

std::unique_ptr<Selector> create_selector(std::string_view name, std::span<const std::string> args,
                                          unsigned nr_queues, std::vector<SelectorPath*> paths) {
  for (std::size_t i = 0; i < kTypes.size(); ++i) {
    if (kTypes[i].name == name) {
      return kFactories[i](args, nr_queues, std::move(paths));
    }
  }
  fail_invalid("unknown path selector '{}'", name);
}

std::span<const SelectorType> selector_types() { return kTypes; }

PathOrder::PathOrder(std::span<SelectorPath* const> paths, Reinstated where)
    : paths_(paths), order_(paths.size()), seen_(paths.size()), where_(where) {
  for (std::size_t i = 0; i < paths.size(); ++i) {
    order_[i] = static_cast<std::uint32_t>(i);
    // A reinstate counted before this queue existed is not news to it.
    seen_[i] = paths[i]->reinstate_count.load(std::memory_order_relaxed);
  }
}

void PathOrder::sync() {
  std::size_t end = order_.size();
  for (std::size_t pos = 0; pos < end;) {
    const std::uint32_t idx = order_[pos];
    const SelectorPath& p = *paths_[idx];
    // A path that was reinstated and failed again before this queue looked
    // keeps its old count until it is valid again: the kernel would move it
    // on that later reinstate too.
    if (p.valid.load(std::memory_order_relaxed)) {
      const std::uint32_t count = p.reinstate_count.load(std::memory_order_relaxed);
      if (count != seen_[idx]) {
        seen_[idx] = count;
        if (where_ == Reinstated::kToTail) {
          // The next unvisited path slides into `pos`; the moved one is past `end`.
          move_to_tail(pos);
          --end;
          continue;
        }
        move_to_head(pos);
      }
    }
    ++pos;
  }
}

void PathOrder::move_to_tail(std::size_t pos) {
  std::rotate(order_.begin() + static_cast<std::ptrdiff_t>(pos),
              order_.begin() + static_cast<std::ptrdiff_t>(pos) + 1, order_.end());
}

void PathOrder::move_to_head(std::size_t pos) {
  std::rotate(order_.begin(), order_.begin() + static_cast<std::ptrdiff_t>(pos),
              order_.begin() + static_cast<std::ptrdiff_t>(pos) + 1);
}

void expect_at_most(const ArgReader& in, std::size_t max, std::string_view what, std::string_view usage) {
  if (in.size() > max) {
    in.bad(fmt::format("wrong number of {} arguments ({}): expected {}", what, in.size(), usage));
  }
}

void check_path_index(const Selector& sel, unsigned index) {
  if (index >= sel.paths().size()) {
    fail_invalid("{} ps: no path {} (the selector has {})", sel.name(), index, sel.paths().size());
  }
}

std::uint32_t read_repeat_count(ArgReader& in, bool deprecated_above_one) {
  if (in.done()) {
    return 1;
  }
  auto count = static_cast<std::uint32_t>(
      in.next_u64_in("repeat_count", 0, std::numeric_limits<std::uint32_t>::max()));
  if (deprecated_above_one && count > 1) {
    // The kernel's DMWARN_LIMIT; the table then shows 1.
    spdlog::warn("{}: repeat_count > 1 is deprecated, using 1 instead", in.target());
    count = 1;
  }
  return count;
}

}  // namespace ubdm::mpath
