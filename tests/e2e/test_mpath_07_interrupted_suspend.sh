#!/bin/sh
# shellcheck shell=dash
# Interrupted noflush suspend (the core's rule): `suspend --noflush
# --timeout 2` while an I/O is stuck in flight on a path fails with a
# timeout error and leaves the device ACTIVE; I/O that arrived during the
# suspend is reissued; a clone that was in flight and completes normally
# completes normally; a clone that was in flight and comes back asking for
# a requeue (a path error) fails with EIO ("noflush suspend was
# interrupted") although another path is valid; a clone that asked for a
# requeue during the suspend (pushed back) is reissued after it and succeeds
# on the other path; later I/O uses that path. And info/status/paths answer
# while a suspend waits (they do with dm).
#
# The stuck I/O: path 1 is the kernel's dm-delay over the first scsi_debug
# path, holding every I/O for 5 s (the device is created with delay 0, so
# the partition scan at create is quick, then the delay is switched on).
# Two priority groups, {slow} then {P2}, so every I/O goes to the slow path
# while it is valid. Checker off, so only I/O decides path states.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/mpath_lib.sh
. "$(dirname "$0")/mpath_lib.sh"
set -eu
require_ubdm
mp_setup
DELAY_MS=5000
slow=$(dm_create slow "0 $SECTORS delay $P1 0 0")
on_exit dm_remove slow
on_exit path_online "$P1"
start_ubdmd
on_exit stop_ubdmd
mp_create mp "0 $SECTORS multipath 2 path_check_interval 0 0 2 1 round-robin 0 1 1 $slow 1 round-robin 0 1 1 $P2 1"
sum=$(write_random "$MP_DEV" 20 1)
run dmsetup load slow --table "0 $SECTORS delay $P1 0 $DELAY_MS"
run dmsetup resume --noudevsync slow

delayed_reads() { dmsetup status slow | awk '{ print $4 }'; }
writes_done() { awk '{ print $5 }' "/sys/block/${1#/dev/}/stat"; }

# interrupted_round NAME OFFLINE: A in flight on the slow path, a noflush
# suspend times out, B arrives during the suspend. OFFLINE=yes sets P1
# offline after the timeout, so that A (and B) come back from dm-delay with
# EIO: a path error, which asks for a requeue.
interrupted_round() {
  local r=$1 offline=$2 a b s t0 t1 held
  dd_bg "a-$r" "$MP_DEV" if="$MP_DEV" of="$TEST_TMP/a-$r.bin" bs=1M count=1 skip=20 iflag=direct
  a=$DD_PID
  wait_until 5 sh -c '[ "$(dmsetup status slow | awk "{ print \$4 }")" -ge 1 ]' ||
    die "$r: the read is not held by dm-delay (status: $(dmsetup status slow))"
  sleep 0.2
  held=$(delayed_reads)
  t0=$(now_cs)
  ( rc=0; ubdmsetup suspend --noflush --timeout 2 mp >"$TEST_TMP/susp-$r.out" 2>&1 || rc=$?
    echo "$rc" >"$TEST_TMP/susp-$r.rc" ) &
  s=$!
  sleep 0.5
  dd_bg "b-$r" "$MP_DEV" if="$MP_DEV" of="$TEST_TMP/b-$r.bin" bs=1M count=1 skip=20 iflag=direct
  b=$DD_PID
  sleep 1
  # B arrived during the suspend: the core holds it (it must not reach the path).
  [ ! -e "$TEST_TMP/susp-$r.rc" ] || die "$r: the suspend ended within 1.5 s"
  expect_eq "$(delayed_reads)" "$held" "$r: reads held by dm-delay while the suspend waits (A's only)"
  wait "$s" || true
  t1=$(now_cs)
  log "$r: suspend returned after $(((t1 - t0) * 10)) ms: status $(cat "$TEST_TMP/susp-$r.rc"): $(cat "$TEST_TMP/susp-$r.out")"
  expect_ne "$(cat "$TEST_TMP/susp-$r.rc")" 0 "$r: suspend --noflush --timeout 2 exit status"
  expect_match "$(cat "$TEST_TMP/susp-$r.out")" "^ubdmsetup: suspend mp: .*tim(ed out|eout)" "$r: suspend error"
  [ $((t1 - t0)) -ge 150 ] && [ $((t1 - t0)) -le 450 ] ||
    die "$r: the suspend gave up after $(((t1 - t0) * 10)) ms, expected about 2 s"
  expect_eq "$(ubdmsetup info mp | sed -n 's/^State: *//p')" ACTIVE "$r: state after the interrupted suspend"
  dd_running "$a" || die "$r: A ended before its delay was over ($(cat "$TEST_TMP/a-$r.err"))"
  if [ "$offline" = yes ]; then
    path_offline "$P1"
    log "$r: $P1 offline: A comes back from dm-delay with EIO"
  fi
  expect_done "$a" $((DELAY_MS / 1000 + 5)) "$r: A"
  expect_done "$b" $((2 * DELAY_MS / 1000 + 5)) "$r: B"
  log "$r: A: status $(dd_status "a-$r") $(tr '\n' ' ' <"$TEST_TMP/a-$r.err")"
  log "$r: B: status $(dd_status "b-$r") $(tr '\n' ' ' <"$TEST_TMP/b-$r.err")"
}

# Round 1: the in-flight clone succeeds: it completes normally, and the I/O
# that arrived during the suspend is reissued (to the slow path) and succeeds.
interrupted_round ok no
expect_eq "$(dd_status a-ok)" 0 "ok: A (in flight, succeeded) exit status"
expect_eq "$(dd_status b-ok)" 0 "ok: B (arrived during the suspend, reissued) exit status"
expect_eq "$(dd if="$TEST_TMP/a-ok.bin" bs=1M count=1 status=none | md5sum | cut -d' ' -f1)" "$sum" "ok: A's data"
expect_eq "$(dd if="$TEST_TMP/b-ok.bin" bs=1M count=1 status=none | md5sum | cut -d' ' -f1)" "$sum" "ok: B's data"
expect_eq "$(mp_states mp)" "A A" "ok: path states"

# Round 2: the in-flight clone fails with a path error after the suspend was
# interrupted: it asks for a requeue, which the core refuses with EIO. B was
# reissued after the interruption, so its path error is an ordinary one:
# requeued, and served by the second group.
interrupted_round requeue yes
expect_ne "$(dd_status a-requeue)" 0 "requeue: A (in flight, requeue after the interrupted suspend) exit status"
expect_contains "$(cat "$TEST_TMP/a-requeue.err")" "Input/output error" "requeue: A's error"
expect_eq "$(dd_status b-requeue)" 0 "requeue: B (reissued, then a path error) exit status"
expect_eq "$(dd if="$TEST_TMP/b-requeue.bin" bs=1M count=1 status=none | md5sum | cut -d' ' -f1)" "$sum" "requeue: B's data"
expect_eq "$(mp_states mp)" "F A" "requeue: path states"

# Round 3, a real pushback: W (a write, held 1 s by dm-delay) and A (a read,
# held 5 s) are in flight on the slow path, whose disk then goes offline.
# During the suspend W comes back with EIO and asks for a requeue: the core
# parks it on the pushback list (it must not complete, nor go to P2, while
# the suspend waits). The suspend times out because of A; W is reissued,
# now on P2, and succeeds; A then fails with EIO as in round 2.
path_online "$P1"
run ubdmsetup message mp 0 reinstate_path "$slow"
run ubdmsetup message mp 0 switch_group 1
run dmsetup load slow --table "0 $SECTORS delay $P1 0 $DELAY_MS $P1 0 1000"
run dmsetup resume --noudevsync slow
new=$TEST_TMP/new.bin
dd if=/dev/urandom of="$new" bs=64k count=1 status=none
new_sum=$(md5sum <"$new" | cut -d' ' -f1)
p2_writes=$(writes_done "$P2")
dd_bg w-push "$MP_DEV" if="$new" of="$MP_DEV" bs=64k count=1 seek=400 oflag=direct conv=notrunc
w=$DD_PID
dd_bg a-push "$MP_DEV" if="$MP_DEV" of=/dev/null bs=1M count=1 skip=20 iflag=direct
a=$DD_PID
wait_until 5 sh -c '[ "$(dmsetup status slow | awk "{ print (\$4 > 0 && \$5 > 0) }")" = 1 ]' ||
  die "push: the write and the read are not both held by dm-delay (status: $(dmsetup status slow))"
path_offline "$P1"
t0=$(now_cs)
( rc=0; ubdmsetup suspend --noflush --timeout 2 mp >"$TEST_TMP/susp-push.out" 2>&1 || rc=$?
  echo "$rc" >"$TEST_TMP/susp-push.rc" ) &
s=$!
sleep 1.5
# W has come back from dm-delay with EIO by now: parked, not completed.
expect_eq "$(dmsetup status slow | awk '{ print $5 }')" 0 "push: writes still held by dm-delay after 1.5 s"
[ ! -e "$TEST_TMP/susp-push.rc" ] || die "push: the suspend ended within 1.5 s"
dd_running "$w" || die "push: W completed during the noflush suspend ($(dd_status w-push): $(cat "$TEST_TMP/w-push.err"))"
# (No ubdmsetup here: it waits while the suspend is in progress. The disk's
# own counters say whether anything reached P2.)
expect_eq "$(writes_done "$P2")" "$p2_writes" "push: writes that reached $P2 during the noflush suspend"
wait "$s" || true
t1=$(now_cs)
log "push: suspend returned after $(((t1 - t0) * 10)) ms: status $(cat "$TEST_TMP/susp-push.rc"): $(cat "$TEST_TMP/susp-push.out")"
expect_ne "$(cat "$TEST_TMP/susp-push.rc")" 0 "push: suspend --noflush --timeout 2 exit status"
expect_eq "$(ubdmsetup info mp | sed -n 's/^State: *//p')" ACTIVE "push: state after the interrupted suspend"
expect_done "$w" 5 "push: W after the interrupted suspend"
expect_eq "$(dd_status w-push)" 0 "push: W (pushed back, reissued) exit status ($(cat "$TEST_TMP/w-push.err"))"
expect_eq "$(dd if="$P2" bs=64k count=1 skip=400 iflag=direct status=none | md5sum | cut -d' ' -f1)" "$new_sum" \
  "push: W's data on the LUN"
[ "$(writes_done "$P2")" -gt "$p2_writes" ] || die "push: W did not go to $P2 after the interrupted suspend"
expect_done "$a" $((DELAY_MS / 1000 + 5)) "push: A"
expect_ne "$(dd_status a-push)" 0 "push: A (in flight, requeue after the interrupted suspend) exit status"
expect_contains "$(cat "$TEST_TMP/a-push.err")" "Input/output error" "push: A's error"
expect_eq "$(mp_states mp)" "F A" "push: path states"

# Still usable, through P2.
expect_eq "$(read_md5 "$MP_DEV" 20 1)" "$sum" "read after the interrupted suspends"
expect_eq "$(ubdmsetup info mp | sed -n 's/^State: *//p')" ACTIVE "final state"

# Last (so that it does not hide the rest): while a suspend waits for stuck
# I/O, the device can still be looked at, as with dm, whose status and info
# ioctls do not wait for a suspend in progress. Without that, `ubdmsetup
# paths` cannot show why a suspend hangs (with no --timeout: forever).
path_online "$P1"
run ubdmsetup message mp 0 reinstate_path "$slow"
run ubdmsetup message mp 0 switch_group 1
run dmsetup load slow --table "0 $SECTORS delay $P1 0 $DELAY_MS"
run dmsetup resume --noudevsync slow
dd_bg a-look "$MP_DEV" if="$MP_DEV" of=/dev/null bs=1M count=1 skip=20 iflag=direct
a=$DD_PID
wait_until 5 sh -c '[ "$(dmsetup status slow | awk "{ print \$4 }")" -ge 1 ]' ||
  die "look: the read is not held by dm-delay (status: $(dmsetup status slow))"
( ubdmsetup suspend --noflush --timeout 3 mp >/dev/null 2>&1 || true; echo over >"$TEST_TMP/susp-look.rc" ) &
s=$!
sleep 0.5
# The three at once, each timed.
for verb in info status paths; do
  ( t0=$(now_cs); ubdmsetup "$verb" mp >/dev/null 2>&1 || true; t1=$(now_cs)
    susp=running; [ ! -e "$TEST_TMP/susp-look.rc" ] || susp=over
    echo "$(((t1 - t0) * 10)) $susp" >"$TEST_TMP/look-$verb" ) &
done
wait "$s" || true
wait_until 10 sh -c "[ -e '$TEST_TMP/look-info' ] && [ -e '$TEST_TMP/look-status' ] && [ -e '$TEST_TMP/look-paths' ]" ||
  die "look: ubdmsetup info/status/paths did not return"
expect_done "$a" $((DELAY_MS / 1000 + 5)) "look: A"
slow_verbs=''
for verb in info status paths; do
  read -r ms when <"$TEST_TMP/look-$verb"
  log "look: ubdmsetup $verb during the suspend took $ms ms (the suspend was $when when it returned)"
  [ "$ms" -lt 1000 ] || slow_verbs="$slow_verbs $verb (${ms} ms)"
done
[ -z "$slow_verbs" ] || die "ubdmsetup waited for the suspend to end before answering:$slow_verbs"
