// SPDX-License-Identifier: MIT
// dmsetup output formats (lvm2 libdm/dm-tools/dmsetup.c), reimplemented.
#include "cli/format.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "metrics/device_stats.hpp"
#include "ublk/abi.hpp"

namespace ubdm::cli {
namespace {

constexpr const char* kNoDevices = "No devices found\n";

// dmsetup's long info pads every label to 19 characters.
void labelled(std::string& out, std::string_view label, std::string_view value) {
  out += fmt::format("{:<19}{}\n", label, value);
}

// Rows aligned in columns, each line indented by two spaces, trailing blanks cut.
std::string aligned_rows(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(rows.empty() ? 0 : rows[0].size(), 0);
  for (const auto& r : rows) {
    for (std::size_t i = 0; i < r.size() && i < width.size(); ++i) {
      width[i] = std::max(width[i], r[i].size());
    }
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line = " ";
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += " " + r[i];
      if (i + 1 < r.size()) {
        line += std::string(width[i] - r[i].size(), ' ');
      }
    }
    while (!line.empty() && line.back() == ' ') {
      line.pop_back();
    }
    out += line + "\n";
  }
  return out;
}

std::string tables_present(bool live, bool inactive) {
  if (live && inactive) {
    return "LIVE & INACTIVE";
  }
  if (live) {
    return "LIVE";
  }
  if (inactive) {
    return "INACTIVE";
  }
  return "None";
}

}  // namespace

std::string format_info(const nlohmann::json& reply) {
  const auto& devices = reply.at("devices");
  if (devices.empty()) {
    return kNoDevices;
  }
  std::string out;
  for (const auto& d : devices) {
    labelled(out, "Name:", d.at("name").get<std::string>());
    labelled(out, "State:", d.at("state").get<std::string>() + (d.value("read_only", false) ? " (READ-ONLY)" : ""));
    labelled(out, "Tables present:",
             tables_present(d.at("live_table").get<bool>(), d.at("inactive_table").get<bool>()));
    labelled(out, "Open count:", std::to_string(d.at("open_count").get<std::int64_t>()));
    labelled(out, "Event number:", std::to_string(d.at("event_nr").get<std::uint64_t>()));
    labelled(out, "Major, minor:",
             fmt::format("{}, {}", d.at("major").get<std::uint32_t>(), d.at("minor").get<std::uint32_t>()));
    labelled(out, "Number of targets:", std::to_string(d.at("target_count").get<std::uint64_t>()));
    if (const std::string uuid = d.value("uuid", std::string()); !uuid.empty()) {
      out += "UUID: " + uuid + '\n';  // one space, as dmsetup's
    }
    const std::string blockdev = d.value("blockdev", std::string());
    labelled(out, "Block device:", blockdev.empty() ? "none" : blockdev);
    const std::string data_path = d.value("data_path", std::string());
    if (!data_path.empty()) {
      labelled(out, "Data path:", data_path);
    }
    out += '\n';
  }
  return out;
}

namespace {

// The target type of a table or status line, "<start> <length> <type> ...".
std::string_view line_type(std::string_view line) {
  std::size_t pos = 0;
  for (int word = 0; word < 2; ++word) {
    pos = line.find(' ', pos);
    if (pos == std::string_view::npos) {
      return {};
    }
    ++pos;
  }
  return line.substr(pos, line.find(' ', pos) - pos);
}

}  // namespace

std::string format_lines(const nlohmann::json& reply, bool with_names, std::string_view target) {
  const auto& devices = reply.at("devices");
  if (devices.empty()) {
    return with_names ? kNoDevices : "";
  }
  std::string out;
  for (const auto& d : devices) {
    const std::string prefix = with_names ? d.at("name").get<std::string>() + ": " : std::string();
    const auto& lines = d.at("lines");
    if (lines.empty()) {
      // dmsetup prints the (prefixed) line even when the table has no
      // targets, unless only some targets were asked for.
      if (target.empty()) {
        out += prefix + '\n';
      }
      continue;
    }
    for (const auto& line : lines) {
      const auto& text = line.get_ref<const std::string&>();
      if (target.empty() || line_type(text) == target) {
        out += prefix + text + '\n';
      }
    }
  }
  return out;
}

bool has_target_type(const nlohmann::json& table_device, std::string_view target) {
  const auto& lines = table_device.at("lines");
  return std::any_of(lines.begin(), lines.end(),
                     [&](const auto& l) { return line_type(l.template get_ref<const std::string&>()) == target; });
}

std::string format_ls_with_target(const nlohmann::json& ls_reply, const nlohmann::json& table_reply,
                                  std::string_view target) {
  std::string out;
  for (const auto& d : ls_reply.at("devices")) {
    const std::string& name = d.at("name").get_ref<const std::string&>();
    for (const auto& t : table_reply.at("devices")) {
      if (t.at("name") == name && has_target_type(t, target)) {
        out += fmt::format("{}\t({}, {})\n", name, d.at("major").get<std::uint32_t>(), d.at("minor").get<std::uint32_t>());
      }
    }
  }
  return out;
}

namespace {

std::string basename_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string concise_field(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (c == ',' || c == ';' || c == '\\') {
      out += '\\';
    }
    out += c;
  }
  return out;
}

}  // namespace

std::string format_concise(const nlohmann::json& info_reply, const nlohmann::json& table_reply) {
  std::string out;
  for (const auto& d : info_reply.at("devices")) {
    const std::string& name = d.at("name").get_ref<const std::string&>();
    out += out.empty() ? "" : ";";
    out += fmt::format("{},{},{},{}", concise_field(name), concise_field(d.value("uuid", std::string())),
                       d.at("minor").get<std::uint32_t>(), d.value("read_only", false) ? "ro" : "rw");
    for (const auto& t : table_reply.at("devices")) {
      if (t.at("name") == name) {
        for (const auto& line : t.at("lines")) {
          out += "," + concise_field(line.get_ref<const std::string&>());
        }
      }
    }
  }
  return out.empty() ? std::string(kNoDevices) : out + '\n';
}

std::vector<std::string_view> split_list(std::string_view list) {
  std::vector<std::string_view> out;
  while (!list.empty()) {
    const auto comma = list.find(',');
    const std::string_view item = list.substr(0, comma);
    if (!item.empty()) {
      out.push_back(item);
    }
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
  }
  return out;
}

LsName parse_ls_options(std::string_view list) {
  LsName name = LsName::kDevno;
  for (const std::string_view w : split_list(list)) {
    if (w == "devname") {
      name = LsName::kDevname;
    } else if (w == "blkdevname") {
      name = name == LsName::kDevname ? name : LsName::kBlkdevname;
    } else if (w != "devno") {
      throw std::invalid_argument(
          fmt::format("ls -o {} is not supported (supported: devno, blkdevname, devname)", w));
    }
  }
  return name;
}

std::string format_ls(const nlohmann::json& reply, LsName name) {
  const auto& devices = reply.at("devices");
  if (devices.empty()) {
    return kNoDevices;
  }
  std::string out;
  for (const auto& d : devices) {
    const std::string n = d.at("name").get<std::string>();
    switch (name) {
      case LsName::kDevno:
        out += fmt::format("{}\t({}:{})\n", n, d.at("major").get<std::uint32_t>(), d.at("minor").get<std::uint32_t>());
        break;
      case LsName::kBlkdevname:
        out += fmt::format("{}\t({})\n", n, basename_of(d.value("blockdev", std::string())));
        break;
      case LsName::kDevname:
        out += fmt::format("{}\t({})\n", n, n);
        break;
    }
  }
  return out;
}

std::string format_targets(const nlohmann::json& reply) {
  std::string out;
  for (const auto& t : reply.at("targets")) {
    const auto& v = t.at("version");
    out += fmt::format("{:<16} v{}.{}.{}\n", t.at("name").get<std::string>(), v.at(0).get<unsigned>(),
                       v.at(1).get<unsigned>(), v.at(2).get<unsigned>());
  }
  return out;
}

std::string format_deps(const nlohmann::json& reply) {
  const auto& deps = reply.at("deps");
  std::string out = fmt::format("{} dependencies\t:", deps.size());
  for (const auto& dep : deps) {
    const auto major = dep.at("major").get<std::uint32_t>();
    const auto minor = dep.at("minor").get<std::uint32_t>();
    const std::string path = dep.value("path", std::string());
    if (major == 0 && minor == 0 && !path.empty()) {
      out += fmt::format(" ({})", path);
    } else {
      out += fmt::format(" ({}, {})", major, minor);
    }
  }
  out += '\n';
  return out;
}

std::string format_client_version(const std::string& cli_version) {
  std::string out;
  labelled(out, "ubdmsetup version:", cli_version);
  return out;
}

std::string format_daemon_version(const nlohmann::json& reply) {
  std::string out;
  labelled(out, "ubdmd version:", reply.at("daemon_version").get<std::string>());
  labelled(out, "Protocol version:", std::to_string(reply.at("protocol").get<int>()));
  const std::string features = reply.value("ublk_features", std::string());
  if (!features.empty()) {
    labelled(out, "ublk features:", features);
    // The optional features ubdm uses, by name.
    const std::uint64_t bits = std::stoull(features, nullptr, 16);
    labelled(out, "Zero copy:", (bits & ublk::kFeatAutoBufReg) != 0 ? "yes (UBLK_F_AUTO_BUF_REG)" : "no (copy mode)");
    labelled(out, "Online resize:", (bits & ublk::kFeatUpdateSize) != 0 ? "yes (UBLK_F_UPDATE_SIZE)" : "no");
  }
  return out;
}

std::string format_message_reply(const nlohmann::json& reply) {
  std::string text = reply.value("reply", std::string());
  if (!text.empty() && text.back() != '\n') {
    text += '\n';
  }
  return text;
}

std::string format_paths(const nlohmann::json& reply) {
  const nlohmann::json& devices = reply.at("devices");
  if (devices.empty()) {
    return "No multipath devices found\n";
  }
  std::string out;
  for (const nlohmann::json& d : devices) {
    const std::string npr = d.at("no_path_retry").get<std::string>();
    std::string queueing = d.at("queue_if_no_path").get<bool>() ? "on" : "off";
    const long remaining = d.at("recovery_remaining_ms").get<long>();
    if (remaining >= 0) {
      queueing += fmt::format(" ({} ms left)", remaining);
    }
    const unsigned interval = d.at("check_interval_s").get<unsigned>();
    out += fmt::format("{}: {} valid path(s), queue_if_no_path {}, no_path_retry {}, checker {}\n",
                       d.at("name").get<std::string>(), d.at("valid_paths").get<unsigned>(), queueing,
                       npr.empty() ? "-" : npr, interval == 0 ? std::string("off") : fmt::format("every {}s", interval));
    std::vector<std::vector<std::string>> rows;
    rows.push_back({"GROUP", "DEVICE", "PATH", "STATE", "FAILS", "CHECKER", "IN_FLIGHT", "IOS", "SELECTOR"});
    for (const nlohmann::json& p : d.at("paths")) {
      const unsigned g = p.at("group").get<unsigned>();
      std::string group = std::to_string(g);
      for (const nlohmann::json& gr : d.at("groups")) {
        if (gr.at("number").get<unsigned>() == g) {
          group += fmt::format(" {} {}", gr.at("state").get<std::string>(), gr.at("selector").get<std::string>());
        }
      }
      rows.push_back({group, p.at("device").get<std::string>(), p.at("path").get<std::string>(),
                      p.at("state").get<std::string>(), std::to_string(p.at("fail_count").get<unsigned>()),
                      p.at("checker").get<std::string>(), std::to_string(p.at("in_flight").get<std::uint64_t>()),
                      std::to_string(p.at("ios").get<std::uint64_t>()), p.at("selector_info").get<std::string>()});
    }
    out += aligned_rows(rows);
  }
  return out;
}

std::string format_stats(const nlohmann::json& reply) {
  const nlohmann::json& devices = reply.at("devices");
  if (devices.empty()) {
    return kNoDevices;
  }
  const auto u64 = [](const nlohmann::json& v) { return std::to_string(v.get<std::uint64_t>()); };
  std::string out;
  for (const nlohmann::json& d : devices) {
    const nlohmann::json& io = d.at("io");
    out += fmt::format("{}: {}, {} bytes, event_nr {}, queued {}, pushed back {}, requeues {}\n",
                       d.at("name").get<std::string>(), d.at("state").get<std::string>(), u64(d.at("size_bytes")),
                       u64(d.at("event_nr")), u64(io.at("queued")), u64(io.at("pushed_back")),
                       u64(io.at("requeues")));
    std::vector<std::vector<std::string>> rows;
    rows.push_back({"OP", "IOS", "BYTES", "ERRORS", "IN_FLIGHT", "MEAN_US", "P50_US", "P99_US"});
    for (const char* op : kStatOpNames) {  // Op's order, not JSON's alphabetical one
      const nlohmann::json& o = io.at("ops").at(op);
      const nlohmann::json& lat = o.at("latency");
      const std::uint64_t timed = [&] {
        std::uint64_t n = 0;
        for (const auto& c : lat.at("counts")) {
          n += c.get<std::uint64_t>();
        }
        return n;
      }();
      // Percentiles are bucket bounds (powers of two): "at most".
      const auto pct = [&](double q) {
        return timed == 0 ? std::string("-") : fmt::format("<={}", metrics::latency_quantile_us(lat.at("counts"), q));
      };
      rows.push_back({op, u64(o.at("ios")), u64(o.at("bytes")), u64(o.at("errors")), u64(o.at("in_flight")),
                      timed == 0 ? "-" : std::to_string(lat.at("sum_ns").get<std::uint64_t>() / timed / 1000),
                      pct(0.5), pct(0.99)});
    }
    out += aligned_rows(rows);
    const nlohmann::json& paths = d.at("paths");
    if (!paths.empty()) {
      rows.clear();
      rows.push_back({"PATH", "DEVICE", "GROUP", "STATE", "FAILS", "REINSTATES", "CHECKER", "IN_FLIGHT", "IOS"});
      for (const nlohmann::json& p : paths) {
        rows.push_back({p.at("path").get<std::string>(), p.at("device").get<std::string>(),
                        std::to_string(p.at("group").get<unsigned>()), p.at("state").get<std::string>(),
                        std::to_string(p.at("fail_count").get<unsigned>()),
                        std::to_string(p.at("reinstate_count").get<unsigned>()), p.at("checker").get<std::string>(),
                        u64(p.at("in_flight")), u64(p.at("ios"))});
      }
      out += aligned_rows(rows);
    }
  }
  return out;
}

namespace {

struct TreeNode {
  std::string label;                 // what the line shows after the connector
  bool shown = true;                 // false: a leaf with nothing to show (nodevice)
  std::vector<std::string> children; // keys into the node map, in the kernel's order
};

// One line per node below `key`, as dmsetup draws its ASCII tree: each
// level adds " " and then, for the levels above, "| " while that level has
// more to come ("  " once it has not), and for the node itself "|-" or
// "`-" for the last child.
void draw(const std::map<std::string, TreeNode>& nodes, const std::string& key, std::string& prefix,
          bool last, int depth, std::string& out) {
  const TreeNode& n = nodes.at(key);
  if (!n.shown) {
    return;
  }
  if (depth == 0) {
    out += n.label + "\n";
  } else {
    out += prefix + " " + (last ? "`-" : "|-") + n.label + "\n";
  }
  if (depth > 64) {
    return;  // a loop would need a device built over itself; never draw one forever
  }
  const std::size_t keep = prefix.size();
  if (depth > 0) {
    prefix += last ? "   " : " | ";
  }
  std::vector<const std::string*> shown;
  for (const std::string& c : n.children) {
    if (nodes.at(c).shown) {
      shown.push_back(&c);
    }
  }
  for (std::size_t i = 0; i < shown.size(); ++i) {
    draw(nodes, *shown[i], prefix, i + 1 == shown.size(), depth + 1, out);
  }
  prefix.resize(keep);
}

}  // namespace

TreeOptions parse_tree_options(std::string_view list) {
  TreeOptions o;
  // Each option sets one switch; ascii and notrunc are what ubdmsetup does anyway.
  static constexpr std::array<std::pair<std::string_view, std::pair<bool TreeOptions::*, bool>>, 7> kSwitches{{
      {"device", {&TreeOptions::device, true}},
      {"nodevice", {&TreeOptions::device, false}},
      {"blkdevname", {&TreeOptions::blkdevname, true}},
      {"active", {&TreeOptions::active, true}},
      {"open", {&TreeOptions::open, true}},
      {"rw", {&TreeOptions::rw, true}},
      {"uuid", {&TreeOptions::uuid, true}},
  }};
  for (const std::string_view w : split_list(list)) {
    if (w == "ascii" || w == "notrunc") {
      continue;
    }
    const auto* it = std::find_if(kSwitches.begin(), kSwitches.end(), [&](const auto& s) { return s.first == w; });
    if (it == kSwitches.end()) {
      throw std::invalid_argument(fmt::format(
          "ls --tree -o {} is not supported (supported: device, nodevice, blkdevname, active, open, rw, uuid, "
          "ascii, notrunc)",
          w));
    }
    o.*(it->second.first) = it->second.second;
  }
  return o;
}

std::string format_ls_tree(const nlohmann::json& ls_reply, const nlohmann::json& deps_by_name,
                           const nlohmann::json& info_reply, const TreeOptions& opts, const KernelName& kname) {
  const auto devno = [](const nlohmann::json& d) {
    return fmt::format("{}:{}", d.at("major").get<std::uint32_t>(), d.at("minor").get<std::uint32_t>());
  };
  std::map<std::string, const nlohmann::json*> info;
  for (const auto& d : info_reply.at("devices")) {
    info[d.at("name").get<std::string>()] = &d;
  }
  std::map<std::string, TreeNode> nodes;    // by "M:m" (or a file's path)
  std::map<std::string, std::string> roots;  // name -> key, in name order
  std::set<std::string> used;
  for (const auto& d : ls_reply.at("devices")) {
    const std::string name = d.at("name").get<std::string>();
    const std::string key = devno(d);
    std::string label = name;
    if (opts.blkdevname) {
      label += fmt::format(" <{}>", basename_of(d.value("blockdev", std::string())));
    }
    if (opts.device) {
      label += fmt::format(" ({})", key);
    }
    // dmsetup's order: state, access, open count, UUID.
    std::vector<std::string> attrs;
    if (const auto it = info.find(name); it != info.end()) {
      const nlohmann::json& i = *it->second;
      if (opts.active) {
        attrs.push_back(i.value("state", std::string()) == "ACTIVE" ? "ACTIVE" : "SUSPENDED");
      }
      if (opts.rw) {
        attrs.push_back(i.value("read_only", false) ? "RO" : "RW");
      }
      if (opts.open) {
        attrs.push_back(std::to_string(i.value("open_count", 0)));
      }
      if (opts.uuid) {
        attrs.push_back(i.value("uuid", std::string()));
      }
    }
    if (!attrs.empty()) {
      label += " [" + fmt::format("{}", fmt::join(attrs, ", ")) + "]";
    }
    nodes[key].label = label;
    roots.emplace(name, key);
  }
  for (const auto& d : ls_reply.at("devices")) {
    const std::string name = d.at("name").get<std::string>();
    const auto deps = deps_by_name.find(name);
    if (deps == deps_by_name.end()) {
      continue;
    }
    for (const auto& dep : deps->at("deps")) {
      const auto major = dep.at("major").get<std::uint32_t>();
      const auto minor = dep.at("minor").get<std::uint32_t>();
      const std::string path = dep.value("path", std::string());
      const bool file = major == 0 && minor == 0 && !path.empty();
      const std::string key = file ? path : devno(dep);
      if (nodes.count(key) == 0) {
        // Not a ubdm device: a leaf with no name, only what the options show.
        TreeNode& leaf = nodes[key];
        leaf.shown = opts.device;
        if (opts.blkdevname && !file) {
          leaf.label += fmt::format(" <{}>", kname ? kname(major, minor) : std::string());
        }
        leaf.label += fmt::format(" ({})", key);
      }
      nodes[devno(d)].children.push_back(key);
      used.insert(key);
    }
  }
  std::string out;
  for (const auto& [name, key] : roots) {
    if (used.count(key) == 0) {
      std::string prefix;
      draw(nodes, key, prefix, true, 0, out);
    }
  }
  return out.empty() ? std::string(kNoDevices) : out;
}


}  // namespace ubdm::cli
