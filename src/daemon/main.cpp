// SPDX-License-Identifier: MIT
// ubdmd: serves device-mapper tables as ublk block devices.
//
//   ubdmd [--socket PATH] [--config DIR] [--state-dir DIR] [--log-level L]
//         [--foreground] [--group NAME] [--queues N] [--depth N]
//         [--poll-usec N] [--on-stop keep|remove] [--stop-timeout S]
//         [--map-wait S] [--multipath-conf PATH] [--sysfs ROOT] [--no-kernel]
//
// Devices outlive the process: a crash or a stop leaves them to the kernel,
// and the next ubdmd adopts them from --state-dir (docs/architecture.md,
// "Recovery"). With a multipath.conf, ubdmd makes the multipath maps of the
// LUNs it finds at start (docs/discovery.md).
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>

#include "control/protocol.hpp"
#include "control/server.hpp"
#include "daemon/device_manager.hpp"
#include "daemon/path_discovery.hpp"
#include "metrics/device_stats.hpp"
#include "metrics/exporter.hpp"
#include "io/fd_limit.hpp"
#include "ubdm/error.hpp"
#include "ublk/control.hpp"

namespace {

using namespace ubdm;

struct Options {
  std::string socket = control::kDefaultSocketPath;
  std::string config_dir = "/etc/ubdm";
  std::string state_dir = "/run/ubdm/devices";
  std::string on_stop = "keep";
  std::string log_level = "info";
  std::string group;
  bool foreground = false;
  bool no_kernel = false;
  unsigned queues = 0;
  unsigned depth = 128;
  unsigned poll_usec = daemon::DaemonConfig{}.default_poll_usec;
  // Below the unit's TimeoutStopSec (120 s), so that we, not SIGKILL, end it.
  unsigned stop_timeout_s = 90;
  unsigned map_wait_s = 30;
  std::string metrics_listen;    // "" : no endpoint
  std::string metrics_textfile;  // "" : no file
  unsigned metrics_interval_s = 15;
  // Path discovery's configuration: "" turns discovery off; main() puts
  // CONFIG/multipath.conf here unless --multipath-conf was given.
  std::string multipath_conf;
  std::string sysfs_root = "/sys";
};

// Detach from the terminal. The parent exits only when the child reports
// that it is serving (or failed), so `ubdmd && ubdmsetup ...` works.
int daemonize(int& ready_fd) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return -errno;
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    return -errno;
  }
  if (pid > 0) {
    // Status byte, then (on failure) the error message for the terminal.
    ::close(fds[1]);
    std::string reply;
    char buf[512];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof(buf))) > 0) {
      reply.append(buf, static_cast<std::size_t>(n));
    }
    if (reply.empty() || reply[0] != 0) {
      const std::string why = reply.size() > 1 ? reply.substr(1) : "it exited during start-up";
      std::fprintf(stderr, "ubdmd: %s\n", why.c_str());
      std::_Exit(1);
    }
    std::_Exit(0);
  }
  ::close(fds[0]);
  ready_fd = fds[1];
  ::setsid();
  if (::chdir("/") != 0) {
    return -errno;
  }
  const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    ::dup2(null, STDIN_FILENO);
    ::dup2(null, STDOUT_FILENO);
    ::dup2(null, STDERR_FILENO);
    ::close(null);
  }
  return 0;
}

// Whether systemd is taking the system down (its SystemState is
// "stopping"), asked over systemd's private socket, which works as long as
// systemd runs (the D-Bus daemon may be gone by then). False when there is
// no systemd to ask.
bool system_is_going_down() {
  sd_bus* bus = nullptr;
  if (sd_bus_new(&bus) < 0) {
    return false;
  }
  bool down = false;
  if (sd_bus_set_address(bus, "unix:path=/run/systemd/private") >= 0 && sd_bus_start(bus) >= 0) {
    sd_bus_error error = SD_BUS_ERROR_NULL;
    char* state = nullptr;
    if (sd_bus_get_property_string(bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                   "org.freedesktop.systemd1.Manager", "SystemState", &error, &state) >= 0) {
      down = std::strcmp(state, "stopping") == 0;
      std::free(state);
    }
    sd_bus_error_free(&error);
  }
  sd_bus_flush_close_unref(bus);
  return down;
}

// Tell the waiting parent (see daemonize) how start-up went.
void report_ready(int& ready_fd, bool ok, const std::string& error = {}) {
  if (ready_fd >= 0) {
    std::string msg(1, ok ? '\0' : '\1');
    msg += error;
    (void)!::write(ready_fd, msg.data(), msg.size());
    ::close(ready_fd);
    ready_fd = -1;
  }
}

void setup_logging(const Options& o) {
  std::shared_ptr<spdlog::logger> logger;
  if (o.foreground) {
    logger = spdlog::stderr_color_mt("ubdmd");
  } else {
    logger = spdlog::syslog_logger_mt("ubdmd", "ubdmd", LOG_PID, LOG_DAEMON);
  }
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(o.log_level));
  spdlog::set_pattern(o.foreground ? "%Y-%m-%d %H:%M:%S.%e %^%l%$ %v" : "%l %v");
}

int serve(const Options& o, int& ready_fd) {
  // Refuse a bad address before anything starts.
  std::optional<metrics::ListenAddress> metrics_addr;
  if (!o.metrics_listen.empty()) {
    metrics_addr = metrics::parse_listen_address(o.metrics_listen);
  }
  // A multipath.conf that cannot be trusted stops ubdmd here, as a bad
  // address does, before any device is touched.
  const std::optional<daemon::PathDiscovery> path_discovery =
      daemon::load_path_discovery({o.multipath_conf, o.config_dir, o.sysfs_root});
  // Before any ring or device exists: every ring's fixed-file table, and so
  // the number of devices, is sized once from the soft limit (io/fd_limit).
  const NofileLimit files = raise_nofile_limit();
  spdlog::info("open-file limit {} (hard {}): up to {} underlying devices", files.soft, files.hard,
               fixed_file_slots());

  // Writeback to our devices goes through this process: keep the OOM killer away.
  std::ofstream("/proc/self/oom_score_adj") << "-1000";

  std::optional<gid_t> group;
  if (!o.group.empty()) {
    const struct group* g = ::getgrnam(o.group.c_str());
    if (g == nullptr) {
      fail(ENOENT, "group '{}' does not exist", o.group);
    }
    group = g->gr_gid;
  }
  std::unique_ptr<ublk::Control> ctrl;
  if (!o.no_kernel) {
    ctrl = std::make_unique<ublk::Control>();
    spdlog::info("ublk driver features {:#x}", ctrl->features());
  }
  auto opener = make_system_device_opener();
  daemon::DaemonConfig cfg;
  cfg.config_dir = o.config_dir;
  cfg.state_dir = o.state_dir;
  cfg.default_queues = o.queues;
  cfg.default_depth = o.depth;
  cfg.default_poll_usec = o.poll_usec;
  if (const char* v = std::getenv("UBDMD_ZERO_COPY_FALLBACK"); v != nullptr && std::string_view(v) == "1") {
    cfg.zero_copy_fallback_test = true;
    spdlog::warn("UBDMD_ZERO_COPY_FALLBACK=1: zero-copy requests take the hand-registration path (tests only)");
  }
  if (o.no_kernel) {
    // Nothing outlives this process without a kernel device.
    cfg.link_dir.clear();
    cfg.names_dir.clear();
    cfg.state_dir.clear();
  }
  daemon::DeviceManager manager(cfg, *opener, ctrl.get());
  control::ControlServer::Options sopts;
  sopts.socket_path = o.socket;
  sopts.allowed_group = group;
  control::ControlServer server(sopts, [&manager](const nlohmann::json& req,
                                                  const control::ControlServer::Caller& caller) {
    return manager.handle(req, [&caller] { return caller.gone(); });
  });
  // The same figures as `ubdmsetup stats`: the exporter renders the verb's answer.
  metrics::Exporter exporter(
      [&manager] { return metrics::render_prometheus(manager.handle({{"op", "stats"}}, {})); });
  if (metrics_addr) {
    exporter.listen(*metrics_addr);
  }
  if (!o.metrics_textfile.empty()) {
    exporter.write_textfile(o.metrics_textfile, std::chrono::seconds(o.metrics_interval_s));
  }
  // The socket is bound but not yet accepting: a client that connects now
  // waits in the backlog and sees the adopted devices and those of maps.d
  // once they exist. Adoption comes first: a maps.d name already adopted
  // is the same device, not a new one.
  const unsigned adopted = manager.adopt_devices(std::chrono::seconds(std::max(o.map_wait_s, 60U)));
  // Bounded: a map whose disks hang goes on in the background, and systemd
  // still hears READY (a unit waiting on us must not wait on a dead disk).
  // maps.d and path discovery share the one --map-wait.
  const auto map_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(o.map_wait_s);
  const unsigned maps = manager.load_persistent_maps(std::chrono::seconds(o.map_wait_s));
  // Then the multipath maps of path discovery, beside what exists now: an
  // adopted map keeps its WWID, a maps.d map its name and disks.
  unsigned assembled = 0;
  if (path_discovery) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(map_deadline -
                                                                             std::chrono::steady_clock::now());
    try {
      assembled =
          daemon::assemble_multipath_maps(*path_discovery, manager, std::max(left, std::chrono::milliseconds(0)));
    } catch (const std::exception& e) {
      // The devices that exist go on being served.
      spdlog::error("multipath: path discovery failed: {}", e.what());
    }
  }
  server.start();
  spdlog::info("ubdmd {} listening on {} ({} device(s) adopted, {} persistent map(s) created{})",
               daemon::kDaemonVersion, o.socket, adopted, maps,
               path_discovery ? fmt::format(", {} multipath map(s) assembled", assembled) : "");
  sd_notifyf(0, "READY=1\nSTATUS=serving %zu device(s)", manager.device_count());
  report_ready(ready_fd, true);

  for (;;) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    int sig = 0;
    if (sigwait(&set, &sig) != 0) {
      continue;
    }
    if (sig == SIGHUP) {
      spdlog::info("SIGHUP ignored: edit maps.d and use ubdmsetup to change devices");
      continue;
    }
    spdlog::info("{} received: stopping ({} device(s))", strsignal(sig), manager.device_count());
    break;
  }
  sd_notify(0, "STOPPING=1");
  manager.begin_shutdown();
  server.stop();
  // Before the exits below, which destroy nothing: the textfile goes with us.
  exporter.stop();
  // At system shutdown no ubdmd comes back: a device left to the kernel
  // would hold the final sync's writes forever. So remove then, as when
  // the operator asks for it.
  const bool going_down = o.on_stop == "keep" && system_is_going_down();
  if (o.on_stop == "keep" && !going_down) {
    manager.leave_for_restart(std::chrono::seconds(o.stop_timeout_s));
    spdlog::info("stopped; the devices stay, and the next ubdmd takes them over");
    spdlog::shutdown();
    // Not a return: destroying the manager would stop the devices. Their
    // held I/O is the kernel's to keep and to reissue to the next ubdmd.
    std::_Exit(0);
  }
  spdlog::info("removing every device ({})", going_down ? "the system is going down" : "--on-stop remove");
  const std::vector<std::string> stuck = manager.shutdown(std::chrono::seconds(o.stop_timeout_s));
  if (!stuck.empty()) {
    // Their removal threads still run and use the manager: leave without
    // destroying anything. The devices were made with user recovery, so the
    // kernel holds their I/O for the next ubdmd, which adopts them.
    spdlog::critical("exiting with {} device(s) not removed (their disks do not answer)", stuck.size());
    spdlog::shutdown();
    std::_Exit(1);
  }
  spdlog::info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"ubdmd: user-space request-based device-mapper served through ublk"};
  app.set_version_flag("--version", std::string("ubdmd ") + daemon::kDaemonVersion);
  app.add_option("--socket", o.socket, "control socket path")->capture_default_str();
  app.add_option("--config", o.config_dir, "configuration directory (maps.d/NAME.table are created at start; multipath.conf, multipath/)")
      ->capture_default_str();
  app.add_option("--state-dir", o.state_dir,
                 "where each device's state is kept for the next ubdmd to adopt it (a tmpfs: /run)")
      ->capture_default_str();
  app.add_option("--on-stop", o.on_stop,
                 "at SIGTERM: keep the devices for the next ubdmd, or remove them (always removed when the "
                 "system is going down)")
      ->check(CLI::IsMember({"keep", "remove"}))
      ->capture_default_str();
  app.add_option("--log-level", o.log_level, "trace, debug, info, warn, error or critical")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical"}))
      ->capture_default_str();
  app.add_flag("--foreground", o.foreground, "stay in the foreground and log to stderr");
  app.add_option("--group", o.group, "also admit members of this group to the control socket");
  app.add_option("--queues", o.queues, "default queues per device (default: min(CPUs, 4))")
      ->check(CLI::Range(1, 64));
  app.add_option("--depth", o.depth, "default queue depth per device")->check(CLI::Range(1, 4096))
      ->capture_default_str();
  app.add_option("--poll-usec", o.poll_usec,
                 "default bound of the adaptive polling of queue threads, in microseconds (0: off)")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  app.add_option("--stop-timeout", o.stop_timeout_s,
                 "at SIGTERM, give up on devices not drained (or removed) within this many seconds and exit")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  app.add_option("--map-wait", o.map_wait_s,
                 "at start, wait this many seconds for the devices of maps.d and of path discovery before reporting ready")
      ->check(CLI::Range(0, 3600))
      ->capture_default_str();
  app.add_option("--metrics-listen", o.metrics_listen,
                 "serve Prometheus metrics at http://ADDR/metrics; ADDR is [HOST:]PORT, HOST 127.0.0.1 unless "
                 "given (off unless asked for)");
  app.add_option("--metrics-textfile", o.metrics_textfile,
                 "write the same metrics to this file (node_exporter's textfile collector), replaced whole "
                 "every --metrics-interval seconds and removed at exit");
  app.add_option("--metrics-interval", o.metrics_interval_s, "seconds between textfile writes")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  CLI::Option* mpconf = app.add_option(
      "--multipath-conf", o.multipath_conf,
      "multipath.conf of path discovery (default: CONFIG/multipath.conf): where it exists, ubdmd makes at start one "
      "multipath map per LUN it finds, named as multipathd names them, and keeps CONFIG/multipath/bindings and "
      "wwids; \"\" turns discovery off");
  app.add_option("--sysfs", o.sysfs_root, "the sysfs root that path discovery scans (tests)")->capture_default_str();
  app.add_flag("--no-kernel", o.no_kernel,
               "serve tables in-process only, without ublk devices (for testing the control plane)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (mpconf->count() == 0) {
    o.multipath_conf = (std::filesystem::path(o.config_dir) / "multipath.conf").string();
  }

  // Signals are taken synchronously by the main thread (sigwait); block them
  // before any thread exists so that every thread inherits the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  int ready_fd = -1;
  if (!o.foreground) {
    const int rc = daemonize(ready_fd);
    if (rc < 0) {
      std::fprintf(stderr, "ubdmd: cannot detach: %s\n", std::strerror(-rc));
      return 1;
    }
  }
  setup_logging(o);
  try {
    return serve(o, ready_fd);
  } catch (const std::exception& e) {
    // In the foreground spdlog prints it on stderr; detached, the parent does.
    spdlog::critical("{}", e.what());
    report_ready(ready_fd, false, e.what());
    return 1;
  }
}
