// SPDX-License-Identifier: MIT
// The alua prioritizer's parsing (INQUIRY TPGS, VPD page 0x83 port
// designators, REPORT TARGET PORT GROUPS in both header formats) and
// multipathd's priority values (alua.c getprio()), over byte arrays built
// here as SPC-4 lays them out.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "discovery/alua.hpp"

namespace ubdm::discovery {
namespace {

using Bytes = std::vector<std::uint8_t>;

// A VPD 0x83 designator: association (bits 4-5 of byte 1), type, payload.
void designator(Bytes& page, std::uint8_t assoc, std::uint8_t type, const Bytes& payload) {
  page.push_back(0x61);  // protocol SAS, code set binary (any)
  page.push_back(static_cast<std::uint8_t>(0x80 | (assoc << 4) | type));
  page.push_back(0);
  page.push_back(static_cast<std::uint8_t>(payload.size()));
  page.insert(page.end(), payload.begin(), payload.end());
}
Bytes vpd83(std::optional<std::uint16_t> rel_port, std::optional<std::uint16_t> group) {
  Bytes p{0x00, 0x83, 0, 0};
  designator(p, 0, 0x3, {0x33, 0x33, 0x33, 0x30, 0, 0, 0x07, 0xd0});  // NAA of the LUN
  if (rel_port) {
    designator(p, 1, 0x4, {0, 0, static_cast<std::uint8_t>(*rel_port >> 8), static_cast<std::uint8_t>(*rel_port)});
  }
  if (group) {
    designator(p, 1, 0x5, {0, 0, static_cast<std::uint8_t>(*group >> 8), static_cast<std::uint8_t>(*group)});
  }
  p[2] = static_cast<std::uint8_t>((p.size() - 4) >> 8);
  p[3] = static_cast<std::uint8_t>(p.size() - 4);
  return p;
}

struct Group {
  std::uint16_t id;
  std::uint8_t state;
  bool preferred;
  std::vector<std::uint16_t> ports;
};
Bytes rtpg(const std::vector<Group>& groups, bool extended = false) {
  Bytes r{0, 0, 0, 0};
  if (extended) {
    r.insert(r.end(), {0x10, 5, 0, 0});  // format type 001b, implicit transition time 5 s
  }
  for (const Group& g : groups) {
    r.push_back(static_cast<std::uint8_t>((g.preferred ? 0x80 : 0) | g.state));
    r.push_back(0x8f);  // T_SUP O_SUP U_SUP S_SUP AN_SUP AO_SUP... any
    r.push_back(static_cast<std::uint8_t>(g.id >> 8));
    r.push_back(static_cast<std::uint8_t>(g.id));
    r.insert(r.end(), {0, 0x02, 0, static_cast<std::uint8_t>(g.ports.size())});
    for (const std::uint16_t p : g.ports) {
      r.insert(r.end(), {0, 0, static_cast<std::uint8_t>(p >> 8), static_cast<std::uint8_t>(p)});
    }
  }
  const std::size_t len = r.size() - 4;
  r[0] = static_cast<std::uint8_t>(len >> 24);
  r[1] = static_cast<std::uint8_t>(len >> 16);
  r[2] = static_cast<std::uint8_t>(len >> 8);
  r[3] = static_cast<std::uint8_t>(len);
  return r;
}

TEST(DiscoveryAlua, InquiryTpgsBits) {
  Bytes inq(36, 0);
  EXPECT_EQ(inquiry_tpgs(inq), 0U);
  inq[5] = 0x10;  // implicit
  EXPECT_EQ(inquiry_tpgs(inq), 1U);
  inq[5] = 0x28;  // explicit, with another bit set
  EXPECT_EQ(inquiry_tpgs(inq), 2U);
  inq[5] = 0x30;
  EXPECT_EQ(inquiry_tpgs(inq), 3U);
  EXPECT_EQ(inquiry_tpgs(Bytes{0, 0, 0, 0, 0}), std::nullopt);
}

TEST(DiscoveryAlua, Vpd83PortDesignators) {
  const Vpd83Ports p = parse_vpd83_ports(vpd83(0x0102, 0x0304));
  EXPECT_EQ(p.relative_port, 0x0102);
  EXPECT_EQ(p.port_group, 0x0304);
  EXPECT_FALSE(p.several_groups);
  const Vpd83Ports none = parse_vpd83_ports(vpd83(std::nullopt, std::nullopt));
  EXPECT_FALSE(none.relative_port);
  EXPECT_FALSE(none.port_group);
  // A second group designator: the first counts (get_target_port_group()).
  Bytes two = vpd83(1, 5);
  designator(two, 1, 0x5, {0, 0, 0, 9});
  two[3] = static_cast<std::uint8_t>(two.size() - 4);
  const Vpd83Ports t = parse_vpd83_ports(two);
  EXPECT_EQ(t.port_group, 5);
  EXPECT_TRUE(t.several_groups);
  // A designator running past the page length is not read.
  Bytes cut = vpd83(1, 5);
  cut[3] = static_cast<std::uint8_t>(cut[3] - 2);
  EXPECT_FALSE(parse_vpd83_ports(cut).port_group);
}

TEST(DiscoveryAlua, RtpgLengthOnlyHeader) {
  const RtpgReport r = parse_rtpg(rtpg({{0, kAasOptimized, false, {1}},
                                        {1, kAasNonOptimized, true, {2, 3}},
                                        {2, kAasStandby, false, {}}}));
  EXPECT_TRUE(r.error.empty()) << r.error;
  EXPECT_FALSE(r.extended);
  ASSERT_EQ(r.groups.size(), 3U);
  EXPECT_EQ(r.groups[0].state, kAasOptimized);
  EXPECT_FALSE(r.groups[0].preferred);
  EXPECT_EQ(r.groups[1].id, 1);
  EXPECT_TRUE(r.groups[1].preferred);
  EXPECT_EQ(r.groups[1].relative_ports, (std::vector<std::uint16_t>{2, 3}));
  EXPECT_EQ(r.groups[1].status, 2);
  EXPECT_EQ(r.groups[2].state, kAasStandby);
}

TEST(DiscoveryAlua, RtpgExtendedHeader) {
  const RtpgReport r = parse_rtpg(rtpg({{0x1234, kAasTransitioning, false, {7}}}, true));
  EXPECT_TRUE(r.error.empty()) << r.error;
  EXPECT_TRUE(r.extended);
  EXPECT_EQ(r.implicit_transition_secs, 5U);
  ASSERT_EQ(r.groups.size(), 1U);
  EXPECT_EQ(r.groups[0].id, 0x1234);
  EXPECT_EQ(r.groups[0].state, kAasTransitioning);
  EXPECT_EQ(r.groups[0].relative_ports, (std::vector<std::uint16_t>{7}));
}

TEST(DiscoveryAlua, RtpgTruncatedAndShort) {
  Bytes r = rtpg({{0, kAasOptimized, false, {1, 2}}});
  r.resize(r.size() - 4);  // the header says more than was returned
  const RtpgReport t = parse_rtpg(r);
  EXPECT_FALSE(t.error.empty());
  EXPECT_EQ(parse_rtpg(Bytes{0, 0}).error, "the response is shorter than its header");
}

TEST(DiscoveryAlua, MultipathdPriorityValues) {
  // alua.c getprio().
  EXPECT_EQ(alua_priority(kAasOptimized, false, false), 50);
  EXPECT_EQ(alua_priority(kAasNonOptimized, false, false), 10);
  EXPECT_EQ(alua_priority(kAasLbaDependent, false, false), 5);
  EXPECT_EQ(alua_priority(kAasStandby, false, false), 1);
  EXPECT_EQ(alua_priority(kAasUnavailable, false, false), 0);
  EXPECT_EQ(alua_priority(kAasOffline, false, false), 0);
  EXPECT_EQ(alua_priority(kAasTransitioning, false, false), 0);
  EXPECT_EQ(alua_priority(0x5, false, false), 0);  // reserved
  // The preferred bit adds 80, but not to active/optimized unless
  // exclusive_pref_bit is given.
  EXPECT_EQ(alua_priority(kAasNonOptimized, true, false), 90);
  EXPECT_EQ(alua_priority(kAasStandby, true, false), 81);
  EXPECT_EQ(alua_priority(kAasUnavailable, true, false), 80);
  EXPECT_EQ(alua_priority(kAasOptimized, true, false), 50);
  EXPECT_EQ(alua_priority(kAasOptimized, true, true), 130);
  EXPECT_TRUE(alua_exclusive_pref_arg("exclusive_pref_bit"));
  EXPECT_TRUE(alua_exclusive_pref_arg("x exclusive_pref_bit"));
  EXPECT_FALSE(alua_exclusive_pref_arg("exclusive_pref_bits"));
  EXPECT_FALSE(alua_exclusive_pref_arg(""));
  EXPECT_STREQ(alua_state_name(kAasStandby), "standby");
}

TEST(DiscoveryAlua, InfoFindsThePathsGroup) {
  const Bytes report = rtpg({{0, kAasOptimized, false, {1}}, {1, kAasNonOptimized, true, {2}}, {2, kAasStandby, false, {3}}});
  const AluaInfo a = alua_info(vpd83(2, 1), report, false);
  EXPECT_TRUE(a.error.empty()) << a.error;
  EXPECT_EQ(a.port_group, 1);
  EXPECT_EQ(a.state, kAasNonOptimized);
  EXPECT_TRUE(a.preferred);
  EXPECT_EQ(a.priority, 90);
  // Without a group designator, the group listing the relative port.
  const AluaInfo b = alua_info(vpd83(3, std::nullopt), report, false);
  EXPECT_EQ(b.port_group, 2);
  EXPECT_EQ(b.priority, 1);
  // A group RTPG does not list: undefined.
  const AluaInfo c = alua_info(vpd83(1, 9), report, false);
  EXPECT_EQ(c.priority, kPrioUndef);
  EXPECT_NE(c.error.find("group 9"), std::string::npos) << c.error;
  EXPECT_EQ(alua_info(vpd83(std::nullopt, std::nullopt), report, false).priority, kPrioUndef);
  EXPECT_EQ(alua_info(vpd83(1, 0), Bytes{}, false).priority, kPrioUndef);
}

}  // namespace
}  // namespace ubdm::discovery
