#!/bin/sh
# shellcheck shell=dash
# A crash in the middle of create or remove (UBDMD_CRASH_AT makes ubdmd
# SIGKILL itself there) is resolved at the next start, never left hanging:
# - create-after-add (ublk device added, not started) and
#   create-after-start (started, no reply yet; a reader is waiting on it):
#   the device is either finished (listed, ACTIVE, its table, readable) or
#   cleaned up (no ublk device, node or state file left), and the reader
#   does not wait forever;
# - remove-after-stop (stopped, not deleted): the removal is finished;
# - rename-between-records (the record written under the new name, the old
#   one not yet erased): the device is adopted under its new name alone,
#   its node and link moved, and it serves I/O.
# A bystander device keeps its node, table and options throughout.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/mpath_lib.sh
. "$(dirname "$0")/mpath_lib.sh"
set -eu
require_ubdm
start_ubdmd
on_exit stop_ubdmd
run ubdmsetup create by0 --queues 2 --table "0 65536 linear /dev/ram0 0"
wait_for /dev/ubdm/by0 5
by_ident=$(dev_ident by0)
by_id=$(ublk_id by0)

# crash_at POINT: a planned restart into a ubdmd that kills itself at POINT.
crash_at() {
  term_ubdmd
  UBDMD_CRASH_AT=$1
  export UBDMD_CRASH_AT
  start_ubdmd
  unset UBDMD_CRASH_AT
}
# expect_crashed POINT: that ubdmd did kill itself (else nothing is tested).
expect_crashed() {
  reap_ubdmd 20
  expect_eq "$UBDMD_RC" 137 "ubdmd's exit status with UBDMD_CRASH_AT=$1 (SIGKILL expected)"
}
_only_bystander() { [ "$(ublk_ids | tr '\n' ' ')" = "$by_id " ]; }
# expect_resolved NAME TABLE: NAME finished or cleaned up; either way the
# only ublk device left (after removing a finished NAME) is the bystander's.
expect_resolved() {
  if ubdmsetup info "$1" >/dev/null 2>&1; then
    log "$1 was finished at start"
    expect_eq "$(dev_state "$1")" ACTIVE "state of the finished $1"
    expect_eq "$(ubdmsetup table "$1" | sed 's/ *$//')" "$2" "table of the finished $1"
    [ -e "$UBDM_STATE_DIR/$1.json" ] || die "the finished $1 has no state file"
    dd if="/dev/ubdm/$1" of=/dev/null bs=4k count=1 iflag=direct 2>/dev/null || die "reading the finished $1 failed"
    run ubdmsetup remove "$1"
  else
    log "$1 was cleaned up at start"
    [ ! -e "$UBDM_STATE_DIR/$1.json" ] || die "the state file of the cleaned-up $1 is left"
    [ ! -e "/dev/ubdm/$1" ] || die "/dev/ubdm/$1 is left after $1 was cleaned up"
  fi
  wait_until 10 _only_bystander ||
    die "ublk devices other than the bystander's ($by_id) are left: $(ublk_ids | tr '\n' ' ')"
  expect_logged "what became of $1 at start" "(^|[^A-Za-z0-9_])$1([^A-Za-z0-9_]|\$)"
  # The name can be used again.
  run ubdmsetup create "$1" --table "$2"
  run ubdmsetup remove "$1"
}

log "1. crash in create, after ADD_DEV"
crash_at create-after-add
expect_fail ubdmsetup create c1 --table "0 8192 zero"
expect_crashed create-after-add
start_ubdmd
expect_adopted by0
expect_resolved c1 "0 8192 zero"

log "2. crash in create, after START_DEV"
crash_at create-after-start
expect_fail ubdmsetup create c2 --table "0 8192 zero"
expect_crashed create-after-start
new=$(ublk_ids | grep -vx "$by_id" | head -n 1)
[ -n "$new" ] || die "no half-made ublk device after the crash after START_DEV"
reader=
if [ -b "/dev/ublkb$new" ]; then
  dd_bg rd "/dev/ublkb$new" if="/dev/ublkb$new" of=/dev/null bs=4k count=1 iflag=direct
  reader=$DD_PID
  sleep 1
fi
start_ubdmd
expect_adopted by0
if [ -n "$reader" ]; then
  expect_done "$reader" 20 "a read of the half-made device"
  log "the read of the half-made device ended with status $(dd_status rd)"
  ! ubdmsetup info c2 >/dev/null 2>&1 || expect_eq "$(dd_status rd)" 0 "the read of the finished c2"
fi
expect_resolved c2 "0 8192 zero"

log "3. crash in remove, after STOP_DEV"
run ubdmsetup create r1 --table "0 8192 zero"
wait_for /dev/ubdm/r1 5
rid=$(ublk_id r1)
crash_at remove-after-stop
expect_adopted by0 r1
expect_fail ubdmsetup remove r1
expect_crashed remove-after-stop
start_ubdmd
expect_adopted by0
case $(ubdmsetup ls) in *r1*) die "r1 is still listed after its removal was interrupted" ;; esac
wait_gone "/dev/ublkb$rid" 10
wait_gone "/dev/ublkc$rid" 10
wait_gone /dev/ubdm/r1 5
[ ! -e "$UBDM_STATE_DIR/r1.json" ] || die "the state file of r1 is left"
expect_logged "the finished removal of r1" "(^|[^A-Za-z0-9_])r1([^A-Za-z0-9_]|\$)"

log "4. crash in rename, between writing the new record and erasing the old"
run ubdmsetup create n1 --table "0 8192 zero"
wait_for /dev/ubdm/n1 5
nid=$(ublk_id n1)
crash_at rename-between-records
expect_adopted by0 n1
expect_fail ubdmsetup rename n1 n2
expect_crashed rename-between-records
[ -e "$UBDM_STATE_DIR/n1.json" ] && [ -e "$UBDM_STATE_DIR/n2.json" ] ||
  die "the crash did not leave both records (n1.json, n2.json): nothing tested"
start_ubdmd
expect_adopted by0 n2
case $(ubdmsetup ls) in *n1*) die "n1 is still listed after its rename to n2 was cut short" ;; esac
expect_eq "$(ublk_id n2)" "$nid" "ublk device of n2 (was n1's)"
[ ! -e "$UBDM_STATE_DIR/n1.json" ] || die "the record of n1 is left beside n2's"
wait_gone /dev/ubdm/n1 5
wait_for /dev/ubdm/n2 5
dd if=/dev/ubdm/n2 of=/dev/null bs=4k count=1 iflag=direct 2>/dev/null || die "reading n2 failed"
# And a rename that is not cut short moves the link at once.
run ubdmsetup rename n2 n3
[ -b /dev/ubdm/n3 ] || die "/dev/ubdm/n3 is not there after the rename"
wait_gone /dev/ubdm/n2 5
run ubdmsetup remove n3

expect_ident by0 "$by_ident" "after four crashes"
fio_verify /dev/ubdm/by0 2M --iodepth=8
