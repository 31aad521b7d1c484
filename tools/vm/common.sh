# shellcheck shell=bash
# Shared code for the VM tooling (tools/vm/*.sh, tools/bench/run.sh).
# Sourced, never run. Callers use `set -euo pipefail`.

UBDM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
UBDM_VM_CACHE=${UBDM_VM_CACHE:-$HOME/.cache/ubdm/vm}
# Where run.sh and bench put the initramfs and console logs (git-ignored).
UBDM_VM_WORK=${UBDM_VM_WORK:-$UBDM_ROOT/build/vm}

# The CPU model that does not panic under multi-threaded TCG (no cx16), see
# docs in tools/vm/README.md.
UBDM_VM_CPU=${UBDM_VM_CPU:-qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt,-cx16}
UBDM_VM_SMP=${UBDM_VM_SMP:-2}
UBDM_VM_MEM=${UBDM_VM_MEM:-2048}

vm_msg() { printf '[vm] %s\n' "$*" >&2; }
vm_die() { printf '[vm] error: %s\n' "$*" >&2; exit 1; }

# The kernel lines the VM boots (tools/vm/fetch.sh says which packages):
# 6.12 is the oldest supported, newest follows Debian's trixie-backports.
# UBDM_VM_KERNEL picks the one a boot uses (default: newest).
UBDM_VM_KERNEL_LINES="6.12 newest"
export UBDM_VM_KERNEL=${UBDM_VM_KERNEL:-newest}  # exported: build-initramfs.sh reads it too

vm_kernel_line_ok() {
  case " $UBDM_VM_KERNEL_LINES " in
    *" $1 "*) ;;
    *) vm_die "unknown kernel line '$1' (one of: $UBDM_VM_KERNEL_LINES)" ;;
  esac
}

# vm_cached_kernel LINE: the release cached for LINE, or nothing. (A cache
# from before there were two lines has one "current", a 6.12.)
vm_cached_kernel() {
  local f=$UBDM_VM_CACHE/current-$1 kver
  [ -f "$f" ] || { [ "$1" = 6.12 ] && f=$UBDM_VM_CACHE/current; }
  [ -f "$f" ] || return 0
  kver=$(cat "$f")
  [ -f "$UBDM_VM_CACHE/kernels/$kver/.complete" ] || return 0
  printf '%s
' "$kver"
}

# The directory of the kernel fetch.sh prepared for UBDM_VM_KERNEL
# (vmlinuz, modules/).
vm_kernel_dir() {
  local kver
  vm_kernel_line_ok "$UBDM_VM_KERNEL"
  kver=$(vm_cached_kernel "$UBDM_VM_KERNEL")
  [ -n "$kver" ] || vm_die "no $UBDM_VM_KERNEL kernel in $UBDM_VM_CACHE; run tools/vm/fetch.sh --kernel $UBDM_VM_KERNEL"
  printf '%s\n' "$UBDM_VM_CACHE/kernels/$kver"
}

# vm_common_option ARGS...: the options every VM script takes.
#   --kernel LINE      the kernel line to boot (sets UBDM_VM_KERNEL)
#   --bin PATH...      binaries to pack (sets bins and bins_given=1)
#   --no-bin           pack none (bins empty, bins_given=1)
#   --keep-log FILE    copy the console log to FILE (sets keep_log)
# Sets vm_used to the number of words taken from ARGS (0: not one of these),
# so a caller's option loop ends in:
#   *) vm_common_option "$@"; [ "$vm_used" -gt 0 ] || vm_die "unknown argument: $1"; shift "$vm_used" ;;
vm_common_option() {
  vm_used=0
  case $1 in
    --kernel) vm_kernel_line_ok "${2:-}"; export UBDM_VM_KERNEL=$2; vm_used=2 ;;
    --bin)
      vm_used=1
      bins_given=1
      bins=()
      shift
      while [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; do bins+=("$1"); shift; vm_used=$((vm_used + 1)); done
      ;;
    --no-bin) bins_given=1; bins=(); vm_used=1 ;;
    --keep-log) keep_log=${2:?--keep-log needs a file}; vm_used=2 ;;
  esac
}

# The ubdm binaries packed by default: the release build's, when present.
vm_default_bins() {
  local b
  for b in ubdmd ubdmsetup; do
    if [ -x "$UBDM_ROOT/build/release/$b" ]; then
      printf '%s\n' "$UBDM_ROOT/build/release/$b"
    fi
  done
}

# vm_boot INITRD LOG TIMEOUT [APPEND...]
# Boots the kernel with INITRD under `timeout`, the serial console going to
# the terminal and to LOG. Returns qemu's status (124 on timeout).
# UBDM_VM_INTERACTIVE=1 keeps stdin (for a shell in the guest).
# UBDM_VM_DISPLAY names a filter (command or function) for what the terminal
# shows; the log always gets everything.
#
# A guest kernel that dies before /init reaches userspace ("UBDM-VM: up") is
# booted again, up to UBDM_VM_BOOT_TRIES times in all (default 3). Nothing of
# ubdm has run by then: the known cause is multi-threaded TCG executing a
# stale int3 while the guest patches a static key in its idle loop
# ("sched_clock: Marking stable"), an emulator race, not a test result.
# Deaths after userspace is up are never retried. Each failed boot's console
# is kept as LOG.bootN.
vm_boot() {
  local initrd=$1 log=$2 secs=$3
  shift 3
  local tries=${UBDM_VM_BOOT_TRIES:-3} try=1 rc why
  rm -f "$log".boot*
  while :; do
    rc=0
    vm_boot_once "$initrd" "$log" "$secs" "$@" || rc=$?
    [ "${UBDM_VM_INTERACTIVE:-0}" != 1 ] || return "$rc"
    why=$(vm_early_death "$log") || return "$rc"
    if [ "$try" -ge "$tries" ]; then
      vm_msg "the guest kernel died before userspace on all $tries boots; giving up"
      return "$rc"
    fi
    cp "$log" "$log.boot$try"
    vm_msg "the guest kernel died before userspace ($why); console kept in $log.boot$try; booting again ($((try + 1)) of $tries)"
    try=$((try + 1))
  done
}

# vm_early_death LOG
# Succeeds, printing the first kernel error line, when LOG shows the guest
# kernel dying (Oops, BUG or panic) before /init printed "UBDM-VM: up".
vm_early_death() {
  tr -d '\r' <"$1" | awk '
    /UBDM-VM: up / { exit 1 }
    /(Kernel panic - not syncing|Oops: |BUG: )/ && first == "" { first = $0 }
    END { if (first == "") exit 1; sub(/^ *\[ *[0-9.]+\] */, "", first); print first }'
}

# vm_boot_once INITRD LOG TIMEOUT [APPEND...]: one boot, as vm_boot describes.
vm_boot_once() {
  local initrd=$1 log=$2 secs=$3
  shift 3
  local kdir append rc=0
  kdir=$(vm_kernel_dir)
  append="console=ttyS0 quiet panic=-1 $*"
  # shellcheck disable=SC2054 # the commas belong to qemu's option values
  local qemu=(qemu-system-x86_64 -machine q35 -accel tcg,thread=multi
    -cpu "$UBDM_VM_CPU" -smp "$UBDM_VM_SMP" -m "$UBDM_VM_MEM"
    -nographic -no-reboot -nic none
    -kernel "$kdir/vmlinuz" -initrd "$initrd" -append "$append")
  vm_msg "booting: ${qemu[*]}"
  if [ "${UBDM_VM_INTERACTIVE:-0}" = 1 ]; then
    "${qemu[@]}" 2>&1 | tee "$log" || rc=$?
  else
    # --foreground: qemu stays killable with ^C; -k: SIGKILL if TERM is ignored.
    # SeaBIOS resets the terminal and turns off line wrapping: drop escapes.
    timeout --foreground -k 10 "$secs" "${qemu[@]}" </dev/null 2>&1 |
      sed -u -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1bc//g' | tee "$log" |
      "${UBDM_VM_DISPLAY:-cat}" || rc=$?
  fi
  [ ! -t 1 ] || printf '\033[?7h'   # line wrapping back on, in any case
  return "$rc"
}

# vm_report LOG BOOT_STATUS
# Reads the guest's markers from LOG, prints the summary table and the final
# "N passed, N failed[, N skipped]" line. Returns 0 only if every test that
# started passed or was skipped and the guest reported completion.
vm_report() {
  local log=$1 boot_rc=$2
  tr -d '\r' <"$log" | awk -v boot_rc="$boot_rc" '
    function note(s) { notes[++nnotes] = s }
    {
      if (match($0, /UBDM-TEST-START [^ ]+/)) {
        split(substr($0, RSTART, RLENGTH), f, " ")
        name = f[2]
        if (!(name in state)) { order[++n] = name }
        state[name] = "RUNNING"; reason[name] = ""
      }
      if (match($0, /UBDM-TEST-RESULT [^ ]+ (PASS|FAIL|SKIP).*/)) {
        line = substr($0, RSTART, RLENGTH)
        split(line, f, " ")
        name = f[2]
        if (!(name in state)) { order[++n] = name }
        state[name] = f[3]
        r = line; sub(/^UBDM-TEST-RESULT [^ ]+ [A-Z]+ ?/, "", r)
        reason[name] = r
      }
      if (match($0, /UBDM-TESTS-DONE passed=[0-9]+ failed=[0-9]+ skipped=[0-9]+/)) {
        done_line = substr($0, RSTART, RLENGTH)
      }
      if ($0 ~ /Kernel panic - not syncing/) { panic = $0 }
      if ($0 ~ /(BUG: |Oops: |WARNING: CPU: |INFO: task .* blocked for more than)/) { ++kwarn; if (!first_kwarn) first_kwarn = $0 }
    }
    END {
      pass = 0; fail = 0; skip = 0
      printf "\n%-40s %-7s %s\n", "test", "result", "note"
      printf "%-40s %-7s %s\n", "----", "------", "----"
      for (i = 1; i <= n; i++) {
        s = order[i]
        st = state[s]
        if (st == "RUNNING") { st = "FAIL"; reason[s] = "no result (VM died or timed out during the test)" }
        if (st == "PASS") pass++
        else if (st == "SKIP") skip++
        else fail++
        printf "%-40s %-7s %s\n", s, st, reason[s]
      }
      if (n == 0) printf "(no test reported a result)\n"
      ok = 1
      if (panic != "") { note("kernel panic: " panic); ok = 0 }
      if (kwarn) note("kernel reported " kwarn " BUG/Oops/WARNING/hung-task line(s), first: " first_kwarn)
      if (boot_rc == 124 || boot_rc == 137) { note("the VM timed out (see the log)"); ok = 0 }
      else if (boot_rc != 0) { note("qemu exited with status " boot_rc); ok = 0 }
      if (done_line == "") { note("the guest did not report completion (no UBDM-TESTS-DONE)"); ok = 0 }
      if (fail > 0) ok = 0
      if (!ok && fail == 0) fail = 1   # make the failure visible in the count
      print ""
      for (i = 1; i <= nnotes; i++) print "note: " notes[i]
      if (done_line != "") print "guest: " done_line
      printf "%d passed, %d failed", pass, fail
      if (skip > 0) printf ", %d skipped", skip
      printf "\n"
      exit ok ? 0 : 1
    }'
}
