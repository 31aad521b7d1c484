#!/bin/sh
# shellcheck shell=dash
# The native bench: fio on the user's own disks, beside the kernel's dm and
# ubdm over them, on a host whose kernel has ublk. tools/bench/run.sh
# --native runs it and prints the table; the e2e test
# test_bench_01_native.sh runs it in the test VM. POSIX sh (dash or bash on
# a host, busybox in the VM).
#
#   native.sh --disk DEV [--disk DEV2]      one or two disks, each on its own
#   native.sh --paths DEV,DEV[,...]         several paths to ONE LUN
#             [--runtime S] [--rounds N] [--workloads LIST] [--devices KINDS]
#             [--selector round-robin|queue-length|service-time]
#             [--force-write] [--dry-run]
#
# Rows (devices): for each --disk D (D is the kernel's name, e.g. sdb):
# D-raw, D-dm-linear, D-ubdm-linear. With --paths P1,P2,..: P1-raw,
# P1-dm-linear, P1-ubdm-linear over the first path, and mpath-dm-SEL,
# mpath-ubdm-SEL (SEL rr, ql or st) over all of them. The raw device is the
# base of every row over it. --devices keeps only some kinds (comma list of
# raw, dm-linear, ubdm-linear, dm-mpath, ubdm-mpath).
#
# Safety. Before anything is created it prints which devices are read and
# which are written. A workload that writes (write, randwrite, rw, randrw)
# overwrites the disks' data. Refused, always: a device that is not a block
# device, is mounted or used as swap (itself or one of its partitions), or
# is held by another device (LVM, md, dm, multipathd's map: its holders in
# sysfs); paths of different sizes or WWIDs. Refused unless --force-write,
# when a workload writes: a device with a filesystem, RAID/LVM signature or
# partition table (blkid -p, wipefs, the kernel's partitions), or one that
# cannot be probed (no util-linux blkid or wipefs). With read-only
# workloads nothing is written: the dm and ubdm devices are created
# read-only and fio runs --readonly. --dry-run: the checks and the plan,
# then exit.
#
# It starts its own ubdmd (a private socket, config and state directory in
# a temporary directory; --on-stop remove) and removes every device it
# made and stops that ubdmd at exit, on success, failure, SIGINT or
# SIGTERM. Device names carry the pid (ubdmbench<pid>-...).
#
# Output: the markers of bench_lib.sh on stdout, after
#   UBDM-BENCH-NATIVE kernel=<uname -r> mode=disks|paths selector=<sel> force_write=0|1
#   UBDM-BENCH-DISK <node> sectors=<n> written=yes|no wwid=<id|-> model=<text>
# and UBDM-BENCH-DONE at the end. Progress, the plan and refusals on stderr.
# Exit status: 0 done, 1 failed, 2 usage, 3 refused or not runnable (nothing
# was created or written).
#
# Environment: UBDMD, UBDMSETUP (binaries; default from PATH), TMPDIR.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/e2e/bench/bench_lib.sh
. "$here/bench_lib.sh"

msg() { printf 'native bench: %s\n' "$*" >&2; }
usage_die() { msg "$*"; msg "usage: see the header of $0 (or tools/bench/run.sh --help)"; exit 2; }
refuse() { msg "REFUSED: $*"; exit 3; }
bench_note() { printf '%s\n' "$*" >&2; }

UBDMD=${UBDMD:-ubdmd}
UBDMSETUP=${UBDMSETUP:-ubdmsetup}
disks='' paths='' runtime=8 rounds=1 force=0 dry=0 selector=round-robin
workloads=randread-4k-qd1,randread-4k-qd32,randwrite-4k-qd32,read-128k-qd32
kinds=''
while [ $# -gt 0 ]; do
  case $1 in
    --disk) [ $# -ge 2 ] || usage_die "--disk needs a device"; disks="$disks $2"; shift 2 ;;
    --paths) [ $# -ge 2 ] || usage_die "--paths needs DEV,DEV"; paths=$(printf '%s' "$2" | tr ',' ' '); shift 2 ;;
    --runtime) [ $# -ge 2 ] || usage_die "--runtime needs seconds"; runtime=$2; shift 2 ;;
    --rounds) [ $# -ge 2 ] || usage_die "--rounds needs a number"; rounds=$2; shift 2 ;;
    --workloads) [ $# -ge 2 ] || usage_die "--workloads needs a list"; workloads=$2; shift 2 ;;
    --devices) [ $# -ge 2 ] || usage_die "--devices needs a list"; kinds=$(printf '%s' "$2" | tr ',' ' '); shift 2 ;;
    --selector) [ $# -ge 2 ] || usage_die "--selector needs a name"; selector=$2; shift 2 ;;
    --force-write) force=1; shift ;;
    --dry-run) dry=1; shift ;;
    *) usage_die "unknown argument: $1" ;;
  esac
done
case $runtime in '' | *[!0-9]* | 0) usage_die "--runtime takes whole seconds from 1" ;; esac
case $rounds in '' | *[!0-9]* | 0) usage_die "--rounds takes a whole number from 1" ;; esac
case $selector in
  round-robin) sel=rr ;;
  queue-length) sel=ql ;;
  service-time) sel=st ;;
  *) usage_die "--selector takes round-robin, queue-length or service-time" ;;
esac
workloads=$(printf '%s' "$workloads" | tr ',' ' ')
[ -n "$(printf '%s' "$workloads" | tr -d ' ')" ] || usage_die "no workloads"
writes=''
for w in $workloads; do
  bench_workload_args "$w" >/dev/null || usage_die "bad workload '$w' (want <rw>-<bs>-qd<N>, rw one of read write randread randwrite rw randrw)"
  if bench_workload_writes "$w"; then writes="$writes $w"; fi
done
if [ -n "$disks" ] && [ -n "$paths" ]; then usage_die "give --disk or --paths, not both"; fi
if [ -n "$disks" ]; then
  mode=disks
  # shellcheck disable=SC2086 # the devices, as words
  set -- $disks
  [ $# -le 2 ] || usage_die "at most two --disk (several paths to one LUN: --paths)"
elif [ -n "$paths" ]; then
  mode=paths
  # shellcheck disable=SC2086 # the devices, as words
  set -- $paths
  [ $# -ge 2 ] || usage_die "--paths wants at least two paths to one LUN (one disk: --disk)"
else
  usage_die "which disks? --disk DEV or --paths DEV,DEV"
fi
for k in $kinds; do
  case $k in
    raw | dm-linear | ubdm-linear) ;;
    dm-mpath | ubdm-mpath) [ $mode = paths ] || usage_die "--devices $k needs --paths" ;;
    *) usage_die "unknown kind '$k' in --devices (raw, dm-linear, ubdm-linear, dm-mpath, ubdm-mpath)" ;;
  esac
done
[ -n "$kinds" ] || kinds="raw dm-linear ubdm-linear dm-mpath ubdm-mpath"
want() { case " $kinds " in *" $1 "*) return 0 ;; esac; return 1; }

# --- what the machine must have -------------------------------------------------

[ "$(id -u)" -eq 0 ] || refuse "needs root (block devices, dmsetup, ublk)"
for t in fio dmsetup blockdev; do
  command -v "$t" >/dev/null 2>&1 || refuse "$t not found (Debian: apt-get install fio dmsetup util-linux)"
done

# --- the devices and their checks --------------------------------------------------

# sys_of NODE: the device's sysfs directory (/sys/dev/block/MAJ:MIN).
devnum() { local h; h=$(stat -L -c '%t:%T' "$1") && echo "$((0x${h%%:*})):$((0x${h##*:}))"; }
sys_of() { echo "/sys/dev/block/$(devnum "$1")"; }
# nums_of NODE: MAJ:MIN of the device and of each of its partitions.
nums_of() {
  local s p
  s=$(sys_of "$1")
  cat "$s/dev"
  for p in "$s"/*/partition; do [ -e "$p" ] && cat "$(dirname "$p")/dev"; done
  return 0
}
# mounted_as NODE: how the device or one of its partitions is in use by the
# system (mounts, swap), one line each; nothing if not.
mounted_as() {
  local n nums f src
  nums=$(nums_of "$1" | tr '\n' ' ')
  # mountinfo's third field is the mounted device's MAJ:MIN (btrfs and a
  # few others show an anonymous one: the source path is compared too).
  {
    awk -v nums=" $nums" '{ if (index(nums, " " $3 " ")) print "mounted on " $5 }' /proc/self/mountinfo 2>/dev/null
    while read -r src f _; do
      case $src in /dev/*) ;; *) continue ;; esac
      n=$(devnum "$src" 2>/dev/null) || continue
      case " $nums" in *" $n "*) echo "mounted on $f" ;; esac
    done </proc/mounts
  } | awk '!seen[$0]++'
  while read -r src _; do
    case $src in /dev/*) ;; *) continue ;; esac
    n=$(devnum "$src" 2>/dev/null) || continue
    case " $nums" in *" $n "*) echo "swap ($src)" ;; esac
  done </proc/swaps
}
# holders_of NODE: the devices built over it or its partitions (dm, md, ...).
holders_of() {
  local s h
  s=$(sys_of "$1")
  for h in "$s"/holders/* "$s"/*/holders/*; do [ -e "$h" ] && basename "$h"; done
  return 0
}
# signatures_of NODE: what lives on it (filesystem, RAID/LVM member,
# partition table), one line each, from every probe this machine has;
# "unknown" if none could probe. Probes read the device itself, not a cache.
signatures_of() {
  local node=$1 out probed=''
  if blkid -V 2>&1 | grep -q util-linux; then
    probed=1
    # -p: low-level probe of the device; exit 2 means nothing found.
    out=$(blkid -p -o export "$node" 2>/dev/null) || true
    printf '%s\n' "$out" | sed -nE 's/^(TYPE|PTTYPE)=(.*)/\2 (blkid -p)/p'
  fi
  if command -v wipefs >/dev/null 2>&1; then
    probed=1
    # Lists every signature it knows (also a GPT's backup header at the
    # end); without -a it erases nothing.
    wipefs --noheadings --output TYPE "$node" 2>/dev/null | sed 's/$/ (wipefs)/' || true
  fi
  # Partitions the kernel found: a partition table, whatever the probes say.
  for p in "$(sys_of "$node")"/*/partition; do
    [ -e "$p" ] && echo "partition $(basename "$(dirname "$p")")"
  done
  # lsblk is no probe: without udev's database it shows nothing at all.
  [ -n "$probed" ] || echo "unknown (no util-linux blkid or wipefs to probe it)"
  return 0
}
wwid_of() {
  local s f
  s=$(sys_of "$1")
  for f in "$s/device/wwid" "$s/wwid"; do
    [ -r "$f" ] && { tr -d ' \n' <"$f" | cut -c1-80; return 0; }
  done
  echo -
}
model_of() {
  local s
  s=$(sys_of "$1")
  sed 's/ *$//' "$s/device/model" 2>/dev/null || true
}

nodes='' names='' bad=''
for d in "$@"; do
  n=$(readlink -f "$d" 2>/dev/null) || n=$d
  [ -b "$n" ] || refuse "$d is not a block device"
  case " $nodes " in *" $n "*) refuse "$d is given twice ($n)" ;; esac
  nodes="$nodes $n"
  names="$names $(basename "$n")"
done
nodes=${nodes# } names=${names# }
# shellcheck disable=SC2086 # the devices, as words
set -- $nodes
first=$1
first_name=$(basename "$first")

# The plan: which devices are read, which are written, what gets created.
msg "kernel $(uname -r); ubdmd: $(command -v "$UBDMD" || echo "$UBDMD, not found"); ubdmsetup: $(command -v "$UBDMSETUP" || echo "$UBDMSETUP, not found")"
if [ $mode = paths ]; then
  msg "$# paths to one LUN: $nodes"
else
  msg "disk(s), each benchmarked on its own: $nodes"
fi
size1=$(blockdev --getsz "$first")
wwid1=$(wwid_of "$first")
for n in $nodes; do
  msg "  $n: $(($(blockdev --getsz "$n") / 2048)) MiB, model '$(model_of "$n")', wwid $(wwid_of "$n")"
  m=$(mounted_as "$n")
  [ -z "$m" ] || bad="$bad
  $n is in use: $(printf '%s' "$m" | tr '\n' ';' | sed 's/;$//; s/;/; /g')"
  h=$(holders_of "$n" | tr '\n' ' ')
  [ -z "$h" ] || bad="$bad
  $n is held by: $h(a device built over it, e.g. LVM, md, dm or multipathd's map; remove that first)"
  if [ $mode = paths ]; then
    [ "$(blockdev --getsz "$n")" = "$size1" ] || bad="$bad
  $n and $first differ in size: not paths to one LUN"
    w=$(wwid_of "$n")
    if [ "$w" != - ] && [ "$wwid1" != - ] && [ "$w" != "$wwid1" ]; then
      bad="$bad
  $n and $first have different WWIDs ($w, $wwid1): not paths to one LUN"
    fi
  fi
done
[ -z "$bad" ] || refuse "these devices are in use or do not fit:$bad
nothing was created or written."
[ $mode = disks ] || [ "$wwid1" != - ] || msg "  (no WWID in sysfs: that these are paths to one LUN is taken on trust)"

if [ -n "$writes" ]; then
  msg "will READ and WRITE (overwriting their data): $nodes"
  msg "  written by:$writes"
  sigs=''
  for n in $nodes; do
    s=$(signatures_of "$n" | awk '!seen[$0]++' | tr '\n' ';' | sed 's/;$//; s/;/, /g')
    [ -z "$s" ] || sigs="$sigs
  $n: $s"
  done
  if [ -n "$sigs" ]; then
    if [ $force = 0 ]; then
      refuse "these devices hold data the write workloads would destroy:$sigs
nothing was created or written. Pass --force-write to overwrite them anyway, or give only read workloads (read, randread)."
    fi
    msg "  --force-write: overwriting what they hold:$sigs"
  fi
else
  msg "will only READ: $nodes (no workload writes; the dm and ubdm devices are read-only, fio runs --readonly)"
  BENCH_FIO_EXTRA=--readonly
fi

# The rows, in the order they run.
devices=''
add() { if want "$1"; then devices="$devices $2"; fi; }
if [ $mode = disks ]; then
  for nm in $names; do
    add raw "$nm-raw"
    add dm-linear "$nm-dm-linear"
    add ubdm-linear "$nm-ubdm-linear"
  done
else
  add raw "$first_name-raw"
  add dm-linear "$first_name-dm-linear"
  add ubdm-linear "$first_name-ubdm-linear"
  add dm-mpath "mpath-dm-$sel"
  add ubdm-mpath "mpath-ubdm-$sel"
fi
devices=${devices# }
[ -n "$devices" ] || usage_die "--devices leaves nothing to run"
tag=ubdmbench$$
msg "rows: $devices; workloads: $workloads; ${runtime}s each, $rounds round(s)"
case " $devices " in *-dm-*) msg "creates kernel dm devices $tag-* (removed after each row and at exit)" ;; esac
case " $devices " in *-ubdm-*) msg "starts a private ubdmd (own socket, config and state directory; stopped at exit) and ubdm devices $tag-*" ;; esac
# ubdm rows need the binaries and ublk; checked after the plan, so that
# the safety report comes first (and --devices raw,dm-linear needs neither).
case " $devices " in
  *-ubdm-*)
    for b in "$UBDMD" "$UBDMSETUP"; do
      command -v "$b" >/dev/null 2>&1 || refuse "$b not found (build ubdm, or set UBDMD and UBDMSETUP)"
    done
    if [ ! -c /dev/ublk-control ]; then
      # Loading the module is the one change to the machine that outlives
      # the run (harmless; unloading it might race another user of ublk).
      if command -v modprobe >/dev/null 2>&1; then modprobe ublk_drv 2>/dev/null || true; fi
      i=0
      while [ ! -c /dev/ublk-control ] && [ $i -lt 20 ]; do sleep 0.1; i=$((i + 1)); done
      [ -c /dev/ublk-control ] || refuse "no /dev/ublk-control: this kernel ($(uname -r)) has no ublk (modprobe ublk_drv failed); the VM bench (tools/bench/run.sh without --native) needs none"
    fi
    ;;
esac
if [ $dry = 1 ]; then
  msg "--dry-run: stopping here; nothing was created or written"
  exit 0
fi
if [ -n "$writes" ] && [ -t 2 ]; then
  # A person at a terminal gets a moment to read the plan and stop it.
  msg "writing to $nodes starts in 5 s; Ctrl-C now stops it before anything is written"
  sleep 5
fi

# --- the run ------------------------------------------------------------------------

work=$(mktemp -d "${TMPDIR:-/tmp}/ubdm-bench.XXXXXX")
BENCH_TMP=$work
BENCH_RUNTIME=$runtime
BENCH_UBDMSETUP=$UBDMSETUP
BENCH_UBDM_SOCK=$work/control.sock
ubdmd_pid=''
ro=''
[ -n "$writes" ] || ro=--readonly

dm_names() { dmsetup ls 2>/dev/null | awk -v t="$tag-" 'index($1, t) == 1 { print $1 }'; }
cleanup() {
  local rc=$? left n i
  trap - EXIT INT TERM HUP
  set +e
  for n in $(dm_names); do bench_dm_remove "$n" || rc=1; done
  if [ -n "$ubdmd_pid" ]; then
    if [ -S "$BENCH_UBDM_SOCK" ]; then
      bench_ubdmsetup remove_all --force >"$work/remove_all.out" 2>&1 ||
        { msg "ubdmsetup remove_all: $(tr '\n' ' ' <"$work/remove_all.out")"; rc=1; }
    fi
    # --on-stop remove: whatever is still there goes with the daemon.
    kill -TERM "$ubdmd_pid" 2>/dev/null
    i=0
    while kill -0 "$ubdmd_pid" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 "$ubdmd_pid" 2>/dev/null; then
      msg "ubdmd (pid $ubdmd_pid) did not stop within 30 s; killing it (its devices may be left: ls /dev/ublkc*)"
      kill -KILL "$ubdmd_pid" 2>/dev/null
      rc=1
    fi
    wait "$ubdmd_pid" 2>/dev/null
  fi
  left=$(dm_names | tr '\n' ' ')
  [ -z "$left" ] || { msg "dm devices left behind: $left"; rc=1; }
  # A failure may be ubdmd's; an interruption is not.
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 130 ] && [ "$rc" -ne 143 ] && [ "$rc" -ne 129 ] && [ -s "$work/ubdmd.log" ]; then
    msg "the last lines of ubdmd's log:"
    tail -n 20 "$work/ubdmd.log" | sed 's/^/  ubdmd: /' >&2
  fi
  rm -rf "$work"
  msg "cleaned up: no device of this run is left (exit $rc)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

ubdm_up() {
  [ -z "$ubdmd_pid" ] || return 0
  mkdir -p "$work/config" "$work/state"
  # Its own session: a Ctrl-C on the terminal reaches fio and this script,
  # whose cleanup then removes the devices through this daemon.
  set --
  if command -v setsid >/dev/null 2>&1; then set -- setsid; fi
  "$@" "$UBDMD" --foreground --socket "$BENCH_UBDM_SOCK" --config "$work/config" \
    --state-dir "$work/state" --on-stop remove >"$work/ubdmd.log" 2>&1 </dev/null &
  ubdmd_pid=$!
  local i=0
  while [ ! -S "$BENCH_UBDM_SOCK" ]; do
    kill -0 "$ubdmd_pid" 2>/dev/null || { BENCH_SKIP="ubdmd exited at start: $(tail -n 3 "$work/ubdmd.log" | tr '\n' ' ')"; ubdmd_pid=''; return 1; }
    i=$((i + 1))
    [ $i -lt 300 ] || { BENCH_SKIP="ubdmd made no socket within 30 s"; return 1; }
    sleep 0.1
  done
  bench_ubdmsetup ls >/dev/null 2>&1 || { BENCH_SKIP="ubdmd does not answer"; return 1; }
}
node_of() { # NAME: the node of one of our disks by its kernel name
  local n
  for n in $nodes; do [ "$(basename "$n")" = "$1" ] && { echo "$n"; return 0; }; done
  return 1
}
# shellcheck disable=SC2086 # $nodes: the paths, as words
mpath_table() { bench_mpath_table "$selector" $nodes; }
bench_setup() {
  BENCH_DEV='' BENCH_BASE='' BENCH_SKIP=''
  local nm dev
  case $1 in
    mpath-dm-*)
      BENCH_BASE=$first_name-raw
      bench_dm_create "$tag-mp" "$(mpath_table)" $ro || return 1
      ;;
    mpath-ubdm-*)
      BENCH_BASE=$first_name-raw
      ubdm_up || return 1
      bench_ubdm_create "$tag-mp" "$(mpath_table)" $ro || return 1
      ;;
    *-raw)
      nm=${1%-raw}
      BENCH_BASE=$1
      BENCH_DEV=$(node_of "$nm")
      ;;
    *-dm-linear)
      nm=${1%-dm-linear}
      BENCH_BASE=$nm-raw
      dev=$(node_of "$nm")
      bench_dm_create "$tag-lin" "0 $(blockdev --getsz "$dev") linear $dev 0" $ro || return 1
      ;;
    *-ubdm-linear)
      nm=${1%-ubdm-linear}
      BENCH_BASE=$nm-raw
      dev=$(node_of "$nm")
      ubdm_up || return 1
      bench_ubdm_create "$tag-lin" "0 $(blockdev --getsz "$dev") linear $dev 0" $ro || return 1
      ;;
    *) BENCH_SKIP="unknown device"; return 1 ;;
  esac
  [ -b "$BENCH_DEV" ] || { BENCH_SKIP="$BENCH_DEV is not a block device"; return 1; }
}
bench_teardown() {
  case $1 in
    *-dm-linear) bench_dm_remove "$tag-lin" ;;
    mpath-dm-*) bench_dm_remove "$tag-mp" ;;
    *-ubdm-linear) bench_ubdmsetup remove "$tag-lin" ;;
    mpath-ubdm-*) bench_ubdmsetup remove "$tag-mp" ;;
  esac
}

echo "UBDM-BENCH-NATIVE kernel=$(uname -r) mode=$mode selector=$selector force_write=$force"
for n in $nodes; do
  echo "UBDM-BENCH-DISK $n sectors=$(blockdev --getsz "$n") written=$([ -n "$writes" ] && echo yes || echo no) wwid=$(wwid_of "$n") model=$(model_of "$n")"
done
msg "starting"
# Called in a list: a failed run is reported by its marker, not by set -e.
bench_run "$rounds" "$devices" "$workloads" || true
echo "UBDM-BENCH-DONE"
[ -z "$BENCH_FAILED" ] || { msg "some runs failed or were skipped (see above)"; exit 1; }
