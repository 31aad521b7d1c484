#!/bin/sh
# A device's life through ubdmd: create a linear map over /dev/ram0, see it
# as /dev/ublkbN (and /dev/ubdm/NAME) with the right size and block size,
# read dmsetup-style info/table/status, do I/O, remove it, and stop ubdmd.
. "$(dirname "$0")/lib.sh"
set -eu
require_ubdm
start_ubdmd
on_exit stop_ubdmd

ubdmsetup create t0 --queues 2 --table "0 262144 linear /dev/ram0 0"
[ -L /dev/ubdm/t0 ] || die "/dev/ubdm/t0 was not created"
blk=$(readlink /dev/ubdm/t0)
expect_match "$blk" '^/dev/ublkb[0-9]+$' "link target"
[ -b "$blk" ] || die "$blk is not a block device"

expect_eq "$(blockdev --getsize64 "$blk")" $((262144 * 512)) "device size in bytes"
expect_eq "$(blockdev --getss "$blk")" 512 "logical block size"

info=$(ubdmsetup info t0)
log "$info"
expect_contains "$info" "Name:              t0" "info name"
expect_contains "$info" "State:             ACTIVE" "info state"
expect_contains "$info" "Tables present:    LIVE" "info tables"
expect_contains "$info" "Number of targets: 1" "info targets"
expect_contains "$info" "Block device:      $blk" "info block device"
ram=$(stat -c '%t:%T' /dev/ram0)
ram_majmin=$((0x${ram%%:*})):$((0x${ram##*:}))
expect_eq "$(ubdmsetup table t0)" "0 262144 linear $ram_majmin 0" "table line"
expect_eq "$(ubdmsetup status t0)" "0 262144 linear " "status line"
expect_contains "$(ubdmsetup ls)" "t0" "ls"
expect_contains "$(ubdmsetup deps t0)" "1 dependencies" "deps"

sum=$(write_random "$blk" 8 16)
expect_eq "$(read_md5 /dev/ram0 8 16)" "$sum" "data written through ublk lands on ram0"
expect_eq "$(read_md5 "$blk" 8 16)" "$sum" "and reads back through ublk"

ubdmsetup remove t0
wait_gone "$blk" 5 || die "$blk still exists after remove"
[ ! -e /dev/ubdm/t0 ] || die "/dev/ubdm/t0 still exists after remove"
expect_eq "$(ubdmsetup ls)" "No devices found" "ls after remove"
