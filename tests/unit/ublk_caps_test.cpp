// SPDX-License-Identifier: MIT
// FETCH_REQs go out without CAP_SYS_ADMIN (so the kernel does not scan a
// new disk for partitions), and the queue thread gets it back after.
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>

#include "ublk/queue.hpp"

namespace ubdm::ublk {
namespace {

bool sys_admin_effective() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  std::array<__user_cap_data_struct, _LINUX_CAPABILITY_U32S_3> caps{};
  if (::syscall(SYS_capget, &header, caps.data()) != 0) {
    return false;
  }
  return (caps[CAP_SYS_ADMIN / 32].effective & (1U << (CAP_SYS_ADMIN % 32))) != 0;
}

TEST(QueueCapabilities, FetchesAreSentWithoutSysAdminWhichComesBackAfter) {
  if (!sys_admin_effective()) {
    GTEST_SKIP() << "this process has no CAP_SYS_ADMIN to drop";
  }
  bool inside = true;
  EXPECT_EQ(without_sys_admin([&] {
              inside = sys_admin_effective();
              return 7;
            }),
            7);
  EXPECT_FALSE(inside);
  EXPECT_TRUE(sys_admin_effective()) << "restored afterwards";
}

}  // namespace
}  // namespace ubdm::ublk
