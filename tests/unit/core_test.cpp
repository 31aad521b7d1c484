// SPDX-License-Identifier: MIT
// Rules of the request-based mapping core, one test per rule, driven with
// the fake backend and a manual clock so every interleaving is deterministic.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>

#include "live_device.hpp"
#include "probe_target.hpp"

namespace ubdm::test {
namespace {

std::vector<std::byte> pattern(std::size_t bytes, unsigned seed) {
  std::vector<std::byte> v(bytes);
  for (std::size_t i = 0; i < bytes; ++i) {
    v[i] = static_cast<std::byte>((i * 31 + seed * 7 + (i >> 9)) & 0xff);
  }
  return v;
}

bool disk_has(FakeDisk& disk, sector_t sector, const std::vector<std::byte>& data) {
  return std::memcmp(disk.data().data() + (sector << kSectorShift), data.data(), data.size()) == 0;
}

class CoreTest : public ::testing::Test, protected LiveDevice {
 protected:
  void SetUp() override {
    register_probe_target();
    probes().clear();
    storage.add_disk("disk0", 4096);
    storage.add_disk("disk1", 4096);
    storage.add_disk("disk2", 4096);
  }

  void make(const std::string& table, DeviceConfig config = DeviceConfig{1, 16, 4}) {
    start("test", table, config);
  }

  ProbeTarget& probe(std::size_t i) { return *probes().at(i); }
};

// --- completion flow ---------------------------------------------------------

TEST_F(CoreTest, SuccessfulCloneCompletesTheOriginal) {
  make("0 1024 probe disk0 100");
  const auto data = pattern(8 * 512, 1);
  ASSERT_EQ(fe->write(8, 8, data.data()), 0);
  EXPECT_TRUE(disk_has(storage.disk("disk0"), 108, data));
  std::vector<std::byte> back(data.size());
  ASSERT_EQ(fe->read(8, 8, back.data()), 0);
  EXPECT_EQ(back, data);
}

TEST_F(CoreTest, RequeueFromMapMapsTheCloneAgain) {
  make("0 1024 probe disk0 0");
  int calls = 0;
  probe(0).on_map = [&](Clone&) { return ++calls == 1 ? MapResult::kRequeue : MapResult::kRemapped; };
  const auto data = pattern(4096, 2);
  const int tag = fe->submit(Op::kWrite, 0, 8, 0, data.data());
  pump();
  EXPECT_FALSE(fe->done(tag)) << "a map requeue waits for the resource retry delay";
  clock.advance_ms(3);
  pump();
  ASSERT_TRUE(fe->done(tag));
  EXPECT_EQ(fe->result(tag), 0);
  EXPECT_EQ(calls, 2);
  EXPECT_TRUE(disk_has(storage.disk("disk0"), 0, data));
  EXPECT_EQ(dev->queue(0).stats().requeues, 1U);
}

TEST_F(CoreTest, DelayRequeueFromMapWaitsTheRequeueDelay) {
  make("0 1024 probe disk0 0");
  int calls = 0;
  probe(0).on_map = [&](Clone&) { return ++calls == 1 ? MapResult::kDelayRequeue : MapResult::kRemapped; };
  const int tag = fe->submit(Op::kRead, 0, 8);
  pump();
  clock.advance_ms(kDelayRequeueMs - 1);
  pump();
  EXPECT_FALSE(fe->done(tag));
  EXPECT_EQ(calls, 1);
  clock.advance_ms(1);
  pump();
  ASSERT_TRUE(fe->done(tag));
  EXPECT_EQ(fe->result(tag), 0);
  EXPECT_EQ(calls, 2);
}

TEST_F(CoreTest, RequeueFromEndIoRetriesTheClone) {
  make("0 1024 probe disk0 0");
  probe(0).on_end_io = [](Clone&, int err) { return err != 0 ? EndIoResult::kRequeue : EndIoResult::kDone; };
  storage.inject("disk0", FaultRule{op_bit(Op::kWrite), -EIO, 1});
  const auto data = pattern(4096, 3);
  ASSERT_EQ(fe->write(16, 8, data.data()), 0);
  EXPECT_EQ(storage.disk("disk0").counters().failed, 1U);
  EXPECT_EQ(storage.disk("disk0").counters().writes, 1U);
  EXPECT_EQ(probe(0).mapped.size(), 2U);
  EXPECT_TRUE(disk_has(storage.disk("disk0"), 16, data));
}

TEST_F(CoreTest, ErrorIsHeldBackFromTheSubmitterWhileTheTargetRequeues) {
  make("0 1024 probe disk0 0");
  probe(0).on_end_io = [](Clone&, int err) {
    return err != 0 ? EndIoResult::kDelayRequeue : EndIoResult::kDone;
  };
  storage.inject("disk0", FaultRule{op_bit(Op::kRead), -EIO, 2});
  const int tag = fe->submit(Op::kRead, 0, 8);
  pump();
  EXPECT_FALSE(fe->done(tag)) << "the first error must not reach the submitter";
  clock.advance_ms(kDelayRequeueMs);
  pump();
  EXPECT_FALSE(fe->done(tag)) << "nor the second";
  clock.advance_ms(kDelayRequeueMs);
  pump();
  ASSERT_TRUE(fe->done(tag));
  EXPECT_EQ(fe->result(tag), 0);
  EXPECT_EQ(probe(0).end_errors, (std::vector<int>{-EIO, -EIO, 0}));
}

TEST_F(CoreTest, DoneWithAnErrorCompletesTheOriginalWithThatError) {
  make("0 1024 probe disk0 0");
  storage.inject("disk0", FaultRule{op_bit(Op::kWrite), -ENOSPC, 1});
  std::vector<std::byte> data(4096);
  EXPECT_EQ(fe->write(0, 8, data.data()), -ENOSPC);
}

TEST_F(CoreTest, KillFailsTheCloneWithEioWithoutCallingEndIo) {
  make("0 1024 probe disk0 0");
  probe(0).on_map = [](Clone&) { return MapResult::kKill; };
  std::vector<std::byte> data(4096);
  EXPECT_EQ(fe->read(0, 8, data.data()), -EIO);
  EXPECT_TRUE(probe(0).ended.empty());
  EXPECT_EQ(backend.in_flight(), 0U);
}

TEST_F(CoreTest, OriginalIsCompletedExactlyOnce) {
  // Four targets, pieces failing in two of them, requeues in a third.
  make("0 64 probe disk0 0\n64 64 probe disk1 0\n128 64 probe disk2 0\n192 64 probe disk0 1024",
       DeviceConfig{1, 16, 2});
  int requeues = 0;
  probe(2).on_end_io = [&](Clone&, int) { return ++requeues < 3 ? EndIoResult::kRequeue : EndIoResult::kDone; };
  storage.inject("disk1", FaultRule{op_bit(Op::kRead), -EIO, -1});
  storage.inject("disk0", FaultRule{op_bit(Op::kRead), -EIO, 1});
  std::vector<int> tags;
  for (int i = 0; i < 8; ++i) {
    tags.push_back(fe->submit(Op::kRead, 0, 256));
  }
  pump(20);
  for (int t : tags) {
    ASSERT_TRUE(fe->done(t));
    EXPECT_EQ(fe->completions(t), 1U) << "tag " << t;
    EXPECT_EQ(fe->result(t), -EIO);
  }
  EXPECT_EQ(dev->queue(0).active_requests(), 0U);
  EXPECT_EQ(fe->outstanding(), 0U);
}

// --- splitting ---------------------------------------------------------------

TEST_F(CoreTest, RequestCrossingATargetBoundaryIsSplitIntoOneClonePerPiece) {
  make("0 100 probe disk0 0\n100 100 probe disk1 500");
  const auto data = pattern(40 * 512, 4);
  ASSERT_EQ(fe->write(80, 40, data.data()), 0);
  ASSERT_EQ(probe(0).mapped.size(), 1U);
  ASSERT_EQ(probe(1).mapped.size(), 1U);
  EXPECT_EQ(probe(0).mapped[0].sector, 80U);
  EXPECT_EQ(probe(0).mapped[0].nr_sectors, 20U);
  EXPECT_EQ(probe(1).mapped[0].sector, 100U);
  EXPECT_EQ(probe(1).mapped[0].nr_sectors, 20U);
  const std::vector<std::byte> first(data.begin(), data.begin() + 20 * 512);
  const std::vector<std::byte> second(data.begin() + 20 * 512, data.end());
  EXPECT_TRUE(disk_has(storage.disk("disk0"), 80, first));
  EXPECT_TRUE(disk_has(storage.disk("disk1"), 500, second));
}

TEST_F(CoreTest, OriginalCompletesOnlyWhenAllPiecesAreDone) {
  make("0 100 probe disk0 0\n100 100 probe disk1 0");
  storage.hold("disk1", true);
  const int tag = fe->submit(Op::kRead, 90, 20);
  pump();
  EXPECT_EQ(storage.disk("disk0").counters().reads, 1U);
  EXPECT_FALSE(fe->done(tag));
  storage.hold("disk1", false);
  pump();
  ASSERT_TRUE(fe->done(tag));
  EXPECT_EQ(fe->result(tag), 0);
}

TEST_F(CoreTest, RequeuedSecondPieceIsMappedAgainWithoutResubmittingTheFirst) {
  make("0 100 probe disk0 0\n100 100 probe disk1 0");
  probe(1).on_end_io = [](Clone&, int err) { return err != 0 ? EndIoResult::kRequeue : EndIoResult::kDone; };
  storage.inject("disk1", FaultRule{op_bit(Op::kWrite), -EIO, 1});
  const auto data = pattern(40 * 512, 5);
  ASSERT_EQ(fe->write(80, 40, data.data()), 0);
  EXPECT_EQ(storage.disk("disk0").counters().writes, 1U) << "the finished first piece was resubmitted";
  EXPECT_EQ(probe(0).mapped.size(), 1U);
  ASSERT_EQ(probe(1).mapped.size(), 2U);
  EXPECT_EQ(probe(1).mapped[1].sector, 100U);
  EXPECT_EQ(probe(1).mapped[1].nr_sectors, 20U);
  EXPECT_EQ(storage.disk("disk1").counters().writes, 1U);
}

TEST_F(CoreTest, WithOneClonePerTagPiecesRunInTurnAndARequeueRemapsOnlyTheRest) {
  make("0 10 probe disk0 0\n10 10 probe disk1 0\n20 10 probe disk2 0", DeviceConfig{1, 4, 1});
  probe(1).on_end_io = [](Clone&, int err) { return err != 0 ? EndIoResult::kRequeue : EndIoResult::kDone; };
  storage.inject("disk1", FaultRule{op_bit(Op::kWrite), -EIO, 1});
  const auto data = pattern(30 * 512, 6);
  ASSERT_EQ(fe->write(0, 30, data.data()), 0);
  EXPECT_EQ(probe(0).mapped.size(), 1U);
  EXPECT_EQ(probe(1).mapped.size(), 2U);
  EXPECT_EQ(probe(2).mapped.size(), 1U);
  EXPECT_EQ(storage.disk("disk0").counters().writes, 1U);
  EXPECT_EQ(storage.disk("disk2").counters().writes, 1U);
  EXPECT_TRUE(disk_has(storage.disk("disk2"), 0, std::vector<std::byte>(data.begin() + 20 * 512, data.end())));
}

TEST_F(CoreTest, FlushReachesEveryTargetOfTheTable) {
  make("0 100 probe disk0 0\n100 100 probe disk1 0\n200 100 probe disk2 0");
  ASSERT_EQ(fe->flush(), 0);
  EXPECT_EQ(storage.disk("disk0").counters().flushes, 1U);
  EXPECT_EQ(storage.disk("disk1").counters().flushes, 1U);
  EXPECT_EQ(storage.disk("disk2").counters().flushes, 1U);
}

TEST_F(CoreTest, FuaFlagReachesTheBackend) {
  make("0 100 probe disk0 0");
  std::vector<std::byte> data(512);
  ASSERT_EQ(fe->write(0, 1, data.data(), kReqFua), 0);
  EXPECT_EQ(storage.disk("disk0").counters().fua_writes, 1U);
}

TEST_F(CoreTest, DiscardAndWriteZeroesAreMappedLikeData) {
  make("0 100 probe disk0 0\n100 100 probe disk1 0");
  std::fill(storage.disk("disk1").data().begin(), storage.disk("disk1").data().end(), std::byte{0xaa});
  ASSERT_EQ(fe->discard(90, 20), 0);
  ASSERT_EQ(fe->write_zeroes(150, 10), 0);
  EXPECT_EQ(storage.disk("disk0").counters().discards, 1U);
  EXPECT_EQ(storage.disk("disk1").counters().discards, 1U);
  EXPECT_EQ(storage.disk("disk1").counters().write_zeroes, 1U);
  EXPECT_EQ(storage.disk("disk1").data()[50 * 512], std::byte{0});
  EXPECT_EQ(storage.disk("disk1").data()[10 * 512], std::byte{0xaa});
}

// --- busy ----------------------------------------------------------------------

TEST_F(CoreTest, BusyTargetStopsDispatchAndKeepsRequestsQueued) {
  make("0 100 probe disk0 0");
  probe(0).is_busy = true;
  const int a = fe->submit(Op::kRead, 0, 8);
  const int b = fe->submit(Op::kRead, 8, 8);
  pump();
  EXPECT_TRUE(probe(0).mapped.empty());
  EXPECT_FALSE(fe->done(a));
  EXPECT_FALSE(fe->done(b));
  probe(0).is_busy = false;
  clock.advance_ms(3);
  pump();
  EXPECT_TRUE(fe->done(a));
  EXPECT_TRUE(fe->done(b));
  EXPECT_EQ(probe(0).mapped.size(), 2U);
}

// --- tables ----------------------------------------------------------------------

TEST_F(CoreTest, LoadFillsTheInactiveSlotAndResumeSwapsItIn) {
  make("0 100 probe disk0 0");
  EXPECT_EQ(dev->size_sectors(), 100U);
  dev->load_text("0 300 probe disk1 0");
  EXPECT_TRUE(dev->info().inactive_table);
  EXPECT_EQ(dev->size_sectors(), 100U) << "a loaded table does not change the live size";
  dev->begin_suspend(0);
  pump();
  dev->finish_suspend();
  dev->resume();
  EXPECT_EQ(dev->size_sectors(), 300U);
  EXPECT_FALSE(dev->info().inactive_table);
  std::vector<std::byte> data(512, std::byte{7});
  ASSERT_EQ(fe->write(250, 1, data.data()), 0);
  EXPECT_TRUE(disk_has(storage.disk("disk1"), 250, data));
}

TEST_F(CoreTest, ResumeReportsASizeChangeWhileIoIsStillHeld) {
  make("0 100 probe disk0 0");
  dev->begin_suspend(kSuspendNoflush);
  pump();
  dev->finish_suspend();
  const int tag = fe->submit(Op::kRead, 150, 8);  // beyond the old end: held
  dev->load_text("0 300 probe disk1 0");
  std::vector<sector_t> sizes;
  dev->resume(std::chrono::seconds(1), [&](sector_t size) {
    sizes.push_back(size);
    EXPECT_EQ(dev->size_sectors(), 100U) << "the hook runs before the swap";
    EXPECT_FALSE(fe->done(tag)) << "the hook runs while I/O is held";
  });
  EXPECT_EQ(sizes, std::vector<sector_t>{300});
  pump();
  ASSERT_TRUE(fe->done(tag));
  EXPECT_EQ(fe->result(tag), 0) << "held I/O beyond the old end goes to the new, larger table";
}

TEST_F(CoreTest, ResumeWithTheSameSizeReportsNoSizeChange) {
  make("0 100 probe disk0 0");
  dev->load_text("0 100 probe disk1 0");
  dev->begin_suspend(0);
  pump();
  dev->finish_suspend();
  int calls = 0;
  dev->resume(std::chrono::seconds(1), [&](sector_t) { ++calls; });
  EXPECT_EQ(calls, 0);
  dev->begin_suspend(0);
  pump();
  dev->finish_suspend();
  dev->resume(std::chrono::seconds(1), [&](sector_t) { ++calls; });
  EXPECT_EQ(calls, 0) << "a resume without a new table changes no size";
}

TEST_F(CoreTest, AFailingSizeChangeKeepsTheOldTableAndTheDeviceSuspended) {
  make("0 100 probe disk0 0");
  dev->load_text("0 50 probe disk1 0");
  dev->begin_suspend(0);
  pump();
  dev->finish_suspend();
  const TablePtr live = dev->live_table();
  const TablePtr inactive = dev->inactive_table();
  EXPECT_THROW(dev->resume(std::chrono::seconds(1), [](sector_t) { fail(EIO, "the frontend refused"); }), Error);
  EXPECT_EQ(dev->live_table(), live);
  EXPECT_EQ(dev->inactive_table(), inactive);
  EXPECT_EQ(dev->info().state, DeviceState::kSuspended);
  dev->resume(std::chrono::seconds(1), [](sector_t) {});
  EXPECT_EQ(dev->size_sectors(), 50U);
}

TEST_F(CoreTest, FailedLoadLeavesBothSlotsUntouched) {
  make("0 100 probe disk0 0");
  dev->load_text("0 100 probe disk1 0");
  const TablePtr live = dev->live_table();
  const TablePtr inactive = dev->inactive_table();
  EXPECT_THROW(dev->load_text("0 100 probe nosuchdisk 0"), Error);
  EXPECT_THROW(dev->load_text("0 100 probe disk0 0\n150 10 probe disk0 0"), Error);
  EXPECT_EQ(dev->live_table(), live);
  EXPECT_EQ(dev->inactive_table(), inactive);
}

TEST_F(CoreTest, IoBeyondTheEndOfAShrunkTableFailsWithEio) {
  make("0 200 probe disk0 0");
  dev->begin_suspend(kSuspendNoflush);
  pump();
  dev->finish_suspend();
  const int tag = fe->submit(Op::kRead, 150, 8);  // deferred while suspended
  dev->load_text("0 100 probe disk0 0");
  dev->resume();
  pump();
  ASSERT_TRUE(fe->done(tag));
  EXPECT_EQ(fe->result(tag), -EIO);
}

// --- suspend and resume ----------------------------------------------------------

TEST_F(CoreTest, FlushSuspendDispatchesQueuedIoAndWaitsForIt) {
  make("0 100 probe disk0 0");
  probe(0).is_busy = true;  // keep two requests queued in the core
  const int a = fe->submit(Op::kWrite, 0, 8);
  const int b = fe->submit(Op::kWrite, 8, 8);
  pump();
  ASSERT_TRUE(probe(0).mapped.empty());
  dev->begin_suspend(0);
  const int late = fe->submit(Op::kWrite, 16, 8);  // after the suspend point
  EXPECT_FALSE(dev->suspend_drained());
  probe(0).is_busy = false;
  clock.advance_ms(3);
  storage.hold("disk0", true);
  pump();
  EXPECT_EQ(backend.in_flight(), 2U) << "both queued writes dispatched by the flush suspend";
  EXPECT_FALSE(dev->suspend_drained()) << "suspend must wait for in-flight clones";
  storage.hold("disk0", false);
  pump();
  EXPECT_TRUE(fe->done(a));
  EXPECT_TRUE(fe->done(b));
  EXPECT_TRUE(dev->suspend_drained());
  dev->finish_suspend();
  EXPECT_EQ(dev->info().state, DeviceState::kSuspended);
  EXPECT_FALSE(fe->done(late)) << "I/O submitted after the suspend point waits for resume";
  EXPECT_EQ(probe(0).mapped.size(), 2U);
  dev->resume();
  pump();
  EXPECT_TRUE(fe->done(late));
  EXPECT_EQ(fe->result(late), 0);
}

TEST_F(CoreTest, NoflushSuspendStopsDispatchAtOnce) {
  make("0 100 probe disk0 0");
  probe(0).is_busy = true;
  const int a = fe->submit(Op::kRead, 0, 8);
  pump();
  dev->begin_suspend(kSuspendNoflush);
  probe(0).is_busy = false;
  clock.advance_ms(3);
  pump();
  EXPECT_TRUE(probe(0).mapped.empty()) << "a noflush suspend dispatches nothing";
  EXPECT_TRUE(dev->suspend_drained());
  dev->finish_suspend();
  dev->resume();
  pump();
  EXPECT_TRUE(fe->done(a));
  EXPECT_EQ(fe->result(a), 0);
}

TEST_F(CoreTest, NoflushFlagIsSetBeforePresuspendAndClearedBeforeSuspendReturns) {
  make("0 100 probe disk0 0");
  probe(0).hooks.clear();
  EXPECT_FALSE(dev->noflush_suspending());
  dev->begin_suspend(kSuspendNoflush);
  EXPECT_TRUE(dev->noflush_suspending());
  pump();
  dev->finish_suspend();
  EXPECT_FALSE(dev->noflush_suspending());
  EXPECT_EQ(probe(0).hooks, (std::vector<std::string>{"presuspend:noflush", "postsuspend"}));
}

TEST_F(CoreTest, NoflushSuspendKeepsPushedBackIoAndReissuesItAgainstTheNewTable) {
  make("0 100 probe disk0 0");
  // Like multipath with no path left: push back while noflush suspending.
  probe(0).on_end_io = [this](Clone&, int err) {
    return err != 0 && dev->noflush_suspending() ? EndIoResult::kRequeue : EndIoResult::kDone;
  };
  storage.hold("disk0", true);
  const auto data = pattern(8 * 512, 7);
  const int tag = fe->submit(Op::kWrite, 40, 8, 0, data.data());
  pump();
  ASSERT_EQ(backend.in_flight(), 1U);
  dev->begin_suspend(kSuspendNoflush);
  pump();
  EXPECT_FALSE(dev->suspend_drained());
  storage.hold("disk0", false);
  ASSERT_TRUE(backend.complete_one_with(-EIO));  // the path dies under the write
  pump();
  EXPECT_FALSE(fe->done(tag)) << "pushed back, not failed";
  EXPECT_EQ(dev->queue(0).pushed_back(), 1U);
  EXPECT_TRUE(dev->suspend_drained());
  dev->finish_suspend();
  pump();
  EXPECT_EQ(dev->queue(0).pushed_back(), 1U) << "kept until resume";
  dev->load_text("0 100 probe disk1 1000");
  dev->resume();
  pump();
  ASSERT_TRUE(fe->done(tag));
  EXPECT_EQ(fe->result(tag), 0);
  EXPECT_TRUE(disk_has(storage.disk("disk1"), 1040, data)) << "reissued against the new table";
}

TEST_F(CoreTest, InterruptedNoflushSuspendReissuesPushedBackIoAndFailsIoThatHadNotReturned) {
  make("0 100 probe disk0 0\n100 100 probe disk1 0");
  for (ProbeTarget* p : probes()) {
    // Like multipath with queue_if_no_path: every path error asks for a requeue.
    p->on_end_io = [](Clone&, int err) { return err != 0 ? EndIoResult::kRequeue : EndIoResult::kDone; };
  }
  storage.hold("disk0", true);
  storage.hold("disk1", true);
  const int pushed = fe->submit(Op::kWrite, 0, 8);
  const int stuck = fe->submit(Op::kWrite, 100, 8);
  pump();
  ASSERT_EQ(backend.in_flight(), 2U);
  dev->begin_suspend(kSuspendNoflush);
  storage.hold("disk0", false);
  ASSERT_TRUE(backend.complete_one_with(-EIO));  // disk0's write: pushed back
  pump();
  EXPECT_EQ(dev->queue(0).pushed_back(), 1U);
  EXPECT_FALSE(dev->suspend_drained()) << "disk1's write has not returned";

  dev->interrupt_suspend();  // timeout or cancel
  EXPECT_FALSE(dev->noflush_suspending());
  EXPECT_EQ(dev->info().state, DeviceState::kActive);
  pump();
  ASSERT_TRUE(fe->done(pushed)) << "pushed-back I/O is reissued";
  EXPECT_EQ(fe->result(pushed), 0);

  storage.hold("disk1", false);
  ASSERT_TRUE(backend.complete_one_with(-EIO));  // returns after the interruption, asking for a requeue
  pump();
  ASSERT_TRUE(fe->done(stuck));
  EXPECT_EQ(fe->result(stuck), -EIO) << "a requeue can no longer be honoured";
  EXPECT_EQ(probe(0).hooks.back(), "presuspend_undo");
}

TEST_F(CoreTest, ResumeWithoutANewTableReissuesDeferredIoOnTheSameTable) {
  make("0 100 probe disk0 0");
  probe(0).hooks.clear();
  const std::uint64_t events = dev->event_nr();
  dev->begin_suspend(kSuspendNoflush);
  pump();
  dev->finish_suspend();
  const auto data = pattern(512, 8);
  const int tag = fe->submit(Op::kWrite, 3, 1, 0, data.data());
  pump();
  EXPECT_FALSE(fe->done(tag));
  const TablePtr before = dev->live_table();
  dev->resume();
  EXPECT_EQ(dev->live_table(), before);
  pump();
  ASSERT_TRUE(fe->done(tag));
  EXPECT_TRUE(disk_has(storage.disk("disk0"), 3, data));
  EXPECT_EQ(dev->event_nr(), events) << "no table swap, no event";
  EXPECT_EQ(probe(0).hooks, (std::vector<std::string>{"presuspend:noflush", "postsuspend", "preresume", "resume"}));
}

TEST_F(CoreTest, DelayedRequeuesAreParkedWhenANoflushSuspendBegins) {
  make("0 100 probe disk0 0");
  int calls = 0;
  probe(0).on_map = [&](Clone&) { return ++calls == 1 ? MapResult::kDelayRequeue : MapResult::kRemapped; };
  const int tag = fe->submit(Op::kRead, 0, 8);
  pump();
  dev->begin_suspend(kSuspendNoflush);
  pump();
  EXPECT_EQ(dev->queue(0).pushed_back(), 1U);
  EXPECT_TRUE(dev->suspend_drained()) << "a delayed requeue is not in flight";
  dev->finish_suspend();
  dev->resume();
  pump();
  EXPECT_TRUE(fe->done(tag));
}

TEST_F(CoreTest, PushedBackFlushIsReissuedToEveryDeviceOfTheNewTable) {
  make("0 100 probe disk0 0");
  probe(0).on_end_io = [this](Clone&, int err) {
    return err != 0 && dev->noflush_suspending() ? EndIoResult::kRequeue : EndIoResult::kDone;
  };
  storage.hold("disk0", true);
  const int tag = fe->submit(Op::kFlush, 0, 0);
  pump();
  dev->begin_suspend(kSuspendNoflush);
  storage.hold("disk0", false);
  ASSERT_TRUE(backend.complete_one_with(-EIO));
  pump();
  dev->finish_suspend();
  dev->load_text("0 50 probe disk1 0\n50 50 probe disk2 0");
  dev->resume();
  pump();
  ASSERT_TRUE(fe->done(tag));
  EXPECT_EQ(fe->result(tag), 0);
  EXPECT_EQ(storage.disk("disk1").counters().flushes, 1U);
  EXPECT_EQ(storage.disk("disk2").counters().flushes, 1U);
}

TEST_F(CoreTest, SuspendAndResumeRefuseWrongStatesWithoutChangingState) {
  make("0 100 probe disk0 0");
  EXPECT_THROW(dev->resume(), Error) << "resume of an active device with no inactive table";
  EXPECT_EQ(dev->info().state, DeviceState::kActive);
  dev->begin_suspend(0);
  EXPECT_THROW(dev->begin_suspend(0), Error) << "suspend while suspending";
  pump();
  dev->finish_suspend();
  try {
    dev->begin_suspend(0);
    FAIL() << "suspend twice must fail";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), EBUSY);
    EXPECT_STREQ(e.what(), "device is already suspended");
  }
  EXPECT_EQ(dev->info().state, DeviceState::kSuspended);
}

TEST_F(CoreTest, PreresumeFailureKeepsTheDeviceSuspendedWithItsTables) {
  make("0 100 probe disk0 0");
  dev->load_text("0 100 probe disk1 0");
  probe(1).preresume_result = -ENODEV;
  dev->begin_suspend(0);
  pump();
  dev->finish_suspend();
  EXPECT_THROW(dev->resume(), Error);
  EXPECT_EQ(dev->info().state, DeviceState::kSuspended);
  EXPECT_TRUE(dev->info().inactive_table);
  EXPECT_EQ(&dev->live_table()->target(0), probes()[0]);
}

TEST_F(CoreTest, BlockingSuspendTimesOutAndLeavesTheDeviceActive) {
  make("0 100 probe disk0 0");
  storage.hold("disk0", true);
  const int tag = fe->submit(Op::kRead, 0, 8);
  pump();
  try {
    dev->suspend(kSuspendNoflush, std::chrono::milliseconds(20));
    FAIL() << "suspend must time out";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ETIMEDOUT);
  }
  EXPECT_EQ(dev->info().state, DeviceState::kActive);
  storage.hold("disk0", false);
  pump();
  EXPECT_TRUE(fe->done(tag));
  EXPECT_EQ(fe->result(tag), 0);
}

TEST_F(CoreTest, SuspendWaitsForEveryBoundQueue) {
  dev = std::make_unique<MappedDevice>("test", DeviceConfig{2, 8, 2}, storage, clock);
  dev->load_text("0 100 probe disk0 0");
  dev->resume();
  FakeBackend backend1;
  InprocFrontend fe0(dev->queue(0), backend);
  InprocFrontend fe1(dev->queue(1), backend1);
  storage.hold("disk0", true);
  const int tag = fe1.submit(Op::kRead, 0, 8);
  fe1.run_once(0);
  dev->begin_suspend(0);
  fe0.run_once(0);
  fe1.run_once(0);
  EXPECT_FALSE(dev->suspend_drained()) << "queue 1 still has I/O in flight";
  storage.hold("disk0", false);
  fe1.run_once(0);
  fe1.run_once(0);
  EXPECT_TRUE(fe1.done(tag));
  EXPECT_TRUE(dev->suspend_drained());
  dev->finish_suspend();
}

// --- events ----------------------------------------------------------------------

TEST_F(CoreTest, EventCounterMovesOnTableSwapAndTargetEvents) {
  make("0 100 probe disk0 0");
  const std::uint64_t after_first = dev->event_nr();
  EXPECT_EQ(after_first, 1U) << "the first table swap";
  EXPECT_EQ(dev->message(0, {"event"}), "ok");
  EXPECT_EQ(dev->event_nr(), after_first + 1);
  EXPECT_EQ(dev->wait_event(after_first, std::chrono::milliseconds(0)), after_first + 1);
  dev->load_text("0 100 probe disk1 0");
  EXPECT_EQ(dev->event_nr(), after_first + 1) << "load alone is not an event";
  dev->begin_suspend(0);
  pump();
  dev->finish_suspend();
  dev->resume();
  EXPECT_EQ(dev->event_nr(), after_first + 2);
}

TEST_F(CoreTest, WaitEventReturnsWhenAnotherThreadTriggersAnEvent) {
  make("0 100 probe disk0 0");
  const std::uint64_t seen = dev->event_nr();
  std::thread t([this] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    dev->trigger_event();
  });
  EXPECT_EQ(dev->wait_event(seen, std::chrono::seconds(10)), seen + 1);
  t.join();
}

// --- status --------------------------------------------------------------------

TEST_F(CoreTest, StatusAndTableLinesHaveDmsetupLayout) {
  make("0 100 probe disk0 0\n100 28 error");
  const auto table = dev->status_lines(StatusType::kTable);
  ASSERT_EQ(table.size(), 2U);
  EXPECT_EQ(table[0], "0 100 probe disk0 0");
  EXPECT_EQ(table[1], "100 28 error ");
}

}  // namespace
}  // namespace ubdm::test
