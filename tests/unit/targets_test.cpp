// SPDX-License-Identifier: MIT
// The built-in targets (linear, striped, error, zero, delay, flakey):
// constructor validation and status strings through Table::build, and
// behaviour through the real core (MappedDevice + DispatchQueue) driven by the
// in-process frontend over fake disks, with a manual clock for time.
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "live_device.hpp"
#include "ubdm/device.hpp"
#include "ubdm/error.hpp"
#include "ubdm/table.hpp"
#include "ubdm/target.hpp"

namespace ubdm {
namespace {

constexpr sector_t kDiskSectors = 4096;  // 2 MiB per fake disk
constexpr sector_t kSmallSectors = 64;   // the disk named "small"
constexpr std::uint32_t kFrontendMaxIo = 256 * 1024;

// DeviceContext for tables built without a MappedDevice.
class StubDevice final : public DeviceContext {
 public:
  std::string device_name() const override { return name_; }
  bool noflush_suspending() const override { return false; }
  bool suspending() const override { return false; }
  bool suspended() const override { return false; }
  void trigger_event() override { ++events; }
  unsigned events = 0;

 private:
  std::string name_ = "stub";
};

// `sectors` worth of bytes in which every 4-byte word is distinct (the seed in
// the top byte, the word index below), so misplaced data cannot go unnoticed.
std::vector<std::byte> pattern(std::size_t sectors, std::uint32_t seed) {
  std::vector<std::byte> v(sectors * kSectorSize);
  for (std::size_t i = 0; i < v.size(); i += 4) {
    const std::uint32_t word = (seed << 24) | static_cast<std::uint32_t>(i / 4);
    std::memcpy(v.data() + i, &word, sizeof(word));
  }
  return v;
}

::testing::AssertionResult same_bytes(const std::byte* actual, const std::byte* expected, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    if (actual[i] != expected[i]) {
      return ::testing::AssertionFailure()
             << "first difference at byte " << i << " (sector " << i / kSectorSize << "): got "
             << std::to_integer<int>(actual[i]) << ", expected " << std::to_integer<int>(expected[i]);
    }
  }
  return ::testing::AssertionSuccess();
}

std::size_t count_differences(const std::byte* a, const std::byte* b, std::size_t n) {
  std::size_t d = 0;
  for (std::size_t i = 0; i < n; ++i) {
    d += a[i] != b[i] ? 1 : 0;
  }
  return d;
}

bool all_zero(const std::byte* p, std::size_t n) {
  return std::all_of(p, p + n, [](std::byte b) { return b == std::byte{0}; });
}

class TargetTestBase : public ::testing::Test, protected test::LiveDevice {
 protected:
  TargetTestBase() {
    storage.add_disk("disk0", kDiskSectors);
    storage.add_disk("disk1", kDiskSectors);
    storage.add_disk("disk2", kDiskSectors);
    storage.add_disk("small", kSmallSectors);
  }

  // --- control plane: tables built directly, no device ---

  std::unique_ptr<Table> build(std::string_view text) {
    return Table::build(parse_table_text(text), storage, ctx_, clock);
  }

  // Building `text` fails with an ubdm::Error carrying `code` and a message containing `needle`.
  ::testing::AssertionResult rejects(std::string_view text, std::string_view needle, int code = EINVAL) {
    try {
      build(text);
    } catch (const Error& e) {
      const std::string what = e.what();
      if (what.find(needle) == std::string::npos) {
        return ::testing::AssertionFailure() << "\"" << text << "\" failed with \"" << what
                                             << "\", which does not mention \"" << needle << "\"";
      }
      if (e.code() != code) {
        return ::testing::AssertionFailure() << "\"" << text << "\" failed with errno " << e.code()
                                             << ", expected " << code << " (" << what << ")";
      }
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "\"" << text << "\" was accepted";
  }

  std::string status_of(std::string_view text, StatusType type) {
    return build(text)->target(0).status(type);
  }

  using DeviceRange = std::tuple<std::string, sector_t, sector_t>;
  std::vector<DeviceRange> devices_of(std::string_view text) {
    const std::unique_ptr<Table> table = build(text);
    std::vector<DeviceRange> out;
    table->target(0).iterate_devices([&](const BlockDevice& bd, sector_t first, sector_t len) {
      out.emplace_back(bd.path(), first, len);
    });
    return out;
  }

  // --- data path: a live device driven through the in-process frontend ---

  void start(std::string_view text) { LiveDevice::start("t", text, DeviceConfig{1, 16, 4}, kFrontendMaxIo); }

  Target& live_target(std::size_t i = 0) { return dev->live_table()->target(i); }
  std::string info() { return live_target().status(StatusType::kInfo); }
  void run(int rounds = 3) { pump(rounds); }

  std::byte* disk(const std::string& name, sector_t sector) {
    return storage.disk(name).data().data() + (sector << kSectorShift);
  }
  FakeDiskCounters& counters(const std::string& name) { return storage.disk(name).counters(); }
  std::uint32_t id_of(const std::string& name) { return storage.disk(name).id(); }
  void fill_disk(const std::string& name, sector_t sector, const std::vector<std::byte>& data) {
    std::memcpy(disk(name, sector), data.data(), data.size());
  }

  StubDevice ctx_;
};

class TargetRegistry : public TargetTestBase {};
class LinearTarget : public TargetTestBase {};
class StripedTarget : public TargetTestBase {};
class ErrorTarget : public TargetTestBase {};
class ZeroTarget : public TargetTestBase {};
class DelayTarget : public TargetTestBase {};
class FlakeyTarget : public TargetTestBase {};

// ===========================================================================
// Registry

TEST_F(TargetRegistry, ListsTheSixBuiltInTargets) {
  for (const char* name : {"linear", "striped", "error", "zero", "delay", "flakey"}) {
    const TargetType* type = find_target_type(name);
    ASSERT_NE(type, nullptr) << name;
    EXPECT_EQ(type->name, name);
    EXPECT_FALSE(type->singleton) << name;
  }
  EXPECT_EQ(find_target_type("mirror"), nullptr);
}

// ===========================================================================
// linear

TEST_F(LinearTarget, RejectsWrongArgumentCount) {
  EXPECT_TRUE(rejects("0 8 linear", "linear: expected 2 arguments (<dev> <offset>), got 0"));
  EXPECT_TRUE(rejects("0 8 linear disk0", "linear: expected 2 arguments (<dev> <offset>), got 1"));
  EXPECT_TRUE(rejects("0 8 linear disk0 0 0", "linear: expected 2 arguments (<dev> <offset>), got 3"));
}

TEST_F(LinearTarget, RejectsOffsetThatIsNotAnUnsignedNumber) {
  EXPECT_TRUE(rejects("0 8 linear disk0 abc", "invalid offset 'abc'"));
  EXPECT_TRUE(rejects("0 8 linear disk0 -8", "invalid offset '-8'"));
  EXPECT_TRUE(rejects("0 8 linear disk0 +8", "invalid offset '+8'"));
  EXPECT_TRUE(rejects("0 8 linear disk0 8s", "invalid offset '8s'"));
  EXPECT_TRUE(
      rejects("0 8 linear disk0 99999999999999999999999", "invalid offset '99999999999999999999999'"));
}

TEST_F(LinearTarget, RejectsMissingDeviceWithEnoent) {
  EXPECT_TRUE(rejects("0 8 linear nodisk 0", "nodisk", ENOENT));
}

TEST_F(LinearTarget, RejectsRangeBeyondTheEndOfTheDevice) {
  EXPECT_TRUE(rejects("0 65 linear small 0", "device small too small"));
  EXPECT_TRUE(rejects("0 8 linear small 57", "device small too small"));
  EXPECT_TRUE(rejects("0 8 linear small 18446744073709551615", "device small too small"));
  EXPECT_NO_THROW(build("0 8 linear small 56"));
}

TEST_F(LinearTarget, ReportsEmptyInfoAndDeviceWithOffsetAsTable) {
  EXPECT_EQ(status_of("0 64 linear disk1 16", StatusType::kInfo), "");
  EXPECT_EQ(status_of("0 64 linear disk1 16", StatusType::kTable), "disk1 16");
}

TEST_F(LinearTarget, ReportsItsDeviceRange) {
  EXPECT_EQ(devices_of("0 64 linear disk1 16"), (std::vector<DeviceRange>{{"disk1", 16, 64}}));
}

TEST_F(LinearTarget, MapsSectorsOntoTheDeviceAfterTheOffset) {
  start("0 1024 linear disk0 16");
  const auto data = pattern(8, 1);
  ASSERT_EQ(fe->write(4, 8, data.data()), 0);
  EXPECT_TRUE(same_bytes(disk("disk0", 20), data.data(), data.size()));
  EXPECT_TRUE(all_zero(disk("disk0", 0), 20 * kSectorSize));
  std::vector<std::byte> back(data.size());
  ASSERT_EQ(fe->read(4, 8, back.data()), 0);
  EXPECT_TRUE(same_bytes(back.data(), data.data(), data.size()));
}

TEST_F(LinearTarget, SecondTargetMapsRelativeToItsOwnStart) {
  start("0 512 linear disk0 0\n512 512 linear disk1 100");
  const auto data = pattern(8, 2);
  ASSERT_EQ(fe->write(508, 8, data.data()), 0);
  // Four sectors end the first target, four start the second.
  EXPECT_TRUE(same_bytes(disk("disk0", 508), data.data(), 4 * kSectorSize));
  EXPECT_TRUE(same_bytes(disk("disk1", 100), data.data() + 4 * kSectorSize, 4 * kSectorSize));
}

TEST_F(LinearTarget, PassesFlushAndDiscardToTheDevice) {
  start("0 1024 linear disk0 16");
  fill_disk("disk0", 16, pattern(32, 3));
  ASSERT_EQ(fe->flush(), 0);
  EXPECT_EQ(counters("disk0").flushes, 1U);
  ASSERT_EQ(fe->discard(8, 8), 0);
  EXPECT_EQ(counters("disk0").discards, 1U);
  EXPECT_TRUE(all_zero(disk("disk0", 24), 8 * kSectorSize));
  EXPECT_FALSE(all_zero(disk("disk0", 16), 8 * kSectorSize));
}

// ===========================================================================
// striped

TEST_F(StripedTarget, RejectsFewerThanTwoArguments) {
  EXPECT_TRUE(rejects("0 16 striped", "striped: expected at least 2 arguments"));
  EXPECT_TRUE(rejects("0 16 striped 2", "striped: expected at least 2 arguments"));
}

TEST_F(StripedTarget, RejectsStripeCountThatIsZeroOrNotANumber) {
  EXPECT_TRUE(rejects("0 16 striped 0 8", "number of stripes '0' out of range"));
  EXPECT_TRUE(rejects("0 16 striped two 8 disk0 0 disk1 0", "invalid number of stripes 'two'"));
  EXPECT_TRUE(rejects("0 16 striped -2 8 disk0 0 disk1 0", "invalid number of stripes '-2'"));
  EXPECT_TRUE(rejects("0 16 striped 4294967296 8 disk0 0", "number of stripes '4294967296' out of range"));
}

TEST_F(StripedTarget, RejectsChunkSmallerThan4KiB) {
  EXPECT_TRUE(rejects("0 16 striped 2 0 disk0 0 disk1 0", "chunk size '0' out of range"));
  EXPECT_TRUE(rejects("0 16 striped 2 4 disk0 0 disk1 0", "chunk size '4' out of range"));
  EXPECT_TRUE(rejects("0 16 striped 2 x disk0 0 disk1 0", "invalid chunk size 'x'"));
}

TEST_F(StripedTarget, RejectsChunkThatIsNotAMultipleOf8Sectors) {
  EXPECT_TRUE(rejects("0 48 striped 2 12 disk0 0 disk1 0", "invalid chunk size 12: must be a multiple of 8"));
}

TEST_F(StripedTarget, RejectsDeviceArgumentsThatDoNotMatchTheStripeCount) {
  EXPECT_TRUE(rejects("0 16 striped 2 8 disk0 0", "2 stripes need 4 device arguments"));
  EXPECT_TRUE(rejects("0 16 striped 2 8 disk0 0 disk1", "got 3"));
  EXPECT_TRUE(rejects("0 16 striped 1 8 disk0 0 disk1 0", "1 stripe needs 2 device arguments"));
}

TEST_F(StripedTarget, RejectsLengthNotDivisibleByTheStripeCount) {
  EXPECT_TRUE(
      rejects("0 25 striped 2 8 disk0 0 disk1 0", "target length 25 not divisible by number of stripes 2"));
}

TEST_F(StripedTarget, RejectsLengthNotAMultipleOfChunkTimesStripes) {
  EXPECT_TRUE(
      rejects("0 48 striped 2 16 disk0 0 disk1 0", "target length 48 not divisible by chunk size 16"));
  EXPECT_TRUE(rejects("0 24 striped 3 16 disk0 0 disk1 0 disk2 0", "not divisible by chunk size 16"));
  EXPECT_NO_THROW(build("0 96 striped 3 16 disk0 0 disk1 0 disk2 0"));
}

TEST_F(StripedTarget, RejectsStripeOffsetThatIsNotAnUnsignedNumber) {
  EXPECT_TRUE(rejects("0 16 striped 2 8 disk0 0 disk1 x", "invalid offset of stripe 1 'x'"));
  EXPECT_TRUE(rejects("0 16 striped 2 8 disk0 -1 disk1 0", "invalid offset of stripe 0 '-1'"));
}

TEST_F(StripedTarget, RejectsMissingStripeDevice) {
  EXPECT_TRUE(rejects("0 16 striped 2 8 disk0 0 nodisk 0", "nodisk", ENOENT));
}

TEST_F(StripedTarget, RejectsStripeDeviceTooSmallForItsShare) {
  // Each stripe holds len / #stripes = 128 sectors; "small" has 64.
  EXPECT_TRUE(rejects("0 256 striped 2 8 disk0 0 small 0", "device small too small"));
  // 64 sectors per stripe fit "small" only at offset 0.
  EXPECT_TRUE(rejects("0 128 striped 2 8 disk0 0 small 8", "device small too small"));
  EXPECT_NO_THROW(build("0 128 striped 2 8 disk0 0 small 0"));
}

TEST_F(StripedTarget, InfoListsStripeCountDevicesAndOneAliveFlagPerStripe) {
  EXPECT_EQ(status_of("0 64 striped 2 8 disk0 0 disk1 8", StatusType::kInfo), "2 disk0 disk1 1 AA");
  EXPECT_EQ(status_of("0 48 striped 1 8 disk2 0", StatusType::kInfo), "1 disk2 1 A");
}

TEST_F(StripedTarget, TableEchoesStripeCountChunkAndEachDeviceOffset) {
  EXPECT_EQ(status_of("0 144 striped 3 16 disk0 0 disk1 32 disk2 8", StatusType::kTable),
            "3 16 disk0 0 disk1 32 disk2 8");
}

TEST_F(StripedTarget, ReportsEachStripeDeviceWithItsShareOfTheLength) {
  EXPECT_EQ(devices_of("0 96 striped 3 8 disk0 0 disk1 32 disk2 8"),
            (std::vector<DeviceRange>{{"disk0", 0, 32}, {"disk1", 32, 32}, {"disk2", 8, 32}}));
}

TEST_F(StripedTarget, PlacesChunksRoundRobinAcrossStripes) {
  start("0 64 striped 2 8 disk0 0 disk1 16");
  const auto data = pattern(64, 4);
  ASSERT_EQ(fe->write(0, 64, data.data()), 0);
  // Chunk k (8 sectors) goes to stripe k % 2, at that stripe's chunk k / 2.
  for (sector_t k = 0; k < 8; ++k) {
    const std::string name = k % 2 == 0 ? "disk0" : "disk1";
    const sector_t base = k % 2 == 0 ? 0 : 16;
    EXPECT_TRUE(same_bytes(disk(name, base + (k / 2) * 8), data.data() + k * 8 * kSectorSize, 8 * kSectorSize))
        << "chunk " << k;
  }
  EXPECT_TRUE(all_zero(disk("disk1", 0), 16 * kSectorSize));  // below stripe 1's offset
  std::vector<std::byte> back(data.size());
  ASSERT_EQ(fe->read(0, 64, back.data()), 0);
  EXPECT_TRUE(same_bytes(back.data(), data.data(), data.size()));
}

TEST_F(StripedTarget, PlacesChunksWithNonPowerOfTwoChunkAndStripeCount) {
  start("0 144 striped 3 24 disk0 0 disk1 8 disk2 16");
  const auto data = pattern(144, 5);
  ASSERT_EQ(fe->write(0, 144, data.data()), 0);
  const char* devs[] = {"disk0", "disk1", "disk2"};
  const sector_t offs[] = {0, 8, 16};
  for (sector_t k = 0; k < 6; ++k) {
    EXPECT_TRUE(same_bytes(disk(devs[k % 3], offs[k % 3] + (k / 3) * 24), data.data() + k * 24 * kSectorSize,
                           24 * kSectorSize))
        << "chunk " << k;
  }
  // A read starting mid-chunk and crossing three chunks comes back in order.
  std::vector<std::byte> back(40 * kSectorSize);
  ASSERT_EQ(fe->read(10, 40, back.data()), 0);
  EXPECT_TRUE(same_bytes(back.data(), data.data() + 10 * kSectorSize, back.size()));
}

TEST_F(StripedTarget, SplitsRequestsAtChunkBoundaries) {
  start("0 64 striped 2 8 disk0 0 disk1 16");
  backend.record(true);
  const auto data = pattern(16, 6);
  ASSERT_EQ(fe->write(4, 16, data.data()), 0);
  // Sectors 4..19: the tail of chunk 0, all of chunk 1, the head of chunk 2.
  std::vector<std::tuple<std::uint32_t, std::uint64_t, std::uint32_t>> ios;
  for (const FakeIoRecord& r : backend.log()) {
    EXPECT_EQ(r.op, Op::kWrite);
    EXPECT_GE(r.result, 0);
    ios.emplace_back(r.dev_id, r.offset, r.len);
  }
  std::sort(ios.begin(), ios.end());
  const std::uint32_t d0 = id_of("disk0");
  const std::uint32_t d1 = id_of("disk1");
  std::vector<std::tuple<std::uint32_t, std::uint64_t, std::uint32_t>> want{
      {d0, 4 * kSectorSize, 4 * kSectorSize},
      {d0, 8 * kSectorSize, 4 * kSectorSize},
      {d1, 16 * kSectorSize, 8 * kSectorSize},
  };
  std::sort(want.begin(), want.end());
  EXPECT_EQ(ios, want);
  EXPECT_TRUE(same_bytes(disk("disk0", 4), data.data(), 4 * kSectorSize));
  EXPECT_TRUE(same_bytes(disk("disk1", 16), data.data() + 4 * kSectorSize, 8 * kSectorSize));
  EXPECT_TRUE(same_bytes(disk("disk0", 8), data.data() + 12 * kSectorSize, 4 * kSectorSize));
}

TEST_F(StripedTarget, SplitsRequestsLongerThanTheClonesPerTag) {
  // 10 chunks in one request, with only 4 clones per tag: pieces are mapped in turn.
  start("0 80 striped 2 8 disk0 0 disk1 0");
  backend.record(true);
  const auto data = pattern(80, 7);
  ASSERT_EQ(fe->write(0, 80, data.data()), 0);
  EXPECT_EQ(backend.log().size(), 10U);
  for (const FakeIoRecord& r : backend.log()) {
    EXPECT_EQ(r.len, 8 * kSectorSize);
  }
  std::vector<std::byte> back(data.size());
  ASSERT_EQ(fe->read(0, 80, back.data()), 0);
  EXPECT_TRUE(same_bytes(back.data(), data.data(), data.size()));
}

// Zero copy (ublk's auto buffer registration): requests carry no address,
// only their tag's registered kernel buffer; each split piece must reach it
// at its own byte offset.
class ZeroCopy : public TargetTestBase {
 protected:
  void start_zero_copy(std::string_view text) {
    start(text);
    fe->set_zero_copy(true);
    const std::vector<iovec> bufs = fe->buffer_iovecs();
    for (unsigned t = 0; t < bufs.size(); ++t) {
      backend.set_kernel_buffer(t, {static_cast<std::byte*>(bufs[t].iov_base), bufs[t].iov_len});
    }
  }
};

TEST_F(ZeroCopy, SplitPiecesReadAndWriteTheRequestAtTheirOwnOffsets) {
  start_zero_copy("0 160 striped 2 8 disk0 0 disk1 16");
  backend.record(true);
  // Ten chunks in one request, more than the clones per tag: pieces are
  // mapped in turn, and each finds its slice of the one kernel buffer.
  const auto data = pattern(76, 11);
  ASSERT_EQ(fe->write(4, 76, data.data()), 0);
  EXPECT_GE(backend.log().size(), 10U);
  for (const FakeIoRecord& r : backend.log()) {
    EXPECT_EQ(r.result, 0);
  }
  EXPECT_TRUE(same_bytes(disk("disk0", 4), data.data(), 4 * kSectorSize));
  EXPECT_TRUE(same_bytes(disk("disk1", 16), data.data() + 4 * kSectorSize, 8 * kSectorSize));
  EXPECT_TRUE(same_bytes(disk("disk0", 8), data.data() + 12 * kSectorSize, 8 * kSectorSize));
  std::vector<std::byte> back(data.size());
  ASSERT_EQ(fe->read(4, 76, back.data()), 0);
  EXPECT_TRUE(same_bytes(back.data(), data.data(), data.size()));
}

TEST_F(ZeroCopy, ARequestAcrossTargetsReachesEveryTargetsDevice) {
  start_zero_copy("0 16 linear disk0 100\n16 16 linear disk2 200");
  const auto data = pattern(24, 12);
  ASSERT_EQ(fe->write(8, 24, data.data()), 0);
  EXPECT_TRUE(same_bytes(disk("disk0", 108), data.data(), 8 * kSectorSize));
  EXPECT_TRUE(same_bytes(disk("disk2", 200), data.data() + 8 * kSectorSize, 16 * kSectorSize));
  std::vector<std::byte> back(data.size());
  ASSERT_EQ(fe->read(8, 24, back.data()), 0);
  EXPECT_TRUE(same_bytes(back.data(), data.data(), data.size()));
}

TEST_F(ZeroCopy, TargetsThatTouchDataSayTheyNeedIt) {
  EXPECT_FALSE(build("0 64 linear disk0 0")->needing_cpu_data());
  EXPECT_FALSE(build("0 64 striped 2 8 disk0 0 disk1 0")->needing_cpu_data());
  EXPECT_FALSE(build("0 64 error")->needing_cpu_data());
  EXPECT_FALSE(build("0 64 flakey disk0 0 1 1 1 drop_writes")->needing_cpu_data());
  const std::unique_ptr<Table> zero = build("0 64 linear disk0 0\n64 64 zero");
  ASSERT_NE(zero->needing_cpu_data(), nullptr);
  EXPECT_EQ(zero->needing_cpu_data()->type_name(), "zero");
  EXPECT_NE(build("0 64 flakey disk0 0 1 1 5 corrupt_bio_byte 1 r 0 0")->needing_cpu_data(), nullptr);
  EXPECT_NE(build("0 64 flakey disk0 0 1 1 2 random_read_corrupt 1")->needing_cpu_data(), nullptr);
}

TEST_F(StripedTarget, SendsFlushToEveryStripe) {
  start("0 96 striped 3 8 disk0 0 disk1 0 disk2 0");
  backend.record(true);
  ASSERT_EQ(fe->flush(), 0);
  std::vector<std::uint32_t> flushed;
  for (const FakeIoRecord& r : backend.log()) {
    EXPECT_EQ(r.op, Op::kFlush);
    flushed.push_back(r.dev_id);
  }
  std::sort(flushed.begin(), flushed.end());
  std::vector<std::uint32_t> want{id_of("disk0"), id_of("disk1"), id_of("disk2")};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(flushed, want);
  EXPECT_EQ(counters("disk0").flushes, 1U);
  EXPECT_EQ(counters("disk1").flushes, 1U);
  EXPECT_EQ(counters("disk2").flushes, 1U);
}

TEST_F(StripedTarget, SplitsDiscardsAndWriteZeroesAtChunkBoundaries) {
  start("0 64 striped 2 8 disk0 0 disk1 16");
  fill_disk("disk0", 0, pattern(32, 8));
  fill_disk("disk1", 16, pattern(32, 9));
  backend.record(true);
  ASSERT_EQ(fe->discard(0, 24), 0);  // chunks 0, 1, 2
  EXPECT_EQ(counters("disk0").discards, 2U);
  EXPECT_EQ(counters("disk1").discards, 1U);
  EXPECT_TRUE(all_zero(disk("disk0", 0), 16 * kSectorSize));
  EXPECT_TRUE(all_zero(disk("disk1", 16), 8 * kSectorSize));
  EXPECT_FALSE(all_zero(disk("disk1", 24), 8 * kSectorSize));  // chunk 3 untouched
  ASSERT_EQ(fe->write_zeroes(28, 8), 0);                      // tail of chunk 3, head of chunk 4
  EXPECT_EQ(counters("disk1").write_zeroes, 1U);
  EXPECT_EQ(counters("disk0").write_zeroes, 1U);
  EXPECT_TRUE(all_zero(disk("disk1", 28), 4 * kSectorSize));
  EXPECT_FALSE(all_zero(disk("disk1", 24), 4 * kSectorSize));
  EXPECT_TRUE(all_zero(disk("disk0", 16), 4 * kSectorSize));
  EXPECT_FALSE(all_zero(disk("disk0", 20), 4 * kSectorSize));
}

TEST_F(StripedTarget, MarksAStripeDeadInInfoAfterAnIoErrorAndRaisesAnEvent) {
  start("0 64 striped 2 8 disk0 0 disk1 0");
  EXPECT_EQ(info(), "2 disk0 disk1 1 AA");
  storage.inject("disk1", FaultRule{op_bit(Op::kRead), -EIO, 1});
  const std::uint64_t events = dev->event_nr();
  std::vector<std::byte> buf(8 * kSectorSize);
  ASSERT_EQ(fe->read(0, 8, buf.data()), 0);  // chunk 0: disk0, fine
  EXPECT_EQ(info(), "2 disk0 disk1 1 AA");
  EXPECT_EQ(fe->read(8, 8, buf.data()), -EIO);  // chunk 1: disk1 fails
  EXPECT_EQ(info(), "2 disk0 disk1 1 AD");
  EXPECT_EQ(dev->event_nr(), events + 1);
  // The flag stays D after later successes.
  ASSERT_EQ(fe->read(8, 8, buf.data()), 0);
  EXPECT_EQ(info(), "2 disk0 disk1 1 AD");
}

// ===========================================================================
// error

TEST_F(ErrorTarget, RejectsAnyArgument) {
  EXPECT_TRUE(rejects("0 8 error disk0", "error: expected 0 arguments (none), got 1"));
  EXPECT_TRUE(rejects("0 8 error disk0 0", "got 2"));
}

TEST_F(ErrorTarget, ReportsEmptyStatus) {
  EXPECT_EQ(status_of("0 8 error", StatusType::kInfo), "");
  EXPECT_EQ(status_of("0 8 error", StatusType::kTable), "");
}

TEST_F(ErrorTarget, FailsEveryOperationWithEio) {
  start("0 64 error");
  const auto data = pattern(8, 10);
  std::vector<std::byte> buf(data.size());
  EXPECT_EQ(fe->read(0, 8, buf.data()), -EIO);
  EXPECT_EQ(fe->write(0, 8, data.data()), -EIO);
  EXPECT_EQ(fe->flush(), -EIO);
  EXPECT_EQ(fe->discard(0, 8), -EIO);
  EXPECT_EQ(fe->write_zeroes(0, 8), -EIO);
}

TEST_F(ErrorTarget, FailsOnlyItsOwnRangeInAMixedTable) {
  start("0 16 linear disk0 0\n16 16 error");
  const auto data = pattern(16, 11);
  EXPECT_EQ(fe->write(0, 16, data.data()), 0);
  EXPECT_TRUE(same_bytes(disk("disk0", 0), data.data(), 16 * kSectorSize));
  EXPECT_EQ(fe->write(8, 16, data.data()), -EIO);
  EXPECT_EQ(fe->read(16, 8, nullptr), -EIO);
}

// ===========================================================================
// zero

TEST_F(ZeroTarget, RejectsAnyArgument) {
  EXPECT_TRUE(rejects("0 8 zero 1", "zero: expected 0 arguments (none), got 1"));
}

TEST_F(ZeroTarget, ReportsEmptyStatus) {
  EXPECT_EQ(status_of("0 8 zero", StatusType::kInfo), "");
  EXPECT_EQ(status_of("0 8 zero", StatusType::kTable), "");
}

TEST_F(ZeroTarget, ReadsReturnZeroesAndWritesAreDropped) {
  start("0 64 zero");
  const auto data = pattern(8, 12);
  // The write leaves its data in the frontend's tag buffer; the read that
  // reuses the tag must still come back zeroed.
  ASSERT_EQ(fe->write(0, 8, data.data()), 0);
  std::vector<std::byte> back = pattern(8, 13);
  ASSERT_EQ(fe->read(0, 8, back.data()), 0);
  EXPECT_TRUE(all_zero(back.data(), back.size()));
  EXPECT_EQ(backend.in_flight(), 0U);
  EXPECT_EQ(dev->queue(0).stats().backend_ios, 0U);
}

TEST_F(ZeroTarget, FlushDiscardAndWriteZeroesSucceedWithoutDeviceIo) {
  start("0 64 zero");
  EXPECT_EQ(fe->flush(), 0);
  EXPECT_EQ(fe->discard(0, 64), 0);
  EXPECT_EQ(fe->write_zeroes(0, 64), 0);
  EXPECT_EQ(dev->queue(0).stats().backend_ios, 0U);
}

// ===========================================================================
// delay

TEST_F(DelayTarget, RejectsArgumentCountOtherThanThreeSixOrNine) {
  EXPECT_TRUE(rejects("0 8 delay", "delay: wrong number of arguments (0): expected 3, 6 or 9"));
  EXPECT_TRUE(rejects("0 8 delay disk0 0", "wrong number of arguments (2)"));
  EXPECT_TRUE(rejects("0 8 delay disk0 0 1 disk1", "wrong number of arguments (4)"));
  EXPECT_TRUE(rejects("0 8 delay disk0 0 1 disk1 0", "wrong number of arguments (5)"));
  EXPECT_TRUE(rejects("0 8 delay disk0 0 1 disk1 0 1 disk2", "wrong number of arguments (7)"));
  EXPECT_TRUE(rejects("0 8 delay disk0 0 1 disk1 0 1 disk2 0 1 x", "wrong number of arguments (10)"));
}

TEST_F(DelayTarget, RejectsDelayThatIsNotAnUnsignedNumber) {
  EXPECT_TRUE(rejects("0 8 delay disk0 0 soon", "invalid read delay 'soon'"));
  EXPECT_TRUE(rejects("0 8 delay disk0 0 -1", "invalid read delay '-1'"));
  EXPECT_TRUE(rejects("0 8 delay disk0 0 1 disk1 0 1.5", "invalid write delay '1.5'"));
  EXPECT_TRUE(rejects("0 8 delay disk0 0 1 disk1 0 1 disk2 0 x", "invalid flush delay 'x'"));
}

TEST_F(DelayTarget, RejectsDelayAboveTheLargestTimer) {
  EXPECT_TRUE(rejects("0 8 delay disk0 0 4294967296", "read delay '4294967296' out of range"));
  EXPECT_NO_THROW(build("0 8 delay disk0 0 4294967295"));
}

TEST_F(DelayTarget, RejectsOffsetThatIsNotAnUnsignedNumber) {
  EXPECT_TRUE(rejects("0 8 delay disk0 x 1", "invalid read offset 'x'"));
  EXPECT_TRUE(rejects("0 8 delay disk0 0 1 disk1 -4 1", "invalid write offset '-4'"));
  EXPECT_TRUE(rejects("0 8 delay disk0 0 1 disk1 0 1 disk2 99999999999999999999 1",
                      "invalid flush offset '99999999999999999999'"));
}

TEST_F(DelayTarget, RejectsMissingDeviceInAnyClass) {
  EXPECT_TRUE(rejects("0 8 delay nodisk 0 1", "nodisk", ENOENT));
  EXPECT_TRUE(rejects("0 8 delay disk0 0 1 nowrite 0 1", "nowrite", ENOENT));
  EXPECT_TRUE(rejects("0 8 delay disk0 0 1 disk1 0 1 noflush 0 1", "noflush", ENOENT));
}

TEST_F(DelayTarget, RejectsClassDeviceTooSmallForTheTarget) {
  EXPECT_TRUE(rejects("0 128 delay disk0 0 1 small 0 1", "device small too small"));
  EXPECT_TRUE(rejects("0 8 delay disk0 0 1 disk1 0 1 small 60 1", "device small too small"));
}

TEST_F(DelayTarget, TableEchoesOnlyTheGivenTriples) {
  EXPECT_EQ(status_of("0 64 delay disk0 0 100", StatusType::kTable), "disk0 0 100");
  EXPECT_EQ(status_of("0 64 delay disk0 0 100 disk1 8 200", StatusType::kTable), "disk0 0 100 disk1 8 200");
  EXPECT_EQ(status_of("0 64 delay disk0 0 100 disk1 8 200 disk2 16 0", StatusType::kTable),
            "disk0 0 100 disk1 8 200 disk2 16 0");
}

TEST_F(DelayTarget, InfoStartsWithNothingHeld) {
  EXPECT_EQ(status_of("0 64 delay disk0 0 100 disk1 8 200", StatusType::kInfo), "0 0 0");
}

TEST_F(DelayTarget, ReportsEachDistinctClassDeviceRange) {
  EXPECT_EQ(devices_of("0 64 delay disk0 0 100"), (std::vector<DeviceRange>{{"disk0", 0, 64}}));
  EXPECT_EQ(devices_of("0 64 delay disk0 0 100 disk0 0 5"), (std::vector<DeviceRange>{{"disk0", 0, 64}}));
  EXPECT_EQ(devices_of("0 64 delay disk0 0 1 disk1 8 2 disk2 16 3"),
            (std::vector<DeviceRange>{{"disk0", 0, 64}, {"disk1", 8, 64}, {"disk2", 16, 64}}));
}

TEST_F(DelayTarget, HoldsWritesOnTheWriteDeviceUntilTheWriteDelayElapses) {
  start("0 1024 delay disk0 0 100 disk1 8 200 disk2 16 300");
  const auto data = pattern(8, 20);
  const int tag = fe->submit(Op::kWrite, 4, 8, 0, data.data());
  ASSERT_GE(tag, 0);
  run();
  EXPECT_FALSE(fe->done(tag));
  EXPECT_EQ(info(), "0 1 0");
  EXPECT_EQ(counters("disk1").writes, 0U);
  clock.advance_ms(199);
  run();
  EXPECT_FALSE(fe->done(tag));
  clock.advance_ms(1);
  run();
  ASSERT_TRUE(fe->done(tag));
  EXPECT_EQ(fe->result(tag), 0);
  fe->release(tag);
  EXPECT_EQ(info(), "0 0 0");
  EXPECT_TRUE(same_bytes(disk("disk1", 12), data.data(), data.size()));
  EXPECT_EQ(counters("disk0").writes, 0U);
}

TEST_F(DelayTarget, HoldsReadsOnTheReadDeviceUntilTheReadDelayElapses) {
  start("0 1024 delay disk0 32 100 disk1 8 200");
  const auto data = pattern(8, 21);
  fill_disk("disk0", 32, data);
  const int tag = fe->submit(Op::kRead, 0, 8);
  ASSERT_GE(tag, 0);
  run();
  EXPECT_FALSE(fe->done(tag));
  EXPECT_EQ(info(), "1 0 0");
  clock.advance_ms(100);
  run();
  ASSERT_TRUE(fe->done(tag));
  EXPECT_EQ(fe->result(tag), 0);
  EXPECT_TRUE(same_bytes(fe->buffer(tag), data.data(), data.size()));
  fe->release(tag);
  EXPECT_EQ(info(), "0 0 0");
}

TEST_F(DelayTarget, SendsFlushesToTheFlushDeviceAfterTheFlushDelay) {
  start("0 1024 delay disk0 0 100 disk1 0 200 disk2 0 300");
  const int tag = fe->submit(Op::kFlush, 0, 0);
  ASSERT_GE(tag, 0);
  run();
  EXPECT_EQ(info(), "0 0 1");
  clock.advance_ms(299);
  run();
  EXPECT_FALSE(fe->done(tag));
  clock.advance_ms(1);
  run();
  ASSERT_TRUE(fe->done(tag));
  EXPECT_EQ(fe->result(tag), 0);
  fe->release(tag);
  EXPECT_EQ(counters("disk2").flushes, 1U);
  EXPECT_EQ(counters("disk0").flushes, 0U);
  EXPECT_EQ(counters("disk1").flushes, 0U);
}

TEST_F(DelayTarget, DelaysDiscardsAsWrites) {
  start("0 1024 delay disk0 0 0 disk1 0 50");
  fill_disk("disk1", 0, pattern(8, 22));
  const int tag = fe->submit(Op::kDiscard, 0, 8);
  ASSERT_GE(tag, 0);
  run();
  EXPECT_FALSE(fe->done(tag));
  EXPECT_EQ(info(), "0 1 0");
  clock.advance_ms(50);
  run();
  ASSERT_TRUE(fe->done(tag));
  EXPECT_EQ(fe->result(tag), 0);
  fe->release(tag);
  EXPECT_TRUE(all_zero(disk("disk1", 0), 8 * kSectorSize));
}

TEST_F(DelayTarget, ThreeArgumentFormDelaysWritesAndFlushesLikeReads) {
  start("0 1024 delay disk0 0 50");
  const auto data = pattern(8, 23);
  const int w = fe->submit(Op::kWrite, 0, 8, 0, data.data());
  const int f = fe->submit(Op::kFlush, 0, 0);
  ASSERT_GE(w, 0);
  ASSERT_GE(f, 0);
  run();
  EXPECT_EQ(info(), "0 1 1");
  clock.advance_ms(50);
  run();
  ASSERT_TRUE(fe->done(w));
  ASSERT_TRUE(fe->done(f));
  EXPECT_EQ(fe->result(w), 0);
  EXPECT_EQ(fe->result(f), 0);
  fe->release(w);
  fe->release(f);
  EXPECT_TRUE(same_bytes(disk("disk0", 0), data.data(), data.size()));
  EXPECT_EQ(counters("disk0").flushes, 1U);
}

TEST_F(DelayTarget, SixArgumentFormSendsFlushesToTheWriteDevice) {
  start("0 1024 delay disk0 0 0 disk1 0 70");
  const int tag = fe->submit(Op::kFlush, 0, 0);
  ASSERT_GE(tag, 0);
  run();
  EXPECT_EQ(info(), "0 0 1");
  clock.advance_ms(70);
  run();
  ASSERT_TRUE(fe->done(tag));
  fe->release(tag);
  EXPECT_EQ(counters("disk1").flushes, 1U);
  EXPECT_EQ(counters("disk0").flushes, 0U);
}

TEST_F(DelayTarget, ZeroDelayPassesIoStraightThrough) {
  start("0 1024 delay disk0 0 0");
  const auto data = pattern(8, 24);
  const int tag = fe->submit(Op::kWrite, 0, 8, 0, data.data());
  ASSERT_GE(tag, 0);
  fe->run_once();
  ASSERT_TRUE(fe->done(tag));
  EXPECT_EQ(fe->result(tag), 0);
  fe->release(tag);
  EXPECT_EQ(info(), "0 0 0");
  EXPECT_TRUE(same_bytes(disk("disk0", 0), data.data(), data.size()));
}

TEST_F(DelayTarget, SuspendReleasesHeldIoAtOnceAndResumeDelaysAgain) {
  start("0 1024 delay disk0 0 1000");
  const auto data = pattern(8, 25);
  const int tag = fe->submit(Op::kWrite, 0, 8, 0, data.data());
  ASSERT_GE(tag, 0);
  run();
  ASSERT_FALSE(fe->done(tag));
  ASSERT_EQ(info(), "0 1 0");
  // No clock movement: presuspend must flush what the target holds.
  dev->begin_suspend(0);
  run();
  ASSERT_TRUE(fe->done(tag));
  EXPECT_EQ(fe->result(tag), 0);
  fe->release(tag);
  EXPECT_EQ(info(), "0 0 0");
  EXPECT_TRUE(same_bytes(disk("disk0", 0), data.data(), data.size()));
  ASSERT_TRUE(dev->suspend_drained());
  dev->finish_suspend();
  dev->resume();

  const int again = fe->submit(Op::kWrite, 8, 8, 0, data.data());
  ASSERT_GE(again, 0);
  run();
  EXPECT_FALSE(fe->done(again));
  EXPECT_EQ(info(), "0 1 0");
  clock.advance_ms(1000);
  run();
  ASSERT_TRUE(fe->done(again));
  fe->release(again);
}

// ===========================================================================
// flakey

TEST_F(FlakeyTarget, RejectsFewerThanFourArguments) {
  EXPECT_TRUE(rejects("0 8 flakey disk0 0 5", "flakey: expected at least 4 arguments"));
  EXPECT_TRUE(rejects("0 8 flakey", "got 0"));
}

TEST_F(FlakeyTarget, RejectsIntervalsThatAreNotUnsigned32BitNumbers) {
  EXPECT_TRUE(rejects("0 8 flakey disk0 0 x 5", "invalid up interval 'x'"));
  EXPECT_TRUE(rejects("0 8 flakey disk0 0 5 -5", "invalid down interval '-5'"));
  EXPECT_TRUE(rejects("0 8 flakey disk0 0 4294967296 5", "up interval '4294967296' out of range"));
  EXPECT_TRUE(rejects("0 8 flakey disk0 z 5 5", "invalid offset 'z'"));
}

TEST_F(FlakeyTarget, RejectsZeroTotalInterval) {
  EXPECT_TRUE(rejects("0 8 flakey disk0 0 0 0", "up interval + down interval is zero"));
}

TEST_F(FlakeyTarget, RejectsIntervalSumThatOverflows) {
  EXPECT_TRUE(rejects("0 8 flakey disk0 0 4294967295 1", "interval overflow"));
  EXPECT_NO_THROW(build("0 8 flakey disk0 0 4294967294 1"));
}

TEST_F(FlakeyTarget, RejectsFeatureCountThatDoesNotMatchTheWordsGiven) {
  EXPECT_TRUE(
      rejects("0 8 flakey disk0 0 5 5 1", "feature argument count is 1 but 0 feature arguments follow"));
  EXPECT_TRUE(rejects("0 8 flakey disk0 0 5 5 2 error_reads", "count is 2 but 1 feature argument follows"));
  EXPECT_TRUE(
      rejects("0 8 flakey disk0 0 5 5 1 error_reads drop_writes", "count is 1 but 2 feature arguments"));
  // corrupt_bio_byte is five words, not one.
  EXPECT_TRUE(rejects("0 8 flakey disk0 0 5 5 1 corrupt_bio_byte 1 r 0 0", "count is 1 but 5"));
  EXPECT_TRUE(rejects("0 8 flakey disk0 0 5 5 x error_reads", "invalid number of feature arguments 'x'"));
}

TEST_F(FlakeyTarget, RejectsMoreThanElevenFeatureArguments) {
  EXPECT_TRUE(
      rejects("0 8 flakey disk0 0 5 5 12 error_reads error_reads error_reads error_reads error_reads "
              "error_reads error_reads error_reads error_reads error_reads error_reads error_reads",
              "number of feature arguments '12' out of range"));
}

TEST_F(FlakeyTarget, RejectsUnknownFeature) {
  EXPECT_TRUE(rejects("0 8 flakey disk0 0 5 5 1 fail_everything", "unknown feature 'fail_everything'"));
}

TEST_F(FlakeyTarget, RejectsDuplicatedFeatures) {
  EXPECT_TRUE(rejects("0 8 flakey disk0 0 5 5 2 error_reads error_reads", "feature error_reads duplicated"));
  EXPECT_TRUE(rejects("0 8 flakey disk0 0 5 5 2 drop_writes drop_writes", "feature drop_writes duplicated"));
  EXPECT_TRUE(
      rejects("0 8 flakey disk0 0 5 5 2 error_writes error_writes", "feature error_writes duplicated"));
  EXPECT_TRUE(rejects("0 8 flakey disk0 0 5 5 10 corrupt_bio_byte 1 r 0 0 corrupt_bio_byte 2 r 0 0",
                      "feature corrupt_bio_byte duplicated"));
  EXPECT_TRUE(rejects("0 8 flakey disk0 0 5 5 4 random_read_corrupt 1 random_read_corrupt 2",
                      "feature random_read_corrupt duplicated"));
  EXPECT_TRUE(rejects("0 8 flakey disk0 0 5 5 4 random_write_corrupt 0 random_write_corrupt 0",
                      "feature random_write_corrupt duplicated"));
}

TEST_F(FlakeyTarget, RejectsDropWritesTogetherWithErrorWrites) {
  EXPECT_TRUE(rejects("0 8 flakey disk0 0 5 5 2 drop_writes error_writes", "mutually exclusive"));
  EXPECT_TRUE(rejects("0 8 flakey disk0 0 5 5 2 error_writes drop_writes", "mutually exclusive"));
}

TEST_F(FlakeyTarget, RejectsCorruptBioByteWithMissingOrBadParameters) {
  EXPECT_TRUE(
      rejects("0 8 flakey disk0 0 5 5 4 corrupt_bio_byte 1 r 0", "corrupt_bio_byte requires 4 parameters"));
  EXPECT_TRUE(
      rejects("0 8 flakey disk0 0 5 5 5 corrupt_bio_byte 0 r 0 0", "corrupt_bio_byte byte number '0'"));
  EXPECT_TRUE(rejects("0 8 flakey disk0 0 5 5 5 corrupt_bio_byte 1 x 0 0", "direction 'x': expected r or w"));
  EXPECT_TRUE(rejects("0 8 flakey disk0 0 5 5 5 corrupt_bio_byte 1 r 256 0", "corrupt_bio_byte value '256'"));
  EXPECT_TRUE(rejects("0 8 flakey disk0 0 5 5 5 corrupt_bio_byte 1 r 1 4294967296",
                      "corrupt_bio_byte flags mask '4294967296' out of range"));
  EXPECT_TRUE(
      rejects("0 8 flakey disk0 0 5 5 5 corrupt_bio_byte 1 r v 0", "invalid corrupt_bio_byte value 'v'"));
}

TEST_F(FlakeyTarget, RejectsRandomCorruptWithMissingOrOutOfRangeProbability) {
  EXPECT_TRUE(
      rejects("0 8 flakey disk0 0 5 5 1 random_read_corrupt", "random_read_corrupt requires a parameter"));
  EXPECT_TRUE(rejects("0 8 flakey disk0 0 5 5 2 random_write_corrupt 1000000001",
                      "random_write_corrupt probability '1000000001' out of range"));
  EXPECT_TRUE(rejects("0 8 flakey disk0 0 5 5 2 random_read_corrupt half",
                      "invalid random_read_corrupt probability"));
}

TEST_F(FlakeyTarget, RejectsCorruptingIoThatIsAlsoDroppedOrFailed) {
  EXPECT_TRUE(
      rejects("0 8 flakey disk0 0 5 5 3 drop_writes random_write_corrupt 5", "drop_writes is incompatible"));
  EXPECT_TRUE(rejects("0 8 flakey disk0 0 5 5 6 error_writes corrupt_bio_byte 1 w 0 0",
                      "error_writes is incompatible"));
  EXPECT_TRUE(
      rejects("0 8 flakey disk0 0 5 5 3 error_reads random_read_corrupt 5", "error_reads is incompatible"));
  // Corrupting the other direction is fine.
  EXPECT_NO_THROW(build("0 8 flakey disk0 0 5 5 6 error_reads corrupt_bio_byte 1 w 0 0"));
  EXPECT_NO_THROW(build("0 8 flakey disk0 0 5 5 3 drop_writes random_read_corrupt 5"));
}

TEST_F(FlakeyTarget, RejectsMissingOrTooSmallDevice) {
  EXPECT_TRUE(rejects("0 8 flakey nodisk 0 5 5", "nodisk", ENOENT));
  EXPECT_TRUE(rejects("0 128 flakey small 0 5 5", "device small too small"));
}

TEST_F(FlakeyTarget, TableWithoutFeaturesPrintsBackAsErrorReadsAndErrorWrites) {
  EXPECT_EQ(status_of("0 64 flakey disk0 0 5 5", StatusType::kTable),
            "disk0 0 5 5 2 error_reads error_writes");
  EXPECT_EQ(status_of("0 64 flakey disk0 8 0 180 0", StatusType::kTable),
            "disk0 8 0 180 2 error_reads error_writes");
}

TEST_F(FlakeyTarget, TablePrintsFeaturesInCanonicalOrderWithTheirWordCount) {
  EXPECT_EQ(status_of("0 64 flakey disk0 0 0 180 1 drop_writes", StatusType::kTable),
            "disk0 0 0 180 1 drop_writes");
  EXPECT_EQ(status_of("0 64 flakey disk0 0 5 5 1 error_writes", StatusType::kTable),
            "disk0 0 5 5 1 error_writes");
  EXPECT_EQ(
      status_of("0 64 flakey disk0 8 1 2 8 random_write_corrupt 100 error_reads corrupt_bio_byte 32 w 1 0",
                StatusType::kTable),
      "disk0 8 1 2 8 error_reads corrupt_bio_byte 32 w 1 0 random_write_corrupt 100");
  EXPECT_EQ(status_of("0 64 flakey disk0 0 3 4 9 random_write_corrupt 7 random_read_corrupt 1000000000 "
                      "corrupt_bio_byte 4 r 255 1",
                      StatusType::kTable),
            "disk0 0 3 4 9 corrupt_bio_byte 4 r 255 1 random_read_corrupt 1000000000 random_write_corrupt 7");
  EXPECT_EQ(status_of("0 64 flakey disk0 0 5 5 2 error_writes error_reads", StatusType::kTable),
            "disk0 0 5 5 2 error_reads error_writes");
}

TEST_F(FlakeyTarget, FeatureNamesAndDirectionAreCaseInsensitive) {
  EXPECT_EQ(status_of("0 64 flakey disk0 0 5 5 6 Error_Reads CORRUPT_BIO_BYTE 2 W 9 0", StatusType::kTable),
            "disk0 0 5 5 6 error_reads corrupt_bio_byte 2 w 9 0");
}

TEST_F(FlakeyTarget, ZeroProbabilityRandomCorruptionIsOffAndNotPrinted) {
  EXPECT_EQ(status_of("0 64 flakey disk0 0 5 5 3 random_read_corrupt 0 drop_writes", StatusType::kTable),
            "disk0 0 5 5 1 drop_writes");
  // With nothing else, the default (error all reads and writes) applies.
  EXPECT_EQ(status_of("0 64 flakey disk0 0 5 5 2 random_read_corrupt 0", StatusType::kTable),
            "disk0 0 5 5 2 error_reads error_writes");
}

TEST_F(FlakeyTarget, InfoIsEmpty) {
  EXPECT_EQ(status_of("0 64 flakey disk0 0 5 5 1 drop_writes", StatusType::kInfo), "");
}

TEST_F(FlakeyTarget, ReportsItsDeviceRange) {
  EXPECT_EQ(devices_of("0 64 flakey disk2 24 5 5"), (std::vector<DeviceRange>{{"disk2", 24, 64}}));
}

TEST_F(FlakeyTarget, MapsLikeLinearWhileUp) {
  start("0 1024 flakey disk0 8 5 5");
  const auto data = pattern(8, 30);
  ASSERT_EQ(fe->write(2, 8, data.data()), 0);
  EXPECT_TRUE(same_bytes(disk("disk0", 10), data.data(), data.size()));
  std::vector<std::byte> back(data.size());
  ASSERT_EQ(fe->read(2, 8, back.data()), 0);
  EXPECT_TRUE(same_bytes(back.data(), data.data(), data.size()));
}

TEST_F(FlakeyTarget, WithoutFeaturesFailsReadsAndWritesOnlyDuringTheDownInterval) {
  start("0 1024 flakey disk0 0 5 5");
  const auto data = pattern(8, 31);
  std::vector<std::byte> back(data.size());
  clock.advance_ms(4999);  // still up
  ASSERT_EQ(fe->write(0, 8, data.data()), 0);
  clock.advance_ms(1);  // 5 s: down
  EXPECT_EQ(fe->read(0, 8, back.data()), -EIO);
  EXPECT_EQ(fe->write(8, 8, data.data()), -EIO);
  EXPECT_TRUE(all_zero(disk("disk0", 8), 8 * kSectorSize));
  clock.advance_ms(4999);  // 9.999 s: still down
  EXPECT_EQ(fe->read(0, 8, back.data()), -EIO);
  clock.advance_ms(1);  // 10 s: up again
  ASSERT_EQ(fe->read(0, 8, back.data()), 0);
  EXPECT_TRUE(same_bytes(back.data(), data.data(), data.size()));
  clock.advance_ms(5000);  // 15 s: down again (periodic)
  EXPECT_EQ(fe->read(0, 8, back.data()), -EIO);
}

TEST_F(FlakeyTarget, PassesFlushDiscardAndWriteZeroesThroughWhileDown) {
  start("0 1024 flakey disk0 0 5 5");
  fill_disk("disk0", 0, pattern(16, 32));
  clock.advance_ms(5000);
  EXPECT_EQ(fe->flush(), 0);
  EXPECT_EQ(counters("disk0").flushes, 1U);
  EXPECT_EQ(fe->discard(0, 8), 0);
  EXPECT_TRUE(all_zero(disk("disk0", 0), 8 * kSectorSize));
  EXPECT_EQ(fe->write_zeroes(8, 8), 0);
  EXPECT_TRUE(all_zero(disk("disk0", 8), 8 * kSectorSize));
}

TEST_F(FlakeyTarget, UpIntervalZeroMeansAlwaysDownAndDownIntervalZeroNeverDown) {
  start("0 512 flakey disk0 0 0 5\n512 512 flakey disk1 0 5 0");
  const auto data = pattern(8, 33);
  EXPECT_EQ(fe->write(0, 8, data.data()), -EIO);
  EXPECT_EQ(fe->write(512, 8, data.data()), 0);
  clock.advance_ms(7000);
  EXPECT_EQ(fe->write(0, 8, data.data()), -EIO);
  EXPECT_EQ(fe->write(512, 8, data.data()), 0);
}

TEST_F(FlakeyTarget, ErrorReadsFailsOnlyReadsWhileDown) {
  start("0 1024 flakey disk0 0 5 5 1 error_reads");
  const auto data = pattern(8, 34);
  std::vector<std::byte> back(data.size());
  clock.advance_ms(5000);
  EXPECT_EQ(fe->read(0, 8, back.data()), -EIO);
  ASSERT_EQ(fe->write(0, 8, data.data()), 0);
  EXPECT_TRUE(same_bytes(disk("disk0", 0), data.data(), data.size()));
}

TEST_F(FlakeyTarget, ErrorWritesFailsOnlyWritesWhileDown) {
  start("0 1024 flakey disk0 0 5 5 1 error_writes");
  const auto data = pattern(8, 35);
  fill_disk("disk0", 0, data);
  std::vector<std::byte> back(data.size());
  clock.advance_ms(5000);
  EXPECT_EQ(fe->write(8, 8, data.data()), -EIO);
  EXPECT_TRUE(all_zero(disk("disk0", 8), 8 * kSectorSize));
  ASSERT_EQ(fe->read(0, 8, back.data()), 0);
  EXPECT_TRUE(same_bytes(back.data(), data.data(), data.size()));
}

TEST_F(FlakeyTarget, DropWritesReportsSuccessWithoutWritingWhileDown) {
  start("0 1024 flakey disk0 0 5 5 1 drop_writes");
  const auto data = pattern(8, 36);
  clock.advance_ms(5000);
  ASSERT_EQ(fe->write(0, 8, data.data()), 0);
  EXPECT_EQ(counters("disk0").writes, 0U);
  EXPECT_TRUE(all_zero(disk("disk0", 0), 8 * kSectorSize));
  // Reads still work (drop_writes does not fail them).
  std::vector<std::byte> back(data.size());
  EXPECT_EQ(fe->read(0, 8, back.data()), 0);
  clock.advance_ms(5000);  // up: writes land again
  ASSERT_EQ(fe->write(0, 8, data.data()), 0);
  EXPECT_TRUE(same_bytes(disk("disk0", 0), data.data(), data.size()));
}

TEST_F(FlakeyTarget, CorruptBioByteReadReplacesTheNthByteOfReadDataWhileDown) {
  start("0 1024 flakey disk0 0 5 5 5 corrupt_bio_byte 3 r 171 0");
  const auto data = pattern(8, 37);
  fill_disk("disk0", 0, data);
  std::vector<std::byte> back(data.size());
  ASSERT_EQ(fe->read(0, 8, back.data()), 0);  // up: intact
  EXPECT_TRUE(same_bytes(back.data(), data.data(), data.size()));
  clock.advance_ms(5000);
  ASSERT_EQ(fe->read(0, 8, back.data()), 0);
  EXPECT_EQ(std::to_integer<int>(back[2]), 171);
  EXPECT_EQ(count_differences(back.data(), data.data(), data.size()), 1U);
  EXPECT_TRUE(same_bytes(disk("disk0", 0), data.data(), data.size()));  // the disk is not touched
  // Writes pass untouched while down with a read corruption.
  const auto other = pattern(8, 38);
  ASSERT_EQ(fe->write(8, 8, other.data()), 0);
  EXPECT_TRUE(same_bytes(disk("disk0", 8), other.data(), other.size()));
}

TEST_F(FlakeyTarget, CorruptBioByteWriteReplacesTheNthByteWrittenWhileDown) {
  start("0 1024 flakey disk0 0 5 5 5 corrupt_bio_byte 600 w 7 0");
  const auto data = pattern(8, 39);
  clock.advance_ms(5000);
  ASSERT_EQ(fe->write(0, 8, data.data()), 0);
  EXPECT_EQ(std::to_integer<int>(disk("disk0", 0)[599]), 7);
  EXPECT_EQ(count_differences(disk("disk0", 0), data.data(), data.size()), 1U);
  // A request shorter than N bytes is written as is.
  ASSERT_EQ(fe->write(16, 1, data.data()), 0);
  EXPECT_TRUE(same_bytes(disk("disk0", 16), data.data(), kSectorSize));
}

TEST_F(FlakeyTarget, CorruptBioByteOnlyAffectsRequestsCarryingAllFlagBits) {
  start("0 1024 flakey disk0 0 5 5 5 corrupt_bio_byte 1 w 7 1");  // mask 1 = kReqFua
  const auto data = pattern(8, 40);
  clock.advance_ms(5000);
  ASSERT_EQ(fe->write(0, 8, data.data()), 0);
  EXPECT_TRUE(same_bytes(disk("disk0", 0), data.data(), data.size()));
  ASSERT_EQ(fe->write(8, 8, data.data(), kReqFua), 0);
  EXPECT_EQ(std::to_integer<int>(disk("disk0", 8)[0]), 7);
  EXPECT_EQ(count_differences(disk("disk0", 8), data.data(), data.size()), 1U);
}

TEST_F(FlakeyTarget, RandomReadCorruptChangesOneByteOfReadDataWhileDown) {
  start("0 1024 flakey disk0 0 5 5 2 random_read_corrupt 1000000000");
  const auto data = pattern(8, 41);
  fill_disk("disk0", 0, data);
  std::vector<std::byte> back(data.size());
  ASSERT_EQ(fe->read(0, 8, back.data()), 0);
  EXPECT_EQ(count_differences(back.data(), data.data(), data.size()), 0U);
  clock.advance_ms(5000);
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(fe->read(0, 8, back.data()), 0);
    EXPECT_EQ(count_differences(back.data(), data.data(), data.size()), 1U);
  }
  EXPECT_TRUE(same_bytes(disk("disk0", 0), data.data(), data.size()));
}

TEST_F(FlakeyTarget, RandomWriteCorruptChangesOneByteWrittenWhileDown) {
  start("0 1024 flakey disk0 0 5 5 2 random_write_corrupt 1000000000");
  const auto data = pattern(8, 42);
  clock.advance_ms(5000);
  for (sector_t s = 0; s < 32; s += 8) {
    ASSERT_EQ(fe->write(s, 8, data.data()), 0);
    EXPECT_EQ(count_differences(disk("disk0", s), data.data(), data.size()), 1U) << "sector " << s;
  }
  // Reads are not corrupted by a write-only feature.
  fill_disk("disk0", 64, data);
  std::vector<std::byte> back(data.size());
  ASSERT_EQ(fe->read(64, 8, back.data()), 0);
  EXPECT_TRUE(same_bytes(back.data(), data.data(), data.size()));
}

TEST_F(FlakeyTarget, DownIntervalIsCountedFromTableLoad) {
  clock.advance_ms(123456);  // an arbitrary start time
  start("0 1024 flakey disk0 0 2 1");
  const auto data = pattern(8, 43);
  clock.advance_ms(1999);
  EXPECT_EQ(fe->write(0, 8, data.data()), 0);
  clock.advance_ms(1);
  EXPECT_EQ(fe->write(0, 8, data.data()), -EIO);
  clock.advance_ms(1000);
  EXPECT_EQ(fe->write(0, 8, data.data()), 0);
}

}  // namespace
}  // namespace ubdm
