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

}  // namespace
}  // namespace ubdm
