// SPDX-License-Identifier: MIT
// The control socket against a hostile machine (issue 7 item 7): unsafe
// socket directories are refused, and a client that goes away is seen by a
// verb that waits.
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "control/server.hpp"
#include "control_test_util.hpp"
#include "ubdm/error.hpp"

namespace ubdm::control {
namespace {

using json = nlohmann::json;
using test::TempDir;

const ControlServer::Handler kNothing = [](const json&, const ControlServer::Caller&) { return json(); };

int refusal(const std::string& socket_path) {
  ControlServer::Options o;
  o.socket_path = socket_path;
  try {
    ControlServer server(o, kNothing);
  } catch (const Error& e) {
    return e.code();
  }
  return 0;
}

TEST(ControlSocketDirectoryTest, AWorldWritableDirectoryIsRefused) {
  TempDir dir;
  ASSERT_EQ(::chmod(dir.path().c_str(), 0777), 0);
  EXPECT_EQ(refusal(dir / "control.sock"), EPERM);
  ASSERT_EQ(::chmod(dir.path().c_str(), 0775), 0);
  EXPECT_EQ(refusal(dir / "control.sock"), EPERM) << "group-writable too";
  // Nothing was left behind by the refusals.
  EXPECT_NE(::access((dir / "control.sock").c_str(), F_OK), 0);
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
  EXPECT_EQ(refusal(dir / "control.sock"), 0);
}

TEST(ControlSocketDirectoryTest, AStickyWorldWritableDirectoryIsAccepted) {
  // Like /tmp: others may create files there, but not replace ours.
  TempDir dir;
  ASSERT_EQ(::chmod(dir.path().c_str(), 01777), 0);
  EXPECT_EQ(refusal(dir / "control.sock"), 0);
}

TEST(ControlSocketDirectoryTest, ADirectoryOwnedBySomeoneElseIsRefused) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root to give a directory to another user";
  }
  TempDir dir;
  ASSERT_EQ(::chown(dir.path().c_str(), 65534, 65534), 0);
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
  EXPECT_EQ(refusal(dir / "control.sock"), EPERM);
}

TEST(ControlSocketDirectoryTest, TheModeIsExactWhateverTheUmask) {
  TempDir dir;
  const mode_t old = ::umask(0);
  ControlServer::Options o;
  o.socket_path = dir / "control.sock";
  {
    ControlServer server(o, kNothing);
    struct stat st {};
    ASSERT_EQ(::lstat(o.socket_path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600U);
  }
  ::umask(old);
}

TEST(ControlSocketDirectoryTest, AnAllowedGroupOwnsTheSocketWithMode0660) {
  TempDir dir;
  const mode_t old = ::umask(0077);
  ControlServer::Options o;
  o.socket_path = dir / "control.sock";
  const gid_t group = 4242;  // needs no entry in /etc/group: ownership is by number
  o.allowed_group = group;
  {
    ControlServer server(o, kNothing);
    struct stat st {};
    ASSERT_EQ(::lstat(o.socket_path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0660U);
    if (::geteuid() == 0) {
      EXPECT_EQ(st.st_gid, group) << "the socket's group is set (through its descriptor)";
    }
  }
  ::umask(old);
}

TEST(ControlCallerTest, GoneOnceThePeerClosesOrShutsDownItsEnd) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  const ControlServer::Caller caller{{}, sv[0]};
  EXPECT_FALSE(caller.gone());
  // Unread data from the client is not a hang-up.
  ASSERT_EQ(::write(sv[1], "x", 1), 1);
  EXPECT_FALSE(caller.gone());
  ::shutdown(sv[1], SHUT_WR);
  EXPECT_TRUE(caller.gone());
  ::close(sv[1]);
  EXPECT_TRUE(caller.gone());
  ::close(sv[0]);
  EXPECT_FALSE(ControlServer::Caller{}.gone()) << "no connection: never gone";
}

}  // namespace
}  // namespace ubdm::control
