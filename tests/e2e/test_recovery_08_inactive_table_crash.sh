#!/bin/sh
# shellcheck shell=dash
# A crash with an inactive table loaded, under fio with crc32c verify: the
# next ubdmd adopts the device with both tables (same lines, "LIVE &
# INACTIVE"); resume then makes the staged table live, under fio, with no
# I/O error and no verify failure (both tables map the same data). A table
# loaded and then cleared before a crash does not come back.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
set -eu
require_ubdm
dm_delay slow_a 0 65536 10
start_ubdmd
on_exit stop_ubdmd

slow=/dev/mapper/slow_a
run ubdmsetup create t --table "0 65536 linear $slow 0"
wait_for /dev/ubdm/t 5
# The same mapping in two targets: a different table, the same data.
run ubdmsetup load t --table "0 32768 linear $slow 0" --table "32768 32768 linear $slow 32768"
expect_contains "$(ubdmsetup info t)" "Tables present:    LIVE & INACTIVE" "tables after load"
staged=$(ubdmsetup table --inactive t)
expect_eq "$(printf '%s\n' "$staged" | wc -l)" 2 "lines of the staged table"
ident=$(dev_ident t)

fio_verify_bg t /dev/ubdm/t 12M
fpid=$FIO_PID
wait_io_progress /dev/ubdm/t 100 30
wait_inflight /dev/ubdm/t 4
kill_ubdmd
expect_kept "after kill -9" t
pid_alive "$fpid" || die "fio ended before the crash: the test proves nothing"
start_ubdmd
expect_adopted t
expect_ident t "$ident"
expect_contains "$(ubdmsetup info t)" "Tables present:    LIVE & INACTIVE" "tables after adoption"
wait_io_progress /dev/ubdm/t 20
pid_alive "$fpid" || die "fio ended before the resume: the resume is not under I/O"

run ubdmsetup resume t
expect_eq "$(ubdmsetup table t)" "$staged" "live table after resume"
expect_contains "$(ubdmsetup info t)" "Tables present:    LIVE" "tables after resume"
case $(ubdmsetup info t) in *INACTIVE*) die "an inactive table is left after resume" ;; esac
wait_io_progress /dev/ubdm/t 20
fio_verify_wait t "$fpid"

log "a cleared table stays cleared"
# (error, not zero: a zero target needs copy mode, which a zero-copy device refuses)
run ubdmsetup load t --table "0 65536 error"
run ubdmsetup clear t
ident=$(dev_ident t)
kill_ubdmd
expect_kept "after kill -9" t
start_ubdmd
expect_adopted t
expect_ident t "$ident"
case $(ubdmsetup info t) in *INACTIVE*) die "the cleared table came back after a crash" ;; esac
fio_verify /dev/ubdm/t 1M --iodepth=8
