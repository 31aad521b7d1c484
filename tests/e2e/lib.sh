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
# Tools: busybox applets, fio, mke2fs/mkfs.ext4/e2fsck/dumpe2fs, dmsetup,
# blockdev, blkdiscard, lsblk, losetup (util-linux), and /bin/ubdmd,
# /bin/ubdmsetup when run.sh packed them.

UBDMD=${UBDMD:-/bin/ubdmd}
UBDMSETUP=${UBDMSETUP:-/bin/ubdmsetup}
UBDM_SOCK=${UBDM_SOCK:-/run/ubdm/control.sock}
UBDMD_LOG=${UBDMD_LOG:-/tmp/ubdmd.log}
UBDMD_PIDFILE=/run/ubdm/ubdmd.pid
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
# the background, output appended to /tmp/ubdmd.log; waits for the socket.
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
    [ $i -lt 100 ] || die "ubdmd did not create $UBDM_SOCK within 10s"
    sleep 0.1
  done
  log "ubdmd running (pid $UBDMD_PID)"
}

# stop_ubdmd [TIMEOUT_S=20]: SIGTERM and wait. FAILs if it does not exit in
# time (then SIGKILLs it) or exits non-zero. Returns at once if not running.
# shellcheck disable=SC2120 # optional arguments
stop_ubdmd() {
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

# kill_ubdmd: SIGKILL (crash simulation); waits until it is gone.
kill_ubdmd() {
  local pid
  pid=$(ubdmd_pid) || return 0
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f "$UBDMD_PIDFILE"
  log "ubdmd killed"
}

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

# --- used by run-all.sh between tests -------------------------------------------

# Best-effort return to the initial state, so one test's leftovers do not
# fail the next: stops ubdmd, removes kernel dm devices, brings scsi_debug
# paths back online. Prints what it had to clean.
e2e_reset() {
  local f
  if ubdmd_running; then
    echo "reset: ubdmd still running; stopping it"
    kill -TERM "$(ubdmd_pid)" 2>/dev/null
    wait_until 10 sh -c "! kill -0 $(ubdmd_pid) 2>/dev/null" || kill -KILL "$(ubdmd_pid)" 2>/dev/null
  fi
  rm -f "$UBDMD_PIDFILE"
  if dmsetup ls 2>/dev/null | grep -qv 'No devices found'; then
    echo "reset: removing leftover dm devices: $(dmsetup ls | awk '{ printf "%s ", $1 }')"
    dmsetup remove_all --force >/dev/null 2>&1 || true
  fi
  for f in /sys/block/sd*/device/state; do
    [ -e "$f" ] || continue
    [ "$(cat "$f")" = running ] || { echo "reset: $f back to running"; echo running >"$f"; }
  done
}
