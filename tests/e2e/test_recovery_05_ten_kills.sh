#!/bin/sh
# shellcheck shell=dash
# Ten kill -9s of ubdmd in a row under fio with crc32c verify (a linear
# device over a slow disk, I/O in flight at every kill): each new ubdmd
# adopts the device and I/O flows again before the next kill; fio ends with
# 0 I/O errors and 0 verify failures; node, table and options never change.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
set -eu
require_ubdm
dm_delay slow_a 0 65536 10
start_ubdmd
on_exit stop_ubdmd

run ubdmsetup create k --queues 2 --depth 32 --table "0 65536 linear /dev/mapper/slow_a 0"
wait_for /dev/ubdm/k 5
ident=$(dev_ident k)
status=$(ubdmsetup status k)

# 10 ms per I/O at iodepth 8: 6144 writes and their verify reads take some
# 15 s; should fio end early, the next kills run under a new one.
run_no=1
fio_verify_bg "k$run_no" /dev/ubdm/k 24M
fpid=$FIO_PID
i=1
while [ $i -le 10 ]; do
  if ! pid_alive "$fpid"; then
    fio_verify_wait "k$run_no" "$fpid"
    run_no=$((run_no + 1))
    fio_verify_bg "k$run_no" /dev/ubdm/k 24M
    fpid=$FIO_PID
  fi
  wait_io_progress /dev/ubdm/k 20 30
  wait_inflight /dev/ubdm/k 2
  log "kill $i of 10"
  kill_ubdmd
  expect_kept "after kill -9" k
  # fio might have finished just before the kill: then it does not count.
  if pid_alive "$fpid"; then i=$((i + 1)); else log "fio k$run_no ended before this kill: not counted"; fi
  start_ubdmd
  expect_adopted k
done
wait_io_progress /dev/ubdm/k 20 30
fio_verify_wait "k$run_no" "$fpid"
log "$run_no fio run(s) over the ten kills"
expect_ident k "$ident" "after ten kill -9s"
expect_eq "$(ubdmsetup status k)" "$status" "status after ten kill -9s"
expect_eq "$(state_files)" "k.json" "state files after ten kill -9s"
