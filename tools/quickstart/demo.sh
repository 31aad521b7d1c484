#!/usr/bin/env bash
# The main job on a fresh machine: install what is missing, build, set up two
# loop devices and run the in-process demo over them. Cleans up after itself.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
tools/install-deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release -j "$(nproc)" --target ubdm-inproc-demo

work=$(mktemp -d)
loops=()
cleanup() {
  for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

for i in 0 1; do
  truncate -s 16M "$work/disk$i.img"
  if [ "$(id -u)" -eq 0 ] && l=$(losetup --direct-io=on -f --show "$work/disk$i.img" 2>/dev/null); then
    loops+=("$l")
  else
    loops_unavailable=1
  fi
done

if [ -n "${loops_unavailable:-}" ]; then
  echo "demo: loop devices unavailable (not root?); using plain files"
  for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
  loops=()
  build/release/ubdm-inproc-demo "$work/disk0.img" "$work/disk1.img"
else
  echo "demo: underlying devices ${loops[*]}"
  build/release/ubdm-inproc-demo "${loops[0]}" "${loops[1]}"
fi
