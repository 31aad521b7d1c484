// SPDX-License-Identifier: MIT
// The harness the core, target and multipath unit tests share: a
// MappedDevice over fake disks with a manual clock, its table live, driven
// on queue 0 by an in-process frontend. Time moves only through `clock`.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/inproc_frontend.hpp"
#include "io/fake_backend.hpp"
#include "ubdm/clock.hpp"
#include "ubdm/device.hpp"

namespace ubdm::test {

struct LiveDevice {
  // Create device `name` with `table` loaded and resumed, and a frontend on
  // queue 0 whose tags carry up to `max_io_bytes`. Replaces any earlier one.
  void start(const std::string& name, std::string_view table, DeviceConfig config = DeviceConfig{1, 16, 4},
             std::uint32_t max_io_bytes = 1U << 20) {
    fe.reset();
    dev = std::make_unique<MappedDevice>(name, config, storage, clock);
    dev->load_text(table);
    dev->resume();
    fe = std::make_unique<InprocFrontend>(dev->queue(0), backend, max_io_bytes);
  }

  // Drive the queue and the backend `rounds` times without waiting.
  void pump(int rounds = 4) {
    for (int i = 0; i < rounds; ++i) {
      fe->run_once(0);
    }
  }

  ManualClock clock;
  FakeStorage storage;
  FakeBackend backend;
  std::unique_ptr<MappedDevice> dev;
  std::unique_ptr<InprocFrontend> fe;  // declared last: destroyed before the device
};

}  // namespace ubdm::test
