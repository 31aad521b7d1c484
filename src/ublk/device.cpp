// SPDX-License-Identifier: MIT
#include "ublk/device.hpp"

#include <fcntl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <bit>
#include <chrono>
#include <thread>

#include <spdlog/spdlog.h>

#include "ubdm/error.hpp"

namespace ubdm::ublk {
namespace {

std::uint64_t recovery_flags(std::uint64_t features) {
  // REISSUE: I/O the dead server had taken but not completed goes to the
  // next server instead of failing. Reissuing a write the old server may
  // already have done rewrites the same data: see docs/architecture.md.
  constexpr std::uint64_t kWanted = kFeatUserRecovery | kFeatUserRecoveryReissue;
  return (features & kWanted) == kWanted ? kWanted : 0;
}

std::uint8_t shift_of(std::uint32_t bytes) {
  // Largest power of two not above `bytes` (limits are powers of two in practice).
  return static_cast<std::uint8_t>(std::bit_width(bytes) - 1);
}

}  // namespace

Params make_params(const IoLimits& limits, sector_t size_sectors, std::uint32_t max_io_bytes, bool zero_copy,
                   bool read_only) {
  Params p{};
  p.len = sizeof(p);
  p.types = kParamBasic;
  ParamBasic& b = p.basic;
  // Always a volatile cache with FUA, whatever the first table's disks say:
  // a later table may map a write-back disk, and a file or a disk behind a
  // write-through queue still needs its fdatasync for an fsync to be
  // durable. Without the attribute the kernel completes every FLUSH itself
  // and it never reaches us. A flush to a write-through disk costs nothing.
  b.attrs |= kAttrVolatileCache | kAttrFua;
  if (limits.rotational) {
    b.attrs |= kAttrRotational;
  }
  if (read_only) {
    b.attrs |= kAttrReadOnly;
  }
  const std::uint32_t lbs = std::max<std::uint32_t>(limits.logical_block_size, 512);
  const std::uint32_t pbs = std::max(limits.physical_block_size, lbs);
  b.logical_bs_shift = shift_of(lbs);
  b.physical_bs_shift = shift_of(pbs);
  b.io_min_shift = shift_of(std::max(limits.io_min, pbs));
  b.io_opt_shift = shift_of(std::max(limits.io_opt, pbs));
  b.max_sectors = max_io_bytes >> kSectorShift;
  b.dev_sectors = size_sectors;
  if (limits.discard) {
    p.types |= kParamDiscard;
    ParamDiscard& d = p.discard;
    d.discard_granularity = std::max(limits.discard_granularity, lbs);
    d.max_discard_sectors = UINT32_MAX >> kSectorShift;
    d.max_write_zeroes_sectors = UINT32_MAX >> kSectorShift;
    d.max_discard_segments = 1;
  }
  if (zero_copy) {
    // The application's pages go to our devices as they are, with O_DIRECT:
    // ask the block layer for the memory alignment that needs (512 bytes, or
    // the logical block for larger blocks), so a misaligned buffer is refused
    // or bounced at the ublk disk instead of failing at ours.
    p.types |= kParamDmaAlign;
    p.dma.alignment = std::max<std::uint32_t>(511, lbs - 1);
  }
  return p;
}

void check_table_fits(const Params& advertised, const IoLimits& limits, const std::string& disk) {
  const std::uint32_t lbs = 1U << advertised.basic.logical_bs_shift;
  if (limits.logical_block_size > lbs) {
    fail_invalid("the new table's devices have {}-byte logical blocks, but {} advertises {}: the kernel would "
                 "send I/O they cannot take (a new device is needed for a larger block size)",
                 limits.logical_block_size, disk, lbs);
  }
  if ((advertised.types & kParamDiscard) != 0) {
    if (!limits.discard) {
      fail_invalid("the new table has a device that cannot discard, but {} advertises discard and "
                   "write-zeroes: map devices that support discard (a new device is needed otherwise)",
                   disk);
    }
    if (limits.discard_granularity > advertised.discard.discard_granularity) {
      fail_invalid("the new table's devices discard in units of {} bytes, but {} advertises {}",
                   limits.discard_granularity, disk, advertised.discard.discard_granularity);
    }
  }
}

Device::Device(Control& control, MappedDevice& mapped, DeviceOptions options)
    : control_(control), mapped_(mapped), options_(options) {}

Device::~Device() {
  try {
    stop();
  } catch (const std::exception& e) {
    spdlog::error("{}: stopping ublk device {} failed: {}", mapped_.device_name(), id_, e.what());
  }
}

std::string Device::char_path() const { return fmt::format("/dev/ublkc{}", id_); }
std::string Device::block_path() const { return fmt::format("/dev/ublkb{}", id_); }

void Device::open_char_device() {
  // The node appears asynchronously (devtmpfs or udev), and udev may hold
  // it open for a moment; the driver allows one opener at a time.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  for (;;) {
    char_fd_ = ::open(char_path().c_str(), O_RDWR | O_CLOEXEC);
    if (char_fd_ >= 0) {
      return;
    }
    const int err = errno;
    if ((err != ENOENT && err != EBUSY) || std::chrono::steady_clock::now() >= deadline) {
      fail(err, "cannot open {}: {}", char_path(), errno_string(err));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void Device::start(const std::function<void(std::uint32_t id)>& after_add) {
  const TablePtr table = mapped_.live_table();
  if (!table) {
    fail(EINVAL, "device has no live table");
  }
  info_ = DevInfo{};
  info_.nr_hw_queues = static_cast<std::uint16_t>(mapped_.nr_queues());
  info_.queue_depth = static_cast<std::uint16_t>(mapped_.config().queue_depth);
  info_.max_io_buf_bytes = options_.max_io_bytes;
  info_.dev_id = options_.dev_id < 0 ? kAutoDevId : static_cast<std::uint32_t>(options_.dev_id);
  info_.ublksrv_pid = static_cast<std::int32_t>(::getpid());
  info_.flags = ((kFeatCmdIoctlEncode | kFeatUpdateSize) & control_.features()) | recovery_flags(control_.features());
  info_.ublksrv_flags = kUbdmStamp;
  const std::uint64_t zc = zero_copy_flags();
  const DevInfo wanted = info_;
  info_.flags |= zc;
  try {
    control_.add_dev(info_);
  } catch (const Error& e) {
    if (zc == 0 || (e.code() != EINVAL && e.code() != EPERM && e.code() != EOPNOTSUPP)) {
      throw;
    }
    // A kernel or a policy that refuses zero copy for this device: copy.
    spdlog::warn("{}: the kernel refused zero copy ({}); the device copies its data", mapped_.device_name(),
                 e.what());
    info_ = wanted;
    control_.add_dev(info_);
  }
  added_ = true;
  id_ = info_.dev_id;
  spdlog::info("{}: ublk device {} added ({} queues x {} tags, flags {:#x}, {})", mapped_.device_name(), id_,
               info_.nr_hw_queues, info_.queue_depth, info_.flags, zero_copy() ? "zero copy" : "copy");
  try {
    if (info_.nr_hw_queues != mapped_.nr_queues()) {
      fail(EINVAL, "the kernel allows {} queues for this device, not {} (it has {} CPUs?)", info_.nr_hw_queues,
           mapped_.nr_queues(), info_.nr_hw_queues);
    }
    if (after_add) {
      after_add(id_);
    }
    start_queues();
    params_ = make_params(table->io_limits(), table->size(), info_.max_io_buf_bytes, zero_copy(), options_.read_only);
    control_.set_params(id_, params_);
    if (options_.before_start) {
      options_.before_start(id_);
    }
    control_.start_dev(id_, ::getpid());
    started_ = true;
    const Params got = control_.get_params(id_);
    if ((got.types & kParamDevt) != 0) {
      block_devt_ = makedev(got.devt.disk_major, got.devt.disk_minor);
    }
  } catch (...) {
    teardown(started_);
    throw;
  }
  spdlog::info("{}: serving {} ({} sectors)", mapped_.device_name(), block_path(), table->size());
}

void Device::start_queues() {
  open_char_device();
  for (unsigned q = 0; q < mapped_.nr_queues(); ++q) {
    QueueConfig cfg;
    cfg.char_fd = char_fd_;
    cfg.q_id = static_cast<std::uint16_t>(q);
    cfg.depth = info_.queue_depth;
    cfg.max_io_bytes = info_.max_io_buf_bytes;
    cfg.poll_usec = options_.poll_usec;
    cfg.zero_copy = zero_copy();
    cfg.manual_registration = (info_.flags & kFeatSupportZeroCopy) != 0;
    cfg.force_registration_fallback = options_.force_registration_fallback;
    try {
      cfg.affinity = control_.get_queue_affinity(id_, cfg.q_id);
    } catch (const Error& e) {
      spdlog::warn("{}: queue {} affinity unknown: {}", mapped_.device_name(), q, e.what());
    }
    queues_.push_back(std::make_unique<Queue>(cfg, mapped_.queue(q)));
    queues_.back()->start();
  }
}

void Device::adopt(const DevInfo& info, std::chrono::milliseconds wait, const std::function<void()>& after_start) {
  if ((info.flags & kFeatUserRecovery) == 0) {
    fail(EINVAL, "ublk device {} was added without USER_RECOVERY: it cannot outlive its server", info.dev_id);
  }
  if (info.nr_hw_queues != mapped_.nr_queues() || info.queue_depth != mapped_.config().queue_depth) {
    fail(EINVAL, "ublk device {} has {} queue(s) x {} tags, the recorded device {} x {}", info.dev_id,
         info.nr_hw_queues, info.queue_depth, mapped_.nr_queues(), mapped_.config().queue_depth);
  }
  info_ = info;
  id_ = info.dev_id;
  // The old server's release of /dev/ublkcN runs after its last reference
  // is gone: its exit, its rings' teardown (each holds the file, so their
  // backend I/O has ended first), a child that inherited it. Until then
  // the kernel answers EBUSY.
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    try {
      control_.start_user_recovery(id_);
      break;
    } catch (const Error& e) {
      if (e.code() != EBUSY || std::chrono::steady_clock::now() >= deadline) {
        throw;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  added_ = true;
  try {
    if (after_start) {
      after_start();
    }
    start_queues();
    params_ = control_.get_params(id_);
    if ((params_.types & kParamDevt) != 0) {
      block_devt_ = makedev(params_.devt.disk_major, params_.devt.disk_minor);
    }
    control_.end_user_recovery(id_, ::getpid());
    started_ = true;
  } catch (...) {
    release_queues(true);
    throw;
  }
  spdlog::info("{}: serving {} again (ublk device {} adopted)", mapped_.device_name(), block_path(), id_);
}

std::uint64_t Device::zero_copy_flags() const {
  const std::uint64_t have = control_.features();
  if (!options_.zero_copy || (have & kFeatAutoBufReg) == 0) {
    return 0;
  }
  if (!have_sys_admin()) {
    spdlog::info("{}: zero copy needs CAP_SYS_ADMIN, which ubdmd does not have: the device copies",
                 mapped_.device_name());
    return 0;
  }
  // SUPPORT_ZERO_COPY as well, to register by hand a request the kernel
  // could not register itself (the fallback, kIoFlagNeedRegBuf).
  return kFeatAutoBufReg | (have & kFeatSupportZeroCopy);
}

void Device::resize(sector_t sectors) {
  if (!can_resize()) {
    fail(EOPNOTSUPP, "ublk device {} cannot change size: UPDATE_SIZE needs Linux 6.16 or newer", id_);
  }
  control_.update_size(id_, sectors);
  params_.basic.dev_sectors = sectors;
}

bool Device::survives_exit() const { return started_ && (info_.flags & kFeatUserRecovery) != 0; }

void Device::release_queues(bool ask_to_stop) {
  // Without STOP_DEV the queues are asked to leave, which they do once the
  // core holds none of their requests (the kernel keeps the device); after
  // STOP_DEV the kernel aborts every tag and they leave by themselves. Only
  // after the threads (and their rings) are gone is /dev/ublkcN closed.
  if (ask_to_stop) {
    for (auto& q : queues_) {
      q->request_stop();
    }
  }
  for (auto& q : queues_) {
    q->join();
  }
  queues_.clear();
  if (char_fd_ >= 0) {
    ::close(char_fd_);
    char_fd_ = -1;
  }
  added_ = false;
}

void Device::stop(const std::function<void()>& after_stop_dev) { teardown(started_, after_stop_dev); }

void Device::teardown(bool stop_kernel_device, const std::function<void()>& after_stop_dev) {
  if (!added_) {
    return;
  }
  if (stop_kernel_device) {
    // The kernel aborts every tag's command; the queue threads finish what
    // the core still holds and leave.
    try {
      control_.stop_dev(id_);
    } catch (...) {
      if (after_stop_dev) {
        after_stop_dev();
      }
      throw;
    }
    started_ = false;
    if (after_stop_dev) {
      after_stop_dev();
    }
  }
  release_queues(!stop_kernel_device);
  control_.del_dev(id_);
  spdlog::info("{}: ublk device {} deleted", mapped_.device_name(), id_);
}

}  // namespace ubdm::ublk
