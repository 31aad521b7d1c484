// SPDX-License-Identifier: MIT
// linear: "<dev> <offset>" maps the target's range onto dev starting at offset.
#include <memory>

#include "targets/target_args.hpp"
#include "ubdm/error.hpp"
#include "ubdm/target.hpp"

namespace ubdm {
namespace {

class LinearTarget final : public Target {
 public:
  LinearTarget(BlockDevicePtr dev, sector_t offset) : dev_(std::move(dev)), offset_(offset) {}

  MapResult map(Clone& clone) override {
    if (clone.op() == Op::kFlush) {
      clone.remap(*dev_, 0);
    } else {
      clone.remap(*dev_, offset_ + clone.target_offset());
    }
    return MapResult::kRemapped;
  }

  std::string status(StatusType type) const override {
    if (type == StatusType::kInfo) {
      return {};
    }
    return fmt::format("{} {}", dev_->display_name(), offset_);
  }

  void iterate_devices(const DeviceVisitor& visit) const override { visit(*dev_, offset_, len()); }

 private:
  BlockDevicePtr dev_;
  sector_t offset_;
};

}  // namespace

std::unique_ptr<Target> create_linear_target(TargetEnv& env, std::span<const std::string> args) {
  ArgReader in("linear", args);
  in.expect_count(2, "<dev> <offset>");
  const std::string& path = in.next("device");
  const sector_t offset = in.next_u64("offset");
  BlockDevicePtr dev = open_device_range(env, "linear", path, offset, env.len);
  return std::make_unique<LinearTarget>(std::move(dev), offset);
}

}  // namespace ubdm
