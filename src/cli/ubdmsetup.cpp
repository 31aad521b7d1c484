// SPDX-License-Identifier: MIT
// ubdmsetup: dmsetup's verbs and output formats for ubdm devices, served by
// ubdmd over its control socket.
//
// Every failure prints exactly one line, "ubdmsetup: VERB NAME: reason", on
// stderr. Exit codes: 0 success, 1 the operation failed, 2 usage error.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/format.hpp"
#include "cli/report.hpp"
#include "control/client.hpp"
#include "control/protocol.hpp"
#include "control/verbs.hpp"
#include "metrics/device_stats.hpp"
#include "ubdm/error.hpp"

#ifndef UBDM_VERSION
#define UBDM_VERSION "unknown"
#endif

namespace ubdm::cli {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

// A mistake on the command line: reported like any failure, exit code 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Args {
  std::string socket;
  bool json = false;
  bool prometheus = false;  // stats --prometheus

  std::string name;
  std::string file;
  std::vector<std::string> tables;
  std::optional<std::string> table_text;  // the table itself (create --concise)
  bool notable = false;                   // create -n: refused
  bool tree = false;                      // ls --tree
  std::string queues;
  std::string depth;
  std::string poll_usec;
  bool noflush = false;
  std::string timeout;
  bool force = false;
  bool copy = false;
  bool inactive = false;
  std::string sector;
  std::vector<std::string> words;
  std::string event_nr;
  std::string target;  // --target TYPE of table and status
  bool retry = false;
  bool columns = false;  // info -c: dmsetup's column report
  ReportOptions report;
  bool noheadings = false;
  std::string separator;
  std::string uuid;  // -u: create's new UUID, else the device to act on
  bool read_only = false;  // -r: create a read-only device
  bool concise = false;  // table --concise
  std::string exec;      // ls --exec CMD
  std::string new_name;  // rename: the new name, or with --setuuid the UUID
  bool setuuid = false;  // rename --setuuid
};

// The one line of a failure. Messages are flattened to one line whatever
// their source (a daemon message, a parser's message quoting input).
int report(const std::string& verb, const std::string& name, std::string reason, int code) {
  for (char& c : reason) {
    if (c == '\n' || c == '\r') {
      c = ' ';
    }
  }
  while (!reason.empty() && reason.back() == ' ') {
    reason.pop_back();
  }
  std::string where = "ubdmsetup";
  if (!verb.empty()) {
    where += ": " + verb;
    if (!name.empty()) {
      where += " " + name;
    }
  }
  std::fprintf(stderr, "%s: %s\n", where.c_str(), reason.c_str());
  return code;
}

std::string default_socket() {
  const char* env = std::getenv("UBDM_SOCKET");
  return env != nullptr && *env != '\0' ? std::string(env) : std::string(control::kDefaultSocketPath);
}

std::optional<std::uint64_t> parse_unsigned(const std::string& s) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) {
    return std::nullopt;
  }
  return v;
}

unsigned bounded(const std::string& option, const std::string& value, unsigned lo, unsigned hi) {
  const auto v = parse_unsigned(value);
  if (!v || *v < lo || *v > hi) {
    throw UsageError(fmt::format("{} must be a number from {} to {}, not '{}'", option, lo, hi, value));
  }
  return static_cast<unsigned>(*v);
}

// "--timeout SECONDS": a positive decimal number of seconds with at most
// millisecond precision, returned in milliseconds.
std::uint64_t timeout_ms(const std::string& value) {
  const std::string bad = fmt::format("--timeout must be a positive number of seconds, not '{}'", value);
  const auto dot = value.find('.');
  const std::string whole = value.substr(0, dot);
  std::string frac = dot == std::string::npos ? std::string() : value.substr(dot + 1);
  if (whole.empty() && frac.empty()) {
    throw UsageError(bad);
  }
  const auto secs = whole.empty() ? std::optional<std::uint64_t>(0) : parse_unsigned(whole);
  if (!secs || *secs > 1'000'000'000ULL || frac.size() > 3 || (!frac.empty() && !parse_unsigned(frac))) {
    throw UsageError(bad);
  }
  frac.resize(3, '0');
  const std::uint64_t ms = *secs * 1000 + *parse_unsigned(frac);
  if (ms == 0) {
    throw UsageError(bad);
  }
  return ms;
}

std::string read_stream(std::istream& in, const std::string& what) {
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    throw Error(EIO, fmt::format("cannot read the table from {}", what));
  }
  return text.str();
}

// The table of create/load: from --table options, FILE, or stdin.
std::string read_table(const Args& a) {
  if (a.table_text) {
    return *a.table_text;
  }
  if (!a.tables.empty()) {
    if (!a.file.empty()) {
      throw UsageError("give the table either as FILE or with --table, not both");
    }
    // Like dmsetup's --table, one option may hold several lines separated by ';'.
    std::string table;
    for (const auto& t : a.tables) {
      for (const char c : t) {
        table += c == ';' ? '\n' : c;
      }
      table += '\n';
    }
    return table;
  }
  if (a.file.empty() || a.file == "-") {
    if (a.file.empty() && ::isatty(STDIN_FILENO) == 1) {
      throw UsageError("no table given: pass FILE, --table or a table on stdin");
    }
    return read_stream(std::cin, "stdin");
  }
  std::ifstream in(a.file);
  if (!in) {
    const int err = errno;
    throw Error(err, fmt::format("cannot open table file {}: {}", a.file, errno_string(err)));
  }
  return read_stream(in, a.file);
}

// One device of `create --concise`: name,uuid,minor,flags,table[,table]...
struct ConciseDevice {
  std::string name;
  std::string uuid;
  bool read_only = false;
  std::string table;  // the lines, newline-separated
};

// dmsetup's concise format: devices separated by ';', fields by ',', and a
// backslash takes the next character as it is. Every device is checked
// before any is made, so a bad specification changes nothing.
std::vector<ConciseDevice> parse_concise(const std::string& spec) {
  std::vector<std::vector<std::string>> devices(1, std::vector<std::string>(1));
  for (std::size_t i = 0; i < spec.size(); ++i) {
    const char c = spec[i];
    if (c == '\\' && i + 1 < spec.size()) {
      devices.back().back() += spec[++i];
    } else if (c == ',') {
      devices.back().emplace_back();
    } else if (c == ';') {
      devices.emplace_back(1);
    } else if (c != '\n' || i + 1 != spec.size()) {  // a final newline (stdin) is not part of it
      devices.back().back() += c;
    }
  }
  std::vector<ConciseDevice> out;
  for (std::size_t n = 0; n < devices.size(); ++n) {
    const auto& f = devices[n];
    const std::string where = fmt::format("concise device {}", n + 1);
    if (f.size() < 5) {
      throw UsageError(fmt::format("{}: expected name,uuid,minor,flags,table[,table]..., got {} field(s)", where,
                                   f.size()));
    }
    ConciseDevice d;
    d.name = f[0];
    if (d.name.empty()) {
      throw UsageError(fmt::format("{}: the name is empty", where));
    }
    d.uuid = f[1];
    if (!f[2].empty()) {
      throw UsageError(fmt::format("{} ({}): minor {} cannot be chosen: ublk numbers its disks (leave the field "
                                   "empty)",
                                   where, d.name, f[2]));
    }
    if (f[3] != "" && f[3] != "rw" && f[3] != "ro") {
      throw UsageError(fmt::format("{} ({}): flags must be rw, ro or empty, not '{}'", where, d.name, f[3]));
    }
    d.read_only = f[3] == "ro";
    for (std::size_t i = 4; i < f.size(); ++i) {
      if (f[i].empty()) {
        throw UsageError(fmt::format("{} ({}): table line {} is empty", where, d.name, i - 3));
      }
      d.table += f[i] + "\n";
    }
    out.push_back(std::move(d));
  }
  return out;
}

// The request for `verb`, after local validation of its arguments.
nlohmann::json build_request(const std::string& verb, const Args& a,
                             const std::map<std::string, CLI::Option*>& opts) {
  nlohmann::json req{{"op", verb}};
  if (!a.name.empty()) {
    req["name"] = a.name;
  }
  const auto given = [&](const std::string& key) {
    return opts.count(key) != 0 && opts.at(key)->count() > 0;
  };
  if (verb == "create" || verb == "load") {
    if (given("queues")) {
      req["queues"] = bounded("--queues", a.queues, 1, 64);
    }
    if (given("depth")) {
      req["depth"] = bounded("--depth", a.depth, 1, 4096);
    }
    if (given("poll_usec")) {
      req["poll_usec"] = bounded("--poll-usec", a.poll_usec, 0, 1000000);
    }
    if (a.copy) {
      req["copy"] = true;
    }
    if (verb == "create" && !a.uuid.empty()) {
      req["uuid"] = a.uuid;
    }
    if (verb == "create" && a.read_only) {
      req["read_only"] = true;
    }
    req["table"] = read_table(a);
  } else if (verb == "suspend") {
    req["noflush"] = a.noflush;
    if (given("timeout")) {
      req["timeout_ms"] = timeout_ms(a.timeout);
    }
  } else if (verb == "stats") {
    // dmsetup's `stats` manages dm-stats regions; a script's `stats list`
    // must not read as the figures of a device named "list".
    static const std::set<std::string> kDmStats{"create", "delete", "clear",   "list",   "print",
                                                "report", "group",  "ungroup", "update_interval"};
    if (kDmStats.count(a.name) != 0) {
      throw UsageError(fmt::format(
          "dm-stats regions ('stats {}') are not supported: 'ubdmsetup stats [NAME]' prints ubdm's own "
          "figures for every I/O of a device",
          a.name));
    }
  } else if (verb == "remove" || verb == "remove_all") {
    req["force"] = a.force;
  } else if (verb == "table" || verb == "status") {
    req["inactive"] = a.inactive;
  } else if (verb == "rename") {
    req[a.setuuid ? "new_uuid" : "new_name"] = a.new_name;
  } else if (verb == "message") {
    const auto sector = parse_unsigned(a.sector);
    if (!sector) {
      throw UsageError(fmt::format("SECTOR must be an unsigned number, not '{}'", a.sector));
    }
    req["sector"] = *sector;
    req["args"] = a.words;
  } else if (verb == "wait") {
    if (!a.event_nr.empty()) {  // given, or moved from NAME by -u
      const auto nr = parse_unsigned(a.event_nr);
      if (!nr) {
        throw UsageError(fmt::format("EVENT_NR must be an unsigned number, not '{}'", a.event_nr));
      }
      req["event_nr"] = *nr;
    }
  }
  return req;
}

// Text output of a successful reply; empty for verbs dmsetup runs silently.
std::string render(const std::string& verb, const Args& a, const nlohmann::json& reply,
                   const std::optional<ReportLayout>& report) {
  if (verb == "info") {
    return report ? format_report(reply, *report) : format_info(reply);
  }
  if (verb == "table" || verb == "status") {
    return format_lines(reply, a.name.empty(), a.target);
  }
  if (verb == "ls") {
    return format_ls(reply);
  }
  if (verb == "targets") {
    return format_targets(reply);
  }
  if (verb == "deps") {
    return format_deps(reply);
  }
  if (verb == "message") {
    return format_message_reply(reply);
  }
  if (verb == "paths") {
    return format_paths(reply);
  }
  if (verb == "stats") {
    return a.prometheus ? metrics::render_prometheus(reply) : format_stats(reply);
  }
  return "";
}

// Writes `text` to stdout; a failed write (a full disk, a closed pipe) is a
// failure of the command, not silence.
void emit(const std::string& text) {
  if (!text.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
  }
  if (std::fflush(stdout) != 0 || std::ferror(stdout) != 0) {
    const int err = errno;
    throw Error(err, fmt::format("cannot write the output: {}", errno_string(err)));
  }
}

std::string pretty(const nlohmann::json& j) {
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

// CLI11's messages start with a capital ("The following argument ..."); the
// rest of the line follows ours, in lower case. Keeps "NAME is required".
std::string usage_message(const std::string& msg) {
  std::string out = msg;
  if (out.size() > 1 && std::isupper(static_cast<unsigned char>(out[0])) != 0 &&
      std::islower(static_cast<unsigned char>(out[1])) != 0) {
    out[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(out[0])));
  }
  return out;
}

// The first word of argv that is not an option (nor --socket's value): the
// verb the user meant, for messages about an unknown verb.
std::string first_word(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--socket") {
      ++i;
      continue;
    }
    if (!arg.empty() && arg[0] != '-') {
      return arg;
    }
  }
  return "";
}

// The column report `info -c` asks for, checked before ubdmd is asked; none
// for the long format. Its options belong to info -c alone: elsewhere they
// are refused rather than ignored, as they would change nothing.
std::optional<ReportLayout> report_layout(const std::string& verb, Args& a,
                                          const std::map<std::string, CLI::Option*>& opts) {
  const auto given = [&](const char* key) { return opts.at(key)->count() > 0; };
  for (const char* key : {"fields", "sort", "noheadings", "separator", "nameprefixes"}) {
    if (given(key) && !(verb == "info" && a.columns)) {
      throw UsageError(fmt::format("{} is supported only with info -c", opts.at(key)->get_name()));
    }
  }
  if (verb != "info" || !a.columns) {
    return std::nullopt;
  }
  a.report.headings = !a.noheadings;
  if (given("separator")) {
    a.report.separator = a.separator;
  }
  try {
    return parse_report(a.report);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
}

// create --concise: every device of the specification, in order; if one
// fails, those made before it are removed again, so it makes all or none.
int create_concise(control::ControlClient& client, const Args& a, const std::map<std::string, CLI::Option*>& opts) {
  if (!a.file.empty() || !a.tables.empty() || !a.uuid.empty() || a.read_only) {
    throw UsageError("--concise: the specification carries each device's name, UUID, flags and table; give no "
                     "FILE, --table, -u or -r");
  }
  std::string spec = a.name;
  if (spec.empty()) {
    if (::isatty(STDIN_FILENO) == 1) {
      throw UsageError("--concise: no specification given: pass it, or pipe it on stdin");
    }
    spec = read_stream(std::cin, "stdin");
  }
  const std::vector<ConciseDevice> devices = parse_concise(spec);
  std::set<std::string> names;
  for (const ConciseDevice& d : devices) {
    if (!names.insert(d.name).second) {
      throw UsageError(fmt::format("--concise: {} is specified twice", d.name));
    }
  }
  std::vector<std::string> made;
  for (const ConciseDevice& d : devices) {
    Args one = a;
    one.concise = false;
    one.name = d.name;
    one.uuid = d.uuid;
    one.read_only = d.read_only;
    one.table_text = d.table;
    try {
      client.call(build_request("create", one, opts));
      made.push_back(d.name);
    } catch (const std::exception& e) {
      std::string undone;
      for (auto it = made.rbegin(); it != made.rend(); ++it) {
        try {
          client.call({{"op", "remove"}, {"name", *it}});
          undone += (undone.empty() ? "" : ", ") + *it;
        } catch (const std::exception& re) {
          report("remove", *it, re.what(), kExitFailed);
        }
      }
      return report("create", d.name,
                    undone.empty() ? std::string(e.what())
                                   : fmt::format("{} (removed again what this command made: {})", e.what(), undone),
                    kExitFailed);
    }
  }
  return kExitOk;
}

// Checks NAME against -u once parsing is done. With -u (except for create,
// which takes both) the device's name is not on the line, so the words
// CLI11 put in NAME and after it belong one place further left, as dmsetup
// reads them: `message -u UUID 0 fail_path 8:0`.
int name_or_uuid(const std::string& verb, Args& a, bool uuid_given, bool needs_name) {
  const auto usage = [&](const std::string& what) {
    return report(verb, a.name, fmt::format("{} (see ubdmsetup {} --help)", what, verb), kExitUsage);
  };
  if (uuid_given && a.uuid.empty()) {
    return usage("-u needs a UUID");
  }
  if (verb == "create" || !uuid_given) {
    if (needs_name && a.name.empty()) {
      return usage("NAME is required");
    }
    if (verb == "message" && a.words.empty()) {
      return usage("MESSAGE is required");
    }
    if (verb == "rename" && a.new_name.empty()) {
      return usage(a.setuuid ? "UUID is required" : "NEW_NAME is required");
    }
    return kExitOk;
  }
  if (verb == "load" || verb == "reload") {
    if (!a.file.empty() && !a.name.empty()) {
      return usage("give -u UUID or NAME, not both");
    }
    a.file = a.file.empty() ? a.name : a.file;
  } else if (verb == "message") {
    if (!a.name.empty()) {
      a.words.insert(a.words.begin(), a.sector);
      a.sector = a.name;
    }
    if (a.words.empty()) {
      return usage("MESSAGE is required");
    }
  } else if (verb == "wait") {
    if (!a.event_nr.empty() && !a.name.empty()) {
      return usage("give -u UUID or NAME, not both");
    }
    a.event_nr = a.event_nr.empty() ? a.name : a.event_nr;
  } else if (verb == "rename") {
    if (!a.new_name.empty() && !a.name.empty()) {
      return usage("give -u UUID or NAME, not both");
    }
    a.new_name = a.new_name.empty() ? a.name : a.new_name;
    if (a.new_name.empty()) {
      return usage(a.setuuid ? "UUID is required" : "NEW_NAME is required");
    }
  } else if (!a.name.empty()) {
    return usage("give -u UUID or NAME, not both");
  }
  if (verb == "ls" || verb == "targets" || verb == "version" || verb == "remove_all") {
    return usage(fmt::format("-u names a device, and {} takes none", verb));
  }
  a.name.clear();
  return kExitOk;
}

// The name of the device whose UUID is `uuid` (ENXIO if none has it).
std::string name_of_uuid(control::ControlClient& client, const std::string& uuid) {
  const nlohmann::json reply = client.call({{"op", "info"}});
  for (const auto& d : reply.at("devices")) {
    if (d.value("uuid", std::string()) == uuid) {
      return d.at("name").get<std::string>();
    }
  }
  throw Error(ENXIO, fmt::format("no device has UUID {}", uuid));
}

// Runs argv[0] (found in PATH) with its arguments, no shell; its exit
// status, or 127 if it could not be started.
int run_command(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& w : argv) {
    args.push_back(const_cast<char*>(w.c_str()));
  }
  args.push_back(nullptr);
  pid_t pid = -1;
  if (const int err = ::posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ); err != 0) {
    std::fprintf(stderr, "ubdmsetup: ls: cannot run %s: %s\n", args[0], std::strerror(err));
    return 127;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// ls --tree: every device with what it is built over, drawn with what -o
// asks for (parse_tree_options): by default in box characters when the
// environment's locale is a UTF-8 one, as dmsetup, and cut at dmsetup's
// width (fit_tree_to_terminal).
int list_tree(control::ControlClient& client, const Args& a) {
  if (!a.target.empty() || !a.exec.empty()) {
    throw UsageError("--tree does not go with --target or --exec");
  }
  TreeOptions topts;
  try {
    topts = parse_tree_options(a.report.fields, default_tree_symbols(environment_codeset()));
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  fit_tree_to_terminal(topts, stdout_terminal_columns());
  const nlohmann::json ls = client.call({{"op", "ls"}});
  const nlohmann::json info = client.call({{"op", "info"}});
  nlohmann::json deps = nlohmann::json::object();
  for (const auto& d : ls.at("devices")) {
    const std::string name = d.at("name").get<std::string>();
    try {
      deps[name] = client.call({{"op", "deps"}, {"name", name}});
    } catch (const Error& e) {
      if (e.code() != ENXIO) {  // removed since ls: left out
        throw;
      }
    }
  }
  // The kernel's name of a disk ubdm does not serve, as sysfs has it.
  const KernelName kname = [](std::uint32_t major, std::uint32_t minor) {
    std::error_code ec;
    const auto target =
        std::filesystem::read_symlink(fmt::format("/sys/dev/block/{}:{}", major, minor), ec);
    return ec ? std::string() : target.filename().string();
  };
  emit(format_ls_tree(ls, deps, info, topts, kname));
  return kExitOk;
}

// `ls --target TYPE` and `ls --exec CMD`: the devices (with a target of that
// type), listed as dmsetup does, or CMD run for each with the device's path
// appended, /dev/ubdm/NAME (else its /dev/ublkbN). Fails if a CMD does.
int list_devices(control::ControlClient& client, const Args& a) {
  nlohmann::json ls = client.call({{"op", "ls"}});
  if (!a.target.empty()) {
    const nlohmann::json tables = client.call({{"op", "table"}});
    if (a.exec.empty()) {
      emit(format_ls_with_target(ls, tables, a.target));
      return kExitOk;
    }
    nlohmann::json kept = nlohmann::json::array();
    for (const auto& d : ls.at("devices")) {
      for (const auto& t : tables.at("devices")) {
        if (t.at("name") == d.at("name") && has_target_type(t, a.target)) {
          kept.push_back(d);
        }
      }
    }
    ls["devices"] = kept;
  }
  std::vector<std::string> words;
  std::istringstream in(a.exec);
  for (std::string w; in >> w;) {
    words.push_back(w);
  }
  if (words.empty()) {
    throw UsageError("--exec needs a command");
  }
  int rc = kExitOk;
  for (const auto& d : ls.at("devices")) {
    const std::string link = std::string("/dev/ubdm/") + d.at("name").get<std::string>();
    std::vector<std::string> argv = words;
    argv.push_back(::access(link.c_str(), F_OK) == 0 ? link : d.at("blockdev").get<std::string>());
    if (run_command(argv) != 0) {
      rc = kExitFailed;
    }
  }
  return rc;
}

// As libdevmapper's retried remove: while the device is in use (EBUSY), try
// again every 200 ms, 25 times in all.
nlohmann::json call_with_retry(control::ControlClient& client, const nlohmann::json& req, bool retry) {
  constexpr int kTries = 25;
  for (int attempt = 1;; ++attempt) {
    try {
      return client.call(req);
    } catch (const Error& e) {
      if (!retry || e.code() != EBUSY || attempt == kTries) {
        throw;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

// dmsetup's options that mean nothing for ubdm, accepted so that a dmsetup
// script runs unchanged. The README's compatibility table says why each one
// is safe to ignore; keep the two in step.
void add_dmsetup_compat_options(CLI::App& app) {
  const auto ignored = [&app](const std::string& flags, const std::string& why) {
    const std::string help = "accepted for dmsetup scripts: " + why;
    app.add_flag(flags, help)->group("dmsetup compatibility");
  };
  ignored("--nolockfs", "ubdm never freezes a filesystem to suspend");
  ignored("--noudevsync,--noudevrules,--verifyudev",
          "ubdmsetup waits for no udev cookie; device nodes come from ubdm's udev rule");
  ignored("--addnodeoncreate,--addnodeonresume", "device nodes come from ubdm's udev rule");
  ignored("--noopencount", "the open count costs nothing here");
  ignored("-y,--yes", "ubdmsetup never asks for confirmation");
  ignored("-v,--verbose", "the output is the same at any verbosity");
  app.add_option("--udevcookie", "accepted for dmsetup scripts: there is no udev cookie to pass")
      ->type_name("COOKIE")
      ->group("dmsetup compatibility");
}

int run(int argc, char** argv) {
  Args a;
  a.socket = default_socket();

  CLI::App app{"Manage ubdm devices, served through ublk by ubdmd, with dmsetup's verbs and output.",
               "ubdmsetup"};
  app.require_subcommand(1);
  // Global options are accepted after the verb too: "ubdmsetup info --json".
  app.fallthrough();
  app.footer("Exit status: 0 success, 1 the operation failed, 2 usage error.\n");
  app.set_version_flag("--version", std::string("ubdmsetup version: ") + UBDM_VERSION,
                       "print ubdmsetup's version and exit (the verb 'version' asks ubdmd too)");
  app.add_option("--socket", a.socket,
                 "ubdmd's control socket (default: $UBDM_SOCKET, else " +
                     std::string(control::kDefaultSocketPath) + ")")
      ->type_name("PATH");
  app.add_flag("--json", a.json, "print the daemon's reply as JSON instead of text");
  // dmsetup takes its options anywhere on the line, whatever the verb, and
  // ignores those a verb does not use: so do we, for --noflush too.
  app.add_flag("--noflush", a.noflush, "suspend: do not flush outstanding I/O, park it until resume");
  add_dmsetup_compat_options(app);

  std::map<std::string, CLI::Option*> opts;
  opts["uuid"] = app.add_option("-u,--uuid", a.uuid,
                                "create: the new device's UUID; other verbs: the device, by UUID, instead of NAME")
                     ->type_name("UUID");
  opts["read_only"] = app.add_flag("-r,--readonly", a.read_only, "create: a read-only device (the kernel refuses writes)");
  // dmsetup's column report, of `info` (global options, as dmsetup's).
  app.add_flag("-c,-C,--columns", a.columns, "info: print dmsetup's column report")->group("info -c");
  opts["fields"] = app.add_option("-o,--options", a.report.fields,
                                  "info -c: the fields, comma-separated ('+' first: after the default ones)")
                       ->type_name("FIELDS")
                       ->group("info -c");
  opts["sort"] = app.add_option("-O,--sort", a.report.sort, "info -c: sort keys, comma-separated ('-': descending)")
                     ->type_name("FIELDS")
                     ->group("info -c");
  opts["noheadings"] = app.add_flag("--noheadings", a.noheadings, "info -c: no heading line; fields ':'-separated")
                           ->group("info -c");
  opts["separator"] =
      app.add_option("--separator", a.separator, "info -c: the field separator (no alignment)")
          ->type_name("SEP")
          ->group("info -c");
  opts["nameprefixes"] =
      app.add_flag("--nameprefixes", a.report.name_prefixes, "info -c: each value as DM_FIELD='value'")
          ->group("info -c");
  // Every verb's subcommand, with its one-line help from the protocol's verb
  // table (control/verbs.cpp), so the two cannot drift apart.
  const auto add_verb = [&](const char* name) {
    const control::VerbSpec* spec = control::find_verb(name);
    if (spec == nullptr) {
      throw std::logic_error(fmt::format("ubdmsetup offers '{}', which the protocol does not have", name));
    }
    return app.add_subcommand(name, std::string(spec->summary));
  };
  // NAME is checked after parsing, not by CLI11: `-u UUID` may stand for it.
  std::set<std::string> needs_name;
  const auto name_arg = [&](CLI::App* sub, bool required) {
    sub->add_option("NAME", a.name, "device name (or -u UUID instead)")->type_name("");
    if (required) {
      needs_name.insert(sub->get_name());
    }
  };
  const auto table_args = [&](CLI::App* sub) {
    sub->add_option("FILE", a.file, "file holding the table ('-': stdin; default: stdin)")->type_name("");
    sub->add_option("--table", a.tables,
                    "a table line; several lines separated by ';' or newlines; may be repeated")
        ->type_name("LINE")
        ->allow_extra_args(false);
  };

  auto* create = add_verb("create");
  name_arg(create, true);
  table_args(create);
  opts["queues"] =
      create->add_option("--queues", a.queues, "hardware queues of the ublk device (1-64)")->type_name("N");
  opts["depth"] =
      create->add_option("--depth", a.depth, "queue depth of the ublk device (1-4096)")->type_name("N");
  opts["poll_usec"] = create->add_option("--poll-usec", a.poll_usec,
                                         "adaptive-polling bound of the queue threads in us (0: off)")
                          ->type_name("N");
  create->add_flag("--copy", a.copy,
                   "copy data through ubdm's buffers even where the kernel offers zero copy (UBLK_F_AUTO_BUF_REG)");

  create->add_flag("-n,--notable", a.notable,
                   "refused: a ublk disk is made with its size, so ubdm creates a device with its table");
  create->add_flag("--concise", a.concise,
                   "NAME is a concise specification of one or more devices, as dmsetup's: "
                   "name,uuid,minor,flags,table[,table]...[;name,...] (minor must be empty; flags rw or ro; "
                   "stdin if not given); all are made, or none");

  auto* load = add_verb("load");
  load->alias("reload");
  name_arg(load, true);
  table_args(load);

  name_arg(add_verb("clear"), true);

  auto* suspend = add_verb("suspend");
  // Here too, for `suspend --help` (the global one serves the other verbs).
  suspend->add_flag("--noflush", a.noflush, "do not flush outstanding I/O: park it until resume");
  const std::string nolockfs_help = "accepted for dmsetup scripts: ubdm never freezes a filesystem to suspend";
  suspend->add_flag("--nolockfs", nolockfs_help);
  opts["timeout"] =
      suspend->add_option("--timeout", a.timeout, "give up after SECONDS")->type_name("SECONDS");
  name_arg(suspend, true);

  name_arg(add_verb("resume"), true);

  auto* remove = add_verb("remove");
  remove->add_flag("-f,--force", a.force, "replace the table with error targets first, failing parked I/O");
  name_arg(remove, true);

  remove->add_flag("--retry", a.retry,
                   "retry for up to 5 s while the device is in use (udev's probe of a new device holds "
                   "it briefly)");

  add_verb("remove_all")
      ->add_flag("-f,--force", a.force, "remove devices in use too, failing their parked I/O");

  auto* rename = add_verb("rename");
  name_arg(rename, true);
  rename->add_option("NEW_NAME", a.new_name, "the new name (with --setuuid: the UUID)")->type_name("");
  rename->add_flag("--setuuid", a.setuuid,
                   "give the device the UUID NEW_NAME instead (only a device without one: a UUID is set once)");

  name_arg(add_verb("info"), false);

  auto* table = add_verb("table");
  name_arg(table, false);
  table->add_flag("--inactive", a.inactive, "show the inactive table");
  table->add_option("--target", a.target, "show only the targets of this type")->type_name("TYPE");
  table->add_flag("--concise", a.concise, "every device on one line: name,uuid,minor,rw,<lines...>;...");
  const std::string showkeys_help = "accepted for dmsetup scripts: no ubdm target hides a key";
  table->add_flag("--showkeys", showkeys_help);

  auto* status = add_verb("status");
  name_arg(status, false);
  status->add_flag("--inactive", a.inactive, "show the inactive table's status");
  status->add_option("--target", a.target, "show only the targets of this type")->type_name("TYPE");

  auto* ls = add_verb("ls");
  ls->add_option("--target", a.target, "only devices with a target of this type: name\t(major, minor)")
      ->type_name("TYPE");
  ls->add_flag("--tree", a.tree,
               "each device with the devices it is built over, as dmsetup's tree (-o inverted, compact, utf, "
               "vt100, ascii, ...)");
  ls->add_option("--exec", a.exec, "run CMD DEVICE for each device (CMD split at spaces, no shell)")
      ->type_name("CMD");
  name_arg(add_verb("mknodes"), false);
  add_verb("targets");
  name_arg(add_verb("deps"), true);

  auto* message = add_verb("message");
  name_arg(message, true);
  message->add_option("SECTOR", a.sector, "a sector within the target (usually 0)")
      ->type_name("")
      ->required();
  message->add_option("MESSAGE", a.words, "the message words")->type_name("");

  auto* wait = add_verb("wait");
  name_arg(wait, true);
  opts["event_nr"] = wait->add_option("EVENT_NR", a.event_nr, "the event number last seen (default: current)")
                         ->type_name("");

  add_verb("version");
  name_arg(add_verb("paths"), false);
  auto* stats = add_verb("stats");
  name_arg(stats, false);
  stats->add_flag("--prometheus", a.prometheus,
                  "print Prometheus's text format, as ubdmd's --metrics-listen serves it");

  // udev's handshake with libdevmapper: there are no cookies here.
  std::set<std::string> udev_verbs{"udevcomplete", "udevcomplete_all", "udevcookies"};
  const std::string cookie_help = "accepted for dmsetup scripts: ubdm uses no udev cookies";
  std::string ignored_word;
  app.add_subcommand("udevcomplete", cookie_help)->add_option("COOKIE", ignored_word)->required()->type_name("");
  app.add_subcommand("udevcomplete_all", cookie_help)->add_option("AGE", ignored_word)->type_name("");
  app.add_subcommand("udevcookies", cookie_help);

  for (const control::VerbSpec& v : control::verbs()) {
    const std::string name(v.name);
    if (app.get_subcommands([&](CLI::App* sub) { return sub->get_name() == name; }).empty()) {
      throw std::logic_error(fmt::format("ubdmsetup has no subcommand for the protocol's verb '{}'", v.name));
    }
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    // --help, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    const auto subs = app.get_subcommands();
    if (subs.empty()) {
      const std::string word = first_word(argc, argv);
      const auto known = app.get_subcommands([&](CLI::App* sub) { return sub->check_name(word); });
      if (!word.empty() && known.empty()) {
        return report("", "", fmt::format("unknown verb '{}' (see ubdmsetup --help)", word), kExitUsage);
      }
      if (word.empty() && std::string(e.what()) == "A subcommand is required") {
        return report("", "", "no verb given (see ubdmsetup --help)", kExitUsage);
      }
      return report("", "", usage_message(e.what()) + " (see ubdmsetup --help)", kExitUsage);
    }
    const std::string verb = subs.front()->get_name();
    // Values are stored only once parsing succeeds; the NAME given is in the
    // option's raw results.
    std::string name = a.name;
    const CLI::Option* name_opt = subs.front()->get_option_no_throw("NAME");
    if (name.empty() && name_opt != nullptr && !name_opt->results().empty()) {
      name = name_opt->results().front();
    }
    return report(verb, name, usage_message(e.what()) + fmt::format(" (see ubdmsetup {} --help)", verb),
                  kExitUsage);
  }

  const std::string verb = app.get_subcommands().front()->get_name();
  if (udev_verbs.count(verb) > 0) {
    return kExitOk;
  }
  control::ControlClient client(a.socket);
  try {
    if (verb == "create" && a.notable) {
      throw UsageError("-n/--notable is not supported: a ublk disk is made with its size, so give the table at "
                       "create (the device can take another one with load and resume)");
    }
    if (verb == "create" && a.concise) {
      return create_concise(client, a, opts);
    }
    if (const int rc = name_or_uuid(verb, a, opts.at("uuid")->count() > 0, needs_name.count(verb) > 0);
        rc != kExitOk) {
      return rc;
    }
    if (a.read_only && verb != "create") {
      // dmsetup's -r on load makes that table read-only; a ubdm device is
      // read-only or not from its create, for its whole life.
      throw UsageError("-r is supported only with create: a device is read-only from its create on");
    }
    if (verb != "create" && !a.uuid.empty()) {
      a.name = name_of_uuid(client, a.uuid);
    }
    if (verb == "version") {
      // The client's version is useful precisely when the daemon is not
      // there, so it comes first and whatever happens next.
      if (!a.json) {
        emit(format_client_version(UBDM_VERSION));
      }
      nlohmann::json reply{{"ubdmsetup_version", UBDM_VERSION}};
      try {
        reply.update(client.call({{"op", "version"}}));
      } catch (...) {
        if (a.json) {
          emit(pretty(reply));
        }
        throw;
      }
      emit(a.json ? pretty(reply) : format_daemon_version(reply));
      return kExitOk;
    }

    if (verb == "ls" && a.tree) {
      return list_tree(client, a);
    }
    if (verb == "ls" && opts.at("fields")->count() > 0) {
      if (!a.target.empty() || !a.exec.empty()) {
        throw UsageError("ls -o does not go with --target or --exec");
      }
      LsName shown = LsName::kDevno;
      try {
        shown = parse_ls_options(a.report.fields);
      } catch (const std::invalid_argument& e) {
        throw UsageError(e.what());
      }
      emit(format_ls(client.call({{"op", "ls"}}), shown));
      return kExitOk;
    }
    if (verb == "ls" && (!a.target.empty() || !a.exec.empty())) {
      return list_devices(client, a);
    }
    if (verb == "table" && a.concise) {
      nlohmann::json info_req{{"op", "info"}};
      nlohmann::json table_req{{"op", "table"}};
      if (!a.name.empty()) {
        info_req["name"] = a.name;
        table_req["name"] = a.name;
      }
      const nlohmann::json info = client.call(info_req);
      emit(format_concise(info, client.call(table_req)));
      return kExitOk;
    }
    const std::optional<ReportLayout> report = report_layout(verb, a, opts);
    const nlohmann::json reply = call_with_retry(client, build_request(verb, a, opts), verb == "remove" && a.retry);
    std::string text;
    try {
      text = a.json ? pretty(reply) : render(verb, a, reply, report);
    } catch (const nlohmann::json::exception& e) {
      throw Error(EPROTO, fmt::format("invalid reply from ubdmd: {}", e.what()));
    }
    emit(text);
    return kExitOk;
  } catch (const UsageError& e) {
    return report(verb, a.name, e.what(), kExitUsage);
  } catch (const Error& e) {
    if (e.code() == ENXIO && (verb == "info" || verb == "status")) {
      // dmsetup's words, which scripts test for.
      std::fputs("Device does not exist.\nCommand failed.\n", stderr);
      return kExitFailed;
    }
    return report(verb, a.name, e.what(), kExitFailed);
  } catch (const std::exception& e) {
    return report(verb, a.name, e.what(), kExitFailed);
  }
}

}  // namespace
}  // namespace ubdm::cli

int main(int argc, char** argv) {
  try {
    return ubdm::cli::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ubdmsetup: %s\n", e.what());
    return 1;
  }
}
