#!/bin/sh
# Metrics match what fio did. ubdmd serves Prometheus metrics on loopback
# and writes the textfile; a linear device takes fio writes and reads of
# known counts (qd1, so the block layer merges nothing), and `stats`, the
# endpoint and the textfile all show those counts, bytes, no errors, nothing
# in flight and a latency histogram of as many I/Os. A multipath map then
# shows per-path figures: failures and reinstates as the messages made them,
# path I/Os adding up to the device's, and I/O queued while no path is left.
# A malformed metrics address stops ubdmd at start with the reason.
. "$(dirname "$0")/lib.sh"
set -eu
require_cmd fio
require_cmd wget

# The guest's init leaves loopback down; the endpoint listens there.
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up

expect_fail_with "port must be a number from 1 to 65535" \
  "$UBDMD" --foreground --no-kernel --socket "$TEST_TMP/bad.sock" --metrics-listen 99999

# Latency timing reads the clock twice per I/O: a vDSO call with a TSC
# clocksource, a system call without (docs/performance.md).
log "clocksource: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null)"
prom=$TEST_TMP/ubdm.prom
start_ubdmd --metrics-listen 9477 --metrics-textfile "$prom" --metrics-interval 1
on_exit stop_ubdmd
# A bare port is loopback only: the one listener on port 9477 (0x2505) is
# 127.0.0.1 (0100007F), state LISTEN (0A).
listeners=$(awk '$2 ~ /:2505$/ && $4 == "0A" { print $2 }' /proc/net/tcp /proc/net/tcp6 2>/dev/null)
expect_eq "$listeners" "0100007F:2505" "listeners on port 9477"

set -- $(scsi_debug_paths)
[ $# -ge 2 ] || skip "needs two scsi_debug paths"
p1=$1 p2=$2

# stop_ubdmd (at exit) removes the devices.
ubdmsetup create lin --table "0 262144 linear /dev/ram0 0"

# metric SOURCE NAME{LABELS}: the sample's value, from ubdmsetup (cli), the
# endpoint (http) or the textfile (file).
scrape() {
  case $1 in
    cli) ubdmsetup stats --prometheus ;;
    http) wget -qO- http://127.0.0.1:9477/metrics ;;
    file) cat "$prom" ;;
  esac
}
metric() {
  scrape "$1" | awk -v k="$2" 'index($0, k " ") == 1 { print $2; found = 1 } END { if (!found) print "missing" }'
}
io() { metric cli "ubdm_io_${1}{device=\"$2\",op=\"$3\"}"; }

# Before fio: whatever the kernel read at device creation (partition scan).
r0=$(io total lin read) w0=$(io total lin write) rb0=$(io bytes_total lin read) wb0=$(io bytes_total lin write)

# fio's own counts: total_ios and io_bytes of its read or write section (JSON).
fio_figure() { # FILE read|write total_ios|io_bytes
  awk -v sec="\"$2\"" -v key="\"$3\"" '
    $1 == sec && $2 == ":" { in_sec = 1; next }
    in_sec && $1 == key { gsub(/,/, "", $3); print $3; exit }' "$1"
}
run fio --name=w --filename=/dev/ubdm/lin --ioengine=io_uring --direct=1 --iodepth=1 --rw=randwrite --bs=4k \
  --size=4M --output-format=json --output="$TEST_TMP/w.json"
run fio --name=r --filename=/dev/ubdm/lin --ioengine=io_uring --direct=1 --iodepth=1 --rw=randread --bs=64k \
  --size=8M --output-format=json --output="$TEST_TMP/r.json"
fw=$(fio_figure "$TEST_TMP/w.json" write total_ios) fwb=$(fio_figure "$TEST_TMP/w.json" write io_bytes)
fr=$(fio_figure "$TEST_TMP/r.json" read total_ios) frb=$(fio_figure "$TEST_TMP/r.json" read io_bytes)
log "fio: $fw writes ($fwb bytes), $fr reads ($frb bytes)"
expect_eq "$fw" 1024 "fio's write count"
expect_eq "$fr" 128 "fio's read count"

expect_eq "$(($(io total lin write) - w0))" "$fw" "writes counted"
expect_eq "$(($(io bytes_total lin write) - wb0))" "$fwb" "bytes written counted"
expect_eq "$(($(io total lin read) - r0))" "$fr" "reads counted"
expect_eq "$(($(io bytes_total lin read) - rb0))" "$frb" "bytes read counted"
for op in read write flush; do
  expect_eq "$(io errors_total lin $op)" 0 "$op errors"
  expect_eq "$(io in_flight lin $op)" 0 "$op in flight after fio"
done
expect_eq "$(metric cli 'ubdm_io_latency_seconds_count{device="lin",op="write"}')" "$(io total lin write)" \
  "write latencies recorded, one per write"
expect_eq "$(metric cli 'ubdm_io_latency_seconds_bucket{device="lin",op="write",le="+Inf"}')" \
  "$(io total lin write)" "the +Inf bucket holds every write"

# The endpoint and the textfile carry the same figures.
expect_eq "$(metric http 'ubdm_io_total{device="lin",op="write"}')" "$(io total lin write)" "endpoint's write count"
sleep 2 # one textfile interval and a margin
expect_eq "$(metric file 'ubdm_io_total{device="lin",op="write"}')" "$(io total lin write)" "textfile's write count"
expect_contains "$(wget -qO- http://127.0.0.1:9477/metrics)" "# TYPE ubdm_io_latency_seconds histogram"

# The terminal table shows the same count.
expect_match "$(ubdmsetup stats lin)" "^  write +$(io total lin write) +$(($(io bytes_total lin write))) +0 +0 " \
  "stats table's write line"

# --- paths -----------------------------------------------------------------------
# The built-in checker is off (path_check_interval 0): it would reinstate
# the healthy paths the messages fail, at a moment of its own choosing.
ubdmsetup create mp --table "0 262144 multipath 3 queue_if_no_path path_check_interval 0 0 1 1 round-robin 0 2 1 $p1 1 $p2 1"
path() { metric cli "ubdm_path_${1}{device=\"mp\",path=\"$2\",dev_t=\"$(devt_of "$2")\",group=\"1\"}"; }
devt_of() { cat "/sys/block/${1#/dev/}/dev"; }

ubdmsetup message mp 0 "fail_path $p2"
ubdmsetup message mp 0 "reinstate_path $p2"
expect_eq "$(path failures_total "$p2")" 1 "failures of $p2"
expect_eq "$(path reinstates_total "$p2")" 1 "reinstates of $p2"
expect_eq "$(path up "$p2")" 1 "$p2 up again"
expect_eq "$(path failures_total "$p1")" 0 "failures of $p1"

run fio --name=m --filename=/dev/ubdm/mp --ioengine=io_uring --direct=1 --iodepth=4 --rw=randread --bs=4k \
  --size=2M --output-format=json --output="$TEST_TMP/m.json"
expect_eq "$(($(path io_total "$p1") + $(path io_total "$p2")))" "$(io total mp read)" \
  "path I/Os add up to the device's reads"
[ "$(path io_total "$p1")" -gt 0 ] && [ "$(path io_total "$p2")" -gt 0 ] || die "round-robin used one path only"

# No path left: a read waits in the requeue list, and the gauges say so.
ubdmsetup message mp 0 "fail_path $p1"
ubdmsetup message mp 0 "fail_path $p2"
dd if=/dev/ubdm/mp of=/dev/null bs=4k count=1 iflag=direct status=none &
dd_pid=$!
queued() { [ "$(metric cli 'ubdm_io_queued{device="mp"}')" -ge 1 ]; }
wait_until 10 queued || die "no I/O shown queued while no path is left"
expect_eq "$(io in_flight mp read)" 1 "the queued read is in flight"
expect_eq "$(path up "$p1")$(path up "$p2")" 00 "both paths down"
ubdmsetup message mp 0 "reinstate_path $p1"
wait "$dd_pid" || die "the queued read failed after a path came back"
expect_eq "$(metric cli 'ubdm_io_queued{device="mp"}')" 0 "nothing queued once a path is back"
expect_eq "$(io errors_total mp read)" 0 "read errors on mp"

# The textfile goes when ubdmd stops: stale figures would look current.
ubdmsetup remove mp
ubdmsetup remove lin
stop_ubdmd
[ ! -e "$prom" ] || die "$prom left behind by a stopped ubdmd"
log "metrics match fio; paths, queueing and the textfile behave"
