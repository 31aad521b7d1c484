// SPDX-License-Identifier: MIT
// The multipath path selectors (round-robin, queue-length, service-time,
// historical-service-time), tested like SPDK's test_find_io_path_*: build the
// paths by hand, set their states and loads, and assert which one is chosen.
// The expected choices and status strings follow drivers/md/dm-ps-*.c; the
// comments derive the numbers.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "targets/multipath/path_selector.hpp"
#include "targets/multipath/selector_common.hpp"
#include "ubdm/error.hpp"

namespace ubdm::mpath {
namespace {

using Args = std::vector<std::string>;

constexpr std::uint64_t kIo = 4096;

// The target's side of the paths: validity and reinstate counts.
class PathSet {
 public:
  explicit PathSet(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      paths_.push_back(std::make_unique<SelectorPath>());
    }
  }
  std::vector<SelectorPath*> ptrs() const {
    std::vector<SelectorPath*> out;
    for (const auto& p : paths_) {
      out.push_back(p.get());
    }
    return out;
  }
  void fail(unsigned i) { paths_[i]->valid.store(false); }
  void reinstate(unsigned i) {
    paths_[i]->valid.store(true);
    paths_[i]->reinstate_count.fetch_add(1);
  }

 private:
  std::vector<std::unique_ptr<SelectorPath>> paths_;
};

class ManualNsClock final : public NsClock {
 public:
  std::uint64_t now_ns() const override { return now.load(); }
  std::atomic<std::uint64_t> now{0};
};

// create_selector + add_path for every path (per_path[i] or no arguments).
std::unique_ptr<Selector> make(std::string_view name, const PathSet& paths,
                               const std::vector<Args>& per_path = {}, const Args& args = {},
                               unsigned nr_queues = 1) {
  auto sel = create_selector(name, args, nr_queues, paths.ptrs());
  for (unsigned i = 0; i < sel->paths().size(); ++i) {
    sel->add_path(i, i < per_path.size() ? per_path[i] : Args{});
  }
  return sel;
}

std::unique_ptr<Selector> make_hst(const PathSet& paths, const NsClock& clock, const Args& args = {},
                                   unsigned nr_queues = 1) {
  auto sel = create_historical_service_time(args, nr_queues, paths.ptrs(), clock);
  for (unsigned i = 0; i < sel->paths().size(); ++i) {
    sel->add_path(i, {});
  }
  return sel;
}

// The message of the ubdm::Error `f` throws (EINVAL), or "" if it does not.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), EINVAL);
    return e.what();
  }
  return "";
}

std::string per_path_error(std::string_view name, const Args& per_path) {
  PathSet paths(1);
  return error_of([&] { make(name, paths, {per_path}); });
}

// `n` selections without starting the I/O.
std::vector<int> picks(SelectorQueue& q, int n, std::uint64_t bytes = kIo) {
  std::vector<int> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(q.select_path(bytes));
  }
  return out;
}

// A whole I/O on `path`: sent at `start_ns`, finished at `now_ns`.
void complete(SelectorQueue& q, unsigned path, std::uint64_t start_ns, std::uint64_t now_ns) {
  q.start_io(path, kIo);
  q.end_io(path, kIo, start_ns, now_ns);
}

// ---------------------------------------------------------------- registry

TEST(Selector, RegistryListsTheFourKernelSelectorsWithTheirVersions) {
  const auto types = selector_types();
  ASSERT_EQ(types.size(), 4U);
  EXPECT_EQ(types[0].name, "round-robin");
  EXPECT_EQ(types[0].version, (std::array<unsigned, 3>{1, 2, 0}));
  EXPECT_EQ(types[1].name, "queue-length");
  EXPECT_EQ(types[1].version, (std::array<unsigned, 3>{0, 2, 0}));
  EXPECT_EQ(types[2].name, "service-time");
  EXPECT_EQ(types[2].version, (std::array<unsigned, 3>{0, 3, 0}));
  EXPECT_EQ(types[3].name, "historical-service-time");
  EXPECT_EQ(types[3].version, (std::array<unsigned, 3>{0, 1, 1}));
}

TEST(Selector, CreatesEveryListedSelectorByName) {
  for (const SelectorType& t : selector_types()) {
    PathSet paths(2);
    auto sel = make(t.name, paths);
    EXPECT_EQ(sel->name(), t.name);
    EXPECT_EQ(sel->paths().size(), 2U);
    EXPECT_EQ(sel->queue(0).select_path(kIo), 0) << t.name;
  }
}

TEST(Selector, UnknownNameIsRejected) {
  PathSet paths(1);
  EXPECT_EQ(error_of([&] { make("least-pending", paths); }), "unknown path selector 'least-pending'");
}

TEST(Selector, ArgumentCountsMatchTheKernel) {
  PathSet paths(1);
  struct Want {
    std::string_view name;
    unsigned info_args;
    unsigned table_args;
  };
  for (const Want& w : {Want{"round-robin", 0, 1}, Want{"queue-length", 1, 1}, Want{"service-time", 2, 2},
                        Want{"historical-service-time", 3, 1}}) {
    auto sel = make(w.name, paths);
    EXPECT_EQ(sel->info_args(), w.info_args) << w.name;
    EXPECT_EQ(sel->table_args(), w.table_args) << w.name;
  }
}

TEST(Selector, AddPathRejectsAnIndexOutsideThePaths) {
  PathSet paths(2);
  auto sel = create_selector("round-robin", {}, 1, paths.ptrs());
  EXPECT_EQ(error_of([&] { sel->add_path(2, {}); }), "round-robin ps: no path 2 (the selector has 2)");
}

TEST(Selector, RepeatCountErrorsNameTheSelectorAndTheArgument) {
  for (std::string_view name : {"round-robin", "queue-length", "service-time", "historical-service-time"}) {
    const std::string prefix = std::string(name) + " ps: ";
    EXPECT_EQ(per_path_error(name, {"x"}),
              prefix + "invalid repeat_count 'x': expected an unsigned decimal number");
    // The kernel's sscanf("%u") would take a sign; we take digits only.
    EXPECT_EQ(per_path_error(name, {"-1"}),
              prefix + "invalid repeat_count '-1': expected an unsigned decimal number");
    EXPECT_EQ(per_path_error(name, {"4294967296"}),
              prefix + "repeat_count '4294967296' out of range: must be between 0 and 4294967295");
  }
}

// ------------------------------------------------------------- round-robin

TEST(RoundRobin, RotatesOverTheValidPathsInTableOrder) {
  PathSet paths(3);
  auto sel = make("round-robin", paths);
  EXPECT_EQ(picks(sel->queue(0), 7), (std::vector<int>{0, 1, 2, 0, 1, 2, 0}));
}

TEST(RoundRobin, SkipsFailedPaths) {
  PathSet paths(3);
  auto sel = make("round-robin", paths);
  paths.fail(1);
  EXPECT_EQ(picks(sel->queue(0), 4), (std::vector<int>{0, 2, 0, 2}));
}

TEST(RoundRobin, ReturnsMinusOneWhenNoPathIsValid) {
  PathSet paths(2);
  auto sel = make("round-robin", paths);
  paths.fail(0);
  paths.fail(1);
  EXPECT_EQ(sel->queue(0).select_path(kIo), -1);
  paths.reinstate(1);
  EXPECT_EQ(sel->queue(0).select_path(kIo), 1);
}

TEST(RoundRobin, ReinstatedPathGoesToTheHeadAndIsUsedNext) {
  PathSet paths(4);
  auto sel = make("round-robin", paths);
  SelectorQueue& q = sel->queue(0);
  EXPECT_EQ(q.select_path(kIo), 0);  // list 1 2 3 0
  paths.fail(0);                     // valid 1 2 3
  EXPECT_EQ(q.select_path(kIo), 1);  // list 2 3 (0) 1
  paths.reinstate(0);                // rr_reinstate_path: list_move to the head: 0 2 3 1
  EXPECT_EQ(picks(q, 5), (std::vector<int>{0, 2, 3, 1, 0}));
}

TEST(RoundRobin, QueuesRotateIndependently) {
  PathSet paths(2);
  auto sel = make("round-robin", paths, {}, {}, 2);
  EXPECT_EQ(picks(sel->queue(0), 2), (std::vector<int>{0, 1}));
  EXPECT_EQ(sel->queue(1).select_path(kIo), 0);
}

TEST(RoundRobin, StatusPrintsOnlyTheNormalisedRepeatCount) {
  PathSet paths(4);
  auto sel = make("round-robin", paths, {{}, {"1"}, {"0"}, {"128"}});
  for (StatusType t : {StatusType::kInfo, StatusType::kTable}) {
    EXPECT_EQ(sel->group_status(t), "0 ");
  }
  EXPECT_EQ(sel->path_status(0, StatusType::kTable), "1 ");  // default
  EXPECT_EQ(sel->path_status(1, StatusType::kTable), "1 ");
  EXPECT_EQ(sel->path_status(2, StatusType::kTable), "0 ");  // 0 is not above 1: kept
  EXPECT_EQ(sel->path_status(3, StatusType::kTable), "1 ");  // deprecated, forced to 1
  sel->queue(0).select_path(kIo);
  sel->queue(0).start_io(0, kIo);
  EXPECT_EQ(sel->path_status(0, StatusType::kInfo), "");
}

TEST(RoundRobin, RejectsMoreThanOnePerPathArgument) {
  EXPECT_EQ(per_path_error("round-robin", {"1", "1"}),
            "round-robin ps: wrong number of per-path arguments (2): expected [<repeat_count>]");
}

TEST(RoundRobin, IgnoresSelectorArgumentsAsTheKernelDoes) {
  PathSet paths(1);
  auto sel = make("round-robin", paths, {}, {"anything", "goes"});
  EXPECT_EQ(sel->group_status(StatusType::kTable), "0 ");
}

// ------------------------------------------------------------ queue-length

TEST(QueueLength, ChoosesThePathWithFewestInFlight) {
  PathSet paths(3);
  auto sel = make("queue-length", paths);
  SelectorQueue& q = sel->queue(0);
  q.start_io(0, kIo);
  q.start_io(0, kIo);
  q.start_io(1, kIo);
  q.start_io(2, kIo);
  q.start_io(2, kIo);
  q.start_io(2, kIo);
  EXPECT_EQ(q.select_path(kIo), 1);
  q.end_io(0, kIo, 0, 0);
  q.end_io(0, kIo, 0, 0);
  EXPECT_EQ(q.select_path(kIo), 0);
}

TEST(QueueLength, RotatesBetweenEquallyLoadedPaths) {
  PathSet paths(3);
  auto sel = make("queue-length", paths);
  // All idle: the first idle path in the list wins and moves to the tail.
  EXPECT_EQ(picks(sel->queue(0), 4), (std::vector<int>{0, 1, 2, 0}));
}

TEST(QueueLength, TieBetweenLoadedPathsGoesToTheLeastRecentlyChosen) {
  PathSet paths(3);
  auto sel = make("queue-length", paths);
  SelectorQueue& q = sel->queue(0);
  for (int i = 0; i < 6; ++i) {
    const int p = q.select_path(kIo);
    ASSERT_GE(p, 0);
    q.start_io(static_cast<unsigned>(p), kIo);
  }
  // 2 each now; the list is 0 1 2 again, so 0 is chosen, then 1.
  EXPECT_EQ(picks(q, 2), (std::vector<int>{0, 1}));
}

TEST(QueueLength, SkipsFailedPathsAndReturnsMinusOneWithNone) {
  PathSet paths(2);
  auto sel = make("queue-length", paths);
  SelectorQueue& q = sel->queue(0);
  q.start_io(1, kIo);
  paths.fail(0);
  EXPECT_EQ(q.select_path(kIo), 1);
  paths.fail(1);
  EXPECT_EQ(q.select_path(kIo), -1);
}

TEST(QueueLength, ReinstatedPathGoesToTheBackOfTies) {
  PathSet paths(3);
  auto sel = make("queue-length", paths);
  SelectorQueue& q = sel->queue(0);
  paths.fail(0);
  EXPECT_EQ(q.select_path(kIo), 1);  // list (0) 2 1
  paths.reinstate(0);                // ql_reinstate_path: list_move_tail: 2 1 0
  EXPECT_EQ(picks(q, 3), (std::vector<int>{2, 1, 0}));
}

TEST(QueueLength, QueuesCountOnlyTheirOwnInFlight) {
  PathSet paths(2);
  auto sel = make("queue-length", paths, {}, {}, 2);
  for (int i = 0; i < 5; ++i) {
    sel->queue(0).start_io(0, kIo);
  }
  EXPECT_EQ(sel->queue(0).select_path(kIo), 1);
  EXPECT_EQ(sel->queue(1).select_path(kIo), 0);
}

TEST(QueueLength, StatusSumsInFlightOverQueues) {
  PathSet paths(2);
  auto sel = make("queue-length", paths, {{"1"}, {"7"}}, {}, 2);
  sel->queue(0).start_io(0, kIo);
  sel->queue(0).start_io(0, kIo);
  sel->queue(1).start_io(0, kIo);
  sel->queue(1).start_io(0, kIo);
  sel->queue(1).start_io(0, kIo);
  sel->queue(1).start_io(1, kIo);
  EXPECT_EQ(sel->group_status(StatusType::kInfo), "0 ");
  EXPECT_EQ(sel->path_status(0, StatusType::kInfo), "5 ");
  EXPECT_EQ(sel->path_status(1, StatusType::kInfo), "1 ");
  sel->queue(1).end_io(0, kIo, 0, 0);
  EXPECT_EQ(sel->path_status(0, StatusType::kInfo), "4 ");
  EXPECT_EQ(sel->group_status(StatusType::kTable), "0 ");
  EXPECT_EQ(sel->path_status(0, StatusType::kTable), "1 ");
  EXPECT_EQ(sel->path_status(1, StatusType::kTable), "1 ");  // 7 is deprecated: 1
}

TEST(QueueLength, RejectsMoreThanOnePerPathArgument) {
  EXPECT_EQ(per_path_error("queue-length", {"1", "2"}),
            "queue-length ps: wrong number of per-path arguments (2): expected [<repeat_count>]");
}

// ------------------------------------------------------------ service-time

TEST(ServiceTime, ChoosesTheFewestInFlightBytesAtEqualThroughput) {
  PathSet paths(3);
  auto sel = make("service-time", paths);
  SelectorQueue& q = sel->queue(0);
  q.start_io(0, 8192);
  q.start_io(1, 4096);
  q.start_io(2, 65536);
  EXPECT_EQ(q.select_path(kIo), 1);
  q.start_io(1, 8192);  // 12288 on path 1
  EXPECT_EQ(q.select_path(kIo), 0);
}

TEST(ServiceTime, HonoursRelativeThroughput) {
  PathSet paths(2);
  auto sel = make("service-time", paths, {{"1", "1"}, {"1", "4"}});
  SelectorQueue& q = sel->queue(0);
  q.start_io(0, 4096);
  q.start_io(1, 8192);
  // (4096 + 4096) / 1 = 8192 against (8192 + 4096) / 4 = 3072.
  EXPECT_EQ(q.select_path(kIo), 1);
  q.start_io(1, 24576);
  // 8192 / 1 against (32768 + 4096) / 4 = 9216.
  EXPECT_EQ(q.select_path(kIo), 0);
}

TEST(ServiceTime, EqualLoadGoesToTheHigherThroughput) {
  PathSet paths(2);
  auto sel = make("service-time", paths, {{"1", "2"}, {"1", "5"}});
  EXPECT_EQ(picks(sel->queue(0), 3), (std::vector<int>{1, 1, 1}));
}

TEST(ServiceTime, EqualServiceTimeGoesToTheHigherThroughput) {
  PathSet paths(2);
  auto sel = make("service-time", paths, {{"1", "1"}, {"1", "2"}});
  SelectorQueue& q = sel->queue(0);
  q.start_io(0, 1024);
  q.start_io(1, 3072);
  // (1024 + 1024) / 1 == (3072 + 1024) / 2: the rt 2 path, although second.
  EXPECT_EQ(q.select_path(1024), 1);
}

TEST(ServiceTime, ZeroThroughputPathIsUsedOnlyWhenNoOtherPathIsValid) {
  PathSet paths(3);
  auto sel = make("service-time", paths, {{"1", "0"}, {"1", "1"}, {"1", "3"}});
  SelectorQueue& q = sel->queue(0);
  q.start_io(1, 1 << 20);
  q.start_io(2, 8 << 20);
  EXPECT_EQ(q.select_path(kIo), 1);  // (1M + 4k) * 3 < (8M + 4k) * 1; the idle rt 0 path is not considered
  paths.fail(1);
  EXPECT_EQ(q.select_path(kIo), 2);
  paths.fail(2);
  EXPECT_EQ(q.select_path(kIo), 0);
  paths.fail(0);
  EXPECT_EQ(q.select_path(kIo), -1);
}

TEST(ServiceTime, ZeroThroughputPathsShareByLoad) {
  PathSet paths(2);
  auto sel = make("service-time", paths, {{"1", "0"}, {"1", "0"}});
  SelectorQueue& q = sel->queue(0);
  q.start_io(0, 8192);
  EXPECT_EQ(q.select_path(kIo), 1);
}

TEST(ServiceTime, HugeInFlightSizesAreShiftedInsteadOfOverflowing) {
  PathSet paths(2);
  auto sel = make("service-time", paths, {{"1", "64"}, {"1", "1"}});
  SelectorQueue& q = sel->queue(0);
  q.start_io(0, std::uint64_t{1} << 60);
  q.start_io(1, std::uint64_t{1} << 58);
  // 2^60 / 64 < 2^58 / 1, but cross-multiplied (2^58 + 4096) * 64 wraps to
  // 262,144 and would pick path 1; shifting both sizes down by 7 first keeps
  // the comparison right.
  EXPECT_EQ(q.select_path(kIo), 0);
}

TEST(ServiceTime, TieGoesToTheLeastRecentlyChosen) {
  PathSet paths(3);
  auto sel = make("service-time", paths);
  EXPECT_EQ(picks(sel->queue(0), 4), (std::vector<int>{0, 1, 2, 0}));
}

TEST(ServiceTime, QueuesCountOnlyTheirOwnInFlight) {
  PathSet paths(2);
  auto sel = make("service-time", paths, {}, {}, 2);
  sel->queue(0).start_io(0, 1 << 20);
  EXPECT_EQ(sel->queue(0).select_path(kIo), 1);
  EXPECT_EQ(sel->queue(1).select_path(kIo), 0);
}

TEST(ServiceTime, StatusSumsInFlightBytesOverQueuesAndShowsThroughput) {
  PathSet paths(2);
  auto sel = make("service-time", paths, {{"128", "4"}, {}}, {}, 2);
  sel->queue(0).start_io(0, 4096);
  sel->queue(1).start_io(0, 8192);
  sel->queue(1).start_io(1, 512);
  EXPECT_EQ(sel->group_status(StatusType::kInfo), "0 ");
  EXPECT_EQ(sel->path_status(0, StatusType::kInfo), "12288 4 ");
  EXPECT_EQ(sel->path_status(1, StatusType::kInfo), "512 1 ");
  sel->queue(1).end_io(0, 8192, 0, 0);
  EXPECT_EQ(sel->path_status(0, StatusType::kInfo), "4096 4 ");
  EXPECT_EQ(sel->group_status(StatusType::kTable), "0 ");
  EXPECT_EQ(sel->path_status(0, StatusType::kTable), "1 4 ");  // repeat_count 128 -> 1
  EXPECT_EQ(sel->path_status(1, StatusType::kTable), "1 1 ");  // defaults
}

TEST(ServiceTime, RejectsBadPerPathArguments) {
  EXPECT_EQ(per_path_error("service-time", {"1", "1", "1"}),
            "service-time ps: wrong number of per-path arguments (3): expected [<repeat_count> "
            "[<relative_throughput>]]");
  EXPECT_EQ(per_path_error("service-time", {"1", "101"}),
            "service-time ps: relative_throughput '101' out of range: must be between 0 and 100");
  EXPECT_EQ(per_path_error("service-time", {"1", "fast"}),
            "service-time ps: invalid relative_throughput 'fast': expected an unsigned decimal number");
  EXPECT_EQ(per_path_error("service-time", {"1", "100"}), "");
  EXPECT_EQ(per_path_error("service-time", {"1", "0"}), "");
}

// ------------------------------------------------- historical-service-time
//
// Most tests use base_weight 0, which ignores history: the average is then
// exactly the last service time in 10-bit fixed point (st * 1024).

constexpr std::uint64_t kSlowNs = 1000000;  // 1 ms
constexpr std::uint64_t kFastNs = 100000;   // 100 us
constexpr std::uint64_t kFinish = 1000000;  // both paths' last completion

// Queue `q` of a 2-path selector has seen path 0 take 1 ms and path 1 take
// 100 us, both finishing at kFinish. Stale deadlines (2 valid paths):
// path 0 at 1,000,000 + 2 * 1,000,000 = 3,000,000, path 1 at 1,200,000.
void slow_and_fast(SelectorQueue& q) {
  complete(q, 0, kFinish - kSlowNs, kFinish);
  complete(q, 1, kFinish - kFastNs, kFinish);
}

TEST(HistoricalServiceTime, StatusBeforeAnyIo) {
  PathSet paths(2);
  ManualNsClock clock;
  auto sel = make_hst(paths, clock);
  EXPECT_EQ(sel->group_status(StatusType::kInfo), "2 972 0 ");
  EXPECT_EQ(sel->group_status(StatusType::kTable), "2 972 0 ");
  EXPECT_EQ(sel->path_status(0, StatusType::kInfo), "1024 0 0 ");
  EXPECT_EQ(sel->path_status(0, StatusType::kTable), "0 ");
}

TEST(HistoricalServiceTime, GroupStatusShowsTheSelectorArguments) {
  PathSet paths(1);
  auto sel = make("historical-service-time", paths, {}, {"512", "3"});
  EXPECT_EQ(sel->group_status(StatusType::kInfo), "2 512 3 ");
  EXPECT_EQ(sel->group_status(StatusType::kTable), "2 512 3 ");
  auto zero = make("historical-service-time", paths, {}, {"0"});
  EXPECT_EQ(zero->group_status(StatusType::kTable), "2 0 0 ");
}

TEST(HistoricalServiceTime, TablePrintsZeroForEveryRepeatCount) {
  PathSet paths(2);
  auto sel = make("historical-service-time", paths, {{"5"}, {"4294967295"}});
  EXPECT_EQ(sel->path_status(0, StatusType::kTable), "0 ");
  EXPECT_EQ(sel->path_status(1, StatusType::kTable), "0 ");
}

TEST(HistoricalServiceTime, RejectsBadArguments) {
  PathSet paths(1);
  const auto selector_error = [&](const Args& args) {
    return error_of([&] { make("historical-service-time", paths, {}, args); });
  };
  EXPECT_EQ(selector_error({"1", "2", "3"}),
            "historical-service-time ps: wrong number of selector arguments (3): expected [<base_weight> "
            "[<threshold_multiplier>]]");
  EXPECT_EQ(selector_error({"1024"}),
            "historical-service-time ps: base_weight '1024' out of range: must be between 0 and 1023");
  EXPECT_EQ(selector_error({"0.95"}),
            "historical-service-time ps: invalid base_weight '0.95': expected an unsigned decimal number");
  EXPECT_EQ(
      selector_error({"972", "x"}),
      "historical-service-time ps: invalid threshold_multiplier 'x': expected an unsigned decimal number");
  EXPECT_EQ(selector_error({"1023", "4294967295"}), "");
  EXPECT_EQ(per_path_error("historical-service-time", {"1", "1"}),
            "historical-service-time ps: wrong number of per-path arguments (2): expected [<repeat_count>]");
}

TEST(HistoricalServiceTime, AverageIsAnEwmaWithTheDefaultWeight) {
  PathSet paths(2);
  ManualNsClock clock;
  auto sel = make_hst(paths, clock);
  complete(sel->queue(0), 0, 0, 100000);
  // st = 100 us, bucket 0, weight 972:
  // (1024 * 972 + 102,400,000 * 52 + 512) >> 10 = 5,200,972;
  // stale after 100,000 + 2 valid * (5,200,972 >> 10 = 5,079) = 110,158.
  EXPECT_EQ(sel->path_status(0, StatusType::kInfo), "5200972 0 110158 ");
  EXPECT_EQ(sel->path_status(1, StatusType::kInfo), "1024 0 0 ");
}

TEST(HistoricalServiceTime, LongerServiceTimesWeighTheHistoryLess) {
  PathSet paths(2);
  ManualNsClock clock;
  auto sel = make_hst(paths, clock);
  complete(sel->queue(0), 0, 0, 20000000);
  // st = 20 ms is in bucket 1 (20e6 >> 24), weight 972^2 = 923:
  // (1024 * 923 + 20,480,000,000 * 101 + 512) >> 10 = 2,020,000,923;
  // stale after 20,000,000 + 2 * 1,972,657 = 23,945,314.
  EXPECT_EQ(sel->path_status(0, StatusType::kInfo), "2020000923 0 23945314 ");
  // 2 s is past the last bucket (63 << 24 ns), whose weight 0 drops the history.
  complete(sel->queue(0), 1, 0, 2000000000);
  EXPECT_EQ(sel->path_status(1, StatusType::kInfo), "2048000000000 0 6000000000 ");
}

TEST(HistoricalServiceTime, OverlappingIosAreTimedAsIfServedOneAfterTheOther) {
  PathSet paths(1);
  ManualNsClock clock;
  auto sel = make_hst(paths, clock, {"0"});
  SelectorQueue& q = sel->queue(0);
  q.start_io(0, kIo);
  q.start_io(0, kIo);
  EXPECT_EQ(sel->path_status(0, StatusType::kInfo), "1024 2 0 ");
  q.end_io(0, kIo, 0, 1000);
  q.end_io(0, kIo, 500, 1500);  // counted from 1000: 500 ns
  // 500 * 1024 = 512,000; stale after 1,500 + 1 * 500.
  EXPECT_EQ(sel->path_status(0, StatusType::kInfo), "512000 0 2000 ");
  // A completion stamped before its start counts as 0.
  complete(q, 0, 5000, 4000);
  EXPECT_EQ(sel->path_status(0, StatusType::kInfo), "0 0 4000 ");
}

TEST(HistoricalServiceTime, PrefersTheFasterPathUntilItsQueueOutweighsTheDifference) {
  PathSet paths(2);
  ManualNsClock clock;
  auto sel = make_hst(paths, clock, {"0"});
  SelectorQueue& q = sel->queue(0);
  slow_and_fast(q);
  clock.now = 1100000;  // neither stale
  q.start_io(0, kIo);
  q.start_io(1, kIo);
  // Fast (path 1) wins while (1 + out_fast) * 100 us <= (1 + 1) * 1 ms; at
  // equality the path compared second (the fast one, at the list tail) wins.
  // So out_fast goes 1 -> 20 over 19 picks, then the slow path is chosen.
  for (int i = 0; i < 19; ++i) {
    ASSERT_EQ(q.select_path(kIo), 1) << "pick " << i;
    q.start_io(1, kIo);
  }
  EXPECT_EQ(q.select_path(kIo), 0);
}

TEST(HistoricalServiceTime, AnIdleStalePathGetsAProbe) {
  PathSet paths(2);
  ManualNsClock clock;
  auto sel = make_hst(paths, clock, {"0"});
  SelectorQueue& q = sel->queue(0);
  slow_and_fast(q);
  q.start_io(1, kIo);
  clock.now = 1100000;
  EXPECT_EQ(q.select_path(kIo), 1);  // (1 + 1) * 100 us < (1 + 0) * 1 ms
  complete(q, 1, 2850000, 2950000);  // the fast path stays fresh until 3,150,000
  clock.now = 3000001;               // the idle slow path went stale at 3,000,000
  EXPECT_EQ(q.select_path(kIo), 0);
}

TEST(HistoricalServiceTime, TwoIdlePathsGoToTheMoreStale) {
  PathSet paths(2);
  ManualNsClock clock;
  auto sel = make_hst(paths, clock, {"0"});
  SelectorQueue& q = sel->queue(0);
  complete(q, 1, 0, 1000000);        // slow: deadline 1,000,000 + 2 * 1,000,000 = 3,000,000
  complete(q, 0, 2850000, 2950000);  // fast: deadline 2,950,000 + 2 * 100,000 = 3,150,000
  clock.now = 2960000;               // neither is stale yet
  // Idle against idle, the earlier deadline wins, although that path is
  // slower and second in the list.
  EXPECT_EQ(q.select_path(kIo), 1);
}

TEST(HistoricalServiceTime, AStaleWinnerGetsNoMoreOutstandingThanTheOther) {
  PathSet paths(2);
  ManualNsClock clock;
  auto sel = make_hst(paths, clock, {"0"});
  SelectorQueue& q = sel->queue(0);
  slow_and_fast(q);
  q.start_io(0, kIo);
  q.start_io(1, kIo);
  q.start_io(1, kIo);
  clock.now = 1100000;  // (1 + 2) * 100 us < (1 + 1) * 1 ms: fast
  EXPECT_EQ(q.select_path(kIo), 1);
  clock.now = 1500000;  // fast is stale (after 1,200,000): 2 outstanding against 1
  EXPECT_EQ(q.select_path(kIo), 0);
}

TEST(HistoricalServiceTime, AveragesWithinTheThresholdCompareOutstandingOnly) {
  for (const auto& [threshold, want] : {std::pair<std::string, int>{"20", 0}, {"5", 1}}) {
    PathSet paths(2);
    ManualNsClock clock;
    auto sel = make_hst(paths, clock, {"0", threshold});
    SelectorQueue& q = sel->queue(0);
    slow_and_fast(q);
    q.start_io(0, kIo);
    for (int i = 0; i < 3; ++i) {
      q.start_io(1, kIo);
    }
    clock.now = 1100000;
    // 1 ms is 10 x 100 us: within a factor of 20 the path with fewer
    // outstanding (slow, 1 against 3) wins; beyond a factor of 5 the
    // estimates decide: (1 + 3) * 100 us < (1 + 1) * 1 ms.
    EXPECT_EQ(q.select_path(kIo), want) << "threshold " << threshold;
  }
}

TEST(HistoricalServiceTime, SkipsFailedPathsAndReturnsMinusOneWithNone) {
  PathSet paths(2);
  ManualNsClock clock;
  auto sel = make_hst(paths, clock, {"0"});
  SelectorQueue& q = sel->queue(0);
  slow_and_fast(q);
  clock.now = 1100000;
  paths.fail(1);
  EXPECT_EQ(q.select_path(kIo), 0);
  paths.fail(0);
  EXPECT_EQ(q.select_path(kIo), -1);
}

TEST(HistoricalServiceTime, StaleDeadlineCountsOnlyValidPaths) {
  PathSet paths(3);
  ManualNsClock clock;
  auto sel = make_hst(paths, clock, {"0"});
  paths.fail(2);
  complete(sel->queue(0), 0, 0, 1000);
  EXPECT_EQ(sel->path_status(0, StatusType::kInfo), "1024000 0 3000 ");  // 1000 + 2 * 1000
}

TEST(HistoricalServiceTime, ReinstateKeepsTheHistoryAsTheKernelDoes) {
  PathSet paths(2);
  ManualNsClock clock;
  auto sel = make_hst(paths, clock, {"0"});
  SelectorQueue& q = sel->queue(0);
  slow_and_fast(q);
  const std::string before = sel->path_status(0, StatusType::kInfo);
  EXPECT_EQ(before, "1024000000 0 3000000 ");
  paths.fail(0);
  EXPECT_EQ(q.select_path(kIo), 1);
  paths.reinstate(0);
  // Back at the tail; idle against idle, the earlier deadline (1,200,000) wins.
  EXPECT_EQ(q.select_path(kIo), 1);
  EXPECT_EQ(sel->path_status(0, StatusType::kInfo), before);
  EXPECT_EQ(paths.ptrs()[0]->reinstate_count.load(), 1U);
}

TEST(HistoricalServiceTime, QueuesKeepTheirOwnHistory) {
  PathSet paths(2);
  ManualNsClock clock;
  auto sel = make_hst(paths, clock, {"0"}, 2);
  slow_and_fast(sel->queue(0));
  clock.now = 1100000;
  for (unsigned qi = 0; qi < 2; ++qi) {
    sel->queue(qi).start_io(0, kIo);
    sel->queue(qi).start_io(1, kIo);
  }
  EXPECT_EQ(sel->queue(0).select_path(kIo), 1);
  // Queue 1 has no measurements: equal averages and loads, and the second
  // path's deadline (0) has passed, so the first path stays.
  EXPECT_EQ(sel->queue(1).select_path(kIo), 0);
}

TEST(HistoricalServiceTime, StatusSumsOutstandingAndShowsTheMostRecentlyCompletingQueue) {
  PathSet paths(2);
  ManualNsClock clock;
  auto sel = make_hst(paths, clock, {"0"}, 2);
  complete(sel->queue(0), 0, 0, 1000000);        // 1 ms, finished at 1,000,000
  complete(sel->queue(1), 0, 1900000, 2000000);  // 100 us, finished at 2,000,000
  sel->queue(0).start_io(0, kIo);
  sel->queue(1).start_io(0, kIo);
  sel->queue(1).start_io(0, kIo);
  EXPECT_EQ(sel->path_status(0, StatusType::kInfo), "102400000 3 2200000 ");
  complete(sel->queue(0), 0, 2500000, 3000000);  // 500 us, finished at 3,000,000
  EXPECT_EQ(sel->path_status(0, StatusType::kInfo), "512000000 3 4000000 ");
  EXPECT_EQ(sel->path_status(1, StatusType::kInfo), "1024 0 0 ");
}

}  // namespace
}  // namespace ubdm::mpath
