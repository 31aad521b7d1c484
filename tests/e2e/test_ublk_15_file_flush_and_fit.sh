#!/bin/sh
# An fsync on a file-backed device reaches the backing file's fdatasync:
# the file sits on ext4 over a loop device (which has a write-back cache and
# counts flushes), and the fsync moves that count while a write without one
# does not. And a load whose devices cannot honour what the live device
# advertised (larger logical blocks; no discard) is refused, changing nothing.
. "$(dirname "$0")/lib.sh"
set -eu
require_ubdm
losetup=/usr/sbin/losetup   # util-linux's: busybox's has no --sector-size
[ -x "$losetup" ] || skip "no util-linux losetup"
start_ubdmd
on_exit stop_ubdmd

log "1. fsync on a device over a file reaches the file's fdatasync"
truncate -s 256M "$TEST_TMP/disk.img"
loop=$("$losetup" -f --show "$TEST_TMP/disk.img")
on_exit "$losetup" -d "$loop"
expect_eq "$(cat "/sys/block/${loop#/dev/}/queue/write_cache")" "write back" "the loop device's cache"
# Everything initialised at mkfs, and a journal commit every 300 s, so that
# ext4 sends the loop device no flush of its own (lazy inode-table
# initialisation would, in the background) but those the fsync causes.
expect_ok mkfs.ext4 -q -E lazy_itable_init=0,lazy_journal_init=0 "$loop"
mkdir -p "$TEST_TMP/mnt"
expect_ok mount -o commit=300,noinit_itable "$loop" "$TEST_TMP/mnt"
on_exit umount "$TEST_TMP/mnt"
dd if=/dev/zero of="$TEST_TMP/mnt/backing" bs=1M count=64 conv=fsync status=none
sync
expect_ok ubdmsetup create ff --table "0 131072 linear $TEST_TMP/mnt/backing 0"
on_exit ubdmsetup remove --force ff
blk=$(readlink -f /dev/ubdm/ff)
expect_eq "$(cat "/sys/block/${blk#/dev/}/queue/write_cache")" "write back" "$blk's cache"
flushes() { awk '{ print $16 }' "/sys/block/${loop#/dev/}/stat"; }
dd if=/dev/urandom of="$blk" bs=4k count=8 oflag=direct status=none
# A write without fsync moves no flush count: wait (up to 5 tries) for a
# second in which nothing else flushes, so that the fsync's flush below is
# the fsync's.
tries=0
while :; do
  f0=$(flushes)
  dd if=/dev/urandom of="$blk" bs=4k count=8 oflag=direct status=none
  sleep 1
  f1=$(flushes)
  [ "$f1" != "$f0" ] || break
  tries=$((tries + 1))
  [ $tries -lt 5 ] || die "flushes on $loop keep coming without any fsync ($f0 -> $f1)"
  log "a flush came from elsewhere ($f0 -> $f1); again"
done
dd if=/dev/urandom of="$blk" bs=4k count=8 oflag=direct conv=fsync status=none
f2=$(flushes)
[ "$f2" -gt "$f1" ] || die "an fsync on $blk did not reach the backing file's disk ($f1 -> $f2 flushes)"
log "flushes on $loop: $f0 -> $f1 (write) -> $f2 (write + fsync)"

log "2. a load the live device cannot honour is refused"
truncate -s 64M "$TEST_TMP/disk4k.img"
loop4k=$("$losetup" -f --show --sector-size 4096 "$TEST_TMP/disk4k.img")
on_exit "$losetup" -d "$loop4k"
expect_eq "$(cat "/sys/block/${loop4k#/dev/}/queue/logical_block_size")" 4096 "$loop4k's block size"
table_before=$(ubdmsetup table ff)
expect_fail_with "4096-byte logical blocks.*advertises 512" \
  ubdmsetup load ff --table "0 131072 linear $loop4k 0"
expect_ok ubdmsetup create fd --table "0 65536 linear /dev/ram0 0"
on_exit ubdmsetup remove --force fd
if [ "$(cat /sys/block/nullb0/queue/discard_max_bytes)" = 0 ] &&
  [ "$(cat /sys/block/ram0/queue/discard_max_bytes)" != 0 ]; then
  expect_fail_with "cannot discard" ubdmsetup load fd --table "0 65536 linear /dev/nullb0 0"
else
  log "ram0 or nullb0 discards differently here; the discard case is not checked"
fi
for n in ff fd; do
  expect_eq "$(ubdmsetup --json info "$n" | grep -c '"inactive_table": true')" 0 "$n: no inactive table"
done
expect_eq "$(ubdmsetup table ff)" "$table_before" "ff's live table"
