// SPDX-License-Identifier: MIT
// The table of a planned multipath map (assembly.hpp): a pure function of
// the map, its effective settings and the checker interval, giving the line
// ubdm's multipath target takes (README, "multipath"), as multipathd builds
// its map for the kernel (libmultipath/configure.c setup_map(), then
// dmparser.c assemble_map()):
//
//   0 SIZE multipath <#features> <features...> 0 <#groups> <initial group>
//     (<selector> <#selector args> <args...> <#paths> 1 (/dev/NODE <repeat>)...)...
//
//  * features: the `features` setting's kernel features that ubdm knows
//    (pg_init_retries, pg_init_delay_msecs, queue_mode; queue_if_no_path
//    and retain_attached_hw_handler were taken out by resolve_settings() as
//    multipathd's reconcile_features_with_options() takes them out), then
//    ubdm's own: `no_path_retry queue|fail|N` from no_path_retry (where
//    multipathd writes queue_if_no_path and counts the retries itself),
//    `path_check_interval S` from polling_interval (the built-in checker
//    stands in for every path_checker), `failback immediate` from failback;
//  * hardware handler: none ("0"): ubdm has no SCSI device handlers;
//  * groups by path_grouping_policy (libmultipath/pgpolicies.c): failover
//    one path a group, multibus one group, group_by_serial,
//    group_by_node_name and group_by_prio one group per distinct value in
//    order of first appearance (group_by_match()); then sorted as
//    sort_pathgroups() sorts them: higher priority first, then more enabled
//    paths, otherwise in that order. The initial group is
//    switchgroup.c select_path_group()'s;
//  * priorities: the `const` prioritizer (every path 1) and `alua`, read
//    through PathProbes::alua (so tests give fixed answers); with
//    detect_prio, a path whose INQUIRY claims ALUA (TPGS) gets alua as
//    propsel.c detect_prio() gives it; a group's priority is the mean of its
//    enabled paths' defined priorities (path_group_prio_update());
//  * per path: the /dev node and its repeat count, rr_min_io_rq (times the
//    path's priority with rr_weight priorities, as assemble_map()).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "discovery/alua.hpp"
#include "discovery/assembly.hpp"
#include "discovery/multipath_conf.hpp"

namespace ubdm::discovery {

struct TablePath {
  std::string dev;   // "sdb"
  std::string node;  // "/dev/sdb", as the table names it
  int priority = 1;       // kPrioUndef (-1) when the prioritizer could not tell
  std::string prio = "const";  // the prioritizer that gave it
  std::optional<std::uint16_t> port_group;  // alua: the path's target port group
  // Up as far as sysfs tells (state running or live, or no state given):
  // multipathd's PATH_UP, counted in a group's enabled paths.
  bool enabled = true;
  unsigned repeat_count = 1;
};

struct TableGroup {
  std::vector<TablePath> paths;
  int priority = 0;  // the mean of the enabled paths' priorities, 0 if none is enabled
  unsigned enabled_paths = 0;
};

// A path of the map that the table leaves out, and why.
struct OmittedPath {
  std::string dev;
  std::string why;
};

struct MapTable {
  std::string text;  // one table line, no newline; "" if no path is usable
  PgPolicy policy = PgPolicy::kFailover;  // the policy applied (after any fallback)
  std::string selector;                   // "service-time 0": name, argument count, arguments
  std::vector<TableGroup> groups;         // in the table's order
  unsigned initial_group = 0;             // 1-based; 0 with no group
  std::vector<OmittedPath> omitted;
  // Settings ubdm cannot follow as written, and what it does instead: worth
  // a log line each.
  std::vector<std::string> notes;
};

// What the table needs to ask a path's device; empty functions are never
// called (a path then keeps the const prio, with a note).
struct PathProbes {
  // alua.c getprio(): the path's ALUA state and priority (scsi_io.hpp
  // read_alua_info() in ubdmd).
  std::function<AluaInfo(const ScannedPath&, bool exclusive_pref_bit)> alua;
  // The TPGS bits of the path's standard INQUIRY (nullopt: unreadable), for
  // detect_prio.
  std::function<std::optional<unsigned>(const ScannedPath&)> tpgs;
  // detect_prio (multipathd's default is yes): a SCSI path whose INQUIRY
  // claims ALUA takes the alua prio, whatever `prio` says (select_prio()).
  bool detect_prio = true;
};

// `polling` gives the checker interval (polling_interval, capped at 3600 s,
// the target's limit).
//
// Paths whose SCSI device state is offline, transport-offline or deleted
// are left out (`omitted`): the kernel refuses to open them (sd_open()), so
// a map naming one could not be created at all.
MapTable make_map_table(const PlannedMap& map, const PollingIntervals& polling, const PathProbes& probes = {});

}  // namespace ubdm::discovery
