// SPDX-License-Identifier: MIT
#include "recovery/adoption.hpp"

#include <algorithm>
#include <set>

#include <fmt/format.h>

namespace ubdm::recovery {

const char* action_name(Step::Action a) {
  switch (a) {
    case Step::Action::kAdopt: return "adopt";
    case Step::Action::kFinishRemove: return "finish-remove";
    case Step::Action::kDeleteDevice: return "delete-device";
    case Step::Action::kDropRecord: return "drop-record";
    case Step::Action::kRefuse: return "refuse";
  }
  return "?";
}

std::vector<Step> plan_adoption(const std::vector<DeviceRecord>& records, const std::vector<ublk::DevInfo>& kernel,
                                const std::vector<std::uint32_t>& unreadable_ids,
                                const std::function<bool(pid_t)>& alive, pid_t self) {
  using A = Step::Action;
  std::vector<Step> steps;
  std::set<std::uint32_t> claimed;  // kernel ids a record accounts for
  const auto find_dev = [&](std::int64_t id) -> const ublk::DevInfo* {
    for (const ublk::DevInfo& d : kernel) {
      if (static_cast<std::int64_t>(d.dev_id) == id) {
        return &d;
      }
    }
    return nullptr;
  };
  // A device whose server is a live process other than us is in use:
  // another ubdmd serves it (or the old one is still exiting, in which case
  // the pid is gone by the time we ask again).
  const auto served_by_other = [&](const ublk::DevInfo& d) {
    return d.state == ublk::kStateLive && d.ublksrv_pid > 0 && d.ublksrv_pid != self && alive(d.ublksrv_pid);
  };

  // A rename that a crash cut short leaves the record under both names, the
  // new one with one rename more: it is the device's.
  const auto renamed_to = [&](const DeviceRecord& r) -> const DeviceRecord* {
    for (const DeviceRecord& o : records) {
      if (&o != &r && r.ublk_id >= 0 && o.ublk_id == r.ublk_id && o.renames > r.renames) {
        return &o;
      }
    }
    return nullptr;
  };

  for (const DeviceRecord& r : records) {
    Step s;
    s.record = r;
    const ublk::DevInfo* d = r.ublk_id >= 0 ? find_dev(r.ublk_id) : nullptr;
    if (const DeviceRecord* newer = renamed_to(r)) {
      s.action = A::kDropRecord;
      s.why = fmt::format("it was being renamed to {} (ublk device {})", newer->name, r.ublk_id);
    } else if (r.ublk_id < 0) {
      s.action = A::kDropRecord;
      s.why = "its create never reached the kernel";
    } else if (d == nullptr) {
      s.action = A::kDropRecord;
      s.why = fmt::format("ublk device {} no longer exists", r.ublk_id);
    } else if (!ublk::is_ubdm_device(*d)) {
      s.action = A::kDropRecord;
      s.why = fmt::format("ublk device {} now belongs to another ublk server", r.ublk_id);
    } else if (!claimed.insert(d->dev_id).second) {
      s.action = A::kDropRecord;
      s.why = fmt::format("ublk device {} is already another record's", r.ublk_id);
    } else {
      s.device = *d;
      if (served_by_other(*d)) {
        s.action = A::kRefuse;
        s.why = fmt::format("ublk device {} is served by process {}: is another ubdmd running?", d->dev_id,
                            d->ublksrv_pid);
      } else if (r.phase == DeviceRecord::Phase::kRemoving) {
        s.action = A::kFinishRemove;
        s.why = "it was being removed";
      } else if (d->state == ublk::kStateDead) {
        // Never started (a create that died before START_DEV), or its disk
        // is gone (a device without USER_RECOVERY whose server exited).
        s.action = A::kDeleteDevice;
        s.why = r.phase == DeviceRecord::Phase::kCreating
                    ? "half-made: its create ended before the disk was started"
                    : "its disk was removed while no ubdmd ran";
      } else if ((d->flags & ublk::kFeatUserRecovery) == 0) {
        s.action = A::kDeleteDevice;
        s.why = "it was added without USER_RECOVERY and cannot be taken over";
      } else {
        s.action = A::kAdopt;
        s.why = r.phase == DeviceRecord::Phase::kCreating ? "its create had started the disk: finishing it"
                                                          : "its server exited";
      }
    }
    steps.push_back(std::move(s));
  }

  for (const ublk::DevInfo& d : kernel) {
    if (!ublk::is_ubdm_device(d) || claimed.count(d.dev_id) != 0 ||
        std::find(unreadable_ids.begin(), unreadable_ids.end(), d.dev_id) != unreadable_ids.end()) {
      continue;
    }
    if (served_by_other(d)) {
      continue;  // another ubdmd's (its own state directory): not ours to touch
    }
    Step s;
    s.action = A::kDeleteDevice;
    s.device = d;
    s.why = fmt::format("ublk device {} was made by ubdm but has no state to adopt it", d.dev_id);
    steps.push_back(std::move(s));
  }
  return steps;
}

}  // namespace ubdm::recovery
