// SPDX-License-Identifier: MIT
// The built-in path checker on real files: a path that is failed but
// readable is reinstated by the checker within a couple of intervals, and
// the checker's state shows in the report. (Path loss itself is tested in
// the VM with scsi_debug, where a path can really go offline.) With
// hundreds of paths, every one is probed every interval.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "core/inproc_frontend.hpp"
#include "host_fixtures.hpp"
#include "io/uring_backend.hpp"
#include "targets/multipath/multipath.hpp"
#include "ubdm/device.hpp"

namespace ubdm {
namespace {

using test::TempFile;
using namespace std::chrono_literals;

TEST(MultipathChecker, ReinstatesAFailedPathThatAnswersAndReportsItReady) {
  TempFile a(8 << 20);
  TempFile b(8 << 20);
  auto opener = make_system_device_opener();
  MappedDevice dev("mpc", DeviceConfig{1, 16, 4}, *opener);
  dev.load_text("0 16384 multipath 2 path_check_interval 1 0 1 1 round-robin 0 2 1 " + a.path() + " 1 " +
                b.path() + " 1");
  dev.resume();
  UringBackend backend;
  InprocFrontend fe(dev.queue(0), backend);
  auto& mp = dynamic_cast<mpath::MultipathTarget&>(dev.live_table()->target(0));

  // The first probe runs at once: both paths become "ready".
  const auto ready_by = std::chrono::steady_clock::now() + 10s;
  while (mp.report().paths[1].checker != "ready" && std::chrono::steady_clock::now() < ready_by) {
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(mp.report().paths[0].checker, "ready");
  ASSERT_EQ(mp.report().paths[1].checker, "ready");

  dev.message(0, {"fail_path", b.path()});
  ASSERT_FALSE(mp.report().paths[1].active);
  const std::uint64_t events = dev.event_nr();
  const auto start = std::chrono::steady_clock::now();
  while (!mp.report().paths[1].active && std::chrono::steady_clock::now() - start < 10s) {
    std::this_thread::sleep_for(50ms);
  }
  // No timing assertion beyond the 10 s bound: the machines are shared.
  EXPECT_TRUE(mp.report().paths[1].active) << "the checker did not reinstate a readable path within 10 s";
  EXPECT_GT(dev.event_nr(), events) << "reinstating is an event";

  // I/O still works through both paths.
  std::vector<std::byte> data(64 * 1024, std::byte{0x3c});
  for (int i = 0; i < 8; ++i) {
    ASSERT_EQ(fe.write(static_cast<sector_t>(i) * 128, 128, data.data()), 0);
  }
  EXPECT_GT(mp.report().paths[0].ios, 0U);
  EXPECT_GT(mp.report().paths[1].ios, 0U);
}

TEST(MultipathChecker, ProbesEveryPathWhateverTheirNumber) {
  // More paths than the checker's ring has entries: every one must still be
  // probed (and so become "ready"), not only the first ring-full each time.
  constexpr unsigned kPaths = 300;
  TempFile f(1 << 20);
  std::string paths;
  for (unsigned i = 0; i < kPaths; ++i) {
    paths += " " + f.path();
  }
  auto opener = make_system_device_opener();
  MappedDevice dev("mpmany", DeviceConfig{1, 16, 4}, *opener);
  dev.load_text("0 2048 multipath 2 path_check_interval 1 0 1 1 round-robin 0 " + std::to_string(kPaths) + " 0" +
                paths);
  dev.resume();
  auto& mp = dynamic_cast<mpath::MultipathTarget&>(dev.live_table()->target(0));
  auto unready = [&] {
    unsigned n = 0;
    for (const auto& p : mp.report().paths) {
      n += p.checker == "ready" ? 0U : 1U;
    }
    return n;
  };
  const auto by = std::chrono::steady_clock::now() + 20s;
  while (unready() > 0 && std::chrono::steady_clock::now() < by) {
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(mp.report().paths.size(), kPaths);
  EXPECT_EQ(unready(), 0U) << "paths never probed within 20 s (checker interval 1 s)";

  // Every path failed at once (they all name the same file) comes back:
  // the checker reinstates each of them, not only the ones it reaches first.
  dev.message(0, {"fail_path", f.path()});
  while (mp.report().valid_paths < kPaths && std::chrono::steady_clock::now() < by + 20s) {
    std::this_thread::sleep_for(50ms);
  }
  for (const auto& p : mp.report().paths) {
    EXPECT_EQ(p.fail_count, 1U);
  }
  EXPECT_EQ(mp.report().valid_paths, kPaths) << "failed paths the checker never reinstated";
}

}  // namespace
}  // namespace ubdm
