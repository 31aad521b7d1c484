#!/bin/sh
# Suspend and resume from outside: a noflush suspend stalls running I/O
# without errors and resume lets it continue; a loaded table that maps
# another offset takes effect at resume; `wait` returns when the event
# number moves.
. "$(dirname "$0")/lib.sh"
set -eu
start_ubdmd
on_exit stop_ubdmd
ubdmsetup create s0 --table "0 262144 linear /dev/ram0 0"
on_exit ubdmsetup remove --force s0
blk=$(readlink /dev/ubdm/s0)
stat_file=/sys/block/${blk#/dev/}/stat
completed() { awk '{ print $1 + $5 }' "$stat_file"; }   # reads + writes completed

fio_bg /dev/ubdm/s0 --rw=randrw --size=64M --time_based --runtime=25
sleep 3
before=$(completed)
[ "$before" -gt 0 ] || die "fio made no progress before the suspend"

ubdmsetup suspend --noflush s0
expect_contains "$(ubdmsetup info s0)" "State:             SUSPENDED" "state after suspend"
a=$(completed)
sleep 2
b=$(completed)
expect_eq "$b" "$a" "I/O completed while suspended"
kill -0 "$FIO_PID" 2>/dev/null || die "fio ended during the suspend"

ubdmsetup resume s0
expect_contains "$(ubdmsetup info s0)" "State:             ACTIVE" "state after resume"
sleep 2
c=$(completed)
[ "$c" -gt "$b" ] || die "I/O did not continue after resume ($b -> $c)"
fio_wait

# A new table mapping another offset: reads return the other data.
here=$(write_random /dev/ram0 0 1)
there=$(write_random /dev/ram0 64 1)
expect_eq "$(read_md5 /dev/ubdm/s0 0 1)" "$here" "data before the swap"
event=$(ubdmsetup info s0 | sed -n 's/^Event number: *//p')

ubdmsetup wait s0 "$event" >"$TEST_TMP/wait.out" 2>&1 &
waiter=$!
sleep 1
kill -0 "$waiter" 2>/dev/null || die "wait returned before the event number moved"

ubdmsetup load s0 --table "0 262144 linear /dev/ram0 131072"
expect_contains "$(ubdmsetup info s0)" "Tables present:    LIVE & INACTIVE" "tables after load"
expect_eq "$(read_md5 /dev/ubdm/s0 0 1)" "$here" "a loaded table is not live before resume"
ubdmsetup suspend s0
ubdmsetup resume s0
expect_eq "$(read_md5 /dev/ubdm/s0 0 1)" "$there" "data after the swap"
expect_eq "$(ubdmsetup table s0 | awk '{ print $5 }')" 131072 "live table offset"

i=0
while kill -0 "$waiter" 2>/dev/null; do
  i=$((i + 1))
  [ $i -lt 50 ] || die "wait did not return after the table swap"
  sleep 0.1
done
wait "$waiter" || die "wait failed: $(cat "$TEST_TMP/wait.out")"
new=$(ubdmsetup info s0 | sed -n 's/^Event number: *//p')
[ "$new" -gt "$event" ] || die "event number did not move ($event -> $new)"
