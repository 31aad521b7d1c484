#!/bin/sh
# shellcheck shell=dash
# Runs the e2e tests inside the VM (started by /init) and prints the markers
# tools/vm/run.sh parses:
#   UBDM-TEST-START <name>
#   UBDM-TEST-RESULT <name> PASS|FAIL|SKIP [reason] [(Ns)]
#   UBDM-TESTS-DONE passed=N failed=N skipped=N
# Every /tests/test_*.sh in sorted order, or those named by ubdm.tests=a,b
# (names with or without .sh; shell patterns such as test_mpath_* work).
# Per-test time limit: ubdm.test_timeout= seconds (default 300).
# A test exits 0 = PASS, 77 = SKIP, anything else = FAIL; on FAIL the tail of
# /tmp/ubdmd.log and the kernel log since the test started are printed.

# shellcheck disable=SC2034 # read by lib.sh
UBDM_LIB_NO_TRAP=1
# shellcheck source=tests/e2e/lib.sh
. /tests/lib.sh

timeout_s=${UBDM_TEST_TIMEOUT:-300}
passed=0 failed=0 skipped=0

# The tests to run, one per line.
select_tests() {
  local all want w t found
  all=$(for t in /tests/test_*.sh; do [ -f "$t" ] && basename "$t" .sh; done | LC_ALL=C sort)
  if [ -z "${UBDM_TESTS:-}" ]; then
    printf '%s\n' "$all"
    return
  fi
  want=$(printf '%s' "$UBDM_TESTS" | tr ',' ' ')
  for w in $want; do
    w=${w%.sh}
    found=
    for t in $all; do
      # shellcheck disable=SC2254
      case $t in $w) echo "$t"; found=1 ;; esac
    done
    # Unknown names are reported (as FAIL) rather than silently ignored.
    [ -n "$found" ] || echo "$w"
  done | awk '!seen[$0]++'
}

run_one() {
  local name=$1 dir pid wd rc=0 t0 secs status reason i
  dir=/tmp/e2e/$name
  echo "UBDM-TEST-START $name"
  if [ ! -f "/tests/$name.sh" ]; then
    echo "UBDM-TEST-RESULT $name FAIL no such test /tests/$name.sh"
    failed=$((failed + 1))
    return
  fi
  rm -rf "$dir" /tmp/ubdmd.log
  mkdir -p "$dir"
  echo "<5>ubdm-e2e: start $name" >/dev/kmsg
  t0=$(date +%s)
  # Its own session and process group, so everything it started can be
  # killed afterwards (setsid does not fork: this child is no group leader).
  (cd "$dir" && UBDM_TEST_NAME=$name UBDM_TEST_TMP=$dir exec setsid sh "/tests/$name.sh") </dev/null &
  pid=$!
  setsid sh -c "sleep $timeout_s; echo x >'$dir/.timeout'; kill -TERM -$pid; sleep 5; kill -KILL -$pid" \
    >/dev/null 2>&1 </dev/null &
  wd=$!
  wait "$pid" || rc=$?
  kill -KILL "-$wd" 2>/dev/null
  wait "$wd" 2>/dev/null
  # Whatever the test left running in its group (fio, a stray ubdmd, ...):
  # SIGTERM (ubdmd can shut down cleanly), then SIGKILL after 5 s.
  if kill -0 "-$pid" 2>/dev/null; then
    echo "---- $name left processes running; terminating them:"
    ps -o pid,pgid,args | awk -v g="$pid" '$2 == g'
    kill -TERM "-$pid" 2>/dev/null
    i=0
    while kill -0 "-$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "-$pid" 2>/dev/null
  fi
  secs=$(($(date +%s) - t0))
  reason=$(cat "$dir/.reason" 2>/dev/null)
  if [ -e "$dir/.timeout" ]; then
    status=FAIL reason="timed out after ${timeout_s}s${reason:+; $reason}"
  elif [ "$rc" -eq 0 ]; then
    status=PASS reason=
  elif [ "$rc" -eq 77 ]; then
    status=SKIP
  else
    status=FAIL reason=${reason:-exit status $rc}
  fi
  if [ "$status" = FAIL ]; then
    echo "---- $name failed: last 60 lines of /tmp/ubdmd.log"
    if [ -s /tmp/ubdmd.log ]; then tail -n 60 /tmp/ubdmd.log; else echo "(empty or absent)"; fi
    echo "---- $name failed: kernel log since the test started (last 60 lines)"
    dmesg | sed -n "/ubdm-e2e: start $name\$/,\$p" | tail -n 60
    echo "----"
  fi
  e2e_reset
  case $status in
    PASS) passed=$((passed + 1)) ;;
    SKIP) skipped=$((skipped + 1)) ;;
    *) failed=$((failed + 1)) ;;
  esac
  echo "UBDM-TEST-RESULT $name $status${reason:+ $reason} (${secs}s)"
}

tests=$(select_tests)
echo "UBDM-VM: running $(echo "$tests" | grep -c .) test(s), time limit ${timeout_s}s each"
for t in $tests; do
  run_one "$t"
done
echo "UBDM-TESTS-DONE passed=$passed failed=$failed skipped=$skipped"
