#!/usr/bin/env bash
# Boot the ublk-capable test VM and run the end-to-end tests (tests/e2e).
#
#   tools/vm/run.sh [--kernel 6.12|newest] [--tests 'NAMES'] [--timeout SECONDS]
#                   [--test-timeout SECONDS] [--bin PATH...] [--no-bin]
#                   [--keep-log FILE] [--append 'K=V ...'] [--shell]
#
#   --kernel LINE      the kernel to boot (default newest; tools/vm/fetch.sh
#                      says what each line is; env UBDM_VM_KERNEL)
#   --tests 'a b'      only these tests (space- or comma-separated; with or
#                      without .sh; shell patterns such as 'test_mpath_*')
#   --timeout S        limit for the whole VM run (default 900)
#   --test-timeout S   limit per test inside the VM (default 300)
#   --bin PATH...      binaries to pack into the VM's /bin (default: the
#                      release build's ubdmd and ubdmsetup, if built)
#   --no-bin           pack no ubdm binaries
#   --keep-log FILE    copy the serial console log to FILE
#   --append '...'     extra kernel command line words (ubdm.foo=bar becomes
#                      UBDM_FOO=bar in the guest)
#   --shell            no tests: a shell on the VM console (no time limit)
#
# Prints the console as it runs, then a summary table and "N passed, N
# failed[, N skipped]". Exits non-zero if a test failed, the VM did not
# report completion, or it timed out.
set -euo pipefail
# shellcheck source=tools/vm/common.sh
. "$(dirname "$0")/common.sh"

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

tests='' vm_timeout=900 test_timeout=300 keep_log='' shell=0 extra_append=''
bins=()
bins_given=0
while [ $# -gt 0 ]; do
  case $1 in
    --tests) tests=${2?--tests needs names}; shift 2 ;;
    --timeout) vm_timeout=${2:?--timeout needs seconds}; shift 2 ;;
    --test-timeout) test_timeout=${2:?--test-timeout needs seconds}; shift 2 ;;
    --append) extra_append="$extra_append ${2:?--append needs words}"; shift 2 ;;
    --shell) shell=1; shift ;;
    -h | --help) usage ;;
    *)
      vm_common_option "$@"
      [ "$vm_used" -gt 0 ] || vm_die "unknown argument: $1 (see --help)"
      shift "$vm_used"
      ;;
  esac
done
case $vm_timeout$test_timeout in *[!0-9]*) vm_die "timeouts are whole seconds" ;; esac
if [ $bins_given = 0 ]; then
  mapfile -t bins < <(vm_default_bins)
fi

t_start=$(date +%s)
"$(dirname "$0")/fetch.sh" --kernel "$UBDM_VM_KERNEL"
t_fetched=$(date +%s)

mkdir -p "$UBDM_VM_WORK"
initrd=$UBDM_VM_WORK/e2e-initrd-$UBDM_VM_KERNEL.cpio.gz
log=$UBDM_VM_WORK/e2e-console-$UBDM_VM_KERNEL.log
"$(dirname "$0")/build-initramfs.sh" "$initrd" --bin ${bins[@]+"${bins[@]}"} --tests "$UBDM_ROOT/tests/e2e"
t_built=$(date +%s)
if [ ${#bins[@]} -eq 0 ]; then
  vm_msg "no ubdm binaries packed: tests that need ubdmd will SKIP"
fi

append="ubdm.test_timeout=$test_timeout"
if [ -n "$tests" ]; then
  append="$append ubdm.tests=$(printf '%s' "$tests" | tr -s ' ,' ',' | sed 's/^,//; s/,$//')"
fi
append="$append $extra_append"

if [ $shell = 1 ]; then
  UBDM_VM_INTERACTIVE=1 vm_boot "$initrd" "$log" 0 "$append ubdm.run=shell" || true
  exit 0
fi

rc=0
vm_boot "$initrd" "$log" "$vm_timeout" "$append" || rc=$?
t_done=$(date +%s)
[ -z "$keep_log" ] || cp "$log" "$keep_log"

vm_msg "fetch $((t_fetched - t_start))s, initramfs $((t_built - t_fetched))s, VM $((t_done - t_built))s; console log: ${keep_log:-$log}"
vm_report "$log" "$rc"
