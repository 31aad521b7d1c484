#!/bin/sh
# shellcheck shell=dash
# Noflush suspend without recovery: I/O queued with no path is pushed back
# by `suspend --noflush`; a resume with no new table and no path back sends
# it back to waiting in the target (still blocked, no error, device ACTIVE);
# it completes once a path returns (reinstated by the checker).
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/mpath_lib.sh
. "$(dirname "$0")/mpath_lib.sh"
set -eu
mp_start

table=$(mp_table "queue_if_no_path path_check_interval 1" round-robin)
mp_create mp "$table"
mp_queue_read 12
sum=$SUM rd=$RD
expect_blocked "$rd" 2 "read with no path"

run timeout 20 ubdmsetup suspend --noflush mp || die "suspend --noflush failed with I/O queued and no path"
expect_eq "$(ubdmsetup info mp | sed -n 's/^State: *//p')" SUSPENDED "state after suspend --noflush"
dd_running "$rd" || die "the queued read ended at the noflush suspend: $(cat "$TEST_TMP/rd.err")"
sleep 1
run ubdmsetup resume mp
expect_eq "$(ubdmsetup info mp | sed -n 's/^State: *//p')" ACTIVE "state after resume"
# Back to waiting in the target: no error, still queued.
expect_blocked "$rd" 3 "read after a resume with no path"
expect_eq "$(mp_states mp)" "F F" "path states after resume"
expect_eq "$(mp_dev_field mp queue_if_no_path)" true "queue_if_no_path after resume"
expect_eq "$(ubdmsetup table mp)" "$(echo "$table" | sed "s|$P1|$M1|; s|$P2|$M2|") " "table after resume"

# Now a path comes back.
path_online "$P1"
expect_done "$rd" 10 "queued read after $P1 came back"
expect_eq "$(dd_status rd)" 0 "queued read exit status ($(cat "$TEST_TMP/rd.err"))"
expect_eq "$(md5sum <"$TEST_TMP/read.bin" | cut -d' ' -f1)" "$sum" "data of the queued read"
expect_eq "$(mp_states mp)" "A F" "path states after $P1 came back"
