// SPDX-License-Identifier: MIT
// ubdmsetup's text formats, checked byte for byte against dmsetup's.
#include "cli/format.hpp"

#include <locale.h>
#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

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
  // dmsetup's table and status add nothing to its tree; ubdmsetup refuses them.
  for (const char* bad : {"bogus", "table", "status", "inv"}) {
    EXPECT_THROW(parse_tree_options(bad), std::invalid_argument) << bad;
  }
}

// The drawings below are dmsetup's (1.02.185, in the VM) over the same
// devices, tree_ls() & co. made with dm (its major 253 written 259 here).
std::string tree(const std::string& options) {
  return format_ls_tree(tree_ls(), tree_deps(), tree_info(), parse_tree_options(options), sd_name);
}
// The glyphs of -o utf (U+2502, U+251C, U+2500, U+2514, U+252C) and of
// -o vt100 (each between the escapes that switch to the DEC line-drawing
// set and back).
const std::string kV = "\xe2\x94\x82", kVR = "\xe2\x94\x9c", kH = "\xe2\x94\x80", kUR = "\xe2\x94\x94",
                  kHD = "\xe2\x94\xac";
std::string vt(const std::string& chars) { return "\x1b(0\x0f" + chars + "\x1b(B"; }

TEST(FormatTest, LsTreeDrawsInBoxCharactersOrVt100LinesAsAsked) {
  EXPECT_EQ(tree("utf"), "solo (259:3)\n"
                         "top (259:2)\n"
                         " " + kVR + kH + "linb (259:1)\n"
                         " " + kV + "  " + kVR + kH + " (8:16)\n"
                         " " + kV + "  " + kUR + kH + " (8:0)\n"
                         " " + kUR + kH + "lina (259:0)\n"
                         "    " + kUR + kH + " (8:0)\n");
  EXPECT_EQ(tree("vt100"), "solo (259:3)\n"
                           "top (259:2)\n"
                           " " + vt("tq") + "linb (259:1)\n"
                           " " + vt("x") + "  " + vt("tq") + " (8:16)\n"
                           " " + vt("x") + "  " + vt("mq") + " (8:0)\n"
                           " " + vt("mq") + "lina (259:0)\n"
                           "    " + vt("mq") + " (8:0)\n");
  // The last drawing named wins; ascii is the drawing before any.
  EXPECT_EQ(tree("utf,ascii"), tree(""));
  EXPECT_EQ(tree("ascii,vt100"), tree("vt100"));
  EXPECT_EQ(parse_tree_options("", TreeSymbols::kUtf).symbols, TreeSymbols::kUtf);
  EXPECT_EQ(parse_tree_options("nodevice,ascii", TreeSymbols::kUtf).symbols, TreeSymbols::kAscii);
  EXPECT_EQ(parse_tree_options("vt100", TreeSymbols::kUtf).symbols, TreeSymbols::kVt100);
}

// dmsetup draws in box characters when nl_langinfo(CODESET) is "UTF-8"
// after its setlocale(LC_ALL, ""), whatever stdout is.
TEST(FormatTest, LsTreeDefaultDrawingIsUtfOnlyInAUtf8Locale) {
  EXPECT_EQ(default_tree_symbols("UTF-8"), TreeSymbols::kUtf);
  for (const char* other : {"ANSI_X3.4-1968", "ISO-8859-1", "utf8", "UTF8", "utf-8", ""}) {
    EXPECT_EQ(default_tree_symbols(other), TreeSymbols::kAscii) << other;
  }
}

// The codeset comes from the environment as setlocale(LC_ALL, "") reads it
// (LC_ALL, then LC_CTYPE, then LANG; nothing at all if one of them names a
// locale that is not installed), and the process's locale is left alone.
TEST(FormatTest, EnvironmentCodesetIsSetlocalesWithoutChangingTheLocale) {
  struct SavedEnv {
    std::vector<std::pair<std::string, std::optional<std::string>>> vars;
    SavedEnv() {
      for (const char* v : {"LC_ALL", "LC_CTYPE", "LC_NUMERIC", "LANG"}) {
        const char* val = std::getenv(v);
        vars.emplace_back(v, val ? std::optional<std::string>(val) : std::nullopt);
        ::unsetenv(v);
      }
    }
    ~SavedEnv() {
      for (const auto& [k, val] : vars) {
        if (val) {
          ::setenv(k.c_str(), val->c_str(), 1);
        } else {
          ::unsetenv(k.c_str());
        }
      }
    }
  } saved;
  const std::string before = ::setlocale(LC_ALL, nullptr);
  EXPECT_EQ(environment_codeset(), "ANSI_X3.4-1968");
  ::setenv("LC_ALL", "C", 1);
  EXPECT_EQ(environment_codeset(), "ANSI_X3.4-1968");
  ::setenv("LC_ALL", "xx_NOWHERE.UTF-8", 1);
  EXPECT_EQ(environment_codeset(), "ANSI_X3.4-1968") << "a locale that is not installed sets nothing";
  ::unsetenv("LC_ALL");
  locale_t utf8 = ::newlocale(LC_ALL_MASK, "C.UTF-8", nullptr);
  if (utf8 != nullptr) {  // the C.UTF-8 locale is installed here
    ::freelocale(utf8);
    ::setenv("LANG", "C.UTF-8", 1);
    EXPECT_EQ(environment_codeset(), "UTF-8");
    EXPECT_EQ(::setlocale(LC_ALL, nullptr), before) << "the process's locale changed";
    ::setenv("LC_CTYPE", "C", 1);
    EXPECT_EQ(environment_codeset(), "ANSI_X3.4-1968") << "LC_CTYPE before LANG";
    ::unsetenv("LC_CTYPE");
    ::setenv("LC_NUMERIC", "xx_NOWHERE.UTF-8", 1);
    EXPECT_EQ(environment_codeset(), "ANSI_X3.4-1968") << "setlocale(LC_ALL, \"\") fails as a whole";
    ::unsetenv("LC_NUMERIC");
    ::setenv("LC_ALL", "C", 1);
    EXPECT_EQ(environment_codeset(), "ANSI_X3.4-1968") << "LC_ALL before LANG";
  } else {
    std::fprintf(stderr, "no C.UTF-8 locale here: its codeset is not checked\n");
  }
  EXPECT_EQ(::setlocale(LC_ALL, nullptr), before);
}

TEST(FormatTest, LsTreeInvertedDrawsFromTheDisksUp) {
  // The disks and the devices over nothing, in the order first met (by
  // name, then each device's deps in the kernel's order), each with the
  // devices using it in the order they were linked.
  EXPECT_EQ(tree("inverted"), " (8:0)\n"
                              " |-lina (259:0)\n"
                              " |  `-top (259:2)\n"
                              " `-linb (259:1)\n"
                              "    `-top (259:2)\n"
                              " (8:16)\n"
                              " `-linb (259:1)\n"
                              "    `-top (259:2)\n"
                              "solo (259:3)\n");
  EXPECT_EQ(tree("inverted,active,open,rw,uuid"), " (8:0)\n"
                                                  " |-lina (259:0) [ACTIVE, RW, 1, U-LINA]\n"
                                                  " |  `-top (259:2) [ACTIVE, RW, 0, ]\n"
                                                  " `-linb (259:1) [ACTIVE, RW, 1, ]\n"
                                                  "    `-top (259:2) [ACTIVE, RW, 0, ]\n"
                                                  " (8:16)\n"
                                                  " `-linb (259:1) [ACTIVE, RW, 1, ]\n"
                                                  "    `-top (259:2) [ACTIVE, RW, 0, ]\n"
                                                  "solo (259:3) [ACTIVE, RO, 0, ]\n");
  // A disk left out still has its users drawn, one level in.
  EXPECT_EQ(tree("inverted,nodevice"), " |-lina\n |  `-top\n `-linb\n    `-top\n `-linb\n    `-top\nsolo\n");
  EXPECT_EQ(tree("inverted,nodevice,blkdevname"), " <sda>\n"
                                                  " |-lina <ublkb0>\n"
                                                  " |  `-top <ublkb2>\n"
                                                  " `-linb <ublkb1>\n"
                                                  "    `-top <ublkb2>\n"
                                                  " <sdb>\n"
                                                  " `-linb <ublkb1>\n"
                                                  "    `-top <ublkb2>\n"
                                                  "solo <ublkb3>\n");
  EXPECT_EQ(tree("inverted,utf"), " (8:0)\n"
                                  " " + kVR + kH + "lina (259:0)\n"
                                  " " + kV + "  " + kUR + kH + "top (259:2)\n"
                                  " " + kUR + kH + "linb (259:1)\n"
                                  "    " + kUR + kH + "top (259:2)\n"
                                  " (8:16)\n"
                                  " " + kUR + kH + "linb (259:1)\n"
                                  "    " + kUR + kH + "top (259:2)\n"
                                  "solo (259:3)\n");
  EXPECT_EQ(tree("inverted,vt100"), " (8:0)\n"
                                    " " + vt("tq") + "lina (259:0)\n"
                                    " " + vt("x") + "  " + vt("mq") + "top (259:2)\n"
                                    " " + vt("mq") + "linb (259:1)\n"
                                    "    " + vt("mq") + "top (259:2)\n"
                                    " (8:16)\n"
                                    " " + vt("mq") + "linb (259:1)\n"
                                    "    " + vt("mq") + "top (259:2)\n"
                                    "solo (259:3)\n");
}

TEST(FormatTest, LsTreeCompactPutsFirstChildrenOnTheirParentsLine) {
  // A level's indent is its node's width on the line it was drawn on, the
  // joint included, so deeper levels drift right, as dmsetup's do.
  EXPECT_EQ(tree("compact"), "solo (259:3)\n"
                             "top (259:2)-+-linb (259:1)-+- (8:16)\n"
                             "            |                 `- (8:0)\n"
                             "            `-lina (259:0)--- (8:0)\n");
  EXPECT_EQ(tree("inverted,compact"), " (8:0)-+-lina (259:0)---top (259:2)\n"
                                      "       `-linb (259:1)---top (259:2)\n"
                                      " (8:16)---linb (259:1)---top (259:2)\n"
                                      "solo (259:3)\n");
  // Children left out leave their parent's line open: the next device
  // joins it, and the last line has no newline.
  EXPECT_EQ(tree("compact,nodevice"), "solo\ntop-+-linb---lina");
  EXPECT_EQ(tree("inverted,compact,nodevice"), " |-lina---top\n `-linb---top\n `-linb---top\nsolo\n");
  EXPECT_EQ(tree("compact,utf"), "solo (259:3)\n"
                                 "top (259:2)" + kH + kHD + kH + "linb (259:1)" + kH + kHD + kH + " (8:16)\n"
                                 "            " + kV + "                 " + kUR + kH + " (8:0)\n"
                                 "            " + kUR + kH + "lina (259:0)" + kH + kH + kH + " (8:0)\n");
  // vt100's escapes count as columns.
  EXPECT_EQ(tree("compact,vt100"), "solo (259:3)\n"
                                   "top (259:2)" + vt("qwq") + "linb (259:1)" + vt("qwq") + " (8:16)\n"
                                   "            " + vt("x") + std::string(24, ' ') + vt("mq") + " (8:0)\n"
                                   "            " + vt("mq") + "lina (259:0)" + vt("qqq") + " (8:0)\n");
  EXPECT_EQ(tree("inverted,compact,utf"),
            " (8:0)" + kH + kHD + kH + "lina (259:0)" + kH + kH + kH + "top (259:2)\n"
            "       " + kUR + kH + "linb (259:1)" + kH + kH + kH + "top (259:2)\n"
            " (8:16)" + kH + kH + kH + "linb (259:1)" + kH + kH + kH + "top (259:2)\n"
            "solo (259:3)\n");
  // With attributes compact changes nothing.
  EXPECT_EQ(tree("compact,active"), tree("active"));
  EXPECT_EQ(tree("compact,uuid"), tree("uuid"));
  EXPECT_NE(tree("compact"), tree(""));
}

// A child left out (nodevice) still counts as the last one.
TEST(FormatTest, LsTreeHiddenLastChildLeavesItsSiblingABranch) {
  json ls = tree_ls();
  ls["devices"].push_back({{"name", "mix"}, {"major", 259}, {"minor", 4}, {"blockdev", "/dev/ublkb4"}});
  json deps = tree_deps();
  deps["mix"] = {{"deps", {{{"major", 259}, {"minor", 3}, {"path", ""}}, {{"major", 8}, {"minor", 0}, {"path", ""}}}}};
  EXPECT_EQ(format_ls_tree(ls, deps, tree_info(), parse_tree_options("nodevice"), sd_name),
            "mix\n |-solo\ntop\n |-linb\n `-lina\n");
  EXPECT_EQ(format_ls_tree(ls, deps, tree_info(), parse_tree_options(""), sd_name),
            "mix (259:4)\n |-solo (259:3)\n `- (8:0)\n"
            "top (259:2)\n |-linb (259:1)\n |  |- (8:16)\n |  `- (8:0)\n `-lina (259:0)\n    `- (8:0)\n");
}

// Long lines: dmsetup's, seen with names of 90, 73 and 72 characters over
// the disks.
json long_ls() {
  const auto dev = [](std::string name, int minor) {
    return json{{"name", name}, {"major", 259}, {"minor", minor}, {"blockdev", fmt::format("/dev/ublkb{}", minor)}};
  };
  return json{{"devices",
               {dev("l" + std::string(89, '0'), 2), dev("m" + std::string(72, '0'), 1),
                dev("n" + std::string(71, '0'), 0)}}};
}
json long_deps() {
  const auto on = [](int minor) { return json{{"deps", {{{"major", 8}, {"minor", minor}, {"path", ""}}}}}; };
  return json{{"l" + std::string(89, '0'), on(0)}, {"m" + std::string(72, '0'), on(16)},
              {"n" + std::string(71, '0'), on(16)}};
}
std::string long_tree(const std::string& options, unsigned terminal = 0) {
  TreeOptions o = parse_tree_options(options);
  fit_tree_to_terminal(o, terminal);
  return format_ls_tree(long_ls(), long_deps(), json{{"devices", json::array()}}, o, sd_name);
}

TEST(FormatTest, LsTreeCutsLinesAtDmsetupsWidth) {
  const std::string l = "l" + std::string(89, '0'), m = "m" + std::string(72, '0'), n = "n" + std::string(71, '0');
  // 79 columns and "...", but a line of exactly 80 is whole.
  EXPECT_EQ(long_tree(""), l.substr(0, 79) + "...\n `- (8:0)\n" +
                               m + " (259:...\n `- (8:16)\n" +
                               n + " (259:0)\n `- (8:16)\n");
  EXPECT_EQ(long_tree("notrunc"), l + " (259:2)\n `- (8:0)\n" +
                                      m + " (259:1)\n `- (8:16)\n" +
                                      n + " (259:0)\n `- (8:16)\n");
  // Box characters are one column each; vt100's escapes count too.
  EXPECT_EQ(long_tree("inverted,utf"), " (8:0)\n " + kUR + kH + l.substr(0, 76) + "...\n (8:16)\n " + kVR + kH +
                                           m + " (2...\n " + kUR + kH + n + " (25...\n");
  EXPECT_EQ(long_tree("inverted,vt100"), " (8:0)\n " + vt("mq") + l.substr(0, 69) + "...\n (8:16)\n " +
                                             vt("tq") + m.substr(0, 69) + "...\n " + vt("mq") + n.substr(0, 69) +
                                             "...\n");
  EXPECT_EQ(long_tree("inverted,compact"), " (8:0)---" + l.substr(0, 70) + "...\n (8:16)-+-" + m.substr(0, 69) +
                                               "...\n        `-" + n.substr(0, 69) + "...\n");
  EXPECT_EQ(long_tree("compact"), l.substr(0, 79) + "...\n" + m + " (259:...\n" + n + " (259:0...\n");
  // On a terminal: its width less 3, except with vt100 (80).
  EXPECT_EQ(long_tree("", 120), long_tree("notrunc"));
  EXPECT_EQ(long_tree("", 83), long_tree(""));
  EXPECT_EQ(long_tree("vt100", 200), long_tree("vt100"));
  EXPECT_EQ(long_tree("", 3), long_tree("")) << "a terminal of 3 columns or fewer: 80";
  TreeOptions o;
  fit_tree_to_terminal(o, 0);
  EXPECT_EQ(o.columns, 80U);
  fit_tree_to_terminal(o, 100);
  EXPECT_EQ(o.columns, 97U);
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
