// SPDX-License-Identifier: MIT
// The DeviceOpener for real devices: block devices and regular files, opened
// O_RDWR|O_DIRECT, with their geometry read from the block ioctls and sysfs.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "io/fd_limit.hpp"
#include "ubdm/error.hpp"
#include "ubdm/io.hpp"

namespace ubdm {
namespace {

// Device ids are io_uring fixed-file slots (UringBackend::Options::max_files),
// so they must stay small, dense and below device_id_slots() (the table size
// of every ring, less the frontend's own slot). One allocator for the whole
// process: ids must be unique among all open devices whichever opener opened
// them, since a queue's backend may see devices from several tables.
class IdAllocator {
 public:
  std::uint32_t take() {
    std::lock_guard lock(mutex_);
    if (!free_.empty()) {
      const std::uint32_t id = free_.back();
      free_.pop_back();
      return id;
    }
    const unsigned slots = device_id_slots();
    if (next_ >= slots) {
      if (slots >= kMaxFixedFiles) {
        fail(EMFILE, "too many open devices: ubdm serves at most {} underlying devices at a time", slots);
      }
      fail(EMFILE,
           "too many open devices: at most {}, one per io_uring fixed-file slot, as the open-file limit "
           "allowed when ubdmd started; {}",
           slots, nofile_limit_advice());
    }
    return next_++;
  }

  void give_back(std::uint32_t id) {
    std::lock_guard lock(mutex_);
    free_.push_back(id);
  }

 private:
  std::mutex mutex_;
  std::uint32_t next_ = 0;
  std::vector<std::uint32_t> free_;
};

IdAllocator& device_ids() {
  // Never destroyed: devices may be released during static destruction.
  static auto* ids = new IdAllocator;
  return *ids;
}

// Owns the fd while a device is being built, so every error path closes it.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd) {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = fd;
  }

 private:
  int fd_;
};

// Reads the first line of a small sysfs file; empty if it cannot be read.
std::string read_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (in) {
    std::getline(in, line);
  }
  return line;
}

bool parse_u32(std::string_view s, std::uint32_t& out) {
  if (s.empty()) {
    return false;
  }
  const char* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, out);
  return ec == std::errc() && p == end;
}

// "major:minor" -> a path to the device node. Returns false if `spec` is not
// of that form; throws if it is but names no block device.
bool resolve_dev_number(std::string_view spec, std::string& path, dev_t& rdev) {
  const auto colon = spec.find(':');
  if (colon == std::string_view::npos) {
    return false;
  }
  std::uint32_t maj = 0;
  std::uint32_t min = 0;
  if (!parse_u32(spec.substr(0, colon), maj) || !parse_u32(spec.substr(colon + 1), min)) {
    return false;
  }
  rdev = makedev(maj, min);
  const std::string number = fmt::format("{}:{}", maj, min);

  // sysfs names the node the kernel created (/dev/<DEVNAME>); /dev/block/M:m
  // is udev's symlink, for systems where that is all there is.
  std::ifstream uevent("/sys/dev/block/" + number + "/uevent");
  for (std::string line; std::getline(uevent, line);) {
    if (line.rfind("DEVNAME=", 0) == 0) {
      std::string candidate = "/dev/" + line.substr(8);
      struct stat st {};
      if (::stat(candidate.c_str(), &st) == 0 && S_ISBLK(st.st_mode) && st.st_rdev == rdev) {
        path = std::move(candidate);
        return true;
      }
    }
  }
  std::string link = "/dev/block/" + number;
  struct stat st {};
  if (::stat(link.c_str(), &st) == 0 && S_ISBLK(st.st_mode) && st.st_rdev == rdev) {
    path = std::move(link);
    return true;
  }
  fail(ENODEV, "no block device {} (not in /sys/dev/block or /dev/block)", number);
}

// One attribute of the device's request queue. A partition has no queue
// directory of its own: its disk's is one level up.
std::string queue_attr(dev_t rdev, const char* name) {
  const std::string base = fmt::format("/sys/dev/block/{}:{}", major(rdev), minor(rdev));
  std::string v = read_line(base + "/queue/" + name);
  if (v.empty()) {
    v = read_line(base + "/../queue/" + name);
  }
  return v;
}

std::uint64_t queue_u64(dev_t rdev, const char* name) {
  const std::string v = queue_attr(rdev, name);
  std::uint64_t out = 0;
  const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  return ec == std::errc() && p == v.data() + v.size() ? out : 0;
}

class SystemDevice final : public BlockDevice {
 public:
  SystemDevice(std::string path, int fd, const struct stat& st) {
    id_ = device_ids().take();  // first: if it throws, nothing is owned yet
    path_ = std::move(path);
    fd_ = fd;
    if (S_ISBLK(st.st_mode)) {
      rdev_ = st.st_rdev;
    }
  }

  ~SystemDevice() override;

  SystemDevice(const SystemDevice&) = delete;
  SystemDevice& operator=(const SystemDevice&) = delete;

  // The geometry of a device that is not there (DeviceOpener::open_absent).
  void stand_in(sector_t sectors) { size_sectors_ = sectors; }

  // Read the size again (another table opens the device: its LUN or file
  // may have grown since). Keeps the old size if it cannot be read.
  void refresh_size() const {
    if (fd_ < 0) {
      return;
    }
    if (is_block_device()) {
      std::uint64_t bytes = 0;
      if (::ioctl(fd_, BLKGETSIZE64, &bytes) == 0) {
        size_sectors_.store(bytes >> kSectorShift, std::memory_order_relaxed);
      }
      return;
    }
    struct stat st {};
    if (::fstat(fd_, &st) == 0) {
      size_sectors_.store(static_cast<sector_t>(st.st_size) >> kSectorShift, std::memory_order_relaxed);
    }
  }

  // Fills the geometry; throws (and the destructor cleans up) on failure.
  void probe(const struct stat& st) {
    if (!is_block_device()) {
      // A file has no geometry of its own: 512-byte sectors, and 4 KiB
      // physical blocks so that upper layers align to the page size.
      size_sectors_ = static_cast<sector_t>(st.st_size) >> kSectorShift;
      logical_bs_ = 512;
      physical_bs_ = 4096;
      volatile_cache_ = false;
      // Punching a hole discards, on every filesystem that supports O_DIRECT here.
      discard_max_bytes_ = 1ULL << 30;
      discard_granularity_ = 4096;
      return;
    }
    std::uint64_t bytes = 0;
    if (::ioctl(fd_, BLKGETSIZE64, &bytes) < 0) {
      const int err = errno;
      fail(err, "cannot get the size of {}: {}", path_, errno_string(err));
    }
    int logical = 0;
    if (::ioctl(fd_, BLKSSZGET, &logical) < 0 || logical <= 0) {
      const int err = errno != 0 ? errno : EINVAL;
      fail(err, "cannot get the logical block size of {}: {}", path_, errno_string(err));
    }
    unsigned int physical = 0;
    if (::ioctl(fd_, BLKPBSZGET, &physical) < 0 || physical == 0) {
      physical = static_cast<unsigned int>(logical);
    }
    size_sectors_ = bytes >> kSectorShift;
    logical_bs_ = static_cast<std::uint32_t>(logical);
    physical_bs_ = physical;
    volatile_cache_ = queue_attr(rdev_, "write_cache") == "write back";
    io_min_ = static_cast<std::uint32_t>(queue_u64(rdev_, "minimum_io_size"));
    io_opt_ = static_cast<std::uint32_t>(queue_u64(rdev_, "optimal_io_size"));
    discard_max_bytes_ = queue_u64(rdev_, "discard_max_bytes");
    discard_granularity_ = static_cast<std::uint32_t>(queue_u64(rdev_, "discard_granularity"));
    rotational_ = queue_u64(rdev_, "rotational") != 0;
  }
};

// Identity of an open file, for sharing one BlockDevice between tables.
struct DeviceKey {
  bool block;
  std::uint64_t a;  // rdev for a block device; st_dev for a file
  std::uint64_t b;  // 0; st_ino for a file
  auto operator<=>(const DeviceKey&) const = default;
};

DeviceKey key_of(const struct stat& st) {
  if (S_ISBLK(st.st_mode)) {
    return DeviceKey{true, static_cast<std::uint64_t>(st.st_rdev), 0};
  }
  return DeviceKey{false, static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
}

// How long after this process let go of a block device an EBUSY on
// reopening it is taken for our own claim still going away: io_uring drops
// the file references of a ring that is torn down (or of a slot just
// emptied) from a kernel worker, a little after we closed our descriptor.
constexpr auto kReleaseGrace = std::chrono::seconds(2);
constexpr auto kReleaseRetry = std::chrono::milliseconds(10);

// Every device open in the process, by identity: one BlockDevice (and so
// one exclusive claim) per device, whichever opener or table asks. Never
// destroyed, like the id allocator.
class Registry {
 public:
  BlockDevicePtr find(const DeviceKey& key) {
    std::lock_guard lock(mutex_);
    for (auto it = open_.begin(); it != open_.end();) {
      it = it->second.expired() ? open_.erase(it) : std::next(it);
    }
    if (auto it = open_.find(key); it != open_.end()) {
      return it->second.lock();
    }
    return nullptr;
  }

  // Adds `dev`, or returns the device someone else added for the key meanwhile.
  BlockDevicePtr add(const DeviceKey& key, const std::shared_ptr<const BlockDevice>& dev) {
    std::lock_guard lock(mutex_);
    std::weak_ptr<const BlockDevice>& slot = open_[key];
    if (BlockDevicePtr existing = slot.lock()) {
      return existing;
    }
    slot = dev;
    return dev;
  }

  void released(const DeviceKey& key) {
    std::lock_guard lock(mutex_);
    released_[key] = std::chrono::steady_clock::now();
  }

  // When this process last let go of the device, if it ever did.
  std::optional<std::chrono::steady_clock::time_point> released_at(const DeviceKey& key) {
    std::lock_guard lock(mutex_);
    auto it = released_.find(key);
    if (it == released_.end()) {
      return std::nullopt;
    }
    return it->second;
  }

 private:
  std::mutex mutex_;
  std::map<DeviceKey, std::weak_ptr<const BlockDevice>> open_;
  std::map<DeviceKey, std::chrono::steady_clock::time_point> released_;
};

Registry& registry() {
  static auto* r = new Registry;
  return *r;
}

SystemDevice::~SystemDevice() {
  if (fd_ >= 0) {
    ::close(fd_);  // for a block device, this ends the exclusive claim
    if (is_block_device()) {
      registry().released(DeviceKey{true, static_cast<std::uint64_t>(rdev_), 0});
    }
  }
  device_ids().give_back(id_);
}

std::string sysfs_dir(dev_t rdev) { return fmt::format("/sys/dev/block/{}:{}", major(rdev), minor(rdev)); }

// Entries of a sysfs directory (names only); empty if it cannot be read.
std::vector<std::string> dir_entries(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Who keeps a busy block device, as far as the system tells: the holders in
// sysfs (dm, md, bcache, ...) and mounts, of the device and of its
// partitions. Empty if nothing is known (e.g. a program holding it O_EXCL).
std::string busy_reason(dev_t rdev) {
  const std::string base = sysfs_dir(rdev);
  struct Part {
    std::string name;  // empty for the device itself
    std::string number;
  };
  std::vector<Part> parts{{"", fmt::format("{}:{}", major(rdev), minor(rdev))}};
  for (const std::string& child : dir_entries(base)) {
    if (std::filesystem::exists(base + "/" + child + "/partition")) {
      parts.push_back({child, read_line(base + "/" + child + "/dev")});
    }
  }
  std::vector<std::string> words;
  for (const Part& p : parts) {
    const std::string dir = p.name.empty() ? base : base + "/" + p.name;
    for (const std::string& holder : dir_entries(dir + "/holders")) {
      words.push_back(p.name.empty() ? "held by " + holder : fmt::format("held by {} (through {})", holder, p.name));
    }
  }
  // mountinfo: "<id> <parent> <major:minor> <root> <mount point> ...".
  std::ifstream mountinfo("/proc/self/mountinfo");
  for (std::string line; std::getline(mountinfo, line);) {
    std::istringstream in(line);
    std::string id, parent, number, root, point;
    in >> id >> parent >> number >> root >> point;
    for (const Part& p : parts) {
      if (number == p.number) {
        words.push_back(p.name.empty() ? "mounted on " + point : fmt::format("{} mounted on {}", p.name, point));
      }
    }
  }
  std::string out;
  for (const std::string& w : words) {
    out += (out.empty() ? "" : "; ") + w;
  }
  return out;
}

[[noreturn]] void fail_open(const std::string& path, int err, const struct stat& st) {
  switch (err) {
    case EINVAL:
      fail(err, "cannot open {} with O_DIRECT: {} (the filesystem may not support direct I/O)", path,
           errno_string(err));
    case EMFILE:
      fail(err, "cannot open {}: {} ({})", path, errno_string(err), nofile_limit_advice());
    case ENFILE:
      fail(err, "cannot open {}: {} (the system-wide limit, fs.file-max, is reached)", path, errno_string(err));
    case EBUSY:
      if (S_ISBLK(st.st_mode)) {
        const std::string why = busy_reason(st.st_rdev);
        fail(err, "{} is in use ({}): ubdm claims the devices it maps exclusively", path,
             why.empty() ? "opened exclusively by another program: a mount, swap, a device-mapper or md "
                           "device, or another ubdmd"
                         : why);
      }
      break;
    default:
      break;
  }
  fail(err, "cannot open {}: {}", path, errno_string(err));
}

class SystemDeviceOpener final : public DeviceOpener {
 public:
  BlockDevicePtr open_absent(std::string_view spec, sector_t sectors) override {
    std::string path(spec);
    dev_t rdev = 0;
    resolve_dev_number(spec, path, rdev);
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISBLK(st.st_mode)) {
      st = {};
      st.st_mode = S_IFBLK;
      st.st_rdev = rdev;
    }
    // Never in the registry: the device itself, once back, is opened anew.
    auto dev = std::make_shared<SystemDevice>(std::move(path), -1, st);
    dev->stand_in(sectors);
    return dev;
  }

  BlockDevicePtr open(std::string_view spec) override {
    if (spec.empty()) {
      fail_invalid("empty device path");
    }
    std::string path(spec);
    dev_t want_rdev = 0;
    const bool by_number = resolve_dev_number(spec, path, want_rdev);

    // Identify the device before opening it: a block device is opened with
    // O_EXCL, which a second open in this process would fail with EBUSY, so
    // a device already open is found here and shared (as dm shares table
    // devices), never opened twice.
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      const int err = errno;
      fail(err, "cannot open {}: {}", path, errno_string(err));
    }
    if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode)) {
      fail(ENOTBLK, "{} is not a block device or regular file", path);
    }
    if (by_number && st.st_rdev != want_rdev) {
      fail(ENODEV, "{} is no longer device {}", path, spec);
    }
    const DeviceKey key = key_of(st);
    Registry& reg = registry();
    if (BlockDevicePtr existing = reg.find(key)) {
      // The registry holds only SystemDevices.
      static_cast<const SystemDevice&>(*existing).refresh_size();
      return existing;
    }

    // Block devices are claimed exclusively for as long as any table uses
    // them, so that nothing else (a mount, dm, another ubdmd) writes to them
    // behind our back. Regular files have no such claim.
    const int flags = O_RDWR | O_DIRECT | O_CLOEXEC | (S_ISBLK(st.st_mode) ? O_EXCL : 0);
    Fd fd(::open(path.c_str(), flags));
    while (fd.get() < 0 && errno == EBUSY && S_ISBLK(st.st_mode)) {
      // Another thread of ours may have just claimed it (then share that), or
      // our own claim may still be on its way out (then wait for it).
      if (BlockDevicePtr existing = reg.find(key)) {
        return existing;
      }
      // A holder or a mount is someone else for sure: no waiting then.
      const auto released = reg.released_at(key);
      if (!released || std::chrono::steady_clock::now() - *released > kReleaseGrace ||
          !busy_reason(st.st_rdev).empty()) {
        errno = EBUSY;
        break;
      }
      std::this_thread::sleep_for(kReleaseRetry);
      fd.reset(::open(path.c_str(), flags));
    }
    if (fd.get() < 0) {
      fail_open(path, errno, st);
    }
    struct stat opened {};
    if (::fstat(fd.get(), &opened) < 0) {
      const int err = errno;
      fail(err, "cannot stat {}: {}", path, errno_string(err));
    }
    if (key_of(opened) != key) {
      fail(ENODEV, "{} changed while it was being opened", path);
    }

    // Once constructed, the device owns the fd and its id (which it takes
    // itself), and its destructor returns both, also if probing fails.
    auto* raw = new SystemDevice(std::move(path), fd.get(), opened);
    fd.release();
    std::shared_ptr<SystemDevice> dev(raw);
    dev->probe(opened);
    return reg.add(key, dev);
  }
};

}  // namespace

BlockDevicePtr DeviceOpener::open_absent(std::string_view path, sector_t /*sectors*/) {
  fail(ENOTSUP, "{} cannot be opened, and this opener has no stand-in for it", path);
}

std::unique_ptr<DeviceOpener> make_system_device_opener() { return std::make_unique<SystemDeviceOpener>(); }

std::string block_device_users(dev_t rdev) { return busy_reason(rdev); }

}  // namespace ubdm
