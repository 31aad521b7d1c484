#!/usr/bin/python3
"""Draw tools/bench/run.sh results as a PNG: one panel per kernel (per JSON
file), one group of bars per workload, one bar per device, each bar the
device's IOPS as a ratio to its raw baseline measured in the same boot or
native run (the dashed line at 1.0); with several rounds, the median ratio,
and a whisker over the rounds' range.

    tools/bench/plot.py OUT.png RESULTS.json [RESULTS.json...]

Each RESULTS.json is what `tools/bench/run.sh --json` writes (one boot, or
one --native run); give one per kernel or host. Needs python3-matplotlib
(tools/bench/run.sh --plot installs it when missing).
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402


def load(paths):
    runs = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            rows = [r for r in json.load(f) if r.get("ratio") is not None and r["device"] != r["base"]]
        if rows:
            title, same = f"kernel {rows[0].get('kernel') or p}", "same boot"
            if rows[0].get("mode") == "native":
                # run.sh --native: this host's kernel over its own disks.
                title += ", native: " + ", ".join(d["node"] for d in rows[0].get("disks") or [])
                same = "same run"
            runs.append((title, same, rows))
    return runs


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    out, paths = argv[1], argv[2:]
    runs = load(paths)
    if not runs:
        sys.exit("plot: no ratios in " + ", ".join(paths))
    fig, axes = plt.subplots(len(runs), 1, figsize=(10, 3.6 * len(runs)), squeeze=False)
    for ax, (title, same, rows) in zip(axes[:, 0], runs):
        workloads = list(dict.fromkeys(r["workload"] for r in rows))
        devices = list(dict.fromkeys(r["device"] for r in rows))
        ratio = {(r["device"], r["workload"]): r["ratio"] for r in rows}
        spread = {(r["device"], r["workload"]): r.get("ratio_range") for r in rows}
        width = 0.8 / len(devices)
        for n, dev in enumerate(devices):
            xs = [w + (n - (len(devices) - 1) / 2) * width for w in range(len(workloads))]
            ys = [ratio.get((dev, wl), 0.0) for wl in workloads]
            ranges = [spread.get((dev, wl)) or [y, y] for wl, y in zip(workloads, ys)]
            yerr = [[y - lo for y, (lo, _) in zip(ys, ranges)], [hi - y for y, (_, hi) in zip(ys, ranges)]]
            bars = ax.bar(xs, ys, width, label=dev, yerr=yerr, capsize=2, error_kw={"linewidth": 0.8})
            ax.bar_label(bars, labels=[f"{y:.2f}" if y else "" for y in ys], fontsize=7, padding=1)
        ax.axhline(1.0, color="black", linestyle="--", linewidth=0.8)
        ax.set_xticks(range(len(workloads)), workloads)
        ax.set_ylabel(f"IOPS / raw ({same})")
        ax.set_title(title)
        ax.legend(fontsize=8, loc="upper left")
        top = max((r.get("ratio_range") or [0, r["ratio"]])[1] for r in rows)
        ax.set_ylim(0, max(1.2, top * 1.15))
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"plot: {out}")


if __name__ == "__main__":
    main(sys.argv)
