#!/bin/sh
# shellcheck shell=dash
# no_path_retry N (multipathd's feature, built in): with `no_path_retry 3`
# and a 1 s checker, losing the last path queues I/O for 3 checker
# intervals and then fails it with EIO: still blocked at 2.5 s, failed by
# 5.5 s. After the expiry queueing is off (new I/O fails at once, the table
# loses queue_if_no_path); when a path returns (through the checker)
# queueing is back, and a second loss of every path counts down afresh.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/mpath_lib.sh
. "$(dirname "$0")/mpath_lib.sh"
set -eu
mp_start

mp_create mp "$(mp_table "no_path_retry 3 path_check_interval 1" round-robin)"
expect_eq "$(ubdmsetup table mp)" \
  "0 $SECTORS multipath 5 queue_if_no_path no_path_retry 3 path_check_interval 1 0 1 1 round-robin 0 2 1 $M1 1 $M2 1 " \
  "table (no_path_retry N implies queue_if_no_path)"
expect_eq "$(mp_dev_field mp no_path_retry)" 3 "no_path_retry in paths"
sum=$(write_random "$MP_DEV" 24 1)
on_exit path_online "$P1"
on_exit path_online "$P2"

# countdown ROUND: lose every path, then a read must wait ~3 s and fail.
countdown() {
  local r=$1 t0 t1 left
  path_offline "$P1"
  path_offline "$P2"
  t0=$(now_cs)
  dd_bg "rd-$r" "$MP_DEV" if="$MP_DEV" of=/dev/null bs=64k count=1 skip=384 iflag=direct
  wait_states mp "F F" 3
  left=$(mp_dev_field mp recovery_remaining_ms)
  log "$r: both paths failed after $((($(now_cs) - t0) * 10)) ms; recovery_remaining_ms $left"
  [ "$left" -gt 0 ] && [ "$left" -le 3000 ] || die "$r: recovery_remaining_ms is '$left', expected 1..3000"
  expect_eq "$(mp_dev_field mp queue_if_no_path)" true "$r: queueing during the countdown"
  # Not before 3 intervals: still blocked 2.5 s after the paths went.
  while [ $(($(now_cs) - t0)) -lt 250 ]; do
    dd_running "$DD_PID" || die "$r: the read ended after $((($(now_cs) - t0) * 10)) ms, before 3 intervals ($(cat "$TEST_TMP/rd-$r.err"))"
    sleep 0.1
  done
  log "$r: still blocked at $((($(now_cs) - t0) * 10)) ms"
  while dd_running "$DD_PID"; do
    [ $(($(now_cs) - t0)) -lt 550 ] || die "$r: the read is still blocked $((($(now_cs) - t0) * 10)) ms after the paths went"
    sleep 0.1
  done
  t1=$(now_cs)
  wait "$DD_PID" 2>/dev/null || true
  log "$r: the read ended $(((t1 - t0) * 10)) ms after the paths went: $(tr '\n' ' ' <"$TEST_TMP/rd-$r.err")"
  expect_ne "$(dd_status "rd-$r")" 0 "$r: read exit status after no_path_retry expired"
  expect_contains "$(cat "$TEST_TMP/rd-$r.err")" "Input/output error" "$r: read error after no_path_retry expired"
  [ $((t1 - t0)) -ge 290 ] || die "$r: the read failed after $(((t1 - t0) * 10)) ms, before 3 intervals"
}

countdown first
# Queueing is off now: new I/O fails at once, and the table says so.
expect_eq "$(mp_dev_field mp queue_if_no_path)" false "queueing after the expiry"
expect_eq "$(mp_dev_field mp recovery_remaining_ms)" -1 "no countdown after the expiry"
expect_match "$(ubdmsetup table mp)" "^0 $SECTORS multipath 4 no_path_retry 3 path_check_interval 1 0 " \
  "table after the expiry"
t0=$(now_cs)
expect_fail dd if="$MP_DEV" of=/dev/null bs=4k count=1 iflag=direct
[ $(($(now_cs) - t0)) -lt 100 ] || die "I/O after the expiry took $((($(now_cs) - t0) * 10)) ms to fail"

# A path comes back: the checker reinstates it and queueing is on again.
path_online "$P1"
wait_states mp "A F" 5
expect_eq "$(mp_dev_field mp queue_if_no_path)" true "queueing after a path came back"
expect_match "$(ubdmsetup table mp)" "^0 $SECTORS multipath 5 queue_if_no_path no_path_retry 3 " "table after a path came back"
expect_eq "$(read_md5 "$MP_DEV" 24 1)" "$sum" "data after a path came back"
# And the next loss of every path counts down again from 3 intervals.
countdown second
