#!/bin/sh
# ubdmd raises its soft open-file limit to the hard one at start; and under
# the tightest limit a user may give it (soft and hard 1024, e.g.
# LimitNOFILE=1024 or a container) it cannot raise its limit, so
# every ring's fixed-file table must fit in 1024 slots. Several devices with
# several queues are created and carry data.
. "$(dirname "$0")/lib.sh"
set -eu
require_ubdm

# Started with the VM's defaults (a login shell's: soft 1024, hard 4096),
# ubdmd raises its soft limit to the hard one, as well-behaved daemons do.
soft=$(ulimit -Sn) hard=$(ulimit -Hn)
log "this shell's open-file limits: soft $soft, hard $hard"
[ "$soft" -lt "$hard" ] || die "the VM must give a soft limit below the hard one (soft $soft, hard $hard)"
start_ubdmd
limits=$(grep 'Max open files' "/proc/$(ubdmd_pid)/limits")
log "$limits"
expect_match "$limits" "Max open files +$hard +$hard " "ubdmd raised its soft open-file limit to the hard one"
stop_ubdmd

# Lowered in a subshell: a hard limit cannot be raised again, and the rest of
# this test (and its cleanups) should keep the VM's defaults. ubdmd inherits
# the limits; stop_ubdmd finds it through the pid file.
(ulimit -Sn 1024 && ulimit -Hn 1024 && start_ubdmd)
on_exit stop_ubdmd
pid=$(ubdmd_pid)
limits=$(grep 'Max open files' "/proc/$pid/limits")
log "$limits"
expect_match "$limits" 'Max open files +1024 +1024 ' "ubdmd's open-file limits"

# Six devices of two queues (the VM has two CPUs) over slices of /dev/ram0
# (32 MiB each): 12 rings in one process, each with its own fixed-file table.
n=0
while [ $n -lt 6 ]; do
  expect_ok ubdmsetup create "fd$n" --queues 2 --table "0 65536 linear /dev/ram0 $((n * 65536))"
  on_exit ubdmsetup remove "fd$n"
  n=$((n + 1))
done
n=0
while [ $n -lt 6 ]; do
  blk=$(readlink "/dev/ubdm/fd$n")
  sum=$(write_random "$blk" 4 8)
  expect_eq "$(read_md5 /dev/ram0 $((n * 32 + 4)) 8)" "$sum" "fd$n: data on ram0"
  expect_eq "$(read_md5 "$blk" 4 8)" "$sum" "fd$n: data read back"
  n=$((n + 1))
done
fio_verify "$(readlink /dev/ubdm/fd5)" 16M
log "ubdmd holds $(ls "/proc/$pid/fd" | wc -l) descriptors"
