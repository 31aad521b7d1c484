#!/bin/sh
# Failure paths: remove while fio runs is a clean error (and --force a clean
# end, not a hang); every verb given bad input fails with one clear line and
# changes nothing.
. "$(dirname "$0")/lib.sh"
set -eu
start_ubdmd
on_exit stop_ubdmd

# --- remove while in use ---
ubdmsetup create busy --table "0 262144 linear /dev/ram0 0"
fio_bg /dev/ubdm/busy --rw=randread --size=64M --time_based --runtime=60
sleep 2
expect_fail_with '^ubdmsetup: remove busy: device is in use' ubdmsetup remove busy
expect_contains "$(ubdmsetup info busy)" "State:             ACTIVE" "device survives a refused remove"
t0=$(date +%s)
timeout 60 ubdmsetup remove --force busy || die "remove --force failed"
rc=0
wait "$FIO_PID" || rc=$?
[ $(($(date +%s) - t0)) -lt 60 ] || die "forced remove took too long"
log "fio after forced remove: exit $rc"
[ ! -e /dev/ubdm/busy ] || die "/dev/ubdm/busy still exists"
expect_eq "$(ubdmsetup ls)" "No devices found" "ls after forced remove"

# --- no such device, for every verb that names one ---
for verb in table deps clear resume suspend remove; do
  expect_fail_with "^ubdmsetup: $verb nosuch: no such device\$" ubdmsetup "$verb" nosuch
done
# info and status say what dmsetup says (scripts test for it).
for verb in info status; do
  expect_fail_with '^Device does not exist\.$' ubdmsetup "$verb" nosuch
  expect_eq "$EXPECT_RC" 1 "$verb nosuch: exit status"
done
expect_fail_with '^ubdmsetup: message nosuch: no such device$' ubdmsetup message nosuch 0 hello
expect_fail_with '^ubdmsetup: load nosuch: ' ubdmsetup load nosuch --table "0 8 zero"

# --- bad tables leave nothing behind ---
expect_fail_with '^ubdmsetup: create bad: table line 1: ' ubdmsetup create bad --table "0 100 linear"
expect_fail_with 'cannot open /dev/nope' ubdmsetup create bad --table "0 100 linear /dev/nope 0"
expect_fail_with 'gap in table' ubdmsetup create bad --table "0 100 zero;200 100 zero"
expect_fail_with 'unknown target type' ubdmsetup create bad --table "0 100 frobnicate"
expect_fail_with 'too small' ubdmsetup create bad --table "0 1048576 linear /dev/ram0 0"
expect_eq "$(ubdmsetup ls)" "No devices found" "no half-made device"
for d in /dev/ublkb*; do
  [ ! -e "$d" ] || die "$d left behind by a failed create"
done

# --- wrong states ---
ubdmsetup create g0 --table "0 262144 linear /dev/ram0 0"
on_exit ubdmsetup remove --force g0
table=$(ubdmsetup table g0)
ubdmsetup suspend g0
expect_fail_with '^ubdmsetup: suspend g0: device is already suspended$' ubdmsetup suspend g0
expect_contains "$(ubdmsetup info g0)" "State:             SUSPENDED" "state after double suspend"
ubdmsetup resume g0
expect_fail_with '^ubdmsetup: resume g0: device is not suspended' ubdmsetup resume g0
expect_contains "$(ubdmsetup info g0)" "State:             ACTIVE" "state after double resume"

# --- a failed load leaves the live table and the inactive slot alone ---
expect_fail_with 'table line 1' ubdmsetup load g0 --table "0 262144 linear /dev/ram0"
if ublk_has_feature 10; then
  log "this kernel resizes live ublk devices: a load of another size is test_ublk_12's"
else
  expect_fail_with 'cannot resize a live ublk device' ubdmsetup load g0 --table "0 1024 linear /dev/ram0 0"
fi
expect_eq "$(ubdmsetup table g0)" "$table" "live table after failed loads"
expect_contains "$(ubdmsetup info g0)" "Tables present:    LIVE" "no inactive table after failed loads"
case $(ubdmsetup info g0) in *INACTIVE*) die "a failed load left an inactive table" ;; esac
expect_fail_with 'does not accept messages' ubdmsetup message g0 0 hello
expect_fail_with '^ubdmsetup: create g0: device already exists$' ubdmsetup create g0 --table "0 8 zero"
sum=$(write_random /dev/ubdm/g0 0 1)
expect_eq "$(read_md5 /dev/ubdm/g0 0 1)" "$sum" "device still works"
