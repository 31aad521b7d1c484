// SPDX-License-Identifier: MIT
// The multipath target through the real core with fake paths: table syntax
// and the kernel's normalised TABLE/INFO lines, failover, queueing, the
// suspend rules, messages and no_path_retry. The checker is off in these
// tables (path_check_interval 0) unless a test drives no_path_retry, and
// fake disks are never probed, so nothing here depends on a thread.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <thread>

#include "live_device.hpp"
#include "targets/multipath/multipath.hpp"
#include "ubdm/device.hpp"
#include "ubdm/error.hpp"

namespace ubdm::mpath {
namespace {

constexpr const char* kOff = "path_check_interval 0";

class MultipathTest : public ::testing::Test, protected test::LiveDevice {
 protected:
  MultipathTest() {
    storage.add_disk("d0", 4096);
    storage.add_disk("d1", 4096);
    storage.add_disk("d2", 4096);
  }

  void make(const std::string& params, unsigned queues = 1) {
    start("mp", "0 2048 multipath " + params, DeviceConfig{queues, 16, 4});
  }

  std::string info() { return dev->status_lines(StatusType::kInfo).at(0); }
  std::string table() { return dev->status_lines(StatusType::kTable).at(0); }
  MultipathTarget& target() { return dynamic_cast<MultipathTarget&>(dev->live_table()->target(0)); }
  void msg(std::vector<std::string> words) { dev->message(0, words); }
  std::string build_error(const std::string& params) {
    MappedDevice d("x", DeviceConfig{}, storage, clock);
    try {
      d.load_text("0 2048 multipath " + params);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

};

// --- table and status lines ---------------------------------------------------

TEST_F(MultipathTest, TableLineIsPrintedInTheKernelsNormalisedForm) {
  // queue_mode is accepted and dropped, repeat counts print as 1, the
  // feature count is recomputed.
  make(std::string("5 queue_if_no_path queue_mode rq ") + kOff + " 0 1 1 round-robin 0 2 1 d0 100 d1 1");
  EXPECT_EQ(table(), std::string("0 2048 multipath 3 queue_if_no_path ") + kOff +
                         " 0 1 1 round-robin 0 2 1 d0 1 d1 1 ");
}

TEST_F(MultipathTest, QueueModeBioIsEchoedAsTheNewestKernelDoes) {
  // Before 6.19 the kernel also added retain_attached_hw_handler here.
  make(std::string("4 queue_mode bio ") + kOff + " 0 1 1 round-robin 0 1 0 d0");
  EXPECT_EQ(table(), std::string("0 2048 multipath 4 queue_mode bio ") + kOff +
                         " 0 1 1 round-robin 0 1 1 d0 1 ");
}

TEST_F(MultipathTest, InfoLineBeforeAndAfterTheFirstIo) {
  make(std::string("2 ") + kOff + " 0 1 1 round-robin 0 2 0 d0 d1");
  // No group chosen yet: the initial one is reported, Enabled, QUEUE_IO set.
  EXPECT_EQ(info(), "0 2048 multipath 2 1 0 0 1 1 E 0 2 0 d0 A 0 d1 A 0 ");
  std::vector<std::byte> buf(4096);
  ASSERT_EQ(fe->read(0, 8, buf.data()), 0);
  EXPECT_EQ(info(), "0 2048 multipath 2 0 0 0 1 1 A 0 2 0 d0 A 0 d1 A 0 ");
}

TEST_F(MultipathTest, GroupStateAndQueueIoFollowTheKernelAcrossSwitchGroupAndPathLoss) {
  // dm-mpath: QUEUE_IO is set at construction and cleared when the first
  // I/O switches to a group (__switch_pg) or finds no path; switch_group
  // clears current_pg (every group 'E', the next one reported) and leaves
  // QUEUE_IO alone; failing paths, even all of a group's, never clears
  // current_pg: only an I/O that then chooses does.
  make(std::string("2 ") + kOff + " 0 2 1 round-robin 0 1 0 d0 round-robin 0 1 0 d1");
  EXPECT_EQ(info(), "0 2048 multipath 2 1 0 0 2 1 E 0 1 0 d0 A 0 E 0 1 0 d1 A 0 ") << "fresh";
  std::vector<std::byte> buf(4096);
  ASSERT_EQ(fe->read(0, 8, buf.data()), 0);
  EXPECT_EQ(info(), "0 2048 multipath 2 0 0 0 2 1 A 0 1 0 d0 A 0 E 0 1 0 d1 A 0 ") << "after the first I/O";
  msg({"switch_group", "2"});
  EXPECT_EQ(info(), "0 2048 multipath 2 0 0 0 2 2 E 0 1 0 d0 A 0 E 0 1 0 d1 A 0 ") << "after switch_group 2";
  ASSERT_EQ(fe->read(0, 8, buf.data()), 0);
  EXPECT_EQ(info(), "0 2048 multipath 2 0 0 0 2 2 E 0 1 0 d0 A 0 A 0 1 0 d1 A 0 ") << "after switch_group 2 and I/O";
  msg({"fail_path", "d1"});
  EXPECT_EQ(info(), "0 2048 multipath 2 0 0 0 2 2 E 0 1 0 d0 A 0 A 0 1 0 d1 F 1 ")
      << "a group whose paths all failed stays current until an I/O chooses again";
  msg({"fail_path", "d0"});
  msg({"reinstate_path", "d1"});
  EXPECT_EQ(info(), "0 2048 multipath 2 0 0 0 2 2 E 0 1 0 d0 F 1 A 0 1 0 d1 A 1 ")
      << "failing and reinstating by message does not choose a group";
  msg({"fail_path", "d1"});
  EXPECT_EQ(fe->read(0, 8, buf.data()), -EIO);
  EXPECT_EQ(info(), "0 2048 multipath 2 0 0 0 2 1 E 0 1 0 d0 F 1 E 0 1 0 d1 F 2 ")
      << "an I/O with no path left clears the current group";
}

TEST_F(MultipathTest, PgInitFeaturesAreKeptInKernelOrderAndRetainIsNotEchoed) {
  // retain_attached_hw_handler is accepted and not printed, as from 6.19.
  make(std::string("7 retain_attached_hw_handler pg_init_delay_msecs 0 pg_init_retries 5 ") + kOff +
       " 0 1 1 round-robin 0 1 0 d0");
  EXPECT_EQ(table(), std::string("0 2048 multipath 6 pg_init_retries 5 pg_init_delay_msecs 0 ") + kOff +
                         " 0 1 1 round-robin 0 1 1 d0 1 ");
}

TEST_F(MultipathTest, MalformedTablesAreRefusedWithAPreciseMessage) {
  EXPECT_EQ(build_error("0 1 alua 1 1 round-robin 0 1 0 d0"),
            "table line 1: multipath: hardware handler 'alua' is not supported: ubdm has none (use 0)");
  EXPECT_EQ(build_error("0 0 1 0 round-robin 0 1 0 d0"),
            "table line 1: multipath: invalid initial priority group 0 (there are 1 groups)");
  EXPECT_EQ(build_error("0 0 1 2 round-robin 0 1 0 d0"),
            "table line 1: multipath: invalid initial priority group 2 (there are 1 groups)");
  EXPECT_EQ(build_error("1 frobnicate 0 1 1 round-robin 0 1 0 d0"),
            "table line 1: multipath: unrecognised multipath feature 'frobnicate'");
  EXPECT_EQ(build_error("2 pg_init_retries 51 0 1 1 round-robin 0 1 0 d0"),
            "table line 1: multipath: pg_init_retries must be between 1 and 50, got '51'");
  EXPECT_EQ(build_error("1 pg_init_retries 0 1 1 round-robin 0 1 0 d0"),
            "table line 1: multipath: feature pg_init_retries needs a value");
  EXPECT_EQ(build_error("9 queue_if_no_path"),
            "table line 1: multipath: feature count 9 but only 1 arguments follow");
  EXPECT_EQ(build_error("0 0 2 1 round-robin 0 1 0 d0"),
            "table line 1: multipath: priority group count mismatch: 2 declared, 1 given");
  EXPECT_EQ(build_error("0 0 1 1 round-robin 0 1 0 d0 extra"),
            "table line 1: multipath: 1 unexpected argument(s) after the last priority group, starting with 'extra'");
  EXPECT_EQ(build_error("0 0 1 1 round-robin 0 0 0"),
            "table line 1: multipath: path count '0' out of range: must be between 1 and 1024");
  EXPECT_EQ(build_error("0 0 1 1 round-robin 0 1 0 nosuch"),
            "table line 1: multipath: cannot open nosuch: No such file or directory (group 1, path 1)");
  EXPECT_EQ(build_error("2 no_path_retry 3 0 1 1 round-robin 0 1 0 d0").find(
                "no_path_retry with a count needs the path checker"),
            std::string::npos) << "the default interval (5 s) is a checker";
  EXPECT_NE(build_error("4 no_path_retry 3 path_check_interval 0 0 1 1 round-robin 0 1 0 d0")
                .find("no_path_retry with a count needs the path checker"),
            std::string::npos);
  EXPECT_NE(build_error("0 0 1 1 no-such-selector 0 1 0 d0").find("no-such-selector"), std::string::npos);
}

TEST_F(MultipathTest, MultipathMustBeAloneInItsTableAndCannotBeReplacedByAnotherType) {
  MappedDevice d("x", DeviceConfig{}, storage, clock);
  EXPECT_THROW(d.load_text("0 2048 multipath 0 0 1 1 round-robin 0 1 0 d0\n2048 8 zero"), Error);
  make(std::string("2 ") + kOff + " 0 1 1 round-robin 0 1 0 d0");
  try {
    dev->load_text("0 2048 linear d0 0");
    FAIL() << "an immutable multipath table was replaced by linear";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "can't replace immutable target type multipath with linear");
  }
  dev->load_text("0 2048 error");  // the wildcard is allowed
  EXPECT_TRUE(dev->info().inactive_table);
}

// --- failover ---------------------------------------------------------------------

TEST_F(MultipathTest, PathErrorFailsThePathAndTheIoSucceedsOnAnother) {
  make(std::string("2 ") + kOff + " 0 1 1 round-robin 0 2 0 d0 d1");
  const std::uint64_t events = dev->event_nr();
  storage.inject("d0", FaultRule{op_bit(Op::kWrite), -EIO, -1});
  storage.inject("d1", FaultRule{op_bit(Op::kWrite), -EIO, 0});
  std::vector<std::byte> data(4096, std::byte{0x5a});
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(fe->write(static_cast<sector_t>(i) * 8, 8, data.data()), 0) << "the submitter never sees a path error";
  }
  EXPECT_EQ(info(), "0 2048 multipath 2 0 0 0 1 1 A 0 2 0 d0 F 1 d1 A 0 ");
  EXPECT_EQ(dev->event_nr(), events + 1);
  EXPECT_EQ(storage.disk("d1").data()[0], std::byte{0x5a});
}

// A deleted SCSI path: its size drops to 0 and writes through an fd opened
// before return ENOSPC. Fake disks have no fd to ask, so the tests give the
// target a size probe that reports d0 gone.
void report_d0_gone(MultipathTarget& t) {
  t.set_size_probe([](const BlockDevice& d) -> std::optional<std::uint64_t> {
    return d.path() == "d0" ? 0 : d.size_sectors() * 512;
  });
}

TEST_F(MultipathTest, NoSpaceFromAPathThatNoLongerCoversTheIoIsAPathFailure) {
  make(std::string("2 ") + kOff + " 0 1 1 round-robin 0 2 0 d0 d1");
  report_d0_gone(target());
  storage.inject("d0", FaultRule{op_bit(Op::kWrite), -ENOSPC, -1});
  std::vector<std::byte> data(4096, std::byte{0x6b});
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(fe->write(static_cast<sector_t>(i) * 8, 8, data.data()), 0)
        << "ENOSPC from a vanished path is retried on another path";
  }
  EXPECT_EQ(info(), "0 2048 multipath 2 0 0 0 1 1 A 0 2 0 d0 F 1 d1 A 0 ");
  EXPECT_EQ(storage.disk("d1").data()[0], std::byte{0x6b});
}

TEST_F(MultipathTest, NoSpaceFromAHealthySizedPathStillReachesTheSubmitter) {
  make(std::string("2 ") + kOff + " 0 1 1 round-robin 0 2 0 d0 d1");
  report_d0_gone(target());  // d1 keeps its size
  storage.inject("d1", FaultRule{op_bit(Op::kWrite), -ENOSPC, -1});
  storage.inject("d0", FaultRule{op_bit(Op::kWrite), -EIO, 1});  // the first write goes to d0 and fails it
  std::vector<std::byte> data(4096);
  EXPECT_EQ(fe->write(0, 8, data.data()), -ENOSPC) << "thin pool full: every path would say so";
  EXPECT_EQ(info(), "0 2048 multipath 2 0 0 0 1 1 A 0 2 0 d0 F 1 d1 A 0 ") << "and d1 is not failed";
  // With no size known (no probe), ENOSPC is a target error as before.
  target().set_size_probe([](const BlockDevice&) -> std::optional<std::uint64_t> { return std::nullopt; });
  EXPECT_EQ(fe->write(0, 8, data.data()), -ENOSPC);
}

TEST_F(MultipathTest, CheckerFailsAVanishedPathAndDoesNotReinstateItWhileGone) {
  make("2 path_check_interval 1 0 1 1 round-robin 0 2 0 d0 d1");
  Path& p0 = *target().all_paths().at(0);
  Path& p1 = *target().all_paths().at(1);
  target().checker_result(p1, -ENXIO, false);
  EXPECT_FALSE(target().report().paths[1].active) << "ENXIO from the probe";
  target().checker_result(p0, -ENODEV, false);
  EXPECT_FALSE(target().report().paths[0].active) << "ENODEV from the probe";
  target().checker_result(p0, 0, false);
  target().checker_result(p1, 0, false);
  ASSERT_EQ(target().report().valid_paths, 2U);
  // The device is gone (size 0): a probe that somehow read fine does not
  // keep or bring it back.
  report_d0_gone(target());
  target().checker_result(p0, 0, false);
  EXPECT_FALSE(target().report().paths[0].active);
  EXPECT_EQ(target().report().paths[0].checker, "faulty");
  target().checker_result(p0, 0, false);
  EXPECT_FALSE(target().report().paths[0].active) << "not reinstated while gone";
  EXPECT_TRUE(target().report().paths[1].active);
}

TEST_F(MultipathTest, TargetErrorsGoBackToTheSubmitterAndDoNotFailThePath) {
  make(std::string("2 ") + kOff + " 0 1 1 round-robin 0 2 0 d0 d1");
  storage.inject("d0", FaultRule{op_bit(Op::kWrite), -ENOSPC, 1});
  storage.inject("d1", FaultRule{op_bit(Op::kWrite), -ENOSPC, 1});
  std::vector<std::byte> data(4096);
  EXPECT_EQ(fe->write(0, 8, data.data()), -ENOSPC);
  EXPECT_EQ(info().find(" F "), std::string::npos) << info();
}

TEST_F(MultipathTest, LastPathErrorWithoutQueueingReturnsTheOriginalError) {
  make(std::string("2 ") + kOff + " 0 1 1 round-robin 0 2 0 d0 d1");
  storage.inject("d0", FaultRule{op_bit(Op::kRead), -ETIMEDOUT, -1});
  storage.inject("d1", FaultRule{op_bit(Op::kRead), -ETIMEDOUT, -1});
  std::vector<std::byte> buf(4096);
  EXPECT_EQ(fe->read(0, 8, buf.data()), -ETIMEDOUT);
  EXPECT_EQ(target().report().valid_paths, 0U);
  EXPECT_EQ(fe->read(0, 8, buf.data()), -EIO) << "no path, no queueing: EIO at once";
}

TEST_F(MultipathTest, FailoverMovesToTheNextGroupAndSwitchGroupMovesBack) {
  make(std::string("2 ") + kOff + " 0 2 1 round-robin 0 1 0 d0 round-robin 0 1 0 d1");
  std::vector<std::byte> buf(4096);
  ASSERT_EQ(fe->read(0, 8, buf.data()), 0);
  EXPECT_NE(info().find("2 1 A 0 1 0 d0 A 0 E 0 1 0 d1 A 0"), std::string::npos) << info();
  msg({"fail_path", "d0"});
  ASSERT_EQ(fe->read(0, 8, buf.data()), 0);
  EXPECT_NE(info().find("2 2 E 0 1 0 d0 F 1 A 0 1 0 d1 A 0"), std::string::npos) << info();
  EXPECT_EQ(storage.disk("d1").counters().reads, 1U);
  msg({"reinstate_path", "d0"});
  msg({"switch_group", "1"});
  EXPECT_NE(table().find(" 0 2 1 round-robin"), std::string::npos) << "next group reported: " << table();
  ASSERT_EQ(fe->read(0, 8, buf.data()), 0);
  EXPECT_EQ(storage.disk("d0").counters().reads, 2U);
}

TEST_F(MultipathTest, DisabledGroupIsUsedOnlyWhenNoOtherGroupHasAPath) {
  make(std::string("2 ") + kOff + " 0 2 1 round-robin 0 1 0 d0 round-robin 0 1 0 d1");
  std::vector<std::byte> buf(4096);
  // As in the kernel, a pending initial/switched group is taken even if it
  // was disabled meanwhile; do one I/O so the initial group is consumed.
  ASSERT_EQ(fe->read(0, 8, buf.data()), 0);
  EXPECT_EQ(storage.disk("d0").counters().reads, 1U);
  msg({"disable_group", "1"});
  ASSERT_EQ(fe->read(0, 8, buf.data()), 0);
  EXPECT_EQ(storage.disk("d1").counters().reads, 1U);
  EXPECT_NE(info().find("D 0 1 0 d0 A 0 A 0 1 0 d1"), std::string::npos) << info();
  msg({"fail_path", "d1"});
  ASSERT_EQ(fe->read(0, 8, buf.data()), 0);
  EXPECT_EQ(storage.disk("d0").counters().reads, 2U) << "the bypassed group is the last resort";
  msg({"enable_group", "1"});
  EXPECT_EQ(info().find(" D "), std::string::npos) << info();
}

// --- queueing ---------------------------------------------------------------------

TEST_F(MultipathTest, QueueIfNoPathHoldsIoUntilAPathIsReinstated) {
  make(std::string("3 queue_if_no_path ") + kOff + " 0 1 1 round-robin 0 2 0 d0 d1");
  msg({"fail_path", "d0"});
  msg({"fail_path", "d1"});
  const int tag = fe->submit(Op::kRead, 0, 8);
  for (int i = 0; i < 5; ++i) {
    pump();
    clock.advance_ms(kDelayRequeueMs);
  }
  EXPECT_FALSE(fe->done(tag)) << "queued while no path is left";
  msg({"reinstate_path", "d1"});
  clock.advance_ms(kDelayRequeueMs);
  pump();
  ASSERT_TRUE(fe->done(tag));
  EXPECT_EQ(fe->result(tag), 0);
}

TEST_F(MultipathTest, FailIfNoPathFailsQueuedIo) {
  make(std::string("3 queue_if_no_path ") + kOff + " 0 1 1 round-robin 0 1 0 d0");
  msg({"fail_path", "d0"});
  const int tag = fe->submit(Op::kRead, 0, 8);
  pump();
  EXPECT_FALSE(fe->done(tag));
  msg({"fail_if_no_path"});
  EXPECT_EQ(table().find("queue_if_no_path"), std::string::npos) << "TABLE shows the current setting";
  clock.advance_ms(kDelayRequeueMs);
  pump();
  ASSERT_TRUE(fe->done(tag));
  EXPECT_EQ(fe->result(tag), -EIO);
}

TEST_F(MultipathTest, FlushSuspendFailsQueuedIoAndResumeRestoresQueueing) {
  make(std::string("3 queue_if_no_path ") + kOff + " 0 1 1 round-robin 0 1 0 d0");
  msg({"fail_path", "d0"});
  const int tag = fe->submit(Op::kWrite, 0, 8);
  pump();
  dev->begin_suspend(0);
  pump();
  ASSERT_TRUE(fe->done(tag));
  EXPECT_EQ(fe->result(tag), -EIO) << "a flush suspend turns queueing off for its duration";
  ASSERT_TRUE(dev->suspend_drained());
  dev->finish_suspend();
  dev->resume();
  EXPECT_NE(table().find("queue_if_no_path"), std::string::npos) << "restored at resume: " << table();
}

TEST_F(MultipathTest, NoflushSuspendPushesQueuedIoBackAndANewTableWithAPathCompletesIt) {
  make(std::string("3 queue_if_no_path ") + kOff + " 0 1 1 round-robin 0 1 0 d0");
  msg({"fail_path", "d0"});
  std::vector<std::byte> data(4096, std::byte{0x77});
  const int tag = fe->submit(Op::kWrite, 16, 8, 0, data.data());
  pump();
  dev->begin_suspend(kSuspendNoflush);
  pump();
  EXPECT_FALSE(fe->done(tag));
  EXPECT_EQ(dev->queue(0).pushed_back(), 1U);
  ASSERT_TRUE(dev->suspend_drained());
  dev->finish_suspend();
  dev->load_text(std::string("0 2048 multipath 3 queue_if_no_path ") + kOff + " 0 1 1 round-robin 0 1 0 d2");
  dev->resume();
  pump();
  ASSERT_TRUE(fe->done(tag));
  EXPECT_EQ(fe->result(tag), 0);
  EXPECT_EQ(storage.disk("d2").data()[16 * 512], std::byte{0x77});
}

TEST_F(MultipathTest, NoflushResumeWithoutRecoveryGoesBackToWaitingInTheTarget) {
  make(std::string("3 queue_if_no_path ") + kOff + " 0 1 1 round-robin 0 1 0 d0");
  msg({"fail_path", "d0"});
  const int tag = fe->submit(Op::kRead, 0, 8);
  pump();
  dev->begin_suspend(kSuspendNoflush);
  pump();
  dev->finish_suspend();
  dev->resume();
  for (int i = 0; i < 3; ++i) {
    clock.advance_ms(kDelayRequeueMs);
    pump();
  }
  EXPECT_FALSE(fe->done(tag)) << "still waiting for a path, not failed";
  msg({"reinstate_path", "d0"});
  clock.advance_ms(kDelayRequeueMs);
  pump();
  ASSERT_TRUE(fe->done(tag));
  EXPECT_EQ(fe->result(tag), 0);
}

TEST_F(MultipathTest, NoPathRetryFailsQueuedIoAfterItsIntervalsAndNotBefore) {
  make("4 no_path_retry 3 path_check_interval 1 0 1 1 round-robin 0 1 0 d0");
  msg({"fail_path", "d0"});
  const int tag = fe->submit(Op::kRead, 0, 8);
  for (int ms = 0; ms < 2900; ms += 100) {
    clock.advance_ms(100);
    target().checker_tick();
    pump();
  }
  EXPECT_FALSE(fe->done(tag)) << "failed before 3 intervals";
  EXPECT_GE(target().report().recovery_remaining_ms, 0);
  clock.advance_ms(100);
  target().checker_tick();
  clock.advance_ms(kDelayRequeueMs);
  pump();
  ASSERT_TRUE(fe->done(tag));
  EXPECT_EQ(fe->result(tag), -EIO);
  // A returning path brings queueing back.
  msg({"reinstate_path", "d0"});
  EXPECT_TRUE(target().report().queue_if_no_path);
}

// --- messages ---------------------------------------------------------------------

TEST_F(MultipathTest, MessagesBumpTheEventCounterAndRejectBadInput) {
  make(std::string("2 ") + kOff + " 0 2 1 round-robin 0 1 0 d0 round-robin 0 1 0 d1");
  std::uint64_t ev = dev->event_nr();
  for (const auto& m : std::vector<std::vector<std::string>>{
           {"fail_path", "d0"}, {"reinstate_path", "d0"}, {"disable_group", "2"}, {"enable_group", "2"},
           {"switch_group", "2"}}) {
    msg(m);
    EXPECT_EQ(dev->event_nr(), ev + 1) << m[0];
    ev = dev->event_nr();
  }
  msg({"fail_path", "d0"});
  msg({"fail_path", "d0"});  // already failed: no-op
  EXPECT_EQ(target().report().paths[0].fail_count, 2U) << "cumulative: failed once before, once now";
  auto error = [&](std::vector<std::string> m) {
    try {
      msg(std::move(m));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(error({"switch_group", "3"}), "multipath: invalid priority group '3' (the map has 2)");
  EXPECT_EQ(error({"switch_group", "0"}), "multipath: invalid priority group '0' (the map has 2)");
  EXPECT_EQ(error({"fail_path", "nosuch"}), "multipath: no path nosuch in this map");
  EXPECT_EQ(error({"frob", "1"}), "multipath: unrecognised message 'frob'");
  EXPECT_EQ(error({"queue_if_no_path", "1"}), "multipath: queue_if_no_path takes no argument");
  EXPECT_EQ(error({"fail_path"}), "multipath: unrecognised message 'fail_path' (expected 2 arguments, got 1)");
  dev->begin_suspend(0);
  pump();
  dev->finish_suspend();
  EXPECT_EQ(error({"fail_if_no_path"}), "multipath: messages are refused while the device is suspended");
}

TEST_F(MultipathTest, ReportCountsIoPerPathAcrossQueues) {
  make(std::string("2 ") + kOff + " 0 1 1 round-robin 0 2 0 d0 d1", 2);
  FakeBackend backend1;
  InprocFrontend fe1(dev->queue(1), backend1);
  std::vector<std::byte> buf(4096);
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(fe->read(0, 8, buf.data()), 0);
    ASSERT_EQ(fe1.read(0, 8, buf.data()), 0);
  }
  const MultipathReport r = target().report();
  ASSERT_EQ(r.paths.size(), 2U);
  EXPECT_EQ(r.paths[0].ios + r.paths[1].ios, 20U);
  EXPECT_EQ(r.paths[0].ios, 10U) << "round-robin alternates within each queue";
  EXPECT_EQ(r.paths[0].in_flight, 0U);
  EXPECT_EQ(r.paths[0].checker, "none");
}

TEST(MultipathErrors, OnlyErrorsAnotherPathCouldAvoidArePathErrors) {
  for (int e : {EIO, ETIMEDOUT, ENOLINK, ENODEV, ENXIO, EBADF, EAGAIN}) {
    EXPECT_TRUE(MultipathTarget::is_path_error(-e)) << e;
  }
  for (int e : {0, EOPNOTSUPP, ENOSPC, EREMOTEIO, EBADE, ENODATA, EILSEQ, EINVAL}) {
    EXPECT_FALSE(MultipathTarget::is_path_error(-e)) << e;
  }
}

TEST_F(MultipathTest, ProcessExitWhileTheCheckerRunsTouchesNothingDestroyed) {
  // The process-wide checker thread ticks until ~PathChecker joins it during
  // static destruction, so whatever it reads must outlive the checker. The
  // sanitizer build turns a read of a destroyed object into a non-zero exit.
  // "threadsafe": the child re-executes this test alone, so it owns the only
  // checker thread.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        make("0 0 1 1 round-robin 0 2 1 d0 1 d1 1");  // the default 5 s checker
        std::this_thread::sleep_for(std::chrono::milliseconds(250));  // a couple of ticks
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace ubdm::mpath
