#!/bin/sh
# SIGTERM with --on-stop remove while I/O is queued with no path: ubdmd stops
# queueing (as multipathd's queue_without_daemon no), the queued I/O fails
# with an error instead of hanging, and the daemon removes the device and
# exits promptly. (The default, --on-stop keep, leaves the device and the
# I/O queued for the next ubdmd: test_recovery_07.)
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mpath_lib.sh"
set -eu
require_ubdm
mp_setup
start_ubdmd --on-stop remove
on_exit stop_ubdmd
on_exit path_online "$P2"
on_exit path_online "$P1"
ubdmsetup create q0 --queues 1 --table "$(mp_table "queue_if_no_path path_check_interval 1" "round-robin")"
wait_for /dev/ubdm/q0 5
blk=$(readlink -f /dev/ubdm/q0)

path_offline "$P1"
path_offline "$P2"
dd_bg queued "$blk" if="$blk" of=/dev/null bs=4k count=1 iflag=direct
expect_blocked "$DD_PID" 3 "read with no path and queue_if_no_path"

t0=$(date +%s)
term_ubdmd 30
took=$(($(date +%s) - t0))
log "ubdmd stopped in ${took}s"
expect_done "$DD_PID" 10 "queued read after SIGTERM"
[ "$(dd_status queued)" != 0 ] || die "the queued read succeeded with no path"
[ ! -e "$blk" ] || die "$blk still exists after SIGTERM"
wait_no_ublk "after SIGTERM with --on-stop remove"
