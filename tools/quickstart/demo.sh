#!/usr/bin/env bash
# The main job on a fresh machine: install what is missing, build ubdm, and
# run the demo (tests/e2e/demo/demo.sh): ubdmd serves a multipath device
# over two paths to one LUN, fio writes and verifies it while one path fails
# and comes back, and ubdmsetup shows the paths throughout.
#
# Where this kernel has ublk (/dev/ublk-control, or `modprobe ublk_drv`
# works) the demo runs natively: two loop devices over one backing file are
# the two paths, each behind a dm-linear device so that it can fail and come
# back (an open loop device cannot be failed). Otherwise it boots the
# project's test VM (tools/vm), where scsi_debug gives two paths, and says so.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
tools/install-deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release -j "$(nproc)" --target ubdmd ubdmsetup

if [ ! -e /dev/ublk-control ] && [ "$(id -u)" -eq 0 ]; then
  modprobe ublk_drv 2>/dev/null || true
fi

if [ -e /dev/ublk-control ]; then
  echo "demo: this kernel has ublk: running natively, two loop devices over one file as the two paths"
  command -v fio >/dev/null || tools/install-deps.sh fio
  modprobe dm_mod 2>/dev/null || true
  work=$(mktemp -d)
  loops=() paths=()
  cleanup() {
    for p in "${paths[@]}"; do dmsetup remove "$p" 2>/dev/null || true; done
    for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
    rm -rf "$work"
  }
  trap cleanup EXIT
  truncate -s 256M "$work/lun.img"
  for i in 0 1; do
    loops+=("$(losetup --direct-io=on -f --show "$work/lun.img")")
    dmsetup create "ubdm-demo-path$i" --table "0 $(blockdev --getsz "${loops[$i]}") linear ${loops[$i]} 0"
    paths+=("/dev/mapper/ubdm-demo-path$i")
  done
  UBDMD=build/release/ubdmd UBDMSETUP=build/release/ubdmsetup UBDM_SOCK="$work/control.sock" \
    UBDM_DEMO_LOG="$work/ubdmd.log" UBDM_DEMO_FIO_OUT="$work/fio.out" tests/e2e/demo/demo.sh "${paths[@]}"
else
  echo "demo: this kernel has no ublk (no /dev/ublk-control); running the demo in the test VM (QEMU, tools/vm)"
  # shellcheck source=tools/vm/common.sh
  . tools/vm/common.sh
  tools/vm/fetch.sh
  mkdir -p "$UBDM_VM_WORK"
  initrd=$UBDM_VM_WORK/demo-initrd.cpio.gz
  tools/vm/build-initramfs.sh "$initrd" --bin build/release/ubdmd build/release/ubdmsetup --tests tests/e2e
  log=$UBDM_VM_WORK/demo-console.log
  rc=0
  vm_boot "$initrd" "$log" 600 "ubdm.run=/tests/demo/demo.sh" || rc=$?
  grep -q '^demo: done' "$log" || { echo "demo: the demo did not finish in the VM (console log: $log)" >&2; exit 1; }
  exit "$rc"
fi
