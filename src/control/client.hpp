// SPDX-License-Identifier: MIT
// The client's side of the control socket (ubdmsetup, tests, tools).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace ubdm::control {

// One connection to ubdmd, opened on the first call and kept for the next
// ones. Not thread safe: one caller at a time.
class ControlClient {
 public:
  explicit ControlClient(std::string path);
  ~ControlClient();

  ControlClient(const ControlClient&) = delete;
  ControlClient& operator=(const ControlClient&) = delete;

  // Sends `request` (an object; "v" is added) and returns the reply, which
  // has "ok": true. Throws ubdm::Error: with the daemon's errno and message
  // when it answers ok=false; with a message naming the socket when it
  // cannot connect ("... (is ubdmd running?)"); EPROTO when the reply is
  // missing or not a valid reply. After a transport failure the connection
  // is dropped and the next call reconnects.
  nlohmann::json call(nlohmann::json request);

  const std::string& path() const noexcept { return path_; }

 private:
  void connect();
  void disconnect() noexcept;

  std::string path_;
  int fd_ = -1;
};

}  // namespace ubdm::control
