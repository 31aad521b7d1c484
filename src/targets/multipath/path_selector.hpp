// SPDX-License-Identifier: MIT
// Path selectors for the multipath target (the kernel's path_selector_type:
// round-robin, queue-length, service-time, historical-service-time).
//
// Threads. One Selector exists per priority group and is shared by every
// queue thread; the hot path must take no lock, so each queue gets its own
// SelectorQueue (the selector's per-queue state: cursors, in-flight counts,
// estimates). A SelectorQueue is used by exactly one queue thread. Counters
// that status() must read from the control thread are relaxed atomics
// written only by their queue thread. Path validity is device-wide state
// owned by the target: SelectorPath::valid, read with relaxed loads.
//
// Construction (control thread, may throw ubdm::Error with a message naming
// the selector and the bad argument):
//   1. create_selector(name, selector_args, nr_queues, paths)
//   2. add_path(i, per_path_args) for i = 0 .. paths.size()-1, in table order
//   3. then queue(q) (q < nr_queues) may be used; paths() never changes.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ubdm/target.hpp"

namespace ubdm::mpath {

// A path as selectors see it. Owned by the target (one per pgpath).
struct SelectorPath {
  // false while the path is failed. Written by the target (fail/reinstate,
  // from any thread), read by selectors on every selection.
  std::atomic<bool> valid{true};
  // Bumped on every reinstate, so each queue's state can put the path back
  // where the kernel's selector would (round-robin: at the head; the others:
  // at the tail). History is kept, as in the kernel.
  std::atomic<std::uint32_t> reinstate_count{0};
};

// One queue's selection state for one priority group.
class SelectorQueue {
 public:
  virtual ~SelectorQueue() = default;
  // Index of the path to use for an I/O of `bytes`, or -1 if no path is
  // valid. Must not allocate or lock.
  virtual int select_path(std::uint64_t bytes) = 0;
  // The I/O was sent on `path` / finished on it. `start_ns` is what
  // start_io's caller recorded (monotonic ns), `now_ns` the completion time.
  virtual void start_io(unsigned path, std::uint64_t bytes) = 0;
  virtual void end_io(unsigned path, std::uint64_t bytes, std::uint64_t start_ns, std::uint64_t now_ns) = 0;
};

class Selector {
 public:
  virtual ~Selector() = default;

  // The name in tables ("round-robin", ...).
  virtual std::string_view name() const = 0;

  // Parse one path's per-path arguments (the kernel's add_path). Throws.
  // Called once per path, in order, before any queue is used.
  virtual void add_path(unsigned index, std::span<const std::string> args) = 0;

  // The per-queue state for queue `q` (created by create_selector).
  virtual SelectorQueue& queue(unsigned q) = 0;

  // Status words, exactly as the kernel prints them, each followed by one
  // space (the target concatenates them):
  //   group_status:  the group-level part ("0 " for most; historical-service-
  //                  time prints "2 <base_weight> <threshold_multiplier> ").
  //   path_status:   per-path part; INFO: the selector's info args (e.g.
  //                  queue-length "<in-flight> ", summed over queues); TABLE:
  //                  the normalised per-path table args ("1 " for
  //                  round-robin/queue-length, "1 <rt> " for service-time).
  //   info_args / table_args: how many per-path words each form has.
  virtual std::string group_status(StatusType type) const = 0;
  virtual std::string path_status(unsigned index, StatusType type) const = 0;
  virtual unsigned info_args() const = 0;
  virtual unsigned table_args() const = 0;

  // The paths given to create_selector, in table order.
  std::span<SelectorPath* const> paths() const { return paths_; }

 protected:
  explicit Selector(std::vector<SelectorPath*> paths) : paths_(std::move(paths)) {}

 private:
  std::vector<SelectorPath*> paths_;
};

// Create a selector by name with its selector arguments, over `paths` (owned
// by the caller, outliving the selector), with per-queue state for
// `nr_queues` queues. Unknown name: Error(EINVAL, "unknown path selector
// '<name>'"). The caller then calls add_path() for each path.
std::unique_ptr<Selector> create_selector(std::string_view name, std::span<const std::string> args,
                                          unsigned nr_queues, std::vector<SelectorPath*> paths);

// Names and versions, for `ubdmsetup targets`-style listings.
struct SelectorType {
  std::string_view name;
  std::array<unsigned, 3> version;
};
std::span<const SelectorType> selector_types();

}  // namespace ubdm::mpath
