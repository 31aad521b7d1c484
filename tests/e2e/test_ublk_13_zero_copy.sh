#!/bin/sh
# Zero copy: where the kernel has UBLK_F_AUTO_BUF_REG (6.16+), devices read
# and write the request's own pages (no copy through a tag buffer), split
# requests included; `info` and `version` say so; `create --copy` forces
# copy mode; a table whose targets touch the data (zero) gets copy mode at
# create and is refused by a load onto a zero-copy device; the fallback for
# a request the kernel could not register (NEED_REG_BUF, registered by
# hand) carries data intact. Without the feature (6.12) every device copies.
. "$(dirname "$0")/lib.sh"
set -eu
require_ubdm
start_ubdmd
on_exit stop_ubdmd

data_path() { ubdmsetup info "$1" | sed -n 's/^Data path: *//p'; }
# verify NAME: crc32c-verified writes of several sizes over the device; the
# 64k and 1M ones cross the 4 KiB stripe chunks of the striped devices.
verify() {
  local dev bs
  dev=$(readlink -f "/dev/ubdm/$1")
  for bs in 4k 64k 1M; do
    fio_verify "$dev" 16M --bs="$bs" --iodepth=8
  done
}

if ! ublk_has_feature 11; then
  log "kernel $(uname -r) has no UBLK_F_AUTO_BUF_REG: devices copy"
  expect_match "$(ubdmsetup version)" "^Zero copy: +no" "version on a kernel without zero copy"
  expect_ok ubdmsetup create c0 --table "0 65536 linear /dev/ram0 0"
  expect_eq "$(data_path c0)" copy "data path without the feature"
  verify c0
  expect_ok ubdmsetup remove c0
  exit 0
fi
log "kernel $(uname -r) has UBLK_F_AUTO_BUF_REG"
expect_contains "$(ubdmsetup version)" "yes (UBLK_F_AUTO_BUF_REG)" "version on a kernel with zero copy"

# 1. Linear and striped (every large request split at 4 KiB chunks).
expect_ok ubdmsetup create zl --table "0 65536 linear /dev/ram0 0"
expect_eq "$(data_path zl)" zero-copy "linear device's data path"
expect_logged "zl added in zero-copy mode" "zl: ublk device [0-9]+ added .*zero copy"
verify zl
expect_ok ubdmsetup create zs --table "0 131072 striped 2 8 /dev/ram0 65536 /dev/ram0 131072"
expect_eq "$(data_path zs)" zero-copy "striped device's data path"
verify zs
# Data written through one device reads back through another path to it.
sum=$(write_random "$(readlink -f /dev/ubdm/zl)" 8 4)
expect_eq "$(dd if=/dev/ram0 bs=1M skip=8 count=4 iflag=direct status=none | md5sum | cut -d' ' -f1)" "$sum" \
  "zero-copy writes on the disk"

# 2. A target that touches the data: copy mode at create, refused by a load.
expect_ok ubdmsetup create zz --table "0 65536 linear /dev/ram0 196608
65536 8192 zero"
expect_eq "$(data_path zz)" copy "a device created with a zero target"
expect_logged "copy mode for zz" "zz: target zero reads or changes the data itself"
expect_fail_with "target zero reads or changes the data itself.*--copy" \
  ubdmsetup load zl --table "0 65536 zero"
expect_eq "$(ubdmsetup --json info zl | grep -c '"inactive_table": true')" 0 "no inactive table after the refusal"

# 3. --copy forces copy mode.
expect_ok ubdmsetup create zc --copy --table "0 65536 linear /dev/ram0 262144"
expect_eq "$(data_path zc)" copy "create --copy"
verify zc

# 4. The fallback: every request registered by hand (UBDMD_ZERO_COPY_FALLBACK
#    makes each FETCH name a slot beyond the table, so the kernel's own
#    registration always fails and flags the request NEED_REG_BUF).
for n in zl zs zz zc; do expect_ok ubdmsetup remove "$n"; done
stop_ubdmd
export UBDMD_ZERO_COPY_FALLBACK=1
start_ubdmd
unset UBDMD_ZERO_COPY_FALLBACK
expect_ok ubdmsetup create zf --table "0 131072 striped 2 8 /dev/ram0 0 /dev/ram0 131072"
expect_eq "$(data_path zf)" zero-copy "data path with the fallback forced"
verify zf
expect_ok ubdmsetup remove zf
