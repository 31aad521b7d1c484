// SPDX-License-Identifier: MIT
// The sysfs scan over fake sysfs trees (the files and links the kernel
// makes for SCSI disks and NVMe namespaces), and the WWID forms multipathd
// writes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "discovery/sysfs_paths.hpp"
#include "ubdm/error.hpp"

namespace ubdm::discovery {
namespace {

namespace fs = std::filesystem;

// A sysfs tree in a temporary directory, with the layout the kernel gives:
// SYS/devices/.../H:C:T:L/block/sdX, SYS/block/sdX -> that, and
// SYS/devices/.../H:C:T:L/block/sdX/device -> ../../../H:C:T:L.
class FakeSysfs {
 public:
  FakeSysfs() {
    char tmpl[] = "/tmp/ubdm-sysfs-XXXXXX";
    root_ = ::mkdtemp(tmpl);
    fs::create_directories(root_ / "block");
  }
  ~FakeSysfs() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  FakeSysfs(const FakeSysfs&) = delete;
  FakeSysfs& operator=(const FakeSysfs&) = delete;

  std::string root() const { return root_.string(); }

  static void write(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
  }

  // A SCSI disk `name` whose scsi_device lives at DEVICES/<parents>/H:C:T:L.
  // Returns the scsi_device directory, for more attributes.
  fs::path add_scsi(const std::string& name, const std::string& parents, const std::string& hctl,
                    const std::string& dev, std::uint64_t size) {
    const fs::path sdev = root_ / "devices" / parents / hctl;
    const fs::path disk = sdev / "block" / name;
    write(disk / "dev", dev + "\n");
    write(disk / "size", std::to_string(size) + "\n");
    write(disk / "removable", "0\n");
    write(disk / "ro", "0\n");
    fs::create_directory_symlink(fs::path("../../..") / hctl, disk / "device");
    fs::create_directory_symlink(disk, root_ / "block" / name);
    write(sdev / "vendor", "ACME    \n");
    write(sdev / "model", "Array 9000      \n");
    write(sdev / "rev", "0815\n");
    write(sdev / "state", "running\n");
    return sdev;
  }

  // An NVMe namespace under controller `ctrl` (the controller's directory
  // is returned).
  fs::path add_nvme(const std::string& name, const std::string& ctrl, const std::string& dev, std::uint64_t size,
                    const std::string& wwid) {
    const fs::path c = root_ / "devices" / "pci0000:00" / "0000:00:04.0" / "nvme" / ctrl;
    const fs::path disk = c / name;
    write(disk / "dev", dev + "\n");
    write(disk / "size", std::to_string(size) + "\n");
    write(disk / "nsid", "1\n");
    write(disk / "wwid", wwid + "\n");
    write(disk / "hidden", "0\n");
    fs::create_directory_symlink(fs::path("../../") / ctrl, disk / "device");
    fs::create_directory_symlink(disk, root_ / "block" / name);
    write(c / "model", "Fast Flash 3000                         \n");
    write(c / "serial", "S3EVNX0K123456  \n");
    write(c / "firmware_rev", "2B2QEXM7\n");
    write(c / "cntlid", "4\n");
    write(c / "state", "live\n");
    write(c / "transport", "pcie\n");
    fs::create_directories(root_ / "class" / "nvme");
    if (!fs::exists(c / "subsystem")) {
      fs::create_directory_symlink(root_ / "class" / "nvme", c / "subsystem");
    }
    return c;
  }

  // A block device that is neither (dm-0, loop0, sr0).
  void add_other(const std::string& name) {
    const fs::path d = root_ / "devices" / "virtual" / "block" / name;
    write(d / "dev", "253:0\n");
    write(d / "size", "2048\n");
    fs::create_directory_symlink(d, root_ / "block" / name);
  }

  const fs::path& path() const { return root_; }

 private:
  fs::path root_;
};

const ScannedPath* find(const SysfsScan& s, const std::string& dev) {
  for (const ScannedPath& p : s.paths) {
    if (p.dev == dev) {
      return &p;
    }
  }
  return nullptr;
}

std::string skipped_why(const SysfsScan& s, const std::string& dev) {
  for (const SkippedDevice& d : s.skipped) {
    if (d.dev == dev) {
      return d.why;
    }
  }
  return "";
}

// One VPD 0x83 designator: code set, type (association LUN unless given),
// bytes.
std::vector<std::uint8_t> desig(std::uint8_t type, const std::vector<std::uint8_t>& data, std::uint8_t assoc = 0,
                                std::uint8_t code_set = 1) {
  std::vector<std::uint8_t> d;
  d.push_back(code_set);
  d.push_back(static_cast<std::uint8_t>(assoc << 4 | type));
  d.push_back(0);
  d.push_back(static_cast<std::uint8_t>(data.size()));
  for (const std::uint8_t b : data) {
    d.push_back(b);
  }
  return d;
}

std::vector<std::uint8_t> text(const std::string& s) { return {s.begin(), s.end()}; }

std::vector<std::uint8_t> page83(const std::vector<std::vector<std::uint8_t>>& designators) {
  std::size_t len = 0;
  for (const auto& d : designators) {
    len += d.size();
  }
  std::vector<std::uint8_t> p;
  p.push_back(0);
  p.push_back(0x83);
  p.push_back(static_cast<std::uint8_t>(len >> 8));
  p.push_back(static_cast<std::uint8_t>(len & 0xff));
  for (const auto& d : designators) {
    for (const std::uint8_t b : d) {
      p.push_back(b);
    }
  }
  return p;
}

std::string as_string(const std::vector<std::uint8_t>& b) { return {b.begin(), b.end()}; }

const std::vector<std::uint8_t> kNaa6 = {0x60, 0x0a, 0x0b, 0x80, 0x00, 0x11, 0x22, 0x33,
                                         0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb};
const std::vector<std::uint8_t> kNaa5 = {0x50, 0x01, 0x40, 0x5a, 0xbc, 0xde, 0xf0, 0x12};
const std::vector<std::uint8_t> kEui64 = {0x00, 0x25, 0x38, 0x8b, 0x71, 0xb1, 0xa7, 0xe9};

// ---------------------------------------------------------------------------
// WWID forms

TEST(DiscoveryWwid, Vpd83PrefersNaaThenEuiThenNameThenT10) {
  const auto t10 = desig(0x1, text("ACME    disk0815"));
  const auto name = desig(0x8, text("iqn.2003-01.org.example:lun1"), 0, 3);
  const auto eui = desig(0x2, kEui64);
  const auto naa5 = desig(0x3, kNaa5);
  const auto naa6 = desig(0x3, kNaa6);
  EXPECT_EQ(wwid_from_vpd_pg83(page83({t10, name, eui, naa5, naa6})), "3600a0b8000112233445566778899aabb");
  EXPECT_EQ(wwid_from_vpd_pg83(page83({t10, name, eui, naa5})), "35001405abcdef012");
  EXPECT_EQ(wwid_from_vpd_pg83(page83({t10, name, eui})), "20025388b71b1a7e9");
  EXPECT_EQ(wwid_from_vpd_pg83(page83({t10, name})), "82003-01.org.example:lun1");
  EXPECT_EQ(wwid_from_vpd_pg83(page83({t10})), "1ACME_disk0815");
}

TEST(DiscoveryWwid, Vpd83Details) {
  // Designators of the target port (association 1) do not name the LUN.
  EXPECT_EQ(wwid_from_vpd_pg83(page83({desig(0x3, kNaa6, 1), desig(0x1, text("VEND    prod"))})), "1VEND_prod");
  // A SCSI name string "naa." reads as NAA, lowercased, NUL padding cut.
  const std::string padded("naa.600A0B80ABCD\0\0\0\0", 20);
  EXPECT_EQ(wwid_from_vpd_pg83(page83({desig(0x8, text(padded), 0, 3)})), "3600a0b80abcd");
  EXPECT_EQ(wwid_from_vpd_pg83(page83({desig(0x8, text("eui.0025388B"), 0, 3)})), "20025388b");
  // T10: leading blanks become one '_', trailing ones go.
  EXPECT_EQ(wwid_from_vpd_pg83(page83({desig(0x1, text("  LIO-ORG block1   "))})), "1_LIO-ORG_block1");
  // An NAA of the wrong length is invalid: the T10 designator is used.
  EXPECT_EQ(wwid_from_vpd_pg83(page83({desig(0x3, {0x60, 1, 2, 3}), desig(0x1, text("VEND    prod"))})),
            "1VEND_prod");
  // NAA locally assigned, alone, is used; anything better beats it.
  const std::vector<std::uint8_t> naa3 = {0x30, 1, 2, 3, 4, 5, 6, 7};
  EXPECT_EQ(wwid_from_vpd_pg83(page83({desig(0x3, naa3)})), "33001020304050607");
  EXPECT_EQ(wwid_from_vpd_pg83(page83({desig(0x3, naa3), desig(0x1, text("VEND    prod"))})), "1VEND_prod");
  // Only vendor-specific designators, a wrong page code, a short page: none.
  EXPECT_EQ(wwid_from_vpd_pg83(page83({desig(0x0, text("whatever"))})), "");
  auto wrong = page83({desig(0x3, kNaa6)});
  wrong[1] = 0x80;
  EXPECT_EQ(wwid_from_vpd_pg83(wrong), "");
  EXPECT_EQ(wwid_from_vpd_pg83(std::vector<std::uint8_t>{0, 0x83}), "");
  // A designator running past the page stops the walk.
  auto cut = page83({desig(0x1, text("VEND    prod")), desig(0x3, kNaa6)});
  cut.resize(cut.size() - 3);
  cut[3] = static_cast<std::uint8_t>(cut.size() - 4);
  EXPECT_EQ(wwid_from_vpd_pg83(cut), "1VEND_prod");
}

TEST(DiscoveryWwid, ScsiSysfsTextForms) {
  EXPECT_EQ(wwid_from_scsi_sysfs("naa.600A0B8000112233445566778899AABB\n"), "3600a0b8000112233445566778899aabb");
  EXPECT_EQ(wwid_from_scsi_sysfs("naa.5001405abcdef012"), "35001405abcdef012");
  EXPECT_EQ(wwid_from_scsi_sysfs("eui.0025388B71B1A7E9\n"), "20025388b71b1a7e9");
  EXPECT_EQ(wwid_from_scsi_sysfs("t10.ATA     QEMU HARDDISK                           QM00001 \n"),
            "1ATA_QEMU_HARDDISK_QM00001");
  EXPECT_EQ(wwid_from_scsi_sysfs("t10.LIO-ORG block1\\0\\0\\0\n"), "1LIO-ORG_block1");
  EXPECT_EQ(wwid_from_scsi_sysfs("iqn.2003-01.org.example:lun1"), "82003-01.org.example:lun1");
  EXPECT_EQ(wwid_from_scsi_sysfs("0x1234"), "");
  EXPECT_EQ(wwid_from_scsi_sysfs("\n"), "");
  // The sysfs form and the VPD page give the same WWID.
  EXPECT_EQ(wwid_from_scsi_sysfs("naa.600a0b8000112233445566778899aabb"),
            wwid_from_vpd_pg83(page83({desig(0x3, kNaa6)})));
}

TEST(DiscoveryWwid, NvmeKeepsItsFormAndLosesPadding) {
  EXPECT_EQ(wwid_from_nvme_sysfs("eui.0025388b71b1a7e9  \n"), "eui.0025388b71b1a7e9");
  EXPECT_EQ(wwid_from_nvme_sysfs("uuid.c7a1b6c4-3bf1-4a7e-9c53-0d5b4e1c2f10\n"),
            "uuid.c7a1b6c4-3bf1-4a7e-9c53-0d5b4e1c2f10");
  // The over-long Linux-target form: serial and model hex-padded with "00".
  const std::string serial = "31653363666438366239656630386200";  // "1e3cfd86b9ef08b" + NUL
  const std::string model = "4c696e7578" + std::string(70, '0');  // "Linux" + NULs
  const std::string broken = "nvme.0000-" + serial + "-" + model + "-00000002";
  ASSERT_GT(broken.size(), 127U);
  EXPECT_EQ(wwid_from_nvme_sysfs(broken + "\n"),
            "nvme.0000-316533636664383662396566303862-4c696e7578-00000002");
  // Over-long and not of that form: cut to 127 characters, as multipathd's buffer.
  const std::string other = "eui." + std::string(200, 'a');
  EXPECT_EQ(wwid_from_nvme_sysfs(other), other.substr(0, 127));
}

TEST(DiscoveryWwid, SerialFromVpd80) {
  std::vector<std::uint8_t> pg = text(std::string("\0\x80\0\x0c", 4) + "  SN12345   ");
  EXPECT_EQ(serial_from_vpd_pg80(pg), "SN12345");
  pg[1] = 0x83;
  EXPECT_EQ(serial_from_vpd_pg80(pg), "");
}

TEST(DiscoveryWwid, NaturalOrder) {
  std::vector<std::string> names = {"sdaa", "nvme10n1", "sdb", "nvme2n1", "sdz", "sda", "nvme2n10", "nvme2n2"};
  std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) { return natural_less(a, b); });
  const std::vector<std::string> want = {"nvme2n1", "nvme2n2", "nvme2n10", "nvme10n1", "sda", "sdb", "sdz", "sdaa"};
  EXPECT_EQ(names, want);
}

// ---------------------------------------------------------------------------
// The scan

TEST(DiscoverySysfs, ScsiDiskFromItsWwidAttribute) {
  FakeSysfs sys;
  const fs::path sdev = sys.add_scsi("sdb", "pci0000:00/0000:00:05.0/host2/target2:0:1", "2:0:1:7", "8:16", 2097152);
  FakeSysfs::write(sdev / "wwid", "naa.600A0B8000112233445566778899AABB\n");
  const SysfsScan s = scan_sysfs({sys.root(), ""});
  ASSERT_EQ(s.paths.size(), 1U);
  const ScannedPath& p = s.paths[0];
  EXPECT_EQ(p.dev, "sdb");
  EXPECT_EQ(p.kind, PathKind::kScsi);
  EXPECT_EQ(p.major, 8U);
  EXPECT_EQ(p.minor, 16U);
  EXPECT_EQ(p.size_sectors, 2097152U);
  EXPECT_EQ(p.wwid, "3600a0b8000112233445566778899aabb");
  EXPECT_EQ(p.wwid_source, "wwid");
  EXPECT_EQ(p.vendor, "ACME");  // trailing blanks cut
  EXPECT_EQ(p.product, "Array 9000");
  EXPECT_EQ(p.revision, "0815");
  EXPECT_EQ(p.state, "running");
  ASSERT_TRUE(p.address);
  EXPECT_EQ(*p.address, (ScsiAddress{2, 0, 1, 7}));
  EXPECT_EQ(p.protocol, "scsi:unspec");
  EXPECT_FALSE(p.removable);
  EXPECT_FALSE(p.udev_properties);
  EXPECT_FALSE(s.nvme_native_multipath);
}

TEST(DiscoverySysfs, Vpd83WinsOverTheWwidAttributeAndGivesTheSerial) {
  FakeSysfs sys;
  const fs::path sdev = sys.add_scsi("sdc", "host3/target3:0:0", "3:0:0:1", "8:32", 4096);
  // The kernel picked the EUI-64; multipathd prefers the NAA.
  FakeSysfs::write(sdev / "wwid", "eui.0025388b71b1a7e9\n");
  FakeSysfs::write(sdev / "vpd_pg83", as_string(page83({desig(0x2, kEui64), desig(0x3, kNaa5)})));
  FakeSysfs::write(sdev / "vpd_pg80", std::string("\0\x80\0\x08", 4) + "SN0042  ");
  const SysfsScan s = scan_sysfs({sys.root(), ""});
  ASSERT_EQ(s.paths.size(), 1U);
  EXPECT_EQ(s.paths[0].wwid, "35001405abcdef012");
  EXPECT_EQ(s.paths[0].wwid_source, "vpd_pg83");
  EXPECT_EQ(s.paths[0].serial, "SN0042");
}

TEST(DiscoverySysfs, MissingInquiryFieldsReadUnknown) {
  FakeSysfs sys;
  const fs::path sdev = sys.add_scsi("sdd", "host4/target4:0:0", "4:0:0:0", "8:48", 8);
  fs::remove(sdev / "vendor");
  fs::remove(sdev / "rev");
  const SysfsScan s = scan_sysfs({sys.root(), ""});
  ASSERT_EQ(s.paths.size(), 1U);
  EXPECT_EQ(s.paths[0].vendor, "UNKNOWN");
  EXPECT_EQ(s.paths[0].revision, "UNKNOWN");
  EXPECT_EQ(s.paths[0].wwid, "");  // no wwid and no vpd_pg83: the assembly leaves it out
}

TEST(DiscoverySysfs, ScsiTransports) {
  FakeSysfs sys;
  // FC: the target hangs off an rport, whose node name is in fc_remote_ports.
  sys.add_scsi("sda", "pci0000:00/0000:00:06.0/host5/rport-5:0-2/target5:0:1", "5:0:1:0", "8:0", 100);
  FakeSysfs::write(sys.path() / "class" / "fc_remote_ports" / "rport-5:0-2" / "node_name", "0x50060e8012345678\n");
  // iSCSI: a session above the target.
  sys.add_scsi("sdb", "platform/host6/session3/target6:0:0", "6:0:0:1", "8:16", 100);
  FakeSysfs::write(sys.path() / "class" / "iscsi_session" / "session3" / "targetname", "iqn.2003-01.org.x:t1\n");
  // SAS: an end device above the target and a sas_address on the device.
  const fs::path sas =
      sys.add_scsi("sdc", "pci0000:00/0000:00:07.0/host7/port-7:0/end_device-7:0/target7:0:0", "7:0:0:0", "8:32", 100);
  FakeSysfs::write(sas / "sas_address", "0x5000c500a1b2c3d4\n");
  // ATA: an ata port above the host.
  sys.add_scsi("sdd", "pci0000:00/0000:00:1f.2/ata3/host8/target8:0:0", "8:0:0:0", "8:48", 100);
  // USB: a USB device (its subsystem link) above the host.
  sys.add_scsi("sde", "pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/host9/target9:0:0", "9:0:0:0", "8:64", 100);
  fs::create_directories(sys.path() / "bus" / "usb");
  fs::create_directory_symlink(sys.path() / "bus" / "usb",
                               sys.path() / "devices" / "pci0000:00" / "0000:00:14.0" / "usb1" / "1-2" / "subsystem");

  const SysfsScan s = scan_sysfs({sys.root(), ""});
  ASSERT_EQ(s.paths.size(), 5U);
  EXPECT_EQ(find(s, "sda")->protocol, "scsi:fcp");
  EXPECT_EQ(find(s, "sda")->target_node_name, "0x50060e8012345678");
  EXPECT_EQ(find(s, "sdb")->protocol, "scsi:iscsi");
  EXPECT_EQ(find(s, "sdb")->target_node_name, "iqn.2003-01.org.x:t1");
  EXPECT_EQ(find(s, "sdc")->protocol, "scsi:sas");
  EXPECT_EQ(find(s, "sdc")->target_node_name, "0x5000c500a1b2c3d4");
  EXPECT_EQ(find(s, "sdd")->protocol, "scsi:ata");
  EXPECT_EQ(find(s, "sdd")->target_node_name, "ata-3.00");
  EXPECT_EQ(find(s, "sde")->protocol, "scsi:usb");
  EXPECT_EQ(find(s, "sde")->target_node_name, "1-2");
}

TEST(DiscoverySysfs, NvmeNamespace) {
  FakeSysfs sys;
  const fs::path c = sys.add_nvme("nvme0n1", "nvme0", "259:0", 7814037168, "eui.0025388b71b1a7e9");
  FakeSysfs::write(c / "transport", "tcp\n");
  const SysfsScan s = scan_sysfs({sys.root(), ""});
  ASSERT_EQ(s.paths.size(), 1U) << (s.skipped.empty() ? "" : s.skipped[0].why);
  const ScannedPath& p = s.paths[0];
  EXPECT_EQ(p.kind, PathKind::kNvme);
  EXPECT_EQ(p.major, 259U);
  EXPECT_EQ(p.size_sectors, 7814037168U);
  EXPECT_EQ(p.wwid, "eui.0025388b71b1a7e9");  // NVMe WWIDs keep their form
  EXPECT_EQ(p.vendor, "NVME");
  EXPECT_EQ(p.product, "Fast Flash 3000");
  EXPECT_EQ(p.serial, "S3EVNX0K123456");
  EXPECT_EQ(p.revision, "2B2QEXM7");
  EXPECT_EQ(p.protocol, "nvme:tcp");
  EXPECT_EQ(p.state, "live");
  ASSERT_TRUE(p.address);
  EXPECT_EQ(*p.address, (ScsiAddress{0, 4, 1, 1}));
}

TEST(DiscoverySysfs, SkipsWhatIsNotAPath) {
  FakeSysfs sys;
  sys.add_other("dm-0");
  sys.add_other("loop0");
  sys.add_other("sr0");
  sys.add_other("nvme0c1n1");  // native multipath's per-controller disk
  sys.add_scsi("sdf", "host1/target1:0:0", "1:0:0:0", "8:80", 100);
  FakeSysfs::write(sys.path() / "block" / "sdf" / "hidden", "1\n");
  sys.add_scsi("sdg", "host1/target1:0:1", "1:0:1:0", "8:96", 100);
  fs::remove(sys.path() / "block" / "sdg" / "dev");
  // A namespace head of native NVMe multipath: its parent is a subsystem.
  const fs::path subsys = sys.path() / "devices" / "virtual" / "nvme-subsystem" / "nvme-subsys1";
  const fs::path head = subsys / "nvme1n1";
  FakeSysfs::write(head / "dev", "259:5\n");
  FakeSysfs::write(head / "size", "100\n");
  fs::create_directories(sys.path() / "class" / "nvme-subsystem");
  fs::create_directory_symlink(sys.path() / "class" / "nvme-subsystem", subsys / "subsystem");
  fs::create_directory_symlink(fs::path(".."), head / "device");
  fs::create_directory_symlink(head, sys.path() / "block" / "nvme1n1");

  const SysfsScan s = scan_sysfs({sys.root(), ""});
  EXPECT_TRUE(s.paths.empty());
  ASSERT_EQ(s.skipped.size(), 7U);
  EXPECT_EQ(skipped_why(s, "dm-0"), "not a SCSI disk or an NVMe namespace");
  EXPECT_EQ(skipped_why(s, "nvme0c1n1"), "not a SCSI disk or an NVMe namespace");
  EXPECT_EQ(skipped_why(s, "sdf"), "sysfs marks it hidden");
  EXPECT_EQ(skipped_why(s, "sdg"), "its device number (dev) is unreadable");
  EXPECT_NE(skipped_why(s, "nvme1n1").find("native NVMe multipath"), std::string::npos) << skipped_why(s, "nvme1n1");
}

TEST(DiscoverySysfs, NaturalOrderNativeMultipathAndUdevProperties) {
  FakeSysfs sys;
  const std::pair<const char*, const char*> disks[] = {{"sdaa", "65:160"}, {"sdb", "8:16"}, {"sda", "8:0"}};
  int lun = 0;
  for (const auto& [name, dev] : disks) {
    const fs::path sdev = sys.add_scsi(name, "host0/target0:0:0", "0:0:0:" + std::to_string(lun++), dev, 64);
    FakeSysfs::write(sdev / "wwid", "naa.5001405abcdef012\n");
  }
  FakeSysfs::write(sys.path() / "module" / "nvme_core" / "parameters" / "multipath", "Y\n");
  const fs::path udev = sys.path() / "udev-data";
  FakeSysfs::write(udev / "b8:16",
                   "S:disk/by-id/x\nE:ID_SERIAL=36001405abcdef012\nE:SCSI_IDENT_LUN_NAA_REG=abc\nG:systemd\n");

  const SysfsScan s = scan_sysfs({sys.root(), udev.string()});
  ASSERT_EQ(s.paths.size(), 3U);
  EXPECT_EQ(s.paths[0].dev, "sda");
  EXPECT_EQ(s.paths[1].dev, "sdb");
  EXPECT_EQ(s.paths[2].dev, "sdaa");
  EXPECT_TRUE(s.nvme_native_multipath);
  EXPECT_FALSE(s.paths[0].udev_properties);  // no entry in udev's database
  ASSERT_TRUE(s.paths[1].udev_properties);
  const std::vector<std::pair<std::string, std::string>> want = {{"ID_SERIAL", "36001405abcdef012"},
                                                                 {"SCSI_IDENT_LUN_NAA_REG", "abc"}};
  EXPECT_EQ(*s.paths[1].udev_properties, want);
}

TEST(DiscoverySysfs, MissingSysfsIsAnError) {
  try {
    scan_sysfs({"/nonexistent/ubdm-sysfs", ""});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ENOENT);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/ubdm-sysfs/block"), std::string::npos);
  }
}

}  // namespace
}  // namespace ubdm::discovery
