#!/bin/sh
# shellcheck shell=dash
# A planned restart (SIGTERM, then a new ubdmd) under fio with crc32c
# verify, on a linear device over a slow disk and a multipath device: ubdmd
# drains and exits 0 within the stop timeout, leaving each device to the
# kernel (logged "left to the kernel"), nothing completes or fails while no
# daemon runs, the new ubdmd adopts every device (a persistent map of
# maps.d too, adopted rather than created a second time) and fio ends with
# 0 I/O errors and 0 verify failures; same nodes, tables, options, status.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/mpath_lib.sh
. "$(dirname "$0")/mpath_lib.sh"
set -eu
require_ubdm
mp_setup
sd_delay 5
on_exit sd_delay 1
dm_delay slow_a 0 65536 20
conf=$TEST_TMP/conf
mkdir -p "$conf/maps.d"
printf '0 8192 zero\n' >"$conf/maps.d/pm0.table"
start_ubdmd --config "$conf"
on_exit stop_ubdmd

run ubdmsetup create lin --queues 2 --table "0 65536 linear /dev/mapper/slow_a 0"
wait_for /dev/ubdm/lin 5
mp_create mp "$(mp_table "path_check_interval 1" round-robin)"
names="lin mp pm0"
for n in $names; do eval "ident_$n=\$(dev_ident $n)"; done
lin_status=$(ubdmsetup status lin)
ids=$(ublk_ids)

fio_verify_bg lin /dev/ubdm/lin 6M
lin_fio=$FIO_PID
fio_verify_bg mp "$MP_DEV" 6M
mp_fio=$FIO_PID
wait_io_progress /dev/ubdm/lin 100 30
wait_io_progress "$MP_DEV" 100 30
wait_inflight /dev/ubdm/lin 4
wait_inflight "$MP_DEV" 4

term_ubdmd 30
for n in $names; do
  expect_logged "$n at SIGTERM" "left to the kernel" "(^|[^A-Za-z0-9_])$n([^A-Za-z0-9_]|\$)"
done
expect_kept "after SIGTERM" lin mp pm0
expect_eq "$(ublk_ids)" "$ids" "ublk devices after SIGTERM"
for p in "$lin_fio" "$mp_fio"; do
  pid_alive "$p" || die "fio (pid $p) ended before the restart: the test proves nothing"
done
c_lin=$(io_count /dev/ubdm/lin) c_mp=$(io_count "$MP_DEV")
sleep 1.5
expect_eq "$(io_count /dev/ubdm/lin)" "$c_lin" "lin: I/O completed with no daemon"
expect_eq "$(io_count "$MP_DEV")" "$c_mp" "mp: I/O completed with no daemon"

start_ubdmd --config "$conf"
expect_adopted lin mp pm0
expect_eq "$(ubdmsetup ls | grep -c pm0)" 1 "pm0 listed once"
wait_io_progress /dev/ubdm/lin 20
wait_io_progress "$MP_DEV" 20
fio_verify_wait lin "$lin_fio"
fio_verify_wait mp "$mp_fio"

for n in $names; do eval "expect_ident $n \"\$ident_$n\""; done
expect_eq "$(ubdmsetup status lin)" "$lin_status" "lin status after the restart"
expect_eq "$(mp_states mp)" "A A" "mp path states after the restart"
expect_eq "$(ublk_ids)" "$ids" "ublk devices after the restart"
