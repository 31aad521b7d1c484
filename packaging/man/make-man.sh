#!/usr/bin/env bash
# Make the man pages ubdmd.8 and ubdmsetup.8 from the binaries' own --help
# (help2man), so a page cannot say other than the binary it ships with.
#
#   packaging/man/make-man.sh UBDMD UBDMSETUP VERSION OUTDIR
#
# Called by the CMake target `man` (cmake --build DIR -t man), which
# tools/package.sh builds. Besides help2man's own sections, ubdmsetup.8 gets
# a VERBS section made from each verb's `ubdmsetup VERB --help` (the verbs
# are those its --help lists under "Subcommands:"), and each page the
# hand-written sections of its .h2m file beside this script (FILES, SEE
# ALSO, ...). The date is SOURCE_DATE_EPOCH's (default: the last commit's),
# so the same tree gives the same pages.
set -euo pipefail

if [ $# -ne 4 ]; then
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
ubdmd=$1 ubdmsetup=$2 version=$3 out=$4
here=$(cd "$(dirname "$0")" && pwd)
command -v help2man >/dev/null || { echo "make-man: help2man not found (apt-get install help2man)" >&2; exit 1; }

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$here" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
# help2man runs the binaries: their help must not depend on the caller's locale.
export LC_ALL=C.UTF-8

mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The verbs as `ubdmsetup --help` lists them under "Subcommands:", one entry
# a line, aliases together ("load, reload"). tests/package/check.sh and the
# bash completion read the list the same way.
"$ubdmsetup" --help | awk '
  /^Subcommands:/ { on = 1; next }
  on && /^$/ { exit }
  on { sub(/^ +/, ""); sub(/  .*/, ""); print }
' >"$tmp/verbs"
[ -s "$tmp/verbs" ] || { echo "make-man: no verbs in '$ubdmsetup --help' (no Subcommands: list?)" >&2; exit 1; }

# One verb's --help as man source: its synopsis in bold, its description,
# then each positional and option as a tagged paragraph. Skipped: -h,--help
# and the exit status line (both the same for every verb; see the page's
# OPTIONS and EXIT STATUS).
# $1: the entry ("load, reload": the heading names both, the help is the
# first's).
verb_roff() {
  "$ubdmsetup" "${1%%,*}" --help | awk -v verb="$1" '
    function esc(s) { gsub(/\\/, "\\e", s); gsub(/-/, "\\-", s); return s }
    function flush() { if (tag != "") { print ".TP"; print "\\fB" esc(tag) "\\fR" (arg != "" ? " \\fI" esc(arg) "\\fR" : ""); print esc(desc) } tag = "" }
    NR == 1 { descr = $0; next }
    /^Usage: / { sub(/^Usage: /, ""); print ".SS " verb; print ".B " esc($0); print ".br"; print esc(descr); next }
    /^Exit status:/ { next }
    /^[A-Za-z].*:$/ { flush(); next }            # "Positionals:", "Options:": the tags show which
    /^$/ { next }
    /^ {20,}/ { sub(/^ +/, ""); desc = desc " " $0; next }   # a description wrapped onto its own line
    /^  [^ ]/ {
      flush()
      line = substr($0, 3)
      head = line; sub(/  .*/, "", head)
      desc = substr(line, length(head) + 1); sub(/^ +/, "", desc)
      tag = head; arg = ""
      if (index(head, " ")) { tag = substr(head, 1, index(head, " ") - 1); arg = substr(head, index(head, " ") + 1) }
      if (tag == "-h,--help") tag = ""
      next
    }
    END { flush() }
  '
}

{
  echo "[VERBS]"
  printf '%s\n' "Each verb's own options and arguments (\\fBubdmsetup\\fR \\fIVERB\\fR \\fB\\-\\-help\\fR prints the same)." \
    'A NAME may be replaced by \fB\-u\fR \fIUUID\fR.'
  while read -r entry; do
    verb_roff "$entry"
  done <"$tmp/verbs"
} >"$tmp/ubdmsetup-verbs.h2m"

help2man --no-info --section=8 --version-string="$version" \
  --manual="System Administration" --source="ubdm $version" \
  --name="user-space device-mapper daemon serving block devices through ublk" \
  --include="$here/ubdmd.h2m" \
  --output="$out/ubdmd.8" "$ubdmd"

help2man --no-info --section=8 --version-string="$version" \
  --manual="System Administration" --source="ubdm $version" \
  --name="manage ubdm devices with dmsetup's verbs" \
  --include="$tmp/ubdmsetup-verbs.h2m" --include="$here/ubdmsetup.h2m" \
  --output="$out/ubdmsetup.8" "$ubdmsetup"

echo "make-man: $out/ubdmd.8 $out/ubdmsetup.8 ($(wc -l <"$tmp/verbs") verb entries)"
