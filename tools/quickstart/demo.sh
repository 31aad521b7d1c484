#!/usr/bin/env bash
# The main job on a fresh machine: install what is missing, build ubdm, and
# run the demo (tests/e2e/demo/demo.sh): ubdmd serves a striped device as a
# ublk disk, fio writes and verifies it, ubdmsetup shows info/table/status.
#
# Where this kernel has ublk (/dev/ublk-control, or `modprobe ublk_drv`
# works) the demo runs natively over two loop devices. Otherwise it boots
# the project's test VM (tools/vm) and runs there, and says so.
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
  echo "demo: this kernel has ublk: running natively over two loop devices"
  command -v fio >/dev/null || tools/install-deps.sh fio
  work=$(mktemp -d)
  loops=()
  cleanup() {
    for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
    rm -rf "$work"
  }
  trap cleanup EXIT
  for i in 0 1; do
    truncate -s 128M "$work/disk$i.img"
    loops+=("$(losetup --direct-io=on -f --show "$work/disk$i.img")")
  done
  UBDMD=build/release/ubdmd UBDMSETUP=build/release/ubdmsetup UBDM_SOCK="$work/control.sock" \
    UBDM_DEMO_LOG="$work/ubdmd.log" tests/e2e/demo/demo.sh "${loops[0]}" "${loops[1]}"
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
