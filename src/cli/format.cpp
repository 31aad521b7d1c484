// SPDX-License-Identifier: MIT
// dmsetup output formats (lvm2 libdm/dm-tools/dmsetup.c), reimplemented.
#include "cli/format.hpp"

#include <langinfo.h>
#include <locale.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
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

// The glyphs of one drawing style, in dmsetup's terms: the two columns a
// level takes on a line below its node (a gap, or a vertical while that
// level has more to come), the two before a node (a branch, or the last
// one's corner), and compact's three joining a parent to its first child on
// the same line (only child or last: "---"; more to come: "-+-").
struct TreeGlyphs {
  std::string_view gap;
  std::string_view vert;
  std::string_view branch;
  std::string_view last;
  std::string_view single;
  std::string_view first;
};

constexpr TreeGlyphs kAsciiGlyphs{"  ", "| ", "|-", "`-", "---", "-+-"};
// U+2502, U+251C U+2500, U+2514 U+2500, U+2500 x3, U+2500 U+252C U+2500.
constexpr TreeGlyphs kUtfGlyphs{"  ",
                                "\xe2\x94\x82 ",
                                "\xe2\x94\x9c\xe2\x94\x80",
                                "\xe2\x94\x94\xe2\x94\x80",
                                "\xe2\x94\x80\xe2\x94\x80\xe2\x94\x80",
                                "\xe2\x94\x80\xe2\x94\xac\xe2\x94\x80"};
// Each glyph in the DEC special graphics set: ESC ( 0 makes it G0 and SI
// selects G0, ESC ( B brings ASCII back; x t q m w draw as U+2502 U+251C
// U+2500 U+2514 U+252C.
constexpr TreeGlyphs kVt100Glyphs{"  ",
                                  "\x1b(0\x0f" "x" "\x1b(B ",
                                  "\x1b(0\x0f" "tq" "\x1b(B",
                                  "\x1b(0\x0f" "mq" "\x1b(B",
                                  "\x1b(0\x0f" "qqq" "\x1b(B",
                                  "\x1b(0\x0f" "qwq" "\x1b(B"};

const TreeGlyphs& glyphs(TreeSymbols s) {
  switch (s) {
    case TreeSymbols::kUtf:
      return kUtfGlyphs;
    case TreeSymbols::kVt100:
      return kVt100Glyphs;
    case TreeSymbols::kAscii:
      break;
  }
  return kAsciiGlyphs;
}

// dmsetup draws no node deeper than this (its MAX_DEPTH, less the two
// levels it keeps for target lines).
constexpr unsigned kMaxTreeDepth = 100;

// A node of the dependency tree as libdm builds it (dm_tree): index 0 is the
// root; a device links the nodes it uses and they link it back, in the
// order the links were made. The root uses the devices nothing uses yet
// (the top level) and every device that uses nothing links the root (the
// bottom level).
struct DepNode {
  std::string name;    // "" for a device ubdm does not serve
  std::string number;  // "M:m", or a file's path
  std::string blk;     // its kernel name, "" if unknown
  std::string attrs;   // " [...]" as the options ask ("" for a device ubdm does not serve)
  std::vector<std::size_t> deps;  // what it is built over, in the kernel's order
  bool served = false;
  bool in_tree = false;
  std::vector<std::size_t> uses;
  std::vector<std::size_t> used_by;
};

class DepTree {
 public:
  static constexpr std::size_t kRoot = 0;

  explicit DepTree(std::vector<DepNode> nodes) : nodes_(std::move(nodes)) {}

  const DepNode& at(std::size_t i) const { return nodes_[i]; }

  // What libdm's dm_tree_add_dev does for `n` under `parent`: a node whose
  // parent is the root joins the top level only while nothing uses it,
  // and one given a real parent leaves it (and the parent leaves the
  // bottom level). Only a node met for the first time links its own
  // dependencies (or, with none, joins the bottom level).
  void add(std::size_t parent, std::size_t n) {
    DepNode& node = nodes_[n];
    const bool fresh = !node.in_tree;
    node.in_tree = true;
    if (parent != kRoot || children(n, true) == 0) {
      if (parent != kRoot) {
        unlink(kRoot, n);
      }
      unlink(parent, kRoot);
      link(parent, n);
    }
    if (!fresh) {
      return;
    }
    if (!node.served || node.deps.empty()) {
      link(n, kRoot);
      return;
    }
    const std::vector<std::size_t> deps = node.deps;
    for (const std::size_t d : deps) {
      add(n, d);
    }
  }

  // libdm's dm_tree_node_num_children: none at the top level (inverted) or
  // the bottom level (not inverted).
  std::size_t children(std::size_t n, bool inverted) const {
    if (inverted) {
      return linked(kRoot, n) ? 0 : nodes_[n].used_by.size();
    }
    return linked(n, kRoot) ? 0 : nodes_[n].uses.size();
  }

  const std::vector<std::size_t>& next(std::size_t n, bool inverted) const {
    return inverted ? nodes_[n].used_by : nodes_[n].uses;
  }

 private:
  bool linked(std::size_t parent, std::size_t child) const {
    const auto& u = nodes_[parent].uses;
    return std::find(u.begin(), u.end(), child) != u.end();
  }
  void link(std::size_t parent, std::size_t child) {
    if (!linked(parent, child)) {
      nodes_[parent].uses.push_back(child);
      nodes_[child].used_by.push_back(parent);
    }
  }
  void unlink(std::size_t parent, std::size_t child) {
    if (!linked(parent, child)) {
      return;
    }
    auto& u = nodes_[parent].uses;
    u.erase(std::find(u.begin(), u.end(), child));
    auto& b = nodes_[child].used_by;
    if (const auto it = std::find(b.begin(), b.end(), parent); it != b.end()) {
      b.erase(it);
    }
  }

  std::vector<DepNode> nodes_;
};

// dmsetup's tree writer: a node's line is the levels above it (each its
// width plus one blank, then a vertical while that level has more to come),
// its own branch, then its text. Compact writes a parent's first child on
// the parent's line, so a level's width is that of its node's text there.
// Truncation counts columns as dmsetup does (every byte but UTF-8
// continuation bytes, escapes included): a line longer than the width keeps
// one column less and ends in "...".
class TreeWriter {
 public:
  explicit TreeWriter(const TreeOptions& o)
      : o_(o),
        g_(glyphs(o.symbols)),
        attributes_(o.active || o.rw || o.open || o.uuid),
        compact_(o.compact && !attributes_) {}

  void walk(const DepTree& tree, std::size_t parent, unsigned depth) {
    if (depth + 2 > kMaxTreeDepth) {
      return;  // nothing below would be drawn (and a loop ends)
    }
    const std::vector<std::size_t>& kids = tree.next(parent, o_.inverted);
    for (std::size_t i = 0; i < kids.size(); ++i) {
      const std::size_t child = kids[i];
      const bool has_children = tree.children(child, o_.inverted) != 0;
      node(tree.at(child), depth, i + 1 == kids.size(), has_children);
      if (has_children) {
        walk(tree, child, depth + 1);
      }
    }
  }

  std::string take() { return std::move(out_); }

 private:
  // A hidden node (a device ubdm does not serve, with neither its numbers
  // nor its name asked for) leaves its level's state alone, and it still
  // counts as the last child or not.
  void node(const DepNode& n, unsigned depth, bool last, bool has_children) {
    if (depth + 2 > kMaxTreeDepth || (n.name.empty() && !o_.device && !o_.blkdevname)) {
      return;
    }
    more_[depth] = !last;
    width_[depth] = 0;
    const bool first_on_line = x_ == 1;
    if (!compact_ || first_on_line) {
      prefix(depth);
    }
    const unsigned start = x_;
    if (compact_ && !first_on_line) {
      put(more_[depth] ? g_.first : g_.single);
    }
    put(n.name);
    if (o_.blkdevname && !n.blk.empty()) {
      put(" <");
      put(n.blk);
      put(">");
    }
    if (o_.device) {
      put(" (");
      put(n.number);
      put(")");
    }
    if (attributes_ && n.served) {
      put(n.attrs);
    }
    if (compact_) {
      width_[depth] = x_ - start;
    }
    if (!compact_ || !has_children) {
      newline();
    }
  }

  void prefix(unsigned depth) {
    for (unsigned d = 0; d < depth; ++d) {
      for (unsigned k = 0; k <= width_[d]; ++k) {
        put(" ");
      }
      if (d + 1 == depth) {
        put(more_[depth] ? g_.branch : g_.last);
      } else {
        put(more_[d + 1] ? g_.vert : g_.gap);
      }
    }
  }

  void put(std::string_view s) {
    for (const char c : s) {
      put_byte(static_cast<unsigned char>(c));
    }
  }

  void put_byte(unsigned char c) {
    const bool starts_char = (c & 0xC0U) != 0x80U;
    x_ += starts_char ? 1 : 0;
    if (!o_.truncate) {
      out_ += static_cast<char>(c);
      return;
    }
    if (x_ <= o_.columns) {
      out_ += static_cast<char>(c);
    }
    if (x_ == o_.columns + 1 && starts_char) {
      // The column past the width: kept back in case the line ends here
      // (then it fits), unless one is kept already or it is not ASCII.
      if (held_ != 0 || (c & 0x80U) != 0) {
        out_ += "...";
      } else {
        held_ = static_cast<char>(c);
        --x_;
      }
    }
  }

  void newline() {
    if (held_ != 0 && x_ == o_.columns) {
      out_ += held_;
    }
    held_ = 0;
    out_ += '\n';
    x_ = 1;
  }

  const TreeOptions& o_;
  const TreeGlyphs& g_;
  const bool attributes_;
  const bool compact_;
  std::array<unsigned, kMaxTreeDepth> width_{};
  std::array<bool, kMaxTreeDepth> more_{};
  unsigned x_ = 1;  // the column the next character takes
  char held_ = 0;
  std::string out_;
};

}  // namespace

TreeSymbols default_tree_symbols(std::string_view codeset) {
  return codeset == "UTF-8" ? TreeSymbols::kUtf : TreeSymbols::kAscii;
}

std::string environment_codeset() {
  locale_t loc = ::newlocale(LC_ALL_MASK, "", nullptr);
  if (loc == nullptr) {
    loc = ::newlocale(LC_ALL_MASK, "C", nullptr);
  }
  if (loc == nullptr) {
    return "ANSI_X3.4-1968";
  }
  std::string codeset = ::nl_langinfo_l(CODESET, loc);
  ::freelocale(loc);
  return codeset;
}

TreeOptions parse_tree_options(std::string_view list, TreeSymbols symbols) {
  TreeOptions o;
  o.symbols = symbols;
  // Each option sets one switch or picks the drawing.
  static constexpr std::array<std::pair<std::string_view, std::pair<bool TreeOptions::*, bool>>, 10> kSwitches{{
      {"device", {&TreeOptions::device, true}},
      {"nodevice", {&TreeOptions::device, false}},
      {"blkdevname", {&TreeOptions::blkdevname, true}},
      {"active", {&TreeOptions::active, true}},
      {"open", {&TreeOptions::open, true}},
      {"rw", {&TreeOptions::rw, true}},
      {"uuid", {&TreeOptions::uuid, true}},
      {"inverted", {&TreeOptions::inverted, true}},
      {"compact", {&TreeOptions::compact, true}},
      {"notrunc", {&TreeOptions::truncate, false}},
  }};
  static constexpr std::array<std::pair<std::string_view, TreeSymbols>, 3> kSymbols{{
      {"ascii", TreeSymbols::kAscii},
      {"utf", TreeSymbols::kUtf},
      {"vt100", TreeSymbols::kVt100},
  }};
  for (const std::string_view w : split_list(list)) {
    const auto* sym = std::find_if(kSymbols.begin(), kSymbols.end(), [&](const auto& s) { return s.first == w; });
    if (sym != kSymbols.end()) {
      o.symbols = sym->second;
      continue;
    }
    const auto* it = std::find_if(kSwitches.begin(), kSwitches.end(), [&](const auto& s) { return s.first == w; });
    if (it == kSwitches.end()) {
      throw std::invalid_argument(fmt::format(
          "ls --tree -o {} is not supported (supported: device, nodevice, blkdevname, active, open, rw, uuid, "
          "inverted, compact, notrunc, ascii, utf, vt100)",
          w));
    }
    o.*(it->second.first) = it->second.second;
  }
  return o;
}

void fit_tree_to_terminal(TreeOptions& opts, unsigned terminal_columns) {
  if (opts.symbols != TreeSymbols::kVt100 && terminal_columns > 3) {
    opts.columns = terminal_columns - 3;
  }
}

unsigned stdout_terminal_columns() {
  winsize ws{};
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0) {
    return 0;
  }
  return ws.ws_col;
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
  // The devices by name, as the kernel lists dm's.
  std::map<std::string, const nlohmann::json*> devices;
  for (const auto& d : ls_reply.at("devices")) {
    devices[d.at("name").get<std::string>()] = &d;
  }
  if (devices.empty()) {
    return kNoDevices;
  }
  std::vector<DepNode> nodes(1);            // [0]: the root
  std::map<std::string, std::size_t> index;  // by "M:m" (or a file's path)
  std::vector<std::size_t> order;            // the devices' nodes, by name
  for (const auto& [name, d] : devices) {
    DepNode n;
    n.name = name;
    n.number = devno(*d);
    n.blk = basename_of(d->value("blockdev", std::string()));
    n.served = true;
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
      n.attrs = " [" + fmt::format("{}", fmt::join(attrs, ", ")) + "]";
    }
    index.emplace(n.number, nodes.size());
    order.push_back(nodes.size());
    nodes.push_back(std::move(n));
  }
  for (const std::size_t i : order) {
    const auto deps = deps_by_name.find(nodes[i].name);
    if (deps == deps_by_name.end()) {
      continue;  // removed since ls: drawn as over nothing
    }
    for (const auto& dep : deps->at("deps")) {
      const auto major = dep.at("major").get<std::uint32_t>();
      const auto minor = dep.at("minor").get<std::uint32_t>();
      const std::string path = dep.value("path", std::string());
      const bool file = major == 0 && minor == 0 && !path.empty();
      const std::string key = file ? path : devno(dep);
      auto [it, added] = index.emplace(key, nodes.size());
      if (added) {
        // Not a ubdm device: no name, only what the options show.
        DepNode leaf;
        leaf.number = key;
        if (opts.blkdevname && !file && kname) {
          leaf.blk = kname(major, minor);
        }
        nodes.push_back(std::move(leaf));
      }
      nodes[i].deps.push_back(it->second);
    }
  }
  DepTree tree(std::move(nodes));
  for (const std::size_t i : order) {
    tree.add(DepTree::kRoot, i);
  }
  TreeWriter writer(opts);
  writer.walk(tree, DepTree::kRoot, 0);
  return writer.take();
}

}  // namespace ubdm::cli
