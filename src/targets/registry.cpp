// SPDX-License-Identifier: MIT
// The one list of target types (kublk's tgt_ops_list). Explicit on purpose:
// self-registering static objects are dropped silently when linked from a
// static library.
#include <array>
#include <deque>
#include <mutex>

#include "targets/multipath/multipath.hpp"
#include "targets/targets.hpp"
#include "ubdm/error.hpp"

namespace ubdm {
namespace {

const std::array kTargetTypes{
    TargetType{"linear", {1, 0, 0}, create_linear_target},
    TargetType{"striped", {1, 0, 0}, create_striped_target},
    TargetType{"error", {1, 0, 0}, create_error_target},
    TargetType{"zero", {1, 0, 0}, create_zero_target},
    TargetType{"delay", {1, 0, 0}, create_delay_target},
    TargetType{"flakey", {1, 0, 0}, create_flakey_target},
    TargetType{"multipath", {1, 0, 0}, mpath::create_multipath_target, /*singleton=*/true, /*immutable=*/true},
};

// Types added at run time (tests, embedders). A deque keeps pointers stable.
std::mutex g_extra_mutex;
std::deque<TargetType> g_extra_types;

}  // namespace

std::span<const TargetType> target_types() { return kTargetTypes; }

const TargetType* find_target_type(std::string_view name) {
  for (const TargetType& t : kTargetTypes) {
    if (t.name == name) {
      return &t;
    }
  }
  std::lock_guard lock(g_extra_mutex);
  for (const TargetType& t : g_extra_types) {
    if (t.name == name) {
      return &t;
    }
  }
  return nullptr;
}

void add_target_type(const TargetType& type) {
  if (find_target_type(type.name) != nullptr) {
    fail(EEXIST, "target type '{}' is already registered", type.name);
  }
  std::lock_guard lock(g_extra_mutex);
  g_extra_types.push_back(type);
}

}  // namespace ubdm
