#!/usr/bin/env bash
# Run the fuzzers of a UBDM_FUZZ build tree, each for a bounded time.
#
#   tests/fuzz/run.sh SECONDS [NAME...]     (NAME: fuzz_table, fuzz_control, fuzz_frame; default all)
#
# Each fuzzer starts from its seed corpus (tests/fuzz/corpus/NAME, read only)
# and keeps what it finds in build/fuzz/work/NAME, so that later runs go on
# from there. A crash, leak, timeout or out-of-memory stops it: the input is
# saved under build/fuzz/artifacts/ and the script exits non-zero.
# Environment: UBDM_FUZZ_BUILD (default build/fuzz), UBDM_FUZZ_ARGS (more
# libFuzzer flags, e.g. "-jobs=2 -workers=2" or "-runs=1000000").
# docs/testing.md says more.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
seconds=${1:?usage: tests/fuzz/run.sh SECONDS [NAME...]}
shift
build=${UBDM_FUZZ_BUILD:-build/fuzz}
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  names=(fuzz_table fuzz_control fuzz_frame)
fi
read -r -a extra <<<"${UBDM_FUZZ_ARGS:-}"

mkdir -p "$build/artifacts"
for name in "${names[@]}"; do
  bin="$build/$name"
  if [ ! -x "$bin" ]; then
    echo "fuzz: $bin is missing: build it with -DUBDM_FUZZ=ON (docs/testing.md)" >&2
    exit 1
  fi
  work="$build/work/$name"
  log="$build/work/$name.log"
  mkdir -p "$work"
  dict=()
  if [ -f "tests/fuzz/$name.dict" ]; then
    dict=(-dict="tests/fuzz/$name.dict")
  fi
  # -timeout: one input taking longer than 10 s is a hang. -max_len: room
  # for multi-request sessions and long multipath tables.
  rc=0
  "$bin" -max_total_time="$seconds" -timeout=10 -max_len=4096 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$name-" "${dict[@]}" "${extra[@]}" \
    "$work" "tests/fuzz/corpus/$name" >"$log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    tail -n 60 "$log" >&2
    echo "fuzz: $name failed (exit $rc); log $log, input in $build/artifacts/" >&2
    exit 1
  fi
  status=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | sed -E 's/^#([0-9]+)\t[A-Z]+ +//')
  done_line=$(grep -E '^Done [0-9]+ runs' "$log" | tail -n 1)
  echo "fuzz: $name: $done_line; $status"
done
