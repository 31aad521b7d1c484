// SPDX-License-Identifier: MIT
#include "discovery/sysfs_paths.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "ubdm/error.hpp"

namespace ubdm::discovery {

namespace fs = std::filesystem;

namespace {

// multipathd keeps WWIDs in WWID_SIZE (128) bytes: 127 characters.
constexpr std::size_t kMaxWwid = 127;

std::optional<std::string> read_attr_raw(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) {
    return std::nullopt;
  }
  std::stringstream s;
  s << in.rdbuf();
  if (in.bad()) {
    return std::nullopt;
  }
  return s.str();
}

std::string rtrim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())) != 0) {
    s.pop_back();
  }
  return s;
}

// A text attribute with its trailing blanks and newline cut, as libudev's
// sysattr values and discovery.c's sysfs_get_*() readers give them.
std::optional<std::string> read_attr(const fs::path& p) {
  auto raw = read_attr_raw(p);
  if (!raw) {
    return std::nullopt;
  }
  return rtrim(std::move(*raw));
}

std::vector<std::uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

template <typename T>
bool parse_int(std::string_view s, T& out) {
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

// "%d:%d:%d:%llu" over a whole name.
std::optional<ScsiAddress> parse_hctl(std::string_view name) {
  ScsiAddress a;
  std::size_t parts[3];
  std::size_t from = 0;
  for (std::size_t& p : parts) {
    p = name.find(':', from);
    if (p == std::string_view::npos) {
      return std::nullopt;
    }
    from = p + 1;
  }
  if (!parse_int(name.substr(0, parts[0]), a.host) ||
      !parse_int(name.substr(parts[0] + 1, parts[1] - parts[0] - 1), a.channel) ||
      !parse_int(name.substr(parts[1] + 1, parts[2] - parts[1] - 1), a.target) ||
      !parse_int(name.substr(parts[2] + 1), a.lun)) {
    return std::nullopt;
  }
  return a;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool starts_with_number(std::string_view name, std::string_view prefix) {
  return name.size() > prefix.size() && name.substr(0, prefix.size()) == prefix &&
         std::isdigit(static_cast<unsigned char>(name[prefix.size()])) != 0;
}

// sd followed by letters only: whole SCSI disks (partitions are not under
// /sys/block).
bool is_scsi_disk(std::string_view name) {
  return name.size() > 2 && name.substr(0, 2) == "sd" &&
         std::all_of(name.begin() + 2, name.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

// nvme<controller>n<namespace>: a namespace disk. Native multipath's
// hidden per-controller disks are nvme<subsys>c<ctrl>n<ns> and do not match.
std::optional<std::pair<int, int>> parse_nvme_name(std::string_view name) {
  if (name.substr(0, 4) != "nvme") {
    return std::nullopt;
  }
  const std::string_view rest = name.substr(4);
  const std::size_t n = rest.find('n');
  if (n == std::string_view::npos) {
    return std::nullopt;
  }
  int ctrl = 0;
  int ns = 0;
  if (!all_digits(rest.substr(0, n)) || !all_digits(rest.substr(n + 1)) || !parse_int(rest.substr(0, n), ctrl) ||
      !parse_int(rest.substr(n + 1), ns)) {
    return std::nullopt;
  }
  return std::pair{ctrl, ns};
}

std::string link_basename(const fs::path& link) {
  std::error_code ec;
  const fs::path target = fs::read_symlink(link, ec);
  return ec ? std::string() : target.filename().string();
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// T10 vendor identification text into multipathd's form: "1", then the
// text with every run of spaces one '_' (a leading run too, a trailing one
// dropped), cut at a NUL (discovery.c parse_vpd_pg83(), designator type 1).
std::string t10_wwid(std::string_view text) {
  std::string out = "1";
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t sp = text.find(' ', i);
    if (sp == std::string_view::npos) {
      out.append(text.substr(i));
      break;
    }
    out.append(text.substr(i, sp - i));
    i = sp;
    while (i < text.size() && text[i] == ' ') {
      ++i;
    }
    if (i < text.size()) {
      out += '_';
    }
  }
  return out.substr(0, out.find('\0'));
}

std::string cap_wwid(std::string s) {
  if (s.size() > kMaxWwid) {
    s.resize(kMaxWwid);
  }
  return s;
}

// SCSI transport and target node name, from where the SCSI device sits in
// the device tree (discovery.c sysfs_get_tgt_nodename(): SAS, USB, FC,
// iSCSI, ATA, in that order).
void scsi_transport(const fs::path& root, const fs::path& device, ScannedPath& p) {
  const fs::path target = device.parent_path();
  std::vector<fs::path> ancestors;  // from the target up to the sysfs root
  for (fs::path a = target; !a.empty() && a != root && a != a.root_path(); a = a.parent_path()) {
    ancestors.push_back(a);
  }
  const auto named = [&](std::string_view prefix) -> std::optional<fs::path> {
    for (const fs::path& a : ancestors) {
      if (starts_with_number(a.filename().string(), prefix)) {
        return a;
      }
    }
    return std::nullopt;
  };

  if (auto sas = read_attr(device / "sas_address")) {
    if (named("end_device-")) {
      p.protocol = "scsi:sas";
      p.target_node_name = *sas;
      return;
    }
  }
  for (const fs::path& a : ancestors) {
    if (link_basename(a / "subsystem") == "usb") {
      p.protocol = "scsi:usb";
      p.target_node_name = a.filename().string();
      return;
    }
  }
  const std::string rport = target.parent_path().filename().string();
  if (starts_with_number(rport, "rport-")) {
    p.protocol = "scsi:fcp";
    p.target_node_name = read_attr(root / "class" / "fc_remote_ports" / rport / "node_name").value_or("");
    return;
  }
  if (auto session = named("session")) {
    p.protocol = "scsi:iscsi";
    const std::string name = session->filename().string();
    p.target_node_name = read_attr(root / "class" / "iscsi_session" / name / "targetname").value_or("");
    return;
  }
  if (auto ata = named("ata")) {
    p.protocol = "scsi:ata";
    p.target_node_name = fmt::format("ata-{}.00", ata->filename().string().substr(3));
    return;
  }
  p.protocol = "scsi:unspec";
}

// Returns why the device is skipped, or "".
std::string scsi_info(const fs::path& root, const fs::path& dir, ScannedPath& p) {
  std::error_code ec;
  const fs::path device = fs::canonical(dir / "device", ec);
  if (ec) {
    return "it has no SCSI device in sysfs (no 'device' link)";
  }
  p.address = parse_hctl(device.filename().string());
  if (!p.address) {
    return fmt::format("its SCSI device '{}' is not named host:channel:target:lun", device.filename().string());
  }
  // discovery.c scsi_sysfs_pathinfo(): a missing field reads "UNKNOWN".
  p.vendor = read_attr(device / "vendor").value_or("UNKNOWN");
  p.product = read_attr(device / "model").value_or("UNKNOWN");
  p.revision = read_attr(device / "rev").value_or("UNKNOWN");
  p.state = read_attr(device / "state").value_or("");
  if (auto pg80 = read_attr_raw(device / "vpd_pg80")) {
    p.serial = serial_from_vpd_pg80(bytes_of(*pg80));
  }
  if (auto pg83 = read_attr_raw(device / "vpd_pg83")) {
    p.wwid = wwid_from_vpd_pg83(bytes_of(*pg83));
    if (!p.wwid.empty()) {
      p.wwid_source = "vpd_pg83";
    }
  }
  if (p.wwid.empty()) {
    if (auto w = read_attr_raw(device / "wwid")) {
      p.wwid = wwid_from_scsi_sysfs(*w);
      if (!p.wwid.empty()) {
        p.wwid_source = "wwid";
      }
    }
  }
  scsi_transport(root, device, p);
  return "";
}

std::string nvme_info(const fs::path& dir, std::pair<int, int> name, ScannedPath& p) {
  std::error_code ec;
  const fs::path ctrl = fs::canonical(dir / "device", ec);
  if (ec) {
    return "it has no NVMe controller in sysfs (no 'device' link)";
  }
  // With native NVMe multipath the namespace disk hangs off its subsystem,
  // not a controller: the kernel is its multipath layer.
  const std::string subsystem = link_basename(ctrl / "subsystem");
  if (!subsystem.empty() && subsystem != "nvme") {
    return fmt::format("its parent is an {}, not a controller: the kernel's native NVMe multipath serves it",
                       subsystem);
  }
  p.vendor = "NVME";  // discovery.c nvme_sysfs_pathinfo(): a fixed label
  p.product = read_attr(ctrl / "model").value_or("");
  p.serial = read_attr(ctrl / "serial").value_or("");
  p.revision = read_attr(ctrl / "firmware_rev").value_or("");
  p.state = read_attr(ctrl / "state").value_or("");
  ScsiAddress a;
  a.host = name.first;
  a.target = name.second;
  a.channel = 0;
  if (auto c = read_attr(ctrl / "cntlid")) {
    (void)parse_int(std::string_view(*c), a.channel);
  }
  if (auto n = read_attr(dir / "nsid")) {
    (void)parse_int(std::string_view(*n), a.lun);
  }
  p.address = a;
  static constexpr const char* kTransports[] = {"pcie", "rdma", "fc", "tcp", "loop", "apple-nvme"};
  const std::string transport = read_attr(ctrl / "transport").value_or("");
  p.protocol = std::any_of(std::begin(kTransports), std::end(kTransports),
                           [&](const char* t) { return transport == t; })
                   ? "nvme:" + transport
                   : "nvme:unspec";
  if (auto w = read_attr_raw(dir / "wwid")) {
    p.wwid = wwid_from_nvme_sysfs(*w);
    if (!p.wwid.empty()) {
      p.wwid_source = "wwid";
    }
  }
  return "";
}

std::optional<std::vector<std::pair<std::string, std::string>>> udev_properties(const std::string& dir,
                                                                                unsigned major, unsigned minor) {
  if (dir.empty()) {
    return std::nullopt;
  }
  auto text = read_attr_raw(fs::path(dir) / fmt::format("b{}:{}", major, minor));
  if (!text) {
    return std::nullopt;
  }
  std::vector<std::pair<std::string, std::string>> props;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() < 2 || line.compare(0, 2, "E:") != 0) {
      continue;
    }
    const std::size_t eq = line.find('=', 2);
    if (eq == std::string::npos) {
      continue;
    }
    props.emplace_back(line.substr(2, eq - 2), line.substr(eq + 1));
  }
  return props;
}

}  // namespace

const char* path_kind_name(PathKind k) { return k == PathKind::kScsi ? "scsi" : "nvme"; }

bool natural_less(std::string_view a, std::string_view b) {
  std::size_t i = 0;
  std::size_t j = 0;
  const auto run = [](std::string_view s, std::size_t from) {
    const bool digit = std::isdigit(static_cast<unsigned char>(s[from])) != 0;
    std::size_t e = from;
    while (e < s.size() && (std::isdigit(static_cast<unsigned char>(s[e])) != 0) == digit) {
      ++e;
    }
    return std::pair{s.substr(from, e - from), digit};
  };
  while (i < a.size() && j < b.size()) {
    const auto [ra, da] = run(a, i);
    const auto [rb, db] = run(b, j);
    if (da && db) {
      const std::string_view na = ra.substr(std::min(ra.find_first_not_of('0'), ra.size()));
      const std::string_view nb = rb.substr(std::min(rb.find_first_not_of('0'), rb.size()));
      if (na.size() != nb.size()) {
        return na.size() < nb.size();
      }
      if (na != nb) {
        return na < nb;
      }
    } else if (!da && !db && ra[0] == rb[0] && ra.size() != rb.size()) {
      // Letters of one family: shorter first, "sdz" < "sdaa", as the
      // kernel numbers disks; families ("nvme", "sd") alphabetically.
      return ra.size() < rb.size();
    } else if (ra != rb) {
      return ra < rb;
    }
    i += ra.size();
    j += rb.size();
  }
  return a.size() - i < b.size() - j;
}

std::string wwid_from_vpd_pg83(std::span<const std::uint8_t> page) {
  if (page.size() < 4 || page[1] != 0x83) {
    return "";
  }
  const std::size_t len = std::min<std::size_t>((std::size_t{page[2]} << 8 | page[3]) + 4, page.size());
  std::size_t best = 0;
  int best_prio = -1;
  for (std::size_t d = 4; d + 4 <= len;) {
    const std::uint8_t assoc = page[d + 1] & 0x30;
    const std::uint8_t type = page[d + 1] & 0x0f;
    const std::size_t dlen = page[d + 3];
    bool invalid = false;
    int prio = -1;
    if (assoc == 0x30) {
      invalid = true;  // reserved association
    } else if (assoc == 0x00) {  // the designator names the LUN
      switch (type) {
        case 0x3: {  // NAA: the kind in the high nibble of its first byte
          const int naa = d + 4 < len ? page[d + 4] >> 4 : -1;
          std::size_t good = 0;
          switch (naa) {
            case 6:  // IEEE Registered Extended
              prio = 8;
              good = 16;
              break;
            case 5:  // IEEE Registered
              prio = 7;
              good = 8;
              break;
            case 2:  // IEEE Extended
              prio = 6;
              good = 8;
              break;
            case 3:  // locally assigned
              prio = 1;
              good = 8;
              break;
            default: break;
          }
          invalid = good == 0 || good != dlen;
          break;
        }
        case 0x2:  // EUI-64 based
          invalid = dlen != 8 && dlen != 12 && dlen != 16;
          prio = 4;
          break;
        case 0x8: {  // SCSI name string
          const std::string_view head =
              d + 8 <= len ? std::string_view(reinterpret_cast<const char*>(page.data() + d + 4), 4) : "";
          invalid = dlen < 4 || (head != "eui." && head != "naa." && head != "iqn.");
          prio = 3;
          break;
        }
        case 0x1:  // T10 vendor identification
          invalid = dlen < 8;
          prio = 2;
          break;
        case 0x6: invalid = dlen != 4; break;   // logical unit group
        case 0x7: invalid = dlen != 16; break;  // MD5 logical unit
        case 0x0:                               // vendor specific
        case 0xa: break;                        // UUID: not used
        default: invalid = true; break;
      }
    }
    if (d + dlen + 4 > len) {
      break;  // runs past the page: stop here
    }
    if (!invalid && prio > best_prio) {
      best = d;
      best_prio = prio;
    }
    d += dlen + 4;
  }
  if (best_prio <= 0) {
    return "";
  }
  const std::uint8_t type = page[best + 1] & 0x0f;
  const std::size_t dlen = std::min<std::size_t>(page[best + 3], kMaxWwid + 1);
  const auto* data = page.data() + best + 4;
  std::string out;
  if (type == 0x2 || type == 0x3) {
    out = std::to_string(type);
    for (std::size_t i = 0; i < dlen; ++i) {
      out += fmt::format("{:02x}", data[i]);
    }
  } else if (type == 0x8) {
    const std::string text(reinterpret_cast<const char*>(data), dlen);
    const std::string prefix = text.substr(0, 4);
    std::string rest = text.substr(4);
    rest = rest.substr(0, rest.find('\0'));  // the designator is NUL-padded
    if (prefix == "eui.") {
      out = "2" + lower(rest);
    } else if (prefix == "naa.") {
      out = "3" + lower(rest);
    } else {
      out = "8" + rest;
    }
  } else {  // 0x1
    out = t10_wwid(std::string_view(reinterpret_cast<const char*>(data), dlen));
  }
  return cap_wwid(std::move(out));
}

std::string wwid_from_scsi_sysfs(std::string_view attr) {
  std::string s(attr);
  // Trailing blanks, and the kernel's escaped NUL padding ("\0" from %pE).
  for (bool cut = true; cut;) {
    cut = false;
    s = rtrim(std::move(s));
    if (s.size() >= 2 && s.compare(s.size() - 2, 2, "\\0") == 0) {
      s.resize(s.size() - 2);
      cut = true;
    }
  }
  if (s.size() <= 4) {
    return "";
  }
  const std::string prefix = s.substr(0, 4);
  const std::string rest = s.substr(4);
  if (prefix == "naa.") {
    return cap_wwid("3" + lower(rest));
  }
  if (prefix == "eui.") {
    return cap_wwid("2" + lower(rest));
  }
  if (prefix == "t10.") {
    return cap_wwid(t10_wwid(rest));
  }
  if (prefix == "iqn.") {
    return cap_wwid("8" + rest);
  }
  return "";  // not a form the kernel writes: leave it to a VPD inquiry
}

std::string wwid_from_nvme_sysfs(std::string_view attr) {
  std::string s = rtrim(std::string(attr));
  if (s.size() <= kMaxWwid) {
    return s;
  }
  // "nvme.VVVV-SERIAL-MODEL-NSID" with SERIAL and MODEL hex-encoded and
  // padded with "00": drop the padding of both.
  std::string m = s;
  const auto hex4 = [&] {
    return std::all_of(m.begin() + 5, m.begin() + 9,
                       [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
  };
  // Cut "00" pairs right before position `end`, returning the new end.
  const auto strip_zeroes = [&](std::size_t end) {
    std::size_t p = end;
    while (p >= 2 && m[p - 1] == '0' && m[p - 2] == '0') {
      p -= 2;
    }
    m.erase(p, end - p);
    return p;
  };
  if (m.size() >= 10 && m.compare(0, 5, "nvme.") == 0 && m[9] == '-' && hex4()) {
    const std::size_t model_end = m.rfind('-');
    const std::size_t p = strip_zeroes(model_end);
    const std::size_t serial_end = p > 0 ? m.rfind('-', p - 1) : std::string::npos;
    if (serial_end != std::string::npos && serial_end > 0 && m.rfind('-', serial_end - 1) == 9) {
      strip_zeroes(serial_end);
      if (m.size() <= kMaxWwid) {
        return m;
      }
    }
  }
  return cap_wwid(std::move(s));
}

std::string serial_from_vpd_pg80(std::span<const std::uint8_t> page) {
  if (page.size() < 4 || page[1] != 0x80) {
    return "";
  }
  std::size_t len = std::min<std::size_t>(std::size_t{page[2]} << 8 | page[3], kMaxWwid + 1);
  len = std::min(len, page.size() - 4);
  std::string s(reinterpret_cast<const char*>(page.data() + 4), len);
  s = s.substr(0, s.find('\0'));
  const std::size_t b = s.find_first_not_of(' ');
  if (b == std::string::npos) {
    return "";
  }
  return s.substr(b, s.find_last_not_of(' ') - b + 1);
}

SysfsScan scan_sysfs(const ScanOptions& options) {
  std::error_code ec;
  // Canonical, so that walking up from a device's real path meets it.
  fs::path root = fs::canonical(options.sysfs_root, ec);
  if (ec) {
    root = options.sysfs_root;
  }
  const fs::path block = root / "block";
  std::vector<std::string> names;
  for (fs::directory_iterator it(block, ec), end; !ec && it != end; it.increment(ec)) {
    names.push_back(it->path().filename().string());
  }
  if (ec) {
    fail(ec.value() != 0 ? ec.value() : ENOENT, "cannot list the block devices in {}: {}", block.string(),
         ec.message());
  }
  std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) { return natural_less(a, b); });

  SysfsScan scan;
  const auto native = read_attr(root / "module" / "nvme_core" / "parameters" / "multipath");
  scan.nvme_native_multipath = native && !native->empty() && (*native)[0] == 'Y';

  for (const std::string& name : names) {
    const auto nvme = parse_nvme_name(name);
    if (!is_scsi_disk(name) && !nvme) {
      scan.skipped.push_back({name, "not a SCSI disk or an NVMe namespace"});
      continue;
    }
    const fs::path dir = block / name;
    ScannedPath p;
    p.dev = name;
    p.kind = nvme ? PathKind::kNvme : PathKind::kScsi;
    if (read_attr(dir / "hidden").value_or("0") == "1") {
      scan.skipped.push_back({name, "sysfs marks it hidden"});
      continue;
    }
    const auto dev = read_attr(dir / "dev");
    const std::size_t colon = dev ? dev->find(':') : std::string::npos;
    if (colon == std::string::npos || !parse_int(std::string_view(*dev).substr(0, colon), p.major) ||
        !parse_int(std::string_view(*dev).substr(colon + 1), p.minor)) {
      scan.skipped.push_back({name, "its device number (dev) is unreadable"});
      continue;
    }
    const auto size = read_attr(dir / "size");
    if (!size || !parse_int(std::string_view(*size), p.size_sectors)) {
      scan.skipped.push_back({name, "its size is unreadable"});
      continue;
    }
    p.removable = read_attr(dir / "removable").value_or("0") == "1";
    p.read_only = read_attr(dir / "ro").value_or("0") == "1";
    const std::string why = nvme ? nvme_info(dir, *nvme, p) : scsi_info(root, dir, p);
    if (!why.empty()) {
      scan.skipped.push_back({name, why});
      continue;
    }
    p.udev_properties = udev_properties(options.udev_data_dir, p.major, p.minor);
    scan.paths.push_back(std::move(p));
  }
  return scan;
}

}  // namespace ubdm::discovery
