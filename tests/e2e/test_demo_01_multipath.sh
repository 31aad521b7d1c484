#!/bin/sh
# The README's first command runs tests/e2e/demo/demo.sh (natively or in
# this VM): it must keep working. It must end with fio's 0 errors, show the
# path failed and reinstated, and leave no device behind.
. "$(dirname "$0")/lib.sh"
set -eu
require_ubdm
require_cmd fio
out=$TEST_TMP/demo.out
rc=0
UBDMD=$UBDMD UBDMSETUP=$UBDMSETUP UBDM_SOCK=$TEST_TMP/demo.sock UBDM_DEMO_LOG=$TEST_TMP/ubdmd.log \
  UBDM_DEMO_FIO_OUT=$TEST_TMP/fio.out sh "$(dirname "$0")/demo/demo.sh" >"$out" 2>&1 || rc=$?
cat "$out" >&2
[ "$rc" -eq 0 ] || die "the demo failed (exit $rc)"
expect_contains "$(cat "$out")" "demo: done" "the demo's last line"
expect_contains "$(cat "$TEST_TMP/fio.out")" "err= 0" "fio's errors"
expect_match "$(cat "$out")" ' failed +[0-9]+ ' "a path shown failed"
expect_eq "$(ublk_ids)" "" "ublk devices left"
