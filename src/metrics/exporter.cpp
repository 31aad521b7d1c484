// SPDX-License-Identifier: MIT
#include "metrics/exporter.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <exception>
#include <fstream>
#include <thread>

#include <httplib.h>
#include <spdlog/spdlog.h>

#include "ubdm/error.hpp"

namespace ubdm::metrics {

ListenAddress parse_listen_address(std::string_view text) {
  ListenAddress a;
  std::string_view port = text;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      fail_invalid("metrics address '{}': expected [IPV6]:PORT", text);
    }
    a.host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
  } else if (const auto colon = text.rfind(':'); colon != std::string_view::npos) {
    if (text.find(':') != colon) {
      fail_invalid("metrics address '{}': write an IPv6 address in brackets, as [::1]:PORT", text);
    }
    a.host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
  }
  if (a.host.empty()) {
    fail_invalid("metrics address '{}': the host is empty (leave out the colon for 127.0.0.1)", text);
  }
  unsigned n = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || n == 0 || n > 65535) {
    fail_invalid("metrics address '{}': the port must be a number from 1 to 65535", text);
  }
  a.port = n;
  return a;
}

Exporter::Exporter(Render render) : render_(std::move(render)) {}

Exporter::~Exporter() { stop(); }

void Exporter::listen(const ListenAddress& addr) {
  auto server = std::make_unique<httplib::Server>();
  // Scrapes are rare and small: two threads, and no client may hold one long.
  server->new_task_queue = [] { return new httplib::ThreadPool(2); };
  server->set_read_timeout(std::chrono::seconds(5));
  server->set_write_timeout(std::chrono::seconds(5));
  // httplib's default also sets SO_REUSEPORT, with which a second daemon
  // would bind the same port and take half the scrapes: SO_REUSEADDR only
  // (a restart may rebind while old connections linger).
  server->set_socket_options([](socket_t sock) {
    const int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  server->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    try {
      res.set_content(render_(), "text/plain; version=0.0.4; charset=utf-8");
    } catch (const std::exception& e) {
      res.status = 503;
      res.set_content(std::string(e.what()) + "\n", "text/plain");
    }
  });
  server->Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ubdmd: the metrics are at /metrics\n", "text/plain");
  });
  int port = static_cast<int>(addr.port);
  if (port == 0) {
    port = server->bind_to_any_port(addr.host);
    if (port < 0) {
      fail(EADDRNOTAVAIL, "metrics: cannot listen on {} (no such local address?)", addr.host);
    }
  } else if (!server->bind_to_port(addr.host, port)) {
    fail(EADDRINUSE, "metrics: cannot listen on {}:{} (in use, or not a local address)", addr.host, port);
  }
  port_ = static_cast<unsigned>(port);
  server_ = std::move(server);
  server_thread_ = std::thread([this, s = server_.get()] {
    s->listen_after_bind();
    server_ended_ = true;
  });
  // httplib's stop() does nothing until the thread has entered its accept
  // loop (it tests is_running()), so a stop() right after this would leave
  // the thread accepting forever: return only once it is serving.
  while (!server_->is_running() && !server_ended_) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!server_->is_running()) {
    server_thread_.join();
    server_.reset();
    fail(EIO, "metrics: the server on {}:{} stopped at once", addr.host, port_);
  }
  // An IPv6 address goes in brackets in a URL.
  const bool v6 = addr.host.find(':') != std::string::npos;
  spdlog::info("metrics: serving http://{}:{}/metrics", v6 ? "[" + addr.host + "]" : addr.host, port_);
}

void Exporter::write_once() const {
  const std::string tmp = textfile_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << render_();
    out.flush();
    if (!out) {
      fail(EIO, "metrics: cannot write {}", tmp);
    }
  }
  if (std::rename(tmp.c_str(), textfile_.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    fail(err, "metrics: cannot rename {} to {}: {}", tmp, textfile_, errno_string(err));
  }
}

void Exporter::write_textfile(std::string path, std::chrono::milliseconds interval) {
  textfile_ = std::move(path);
  interval_ = interval;
  write_once();
  writer_ = std::thread([this] { writer_main(); });
  spdlog::info("metrics: writing {} every {} s", textfile_, interval_.count() / 1000.0);
}

void Exporter::writer_main() {
  std::unique_lock lock(mutex_);
  while (!cv_.wait_for(lock, interval_, [this] { return stopping_; })) {
    lock.unlock();
    try {
      write_once();
    } catch (const std::exception& e) {
      // Keep trying: the collector's directory may come back (a remount).
      spdlog::warn("{}", e.what());
    }
    lock.lock();
  }
}

void Exporter::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) {
    writer_.join();
    std::remove(textfile_.c_str());
  }
  if (server_) {
    server_->stop();
    if (server_thread_.joinable()) {
      server_thread_.join();
    }
    server_.reset();
  }
}

}  // namespace ubdm::metrics
