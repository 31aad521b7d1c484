#!/bin/sh
# shellcheck shell=dash
# Stale state at start, each resolved with a clear log line: a state file
# whose ublk device is gone is dropped ("no longer exists"); a ubdm-made
# ublk device with no state file is removed ("no state"), and a read that
# was waiting on it ends instead of waiting forever. A healthy device next
# to them is adopted as usual.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/mpath_lib.sh
. "$(dirname "$0")/mpath_lib.sh"
set -eu
require_ubdm
start_ubdmd
on_exit stop_ubdmd
run ubdmsetup create keep0 --table "0 65536 linear /dev/ram0 0"
run ubdmsetup create st0 --table "0 8192 zero"
run ubdmsetup create ns0 --table "0 65536 linear /dev/ram0 65536"
wait_for /dev/ubdm/ns0 5
keep_ident=$(dev_ident keep0)
ns_id=$(ublk_id ns0)
keep_id=$(ublk_id keep0)

# A state file for a device that no longer exists: st0's, put back after
# st0 was removed.
[ -s "$UBDM_STATE_DIR/st0.json" ] || die "no state file for st0 in $UBDM_STATE_DIR"
cp "$UBDM_STATE_DIR/st0.json" "$TEST_TMP/st0.json"
run ubdmsetup remove st0
[ ! -e "$UBDM_STATE_DIR/st0.json" ] || die "removing st0 left its state file"
kill_ubdmd
expect_kept "after kill -9" keep0 ns0
cp "$TEST_TMP/st0.json" "$UBDM_STATE_DIR/st0.json"
# A ubdm device whose state file is lost, with a read waiting on it.
rm "$UBDM_STATE_DIR/ns0.json"
dd_bg rd /dev/ubdm/ns0 if=/dev/ubdm/ns0 of=/dev/null bs=4k count=1 iflag=direct
rd=$DD_PID
expect_blocked "$rd" 1 "a read with no daemon"

start_ubdmd
expect_adopted keep0
expect_logged "the state file of the vanished st0" "no longer exists" st0
expect_logged "the ublk device of ns0 without state" "no state" "ns0|ublk[bc]? ?$ns_id([^0-9]|\$)|(device|id)[ #]$ns_id([^0-9]|\$)"
expect_eq "$(ubdmsetup ls | cut -f1)" keep0 "devices after start"
[ ! -e "$UBDM_STATE_DIR/st0.json" ] || die "the stale state file st0.json is left"
wait_gone "/dev/ublkb$ns_id" 10
wait_gone "/dev/ublkc$ns_id" 10
expect_eq "$(ublk_ids)" "$keep_id" "ublk devices after start"
expect_done "$rd" 15 "the read waiting on the device without state"
log "that read ended with status $(dd_status rd)"
expect_eq "$(state_files)" keep0.json "state files after start"
expect_ident keep0 "$keep_ident"
fio_verify /dev/ubdm/keep0 2M --iodepth=8
