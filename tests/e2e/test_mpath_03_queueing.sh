#!/bin/sh
# shellcheck shell=dash
# Queueing: with every path offline and queue_if_no_path, reads and writes
# wait inside the target (no error, however long); when one path comes back
# the built-in checker reinstates it (no reinstate_path message) and the
# waiting I/O completes without error, with the right data.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/mpath_lib.sh
. "$(dirname "$0")/mpath_lib.sh"
set -eu
mp_start

mp_create mp "$(mp_table "queue_if_no_path path_check_interval 1" round-robin)"
# A read and a write, both issued with no path.
mp_queue_read 4
mp_queue_write 160
rd=$RD wr=$WR
expect_blocked "$rd" 3 "read with no path (queue_if_no_path)"
dd_running "$wr" || die "write with no path (queue_if_no_path) ended: $(cat "$TEST_TMP/wr.err")"
expect_eq "$(mp_states mp)" "F F" "path states while queueing"
expect_eq "$(mp_dev_field mp valid_paths)" 0 "valid paths while queueing"
expect_eq "$(mp_dev_field mp queue_if_no_path)" true "queue_if_no_path while queueing"
status=$(ubdmsetup status mp)
log "status while queueing: $status"
expect_match "$status" "^0 $SECTORS multipath 2 0 0 0 1 1 " "status while queueing"
expect_eq "$(ubdmsetup info mp | sed -n 's/^State: *//p')" ACTIVE "device state while queueing"
for p in "$P1" "$P2"; do
  expect_eq "$(mp_path_field mp "$p" checker)" faulty "checker state of $p while offline"
done

# One path comes back. Nobody sends reinstate_path: the checker must.
t0=$(now_cs)
path_online "$P2"
mp_queued_done "$P2" 160 "after $P2 came back"
t1=$(now_cs)
log "queued I/O completed $(((t1 - t0) * 10)) ms after $P2 came back"
expect_eq "$(mp_states mp)" "F A" "path states after $P2 came back"
expect_eq "$(mp_path_field mp "$P2" checker)" ready "checker state of $P2"
expect_eq "$(mp_path_field mp "$P1" checker)" faulty "checker state of $P1 (still offline)"
# Nothing but the checker can have done it (no message was sent); its log line:
grep "Reinstating path $M2" "$UBDMD_LOG" || die "ubdmd did not log reinstating $M2"
