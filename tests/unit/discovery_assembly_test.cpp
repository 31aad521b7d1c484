// SPDX-License-Identifier: MIT
// Which maps to make: the blacklist with its exceptions and built-in
// entries, find_multipaths in each mode, map names (aliases, user-friendly
// names and their bindings), and the bindings and wwids files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "discovery/assembly.hpp"
#include "ubdm/error.hpp"

namespace ubdm::discovery {
namespace {

namespace fs = std::filesystem;

constexpr const char* kA = "3600a0b800000000000000000000000a1";
constexpr const char* kB = "3600a0b800000000000000000000000b2";
constexpr const char* kC = "3600a0b800000000000000000000000c3";
constexpr const char* kD = "3600a0b800000000000000000000000d4";

ScannedPath scsi(const std::string& dev, const std::string& wwid, std::uint64_t size = 2048) {
  ScannedPath p;
  p.dev = dev;
  p.kind = PathKind::kScsi;
  p.wwid = wwid;
  p.size_sectors = size;
  p.vendor = "ACME";
  p.product = "Array";
  p.revision = "0815";
  p.protocol = "scsi:fcp";
  return p;
}

ScannedPath nvme(const std::string& dev, const std::string& wwid) {
  ScannedPath p = scsi(dev, wwid);
  p.kind = PathKind::kNvme;
  p.vendor = "NVME";
  p.product = "Fast Flash";
  p.revision = "";
  p.protocol = "nvme:tcp";
  return p;
}

SysfsScan scan_of(std::vector<ScannedPath> paths) {
  SysfsScan s;
  s.paths = std::move(paths);
  return s;
}

Config conf(const std::string& text) {
  Config c = parse_multipath_conf(text, "t.conf");
  EXPECT_TRUE(c.warnings.empty()) << c.warnings[0].message;
  return c;
}

std::vector<std::string> names_of(const Assembly& a) {
  std::vector<std::string> out;
  for (const PlannedMap& m : a.maps) {
    out.push_back(m.name);
  }
  return out;
}

std::vector<std::string> wwids_of(const Assembly& a) {
  std::vector<std::string> out;
  for (const PlannedMap& m : a.maps) {
    out.push_back(m.wwid);
  }
  return out;
}

const LeftOut* left(const Assembly& a, const std::string& dev) {
  for (const LeftOut& l : a.left_out) {
    if (l.dev == dev) {
      return &l;
    }
  }
  return nullptr;
}

// ---------------------------------------------------------------------------
// The blacklist

TEST(DiscoveryFilter, BuiltinDevnodeBlacklistAndItsException) {
  const Config none;
  EXPECT_FALSE(filter_path(none, scsi("sdb", kA), false).blacklisted);
  EXPECT_FALSE(filter_path(none, nvme("nvme0n1", "eui.1"), false).blacklisted);
  const FilterVerdict vd = filter_path(none, scsi("vda", kA), false);
  EXPECT_TRUE(vd.blacklisted);
  EXPECT_NE(vd.why.find("built-in devnode"), std::string::npos) << vd.why;
  // The kernel multipaths NVMe itself: multipathd keeps out of it.
  EXPECT_TRUE(filter_path(none, nvme("nvme0n1", "eui.1"), true).blacklisted);
  EXPECT_FALSE(filter_path(none, scsi("sdb", kA), true).blacklisted);
  // An exception lets virtio disks in.
  const Config vd_ok = conf("blacklist_exceptions {\n  devnode \"^vd[a-z]\"\n}\n");
  EXPECT_FALSE(filter_path(vd_ok, scsi("vda", kA), false).blacklisted);
}

TEST(DiscoveryFilter, AnExceptionOnlySavesFromItsOwnCriterion) {
  const Config c = conf(
      "blacklist {\n  wwid \".*\"\n  devnode \"^sdc\"\n}\n"
      "blacklist_exceptions {\n  wwid \"a1$\"\n  devnode \"^sd[b-z]\"\n}\n");
  EXPECT_FALSE(filter_path(c, scsi("sdb", kA), false).blacklisted);  // both criteria excepted
  // sdc: its devnode is excepted (the exception wins over "^sdc") but its
  // WWID is blacklisted all the same.
  const FilterVerdict v = filter_path(c, scsi("sdc", kB), false);
  EXPECT_TRUE(v.blacklisted);
  EXPECT_EQ(v.why, "wwid \".*\"");
}

TEST(DiscoveryFilter, DeviceEntriesAndProductBlacklist) {
  const Config c = conf(
      "blacklist {\n  device {\n    vendor ACME\n    product \"^Tape\"\n  }\n  device {\n    vendor \"^OLD\"\n  }\n}\n"
      "blacklist_exceptions {\n  device {\n    vendor ACME\n    product \"Tape 2000\"\n  }\n}\n"
      "devices {\n  device {\n    vendor ACME\n    product Array\n    product_blacklist \"Universal Xport\"\n  }\n}\n");
  ScannedPath tape = scsi("sdb", kA);
  tape.product = "Tape 1000";
  EXPECT_TRUE(filter_path(c, tape, false).blacklisted);
  tape.product = "Tape 2000";
  EXPECT_FALSE(filter_path(c, tape, false).blacklisted);
  ScannedPath old = scsi("sdc", kB);
  old.vendor = "OLDCO";
  EXPECT_TRUE(filter_path(c, old, false).blacklisted);  // a vendor-only entry
  ScannedPath xport = scsi("sdd", kC);
  xport.product = "Universal Xport";
  const FilterVerdict v = filter_path(c, xport, false);
  EXPECT_TRUE(v.blacklisted);
  EXPECT_NE(v.why.find("product_blacklist"), std::string::npos) << v.why;
  EXPECT_FALSE(filter_path(c, scsi("sde", kD), false).blacklisted);
}

TEST(DiscoveryFilter, Protocol) {
  const Config c = conf("blacklist {\n  protocol \"scsi:(iscsi|ata)\"\n}\n");
  ScannedPath p = scsi("sdb", kA);
  p.protocol = "scsi:iscsi";
  EXPECT_TRUE(filter_path(c, p, false).blacklisted);
  p.protocol = "scsi:fcp";
  EXPECT_FALSE(filter_path(c, p, false).blacklisted);
}

TEST(DiscoveryFilter, UdevProperties) {
  const Config none;
  ScannedPath p = scsi("sdb", kA);
  // Not known: the property criterion is not applied.
  EXPECT_FALSE(filter_path(none, p, false).blacklisted);
  // udev saw the WWID's property but no proper identifier (built-in
  // exception "(SCSI_IDENT_|ID_WWN)"): "udev property missing".
  p.udev_properties = std::vector<std::pair<std::string, std::string>>{{"DEVTYPE", "disk"}, {"ID_SERIAL", "x"}};
  const FilterVerdict v = filter_path(none, p, false);
  EXPECT_TRUE(v.blacklisted);
  EXPECT_NE(v.why.find("ID_SERIAL"), std::string::npos) << v.why;
  p.udev_properties->emplace_back("SCSI_IDENT_LUN_NAA_REGEXT", "600a");
  EXPECT_FALSE(filter_path(none, p, false).blacklisted);
  // Without the uid attribute, nothing to say.
  p.udev_properties = std::vector<std::pair<std::string, std::string>>{{"DEVTYPE", "disk"}};
  EXPECT_FALSE(filter_path(none, p, false).blacklisted);
  // NVMe: ID_WWN is its uid attribute and an exception at once.
  ScannedPath n = nvme("nvme0n1", "eui.1");
  n.udev_properties = std::vector<std::pair<std::string, std::string>>{{"ID_WWN", "eui.1"}};
  EXPECT_FALSE(filter_path(none, n, false).blacklisted);
  // A blacklist entry: the first property an entry matches decides.
  const Config c = conf("blacklist {\n  property \"^DEVTYPE$\"\n}\n");
  p.udev_properties = std::vector<std::pair<std::string, std::string>>{{"DEVTYPE", "disk"}, {"ID_WWN", "x"}};
  EXPECT_TRUE(filter_path(c, p, false).blacklisted);
  p.udev_properties = std::vector<std::pair<std::string, std::string>>{{"ID_WWN", "x"}, {"DEVTYPE", "disk"}};
  EXPECT_FALSE(filter_path(c, p, false).blacklisted);
}

// ---------------------------------------------------------------------------
// find_multipaths

TEST(DiscoveryFindMultipaths, EachMode) {
  using F = FindMultipaths;
  struct Case {
    F mode;
    std::size_t paths;
    bool in_file;
    bool has_map;
    bool take;
  };
  const Case cases[] = {
      {F::kOff, 1, false, false, true},      {F::kGreedy, 1, false, false, true},
      {F::kStrict, 1, false, false, false},  {F::kStrict, 3, false, false, false},
      {F::kStrict, 1, true, false, true},    {F::kOn, 1, false, false, false},
      {F::kOn, 2, false, false, true},       {F::kOn, 1, true, false, true},
      {F::kSmart, 1, false, false, false},   {F::kSmart, 2, false, false, true},
      {F::kStrict, 1, false, true, true},    {F::kOn, 1, false, true, true},
  };
  for (const Case& k : cases) {
    const FindDecision d = decide_find_multipaths(k.mode, k.paths, k.in_file, k.has_map);
    EXPECT_EQ(d.take, k.take) << find_multipaths_name(k.mode) << " paths=" << k.paths << " in_file=" << k.in_file
                              << " has_map=" << k.has_map << ": " << d.why;
    EXPECT_FALSE(d.why.empty());
  }
}

TEST(DiscoveryFindMultipaths, AssemblyPerMode) {
  // A: two paths; B: one path; C: one path, in the wwids file.
  const SysfsScan scan = scan_of({scsi("sda", kA), scsi("sdb", kB), scsi("sdc", kC), scsi("sdd", kA)});
  KnownState known;
  known.wwids = {kC};
  const auto maps_for = [&](const std::string& mode) {
    return wwids_of(assemble_maps(conf("defaults {\n  find_multipaths " + mode + "\n}\n"), scan, {}, known));
  };
  const std::vector<std::string> all = {kA, kB, kC};
  EXPECT_EQ(maps_for("greedy"), all);
  EXPECT_EQ(maps_for("no"), all);
  EXPECT_EQ(maps_for("yes"), (std::vector<std::string>{kA, kC}));
  EXPECT_EQ(maps_for("smart"), (std::vector<std::string>{kA, kC}));
  EXPECT_EQ(maps_for("strict"), (std::vector<std::string>{kC}));
  // Without a defaults section: strict, the built-in default.
  const Assembly a = assemble_maps(Config{}, scan, {}, known);
  EXPECT_EQ(wwids_of(a), (std::vector<std::string>{kC}));
  ASSERT_EQ(a.left_out.size(), 3U);
  EXPECT_EQ(a.left_out[0].dev, "sda");
  EXPECT_EQ(a.left_out[0].reason, LeftOut::Reason::kNotMultipathed);
  EXPECT_EQ(a.left_out[1].dev, "sdb");
  EXPECT_EQ(a.left_out[2].dev, "sdd");
  // Maps of WWIDs the file lacks are to be remembered.
  const Assembly g = assemble_maps(conf("defaults {\n  find_multipaths greedy\n}\n"), scan, {}, known);
  EXPECT_EQ(g.new_wwids, (std::vector<std::string>{kA, kB}));
  ASSERT_EQ(g.maps[0].paths.size(), 2U);
  EXPECT_EQ(g.maps[0].paths[1].dev, "sdd");
}

TEST(DiscoveryFindMultipaths, AnExistingMapIsKeptInEveryMode) {
  KnownState known;
  known.devices = {{"mpathb", kB}};
  const Assembly a = assemble_maps(Config{}, scan_of({scsi("sdb", kB)}), {}, known);
  ASSERT_EQ(a.maps.size(), 1U);
  EXPECT_EQ(a.maps[0].current_name, "mpathb");
  EXPECT_EQ(a.maps[0].why, "a map for this WWID exists");
}

// ---------------------------------------------------------------------------
// Paths left out

TEST(DiscoveryAssembly, PathsLeftOutAndWhy) {
  ScannedPath nowwid = scsi("sda", "");
  ScannedPath usb = scsi("sdb", kB);
  usb.protocol = "scsi:usb";
  ScannedPath black = scsi("sdc", kC);
  const Config c = conf("defaults {\n  find_multipaths greedy\n}\nblacklist {\n  wwid c3$\n}\n");
  const Assembly a = assemble_maps(c, scan_of({nowwid, usb, black, scsi("sdd", kD)}), {}, {});
  EXPECT_EQ(wwids_of(a), (std::vector<std::string>{kD}));
  ASSERT_EQ(a.left_out.size(), 3U);
  EXPECT_EQ(left(a, "sda")->reason, LeftOut::Reason::kNoWwid);
  EXPECT_EQ(left(a, "sdb")->reason, LeftOut::Reason::kUsb);
  EXPECT_EQ(left(a, "sdc")->reason, LeftOut::Reason::kBlacklisted);
  EXPECT_EQ(left(a, "sdc")->why, "blacklisted: wwid \"c3$\"");
  // allow_usb_devices lets the USB disk in.
  const Config usb_ok = conf("defaults {\n  find_multipaths greedy\n  allow_usb_devices yes\n}\n");
  EXPECT_EQ(wwids_of(assemble_maps(usb_ok, scan_of({usb}), {}, {})), (std::vector<std::string>{kB}));
}

TEST(DiscoveryAssembly, SizesMustAgree) {
  const Config greedy = conf("defaults {\n  find_multipaths greedy\n}\n");
  // A path that reports no size does not count against the others.
  Assembly a = assemble_maps(greedy, scan_of({scsi("sda", kA, 0), scsi("sdb", kA, 4096), scsi("sdc", kA, 4096)}),
                             {}, {});
  ASSERT_EQ(a.maps.size(), 1U);
  EXPECT_EQ(a.maps[0].size_sectors, 4096U);
  EXPECT_EQ(a.maps[0].paths.size(), 3U);
  // Two sizes behind one WWID: no map at all.
  a = assemble_maps(greedy, scan_of({scsi("sda", kA, 4096), scsi("sdb", kA, 8192), scsi("sdc", kB)}), {}, {});
  EXPECT_EQ(wwids_of(a), (std::vector<std::string>{kB}));
  ASSERT_EQ(a.left_out.size(), 2U);
  EXPECT_EQ(a.left_out[0].reason, LeftOut::Reason::kSizeMismatch);
  EXPECT_EQ(a.left_out[1].reason, LeftOut::Reason::kSizeMismatch);
  // No size anywhere.
  a = assemble_maps(greedy, scan_of({scsi("sda", kA, 0)}), {}, {});
  EXPECT_TRUE(a.maps.empty());
  EXPECT_EQ(a.left_out[0].reason, LeftOut::Reason::kNoSize);
}

// ---------------------------------------------------------------------------
// Names

TEST(DiscoveryNames, AliasElseWwid) {
  const Config c = conf(
      "defaults {\n  find_multipaths greedy\n  path_grouping_policy multibus\n}\n"
      "multipaths {\n  multipath {\n    wwid " +
      std::string(kA) + "\n    alias yellow\n  }\n}\n");
  const Assembly a = assemble_maps(c, scan_of({scsi("sda", kA), scsi("sdb", kB)}), {}, {});
  ASSERT_EQ(a.maps.size(), 2U);
  EXPECT_EQ(a.maps[0].name, "yellow");
  EXPECT_EQ(a.maps[0].name_source, PlannedMap::NameSource::kAlias);
  EXPECT_EQ(a.maps[0].uuid, std::string("mpath-") + kA);
  EXPECT_EQ(a.maps[1].name, kB);  // user_friendly_names is off
  EXPECT_EQ(a.maps[1].name_source, PlannedMap::NameSource::kWwid);
  EXPECT_EQ(a.maps[1].settings.path_grouping_policy.value, PgPolicy::kMultibus);
  EXPECT_FALSE(a.bindings_changed);
  // The multipaths alias is in the bindings, as multipathd keeps it.
  ASSERT_NE(a.bindings.for_alias("yellow"), nullptr);
  EXPECT_EQ(a.bindings.for_alias("yellow")->wwid, kA);
}

constexpr const char* kFriendly = "defaults {\n  find_multipaths greedy\n  user_friendly_names yes\n}\n";

TEST(DiscoveryNames, FriendlyNamesAreAllocatedAndKept) {
  const Config c = conf(kFriendly);
  const SysfsScan scan = scan_of({scsi("sda", kA), scsi("sdb", kB), scsi("sdc", kC)});
  const Assembly first = assemble_maps(c, scan, {}, {});
  EXPECT_EQ(names_of(first), (std::vector<std::string>{"mpatha", "mpathb", "mpathc"}));
  EXPECT_EQ(first.maps[0].name_source, PlannedMap::NameSource::kNewBinding);
  EXPECT_TRUE(first.bindings_changed);
  ASSERT_EQ(first.bindings.entries().size(), 3U);
  EXPECT_EQ(first.bindings.entries()[2], (Binding{"mpathc", kC}));

  // Next time the bindings give the same names, whatever order the LUNs
  // come in, and nothing changes.
  const Assembly again = assemble_maps(c, scan_of({scsi("sda", kC), scsi("sdb", kA)}), first.bindings, {});
  EXPECT_EQ(names_of(again), (std::vector<std::string>{"mpathc", "mpatha"}));
  EXPECT_EQ(again.maps[0].name_source, PlannedMap::NameSource::kBinding);
  EXPECT_FALSE(again.bindings_changed);
  EXPECT_EQ(again.bindings, first.bindings);
}

TEST(DiscoveryNames, FirstFreeIdSkipsNamesOtherDevicesHold) {
  const Config c = conf(kFriendly);
  Bindings b;
  b.add("mpatha", kA);
  b.add("mpathc", kC);
  // The gap: mpathb.
  Assembly a = assemble_maps(c, scan_of({scsi("sdd", kD)}), b, {});
  EXPECT_EQ(names_of(a), (std::vector<std::string>{"mpathb"}));
  // A device of another WWID is called mpathb: the next free is mpathd.
  KnownState known;
  known.devices = {{"mpathb", kB}};
  a = assemble_maps(c, scan_of({scsi("sdd", kD)}), b, known);
  EXPECT_EQ(names_of(a), (std::vector<std::string>{"mpathd"}));
  // Past z comes aa.
  Bindings full;
  for (unsigned id = 1; id <= 26; ++id) {
    full.add(friendly_name("mpath", id), "w" + std::to_string(id));
  }
  a = assemble_maps(c, scan_of({scsi("sdd", kD)}), full, {});
  EXPECT_EQ(names_of(a), (std::vector<std::string>{"mpathaa"}));
}

TEST(DiscoveryNames, PrefixFromDevicesEntry) {
  const Config c = parse_multipath_conf(
      [] {
        std::ifstream in((fs::path(__FILE__).parent_path() / "data" / "multipath" / "friendly.conf").string());
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
      }(),
      "friendly.conf");
  ASSERT_TRUE(c.warnings.empty());
  const std::string pinned = "3600a0b80000000000000000000000007";
  const Assembly a = assemble_maps(
      c, scan_of({nvme("nvme0n1", "eui.0025388b71b1a7e9"), nvme("nvme1n1", "eui.0025388b71b1a7e9"),
                  scsi("sda", pinned), scsi("sdb", pinned), scsi("sdc", kC)}),
      {}, {});
  // find_multipaths yes: sdc alone is left out.
  EXPECT_EQ(names_of(a), (std::vector<std::string>{"nvma", "pinned"}));
  EXPECT_EQ(a.maps[0].paths.size(), 2U);
  EXPECT_EQ(a.maps[0].settings.path_checker.value, "none");  // the built-in NVMe entry
  EXPECT_EQ(left(a, "sdc")->reason, LeftOut::Reason::kNotMultipathed);
}

TEST(DiscoveryNames, ReadOnlyBindingsFallBackToTheWwid) {
  AssemblyOptions ro;
  ro.bindings_read_only = true;
  const Assembly a = assemble_maps(conf(kFriendly), scan_of({scsi("sda", kA)}), {}, {}, ro);
  EXPECT_EQ(names_of(a), (std::vector<std::string>{kA}));
  EXPECT_FALSE(a.bindings_changed);
  ASSERT_EQ(a.notes.size(), 1U);
  EXPECT_NE(a.notes[0].find("read-only"), std::string::npos);
}

TEST(DiscoveryNames, AnExistingMapKeepsItsFriendlyName) {
  const Config c = conf(kFriendly);
  KnownState known;
  known.devices = {{"mpathq", kA}};
  // The bindings file lost it: the map keeps mpathq and the binding returns.
  Assembly a = assemble_maps(c, scan_of({scsi("sda", kA)}), {}, known);
  EXPECT_EQ(names_of(a), (std::vector<std::string>{"mpathq"}));
  EXPECT_EQ(a.maps[0].current_name, "mpathq");
  EXPECT_TRUE(a.bindings_changed);
  EXPECT_EQ(a.bindings.for_wwid(kA)->alias, "mpathq");
  // The bindings give its name to another WWID: it gets a new one.
  Bindings b;
  b.add("mpathq", kB);
  a = assemble_maps(c, scan_of({scsi("sda", kA)}), b, known);
  EXPECT_EQ(names_of(a), (std::vector<std::string>{"mpatha"}));
  EXPECT_EQ(a.maps[0].current_name, "mpathq");  // the caller renames it
}

TEST(DiscoveryNames, ABoundNameAnotherDeviceHoldsFallsBackToTheWwid) {
  Bindings b;
  b.add("mpatha", kA);
  KnownState known;
  known.devices = {{"mpatha", ""}};  // a device that is no multipath map
  const Assembly a = assemble_maps(conf(kFriendly), scan_of({scsi("sda", kA)}), b, known);
  EXPECT_EQ(names_of(a), (std::vector<std::string>{kA}));
  EXPECT_EQ(a.maps[0].name_source, PlannedMap::NameSource::kWwid);
}

TEST(DiscoveryNames, AMultipathsAliasOverridesAFileBinding) {
  const Config c = conf(std::string(kFriendly) + "multipaths {\n  multipath {\n    wwid " + kA +
                        "\n    alias mpatha\n  }\n}\n");
  Bindings b;
  b.add("mpatha", kB);  // the file says otherwise: that line goes
  const Assembly a = assemble_maps(c, scan_of({scsi("sda", kA), scsi("sdb", kB)}), b, {});
  EXPECT_EQ(names_of(a), (std::vector<std::string>{"mpatha", "mpathb"}));
  EXPECT_EQ(a.maps[0].name_source, PlannedMap::NameSource::kAlias);
  EXPECT_EQ(a.maps[1].name_source, PlannedMap::NameSource::kNewBinding);
  EXPECT_TRUE(a.bindings_changed);
  EXPECT_EQ(a.bindings.for_alias("mpatha")->wwid, kA);
  ASSERT_FALSE(a.notes.empty());
  EXPECT_NE(a.notes[0].find("conflicts"), std::string::npos);
}

TEST(DiscoveryNames, ANameHeldByAnotherDeviceLeavesTheMapOut) {
  const Config c = conf("defaults {\n  find_multipaths greedy\n}\nmultipaths {\n  multipath {\n    wwid " +
                        std::string(kA) + "\n    alias data\n  }\n}\n");
  KnownState known;
  known.devices = {{"data", ""}};
  Assembly a = assemble_maps(c, scan_of({scsi("sda", kA)}), {}, known);
  EXPECT_TRUE(a.maps.empty());
  EXPECT_EQ(left(a, "sda")->reason, LeftOut::Reason::kNameTaken);
  // A WWID no ubdm device could be named after.
  ScannedPath odd = scsi("sdb", "1ACME disk");
  a = assemble_maps(conf("defaults {\n  find_multipaths greedy\n}\n"), scan_of({odd}), {}, {});
  EXPECT_TRUE(a.maps.empty());
  EXPECT_EQ(left(a, "sdb")->reason, LeftOut::Reason::kBadName);
}

// ---------------------------------------------------------------------------
// Friendly names, the bindings file and the wwids file

TEST(DiscoveryBindings, FriendlyNameIds) {
  EXPECT_EQ(friendly_name("mpath", 1), "mpatha");
  EXPECT_EQ(friendly_name("mpath", 26), "mpathz");
  EXPECT_EQ(friendly_name("mpath", 27), "mpathaa");
  EXPECT_EQ(friendly_name("mpath", 702), "mpathzz");
  EXPECT_EQ(friendly_name("mpath", 703), "mpathaaa");
  for (unsigned id : {1U, 2U, 26U, 27U, 52U, 53U, 702U, 703U, 18278U, 18279U, 2147483647U}) {
    EXPECT_EQ(friendly_id(friendly_name("lun", id), "lun"), id) << id;
  }
  EXPECT_FALSE(friendly_id("mpath", "mpath"));
  EXPECT_FALSE(friendly_id("mpathA", "mpath"));
  EXPECT_FALSE(friendly_id("mpatha1", "mpath"));
  EXPECT_FALSE(friendly_id("lunb", "mpath"));
  EXPECT_FALSE(friendly_id("mpathzzzzzzz", "mpath"));    // beyond an int
  EXPECT_FALSE(friendly_id("mpathaaaaaaaa", "mpath"));  // 8 letters
}

TEST(DiscoveryBindings, OrderParseAndFormat) {
  Bindings b;
  EXPECT_EQ(b.add("mpathaa", "w27"), Bindings::Add::kAdded);
  EXPECT_EQ(b.add("mpathz", "w26"), Bindings::Add::kAdded);
  EXPECT_EQ(b.add("mpatha", "w1"), Bindings::Add::kAdded);
  EXPECT_EQ(b.add("mpatha", "w1"), Bindings::Add::kExists);
  EXPECT_EQ(b.add("mpatha", "w9"), Bindings::Add::kConflict);
  ASSERT_EQ(b.entries().size(), 3U);
  EXPECT_EQ(b.entries()[0].alias, "mpatha");
  EXPECT_EQ(b.entries()[1].alias, "mpathz");
  EXPECT_EQ(b.entries()[2].alias, "mpathaa");

  const std::string text = format_bindings(b);
  EXPECT_NE(text.find("mpatha w1\nmpathz w26\nmpathaa w27\n"), std::string::npos) << text;
  EXPECT_EQ(parse_bindings(text), b);

  // A file as multipathd writes it: comments, blanks, tabs; and lines
  // multipathd would not use either.
  std::vector<std::string> notes;
  const Bindings p = parse_bindings(
      "# kept by a multipath daemon\n"
      "#\n"
      "mpathb\t3600b   # trailing comment\n"
      "\n"
      "mpatha 3600a extra words\n"
      "mpathc\n"
      "mpathb 3600x\n"
      "mpathd " + std::string(128, '3') + "\r\n",
      &notes);
  ASSERT_EQ(p.entries().size(), 2U);
  EXPECT_EQ(p.entries()[0], (Binding{"mpatha", "3600a"}));
  EXPECT_EQ(p.entries()[1], (Binding{"mpathb", "3600b"}));
  ASSERT_EQ(notes.size(), 4U);
  EXPECT_NE(notes[0].find("line 5"), std::string::npos) << notes[0];
  EXPECT_NE(notes[1].find("line 6"), std::string::npos) << notes[1];
  EXPECT_NE(notes[2].find("line 7: alias mpathb is bound to 3600b"), std::string::npos) << notes[2];
  EXPECT_NE(notes[3].find("line 8"), std::string::npos) << notes[3];
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/ubdm-discovery-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

TEST(DiscoveryBindings, FilesRoundTrip) {
  TempDir dir;
  const std::string bindings = dir.sub("state/bindings");
  EXPECT_TRUE(read_bindings_file(bindings).empty());  // missing: empty
  Bindings b;
  b.add("mpathb", kB);
  b.add("mpatha", kA);
  write_bindings_file(bindings, b);
  EXPECT_EQ(read_bindings_file(bindings), b);
  b.add("mpathc", kC);
  write_bindings_file(bindings, b);  // replaced whole
  EXPECT_EQ(read_bindings_file(bindings), b);
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.sub("state"))) {
    ++files;
  }
  EXPECT_EQ(files, 1U);  // no temporary file left behind

  const std::string wwids = dir.sub("state/wwids");
  EXPECT_TRUE(read_wwids_file(wwids).empty());
  write_wwids_file(wwids, {kA, kB});
  EXPECT_EQ(read_wwids_file(wwids), (std::vector<std::string>{kA, kB}));
}

TEST(DiscoveryBindings, WwidsFileFormat) {
  const std::string text = format_wwids({kA, kB});
  EXPECT_NE(text.find(std::string("/") + kA + "/\n/" + kB + "/\n"), std::string::npos) << text;
  EXPECT_EQ(parse_wwids(text), (std::vector<std::string>{kA, kB}));
  // Comments, a WWID struck out with '#', duplicates, broken lines.
  EXPECT_EQ(parse_wwids("# header\n/3600a/\n#3600b/\n/3600c/\n/3600a/\n/unterminated\n//\n/3600d/ trailing\n"),
            (std::vector<std::string>{"3600a", "3600c", "3600d"}));
}

}  // namespace
}  // namespace ubdm::discovery
