// SPDX-License-Identifier: MIT
// A block device that goes away under an open descriptor (a SCSI disk
// deleted when its transport gives up): its size drops to 0, writes then
// fail with ENOSPC and reads transfer 0 bytes. The backend must say what
// happened, -ENXIO, so that multipath fails the path and retries elsewhere
// instead of handing "No space left on device" to the application. Played
// here by a loop device whose backing file is truncated and whose capacity
// is then re-read (losetup -c).
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string>

#include "host_fixtures.hpp"
#include "io/uring_backend.hpp"
#include "ubdm/error.hpp"
#include "ubdm/io.hpp"

namespace ubdm {
namespace {

using test::LoopDevice;
using test::run_command;
using test::TempFile;

constexpr std::uint64_t kBytes = 16ULL << 20;

class VanishedDevice : public ::testing::Test {
 protected:
  void SetUp() override {
    loop_ = std::make_unique<LoopDevice>(file_.path());
    if (loop_->path().empty()) {
      GTEST_SKIP() << "no loop device: " << loop_->error();
    }
    dev_ = opener_->open(loop_->path());
    ASSERT_EQ(backend_.attach(*dev_), 0);
    ASSERT_EQ(::posix_memalign(&buf_, 4096, 65536), 0);
    std::memset(buf_, 0x3c, 65536);
  }
  void TearDown() override {
    if (dev_) {
      backend_.detach(*dev_);
    }
    std::free(buf_);
  }

  int io(Op op, std::uint64_t offset, std::uint64_t len) {
    return test::sync_io(backend_, *dev_, op, offset, op_has_data(op) ? static_cast<std::byte*>(buf_) : nullptr,
                         len);
  }

  // The device's size drops to `bytes` under our open descriptor.
  void shrink_to(std::uint64_t bytes) {
    ASSERT_EQ(::truncate(file_.path().c_str(), static_cast<off_t>(bytes)), 0) << errno_string(errno);
    std::string out;
    ASSERT_EQ(run_command("losetup -c " + loop_->path(), out), 0) << out;
  }

  TempFile file_{kBytes};
  std::unique_ptr<LoopDevice> loop_;
  std::unique_ptr<DeviceOpener> opener_ = make_system_device_opener();
  BlockDevicePtr dev_;
  UringBackend backend_;
  void* buf_ = nullptr;
};

TEST_F(VanishedDevice, WriteAndReadOnADeviceThatShrankToZeroFailWithEnxio) {
  ASSERT_EQ(io(Op::kWrite, 1 << 20, 65536), 0);
  ASSERT_EQ(io(Op::kRead, 1 << 20, 65536), 0);
  shrink_to(0);
  EXPECT_EQ(io(Op::kWrite, 1 << 20, 65536), -ENXIO) << "was ENOSPC: the kernel's answer past the end";
  EXPECT_EQ(io(Op::kRead, 1 << 20, 65536), -ENXIO) << "was EIO: a read past the end transfers 0 bytes";
}

TEST_F(VanishedDevice, IoStillInsideAShrunkDeviceWorksAndBeyondItFailsWithEnxio) {
  shrink_to(4 << 20);
  EXPECT_EQ(io(Op::kWrite, 1 << 20, 65536), 0);
  EXPECT_EQ(io(Op::kRead, 1 << 20, 65536), 0);
  EXPECT_EQ(io(Op::kWrite, 8 << 20, 65536), -ENXIO);
  EXPECT_EQ(io(Op::kRead, 8 << 20, 65536), -ENXIO);
}

TEST(VanishedDeviceFile, ReadPastTheEndOfATruncatedFileStaysEio) {
  // A regular file that shrank is not a device that went away: the rule
  // is for block devices only.
  TempFile f(kBytes);
  auto opener = make_system_device_opener();
  BlockDevicePtr dev = opener->open(f.path());
  UringBackend backend;
  ASSERT_EQ(backend.attach(*dev), 0);
  ASSERT_EQ(::truncate(f.path().c_str(), 0), 0);
  void* buf = nullptr;
  ASSERT_EQ(::posix_memalign(&buf, 4096, 4096), 0);
  EXPECT_EQ(test::sync_io(backend, *dev, Op::kRead, 1 << 20, static_cast<std::byte*>(buf), 4096), -EIO);
  std::free(buf);
  backend.detach(*dev);
}

}  // namespace
}  // namespace ubdm
