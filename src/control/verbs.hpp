// SPDX-License-Identifier: MIT
// The control protocol's verbs: one table that the daemon's dispatcher, the
// argument checks, ubdmsetup's help and docs/protocol.md all read.
//
// A request is {"v": 1, "op": VERB, ARG: value, ...}. check_request() refuses,
// with EINVAL and a message naming the argument, any request whose op is not
// in the table, that lacks a required argument, that carries an argument the
// verb does not take, or whose argument has the wrong JSON type or is out of
// range (floats, negative or oversized integers, non-strings, ...). Handlers
// may then read their arguments without further checks.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace ubdm::control {

enum class ArgType : std::uint8_t {
  kString,       // a JSON string
  kBool,         // true or false
  kUint,         // a non-negative JSON integer, at most Arg::max
  kStringArray,  // an array of strings
};

struct Arg {
  std::string_view key;
  ArgType type;
  bool required;
  std::uint64_t max;  // kUint only: the largest value accepted
  std::string_view help;
};

// Which device the verb is about.
enum class Scope : std::uint8_t {
  kDaemon,          // no device
  kDevice,          // "name" is required
  kDeviceOrAll,     // "name" is optional: without it, every device
};

// The locks the dispatcher takes before calling the verb's handler. No lock
// shared between devices is ever held across a kernel wait.
enum class Locking : std::uint8_t {
  kNone,       // daemon-wide data only (version, targets, ls)
  kLifecycle,  // create/remove: reserve or retire the name under the registry
               // lock, then work on that one device without it
  kRead,       // read the device under its life lock (shared): answers during
               // a long suspend, a stuck create elsewhere, or a slow load
  kMessage,    // as kRead, and serialised with other messages: a message must
               // reach a device whose suspend is waiting (fail_if_no_path)
  kChange,     // the device's operation lock: one change at a time
};

struct VerbSpec {
  std::string_view name;
  std::string_view summary;  // one line, for --help and the docs
  Scope scope;
  Locking locking;
  std::span<const Arg> args;  // besides "v", "op" and "name"
  std::string_view results;   // what the reply carries (docs)
};

// Every verb, in the order the docs and --help list them.
std::span<const VerbSpec> verbs();
// The verb called `name`, or nullptr.
const VerbSpec* find_verb(std::string_view name);

// Checks `request` against its verb's spec (see the file comment) and
// returns the spec. Throws ubdm::Error(EINVAL) with a message for the user.
const VerbSpec& check_request(const nlohmann::json& request);

// The Markdown reference of every verb, as docs/protocol.md carries it
// between its "verbs" markers (a unit test keeps the two equal).
std::string verb_reference_markdown();

}  // namespace ubdm::control
