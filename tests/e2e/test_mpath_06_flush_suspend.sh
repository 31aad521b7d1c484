#!/bin/sh
# shellcheck shell=dash
# Flush suspend: I/O queued with no path fails with EIO when the device is
# suspended with flush, because a flush suspend turns queue_if_no_path off
# for its duration (saved, restored at resume): the kernel's rule
# (multipath_presuspend). The same steps run first on the kernel's
# dm-multipath, as the reference, then on ubdm. The table shows queueing off
# while suspended and on again after resume, in both.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/mpath_lib.sh
. "$(dirname "$0")/mpath_lib.sh"
set -eu
require_ubdm
mp_setup
on_exit path_online "$P1"
on_exit path_online "$P2"

_dd_ended() { ! dd_running "$1"; }

# flush_suspend_case KIND NAME DEV: KIND is kernel or ubdm.
flush_suspend_case() {
  local kind=$1 name=$2 dev=$3 rd t0 t1 table
  if [ "$kind" = kernel ]; then
    tool=dmsetup
  else
    tool=ubdmsetup
  fi
  sum=$(write_random "$dev" 16 1)
  path_offline "$P1"
  path_offline "$P2"
  dd_bg "rd-$kind" "$dev" if="$dev" of=/dev/null bs=1M count=1 skip=16 iflag=direct
  rd=$DD_PID
  expect_blocked "$rd" 2 "$kind: read with no path and queue_if_no_path"
  expect_eq "$(mpath_states "$($tool status "$name")")" "F F" "$kind: path states while queueing"

  t0=$(now_cs)
  if [ "$kind" = kernel ]; then
    run timeout 20 dmsetup suspend --noudevsync "$name" || die "kernel: dmsetup suspend failed"
  else
    run timeout 20 ubdmsetup suspend "$name" || die "ubdm: suspend failed"
  fi
  t1=$(now_cs)
  log "$kind: flush suspend took $(((t1 - t0) * 10)) ms"
  parked=''
  if [ "$kind" = kernel ] && ! wait_until 5 _dd_ended "$rd"; then
    # Seen on 7.3 now and then, never on 6.12: dm-mpath's presuspend still
    # turns queueing off (the code is unchanged), but a request that sits in
    # blk-mq's requeue list when dm stops the queue is never dispatched to
    # be failed, so the suspend completes around it and it waits for a path
    # (see docs/architecture.md, "Kernel versions"). ubdm keeps the rule.
    log "kernel: the queued read stayed parked across the flush suspend (the kernel's requeue-list race)"
    parked=$rd
  else
    expect_done "$rd" 5 "$kind: queued read at the flush suspend"
    expect_ne "$(dd_status "rd-$kind")" 0 "$kind: queued read exit status at the flush suspend"
    expect_contains "$(cat "$TEST_TMP/rd-$kind.err")" "Input/output error" "$kind: queued read error"
  fi
  expect_contains "$($tool info "$name")" "SUSPENDED" "$kind: state after the flush suspend"
  table=$($tool table "$name")
  log "$kind: table while suspended: $table"
  expect_match "$table" "^0 $SECTORS multipath [0-9]+ (path_check_interval 1 )?0 1 1 " \
    "$kind: queue_if_no_path is off while flush-suspended"

  if [ "$kind" = kernel ]; then
    run dmsetup resume --noudevsync "$name"
  else
    run ubdmsetup resume "$name"
  fi
  table=$($tool table "$name")
  log "$kind: table after resume: $table"
  expect_match "$table" "^0 $SECTORS multipath [0-9]+ queue_if_no_path " "$kind: queue_if_no_path is back after resume"

  # Queueing again: a new read waits, and completes when a path is back.
  dd_bg "rd2-$kind" "$dev" if="$dev" of="$TEST_TMP/read-$kind.bin" bs=1M count=1 skip=16 iflag=direct
  rd=$DD_PID
  expect_blocked "$rd" 2 "$kind: read with no path after resume"
  path_online "$P1"
  path_online "$P2"
  if [ "$kind" = kernel ]; then
    # No checker in the kernel: multipathd's job, done by hand.
    dmsetup message "$name" 0 reinstate_path "$P1"
    dmsetup message "$name" 0 reinstate_path "$P2"
  fi
  expect_done "$rd" 10 "$kind: queued read after the paths came back"
  if [ -n "$parked" ]; then
    expect_done "$parked" 10 "kernel: the parked read after the paths came back"
    expect_eq "$(dd_status "rd-$kind")" 0 "kernel: the parked read's exit status"
  fi
  expect_eq "$(dd_status "rd2-$kind")" 0 "$kind: queued read exit status ($(cat "$TEST_TMP/rd2-$kind.err"))"
  expect_eq "$(md5sum <"$TEST_TMP/read-$kind.bin" | cut -d' ' -f1)" "$sum" "$kind: data read"
}

table=$(mp_table "queue_if_no_path" round-robin)
kdev=$(dm_create kmp "$table")
on_exit sh -c "dmsetup remove --noudevsync kmp 2>/dev/null || true"
flush_suspend_case kernel kmp "$kdev"
dm_remove kmp

start_ubdmd
on_exit stop_ubdmd
mp_create mp "$(mp_table "queue_if_no_path path_check_interval 1" round-robin)"
flush_suspend_case ubdm mp "$MP_DEV"
