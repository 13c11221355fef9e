#!/usr/bin/env python3
"""What a sliding log's size costs: server CPU per admitted (or, with --rejected, rejected) RL.SLIDING
call on logs of a given length, against the same RL.FIXED call, each as a ratio to the floor
(RL.BENCHFLOOR) in the same run.

The benchmark's RL.SLIDING rows let their logs grow during the run, so one row mixes the stored forms
a log goes through (bench/RESULTS.md). This holds the length still instead: before every run it
re-creates --keys keys of each kind, their objects allocated in turn (key 0 of every kind, then key 1,
...) so no kind gets a friendlier memory layout, then runs --requests admitted calls over them
(pipelined 16, 50 clients, random keys; --requests well under --keys, so a log gains an entry or two
at most). A run is bracketed by two floor runs and its ratio taken against their mean. Kinds:

  RL.BENCHFLOOR key PACKED / BOXED
                  the floor's own write with its value packed (32 bytes, as the floor's) or boxed (the
                  32 bytes point to a 192-byte value, as a long log's do): what a value outside the
                  32-byte size class costs with nothing else changed (admitted runs only)
  RL.FIXED        one 32-byte packed value (the reference: a limiter as small as the floor's)
  RL.SLIDING <n>  a log of n entries 1 s apart in the last hour (limit 1,000,000, 1 h window):
                  up to 3 entries packed in 32 bytes, then boxed (192 bytes, entries inside it
                  up to about 23), then with its entries in a second allocation
  With --rejected the limits are the entries already there (RL.FIXED: 1, used), so every call is
  rejected and writes nothing.

    python3 bench/log_sizes.py                     # logs of 1, 10 and 40 entries, 7 runs (a few minutes)
    python3 bench/log_sizes.py --sizes 1,4,20,30
    python3 bench/log_sizes.py --rejected

Callgrind (make bench-profile) counts about the same instructions for an admitted RL.FIXED and an
admitted call on a boxed 10-entry log; what this measures on top is the memory the call touches.
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import run  # noqa: E402  (bench/run.py: the RESP client, server and benchmark helpers)

WINDOW_MS = 3_600_000
LIMIT = 1_000_000
# One EVAL per log: n entries 1 s apart, ending a minute before now.
FILL = ("for i = 1, tonumber(ARGV[1]) do redis.call('RL.SLIDING', KEYS[1], ARGV[3], %d, 'AT', "
        "tonumber(ARGV[2]) + i * 1000) end return 1" % WINDOW_MS)
BATCH = 2000


class Kind:
    """One kind of key: `size` None for RL.FIXED, a number for a sliding log of that many entries, or a
    form word (PACKED, BOXED) for the floor's own value in that form."""

    def __init__(self, name, size, rejected):
        self.name, self.size = name, size
        # Rejected calls use up what is there: RL.FIXED's limit 1 after one call, a log's its entries.
        self.limit = LIMIT if not rejected else (1 if size is None else size)

    def label(self):
        if isinstance(self.size, str):
            return "RL.BENCHFLOOR key %s" % self.size
        if self.size is None:
            return "RL.FIXED"
        return "RL.SLIDING, %d entr%s" % (self.size, "y" if self.size == 1 else "ies")

    def call(self, key):
        if isinstance(self.size, str):
            return ["RL.BENCHFLOOR", key, self.size]
        return ["RL.FIXED" if self.size is None else "RL.SLIDING", key, self.limit, WINDOW_MS]

    def create(self, key, now):
        if isinstance(self.size, int):
            return ["EVAL", FILL, 1, key, self.size, now - 60_000 - self.size * 1000, self.limit]
        return self.call(key)


def recreate(r, kinds, keys):
    """Deletes and re-creates every kind's keys, interleaved; the floor's keys are written too."""
    now = run.server_ms(r)
    for start in range(0, keys, BATCH):
        cmds = []
        for k in range(start, min(keys, start + BATCH)):
            cmds.append(["RL.BENCHFLOOR", "fl:%012d" % k])
            for kind in kinds:
                key = "%s:%012d" % (kind.name, k)
                cmds += [["DEL", key], kind.create(key, now)]
        for reply in r.pipeline(cmds):
            if isinstance(reply, run.ReplyError):
                sys.exit("setting up the keys failed: %s" % reply)


def measure(server, command, requests, keys, pin):
    """Server CPU per call (microseconds) over one redis-benchmark run."""
    before = run.proc_cpu(server.proc.pid)
    run.run_benchmark(server.port, command, 50, requests, 16, keys, pin)
    return (run.proc_cpu(server.proc.pid) - before) / requests * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--module", default=os.environ.get("RL_MODULE", os.path.join(ROOT, "target/release/librl.so")))
    ap.add_argument("--sizes", default="1,10,40", help="log lengths, comma-separated")
    ap.add_argument("--keys", type=int, default=100_000, help="keys per kind (redis-benchmark -r)")
    ap.add_argument("--requests", type=int, default=40_000, help="calls per run")
    ap.add_argument("--repeat", type=int, default=7, help="runs per kind; the median is reported")
    ap.add_argument("--rejected", action="store_true", help="calls that are rejected (limits used up)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    # The floor's own value packed and boxed (admitted calls only: the floor always admits), RL.FIXED, the logs.
    floors = [] if args.rejected else [Kind("fp", "PACKED", False), Kind("fb", "BOXED", False)]
    kinds = floors + [Kind("fx", None, args.rejected)] + [Kind("sl%d" % n, n, args.rejected) for n in sizes]
    two_cpus = (os.cpu_count() or 1) >= 2
    server = run.Server(os.path.abspath(args.module), pin_cpu=0 if two_cpus else None,
                        module_args=["bench-floor", "yes"])
    r = server.start()
    bench_cpu = 1 if two_cpus else None
    floor = ["RL.BENCHFLOOR", "fl:__rand_int__"]
    ratios = {kind.name: [] for kind in kinds}
    try:
        for _ in range(args.repeat):
            recreate(r, kinds, args.keys)
            before = measure(server, floor, args.requests, args.keys, bench_cpu)
            for kind in kinds:
                cost = measure(server, kind.call(kind.name + ":__rand_int__"), args.requests, args.keys, bench_cpu)
                after = measure(server, floor, args.requests, args.keys, bench_cpu)
                ratios[kind.name].append(cost / ((before + after) / 2))
                before = after
        used = [l for l in r.call("INFO", "memory").split() if l.startswith("used_memory_human")]
    finally:
        server.cleanup()
    print("Server CPU per %s call x the floor's, pipelined 16, random keys over %d per kind, %d calls per run, "
          "median of %d runs [90%% range]; %s" % ("rejected" if args.rejected else "admitted", args.keys,
                                                   args.requests, args.repeat, used[0]))
    rows = []
    for kind in kinds:
        low_high = run.median_range(ratios[kind.name])
        span = "[%.2f-%.2f]" % low_high if low_high else ""
        rows.append((kind.label(), "%.2fx" % run.median_of(ratios[kind.name]), span))
    print(run.fmt_table(["calls", "CPU x floor", "90% range"], rows, "lrl"))


if __name__ == "__main__":
    main()
