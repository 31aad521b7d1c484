// SPDX-License-Identifier: MIT
#include "daemon/path_discovery.hpp"

#include <sys/sysmacros.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "discovery/assembly.hpp"
#include "discovery/bindings.hpp"
#include "discovery/map_table.hpp"
#include "discovery/scsi_io.hpp"

namespace ubdm::daemon {
namespace {

// The wwids file, appended to as maps come up (multipathd's remember_wwid()
// after a create), possibly from creating threads after the start's wait.
class WwidsFile {
 public:
  WwidsFile(std::string path, std::vector<std::string> wwids) : path_(std::move(path)), wwids_(std::move(wwids)) {}
  void remember(const std::string& wwid) {
    std::lock_guard lock(mu_);
    if (std::find(wwids_.begin(), wwids_.end(), wwid) != wwids_.end()) {
      return;
    }
    wwids_.push_back(wwid);
    try {
      discovery::write_wwids_file(path_, wwids_);
    } catch (const std::exception& e) {
      spdlog::error("multipath: cannot record WWID {} in the wwids file: {}", wwid, e.what());
    }
  }

 private:
  std::mutex mu_;
  const std::string path_;
  std::vector<std::string> wwids_;
};

std::string groups_text(const discovery::MapTable& t) {
  std::string out = discovery::pgpolicy_name(t.policy);
  out += ':';
  for (const discovery::TableGroup& g : t.groups) {
    out += " [";
    for (std::size_t i = 0; i < g.paths.size(); ++i) {
      out += (i == 0 ? "" : " ") + g.paths[i].dev;
    }
    out += ']';
  }
  return out;
}

// detect_prio as propsel.c select_detect_prio() takes it: overrides, then
// defaults, then the built-in yes (DEFAULT_DETECT_PRIO). Device entries'
// detect_prio is not read yet.
bool detect_prio_of(const discovery::Config& c) {
  for (const discovery::Attributes* a : {static_cast<const discovery::Attributes*>(&c.overrides),
                                         static_cast<const discovery::Attributes*>(&c.defaults)}) {
    const auto it = a->other.find("detect_prio");
    if (it != a->other.end()) {
      return !(it->second == "no" || it->second == "0");
    }
  }
  return true;
}

// The SCSI questions the table asks, sent to /dev/NODE. With a sysfs root
// other than /sys (tests) only the root's files are read: /dev is the
// host's.
discovery::PathProbes path_probes(const PathDiscovery& d) {
  using namespace discovery;
  PathProbes probes;
  probes.detect_prio = detect_prio_of(d.config);
  const bool live = d.sysfs_root == "/sys";
  const std::string root = d.sysfs_root;
  probes.tpgs = [live, root](const ScannedPath& p) -> std::optional<unsigned> {
    const std::string dir = root + "/block/" + p.dev + "/device";
    if (!live) {
      return inquiry_tpgs(read_file_bytes(dir + "/inquiry"));
    }
    const ScsiResponse r = scsi_standard_inquiry("/dev/" + p.dev, dir);
    if (!r.error.empty()) {
      spdlog::info("multipath: {}: no ALUA support read: {}", p.dev, r.error);
      return std::nullopt;
    }
    return inquiry_tpgs(r.data);
  };
  probes.alua = [live, root](const ScannedPath& p, bool exclusive_pref_bit) {
    if (!live) {
      AluaInfo a;
      a.error = "SCSI commands are only sent under /sys";
      return a;
    }
    AluaInfo a = read_alua_info("/dev/" + p.dev, root + "/block/" + p.dev + "/device", exclusive_pref_bit);
    if (a.priority != kPrioUndef) {
      spdlog::info("multipath: {}: alua: target port group {}, {}{}, priority {}", p.dev, *a.port_group,
                   alua_state_name(*a.state), a.preferred ? " (preferred)" : "", a.priority);
    }
    return a;
  };
  return probes;
}

}  // namespace

std::optional<PathDiscovery> load_path_discovery(const PathDiscoveryOptions& o) {
  namespace fs = std::filesystem;
  if (o.multipath_conf.empty()) {
    spdlog::info("path discovery off (--multipath-conf is empty)");
    return std::nullopt;
  }
  std::error_code ec;
  if (!fs::exists(o.multipath_conf, ec)) {
    spdlog::info("path discovery off: there is no {}", o.multipath_conf);
    return std::nullopt;
  }
  PathDiscovery d;
  d.sysfs_root = o.sysfs_root;
  d.config = discovery::load_multipath_conf(o.multipath_conf);
  for (const discovery::Warning& w : d.config.warnings) {
    spdlog::warn("{}", w.message);
  }
  const fs::path dir = fs::path(o.config_dir) / "multipath";
  d.bindings_path = (dir / "bindings").string();
  d.wwids_path = (dir / "wwids").string();
  return d;
}

// Scan, assemble with what exists, and create the new maps within `wait`.
// Returns how many were created within it.
unsigned assemble_multipath_maps(const PathDiscovery& d, DeviceManager& manager, std::chrono::milliseconds wait) {
  namespace fs = std::filesystem;
  using namespace discovery;
  // What exists: every device's name, the WWID of those that are multipath
  // maps (UUID mpath-WWID, as multipathd's), and the disks they use.
  KnownState known;
  std::map<dev_t, std::pair<std::string, std::string>> in_use;  // disk -> device name, its WWID
  for (const DeviceManager::DeviceSummary& s : manager.device_summaries()) {
    const std::string wwid = s.uuid.rfind("mpath-", 0) == 0 ? s.uuid.substr(6) : "";
    known.devices[s.name] = wwid;
    for (const dev_t dev : s.uses) {
      in_use.emplace(dev, std::make_pair(s.name, wwid));
    }
  }
  known.wwids = read_wwids_file(d.wwids_path);
  std::vector<std::string> notes;
  const Bindings bindings = read_bindings_file(d.bindings_path, &notes);
  for (const std::string& n : notes) {
    spdlog::warn("{}: {}", d.bindings_path, n);
  }

  ScanOptions so;
  so.sysfs_root = d.sysfs_root;
  std::error_code ec;
  if (d.sysfs_root == "/sys" && fs::is_directory("/run/udev/data", ec)) {
    so.udev_data_dir = "/run/udev/data";  // for the blacklist's udev property rule
  }
  SysfsScan scan = scan_sysfs(so);
  for (const SkippedDevice& s : scan.skipped) {
    spdlog::debug("multipath: {} not a candidate path: {}", s.dev, s.why);
  }
  // A disk that another device maps (a maps.d table, a map of another
  // WWID) is not a path of a new map: ubdmd's devices share their claim of
  // a disk, so nothing else would stop it.
  std::erase_if(scan.paths, [&](const ScannedPath& p) {
    const auto it = in_use.find(makedev(p.major, p.minor));
    if (it == in_use.end() || (!p.wwid.empty() && it->second.second == p.wwid)) {
      return false;
    }
    spdlog::info("multipath: {} left out: in use by device {}", p.dev, it->second.first);
    return true;
  });

  const Assembly a = assemble_maps(d.config, scan, bindings, known);
  for (const std::string& n : a.notes) {
    spdlog::info("multipath: {}", n);
  }
  for (const LeftOut& l : a.left_out) {
    spdlog::info("multipath: {}{} left out ({}): {}", l.dev, l.wwid.empty() ? "" : " (WWID " + l.wwid + ")",
                 left_out_reason_name(l.reason), l.why);
  }
  if (a.bindings_changed) {
    try {
      write_bindings_file(d.bindings_path, a.bindings);
    } catch (const std::exception& e) {
      spdlog::error("multipath: cannot write the bindings file: {}", e.what());
    }
  }

  auto wwids = std::make_shared<WwidsFile>(d.wwids_path, known.wwids);
  const PollingIntervals polling = resolve_polling(d.config.defaults);
  const PathProbes probes = path_probes(d);
  std::vector<DeviceManager::StartupDevice> todo;
  for (const PlannedMap& m : a.maps) {
    if (m.current_name) {
      spdlog::info("multipath: {} serves WWID {} already{}", *m.current_name, m.wwid,
                   *m.current_name == m.name ? ""
                                             : fmt::format(" (the configuration names it {}; it is not renamed)",
                                                           m.name));
      wwids->remember(m.wwid);
      continue;
    }
    const MapTable t = make_map_table(m, polling, probes);
    for (const std::string& n : t.notes) {
      spdlog::info("multipath: {}: {}", m.name, n);
    }
    for (const OmittedPath& p : t.omitted) {
      spdlog::info("multipath: {} (WWID {}) left out of {}: {}", p.dev, m.wwid, m.name, p.why);
    }
    if (t.text.empty()) {
      spdlog::warn("multipath: {} (WWID {}) not created: none of its paths can be used", m.name, m.wwid);
      continue;
    }
    std::string paths;
    for (const ScannedPath& p : m.paths) {
      if (std::none_of(t.omitted.begin(), t.omitted.end(), [&](const OmittedPath& x) { return x.dev == p.dev; })) {
        paths += (paths.empty() ? "" : " ") + p.dev;
      }
    }
    const std::string line =
        fmt::format("{}: multipath map of WWID {} made over {} ({}, {}; name from {}; {})", m.name, m.wwid, paths,
                    groups_text(t), t.selector, name_source_name(m.name_source), m.why);
    spdlog::debug("{}: table {}", m.name, t.text);
    todo.push_back({m.name, m.uuid, t.text, fmt::format("multipath map of WWID {}", m.wwid),
                    [wwids, wwid = m.wwid, line] {
                      spdlog::info("{}", line);
                      wwids->remember(wwid);
                    }});
  }
  if (todo.empty()) {
    return 0;
  }
  return manager.create_startup_devices(std::move(todo), wait);
}

}  // namespace ubdm::daemon
