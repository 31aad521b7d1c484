#!/bin/sh
# Exclusive claims: ubdm holds every disk it maps as dm does, so no second
# writer can map or mount it behind its back. ubdm refuses a disk the
# kernel's dm-linear maps (EBUSY, naming dm-N); the kernel's dm refuses a
# disk ubdm serves; a path of a ubdm multipath map cannot be mounted directly
# while the map exists; two linear targets on one disk, two devices on one
# disk, and a load over the live table still work (one claim, shared).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mpath_lib.sh"
set -eu
require_ubdm
mp_setup
start_ubdmd
on_exit stop_ubdmd
# Cleanups for devices the test may already have removed.
dm_remove_if() { ! dmsetup info "$1" >/dev/null 2>&1 || dm_remove "$1"; }

# --- ubdm refuses a disk the kernel's dm holds ---------------------------------
kdm=$(dm_create claim-k "0 65536 linear /dev/ram0 0")
on_exit dm_remove_if claim-k
dmname=$(basename "$(readlink -f "/sys/dev/block/$(majmin "$kdm")")")
expect_match "$dmname" '^dm-[0-9]+$' "kernel name of the dm device"
expect_fail_with "in use \(held by $dmname\)" \
  ubdmsetup create claim-u --table "0 65536 linear /dev/ram0 65536"
expect_eq "$EXPECT_RC" 1 "ubdmsetup exit status"
expect_contains "$EXPECT_STDERR" "/dev/ram0" "the message names the disk"
dm_remove claim-k
expect_ok ubdmsetup create claim-u --table "0 65536 linear /dev/ram0 65536"
on_exit mp_remove claim-u

# --- the kernel's dm refuses a disk ubdm serves -----------------------------------
if dmsetup create --noudevsync claim-k2 --table "0 65536 linear /dev/ram0 0" 2>"$TEST_TMP/dm.err"; then
  dm_remove claim-k2
  die "the kernel's dm mapped /dev/ram0 while ubdm serves it"
fi
log "dmsetup refused: $(tr '\n' ' ' <"$TEST_TMP/dm.err")"

# --- two linear targets on one disk, and a second device on it --------------------
expect_ok ubdmsetup create claim-two --table "0 65536 linear /dev/ram0 131072" \
  --table "65536 65536 linear /dev/ram0 196608"
on_exit mp_remove claim-two
sum=$(write_random /dev/ubdm/claim-two 16 32)
expect_eq "$(read_md5 /dev/ubdm/claim-two 16 32)" "$sum" "data across both targets"
expect_eq "$(read_md5 /dev/ram0 $((64 + 16)) 32)" "$sum" "data on ram0 where the targets put it"
# A load naming the same disk as the live table, then the swap.
expect_ok ubdmsetup load claim-two --table "0 131072 linear /dev/ram0 131072"
expect_ok ubdmsetup suspend claim-two
expect_ok ubdmsetup resume claim-two
expect_eq "$(read_md5 /dev/ubdm/claim-two 16 32)" "$sum" "data after a load over the live table"
expect_ok ubdmsetup remove claim-two
expect_ok ubdmsetup remove claim-u
# Released: the kernel's dm may have the disk now.
dm_create claim-k3 "0 65536 linear /dev/ram0 0" >/dev/null
dm_remove claim-k3

# --- a path of a ubdm multipath map cannot be mounted directly --------------------
mp_create claim-mp "$(mp_table "" "round-robin")"
expect_ok mkfs.ext4 -q -F "$MP_DEV"
mnt=$TEST_TMP/mnt
mkdir -p "$mnt"
for p in $P1 $P2; do
  if mount -t ext4 "$p" "$mnt" 2>"$TEST_TMP/mount.err"; then
    umount "$mnt"
    die "path $p of a live ubdm multipath map was mounted directly"
  fi
  log "mount $p refused: $(tr '\n' ' ' <"$TEST_TMP/mount.err")"
done
# The map itself mounts.
mount -t ext4 "$MP_DEV" "$mnt"
umount "$mnt"
