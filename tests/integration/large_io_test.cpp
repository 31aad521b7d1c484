// SPDX-License-Identifier: MIT
// Devices larger than 4 GiB on real storage: sparse files of 8+ GiB and loop
// devices over them. DISCARD and WRITE_ZEROES of 2 GiB and more go through
// the io_uring backend directly and through the core (linear and striped),
// over the whole device; markers written around 2 GiB, 4 GiB and the end
// show that every byte was reached, and data written beyond 4 GiB reads back.
#include <gtest/gtest.h>

#include <chrono>
#include <climits>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/inproc_frontend.hpp"
#include "host_fixtures.hpp"
#include "io/uring_backend.hpp"
#include "ubdm/device.hpp"
#include "ubdm/error.hpp"

namespace ubdm {
namespace {

using test::Backing;
using namespace std::chrono_literals;

constexpr std::uint64_t kGiB = 1ULL << 30;
constexpr std::uint64_t kDevBytes = 8 * kGiB + (1ULL << 20);
constexpr std::uint32_t kMarker = 4096;
// The longest DISCARD / WRITE_ZEROES request ublk lets the block layer send.
constexpr std::uint32_t kMaxRequestSectors = UINT32_MAX >> kSectorShift;

// Offsets of the 4 KiB markers: both sides of 2 GiB and 4 GiB, and the end.
std::vector<std::uint64_t> marker_offsets(std::uint64_t size) {
  return {0, 2 * kGiB - kMarker, 2 * kGiB, 4 * kGiB - kMarker, 4 * kGiB, 6 * kGiB, size - kMarker};
}

std::vector<std::byte> marker_bytes(std::uint64_t offset) {
  std::vector<std::byte> v(kMarker);
  for (std::size_t i = 0; i < v.size(); ++i) {
    v[i] = static_cast<std::byte>((offset >> 12) * 131 + i * 7 + 1);
  }
  return v;
}

// pwrite through an O_DIRECT descriptor of our own.
void write_marker(const std::string& path, std::uint64_t offset) {
  const std::vector<std::byte> data = marker_bytes(offset);
  void* p = std::aligned_alloc(4096, kMarker);
  ASSERT_NE(p, nullptr);
  std::memcpy(p, data.data(), kMarker);
  const int fd = ::open(path.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);
  ASSERT_GE(fd, 0) << path << ": " << errno_string(errno);
  const ssize_t n = ::pwrite(fd, p, kMarker, static_cast<off_t>(offset));
  ::close(fd);
  std::free(p);
  ASSERT_EQ(n, static_cast<ssize_t>(kMarker)) << "pwrite " << path << " at " << offset;
}

bool is_zero(const std::vector<std::byte>& v) {
  return std::all_of(v.begin(), v.end(), [](std::byte b) { return b == std::byte{0}; });
}

class LargeDevice : public ::testing::TestWithParam<bool> {
 protected:
  Backing& add_backing(std::uint64_t bytes) {
    backings_.push_back(std::make_unique<Backing>(GetParam(), bytes));
    return *backings_.back();
  }
  std::vector<std::unique_ptr<Backing>> backings_;
  std::unique_ptr<DeviceOpener> opener_ = make_system_device_opener();
};

#define REQUIRE_PATH(b)                                   \
  do {                                                    \
    if ((b).path().empty()) {                             \
      GTEST_SKIP() << "no loop device: " << (b).error(); \
    }                                                     \
  } while (0)

int backend_io(UringBackend& backend, const BlockDevice& dev, Op op, std::uint64_t offset, std::uint64_t len) {
  return test::sync_io(backend, dev, op, offset, nullptr, len);
}

TEST_P(LargeDevice, BackendDiscardsAndZeroesPiecesOf2GiBAndMore) {
  Backing& b = add_backing(kDevBytes);
  REQUIRE_PATH(b);
  BlockDevicePtr dev = opener_->open(b.path());
  UringBackend backend;
  ASSERT_EQ(backend.attach(*dev), 0);
  for (const Op op : {Op::kDiscard, Op::kWriteZeroes}) {
    SCOPED_TRACE(std::string(op_name(op)));
    for (std::uint64_t off : marker_offsets(kDevBytes)) {
      write_marker(b.path(), off);
    }
    // Exactly 2^31 bytes (completed as INT_MIN before), nearly 4 GiB (the
    // most ublk sends), and the rest, over 4 GiB, in one request.
    const std::uint64_t near4 = std::uint64_t{kMaxRequestSectors} << kSectorShift;
    EXPECT_EQ(backend_io(backend, *dev, op, 0, 2 * kGiB), 0);
    EXPECT_EQ(backend_io(backend, *dev, op, 2 * kGiB, near4), 0);
    EXPECT_EQ(backend_io(backend, *dev, op, 2 * kGiB + near4, kDevBytes - 2 * kGiB - near4), 0);
    for (std::uint64_t off : marker_offsets(kDevBytes)) {
      EXPECT_TRUE(is_zero(b.read(off, kMarker))) << "marker at " << off << " survived";
    }
  }
  backend.detach(*dev);
}

// The device through the core with a real backend, in requests as long as
// ublk allows.
class CoreRig {
 public:
  CoreRig(DeviceOpener& opener, const std::string& table) : dev_("large", DeviceConfig{1, 8, 4}, opener) {
    dev_.load_text(table);
    dev_.resume();
    fe_ = std::make_unique<InprocFrontend>(dev_.queue(0), backend_, 1U << 20);
  }
  ~CoreRig() { fe_.reset(); }
  CoreRig(const CoreRig&) = delete;
  CoreRig& operator=(const CoreRig&) = delete;

  // The whole device in the longest requests; returns the first error.
  int whole_device(Op op) {
    for (sector_t s = 0; s < dev_.size_sectors(); s += kMaxRequestSectors) {
      const auto n = static_cast<std::uint32_t>(std::min<sector_t>(kMaxRequestSectors, dev_.size_sectors() - s));
      const int r = op == Op::kDiscard ? fe_->discard(s, n) : fe_->write_zeroes(s, n);
      if (r != 0) {
        return r;
      }
    }
    return 0;
  }
  InprocFrontend& fe() { return *fe_; }
  sector_t size() const { return dev_.size_sectors(); }

 private:
  MappedDevice dev_;
  UringBackend backend_;
  std::unique_ptr<InprocFrontend> fe_;
};

TEST_P(LargeDevice, LinearWholeDeviceDiscardAndWriteZeroesAndDataBeyond4GiB) {
  Backing& b = add_backing(kDevBytes);
  REQUIRE_PATH(b);
  CoreRig rig(*opener_, "0 " + std::to_string(kDevBytes >> kSectorShift) + " linear " + b.path() + " 0");
  for (const Op op : {Op::kDiscard, Op::kWriteZeroes}) {
    SCOPED_TRACE(std::string(op_name(op)));
    for (std::uint64_t off : marker_offsets(kDevBytes)) {
      write_marker(b.path(), off);
    }
    EXPECT_EQ(rig.whole_device(op), 0);
    for (std::uint64_t off : marker_offsets(kDevBytes)) {
      EXPECT_TRUE(is_zero(b.read(off, kMarker))) << "marker at " << off << " survived";
    }
  }
  // Data near the end, beyond 4 GiB, goes there and reads back.
  const std::uint64_t off = kDevBytes - 3 * kMarker;
  const std::vector<std::byte> data = marker_bytes(off);
  ASSERT_EQ(rig.fe().write(off >> kSectorShift, kMarker >> kSectorShift, data.data()), 0);
  EXPECT_EQ(b.read(off, kMarker), data);
  std::vector<std::byte> back(kMarker);
  ASSERT_EQ(rig.fe().read(off >> kSectorShift, kMarker >> kSectorShift, back.data()), 0);
  EXPECT_EQ(back, data);
}

TEST_P(LargeDevice, StripedWith2GiBChunksDiscardsAndZeroesTheWholeDevice) {
  // Two stripes of 4 GiB + 2 GiB chunks: every chunk is one piece of exactly
  // 2^31 bytes.
  constexpr std::uint64_t kStripe = 4 * kGiB;
  Backing& s0 = add_backing(kStripe);
  REQUIRE_PATH(s0);
  Backing& s1 = add_backing(kStripe);
  REQUIRE_PATH(s1);
  CoreRig rig(*opener_, "0 " + std::to_string((2 * kStripe) >> kSectorShift) + " striped 2 " +
                            std::to_string((2 * kGiB) >> kSectorShift) + " " + s0.path() + " 0 " + s1.path() +
                            " 0");
  for (const Op op : {Op::kDiscard, Op::kWriteZeroes}) {
    SCOPED_TRACE(std::string(op_name(op)));
    for (const Backing* s : {&s0, &s1}) {
      for (std::uint64_t off : {std::uint64_t{0}, 2 * kGiB - kMarker, 2 * kGiB, kStripe - kMarker}) {
        write_marker(s->path(), off);
      }
    }
    EXPECT_EQ(rig.whole_device(op), 0);
    for (const Backing* s : {&s0, &s1}) {
      for (std::uint64_t off : {std::uint64_t{0}, 2 * kGiB - kMarker, 2 * kGiB, kStripe - kMarker}) {
        EXPECT_TRUE(is_zero(s->read(off, kMarker))) << s->path() << ": marker at " << off << " survived";
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Storage, LargeDevice, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? std::string("Loop") : std::string("File");
                         });

}  // namespace
}  // namespace ubdm
