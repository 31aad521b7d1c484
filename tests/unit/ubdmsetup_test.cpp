// SPDX-License-Identifier: MIT
// The built ubdmsetup binary against a control server in this process with
// a scripted handler: what it sends, what it prints, how it fails.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>

#include <gtest/gtest.h>

#include "control/server.hpp"
#include "control/verbs.hpp"
#include "control_test_util.hpp"
#include "metrics/device_stats.hpp"
#include "ubdm/error.hpp"
#include "ubdm/types.hpp"

extern char** environ;

namespace ubdm::test {
namespace {

using control::ControlServer;
using nlohmann::json;

struct CliResult {
  int code = -1;
  std::string out;
  std::string err;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::size_t line_count(const std::string& s) {
  return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n'));
}

struct RunOptions {
  std::string stdin_text;
  bool tty_stdin = false;
  std::optional<std::string> socket_env;  // UBDM_SOCKET; unset when empty optional
};

// Runs ubdmsetup with `args`; stdin from `stdin_text` or a pseudo-terminal.
CliResult run_cli(const std::vector<std::string>& args, const RunOptions& ro = {}) {
  TempDir io;
  const std::string in_path = io / "in";
  const std::string out_path = io / "out";
  const std::string err_path = io / "err";
  std::ofstream(in_path) << ro.stdin_text;

  int master = -1;
  std::string stdin_source = in_path;
  if (ro.tty_stdin) {
    master = ::posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || ::grantpt(master) != 0 || ::unlockpt(master) != 0) {
      ADD_FAILURE() << "no pseudo-terminal";
      return {};
    }
    stdin_source = ::ptsname(master);
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, stdin_source.c_str(), O_RDWR | O_NOCTTY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);

  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::string(*e).rfind("UBDM_SOCKET=", 0) != 0) {
      env.emplace_back(*e);
    }
  }
  if (ro.socket_env) {
    env.push_back("UBDM_SOCKET=" + *ro.socket_env);
  }
  std::vector<char*> envp;
  for (auto& e : env) {
    envp.push_back(e.data());
  }
  envp.push_back(nullptr);
  std::vector<std::string> argv_s{UBDM_UBDMSETUP_PATH};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);

  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, UBDM_UBDMSETUP_PATH, &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  CliResult r;
  if (rc != 0) {
    ADD_FAILURE() << "cannot run " << UBDM_UBDMSETUP_PATH << ": " << std::strerror(rc);
    return r;
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (master >= 0) {
    ::close(master);
  }
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  return r;
}

json device(const std::string& name) {
  return json{{"name", name},
              {"uuid", "mpath-3600"},
              {"state", "ACTIVE"},
              {"live_table", true},
              {"inactive_table", false},
              {"open_count", 0},
              {"event_nr", 7},
              {"major", 259},
              {"minor", 0},
              {"target_count", 1},
              {"size_sectors", 8},
              {"blockdev", "/dev/ublkb0"},
              {"ublk_id", 0},
              {"queues", 1},
              {"depth", 128}};
}

class ControlCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path = dir / "control.sock";
    ControlServer::Options o;
    o.socket_path = path;
    if (::geteuid() != 0) {
      o.allowed_group = ::getegid();
    }
    server = std::make_unique<ControlServer>(
        o, [this](const json& req, const ControlServer::Caller&) { return handle(req); });
    server->start();
  }

  json handle(const json& req) {
    {
      std::lock_guard lock(mu);
      requests.push_back(req);
    }
    const std::string op = req.at("op").get<std::string>();
    const std::string name = req.value("name", "");
    if (op == "remove" && name == "busy") {
      // In use for the first two tries, as a device that udev still probes.
      if (++busy_removes < 3) {
        throw Error(EBUSY, "device is in use (open count 1): close it first, or use --force");
      }
      return json::object();
    }
    // create --concise's devices: c* are made and removed, "fails" is refused.
    if (op == "create" && name == "fails") {
      throw Error(EINVAL, "table line 1: unknown target type 'bogus'");
    }
    if ((op == "create" || op == "remove") && name.rfind('c', 0) == 0) {
      return op == "create" ? json{{"device", device(name)}} : json::object();
    }
    if (!name.empty() && name != "mp0") {
      throw Error(ENXIO, "no such device");  // as ubdmd says it
    }
    if (op == "info") {
      return json{{"devices", {device("mp0")}}};
    }
    if (op == "table" || op == "status") {
      json all = {{{"name", "mp0"}, {"lines", {"0 8 zero"}}}, {{"name", "mp1"}, {"lines", {"0 8 error"}}}};
      return json{{"devices", name.empty() ? all : json{all[0]}}};
    }
    if (op == "ls") {
      return json{
          {"devices", {{{"name", "mp0"}, {"major", 259}, {"minor", 0}, {"blockdev", "/dev/ublkb0"}}}}};
    }
    if (op == "targets") {
      return json{{"targets", {{{"name", "linear"}, {"version", {1, 4, 0}}}}}};
    }
    if (op == "deps") {
      return json{{"deps", {{{"major", 8}, {"minor", 16}, {"path", "/dev/sdb"}}}}};
    }
    if (op == "message") {
      std::string words;
      for (const auto& w : req.at("args")) {
        words += " " + w.get<std::string>();
      }
      return json{{"reply", "got" + words}};
    }
    if (op == "version") {
      return json{{"daemon_version", "9.9.9"}, {"protocol", 1}, {"ublk_features", ""}};
    }
    if (op == "stats") {
      IoTotals t;
      OpIoTotals& r = t.ops[static_cast<std::size_t>(Op::kRead)];
      r.started = 4;
      r.completed = 3;
      r.bytes = 3 * 4096;
      r.latency[6] = 2;  // <= 64 us
      r.latency[9] = 1;  // <= 512 us
      r.latency_ns_sum = 300'000;
      t.waiting_requeue = 1;
      return json{{"devices",
                   {{{"name", "mp0"},
                     {"uuid", "mpath-3600"},
                     {"blockdev", "/dev/ublkb0"},
                     {"state", "ACTIVE"},
                     {"suspended", false},
                     {"event_nr", 7},
                     {"size_bytes", 1048576},
                     {"io", metrics::io_totals_json(t)},
                     {"paths",
                      {{{"group", 1}, {"device", "8:16"}, {"path", "/dev/sdb"}, {"state", "failed"},
                        {"fail_count", 2}, {"reinstate_count", 1}, {"checker", "faulty"}, {"in_flight", 0},
                        {"ios", 3}}}}}}}};
    }
    if (op == "remove") {
      return json::object();
    }
    return json{{"device", device("mp0")}};
  }

  std::vector<std::string> with_socket(std::vector<std::string> args) const {
    args.insert(args.begin(), {"--socket", path});
    return args;
  }

  json last_request() {
    std::lock_guard lock(mu);
    return requests.empty() ? json() : requests.back();
  }
  std::size_t request_count() {
    std::lock_guard lock(mu);
    return requests.size();
  }

  TempDir dir;
  std::string path;
  std::mutex mu;
  std::vector<json> requests;
  int busy_removes = 0;
  std::unique_ptr<ControlServer> server;
};

TEST_F(ControlCliTest, InfoPrintsDmsetupFormat) {
  const auto r = run_cli(with_socket({"info", "mp0"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out,
            "Name:              mp0\n"
            "State:             ACTIVE\n"
            "Tables present:    LIVE\n"
            "Open count:        0\n"
            "Event number:      7\n"
            "Major, minor:      259, 0\n"
            "Number of targets: 1\n"
            "UUID: mpath-3600\n"
            "Block device:      /dev/ublkb0\n"
            "\n");
  EXPECT_EQ(last_request(), (json{{"v", 1}, {"op", "info"}, {"name", "mp0"}}));
}

TEST_F(ControlCliTest, StatsPrintsATableJsonOrPrometheusText) {
  auto r = run_cli(with_socket({"stats", "mp0"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "mp0: ACTIVE, 1048576 bytes, event_nr 7, queued 1, pushed back 0, requeues 0\n"
            "  OP           IOS BYTES ERRORS IN_FLIGHT MEAN_US P50_US P99_US\n"
            "  read         3   12288 0      1         100     <=64   <=512\n"
            "  write        0   0     0      0         -       -      -\n"
            "  flush        0   0     0      0         -       -      -\n"
            "  discard      0   0     0      0         -       -      -\n"
            "  write_zeroes 0   0     0      0         -       -      -\n"
            "  PATH     DEVICE GROUP STATE  FAILS REINSTATES CHECKER IN_FLIGHT IOS\n"
            "  /dev/sdb 8:16   1     failed 2     1          faulty  0         3\n");
  EXPECT_EQ(last_request(), (json{{"v", 1}, {"op", "stats"}, {"name", "mp0"}}));
  r = run_cli(with_socket({"stats", "--prometheus"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("ubdm_io_total{device=\"mp0\",op=\"read\"} 3\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ubdm_path_failures_total{device=\"mp0\",path=\"/dev/sdb\",dev_t=\"8:16\",group=\"1\"} 2\n"),
            std::string::npos);
  r = run_cli(with_socket({"--json", "stats"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["devices"][0]["io"]["ops"]["read"]["ios"], 3);
}

TEST_F(ControlCliTest, CreateConciseMakesEveryDeviceOfTheSpecification) {
  const std::size_t before = request_count();
  const auto r = run_cli(with_socket(
      {"create", "--concise", "c1,U-1,,rw,0 8 zero,8 8 error;c\\,2,,,ro,0 8 linear /dev/x\\;y 0"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  std::lock_guard lock(mu);
  ASSERT_EQ(requests.size(), before + 2);
  EXPECT_EQ(requests[before], (json{{"v", 1}, {"op", "create"}, {"name", "c1"}, {"table", "0 8 zero\n8 8 error\n"},
                                    {"uuid", "U-1"}}));
  EXPECT_EQ(requests[before + 1], (json{{"v", 1}, {"op", "create"}, {"name", "c,2"},
                                        {"table", "0 8 linear /dev/x;y 0\n"}, {"read_only", true}}));
}

TEST_F(ControlCliTest, CreateConciseMakesAllOrNone) {
  std::size_t before = request_count();
  auto r = run_cli(with_socket({"create", "--concise", "c1,,,,0 8 zero;c2,,,,0 8 zero;fails,,,,0 8 bogus"}));
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err,
            "ubdmsetup: create fails: table line 1: unknown target type 'bogus' (removed again what this command "
            "made: c2, c1)\n");
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(requests.size(), before + 5);
    EXPECT_EQ(requests[before + 3], (json{{"v", 1}, {"op", "remove"}, {"name", "c2"}}));
    EXPECT_EQ(requests[before + 4], (json{{"v", 1}, {"op", "remove"}, {"name", "c1"}}));
  }
  // A bad specification is refused before anything is made.
  before = request_count();
  for (const char* spec : {"c1,,,rw", "c1,,7,rw,0 8 zero", "c1,,,rx,0 8 zero", ",,,,0 8 zero", "c1,,,,0 8 zero;c1,,,,0 8 zero"}) {
    r = run_cli(with_socket({"create", "--concise", spec}));
    EXPECT_EQ(r.code, 2) << spec << ": " << r.err;
  }
  EXPECT_EQ(request_count(), before);
  r = run_cli(with_socket({"create", "--concise", "c1,,7,rw,0 8 zero"}));
  EXPECT_NE(r.err.find("minor 7 cannot be chosen: ublk numbers its disks"), std::string::npos) << r.err;
  r = run_cli(with_socket({"create", "--concise", "c1,,,,0 8 zero"}), RunOptions{"c3,,,,0 8 zero\n", false, {}});
  EXPECT_EQ(r.code, 0) << "the positional wins over stdin: " << r.err;
  r = run_cli(with_socket({"create", "--concise"}), RunOptions{"c3,,,,0 8 zero\n", false, {}});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(last_request()["name"], "c3");
  EXPECT_EQ(last_request()["table"], "0 8 zero\n");
}

TEST_F(ControlCliTest, CreateWithoutATableIsRefusedWithTheReason) {
  const std::size_t before = request_count();
  const auto r = run_cli(with_socket({"create", "-n", "c1"}));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("-n/--notable is not supported: a ublk disk is made with its size"), std::string::npos)
      << r.err;
  EXPECT_EQ(request_count(), before);
}

// dmsetup's `stats list` is about dm-stats regions, not a device "list".
TEST_F(ControlCliTest, DmStatsSubcommandsAreRefusedByName) {
  const std::size_t before = request_count();
  for (const char* sub : {"list", "report", "create", "print"}) {
    const auto r = run_cli(with_socket({"stats", sub}));
    EXPECT_EQ(r.code, 2) << sub;
    EXPECT_NE(r.err.find("dm-stats regions"), std::string::npos) << r.err;
  }
  EXPECT_EQ(request_count(), before) << "nothing reached the daemon";
}

TEST_F(ControlCliTest, DaemonErrorIsOneLineAndExitOne) {
  const auto r = run_cli(with_socket({"table", "nope"}));
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "ubdmsetup: table nope: no such device\n");
}

// Scripts test info's and status's words for a device that is not there.
TEST_F(ControlCliTest, InfoAndStatusOfAMissingDeviceSayWhatDmsetupSays) {
  for (const char* verb : {"info", "status"}) {
    const auto r = run_cli(with_socket({verb, "nope"}));
    EXPECT_EQ(r.code, 1) << verb;
    EXPECT_EQ(r.out, "") << verb;
    EXPECT_EQ(r.err, "Device does not exist.\nCommand failed.\n") << verb;
  }
}

// A dmsetup command line works when only the command's name changes: its
// options go anywhere, and those with no meaning here are accepted.
TEST_F(ControlCliTest, TakesDmsetupsOptionsAnywhere) {
  auto r = run_cli(with_socket({"suspend", "--nolockfs", "--noflush", "mp0"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(last_request(), (json{{"v", 1}, {"op", "suspend"}, {"name", "mp0"}, {"noflush", true}}));
  r = run_cli(with_socket({"--noudevsync", "--noudevrules", "--verifyudev", "resume", "mp0", "--udevcookie", "0x0d4d0001"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(last_request(), (json{{"v", 1}, {"op", "resume"}, {"name", "mp0"}}));
  r = run_cli(with_socket({"-y", "-v", "-v", "--noopencount", "--addnodeoncreate", "info", "mp0"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(last_request(), (json{{"v", 1}, {"op", "info"}, {"name", "mp0"}}));
  // A quoted message goes as one word; ubdmd splits it as the kernel does.
  r = run_cli(with_socket({"message", "mp0", "0", "fail_path 8:16"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(last_request(),
            (json{{"v", 1}, {"op", "message"}, {"name", "mp0"}, {"sector", 0}, {"args", {"fail_path 8:16"}}}));
}

TEST_F(ControlCliTest, InfoColumnsPrintDmsetupsReport) {
  auto r = run_cli(with_socket({"info", "-c", "--noheadings", "-o", "name,attr,open", "mp0"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "mp0:L--w:0\n");
  EXPECT_EQ(last_request(), (json{{"v", 1}, {"op", "info"}, {"name", "mp0"}}));
  r = run_cli(with_socket({"--columns", "info", "--nameprefixes", "--noheadings", "-o", "blkdevname"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "DM_BLKDEVNAME='ublkb0'\n");
}

TEST_F(ControlCliTest, ReportOptionsAreUsageErrorsOutsideInfoColumns) {
  const std::size_t before = request_count();
  auto r = run_cli(with_socket({"table", "--noheadings"}));
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "ubdmsetup: table: --noheadings is supported only with info -c\n");
  r = run_cli(with_socket({"info", "-o", "name", "mp0"}));
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "ubdmsetup: info mp0: --options is supported only with info -c\n");
  r = run_cli(with_socket({"info", "-c", "-o", "name,colour"}));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("ubdmsetup: info: -o: unknown field 'colour' (fields: name,"), std::string::npos) << r.err;
  EXPECT_EQ(request_count(), before) << "nothing is sent";
}

TEST_F(ControlCliTest, UuidIsGivenAtCreateAndNamesTheDeviceElsewhere) {
  auto r = run_cli(with_socket({"create", "mp0", "-u", "mpath-3600", "--table", "0 8 zero"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(last_request(),
            (json{{"v", 1}, {"op", "create"}, {"name", "mp0"}, {"table", "0 8 zero\n"}, {"uuid", "mpath-3600"}}));
  // Elsewhere -u stands for NAME: the device is looked up, then named.
  r = run_cli(with_socket({"-u", "mpath-3600", "suspend", "--noflush"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(last_request(), (json{{"v", 1}, {"op", "suspend"}, {"name", "mp0"}, {"noflush", true}}));
  r = run_cli(with_socket({"message", "-u", "mpath-3600", "0", "fail_path", "8:16"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(last_request(),
            (json{{"v", 1}, {"op", "message"}, {"name", "mp0"}, {"sector", 0}, {"args", {"fail_path", "8:16"}}}));
  r = run_cli(with_socket({"wait", "--uuid", "mpath-3600", "9"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(last_request(), (json{{"v", 1}, {"op", "wait"}, {"name", "mp0"}, {"event_nr", 9}}));
  r = run_cli(with_socket({"info", "-u", "other"}));
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "Device does not exist.\nCommand failed.\n");
  r = run_cli(with_socket({"remove", "-u", "other"}));
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "ubdmsetup: remove: no device has UUID other\n");
  const std::size_t before = request_count();
  r = run_cli(with_socket({"remove", "-u", "mpath-3600", "mp0"}));
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "ubdmsetup: remove mp0: give -u UUID or NAME, not both (see ubdmsetup remove --help)\n");
  r = run_cli(with_socket({"ls", "-u", "mpath-3600"}));
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "ubdmsetup: ls: -u names a device, and ls takes none (see ubdmsetup ls --help)\n");
  r = run_cli(with_socket({"message", "mp0", "0"}));
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "ubdmsetup: message mp0: MESSAGE is required (see ubdmsetup message --help)\n");
  EXPECT_EQ(request_count(), before) << "usage errors send nothing";
}

TEST_F(ControlCliTest, ReadOnlyIsACreateOption) {
  auto r = run_cli(with_socket({"-r", "create", "mp0", "--table", "0 8 zero"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(last_request(),
            (json{{"v", 1}, {"op", "create"}, {"name", "mp0"}, {"table", "0 8 zero\n"}, {"read_only", true}}));
  const std::size_t before = request_count();
  r = run_cli(with_socket({"load", "--readonly", "mp0", "--table", "0 8 zero"}));
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "ubdmsetup: load mp0: -r is supported only with create: a device is read-only from its create on\n");
  EXPECT_EQ(request_count(), before);
}

// dmsetup's two forms: rename NAME NEW_NAME, and rename NAME --setuuid UUID
// (a flag: the UUID is the last word); -u UUID stands for NAME.
TEST_F(ControlCliTest, RenameTakesANewNameOrSetsAUuid) {
  auto r = run_cli(with_socket({"rename", "mp0", "mp1"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "") << "dmsetup rename prints nothing";
  EXPECT_EQ(last_request(), (json{{"v", 1}, {"op", "rename"}, {"name", "mp0"}, {"new_name", "mp1"}}));
  r = run_cli(with_socket({"rename", "mp0", "--setuuid", "mpath-3600"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(last_request(), (json{{"v", 1}, {"op", "rename"}, {"name", "mp0"}, {"new_uuid", "mpath-3600"}}));
  r = run_cli(with_socket({"rename", "--setuuid", "mp0", "mpath-3600"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(last_request(), (json{{"v", 1}, {"op", "rename"}, {"name", "mp0"}, {"new_uuid", "mpath-3600"}}));
  r = run_cli(with_socket({"rename", "-u", "mpath-3600", "mp2"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(last_request(), (json{{"v", 1}, {"op", "rename"}, {"name", "mp0"}, {"new_name", "mp2"}}));
  const std::size_t before = request_count();
  r = run_cli(with_socket({"rename", "mp0"}));
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "ubdmsetup: rename mp0: NEW_NAME is required (see ubdmsetup rename --help)\n");
  r = run_cli(with_socket({"rename", "mp0", "--setuuid"}));
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "ubdmsetup: rename mp0: UUID is required (see ubdmsetup rename --help)\n");
  EXPECT_EQ(request_count(), before) << "usage errors send nothing";
}

TEST_F(ControlCliTest, UdevCookieVerbsAreAcceptedAndAskNothing) {
  const std::size_t before = request_count();
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"udevcomplete", "0xd4d0001"}, {"udevcomplete_all"}, {"udevcomplete_all", "10"}, {"udevcookies"}}) {
    const auto r = run_cli(with_socket(args));
    EXPECT_EQ(r.code, 0) << args[0] << ": " << r.err;
    EXPECT_EQ(r.out, "") << args[0];
  }
  EXPECT_EQ(request_count(), before);
}

TEST_F(ControlCliTest, MknodesAsksUbdmdAndPrintsNothing) {
  auto r = run_cli(with_socket({"mknodes", "mp0"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(last_request(), (json{{"v", 1}, {"op", "mknodes"}, {"name", "mp0"}}));
  r = run_cli(with_socket({"mknodes"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(last_request(), (json{{"v", 1}, {"op", "mknodes"}}));
}

TEST_F(ControlCliTest, LsTargetAndExec) {
  auto r = run_cli(with_socket({"ls", "--target", "zero"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "mp0\t(259, 0)\n");
  r = run_cli(with_socket({"ls", "--target", "linear"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  // The device path is appended: `test -b` fails here (no such device on
  // the build machine), `test -n` passes.
  r = run_cli(with_socket({"ls", "--exec", "test -n"}));
  EXPECT_EQ(r.code, 0) << r.err;
  r = run_cli(with_socket({"ls", "--exec", "test -b"}));
  EXPECT_EQ(r.code, 1);
  r = run_cli(with_socket({"ls", "--target", "linear", "--exec", "false"}));
  EXPECT_EQ(r.code, 0) << "no device has a linear target: nothing runs";
}

TEST_F(ControlCliTest, TableConcise) {
  const auto r = run_cli(with_socket({"table", "--concise", "--showkeys", "mp0"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "mp0,mpath-3600,0,rw,0 8 zero\n");
}

TEST_F(ControlCliTest, TargetSelectsTheLinesOfOneType) {
  auto r = run_cli(with_socket({"table", "--target", "error"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "mp1: 0 8 error\n");
  r = run_cli(with_socket({"status", "mp0", "--target", "linear"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "") << "a device with no such target prints nothing";
}

TEST_F(ControlCliTest, RemoveRetriesWhileTheDeviceIsBusyOnlyWithRetry) {
  auto r = run_cli(with_socket({"remove", "busy"}));
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "ubdmsetup: remove busy: device is in use (open count 1): close it first, or use --force\n");
  EXPECT_EQ(request_count(), 1U);
  r = run_cli(with_socket({"remove", "--retry", "busy"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(request_count(), 3U) << "--retry's second try succeeds: the third request in all";
}

TEST_F(ControlCliTest, TablePrefixesNamesOnlyForAllDevices) {
  auto r = run_cli(with_socket({"table", "mp0"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "0 8 zero\n");
  EXPECT_EQ(last_request(), (json{{"v", 1}, {"op", "table"}, {"name", "mp0"}, {"inactive", false}}));
  r = run_cli(with_socket({"status", "--inactive"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "mp0: 0 8 zero\nmp1: 0 8 error\n");
  EXPECT_EQ(last_request(), (json{{"v", 1}, {"op", "status"}, {"inactive", true}}));
}

TEST_F(ControlCliTest, ListingVerbs) {
  auto r = run_cli(with_socket({"ls"}));
  EXPECT_EQ(r.out, "mp0\t(259:0)\n");
  r = run_cli(with_socket({"targets"}));
  EXPECT_EQ(r.out, "linear           v1.4.0\n");
  r = run_cli(with_socket({"deps", "mp0"}));
  EXPECT_EQ(r.out, "1 dependencies\t: (8, 16)\n");
  EXPECT_EQ(r.code, 0);
}

TEST_F(ControlCliTest, CreateJoinsTableOptions) {
  const auto r = run_cli(with_socket({"create", "mp0", "--table", "0 8 zero;8 8 error", "--table",
                                      "16 8 zero", "--queues", "2", "--depth", "64", "--poll-usec", "25"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(last_request(), (json{{"v", 1},
                                  {"op", "create"},
                                  {"name", "mp0"},
                                  {"table", "0 8 zero\n8 8 error\n16 8 zero\n"},
                                  {"queues", 2},
                                  {"depth", 64},
                                  {"poll_usec", 25}}));
}

TEST_F(ControlCliTest, TableFromFileOrStdin) {
  const std::string file = dir / "table";
  std::ofstream(file) << "0 8 linear /dev/sdb 0\n";
  auto r = run_cli(with_socket({"create", "mp0", file}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(last_request()["table"], "0 8 linear /dev/sdb 0\n");

  r = run_cli(with_socket({"load", "mp0"}), RunOptions{"0 8 zero\n", false, std::nullopt});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(last_request(), (json{{"v", 1}, {"op", "load"}, {"name", "mp0"}, {"table", "0 8 zero\n"}}));

  r = run_cli(with_socket({"reload", "mp0", "-"}), RunOptions{"0 8 error\n", false, std::nullopt});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(last_request(), (json{{"v", 1}, {"op", "load"}, {"name", "mp0"}, {"table", "0 8 error\n"}}));

  r = run_cli(with_socket({"create", "mp0", dir / "missing"}));
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "ubdmsetup: create mp0: cannot open table file " + (dir / "missing") +
                       ": No such file or directory\n");
}

TEST_F(ControlCliTest, NoTableOnATerminalIsAUsageError) {
  const std::size_t before = request_count();
  const auto r = run_cli(with_socket({"create", "mp0"}), RunOptions{"", true, std::nullopt});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "ubdmsetup: create mp0: no table given: pass FILE, --table or a table on stdin\n");
  EXPECT_EQ(request_count(), before);
}

TEST_F(ControlCliTest, VerbArguments) {
  auto r = run_cli(with_socket({"suspend", "--noflush", "--timeout", "1.5", "mp0"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(last_request(),
            (json{{"v", 1}, {"op", "suspend"}, {"name", "mp0"}, {"noflush", true}, {"timeout_ms", 1500}}));
  r = run_cli(with_socket({"suspend", "mp0"}));
  EXPECT_EQ(last_request(), (json{{"v", 1}, {"op", "suspend"}, {"name", "mp0"}, {"noflush", false}}));
  r = run_cli(with_socket({"resume", "mp0"}));
  EXPECT_EQ(last_request(), (json{{"v", 1}, {"op", "resume"}, {"name", "mp0"}}));
  r = run_cli(with_socket({"clear", "mp0"}));
  EXPECT_EQ(last_request(), (json{{"v", 1}, {"op", "clear"}, {"name", "mp0"}}));
  r = run_cli(with_socket({"remove", "-f", "mp0"}));
  EXPECT_EQ(last_request(), (json{{"v", 1}, {"op", "remove"}, {"name", "mp0"}, {"force", true}}));
  r = run_cli(with_socket({"remove", "mp0"}));
  EXPECT_EQ(last_request(), (json{{"v", 1}, {"op", "remove"}, {"name", "mp0"}, {"force", false}}));
  r = run_cli(with_socket({"wait", "mp0", "5"}));
  EXPECT_EQ(last_request(), (json{{"v", 1}, {"op", "wait"}, {"name", "mp0"}, {"event_nr", 5}}));
  EXPECT_EQ(r.out, "");
  r = run_cli(with_socket({"wait", "mp0"}));
  EXPECT_EQ(last_request(), (json{{"v", 1}, {"op", "wait"}, {"name", "mp0"}}));
  r = run_cli(with_socket({"message", "mp0", "0", "fail_path", "8:16"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "got fail_path 8:16\n");
  EXPECT_EQ(
      last_request(),
      (json{{"v", 1}, {"op", "message"}, {"name", "mp0"}, {"sector", 0}, {"args", {"fail_path", "8:16"}}}));
}

TEST_F(ControlCliTest, UsageErrorsAreOneLineExitTwoAndSendNothing) {
  struct Case {
    std::vector<std::string> args;
    std::string err;
  };
  const std::vector<Case> cases = {
      {{"message", "mp0", "abc", "hello"},
       "ubdmsetup: message mp0: SECTOR must be an unsigned number, not 'abc'\n"},
      {{"wait", "mp0", "x1"}, "ubdmsetup: wait mp0: EVENT_NR must be an unsigned number, not 'x1'\n"},
      {{"create", "mp0", "--table", "0 8 zero", "--queues", "65"},
       "ubdmsetup: create mp0: --queues must be a number from 1 to 64, not '65'\n"},
      {{"create", "mp0", "--table", "0 8 zero", "--depth", "0"},
       "ubdmsetup: create mp0: --depth must be a number from 1 to 4096, not '0'\n"},
      {{"create", "mp0", "--table", "0 8 zero", "--poll-usec", "-1"},
       "ubdmsetup: create mp0: --poll-usec must be a number from 0 to 1000000, not '-1'\n"},
      {{"create", "mp0", "--table", "0 8 zero", "file"},
       "ubdmsetup: create mp0: give the table either as FILE or with --table, not both\n"},
      {{"suspend", "--timeout", "0", "mp0"},
       "ubdmsetup: suspend mp0: --timeout must be a positive number of seconds, not '0'\n"},
      {{"suspend", "--timeout", "soon", "mp0"},
       "ubdmsetup: suspend mp0: --timeout must be a positive number of seconds, not 'soon'\n"},
      {{"frobnicate"}, "ubdmsetup: unknown verb 'frobnicate' (see ubdmsetup --help)\n"},
      {{}, "ubdmsetup: no verb given (see ubdmsetup --help)\n"},
      {{"create"}, "ubdmsetup: create: NAME is required (see ubdmsetup create --help)\n"},
      {{"resume", "mp0", "extra"},
       "ubdmsetup: resume mp0: the following argument was not expected: extra (see ubdmsetup resume "
       "--help)\n"},
      {{"info", "--bogus"},
       "ubdmsetup: info: the following argument was not expected: --bogus (see ubdmsetup info --help)\n"},
  };
  const std::size_t before = request_count();
  for (const auto& c : cases) {
    const auto r = run_cli(with_socket(c.args));
    EXPECT_EQ(r.code, 2) << c.err;
    EXPECT_EQ(r.err, c.err);
    EXPECT_EQ(r.out, "");
  }
  EXPECT_EQ(request_count(), before);
}

TEST_F(ControlCliTest, JsonPrintsTheReply) {
  const auto r = run_cli(with_socket({"--json", "ls"}));
  EXPECT_EQ(r.code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(j["devices"][0]["name"], "mp0");
  EXPECT_NE(r.out.find("\n  "), std::string::npos) << "pretty-printed";
  // Also after the verb.
  const auto r2 = run_cli(with_socket({"create", "mp0", "--table", "0 8 zero", "--json"}));
  EXPECT_EQ(r2.code, 0) << r2.err;
  EXPECT_EQ(json::parse(r2.out)["device"]["name"], "mp0");
}

TEST_F(ControlCliTest, Version) {
  auto r = run_cli(with_socket({"version"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("ubdmsetup version: ", 0), 0U) << r.out;
  EXPECT_NE(r.out.find("\nubdmd version:     9.9.9\nProtocol version:  1\n"), std::string::npos) << r.out;
  r = run_cli(with_socket({"--json", "version"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["daemon_version"], "9.9.9");
  EXPECT_TRUE(json::parse(r.out).contains("ubdmsetup_version"));
}

TEST_F(ControlCliTest, SocketFromTheEnvironment) {
  const auto r = run_cli({"ls"}, RunOptions{"", false, path});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "mp0\t(259:0)\n");
}

TEST_F(ControlCliTest, HelpStillWorks) {
  auto r = run_cli({"--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("create"), std::string::npos);
  r = run_cli({"suspend", "--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("--noflush"), std::string::npos);
}

// The CLI offers exactly the protocol's verbs, each with the table's help.
TEST_F(ControlCliTest, HelpListsEveryVerbOfTheProtocolWithItsSummary) {
  const auto r = run_cli({"--help"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const control::VerbSpec& v : control::verbs()) {
    EXPECT_NE(r.out.find(std::string(v.summary)), std::string::npos) << v.name << " missing from:\n" << r.out;
  }
}

TEST(ControlCliNoDaemonTest, UnreachableDaemon) {
  TempDir dir;
  const std::string path = dir / "control.sock";
  auto r = run_cli({"--socket", path, "ls"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "ubdmsetup: ls: cannot connect to ubdmd at " + path +
                       ": No such file or directory (is ubdmd running?)\n");

  // version still prints the client's version first.
  r = run_cli({"--socket", path, "version"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out.rfind("ubdmsetup version: ", 0), 0U);
  EXPECT_EQ(line_count(r.out), 1U);
  EXPECT_EQ(r.err, "ubdmsetup: version: cannot connect to ubdmd at " + path +
                       ": No such file or directory (is ubdmd running?)\n");
}

}  // namespace
}  // namespace ubdm::test
