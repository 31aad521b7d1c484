#!/bin/sh
# shellcheck shell=dash
# Removal only when asked. With --on-stop remove, SIGTERM removes every
# device (nodes, ublk devices and state files gone; the next ubdmd finds
# none). `ubdmsetup remove_all` removes every device; one held open (or
# suspended) is refused: exit 1, named, the others removed; `remove_all
# --force` removes a suspended one; with no device it succeeds.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
set -eu
require_ubdm

log "1. --on-stop remove"
start_ubdmd --on-stop remove
on_exit stop_ubdmd
run ubdmsetup create a --table "0 8192 zero"
run ubdmsetup create b --table "0 65536 linear /dev/ram0 0"
wait_for /dev/ubdm/a 5
wait_for /dev/ubdm/b 5
blk_a=$(readlink -f /dev/ubdm/a) blk_b=$(readlink -f /dev/ubdm/b)
fio_verify /dev/ubdm/b 2M
term_ubdmd 30
for f in "$blk_a" "$blk_b" /dev/ubdm/a /dev/ubdm/b; do wait_gone "$f" 5; done
wait_no_ublk "after SIGTERM with --on-stop remove"
expect_eq "$(state_files)" "" "state files after SIGTERM with --on-stop remove"
start_ubdmd
expect_eq "$(ubdmsetup ls)" "No devices found" "devices after a restart"

log "2. remove_all"
for n in x y z; do run ubdmsetup create "$n" --table "0 8192 zero"; done
wait_for /dev/ubdm/z 5
blk_z=$(readlink -f /dev/ubdm/z)
# z is held open by a process that never reads it.
# shellcheck disable=SC2217 # the open descriptor is the point
sleep 600 <"$blk_z" &
holder=$!
stop_holder() { kill "$holder" 2>/dev/null || true; wait "$holder" 2>/dev/null || true; }
on_exit stop_holder
wait_until 5 sh -c "ubdmsetup info z | grep -q 'Open count: *[1-9]'" || die "z is not seen as open: $(ubdmsetup info z)"
expect_fail ubdmsetup remove_all
expect_eq "$EXPECT_RC" 1 "remove_all exit status with z in use"
expect_contains "$EXPECT_STDERR" z "remove_all names the device it could not remove"
expect_eq "$(ubdmsetup ls | cut -f1)" z "devices left after remove_all"
wait_gone /dev/ubdm/x 5
wait_gone /dev/ubdm/y 5
expect_eq "$(state_files)" "z.json" "state files after remove_all"
stop_holder
# Suspended: refused without --force too. (Not --force on a device a
# process holds open: the kernel's DEL_DEV waits for its last opener.)
run ubdmsetup suspend z
expect_fail ubdmsetup remove_all
expect_contains "$EXPECT_STDERR" z "remove_all names the suspended device"
expect_ok ubdmsetup remove_all --force
wait_gone "$blk_z" 5
expect_eq "$(ubdmsetup ls)" "No devices found" "devices after remove_all --force"
wait_no_ublk "after remove_all --force"
expect_eq "$(state_files)" "" "state files after remove_all --force"
expect_ok ubdmsetup remove_all

log "3. nothing comes back"
term_ubdmd
start_ubdmd
expect_eq "$(ubdmsetup ls)" "No devices found" "devices after a restart"
