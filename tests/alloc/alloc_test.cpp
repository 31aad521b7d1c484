// SPDX-License-Identifier: MIT
// The hot path allocates nothing in steady state: after warm-up, thousands of
// requests through dispatch, split, map, requeue and completion must not
// touch the heap. Counting is exact, so this is a deterministic test.
#include <gtest/gtest.h>

#include "alloc_counter.hpp"
#include "core/inproc_frontend.hpp"
#include "io/fake_backend.hpp"
#include "ubdm/device.hpp"

namespace ubdm {
namespace {

struct Rig {
  ManualClock clock;
  FakeStorage storage;
  FakeBackend backend;
  std::unique_ptr<MappedDevice> dev;
  std::unique_ptr<InprocFrontend> fe;

  explicit Rig(const std::string& table) {
    storage.add_disk("d0", 1 << 16);
    storage.add_disk("d1", 1 << 16);
    dev = std::make_unique<MappedDevice>("alloc", DeviceConfig{1, 32, 4}, storage, clock);
    dev->load_text(table);
    dev->resume();
    fe = std::make_unique<InprocFrontend>(dev->queue(0), backend, 64 * 1024);
  }

  // Keep the queue full with a mix of reads, writes and flushes, some of
  // which cross the boundary between the two targets.
  void run(unsigned ios) {
    unsigned submitted = 0;
    unsigned completed = 0;
    unsigned i = 0;
    while (completed < ios) {
      while (submitted < ios) {
        const unsigned kind = i++ % 8;
        const Op op = kind == 7 ? Op::kFlush : (kind % 2 == 0 ? Op::kRead : Op::kWrite);
        const sector_t sector = (i * 64) % 60000;
        const int tag = fe->submit(op, sector, 16);
        if (tag < 0) {
          break;
        }
        ++submitted;
      }
      fe->run_once(0);
      for (unsigned t = 0; t < dev->queue(0).depth(); ++t) {
        if (fe->done(static_cast<int>(t))) {
          ASSERT_EQ(fe->result(static_cast<int>(t)), 0);
          fe->release(static_cast<int>(t));
          ++completed;
        }
      }
    }
  }
};

TEST(HotPathAllocations, SteadyStateLinearSplitAndFlushAllocateNothing) {
  Rig rig("0 30000 linear d0 0\n30000 35000 linear d1 0");
  rig.run(2000);  // warm-up: vectors reach their working capacity
  const std::uint64_t before = alloc_counter::count();
  rig.run(20000);
  const std::uint64_t allocations = alloc_counter::count() - before;
  EXPECT_EQ(allocations, 0U) << allocations << " heap allocations in 20000 I/Os";
}

TEST(HotPathAllocations, CounterSeesAnAllocation) {
  // Proves the counter works, so the test above can fail.
  const std::uint64_t before = alloc_counter::count();
  auto* p = new int(42);
  EXPECT_EQ(alloc_counter::count() - before, 1U);
  delete p;
}

}  // namespace
}  // namespace ubdm
