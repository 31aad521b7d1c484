// SPDX-License-Identifier: MIT
// multipath.conf: the parser (every section, quoting, comments, errors with
// their line, warnings for what is not ours) and the precedence of the
// sections when one LUN's settings are resolved.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "discovery/multipath_conf.hpp"
#include "ubdm/error.hpp"

namespace ubdm::discovery {
namespace {

namespace fs = std::filesystem;

std::string data_file(const std::string& name) {
  return (fs::path(__FILE__).parent_path() / "data" / "multipath" / name).string();
}

std::vector<Warning> warnings_of(const Config& c, Warning::Kind k) {
  std::vector<Warning> out;
  std::copy_if(c.warnings.begin(), c.warnings.end(), std::back_inserter(out),
               [&](const Warning& w) { return w.kind == k; });
  return out;
}

const Warning* warning_for(const Config& c, const std::string& keyword) {
  for (const Warning& w : c.warnings) {
    if (w.keyword == keyword) {
      return &w;
    }
  }
  return nullptr;
}

// The message of the Error that parsing `text` throws ("" if none).
std::string parse_error(const std::string& text) {
  try {
    parse_multipath_conf(text, "test.conf");
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), EINVAL);
    return e.what();
  }
  return "";
}

// ---------------------------------------------------------------------------
// Parsing

// detect_prio is acted on (the daemon's ALUA probes): kept, and not among
// the keywords reported as not used; its neighbours in that list still are.
TEST(MultipathConf, DetectPrioIsKeptAndNotReportedAsUnused) {
  const Config c = parse_multipath_conf("defaults {\n detect_prio no\n detect_checker no\n}\n", "test.conf");
  EXPECT_EQ(c.defaults.other.at("detect_prio"), "no");
  EXPECT_EQ(warning_for(c, "detect_prio"), nullptr);
  ASSERT_NE(warning_for(c, "detect_checker"), nullptr);
  EXPECT_EQ(warning_for(c, "detect_checker")->kind, Warning::Kind::kNotUsed);
}

TEST(MultipathConf, FullFileReadsEverySection) {
  const Config c = load_multipath_conf(data_file("full.conf"));
  EXPECT_EQ(c.source, data_file("full.conf"));

  const Defaults& d = c.defaults;
  EXPECT_EQ(d.polling_interval, 10U);
  EXPECT_EQ(d.max_polling_interval, 60U);
  EXPECT_EQ(d.path_selector, "queue-length 0");
  EXPECT_EQ(d.path_grouping_policy, PgPolicy::kMultibus);
  EXPECT_EQ(d.uid_attribute, "ID_SERIAL");
  EXPECT_EQ(d.prio, "const");
  EXPECT_EQ(d.features, "0");
  EXPECT_EQ(d.path_checker, "directio");
  EXPECT_EQ(d.rr_min_io, 1000U);
  EXPECT_EQ(d.rr_min_io_rq, 4U);
  EXPECT_EQ(d.rr_weight, RrWeight::kUniform);
  EXPECT_EQ(d.failback, (Failback{Failback::Kind::kImmediate, 0}));
  EXPECT_EQ(d.no_path_retry, (NoPathRetry{NoPathRetry::Kind::kRetries, 12}));
  EXPECT_EQ(d.user_friendly_names, true);
  EXPECT_EQ(d.alias_prefix, "lun");
  EXPECT_EQ(d.find_multipaths, FindMultipaths::kGreedy);
  EXPECT_EQ(d.other.at("flush_on_last_del"), "yes");
  EXPECT_EQ(d.other.at("dev_loss_tmo"), "600");
  EXPECT_EQ(d.other.at("max_fds"), "8192");

  ASSERT_EQ(c.blacklist.wwid.size(), 1U);
  EXPECT_EQ(c.blacklist.wwid[0].text(), "36001405aaaaaaaaaaaaaaaaaaaaaaaaa");
  ASSERT_EQ(c.blacklist.devnode.size(), 2U);
  EXPECT_EQ(c.blacklist.devnode[1].text(), "^hd[a-z]");
  EXPECT_TRUE(c.blacklist.devnode[0].matches("loop3"));
  EXPECT_FALSE(c.blacklist.devnode[0].matches("sdb"));
  ASSERT_EQ(c.blacklist.property.size(), 1U);
  ASSERT_EQ(c.blacklist.protocol.size(), 1U);
  EXPECT_TRUE(c.blacklist.protocol[0].matches("scsi:ata"));
  ASSERT_EQ(c.blacklist.device.size(), 1U);
  EXPECT_TRUE(c.blacklist.device[0].vendor->matches("ACME"));
  EXPECT_TRUE(c.blacklist.device[0].product->matches("Tape42"));
  EXPECT_FALSE(c.blacklist.device[0].product->matches("Disk"));

  EXPECT_EQ(c.blacklist_exceptions.devnode.size(), 1U);
  ASSERT_EQ(c.blacklist_exceptions.wwid.size(), 1U);
  EXPECT_TRUE(c.blacklist_exceptions.wwid[0].matches("3600a0b80000000000000000000000002"));
  EXPECT_FALSE(c.blacklist_exceptions.wwid[0].matches("3600a0b80000000000000000000000003"));
  EXPECT_EQ(c.blacklist_exceptions.property.size(), 1U);

  ASSERT_EQ(c.multipaths.size(), 2U);
  const MultipathEntry& yellow = c.multipaths[0];
  EXPECT_EQ(yellow.wwid, "3600a0b80000000000000000000000001");
  EXPECT_EQ(yellow.alias, "yellow");
  EXPECT_EQ(yellow.path_grouping_policy, PgPolicy::kFailover);
  EXPECT_EQ(yellow.path_selector, "round-robin 0");
  EXPECT_EQ(yellow.failback, (Failback{Failback::Kind::kManual, 0}));
  EXPECT_EQ(yellow.rr_weight, RrWeight::kPriorities);
  EXPECT_EQ(yellow.no_path_retry, (NoPathRetry{NoPathRetry::Kind::kQueue, 0}));
  EXPECT_EQ(yellow.rr_min_io_rq, 100U);
  EXPECT_EQ(c.multipaths[1].alias, "red");
  EXPECT_EQ(c.multipaths[1].prio, "alua");
  EXPECT_EQ(c.multipath_for("1ACME_____disk0815"), &c.multipaths[1]);
  EXPECT_EQ(c.multipath_for("nope"), nullptr);

  ASSERT_EQ(c.devices.size(), 2U);
  const DeviceEntry& acme = c.devices[0];
  EXPECT_EQ(acme.vendor->text(), "ACME    ");  // blanks inside quotes are kept
  EXPECT_EQ(acme.product->text(), "Array 2.5\" (RAID)");
  EXPECT_TRUE(acme.product->matches("Array 2.5\" RAID"));
  EXPECT_EQ(acme.revision->text(), "^4");
  EXPECT_EQ(acme.path_grouping_policy, PgPolicy::kGroupByPrio);
  EXPECT_EQ(acme.path_checker, "tur");
  EXPECT_EQ(acme.features, "1 queue_if_no_path");
  EXPECT_EQ(acme.hardware_handler, "1 alua");
  EXPECT_EQ(acme.prio, "alua");
  EXPECT_EQ(acme.prio_args, "exclusive_pref_bit");
  EXPECT_EQ(acme.failback, (Failback{Failback::Kind::kDeferred, 30}));
  EXPECT_EQ(acme.product_blacklist->text(), "Universal Xport");
  EXPECT_EQ(acme.line, 69);
  EXPECT_EQ(c.devices[1].alias_prefix, "acme");

  EXPECT_EQ(c.overrides.no_path_retry, (NoPathRetry{NoPathRetry::Kind::kFail, 0}));
  EXPECT_EQ(c.overrides.other.at("dev_loss_tmo"), "60");
  ASSERT_EQ(c.overrides_protocols.size(), 1U);
  EXPECT_EQ(c.overrides_protocols[0].type, "scsi:fcp");
  EXPECT_EQ(c.overrides_protocols[0].other.at("fast_io_fail_tmo"), "5");

  // What is not ubdm's is a warning, never an error.
  EXPECT_EQ(warnings_of(c, Warning::Kind::kNotUsed).size(), 5U);  // 3 defaults, overrides, protocol
  const auto deprecated = warnings_of(c, Warning::Kind::kDeprecated);
  ASSERT_EQ(deprecated.size(), 2U);
  EXPECT_EQ(deprecated[0].keyword, "getuid_callout");
  EXPECT_EQ(deprecated[1].keyword, "bindings_file");
  const auto unknown = warnings_of(c, Warning::Kind::kUnknownKeyword);
  ASSERT_EQ(unknown.size(), 1U);
  EXPECT_EQ(unknown[0].keyword, "udev_dir");
  EXPECT_EQ(unknown[0].line, 29);
  EXPECT_NE(unknown[0].message.find("full.conf line 29: unknown keyword 'udev_dir' in 'defaults'"), std::string::npos)
      << unknown[0].message;
  EXPECT_EQ(c.warnings.size(), 8U);
}

TEST(MultipathConf, CommentedOutTemplateIsEmpty) {
  const Config c = load_multipath_conf(data_file("commented_out.conf"));
  EXPECT_TRUE(c.warnings.empty());
  EXPECT_FALSE(c.defaults.polling_interval);
  EXPECT_FALSE(c.defaults.path_grouping_policy);
  EXPECT_TRUE(c.blacklist.devnode.empty());
  EXPECT_TRUE(c.multipaths.empty());
}

TEST(MultipathConf, QuotingAndComments) {
  const Config c = load_multipath_conf(data_file("quoting.conf"));
  EXPECT_TRUE(c.warnings.empty()) << c.warnings[0].message;
  ASSERT_EQ(c.devices.size(), 1U);
  EXPECT_EQ(c.devices[0].vendor->text(), "SSD Co");
  // Inside quotes '#' and '!' are text; '""' is one quote.
  EXPECT_EQ(c.devices[0].product->text(), "2.5\" SSD #1 !new");
  EXPECT_EQ(c.devices[0].prio_args, "");  // an empty quoted string is a value
  EXPECT_EQ(c.devices[0].path_selector, "historical-service-time 0");
  EXPECT_EQ(c.defaults.alias_prefix, "x y");  // "defaults{": the brace needs no blank
}

TEST(MultipathConf, CommentsAndBlankLinesAnywhere) {
  const Config c = parse_multipath_conf(
      "  # leading comment\n"
      "\n"
      "defaults { # comment after a brace\n"
      "\tpolling_interval 7 ! bang comment\n"
      "\tfailback followover#glued comment\n"
      "\r\n"
      "} # done\n");
  EXPECT_TRUE(c.warnings.empty());
  EXPECT_EQ(c.defaults.polling_interval, 7U);
  EXPECT_EQ(c.defaults.failback, (Failback{Failback::Kind::kFollowover, 0}));
}

TEST(MultipathConf, MissingFileIsEmptyConfig) {
  const Config c = load_multipath_conf("/nonexistent/ubdm/multipath.conf");
  EXPECT_TRUE(c.warnings.empty());
  EXPECT_TRUE(c.devices.empty());
  EXPECT_EQ(resolve_find_multipaths(c), FindMultipaths::kStrict);
}

TEST(MultipathConf, ErrorsNameTheLine) {
  struct Case {
    const char* text;
    const char* expect;
  };
  const Case cases[] = {
      {"defaults {\n}\n}\n", "test.conf line 3: '}' closes nothing"},
      {"blacklist {\n  device {\n    vendor X\n}\n", "test.conf line 1: 'blacklist' is opened here and never closed"},
      {"defaults {\n  polling_interval\n}\n", "test.conf line 2: 'polling_interval' has no value"},
      {"defaults {\n  alias_prefix # nothing\n}\n", "test.conf line 2: 'alias_prefix' has no value"},
      {"defaults\n{\n}\n", "test.conf line 1: 'defaults' opens a section"},
      {"{\n}\n", "test.conf line 1: '{' must follow a section name"},
      {"devices {\n  device {\n    vendor \"ACME\n  }\n}\n", "test.conf line 3: a quoted string is not closed"},
      {"blacklist {\n  devnode \"^(sd\"\n}\n", "test.conf line 2: invalid regular expression \"^(sd\""},
      {"devices {\n device { vendor X\n }\n}\n", "test.conf line 2: nothing may follow '{'"},
      {"defaults {\n} extra\n", "test.conf line 2: '}' must be alone on its line"},
      {"multipaths {\n  multipath\n}\n", "test.conf line 2: 'multipath' opens a section"},
  };
  for (const Case& k : cases) {
    const std::string what = parse_error(k.text);
    EXPECT_NE(what.find(k.expect), std::string::npos) << "text:\n" << k.text << "error: " << what;
  }
}

TEST(MultipathConf, UnknownKeywordsAndSectionsAreWarnings) {
  const Config c = parse_multipath_conf(
      "stray_keyword 1\n"                           // 1
      "defaults {\n"                                // 2
      "  no_such_keyword 5\n"                       // 3
      "  device {\n"                                // 4: no device subsection in defaults
      "    vendor X\n"                              // 5
      "  }\n"                                       // 6
      "  polling_interval 9\n"                      // 7
      "}\n"                                         // 8
      "future_section {\n"                          // 9
      "  nested {\n"                                // 10
      "    defaults {\n"                            // 11
      "    }\n"                                     // 12
      "  }\n"                                       // 13
      "  polling_interval 1\n"                      // 14
      "}\n"                                         // 15
      "multipaths {\n"                              // 16
      "  wwid 3600\n"                               // 17: a multipath keyword, not a multipaths one
      "  multipath {\n"                             // 18
      "    wwid 36001\n"                            // 19
      "    path_checker tur\n"                      // 20: not a multipaths keyword
      "  }\n"                                       // 21
      "}\n"                                         // 22
      "devices {\n"                                 // 23
      "  device {\n"                                // 24
      "    vendor V\n"                              // 25
      "    product P\n"                             // 26
      "    find_multipaths yes\n"                   // 27: a defaults keyword
      "  }\n"                                       // 28
      "}\n",
      "t.conf");
  // The file goes on being read after each of them.
  EXPECT_EQ(c.defaults.polling_interval, 9U);  // the skipped section's 1 did not count
  ASSERT_EQ(c.multipaths.size(), 1U);
  EXPECT_FALSE(c.multipaths[0].path_checker);
  ASSERT_EQ(c.devices.size(), 1U);
  EXPECT_FALSE(c.defaults.find_multipaths);

  const auto unknown = warnings_of(c, Warning::Kind::kUnknownKeyword);
  std::vector<std::pair<int, std::string>> got;
  for (const Warning& w : unknown) {
    got.emplace_back(w.line, w.keyword);
  }
  const std::vector<std::pair<int, std::string>> want = {
      {1, "stray_keyword"}, {3, "no_such_keyword"}, {17, "wwid"}, {20, "path_checker"}, {27, "find_multipaths"}};
  EXPECT_EQ(got, want);
  const auto sections = warnings_of(c, Warning::Kind::kUnknownSection);
  ASSERT_EQ(sections.size(), 2U);
  EXPECT_EQ(sections[0].line, 4);
  EXPECT_EQ(sections[0].keyword, "device");
  EXPECT_EQ(sections[1].line, 9);
  EXPECT_EQ(sections[1].keyword, "future_section");
}

TEST(MultipathConf, InvalidValuesAreIgnoredWithAWarning) {
  const Config c = parse_multipath_conf(
      "defaults {\n"
      "  find_multipaths sometimes\n"
      "  failback later\n"
      "  no_path_retry forever\n"
      "  features \"2 queue_if_no_path\"\n"
      "  path_selector \"round-robin\"\n"
      "  path_grouping_policy by_luck\n"
      "  polling_interval 0\n"
      "  max_polling_interval -3\n"
      "  user_friendly_names maybe\n"
      "  rr_weight heavy\n"
      "  alias_prefix \"a/b\"\n"
      "  rr_min_io_rq 99999999999\n"
      "  rr_min_io 0\n"
      "  failback 0\n"
      "}\n"
      "multipaths {\n"
      "  multipath {\n"
      "    wwid 3600\n"
      "    alias \"x/y\"\n"
      "  }\n"
      "}\n");
  const Defaults& d = c.defaults;
  EXPECT_FALSE(d.find_multipaths);
  EXPECT_FALSE(d.failback);
  EXPECT_FALSE(d.no_path_retry);
  EXPECT_FALSE(d.features);
  EXPECT_FALSE(d.path_selector);
  EXPECT_FALSE(d.path_grouping_policy);
  EXPECT_FALSE(d.polling_interval);
  EXPECT_FALSE(d.max_polling_interval);
  EXPECT_FALSE(d.user_friendly_names);
  EXPECT_FALSE(d.rr_weight);
  EXPECT_FALSE(d.alias_prefix);
  EXPECT_EQ(d.rr_min_io_rq, 2147483647U);  // capped, as dict.c caps at INT_MAX
  EXPECT_FALSE(d.rr_min_io);               // 0 is "unset" in multipathd
  ASSERT_EQ(c.multipaths.size(), 1U);
  EXPECT_FALSE(c.multipaths[0].alias);
  EXPECT_EQ(warnings_of(c, Warning::Kind::kInvalidValue).size(), 15U);
  EXPECT_EQ(warnings_of(c, Warning::Kind::kDuplicate).size(), 1U);  // failback twice
  ASSERT_NE(warning_for(c, "find_multipaths"), nullptr);
  EXPECT_EQ(warning_for(c, "find_multipaths")->line, 2);
}

TEST(MultipathConf, ValueSpellings) {
  const auto fm = [](const std::string& v) {
    return parse_multipath_conf("defaults {\n find_multipaths " + v + "\n}\n").defaults.find_multipaths;
  };
  EXPECT_EQ(fm("no"), FindMultipaths::kOff);
  EXPECT_EQ(fm("0"), FindMultipaths::kOff);
  EXPECT_EQ(fm("off"), FindMultipaths::kOff);
  EXPECT_EQ(fm("yes"), FindMultipaths::kOn);
  EXPECT_EQ(fm("1"), FindMultipaths::kOn);
  EXPECT_EQ(fm("on"), FindMultipaths::kOn);
  EXPECT_EQ(fm("strict"), FindMultipaths::kStrict);
  EXPECT_EQ(fm("greedy"), FindMultipaths::kGreedy);
  EXPECT_EQ(fm("smart"), FindMultipaths::kSmart);

  const Config c = parse_multipath_conf(
      "overrides {\n"
      "  no_path_retry 0\n"
      "  checker rdac\n"  // the older spelling of path_checker
      "  user_friendly_names 1\n"
      "}\n");
  EXPECT_EQ(c.overrides.no_path_retry, (NoPathRetry{NoPathRetry::Kind::kFail, 0}));
  EXPECT_EQ(c.overrides.path_checker, "rdac");
  EXPECT_EQ(c.overrides.user_friendly_names, true);
  EXPECT_TRUE(c.warnings.empty());
}

TEST(MultipathConf, IncompleteEntriesAreDropped) {
  const Config c = parse_multipath_conf(
      "multipaths {\n"
      "  multipath {\n"
      "    alias orphan\n"
      "  }\n"
      "}\n"
      "devices {\n"
      "  device {\n"
      "    vendor OnlyVendor\n"
      "  }\n"
      "  device {\n"
      "    vendor V\n"
      "    product P\n"
      "  }\n"
      "}\n"
      "blacklist {\n"
      "  device {\n"
      "  }\n"
      "}\n"
      "overrides {\n"
      "  protocol {\n"
      "    dev_loss_tmo 30\n"
      "  }\n"
      "}\n");
  EXPECT_TRUE(c.multipaths.empty());
  ASSERT_EQ(c.devices.size(), 1U);
  EXPECT_EQ(c.devices[0].vendor->text(), "V");
  EXPECT_TRUE(c.blacklist.device.empty());
  EXPECT_TRUE(c.overrides_protocols.empty());
  const auto dropped = warnings_of(c, Warning::Kind::kDropped);
  ASSERT_EQ(dropped.size(), 4U);
  EXPECT_EQ(dropped[0].line, 2);
  EXPECT_EQ(dropped[1].line, 7);
  EXPECT_NE(dropped[1].message.find("lacks its product"), std::string::npos);
}

TEST(MultipathConf, DuplicateMultipathEntriesMergeLaterWins) {
  const Config c = parse_multipath_conf(
      "multipaths {\n"
      "  multipath {\n"
      "    wwid 3600a\n"
      "    alias first\n"
      "    path_selector \"round-robin 0\"\n"
      "    failback manual\n"
      "  }\n"
      "  multipath {\n"
      "    wwid 3600b\n"
      "  }\n"
      "  multipath {\n"
      "    wwid 3600a\n"
      "    failback immediate\n"
      "  }\n"
      "  multipath {\n"
      "    wwid 3600c\n"
      "    alias first\n"  // taken by 3600a: dropped here
      "  }\n"
      "}\n");
  ASSERT_EQ(c.multipaths.size(), 3U);
  const MultipathEntry& a = c.multipaths[0];
  EXPECT_EQ(a.wwid, "3600a");
  EXPECT_EQ(a.alias, "first");
  EXPECT_EQ(a.path_selector, "round-robin 0");
  EXPECT_EQ(a.failback, (Failback{Failback::Kind::kImmediate, 0}));
  EXPECT_EQ(c.multipaths[2].wwid, "3600c");
  EXPECT_FALSE(c.multipaths[2].alias);
  EXPECT_EQ(warnings_of(c, Warning::Kind::kDuplicate).size(), 1U);
  ASSERT_EQ(warnings_of(c, Warning::Kind::kDropped).size(), 1U);
  EXPECT_EQ(warnings_of(c, Warning::Kind::kDropped)[0].line, 15);
}

TEST(MultipathConf, RegexInversionAndEscapes) {
  const Config c = parse_multipath_conf(
      "blacklist {\n"
      "  devnode \"!^sd\"\n"
      "  wwid \"\\!literal\"\n"
      "}\n"
      "devices {\n"
      "  device {\n"
      "    vendor \"!V\"\n"
      "    product P\n"
      "  }\n"
      "}\n");
  ASSERT_EQ(c.blacklist.devnode.size(), 1U);
  EXPECT_TRUE(c.blacklist.devnode[0].inverted());
  EXPECT_TRUE(c.blacklist.devnode[0].matches("vda"));
  EXPECT_FALSE(c.blacklist.devnode[0].matches("sda"));
  ASSERT_EQ(c.blacklist.wwid.size(), 1U);
  EXPECT_FALSE(c.blacklist.wwid[0].inverted());
  EXPECT_TRUE(c.blacklist.wwid[0].matches("x!literal"));
  // Device entries take '!' as text (config.c hwe_regmatch()).
  EXPECT_FALSE(c.devices[0].vendor->inverted());
  EXPECT_TRUE(c.devices[0].vendor->matches("!V"));
  EXPECT_FALSE(c.devices[0].vendor->matches("W"));
}

// ---------------------------------------------------------------------------
// Precedence

constexpr const char* kLayered =
    "defaults {\n"
    "  path_grouping_policy failover\n"
    "  path_checker directio\n"
    "  failback manual\n"
    "  alias_prefix def\n"
    "  prio const\n"
    "  prio_args \"from defaults\"\n"
    "}\n"
    "devices {\n"
    "  device {\n"
    "    vendor ACME\n"
    "    product Array\n"
    "    path_grouping_policy group_by_serial\n"
    "    path_checker tur\n"
    "    failback 15\n"
    "    path_selector \"queue-length 0\"\n"
    "    alias_prefix acme\n"
    "    prio_args \"older args\"\n"
    "  }\n"
    "  device {\n"
    "    vendor ACME\n"
    "    product \"^Array\"\n"
    "    path_checker hp_sw\n"
    "    prio alua\n"
    "    hardware_handler \"1 alua\"\n"
    "  }\n"
    "}\n"
    "overrides {\n"
    "  path_grouping_policy group_by_prio\n"
    "  path_checker rdac\n"
    "}\n"
    "multipaths {\n"
    "  multipath {\n"
    "    wwid 3600a\n"
    "    alias lun_a\n"
    "    path_grouping_policy multibus\n"
    "    prio emc\n"
    "  }\n"
    "}\n";

LunIdentity acme(const std::string& wwid) { return LunIdentity{wwid, "sdc", "ACME", "Array 9000", "0001"}; }

TEST(MultipathConfPrecedence, MapAttributesMultipathsOverridesDevicesDefaults) {
  const Config c = parse_multipath_conf(kLayered);
  ASSERT_TRUE(c.warnings.empty()) << c.warnings[0].message;

  // multipaths > overrides
  EffectiveSettings s = resolve_settings(c, acme("3600a"));
  EXPECT_EQ(s.path_grouping_policy.value, PgPolicy::kMultibus);
  EXPECT_EQ(s.path_grouping_policy.origin, Origin::kMultipaths);
  EXPECT_EQ(s.alias, "lun_a");

  // overrides > devices
  s = resolve_settings(c, acme("3600b"));
  EXPECT_EQ(s.path_grouping_policy.value, PgPolicy::kGroupByPrio);
  EXPECT_EQ(s.path_grouping_policy.origin, Origin::kOverrides);
  EXPECT_FALSE(s.alias);

  // devices > defaults: failback is not in overrides
  EXPECT_EQ(s.failback.value, (Failback{Failback::Kind::kDeferred, 15}));
  EXPECT_EQ(s.failback.origin, Origin::kDevices);

  // defaults > built-in, for a LUN no device entry matches
  s = resolve_settings(c, LunIdentity{"3600b", "sdd", "OTHER", "Box", "1"});
  EXPECT_EQ(s.failback.value, (Failback{Failback::Kind::kManual, 0}));
  EXPECT_EQ(s.failback.origin, Origin::kDefaults);
  EXPECT_EQ(s.path_selector.value, "service-time 0");
  EXPECT_EQ(s.path_selector.origin, Origin::kBuiltin);
}

TEST(MultipathConfPrecedence, PathAttributesSkipTheMultipathsSection) {
  const Config c = parse_multipath_conf(kLayered);
  // path_checker: overrides > devices > defaults; the multipaths entry
  // cannot set it.
  EffectiveSettings s = resolve_settings(c, acme("3600a"));
  EXPECT_EQ(s.path_checker.value, "rdac");
  EXPECT_EQ(s.path_checker.origin, Origin::kOverrides);

  const Config no_ovr = parse_multipath_conf(std::string(kLayered).substr(0, std::string(kLayered).find("overrides")));
  s = resolve_settings(no_ovr, acme("3600a"));
  EXPECT_EQ(s.path_checker.value, "hp_sw");  // the newer matching device entry
  EXPECT_EQ(s.path_checker.origin, Origin::kDevices);
  // alias_prefix: devices > defaults.
  EXPECT_EQ(s.alias_prefix.value, "acme");
  EXPECT_EQ(s.alias_prefix.origin, Origin::kDevices);

  s = resolve_settings(no_ovr, LunIdentity{"3600a", "sde", "OTHER", "Box", "1"});
  EXPECT_EQ(s.path_checker.value, "directio");
  EXPECT_EQ(s.path_checker.origin, Origin::kDefaults);
  EXPECT_EQ(s.alias_prefix.value, "def");

  s = resolve_settings(Config{}, LunIdentity{"3600a", "sde", "OTHER", "Box", "1"});
  EXPECT_EQ(s.path_checker.value, "tur");
  EXPECT_EQ(s.path_checker.origin, Origin::kBuiltin);
  EXPECT_EQ(s.alias_prefix.value, "mpath");
}

TEST(MultipathConfPrecedence, MatchingDeviceEntriesCombineNewestFirst) {
  const Config c = parse_multipath_conf(kLayered);
  const EffectiveSettings s = resolve_settings(c, acme("3600b"));
  // The newer entry sets no selector: the older one's applies.
  EXPECT_EQ(s.path_selector.value, "queue-length 0");
  EXPECT_EQ(s.path_selector.origin, Origin::kDevices);
  EXPECT_EQ(s.hardware_handler.value, "1 alua");
  // prio: the name from the newer entry, the arguments from the older one.
  EXPECT_EQ(s.prio.value, "alua");
  EXPECT_EQ(s.prio_args.value, "older args");

  // A product only the older, unanchored entry matches.
  const EffectiveSettings t = resolve_settings(c, LunIdentity{"3600b", "sdf", "ACME", "MyArray", "1"});
  EXPECT_EQ(t.path_selector.value, "queue-length 0");  // "Array" is not anchored
  EXPECT_EQ(t.hardware_handler.value, "0");            // "^Array" does not match "MyArray"
  EXPECT_EQ(t.hardware_handler.origin, Origin::kBuiltin);
}

TEST(MultipathConfPrecedence, PrioComesWithItsOwnLevelsArguments) {
  const Config c = parse_multipath_conf(kLayered);
  // The multipaths entry names a prio without arguments: the defaults'
  // arguments do not come with it.
  const EffectiveSettings s = resolve_settings(c, acme("3600a"));
  EXPECT_EQ(s.prio.value, "emc");
  EXPECT_EQ(s.prio.origin, Origin::kMultipaths);
  EXPECT_EQ(s.prio_args.value, "");

  const EffectiveSettings t = resolve_settings(c, LunIdentity{"3600b", "sdf", "OTHER", "Box", "1"});
  EXPECT_EQ(t.prio.value, "const");
  EXPECT_EQ(t.prio_args.value, "from defaults");
  EXPECT_EQ(t.prio.origin, Origin::kDefaults);

  const EffectiveSettings u = resolve_settings(Config{}, LunIdentity{"3600b", "sdf", "OTHER", "Box", "1"});
  EXPECT_EQ(u.prio.value, "const");
  EXPECT_EQ(u.prio.origin, Origin::kBuiltin);
}

TEST(MultipathConfPrecedence, RevisionRegexMatters) {
  const Config c = parse_multipath_conf(
      "devices {\n"
      "  device {\n"
      "    vendor ACME\n"
      "    product Array\n"
      "    revision \"^4\"\n"
      "    path_checker emc_clariion\n"
      "  }\n"
      "}\n");
  EXPECT_EQ(resolve_settings(c, LunIdentity{"w", "sda", "ACME", "Array", "4010"}).path_checker.value,
            "emc_clariion");
  EXPECT_EQ(resolve_settings(c, LunIdentity{"w", "sda", "ACME", "Array", "5010"}).path_checker.value, "tur");
  // No revision (NVMe): any revision matches.
  EXPECT_EQ(resolve_settings(c, LunIdentity{"w", "sda", "ACME", "Array", ""}).path_checker.value, "emc_clariion");
}

TEST(MultipathConfPrecedence, BuiltinNvmeEntry) {
  const LunIdentity nvme{"eui.0025", "nvme0n1", "NVME", "Samsung SSD", ""};
  EffectiveSettings s = resolve_settings(Config{}, nvme);
  EXPECT_EQ(s.path_checker.value, "none");
  EXPECT_EQ(s.path_checker.origin, Origin::kBuiltinHardware);
  EXPECT_EQ(s.path_grouping_policy.value, PgPolicy::kGroupByPrio);
  EXPECT_EQ(s.failback.value, (Failback{Failback::Kind::kImmediate, 0}));
  EXPECT_EQ(s.uid_attribute.value, "ID_WWN");
  // A SCSI LUN does not get it.
  s = resolve_settings(Config{}, LunIdentity{"3600", "sda", "ACME", "Array", "1"});
  EXPECT_EQ(s.path_checker.value, "tur");
  EXPECT_EQ(s.uid_attribute.value, "ID_SERIAL");
  // The configuration's devices come before the built-in table.
  const Config c = parse_multipath_conf(
      "devices {\n  device {\n    vendor NVME\n    product Samsung\n    path_checker directio\n  }\n}\n");
  s = resolve_settings(c, nvme);
  EXPECT_EQ(s.path_checker.value, "directio");
  EXPECT_EQ(s.path_checker.origin, Origin::kDevices);
  EXPECT_EQ(s.path_grouping_policy.origin, Origin::kBuiltinHardware);
}

TEST(MultipathConfPrecedence, QueueIfNoPathFeatureBecomesNoPathRetry) {
  const Config c = parse_multipath_conf(
      "defaults {\n  features \"2 queue_if_no_path pg_init_retries\"\n}\n"
      "multipaths {\n  multipath {\n    wwid 3600f\n    no_path_retry 5\n  }\n}\n");
  ASSERT_TRUE(c.warnings.empty()) << c.warnings[0].message;
  EffectiveSettings s = resolve_settings(c, LunIdentity{"3600e", "sda", "A", "B", "C"});
  ASSERT_TRUE(s.no_path_retry.value);
  EXPECT_EQ(*s.no_path_retry.value, (NoPathRetry{NoPathRetry::Kind::kQueue, 0}));
  EXPECT_EQ(s.no_path_retry.origin, Origin::kDefaults);
  EXPECT_EQ(s.features.value, "1 pg_init_retries");
  // A no_path_retry of its own wins; the feature is dropped all the same.
  s = resolve_settings(c, LunIdentity{"3600f", "sda", "A", "B", "C"});
  EXPECT_EQ(*s.no_path_retry.value, (NoPathRetry{NoPathRetry::Kind::kRetries, 5}));
  EXPECT_EQ(s.features.value, "1 pg_init_retries");
  // Nothing set: undefined, features "0".
  s = resolve_settings(Config{}, LunIdentity{"3600e", "sda", "A", "B", "C"});
  EXPECT_FALSE(s.no_path_retry.value);
  EXPECT_EQ(s.features.value, "0");
  EXPECT_EQ(s.rr_min_io_rq.value, 1U);
  EXPECT_FALSE(s.user_friendly_names.value);
}

TEST(MultipathConfPrecedence, UidAttrsComeFirst) {
  const Config c = parse_multipath_conf(
      "defaults {\n  uid_attrs \"sd:ID_VENDOR_SERIAL nvme:ID_NGUID\"\n  uid_attribute ID_OTHER\n}\n"
      "overrides {\n  uid_attribute ID_OVR\n}\n");
  EXPECT_EQ(resolve_uid_attribute(c, LunIdentity{"w", "sdb", "A", "B", ""}).value, "ID_VENDOR_SERIAL");
  EXPECT_EQ(resolve_uid_attribute(c, LunIdentity{"w", "nvme1n1", "NVME", "B", ""}).value, "ID_NGUID");
  EXPECT_EQ(resolve_uid_attribute(c, LunIdentity{"w", "dasda", "IBM", "B", ""}).value, "ID_OVR");
}

TEST(MultipathConfPrecedence, PollingIntervals) {
  const auto poll = [](const std::string& body) {
    const PollingIntervals p = resolve_polling(parse_multipath_conf("defaults {\n" + body + "}\n").defaults);
    return std::pair{p.polling_interval, p.max_polling_interval};
  };
  EXPECT_EQ(poll(""), (std::pair{5U, 20U}));
  EXPECT_EQ(poll("polling_interval 3\n"), (std::pair{3U, 12U}));
  EXPECT_EQ(poll("max_polling_interval 40\n"), (std::pair{10U, 40U}));
  EXPECT_EQ(poll("max_polling_interval 2\n"), (std::pair{1U, 2U}));
  EXPECT_EQ(poll("polling_interval 30\nmax_polling_interval 20\n"), (std::pair{20U, 20U}));
  EXPECT_EQ(poll("polling_interval 4\nmax_polling_interval 100\n"), (std::pair{4U, 100U}));
}

}  // namespace
}  // namespace ubdm::discovery
