// SPDX-License-Identifier: MIT
// The verb table (control/verbs.hpp) is the one list of the protocol's
// verbs: the argument checks follow it, and docs/protocol.md carries its
// reference verbatim.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "control/verbs.hpp"
#include "ubdm/error.hpp"

namespace ubdm::control {
namespace {

using json = nlohmann::json;

// docs/protocol.md, found from the test source's path (relative to the
// build directory, where ctest runs) or from the working directory upwards.
std::filesystem::path protocol_doc() {
  namespace fs = std::filesystem;
  const fs::path from_source = fs::path(__FILE__).parent_path() / ".." / ".." / "docs" / "protocol.md";
  if (fs::exists(from_source)) {
    return from_source;
  }
  for (fs::path dir = fs::current_path(); !dir.empty(); dir = dir.parent_path()) {
    if (fs::exists(dir / "docs" / "protocol.md")) {
      return dir / "docs" / "protocol.md";
    }
    if (dir == dir.parent_path()) {
      break;
    }
  }
  return from_source;
}

TEST(VerbTable, NamesAreUniqueAndEveryArgumentIsDocumented) {
  std::set<std::string_view> names;
  for (const VerbSpec& v : verbs()) {
    EXPECT_TRUE(names.insert(v.name).second) << v.name;
    EXPECT_FALSE(v.summary.empty()) << v.name;
    EXPECT_EQ(find_verb(v.name), &v);
    for (const Arg& a : v.args) {
      EXPECT_FALSE(a.help.empty()) << v.name << " " << a.key;
      EXPECT_NE(a.key, "name") << "name is the scope's, not an argument";
    }
  }
  EXPECT_EQ(find_verb("nosuch"), nullptr);
}

TEST(VerbTable, ProtocolDocCarriesTheTableVerbatim) {
  std::ifstream in(protocol_doc());
  ASSERT_TRUE(in) << "cannot read " << protocol_doc();
  std::stringstream text;
  text << in.rdbuf();
  const std::string doc = text.str();
  const std::string begin = "<!-- verbs: generated from src/control/verbs.cpp -->\n";
  const std::string end = "<!-- end of verbs -->";
  const auto b = doc.find(begin);
  const auto e = doc.find(end);
  ASSERT_NE(b, std::string::npos);
  ASSERT_NE(e, std::string::npos);
  EXPECT_EQ(doc.substr(b + begin.size(), e - b - begin.size()), verb_reference_markdown())
      << "docs/protocol.md is out of date; replace the block between the markers with:\n"
      << verb_reference_markdown();
}

TEST(VerbTable, ChecksEveryArgumentAgainstItsSpec) {
  EXPECT_EQ(&check_request({{"op", "remove"}, {"name", "a"}, {"force", true}}), find_verb("remove"));
  EXPECT_NO_THROW(check_request({{"v", 1}, {"op", "info"}}));
  EXPECT_NO_THROW(check_request({{"op", "message"}, {"name", "a"}, {"sector", 18446744073709551615ULL},
                                 {"args", json::array()}}));
  const auto message = [](const json& req) {
    try {
      check_request(req);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), EINVAL);
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(message({{"op", "remove"}}), "remove: argument 'name' is required");
  EXPECT_EQ(message({{"op", "load"}, {"name", "a"}}), "load: argument 'table' is required");
  EXPECT_EQ(message({{"op", "load"}, {"name", "a"}, {"table", "x"}, {"force", true}}),
            "load: unknown argument 'force'");
  EXPECT_EQ(message({{"op", "create"}, {"name", "a"}, {"table", "x"}, {"queues", 65}}),
            "create: argument 'queues' must be at most 64, not 65");
  EXPECT_EQ(message({{"op", "create"}, {"name", "a"}, {"table", "x"}, {"queues", -1}}),
            "create: argument 'queues' must be a non-negative integer");
  EXPECT_EQ(message({{"op", "suspend"}, {"name", "a"}, {"timeout_ms", 2e12}}),
            "suspend: argument 'timeout_ms' must be a non-negative integer");
  EXPECT_EQ(message({{"op", "suspend"}, {"name", "a"}, {"timeout_ms", 2000000000000ULL}}),
            "suspend: argument 'timeout_ms' must be at most 1000000000000, not 2000000000000");
  EXPECT_EQ(message({{"op", "table"}, {"name", "a"}, {"inactive", nullptr}}),
            "table: argument 'inactive' must be true or false");
  EXPECT_EQ(message({{"op", "message"}, {"name", "a"}, {"sector", 0}, {"args", "fail_path"}}),
            "message: argument 'args' must be an array of strings");
  EXPECT_EQ(message({{"op", "version"}, {"name", "a"}}), "version: takes no device name");
  EXPECT_EQ(message({{"op", "info"}, {"name", json::array()}}), "info: argument 'name' must be a string");
  EXPECT_EQ(message({{"op", std::string(1000, 'x')}}), "unknown operation '" + std::string(64, 'x') + "'");
  EXPECT_EQ(message(json::array()), "malformed request: not a JSON object");
}

}  // namespace
}  // namespace ubdm::control
