// SPDX-License-Identifier: MIT
// error: every request fails with EIO, discards and flushes included. It is
// also what `remove --force` loads to fail queued I/O.
#include "targets/target_args.hpp"
#include "targets/targets.hpp"

namespace ubdm {
namespace {

class ErrorTarget final : public Target {
 public:
  MapResult map(Clone& /*clone*/) override { return MapResult::kKill; }
  std::string status(StatusType /*type*/) const override { return {}; }
};

}  // namespace

std::unique_ptr<Target> create_error_target(TargetEnv& /*env*/, std::span<const std::string> args) {
  ArgReader in("error", args);
  in.expect_count(0, "none");
  return std::make_unique<ErrorTarget>();
}

}  // namespace ubdm
