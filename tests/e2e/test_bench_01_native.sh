#!/bin/sh
# tools/bench/run.sh --native's engine (tests/e2e/bench/native.sh) over the
# two scsi_debug paths to one LUN, as a user would run it on real disks: a
# LUN with a filesystem is refused for writes, before anything is created
# or written; a read-only run over it needs no force and writes nothing; a
# mounted or held disk is refused; a forced run stopped by SIGTERM and a
# normal run leave no ublk or dm device and no ubdmd behind; the normal run
# has a raw, dm-linear, dm-multipath and ubdm result with IOPS for every
# workload.
. "$(dirname "$0")/lib.sh"
set -eu
require_ubdm
require_cmd fio
# shellcheck disable=SC2046 # the paths, as words
set -- $(scsi_debug_paths)
[ $# -ge 2 ] || skip "fewer than two scsi_debug paths"
a=$1 b=$2

# scsi_debug's default delay (a jiffy per command) caps every row alike;
# the rows are to differ by what stands over the disk.
delay_f=/sys/bus/pseudo/drivers/scsi_debug/delay
old_delay=$(cat "$delay_f")
echo 0 >"$delay_f"
on_exit sh -c "echo $old_delay >$delay_f"

native_sh=$(dirname "$0")/bench/native.sh
export UBDMD UBDMSETUP
export TMPDIR="$TEST_TMP"
native() { sh "$native_sh" "$@"; }
# nothing_left WHEN: no ublk device, no dm device, no ubdmd and no work
# directory of the bench remain.
nothing_left() {
  expect_eq "$(ublk_ids)" "" "ublk devices left $1"
  expect_eq "$(dmsetup ls 2>&1)" "No devices found" "dm devices left $1"
  expect_eq "$(ps -o args | grep -c '[u]bdmd --foreground --socket .*ubdm-bench')" 0 "bench ubdmd running $1"
  expect_eq "$(find "$TEST_TMP" -maxdepth 1 -name 'ubdm-bench.*' | wc -l)" 0 "work directories left $1"
}
has_ublk() { [ -n "$(ublk_ids)" ]; }
# iops_of OUT DEVICE WORKLOAD: reads + writes per second in fio's JSON
# between that run's markers (nothing: no such run).
iops_of() {
  awk -v begin="UBDM-BENCH-BEGIN $2 $3" '
    $0 == begin { on = 1; found = 1; next }
    on && /UBDM-BENCH-END/ { on = 0 }
    on && /^ *"iops" *:/ { v = $0; sub(/.*: */, "", v); sub(/,.*/, "", v); s += v }
    END { if (found) printf "%d\n", s }' "$1"
}
# expect_rows OUT 'ROW...' WORKLOAD...: each of these rows measured IOPS
# in each workload.
p=$(basename "$a")
expect_rows() {
  local out=$1 rows=$2 w d n
  shift 2
  for w in "$@"; do
    for d in $rows; do
      n=$(iops_of "$out" "$d" "$w")
      [ -n "$n" ] || die "no result for $d $w (markers: $(grep -E '^UBDM-BENCH-(SKIP|FAIL)' "$out" | tr '\n' ' '))"
      [ "$n" -gt 0 ] || die "$d $w: 0 IOPS"
      log "$d $w: $n IOPS"
    done
  done
}

# (a) A filesystem on the LUN: write workloads are refused without
# --force-write, and nothing is created or written.
run mkfs.ext4 -q -F "$a"
# The first 32 MiB: the superblock, and an eighth of where random writes
# over the LUN would land.
md5=$(read_md5 "$a" 0 32)
expect_fail native --paths "$a,$b" --runtime 1 --workloads randread-4k-qd1,randwrite-4k-qd32
printf '%s\n' "$EXPECT_STDERR" >&2
expect_eq "$EXPECT_RC" 3 "exit status of the refusal"
expect_contains "$EXPECT_STDERR" "will READ and WRITE (overwriting their data): $a $b" "the plan, before the refusal"
expect_match "$EXPECT_STDERR" "REFUSED: .*destroy" "the refusal"
expect_contains "$EXPECT_STDERR" "$a: ext4" "what the refusal found"
expect_contains "$EXPECT_STDERR" "--force-write" "how to override it"
expect_eq "$EXPECT_STDOUT" "" "markers of a refused run"
nothing_left "after the refusal"
expect_eq "$(read_md5 "$a" 0 32)" "$md5" "the LUN's data after the refusal"

# Read-only workloads need no force: the rows run (read-only devices, fio
# --readonly) and the LUN is unchanged.
out=$TEST_TMP/ro.out
native --paths "$a,$b" --runtime 1 --workloads randread-4k-qd8 --devices raw,dm-mpath,ubdm-mpath \
  >"$out" 2>"$TEST_TMP/ro.err" || { cat "$TEST_TMP/ro.err" >&2; die "the read-only run failed"; }
expect_contains "$(cat "$TEST_TMP/ro.err")" "will only READ: $a $b" "the read-only plan"
expect_rows "$out" "$p-raw mpath-dm-rr mpath-ubdm-rr" randread-4k-qd8
nothing_left "after the read-only run"
expect_eq "$(read_md5 "$a" 0 32)" "$md5" "the LUN's data after the read-only run"

# Mounted or held: refused even for reads (the maps could not claim it).
mkdir -p "$TEST_TMP/mnt"
run mount -t ext4 "$a" "$TEST_TMP/mnt"
on_exit sh -c "umount '$TEST_TMP/mnt' 2>/dev/null || true"
expect_fail native --disk "$a" --runtime 1 --workloads randread-4k-qd1
expect_eq "$EXPECT_RC" 3 "exit status for a mounted disk"
expect_contains "$EXPECT_STDERR" "$a is in use: mounted on $TEST_TMP/mnt" "the refusal of a mounted disk"
umount "$TEST_TMP/mnt"
dm_create hold "0 $(dev_sectors "$b") linear $b 0" >/dev/null
expect_fail native --disk "$b" --runtime 1 --workloads randread-4k-qd1
expect_eq "$EXPECT_RC" 3 "exit status for a held disk"
expect_match "$EXPECT_STDERR" "$b is held by: dm-[0-9]+" "the refusal of a held disk"
dm_remove hold
nothing_left "after the refusals"

# --force-write overrides the filesystem refusal; SIGTERM in the middle of
# the run (a ubdm device up, fio writing) still removes everything.
# Not through native(): the signal is for native.sh, not for a subshell.
sh "$native_sh" --paths "$a,$b" --force-write --runtime 3 --workloads randwrite-4k-qd8 \
  --devices ubdm-linear,ubdm-mpath >"$TEST_TMP/term.out" 2>"$TEST_TMP/term.err" &
pid=$!
wait_until 60 has_ublk || { cat "$TEST_TMP/term.err" >&2; die "no ublk device within 60 s of a forced run"; }
wait_until 20 grep -q UBDM-BENCH-DEVICE "$TEST_TMP/term.out" || die "the forced run set no device up"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
cat "$TEST_TMP/term.err" >&2
expect_eq "$rc" 143 "exit status after SIGTERM"
expect_contains "$(cat "$TEST_TMP/term.err")" "--force-write: overwriting what they hold" "the forced plan"
nothing_left "after SIGTERM"

# (b) A normal run over a blank LUN: no force needed, every row measured.
dd if=/dev/zero of="$a" bs=1M count=4 oflag=direct status=none
out=$TEST_TMP/run.out
native --paths "$a,$b" --runtime 1 --workloads randread-4k-qd1,randwrite-4k-qd32 >"$out" 2>"$TEST_TMP/run.err" ||
  { cat "$TEST_TMP/run.err" >&2; die "the normal run failed"; }
cat "$TEST_TMP/run.err" >&2
expect_contains "$(cat "$out")" "UBDM-BENCH-DONE" "the end marker"
expect_rows "$out" "$p-raw $p-dm-linear $p-ubdm-linear mpath-dm-rr mpath-ubdm-rr" randread-4k-qd1 randwrite-4k-qd32
expect_match "$(grep '^UBDM-BENCH-DEVICE mpath-ubdm-rr ' "$out")" " /dev/ublkb[0-9]+ base=$p-raw$" "the ubdm multipath row"
nothing_left "after the normal run"
# The markers on the console: tools/bench/run.sh --native --from-log reads
# them from a kept console log.
cat "$out"
