// SPDX-License-Identifier: MIT
// The candidate paths of multipath maps, as sysfs shows them: every SCSI
// disk (sd*) and NVMe namespace (nvme*n*) under SYSFS/block, with what
// multipathd reads of each (libmultipath/discovery.c sysfs_pathinfo() and
// get_uid()). The sysfs root is an argument: "/sys" in ubdmd, a directory
// tree in the tests. Reading only: no device is opened, nothing is sent to
// a disk (an SG_IO inquiry is the caller's, for a SCSI disk sysfs gives no
// WWID for).
//
// What this scan leaves out, and why (each with a SkippedDevice line):
//  * block devices that are neither SCSI disks nor NVMe namespaces (dm-,
//    loop, md, sr, vd, nvme controllers' hidden per-path disks...): ubdm
//    takes only these two kinds, and multipathd's built-in devnode
//    blacklist already refuses the others;
//  * disks sysfs marks hidden (libmultipath/discovery.c pathinfo());
//  * NVMe namespace heads whose parent is an nvme-subsystem rather than a
//    controller: the kernel's native multipath owns them (multipathd's
//    nvme_sysfs_pathinfo() skips them the same way);
//  * devices whose dev or size attribute cannot be read (gone meanwhile).
// Blacklists, USB, find_multipaths and everything configurable are the
// assembly's (assembly.hpp): the scan reports, it does not judge.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ubdm::discovery {

enum class PathKind : std::uint8_t { kScsi, kNvme };
const char* path_kind_name(PathKind k);

// SCSI's host:channel:target:lun. For NVMe, as multipathd fills its sg_id:
// host = the controller's instance (nvmeX), channel = its cntlid, target =
// the namespace's instance (nYY), lun = the nsid.
struct ScsiAddress {
  int host = -1;
  int channel = -1;
  int target = -1;
  std::uint64_t lun = 0;
  bool operator==(const ScsiAddress&) const = default;
};

struct ScannedPath {
  std::string dev;  // "sdb", "nvme0n1"
  PathKind kind = PathKind::kScsi;
  unsigned major = 0;
  unsigned minor = 0;
  std::uint64_t size_sectors = 0;  // 512-byte sectors, as sysfs `size`
  // The WWID as multipathd writes it, "" when sysfs gives none;
  // wwid_source says where it came from ("vpd_pg83", "wwid").
  std::string wwid;
  std::string wwid_source;
  // SCSI: INQUIRY's vendor/model/rev with trailing blanks cut ("UNKNOWN"
  // when missing, as multipathd). NVMe: "NVME", the controller's model and
  // firmware revision.
  std::string vendor;
  std::string product;
  std::string revision;
  std::string serial;  // SCSI: VPD page 0x80 if sysfs has it; NVMe: the controller's
  std::optional<ScsiAddress> address;
  // multipathd's protocol name: scsi:fcp, scsi:iscsi, scsi:sas, scsi:ata,
  // scsi:usb, scsi:unspec, nvme:pcie, nvme:tcp, nvme:rdma, nvme:fc,
  // nvme:loop, nvme:apple-nvme, nvme:unspec.
  std::string protocol;
  // The target's name on its transport where sysfs has it: FC node name,
  // iSCSI target name, SAS address (group_by_node_name's key).
  std::string target_node_name;
  std::string state;  // the SCSI device's or NVMe controller's `state` ("running", "live", ...)
  bool removable = false;
  bool read_only = false;
  // The device's udev properties, in udev's order, when the scan was given
  // udev's database and it has an entry for the device (the property
  // blacklist needs them); nullopt otherwise.
  std::optional<std::vector<std::pair<std::string, std::string>>> udev_properties;
};

struct SkippedDevice {
  std::string dev;
  std::string why;
};

struct SysfsScan {
  std::vector<ScannedPath> paths;  // in natural name order (natural_less)
  std::vector<SkippedDevice> skipped;
  // /sys/module/nvme_core/parameters/multipath is Y: the kernel multipaths
  // NVMe itself, and multipathd's default blacklist then takes NVMe out.
  bool nvme_native_multipath = false;
};

struct ScanOptions {
  std::string sysfs_root = "/sys";
  // udev's database ("/run/udev/data": files b<major>:<minor> with E:KEY=VALUE
  // lines); "" reads no udev properties.
  std::string udev_data_dir;
};

// Throws Error(ENOENT) if SYSFS/block cannot be read; a single device that
// cannot be read is skipped, not an error (devices come and go).
SysfsScan scan_sysfs(const ScanOptions& options);

// ---- WWIDs, as multipathd writes them -------------------------------------

// The LUN's WWID from VPD page 0x83 (the raw page, as sysfs's vpd_pg83
// holds it), chosen and formatted as libmultipath/discovery.c
// parse_vpd_pg83() does: among designators associated with the LUN, NAA
// IEEE Registered Extended > NAA IEEE Registered > NAA IEEE Extended >
// EUI-64 > SCSI name string > T10 vendor ID > NAA locally assigned; NAA as
// "3" and EUI-64 as "2" followed by lowercase hex; a SCSI name string
// "naa."/"eui." as "3"/"2" and the rest lowercased, any other as "8" and
// the rest after its 4-character prefix; T10 as "1" and the identifier with
// each run of spaces made one '_'. At most 127 characters. "" if none.
std::string wwid_from_vpd_pg83(std::span<const std::uint8_t> page);

// The same WWID from the kernel's text form (SCSI device attribute `wwid`,
// drivers/scsi/scsi_lib.c scsi_vpd_lun_id()), when vpd_pg83 is not
// readable: "naa.HEX" -> "3hex", "eui.HEX" -> "2hex", "t10.TEXT" -> "1" +
// TEXT as above, another SCSI name string -> "8" + what follows its
// 4-character prefix. Trailing blanks (and the kernel's escaped NUL
// padding) are cut. The kernel picks its designator by its own order,
// which can differ from multipathd's when a LUN reports several: that is
// why vpd_pg83 is read first.
std::string wwid_from_scsi_sysfs(std::string_view attr);

// An NVMe namespace's WWID: its `wwid` attribute as it is (multipathd keeps
// "eui.", "nguid.", "uuid.", "nvme." forms unchanged), trailing blanks cut;
// an over-long "nvme.VVVV-SERIAL-MODEL-NSID" form loses the hex-encoded
// NUL padding of its serial and model (discovery.c fix_broken_nvme_wwid()).
std::string wwid_from_nvme_sysfs(std::string_view attr);

// The unit serial number from VPD page 0x80, blanks trimmed at both ends
// (discovery.c parse_vpd_pg80()).
std::string serial_from_vpd_pg80(std::span<const std::uint8_t> page);

// Natural order of device names: runs of digits compare as numbers
// (nvme2n1 < nvme10n1); runs of letters alphabetically, except that two
// runs starting with the same letter compare shorter first, as the kernel
// numbers disks (sdz < sdaa). So NVMe namespaces come before SCSI disks.
bool natural_less(std::string_view a, std::string_view b);

}  // namespace ubdm::discovery
