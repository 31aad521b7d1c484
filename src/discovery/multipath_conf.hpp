// SPDX-License-Identifier: MIT
// multipath.conf, read by a parser of our own into typed structures, and
// the settings one LUN ends with once every section has had its say.
//
// The file is multipath-tools' format (multipath.conf(5)): sections
// (defaults, blacklist, blacklist_exceptions, multipaths, devices, overrides)
// holding `keyword value` lines and subsections (device, multipath,
// protocol), one item per line, '#' and '!' starting a comment outside
// double quotes, '""' standing for a quote inside them.
//
// What is an error and what is not, as ubdmd must keep running with a file
// written for multipathd:
//  * an error (ubdm::Error, EINVAL, naming the file and line) is a file whose
//    structure cannot be trusted: an unbalanced brace, a section keyword
//    without its '{', a keyword without a value, an unterminated quote, a
//    regular expression that does not compile (multipathd refuses that file
//    too);
//  * everything else is a Warning, collected in Config::warnings for the
//    caller to log once each: an unknown keyword or section (skipped whole),
//    a keyword multipathd knows but ubdm does not act on, a deprecated one,
//    a value multipathd would also reject (the keyword is then ignored), an
//    incomplete entry (dropped, as multipathd drops it).
#pragma once

#include <regex.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ubdm::discovery {

// Where ubdmd reads its configuration unless told otherwise.
inline constexpr const char* kDefaultConfigPath = "/etc/ubdm/multipath.conf";

// A POSIX extended regular expression as multipath.conf writes one: case
// sensitive and not anchored ("bar" matches "wunderbar"). In the blacklist
// sections (and product_blacklist) a leading '!' inverts the match and "\!"
// stands for a literal leading '!'; device entries' vendor/product/revision
// take the text as it is.
class Regex {
 public:
  enum class Bang : std::uint8_t { kInverts, kLiteral };
  // Throws Error(EINVAL) with regcomp's reason if the expression is invalid.
  static Regex compile(const std::string& text, Bang bang);

  bool matches(std::string_view s) const;  // inversion applied
  const std::string& text() const { return text_; }  // as written
  bool inverted() const { return invert_; }

 private:
  std::string text_;
  bool invert_ = false;
  std::shared_ptr<regex_t> re_;  // shared: a compiled regex_t is not copyable
};

enum class PgPolicy : std::uint8_t {
  kFailover,
  kMultibus,
  kGroupBySerial,
  kGroupByPrio,
  kGroupByNodeName,
  kGroupByTpg,
};
const char* pgpolicy_name(PgPolicy p);

struct Failback {
  enum class Kind : std::uint8_t { kManual, kImmediate, kFollowover, kDeferred };
  Kind kind = Kind::kManual;
  unsigned seconds = 0;  // kDeferred: switch back this long after the better group returns
  bool operator==(const Failback&) const = default;
};
std::string failback_text(const Failback& f);

struct NoPathRetry {
  enum class Kind : std::uint8_t { kFail, kQueue, kRetries };
  Kind kind = Kind::kFail;
  unsigned retries = 0;  // kRetries: checker intervals to keep queueing with no path
  bool operator==(const NoPathRetry&) const = default;
};
std::string no_path_retry_text(const NoPathRetry& n);

enum class RrWeight : std::uint8_t { kUniform, kPriorities };

// find_multipaths (multipath.conf(5); libmultipath/wwids.c should_multipath):
// which non-blacklisted WWIDs get a map. See assembly.hpp for each value.
enum class FindMultipaths : std::uint8_t { kOff, kOn, kStrict, kGreedy, kSmart };
const char* find_multipaths_name(FindMultipaths f);

// The attributes that several sections can set for a map or its paths. Unset
// means "this section does not say": resolution moves on to the next one.
// Which section accepts which keyword follows libmultipath/dict.c (e.g.
// path_checker and alias_prefix are not multipaths keywords, hardware_handler
// is a devices keyword only).
struct Attributes {
  std::optional<PgPolicy> path_grouping_policy;
  std::optional<std::string> path_selector;  // "service-time 0": name, argument count, arguments
  std::optional<std::string> path_checker;   // also spelled "checker"
  std::optional<std::string> prio;
  std::optional<std::string> prio_args;
  std::optional<Failback> failback;
  std::optional<NoPathRetry> no_path_retry;
  std::optional<std::string> features;  // "N word...": the count first
  std::optional<unsigned> rr_min_io;
  std::optional<unsigned> rr_min_io_rq;
  std::optional<RrWeight> rr_weight;
  std::optional<bool> user_friendly_names;
  std::optional<std::string> alias_prefix;
  std::optional<std::string> uid_attribute;
  std::optional<std::string> hardware_handler;  // devices only
  // Keywords multipath-tools knows in this section that ubdm does not act
  // on (yet), with their values as written: kept for `show config`-like
  // output and for the code that will use them.
  std::map<std::string, std::string> other;
};

struct Defaults : Attributes {
  std::optional<FindMultipaths> find_multipaths;
  std::optional<unsigned> polling_interval;      // seconds, >= 1
  std::optional<unsigned> max_polling_interval;  // seconds
  std::optional<bool> allow_usb_devices;
  // uid_attrs: "PREFIX:ATTRIBUTE ..." pairs, the udev property that holds
  // the WWID of devices whose name starts with PREFIX.
  std::vector<std::pair<std::string, std::string>> uid_attrs;
};

struct DeviceMatch {  // a blacklist (or exception) device subsection
  std::optional<Regex> vendor;
  std::optional<Regex> product;
  int line = 0;
};

// The blacklist or the blacklist_exceptions section. Each list holds
// regular expressions matched against the device node name ("sdb"), the
// WWID, the names of the device's udev properties, and its protocol
// ("scsi:fcp", "nvme:tcp", ...).
struct FilterList {
  std::vector<Regex> devnode;
  std::vector<Regex> wwid;
  std::vector<Regex> property;
  std::vector<Regex> protocol;
  std::vector<DeviceMatch> device;
};

struct MultipathEntry : Attributes {  // multipaths { multipath { ... } }
  std::string wwid;  // matched exactly, never as a regex
  std::optional<std::string> alias;
  int line = 0;
};

struct DeviceEntry : Attributes {  // devices { device { ... } }
  std::optional<Regex> vendor;    // mandatory in the file: entries without are dropped
  std::optional<Regex> product;   // mandatory likewise
  std::optional<Regex> revision;  // any revision when unset
  std::optional<Regex> product_blacklist;  // blacklists this vendor's matching products
  int line = 0;
};

struct ProtocolEntry {  // overrides { protocol { type ... } }
  std::string type;
  std::map<std::string, std::string> other;  // fast_io_fail_tmo, dev_loss_tmo, eh_deadline
  int line = 0;
};

struct Warning {
  enum class Kind : std::uint8_t {
    kUnknownKeyword,  // not a multipath.conf keyword in this section: ignored
    kUnknownSection,  // a block multipath.conf has not here: skipped whole
    kNotUsed,         // a multipath.conf keyword ubdm does not act on (kept in `other`)
    kDeprecated,      // multipathd ignores it too
    kInvalidValue,    // the keyword is ignored (or its value capped)
    kExtraData,       // words after the value: ignored
    kDuplicate,       // the keyword again in one section: the last one counts
    kDropped,         // an incomplete or conflicting entry: left out
  };
  Kind kind = Kind::kUnknownKeyword;
  int line = 0;
  std::string keyword;
  std::string message;  // "FILE line N: ..." ready to log
};
const char* warning_kind_name(Warning::Kind k);

struct Config {
  std::string source;  // the file name, for messages
  Defaults defaults;
  FilterList blacklist;
  FilterList blacklist_exceptions;
  std::vector<MultipathEntry> multipaths;  // one per WWID (duplicates merged)
  std::vector<DeviceEntry> devices;        // file order: later entries win
  Attributes overrides;
  std::vector<ProtocolEntry> overrides_protocols;
  std::vector<Warning> warnings;

  const MultipathEntry* multipath_for(std::string_view wwid) const;
};

// Parse the text of a multipath.conf. `source` names it in messages.
Config parse_multipath_conf(std::string_view text, const std::string& source = "multipath.conf");
// Read and parse `path`. A missing file is an empty configuration (every
// built-in default), as for multipathd; any other read failure throws.
Config load_multipath_conf(const std::string& path = kDefaultConfigPath);

// ---------------------------------------------------------------------------
// Resolution: the settings one LUN ends with.
//
// multipathd asks the sections from the most specific to the most general
// and takes the first that sets the keyword (libmultipath/propsel.c, each
// select_*()). The order depends on the attribute:
//
//  * map attributes (path_grouping_policy, path_selector, failback,
//    no_path_retry, features, rr_min_io_rq, rr_weight, user_friendly_names,
//    and prio/prio_args, which select_prio() reads the same way):
//      multipaths entry > overrides > devices > defaults > built-in
//    The multipaths entry comes first, overrides included: mp_set_mpe()
//    runs before mp_set_ovr(), and multipath.conf(5) ranks it above all.
//  * path attributes (path_checker, uid_attribute) and alias_prefix, which
//    the multipaths section cannot set:
//      overrides > devices > defaults > built-in
//    uid_attribute is preceded by the defaults' uid_attrs (select_getuid()).
//  * hardware_handler: devices > built-in (select_hwhandler(): no overrides
//    or defaults keyword exists for it).
//
// "devices" is every device entry whose vendor, product and revision
// regexes match the LUN (libmultipath/config.c find_hwe()), newest first:
// later entries in the file, then multipathd's built-in hardware table; per
// keyword the first matching entry that sets it wins, so several entries
// combine. For prio, the name and the arguments are taken separately from
// the first entry that sets each (propsel.c set_prio_from_vec()).
//
// Built-in values are libmultipath/defaults.h's. Of the built-in hardware
// table (libmultipath/hwtable.c) only the generic NVMe entry is carried
// (vendor "NVME": uid_attribute ID_WWN, path_checker none, group_by_prio,
// failback immediate); the vendor-specific entries are not.
//
// Not modelled: multipathd's autodetection, which runs before these lookups
// and needs the device (detect_prio: ALUA/ANA priorities; detect_checker:
// tur for ALUA arrays; detect_pgpolicy: group_by_prio when every path has an
// ALUA priority; retain_attached_hw_handler). The caller applies those once
// it probes the paths.
// ---------------------------------------------------------------------------

enum class Origin : std::uint8_t {
  kBuiltin,          // libmultipath/defaults.h
  kBuiltinHardware,  // libmultipath/hwtable.c (the generic NVMe entry)
  kDefaults,
  kDevices,
  kMultipaths,
  kOverrides,
};
const char* origin_name(Origin o);

template <typename T>
struct Resolved {
  T value{};
  Origin origin = Origin::kBuiltin;
};

// What resolution needs to know of a LUN: its WWID (for the multipaths
// entry), the identity of its first path (for the devices entries: vendor,
// product, revision as sysfs gives them, NVMe's vendor being "NVME") and
// that path's device name (for uid_attrs).
struct LunIdentity {
  std::string wwid;
  std::string dev;
  std::string vendor;
  std::string product;
  std::string revision;
};

struct EffectiveSettings {
  Resolved<PgPolicy> path_grouping_policy;
  Resolved<std::string> path_selector;
  Resolved<std::string> path_checker;
  Resolved<std::string> prio;
  Resolved<std::string> prio_args;
  Resolved<Failback> failback;
  // nullopt: undefined (built-in), which means no queueing unless the
  // features string asked for it.
  Resolved<std::optional<NoPathRetry>> no_path_retry;
  // With "queue_if_no_path" taken out: multipathd turns that feature into
  // no_path_retry queue when no_path_retry is undefined, and drops it in
  // every case (propsel.c reconcile_features_with_options()).
  Resolved<std::string> features;
  Resolved<unsigned> rr_min_io_rq;
  Resolved<RrWeight> rr_weight;
  Resolved<bool> user_friendly_names;
  Resolved<std::string> alias_prefix;
  Resolved<std::string> uid_attribute;
  Resolved<std::string> hardware_handler;
  std::optional<std::string> alias;  // the multipaths entry's, if any
};

EffectiveSettings resolve_settings(const Config& config, const LunIdentity& lun);

// find_multipaths with its built-in default (strict, libmultipath/defaults.h).
FindMultipaths resolve_find_multipaths(const Config& config);

// The checker intervals (libmultipath/config.c, after reading the file):
// polling_interval defaults to 5; max_polling_interval to 4 times it; only a
// max given makes the interval max/4 (at least 1); an interval above the
// max is lowered to it.
struct PollingIntervals {
  unsigned polling_interval = 5;
  unsigned max_polling_interval = 20;
};
PollingIntervals resolve_polling(const Defaults& defaults);

// The udev property holding the WWID of device `dev` (uid_attrs, then the
// attribute resolution above): what the property blacklist's "missing"
// rule looks for.
Resolved<std::string> resolve_uid_attribute(const Config& config, const LunIdentity& lun);

}  // namespace ubdm::discovery
