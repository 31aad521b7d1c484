// SPDX-License-Identifier: MIT
// I/O statistics of a mapped device: per operation, the I/Os started and
// completed, their bytes and errors, and a latency histogram; per queue,
// what waits for a requeue or a resume.
//
// Each DispatchQueue owns one QueueIoStats and is its only writer. A counter
// is an atomic bumped with a relaxed load and store (a plain add on x86: no
// lock prefix, no fence), so the per-I/O cost is a few adds and two clock
// reads, and any thread may read a consistent-enough figure at any time.
// Readers sum the queues (MappedDevice::io_stats()). Figures only grow,
// except the gauges; a daemon restart starts them again from zero, which
// Prometheus reads as a counter reset.
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace ubdm {

// A counter or gauge with one writing thread.
class StatCounter {
 public:
  void add(std::uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  void sub(std::uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed); }
  void set(std::uint64_t n) { v_.store(n, std::memory_order_relaxed); }
  std::uint64_t get() const { return v_.load(std::memory_order_relaxed); }
  StatCounter& operator++() {
    add();
    return *this;
  }
  StatCounter& operator+=(std::uint64_t n) {
    add(n);
    return *this;
  }
  operator std::uint64_t() const { return get(); }  // NOLINT: reads as the number it counts

 private:
  std::atomic<std::uint64_t> v_{0};
};

// The operations counted, in Op's order (kRead .. kWriteZeroes).
inline constexpr std::size_t kStatOps = 5;
inline constexpr std::array<const char*, kStatOps> kStatOpNames{"read", "write", "flush", "discard", "write_zeroes"};

// Latency buckets: bucket i holds latencies of at most 2^i microseconds
// (bucket 0: up to 1 us), up to 2^24 us (about 16.8 s); one more bucket
// holds the rest. Powers of two make the bucket a bit-width, not a search.
inline constexpr std::size_t kLatencyBounds = 25;
inline constexpr std::size_t kLatencyBuckets = kLatencyBounds + 1;
constexpr std::uint64_t latency_bound_us(std::size_t i) { return std::uint64_t{1} << i; }
constexpr std::size_t latency_bucket(std::uint64_t ns) {
  const std::uint64_t us = (ns + 999) / 1000;  // round up: a bucket is "at most"
  const std::size_t i = us <= 1 ? 0 : static_cast<std::size_t>(std::bit_width(us - 1));
  return i < kLatencyBounds ? i : kLatencyBounds;
}

struct OpIoStats {
  StatCounter started;
  StatCounter completed;
  StatCounter bytes;   // of completed I/Os
  StatCounter errors;  // completed with an error
  StatCounter latency_ns_sum;
  std::array<StatCounter, kLatencyBuckets> latency;
};

// One queue's figures. Aligned so that two queues never share a cache line.
struct alignas(64) QueueStats {
  std::array<OpIoStats, kStatOps> ops;  // originals, by their operation
  StatCounter clones_mapped;
  StatCounter requeues;        // map or end_io asked for a requeue
  StatCounter pushbacks;       // clones parked for a noflush suspend, in all
  StatCounter backend_ios;
  StatCounter waiting_requeue; // gauge: clones waiting out a requeue delay
                               // (multipath: I/O queued while no path is usable)
  StatCounter pushed_back;     // gauge: clones parked now, until a resume
};

// Plain numbers: the queues' figures summed, for readers.
struct OpIoTotals {
  std::uint64_t started = 0;
  std::uint64_t completed = 0;
  std::uint64_t bytes = 0;
  std::uint64_t errors = 0;
  std::uint64_t latency_ns_sum = 0;
  std::array<std::uint64_t, kLatencyBuckets> latency{};
  // I/Os started and not completed. Read from two counters that move
  // independently, so clamp a momentary completed > started to 0.
  std::uint64_t in_flight() const { return started > completed ? started - completed : 0; }
};

struct IoTotals {
  std::array<OpIoTotals, kStatOps> ops{};
  std::uint64_t requeues = 0;
  std::uint64_t pushbacks = 0;
  std::uint64_t waiting_requeue = 0;
  std::uint64_t pushed_back = 0;

  void add(const QueueStats& q);
  // Requests of every operation that the queues were given.
  std::uint64_t started() const {
    std::uint64_t n = 0;
    for (const OpIoTotals& o : ops) {
      n += o.started;
    }
    return n;
  }
};

}  // namespace ubdm
