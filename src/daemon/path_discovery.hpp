// SPDX-License-Identifier: MIT
// Path discovery at start (docs/discovery.md): the glue between the pure
// pieces of src/discovery (configuration, sysfs scan, assembly, tables) and
// the daemon's devices. The configuration is read before anything else, so
// that a file that cannot be trusted stops ubdmd before it touches a
// device; the maps are made after adoption and maps.d, beside them.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "daemon/device_manager.hpp"
#include "discovery/multipath_conf.hpp"

namespace ubdm::daemon {

struct PathDiscoveryOptions {
  std::string multipath_conf;  // "" : discovery off
  std::string config_dir;      // bindings and wwids live in CONFIG/multipath/
  std::string sysfs_root = "/sys";
};

struct PathDiscovery {
  discovery::Config config;
  std::string bindings_path;  // CONFIG/multipath/bindings
  std::string wwids_path;     // CONFIG/multipath/wwids
  std::string sysfs_root;
};

// nullopt when discovery is off (no --multipath-conf, or no such file).
// Logs each of the file's warnings once. Throws on a file whose structure
// is broken (ubdm::Error names its line).
std::optional<PathDiscovery> load_path_discovery(const PathDiscoveryOptions& o);

// Scan, assemble with what exists, and create the new maps within `wait`
// (a map still being made then appears when done). Returns how many were
// created within it.
unsigned assemble_multipath_maps(const PathDiscovery& d, DeviceManager& manager, std::chrono::milliseconds wait);

}  // namespace ubdm::daemon
