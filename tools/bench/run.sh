#!/usr/bin/env bash
# Block-level benchmark: fio (io_uring, O_DIRECT) on raw devices, kernel dm
# and ubdm. Two modes: in the test VM (the default: null_blk and scsi_debug,
# all in ONE boot; under TCG only ratios within one boot mean anything), or
# --native on this host's own disks, for a kernel that has ublk.
#
#   tools/bench/run.sh [--kernel 6.12|newest] [--runtime S] [--rounds N]
#                      [--idle poll|halt] [--devices LIST] [--workloads LIST]
#                      [--bin PATH...] [--no-bin] [--keep-log FILE]
#                      [--json FILE] [--plot FILE]
#   tools/bench/run.sh --native (--disk DEV [--disk DEV2] | --paths DEV,DEV[,...])
#                      [--force-write] [--dry-run] [--selector NAME]
#                      [--runtime S] [--rounds N] [--devices KINDS]
#                      [--workloads LIST] [--bin PATH...] [--keep-log FILE]
#                      [--json FILE] [--plot FILE] [--from-log FILE]
#
#   --kernel LINE      the kernel to boot, as tools/vm/run.sh (default newest)
#   --runtime S        seconds per fio run (default $UBDM_BENCH_RUNTIME or 8)
#   --rounds N         run the device list N times over, interleaved (default
#                      1); each figure is then the median of its rounds, and
#                      each ratio the median of the ratios measured within a
#                      round, with their range: for a noisy machine
#   --idle poll|halt   how an idle guest CPU waits (default poll: the guest
#                      boots with idle=poll). Under TCG a halted vCPU takes
#                      hundreds of microseconds to wake, a hundred times a
#                      real CPU's idle exit; any device that hands a request
#                      to another thread (ublk always does; raw and dm-linear
#                      over null_blk never do) would measure that at qd1.
#                      `halt` keeps the kernel's default idle, to compare
#   --devices LIST     comma list, default null-raw,null-dm-linear,null-ubdm-linear;
#                      also null-ubdm-linear-copy (--copy),
#                      null-ubdm-linear-pollN (--poll-usec N), ubdm-zero
#                      (no disk: the ublk round trip alone), sda-raw,
#                      mpath-dm-rr, mpath-dm-ql, mpath-dm-st,
#                      mpath-ubdm-rr, mpath-ubdm-ql, mpath-ubdm-st
#                      (see tests/e2e/bench/bench.sh); env UBDM_BENCH_DEVICES
#   --workloads LIST   comma list of <rw>-<bs>-qd<N>, default
#                      randread-4k-qd1,randread-4k-qd32,randwrite-4k-qd32,read-128k-qd32;
#                      env UBDM_BENCH_WORKLOADS
#   --bin, --no-bin    as tools/vm/run.sh (default: release ubdmd, ubdmsetup)
#   --keep-log FILE    copy the console log (with fio's JSON) to FILE
#   --json FILE        write the parsed results as JSON to FILE
#   --plot FILE        draw them as a PNG (tools/bench/plot.py; installs
#                      python3-matplotlib if missing)
#
# Native mode (root; fio, dmsetup, python3; ublk_drv for the ubdm rows; runs
# tests/e2e/bench/native.sh, whose header has the details):
#   --native           run here, on the disks below, not in the VM
#   --disk DEV         a disk (once or twice; each is measured on its own):
#                      rows D-raw, D-dm-linear, D-ubdm-linear (D: sdb, ...)
#   --paths A,B[,...]  several paths to ONE LUN: rows A-raw, A-dm-linear,
#                      A-ubdm-linear over the first path, mpath-dm-SEL and
#                      mpath-ubdm-SEL (dm-multipath, ubdm multipath) over all
#   --selector NAME    round-robin (default), queue-length or service-time
#   --devices KINDS    only these: raw,dm-linear,ubdm-linear,dm-mpath,ubdm-mpath
#   --force-write      write workloads may overwrite a disk that holds a
#                      filesystem, RAID/LVM signature or partition table
#                      (refused without it; read-only lists need no force).
#                      Mounted, swap or held (LVM, md, dm) disks: always refused
#   --dry-run          print the checks and the plan, create and write nothing
#   --bin PATH...      ubdmd and ubdmsetup to use (default: build/release,
#                      else PATH); a private ubdmd is started and stopped
#   --from-log FILE    no run: print the table (and --json, --plot) from a
#                      log kept with --keep-log
#   It prints which devices are read and which written before it starts;
#   the log is build/bench/native.log (UBDM_BENCH_WORK for another directory).
#
# Prints a table: device, workload, IOPS, MiB/s, mean and p99 latency (us,
# submission to completion) and IOPS relative to the device's baseline
# (null-raw for devices over /dev/nullb0, sda-raw for those over scsi_debug;
# natively, the raw disk or first path under the row). The JSON is a list
# of rows; natively each also records mode "native", the host's kernel and
# the disks.
set -euo pipefail
# shellcheck source=tools/vm/common.sh
. "$(dirname "$0")/../vm/common.sh"

usage() { sed -n '2,73p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

runtime=${UBDM_BENCH_RUNTIME:-8}
rounds=1
idle=poll
devices=${UBDM_BENCH_DEVICES:-null-raw,null-dm-linear,null-ubdm-linear}
workloads=${UBDM_BENCH_WORKLOADS:-randread-4k-qd1,randread-4k-qd32,randwrite-4k-qd32,read-128k-qd32}
keep_log='' json_out='' plot_out=''
bins=()
bins_given=0
# Native mode: its options, and the VM-only ones given (refused with it).
native=0 native_args=() native_kinds='' from_log='' dry_run=0 vm_only=''
while [ $# -gt 0 ]; do
  case $1 in
    --runtime) runtime=${2:?}; shift 2 ;;
    --rounds) rounds=${2:?}; shift 2 ;;
    --idle) idle=${2:?}; vm_only+=" --idle"; shift 2 ;;
    --devices) devices=${2:?}; native_kinds=$2; shift 2 ;;
    --workloads) workloads=${2:?}; shift 2 ;;
    --json) json_out=${2:?}; shift 2 ;;
    --plot) plot_out=${2:?}; shift 2 ;;
    --native) native=1; shift ;;
    --disk | --paths | --selector) native_args+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
    --force-write) native_args+=("$1"); shift ;;
    --dry-run) dry_run=1; native_args+=("$1"); shift ;;
    --from-log) from_log=${2:?--from-log needs a file}; shift 2 ;;
    -h | --help) usage ;;
    *)
      case $1 in --kernel | --no-bin) vm_only+=" $1" ;; esac
      vm_common_option "$@"
      [ "$vm_used" -gt 0 ] || vm_die "unknown argument: $1 (see --help)"
      shift "$vm_used"
      ;;
  esac
done
if [ $native = 0 ] && { [ ${#native_args[@]} -gt 0 ] || [ -n "$from_log" ]; }; then
  vm_die "--disk, --paths, --selector, --force-write, --dry-run and --from-log go with --native"
fi
[ $native = 0 ] || [ -z "$vm_only" ] || vm_die "${vm_only# } only for the VM bench, not with --native"
case $runtime in '' | *[!0-9]*) vm_die "--runtime takes whole seconds" ;; esac
case $rounds in '' | *[!0-9]* | 0) vm_die "--rounds takes a whole number from 1" ;; esac
case $idle in
  poll) idle_append=idle=poll ;;
  halt) idle_append='' ;;
  *) vm_die "--idle takes poll or halt" ;;
esac
devices=$(tr -s ' ,' ',' <<<"$devices")
workloads=$(tr -s ' ,' ',' <<<"$workloads")
# Results are keyed by device and workload: a repeat would print one figure twice.
for list in "$devices" "$workloads"; do
  dup=$(tr ',' '\n' <<<"$list" | grep . | sort | uniq -d | head -n 1)
  [ -z "$dup" ] || vm_die "'$dup' is listed twice (each device and workload runs once per boot)"
done
if [ $bins_given = 0 ] && [ $native = 0 ]; then
  mapfile -t bins < <(vm_default_bins)
fi

# native_bin NAME: the binary to use natively: from --bin, else the
# release build's, else PATH's (native.sh says so if there is none).
native_bin() {
  local b
  for b in ${bins[@]+"${bins[@]}"}; do
    [ "$(basename "$b")" != "$1" ] || { readlink -f "$b"; return; }
  done
  [ $bins_given = 0 ] || vm_die "--bin names no $1"
  if [ -x "$UBDM_ROOT/build/release/$1" ]; then
    echo "$UBDM_ROOT/build/release/$1"
  else
    echo "$1"
  fi
}

rc=0
if [ $native = 1 ]; then
  # The table comes from python3: find out before an hour of fio, not after.
  [ $dry_run = 1 ] || command -v python3 >/dev/null 2>&1 ||
    vm_die "python3 is needed to read fio's results (tests/e2e/bench/native.sh runs without it and prints fio's JSON)"
  if [ -n "$from_log" ]; then
    [ -r "$from_log" ] || vm_die "cannot read $from_log"
    log=$from_log
  else
    work=${UBDM_BENCH_WORK:-$UBDM_ROOT/build/bench}
    mkdir -p "$work"
    log=$work/native.log
    [ -z "$native_kinds" ] || native_args+=(--devices "$native_kinds")
    # stdout (markers and fio's JSON) to the log; the plan, refusals and
    # progress on stderr, to the terminal. native.sh cleans up after itself
    # on any exit; a Ctrl-C reaches it (and fio) as well as this script,
    # which waits for it and then prints what was measured.
    ubdmd_bin=$(native_bin ubdmd)
    ubdmsetup_bin=$(native_bin ubdmsetup)
    UBDMD=$ubdmd_bin UBDMSETUP=$ubdmsetup_bin \
      sh "$UBDM_ROOT/tests/e2e/bench/native.sh" ${native_args[@]+"${native_args[@]}"} \
      --runtime "$runtime" --rounds "$rounds" --workloads "$workloads" >"$log" || rc=$?
    # 2: usage, 3: refused or not runnable (it said why; nothing was run).
    case $rc in 2 | 3) exit "$rc" ;; esac
    [ $dry_run = 0 ] || exit "$rc"
    [ -z "$keep_log" ] || cp "$log" "$keep_log"
  fi
  [ -z "$plot_out" ] || [ -n "$json_out" ] || json_out=$(dirname "$log")/bench-native.json
  runner=native
else
  "$UBDM_ROOT/tools/vm/fetch.sh" --kernel "$UBDM_VM_KERNEL"
  mkdir -p "$UBDM_VM_WORK"
  initrd=$UBDM_VM_WORK/bench-initrd-$UBDM_VM_KERNEL.cpio.gz
  log=$UBDM_VM_WORK/bench-console-$UBDM_VM_KERNEL.log
  "$UBDM_ROOT/tools/vm/build-initramfs.sh" "$initrd" --bin ${bins[@]+"${bins[@]}"} --tests "$UBDM_ROOT/tests/e2e"

  ndev=$(tr ',' '\n' <<<"$devices" | grep -c .)
  nwl=$(tr ',' '\n' <<<"$workloads" | grep -c .)
  vm_timeout=$((rounds * ndev * nwl * (runtime + 10) + 180))
  vm_msg "bench: $rounds round(s) x $ndev device(s) x $nwl workload(s) x ${runtime}s, idle $idle (VM time limit ${vm_timeout}s)"

  # Keep fio's JSON off the terminal (it is in the log).
  # shellcheck disable=SC2317 # called through UBDM_VM_DISPLAY
  bench_display() {
    awk '/UBDM-BENCH-BEGIN/ { skip = 1; sub(/UBDM-BENCH-BEGIN/, "[bench] done:"); print; fflush(); next }
         /UBDM-BENCH-END/ { skip = 0; next }
         !skip { print; fflush() }'
  }
  UBDM_VM_DISPLAY=bench_display
  vm_boot "$initrd" "$log" "$vm_timeout" \
    "$idle_append ubdm.run=/tests/bench/bench.sh ubdm.bench_runtime=$runtime ubdm.bench_rounds=$rounds ubdm.bench_devices=$devices ubdm.bench_workloads=$workloads" || rc=$?
  [ -z "$keep_log" ] || cp "$log" "$keep_log"

  if [ -n "$plot_out" ] && [ -z "$json_out" ]; then
    json_out=$UBDM_VM_WORK/bench-$UBDM_VM_KERNEL.json
  fi
  runner=vm
fi
parse_rc=0
python3 - "$log" "$rc" "$json_out" "$idle" "$runner" <<'PY' || parse_rc=$?
import json, re, sys

log_path, boot_rc, json_out, idle = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
# "vm": a console log of the VM; "native": native.sh's output on this host.
runner = sys.argv[5]
lines = open(log_path, encoding="utf-8", errors="replace").read().replace("\r", "").split("\n")

# runs[(device, workload)]: one result per round (None: that run failed).
runs, order, base, notes = {}, [], {}, []
kernel = ""
native, disks = None, []
done = False
rnd = 1
def record(key, result):
    if key not in runs:
        runs[key] = {}
        order.append(key)
    runs[key][rnd] = result
i = 0
while i < len(lines):
    line = lines[i]
    m = re.search(r"UBDM-VM: up \S+, kernel (\S+),", line)
    if m:
        kernel = m.group(1)
    m = re.search(r"UBDM-BENCH-NATIVE kernel=(\S+) mode=(\S+) selector=(\S+) force_write=(\d)", line)
    if m:
        kernel = m.group(1)
        native = {"setup": m.group(2), "selector": m.group(3), "force_write": m.group(4) == "1"}
    m = re.search(r"UBDM-BENCH-DISK (\S+) sectors=(\d+) written=(\S+) wwid=(\S+) model=(.*)", line)
    if m:
        disks.append({"node": m.group(1), "sectors": int(m.group(2)), "written": m.group(3) == "yes",
                      "wwid": None if m.group(4) == "-" else m.group(4), "model": m.group(5).strip()})
    m = re.search(r"UBDM-BENCH-ROUND (\d+)", line)
    if m:
        rnd = int(m.group(1))
    m = re.search(r"UBDM-BENCH-DEVICE (\S+) (\S+) base=(\S+)", line)
    if m:
        base[m.group(1)] = m.group(3)
    m = re.search(r"UBDM-BENCH-SKIP (\S+) ?(.*)", line)
    if m:
        notes.append(f"{m.group(1)}: skipped: {m.group(2)}")
    m = re.search(r"UBDM-BENCH-FAIL (\S+) (\S+) ?(.*)", line)
    if m:
        notes.append(f"{m.group(1)} {m.group(2)}: FAILED: {m.group(3)}")
        if m.group(2) != "-":
            record((m.group(1), m.group(2)), None)
    if "UBDM-BENCH-DONE" in line:
        done = True
    m = re.search(r"UBDM-BENCH-BEGIN (\S+) (\S+)", line)
    if m:
        key = (m.group(1), m.group(2))
        body = []
        i += 1
        while i < len(lines) and "UBDM-BENCH-END" not in lines[i]:
            body.append(lines[i])
            i += 1
        text = "\n".join(body)
        text = text[text.find("{"): text.rfind("}") + 1]
        try:
            job = json.loads(text)["jobs"][0]
            # Mixed workloads (rw, randrw) add up reads and writes.
            parts = [job[k] for k in ("read", "write") if job[k]["total_ios"] > 0]
            if not parts:
                raise ValueError("no I/O completed")
            iops = sum(p["iops"] for p in parts)
            bw = sum(p["bw_bytes"] for p in parts)
            n = sum(p["total_ios"] for p in parts)
            lats = [p.get("lat_ns") or p["clat_ns"] for p in parts]
            mean = sum(l["mean"] * p["total_ios"] for l, p in zip(lats, parts)) / n
            p99s = [(l.get("percentile") or {}).get("99.000000") for l in lats]
            p99 = max(p99s) if None not in p99s else None
            record(key, {
                "iops": iops, "mib_s": bw / 1048576.0,
                "lat_mean_us": mean / 1000.0,
                "lat_p99_us": p99 / 1000.0 if p99 is not None else None,
                "errors": job.get("error", 0),
            })
        except Exception as e:  # noqa: BLE001 - report and go on
            notes.append(f"{key[0]} {key[1]}: cannot parse fio JSON: {e}")
            record(key, None)
    i += 1

def median(xs):
    xs = sorted(xs)
    h = len(xs) // 2
    return xs[h] if len(xs) % 2 else (xs[h - 1] + xs[h]) / 2

# Each ratio is taken within a round (the device and its base measured close
# in time), then the median of those; the figures are medians of the rounds.
results = {}
for key in order:
    ok_runs = {r: v for r, v in runs[key].items() if v is not None}
    if len(ok_runs) < len(runs[key]) or not ok_runs:
        results[key] = None
        continue
    b = runs.get((base.get(key[0], key[0]), key[1]), {})
    ratios = [v["iops"] / b[r]["iops"] for r, v in ok_runs.items() if b.get(r) and b[r]["iops"]]
    agg = {"device": key[0], "workload": key[1]}
    for f in ("iops", "mib_s", "lat_mean_us", "lat_p99_us"):
        vals = [v[f] for v in ok_runs.values() if v[f] is not None]
        agg[f] = median(vals) if vals else None
    agg["errors"] = sum(v["errors"] for v in ok_runs.values())
    agg["ratio"] = median(ratios) if ratios else None
    agg["ratio_range"] = [min(ratios), max(ratios)] if ratios else None
    agg["rounds"] = [dict(v, round=r) for r, v in sorted(ok_runs.items())]
    results[key] = agg
nrounds = max((len(v) for v in runs.values()), default=1)

hdr = ("device", "workload", "IOPS", "MiB/s", "lat mean us", "lat p99 us",
       "IOPS vs base" + (f" (median of {nrounds} rounds, range)" if nrounds > 1 else ""))
rows = []
for key in order:
    r = results.get(key)
    if r is None:
        rows.append((key[0], key[1], "FAIL", "", "", "", ""))
        continue
    ratio = ""
    if r["ratio"] is not None:
        ratio = f"{r['ratio']:.2f}x {base.get(key[0], '')}"
        if nrounds > 1:
            ratio += f" ({r['ratio_range'][0]:.2f}-{r['ratio_range'][1]:.2f})"
    rows.append((key[0], key[1], f"{r['iops']:.0f}", f"{r['mib_s']:.1f}",
                 f"{r['lat_mean_us']:.1f}",
                 f"{r['lat_p99_us']:.1f}" if r["lat_p99_us"] is not None else "",
                 ratio))
widths = [max(len(str(x)) for x in col) for col in zip(hdr, *rows)] if rows else [len(h) for h in hdr]
fmt = "  ".join(f"{{:<{w}}}" if n < 2 or n == len(widths) - 1 else f"{{:>{w}}}" for n, w in enumerate(widths))
print()
print(fmt.format(*hdr))
print(fmt.format(*("-" * w for w in widths)))
for r in rows:
    print(fmt.format(*r))
ok = True
if not rows:
    notes.append("no results")
    ok = False
if any(results.get(k) is None for k in order):
    ok = False
# How each runner's exit reads: the statuses that mean it was cut short,
# what a cut or another failure says, and who did not report completion.
cut, cut_note, failed, who = {
    "native": ((130, 143), "interrupted: the table has what was measured before",
               "the native bench exited with status {}", "the native bench"),
    "vm": ((124, 137), "the VM timed out", "qemu exited with status {}", "the guest"),
}[runner]
if boot_rc != 0:
    notes.append(cut_note if boot_rc in cut else failed.format(boot_rc))
    ok = False
if not done:
    notes.append(f"{who} did not report completion (no UBDM-BENCH-DONE)")
    ok = False
for n in notes:
    print("note:", n)
if json_out:
    # One object per device and workload, with the kernel, the guest's idle
    # mode, its base, the median figures and ratio, the ratio's range and
    # each round's figures (tools/bench/plot.py draws these).
    if runner == "native":
        # Natively: the host's kernel, the mode and the disks instead of
        # the guest's idle mode.
        extra = {"mode": "native", "setup": (native or {}).get("setup"),
                 "selector": (native or {}).get("selector"),
                 "force_write": (native or {}).get("force_write"), "disks": disks}
    else:
        extra = {"idle": idle}
    out = [dict(results[k], kernel=kernel, **extra, base=base.get(k[0], k[0])) for k in order if results.get(k)]
    with open(json_out, "w") as f:
        json.dump(out, f, indent=2)
print(f"{'log' if runner == 'native' else 'console log'}: {log_path}")
sys.exit(0 if ok else 1)
PY
if [ -n "$plot_out" ]; then
  # Debian's python3-matplotlib belongs to the system's python3, whatever
  # python3 comes first in PATH.
  if ! /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
    vm_msg "installing python3-matplotlib for the plot"
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends python3-matplotlib >/dev/null
  fi
  /usr/bin/python3 "$UBDM_ROOT/tools/bench/plot.py" "$plot_out" "$json_out"
fi
# A native run stopped by Ctrl-C or SIGTERM ends as such.
if [ $native = 1 ] && { [ "$rc" -eq 130 ] || [ "$rc" -eq 143 ]; }; then exit "$rc"; fi
exit "$parse_rc"
