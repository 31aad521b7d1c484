// SPDX-License-Identifier: MIT
// dmsetup's column report (`info -c`, `-o FIELDS`, `--noheadings`,
// `--separator`, `-O/--sort`, `--nameprefixes`), over the devices of an
// `info` reply. The field names and headings are dmsetup's, so a script that
// reads dmsetup's report reads ours.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ubdm::cli {

struct ReportOptions {
  std::string fields;  // -o: "" for the default list; "+a,b" appends to it
  std::string sort;    // -O: "a,-b" (a '-' sorts that key descending)
  bool headings = true;                  // false: --noheadings
  std::optional<std::string> separator;  // --separator
  bool name_prefixes = false;            // --nameprefixes: DM_FIELD='value'
};

struct ReportField;

// A checked report: the fields to print and the sort keys.
struct ReportLayout {
  struct Key {
    const ReportField* field;
    bool descending;
  };
  std::vector<const ReportField*> fields;
  std::vector<Key> keys;
  ReportOptions options;
};

// Checks the options before anything is asked of ubdmd. Throws
// std::invalid_argument naming an unknown field, with the known ones.
ReportLayout parse_report(const ReportOptions& options);

// The report of the devices in an `info` reply. As dmsetup: headings and
// values aligned in columns of a least width (numbers to the right), one
// space apart; --noheadings or --separator turn alignment off, and
// --noheadings alone separates with ':'. No devices: "No devices found".
std::string format_report(const nlohmann::json& reply, const ReportLayout& layout);

}  // namespace ubdm::cli
