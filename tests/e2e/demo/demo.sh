#!/bin/sh
# The ubdm demo: start ubdmd, create a striped device over two block
# devices, show it the dmsetup way, run fio on it with crc32c verify, show
# its status again, remove it and stop the daemon.
#
#   demo.sh [DEV_A DEV_B]   (default in the test VM: /dev/ram0 and the first
#                            scsi_debug disk)
# Environment: UBDMD, UBDMSETUP (binaries), UBDM_SOCK (control socket).
# POSIX sh: it runs under busybox in the VM and under bash on a host.
set -eu

UBDMD=${UBDMD:-ubdmd}
UBDMSETUP=${UBDMSETUP:-ubdmsetup}
SOCK=${UBDM_SOCK:-/run/ubdm/control.sock}
LOG=${UBDM_DEMO_LOG:-/tmp/ubdmd-demo.log}

if [ $# -eq 2 ]; then
  a=$1 b=$2
else
  a=/dev/ram0
  b=
  for m in /sys/block/sd*/device/model; do
    if [ -e "$m" ] && grep -q scsi_debug "$m"; then
      b=/dev/$(echo "$m" | cut -d/ -f4)
      break
    fi
  done
  [ -n "$b" ] || { echo "demo: no scsi_debug disk found; pass two devices" >&2; exit 2; }
fi

step() { printf '\n==> %s\n' "$*"; }
u() {
  printf '$ ubdmsetup %s\n' "$*"
  "$UBDMSETUP" --socket "$SOCK" "$@"
}

pid=
cleanup() {
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

# Up to 128 MiB from each device, a whole number of 64 KiB chunks.
sa=$(blockdev --getsz "$a")
sb=$(blockdev --getsz "$b")
per=$((sa < sb ? sa : sb))
[ "$per" -le 262144 ] || per=262144
per=$((per / 128 * 128))
size=$((per * 2))

step "create a device striped over $a and $b (64 KiB chunks)"
u create demo --table "0 $size striped 2 128 $a 0 $b 0"
u info demo
u table demo
u status demo
dev=$("$UBDMSETUP" --socket "$SOCK" info demo | sed -n 's/^Block device: *//p')

step "fio on $dev: 4k/64k random writes with crc32c verify, 32 in flight"
fio --name=demo --filename="$dev" --ioengine=io_uring --direct=1 --rw=randwrite --bssplit=4k/50:64k/50 \
  --iodepth=32 --size=48M --verify=crc32c --do_verify=1 --verify_fatal=1 --output=/tmp/fio-demo.out
grep -E 'err=|IOPS=|READ:|WRITE:' /tmp/fio-demo.out | sed 's/^ */  /'
grep -q 'err= 0' /tmp/fio-demo.out || { echo "demo: fio reported errors" >&2; exit 1; }

step "status and table after I/O"
u status demo
u table demo

step "remove the device and stop ubdmd"
u remove demo
u ls
kill -TERM "$pid"
wait "$pid"
pid=
echo
echo "demo: done"
