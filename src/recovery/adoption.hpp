// SPDX-License-Identifier: MIT
// What a starting ubdmd does with what the last one left: its records
// (recovery/state.hpp) against the ublk devices the kernel has. A pure
// function of both, so that every stale case is decided in one place and
// tested without a kernel; DeviceManager carries the plan out.
//
// The invariants it keeps:
//  * every ubdm device whose record is usable is adopted (same id, same
//    name), so its held I/O is served again;
//  * no device is left with I/O waiting and no one to serve it: a ubdm
//    device with no record, or one that lost its disk, is deleted; a
//    half-made one (a create that never started it) too;
//  * a rename cut short (a record under each name, one ublk id) ends under
//    the new name: the record with more renames wins;
//  * what is not ubdm's (no stamp, or a record this daemon cannot read) is
//    left alone, and a device another live server holds stops the start.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "recovery/state.hpp"
#include "ublk/abi.hpp"

namespace ubdm::recovery {

struct Step {
  enum class Action : std::uint8_t {
    kAdopt,         // take the device over with its record
    kFinishRemove,  // a removal was under way: stop and delete the device, drop the record
    kDeleteDevice,  // stop and delete the kernel device, drop any record
    kDropRecord,    // the record's device is gone: drop the record
    kRefuse,        // another live server holds this device: do not start
  };
  Action action = Action::kAdopt;
  std::optional<DeviceRecord> record;
  std::optional<ublk::DevInfo> device;
  std::string why;  // for the log line
};

const char* action_name(Step::Action a);

// `kernel`: GET_DEV_INFO of every ublk device. `alive(pid)`: whether that
// process exists. `unreadable_ids`: devices named by records that could not
// be read (left alone). Steps come in record order, then device order.
std::vector<Step> plan_adoption(const std::vector<DeviceRecord>& records, const std::vector<ublk::DevInfo>& kernel,
                                const std::vector<std::uint32_t>& unreadable_ids,
                                const std::function<bool(pid_t)>& alive, pid_t self);

}  // namespace ubdm::recovery
