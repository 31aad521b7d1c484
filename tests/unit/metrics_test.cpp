// SPDX-License-Identifier: MIT
// I/O statistics and their exposition: what the queues count, the `stats`
// verb, the Prometheus text format, and the exporter's endpoint and file.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <httplib.h>

#include "daemon/device_manager.hpp"
#include "live_device.hpp"
#include "metrics/device_stats.hpp"
#include "metrics/exporter.hpp"
#include "probe_target.hpp"
#include "ubdm/error.hpp"

namespace ubdm::test {
namespace {

using json = nlohmann::json;

const OpIoTotals& op(const IoTotals& t, Op o) { return t.ops[static_cast<std::size_t>(o)]; }

class IoStatsTest : public ::testing::Test, protected LiveDevice {
 protected:
  void SetUp() override {
    register_probe_target();
    probes().clear();
    storage.add_disk("disk0", 4096);
  }
};

TEST_F(IoStatsTest, CountsEachOperationWithItsBytesAndErrors) {
  start("s", "0 4096 linear disk0 0");
  std::vector<std::byte> buf(16 * 512);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(fe->write(static_cast<sector_t>(i) * 8, 8, buf.data()), 0);
  }
  ASSERT_EQ(fe->read(0, 16, buf.data()), 0);
  ASSERT_EQ(fe->read(64, 16, buf.data()), 0);
  ASSERT_EQ(fe->flush(), 0);
  ASSERT_EQ(fe->discard(128, 8), 0);
  storage.inject("disk0", FaultRule{op_bit(Op::kWrite), -EIO, 1});
  EXPECT_EQ(fe->write(0, 8, buf.data()), -EIO);

  const IoTotals t = dev->io_stats();
  EXPECT_EQ(op(t, Op::kWrite).completed, 4U);
  EXPECT_EQ(op(t, Op::kWrite).bytes, 4U * 4096);
  EXPECT_EQ(op(t, Op::kWrite).errors, 1U);
  EXPECT_EQ(op(t, Op::kRead).completed, 2U);
  EXPECT_EQ(op(t, Op::kRead).bytes, 2U * 8192);
  EXPECT_EQ(op(t, Op::kRead).errors, 0U);
  EXPECT_EQ(op(t, Op::kFlush).completed, 1U);
  EXPECT_EQ(op(t, Op::kFlush).bytes, 0U);
  EXPECT_EQ(op(t, Op::kDiscard).completed, 1U);
  EXPECT_EQ(op(t, Op::kDiscard).bytes, 4096U);
  EXPECT_EQ(op(t, Op::kWriteZeroes).completed, 0U);
  for (const OpIoTotals& o : t.ops) {
    EXPECT_EQ(o.in_flight(), 0U);
  }
}

TEST_F(IoStatsTest, InFlightCountsWhatHasNotCompleted) {
  start("s", "0 4096 linear disk0 0");
  std::vector<std::byte> buf(4096);
  storage.hold("disk0", true);
  const int a = fe->submit(Op::kRead, 0, 8, 0, buf.data());
  const int b = fe->submit(Op::kWrite, 8, 8, 0, buf.data());
  pump();
  IoTotals t = dev->io_stats();
  EXPECT_EQ(op(t, Op::kRead).in_flight(), 1U);
  EXPECT_EQ(op(t, Op::kWrite).in_flight(), 1U);
  EXPECT_EQ(op(t, Op::kRead).completed, 0U);
  storage.hold("disk0", false);
  pump();
  ASSERT_TRUE(fe->done(a) && fe->done(b));
  t = dev->io_stats();
  EXPECT_EQ(op(t, Op::kRead).in_flight(), 0U);
  EXPECT_EQ(op(t, Op::kRead).completed, 1U);
  EXPECT_EQ(op(t, Op::kWrite).completed, 1U);
}

TEST_F(IoStatsTest, LatencyLandsInTheBucketOfItsDuration) {
  start("s", "0 4096 linear disk0 0");
  std::vector<std::byte> buf(4096);
  storage.hold("disk0", true);
  const int tag = fe->submit(Op::kRead, 0, 8, 0, buf.data());
  pump();
  clock.advance_ms(3);
  storage.hold("disk0", false);
  pump();
  ASSERT_TRUE(fe->done(tag));
  const IoTotals t = dev->io_stats();
  const OpIoTotals& r = op(t, Op::kRead);
  EXPECT_EQ(r.latency_ns_sum, 3'000'000U);
  // 3000 us is more than 2^11 and at most 2^12.
  for (std::size_t i = 0; i < kLatencyBuckets; ++i) {
    EXPECT_EQ(r.latency[i], i == 12 ? 1U : 0U) << "bucket " << i;
  }
}

TEST_F(IoStatsTest, UntimedDevicesCountButKeepNoHistogram) {
  DeviceConfig cfg{1, 16, 4};
  cfg.time_ios = false;
  start("s", "0 4096 linear disk0 0", cfg);
  std::vector<std::byte> buf(4096);
  ASSERT_EQ(fe->read(0, 8, buf.data()), 0);
  const IoTotals t = dev->io_stats();
  const OpIoTotals& r = op(t, Op::kRead);
  EXPECT_EQ(r.completed, 1U);
  EXPECT_EQ(r.latency_ns_sum, 0U);
  for (const std::uint64_t c : r.latency) {
    EXPECT_EQ(c, 0U);
  }
}

TEST_F(IoStatsTest, QueuedCountsPiecesWaitingOutARequeueDelay) {
  start("s", "0 1024 probe disk0 0");
  int calls = 0;
  probes().at(0)->on_map = [&](Clone&) { return ++calls == 1 ? MapResult::kDelayRequeue : MapResult::kRemapped; };
  std::vector<std::byte> buf(4096);
  const int tag = fe->submit(Op::kRead, 0, 8, 0, buf.data());
  pump();
  EXPECT_EQ(dev->io_stats().waiting_requeue, 1U);
  EXPECT_EQ(dev->io_stats().requeues, 1U);
  clock.advance_ms(200);
  pump();
  ASSERT_TRUE(fe->done(tag));
  EXPECT_EQ(dev->io_stats().waiting_requeue, 0U);
}

TEST_F(IoStatsTest, PushedBackCountsWhatANoflushSuspendHolds) {
  start("s", "0 1024 probe disk0 0");
  probes().at(0)->on_end_io = [](Clone&, int) { return EndIoResult::kRequeue; };
  std::vector<std::byte> buf(4096);
  fe->submit(Op::kRead, 0, 8, 0, buf.data());
  pump();
  dev->begin_suspend(kSuspendNoflush);
  pump();
  EXPECT_EQ(dev->io_stats().pushed_back, 1U);
  EXPECT_EQ(dev->io_stats().pushbacks, 1U);
  probes().at(0)->on_end_io = nullptr;
  dev->finish_suspend();
  dev->resume();
  pump();
  EXPECT_EQ(dev->io_stats().pushed_back, 0U);
  EXPECT_EQ(dev->io_stats().pushbacks, 1U) << "the total stays";
}

// The control plane reads while the queue thread counts (TSan checks that
// nothing but the counters' atomics is shared): figures only grow, and the
// last read agrees with what was done.
TEST_F(IoStatsTest, AnotherThreadReadsTheFiguresWhileIoRuns) {
  start("s", "0 4096 linear disk0 0");
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> reads{0};
  bool shrank = false;
  std::thread reader([&] {
    std::uint64_t last = 0;
    while (!done) {
      const IoTotals t = dev->io_stats();
      const std::uint64_t now = op(t, Op::kRead).completed;
      shrank = shrank || now < last;
      last = now;
      (void)metrics::io_totals_json(t).dump();
      ++reads;
    }
  });
  // The I/O starts once the reader reads: on a loaded machine the reader
  // could otherwise first run after all of it.
  while (reads.load() == 0) {
    std::this_thread::yield();
  }
  std::vector<std::byte> buf(4096);
  constexpr int kIos = 3000;
  for (int i = 0; i < kIos; ++i) {
    ASSERT_EQ(fe->read(static_cast<sector_t>(i % 512) * 8, 8, buf.data()), 0);
  }
  done = true;
  reader.join();
  EXPECT_FALSE(shrank) << "a completed count went down";
  const IoTotals t = dev->io_stats();
  EXPECT_EQ(op(t, Op::kRead).completed, static_cast<std::uint64_t>(kIos));
  std::uint64_t timed = 0;
  for (const std::uint64_t c : op(t, Op::kRead).latency) {
    timed += c;
  }
  EXPECT_EQ(timed, static_cast<std::uint64_t>(kIos)) << "every I/O in one bucket";
}

// --- histogram arithmetic ------------------------------------------------------

TEST(LatencyBuckets, BoundsAreAtMostPowersOfTwoMicroseconds) {
  EXPECT_EQ(latency_bucket(0), 0U);
  EXPECT_EQ(latency_bucket(1000), 0U);
  EXPECT_EQ(latency_bucket(1001), 1U);
  EXPECT_EQ(latency_bucket(2000), 1U);
  EXPECT_EQ(latency_bucket(2001), 2U);
  EXPECT_EQ(latency_bucket(1'024'000), 10U);
  EXPECT_EQ(latency_bucket(1'024'001), 11U);
  EXPECT_EQ(latency_bucket(latency_bound_us(kLatencyBounds - 1) * 1000), kLatencyBounds - 1);
  EXPECT_EQ(latency_bucket(latency_bound_us(kLatencyBounds - 1) * 1000 + 1), kLatencyBounds);
  EXPECT_EQ(latency_bucket(~std::uint64_t{0} / 2), kLatencyBounds);
}

TEST(LatencyBuckets, QuantileIsTheBoundOfItsBucket) {
  json counts = json::array();
  for (std::size_t i = 0; i < kLatencyBuckets; ++i) {
    counts.push_back(0);
  }
  EXPECT_EQ(metrics::latency_quantile_us(counts, 0.5), 0U) << "empty";
  counts[3] = 98;  // <= 8 us
  counts[7] = 2;   // <= 128 us
  EXPECT_EQ(metrics::latency_quantile_us(counts, 0.5), 8U);
  EXPECT_EQ(metrics::latency_quantile_us(counts, 0.98), 8U);
  EXPECT_EQ(metrics::latency_quantile_us(counts, 0.99), 128U);
  EXPECT_EQ(metrics::latency_quantile_us(counts, 1.0), 128U);
  counts[kLatencyBounds] = 1000;
  EXPECT_EQ(metrics::latency_quantile_us(counts, 0.99), 2 * latency_bound_us(kLatencyBounds - 1));
}

// --- the Prometheus text format -------------------------------------------------

json answer_with(const IoTotals& t, const std::string& name, json paths = json::array()) {
  return {{"devices",
           {{{"name", name},
             {"uuid", "u-1"},
             {"blockdev", "/dev/ublkb0"},
             {"state", "ACTIVE"},
             {"suspended", false},
             {"event_nr", 3},
             {"size_bytes", 1 << 20},
             {"io", metrics::io_totals_json(t)},
             {"paths", std::move(paths)}}}}};
}

// Every sample line of `text` for `metric` (name and labels) -> value.
std::map<std::string, std::string> samples(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') {
      continue;
    }
    const auto sp = line.rfind(' ');
    out[line.substr(0, sp)] = line.substr(sp + 1);
  }
  return out;
}

TEST(Prometheus, HistogramBucketsAreCumulativeAndEndInTheCount) {
  IoTotals t;
  OpIoTotals& r = t.ops[static_cast<std::size_t>(Op::kRead)];
  r.completed = 5;
  r.bytes = 5 * 4096;
  r.latency[0] = 1;
  r.latency[4] = 3;
  r.latency[kLatencyBounds] = 1;
  r.latency_ns_sum = 2'500'000'000;
  const auto s = samples(metrics::render_prometheus(answer_with(t, "d")));
  EXPECT_EQ(s.at(R"(ubdm_io_total{device="d",op="read"})"), "5");
  EXPECT_EQ(s.at(R"(ubdm_io_bytes_total{device="d",op="read"})"), "20480");
  EXPECT_EQ(s.at(R"(ubdm_io_latency_seconds_bucket{device="d",op="read",le="1e-06"})"), "1");
  EXPECT_EQ(s.at(R"(ubdm_io_latency_seconds_bucket{device="d",op="read",le="8e-06"})"), "1");
  EXPECT_EQ(s.at(R"(ubdm_io_latency_seconds_bucket{device="d",op="read",le="1.6e-05"})"), "4");
  EXPECT_EQ(s.at(R"(ubdm_io_latency_seconds_bucket{device="d",op="read",le="16.7772"})"), "4");
  EXPECT_EQ(s.at(R"(ubdm_io_latency_seconds_bucket{device="d",op="read",le="+Inf"})"), "5");
  EXPECT_EQ(s.at(R"(ubdm_io_latency_seconds_count{device="d",op="read"})"), "5");
  EXPECT_EQ(s.at(R"(ubdm_io_latency_seconds_sum{device="d",op="read"})"), "2.5");
  EXPECT_EQ(s.at(R"(ubdm_device_events_total{device="d"})"), "3");
  EXPECT_EQ(s.at(R"(ubdm_device_size_bytes{device="d"})"), "1048576");
  EXPECT_EQ(s.at(R"(ubdm_devices)"), "1");
}

TEST(Prometheus, EachFamilyHasOneHelpAndTypeBeforeItsSamples) {
  const json paths = json::array({{{"group", 1}, {"device", "8:0"}, {"path", "/dev/sda"}, {"state", "active"},
                                   {"fail_count", 2}, {"reinstate_count", 1}, {"checker", "ready"},
                                   {"in_flight", 0}, {"ios", 7}},
                                  {{"group", 1}, {"device", "8:16"}, {"path", "/dev/sdb"}, {"state", "failed"},
                                   {"fail_count", 1}, {"reinstate_count", 0}, {"checker", "faulty"},
                                   {"in_flight", 0}, {"ios", 3}}});
  json a = answer_with(IoTotals{}, "a", paths);
  a["devices"].push_back(answer_with(IoTotals{}, "b")["devices"][0]);
  const std::string text = metrics::render_prometheus(a);
  std::map<std::string, int> types;
  std::set<std::string> closed;  // families whose samples have ended
  std::string current;
  std::istringstream in(text);
  std::string line;
  const std::regex type_re(R"(^# TYPE (\w+) (counter|gauge|histogram)$)");
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, type_re)) {
      ++types[m[1]];
      EXPECT_EQ(closed.count(m[1]), 0U) << m[1] << " is declared again after its samples";
      if (!current.empty()) {
        closed.insert(current);
      }
      current = m[1];
    } else if (line.rfind("# ", 0) != 0) {
      EXPECT_EQ(line.rfind(current, 0), 0U) << "sample outside its family: " << line;
    }
  }
  for (const auto& [name, n] : types) {
    EXPECT_EQ(n, 1) << name;
  }
  const auto s = samples(text);
  EXPECT_EQ(s.at(R"(ubdm_path_up{device="a",path="/dev/sda",dev_t="8:0",group="1"})"), "1");
  EXPECT_EQ(s.at(R"(ubdm_path_up{device="a",path="/dev/sdb",dev_t="8:16",group="1"})"), "0");
  EXPECT_EQ(s.at(R"(ubdm_path_failures_total{device="a",path="/dev/sda",dev_t="8:0",group="1"})"), "2");
  EXPECT_EQ(s.at(R"(ubdm_path_reinstates_total{device="a",path="/dev/sda",dev_t="8:0",group="1"})"), "1");
  EXPECT_EQ(s.at(R"(ubdm_path_checker{device="a",path="/dev/sdb",dev_t="8:16",group="1",state="faulty"})"), "1");
  EXPECT_EQ(s.at(R"(ubdm_io_total{device="b",op="write"})"), "0");
}

TEST(Prometheus, LabelValuesAreEscaped) {
  const std::string text = metrics::render_prometheus(answer_with(IoTotals{}, "we\"ird\\na\nme"));
  EXPECT_NE(text.find(R"(ubdm_device_suspended{device="we\"ird\\na\nme"} 0)"), std::string::npos) << text;
}

// --- the exporter ------------------------------------------------------------------

TEST(MetricsAddress, ABarePortListensOnLoopbackOnly) {
  const auto a = metrics::parse_listen_address("9477");
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 9477U);
  const auto b = metrics::parse_listen_address("0.0.0.0:80");
  EXPECT_EQ(b.host, "0.0.0.0");
  EXPECT_EQ(b.port, 80U);
  const auto c = metrics::parse_listen_address("[::1]:9100");
  EXPECT_EQ(c.host, "::1");
  EXPECT_EQ(c.port, 9100U);
}

TEST(MetricsAddress, MalformedAddressesAreRefusedWithTheReason) {
  const std::vector<std::pair<std::string, std::string>> bad{
      {"", "port"},          {"x", "port"},        {":9", "host is empty"}, {"::1:9", "brackets"},
      {"70000", "65535"},    {"host:", "port"},    {"[::1]9", "[IPV6]:PORT"}, {"0", "port"},
      {"12ab", "port"},      {"[::1]:", "port"}};
  for (const auto& [text, why] : bad) {
    try {
      metrics::parse_listen_address(text);
      ADD_FAILURE() << "'" << text << "' was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), EINVAL);
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << text << ": " << e.what();
    }
  }
}

TEST(MetricsExporter, ServesTheRenderedTextAndA503WhenRenderingFails) {
  std::atomic<bool> broken{false};
  metrics::Exporter ex([&] {
    if (broken) {
      throw Error(ESHUTDOWN, "ubdmd is shutting down");
    }
    return std::string("ubdm_devices 0\n");
  });
  ex.listen({"127.0.0.1", 0});
  ASSERT_NE(ex.port(), 0U);
  httplib::Client cli("127.0.0.1", static_cast<int>(ex.port()));
  auto res = cli.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "ubdm_devices 0\n");
  EXPECT_EQ(res->get_header_value("Content-Type").rfind("text/plain; version=0.0.4", 0), 0U);
  broken = true;
  res = cli.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  EXPECT_NE(res->body.find("shutting down"), std::string::npos);
  res = cli.Get("/other");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
}

TEST(MetricsExporter, ABusyPortIsRefusedAtOnce) {
  metrics::Exporter first([] { return std::string(); });
  first.listen({"127.0.0.1", 0});
  metrics::Exporter second([] { return std::string(); });
  try {
    second.listen({"127.0.0.1", first.port()});
    ADD_FAILURE() << "a second exporter bound the same port";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), EADDRINUSE);
  }
}

TEST(MetricsExporter, TheTextfileIsReplacedWholeAndRemovedAtStop) {
  const auto dir = std::filesystem::temp_directory_path() / ("ubdm-metrics-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto file = dir / "ubdm.prom";
  std::atomic<int> n{0};
  {
    metrics::Exporter ex([&] { return "ubdm_devices " + std::to_string(n++) + "\n"; });
    ex.write_textfile(file.string(), std::chrono::milliseconds(20));
    auto read = [&] {
      std::ifstream in(file);
      std::string text;
      std::getline(in, text, '\0');
      return text;
    };
    EXPECT_EQ(read().rfind("ubdm_devices ", 0), 0U) << "written at once";
    for (int i = 0; i < 500 && n < 3; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_GE(n.load(), 3) << "rewritten every interval";
    ex.stop();
    EXPECT_FALSE(std::filesystem::exists(file)) << "a stopped daemon leaves no figures behind";
    EXPECT_FALSE(std::filesystem::exists(dir / "ubdm.prom.tmp")) << "nor half a file";
  }
  std::filesystem::remove_all(dir);
}

TEST(MetricsExporter, AnUnwritableTextfileFailsAtStart) {
  metrics::Exporter ex([] { return std::string("x\n"); });
  EXPECT_THROW(ex.write_textfile("/nonexistent-dir/ubdm.prom", std::chrono::seconds(1)), Error);
}

// --- the stats verb ------------------------------------------------------------------

class StatsVerbTest : public ::testing::Test {
 protected:
  StatsVerbTest() {
    storage.add_disk("disk0", 8192);
    storage.add_disk("disk1", 8192);
    cfg.link_dir.clear();
    cfg.names_dir.clear();
    cfg.default_queues = 2;
    mgr = std::make_unique<daemon::DeviceManager>(cfg, storage, nullptr);
  }
  json call(json req) { return mgr->handle(req); }

  FakeStorage storage;
  daemon::DaemonConfig cfg;
  std::unique_ptr<daemon::DeviceManager> mgr;
};

TEST_F(StatsVerbTest, ReportsEveryDeviceOrOneWithPathsForMultipath) {
  call({{"op", "create"}, {"name", "lin"}, {"table", "0 8 zero"}, {"uuid", "U-LIN"}});
  call({{"op", "create"},
        {"name", "mp"},
        {"table", "0 4096 multipath 0 0 1 1 round-robin 0 2 1 disk0 1 disk1 1"}});
  call({{"op", "message"}, {"name", "mp"}, {"sector", 0}, {"args", {"fail_path disk1"}}});
  call({{"op", "message"}, {"name", "mp"}, {"sector", 0}, {"args", {"reinstate_path disk1"}}});
  call({{"op", "message"}, {"name", "mp"}, {"sector", 0}, {"args", {"fail_path disk1"}}});

  const json all = call({{"op", "stats"}})["devices"];
  ASSERT_EQ(all.size(), 2U);
  const json one = call({{"op", "stats"}, {"name", "mp"}})["devices"];
  ASSERT_EQ(one.size(), 1U);
  const json& mp = one[0];
  EXPECT_EQ(mp["name"], "mp");
  EXPECT_EQ(mp["suspended"], false);
  EXPECT_EQ(mp["size_bytes"], 4096 * 512);
  ASSERT_EQ(mp["paths"].size(), 2U);
  EXPECT_EQ(mp["paths"][1]["state"], "failed");
  EXPECT_EQ(mp["paths"][1]["fail_count"], 2);
  EXPECT_EQ(mp["paths"][1]["reinstate_count"], 1);
  EXPECT_EQ(mp["io"]["ops"]["read"]["ios"], 0);
  EXPECT_EQ(mp["io"]["ops"]["read"]["latency"]["counts"].size(), kLatencyBuckets);
  const json& lin = all[0]["name"] == "lin" ? all[0] : all[1];
  EXPECT_EQ(lin["uuid"], "U-LIN");
  EXPECT_TRUE(lin["paths"].empty());

  call({{"op", "suspend"}, {"name", "lin"}});
  EXPECT_EQ(call({{"op", "stats"}, {"name", "lin"}})["devices"][0]["suspended"], true);
  // The answer renders: the exporter and `stats --prometheus` use it as is.
  const std::string text = metrics::render_prometheus(call({{"op", "stats"}}));
  EXPECT_NE(text.find(R"(ubdm_device_suspended{device="lin"} 1)"), std::string::npos);
  EXPECT_NE(text.find(R"(ubdm_path_reinstates_total{device="mp",path="disk1",dev_t="disk1",group="1"} 1)"),
            std::string::npos)
      << text;
}

TEST_F(StatsVerbTest, AMissingDeviceIsENXIO) {
  try {
    call({{"op", "stats"}, {"name", "nope"}});
    ADD_FAILURE() << "stats of a missing device answered";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ENXIO);
  }
}

}  // namespace
}  // namespace ubdm::test
