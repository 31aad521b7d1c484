// SPDX-License-Identifier: MIT
#include "targets/multipath/path_checker.hpp"

#include <liburing.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <spdlog/spdlog.h>

#include "targets/multipath/multipath.hpp"
#include "ubdm/clock.hpp"
#include "ubdm/error.hpp"

namespace ubdm::mpath {
namespace {

constexpr unsigned kRingEntries = 64;
// Completions can outnumber submission entries (every path of every map may
// be in flight at once). The kernel keeps overflowing completions rather
// than dropping them (IORING_FEAT_NODROP), but a large completion queue
// makes that rare.
constexpr unsigned kCompletionEntries = 4096;
constexpr long kTickMs = 100;  // how often deadlines (no_path_retry, timeouts) are looked at

struct FreeDeleter {
  void operator()(std::byte* p) const { std::free(p); }
};

}  // namespace

// One path's probe state. Shared with the ring while a read is in flight,
// so that the buffer and the device outlive a target removed meanwhile.
struct ProbeSlot {
  MultipathTarget* target = nullptr;  // nullptr once the target is removed
  Path* path = nullptr;
  BlockDevicePtr dev;
  std::unique_ptr<std::byte, FreeDeleter> buf;
  std::uint32_t len = 0;
  bool in_flight = false;
  bool reported_timeout = false;
  std::uint64_t deadline_ms = 0;
  std::uint64_t next_due_ms = 0;  // 0: probe at once, so states are known quickly
};

struct Entry {
  MultipathTarget* target = nullptr;
  std::vector<std::shared_ptr<ProbeSlot>> slots;
};

struct PathChecker::Impl {
  std::mutex mutex;  // guards entries and in_flight; held while calling targets
  std::vector<Entry> entries;
  std::vector<std::shared_ptr<ProbeSlot>> in_flight;
  io_uring ring{};
  bool ring_ok = false;
  std::atomic<bool> stop{false};
  // Taken here, while the checker is being built, so that the clock's static
  // is complete first and is destroyed only after ~PathChecker has joined the
  // thread (statics die in reverse order of completion). Fetched lazily by
  // the thread, it would die first and the thread's last ticks at exit
  // would read a destroyed object.
  const Clock& clock = system_clock();
  std::thread thread;

  void run();
  void probe_due(std::uint64_t now);
  void reap();
  void check_timeouts(std::uint64_t now);
};

PathChecker& PathChecker::instance() {
  static PathChecker checker;
  return checker;
}

PathChecker::PathChecker() : impl_(std::make_unique<Impl>()) {
  io_uring_params params{};
  params.flags = IORING_SETUP_CQSIZE;
  params.cq_entries = kCompletionEntries;
  const int rc = io_uring_queue_init_params(kRingEntries, &impl_->ring, &params);
  impl_->ring_ok = rc == 0;
  if (!impl_->ring_ok) {
    spdlog::error("path checker: cannot create its io_uring ({}); paths will not be checked", errno_string(rc));
    return;
  }
  impl_->thread = std::thread([this] { impl_->run(); });
}

PathChecker::~PathChecker() {
  impl_->stop = true;
  if (impl_->thread.joinable()) {
    impl_->thread.join();
  }
  if (impl_->ring_ok) {
    io_uring_queue_exit(&impl_->ring);
  }
}

void PathChecker::add(MultipathTarget& target) {
  Entry e;
  e.target = &target;
  for (Path* p : target.all_paths()) {
    auto slot = std::make_shared<ProbeSlot>();
    slot->target = &target;
    slot->path = p;
    slot->dev = p->dev;
    slot->len = std::max<std::uint32_t>(p->dev->logical_block_size(), 512);
    const std::size_t alloc = std::max<std::size_t>(slot->len, 4096);
    void* mem = std::aligned_alloc(4096, alloc);
    if (mem == nullptr) {
      throw std::bad_alloc();
    }
    slot->buf.reset(static_cast<std::byte*>(mem));
    e.slots.push_back(std::move(slot));
  }
  std::lock_guard lock(impl_->mutex);
  impl_->entries.push_back(std::move(e));
}

void PathChecker::remove(MultipathTarget& target) {
  // Holding the mutex also waits for a callback into this target to end.
  std::lock_guard lock(impl_->mutex);
  auto& entries = impl_->entries;
  for (auto it = entries.begin(); it != entries.end(); ++it) {
    if (it->target == &target) {
      for (auto& slot : it->slots) {
        slot->target = nullptr;
        slot->path = nullptr;
      }
      entries.erase(it);
      return;
    }
  }
}

void PathChecker::Impl::run() {
  while (!stop.load()) {
    io_uring_cqe* cqe = nullptr;
    __kernel_timespec ts{0, kTickMs * 1000000};
    (void)io_uring_wait_cqe_timeout(&ring, &cqe, &ts);
    const std::uint64_t now = clock.now_ms();
    std::lock_guard lock(mutex);
    reap();
    check_timeouts(now);
    for (Entry& e : entries) {
      e.target->checker_tick();
    }
    probe_due(now);
  }
}

void PathChecker::Impl::probe_due(std::uint64_t now) {
  // Each path has its own due time, so a path that could not be sent this
  // tick stays due and goes out on the next one: however many paths there
  // are, every one is probed every interval (give or take a tick).
  bool pending = false;  // SQEs prepared but not yet submitted
  for (Entry& e : entries) {
    const std::uint64_t interval_ms = static_cast<std::uint64_t>(e.target->check_interval_s()) * 1000;
    for (auto& slot : e.slots) {
      if (slot->in_flight || now < slot->next_due_ms || slot->dev->fd() < 0) {
        // Still waiting for the last probe (see check_timeouts), not due
        // yet, or a device with nothing to read (the unit tests' RAM disks).
        continue;
      }
      io_uring_sqe* sqe = io_uring_get_sqe(&ring);
      if (sqe == nullptr) {
        // The submission queue is full: hand it to the kernel and go on.
        (void)io_uring_submit(&ring);
        pending = false;
        sqe = io_uring_get_sqe(&ring);
        if (sqe == nullptr) {
          return;  // the kernel took none: the rest stay due for the next tick
        }
      }
      io_uring_prep_read(sqe, slot->dev->fd(), slot->buf.get(), slot->len, 0);
      io_uring_sqe_set_data(sqe, slot.get());
      slot->in_flight = true;
      slot->reported_timeout = false;
      slot->deadline_ms = now + PathChecker::kProbeTimeoutMs;
      slot->next_due_ms = now + interval_ms;
      if (slot->path->checker.load() == CheckerState::kUnchecked) {
        slot->path->checker.store(CheckerState::kPending);
      }
      in_flight.push_back(slot);
      pending = true;
    }
  }
  if (pending) {
    (void)io_uring_submit(&ring);
  }
}

void PathChecker::Impl::reap() {
  io_uring_cqe* cqe = nullptr;
  while (io_uring_peek_cqe(&ring, &cqe) == 0) {
    auto* raw = static_cast<ProbeSlot*>(io_uring_cqe_get_data(cqe));
    const int res = cqe->res;
    io_uring_cqe_seen(&ring, cqe);
    auto it = std::find_if(in_flight.begin(), in_flight.end(), [&](const auto& s) { return s.get() == raw; });
    if (it == in_flight.end()) {
      continue;
    }
    std::shared_ptr<ProbeSlot> slot = *it;
    in_flight.erase(it);
    slot->in_flight = false;
    if (slot->target != nullptr) {
      // A read that returns nothing is past the device's end: a device that
      // was deleted (its size is 0) or shrank.
      const int err = res == static_cast<int>(slot->len) ? 0 : res < 0 ? res : res == 0 ? -ENXIO : -EIO;
      slot->target->checker_result(*slot->path, err, false);
    }
  }
}

void PathChecker::Impl::check_timeouts(std::uint64_t now) {
  for (auto& slot : in_flight) {
    if (slot->target != nullptr && !slot->reported_timeout && now >= slot->deadline_ms) {
      // Still no answer: the path is down even if the read returns later.
      slot->reported_timeout = true;
      slot->target->checker_result(*slot->path, -ETIMEDOUT, true);
    }
  }
}

}  // namespace ubdm::mpath
