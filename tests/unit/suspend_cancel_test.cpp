// SPDX-License-Identifier: MIT
// A blocking suspend that waits for I/O gives up when asked (issue 7 item
// 6): the client went away, or a forced remove wants the device.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <vector>

#include "live_device.hpp"
#include "ubdm/error.hpp"

namespace ubdm {
namespace {

using namespace std::chrono_literals;

TEST(SuspendCancelTest, ACancelledSuspendIsUndoneAndTheDeviceServesAgain) {
  test::LiveDevice t;
  t.storage.add_disk("disk0", 1024);
  t.start("d", "0 1024 linear disk0 0");
  t.storage.hold("disk0", true);
  std::vector<std::byte> data(8 * 512, std::byte{0x5a});
  const int tag = t.fe->submit(Op::kWrite, 0, 8, 0, data.data());
  t.pump();
  ASSERT_EQ(t.backend.in_flight(), 1U);

  std::atomic<bool> cancel{false};
  auto suspend = std::async(std::launch::async, [&] {
    try {
      t.dev->suspend(0, std::chrono::hours(24), [&] { return cancel.load(); });
    } catch (const Error& e) {
      return e.code();
    }
    return 0;
  });
  EXPECT_EQ(suspend.wait_for(300ms), std::future_status::timeout) << "waits for the held write";
  cancel = true;
  ASSERT_EQ(suspend.wait_for(10s), std::future_status::ready) << "a cancel must end the wait";
  EXPECT_EQ(suspend.get(), ECANCELED);
  EXPECT_EQ(t.dev->info().state, DeviceState::kActive);

  // The write was never failed by the cancel: it completes once the disk answers.
  t.storage.hold("disk0", false);
  ASSERT_TRUE(t.fe->run_until_done(tag));
  EXPECT_EQ(t.fe->result(tag), 0);
  const int read = t.fe->submit(Op::kRead, 8, 8);
  ASSERT_TRUE(t.fe->run_until_done(read));
  EXPECT_EQ(t.fe->result(read), 0);
}

TEST(SuspendCancelTest, WithoutACancelTheTimeoutStillApplies) {
  test::LiveDevice t;
  t.storage.add_disk("disk0", 1024);
  t.start("d", "0 1024 linear disk0 0");
  t.storage.hold("disk0", true);
  const int tag = t.fe->submit(Op::kRead, 0, 8);
  t.pump();
  try {
    t.dev->suspend(0, 50ms, [] { return false; });
    ADD_FAILURE() << "suspend finished with I/O held";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ETIMEDOUT);
  }
  EXPECT_EQ(t.dev->info().state, DeviceState::kActive);
  t.storage.hold("disk0", false);
  ASSERT_TRUE(t.fe->run_until_done(tag));
}

// As dm-mpath's dm_suspended() check: messages are refused once the device
// IS suspended, not while a suspend is still waiting, so that
// fail_if_no_path can reach a device whose suspend waits for queued I/O.
TEST(SuspendCancelTest, MultipathTakesMessagesWhileASuspendWaitsButNotOnceSuspended) {
  test::LiveDevice t;
  t.storage.add_disk("p0", 1024);
  t.storage.add_disk("p1", 1024);
  t.start("mp", "0 1024 multipath 3 queue_if_no_path path_check_interval 0 0 1 1 round-robin 0 2 1 p0 1 p1 1");
  t.storage.hold("p0", true);
  t.storage.hold("p1", true);
  const int tag = t.fe->submit(Op::kRead, 0, 8);
  t.pump();
  t.dev->begin_suspend(kSuspendNoflush);
  t.pump();
  ASSERT_FALSE(t.dev->suspend_drained());
  EXPECT_NO_THROW(t.dev->message(0, {"fail_if_no_path"})) << "refused while the suspend waits";
  t.storage.hold("p0", false);
  t.storage.hold("p1", false);
  ASSERT_TRUE(t.fe->run_until_done(tag));
  ASSERT_TRUE(t.dev->suspend_drained());
  t.dev->finish_suspend();
  try {
    t.dev->message(0, {"queue_if_no_path"});
    ADD_FAILURE() << "a message was taken by a suspended multipath device";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), EBUSY);
  }
  t.dev->resume();
  EXPECT_NO_THROW(t.dev->message(0, {"queue_if_no_path"}));
}

}  // namespace
}  // namespace ubdm
