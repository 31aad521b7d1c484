// SPDX-License-Identifier: MIT
#include "targets/multipath/multipath.hpp"

#include <linux/fs.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <ctime>

#include <spdlog/spdlog.h>

#include "targets/multipath/path_checker.hpp"
#include "targets/target_args.hpp"
#include "ubdm/error.hpp"

namespace ubdm::mpath {
namespace {

constexpr unsigned kMaxArgs = 1024;  // the kernel's dm_arg ranges
constexpr unsigned kMaxFeatureArgs = 16;
constexpr unsigned kDefaultCheckInterval = 5;

bool word_is(const std::string& a, const char* b) { return ::strcasecmp(a.c_str(), b) == 0; }

std::uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

// Relaxed per-queue counters: written by one queue thread, read by status.
void bump(std::atomic<std::uint64_t>& c, std::int64_t by) {
  c.store(c.load(std::memory_order_relaxed) + static_cast<std::uint64_t>(by), std::memory_order_relaxed);
}

}  // namespace

const char* checker_state_name(CheckerState s) {
  switch (s) {
    case CheckerState::kUnchecked: return "unchecked";
    case CheckerState::kUp: return "ready";
    case CheckerState::kDown: return "faulty";
    case CheckerState::kPending: return "i/o pending";
    case CheckerState::kTimeout: return "i/o timeout";
  }
  return "?";
}

bool MultipathTarget::is_path_error(int err) {
  switch (err) {
    case 0:
    case -EOPNOTSUPP:  // BLK_STS_NOTSUPP
    case -ENOSPC:      // BLK_STS_NOSPC
    case -EREMOTEIO:   // BLK_STS_TARGET
    case -EBADE:       // BLK_STS_RESV_CONFLICT (formerly NEXUS)
    case -ENODATA:     // BLK_STS_MEDIUM
    case -EILSEQ:      // BLK_STS_PROTECTION
    case -EINVAL:      // a malformed request fails on every path alike
      return false;
    default:
      return true;  // anything else could be the path: retry elsewhere
  }
}

std::optional<std::uint64_t> MultipathTarget::device_bytes_now(const BlockDevice& dev) {
  if (dev.fd() < 0) {
    return std::nullopt;
  }
  if (dev.is_block_device()) {
    std::uint64_t bytes = 0;
    if (::ioctl(dev.fd(), BLKGETSIZE64, &bytes) == 0) {
      return bytes;  // 0 once the disk was deleted (del_gendisk zeroes the capacity)
    }
    return errno == ENXIO || errno == ENODEV ? std::optional<std::uint64_t>(0) : std::nullopt;
  }
  struct stat st {};
  if (::fstat(dev.fd(), &st) == 0 && S_ISREG(st.st_mode)) {
    return static_cast<std::uint64_t>(st.st_size);
  }
  return std::nullopt;
}

bool MultipathTarget::covers(const Path& p, std::uint64_t end_byte) const {
  const std::optional<std::uint64_t> now = size_probe_(*p.dev);
  return !now.has_value() || *now >= end_byte;  // unknown: assume it still does
}

bool MultipathTarget::is_path_failure(const Path& p, int err, std::uint64_t end_byte) const {
  if (is_path_error(err)) {
    return true;
  }
  // A path that went away (a deleted SCSI disk: its size drops to 0, and
  // writes through an fd opened before return ENOSPC) says ENOSPC too. That
  // is the path's fault, not the I/O's, when the device no longer reaches
  // the end of the I/O. Asked on this error path only.
  return err == -ENOSPC && !covers(p, end_byte);
}

// ---------------------------------------------------------------------------
// Construction

MultipathTarget::MultipathTarget(TargetEnv& env, std::span<const std::string> args)
    : device_(env.device), clock_(env.clock), nr_queues_(std::max(1U, env.nr_queues)) {
  ArgReader in("multipath", args);
  auto count = [&](const char* what, std::uint64_t lo, std::uint64_t hi) {
    return static_cast<unsigned>(in.next_u64_in(what, lo, hi));
  };

  // <#features> [feature...]
  const unsigned nfeat = count("feature count", 0, kMaxFeatureArgs);
  if (in.remaining() < nfeat) {
    in.bad(fmt::format("feature count {} but only {} arguments follow", nfeat, in.remaining()));
  }
  bool qifnp = false;
  std::vector<Path*> absent;  // paths built as stand-ins (DeviceContext::restoring)
  for (unsigned used = 0; used < nfeat;) {
    const std::string& w = in.next("feature");
    ++used;
    auto value = [&](const char* what) -> const std::string& {
      if (used >= nfeat) {
        in.bad(fmt::format("feature {} needs a value", what));
      }
      ++used;
      return in.next(what);
    };
    std::uint64_t v = 0;
    if (word_is(w, "queue_if_no_path")) {
      qifnp = true;
    } else if (word_is(w, "retain_attached_hw_handler")) {
      retain_hw_handler_ = true;
    } else if (word_is(w, "pg_init_retries")) {
      const std::string& s = value("pg_init_retries");
      if (!parse_u64(s, v) || v < 1 || v > 50) {
        in.bad(fmt::format("pg_init_retries must be between 1 and 50, got '{}'", s));
      }
      pg_init_retries_ = static_cast<unsigned>(v);
    } else if (word_is(w, "pg_init_delay_msecs")) {
      const std::string& s = value("pg_init_delay_msecs");
      if (!parse_u64(s, v) || v > 60000) {
        in.bad(fmt::format("pg_init_delay_msecs must be between 0 and 60000, got '{}'", s));
      }
      pg_init_delay_set_ = true;
      pg_init_delay_msecs_ = static_cast<unsigned>(v);
    } else if (word_is(w, "queue_mode")) {
      // Accepted for compatibility; ubdm is always request-based. Like the
      // kernel, `bio` is echoed in the table and implies retaining the
      // attached hardware handler, so the table reads back the same.
      const std::string& s = value("queue_mode");
      if (word_is(s, "bio")) {
        queue_mode_bio_ = true;
        retain_hw_handler_ = true;
      } else if (!word_is(s, "rq") && !word_is(s, "mq")) {
        in.bad(fmt::format("queue_mode must be bio, rq or mq, got '{}'", s));
      }
    } else if (word_is(w, "no_path_retry")) {
      const std::string& s = value("no_path_retry");
      if (word_is(s, "fail")) {
        no_path_retry_.mode = NoPathRetry::Mode::kFail;
      } else if (word_is(s, "queue")) {
        no_path_retry_.mode = NoPathRetry::Mode::kQueue;
      } else if (parse_u64(s, v) && v >= 1 && v <= 1000000) {
        no_path_retry_.mode = NoPathRetry::Mode::kCount;
        no_path_retry_.count = static_cast<unsigned>(v);
      } else {
        in.bad(fmt::format("no_path_retry must be fail, queue or a number of checker intervals, got '{}'", s));
      }
    } else if (word_is(w, "path_check_interval")) {
      const std::string& s = value("path_check_interval");
      if (!parse_u64(s, v) || v > 3600) {
        in.bad(fmt::format("path_check_interval must be 0 (off) to 3600 seconds, got '{}'", s));
      }
      check_interval_s_ = static_cast<unsigned>(v);
    } else if (word_is(w, "failback")) {
      const std::string& s = value("failback");
      if (word_is(s, "immediate")) {
        failback_immediate_ = true;
      } else if (!word_is(s, "manual")) {
        in.bad(fmt::format("failback must be immediate or manual, got '{}'", s));
      }
    } else {
      in.bad(fmt::format("unrecognised multipath feature '{}'", w));
    }
  }
  if (no_path_retry_.mode == NoPathRetry::Mode::kCount && check_interval_s_ == 0) {
    in.bad("no_path_retry with a count needs the path checker (path_check_interval > 0)");
  }
  if (no_path_retry_.mode == NoPathRetry::Mode::kQueue || no_path_retry_.mode == NoPathRetry::Mode::kCount) {
    qifnp = true;
  } else if (no_path_retry_.mode == NoPathRetry::Mode::kFail) {
    qifnp = false;
  }
  queue_if_no_path_.store(qifnp);

  // <#hw_handler_args> [name [args...]]
  const unsigned nhw = count("hardware handler argument count", 0, kMaxArgs);
  if (nhw > 0) {
    const std::string& name = in.next("hardware handler name");
    in.bad(fmt::format("hardware handler '{}' is not supported: ubdm has none (use 0)", name));
  }

  // <#priority_groups> <initial_pg>
  const unsigned npg = count("priority group count", 0, kMaxArgs);
  const unsigned initial = count("initial priority group", 0, kMaxArgs);
  if ((npg == 0) != (initial == 0) || initial > npg) {
    in.bad(fmt::format("invalid initial priority group {} (there are {} groups)", initial, npg));
  }

  for (unsigned g = 0; g < npg; ++g) {
    auto group = std::make_unique<Group>();
    group->number = g + 1;
    if (in.done()) {
      in.bad(fmt::format("priority group count mismatch: {} declared, {} given", npg, g));
    }
    const std::string& sel_name = in.next("path selector");
    const unsigned nsel = count("selector argument count", 0, kMaxArgs);
    if (in.remaining() < nsel) {
      in.bad(fmt::format("selector {} expects {} arguments, {} left", sel_name, nsel, in.remaining()));
    }
    std::vector<std::string> sel_args;
    for (unsigned i = 0; i < nsel; ++i) {
      sel_args.push_back(in.next("selector argument"));
    }
    const unsigned npaths = count("path count", 1, kMaxArgs);
    const unsigned nper = count("per-path argument count", 0, kMaxArgs);
    std::vector<SelectorPath*> sel_paths;
    std::vector<std::vector<std::string>> per_path_args(npaths);
    for (unsigned i = 0; i < npaths; ++i) {
      auto p = std::make_unique<Path>();
      p->given = in.next("path device");
      try {
        p->dev = open_device_range(env, "multipath", p->given, 0, env.len);
      } catch (const Error& e) {
        if (!env.device.restoring()) {
          throw Error(e.code(), fmt::format("{} (group {}, path {})", e.what(), g + 1, i + 1));
        }
        spdlog::warn("{}: path {} cannot be opened ({}): kept in the map as a failed path",
                     env.device.device_name(), p->given, e.what());
        p->dev = env.opener.open_absent(p->given, env.len);
        absent.push_back(p.get());
        absent_.push_back(p->given);
      }
      p->index = static_cast<unsigned>(paths_.size());
      p->group = g;
      p->index_in_group = i;
      p->inflight = std::make_unique<std::atomic<std::uint64_t>[]>(nr_queues_);
      p->ios = std::make_unique<std::atomic<std::uint64_t>[]>(nr_queues_);
      for (unsigned j = 0; j < nper; ++j) {
        per_path_args[i].push_back(in.next("per-path argument"));
      }
      sel_paths.push_back(p.get());
      group->paths.push_back(p.get());
      paths_.push_back(std::move(p));
    }
    group->selector = create_selector(sel_name, sel_args, nr_queues_, sel_paths);
    for (unsigned i = 0; i < npaths; ++i) {
      group->selector->add_path(i, per_path_args[i]);
    }
    group->valid.store(static_cast<int>(npaths));
    groups_.push_back(std::move(group));
  }
  if (!in.done()) {
    in.bad(fmt::format("{} unexpected argument(s) after the last priority group, starting with '{}'",
                       in.remaining(), in.peek()));
  }
  valid_paths_.store(static_cast<int>(paths_.size()));
  for (Path* p : absent) {
    fail_path(*p, "cannot be opened");
    p->checker.store(CheckerState::kDown);
  }
  if (initial > 0) {
    next_group_.store(static_cast<int>(initial) - 1);
  }
  if (check_interval_s_ > 0 && !paths_.empty()) {
    PathChecker::instance().add(*this);
    registered_ = true;
  }
}

MultipathTarget::~MultipathTarget() {
  if (registered_) {
    PathChecker::instance().remove(*this);
  }
}

std::unique_ptr<Target> create_multipath_target(TargetEnv& env, std::span<const std::string> args) {
  return std::make_unique<MultipathTarget>(env, args);
}

// ---------------------------------------------------------------------------
// Data path

bool MultipathTarget::must_push_back() const {
  // must_push_back_rq: queue while queue_if_no_path, and hand I/O back to
  // the core during a noflush suspend instead of failing it.
  return queue_if_no_path_.load(std::memory_order_acquire) || device_.noflush_suspending();
}

Path* MultipathTarget::choose_path(unsigned queue, std::uint64_t bytes) {
  if (valid_paths_.load(std::memory_order_acquire) == 0) {
    // As the kernel: no path clears QUEUE_IO and the current group (the
    // group is otherwise kept until an I/O chooses another, see fail_path).
    std::lock_guard lock(mutex_);
    queue_io_.store(false, std::memory_order_relaxed);
    current_group_.store(-1, std::memory_order_release);
    return nullptr;
  }
  if (next_group_.load(std::memory_order_relaxed) >= 0) {
    // switch_group or the initial group: take it if it has a path.
    std::lock_guard lock(mutex_);
    const int next = next_group_.load(std::memory_order_relaxed);
    if (next >= 0) {
      next_group_.store(-1, std::memory_order_relaxed);
      if (groups_[static_cast<unsigned>(next)]->valid.load() > 0) {
        current_group_.store(next, std::memory_order_release);
        queue_io_.store(false, std::memory_order_relaxed);
      }
    }
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    const int g = current_group_.load(std::memory_order_acquire);
    if (g >= 0) {
      Group& group = *groups_[static_cast<unsigned>(g)];
      const int i = group.selector->queue(queue).select_path(bytes);
      if (i >= 0) {
        return group.paths[static_cast<unsigned>(i)];
      }
    }
    // The current group has no usable path (or there is none yet): pick one.
    std::lock_guard lock(mutex_);
    choose_group_locked();
  }
  return nullptr;
}

void MultipathTarget::choose_group_locked() {
  const int cur = current_group_.load(std::memory_order_relaxed);
  if (cur >= 0 && groups_[static_cast<unsigned>(cur)]->valid.load() > 0) {
    return;  // another queue already chose
  }
  // First the groups not bypassed, then the bypassed ones (the kernel's two passes).
  for (bool bypassed : {false, true}) {
    for (auto& g : groups_) {
      if (g->bypassed.load() == bypassed && g->valid.load() > 0) {
        current_group_.store(static_cast<int>(g->number - 1), std::memory_order_release);
        queue_io_.store(false, std::memory_order_relaxed);
        return;
      }
    }
  }
  current_group_.store(-1, std::memory_order_release);
}

MapResult MultipathTarget::map(Clone& clone) {
  const unsigned q = clone.queue_id();
  const std::uint64_t bytes = clone.bytes();
  Path* p = choose_path(q, bytes);
  if (p == nullptr) {
    // With queueing (or during a noflush suspend) retry in 100 ms, which a
    // suspend turns into a pushback; otherwise fail now.
    return must_push_back() ? MapResult::kDelayRequeue : MapResult::kKill;
  }
  Group& group = *groups_[p->group];
  PerIo& io = clone.per_io<PerIo>();
  io.path = p->index;
  io.start_ns = now_ns();
  io.bytes = bytes;
  group.selector->queue(q).start_io(p->index_in_group, bytes);
  bump(p->inflight[q], 1);
  bump(p->ios[q], 1);
  clone.remap(*p->dev, clone.op() == Op::kFlush ? 0 : clone.target_offset());
  return MapResult::kRemapped;
}

EndIoResult MultipathTarget::end_io(Clone& clone, int error) {
  const unsigned q = clone.queue_id();
  const PerIo& io = clone.per_io<PerIo>();
  Path& p = *paths_[io.path];
  const bool path_error =
      error != 0 && is_path_failure(p, error, ((clone.target_offset() + clone.nr_sectors()) << kSectorShift));
  if (path_error) {
    // Before the selector's end_io, as the kernel: the failed path is then
    // already out of the selector's view (historical-service-time's count).
    fail_path(p, fmt::format("I/O error: {}", errno_string(error)).c_str());
  }
  groups_[p.group]->selector->queue(q).end_io(p.index_in_group, io.bytes, io.start_ns, now_ns());
  bump(p.inflight[q], -1);
  if (!path_error) {
    return EndIoResult::kDone;  // success, or an error another path would repeat
  }
  if (valid_paths_.load() == 0 && !must_push_back()) {
    return EndIoResult::kDone;  // no path left and no queueing: the original error
  }
  // Retry on another path (or queue): the submitter never sees this error.
  return error == -EAGAIN || error == -ENOMEM || error == -EBUSY ? EndIoResult::kDelayRequeue
                                                                   : EndIoResult::kRequeue;
}

// ---------------------------------------------------------------------------
// Path state

bool MultipathTarget::fail_path(Path& p, const char* why) {
  std::lock_guard lock(mutex_);
  if (!p.valid.load()) {
    return false;
  }
  p.valid.store(false, std::memory_order_release);
  p.fail_count.fetch_add(1);
  Group& g = *groups_[p.group];
  g.valid.fetch_sub(1);
  const int left = valid_paths_.fetch_sub(1) - 1;
  // The current group stays current (INFO 'A') even with no valid path left:
  // the next I/O finds it empty and chooses another, as in the kernel.
  spdlog::warn("{}: Failing path {} ({}, {} valid path{} left).", device_.device_name(), p.dev->display_name(),
               why, left, left == 1 ? "" : "s");
  if (left == 0) {
    start_recovery_locked();
  }
  device_.trigger_event();
  return true;
}

bool MultipathTarget::reinstate_path(Path& p, const char* why) {
  std::lock_guard lock(mutex_);
  if (p.valid.load()) {
    return false;
  }
  p.reinstate_count.fetch_add(1);
  p.valid.store(true, std::memory_order_release);
  Group& g = *groups_[p.group];
  g.valid.fetch_add(1);
  const int now_valid = valid_paths_.fetch_add(1) + 1;
  if (now_valid == 1) {
    end_recovery_locked();
  }
  const int cur = current_group_.load();
  if (failback_immediate_ && cur >= 0 && static_cast<int>(p.group) < cur && !g.bypassed.load()) {
    // A better group is usable again: go back to it (multipathd's failback).
    next_group_.store(static_cast<int>(p.group), std::memory_order_release);
    spdlog::info("{}: failback to group {}", device_.device_name(), g.number);
  }
  spdlog::warn("{}: Reinstating path {} ({}).", device_.device_name(), p.dev->display_name(), why);
  device_.trigger_event();
  return true;
}

void MultipathTarget::set_queue_if_no_path(bool on, bool save_old) {
  std::lock_guard lock(mutex_);
  const bool current = queue_if_no_path_.load();
  if (save_old) {
    // Saving again would lose the value saved by an earlier presuspend.
    if (current || !saved_queue_if_no_path_) {
      saved_queue_if_no_path_ = current;
    }
  } else if (!on) {
    saved_queue_if_no_path_ = false;  // fail_if_no_path wins over a later resume
  }
  queue_if_no_path_.store(on, std::memory_order_release);
}

void MultipathTarget::start_recovery_locked() {
  if (no_path_retry_.mode != NoPathRetry::Mode::kCount || !queue_if_no_path_.load()) {
    return;
  }
  in_recovery_ = true;
  recovery_deadline_ms_ = clock_.now_ms() + static_cast<std::uint64_t>(no_path_retry_.count) * check_interval_s_ * 1000;
  spdlog::warn("{}: no path left; queueing I/O for {} checker interval(s) ({} s) before failing it",
               device_.device_name(), no_path_retry_.count, no_path_retry_.count * check_interval_s_);
}

void MultipathTarget::end_recovery_locked() {
  in_recovery_ = false;
  if (queueing_expired_) {
    queueing_expired_ = false;
    queue_if_no_path_.store(true, std::memory_order_release);
    spdlog::info("{}: a path is back; queueing re-enabled (no_path_retry)", device_.device_name());
  }
}

void MultipathTarget::checker_tick() {
  std::lock_guard lock(mutex_);
  if (in_recovery_ && clock_.now_ms() >= recovery_deadline_ms_) {
    in_recovery_ = false;
    queueing_expired_ = true;
    saved_queue_if_no_path_ = false;
    queue_if_no_path_.store(false, std::memory_order_release);
    spdlog::warn("{}: no_path_retry {} expired: failing queued I/O", device_.device_name(), no_path_retry_.count);
    device_.trigger_event();
  }
}

void MultipathTarget::checker_result(Path& p, int err, bool timed_out) {
  // A read that worked proves little about a device that has shrunk below
  // the map or been deleted: it must still cover every sector the map uses.
  const bool gone = err == 0 && !covers(p, len() << kSectorShift);
  const bool ok = err == 0 && !gone;
  p.checker.store(ok ? CheckerState::kUp : (timed_out ? CheckerState::kTimeout : CheckerState::kDown));
  if (ok) {
    reinstate_path(p, "checker: path is up");
  } else if (timed_out) {
    fail_path(p, "checker: no answer");
  } else if (gone) {
    fail_path(p, "checker: the device no longer covers the map (deleted?)");
  } else {
    fail_path(p, fmt::format("checker: read failed: {}", errno_string(err)).c_str());
  }
}

std::vector<Path*> MultipathTarget::all_paths() const {
  std::vector<Path*> out;
  for (const auto& p : paths_) {
    out.push_back(p.get());
  }
  return out;
}

// ---------------------------------------------------------------------------
// Suspend hooks

void MultipathTarget::presuspend() {
  // A flush suspend must be able to finish: stop queueing for its duration
  // (saved, restored at resume), so that I/O without a path fails.
  if (!device_.noflush_suspending()) {
    set_queue_if_no_path(false, true);
  }
}

void MultipathTarget::presuspend_undo() { resume(); }

void MultipathTarget::resume() {
  std::lock_guard lock(mutex_);
  if (saved_queue_if_no_path_) {
    queue_if_no_path_.store(true, std::memory_order_release);
    saved_queue_if_no_path_ = false;
  }
}

// ---------------------------------------------------------------------------
// Status, messages

std::string MultipathTarget::status(StatusType type) const {
  std::lock_guard lock(mutex_);
  std::string s;
  if (type == StatusType::kInfo) {
    s += fmt::format("2 {} 0 ", queue_io_.load() ? 1 : 0);
  } else {
    const bool q = queue_if_no_path_.load();
    std::string words;
    unsigned n = 0;
    if (q) {
      words += "queue_if_no_path ";
      n += 1;
    }
    if (pg_init_retries_ > 0) {
      words += fmt::format("pg_init_retries {} ", pg_init_retries_);
      n += 2;
    }
    if (pg_init_delay_set_) {
      words += fmt::format("pg_init_delay_msecs {} ", pg_init_delay_msecs_);
      n += 2;
    }
    // retain_attached_hw_handler is accepted and never printed, as from
    // Linux 6.19 (the kernel has always retained since 4.3; before 6.19 it
    // echoed the word, and added it to bio-based tables).
    if (queue_mode_bio_) {
      words += "queue_mode bio ";
      n += 2;
    }
    // ubdm's own features follow the kernel's.
    switch (no_path_retry_.mode) {
      case NoPathRetry::Mode::kUnset: break;
      case NoPathRetry::Mode::kFail: words += "no_path_retry fail "; n += 2; break;
      case NoPathRetry::Mode::kQueue: words += "no_path_retry queue "; n += 2; break;
      case NoPathRetry::Mode::kCount: words += fmt::format("no_path_retry {} ", no_path_retry_.count); n += 2; break;
    }
    if (check_interval_s_ != kDefaultCheckInterval) {
      words += fmt::format("path_check_interval {} ", check_interval_s_);
      n += 2;
    }
    if (failback_immediate_) {
      words += "failback immediate ";
      n += 2;
    }
    s += fmt::format("{} {}", n, words);
  }
  s += "0 ";  // hardware handler: none
  const int next = next_group_.load();
  const int cur = current_group_.load();
  const unsigned pg_num = next >= 0 ? static_cast<unsigned>(next) + 1
                          : cur >= 0 ? static_cast<unsigned>(cur) + 1
                                     : (groups_.empty() ? 0 : 1);
  s += fmt::format("{} {} ", groups_.size(), pg_num);
  for (const auto& g : groups_) {
    const Selector& sel = *g->selector;
    if (type == StatusType::kInfo) {
      const char state = g->bypassed.load()                                 ? 'D'
                         : static_cast<int>(g->number) - 1 == cur ? 'A'
                                                                            : 'E';
      s += fmt::format("{} ", state);
      s += sel.group_status(type);
      s += fmt::format("{} {} ", g->paths.size(), sel.info_args());
      for (const Path* p : g->paths) {
        s += fmt::format("{} {} {} ", p->dev->display_name(), p->valid.load() ? 'A' : 'F', p->fail_count.load());
        s += sel.path_status(p->index_in_group, type);
      }
    } else {
      s += fmt::format("{} ", sel.name());
      s += sel.group_status(type);
      s += fmt::format("{} {} ", g->paths.size(), sel.table_args());
      for (const Path* p : g->paths) {
        s += fmt::format("{} ", p->dev->display_name());
        s += sel.path_status(p->index_in_group, type);
      }
    }
  }
  return s;
}

namespace {

// Does `arg` (a path or major:minor) name `p`'s device?
bool names_path(const std::string& arg, const Path& p) {
  if (arg == p.given || arg == p.dev->path()) {
    return true;
  }
  unsigned maj = 0;
  unsigned min = 0;
  char tail = 0;
  if (std::sscanf(arg.c_str(), "%u:%u%c", &maj, &min, &tail) == 2) {
    return p.dev->is_block_device() && p.dev->rdev() == makedev(maj, min);
  }
  struct stat st {};
  if (::stat(arg.c_str(), &st) == 0) {
    if (S_ISBLK(st.st_mode)) {
      return p.dev->is_block_device() && p.dev->rdev() == st.st_rdev;
    }
    struct stat mine {};
    return ::fstat(p.dev->fd(), &mine) == 0 && mine.st_dev == st.st_dev && mine.st_ino == st.st_ino;
  }
  return false;
}

}  // namespace

std::string MultipathTarget::message(std::span<const std::string> args) {
  // As dm-mpath (dm_suspended): refused once suspended, but taken while a
  // suspend waits, so that fail_if_no_path can let that suspend finish.
  if (device_.suspended()) {
    fail(EBUSY, "multipath: messages are refused while the device is suspended");
  }
  if (!args.empty() && (word_is(args[0], "queue_if_no_path") || word_is(args[0], "fail_if_no_path"))) {
    if (args.size() != 1) {
      fail_invalid("multipath: {} takes no argument", args[0]);
    }
    set_queue_if_no_path(word_is(args[0], "queue_if_no_path"), false);
    std::lock_guard lock(mutex_);
    in_recovery_ = false;
    queueing_expired_ = false;
    return {};
  }
  if (args.size() != 2) {
    fail_invalid("multipath: unrecognised message '{}' (expected 2 arguments, got {})",
                 args.empty() ? "" : args[0], args.size());
  }
  const std::string& verb = args[0];
  if (word_is(verb, "disable_group") || word_is(verb, "enable_group") || word_is(verb, "switch_group")) {
    std::uint64_t n = 0;
    if (!parse_u64(args[1], n) || n < 1 || n > groups_.size()) {
      fail_invalid("multipath: invalid priority group '{}' (the map has {})", args[1], groups_.size());
    }
    {
      std::lock_guard lock(mutex_);
      Group& g = *groups_[n - 1];
      if (word_is(verb, "switch_group")) {
        for (auto& other : groups_) {
          other->bypassed.store(false);
        }
        next_group_.store(static_cast<int>(n) - 1, std::memory_order_release);
        current_group_.store(-1, std::memory_order_release);
      } else {
        g.bypassed.store(word_is(verb, "disable_group"));
        current_group_.store(-1, std::memory_order_release);
      }
    }
    device_.trigger_event();
    return {};
  }
  const bool fail_it = word_is(verb, "fail_path");
  if (!fail_it && !word_is(verb, "reinstate_path")) {
    fail_invalid("multipath: unrecognised message '{}'", verb);
  }
  bool matched = false;
  for (auto& p : paths_) {
    if (names_path(args[1], *p)) {
      matched = true;
      if (fail_it) {
        fail_path(*p, "fail_path message");
      } else {
        reinstate_path(*p, "reinstate_path message");
      }
    }
  }
  if (!matched) {
    fail_invalid("multipath: no path {} in this map", args[1]);
  }
  return {};
}

std::vector<std::vector<std::string>> MultipathTarget::restore_messages() const {
  std::vector<std::vector<std::string>> out;
  std::lock_guard lock(mutex_);
  // switch_group first: it re-enables every group, as in the kernel.
  if (const int cur = current_group_.load(); cur >= 0) {
    out.push_back({"switch_group", std::to_string(cur + 1)});
  }
  for (const auto& g : groups_) {
    if (g->bypassed.load()) {
      out.push_back({"disable_group", std::to_string(g->number)});
    }
  }
  // Every failed path, whoever failed it: the checker reinstates the ones
  // that answer, as it would have here.
  for (const auto& p : paths_) {
    if (!p->valid.load()) {
      out.push_back({"fail_path", p->given});
    }
  }
  // A flush suspend turns queueing off for its duration only (saved_...):
  // what counts is the operator's setting.
  const bool queue = queue_if_no_path_.load() || saved_queue_if_no_path_;
  out.push_back({queue ? "queue_if_no_path" : "fail_if_no_path"});
  return out;
}

void MultipathTarget::iterate_devices(const DeviceVisitor& visit) const {
  for (const auto& p : paths_) {
    visit(*p->dev, 0, len());
  }
}

MultipathReport MultipathTarget::report() const {
  MultipathReport r;
  std::lock_guard lock(mutex_);
  const int cur = current_group_.load();
  for (const auto& g : groups_) {
    GroupReport gr;
    gr.number = g->number;
    gr.state = g->bypassed.load() ? 'D' : static_cast<int>(g->number) - 1 == cur ? 'A' : 'E';
    gr.selector = std::string(g->selector->name());
    r.groups.push_back(gr);
    for (const Path* p : g->paths) {
      PathReport pr;
      pr.group = g->number;
      pr.device = p->dev->display_name();
      pr.given = p->given;
      pr.active = p->valid.load();
      pr.fail_count = p->fail_count.load();
      pr.reinstate_count = p->reinstate_count.load();
      pr.checker = check_interval_s_ == 0 ? "none" : checker_state_name(p->checker.load());
      for (unsigned q = 0; q < nr_queues_; ++q) {
        pr.in_flight += p->inflight[q].load(std::memory_order_relaxed);
        pr.ios += p->ios[q].load(std::memory_order_relaxed);
      }
      pr.selector_info = g->selector->path_status(p->index_in_group, StatusType::kInfo);
      while (!pr.selector_info.empty() && pr.selector_info.back() == ' ') {
        pr.selector_info.pop_back();
      }
      r.paths.push_back(std::move(pr));
    }
  }
  r.queue_if_no_path = queue_if_no_path_.load();
  r.valid_paths = static_cast<unsigned>(valid_paths_.load());
  switch (no_path_retry_.mode) {
    case NoPathRetry::Mode::kUnset: break;
    case NoPathRetry::Mode::kFail: r.no_path_retry = "fail"; break;
    case NoPathRetry::Mode::kQueue: r.no_path_retry = "queue"; break;
    case NoPathRetry::Mode::kCount: r.no_path_retry = std::to_string(no_path_retry_.count); break;
  }
  if (in_recovery_) {
    const std::uint64_t now = clock_.now_ms();
    r.recovery_remaining_ms = now >= recovery_deadline_ms_ ? 0 : static_cast<long>(recovery_deadline_ms_ - now);
  }
  r.check_interval_s = check_interval_s_;
  return r;
}

}  // namespace ubdm::mpath
