// SPDX-License-Identifier: MIT
// The daemon's verbs without a kernel: DeviceManager over fake disks, and
// the ublk parameters derived from a table's limits.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "daemon/device_manager.hpp"
#include "io/fake_backend.hpp"
#include "ubdm/error.hpp"
#include "ublk/device.hpp"

namespace ubdm::daemon {
namespace {

using json = nlohmann::json;

class DaemonTest : public ::testing::Test {
 protected:
  DaemonTest() {
    storage.add_disk("disk0", 8192);
    storage.add_disk("disk1", 8192);
    cfg.link_dir.clear();
    cfg.names_dir.clear();
    cfg.default_queues = 1;
  }

  json call(json req) { return manager().handle(req); }

  // errno and message of a failing call.
  std::pair<int, std::string> failure(json req) {
    try {
      call(std::move(req));
    } catch (const Error& e) {
      return {e.code(), e.what()};
    }
    return {0, ""};
  }

  DeviceManager& manager() {
    if (!mgr) {
      mgr = std::make_unique<DeviceManager>(cfg, storage, nullptr);
    }
    return *mgr;
  }

  json info(const std::string& name) { return call({{"op", "info"}, {"name", name}})["devices"][0]; }

  FakeStorage storage;
  DaemonConfig cfg;
  std::unique_ptr<DeviceManager> mgr;
};

TEST_F(DaemonTest, CreateReportsTheDeviceInDmsetupTerms) {
  const json d = call({{"op", "create"}, {"name", "a"}, {"table", "0 4096 linear disk0 0\n4096 100 zero"}})["device"];
  EXPECT_EQ(d["name"], "a");
  EXPECT_EQ(d["state"], "ACTIVE");
  EXPECT_EQ(d["live_table"], true);
  EXPECT_EQ(d["inactive_table"], false);
  EXPECT_EQ(d["target_count"], 2);
  EXPECT_EQ(d["size_sectors"], 4196);
  EXPECT_EQ(d["event_nr"], 1);
  const json lines = call({{"op", "table"}, {"name", "a"}})["devices"][0]["lines"];
  EXPECT_EQ(lines, json({"0 4096 linear disk0 0", "4096 100 zero "}));
}

// As dm's: a UUID is given at create, shown by info, unique, and checked
// before anything is made.
TEST_F(DaemonTest, DevicesHaveTheUuidGivenAtCreate) {
  const json d = call({{"op", "create"}, {"name", "a"}, {"uuid", "LVM-abc"}, {"table", "0 8 zero"}})["device"];
  EXPECT_EQ(d["uuid"], "LVM-abc");
  EXPECT_EQ(info("a")["uuid"], "LVM-abc");
  call({{"op", "create"}, {"name", "b"}, {"table", "0 8 zero"}});
  EXPECT_EQ(info("b")["uuid"], "") << "no UUID given, none";
  EXPECT_EQ(failure({{"op", "create"}, {"name", "c"}, {"uuid", "LVM-abc"}, {"table", "0 8 zero"}}),
            std::make_pair(EEXIST, std::string("device a has UUID LVM-abc already")));
  EXPECT_EQ(failure({{"op", "create"}, {"name", "c"}, {"uuid", "has space"}, {"table", "0 8 zero"}}).first, EINVAL);
  EXPECT_EQ(failure({{"op", "create"}, {"name", "c"}, {"uuid", std::string(129, 'u')}, {"table", "0 8 zero"}}),
            std::make_pair(EINVAL, std::string("UUID is longer than 128 characters")));
  EXPECT_EQ(manager().device_count(), 2U) << "a refused create leaves nothing";
  call({{"op", "remove"}, {"name", "a"}});
  call({{"op", "create"}, {"name", "c"}, {"uuid", "LVM-abc"}, {"table", "0 8 zero"}});
  EXPECT_EQ(info("c")["uuid"], "LVM-abc") << "a removed device's UUID is free again";
}

TEST_F(DaemonTest, ReadOnlyIsChosenAtCreateAndShownByInfo) {
  call({{"op", "create"}, {"name", "ro"}, {"read_only", true}, {"table", "0 8 zero"}});
  call({{"op", "create"}, {"name", "rw"}, {"table", "0 8 zero"}});
  EXPECT_EQ(info("ro")["read_only"], true);
  EXPECT_EQ(info("rw")["read_only"], false);
}

TEST_F(DaemonTest, FailedCreateLeavesNoDevice) {
  auto [err, msg] = failure({{"op", "create"}, {"name", "a"}, {"table", "0 100 linear disk0 0\n100 1 linear nope 0"}});
  EXPECT_EQ(err, ENOENT);
  EXPECT_EQ(msg, "table line 2: linear: cannot open nope: No such file or directory");
  EXPECT_EQ(manager().device_count(), 0U);
  EXPECT_TRUE(call({{"op", "ls"}})["devices"].empty());
}

TEST_F(DaemonTest, CreateRefusesBadNamesDuplicatesAndQueueSettings) {
  EXPECT_EQ(failure({{"op", "create"}, {"name", ""}, {"table", "0 8 zero"}}).second, "device name is empty");
  EXPECT_EQ(failure({{"op", "create"}, {"name", "a/b"}, {"table", "0 8 zero"}}).first, EINVAL);
  EXPECT_EQ(failure({{"op", "create"}, {"name", ".."}, {"table", "0 8 zero"}}).first, EINVAL);
  EXPECT_EQ(failure({{"op", "create"}, {"name", "a b"}, {"table", "0 8 zero"}}).first, EINVAL);
  EXPECT_EQ(failure({{"op", "create"}, {"name", std::string(128, 'x')}, {"table", "0 8 zero"}}).first, EINVAL);
  EXPECT_EQ(failure({{"op", "create"}, {"name", "a"}, {"table", "0 8 zero"}, {"queues", 0}}).second,
            "queue count 0 out of range: must be between 1 and 64");
  EXPECT_EQ(failure({{"op", "create"}, {"name", "a"}, {"table", "0 8 zero"}, {"depth", 5000}}).second,
            "create: argument 'depth' must be at most 4096, not 5000");
  EXPECT_EQ(failure({{"op", "create"}, {"name", "a"}, {"table", "0 8 zero"}, {"depth", 0}}).second,
            "queue depth 0 out of range: must be between 1 and 4096");
  EXPECT_EQ(failure({{"op", "create"}, {"name", "a"}, {"table", "0 8 zero"}, {"poll_usec", 1000001}}).second,
            "create: argument 'poll_usec' must be at most 1000000, not 1000001");
  EXPECT_EQ(manager().device_count(), 0U);
  call({{"op", "create"}, {"name", "a"}, {"table", "0 8 zero"}});
  EXPECT_EQ(info("a")["poll_usec"], 50) << "the daemon's default";
  call({{"op", "create"}, {"name", "b"}, {"table", "0 8 zero"}, {"poll_usec", 0}});
  EXPECT_EQ(info("b")["poll_usec"], 0);
  EXPECT_EQ(failure({{"op", "create"}, {"name", "a"}, {"table", "0 8 zero"}}),
            std::make_pair(EEXIST, std::string("device already exists")));
}

TEST_F(DaemonTest, FailedLoadLeavesBothSlotsAlone) {
  call({{"op", "create"}, {"name", "a"}, {"table", "0 4096 linear disk0 0"}});
  call({{"op", "load"}, {"name", "a"}, {"table", "0 4096 linear disk1 0"}});
  EXPECT_NE(failure({{"op", "load"}, {"name", "a"}, {"table", "0 4096 linear disk1"}}).first, 0);
  EXPECT_EQ(call({{"op", "table"}, {"name", "a"}})["devices"][0]["lines"][0], "0 4096 linear disk0 0");
  EXPECT_EQ(call({{"op", "table"}, {"name", "a"}, {"inactive", true}})["devices"][0]["lines"][0],
            "0 4096 linear disk1 0");
  call({{"op", "clear"}, {"name", "a"}});
  EXPECT_EQ(info("a")["inactive_table"], false);
}

TEST_F(DaemonTest, SuspendResumeAndWrongStates) {
  call({{"op", "create"}, {"name", "a"}, {"table", "0 8 zero"}});
  EXPECT_EQ(call({{"op", "suspend"}, {"name", "a"}, {"noflush", true}})["device"]["state"], "SUSPENDED");
  EXPECT_EQ(failure({{"op", "suspend"}, {"name", "a"}}),
            std::make_pair(EBUSY, std::string("device is already suspended")));
  EXPECT_EQ(call({{"op", "resume"}, {"name", "a"}})["device"]["state"], "ACTIVE");
  EXPECT_EQ(failure({{"op", "resume"}, {"name", "a"}}).first, EINVAL);
  EXPECT_EQ(info("a")["state"], "ACTIVE");
}

TEST_F(DaemonTest, RemoveRefusesASuspendedDeviceUnlessForced) {
  call({{"op", "create"}, {"name", "a"}, {"table", "0 4096 linear disk0 0"}});
  call({{"op", "suspend"}, {"name", "a"}});
  EXPECT_EQ(failure({{"op", "remove"}, {"name", "a"}}).second, "device is suspended: resume it first, or use --force");
  EXPECT_EQ(manager().device_count(), 1U);
  call({{"op", "remove"}, {"name", "a"}, {"force", true}});
  EXPECT_EQ(manager().device_count(), 0U);
}

// The kernel lists a table's devices most recently added first (each once,
// where the table first names it); dmsetup's deps and ls --tree print them so.
TEST_F(DaemonTest, DepsListTheDevicesInTheKernelsOrder) {
  storage.add_disk("disk2", 8192);
  call({{"op", "create"},
        {"name", "d"},
        {"table", "0 8 linear disk1 0\n8 8 linear disk0 0\n16 8 linear disk1 8\n24 8 linear disk2 0"}});
  std::vector<std::string> paths;
  const json answer = call({{"op", "deps"}, {"name", "d"}});
  for (const json& dep : answer["deps"]) {
    paths.push_back(dep["path"]);
  }
  EXPECT_EQ(paths, (std::vector<std::string>{"disk2", "disk0", "disk1"}));
}

TEST_F(DaemonTest, EveryVerbOnAMissingDeviceSaysSo) {
  for (const char* op : {"info", "table", "status", "deps", "clear", "suspend", "resume", "remove", "wait"}) {
    EXPECT_EQ(failure({{"op", op}, {"name", "nosuch"}}), std::make_pair(ENXIO, std::string("no such device")))
        << op;
  }
  EXPECT_EQ(failure({{"op", "load"}, {"name", "nosuch"}, {"table", "0 8 zero"}}).first, ENXIO);
  EXPECT_EQ(failure({{"op", "message"}, {"name", "nosuch"}, {"sector", 0}, {"args", {"x"}}}).first, ENXIO);
}

TEST_F(DaemonTest, UnknownOperationAndMistypedArguments) {
  EXPECT_EQ(failure({{"op", "frobnicate"}, {"name", "nosuch"}}).second, "unknown operation 'frobnicate'");
  call({{"op", "create"}, {"name", "a"}, {"table", "0 8 zero"}});
  EXPECT_EQ(failure({{"op", "message"}, {"name", "a"}, {"sector", "zero"}, {"args", {"x"}}}),
            std::make_pair(EINVAL, std::string("message: argument 'sector' must be a non-negative integer")));
}

TEST_F(DaemonTest, WaitReturnsWhenTheEventNumberMoves) {
  call({{"op", "create"}, {"name", "a"}, {"table", "0 4096 linear disk0 0"}});
  const std::uint64_t seen = info("a")["event_nr"];
  EXPECT_EQ(call({{"op", "wait"}, {"name", "a"}})["device"]["event_nr"], seen) << "no number: returns at once";
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    call({{"op", "load"}, {"name", "a"}, {"table", "0 4096 linear disk1 0"}});
    call({{"op", "resume"}, {"name", "a"}});
  });
  const json d = call({{"op", "wait"}, {"name", "a"}, {"event_nr", seen}})["device"];
  t.join();
  EXPECT_EQ(d["event_nr"], seen + 1);
}

TEST_F(DaemonTest, PersistentMapsAreCreatedAndBrokenOnesReported) {
  const auto dir = std::filesystem::temp_directory_path() / ("ubdm-maps-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "maps.d");
  std::ofstream(dir / "maps.d" / "good.table") << "# comment\n0 4096 linear disk0 0\n";
  std::ofstream(dir / "maps.d" / "bad.table") << "0 100 linear missing 0\n";
  std::ofstream(dir / "maps.d" / "ignored.txt") << "0 8 zero\n";
  cfg.config_dir = dir.string();
  EXPECT_EQ(manager().load_persistent_maps(), 1U);
  const json devs = call({{"op", "ls"}})["devices"];
  ASSERT_EQ(devs.size(), 1U);
  EXPECT_EQ(devs[0]["name"], "good");
  std::filesystem::remove_all(dir);
}

// dmsetup rename: the device answers to its new name only, everywhere.
TEST_F(DaemonTest, RenameMovesTheDeviceToItsNewName) {
  call({{"op", "create"}, {"name", "a"}, {"uuid", "U-a"}, {"table", "0 4096 linear disk0 0"}});
  call({{"op", "create"}, {"name", "z"}, {"table", "0 8 zero"}});
  const json d = call({{"op", "rename"}, {"name", "a"}, {"new_name", "b"}})["device"];
  EXPECT_EQ(d["name"], "b");
  EXPECT_EQ(d["uuid"], "U-a") << "a rename keeps the UUID";
  EXPECT_EQ(failure({{"op", "info"}, {"name", "a"}}).first, ENXIO);
  EXPECT_EQ(info("b")["size_sectors"], 4096);
  EXPECT_EQ(call({{"op", "table"}, {"name", "b"}})["devices"][0]["name"], "b");
  EXPECT_EQ(call({{"op", "status"}})["devices"][0]["name"], "b");
  const json devs = call({{"op", "ls"}})["devices"];
  ASSERT_EQ(devs.size(), 2U) << devs.dump();
  EXPECT_EQ(devs[0]["name"], "b");
  EXPECT_EQ(devs[1]["name"], "z");
  EXPECT_EQ(manager().device_count(), 2U);
  call({{"op", "create"}, {"name", "a"}, {"table", "0 8 zero"}});
  EXPECT_EQ(info("a")["size_sectors"], 8) << "the old name is free again";
  call({{"op", "remove"}, {"name", "b"}});
  EXPECT_EQ(failure({{"op", "info"}, {"name", "b"}}).first, ENXIO);
}

TEST_F(DaemonTest, RenameIsRefusedWithNoChangeForATakenBadOrSameName) {
  call({{"op", "create"}, {"name", "a"}, {"table", "0 8 zero"}});
  call({{"op", "create"}, {"name", "b"}, {"table", "0 8 zero"}});
  EXPECT_EQ(failure({{"op", "rename"}, {"name", "a"}, {"new_name", "b"}}),
            std::make_pair(EBUSY, std::string("cannot rename a to b: a device of that name exists already")));
  EXPECT_EQ(failure({{"op", "rename"}, {"name", "a"}, {"new_name", "a"}}),
            std::make_pair(EBUSY, std::string("a is the device's name already")));
  EXPECT_EQ(failure({{"op", "rename"}, {"name", "a"}, {"new_name", "x/y"}}).first, EINVAL);
  EXPECT_EQ(failure({{"op", "rename"}, {"name", "a"}, {"new_name", ""}}).first, EINVAL);
  EXPECT_EQ(failure({{"op", "rename"}, {"name", "a"}}),
            std::make_pair(EINVAL, std::string("rename takes either a new name or a new UUID")));
  EXPECT_EQ(failure({{"op", "rename"}, {"name", "a"}, {"new_name", "c"}, {"new_uuid", "U"}}).first, EINVAL);
  EXPECT_EQ(failure({{"op", "rename"}, {"name", "nope"}, {"new_name", "c"}}).first, ENXIO);
  const json devs = call({{"op", "ls"}})["devices"];
  ASSERT_EQ(devs.size(), 2U);
  EXPECT_EQ(devs[0]["name"], "a");
  EXPECT_EQ(devs[1]["name"], "b");
  EXPECT_EQ(failure({{"op", "info"}, {"name", "c"}}).first, ENXIO);
}

// As dm: a device without a UUID may be given one, once; UUIDs stay unique.
TEST_F(DaemonTest, SetUuidGivesADeviceWithoutOneAUuidOnce) {
  call({{"op", "create"}, {"name", "a"}, {"table", "0 8 zero"}});
  call({{"op", "create"}, {"name", "b"}, {"uuid", "U-b"}, {"table", "0 8 zero"}});
  EXPECT_EQ(failure({{"op", "rename"}, {"name", "a"}, {"new_uuid", "U-b"}}),
            std::make_pair(EBUSY, std::string("cannot give a the UUID U-b: device b has it")));
  EXPECT_EQ(failure({{"op", "rename"}, {"name", "a"}, {"new_uuid", "has space"}}).first, EINVAL);
  EXPECT_EQ(failure({{"op", "rename"}, {"name", "a"}, {"new_uuid", ""}}).first, EINVAL);
  EXPECT_EQ(info("a")["uuid"], "") << "refused: unchanged";
  EXPECT_EQ(call({{"op", "rename"}, {"name", "a"}, {"new_uuid", "U-a"}})["device"]["uuid"], "U-a");
  EXPECT_EQ(info("a")["uuid"], "U-a");
  EXPECT_EQ(failure({{"op", "rename"}, {"name", "a"}, {"new_uuid", "U-c"}}),
            std::make_pair(EINVAL, std::string("cannot change the UUID of a to U-c: it is U-a already (a device's "
                                               "UUID is set once)")));
  EXPECT_EQ(failure({{"op", "create"}, {"name", "c"}, {"uuid", "U-a"}, {"table", "0 8 zero"}}).first, EEXIST)
      << "the UUID given is taken for create too";
}

// A map of maps.d renamed behind its file would be made again at the next
// start, over the disks the renamed device holds.
TEST_F(DaemonTest, AMapOfMapsDIsRenamedOnlyWithItsFile) {
  const auto dir = std::filesystem::temp_directory_path() / ("ubdm-rename-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "maps.d");
  std::ofstream(dir / "maps.d" / "good.table") << "0 4096 linear disk0 0\n";
  cfg.config_dir = dir.string();
  EXPECT_EQ(manager().load_persistent_maps(), 1U);
  const auto [err, msg] = failure({{"op", "rename"}, {"name", "good"}, {"new_name", "better"}});
  EXPECT_EQ(err, EINVAL);
  EXPECT_EQ(msg, "good is made from " + (dir / "maps.d" / "good.table").string() +
                     " at every start of ubdmd: rename that file to better.table first");
  EXPECT_EQ(info("good")["name"], "good");
  std::filesystem::rename(dir / "maps.d" / "good.table", dir / "maps.d" / "better.table");
  call({{"op", "rename"}, {"name", "good"}, {"new_name", "better"}});
  EXPECT_EQ(info("better")["name"], "better");
  std::filesystem::remove_all(dir);
}

TEST_F(DaemonTest, ShutdownRemovesEveryDeviceEvenSuspendedOnes) {
  call({{"op", "create"}, {"name", "a"}, {"table", "0 8 zero"}});
  call({{"op", "create"}, {"name", "b"}, {"table", "0 8 zero"}});
  call({{"op", "suspend"}, {"name", "b"}});
  manager().shutdown();
  EXPECT_EQ(manager().device_count(), 0U);
  EXPECT_EQ(failure({{"op", "ls"}}).first, ESHUTDOWN);
}

// dmsetup joins its message words with spaces and the kernel splits them
// again (dm_split_args), so scripts quote a message as one word: both forms,
// and any spacing, mean the same message.
TEST_F(DaemonTest, MessageWordsAreJoinedAndSplitAsTheKernelDoes) {
  call({{"op", "create"},
        {"name", "mp"},
        {"table", "0 4096 multipath 3 queue_if_no_path path_check_interval 0 0 1 1 round-robin 0 2 1 disk0 1 disk1 1"}});
  call({{"op", "message"}, {"name", "mp"}, {"sector", 0}, {"args", {"fail_path disk1"}}});
  json mp = call({{"op", "paths"}})["devices"][0];
  EXPECT_EQ(mp["paths"][1]["state"], "failed") << mp.dump();
  call({{"op", "message"}, {"name", "mp"}, {"sector", 0}, {"args", {" reinstate_path\t", "\tdisk1  "}}});
  mp = call({{"op", "paths"}})["devices"][0];
  EXPECT_EQ(mp["paths"][1]["state"], "active") << mp.dump();
  EXPECT_EQ(failure({{"op", "message"}, {"name", "mp"}, {"sector", 0}, {"args", {"  ", ""}}}),
            std::make_pair(EINVAL, std::string("empty message")));
}

TEST_F(DaemonTest, PathsReportsMultipathDevicesOnly) {
  call({{"op", "create"},
        {"name", "mp"},
        {"table", "0 4096 multipath 3 queue_if_no_path path_check_interval 0 0 1 1 round-robin 0 2 1 disk0 1 disk1 1"}});
  call({{"op", "create"}, {"name", "lin"}, {"table", "0 8 zero"}});
  call({{"op", "message"}, {"name", "mp"}, {"sector", 0}, {"args", {"fail_path", "disk1"}}});
  const json all = call({{"op", "paths"}})["devices"];
  ASSERT_EQ(all.size(), 1U) << "only multipath devices are listed";
  const json& mp = all[0];
  EXPECT_EQ(mp["name"], "mp");
  EXPECT_EQ(mp["queue_if_no_path"], true);
  EXPECT_EQ(mp["valid_paths"], 1);
  EXPECT_EQ(mp["check_interval_s"], 0);
  ASSERT_EQ(mp["groups"].size(), 1U);
  EXPECT_EQ(mp["groups"][0]["selector"], "round-robin");
  ASSERT_EQ(mp["paths"].size(), 2U);
  EXPECT_EQ(mp["paths"][0]["path"], "disk0");
  EXPECT_EQ(mp["paths"][0]["state"], "active");
  EXPECT_EQ(mp["paths"][1]["state"], "failed");
  EXPECT_EQ(mp["paths"][1]["fail_count"], 1);
  EXPECT_EQ(mp["paths"][1]["checker"], "none");
  EXPECT_EQ(failure({{"op", "paths"}, {"name", "lin"}}),
            std::make_pair(EINVAL, std::string("device has no multipath target")));
  EXPECT_EQ(failure({{"op", "paths"}, {"name", "nosuch"}}).first, ENXIO);
}

TEST(UblkParams, FollowTheStackedLimits) {
  IoLimits l;
  l.logical_block_size = 4096;
  l.physical_block_size = 4096;
  l.io_min = 65536;
  l.io_opt = 131072;
  l.volatile_cache = true;
  l.discard = true;
  l.discard_granularity = 0;
  const ublk::Params p = ublk::make_params(l, 1000, 512 * 1024);
  EXPECT_EQ(p.len, sizeof(ublk::Params));
  EXPECT_EQ(p.types, ublk::kParamBasic | ublk::kParamDiscard);
  EXPECT_EQ(p.basic.logical_bs_shift, 12);
  EXPECT_EQ(p.basic.physical_bs_shift, 12);
  EXPECT_EQ(p.basic.io_min_shift, 16);
  EXPECT_EQ(p.basic.io_opt_shift, 17);
  EXPECT_EQ(p.basic.attrs, ublk::kAttrVolatileCache | ublk::kAttrFua);
  EXPECT_EQ(p.basic.max_sectors, 1024U);
  EXPECT_EQ(p.basic.dev_sectors, 1000U);
  EXPECT_EQ(p.discard.discard_granularity, 4096U) << "at least the logical block size";
  EXPECT_EQ(p.discard.max_discard_segments, 1);
}

TEST(UblkParams, NoDiscardParamsWhenADeviceCannotDiscard) {
  IoLimits l;
  l.discard = false;
  const ublk::Params p = ublk::make_params(l, 8, 128 * 1024);
  EXPECT_EQ(p.types, ublk::kParamBasic);
  EXPECT_EQ(p.basic.logical_bs_shift, 9);
  EXPECT_EQ(p.basic.io_min_shift, 9);
  EXPECT_EQ(p.basic.max_sectors, 256U);
}

// Issue 7 item 3: a device over write-through disks or files used to be
// advertised without a volatile cache, so the kernel completed every FLUSH
// itself and an fsync never reached the backing file.
TEST(UblkParams, FlushAndFuaAreAdvertisedEvenWhenNoDeviceCachesWrites) {
  IoLimits l;
  l.volatile_cache = false;
  const ublk::Params p = ublk::make_params(l, 8, 128 * 1024);
  EXPECT_EQ(p.basic.attrs & (ublk::kAttrVolatileCache | ublk::kAttrFua),
            ublk::kAttrVolatileCache | ublk::kAttrFua);
}

TEST(UblkParams, ATableMustHonourWhatTheLiveDeviceAdvertises) {
  IoLimits first;
  first.discard = true;
  first.discard_granularity = 4096;
  const ublk::Params advertised = ublk::make_params(first, 8, 128 * 1024);
  EXPECT_NO_THROW(ublk::check_table_fits(advertised, first, "/dev/ublkb0"));

  IoLimits big_blocks = first;
  big_blocks.logical_block_size = 4096;
  big_blocks.physical_block_size = 4096;
  try {
    ublk::check_table_fits(advertised, big_blocks, "/dev/ublkb0");
    ADD_FAILURE() << "a 4K-sector table under a 512-byte device was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), EINVAL);
    EXPECT_NE(std::string(e.what()).find("4096-byte logical blocks, but /dev/ublkb0 advertises 512"),
              std::string::npos)
        << e.what();
  }
  IoLimits no_discard = first;
  no_discard.discard = false;
  EXPECT_THROW(ublk::check_table_fits(advertised, no_discard, "/dev/ublkb0"), Error);

  // A device advertised without discard takes any table's discard support.
  IoLimits none;
  none.discard = false;
  EXPECT_NO_THROW(ublk::check_table_fits(ublk::make_params(none, 8, 128 * 1024), first, "/dev/ublkb0"));
}

}  // namespace
}  // namespace ubdm::daemon
