# shellcheck shell=dash
# shellcheck disable=SC2034 # BENCH_* values are set here for the caller to read
# The part of the fio benchmark that the VM bench (bench.sh, over null_blk
# and scsi_debug) and the native bench (native.sh, over the user's disks)
# share: building dm and ubdm devices over a disk, running one fio workload
# and printing its result between markers, and the loop over rounds x
# devices x workloads. Sourced, never run; POSIX sh (busybox in the VM, dash
# or bash on a host). Only functions and defaults: nothing runs on sourcing.
#
# The caller sets:
#   BENCH_TMP        a scratch directory (fio's output, create errors)
#   BENCH_RUNTIME    seconds per fio run
#   BENCH_UBDMSETUP  the ubdmsetup to run (default: ubdmsetup in PATH)
#   BENCH_UBDM_SOCK  its control socket (default: ubdmsetup's own default)
#   BENCH_FIO_EXTRA  more fio arguments for every run, split on blanks
#                    (native.sh: --readonly when no workload writes)
# and defines bench_setup DEVICE (sets BENCH_DEV and BENCH_BASE, or sets
# BENCH_SKIP and returns 1) and bench_teardown DEVICE, which bench_run calls.
#
# Markers printed on stdout (tools/bench/run.sh parses them):
#   UBDM-BENCH-ROUND <n>
#   UBDM-BENCH-DEVICE <device> <node> base=<baseline device>
#   UBDM-BENCH-BEGIN <device> <workload>  ...fio's JSON...  UBDM-BENCH-END <device> <workload>
#   UBDM-BENCH-SKIP <device> <reason>
#   UBDM-BENCH-FAIL <device> <workload|-> <reason>

BENCH_UBDMSETUP=${BENCH_UBDMSETUP:-ubdmsetup}
BENCH_UBDM_SOCK=${BENCH_UBDM_SOCK:-}
BENCH_FIO_EXTRA=${BENCH_FIO_EXTRA:-}
BENCH_DEV='' BENCH_BASE='' BENCH_SKIP=''
BENCH_FAILED=''   # set by bench_run when a run failed or a device was skipped

# bench_note MESSAGE: progress for a person (native.sh prints it on
# stderr); silent by default, so the VM console stays as it was.
bench_note() { :; }

bench_ubdmsetup() {
  if [ -n "$BENCH_UBDM_SOCK" ]; then
    "$BENCH_UBDMSETUP" --socket "$BENCH_UBDM_SOCK" "$@"
  else
    "$BENCH_UBDMSETUP" "$@"
  fi
}

# bench_ubdm_node NAME: the block device of a ubdm device: /dev/ubdm/NAME,
# else the one `info` names.
bench_ubdm_node() {
  if [ -e "/dev/ubdm/$1" ]; then
    readlink -f "/dev/ubdm/$1"
  else
    bench_ubdmsetup info "$1" | awk '/Block device:/ { print $3 }'
  fi
}
# bench_ubdm_create NAME TABLE [CREATE-OPTION...]: sets BENCH_DEV, or
# BENCH_SKIP (with ubdmsetup's words) and returns 1.
bench_ubdm_create() {
  local name=$1 table=$2
  shift 2
  if ! bench_ubdmsetup create "$name" --table "$table" "$@" >"$BENCH_TMP/create.err" 2>&1; then
    BENCH_SKIP="ubdmsetup create failed: $(tr '\n' ' ' <"$BENCH_TMP/create.err")"
    return 1
  fi
  BENCH_DEV=$(bench_ubdm_node "$name")
  [ -b "$BENCH_DEV" ] || { BENCH_SKIP="no block device for ubdm $name"; return 1; }
}

# bench_dm_create NAME TABLE [DMSETUP-OPTION...]: a kernel dm device, node
# /dev/mapper/NAME in BENCH_DEV; or BENCH_SKIP and status 1. Without udev
# (DM_DISABLE_UDEV, as in the VM) dmsetup makes the node itself and must not
# wait for a udev cookie; with udev it waits, so the node is there after.
bench_dm_create() {
  local name=$1 table=$2
  shift 2
  if [ -n "${DM_DISABLE_UDEV:-}" ]; then set -- --noudevsync "$@"; fi
  dmsetup create "$@" "$name" --table "$table" || { BENCH_SKIP="dmsetup create failed"; return 1; }
  BENCH_DEV=/dev/mapper/$name
}
# bench_dm_remove NAME: retries while the device is briefly busy (a closing
# fio, udev's probe of the new device).
bench_dm_remove() {
  local i=0 udev=''
  [ -z "${DM_DISABLE_UDEV:-}" ] || udev=--noudevsync
  while ! dmsetup remove $udev "$1" 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 20 ] || { dmsetup remove $udev "$1"; return; }
    sleep 0.1
  done
}

# bench_mpath_table SELECTOR PATH...: one priority group of every path, as
# multipathd builds for an active/active LUN; no features (no queueing).
bench_mpath_table() {
  local sel=$1 p paths='' n=0
  shift
  for p in "$@"; do paths="$paths $p 1"; n=$((n + 1)); done
  echo "0 $(blockdev --getsz "$1") multipath 0 0 1 1 $sel 0 $n 1$paths"
}
# bench_selector NAME: the path selector a device name ends in (-rr, -ql, -st).
bench_selector() {
  case $1 in *-rr) echo round-robin ;; *-ql) echo queue-length ;; *-st) echo service-time ;; esac
}

# bench_workload_args WORKLOAD: randread-4k-qd32 -> fio's arguments.
bench_workload_args() {
  local rw bs qd
  rw=${1%%-*}
  bs=${1#*-}
  bs=${bs%%-*}
  qd=${1##*-qd}
  case $rw in read | write | randread | randwrite | rw | randrw) ;; *) return 1 ;; esac
  case $qd in '' | *[!0-9]*) return 1 ;; esac
  echo "--rw=$rw --bs=$bs --iodepth=$qd"
}
# bench_workload_writes WORKLOAD: it writes (write, randwrite, rw, randrw).
bench_workload_writes() {
  case ${1%%-*} in write | randwrite | rw | randrw) return 0 ;; esac
  return 1
}

# bench_json_iops FILE: the IOPS in one of fio's JSON results (reads,
# writes and trims of the one job added up), for progress lines.
bench_json_iops() {
  awk -F: '/^ *"iops" *:/ { gsub(/[ ,]/, "", $2); s += $2 } END { printf "%.0f\n", s }' "$1"
}

# bench_fio DEVICE NODE WORKLOAD: fio (io_uring, O_DIRECT, time based) on
# NODE; its JSON between BEGIN and END, or a FAIL marker.
bench_fio() {
  local d=$1 dev=$2 w=$3 args
  if ! args=$(bench_workload_args "$w"); then
    echo "UBDM-BENCH-FAIL $d $w bad workload name (want <rw>-<bs>-qd<N>)"
    return 1
  fi
  # shellcheck disable=SC2086 # the argument lists are split on purpose
  if fio --name="$w" --filename="$dev" --ioengine=io_uring --direct=1 \
    --time_based --runtime="$BENCH_RUNTIME" --norandommap --randrepeat=0 \
    --lat_percentiles=1 --output-format=json $args $BENCH_FIO_EXTRA \
    --output="$BENCH_TMP/out.json" >"$BENCH_TMP/fio.err" 2>&1; then
    echo "UBDM-BENCH-BEGIN $d $w"
    cat "$BENCH_TMP/out.json"
    echo "UBDM-BENCH-END $d $w"
    bench_note "  $d $w: $(bench_json_iops "$BENCH_TMP/out.json") IOPS"
  else
    echo "UBDM-BENCH-FAIL $d $w fio failed: $(tail -n 3 "$BENCH_TMP/fio.err" | tr '\n' ' ')"
    bench_note "  $d $w: fio failed: $(tail -n 3 "$BENCH_TMP/fio.err" | tr '\n' ' ')"
    return 1
  fi
}

# bench_run ROUNDS DEVICES WORKLOADS: the whole device list (blank
# separated) ROUNDS times over; each device is set up, runs every workload
# and is torn down before the next, so that at any time one device stands
# over the disk (and a round measures them all close in time).
bench_run() {
  local rounds=$1 devices=$2 workloads=$3 round=1 d w
  while [ "$round" -le "$rounds" ]; do
    echo "UBDM-BENCH-ROUND $round"
    for d in $devices; do
      if ! bench_setup "$d"; then
        echo "UBDM-BENCH-SKIP $d $BENCH_SKIP"
        BENCH_FAILED=1
        bench_note "$d: skipped: $BENCH_SKIP"
        bench_teardown "$d" >/dev/null 2>&1
        continue
      fi
      echo "UBDM-BENCH-DEVICE $d $BENCH_DEV base=$BENCH_BASE"
      bench_note "$d ($BENCH_DEV), round $round of $rounds:"
      for w in $workloads; do
        bench_fio "$d" "$BENCH_DEV" "$w" || BENCH_FAILED=1
      done
      bench_teardown "$d" || { echo "UBDM-BENCH-FAIL $d - teardown failed"; BENCH_FAILED=1; }
    done
    round=$((round + 1))
  done
}
