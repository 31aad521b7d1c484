#!/bin/sh
# Devices larger than 4 GiB: blkdiscard and blkdiscard -z over the whole of
# an 8 GiB ubdm device (linear, striped with 2 GiB chunks, multipath) over
# scsi_debug (virtual_gb=8, UNMAP and WRITE SAME), and data written beyond
# 4 GiB reads back. Requests of 2 GiB and more used to complete with a
# bogus error (EIO, EREMOTEIO, or every path failed in turn).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mpath_lib.sh"
set -eu
require_ubdm
# util-linux's blkdiscard, by its path: busybox sh runs its own applet
# (which has no -z) for a bare `blkdiscard`.
blkdiscard=/usr/sbin/blkdiscard
case $("$blkdiscard" -V 2>&1) in
  *util-linux*) log "blkdiscard: $("$blkdiscard" -V)" ;;
  *) skip "no util-linux blkdiscard at $blkdiscard (busybox's has no -z)" ;;
esac

# The store is 64 MiB, shared modulo its size by the 8 GiB the disk reports;
# delay=0 because every command otherwise costs a jiffy.
reload_module scsi_debug add_host=2 num_tgts=1 max_luns=1 vpd_use_hostno=0 dev_size_mb=64 \
  virtual_gb=8 lbpu=1 lbpws=1 delay=0
on_exit reload_module scsi_debug
mp_setup
expect_eq "$SECTORS" $((8 * 2097152)) "scsi_debug size in sectors"
# scsi_debug refuses an UNMAP longer than its store ("Invalid field in
# cdb"), though it advertises 4 GiB: keep the paths' own discards at 32 MiB.
# The ubdm device still advertises (and gets) requests of about 4 GiB; the
# block layer splits them under ubdm, on the paths.
for p in $P1 $P2; do
  echo $((32 << 20)) >"/sys/block/${p#/dev/}/queue/discard_max_bytes"
done
log "$P1: discard_max_bytes $(cat "/sys/block/${P1#/dev/}/queue/discard_max_bytes"), write_zeroes_max_bytes $(cat "/sys/block/${P1#/dev/}/queue/write_zeroes_max_bytes")"
# The rig itself: the raw path discards and zeroes its whole 8 GiB.
run "$blkdiscard" "$P1" || die "blkdiscard of the raw path $P1 failed: the rig is broken"
run "$blkdiscard" -z "$P1" || die "blkdiscard -z of the raw path $P1 failed: the rig is broken"
start_ubdmd
on_exit stop_ubdmd

zero_md5=$(dd if=/dev/zero bs=1M count=2 status=none | md5sum | cut -d' ' -f1)
# 2 MiB at 8 GiB - 4 MiB: beyond 4 GiB, near the end.
end_mib=$((8 * 1024 - 4))

check_device() { # NAME TABLE
  local name=$1 table=$2 dev sum
  expect_ok ubdmsetup create "$name" --table "$table"
  on_exit mp_remove "$name"
  dev=$(readlink -f "/dev/ubdm/$name")
  expect_eq "$(blockdev --getsize64 "$dev")" $((8 << 30)) "$name: size"
  log "$name ($dev): discard_max_bytes $(cat "/sys/block/${dev#/dev/}/queue/discard_max_bytes")"

  sum=$(write_random "$dev" "$end_mib" 2)
  expect_eq "$(read_md5 "$dev" "$end_mib" 2)" "$sum" "$name: data beyond 4 GiB reads back"
  run "$blkdiscard" "$dev" || die "$name: blkdiscard of the whole device failed"
  expect_eq "$(read_md5 "$dev" "$end_mib" 2)" "$zero_md5" "$name: zeroes after blkdiscard"

  sum=$(write_random "$dev" "$end_mib" 2)
  expect_eq "$(read_md5 "$dev" "$end_mib" 2)" "$sum" "$name: data beyond 4 GiB reads back again"
  run "$blkdiscard" -z "$dev" || die "$name: blkdiscard -z of the whole device failed"
  expect_eq "$(read_md5 "$dev" "$end_mib" 2)" "$zero_md5" "$name: zeroes after blkdiscard -z"
  expect_ok ubdmsetup remove "$name"
}

check_device big-linear "0 $SECTORS linear $P1 0"
# Both stripes on the one LUN (halves of it); a 2 GiB chunk is one piece of
# exactly 2^31 bytes.
check_device big-striped "0 $SECTORS striped 2 4194304 $P1 0 $P1 $((SECTORS / 2))"
check_device big-mpath "$(mp_table "" "round-robin")"
