#!/bin/sh
# shellcheck shell=dash
# What the operator set by message survives a crash: on a two-group
# multipath device (non-default queues, depth and poll_usec), after
# fail_if_no_path, switch_group 2, disable_group 1 and fail_path of the
# first path (offline too, so that the checker agrees), kill -9 and a new
# ubdmd give the same status (path and group states, current group,
# queueing), table and options; I/O works through the path left, and the
# checker reinstates the failed path when it comes back.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/mpath_lib.sh
. "$(dirname "$0")/mpath_lib.sh"
set -eu
mp_start
on_exit path_online "$P1"

table="0 $SECTORS multipath 3 queue_if_no_path path_check_interval 1 0 2 1 round-robin 0 1 1 $P1 1 round-robin 0 1 1 $P2 1"
run ubdmsetup create mp --queues 2 --depth 32 --poll-usec 50 --table "$table"
on_exit mp_remove mp
wait_for /dev/ubdm/mp 5
MP_DEV=$(readlink -f /dev/ubdm/mp)
fio_run "$MP_DEV" --rw=randread --size=1M
fresh=$(mp_status_norm mp)

path_offline "$P1"
msg() { run ubdmsetup message mp 0 "$@"; }
msg fail_if_no_path
msg switch_group 2
msg disable_group 1
msg fail_path "$P1"
fio_run "$MP_DEV" --rw=randread --size=1M
status=$(mp_status_norm mp)
log "status before the crash: $status"
expect_ne "$status" "$fresh" "status after the messages"
expect_match "$status" " D " "a disabled group in the status"
expect_eq "$(mp_states mp)" "F A" "path states before the crash"
expect_eq "$(mp_dev_field mp queue_if_no_path)" false "queue_if_no_path before the crash"
ident=$(dev_ident mp)

kill_ubdmd
expect_kept "after kill -9" mp
start_ubdmd
expect_adopted mp
expect_ident mp "$ident"
expect_eq "$(mp_dev_field mp queue_if_no_path)" false "queue_if_no_path after adoption"
fio_verify "$MP_DEV" 2M --iodepth=8
expect_eq "$(mp_status_norm mp)" "$status" "status after adoption and I/O (fail counts aside)"

path_online "$P1"
wait_states mp "A A" 15
msg enable_group 1
expect_ident mp "$ident" "at the end"
