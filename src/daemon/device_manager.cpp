// SPDX-License-Identifier: MIT
#include "daemon/device_manager.hpp"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <spdlog/spdlog.h>

#include "control/protocol.hpp"
#include "daemon/openers.hpp"
#include "targets/multipath/multipath.hpp"
#include "ubdm/error.hpp"
#include "ubdm/table.hpp"

namespace ubdm::daemon {

const char* const kDaemonVersion = "0.1.0";

namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr unsigned kMaxQueues = 64;
constexpr unsigned kMaxDepth = 4096;
constexpr unsigned kMaxPollUsec = 1000000;
// How long a forced remove waits for in-flight I/O before swapping in the
// error table, and a plain suspend without --timeout (practically forever).
constexpr auto kForceSuspendTimeout = 10s;
constexpr auto kNoTimeout = std::chrono::hours(24 * 365);

template <typename T>
std::optional<T> optional_arg(const json& req, const char* key) {
  if (!req.contains(key) || req[key].is_null()) {
    return std::nullopt;
  }
  return req[key].get<T>();
}

std::string state_name(DeviceState s) { return s == DeviceState::kActive ? "ACTIVE" : "SUSPENDED"; }

// The size a table text maps, without building it (so a bad size can be
// refused before anything is opened).
sector_t table_size(const std::vector<TableLine>& lines) {
  sector_t end = 0;
  for (const TableLine& l : lines) {
    end = std::max(end, l.start + l.len);
  }
  return end;
}

unsigned default_queue_count() {
  const unsigned cpus = std::max(1U, std::thread::hardware_concurrency());
  return std::min(cpus, 4U);
}

}  // namespace

void validate_name(const std::string& name) {
  if (name.empty()) {
    fail_invalid("device name is empty");
  }
  if (name.size() > 127) {
    fail_invalid("device name is longer than 127 characters");
  }
  if (name == "." || name == "..") {
    fail_invalid("'{}' is not a valid device name", name);
  }
  for (char c : name) {
    if (c == '/' || c <= ' ' || c == 0x7f) {
      fail_invalid("device name '{}' contains '{}': use printable characters other than '/' and spaces", name,
                   c == '/' ? "/" : "a space or control character");
    }
  }
}

DeviceManager::DeviceManager(DaemonConfig config, DeviceOpener& opener, ublk::Control* control)
    : config_(std::move(config)), opener_(opener), control_(control) {
  if (config_.default_queues == 0) {
    config_.default_queues = default_queue_count();
  }
}

DeviceManager::~DeviceManager() { shutdown(); }

std::size_t DeviceManager::device_count() const {
  std::lock_guard lock(mutex_);
  return devices_.size();
}

DeviceManager::ManagedPtr DeviceManager::find(const std::string& name) const {
  std::lock_guard lock(mutex_);
  auto it = devices_.find(name);
  if (it == devices_.end()) {
    fail(ENXIO, "no such device");
  }
  return it->second;
}

std::vector<std::pair<std::string, DeviceManager::ManagedPtr>> DeviceManager::all() const {
  std::lock_guard lock(mutex_);
  return {devices_.begin(), devices_.end()};
}

// ---------------------------------------------------------------------------
// Request dispatch

json DeviceManager::handle(const json& req) {
  const std::string op = req.at("op").get<std::string>();
  static const std::set<std::string> kVerbs = {"version", "create", "load",    "clear", "suspend", "resume",
                                               "remove",  "info",   "table",   "status", "ls",     "targets",
                                               "deps",    "message", "wait",   "paths"};
  if (kVerbs.count(op) == 0) {
    fail_invalid("unknown operation '{}'", op);
  }
  if (shutting_down_.load() && op != "version") {
    fail(ESHUTDOWN, "ubdmd is shutting down");
  }
  if (op == "version") {
    return {{"daemon_version", kDaemonVersion},
            {"protocol", control::kProtocolVersion},
            {"ublk_features", control_ != nullptr ? fmt::format("{:#x}", control_->features()) : ""}};
  }
  if (op == "create") {
    const CreateOptions opts{optional_arg<unsigned>(req, "queues"), optional_arg<unsigned>(req, "depth"),
                             optional_arg<unsigned>(req, "poll_usec")};
    return {{"device", create(req.at("name").get<std::string>(), req.at("table").get<std::string>(), opts)}};
  }
  if (op == "remove") {
    remove(req.at("name").get<std::string>(), optional_arg<bool>(req, "force").value_or(false));
    return json::object();
  }
  if (op == "ls") {
    json devs = json::array();
    for (auto& [name, d] : all()) {
      const dev_t devt = d->kernel ? d->kernel->block_devt() : 0;
      devs.push_back({{"name", name},
                      {"major", major(devt)},
                      {"minor", minor(devt)},
                      {"blockdev", d->kernel ? d->kernel->block_path() : ""}});
    }
    return {{"devices", devs}};
  }
  if (op == "targets") {
    json types = json::array();
    for (const TargetType& t : target_types()) {
      types.push_back({{"name", t.name}, {"version", {t.version[0], t.version[1], t.version[2]}}});
    }
    return {{"targets", types}};
  }
  if (op == "paths") {
    return {{"devices", collect(req, [this](Managed& d, bool named) {
               json one = paths_of(d);
               if (one.is_null() && named) {
                 fail_invalid("device has no multipath target");
               }
               return one;
             })}};
  }
  if (op == "info" || op == "table" || op == "status") {
    const bool inactive = optional_arg<bool>(req, "inactive").value_or(false);
    return {{"devices", collect(req, [&](Managed& d, bool) {
               if (op == "info") {
                 return info_of(d);
               }
               return lines_of(d, op == "table" ? StatusType::kTable : StatusType::kInfo, inactive);
             })}};
  }

  // The remaining verbs name one device.
  const std::string name = req.at("name").get<std::string>();
  const ManagedPtr d = find(name);
  if (op == "wait") {
    return {{"device", wait(d, optional_arg<std::uint64_t>(req, "event_nr"))}};
  }
  if (op == "deps") {
    std::shared_lock lock(d->life_mutex);
    if (d->removed) {
      fail(ENXIO, "no such device");
    }
    json deps = json::array();
    if (const TablePtr t = d->mapped->live_table()) {
      for (const BlockDevice* dev : t->devices()) {
        deps.push_back({{"major", major(dev->rdev())}, {"minor", minor(dev->rdev())}, {"path", dev->path()}});
      }
    }
    return {{"deps", deps}};
  }
  std::lock_guard lock(d->op_mutex);
  if (d->removed) {
    fail(ENXIO, "no such device");
  }
  MappedDevice& md = *d->mapped;
  if (op == "load") {
    return {{"device", load(*d, req.at("table").get<std::string>())}};
  }
  if (op == "clear") {
    md.clear_inactive();
    return {{"device", info_of(*d)}};
  }
  if (op == "suspend") {
    const bool noflush = optional_arg<bool>(req, "noflush").value_or(false);
    const std::uint64_t timeout_ms = optional_arg<std::uint64_t>(req, "timeout_ms").value_or(0);
    const auto timeout = timeout_ms == 0 ? std::chrono::duration_cast<std::chrono::milliseconds>(kNoTimeout)
                                         : std::chrono::milliseconds(timeout_ms);
    md.suspend(noflush ? static_cast<unsigned>(kSuspendNoflush) : 0U, timeout);
    spdlog::info("{}: suspended{}", name, noflush ? " (noflush)" : "");
    return {{"device", info_of(*d)}};
  }
  if (op == "resume") {
    md.resume();
    spdlog::info("{}: resumed", name);
    return {{"device", info_of(*d)}};
  }
  if (op == "message") {
    std::vector<std::string> args = req.at("args").get<std::vector<std::string>>();
    const std::string reply = md.message(req.at("sector").get<std::uint64_t>(), args);
    return {{"reply", reply}};
  }
  fail_invalid("unhandled operation '{}'", op);
}

// ---------------------------------------------------------------------------
// Verbs

json DeviceManager::collect(const json& req, const std::function<json(Managed&, bool named)>& fn) const {
  const auto name = optional_arg<std::string>(req, "name");
  std::vector<std::pair<std::string, ManagedPtr>> devs;
  if (name) {
    devs.emplace_back(*name, find(*name));
  } else {
    devs = all();
  }
  json out = json::array();
  for (auto& [n, d] : devs) {
    std::shared_lock lock(d->life_mutex);
    if (d->removed) {
      if (name) {
        fail(ENXIO, "no such device");
      }
      continue;  // removed since the list was taken
    }
    json one = fn(*d, name.has_value());
    if (!one.is_null()) {
      out.push_back(std::move(one));
    }
  }
  return out;
}

json DeviceManager::create(const std::string& name, const std::string& table, const CreateOptions& opts) {
  validate_name(name);
  DeviceConfig cfg;
  cfg.nr_queues = opts.queues.value_or(config_.default_queues);
  cfg.queue_depth = opts.depth.value_or(config_.default_depth);
  const unsigned poll_usec = opts.poll_usec.value_or(config_.default_poll_usec);
  if (cfg.nr_queues == 0 || cfg.nr_queues > kMaxQueues) {
    fail_invalid("queue count {} out of range: must be between 1 and {}", cfg.nr_queues, kMaxQueues);
  }
  if (cfg.queue_depth == 0 || cfg.queue_depth > kMaxDepth) {
    fail_invalid("queue depth {} out of range: must be between 1 and {}", cfg.queue_depth, kMaxDepth);
  }
  if (poll_usec > kMaxPollUsec) {
    fail_invalid("poll window {} us out of range: must be between 0 and {}", poll_usec, kMaxPollUsec);
  }
  std::lock_guard lock(mutex_);
  if (devices_.count(name) != 0) {
    fail(EEXIST, "device already exists");
  }
  // Everything below is undone by the destructors if a step throws.
  auto d = std::make_shared<Managed>();
  d->poll_usec = poll_usec;
  d->mapped = std::make_unique<MappedDevice>(name, cfg, opener_);
  d->mapped->load_text(table);
  d->mapped->resume();
  if (control_ != nullptr) {
    ublk::DeviceOptions kopts;
    kopts.max_io_bytes = config_.max_io_bytes;
    kopts.poll_usec = poll_usec;
    kopts.before_start = [this, name](std::uint32_t id) { publish_name(name, id); };
    d->kernel = std::make_unique<ublk::Device>(*control_, *d->mapped, kopts);
    d->kernel->start();
    make_link(name, *d);
  }
  devices_.emplace(name, d);
  spdlog::info("{}: created ({} sectors, {} queue(s) x {}){}", name, d->mapped->size_sectors(), cfg.nr_queues,
               cfg.queue_depth, d->kernel ? " as " + d->kernel->block_path() : "");
  return info_of(*d);
}

json DeviceManager::load(Managed& d, const std::string& table) {
  const std::vector<TableLine> lines = parse_table_text(table);
  const sector_t size = table_size(lines);
  if (d.kernel && size != d.mapped->size_sectors()) {
    // ublk on 6.12 has no UPDATE_SIZE: the disk size is fixed at START_DEV.
    fail_invalid("the new table maps {} sectors but the device has {}: a live ublk device cannot change size",
                 size, d.mapped->size_sectors());
  }
  d.mapped->load(lines);
  return info_of(d);
}

void DeviceManager::force_error_table(Managed& d) {
  MappedDevice& md = *d.mapped;
  // As dmsetup remove --force: replace the table with `error` so that
  // queued I/O fails instead of waiting; a noflush suspend does not wait
  // for I/O that a target keeps queued.
  md.load_text(fmt::format("0 {} error", md.size_sectors()));
  if (md.info().state == DeviceState::kActive) {
    try {
      md.suspend(kSuspendNoflush, kForceSuspendTimeout);
    } catch (const Error& e) {
      spdlog::warn("{}: suspend before forced remove: {}", md.device_name(), e.what());
    }
  }
  if (md.info().state == DeviceState::kSuspended) {
    md.resume();
  }
}

void DeviceManager::stop_and_destroy(const std::string& name, Managed& d) {
  d.removed = true;
  remove_link(name);
  if (d.kernel) {
    d.kernel->stop();
  }
  // Readers hold life_mutex shared; wait for them before freeing.
  std::unique_lock lock(d.life_mutex);
  d.kernel.reset();
  d.mapped.reset();
}

void DeviceManager::remove(const std::string& name, bool force) {
  std::lock_guard lock(mutex_);
  auto it = devices_.find(name);
  if (it == devices_.end()) {
    fail(ENXIO, "no such device");
  }
  ManagedPtr d = it->second;
  std::lock_guard dlock(d->op_mutex);
  const DeviceInfo info = d->mapped->info();
  if (!force) {
    const unsigned open = d->kernel ? count_openers(d->kernel->block_devt()) : 0;
    if (open > 0) {
      fail(EBUSY, "device is in use (open count {}): close or unmount it first, or use --force", open);
    }
    if (info.state != DeviceState::kActive) {
      // Stopping the disk flushes it, which a suspended device would never finish.
      fail(EBUSY, "device is suspended: resume it first, or use --force");
    }
  } else {
    force_error_table(*d);
  }
  stop_and_destroy(name, *d);
  devices_.erase(it);
  spdlog::info("{}: removed{}", name, force ? " (forced)" : "");
}

json DeviceManager::wait(const ManagedPtr& d, std::optional<std::uint64_t> event_nr) {
  // As dmsetup: without an event number, wait for one other than 0, which
  // returns at once on any device that has had an event.
  const std::uint64_t seen = event_nr.value_or(0);
  // Sleep in slices so that a removal or a shutdown ends the wait.
  for (;;) {
    std::shared_lock lock(d->life_mutex);
    if (d->removed || shutting_down_) {
      fail(ENXIO, "device was removed while waiting");
    }
    if (d->mapped->wait_event(seen, 200ms) != seen) {
      return info_of(*d);
    }
  }
}

json DeviceManager::info_of(Managed& d) const {
  const DeviceInfo i = d.mapped->info();
  const dev_t devt = d.kernel ? d.kernel->block_devt() : 0;
  return {{"name", i.name},
          {"state", state_name(i.state)},
          {"live_table", i.live_table},
          {"inactive_table", i.inactive_table},
          {"open_count", count_openers(devt)},
          {"event_nr", i.event_nr},
          {"major", major(devt)},
          {"minor", minor(devt)},
          {"target_count", i.target_count},
          {"size_sectors", i.size_sectors},
          {"blockdev", d.kernel ? d.kernel->block_path() : ""},
          {"ublk_id", d.kernel ? static_cast<std::int64_t>(d.kernel->id()) : -1},
          {"queues", d.mapped->nr_queues()},
          {"depth", d.mapped->config().queue_depth},
          {"poll_usec", d.poll_usec}};
}

json DeviceManager::paths_of(Managed& d) const {
  const TablePtr t = d.mapped->live_table();
  if (!t || t->target_count() != 1) {
    return nullptr;
  }
  const auto* mp = dynamic_cast<const mpath::MultipathTarget*>(&t->target(0));
  if (mp == nullptr) {
    return nullptr;
  }
  const mpath::MultipathReport r = mp->report();
  json groups = json::array();
  for (const auto& g : r.groups) {
    groups.push_back({{"number", g.number}, {"state", std::string(1, g.state)}, {"selector", g.selector}});
  }
  json paths = json::array();
  for (const auto& p : r.paths) {
    paths.push_back({{"group", p.group},
                     {"device", p.device},
                     {"path", p.given},
                     {"state", p.active ? "active" : "failed"},
                     {"fail_count", p.fail_count},
                     {"checker", p.checker},
                     {"in_flight", p.in_flight},
                     {"ios", p.ios},
                     {"selector_info", p.selector_info}});
  }
  return {{"name", d.mapped->device_name()},
          {"queue_if_no_path", r.queue_if_no_path},
          {"valid_paths", r.valid_paths},
          {"no_path_retry", r.no_path_retry},
          {"recovery_remaining_ms", r.recovery_remaining_ms},
          {"check_interval_s", r.check_interval_s},
          {"groups", groups},
          {"paths", paths}};
}

json DeviceManager::lines_of(Managed& d, StatusType type, bool inactive) const {
  return {{"name", d.mapped->device_name()}, {"lines", d.mapped->status_lines(type, inactive)}};
}

// ---------------------------------------------------------------------------
// Links, persistent maps, shutdown

void DeviceManager::make_link(const std::string& name, const Managed& d) const {
  if (config_.link_dir.empty() || !d.kernel) {
    return;
  }
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(config_.link_dir, ec);
  const fs::path link = fs::path(config_.link_dir) / name;
  fs::remove(link, ec);
  fs::create_symlink(d.kernel->block_path(), link, ec);
  if (ec) {
    // The device works without the link; say so and go on.
    spdlog::warn("{}: cannot create {}: {}", name, link.string(), ec.message());
  }
}

void DeviceManager::remove_link(const std::string& name) const {
  std::error_code ec;
  if (!config_.link_dir.empty()) {
    std::filesystem::remove(std::filesystem::path(config_.link_dir) / name, ec);
  }
  if (!config_.names_dir.empty()) {
    // Names are published per ublk device; find ours by content.
    for (const auto& e : std::filesystem::directory_iterator(config_.names_dir, ec)) {
      std::ifstream in(e.path());
      std::string n;
      std::getline(in, n);
      if (n == name) {
        std::filesystem::remove(e.path(), ec);
      }
    }
  }
}

void DeviceManager::publish_name(const std::string& name, std::uint32_t id) const {
  if (config_.names_dir.empty()) {
    return;
  }
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(config_.names_dir, ec);
  const fs::path file = fs::path(config_.names_dir) / fmt::format("ublkb{}", id);
  std::ofstream(file) << name << "\n";
  if (!fs::exists(file, ec)) {
    spdlog::warn("{}: cannot write {} for udev", name, file.string());
  }
}

unsigned DeviceManager::load_persistent_maps() {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(config_.config_dir) / "maps.d";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return 0;
  }
  std::vector<fs::path> files;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".table" && e.is_regular_file()) {
      files.push_back(e.path());
    }
  }
  std::sort(files.begin(), files.end());
  unsigned created = 0;
  for (const fs::path& f : files) {
    const std::string name = f.stem().string();
    std::ifstream in(f);
    std::stringstream text;
    text << in.rdbuf();
    try {
      create(name, text.str(), CreateOptions{});
      ++created;
    } catch (const Error& e) {
      spdlog::error("{}: persistent map {} not created: {}", name, f.string(), e.what());
    }
  }
  return created;
}

void DeviceManager::shutdown() {
  shutting_down_ = true;
  std::lock_guard lock(mutex_);
  for (auto& [name, d] : devices_) {
    std::lock_guard dlock(d->op_mutex);
    try {
      MappedDevice& md = *d->mapped;
      if (md.info().state != DeviceState::kActive) {
        md.resume();  // let the kernel's final flush through
      }
      // As multipathd's queue_without_daemon no: I/O queued for lack of a path
      // would otherwise hold the kernel's final flush (and this daemon) forever.
      if (const TablePtr t = md.live_table();
          t && t->target_count() == 1 && dynamic_cast<const mpath::MultipathTarget*>(&t->target(0)) != nullptr) {
        md.message(0, {"fail_if_no_path"});
      }
      stop_and_destroy(name, *d);
      spdlog::info("{}: removed at shutdown", name);
    } catch (const std::exception& e) {
      spdlog::error("{}: removing at shutdown failed: {}", name, e.what());
    }
  }
  devices_.clear();
}

}  // namespace ubdm::daemon
