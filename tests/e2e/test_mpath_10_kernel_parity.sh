#!/bin/sh
# shellcheck shell=dash
# Kernel parity: the same multipath table loaded into the kernel's
# dm-multipath (dmsetup) and into ubdm gives the same `table` and `status`
# lines, byte for byte, and the same event-counter moves, at every step:
# created (before any I/O), after I/O, after fail_path (device path form)
# and I/O, after fail_if_no_path, with no valid path before and after a
# failed I/O, after reinstate_path
# (major:minor form) and queue_if_no_path, around a flush suspend (and
# messages refused while suspended, and bad messages refused alike); and in
# a two-group table after disable_group, I/O, enable_group, switch_group.
# For round-robin, queue-length and service-time (per-path args "1 2" and
# "1 8"); and for tables the kernel normalises (see table_forms).
#
# historical-service-time: the VM's kernel is built without it
# (CONFIG_DM_MULTIPATH_HST is not set), so ubdm's lines are compared with
# the kernel's round-robin lines for the same steps, rewritten into the
# format of drivers/md/dm-ps-historical-service-time.c (hst_status: group
# "2 <base_weight> <threshold_multiplier> ", table "0 " per path, INFO
# "<avg> <outstanding> <stale_after> " per path). The selector state of the
# multipath core does not depend on the selector, so the rest of the line
# must match; the three measured values are masked (they are timings), and
# outstanding must be 0 when idle.
#
# A fresh map is compared before any I/O: the kernel's shows QUEUE_IO set
# and every group 'E' ("2 1 0 ... E") until the first I/O picks a path. An
# I/O that reached ubdm's paths before the user's first one (ublk's kernel
# driver scans a new disk for partitions when it starts, unless ubdm's
# queues suppress that scan, as they do) is logged with the mismatch it
# causes.
#
# Both claim their paths exclusively, so the kernel's map and ubdm's use
# different paths to the same LUN: the kernel P1 and P2, ubdm U1 and U2
# (two more scsi_debug hosts). Every kernel line is compared with the
# kernel's device numbers rewritten to ubdm's (to_ubdm), and whatever is
# done to a kernel path (offline, a message naming it) is done to its ubdm
# twin.
#
# The paths set by fail_path are also set offline, so that ubdm's checker
# (on by default, every 5 s; its feature words cannot be in a table the
# kernel accepts) agrees with the message instead of reinstating the path.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/mpath_lib.sh
. "$(dirname "$0")/mpath_lib.sh"
set -eu
require_ubdm
mp_setup
# shellcheck disable=SC2034 # read by mp_create
MP_QUEUES=2
on_exit path_online "$P1"
on_exit path_online "$P2"
on_exit sh -c "dmsetup remove --noudevsync kpar 2>/dev/null || true"
U1=$(scsi_debug_add_host)
on_exit scsi_debug_remove_host
U2=$(scsi_debug_add_host)
on_exit scsi_debug_remove_host
UM1=$(majmin "$U1") UM2=$(majmin "$U2")
on_exit path_online "$U1"
on_exit path_online "$U2"
log "kernel paths $P1 ($M1) $P2 ($M2); ubdm paths $U1 ($UM1) $U2 ($UM2)"
start_ubdmd
on_exit stop_ubdmd

# A kernel-side text (table, message words) with the kernel's paths
# replaced by their ubdm twins.
to_ubdm() {
  printf '%s\n' "$1" | sed -e "s#\(^\| \)$P1\( \|\$\)#\1$U1\2#g" -e "s#\(^\| \)$P2\( \|\$\)#\1$U2\2#g" \
    -e "s#\(^\| \)$M1\( \|\$\)#\1$UM1\2#g" -e "s#\(^\| \)$M2\( \|\$\)#\1$UM2\2#g"
}
offline() { path_offline "$1"; path_offline "$(to_ubdm "$1")"; }
online() { path_online "$1"; path_online "$(to_ubdm "$1")"; }

MISMATCHES=0 MISMATCH_LIST=''
HST_ARGS="900 3"   # base_weight, threshold_multiplier

# The kernel's line for a ubdm HST device: the kernel round-robin line
# rewritten (see the header). TABLE lines: the selector words and per-path
# args; STATUS lines go through mask_info.
hst_table_from_rr() {
  printf '%s\n' "$1" | sed -E "s/round-robin 0 /historical-service-time 2 $HST_ARGS /g; s/([0-9]+:[0-9]+) 1 /\\1 0 /g"
}
# mask_info LINE [PS_STATUS INFO_ARGS]: per-path selector INFO words become
# "#" (INFO_ARGS of them if given), the group-level selector status becomes
# PS_STATUS if given. Prints the line with its trailing space.
mask_info() {
  printf '%s\n' "$1" | awk -v ps="${2:-}" -v ia="${3:-}" '{
    out = $1 " " $2 " " $3; i = 4
    n = $i; out = out " " $i; for (k = 0; k < n; k++) { i++; out = out " " $i }   # features
    i++; n = $i; out = out " " $i; for (k = 0; k < n; k++) { i++; out = out " " $i }   # hw handler
    i++; npg = $i; out = out " " $i; i++; out = out " " $i
    for (g = 0; g < npg; g++) {
      i++; out = out " " $i                     # A|E|D
      i++; n = $i; s = $i; for (k = 0; k < n; k++) { i++; s = s " " $i }
      out = out " " (ps != "" ? ps : s)
      i++; np = $i; out = out " " np
      i++; na = $i; nout = (ia != "" ? ia : na); out = out " " nout
      for (p = 0; p < np; p++) {
        i++; out = out " " $i; i++; out = out " " $i; i++; out = out " " $i   # dev state fails
        for (k = 0; k < na; k++) i++
        for (k = 0; k < nout; k++) out = out " #"
      }
    }
    if (i != NF) out = out " <" NF - i " words left over>"
    print out " "
  }'
}
# hst_outstanding LINE: the outstanding counts of an HST INFO line.
hst_outstanding() {
  printf '%s\n' "$1" | awk '{ for (i = 1; i < NF; i++) if ($i ~ /^[0-9]+:[0-9]+$/) printf "%s ", $(i + 4) }'
}

# newest_table LINE: a kernel TABLE line in the newest kernel's form, which
# ubdm follows where kernels differ. Before 6.19 the kernel echoes
# retain_attached_hw_handler (and adds it to queue_mode bio tables); from
# 6.19 it accepts the word and never prints it.
newest_table() {
  if kernel_at_least 6 19; then
    printf '%s\n' "$1"
    return
  fi
  printf '%s\n' "$1" | awk '{
    out = $1 " " $2 " " $3; n = $4; kept = 0; words = ""
    for (i = 5; i < 5 + n; i++) if ($i != "retain_attached_hw_handler") { words = words " " $i; kept++ }
    out = out " " kept words
    for (; i <= NF; i++) out = out " " $i
    print out " "
  }'
}

events() { # TOOL NAME
  $1 info "$2" | sed -n 's/^Event number: *//p'
}
same() { # WHAT KERNEL UBDM
  if [ "$2" = "$3" ]; then
    log "  same $1: [$3]"
  else
    log "MISMATCH $1"
    log "  kernel: [$2]"
    log "  ubdm:   [$3]"
    MISMATCHES=$((MISMATCHES + 1))
    MISMATCH_LIST="$MISMATCH_LIST; $1"
  fi
}

# compare STAGE: table, status and the event counter's move since the last
# compare, kernel (kpar) against ubdm (upar).
compare() {
  local kt ut ks us ke ue
  sleep 0.1   # the kernel's trigger_event is a work item
  kt=$(newest_table "$(to_ubdm "$(dmsetup table kpar)")") ut=$(ubdmsetup table upar)
  ks=$(to_ubdm "$(dmsetup status kpar)") us=$(ubdmsetup status upar)
  ke=$(events dmsetup kpar) ue=$(events ubdmsetup upar)
  if [ "$HST" = 1 ]; then
    kt=$(hst_table_from_rr "$kt")
    ks=$(mask_info "$ks" "2 $HST_ARGS" 3)
    expect_eq "$(hst_outstanding "$us")" "0 0 " "$SEL_NAME $1: HST outstanding when idle ($us)"
    us=$(mask_info "$us")
  fi
  same "$SEL_NAME $1: table" "$kt" "$ut"
  same "$SEL_NAME $1: status" "$ks" "$us"
  same "$SEL_NAME $1: event moves" "$((ke - K_EV))" "$((ue - U_EV))"
  K_EV=$ke U_EV=$ue
}

io() { # the same reads on both
  dd if=/dev/mapper/kpar of=/dev/null bs=4k count=16 iflag=direct 2>/dev/null || die "read on the kernel map failed"
  dd if="$MP_DEV" of=/dev/null bs=4k count=16 iflag=direct 2>/dev/null || die "read on the ubdm map failed"
}
io_fails() {
  expect_fail dd if=/dev/mapper/kpar of=/dev/null bs=4k count=1 iflag=direct
  expect_fail dd if="$MP_DEV" of=/dev/null bs=4k count=1 iflag=direct
}
msg() { # MESSAGE...: to both (kernel path words become ubdm's)
  dmsetup message kpar 0 "$@" || die "kernel: message $* failed"
  # shellcheck disable=SC2046 # the message's words
  ubdmsetup message upar 0 $(to_ubdm "$*") || die "ubdm: message $* failed"
}

# create_both KERNEL-TABLE UBDM-TABLE: and compare the fresh maps, before
# any I/O.
create_both() {
  local ios
  dm_create kpar "$1" >/dev/null
  mp_create upar "$(to_ubdm "$2")"
  K_EV=$(events dmsetup kpar) U_EV=$(events ubdmsetup upar)
  ios=$(($(mp_path_field upar "$U1" ios) + $(mp_path_field upar "$UM2" ios)))
  if [ "$ios" -gt 0 ]; then
    log "  $SEL_NAME created: ubdm already sent $ios I/O(s) to its paths before any user I/O" \
      "(reads seen by ${MP_DEV#/dev/}: $(awk '{ print $1 }' "/sys/block/${MP_DEV#/dev/}/stat"); a partition scan?)"
  fi
  compare "created, before any I/O"
}
remove_both() {
  dm_remove kpar
  mp_remove upar
}

# parity SEL_NAME SELECTOR-WORDS #PER-PATH-ARGS ARGS1 ARGS2
# SELECTOR-WORDS: "<name> <#args> [args]". For HST the kernel side uses
# round-robin (see the header).
parity() {
  local ksel kn ka1 ka2 ut kt
  SEL_NAME=$1
  HST=0
  ksel=$2 kn=$3 ka1=$4 ka2=$5
  case $2 in historical-service-time*) HST=1 ksel="round-robin 0" kn=1 ka1=1 ka2=1 ;; esac
  log "=== $SEL_NAME: one group"
  kt="0 $SECTORS multipath 1 queue_if_no_path 0 1 1 $ksel 2 $kn $P1 $ka1 $M2 $ka2"
  ut="0 $SECTORS multipath 1 queue_if_no_path 0 1 1 $2 2 $3 $P1 $4 $M2 $5"
  create_both "$kt" "$ut"
  io
  compare "after I/O"
  offline "$P1"
  msg fail_path "$P1"
  compare "after fail_path $P1"
  io
  compare "after I/O with $P1 failed"
  msg fail_if_no_path
  compare "after fail_if_no_path"
  offline "$P2"
  msg fail_path "$P2"
  compare "no valid path, before I/O"
  io_fails
  compare "no valid path, after failed I/O"
  online "$P1"
  online "$P2"
  msg reinstate_path "$M1"
  msg reinstate_path "$M2"
  compare "after reinstate_path $M1 $M2"
  msg queue_if_no_path
  compare "after queue_if_no_path"
  io
  compare "after I/O, all reinstated"
  if [ "$SEL_NAME" = round-robin ]; then
    # A flush suspend turns queue_if_no_path off until the resume; messages
    # are refused while suspended.
    dmsetup suspend --noudevsync kpar || die "kernel: suspend failed"
    ubdmsetup suspend upar || die "ubdm: suspend failed"
    compare "while flush-suspended"
    expect_fail dmsetup message kpar 0 fail_path "$P1"
    expect_fail ubdmsetup message upar 0 fail_path "$U1"
    dmsetup resume --noudevsync kpar || die "kernel: resume failed"
    ubdmsetup resume upar || die "ubdm: resume failed"
    compare "after resume"
    # Messages the kernel refuses (EINVAL): refused alike, nothing changes.
    for m in "fail_path /dev/nullb0" "reinstate_path 1:3" "switch_group 2" "disable_group 0" \
      "enable_group x" "queue_if_no_path 1" "fail_path" "frobnicate" "switch_group 1 2"; do
      # shellcheck disable=SC2086 # the words of the message
      expect_fail dmsetup message kpar 0 $m
      # shellcheck disable=SC2086
      expect_fail ubdmsetup message upar 0 $m
    done
    compare "after refused messages"
  fi
  remove_both

  log "=== $SEL_NAME: two groups"
  kt="0 $SECTORS multipath 1 queue_if_no_path 0 2 1 $ksel 1 $kn $P1 $ka1 $ksel 1 $kn $M2 $ka2"
  ut="0 $SECTORS multipath 1 queue_if_no_path 0 2 1 $2 1 $3 $P1 $4 $2 1 $3 $M2 $5"
  create_both "$kt" "$ut"
  io
  compare "2 groups: after I/O"
  msg disable_group 1
  compare "2 groups: after disable_group 1"
  io
  compare "2 groups: after disable_group 1 and I/O"
  msg enable_group 1
  if [ "$SEL_NAME" = round-robin ]; then
    # enable_group on its own (the selector plays no part: round-robin only).
    compare "2 groups: after enable_group 1"
  fi
  io
  compare "2 groups: after enable_group 1 and I/O"
  msg switch_group 2
  compare "2 groups: after switch_group 2"
  io
  compare "2 groups: after switch_group 2 and I/O"
  msg disable_group 2
  msg switch_group 1
  if [ "$SEL_NAME" = round-robin ]; then
    compare "2 groups: after disable_group 2, switch_group 1"
  fi
  io
  compare "2 groups: after disable_group 2, switch_group 1 and I/O"
  remove_both
}

# Tables the kernel normalises: per-path args left out, repeat_count > 1,
# ignored selector args, feature words in capitals and with values, an
# initial group other than 1, relative throughputs 0 and 100.
table_forms() {
  local t n=0
  for t in \
    "0 0 1 1 round-robin 0 2 0 $P1 $M2" \
    "0 0 1 1 round-robin 2 x y 2 1 $P1 1000 $M2 2" \
    "3 QUEUE_IF_NO_PATH queue_mode mq 0 1 1 queue-length 0 2 1 $P1 7 $M2 1" \
    "5 pg_init_retries 5 pg_init_delay_msecs 100 retain_attached_hw_handler 0 1 1 service-time 0 2 2 $P1 3 0 $M2 1 100" \
    "1 queue_if_no_path 0 2 2 service-time 0 1 1 $P1 4 queue-length 0 1 0 $M2" \
    "2 queue_mode rq 0 2 2 round-robin 0 1 1 $P1 1 round-robin 0 1 1 $M2 1"; do
    n=$((n + 1))
    SEL_NAME="form $n" HST=0
    log "=== form $n: $t"
    create_both "0 $SECTORS multipath $t" "0 $SECTORS multipath $t"
    io
    compare "after I/O"
    remove_both
  done
}
table_forms

# queue_mode bio: ubdm accepts it and stays request-based, but the kernel
# echoes it in the table ("2 queue_mode bio"; before 6.19 with the
# retain_attached_hw_handler it forced, see newest_table). The TABLE line is
# what the user loaded, so it must read back the same.
SEL_NAME="queue_mode bio" HST=0
log "=== queue_mode bio"
create_both "0 $SECTORS multipath 2 queue_mode bio 0 1 1 round-robin 0 2 1 $P1 1 $M2 1" \
  "0 $SECTORS multipath 2 queue_mode bio 0 1 1 round-robin 0 2 1 $P1 1 $M2 1"
remove_both

parity round-robin "round-robin 0" 1 1 1
parity queue-length "queue-length 0" 1 1 1
parity service-time "service-time 0" 2 "1 2" "1 8"
parity historical-service-time "historical-service-time 2 $HST_ARGS" 1 1 1

[ "$MISMATCHES" -eq 0 ] || die "$MISMATCHES line(s) differ from the kernel's: ${MISMATCH_LIST#; }"
log "every table and status line matched the kernel's"
