#!/bin/sh
# shellcheck shell=dash
# The seed's noflush scenario: I/O is queued in the target with no path;
# `suspend --noflush` pushes it back to the core (the suspend completes with
# the I/O still pending, no error); a table with a NEW path (a third
# scsi_debug host: another path to the same LUN) is loaded and the device
# resumed; the pushed-back I/O is reissued against the new table and
# completes successfully, while the old paths stay offline.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/mpath_lib.sh
. "$(dirname "$0")/mpath_lib.sh"
set -eu
mp_start

mp_create mp "$(mp_table "queue_if_no_path path_check_interval 1" round-robin)"
mp_queue_read 8
mp_queue_write 200
sum=$SUM new_sum=$NEW_SUM rd=$RD wr=$WR
expect_blocked "$rd" 2 "read with no path"
dd_running "$wr" || die "write with no path ended: $(cat "$TEST_TMP/wr.err")"
expect_eq "$(mp_states mp)" "F F" "path states while queueing"

# noflush suspend: the queued I/O is pushed back, the suspend completes.
run timeout 20 ubdmsetup suspend --noflush mp || die "suspend --noflush failed with I/O queued and no path"
expect_eq "$(ubdmsetup info mp | sed -n 's/^State: *//p')" SUSPENDED "state after suspend --noflush"
dd_running "$rd" || die "the queued read ended at the noflush suspend: $(cat "$TEST_TMP/rd.err")"
dd_running "$wr" || die "the queued write ended at the noflush suspend: $(cat "$TEST_TMP/wr.err")"

# A new path: a third scsi_debug host, the same LUN.
P3=$(scsi_debug_add_host)
on_exit scsi_debug_remove_host
log "new path $P3 ($(majmin "$P3"))"
# remove the device (which holds the new path open) before the host goes:
# on_exit runs last-registered first.
on_exit mp_remove mp
run ubdmsetup load mp --table "0 $SECTORS multipath 1 queue_if_no_path 0 1 1 round-robin 0 1 1 $P3 1"
expect_contains "$(ubdmsetup info mp)" "Tables present:    LIVE & INACTIVE" "tables after load"
dd_running "$rd" || die "the queued read ended at load"
run ubdmsetup resume mp

expect_done "$rd" 10 "pushed-back read after resume with the new path"
expect_done "$wr" 10 "pushed-back write after resume with the new path"
expect_eq "$(dd_status rd)" 0 "pushed-back read exit status ($(cat "$TEST_TMP/rd.err"))"
expect_eq "$(dd_status wr)" 0 "pushed-back write exit status ($(cat "$TEST_TMP/wr.err"))"
expect_eq "$(md5sum <"$TEST_TMP/read.bin" | cut -d' ' -f1)" "$sum" "data of the pushed-back read"
expect_eq "$(dd if="$P3" bs=64k count=1 skip=200 iflag=direct status=none | md5sum | cut -d' ' -f1)" "$new_sum" \
  "the pushed-back write reached the LUN"
expect_eq "$(ubdmsetup info mp | sed -n 's/^State: *//p')" ACTIVE "state after resume"
expect_eq "$(ubdmsetup table mp)" "0 $SECTORS multipath 1 queue_if_no_path 0 1 1 round-robin 0 1 1 $(majmin "$P3") 1 " \
  "live table after resume"
expect_eq "$(mp_states mp)" "A" "path state after resume"
expect_ne "$(mp_path_field mp "$P3" ios)" 0 "I/O sent on the new path"
# The old paths are still offline: everything went through the new one.
expect_eq "$(path_state "$P1")" offline "$P1 state"
