// SPDX-License-Identifier: MIT
// ubdmd's opt-in Prometheus exporter: an HTTP endpoint (GET /metrics) and/or
// a file for node_exporter's textfile collector, both fed by one render
// function (the `stats` answer in the text format, metrics/device_stats.hpp).
//
// Both are off unless asked for. The endpoint listens on loopback unless an
// address names another host: metrics say which disks a host has and how
// busy they are, which is nobody else's business by default.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace httplib {
class Server;
}

namespace ubdm::metrics {

struct ListenAddress {
  std::string host = "127.0.0.1";
  unsigned port = 0;
};

// "PORT", "HOST:PORT" or "[IPV6]:PORT"; a bare port listens on 127.0.0.1.
// Throws Error(EINVAL) naming what is wrong.
ListenAddress parse_listen_address(std::string_view text);

class Exporter {
 public:
  // Returns the whole exposition; may throw (ubdm::Error, or anything
  // derived from std::exception), which a scrape sees as a 503.
  using Render = std::function<std::string()>;

  explicit Exporter(Render render);
  ~Exporter();  // stop()
  Exporter(const Exporter&) = delete;
  Exporter& operator=(const Exporter&) = delete;

  // Bind `addr` now (throws Error(EADDRINUSE or EINVAL) if it cannot be
  // bound, so a daemon fails at start rather than serving nothing), then
  // serve GET /metrics from a thread of its own. Port 0 picks a free port.
  void listen(const ListenAddress& addr);
  // The port bound by listen(), 0 before.
  unsigned port() const { return port_; }

  // Write the exposition to `path` now (throws Error if that fails) and
  // then every `interval`, each time whole: to PATH.tmp, then renamed over
  // PATH, so a collector never reads half a file.
  void write_textfile(std::string path, std::chrono::milliseconds interval);

  // Stop serving and writing, and remove the textfile: a file left behind
  // would show a stopped daemon's last figures as if they were current.
  void stop();

 private:
  void write_once() const;
  void writer_main();

  Render render_;
  std::unique_ptr<httplib::Server> server_;
  std::thread server_thread_;
  std::atomic<bool> server_ended_{false};  // listen_after_bind returned
  unsigned port_ = 0;

  std::string textfile_;
  std::chrono::milliseconds interval_{0};
  std::thread writer_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
};

}  // namespace ubdm::metrics
