// SPDX-License-Identifier: MIT
// Requests of 2 GiB and more through the core, on linear and striped tables
// over fake disks too large to hold in memory (unbacked: their DISCARD and
// WRITE_ZEROES are checked against the size and counted). ublk advertises
// discards and write-zeroes of up to UINT32_MAX >> 9 sectors (about 4 GiB),
// so pieces of exactly 2^31 bytes and of nearly 4 GiB reach the backend; no
// length or result may pass through a 32-bit signed type on the way.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "live_device.hpp"
#include "ubdm/error.hpp"

namespace ubdm {
namespace {

using test::LiveDevice;

constexpr sector_t kGiB = (1ULL << 30) >> kSectorShift;  // sectors
constexpr std::uint32_t k2GiB = 1U << (31 - kSectorShift);  // exactly 2^31 bytes, in sectors
// The longest DISCARD / WRITE_ZEROES ublk lets the block layer send us.
constexpr std::uint32_t kMaxDiscard = UINT32_MAX >> kSectorShift;

class LargeIo : public ::testing::TestWithParam<Op>, protected LiveDevice {
 protected:
  int run(sector_t sector, std::uint32_t nr_sectors) {
    return GetParam() == Op::kDiscard ? fe->discard(sector, nr_sectors) : fe->write_zeroes(sector, nr_sectors);
  }
  static std::uint64_t bytes_done(FakeDisk& d) {
    return GetParam() == Op::kDiscard ? d.counters().bytes_discarded : d.counters().bytes_zeroed;
  }
  FakeDisk& disk(const std::string& name) { return storage.disk(name); }
};

TEST_P(LargeIo, LinearPieceOfExactly2GiBSucceeds) {
  storage.add_unbacked_disk("big", 10 * kGiB);
  start("large", "0 " + std::to_string(10 * kGiB) + " linear big 0");
  EXPECT_EQ(run(0, k2GiB), 0);
  EXPECT_EQ(bytes_done(disk("big")), 1ULL << 31);
}

TEST_P(LargeIo, LinearPieceOfNearly4GiBSucceedsInOneBackendIo) {
  storage.add_unbacked_disk("big", 10 * kGiB);
  start("large", "0 " + std::to_string(10 * kGiB) + " linear big 0");
  backend.record(true);
  EXPECT_EQ(run(2 * kGiB, kMaxDiscard), 0);
  EXPECT_EQ(bytes_done(disk("big")), std::uint64_t{kMaxDiscard} << kSectorShift);
  ASSERT_EQ(backend.log().size(), 1U);
  EXPECT_EQ(backend.log()[0].offset, (2 * kGiB) << kSectorShift);
  EXPECT_EQ(backend.log()[0].len, std::uint64_t{kMaxDiscard} << kSectorShift);
}

TEST_P(LargeIo, WholeTenGiBDeviceInMaximalRequests) {
  storage.add_unbacked_disk("big", 10 * kGiB);
  start("large", "0 " + std::to_string(10 * kGiB) + " linear big 0");
  for (sector_t s = 0; s < 10 * kGiB; s += kMaxDiscard) {
    const auto n = static_cast<std::uint32_t>(std::min<sector_t>(kMaxDiscard, 10 * kGiB - s));
    ASSERT_EQ(run(s, n), 0) << "at sector " << s;
  }
  EXPECT_EQ(bytes_done(disk("big")), (10 * kGiB) << kSectorShift);
}

TEST_P(LargeIo, StripedChunkOfExactly2GiBSucceedsOnEachStripe) {
  storage.add_unbacked_disk("s0", 8 * kGiB);
  storage.add_unbacked_disk("s1", 8 * kGiB);
  start("large", "0 " + std::to_string(16 * kGiB) + " striped 2 " + std::to_string(k2GiB) + " s0 0 s1 0");
  // Two whole chunks: one piece of 2^31 bytes on each stripe.
  EXPECT_EQ(run(0, k2GiB), 0);
  EXPECT_EQ(run(k2GiB, k2GiB), 0);
  EXPECT_EQ(bytes_done(disk("s0")), 1ULL << 31);
  EXPECT_EQ(bytes_done(disk("s1")), 1ULL << 31);
  // Nearly 4 GiB across the boundary of chunks 2 and 3.
  EXPECT_EQ(run(4 * kGiB, kMaxDiscard), 0);
  EXPECT_EQ(bytes_done(disk("s0")) + bytes_done(disk("s1")), (4ULL << 30) + (std::uint64_t{kMaxDiscard} << 9));
}

TEST_P(LargeIo, StripedChunkOf4GiBTakesANearly4GiBPieceWhole) {
  storage.add_unbacked_disk("s0", 8 * kGiB);
  storage.add_unbacked_disk("s1", 8 * kGiB);
  start("large", "0 " + std::to_string(16 * kGiB) + " striped 2 " + std::to_string(4 * kGiB) + " s0 0 s1 0");
  EXPECT_EQ(run(4 * kGiB, kMaxDiscard), 0);  // chunk 1: stripe 1
  EXPECT_EQ(bytes_done(disk("s0")), 0U);
  EXPECT_EQ(bytes_done(disk("s1")), std::uint64_t{kMaxDiscard} << kSectorShift);
}

INSTANTIATE_TEST_SUITE_P(Ops, LargeIo, ::testing::Values(Op::kDiscard, Op::kWriteZeroes),
                         [](const ::testing::TestParamInfo<Op>& p) {
                           return p.param == Op::kDiscard ? std::string("Discard") : std::string("WriteZeroes");
                         });

}  // namespace
}  // namespace ubdm
