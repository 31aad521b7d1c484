#!/bin/sh
# shellcheck shell=dash
# Flapping paths: fio random writes with crc32c verify (verify_backlog: the
# data is read back and checked all along) run for 68 s on a ubdm
# round-robin multipath device while, every 2 s, one path goes offline or
# comes back, in turn (A off, A on, B off, B on, ...; never both off), for
# 60 s. No queue_if_no_path: every I/O that hits the offline path must be
# retried on the other one. Ends with 0 I/O errors and 0 verify failures, and both
# paths active again through the checker (no reinstate_path message is ever
# sent); each path came back in time, before the other one went.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/mpath_lib.sh
. "$(dirname "$0")/mpath_lib.sh"
set -eu
mp_start
# shellcheck disable=SC2034 # read by mp_create
MP_QUEUES=2
FLAP_S=${UBDM_MPATH_FLAP_SECONDS:-60}
mp_create mp "$(mp_table "path_check_interval 1" round-robin)"
on_exit path_online "$P1"
on_exit path_online "$P2"

fio_bg "$MP_DEV" --rw=randwrite --size=48M --verify=crc32c --do_verify=1 --verify_fatal=1 \
  --verify_backlog=256 --time_based --runtime=$((FLAP_S + 8))
sleep 1
ios1=$(mp_path_field mp "$P1" ios) ios2=$(mp_path_field mp "$P2" ios)

# One event every 2 s by the clock (the checks in between take time too).
late=0 events=0 fio_early=''
t_start=$(now_cs)
t_next=$t_start
t_end=$((t_start + FLAP_S * 100))
while [ "$(now_cs)" -lt "$t_end" ]; do
  for step in "$P1 off" "$P1 on" "$P2 off" "$P2 on"; do
    [ "$(now_cs)" -lt "$t_end" ] || break 2
    if ! fio_alive; then
      fio_early="fio ended after $((($(now_cs) - t_start) / 100)) s of flapping"
      break 2
    fi
    # shellcheck disable=SC2086 # two words
    set -- $step
    dev=$1 what=$2
    if [ "$what" = off ]; then
      # The other path came back 2 s ago: the checker (every 1 s) must have
      # reinstated it by now.
      other=$P1
      [ "$dev" != "$P1" ] || other=$P2
      st=$(mp_path_field mp "$other" state)
      if [ "$st" != active ]; then
        late=$((late + 1))
        log "LATE: $other is still $st in ubdm when $dev goes offline ($(ubdmsetup status mp))"
      fi
      path_offline "$dev"
    else
      path_online "$dev"
    fi
    events=$((events + 1))
    t_next=$((t_next + 200))
    while [ "$(now_cs)" -lt "$t_next" ]; do sleep 0.1; done
  done
done
path_online "$P1"
path_online "$P2"
log "$events path events in $((($(now_cs) - t_start) / 100)) s"
fio_wait
[ -z "$fio_early" ] || die "$fio_early (expected $((FLAP_S + 8)) s)"
grep -E 'err=|verify' "$TEST_TMP/fio-bg.out" | head -n 5 >&2 || true
grep -qi 'verify.*fail\|bad magic\|crc32c.*wanted' "$TEST_TMP/fio-bg.out" && die "fio reported verify failures"

# Both paths active again, through the checker.
wait_states mp "A A" 5
status=$(ubdmsetup status mp)
log "status: $status"
ubdmsetup paths mp >&2
for p in "$P1" "$P2"; do
  expect_eq "$(mp_path_field mp "$p" checker)" ready "checker state of $p"
  fails=$(mp_path_field mp "$p" fail_count)
  [ "$fails" -ge 1 ] || die "$p was never failed (fail_count $fails): the flapping did not reach ubdm"
done
n=$(grep -c "Reinstating path" "$UBDMD_LOG" || true)
by_io=$(grep -c "Failing path .*I/O error" "$UBDMD_LOG" || true)
log "ubdmd logged $n reinstates, $(grep -c 'Failing path' "$UBDMD_LOG" || true) path failures ($by_io by an I/O error)"
# Some failures must have come from user I/O hitting the offline path (then
# retried on the other path), not only from the checker.
[ "$by_io" -ge 1 ] || die "no path was failed by an I/O error: the failover of in-flight I/O was not exercised"
offs=$(((events + 3) / 2))
[ "$n" -ge $((offs - 1)) ] || die "only $n reinstates logged for $offs offline periods"
[ "$(mp_path_field mp "$P1" ios)" -gt "$ios1" ] && [ "$(mp_path_field mp "$P2" ios)" -gt "$ios2" ] ||
  die "I/O did not use both paths"
[ "$late" -eq 0 ] || die "$late time(s) a path was still failed 2 s after it came back"
