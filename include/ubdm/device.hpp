// SPDX-License-Identifier: MIT
// A mapped device: a name, a live and an inactive table slot, suspend state,
// an event counter, and one DispatchQueue per hardware queue.
//
// All methods except the DeviceContext ones are control-plane calls: one
// control thread at a time (serialised by the caller), and they may throw
// ubdm::Error. Queue threads learn of changes through a generation counter.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "ubdm/clock.hpp"
#include "ubdm/dispatch_queue.hpp"
#include "ubdm/table.hpp"
#include "ubdm/target.hpp"

namespace ubdm {

struct DeviceConfig {
  unsigned nr_queues = 1;
  unsigned queue_depth = 128;
  unsigned clones_per_tag = 4;  // pieces of one request that may be in flight at once
  // Time every I/O for the latency histograms (two clock reads per I/O;
  // docs/performance.md has the cost). Counting is always on.
  bool time_ios = true;
};

enum class DeviceState : std::uint8_t {
  kSuspended,  // no I/O dispatched (also the state before the first resume)
  kSuspending,
  kActive,
};

enum SuspendFlag : unsigned {
  kSuspendNoflush = 1U << 0,
};

struct DeviceInfo {
  std::string name;
  DeviceState state = DeviceState::kSuspended;
  bool live_table = false;
  bool inactive_table = false;
  std::uint64_t event_nr = 0;
  std::size_t target_count = 0;
  sector_t size_sectors = 0;
};

class MappedDevice final : public DeviceContext {
 public:
  MappedDevice(std::string name, DeviceConfig config, DeviceOpener& opener,
               const Clock& clock = system_clock());
  ~MappedDevice() override;
  MappedDevice(const MappedDevice&) = delete;
  MappedDevice& operator=(const MappedDevice&) = delete;

  // --- tables ---
  // Called with a table that is built but not yet installed; throws to
  // refuse it (e.g. a frontend's limits that its devices cannot honour).
  using TableCheck = std::function<void(const Table&)>;
  // Build a table and put it in the inactive slot, replacing any previous
  // inactive table. On error (including `check` throwing) nothing changes:
  // the live table and the previous inactive table are untouched.
  void load(const std::vector<TableLine>& lines, const TableCheck& check = {});
  void load_text(std::string_view text) { load(parse_table_text(text)); }
  // Drop the inactive table. Not an error if there is none.
  void clear_inactive();

  // --- suspend / resume ---
  // Polled while a blocking suspend waits; true ends the wait.
  using CancelCheck = std::function<bool()>;
  // Blocking suspend for threaded use: begin, wait for every queue to drain,
  // then finish. On timeout the suspend is interrupted (see interrupt_suspend)
  // and Error(ETIMEDOUT) is thrown; when `cancelled` returns true (it is
  // polled every 100 ms while waiting), likewise with Error(ECANCELED).
  void suspend(unsigned flags, std::chrono::milliseconds timeout, const CancelCheck& cancelled = {});

  // For a process about to exit and leave the device to its next server:
  // begin a noflush suspend (I/O at the disks completes, the rest is held)
  // and wait up to `timeout` for the drain. Returns whether it drained.
  // Never undoes the suspend, since an interrupted noflush suspend fails
  // I/O that asks to be requeued: the device stays suspending or suspended,
  // and only the process's exit may follow.
  bool drain_for_exit(std::chrono::milliseconds timeout);

  // Non-blocking steps of the same, for callers that drive the queues
  // themselves (tests, the single-threaded test frontend).
  // begin_suspend: set the noflush flag (before presuspend, as dm does),
  // run presuspend, and tell the queues to drain. Throws EBUSY if not active.
  void begin_suspend(unsigned flags);
  bool suspend_drained() const;
  // postsuspend; the device becomes SUSPENDED.
  void finish_suspend();
  // Undo an unfinished suspend: presuspend_undo, dispatch restarts, pushed
  // back I/O is reissued, and clones still in flight that later ask to be
  // requeued are failed with EIO ("noflush suspend was interrupted").
  void interrupt_suspend();

  // Called by resume() when the table swapped in maps another size than the
  // live one, with the new size, after every preresume has succeeded and
  // while I/O is still held: a frontend sets its disk's capacity there, as
  // dm sets it during the swap. Throwing cancels the swap (the device stays
  // suspended with its old table and the inactive one loaded).
  using SizeChange = std::function<void(sector_t new_size)>;
  // Swap in the inactive table if one is loaded (suspending first, with a
  // flush suspend, if the device is active), run preresume and resume on the
  // live targets, and reissue deferred and pushed-back I/O. Throws EINVAL if
  // there is nothing to do (active, no inactive table), and the errno of a
  // failing preresume (the device then stays suspended with its old table).
  void resume(std::chrono::milliseconds suspend_timeout = std::chrono::seconds(30),
              const SizeChange& size_change = {});

  // --- messages, status, events ---
  // Send a message to the target at `sector`.
  std::string message(sector_t sector, const std::vector<std::string>& args);
  std::vector<std::string> status_lines(StatusType type, bool inactive = false) const;
  // The live targets' restore messages (Target::restore_messages), each
  // with its target's first sector, for message() on a rebuilt device.
  struct Message {
    sector_t sector = 0;
    std::vector<std::string> args;
    bool operator==(const Message&) const = default;
  };
  std::vector<Message> restore_messages() const;
  // The live targets' absent_devices(), all together.
  std::vector<std::string> absent_devices() const;
  DeviceInfo info() const;
  std::uint64_t event_nr() const { return event_nr_.load(std::memory_order_acquire); }
  // Wait until event_nr() != `seen` or the timeout passes; returns event_nr().
  std::uint64_t wait_event(std::uint64_t seen, std::chrono::milliseconds timeout) const;

  TablePtr live_table() const;
  TablePtr inactive_table() const;
  sector_t size_sectors() const;

  DispatchQueue& queue(unsigned i) { return *queues_.at(i); }
  // Every queue's I/O statistics, summed. Any thread.
  IoTotals io_stats() const;
  unsigned nr_queues() const { return static_cast<unsigned>(queues_.size()); }
  const DeviceConfig& config() const { return config_; }
  const Clock& clock() const { return clock_; }

  // --- DeviceContext (any thread) ---
  std::string device_name() const override;
  // Control plane: the device is called `name` from now on (a rename).
  void set_name(std::string name);
  bool noflush_suspending() const override { return noflush_suspending_.load(std::memory_order_acquire); }
  bool suspending() const override { return suspending_.load(std::memory_order_acquire); }
  bool suspended() const override { return state_.load(std::memory_order_acquire) == DeviceState::kSuspended; }
  void trigger_event() override;
  unsigned queue_count() const override { return config_.nr_queues; }
  bool restoring() const override { return restoring_.load(std::memory_order_acquire); }
  // Control plane: set around the loads of a restarted daemon's rebuild.
  void set_restoring(bool on) { restoring_.store(on, std::memory_order_release); }

 private:
  friend class DispatchQueue;

  // What a queue reads when the generation moves. Guarded by gate_mutex_.
  struct Gate {
    DispatchQueue::Mode mode = DispatchQueue::Mode::kSuspended;
    TablePtr table;
    std::uint64_t table_gen = 0;
  };

  Gate read_gate(std::uint64_t& generation) const;
  void publish(DispatchQueue::Mode mode, bool new_table);
  void queue_drained();
  void wake_queues();
  void swap_tables();

  mutable std::mutex name_mutex_;
  std::string name_;  // guarded by name_mutex_: renamed while queues log
  const DeviceConfig config_;
  DeviceOpener& opener_;
  const Clock& clock_;
  std::vector<std::unique_ptr<DispatchQueue>> queues_;

  TablePtr inactive_;  // guarded by gate_mutex_: status readers run beside control verbs
  // Written by the control thread; read by status queries from any thread.
  std::atomic<DeviceState> state_{DeviceState::kSuspended};
  unsigned suspend_flags_ = 0;

  mutable std::mutex gate_mutex_;
  Gate gate_;
  std::atomic<std::uint64_t> generation_{1};
  std::uint64_t table_gen_counter_ = 0;

  std::atomic<bool> noflush_suspending_{false};
  std::atomic<bool> restoring_{false};
  std::atomic<bool> suspending_{true};

  mutable std::mutex drain_mutex_;
  mutable std::condition_variable drain_cv_;

  std::atomic<std::uint64_t> event_nr_{0};
  mutable std::mutex event_mutex_;
  mutable std::condition_variable event_cv_;
};

}  // namespace ubdm
