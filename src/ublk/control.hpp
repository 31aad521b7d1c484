// SPDX-License-Identifier: MIT
// The ublk control channel: uring_cmds on /dev/ublk-control over a small
// SQE128 ring. Control plane: every method blocks until the kernel answers
// and throws ubdm::Error on failure. Thread-safe, and commands for different
// devices run concurrently: one device's slow START_DEV or DEL_DEV never
// holds up another's.
#pragma once

#include <liburing.h>
#include <sched.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ublk/abi.hpp"

namespace ubdm::ublk {

class Control {
 public:
  // Opens /dev/ublk-control. A missing node is Error(ENODEV) naming
  // `modprobe ublk_drv`; a kernel without GET_FEATURES (before 6.5) is refused.
  explicit Control(const std::string& path = "/dev/ublk-control");
  ~Control();
  Control(const Control&) = delete;
  Control& operator=(const Control&) = delete;

  // The driver's feature mask (GET_FEATURES), read once at construction.
  std::uint64_t features() const { return features_; }

  // ADD_DEV. `info` goes in with the wanted id (kAutoDevId for any), queues,
  // depth, buffer size and flags, and comes back with what the kernel chose.
  void add_dev(DevInfo& info);
  void set_params(std::uint32_t dev_id, const Params& params);
  Params get_params(std::uint32_t dev_id);
  DevInfo get_dev_info(std::uint32_t dev_id);
  // The CPUs whose I/O lands on queue `q` (GET_QUEUE_AFFINITY).
  cpu_set_t get_queue_affinity(std::uint32_t dev_id, std::uint16_t q);
  // START_DEV: blocks until every queue has fetched every tag, then adds the
  // disk. Must not be called from a queue thread.
  void start_dev(std::uint32_t dev_id, pid_t daemon_pid);
  void stop_dev(std::uint32_t dev_id);
  // DEL_DEV: waits until every reference to the device is gone.
  void del_dev(std::uint32_t dev_id);
  // UPDATE_SIZE (6.16+, devices added with kFeatUpdateSize): the disk's
  // capacity becomes `sectors` at once and the kernel sends a change uevent
  // (RESIZE=1). Never blocks on I/O.
  void update_size(std::uint32_t dev_id, std::uint64_t sectors);

  // USER_RECOVERY (a device added with kFeatUserRecovery whose server
  // exited). START: the kernel hands the device to a new server; Error(EBUSY)
  // while the old server's last reference to /dev/ublkcN is still being
  // released (asynchronous) or the device is not QUIESCED. END: waits until
  // every tag of every queue has been fetched, then the device is LIVE again
  // with `daemon_pid` as its server.
  void start_user_recovery(std::uint32_t dev_id);
  void end_user_recovery(std::uint32_t dev_id, pid_t daemon_pid);

  // The ids of every ublk device the kernel has (any server's), from the
  // char device class in sysfs; sorted.
  static std::vector<std::uint32_t> device_ids(const std::string& sysfs_class = "/sys/class/ublk-char");

 private:
  int run(unsigned cmd_op, CtrlCmd& cmd);
  void check(int rc, unsigned cmd_op, std::uint32_t dev_id, const char* what);

  int fd_ = -1;
  std::uint64_t features_ = 0;
};

}  // namespace ubdm::ublk
