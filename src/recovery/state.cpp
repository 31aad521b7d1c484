// SPDX-License-Identifier: MIT
#include "recovery/state.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/atomic_file.hpp"
#include "ubdm/error.hpp"

namespace ubdm::recovery {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* kSuffix = ".json";
constexpr const char* kTempPrefix = ".tmp.";

DeviceRecord::Phase phase_from(const std::string& s) {
  if (s == "creating") {
    return DeviceRecord::Phase::kCreating;
  }
  if (s == "live") {
    return DeviceRecord::Phase::kLive;
  }
  if (s == "removing") {
    return DeviceRecord::Phase::kRemoving;
  }
  fail_invalid("unknown phase '{}'", s);
}

// Field access with messages that name the field.
template <typename T>
T field(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end()) {
    fail_invalid("field '{}' is missing", key);
  }
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    fail_invalid("field '{}' has the wrong type ({})", key, it->type_name());
  }
}

}  // namespace

const char* phase_name(DeviceRecord::Phase p) {
  switch (p) {
    case DeviceRecord::Phase::kCreating: return "creating";
    case DeviceRecord::Phase::kLive: return "live";
    case DeviceRecord::Phase::kRemoving: return "removing";
  }
  return "?";
}

json to_json(const DeviceRecord& r) {
  json messages = json::array();
  for (const MappedDevice::Message& m : r.messages) {
    messages.push_back({{"sector", m.sector}, {"args", m.args}});
  }
  return {{"format", kStateFormat},
          {"name", r.name},
          {"uuid", r.uuid},
          {"renames", r.renames},
          {"read_only", r.read_only},
          {"phase", phase_name(r.phase)},
          {"ublk_id", r.ublk_id},
          {"queues", r.queues},
          {"depth", r.depth},
          {"poll_usec", r.poll_usec},
          {"max_io_bytes", r.max_io_bytes},
          {"live_table", r.live_table},
          {"inactive_table", r.inactive_table ? json(*r.inactive_table) : json(nullptr)},
          {"suspended", r.suspended},
          {"noflush", r.noflush},
          {"messages", messages}};
}

DeviceRecord record_from_json(const json& j) {
  if (!j.is_object()) {
    fail_invalid("not a JSON object");
  }
  const int format = field<int>(j, "format");
  if (format < 1 || format > kStateFormat) {
    fail_invalid("state format {} is not one this ubdmd reads (1 to {}): it was written by a {} ubdmd", format,
                 kStateFormat, format > kStateFormat ? "newer" : "broken");
  }
  DeviceRecord r;
  r.name = field<std::string>(j, "name");
  if (j.contains("uuid")) {
    r.uuid = field<std::string>(j, "uuid");
  }
  if (j.contains("renames")) {
    r.renames = field<std::uint64_t>(j, "renames");
  }
  if (j.contains("read_only")) {
    r.read_only = field<bool>(j, "read_only");
  }
  r.phase = phase_from(field<std::string>(j, "phase"));
  r.ublk_id = field<std::int64_t>(j, "ublk_id");
  r.queues = field<unsigned>(j, "queues");
  r.depth = field<unsigned>(j, "depth");
  r.poll_usec = field<unsigned>(j, "poll_usec");
  r.max_io_bytes = field<std::uint32_t>(j, "max_io_bytes");
  r.live_table = field<std::string>(j, "live_table");
  if (const auto it = j.find("inactive_table"); it != j.end() && !it->is_null()) {
    r.inactive_table = field<std::string>(j, "inactive_table");
  }
  r.suspended = field<bool>(j, "suspended");
  r.noflush = field<bool>(j, "noflush");
  for (const json& m : field<json>(j, "messages")) {
    r.messages.push_back(MappedDevice::Message{field<sector_t>(m, "sector"),
                                               field<std::vector<std::string>>(m, "args")});
  }
  return r;
}

StateStore::StateStore(std::string dir) : dir_(std::move(dir)) {}

std::string StateStore::path_of(const std::string& name) const { return (fs::path(dir_) / (name + kSuffix)).string(); }

void StateStore::save(const DeviceRecord& r) const {
  if (!enabled()) {
    return;
  }
  // A temporary file load_all() recognises and deletes: a writer that died
  // mid-save never renamed it, so the record it was to replace stands.
  replace_file_atomically(path_of(r.name), (fs::path(dir_) / (kTempPrefix + r.name + kSuffix)).string(),
                          to_json(r).dump(2) + "\n");
}

void StateStore::erase(const std::string& name) const {
  if (!enabled()) {
    return;
  }
  if (::unlink(path_of(name).c_str()) != 0 && errno != ENOENT) {
    const int err = errno;
    fail(err, "cannot remove {}: {}", path_of(name), errno_string(err));
  }
}

StateStore::Loaded StateStore::load_all() const {
  Loaded out;
  if (!enabled()) {
    return out;
  }
  std::error_code ec;
  std::vector<fs::path> files;
  for (const fs::directory_entry& e : fs::directory_iterator(dir_, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind(kTempPrefix, 0) == 0) {
      fs::remove(e.path(), ec);
      continue;
    }
    if (e.path().extension() == kSuffix && e.is_regular_file(ec)) {
      files.push_back(e.path());
    }
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& f : files) {
    json j;
    try {
      std::ifstream in(f);
      std::stringstream text;
      text << in.rdbuf();
      try {
        j = json::parse(text.str());
      } catch (const json::exception& e) {
        fail_invalid("not valid JSON ({})", e.what());
      }
      DeviceRecord r = record_from_json(j);
      if (r.name + kSuffix != f.filename().string()) {
        fail_invalid("it names device '{}'", r.name);
      }
      out.records.push_back(std::move(r));
    } catch (const Error& e) {
      if (j.is_object() && j.contains("ublk_id") && j["ublk_id"].is_number_unsigned()) {
        out.unreadable_ids.push_back(j["ublk_id"].get<std::uint32_t>());
      }
      const bool newer = j.is_object() && j.contains("format") && j["format"].is_number_integer() &&
                         j["format"].get<int>() > kStateFormat;
      if (newer) {
        out.problems.push_back(fmt::format("{}: {}; left in place", f.string(), e.what()));
        continue;
      }
      const fs::path bad = f.string() + ".bad";
      fs::rename(f, bad, ec);
      out.problems.push_back(fmt::format("{}: {}; moved to {}", f.string(), e.what(), bad.string()));
    }
  }
  return out;
}

}  // namespace ubdm::recovery
