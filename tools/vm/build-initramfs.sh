#!/usr/bin/env bash
# Build the test VM's initramfs.
#
#   tools/vm/build-initramfs.sh OUT.cpio.gz [--bin PATH...] --tests DIR [--data DIR]
#
# Packs busybox, the given binaries (into /bin) with every library ldd names
# and the dynamic loader, fio, mke2fs/e2fsck/mkfs.ext4, dmsetup, blockdev and
# a few util-linux tools, the modules cached by fetch.sh (/lib/modules), the
# test directory (/tests) and an optional data directory (/data), plus an
# /init that sets the machine up and runs /tests/run-all.sh (or the script
# named by ubdm.run= on the kernel command line), then powers off.
#
# UBDM_VM_COMPRESS=gzip|none (default gzip, level 1): the kernel takes both.
set -euo pipefail
# shellcheck source=tools/vm/common.sh
. "$(dirname "$0")/common.sh"

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

out='' tests='' data=''
bins=()
[ $# -gt 0 ] || usage
case $1 in -*) usage ;; esac
out=$1
shift
while [ $# -gt 0 ]; do
  case $1 in
    --bin)
      shift
      while [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; do bins+=("$1"); shift; done
      ;;
    --tests) tests=${2:?--tests needs a directory}; shift 2 ;;
    --data) data=${2:?--data needs a directory}; shift 2 ;;
    -h | --help) usage ;;
    *) vm_die "unknown argument: $1" ;;
  esac
done
[ -n "$tests" ] || vm_die "--tests DIR is required"
[ -d "$tests" ] || vm_die "no test directory $tests"
[ -z "$data" ] || [ -d "$data" ] || vm_die "no data directory $data"

kdir=$(vm_kernel_dir)
busybox=$(command -v busybox || true)
[ -n "$busybox" ] || busybox=/bin/busybox
[ -x "$busybox" ] || vm_die "busybox not found (tools/vm/fetch.sh installs busybox-static)"
if ldd "$busybox" >/dev/null 2>&1; then
  vm_die "$busybox is dynamically linked; install busybox-static"
fi

# Host tools packed into the guest: name -> where they are looked up.
# blkid and wipefs (util-linux's, not busybox's): the native bench probes
# disks for filesystems and partition tables with them.
host_tools=(fio mke2fs e2fsck dumpe2fs resize2fs dmsetup blockdev blkdiscard lsblk losetup blkid wipefs)
host_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

stage=$(mktemp -d "${TMPDIR:-/tmp}/ubdm-initramfs.XXXXXX")
trap 'rm -rf "$stage"' EXIT

# A merged-/usr layout, like the host's.
mkdir -p "$stage"/usr/{bin,sbin,lib,lib64} "$stage"/{dev,proc,sys,run,tmp,etc,root,mnt,tests}
ln -s usr/bin "$stage/bin"
ln -s usr/sbin "$stage/sbin"
ln -s usr/lib "$stage/lib"
ln -s usr/lib64 "$stage/lib64"

# The place a host path takes in the staged tree.
staged() {
  local p=$1
  case $p in
    /bin/* | /sbin/* | /lib/* | /lib64/*) p=/usr$p ;;
  esac
  printf '%s\n' "$stage$p"
}

declare -A copied=()
copy_file() { # host path -> same path in the guest (symlinks resolved)
  local src=$1 dst
  [ -z "${copied[$src]:-}" ] || return 0
  copied[$src]=1
  dst=$(staged "$src")
  mkdir -p "$(dirname "$dst")"
  cp -L "$src" "$dst"
}

copy_libs() { # every library a binary needs, and the loader
  local bin=$1 out lib
  if ! out=$(ldd "$bin" 2>&1); then
    case $out in
      *"not a dynamic executable"* | *"statically linked"*) return 0 ;;
      *) vm_die "ldd $bin failed: $out" ;;
    esac
  fi
  if grep -q 'not found' <<<"$out"; then
    vm_die "libraries of $bin not found: $(grep 'not found' <<<"$out" | tr -s ' \t' ' ')"
  fi
  while read -r lib; do
    copy_file "$lib"
  done < <(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }' <<<"$out")
}

cp "$busybox" "$stage/usr/bin/busybox"

for t in "${host_tools[@]}"; do
  p=$(PATH=$host_path command -v "$t" || true)
  [ -n "$p" ] || vm_die "host tool $t not found (run tools/vm/fetch.sh)"
  copy_file "$p"
  copy_libs "$p"
done
ln -sf mke2fs "$(dirname "$(staged "$(PATH=$host_path command -v mke2fs)")")/mkfs.ext4"
ln -sf mke2fs "$(dirname "$(staged "$(PATH=$host_path command -v mke2fs)")")/mkfs.ext2"
# glibc dlopens libgcc_s for pthread_cancel and unwinding.
for l in /lib/x86_64-linux-gnu/libgcc_s.so.1 /usr/lib/x86_64-linux-gnu/libgcc_s.so.1; do
  if [ -f "$l" ]; then copy_file "$l"; break; fi
done
[ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$stage/etc/mke2fs.conf"

for b in ${bins[@]+"${bins[@]}"}; do
  if [ ! -f "$b" ] || [ ! -x "$b" ]; then vm_die "--bin $b: not an executable file"; fi
  cp -L "$b" "$stage/usr/bin/$(basename "$b")"
  copy_libs "$b"
  vm_msg "packed $(basename "$b") from $b"
done

# Modules, uncompressed, with their load order.
mkdir -p "$stage/usr/lib/modules"
cp "$kdir"/modules/*.ko "$kdir/modules/load-order" "$stage/usr/lib/modules/"

# Tests and data.
cp -a "$tests/." "$stage/tests/"
if [ -n "$data" ]; then
  mkdir -p "$stage/data"
  cp -a "$data/." "$stage/data/"
fi

cat >"$stage/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$stage/etc/group" <<'EOF'
root:x:0:
disk:x:6:
nogroup:x:65534:
EOF
printf 'ubdm-vm\n' >"$stage/etc/hostname"

# The kernel opens /dev/console for init before anything is mounted.
mknod -m 600 "$stage/dev/console" c 5 1 2>/dev/null || true
mknod -m 666 "$stage/dev/null" c 1 3 2>/dev/null || true

cat >"$stage/init" <<'INIT'
#!/bin/busybox sh
# /init of the ubdm test VM (generated by tools/vm/build-initramfs.sh).
/bin/busybox mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
/bin/busybox --install -s
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb
# libdevmapper creates /dev/mapper nodes itself instead of waiting for udev.
export DM_DISABLE_UDEV=1

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
hostname ubdm-vm
# Resource limits stay at the kernel's defaults (open files: soft 1024, hard
# 4096; locked memory: 8 MiB), as on a user's machine: the VM must not be
# friendlier than that. A test that needs other limits sets them itself.

# Module parameters, the same for every test (tests/e2e/lib.sh documents
# them; reload_module there changes them for one test).
modparams() {
  case $1 in
    scsi_debug) echo "add_host=2 num_tgts=1 max_luns=1 vpd_use_hostno=0 dev_size_mb=256" ;;
    null_blk) echo "nr_devices=1 gb=1 queue_mode=2" ;;
    brd) echo "rd_nr=1 rd_size=262144" ;;
  esac
}
while read -r m; do
  [ -n "$m" ] || continue
  # shellcheck disable=SC2046
  insmod "/lib/modules/$m.ko" $(modparams "$m") || echo "UBDM-VM: insmod $m failed"
  if [ "$m" = configfs ]; then mount -t configfs configfs /sys/kernel/config; fi
done </lib/modules/load-order

# scsi_debug's disks are probed asynchronously: wait for both.
i=0
while [ "$(grep -l scsi_debug /sys/block/sd*/device/model 2>/dev/null | wc -l)" -lt 2 ] && [ $i -lt 100 ]; do
  sleep 0.1; i=$((i + 1))
done

# ubdm.KEY=VALUE on the kernel command line becomes UBDM_KEY=VALUE.
for w in $(cat /proc/cmdline); do
  case $w in
    ubdm.*=*)
      k=${w%%=*}; k=${k#ubdm.}; v=${w#*=}
      k=$(echo "$k" | tr 'a-z.-' 'A-Z__')
      case $k in *[!A-Z0-9_]*) continue ;; esac
      export "UBDM_$k=$v"
      ;;
  esac
done

echo "UBDM-VM: up $(cut -d" " -f1 /proc/uptime)s, kernel $(uname -r), $(nproc) cpus, $(awk '/MemTotal/ { print int($2 / 1024) " MiB" }' /proc/meminfo), modules: $(lsmod | awk 'NR > 1 { printf "%s ", $1 }')"
cd /
run=${UBDM_RUN:-/tests/run-all.sh}
if [ "$run" = shell ]; then
  echo "UBDM-VM: shell; 'poweroff -f' to leave (or Ctrl-a x to kill QEMU)"
  export TERM=vt100
  setsid cttyhack sh -l
else
  sh "$run"
  echo "UBDM-VM: $run exited with status $?"
fi
sync
poweroff -f
INIT
chmod 755 "$stage/init"

compress=${UBDM_VM_COMPRESS:-gzip}
mkdir -p "$(dirname "$out")"
(
  cd "$stage"
  find . -mindepth 1 -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet
) | case $compress in
  gzip) gzip -1 ;;
  none) cat ;;
  *) vm_die "UBDM_VM_COMPRESS must be gzip or none" ;;
esac >"$out.tmp"
mv "$out.tmp" "$out"
vm_msg "initramfs $out: $(du -h "$out" | cut -f1) ($compress), $(du -sh "$stage" | cut -f1) unpacked"
