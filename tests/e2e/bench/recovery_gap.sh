#!/bin/sh
# shellcheck shell=dash
# Guest side of tools/bench/recovery_gap.sh (run by /init when the kernel
# command line has ubdm.run=/tests/bench/recovery_gap.sh): how long I/O
# waits across a daemon restart. For each case, fio runs a time-based
# workload with a per-I/O completion log; in the middle the case's action
# runs once; the gap is the largest interval between two consecutive
# completions (ms, from fio's log: millisecond resolution). Prints:
#
#   UBDM-GAP <case> <run> gap_ms=<ms> action_ms=<ms> ios=<n>
#   UBDM-GAP-FAIL <case> <run> <reason>
#   UBDM-GAP-DONE
#
# Cases (all over the same disk, one boot):
#   none                 ubdm linear, no action: the noise floor of the gap
#   dm-suspend-resume    kernel dm-linear: dmsetup suspend + resume
#   ubdm-suspend-resume  ubdm linear: ubdmsetup suspend + resume
#   ubdm-term-restart    ubdm linear: SIGTERM ubdmd (devices kept), start a new one
#   ubdm-kill-restart    ubdm linear: kill -9 ubdmd, start a new one
# action_ms is the time the action itself took (10 ms resolution): for the
# restarts, from the signal until the new daemon's socket exists.
#
# Settings (kernel command line ubdm.X=... becomes UBDM_X):
#   UBDM_GAP_RUNTIME   seconds of fio per run (default 6; the action at half)
#   UBDM_GAP_REPEAT    runs per case (default 3)
#   UBDM_GAP_WORKLOAD  <rw>-<bs>-qd<N> (default randread-4k-qd1)
#   UBDM_GAP_DISK      the disk under every map (default /dev/nullb0)
#   UBDM_GAP_CASES     comma list (default: all, in the order above)
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/../lib.sh"
set -u

runtime=${UBDM_GAP_RUNTIME:-6}
repeat=${UBDM_GAP_REPEAT:-3}
workload=${UBDM_GAP_WORKLOAD:-randread-4k-qd1}
disk=${UBDM_GAP_DISK:-/dev/nullb0}
cases=$(printf '%s' "${UBDM_GAP_CASES:-none,dm-suspend-resume,ubdm-suspend-resume,ubdm-term-restart,ubdm-kill-restart}" | tr ',' ' ')
TEST_TMP=/tmp/gap
mkdir -p "$TEST_TMP"

rw=${workload%%-*}
bs=${workload#*-}
bs=${bs%%-*}
qd=${workload##*-qd}
sectors=$(dev_sectors "$disk")
now_ms() { awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime; }

# Largest interval between consecutive completion times (column 1, ms) of a
# fio latency log, and the number of completions.
gap_of() {
  cut -d, -f1 "$1" | sort -n | awk 'NR > 1 && $1 - prev > gap { gap = $1 - prev } { prev = $1; n++ } END { printf "%d %d\n", gap, n }'
}

# ubdm_up: a ubdmd runs (started in a subshell: its die must not end us).
ubdm_up() { ubdmd_running || (start_ubdmd) >/dev/null; }

# Actions, run while fio is in the middle of its run. Each returns non-zero
# on failure.
act_none() { :; }
act_dm_suspend_resume() { dmsetup suspend --noudevsync gap_dm && dmsetup resume --noudevsync gap_dm; }
act_ubdm_suspend_resume() { ubdmsetup suspend gap0 && ubdmsetup resume gap0; }
act_ubdm_term_restart() { (term_ubdmd 60) >/dev/null && (start_ubdmd) >/dev/null; }
act_ubdm_kill_restart() { (kill_ubdmd) >/dev/null && (start_ubdmd) >/dev/null; }

# setup CASE: sets DEV; teardown CASE.
setup() {
  case $1 in
    dm-*)
      dmsetup create --noudevsync gap_dm --table "0 $sectors linear $disk 0" || return 1
      DEV=/dev/mapper/gap_dm
      ;;
    *)
      ubdm_up || return 1
      if ! ubdmsetup info gap0 >/dev/null 2>&1; then
        ubdmsetup create gap0 --table "0 $sectors linear $disk 0" || return 1
      fi
      wait_until 5 test -e /dev/ubdm/gap0 || return 1
      DEV=$(readlink -f /dev/ubdm/gap0)
      ;;
  esac
  [ -b "$DEV" ]
}
teardown() {
  case $1 in
    dm-*) dm_remove gap_dm ;;
    *) ubdmsetup remove gap0 ;;
  esac
}

echo "UBDM-VM: gap: runtime ${runtime}s x $repeat, workload $workload ($rw $bs qd$qd) over $disk; cases: $cases"
for c in $cases; do
  act=act_$(echo "$c" | tr - _)
  if ! command -v "$act" >/dev/null 2>&1; then
    echo "UBDM-GAP-FAIL $c - unknown case"
    continue
  fi
  if ! setup "$c" >"$TEST_TMP/setup.err" 2>&1; then
    echo "UBDM-GAP-FAIL $c - setup failed: $(tail -n 3 "$TEST_TMP/setup.err" | tr '\n' ' ')"
    teardown "$c" >/dev/null 2>&1
    continue
  fi
  r=1
  while [ "$r" -le "$repeat" ]; do
    rm -f "$TEST_TMP"/gap_*.log
    c0=$(io_count "$DEV")
    fio --name=gap --filename="$DEV" --ioengine=io_uring --direct=1 --rw="$rw" --bs="$bs" \
      --iodepth="$qd" --time_based --runtime="$runtime" --norandommap --randrepeat=0 \
      --write_lat_log="$TEST_TMP/gap" --log_avg_msec=0 --output="$TEST_TMP/fio.out" \
      >"$TEST_TMP/fio.err" 2>&1 &
    fpid=$!
    # Once fio is issuing I/O, the action at about half the run.
    wait_until 20 _io_count_above "$DEV" "$c0" || true
    sleep $((runtime / 2))
    t0=$(now_ms)
    if "$act" >"$TEST_TMP/act.err" 2>&1; then act_rc=0; else act_rc=$?; fi
    t1=$(now_ms)
    frc=0
    wait "$fpid" || frc=$?
    log=$TEST_TMP/gap_clat.1.log
    if [ "$act_rc" -ne 0 ]; then
      echo "UBDM-GAP-FAIL $c $r action failed (status $act_rc): $(tail -n 3 "$TEST_TMP/act.err" | tr '\n' ' ')"
    elif [ "$frc" -ne 0 ] || ! grep -q 'err= 0' "$TEST_TMP/fio.out"; then
      echo "UBDM-GAP-FAIL $c $r fio failed (status $frc): $(grep -m1 'err=' "$TEST_TMP/fio.out") $(tail -n 2 "$TEST_TMP/fio.err" | tr '\n' ' ')"
    elif [ ! -s "$log" ]; then
      echo "UBDM-GAP-FAIL $c $r no fio completion log"
    else
      read -r gap n <<EOF
$(gap_of "$log")
EOF
      echo "UBDM-GAP $c $r gap_ms=$gap action_ms=$((t1 - t0)) ios=$n"
    fi
    # A failed restart leaves no daemon: start one for the next run.
    case $c in ubdm-*) ubdm_up || true ;; esac
    r=$((r + 1))
  done
  # Each case its own map (kernel dm and ubdm cannot both claim the disk).
  teardown "$c" >/dev/null 2>&1 || echo "UBDM-GAP-FAIL $c - teardown failed"
done
! ubdmd_running || (stop_ubdmd) >/dev/null 2>&1
echo "UBDM-GAP-DONE"
