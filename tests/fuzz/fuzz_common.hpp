// SPDX-License-Identifier: MIT
// Shared by the libFuzzer targets: the fake disks that the seed corpus names,
// and a quiet logger.
#pragma once

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <cstdio>
#include <string>

#include "io/fake_backend.hpp"

namespace ubdm::fuzz {

// One FakeStorage for the whole run: its disks are only opened by the
// tables under test, never written, so runs do not influence each other.
// The names are those the corpus uses (tests/fuzz/corpus/README.md); small
// disks, because a FakeDisk keeps its data in memory.
inline FakeStorage& storage() {
  static FakeStorage* s = [] {
    auto* st = new FakeStorage();  // never freed: it must outlive every table, including at exit
    for (const char* name : {"/dev/sda", "/dev/sdb", "/dev/sdc", "/dev/sdd", "8:0", "8:16", "8:32", "8:48",
                             "disk0", "disk1"}) {
      st->add_disk(name, 8192);
    }
    st->add_disk("/dev/sde", 8192, 4096);  // 4K logical blocks
    st->add_disk("small", 64);
    return st;
  }();
  return *s;
}

// Logging would cost most of the time of a run and flood the terminal.
inline void quiet_logging() { spdlog::set_level(spdlog::level::off); }

// UBDM_FUZZ_VERBOSE=1 in the environment: the targets print what each
// input did (a table's error, each reply), to check new corpus entries.
inline bool verbose() {
  static const bool on = std::getenv("UBDM_FUZZ_VERBOSE") != nullptr;
  return on;
}

// A property the code under test promises did not hold: libFuzzer records
// the input as a crash.
[[noreturn]] inline void broken(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz: %s\n%s\n", what, detail.c_str());
  std::abort();
}

}  // namespace ubdm::fuzz
