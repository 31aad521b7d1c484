#!/bin/sh
# The daemon's own duties: persistent maps from --config DIR/maps.d are
# created at start, the control socket is root-only (0600), and with
# --on-stop remove SIGTERM removes every device cleanly (the default, keep,
# leaves them: see test_recovery_03).
. "$(dirname "$0")/lib.sh"
set -eu
conf=$TEST_TMP/conf
mkdir -p "$conf/maps.d"
printf '# persistent map\n0 131072 linear /dev/ram0 0\n131072 131072 zero\n' >"$conf/maps.d/pm0.table"
printf '0 100 linear /dev/nope 0\n' >"$conf/maps.d/broken.table"
start_ubdmd --config "$conf" --on-stop remove
on_exit stop_ubdmd

expect_eq "$(stat -c %a "$UBDM_SOCK")" 600 "control socket mode"
expect_contains "$(ubdmsetup ls)" "pm0" "persistent map created at start"
case $(ubdmsetup ls) in *broken*) die "a broken persistent map was created" ;; esac
grep -q "broken" "$UBDMD_LOG" || die "the broken map was not reported in the log"
expect_eq "$(ubdmsetup table pm0 | wc -l)" 2 "persistent map has both targets"
blk=$(readlink /dev/ubdm/pm0)
expect_eq "$(blockdev --getsz "$blk")" 262144 "persistent map size"

term_ubdmd
[ ! -e "$blk" ] || die "$blk still exists after SIGTERM"
[ ! -e /dev/ubdm/pm0 ] || die "/dev/ubdm/pm0 still exists after SIGTERM"
wait_no_ublk "after SIGTERM with --on-stop remove"
[ -z "$(state_files)" ] || die "state files left after SIGTERM with --on-stop remove: $(state_files | tr '\n' ' ')"
