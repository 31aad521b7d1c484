// SPDX-License-Identifier: MIT
// The daemon's side of the control socket: accepts connections, checks who
// is calling, frames and parses requests, calls one handler, and turns every
// failure into an error reply. The daemon never crashes on client input.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "control/protocol.hpp"

namespace ubdm::control {

class ControlServer {
 public:
  // Who is on the other end of a connection, from SO_PEERCRED at accept
  // time; groups are the peer's supplementary groups.
  struct PeerCredentials {
    pid_t pid = 0;
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;
  };

  struct Options {
    std::string socket_path = kDefaultSocketPath;
    // Besides root, admit members of this group (socket mode 0660, owned by
    // the group). Without it the socket is 0600 and only root is admitted.
    std::optional<gid_t> allowed_group;
    // Connections served at once; more are answered EAGAIN and closed.
    unsigned max_connections = 64;
  };

  // One request's caller: who it is, and whether it is still connected.
  struct Caller {
    PeerCredentials peer;
    int fd = -1;  // the connection; -1 where there is none (tests)
    // True once the client has closed or shut down its end of the
    // connection: a handler that waits (suspend, wait) gives up then, so a
    // client that is killed does not leave its verb running. Never blocks.
    bool gone() const;
  };

  // Called once per well-formed request (an object with "v" == 1 and a
  // string "op"), on the connection's own thread: calls for different
  // connections run concurrently, so the handler must be thread safe.
  //
  // Returns either the results object (the server wraps it with ok_reply)
  // or a complete reply made with ok_reply()/error_reply() (any object that
  // has "ok"). To fail, throw: ubdm::Error becomes an error reply with its
  // errno and message; nlohmann::json::exception (a missing or mistyped
  // argument read with .at()/.get<>()) becomes EINVAL "bad argument: ...";
  // any other std::exception becomes EIO "internal error: ...".
  //
  // A handler that blocks (wait) must return when the daemon shuts down:
  // stop() joins the connection threads.
  using Handler = std::function<nlohmann::json(const nlohmann::json& request, const Caller& caller)>;

  // Prepares the socket: creates the parent directory (0755) if missing and
  // refuses one that others could tamper with (not owned by root or by us,
  // or writable by group or others without the sticky bit), takes the lock
  // file "<socket_path>.lock", refuses to start if another daemon listens on
  // the path (EADDRINUSE), replaces a stale socket file, binds, sets the
  // mode (0600; 0660 and the group if allowed_group is set) through a
  // descriptor of the socket file itself (never by following the path), and
  // listens. Throws ubdm::Error with a message for the operator.
  ControlServer(Options options, Handler handler);
  ~ControlServer();

  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Starts the accept thread. Call at most once.
  void start();

  // Stops accepting, shuts down open connections (their blocked reads
  // return), joins every thread and removes the socket file. Idempotent;
  // the destructor calls it. Must not be called from the handler.
  void stop();

  // True once stop() has begun: a long-running handler may poll it.
  bool stopping() const noexcept { return stopping_.load(std::memory_order_acquire); }

  const std::string& socket_path() const noexcept { return options_.socket_path; }

  // The reply to one request frame, as the server sends it (without the
  // socket): parsing, the version and op checks, the handler call and the
  // exception-to-reply conversion. Never throws. Exposed for tests.
  static nlohmann::json handle_request(const std::string& payload, const Caller& caller,
                                       const Handler& handler);

 private:
  struct Connection {
    int fd = -1;  // -1 once the connection's thread has closed it
    std::thread thread;
  };

  void accept_loop();
  void admit(int fd);
  void serve(std::uint64_t id, int fd, const PeerCredentials& peer);
  void reap_finished();

  Options options_;
  Handler handler_;
  std::string denied_message_;  // the EACCES reply for peers that are not admitted
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd that wakes the accept loop for stop()
  int lock_fd_ = -1;
  dev_t socket_dev_ = 0;  // identity of the socket file we bound, so stop()
  ino_t socket_ino_ = 0;  // never removes a file someone else put there
  std::atomic<bool> stopping_{false};
  bool stopped_ = false;
  std::mutex stop_mu_;  // serialises stop() callers
  std::thread accept_thread_;

  std::mutex mu_;  // guards the members below
  std::uint64_t next_id_ = 0;
  std::size_t live_ = 0;  // connections whose thread is still serving
  std::map<std::uint64_t, Connection> connections_;
  std::vector<std::uint64_t> finished_;  // connections whose thread has ended, to be joined
};

// The access rule: root always; anyone else only if a group is configured
// and it is the peer's primary or one of its supplementary groups.
bool peer_allowed(const ControlServer::PeerCredentials& peer, const std::optional<gid_t>& group);

// The peer's credentials on a connected Unix socket: SO_PEERCRED, and the
// supplementary groups from SO_PEERGROUPS (those at connect time), falling
// back to /proc/<pid>/status "Groups:". Throws ubdm::Error if SO_PEERCRED fails.
ControlServer::PeerCredentials peer_credentials(int fd);

}  // namespace ubdm::control
