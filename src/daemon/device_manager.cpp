// SPDX-License-Identifier: MIT
#include "daemon/device_manager.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "control/protocol.hpp"
#include "control/verbs.hpp"
#include "daemon/openers.hpp"
#include "metrics/device_stats.hpp"
#include "targets/multipath/multipath.hpp"
#include "ubdm/error.hpp"
#include "ubdm/table.hpp"

namespace ubdm::daemon {

const char* const kDaemonVersion = UBDM_VERSION;

namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr unsigned kMaxQueues = 64;
constexpr unsigned kMaxDepth = 4096;
constexpr unsigned kMaxPollUsec = 1000000;
// How long a forced remove waits for in-flight I/O before swapping in the
// error table, and a plain suspend without --timeout (practically forever).
constexpr auto kForceSuspendTimeout = 10s;
constexpr auto kNoTimeout = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::hours(24 * 365));

// An optional argument, already checked by control::check_request.
template <typename T>
std::optional<T> optional_arg(const json& req, const char* key) {
  const auto it = req.find(key);
  return it == req.end() ? std::nullopt : std::optional<T>(it->get<T>());
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

// Runs every job on a thread of its own and waits up to `wait` for them
// all, so that one device whose disks hang delays neither the others nor
// the caller beyond `wait`; jobs still running then go on in the
// background (what they use must outlive them). Returns how many jobs
// returned true within the wait, and how many were still running.
struct Outcome {
  unsigned succeeded = 0;
  std::size_t running = 0;
};
Outcome run_each_on_a_thread(std::vector<std::function<bool()>> jobs, std::chrono::milliseconds wait) {
  struct Progress {
    std::mutex mu;
    std::condition_variable cv;
    std::size_t pending = 0;
    unsigned succeeded = 0;
  };
  auto progress = std::make_shared<Progress>();
  progress->pending = jobs.size();
  for (auto& job : jobs) {
    std::thread([progress, job = std::move(job)] {
      bool ok = false;
      try {
        ok = job();
      } catch (const std::exception& e) {
        spdlog::error("{}", e.what());
      }
      std::lock_guard lock(progress->mu);
      --progress->pending;
      progress->succeeded += ok ? 1 : 0;
      progress->cv.notify_all();
    }).detach();
  }
  std::unique_lock lock(progress->mu);
  progress->cv.wait_for(lock, wait, [&] { return progress->pending == 0; });
  return Outcome{progress->succeeded, progress->pending};
}

}  // namespace

void crash_point(const char* point) {
  static const char* const wanted = std::getenv("UBDMD_CRASH_AT");
  if (wanted != nullptr && std::strcmp(wanted, point) == 0) {
    spdlog::critical("UBDMD_CRASH_AT={}: killing this process (a test's crash)", point);
    spdlog::default_logger()->flush();
    ::kill(::getpid(), SIGKILL);
  }
}

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

// dm's rule for a UUID: at most 128 characters (DM_UUID_LEN less its NUL);
// ours also keeps them printable and free of spaces, so that they print and
// parse back in a report line. "" is no UUID.
void validate_uuid(const std::string& uuid) {
  if (uuid.size() > 128) {
    fail_invalid("UUID is longer than 128 characters");
  }
  for (char c : uuid) {
    if (c <= ' ' || c == 0x7f) {
      fail_invalid("UUID '{}' contains a space or control character: use printable characters", uuid);
    }
  }
}

DeviceManager::DeviceManager(DaemonConfig config, DeviceOpener& opener, ublk::Control* control)
    : config_(std::move(config)), opener_(opener), control_(control), state_(config_.state_dir) {
  if (config_.default_queues == 0) {
    config_.default_queues = default_queue_count();
  }
  // The verb table and the handlers must agree; a verb without a handler is
  // a programming error that no request should be the first to find.
  for (const control::VerbSpec& v : control::verbs()) {
    const Handlers& h = handlers_for(v.name);
    const bool daemon_level = v.scope == control::Scope::kDaemon || v.locking == control::Locking::kLifecycle;
    if ((daemon_level ? h.daemon == nullptr : h.device == nullptr)) {
      throw std::logic_error(fmt::format("verb '{}' has no handler", v.name));
    }
  }
  if (state_.enabled()) {
    writer_ = std::thread([this] { state_writer_main(); });
  }
}

DeviceManager::~DeviceManager() { shutdown(); }

void DeviceManager::begin_shutdown() {
  {
    std::lock_guard lock(writer_mutex_);
    shutting_down_ = true;
  }
  writer_cv_.notify_all();
  if (writer_.joinable() && writer_.get_id() != std::this_thread::get_id()) {
    writer_.join();
  }
}

const DeviceManager::Handlers& DeviceManager::handlers_for(std::string_view verb) {
  static const std::map<std::string_view, Handlers> kHandlers = {
      {"version", {&DeviceManager::do_version, nullptr}},
      {"targets", {&DeviceManager::do_targets, nullptr}},
      {"ls", {&DeviceManager::do_ls, nullptr}},
      {"create", {&DeviceManager::do_create, nullptr}},
      {"remove", {&DeviceManager::do_remove, nullptr}},
      {"remove_all", {&DeviceManager::do_remove_all, nullptr}},
      {"load", {nullptr, &DeviceManager::do_load}},
      {"clear", {nullptr, &DeviceManager::do_clear}},
      {"suspend", {nullptr, &DeviceManager::do_suspend}},
      {"resume", {nullptr, &DeviceManager::do_resume}},
      {"message", {nullptr, &DeviceManager::do_message}},
      {"info", {nullptr, &DeviceManager::do_info}},
      {"table", {nullptr, &DeviceManager::do_table}},
      {"status", {nullptr, &DeviceManager::do_status}},
      {"deps", {nullptr, &DeviceManager::do_deps}},
      {"paths", {nullptr, &DeviceManager::do_paths}},
      {"wait", {nullptr, &DeviceManager::do_wait}},
      {"mknodes", {nullptr, &DeviceManager::do_mknodes}},
      {"stats", {nullptr, &DeviceManager::do_stats}},
      {"rename", {nullptr, &DeviceManager::do_rename}},
  };
  static const Handlers kNone;
  const auto it = kHandlers.find(verb);
  return it == kHandlers.end() ? kNone : it->second;
}

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
  switch (it->second->phase.load()) {
    case Phase::kCreating:
      fail(EBUSY, "device is still being created (its kernel device is starting)");
    case Phase::kRemoving:
      fail(EBUSY, "device is being removed");
    case Phase::kLive:
      break;
  }
  return it->second;
}

std::vector<DeviceManager::ManagedPtr> DeviceManager::all_live() const {
  std::vector<ManagedPtr> out;
  std::lock_guard lock(mutex_);
  for (const auto& [name, d] : devices_) {
    // A device being renamed is under both names for a moment: list it
    // under the one it has.
    if (d->phase.load() == Phase::kLive && d->name() == name) {
      out.push_back(d);
    }
  }
  return out;
}

void DeviceManager::check_live(const Managed& d) {
  if (d.phase.load() != Phase::kLive) {
    fail(ENXIO, "no such device");
  }
}

bool DeviceManager::ChangeLock::lock_unless(const std::function<bool()>& give_up) {
  std::unique_lock lock(mu_);
  while (held_) {
    cv_.wait_for(lock, 100ms);
    if (held_ && give_up && give_up()) {
      return false;
    }
  }
  held_ = true;
  return true;
}

void DeviceManager::ChangeLock::lock() { lock_unless({}); }

void DeviceManager::ChangeLock::unlock() {
  {
    std::lock_guard lock(mu_);
    held_ = false;
  }
  cv_.notify_one();
}

std::unique_lock<DeviceManager::ChangeLock> DeviceManager::lock_for_change(Managed& d,
                                                                         const Cancelled& cancelled) const {
  // Another change of this device (a long suspend) may hold the lock; wait
  // for it, but not for a client that has gone, nor past shutdown.
  bool gone = false;
  const bool taken = d.op_mutex.lock_unless([&] {
    gone = cancelled && cancelled();
    return gone || shutting_down_.load();
  });
  if (!taken) {
    if (gone) {
      fail(ECANCELED, "cancelled while waiting for another operation on the device");
    }
    fail(ESHUTDOWN, "ubdmd is shutting down");
  }
  return std::unique_lock(d.op_mutex, std::adopt_lock);
}

// ---------------------------------------------------------------------------
// Request dispatch

json DeviceManager::handle(const json& req, const Cancelled& cancelled) {
  const control::VerbSpec& spec = control::check_request(req);
  if (shutting_down_.load() && spec.name != "version") {
    fail(ESHUTDOWN, "ubdmd is shutting down");
  }
  const Handlers& h = handlers_for(spec.name);
  const Call call{req, cancelled};
  if (spec.scope == control::Scope::kDaemon || spec.locking == control::Locking::kLifecycle) {
    return (this->*h.daemon)(call);
  }

  const auto name = optional_arg<std::string>(req, "name");
  if (!name) {
    // Scope::kDeviceOrAll without a name: every live device. Each answers
    // under its own shared lock; one removed meanwhile is left out.
    json out = json::array();
    for (const ManagedPtr& d : all_live()) {
      std::shared_lock lock(d->life_mutex);
      if (d->phase.load() != Phase::kLive) {
        continue;
      }
      json one = (this->*h.device)(call, *d);
      if (!one.is_null()) {
        out.push_back(std::move(one));
      }
    }
    return {{"devices", out}};
  }

  const ManagedPtr d = find(*name);
  switch (spec.locking) {
    case control::Locking::kRead: {
      std::shared_lock lock(d->life_mutex);
      check_live(*d);
      json one = (this->*h.device)(call, *d);
      if (spec.scope == control::Scope::kDeviceOrAll) {
        return {{"devices", one.is_null() ? json::array() : json::array({std::move(one)})}};
      }
      return one;
    }
    case control::Locking::kMessage: {
      std::shared_lock lock(d->life_mutex);
      std::lock_guard mlock(d->message_mutex);
      check_live(*d);
      return (this->*h.device)(call, *d);
    }
    case control::Locking::kChange: {
      const auto lock = lock_for_change(*d, cancelled);
      // Changes run under op_mutex, which destruction also takes first: the
      // device cannot be freed under us, and a remove that got in first
      // has marked it.
      check_live(*d);
      return (this->*h.device)(call, *d);
    }
    case control::Locking::kNone:
    case control::Locking::kLifecycle:
      break;
  }
  fail_invalid("unhandled operation '{}'", spec.name);
}

// ---------------------------------------------------------------------------
// Verbs

json DeviceManager::do_version(const Call&) {
  return {{"daemon_version", kDaemonVersion},
          {"protocol", control::kProtocolVersion},
          {"ublk_features", control_ != nullptr ? fmt::format("{:#x}", control_->features()) : ""}};
}

json DeviceManager::do_targets(const Call&) {
  json types = json::array();
  for (const TargetType& t : target_types()) {
    types.push_back({{"name", t.name}, {"version", {t.version[0], t.version[1], t.version[2]}}});
  }
  return {{"targets", types}};
}

json DeviceManager::do_ls(const Call&) {
  json devs = json::array();
  for (const ManagedPtr& d : all_live()) {
    // The kernel object is read under the life lock: a remove frees it
    // only with that lock held exclusively.
    std::shared_lock lock(d->life_mutex);
    if (d->phase.load() != Phase::kLive) {
      continue;
    }
    const dev_t devt = d->kernel ? d->kernel->block_devt() : 0;
    devs.push_back({{"name", d->name()},
                    {"major", major(devt)},
                    {"minor", minor(devt)},
                    {"blockdev", d->kernel ? d->kernel->block_path() : ""}});
  }
  return {{"devices", devs}};
}

json DeviceManager::do_create(const Call& c) {
  const CreateOptions opts{optional_arg<unsigned>(c.req, "queues"), optional_arg<unsigned>(c.req, "depth"),
                           optional_arg<unsigned>(c.req, "poll_usec"),
                           optional_arg<bool>(c.req, "copy").value_or(false),
                           optional_arg<std::string>(c.req, "uuid").value_or(""),
                           optional_arg<bool>(c.req, "read_only").value_or(false)};
  return {{"device", create(c.req.at("name").get<std::string>(), c.req.at("table").get<std::string>(), opts)}};
}

json DeviceManager::do_remove(const Call& c) {
  remove(c.req.at("name").get<std::string>(), optional_arg<bool>(c.req, "force").value_or(false), c.cancelled);
  return json::object();
}

json DeviceManager::do_remove_all(const Call& c) {
  const bool force = optional_arg<bool>(c.req, "force").value_or(false);
  json removed = json::array();
  std::vector<std::string> left;
  for (const ManagedPtr& d : all_live()) {
    try {
      remove(d->name(), force, c.cancelled);
      removed.push_back(d->name());
    } catch (const Error& e) {
      if (e.code() == ENXIO) {
        continue;  // removed meanwhile by someone else
      }
      left.push_back(fmt::format("{} ({})", d->name(), e.what()));
    }
  }
  if (!left.empty()) {
    fail(EBUSY, "{} device(s) not removed: {}", left.size(), fmt::join(left, "; "));
  }
  return {{"removed", removed}};
}

json DeviceManager::do_load(const Call& c, Managed& d) {
  const std::string text = c.req.at("table").get<std::string>();
  const std::vector<TableLine> lines = parse_table_text(text);
  const sector_t size = table_size(lines);
  if (d.kernel && size != d.mapped->size_sectors()) {
    // The disk takes its new capacity at resume (do_resume), where the
    // kernel can change it: UPDATE_SIZE came with 6.16.
    if (!d.kernel->can_resize()) {
      fail_invalid("the new table maps {} sectors but the device has {}: this kernel cannot resize a live ublk "
                   "device (UBLK_F_UPDATE_SIZE needs Linux 6.16 or newer)",
                   size, d.mapped->size_sectors());
    }
    const sector_t block = sector_t{1} << (d.kernel->params().basic.logical_bs_shift - kSectorShift);
    if (size % block != 0) {
      fail_invalid("the new table maps {} sectors, not a whole number of the device's {}-byte logical blocks",
                   size, block << kSectorShift);
    }
  }
  MappedDevice::TableCheck check;
  if (d.kernel) {
    // The kernel keeps what START_DEV advertised: a table whose devices
    // cannot honour it would fail I/O the kernel already accepted.
    check = [&d](const Table& t) {
      ublk::check_table_fits(d.kernel->params(), t.io_limits(), d.kernel->block_path());
      if (const Target* touching = t.needing_cpu_data(); touching != nullptr && d.kernel->zero_copy()) {
        fail_invalid("target {} reads or changes the data itself, which a zero-copy device cannot offer: "
                     "create the device with --copy to use it",
                     touching->type_name());
      }
    };
  }
  d.mapped->load(lines, check);
  {
    std::lock_guard lock(d.state_mutex);
    d.inactive_text = text;
  }
  note_change(d);
  return {{"device", info_of(d)}};
}

json DeviceManager::do_clear(const Call&, Managed& d) {
  d.mapped->clear_inactive();
  {
    std::lock_guard lock(d.state_mutex);
    d.inactive_text.reset();
  }
  note_change(d);
  return {{"device", info_of(d)}};
}

json DeviceManager::do_suspend(const Call& c, Managed& d) {
  const bool noflush = optional_arg<bool>(c.req, "noflush").value_or(false);
  const std::uint64_t timeout_ms = optional_arg<std::uint64_t>(c.req, "timeout_ms").value_or(0);
  const auto timeout = timeout_ms == 0 ? kNoTimeout : std::chrono::milliseconds(timeout_ms);
  // Gives up when the client goes away (a killed `ubdmsetup suspend` must
  // not leave the device suspending for a year), when a forced remove or
  // shutdown wants the device, or at the timeout.
  const MappedDevice::CancelCheck cancelled = [&] {
    return d.cancel_wait.load() || shutting_down_.load() || (c.cancelled && c.cancelled());
  };
  d.mapped->suspend(noflush ? static_cast<unsigned>(kSuspendNoflush) : 0U, timeout, cancelled);
  {
    std::lock_guard lock(d.state_mutex);
    d.noflush = noflush;
  }
  note_change(d);
  spdlog::info("{}: suspended{}", d.name(), noflush ? " (noflush)" : "");
  return {{"device", info_of(d)}};
}

json DeviceManager::do_resume(const Call&, Managed& d) {
  const TablePtr before = d.mapped->live_table();
  // The record follows the tables whether or not the resume got through
  // (a failing preresume leaves the swapped-in table live, suspended).
  const auto record_tables = [&] {
    {
      std::lock_guard lock(d.state_mutex);
      if (d.mapped->live_table() != before && d.inactive_text) {
        d.live_text = *d.inactive_text;
      }
      if (!d.mapped->inactive_table()) {
        d.inactive_text.reset();
      }
    }
    note_change(d);
  };
  // A table of another size (allowed by do_load only where the kernel can
  // resize): the capacity changes while I/O is held, between the last
  // preresume and the swap, so no I/O beyond either table's end is mapped.
  const auto resize = [&d](sector_t sectors) {
    const sector_t old_size = d.kernel->params().basic.dev_sectors;
    d.kernel->resize(sectors);
    spdlog::info("{}: resized from {} to {} sectors", d.name(), old_size, sectors);
  };
  try {
    d.mapped->resume(std::chrono::seconds(30), d.kernel ? MappedDevice::SizeChange(resize) : nullptr);
  } catch (...) {
    record_tables();
    throw;
  }
  record_tables();
  spdlog::info("{}: resumed", d.name());
  return {{"device", info_of(d)}};
}

json DeviceManager::do_message(const Call& c, Managed& d) {
  // As dmsetup and dm-ioctl: the words are joined with spaces and split
  // again, so "fail_path 8:0" as one word is the same message as two.
  const auto words = c.req.at("args").get<std::vector<std::string>>();
  const auto args = split_args(fmt::format("{}", fmt::join(words, " ")));
  json reply = {{"reply", d.mapped->message(c.req.at("sector").get<std::uint64_t>(), args)}};
  note_change(d);
  return reply;
}

json DeviceManager::do_info(const Call&, Managed& d) { return info_of(d); }

json DeviceManager::do_table(const Call& c, Managed& d) {
  return lines_of(d, StatusType::kTable, optional_arg<bool>(c.req, "inactive").value_or(false));
}

json DeviceManager::do_status(const Call& c, Managed& d) {
  return lines_of(d, StatusType::kInfo, optional_arg<bool>(c.req, "inactive").value_or(false));
}

// dmsetup mknodes remakes /dev/mapper nodes someone removed; ours are the
// /dev/ubdm links, which ubdmd keeps itself (and udev, where it runs).
json DeviceManager::do_mknodes(const Call&, Managed& d) {
  return {{"name", d.name()}, {"link", make_link(d.name(), d)}};
}

json DeviceManager::do_deps(const Call&, Managed& d) {
  json deps = json::array();
  if (const TablePtr t = d.mapped->live_table()) {
    // In the kernel's order, which dmsetup prints (deps, ls --tree): dm adds
    // each device to the head of the table's list where it is first named.
    const std::vector<const BlockDevice*> devs = t->devices();
    for (auto it = devs.rbegin(); it != devs.rend(); ++it) {
      const BlockDevice* dev = *it;
      deps.push_back({{"major", major(dev->rdev())}, {"minor", minor(dev->rdev())}, {"path", dev->path()}});
    }
  }
  return {{"deps", deps}};
}

json DeviceManager::do_paths(const Call& c, Managed& d) {
  json one = paths_of(d);
  if (one.is_null() && c.req.contains("name")) {
    fail_invalid("device has no multipath target");
  }
  return one;
}

json DeviceManager::do_stats(const Call&, Managed& d) {
  // Reads atomics and the multipath report only: never waits on the
  // device's I/O or on a change in progress, so a scrape cannot hang.
  const DeviceInfo i = d.mapped->info();
  json one = {{"name", i.name},
              {"uuid", d.uuid()},
              {"blockdev", d.kernel ? d.kernel->block_path() : ""},
              {"state", state_name(i.state)},
              {"suspended", i.state != DeviceState::kActive},
              {"event_nr", i.event_nr},
              {"size_bytes", std::uint64_t{i.size_sectors} << kSectorShift},
              {"io", metrics::io_totals_json(d.mapped->io_stats())},
              {"paths", json::array()}};
  if (json mp = paths_of(d); !mp.is_null()) {
    one["paths"] = mp.at("paths");
  }
  return one;
}

// dmsetup rename: a new name, or a UUID for a device that has none (dm
// never changes a UUID once set). Either is all or nothing: the registry,
// the recovery record, /dev/ubdm and udev's name file move together, or
// nothing changes.
json DeviceManager::do_rename(const Call& c, Managed& d) {
  const auto new_name = optional_arg<std::string>(c.req, "new_name");
  const auto new_uuid = optional_arg<std::string>(c.req, "new_uuid");
  if (new_name.has_value() == new_uuid.has_value()) {
    fail_invalid("rename takes either a new name or a new UUID");
  }
  if (new_uuid) {
    set_uuid(d, *new_uuid);
  } else {
    rename_device(d, *new_name);
  }
  return {{"device", info_of(d)}};
}

void DeviceManager::set_uuid(Managed& d, const std::string& uuid) {
  validate_uuid(uuid);
  if (uuid.empty()) {
    fail_invalid("the new UUID is empty");
  }
  const std::string name = d.name();
  {
    // Under the registry lock, as create checks UUIDs under it.
    std::lock_guard lock(mutex_);
    if (const std::string current = d.uuid(); !current.empty()) {
      fail_invalid("cannot change the UUID of {} to {}: it is {} already (a device's UUID is set once)", name,
                   uuid, current);
    }
    for (const auto& [other, od] : devices_) {
      if (od->uuid() == uuid) {
        fail(EBUSY, "cannot give {} the UUID {}: device {} has it", name, uuid, other);
      }
    }
    d.set_ident(name, uuid);
  }
  try {
    save_state(d);
  } catch (...) {
    std::lock_guard lock(mutex_);
    d.set_ident(name, "");
    throw;
  }
  spdlog::info("{}: UUID set to {}", name, uuid);
}

void DeviceManager::rename_device(Managed& d, const std::string& new_name) {
  validate_name(new_name);
  const std::string old_name = d.name();
  if (new_name == old_name) {
    fail(EBUSY, "{} is the device's name already", new_name);
  }
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path file = fs::path(config_.config_dir) / "maps.d" / (old_name + ".table");
  if (fs::exists(file, ec)) {
    // Renamed here alone, the next ubdmd would adopt the device under its
    // new name and then make the map again, over the same disks.
    fail_invalid("{} is made from {} at every start of ubdmd: rename that file to {}.table first", old_name,
                 file.string(), new_name);
  }
  ManagedPtr self;
  {
    std::lock_guard lock(mutex_);
    if (devices_.count(new_name) != 0) {
      fail(EBUSY, "cannot rename {} to {}: a device of that name exists already", old_name, new_name);
    }
    const auto it = devices_.find(old_name);
    if (it == devices_.end() || it->second.get() != &d) {
      fail(ENXIO, "no such device");
    }
    self = it->second;
    devices_.emplace(new_name, self);  // reserved: ls and info show one of the two names (all_live)
  }
  const auto unreserve = [&] {
    std::lock_guard lock(mutex_);
    devices_.erase(new_name);
  };

  // The record under the new name first, then the old one erased: a crash
  // between the two leaves both, and the next ubdmd keeps the one with
  // more renames (recovery::plan_adoption).
  std::exception_ptr failed;
  {
    std::lock_guard lock(d.state_mutex);
    const std::string uuid = d.uuid();
    d.set_ident(new_name, uuid);
    ++d.renames;
    if (state_.enabled() && !d.state_dropped) {
      try {
        const recovery::DeviceRecord r = record_of(d);
        state_.save(r);
        d.saved = recovery::to_json(r).dump();
      } catch (...) {
        d.set_ident(old_name, uuid);
        --d.renames;
        failed = std::current_exception();
      }
      if (!failed) {
        crash_point("rename-between-records");
        try {
          state_.erase(old_name);
        } catch (const std::exception& e) {
          spdlog::warn("{}: {} (the next ubdmd drops it: the record of {} is newer)", new_name, e.what(),
                       new_name);
        }
      }
    }
  }
  if (failed) {
    unreserve();  // the old record is still in place
    std::rethrow_exception(failed);
  }
  d.mapped->set_name(new_name);
  {
    std::lock_guard lock(mutex_);
    devices_.erase(old_name);
  }
  if (!config_.link_dir.empty()) {
    fs::remove(fs::path(config_.link_dir) / old_name, ec);
  }
  if (d.kernel) {
    publish_name(new_name, d.kernel->id());
    make_link(new_name, d);
    announce_change(d);
  }
  spdlog::info("{}: renamed to {}", old_name, new_name);
}

json DeviceManager::do_wait(const Call& c, Managed& d) {
  // As dmsetup: without an event number, wait for one other than 0, which
  // returns at once on any device that has had an event.
  const std::uint64_t seen = optional_arg<std::uint64_t>(c.req, "event_nr").value_or(0);
  // The dispatcher holds life_mutex shared, which a remove needs exclusively
  // to free the device: sleep in slices and leave as soon as the device is
  // being removed, the daemon stops or the client goes away.
  for (;;) {
    if (d.phase.load() != Phase::kLive || shutting_down_) {
      fail(ENXIO, "device was removed while waiting");
    }
    if (c.cancelled && c.cancelled()) {
      fail(ECANCELED, "the client went away");
    }
    if (d.mapped->wait_event(seen, 200ms) != seen) {
      return {{"device", info_of(d)}};
    }
  }
}

json DeviceManager::create(const std::string& name, const std::string& table, const CreateOptions& opts) {
  validate_name(name);
  validate_uuid(opts.uuid);
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
  // Reserve the name; the device is built without the registry lock, since
  // START_DEV may wait on the disks for as long as they take to answer.
  auto d = std::make_shared<Managed>(name, opts.uuid);
  d->read_only = opts.read_only;
  {
    std::lock_guard lock(mutex_);
    if (const auto it = devices_.find(name); it != devices_.end()) {
      if (it->second->phase.load() == Phase::kRemoving) {
        fail(EEXIST, "device is still being removed");
      }
      fail(EEXIST, "device already exists");
    }
    if (!opts.uuid.empty()) {
      for (const auto& [other, od] : devices_) {
        if (od->uuid() == opts.uuid) {
          fail(EEXIST, "device {} has UUID {} already", other, opts.uuid);
        }
      }
    }
    devices_.emplace(name, d);
  }
  try {
    d->poll_usec = poll_usec;
    d->live_text = table;
    d->mapped = std::make_unique<MappedDevice>(name, cfg, opener_);
    d->mapped->load_text(table);
    d->mapped->resume();
    if (control_ != nullptr) {
      ublk::DeviceOptions kopts;
      kopts.max_io_bytes = config_.max_io_bytes;
      kopts.poll_usec = poll_usec;
      kopts.read_only = opts.read_only;
      // A table whose targets touch the data (zero, flakey's corruption)
      // needs it copied into buffers of ours.
      const Target* touching = d->mapped->live_table()->needing_cpu_data();
      kopts.zero_copy = !opts.copy && touching == nullptr;
      if (!opts.copy && touching != nullptr && (control_->features() & ublk::kFeatAutoBufReg) != 0) {
        spdlog::info("{}: target {} reads or changes the data itself: the device copies", name,
                     touching->type_name());
      }
      kopts.force_registration_fallback = config_.zero_copy_fallback_test;
      kopts.before_start = [this, name](std::uint32_t id) { publish_name(name, id); };
      d->kernel = std::make_unique<ublk::Device>(*control_, *d->mapped, kopts);
      // Recorded as soon as the kernel device exists: a crash from here on
      // leaves a record that tells the next ubdmd what the device is.
      d->kernel->start([this, &d](std::uint32_t id) {
        {
          std::lock_guard lock(d->state_mutex);
          d->ublk_id = id;
        }
        save_state(*d);
        crash_point("create-after-add");
      });
      crash_point("create-after-start");
      make_link(name, *d);
    }
    if (shutting_down_) {
      fail(ESHUTDOWN, "ubdmd is shutting down");
    }
  } catch (...) {
    // Undo in reverse: the kernel device first (it serves from mapped).
    remove_link(name);
    d->kernel.reset();
    d->mapped.reset();
    drop_state(*d);
    forget(d);
    throw;
  }
  d->phase = Phase::kLive;
  {
    std::shared_lock lock(d->life_mutex);
    note_change(*d);
  }
  spdlog::info("{}: created ({} sectors, {} queue(s) x {}){}", name, d->mapped->size_sectors(), cfg.nr_queues,
               cfg.queue_depth, d->kernel ? " as " + d->kernel->block_path() : "");
  std::shared_lock lock(d->life_mutex);
  return info_of(*d);
}

void DeviceManager::forget(const ManagedPtr& d) {
  std::lock_guard lock(mutex_);
  const auto it = devices_.find(d->name());
  if (it != devices_.end() && it->second == d) {
    devices_.erase(it);
  }
}

void DeviceManager::force_error_table(Managed& d) {
  MappedDevice& md = *d.mapped;
  // As dmsetup remove --force: replace the table with `error` so that
  // queued I/O fails instead of waiting; a noflush suspend does not wait
  // for I/O that a target keeps queued. A device without a live table (one
  // adopted whose table could not be rebuilt) holds its I/O: the error
  // table, of the disk's size, lets that fail too.
  sector_t size = md.size_sectors();
  if (size == 0 && d.kernel) {
    size = d.kernel->params().basic.dev_sectors;
  }
  if (size == 0) {
    return;  // no table and no disk: no I/O to fail
  }
  md.load_text(fmt::format("0 {} error", size));
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

int DeviceManager::claim_unused(Managed& d) const {
  if (!d.kernel) {
    return -1;
  }
  // An exclusive open fails while the disk is mounted, used as swap, held by
  // a stacked device (dm, md, LVM, loop's claim) or exclusively open
  // elsewhere, in any mount namespace. Held until the kernel device is gone,
  // so nothing can claim it between this check and STOP_DEV.
  const std::string path = d.kernel->block_path();
  const int fd = ::open(path.c_str(), O_RDONLY | O_EXCL | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == EBUSY) {
      const std::string users = block_device_users(d.kernel->block_devt());
      fail(EBUSY, "device is in use ({}: {}): unmount it or stop what holds it first, or use --force", path,
           users.empty() ? "mounted in another namespace, used as swap or open exclusively" : users);
    }
    fail(err, "cannot check whether {} is in use: {}", path, errno_string(err));
  }
  // Plain openers (an application with the disk open) do not claim it;
  // /proc shows those in our namespace.
  const unsigned open = count_openers(d.kernel->block_devt());
  if (open > 1) {  // our own descriptor is one of them
    ::close(fd);
    fail(EBUSY, "device is in use (open count {}): close it first, or use --force", open - 1);
  }
  return fd;
}

void DeviceManager::stop_and_destroy(Managed& d, int claim_fd) {
  d.phase = Phase::kRemoving;
  // A crash from here on leaves a record that says to finish the removal.
  note_change(d);
  remove_link(d.name());
  if (claim_fd >= 0) {
    // Write back what the page cache still holds for the disk while the
    // device is whole, rather than from inside STOP_DEV.
    if (::fsync(claim_fd) != 0) {
      spdlog::warn("{}: flushing before removal: {}", d.name(), errno_string(errno));
    }
  }
  const auto release_claim = [&claim_fd] {
    crash_point("remove-after-stop");
    if (claim_fd >= 0) {
      ::close(claim_fd);
      claim_fd = -1;
    }
  };
  if (d.kernel) {
    // The claim is released once the disk is gone and before DEL_DEV, which
    // waits for every opener of the disk, ours included.
    d.kernel->stop(release_claim);
  }
  release_claim();
  // Readers hold life_mutex shared; wait for them before freeing.
  std::unique_lock lock(d.life_mutex);
  d.kernel.reset();
  drop_state(d);
  d.mapped.reset();
}

void DeviceManager::remove(const std::string& name, bool force, const Cancelled& cancelled) {
  validate_name(name);
  const ManagedPtr d = find(name);
  if (force) {
    // A suspend waiting on this device gives up, so that we get the lock.
    d->cancel_wait = true;
  }
  std::unique_lock<ChangeLock> lock;
  try {
    lock = lock_for_change(*d, cancelled);
  } catch (...) {
    d->cancel_wait = false;
    throw;
  }
  d->cancel_wait = false;
  check_live(*d);
  int claim_fd = -1;
  if (!force) {
    if (d->mapped->info().state != DeviceState::kActive) {
      // Stopping the disk flushes it, which a suspended device would never finish.
      fail(EBUSY, "device is suspended: resume it first, or use --force");
    }
    claim_fd = claim_unused(*d);
  } else {
    force_error_table(*d);
  }
  stop_and_destroy(*d, claim_fd);
  forget(d);
  spdlog::info("{}: removed{}", name, force ? " (forced)" : "");
}

json DeviceManager::info_of(Managed& d) const {
  const DeviceInfo i = d.mapped->info();
  const dev_t devt = d.kernel ? d.kernel->block_devt() : 0;
  return {{"name", i.name},
          {"uuid", d.uuid()},
          {"read_only", d.read_only},
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
          {"poll_usec", d.poll_usec},
          {"data_path", !d.kernel ? "" : d.kernel->zero_copy() ? "zero-copy" : "copy"}};
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
                     {"reinstate_count", p.reinstate_count},
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

std::string DeviceManager::make_link(const std::string& name, const Managed& d) const {
  if (config_.link_dir.empty() || !d.kernel) {
    return "";
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
  return link.string();
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

void DeviceManager::announce_change(const Managed& d) const {
  if (config_.names_dir.empty() || !d.kernel) {
    return;
  }
  // udev reads the name file again on a change event and moves its
  // /dev/ubdm link (99-ubdm.rules), as dm's rename sends one for its own.
  const std::string disk = std::filesystem::path(d.kernel->block_path()).filename().string();
  std::ofstream uevent("/sys/class/block/" + disk + "/uevent");
  uevent << "change\n";
  uevent.flush();
  if (!uevent) {
    spdlog::warn("{}: cannot send a change event for {}: udev keeps the old link until the next event",
                 d.name(), disk);
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

unsigned DeviceManager::load_persistent_maps(std::chrono::milliseconds wait) {
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

  std::vector<StartupDevice> maps;
  for (const fs::path& f : files) {
    const std::string name = f.stem().string();
    {
      std::lock_guard lock(mutex_);
      if (devices_.count(name) != 0) {
        spdlog::info("{}: already there (adopted), so {} is not created again", name, f.string());
        continue;
      }
    }
    std::ifstream in(f);
    std::stringstream text;
    text << in.rdbuf();
    maps.push_back({name, "", text.str(), "persistent map " + f.string(), {}});
  }
  return create_startup_devices(std::move(maps), wait);
}

unsigned DeviceManager::create_startup_devices(std::vector<StartupDevice> devices, std::chrono::milliseconds wait) {
  std::vector<std::function<bool()>> jobs;
  jobs.reserve(devices.size());
  for (StartupDevice& dev : devices) {
    jobs.push_back([this, dev = std::move(dev)] {
      try {
        CreateOptions opts;
        opts.uuid = dev.uuid;
        create(dev.name, dev.table, opts);
      } catch (const std::exception& e) {
        spdlog::error("{}: {} not created: {}", dev.name, dev.what, e.what());
        return false;
      }
      if (dev.created) {
        dev.created();
      }
      return true;
    });
  }
  const Outcome o = run_each_on_a_thread(std::move(jobs), wait);
  if (o.running > 0) {
    spdlog::warn("{} device(s) still being created after {} ms (their disks do not answer); "
                 "they will appear when done",
                 o.running, wait.count());
  }
  return o.succeeded;
}

std::vector<DeviceManager::DeviceSummary> DeviceManager::device_summaries() const {
  std::vector<ManagedPtr> all;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [name, d] : devices_) {
      // A device being renamed is under both names for a moment: once.
      if (std::find(all.begin(), all.end(), d) == all.end()) {
        all.push_back(d);
      }
    }
  }
  std::vector<DeviceSummary> out;
  for (const ManagedPtr& d : all) {
    DeviceSummary s{d->name(), d->uuid(), {}};
    // The tables are read as a reader does (do_deps): under the life lock,
    // only while the device is live.
    std::shared_lock lock(d->life_mutex);
    if (d->phase.load() == Phase::kLive && d->mapped) {
      for (const TablePtr& t : {d->mapped->live_table(), d->mapped->inactive_table()}) {
        if (!t) {
          continue;
        }
        for (const BlockDevice* dev : t->devices()) {
          if (dev->is_block_device() && std::find(s.uses.begin(), s.uses.end(), dev->rdev()) == s.uses.end()) {
            s.uses.push_back(dev->rdev());
          }
        }
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

// ---------------------------------------------------------------------------
// Recovery: records, adoption, the stop that leaves devices to the kernel

recovery::DeviceRecord DeviceManager::record_of(Managed& d) const {
  recovery::DeviceRecord r;
  r.name = d.name();
  r.uuid = d.uuid();
  r.renames = d.renames;
  r.read_only = d.read_only;
  switch (d.phase.load()) {
    case Phase::kCreating: r.phase = recovery::DeviceRecord::Phase::kCreating; break;
    case Phase::kLive: r.phase = recovery::DeviceRecord::Phase::kLive; break;
    case Phase::kRemoving: r.phase = recovery::DeviceRecord::Phase::kRemoving; break;
  }
  r.ublk_id = d.ublk_id;
  r.queues = d.mapped->nr_queues();
  r.depth = d.mapped->config().queue_depth;
  r.poll_usec = d.poll_usec;
  r.max_io_bytes = config_.max_io_bytes;
  r.live_table = d.live_text;
  r.inactive_table = d.inactive_text;
  const DeviceInfo i = d.mapped->info();
  // Without a live table (one that could not be rebuilt) the device is
  // suspended only for want of it: not an operator's suspend to restore.
  r.suspended = i.state == DeviceState::kSuspended && i.live_table;
  r.noflush = r.suspended && d.noflush;
  r.messages = d.mapped->restore_messages();
  return r;
}

void DeviceManager::save_state(Managed& d) {
  if (!state_.enabled()) {
    return;
  }
  std::lock_guard lock(d.state_mutex);
  if (d.state_dropped || !d.mapped) {
    return;
  }
  const recovery::DeviceRecord r = record_of(d);
  std::string text = recovery::to_json(r).dump();
  if (text == d.saved) {
    return;
  }
  state_.save(r);
  d.saved = std::move(text);
}

void DeviceManager::note_change(Managed& d) {
  try {
    save_state(d);
  } catch (const std::exception& e) {
    spdlog::error("{}: cannot record its state: {} (a restart of ubdmd would not restore the last change)",
                  d.name(), e.what());
  }
}

void DeviceManager::drop_state(Managed& d) {
  std::lock_guard lock(d.state_mutex);
  d.state_dropped = true;
  try {
    state_.erase(d.name());
  } catch (const std::exception& e) {
    spdlog::error("{}: {}", d.name(), e.what());
  }
}

void DeviceManager::state_writer_main() {
  // Verbs record their own changes at once; this catches what changes
  // without one (the checker failing or reinstating a path, no_path_retry
  // running out), within a second.
  std::unique_lock lock(writer_mutex_);
  for (;;) {
    writer_cv_.wait_for(lock, 1s, [this] { return shutting_down_.load(); });
    if (shutting_down_) {
      return;
    }
    lock.unlock();
    for (const ManagedPtr& d : all_live()) {
      std::shared_lock life(d->life_mutex);
      if (d->phase.load() == Phase::kLive && !shutting_down_) {
        revive_absent_paths(*d);
        note_change(*d);
      }
    }
    lock.lock();
  }
}

void DeviceManager::revive_absent_paths(Managed& d) {
  MappedDevice& md = *d.mapped;
  const std::vector<std::string> absent = md.absent_devices();
  if (absent.empty()) {
    return;
  }
  // Which are back: opened here (quietly) and held across the reload, which
  // then shares them. An offline disk keeps failing its open until it is
  // online again.
  std::vector<BlockDevicePtr> back;
  for (const std::string& p : absent) {
    try {
      back.push_back(opener_.open(p));
    } catch (const Error&) {
    }
  }
  if (back.empty() || !d.op_mutex.lock_unless([] { return true; })) {
    return;
  }
  const std::unique_lock op(d.op_mutex, std::adopt_lock);
  const std::lock_guard messages(d.message_mutex);
  if (d.phase.load() != Phase::kLive || md.info().state != DeviceState::kActive || md.inactive_table()) {
    return;
  }
  std::string text;
  {
    std::lock_guard lock(d.state_mutex);
    text = d.live_text;
  }
  try {
    // Paths still away become stand-ins again.
    md.set_restoring(true);
    md.load_text(text);
    md.set_restoring(false);
  } catch (const Error& e) {
    md.set_restoring(false);
    spdlog::warn("{}: reloading its table for paths that are back failed: {}", d.name(), e.what());
    return;
  }
  // The failed paths that are back are the ones not to fail again.
  std::vector<MappedDevice::Message> replay;
  for (MappedDevice::Message& m : md.restore_messages()) {
    const bool returning = m.args.size() == 2 && m.args[0] == "fail_path" &&
                           std::find(absent.begin(), absent.end(), m.args[1]) != absent.end();
    if (!returning) {
      replay.push_back(std::move(m));
    }
  }
  try {
    md.suspend(kSuspendNoflush, 30s);
    md.resume();
  } catch (const Error& e) {
    spdlog::error("{}: reloading its table for paths that are back failed: {}", d.name(), e.what());
    md.clear_inactive();
    return;
  }
  for (const MappedDevice::Message& m : replay) {
    try {
      md.message(m.sector, m.args);
    } catch (const Error& e) {
      spdlog::warn("{}: restoring '{}' failed: {}", d.name(), fmt::join(m.args, " "), e.what());
    }
  }
  spdlog::info("{}: table reloaded: {} path(s) that could not be opened at adoption are back ({} still away)",
               d.name(), absent.size() - md.absent_devices().size(), md.absent_devices().size());
}

unsigned DeviceManager::adopt_devices(std::chrono::milliseconds wait) {
  std::vector<ublk::DevInfo> kernel;
  if (control_ != nullptr) {
    for (const std::uint32_t id : ublk::Control::device_ids()) {
      try {
        kernel.push_back(control_->get_dev_info(id));
      } catch (const Error& e) {
        spdlog::warn("ublk device {}: {}", id, e.what());
      }
    }
  }
  return adopt_devices(kernel, wait);
}

unsigned DeviceManager::adopt_devices(const std::vector<ublk::DevInfo>& kernel, std::chrono::milliseconds wait) {
  const recovery::StateStore::Loaded loaded = state_.load_all();
  for (const std::string& p : loaded.problems) {
    spdlog::error("state {}", p);
  }
  // A zombie is gone as a server: its files are closed (its parent, a
  // shell or a test, may not have reaped it yet).
  const auto alive = [](pid_t pid) {
    if (::kill(pid, 0) != 0 && errno != EPERM) {
      return false;
    }
    std::ifstream stat(fmt::format("/proc/{}/stat", pid));
    std::string line;
    std::getline(stat, line);
    const auto paren = line.rfind(')');
    return paren == std::string::npos || paren + 2 >= line.size() ||
           (line[paren + 2] != 'Z' && line[paren + 2] != 'X');
  };
  const std::vector<recovery::Step> steps =
      recovery::plan_adoption(loaded.records, kernel, loaded.unreadable_ids, alive, ::getpid());
  for (const recovery::Step& s : steps) {
    if (s.action == recovery::Step::Action::kRefuse) {
      fail(EBUSY, "{}: {}", s.record->name, s.why);
    }
  }
  std::vector<std::function<bool()>> jobs;
  for (const recovery::Step& s : steps) {
    const std::string what = s.record ? s.record->name : fmt::format("ublk device {}", s.device->dev_id);
    switch (s.action) {
      case recovery::Step::Action::kAdopt:
        jobs.push_back([this, s] { return adopt_one(*s.record, s.device); });
        break;
      case recovery::Step::Action::kFinishRemove:
      case recovery::Step::Action::kDeleteDevice:
        spdlog::warn("{}: {}: deleting it", what, s.why);
        jobs.push_back([this, s] {
          delete_kernel_device(s);
          return false;
        });
        break;
      case recovery::Step::Action::kDropRecord:
        spdlog::warn("{}: {}: its state is dropped", what, s.why);
        // Its /dev/ubdm link, if any, names a device that is gone or has
        // another name now (a rename cut short): the adoptions make theirs.
        remove_link(s.record->name);
        try {
          state_.erase(s.record->name);
        } catch (const std::exception& e) {
          spdlog::error("{}: {}", what, e.what());
        }
        break;
      case recovery::Step::Action::kRefuse:
        break;
    }
  }
  const Outcome o = run_each_on_a_thread(std::move(jobs), wait);
  if (o.running > 0) {
    spdlog::warn("{} device(s) still being taken over after {} ms; they will be served when done", o.running,
                 wait.count());
  }
  return o.succeeded;
}

bool DeviceManager::adopt_one(const recovery::DeviceRecord& r, const std::optional<ublk::DevInfo>& info) {
  auto d = std::make_shared<Managed>(r.name, r.uuid);
  d->read_only = r.read_only;
  d->renames = r.renames;
  {
    std::lock_guard lock(mutex_);
    if (!devices_.emplace(r.name, d).second) {
      spdlog::error("{}: a device of that name exists already; ublk device {} is not adopted", r.name, r.ublk_id);
      return false;
    }
  }
  std::string restored;
  try {
    d->poll_usec = r.poll_usec;
    {
      std::lock_guard lock(d->state_mutex);
      d->ublk_id = r.ublk_id;
      d->live_text = r.live_table;
      d->inactive_text = r.inactive_table;
      d->noflush = r.noflush;
    }
    // The kernel's queue layout is the truth; the record's must agree.
    DeviceConfig cfg;
    cfg.nr_queues = info ? info->nr_hw_queues : r.queues;
    cfg.queue_depth = info ? info->queue_depth : r.depth;
    d->mapped = std::make_unique<MappedDevice>(r.name, cfg, opener_);
    if (control_ != nullptr && info) {
      ublk::DeviceOptions kopts;
      kopts.max_io_bytes = info->max_io_buf_bytes;
      kopts.poll_usec = r.poll_usec;
      kopts.force_registration_fallback = config_.zero_copy_fallback_test;  // the mode is the kernel device's
      d->kernel = std::make_unique<ublk::Device>(*control_, *d->mapped, kopts);
      // The tables are built once the kernel has let the old server go: its
      // exclusive claims on the table's disks are released by then. The
      // kernel holds on (EBUSY) while the old server's I/O has not ended,
      // e.g. at a disk that does not answer: keep trying, it is the only
      // way the device gets served again.
      for (bool said = false;;) {
        try {
          d->kernel->adopt(*info, 30s, [&] { restored = restore(*d, r); });
          break;
        } catch (const Error& e) {
          if (e.code() != EBUSY || shutting_down_) {
            throw;
          }
          if (!said) {
            spdlog::warn("{}: ublk device {} is still held by the old ubdmd (its I/O has not ended); "
                         "still trying",
                         r.name, r.ublk_id);
            said = true;
          }
        }
      }
      publish_name(r.name, info->dev_id);
      make_link(r.name, *d);
    } else {
      restored = restore(*d, r);
    }
  } catch (const std::exception& e) {
    spdlog::error("{}: cannot adopt ublk device {}: {}; its I/O waits: start ubdmd again to retry", r.name,
                  r.ublk_id, e.what());
    d->kernel.reset();
    d->mapped.reset();
    forget(d);
    return false;
  }
  d->phase = Phase::kLive;
  {
    std::shared_lock lock(d->life_mutex);
    note_change(*d);
  }
  spdlog::info("{}: adopted ublk device {} ({}): {}", r.name, r.ublk_id,
               r.phase == recovery::DeviceRecord::Phase::kCreating ? "its create is finished" : "restored",
               restored);
  return true;
}

std::string DeviceManager::restore(Managed& d, const recovery::DeviceRecord& r) {
  MappedDevice& md = *d.mapped;
  std::vector<std::string> notes;
  bool live = false;
  md.set_restoring(true);
  struct Restoring {
    MappedDevice& md;
    ~Restoring() { md.set_restoring(false); }
  } restoring{md};
  try {
    md.load_text(r.live_table);
    md.resume();
    live = true;
    notes.push_back(fmt::format("live table ({} target(s))", md.info().target_count));
  } catch (const Error& e) {
    // Held, not failed: the operator loads a table that can be built (a
    // path under its new name) and resumes, or removes the device.
    spdlog::error("{}: cannot rebuild its live table ({}): its I/O is held; load a table and resume it, or "
                  "remove it",
                  d.name(), e.what());
    notes.emplace_back("no live table: I/O held");
  }
  if (live) {
    unsigned replayed = 0;
    for (const MappedDevice::Message& m : r.messages) {
      try {
        md.message(m.sector, m.args);
        ++replayed;
      } catch (const Error& e) {
        spdlog::warn("{}: restoring '{}' failed: {}", d.name(), fmt::join(m.args, " "), e.what());
      }
    }
    if (!r.messages.empty()) {
      notes.push_back(fmt::format("{} of {} message(s) replayed", replayed, r.messages.size()));
    }
    if (r.suspended) {
      // No I/O reaches the device before the queues start: this is at once.
      md.suspend(r.noflush ? static_cast<unsigned>(kSuspendNoflush) : 0U, 10s);
      notes.emplace_back(r.noflush ? "suspended (noflush)" : "suspended");
    }
  }
  if (r.inactive_table) {
    try {
      md.load_text(*r.inactive_table);
      notes.emplace_back("inactive table");
    } catch (const Error& e) {
      spdlog::error("{}: cannot rebuild its inactive table ({}): it is dropped", d.name(), e.what());
      std::lock_guard lock(d.state_mutex);
      d.inactive_text.reset();
    }
  }
  notes.push_back(fmt::format("{} queue(s) x {}, poll {} us", md.nr_queues(), md.config().queue_depth, r.poll_usec));
  return fmt::format("{}", fmt::join(notes, ", "));
}

void DeviceManager::delete_kernel_device(const recovery::Step& s) {
  if (s.record) {
    remove_link(s.record->name);
  }
  if (control_ != nullptr && s.device) {
    const std::uint32_t id = s.device->dev_id;
    try {
      // STOP_DEV fails what the kernel holds for the device and removes its
      // disk; a device never started has none.
      if (s.device->state != ublk::kStateDead) {
        control_->stop_dev(id);
      }
      control_->del_dev(id);
      spdlog::info("ublk device {} deleted", id);
    } catch (const Error& e) {
      spdlog::error("ublk device {}: {}", id, e.what());
    }
  }
  if (s.record) {
    try {
      state_.erase(s.record->name);
    } catch (const std::exception& e) {
      spdlog::error("{}: {}", s.record->name, e.what());
    }
  }
}

void DeviceManager::leave_for_restart(std::chrono::milliseconds deadline) {
  begin_shutdown();
  const auto until = std::chrono::steady_clock::now() + deadline;
  std::vector<std::function<bool()>> jobs;
  for (const ManagedPtr& d : all_live()) {
    jobs.push_back([this, d, until] {
      if (!d->kernel || !d->kernel->survives_exit()) {
        spdlog::warn("{}: its ublk device cannot outlive ubdmd (no USER_RECOVERY): removing it", d->name());
        return shutdown_one(d, until);
      }
      d->cancel_wait = true;  // a waiting suspend gives up
      const std::lock_guard lock(d->op_mutex);
      MappedDevice& md = *d->mapped;
      if (md.info().state != DeviceState::kActive) {
        spdlog::info("{}: suspended; left to the kernel for the next ubdmd", d->name());
        return true;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      if (md.drain_for_exit(std::max(left, std::chrono::milliseconds(1)))) {
        spdlog::info("{}: drained; left to the kernel for the next ubdmd", d->name());
      } else {
        spdlog::error("{}: I/O does not drain within the stop timeout; left to the kernel as it is for the next "
                      "ubdmd",
                      d->name());
      }
      return true;
    });
  }
  run_each_on_a_thread(std::move(jobs), deadline + 1s);
}

bool DeviceManager::shutdown_one(const ManagedPtr& d, std::chrono::steady_clock::time_point until) {
  try {
    d->cancel_wait = true;  // a waiting suspend gives up
    const auto lock = std::unique_lock(d->op_mutex);
    if (d->phase.load() != Phase::kLive) {
      return true;
    }
    MappedDevice& md = *d->mapped;
    // A staged table was loaded for someone to review and resume; shutdown
    // must never make it live.
    md.clear_inactive();
    if (md.info().state != DeviceState::kActive) {
      md.resume();  // on the live table: let the kernel's final flush through
    }
    // As multipathd's queue_without_daemon no: I/O queued for lack of a path
    // would otherwise hold the kernel's final flush (and this daemon) forever.
    if (const TablePtr t = md.live_table();
        t && t->target_count() == 1 && dynamic_cast<const mpath::MultipathTarget*>(&t->target(0)) != nullptr) {
      md.message(0, {"fail_if_no_path"});
    }
    // STOP_DEV waits inside the kernel for every request in flight, and a
    // process exit waits for a control command in progress: on a device
    // whose disk holds I/O forever the two would never end. So first see
    // that the device drains before the deadline; if it does not, leave it
    // to the kernel, which fails its I/O once we are gone.
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    try {
      md.suspend(0, std::max(left, std::chrono::milliseconds(1)));
    } catch (const Error& e) {
      spdlog::error("{}: I/O does not drain ({}); leaving the device to the kernel", d->name(), e.what());
      return false;
    }
    md.resume();
    stop_and_destroy(*d);
    spdlog::info("{}: removed at shutdown", d->name());
  } catch (const std::exception& e) {
    spdlog::error("{}: removing at shutdown failed: {}", d->name(), e.what());
  }
  forget(d);
  return true;
}

std::vector<std::string> DeviceManager::shutdown(std::chrono::milliseconds deadline) {
  begin_shutdown();
  const auto until = std::chrono::steady_clock::now() + deadline;
  // Devices are removed in parallel, each on its own thread: one whose
  // kernel device is stuck does not hold up the others.
  struct Tracker {
    std::mutex mu;
    std::condition_variable cv;
    std::size_t running = 0;
  };
  auto tracker = std::make_shared<Tracker>();
  std::set<Managed*> started;
  for (;;) {
    std::vector<ManagedPtr> todo;
    bool creating = false;
    {
      std::lock_guard lock(mutex_);
      if (devices_.empty()) {
        break;
      }
      for (const auto& [name, d] : devices_) {
        if (d->phase.load() == Phase::kCreating) {
          creating = true;  // it sees shutting_down_ and undoes itself
        } else if (started.insert(d.get()).second) {
          todo.push_back(d);
        }
      }
    }
    for (const ManagedPtr& d : todo) {
      {
        std::lock_guard lock(tracker->mu);
        ++tracker->running;
      }
      std::thread([this, d, tracker, until] {
        shutdown_one(d, until);
        std::lock_guard lock(tracker->mu);
        --tracker->running;
        tracker->cv.notify_all();
      }).detach();
    }
    std::unique_lock lock(tracker->mu);
    const auto step = std::chrono::steady_clock::now() + (creating ? 100ms : 1s);
    tracker->cv.wait_until(lock, std::min(step, until), [&] { return tracker->running == 0 && !creating; });
    // Every device had its turn and none is still being worked on: what is
    // left was left to the kernel.
    if ((tracker->running == 0 && !creating && todo.empty()) || std::chrono::steady_clock::now() >= until) {
      break;
    }
  }
  std::vector<std::string> stuck;
  std::lock_guard lock(mutex_);
  for (const auto& [name, d] : devices_) {
    stuck.push_back(name);
  }
  if (!stuck.empty()) {
    spdlog::error("{} device(s) not removed within {} ms: {}", stuck.size(), deadline.count(),
                  fmt::join(stuck, ", "));
  }
  return stuck;
}

}  // namespace ubdm::daemon
