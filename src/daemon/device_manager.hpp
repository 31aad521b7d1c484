// SPDX-License-Identifier: MIT
// The daemon's devices and the control verbs on them (src/control/protocol.hpp).
//
// Every verb either completes or throws ubdm::Error leaving the state as it
// was: a failed create leaves no device behind, a failed load leaves both
// table slots untouched. Verbs on one device are serialised by that device's
// lock; `wait` holds no lock while it sleeps.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

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
  std::uint32_t max_io_bytes = 512 * 1024;
};

extern const char* const kDaemonVersion;

class DeviceManager {
 public:
  // `control` may be null: devices then have no kernel side (tests).
  DeviceManager(DaemonConfig config, DeviceOpener& opener, ublk::Control* control);
  ~DeviceManager();
  DeviceManager(const DeviceManager&) = delete;
  DeviceManager& operator=(const DeviceManager&) = delete;

  // Run one protocol request; returns the reply's results (without "ok").
  nlohmann::json handle(const nlohmann::json& request);

  // Create a device for every config_dir/maps.d/NAME.table. Errors are
  // logged per map and do not stop the others. Returns how many were created.
  unsigned load_persistent_maps();

  // Refuse new verbs and end pending `wait`s; call before stopping the
  // control server so that its connection threads can finish.
  void begin_shutdown() { shutting_down_ = true; }

  // Remove every device (daemon shutdown). Suspended devices are resumed
  // first so the kernel can flush; devices still in use are removed anyway.
  void shutdown();

  std::size_t device_count() const;

 private:
  struct Managed {
    // Mutating verbs (load, suspend, resume, message, remove, ...) take
    // op_mutex, one at a time. Read-only verbs (info, table, status, paths,
    // deps, wait) take life_mutex shared, so they answer during a long
    // suspend; destruction takes life_mutex exclusively.
    std::mutex op_mutex;
    std::shared_mutex life_mutex;
    std::unique_ptr<MappedDevice> mapped;
    std::unique_ptr<ublk::Device> kernel;
    unsigned poll_usec = 0;
    std::atomic<bool> removed{false};
  };
  using ManagedPtr = std::shared_ptr<Managed>;

  // Per-device settings of `create`; unset ones take the daemon's defaults.
  struct CreateOptions {
    std::optional<unsigned> queues;
    std::optional<unsigned> depth;
    std::optional<unsigned> poll_usec;
  };
  nlohmann::json create(const std::string& name, const std::string& table, const CreateOptions& opts);
  nlohmann::json load(Managed& d, const std::string& table);
  void remove(const std::string& name, bool force);
  nlohmann::json info_of(Managed& d) const;
  nlohmann::json lines_of(Managed& d, StatusType type, bool inactive) const;
  nlohmann::json paths_of(Managed& d) const;  // null if not a multipath device
  nlohmann::json wait(const ManagedPtr& d, std::optional<std::uint64_t> event_nr);
  ManagedPtr find(const std::string& name) const;
  // Apply `fn` to the request's named device, or to every device, each under
  // its shared lock; collects the non-null results. `named`: a NAME was given.
  nlohmann::json collect(const nlohmann::json& req,
                         const std::function<nlohmann::json(Managed&, bool named)>& fn) const;
  std::vector<std::pair<std::string, ManagedPtr>> all() const;
  void make_link(const std::string& name, const Managed& d) const;
  void remove_link(const std::string& name) const;
  void publish_name(const std::string& name, std::uint32_t id) const;
  void force_error_table(Managed& d);
  void stop_and_destroy(const std::string& name, Managed& d);

  DaemonConfig config_;
  DeviceOpener& opener_;
  ublk::Control* control_;
  mutable std::mutex mutex_;  // guards devices_ (and serialises create/remove)
  std::map<std::string, ManagedPtr> devices_;
  std::atomic<bool> shutting_down_{false};
};

// Check a device name: 1..127 printable characters, no '/', not "." or "..".
void validate_name(const std::string& name);

}  // namespace ubdm::daemon
