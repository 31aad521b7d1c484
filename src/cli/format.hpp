// SPDX-License-Identifier: MIT
// dmsetup-style text for ubdmd's replies. Pure functions of the reply JSON
// (see control/protocol.hpp for its shape), so that the output formats are
// unit-tested. A reply missing a field throws nlohmann::json::exception.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace ubdm::cli {

// `info`: per device the dmsetup labels, padded so values start at column
// 20 ("UUID: " is not padded, as dmsetup's, and only there if the device has
// one), plus "Block device:" and "Data path:", then a blank line. No devices: "No devices found".
std::string format_info(const nlohmann::json& reply);

// `table` / `status`: the lines of each device. With with_names (no device
// named on the command line, as dmsetup decides) each line is prefixed
// "<name>: ". A device without lines prints one empty line (or "<name>: "),
// as dmsetup does. No devices: "No devices found".
// `target`, if not empty, keeps only the lines of that target type, and a
// device with none of them prints nothing (dmsetup's --target).
std::string format_lines(const nlohmann::json& reply, bool with_names, std::string_view target = {});

// `ls`: "<name>\t(<major>:<minor>)" per device, or "No devices found".
// The words of a comma-separated option list (-o, -O), empty ones dropped.
std::vector<std::string_view> split_list(std::string_view list);

// What `ls` shows in the brackets after each name (`ls -o`): the device's
// numbers (the default), its block device's kernel name, or its own name.
enum class LsName : std::uint8_t { kDevno, kBlkdevname, kDevname };
// `ls -o devno|blkdevname|devname`, as dmsetup reads it (devname wins).
// Throws std::invalid_argument naming an option it does not support.
LsName parse_ls_options(std::string_view list);
std::string format_ls(const nlohmann::json& reply, LsName name = LsName::kDevno);

// Whether a device of a `table` reply has a line of target type `target`.
bool has_target_type(const nlohmann::json& table_device, std::string_view target);

// `ls --target TYPE`: "<name>\t(<major>, <minor>)" (a comma, as dmsetup's)
// for each device of `ls_reply` with a line of that type in `table_reply`.
std::string format_ls_with_target(const nlohmann::json& ls_reply, const nlohmann::json& table_reply,
                                  std::string_view target);

// `table --concise`: every device on one line, dmsetup's grammar:
// name,uuid,minor,ro|rw,<line>[,<line>...] with devices separated by ';',
// and ',', ';' and '\' inside a field escaped with '\'.
std::string format_concise(const nlohmann::json& info_reply, const nlohmann::json& table_reply);

// `targets`: "%-16s v%d.%d.%d" per target type.
std::string format_targets(const nlohmann::json& reply);

// `deps`: "<N> dependencies\t: (<major>, <minor>) ..."; a regular file
// (major and minor 0) shows as "(<path>)".
std::string format_deps(const nlohmann::json& reply);

// `version`: the client's line (printed before the daemon is asked), then
// the daemon's lines from its reply.
std::string format_client_version(const std::string& cli_version);
std::string format_daemon_version(const nlohmann::json& reply);

// `message`: the target's answer, newline-terminated; nothing if empty.
std::string format_message_reply(const nlohmann::json& reply);

// `paths`: per multipath device a summary line, then one line per path
// (group, device, the path as written, state, failures, checker state,
// I/Os in flight and sent, selector info), aligned in columns.
std::string format_paths(const nlohmann::json& reply);

// What `ls --tree -o LIST` shows of each node, as dmsetup's options name it
// (device/nodevice, blkdevname, active, open, rw, uuid; ascii and notrunc
// change nothing here).
struct TreeOptions {
  bool device = true;
  bool blkdevname = false;
  bool active = false;
  bool open = false;
  bool rw = false;
  bool uuid = false;
};
// Throws std::invalid_argument naming an option it does not support.
TreeOptions parse_tree_options(std::string_view list);

// The kernel name of a block device by number ("sda"), "" if unknown.
using KernelName = std::function<std::string(std::uint32_t major, std::uint32_t minor)>;

// `ls --tree`: each device that no other ubdm device is built over, with the
// devices under it drawn as dmsetup's ASCII tree; a device ubdm does not
// serve is a leaf shown by its numbers (and left out with nodevice).
// `deps_by_name` maps each device's name to its `deps` answer, in the
// kernel's order; `info_reply` is `info` of every device (for the
// attributes).
std::string format_ls_tree(const nlohmann::json& ls_reply, const nlohmann::json& deps_by_name,
                           const nlohmann::json& info_reply, const TreeOptions& opts, const KernelName& kname);


// `stats`: per device a summary line (state, size, event_nr, queued and
// pushed-back I/O, requeues), one line per operation (I/Os, bytes, errors,
// in flight, mean latency and the histogram's p50 and p99 bounds in us),
// and for multipath one line per path.
std::string format_stats(const nlohmann::json& reply);

}  // namespace ubdm::cli
