// SPDX-License-Identifier: MIT
// ubdm-inproc-demo: the mapping core on real devices, without ublk.
//
// Builds a striped device over two underlying devices, writes and verifies
// data through the core and the io_uring backend, then swaps in a new table
// with a noflush suspend while a write is parked, and prints dmsetup-style
// info, table and status lines along the way.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include <fmt/format.h>

#include "core/inproc_frontend.hpp"
#include "io/uring_backend.hpp"
#include "ubdm/device.hpp"
#include "ubdm/error.hpp"

namespace {

using namespace ubdm;

void print_lines(const char* title, const std::vector<std::string>& lines) {
  fmt::print("  {}:\n", title);
  for (const auto& l : lines) {
    fmt::print("    {}\n", l);
  }
}

int run(const std::string& a, const std::string& b) {
  auto opener = make_system_device_opener();
  MappedDevice dev("demo", DeviceConfig{1, 64, 4}, *opener);
  const sector_t size = 2 * 8192;  // 8 MiB striped over the two devices
  const std::string striped = fmt::format("0 {} striped 2 128 {} 0 {} 0", size, a, b);
  fmt::print("[1/4] create: {}\n", striped);
  dev.load_text(striped);
  dev.resume();
  UringBackend backend;
  InprocFrontend fe(dev.queue(0), backend, 1U << 20);
  const auto iov = fe.buffer_iovecs();
  if (backend.register_buffers(iov) == 0) {
    fe.set_buffers_registered(true);
  }
  print_lines("table", dev.status_lines(StatusType::kTable));
  print_lines("status", dev.status_lines(StatusType::kInfo));

  fmt::print("[2/4] write {} MiB in 256 KiB requests (64 in flight), then read back and verify\n",
             (size << kSectorShift) >> 20);
  std::mt19937_64 rng(42);
  std::vector<std::byte> image(size << kSectorShift);
  for (auto& x : image) {
    x = static_cast<std::byte>(rng());
  }
  const auto t0 = std::chrono::steady_clock::now();
  const std::uint32_t chunk = 512;  // sectors
  for (sector_t s = 0; s < size; s += chunk) {
    int tag;
    while ((tag = fe.submit(Op::kWrite, s, chunk, 0, image.data() + (s << kSectorShift))) == -EBUSY) {
      fe.run_once(1000);
      for (unsigned t = 0; t < dev.queue(0).depth(); ++t) {
        if (fe.done(static_cast<int>(t))) {
          if (fe.result(static_cast<int>(t)) != 0) {
            fail(EIO, "write failed: {}", errno_string(fe.result(static_cast<int>(t))));
          }
          fe.release(static_cast<int>(t));
        }
      }
    }
  }
  if (!fe.run_until_idle()) {
    fail(ETIMEDOUT, "writes did not finish");
  }
  for (unsigned t = 0; t < dev.queue(0).depth(); ++t) {
    if (fe.done(static_cast<int>(t))) {
      fe.release(static_cast<int>(t));
    }
  }
  if (fe.flush() != 0) {
    fail(EIO, "flush failed");
  }
  std::vector<std::byte> back(chunk << kSectorShift);
  for (sector_t s = 0; s < size; s += chunk) {
    const int rc = fe.read(s, chunk, back.data());
    if (rc != 0 || std::memcmp(back.data(), image.data() + (s << kSectorShift), back.size()) != 0) {
      fail(EIO, "verify failed at sector {}", s);
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  fmt::print("  verified {} sectors in {:.2f} s; queue stats: {} requests, {} clones mapped, {} backend I/Os\n",
             size, secs, dev.io_stats().started(), dev.queue(0).stats().clones_mapped,
             dev.queue(0).stats().backend_ios);

  fmt::print("[3/4] noflush suspend, load a linear table onto {}, resume with a write deferred\n", a);
  dev.begin_suspend(kSuspendNoflush);
  while (!dev.suspend_drained()) {
    fe.run_once(1000);
  }
  dev.finish_suspend();
  const int tag = fe.submit(Op::kWrite, 0, 8, kReqFua, image.data());
  fe.run_once(0);
  fmt::print("  state SUSPENDED, write on tag {} parked: {}\n", tag, fe.done(tag) ? "no" : "yes");
  dev.load_text(fmt::format("0 8192 linear {} 0", a));
  dev.resume();
  if (!fe.run_until_done(tag) || fe.result(tag) != 0) {
    fail(EIO, "parked write failed after resume");
  }
  fe.release(tag);
  fmt::print("  resumed; the parked write completed against the new table\n");

  fmt::print("[4/4] info\n");
  const DeviceInfo info = dev.info();
  fmt::print("  Name:              {}\n  State:             {}\n  Tables present:    {}{}\n"
             "  Event number:      {}\n  Number of targets: {}\n  Size:              {} sectors\n",
             info.name, info.state == DeviceState::kActive ? "ACTIVE" : "SUSPENDED",
             info.live_table ? "LIVE" : "None", info.inactive_table ? " & INACTIVE" : "", info.event_nr,
             info.target_count, info.size_sectors);
  print_lines("table", dev.status_lines(StatusType::kTable));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s DEVICE_A DEVICE_B   (block devices or files of at least 4 MiB)\n", argv[0]);
    return 2;
  }
  try {
    return run(argv[1], argv[2]);
  } catch (const ubdm::Error& e) {
    std::fprintf(stderr, "ubdm-inproc-demo: %s\n", e.what());
    return 1;
  }
}
