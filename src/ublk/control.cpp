// SPDX-License-Identifier: MIT
#include "ublk/control.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <filesystem>

#include "ubdm/error.hpp"

namespace ubdm::ublk {
namespace {

// One command at a time per ring; see Control::run().
constexpr unsigned kControlRingEntries = 2;

std::string describe(int rc) { return errno_string(rc); }

// A command for device `dev_id` (not about a queue), with an optional
// in/out buffer.
CtrlCmd command(std::uint32_t dev_id, void* buf = nullptr, std::size_t len = 0) {
  CtrlCmd cmd{};
  cmd.dev_id = dev_id;
  cmd.queue_id = kNoQueue;
  cmd.addr = reinterpret_cast<std::uintptr_t>(buf);
  cmd.len = static_cast<std::uint16_t>(len);
  return cmd;
}

}  // namespace

Control::Control(const std::string& path) {
  fd_ = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd_ < 0) {
    const int err = errno;
    if (err == ENOENT || err == ENODEV || err == ENXIO) {
      fail(ENODEV, "{} not found: the ublk driver is not loaded (run `modprobe ublk_drv`; it needs a kernel "
               "built with CONFIG_BLK_DEV_UBLK, 6.5 or newer)",
           path);
    }
    if (err == EACCES || err == EPERM) {
      fail(err, "cannot open {}: permission denied (ubdmd must run as root)", path);
    }
    fail(err, "cannot open {}: {}", path, errno_string(err));
  }
  std::uint64_t features = 0;
  CtrlCmd cmd = command(kAutoDevId, &features, sizeof(features));
  const int frc = run(kCmdGetFeatures, cmd);
  if (frc < 0) {
    ::close(fd_);
    fd_ = -1;
    if (frc == -ENOMEM || frc == -EMFILE || frc == -ENFILE || frc == -EPERM) {
      fail(-frc, "cannot create an io_uring for ublk control commands: {}", describe(frc));
    }
    fail(-frc, "ublk GET_FEATURES failed ({}): the ublk driver is older than ubdm supports (kernel 6.5+ needed)",
         describe(frc));
  }
  features_ = features;
}

Control::~Control() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

int Control::run(unsigned cmd_op, CtrlCmd& cmd) {
  // Each command gets a ring of its own. The driver carries out a control
  // command inside the submitting io_uring_enter (START_DEV waits there for
  // the disk's partition scan, DEL_DEV for the last opener), so a shared
  // ring, or a lock around one, would make every device's command wait for
  // the slowest. A ring costs a few system calls: nothing next to the
  // command itself. Control commands are 32 bytes: they need SQE128.
  io_uring ring{};
  int rc = io_uring_queue_init(kControlRingEntries, &ring, IORING_SETUP_SQE128);
  if (rc < 0) {
    return rc;
  }
  io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  if (sqe == nullptr) {  // cannot happen on a fresh ring
    io_uring_queue_exit(&ring);
    return -EBUSY;
  }
  // SQE128: the command payload lives in the 80 bytes after the first 48.
  std::memset(static_cast<void*>(sqe), 0, 2 * sizeof(*sqe));
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = fd_;
  sqe->cmd_op = cmd_op;
  sqe->user_data = cmd_op;
  std::memcpy(sqe->cmd, &cmd, sizeof(cmd));
  rc = io_uring_submit(&ring);
  if (rc >= 0) {
    io_uring_cqe* cqe = nullptr;
    do {
      rc = io_uring_wait_cqe(&ring, &cqe);
    } while (rc == -EINTR);
    if (rc == 0) {
      rc = cqe->res;
      io_uring_cqe_seen(&ring, cqe);
    }
  }
  io_uring_queue_exit(&ring);
  return rc;
}

void Control::check(int rc, unsigned cmd_op, std::uint32_t dev_id, const char* what) {
  if (rc < 0) {
    fail(-rc, "ublk {} for device {} failed: {} (command {:#x})", what, dev_id, describe(rc), cmd_op);
  }
}

void Control::add_dev(DevInfo& info) {
  CtrlCmd cmd = command(info.dev_id, &info, sizeof(info));
  const int rc = run(kCmdAddDev, cmd);
  if (rc == -EEXIST) {
    fail(EEXIST, "ublk device id {} is already in use", info.dev_id);
  }
  check(rc, kCmdAddDev, info.dev_id, "ADD_DEV");
}

void Control::set_params(std::uint32_t dev_id, const Params& params) {
  Params copy = params;
  CtrlCmd cmd = command(dev_id, &copy, sizeof(copy));
  check(run(kCmdSetParams, cmd), kCmdSetParams, dev_id, "SET_PARAMS");
}

Params Control::get_params(std::uint32_t dev_id) {
  Params p{};
  p.len = sizeof(p);
  CtrlCmd cmd = command(dev_id, &p, sizeof(p));
  check(run(kCmdGetParams, cmd), kCmdGetParams, dev_id, "GET_PARAMS");
  return p;
}

DevInfo Control::get_dev_info(std::uint32_t dev_id) {
  DevInfo info{};
  CtrlCmd cmd = command(dev_id, &info, sizeof(info));
  check(run(kCmdGetDevInfo, cmd), kCmdGetDevInfo, dev_id, "GET_DEV_INFO");
  return info;
}

cpu_set_t Control::get_queue_affinity(std::uint32_t dev_id, std::uint16_t q) {
  cpu_set_t set;
  CPU_ZERO(&set);
  // The length is a multiple of sizeof(long) and at least nr_cpu_ids bits.
  CtrlCmd cmd = command(dev_id, &set, sizeof(set));
  cmd.data[0] = q;
  check(run(kCmdGetQueueAffinity, cmd), kCmdGetQueueAffinity, dev_id, "GET_QUEUE_AFFINITY");
  return set;
}

void Control::start_dev(std::uint32_t dev_id, pid_t daemon_pid) {
  CtrlCmd cmd = command(dev_id);
  cmd.data[0] = static_cast<std::uint64_t>(daemon_pid);
  check(run(kCmdStartDev, cmd), kCmdStartDev, dev_id, "START_DEV");
}

void Control::stop_dev(std::uint32_t dev_id) {
  CtrlCmd cmd = command(dev_id);
  check(run(kCmdStopDev, cmd), kCmdStopDev, dev_id, "STOP_DEV");
}

void Control::del_dev(std::uint32_t dev_id) {
  CtrlCmd cmd = command(dev_id);
  check(run(kCmdDelDev, cmd), kCmdDelDev, dev_id, "DEL_DEV");
}

void Control::update_size(std::uint32_t dev_id, std::uint64_t sectors) {
  CtrlCmd cmd = command(dev_id);
  cmd.data[0] = sectors;
  check(run(kCmdUpdateSize, cmd), kCmdUpdateSize, dev_id, "UPDATE_SIZE");
}

void Control::start_user_recovery(std::uint32_t dev_id) {
  CtrlCmd cmd = command(dev_id);
  check(run(kCmdStartUserRecovery, cmd), kCmdStartUserRecovery, dev_id, "START_USER_RECOVERY");
}

void Control::end_user_recovery(std::uint32_t dev_id, pid_t daemon_pid) {
  CtrlCmd cmd = command(dev_id);
  cmd.data[0] = static_cast<std::uint64_t>(daemon_pid);
  int rc;
  do {  // it waits interruptibly for the FETCHes; a stray signal is no failure
    rc = run(kCmdEndUserRecovery, cmd);
  } while (rc == -EINTR);
  check(rc, kCmdEndUserRecovery, dev_id, "END_USER_RECOVERY");
}

std::vector<std::uint32_t> Control::device_ids(const std::string& sysfs_class) {
  std::vector<std::uint32_t> ids;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(sysfs_class, ec)) {
    const std::string n = e.path().filename().string();
    std::uint32_t id = 0;
    const char* first = n.data() + 5;
    const char* last = n.data() + n.size();
    if (n.size() > 5 && n.compare(0, 5, "ublkc") == 0 &&
        std::from_chars(first, last, id).ptr == last) {
      ids.push_back(id);
    }
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

}  // namespace ubdm::ublk
