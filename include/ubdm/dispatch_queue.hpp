// SPDX-License-Identifier: MIT
// One dispatch context per hardware queue, owned by one thread.
//
// A frontend submits originals with submit(); the queue splits each into
// clones (one per target piece), asks targets to map them, submits the
// remapped I/O to the queue's IoBackend, and runs end_io on completion.
// Everything here runs on the owning thread, so the per-I/O path takes no
// lock and allocates nothing: tags, clones and lists are preallocated.
// Device-wide changes (suspend, resume, table swap) arrive through a
// generation counter that run() checks once per round.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "ubdm/intrusive_list.hpp"
#include "ubdm/io_stats.hpp"
#include "ubdm/io.hpp"
#include "ubdm/request.hpp"
#include "ubdm/table.hpp"
#include "ubdm/target.hpp"

namespace ubdm {

class MappedDevice;

// Per-tag state of an original request.
struct OriginalIo {
  Request* req = nullptr;
  std::vector<Clone> clones;   // fixed at queue creation (clones_per_tag)
  unsigned outstanding = 0;    // clones not yet finished
  int error = 0;               // first error reported to the submitter
  std::uint64_t start_ns = 0;  // when it was submitted (0: not timed)
  bool active = false;
};

class DispatchQueue {
 public:
  DispatchQueue(MappedDevice& dev, unsigned id, unsigned depth, unsigned clones_per_tag);
  ~DispatchQueue();
  DispatchQueue(const DispatchQueue&) = delete;
  DispatchQueue& operator=(const DispatchQueue&) = delete;

  // Attach the owning thread's backend. `waker` is called from the control
  // thread when the queue must run() to see a device change (ublk: an
  // eventfd in the ring). Call on the owning thread before submitting.
  void bind(IoBackend& backend, std::function<void()> waker);
  // Detach (the queue thread is going away). Requires no I/O in the core.
  void unbind();
  bool bound() const { return backend_ != nullptr; }
  // The device this queue serves (its name, for a frontend's log lines).
  const DeviceContext& device() const;

  // Hand an original to the core. req.tag < depth() and not in use.
  void submit(Request& req);

  // One round of work: apply device changes, fire due timers, finish
  // completed clones and dispatch. Call after submits and after backend
  // completions; then poll() (or flush()) the backend, which hands the
  // round's I/O to the kernel. Cheap when idle.
  void run();

  // True if run() has work it could do right now (no need to sleep).
  bool has_immediate_work() const;
  // Milliseconds until the next timer, or -1 if none.
  long next_timer_ms() const;
  // Originals submitted and not yet completed.
  unsigned active_requests() const { return active_requests_; }
  // Clones handed to targets or the backend and not yet back.
  unsigned in_flight() const { return inflight_; }
  unsigned pushed_back() const { return static_cast<unsigned>(pushback_.size()); }
  unsigned id() const { return id_; }
  unsigned depth() const { return static_cast<unsigned>(slots_.size()); }
  // Counters: written by this queue's thread, readable from any thread.
  const QueueStats& stats() const { return stats_; }
  IoBackend* backend() const { return backend_; }

 private:
  friend class Clone;
  friend class MappedDevice;

  enum class Mode : std::uint8_t { kRunning, kFlushDraining, kNoflushDraining, kSuspended };
  using CloneList = IntrusiveList<Clone, &Clone::hook>;

  void apply_device_state();
  void adopt_table(TablePtr table, std::uint64_t gen);
  void fire_timers(bool all);
  void process_ended();
  void dispatch();
  bool map_one(Clone& c);
  void finish_piece(Clone& c);
  void route_requeue(Clone& c, unsigned delay_ms);
  void finish_clone(Clone& c, int err);
  void complete_original(OriginalIo& o);
  void add_timer(Clone& c, unsigned ms, bool target_timer);
  void remove_timer(Clone& c);
  Clone* alloc_clone(OriginalIo& o);
  bool drained() const;
  void report_drained();
  bool dispatch_allowed() const { return mode_ == Mode::kRunning || mode_ == Mode::kFlushDraining; }
  bool parks_requeues() const { return mode_ == Mode::kNoflushDraining || mode_ == Mode::kSuspended; }

  // Clone callbacks (queue thread).
  void clone_io_done(Clone& c, int res);
  void clone_end(Clone& c, int err);
  void clone_issue(Clone& c);
  void clone_start_timer(Clone& c, unsigned ms);

  MappedDevice& dev_;
  const unsigned id_;
  const bool time_ios_;  // read the clock per I/O for the latency histogram
  IoBackend* backend_ = nullptr;
  std::function<void()> waker_;

  std::vector<OriginalIo> slots_;
  CloneList ready_;      // clones waiting to be mapped, in order
  CloneList deferred_;   // submitted while dispatch is blocked for a suspend
  CloneList pushback_;   // requeued during a noflush suspend; reissued at resume
  CloneList timers_;     // sorted by deadline
  CloneList ended_;      // finished pieces waiting for end_io processing

  Mode mode_ = Mode::kSuspended;
  TablePtr table_;
  std::uint64_t table_gen_ = 0;
  std::uint64_t seen_generation_ = 0;
  std::atomic<std::uint64_t> drained_generation_{0};
  std::vector<const BlockDevice*> attached_;

  unsigned inflight_ = 0;
  unsigned active_requests_ = 0;
  unsigned delayed_requeues_ = 0;
  std::uint64_t retry_at_ms_ = 0;  // dispatch blocked (busy / map requeue) until then
  QueueStats stats_;
};

}  // namespace ubdm
