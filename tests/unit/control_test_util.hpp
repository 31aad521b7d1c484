// SPDX-License-Identifier: MIT
// Shared helpers of the control socket tests: a temporary directory and raw
// socket access for sending what a well-behaved client never would.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "control/protocol.hpp"

namespace ubdm::test {

// A fresh directory under /tmp, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/ubdm-control-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::abort();
    }
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A connected Unix stream socket to `path`, or -errno.
inline int raw_connect(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -errno;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    ::close(fd);
    return -err;
  }
  return fd;
}

inline bool send_all(int fd, const std::string& bytes) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) {
      return false;
    }
    off += static_cast<std::size_t>(n);
  }
  return true;
}

// A frame header announcing `len` bytes.
inline std::string frame_header(std::uint32_t len) {
  std::string h(4, '\0');
  h[0] = static_cast<char>((len >> 24) & 0xffU);
  h[1] = static_cast<char>((len >> 16) & 0xffU);
  h[2] = static_cast<char>((len >> 8) & 0xffU);
  h[3] = static_cast<char>(len & 0xffU);
  return h;
}

// Sends `payload` as one frame and returns the parsed reply (null if the
// connection ended instead).
inline nlohmann::json raw_call(int fd, const std::string& payload) {
  control::write_frame(fd, payload);
  const auto reply = control::read_frame(fd);
  return reply ? nlohmann::json::parse(*reply) : nlohmann::json();
}

}  // namespace ubdm::test
