#!/usr/bin/env bash
# Check the Debian package tools/package.sh built, on the host: its contents,
# lintian, the systemd unit, the man pages against the binaries' --help, and
# the bash completion. Installs it with dpkg into a scratch root, whose
# usr/sbin binaries tools/test.sh then runs in the test VM.
#
#   tests/package/check.sh DEB SCRATCH
#
#   DEB      the .deb (build/package/ubdm_<version>_<arch>.deb)
#   SCRATCH  the scratch root (emptied first; a dpkg database of its own)
#
# Prints "ok: ..." per check, and "N passed, N failed" last; exits non-zero
# if any check failed. Each check says what broke.
set -euo pipefail

if [ $# -ne 2 ]; then
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
deb=$(realpath "$1")
scratch=$2
[ -f "$deb" ] || { echo "check: no such package: $deb" >&2; exit 2; }
for tool in dpkg dpkg-deb lintian systemd-analyze man bash; do
  command -v "$tool" >/dev/null || { echo "check: $tool not found (tools/install-deps.sh installs it)" >&2; exit 2; }
done
export LC_ALL=C.UTF-8

passed=0 failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
bad() { echo "FAIL: $*" >&2; failed=$((failed + 1)); }
tmp=$(mktemp -d)
daemon_pid=''
cleanup() {
  if [ -n "$daemon_pid" ]; then kill "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# --- install into the scratch root, with dpkg (its own database there; the
# libraries are the host's, hence --force-depends).
rm -rf "$scratch"
mkdir -p "$scratch/var/lib/dpkg/info" "$scratch/var/lib/dpkg/updates"
touch "$scratch/var/lib/dpkg/status"
scratch=$(realpath "$scratch")
if dpkg --root="$scratch" --force-depends --log=/dev/null -i "$deb" >"$tmp/dpkg.out" 2>&1; then
  ok "dpkg installs it into $scratch"
else
  cat "$tmp/dpkg.out" >&2
  bad "dpkg -i --root=$scratch failed"
fi
sbin=$scratch/usr/sbin

# --- the paths the package must hold (dpkg-deb -c).
dpkg-deb -c "$deb" | awk '{ print $NF }' | sed 's|^\./|/|' >"$tmp/contents" || true
missing=()
for p in /usr/sbin/ubdmd /usr/sbin/ubdmsetup \
  /usr/lib/systemd/system/ubdmd.service /usr/lib/udev/rules.d/99-ubdm.rules \
  /etc/ubdm/maps.d/ \
  /usr/share/man/man8/ubdmd.8.gz /usr/share/man/man8/ubdmsetup.8.gz \
  /usr/share/bash-completion/completions/ubdmsetup \
  /usr/share/doc/ubdm/copyright /usr/share/doc/ubdm/changelog.gz; do
  grep -qxF "$p" "$tmp/contents" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then ok "the package holds every expected path"; else bad "missing from the package: ${missing[*]}"; fi

# --- the version: the package's is the one the binary prints (both from
# CMakeLists.txt's project()), and the file name's.
pkg_version=$(dpkg-deb -f "$deb" Version) || true
bin_version=$("$sbin/ubdmsetup" --version 2>/dev/null | sed -n 's/.*version: //p') || true
if [ "$pkg_version" = "$bin_version" ] && [[ $(basename "$deb") == ubdm_${pkg_version}_*.deb ]]; then
  ok "version $pkg_version (package, file name, ubdmsetup --version)"
else
  bad "versions differ: package '$pkg_version', ubdmsetup --version '$bin_version', file $(basename "$deb")"
fi

# --- lintian: no error or warning; info tags shown (the overrides file says
# why each overridden one stays). Root is fine here: it only reads the .deb.
if lintian --display-info --fail-on error,warning "$deb" >"$tmp/lintian.out" 2>&1 &&
  ! grep -q '^[EW]: ' "$tmp/lintian.out"; then
  ok "lintian: no error or warning$(grep -c '^I: ' "$tmp/lintian.out" | sed 's/^0$//; s/^[1-9].*/ (& info tags)/')"
else
  bad "lintian:"
fi
grep -v 'running with root privileges' "$tmp/lintian.out" || true

# --- the unit: ExecStart= names a binary the package installs, --config a
# directory whose maps.d it installs; systemd-analyze verify has nothing to
# say. verify checks that ExecStart='s binary exists on this host, and the
# package is not installed here, so it reads a copy of the unit whose
# ExecStart= points into the scratch root (every other line as shipped); with
# MANPATH into the scratch root its --man check finds Documentation='s pages.
unit=$scratch/usr/lib/systemd/system/ubdmd.service
exec_start=$(sed -n 's/^ExecStart=//p' "$unit" 2>/dev/null) || true
exec_bin=${exec_start%% *}
config=$(printf '%s\n' "$exec_start" | sed -n 's/.*--config \([^ ]*\).*/\1/p')
if [[ $exec_bin == /* ]] && [ -f "$scratch$exec_bin" ] && [ -x "$scratch$exec_bin" ] && [ -d "$scratch$config/maps.d" ]; then
  ok "ExecStart=$exec_bin is in the package, and $config/maps.d"
else
  bad "the unit's ExecStart='$exec_start': $scratch$exec_bin is not an executable of the package, or $scratch$config/maps.d is missing"
fi
mkdir -p "$tmp/unit"
sed "s|^ExecStart=$exec_bin|ExecStart=$scratch$exec_bin|" "$unit" >"$tmp/unit/ubdmd.service" 2>/dev/null || true
if MANPATH=$scratch/usr/share/man systemd-analyze verify --man=yes "$tmp/unit/ubdmd.service" >"$tmp/verify.out" 2>&1 &&
  [ ! -s "$tmp/verify.out" ]; then
  ok "systemd-analyze verify ubdmd.service: nothing to report"
else
  sed "s|$tmp/unit/|(copy of the unit) |" "$tmp/verify.out" >&2
  bad "systemd-analyze verify ubdmd.service"
fi

# --- the man pages: each verb entry `ubdmsetup --help` lists has its own
# heading in ubdmsetup(8)'s VERBS ("load, reload" as one), and every option
# of each binary's --help appears in its page.
verbs=$("$sbin/ubdmsetup" --help 2>/dev/null | awk '
  /^Subcommands:/ { on = 1; next }
  on && /^$/ { exit }
  on { sub(/^ +/, ""); sub(/  .*/, ""); print }') || true
man_src() { zcat "$scratch/usr/share/man/man8/$1.8.gz" 2>/dev/null; }
options_of() {
  "$sbin/$1" --help 2>/dev/null | awk '/^  -/ { h = substr($0, 3); sub(/[ ].*/, "", h); n = split(h, o, ","); for (i = 1; i <= n; i++) print o[i] }'
}
nomention=()
if [ -z "$verbs" ]; then
  nomention+=("(no verbs in ubdmsetup --help)")
fi
while IFS= read -r entry; do
  [ -n "$entry" ] || continue
  man_src ubdmsetup | grep -qxF ".SS $entry" || nomention+=("verb '$entry'")
done <<<"$verbs"
for prog in ubdmd ubdmsetup; do
  rendered=$(MANWIDTH=200 man -l <(man_src "$prog") 2>/dev/null) || true
  while IFS= read -r opt; do
    [ -n "$opt" ] || continue
    grep -qF -- "$opt" <<<"$rendered" || nomention+=("$prog $opt")
  done < <(options_of "$prog")
done
if [ ${#nomention[@]} -eq 0 ]; then
  ok "the man pages show every verb ($(wc -l <<<"$verbs") entries) and option of --help"
else
  bad "not in the man pages: ${nomention[*]}"
fi
if man -l --warnings=all <(man_src ubdmd) <(man_src ubdmsetup) 2>"$tmp/groff.out" >/dev/null && [ ! -s "$tmp/groff.out" ]; then
  ok "the man pages format without a groff warning"
else
  cat "$tmp/groff.out" >&2
  bad "groff warnings in the man pages"
fi

# --- the bash completion, sourced into a bash without rc files, run as
# bash-completion runs it (COMP_WORDS, COMP_CWORD): a verb prefix; then
# device names and target types from a ubdmd (--no-kernel: no ublk needed)
# on a private socket, and nothing, silently, without one.
complete_line() { # SOCKET WORD... (the last is the word being completed)
  local sock=$1; shift
  PATH=$sbin:$PATH bash --norc --noprofile -c '
    . "$1"; shift
    COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    func=$(complete -p ubdmsetup | sed -n "s/.*-F \([^ ]*\).*/\1/p")
    "$func" ubdmsetup "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
    printf "%s\n" "${COMPREPLY[@]}" | sort' \
    completion "$scratch/usr/share/bash-completion/completions/ubdmsetup" ubdmsetup --socket "$sock" "$@"
}
# Expected: the verbs of --help that start with "re" (aliases split), which
# include resume and reload whatever verbs are added later.
want=$(printf '%s\n' "${verbs//, /$'\n'}" | grep '^re' | sort | tr '\n' ' ') || true
comp=$(complete_line /nonexistent/socket re 2>&1 | tr '\n' ' ') || true
if [ "$comp" = "$want" ] && [[ $comp == *"resume "* && $comp == *"reload "* ]]; then
  ok "completion: 'ubdmsetup re<TAB>' gives $comp"
else
  bad "completion: 'ubdmsetup re<TAB>' gives '$comp', not '$want' (with reload and resume)"
fi
comp=$(complete_line /nonexistent/socket info '' 2>&1 | tr -d '\n') || true
if [ -z "$comp" ]; then ok "completion: no daemon, no names, no message"; else bad "completion without a daemon printed '$comp'"; fi

sockdir=$tmp/run
mkdir -m 0700 "$sockdir"
"$sbin/ubdmd" --no-kernel --foreground --socket "$sockdir/control.sock" --config "$tmp/etc" \
  --state-dir "$sockdir/devices" >"$tmp/ubdmd.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 50); do [ -S "$sockdir/control.sock" ] && break; sleep 0.1; done
for name in alpha beta; do
  "$sbin/ubdmsetup" --socket "$sockdir/control.sock" create "$name" --table "0 8 zero" >/dev/null 2>&1 || true
done
names=$(complete_line "$sockdir/control.sock" remove '' 2>&1 | tr '\n' ' ') || true
types=$(complete_line "$sockdir/control.sock" ls --target m 2>&1 | tr '\n' ' ') || true
if [ "$names" = "alpha beta " ] && [ "$types" = "multipath " ]; then
  ok "completion: 'remove <TAB>' gives the daemon's devices ($names), 'ls --target m<TAB>' $types"
else
  tail -5 "$tmp/ubdmd.log" >&2
  bad "completion with a daemon: 'remove <TAB>' gave '$names' (want 'alpha beta '), 'ls --target m<TAB>' '$types' (want 'multipath ')"
fi

echo "package: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
