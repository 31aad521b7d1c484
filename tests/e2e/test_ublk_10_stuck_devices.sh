#!/bin/sh
# A device whose disk does not answer (here a kernel dm device that is
# suspended) blocks only itself: other devices' verbs answer while its I/O
# waits, a killed client's suspend is cancelled, and SIGTERM removes the
# healthy devices and ends the daemon by --stop-timeout. (A create whose
# disk hangs in the middle of Table::build is covered by the unit tests.)
. "$(dirname "$0")/lib.sh"
set -eu
require_cmd dmsetup
require_cmd timeout
# A short stop timeout so the test need not wait the default 90 s.
start_ubdmd --stop-timeout 5
on_exit stop_ubdmd 30

hang=$(dm_create ubdm_hang "0 131072 linear /dev/ram0 0")
on_exit dm_remove ubdm_hang
# Whatever happens below, the disk answers again before the cleanups.
on_exit dmsetup resume --noudevsync ubdm_hang
ubdmsetup create ok --table "0 131072 linear /dev/nullb0 0"
state() { ubdmsetup info "$1" | awk '/^State:/ { print $2 }'; }

log "1. a create over a disk that does not answer returns, and I/O to it waits alone"
dmsetup suspend --noudevsync ubdm_hang
# ubdm disks are not scanned for partitions (as dm maps are not), so
# START_DEV does not read the disk and the create returns at once.
expect_ok timeout 20 ubdmsetup create stuck --table "0 131072 linear $hang 0"
fio --name=held --filename=/dev/ubdm/stuck --rw=read --bs=4k --size=4k --direct=1 --ioengine=psync \
  >"$TEST_TMP/fio0.out" 2>&1 &
fpid=$!
sleep 1
kill -0 "$fpid" 2>/dev/null || die "a read of a suspended disk returned at once: $(cat "$TEST_TMP/fio0.out")"
expect_ok timeout 10 ubdmsetup info ok
expect_ok timeout 10 ubdmsetup info stuck
expect_ok timeout 10 ubdmsetup ls
expect_ok timeout 10 ubdmsetup status
expect_ok timeout 20 ubdmsetup create other --table "0 2048 zero"
expect_ok timeout 20 ubdmsetup remove other
dmsetup resume --noudevsync ubdm_hang
wait "$fpid" || die "the held read failed once the disk answered: $(cat "$TEST_TMP/fio0.out")"
expect_eq "$(state stuck)" ACTIVE "the device over the disk that came back"

log "2. a suspend waiting on I/O ends when its client is killed"
dmsetup suspend --noudevsync ubdm_hang
fio --name=held --filename=/dev/ubdm/stuck --rw=write --bs=4k --size=4k --direct=1 --ioengine=psync \
  >"$TEST_TMP/fio1.out" 2>&1 &
fpid=$!
sleep 1
ubdmsetup suspend stuck >/dev/null 2>&1 &
spid=$!
sleep 1.5
kill -0 "$spid" 2>/dev/null || die "suspend finished although a write is held"
expect_ok timeout 10 ubdmsetup info ok
kill -KILL "$spid"
wait "$spid" 2>/dev/null || true
wait_until 5 sh -c "ubdmsetup info stuck | grep -q 'State: *ACTIVE'" ||
  die "the killed client's suspend was not cancelled: $(ubdmsetup info stuck)"
dmsetup resume --noudevsync ubdm_hang
wait "$fpid" || die "the held write failed: $(cat "$TEST_TMP/fio1.out")"

log "3. SIGTERM with a device stuck on its disk"
ok_blk=$(readlink /dev/ubdm/ok)
dmsetup suspend --noudevsync ubdm_hang
fio --name=held --filename=/dev/ubdm/stuck --rw=write --bs=4k --size=4k --direct=1 --ioengine=psync \
  >"$TEST_TMP/fio2.out" 2>&1 &
fpid=$!
sleep 1
pid=$(ubdmd_pid)
kill -TERM "$pid"
wait_gone "$ok_blk" 15
wait_until 20 grep -q "not removed within" "$UBDMD_LOG" ||
  die "ubdmd did not give up on the stuck device after --stop-timeout"
dmsetup resume --noudevsync ubdm_hang
wait_until 30 sh -c "! kill -0 $pid 2>/dev/null || grep -q ') Z ' /proc/$pid/stat" ||
  die "ubdmd (pid $pid) did not exit after its stop timeout"
wait "$pid" 2>/dev/null || true
rm -f "$UBDMD_PIDFILE"
wait "$fpid" 2>/dev/null || true
log "ubdmd gave up on the stuck device and exited"
