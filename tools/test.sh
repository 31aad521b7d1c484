#!/usr/bin/env bash
# The one test command: install what is missing, build, and run every test
# stage. Exits non-zero if any stage fails.
#
#   stage 1  release build: unit tests, allocation test, host integration tests
#   stage 2  Debian package of the release build (tools/package.sh): lintian,
#            systemd-analyze verify, contents, man pages and bash completion
#            checked (tests/package/check.sh), installed into a scratch root
#            whose binaries then run a few end-to-end tests in the test VM
#   stage 3  ASan+UBSan build: the same tests as stage 1
#   stage 4  ThreadSanitizer build: the unit tests only
#   stage 5  fuzzers (clang, libFuzzer, ASan+UBSan): each for a bounded time
#            over its seed corpus (docs/testing.md: running them long)
#   stage 6  microbenchmark (prints figures; asserts nothing about speed)
#   stage 7  every end-to-end test against real ublk in the test VM, once
#            per kernel line (tools/vm: fetches and caches Debian's 6.12 and
#            newest trixie-backports kernels, boots each under QEMU)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=${UBDM_JOBS:-$(nproc)}

step() { printf '\n=== %s\n' "$*"; }

step "dependencies"
tools/install-deps.sh

step "release build"
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release -j "$jobs"

step "release tests (unit, allocation, integration)"
ctest --test-dir build/release --output-on-failure -j "$jobs"

step "Debian package (build, lintian, unit, man pages, completion; scratch root)"
deb=$(UBDM_JOBS=$jobs tools/package.sh build/release build/package)
tests/package/check.sh "$deb" build/package/root

step "the package's binaries in the test VM (kernel line newest)"
# A short set that starts ubdmd, makes, uses and removes devices, and runs
# the multipath demo, with the installed (stripped) binaries: about 90 s.
tools/vm/run.sh --kernel newest --bin build/package/root/usr/sbin/ubdmd build/package/root/usr/sbin/ubdmsetup \
  --tests 'test_00_vm_smoke test_ublk_01_lifecycle test_demo_01_multipath' --timeout 900

step "sanitizer build (ASan + UBSan)"
cmake -S . -B build/sanitize -G Ninja -DCMAKE_BUILD_TYPE=Debug -DUBDM_SANITIZE=ON >/dev/null
cmake --build build/sanitize -j "$jobs"

step "sanitizer tests"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build/sanitize --output-on-failure -j "$jobs"

step "ThreadSanitizer build (unit tests only)"
cmake -S . -B build/tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUBDM_SANITIZE=thread >/dev/null
cmake --build build/tsan -j "$jobs" -t ubdm_unit_tests

step "ThreadSanitizer tests"
# A report makes the test process exit non-zero (TSan's exitcode 66).
# tests/tsan.supp lists the false reports of libraries built without TSan.
TSAN_OPTIONS=second_deadlock_stack=1:history_size=4:suppressions="$root/tests/tsan.supp" \
  ctest --test-dir build/tsan --output-on-failure -j "$jobs" -L unit

step "fuzz build (clang, libFuzzer, ASan + UBSan)"
cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DUBDM_FUZZ=ON >/dev/null
cmake --build build/fuzz -j "$jobs" -t ubdm_fuzzers

step "fuzzers (${UBDM_FUZZ_SECONDS:=30} s each)"
tests/fuzz/run.sh "$UBDM_FUZZ_SECONDS"

step "microbenchmark (figures only)"
build/release/ubdm_microbench --benchmark_min_time=0.1

# A test's own limit is generous (600 s; the slowest takes about 200 s on a
# quiet machine): CI machines are shared, and speed is for the benchmarks.
for kernel in 6.12 newest; do
  step "end-to-end tests in the test VM, kernel line $kernel (real ublk, kernel dm side by side)"
  tools/vm/run.sh --kernel "$kernel" --bin build/release/ubdmd build/release/ubdmsetup \
    --timeout 2400 --test-timeout 600
done

step "all stages passed"
