// SPDX-License-Identifier: MIT
// A MappedDevice served as /dev/ublkbN: ADD_DEV, one Queue thread per core
// queue, SET_PARAMS derived from the live table, START_DEV; and the reverse.
//
// Devices are added with USER_RECOVERY|USER_RECOVERY_REISSUE where the
// kernel has them, so they outlive this process: a restarted daemon builds
// the same Device around the existing id with adopt() (see
// docs/architecture.md, "Recovery").
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ubdm/device.hpp"
#include "ublk/abi.hpp"
#include "ublk/control.hpp"
#include "ublk/queue.hpp"

namespace ubdm::ublk {

struct DeviceOptions {
  std::int64_t dev_id = -1;              // -1: let the kernel choose
  std::uint32_t max_io_bytes = 512 * 1024;  // per request and per tag buffer
  unsigned poll_usec = 0;                   // QueueConfig::poll_usec for every queue
  // Zero copy where the kernel offers it (UBLK_F_AUTO_BUF_REG, 6.16+) and
  // the process has CAP_SYS_ADMIN; false forces copy mode. The caller turns
  // it off for a table whose targets need the data (Table::needing_cpu_data).
  bool zero_copy = true;
  bool force_registration_fallback = false;  // QueueConfig's, for tests
  bool read_only = false;                    // UBLK_ATTR_READ_ONLY: the kernel refuses writes
  // Called with the device id after ADD_DEV and before START_DEV, i.e.
  // before the block device's uevent (the daemon publishes the name there).
  std::function<void(std::uint32_t id)> before_start;
};

// Build ublk params from the limits the table stacks over its devices.
// FLUSH and FUA are always advertised (see the definition for why). A
// zero-copy device also gets the DMA alignment its devices need.
Params make_params(const IoLimits& limits, sector_t size_sectors, std::uint32_t max_io_bytes,
                   bool zero_copy = false, bool read_only = false);

// Refuses (EINVAL, naming `disk`) a table whose devices cannot honour what
// the live device advertised at START_DEV: a larger logical block size, no
// discard (or a coarser discard granularity) where discard and write-zeroes
// were advertised. The kernel keeps those limits for the disk's lifetime.
void check_table_fits(const Params& advertised, const IoLimits& limits, const std::string& disk);

class Device {
 public:
  Device(Control& control, MappedDevice& mapped, DeviceOptions options);
  ~Device();  // stop() if needed; never throws
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  // Create and start the kernel device. The mapped device must have a live
  // table. On failure everything created so far is torn down and the error
  // is thrown. `after_add` runs once ADD_DEV has given the device its id
  // (the daemon records the id there, before anything can crash with an
  // unrecorded device).
  void start(const std::function<void(std::uint32_t id)>& after_add = {});
  // Take over device `info` (GET_DEV_INFO of a device whose server has
  // exited; its queue count and depth must match the mapped device):
  // START_USER_RECOVERY, retried while the old server's release is still
  // under way (up to `wait`), then the queues fetch every tag and
  // END_USER_RECOVERY makes the device LIVE with this process as server.
  // Held and reissued I/O then reaches the mapped device. No SET_PARAMS,
  // no START_DEV: the disk and its limits are the kernel's already. On
  // failure the queues are stopped and the device is left QUIESCED for a
  // later attempt (never deleted), and the error is thrown.
  // `after_start` runs once the kernel has let the old server go and
  // before the queues start: the caller builds the device's tables there.
  void adopt(const DevInfo& info, std::chrono::milliseconds wait,
             const std::function<void()>& after_start = {});
  // Whether the process may exit and leave the device to the next server:
  // the kernel then holds (and reissues) its I/O instead of failing it.
  bool survives_exit() const;
  // STOP_DEV (the disk disappears; queued kernel I/O is aborted), wait for
  // the queue threads, DEL_DEV. Idempotent. `after_stop_dev` runs between
  // STOP_DEV and DEL_DEV: DEL_DEV waits until nothing holds the disk open,
  // so a caller holding the disk open across STOP_DEV closes it there.
  void stop(const std::function<void()>& after_stop_dev = {});

  // Whether the disk can change size while live (the kernel has
  // UPDATE_SIZE, 6.16+, and the device was added with it).
  bool can_resize() const { return (info_.flags & kFeatUpdateSize) != 0; }
  // Whether I/O reaches the backend in the request's own pages (ADD_DEV
  // took kFeatAutoBufReg) rather than copied through a tag buffer.
  bool zero_copy() const { return (info_.flags & kFeatAutoBufReg) != 0; }
  // Set the disk's capacity (UPDATE_SIZE). The caller makes sure that the
  // live table covers the new size (or holds I/O until it does); Error
  // (EOPNOTSUPP) without can_resize(), else the kernel's error.
  void resize(sector_t sectors);

  std::uint32_t id() const { return id_; }
  bool started() const { return started_; }
  std::string char_path() const;
  std::string block_path() const;
  dev_t block_devt() const { return block_devt_; }
  const Params& params() const { return params_; }
  std::uint64_t flags() const { return info_.flags; }

 private:
  std::uint64_t zero_copy_flags() const;
  void open_char_device();
  void start_queues();
  void release_queues(bool ask_to_stop);
  void teardown(bool stop_kernel_device, const std::function<void()>& after_stop_dev = {});

  Control& control_;
  MappedDevice& mapped_;
  DeviceOptions options_;
  DevInfo info_{};
  Params params_{};
  std::uint32_t id_ = kAutoDevId;
  bool added_ = false;
  bool started_ = false;
  int char_fd_ = -1;
  dev_t block_devt_ = 0;
  std::vector<std::unique_ptr<Queue>> queues_;
};

}  // namespace ubdm::ublk
