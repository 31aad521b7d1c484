// SPDX-License-Identifier: MIT
#include "control/verbs.hpp"

#include <array>
#include <limits>

#include <fmt/format.h>

#include "ubdm/error.hpp"

namespace ubdm::control {
namespace {

constexpr std::uint64_t kAny = std::numeric_limits<std::uint64_t>::max();
// About 31 years: long enough to mean "no limit", small enough that adding it
// to a clock's now() cannot overflow.
constexpr std::uint64_t kMaxTimeoutMs = 1'000'000'000'000ULL;

constexpr std::array kCreateArgs{
    Arg{"table", ArgType::kString, true, 0, "the table text: one target per line"},
    Arg{"queues", ArgType::kUint, false, 64, "hardware queues (1-64; default: the daemon's)"},
    Arg{"depth", ArgType::kUint, false, 4096, "tags per queue (1-4096; default: the daemon's)"},
    Arg{"poll_usec", ArgType::kUint, false, 1'000'000, "adaptive-polling bound in us (0: off)"},
    Arg{"copy", ArgType::kBool, false, 0, "copy data through tag buffers even where the kernel offers zero copy"},
    Arg{"uuid", ArgType::kString, false, 0, "the device's UUID, as dm's: unique, at most 128 printable characters"},
    Arg{"read_only", ArgType::kBool, false, 0, "a read-only disk: the kernel refuses writes to it"},
};
constexpr std::array kLoadArgs{
    Arg{"table", ArgType::kString, true, 0, "the table text"},
};
constexpr std::array kSuspendArgs{
    Arg{"noflush", ArgType::kBool, false, 0, "park queued I/O instead of draining it"},
    Arg{"timeout_ms", ArgType::kUint, false, kMaxTimeoutMs,
        "give up (and undo the suspend) after this long; 0 or absent: no limit"},
};
constexpr std::array kRemoveArgs{
    Arg{"force", ArgType::kBool, false, 0, "replace the table with error first, failing parked I/O"},
};
constexpr std::array kLinesArgs{
    Arg{"inactive", ArgType::kBool, false, 0, "of the inactive table"},
};
constexpr std::array kMessageArgs{
    Arg{"sector", ArgType::kUint, true, kAny, "a sector of the target to message"},
    Arg{"args", ArgType::kStringArray, true, 0, "the message words"},
};
constexpr std::array kWaitArgs{
    Arg{"event_nr", ArgType::kUint, false, kAny, "the event number last seen (default 0)"},
};

constexpr std::array kRenameArgs{
    Arg{"new_name", ArgType::kString, false, 0, "the device's new name (give this or new_uuid)"},
    Arg{"new_uuid", ArgType::kString, false, 0, "a UUID for a device that has none (give this or new_name)"},
};

constexpr std::array kVerbs{
    VerbSpec{"version", "versions of the daemon, the protocol and the ublk driver", Scope::kDaemon,
             Locking::kNone, {}, "daemon_version, protocol, ublk_features (hex string, or \"\" without ublk)"},
    VerbSpec{"create", "create a device with a table and activate it", Scope::kDevice, Locking::kLifecycle,
             kCreateArgs, "device: DeviceInfo"},
    VerbSpec{"load", "load a table into the inactive slot (resume makes it live)", Scope::kDevice,
             Locking::kChange, kLoadArgs, "device: DeviceInfo"},
    VerbSpec{"clear", "drop the inactive table", Scope::kDevice, Locking::kChange, {}, "device: DeviceInfo"},
    VerbSpec{"suspend", "suspend I/O to a device (cancelled if the client goes away)", Scope::kDevice,
             Locking::kChange, kSuspendArgs, "device: DeviceInfo"},
    VerbSpec{"resume", "make the inactive table live (if any) and resume I/O", Scope::kDevice,
             Locking::kChange, {}, "device: DeviceInfo"},
    VerbSpec{"remove", "remove a device (refused while it is in use, unless forced)", Scope::kDevice,
             Locking::kLifecycle, kRemoveArgs, "{}"},
    VerbSpec{"remove_all", "remove every device (those in use stay, unless forced)", Scope::kDaemon,
             Locking::kLifecycle, kRemoveArgs, "removed: [string] (an error names the devices left)"},
    VerbSpec{"rename", "rename a device, or give a device without a UUID one", Scope::kDevice, Locking::kChange,
             kRenameArgs, "device: DeviceInfo"},
    VerbSpec{"info", "device information", Scope::kDeviceOrAll, Locking::kRead, {},
             "devices: [DeviceInfo]"},
    VerbSpec{"table", "the table lines", Scope::kDeviceOrAll, Locking::kRead, kLinesArgs,
             "devices: [{name, lines: [string]}]"},
    VerbSpec{"status", "the targets' status lines", Scope::kDeviceOrAll, Locking::kRead, kLinesArgs,
             "devices: [{name, lines: [string]}]"},
    VerbSpec{"ls", "list devices", Scope::kDaemon, Locking::kNone, {},
             "devices: [{name, major, minor, blockdev}]"},
    VerbSpec{"targets", "target types and versions", Scope::kDaemon, Locking::kNone, {},
             "targets: [{name, version: [a, b, c]}]"},
    VerbSpec{"deps", "the devices a device's live table uses", Scope::kDevice, Locking::kRead, {},
             "deps: [{major, minor, path}] (major and minor 0 for files)"},
    VerbSpec{"message", "send a message to the target at a sector", Scope::kDevice, Locking::kMessage,
             kMessageArgs, "reply: string (may be empty)"},
    VerbSpec{"wait", "wait until the device's event number differs from event_nr", Scope::kDevice,
             Locking::kRead, kWaitArgs, "device: DeviceInfo"},
    VerbSpec{"mknodes", "make /dev/ubdm/NAME again for a device, or for every device", Scope::kDeviceOrAll,
             Locking::kRead, {}, "devices: [{name, link}] (link: the path made, or \"\" where there is none to make)"},
    VerbSpec{"paths", "multipath paths: state, failures, checker, I/O counts", Scope::kDeviceOrAll,
             Locking::kRead, {}, "devices: [MultipathPaths] (a named device without multipath is EINVAL)"},
    VerbSpec{"stats", "I/O statistics: per operation, latency histograms, queued I/O, paths", Scope::kDeviceOrAll,
             Locking::kRead, {}, "devices: [DeviceStats]"},
};

std::string_view type_name(ArgType t) {
  switch (t) {
    case ArgType::kString:
      return "a string";
    case ArgType::kBool:
      return "true or false";
    case ArgType::kUint:
      return "a non-negative integer";
    case ArgType::kStringArray:
      return "an array of strings";
  }
  return "?";
}

// Whether `v` is of type `t` within `max`; the reason if not.
std::string mismatch(const nlohmann::json& v, const Arg& a) {
  switch (a.type) {
    case ArgType::kString:
      return v.is_string() ? "" : "must be a string";
    case ArgType::kBool:
      return v.is_boolean() ? "" : "must be true or false";
    case ArgType::kUint:
      // nlohmann keeps integers that fit in int64/uint64 as integers;
      // anything else (1.5, 1e30, -1) is a float or signed.
      if (v.is_number_unsigned() || (v.is_number_integer() && v.get<std::int64_t>() >= 0)) {
        const auto n = v.get<std::uint64_t>();
        return n <= a.max ? "" : fmt::format("must be at most {}, not {}", a.max, n);
      }
      return "must be a non-negative integer";
    case ArgType::kStringArray:
      if (!v.is_array()) {
        return "must be an array of strings";
      }
      for (const auto& e : v) {
        if (!e.is_string()) {
          return "must be an array of strings";
        }
      }
      return "";
  }
  return "has an unknown type";
}

std::string_view locking_name(Locking l) {
  switch (l) {
    case Locking::kNone:
      return "none";
    case Locking::kLifecycle:
      return "lifecycle";
    case Locking::kRead:
      return "read";
    case Locking::kMessage:
      return "message";
    case Locking::kChange:
      return "change";
  }
  return "?";
}

const Arg* find_arg(const VerbSpec& spec, std::string_view key) {
  for (const Arg& a : spec.args) {
    if (a.key == key) {
      return &a;
    }
  }
  return nullptr;
}

}  // namespace

std::span<const VerbSpec> verbs() { return kVerbs; }

const VerbSpec* find_verb(std::string_view name) {
  for (const VerbSpec& v : kVerbs) {
    if (v.name == name) {
      return &v;
    }
  }
  return nullptr;
}

const VerbSpec& check_request(const nlohmann::json& request) {
  if (!request.is_object()) {
    fail_invalid("malformed request: not a JSON object");
  }
  const auto op = request.find("op");
  if (op == request.end() || !op->is_string()) {
    fail_invalid("request has no \"op\"");
  }
  const std::string& verb = op->get_ref<const std::string&>();
  const VerbSpec* spec = find_verb(verb);
  if (spec == nullptr) {
    std::string shown = verb.substr(0, 64);
    fail_invalid("unknown operation '{}'", shown);
  }
  const auto name = request.find("name");
  if (spec->scope == Scope::kDaemon && name != request.end()) {
    fail_invalid("{}: takes no device name", verb);
  }
  if (spec->scope == Scope::kDevice && name == request.end()) {
    fail_invalid("{}: argument 'name' is required", verb);
  }
  if (name != request.end() && !name->is_string()) {
    fail_invalid("{}: argument 'name' must be a string", verb);
  }
  for (const auto& [key, value] : request.items()) {
    if (key == "v" || key == "op" || key == "name") {
      continue;
    }
    const Arg* arg = find_arg(*spec, key);
    if (arg == nullptr) {
      fail_invalid("{}: unknown argument '{}'", verb, key.substr(0, 64));
    }
    if (const std::string why = mismatch(value, *arg); !why.empty()) {
      fail_invalid("{}: argument '{}' {}", verb, key, why);
    }
  }
  for (const Arg& a : spec->args) {
    if (a.required && !request.contains(a.key)) {
      fail_invalid("{}: argument '{}' is required", verb, a.key);
    }
  }
  return *spec;
}

std::string verb_reference_markdown() {
  std::string out =
      "| verb | what it does | device | arguments | results | locking |\n|---|---|---|---|---|---|\n";
  for (const VerbSpec& v : kVerbs) {
    std::string args;
    for (const Arg& a : v.args) {
      if (!args.empty()) {
        args += "<br>";
      }
      std::string range;
      if (a.type == ArgType::kUint && a.max != kAny) {
        range = fmt::format(", at most {}", a.max);
      }
      args += fmt::format("`{}`{}: {}{}; {}", a.key, a.required ? "" : " (optional)", type_name(a.type), range,
                          a.help);
    }
    const char* scope = v.scope == Scope::kDaemon   ? "-"
                        : v.scope == Scope::kDevice ? "`name`"
                                                    : "`name` (optional: all)";
    out += fmt::format("| `{}` | {} | {} | {} | {} | {} |\n", v.name, v.summary, scope, args.empty() ? "-" : args,
                       v.results, locking_name(v.locking));
  }
  return out;
}

}  // namespace ubdm::control
