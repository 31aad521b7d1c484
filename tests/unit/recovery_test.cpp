// SPDX-License-Identifier: MIT
// Recovery without a kernel: the state records and their store, the
// adoption decisions for every stale case, and a DeviceManager that takes
// devices back from the records another one left.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "daemon/device_manager.hpp"
#include "io/fake_backend.hpp"
#include "recovery/adoption.hpp"
#include "recovery/state.hpp"
#include "ubdm/error.hpp"

namespace ubdm::recovery {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/ubdm-recovery-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

DeviceRecord sample() {
  DeviceRecord r;
  r.name = "mp0";
  r.uuid = "mpath-3600a0b80";
  r.read_only = true;
  r.phase = DeviceRecord::Phase::kLive;
  r.ublk_id = 3;
  r.queues = 2;
  r.depth = 64;
  r.poll_usec = 0;
  r.max_io_bytes = 256 * 1024;
  r.live_table = "0 2048 linear /dev/sda 0";
  r.inactive_table = "0 2048 linear /dev/sdb 0";
  r.suspended = true;
  r.noflush = true;
  r.messages = {{0, {"fail_path", "/dev/sdb"}}, {0, {"queue_if_no_path"}}};
  r.renames = 2;
  return r;
}

std::string error_of(const json& j) {
  try {
    record_from_json(j);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(RecoveryState, RecordRoundTripsThroughJson) {
  const DeviceRecord r = sample();
  EXPECT_EQ(record_from_json(json::parse(to_json(r).dump())), r);
  DeviceRecord plain = r;
  plain.inactive_table.reset();
  plain.messages.clear();
  EXPECT_EQ(record_from_json(to_json(plain)), plain);
  EXPECT_EQ(to_json(r)["format"], kStateFormat);
}

TEST(RecoveryState, RecordsFromBeforeUuidsReadAsHavingNone) {
  json j = to_json(sample());
  j.erase("uuid");
  j.erase("read_only");
  j.erase("renames");
  DeviceRecord want = sample();
  want.uuid.clear();
  want.read_only = false;
  want.renames = 0;
  EXPECT_EQ(record_from_json(j), want);
}

TEST(RecoveryState, BadRecordsAreRefusedByName) {
  json j = to_json(sample());
  j["format"] = kStateFormat + 1;
  EXPECT_NE(error_of(j).find("written by a newer ubdmd"), std::string::npos) << error_of(j);
  j = to_json(sample());
  j.erase("live_table");
  EXPECT_EQ(error_of(j), "field 'live_table' is missing");
  j = to_json(sample());
  j["queues"] = "two";
  EXPECT_EQ(error_of(j), "field 'queues' has the wrong type (string)");
  j = to_json(sample());
  j["phase"] = "half";
  EXPECT_EQ(error_of(j), "unknown phase 'half'");
  EXPECT_EQ(error_of(json::array()), "not a JSON object");
}

TEST(RecoveryState, StoreSavesAtomicallyAndLoadsEverything) {
  TempDir dir;
  const StateStore store(dir.sub("state"));
  DeviceRecord a = sample();
  a.name = "a";
  DeviceRecord b = sample();
  b.name = "b";
  b.ublk_id = 4;
  store.save(b);
  store.save(a);
  a.live_table = "0 8 zero";
  store.save(a);  // replaces
  EXPECT_EQ(fs::status(dir.sub("state")).permissions() & fs::perms::all,
            fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec | fs::perms::others_read |
                fs::perms::others_exec)
      << "created with the default mode; the files themselves are 0600";
  EXPECT_EQ(fs::status(store.path_of("a")).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  // A writer that died before its rename leaves a temporary file: ignored
  // and cleaned, the record it was to replace stays.
  std::ofstream(dir.sub("state/.tmp.a.json")) << "{ half";
  const StateStore::Loaded l = store.load_all();
  ASSERT_EQ(l.records.size(), 2U);
  EXPECT_EQ(l.records[0], a);
  EXPECT_EQ(l.records[1], b);
  EXPECT_TRUE(l.problems.empty());
  EXPECT_FALSE(fs::exists(dir.sub("state/.tmp.a.json")));
  store.erase("b");
  store.erase("b");  // not an error
  EXPECT_EQ(store.load_all().records.size(), 1U);
}

TEST(RecoveryState, UnusableFilesAreReportedAndTheirDevicesLeftAlone) {
  TempDir dir;
  const StateStore store(dir.path());
  std::ofstream(store.path_of("broken")) << "{ not json";
  json newer = to_json(sample());
  newer["name"] = "newer";
  newer["format"] = kStateFormat + 1;
  newer["ublk_id"] = 7;
  std::ofstream(store.path_of("newer")) << newer.dump();
  json misnamed = to_json(sample());  // names mp0, in other.json
  std::ofstream(store.path_of("other")) << misnamed.dump();

  const StateStore::Loaded l = store.load_all();
  EXPECT_TRUE(l.records.empty());
  ASSERT_EQ(l.problems.size(), 3U);
  EXPECT_NE(l.problems[0].find("broken.json: not valid JSON"), std::string::npos) << l.problems[0];
  EXPECT_NE(l.problems[1].find("newer.json: state format 2"), std::string::npos) << l.problems[1];
  EXPECT_NE(l.problems[1].find("left in place"), std::string::npos) << l.problems[1];
  EXPECT_NE(l.problems[2].find("it names device 'mp0'"), std::string::npos) << l.problems[2];
  EXPECT_TRUE(fs::exists(store.path_of("broken") + ".bad"));
  EXPECT_TRUE(fs::exists(store.path_of("newer"))) << "a newer daemon's record is not ours to move";
  EXPECT_EQ(l.unreadable_ids, (std::vector<std::uint32_t>{7, 3}));
}

TEST(RecoveryState, DisabledStoreDoesNothing) {
  const StateStore store("");
  EXPECT_FALSE(store.enabled());
  store.save(sample());
  store.erase("x");
  EXPECT_TRUE(store.load_all().records.empty());
}

// --- adoption decisions -------------------------------------------------------

constexpr pid_t kSelf = 1000;
constexpr pid_t kDeadPid = 2000;
constexpr pid_t kOtherLivePid = 3000;
bool alive(pid_t pid) { return pid == kSelf || pid == kOtherLivePid; }

ublk::DevInfo device(std::uint32_t id, std::uint16_t state, pid_t pid = kDeadPid, bool ubdm = true,
                     bool recovery = true) {
  ublk::DevInfo d{};
  d.dev_id = id;
  d.state = state;
  d.ublksrv_pid = pid;
  d.nr_hw_queues = 2;
  d.queue_depth = 64;
  d.flags = recovery ? ublk::kFeatUserRecovery | ublk::kFeatUserRecoveryReissue : 0;
  d.ublksrv_flags = ubdm ? ublk::kUbdmStamp : 0;
  return d;
}

DeviceRecord record(const std::string& name, std::int64_t id,
                    DeviceRecord::Phase phase = DeviceRecord::Phase::kLive) {
  DeviceRecord r = sample();
  r.name = name;
  r.ublk_id = id;
  r.phase = phase;
  return r;
}

struct Plan {
  std::vector<Step> steps;
  // "action why" of step i.
  std::string operator[](std::size_t i) const {
    return i < steps.size() ? fmt::format("{}: {}", action_name(steps[i].action), steps[i].why) : "(none)";
  }
};

Plan plan(const std::vector<DeviceRecord>& records, const std::vector<ublk::DevInfo>& kernel,
          const std::vector<std::uint32_t>& unreadable = {}) {
  return Plan{plan_adoption(records, kernel, unreadable, alive, kSelf)};
}

TEST(AdoptionPlan, AQuiescedDeviceWithItsRecordIsAdopted) {
  const Plan p = plan({record("a", 0)}, {device(0, ublk::kStateQuiesced)});
  ASSERT_EQ(p.steps.size(), 1U);
  EXPECT_EQ(p[0], "adopt: its server exited");
  EXPECT_EQ(p.steps[0].record->name, "a");
  EXPECT_EQ(p.steps[0].device->dev_id, 0U);
}

TEST(AdoptionPlan, ALiveDeviceWhoseServerIsGoneIsAdopted) {
  // The old server's release is still under way: adoption waits for it.
  EXPECT_EQ(plan({record("a", 0)}, {device(0, ublk::kStateLive, kDeadPid)})[0], "adopt: its server exited");
}

TEST(AdoptionPlan, ADeviceAnotherLiveServerHoldsStopsTheStart) {
  const Plan p = plan({record("a", 0)}, {device(0, ublk::kStateLive, kOtherLivePid)});
  EXPECT_EQ(p[0], "refuse: ublk device 0 is served by process 3000: is another ubdmd running?");
}

TEST(AdoptionPlan, RecordsWithoutTheirDeviceAreDropped) {
  const Plan p = plan({record("gone", 5), record("never", -1, DeviceRecord::Phase::kCreating),
                       record("foreign", 1)},
                      {device(1, ublk::kStateQuiesced, kDeadPid, /*ubdm=*/false)});
  ASSERT_EQ(p.steps.size(), 3U);
  EXPECT_EQ(p[0], "drop-record: ublk device 5 no longer exists");
  EXPECT_EQ(p[1], "drop-record: its create never reached the kernel");
  EXPECT_EQ(p[2], "drop-record: ublk device 1 now belongs to another ublk server");
}

TEST(AdoptionPlan, HalfMadeDevicesAreFinishedOrDeleted) {
  const Plan p = plan({record("started", 0, DeviceRecord::Phase::kCreating),
                       record("unstarted", 1, DeviceRecord::Phase::kCreating)},
                      {device(0, ublk::kStateQuiesced), device(1, ublk::kStateDead)});
  EXPECT_EQ(p[0], "adopt: its create had started the disk: finishing it");
  EXPECT_EQ(p[1], "delete-device: half-made: its create ended before the disk was started");
}

TEST(AdoptionPlan, ARemovalUnderWayIsFinished) {
  EXPECT_EQ(plan({record("a", 2, DeviceRecord::Phase::kRemoving)}, {device(2, ublk::kStateQuiesced)})[0],
            "finish-remove: it was being removed");
}

TEST(AdoptionPlan, DevicesThatCannotBeServedAreDeleted) {
  const Plan p = plan({record("dead", 0), record("norecovery", 1)},
                      {device(0, ublk::kStateDead), device(1, ublk::kStateQuiesced, kDeadPid, true, false)});
  EXPECT_EQ(p[0], "delete-device: its disk was removed while no ubdmd ran");
  EXPECT_EQ(p[1], "delete-device: it was added without USER_RECOVERY and cannot be taken over");
}

TEST(AdoptionPlan, OurDevicesWithoutARecordAreDeletedOthersLeftAlone) {
  const Plan p = plan({}, {device(0, ublk::kStateQuiesced),                          // ours, orphaned
                           device(1, ublk::kStateQuiesced, kDeadPid, /*ubdm=*/false),  // another server's
                           device(2, ublk::kStateLive, kOtherLivePid),               // another ubdmd's
                           device(3, ublk::kStateQuiesced)},                         // unreadable record
                      {3});
  ASSERT_EQ(p.steps.size(), 1U);
  EXPECT_EQ(p[0], "delete-device: ublk device 0 was made by ubdm but has no state to adopt it");
}

TEST(AdoptionPlan, TwoRecordsForOneDeviceAdoptOnlyTheFirst) {
  const Plan p = plan({record("a", 0), record("b", 0)}, {device(0, ublk::kStateQuiesced)});
  EXPECT_EQ(p[0], "adopt: its server exited");
  EXPECT_EQ(p[1], "drop-record: ublk device 0 is already another record's");
}

// A rename writes the record under the new name, then erases the old one:
// a crash between the two leaves both, and the newer is the device's,
// whichever name sorts first.
TEST(AdoptionPlan, ARenameCutShortEndsUnderTheNewName) {
  for (const auto& [older, newer] : {std::pair{"a", "b"}, std::pair{"b", "a"}}) {
    DeviceRecord before = record(older, 0);
    DeviceRecord after = record(newer, 0);
    before.renames = 2;
    after.renames = 3;
    const Plan p = plan({before, after}, {device(0, ublk::kStateQuiesced)});
    ASSERT_EQ(p.steps.size(), 2U);
    EXPECT_EQ(p[0], fmt::format("drop-record: it was being renamed to {} (ublk device 0)", newer));
    EXPECT_EQ(p[1], "adopt: its server exited");
    EXPECT_EQ(p.steps[1].record->name, newer);
  }
}

// --- a daemon taking devices back -------------------------------------------------

class DaemonRecoveryTest : public ::testing::Test {
 protected:
  DaemonRecoveryTest() {
    storage.add_disk("disk0", 8192);
    storage.add_disk("disk1", 8192);
    cfg.link_dir.clear();
    cfg.names_dir.clear();
    cfg.default_queues = 2;
    cfg.state_dir = dir.sub("state");
  }

  json call(daemon::DeviceManager& m, json req) { return m.handle(req); }

  // What a crash leaves: the records as they are now. (Destroying a manager
  // removes its devices, as a real stop would not.) Each gets a made-up
  // ublk id, since there is no kernel here to give one.
  std::vector<ublk::DevInfo> crash_copy(const std::string& to) {
    fs::create_directories(to);
    std::vector<ublk::DevInfo> kernel;
    std::uint32_t id = 0;
    for (const auto& e : fs::directory_iterator(cfg.state_dir)) {
      json j = json::parse(read_file(e.path().string()));
      j["ublk_id"] = id;
      std::ofstream(to + "/" + e.path().filename().string()) << j.dump();
      ublk::DevInfo d{};
      d.dev_id = id++;
      d.state = ublk::kStateQuiesced;
      d.nr_hw_queues = static_cast<std::uint16_t>(j["queues"].get<unsigned>());
      d.queue_depth = static_cast<std::uint16_t>(j["depth"].get<unsigned>());
      d.flags = ublk::kFeatUserRecovery | ublk::kFeatUserRecoveryReissue;
      d.ublksrv_flags = ublk::kUbdmStamp;
      kernel.push_back(d);
    }
    return kernel;
  }

  TempDir dir;
  FakeStorage storage;
  daemon::DaemonConfig cfg;
};

constexpr const char* kMpTable =
    "0 4096 multipath 3 queue_if_no_path path_check_interval 0 0 2 1 "
    "round-robin 0 1 1 disk0 1 round-robin 0 1 1 disk1 1";

TEST_F(DaemonRecoveryTest, EveryVerbThatChangesADeviceIsRecorded) {
  daemon::DeviceManager m(cfg, storage, nullptr);
  const std::string file = cfg.state_dir + "/a.json";
  call(m, {{"op", "create"}, {"name", "a"}, {"table", "0 4096 linear disk0 0"}, {"depth", 32}});
  json r = json::parse(read_file(file));
  EXPECT_EQ(r["phase"], "live");
  EXPECT_EQ(r["live_table"], "0 4096 linear disk0 0");
  EXPECT_EQ(r["depth"], 32);
  call(m, {{"op", "load"}, {"name", "a"}, {"table", "0 4096 linear disk1 0"}});
  EXPECT_EQ(json::parse(read_file(file))["inactive_table"], "0 4096 linear disk1 0");
  call(m, {{"op", "clear"}, {"name", "a"}});
  EXPECT_TRUE(json::parse(read_file(file))["inactive_table"].is_null());
  call(m, {{"op", "suspend"}, {"name", "a"}, {"noflush", true}});
  r = json::parse(read_file(file));
  EXPECT_EQ(r["suspended"], true);
  EXPECT_EQ(r["noflush"], true);
  call(m, {{"op", "load"}, {"name", "a"}, {"table", "0 4096 linear disk1 0"}});
  call(m, {{"op", "resume"}, {"name", "a"}});
  r = json::parse(read_file(file));
  EXPECT_EQ(r["suspended"], false);
  EXPECT_EQ(r["live_table"], "0 4096 linear disk1 0") << "the swapped-in table's text";
  EXPECT_TRUE(r["inactive_table"].is_null());

  call(m, {{"op", "create"}, {"name", "mp"}, {"table", kMpTable}});
  call(m, {{"op", "message"}, {"name", "mp"}, {"sector", 0}, {"args", {"fail_path", "disk0"}}});
  const json messages = json::parse(read_file(cfg.state_dir + "/mp.json"))["messages"];
  EXPECT_NE(messages.dump().find("\"fail_path\",\"disk0\""), std::string::npos) << messages.dump();

  call(m, {{"op", "remove"}, {"name", "a"}});
  EXPECT_FALSE(fs::exists(file)) << "a removed device leaves no record";
}

TEST_F(DaemonRecoveryTest, ANewDaemonRestoresTablesStateAndMessages) {
  const std::string dir2 = dir.sub("after-crash");
  std::vector<ublk::DevInfo> kernel;
  json before_a;
  json before_mp;
  {
    daemon::DeviceManager m(cfg, storage, nullptr);
    call(m, {{"op", "create"}, {"name", "a"}, {"table", "0 4096 linear disk0 0\n4096 100 zero"}, {"poll_usec", 7}});
    call(m, {{"op", "load"}, {"name", "a"}, {"table", "0 4196 zero"}});
    call(m, {{"op", "create"},
             {"name", "mp"},
             {"table", kMpTable},
             {"queues", 1},
             {"uuid", "mpath-36001"},
             {"read_only", true}});
    call(m, {{"op", "message"}, {"name", "mp"}, {"sector", 0}, {"args", {"disable_group", "2"}}});
    call(m, {{"op", "message"}, {"name", "mp"}, {"sector", 0}, {"args", {"fail_path", "disk0"}}});
    call(m, {{"op", "message"}, {"name", "mp"}, {"sector", 0}, {"args", {"fail_if_no_path"}}});
    call(m, {{"op", "suspend"}, {"name", "mp"}, {"noflush", true}});
    before_a = call(m, {{"op", "info"}, {"name", "a"}})["devices"][0];
    before_mp = call(m, {{"op", "status"}, {"name", "mp"}})["devices"][0];
    kernel = crash_copy(dir2);
  }
  cfg.state_dir = dir2;
  daemon::DeviceManager m(cfg, storage, nullptr);
  EXPECT_EQ(m.adopt_devices(kernel, std::chrono::seconds(10)), 2U);

  const json a = call(m, {{"op", "info"}, {"name", "a"}})["devices"][0];
  EXPECT_EQ(a["state"], "ACTIVE");
  EXPECT_EQ(a["inactive_table"], true);
  EXPECT_EQ(a["poll_usec"], 7);
  EXPECT_EQ(a["queues"], before_a["queues"]);
  EXPECT_EQ(call(m, {{"op", "table"}, {"name", "a"}})["devices"][0]["lines"],
            json({"0 4096 linear disk0 0", "4096 100 zero "}));
  EXPECT_EQ(call(m, {{"op", "table"}, {"name", "a"}, {"inactive", true}})["devices"][0]["lines"],
            json({"0 4196 zero "}));

  const json mp = call(m, {{"op", "info"}, {"name", "mp"}})["devices"][0];
  EXPECT_EQ(mp["state"], "SUSPENDED");
  EXPECT_EQ(mp["queues"], 1);
  EXPECT_EQ(mp["uuid"], "mpath-36001");
  EXPECT_EQ(mp["read_only"], true);
  EXPECT_EQ(a["uuid"], "");
  // Group 2 disabled, disk0 failed, queueing off: the status line says all.
  EXPECT_EQ(call(m, {{"op", "status"}, {"name", "mp"}})["devices"][0], before_mp);
  const std::string status = before_mp["lines"][0].get<std::string>();
  EXPECT_NE(status.find(" D "), std::string::npos) << status;
  EXPECT_NE(status.find("disk0 F"), std::string::npos) << status;
  call(m, {{"op", "resume"}, {"name", "mp"}});
  const std::string table = call(m, {{"op", "table"}, {"name", "mp"}})["devices"][0]["lines"][0];
  EXPECT_EQ(table.find("queue_if_no_path"), std::string::npos) << "fail_if_no_path was restored: " << table;
}

TEST_F(DaemonRecoveryTest, ARenamedDeviceIsRecordedAndAdoptedUnderItsNewName) {
  const std::string dir2 = dir.sub("after-crash");
  std::vector<ublk::DevInfo> kernel;
  {
    daemon::DeviceManager m(cfg, storage, nullptr);
    call(m, {{"op", "create"}, {"name", "a"}, {"table", "0 4096 linear disk0 0"}});
    call(m, {{"op", "rename"}, {"name", "a"}, {"new_name", "b"}});
    EXPECT_FALSE(fs::exists(cfg.state_dir + "/a.json")) << "the old record is gone";
    const json r = json::parse(read_file(cfg.state_dir + "/b.json"));
    EXPECT_EQ(r["name"], "b");
    EXPECT_EQ(r["renames"], 1);
    call(m, {{"op", "rename"}, {"name", "b"}, {"new_uuid", "U-b"}});
    EXPECT_EQ(json::parse(read_file(cfg.state_dir + "/b.json"))["uuid"], "U-b");
    kernel = crash_copy(dir2);
  }
  cfg.state_dir = dir2;
  daemon::DeviceManager m(cfg, storage, nullptr);
  EXPECT_EQ(m.adopt_devices(kernel, std::chrono::seconds(10)), 1U);
  const json b = call(m, {{"op", "info"}, {"name", "b"}})["devices"][0];
  EXPECT_EQ(b["uuid"], "U-b");
  EXPECT_EQ(b["size_sectors"], 4096);
  call(m, {{"op", "rename"}, {"name", "b"}, {"new_name", "c"}});
  EXPECT_EQ(json::parse(read_file(dir2 + "/c.json"))["renames"], 2) << "renames count on across restarts";
}

TEST_F(DaemonRecoveryTest, ATableThatCannotBeRebuiltHoldsTheDeviceForTheOperator) {
  const std::string dir2 = dir.sub("after-crash");
  std::vector<ublk::DevInfo> kernel;
  {
    daemon::DeviceManager m(cfg, storage, nullptr);
    call(m, {{"op", "create"}, {"name", "a"}, {"table", "0 4096 linear disk1 0"}});
    kernel = crash_copy(dir2);
  }
  storage.remove_disk("disk1");  // the path is gone while no daemon ran
  cfg.state_dir = dir2;
  daemon::DeviceManager m(cfg, storage, nullptr);
  EXPECT_EQ(m.adopt_devices(kernel, std::chrono::seconds(10)), 1U);
  json a = call(m, {{"op", "info"}, {"name", "a"}})["devices"][0];
  EXPECT_EQ(a["state"], "SUSPENDED");
  EXPECT_EQ(a["live_table"], false);
  EXPECT_EQ(json::parse(read_file(dir2 + "/a.json"))["live_table"], "0 4096 linear disk1 0")
      << "the record keeps the table, for the next start to try again";
  call(m, {{"op", "load"}, {"name", "a"}, {"table", "0 4096 linear disk0 0"}});
  a = call(m, {{"op", "resume"}, {"name", "a"}})["device"];
  EXPECT_EQ(a["state"], "ACTIVE");
  EXPECT_EQ(json::parse(read_file(dir2 + "/a.json"))["live_table"], "0 4096 linear disk0 0");
}

TEST_F(DaemonRecoveryTest, AMultipathPathGoneWhileNoDaemonRanIsKeptFailed) {
  const std::string dir2 = dir.sub("after-crash");
  std::vector<ublk::DevInfo> kernel;
  {
    daemon::DeviceManager m(cfg, storage, nullptr);
    call(m, {{"op", "create"}, {"name", "mp"}, {"table", kMpTable}});
    kernel = crash_copy(dir2);
  }
  storage.remove_disk("disk1");
  cfg.state_dir = dir2;
  daemon::DeviceManager m(cfg, storage, nullptr);
  EXPECT_EQ(m.adopt_devices(kernel, std::chrono::seconds(10)), 1U);
  EXPECT_EQ(call(m, {{"op", "info"}, {"name", "mp"}})["devices"][0]["state"], "ACTIVE");
  const json paths = call(m, {{"op", "paths"}, {"name", "mp"}})["devices"][0];
  EXPECT_EQ(paths["valid_paths"], 1) << paths.dump();
  EXPECT_EQ(paths["paths"][1]["path"], "disk1");
  EXPECT_EQ(paths["paths"][1]["state"], "failed");
  // Only a restarted daemon's rebuild is lenient: a new table is refused.
  try {
    call(m, {{"op", "load"}, {"name", "mp"}, {"table", kMpTable}});
    ADD_FAILURE() << "a table with a missing path was loaded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ENOENT);
  }
  // The path comes back: the state writer's next round reloads the table.
  storage.add_disk("disk1", 8192);
  json now;
  for (int i = 0; i < 50; ++i) {
    now = call(m, {{"op", "paths"}, {"name", "mp"}})["devices"][0];
    if (now["valid_paths"] == 2) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(now["valid_paths"], 2) << now.dump();
  EXPECT_EQ(call(m, {{"op", "info"}, {"name", "mp"}})["devices"][0]["state"], "ACTIVE");
}

TEST_F(DaemonRecoveryTest, ADeviceWithoutATableCanBeRemovedByForce) {
  const std::string dir2 = dir.sub("after-crash");
  std::vector<ublk::DevInfo> kernel;
  {
    daemon::DeviceManager m(cfg, storage, nullptr);
    call(m, {{"op", "create"}, {"name", "a"}, {"table", "0 4096 linear disk1 0"}});
    kernel = crash_copy(dir2);
  }
  storage.remove_disk("disk1");
  cfg.state_dir = dir2;
  daemon::DeviceManager m(cfg, storage, nullptr);
  ASSERT_EQ(m.adopt_devices(kernel, std::chrono::seconds(10)), 1U);
  EXPECT_EQ(call(m, {{"op", "remove_all"}, {"force", true}})["removed"], json({"a"}));
  EXPECT_EQ(m.device_count(), 0U);
}

TEST_F(DaemonRecoveryTest, StaleRecordsAreDroppedAndNothingIsAdopted) {
  const std::string dir2 = dir.sub("after-crash");
  {
    daemon::DeviceManager m(cfg, storage, nullptr);
    call(m, {{"op", "create"}, {"name", "a"}, {"table", "0 8 zero"}});
    crash_copy(dir2);
  }
  cfg.state_dir = dir2;
  daemon::DeviceManager m(cfg, storage, nullptr);
  EXPECT_EQ(m.adopt_devices({}, std::chrono::seconds(10)), 0U) << "its ublk device is gone";
  EXPECT_EQ(m.device_count(), 0U);
  EXPECT_FALSE(fs::exists(dir2 + "/a.json"));
}

TEST_F(DaemonRecoveryTest, RemoveAllRemovesWhatItCanAndNamesTheRest) {
  daemon::DeviceManager m(cfg, storage, nullptr);
  call(m, {{"op", "create"}, {"name", "a"}, {"table", "0 8 zero"}});
  call(m, {{"op", "create"}, {"name", "b"}, {"table", "0 8 zero"}});
  call(m, {{"op", "suspend"}, {"name", "b"}});
  try {
    call(m, {{"op", "remove_all"}});
    ADD_FAILURE() << "remove_all removed a suspended device";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), EBUSY);
    EXPECT_EQ(std::string(e.what()),
              "1 device(s) not removed: b (device is suspended: resume it first, or use --force)");
  }
  EXPECT_EQ(m.device_count(), 1U);
  EXPECT_EQ(call(m, {{"op", "remove_all"}, {"force", true}})["removed"], json({"b"}));
  EXPECT_EQ(m.device_count(), 0U);
  EXPECT_TRUE(fs::is_empty(cfg.state_dir));
}

}  // namespace
}  // namespace ubdm::recovery
