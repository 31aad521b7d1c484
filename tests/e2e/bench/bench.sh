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
set -u

runtime=${UBDM_BENCH_RUNTIME:-8}
rounds=${UBDM_BENCH_ROUNDS:-1}
devices=$(printf '%s' "${UBDM_BENCH_DEVICES:-null-raw,null-dm-linear,null-ubdm-linear}" | tr ',' ' ')
workloads=$(printf '%s' "${UBDM_BENCH_WORKLOADS:-randread-4k-qd1,randread-4k-qd32,randwrite-4k-qd32,read-128k-qd32}" | tr ',' ' ')
TEST_TMP=/tmp/bench
mkdir -p "$TEST_TMP"

# die() in lib.sh exits; inside bench_setup (run in a subshell-free way) we
# want to report and go on, so setup failures are reported through returns.
BENCH_DEV='' BENCH_BASE='' BENCH_SKIP=''

ubdm_started=
ubdm_up() {
  have_ubdm || { BENCH_SKIP="ubdmd/ubdmsetup not in the VM"; return 1; }
  if [ -z "$ubdm_started" ]; then
    (start_ubdmd) || { BENCH_SKIP="ubdmd did not start (see /tmp/ubdmd.log)"; return 1; }
    ubdm_started=1
  fi
}
# The block device of a ubdm device: /dev/ubdm/NAME, else from `info`.
ubdm_node() {
  if [ -e "/dev/ubdm/$1" ]; then
    readlink -f "/dev/ubdm/$1"
  else
    ubdmsetup info "$1" | awk '/Block device:/ { print $3 }'
  fi
}
ubdm_create() { # NAME TABLE [CREATE-OPTION...]
  local name=$1 table=$2
  shift 2
  if ! ubdmsetup create "$name" --table "$table" "$@" >"$TEST_TMP/create.err" 2>&1; then
    BENCH_SKIP="ubdmsetup create failed: $(tr '\n' ' ' <"$TEST_TMP/create.err")"
    return 1
  fi
  BENCH_DEV=$(ubdm_node "$name")
  [ -b "$BENCH_DEV" ] || { BENCH_SKIP="no block device for ubdm $name"; return 1; }
}
mpath_table() { # SELECTOR (round-robin|queue-length|service-time)
  local p1 p2
  # shellcheck disable=SC2046
  set -- "$1" $(scsi_debug_paths)
  p1=$2 p2=$3
  echo "0 $(dev_sectors "$p1") multipath 0 0 1 1 $1 0 2 1 $p1 1 $p2 1"
}
selector() {
  case $1 in *-rr) echo round-robin ;; *-ql) echo queue-length ;; *-st) echo service-time ;; esac
}

# bench_setup DEVICE: sets BENCH_DEV (node) and BENCH_BASE, or BENCH_SKIP
# and returns 1.
bench_setup() {
  BENCH_DEV='' BENCH_BASE='' BENCH_SKIP=''
  case $1 in
    null-raw) BENCH_DEV=/dev/nullb0 BENCH_BASE=null-raw ;;
    null-dm-linear)
      BENCH_BASE=null-raw
      dmsetup create --noudevsync bench_lin --table "0 $(dev_sectors /dev/nullb0) linear /dev/nullb0 0" ||
        { BENCH_SKIP="dmsetup create failed"; return 1; }
      BENCH_DEV=/dev/mapper/bench_lin
      ;;
    null-ubdm-linear)
      BENCH_BASE=null-raw
      ubdm_up || return 1
      ubdm_create bench0 "0 $(dev_sectors /dev/nullb0) linear /dev/nullb0 0" || return 1
      ;;
    null-ubdm-linear-copy)
      BENCH_BASE=null-raw
      ubdm_up || return 1
      ubdm_create bench0 "0 $(dev_sectors /dev/nullb0) linear /dev/nullb0 0" --copy || return 1
      ;;
    null-ubdm-linear-poll[0-9]*)
      BENCH_BASE=null-raw
      ubdm_up || return 1
      ubdm_create bench0 "0 $(dev_sectors /dev/nullb0) linear /dev/nullb0 0" \
        --poll-usec "${1#null-ubdm-linear-poll}" || return 1
      ;;
    ubdm-zero)
      BENCH_BASE=null-raw
      ubdm_up || return 1
      ubdm_create bench0 "0 $(dev_sectors /dev/nullb0) zero" || return 1
      ;;
    sda-raw)
      BENCH_BASE=sda-raw
      BENCH_DEV=$(scsi_debug_paths | cut -d' ' -f1)
      ;;
    mpath-dm-rr | mpath-dm-ql | mpath-dm-st)
      BENCH_BASE=sda-raw
      dmsetup create --noudevsync bench_mp --table "$(mpath_table "$(selector "$1")")" ||
        { BENCH_SKIP="dmsetup create failed"; return 1; }
      BENCH_DEV=/dev/mapper/bench_mp
      ;;
    mpath-ubdm-rr | mpath-ubdm-ql | mpath-ubdm-st)
      BENCH_BASE=sda-raw
      ubdm_up || return 1
      ubdm_create bench_mp "$(mpath_table "$(selector "$1")")" || return 1
      ;;
    *) BENCH_SKIP="unknown device (see tests/e2e/bench/bench.sh)"; return 1 ;;
  esac
  [ -b "$BENCH_DEV" ] || { BENCH_SKIP="$BENCH_DEV is not a block device"; return 1; }
}
bench_teardown() {
  case $1 in
    null-dm-linear) dm_remove bench_lin ;;
    mpath-dm-*) dm_remove bench_mp ;;
    null-ubdm-linear | null-ubdm-linear-copy | null-ubdm-linear-poll* | ubdm-zero) ubdmsetup remove bench0 ;;
    mpath-ubdm-*) ubdmsetup remove bench_mp ;;
  esac
}

# randread-4k-qd32 -> fio arguments
workload_args() {
  local rw bs qd
  rw=${1%%-*}
  bs=${1#*-}
  bs=${bs%%-*}
  qd=${1##*-qd}
  case $rw in read | write | randread | randwrite | rw | randrw) ;; *) return 1 ;; esac
  case $qd in '' | *[!0-9]*) return 1 ;; esac
  echo "--rw=$rw --bs=$bs --iodepth=$qd"
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
round=1
while [ "$round" -le "$rounds" ]; do
  echo "UBDM-BENCH-ROUND $round"
  for d in $devices; do
    if ! bench_setup "$d"; then
      echo "UBDM-BENCH-SKIP $d $BENCH_SKIP"
      bench_teardown "$d" >/dev/null 2>&1
      continue
    fi
    echo "UBDM-BENCH-DEVICE $d $BENCH_DEV base=$BENCH_BASE"
    for w in $workloads; do
      if ! args=$(workload_args "$w"); then
        echo "UBDM-BENCH-FAIL $d $w bad workload name (want <rw>-<bs>-qd<N>)"
        continue
      fi
      # shellcheck disable=SC2086
      if fio --name="$w" --filename="$BENCH_DEV" --ioengine=io_uring --direct=1 \
        --time_based --runtime="$runtime" --norandommap --randrepeat=0 \
        --lat_percentiles=1 --output-format=json $args \
        --output="$TEST_TMP/out.json" >"$TEST_TMP/fio.err" 2>&1; then
        echo "UBDM-BENCH-BEGIN $d $w"
        cat "$TEST_TMP/out.json"
        echo "UBDM-BENCH-END $d $w"
      else
        echo "UBDM-BENCH-FAIL $d $w fio failed: $(tail -n 3 "$TEST_TMP/fio.err" | tr '\n' ' ')"
      fi
    done
    bench_teardown "$d" || echo "UBDM-BENCH-FAIL $d - teardown failed"
  done
  round=$((round + 1))
done
[ -z "$ubdm_started" ] || stop_ubdmd
echo "UBDM-BENCH-DONE"
