// SPDX-License-Identifier: MIT
// The SCSI commands the alua prioritizer needs, sent with libsgutils2
// (sg3_utils) through SG_IO to a path's /dev node: standard INQUIRY, VPD
// page 0x83 and REPORT TARGET PORT GROUPS. As multipathd's do_inquiry()
// (alua_rtpg.c), INQUIRY data is read from sysfs (device/inquiry,
// device/vpd_pg83) when the kernel has it, and sent otherwise. A command
// that meets UNIT ATTENTION or NOT READY is tried up to 3 more times
// (alua_rtpg.c scsi_error()/SCSI_RETRY). Errors are values: `error` says
// why, with sg3_utils' words for the sense category.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "discovery/alua.hpp"

namespace ubdm::discovery {

struct ScsiResponse {
  std::vector<std::uint8_t> data;
  std::string error;  // "" on success
};

// A sysfs attribute's bytes ({} when unreadable).
std::vector<std::uint8_t> read_file_bytes(const std::string& path);

// `dev_node` is "/dev/sdX"; `device_dir` the sysfs scsi_device directory
// (SYSFS/block/sdX/device), "" to always send the command.
ScsiResponse scsi_standard_inquiry(const std::string& dev_node, const std::string& device_dir);
ScsiResponse scsi_vpd83(const std::string& dev_node, const std::string& device_dir);
ScsiResponse scsi_report_target_port_groups(const std::string& dev_node);

// alua.c getprio() for one path: the VPD page 0x83, then REPORT TARGET
// PORT GROUPS, then alua_info(). The priority is kPrioUndef with `error`
// set when any step fails.
AluaInfo read_alua_info(const std::string& dev_node, const std::string& device_dir, bool exclusive_pref_bit);

}  // namespace ubdm::discovery
