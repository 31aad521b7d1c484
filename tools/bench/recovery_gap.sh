#!/usr/bin/env bash
# How long I/O waits across a ubdmd restart, measured in the test VM (one
# boot): fio with a per-I/O completion log runs on a map over one disk and
# in the middle of the run the case's action runs once; the gap is the
# largest interval between two consecutive completions. Cases: none (the
# noise floor), a kernel dm suspend + resume and a ubdm suspend + resume
# (the same-boot references), a planned restart (SIGTERM + start) and a
# crash (kill -9 + start). Guest side: tests/e2e/bench/recovery_gap.sh.
#
#   tools/bench/recovery_gap.sh [--runtime S] [--repeat N] [--workload W]
#                               [--disk DEV] [--cases LIST]
#                               [--kernel LINE] [--bin PATH...] [--no-bin]
#                               [--keep-log FILE]
#
#   --runtime S     seconds of fio per run, the action at half (default 6)
#   --repeat N      runs per case (default 3)
#   --workload W    <rw>-<bs>-qd<N> (default randread-4k-qd1)
#   --disk DEV      the disk in the guest under every map (default /dev/nullb0)
#   --cases LIST    comma list of none, dm-suspend-resume, ubdm-suspend-resume,
#                   ubdm-term-restart, ubdm-kill-restart (default: all)
#   --kernel, --bin, --no-bin, --keep-log   as tools/bench/run.sh
#
# Prints a table: per case the gap (ms: min, median, max over the runs), the
# median time the action took and the completions per run. Under TCG only
# figures within one boot compare; fio logs in whole milliseconds.
set -euo pipefail
# shellcheck source=tools/vm/common.sh
. "$(dirname "$0")/../vm/common.sh"

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

runtime=6 repeat=3 workload=randread-4k-qd1 disk=/dev/nullb0
cases=none,dm-suspend-resume,ubdm-suspend-resume,ubdm-term-restart,ubdm-kill-restart
keep_log=''
bins=()
bins_given=0
while [ $# -gt 0 ]; do
  case $1 in
    --runtime) runtime=${2:?}; shift 2 ;;
    --repeat) repeat=${2:?}; shift 2 ;;
    --workload) workload=${2:?}; shift 2 ;;
    --disk) disk=${2:?}; shift 2 ;;
    --cases) cases=${2:?}; shift 2 ;;
    -h | --help) usage ;;
    *)
      vm_common_option "$@"
      [ "$vm_used" -gt 0 ] || vm_die "unknown argument: $1 (see --help)"
      shift "$vm_used"
      ;;
  esac
done
case $runtime$repeat in '' | *[!0-9]*) vm_die "--runtime and --repeat take whole numbers" ;; esac
[[ $workload =~ ^[a-z]+-[0-9]+[kKmM]?-qd[0-9]+$ ]] || vm_die "--workload takes <rw>-<bs>-qd<N>, not '$workload'"
cases=$(tr -s ' ,' ',' <<<"$cases")
if [ $bins_given = 0 ]; then
  mapfile -t bins < <(vm_default_bins)
fi
[ ${#bins[@]} -gt 0 ] || vm_die "no ubdm binaries (build ubdmd and ubdmsetup, or pass --bin)"

"$UBDM_ROOT/tools/vm/fetch.sh" --kernel "$UBDM_VM_KERNEL"
mkdir -p "$UBDM_VM_WORK"
initrd=$UBDM_VM_WORK/gap-initrd-$UBDM_VM_KERNEL.cpio.gz
log=$UBDM_VM_WORK/gap-console-$UBDM_VM_KERNEL.log
"$UBDM_ROOT/tools/vm/build-initramfs.sh" "$initrd" --bin "${bins[@]}" --tests "$UBDM_ROOT/tests/e2e"

ncases=$(tr ',' '\n' <<<"$cases" | grep -c .)
vm_timeout=$((ncases * repeat * (runtime + 30) + 180))
vm_msg "gap: $ncases case(s) x $repeat x ${runtime}s, $workload over $disk (VM time limit ${vm_timeout}s)"
rc=0
vm_boot "$initrd" "$log" "$vm_timeout" \
  "ubdm.run=/tests/bench/recovery_gap.sh ubdm.gap_runtime=$runtime ubdm.gap_repeat=$repeat ubdm.gap_workload=$workload ubdm.gap_disk=$disk ubdm.gap_cases=$cases" || rc=$?
[ -z "$keep_log" ] || cp "$log" "$keep_log"

python3 - "$log" "$rc" "$workload" <<'PY'
import re, statistics, sys

log_path, boot_rc, workload = sys.argv[1], int(sys.argv[2]), sys.argv[3]
text = open(log_path, encoding="utf-8", errors="replace").read().replace("\r", "")
runs, order, notes, done = {}, [], [], False
for line in text.split("\n"):
    m = re.search(r"UBDM-GAP (\S+) (\d+) gap_ms=(\d+) action_ms=(-?\d+) ios=(\d+)", line)
    if m:
        c = m.group(1)
        if c not in runs:
            runs[c] = []
            order.append(c)
        runs[c].append(tuple(int(m.group(i)) for i in (3, 4, 5)))
    m = re.search(r"UBDM-GAP-FAIL (\S+) (\S+) ?(.*)", line)
    if m:
        notes.append(f"{m.group(1)} run {m.group(2)}: FAILED: {m.group(3)}")
        if m.group(1) not in runs:
            runs[m.group(1)] = []
            order.append(m.group(1))
    if "UBDM-GAP-DONE" in line:
        done = True

hdr = ("case", "runs", "gap ms min", "median", "max", "action ms", "I/Os per run")
rows = []
for c in order:
    r = runs[c]
    if not r:
        rows.append((c, "0", "FAIL", "", "", "", ""))
        continue
    gaps = [g for g, _, _ in r]
    rows.append((c, str(len(r)), str(min(gaps)), f"{statistics.median(gaps):.0f}", str(max(gaps)),
                 f"{statistics.median(a for _, a, _ in r):.0f}", f"{statistics.median(n for _, _, n in r):.0f}"))
widths = [max(len(x) for x in col) for col in zip(hdr, *rows)] if rows else [len(h) for h in hdr]
fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
print()
print(f"I/O gap across each action, fio {workload} (largest interval between completions)")
print(fmt.format(*hdr))
print(fmt.format(*("-" * w for w in widths)))
for row in rows:
    print(fmt.format(*row))
ok = bool(rows) and done and not notes
if boot_rc in (124, 137):
    notes.append("the VM timed out")
    ok = False
elif boot_rc != 0:
    notes.append(f"qemu exited with status {boot_rc}")
    ok = False
if not done:
    notes.append("the guest did not report completion (no UBDM-GAP-DONE)")
for n in notes:
    print("note:", n)
print(f"console log: {log_path}")
sys.exit(0 if ok else 1)
PY
