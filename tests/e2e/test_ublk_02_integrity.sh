#!/bin/sh
# Data integrity through ublk: two devices at once (linear over brd and over
# scsi_debug), two queues each; fio random writes of mixed 4k/64k blocks with
# crc32c verify, a separate read-verify pass, then a 1M sequential pass. The
# brd device's queue threads poll (the default window), the scsi_debug
# device's do not (--poll-usec 0), so both ways of waiting carry data.
. "$(dirname "$0")/lib.sh"
set -eu
start_ubdmd
on_exit stop_ubdmd
set -- $(scsi_debug_paths)
sd=$1

ubdmsetup create ram --queues 2 --table "0 262144 linear /dev/ram0 0"
on_exit ubdmsetup remove ram
# The second half of the scsi_debug LUN, so the offset arithmetic is exercised.
ubdmsetup create sd --queues 2 --poll-usec 0 --table "0 262144 linear $sd 262144"
on_exit ubdmsetup remove sd
# The JSON is printed one key per line.
poll_of() { ubdmsetup --json info "$1" | sed -n 's/^ *"poll_usec": \([0-9]*\),\{0,1\}$/\1/p'; }
expect_eq "$(poll_of ram) $(poll_of sd)" "50 0" "poll windows (ram, sd)"

both="--name=ram --filename=/dev/ubdm/ram --name=sd --filename=/dev/ubdm/sd"
fio_both() { # PHASE FIO-GLOBAL-ARGS...
  local phase=$1
  shift
  # Global options first: they apply to both jobs, which run in parallel.
  # shellcheck disable=SC2086
  if ! fio --ioengine=io_uring --direct=1 --iodepth=32 --size=48M --verify=crc32c --verify_fatal=1 \
    --randseed=1234 "$@" $both --output="$TEST_TMP/fio-$phase.out"; then
    cat "$TEST_TMP/fio-$phase.out"
    die "fio $phase failed"
  fi
  expect_eq "$(grep -c 'err= 0' "$TEST_TMP/fio-$phase.out")" 2 "jobs without errors in $phase"
  log "fio $phase: both devices clean"
}

fio_both write --rw=randwrite --bssplit=4k/50:64k/50 --do_verify=1
# Verify again from a cold start: same seed and layout, read and check only.
fio_both reverify --rw=randwrite --bssplit=4k/50:64k/50 --verify_only=1
fio_both sequential --rw=write --bs=1M --do_verify=1

# What fio wrote through the mapping sits at the offset on the LUN.
expect_eq "$(read_md5 "$sd" 128 1)" "$(read_md5 /dev/ubdm/sd 0 1)" "linear offset on scsi_debug"
