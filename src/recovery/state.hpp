// SPDX-License-Identifier: MIT
// What a restarted ubdmd needs to take a device back: one record per device,
// one file per record (STATE_DIR/NAME.json, on /run: it survives a restart of
// the daemon, not a reboot, as the kernel devices do).
//
// Records are written whole and atomically (a temporary file, fsync, rename,
// fsync of the directory), so a reader sees the old record or the new one,
// never a mix, whenever the writer dies. The format is versioned: a daemon
// reads every format up to its own and refuses newer ones by name.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ubdm/device.hpp"

namespace ubdm::recovery {

// The format this daemon writes. Readers accept 1..kStateFormat.
inline constexpr int kStateFormat = 1;

struct DeviceRecord {
  // Where the device's life was when the record was written: a crash
  // between `creating` and `live` leaves a half-made device, one during
  // `removing` a removal to finish.
  enum class Phase : std::uint8_t { kCreating, kLive, kRemoving };

  std::string name;
  std::string uuid;  // "" for none; records from before UUIDs have none
  // How many times the device was renamed. A rename writes the record under
  // the new name before it erases the old one, so a crash between the two
  // leaves both, for one ublk id: the one with more renames is the device's
  // (plan_adoption drops the other). Records from before renames have 0.
  std::uint64_t renames = 0;
  bool read_only = false;  // the kernel keeps it too (UBLK_ATTR_READ_ONLY)
  Phase phase = Phase::kCreating;
  std::int64_t ublk_id = -1;  // -1 until ADD_DEV gave the device its id
  // Options of `create` (the kernel keeps queues and depth too; these are
  // checked against it).
  unsigned queues = 1;
  unsigned depth = 128;
  unsigned poll_usec = 0;
  std::uint32_t max_io_bytes = 512 * 1024;
  // Table texts as the operator gave them (paths as written, not major:minor:
  // a path that comes back under a new number is found by its name).
  std::string live_table;
  std::optional<std::string> inactive_table;
  bool suspended = false;
  bool noflush = false;  // how it was suspended
  // The live targets' runtime state (MappedDevice::restore_messages).
  std::vector<MappedDevice::Message> messages;

  bool operator==(const DeviceRecord&) const = default;
};

const char* phase_name(DeviceRecord::Phase p);

nlohmann::json to_json(const DeviceRecord& r);
// Throws Error(EINVAL) naming what is wrong: not an object, a missing or
// mistyped field, a format newer than kStateFormat.
DeviceRecord record_from_json(const nlohmann::json& j);

class StateStore {
 public:
  // `dir` is created at the first save (its files are 0600). An empty dir disables the
  // store: saves and erases do nothing, load_all finds nothing.
  explicit StateStore(std::string dir);

  bool enabled() const { return !dir_.empty(); }
  const std::string& dir() const { return dir_; }
  std::string path_of(const std::string& name) const;

  // Atomically replace the record of r.name. Throws Error on failure (the
  // old record, if any, is then still in place).
  void save(const DeviceRecord& r) const;
  // Remove the record of `name`; not an error if there is none.
  void erase(const std::string& name) const;

  struct Loaded {
    std::vector<DeviceRecord> records;  // sorted by name
    // One line per file that could not be used. A file of a newer format
    // stays as it is; a broken one is renamed to NAME.json.bad, so that it
    // is looked at, not re-read.
    std::vector<std::string> problems;
    // The ublk ids those files name, where that much could be read: their
    // devices are left alone (a newer daemon's record is not ours to judge).
    std::vector<std::uint32_t> unreadable_ids;
  };
  // Every record in the directory. Leftover temporary files (a writer that
  // died mid-save) are deleted: the rename never happened, so the record
  // they were to replace is still the current one.
  Loaded load_all() const;

 private:
  std::string dir_;
};

}  // namespace ubdm::recovery
