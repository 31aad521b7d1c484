// SPDX-License-Identifier: MIT
// The open-file limit (RLIMIT_NOFILE) and what it allows the I/O layer.
//
// Every ring registers a sparse fixed-file table, one slot per open device
// (device ids are the slots). The kernel refuses a table larger than the
// soft RLIMIT_NOFILE, which is 1024 for a login shell and under systemd
// unless raised. So the table size, and with it the number of device ids,
// follows the soft limit.
#pragma once

#include <sys/resource.h>

#include <string>

namespace ubdm {

// Most fixed-file slots a ring has, whatever the limit allows.
inline constexpr unsigned kMaxFixedFiles = 4096;

struct NofileLimit {
  rlim_t soft = 0;
  rlim_t hard = 0;
};

// The limits in force now (zeros if getrlimit fails).
NofileLimit nofile_limit() noexcept;

// Raise the soft limit to the hard one, as a daemon that opens many devices
// should at start. Never throws; if the raise is refused, the old limit stays.
// Returns the limits in force afterwards. Call it before the first device is
// opened or ring created (see fixed_file_slots()).
NofileLimit raise_nofile_limit() noexcept;

// Fixed-file slots of every ring in this process and the bound on device ids:
// min(kMaxFixedFiles, soft limit). Read at the first call (the first ring or
// device) and kept for the life of the process, so that every ring's table
// holds every id, also after the limit changes: rings already set up cannot
// grow. Thread safe.
unsigned fixed_file_slots() noexcept;

// The last slot of every ring is not a device id: a frontend puts its own
// file there (ublk's /dev/ublkcN, see UringBackend::install_own_file).
// Device ids are below device_id_slots() = fixed_file_slots() - 1.
unsigned device_id_slots() noexcept;

// What to tell a user whose devices do not fit: the limit in force and how to
// raise it, e.g. "the open-file limit is 1024 (hard 4096); raise it with
// `ulimit -n` before starting ubdmd, or LimitNOFILE= in ubdmd.service".
std::string nofile_limit_advice();

}  // namespace ubdm
