// SPDX-License-Identifier: MIT
// Which multipath maps to make: a pure function of the configuration, the
// scanned paths, the bindings file and what exists already, so that every
// decision multipathd would take at start (libmultipath/configure.c
// coalesce_paths()) is made in one place and tested without a kernel. The
// caller carries the plan out (creates, renames or reloads maps) and writes
// the bindings and wwids files back.
//
// For each path, in scan order:
//  1. no WWID: left out (coalesce_paths(): "no WWID");
//  2. a USB disk while allow_usb_devices is no: left out (pathinfo());
//  3. the blacklist (filter_path() below): left out;
// then per WWID, in the order of its first path:
//  4. find_multipaths (decide_find_multipaths() below): left out, or a map;
//  5. sizes: every path that reports a size must report the same, or the
//     whole map is left out (coalesce_paths() rejects it: two LUNs behind
//     one WWID must never become one map);
//  6. the name (multipathd's select_alias()): the multipaths entry's
//     alias; else, with user_friendly_names, the WWID's binding, or a new
//     one (PREFIXa, PREFIXb, ... the first id no binding holds and no other
//     WWID's device is named); else the WWID itself. The map's UUID is
//     "mpath-" WWID, as multipathd's.
//  7. the settings (resolve_settings(), multipath_conf.hpp) from the
//     configuration and the map's first path.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "discovery/bindings.hpp"
#include "discovery/multipath_conf.hpp"
#include "discovery/sysfs_paths.hpp"

namespace ubdm::discovery {

// What exists before this assembly.
struct KnownState {
  // The wwids file: WWIDs multipathed before (find_multipaths strict and on
  // trust them).
  std::vector<std::string> wwids;
  // Every device name in use, with the WWID of the multipath map it serves
  // ("" for a device that is not a multipath map). A map found here for a
  // WWID keeps being served whatever find_multipaths says (multipathd adds
  // paths to a map it has without asking), and a name held for another
  // WWID is never given out.
  std::map<std::string, std::string> devices;
};

struct AssemblyOptions {
  // Never add a binding (multipathd's bindings_read_only): a map that would
  // need a new user-friendly name is named by its WWID instead.
  bool bindings_read_only = false;
};

// ---- the blacklist ---------------------------------------------------------

// Whether the configuration's blacklist, with its exceptions and multipathd's
// built-in entries, takes `path` out (libmultipath/blacklist.c filter_path()).
// The five criteria are tried in multipathd's order: udev property, device
// node name, device (vendor/product), protocol, WWID. For each, an
// exception that matches wins over a blacklist entry that matches, and the
// next criterion is tried; the first blacklisting one decides.
//
// Built-in entries (blacklist.c setup_default_blist()):
//  * devnode "!^(sd[a-z]|dasd[a-z]|nvme[0-9])": only SCSI disks, DASDs and
//    NVMe namespaces (without "nvme[0-9]" when the kernel multipaths NVMe
//    itself: `nvme_native_multipath`);
//  * property exception "(SCSI_IDENT_|ID_WWN)": with udev properties known,
//    a device none of whose properties matches an exception or a blacklist
//    entry is blacklisted ("udev property missing") if it has its
//    uid_attribute property (ID_SERIAL; ID_WWN for NVMe), i.e. udev saw it
//    but found no proper identifier;
//  * each devices entry's product_blacklist, as a device entry of the
//    blacklist with that entry's vendor.
struct FilterVerdict {
  bool blacklisted = false;
  std::string why;  // the criterion and entry that decided, for the log ("" if nothing matched)
};
FilterVerdict filter_path(const Config& config, const ScannedPath& path, bool nvme_native_multipath);

// ---- find_multipaths -------------------------------------------------------

// Whether a non-blacklisted WWID gets a map (libmultipath/wwids.c
// should_multipath() as multipathd runs it, multipath.conf(5)):
//  * a map for the WWID exists: yes, in every mode;
//  * off (no): multipathd treats it as greedy: yes;
//  * greedy: yes;
//  * strict: only a WWID in the wwids file;
//  * on (yes): a WWID in the wwids file, or one with 2 or more
//    non-blacklisted paths;
//  * smart: as on. (smart differs from on only in udev's claim of a lone
//    path while multipathd waits find_multipaths_timeout for a second one;
//    ubdmd claims nothing in udev, and a later path's arrival is the
//    uevent handling's to act on.)
struct FindDecision {
  bool take = false;
  std::string why;
};
FindDecision decide_find_multipaths(FindMultipaths mode, std::size_t path_count, bool in_wwids_file,
                                    bool has_map);

// ---- the plan --------------------------------------------------------------

struct PlannedMap {
  enum class NameSource : std::uint8_t {
    kAlias,       // the multipaths entry's alias
    kBinding,     // user_friendly_names: the WWID's binding (or the map's current friendly name)
    kNewBinding,  // user_friendly_names: a binding added by this assembly
    kWwid,        // the WWID itself
  };
  std::string wwid;
  std::string name;
  std::string uuid;  // "mpath-" + wwid
  NameSource name_source = NameSource::kWwid;
  std::optional<std::string> current_name;  // the existing map's name, if one serves this WWID
  std::uint64_t size_sectors = 0;
  std::vector<ScannedPath> paths;  // in scan order
  EffectiveSettings settings;
  std::string why;  // why find_multipaths takes it
};
const char* name_source_name(PlannedMap::NameSource s);

struct LeftOut {
  enum class Reason : std::uint8_t {
    kNoWwid,
    kUsb,
    kBlacklisted,
    kNotMultipathed,  // find_multipaths said no
    kSizeMismatch,
    kNoSize,
    kBadName,    // the name or UUID could not be a ubdm device's
    kNameTaken,  // the name is another WWID's device
  };
  std::string dev;
  std::string wwid;
  Reason reason = Reason::kNoWwid;
  std::string why;
};
const char* left_out_reason_name(LeftOut::Reason r);

struct Assembly {
  std::vector<PlannedMap> maps;
  std::vector<LeftOut> left_out;  // every scanned path that is in no map, in scan order
  // The bindings after this assembly: the file's, plus the multipaths
  // aliases (multipathd keeps those in its bindings too, so that no
  // user-friendly name is ever given to a second WWID), plus new ones.
  Bindings bindings;
  // The file must be rewritten: a binding was added, or a line of the file
  // conflicted with a multipaths alias and was dropped.
  bool bindings_changed = false;
  // WWIDs of planned maps the wwids file lacks: append them once the map
  // is set up (multipathd's remember_wwid() after a successful create).
  std::vector<std::string> new_wwids;
  std::vector<std::string> notes;  // decisions worth a log line
};

Assembly assemble_maps(const Config& config, const SysfsScan& scan, const Bindings& bindings, const KnownState& known,
                       const AssemblyOptions& options = {});

}  // namespace ubdm::discovery
