#!/bin/sh
# A device whose disk does not answer (here a kernel dm device that is
# suspended) blocks only itself: other devices' verbs answer while its I/O
# waits, a killed client's suspend is cancelled, and at SIGTERM ubdmd leaves
# every device to the kernel, the healthy one drained and the stuck one
# ("does not drain") with its write held, and exits by --stop-timeout; the
# next ubdmd finishes the held write. (A create whose disk hangs in the
# middle of Table::build is covered by the unit tests.)
. "$(dirname "$0")/lib.sh"
set -eu
require_cmd dmsetup
require_cmd timeout
# Cleanups run last first: the disk answers again, ubdmd removes its
# devices (they outlive SIGTERM) and stops, then the disk goes.
hang=$(dm_create ubdm_hang "0 131072 linear /dev/ram0 0")
on_exit dm_remove ubdm_hang
# A short stop timeout so the test need not wait the default 90 s.
start_ubdmd --stop-timeout 5
on_exit stop_ubdmd 30
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
# Not a sleep: on a loaded machine fio may take seconds to issue its read.
wait_inflight /dev/ubdm/stuck 1 30
pid_alive "$fpid" || die "a read of a suspended disk returned at once: $(cat "$TEST_TMP/fio0.out")"
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
wait_inflight /dev/ubdm/stuck 1 30
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
ok_ident=$(dev_ident ok)
stuck_ident=$(dev_ident stuck)
ok_blk=$(readlink -f /dev/ubdm/ok)
stuck_blk=$(readlink -f /dev/ubdm/stuck)
dmsetup suspend --noudevsync ubdm_hang
fio --name=held --filename=/dev/ubdm/stuck --rw=write --bs=4k --size=4k --direct=1 --ioengine=psync \
  >"$TEST_TMP/fio2.out" 2>&1 &
fpid=$!
wait_inflight /dev/ubdm/stuck 1 30
pid=$(ubdmd_pid)
kill -TERM "$pid"
# --stop-timeout 5: well within 30 s, however loaded the machine.
wait_until 30 _gone "$pid" || die "ubdmd (pid $pid) did not exit after its stop timeout"
rc=0
wait "$pid" 2>/dev/null || rc=$?
rm -f "$UBDMD_PIDFILE"
log "ubdmd exited with status $rc"
expect_logged "the stuck device at SIGTERM" "does not drain" stuck
expect_logged "the healthy device at SIGTERM" "left to the kernel" "(^|[^a-z])ok([^a-z]|\$)"
for b in "$ok_blk" "$stuck_blk" /dev/ubdm/ok /dev/ubdm/stuck; do
  [ -e "$b" ] || die "$b is gone after SIGTERM (devices are to outlive ubdmd)"
done
pid_alive "$fpid" || die "the held write ended with no daemon: $(cat "$TEST_TMP/fio2.out")"
dmsetup resume --noudevsync ubdm_hang
sleep 1
pid_alive "$fpid" || die "the held write ended with no daemon: $(cat "$TEST_TMP/fio2.out")"
start_ubdmd --stop-timeout 5
expect_adopted ok stuck
wait "$fpid" || die "the held write failed after the next ubdmd adopted its device: $(cat "$TEST_TMP/fio2.out")"
expect_eq "$(state stuck)" ACTIVE "the stuck device after adoption"
expect_ident ok "$ok_ident"
expect_ident stuck "$stuck_ident"
expect_ok ubdmsetup status stuck
log "the held write completed after adoption"
