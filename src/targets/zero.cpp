// SPDX-License-Identifier: MIT
// zero: reads return zeroes, writes, discards and flushes succeed and are dropped.
#include <cstring>

#include "targets/target_args.hpp"
#include "targets/targets.hpp"

namespace ubdm {
namespace {

class ZeroTarget final : public Target {
 public:
  MapResult map(Clone& clone) override {
    if (clone.op() == Op::kRead) {
      std::memset(clone.buf(), 0, clone.bytes());
    }
    clone.end(0);
    return MapResult::kSubmitted;
  }
  std::string status(StatusType /*type*/) const override { return {}; }
  unsigned num_flush_clones() const override { return 0; }
  bool needs_cpu_data() const override { return true; }  // fills reads with zeroes
};

}  // namespace

std::unique_ptr<Target> create_zero_target(TargetEnv& /*env*/, std::span<const std::string> args) {
  ArgReader in("zero", args);
  in.expect_count(0, "none");
  return std::make_unique<ZeroTarget>();
}

}  // namespace ubdm
