#!/bin/sh
# ubdmsetup as a drop-in for dmsetup: the same command lines, run once with
# dmsetup against the kernel's dm and once with ubdmsetup against ubdmd, over
# the same tables, must succeed alike and print the same (device numbers
# and kernel-only fields aside). The README's "dmsetup compatibility" table
# lists what this covers.
. "$(dirname "$0")/lib.sh"
set -eu
require_ubdm
require_cmd dmsetup
start_ubdmd
on_exit stop_ubdmd

# both ARGS...: run `dmsetup ARGS` and `ubdmsetup ARGS`; their stdout in
# $DM_OUT and $UB_OUT, stderr in $DM_ERR and $UB_ERR, statuses in $DM_RC
# and $UB_RC.
both() {
  DM_RC=0 UB_RC=0
  dmsetup "$@" >"$TEST_TMP/dm.out" 2>"$TEST_TMP/dm.err" || DM_RC=$?
  ubdmsetup "$@" >"$TEST_TMP/ub.out" 2>"$TEST_TMP/ub.err" || UB_RC=$?
  DM_OUT=$(cat "$TEST_TMP/dm.out") UB_OUT=$(cat "$TEST_TMP/ub.out")
  DM_ERR=$(cat "$TEST_TMP/dm.err") UB_ERR=$(cat "$TEST_TMP/ub.err")
  log "+ (ubdm)setup $*: dm exit $DM_RC, ubdm exit $UB_RC"
}
# same ARGS...: both succeed with the same output.
same() {
  both "$@"
  [ "$DM_RC" -eq 0 ] || die "dmsetup $* failed (exit $DM_RC): $DM_ERR"
  [ "$UB_RC" -eq 0 ] || die "ubdmsetup $* failed (exit $UB_RC): $UB_ERR"
  [ "$UB_OUT" = "$DM_OUT" ] || die "ubdmsetup $* printed
$UB_OUT
where dmsetup printed
$DM_OUT"
}

# A zero and an error target, the same table on both sides.
table="0 64 zero
64 64 error"
# The kernel's maps must not outlive the test, whichever way it ends
# (ubdmd's go with stop_ubdmd).
dm_cleanup() { dmsetup remove --noudevsync "$1" 2>/dev/null || true; }
uuid=CMP-0123456789abcdef
printf '%s\n' "$table" | dmsetup create --noudevsync cmp --uuid "$uuid"
on_exit dm_cleanup cmp
printf '%s\n' "$table" | ubdmsetup create cmp --uuid "$uuid"

# The UUID: shown by info, and naming the device instead of its name.
same info -c --noheadings -o name,uuid cmp
expect_eq "$(ubdmsetup info cmp | grep '^UUID')" "$(dmsetup info cmp | grep '^UUID')" "info's UUID line"
same -u "$uuid" info -c --noheadings -o name,segments
same table -u "$uuid"
same info -c --noheadings -o name --uuid "$uuid"

# Options anywhere, those that mean nothing to ubdm accepted.
same suspend --nolockfs --noflush cmp
same info -c --noheadings -o name,attr,tables_loaded,suspended cmp
same --noudevsync resume cmp
same -y -v info -c --noheadings -o name,attr,suspended cmp
same --noudevsync --udevcookie 0 --noopencount --verifyudev --noudevrules suspend cmp
same resume --addnodeoncreate cmp

# The column report: aligned with headings, with a separator, with name
# prefixes, sorted; fields that do not name kernel numbers.
same info -c -o name,attr,open,segments,tables_loaded,suspended,readonly cmp
# The default columns, with the device numbers (columns 17 to 24) and the
# event number masked: ubdm's counts table swaps too (README, "dmsetup
# compatibility").
both info -c cmp
mask() { printf '%s\n' "$1" | sed -E '2s/^(.{16}).{8}(.{15}).{7}/\1 MAJ MIN\2 EVENT/'; }
expect_eq "$UB_RC:$(mask "$UB_OUT")" "$DM_RC:$(mask "$DM_OUT")" "info -c, default columns"
same info -c --separator , -o name,segments,attr cmp
same info -c --noheadings --nameprefixes -o name,attr,open cmp
same info -c --noheadings --separator ' ' -o segments,name -O -name cmp

# --target picks lines of one type; a device with none prints nothing.
same table --target error cmp
same status --target zero cmp
same table --target linear cmp
same table cmp
same table --showkeys cmp

# ls by target type, and ls --exec with each device's path; the device
# numbers masked.
numbers() { printf '%s\n' "$1" | sed -E 's/[0-9]+, [0-9]+/MAJ, MIN/'; }
both ls --target error
expect_eq "$UB_RC:$(numbers "$UB_OUT")" "$DM_RC:$(numbers "$DM_OUT")" "ls --target error"
expect_contains "$UB_OUT" "cmp	(" "ls --target error lists cmp"
same ls --target multipath
same ls --exec "test -b"
# One line for all devices; the minor (third field) masked.
both table --concise cmp
minor() { printf '%s\n' "$1" | sed -E 's/^([^,]*,[^,]*,)[0-9]+,/\1MINOR,/'; }
expect_eq "$UB_RC:$(minor "$UB_OUT")" "$DM_RC:$(minor "$DM_OUT")" "table --concise"

# mknodes makes the node again.
rm -f /dev/ubdm/cmp
same mknodes cmp
[ -b /dev/ubdm/cmp ] || die "mknodes did not make /dev/ubdm/cmp again"
expect_ok ubdmsetup udevcomplete 0x0d4d0001
expect_ok ubdmsetup udevcookies

# A read-only device: said so by info, and the kernel refuses writes to it.
printf '0 64 zero\n' | dmsetup create --noudevsync cmpro -r
on_exit dm_cleanup cmpro
on_exit dm_cleanup cmpro2
printf '0 64 zero\n' | ubdmsetup create cmpro --readonly
same info -c --noheadings -o name,attr,readonly cmpro
expect_eq "$(ubdmsetup info cmpro | grep '^State')" "$(dmsetup info cmpro | grep '^State')" "info's State line"
for dev in /dev/mapper/cmpro /dev/ubdm/cmpro; do
  if dd if=/dev/zero of="$dev" bs=4096 count=1 oflag=direct 2>/dev/null; then
    die "a write to read-only $dev succeeded"
  fi
  dd if="$dev" of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null || die "a read of read-only $dev failed"
done
# rename: a new name, a UUID for a device without one (once), and the
# refusals: a name taken, a UUID set already.
same --noudevsync rename cmpro cmpro2
same info -c --noheadings -o name,uuid,readonly cmpro2
both info cmpro
[ "$DM_RC" -ne 0 ] && [ "$UB_RC" -ne 0 ] || die "info of the old name after a rename: dm exit $DM_RC, ubdm exit $UB_RC"
same --noudevsync rename cmpro2 --setuuid CMP-ro
same info -c --noheadings -o name,uuid cmpro2
both --noudevsync rename cmpro2 --setuuid CMP-other
[ "$DM_RC" -ne 0 ] && [ "$UB_RC" -ne 0 ] || die "a second --setuuid: dm exit $DM_RC, ubdm exit $UB_RC"
both --noudevsync rename cmpro2 cmp
[ "$DM_RC" -ne 0 ] && [ "$UB_RC" -ne 0 ] || die "a rename onto a taken name: dm exit $DM_RC, ubdm exit $UB_RC"
same info -c --noheadings -o name,uuid cmpro2
[ -b /dev/ubdm/cmpro2 ] && [ ! -e /dev/ubdm/cmpro ] || die "/dev/ubdm did not follow the rename"
same --noudevsync rename cmpro2 cmpro
same remove cmpro

# deps and ls --tree over two disks, a device stacked on two others and one
# of the disks (named first in its table, so last in the kernel's deps), and
# a device whose name is longer than dmsetup's 80 columns; the device
# numbers masked. dm and ubdm both claim the disks, so each side's maps are
# made, read and removed in turn. The -o options run with LC_ALL=C (ASCII
# unless asked); the default drawing is compared in C and UTF-8 locales.
# shellcheck disable=SC2046
set -- $(scsi_debug_paths)
t1=$1 t2=$2
tlong=$(printf 'tlong%085d' 0)
tree_opts="nodevice blkdevname,uuid active,open,rw ascii utf vt100 inverted inverted,nodevice
  inverted,blkdevname,uuid,utf compact compact,nodevice inverted,compact inverted,compact,nodevice
  inverted,compact,vt100 compact,utf,rw notrunc"
tree_side() { # TOOL DIR: the maps, then TOOL's deps and ls --tree into $TEST_TMP/TOOL.*
  $1 --noudevsync create tlina --uuid U-TLINA --table "0 1024 linear $t1 0" >/dev/null
  $1 --noudevsync create tlinb --table "0 1024 linear $t1 2048
1024 1024 linear $t2 0" >/dev/null
  $1 --noudevsync create ttop --table "0 512 linear $t2 4096
512 512 linear $2/tlina 0
1024 512 linear $2/tlinb 0" >/dev/null
  $1 --noudevsync create "$tlong" --table "0 64 linear $t2 8192" >/dev/null
  $1 deps tlinb >"$TEST_TMP/$1.deps"
  $1 ls --tree >"$TEST_TMP/$1.tree"
  for o in $tree_opts; do
    LC_ALL=C $1 ls --tree -o "$o" >"$TEST_TMP/$1.tree-$o"
  done
  LC_ALL=C $1 ls --tree >"$TEST_TMP/$1.tree-LC_ALL=C"
  LC_ALL=C.UTF-8 $1 ls --tree >"$TEST_TMP/$1.tree-LC_ALL=C.UTF-8"
  (unset LC_ALL LC_CTYPE; LANG=C.UTF-8 $1 ls --tree) >"$TEST_TMP/$1.tree-LANG=C.UTF-8"
  $1 ls -o devname >"$TEST_TMP/$1.ls-devname"
  $1 ls -o blkdevname >"$TEST_TMP/$1.ls-blkdevname"
  for d in ttop tlinb tlina "$tlong"; do $1 --noudevsync remove "$d"; done
}
# Whichever side a failure stops, top first (a device in use cannot go).
tree_cleanup() { dm_cleanup "$1"; ubdmsetup remove "$1" >/dev/null 2>&1 || true; }
for d in tlina tlinb "$tlong" ttop; do on_exit tree_cleanup "$d"; done
tree_side ubdmsetup /dev/ubdm
tree_side dmsetup /dev/mapper
expect_eq "$(cat "$TEST_TMP/ubdmsetup.deps")" "$(cat "$TEST_TMP/dmsetup.deps")" "deps, in the kernel's order"
# Device numbers and block device names differ by design (dm-N, ublkbN).
# (compact indents by the width of what is drawn before: both sides' minors
# have one digit here, as dm and ublk number from the lowest free.)
devnos() { sed -E 's/\((25[0-9]):[0-9]+\)/(MAJ:MIN)/g; s/[<(](dm-|ublkb)[0-9]+[>)]/BLK/g' "$1"; }
expect_eq "$(devnos "$TEST_TMP/ubdmsetup.tree")" "$(devnos "$TEST_TMP/dmsetup.tree")" "ls --tree"
for o in $tree_opts; do
  expect_eq "$(devnos "$TEST_TMP/ubdmsetup.tree-$o")" "$(devnos "$TEST_TMP/dmsetup.tree-$o")" "ls --tree -o $o"
done
for o in tree-LC_ALL=C tree-LC_ALL=C.UTF-8 tree-LANG=C.UTF-8 ls-devname ls-blkdevname; do
  expect_eq "$(devnos "$TEST_TMP/ubdmsetup.$o")" "$(devnos "$TEST_TMP/dmsetup.$o")" "$o"
done
# Without numbers, byte for byte (compact leaves a line open, unended, when
# the children it waits for are not drawn).
for o in nodevice inverted,nodevice compact,nodevice inverted,compact,nodevice; do
  expect_eq "$(od -An -c "$TEST_TMP/ubdmsetup.tree-$o")" "$(od -An -c "$TEST_TMP/dmsetup.tree-$o")" \
    "ls --tree -o $o, bytes"
done
tree=$(cat "$TEST_TMP/ubdmsetup.tree-LC_ALL=C")
expect_contains "$tree" " |  |- (" "ls --tree draws the second level"
expect_contains "$tree" "$(printf '%.79s...\n' "$tlong")" "ls --tree cuts a long line at 80 columns"
expect_contains "$(cat "$TEST_TMP/ubdmsetup.tree-notrunc")" "$tlong (" "notrunc keeps a long line"
expect_contains "$(cat "$TEST_TMP/ubdmsetup.tree-nodevice")" "ttop
 |-tlinb
 |-tlina" "a disk left out is still the last child"
expect_contains "$(cat "$TEST_TMP/ubdmsetup.tree-inverted")" " (8:" "inverted starts from the disks"
expect_contains "$(cat "$TEST_TMP/ubdmsetup.tree-compact")" "ttop (" "compact"
box=$(printf '\342\224\234\342\224\200') # U+251C U+2500, utf's branch
expect_contains "$(cat "$TEST_TMP/ubdmsetup.tree-utf")" "$box" "utf draws box characters"
expect_contains "$(cat "$TEST_TMP/ubdmsetup.tree-vt100")" "$(printf '\033(0\017tq\033(B')" "vt100 draws its line set"
# The default drawing follows the locale's codeset, as dmsetup's: box
# characters in a UTF-8 one (compared above). Where C.UTF-8 is not
# installed, setlocale fails and both stay in C, drawing ASCII.
case $(cat "$TEST_TMP/dmsetup.tree-LANG=C.UTF-8") in
  *"$box"*)
    expect_contains "$(cat "$TEST_TMP/ubdmsetup.tree-LANG=C.UTF-8")" "$box" "a UTF-8 locale draws box characters"
    ;;
  *)
    log "no C.UTF-8 locale in this VM ($(ls /usr/lib/locale 2>&1)): dmsetup and ubdmsetup both draw" \
      "ASCII there (the UTF-8 default is in the unit tests)"
    expect_contains "$(cat "$TEST_TMP/ubdmsetup.tree-LANG=C.UTF-8")" " |-" "no UTF-8 locale to set: ASCII"
    ;;
esac
expect_contains "$(cat "$TEST_TMP/ubdmsetup.tree-LC_ALL=C")" " |-" "the C locale draws ASCII"

# create --concise: two devices from one line, with escapes (the minor field
# stays empty: ublk numbers its disks), then each compared.
same --noudevsync create --concise 'cc1,,,rw,0 32 zero,32 32 error;cc\,2,CC-2,,ro,0 16 zero'
on_exit dm_cleanup cc1
on_exit dm_cleanup 'cc,2'
both table --concise cc1
expect_eq "$UB_RC:$(minor "$UB_OUT")" "$DM_RC:$(minor "$DM_OUT")" "create --concise, then table --concise"
same info -c --noheadings -o name,uuid,attr,segments 'cc,2'
same table 'cc,2'
same remove cc1
same remove 'cc,2'

# The UUID outlives a restart of ubdmd.
restart_ubdmd
same info -c --noheadings -o name,uuid cmp

# A device that is not there: dmsetup's words and status.
for verb in info status; do
  both "$verb" nosuch
  expect_eq "$UB_RC" "$DM_RC" "$verb nosuch: exit status"
  expect_eq "$UB_ERR" "$DM_ERR" "$verb nosuch: stderr"
  expect_eq "$UB_OUT" "$DM_OUT" "$verb nosuch: stdout"
done

# A message quoted as one word, as scripts write it, then as two words.
# Both claim the paths, so the kernel's map and ours take turns.
mp_table() { echo "0 $(dev_sectors "$1") multipath 0 0 1 1 round-robin 0 2 1 $1 1 $2 1"; }
# shellcheck disable=SC2046
set -- $(scsi_debug_paths)
dev2=$(stat -L -c '%t:%T' "$2")
dev2=$((0x${dev2%%:*})):$((0x${dev2##*:}))
messages() { # TOOL: the states after each message, and the final status
  "$1" create mpc --table "$(mp_table "$P1" "$P2")" >/dev/null || die "$1 create mpc failed"
  "$1" message mpc 0 "fail_path $dev2" || die "$1 message mpc 0 'fail_path $dev2' failed"
  mpath_states "$("$1" status mpc)"
  "$1" message mpc 0 reinstate_path "$dev2" || die "$1 message mpc 0 reinstate_path $dev2 failed"
  mpath_states "$("$1" status mpc)"
  "$1" status mpc
  "$1" --noudevsync remove --retry mpc || die "$1 remove --retry mpc failed"
}
on_exit dm_cleanup mpc
P1=$1 P2=$2
dm_said=$(messages dmsetup)
ub_said=$(messages ubdmsetup)
expect_eq "$(printf '%s\n' "$dm_said" | head -n 2 | tr '\n' ' ')" "A F A A " "the kernel's path states"
expect_eq "$ub_said" "$dm_said" "path states and status after the same messages"

same --noudevsync remove cmp
log "every command line ran alike on dmsetup and ubdmsetup"
