#!/usr/bin/env bash
# Prepare everything the test VM needs. Idempotent.
#
#   tools/vm/fetch.sh [--kernel 6.12|newest|all]      (default: all)
#
#  1. host packages (qemu, busybox, fio, ...): apt-get install, only if missing
#  2. ublk-capable kernels, with a private apt config (the host's apt config
#     is only read, never changed). Two kernel lines are tested:
#       6.12    the newest linux-image-6.12*-cloud-amd64-unsigned from Debian
#               bookworm-backports: the oldest kernel ubdm supports
#       newest  the kernel that trixie-backports' linux-image-cloud-amd64
#               depends on today (7.3.x at the time of writing): found, not
#               named, so it moves on as Debian moves on
#  3. vmlinuz + the needed modules, decompressed, and their load order, into
#     ${UBDM_VM_CACHE:-$HOME/.cache/ubdm/vm}/kernels/<kernel version>/, with
#     current-<line> naming the one each line uses
#
# UBDM_VM_MIRROR overrides the Debian mirror (default: the host's).
# Each index is refreshed at most once a day (UBDM_VM_REFRESH=1 forces it,
# UBDM_VM_REFRESH=0 never refreshes if a kernel is cached). If the mirror
# cannot be reached but a kernel is cached, the cached one is used.
set -euo pipefail
# shellcheck source=tools/vm/common.sh
. "$(dirname "$0")/common.sh"

lines=all
while [ $# -gt 0 ]; do
  case $1 in
    --kernel) lines=${2:?--kernel needs 6.12, newest or all}; shift 2 ;;
    -h | --help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    *) vm_die "unknown argument: $1 (see --help)" ;;
  esac
done
case $lines in
  all) lines="$UBDM_VM_KERNEL_LINES" ;;
  *) vm_kernel_line_ok "$lines" ;;
esac

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


# --- 2. the kernel packages --------------------------------------------------
# Modules the guest loads (module names as in modules.dep, without .ko*).
# Their dependencies from modules.dep are added automatically. Optional ones
# are loaded where the kernel has them as modules (crc-t10dif is a module on
# 6.12 and gone from 7.x, where scsi_debug no longer needs it).
wanted_modules=(configfs loop brd null_blk ublk_drv
  scsi_common scsi_mod sd_mod scsi_debug
  dm-mod dm-multipath dm-round-robin dm-queue-length dm-service-time
  dm-flakey dm-delay dm-zero)
optional_modules=(crc-t10dif)

keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || vm_die "$keyring is missing (install debian-archive-keyring)"

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

# fetch_line LINE: steps 2 and 3 for one kernel line. Runs in a subshell of
# its own (its EXIT trap removes its scratch directory).
fetch_line() {
  local line=$1 suite
  case $line in
    6.12) suite=bookworm-backports ;;
    newest) suite=trixie-backports ;;
  esac
  # One private apt tree per suite (the 6.12 line keeps the historical "apt").
  local apt_dir=$UBDM_VM_CACHE/apt
  [ "$line" = 6.12 ] || apt_dir=$UBDM_VM_CACHE/apt-$suite
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$UBDM_VM_CACHE/kernels"
  printf 'deb [signed-by=%s] %s %s main\n' "$keyring" "$mirror" "$suite" >"$apt_dir/sources.list"
  local apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list"
    -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$apt_dir/lists"
    -o "Dir::Cache=$apt_dir/cache"
    -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
    -o Dir::State::status=/dev/null
    -o APT::Sandbox::User=root
    -o Debug::NoLocking=true)

  local cached_kver
  cached_kver=$(vm_cached_kernel "$line")

  local refresh=${UBDM_VM_REFRESH:-auto} stamp=$apt_dir/lists/.updated
  if [ "$refresh" = auto ]; then
    refresh=1
    if [ -n "$cached_kver" ] && [ -f "$stamp" ] && [ -n "$(find "$stamp" -mmin -1440 2>/dev/null)" ]; then
      refresh=0
    fi
  fi
  if [ "$refresh" = 0 ] && [ -n "$cached_kver" ]; then
    vm_msg "kernel $line: $cached_kver cached in $UBDM_VM_CACHE (index checked within a day; UBDM_VM_REFRESH=1 to re-check)"
    return 0
  fi

  vm_msg "kernel $line: updating the $suite index from $mirror (private apt lists in $apt_dir)"
  if ! apt-get "${apt_opts[@]}" -q --error-on=any update >"$apt_dir/update.log" 2>&1; then
    if [ -n "$cached_kver" ]; then
      vm_msg "warning: apt-get update failed (see $apt_dir/update.log); using cached kernel $cached_kver"
      return 0
    fi
    cat "$apt_dir/update.log" >&2
    vm_die "cannot fetch the $suite index from $mirror"
  fi
  touch "$stamp"

  # The packages that make up the kernel, and its release (uname -r).
  local pkgs=() kver='' ver='' name best_ver=''
  case $line in
    6.12)
      # Newest matching package by Debian version order.
      local best_pkg=''
      while read -r name; do
        [ -n "$name" ] || continue
        ver=$(apt-cache "${apt_opts[@]}" show --no-all-versions "$name" 2>/dev/null | awk '/^Version:/ { print $2; exit }')
        [ -n "$ver" ] || continue
        if [ -z "$best_pkg" ] || dpkg --compare-versions "$ver" gt "$best_ver"; then
          best_pkg=$name best_ver=$ver
        fi
      done < <(apt-cache "${apt_opts[@]}" pkgnames linux-image-6.12 2>/dev/null |
        grep -E '^linux-image-6\.12[^ ]*-cloud-amd64-unsigned$' || true)
      if [ -n "$best_pkg" ]; then
        kver=${best_pkg#linux-image-}
        kver=${kver%-unsigned}
        pkgs=("$best_pkg")
      fi
      ;;
    newest)
      # The meta package names the current image, which names its binary
      # and modules packages: linux-image-cloud-amd64 -> linux-image-<kver>.
      kver=$(apt-cache "${apt_opts[@]}" show --no-all-versions linux-image-cloud-amd64 2>/dev/null |
        awk '/^Depends:/ { if (match($0, /linux-image-[0-9][^ ,]*-cloud-amd64/)) print substr($0, RSTART + 12, RLENGTH - 12); exit }')
      if [ -n "$kver" ]; then
        best_ver=$(apt-cache "${apt_opts[@]}" show --no-all-versions "linux-modules-$kver" 2>/dev/null | awk '/^Version:/ { print $2; exit }')
        # The unsigned binary where there is one (the same kernel, unsigned).
        name=linux-binary-unsigned-$kver
        apt-cache "${apt_opts[@]}" show "$name" >/dev/null 2>&1 || name=linux-binary-$kver
        pkgs=("$name" "linux-modules-$kver")
      fi
      ;;
  esac
  if [ ${#pkgs[@]} -eq 0 ] || [ -z "$best_ver" ]; then
    if [ -n "$cached_kver" ]; then
      vm_msg "warning: no $line kernel found in $mirror $suite; using cached kernel $cached_kver"
      return 0
    fi
    vm_die "no $line kernel found in $mirror $suite (see $apt_dir/update.log)"
  fi
  vm_msg "kernel $line: $kver (${pkgs[*]}, $best_ver)"

  local kdir=$UBDM_VM_CACHE/kernels/$kver
  if [ -f "$kdir/.complete" ] && [ "$(cat "$kdir/.complete")" = "${pkgs[*]} $best_ver" ]; then
    vm_msg "kernel $kver already cached in $kdir"
    printf '%s\n' "$kver" >"$UBDM_VM_CACHE/current-$line"
    return 0
  fi

  # --- 3. download and extract -----------------------------------------------
  local tmp
  tmp=$(mktemp -d "$UBDM_VM_CACHE/.fetch.XXXXXX")
  # shellcheck disable=SC2064 # expand now: the trap outlives the local
  trap "rm -rf '$tmp'" EXIT
  local p deb
  for p in "${pkgs[@]}"; do
    vm_msg "downloading $p=$best_ver"
    (cd "$tmp" && apt-get "${apt_opts[@]}" -q download "$p=$best_ver") >&2 ||
      vm_die "apt-get download $p=$best_ver failed"
  done
  for deb in "$tmp"/*.deb; do
    vm_msg "extracting $(basename "$deb") ($(du -h "$deb" | cut -f1))"
    dpkg-deb -x "$deb" "$tmp/root"
  done

  # Merged /usr (7.x) or not (6.12): depmod wants lib/modules.
  if [ ! -d "$tmp/root/lib/modules/$kver" ] && [ -d "$tmp/root/usr/lib/modules/$kver" ]; then
    mkdir -p "$tmp/root/lib/modules"
    mv "$tmp/root/usr/lib/modules/$kver" "$tmp/root/lib/modules/$kver"
  fi
  local moddir=$tmp/root/lib/modules/$kver vmlinuz
  [ -d "$moddir" ] || vm_die "the packages have no modules directory for $kver"
  vmlinuz=$tmp/root/boot/vmlinuz-$kver
  [ -f "$vmlinuz" ] || vmlinuz=$moddir/vmlinuz
  [ -f "$vmlinuz" ] || vmlinuz=$moddir/vmlinuz.unsigned
  [ -f "$vmlinuz" ] || vm_die "the packages have no vmlinuz for $kver"
  # 6.12 ships its config; 7.x does not, so ask the modules themselves.
  if [ -f "$tmp/root/boot/config-$kver" ]; then
    grep -q '^CONFIG_BLK_DEV_UBLK=[my]' "$tmp/root/boot/config-$kver" ||
      vm_die "$kver has no ublk (CONFIG_BLK_DEV_UBLK)"
  fi

  # The packages ship no modules.dep (depmod runs at install time): make one.
  depmod -b "$tmp/root" "$kver" 2>/dev/null || depmod -b "$tmp/root" "$kver"
  [ -f "$moddir/modules.dep" ] || vm_die "depmod produced no modules.dep"

  # Resolve dependencies from modules.dep and produce a load order (deps
  # first). modules.dep lines: "kernel/path/a.ko.xz: kernel/path/b.ko.xz ...";
  # modules in modules.builtin need no loading. Module names compare with '-'
  # and '_' treated alike, as the kernel does.
  local order builtin_file=$moddir/modules.builtin
  [ -f "$builtin_file" ] || builtin_file=/dev/null
  order=$(awk -v want="${wanted_modules[*]}" -v optional="${optional_modules[*]}" '
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
    END {
      n = split(optional, o, " ")
      for (i = 1; i <= n; i++) { m = norm(o[i]); if (m in path) visit(m); else if (m in builtin) visit(m) }
      n = split(want, w, " "); for (i = 1; i <= n; i++) visit(norm(w[i]))
    }
  ' "$builtin_file" "$moddir/modules.dep")
  if grep -q '^MISSING' <<<"$order"; then
    vm_die "modules not in $kver: $(grep '^MISSING' <<<"$order" | cut -d' ' -f2 | tr '\n' ' ')"
  fi

  local stage=$tmp/kernel rel src
  mkdir -p "$stage/modules"
  cp "$vmlinuz" "$stage/vmlinuz"
  [ ! -f "$tmp/root/boot/config-$kver" ] || cp "$tmp/root/boot/config-$kver" "$stage/config"
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
  local builtins
  builtins=$(awk '$1 == "BUILTIN" { printf "%s ", $2 }' <<<"$order")
  printf '%s %s\n' "${pkgs[*]}" "$best_ver" >"$stage/.complete"

  rm -rf "$kdir"
  mv "$stage" "$kdir"
  printf '%s\n' "$kver" >"$UBDM_VM_CACHE/current-$line"
  vm_msg "kernel $kver ready in $kdir: vmlinuz, $(wc -l <"$kdir/modules/load-order") modules ($(tr '\n' ' ' <"$kdir/modules/load-order"))${builtins:+; built in: $builtins}"
}

for line in $lines; do
  (fetch_line "$line")
done
