// SPDX-License-Identifier: MIT
// The system device opener claims every block device exclusively (O_EXCL,
// as dm does), one claim per device for the whole process, shared by every
// table that names it; a device someone else holds is refused with EBUSY
// and, where the system tells, who holds it. Over loop devices; skipped
// without losetup.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <filesystem>
#include <string>

#include "host_fixtures.hpp"
#include "ubdm/error.hpp"
#include "ubdm/io.hpp"

namespace ubdm {
namespace {

using test::LoopDevice;
using test::run_command;
using test::TempFile;

constexpr std::uint64_t kBytes = 32ULL << 20;

// An exclusive open from outside the opener: what mkfs, mount or dm would do.
// Returns the fd, or -errno.
int claim(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_EXCL | O_CLOEXEC);
  return fd >= 0 ? fd : -errno;
}

class ExclusiveClaim : public ::testing::Test {
 protected:
  void SetUp() override {
    loop_ = std::make_unique<LoopDevice>(file_.path());
    if (loop_->path().empty()) {
      GTEST_SKIP() << "no loop device: " << loop_->error();
    }
  }
  const std::string& path() const { return loop_->path(); }
  std::string majmin() const {
    struct stat st {};
    EXPECT_EQ(::stat(path().c_str(), &st), 0);
    return std::to_string(major(st.st_rdev)) + ":" + std::to_string(minor(st.st_rdev));
  }

  TempFile file_{kBytes};
  std::unique_ptr<LoopDevice> loop_;
  std::unique_ptr<DeviceOpener> opener_ = make_system_device_opener();
};

TEST_F(ExclusiveClaim, OpenedBlockDeviceCannotBeClaimedFromOutside) {
  BlockDevicePtr dev = opener_->open(path());
  const int fd = claim(path());
  EXPECT_EQ(fd, -EBUSY) << "an outside O_EXCL open of a device ubdm serves must fail";
  if (fd >= 0) {
    ::close(fd);
  }
}

TEST_F(ExclusiveClaim, DeviceHeldByAnotherOpenerIsRefusedWithEbusyAndAClearMessage) {
  const int fd = claim(path());
  ASSERT_GE(fd, 0) << errno_string(-fd);
  try {
    BlockDevicePtr dev = opener_->open(path());
    ADD_FAILURE() << "opened " << path() << " while someone else holds it exclusively";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), EBUSY);
    const std::string what = e.what();
    EXPECT_NE(what.find(path()), std::string::npos) << what;
    EXPECT_NE(what.find("in use"), std::string::npos) << what;
  }
  ::close(fd);
  // Once the other opener let go, the device opens.
  EXPECT_NO_THROW(opener_->open(path()));
}

TEST_F(ExclusiveClaim, MountedDeviceIsRefusedAndTheMessageSaysWhere) {
  std::string out;
  if (run_command("mkfs.ext4 -q -F " + path(), out) != 0) {
    GTEST_SKIP() << "mkfs.ext4: " << out;
  }
  char tmpl[] = "/tmp/ubdm-mnt-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string mnt = tmpl;
  if (run_command("mount " + path() + " " + mnt, out) != 0) {
    ::rmdir(mnt.c_str());
    GTEST_SKIP() << "mount: " << out;
  }
  try {
    opener_->open(path());
    ADD_FAILURE() << "opened a mounted device";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), EBUSY);
    EXPECT_NE(std::string(e.what()).find("mounted on " + mnt), std::string::npos) << e.what();
  }
  run_command("umount " + mnt, out);
  ::rmdir(mnt.c_str());
}

TEST_F(ExclusiveClaim, DeviceMapperHolderIsNamed) {
  if (!std::filesystem::exists("/dev/mapper/control")) {
    GTEST_SKIP() << "no device-mapper on this host";
  }
  std::string out;
  const std::string name = "ubdm-claim-test-" + std::to_string(::getpid());
  if (run_command("dmsetup create " + name + " --table '0 2048 linear " + path() + " 0'", out) != 0) {
    GTEST_SKIP() << "dmsetup create: " << out;
  }
  try {
    opener_->open(path());
    ADD_FAILURE() << "opened a device that dm holds";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), EBUSY);
    EXPECT_NE(std::string(e.what()).find("held by dm-"), std::string::npos) << e.what();
  }
  run_command("dmsetup remove " + name, out);
}

TEST_F(ExclusiveClaim, OpensByPathAndNumberAndFromTwoOpenersShareOneClaim) {
  BlockDevicePtr a = opener_->open(path());
  BlockDevicePtr b = opener_->open(path());
  BlockDevicePtr c = opener_->open(majmin());
  auto other = make_system_device_opener();
  BlockDevicePtr d = other->open(path());
  EXPECT_EQ(a.get(), b.get());
  EXPECT_EQ(a.get(), c.get());
  EXPECT_EQ(a.get(), d.get()) << "one claim per device in the process, whichever opener";
}

TEST_F(ExclusiveClaim, ReleasedDeviceCanBeReopenedAndClaimedFromOutside) {
  BlockDevicePtr dev = opener_->open(path());
  const int fd = dev->fd();
  dev.reset();
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1) << "the claim's fd is closed with the last user";
  const int outside = claim(path());
  EXPECT_GE(outside, 0) << "the claim must go with the device: " << errno_string(-outside);
  if (outside >= 0) {
    ::close(outside);
  }
  BlockDevicePtr again = opener_->open(path());
  EXPECT_EQ(claim(path()), -EBUSY);
}

TEST_F(ExclusiveClaim, ASharedDeviceThatGrewShowsItsNewSizeToTheNextOpen) {
  // A LUN that grows under a live map: the next table to open it (a reload
  // that maps the new space) must see the new size, though the device (and
  // its claim) stays the one the live table holds.
  BlockDevicePtr live = opener_->open(path());
  const sector_t before = live->size_sectors();
  ASSERT_EQ(::truncate(file_.path().c_str(), static_cast<off_t>(2 * kBytes)), 0) << errno_string(errno);
  std::string out;
  ASSERT_EQ(run_command("losetup -c " + path(), out), 0) << out;
  BlockDevicePtr reload = opener_->open(path());
  EXPECT_EQ(reload.get(), live.get()) << "still one claim";
  EXPECT_EQ(reload->size_sectors(), 2 * before);
}

TEST_F(ExclusiveClaim, ASharedFileThatGrewShowsItsNewSizeToTheNextOpen) {
  TempFile f(1 << 20);
  BlockDevicePtr live = opener_->open(f.path());
  EXPECT_EQ(live->size_sectors(), sector_t{2048});
  ASSERT_EQ(::truncate(f.path().c_str(), 4 << 20), 0) << errno_string(errno);
  EXPECT_EQ(opener_->open(f.path())->size_sectors(), sector_t{8192});
}

TEST_F(ExclusiveClaim, RegularFilesAreNotClaimed) {
  TempFile f(1 << 20);
  BlockDevicePtr dev = opener_->open(f.path());
  const int fd = ::open(f.path().c_str(), O_RDWR | O_DIRECT | O_CLOEXEC);
  EXPECT_GE(fd, 0) << errno_string(errno);
  if (fd >= 0) {
    ::close(fd);
  }
  EXPECT_FALSE(dev->is_block_device());
}

}  // namespace
}  // namespace ubdm
