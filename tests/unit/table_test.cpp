// SPDX-License-Identifier: MIT
// Table text parsing and validation: every malformed input gets a precise
// error and leaves the device as it was.
#include <gtest/gtest.h>

#include "io/fake_backend.hpp"
#include "ubdm/device.hpp"
#include "ubdm/error.hpp"
#include "ubdm/table.hpp"

namespace ubdm {
namespace {

// The message of the Error that `fn` throws, or "" if it does not throw.
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(TableParse, ReadsOneTargetPerLineSkippingBlanksAndComments) {
  const auto lines = parse_table_text("# a comment\n0 100 linear /dev/a 0\n\n  100\t50 error  \n");
  ASSERT_EQ(lines.size(), 2U);
  EXPECT_EQ(lines[0].start, 0U);
  EXPECT_EQ(lines[0].len, 100U);
  EXPECT_EQ(lines[0].type, "linear");
  EXPECT_EQ(lines[0].args, (std::vector<std::string>{"/dev/a", "0"}));
  EXPECT_EQ(lines[0].line_no, 2U);
  EXPECT_EQ(lines[1].type, "error");
  EXPECT_TRUE(lines[1].args.empty());
  EXPECT_EQ(lines[1].line_no, 4U);
}

// As the kernel's dm_split_args: any whitespace separates words, and a
// backslash makes the next character part of the word, whatever it is.
TEST(SplitArgs, SplitsOnWhitespaceAndHonoursBackslashes) {
  using Words = std::vector<std::string>;
  EXPECT_EQ(split_args(" a\tb \n c\vd\fe\rf "), (Words{"a", "b", "c", "d", "e", "f"}));
  EXPECT_EQ(split_args(R"(a\ b c)"), (Words{"a b", "c"}));
  EXPECT_EQ(split_args(R"(a\\ b)"), (Words{R"(a\)", "b"}));
  EXPECT_EQ(split_args(R"(a\x\)"), (Words{R"(ax\)"})) << "a backslash at the end stays";
  EXPECT_EQ(split_args(R"(one\\\ word)"), (Words{R"(one\ word)"}));
  EXPECT_TRUE(split_args(" \t\n ").empty());
}

TEST(TableParse, TargetArgumentsFollowTheKernelsSplitting) {
  const auto lines = parse_table_text("0 8 linear /dev/my\\ disk 0\n");
  ASSERT_EQ(lines.size(), 1U);
  EXPECT_EQ(lines[0].args, (std::vector<std::string>{"/dev/my disk", "0"}));
}

struct BadText {
  const char* text;
  const char* message;
};

class TableParseRejects : public ::testing::TestWithParam<BadText> {};

TEST_P(TableParseRejects, WithAPreciseMessage) {
  EXPECT_EQ(error_of([] { (void)parse_table_text(GetParam().text); }), GetParam().message);
}

INSTANTIATE_TEST_SUITE_P(
    Malformed, TableParseRejects,
    ::testing::Values(
        BadText{"", "empty table: at least one target line is required"},
        BadText{"\n# only a comment\n", "empty table: at least one target line is required"},
        BadText{"0 100", "table line 1: expected \"<start> <length> <target> [args...]\", got \"0 100\""},
        BadText{"x 100 zero", "table line 1: invalid start sector 'x'"},
        BadText{"-1 100 zero", "table line 1: invalid start sector '-1'"},
        BadText{"0 +5 zero", "table line 1: invalid length '+5'"},
        BadText{"0 1e3 zero", "table line 1: invalid length '1e3'"},
        BadText{"0 0x10 zero", "table line 1: invalid length '0x10'"},
        BadText{"0 0 zero", "table line 1: zero-length target"},
        BadText{"0 99999999999999999999999 zero", "table line 1: invalid length '99999999999999999999999'"},
        BadText{"0 36028797018963968 zero",
                "table line 1: target 0+36028797018963968 runs past the largest supported sector"},
        BadText{"0 10 zero\n10 x zero", "table line 2: invalid length 'x'"}));

TEST(TableParse, RejectsEmbeddedNul) {
  const std::string text("0 10 zero\0", 10);
  EXPECT_EQ(error_of([&] { (void)parse_table_text(text); }), "table line 1: contains a NUL byte");
}

class TableBuild : public ::testing::Test {
 protected:
  void SetUp() override {
    storage.add_disk("d0", 1000);
    storage.add_disk("d4k", 1000, 4096);
  }
  std::string build_error(const std::string& text) {
    return error_of([&] { (void)dev.load_text(text); });
  }
  ManualClock clock;
  FakeStorage storage;
  MappedDevice dev{"t", DeviceConfig{}, storage, clock};
};

TEST_F(TableBuild, SortsTargetsByStart) {
  dev.load_text("100 100 zero\n0 100 linear d0 0");
  const TablePtr t = dev.inactive_table();
  ASSERT_EQ(t->target_count(), 2U);
  EXPECT_EQ(t->target(0).type_name(), "linear");
  EXPECT_EQ(t->target(1).start(), 100U);
  EXPECT_EQ(t->size(), 200U);
  EXPECT_EQ(t->find(99), &t->target(0));
  EXPECT_EQ(t->find(100), &t->target(1));
  EXPECT_EQ(t->find(200), nullptr);
}

TEST_F(TableBuild, RejectsAGap) {
  EXPECT_EQ(build_error("0 100 zero\n150 10 zero"), "table line 2: gap in table: sectors 100..149 are not mapped");
}

TEST_F(TableBuild, RejectsATableThatDoesNotStartAtZero) {
  EXPECT_EQ(build_error("8 100 zero"), "table line 1: gap in table: sectors 0..7 are not mapped");
}

TEST_F(TableBuild, RejectsAnOverlap) {
  EXPECT_EQ(build_error("0 100 zero\n50 100 zero"),
            "table line 2: target at sector 50 overlaps the previous target, which ends at 99");
}

TEST_F(TableBuild, RejectsAnUnknownTargetType) {
  EXPECT_EQ(build_error("0 100 zero\n100 1 frobnicate"), "table line 2: unknown target type 'frobnicate'");
}

TEST_F(TableBuild, ReportsTheTargetConstructorsError) {
  EXPECT_EQ(build_error("0 100 linear d0"), "table line 1: linear: expected 2 arguments (<dev> <offset>), got 1");
  EXPECT_EQ(build_error("0 100 linear d0 abc"),
            "table line 1: linear: invalid offset 'abc': expected an unsigned decimal number");
  EXPECT_EQ(build_error("0 100 linear nope 0"), "table line 1: linear: cannot open nope: No such file or directory");
  EXPECT_EQ(build_error("0 100 linear d0 950"),
            "table line 1: linear: device d0 too small: the target needs sectors 950..1050 but it has 1000 sectors");
  EXPECT_EQ(build_error("0 100 zero extra"), "table line 1: zero: expected 0 arguments (none), got 1");
  EXPECT_EQ(build_error("0 16 linear d4k 4"),
            "table line 1: linear: offset 4 and length 16 must be multiples of d4k's logical block size (4096 bytes)");
}

TEST_F(TableBuild, FailedBuildChangesNothing) {
  dev.load_text("0 100 zero");
  const TablePtr before = dev.inactive_table();
  EXPECT_FALSE(build_error("0 100 linear d0 0\n100 100 linear missing 0").empty());
  EXPECT_EQ(dev.inactive_table(), before);
  EXPECT_FALSE(dev.info().live_table);
}

TEST_F(TableBuild, FlushUnitsFollowTheTargets) {
  dev.load_text("0 100 linear d0 0\n100 100 zero\n200 100 linear d0 100");
  const auto& units = dev.inactive_table()->flush_units();
  ASSERT_EQ(units.size(), 2U) << "zero needs no flush";
  EXPECT_EQ(units[0].target, 0U);
  EXPECT_EQ(units[1].target, 2U);
}

TEST(DeviceConfigCheck, RejectsOutOfRangeQueueSettings) {
  FakeStorage storage;
  EXPECT_EQ(error_of([&] { MappedDevice d("x", DeviceConfig{0, 128, 4}, storage); }),
            "queue count 0 out of range: must be between 1 and 64");
  EXPECT_EQ(error_of([&] { MappedDevice d("x", DeviceConfig{1, 5000, 4}, storage); }),
            "queue depth 5000 out of range: must be between 1 and 4096");
}

}  // namespace
}  // namespace ubdm
