#!/bin/sh
# shellcheck shell=dash
# kill -9 of ubdmd under fio with crc32c verify, on a linear and a striped
# device over slow disks (I/O is in flight at the kill): both devices stay
# (same /dev/ublkbN and /dev/ubdm/NAME), nothing completes and nothing fails
# while no daemon runs, the next ubdmd adopts both before its socket exists
# (logged), the reissued and held I/O completes, and fio ends with 0 I/O
# errors and 0 verify failures; tables, options (queues, depth, poll_usec)
# and status are those from before.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
set -eu
require_ubdm
# Three 32 MiB parts of /dev/ram0, 20 ms per I/O.
dm_delay slow_a 0 65536 20
dm_delay slow_b 65536 65536 20
dm_delay slow_c 131072 65536 20
start_ubdmd
on_exit stop_ubdmd

run ubdmsetup create lin --queues 2 --depth 64 --poll-usec 20 --table "0 65536 linear /dev/mapper/slow_a 0"
run ubdmsetup create str --table "0 131072 striped 2 128 /dev/mapper/slow_b 0 /dev/mapper/slow_c 0"
wait_for /dev/ubdm/lin 5
wait_for /dev/ubdm/str 5
lin_ident=$(dev_ident lin)
str_ident=$(dev_ident str)
lin_status=$(ubdmsetup status lin)
str_status=$(ubdmsetup status str)
ids=$(ublk_ids)
expect_eq "$(state_files | tr '\n' ' ')" "lin.json str.json " "state files"

fio_verify_bg lin /dev/ubdm/lin 6M
lin_fio=$FIO_PID
fio_verify_bg str /dev/ubdm/str 6M
str_fio=$FIO_PID
wait_io_progress /dev/ubdm/lin 100 30
wait_io_progress /dev/ubdm/str 100 30
wait_inflight /dev/ubdm/lin 4
wait_inflight /dev/ubdm/str 4

kill_ubdmd
for p in "$lin_fio" "$str_fio"; do
  pid_alive "$p" || die "fio (pid $p) ended before the crash: the test proves nothing"
done
expect_kept "after kill -9" lin str
expect_eq "$(ublk_ids)" "$ids" "ublk devices after kill -9"
# No daemon: nothing can complete, and fio waits without error.
sleep 0.3
c_lin=$(io_count /dev/ubdm/lin) c_str=$(io_count /dev/ubdm/str)
sleep 1.5
expect_eq "$(io_count /dev/ubdm/lin)" "$c_lin" "lin: I/O completed with no daemon"
expect_eq "$(io_count /dev/ubdm/str)" "$c_str" "str: I/O completed with no daemon"
pid_alive "$lin_fio" || die "fio on lin ended while no daemon ran: $(cat "$TEST_TMP/fio-lin.out")"
pid_alive "$str_fio" || die "fio on str ended while no daemon ran: $(cat "$TEST_TMP/fio-str.out")"

start_ubdmd
# Adopted before the socket existed: listed at once.
expect_contains "$(ubdmsetup ls)" lin "ls right after start"
expect_contains "$(ubdmsetup ls)" str "ls right after start"
expect_adopted lin str
wait_io_progress /dev/ubdm/lin 20
wait_io_progress /dev/ubdm/str 20
fio_verify_wait lin "$lin_fio"
fio_verify_wait str "$str_fio"

expect_ident lin "$lin_ident"
expect_ident str "$str_ident"
expect_eq "$(ubdmsetup status lin)" "$lin_status" "lin status after adoption"
expect_eq "$(ubdmsetup status str)" "$str_status" "str status after adoption"
expect_eq "$(ublk_ids)" "$ids" "ublk devices after adoption"
# And the adopted devices take new I/O as before.
fio_verify /dev/ubdm/str 2M --iodepth=8
