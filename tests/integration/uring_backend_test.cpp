// SPDX-License-Identifier: MIT
// UringBackend and the system device opener against the running kernel:
// a temporary file (O_DIRECT on the host filesystem) and a loop device
// (losetup --direct-io=on). Loop tests skip when losetup is unavailable.
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
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
using test::run_command;

using namespace std::chrono_literals;
using test::make_io;

constexpr std::uint64_t kDevBytes = 16ULL << 20;

// --- helpers ---------------------------------------------------------------

struct FreeDeleter {
  void operator()(std::byte* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<std::byte[], FreeDeleter>;

Buffer aligned_buffer(std::size_t bytes) {
  const std::size_t rounded = (bytes + 4095) / 4096 * 4096;
  auto* p = static_cast<std::byte*>(std::aligned_alloc(4096, rounded));
  if (p == nullptr) {
    throw std::bad_alloc();
  }
  std::memset(p, 0, rounded);
  return Buffer(p);
}

std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Bytes that depend on the seed and on their absolute device offset, so a
// misplaced sector never matches.
void fill_pattern(std::byte* buf, std::size_t len, std::uint64_t dev_offset, std::uint64_t seed) {
  for (std::size_t i = 0; i < len; i += 8) {
    const std::uint64_t v = mix(seed ^ ((dev_offset + i) * 0x100000001b3ULL));
    std::memcpy(buf + i, &v, std::min<std::size_t>(8, len - i));
  }
}

bool all_zero(const std::byte* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    if (p[i] != std::byte{0}) {
      return false;
    }
  }
  return true;
}

struct Waiter final : IoCompletion {
  int res = INT_MIN;
  unsigned calls = 0;
  void io_complete(int r) override {
    res = r;
    ++calls;
  }
};

// Poll until nothing is in flight.
bool drain(UringBackend& b, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (b.in_flight() > 0) {
    const int r = b.poll(1000);
    if (r < 0) {
      ADD_FAILURE() << "poll: " << errno_string(r);
      return false;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return false;
    }
  }
  return true;
}


// pread through an independent O_DIRECT descriptor: what is really on the
// device, not what the backend under test says.
void direct_pread(const std::string& path, std::byte* buf, std::size_t len, std::uint64_t offset) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  ASSERT_GE(fd, 0) << path << ": " << errno_string(errno);
  const ssize_t n = ::pread(fd, buf, len, static_cast<off_t>(offset));
  const int err = errno;
  ::close(fd);
  ASSERT_EQ(n, static_cast<ssize_t>(len)) << "pread " << path << ": " << errno_string(err);
}

// A BlockDevice the opener did not make, for invalid-id cases.
class StrayDevice final : public BlockDevice {
 public:
  StrayDevice(std::uint32_t id, int fd) {
    id_ = id;
    fd_ = fd;
    path_ = "stray";
  }
};


// --- the device fixture: the same tests over a file and over a loop device ---

enum class Kind { kFile, kLoop };

class UringBackendDevice : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    file_ = std::make_unique<TempFile>(kDevBytes);
    path_ = file_->path();
    if (GetParam() == Kind::kLoop) {
      loop_ = std::make_unique<LoopDevice>(file_->path());
      if (loop_->path().empty()) {
        GTEST_SKIP() << "no loop device: " << loop_->error();
      }
      path_ = loop_->path();
    }
    opener_ = make_system_device_opener();
    dev_ = opener_->open(path_);
    backend_ = std::make_unique<UringBackend>();
    ASSERT_EQ(backend_->attach(*dev_), 0);
  }

  void TearDown() override {
    if (backend_ && dev_) {
      EXPECT_EQ(backend_->in_flight(), 0U);
      backend_->detach(*dev_);
    }
    backend_.reset();
    dev_.reset();
    loop_.reset();
    file_.reset();
  }

  // One synchronous I/O through the backend.
  int io(Op op, std::uint64_t offset, std::byte* buf, std::uint32_t len, std::uint32_t flags = 0,
         int buf_index = -1) {
    Waiter w;
    IoRequest r = make_io(op, *dev_, offset, buf, len, w, flags);
    r.buf_index = buf_index;
    backend_->submit(r);
    EXPECT_EQ(w.calls, 0U) << "submit() must not complete synchronously";
    EXPECT_EQ(backend_->flush(), 0);
    EXPECT_TRUE(drain(*backend_));
    EXPECT_EQ(w.calls, 1U);
    return w.res;
  }

  void write_pattern(std::uint64_t offset, std::uint32_t len, std::uint64_t seed) {
    Buffer b = aligned_buffer(len);
    fill_pattern(b.get(), len, offset, seed);
    ASSERT_EQ(io(Op::kWrite, offset, b.get(), len), 0);
  }

  void expect_pattern_on_device(std::uint64_t offset, std::uint32_t len, std::uint64_t seed) {
    Buffer want = aligned_buffer(len);
    Buffer got = aligned_buffer(len);
    fill_pattern(want.get(), len, offset, seed);
    direct_pread(path_, got.get(), len, offset);
    EXPECT_EQ(std::memcmp(want.get(), got.get(), len), 0) << "device bytes differ at offset " << offset;
  }

  std::unique_ptr<TempFile> file_;
  std::unique_ptr<LoopDevice> loop_;
  std::string path_;
  std::unique_ptr<DeviceOpener> opener_;
  BlockDevicePtr dev_;
  std::unique_ptr<UringBackend> backend_;
};

TEST_P(UringBackendDevice, WriteThenReadReturnsTheSameBytesAtEverySize) {
  const std::array<std::pair<std::uint64_t, std::uint32_t>, 4> cases = {
      {{0, 4096}, {8192, 65536}, {1 << 20, 1 << 20}, {kDevBytes - 4096, 4096}}};
  std::uint64_t seed = 1;
  for (auto [off, len] : cases) {
    write_pattern(off, len, seed);
    Buffer got = aligned_buffer(len);
    ASSERT_EQ(io(Op::kRead, off, got.get(), len), 0);
    Buffer want = aligned_buffer(len);
    fill_pattern(want.get(), len, off, seed);
    EXPECT_EQ(std::memcmp(want.get(), got.get(), len), 0) << "offset " << off << " len " << len;
    expect_pattern_on_device(off, len, seed);
    ++seed;
  }
}

TEST_P(UringBackendDevice, FuaWriteCompletesWithFullLengthAndIsOnTheDevice) {
  Buffer b = aligned_buffer(32768);
  fill_pattern(b.get(), 32768, 4096, 77);
  EXPECT_EQ(io(Op::kWrite, 4096, b.get(), 32768, kReqFua), 0);
  expect_pattern_on_device(4096, 32768, 77);
}

TEST_P(UringBackendDevice, FlushCompletesWithZero) {
  write_pattern(0, 4096, 5);
  EXPECT_EQ(io(Op::kFlush, 0, nullptr, 0), 0);
}

TEST_P(UringBackendDevice, DiscardedRangeReadsAsZeroesAndNeighboursSurvive) {
  // For the file, a punched hole reads as zeroes by definition. The loop
  // driver implements discard by punching a hole in its backing file, so the
  // same holds for it (discard in general guarantees nothing about contents).
  write_pattern(0, 1 << 20, 9);
  ASSERT_EQ(io(Op::kDiscard, 256 << 10, nullptr, 256 << 10), 0);
  Buffer got = aligned_buffer(1 << 20);
  ASSERT_EQ(io(Op::kRead, 0, got.get(), 1 << 20), 0);
  Buffer want = aligned_buffer(1 << 20);
  fill_pattern(want.get(), 1 << 20, 0, 9);
  EXPECT_EQ(std::memcmp(got.get(), want.get(), 256 << 10), 0) << "bytes before the discard changed";
  EXPECT_TRUE(all_zero(got.get() + (256 << 10), 256 << 10)) << "discarded range is not zero";
  EXPECT_EQ(std::memcmp(got.get() + (512 << 10), want.get() + (512 << 10), 512 << 10), 0)
      << "bytes after the discard changed";
}

TEST_P(UringBackendDevice, WriteZeroesZeroesExactlyTheRange) {
  write_pattern(0, 1 << 20, 11);
  ASSERT_EQ(io(Op::kWriteZeroes, 4096, nullptr, 12288), 0);
  Buffer got = aligned_buffer(1 << 20);
  direct_pread(path_, got.get(), 1 << 20, 0);
  Buffer want = aligned_buffer(1 << 20);
  fill_pattern(want.get(), 1 << 20, 0, 11);
  std::memset(want.get() + 4096, 0, 12288);
  EXPECT_EQ(std::memcmp(got.get(), want.get(), 1 << 20), 0);
}

TEST_P(UringBackendDevice, RegisteredBuffersCarryReadsAndWrites) {
  // Two registered buffers; I/O uses slices inside them by index.
  Buffer a = aligned_buffer(256 << 10);
  Buffer b = aligned_buffer(256 << 10);
  const std::array<iovec, 2> iov = {{{a.get(), 256 << 10}, {b.get(), 256 << 10}}};
  ASSERT_EQ(backend_->register_buffers(iov), 0);
  fill_pattern(a.get() + 8192, 65536, 3 << 20, 21);
  ASSERT_EQ(io(Op::kWrite, 3 << 20, a.get() + 8192, 65536, 0, 0), 0);
  expect_pattern_on_device(3 << 20, 65536, 21);
  ASSERT_EQ(io(Op::kRead, 3 << 20, b.get() + 4096, 65536, 0, 1), 0);
  Buffer want = aligned_buffer(65536);
  fill_pattern(want.get(), 65536, 3 << 20, 21);
  EXPECT_EQ(std::memcmp(b.get() + 4096, want.get(), 65536), 0);
  // A buffer outside the registered one is refused by the kernel, and the
  // refusal arrives as a completion.
  Buffer outside = aligned_buffer(4096);
  EXPECT_LT(io(Op::kRead, 0, outside.get(), 4096, 0, 0), 0);
  ASSERT_EQ(backend_->register_buffers({}), 0);
}

TEST_P(UringBackendDevice, SixtyFourConcurrentIosAreBatchedUntilFlush) {
  constexpr unsigned kN = 64;
  constexpr std::uint32_t kLen = 16384;
  std::vector<Buffer> bufs;
  std::vector<Waiter> waiters(kN);
  std::vector<IoRequest> reqs(kN);
  for (unsigned i = 0; i < kN; ++i) {
    bufs.push_back(aligned_buffer(kLen));
    // Spread over the device, interleaved so neighbours are not adjacent.
    const std::uint64_t off = static_cast<std::uint64_t>((i * 37) % kN) * (kDevBytes / kN);
    fill_pattern(bufs[i].get(), kLen, off, 1000 + i);
    reqs[i] = make_io(Op::kWrite, *dev_, off, bufs[i].get(), kLen, waiters[i]);
    backend_->submit(reqs[i]);
  }
  // Nothing went to the kernel yet: all 64 SQEs are waiting in the SQ.
  EXPECT_EQ(io_uring_sq_ready(backend_->ring()), kN);
  EXPECT_EQ(backend_->in_flight(), kN);
  ASSERT_EQ(backend_->flush(), 0);
  EXPECT_EQ(io_uring_sq_ready(backend_->ring()), 0U);
  ASSERT_TRUE(drain(*backend_));
  for (unsigned i = 0; i < kN; ++i) {
    EXPECT_EQ(waiters[i].calls, 1U);
    EXPECT_EQ(waiters[i].res, 0) << "write " << i;
  }
  // Read them all back concurrently into fresh buffers.
  std::vector<Buffer> back;
  for (unsigned i = 0; i < kN; ++i) {
    back.push_back(aligned_buffer(kLen));
    waiters[i] = Waiter{};
    reqs[i] = make_io(Op::kRead, *dev_, reqs[i].offset, back[i].get(), kLen, waiters[i]);
    backend_->submit(reqs[i]);
  }
  ASSERT_TRUE(drain(*backend_));
  for (unsigned i = 0; i < kN; ++i) {
    EXPECT_EQ(waiters[i].res, 0) << "read " << i;
    EXPECT_EQ(std::memcmp(back[i].get(), bufs[i].get(), kLen), 0) << "data of request " << i;
  }
}

TEST_P(UringBackendDevice, MoreIosThanSqEntriesGoOutAsTheSqFills) {
  // An 8-entry SQ and 64 writes: get_sqe() hands full SQs to the kernel on
  // the way, and nothing is lost or completed twice.
  UringBackend small(UringBackend::Options{8, 64});
  ASSERT_EQ(small.attach(*dev_), 0);
  constexpr unsigned kN = 64;
  constexpr std::uint32_t kLen = 8192;
  Buffer data = aligned_buffer(kN * kLen);
  std::vector<Waiter> waiters(kN);
  std::vector<IoRequest> reqs(kN);
  for (unsigned i = 0; i < kN; ++i) {
    fill_pattern(data.get() + i * kLen, kLen, i * kLen, 55);
    reqs[i] = make_io(Op::kWrite, *dev_, i * kLen, data.get() + i * kLen, kLen, waiters[i]);
    small.submit(reqs[i]);
  }
  EXPECT_EQ(small.in_flight(), kN);
  ASSERT_TRUE(drain(small));
  for (unsigned i = 0; i < kN; ++i) {
    EXPECT_EQ(waiters[i].calls, 1U);
    EXPECT_EQ(waiters[i].res, 0);
  }
  expect_pattern_on_device(0, kN * kLen, 55);
  small.detach(*dev_);
}

TEST_P(UringBackendDevice, DetachedDeviceFailsWithEbadfThroughTheCompletion) {
  backend_->detach(*dev_);
  Buffer b = aligned_buffer(4096);
  EXPECT_EQ(io(Op::kRead, 0, b.get(), 4096), -EBADF);
  EXPECT_EQ(io(Op::kDiscard, 0, nullptr, 4096), -EBADF);
  ASSERT_EQ(backend_->attach(*dev_), 0);
  EXPECT_EQ(io(Op::kRead, 0, b.get(), 4096), 0);
}

TEST_P(UringBackendDevice, AttachIsCountedSoASharedDeviceStaysUntilTheLastDetach) {
  ASSERT_EQ(backend_->attach(*dev_), 0);  // a second table names the same device
  backend_->detach(*dev_);                // the first table goes away
  Buffer b = aligned_buffer(4096);
  EXPECT_EQ(io(Op::kRead, 0, b.get(), 4096), 0);
  backend_->detach(*dev_);
  EXPECT_EQ(io(Op::kRead, 0, b.get(), 4096), -EBADF);
  ASSERT_EQ(backend_->attach(*dev_), 0);  // TearDown detaches once more
}

TEST_P(UringBackendDevice, ReadBeyondTheEndFailsWithEio) {
  Buffer b = aligned_buffer(4096);
  EXPECT_EQ(io(Op::kRead, kDevBytes, b.get(), 4096), -EIO);
}

TEST_P(UringBackendDevice, ReadStraddlingTheEndIsContinuedNotReportedAsShortSuccess) {
  // The kernel returns the 4 KiB before the end; the continuation then reads
  // 0 bytes, which must become -EIO rather than a 4096-byte "success".
  Buffer b = aligned_buffer(8192);
  EXPECT_EQ(io(Op::kRead, kDevBytes - 4096, b.get(), 8192), -EIO);
}

INSTANTIATE_TEST_SUITE_P(Targets, UringBackendDevice, ::testing::Values(Kind::kFile, Kind::kLoop),
                         [](const ::testing::TestParamInfo<Kind>& param_info) {
                           return param_info.param == Kind::kFile ? "File" : "LoopDevice";
                         });

// --- the ring itself ------------------------------------------------------

struct CountingHandler final : RingHandler {
  UringBackend* backend = nullptr;
  int resubmit = 0;  // NOPs still to queue from on_cqe
  unsigned calls = 0;
  int last_res = INT_MIN;
  void on_cqe(int res, std::uint32_t /*cqe_flags*/) override {
    ++calls;
    last_res = res;
    if (resubmit > 0) {
      --resubmit;
      io_uring_sqe* sqe = backend->get_sqe();
      io_uring_prep_nop(sqe);
      io_uring_sqe_set_data(sqe, static_cast<RingHandler*>(this));
    }
  }
};

TEST(UringBackendRing, UsesSingleIssuerAndDeferTaskrunOnKernelsThatHaveThem) {
  UringBackend b;
  EXPECT_NE(b.setup_flags() & IORING_SETUP_SINGLE_ISSUER, 0U);
  EXPECT_NE(b.setup_flags() & IORING_SETUP_DEFER_TASKRUN, 0U);
}

TEST(UringBackendRing, EventsReadySeesCompletionWorkBeforeAnyCqeIsPosted) {
  // What adaptive polling relies on: with DEFER_TASKRUN a completion is
  // queued as work for the ring's thread and becomes a CQE only when that
  // thread enters the kernel; events_ready() must see it before that.
  UringBackend b;
  ASSERT_NE(b.setup_flags() & IORING_SETUP_TASKRUN_FLAG, 0U);
  EXPECT_FALSE(b.events_ready()) << "an idle ring";
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  CountingHandler h;
  char byte = 0;
  io_uring_sqe* sqe = b.get_sqe();
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_read(sqe, fds[0], &byte, 1, static_cast<std::uint64_t>(-1));
  io_uring_sqe_set_data(sqe, static_cast<RingHandler*>(&h));
  ASSERT_EQ(b.flush(), 0);
  EXPECT_FALSE(b.events_ready()) << "the read still waits for data";
  ASSERT_EQ(::write(fds[1], "x", 1), 1);
  // The pipe's wake-up ran in write() and queued the completion work.
  EXPECT_TRUE(b.events_ready());
  EXPECT_EQ(io_uring_cq_ready(b.ring()), 0U) << "no CQE until the ring's thread enters the kernel";
  EXPECT_EQ(h.calls, 0U);
  EXPECT_EQ(b.poll(0), 1);
  EXPECT_EQ(h.calls, 1U);
  EXPECT_EQ(h.last_res, 1);
  EXPECT_EQ(byte, 'x');
  EXPECT_FALSE(b.events_ready()) << "everything was reaped";
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(UringBackendRing, ForeignCqesGoToTheirHandlerAndZeroUserDataIsIgnored) {
  UringBackend b;
  CountingHandler h;
  h.backend = &b;
  io_uring_sqe* sqe = b.get_sqe();
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_nop(sqe);
  io_uring_sqe_set_data(sqe, static_cast<RingHandler*>(&h));
  sqe = b.get_sqe();
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_nop(sqe);
  io_uring_sqe_set_data64(sqe, 0);
  int delivered = 0;
  for (int i = 0; i < 100 && h.calls == 0; ++i) {
    const int r = b.poll(10000);
    ASSERT_GE(r, 0);
    delivered += r;
  }
  EXPECT_EQ(h.calls, 1U);
  EXPECT_EQ(h.last_res, 0);
  EXPECT_EQ(delivered, 1) << "the user_data 0 CQE must not be delivered anywhere";
  EXPECT_EQ(io_uring_cq_ready(b.ring()), 0U) << "every CQE is consumed";
  EXPECT_EQ(b.in_flight(), 0U) << "foreign SQEs are not backend I/O";
}

TEST(UringBackendRing, HandlerMaySubmitNewSqesFromItsCompletion) {
  UringBackend b;
  CountingHandler h;
  h.backend = &b;
  h.resubmit = 5;
  io_uring_sqe* sqe = b.get_sqe();
  io_uring_prep_nop(sqe);
  io_uring_sqe_set_data(sqe, static_cast<RingHandler*>(&h));
  for (int i = 0; i < 200 && h.calls < 6; ++i) {
    ASSERT_GE(b.poll(10000), 0);
  }
  EXPECT_EQ(h.calls, 6U);
}

TEST(UringBackendRing, GetSqeSubmitsWhenTheSqIsFull) {
  UringBackend b(UringBackend::Options{8, 16});
  CountingHandler h;
  for (int i = 0; i < 20; ++i) {
    io_uring_sqe* sqe = b.get_sqe();
    ASSERT_NE(sqe, nullptr) << "SQE " << i;
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data(sqe, static_cast<RingHandler*>(&h));
  }
  for (int i = 0; i < 100 && h.calls < 20; ++i) {
    ASSERT_GE(b.poll(10000), 0);
  }
  EXPECT_EQ(h.calls, 20U);
}

TEST(UringBackendRing, PollWithWaitReturnsAfterTheTimeoutWhenIdle) {
  UringBackend b;
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(b.poll(20000), 0);
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(waited, 15ms);
  EXPECT_LT(waited, 2s);
  EXPECT_EQ(b.poll(0), 0);
}

TEST(UringBackendRing, DeviceIdBeyondTheFileTableIsRejectedAndItsIoFailsWithEbadf) {
  UringBackend b(UringBackend::Options{32, 64});
  TempFile f(1 << 20);
  const int fd = ::open(f.path().c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  StrayDevice stray(64, fd);
  EXPECT_EQ(b.attach(stray), -EINVAL);
  Waiter w;
  Buffer buf = aligned_buffer(4096);
  IoRequest r = make_io(Op::kRead, stray, 0, buf.get(), 4096, w);
  b.submit(r);
  EXPECT_EQ(w.calls, 0U);
  EXPECT_EQ(b.in_flight(), 1U);
  ASSERT_TRUE(drain(b));
  EXPECT_EQ(w.calls, 1U);
  EXPECT_EQ(w.res, -EBADF);
  ::close(fd);
}

TEST(UringBackendRing, RequestWithoutDeviceFailsWithEinval) {
  UringBackend b;
  Waiter w;
  IoRequest r;
  r.op = Op::kFlush;
  r.completion = &w;
  b.submit(r);
  ASSERT_TRUE(drain(b));
  EXPECT_EQ(w.res, -EINVAL);
}

// --- fallbacks ---------------------------------------------------------------

TEST(UringBackendFallback, WriteZeroesWritesZeroesWhereZeroRangeIsUnsupported) {
  // tmpfs punches holes but has no FALLOC_FL_ZERO_RANGE, and takes O_DIRECT
  // since Linux 6.6: the backend must fall back to writing zeroes.
  std::unique_ptr<TempFile> f;
  try {
    f = std::make_unique<TempFile>(4 << 20, "/dev/shm");
  } catch (const std::exception& e) {
    GTEST_SKIP() << e.what();
  }
  auto opener = make_system_device_opener();
  BlockDevicePtr dev;
  try {
    dev = opener->open(f->path());
  } catch (const Error& e) {
    GTEST_SKIP() << e.what();
  }
  UringBackend b;
  ASSERT_EQ(b.attach(*dev), 0);
  Buffer data = aligned_buffer(1 << 20);
  fill_pattern(data.get(), 1 << 20, 0, 31);
  Waiter w;
  IoRequest r = make_io(Op::kWrite, *dev, 0, data.get(), 1 << 20, w);
  b.submit(r);
  ASSERT_TRUE(drain(b));
  ASSERT_EQ(w.res, 0);

  // 200 KiB spans several chunks of the zero buffer; do it twice so that the
  // second one starts directly with the remembered fallback.
  for (std::uint64_t off : {4096ULL, 600ULL << 10}) {
    Waiter wz;
    IoRequest z = make_io(Op::kWriteZeroes, *dev, off, nullptr, 200 << 10, wz);
    b.submit(z);
    ASSERT_TRUE(drain(b));
    ASSERT_EQ(wz.res, 0);
    std::memset(data.get() + off, 0, 200 << 10);
  }
  Buffer got = aligned_buffer(1 << 20);
  direct_pread(f->path(), got.get(), 1 << 20, 0);
  EXPECT_EQ(std::memcmp(got.get(), data.get(), 1 << 20), 0);
  b.detach(*dev);
}

TEST(UringBackendFallback, DiscardBeyondTheEndFailsWithEinvalInsteadOfFallingBack) {
  // blkdev_uring_cmd() answers -EINVAL both to an unknown command (a reason
  // to fall back) and to a range outside the device (not one). Falling back
  // there would be wrong twice: fallocate(KEEP_SIZE) on a block device clamps
  // the range to the device end and reports success for a discard that was
  // not done, and the device would lose its uring_cmd discard for good.
  TempFile f(kDevBytes);
  LoopDevice loop(f.path());
  if (loop.path().empty()) {
    GTEST_SKIP() << "no loop device: " << loop.error();
  }
  auto opener = make_system_device_opener();
  BlockDevicePtr dev = opener->open(loop.path());
  UringBackend b;
  ASSERT_EQ(b.attach(*dev), 0);
  auto run = [&](Op op, std::uint64_t off, std::byte* buf, std::uint32_t len) {
    Waiter w;
    IoRequest r = make_io(op, *dev, off, buf, len, w);
    b.submit(r);
    EXPECT_TRUE(drain(b));
    return w.res;
  };
  Buffer data = aligned_buffer(65536);
  fill_pattern(data.get(), 65536, 0, 61);
  ASSERT_EQ(run(Op::kWrite, 0, data.get(), 65536), 0);
  EXPECT_EQ(run(Op::kDiscard, kDevBytes - 4096, nullptr, 8192), -EINVAL);
  EXPECT_EQ(run(Op::kDiscard, 0, nullptr, 65536), 0);
  Buffer got = aligned_buffer(65536);
  direct_pread(loop.path(), got.get(), 65536, 0);
  EXPECT_TRUE(all_zero(got.get(), 65536));
  b.detach(*dev);
}

// A loop device of our own at a high index, created with LOOP_CTL_ADD and
// removed with LOOP_CTL_REMOVE afterwards. For tests that change queue limits:
// a limit written to sysfs outlives the binding (discard_max_bytes=0 cannot
// even be written back, since it also zeroes discard_granularity), so the
// device must be destroyed rather than handed back to `losetup -f` users.
// The high index keeps LOOP_CTL_GET_FREE from offering it to anyone else.
class ScratchLoop {
 public:
  explicit ScratchLoop(const std::string& backing) {
    control_ = ::open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (control_ < 0) {
      error_ = "/dev/loop-control: " + errno_string(errno);
      return;
    }
    for (int i = 200; i < 256 && index_ < 0; ++i) {
      if (::ioctl(control_, LOOP_CTL_ADD, i) >= 0) {
        index_ = i;
      }
    }
    if (index_ < 0) {
      error_ = "LOOP_CTL_ADD found no free index in 200..255";
      return;
    }
    const std::string node = "/dev/loop" + std::to_string(index_);
    std::string out;
    const int status = run_command("losetup --direct-io=on " + node + " '" + backing + "'", out);
    if (status != 0) {
      error_ = "losetup " + node + " failed: " + out;
      return;
    }
    path_ = node;
  }
  ~ScratchLoop() {
    std::string out;
    if (!path_.empty()) {
      run_command("losetup -d " + path_, out);
    }
    if (index_ >= 0) {
      // The detach completes when the last opener closes; wait for it.
      bool removed = false;
      for (int i = 0; i < 250 && !removed; ++i) {
        removed = ::ioctl(control_, LOOP_CTL_REMOVE, index_) >= 0;
        if (!removed) {
          ::usleep(20000);
        }
      }
      if (!removed) {
        ADD_FAILURE() << "could not remove loop" << index_ << ": " << errno_string(errno);
      }
    }
    if (control_ >= 0) {
      ::close(control_);
    }
  }
  ScratchLoop(const ScratchLoop&) = delete;
  ScratchLoop& operator=(const ScratchLoop&) = delete;
  const std::string& path() const { return path_; }
  const std::string& error() const { return error_; }
  std::string sysfs_queue() const { return "/sys/block/loop" + std::to_string(index_) + "/queue/"; }

 private:
  int control_ = -1;
  int index_ = -1;
  std::string path_;
  std::string error_;
};

TEST(UringBackendFallback, DiscardOnADeviceWithoutDiscardEndsInEopnotsuppAfterTheFallbacks) {
  // A loop device whose discard limit is set to 0 rejects the discard
  // uring_cmd with -EOPNOTSUPP (on the fixed file and on the raw fd). The
  // backend then tries fallocate(PUNCH_HOLE|KEEP_SIZE) on the block device, a
  // WRITE_ZEROES that may unmap, which loop also refuses once its discard
  // limit is 0 (lo_fallocate() checks bdev_max_discard_sectors() for every
  // fallocate-backed request). So the whole chain runs and the request ends
  // with -EOPNOTSUPP, the device's real answer, without touching data.
  // WRITE_ZEROES (ZERO_RANGE) still works: the block layer falls back to
  // writing zero pages itself.
  TempFile f(kDevBytes);
  ScratchLoop loop(f.path());
  if (loop.path().empty()) {
    GTEST_SKIP() << "no scratch loop device: " << loop.error();
  }
  // The temporary stream is closed (and the value written) at the semicolon.
  std::ofstream(loop.sysfs_queue() + "discard_max_bytes") << "0\n";
  std::string limit;
  std::ifstream(loop.sysfs_queue() + "discard_max_bytes") >> limit;
  if (limit != "0") {
    GTEST_SKIP() << "cannot disable discard on " << loop.path() << " (discard_max_bytes=" << limit << ")";
  }
  auto opener = make_system_device_opener();
  BlockDevicePtr dev = opener->open(loop.path());
  UringBackend b;
  ASSERT_EQ(b.attach(*dev), 0);
  Buffer data = aligned_buffer(1 << 20);
  fill_pattern(data.get(), 1 << 20, 0, 41);
  Waiter w;
  IoRequest r = make_io(Op::kWrite, *dev, 0, data.get(), 1 << 20, w);
  b.submit(r);
  ASSERT_TRUE(drain(b));
  ASSERT_EQ(w.res, 0);
  // Twice: the first discard walks the whole chain, the second starts where
  // the backend remembered the device's discard ended up.
  for (std::uint64_t off : {65536ULL, 512ULL << 10}) {
    Waiter wd;
    IoRequest d = make_io(Op::kDiscard, *dev, off, nullptr, 128 << 10, wd);
    b.submit(d);
    ASSERT_TRUE(drain(b));
    EXPECT_EQ(wd.calls, 1U);
    EXPECT_EQ(wd.res, -EOPNOTSUPP) << errno_string(wd.res);
  }
  Buffer got = aligned_buffer(1 << 20);
  direct_pread(loop.path(), got.get(), 1 << 20, 0);
  EXPECT_EQ(std::memcmp(got.get(), data.get(), 1 << 20), 0);
  // The device still works for everything else.
  Waiter wz;
  IoRequest z = make_io(Op::kWriteZeroes, *dev, 0, nullptr, 4096, wz);
  b.submit(z);
  ASSERT_TRUE(drain(b));
  EXPECT_EQ(wz.res, 0);
  b.detach(*dev);
}

// --- the system device opener -------------------------------------------------

TEST(SystemDeviceOpener, RegularFileHasFileGeometryAndNoRdev) {
  TempFile f(kDevBytes + 100);  // the partial sector at the end is not part of the device
  auto opener = make_system_device_opener();
  BlockDevicePtr dev = opener->open(f.path());
  EXPECT_FALSE(dev->is_block_device());
  EXPECT_EQ(dev->rdev(), 0U);
  EXPECT_EQ(dev->size_sectors(), kDevBytes / 512);
  EXPECT_EQ(dev->logical_block_size(), 512U);
  EXPECT_EQ(dev->physical_block_size(), 4096U);
  EXPECT_FALSE(dev->volatile_write_cache());
  EXPECT_EQ(dev->path(), f.path());
  EXPECT_EQ(dev->display_name(), f.path());
  EXPECT_GE(dev->fd(), 0);
  EXPECT_LT(dev->id(), 4096U);
  const int flags = ::fcntl(dev->fd(), F_GETFL);
  EXPECT_NE(flags & O_DIRECT, 0);
  EXPECT_EQ(flags & O_ACCMODE, O_RDWR);
  EXPECT_NE(::fcntl(dev->fd(), F_GETFD) & FD_CLOEXEC, 0);
}

TEST(SystemDeviceOpener, LoopDeviceHasBlockGeometryAndOpensByMajorMinor) {
  TempFile f(kDevBytes);
  LoopDevice loop(f.path());
  if (loop.path().empty()) {
    GTEST_SKIP() << "no loop device: " << loop.error();
  }
  auto opener = make_system_device_opener();
  BlockDevicePtr dev = opener->open(loop.path());
  struct stat st {};
  ASSERT_EQ(::stat(loop.path().c_str(), &st), 0);
  EXPECT_TRUE(dev->is_block_device());
  EXPECT_EQ(dev->rdev(), st.st_rdev);
  EXPECT_EQ(dev->size_sectors(), kDevBytes / 512);
  EXPECT_EQ(dev->logical_block_size(), 512U);
  EXPECT_GE(dev->physical_block_size(), 512U);
  std::string cache;
  std::getline(std::ifstream(loop.sysfs_queue() + "write_cache"), cache);
  EXPECT_EQ(dev->volatile_write_cache(), cache == "write back");
  const std::string number = std::to_string(major(st.st_rdev)) + ":" + std::to_string(minor(st.st_rdev));
  EXPECT_EQ(dev->display_name(), number);

  // "major:minor" names the same device, and the opener shares it.
  BlockDevicePtr by_number = opener->open(number);
  EXPECT_EQ(by_number.get(), dev.get());
  // A separate opener (after the first let go) resolves the number to the node.
  dev.reset();
  by_number.reset();
  auto opener2 = make_system_device_opener();
  BlockDevicePtr fresh = opener2->open(number);
  EXPECT_EQ(fresh->rdev(), st.st_rdev);
  EXPECT_EQ(fresh->path(), loop.path());
}

TEST(SystemDeviceOpener, OpeningTheSameFileTwiceSharesOneDevice) {
  TempFile f(1 << 20);
  auto opener = make_system_device_opener();
  BlockDevicePtr a = opener->open(f.path());
  BlockDevicePtr b = opener->open(f.path());
  EXPECT_EQ(a.get(), b.get());
}

TEST(SystemDeviceOpener, FreedIdsAreReusedAndTheFdIsClosed) {
  TempFile f1(1 << 20);
  TempFile f2(1 << 20);
  auto opener = make_system_device_opener();
  BlockDevicePtr a = opener->open(f1.path());
  BlockDevicePtr b = opener->open(f2.path());
  EXPECT_NE(a->id(), b->id());
  const std::uint32_t freed = a->id();
  const int fd = a->fd();
  a.reset();
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1) << "the fd must be closed with the device";
  TempFile f3(1 << 20);
  BlockDevicePtr c = opener->open(f3.path());
  EXPECT_EQ(c->id(), freed);
}

TEST(SystemDeviceOpener, MissingPathErrorNamesThePathAndTheReason) {
  auto opener = make_system_device_opener();
  try {
    opener->open("/dev/ubdm-no-such-device");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ENOENT);
    EXPECT_STREQ(e.what(), "cannot open /dev/ubdm-no-such-device: No such file or directory");
  }
}

TEST(SystemDeviceOpener, DirectoryIsNotABlockDeviceOrRegularFile) {
  auto opener = make_system_device_opener();
  try {
    opener->open("/var/tmp");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "/var/tmp is not a block device or regular file");
  }
}

TEST(SystemDeviceOpener, UnknownMajorMinorIsRejected) {
  auto opener = make_system_device_opener();
  try {
    opener->open("4094:65000");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ENODEV);
    EXPECT_NE(std::string(e.what()).find("4094:65000"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ubdm
