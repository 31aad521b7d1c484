// SPDX-License-Identifier: MIT
#include "discovery/alua.hpp"

#include <sstream>

#include <fmt/format.h>

namespace ubdm::discovery {

namespace {

std::uint16_t be16(std::span<const std::uint8_t> b, std::size_t at) {
  return static_cast<std::uint16_t>((b[at] << 8) | b[at + 1]);
}
std::uint32_t be32(std::span<const std::uint8_t> b, std::size_t at) {
  return (std::uint32_t{b[at]} << 24) | (std::uint32_t{b[at + 1]} << 16) | (std::uint32_t{b[at + 2]} << 8) |
         std::uint32_t{b[at + 3]};
}

constexpr std::uint8_t kDesigRelativePort = 0x4;
constexpr std::uint8_t kDesigPortGroup = 0x5;

}  // namespace

const char* alua_state_name(std::uint8_t state) {
  switch (state & 0x0f) {
    case kAasOptimized: return "active/optimized";
    case kAasNonOptimized: return "active/non-optimized";
    case kAasStandby: return "standby";
    case kAasUnavailable: return "unavailable";
    case kAasLbaDependent: return "lba-dependent";
    case kAasOffline: return "offline";
    case kAasTransitioning: return "transitioning";
    default: return "reserved";
  }
}

std::optional<unsigned> inquiry_tpgs(std::span<const std::uint8_t> inquiry) {
  if (inquiry.size() < 6) {
    return std::nullopt;
  }
  return (inquiry[5] >> 4) & 0x3U;
}

Vpd83Ports parse_vpd83_ports(std::span<const std::uint8_t> page) {
  Vpd83Ports out;
  if (page.size() < 4) {
    return out;
  }
  const std::size_t end = std::min<std::size_t>(page.size(), std::size_t{be16(page, 2)} + 4);
  for (std::size_t d = 4; d + 4 <= end;) {
    const std::size_t len = page[d + 3];
    if (d + 4 + len > end) {
      break;
    }
    const std::uint8_t type = page[d + 1] & 0x0f;
    if (len >= 4 && type == kDesigRelativePort && !out.relative_port) {
      out.relative_port = be16(page, d + 6);
    } else if (len >= 4 && type == kDesigPortGroup) {
      if (out.port_group) {
        out.several_groups = true;
      } else {
        out.port_group = be16(page, d + 6);
      }
    }
    d += 4 + len;
  }
  return out;
}

RtpgReport parse_rtpg(std::span<const std::uint8_t> r) {
  RtpgReport out;
  if (r.size() < 4) {
    out.error = "the response is shorter than its header";
    return out;
  }
  std::size_t end = std::size_t{be32(r, 0)} + 4;
  if (end > r.size()) {
    out.error = fmt::format("the response says {} bytes, {} were returned", end, r.size());
    end = r.size();
  }
  std::size_t d = 4;
  // SPC-4 6.37: with the extended header byte 4 holds the format type
  // (bits 4-6, 001b) where a descriptor's byte 0 has reserved bits.
  if (end >= 8 && (r[4] & 0x70) == 0x10) {
    out.extended = true;
    out.implicit_transition_secs = r[5];
    d = 8;
  }
  while (d + 8 <= end) {
    PortGroup g;
    g.preferred = (r[d] & 0x80) != 0;
    g.state = r[d] & 0x0f;
    g.id = be16(r, d + 2);
    g.status = r[d + 5];
    const std::size_t ports = r[d + 7];
    if (d + 8 + ports * 4 > end) {
      if (out.error.empty()) {
        out.error = fmt::format("the descriptor of group {} lists {} ports past the end", g.id, ports);
      }
      out.groups.push_back(std::move(g));
      return out;
    }
    for (std::size_t i = 0; i < ports; ++i) {
      g.relative_ports.push_back(be16(r, d + 8 + i * 4 + 2));
    }
    out.groups.push_back(std::move(g));
    d += 8 + ports * 4;
  }
  if (d != end && out.error.empty()) {
    out.error = fmt::format("{} bytes after the last descriptor", end - d);
  }
  return out;
}

int alua_priority(std::uint8_t state, bool preferred, bool exclusive_pref_bit) {
  int prio = 0;
  switch (state & 0x0f) {
    case kAasOptimized: prio = 50; break;
    case kAasNonOptimized: prio = 10; break;
    case kAasLbaDependent: prio = 5; break;
    case kAasStandby: prio = 1; break;
    default: prio = 0; break;
  }
  if (preferred && ((state & 0x0f) != kAasOptimized || exclusive_pref_bit)) {
    prio += 80;
  }
  return prio;
}

bool alua_exclusive_pref_arg(const std::string& prio_args) {
  std::istringstream in(prio_args);
  for (std::string w; in >> w;) {
    if (w == "exclusive_pref_bit") {
      return true;
    }
  }
  return false;
}

AluaInfo alua_info(std::span<const std::uint8_t> vpd83, std::span<const std::uint8_t> rtpg, bool exclusive_pref_bit) {
  AluaInfo out;
  const Vpd83Ports ports = parse_vpd83_ports(vpd83);
  const RtpgReport report = parse_rtpg(rtpg);
  if (report.groups.empty()) {
    out.error = "REPORT TARGET PORT GROUPS lists no group" + (report.error.empty() ? "" : ": " + report.error);
    return out;
  }
  const PortGroup* group = nullptr;
  if (ports.port_group) {
    out.port_group = ports.port_group;
    for (const PortGroup& g : report.groups) {
      if (g.id == *ports.port_group) {
        group = &g;  // the first descriptor of that group, as multipathd
        break;
      }
    }
    if (group == nullptr) {
      out.error = fmt::format("target port group {} (VPD page 0x83) is not in REPORT TARGET PORT GROUPS",
                              *ports.port_group);
      return out;
    }
  } else if (ports.relative_port) {
    for (const PortGroup& g : report.groups) {
      for (const std::uint16_t p : g.relative_ports) {
        if (p == *ports.relative_port && group == nullptr) {
          group = &g;
        }
      }
    }
    if (group == nullptr) {
      out.error = fmt::format("VPD page 0x83 has no target port group, and relative port {} is in no group",
                              *ports.relative_port);
      return out;
    }
    out.port_group = group->id;
  } else {
    out.error = "VPD page 0x83 names no target port group";
    return out;
  }
  out.state = group->state;
  out.preferred = group->preferred;
  out.priority = alua_priority(group->state, group->preferred, exclusive_pref_bit);
  return out;
}

}  // namespace ubdm::discovery
