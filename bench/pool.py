#!/usr/bin/env python3
"""CPU per op against the floor, pooled over several invocations of bench/run.py.

One invocation's runs share its server, its keys and the machine's mood during those minutes: on a
shared machine two invocations of the same build minutes apart read a row up to 0.05-0.08x apart. This
pools the pipelined-random runs of every file given (`bench/run.py --json FILE`), prints each row's
median in each invocation, the median of all runs, and where that median falls 90% of the time
(resampling whole invocations, then runs within them, so the spread between invocations counts), and
the verdict against the 1.15x target.

    python3 bench/run.py --modes '^pipelined random$' --repeat 11 --no-production --json /tmp/a.json
    ... (again, to /tmp/b.json, /tmp/c.json)
    python3 bench/pool.py /tmp/a.json /tmp/b.json /tmp/c.json
"""

import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (median_of, fmt_table, the target)

MODE = "pipelined random"
REFERENCES = {"SET", "PING", run.FLOOR}


def pooled_range(invocations, level=0.9, resamples=2000):
    """Bootstrap range of the pooled median: invocations drawn with replacement, then runs within each."""
    rng = random.Random(1)
    medians = []
    for _ in range(resamples):
        drawn = [rng.choice(invocations) for _ in invocations]
        medians.append(run.median_of([rng.choice(runs) for runs in drawn for _ in runs]))
    medians.sort()
    return medians[int((1 - level) / 2 * resamples)], medians[int((1 + level) / 2 * resamples) - 1]


def main():
    files = sys.argv[1:]
    if len(files) < 2:
        sys.exit(__doc__)
    by_row = {}   # row -> [[run ratios of one invocation], ...]
    for path in files:
        with open(path) as f:
            records = json.load(f)["throughput"]
        for rec in records:
            ratios = [r["cpu_ratio"] for r in rec["runs"] if r.get("cpu_ratio")]
            if rec["mode"] == MODE and rec["row"] not in REFERENCES and ratios:
                by_row.setdefault(rec["row"], []).append(ratios)
    rows = []
    for name, invocations in by_row.items():
        low, high = pooled_range(invocations)
        verdict = ""
        if name.startswith(("RL.", "CL.")) and not name.startswith(run.FLOOR):
            verdict = "met" if high <= run.TARGET_CPU_FLOOR else "not met" if low > run.TARGET_CPU_FLOOR else "undecided"
        rows.append((name, " ".join("%.2f" % run.median_of(v) for v in invocations),
                     "%.2fx" % run.median_of([x for v in invocations for x in v]),
                     "%.2f-%.2f" % (low, high), verdict))
    print("Server CPU per op x the floor, %s, pooled over %d invocations (each invocation's runs bracketed by "
          "floor runs); target <= %.2fx" % (MODE, len(files), run.TARGET_CPU_FLOOR))
    print(run.fmt_table(["command", "median per invocation", "pooled median", "90% range", "target"], rows, "llrll"))


if __name__ == "__main__":
    main()
