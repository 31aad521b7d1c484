// SPDX-License-Identifier: MIT
// The adaptive polling window of a queue thread (ublk/poll_window.hpp): it
// spins where the next event is expected within the bound, sleeps where it
// is not, probes now and then so that a stream that sped up is found again,
// and learns idle and busy waits apart.
#include <gtest/gtest.h>

#include <cstdint>

#include "ublk/poll_window.hpp"

namespace ubdm::ublk {
namespace {

constexpr std::uint64_t kUs = 1000;
constexpr bool kIdle = true;
constexpr bool kBusy = false;

// Feeds `n` waits of `ns` each, asking for a window before each as the
// queue loop does. Returns the last window asked for.
std::uint64_t feed(PollWindow& w, bool idle, std::uint64_t ns, int n) {
  std::uint64_t spin = 0;
  for (int i = 0; i < n; ++i) {
    spin = w.next_spin_ns(idle);
    w.waited(idle, ns);
  }
  return spin;
}

TEST(PollWindow, ZeroTurnsPollingOff) {
  const PollWindow w(0);
  EXPECT_FALSE(w.enabled());
  EXPECT_TRUE(PollWindow(500).enabled());
}

TEST(PollWindow, ANewQueueSpinsAndAFastStreamSpinsForTwiceItsGap) {
  PollWindow w(500);
  EXPECT_GT(w.next_spin_ns(kIdle), 0U) << "a new device is about to be used";
  feed(w, kIdle, 40 * kUs, 40);
  EXPECT_NEAR(static_cast<double>(w.estimate_ns(kIdle)), 40.0 * kUs, 2.0 * kUs);
  const std::uint64_t spin = w.next_spin_ns(kIdle);
  EXPECT_GE(spin, 80 * kUs);
  EXPECT_LE(spin, 85 * kUs);
}

TEST(PollWindow, TheWindowNeverExceedsTheBound) {
  PollWindow w(500);
  feed(w, kIdle, 400 * kUs, 40);  // twice the gap would be 800 us
  EXPECT_EQ(w.next_spin_ns(kIdle), 500 * kUs);
}

TEST(PollWindow, WaitsLongerThanTheBoundSleepAtOnceExceptForAProbe) {
  PollWindow w(500);
  feed(w, kIdle, 5'000 * kUs, 8);
  int spun = 0;
  int probes_of_the_whole_bound = 0;
  for (int i = 0; i < 64; ++i) {
    const std::uint64_t spin = w.next_spin_ns(kIdle);
    spun += spin > 0 ? 1 : 0;
    probes_of_the_whole_bound += spin == 500 * kUs ? 1 : 0;
    w.waited(kIdle, 5'000 * kUs);
  }
  EXPECT_EQ(spun, 4) << "one wait in 16 probes; the others sleep at once";
  EXPECT_EQ(probes_of_the_whole_bound, 4);
}

TEST(PollWindow, AStreamThatSpeedsUpAfterAnIdleSpellIsFoundAgain) {
  PollWindow w(500);
  feed(w, kIdle, 30 * kUs, 40);  // a fast stream
  feed(w, kIdle, 10'000'000 * kUs, 1);  // one stray pause of ten seconds
  EXPECT_GT(w.next_spin_ns(kIdle), 0U) << "one pause does not stop the spinning";
  feed(w, kIdle, 10'000'000 * kUs, 2);  // the stream has ended
  EXPECT_EQ(w.next_spin_ns(kIdle), 0U) << "three long sleeps stop the spinning";
  // Now fast requests again, but while sleeping each wait also pays a
  // 600 us wake-up (as under emulation): only the probes see the real gap.
  int waits = 0;
  while (w.next_spin_ns(kIdle) == 0 && waits < 200) {
    w.waited(kIdle, 630 * kUs);  // slept: gap plus wake-up
    ++waits;
  }
  ASSERT_LT(waits, 200) << "a probe came";
  for (int i = 0; i < 20 && w.estimate_ns(kIdle) > 500 * kUs; ++i) {
    w.waited(kIdle, 30 * kUs);  // spun: the real gap
    (void)w.next_spin_ns(kIdle);
  }
  EXPECT_LE(w.estimate_ns(kIdle), 500 * kUs);
  feed(w, kIdle, 30 * kUs, 20);
  EXPECT_LT(w.next_spin_ns(kIdle), 100 * kUs);
  EXPECT_GT(w.next_spin_ns(kIdle), 0U);
}

TEST(PollWindow, IdleAndBusyWaitsAreLearnedApart) {
  PollWindow w(500);
  feed(w, kBusy, 10 * kUs, 40);     // a fast disk
  feed(w, kIdle, 5'000 * kUs, 40);  // a slow submitter
  EXPECT_GT(w.next_spin_ns(kBusy), 0U);
  EXPECT_LE(w.next_spin_ns(kBusy), 25 * kUs);
  EXPECT_EQ(w.next_spin_ns(kIdle), 0U);
}

}  // namespace
}  // namespace ubdm::ublk
