// SPDX-License-Identifier: MIT
// The table of a planned multipath map: groups by each path_grouping_policy
// in multipathd's order, the selector with its arguments, repeat counts,
// features from no_path_retry, features, polling_interval and failback, the
// fallbacks ubdm takes where it cannot follow a setting; and every table
// made here is one the multipath target takes.
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "discovery/map_table.hpp"
#include "io/fake_backend.hpp"
#include "ubdm/clock.hpp"
#include "ubdm/device.hpp"
#include "ubdm/error.hpp"

namespace ubdm::discovery {
namespace {

constexpr const char* kW = "3600a0b800000000000000000000000a1";

ScannedPath path(const std::string& dev, const std::string& serial = "SER1", const std::string& node = "") {
  ScannedPath p;
  p.dev = dev;
  p.kind = PathKind::kScsi;
  p.wwid = kW;
  p.size_sectors = 2048;
  p.vendor = "ACME";
  p.product = "Array";
  p.revision = "0815";
  p.protocol = "scsi:fcp";
  p.serial = serial;
  p.target_node_name = node;
  p.state = "running";
  return p;
}

// A planned map over `paths` with the settings `conf` gives it, as
// assemble_maps() would plan it.
PlannedMap plan(const std::string& conf, std::vector<ScannedPath> paths) {
  const Config c = parse_multipath_conf(conf, "t.conf");
  for (const Warning& w : c.warnings) {
    ADD_FAILURE() << w.message;
  }
  PlannedMap m;
  m.wwid = kW;
  m.name = "mpatha";
  m.uuid = std::string("mpath-") + kW;
  m.size_sectors = 2048;
  m.paths = std::move(paths);
  m.settings = resolve_settings(c, LunIdentity{kW, m.paths.at(0).dev, "ACME", "Array", "0815"});
  return m;
}

MapTable table_of(const std::string& conf, std::vector<ScannedPath> paths, PollingIntervals polling = {}) {
  return make_map_table(plan(conf, std::move(paths)), polling);
}

std::vector<std::vector<std::string>> groups_of(const MapTable& t) {
  std::vector<std::vector<std::string>> out;
  for (const TableGroup& g : t.groups) {
    out.emplace_back();
    for (const TablePath& p : g.paths) {
      out.back().push_back(p.dev);
    }
  }
  return out;
}

bool noted(const MapTable& t, const std::string& part) {
  for (const std::string& n : t.notes) {
    if (n.find(part) != std::string::npos) {
      return true;
    }
  }
  return false;
}

using Groups = std::vector<std::vector<std::string>>;

// The multipath target builds the table over fake disks named as the paths:
// the text is one it takes.
void expect_target_takes(const MapTable& t, const std::vector<std::string>& devs) {
  ASSERT_FALSE(t.text.empty());
  FakeStorage storage;
  for (const std::string& d : devs) {
    storage.add_disk("/dev/" + d, 2048);
  }
  ManualClock clock;
  MappedDevice dev("mpatha", DeviceConfig{1, 16, 4}, storage, clock);
  EXPECT_NO_THROW(dev.load_text(t.text)) << t.text;
}

// ---- grouping policies --------------------------------------------------------

TEST(DiscoveryTable, BuiltInDefaultsGiveFailoverOverServiceTime) {
  const MapTable t = table_of("", {path("sda"), path("sdb"), path("sdc")});
  EXPECT_EQ(t.policy, PgPolicy::kFailover);
  EXPECT_EQ(groups_of(t), (Groups{{"sda"}, {"sdb"}, {"sdc"}}));
  EXPECT_EQ(t.initial_group, 1U);
  EXPECT_EQ(t.text,
            "0 2048 multipath 2 path_check_interval 5 0 3 1 service-time 0 1 1 /dev/sda 1 service-time 0 1 1 "
            "/dev/sdb 1 service-time 0 1 1 /dev/sdc 1");
  EXPECT_TRUE(t.notes.empty()) << t.notes[0];
  expect_target_takes(t, {"sda", "sdb", "sdc"});
}

TEST(DiscoveryTable, MultibusPutsEveryPathInOneGroup) {
  const MapTable t = table_of("defaults {\n path_grouping_policy multibus\n}\n", {path("sda"), path("sdb"), path("sdc")});
  EXPECT_EQ(groups_of(t), (Groups{{"sda", "sdb", "sdc"}}));
  EXPECT_EQ(t.text,
            "0 2048 multipath 2 path_check_interval 5 0 1 1 service-time 0 3 1 /dev/sda 1 /dev/sdb 1 /dev/sdc 1");
  expect_target_takes(t, {"sda", "sdb", "sdc"});
}

TEST(DiscoveryTable, GroupBySerialGroupsInOrderOfFirstAppearanceThenSortsByEnabledPaths) {
  // pgpolicies.c group_by_match(): X, Y, Z in order of their first path;
  // sort_pathgroups(): same priority, so more enabled paths first, the
  // order kept among equals.
  const MapTable t = table_of("defaults {\n path_grouping_policy group_by_serial\n}\n",
                              {path("sda", "X"), path("sdb", "Y"), path("sdc", "Y"), path("sdd", "Z"),
                               path("sde", "X"), path("sdf", "Y")});
  EXPECT_EQ(groups_of(t), (Groups{{"sdb", "sdc", "sdf"}, {"sda", "sde"}, {"sdd"}}));
  EXPECT_EQ(t.initial_group, 1U);
  EXPECT_EQ(t.groups[0].enabled_paths, 3U);
  EXPECT_EQ(t.groups[0].priority, 1);
  expect_target_takes(t, {"sda", "sdb", "sdc", "sdd", "sde", "sdf"});
}

TEST(DiscoveryTable, GroupByNodeNameGroupsByTargetNodeName) {
  const MapTable t = table_of("defaults {\n path_grouping_policy group_by_node_name\n}\n",
                              {path("sda", "S", "0x50000001"), path("sdb", "S", "0x50000002"),
                               path("sdc", "S", "0x50000001"), path("sdd", "S", "0x50000002")});
  EXPECT_EQ(groups_of(t), (Groups{{"sda", "sdc"}, {"sdb", "sdd"}}));
  EXPECT_EQ(t.text,
            "0 2048 multipath 2 path_check_interval 5 0 2 1 service-time 0 2 1 /dev/sda 1 /dev/sdc 1 "
            "service-time 0 2 1 /dev/sdb 1 /dev/sdd 1");
  expect_target_takes(t, {"sda", "sdb", "sdc", "sdd"});
}

TEST(DiscoveryTable, GroupByPrioWithConstPrioritiesIsOneGroup) {
  const MapTable t = table_of("defaults {\n path_grouping_policy group_by_prio\n}\n",
                              {path("sda"), path("sdb"), path("sdc")});
  EXPECT_EQ(groups_of(t), (Groups{{"sda", "sdb", "sdc"}}));
  EXPECT_TRUE(t.notes.empty());
}

TEST(DiscoveryTable, GroupByTpgFallsBackToFailoverWithoutAluaPriorities) {
  // propsel.c select_pgpolicy(): not every path has an alua (or sysfs) prio.
  const MapTable t = table_of("defaults {\n path_grouping_policy group_by_tpg\n}\n", {path("sda"), path("sdb")});
  EXPECT_EQ(t.policy, PgPolicy::kFailover);
  EXPECT_EQ(groups_of(t), (Groups{{"sda"}, {"sdb"}}));
  EXPECT_TRUE(noted(t, "group_by_tpg")) << testing::PrintToString(t.notes);
}

TEST(DiscoveryTable, AnUnknownPrioFallsBackToConstWithANote) {
  const MapTable t = table_of("defaults {\n path_grouping_policy group_by_prio\n prio alua\n}\n",
                              {path("sda"), path("sdb")});
  EXPECT_EQ(groups_of(t), (Groups{{"sda", "sdb"}}));
  EXPECT_TRUE(noted(t, "prio alua")) << testing::PrintToString(t.notes);
  EXPECT_EQ(t.groups[0].paths[0].priority, 1);
}

// alua priorities through fixed probes: dev -> (group, state, preferred).
struct FixedAlua {
  std::uint16_t group;
  std::uint8_t state;
  bool preferred = false;
};
PathProbes fixed_alua(std::map<std::string, FixedAlua> by_dev, unsigned tpgs = 1, bool detect = false) {
  PathProbes probes;
  probes.detect_prio = detect;
  probes.tpgs = [tpgs](const ScannedPath&) { return std::optional<unsigned>(tpgs); };
  probes.alua = [by_dev](const ScannedPath& p, bool exclusive) {
    AluaInfo a;
    const auto it = by_dev.find(p.dev);
    if (it == by_dev.end()) {
      a.error = "RTPG failed";
      return a;
    }
    a.port_group = it->second.group;
    a.state = it->second.state;
    a.preferred = it->second.preferred;
    a.priority = alua_priority(it->second.state, it->second.preferred, exclusive);
    return a;
  };
  return probes;
}

TEST(DiscoveryTable, GroupByPrioWithAluaGivesOneGroupPerPriorityBestFirst) {
  const PathProbes probes = fixed_alua({{"sda", {2, kAasStandby}},
                                        {"sdb", {0, kAasOptimized}},
                                        {"sdc", {1, kAasNonOptimized}},
                                        {"sdd", {0, kAasOptimized}}});
  const MapTable t = make_map_table(
      plan("defaults {\n path_grouping_policy group_by_prio\n prio alua\n rr_weight priorities\n}\n",
           {path("sda"), path("sdb"), path("sdc"), path("sdd")}),
      {}, probes);
  EXPECT_EQ(groups_of(t), (Groups{{"sdb", "sdd"}, {"sdc"}, {"sda"}}));
  ASSERT_EQ(t.groups.size(), 3U);
  EXPECT_EQ(t.groups[0].priority, 50);
  EXPECT_EQ(t.groups[1].priority, 10);
  EXPECT_EQ(t.groups[2].priority, 1);
  EXPECT_EQ(t.initial_group, 1U);
  EXPECT_EQ(t.groups[0].paths[0].prio, "alua");
  EXPECT_TRUE(t.notes.empty()) << testing::PrintToString(t.notes);
  // rr_weight priorities: the repeat count times the priority.
  EXPECT_EQ(t.text,
            "0 2048 multipath 2 path_check_interval 5 0 3 1 service-time 0 2 1 /dev/sdb 50 /dev/sdd 50 "
            "service-time 0 1 1 /dev/sdc 10 service-time 0 1 1 /dev/sda 1");
  expect_target_takes(t, {"sda", "sdb", "sdc", "sdd"});
}

TEST(DiscoveryTable, AluaPreferredBitAndUndefinedPriorities) {
  // A preferred standby path (81) outranks an active/optimized one (50);
  // a path whose state cannot be read has PRIO_UNDEF and a note.
  const PathProbes probes = fixed_alua({{"sda", {0, kAasOptimized}}, {"sdb", {1, kAasStandby, true}}});
  const MapTable t = make_map_table(
      plan("defaults {\n path_grouping_policy group_by_prio\n prio alua\n}\n", {path("sda"), path("sdb"), path("sdc")}),
      {}, probes);
  EXPECT_EQ(groups_of(t), (Groups{{"sdb"}, {"sda"}, {"sdc"}}));
  EXPECT_EQ(t.groups[0].priority, 81);
  EXPECT_EQ(t.groups[2].priority, kPrioUndef);
  EXPECT_TRUE(noted(t, "sdc: prio alua: undefined priority: RTPG failed")) << testing::PrintToString(t.notes);
}

TEST(DiscoveryTable, DetectPrioPicksAluaForATargetClaimingTpgs) {
  const PathProbes probes = fixed_alua({{"sda", {0, kAasNonOptimized}}, {"sdb", {1, kAasOptimized}}}, 1, true);
  const MapTable t = make_map_table(
      plan("defaults {\n path_grouping_policy group_by_prio\n}\n", {path("sda"), path("sdb")}), {}, probes);
  EXPECT_EQ(groups_of(t), (Groups{{"sdb"}, {"sda"}}));
  // Without TPGS, detect_prio leaves const, and prio alua falls back to const.
  const PathProbes none = fixed_alua({{"sda", {0, kAasNonOptimized}}, {"sdb", {1, kAasOptimized}}}, 0, true);
  const MapTable c = make_map_table(
      plan("defaults {\n path_grouping_policy group_by_prio\n prio alua\n}\n", {path("sda"), path("sdb")}), {},
      none);
  EXPECT_EQ(groups_of(c), (Groups{{"sda", "sdb"}}));
  EXPECT_TRUE(noted(c, "claims no ALUA")) << testing::PrintToString(c.notes);
}

TEST(DiscoveryTable, GroupByTpgWithAluaGroupsByPortGroup) {
  const PathProbes probes = fixed_alua(
      {{"sda", {7, kAasNonOptimized}}, {"sdb", {3, kAasOptimized}}, {"sdc", {7, kAasNonOptimized}}});
  const MapTable t = make_map_table(
      plan("defaults {\n path_grouping_policy group_by_tpg\n prio alua\n}\n", {path("sda"), path("sdb"), path("sdc")}),
      {}, probes);
  EXPECT_EQ(t.policy, PgPolicy::kGroupByTpg);
  EXPECT_EQ(groups_of(t), (Groups{{"sdb"}, {"sda", "sdc"}}));
}

TEST(DiscoveryTable, GroupsWithoutAnEnabledPathGoLast) {
  // A blocked path is not up (multipathd's PATH_PENDING): its group has
  // priority 0 and sorts after the others; the initial group is the first.
  ScannedPath blocked = path("sda");
  blocked.state = "blocked";
  const MapTable t = table_of("", {blocked, path("sdb"), path("sdc")});
  EXPECT_EQ(groups_of(t), (Groups{{"sdb"}, {"sdc"}, {"sda"}}));
  EXPECT_EQ(t.groups[2].enabled_paths, 0U);
  EXPECT_EQ(t.groups[2].priority, 0);
  EXPECT_EQ(t.initial_group, 1U);
}

TEST(DiscoveryTable, WithNoPathUpTheInitialGroupIsTheFirst) {
  ScannedPath a = path("sda");
  ScannedPath b = path("sdb");
  a.state = b.state = "blocked";
  const MapTable t = table_of("", {a, b});
  EXPECT_EQ(groups_of(t), (Groups{{"sda"}, {"sdb"}}));
  EXPECT_EQ(t.initial_group, 1U);
}

TEST(DiscoveryTable, PathsTheKernelWillNotOpenAreLeftOut) {
  ScannedPath off = path("sdb");
  off.state = "offline";
  ScannedPath gone = path("sdc");
  gone.state = "transport-offline";
  const MapTable t = table_of("defaults {\n path_grouping_policy multibus\n}\n", {path("sda"), off, gone});
  EXPECT_EQ(groups_of(t), (Groups{{"sda"}}));
  ASSERT_EQ(t.omitted.size(), 2U);
  EXPECT_EQ(t.omitted[0].dev, "sdb");
  EXPECT_NE(t.omitted[0].why.find("offline"), std::string::npos);

  const MapTable none = table_of("", {off});
  EXPECT_TRUE(none.text.empty());
  EXPECT_TRUE(none.groups.empty());
  EXPECT_EQ(none.initial_group, 0U);
}

// ---- selector and repeat counts ----------------------------------------------

TEST(DiscoveryTable, SelectorsWithTheirArgumentsAndRepeatCounts) {
  MapTable t = table_of("defaults {\n path_grouping_policy multibus\n path_selector \"round-robin 0\"\n"
                        " rr_min_io_rq 100\n}\n",
                        {path("sda"), path("sdb")});
  EXPECT_EQ(t.selector, "round-robin 0");
  EXPECT_EQ(t.text, "0 2048 multipath 2 path_check_interval 5 0 1 1 round-robin 0 2 1 /dev/sda 100 /dev/sdb 100");
  expect_target_takes(t, {"sda", "sdb"});

  t = table_of("defaults {\n path_grouping_policy multibus\n path_selector \"queue-length 0\"\n}\n",
               {path("sda"), path("sdb")});
  EXPECT_EQ(t.text, "0 2048 multipath 2 path_check_interval 5 0 1 1 queue-length 0 2 1 /dev/sda 1 /dev/sdb 1");
  expect_target_takes(t, {"sda", "sdb"});

  t = table_of("defaults {\n path_grouping_policy multibus\n path_selector \"historical-service-time 2 10 5\"\n}\n",
               {path("sda"), path("sdb")});
  EXPECT_EQ(t.selector, "historical-service-time 2 10 5");
  EXPECT_EQ(t.text,
            "0 2048 multipath 2 path_check_interval 5 0 1 1 historical-service-time 2 10 5 2 1 /dev/sda 1 "
            "/dev/sdb 1");
  expect_target_takes(t, {"sda", "sdb"});
}

TEST(DiscoveryTable, RrWeightPrioritiesMultipliesTheRepeatCountByThePriority) {
  // const: every priority is 1, so the count stays rr_min_io_rq.
  const MapTable t = table_of("defaults {\n rr_weight priorities\n rr_min_io_rq 3\n}\n", {path("sda")});
  EXPECT_EQ(t.groups[0].paths[0].repeat_count, 3U);
}

TEST(DiscoveryTable, ASelectorUbdmLacksFallsBackToServiceTime) {
  const MapTable t = table_of("defaults {\n path_selector \"io-affinity 0\"\n}\n", {path("sda")});
  EXPECT_EQ(t.selector, "service-time 0");
  EXPECT_TRUE(noted(t, "io-affinity")) << testing::PrintToString(t.notes);
  expect_target_takes(t, {"sda"});
}

TEST(DiscoveryTable, TheMultipathsEntryWinsForTheSelector) {
  const MapTable t = table_of(std::string("defaults {\n path_selector \"round-robin 0\"\n}\nmultipaths {\n multipath {\n"
                                          "  wwid ") +
                                  kW + "\n  path_selector \"queue-length 0\"\n }\n}\n",
                              {path("sda")});
  EXPECT_EQ(t.selector, "queue-length 0");
}

// ---- features ------------------------------------------------------------------

TEST(DiscoveryTable, NoPathRetryBecomesUbdmsFeature) {
  EXPECT_EQ(table_of("defaults {\n no_path_retry queue\n}\n", {path("sda")}).text,
            "0 2048 multipath 4 no_path_retry queue path_check_interval 5 0 1 1 service-time 0 1 1 /dev/sda 1");
  EXPECT_EQ(table_of("defaults {\n no_path_retry fail\n}\n", {path("sda")}).text,
            "0 2048 multipath 4 no_path_retry fail path_check_interval 5 0 1 1 service-time 0 1 1 /dev/sda 1");
  const MapTable n = table_of("defaults {\n no_path_retry 12\n polling_interval 2\n}\n", {path("sda")},
                              resolve_polling(parse_multipath_conf("defaults {\n polling_interval 2\n}\n").defaults));
  EXPECT_EQ(n.text, "0 2048 multipath 4 no_path_retry 12 path_check_interval 2 0 1 1 service-time 0 1 1 /dev/sda 1");
  expect_target_takes(n, {"sda"});
}

TEST(DiscoveryTable, QueueIfNoPathInFeaturesIsNoPathRetryQueue) {
  // propsel.c reconcile_features_with_options(), through resolve_settings().
  const MapTable t = table_of("defaults {\n features \"1 queue_if_no_path\"\n}\n", {path("sda")});
  EXPECT_EQ(t.text, "0 2048 multipath 4 no_path_retry queue path_check_interval 5 0 1 1 service-time 0 1 1 /dev/sda 1");
  // ... unless no_path_retry says otherwise.
  EXPECT_EQ(table_of("defaults {\n features \"1 queue_if_no_path\"\n no_path_retry fail\n}\n", {path("sda")}).text,
            "0 2048 multipath 4 no_path_retry fail path_check_interval 5 0 1 1 service-time 0 1 1 /dev/sda 1");
}

TEST(DiscoveryTable, KernelFeaturesPassAndUnknownOnesAreLeftOut) {
  MapTable t = table_of("defaults {\n features \"4 pg_init_retries 50 queue_mode rq\"\n}\n", {path("sda")});
  EXPECT_EQ(t.text,
            "0 2048 multipath 6 pg_init_retries 50 queue_mode rq path_check_interval 5 0 1 1 service-time 0 1 1 "
            "/dev/sda 1");
  expect_target_takes(t, {"sda"});

  t = table_of("defaults {\n features \"3 pg_init_retries 99 frobnicate\"\n}\n", {path("sda")});
  EXPECT_EQ(t.text, "0 2048 multipath 2 path_check_interval 5 0 1 1 service-time 0 1 1 /dev/sda 1");
  EXPECT_TRUE(noted(t, "pg_init_retries 99")) << testing::PrintToString(t.notes);
  EXPECT_TRUE(noted(t, "frobnicate")) << testing::PrintToString(t.notes);
}

TEST(DiscoveryTable, FailbackImmediateIsCarriedOthersFallBack) {
  EXPECT_EQ(table_of("defaults {\n failback immediate\n}\n", {path("sda")}).text,
            "0 2048 multipath 4 path_check_interval 5 failback immediate 0 1 1 service-time 0 1 1 /dev/sda 1");
  const MapTable f = table_of("defaults {\n failback followover\n}\n", {path("sda")});
  EXPECT_EQ(f.text, "0 2048 multipath 2 path_check_interval 5 0 1 1 service-time 0 1 1 /dev/sda 1");
  EXPECT_TRUE(noted(f, "followover"));
  const MapTable d = table_of("defaults {\n failback 30\n}\n", {path("sda")});
  EXPECT_EQ(d.text,
            "0 2048 multipath 4 path_check_interval 5 failback immediate 0 1 1 service-time 0 1 1 /dev/sda 1");
  EXPECT_TRUE(noted(d, "failback 30"));
  expect_target_takes(d, {"sda"});
}

TEST(DiscoveryTable, AHardwareHandlerIsNotUsed) {
  const MapTable t = table_of("devices {\n device {\n  vendor ACME\n  product Array\n  hardware_handler \"1 alua\"\n"
                              " }\n}\n",
                              {path("sda")});
  EXPECT_EQ(t.text, "0 2048 multipath 2 path_check_interval 5 0 1 1 service-time 0 1 1 /dev/sda 1");
  EXPECT_TRUE(noted(t, "hardware_handler")) << testing::PrintToString(t.notes);
}

TEST(DiscoveryTable, ThePollingIntervalIsCappedAtTheCheckersLimit) {
  PollingIntervals p;
  p.polling_interval = 7200;
  const MapTable t = make_map_table(plan("", {path("sda")}), p);
  EXPECT_EQ(t.text, "0 2048 multipath 2 path_check_interval 3600 0 1 1 service-time 0 1 1 /dev/sda 1");
  EXPECT_TRUE(noted(t, "polling_interval 7200"));
}

}  // namespace
}  // namespace ubdm::discovery
