// SPDX-License-Identifier: MIT
// The control server: one accept thread, one thread per connection.
#include "control/server.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

#include <spdlog/spdlog.h>

#include "ubdm/error.hpp"

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59  // Linux 4.13; older libc headers lack it
#endif

namespace ubdm::control {
namespace {

// Requests nested deeper than this are refused while parsing: no verb needs
// more than three levels, and a handler that walks or prints a deeply nested
// value recursively could run out of stack.
constexpr int kMaxRequestDepth = 16;

// Longest "op" or "v" echoed into a log line or an error message.
constexpr std::size_t kMaxEcho = 64;

// Owns a file descriptor while the constructor builds the server, so a
// failure half way closes what was opened.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const noexcept { return fd_; }
  int release() noexcept { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

// nlohmann's messages start with "[json.exception.type_error.302] "; the
// user needs only the sentence after it.
std::string json_message(const nlohmann::json::exception& e) {
  std::string msg = e.what();
  if (msg.rfind("[json.exception.", 0) == 0) {
    const auto end = msg.find("] ");
    if (end != std::string::npos) {
      msg.erase(0, end + 2);
    }
  }
  return msg;
}

std::string clip(std::string s) {
  if (s.size() > kMaxEcho) {
    s.resize(kMaxEcho);
    s += "...";
  }
  return s;
}

// Serialises a reply. Strings that are not valid UTF-8 (a device path or a
// parser message echoing the client's bytes) are replaced rather than
// allowed to throw: the reply must always go out.
std::string dump_reply(const nlohmann::json& reply) {
  return reply.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Creates the missing directories of `dir`, each 0755 (set explicitly, as
// the umask may be stricter or looser).
void make_directories(const std::string& dir) {
  if (dir.empty()) {
    return;
  }
  std::size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    const std::string prefix = dir.substr(0, pos);
    if (prefix.empty()) {
      continue;
    }
    if (::mkdir(prefix.c_str(), 0755) == 0) {
      if (::chmod(prefix.c_str(), 0755) != 0) {
        fail(errno, "cannot set the mode of directory {}: {}", prefix, errno_string(errno));
      }
      continue;
    }
    const int err = errno;
    struct stat st {};
    if (err == EEXIST && ::stat(prefix.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      continue;
    }
    if (err == EEXIST) {
      fail(ENOTDIR, "cannot create the control socket directory: {} exists and is not a directory", prefix);
    }
    fail(err, "cannot create the control socket directory {}: {}", prefix, errno_string(err));
  }
}

std::string group_name(gid_t gid) {
  group grp{};
  group* found = nullptr;
  std::vector<char> buf(4096);
  for (;;) {
    const int rc = ::getgrgid_r(gid, &grp, buf.data(), buf.size(), &found);
    if (rc == ERANGE && buf.size() < (1U << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    break;
  }
  if (found != nullptr && found->gr_name != nullptr) {
    return fmt::format("{} ({})", found->gr_name, gid);
  }
  return std::to_string(gid);
}

// The socket's directory must be one that nobody but root (or the user we
// run as) can change: otherwise another user could swap the socket or the
// lock file for a link between our checks and our use of the path. A
// world-writable directory is accepted only with the sticky bit (/tmp), where
// others cannot rename or remove what we create.
void check_directory_is_safe(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    fail(errno, "cannot check the control socket directory {}: {}", dir, errno_string(errno));
  }
  if (st.st_uid != 0 && st.st_uid != ::geteuid()) {
    fail(EPERM, "refusing the control socket directory {}: it is owned by uid {}, not by root", dir, st.st_uid);
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (st.st_mode & S_ISVTX) == 0) {
    fail(EPERM,
         "refusing the control socket directory {}: mode {:04o} lets others replace the socket "
         "(use a directory writable only by root, e.g. /run/ubdm)",
         dir, st.st_mode & 07777);
  }
}

// Sets the owner group and mode of the socket file we just bound, through a
// descriptor of that file (O_PATH|O_NOFOLLOW): a path that someone replaced
// by a symlink is refused rather than followed.
void set_socket_permissions(const std::string& path, std::optional<gid_t> group, mode_t mode, struct stat& st) {
  const UniqueFd fd(::open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (fd.get() < 0) {
    fail(errno, "cannot open the control socket {}: {}", path, errno_string(errno));
  }
  if (::fstat(fd.get(), &st) != 0) {
    fail(errno, "cannot stat the control socket {}: {}", path, errno_string(errno));
  }
  if (!S_ISSOCK(st.st_mode)) {
    fail(EEXIST, "{} was replaced while binding; not touching it", path);
  }
  if (group && ::fchownat(fd.get(), "", static_cast<uid_t>(-1), *group, AT_EMPTY_PATH) != 0) {
    fail(errno, "cannot give the control socket {} to group {}: {}", path, group_name(*group),
         errno_string(errno));
  }
  // fchmod() refuses O_PATH descriptors; the /proc link names the inode we
  // hold, not whatever the path points to now.
  if (::chmod(fmt::format("/proc/self/fd/{}", fd.get()).c_str(), mode) != 0) {
    fail(errno, "cannot set the mode of the control socket {}: {}", path, errno_string(errno));
  }
}

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    fail(ENAMETOOLONG, "control socket path {} is too long ({} bytes; the limit is {})", path, path.size(),
         sizeof(addr.sun_path) - 1);
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

// Sends one reply without blocking and closes: for connections we refuse
// from the accept thread, which must not wait on a client that does not read.
void reply_and_close(int fd, const nlohmann::json& reply) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) {
    ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  }
  try {
    write_frame(fd, dump_reply(reply));
  } catch (const std::exception&) {
    // The client is gone or not reading; it gets a closed connection.
  }
  ::close(fd);
}

std::vector<gid_t> groups_from_proc(pid_t pid) {
  std::vector<gid_t> groups;
  if (pid <= 0) {
    return groups;
  }
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Groups:", 0) == 0) {
      std::istringstream words(line.substr(7));
      unsigned long g = 0;
      while (words >> g) {
        groups.push_back(static_cast<gid_t>(g));
      }
      break;
    }
  }
  return groups;
}

}  // namespace

bool peer_allowed(const ControlServer::PeerCredentials& peer, const std::optional<gid_t>& group) {
  if (peer.uid == 0) {
    return true;
  }
  if (!group) {
    return false;
  }
  return peer.gid == *group || std::find(peer.groups.begin(), peer.groups.end(), *group) != peer.groups.end();
}

ControlServer::PeerCredentials peer_credentials(int fd) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    fail(errno, "cannot read the peer's credentials: {}", errno_string(errno));
  }
  ControlServer::PeerCredentials peer;
  peer.pid = cred.pid;
  peer.uid = cred.uid;
  peer.gid = cred.gid;

  // SO_PEERGROUPS gives the groups the peer had when it connected, with no
  // race against the pid exiting and being reused; /proc is the fallback for
  // kernels older than 4.13.
  std::vector<gid_t> groups(32);
  for (;;) {
    auto glen = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &glen) == 0) {
      groups.resize(glen / sizeof(gid_t));
      peer.groups = std::move(groups);
      return peer;
    }
    if (errno == ERANGE && glen / sizeof(gid_t) > groups.size()) {
      groups.resize(glen / sizeof(gid_t));
      continue;
    }
    break;
  }
  peer.groups = groups_from_proc(peer.pid);
  return peer;
}

ControlServer::ControlServer(Options options, Handler handler)
    : options_(std::move(options)), handler_(std::move(handler)) {
  if (!handler_) {
    fail_invalid("the control server needs a request handler");
  }
  if (options_.max_connections == 0) {
    fail_invalid("the control server's max_connections must be at least 1");
  }
  const std::string& path = options_.socket_path;
  if (path.empty()) {
    fail_invalid("the control socket path is empty");
  }
  const sockaddr_un addr = unix_address(path);
  denied_message_ = options_.allowed_group ? fmt::format("permission denied: ubdmd admits root and group {}",
                                                         group_name(*options_.allowed_group))
                                           : std::string("permission denied: ubdmd admits root only");

  const auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  if (slash != std::string::npos && slash > 0) {
    make_directories(dir);
  }
  check_directory_is_safe(dir);

  // The lock closes the race between two daemons starting at once (both
  // could see a stale socket, remove it and bind); the connect probe below
  // also catches a daemon that does not use the lock.
  const std::string lock_path = path + ".lock";
  UniqueFd lock_fd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (lock_fd.get() < 0) {
    fail(errno, "cannot open the lock file {}: {}", lock_path, errno_string(errno));
  }
  if (::flock(lock_fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      fail(EADDRINUSE, "another ubdmd is already listening on {}", path);
    }
    fail(errno, "cannot lock {}: {}", lock_path, errno_string(errno));
  }

  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      fail(EEXIST, "{} exists and is not a socket; not replacing it", path);
    }
    // Non-blocking, so that a live daemon with a full backlog answers EAGAIN
    // instead of blocking us.
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (probe.get() < 0) {
      fail(errno, "cannot create a socket: {}", errno_string(errno));
    }
    if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0 ||
        errno == EAGAIN || errno == EINPROGRESS) {
      fail(EADDRINUSE, "another ubdmd is already listening on {}", path);
    }
    const int err = errno;
    if (err != ECONNREFUSED) {
      fail(err, "cannot check whether another ubdmd listens on {}: {}", path, errno_string(err));
    }
    spdlog::info("control: removing stale socket {}", path);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      fail(errno, "cannot remove the stale control socket {}: {}", path, errno_string(errno));
    }
  } else if (errno != ENOENT) {
    fail(errno, "cannot check the control socket path {}: {}", path, errno_string(errno));
  }

  UniqueFd listen_fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (listen_fd.get() < 0) {
    fail(errno, "cannot create the control socket: {}", errno_string(errno));
  }
  // The file bind() creates takes the socket inode's mode (less the umask):
  // start it at 0600 so it is never more open than wanted, whatever the umask.
  if (::fchmod(listen_fd.get(), 0600) != 0) {
    fail(errno, "cannot set the mode of the control socket: {}", errno_string(errno));
  }
  if (::bind(listen_fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    fail(errno, "cannot bind the control socket {}: {}", path, errno_string(errno));
  }
  try {
    // Permissions are set before listen(): until then a connect is refused,
    // so there is no moment when the socket is reachable with the umask's mode.
    const mode_t mode = options_.allowed_group ? 0660 : 0600;
    set_socket_permissions(path, options_.allowed_group, mode, st);
    socket_dev_ = st.st_dev;
    socket_ino_ = st.st_ino;
    if (::listen(listen_fd.get(), SOMAXCONN) != 0) {
      fail(errno, "cannot listen on the control socket {}: {}", path, errno_string(errno));
    }
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) {
      fail(errno, "cannot create an eventfd: {}", errno_string(errno));
    }
  } catch (...) {
    ::unlink(path.c_str());
    throw;
  }
  listen_fd_ = listen_fd.release();
  lock_fd_ = lock_fd.release();
  spdlog::debug("control: listening on {} (mode {})", path, options_.allowed_group ? "0660" : "0600");
}

ControlServer::~ControlServer() {
  try {
    stop();
  } catch (...) {
    // A destructor must not throw; stop() has done what it could.
  }
}

void ControlServer::start() {
  std::lock_guard stop_lock(stop_mu_);
  if (stopped_ || stopping()) {
    fail(EINVAL, "the control server has been stopped");
  }
  if (accept_thread_.joinable()) {
    fail(EINVAL, "the control server is already started");
  }
  accept_thread_ = std::thread([this] { accept_loop(); });
}

void ControlServer::stop() {
  std::lock_guard stop_lock(stop_mu_);
  if (stopped_) {
    return;
  }
  stopping_.store(true, std::memory_order_release);
  if (wake_fd_ >= 0) {
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(wake_fd_, &one, sizeof(one));
  }
  if (accept_thread_.joinable()) {
    accept_thread_.join();
  }

  // No more clients: close the listening socket and remove its file first,
  // so a client connecting now fails at once instead of waiting in the backlog.
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
  }
  struct stat st {};
  if (::stat(options_.socket_path.c_str(), &st) == 0 && st.st_dev == socket_dev_ &&
      st.st_ino == socket_ino_) {
    ::unlink(options_.socket_path.c_str());
  }

  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, conn] : connections_) {
      if (conn.fd >= 0) {
        // Wakes the thread's blocked read (it sees end of stream); the fd
        // itself stays owned, and is closed, by that thread.
        ::shutdown(conn.fd, SHUT_RDWR);
      }
      threads.push_back(std::move(conn.thread));
    }
    connections_.clear();
    finished_.clear();
  }
  for (auto& t : threads) {
    if (t.joinable()) {
      t.join();
    }
  }

  if (wake_fd_ >= 0) {
    ::close(wake_fd_);
    wake_fd_ = -1;
  }
  // The lock file itself stays: removing it would let a third daemon lock a
  // new file while a second still holds the old one.
  if (lock_fd_ >= 0) {
    ::close(lock_fd_);
    lock_fd_ = -1;
  }
  stopped_ = true;
}

void ControlServer::accept_loop() {
  while (!stopping()) {
    try {
      std::array<pollfd, 2> fds{{{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}}};
      const int n = ::poll(fds.data(), fds.size(), -1);
      if (n < 0) {
        if (errno != EINTR) {
          spdlog::error("control: poll failed: {}", errno_string(errno));
          ::poll(&fds[1], 1, 100);
        }
        continue;
      }
      if (fds[1].revents != 0 || stopping()) {
        break;
      }
      reap_finished();
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        const int err = errno;
        if (err == EINTR || err == EAGAIN || err == ECONNABORTED || err == EPROTO) {
          continue;
        }
        // Out of descriptors or memory: the pending connection stays in the
        // backlog and poll() would report it again at once; pause instead of
        // spinning, but stay responsive to stop().
        spdlog::warn("control: cannot accept a connection: {}", errno_string(err));
        ::poll(&fds[1], 1, 100);
        continue;
      }
      admit(fd);
    } catch (const std::exception& e) {
      spdlog::error("control: accept loop: {}", e.what());
    }
  }
}

void ControlServer::admit(int fd) {
  PeerCredentials peer;
  try {
    peer = peer_credentials(fd);
  } catch (const std::exception& e) {
    spdlog::warn("control: refusing a connection: {}", e.what());
    ::close(fd);
    return;
  }
  if (!peer_allowed(peer, options_.allowed_group)) {
    spdlog::warn("control: refused pid {} (uid {}, gid {}): {}", peer.pid, peer.uid, peer.gid,
                 denied_message_);
    reply_and_close(fd, error_reply(EACCES, denied_message_));
    return;
  }

  std::unique_lock lock(mu_);
  if (live_ >= options_.max_connections) {
    lock.unlock();
    spdlog::warn("control: refused pid {} (uid {}): {} connections already open", peer.pid, peer.uid,
                 options_.max_connections);
    reply_and_close(fd,
                    error_reply(EAGAIN, fmt::format("ubdmd is serving its limit of {} connections; try again",
                                                    options_.max_connections)));
    return;
  }
  const std::uint64_t id = next_id_++;
  Connection& conn = connections_[id];
  conn.fd = fd;
  try {
    // Started under mu_: the thread's exit path takes mu_, so it cannot
    // report itself finished before it is in connections_.
    conn.thread = std::thread([this, id, fd, p = std::move(peer)] { serve(id, fd, p); });
  } catch (const std::system_error& e) {
    connections_.erase(id);
    lock.unlock();
    spdlog::warn("control: cannot start a connection thread: {}", e.what());
    reply_and_close(fd, error_reply(EAGAIN, "ubdmd cannot start a thread for this connection; try again"));
    return;
  }
  ++live_;
}

void ControlServer::serve(std::uint64_t id, int fd, const PeerCredentials& peer) {
  try {
    while (!stopping()) {
      std::optional<std::string> frame;
      try {
        frame = read_frame(fd);
      } catch (const Error& e) {
        if (e.code() == EMSGSIZE) {
          // The oversized payload is unread, so the stream cannot be resumed;
          // tell the client why before closing.
          try {
            write_frame(fd, dump_reply(error_reply(EMSGSIZE, std::string("request refused: ") + e.what())));
          } catch (const std::exception&) {
            // The client is gone.
          }
        }
        spdlog::debug("control: closing the connection of pid {}: {}", peer.pid, e.what());
        break;
      }
      if (!frame) {
        break;
      }
      std::string out = dump_reply(handle_request(*frame, Caller{peer, fd}, handler_));
      if (out.size() > kMaxFrameBytes) {
        spdlog::warn("control: reply of {} bytes exceeds the frame limit", out.size());
        out = dump_reply(
            error_reply(EMSGSIZE, fmt::format("the reply ({} bytes) exceeds the control protocol's "
                                              "limit of {} bytes",
                                              out.size(), kMaxFrameBytes)));
      }
      try {
        write_frame(fd, out);
      } catch (const Error& e) {
        spdlog::debug("control: closing the connection of pid {}: {}", peer.pid, e.what());
        break;
      }
    }
  } catch (const std::exception& e) {
    spdlog::error("control: connection of pid {} failed: {}", peer.pid, e.what());
  } catch (...) {
    spdlog::error("control: connection of pid {} failed", peer.pid);
  }

  std::lock_guard lock(mu_);
  // Closed under mu_, so stop() never shuts down a number the kernel has
  // already given to another file.
  ::close(fd);
  --live_;
  const auto it = connections_.find(id);
  if (it != connections_.end()) {
    it->second.fd = -1;
    finished_.push_back(id);
  }
}

void ControlServer::reap_finished() {
  std::vector<std::thread> done;
  {
    std::lock_guard lock(mu_);
    for (const std::uint64_t id : finished_) {
      const auto it = connections_.find(id);
      if (it != connections_.end()) {
        done.push_back(std::move(it->second.thread));
        connections_.erase(it);
      }
    }
    finished_.clear();
  }
  for (auto& t : done) {
    if (t.joinable()) {
      t.join();
    }
  }
}

bool ControlServer::Caller::gone() const {
  if (fd < 0) {
    return false;
  }
  pollfd p{fd, POLLRDHUP, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

nlohmann::json ControlServer::handle_request(const std::string& payload, const Caller& caller,
                                             const Handler& handler) {
  const PeerCredentials& peer = caller.peer;
  try {
    nlohmann::json request;
    try {
      request = nlohmann::json::parse(
          payload, [](int depth, nlohmann::json::parse_event_t /*event*/, nlohmann::json& /*parsed*/) {
            if (depth > kMaxRequestDepth) {
              throw Error(EINVAL,
                          fmt::format("malformed request: nested deeper than {} levels", kMaxRequestDepth));
            }
            return true;
          });
    } catch (const nlohmann::json::exception& e) {
      return error_reply(EINVAL, "malformed request: " + json_message(e));
    }
    if (!request.is_object()) {
      return error_reply(EINVAL, "malformed request: not a JSON object");
    }
    const auto v = request.find("v");
    if (v == request.end()) {
      return error_reply(EINVAL, fmt::format("request has no protocol version \"v\"; this daemon speaks {}",
                                             kProtocolVersion));
    }
    if (!v->is_number_integer() || *v != kProtocolVersion) {
      return error_reply(EINVAL, fmt::format("unsupported protocol version {}; this daemon speaks {}",
                                             clip(dump_reply(*v)), kProtocolVersion));
    }
    const auto op = request.find("op");
    if (op == request.end() || !op->is_string()) {
      return error_reply(EINVAL, "request has no \"op\"");
    }
    spdlog::debug("control: pid {} uid {}: {}", peer.pid, peer.uid, clip(op->get<std::string>()));

    nlohmann::json result = handler(request, caller);
    if (result.is_null()) {
      return ok_reply();
    }
    if (!result.is_object()) {
      return error_reply(EIO, "internal error: the request handler returned no object");
    }
    if (result.contains("ok")) {
      result["v"] = kProtocolVersion;
      return result;
    }
    return ok_reply(std::move(result));
  } catch (const Error& e) {
    return error_reply(e.code(), e.what());
  } catch (const nlohmann::json::exception& e) {
    return error_reply(EINVAL, "bad argument: " + json_message(e));
  } catch (const std::exception& e) {
    spdlog::error("control: request failed: {}", e.what());
    return error_reply(EIO, std::string("internal error: ") + e.what());
  } catch (...) {
    spdlog::error("control: request failed with an unknown exception");
    return error_reply(EIO, "internal error: unknown exception");
  }
}

}  // namespace ubdm::control
