#!/bin/sh
# shellcheck shell=dash
# No queueing: with every path offline and no queue_if_no_path, I/O on a
# ubdm multipath device fails with EIO at once (both paths are failed by
# the I/O's own errors, nothing waits), as the kernel's DM_MAPIO_KILL /
# DM_ENDIO_DONE path does. Once a path is back the checker reinstates it and
# I/O works again.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/mpath_lib.sh
. "$(dirname "$0")/mpath_lib.sh"
set -eu
mp_start

mp_create mp "$(mp_table "path_check_interval 1" round-robin)"
sum=$(write_random "$MP_DEV" 4 1)

# Both paths offline. The first read finds out through its own errors (the
# paths are still active in ubdm's view unless the checker was quicker);
# the write and the second read find both paths failed.
path_offline "$P1"
path_offline "$P2"
on_exit path_online "$P1"
on_exit path_online "$P2"
n=0
for op in read write read; do
  n=$((n + 1))
  t0=$(now_cs)
  if [ $op = read ]; then
    dd_bg "io$n" "$MP_DEV" if="$MP_DEV" of=/dev/null bs=4k count=1 skip=1024 iflag=direct
  else
    dd_bg "io$n" "$MP_DEV" if=/dev/zero of="$MP_DEV" bs=4k count=1 seek=2048 oflag=direct conv=notrunc
  fi
  expect_done "$DD_PID" 5 "$op $n with no path"
  t1=$(now_cs)
  expect_ne "$(dd_status "io$n")" 0 "dd $op $n exit status with no path"
  expect_contains "$(cat "$TEST_TMP/io$n.err")" "Input/output error" "dd $op $n error with no path"
  log "$op $n failed with EIO after $(((t1 - t0) * 10)) ms"
  [ $((t1 - t0)) -lt 300 ] || die "$op $n took $(((t1 - t0) * 10)) ms to fail; expected promptly"
  expect_eq "$(mp_states mp)" "F F" "path states after $op $n with no path"
done
expect_eq "$(mp_dev_field mp valid_paths)" 0 "valid paths"
expect_eq "$(mp_dev_field mp queue_if_no_path)" false "queue_if_no_path"
status=$(ubdmsetup status mp)
log "status: $status"
# INFO features: "2 <queue_io> <pg_init_count>": no path clears queue_io.
expect_match "$status" "^0 $SECTORS multipath 2 0 0 0 1 1 " "status with no path"
expect_eq "$(ubdmsetup info mp | sed -n 's/^State: *//p')" ACTIVE "device state"

# A path comes back: the checker (every 1 s) reinstates it, I/O works again.
path_online "$P2"
wait_states mp "F A" 5
expect_eq "$(mp_path_field mp "$P2" checker)" ready "checker state of $P2"
expect_eq "$(read_md5 "$MP_DEV" 4 1)" "$sum" "data read through the path that came back"
