#!/bin/sh
# shellcheck shell=dash
# The verbs meant to reach a stuck device do so, and no verb waits behind one.
# Here a stuck disk is a suspended kernel dm-linear device over /dev/ram0 with
# an O_DIRECT write held on it. a) While `remove --force` of a stuck device
# waits, verbs on the other devices answer (and the stuck device answers
# EBUSY); the remove completes once the disk answers. b) `message NAME 0
# fail_if_no_path` returns at once on a multipath map whose only path hangs
# while a noflush suspend of the map waits, and the table loses
# queue_if_no_path. c) With a maps.d map over a hung disk, ubdmd is ready
# within --map-wait with the healthy map made, and the hung map is created
# too. d) On SIGTERM with --on-stop remove, ubdmd removes the healthy device
# and exits (status 1) within --stop-timeout. It leaves the stuck device to
# the kernel, and the next ubdmd adopts it and finishes the held write.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/mpath_lib.sh
. "$(dirname "$0")/mpath_lib.sh"
set -eu
require_ubdm
require_cmd dmsetup
require_cmd timeout
# Cleanups run last first: the disks answer again, ubdmd removes what is
# left and stops, then the disks go.
for n in a b c; do on_exit dm_remove "ubdm14_$n"; done
disk_a=$(dm_create ubdm14_a "0 65536 linear /dev/ram0 0")
disk_b=$(dm_create ubdm14_b "0 65536 linear /dev/ram0 65536")
disk_c=$(dm_create ubdm14_c "0 65536 linear /dev/ram0 131072")
start_ubdmd --stop-timeout 5
on_exit stop_ubdmd 30
for n in a b c; do on_exit dmsetup resume --noudevsync "ubdm14_$n"; done
hang() { timeout 20 dmsetup suspend --noudevsync "ubdm14_$1"; }
unhang() { timeout 20 dmsetup resume --noudevsync "ubdm14_$1"; }
held_write() { # TAG DEV: an O_DIRECT 4k write in the background (DD_PID), held at a hung disk
  dd_bg "$1" "$2" if=/dev/zero of="$2" bs=4k count=1 oflag=direct conv=notrunc
  wait_inflight "$2" 1 30
  dd_running "$DD_PID" || die "a write to $2 over a suspended disk returned: $(cat "$TEST_TMP/$1.err")"
}
bg_verb() { # TAG ARGS...: `ubdmsetup ARGS` in the background (BG_PID), bounded; TAG.out, TAG.rc
  local t=$1 && shift
  (rc=0; timeout 120 ubdmsetup "$@" >"$TEST_TMP/$t.out" 2>&1 || rc=$?; echo $rc >"$TEST_TMP/$t.rc") &
  BG_PID=$!
}
bg_ok() { # PID TAG WHAT: it ends within 30 s, with status 0
  wait_until 30 _gone "$1" || die "$3 did not complete within 30 s of its disk answering"
  wait "$1" || true
  expect_eq "$(cat "$TEST_TMP/$2.rc")" 0 "$3: exit status ($(cat "$TEST_TMP/$2.out"))"
}
others_answer() { # WHEN NAME: verbs on other devices (NAME one of them) answer within 10-20 s
  log "verbs on other devices, $1"
  expect_ok timeout 10 ubdmsetup info "$2" >/dev/null
  expect_ok timeout 10 ubdmsetup ls >/dev/null
  expect_ok timeout 10 ubdmsetup status >/dev/null
  expect_ok timeout 20 ubdmsetup create other --table "0 2048 zero" >/dev/null
  expect_ok timeout 20 ubdmsetup remove other
}
says() { # ERE VERB...: the answer of `ubdmsetup VERB...` (within 10 s) matches ERE
  local re=$1 && shift
  timeout 10 ubdmsetup "$@" 2>&1 | grep -Eq -- "$re"
}

log "a. remove --force reaches a device whose disk does not answer"
timeout 20 ubdmsetup create ok --table "0 131072 linear /dev/nullb0 0" >/dev/null
timeout 20 ubdmsetup create stuck --table "0 65536 linear $disk_a 0" >/dev/null
stuck_blk=$(readlink -f /dev/ubdm/stuck)
hang a
held_write wa /dev/ubdm/stuck
bg_verb rm remove --force stuck && rpid=$BG_PID
# First it loads the error table and waits (kForceSuspendTimeout, 10 s) for
# a noflush suspend that the held write does not let finish...
wait_until 15 says INACTIVE info stuck || die "the forced remove did not load its error table: $(cat "$TEST_TMP/rm.out")"
others_answer "while the forced remove waits for its suspend" ok
# ...then stops the kernel device, which waits for the held write.
wait_until 40 says 'being removed' info stuck || die "info stuck: $(timeout 10 ubdmsetup info stuck 2>&1)"
expect_logged "the forced remove's suspend" "suspend before forced remove" stuck
others_answer "while the kernel device of the forced remove stops" ok
expect_fail_with "being removed" timeout 10 ubdmsetup info stuck
pid_alive "$rpid" || die "the forced remove finished although the disk holds a write: $(cat "$TEST_TMP/rm.out")"
dd_running "$DD_PID" || die "the held write ended with its disk suspended"
unhang a
bg_ok "$rpid" rm "the forced remove"
expect_done "$DD_PID" 30 "the held write once the disk answered"
# The error table never became live (the suspend timed out), so the write,
# at the disk all along, may well succeed: only its end is asserted.
log "the held write ended with status $(dd_status wa): $(tr '\n' ' ' <"$TEST_TMP/wa.err")"
expect_fail_with "^Device does not exist\.$" timeout 10 ubdmsetup info stuck
wait_gone /dev/ubdm/stuck 5 && wait_gone "$stuck_blk" 5
expect_logged "the forced remove" "stuck: removed \(forced\)"

log "b. fail_if_no_path reaches a multipath map whose only path does not answer"
timeout 20 ubdmsetup create mp --queues 1 \
  --table "0 65536 multipath 1 queue_if_no_path 0 1 1 round-robin 0 1 1 $disk_b 1" >/dev/null
wait_for /dev/ubdm/mp 5
hang b
held_write wb /dev/ubdm/mp
# A noflush suspend (which leaves queue_if_no_path alone) waits for the
# write in flight at the path, holding the map's change lock.
bg_verb su suspend --noflush mp && spid=$BG_PID
sleep 1.5
pid_alive "$spid" || die "the suspend finished although a write is held: $(cat "$TEST_TMP/su.out")"
expect_contains "$(timeout 10 ubdmsetup table mp)" queue_if_no_path "table before the message"
expect_ok timeout 10 ubdmsetup message mp 0 fail_if_no_path
table=$(timeout 10 ubdmsetup table mp)
case $table in *queue_if_no_path*) die "table still has queue_if_no_path after fail_if_no_path: $table" ;; esac
pid_alive "$spid" || die "the suspend ended while the write is still held"
unhang b
expect_done "$DD_PID" 30 "the write held at the path once it answered"
expect_eq "$(dd_status wb)" 0 "status of the write held at the path"
bg_ok "$spid" su "the noflush suspend"
expect_ok timeout 20 ubdmsetup resume mp
case $(timeout 10 ubdmsetup table mp) in *queue_if_no_path*) die "queue_if_no_path came back at resume" ;; esac
expect_ok timeout 20 ubdmsetup remove_all
term_ubdmd

log "c. a persistent map over a disk that does not answer"
conf=$TEST_TMP/conf
mkdir -p "$conf/maps.d"
echo "0 65536 linear $disk_c 0" >"$conf/maps.d/hung.table"
echo "0 131072 linear /dev/nullb0 0" >"$conf/maps.d/good.table"
hang c
t0=$(date +%s)
start_ubdmd --config "$conf" --map-wait 3 --on-stop remove --stop-timeout 5
took=$(($(date +%s) - t0))
expect_ok timeout 10 ubdmsetup ls
[ "$took" -le 20 ] || die "ubdmd took ${took}s to answer with a maps.d disk hung (--map-wait 3)"
others_answer "with a persistent map's disk hung" good
unhang c
# Intended (load_persistent_maps): a map whose create outlasts --map-wait
# goes on in the background and appears when done. It is reported failed
# only if its create fails, and a disk that merely hangs does not make it
# fail. (Here the map is made at once: START_DEV reads no disk.)
wait_until 30 says 'State: *ACTIVE' info hung || die "the hung map was not created: $(timeout 10 ubdmsetup ls)"
expect_logged "the hung map" "hung: created"
! ubdmd_log_last | grep -E "hung: persistent map .* not created" || die "the hung map was reported failed"
expect_ok timeout 20 dd if=/dev/ubdm/hung of=/dev/null bs=4k count=1 iflag=direct

log "d. SIGTERM with --on-stop remove while a device is stuck"
good_blk=$(readlink -f /dev/ubdm/good)
hung_blk=$(readlink -f /dev/ubdm/hung)
hang c
held_write wd /dev/ubdm/hung
pid=$(ubdmd_pid)
kill -TERM "$pid"
wait_until 30 _gone "$pid" || die "ubdmd (pid $pid) did not exit after its --stop-timeout 5"
rc=0 && { wait "$pid" 2>/dev/null || rc=$?; } && rm -f "$UBDMD_PIDFILE"
# What main.cpp and shutdown() promise: the healthy device is removed. The
# stuck one, whose flush suspend does not drain within --stop-timeout, is
# NOT removed: it is left to the kernel (node, ublk device and state record
# kept, its write held by USER_RECOVERY for the next ubdmd). Exit status 1.
expect_eq "$rc" 1 "ubdmd exit status with a device not removed"
expect_logged "the healthy device" "good: removed at shutdown"
# (The device's own "I/O does not drain" line races with the exit at the
# deadline. The summary line names the device.)
expect_logged "the stuck device" "not removed within 5000 ms: hung"
expect_logged "the exit" "exiting with 1 device\(s\) not removed"
wait_gone /dev/ubdm/good 5 && wait_gone "$good_blk" 5
case $(state_files) in *good.json*) die "good's state record left after its removal" ;; esac
{ [ -b "$hung_blk" ] && [ -e /dev/ubdm/hung ]; } || die "the stuck device was not left to the kernel"
expect_contains "$(state_files)" hung.json "the stuck device's state record"
dd_running "$DD_PID" || die "the held write ended with ubdmd: $(dd_status wd) $(cat "$TEST_TMP/wd.err")"
unhang c
start_ubdmd --stop-timeout 5
expect_adopted hung
expect_done "$DD_PID" 30 "the write held through the stop"
expect_eq "$(dd_status wd)" 0 "status of the write held through the stop ($(cat "$TEST_TMP/wd.err"))"
