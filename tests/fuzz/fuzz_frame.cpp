// SPDX-License-Identifier: MIT
// libFuzzer target: the control protocol's framing. The input is what a
// client sends on its connection (a 4-byte big-endian length, then the
// payload, any number of times, cut anywhere); read_frame takes it from a
// socketpair until the end of the stream or an error.
//
// Properties checked besides "no crash, leak or UB":
// - read_frame fails only with ubdm::Error, and only with EPROTO (cut
//   short) or EMSGSIZE (length over the limit);
// - every frame it returns, written again with write_frame, reads back
//   the same.
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>

#include "control/protocol.hpp"
#include "fuzz_common.hpp"
#include "ubdm/error.hpp"

namespace {

using namespace ubdm;

// Inputs are written whole before reading; more than a socket buffer
// would block. Longer inputs say nothing more about the framing.
constexpr std::size_t kMaxInput = 64 * 1024;

struct SocketPair {
  int fd[2] = {-1, -1};
  SocketPair() {
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd) != 0) {
      fuzz::broken("socketpair failed", errno_string(errno));
    }
    const int buf = 4 * static_cast<int>(kMaxInput);
    (void)::setsockopt(fd[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    (void)::setsockopt(fd[0], SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  }
  ~SocketPair() {
    ::close(fd[0]);
    ::close(fd[1]);
  }
  SocketPair(const SocketPair&) = delete;
  SocketPair& operator=(const SocketPair&) = delete;

  // Send all of it, then end the stream.
  void send_all(const std::uint8_t* data, std::size_t size) const {
    std::size_t done = 0;
    while (done < size) {
      const ssize_t n = ::send(fd[1], data + done, size - done, MSG_NOSIGNAL);
      if (n <= 0) {
        fuzz::broken("send to the socketpair failed", errno_string(errno));
      }
      done += static_cast<std::size_t>(n);
    }
    ::shutdown(fd[1], SHUT_WR);
  }
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  fuzz::quiet_logging();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > kMaxInput) {
    return 0;
  }
  const SocketPair client;
  client.send_all(data, size);
  for (;;) {
    std::optional<std::string> frame;
    try {
      frame = control::read_frame(client.fd[0]);
    } catch (const Error& e) {
      if (e.code() != EPROTO && e.code() != EMSGSIZE) {
        fuzz::broken("read_frame failed with an unexpected errno", e.what());
      }
      return 0;
    }
    if (!frame) {
      return 0;
    }
    const SocketPair echo;
    control::write_frame(echo.fd[1], *frame);
    ::shutdown(echo.fd[1], SHUT_WR);
    const std::optional<std::string> back = control::read_frame(echo.fd[0]);
    if (!back || *back != *frame || control::read_frame(echo.fd[0])) {
      fuzz::broken("a frame written with write_frame reads back differently", *frame);
    }
  }
}
