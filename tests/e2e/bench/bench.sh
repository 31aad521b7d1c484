#!/bin/sh
# shellcheck shell=dash
# Guest side of tools/bench/run.sh (run by /init when the kernel command line
# has ubdm.run=/tests/bench/bench.sh). For every device x workload it runs fio
# (io_uring, O_DIRECT, time based, JSON) and prints on the console:
#
#   UBDM-BENCH-ROUND <n>                       (rounds from 1)
#   UBDM-BENCH-DEVICE <device> <node> base=<baseline device>
#   UBDM-BENCH-BEGIN <device> <workload>
#   ...fio's JSON...
#   UBDM-BENCH-END <device> <workload>
#   UBDM-BENCH-SKIP <device> <reason>          (device not available)
#   UBDM-BENCH-FAIL <device> <workload|-> <reason>
#   UBDM-BENCH-DONE
#
# Settings (kernel command line ubdm.X=... becomes UBDM_X):
#   UBDM_BENCH_RUNTIME    seconds per fio run (default 8)
#   UBDM_BENCH_ROUNDS     times the whole device list runs, one device after
#                         another each time (default 1): on a noisy machine
#                         each round measures every device close in time
#   UBDM_BENCH_DEVICES    comma list (default null-raw,null-dm-linear,null-ubdm-linear)
#   UBDM_BENCH_WORKLOADS  comma list of <rw>-<bs>-qd<N> (default
#                         randread-4k-qd1,randread-4k-qd32,randwrite-4k-qd32,read-128k-qd32)
#   UBDM_BENCH_SDEBUG_DELAY  scsi_debug's `delay` (jiffies) for the sda-* and
#                         mpath-* devices (default 0: commands complete at
#                         once). The module's default, 1 jiffy, is 4 ms at
#                         HZ=250: every command would wait for a timer tick,
#                         so qd32 gives ~7.5k IOPS on any of these devices
#                         alike (32 / 4 ms), and one path, two paths, the
#                         kernel and ubdm all measure the same.
#
# The fio runs, the markers' loop and the dm/ubdm device builders are in
# bench_lib.sh, shared with native.sh (tools/bench/run.sh --native).
#
# Devices (add one: a case in bench_setup and, if needed, bench_teardown;
# "base" names the device the host divides IOPS by):
#   null-raw          /dev/nullb0                                base null-raw
#   null-dm-linear    kernel dm-linear over /dev/nullb0          base null-raw
#   null-ubdm-linear  ubdm linear over /dev/nullb0 (zero copy where the
#                     kernel has it)                             base null-raw
#   null-ubdm-linear-copy  the same, created with --copy         base null-raw
#   null-ubdm-linear-pollN the same, created with --poll-usec N  base null-raw
#   ubdm-zero         ubdm zero target, no disk at all: the ublk round
#                     trip alone, a floor for every ubdm device  base null-raw
#   sda-raw           the first scsi_debug path                  base sda-raw
#   mpath-dm-rr|ql|st kernel dm-multipath over both scsi_debug
#                     paths, round-robin|queue-length|service-time  base sda-raw
#   mpath-ubdm-rr|ql|st  ubdm multipath, same tables             base sda-raw
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/../lib.sh"
# shellcheck source=tests/e2e/bench/bench_lib.sh
. "$(dirname "$0")/bench_lib.sh"
set -u

runtime=${UBDM_BENCH_RUNTIME:-8}
rounds=${UBDM_BENCH_ROUNDS:-1}
devices=$(printf '%s' "${UBDM_BENCH_DEVICES:-null-raw,null-dm-linear,null-ubdm-linear}" | tr ',' ' ')
workloads=$(printf '%s' "${UBDM_BENCH_WORKLOADS:-randread-4k-qd1,randread-4k-qd32,randwrite-4k-qd32,read-128k-qd32}" | tr ',' ' ')
TEST_TMP=/tmp/bench
mkdir -p "$TEST_TMP"
BENCH_TMP=$TEST_TMP
BENCH_RUNTIME=$runtime

# die() in lib.sh exits; a device that cannot be set up is to be reported
# and skipped, so setup failures are reported through returns (BENCH_SKIP).
ubdm_started=
ubdm_up() {
  have_ubdm || { BENCH_SKIP="ubdmd/ubdmsetup not in the VM"; return 1; }
  if [ -z "$ubdm_started" ]; then
    (start_ubdmd) || { BENCH_SKIP="ubdmd did not start (see /tmp/ubdmd.log)"; return 1; }
    ubdm_started=1
  fi
}
null_linear() { echo "0 $(dev_sectors /dev/nullb0) linear /dev/nullb0 0"; }
# shellcheck disable=SC2046 # the paths are words
mpath_table() { bench_mpath_table "$1" $(scsi_debug_paths); }

# bench_setup DEVICE (called by bench_run): sets BENCH_DEV (node) and
# BENCH_BASE, or BENCH_SKIP and returns 1.
bench_setup() {
  BENCH_DEV='' BENCH_BASE='' BENCH_SKIP=''
  case $1 in
    null-raw) BENCH_DEV=/dev/nullb0 BENCH_BASE=null-raw ;;
    null-dm-linear)
      BENCH_BASE=null-raw
      bench_dm_create bench_lin "$(null_linear)" || return 1
      ;;
    null-ubdm-linear)
      BENCH_BASE=null-raw
      ubdm_up || return 1
      bench_ubdm_create bench0 "$(null_linear)" || return 1
      ;;
    null-ubdm-linear-copy)
      BENCH_BASE=null-raw
      ubdm_up || return 1
      bench_ubdm_create bench0 "$(null_linear)" --copy || return 1
      ;;
    null-ubdm-linear-poll[0-9]*)
      BENCH_BASE=null-raw
      ubdm_up || return 1
      bench_ubdm_create bench0 "$(null_linear)" --poll-usec "${1#null-ubdm-linear-poll}" || return 1
      ;;
    ubdm-zero)
      BENCH_BASE=null-raw
      ubdm_up || return 1
      bench_ubdm_create bench0 "0 $(dev_sectors /dev/nullb0) zero" || return 1
      ;;
    sda-raw)
      BENCH_BASE=sda-raw
      BENCH_DEV=$(scsi_debug_paths | cut -d' ' -f1)
      ;;
    mpath-dm-rr | mpath-dm-ql | mpath-dm-st)
      BENCH_BASE=sda-raw
      bench_dm_create bench_mp "$(mpath_table "$(bench_selector "$1")")" || return 1
      ;;
    mpath-ubdm-rr | mpath-ubdm-ql | mpath-ubdm-st)
      BENCH_BASE=sda-raw
      ubdm_up || return 1
      bench_ubdm_create bench_mp "$(mpath_table "$(bench_selector "$1")")" || return 1
      ;;
    *) BENCH_SKIP="unknown device (see tests/e2e/bench/bench.sh)"; return 1 ;;
  esac
  [ -b "$BENCH_DEV" ] || { BENCH_SKIP="$BENCH_DEV is not a block device"; return 1; }
}
bench_teardown() {
  case $1 in
    null-dm-linear) bench_dm_remove bench_lin ;;
    mpath-dm-*) bench_dm_remove bench_mp ;;
    null-ubdm-linear | null-ubdm-linear-copy | null-ubdm-linear-poll* | ubdm-zero) bench_ubdmsetup remove bench0 ;;
    mpath-ubdm-*) bench_ubdmsetup remove bench_mp ;;
  esac
}

echo "UBDM-VM: bench: runtime ${runtime}s, devices: $devices; workloads: $workloads"
case " $devices " in
  *" sda-"* | *" mpath-"*)
    sdebug_delay=${UBDM_BENCH_SDEBUG_DELAY:-0}
    if echo "$sdebug_delay" >/sys/bus/pseudo/drivers/scsi_debug/delay; then
      echo "UBDM-VM: bench: scsi_debug delay=$(cat /sys/bus/pseudo/drivers/scsi_debug/delay) (jiffies)"
    else
      echo "UBDM-VM: bench: could not set scsi_debug delay=$sdebug_delay"
    fi
    ;;
esac
bench_run "$rounds" "$devices" "$workloads"
[ -z "$ubdm_started" ] || stop_ubdmd
echo "UBDM-BENCH-DONE"
