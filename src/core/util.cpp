// SPDX-License-Identifier: MIT
// Small shared definitions: the system clock and errno formatting.
#include <cstring>
#include <ctime>

#include "ubdm/clock.hpp"
#include "ubdm/error.hpp"

namespace ubdm {
namespace {

class MonotonicClock final : public Clock {
 public:
  std::uint64_t now_ms() const override {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000U + static_cast<std::uint64_t>(ts.tv_nsec) / 1000000U;
  }
  std::uint64_t now_ns() const override {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000U + static_cast<std::uint64_t>(ts.tv_nsec);
  }
};

}  // namespace

const Clock& system_clock() {
  static const MonotonicClock clock;
  return clock;
}

std::string errno_string(int err) {
  if (err < 0) {
    err = -err;
  }
  char buf[128];
  // GNU strerror_r returns the message pointer (which may not be buf).
  return std::string(strerror_r(err, buf, sizeof(buf)));
}

}  // namespace ubdm
