// SPDX-License-Identifier: MIT
// A scriptable target for core tests: "probe <disk> <offset>" maps like
// linear unless the test scripts map()/end_io() otherwise, and records what
// it saw. Each constructed instance is reachable through probes().
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "io/fake_backend.hpp"
#include "ubdm/device.hpp"
#include "ubdm/error.hpp"
#include "ubdm/target.hpp"

namespace ubdm::test {

struct PieceRecord {
  Op op;
  sector_t sector;
  std::uint32_t nr_sectors;
};

class ProbeTarget final : public Target {
 public:
  ProbeTarget(TargetEnv& env, BlockDevicePtr dev, sector_t offset)
      : device(env.device), dev_(std::move(dev)), offset_(offset) {}

  MapResult map(Clone& clone) override {
    mapped.push_back({clone.op(), clone.sector(), clone.nr_sectors()});
    if (on_map) {
      const MapResult r = on_map(clone);
      if (r != MapResult::kRemapped) {
        return r;
      }
    }
    clone.remap(*dev_, clone.op() == Op::kFlush ? 0 : offset_ + clone.target_offset());
    return MapResult::kRemapped;
  }

  EndIoResult end_io(Clone& clone, int error) override {
    ended.push_back({clone.op(), clone.sector(), clone.nr_sectors()});
    end_errors.push_back(error);
    return on_end_io ? on_end_io(clone, error) : EndIoResult::kDone;
  }

  bool busy() const override { return is_busy; }
  void presuspend() override { hooks.push_back("presuspend" + std::string(device.noflush_suspending() ? ":noflush" : "")); }
  void presuspend_undo() override { hooks.push_back("presuspend_undo"); }
  void postsuspend() override { hooks.push_back("postsuspend" + std::string(device.noflush_suspending() ? ":noflush" : "")); }
  int preresume() override {
    hooks.push_back("preresume");
    return preresume_result;
  }
  void resume() override { hooks.push_back("resume"); }

  std::string status(StatusType type) const override {
    return type == StatusType::kInfo ? std::to_string(mapped.size()) : dev_->display_name() + " " + std::to_string(offset_);
  }
  std::string message(std::span<const std::string> args) override {
    if (args.size() == 1 && args[0] == "event") {
      device.trigger_event();
      return "ok";
    }
    fail_invalid("probe: unknown message");
  }
  void iterate_devices(const DeviceVisitor& visit) const override { visit(*dev_, offset_, len()); }

  DeviceContext& device;
  std::function<MapResult(Clone&)> on_map;
  std::function<EndIoResult(Clone&, int)> on_end_io;
  bool is_busy = false;
  int preresume_result = 0;
  std::vector<PieceRecord> mapped;
  std::vector<PieceRecord> ended;
  std::vector<int> end_errors;
  std::vector<std::string> hooks;

 private:
  BlockDevicePtr dev_;
  sector_t offset_;
};

// Every ProbeTarget constructed since the last reset, in construction order.
inline std::vector<ProbeTarget*>& probes() {
  static std::vector<ProbeTarget*> all;
  return all;
}

inline std::unique_ptr<Target> create_probe(TargetEnv& env, std::span<const std::string> args) {
  if (args.size() != 2) {
    fail_invalid("probe: expected <disk> <offset>");
  }
  auto t = std::make_unique<ProbeTarget>(env, env.opener.open(args[0]), std::stoull(args[1]));
  probes().push_back(t.get());
  return t;
}

inline void register_probe_target() {
  static const bool once = [] {
    add_target_type(TargetType{"probe", {1, 0, 0}, create_probe});
    return true;
  }();
  (void)once;
}

}  // namespace ubdm::test
