// SPDX-License-Identifier: MIT
// dmsetup's column report, reimplemented from its documented behaviour
// (dmsetup(8) "-o", "-O", "--noheadings", "--separator", "--nameprefixes").
#include "cli/report.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <stdexcept>
#include <string_view>

#include <fmt/format.h>

#include "cli/format.hpp"

namespace ubdm::cli {

using nlohmann::json;

// One column: its dmsetup name and heading, the least width of the column,
// and how a device's value reads. Numbers align right and sort numerically.
struct ReportField {
  std::string_view id;
  std::string_view heading;
  std::size_t width;
  bool number;
  std::string (*text)(const json& device);
};

namespace {

std::string number_of(const json& d, const char* key) { return std::to_string(d.at(key).get<std::uint64_t>()); }
bool live(const json& d) { return d.at("live_table").get<bool>(); }
bool inactive(const json& d) { return d.at("inactive_table").get<bool>(); }
bool suspended(const json& d) { return d.at("state").get<std::string>() != "ACTIVE"; }
bool read_only(const json& d) { return d.value("read_only", false); }

// The fields dmsetup's info report has that an `info` reply can answer.
// dmsetup's others (read_ahead, the dependency and LVM fields) are refused
// as unknown rather than printed wrong.
const std::array<ReportField, 13> kFields = {{
    {"name", "Name", 16, false, [](const json& d) { return d.at("name").get<std::string>(); }},
    {"major", "Maj", 3, true, [](const json& d) { return number_of(d, "major"); }},
    {"minor", "Min", 3, true, [](const json& d) { return number_of(d, "minor"); }},
    {"attr", "Stat", 4, false,
     [](const json& d) {
       return std::string{live(d) ? 'L' : '-', inactive(d) ? 'I' : '-', suspended(d) ? 's' : '-',
                          read_only(d) ? 'r' : 'w'};
     }},
    {"open", "Open", 4, true, [](const json& d) { return std::to_string(d.at("open_count").get<std::int64_t>()); }},
    {"segments", "Targ", 4, true, [](const json& d) { return number_of(d, "target_count"); }},
    {"events", "Event", 6, true, [](const json& d) { return number_of(d, "event_nr"); }},
    {"uuid", "UUID", 32, false, [](const json& d) { return d.value("uuid", std::string()); }},
    {"blkdevname", "BlkDevName", 10, false,
     [](const json& d) {
       const std::string dev = d.value("blockdev", std::string());
       return dev.substr(dev.rfind('/') + 1);
     }},
    {"devno", "DevNo", 5, false,
     [](const json& d) {
       return fmt::format("{}:{}", d.at("major").get<std::uint32_t>(), d.at("minor").get<std::uint32_t>());
     }},
    {"tables_loaded", "Tables", 6, false,
     [](const json& d) {
       return std::string(live(d) && inactive(d) ? "Both" : live(d) ? "Live" : inactive(d) ? "Inactive" : "None");
     }},
    {"suspended", "Suspended", 9, false,
     [](const json& d) { return std::string(suspended(d) ? "Suspended" : "Active"); }},
    {"readonly", "Read-only", 9, false,
     [](const json& d) { return std::string(read_only(d) ? "Read-only" : "Writeable"); }},
}};

constexpr std::string_view kDefaultFields = "name,major,minor,attr,open,segments,events,uuid";

const ReportField* find_field(std::string_view id) {
  for (const ReportField& f : kFields) {
    if (f.id == id) {
      return &f;
    }
  }
  return nullptr;
}

const ReportField& field_or_throw(std::string_view id, const char* option) {
  if (const ReportField* f = find_field(id)) {
    return *f;
  }
  std::string known;
  for (const ReportField& f : kFields) {
    known += known.empty() ? "" : ",";
    known += f.id;
  }
  throw std::invalid_argument(fmt::format("{}: unknown field '{}' (fields: {})", option, id, known));
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

}  // namespace

ReportLayout parse_report(const ReportOptions& options) {
  ReportLayout layout;
  layout.options = options;
  std::string_view list = options.fields;
  std::string fields;
  if (list.empty()) {
    fields = kDefaultFields;
  } else if (list.front() == '+') {
    fields = fmt::format("{},{}", kDefaultFields, list.substr(1));
  } else {
    fields = list;
  }
  for (const std::string_view id : split_list(fields)) {
    layout.fields.push_back(&field_or_throw(id, "-o"));
  }
  if (layout.fields.empty()) {
    throw std::invalid_argument("-o: no fields given");
  }
  // dmsetup sorts by name unless told otherwise.
  for (std::string_view key : split_list(options.sort.empty() ? std::string_view("name") : options.sort)) {
    bool descending = false;
    if (key.front() == '-' || key.front() == '+') {
      descending = key.front() == '-';
      key.remove_prefix(1);
    }
    layout.keys.push_back({&field_or_throw(key, "--sort"), descending});
  }
  return layout;
}

std::string format_report(const json& reply, const ReportLayout& layout) {
  const auto& devices = reply.at("devices");
  if (devices.empty()) {
    return "No devices found\n";
  }
  const ReportOptions& o = layout.options;
  // Rows of text, one cell per field, before any padding.
  std::vector<std::vector<std::string>> rows;
  std::vector<const json*> order;
  for (const auto& d : devices) {
    order.push_back(&d);
  }
  const auto less = [&](const json* a, const json* b) {
    for (const auto& k : layout.keys) {
      const std::string x = k.field->text(*a);
      const std::string y = k.field->text(*b);
      if (x == y) {
        continue;
      }
      const bool lt = k.field->number ? std::stoull(x) < std::stoull(y) : x < y;
      return k.descending ? !lt : lt;
    }
    return false;
  };
  std::stable_sort(order.begin(), order.end(), less);
  for (const json* d : order) {
    std::vector<std::string> row;
    for (const ReportField* f : layout.fields) {
      row.push_back(f->text(*d));
    }
    rows.push_back(std::move(row));
  }

  const bool aligned = o.headings && !o.separator && !o.name_prefixes;
  const std::string sep = o.separator ? *o.separator : (o.headings ? " " : ":");
  std::vector<std::size_t> widths;
  for (std::size_t c = 0; c < layout.fields.size(); ++c) {
    std::size_t w = std::max(layout.fields[c]->width, layout.fields[c]->heading.size());
    for (const auto& row : rows) {
      w = std::max(w, row[c].size());
    }
    widths.push_back(aligned ? w : 0);
  }
  const auto line = [&](const std::vector<std::string>& cells, bool heading) {
    std::string out;
    for (std::size_t c = 0; c < cells.size(); ++c) {
      const ReportField& f = *layout.fields[c];
      std::string cell = cells[c];
      if (o.name_prefixes && !heading) {
        cell = fmt::format("DM_{}='{}'", upper(f.id), cell);
      }
      out += c == 0 ? "" : sep;
      out += f.number && !heading ? fmt::format("{:>{}}", cell, widths[c]) : fmt::format("{:<{}}", cell, widths[c]);
    }
    return out + '\n';
  };
  std::string out;
  if (o.headings) {
    std::vector<std::string> heads;
    for (const ReportField* f : layout.fields) {
      heads.emplace_back(f->heading);
    }
    out += line(heads, true);
  }
  for (const auto& row : rows) {
    out += line(row, false);
  }
  return out;
}

}  // namespace ubdm::cli
