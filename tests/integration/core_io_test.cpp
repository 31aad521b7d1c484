// SPDX-License-Identifier: MIT
// The core end to end on real storage: MappedDevice + InprocFrontend +
// UringBackend over temporary files and loop devices. Every test writes
// random data with many requests in flight, reads it back through the
// device, and checks the bytes on the underlying files/devices with pread
// to prove where the mapping put them. Loop tests skip without losetup.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/inproc_frontend.hpp"
#include "host_fixtures.hpp"
#include "io/uring_backend.hpp"
#include "ubdm/device.hpp"
#include "ubdm/error.hpp"
#include "ubdm/target.hpp"

namespace ubdm {
namespace {

using test::Backing;
using test::LoopDevice;
using test::TempFile;

using namespace std::chrono_literals;

constexpr std::uint64_t kBackingBytes = 8ULL << 20;  // every file / loop device
constexpr unsigned kDepth = 64;

// --- storage helpers -----------------------------------------------------


// --- data helpers ------------------------------------------------------------

std::uint64_t fnv1a(const std::byte* p, std::size_t n) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (std::size_t i = 0; i < n; ++i) {
    h = (h ^ static_cast<std::uint64_t>(p[i])) * 0x100000001b3ULL;
  }
  return h;
}

bool all_zero(const std::vector<std::byte>& v) {
  return std::all_of(v.begin(), v.end(), [](std::byte b) { return b == std::byte{0}; });
}

struct Extent {
  sector_t sector;
  std::uint32_t sectors;
};

// The device under test with its frontend, plus a model of what the device
// should contain, so reads and underlying bytes can be checked against it.
class Rig {
 public:
  Rig(DeviceOpener& opener, const std::string& table, bool register_buffers = true)
      : dev_("it", DeviceConfig{1, kDepth, 4}, opener) {
    dev_.load_text(table);
    dev_.resume();
    backend_ = std::make_unique<UringBackend>();
    fe_ = std::make_unique<InprocFrontend>(dev_.queue(0), *backend_);
    if (register_buffers) {
      const std::vector<iovec> iov = fe_->buffer_iovecs();
      if (backend_->register_buffers(iov) != 0) {
        throw std::runtime_error("register_buffers failed");
      }
      fe_->set_buffers_registered(true);
    }
    model_.assign(dev_.size_sectors() << kSectorShift, std::byte{0});
  }

  ~Rig() {
    fe_->run_until_idle(10s);
    fe_.reset();
    backend_.reset();
  }

  Rig(const Rig&) = delete;
  Rig& operator=(const Rig&) = delete;

  sector_t size() const { return dev_.size_sectors(); }
  InprocFrontend& fe() { return *fe_; }
  std::vector<std::byte>& model() { return model_; }
  const std::byte* model_at(sector_t sector) const { return model_.data() + (sector << kSectorShift); }

  // Submit one request per extent, up to the queue depth at a time, and run
  // them concurrently. `before` fills write data; `after` inspects a finished
  // request's tag (for reads). Returns the results in extent order.
  std::vector<int> run(Op op, const std::vector<Extent>& extents, std::uint32_t flags = 0,
                       const std::function<void(std::size_t, std::byte*)>& after = nullptr) {
    std::vector<int> results(extents.size(), 1);
    std::size_t next = 0;
    while (next < extents.size()) {
      std::vector<std::pair<int, std::size_t>> batch;  // tag, extent index
      while (next < extents.size() && batch.size() < kDepth) {
        const Extent& e = extents[next];
        const void* data = op == Op::kWrite ? model_at(e.sector) : nullptr;
        const int tag = fe_->submit(op, e.sector, e.sectors, flags, data);
        if (tag < 0) {
          ADD_FAILURE() << "submit: " << errno_string(tag);
          return results;
        }
        batch.emplace_back(tag, next);
        ++next;
      }
      EXPECT_GT(fe_->outstanding(), 0U);
      if (!fe_->run_until_idle(20s)) {
        ADD_FAILURE() << "requests did not complete";
        return results;
      }
      for (auto [tag, index] : batch) {
        EXPECT_EQ(fe_->completions(tag), 1U) << "each request completes exactly once";
        results[index] = fe_->result(tag);
        if (after) {
          after(index, fe_->buffer(tag));
        }
        fe_->release(tag);
      }
    }
    return results;
  }

  // Fill the model at `extents` with random bytes.
  void fill_random(const std::vector<Extent>& extents, std::mt19937_64& rng) {
    for (const Extent& e : extents) {
      for (std::size_t i = 0; i < (static_cast<std::size_t>(e.sectors) << kSectorShift); i += 8) {
        const std::uint64_t v = rng();
        std::memcpy(model_.data() + (e.sector << kSectorShift) + i, &v, 8);
      }
    }
  }

  // Fill the model at `extents` with random bytes and write them; all must succeed.
  void write_random(const std::vector<Extent>& extents, std::mt19937_64& rng, std::uint32_t flags = 0) {
    fill_random(extents, rng);
    for (int r : run(Op::kWrite, extents, flags)) {
      EXPECT_EQ(r, 0);
    }
  }

  // Read the whole device back through the mapping, in concurrent 64 KiB
  // requests, and compare with the model.
  void expect_reads_match_model() {
    std::vector<Extent> all;
    for (sector_t s = 0; s < size(); s += 128) {
      all.push_back(Extent{s, static_cast<std::uint32_t>(std::min<sector_t>(128, size() - s))});
    }
    std::vector<std::byte> back(model_.size());
    const auto results = run(Op::kRead, all, 0, [&](std::size_t i, std::byte* buf) {
      std::memcpy(back.data() + (all[i].sector << kSectorShift), buf,
                  static_cast<std::size_t>(all[i].sectors) << kSectorShift);
    });
    for (std::size_t i = 0; i < results.size(); ++i) {
      EXPECT_EQ(results[i], 0) << "read at sector " << all[i].sector;
    }
    EXPECT_EQ(fnv1a(back.data(), back.size()), fnv1a(model_.data(), model_.size()))
        << "read-back checksum differs from what was written";
    for (sector_t s = 0; s < size(); ++s) {
      if (std::memcmp(back.data() + (s << kSectorShift), model_at(s), kSectorSize) != 0) {
        ADD_FAILURE() << "first differing sector: " << s;
        break;
      }
    }
  }

 private:
  MappedDevice dev_;
  std::unique_ptr<UringBackend> backend_;
  std::unique_ptr<InprocFrontend> fe_;
  std::vector<std::byte> model_;
};

// `count` random extents that do not overlap each other (so they may run
// concurrently), of 1..max_sectors sectors each, anywhere on a device of
// `size` sectors. Many of them straddle target and chunk boundaries.
std::vector<Extent> random_extents(std::mt19937_64& rng, sector_t size, unsigned count,
                                   std::uint32_t max_sectors) {
  std::vector<Extent> out;
  const sector_t region = size / count;
  for (unsigned i = 0; i < count; ++i) {
    const auto len = static_cast<std::uint32_t>(1 + rng() % std::min<sector_t>(max_sectors, region));
    const sector_t start = i * region + rng() % (region - len + 1);
    out.push_back(Extent{start, len});
  }
  std::shuffle(out.begin(), out.end(), rng);
  return out;
}

// The whole device in `count` equal extents (shuffled): after writing them
// the model is fully random, so every underlying byte can be checked.
std::vector<Extent> covering_extents(std::mt19937_64& rng, sector_t size, std::uint32_t sectors) {
  std::vector<Extent> out;
  for (sector_t s = 0; s < size; s += sectors) {
    out.push_back(Extent{s, static_cast<std::uint32_t>(std::min<sector_t>(sectors, size - s))});
  }
  std::shuffle(out.begin(), out.end(), rng);
  return out;
}

// --- fixture -------------------------------------------------------------

class CoreIo : public ::testing::TestWithParam<bool> {
 protected:
  // Backing storage #i (file or loop device by the test parameter).
  Backing& backing(std::size_t i) {
    while (backings_.size() <= i) {
      backings_.push_back(std::make_unique<Backing>(GetParam(), kBackingBytes));
    }
    return *backings_[i];
  }
  // Call from the test body; a skipped setup returns false.
  bool ready(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      if (backing(i).path().empty()) {
        return false;
      }
    }
    return true;
  }
  std::string skip_reason() { return backings_.empty() ? std::string() : backings_.back()->error(); }

  std::vector<std::unique_ptr<Backing>> backings_;
  std::unique_ptr<DeviceOpener> opener_ = make_system_device_opener();
  std::mt19937_64 rng_{20240611};
};

#define REQUIRE_BACKINGS(n)                                \
  do {                                                     \
    if (!ready(n)) {                                       \
      GTEST_SKIP() << "no loop device: " << skip_reason(); \
    }                                                      \
  } while (0)

TEST_P(CoreIo, LinearPutsSectorSAtOffsetPlusSOnTheDevice) {
  REQUIRE_BACKINGS(1);
  const std::string table = "0 8192 linear " + backing(0).path() + " 2048";
  Rig rig(*opener_, table);
  rig.write_random(covering_extents(rng_, rig.size(), 96), rng_);
  rig.write_random(random_extents(rng_, rig.size(), 64, 256), rng_);
  rig.expect_reads_match_model();
  // Underlying: sectors 2048..10239 hold the device, the rest is untouched.
  const auto on_disk = backing(0).read(2048ULL << kSectorShift, rig.model().size());
  EXPECT_EQ(std::memcmp(on_disk.data(), rig.model().data(), on_disk.size()), 0);
  EXPECT_TRUE(all_zero(backing(0).read(0, 2048ULL << kSectorShift))) << "bytes before the offset changed";
}

TEST_P(CoreIo, StripedPutsChunkCOnDeviceCMod2AtChunkCDiv2) {
  REQUIRE_BACKINGS(2);
  const std::string table = "0 8192 striped 2 128 " + backing(0).path() + " 0 " + backing(1).path() + " 0";
  Rig rig(*opener_, table);
  // 96-sector writes mostly straddle the 128-sector chunks; 1 MiB random ones
  // span up to nine chunks, more pieces than a tag has clones.
  rig.write_random(covering_extents(rng_, rig.size(), 96), rng_);
  rig.write_random(random_extents(rng_, rig.size(), 4, 2048), rng_);
  rig.write_random(random_extents(rng_, rig.size(), 64, 128), rng_);
  rig.expect_reads_match_model();
  constexpr sector_t kChunk = 128;
  for (sector_t c = 0; c < rig.size() / kChunk; ++c) {
    const auto got = backing(c % 2).read((c / 2) * kChunk << kSectorShift, kChunk << kSectorShift);
    ASSERT_EQ(std::memcmp(got.data(), rig.model_at(c * kChunk), got.size()), 0)
        << "chunk " << c << " is not at chunk " << c / 2 << " of stripe " << c % 2;
  }
  // A flush goes to both stripes and succeeds.
  EXPECT_EQ(rig.fe().flush(), 0);
}

TEST_P(CoreIo, TwoLinearTargetsSplitRequestsAtTheBoundary) {
  REQUIRE_BACKINGS(2);
  const std::string table =
      "0 4096 linear " + backing(0).path() + " 0\n" + "4096 4096 linear " + backing(1).path() + " 1024\n";
  Rig rig(*opener_, table);
  // Requests that straddle sector 4096, concurrently with random ones.
  std::vector<Extent> straddling;
  for (std::uint32_t len : {2U, 16U, 255U, 1024U, 2048U}) {
    straddling.push_back(Extent{4096 - len / 2, len});
  }
  rig.write_random(covering_extents(rng_, rig.size(), 200), rng_);
  for (const Extent& e : straddling) {
    rig.write_random({e}, rng_);
  }
  rig.write_random(random_extents(rng_, rig.size(), 64, 512), rng_);
  rig.expect_reads_match_model();
  const auto first = backing(0).read(0, 4096ULL << kSectorShift);
  EXPECT_EQ(std::memcmp(first.data(), rig.model_at(0), first.size()), 0) << "first target's bytes";
  const auto second = backing(1).read(1024ULL << kSectorShift, 4096ULL << kSectorShift);
  EXPECT_EQ(std::memcmp(second.data(), rig.model_at(4096), second.size()), 0) << "second target's bytes";
}

TEST_P(CoreIo, FlakeyDownFailsReadsAndWritesWithEioAndUpPassesThem) {
  REQUIRE_BACKINGS(1);
  if (find_target_type("flakey") == nullptr) {
    GTEST_SKIP() << "no flakey target in this build";
  }
  {
    // Always down (up 0 s, down 100 s): every read and write fails.
    Rig rig(*opener_, "0 8192 flakey " + backing(0).path() + " 0 0 100");
    const auto extents = random_extents(rng_, rig.size(), 32, 64);
    rig.fill_random(extents, rng_);  // non-zero data, so a leaked write would show
    const auto writes = rig.run(Op::kWrite, extents);
    for (int r : writes) {
      EXPECT_EQ(r, -EIO);
    }
    const auto reads = rig.run(Op::kRead, random_extents(rng_, rig.size(), 32, 64));
    for (int r : reads) {
      EXPECT_EQ(r, -EIO);
    }
    // Flush passes through even while down.
    EXPECT_EQ(rig.fe().flush(), 0);
  }
  EXPECT_TRUE(all_zero(backing(0).read(0, kBackingBytes))) << "a failed write reached the device";
  {
    // Always up (up 100 s, down 0 s): behaves like linear.
    Rig rig(*opener_, "0 8192 flakey " + backing(0).path() + " 0 100 0");
    rig.write_random(random_extents(rng_, rig.size(), 64, 128), rng_);
    rig.expect_reads_match_model();
    const auto on_disk = backing(0).read(0, rig.model().size());
    EXPECT_EQ(std::memcmp(on_disk.data(), rig.model().data(), on_disk.size()), 0);
  }
}

TEST_P(CoreIo, FuaWritesAndFlushesCompleteAndTheDataIsOnTheDevice) {
  REQUIRE_BACKINGS(2);
  const std::string table = "0 8192 striped 2 64 " + backing(0).path() + " 0 " + backing(1).path() + " 0";
  Rig rig(*opener_, table);
  rig.write_random(random_extents(rng_, rig.size(), 64, 200), rng_, kReqFua);
  // Several flushes at once; each fans out to both stripes.
  std::vector<Extent> flushes(8, Extent{0, 0});
  for (int r : rig.run(Op::kFlush, flushes)) {
    EXPECT_EQ(r, 0);
  }
  rig.expect_reads_match_model();
  for (sector_t c = 0; c < rig.size() / 64; ++c) {
    const auto got = backing(c % 2).read((c / 2) * 64 << kSectorShift, 64 << kSectorShift);
    ASSERT_EQ(std::memcmp(got.data(), rig.model_at(c * 64), got.size()), 0) << "chunk " << c;
  }
}

TEST_P(CoreIo, DiscardAndWriteZeroesLeaveZeroesExactlyInTheirRange) {
  REQUIRE_BACKINGS(1);
  Rig rig(*opener_, "0 8192 linear " + backing(0).path() + " 1024");
  rig.write_random(covering_extents(rng_, rig.size(), 128), rng_);
  // Discard: for a file a punched hole, for loop a hole punched in its
  // backing file; both read back as zeroes. Ranges are 4 KiB aligned so that
  // the filesystem frees whole blocks.
  const std::vector<Extent> discards = {{8, 64}, {1024, 1024}, {5000, 8}};
  for (int r : rig.run(Op::kDiscard, discards)) {
    EXPECT_EQ(r, 0);
  }
  const std::vector<Extent> zeroes = {{300, 1}, {2500, 700}, {8191, 1}};
  for (int r : rig.run(Op::kWriteZeroes, zeroes)) {
    EXPECT_EQ(r, 0);
  }
  for (const Extent& e : discards) {
    std::memset(rig.model().data() + (e.sector << kSectorShift), 0, static_cast<std::size_t>(e.sectors) << 9);
  }
  for (const Extent& e : zeroes) {
    std::memset(rig.model().data() + (e.sector << kSectorShift), 0, static_cast<std::size_t>(e.sectors) << 9);
  }
  rig.expect_reads_match_model();
  const auto on_disk = backing(0).read(1024ULL << kSectorShift, rig.model().size());
  EXPECT_EQ(std::memcmp(on_disk.data(), rig.model().data(), on_disk.size()), 0);
}

TEST_P(CoreIo, UnregisteredBuffersWorkTheSame) {
  REQUIRE_BACKINGS(1);
  Rig rig(*opener_, "0 8192 linear " + backing(0).path() + " 0", /*register_buffers=*/false);
  rig.write_random(random_extents(rng_, rig.size(), 64, 256), rng_);
  rig.expect_reads_match_model();
  const auto on_disk = backing(0).read(0, rig.model().size());
  EXPECT_EQ(std::memcmp(on_disk.data(), rig.model().data(), on_disk.size()), 0);
}

INSTANTIATE_TEST_SUITE_P(Storage, CoreIo, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& param_info) {
                           return param_info.param ? "LoopDevices" : "Files";
                         });

// A file truncated under a live table (a loop device cannot shrink under an
// open table): a read straddling the new end gets a short transfer from the
// kernel, which must end as an error, not as a short success.
TEST(CoreIoFile, ReadPastATruncatedFileFailsWithEioInsteadOfReturningShort) {
  auto opener = make_system_device_opener();
  Backing file(false, kBackingBytes);
  Rig rig(*opener, "0 8192 linear " + file.path() + " 0");
  ASSERT_EQ(::truncate(file.path().c_str(), 4096LL << kSectorShift), 0);
  const auto results = rig.run(Op::kRead, {{4000, 192}, {6000, 8}, {0, 8}});
  EXPECT_EQ(results[0], -EIO) << "a read straddling the end must not succeed short";
  EXPECT_EQ(results[1], -EIO);
  EXPECT_EQ(results[2], 0);
}

}  // namespace
}  // namespace ubdm
