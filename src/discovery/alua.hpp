// SPDX-License-Identifier: MIT
// multipathd's `alua` prioritizer, as pure functions of the bytes a SCSI
// target answers (libmultipath/prioritizers/alua.c, alua_rtpg.c,
// alua_spc3.h in multipath-tools; the layouts are SPC-4's):
//
//  * standard INQUIRY byte 5 bits 4-5: TPGS, the ALUA support the target
//    claims (0 none, 1 implicit, 2 explicit, 3 both; inquiry_data_get_tpgs);
//  * VPD page 0x83: the designators of type 4 (relative target port) and 5
//    (target port group) name the port the path goes through and its group
//    (get_target_port_group: the first type-5 designator);
//  * REPORT TARGET PORT GROUPS: per group its asymmetric access state (byte
//    0 bits 0-3), the preferred bit (byte 0 bit 7), its id and its ports
//    (get_asymmetric_access_state: the descriptor of the path's group);
//    both the length-only header and the extended header (byte 4 format
//    type 001b) are read;
//  * the priority (alua.c getprio): active/optimized 50,
//    active/non-optimized 10, lba-dependent 5, standby 1, anything else 0
//    (unavailable, offline, transitioning, reserved); plus 80 with the
//    preferred bit, unless the state is active/optimized and the prio
//    argument "exclusive_pref_bit" is absent. A path whose state cannot be
//    read has priority -1 (prio.h PRIO_UNDEF).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace ubdm::discovery {

constexpr int kPrioUndef = -1;  // prio.h PRIO_UNDEF

// alua_spc3.h AAS_*.
enum AluaState : std::uint8_t {
  kAasOptimized = 0x0,
  kAasNonOptimized = 0x1,
  kAasStandby = 0x2,
  kAasUnavailable = 0x3,
  kAasLbaDependent = 0x4,
  kAasOffline = 0xe,
  kAasTransitioning = 0xf,
};
const char* alua_state_name(std::uint8_t state);

// The TPGS bits of a standard INQUIRY response; nullopt if too short.
std::optional<unsigned> inquiry_tpgs(std::span<const std::uint8_t> inquiry);

// What VPD page 0x83 says of the port the path goes through.
struct Vpd83Ports {
  std::optional<std::uint16_t> relative_port;  // designator type 4
  std::optional<std::uint16_t> port_group;     // designator type 5 (the first)
  bool several_groups = false;                 // more than one type-5 designator (the first counts)
};
// Designators that run past the page's length or the buffer are not read.
Vpd83Ports parse_vpd83_ports(std::span<const std::uint8_t> page);

struct PortGroup {
  std::uint16_t id = 0;
  std::uint8_t state = 0;  // bits 0-3 of byte 0
  bool preferred = false;  // bit 7 of byte 0
  std::uint8_t status = 0;
  std::vector<std::uint16_t> relative_ports;
};
struct RtpgReport {
  bool extended = false;  // the extended header format
  unsigned implicit_transition_secs = 0;  // extended header only
  std::vector<PortGroup> groups;
  std::string error;  // "" when the response was read whole
};
RtpgReport parse_rtpg(std::span<const std::uint8_t> response);

// alua.c getprio(): the priority of a state and preferred bit.
int alua_priority(std::uint8_t state, bool preferred, bool exclusive_pref_bit);
// alua.c get_exclusive_pref_arg(): "exclusive_pref_bit" as a word of the prio arguments.
bool alua_exclusive_pref_arg(const std::string& prio_args);

// A path's ALUA reading.
struct AluaInfo {
  int priority = kPrioUndef;
  std::optional<std::uint16_t> port_group;
  std::optional<std::uint8_t> state;
  bool preferred = false;
  std::string error;  // why the priority is undefined ("" when it is not)
};
// From the VPD page 0x83 and REPORT TARGET PORT GROUPS responses: the
// path's group is the VPD page's (else, as a fallback multipathd has not,
// the group listing the path's relative port), its state the RTPG
// descriptor of that group.
AluaInfo alua_info(std::span<const std::uint8_t> vpd83, std::span<const std::uint8_t> rtpg,
                   bool exclusive_pref_bit);

}  // namespace ubdm::discovery
