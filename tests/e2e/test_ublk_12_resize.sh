#!/bin/sh
# Online resize: where the kernel has UBLK_F_UPDATE_SIZE (6.16+), a load of
# a table of another size plus resume changes the disk's capacity as dm
# does, with the kernel's change uevent (RESIZE=1): grow a linear device
# under a mounted ext4 and resize2fs it; shrink it unused; grow a multipath
# map under fio verify after its LUN grew; the new size survives a crash of
# ubdmd. Without the feature (6.12) the load is refused with a clear
# message and nothing changes.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mpath_lib.sh"
set -eu
require_ubdm
start_ubdmd
on_exit stop_ubdmd

small=262144   # 128 MiB
big=524288     # 256 MiB, all of /dev/ram0
expect_ok ubdmsetup create rs --table "0 $small linear /dev/ram0 0"
on_exit mp_remove rs
dev=$(readlink -f /dev/ubdm/rs)

if ! ublk_has_feature 10; then
  log "kernel $(uname -r) has no UBLK_F_UPDATE_SIZE: a load of another size is refused"
  expect_fail_with "cannot resize a live ublk device.*6\.16" \
    ubdmsetup load rs --table "0 $big linear /dev/ram0 0"
  expect_eq "$(ubdmsetup --json info rs | grep -c '"inactive_table": true')" 0 "no inactive table after the refusal"
  expect_eq "$(dev_sectors "$dev")" "$small" "size unchanged"
  exit 0
fi
log "kernel $(uname -r) has UBLK_F_UPDATE_SIZE"

# busybox's uevent applet runs a command for every kernel uevent.
uevents=$TEST_TMP/uevents
busybox uevent sh -c 'echo "$ACTION $DEVNAME resize=${RESIZE:-}" >>'"$uevents" &
on_exit kill $!
sleep 0.2

# 1. Grow under a mounted ext4, then resize2fs online.
expect_ok mkfs.ext4 -q -F "$dev"
mkdir -p "$TEST_TMP/mnt"
expect_ok mount "$dev" "$TEST_TMP/mnt"
on_exit sh -c "umount -l '$TEST_TMP/mnt' 2>/dev/null || true"
dd if=/dev/urandom of="$TEST_TMP/mnt/data" bs=1M count=16 status=none
sum=$(md5sum <"$TEST_TMP/mnt/data")
blocks_before=$(df -k "$TEST_TMP/mnt" | awk 'NR == 2 { print $2 }')
expect_ok ubdmsetup load rs --table "0 $big linear /dev/ram0 0"
expect_eq "$(dev_sectors "$dev")" "$small" "a load alone does not change the size"
expect_ok ubdmsetup resume rs
expect_eq "$(dev_sectors "$dev")" "$big" "size after the grow"
expect_eq "$(cat "/sys/block/${dev#/dev/}/size")" "$big" "sysfs size after the grow"
wait_until 5 grep -q "^change ${dev#/dev/} resize=1" "$uevents" ||
  die "no change uevent with RESIZE=1 for ${dev#/dev/}: $(cat "$uevents")"
expect_ok resize2fs "$dev"
blocks_after=$(df -k "$TEST_TMP/mnt" | awk 'NR == 2 { print $2 }')
[ "$blocks_after" -gt $((blocks_before * 3 / 2)) ] ||
  die "ext4 did not grow: $blocks_before KiB before, $blocks_after KiB after resize2fs"
log "ext4 grew from $blocks_before to $blocks_after KiB"
dd if=/dev/urandom of="$TEST_TMP/mnt/more" bs=1M count=150 status=none ||
  die "cannot fill the grown filesystem beyond the old size"
sync
expect_eq "$(md5sum <"$TEST_TMP/mnt/data")" "$sum" "data written before the grow"
expect_ok umount "$TEST_TMP/mnt"
expect_ok e2fsck -fn "$dev"

# 2. Shrink an unused device; I/O past the new end is refused by the kernel.
: >"$uevents"
expect_ok ubdmsetup load rs --table "0 $small linear /dev/ram0 0"
expect_ok ubdmsetup resume rs
expect_eq "$(dev_sectors "$dev")" "$small" "size after the shrink"
wait_until 5 grep -q "^change ${dev#/dev/} resize=1" "$uevents" ||
  die "no change uevent after the shrink: $(cat "$uevents")"
if dd if=/dev/zero of="$dev" bs=1M seek=200 count=1 oflag=direct status=none 2>/dev/null; then
  die "a write beyond the new end succeeded"
fi
expect_ok ubdmsetup remove rs

# 3. A multipath map grows after its LUN grew (scsi_debug virtual_gb, then
#    a rescan of each path), under fio verify over the first 64 MiB.
mp_setup
expect_eq "$SECTORS" 524288 "scsi_debug LUN size before"
on_exit reload_module scsi_debug
mp_create rsmp "$(mp_table "" round-robin)"
fio_verify_bg grow "$MP_DEV" 64M
grow_fio=$FIO_PID
wait_io_progress "$MP_DEV"
echo 1 >/sys/bus/pseudo/drivers/scsi_debug/virtual_gb
for p in $P1 $P2; do echo 1 >"/sys/block/${p#/dev/}/device/rescan"; done
wait_until 5 sh -c "[ \$(blockdev --getsz $P1) -eq 2097152 ]" || die "$P1 did not grow: $(dev_sectors "$P1")"
expect_eq "$(dev_sectors "$P2")" 2097152 "$P2 after the rescan"
SECTORS=2097152
expect_ok ubdmsetup load rsmp --table "$(mp_table "" round-robin)"
expect_ok ubdmsetup suspend --noflush rsmp
pid_alive "$grow_fio" && log "fio verify still running across the resize" ||
  log "warning: fio verify ended before the resize (a fast machine)"
expect_ok ubdmsetup resume rsmp
expect_eq "$(dev_sectors "$MP_DEV")" 2097152 "multipath map after the grow"
fio_verify_wait grow "$grow_fio"
expect_eq "$(mp_states rsmp)" "A A" "both paths active after the grow"
sum=$(write_random "$MP_DEV" 1000 2)
expect_eq "$(read_md5 "$MP_DEV" 1000 2)" "$sum" "data beyond the old end reads back"

# 4. The new size survives a crash of ubdmd (the state record has the grown
#    table; the kernel kept the capacity).
kill_ubdmd
start_ubdmd
expect_adopted rsmp
expect_eq "$(dev_sectors "$MP_DEV")" 2097152 "multipath map size after the restart"
expect_eq "$(ubdmsetup table rsmp | awk '{ print $2 }')" 2097152 "table size after the restart"
expect_eq "$(read_md5 "$MP_DEV" 1000 2)" "$sum" "data beyond the old end after the restart"
