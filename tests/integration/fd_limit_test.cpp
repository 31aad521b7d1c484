// SPDX-License-Identifier: MIT
// The open-file limit (RLIMIT_NOFILE) as a user's process has it: a soft
// limit of 1024 (login shells, systemd's default). The kernel refuses a
// fixed-file table larger than the soft limit, so the rings and the device
// ids must be sized from it.
//
// Each scenario runs in a fresh process (this binary, re-executed with a
// filter): the slot count is read once per process, at the first ring or
// device, and kept for the life of the process (rings already made cannot grow
// their table). A test in this process would see whatever an earlier test
// fixed, and setrlimit here would change the limit for every later test.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "host_fixtures.hpp"
#include "io/uring_backend.hpp"
#include "ubdm/error.hpp"
#include "ubdm/io.hpp"

namespace ubdm {
namespace {

using test::LoopDevice;
using test::TempFile;

constexpr const char* kChildEnv = "UBDM_FD_LIMIT_CHILD";

bool in_child() { return std::getenv(kChildEnv) != nullptr; }

int set_soft_nofile(rlim_t soft) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    return -errno;
  }
  rl.rlim_cur = soft;
  return ::setrlimit(RLIMIT_NOFILE, &rl) == 0 ? 0 : -errno;
}

// The kernel's defaults for RLIMIT_NOFILE (INR_OPEN_CUR, INR_OPEN_MAX): what
// a user's login shell has unless someone raised them.
constexpr rlim_t kUserSoft = 1024;
constexpr rlim_t kUserHard = 4096;

// Runs test `name` of the FdLimitChild suite in a new process with the user's
// limits. Returns its exit status; `out` gets its output. The hard limit
// matters too: liburing, refused a table, raises the soft limit by the table
// size and tries again, which works only below a generous hard limit (so a
// host with a high hard limit would hide the failure). A lowered hard limit
// cannot be raised again, one more reason for a separate process.
int run_child(const std::string& name, std::string& out) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_max < kUserHard) {
    out = "the hard limit is below " + std::to_string(kUserHard);
    return -1;
  }
  const std::string cmd = std::string("env -u GTEST_OUTPUT ") + kChildEnv + "=1 /proc/" +
                          std::to_string(::getpid()) + "/exe --gtest_filter=FdLimitChild." + name +
                          " --gtest_also_run_disabled_tests";
  // The limits are set in the shell that execs the child: it inherits them,
  // and this process keeps its own.
  return test::run_command("sh -c 'ulimit -Sn " + std::to_string(kUserSoft) + " && ulimit -Hn " +
                               std::to_string(kUserHard) + " && exec " + cmd + "'",
                           out);
}

#define RUN_IN_CHILD(name)                                            \
  do {                                                                \
    std::string out;                                                  \
    const int status = run_child(name, out);                          \
    EXPECT_EQ(status, 0) << "child " << name << ":\n" << out;         \
    if (out.find("[  SKIPPED ] 1 test") != std::string::npos) {       \
      GTEST_SKIP() << "the child skipped:\n" << out;                   \
    }                                                                 \
    EXPECT_NE(out.find("[  PASSED  ] 1 test"), std::string::npos) << out; \
  } while (0)

TEST(FdLimit, DefaultRingAndADeviceWorkUnderASoftLimitOf1024) { RUN_IN_CHILD("RingAndDeviceAt1024"); }

TEST(FdLimit, RunningOutOfDeviceIdsNamesTheLimitAndHowToRaiseIt) { RUN_IN_CHILD("IdsExhausted"); }

TEST(FdLimit, RunningOutOfDescriptorsNamesTheLimitAndHowToRaiseIt) { RUN_IN_CHILD("DescriptorsExhausted"); }

// --- the child side ----------------------------------------------------------

#define CHILD_ONLY()                                                         \
  if (!in_child()) {                                                         \
    GTEST_SKIP() << "runs in a child process started by the FdLimit tests"; \
  }

TEST(FdLimitChild, RingAndDeviceAt1024) {
  CHILD_ONLY();
  rlimit rl{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &rl), 0);
  ASSERT_EQ(rl.rlim_cur, kUserSoft);
  ASSERT_EQ(rl.rlim_max, kUserHard);

  UringBackend backend;  // failed with EMFILE: a 4096-slot table over a soft limit of 1024
  TempFile f(16 << 20);
  LoopDevice loop(f.path());
  const std::string path = loop.path().empty() ? f.path() : loop.path();
  auto opener = make_system_device_opener();
  BlockDevicePtr dev = opener->open(path);
  ASSERT_EQ(backend.attach(*dev), 0);

  void* buf = nullptr;
  ASSERT_EQ(::posix_memalign(&buf, 4096, 4096), 0);
  std::memset(buf, 0x5a, 4096);
  const int res = test::sync_io(backend, *dev, Op::kWrite, 8192, static_cast<std::byte*>(buf), 4096);
  EXPECT_EQ(res, 0) << errno_string(-res);
  std::free(buf);
  backend.detach(*dev);
}

TEST(FdLimitChild, IdsExhausted) {
  CHILD_ONLY();
  // The first ring fixes the slot count at the soft limit in force (1024).
  // Raising the limit later gives more descriptors but cannot give the ring
  // a bigger table, so the 1025th device has no id.
  UringBackend backend;
  ASSERT_EQ(set_soft_nofile(kUserHard), 0);
  auto opener = make_system_device_opener();
  std::vector<std::unique_ptr<TempFile>> files;
  std::vector<BlockDevicePtr> devs;
  std::string message;
  int code = 0;
  for (int i = 0; i < 1100 && message.empty(); ++i) {
    files.push_back(std::make_unique<TempFile>(1 << 20));
    try {
      devs.push_back(opener->open(files.back()->path()));
      ASSERT_EQ(backend.attach(*devs.back()), 0) << "device id " << devs.back()->id() << " beyond the table";
    } catch (const Error& e) {
      message = e.what();
      code = e.code();
    }
  }
  ASSERT_FALSE(message.empty()) << "1100 devices opened with a 1024-slot table";
  // The ring's last slot is the frontend's own file (device_id_slots()).
  EXPECT_EQ(devs.size(), 1023U) << message;
  EXPECT_EQ(code, EMFILE);
  EXPECT_NE(message.find("at most 1023"), std::string::npos) << message;
  EXPECT_NE(message.find("ulimit -n"), std::string::npos) << message;
  EXPECT_NE(message.find("LimitNOFILE="), std::string::npos) << message;
  for (const BlockDevicePtr& d : devs) {
    backend.detach(*d);
  }
}

TEST(FdLimitChild, DescriptorsExhausted) {
  CHILD_ONLY();
#ifdef UBDM_SANITIZE
  // With every descriptor taken, UBSan's runtime cannot read what it needs
  // to check a dynamic type and reports a false "invalid vptr" inside fmt;
  // the release build runs this test.
  GTEST_SKIP() << "the sanitizer runtime needs descriptors of its own";
#endif
  UringBackend backend;  // fixes 1024 slots
  std::vector<std::unique_ptr<TempFile>> files;
  for (int i = 0; i < 100; ++i) {
    files.push_back(std::make_unique<TempFile>(1 << 20));
  }
  // Fewer descriptors than slots: open() itself runs out first.
  ASSERT_EQ(set_soft_nofile(64), 0);
  auto opener = make_system_device_opener();
  std::vector<BlockDevicePtr> devs;
  std::string message;
  int code = 0;
  for (std::size_t i = 0; i < files.size() && message.empty(); ++i) {
    try {
      devs.push_back(opener->open(files[i]->path()));
    } catch (const Error& e) {
      message = e.what();
      code = e.code();
    }
  }
  ASSERT_FALSE(message.empty()) << "100 devices opened with a soft limit of 64";
  EXPECT_EQ(code, EMFILE);
  EXPECT_NE(message.find("Too many open files"), std::string::npos) << message;
  EXPECT_NE(message.find("64"), std::string::npos) << message;
  EXPECT_NE(message.find("ulimit -n"), std::string::npos) << message;
  EXPECT_NE(message.find("LimitNOFILE="), std::string::npos) << message;
}

}  // namespace
}  // namespace ubdm
