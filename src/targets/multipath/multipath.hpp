// SPDX-License-Identifier: MIT
// The multipath target: the kernel's dm-multipath (request-based) table
// syntax, status lines, messages and failover, plus what multipathd adds,
// built in: a path checker, no_path_retry and failback.
//
// State shared by the queue threads (path validity, the current group,
// queue_if_no_path) is atomics, read without a lock on every I/O. Changes
// (fail/reinstate, group switches, messages, checker results) take the
// target's mutex; they happen on errors and control actions, not per I/O.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "targets/multipath/path_selector.hpp"
#include "ubdm/target.hpp"

namespace ubdm::mpath {

// What the built-in checker last saw of a path (multipathd's checker states).
enum class CheckerState : std::uint8_t { kUnchecked, kUp, kDown, kPending, kTimeout };
const char* checker_state_name(CheckerState s);

// no_path_retry (a ubdm extension, from multipathd): what to do when the
// last path is lost.
struct NoPathRetry {
  enum class Mode : std::uint8_t { kUnset, kFail, kQueue, kCount } mode = Mode::kUnset;
  unsigned count = 0;  // checker intervals, for kCount
};

class MultipathTarget;

// One pgpath. Owned by the target; shared (read-only but for the atomics)
// with the selectors and the checker.
struct Path : SelectorPath {
  BlockDevicePtr dev;
  std::string given;          // as written in the table
  unsigned index = 0;         // index into the target's paths
  unsigned group = 0;         // index into the target's groups
  unsigned index_in_group = 0;
  std::atomic<std::uint32_t> fail_count{0};
  std::atomic<CheckerState> checker{CheckerState::kUnchecked};
  // Per queue: I/Os in flight and I/Os sent, written by that queue's thread only.
  std::unique_ptr<std::atomic<std::uint64_t>[]> inflight;
  std::unique_ptr<std::atomic<std::uint64_t>[]> ios;
};

struct PathReport {
  unsigned group = 0;  // 1-based
  std::string device;  // major:minor (or the file path)
  std::string given;   // as written in the table
  bool active = false;
  unsigned fail_count = 0;
  unsigned reinstate_count = 0;
  std::string checker;
  std::uint64_t in_flight = 0;
  std::uint64_t ios = 0;
  std::string selector_info;  // the selector's INFO words for the path
};

struct GroupReport {
  unsigned number = 0;  // 1-based
  char state = 'E';     // A active, E enabled, D disabled (bypassed)
  std::string selector;
};

struct MultipathReport {
  std::vector<GroupReport> groups;
  std::vector<PathReport> paths;
  bool queue_if_no_path = false;
  unsigned valid_paths = 0;
  std::string no_path_retry;  // "" (unset), "fail", "queue", or the count
  long recovery_remaining_ms = -1;  // while no_path_retry counts down
  unsigned check_interval_s = 0;
};

class MultipathTarget final : public Target {
 public:
  struct Group {
    unsigned number = 0;  // 1-based
    std::unique_ptr<Selector> selector;
    std::vector<Path*> paths;
    std::atomic<bool> bypassed{false};
    std::atomic<int> valid{0};  // valid paths in the group
  };

  MultipathTarget(TargetEnv& env, std::span<const std::string> args);
  ~MultipathTarget() override;

  MapResult map(Clone& clone) override;
  EndIoResult end_io(Clone& clone, int error) override;
  void presuspend() override;
  void presuspend_undo() override;
  void resume() override;
  std::string status(StatusType type) const override;
  std::string message(std::span<const std::string> args) override;
  std::vector<std::vector<std::string>> restore_messages() const override;
  std::vector<std::string> absent_devices() const override { return absent_; }
  void iterate_devices(const DeviceVisitor& visit) const override;

  MultipathReport report() const;

  // --- used by the path checker (its own thread) ---
  unsigned check_interval_s() const { return check_interval_s_; }
  std::vector<Path*> all_paths() const;
  // A probe of `p` finished: `err` 0 when it read its whole block, else a
  // negative errno (-ENXIO for a read that found no data: the device is gone
  // or shrank; `timed_out` when it never answered). Fails or reinstates the
  // path as needed: a path is up only if it read fine and its device still
  // covers the map.
  void checker_result(Path& p, int err, bool timed_out);
  // Periodic tick: the no_path_retry countdown, on the target's clock.
  void checker_tick();

  // True if `err` (negative errno from a path) may be the path's fault and
  // the I/O should be retried on another path (the kernel's !noretry_error,
  // in the errno form user-space I/O returns).
  static bool is_path_error(int err);

  // The one rule for what a failed piece says about its path: true if the
  // piece failed with `err` (negative errno) because of path `p` and is to
  // be retried on another path, false if every path would fail it alike and
  // the error goes to the submitter. `end_byte` is where the piece ends on
  // the path. is_path_error(err) decides, except that ENOSPC from a path
  // whose device no longer reaches `end_byte` (a deleted disk reads size 0)
  // is the path's failure too; ENOSPC from a device of the right size (a
  // full thin pool) stays a target error.
  bool is_path_failure(const Path& p, int err, std::uint64_t end_byte) const;

  // The size of a path's device now, in bytes, or nullopt if it cannot be
  // told. Only asked on error paths and by the checker, never per I/O.
  using SizeProbe = std::function<std::optional<std::uint64_t>(const BlockDevice&)>;
  // The default probe: BLKGETSIZE64 on a block device's fd (0 once the
  // device is gone), the size of a regular file, nullopt without an fd.
  static std::optional<std::uint64_t> device_bytes_now(const BlockDevice& dev);
  // Replace the probe (the tests' fake disks have no fd). Before any I/O.
  void set_size_probe(SizeProbe probe) { size_probe_ = std::move(probe); }

 private:
  struct PerIo {
    std::uint32_t path;
    std::uint64_t start_ns;
    std::uint64_t bytes;
  };

  void parse(std::span<const std::string> args);
  // Does p's device (by size_probe_) still reach `end_byte`? True if unknown.
  bool covers(const Path& p, std::uint64_t end_byte) const;
  Path* choose_path(unsigned queue, std::uint64_t bytes);
  bool must_push_back() const;
  // All of these take mutex_ themselves.
  bool fail_path(Path& p, const char* why);
  bool reinstate_path(Path& p, const char* why);
  void set_queue_if_no_path(bool on, bool save_old);
  // Callers hold mutex_.
  void choose_group_locked();
  void start_recovery_locked();
  void end_recovery_locked();

  DeviceContext& device_;
  const Clock& clock_;
  unsigned nr_queues_;
  std::vector<std::unique_ptr<Path>> paths_;
  std::vector<std::unique_ptr<Group>> groups_;

  // Table features.
  unsigned pg_init_retries_ = 0;
  bool pg_init_delay_set_ = false;
  unsigned pg_init_delay_msecs_ = 0;
  bool retain_hw_handler_ = false;
  bool queue_mode_bio_ = false;  // echoed only; I/O is request-based regardless
  NoPathRetry no_path_retry_;
  unsigned check_interval_s_ = 5;
  bool failback_immediate_ = false;

  // Device-wide state (see the file comment).
  std::atomic<int> current_group_{-1};
  std::atomic<int> next_group_{-1};
  std::atomic<int> valid_paths_{0};
  std::atomic<bool> queue_if_no_path_{false};
  std::atomic<bool> queue_io_{true};  // the kernel's MPATHF_QUEUE_IO, for INFO
  mutable std::mutex mutex_;
  bool saved_queue_if_no_path_ = false;
  bool in_recovery_ = false;          // no_path_retry counting down
  std::uint64_t recovery_deadline_ms_ = 0;
  bool queueing_expired_ = false;     // the countdown turned queueing off
  bool registered_ = false;           // with the path checker
  SizeProbe size_probe_ = device_bytes_now;
  std::vector<std::string> absent_;  // paths built as stand-ins, as given
};

std::unique_ptr<Target> create_multipath_target(TargetEnv& env, std::span<const std::string> args);

}  // namespace ubdm::mpath
