// SPDX-License-Identifier: MIT
// The target interface, mirroring the kernel's dm target_type for
// request-based tables, and the Clone that a target maps.
//
// Threads: map, end_io, busy and timer_fired run on a queue thread (any of
// them, concurrently for different clones). The suspend hooks, status,
// message and iterate_devices run on the control thread. A target that keeps
// mutable state shared by both sides protects it itself; the core takes no
// lock around any of these calls.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>
#include <string_view>
#include <type_traits>

#include "ubdm/clock.hpp"
#include "ubdm/intrusive_list.hpp"
#include "ubdm/io.hpp"
#include "ubdm/request.hpp"
#include "ubdm/types.hpp"

namespace ubdm {

class DispatchQueue;
class Target;
struct OriginalIo;

// What map() decided (dm's DM_MAPIO_*).
enum class MapResult : std::uint8_t {
  kSubmitted,     // the target took the clone; it will issue() or end() it later
  kRemapped,      // the target called remap(); the core submits the I/O
  kRequeue,       // try this clone again soon (resource shortage)
  kDelayRequeue,  // try again after the requeue delay (100 ms, as dm-rq)
  kKill,          // fail the clone with EIO; end_io is not called
};

// What end_io() decided (dm's DM_ENDIO_*).
enum class EndIoResult : std::uint8_t {
  kDone,          // the clone is finished with the error end_io was given
  kRequeue,       // map this clone's remaining range again, now
  kDelayRequeue,  // map it again after the requeue delay
};

enum class StatusType : std::uint8_t { kInfo, kTable };

// Milliseconds a DELAY_REQUEUE waits (dm-rq's dm_requeue_original_request).
inline constexpr unsigned kDelayRequeueMs = 100;
// Bytes a target may keep per clone (dm's per_io_data_size).
inline constexpr std::size_t kPerIoDataSize = 48;

// A clone: the piece of an original request that one target maps. The core
// owns it (preallocated per tag); a target sees it between map() and the end
// of end_io() and must not keep a pointer past that.
class Clone final : public IoCompletion {
 public:
  Clone() = default;
  Clone(const Clone&) = delete;
  Clone& operator=(const Clone&) = delete;

  const Request& request() const { return *req_; }
  Op op() const { return req_->op; }
  std::uint32_t flags() const { return req_->flags; }
  // Device sector of this piece and its length. For FLUSH both are 0.
  sector_t sector() const { return sector_; }
  std::uint32_t nr_sectors() const { return nr_sectors_; }
  // 64-bit: a DISCARD or WRITE_ZEROES piece may be 4 GiB or more.
  std::uint64_t bytes() const { return std::uint64_t{nr_sectors_} << kSectorShift; }
  // Sector offset of this piece inside the target.
  sector_t target_offset() const;
  // For FLUSH: which of the target's num_flush_clones() this is.
  unsigned flush_index() const { return flush_index_; }
  // The piece's slice of the original's buffer (READ/WRITE only); nullptr
  // on a zero-copy request, whose data the CPU cannot reach (targets that
  // read or change data say so with Target::needs_cpu_data()).
  std::byte* buf() const { return buf_; }
  unsigned queue_id() const;

  // Direct the clone at an underlying device. Call from map() and return
  // kRemapped, or return kSubmitted and issue() later.
  void remap(const BlockDevice& dev, sector_t dev_sector);
  // Submit the remapped I/O (targets that returned kSubmitted). Queue thread.
  void issue();
  // Finish the clone without (more) backend I/O, e.g. the zero target. Valid
  // only for a clone the target holds (map returned or will return
  // kSubmitted). end_io() is still called, with `err`.
  void end(int err);
  // Hold the clone; Target::timer_fired() runs after `ms`, or at once when the
  // device starts to suspend (dm-delay flushes on presuspend).
  void start_timer(unsigned ms);

  // Target-private per-clone storage, zeroed before each map().
  template <typename T>
  T& per_io() {
    static_assert(sizeof(T) <= kPerIoDataSize && alignof(T) <= alignof(std::max_align_t));
    static_assert(std::is_trivially_destructible_v<T>);
    return *reinterpret_cast<T*>(per_io_.data());
  }

  // IoCompletion: the backend finished io_.
  void io_complete(int res) override;

 private:
  friend class DispatchQueue;
  friend struct OriginalIo;

  enum class State : std::uint8_t { kFree, kReady, kMapping, kHeld, kInFlight, kTimer, kEnded, kDelayed, kPushback };

  // Target-facing view of the current piece.
  const Request* req_ = nullptr;
  sector_t sector_ = 0;
  std::uint32_t nr_sectors_ = 0;
  unsigned flush_index_ = 0;
  std::byte* buf_ = nullptr;
  std::uint64_t buf_offset_ = 0;  // byte offset of this piece in the original's data
  alignas(std::max_align_t) std::array<std::byte, kPerIoDataSize> per_io_{};

  // Core bookkeeping.
  IoRequest io_;
  OriginalIo* orig_ = nullptr;
  DispatchQueue* queue_ = nullptr;
  Target* target_ = nullptr;     // who mapped the current piece
  std::uint64_t range_begin_ = 0;  // remaining work, in sectors (or flush units for FLUSH)
  std::uint64_t range_end_ = 0;
  std::uint64_t piece_units_ = 0;  // units covered by the current piece
  std::uint64_t table_gen_ = 0;    // table the flush units refer to
  std::uint64_t deadline_ms_ = 0;
  int end_error_ = 0;
  State state_ = State::kFree;
  bool timer_is_target_ = false;   // timer belongs to the target, not a delayed requeue
  bool interrupted_ = false;       // in flight when a noflush suspend was interrupted

 public:
  ListHook hook;  // core's lists; targets must not touch it
};

// Limits a frontend announces for the mapped device (dm's queue_limits,
// stacked over the underlying devices). Sizes in bytes; 0 means "none".
struct IoLimits {
  std::uint32_t logical_block_size = 512;
  std::uint32_t physical_block_size = 512;
  std::uint32_t io_min = 0;
  std::uint32_t io_opt = 0;
  bool volatile_cache = false;  // some device caches writes: FLUSH/FUA matter
  bool rotational = false;
  bool discard = true;          // every device can discard
  std::uint32_t discard_granularity = 0;
};

// What a target may ask of the mapped device that owns its table.
class DeviceContext {
 public:
  virtual ~DeviceContext() = default;
  // The device's name as it is now (a rename changes it). Any thread; for
  // log lines, not for the data path.
  virtual std::string device_name() const = 0;
  // dm_noflush_suspending(): a noflush suspend is in progress. Any thread.
  virtual bool noflush_suspending() const = 0;
  // A suspend (either kind) is in progress or the device is suspended.
  virtual bool suspending() const = 0;
  // dm_suspended(): the suspend has finished (not merely begun). Any thread.
  virtual bool suspended() const = 0;
  // dm_table_event(): bump the device's event counter and wake waiters.
  virtual void trigger_event() = 0;
  // Hardware queues of the device (targets keep per-queue state).
  virtual unsigned queue_count() const { return 1; }
  // True while a restarted daemon rebuilds the device's tables from its
  // record: a multipath path that cannot be opened then joins the table as
  // a failed stand-in (DeviceOpener::open_absent) instead of failing it, as
  // the kernel's map would still have the path, failed.
  virtual bool restoring() const { return false; }
};

// Everything a target constructor gets.
struct TargetEnv {
  DeviceOpener& opener;
  DeviceContext& device;
  const Clock& clock;
  sector_t start = 0;  // the target's first sector in the table
  sector_t len = 0;    // its length in sectors
  unsigned nr_queues = 1;  // Clone::queue_id() is below this
};

class Target {
 public:
  virtual ~Target() = default;

  // Required. Map one piece (dm's clone_and_map_rq). Queue thread.
  virtual MapResult map(Clone& clone) = 0;

  // Optional. A piece finished with `error` (0 or -errno): decide. The default
  // passes the result on. Queue thread.
  virtual EndIoResult end_io(Clone& clone, int error);

  // Optional. Timer started by Clone::start_timer() expired (or the device
  // began to suspend). The target must issue() or end() the clone. Queue thread.
  virtual void timer_fired(Clone& clone);

  // Optional. True when the target cannot take more I/O now; the core stops
  // dispatching and keeps requests queued. Queue thread.
  virtual bool busy() const { return false; }

  // Optional. Longest piece starting at `target_offset` (sectors) that can be
  // mapped as one clone, e.g. up to a stripe chunk boundary. Never 0.
  virtual sector_t max_io_len(sector_t target_offset) const;

  // Optional. How many clones a FLUSH produces for this target (one per
  // underlying device it must reach, e.g. every stripe). May be 0.
  virtual unsigned num_flush_clones() const { return 1; }

  // Optional. True when the target reads or writes the data of READ/WRITE
  // clones itself (zero fills reads, flakey corrupts), so it needs
  // Clone::buf(): a zero-copy device cannot serve it, and one created with
  // such a table copies. Fixed at construction.
  virtual bool needs_cpu_data() const { return false; }

  // Optional suspend/resume hooks (control thread), in dm's order:
  // presuspend -> [drain] -> postsuspend; presuspend_undo if the suspend is
  // interrupted; preresume (may refuse with -errno) -> resume.
  virtual void presuspend() {}
  virtual void presuspend_undo() {}
  virtual void postsuspend() {}
  virtual int preresume() { return 0; }
  virtual void resume() {}

  // Required. The parameters after "<start> <len> <type> ", kernel format. Control thread.
  virtual std::string status(StatusType type) const = 0;

  // Optional. Handle a message; returns text for the caller (may be empty) or
  // throws ubdm::Error. Control thread.
  virtual std::string message(std::span<const std::string> args);

  // Optional. The messages that bring a target freshly built from the same
  // table line to this one's operator-visible state (a restarted daemon
  // replays them, in order, on an active device). Empty for targets whose
  // state is all in their table. Control thread.
  virtual std::vector<std::vector<std::string>> restore_messages() const { return {}; }

  // Optional. The devices this target was built with as stand-ins
  // (DeviceOpener::open_absent, while DeviceContext::restoring), as written
  // in the table: a reload of the same table once they open again brings
  // them back. Control thread.
  virtual std::vector<std::string> absent_devices() const { return {}; }

  // Optional. Adjust the stacked limits (dm's io_hints), e.g. striped sets
  // io_min to the chunk and io_opt to a full stripe. Control thread.
  virtual void io_hints(IoLimits& /*limits*/) const {}

  // Optional. Report each underlying device with the range used on it.
  using DeviceVisitor = std::function<void(const BlockDevice& dev, sector_t start, sector_t len)>;
  virtual void iterate_devices(const DeviceVisitor& visit) const;

  std::string_view type_name() const { return type_name_; }
  sector_t start() const { return start_; }
  sector_t len() const { return len_; }

 private:
  friend class Table;
  std::string_view type_name_;
  sector_t start_ = 0;
  sector_t len_ = 0;
};

// Registry entry (kublk's tgt_ops_list, SPDK's module table). Constructors
// validate `args` and throw ubdm::Error with a message naming the bad argument.
struct TargetType {
  std::string_view name;
  std::array<unsigned, 3> version;
  std::unique_ptr<Target> (*create)(TargetEnv& env, std::span<const std::string> args);
  // Singleton targets must be alone in their table (multipath).
  bool singleton = false;
  // Immutable: a later table for the same device must use the same type,
  // or be all `error` (dm's DM_TARGET_IMMUTABLE with the error wildcard).
  bool immutable = false;
};

// Every target type, in one explicit list (src/targets/registry.cpp).
std::span<const TargetType> target_types();
const TargetType* find_target_type(std::string_view name);
// Register an extra type at run time (tests, embedders); `name` must be new
// and must stay valid. Not listed by target_types(). Throws EEXIST.
void add_target_type(const TargetType& type);

}  // namespace ubdm
