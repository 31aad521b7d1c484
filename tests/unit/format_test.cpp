// SPDX-License-Identifier: MIT
// ubdmsetup's text formats, checked byte for byte against dmsetup's.
#include "cli/format.hpp"

#include <gtest/gtest.h>

#include <fmt/format.h>

namespace ubdm::cli {
namespace {

using nlohmann::json;

json device(const std::string& name, const std::string& state, bool live, bool inactive, int major, int minor,
            const std::string& blockdev) {
  return json{{"name", name},      {"state", state},    {"live_table", live},   {"inactive_table", inactive},
              {"open_count", 1},   {"event_nr", 3},     {"major", major},       {"minor", minor},
              {"target_count", 2}, {"size_sectors", 8}, {"blockdev", blockdev}, {"ublk_id", 0},
              {"queues", 1},       {"depth", 128}};
}

TEST(FormatTest, ConciseTableIsOneLineWithFieldsEscaped) {
  json a = device("a,b", "ACTIVE", true, false, 259, 4, "/dev/ublkb0");
  a["uuid"] = "U;1";
  const json info{{"devices", {a, device("c", "ACTIVE", true, false, 259, 5, "/dev/ublkb1")}}};
  const json tables{{"devices",
                     {{{"name", "a,b"}, {"lines", {"0 8 zero ", "8 8 linear 8:16 0"}}},
                      {{"name", "c"}, {"lines", {"0 8 flakey 8:0 0 1 1 1 drop_writes\\x"}}}}}};
  EXPECT_EQ(format_concise(info, tables),
            "a\\,b,U\\;1,4,rw,0 8 zero ,8 8 linear 8:16 0;c,,5,rw,0 8 flakey 8:0 0 1 1 1 drop_writes\\\\x\n");
  EXPECT_EQ(format_concise(json{{"devices", json::array()}}, tables), "No devices found\n");
}

TEST(FormatTest, LsWithTargetListsDevicesHavingOneOfThatType) {
  const json ls{{"devices",
                 {{{"name", "a"}, {"major", 259}, {"minor", 0}}, {{"name", "b"}, {"major", 259}, {"minor", 1}}}}};
  const json tables{{"devices",
                     {{{"name", "a"}, {"lines", {"0 8 zero ", "8 8 error "}}},
                      {{"name", "b"}, {"lines", {"0 8 linear 8:16 0"}}}}}};
  EXPECT_EQ(format_ls_with_target(ls, tables, "error"), "a\t(259, 0)\n");
  EXPECT_EQ(format_ls_with_target(ls, tables, "linear"), "b\t(259, 1)\n");
  EXPECT_EQ(format_ls_with_target(ls, tables, "multipath"), "");
}

TEST(FormatTest, InfoSaysReadOnlyAsDmsetup) {
  json d = device("ro", "SUSPENDED", true, false, 259, 1, "/dev/ublkb1");
  d["read_only"] = true;
  const std::string text = format_info(json{{"devices", {d}}});
  EXPECT_NE(text.find("State:             SUSPENDED (READ-ONLY)\n"), std::string::npos) << text;
}

TEST(FormatTest, InfoOfOneDevice) {
  const json reply{{"devices", {device("mp0", "ACTIVE", true, false, 259, 4, "/dev/ublkb0")}}};
  EXPECT_EQ(format_info(reply),
            "Name:              mp0\n"
            "State:             ACTIVE\n"
            "Tables present:    LIVE\n"
            "Open count:        1\n"
            "Event number:      3\n"
            "Major, minor:      259, 4\n"
            "Number of targets: 2\n"
            "Block device:      /dev/ublkb0\n"
            "\n");
}

TEST(FormatTest, InfoOfSeveralDevicesAndEveryTableState) {
  const json reply{
      {"devices",
       {device("a", "SUSPENDED", true, true, 259, 0, "/dev/ublkb0"),
        device("b", "ACTIVE", false, true, 0, 0, ""), device("c", "ACTIVE", false, false, 0, 0, "")}}};
  EXPECT_EQ(format_info(reply),
            "Name:              a\n"
            "State:             SUSPENDED\n"
            "Tables present:    LIVE & INACTIVE\n"
            "Open count:        1\n"
            "Event number:      3\n"
            "Major, minor:      259, 0\n"
            "Number of targets: 2\n"
            "Block device:      /dev/ublkb0\n"
            "\n"
            "Name:              b\n"
            "State:             ACTIVE\n"
            "Tables present:    INACTIVE\n"
            "Open count:        1\n"
            "Event number:      3\n"
            "Major, minor:      0, 0\n"
            "Number of targets: 2\n"
            "Block device:      none\n"
            "\n"
            "Name:              c\n"
            "State:             ACTIVE\n"
            "Tables present:    None\n"
            "Open count:        1\n"
            "Event number:      3\n"
            "Major, minor:      0, 0\n"
            "Number of targets: 2\n"
            "Block device:      none\n"
            "\n");
}

TEST(FormatTest, InfoWithoutDevices) {
  EXPECT_EQ(format_info(json{{"devices", json::array()}}), "No devices found\n");
}

TEST(FormatTest, TableOfANamedDeviceIsItsLines) {
  const json reply{
      {"devices", {{{"name", "s0"}, {"lines", {"0 1024 striped 2 256 8:16 0 8:32 0", "1024 8 zero"}}}}}};
  EXPECT_EQ(format_lines(reply, false), "0 1024 striped 2 256 8:16 0 8:32 0\n1024 8 zero\n");
}

TEST(FormatTest, TableOfAllDevicesPrefixesNames) {
  const json reply{{"devices",
                    {{{"name", "a"}, {"lines", {"0 8 linear 8:16 0", "8 8 error"}}},
                     {{"name", "b"}, {"lines", {"0 100 zero"}}}}}};
  EXPECT_EQ(format_lines(reply, true), "a: 0 8 linear 8:16 0\na: 8 8 error\nb: 0 100 zero\n");
}

TEST(FormatTest, DeviceWithoutLinesPrintsAnEmptyLineAsDmsetupDoes) {
  const json one{{"devices", {{{"name", "a"}, {"lines", json::array()}}}}};
  EXPECT_EQ(format_lines(one, false), "\n");
  const json all{
      {"devices", {{{"name", "a"}, {"lines", json::array()}}, {{"name", "b"}, {"lines", {"0 8 zero"}}}}}};
  EXPECT_EQ(format_lines(all, true), "a: \nb: 0 8 zero\n");
}

TEST(FormatTest, TableWithoutDevices) {
  EXPECT_EQ(format_lines(json{{"devices", json::array()}}, true), "No devices found\n");
}

// The shapes dmsetup draws (seen in the VM, with dm's numbers): roots by
// name, children in the kernel's deps order, leaves by their numbers.
json tree_ls() {
  const auto dev = [](const char* name, int minor) {
    return json{{"name", name}, {"major", 259}, {"minor", minor}, {"blockdev", fmt::format("/dev/ublkb{}", minor)}};
  };
  return json{{"devices", {dev("lina", 0), dev("linb", 1), dev("solo", 3), dev("top", 2)}}};
}
json tree_deps() {
  const auto dep = [](int major, int minor) { return json{{"major", major}, {"minor", minor}, {"path", ""}}; };
  return json{{"lina", {{"deps", {dep(8, 0)}}}},
              {"linb", {{"deps", {dep(8, 16), dep(8, 0)}}}},
              {"solo", {{"deps", json::array()}}},
              {"top", {{"deps", {dep(259, 1), dep(259, 0)}}}}};
}
json tree_info() {
  const auto info = [](const char* name, const char* uuid, bool ro, int open) {
    return json{{"name", name}, {"uuid", uuid}, {"state", "ACTIVE"}, {"read_only", ro}, {"open_count", open}};
  };
  return json{{"devices", {info("lina", "U-LINA", false, 1), info("linb", "", false, 1), info("solo", "", true, 0),
                           info("top", "", false, 0)}}};
}
std::string sd_name(std::uint32_t, std::uint32_t minor) { return minor == 0 ? "sda" : "sdb"; }

TEST(FormatTest, LsTreeDrawsWhatEachDeviceIsBuiltOver) {
  EXPECT_EQ(format_ls_tree(tree_ls(), tree_deps(), tree_info(), TreeOptions{}, sd_name),
            "solo (259:3)\n"
            "top (259:2)\n"
            " |-linb (259:1)\n"
            " |  |- (8:16)\n"
            " |  `- (8:0)\n"
            " `-lina (259:0)\n"
            "    `- (8:0)\n");
  EXPECT_EQ(format_ls_tree(json{{"devices", json::array()}}, json::object(), json{{"devices", json::array()}},
                           TreeOptions{}, sd_name),
            "No devices found\n");
  // A file-backed path shows its name.
  const json file{{"devices", {{{"name", "f"}, {"major", 259}, {"minor", 5}, {"blockdev", ""}}}}};
  EXPECT_EQ(format_ls_tree(file, json{{"f", {{"deps", {{{"major", 0}, {"minor", 0}, {"path", "/var/d.img"}}}}}}},
                           json{{"devices", json::array()}}, TreeOptions{}, sd_name),
            "f (259:5)\n `- (/var/d.img)\n");
}

TEST(FormatTest, LsTreeOptionsShowWhatDmsetupsDo) {
  EXPECT_EQ(format_ls_tree(tree_ls(), tree_deps(), tree_info(), parse_tree_options("nodevice"), sd_name),
            "solo\ntop\n |-linb\n `-lina\n");
  EXPECT_EQ(format_ls_tree(tree_ls(), tree_deps(), tree_info(), parse_tree_options("device,blkdevname,uuid"), sd_name),
            "solo <ublkb3> (259:3) []\n"
            "top <ublkb2> (259:2) []\n"
            " |-linb <ublkb1> (259:1) []\n"
            " |  |- <sdb> (8:16)\n"
            " |  `- <sda> (8:0)\n"
            " `-lina <ublkb0> (259:0) [U-LINA]\n"
            "    `- <sda> (8:0)\n");
  const std::string attrs =
      format_ls_tree(tree_ls(), tree_deps(), tree_info(), parse_tree_options("active,open,rw,ascii"), sd_name);
  EXPECT_NE(attrs.find("solo (259:3) [ACTIVE, RO, 0]\n"), std::string::npos) << attrs;
  EXPECT_NE(attrs.find(" `-lina (259:0) [ACTIVE, RW, 1]\n"), std::string::npos) << attrs;
  for (const char* bad : {"inverted", "compact", "utf", "vt100", "bogus"}) {
    EXPECT_THROW(parse_tree_options(bad), std::invalid_argument) << bad;
  }
}

TEST(FormatTest, LsOptionsNameTheDevicesBlockDeviceOrItself) {
  const json ls{{"devices", {{{"name", "a"}, {"major", 259}, {"minor", 4}, {"blockdev", "/dev/ublkb4"}}}}};
  EXPECT_EQ(format_ls(ls, parse_ls_options("devno")), "a\t(259:4)\n");
  EXPECT_EQ(format_ls(ls, parse_ls_options("blkdevname")), "a\t(ublkb4)\n");
  EXPECT_EQ(format_ls(ls, parse_ls_options("devname")), "a\t(a)\n");
  EXPECT_EQ(format_ls(ls, parse_ls_options("blkdevname,devname")), "a\t(a)\n") << "devname wins, as in dmsetup";
  EXPECT_THROW(parse_ls_options("uuid"), std::invalid_argument);
}

TEST(FormatTest, Ls) {
  const json reply{{"devices",
                    {{{"name", "mp0"}, {"major", 259}, {"minor", 0}, {"blockdev", "/dev/ublkb0"}},
                     {{"name", "s1"}, {"major", 259}, {"minor", 12}, {"blockdev", "/dev/ublkb1"}}}}};
  EXPECT_EQ(format_ls(reply), "mp0\t(259:0)\ns1\t(259:12)\n");
  EXPECT_EQ(format_ls(json{{"devices", json::array()}}), "No devices found\n");
}

TEST(FormatTest, Targets) {
  const json reply{{"targets",
                    {{{"name", "linear"}, {"version", {1, 4, 0}}},
                     {{"name", "multipath"}, {"version", {1, 14, 0}}},
                     {{"name", "a-very-long-target-name"}, {"version", {2, 0, 10}}}}}};
  EXPECT_EQ(format_targets(reply),
            "linear           v1.4.0\n"
            "multipath        v1.14.0\n"
            "a-very-long-target-name v2.0.10\n");
}

TEST(FormatTest, Deps) {
  const json reply{{"deps",
                    {{{"major", 8}, {"minor", 16}, {"path", "/dev/sdb"}},
                     {{"major", 0}, {"minor", 0}, {"path", "/var/lib/disk.img"}},
                     {{"major", 7}, {"minor", 0}, {"path", ""}}}}};
  EXPECT_EQ(format_deps(reply), "3 dependencies\t: (8, 16) (/var/lib/disk.img) (7, 0)\n");
  EXPECT_EQ(format_deps(json{{"deps", json::array()}}), "0 dependencies\t:\n");
}

TEST(FormatTest, Version) {
  EXPECT_EQ(format_client_version("0.1.0"), "ubdmsetup version: 0.1.0\n");
  EXPECT_EQ(format_daemon_version(json{{"daemon_version", "0.1.0"}, {"protocol", 1}, {"ublk_features", ""}}),
            "ubdmd version:     0.1.0\n"
            "Protocol version:  1\n");
  EXPECT_EQ(
      format_daemon_version(json{{"daemon_version", "0.2.0"}, {"protocol", 1}, {"ublk_features", "0x1ff"}}),
      "ubdmd version:     0.2.0\n"
      "Protocol version:  1\n"
      "ublk features:     0x1ff\n"
      "Zero copy:         no (copy mode)\n"
      "Online resize:     no\n");
  // 7.x: AUTO_BUF_REG (bit 11) and UPDATE_SIZE (bit 10) named.
  EXPECT_EQ(
      format_daemon_version(json{{"daemon_version", "0.2.0"}, {"protocol", 1}, {"ublk_features", "0xfff"}}),
      "ubdmd version:     0.2.0\n"
      "Protocol version:  1\n"
      "ublk features:     0xfff\n"
      "Zero copy:         yes (UBLK_F_AUTO_BUF_REG)\n"
      "Online resize:     yes (UBLK_F_UPDATE_SIZE)\n");
}

TEST(FormatTest, MessageReply) {
  EXPECT_EQ(format_message_reply(json{{"reply", ""}}), "");
  EXPECT_EQ(format_message_reply(json{{"reply", "queue_if_no_path"}}), "queue_if_no_path\n");
  EXPECT_EQ(format_message_reply(json{{"reply", "a\nb\n"}}), "a\nb\n");
}

TEST(FormatTest, MissingFieldsThrowJsonErrors) {
  EXPECT_THROW((void)format_info(json::object()), json::exception);
  EXPECT_THROW((void)format_ls(json{{"devices", {{{"name", "x"}}}}}), json::exception);
  EXPECT_THROW((void)format_targets(json{{"targets", {{{"name", "x"}, {"version", {1}}}}}}), json::exception);
}

}  // namespace
}  // namespace ubdm::cli
