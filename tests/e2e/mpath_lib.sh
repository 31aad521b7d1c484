# shellcheck shell=dash
# Helpers for the multipath end-to-end tests (test_mpath_*.sh). Source after
# lib.sh:
#
#   . "$(dirname "$0")/lib.sh"
#   . "$(dirname "$0")/mpath_lib.sh"
#
# mp_setup                 P1, P2 (the two scsi_debug paths), SECTORS (their
#                          size), M1, M2 (their major:minor)
# mp_start                 the usual start of a test: require_ubdm, mp_setup,
#                          start_ubdmd, stop_ubdmd registered with on_exit
# majmin DEV               major:minor of a block device, decimal
# mp_table FEATURES SEL    "0 $SECTORS multipath <#> FEATURES 0 1 1 SEL 0 2 1
#                          $P1 1 $P2 1": one group, both paths ("" = none)
# mp_create NAME TABLE     ubdmsetup create with one queue unless MP_QUEUES
#                          is set; mp_remove NAME registered with on_exit;
#                          sets MP_DEV to the block device
# mp_remove NAME           remove --force, if the device still exists
# mp_json NAME             `ubdmsetup --json paths NAME`
# mp_path_field NAME DEV FIELD   a field of one path in that JSON (DEV as
#                          written in the table): state, fail_count, checker,
#                          ios, in_flight, selector_info, device, group
# mp_dev_field NAME FIELD  a device field: valid_paths, queue_if_no_path,
#                          no_path_retry, recovery_remaining_ms, ...
# mp_states NAME           "A A", "F A", ... from `ubdmsetup status NAME`
# wait_states NAME STATES [TIMEOUT_S=10]   FAIL unless the states get there
# now_cs                   monotonic time in centiseconds (/proc/uptime)
# dd_bg NAME DEV ARGS...   dd in the background (iflag/oflag direct is up to
#                          ARGS), stderr and status into $TEST_TMP/NAME.err and
#                          .rc; sets DD_PID
# dd_running PID           true while that dd has not returned (by its status
#                          file: a reaped-later zombie does not count)
# dd_status NAME           the exit status of dd_bg NAME (after it ended)
# expect_blocked PID SECS WHAT   FAIL if PID ends within SECS seconds
# expect_done PID SECS WHAT      FAIL unless PID ends within SECS seconds
# mp_queue_read MIB        write 1 MiB of random data at MIB MiB of $MP_DEV,
#                          take both paths offline (back online at exit) and
#                          start an O_DIRECT read of that MiB in the
#                          background; sets SUM (its md5) and RD (the pid)
# mp_queue_write SEEK      start an O_DIRECT 64 KiB write of new random data
#                          at 64 KiB block SEEK in the background; sets
#                          NEW_SUM and WR
# mp_queued_done PATH SEEK WHEN   the mp_queue_read/mp_queue_write I/O ($RD,
#                          $WR) ends within 15 s with status 0, the read with
#                          $SUM's data, the write (at 64 KiB block SEEK) on
#                          the LUN, read back through PATH
# fio_alive                true while the fio_bg fio ($FIO_PID) has not ended
#                          (a finished one stays a zombie: kill -0 is not enough)
# sd_delay JIFFIES         scsi_debug's command delay (default 1); set it
#                          before any I/O (refused while commands are queued)
# mp_status_norm NAME      `ubdmsetup status NAME` with each path's fail count
#                          replaced by "-" (a count need not survive a restart)
# scsi_debug_add_host      add a third host (another path to the LUN); prints
#                          its /dev/sdX; remove it with scsi_debug_remove_host

# shellcheck disable=SC2034 # P1 P2 SECTORS M1 M2 are for the tests
mp_setup() {
  local paths
  paths=$(scsi_debug_paths) || die "no scsi_debug disks"
  # shellcheck disable=SC2086
  set -- $paths
  [ $# -ge 2 ] || die "need two scsi_debug paths, got: $paths"
  P1=$1 P2=$2
  SECTORS=$(dev_sectors "$P1")
  M1=$(majmin "$P1") M2=$(majmin "$P2")
}

mp_start() {
  require_ubdm
  mp_setup
  start_ubdmd
  on_exit stop_ubdmd
}

majmin() {
  local hex
  hex=$(stat -L -c '%t:%T' "$1") || return 1
  echo "$((0x${hex%%:*})):$((0x${hex##*:}))"
}

# Word count of a feature string, for the table's <#features>.
_count_words() {
  # shellcheck disable=SC2086
  set -- $1
  echo $#
}

mp_table() { # FEATURES SELECTOR_WORDS [PER-PATH ARGS: "1" default]
  local feat=$1 sel=$2
  echo "0 $SECTORS multipath $(_count_words "$feat") $feat 0 1 1 $sel 0 2 1 $P1 1 $P2 1" | tr -s ' '
}

mp_create() { # NAME TABLE
  # shellcheck disable=SC2086
  ubdmsetup create "$1" --queues "${MP_QUEUES:-1}" --table "$2" ||
    die "ubdmsetup create $1 --table '$2' failed"
  on_exit mp_remove "$1"
  wait_for "/dev/ubdm/$1" 5
  MP_DEV=$(readlink -f "/dev/ubdm/$1")
  log "created $1 ($MP_DEV): $2"
}

# mp_remove NAME: remove --force, if it still exists.
mp_remove() {
  ubdmsetup info "$1" >/dev/null 2>&1 || return 0
  ubdmsetup remove --force "$1"
}

mp_json() { ubdmsetup --json paths "$1"; }

# The JSON is printed one key per line; objects reset at each "{".
mp_path_field() { # NAME DEV FIELD
  mp_json "$1" | awk -v dev="$2" -v key="$3" '
    /\{/ { n = 0; path = ""; val = "" }
    match($0, /"[a-z_]+": /) {
      k = substr($0, RSTART + 1, RLENGTH - 4)
      v = substr($0, RSTART + RLENGTH)
      sub(/,[ \t]*$/, "", v)
      gsub(/"/, "", v)
      if (k == "path") path = v
      if (k == key) val = v
    }
    /\}/ { if (path == dev) { print val; found = 1; exit } }
    END { if (!found) exit 1 }'
}

mp_dev_field() { # NAME FIELD
  mp_json "$1" | sed -n "s/^ *\"$2\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\} *\$/\1/p" | head -n1
}

mp_states() { mpath_states "$(ubdmsetup status "$1")"; }

wait_states() { # NAME STATES [TIMEOUT_S]
  local limit=$((${3:-10} * 10)) i=0
  while [ "$(mp_states "$1")" != "$2" ]; do
    i=$((i + 1))
    [ $i -lt $limit ] || die "$1: path states did not become '$2' within ${3:-10}s (status: $(ubdmsetup status "$1"))"
    sleep 0.1
  done
}

now_cs() { awk '{ printf "%d\n", $1 * 100 }' /proc/uptime; }

dd_bg() { # NAME DEV DD-ARGS...
  local name=$1 dev=$2
  shift 2
  rm -f "$TEST_TMP/$name.rc" "$TEST_TMP/$name.err"
  (
    rc=0
    dd "$@" 2>"$TEST_TMP/$name.err" || rc=$?
    echo "$rc" >"$TEST_TMP/$name.rc"
  ) </dev/null &
  DD_PID=$!
  echo "$name" >"$TEST_TMP/.dd.$DD_PID"
  log "dd $name on $dev in the background (pid $DD_PID): dd $*"
}
# Not `kill -0`: a finished child stays a zombie until the shell reaps it.
# The status file is written as soon as dd returns.
dd_running() {
  local n
  n=$(cat "$TEST_TMP/.dd.$1" 2>/dev/null) || die "dd_running: $1 was not started by dd_bg"
  [ ! -e "$TEST_TMP/$n.rc" ]
}
dd_status() { cat "$TEST_TMP/$1.rc" 2>/dev/null || echo "none"; }

expect_blocked() { # PID SECS WHAT
  local i=0 limit=$(($2 * 10))
  while [ $i -lt $limit ]; do
    dd_running "$1" || die "$3: ended after $((i / 10)).$((i % 10))s, but should still be waiting"
    sleep 0.1
    i=$((i + 1))
  done
  log "$3: still waiting after ${2}s, as it should"
}
expect_done() { # PID SECS WHAT
  local i=0 limit=$(($2 * 10))
  while dd_running "$1"; do
    i=$((i + 1))
    [ $i -lt $limit ] || die "$3: still blocked after ${2}s"
    sleep 0.1
  done
  wait "$1" 2>/dev/null || true
}

fio_alive() { kill -0 "$FIO_PID" 2>/dev/null && [ "$(awk '{ print $3 }' "/proc/$FIO_PID/stat" 2>/dev/null)" != Z ]; }

sd_delay() {
  echo "$1" >/sys/bus/pseudo/drivers/scsi_debug/delay || die "cannot set scsi_debug delay=$1"
}

mp_status_norm() {
  ubdmsetup status "$1" | awk '{ for (i = 1; i < NF - 1; i++) if ($i ~ /^[0-9]+:[0-9]+$/) $(i + 2) = "-"; print }'
}

SD_ADD_HOST=/sys/bus/pseudo/drivers/scsi_debug/add_host
scsi_debug_add_host() {
  local before after new i=0
  before=$(scsi_debug_paths)
  echo 1 >"$SD_ADD_HOST" || die "cannot add a scsi_debug host"
  while :; do
    after=$(scsi_debug_paths)
    for new in $after; do
      case " $before " in *" $new "*) ;; *) [ -b "$new" ] && { sleep 0.5; echo "$new"; return 0; } ;; esac
    done
    i=$((i + 1))
    [ $i -lt 100 ] || die "no new scsi_debug disk appeared within 10s (paths: $after)"
    sleep 0.1
  done
}
scsi_debug_remove_host() { echo -1 >"$SD_ADD_HOST"; }

mp_queue_read() { # MIB
  SUM=$(write_random "$MP_DEV" "$1" 1)
  path_offline "$P1"
  path_offline "$P2"
  on_exit path_online "$P1"
  on_exit path_online "$P2"
  dd_bg rd "$MP_DEV" if="$MP_DEV" of="$TEST_TMP/read.bin" bs=1M count=1 skip="$1" iflag=direct
  RD=$DD_PID
}

mp_queued_done() { # PATH SEEK WHEN
  expect_done "$RD" 15 "queued read $3"
  expect_done "$WR" 15 "queued write $3"
  expect_eq "$(dd_status rd)" 0 "queued read exit status ($(cat "$TEST_TMP/rd.err"))"
  expect_eq "$(dd_status wr)" 0 "queued write exit status ($(cat "$TEST_TMP/wr.err"))"
  expect_eq "$(md5sum <"$TEST_TMP/read.bin" | cut -d' ' -f1)" "$SUM" "data of the queued read"
  expect_eq "$(dd if="$1" bs=64k count=1 skip="$2" iflag=direct status=none | md5sum | cut -d' ' -f1)" "$NEW_SUM" \
    "the queued write reached the LUN"
}

mp_queue_write() { # SEEK (64 KiB blocks)
  local new=$TEST_TMP/new.bin
  dd if=/dev/urandom of="$new" bs=64k count=1 status=none
  NEW_SUM=$(md5sum <"$new" | cut -d' ' -f1)
  dd_bg wr "$MP_DEV" if="$new" of="$MP_DEV" bs=64k count=1 seek="$1" oflag=direct conv=notrunc
  WR=$DD_PID
}
