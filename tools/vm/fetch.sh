#!/usr/bin/env bash
# Prepare everything the test VM needs. Idempotent.
#
#  1. host packages (qemu, busybox, fio, ...): apt-get install, only if missing
#  2. a ublk-capable kernel: the newest linux-image-6.12*-cloud-amd64-unsigned
#     from Debian bookworm-backports, fetched with a private apt config (the
#     host's apt config is only read, never changed)
#  3. vmlinuz + the needed modules, decompressed, and their load order, into
#     ${UBDM_VM_CACHE:-$HOME/.cache/ubdm/vm}/kernels/<kernel version>/
#
# UBDM_VM_MIRROR overrides the Debian mirror (default: the host's).
# The backports index is refreshed at most once a day (UBDM_VM_REFRESH=1
# forces it, UBDM_VM_REFRESH=0 never refreshes if a kernel is cached). If the
# mirror cannot be reached but a kernel is cached, the cached one is used.
set -euo pipefail
# shellcheck source=tools/vm/common.sh
. "$(dirname "$0")/common.sh"

# --- 1. host packages -------------------------------------------------------
host_packages=(qemu-system-x86 busybox-static cpio gzip xz-utils fio e2fsprogs
  dmsetup util-linux kmod coreutils)
missing=()
for p in "${host_packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ! command -v python3 >/dev/null 2>&1; then
  missing+=(python3)   # tools/bench/run.sh parses fio's JSON with it
fi
if [ ${#missing[@]} -gt 0 ]; then
  vm_msg "installing host packages: ${missing[*]}"
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -q
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  vm_msg "host packages present"
fi

# --- 2. the kernel package ---------------------------------------------------
# Modules the guest loads (module names as in modules.dep, without .ko*).
# Their dependencies from modules.dep are added automatically.
wanted_modules=(configfs loop brd null_blk ublk_drv
  scsi_common scsi_mod sd_mod crc-t10dif scsi_debug
  dm-mod dm-multipath dm-round-robin dm-queue-length dm-service-time
  dm-flakey dm-delay dm-zero)
pkg_regex='^linux-image-6\.12[^ ]*-cloud-amd64-unsigned$'

apt_dir=$UBDM_VM_CACHE/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$UBDM_VM_CACHE/kernels"

# The Debian mirror the host already uses (first deb822 or one-line source
# that serves a plain "bookworm" suite, not -security).
host_mirror() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk '
      function flush() {
        if (!found && types ~ /(^| )deb( |$)/ && suites ~ /(^| )bookworm( |$)/ && uris != "") {
          split(uris, u, " "); print u[1]; found = 1; exit
        }
        types = suites = uris = ""
      }
      /^[ \t]*$/ { flush(); next }
      /^#/ { next }
      tolower($1) == "types:" { $1 = ""; types = $0 }
      tolower($1) == "suites:" { $1 = ""; suites = $0 }
      tolower($1) == "uris:" { $1 = ""; uris = $0 }
      END { if (!found) flush() }' "$f")
    if [ -n "$uri" ]; then printf '%s\n' "$uri"; return; fi
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri=$(awk '$1 == "deb" {
        i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        if ($(i + 1) == "bookworm") { print $i; exit } }' "$f")
    if [ -n "$uri" ]; then printf '%s\n' "$uri"; return; fi
  done
  printf '%s\n' "http://deb.debian.org/debian"
}

mirror=${UBDM_VM_MIRROR:-$(host_mirror)}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || vm_die "$keyring is missing (install debian-archive-keyring)"
printf 'deb [signed-by=%s] %s bookworm-backports main\n' "$keyring" "$mirror" >"$apt_dir/sources.list"

apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list"
  -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$apt_dir/lists"
  -o "Dir::Cache=$apt_dir/cache"
  -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
  -o Dir::State::status=/dev/null
  -o APT::Sandbox::User=root
  -o Debug::NoLocking=true)

cached_kver=
if [ -f "$UBDM_VM_CACHE/current" ]; then
  cached_kver=$(cat "$UBDM_VM_CACHE/current")
  [ -f "$UBDM_VM_CACHE/kernels/$cached_kver/.complete" ] || cached_kver=
fi

refresh=${UBDM_VM_REFRESH:-auto}
stamp=$apt_dir/lists/.updated
if [ "$refresh" = auto ]; then
  refresh=1
  if [ -n "$cached_kver" ] && [ -f "$stamp" ] && [ -n "$(find "$stamp" -mmin -1440 2>/dev/null)" ]; then
    refresh=0
  fi
fi
if [ "$refresh" = 0 ] && [ -n "$cached_kver" ]; then
  vm_msg "kernel $cached_kver cached in $UBDM_VM_CACHE (index checked within a day; UBDM_VM_REFRESH=1 to re-check)"
  exit 0
fi

vm_msg "updating the bookworm-backports index from $mirror (private apt lists in $apt_dir)"
if ! apt-get "${apt_opts[@]}" -q --error-on=any update >"$apt_dir/update.log" 2>&1; then
  if [ -n "$cached_kver" ]; then
    vm_msg "warning: apt-get update failed (see $apt_dir/update.log); using cached kernel $cached_kver"
    exit 0
  fi
  cat "$apt_dir/update.log" >&2
  vm_die "cannot fetch the bookworm-backports index from $mirror"
fi
touch "$stamp"

# Newest matching package by Debian version order.
best_pkg='' best_ver=''
while read -r name; do
  [ -n "$name" ] || continue
  ver=$(apt-cache "${apt_opts[@]}" show --no-all-versions "$name" 2>/dev/null | awk '/^Version:/ { print $2; exit }')
  [ -n "$ver" ] || continue
  if [ -z "$best_pkg" ] || dpkg --compare-versions "$ver" gt "$best_ver"; then
    best_pkg=$name best_ver=$ver
  fi
done < <(apt-cache "${apt_opts[@]}" pkgnames linux-image-6.12 2>/dev/null | grep -E "$pkg_regex" || true)

if [ -z "$best_pkg" ]; then
  if [ -n "$cached_kver" ]; then
    vm_msg "warning: no package matching $pkg_regex in $mirror bookworm-backports; using cached kernel $cached_kver"
    exit 0
  fi
  vm_die "no package matching $pkg_regex in $mirror bookworm-backports (see $apt_dir/update.log)"
fi
vm_msg "newest ublk-capable kernel: $best_pkg ($best_ver)"

# The kernel release (uname -r) is the package name without the decoration.
kver=${best_pkg#linux-image-}
kver=${kver%-unsigned}
kdir=$UBDM_VM_CACHE/kernels/$kver
if [ -f "$kdir/.complete" ] && [ "$(cat "$kdir/.complete")" = "$best_pkg $best_ver" ]; then
  vm_msg "kernel $kver already cached in $kdir"
  printf '%s\n' "$kver" >"$UBDM_VM_CACHE/current"
  exit 0
fi

# --- 3. download and extract -------------------------------------------------
tmp=$(mktemp -d "$UBDM_VM_CACHE/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
vm_msg "downloading $best_pkg=$best_ver"
(cd "$tmp" && apt-get "${apt_opts[@]}" -q download "$best_pkg=$best_ver") >&2 ||
  vm_die "apt-get download $best_pkg=$best_ver failed"
deb=$(find "$tmp" -maxdepth 1 -name '*.deb' | head -n1)
[ -n "$deb" ] || vm_die "apt-get download produced no .deb"
vm_msg "extracting $(basename "$deb") ($(du -h "$deb" | cut -f1))"
dpkg-deb -x "$deb" "$tmp/root"

moddir=$tmp/root/lib/modules/$kver
[ -d "$moddir" ] || moddir=$tmp/root/usr/lib/modules/$kver
[ -d "$moddir" ] || vm_die "the package has no modules directory for $kver"
vmlinuz=$tmp/root/boot/vmlinuz-$kver
[ -f "$vmlinuz" ] || vm_die "the package has no /boot/vmlinuz-$kver"
grep -q '^CONFIG_BLK_DEV_UBLK=[my]' "$tmp/root/boot/config-$kver" ||
  vm_die "$best_pkg has no ublk (CONFIG_BLK_DEV_UBLK)"

# The package ships no modules.dep (depmod runs at install time): make one.
depmod -b "$tmp/root" "$kver" 2>/dev/null || depmod -b "$tmp/root" "$kver"
[ -f "$moddir/modules.dep" ] || vm_die "depmod produced no modules.dep"

# Resolve dependencies from modules.dep and produce a load order (deps first).
# modules.dep lines: "kernel/path/a.ko.xz: kernel/path/b.ko.xz ..."; modules
# in modules.builtin (e.g. crc-t10dif in this kernel) need no loading.
# Module names compare with '-' and '_' treated alike, as the kernel does.
order=$(awk -v want="${wanted_modules[*]}" '
  function norm(s) { gsub(/-/, "_", s); return s }
  function base(p,   b) { b = p; sub(/.*\//, "", b); sub(/\.ko(\.[a-z]+)?$/, "", b); return b }
  FILENAME ~ /modules\.builtin$/ { builtin[norm(base($1))] = 1; next }
  {
    sub(/:$/, "", $1)
    m = norm(base($1)); path[m] = $1; ndeps[m] = NF - 1
    for (i = 2; i <= NF; i++) dep[m, i - 1] = norm(base($i))
  }
  function visit(m,   i) {
    if (m in seen) return
    seen[m] = 1
    if (m in builtin) { print "BUILTIN " m; return }
    if (!(m in path)) { print "MISSING " m; return }
    # modules.dep lists dependencies so that the last must load first.
    for (i = ndeps[m]; i >= 1; i--) visit(dep[m, i])
    print path[m]
  }
  END { n = split(want, w, " "); for (i = 1; i <= n; i++) visit(norm(w[i])) }
' "$moddir/modules.builtin" "$moddir/modules.dep")
if grep -q '^MISSING' <<<"$order"; then
  vm_die "modules not in $best_pkg: $(grep '^MISSING' <<<"$order" | cut -d' ' -f2 | tr '\n' ' ')"
fi

stage=$tmp/kernel
mkdir -p "$stage/modules"
cp "$vmlinuz" "$stage/vmlinuz"
cp "$tmp/root/boot/config-$kver" "$stage/config"
: >"$stage/modules/load-order"
while read -r rel; do
  src=$moddir/$rel
  name=$(basename "$rel")
  name=${name%.xz}; name=${name%.zst}; name=${name%.gz}
  case $rel in
    *.ko.xz) xz -dc "$src" >"$stage/modules/$name" ;;
    *.ko.zst) zstd -qdc "$src" >"$stage/modules/$name" ;;
    *.ko.gz) gzip -dc "$src" >"$stage/modules/$name" ;;
    *.ko) cp "$src" "$stage/modules/$name" ;;
    *) vm_die "unexpected module file $rel" ;;
  esac
  printf '%s\n' "${name%.ko}" >>"$stage/modules/load-order"
done < <(grep -v -e '^BUILTIN ' <<<"$order")
builtins=$(awk '$1 == "BUILTIN" { printf "%s ", $2 }' <<<"$order")
printf '%s %s\n' "$best_pkg" "$best_ver" >"$stage/.complete"

rm -rf "$kdir"
mv "$stage" "$kdir"
printf '%s\n' "$kver" >"$UBDM_VM_CACHE/current"
vm_msg "kernel $kver ready in $kdir: vmlinuz, $(wc -l <"$kdir/modules/load-order") modules ($(tr '\n' ' ' <"$kdir/modules/load-order"))${builtins:+; built in: $builtins}"
