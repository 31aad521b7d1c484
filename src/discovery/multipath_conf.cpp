// SPDX-License-Identifier: MIT
#include "discovery/multipath_conf.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "ubdm/error.hpp"

namespace ubdm::discovery {

// ---------------------------------------------------------------------------
// Regex

Regex Regex::compile(const std::string& text, Bang bang) {
  Regex r;
  r.text_ = text;
  std::string expr = text;
  if (bang == Bang::kInverts) {
    // libmultipath/blacklist.c check_invert(): "!x" inverts, "\!x" is the
    // expression "!x".
    if (!expr.empty() && expr[0] == '!') {
      r.invert_ = true;
      expr.erase(0, 1);
    } else if (expr.size() >= 2 && expr[0] == '\\' && expr[1] == '!') {
      expr.erase(0, 1);
    }
  }
  auto re = std::make_unique<regex_t>();
  const int rc = ::regcomp(re.get(), expr.c_str(), REG_EXTENDED | REG_NOSUB);
  if (rc != 0) {
    char why[256];
    ::regerror(rc, re.get(), why, sizeof why);
    fail_invalid("invalid regular expression \"{}\": {}", text, why);
  }
  r.re_ = std::shared_ptr<regex_t>(re.release(), [](regex_t* p) {
    ::regfree(p);
    delete p;
  });
  return r;
}

bool Regex::matches(std::string_view s) const {
  const std::string subject(s);
  const bool hit = ::regexec(re_.get(), subject.c_str(), 0, nullptr, 0) == 0;
  return hit != invert_;
}

// ---------------------------------------------------------------------------
// Names

const char* pgpolicy_name(PgPolicy p) {
  switch (p) {
    case PgPolicy::kFailover: return "failover";
    case PgPolicy::kMultibus: return "multibus";
    case PgPolicy::kGroupBySerial: return "group_by_serial";
    case PgPolicy::kGroupByPrio: return "group_by_prio";
    case PgPolicy::kGroupByNodeName: return "group_by_node_name";
    case PgPolicy::kGroupByTpg: return "group_by_tpg";
  }
  return "?";
}

std::string failback_text(const Failback& f) {
  switch (f.kind) {
    case Failback::Kind::kManual: return "manual";
    case Failback::Kind::kImmediate: return "immediate";
    case Failback::Kind::kFollowover: return "followover";
    case Failback::Kind::kDeferred: return std::to_string(f.seconds);
  }
  return "?";
}

std::string no_path_retry_text(const NoPathRetry& n) {
  switch (n.kind) {
    case NoPathRetry::Kind::kFail: return "fail";
    case NoPathRetry::Kind::kQueue: return "queue";
    case NoPathRetry::Kind::kRetries: return std::to_string(n.retries);
  }
  return "?";
}

const char* find_multipaths_name(FindMultipaths f) {
  switch (f) {
    case FindMultipaths::kOff: return "off";
    case FindMultipaths::kOn: return "on";
    case FindMultipaths::kStrict: return "strict";
    case FindMultipaths::kGreedy: return "greedy";
    case FindMultipaths::kSmart: return "smart";
  }
  return "?";
}

const char* warning_kind_name(Warning::Kind k) {
  switch (k) {
    case Warning::Kind::kUnknownKeyword: return "unknown-keyword";
    case Warning::Kind::kUnknownSection: return "unknown-section";
    case Warning::Kind::kNotUsed: return "not-used";
    case Warning::Kind::kDeprecated: return "deprecated";
    case Warning::Kind::kInvalidValue: return "invalid-value";
    case Warning::Kind::kExtraData: return "extra-data";
    case Warning::Kind::kDuplicate: return "duplicate";
    case Warning::Kind::kDropped: return "dropped";
  }
  return "?";
}

const char* origin_name(Origin o) {
  switch (o) {
    case Origin::kBuiltin: return "built-in";
    case Origin::kBuiltinHardware: return "built-in hardware table";
    case Origin::kDefaults: return "defaults section";
    case Origin::kDevices: return "devices section";
    case Origin::kMultipaths: return "multipaths section";
    case Origin::kOverrides: return "overrides section";
  }
  return "?";
}

const MultipathEntry* Config::multipath_for(std::string_view wwid) const {
  for (const MultipathEntry& e : multipaths) {
    if (e.wwid == wwid) {
      return &e;
    }
  }
  return nullptr;
}

namespace {

// ---------------------------------------------------------------------------
// Lines into tokens

struct Token {
  std::string text;
  bool quoted = false;
  bool is(char brace) const { return !quoted && text.size() == 1 && text[0] == brace; }
};

// Outside quotes multipathd treats bytes that are not ASCII like white space
// (libmpathutil/parser.c alloc_strvec()); we do the same, so that a file
// reads alike in both.
bool separates(unsigned char c) { return std::isspace(c) != 0 || c >= 0x80; }

// One line into words, braces and quoted strings. A '#' or '!' outside
// quotes ends the line; '""' inside quotes is one '"'.
std::vector<Token> tokenize(std::string_view line, const std::string& source, int line_no) {
  std::vector<Token> out;
  std::size_t i = 0;
  while (i < line.size()) {
    const auto c = static_cast<unsigned char>(line[i]);
    if (separates(c)) {
      ++i;
    } else if (c == '#' || c == '!') {
      break;
    } else if (c == '{' || c == '}') {
      out.push_back({std::string(1, static_cast<char>(c)), false});
      ++i;
    } else if (c == '"') {
      Token t;
      t.quoted = true;
      ++i;
      bool closed = false;
      while (i < line.size()) {
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            t.text += '"';
            i += 2;
            continue;
          }
          ++i;
          closed = true;
          break;
        }
        t.text += line[i++];
      }
      if (!closed) {
        fail_invalid("{} line {}: a quoted string is not closed", source, line_no);
      }
      out.push_back(std::move(t));
    } else {
      Token t;
      while (i < line.size()) {
        const auto d = static_cast<unsigned char>(line[i]);
        if (separates(d) || d == '#' || d == '!' || d == '{' || d == '}' || d == '"') {
          break;
        }
        t.text += line[i++];
      }
      out.push_back(std::move(t));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Keyword tables (the names are libmultipath/dict.c init_keywords()'s)

enum Scope : unsigned {
  kDef = 1U << 0,  // defaults
  kDev = 1U << 1,  // devices { device }
  kMp = 1U << 2,   // multipaths { multipath }
  kOvr = 1U << 3,  // overrides
};

struct NamedScope {
  const char* name;
  unsigned scopes;
};

// Keywords multipath-tools reads in these sections that ubdm does not act
// on (yet). Accepted and kept as written, with a kNotUsed note.
constexpr NamedScope kUnused[] = {
    {"verbosity", kDef},
    {"reassign_maps", kDef},
    {"max_fds", kDef},
    {"queue_without_daemon", kDef},
    {"checker_timeout", kDef},
    {"flush_on_last_del", kDef | kDev | kMp | kOvr},
    {"mode", kDef | kMp},
    {"uid", kDef | kMp},
    {"gid", kDef | kMp},
    {"fast_io_fail_tmo", kDef | kDev | kOvr},
    {"dev_loss_tmo", kDef | kDev | kOvr},
    {"eh_deadline", kDef | kDev | kOvr},
    {"max_retries", kDef},
    {"log_checker_err", kDef},
    {"reservation_key", kDef | kMp},
    {"all_tg_pt", kDef | kDev | kOvr},
    {"retain_attached_hw_handler", kDef | kDev | kOvr},
    {"detect_prio", kDef | kDev | kOvr},
    {"detect_checker", kDef | kDev | kOvr},
    {"detect_pgpolicy", kDef | kDev | kOvr},
    {"detect_pgpolicy_use_tpg", kDef | kDev | kOvr},
    {"force_sync", kDef},
    {"strict_timing", kDef},
    {"deferred_remove", kDef | kDev | kMp | kOvr},
    {"partition_delimiter", kDef},
    {"delay_watch_checks", kDef | kDev | kMp | kOvr},
    {"delay_wait_checks", kDef | kDev | kMp | kOvr},
    {"san_path_err_threshold", kDef | kDev | kMp | kOvr},
    {"san_path_err_forget_rate", kDef | kDev | kMp | kOvr},
    {"san_path_err_recovery_time", kDef | kDev | kMp | kOvr},
    {"marginal_path_err_sample_time", kDef | kDev | kMp | kOvr},
    {"marginal_path_err_rate_threshold", kDef | kDev | kMp | kOvr},
    {"marginal_path_err_recheck_gap_time", kDef | kDev | kMp | kOvr},
    {"marginal_path_double_failed_time", kDef | kDev | kMp | kOvr},
    {"uxsock_timeout", kDef},
    {"retrigger_tries", kDef},
    {"retrigger_delay", kDef},
    {"missing_uev_wait_timeout", kDef},
    {"skip_kpartx", kDef | kDev | kMp | kOvr},
    {"purge_disconnected", kDef | kDev | kMp | kOvr},
    {"remove_retries", kDef},
    {"max_sectors_kb", kDef | kDev | kMp | kOvr},
    {"ghost_delay", kDef | kDev | kMp | kOvr},
    {"auto_resize", kDef},
    {"find_multipaths_timeout", kDef},
    {"enable_foreign", kDef},
    {"marginal_pathgroups", kDef},
    {"recheck_wwid", kDef | kDev | kOvr},
    {"vpd_vendor", kDev},
};

// Keywords multipathd itself ignores now (dict.c declare_deprecated_handler).
// bindings_file and wwids_file among them: ubdmd chooses its own files.
constexpr NamedScope kDeprecated[] = {
    {"multipath_dir", kDef},
    {"getuid_callout", kDef | kDev | kOvr},
    {"pg_timeout", kDef | kDev | kMp},
    {"bindings_file", kDef},
    {"wwids_file", kDef},
    {"prkeys_file", kDef},
    {"config_dir", kDef},
    {"disable_changed_wwids", kDef},
};

bool in_table(const auto& table, std::string_view name, unsigned scope) {
  return std::any_of(std::begin(table), std::end(table),
                     [&](const NamedScope& k) { return name == k.name && (k.scopes & scope) != 0; });
}

// The protocol names multipath.conf(5) lists for the protocol keywords.
constexpr const char* kProtocolNames[] = {
    "scsi:fcp",  "scsi:spi",  "scsi:ssa",  "scsi:sbp",  "scsi:srp",        "scsi:iscsi",  "scsi:sas",
    "scsi:adt",  "scsi:ata",  "scsi:usb",  "scsi:unspec", "nvme:pcie",     "nvme:rdma",   "nvme:fc",
    "nvme:tcp",  "nvme:loop", "nvme:apple-nvme", "nvme:unspec", "ccw",      "cciss",       "undef",
};

std::string trim(std::string_view s) {
  std::size_t b = 0;
  std::size_t e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b])) != 0) {
    ++b;
  }
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1])) != 0) {
    --e;
  }
  return std::string(s.substr(b, e - b));
}

std::vector<std::string> words(std::string_view s) {
  std::vector<std::string> out;
  std::istringstream in{std::string(s)};
  std::string w;
  while (in >> w) {
    out.push_back(w);
  }
  return out;
}

// A decimal number, nothing else (leading/trailing blanks allowed, as
// dict.c's strtol/strtoul readers allow them).
std::optional<unsigned long long> parse_number(std::string_view s) {
  const std::string t = trim(s);
  if (t.empty() || t.size() > 19 || !std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  return std::stoull(t);
}

// dict.c set_arg_str(): the word at `count_idx` is the number of words
// after it ("2 queue_if_no_path pg_init_retries 50" is wrong, "3 ..." right).
bool arg_count_ok(std::string_view value, std::size_t count_idx) {
  const std::vector<std::string> w = words(value);
  if (w.size() <= count_idx) {
    return false;
  }
  const auto n = parse_number(w[count_idx]);
  return n && *n == w.size() - count_idx - 1;
}

// ---------------------------------------------------------------------------
// The parser

enum class Ctx : std::uint8_t {
  kTop,
  kDefaults,
  kBlacklist,
  kExceptions,
  kBlacklistDevice,
  kExceptionsDevice,
  kMultipaths,
  kMultipath,
  kDevices,
  kDevice,
  kOverrides,
  kProtocol,
  kSkip,  // an unknown block, skipped to its closing brace
};

struct Frame {
  Ctx ctx = Ctx::kTop;
  int line = 0;
  std::string label;  // "devices/device", for messages
  std::set<std::string> seen;  // single-valued keywords seen in this block
};

class Parser {
 public:
  Parser(std::string_view text, std::string source) : text_(text) { cfg_.source = std::move(source); }

  Config run() {
    stack_.push_back(Frame{Ctx::kTop, 0, "top level", {}});
    int line_no = 0;
    std::size_t pos = 0;
    while (pos <= text_.size()) {
      std::size_t nl = text_.find('\n', pos);
      if (nl == std::string_view::npos) {
        nl = text_.size();
      }
      std::string_view line = text_.substr(pos, nl - pos);
      if (!line.empty() && line.back() == '\r') {
        line.remove_suffix(1);
      }
      ++line_no;
      handle_line(tokenize(line, cfg_.source, line_no), line_no);
      pos = nl + 1;
    }
    if (stack_.size() > 1) {
      const Frame& open = stack_.back();
      fail_invalid("{} line {}: '{}' is opened here and never closed ('}}' missing)", cfg_.source, open.line,
                   open.label);
    }
    finish();
    return std::move(cfg_);
  }

 private:
  // -- structure -----------------------------------------------------------

  void handle_line(const std::vector<Token>& t, int line) {
    if (t.empty()) {
      return;
    }
    Frame& top = stack_.back();
    if (top.ctx == Ctx::kSkip) {
      // Inside an unknown block only the braces matter.
      if (t[0].is('}')) {
        stack_.pop_back();
      } else if (std::any_of(t.begin(), t.end(), [](const Token& k) { return k.is('{'); })) {
        stack_.push_back(Frame{Ctx::kSkip, line, top.label, {}});
      }
      return;
    }
    if (t[0].is('}')) {
      if (t.size() > 1) {
        fail_invalid("{} line {}: '}}' must be alone on its line (found '{}' after it)", cfg_.source, line, t[1].text);
      }
      if (stack_.size() == 1) {
        fail_invalid("{} line {}: '}}' closes nothing (no section is open)", cfg_.source, line);
      }
      close_block(line);
      return;
    }
    if (t[0].is('{')) {
      fail_invalid("{} line {}: '{{' must follow a section name on the same line", cfg_.source, line);
    }
    if (t[0].quoted) {
      fail_invalid("{} line {}: expected a keyword, found the quoted string \"{}\"", cfg_.source, line, t[0].text);
    }
    const std::string& kw = t[0].text;
    const bool opens = t.size() > 1 && t[1].is('{');
    if (opens) {
      if (t.size() > 2) {
        fail_invalid("{} line {}: nothing may follow '{{' on the line of '{}' (found '{}'): one item per line",
                     cfg_.source, line, kw, t[2].text);
      }
      open_block(kw, line);
      return;
    }
    if (is_section_keyword(kw)) {
      fail_invalid("{} line {}: '{}' opens a section: '{{' must follow it on the same line", cfg_.source, line, kw);
    }
    if (t.size() < 2 || t[1].is('{') || t[1].is('}')) {
      fail_invalid("{} line {}: '{}' has no value", cfg_.source, line, kw);
    }
    if (t.size() > 2) {
      warn(Warning::Kind::kExtraData, line, kw,
           fmt::format("'{}' takes one value: ignoring what follows it from '{}'", kw, t[2].text));
    }
    handle_keyword(kw, t[1].text, line);
  }

  bool is_section_keyword(std::string_view kw) const {
    // The names that open blocks somewhere: without '{' the structure is
    // unclear, so they are an error wherever they appear.
    static constexpr const char* kBlocks[] = {"defaults", "blacklist", "blacklist_exceptions", "devices",
                                              "multipaths", "overrides", "multipath"};
    if (std::any_of(std::begin(kBlocks), std::end(kBlocks), [&](const char* b) { return kw == b; })) {
      return true;
    }
    // "device" and "protocol" open blocks where a block of that name exists;
    // elsewhere they may be plain keywords (protocol is one in the blacklists).
    const Ctx c = stack_.back().ctx;
    if (kw == "device") {
      return c == Ctx::kBlacklist || c == Ctx::kExceptions || c == Ctx::kDevices;
    }
    if (kw == "protocol") {
      return c == Ctx::kOverrides;
    }
    return false;
  }

  void open_block(const std::string& kw, int line) {
    const Ctx c = stack_.back().ctx;
    const std::string& parent = stack_.back().label;
    std::optional<Ctx> next;
    switch (c) {
      case Ctx::kTop:
        if (kw == "defaults") next = Ctx::kDefaults;
        if (kw == "blacklist") next = Ctx::kBlacklist;
        if (kw == "blacklist_exceptions") next = Ctx::kExceptions;
        if (kw == "multipaths") next = Ctx::kMultipaths;
        if (kw == "devices") next = Ctx::kDevices;
        if (kw == "overrides") next = Ctx::kOverrides;
        break;
      case Ctx::kBlacklist:
        if (kw == "device") next = Ctx::kBlacklistDevice;
        break;
      case Ctx::kExceptions:
        if (kw == "device") next = Ctx::kExceptionsDevice;
        break;
      case Ctx::kMultipaths:
        if (kw == "multipath") next = Ctx::kMultipath;
        break;
      case Ctx::kDevices:
        if (kw == "device") next = Ctx::kDevice;
        break;
      case Ctx::kOverrides:
        if (kw == "protocol") next = Ctx::kProtocol;
        break;
      default:
        break;
    }
    const std::string label = c == Ctx::kTop ? kw : parent + "/" + kw;
    if (!next) {
      warn(Warning::Kind::kUnknownSection, line, kw,
           c == Ctx::kTop ? fmt::format("unknown section '{}': skipped", kw)
                          : fmt::format("'{}' has no '{}' subsection: skipped", parent, kw));
      stack_.push_back(Frame{Ctx::kSkip, line, label, {}});
      return;
    }
    switch (*next) {
      case Ctx::kBlacklistDevice:
      case Ctx::kExceptionsDevice:
        list_for(*next).device.push_back(DeviceMatch{std::nullopt, std::nullopt, line});
        break;
      case Ctx::kMultipath: {
        MultipathEntry e;
        e.line = line;
        multipaths_.push_back(std::move(e));
        break;
      }
      case Ctx::kDevice: {
        DeviceEntry e;
        e.line = line;
        cfg_.devices.push_back(std::move(e));
        break;
      }
      case Ctx::kProtocol: cfg_.overrides_protocols.push_back(ProtocolEntry{"", {}, line}); break;
      default: break;
    }
    stack_.push_back(Frame{*next, line, label, {}});
  }

  void close_block(int line) {
    const Frame f = stack_.back();
    stack_.pop_back();
    switch (f.ctx) {
      case Ctx::kBlacklistDevice:
      case Ctx::kExceptionsDevice: {
        std::vector<DeviceMatch>& v = list_for(f.ctx).device;
        if (!v.back().vendor && !v.back().product) {
          warn(Warning::Kind::kDropped, f.line, "device",
               fmt::format("'{}' entry (lines {}-{}) has neither vendor nor product: dropped", f.label, f.line, line));
          v.pop_back();
        }
        break;
      }
      case Ctx::kDevice: {
        const DeviceEntry& e = cfg_.devices.back();
        if (!e.vendor || !e.product) {
          warn(Warning::Kind::kDropped, f.line, "device",
               fmt::format("device entry (lines {}-{}) lacks its {}: dropped (vendor and product are mandatory)",
                           f.line, line, !e.vendor ? "vendor" : "product"));
          cfg_.devices.pop_back();
        }
        break;
      }
      case Ctx::kMultipath:
        if (multipaths_.back().wwid.empty()) {
          warn(Warning::Kind::kDropped, f.line, "multipath",
               fmt::format("multipath entry (lines {}-{}) has no wwid: dropped", f.line, line));
          multipaths_.pop_back();
        }
        break;
      case Ctx::kProtocol:
        if (cfg_.overrides_protocols.back().type.empty()) {
          warn(Warning::Kind::kDropped, f.line, "protocol",
               fmt::format("protocol entry (lines {}-{}) has no type: dropped", f.line, line));
          cfg_.overrides_protocols.pop_back();
        }
        break;
      default: break;
    }
  }

  FilterList& list_for(Ctx c) {
    return c == Ctx::kBlacklist || c == Ctx::kBlacklistDevice ? cfg_.blacklist : cfg_.blacklist_exceptions;
  }

  // -- keywords ------------------------------------------------------------

  void handle_keyword(const std::string& kw, const std::string& value, int line) {
    Frame& f = stack_.back();
    switch (f.ctx) {
      case Ctx::kTop:
        warn(Warning::Kind::kUnknownKeyword, line, kw,
             fmt::format("'{}' outside any section: ignored", kw));
        return;
      case Ctx::kBlacklist:
      case Ctx::kExceptions: filter_keyword(list_for(f.ctx), kw, value, line); return;
      case Ctx::kBlacklistDevice:
      case Ctx::kExceptionsDevice: {
        DeviceMatch& d = list_for(f.ctx).device.back();
        if (kw == "vendor" || kw == "product") {
          note_single(f, kw, line);
          (kw == "vendor" ? d.vendor : d.product) = regex(value, Regex::Bang::kInverts, line);
        } else {
          unknown(f, kw, line);
        }
        return;
      }
      case Ctx::kMultipaths:
      case Ctx::kDevices:
        unknown(f, kw, line);
        return;
      case Ctx::kProtocol: {
        ProtocolEntry& p = cfg_.overrides_protocols.back();
        note_single(f, kw, line);
        if (kw == "type") {
          if (std::none_of(std::begin(kProtocolNames), std::end(kProtocolNames),
                           [&](const char* n) { return value == n; })) {
            invalid(kw, value, line, "not a protocol name multipath.conf(5) lists");
          } else {
            p.type = value;
          }
        } else if (kw == "fast_io_fail_tmo" || kw == "dev_loss_tmo" || kw == "eh_deadline") {
          p.other[kw] = value;
          not_used(f, kw, line);
        } else {
          unknown(f, kw, line);
        }
        return;
      }
      case Ctx::kDefaults:
        if (defaults_keyword(f, kw, value, line)) {
          return;
        }
        attribute_keyword(f, cfg_.defaults, kDef, kw, value, line);
        return;
      case Ctx::kMultipath: {
        MultipathEntry& e = multipaths_.back();
        if (kw == "wwid") {
          note_single(f, kw, line);
          e.wwid = value;
          return;
        }
        if (kw == "alias") {
          note_single(f, kw, line);
          if (value.find('/') != std::string::npos) {
            invalid(kw, value, line, "an alias cannot contain '/'");
          } else if (value.empty()) {
            invalid(kw, value, line, "an alias cannot be empty");
          } else {
            e.alias = value;
          }
          return;
        }
        attribute_keyword(f, e, kMp, kw, value, line);
        return;
      }
      case Ctx::kDevice: {
        DeviceEntry& e = cfg_.devices.back();
        if (kw == "vendor" || kw == "product" || kw == "revision") {
          note_single(f, kw, line);
          Regex r = regex(value, Regex::Bang::kLiteral, line);
          (kw == "vendor" ? e.vendor : kw == "product" ? e.product : e.revision) = std::move(r);
          return;
        }
        if (kw == "product_blacklist") {
          note_single(f, kw, line);
          e.product_blacklist = regex(value, Regex::Bang::kInverts, line);
          return;
        }
        attribute_keyword(f, e, kDev, kw, value, line);
        return;
      }
      case Ctx::kOverrides: attribute_keyword(f, cfg_.overrides, kOvr, kw, value, line); return;
      case Ctx::kSkip: return;
    }
  }

  void filter_keyword(FilterList& l, const std::string& kw, const std::string& value, int line) {
    // These may repeat: each line adds an expression.
    if (kw == "devnode") {
      l.devnode.push_back(regex(value, Regex::Bang::kInverts, line));
    } else if (kw == "wwid") {
      l.wwid.push_back(regex(value, Regex::Bang::kInverts, line));
    } else if (kw == "property") {
      l.property.push_back(regex(value, Regex::Bang::kInverts, line));
    } else if (kw == "protocol") {
      l.protocol.push_back(regex(value, Regex::Bang::kInverts, line));
    } else {
      unknown(stack_.back(), kw, line);
    }
  }

  bool defaults_keyword(Frame& f, const std::string& kw, const std::string& value, int line) {
    Defaults& d = cfg_.defaults;
    if (kw == "find_multipaths") {
      note_single(f, kw, line);
      // dict.c def_find_multipaths_handler(): the names, and no/yes/0/1.
      if (value == "off" || value == "no" || value == "0") {
        d.find_multipaths = FindMultipaths::kOff;
      } else if (value == "on" || value == "yes" || value == "1") {
        d.find_multipaths = FindMultipaths::kOn;
      } else if (value == "strict") {
        d.find_multipaths = FindMultipaths::kStrict;
      } else if (value == "greedy") {
        d.find_multipaths = FindMultipaths::kGreedy;
      } else if (value == "smart") {
        d.find_multipaths = FindMultipaths::kSmart;
      } else {
        invalid(kw, value, line, "expected off, on, strict, greedy or smart");
      }
      return true;
    }
    if (kw == "polling_interval" || kw == "max_polling_interval") {
      note_single(f, kw, line);
      const auto n = parse_number(value);
      if (!n || *n > UINT_MAX || (kw == "polling_interval" && *n == 0)) {
        invalid(kw, value, line, kw == "polling_interval" ? "expected a number of seconds, 1 or more"
                                                          : "expected a number of seconds");
      } else if (kw == "polling_interval") {
        d.polling_interval = static_cast<unsigned>(*n);
      } else if (*n != 0) {
        d.max_polling_interval = static_cast<unsigned>(*n);
      } else {
        d.max_polling_interval.reset();  // 0: "4 * polling_interval", as unset
      }
      return true;
    }
    if (kw == "allow_usb_devices") {
      note_single(f, kw, line);
      set_bool(d.allow_usb_devices, kw, value, line);
      return true;
    }
    if (kw == "uid_attrs") {
      note_single(f, kw, line);
      // config.c parse_uid_attrs(): words "PREFIX:ATTRIBUTE"; one without
      // a colon spoils the whole value.
      std::vector<std::pair<std::string, std::string>> attrs;
      for (const std::string& w : words(value)) {
        const std::size_t colon = w.rfind(':');
        if (colon == std::string::npos) {
          invalid(kw, value, line, fmt::format("'{}' is not PREFIX:ATTRIBUTE", w));
          return true;
        }
        attrs.emplace_back(w.substr(0, colon), w.substr(colon + 1));
      }
      d.uid_attrs = std::move(attrs);
      return true;
    }
    return false;
  }

  // The keywords of Attributes, each in the sections dict.c accepts it in.
  void attribute_keyword(Frame& f, Attributes& a, unsigned scope, const std::string& kw, const std::string& value,
                         int line) {
    const auto allowed = [&](unsigned scopes) { return (scopes & scope) != 0; };
    constexpr unsigned kAll = kDef | kDev | kMp | kOvr;
    if (kw == "path_grouping_policy" && allowed(kAll)) {
      note_single(f, kw, line);
      static constexpr std::pair<const char*, PgPolicy> kNames[] = {
          {"failover", PgPolicy::kFailover},
          {"multibus", PgPolicy::kMultibus},
          {"group_by_serial", PgPolicy::kGroupBySerial},
          {"group_by_prio", PgPolicy::kGroupByPrio},
          {"group_by_node_name", PgPolicy::kGroupByNodeName},
          {"group_by_tpg", PgPolicy::kGroupByTpg},
      };
      for (const auto& [name, p] : kNames) {
        if (value == name) {
          a.path_grouping_policy = p;
          return;
        }
      }
      invalid(kw, value, line,
              "expected failover, multibus, group_by_serial, group_by_prio, group_by_node_name or group_by_tpg");
    } else if (kw == "path_selector" && allowed(kAll)) {
      note_single(f, kw, line);
      if (!arg_count_ok(value, 1)) {
        invalid(kw, value, line, "expected a selector name, then the number of its arguments, then them");
      } else {
        a.path_selector = value;
      }
    } else if ((kw == "path_checker" || kw == "checker") && allowed(kDef | kDev | kOvr)) {
      note_single(f, "path_checker", line);
      a.path_checker = value;
    } else if (kw == "prio" && allowed(kAll)) {
      note_single(f, kw, line);
      a.prio = value;
    } else if (kw == "prio_args" && allowed(kAll)) {
      note_single(f, kw, line);
      a.prio_args = value;
    } else if (kw == "failback" && allowed(kAll)) {
      note_single(f, kw, line);
      if (value == "manual") {
        a.failback = Failback{Failback::Kind::kManual, 0};
      } else if (value == "immediate") {
        a.failback = Failback{Failback::Kind::kImmediate, 0};
      } else if (value == "followover") {
        a.failback = Failback{Failback::Kind::kFollowover, 0};
      } else if (const auto n = parse_number(value)) {
        if (*n == 0) {
          // dict.c stores 0, which every select_*() reads as "not set".
          invalid(kw, value, line, "0 leaves failback unset, as in multipathd (use immediate)");
        } else {
          a.failback = Failback{Failback::Kind::kDeferred, cap(kw, *n, line)};
        }
      } else {
        invalid(kw, value, line, "expected manual, immediate, followover or a number of seconds");
      }
    } else if (kw == "no_path_retry" && allowed(kAll)) {
      note_single(f, kw, line);
      if (value == "fail" || value == "0") {
        a.no_path_retry = NoPathRetry{NoPathRetry::Kind::kFail, 0};
      } else if (value == "queue") {
        a.no_path_retry = NoPathRetry{NoPathRetry::Kind::kQueue, 0};
      } else if (const auto n = parse_number(value)) {
        a.no_path_retry = NoPathRetry{NoPathRetry::Kind::kRetries, cap(kw, *n, line)};
      } else {
        invalid(kw, value, line, "expected fail, queue or a number of retries");
      }
    } else if (kw == "features" && allowed(kAll)) {
      note_single(f, kw, line);
      if (!arg_count_ok(value, 0)) {
        invalid(kw, value, line, "the first word must count the words after it");
      } else {
        a.features = value;
      }
    } else if ((kw == "rr_min_io" || kw == "rr_min_io_rq") && allowed(kAll)) {
      note_single(f, kw, line);
      const auto n = parse_number(value);
      if (!n) {
        invalid(kw, value, line, "expected a number");
      } else if (*n == 0) {
        invalid(kw, value, line, "0 leaves it unset, as in multipathd");
      } else {
        (kw == "rr_min_io" ? a.rr_min_io : a.rr_min_io_rq) = cap(kw, *n, line);
      }
    } else if (kw == "rr_weight" && allowed(kAll)) {
      note_single(f, kw, line);
      if (value == "priorities") {
        a.rr_weight = RrWeight::kPriorities;
      } else if (value == "uniform") {
        a.rr_weight = RrWeight::kUniform;
      } else {
        invalid(kw, value, line, "expected priorities or uniform");
      }
    } else if (kw == "user_friendly_names" && allowed(kAll)) {
      note_single(f, kw, line);
      set_bool(a.user_friendly_names, kw, value, line);
    } else if (kw == "alias_prefix" && allowed(kDef | kDev | kOvr)) {
      note_single(f, kw, line);
      if (value.find('/') != std::string::npos) {
        invalid(kw, value, line, "it cannot contain '/'");
      } else {
        a.alias_prefix = value;
      }
    } else if (kw == "uid_attribute" && allowed(kDef | kDev | kOvr)) {
      note_single(f, kw, line);
      a.uid_attribute = value;
    } else if (kw == "hardware_handler" && allowed(kDev)) {
      note_single(f, kw, line);
      if (!arg_count_ok(value, 0)) {
        invalid(kw, value, line, "the first word must count the words after it");
      } else {
        a.hardware_handler = value;
      }
    } else if (in_table(kUnused, kw, scope)) {
      note_single(f, kw, line);
      a.other[kw] = value;
      // detect_prio is kept here and read by the daemon's probes
      // (daemon/path_discovery); the rest only kept.
      if (kw != "detect_prio") {
        not_used(f, kw, line);
      }
    } else if (in_table(kDeprecated, kw, scope)) {
      warn(Warning::Kind::kDeprecated, line, kw,
           fmt::format("'{}' is deprecated and ignored (multipathd ignores it too)", kw));
    } else {
      unknown(f, kw, line);
    }
  }

  // -- helpers -------------------------------------------------------------

  Regex regex(const std::string& value, Regex::Bang bang, int line) {
    try {
      return Regex::compile(value, bang);
    } catch (const Error& e) {
      fail_invalid("{} line {}: {}", cfg_.source, line, e.what());
    }
  }

  unsigned cap(const std::string& kw, unsigned long long n, int line) {
    // dict.c do_set_int() caps at INT_MAX with a message.
    if (n > static_cast<unsigned long long>(INT_MAX)) {
      warn(Warning::Kind::kInvalidValue, line, kw, fmt::format("value of '{}' too large: capped at {}", kw, INT_MAX));
      return static_cast<unsigned>(INT_MAX);
    }
    return static_cast<unsigned>(n);
  }

  void set_bool(std::optional<bool>& out, const std::string& kw, const std::string& value, int line) {
    if (value == "yes" || value == "1") {
      out = true;
    } else if (value == "no" || value == "0") {
      out = false;
    } else {
      invalid(kw, value, line, "expected yes or no");
    }
  }

  void note_single(Frame& f, const std::string& kw, int line) {
    if (!f.seen.insert(kw).second) {
      warn(Warning::Kind::kDuplicate, line, kw,
           fmt::format("'{}' is given again in '{}': this later value counts", kw, f.label));
    }
  }

  void invalid(const std::string& kw, const std::string& value, int line, const std::string& why) {
    warn(Warning::Kind::kInvalidValue, line, kw,
         fmt::format("invalid value \"{}\" for '{}' ({}): ignored", value, kw, why));
  }

  void unknown(const Frame& f, const std::string& kw, int line) {
    warn(Warning::Kind::kUnknownKeyword, line, kw, fmt::format("unknown keyword '{}' in '{}': ignored", kw, f.label));
  }

  void not_used(const Frame& f, const std::string& kw, int line) {
    warn(Warning::Kind::kNotUsed, line, kw, fmt::format("'{}' in '{}' is accepted but not used by ubdm", kw, f.label));
  }

  void warn(Warning::Kind k, int line, const std::string& kw, const std::string& what) {
    cfg_.warnings.push_back(Warning{k, line, kw, fmt::format("{} line {}: {}", cfg_.source, line, what)});
  }

  // -- after the last line ---------------------------------------------------

  static void overlay(Attributes& base, const Attributes& later) {
    const auto take = [](auto& dst, const auto& src) {
      if (src) {
        dst = src;
      }
    };
    take(base.path_grouping_policy, later.path_grouping_policy);
    take(base.path_selector, later.path_selector);
    take(base.path_checker, later.path_checker);
    take(base.prio, later.prio);
    take(base.prio_args, later.prio_args);
    take(base.failback, later.failback);
    take(base.no_path_retry, later.no_path_retry);
    take(base.features, later.features);
    take(base.rr_min_io, later.rr_min_io);
    take(base.rr_min_io_rq, later.rr_min_io_rq);
    take(base.rr_weight, later.rr_weight);
    take(base.user_friendly_names, later.user_friendly_names);
    take(base.alias_prefix, later.alias_prefix);
    take(base.uid_attribute, later.uid_attribute);
    take(base.hardware_handler, later.hardware_handler);
    for (const auto& [k, v] : later.other) {
      base.other[k] = v;
    }
  }

  void finish() {
    // Several entries for one WWID are merged, later settings winning
    // (config.c merge_mptable()); the merged entry keeps the first place.
    for (MultipathEntry& e : multipaths_) {
      auto it = std::find_if(cfg_.multipaths.begin(), cfg_.multipaths.end(),
                             [&](const MultipathEntry& m) { return m.wwid == e.wwid; });
      if (it == cfg_.multipaths.end()) {
        cfg_.multipaths.push_back(std::move(e));
        continue;
      }
      warn(Warning::Kind::kDuplicate, e.line, "multipath",
           fmt::format("a second multipath entry for {} (the first is on line {}): merged, this one's settings win",
                       e.wwid, it->line));
      overlay(*it, e);
      if (e.alias) {
        it->alias = e.alias;
      }
    }
    // One alias for two WWIDs would put two LUNs under one name: the later
    // entry loses its alias (alias.c check_alias_settings() drops one too).
    std::map<std::string, const MultipathEntry*> by_alias;
    for (MultipathEntry& e : cfg_.multipaths) {
      if (!e.alias) {
        continue;
      }
      auto [it, fresh] = by_alias.emplace(*e.alias, &e);
      if (!fresh) {
        warn(Warning::Kind::kDropped, e.line, "alias",
             fmt::format("alias '{}' is given to {} (line {}) already: not used for {}", *e.alias, it->second->wwid,
                         it->second->line, e.wwid));
        e.alias.reset();
      }
    }
  }

  std::string_view text_;
  Config cfg_;
  std::vector<Frame> stack_;
  std::vector<MultipathEntry> multipaths_;  // as read, before merging
};

// ---------------------------------------------------------------------------
// Resolution

struct Layer {
  const Attributes* attrs;
  Origin origin;
};

// multipathd's built-in hardware table, reduced to its generic NVMe entry
// (libmultipath/hwtable.c, first entry).
const DeviceEntry& builtin_nvme_entry() {
  static const DeviceEntry e = [] {
    DeviceEntry d;
    d.vendor = Regex::compile("^NVME", Regex::Bang::kLiteral);
    d.product = Regex::compile(".*", Regex::Bang::kLiteral);
    d.uid_attribute = "ID_WWN";
    d.path_checker = "none";
    d.path_grouping_policy = PgPolicy::kGroupByPrio;
    d.failback = Failback{Failback::Kind::kImmediate, 0};
    return d;
  }();
  return e;
}

// config.c hwe_regmatch(): each regex the entry has must match the field,
// a field the path lacks matches anything.
bool device_matches(const DeviceEntry& e, const LunIdentity& lun) {
  const auto ok = [](const std::optional<Regex>& r, const std::string& field) {
    return !r || field.empty() || r->matches(field);
  };
  if (lun.vendor.empty() && lun.product.empty() && lun.revision.empty()) {
    return false;
  }
  return ok(e.vendor, lun.vendor) && ok(e.product, lun.product) && ok(e.revision, lun.revision);
}

// The matching device entries, newest first (config.c find_hwe()).
std::vector<Layer> device_layers(const Config& config, const LunIdentity& lun) {
  std::vector<Layer> out;
  for (auto it = config.devices.rbegin(); it != config.devices.rend(); ++it) {
    if (device_matches(*it, lun)) {
      out.push_back(Layer{&*it, Origin::kDevices});
    }
  }
  if (device_matches(builtin_nvme_entry(), lun)) {
    out.push_back(Layer{&builtin_nvme_entry(), Origin::kBuiltinHardware});
  }
  return out;
}

template <typename T>
Resolved<T> first_set(const std::vector<Layer>& order, std::optional<T> Attributes::*field, T fallback) {
  for (const Layer& l : order) {
    if (l.attrs != nullptr && (l.attrs->*field)) {
      return Resolved<T>{*(l.attrs->*field), l.origin};
    }
  }
  return Resolved<T>{std::move(fallback), Origin::kBuiltin};
}

// Take one word out of a features string, fixing its count (structs.c
// remove_feature()). Returns whether it was there.
bool remove_feature(std::string& features, std::string_view word) {
  std::vector<std::string> w = words(features);
  if (w.empty()) {
    return false;
  }
  auto it = std::find(w.begin() + 1, w.end(), word);
  if (it == w.end()) {
    return false;
  }
  w.erase(it);
  std::string out = std::to_string(w.size() - 1);
  for (std::size_t i = 1; i < w.size(); ++i) {
    out += ' ';
    out += w[i];
  }
  features = out;
  return true;
}

}  // namespace

Config parse_multipath_conf(std::string_view text, const std::string& source) {
  return Parser(text, source).run();
}

Config load_multipath_conf(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    if (err == ENOENT) {
      Config c;
      c.source = path;
      return c;
    }
    fail(err, "cannot read {}: {}", path, errno_string(err));
  }
  std::stringstream s;
  s << in.rdbuf();
  if (in.bad()) {
    fail(EIO, "cannot read {}", path);
  }
  return parse_multipath_conf(s.str(), path);
}

EffectiveSettings resolve_settings(const Config& config, const LunIdentity& lun) {
  const MultipathEntry* mpe = config.multipath_for(lun.wwid);
  const std::vector<Layer> hw = device_layers(config, lun);

  std::vector<Layer> map_order;  // multipaths > overrides > devices > defaults
  map_order.push_back(Layer{mpe, Origin::kMultipaths});
  map_order.push_back(Layer{&config.overrides, Origin::kOverrides});
  map_order.insert(map_order.end(), hw.begin(), hw.end());
  map_order.push_back(Layer{&config.defaults, Origin::kDefaults});

  std::vector<Layer> path_order;  // overrides > devices > defaults
  path_order.push_back(Layer{&config.overrides, Origin::kOverrides});
  path_order.insert(path_order.end(), hw.begin(), hw.end());
  path_order.push_back(Layer{&config.defaults, Origin::kDefaults});

  EffectiveSettings s;
  s.path_grouping_policy = first_set(map_order, &Attributes::path_grouping_policy, PgPolicy::kFailover);
  s.path_selector = first_set(map_order, &Attributes::path_selector, std::string("service-time 0"));
  s.path_checker = first_set(path_order, &Attributes::path_checker, std::string("tur"));
  s.failback = first_set(map_order, &Attributes::failback, Failback{Failback::Kind::kManual, 0});
  s.rr_min_io_rq = first_set(map_order, &Attributes::rr_min_io_rq, 1U);
  s.rr_weight = first_set(map_order, &Attributes::rr_weight, RrWeight::kUniform);
  s.user_friendly_names = first_set(map_order, &Attributes::user_friendly_names, false);
  s.alias_prefix = first_set(path_order, &Attributes::alias_prefix, std::string("mpath"));
  s.hardware_handler = first_set(hw, &Attributes::hardware_handler, std::string("0"));
  s.uid_attribute = resolve_uid_attribute(config, lun);
  if (mpe != nullptr && mpe->alias) {
    s.alias = mpe->alias;
  }

  // prio: at the multipaths, overrides and defaults levels the name and its
  // arguments come together from the level that names a prio; among device
  // entries each comes from the first entry that sets it.
  s.prio = Resolved<std::string>{"const", Origin::kBuiltin};
  s.prio_args = Resolved<std::string>{"", Origin::kBuiltin};
  const auto from_level = [&](const Attributes* a, Origin o) {
    if (a == nullptr || !a->prio) {
      return false;
    }
    s.prio = {*a->prio, o};
    s.prio_args = {a->prio_args.value_or(""), o};
    return true;
  };
  if (!from_level(mpe, Origin::kMultipaths) && !from_level(&config.overrides, Origin::kOverrides)) {
    const Resolved<std::string> name = first_set(hw, &Attributes::prio, std::string());
    if (name.origin != Origin::kBuiltin) {
      s.prio = name;
      s.prio_args = first_set(hw, &Attributes::prio_args, std::string());
      s.prio_args.origin = name.origin;
    } else {
      from_level(&config.defaults, Origin::kDefaults);
    }
  }

  // no_path_retry has no built-in value: undefined until a section sets it.
  s.no_path_retry.value.reset();
  for (const Layer& l : map_order) {
    if (l.attrs != nullptr && l.attrs->no_path_retry) {
      s.no_path_retry = {l.attrs->no_path_retry, l.origin};
      break;
    }
  }
  s.features = first_set(map_order, &Attributes::features, std::string("0"));
  if (remove_feature(s.features.value, "queue_if_no_path") && !s.no_path_retry.value) {
    s.no_path_retry = {NoPathRetry{NoPathRetry::Kind::kQueue, 0}, s.features.origin};
  }
  remove_feature(s.features.value, "retain_attached_hw_handler");
  return s;
}

Resolved<std::string> resolve_uid_attribute(const Config& config, const LunIdentity& lun) {
  for (const auto& [prefix, attr] : config.defaults.uid_attrs) {
    if (lun.dev.compare(0, prefix.size(), prefix) == 0) {
      return {attr, Origin::kDefaults};
    }
  }
  std::vector<Layer> order;
  order.push_back(Layer{&config.overrides, Origin::kOverrides});
  const std::vector<Layer> hw = device_layers(config, lun);
  order.insert(order.end(), hw.begin(), hw.end());
  order.push_back(Layer{&config.defaults, Origin::kDefaults});
  return first_set(order, &Attributes::uid_attribute, std::string("ID_SERIAL"));
}

FindMultipaths resolve_find_multipaths(const Config& config) {
  return config.defaults.find_multipaths.value_or(FindMultipaths::kStrict);
}

PollingIntervals resolve_polling(const Defaults& d) {
  PollingIntervals p;
  if (!d.max_polling_interval) {
    p.polling_interval = d.polling_interval.value_or(5);
    p.max_polling_interval = p.polling_interval < UINT_MAX / 4 ? p.polling_interval * 4 : UINT_MAX;
  } else if (!d.polling_interval) {
    p.max_polling_interval = *d.max_polling_interval;
    p.polling_interval = std::max(1U, p.max_polling_interval / 4);
  } else {
    p.max_polling_interval = *d.max_polling_interval;
    p.polling_interval = std::min(*d.polling_interval, p.max_polling_interval);
  }
  return p;
}

}  // namespace ubdm::discovery
