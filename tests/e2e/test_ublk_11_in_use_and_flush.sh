#!/bin/sh
# FLUSH reaches ubdm over a write-through disk (the device advertises a
# write-back cache whatever its first table maps), and `remove` refuses a
# disk that is mounted, used as swap or held by a stacked device, however
# the holder opened it.
. "$(dirname "$0")/lib.sh"
set -eu
start_ubdmd
on_exit stop_ubdmd
ubdmsetup create u0 --table "0 131072 linear /dev/ram0 131072"
on_exit ubdmsetup remove --force u0
blk=$(readlink /dev/ubdm/u0)
n=${blk#/dev/}

log "flush and FUA"
expect_eq "$(cat /sys/block/ram0/queue/write_cache)" "write through" "brd's cache"
expect_eq "$(cat /sys/block/"$n"/queue/write_cache)" "write back" "$blk's cache"
expect_eq "$(cat /sys/block/"$n"/queue/fua)" 1 "$blk's FUA"
# Field 16 of the stat file: flush requests completed by the device.
flushes() { awk '{ print $16 }' "/sys/block/$n/stat"; }
before=$(flushes)
dd if=/dev/urandom of="$blk" bs=4k count=4 conv=fsync 2>/dev/null
after=$(flushes)
[ "$after" -gt "$before" ] || die "fsync sent no flush to $blk ($before -> $after)"

log "remove refuses a disk in use"
mkfs.ext4 -q -F "$blk"
mkdir -p "$TEST_TMP/mnt"
mount "$blk" "$TEST_TMP/mnt"
expect_fail_with "in use" ubdmsetup remove u0
umount "$TEST_TMP/mnt"

dm_create ubdm_holder "0 8 linear $blk 0" >/dev/null
expect_fail_with "held by dm-" ubdmsetup remove u0
dm_remove ubdm_holder

if command -v mkswap >/dev/null && command -v swapon >/dev/null; then
  mkswap "$blk" >/dev/null
  if swapon "$blk" 2>/dev/null; then
    expect_fail_with "in use" ubdmsetup remove u0
    swapoff "$blk"
  else
    log "swapon not possible here; swap case not checked"
  fi
fi

exec 7<"$blk"
expect_fail_with "in use" ubdmsetup remove u0
exec 7<&-
expect_ok ubdmsetup remove u0
[ ! -e "$blk" ] || die "$blk still exists after remove"
