// SPDX-License-Identifier: MIT
// Time source for timers (delayed requeue, delay and flakey targets).
// Tests inject ManualClock so that time moves only when they say so.
#pragma once

#include <atomic>
#include <cstdint>

namespace ubdm {

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic milliseconds. Any thread.
  virtual std::uint64_t now_ms() const = 0;
  // Monotonic nanoseconds, for I/O latency. Any thread; no lock.
  virtual std::uint64_t now_ns() const { return now_ms() * 1'000'000U; }
};

// CLOCK_MONOTONIC.
const Clock& system_clock();

class ManualClock final : public Clock {
 public:
  std::uint64_t now_ms() const override { return now_.load(std::memory_order_relaxed); }
  void advance_ms(std::uint64_t ms) { now_.fetch_add(ms, std::memory_order_relaxed); }
  void set_ms(std::uint64_t ms) { now_.store(ms, std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> now_{1000};
};

}  // namespace ubdm
