// SPDX-License-Identifier: MIT
// Microbenchmark: requests per second through dispatch, map and complete on
// one thread with the fake backend, and heap allocations per I/O (counted by
// replacing operator new in this binary). The allocation figure must be 0.
#include <benchmark/benchmark.h>

#include "../tests/alloc/alloc_counter.hpp"
#include "core/inproc_frontend.hpp"
#include "io/fake_backend.hpp"
#include "ubdm/device.hpp"

namespace ubdm {
namespace {

// `timed`: the latency histograms read the clock twice per I/O (the real
// clock here, so that the figure includes what that costs).
void run_bench(benchmark::State& state, const std::string& table, std::uint32_t sectors, Op op,
               bool timed = true) {
  const Clock& clock = system_clock();
  FakeStorage storage;
  storage.add_disk("d0", 1 << 18);
  storage.add_disk("d1", 1 << 18);
  FakeBackend backend;
  const auto depth = static_cast<unsigned>(state.range(0));
  DeviceConfig cfg{1, depth, 4};
  cfg.time_ios = timed;
  MappedDevice dev("bench", cfg, storage, clock);
  dev.load_text(table);
  dev.resume();
  InprocFrontend fe(dev.queue(0), backend, 128 * 1024);
  std::uint64_t completed = 0;
  fe.on_complete = [&](int, int) { ++completed; };
  std::uint64_t next = 0;
  auto fill = [&] {
    for (;;) {
      const sector_t sector = (next * 8) % ((1U << 18) - 256);
      const int tag = fe.submit(op, sector, sectors);
      if (tag < 0) {
        break;
      }
      ++next;
    }
  };
  auto reap = [&] {
    for (unsigned t = 0; t < depth; ++t) {
      if (fe.done(static_cast<int>(t))) {
        fe.release(static_cast<int>(t));
      }
    }
  };
  // Warm up so every container reaches its working size.
  for (int i = 0; i < 1000; ++i) {
    fill();
    fe.run_once(0);
    reap();
  }
  const std::uint64_t alloc_before = alloc_counter::count();
  const std::uint64_t done_before = completed;
  for (auto _ : state) {
    fill();
    fe.run_once(0);
    reap();
  }
  const std::uint64_t ios = completed - done_before;
  const std::uint64_t allocs = alloc_counter::count() - alloc_before;
  state.SetItemsProcessed(static_cast<std::int64_t>(ios));
  state.counters["allocs_per_io"] = ios == 0 ? 0.0 : static_cast<double>(allocs) / static_cast<double>(ios);
  state.counters["heap_allocs"] = static_cast<double>(allocs);
}

void BM_LinearRead4k(benchmark::State& state) { run_bench(state, "0 262144 linear d0 0", 8, Op::kRead); }
void BM_LinearRead4kUntimed(benchmark::State& state) {
  run_bench(state, "0 262144 linear d0 0", 8, Op::kRead, false);
}
void BM_LinearWrite4k(benchmark::State& state) { run_bench(state, "0 262144 linear d0 0", 8, Op::kWrite); }
void BM_Striped64kSplit(benchmark::State& state) {
  run_bench(state, "0 262144 striped 2 16 d0 0 d1 0", 128, Op::kRead);
}
void BM_ZeroTarget4k(benchmark::State& state) { run_bench(state, "0 262144 zero", 8, Op::kRead); }
void BM_ZeroTarget4kUntimed(benchmark::State& state) { run_bench(state, "0 262144 zero", 8, Op::kRead, false); }

BENCHMARK(BM_LinearRead4k)->Arg(1)->Arg(32)->Arg(128);
BENCHMARK(BM_LinearRead4kUntimed)->Arg(1)->Arg(32);
BENCHMARK(BM_LinearWrite4k)->Arg(32);
BENCHMARK(BM_Striped64kSplit)->Arg(32);
BENCHMARK(BM_ZeroTarget4k)->Arg(32);
BENCHMARK(BM_ZeroTarget4kUntimed)->Arg(32);

}  // namespace
}  // namespace ubdm

BENCHMARK_MAIN();
