#!/bin/sh
# shellcheck shell=dash
# Path discovery at start (issue 11): with a multipath.conf (find_multipaths
# yes, user_friendly_names yes, multibus) and an empty maps.d, ubdmd makes
# one multipath map per scsi_debug LUN (2 LUNs x 3 paths) with no table
# written: UUID mpath-WWID (the WWID of the VPD page 0x83 that sysfs shows,
# read as multipathd reads it without udev), names mpatha and mpathb kept
# in the bindings file, the WWIDs in the wwids file, all 3 paths in one
# group; fio verifies on each; after kill -9 the next ubdmd adopts both and
# makes no second map; with failover (the maps removed, ubdmd restarted)
# each map has 3 groups of one path, under the same names; with group_by_prio
# and prio alua (scsi_debug with vpd_use_hostno=0 reports the access state
# host_no % 3 for each host's own target port group) each map has 3 groups
# ordered active/optimized, active/non-optimized, standby, the first the
# initial one. A multipath.conf
# with a broken structure stops ubdmd at start, naming its line.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/mpath_lib.sh
. "$(dirname "$0")/mpath_lib.sh"
set -eu
require_ubdm

# 3 hosts x 1 target x 2 LUNs: 6 disks, 2 LUNs of 3 paths each. Every
# LUN of scsi_debug shares its one store: the fio runs below go one at a
# time. The next tests get the /init defaults back.
_six_disks() { [ "$(scsi_debug_paths | wc -w)" -eq 6 ]; }
on_exit reload_module scsi_debug
reload_module scsi_debug add_host=3 vpd_use_hostno=0 num_tgts=1 max_luns=2 delay=0
wait_until 20 _six_disks || die "scsi_debug did not give 6 disks: $(scsi_debug_paths)"
sleep 0.5
paths=$(scsi_debug_paths)
log "scsi_debug disks: $paths"

# lun_wwid DEV: the LUN's WWID from the VPD page 0x83 that sysfs shows
# (device/vpd_pg83), read here on its own as multipathd reads it without
# udev (libmultipath/discovery.c parse_vpd_pg83(): among the designators
# of the LUN, NAA IEEE registered extended > registered > extended >
# EUI-64 > SCSI name string > T10 vendor ID > NAA locally assigned; NAA and
# EUI-64 as the type digit and hex, T10 as "1" and the text with each run
# of blanks one "_"): what src/discovery must come to.
lun_wwid() {
  od -An -v -tu1 "/sys/block/$1/device/vpd_pg83" | awk '
    function text(from, len,   s, i) {
      s = ""
      for (i = 0; i < len && b[from + i] != 0; i++) s = s sprintf("%c", b[from + i])
      return s
    }
    { for (i = 1; i <= NF; i++) b[n++] = $i + 0 }
    END {
      best = 0
      for (d = 4; d + 4 <= n; d += 4 + b[d + 3]) {
        if (int(b[d + 1] / 16) % 4 != 0) continue    # not associated with the LUN
        t = b[d + 1] % 16; len = b[d + 3]; p = 0
        if (t == 3) {
          naa = int(b[d + 4] / 16)
          if (naa == 6 && len == 16) p = 8
          else if (naa == 5 && len == 8) p = 7
          else if (naa == 2 && len == 8) p = 6
          else if (naa == 3 && len == 8) p = 1
        } else if (t == 2 && (len == 8 || len == 12 || len == 16)) p = 4
        else if (t == 8 && len >= 4 && text(d + 4, 4) ~ /^(eui|naa|iqn)\.$/) p = 3
        else if (t == 1 && len >= 8) p = 2
        if (p > best) { best = p; bd = d }
      }
      if (best == 0) exit 1
      t = b[bd + 1] % 16; len = b[bd + 3]
      if (t == 2 || t == 3) {
        s = t
        for (i = 0; i < len; i++) s = s sprintf("%02x", b[bd + 4 + i])
      } else if (t == 8) {
        pre = text(bd + 4, 4); s = text(bd + 8, len - 4)
        if (pre == "eui.") s = "2" tolower(s); else if (pre == "naa.") s = "3" tolower(s); else s = "8" s
      } else {
        s = text(bd + 4, len); sub(/ +$/, "", s); gsub(/ +/, "_", s); s = "1" s
      }
      print s
    }' || die "$1: no usable designator in its VPD page 0x83"
}
# lun_paths WWID: the major:minor of the disks with that WWID, sorted, on one line.
lun_paths() {
  local p
  for p in $paths; do
    [ "$(lun_wwid "${p#/dev/}")" = "$1" ] && majmin "$p"
  done | sort | tr '\n' ' ' | sed 's/ $//'
}
# table_groups NAME: each path group of NAME's live table on a line, its
# devices (major:minor) sorted.
table_groups() {
  local g
  ubdmsetup table "$1" | awk '{
    i = 4; i += $i + 1          # <#features> <features...>
    i += $i + 1                 # <#hw_handler_args> <args...>
    ng = $i; i += 2             # <#groups> <initial group>
    for (g = 0; g < ng; g++) {
      i++                       # <selector>
      i += $i + 1               # <#selector args> <args...>
      np = $i; npa = $(i + 1); i += 2
      line = ""
      for (p = 0; p < np; p++) { line = line (p ? " " : "") $i; i += npa + 1 }
      print line
    }
  }' | while read -r g; do
    # shellcheck disable=SC2086 # one word a path
    printf '%s\n' $g | sort | tr '\n' ' ' | sed 's/ $//'
    echo
  done
}
uuid_of() { ubdmsetup --json info "$1" | sed -n 's/^ *"uuid": *"\([^"]*\)".*/\1/p'; }
names() { ubdmsetup ls | awk '{ print $1 }' | sort | tr '\n' ' ' | sed 's/ $//'; }

# The kernel's own wwid attribute may name another designator (it has its
# own order: on 7.3 scsi_debug's locally assigned NAA before its T10 ID,
# which multipathd ranks the other way round; udev's scsi_id also prefers
# the NAA): shown for the log.
for p in $paths; do
  log "${p#/dev/}: VPD 0x83 gives $(lun_wwid "${p#/dev/}"), the kernel's wwid attribute '$(cat "/sys/block/${p#/dev/}/device/wwid")'"
done
wwids=$(for p in $paths; do lun_wwid "${p#/dev/}"; done | sort -u)
wwids_line=$(printf '%s\n' "$wwids" | tr '\n' ' ')
expect_eq "$(printf '%s\n' "$wwids" | wc -l)" 2 "distinct WWIDs of the scsi_debug disks ($wwids_line)"
for w in $wwids; do
  expect_eq "$(lun_paths "$w" | wc -w)" 3 "paths of WWID $w"
  log "WWID $w: $(lun_paths "$w")"
done

conf=$TEST_TMP/conf
mkdir -p "$conf/maps.d"
write_conf() { # POLICY [LINE...]: more defaults lines
  local policy=$1 l
  shift
  {
    printf '# written by %s\ndefaults {\n\tfind_multipaths yes\n\tuser_friendly_names yes\n' "$TEST_NAME"
    printf '\tpath_grouping_policy %s\n' "$policy"
    for l in "$@"; do printf '\t%s\n' "$l"; done
    printf '}\n'
  } >"$conf/multipath.conf"
}
bindings=$conf/multipath/bindings

# check_maps GROUPS_PER_MAP: mpatha and mpathb exist, each the map of one
# LUN (UUID mpath-WWID, the binding of its name) over that LUN's 3 paths in
# GROUPS_PER_MAP groups.
check_maps() {
  local n uuid w groups seen=''
  expect_eq "$(names)" "mpatha mpathb" "devices"
  for n in mpatha mpathb; do
    uuid=$(uuid_of "$n")
    w=${uuid#mpath-}
    expect_eq "mpath-$w" "$uuid" "$n: UUID"
    case " $wwids_line" in *" $w "*) ;; *) die "$n: UUID $uuid is no scsi_debug LUN's WWID ($wwids_line)" ;; esac
    case " $seen " in *" $w "*) die "two maps for WWID $w" ;; esac
    seen="$seen $w"
    expect_eq "$(awk -v n="$n" '$1 == n { print $2 }' "$bindings")" "$w" "$n: its binding"
    groups=$(table_groups "$n")
    log "$n: $uuid, groups: $(printf '%s' "$groups" | tr '\n' '|')"
    expect_eq "$(printf '%s\n' "$groups" | wc -l)" "$1" "$n: path groups"
    expect_eq "$(printf '%s\n' "$groups" | tr ' ' '\n' | sort | tr '\n' ' ' | sed 's/ $//')" "$(lun_paths "$w")" \
      "$n: its paths"
  done
}

# --- a multipath.conf whose structure is broken stops ubdmd at start -----------
bad=$TEST_TMP/bad
mkdir -p "$bad"
printf 'defaults {\n\tfind_multipaths yes\n' >"$bad/multipath.conf"
expect_fail_with "$bad/multipath.conf line 1: 'defaults' is opened here and never closed" \
  _with_timeout 30 "$UBDMD" --foreground --socket "$TEST_TMP/bad.sock" --config "$bad"
expect_eq "$(ublk_ids | wc -l)" 0 "ublk devices after the refused start"

# --- multibus: one map per LUN, made at start ----------------------------------
write_conf multibus
start_ubdmd --config "$conf"
on_exit stop_ubdmd
[ -z "$(ls "$conf/maps.d")" ] || die "maps.d is not empty"
check_maps 1
for w in $wwids; do
  grep -qx "/$w/" "$conf/multipath/wwids" || die "the wwids file lacks $w: $(cat "$conf/multipath/wwids")"
done
expect_logged "mpatha made" "mpatha: multipath map of WWID [^ ]+ made over sd[a-z]+ sd[a-z]+ sd[a-z]+ \\(multibus:"
expect_logged "mpathb made" "mpathb: multipath map of WWID [^ ]+ made over"
expect_logged "the count" "2 multipath map\\(s\\) assembled"
if ubdmd_log_last | grep -E "multipath: .* left out"; then die "a path was left out"; fi
log "table of mpatha: $(ubdmsetup table mpatha)"
# Given with path_check_interval 5, which the table line leaves out as the
# default: no features, no handler, one group of 3 paths.
expect_match "$(ubdmsetup table mpatha)" "^0 [0-9]+ multipath 0 0 1 1 service-time 0 3 " "mpatha's table"

fio_verify /dev/ubdm/mpatha 4M
fio_verify /dev/ubdm/mpathb 4M

# --- kill -9: the next ubdmd adopts both and makes no second map ----------------
before_a=$(dev_ident mpatha)
before_b=$(dev_ident mpathb)
before_bindings=$(cat "$bindings")
kill_ubdmd
expect_kept "after kill -9" mpatha mpathb
start_ubdmd --config "$conf"
expect_adopted mpatha mpathb
expect_ident mpatha "$before_a"
expect_ident mpathb "$before_b"
check_maps 1
expect_logged "mpatha kept" "multipath: mpatha serves WWID [^ ]+ already"
expect_logged "mpathb kept" "multipath: mpathb serves WWID [^ ]+ already"
expect_logged "nothing made" "0 multipath map\\(s\\) assembled"
expect_eq "$(ublk_ids | wc -l)" 2 "ublk devices after the restart"
expect_eq "$(cat "$bindings")" "$before_bindings" "bindings after the restart"

# --- failover: the maps removed, ubdmd restarted with the new policy ------------
run ubdmsetup remove --retry mpatha
run ubdmsetup remove --retry mpathb
term_ubdmd
write_conf failover
start_ubdmd --config "$conf"
check_maps 3
expect_eq "$(cat "$bindings")" "$before_bindings" "bindings with failover"
log "table of mpatha: $(ubdmsetup table mpatha)"
fio_verify /dev/ubdm/mpathb 4M

# --- group_by_prio with prio alua: one group per ALUA state, best first ---------
# scsi_debug (vpd_use_hostno=0): each host its own target port group, in
# the access state host_no % 3: 0 active/optimized (priority 50), 1
# active/non-optimized (10), 2 standby (1).
run ubdmsetup remove --retry mpatha
run ubdmsetup remove --retry mpathb
term_ubdmd
write_conf group_by_prio "prio alua" "detect_prio no"
start_ubdmd --config "$conf"
check_maps 3
# host_of MAJ:MIN: the SCSI host number of that disk.
host_of() { basename "$(readlink -f "/sys/dev/block/$1/device")" | cut -d: -f1; }
for n in mpatha mpathb; do
  log "table of $n: $(ubdmsetup table "$n")"
  expect_eq "$(ubdmsetup table "$n" | awk '{ i = 4; i += $i + 1; i += $i + 1; print $(i + 1) }')" 1 \
    "$n: the initial group"
  i=0
  for g in $(table_groups "$n"); do
    h=$(host_of "$g")
    expect_eq "$((h % 3))" "$i" "$n: group $((i + 1)) ($g, host $h): host_no % 3, its ALUA state"
    i=$((i + 1))
  done
  expect_eq "$i" 3 "$n: groups"
done
expect_logged "alua read" "multipath: sd[a-z]+: alua: target port group [0-9]+, active/optimized, priority 50"
expect_logged "standby read" "multipath: sd[a-z]+: alua: target port group [0-9]+, standby, priority 1"
if ubdmd_log_last | grep -E "prio alua: undefined priority"; then die "an ALUA priority was not read"; fi
fio_verify /dev/ubdm/mpatha 4M
