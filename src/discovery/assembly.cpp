// SPDX-License-Identifier: MIT
#include "discovery/assembly.hpp"

#include <algorithm>
#include <climits>

#include <fmt/format.h>

#include "ubdm/error.hpp"

namespace ubdm::discovery {

const char* name_source_name(PlannedMap::NameSource s) {
  switch (s) {
    case PlannedMap::NameSource::kAlias: return "alias";
    case PlannedMap::NameSource::kBinding: return "binding";
    case PlannedMap::NameSource::kNewBinding: return "new-binding";
    case PlannedMap::NameSource::kWwid: return "wwid";
  }
  return "?";
}

const char* left_out_reason_name(LeftOut::Reason r) {
  switch (r) {
    case LeftOut::Reason::kNoWwid: return "no-wwid";
    case LeftOut::Reason::kUsb: return "usb";
    case LeftOut::Reason::kBlacklisted: return "blacklisted";
    case LeftOut::Reason::kNotMultipathed: return "not-multipathed";
    case LeftOut::Reason::kSizeMismatch: return "size-mismatch";
    case LeftOut::Reason::kNoSize: return "no-size";
    case LeftOut::Reason::kBadName: return "bad-name";
    case LeftOut::Reason::kNameTaken: return "name-taken";
  }
  return "?";
}

namespace {

LunIdentity identity_of(const ScannedPath& p) {
  // multipathd matches NVMe devices entries without a revision
  // (discovery.c nvme_sysfs_pathinfo() passes none to find_hwe()).
  return LunIdentity{p.wwid, p.dev, p.vendor, p.product, p.kind == PathKind::kNvme ? "" : p.revision};
}

// An entry of one criterion's list, with where it came from for the log.
const Regex* first_match(const std::vector<Regex>& list, std::string_view subject) {
  for (const Regex& r : list) {
    if (r.matches(subject)) {
      return &r;
    }
  }
  return nullptr;
}

// blacklist.c match_reglist_device(): an entry matches if each of the
// fields it has matches (an entry with neither never does).
const DeviceMatch* first_device_match(const std::vector<DeviceMatch>& list, const ScannedPath& p) {
  for (const DeviceMatch& d : list) {
    if (!d.vendor && !d.product) {
      continue;
    }
    if ((!d.vendor || d.vendor->matches(p.vendor)) && (!d.product || d.product->matches(p.product))) {
      return &d;
    }
  }
  return nullptr;
}

std::string device_text(const DeviceMatch& d) {
  return fmt::format("vendor \"{}\" product \"{}\"", d.vendor ? d.vendor->text() : "",
                     d.product ? d.product->text() : "");
}

// ubdm's rules for a device's name and UUID (daemon/device_manager.cpp
// validate_name(), validate_uuid()): a map whose name or UUID breaks them
// could never be created.
std::string name_problem(const std::string& name, const std::string& uuid) {
  const auto printable = [](const std::string& s, bool slash_ok) {
    return std::none_of(s.begin(), s.end(), [&](char c) {
      return static_cast<unsigned char>(c) <= ' ' || c == 0x7f || (!slash_ok && c == '/');
    });
  };
  if (name.empty() || name.size() > 127 || name == "." || name == ".." || !printable(name, false)) {
    return fmt::format("'{}' cannot be a device name (1 to 127 printable characters, no '/' or space)", name);
  }
  if (uuid.size() > 128 || !printable(uuid, true)) {
    return fmt::format("'{}' cannot be a device UUID (at most 128 printable characters)", uuid);
  }
  return "";
}

}  // namespace

FilterVerdict filter_path(const Config& config, const ScannedPath& path, bool nvme_native_multipath) {
  const FilterList& bl = config.blacklist;
  const FilterList& el = config.blacklist_exceptions;
  // multipathd's built-in entries, kept apart so that the log can say so.
  static const Regex kDevnodeAll = Regex::compile("!^(sd[a-z]|dasd[a-z]|nvme[0-9])", Regex::Bang::kInverts);
  static const Regex kDevnodeNoNvme = Regex::compile("!^(sd[a-z]|dasd[a-z])", Regex::Bang::kInverts);
  static const Regex kPropertyException = Regex::compile("(SCSI_IDENT_|ID_WWN)", Regex::Bang::kInverts);
  const Regex& builtin_devnode = nvme_native_multipath ? kDevnodeNoNvme : kDevnodeAll;
  const auto blacklisted = [](std::string why) { return FilterVerdict{true, std::move(why)}; };

  // 1. udev properties (blacklist.c filter_property()): the first property
  // that an exception or a blacklist entry matches decides.
  if (path.udev_properties) {
    bool decided = false;
    for (const auto& [name, value] : *path.udev_properties) {
      if (first_match(el.property, name) != nullptr || kPropertyException.matches(name)) {
        decided = true;
        break;
      }
      if (const Regex* r = first_match(bl.property, name)) {
        return blacklisted(fmt::format("udev property {} matches blacklist property \"{}\"", name, r->text()));
      }
    }
    if (!decided) {
      const std::string uid = resolve_uid_attribute(config, identity_of(path)).value;
      const bool has_uid = !uid.empty() && std::any_of(path.udev_properties->begin(), path.udev_properties->end(),
                                                       [&](const auto& kv) { return kv.first == uid; });
      if (has_uid) {
        return blacklisted(fmt::format(
            "it has the udev property {} but none that blacklist_exceptions' property entries (built-in: "
            "\"{}\") accept",
            uid, kPropertyException.text()));
      }
    }
  }
  // 2. device node name.
  if (first_match(el.devnode, path.dev) == nullptr) {
    if (const Regex* r = first_match(bl.devnode, path.dev)) {
      return blacklisted(fmt::format("devnode \"{}\"", r->text()));
    }
    if (builtin_devnode.matches(path.dev)) {
      return blacklisted(fmt::format("the built-in devnode \"{}\"", builtin_devnode.text()));
    }
  }
  // 3. vendor and product, product_blacklist included.
  if (first_device_match(el.device, path) == nullptr) {
    if (const DeviceMatch* d = first_device_match(bl.device, path)) {
      return blacklisted(fmt::format("blacklist device {}", device_text(*d)));
    }
    for (const DeviceEntry& e : config.devices) {
      if (!e.product_blacklist || !e.vendor) {
        continue;
      }
      // blacklist.c setup_default_blist() makes the entry's vendor a
      // blacklist expression: there a leading '!' inverts.
      std::optional<Regex> vendor;
      try {
        vendor = Regex::compile(e.vendor->text(), Regex::Bang::kInverts);
      } catch (const Error&) {
        continue;  // valid only with its leading "!" taken as text: no blacklist entry
      }
      if (vendor->matches(path.vendor) && e.product_blacklist->matches(path.product)) {
        return blacklisted(fmt::format("product_blacklist \"{}\" of the devices entry on line {}",
                                       e.product_blacklist->text(), e.line));
      }
    }
  }
  // 4. protocol.
  if (first_match(el.protocol, path.protocol) == nullptr) {
    if (const Regex* r = first_match(bl.protocol, path.protocol)) {
      return blacklisted(fmt::format("protocol {} matches \"{}\"", path.protocol, r->text()));
    }
  }
  // 5. WWID.
  if (!path.wwid.empty() && first_match(el.wwid, path.wwid) == nullptr) {
    if (const Regex* r = first_match(bl.wwid, path.wwid)) {
      return blacklisted(fmt::format("wwid \"{}\"", r->text()));
    }
  }
  return FilterVerdict{};
}

FindDecision decide_find_multipaths(FindMultipaths mode, std::size_t path_count, bool in_wwids_file,
                                    bool has_map) {
  if (has_map) {
    return {true, "a map for this WWID exists"};
  }
  switch (mode) {
    case FindMultipaths::kOff:
    case FindMultipaths::kGreedy:
      return {true, fmt::format("find_multipaths {} takes every WWID that is not blacklisted",
                                find_multipaths_name(mode))};
    case FindMultipaths::kStrict:
      if (in_wwids_file) {
        return {true, "the wwids file lists it"};
      }
      return {false, "find_multipaths strict: the wwids file does not list it"};
    case FindMultipaths::kOn:
    case FindMultipaths::kSmart:
      if (in_wwids_file) {
        return {true, "the wwids file lists it"};
      }
      if (path_count >= 2) {
        return {true, fmt::format("{} paths have it", path_count)};
      }
      return {false, fmt::format("find_multipaths {}: one path only, and the wwids file does not list it",
                                 find_multipaths_name(mode))};
  }
  return {false, "?"};
}

namespace {

class Assembler {
 public:
  Assembler(const Config& config, const SysfsScan& scan, const Bindings& bindings, const KnownState& known,
            const AssemblyOptions& options)
      : config_(config), scan_(scan), known_(known), options_(options) {
    out_.bindings = bindings;
  }

  Assembly run() {
    merge_config_aliases();
    // Paths that pass 1-3, grouped by WWID in order of first appearance.
    std::vector<std::string> order;
    std::map<std::string, std::vector<const ScannedPath*>> groups;
    const bool allow_usb = config_.defaults.allow_usb_devices.value_or(false);
    for (const ScannedPath& p : scan_.paths) {
      if (p.wwid.empty()) {
        leave(p, LeftOut::Reason::kNoWwid, "sysfs gives no WWID for it");
        continue;
      }
      if (p.protocol == "scsi:usb" && !allow_usb) {
        leave(p, LeftOut::Reason::kUsb, "a USB disk, and allow_usb_devices is no");
        continue;
      }
      const FilterVerdict v = filter_path(config_, p, scan_.nvme_native_multipath);
      if (v.blacklisted) {
        leave(p, LeftOut::Reason::kBlacklisted, "blacklisted: " + v.why);
        continue;
      }
      auto& g = groups[p.wwid];
      if (g.empty()) {
        order.push_back(p.wwid);
      }
      g.push_back(&p);
    }
    const FindMultipaths mode = resolve_find_multipaths(config_);
    for (const std::string& wwid : order) {
      plan(wwid, groups[wwid], mode);
    }
    return std::move(out_);
  }

 private:
  // The multipaths aliases join the bindings (alias.c
  // check_alias_settings()): a line of the file that gives such an alias to
  // another WWID is dropped.
  void merge_config_aliases() {
    for (const MultipathEntry& e : config_.multipaths) {
      if (!e.alias) {
        continue;
      }
      if (const Binding* b = out_.bindings.for_alias(*e.alias); b != nullptr && b->wwid != e.wwid) {
        out_.notes.push_back(fmt::format("bindings: {} {} conflicts with the multipaths alias of {}: dropped",
                                         *e.alias, b->wwid, e.wwid));
        out_.bindings.remove_alias(*e.alias);
        out_.bindings_changed = true;
      }
      out_.bindings.add(*e.alias, e.wwid);
    }
  }

  void plan(const std::string& wwid, const std::vector<const ScannedPath*>& paths, FindMultipaths mode) {
    PlannedMap m;
    m.wwid = wwid;
    m.uuid = "mpath-" + wwid;
    for (const auto& [name, w] : known_.devices) {
      if (w == wwid) {
        m.current_name = name;
        break;
      }
    }
    const bool in_file = std::find(known_.wwids.begin(), known_.wwids.end(), wwid) != known_.wwids.end();
    const FindDecision d = decide_find_multipaths(mode, paths.size(), in_file, m.current_name.has_value());
    if (!d.take) {
      leave_all(paths, LeftOut::Reason::kNotMultipathed, d.why);
      return;
    }
    m.why = d.why;

    // The map takes the size of its first path that has one; a path of
    // another size means the WWID is not one LUN's.
    for (const ScannedPath* p : paths) {
      if (p->size_sectors != 0 && m.size_sectors == 0) {
        m.size_sectors = p->size_sectors;
      }
    }
    if (m.size_sectors == 0) {
      leave_all(paths, LeftOut::Reason::kNoSize, "no path of this WWID reports a size");
      return;
    }
    for (const ScannedPath* p : paths) {
      if (p->size_sectors != 0 && p->size_sectors != m.size_sectors) {
        leave_all(paths, LeftOut::Reason::kSizeMismatch,
                  fmt::format("its paths disagree on the size ({} has {} sectors, {} has {}): no map", paths[0]->dev,
                              m.size_sectors, p->dev, p->size_sectors));
        return;
      }
    }

    m.settings = resolve_settings(config_, identity_of(*paths[0]));
    name_map(m);
    if (const std::string why = name_problem(m.name, m.uuid); !why.empty()) {
      leave_all(paths, LeftOut::Reason::kBadName, why);
      return;
    }
    if (const std::optional<std::string> other = holder_of(m.name, wwid)) {
      leave_all(paths, LeftOut::Reason::kNameTaken,
                other->empty() ? fmt::format("the name {} is taken by a device that is not a multipath map", m.name)
                               : fmt::format("the name {} is taken by the map of {}", m.name, *other));
      return;
    }
    for (const ScannedPath* p : paths) {
      m.paths.push_back(*p);
    }
    if (!in_file) {
      out_.new_wwids.push_back(wwid);
    }
    planned_names_[m.name] = wwid;
    out_.maps.push_back(std::move(m));
  }

  // Who else holds `name`: the WWID of another map (or "" for a device that
  // is no multipath map), nullopt if it is free for `wwid`.
  std::optional<std::string> holder_of(const std::string& name, const std::string& wwid) const {
    if (auto it = known_.devices.find(name); it != known_.devices.end() && it->second != wwid) {
      return it->second;
    }
    if (auto it = planned_names_.find(name); it != planned_names_.end() && it->second != wwid) {
      return it->second;
    }
    return std::nullopt;
  }

  // propsel.c select_alias() and alias.c get_user_friendly_alias(), with
  // the map's current name in the role of multipathd's alias_old.
  void name_map(PlannedMap& m) {
    using NS = PlannedMap::NameSource;
    if (m.settings.alias) {
      m.name = *m.settings.alias;
      m.name_source = NS::kAlias;
      return;
    }
    m.name = m.wwid;
    m.name_source = NS::kWwid;
    if (!m.settings.user_friendly_names.value) {
      return;
    }
    const std::string& prefix = m.settings.alias_prefix.value;
    std::optional<unsigned> id;
    if (m.current_name) {
      const Binding* b = out_.bindings.for_alias(*m.current_name);
      if (b != nullptr && b->wwid == m.wwid) {
        m.name = *m.current_name;  // the binding and the map agree
        m.name_source = NS::kBinding;
        return;
      }
      if (b != nullptr) {
        out_.notes.push_back(fmt::format("{}: its map is named {}, but the bindings give that name to {}", m.wwid,
                                         *m.current_name, b->wwid));
      } else {
        id = friendly_id(*m.current_name, prefix);  // a friendly name of ours: keep it
      }
    }
    if (const Binding* b = out_.bindings.for_wwid(m.wwid)) {
      // The WWID's binding, unless another WWID's device holds that name:
      // then no friendly name (multipathd tries no other binding).
      if (!holder_of(b->alias, m.wwid)) {
        m.name = b->alias;
        m.name_source = NS::kBinding;
      } else {
        out_.notes.push_back(fmt::format("{}: its bound name {} is taken by another device: named by its WWID",
                                         m.wwid, b->alias));
      }
      return;
    }
    if (!id) {
      id = free_id(prefix, m.wwid);
    }
    if (!id) {
      out_.notes.push_back(fmt::format("{}: no user-friendly name with prefix '{}' is left", m.wwid, prefix));
      return;
    }
    if (options_.bindings_read_only) {
      out_.notes.push_back(fmt::format("{}: would be {}, but the bindings are read-only: named by its WWID", m.wwid,
                                       friendly_name(prefix, *id)));
      return;
    }
    const std::string alias = friendly_name(prefix, *id);
    if (out_.bindings.add(alias, m.wwid) != Bindings::Add::kAdded) {
      return;  // cannot happen: free_id() skips bound ids
    }
    out_.bindings_changed = true;
    m.name = alias;
    m.name_source = NS::kNewBinding;
  }

  // alias.c get_free_id(): walking the bindings in order, the first id that
  // no binding with this prefix holds and whose name no other WWID's device
  // has; else the one after the last.
  std::optional<unsigned> free_id(const std::string& prefix, const std::string& wwid) const {
    const auto taken = [&](unsigned n) { return holder_of(friendly_name(prefix, n), wwid).has_value(); };
    unsigned long long id = 1;
    for (const Binding& b : out_.bindings.entries()) {
      const std::optional<unsigned> cur = friendly_id(b.alias, prefix);
      if (!cur) {
        continue;
      }
      while (id < *cur && taken(static_cast<unsigned>(id))) {
        ++id;
      }
      if (id < *cur) {
        return static_cast<unsigned>(id);
      }
      id = std::max<unsigned long long>(id, *cur) + 1;
    }
    for (; id <= static_cast<unsigned long long>(INT_MAX); ++id) {
      if (!taken(static_cast<unsigned>(id))) {
        return static_cast<unsigned>(id);
      }
    }
    return std::nullopt;
  }

  void leave(const ScannedPath& p, LeftOut::Reason r, std::string why) {
    out_.left_out.push_back(LeftOut{p.dev, p.wwid, r, std::move(why)});
  }

  void leave_all(const std::vector<const ScannedPath*>& paths, LeftOut::Reason r, const std::string& why) {
    for (const ScannedPath* p : paths) {
      leave(*p, r, why);
    }
  }

  const Config& config_;
  const SysfsScan& scan_;
  const KnownState& known_;
  const AssemblyOptions& options_;
  Assembly out_;
  std::map<std::string, std::string> planned_names_;  // name -> WWID, this assembly's
};

}  // namespace

Assembly assemble_maps(const Config& config, const SysfsScan& scan, const Bindings& bindings, const KnownState& known,
                       const AssemblyOptions& options) {
  Assembly a = Assembler(config, scan, bindings, known, options).run();
  // left_out in scan order, whatever step left each path out.
  std::map<std::string, std::size_t> rank;
  for (std::size_t i = 0; i < scan.paths.size(); ++i) {
    rank.emplace(scan.paths[i].dev, i);
  }
  std::stable_sort(a.left_out.begin(), a.left_out.end(),
                   [&](const LeftOut& x, const LeftOut& y) { return rank[x.dev] < rank[y.dev]; });
  return a;
}

}  // namespace ubdm::discovery
