#!/bin/sh
# shellcheck shell=dash
# Paths that disappear: four scsi_debug paths to one LUN (two more hosts on
# top of the usual two), fio random writes with crc32c verify over the map,
# no queue_if_no_path. In a loop, one path is deleted as a transport's
# dev_loss_tmo would (`echo 1 > /sys/block/sdX/device/delete`: its size
# drops to 0, writes through the open fd return ENOSPC, reads return 0
# bytes). The deletion is done while fio is stopped (SIGSTOP, every path
# idle), so that no in-flight I/O fails with ENODEV first. In odd rounds the
# map has no checker (path_check_interval 0) and a few direct writes beyond
# fio's region (round-robin: one of them goes to the deleted path) must find
# the path gone by its ENOSPC and be retried on the others, never handed to
# the writer. In even rounds (path_check_interval 1) the checker must fail
# the path. Then fio goes on. A rescan of the host brings
# the LUN back under a new name; a `load` of the table with the new path
# set, `suspend --noflush` and `resume` carry on with no error. At the end
# fio has seen 0 I/O errors and 0 verify failures, and status shows four
# active paths, the last set loaded. (The kernel's dm-multipath does the
# same through blk_path_error: a deleted SCSI device fails I/O with
# DID_NO_CONNECT, a path error.)
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/mpath_lib.sh
. "$(dirname "$0")/mpath_lib.sh"
set -eu
mp_start
# shellcheck disable=SC2034 # read by mp_create
MP_QUEUES=2
ROUNDS=${UBDM_MPATH_VANISH_ROUNDS:-4}
ROUND_S=20   # fio's budget per round; a round that takes longer fails the test

P3=$(scsi_debug_add_host)
on_exit scsi_debug_remove_host
P4=$(scsi_debug_add_host)
on_exit scsi_debug_remove_host
PATHS="$P1 $P2 $P3 $P4"

# host_of DEV: the SCSI host number of a disk (H of its H:C:T:L).
host_of() {
  local hctl
  hctl=$(basename "$(readlink -f "/sys/block/${1#/dev/}/device")")
  echo "${hctl%%:*}"
}
# disk_of_host H: the scsi_debug disk on host H, if there is one.
disk_of_host() {
  local d
  for d in $(scsi_debug_paths); do
    [ "$(host_of "$d")" != "$1" ] || { echo "$d"; return 0; }
  done
  return 1
}
# table_of ROUND PATHS...: the table for that round (see the header).
table_of() {
  local interval=$((1 - $1 % 2)) words='' p
  shift
  for p in "$@"; do words="$words $p 1"; done
  echo "0 $SECTORS multipath 2 path_check_interval $interval 0 1 1 round-robin 0 $# 1$words"
}

# shellcheck disable=SC2086 # the paths are words
mp_create mp "$(table_of 1 $PATHS)"
wait_states mp "A A A A"
# --thread: one process, so that SIGSTOP holds all of fio.
fio_bg "$MP_DEV" --thread --rw=randwrite --size=48M --verify=crc32c --do_verify=1 --verify_fatal=1 \
  --verify_backlog=256 --time_based --runtime=$((ROUNDS * ROUND_S + 5))
on_exit sh -c "kill -CONT $FIO_PID 2>/dev/null || true"
sleep 2

# wait_idle: no I/O in flight on any path of mp (fio is stopped).
wait_idle() {
  local i=0 p busy
  while :; do
    busy=0
    for p in $PATHS; do busy=$((busy + $(mp_path_field mp "$p" in_flight))); done
    [ "$busy" -ne 0 ] || return 0
    i=$((i + 1))
    [ $i -lt 100 ] || die "I/O still in flight 10 s after fio was stopped"
    sleep 0.1
  done
}
# wait_failed DEV WHAT: FAIL unless ubdm fails DEV within 10 s.
wait_failed() {
  local i=0
  while [ "$(mp_path_field mp "$1" state)" = active ]; do
    i=$((i + 1))
    [ $i -lt 100 ] || die "round $round: $1 still active 10 s after its deletion, waiting for $2 ($(ubdmsetup status mp))"
    sleep 0.1
  done
}

round=0
while [ "$round" -lt "$ROUNDS" ]; do
  round=$((round + 1))
  fio_alive || die "round $round: fio ended early (an I/O error?): $(grep -E 'err=' "$TEST_TMP/fio-bg.out" | head -n 3)"
  # shellcheck disable=SC2086
  set -- $PATHS
  shift $(((round - 1) % 4))
  gone=$1 host=$(host_of "$1")
  kill -STOP "$FIO_PID"
  wait_idle
  log "round $round: deleting $gone (host $host), fio stopped"
  echo 1 >"/sys/block/${gone#/dev/}/device/delete" || die "cannot delete $gone"
  if [ $((round % 2)) -eq 1 ]; then
    # 64 MiB on, past fio's 48 MiB: one 4 KiB write per request.
    seek=$((16384 + round * 8))
    dd if=/dev/urandom of="$TEST_TMP/w.bin" bs=4k count=8 status=none
    dd if="$TEST_TMP/w.bin" of="$MP_DEV" bs=4k count=8 seek=$seek oflag=direct conv=notrunc status=none ||
      die "round $round: a write to the map failed with $gone deleted"
    expect_eq "$(dd if="$MP_DEV" bs=4k count=8 skip=$seek iflag=direct status=none | md5sum)" \
      "$(md5sum <"$TEST_TMP/w.bin")" "round $round: data written with $gone deleted"
    wait_failed "$gone" "the writes"
    kill -CONT "$FIO_PID"
  else
    wait_failed "$gone" "the checker"
    expect_eq "$(mp_path_field mp "$gone" checker)" faulty "round $round: checker state of $gone"
    kill -CONT "$FIO_PID"
  fi
  log "round $round: $gone is $(mp_path_field mp "$gone" state) (checker: $(mp_path_field mp "$gone" checker))"
  sleep 2   # fio keeps going on three paths
  fio_alive || die "round $round: fio ended after $gone was deleted: $(grep -E 'err=' "$TEST_TMP/fio-bg.out" | head -n 3)"

  echo '- - -' >"/sys/class/scsi_host/host$host/scan" || die "cannot rescan host $host"
  i=0
  while ! new=$(disk_of_host "$host") || [ ! -b "$new" ]; do
    i=$((i + 1))
    [ $i -lt 100 ] || die "round $round: the LUN did not come back on host $host within 10 s"
    sleep 0.1
  done
  sleep 0.5
  log "round $round: $gone came back as $new"
  PATHS=$(echo " $PATHS " | sed "s| $gone | $new |" | tr -s ' ' | sed 's/^ //; s/ $//')
  # shellcheck disable=SC2086
  run ubdmsetup load mp --table "$(table_of $((round + 1)) $PATHS)"
  run timeout 30 ubdmsetup suspend --noflush mp || die "round $round: suspend --noflush failed"
  run ubdmsetup resume mp || die "round $round: resume failed"
  wait_states mp "A A A A" 10
  expected=''
  for p in $PATHS; do expected="$expected $(majmin "$p")"; done
  got=$(ubdmsetup table mp | grep -oE '[0-9]+:[0-9]+' | tr '\n' ' ')
  expect_eq "$got" "${expected# } " "round $round: paths of the live table"
done

fio_wait
grep -E 'err=|verify' "$TEST_TMP/fio-bg.out" | head -n 5 >&2 || true
grep -qi 'verify.*fail\|bad magic\|crc32c.*wanted' "$TEST_TMP/fio-bg.out" && die "fio reported verify failures"
status=$(ubdmsetup status mp)
log "status: $status"
ubdmsetup paths mp >&2
expect_eq "$(mp_states mp)" "A A A A" "path states at the end"
expect_eq "$(mp_dev_field mp valid_paths)" 4 "valid paths at the end"
for p in $PATHS; do
  [ "$(mp_path_field mp "$p" ios)" -gt 0 ] || die "no I/O went to $p after it was loaded"
done
log "ubdmd's path failures: $(grep 'Failing path' "$UBDMD_LOG" | sed 's/.*(\(.*\), [0-9]* valid.*/\1/' | sort | uniq -c | tr -s ' \n' ' ')"
by_io=$(grep -c 'Failing path .*I/O error' "$UBDMD_LOG" || true)
by_checker=$(grep -c 'Failing path .*checker' "$UBDMD_LOG" || true)
[ "$by_io" -ge 1 ] || die "no path was failed by fio's I/O: the deleted-path errors were not exercised"
[ "$by_checker" -ge 1 ] || die "no path was failed by the checker"
