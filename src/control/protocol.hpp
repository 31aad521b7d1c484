// SPDX-License-Identifier: MIT
// The control protocol between ubdmsetup (and other clients) and ubdmd.
//
// Transport: a Unix stream socket (default /run/ubdm/control.sock). Each
// message is a frame: a 4-byte big-endian length, then that many bytes of
// UTF-8 JSON (one object). Frames larger than kMaxFrameBytes are refused and
// the connection is closed. A connection carries any number of
// request/reply pairs, strictly alternating; the client speaks first.
//
// Request:  {"v": 1, "op": "<verb>", ...arguments}
// Reply:    {"v": 1, "ok": true, ...results}
//           {"v": 1, "ok": false, "errno": <positive errno>, "error": "<one line for the user>"}
//
// The verbs, their arguments and results are one table, control/verbs.hpp,
// which checks every request before it runs; docs/protocol.md carries it as
// a reference together with the DeviceInfo and MultipathPaths objects.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace ubdm::control {

inline constexpr int kProtocolVersion = 1;
inline constexpr std::size_t kMaxFrameBytes = 1U << 20;
inline constexpr const char* kDefaultSocketPath = "/run/ubdm/control.sock";

// Frame I/O on a connected stream socket. Control plane: these throw
// ubdm::Error (EPROTO for malformed frames, EMSGSIZE for oversized ones,
// ECONNRESET for a peer that went away, or the socket errno).
void write_frame(int fd, const std::string& payload);
// Returns std::nullopt on a clean end of stream before the first byte.
std::optional<std::string> read_frame(int fd);

// Reply helpers.
nlohmann::json ok_reply(nlohmann::json results = nlohmann::json::object());
nlohmann::json error_reply(int err, const std::string& message);

}  // namespace ubdm::control
