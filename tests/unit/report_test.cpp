// SPDX-License-Identifier: MIT
// dmsetup's column report (info -c): fields, headings, widths, alignment,
// separators, name prefixes and sorting.
#include "cli/report.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

namespace ubdm::cli {
namespace {

using nlohmann::json;

json device(const std::string& name, int minor, int open, const std::string& state, bool inactive) {
  return json{{"name", name},          {"state", state},    {"live_table", true},
              {"inactive_table", inactive}, {"open_count", open}, {"event_nr", minor * 10},
              {"major", 259},          {"minor", minor},    {"target_count", 1},
              {"blockdev", "/dev/ublkb" + std::to_string(minor)}};
}

const json kReply{{"devices",
                   {device("mpb", 2, 0, "SUSPENDED", true), device("mpa", 0, 12, "ACTIVE", false)}}};

std::string report(const ReportOptions& o, const json& reply = kReply) {
  return format_report(reply, parse_report(o));
}

TEST(Report, DefaultColumnsAreDmsetupsAlignedAndSortedByName) {
  // Least widths 16/3/3/4/4/4/6/32; strings left, numbers right; every
  // column padded, the last one too.
  EXPECT_EQ(report({}),
            "Name             Maj Min Stat Open Targ Event  UUID                            \n"
            "mpa              259   0 L--w   12    1      0                                 \n"
            "mpb              259   2 LIsw    0    1     20                                 \n");
}

TEST(Report, NoheadingsSeparatesWithColonsAndDoesNotAlign) {
  ReportOptions o;
  o.fields = "name,open,attr";
  o.headings = false;
  EXPECT_EQ(report(o), "mpa:12:L--w\nmpb:0:LIsw\n");
  o.separator = " | ";
  EXPECT_EQ(report(o), "mpa | 12 | L--w\nmpb | 0 | LIsw\n");
}

TEST(Report, SeparatorKeepsHeadingsWithoutAlignment) {
  ReportOptions o;
  o.fields = "name,devno,blkdevname,tables_loaded,suspended,readonly";
  o.separator = ",";
  EXPECT_EQ(report(o),
            "Name,DevNo,BlkDevName,Tables,Suspended,Read-only\n"
            "mpa,259:0,ublkb0,Live,Active,Writeable\n"
            "mpb,259:2,ublkb2,Both,Suspended,Writeable\n");
}

TEST(Report, NamePrefixesQuoteEachValue) {
  ReportOptions o;
  o.fields = "name,minor";
  o.headings = false;
  o.name_prefixes = true;
  EXPECT_EQ(report(o), "DM_NAME='mpa':DM_MINOR='0'\nDM_NAME='mpb':DM_MINOR='2'\n");
}

TEST(Report, PlusAppendsToTheDefaultFields) {
  ReportOptions o;
  o.fields = "+devno";
  o.headings = false;
  EXPECT_EQ(report(o), "mpa:259:0:L--w:12:1:0::259:0\nmpb:259:2:LIsw:0:1:20::259:2\n");
}

TEST(Report, SortsByKeysNumbersNumericallyMinusDescending) {
  ReportOptions o;
  o.fields = "name";
  o.headings = false;
  o.sort = "-open";
  EXPECT_EQ(report(o), "mpa\nmpb\n") << "12 opens sort above 0, not as text";
  o.sort = "open";
  EXPECT_EQ(report(o), "mpb\nmpa\n");
  o.sort = "-name";
  EXPECT_EQ(report(o), "mpb\nmpa\n");
}

TEST(Report, UnknownFieldsAreRefusedBeforeAnythingIsPrinted) {
  ReportOptions o;
  o.fields = "name,colour";
  try {
    (void)parse_report(o);
    FAIL() << "an unknown field was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()),
              "-o: unknown field 'colour' (fields: name,major,minor,attr,open,segments,events,uuid,blkdevname,"
              "devno,tables_loaded,suspended,readonly)");
  }
  o.fields = "";
  o.sort = "size";
  EXPECT_THROW((void)parse_report(o), std::invalid_argument);
  o.sort = "";
  o.fields = ",";
  EXPECT_THROW((void)parse_report(o), std::invalid_argument);
}

TEST(Report, NoDevices) {
  EXPECT_EQ(report({}, json{{"devices", json::array()}}), "No devices found\n");
}

}  // namespace
}  // namespace ubdm::cli
