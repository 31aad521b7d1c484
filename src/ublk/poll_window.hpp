// SPDX-License-Identifier: MIT
// Adaptive polling for one queue thread. Before it sleeps in the kernel, a
// queue thread may spin on its ring instead, so that the next event finds it
// awake: a wake-up costs a low-depth stream more than anything else a request
// does (see docs/performance.md). Spinning pays only if the event comes soon,
// so the window learns how long waits last and spins only where the next
// event is expected within the bound.
//
// Two kinds of wait are learned apart, because they measure different
// things: an *idle* wait (no request in the core) lasts as long as the
// submitter takes to send its next request; a *busy* wait lasts as long as
// the disks take to complete. Each estimate is a moving average of recent
// waits. Where it is within the bound, the thread spins for twice it (capped
// by the bound); where it is not, the thread sleeps at once, since spinning
// would burn a CPU for nothing.
//
// A wait that ended in sleep measures the wake-up too, and a wake-up can cost
// more than the wait itself (under emulation, hundreds of microseconds): such
// samples alone would keep a fast stream asleep for ever. So every
// kProbeEvery-th wait that would not spin spins for the whole bound, and
// measures the stream as it is.
//
// Pure arithmetic on the caller's clock: deterministic and unit-tested.
#pragma once

#include <algorithm>
#include <cstdint>

namespace ubdm::ublk {

class PollWindow {
 public:
  // `max_usec`: the longest the thread may spin per wait; 0 turns polling off.
  explicit PollWindow(unsigned max_usec) : max_ns_(std::uint64_t{max_usec} * 1000U) {}

  bool enabled() const { return max_ns_ != 0; }

  // How long to spin before sleeping in the next wait of this kind (ns; 0:
  // sleep at once). Counts towards the next probe.
  std::uint64_t next_spin_ns(bool idle) {
    Kind& k = kinds_[idle ? 1 : 0];
    if (k.estimate_ns <= max_ns_) {
      k.unspun = 0;
      return std::min(max_ns_, 2 * k.estimate_ns + kSlackNs);
    }
    if (++k.unspun >= kProbeEvery) {
      k.unspun = 0;
      return max_ns_;
    }
    return 0;
  }

  // A wait of this kind lasted `ns` before its events arrived.
  void waited(bool idle, std::uint64_t ns) {
    // A long sleep counts as twice the bound: three in a row stop the
    // spinning of a fast stream that ended, one stray pause does not, and a
    // few short waits bring it back.
    const std::uint64_t sample = std::min(ns, 2 * max_ns_);
    std::uint64_t& e = kinds_[idle ? 1 : 0].estimate_ns;
    e = e - e / kWeight + sample / kWeight;
  }

  std::uint64_t estimate_ns(bool idle) const { return kinds_[idle ? 1 : 0].estimate_ns; }

 private:
  // Each new wait weighs 1/kWeight in the average: a handful of waits moves it.
  static constexpr std::uint64_t kWeight = 4;
  // Added to every window, so an estimate of zero still spins a little.
  static constexpr std::uint64_t kSlackNs = 2000;
  // One wait in this many that would sleep spins instead, to measure.
  static constexpr unsigned kProbeEvery = 16;

  struct Kind {
    std::uint64_t estimate_ns = 0;  // starts by spinning: a new device is about to be used
    unsigned unspun = 0;            // waits slept at once since the last spin
  };
  std::uint64_t max_ns_;
  Kind kinds_[2];  // [busy, idle]
};

}  // namespace ubdm::ublk
