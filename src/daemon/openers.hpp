// SPDX-License-Identifier: MIT
// Who holds a block device open: file descriptors in any process, mounts,
// and stacked holders (dm, md). The kernel keeps no open count for ublk
// disks that user space can read, so we count what we can see.
#pragma once

#include <sys/types.h>

namespace ubdm::daemon {

// Open file descriptors on `devt` across /proc, plus mounts of it, plus
// entries in its sysfs holders directory. 0 for devt 0.
unsigned count_openers(dev_t devt);

}  // namespace ubdm::daemon
