// SPDX-License-Identifier: MIT
// The control client: connect, send one frame, read one frame.
#include "control/client.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include "control/protocol.hpp"
#include "ubdm/error.hpp"

namespace ubdm::control {

ControlClient::ControlClient(std::string path) : path_(std::move(path)) {}

ControlClient::~ControlClient() { disconnect(); }

void ControlClient::disconnect() noexcept {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

void ControlClient::connect() {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path_.empty() || path_.size() >= sizeof(addr.sun_path)) {
    fail(ENAMETOOLONG, "cannot connect to ubdmd at '{}': the socket path must be 1 to {} bytes long", path_,
         sizeof(addr.sun_path) - 1);
  }
  std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    fail(errno, "cannot create a socket: {}", errno_string(errno));
  }
  int rc = 0;
  do {
    rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    const int err = errno;
    ::close(fd);
    switch (err) {
      case ENOENT:
      case ECONNREFUSED:
        fail(err, "cannot connect to ubdmd at {}: {} (is ubdmd running?)", path_, errno_string(err));
      case EACCES:
      case EPERM:
        fail(err, "cannot connect to ubdmd at {}: permission denied (the control socket admits root only)",
             path_);
      default:
        fail(err, "cannot connect to ubdmd at {}: {}", path_, errno_string(err));
    }
  }
  fd_ = fd;
}

nlohmann::json ControlClient::call(nlohmann::json request) {
  if (!request.is_object()) {
    fail_invalid("a control request must be a JSON object");
  }
  request["v"] = kProtocolVersion;
  // Strings in requests come from the command line and files; invalid UTF-8
  // is replaced rather than failing the whole request here.
  const std::string payload = request.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (fd_ < 0) {
    connect();
  }

  std::optional<Error> write_error;
  try {
    write_frame(fd_, payload);
  } catch (const Error& e) {
    if (e.code() != ECONNRESET) {
      disconnect();
      throw;
    }
    // The daemon may have answered and closed before reading our request
    // (a refused peer, too many connections): its reply is still readable.
    write_error = e;
  }

  std::optional<std::string> frame;
  try {
    frame = read_frame(fd_);
  } catch (const Error& e) {
    disconnect();
    if (e.code() == ECONNRESET) {
      fail(EPROTO, "ubdmd closed the connection without replying");
    }
    fail(e.code() == EMSGSIZE ? EPROTO : e.code(), "invalid reply from ubdmd: {}", e.what());
  }
  if (!frame) {
    disconnect();
    fail(EPROTO, "ubdmd closed the connection without replying");
  }
  if (write_error) {
    // The connection is half gone; the next call opens a new one.
    disconnect();
  }

  nlohmann::json reply;
  try {
    reply = nlohmann::json::parse(*frame);
  } catch (const nlohmann::json::exception& e) {
    disconnect();
    fail(EPROTO, "invalid reply from ubdmd: {}", e.what());
  }
  const auto ok = reply.is_object() ? reply.find("ok") : reply.end();
  if (!reply.is_object() || ok == reply.end() || !ok->is_boolean()) {
    disconnect();
    fail(EPROTO, "invalid reply from ubdmd: no \"ok\"");
  }
  if (!ok->get<bool>()) {
    int err = EIO;
    const auto e = reply.find("errno");
    if (e != reply.end() && e->is_number_integer() && e->get<long long>() > 0 && e->get<long long>() < 4096) {
      err = static_cast<int>(e->get<long long>());
    }
    const auto msg = reply.find("error");
    throw Error(err, msg != reply.end() && msg->is_string()
                         ? msg->get<std::string>()
                         : std::string("ubdmd reported an error without a message"));
  }
  return reply;
}

}  // namespace ubdm::control
