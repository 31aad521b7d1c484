// SPDX-License-Identifier: MIT
#include "io/fd_limit.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace ubdm {
namespace {

std::string limit_text(rlim_t v) { return v == RLIM_INFINITY ? std::string("unlimited") : fmt::format("{}", v); }

}  // namespace

NofileLimit nofile_limit() noexcept {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    return {};
  }
  return NofileLimit{rl.rlim_cur, rl.rlim_max};
}

NofileLimit raise_nofile_limit() noexcept {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    return {};
  }
  if (rl.rlim_cur != rl.rlim_max) {
    rlimit want = rl;
    want.rlim_cur = rl.rlim_max;
    // An unlimited hard limit cannot be the soft one (the kernel caps it at
    // fs.nr_open); then the old soft limit stays, which still works.
    (void)::setrlimit(RLIMIT_NOFILE, &want);
  }
  return nofile_limit();
}

unsigned fixed_file_slots() noexcept {
  static const unsigned slots = [] {
    const NofileLimit l = nofile_limit();
    // A failed getrlimit (soft 0) leaves the smallest table that works: the
    // kernel's own default soft limit.
    const rlim_t soft = l.soft == 0 ? 1024 : l.soft;
    return static_cast<unsigned>(std::min<rlim_t>(kMaxFixedFiles, soft));
  }();
  return slots;
}

unsigned device_id_slots() noexcept { return fixed_file_slots() - 1; }

std::string nofile_limit_advice() {
  const NofileLimit l = nofile_limit();
  return fmt::format(
      "the open-file limit is {} (hard {}); raise it with `ulimit -n` before starting ubdmd, or "
      "LimitNOFILE= in ubdmd.service",
      limit_text(l.soft), limit_text(l.hard));
}

}  // namespace ubdm
