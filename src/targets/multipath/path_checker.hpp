// SPDX-License-Identifier: MIT
// The built-in path checker (multipathd's directio checker, inside the
// daemon). One thread for the whole process probes every path of every
// registered multipath target each check interval with an O_DIRECT read of
// one logical block at sector 0, on its own io_uring, and reports to the
// target: a failed path that answers is reinstated, an active path that
// errors or does not answer within the timeout is failed before user I/O
// hits it. It also drives each target's tick (the no_path_retry countdown).
// Devices without a file descriptor (the unit tests' fake disks) are not
// probed, but their targets still tick.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace ubdm::mpath {

class MultipathTarget;

class PathChecker {
 public:
  // The process-wide checker, started on first use.
  static PathChecker& instance();

  // Start / stop checking a target. remove() returns once the checker will
  // not call the target again (probes still in flight keep their own
  // buffers and devices alive and are ignored when they finish).
  void add(MultipathTarget& target);
  void remove(MultipathTarget& target);

  // A probe that has not answered after this long marks the path down.
  static constexpr unsigned kProbeTimeoutMs = 5000;

  ~PathChecker();

 private:
  PathChecker();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ubdm::mpath
