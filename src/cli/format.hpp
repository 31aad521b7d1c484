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

// The characters `ls --tree` draws with, as dmsetup's options name them:
// "|-", "`-" (ascii), box drawing (utf) or the VT100 line-drawing set,
// switched in and out with escapes (vt100).
enum class TreeSymbols : std::uint8_t { kAscii, kUtf, kVt100 };

// dmsetup's default drawing: utf when the locale's codeset
// (nl_langinfo(CODESET) after its setlocale(LC_ALL, "")) is exactly
// "UTF-8", else ascii. Whether stdout is a terminal does not matter.
TreeSymbols default_tree_symbols(std::string_view codeset);

// The codeset of the locale the environment names (LC_ALL, LC_*, LANG), as
// setlocale(LC_ALL, "") would set it, read without changing the process's
// locale: the C locale's ("ANSI_X3.4-1968") when one of them names a locale
// that is not installed, as setlocale then changes nothing.
std::string environment_codeset();

// What `ls --tree -o LIST` shows of each node and how, as dmsetup's options
// name them: device/nodevice, blkdevname, active, open, rw, uuid, inverted,
// compact, notrunc, ascii, utf, vt100.
struct TreeOptions {
  bool device = true;
  bool blkdevname = false;
  bool active = false;
  bool open = false;
  bool rw = false;
  bool uuid = false;
  bool inverted = false;  // from the disks up to the devices built on them
  bool compact = false;   // a first child on its parent's line (not with attributes)
  bool truncate = true;   // lines cut at `columns` ("..."); notrunc: not
  TreeSymbols symbols = TreeSymbols::kAscii;
  unsigned columns = 80;  // dmsetup's width when stdout is not a terminal
};
// The options in LIST over dmsetup's defaults, with `symbols` drawing
// unless LIST names ascii, utf or vt100 (the last one named wins).
// Throws std::invalid_argument naming an option it does not support.
TreeOptions parse_tree_options(std::string_view list, TreeSymbols symbols = TreeSymbols::kAscii);

// dmsetup's width on a terminal of `terminal_columns` (0: stdout is not
// one): 3 columns less when it is wider than 3, except with vt100, whose
// escapes count as columns; otherwise `opts.columns` stays 80.
void fit_tree_to_terminal(TreeOptions& opts, unsigned terminal_columns);
// The width of the terminal on stdout, 0 if stdout is not a terminal.
unsigned stdout_terminal_columns();

// The kernel name of a block device by number ("sda"), "" if unknown.
using KernelName = std::function<std::string(std::uint32_t major, std::uint32_t minor)>;

// `ls --tree`: dmsetup's tree of every device. By default each device that
// no other ubdm device is built over, with the devices under it; inverted,
// each device with nothing under it (a disk ubdm does not serve, or a ubdm
// device over no device), with the devices built over it. A device ubdm
// does not serve shows its numbers only (nothing with nodevice). The order
// and the drawing are libdm's: devices by name, each one's children in the
// order the links were made. `deps_by_name` maps each device's name to its
// `deps` answer, in the kernel's order; `info_reply` is `info` of every
// device (for the attributes).
std::string format_ls_tree(const nlohmann::json& ls_reply, const nlohmann::json& deps_by_name,
                           const nlohmann::json& info_reply, const TreeOptions& opts, const KernelName& kname);


// `stats`: per device a summary line (state, size, event_nr, queued and
// pushed-back I/O, requeues), one line per operation (I/Os, bytes, errors,
// in flight, mean latency and the histogram's p50 and p99 bounds in us),
// and for multipath one line per path.
std::string format_stats(const nlohmann::json& reply);

}  // namespace ubdm::cli
