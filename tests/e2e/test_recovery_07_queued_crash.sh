#!/bin/sh
# shellcheck shell=dash
# A crash with multipath I/O queued for lack of a path (queue_if_no_path,
# both paths offline, a read and a write waiting): after kill -9 and a new
# ubdmd the I/O stays queued (no error), the device still queues (status,
# paths F F); when a path returns the checker reinstates it and the I/O
# completes without error, with the right data.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/mpath_lib.sh
. "$(dirname "$0")/mpath_lib.sh"
set -eu
mp_start

mp_create mp "$(mp_table "queue_if_no_path path_check_interval 1" round-robin)"
mp_queue_read 4
mp_queue_write 160
rd=$RD wr=$WR
expect_blocked "$rd" 2 "read with no path"
dd_running "$wr" || die "the write with no path ended: $(cat "$TEST_TMP/wr.err")"
expect_eq "$(mp_states mp)" "F F" "path states while queueing"
ident=$(dev_ident mp)

kill_ubdmd
expect_kept "after kill -9" mp
expect_blocked "$rd" 1 "queued read with no daemon"
start_ubdmd
expect_adopted mp
expect_ident mp "$ident"
expect_blocked "$rd" 3 "queued read after adoption (still no path)"
dd_running "$wr" || die "the queued write ended after adoption: $(cat "$TEST_TMP/wr.err")"
wait_states mp "F F" 10
expect_eq "$(mp_dev_field mp queue_if_no_path)" true "queue_if_no_path after adoption"
expect_eq "$(mp_dev_field mp valid_paths)" 0 "valid paths after adoption"
expect_match "$(ubdmsetup status mp)" "^0 $SECTORS multipath 2 [0-9]+ 0 0 1 1 " "status after adoption"
expect_eq "$(dev_state mp)" ACTIVE "device state after adoption"

path_online "$P2"
mp_queued_done "$P2" 160 "after $P2 came back"
wait_states mp "F A" 10
expect_ident mp "$ident" "at the end"
