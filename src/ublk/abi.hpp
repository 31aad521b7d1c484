// SPDX-License-Identifier: MIT
// The ublk user-space ABI (ublk_drv, kernel 6.12), written from the
// protocol facts rather than taken from a kernel header: Debian bookworm's
// linux-libc-dev is 6.1 and lacks the ioctl-encoded opcodes. Layouts are
// pinned with static_asserts so a mistake fails the build, not the kernel.
#pragma once

#include <linux/ioctl.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>

namespace ubdm::ublk {

// --- structures -------------------------------------------------------------

// Payload of every control command (in an SQE128's cmd area).
struct CtrlCmd {
  std::uint32_t dev_id;
  std::uint16_t queue_id;  // 0xffff when the command is not about a queue
  std::uint16_t len;       // bytes at addr
  std::uint64_t addr;      // user buffer (in or out)
  std::uint64_t data[1];   // command argument (START_DEV: daemon pid)
  std::uint16_t dev_path_len;  // unprivileged devices only
  std::uint16_t pad;
  std::uint32_t reserved;
};

// Device description exchanged by ADD_DEV and GET_DEV_INFO.
struct DevInfo {
  std::uint16_t nr_hw_queues;
  std::uint16_t queue_depth;
  std::uint16_t state;
  std::uint16_t pad0;
  std::uint32_t max_io_buf_bytes;
  std::uint32_t dev_id;
  std::int32_t ublksrv_pid;
  std::uint32_t pad1;
  std::uint64_t flags;          // UBLK_F_* negotiated by ADD_DEV
  std::uint64_t ublksrv_flags;  // ours; the kernel ignores it
  std::uint32_t owner_uid;
  std::uint32_t owner_gid;
  std::uint64_t reserved1;
  std::uint64_t reserved2;
};

// Per-tag request descriptor, written by the kernel into the mmapped array.
struct IoDesc {
  std::uint32_t op_flags;  // op in bits 0-7, flags above
  std::uint32_t nr_sectors;
  std::uint64_t start_sector;
  std::uint64_t addr;  // the buffer we passed in FETCH/COMMIT
};

// Payload of the per-I/O commands (fits a 64-byte SQE's cmd area).
struct IoCmd {
  std::uint16_t q_id;
  std::uint16_t tag;
  std::int32_t result;  // COMMIT: bytes done or -errno
  std::uint64_t addr;   // our buffer for this tag
};

struct ParamBasic {
  std::uint32_t attrs;
  std::uint8_t logical_bs_shift;
  std::uint8_t physical_bs_shift;
  std::uint8_t io_opt_shift;
  std::uint8_t io_min_shift;
  std::uint32_t max_sectors;
  std::uint32_t chunk_sectors;
  std::uint64_t dev_sectors;
  std::uint64_t virt_boundary_mask;
};

struct ParamDiscard {
  std::uint32_t discard_alignment;
  std::uint32_t discard_granularity;
  std::uint32_t max_discard_sectors;
  std::uint32_t max_write_zeroes_sectors;
  std::uint16_t max_discard_segments;
  std::uint16_t reserved0;
};

struct ParamDevt {
  std::uint32_t char_major;
  std::uint32_t char_minor;
  std::uint32_t disk_major;
  std::uint32_t disk_minor;
};

struct ParamZoned {
  std::uint32_t max_open_zones;
  std::uint32_t max_active_zones;
  std::uint32_t max_zone_append_sectors;
  std::uint8_t reserved[20];
};

// DMA alignment (6.16+; kParamDmaAlign): a mask, alignment + 1 a power of
// two below the page size. Zero-copy devices set it to what their backing
// devices need for O_DIRECT, since the request's own pages reach them.
struct ParamDmaAlign {
  std::uint32_t alignment;
  std::uint8_t pad[4];
};

struct Params {
  std::uint32_t len;    // sizeof(Params); the kernel clamps shorter or longer
  std::uint32_t types;  // kParam* bits present
  ParamBasic basic;
  ParamDiscard discard;
  ParamDevt devt;
  ParamZoned zoned;
  ParamDmaAlign dma;    // read by kernels that know kParamDmaAlign only
};

static_assert(sizeof(CtrlCmd) == 32);
static_assert(offsetof(CtrlCmd, queue_id) == 4 && offsetof(CtrlCmd, len) == 6);
static_assert(offsetof(CtrlCmd, addr) == 8 && offsetof(CtrlCmd, data) == 16);
static_assert(offsetof(CtrlCmd, dev_path_len) == 24 && offsetof(CtrlCmd, reserved) == 28);
static_assert(sizeof(DevInfo) == 64);
static_assert(offsetof(DevInfo, max_io_buf_bytes) == 8 && offsetof(DevInfo, dev_id) == 12);
static_assert(offsetof(DevInfo, ublksrv_pid) == 16 && offsetof(DevInfo, flags) == 24);
static_assert(offsetof(DevInfo, ublksrv_flags) == 32 && offsetof(DevInfo, owner_uid) == 40);
static_assert(offsetof(DevInfo, reserved1) == 48 && offsetof(DevInfo, reserved2) == 56);
static_assert(sizeof(IoDesc) == 24);
static_assert(offsetof(IoDesc, nr_sectors) == 4 && offsetof(IoDesc, start_sector) == 8 &&
              offsetof(IoDesc, addr) == 16);
static_assert(sizeof(IoCmd) == 16);
static_assert(offsetof(IoCmd, tag) == 2 && offsetof(IoCmd, result) == 4 && offsetof(IoCmd, addr) == 8);
static_assert(sizeof(ParamBasic) == 32 && offsetof(ParamBasic, max_sectors) == 8 &&
              offsetof(ParamBasic, dev_sectors) == 16);
static_assert(sizeof(ParamDiscard) == 20 && offsetof(ParamDiscard, max_discard_segments) == 16);
static_assert(sizeof(ParamDevt) == 16);
static_assert(sizeof(ParamZoned) == 32);
static_assert(sizeof(Params) == 120 && offsetof(Params, dma) == 108);
static_assert(offsetof(Params, basic) == 8 && offsetof(Params, discard) == 40);
static_assert(offsetof(Params, devt) == 60 && offsetof(Params, zoned) == 76);

// --- opcodes (ioctl-encoded, 'u'; the only form new code should use) -------

inline constexpr unsigned kCmdGetQueueAffinity = _IOR('u', 0x01, CtrlCmd);
inline constexpr unsigned kCmdGetDevInfo = _IOR('u', 0x02, CtrlCmd);
inline constexpr unsigned kCmdAddDev = _IOWR('u', 0x04, CtrlCmd);
inline constexpr unsigned kCmdDelDev = _IOWR('u', 0x05, CtrlCmd);
inline constexpr unsigned kCmdStartDev = _IOWR('u', 0x06, CtrlCmd);
inline constexpr unsigned kCmdStopDev = _IOWR('u', 0x07, CtrlCmd);
inline constexpr unsigned kCmdSetParams = _IOWR('u', 0x08, CtrlCmd);
inline constexpr unsigned kCmdGetParams = _IOR('u', 0x09, CtrlCmd);
inline constexpr unsigned kCmdStartUserRecovery = _IOWR('u', 0x10, CtrlCmd);
inline constexpr unsigned kCmdEndUserRecovery = _IOWR('u', 0x11, CtrlCmd);
inline constexpr unsigned kCmdGetFeatures = _IOR('u', 0x13, CtrlCmd);
inline constexpr unsigned kCmdDelDevAsync = _IOR('u', 0x14, CtrlCmd);
inline constexpr unsigned kCmdUpdateSize = _IOWR('u', 0x15, CtrlCmd);  // 6.16+: data[0] = sectors

inline constexpr unsigned kIoFetchReq = _IOWR('u', 0x20, IoCmd);
inline constexpr unsigned kIoCommitAndFetchReq = _IOWR('u', 0x21, IoCmd);
// Zero copy (6.15+, devices with kFeatSupportZeroCopy): put the request of
// (q_id, tag) into the issuing ring's buffer table at index `addr`, and take
// it out again. Used where automatic registration failed (kIoFlagNeedRegBuf).
inline constexpr unsigned kIoRegisterIoBuf = _IOWR('u', 0x23, IoCmd);
inline constexpr unsigned kIoUnregisterIoBuf = _IOWR('u', 0x24, IoCmd);

// The values the kernel documents for x86-64.
static_assert(kCmdGetQueueAffinity == 0x80207501U && kCmdGetDevInfo == 0x80207502U);
static_assert(kCmdAddDev == 0xc0207504U && kCmdDelDev == 0xc0207505U);
static_assert(kCmdStartDev == 0xc0207506U && kCmdStopDev == 0xc0207507U);
static_assert(kCmdSetParams == 0xc0207508U && kCmdGetParams == 0x80207509U);
static_assert(kCmdGetFeatures == 0x80207513U && kCmdDelDevAsync == 0x80207514U);
static_assert(kCmdStartUserRecovery == 0xc0207510U && kCmdEndUserRecovery == 0xc0207511U);
static_assert(kCmdUpdateSize == 0xc0207515U);
static_assert(kIoFetchReq == 0xc0107520U && kIoCommitAndFetchReq == 0xc0107521U);
static_assert(kIoRegisterIoBuf == 0xc0107523U && kIoUnregisterIoBuf == 0xc0107524U);

// --- constants ---------------------------------------------------------------

inline constexpr std::uint16_t kNoQueue = 0xffff;
inline constexpr std::uint32_t kAutoDevId = 0xffffffffU;
inline constexpr unsigned kMaxQueueDepth = 4096;
inline constexpr unsigned kMaxQueues = 4096;
// The descriptor array of queue q is mmapped at q * kQueueDescStride.
inline constexpr std::uint64_t kCmdBufOffset = 0;
inline std::uint64_t queue_desc_offset(unsigned q, std::size_t page) {
  const std::size_t per_queue = (kMaxQueueDepth * sizeof(IoDesc) + page - 1) / page * page;
  return kCmdBufOffset + static_cast<std::uint64_t>(q) * per_queue;
}

// CQE results of FETCH/COMMIT_AND_FETCH.
inline constexpr int kIoResOk = 0;
inline constexpr int kIoResNeedGetData = 1;
inline constexpr int kIoResAbort = -ENODEV;

// Request ops (IoDesc::op_flags & 0xff) and flags.
enum IoOp : std::uint8_t {
  kOpRead = 0,
  kOpWrite = 1,
  kOpFlush = 2,
  kOpDiscard = 3,
  kOpWriteSame = 4,
  kOpWriteZeroes = 5,
};
inline constexpr std::uint32_t kIoFlagFailfastDev = 1U << 8;
inline constexpr std::uint32_t kIoFlagFailfastTransport = 1U << 9;
inline constexpr std::uint32_t kIoFlagFailfastDriver = 1U << 10;
inline constexpr std::uint32_t kIoFlagFua = 1U << 13;
inline constexpr std::uint32_t kIoFlagNoUnmap = 1U << 15;
// Automatic buffer registration failed for this request (kFeatAutoBufReg
// with kAutoBufRegFallback): register it by hand, or it has no data buffer.
inline constexpr std::uint32_t kIoFlagNeedRegBuf = 1U << 17;

// Feature flags (DevInfo::flags).
inline constexpr std::uint64_t kFeatSupportZeroCopy = 1ULL << 0;
inline constexpr std::uint64_t kFeatUringCmdCompInTask = 1ULL << 1;
inline constexpr std::uint64_t kFeatNeedGetData = 1ULL << 2;
inline constexpr std::uint64_t kFeatUserRecovery = 1ULL << 3;
inline constexpr std::uint64_t kFeatUserRecoveryReissue = 1ULL << 4;
inline constexpr std::uint64_t kFeatUnprivilegedDev = 1ULL << 5;
inline constexpr std::uint64_t kFeatCmdIoctlEncode = 1ULL << 6;
inline constexpr std::uint64_t kFeatUserCopy = 1ULL << 7;
inline constexpr std::uint64_t kFeatZoned = 1ULL << 8;
inline constexpr std::uint64_t kFeatUserRecoveryFailIo = 1ULL << 9;  // 6.13+
inline constexpr std::uint64_t kFeatUpdateSize = 1ULL << 10;          // 6.16+
// Zero copy by automatic buffer registration (6.16+): at dispatch the kernel
// puts each request's pages into the ring's buffer table at the index the
// tag's last FETCH/COMMIT named (auto_buf_reg_addr), and takes them out at
// its COMMIT; the backend reads and writes them with READ/WRITE_FIXED at
// byte offsets into the request. No copy through a tag buffer.
inline constexpr std::uint64_t kFeatAutoBufReg = 1ULL << 11;          // 6.16+
inline constexpr std::uint64_t kFeatQuiesce = 1ULL << 12;             // 6.16+

// DevInfo::ublksrv_flags is the server's own: the kernel keeps it with the
// device and returns it in GET_DEV_INFO. ubdm stamps its devices there, so
// a restarted daemon tells its own devices from another ublk server's.
inline constexpr std::uint64_t kUbdmStamp = 0x5542444d00000000ULL;  // "UBDM" in the high half
inline constexpr std::uint64_t kUbdmStampMask = 0xffffffff00000000ULL;
inline constexpr bool is_ubdm_device(const DevInfo& info) {
  return (info.ublksrv_flags & kUbdmStampMask) == kUbdmStamp;
}

// The sqe->addr of a FETCH or COMMIT_AND_FETCH on a kFeatAutoBufReg device
// (struct ublk_auto_buf_reg: index in bits 0-15, flags in 16-23, the rest
// reserved and 0). With kAutoBufRegFallback a failed registration still
// delivers the request, flagged kIoFlagNeedRegBuf, instead of failing it.
inline constexpr std::uint8_t kAutoBufRegFallback = 1U << 0;
inline constexpr std::uint64_t auto_buf_reg_addr(std::uint16_t index, std::uint8_t flags) {
  return std::uint64_t{index} | (std::uint64_t{flags} << 16);
}

// Param types and basic attributes.
inline constexpr std::uint32_t kParamBasic = 1U << 0;
inline constexpr std::uint32_t kParamDiscard = 1U << 1;
inline constexpr std::uint32_t kParamDevt = 1U << 2;
inline constexpr std::uint32_t kParamDmaAlign = 1U << 4;  // 6.16+
inline constexpr std::uint32_t kAttrReadOnly = 1U << 0;
inline constexpr std::uint32_t kAttrRotational = 1U << 1;
inline constexpr std::uint32_t kAttrVolatileCache = 1U << 2;
inline constexpr std::uint32_t kAttrFua = 1U << 3;

// Device states (DevInfo::state).
inline constexpr std::uint16_t kStateDead = 0;
inline constexpr std::uint16_t kStateLive = 1;
inline constexpr std::uint16_t kStateQuiesced = 2;

}  // namespace ubdm::ublk
