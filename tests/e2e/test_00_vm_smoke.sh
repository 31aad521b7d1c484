#!/bin/sh
# shellcheck shell=dash
# The VM recipe works: ublk_drv, scsi_debug's two paths to one LUN, null_blk,
# brd, kernel dm-linear and dm-multipath (with a path failure under I/O),
# ext4 tools, fio with io_uring.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
set -eu

log "kernel $(uname -r)"

# ublk
[ -c /dev/ublk-control ] || die "/dev/ublk-control missing (ublk_drv not loaded?)"
module_loaded ublk_drv || die "ublk_drv not loaded"

# The block devices /init set up.
for d in /dev/nullb0 /dev/ram0; do
  [ -b "$d" ] || die "$d missing"
done
expect_eq "$(dev_sectors /dev/nullb0)" 2097152 "nullb0 sectors"
[ -d /sys/block/nullb0/mq ] || die "nullb0 is not blk-mq"
expect_eq "$(dev_sectors /dev/ram0)" 524288 "ram0 sectors"

# scsi_debug: two disks, one shared store.
paths=$(scsi_debug_paths) || die "no scsi_debug disks"
# shellcheck disable=SC2086
set -- $paths
[ $# -eq 2 ] || die "expected 2 scsi_debug paths, got: $paths"
p1=$1 p2=$2
log "scsi_debug paths: $p1 $p2"
expect_eq "$(dev_sectors "$p1")" 524288 "$p1 sectors"
expect_eq "$(dev_sectors "$p2")" 524288 "$p2 sectors"
sum=$(write_random "$p1" 8 4)
expect_eq "$(read_md5 "$p2" 8 4)" "$sum" "data written through $p1, read through $p2"
sum=$(write_random "$p2" 100 1)
expect_eq "$(read_md5 "$p1" 100 1)" "$sum" "data written through $p2, read through $p1"

# brd keeps data.
sum=$(write_random /dev/ram0 0 2)
expect_eq "$(read_md5 /dev/ram0 0 2)" "$sum" "ram0 data"

# Kernel dm-linear.
lin=$(dm_create smoke_lin "0 2048 linear /dev/nullb0 0")
[ -b "$lin" ] || die "$lin is not a block device"
expect_eq "$(dev_sectors "$lin")" 2048 "dm-linear sectors"
expect_match "$(dmsetup table smoke_lin)" '^0 2048 linear [0-9]+:[0-9]+ 0$' "dm-linear table"
dm_remove smoke_lin
[ ! -e "$lin" ] || die "$lin still exists after remove"

# Kernel dm-multipath, round-robin over both paths.
size=$(dev_sectors "$p1")
mp=$(dm_create smoke_mp "0 $size multipath 0 0 1 1 round-robin 0 2 1 $p1 1 $p2 1")
on_exit dm_remove smoke_mp
on_exit path_online "$p1"
st=$(dmsetup status smoke_mp)
log "multipath status: $st"
expect_eq "$(mpath_states "$st")" "A A" "path states in '$st'"

# A path fails while fio runs on the multipath device: no I/O errors.
fio_bg "$mp" --rw=randrw --size=64M --time_based --runtime=4
sleep 1.5
path_offline "$p1"
log "$p1 offline"
fio_wait
st=$(dmsetup status smoke_mp)
log "multipath status after the failure: $st"
expect_eq "$(mpath_states "$st")" "F A" "path states in '$st'"
path_online "$p1"
dmsetup message smoke_mp 0 "reinstate_path $p1"
both_active() { [ "$(mpath_states "$(dmsetup status smoke_mp)")" = "A A" ]; }
wait_until 5 both_active ||
  die "path $p1 not reinstated: $(dmsetup status smoke_mp)"

# Data through multipath, then through a raw path.
sum=$(write_random "$mp" 32 4)
expect_eq "$(read_md5 "$p2" 32 4)" "$sum" "multipath write read back through $p2"

# fio with io_uring and verification (brd keeps data).
fio_verify /dev/ram0 32M

# ext4 tools and the built-in ext4.
mkfs.ext4 -q -F /dev/ram0
mkdir -p "$TEST_TMP/mnt"
mount -t ext4 /dev/ram0 "$TEST_TMP/mnt"
echo hello >"$TEST_TMP/mnt/f"
expect_eq "$(cat "$TEST_TMP/mnt/f")" hello "file on ext4"
umount "$TEST_TMP/mnt"
e2fsck -fn /dev/ram0 >/dev/null || die "e2fsck found problems"

log "all good"
