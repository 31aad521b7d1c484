# shellcheck shell=dash
# Helpers for the end-to-end tests that run inside the test VM (busybox sh).
#
# A test is tests/e2e/test_<area>_<nn>_<what>.sh:
#
#   #!/bin/sh
#   # One line saying what this proves.
#   . "$(dirname "$0")/lib.sh"
#   set -eu
#   require_ubdm                       # SKIP if ubdmd/ubdmsetup are not packed
#   start_ubdmd
#   ubdmsetup create t0 --table "0 2048 linear /dev/nullb0 0"
#   on_exit ubdmsetup remove t0        # cleanups run LIFO at exit, always
#   ...
#   expect_eq "$(blockdev --getsz /dev/ubdm/t0)" 2048 "size"
#
# Exit status: 0 PASS, 77 SKIP (use `skip REASON`), anything else FAIL (use
# `die REASON`: the reason shows in the summary). run-all.sh gives each test
# its own session (it kills leftovers after the test), cwd $UBDM_TEST_TMP
# (a fresh dir under /tmp), stdin /dev/null, and a time limit (default 300 s,
# ubdm.test_timeout= on the kernel command line, run.sh --test-timeout).
#
# The machine (set up by /init, the same for every test):
#   /dev/ublk-control          ublk_drv loaded
#   /dev/sda, /dev/sdb         scsi_debug add_host=2 num_tgts=1 max_luns=1
#                              vpd_use_hostno=0 dev_size_mb=256: two paths to
#                              ONE 256 MiB LUN (shared store, keeps data, blk-mq);
#                              use `scsi_debug_paths`, not the names
#   /dev/nullb0                null_blk nr_devices=1 gb=1 queue_mode=2: 1 GiB,
#                              blk-mq, fast, keeps NO data (reads are zeroes)
#   /dev/ram0                  brd rd_nr=1 rd_size=262144: 256 MiB, keeps data,
#                              bio-based (kernel dm-multipath refuses it)
#   /dev/loop-control          loop (busybox losetup, or util-linux losetup)
#   dm-mod, dm-multipath, dm-round-robin, dm-queue-length, dm-service-time,
#   dm-flakey, dm-delay, dm-zero loaded; configfs at /sys/kernel/config
#   DM_DISABLE_UDEV=1: dmsetup makes /dev/mapper/NAME itself (no udev here;
#   pass --noudevsync anyway). No udev at all: /dev/ubdm/* links, if any,
#   are ubdmd's own business.
#   To change a module's parameters for one test: reload_module NAME ARGS...
#   (the next test gets the defaults back only if it reloads too; prefer
#   putting `on_exit reload_module NAME` after it, which restores them).
#
# Daemon restarts (devices outlive ubdmd: SIGTERM and kill -9 leave them to
# the kernel, the next ubdmd adopts them from $UBDM_STATE_DIR):
#   stop_ubdmd      the cleanup: remove_all --force, then SIGTERM; leaves nothing
#   term_ubdmd      plain SIGTERM and wait (exit status must be 0), no removal
#   kill_ubdmd      SIGKILL (a crash); restart_ubdmd ARGS: term_ubdmd + start
#   reap_ubdmd      wait for a ubdmd that ends on its own (UBDMD_CRASH_AT);
#                   its status in UBDMD_RC
#   ubdmd_log_last  the log of the newest start only; expect_logged WHAT ERE...,
#                   expect_adopted NAME... check it
#   dev_ident NAME  what must survive a restart (node, tables, options, state);
#                   expect_ident NAME BEFORE compares
#   ublk_ids, ublk_id NAME, state_files, wait_no_ublk WHEN: what is left
#   ublk_has_feature BIT: the kernel's ublk has that feature (GET_FEATURES)
#   kernel_at_least MAJOR MINOR: the running kernel's version
#   inflight DEV, wait_inflight DEV [N]: I/Os in flight (sysfs), not a sleep
#   io_count DEV, wait_io_progress DEV [N]: completions, "I/O flows again"
#   dm_delay NAME OFF SECTORS MS: a slow disk over /dev/ram0 (I/O stays in
#                   flight long enough to be caught by a kill)
#   fio_verify_bg TAG DEV SIZE, fio_verify_wait TAG PID: fio with crc32c
#                   verify in the background, several at once; pid_alive PID
#
# Tools: busybox applets, fio, mke2fs/mkfs.ext4/e2fsck/dumpe2fs, dmsetup,
# blockdev, blkdiscard, lsblk, blkid, wipefs, losetup (util-linux), and /bin/ubdmd,
# /bin/ubdmsetup when run.sh packed them.

UBDMD=${UBDMD:-/bin/ubdmd}
UBDMSETUP=${UBDMSETUP:-/bin/ubdmsetup}
UBDM_SOCK=${UBDM_SOCK:-/run/ubdm/control.sock}
UBDMD_LOG=${UBDMD_LOG:-/tmp/ubdmd.log}
UBDMD_PIDFILE=/run/ubdm/ubdmd.pid
UBDM_STATE_DIR=${UBDM_STATE_DIR:-/run/ubdm/devices}
TEST_TMP=${UBDM_TEST_TMP:-/tmp}
TEST_NAME=${UBDM_TEST_NAME:-$(basename "$0" .sh)}
_lib_t0=$(date +%s)

# --- messages and results ----------------------------------------------------

# Messages go to stderr (the console), so helpers used in $(...) still show
# them; die/skip work there too (the reason is kept in a file; the test then
# fails through set -e on the failed assignment).
log() { printf '[%s +%ss] %s\n' "$TEST_NAME" "$(($(date +%s) - _lib_t0))" "$*" >&2; }

# The one-line reason run-all.sh shows for a FAIL or SKIP (first one wins).
_note() {
  [ -n "${UBDM_TEST_TMP:-}" ] || return 0
  [ -s "$UBDM_TEST_TMP/.reason" ] && return 0
  printf '%s\n' "$*" | head -n1 | cut -c1-160 >"$UBDM_TEST_TMP/.reason"
}
die() {
  log "FAIL: $*"
  _note "$*"
  # In an on_exit cleanup: fail the test, but let the other cleanups run.
  if [ -n "$_lib_in_cleanup" ]; then _lib_cleanup_failed=1; return 1; fi
  exit 1
}
skip() { log "SKIP: $*"; _note "$*"; exit 77; }

# Run CMD... showing it first.
run() { log "+ $*"; "$@"; }

expect_eq() { # ACTUAL EXPECTED [WHAT]
  [ "$1" = "$2" ] || die "${3:-value}: expected '$2', got '$1'"
}
expect_ne() { # ACTUAL UNEXPECTED [WHAT]
  [ "$1" != "$2" ] || die "${3:-value}: did not expect '$2'"
}
expect_contains() { # HAYSTACK NEEDLE [WHAT]
  case $1 in *"$2"*) return 0 ;; esac
  die "${3:-output}: '$2' not in '$1'"
}
expect_match() { # STRING ERE [WHAT]
  printf '%s\n' "$1" | grep -Eq -- "$2" || die "${3:-output}: '$1' does not match /$2/"
}

# expect_ok CMD...: CMD must succeed; its stdout is in $EXPECT_STDOUT and
# printed, its stderr in $EXPECT_STDERR.
expect_ok() {
  local rc=0
  "$@" >"$TEST_TMP/.out" 2>"$TEST_TMP/.err" || rc=$?
  EXPECT_STDOUT=$(cat "$TEST_TMP/.out")
  EXPECT_STDERR=$(cat "$TEST_TMP/.err")
  [ -z "$EXPECT_STDOUT" ] || printf '%s\n' "$EXPECT_STDOUT"
  [ "$rc" -eq 0 ] || die "'$*' failed (exit $rc): $(printf '%s' "$EXPECT_STDERR" | tr '\n' ' ')"
}

# expect_fail CMD...: CMD must fail; its stderr is in $EXPECT_STDERR (also
# logged), its stdout in $EXPECT_STDOUT, its status in $EXPECT_RC.
expect_fail() {
  EXPECT_RC=0
  "$@" >"$TEST_TMP/.out" 2>"$TEST_TMP/.err" || EXPECT_RC=$?
  EXPECT_STDOUT=$(cat "$TEST_TMP/.out")
  EXPECT_STDERR=$(cat "$TEST_TMP/.err")
  [ "$EXPECT_RC" -ne 0 ] || die "'$*' succeeded but should have failed"
  log "failed as expected (exit $EXPECT_RC): $(printf '%s' "$EXPECT_STDERR" | tr '\n' ' ')"
}
# expect_fail_with ERE CMD...: as expect_fail, and stderr must match ERE.
expect_fail_with() {
  local re=$1
  shift
  expect_fail "$@"
  printf '%s\n' "$EXPECT_STDERR" | grep -Eq -- "$re" ||
    die "'$*' failed, but its stderr does not match /$re/: $EXPECT_STDERR"
}

# --- waiting ------------------------------------------------------------------

# wait_until TIMEOUT_S CMD...: poll CMD every 0.1 s; status 1 on timeout.
wait_until() {
  local limit=$(($1 * 10)) i=0
  shift
  while ! "$@" >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -lt $limit ] || return 1
    sleep 0.1
  done
}
# wait_for PATH [TIMEOUT_S=10]: wait until PATH exists; FAIL on timeout.
wait_for() {
  wait_until "${2:-10}" test -e "$1" || die "$1 did not appear within ${2:-10}s"
}
# wait_gone PATH [TIMEOUT_S=10]: wait until PATH is gone; FAIL on timeout.
wait_gone() {
  wait_until "${2:-10}" test ! -e "$1" || die "$1 still exists after ${2:-10}s"
}

# --- cleanup --------------------------------------------------------------------

# on_exit CMD [ARGS...]: run at exit (pass, fail or timeout), last first.
# Arguments are kept as words (no re-splitting of what you pass).
_lib_cleanups=
on_exit() {
  local q='' a
  # shellcheck disable=SC2089 # the quotes are for eval in _lib_exit
  for a in "$@"; do q="$q '$(printf '%s' "$a" | sed "s/'/'\\\\''/g")'"; done
  _lib_cleanups="$q
$_lib_cleanups"
}
_lib_in_cleanup=''
_lib_cleanup_failed=''
_lib_exit() {
  local rc=$? line old_ifs=$IFS
  trap - EXIT
  set +e
  # Cleanups run in this shell (so stop_ubdmd can wait for its child); a die
  # inside one marks the test failed and goes on with the others.
  _lib_in_cleanup=1
  set -f
  IFS='
'
  # shellcheck disable=SC2086,SC2090 # one line per cleanup, eval'd below
  set -- $_lib_cleanups
  IFS=$old_ifs
  set +f
  for line in "$@"; do
    eval "$line" || log "cleanup failed: $line"
  done
  if [ -n "$_lib_cleanup_failed" ] && { [ "$rc" -eq 0 ] || [ "$rc" -eq 77 ]; }; then
    rc=1
  fi
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && [ "$rc" -ne 143 ] && [ -n "${UBDM_TEST_TMP:-}" ] && [ ! -s "$UBDM_TEST_TMP/.reason" ]; then
    _note "exit status $rc (a command failed under set -e?)"
  fi
  exit "$rc"
}
if [ -z "${UBDM_LIB_NO_TRAP:-}" ]; then
  trap _lib_exit EXIT
  trap 'exit 143' TERM
  trap 'exit 130' INT
fi

# --- ubdm ---------------------------------------------------------------------

have_ubdm() { [ -x "$UBDMD" ] && [ -x "$UBDMSETUP" ]; }
require_ubdm() { have_ubdm || skip "ubdmd/ubdmsetup not in the VM (build them, then tools/vm/run.sh)"; }
require_cmd() { command -v "$1" >/dev/null 2>&1 || skip "$1 not available"; }

ubdmd_pid() { cat "$UBDMD_PIDFILE" 2>/dev/null; }
ubdmd_running() { local p; p=$(ubdmd_pid) && [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

# start_ubdmd [EXTRA ARGS...]: /bin/ubdmd --foreground --socket $UBDM_SOCK in
# the background, output appended to /tmp/ubdmd.log; waits for the socket
# and the first answer (so devices it adopts at start are adopted).
# shellcheck disable=SC2120 # optional arguments
start_ubdmd() {
  require_ubdm
  ! ubdmd_running || die "ubdmd is already running (pid $(ubdmd_pid))"
  mkdir -p "$(dirname "$UBDM_SOCK")" "$(dirname "$UBDMD_PIDFILE")"
  rm -f "$UBDM_SOCK"
  echo "=== $(date '+%T') $TEST_NAME: $UBDMD --foreground --socket $UBDM_SOCK $*" >>"$UBDMD_LOG"
  "$UBDMD" --foreground --socket "$UBDM_SOCK" "$@" >>"$UBDMD_LOG" 2>&1 </dev/null &
  UBDMD_PID=$!
  echo "$UBDMD_PID" >"$UBDMD_PIDFILE"
  local i=0
  while [ ! -S "$UBDM_SOCK" ]; do
    if ! kill -0 "$UBDMD_PID" 2>/dev/null; then
      local rc=0
      wait "$UBDMD_PID" || rc=$?
      rm -f "$UBDMD_PIDFILE"
      tail -n 20 "$UBDMD_LOG" | sed 's/^/  ubdmd: /'
      die "ubdmd exited (status $rc) before creating $UBDM_SOCK"
    fi
    i=$((i + 1))
    # Adopting devices comes first; it may wait for the old process's release.
    [ $i -lt 300 ] || die "ubdmd did not create $UBDM_SOCK within 30s"
    sleep 0.1
  done
  # The socket exists before adoption ends (connections wait in its backlog
  # meanwhile): the first answer means every device is adopted and served.
  _with_timeout 60 "$UBDMSETUP" --socket "$UBDM_SOCK" ls >/dev/null 2>&1 ||
    log "ubdmd did not answer 'ls' within 60s of creating its socket"
  log "ubdmd running (pid $UBDMD_PID)"
}

# _with_timeout SECS CMD...: CMD, killed after SECS if `timeout` exists.
_with_timeout() {
  local t=$1
  shift
  if command -v timeout >/dev/null 2>&1; then timeout "$t" "$@"; else "$@"; fi
}

# stop_ubdmd [TIMEOUT_S=20]: the cleanup of a test. If ubdmd runs, removes
# every device (`ubdmsetup remove_all --force`; a failure is only logged),
# then stops it as term_ubdmd does. Returns at once if it is not running.
# shellcheck disable=SC2120 # optional arguments
stop_ubdmd() {
  if ubdmd_running && [ -S "$UBDM_SOCK" ]; then
    _with_timeout "${1:-20}" "$UBDMSETUP" --socket "$UBDM_SOCK" remove_all --force >"$TEST_TMP/.remove_all" 2>&1 ||
      log "remove_all --force before stopping ubdmd failed: $(tr '\n' ' ' <"$TEST_TMP/.remove_all")"
  fi
  term_ubdmd "$@"
}

# term_ubdmd [TIMEOUT_S=20]: SIGTERM and wait; removes nothing itself (what
# happens to the devices is ubdmd's --on-stop). FAILs if it does not exit in
# time (then SIGKILLs it) or exits non-zero. Returns at once if not running.
# shellcheck disable=SC2120 # optional arguments
term_ubdmd() {
  local pid limit=$((${1:-20} * 10)) i=0 rc=0
  pid=$(ubdmd_pid) || return 0
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    # A zombie child counts as gone.
    case $(cat "/proc/$pid/stat" 2>/dev/null) in *") Z "*) break ;; esac
    i=$((i + 1))
    if [ $i -ge $limit ]; then
      kill -KILL "$pid" 2>/dev/null
      rm -f "$UBDMD_PIDFILE"
      die "ubdmd (pid $pid) did not exit within ${1:-20}s of SIGTERM; killed"
    fi
    sleep 0.1
  done
  wait "$pid" 2>/dev/null || rc=$?
  rm -f "$UBDMD_PIDFILE"
  # 127: not our child (started by another shell): status unknown.
  [ "$rc" -eq 0 ] || [ "$rc" -eq 127 ] || die "ubdmd exited with status $rc on SIGTERM"
  log "ubdmd stopped"
}

# restart_ubdmd [ARGS...]: a planned restart: term_ubdmd, then start_ubdmd
# ARGS (give again any options the first start had).
restart_ubdmd() {
  term_ubdmd
  start_ubdmd "$@"
}

# _gone PID: not running (or a zombie).
_gone() {
  ! kill -0 "$1" 2>/dev/null && return 0
  case $(cat "/proc/$1/stat" 2>/dev/null) in *") Z "*) return 0 ;; esac
  return 1
}

# kill_ubdmd: SIGKILL (crash simulation); waits until it is gone.
kill_ubdmd() {
  local pid
  pid=$(ubdmd_pid) || return 0
  kill -KILL "$pid" 2>/dev/null || true
  # Not our child (started in a subshell): wait returns at once; poll.
  wait "$pid" 2>/dev/null || true
  wait_until 10 _gone "$pid" || die "ubdmd (pid $pid) still there 10s after SIGKILL"
  rm -f "$UBDMD_PIDFILE"
  log "ubdmd killed"
}

# reap_ubdmd [TIMEOUT_S=10]: wait for a ubdmd that is to end by itself (as
# UBDMD_CRASH_AT makes it); sets UBDMD_RC to its exit status (137: SIGKILL).
# FAILs if it is still running after TIMEOUT_S. Not inside $(...): the
# shell that started ubdmd must wait for it.
reap_ubdmd() {
  local pid
  UBDMD_RC=0
  pid=$(ubdmd_pid) || die "reap_ubdmd: no ubdmd was started"
  wait_until "${1:-10}" _gone "$pid" || die "ubdmd (pid $pid) still running after ${1:-10}s"
  wait "$pid" 2>/dev/null || UBDMD_RC=$?
  rm -f "$UBDMD_PIDFILE"
  log "ubdmd (pid $pid) ended by itself, status $UBDMD_RC"
}

# ubdmd_log_last: the part of $UBDMD_LOG written since the newest start.
ubdmd_log_last() {
  awk '/^=== / { n = 0 } { line[++n] = $0 } END { for (i = 1; i <= n; i++) print line[i] }' "$UBDMD_LOG"
}
# expect_logged WHAT ERE...: the newest start's log has a line matching
# every ERE (e.g. expect_logged "adoption of t0" adopted t0).
expect_logged() {
  local what=$1 lines re
  shift
  lines=$(ubdmd_log_last)
  for re in "$@"; do
    lines=$(printf '%s\n' "$lines" | grep -E -- "$re") || true
  done
  [ -n "$lines" ] || die "$what: no line matching /$*/ in the log of the newest ubdmd"
  log "logged: $(printf '%s\n' "$lines" | head -n 1)"
}
# expect_adopted NAME...: ubdmd's newest start logged the adoption of each.
expect_adopted() {
  local n
  for n in "$@"; do expect_logged "adoption of $n" adopted "(^|[^A-Za-z0-9_.-])$n([^A-Za-z0-9_.-]|\$)"; done
}

# kernel_at_least MAJOR MINOR: the running kernel is MAJOR.MINOR or newer
# (for the kernel-parity tests: the reference is the kernel that runs).
kernel_at_least() {
  local v maj min
  v=$(uname -r)
  maj=${v%%.*} v=${v#*.} min=${v%%[!0-9]*}
  [ "$maj" -gt "$1" ] || { [ "$maj" -eq "$1" ] && [ "$min" -ge "$2" ]; }
}

# ublk_has_feature BIT: the kernel's ublk driver has feature bit BIT
# (GET_FEATURES, as `ubdmsetup version` reports it; e.g. 10 UPDATE_SIZE,
# 11 AUTO_BUF_REG, 12 QUIESCE). Needs a running ubdmd.
ublk_has_feature() {
  local f
  f=$(ubdmsetup --json version | sed -n 's/^ *"ublk_features": *"\(0x[0-9a-f]*\)".*/\1/p')
  [ -n "$f" ] || die "ubdmsetup version reports no ublk_features"
  [ $(((f >> $1) & 1)) -eq 1 ]
}

# ublk_ids: the ublk device ids in the kernel now (/dev/ublkcN), one a line.
ublk_ids() {
  local c
  for c in /dev/ublkc*; do [ -e "$c" ] && echo "${c#/dev/ublkc}"; done
  return 0
}
_no_ublk() { [ -z "$(ublk_ids)" ]; }
# wait_no_ublk WHEN [TIMEOUT_S=10]: FAIL unless every ublk device is gone.
wait_no_ublk() {
  wait_until "${2:-10}" _no_ublk || die "ublk devices left $1: $(ublk_ids | sed 's|^|/dev/ublkc|' | tr '\n' ' ')"
}
# state_files: the state files now in $UBDM_STATE_DIR, one a line.
state_files() {
  local f
  for f in "$UBDM_STATE_DIR"/*.json; do [ -e "$f" ] && basename "$f"; done
  return 0
}

# dev_ident NAME: what a restart must keep, one item a line: the node
# /dev/ubdm/NAME points to, the block device's numbers, the state, which
# tables there are, the options (queues, depth, poll_usec), size and ublk
# id (from `ubdmsetup --json info`), and both tables' lines.
dev_ident() {
  local blk
  blk=$(readlink -f "/dev/ubdm/$1") || blk="(no /dev/ubdm/$1)"
  echo "node $blk"
  [ -b "$blk" ] && echo "devt $(basename "$(sys_block "$blk")")"
  ubdmsetup --json info "$1" |
    grep -E '"(name|uuid|state|live_table|inactive_table|major|minor|size_sectors|blockdev|ublk_id|queues|depth|poll_usec|target_count)":' |
    sed 's/^ *//; s/,$//' | LC_ALL=C sort
  echo "table:"
  ubdmsetup table "$1"
  echo "inactive table:"
  ubdmsetup table --inactive "$1" 2>&1 || true
}
# expect_ident NAME BEFORE [WHEN]: dev_ident NAME equals BEFORE.
expect_ident() {
  local now
  now=$(dev_ident "$1")
  if [ "$now" != "$2" ]; then
    log "$1 before:"
    printf '%s\n' "$2" | sed 's/^/    /' >&2
    log "$1 now:"
    printf '%s\n' "$now" | sed 's/^/    /' >&2
    die "$1: node, table, state or options changed ${3:-across the restart} (see the log)"
  fi
  log "$1: same node, tables, state and options ${3:-across the restart}"
}

# expect_kept WHEN NAME...: /dev/ubdm/NAME is still a block device (after
# a crash or a stop, devices outlive ubdmd).
expect_kept() {
  local when=$1 n
  shift
  for n in "$@"; do
    [ -b "$(readlink -f "/dev/ubdm/$n" 2>/dev/null)" ] ||
      die "/dev/ubdm/$n is not a block device $when (devices are to outlive ubdmd)"
  done
}
# ublk_id NAME: the ublk device id of NAME (/dev/ublkcID, /dev/ublkbID).
ublk_id() { ubdmsetup --json info "$1" | sed -n 's/^ *"ublk_id": *\([0-9-]*\),\{0,1\} *$/\1/p'; }

# dev_state NAME: ACTIVE or SUSPENDED (from `ubdmsetup info`).
dev_state() { ubdmsetup info "$1" | sed -n 's/^State: *//p'; }

# --- devices --------------------------------------------------------------------

# The scsi_debug disks (paths to the one LUN), e.g. "/dev/sda /dev/sdb".
scsi_debug_paths() {
  local m d out=
  for m in /sys/block/sd*/device/model; do
    [ -e "$m" ] || continue
    grep -q scsi_debug "$m" || continue
    d=${m#/sys/block/}
    out="$out /dev/${d%%/*}"
  done
  [ -n "$out" ] || return 1
  printf '%s\n' "$out" | tr ' ' '\n' | sed '/^$/d' | sort | tr '\n' ' ' | sed 's/ $/\n/'
}
# path_offline DEV / path_online DEV: a scsi_debug path fails / comes back
# (DEV: /dev/sda or sda).
path_offline() { echo offline >"/sys/block/${1#/dev/}/device/state"; }
path_online() { echo running >"/sys/block/${1#/dev/}/device/state"; }
path_state() { cat "/sys/block/${1#/dev/}/device/state"; }

dev_sectors() { blockdev --getsz "$1"; }   # size in 512-byte sectors

# sys_block DEV: the sysfs directory of block device DEV (a node, or a link
# to one): /sys/dev/block/MAJ:MIN (dmsetup's /dev/mapper nodes are no links).
sys_block() {
  local hex
  hex=$(stat -L -c '%t:%T' "$1") || return 1
  echo "/sys/dev/block/$((0x${hex%%:*})):$((0x${hex##*:}))"
}
# inflight DEV: reads + writes the block layer has started and not ended.
inflight() { awk '{ print $1 + $2 }' "$(sys_block "$1")/inflight"; }
_inflight_at_least() { [ "$(inflight "$1")" -ge "$2" ]; }
# wait_inflight DEV [N=1] [TIMEOUT_S=20]: wait until N I/Os of DEV are in
# flight (issued by the submitter, not yet completed); FAIL on timeout. Use
# it instead of `sleep` after starting I/O that is to be held.
wait_inflight() {
  wait_until "${3:-20}" _inflight_at_least "$1" "${2:-1}" ||
    die "$1: ${2:-1} I/O(s) not in flight within ${3:-20}s (inflight: $(cat "$(sys_block "$1")/inflight"))"
  log "$1: in flight: $(inflight "$1")"
}
# io_count DEV: reads + writes DEV completed so far.
io_count() { awk '{ print $1 + $5 }' "$(sys_block "$1")/stat"; }
_io_count_above() { [ "$(io_count "$1")" -gt "$2" ]; }
# wait_io_progress DEV [N=20] [TIMEOUT_S=20]: wait until DEV completes N
# more I/Os; FAIL on timeout (I/O does not flow).
wait_io_progress() {
  local c
  c=$(io_count "$1")
  wait_until "${3:-20}" _io_count_above "$1" $((c + ${2:-20})) ||
    die "$1: I/O does not flow (${2:-20} more completions not seen in ${3:-20}s)"
}

# count_words STRING WORD: how often WORD is a whole word of STRING.
count_words() { printf '%s\n' "$1" | awk -v w="$2" '{ for (i = 1; i <= NF; i++) if ($i == w) n++ } END { print n + 0 }'; }
# mpath_states STATUS: the A/F state of each path in a (kernel-format)
# multipath status line, in table order: "A A", "F A", ... (the word after
# each major:minor).
mpath_states() {
  printf '%s\n' "$1" | awk '{ s = ""; for (i = 1; i < NF; i++) if ($i ~ /^[0-9]+:[0-9]+$/) s = s (s == "" ? "" : " ") $(i + 1); print s }'
}

# dm_create NAME TABLE: kernel dm device; prints its node (/dev/mapper/NAME).
dm_create() {
  dmsetup create --noudevsync "$1" --table "$2" >/dev/null ||
    die "dmsetup create $1 --table '$2' failed"
  wait_for "/dev/mapper/$1" 5
  echo "/dev/mapper/$1"
}
# dm_delay NAME OFFSET SECTORS MS: a kernel dm-delay device over that part
# of /dev/ram0 (reads and writes take MS ms), node /dev/mapper/NAME; its
# removal is registered with on_exit (do not call it inside $(...)). A
# slow disk keeps I/O in flight through a daemon restart whatever the
# machine's speed (iodepth 8 at 20 ms: 400 IOPS).
# Create it before start_ubdmd, so that its removal runs after stop_ubdmd.
dm_delay() {
  dm_create "$1" "0 $3 delay /dev/ram0 $2 $4" >/dev/null
  on_exit dm_remove "$1"
}
# dm_remove NAME: retries while the device is briefly busy.
dm_remove() {
  local i=0
  while ! dmsetup remove --noudevsync "$1" 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 20 ] || { dmsetup remove --noudevsync "$1"; return; }
    sleep 0.1
  done
}

# Modules: NAME as in /lib/modules/NAME.ko (dm-multipath, scsi_debug, ...).
module_loaded() { [ -d "/sys/module/$(echo "$1" | tr - _)" ]; }
load_module() { # NAME [PARAMS...]
  module_loaded "$1" && return 0
  local m=$1
  shift
  insmod "/lib/modules/$m.ko" "$@"
}
# reload_module NAME [PARAMS...]: rmmod and insmod with PARAMS (no PARAMS:
# the /init defaults). For scsi_debug, waits for its disks to appear.
reload_module() {
  local m=$1
  shift
  if [ $# -eq 0 ]; then
    case $m in
      scsi_debug) set -- add_host=2 num_tgts=1 max_luns=1 vpd_use_hostno=0 dev_size_mb=256 ;;
      null_blk) set -- nr_devices=1 gb=1 queue_mode=2 ;;
      brd) set -- rd_nr=1 rd_size=262144 ;;
    esac
  fi
  if module_loaded "$m"; then rmmod "$m" || die "rmmod $m failed (in use?)"; fi
  insmod "/lib/modules/$m.ko" "$@" || die "insmod $m $* failed"
  if [ "$m" = scsi_debug ]; then
    wait_until 10 scsi_debug_paths || die "scsi_debug disks did not appear"
    sleep 0.5
  fi
  log "reloaded $m $*"
}

# --- data -------------------------------------------------------------------------

# write_random DEV OFFSET_MIB SIZE_MIB: random data, O_DIRECT; prints its md5.
write_random() {
  local f="$TEST_TMP/.rand.$$"
  dd if=/dev/urandom of="$f" bs=1M count="$3" status=none
  dd if="$f" of="$1" bs=1M seek="$2" count="$3" oflag=direct conv=notrunc,fsync status=none ||
    die "writing $3 MiB at $2 MiB to $1 failed"
  md5sum <"$f" | cut -d' ' -f1
  rm -f "$f"
}
# read_md5 DEV OFFSET_MIB SIZE_MIB: md5 of that range, read with O_DIRECT.
read_md5() {
  dd if="$1" bs=1M skip="$2" count="$3" iflag=direct status=none | md5sum | cut -d' ' -f1
}

# --- fio --------------------------------------------------------------------------

# fio_run DEV [FIO ARGS...]: io_uring, O_DIRECT, 4k, iodepth 16 unless the
# args override; output in $TEST_TMP/fio.out (shown on failure).
fio_run() {
  local dev=$1
  shift
  if ! fio --name=job --filename="$dev" --ioengine=io_uring --direct=1 \
    --bs=4k --iodepth=16 --eta=never "$@" --output="$TEST_TMP/fio.out"; then
    tail -n 30 "$TEST_TMP/fio.out"
    die "fio on $dev failed: $*"
  fi
}
# fio_verify DEV [SIZE=64M] [FIO ARGS...]: random writes with crc32c
# verification, then a verify pass; FAILs on any error or mismatch.
fio_verify() {
  local dev=$1 size=${2:-64M}
  [ $# -lt 2 ] || shift
  shift
  fio_run "$dev" --rw=randwrite --size="$size" --verify=crc32c \
    --do_verify=1 --verify_fatal=1 --verify_backlog=1024 "$@"
  grep -q 'err= 0' "$TEST_TMP/fio.out" || { cat "$TEST_TMP/fio.out"; die "fio verify on $dev reported errors"; }
  log "fio verify on $dev ($size) ok"
}
# fio_bg DEV [FIO ARGS...]: fio_run in the background (e.g. I/O during a
# path failure). Sets FIO_PID (do not call it inside $(...): the shell must
# stay fio's parent for fio_wait). Output in $TEST_TMP/fio-bg.out.
fio_bg() {
  local dev=$1
  shift
  fio --name=bg --filename="$dev" --ioengine=io_uring --direct=1 --bs=4k \
    --iodepth=16 --eta=never "$@" --output="$TEST_TMP/fio-bg.out" </dev/null >/dev/null 2>&1 &
  FIO_PID=$!
  log "fio on $dev in the background (pid $FIO_PID)"
}
# fio_wait [PID=$FIO_PID]: FAILs if that fio failed or reported I/O errors.
# shellcheck disable=SC2120 # optional arguments
fio_wait() {
  local pid=${1:-$FIO_PID} rc=0
  wait "$pid" || rc=$?
  if [ "$rc" -ne 0 ] || ! grep -q 'err= 0' "$TEST_TMP/fio-bg.out"; then
    tail -n 30 "$TEST_TMP/fio-bg.out"
    die "background fio failed (exit $rc)"
  fi
  log "background fio finished without errors"
}

# fio_verify_bg TAG DEV SIZE [FIO ARGS...]: in the background, random 4k
# writes of SIZE with crc32c verification as it goes (verify_backlog) and a
# verify pass at the end, verify_fatal; iodepth 8. Several may run at once
# (one TAG each). Output in $TEST_TMP/fio-TAG.out; sets FIO_PID. Check it
# with fio_verify_wait TAG PID.
fio_verify_bg() {
  local tag=$1 dev=$2 size=$3
  shift 3
  fio --name="$tag" --filename="$dev" --ioengine=io_uring --direct=1 --bs=4k --iodepth=8 \
    --rw=randwrite --size="$size" --verify=crc32c --do_verify=1 --verify_fatal=1 \
    --verify_backlog=256 --eta=never "$@" --output="$TEST_TMP/fio-$tag.out" </dev/null >/dev/null 2>&1 &
  FIO_PID=$!
  log "fio verify $tag on $dev ($size) in the background (pid $FIO_PID)"
}
# pid_alive PID: running and not a zombie.
pid_alive() { ! _gone "$1"; }
# fio_verify_wait TAG PID: FAILs unless that fio ended with status 0, no I/O
# error (err= 0) and no verify failure, having written and read back.
fio_verify_wait() {
  local tag=$1 pid=$2 rc=0 out="$TEST_TMP/fio-$1.out"
  wait "$pid" || rc=$?
  if [ "$rc" -ne 0 ] || ! grep -q 'err= 0' "$out" || grep -qiE 'verify.*(fail|bad)|bad magic|crc32c.*wanted' "$out"; then
    tail -n 40 "$out" >&2
    die "fio verify $tag failed (exit $rc): $(grep -m1 -iE 'err=|verify|error' "$out")"
  fi
  if ! grep -q 'WRITE:' "$out" || ! grep -q 'READ:' "$out"; then
    cat "$out" >&2
    die "fio verify $tag did not both write and read back"
  fi
  log "fio verify $tag: no I/O error, no verify failure"
}

# --- used by run-all.sh between tests -------------------------------------------

# Best-effort return to the initial state, so one test's leftovers do not
# fail the next: stops ubdmd (removing its devices), brings scsi_debug paths
# back online and suspended kernel dm devices back; ublk devices and state
# files left behind (devices outlive ubdmd) are adopted by a fresh ubdmd and
# removed; then kernel dm devices are removed. Prints what it had to clean.
# Never exits (run-all.sh calls it): whatever could die runs in a subshell.
e2e_reset() {
  local f n left
  if ubdmd_running; then
    echo "reset: ubdmd still running; removing its devices and stopping it"
    (stop_ubdmd 30) >/dev/null 2>&1 || { kill -KILL "$(ubdmd_pid)" 2>/dev/null; sleep 0.5; }
  fi
  rm -f "$UBDMD_PIDFILE"
  for f in /sys/block/sd*/device/state; do
    [ -e "$f" ] || continue
    [ "$(cat "$f")" = running ] || { echo "reset: $f back to running"; echo running >"$f"; }
  done
  # A ubdm device over a suspended dm device could not be removed.
  for n in $(dmsetup info -c --noheadings -o name,suspended 2>/dev/null | awk -F: '$2 == "Suspended" { print $1 }'); do
    echo "reset: resuming suspended dm device $n"
    dmsetup resume --noudevsync "$n" >/dev/null 2>&1 || true
  done
  left=$(ublk_ids | sed 's|^|/dev/ublkc|'; state_files)
  if [ -n "$left" ]; then
    echo "reset: left behind: $(printf '%s\n' "$left" | tr '\n' ' ')"
    if have_ubdm && (start_ubdmd) >/dev/null 2>&1; then
      echo "reset: a fresh ubdmd has: $("$UBDMSETUP" --socket "$UBDM_SOCK" ls 2>&1 | tr '\n' ' ')"
      (stop_ubdmd 30) >/dev/null 2>&1 || { kill -KILL "$(ubdmd_pid)" 2>/dev/null; rm -f "$UBDMD_PIDFILE"; }
    else
      echo "reset: ubdmd could not start to clean up:"
      tail -n 10 "$UBDMD_LOG" 2>/dev/null | sed 's/^/  ubdmd: /'
      rm -f "$UBDMD_PIDFILE"
    fi
    left=$(ublk_ids | sed 's|^|/dev/ublkc|'; state_files)
    [ -z "$left" ] || echo "reset: still left: $(printf '%s\n' "$left" | tr '\n' ' ')"
  fi
  if dmsetup ls 2>/dev/null | grep -qv 'No devices found'; then
    echo "reset: removing leftover dm devices: $(dmsetup ls | awk '{ printf "%s ", $1 }')"
    dmsetup remove_all --force >/dev/null 2>&1 || true
  fi
}
