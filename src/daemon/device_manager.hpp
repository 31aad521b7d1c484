// SPDX-License-Identifier: MIT
// The daemon's devices and the control verbs on them (src/control/protocol.hpp).
//
// Every verb either completes or throws ubdm::Error leaving the state as it
// was: a failed create leaves no device behind, a failed load leaves both
// table slots untouched.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "recovery/adoption.hpp"
#include "recovery/state.hpp"
#include "ubdm/device.hpp"
#include "ubdm/io.hpp"
#include "ublk/control.hpp"
#include "ublk/device.hpp"

namespace ubdm::daemon {

struct DaemonConfig {
  std::string config_dir = "/etc/ubdm";   // maps.d/NAME.table lives here
  std::string link_dir = "/dev/ubdm";     // NAME -> /dev/ublkbN symlinks ("" for none)
  // ublkbN -> NAME files for the udev rule (99-ubdm.rules) ("" for none).
  std::string names_dir = "/run/ubdm/names";
  unsigned default_queues = 0;            // 0: min(CPUs, 4)
  unsigned default_depth = 128;
  // Adaptive-polling window of the queue threads (ublk::QueueConfig). 50 us
  // covers a request's round trip to the submitter even under TCG, where it
  // cut 4k qd1 latency by a quarter to a third; an idle device spins no
  // longer than this.
  unsigned default_poll_usec = 50;
  // Tests only (UBDMD_ZERO_COPY_FALLBACK=1): every zero-copy request takes
  // the hand-registration path (ublk::QueueConfig::force_registration_fallback).
  bool zero_copy_fallback_test = false;
  std::uint32_t max_io_bytes = 512 * 1024;
  // Recovery records (recovery/state.hpp), one per device; "" keeps none
  // (ubdmd passes --state-dir, default /run/ubdm/devices).
  std::string state_dir;
};

extern const char* const kDaemonVersion;

// Locking (see control::Locking, which each verb's spec names):
//  * mutex_ guards only the name registry (devices_). It is never held
//    across a kernel wait or a device operation: create reserves the name
//    and builds the device without it; remove retires the name, stops the
//    device without it, then drops the name.
//  * Per device: op_mutex serialises changes (load, clear, suspend, resume,
//    remove); life_mutex is taken shared by readers and exclusively only to
//    free the device; message_mutex serialises messages, which do not wait
//    for op_mutex so that `fail_if_no_path` reaches a device whose suspend
//    is waiting for queued I/O.
// So a device stuck in the kernel (START_DEV waiting on a hung disk, a
// suspend waiting on I/O that never returns) blocks only verbs that change
// that same device; every other verb, and every other device, answers.
class DeviceManager {
 public:
  // Polled by verbs that wait (suspend, wait, waiting for a busy device):
  // true when the client has gone away, and the verb gives up.
  using Cancelled = std::function<bool()>;

  // `control` may be null: devices then have no kernel side (tests).
  DeviceManager(DaemonConfig config, DeviceOpener& opener, ublk::Control* control);
  ~DeviceManager();
  DeviceManager(const DeviceManager&) = delete;
  DeviceManager& operator=(const DeviceManager&) = delete;

  // Run one protocol request; returns the reply's results (without "ok").
  // The request is checked against its verb's spec first
  // (control::check_request): a malformed one is EINVAL and changes nothing.
  nlohmann::json handle(const nlohmann::json& request, const Cancelled& cancelled = {});

  // Create a device for every config_dir/maps.d/NAME.table, each on a thread
  // of its own, and wait for them up to `wait`: a map whose devices hang
  // (START_DEV's partition scan on a disk that does not answer) goes on in
  // the background and appears when it is done. Errors are logged per map.
  // Returns how many were created within the wait.
  unsigned load_persistent_maps(std::chrono::milliseconds wait = std::chrono::seconds(30));

  // A device ubdmd makes at start of its own accord: a map of maps.d, or a
  // multipath map of path discovery (docs/discovery.md).
  struct StartupDevice {
    std::string name;
    std::string uuid;   // "" for none
    std::string table;  // the table text
    std::string what;   // how the log names it when it fails: "multipath map of WWID ..."
    // Called on the creating thread once the device is live, whenever that
    // is (within the wait or after it); must not throw.
    std::function<void()> created;
  };
  // Create each through the normal create path, each on a thread of its
  // own, waiting up to `wait` (START_DEV may wait on disks that do not
  // answer: those go on in the background); one that fails is logged with
  // its reason and the others go on. Returns how many were created within
  // the wait.
  unsigned create_startup_devices(std::vector<StartupDevice> devices, std::chrono::milliseconds wait);

  // What a device is, for path discovery to leave alone what is in use.
  struct DeviceSummary {
    std::string name;
    std::string uuid;
    // The block devices its tables (live and inactive) map to; empty while
    // it is being created or removed.
    std::vector<dev_t> uses;
  };
  // Every device of the registry, being created, live or being removed.
  std::vector<DeviceSummary> device_summaries() const;

  // Take over what the last ubdmd left (recovery/adoption.hpp): adopt its
  // devices with their tables, suspend state, messages and options, and
  // finish or undo what it left half-done. Call before serving clients and
  // before load_persistent_maps (whose names, once adopted, are skipped).
  // Each device is handled on a thread of its own; waits up to `wait` for
  // all of them. Throws Error(EBUSY), changing nothing, if another live
  // server holds one of the devices. Returns the number adopted.
  unsigned adopt_devices(std::chrono::milliseconds wait = std::chrono::seconds(60));
  // The same over a given list of kernel devices (GET_DEV_INFO results);
  // with no Control (tests) an adopted device gets no kernel side.
  unsigned adopt_devices(const std::vector<ublk::DevInfo>& kernel, std::chrono::milliseconds wait);

  // Refuse new verbs, end pending `wait`s and stop the state writer; call
  // before stopping the control server so that its connection threads can
  // finish, and before shutdown() or leave_for_restart().
  void begin_shutdown();

  // The stop that keeps devices (ubdmd's default): every device that can
  // outlive the process (ublk::Device::survives_exit) is drained with a
  // noflush suspend, so that I/O at its disks completes and the rest stays
  // held, within `deadline`; one that does not drain is left as it is. The
  // kernel then holds their I/O for the next ubdmd, which reissues it. The
  // state records stay as the operator left them (this suspend is not
  // recorded). Devices that cannot outlive the process are removed as by
  // shutdown(). The caller must then exit the process without destroying
  // this object (its devices must not be stopped).
  void leave_for_restart(std::chrono::milliseconds deadline);

  // Remove every device (daemon shutdown), all at once, within `deadline`.
  // A suspended device is resumed on its live table (a staged inactive
  // table is dropped, never activated) so the kernel can flush; a waiting
  // suspend is cancelled; multipath queueing is turned off. Returns the
  // names of the devices still not removed at the deadline: their threads
  // are still running, so the caller must then exit the process (_exit)
  // rather than destroy this object.
  std::vector<std::string> shutdown(std::chrono::milliseconds deadline = std::chrono::seconds(90));

  std::size_t device_count() const;

 private:
  enum class Phase : std::uint8_t { kCreating, kLive, kRemoving };

  // One change at a time per device, where a waiter can give up. (A
  // std::timed_mutex would do, but ThreadSanitizer does not see its timed
  // lock and reports every unlock as wrong, hiding real races.)
  class ChangeLock {
   public:
    // Waits until free or until `give_up` (polled every 100 ms) is true;
    // returns whether the lock was taken.
    bool lock_unless(const std::function<bool()>& give_up);
    void lock();
    void unlock();

   private:
    std::mutex mu_;
    std::condition_variable cv_;
    bool held_ = false;
  };

  struct Managed {
    Managed(std::string n, std::string u) : name_(std::move(n)), uuid_(std::move(u)) {}
    // The name and dm's device UUID ("" for none), each unique among
    // devices. A rename changes them (under op_mutex and the registry lock)
    // while readers that hold neither log or report them: any thread.
    std::string name() const {
      std::lock_guard lock(ident_mutex_);
      return name_;
    }
    std::string uuid() const {
      std::lock_guard lock(ident_mutex_);
      return uuid_;
    }
    void set_ident(std::string name, std::string uuid) {
      std::lock_guard lock(ident_mutex_);
      name_ = std::move(name);
      uuid_ = std::move(uuid);
    }
    bool read_only = false;  // set before the device is published, then fixed
    ChangeLock op_mutex;
    std::shared_mutex life_mutex;
    std::mutex message_mutex;
    // Written only by the creating thread before phase becomes kLive, and
    // reset only under life_mutex held exclusively.
    std::unique_ptr<MappedDevice> mapped;
    std::unique_ptr<ublk::Device> kernel;
    unsigned poll_usec = 0;
    std::atomic<Phase> phase{Phase::kCreating};
    // Raised by a forced remove or by shutdown: a suspend waiting on this
    // device gives up, so that they get op_mutex.
    std::atomic<bool> cancel_wait{false};
    // What the recovery record keeps beyond the objects above: the table
    // texts as given and how the device was suspended. Guarded by
    // state_mutex, which also serialises writes of the record.
    std::mutex state_mutex;
    std::int64_t ublk_id = -1;
    std::string live_text;
    std::optional<std::string> inactive_text;
    bool noflush = false;
    std::string saved;           // the record last written, serialised
    bool state_dropped = false;  // erased at removal: write no more
    std::uint64_t renames = 0;   // recovery::DeviceRecord::renames; under state_mutex

   private:
    mutable std::mutex ident_mutex_;
    std::string name_;
    std::string uuid_;
  };
  using ManagedPtr = std::shared_ptr<Managed>;

  // One verb's handler (the dispatcher has taken the locks its spec names).
  struct Call {
    const nlohmann::json& req;
    const Cancelled& cancelled;
  };
  using DeviceHandler = nlohmann::json (DeviceManager::*)(const Call&, Managed&);
  using DaemonHandler = nlohmann::json (DeviceManager::*)(const Call&);
  struct Handlers {
    DaemonHandler daemon = nullptr;  // Scope::kDaemon and Locking::kLifecycle
    DeviceHandler device = nullptr;  // the rest
  };
  static const Handlers& handlers_for(std::string_view verb);

  // Per-device settings of `create`; unset ones take the daemon's defaults.
  struct CreateOptions {
    std::optional<unsigned> queues;
    std::optional<unsigned> depth;
    std::optional<unsigned> poll_usec;
    bool copy = false;  // no zero copy, whatever the kernel offers
    std::string uuid;   // "" for none
    bool read_only = false;
  };

  // Handlers, one per verb of control::verbs().
  nlohmann::json do_version(const Call& c);
  nlohmann::json do_targets(const Call& c);
  nlohmann::json do_ls(const Call& c);
  nlohmann::json do_create(const Call& c);
  nlohmann::json do_remove(const Call& c);
  nlohmann::json do_remove_all(const Call& c);
  nlohmann::json do_load(const Call& c, Managed& d);
  nlohmann::json do_clear(const Call& c, Managed& d);
  nlohmann::json do_suspend(const Call& c, Managed& d);
  nlohmann::json do_resume(const Call& c, Managed& d);
  nlohmann::json do_message(const Call& c, Managed& d);
  nlohmann::json do_info(const Call& c, Managed& d);
  nlohmann::json do_table(const Call& c, Managed& d);
  nlohmann::json do_status(const Call& c, Managed& d);
  nlohmann::json do_deps(const Call& c, Managed& d);
  nlohmann::json do_paths(const Call& c, Managed& d);
  nlohmann::json do_wait(const Call& c, Managed& d);
  nlohmann::json do_mknodes(const Call& c, Managed& d);
  nlohmann::json do_stats(const Call& c, Managed& d);
  nlohmann::json do_rename(const Call& c, Managed& d);

  nlohmann::json create(const std::string& name, const std::string& table, const CreateOptions& opts);
  void remove(const std::string& name, bool force, const Cancelled& cancelled);
  nlohmann::json info_of(Managed& d) const;
  nlohmann::json lines_of(Managed& d, StatusType type, bool inactive) const;
  nlohmann::json paths_of(Managed& d) const;  // null if not a multipath device

  // The live device called `name` (ENXIO if none, EBUSY while it is being
  // created or removed).
  ManagedPtr find(const std::string& name) const;
  std::vector<ManagedPtr> all_live() const;
  // Take d.op_mutex, giving up (ECANCELED) if the client goes away.
  std::unique_lock<ChangeLock> lock_for_change(Managed& d, const Cancelled& cancelled) const;
  // Fails with ENXIO unless `d` is still live (checked under one of its locks).
  static void check_live(const Managed& d);

  // Makes (again) link_dir/NAME to the device's block node; returns that path,
  // or "" where there is none to make (no link dir, no kernel device).
  std::string make_link(const std::string& name, const Managed& d) const;
  void remove_link(const std::string& name) const;
  void publish_name(const std::string& name, std::uint32_t id) const;
  // Tells udev that the device's name file changed (a uevent "change").
  void announce_change(const Managed& d) const;
  // do_rename's two kinds (the caller holds d.op_mutex).
  void set_uuid(Managed& d, const std::string& uuid);
  void rename_device(Managed& d, const std::string& new_name);
  void force_error_table(Managed& d);
  // Not in use: no mount, swap, holder or exclusive opener (an exclusive
  // open of the disk, returned so that it is held across STOP_DEV), and no
  // plain opener either. Throws EBUSY naming what holds it.
  int claim_unused(Managed& d) const;
  void stop_and_destroy(Managed& d, int claim_fd = -1);
  // Returns false if the device was left in place because its I/O did not
  // drain by `until` (it stays in the registry, so shutdown reports it).
  bool shutdown_one(const ManagedPtr& d, std::chrono::steady_clock::time_point until);
  void forget(const ManagedPtr& d);

  // Recovery records. save_state writes d's record if it changed (throws on
  // failure); note_change does the same after a verb, logging a failure
  // instead (the change itself is done). drop_state erases it for good.
  recovery::DeviceRecord record_of(Managed& d) const;
  void save_state(Managed& d);
  void note_change(Managed& d);
  void drop_state(Managed& d);
  // The state writer: records what changes without a verb (the checker's
  // decisions), once a second.
  void state_writer_main();
  // A device adopted with multipath paths that could not be opened then
  // (stand-ins) gets its live table reloaded, as multipathd reloads a map,
  // once they open again: a noflush suspend, the same table, resume, and
  // the target state replayed. Only on an active device with no staged
  // table, and never waiting for a verb that holds the device.
  void revive_absent_paths(Managed& d);
  bool adopt_one(const recovery::DeviceRecord& r, const std::optional<ublk::DevInfo>& info);
  std::string restore(Managed& d, const recovery::DeviceRecord& r);
  void delete_kernel_device(const recovery::Step& s);

  DaemonConfig config_;
  DeviceOpener& opener_;
  ublk::Control* control_;
  mutable std::mutex mutex_;  // guards devices_ only; see the class comment
  std::map<std::string, ManagedPtr> devices_;
  std::atomic<bool> shutting_down_{false};
  recovery::StateStore state_;
  std::mutex writer_mutex_;
  std::condition_variable writer_cv_;
  std::thread writer_;
};

// Test hook: if the environment variable UBDMD_CRASH_AT names `point`, the
// process kills itself with SIGKILL there (the e2e tests' crash in the
// middle of create, remove or rename). Points: create-after-add,
// create-after-start, remove-after-stop, rename-between-records.
void crash_point(const char* point);

// Check a device name: 1..127 printable characters, no '/', not "." or "..".
void validate_name(const std::string& name);
// Throws Error(EINVAL) unless `uuid` may be a device's UUID ("" is none).
void validate_uuid(const std::string& uuid);

}  // namespace ubdm::daemon
