#!/bin/sh
# shellcheck shell=dash
# kill -9 of ubdmd under fio with crc32c verify on a multipath device over
# the two scsi_debug paths, and one path fails while no daemon runs: the
# next ubdmd adopts the device, the reissued I/O that meets the dead path is
# retried on the other one (0 I/O errors, 0 verify failures), the checker
# marks the path failed and reinstates it when it comes back; same node,
# table and options as before.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/mpath_lib.sh
. "$(dirname "$0")/mpath_lib.sh"
set -eu
require_ubdm
mp_setup
# 20 ms per SCSI command (5 jiffies at HZ=250): I/O is in flight at the kill.
sd_delay 5
on_exit sd_delay 1
mp_start
on_exit path_online "$P1"

table=$(mp_table "path_check_interval 1" round-robin)
# shellcheck disable=SC2034 # read by mp_create
MP_QUEUES=2
mp_create mp "$table"
ident=$(dev_ident mp)
expect_eq "$(mp_states mp)" "A A" "path states before"

fio_verify_bg mp "$MP_DEV" 6M
fpid=$FIO_PID
wait_io_progress "$MP_DEV" 100 30
wait_inflight "$MP_DEV" 4

kill_ubdmd
expect_kept "after kill -9" mp
pid_alive "$fpid" || die "fio ended before the crash: the test proves nothing"
log "the path $P1 fails while no daemon runs"
path_offline "$P1"
sleep 0.3
c=$(io_count "$MP_DEV")
sleep 1
expect_eq "$(io_count "$MP_DEV")" "$c" "I/O completed with no daemon"
pid_alive "$fpid" || die "fio ended while no daemon ran: $(cat "$TEST_TMP/fio-mp.out")"

start_ubdmd
expect_adopted mp
wait_io_progress "$MP_DEV" 20
wait_states mp "F A" 15
expect_eq "$(mp_dev_field mp valid_paths)" 1 "valid paths with $P1 offline"
log "status with $P1 offline: $(ubdmsetup status mp)"
path_online "$P1"
wait_states mp "A A" 15
fio_verify_wait mp "$fpid"

expect_ident mp "$ident"
expect_match "$(ubdmsetup status mp)" "^0 $SECTORS multipath 2 0 0 0 1 1 A " "status after adoption"
expect_eq "$(mp_dev_field mp valid_paths)" 2 "valid paths at the end"
# Offline during the gap, the path could not be opened at adoption: it came
# back by a reload of the same table once it opened again (a path that was
# only failed comes back by the checker's reinstate).
grep -E "Reinstating path $M1|table reloaded: 1 path\(s\) .* are back" "$UBDMD_LOG" ||
  die "ubdmd did not bring $M1 back (no reinstate, no reload)"
