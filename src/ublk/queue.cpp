// SPDX-License-Identifier: MIT
#include "ublk/queue.hpp"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <functional>
#include <cstdlib>
#include <cstring>

#include <spdlog/spdlog.h>

#include "ubdm/error.hpp"

namespace ubdm::ublk {
namespace {

constexpr unsigned kMaxWaitUsec = 1000 * 1000;

std::uint64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000U + static_cast<std::uint64_t>(ts.tv_nsec);
}

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

unsigned ring_entries(unsigned depth) {
  // Room for every tag's command plus backend I/O; the kernel rounds up.
  unsigned n = 64;
  while (n < 2 * depth && n < 4096) {
    n <<= 1;
  }
  return n;
}

}  // namespace

Queue::Queue(QueueConfig config, DispatchQueue& core)
    : cfg_(std::move(config)), core_(core), poll_(cfg_.poll_usec) {}

Queue::~Queue() {
  if (thread_.joinable()) {
    request_stop();
    thread_.join();
  }
}

void Queue::start() {
  std::promise<void> ready;
  std::future<void> started = ready.get_future();
  thread_ = std::thread([this, &ready] { thread_main(&ready); });
  try {
    started.get();
  } catch (...) {
    thread_.join();
    throw;
  }
}

void Queue::request_stop() {
  stop_requested_.store(true, std::memory_order_release);
  if (wake_fd_ >= 0) {
    const std::uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof(one));
  }
}

void Queue::join() {
  if (thread_.joinable()) {
    thread_.join();
  }
}

void Queue::thread_main(std::promise<void>* ready) {
  try {
    setup();
  } catch (...) {
    teardown();
    ready->set_exception(std::current_exception());
    return;
  }
  ready->set_value();  // `ready` is gone after this line
  try {
    loop();
  } catch (const std::exception& e) {
    spdlog::critical("{} queue {}: {}", name(), cfg_.q_id, e.what());
  }
  teardown();
}

void Queue::setup() {
  // Writeback to this device depends on this thread: exempt it from
  // throttling that would wait on itself (best effort; needs CAP_SYS_RESOURCE).
  (void)::prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0);
  if (cfg_.pin && cfg_.affinity && CPU_COUNT(&*cfg_.affinity) > 0) {
    const int rc = ::pthread_setaffinity_np(::pthread_self(), sizeof(cpu_set_t), &*cfg_.affinity);
    if (rc != 0) {
      spdlog::warn("{} queue {}: cannot pin to its CPUs: {}", name(), cfg_.q_id, errno_string(rc));
    }
  }

  UringBackend::Options opts;
  opts.entries = ring_entries(cfg_.depth);
  backend_ = std::make_unique<UringBackend>(opts);
  // The ring holds /dev/ublkcN until it is freed, after its last backend
  // I/O: if this process dies, the kernel hands the device to the next
  // server only once every write we had in flight has ended, so a reissued
  // write can never be overtaken by the dead server's copy of it.
  char_slot_ = backend_->install_own_file(cfg_.char_fd);
  if (char_slot_ < 0) {
    fail(-char_slot_, "queue {}: cannot register {} with its ring: {}", cfg_.q_id, name(),
         errno_string(char_slot_));
  }

  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  descs_len_ = (cfg_.depth * sizeof(IoDesc) + page - 1) / page * page;
  void* map = ::mmap(nullptr, descs_len_, PROT_READ, MAP_SHARED | MAP_POPULATE, cfg_.char_fd,
                     static_cast<off_t>(queue_desc_offset(cfg_.q_id, page)));
  if (map == MAP_FAILED) {
    const int err = errno;
    fail(err, "queue {}: cannot map the request descriptors: {}", cfg_.q_id, errno_string(err));
  }
  descs_ = static_cast<const IoDesc*>(map);

  buffers_.assign(cfg_.depth, nullptr);
  requests_.resize(cfg_.depth);
  tag_handlers_.resize(cfg_.depth);
  register_handlers_.resize(cfg_.depth);
  registered_by_hand_.assign(cfg_.depth, false);
  tag_state_.assign(cfg_.depth, TagState::kFetching);
  pending_.reserve(cfg_.depth);
  pending_retry_.reserve(cfg_.depth);
  pending_registrations_.reserve(cfg_.depth);
  retry_registrations_.reserve(cfg_.depth);
  for (unsigned t = 0; t < cfg_.depth; ++t) {
    tag_handlers_[t].queue = this;
    tag_handlers_[t].tag = static_cast<std::uint16_t>(t);
    register_handlers_[t].queue = this;
    register_handlers_[t].tag = static_cast<std::uint16_t>(t);
    requests_[t].tag = static_cast<std::uint16_t>(t);
    requests_[t].sink = this;
  }
  if (cfg_.zero_copy) {
    // The kernel fills slot `tag` with each request's pages; no tag buffers.
    const int rc = backend_->register_sparse_buffers(cfg_.depth);
    if (rc < 0) {
      fail(-rc, "queue {}: cannot set up a buffer table of {} slots for zero copy: {}", cfg_.q_id, cfg_.depth,
           errno_string(rc));
    }
    registered_ = true;
  } else {
    std::vector<iovec> iov(cfg_.depth);
    for (unsigned t = 0; t < cfg_.depth; ++t) {
      void* p = nullptr;
      if (::posix_memalign(&p, page, cfg_.max_io_bytes) != 0) {
        fail(ENOMEM, "queue {}: cannot allocate {} I/O buffers of {} bytes", cfg_.q_id, cfg_.depth,
             cfg_.max_io_bytes);
      }
      buffers_[t] = static_cast<std::byte*>(p);
      iov[t] = iovec{p, cfg_.max_io_bytes};
    }
    // Registered buffers let the backend use READ_FIXED/WRITE_FIXED; without
    // them (e.g. RLIMIT_MEMLOCK too low) plain reads and writes still work.
    const int rc = backend_->register_buffers(iov);
    registered_ = rc == 0;
    if (!registered_) {
      spdlog::warn("{} queue {}: buffers not registered ({}); using unregistered I/O", name(),
                   cfg_.q_id, errno_string(rc));
    }
  }

  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    const int err = errno;
    fail(err, "queue {}: eventfd: {}", cfg_.q_id, errno_string(err));
  }
  wake_handler_.queue = this;
  arm_wake();

  const int wake = wake_fd_;
  core_.bind(*backend_, [wake] {
    const std::uint64_t one = 1;
    (void)!::write(wake, &one, sizeof(one));
  });

  for (unsigned t = 0; t < cfg_.depth; ++t) {
    send(static_cast<std::uint16_t>(t), kIoFetchReq, 0);
  }
  const int frc = without_sys_admin([this] { return backend_->flush(); });
  if (frc < 0) {
    fail(-frc, "queue {}: cannot submit FETCH_REQ: {}", cfg_.q_id, errno_string(frc));
  }
}

namespace {

constexpr std::uint32_t kSysAdminBit = 1U << (CAP_SYS_ADMIN % 32);
using CapData = std::array<__user_cap_data_struct, _LINUX_CAPABILITY_U32S_3>;

bool get_caps(__user_cap_header_struct& header, CapData& caps) {
  header = {_LINUX_CAPABILITY_VERSION_3, 0};
  return ::syscall(SYS_capget, &header, caps.data()) == 0;
}

}  // namespace

bool have_sys_admin() {
  __user_cap_header_struct header{};
  CapData caps{};
  return get_caps(header, caps) && (caps[CAP_SYS_ADMIN / 32].effective & kSysAdminBit) != 0;
}

int without_sys_admin(const std::function<int()>& fn) {
  // The driver (6.12) scans a new disk for partitions at START_DEV only if
  // every queue's FETCH_REQs came from a task with CAP_SYS_ADMIN. We want no
  // scan, as dm maps get none (kpartx or partx make partition maps): the
  // scan's read would be the first I/O of a multipath map, so its status
  // would differ from the kernel's before any user I/O, and a scan of a disk
  // that does not answer holds START_DEV. Capabilities belong to a thread,
  // so dropping it here affects only these submissions.
  __user_cap_header_struct header{};
  CapData caps{};
  const bool have = get_caps(header, caps);
  const bool dropped = have && (caps[CAP_SYS_ADMIN / 32].effective & kSysAdminBit) != 0 && [&] {
    auto without = caps;
    without[CAP_SYS_ADMIN / 32].effective &= ~kSysAdminBit;
    return ::syscall(SYS_capset, &header, without.data()) == 0;
  }();
  const int rc = fn();
  if (dropped && ::syscall(SYS_capset, &header, caps.data()) != 0) {
    spdlog::warn("cannot restore CAP_SYS_ADMIN on a queue thread: {}", errno_string(errno));
  }
  return rc;
}

void Queue::arm_wake() {
  io_uring_sqe* sqe = backend_->get_sqe();
  if (sqe == nullptr) {
    return;  // re-armed on the next wake-up round
  }
  io_uring_prep_poll_multishot(sqe, wake_fd_, POLLIN);
  io_uring_sqe_set_data(sqe, static_cast<RingHandler*>(&wake_handler_));
}

void Queue::WakeHandler::on_cqe(int /*res*/, std::uint32_t cqe_flags) {
  std::uint64_t v = 0;
  (void)!::read(queue->wake_fd_, &v, sizeof(v));
  if ((cqe_flags & IORING_CQE_F_MORE) == 0) {
    queue->arm_wake();
  }
}

void Queue::TagHandler::on_cqe(int res, std::uint32_t /*cqe_flags*/) { queue->on_tag_cqe(tag, res); }

void Queue::RegisterHandler::on_cqe(int res, std::uint32_t /*cqe_flags*/) { queue->on_register_cqe(tag, res); }

void Queue::loop() {
  for (;;) {
    // Commands that found no SQE last round go first.
    if (!pending_registrations_.empty()) {
      retry_registrations_.swap(pending_registrations_);
      for (const std::uint16_t tag : retry_registrations_) {
        start_registration(tag);
      }
      retry_registrations_.clear();
    }
    if (!pending_.empty()) {
      // Both vectors hold `depth` entries' capacity: no allocation here.
      pending_retry_.swap(pending_);
      for (const PendingCommit& p : pending_retry_) {
        send(p.tag, kIoCommitAndFetchReq, p.result);
      }
      pending_retry_.clear();
    }
    core_.run();
    const bool idle_core = core_.active_requests() == 0;
    if (idle_core && (dead_tags_ == cfg_.depth || stop_requested_.load(std::memory_order_acquire))) {
      return;
    }
    unsigned wait = 0;
    if (!core_.has_immediate_work() && pending_.empty() && pending_registrations_.empty()) {
      const long t = core_.next_timer_ms();
      wait = t < 0 ? kMaxWaitUsec : static_cast<unsigned>(std::min<long>(t * 1000, kMaxWaitUsec));
    }
    // Spin before sleeping if the next event is expected soon (PollWindow),
    // and learn how long this wait took, whether it spun or slept.
    const bool learn = wait > 0 && poll_.enabled();
    std::uint64_t wait_start = 0;
    if (learn) {
      wait_start = monotonic_ns();
      const std::uint64_t spin = std::min(poll_.next_spin_ns(idle_core), std::uint64_t{wait} * 1000U);
      if (spin > 0 && spin_for_events(wait_start + spin)) {
        wait = 0;
      }
    }
    const int rc = backend_->poll(wait);
    if (learn && rc > 0) {
      poll_.waited(idle_core, monotonic_ns() - wait_start);
    }
    if (rc < 0) {  // poll() reports timeouts and transient shortages as 0
      spdlog::error("{} queue {}: ring wait failed: {}", name(), cfg_.q_id, errno_string(rc));
    }
  }
}

// Spin until the ring has events or the clock passes `deadline_ns`. Returns
// true if events arrived. The queued SQEs go out first, and completion work
// is collected in the same system call: the next event cannot come before
// the kernel has the commits and the disk I/O, and a disk that completed
// while it was submitted leaves nothing to wait for.
bool Queue::spin_for_events(std::uint64_t deadline_ns) {
  (void)backend_->flush_and_collect();
  for (unsigned spins = 0;; ++spins) {
    if (backend_->events_ready()) {
      return true;
    }
    cpu_relax();
    // Check the clock and give the CPU to runnable threads (the submitter
    // may share this CPU) only every few rounds: both are syscalls or close.
    if ((spins & 63U) == 63U) {
      if (monotonic_ns() >= deadline_ns) {
        return false;
      }
      sched_yield();
    }
  }
}

void Queue::teardown() {
  if (backend_ != nullptr && core_.bound()) {
    core_.unbind();
  }
  backend_.reset();  // closes the ring, which also cancels any command still pending
  if (descs_ != nullptr) {
    ::munmap(const_cast<IoDesc*>(descs_), descs_len_);
    descs_ = nullptr;
  }
  for (std::byte*& b : buffers_) {
    std::free(b);
    b = nullptr;
  }
  if (wake_fd_ >= 0) {
    ::close(wake_fd_);
    wake_fd_ = -1;
  }
}

void Queue::on_tag_cqe(std::uint16_t tag, int res) {
  if (res != kIoResOk) {
    // ABORT (-ENODEV) is the kernel stopping the device: never fetch again.
    if (res != kIoResAbort) {
      spdlog::warn("{} queue {} tag {}: ublk command failed: {}", name(), cfg_.q_id, tag,
                   res == kIoResNeedGetData ? std::string("unexpected NEED_GET_DATA") : errno_string(res));
    }
    if (tag_state_[tag] != TagState::kDead) {
      tag_state_[tag] = TagState::kDead;
      ++dead_tags_;
    }
    return;
  }
  const IoDesc& d = descs_[tag];
  Request& r = requests_[tag];
  const auto op = static_cast<std::uint8_t>(d.op_flags & 0xff);
  r.flags = 0;
  if ((d.op_flags & kIoFlagFua) != 0) {
    r.flags |= kReqFua;
  }
  if ((d.op_flags & (kIoFlagFailfastDev | kIoFlagFailfastTransport | kIoFlagFailfastDriver)) != 0) {
    r.flags |= kReqFailfast;
  }
  r.sector = d.start_sector;
  r.nr_sectors = d.nr_sectors;
  r.buf = nullptr;
  r.buf_index = -1;
  switch (op) {
    case kOpRead:
    case kOpWrite:
      if ((static_cast<std::uint64_t>(d.nr_sectors) << kSectorShift) > cfg_.max_io_bytes) {
        send(tag, kIoCommitAndFetchReq, -EIO);  // the kernel honours max_sectors; never expected
        return;
      }
      r.op = op == kOpRead ? Op::kRead : Op::kWrite;
      if (cfg_.zero_copy) {
        // The request's own pages, in buffer slot `tag` (see Request::buf).
        r.buf_index = static_cast<int>(tag);
        if ((d.op_flags & kIoFlagNeedRegBuf) != 0) {
          start_registration(tag);
          return;
        }
      } else {
        r.buf = buffers_[tag];
        r.buf_index = registered_ ? static_cast<int>(tag) : -1;
      }
      break;
    case kOpFlush:
      r.op = Op::kFlush;
      r.sector = 0;
      r.nr_sectors = 0;
      break;
    case kOpDiscard:
      r.op = Op::kDiscard;
      break;
    case kOpWriteZeroes:
      r.op = Op::kWriteZeroes;
      break;
    default:
      // Zoned and WRITE_SAME requests are never produced for our devices.
      send(tag, kIoCommitAndFetchReq, -EOPNOTSUPP);
      return;
  }
  submit_to_core(tag);
}

void Queue::submit_to_core(std::uint16_t tag) {
  tag_state_[tag] = TagState::kInCore;
  core_.submit(requests_[tag]);
}

// The kernel could not register this request's pages by itself (the tag's
// slot was taken, or memory was short): ask for it by hand (REGISTER_IO_BUF,
// needs kFeatSupportZeroCopy), into the same slot.
void Queue::start_registration(std::uint16_t tag) {
  if (!cfg_.manual_registration) {
    spdlog::error("{} queue {} tag {}: the kernel could not register the request's buffer, and this device "
                  "cannot register it by hand: failing the request",
                  name(), cfg_.q_id, tag);
    send(tag, kIoCommitAndFetchReq, -EIO);
    return;
  }
  tag_state_[tag] = TagState::kRegistering;
  if (prep_cmd(tag, kIoRegisterIoBuf, 0, &register_handlers_[tag]) == nullptr) {
    pending_registrations_.push_back(tag);  // the ring is full: at the top of the loop
  }
}

void Queue::on_register_cqe(std::uint16_t tag, int res) {
  if (res < 0) {
    spdlog::error("{} queue {} tag {}: registering the request's buffer failed: {}", name(),
                  cfg_.q_id, tag, errno_string(res));
    send(tag, kIoCommitAndFetchReq, -EIO);
    return;
  }
  registered_by_hand_[tag] = true;
  submit_to_core(tag);
}

void Queue::request_done(Request& req, int result) {
  int res = result;
  if (result == 0 && op_has_data(req.op)) {
    // ublk wants the byte count for data requests (0 would mean a failed
    // read); they are at most max_io_bytes, so it fits. DISCARD,
    // WRITE_ZEROES and FLUSH report 0, whatever their length.
    res = static_cast<int>(std::uint64_t{req.nr_sectors} << kSectorShift);
  }
  tag_state_[req.tag] = TagState::kFetching;
  send(req.tag, kIoCommitAndFetchReq, res);
}

io_uring_sqe* Queue::prep_cmd(std::uint16_t tag, unsigned cmd_op, int result, RingHandler* handler) {
  io_uring_sqe* sqe = backend_->get_sqe();
  if (sqe == nullptr) {
    return nullptr;
  }
  std::memset(static_cast<void*>(sqe), 0, sizeof(*sqe));
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = char_slot_;
  sqe->flags = IOSQE_FIXED_FILE;
  sqe->cmd_op = cmd_op;
  IoCmd cmd{};
  cmd.q_id = cfg_.q_id;
  cmd.tag = tag;
  cmd.result = result;
  if (cmd_op == kIoRegisterIoBuf || cmd_op == kIoUnregisterIoBuf) {
    cmd.addr = tag;  // the buffer-table slot
  } else if (cfg_.zero_copy) {
    // No buffer of ours (addr must be 0): the kernel registers the next
    // request of this tag at this slot, and unregisters it at its COMMIT.
    const auto slot = static_cast<std::uint16_t>(cfg_.force_registration_fallback ? cfg_.depth + tag : tag);
    sqe->addr = auto_buf_reg_addr(slot, kAutoBufRegFallback);
  } else {
    cmd.addr = reinterpret_cast<std::uintptr_t>(buffers_[tag]);
  }
  static_assert(sizeof(IoCmd) <= 16, "must fit the cmd area of a 64-byte SQE");
  std::memcpy(sqe->cmd, &cmd, sizeof(cmd));
  io_uring_sqe_set_data(sqe, handler);
  return sqe;
}

bool Queue::try_send(std::uint16_t tag, unsigned cmd_op, int result) {
  if (cmd_op == kIoCommitAndFetchReq && registered_by_hand_[tag]) {
    // A hand-registered buffer must leave the table before the COMMIT, or
    // the request never completes and the slot stays taken: UNREGISTER,
    // hard-linked so the COMMIT follows whatever it answers.
    if (!backend_->reserve_sqes(2)) {
      return false;
    }
    io_uring_sqe* unreg = prep_cmd(tag, kIoUnregisterIoBuf, 0, &ignore_handler_);
    unreg->flags |= IOSQE_IO_HARDLINK;
    registered_by_hand_[tag] = false;
  }
  return prep_cmd(tag, cmd_op, result, &tag_handlers_[tag]) != nullptr;
}

void Queue::send(std::uint16_t tag, unsigned cmd_op, int result) {
  if (!try_send(tag, cmd_op, result)) {
    // The ring is full even after submitting; retry at the top of the loop.
    // FETCH_REQs are only sent at setup, where the ring is empty.
    pending_.push_back(PendingCommit{tag, result});
  }
}

}  // namespace ubdm::ublk
