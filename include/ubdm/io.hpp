// SPDX-License-Identifier: MIT
// The I/O backend seam (after Seastar's reactor_backend): an underlying-device
// I/O is a value (IoRequest) submitted through IoBackend, and its completion
// comes back through the IoCompletion stored in it. Two implementations:
// UringBackend (src/io/uring_backend) and FakeBackend (src/io/fake_backend).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "ubdm/types.hpp"

namespace ubdm {

// An underlying device (block device or regular file) opened for a table.
// Shared by every table that names it; closed when the last table lets go.
// Immutable after open, so any thread may read it, except its size: that is
// read again each time a table opens the device (a LUN that grew, then a
// reload that maps more of it), atomically.
class BlockDevice {
 public:
  virtual ~BlockDevice() = default;

  // Small dense number, unique among open devices; also the io_uring
  // fixed-file slot, so the hot path needs no lookup.
  std::uint32_t id() const { return id_; }
  const std::string& path() const { return path_; }
  int fd() const { return fd_; }
  bool is_block_device() const { return rdev_ != 0; }
  dev_t rdev() const { return rdev_; }
  sector_t size_sectors() const { return size_sectors_.load(std::memory_order_relaxed); }
  std::uint32_t logical_block_size() const { return logical_bs_; }
  std::uint32_t physical_block_size() const { return physical_bs_; }
  bool volatile_write_cache() const { return volatile_cache_; }
  // Queue limits the device advertises (sysfs), for the limits a frontend
  // announces. io_min/io_opt are bytes (0: none); discard_max_bytes 0 means
  // the device cannot discard.
  std::uint32_t io_min() const { return io_min_; }
  std::uint32_t io_opt() const { return io_opt_; }
  std::uint64_t discard_max_bytes() const { return discard_max_bytes_; }
  std::uint32_t discard_granularity() const { return discard_granularity_; }
  bool rotational() const { return rotational_; }

  // How status/table lines name the device: "major:minor" for block devices,
  // as the kernel prints them, and the path for regular files.
  std::string display_name() const;

 protected:
  BlockDevice() = default;
  std::uint32_t id_ = 0;
  std::string path_;
  int fd_ = -1;
  dev_t rdev_ = 0;
  mutable std::atomic<sector_t> size_sectors_{0};
  std::uint32_t logical_bs_ = 512;
  std::uint32_t physical_bs_ = 512;
  bool volatile_cache_ = false;
  std::uint32_t io_min_ = 0;
  std::uint32_t io_opt_ = 0;
  std::uint64_t discard_max_bytes_ = 0;
  std::uint32_t discard_granularity_ = 0;
  bool rotational_ = false;
};

using BlockDevicePtr = std::shared_ptr<const BlockDevice>;

// Opens underlying devices for target constructors. Control plane: throws
// ubdm::Error with a message that names the path and the reason.
class DeviceOpener {
 public:
  virtual ~DeviceOpener() = default;
  // `path` is a path or "major:minor". Opens read-write with O_DIRECT.
  virtual BlockDevicePtr open(std::string_view path) = 0;
  // A stand-in for a device that cannot be opened now (gone, or offline) but
  // that a table must still name: a multipath path when a restarted daemon
  // rebuilds a table that had it. It has an id and no descriptor, so every
  // I/O to it fails (-EBADF) and the checker never finds it up; `sectors`
  // is the size it claims. Throws Error(ENOTSUP) if the opener has none.
  virtual BlockDevicePtr open_absent(std::string_view path, sector_t sectors);
};

// Real devices: O_RDWR|O_DIRECT|O_CLOEXEC, geometry from the block ioctls.
std::unique_ptr<DeviceOpener> make_system_device_opener();

// Who keeps block device `rdev` busy, as far as the system tells: holders in
// sysfs (dm, md, ...) and mounts, of the device and its partitions, e.g.
// "held by dm-0; mounted on /mnt". Empty if nothing is known (swap, or a
// program holding it O_EXCL). Control plane: reads sysfs and mountinfo.
std::string block_device_users(dev_t rdev);

// Anything that completes on an io_uring (or on the fake). Stored as the
// CQE's user_data, so the ring needs no lookup table (Seastar's kernel_completion).
class IoCompletion {
 public:
  // `res` is 0 when the whole request was carried out (every byte of a READ
  // or WRITE, the whole range of a DISCARD or WRITE_ZEROES), or a negative
  // errno. Never a byte count: lengths are 64-bit, and a count of 2 GiB or
  // more does not fit an int.
  virtual void io_complete(int res) = 0;

 protected:
  ~IoCompletion() = default;
};

// One I/O to one underlying device. It lives inside a clone (preallocated
// per tag) and must stay put until io_complete() is called.
struct IoRequest {
  Op op = Op::kRead;
  std::uint32_t flags = 0;        // ReqFlag bits; kReqFua makes a write durable
  const BlockDevice* dev = nullptr;
  std::uint64_t offset = 0;       // bytes on dev
  std::byte* buf = nullptr;       // READ/WRITE data; nullptr for a kernel buffer
  std::uint64_t len = 0;          // bytes (0 for FLUSH); DISCARD/WRITE_ZEROES may exceed 4 GiB
  int buf_index = -1;             // registered buffer containing buf, or -1
  // With buf == nullptr and buf_index >= 0 (a zero-copy request, see
  // Request::buf): where this I/O's data start in that registered buffer.
  std::uint64_t buf_offset = 0;
  IoCompletion* completion = nullptr;

  // Backend-private progress, for continuing short transfers and fallbacks.
  std::uint64_t done = 0;
  std::uint8_t attempt = 0;
};

// Contract: every method is called from the one thread that owns the backend
// (the queue thread). submit() never completes synchronously: completions are
// delivered from poll(), so callers may submit while iterating their lists.
// A completion reports the whole request: the backend continues short reads
// and writes itself (and splits what one kernel call cannot take) and reports
// 0 for the whole request done, or an error (IoCompletion::io_complete).
//
// A block device that went away is reported as -ENXIO, whatever the kernel
// said: when an I/O fails with ENOSPC (writes past the end), transfers 0
// bytes (reads past the end), or a DISCARD/WRITE_ZEROES is refused as out of
// range, and the device's current size is below its size at open and no
// longer covers the I/O, the device shrank under us (a deleted SCSI disk
// drops to size 0). An I/O beyond the size at open keeps its own error. Multipath takes
// -ENXIO for a path failure; other targets report it as it is. A regular
// file that shrank is not "gone": a read past its end is -EIO.
class IoBackend {
 public:
  virtual ~IoBackend() = default;

  // Make `dev` addressable by submit(). Called when a queue adopts a table.
  virtual int attach(const BlockDevice& dev) = 0;
  // The device will not be used again by this queue.
  virtual void detach(const BlockDevice& dev) = 0;

  // Queue one I/O. Submission to the kernel is batched until flush() or poll().
  virtual void submit(IoRequest& req) = 0;

  // Hand queued submissions to the kernel. Returns 0 or a negative errno.
  virtual int flush() = 0;

  // Deliver available completions. With wait_usec > 0, block up to that long
  // for at least one. Returns the number delivered or a negative errno.
  virtual int poll(unsigned wait_usec) = 0;

  // I/Os submitted and not yet completed.
  virtual unsigned in_flight() const = 0;
};

}  // namespace ubdm
