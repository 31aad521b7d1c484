// SPDX-License-Identifier: MIT
#include "io/uring_backend.hpp"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>

#include "ubdm/error.hpp"

namespace ubdm {
namespace {

// The address READ/WRITE(_FIXED) take for the rest of `req`: a user address,
// or for a kernel buffer (zero copy) the byte offset into the registered
// request, since the kernel treats such a buffer as starting at address 0.
void* data_address(const IoRequest& req) {
  if (req.buf == nullptr) {
    return reinterpret_cast<void*>(static_cast<std::uintptr_t>(req.buf_offset + req.done));
  }
  return req.buf + req.done;
}

// Bit 0 of user_data marks the backend's own IoRequests (see RingHandler).
constexpr std::uint64_t kBackendTag = 1;

// The block layer's io_uring command number for discard, from
// include/uapi/linux/blkdev.h (Linux 6.12). Debian's kernel headers predate
// it, so it is spelled out: _IO(0x12, 0) = (0x12 << _IOC_TYPESHIFT) | 0.
constexpr std::uint32_t kBlockUringCmdDiscard = 0x12U << 8;
static_assert(kBlockUringCmdDiscard == _IO(0x12, 0));

// The write-zeroes fallback writes from this. It is const, so it stays zero;
// page alignment satisfies O_DIRECT on any logical block size.
constexpr std::size_t kZeroChunk = 64 * 1024;
alignas(4096) const std::array<std::byte, kZeroChunk> kZeroBuffer{};

// IoRequest::attempt holds the current phase (how the request is being
// carried out) in its top 3 bits and the -EAGAIN retry count in the low 5.
enum Phase : std::uint8_t {
  kPhaseRw = 0,         // READ/WRITE/FLUSH as themselves
  kPhaseCmdFixed = 1,   // DISCARD: uring_cmd on the fixed file
  kPhaseCmdRaw = 2,     // DISCARD: uring_cmd on the raw fd
  kPhasePunch = 3,      // DISCARD: fallocate PUNCH_HOLE
  kPhaseZeroRange = 4,  // WRITE_ZEROES: fallocate ZERO_RANGE
  kPhaseZeroWrite = 5,  // WRITE_ZEROES: writes from kZeroBuffer
};
constexpr unsigned kPhaseShift = 5;
constexpr std::uint8_t kRetryMask = (1U << kPhaseShift) - 1;
constexpr unsigned kMaxRetries = kRetryMask;

Phase phase_of(const IoRequest& req) { return static_cast<Phase>(req.attempt >> kPhaseShift); }

void set_phase(IoRequest& req, Phase p) {
  // A new phase starts its own retry budget.
  req.attempt = static_cast<std::uint8_t>(static_cast<unsigned>(p) << kPhaseShift);
}

// Most bytes one READ/WRITE SQE asks for: its length field is 32 bits, and
// the kernel moves at most MAX_RW_COUNT (2 GiB - 4 KiB) per call anyway. The
// rest of a longer request is continued like a short transfer.
constexpr std::uint64_t kMaxRwChunk = 1ULL << 30;

constexpr std::size_t kDeferredCapacity = 4096;
constexpr unsigned kReapBatch = 64;

// True if the byte range is aligned to the device's logical block size and
// lies inside it: what blkdev_uring_cmd() checks before saying -EINVAL.
bool range_is_valid(const IoRequest& req) {
  const std::uint64_t lbs = req.dev->logical_block_size();
  const std::uint64_t end = req.offset + req.len;
  return lbs != 0 && (req.offset % lbs) == 0 && (req.len % lbs) == 0 &&
         end <= (req.dev->size_sectors() << kSectorShift);
}

// True if the request is on a block device that shrank under us (a deleted
// SCSI disk's size drops to 0) so that it no longer covers the request. A
// request beyond the size the device had when it was opened is the caller's
// mistake, not a vanished device. One ioctl, on the error path only.
bool device_gone(const IoRequest& req) {
  if (!req.dev->is_block_device()) {
    return false;
  }
  std::uint64_t bytes = 0;
  if (::ioctl(req.dev->fd(), BLKGETSIZE64, &bytes) < 0) {
    return errno == ENXIO || errno == ENODEV;
  }
  const std::uint64_t opened = req.dev->size_sectors() << kSectorShift;
  return bytes < opened && req.offset + req.len > bytes;
}

std::uint64_t tag_of(IoRequest& req) { return reinterpret_cast<std::uintptr_t>(&req) | kBackendTag; }

// Ring setup flags, best first. DEFER_TASKRUN (6.1) runs completion work only
// when we enter the kernel to reap, which suits one thread per ring;
// SINGLE_ISSUER (6.0) lets the kernel skip locking; COOP_TASKRUN (5.19)
// avoids IPIs; TASKRUN_FLAG (5.19) makes pending completion work visible in
// the SQ flags, so events_ready() can poll for it without a syscall;
// SUBMIT_ALL (5.18) keeps a bad SQE from stalling the batch.
constexpr unsigned kTaskrun = IORING_SETUP_TASKRUN_FLAG;
constexpr std::array<unsigned, 5> kSetupTiers = {
    IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | kTaskrun,
    IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | kTaskrun,
    IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | kTaskrun,
    IORING_SETUP_SUBMIT_ALL,
    0,
};

[[noreturn]] void fail_setup(int err) {
  std::string why = errno_string(err);
  switch (err) {
    case EPERM:
      why += " (io_uring may be disabled: see /proc/sys/kernel/io_uring_disabled)";
      break;
    case ENOSYS:
      why += " (the kernel was built without io_uring)";
      break;
    case ENOMEM:
      why += " (check RLIMIT_MEMLOCK)";
      break;
    default:
      break;
  }
  fail(err, "cannot set up io_uring: {}", why);
}

// Whether an io_uring_enter error only delays the SQEs (a full CQ, a short
// resource, a signal): they stay queued for the next flush() or poll().
bool transient(int ret) { return ret == -EAGAIN || ret == -EBUSY || ret == -EINTR; }
// What flush() reports for a submission: 0, or -errno for a real failure.
int submit_result(int ret) { return ret < 0 && !transient(ret) ? ret : 0; }

}  // namespace

UringBackend::UringBackend(Options opts) : opts_(opts) {
  // Everything the data path needs is allocated here, before the ring exists.
  slots_.resize(opts_.max_files);
  deferred_.reserve(kDeferredCapacity);
  deferred_scratch_.reserve(kDeferredCapacity);

  int ret = -EINVAL;
  for (unsigned flags : kSetupTiers) {
    io_uring_params params{};
    params.flags = flags;
    ret = io_uring_queue_init_params(opts_.entries, &ring_, &params);
    if (ret != -EINVAL) {
      setup_flags_ = flags;
      break;
    }
  }
  if (ret < 0) {
    fail_setup(-ret);
  }
  if (opts_.max_files > 0) {
    ret = io_uring_register_files_sparse(&ring_, opts_.max_files);
    if (ret < 0) {
      io_uring_queue_exit(&ring_);
      // The kernel refuses a table larger than the soft RLIMIT_NOFILE.
      fail(-ret, "cannot register a fixed-file table of {} slots with io_uring: {}{}", opts_.max_files,
           errno_string(-ret), ret == -EMFILE ? " (" + nofile_limit_advice() + ")" : std::string());
    }
  }
}

UringBackend::~UringBackend() { io_uring_queue_exit(&ring_); }

void UringBackend::drop_buffers() {
  if (buffers_registered_) {
    io_uring_unregister_buffers(&ring_);
    buffers_registered_ = false;
  }
}

int UringBackend::register_buffers(std::span<const iovec> bufs) {
  drop_buffers();
  if (bufs.empty()) {
    return 0;
  }
  int ret = io_uring_register_buffers(&ring_, bufs.data(), static_cast<unsigned>(bufs.size()));
  if (ret < 0) {
    return ret;
  }
  buffers_registered_ = true;
  return 0;
}

int UringBackend::register_sparse_buffers(unsigned n) {
  drop_buffers();
  const int ret = io_uring_register_buffers_sparse(&ring_, n);
  if (ret < 0) {
    return ret;
  }
  buffers_registered_ = true;
  return 0;
}

int UringBackend::attach(const BlockDevice& dev) {
  if (dev.id() >= slots_.size() || dev.fd() < 0) {
    return -EINVAL;
  }
  Slot& slot = slots_[dev.id()];
  if (slot.refs > 0 && slot.dev == &dev && slot.fd == dev.fd()) {
    ++slot.refs;
    return 0;
  }
  // Either a fresh slot, or one still holding a device that was destroyed
  // without being detached and whose id was reused: install over it.
  int fd = dev.fd();
  int ret = io_uring_register_files_update(&ring_, dev.id(), &fd, 1);
  if (ret < 0) {
    return ret;
  }
  slot = Slot{};
  slot.dev = &dev;
  slot.fd = fd;
  slot.refs = 1;
  slot.is_bdev = dev.is_block_device();
  slot.discard_phase = slot.is_bdev ? kPhaseCmdFixed : kPhasePunch;
  slot.zero_range_ok = true;
  return 0;
}

int UringBackend::install_own_file(int fd) {
  if (opts_.max_files == 0) {
    return -EINVAL;
  }
  const unsigned slot = opts_.max_files - 1;
  const int ret = io_uring_register_files_update(&ring_, slot, &fd, 1);
  return ret < 0 ? ret : static_cast<int>(slot);
}

void UringBackend::detach(const BlockDevice& dev) {
  if (dev.id() >= slots_.size()) {
    return;
  }
  Slot& slot = slots_[dev.id()];
  if (slot.refs == 0 || slot.dev != &dev) {
    return;
  }
  if (--slot.refs > 0) {
    return;
  }
  // I/O still in flight keeps its own reference to the file; new I/O on the
  // slot fails with -EBADF.
  int fd = -1;
  int ret = io_uring_register_files_update(&ring_, dev.id(), &fd, 1);
  (void)ret;  // nothing useful to do: the slot is marked free either way
  slot = Slot{};
}

int UringBackend::validate(const IoRequest& req) const {
  if (req.dev == nullptr || req.completion == nullptr) {
    return -EINVAL;
  }
  if (req.dev->id() >= slots_.size()) {
    return -EBADF;
  }
  const Slot& slot = slots_[req.dev->id()];
  if (slot.refs == 0 || slot.dev != req.dev) {
    return -EBADF;
  }
  if (op_has_data(req.op) && req.buf == nullptr && req.buf_index < 0 && req.len > 0) {
    return -EINVAL;  // no data at all (a kernel buffer has an index)
  }
  return 0;
}

void UringBackend::submit(IoRequest& req) {
  ++in_flight_;
  req.done = 0;
  req.attempt = 0;
  const int err = validate(req);
  if (err != 0) {
    defer(req, err, true);
    return;
  }
  if (op_has_range(req.op) && req.len == 0) {
    // Nothing to transfer; the kernel would report 0 bytes as end-of-file.
    defer(req, 0, true);
    return;
  }
  start_phase(req);
  issue(req);
}

void UringBackend::start_phase(IoRequest& req) {
  const Slot& slot = slots_[req.dev->id()];
  switch (req.op) {
    case Op::kDiscard:
      set_phase(req, static_cast<Phase>(slot.discard_phase));
      break;
    case Op::kWriteZeroes:
      set_phase(req, slot.zero_range_ok ? kPhaseZeroRange : kPhaseZeroWrite);
      break;
    case Op::kRead:
    case Op::kWrite:
    case Op::kFlush:
      set_phase(req, kPhaseRw);
      break;
  }
}

bool UringBackend::reserve_sqes(unsigned n) {
  if (io_uring_sq_space_left(&ring_) < n) {
    (void)io_uring_submit(&ring_);
  }
  return io_uring_sq_space_left(&ring_) >= n;
}

io_uring_sqe* UringBackend::get_sqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {
    // The SQ is full: hand it to the kernel to make room. An error here
    // (-EBUSY, -EAGAIN) leaves it full and the caller defers.
    int ret = io_uring_submit(&ring_);
    (void)ret;
    sqe = io_uring_get_sqe(&ring_);
  }
  return sqe;
}

bool UringBackend::prep(IoRequest& req) {
  io_uring_sqe* sqe = get_sqe();
  if (sqe == nullptr) {
    return false;
  }
  const Slot& slot = slots_[req.dev->id()];
  const int index = static_cast<int>(req.dev->id());
  const std::uint64_t offset = req.offset + req.done;
  const std::uint64_t remaining = req.len - req.done;
  const auto rw_len = static_cast<unsigned>(std::min(remaining, kMaxRwChunk));
  bool fixed_file = true;

  switch (phase_of(req)) {
    case kPhaseRw:
      if (req.op == Op::kFlush) {
        io_uring_prep_fsync(sqe, index, IORING_FSYNC_DATASYNC);
      } else if (req.op == Op::kRead) {
        void* buf = data_address(req);
        if (req.buf_index >= 0) {
          io_uring_prep_read_fixed(sqe, index, buf, rw_len, offset, req.buf_index);
        } else {
          io_uring_prep_read(sqe, index, buf, rw_len, offset);
        }
      } else {
        const void* buf = data_address(req);
        if (req.buf_index >= 0) {
          io_uring_prep_write_fixed(sqe, index, buf, rw_len, offset, req.buf_index);
        } else {
          io_uring_prep_write(sqe, index, buf, rw_len, offset);
        }
        if ((req.flags & kReqFua) != 0) {
          // Write-through for this I/O only: REQ_FUA where the device has it,
          // a flush after the write where it does not.
          sqe->rw_flags = RWF_DSYNC;
        }
      }
      break;
    case kPhaseCmdFixed:
    case kPhaseCmdRaw:
      // blkdev_uring_cmd() reads the byte range from addr and addr3 and
      // rejects the SQE unless ioprio, len, rw_flags, file_index and the word
      // after cmd_op are zero; prep_rw zeroes them all.
      fixed_file = phase_of(req) == kPhaseCmdFixed;
      io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fixed_file ? index : slot.fd, nullptr, 0, 0);
      sqe->cmd_op = kBlockUringCmdDiscard;
      sqe->addr = offset;
      sqe->addr3 = remaining;
      break;
    case kPhasePunch:
      io_uring_prep_fallocate(sqe, index, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                              static_cast<off_t>(offset), static_cast<off_t>(remaining));
      break;
    case kPhaseZeroRange:
      io_uring_prep_fallocate(sqe, index, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                              static_cast<off_t>(offset), static_cast<off_t>(remaining));
      break;
    case kPhaseZeroWrite: {
      const auto chunk = static_cast<unsigned>(std::min<std::uint64_t>(remaining, kZeroChunk));
      io_uring_prep_write(sqe, index, kZeroBuffer.data(), chunk, offset);
      break;
    }
  }
  if (fixed_file) {
    sqe->flags |= IOSQE_FIXED_FILE;
  }
  io_uring_sqe_set_data64(sqe, tag_of(req));
  return true;
}

void UringBackend::issue(IoRequest& req) {
  if (!prep(req)) {
    defer(req, 0, false);
  }
}

void UringBackend::defer(IoRequest& req, int res, bool complete) {
  // Capacity is reserved up front; exceeding it (thousands of requests stuck
  // without an SQE) would allocate, which beats losing a request.
  deferred_.push_back(Deferred{&req, res, complete});
}

void UringBackend::finish(IoRequest& req, int res) {
  --in_flight_;
  ++delivered_;
  req.completion->io_complete(res);
}

void UringBackend::on_cqe(IoRequest& req, int res) {
  const Phase phase = phase_of(req);
  if (res == -EAGAIN && (req.attempt & kRetryMask) < kMaxRetries) {
    ++req.attempt;
    continued_ = true;
    issue(req);
    return;
  }

  // A continuation or fallback goes back through issue(); the device may have
  // been detached since the request started.
  auto resubmit = [this, &req] {
    const int err = validate(req);
    if (err != 0) {
      finish(req, err);
      return;
    }
    continued_ = true;
    issue(req);
  };

  switch (phase) {
    case kPhaseRw:
      if (req.op == Op::kFlush) {
        finish(req, res < 0 ? res : 0);
        return;
      }
      [[fallthrough]];
    case kPhaseZeroWrite: {
      // Past the end of a block device, writes fail with ENOSPC and reads
      // transfer nothing: if the device shrank under us, it went away.
      if ((res == -ENOSPC || res == 0) && device_gone(req)) {
        finish(req, -ENXIO);
        return;
      }
      if (res < 0) {
        finish(req, res);
        return;
      }
      if (res == 0) {
        // End of device (or file) before the end of the request.
        finish(req, -EIO);
        return;
      }
      const std::uint64_t remaining = req.len - req.done;
      req.done += std::min(static_cast<std::uint64_t>(res), remaining);
      if (req.done >= req.len) {
        finish(req, 0);
        return;
      }
      // Short transfer: continue with the rest. The retry budget is for
      // -EAGAIN only, so progress resets it.
      set_phase(req, phase);
      resubmit();
      return;
    }
    case kPhaseCmdFixed:
    case kPhaseCmdRaw: {
      if (res >= 0) {
        finish(req, 0);
        return;
      }
      // A range beyond the device's current end is -EINVAL: check whether
      // the device went away before taking it for an unknown command.
      if ((res == -EINVAL || res == -ENOSPC) && device_gone(req)) {
        finish(req, -ENXIO);
        return;
      }
      // -EOPNOTSUPP: no uring_cmd on this file or kernel, or no discard on
      // the device; -ENOTTY/-EINVAL: an unknown command. -EBADF on the fixed
      // file: a kernel that wants a plain fd for uring_cmd. Each step is
      // taken at most once per device (the slot remembers it).
      // But -EINVAL is also the answer to a misaligned or out-of-range
      // request: that one must fail on its own without costing the device
      // its discard path for good.
      const bool unsupported =
          res == -EOPNOTSUPP || res == -ENOTTY || (res == -EINVAL && range_is_valid(req));
      const bool bad_fixed = phase == kPhaseCmdFixed && res == -EBADF;
      if (!unsupported && !bad_fixed) {
        finish(req, res);
        return;
      }
      const Phase next = phase == kPhaseCmdFixed ? kPhaseCmdRaw : kPhasePunch;
      Slot& slot = slots_[req.dev->id()];
      if (slot.dev == req.dev && slot.discard_phase < next) {
        slot.discard_phase = next;
      }
      set_phase(req, std::max(next, static_cast<Phase>(slot.discard_phase)));
      resubmit();
      return;
    }
    case kPhasePunch:
      if ((res == -EINVAL || res == -ENOSPC) && device_gone(req)) {
        res = -ENXIO;
      }
      finish(req, res < 0 ? res : 0);
      return;
    case kPhaseZeroRange:
      if (res == -EOPNOTSUPP) {
        Slot& slot = slots_[req.dev->id()];
        if (slot.dev == req.dev) {
          slot.zero_range_ok = false;
        }
        set_phase(req, kPhaseZeroWrite);
        resubmit();
        return;
      }
      if ((res == -EINVAL || res == -ENOSPC) && device_gone(req)) {
        res = -ENXIO;
      }
      finish(req, res < 0 ? res : 0);
      return;
  }
  finish(req, -EIO);  // unreachable: every phase is handled above
}

void UringBackend::run_deferred(bool deliver) {
  // Completions may submit (and defer) new requests: work on a snapshot. A
  // completion that calls flush() must not swap the snapshot under us.
  if (deferred_.empty() || in_run_deferred_) {
    return;
  }
  in_run_deferred_ = true;
  deferred_scratch_.swap(deferred_);
  for (const Deferred& d : deferred_scratch_) {
    if (d.complete) {
      if (deliver) {
        finish(*d.req, d.res);
      } else {
        deferred_.push_back(d);
      }
    } else if (const int err = validate(*d.req); err != 0) {
      if (deliver) {
        finish(*d.req, err);
      } else {
        deferred_.push_back(Deferred{d.req, err, true});
      }
    } else {
      issue(*d.req);
    }
  }
  deferred_scratch_.clear();
  in_run_deferred_ = false;
}

int UringBackend::flush() {
  run_deferred(false);
  return submit_result(io_uring_submit(&ring_));
}

int UringBackend::flush_and_collect() {
  run_deferred(false);
  return submit_result(io_uring_submit_and_get_events(&ring_));
}

unsigned UringBackend::reap() {
  struct Entry {
    std::uint64_t user_data;
    int res;
    std::uint32_t flags;
  };
  // Copy a batch out and advance the CQ before dispatching, so handlers see a
  // consistent ring whatever they submit. Bounded so a handler that keeps
  // producing immediate completions cannot hold us here forever.
  const unsigned limit = *ring_.cq.kring_entries;
  unsigned handled = 0;
  unsigned to_handlers = 0;
  while (handled < limit) {
    std::array<Entry, kReapBatch> batch;
    unsigned n = 0;
    unsigned head = 0;
    io_uring_cqe* cqe = nullptr;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      batch[n++] = Entry{cqe->user_data, cqe->res, cqe->flags};
      if (n == batch.size()) {
        break;
      }
    }
    if (n == 0) {
      break;
    }
    io_uring_cq_advance(&ring_, n);
    handled += n;
    for (unsigned i = 0; i < n; ++i) {
      const Entry& e = batch[i];
      if ((e.user_data & kBackendTag) != 0) {
        on_cqe(*reinterpret_cast<IoRequest*>(e.user_data & ~kBackendTag), e.res);
      } else if (e.user_data != 0) {
        ++to_handlers;
        reinterpret_cast<RingHandler*>(e.user_data)->on_cqe(e.res, e.flags);
      }
    }
  }
  return to_handlers;
}

bool UringBackend::events_ready() const {
  if (io_uring_cq_ready(&ring_) > 0) {
    return true;
  }
  // The kernel sets IORING_SQ_TASKRUN when completion work is queued for us
  // (only with TASKRUN_FLAG; without it only posted CQEs are seen).
  return (__atomic_load_n(ring_.sq.kflags, __ATOMIC_ACQUIRE) & IORING_SQ_TASKRUN) != 0;
}

int UringBackend::poll(unsigned wait_usec) {
  const unsigned before = delivered_;
  continued_ = false;
  run_deferred(true);
  const bool have_work = delivered_ != before || io_uring_cq_ready(&ring_) > 0;

  int ret = 0;
  if (have_work && io_uring_sq_ready(&ring_) == 0) {
    // Completions are waiting and nothing is queued to go: reap them without
    // a system call (more completion work, if any, shows in events_ready()).
  } else if (wait_usec == 0 || have_work) {
    // Submit, and (with DEFER_TASKRUN) run the completion work that fills
    // the CQ: without entering the kernel, nothing new would appear.
    ret = io_uring_submit_and_get_events(&ring_);
  } else {
    __kernel_timespec ts{};
    ts.tv_sec = static_cast<long long>(wait_usec / 1000000U);
    ts.tv_nsec = static_cast<long long>(wait_usec % 1000000U) * 1000;
    io_uring_cqe* cqe = nullptr;
    ret = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
  }
  // Timeouts, signals and transient resource shortages are not failures of
  // the poll: whatever is ready is still reaped and the rest stays queued.
  if (ret == -ETIME || transient(ret)) {
    ret = 0;
  }

  const unsigned to_handlers = reap();

  if (continued_) {
    // Continuations and fallbacks were queued by completions: send them now
    // rather than leaving them until the caller's next flush.
    int r = io_uring_submit(&ring_);
    (void)r;
  }
  const unsigned delivered = (delivered_ - before) + to_handlers;
  if (ret < 0 && delivered == 0) {
    return ret;
  }
  return static_cast<int>(delivered);
}

}  // namespace ubdm
