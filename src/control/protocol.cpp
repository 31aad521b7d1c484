// SPDX-License-Identifier: MIT
// Frame I/O and reply helpers of the control protocol (see protocol.hpp).
#include "control/protocol.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "ubdm/error.hpp"

namespace ubdm::control {
namespace {

constexpr std::size_t kHeaderBytes = 4;

// Sends all of [data, data + len). send() with MSG_NOSIGNAL so that a peer
// that went away gives EPIPE instead of killing the process with SIGPIPE;
// write() for descriptors that are not sockets (pipes in tests and tools).
void write_all(int fd, const char* data, std::size_t len) {
  bool use_write = false;
  while (len > 0) {
    const ssize_t n = use_write ? ::write(fd, data, len) : ::send(fd, data, len, MSG_NOSIGNAL);
    if (n < 0) {
      const int err = errno;
      if (err == EINTR) {
        continue;
      }
      if (err == ENOTSOCK && !use_write) {
        use_write = true;
        continue;
      }
      if (err == EPIPE || err == ECONNRESET) {
        fail(ECONNRESET, "the other end closed the connection");
      }
      fail(err, "cannot write to the control socket: {}", errno_string(err));
    }
    data += n;
    len -= static_cast<std::size_t>(n);
  }
}

// Reads up to len bytes, stopping early only at end of stream. Returns the
// number of bytes read.
std::size_t read_full(int fd, char* data, std::size_t len) {
  std::size_t got = 0;
  while (got < len) {
    const ssize_t n = ::read(fd, data + got, len - got);
    if (n < 0) {
      const int err = errno;
      if (err == EINTR) {
        continue;
      }
      if (err == ECONNRESET) {
        fail(ECONNRESET, "the other end closed the connection");
      }
      fail(err, "cannot read from the control socket: {}", errno_string(err));
    }
    if (n == 0) {
      break;
    }
    got += static_cast<std::size_t>(n);
  }
  return got;
}

}  // namespace

void write_frame(int fd, const std::string& payload) {
  if (payload.size() > kMaxFrameBytes) {
    fail(EMSGSIZE, "message of {} bytes exceeds the control protocol's limit of {} bytes", payload.size(),
         kMaxFrameBytes);
  }
  // Header and payload in one buffer: one send() in the common case, so the
  // peer never sees a header without its payload because of our scheduling.
  std::string frame;
  frame.reserve(kHeaderBytes + payload.size());
  const auto len = static_cast<std::uint32_t>(payload.size());
  frame.push_back(static_cast<char>((len >> 24) & 0xffU));
  frame.push_back(static_cast<char>((len >> 16) & 0xffU));
  frame.push_back(static_cast<char>((len >> 8) & 0xffU));
  frame.push_back(static_cast<char>(len & 0xffU));
  frame.append(payload);
  write_all(fd, frame.data(), frame.size());
}

std::optional<std::string> read_frame(int fd) {
  std::array<unsigned char, kHeaderBytes> header{};
  const std::size_t got = read_full(fd, reinterpret_cast<char*>(header.data()), header.size());
  if (got == 0) {
    return std::nullopt;
  }
  if (got < header.size()) {
    fail(EPROTO, "connection closed in the middle of a message header ({} of {} bytes)", got, kHeaderBytes);
  }
  const std::size_t len = (std::size_t{header[0]} << 24) | (std::size_t{header[1]} << 16) |
                          (std::size_t{header[2]} << 8) | std::size_t{header[3]};
  // Checked before reading (or allocating) anything of the payload, so a
  // bogus length cannot make us buffer gigabytes.
  if (len > kMaxFrameBytes) {
    fail(EMSGSIZE, "message of {} bytes exceeds the control protocol's limit of {} bytes", len,
         kMaxFrameBytes);
  }
  std::string payload(len, '\0');
  const std::size_t body = read_full(fd, payload.data(), len);
  if (body < len) {
    fail(EPROTO, "connection closed in the middle of a message ({} of {} bytes)", body, len);
  }
  return payload;
}

nlohmann::json ok_reply(nlohmann::json results) {
  nlohmann::json reply = results.is_object() ? std::move(results) : nlohmann::json::object();
  reply["v"] = kProtocolVersion;
  reply["ok"] = true;
  return reply;
}

nlohmann::json error_reply(int err, const std::string& message) {
  // The protocol promises a positive errno; accept the data path's negative
  // convention and never send 0 (that would read as success to a C caller).
  if (err < 0) {
    err = -err;
  }
  if (err == 0) {
    err = EIO;
  }
  return nlohmann::json{{"v", kProtocolVersion}, {"ok", false}, {"errno", err}, {"error", message}};
}

}  // namespace ubdm::control
