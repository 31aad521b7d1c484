// SPDX-License-Identifier: MIT
// The per-queue dispatch context: the life of a request.
//
//   submit(original) -> one clone covering the whole request -> ready_
//   dispatch: take a clone, find the target holding its first sector, cut
//     the piece the target can take (target end, max_io_len), split the rest
//     off into another clone of the same tag if one is free, map the piece.
//   completion -> ended_ -> end_io decides:
//     DONE ok      -> advance past the piece; map the next piece or finish
//     DONE error   -> finish the clone; the original carries the error
//     REQUEUE      -> the clone's remaining range is mapped again
//   the original completes when its last clone finishes.
//
// A clone's range only ever shrinks from the front as pieces succeed, so a
// requeue (or a pushback across a table swap) remaps exactly the part that is
// not done yet and never resubmits a finished piece: this is our form of dm's
// two-stage requeue.
#include "ubdm/dispatch_queue.hpp"

#include <algorithm>
#include <cassert>
#include <limits>

#include <spdlog/spdlog.h>

#include "ubdm/error.hpp"

#include "ubdm/device.hpp"

namespace ubdm {
namespace {

// blk-mq retries a BLK_STS_RESOURCE dispatch after BLK_MQ_RESOURCE_DELAY (3 ms)
// when nothing else will restart the queue; a map REQUEUE and a busy target
// use the same pause so that they do not spin.
constexpr unsigned kResourceRetryMs = 3;
// Upper bound on one clone's piece, so its sector count fits Clone's u32 (a
// request's own count is a u32, so this only documents the bound). Byte
// lengths are 64-bit from here on: a piece may be 4 GiB or more.
constexpr std::uint64_t kMaxPieceSectors = UINT32_MAX;
// How often one run() may loop between finishing and dispatching before it
// yields back to the event loop (bounds the time spent in one round).
constexpr int kMaxRoundsPerRun = 8;

}  // namespace

const DeviceContext& DispatchQueue::device() const { return dev_; }

DispatchQueue::DispatchQueue(MappedDevice& dev, unsigned id, unsigned depth, unsigned clones_per_tag)
    : dev_(dev), id_(id), time_ios_(dev.config().time_ios), slots_(depth) {
  for (OriginalIo& slot : slots_) {
    slot.clones = std::vector<Clone>(clones_per_tag);
    for (Clone& c : slot.clones) {
      c.queue_ = this;
      c.orig_ = &slot;
    }
  }
}

DispatchQueue::~DispatchQueue() = default;

void DispatchQueue::bind(IoBackend& backend, std::function<void()> waker) {
  {
    // The waker is read by the control thread (MappedDevice::wake_queues).
    std::lock_guard lock(dev_.gate_mutex_);
    backend_ = &backend;
    waker_ = std::move(waker);
  }
  attached_.clear();
  seen_generation_ = 0;  // force a fresh read of the device state
  table_gen_ = 0;
  apply_device_state();
}

void DispatchQueue::unbind() {
  assert(active_requests_ == 0);
  if (backend_ != nullptr) {
    for (const BlockDevice* d : attached_) {
      backend_->detach(*d);
    }
  }
  attached_.clear();
  table_.reset();
  table_gen_ = 0;
  std::lock_guard lock(dev_.gate_mutex_);
  backend_ = nullptr;
  waker_ = nullptr;
}

void DispatchQueue::submit(Request& req) {
  assert(req.tag < slots_.size());
  // The suspend point is when this queue sees the change: look before
  // deciding whether the request may be dispatched (one atomic load).
  apply_device_state();
  OriginalIo& o = slots_[req.tag];
  assert(!o.active && "tag submitted twice");
  o.active = true;
  o.req = &req;
  o.error = 0;
  o.outstanding = 1;
  ++active_requests_;
  stats_.ops[static_cast<std::size_t>(req.op)].started.add();
  o.start_ns = time_ios_ ? dev_.clock().now_ns() : 0;

  Clone& c = o.clones[0];
  assert(c.state_ == Clone::State::kFree);
  c.req_ = &req;
  c.interrupted_ = false;
  c.target_ = nullptr;
  if (req.op == Op::kFlush) {
    // Flush units are resolved against the table that maps the clone.
    c.range_begin_ = 0;
    c.range_end_ = 0;
    c.table_gen_ = 0;
  } else {
    c.range_begin_ = req.sector;
    c.range_end_ = req.sector + req.nr_sectors;
    c.table_gen_ = table_gen_;
    if (req.nr_sectors == 0) {
      // Nothing to map; complete in the next round like any other clone.
      c.state_ = Clone::State::kEnded;
      c.end_error_ = 0;
      ++inflight_;
      ended_.push_back(c);
      return;
    }
  }
  c.state_ = Clone::State::kReady;
  // Requests that arrive after a suspend began wait for the resume; requests
  // queued before it are dispatched by a flush suspend and parked by a noflush one.
  if (mode_ == Mode::kRunning) {
    ready_.push_back(c);
  } else {
    deferred_.push_back(c);
  }
}

Clone* DispatchQueue::alloc_clone(OriginalIo& o) {
  for (Clone& c : o.clones) {
    if (c.state_ == Clone::State::kFree) {
      c.req_ = o.req;
      c.interrupted_ = false;
      c.target_ = nullptr;
      ++o.outstanding;
      return &c;
    }
  }
  return nullptr;
}

void DispatchQueue::run() {
  apply_device_state();
  fire_timers(false);
  for (int round = 0; round < kMaxRoundsPerRun; ++round) {
    process_ended();
    dispatch();
    if (ended_.empty()) {
      break;
    }
  }
  report_drained();
  // No flush here: the owner's next backend poll() submits what this round
  // queued and waits in the same system call.
}

bool DispatchQueue::has_immediate_work() const {
  if (!ended_.empty()) {
    return true;
  }
  if (dev_.generation_.load(std::memory_order_acquire) != seen_generation_) {
    return true;
  }
  return dispatch_allowed() && !ready_.empty() && retry_at_ms_ == 0;
}

long DispatchQueue::next_timer_ms() const {
  std::uint64_t next = std::numeric_limits<std::uint64_t>::max();
  if (!timers_.empty()) {
    next = timers_.first()->deadline_ms_;
  }
  if (retry_at_ms_ != 0) {
    next = std::min(next, retry_at_ms_);
  }
  if (next == std::numeric_limits<std::uint64_t>::max()) {
    return -1;
  }
  const std::uint64_t now = dev_.clock().now_ms();
  return next <= now ? 0 : static_cast<long>(next - now);
}

// ---------------------------------------------------------------------------
// Device state changes (suspend, resume, table swap)

void DispatchQueue::apply_device_state() {
  if (dev_.generation_.load(std::memory_order_acquire) == seen_generation_) {
    return;
  }
  std::uint64_t gen = 0;
  const MappedDevice::Gate gate = dev_.read_gate(gen);
  seen_generation_ = gen;
  if (gate.table_gen != table_gen_) {
    adopt_table(gate.table, gate.table_gen);
  }
  const Mode old = mode_;
  mode_ = gate.mode;
  if (old == mode_) {
    return;
  }
  switch (mode_) {
    case Mode::kFlushDraining:
      // Hurry held I/O along (delay target, delayed requeues) so the drain ends.
      fire_timers(true);
      break;
    case Mode::kNoflushDraining:
    case Mode::kSuspended:
      stats_.pushbacks += ready_.size();
      ready_.for_each([](Clone& c) { c.state_ = Clone::State::kPushback; });
      pushback_.splice_back(ready_);
      // Delayed requeues land on the pushback list; target timers fire now.
      fire_timers(true);
      break;
    case Mode::kRunning:
      if (old == Mode::kNoflushDraining) {
        // The suspend was interrupted. Whatever had not come back yet gets EIO
        // if it asks to be requeued: there is no pushback to honour any more.
        for (OriginalIo& o : slots_) {
          for (Clone& c : o.clones) {
            if (c.state_ == Clone::State::kInFlight || c.state_ == Clone::State::kHeld ||
                c.state_ == Clone::State::kTimer || c.state_ == Clone::State::kEnded ||
                c.state_ == Clone::State::kMapping) {
              c.interrupted_ = true;
            }
          }
        }
      }
      // Reissue in age order: pushed back first, then what was waiting.
      pushback_.for_each([](Clone& c) { c.state_ = Clone::State::kReady; });
      deferred_.for_each([](Clone& c) { c.state_ = Clone::State::kReady; });
      {
        CloneList tail;
        tail.splice_back(ready_);
        ready_.splice_back(pushback_);
        ready_.splice_back(tail);
        ready_.splice_back(deferred_);
      }
      retry_at_ms_ = 0;
      break;
  }
  stats_.pushed_back.set(pushback_.size());
}

void DispatchQueue::adopt_table(TablePtr table, std::uint64_t gen) {
  if (backend_ != nullptr) {
    std::vector<const BlockDevice*> next;
    if (table) {
      next = table->devices();
    }
    auto contains = [](const std::vector<const BlockDevice*>& v, const BlockDevice* d) {
      return std::find(v.begin(), v.end(), d) != v.end();
    };
    for (const BlockDevice* d : attached_) {
      if (!contains(next, d)) {
        backend_->detach(*d);
      }
    }
    for (const BlockDevice* d : next) {
      if (!contains(attached_, d)) {
        const int rc = backend_->attach(*d);
        if (rc < 0 && d->fd() >= 0) {
          // I/O to this device will fail with the backend's error; the table
          // stays usable for the others. (A stand-in without a descriptor,
          // DeviceOpener::open_absent, is expected not to attach.)
          spdlog::error("{} queue {}: cannot attach {}: {}", dev_.device_name(), id_, d->path(),
                        errno_string(rc));
        }
      }
    }
    attached_ = std::move(next);
  }
  table_ = std::move(table);
  table_gen_ = gen;
}

bool DispatchQueue::drained() const {
  switch (mode_) {
    case Mode::kNoflushDraining:
      return inflight_ == 0 && ended_.empty();
    case Mode::kFlushDraining:
      return inflight_ == 0 && ended_.empty() && ready_.empty() && delayed_requeues_ == 0;
    default:
      return false;
  }
}

void DispatchQueue::report_drained() {
  if (drained() && drained_generation_.load(std::memory_order_relaxed) != seen_generation_) {
    drained_generation_.store(seen_generation_, std::memory_order_release);
    dev_.queue_drained();
  }
}

// ---------------------------------------------------------------------------
// Timers: a list sorted by deadline. Short in practice (held and delayed
// clones of one queue), so insertion by walking is fine.

void DispatchQueue::add_timer(Clone& c, unsigned ms, bool target_timer) {
  c.deadline_ms_ = dev_.clock().now_ms() + ms;
  c.timer_is_target_ = target_timer;
  Clone* prev = nullptr;
  for (Clone* it = timers_.first(); it != nullptr && it->deadline_ms_ <= c.deadline_ms_;
       it = timers_.next(*it)) {
    prev = it;
  }
  if (prev == nullptr) {
    timers_.push_front(c);
  } else {
    timers_.insert_after(*prev, c);
  }
}

void DispatchQueue::remove_timer(Clone& c) {
  timers_.remove(c);
  if (!c.timer_is_target_) {
    --delayed_requeues_;
    stats_.waiting_requeue.set(delayed_requeues_);
  }
}

void DispatchQueue::fire_timers(bool all) {
  if (retry_at_ms_ != 0 && (all || dev_.clock().now_ms() >= retry_at_ms_)) {
    retry_at_ms_ = 0;
  }
  if (timers_.empty()) {
    return;
  }
  const std::uint64_t now = dev_.clock().now_ms();
  // Only timers present now: a target that re-arms from timer_fired() waits
  // for the next round instead of looping here.
  std::size_t budget = timers_.size();
  while (budget-- > 0 && !timers_.empty()) {
    Clone& c = timers_.front();
    if (!all && c.deadline_ms_ > now) {
      break;
    }
    remove_timer(c);
    if (c.timer_is_target_) {
      c.state_ = Clone::State::kHeld;
      c.target_->timer_fired(c);
    } else {
      route_requeue(c, 0);
    }
  }
}

// ---------------------------------------------------------------------------
// Dispatch and map

void DispatchQueue::dispatch() {
  if (!dispatch_allowed() || retry_at_ms_ != 0) {
    return;
  }
  while (Clone* c = ready_.first()) {
    if (!map_one(*c)) {
      break;
    }
  }
}

// Map the first piece of `c` (which is on ready_). Returns false when
// dispatching must stop for now (busy target, resource requeue).
bool DispatchQueue::map_one(Clone& c) {
  OriginalIo& o = *c.orig_;
  const Request& req = *o.req;
  const Table* table = table_.get();
  if (table == nullptr) {
    ready_.remove(c);
    finish_clone(c, -EIO);
    return true;
  }

  Target* target = nullptr;
  std::uint64_t units = 0;
  if (req.op == Op::kFlush) {
    if (c.table_gen_ != table_gen_) {
      // First map, or the table changed under a pushed-back flush: flush
      // every device of the current table (flushing twice is harmless).
      c.range_begin_ = 0;
      c.range_end_ = table->flush_units().size();
      c.table_gen_ = table_gen_;
    }
    if (c.range_begin_ >= c.range_end_) {
      ready_.remove(c);
      finish_clone(c, 0);
      return true;
    }
    const FlushUnit& unit = table->flush_units()[c.range_begin_];
    target = &table->target(unit.target);
    units = 1;
    c.sector_ = 0;
    c.nr_sectors_ = 0;
    c.flush_index_ = unit.index;
    c.buf_ = nullptr;
    c.buf_offset_ = 0;
  } else {
    const std::size_t ti = table->find_index(c.range_begin_);
    if (ti == table->target_count()) {
      // Beyond the end of the (new, smaller) table.
      ready_.remove(c);
      finish_clone(c, -EIO);
      return true;
    }
    target = &table->target(ti);
    const sector_t off = c.range_begin_ - target->start();
    units = std::min({c.range_end_ - c.range_begin_, target->len() - off, target->max_io_len(off),
                      kMaxPieceSectors});
    assert(units > 0);
    c.sector_ = c.range_begin_;
    c.nr_sectors_ = static_cast<std::uint32_t>(units);
    c.flush_index_ = 0;
    c.buf_offset_ = op_has_data(req.op) ? (c.range_begin_ - req.sector) << kSectorShift : 0;
    c.buf_ = op_has_data(req.op) && req.buf != nullptr ? req.buf + c.buf_offset_ : nullptr;
  }

  if (target->busy()) {
    // Keep everything queued (and mergeable later) until the target has room.
    retry_at_ms_ = dev_.clock().now_ms() + kResourceRetryMs;
    return false;
  }
  ready_.remove(c);

  // Split the rest off so the pieces of one request run in parallel, as far
  // as this tag has clones; otherwise this clone maps the rest piece by piece.
  if (c.range_begin_ + units < c.range_end_) {
    if (Clone* rest = alloc_clone(o)) {
      rest->range_begin_ = c.range_begin_ + units;
      rest->range_end_ = c.range_end_;
      rest->table_gen_ = c.table_gen_;
      rest->state_ = Clone::State::kReady;
      c.range_end_ = c.range_begin_ + units;
      ready_.push_front(*rest);
    }
  }

  c.piece_units_ = units;
  c.target_ = target;
  c.per_io_.fill(std::byte{0});
  c.end_error_ = 0;
  c.state_ = Clone::State::kMapping;
  ++stats_.clones_mapped;
  ++inflight_;
  const MapResult r = target->map(c);
  switch (r) {
    case MapResult::kRemapped:
      c.state_ = Clone::State::kInFlight;
      ++stats_.backend_ios;
      backend_->submit(c.io_);
      break;
    case MapResult::kSubmitted:
      // The target may already have ended the clone or started a timer.
      if (c.state_ == Clone::State::kMapping) {
        c.state_ = Clone::State::kHeld;
      }
      break;
    case MapResult::kRequeue:
      --inflight_;
      ++stats_.requeues;
      c.target_ = nullptr;
      c.state_ = Clone::State::kReady;
      ready_.push_front(c);
      retry_at_ms_ = dev_.clock().now_ms() + kResourceRetryMs;
      return false;
    case MapResult::kDelayRequeue:
      --inflight_;
      ++stats_.requeues;
      route_requeue(c, kDelayRequeueMs);
      break;
    case MapResult::kKill:
      // As dm: the clone fails with EIO and end_io is not consulted.
      --inflight_;
      c.target_ = nullptr;
      finish_clone(c, -EIO);
      break;
  }
  return true;
}

// ---------------------------------------------------------------------------
// Completion

void DispatchQueue::clone_io_done(Clone& c, int res) {
  assert(c.state_ == Clone::State::kInFlight);
  // The backend reports 0 for the whole transfer or an error; a short
  // transfer never reaches here as success.
  c.end_error_ = res < 0 ? res : 0;
  c.state_ = Clone::State::kEnded;
  ended_.push_back(c);
}

void DispatchQueue::clone_end(Clone& c, int err) {
  assert(c.state_ == Clone::State::kMapping || c.state_ == Clone::State::kHeld ||
         c.state_ == Clone::State::kTimer);
  if (c.state_ == Clone::State::kTimer) {
    remove_timer(c);
  }
  c.end_error_ = err;
  c.state_ = Clone::State::kEnded;
  ended_.push_back(c);
}

void DispatchQueue::clone_issue(Clone& c) {
  assert(c.state_ == Clone::State::kHeld || c.state_ == Clone::State::kMapping);
  c.state_ = Clone::State::kInFlight;
  ++stats_.backend_ios;
  backend_->submit(c.io_);
}

void DispatchQueue::clone_start_timer(Clone& c, unsigned ms) {
  assert(c.state_ == Clone::State::kMapping || c.state_ == Clone::State::kHeld);
  c.state_ = Clone::State::kTimer;
  add_timer(c, ms, true);
}

void DispatchQueue::process_ended() {
  while (Clone* c = ended_.pop_front()) {
    finish_piece(*c);
  }
}

void DispatchQueue::finish_piece(Clone& c) {
  --inflight_;
  const int err = c.end_error_;
  Target* target = c.target_;
  const EndIoResult r = target != nullptr ? target->end_io(c, err) : EndIoResult::kDone;
  c.target_ = nullptr;
  if (r == EndIoResult::kDone) {
    if (err != 0) {
      finish_clone(c, err);
      return;
    }
    c.range_begin_ += c.piece_units_;
    c.piece_units_ = 0;
    if (c.range_begin_ >= c.range_end_) {
      finish_clone(c, 0);
      return;
    }
    // More pieces of this clone: map the next one (or park it if the device
    // is suspending without flush).
    route_requeue(c, 0);
    return;
  }
  ++stats_.requeues;
  if (c.interrupted_) {
    // "noflush suspend was interrupted": a requeue can no longer be honoured.
    finish_clone(c, -EIO);
    return;
  }
  route_requeue(c, r == EndIoResult::kDelayRequeue ? kDelayRequeueMs : 0);
}

void DispatchQueue::route_requeue(Clone& c, unsigned delay_ms) {
  c.target_ = nullptr;
  if (parks_requeues()) {
    // Noflush suspend: keep it for the resume, which may bring a new table.
    c.state_ = Clone::State::kPushback;
    ++stats_.pushbacks;
    pushback_.push_back(c);
    stats_.pushed_back.set(pushback_.size());
    return;
  }
  if (delay_ms > 0) {
    c.state_ = Clone::State::kDelayed;
    ++delayed_requeues_;
    stats_.waiting_requeue.set(delayed_requeues_);
    add_timer(c, delay_ms, false);
    return;
  }
  c.state_ = Clone::State::kReady;
  ready_.push_back(c);
}

void DispatchQueue::finish_clone(Clone& c, int err) {
  OriginalIo& o = *c.orig_;
  if (err != 0 && o.error == 0) {
    o.error = err;
  }
  c.state_ = Clone::State::kFree;
  c.target_ = nullptr;
  c.interrupted_ = false;
  assert(o.outstanding > 0);
  if (--o.outstanding == 0) {
    complete_original(o);
  }
}

void DispatchQueue::complete_original(OriginalIo& o) {
  Request* req = o.req;
  const int result = o.error;
  o.active = false;
  o.req = nullptr;
  --active_requests_;
  OpIoStats& op = stats_.ops[static_cast<std::size_t>(req->op)];
  op.completed.add();
  op.bytes.add(std::uint64_t{req->nr_sectors} << kSectorShift);
  if (result != 0) {
    op.errors.add();
  }
  if (o.start_ns != 0) {
    const std::uint64_t now = dev_.clock().now_ns();
    const std::uint64_t ns = now > o.start_ns ? now - o.start_ns : 0;
    op.latency_ns_sum.add(ns);
    op.latency[latency_bucket(ns)].add();
  }
  // Last: the sink may submit a new request on this tag right away.
  req->sink->request_done(*req, result);
}

}  // namespace ubdm
