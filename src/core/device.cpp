// SPDX-License-Identifier: MIT
// MappedDevice: table slots, suspend/resume, events.
//
// Suspend follows dm's __dm_suspend for request-based devices:
//   1. set NOFLUSH_SUSPENDING (noflush only) -- before presuspend, so targets
//      see it there
//   2. presuspend every target
//   3. block dispatch: queues stop taking new originals; a noflush suspend
//      also stops dispatching queued ones and parks requeues (pushback)
//   4. wait until every queue has no clone in flight (a flush suspend also
//      waits for what was queued before the suspend point)
//   5. SUSPENDED, clear NOFLUSH_SUSPENDING, postsuspend
// Resume: swap the inactive table in, preresume + resume, then let the
// queues reissue pushed-back and deferred I/O.
#include "ubdm/device.hpp"

#include <spdlog/spdlog.h>

#include "ubdm/error.hpp"

namespace ubdm {
namespace {

constexpr unsigned kMaxQueues = 64;
constexpr unsigned kMaxDepth = 4096;  // UBLK_MAX_QUEUE_DEPTH
constexpr unsigned kMaxClonesPerTag = 64;

template <typename Fn>
void for_each_target(const TablePtr& table, Fn&& fn) {
  if (!table) {
    return;
  }
  for (std::size_t i = 0; i < table->target_count(); ++i) {
    fn(table->target(i));
  }
}

}  // namespace

MappedDevice::MappedDevice(std::string name, DeviceConfig config, DeviceOpener& opener, const Clock& clock)
    : name_(std::move(name)), config_(config), opener_(opener), clock_(clock) {
  if (config_.nr_queues == 0 || config_.nr_queues > kMaxQueues) {
    fail_invalid("queue count {} out of range: must be between 1 and {}", config_.nr_queues, kMaxQueues);
  }
  if (config_.queue_depth == 0 || config_.queue_depth > kMaxDepth) {
    fail_invalid("queue depth {} out of range: must be between 1 and {}", config_.queue_depth, kMaxDepth);
  }
  if (config_.clones_per_tag == 0 || config_.clones_per_tag > kMaxClonesPerTag) {
    fail_invalid("clones per tag {} out of range: must be between 1 and {}", config_.clones_per_tag,
                 kMaxClonesPerTag);
  }
  queues_.reserve(config_.nr_queues);
  for (unsigned i = 0; i < config_.nr_queues; ++i) {
    queues_.push_back(std::make_unique<DispatchQueue>(*this, i, config_.queue_depth, config_.clones_per_tag));
  }
}

MappedDevice::~MappedDevice() = default;

// ---------------------------------------------------------------------------
// Tables

void MappedDevice::load(const std::vector<TableLine>& lines, const TableCheck& check) {
  // dm's immutable rule, checked before anything is opened: a device whose
  // live table has an immutable type keeps that type (or becomes all error).
  if (const TablePtr live = live_table()) {
    for (std::size_t i = 0; i < live->target_count(); ++i) {
      const TargetType* type = find_target_type(live->target(i).type_name());
      if (type == nullptr || !type->immutable) {
        continue;
      }
      for (const TableLine& l : lines) {
        if (l.type != type->name && l.type != "error") {
          fail_invalid("can't replace immutable target type {} with {}", type->name, l.type);
        }
      }
    }
  }
  // Build completely before touching the slot: a failure leaves both slots as they were.
  std::shared_ptr<const Table> table = Table::build(lines, opener_, *this, clock_);
  if (check) {
    check(*table);  // may throw: the new table is destroyed, nothing changed
  }
  TablePtr old;
  std::lock_guard lock(gate_mutex_);
  old = std::exchange(inactive_, std::move(table));  // destroyed after the lock is released
}

void MappedDevice::clear_inactive() {
  TablePtr old;
  std::lock_guard lock(gate_mutex_);
  old.swap(inactive_);  // destroyed after the lock is released
}

TablePtr MappedDevice::live_table() const {
  std::lock_guard lock(gate_mutex_);
  return gate_.table;
}

TablePtr MappedDevice::inactive_table() const {
  std::lock_guard lock(gate_mutex_);
  return inactive_;
}

void IoTotals::add(const QueueStats& q) {
  for (std::size_t i = 0; i < kStatOps; ++i) {
    const OpIoStats& from = q.ops[i];
    OpIoTotals& to = ops[i];
    to.started += from.started;
    to.completed += from.completed;
    to.bytes += from.bytes;
    to.errors += from.errors;
    to.latency_ns_sum += from.latency_ns_sum;
    for (std::size_t b = 0; b < kLatencyBuckets; ++b) {
      to.latency[b] += from.latency[b];
    }
  }
  requeues += q.requeues;
  pushbacks += q.pushbacks;
  waiting_requeue += q.waiting_requeue;
  pushed_back += q.pushed_back;
}

IoTotals MappedDevice::io_stats() const {
  // The queues live as long as the device; their counters are atomics.
  IoTotals t;
  for (const auto& q : queues_) {
    t.add(q->stats());
  }
  return t;
}

sector_t MappedDevice::size_sectors() const {
  const TablePtr t = live_table();
  return t ? t->size() : 0;
}

// ---------------------------------------------------------------------------
// Gate: the state queues read when the generation moves.

MappedDevice::Gate MappedDevice::read_gate(std::uint64_t& generation) const {
  std::lock_guard lock(gate_mutex_);
  generation = generation_.load(std::memory_order_relaxed);
  return gate_;
}

void MappedDevice::publish(DispatchQueue::Mode mode, bool new_table) {
  {
    std::lock_guard lock(gate_mutex_);
    gate_.mode = mode;
    if (new_table) {
      gate_.table = inactive_;
      gate_.table_gen = ++table_gen_counter_;
    }
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  wake_queues();
}

void MappedDevice::wake_queues() {
  std::vector<std::function<void()>> wakers;
  {
    std::lock_guard lock(gate_mutex_);
    for (const auto& q : queues_) {
      if (q->waker_) {
        wakers.push_back(q->waker_);
      }
    }
  }
  for (auto& w : wakers) {
    w();
  }
}

void MappedDevice::queue_drained() {
  { std::lock_guard lock(drain_mutex_); }
  drain_cv_.notify_all();
}

bool MappedDevice::suspend_drained() const {
  const std::uint64_t gen = generation_.load(std::memory_order_acquire);
  std::lock_guard lock(gate_mutex_);
  for (const auto& q : queues_) {
    // An unbound queue has no thread and therefore no I/O.
    if (q->backend_ != nullptr && q->drained_generation_.load(std::memory_order_acquire) != gen) {
      return false;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------
// Suspend

void MappedDevice::begin_suspend(unsigned flags) {
  if (state_ == DeviceState::kSuspended) {
    fail(EBUSY, "device is already suspended");
  }
  if (state_ == DeviceState::kSuspending) {
    fail(EBUSY, "a suspend is already in progress");
  }
  const bool noflush = (flags & kSuspendNoflush) != 0;
  suspend_flags_ = flags;
  suspending_.store(true, std::memory_order_release);
  if (noflush) {
    noflush_suspending_.store(true, std::memory_order_release);
  }
  const TablePtr live = live_table();
  for_each_target(live, [](Target& t) { t.presuspend(); });
  state_ = DeviceState::kSuspending;
  publish(noflush ? DispatchQueue::Mode::kNoflushDraining : DispatchQueue::Mode::kFlushDraining, false);
}

void MappedDevice::finish_suspend() {
  if (state_ != DeviceState::kSuspending) {
    fail(EINVAL, "no suspend in progress");
  }
  if (!suspend_drained()) {
    fail(EBUSY, "I/O is still in flight");
  }
  state_ = DeviceState::kSuspended;
  noflush_suspending_.store(false, std::memory_order_release);
  const TablePtr live = live_table();
  for_each_target(live, [](Target& t) { t.postsuspend(); });
  publish(DispatchQueue::Mode::kSuspended, false);
}

void MappedDevice::interrupt_suspend() {
  if (state_ != DeviceState::kSuspending) {
    fail(EINVAL, "no suspend in progress");
  }
  noflush_suspending_.store(false, std::memory_order_release);
  const TablePtr live = live_table();
  for_each_target(live, [](Target& t) { t.presuspend_undo(); });
  suspending_.store(false, std::memory_order_release);
  state_ = DeviceState::kActive;
  publish(DispatchQueue::Mode::kRunning, false);
}

void MappedDevice::suspend(unsigned flags, std::chrono::milliseconds timeout, const CancelCheck& cancelled) {
  begin_suspend(flags);
  // Waits in slices so that a cancel (the client went away, a forced remove)
  // is seen within one slice; the drain itself wakes the wait at once.
  constexpr auto kSlice = std::chrono::milliseconds(100);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool drained = false;
  bool was_cancelled = false;
  for (;;) {
    {
      std::unique_lock lock(drain_mutex_);
      const auto left = deadline - std::chrono::steady_clock::now();
      const auto slice = cancelled ? std::min<std::chrono::steady_clock::duration>(left, kSlice) : left;
      drained = drain_cv_.wait_for(lock, std::max<std::chrono::steady_clock::duration>(slice, {}),
                                   [this] { return suspend_drained(); });
    }
    if (drained || std::chrono::steady_clock::now() >= deadline) {
      break;
    }
    if (cancelled && cancelled()) {
      was_cancelled = true;
      break;
    }
  }
  if (!drained) {
    interrupt_suspend();
    if (was_cancelled) {
      fail(ECANCELED, "suspend cancelled while waiting for in-flight I/O; the device stays active");
    }
    fail(ETIMEDOUT, "suspend timed out after {} ms waiting for in-flight I/O; the device stays active",
         timeout.count());
  }
  finish_suspend();
}

bool MappedDevice::drain_for_exit(std::chrono::milliseconds timeout) {
  begin_suspend(kSuspendNoflush);
  bool drained = false;
  {
    std::unique_lock lock(drain_mutex_);
    drained = drain_cv_.wait_for(lock, timeout, [this] { return suspend_drained(); });
  }
  if (drained) {
    finish_suspend();
  }
  return drained;
}

// ---------------------------------------------------------------------------
// Resume

void MappedDevice::resume(std::chrono::milliseconds suspend_timeout, const SizeChange& size_change) {
  if (state_ == DeviceState::kSuspending) {
    fail(EBUSY, "a suspend is in progress");
  }
  const TablePtr live = live_table();
  const TablePtr inactive = inactive_table();
  if (!inactive) {
    if (!live) {
      fail(EINVAL, "device has no table: load one first");
    }
    if (state_ == DeviceState::kActive) {
      fail(EINVAL, "device is not suspended and no inactive table is loaded");
    }
  } else if (state_ == DeviceState::kActive) {
    // As dm: a resume with a new table suspends (with flush) before the swap.
    suspend(0, suspend_timeout);
  }

  const TablePtr next = inactive ? inactive : live;
  for (std::size_t i = 0; i < next->target_count(); ++i) {
    Target& t = next->target(i);
    const int rc = t.preresume();
    if (rc < 0) {
      // The device stays suspended; the inactive table (if any) stays loaded.
      fail(-rc, "target {} ({}) refused to resume: {}", i, t.type_name(), errno_string(rc));
    }
  }
  const bool swap = static_cast<bool>(inactive);
  if (swap && live && next->size() != live->size() && size_change) {
    size_change(next->size());
  }
  for_each_target(next, [](Target& t) { t.resume(); });
  suspending_.store(false, std::memory_order_release);
  state_ = DeviceState::kActive;
  publish(DispatchQueue::Mode::kRunning, swap);
  if (swap) {
    clear_inactive();
    trigger_event();
  }
}

// ---------------------------------------------------------------------------
// Messages, status, events

std::string MappedDevice::message(sector_t sector, const std::vector<std::string>& args) {
  const TablePtr live = live_table();
  if (!live) {
    fail(ENXIO, "device has no live table");
  }
  if (args.empty()) {
    fail_invalid("empty message");
  }
  Target* t = live->find(sector);
  if (t == nullptr) {
    fail_invalid("sector {} is beyond the end of the device ({} sectors)", sector, live->size());
  }
  return t->message(args);
}

std::vector<MappedDevice::Message> MappedDevice::restore_messages() const {
  std::vector<Message> out;
  if (const TablePtr live = live_table()) {
    for (std::size_t i = 0; i < live->target_count(); ++i) {
      const Target& t = live->target(i);
      for (std::vector<std::string>& args : t.restore_messages()) {
        out.push_back(Message{t.start(), std::move(args)});
      }
    }
  }
  return out;
}

std::vector<std::string> MappedDevice::absent_devices() const {
  std::vector<std::string> out;
  if (const TablePtr live = live_table()) {
    for (std::size_t i = 0; i < live->target_count(); ++i) {
      for (std::string& p : live->target(i).absent_devices()) {
        out.push_back(std::move(p));
      }
    }
  }
  return out;
}

std::vector<std::string> MappedDevice::status_lines(StatusType type, bool inactive) const {
  const TablePtr t = inactive ? inactive_table() : live_table();
  return t ? t->status_lines(type) : std::vector<std::string>{};
}

std::string MappedDevice::device_name() const {
  std::lock_guard lock(name_mutex_);
  return name_;
}

void MappedDevice::set_name(std::string name) {
  std::lock_guard lock(name_mutex_);
  name_ = std::move(name);
}

DeviceInfo MappedDevice::info() const {
  DeviceInfo i;
  const TablePtr live = live_table();
  i.name = device_name();
  i.state = state_;
  i.live_table = static_cast<bool>(live);
  i.inactive_table = static_cast<bool>(inactive_table());
  i.event_nr = event_nr();
  i.target_count = live ? live->target_count() : 0;
  i.size_sectors = live ? live->size() : 0;
  return i;
}

void MappedDevice::trigger_event() {
  {
    std::lock_guard lock(event_mutex_);
    event_nr_.fetch_add(1, std::memory_order_acq_rel);
  }
  event_cv_.notify_all();
}

std::uint64_t MappedDevice::wait_event(std::uint64_t seen, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(event_mutex_);
  event_cv_.wait_for(lock, timeout, [&] { return event_nr_.load(std::memory_order_acquire) != seen; });
  return event_nr_.load(std::memory_order_acquire);
}

}  // namespace ubdm
