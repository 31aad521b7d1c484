#!/bin/sh
# shellcheck shell=dash
# Path selectors spread I/O as specified, seen in the per-path I/O counts of
# `ubdmsetup --json paths` (checked against the paths' own /sys/block/*/stat)
# under fio 4k randread at iodepth 32, two queues:
#   round-robin              two equal paths: each gets 40-60%
#   queue-length             two equal paths: both used (each >= 25%)
#   service-time 1 vs 9      relative throughput: the second path gets >= 75%
#   historical-service-time  two equal paths: both used (each >= 10%)
# and with path 1 made slow (the kernel's dm-delay, 100 ms, over it; the
# "fast" path is scsi_debug at about 10 ms per I/O under TCG at this depth,
# so 20 ms left too little difference for a clear split on some boots):
#   queue-length             the fast path gets >= 70% (the slow one holds
#                            its I/Os longer, so its queue is longer)
#   historical-service-time  the fast path gets >= 70% (measured latency;
#                            not more: the kernel's estimate counts a burst
#                            of completions on the slow path as short
#                            service times, so its average stays well under
#                            the delay)
#   round-robin              still 40-60%: it does not look at load
# The kernel's dm-multipath split for the same tables (equal paths) is
# logged for comparison (the VM's kernel has no historical-service-time,
# and refuses a bio-based path such as dm-delay).
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/mpath_lib.sh
. "$(dirname "$0")/mpath_lib.sh"
set -eu
require_ubdm
mp_setup
# shellcheck disable=SC2034 # read by mp_create
MP_QUEUES=2
RUNTIME=${UBDM_MPATH_SELECTOR_RUNTIME:-3}

reads_done() { awk '{ print $1 }' "/sys/block/${1#/dev/}/stat"; }
# The underlying disk of a path (dm-delay over P1 -> P1).
disk_of() { case $1 in /dev/mapper/*) echo "$P1" ;; *) echo "$1" ;; esac; }

# run_split NAME PATH1 PATH2 TABLE: ubdm device, fio, then sets SHARE1 and
# SHARE2 (percent of the I/Os sent on each path).
run_split() {
  local name=$1 a=$2 b=$3 table=$4 ia0 ib0 ia1 ib1 sa0 sb0 sa1 sb1 da db total issued
  mp_create "$name" "$table"
  ia0=$(mp_path_field "$name" "$a" ios) ib0=$(mp_path_field "$name" "$b" ios)
  sa0=$(reads_done "$(disk_of "$a")") sb0=$(reads_done "$(disk_of "$b")")
  fio_run "$MP_DEV" --rw=randread --iodepth=32 --size=128M --time_based --runtime="$RUNTIME" --norandommap
  ia1=$(mp_path_field "$name" "$a" ios) ib1=$(mp_path_field "$name" "$b" ios)
  sa1=$(reads_done "$(disk_of "$a")") sb1=$(reads_done "$(disk_of "$b")")
  da=$((ia1 - ia0)) db=$((ib1 - ib0)) total=$((ia1 - ia0 + ib1 - ib0))
  issued=$(sed -n 's/.*issued rwts: total=\([0-9]*\),.*/\1/p' "$TEST_TMP/fio.out" | head -n1)
  [ "$total" -gt 0 ] || die "$name: no I/O counted on the paths"
  SHARE1=$((100 * da / total)) SHARE2=$((100 * db / total))
  log "$name: fio issued $issued; ubdm counted $da on $a, $db on $b ($SHARE1% / $SHARE2%); disk reads $((sa1 - sa0)) / $((sb1 - sb0))"
  log "$name: $(ubdmsetup status "$name")"
  [ "$total" -ge "$issued" ] || die "$name: paths counted $total I/Os, fio issued $issued"
  # The JSON counts are the I/Os the disks saw (the checker's probes and a
  # few merges aside).
  for side in a b; do
    if [ $side = a ]; then j=$da s=$((sa1 - sa0)); else j=$db s=$((sb1 - sb0)); fi
    diff=$((j > s ? j - s : s - j))
    [ $((diff * 20)) -le $((j + s + 200)) ] || die "$name: path $side: ubdm counted $j I/Os, the disk saw $s reads"
  done
  mp_remove "$name"
}
share_between() { # SHARE LO HI WHAT
  [ "$1" -ge "$2" ] && [ "$1" -le "$3" ] || die "$4: share $1% not in $2..$3%"
}

kernel_split() { # SELECTOR-WORDS
  local t sa0 sb0 da db
  t="0 $SECTORS multipath 0 0 1 1 $1"
  dm_create ksel "$t" >/dev/null
  sa0=$(reads_done "$P1") sb0=$(reads_done "$P2")
  fio_run /dev/mapper/ksel --rw=randread --iodepth=32 --size=128M --time_based --runtime="$RUNTIME" --norandommap
  da=$(($(reads_done "$P1") - sa0)) db=$(($(reads_done "$P2") - sb0))
  log "kernel $1: $da / $db reads ($((100 * da / (da + db)))% / $((100 * db / (da + db)))%)"
  dm_remove ksel
}
on_exit sh -c "dmsetup remove --noudevsync ksel 2>/dev/null || true"
kernel_split "round-robin 0 2 1 $P1 1 $P2 1"
kernel_split "queue-length 0 2 1 $P1 1 $P2 1"
kernel_split "service-time 0 2 2 $P1 1 1 $P2 1 9"

start_ubdmd
on_exit stop_ubdmd
cs="0 $SECTORS multipath 0 0 1 1"

run_split rr "$P1" "$P2" "$cs round-robin 0 2 1 $P1 1 $P2 1"
share_between "$SHARE1" 40 60 "round-robin, $P1"
run_split ql "$P1" "$P2" "$cs queue-length 0 2 1 $P1 1 $P2 1"
share_between "$SHARE1" 25 75 "queue-length, $P1"
run_split st "$P1" "$P2" "$cs service-time 0 2 2 $P1 1 1 $P2 1 9"
share_between "$SHARE2" 75 100 "service-time 1:9, $P2"
run_split hst "$P1" "$P2" "$cs historical-service-time 0 2 1 $P1 1 $P2 1"
share_between "$SHARE1" 10 90 "historical-service-time, $P1"

slow=$(dm_create slowp "0 $SECTORS delay $P1 0 100")
on_exit dm_remove slowp
run_split qls "$slow" "$P2" "$cs queue-length 0 2 1 $slow 1 $P2 1"
share_between "$SHARE2" 70 100 "queue-length with a slow $slow, $P2"
run_split hsts "$slow" "$P2" "$cs historical-service-time 0 2 1 $slow 1 $P2 1"
share_between "$SHARE2" 70 100 "historical-service-time with a slow $slow, $P2"
run_split rrs "$slow" "$P2" "$cs round-robin 0 2 1 $slow 1 $P2 1"
share_between "$SHARE1" 40 60 "round-robin with a slow $slow, $slow"
