#!/bin/sh
# Real use: ext4 on a ubdm device. Write files, unmount, fsck, mount again
# and compare checksums.
. "$(dirname "$0")/lib.sh"
set -eu
start_ubdmd
on_exit stop_ubdmd
ubdmsetup create fs --table "0 262144 linear /dev/ram0 0"
on_exit ubdmsetup remove fs
mnt=$TEST_TMP/mnt
mkdir -p "$mnt"

run mkfs.ext4 -q -F /dev/ubdm/fs
mount -t ext4 /dev/ubdm/fs "$mnt"
on_exit umount "$mnt"
i=1
while [ $i -le 24 ]; do
  dd if=/dev/urandom of="$mnt/file$i" bs=16k count=$i status=none
  i=$((i + 1))
done
mkdir "$mnt/dir"
dd if=/dev/urandom of="$mnt/dir/big" bs=1M count=24 status=none
(cd "$mnt" && md5sum file* dir/big) >"$TEST_TMP/sums"
umount "$mnt"

run e2fsck -fn /dev/ubdm/fs

mount -t ext4 /dev/ubdm/fs "$mnt"
(cd "$mnt" && md5sum -c "$TEST_TMP/sums") >"$TEST_TMP/check" 2>&1 || {
  cat "$TEST_TMP/check"
  die "checksums differ after remount"
}
expect_eq "$(grep -c ': OK$' "$TEST_TMP/check")" 25 "files verified after remount"
