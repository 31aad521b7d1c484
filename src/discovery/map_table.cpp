// SPDX-License-Identifier: MIT
#include "discovery/map_table.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <sstream>

#include <fmt/format.h>

#include "targets/multipath/path_selector.hpp"

namespace ubdm::discovery {

namespace {

// The target's limits (src/targets/multipath/multipath.cpp).
constexpr unsigned kMaxCheckInterval = 3600;
constexpr unsigned kMaxNoPathRetry = 1000000;

std::vector<std::string> words(std::string_view s) {
  std::vector<std::string> out;
  std::istringstream in{std::string(s)};
  for (std::string w; in >> w;) {
    out.push_back(std::move(w));
  }
  return out;
}

std::optional<unsigned long long> number(const std::string& s) {
  if (s.empty() || s.size() > 19 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  return std::stoull(s);
}

// The kernel features of the `features` setting that the target takes,
// checked as it checks them; the rest is dropped with a note (a word the
// target refuses would fail the whole table).
std::vector<std::string> kernel_features(const Resolved<std::string>& features, std::vector<std::string>& notes) {
  const std::vector<std::string> w = words(features.value);
  std::vector<std::string> out;
  if (w.empty()) {
    return out;
  }
  const auto count = number(w[0]);
  if (!count || *count != w.size() - 1) {
    notes.push_back(fmt::format("features \"{}\" ({}): the count does not match its words: ignored", features.value,
                                origin_name(features.origin)));
    return out;
  }
  for (std::size_t i = 1; i < w.size(); ++i) {
    const std::string& f = w[i];
    const bool takes_value = f == "pg_init_retries" || f == "pg_init_delay_msecs" || f == "queue_mode";
    if (f == "retain_attached_hw_handler") {
      out.push_back(f);
      continue;
    }
    if (!takes_value) {
      notes.push_back(fmt::format("feature {} ({}) is not a feature ubdm's multipath target has: left out", f,
                                  origin_name(features.origin)));
      continue;
    }
    if (i + 1 >= w.size()) {
      notes.push_back(fmt::format("feature {} ({}) has no value: left out", f, origin_name(features.origin)));
      continue;
    }
    const std::string& v = w[++i];
    const auto n = number(v);
    const bool ok = f == "pg_init_retries"       ? n && *n >= 1 && *n <= 50
                    : f == "pg_init_delay_msecs" ? n && *n <= 60000
                                                 : v == "bio" || v == "rq" || v == "mq";
    if (!ok) {
      notes.push_back(fmt::format("feature {} {} ({}): a value the target refuses: left out", f, v,
                                  origin_name(features.origin)));
      continue;
    }
    out.push_back(f);
    out.push_back(v);
  }
  return out;
}

// The selector as "name count args...", or the built-in default with a
// note when ubdm has no such selector.
std::string selector_of(const Resolved<std::string>& setting, std::vector<std::string>& notes) {
  static const std::string kDefault = "service-time 0";  // libmultipath/defaults.h DEFAULT_SELECTOR
  const std::vector<std::string> w = words(setting.value);
  if (w.empty()) {
    return kDefault;
  }
  const auto sel = mpath::selector_types();
  if (std::none_of(sel.begin(), sel.end(), [&](const mpath::SelectorType& t) { return t.name == w[0]; })) {
    notes.push_back(fmt::format("path_selector \"{}\" ({}): ubdm has no selector {}: {} instead", setting.value,
                                origin_name(setting.origin), w[0], kDefault));
    return kDefault;
  }
  const auto count = w.size() >= 2 ? number(w[1]) : std::optional<unsigned long long>(0);
  if (!count || *count != w.size() - std::min<std::size_t>(w.size(), 2)) {
    notes.push_back(fmt::format("path_selector \"{}\" ({}): the argument count does not match: {} instead",
                                setting.value, origin_name(setting.origin), kDefault));
    return kDefault;
  }
  std::string out = w[0] + " " + std::to_string(*count);
  for (std::size_t i = 2; i < w.size(); ++i) {
    out += ' ';
    out += w[i];
  }
  return out;
}

// A path's prioritizer and priority (propsel.c select_prio(), then
// prio.c's getprio): detect_prio first (detect_prio(): a SCSI path whose
// INQUIRY TPGS bits are not 0 gets alua), then the `prio` setting; alua
// falls back to const when the target claims no ALUA ("emergency
// fallback"), and an unreadable ALUA state is PRIO_UNDEF.
void set_priority(TablePath& tp, const ScannedPath& p, const EffectiveSettings& s, const PathProbes& probes,
                  std::vector<std::string>& notes) {
  std::string name = s.prio.value;
  std::string args = s.prio_args.value;
  std::optional<unsigned> tpgs;
  bool tpgs_read = false;
  auto read_tpgs = [&] {
    if (!tpgs_read && probes.tpgs) {
      tpgs = probes.tpgs(p);
    }
    tpgs_read = true;
    return tpgs;
  };
  if (probes.detect_prio && p.kind == PathKind::kScsi && probes.tpgs && probes.alua) {
    const auto t = read_tpgs();
    if (t && *t != 0) {
      name = "alua";
      args.clear();  // DEFAULT_PRIO_ARGS
    }
  }
  if (name == "alua" && p.kind == PathKind::kScsi && probes.alua) {
    const auto t = read_tpgs();
    if (probes.tpgs && t && *t == 0) {
      notes.push_back(fmt::format("{}: prio alua, but its INQUIRY claims no ALUA: const instead "
                                  "(multipathd's emergency fallback)",
                                  p.dev));
      name = "const";
    } else {
      const AluaInfo a = probes.alua(p, alua_exclusive_pref_arg(args));
      tp.prio = "alua";
      tp.priority = a.priority;
      tp.port_group = a.port_group;
      if (a.priority == kPrioUndef) {
        notes.push_back(fmt::format("{}: prio alua: undefined priority: {}", p.dev, a.error));
      }
      return;
    }
  }
  if (name != "const") {
    std::string note = fmt::format("prio {} ({}) is not available in ubdm{}: const (every path 1) instead", name,
                                   origin_name(s.prio.origin),
                                   name == "alua" ? " without a SCSI device to ask" : "");
    if (std::find(notes.begin(), notes.end(), note) == notes.end()) {
      notes.push_back(std::move(note));
    }
  }
  tp.prio = "const";
  tp.priority = 1;
}

// sysfs states (drivers/scsi/scsi_sysfs.c sdev_states[]) in which sd_open()
// refuses the disk: scsi_device_online() is false.
bool refused_by_kernel(const ScannedPath& p) {
  return p.kind == PathKind::kScsi &&
         (p.state == "offline" || p.state == "transport-offline" || p.state == "deleted");
}

// multipathd's PATH_UP, as far as sysfs tells it: a running SCSI device, a
// live NVMe controller, or no state to go by.
bool up(const ScannedPath& p) { return p.state.empty() || p.state == "running" || p.state == "live"; }

// pgpolicies.c group_by_match(): one group per distinct key, in order of
// the key's first path, each holding its paths in their order.
template <typename Key>
std::vector<TableGroup> group_by(const std::vector<TablePath>& paths, const std::vector<ScannedPath>& scanned,
                                 Key key) {
  std::vector<TableGroup> out;
  std::vector<bool> taken(paths.size(), false);
  for (std::size_t i = 0; i < paths.size(); ++i) {
    if (taken[i]) {
      continue;
    }
    TableGroup g;
    g.paths.push_back(paths[i]);
    for (std::size_t j = i + 1; j < paths.size(); ++j) {
      if (!taken[j] && key(paths[i], scanned[i]) == key(paths[j], scanned[j])) {
        g.paths.push_back(paths[j]);
        taken[j] = true;
      }
    }
    out.push_back(std::move(g));
  }
  return out;
}

// switchgroup.c path_group_prio_update(): the mean of the enabled paths'
// defined priorities; PRIO_UNDEF when none is defined, 0 when no path is
// enabled.
void update_priority(TableGroup& g) {
  int sum = 0;
  int defined = 0;
  g.enabled_paths = 0;
  for (const TablePath& p : g.paths) {
    if (p.enabled) {
      if (p.priority != kPrioUndef) {
        sum += p.priority;
        ++defined;
      }
      ++g.enabled_paths;
    }
  }
  g.priority = defined > 0 ? sum / defined : g.enabled_paths > 0 ? kPrioUndef : 0;
}

// switchgroup.c select_path_group(): the first group with an enabled path,
// unless a later one has a higher priority, or the same and more enabled
// paths. 1 when no group has an enabled path.
unsigned best_group(const std::vector<TableGroup>& groups) {
  unsigned best = 1;
  bool found = false;
  int max_priority = 0;
  unsigned max_enabled = 1;
  for (std::size_t i = 0; i < groups.size(); ++i) {
    const TableGroup& g = groups[i];
    if (g.enabled_paths == 0) {
      continue;
    }
    if (!found || g.priority > max_priority || (g.priority == max_priority && g.enabled_paths > max_enabled)) {
      found = true;
      max_priority = g.priority;
      max_enabled = g.enabled_paths;
      best = static_cast<unsigned>(i + 1);
    }
  }
  return best;
}

}  // namespace

MapTable make_map_table(const PlannedMap& map, const PollingIntervals& polling, const PathProbes& probes) {
  const EffectiveSettings& s = map.settings;
  MapTable t;

  // The paths, each with its priority and repeat count (assemble_map():
  // rr_min_io_rq, times the priority with rr_weight priorities).
  std::vector<TablePath> paths;
  std::vector<ScannedPath> scanned;  // paths[i]'s scan, for the grouping keys
  for (const ScannedPath& p : map.paths) {
    if (refused_by_kernel(p)) {
      t.omitted.push_back({p.dev, fmt::format("its SCSI device is {}: the kernel does not open it", p.state)});
      continue;
    }
    TablePath tp;
    tp.dev = p.dev;
    tp.node = "/dev/" + p.dev;
    set_priority(tp, p, s, probes, t.notes);
    tp.enabled = up(p);
    unsigned long long repeat = s.rr_min_io_rq.value;
    if (s.rr_weight.value == RrWeight::kPriorities && tp.priority > 0) {
      repeat *= static_cast<unsigned>(tp.priority);
    }
    tp.repeat_count = static_cast<unsigned>(std::min<unsigned long long>(repeat, std::numeric_limits<std::uint32_t>::max()));
    paths.push_back(std::move(tp));
    scanned.push_back(p);
  }

  // select_pgpolicy(): group_by_tpg needs every path's ALUA target port
  // group; without, multipathd falls back to the default policy.
  t.policy = s.path_grouping_policy.value;
  if (t.policy == PgPolicy::kGroupByTpg &&
      !std::all_of(paths.begin(), paths.end(), [](const TablePath& p) { return p.port_group.has_value(); })) {
    t.notes.push_back(fmt::format("path_grouping_policy group_by_tpg ({}) needs every path's ALUA target port "
                                  "group: failover instead (multipathd's fallback)",
                                  origin_name(s.path_grouping_policy.origin)));
    t.policy = PgPolicy::kFailover;
  }
  switch (t.policy) {
    case PgPolicy::kGroupByTpg:
      t.groups = group_by(paths, scanned, [](const TablePath& p, const ScannedPath&) { return p.port_group; });
      break;
    case PgPolicy::kFailover:
      for (const TablePath& p : paths) {
        t.groups.push_back(TableGroup{{p}, 0, 0});
      }
      break;
    case PgPolicy::kMultibus:
      if (!paths.empty()) {
        t.groups.push_back(TableGroup{paths, 0, 0});
      }
      break;
    case PgPolicy::kGroupBySerial:
      t.groups = group_by(paths, scanned, [](const TablePath&, const ScannedPath& p) { return p.serial; });
      break;
    case PgPolicy::kGroupByNodeName:
      t.groups = group_by(paths, scanned, [](const TablePath&, const ScannedPath& p) { return p.target_node_name; });
      break;
    case PgPolicy::kGroupByPrio:
      t.groups = group_by(paths, scanned, [](const TablePath& p, const ScannedPath&) { return p.priority; });
      break;
  }
  // pgpolicies.c sort_pathgroups(): an insertion sort that moves a group
  // before those of lower priority, or of the same priority and fewer
  // enabled paths; stable otherwise.
  for (TableGroup& g : t.groups) {
    update_priority(g);
  }
  std::stable_sort(t.groups.begin(), t.groups.end(), [](const TableGroup& a, const TableGroup& b) {
    return a.priority > b.priority || (a.priority == b.priority && a.enabled_paths > b.enabled_paths);
  });
  t.initial_group = t.groups.empty() ? 0 : best_group(t.groups);
  t.selector = selector_of(s.path_selector, t.notes);
  if (t.groups.empty()) {
    return t;  // no usable path: no table
  }

  // Features: the kernel's from the setting, then ubdm's own.
  std::vector<std::string> features = kernel_features(s.features, t.notes);
  if (const auto& npr = s.no_path_retry.value) {
    features.emplace_back("no_path_retry");
    switch (npr->kind) {
      case NoPathRetry::Kind::kFail: features.emplace_back("fail"); break;
      case NoPathRetry::Kind::kQueue: features.emplace_back("queue"); break;
      case NoPathRetry::Kind::kRetries:
        if (npr->retries > kMaxNoPathRetry) {
          t.notes.push_back(fmt::format("no_path_retry {} is more than ubdm counts: {}", npr->retries,
                                        kMaxNoPathRetry));
        }
        features.push_back(std::to_string(std::clamp(npr->retries, 1U, kMaxNoPathRetry)));
        break;
    }
  }
  unsigned interval = std::max(1U, polling.polling_interval);
  if (interval > kMaxCheckInterval) {
    t.notes.push_back(
        fmt::format("polling_interval {} is more than ubdm's checker takes: {}", interval, kMaxCheckInterval));
    interval = kMaxCheckInterval;
  }
  features.emplace_back("path_check_interval");
  features.push_back(std::to_string(interval));
  switch (s.failback.value.kind) {
    case Failback::Kind::kManual: break;
    case Failback::Kind::kImmediate:
      features.emplace_back("failback");
      features.emplace_back("immediate");
      break;
    case Failback::Kind::kFollowover:
      t.notes.push_back(fmt::format("failback followover ({}): ubdm has only immediate and manual: manual",
                                    origin_name(s.failback.origin)));
      break;
    case Failback::Kind::kDeferred:
      t.notes.push_back(fmt::format("failback {} ({}): ubdm does not defer a failback: immediate",
                                    s.failback.value.seconds, origin_name(s.failback.origin)));
      features.emplace_back("failback");
      features.emplace_back("immediate");
      break;
  }
  if (s.hardware_handler.value != "0" && !s.hardware_handler.value.empty()) {
    t.notes.push_back(fmt::format("hardware_handler \"{}\" ({}): ubdm has no hardware handlers: none",
                                  s.hardware_handler.value, origin_name(s.hardware_handler.origin)));
  }

  std::string text = fmt::format("0 {} multipath {}", map.size_sectors, features.size());
  for (const std::string& f : features) {
    text += ' ';
    text += f;
  }
  text += fmt::format(" 0 {} {}", t.groups.size(), t.initial_group);
  for (const TableGroup& g : t.groups) {
    text += fmt::format(" {} {} 1", t.selector, g.paths.size());
    for (const TablePath& p : g.paths) {
      text += fmt::format(" {} {}", p.node, p.repeat_count);
    }
  }
  t.text = std::move(text);
  return t;
}

}  // namespace ubdm::discovery
