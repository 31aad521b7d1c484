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
// A request with another "v", an unknown "op", a missing or mistyped
// argument gets an error reply with errno EINVAL and no change of state.
//
// Verbs and their arguments / results (names are JSON keys):
//   version                                -> daemon_version, protocol, ublk_features (hex string or "")
//   create   name, table, [queues], [depth] -> device (DeviceInfo object)
//   load     name, table                    -> device
//   clear    name                           -> device
//   suspend  name, [noflush=false], [timeout_ms=0: no limit] -> device
//   resume   name                           -> device
//   remove   name, [force=false]            -> {}
//   info     [name]                         -> devices: [DeviceInfo...]   (all devices without name)
//   table    [name], [inactive=false]       -> devices: [{name, lines: ["0 100 linear 8:0 0", ...]}]
//   status   [name], [inactive=false]       -> devices: [{name, lines: [...]}]
//   ls                                      -> devices: [{name, major, minor, blockdev}]
//   targets                                 -> targets: [{name, version: [a,b,c]}]
//   deps     name                           -> deps: [{major, minor, path}]   (major/minor 0 for files)
//   message  name, sector, args: [strings]  -> reply: string (may be empty)
//   wait     name, [event_nr=0]             -> device (returns when the device's event_nr differs from
//                                              the one given, as dmsetup wait)
//   paths    [name]                         -> devices: [MultipathPaths...]  (multipath devices only; a
//                                              named device without a multipath target is EINVAL)
//
// DeviceInfo object:
//   name, state ("ACTIVE" | "SUSPENDED"), live_table (bool), inactive_table (bool),
//   open_count (int), event_nr (int), major, minor (of the block device; 0 if none),
//   target_count, size_sectors, blockdev ("/dev/ublkbN" or ""), ublk_id (int, -1 if none),
//   queues, depth.
//
// MultipathPaths object:
//   name, queue_if_no_path (bool), valid_paths, no_path_retry ("" | "fail" | "queue" | count),
//   recovery_remaining_ms (-1 unless no_path_retry is counting down), check_interval_s (0: off),
//   groups: [{number, state ("A" | "E" | "D"), selector}],
//   paths: [{group, device ("maj:min"), path (as in the table), state ("active" | "failed"),
//            fail_count, checker ("ready" | "faulty" | "i/o pending" | "i/o timeout" | "unchecked" |
//            "none"), in_flight, ios, selector_info (the selector's INFO words)}]
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
