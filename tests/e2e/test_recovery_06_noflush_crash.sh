#!/bin/sh
# shellcheck shell=dash
# A crash while noflush-suspended with pushed-back I/O: multipath with
# queue_if_no_path, every path offline, a read and a write queued, then
# `suspend --noflush` (the I/O is pushed back) and kill -9. The next ubdmd
# adopts the device still SUSPENDED, with the I/O still waiting (no error);
# resume sends it back to wait in the target (no path yet); when a path
# returns it completes without error and with the right data.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/mpath_lib.sh
. "$(dirname "$0")/mpath_lib.sh"
set -eu
mp_start

mp_create mp "$(mp_table "queue_if_no_path path_check_interval 1" round-robin)"
mp_queue_read 12
mp_queue_write 160
rd=$RD wr=$WR
expect_blocked "$rd" 2 "read with no path"
dd_running "$wr" || die "the write with no path ended: $(cat "$TEST_TMP/wr.err")"
run timeout 20 ubdmsetup suspend --noflush mp || die "suspend --noflush failed with I/O queued and no path"
expect_eq "$(dev_state mp)" SUSPENDED "state after suspend --noflush"
ident=$(dev_ident mp)

kill_ubdmd
expect_kept "after kill -9" mp
expect_blocked "$rd" 1 "read with no daemon"
dd_running "$wr" || die "the write ended with no daemon: $(cat "$TEST_TMP/wr.err")"

start_ubdmd
expect_adopted mp
expect_ident mp "$ident"
expect_eq "$(dev_state mp)" SUSPENDED "state after adoption"
expect_blocked "$rd" 2 "read while the adopted device is suspended"
dd_running "$wr" || die "the write ended while the adopted device was suspended: $(cat "$TEST_TMP/wr.err")"

run ubdmsetup resume mp
expect_eq "$(dev_state mp)" ACTIVE "state after resume"
expect_blocked "$rd" 2 "read after resume with no path"
dd_running "$wr" || die "the write ended after resume with no path: $(cat "$TEST_TMP/wr.err")"
expect_eq "$(mp_states mp)" "F F" "path states after resume"
expect_eq "$(mp_dev_field mp queue_if_no_path)" true "queue_if_no_path after adoption"

path_online "$P1"
mp_queued_done "$P1" 160 "after $P1 came back"
wait_states mp "A F" 10
