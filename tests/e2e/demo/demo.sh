#!/bin/sh
# The ubdm demo: what a user buys it for. ubdmd serves a multipath device
# over two paths to one LUN; fio writes and verifies it while one path fails
# and comes back; `ubdmsetup paths` and `status` show the path go and the
# built-in checker reinstate it; fio ends with 0 errors.
#
#   demo.sh [PATH_A PATH_B]   two paths to one LUN (default in the test VM:
#                             the two scsi_debug paths)
#
# A path fails and returns the way its kind allows: a SCSI disk is set
# offline and back to running (its sysfs state); a dm device (the native
# demo's paths: dm-linear over loop devices, as an open loop device cannot
# be failed) gets an error table and then its own table back.
# Environment: UBDMD, UBDMSETUP (binaries), UBDM_SOCK (control socket),
# UBDM_DEMO_LOG (ubdmd's log). POSIX sh: busybox in the VM, bash on a host.
set -eu

UBDMD=${UBDMD:-ubdmd}
UBDMSETUP=${UBDMSETUP:-ubdmsetup}
SOCK=${UBDM_SOCK:-/run/ubdm/control.sock}
LOG=${UBDM_DEMO_LOG:-/tmp/ubdmd-demo.log}
FIO_OUT=${UBDM_DEMO_FIO_OUT:-/tmp/fio-demo.out}

if [ $# -eq 2 ]; then
  a=$1 b=$2
else
  a='' b=''
  for m in /sys/block/sd*/device/model; do
    if [ -e "$m" ] && grep -q scsi_debug "$m"; then
      d=/dev/$(echo "$m" | cut -d/ -f4)
      if [ -z "$a" ]; then a=$d; elif [ -z "$b" ]; then b=$d; fi
    fi
  done
  [ -n "$b" ] || { echo "demo: fewer than two scsi_debug paths; pass two paths to one LUN" >&2; exit 2; }
fi

step() { printf '\n==> %s\n' "$*"; }
u() {
  printf '$ ubdmsetup %s\n' "$*"
  "$UBDMSETUP" --socket "$SOCK" "$@"
}
# The sysfs directory of a block device node.
sys_of() { echo "/sys/class/block/$(basename "$(readlink -f "$1")")"; }
path_down() {
  if [ -e "$(sys_of "$1")/device/state" ]; then
    echo offline >"$(sys_of "$1")/device/state"
  else
    saved_table=$(dmsetup table "$1")
    dmsetup load "$1" --table "0 $(blockdev --getsz "$1") error"
    dmsetup resume "$1"
  fi
}
path_up() {
  if [ -e "$(sys_of "$1")/device/state" ]; then
    echo running >"$(sys_of "$1")/device/state"
  else
    dmsetup load "$1" --table "$saved_table"
    dmsetup resume "$1"
  fi
}
# The state of PATH's line in `ubdmsetup paths demo`.
path_state() { "$UBDMSETUP" --socket "$SOCK" paths demo | awk -v p="$1" '$0 ~ p { for (i = 1; i <= NF; i++) if ($i == "active" || $i == "failed") { print $i; exit } }'; }
wait_state() { # PATH STATE SECONDS
  i=0
  while [ "$(path_state "$1")" != "$2" ]; do
    i=$((i + 1))
    [ $i -le $(($3 * 10)) ] || { echo "demo: $1 did not become $2 within $3 s" >&2; exit 1; }
    sleep 0.1
  done
}

# I/Os completed on block device DEV (sysfs stat: reads + writes).
io_done() { awk '{ print $1 + $5 }' "$(sys_of "$1")/stat"; }
wait_io() { # DEV COUNT SECONDS: until COUNT more I/Os have completed
  target=$(($(io_done "$1") + $2))
  i=0
  while [ "$(io_done "$1")" -lt "$target" ]; do
    i=$((i + 1))
    [ $i -le $(($3 * 10)) ] || { echo "demo: fio did not start I/O on $1 within $3 s" >&2; exit 1; }
    sleep 0.1
  done
}

pid='' fio_pid='' down=''
cleanup() {
  [ -z "$down" ] || path_up "$b" || true
  [ -z "$fio_pid" ] || kill "$fio_pid" 2>/dev/null || true
  "$UBDMSETUP" --socket "$SOCK" remove --force demo >/dev/null 2>&1 || true
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    wait "$pid" || true
  fi
}
trap cleanup EXIT

step "start ubdmd (log: $LOG)"
mkdir -p "$(dirname "$SOCK")"
"$UBDMD" --foreground --socket "$SOCK" --log-level info >"$LOG" 2>&1 &
pid=$!
i=0
while [ ! -S "$SOCK" ]; do
  kill -0 "$pid" 2>/dev/null || { cat "$LOG"; echo "demo: ubdmd failed to start" >&2; exit 1; }
  i=$((i + 1))
  [ $i -lt 100 ] || { echo "demo: ubdmd did not create $SOCK" >&2; exit 1; }
  sleep 0.1
done
"$UBDMSETUP" --socket "$SOCK" version

# The dm-multipath table multipathd would write for two paths in one
# round-robin group, plus ubdm's checker every second (multipathd's
# polling_interval; the default is 5 s) so the demo is short.
size=$(blockdev --getsz "$a")
table="0 $size multipath 3 queue_if_no_path path_check_interval 1 0 1 1 round-robin 0 2 1 $a 1 $b 1"
step "create a multipath device over $a and $b, two paths to one LUN"
u create demo --table "$table"
u paths demo
u status demo
dev=$("$UBDMSETUP" --socket "$SOCK" info demo | sed -n 's/^Block device: *//p')

step "fio on $dev: 64 MiB of 4k/64k random writes, 16 in flight, then all of it read back and checked (crc32c)"
fio --name=demo --filename="$dev" --ioengine=io_uring --direct=1 --rw=randwrite --bssplit=4k/50:64k/50 \
  --iodepth=16 --size=64M --verify=crc32c --do_verify=1 --verify_fatal=1 --output="$FIO_OUT" &
fio_pid=$!
wait_io "$dev" 200 60
u paths demo

step "fail path $b under fio"
path_down "$b"
down=1
wait_state "$b" failed 10
# I/O goes on over the other path.
wait_io "$dev" 200 60
u paths demo
u status demo

step "bring $b back: the checker reinstates it"
path_up "$b"
down=
wait_state "$b" active 10
u paths demo

step "fio's result"
wait "$fio_pid" || { fio_pid=; cat "$FIO_OUT"; echo "demo: fio failed" >&2; exit 1; }
fio_pid=
grep -E 'err=|IOPS=|WRITE:|READ:' "$FIO_OUT" | sed 's/^ */  /'
grep -q 'err= 0' "$FIO_OUT" || { echo "demo: fio reported errors" >&2; exit 1; }
u paths demo

step "remove the device and stop ubdmd"
u remove demo
kill -TERM "$pid"
wait "$pid"
pid=
cat <<'EOF'

demo: done: a path failed and came back under fio, and no I/O failed.
Next: the README ("Using ubdmd and ubdmsetup", "multipath"), `ubdmsetup --help`,
docs/architecture.md for how it works, docs/performance.md for figures,
and tools/bench/run.sh to measure it beside the kernel's dm-multipath.
EOF
