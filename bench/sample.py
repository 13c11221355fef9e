#!/usr/bin/env python3
"""Where a call's CPU time goes, memory stalls included: perf's cpu-clock sampling on a loaded server.

Callgrind (bench/profile.py) counts instructions exactly but says nothing of the time spent waiting for
memory, which on a server with many keys is most of what separates one command from another. This
samples the running server instead: for each command it starts a redis-server with the module (pinned
to CPU 0, `bench-floor yes`), warms its keys with redis-benchmark (pipelined 16, 50 clients, random
keys from --keyspace, pinned to CPU 1), then samples the server with `perf record -e cpu-clock` (a
software timer: it works in VMs without hardware counters) during a second run, and prints the share
of samples per part (Redis, kernel, jemalloc, libc, the module) and the module's costliest functions.
A function whose share is far above its instruction count (compare `make bench-profile`) is waiting
for memory: its first touch of a value that is not in cache.

    python3 bench/sample.py                                  # the floor, RL.FIXED and RL.SLIDING
    python3 bench/sample.py "RL.GCRA g:__rand_int__ 999 1 3600000"
    python3 bench/sample.py --module other/librl.so --functions 12

Needs `perf` (linux-perf) and permission to sample the server (root, or perf_event_paranoid <= 1).
Shares are of one run on a shared machine: compare commands within one invocation.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import run  # noqa: E402  (bench/run.py: the RESP client and server helpers)

DEFAULT_COMMANDS = [
    "RL.BENCHFLOOR fl:__rand_int__",
    "RL.FIXED fx:__rand_int__ 1000 86400000",
    "RL.SLIDING sl:__rand_int__ 1000 3600000",
]
PARTS = [("the server", r"redis|valkey"), ("kernel", r"kernel"), ("jemalloc", r"jemalloc"),
         ("libc", r"libc"), ("vdso", r"vdso")]


def benchmark(port, command, requests, keyspace):
    exe = os.environ.get("RL_BENCHMARK", "redis-benchmark")
    argv = ["-h", "127.0.0.1", "-p", str(port), "-c", "50", "-n", str(requests), "-P", "16", "-r", str(keyspace),
            "-q"] + command.split()
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        argv = ["taskset", "-c", "1", exe] + argv
    else:
        argv = [exe] + argv
    subprocess.run(argv, capture_output=True, check=True)


def report(data, sort):
    out = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", sort, "-g", "none", "-q",
                          "--stdio"], capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(?:\[[.k]\]\s+)?(.+?)\s*$", line)
        if m:
            rows.append((float(m.group(1)), m.group(2)))
    return rows


def sample(module, command, args, workdir, index):
    server = run.Server(module, pin_cpu=0 if (os.cpu_count() or 1) >= 2 else None,
                        module_args=["bench-floor", "yes"])
    server.start()
    try:
        benchmark(server.port, command, args.requests, args.keyspace)   # warm: every key exists
        data = os.path.join(workdir, "perf%d.data" % index)
        perf = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", str(args.frequency), "-p",
                                 str(server.proc.pid), "-o", data], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        benchmark(server.port, command, args.requests, args.keyspace)
        perf.send_signal(2)
        perf.wait()
    finally:
        server.stop()
    return report(data, "dso"), report(data, "dso,sym")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("commands", nargs="*", help="redis-benchmark command lines (default: floor, FIXED, SLIDING)")
    ap.add_argument("--module", default=os.environ.get("RL_MODULE", os.path.join(ROOT, "target/release/librl.so")))
    ap.add_argument("--requests", type=int, default=1_000_000, help="requests per run (warm-up and sampled)")
    ap.add_argument("--keyspace", type=int, default=100_000, help="redis-benchmark -r")
    ap.add_argument("--frequency", type=int, default=20_000, help="samples per second")
    ap.add_argument("--functions", type=int, default=6, help="the module's N costliest functions per command")
    args = ap.parse_args()
    if not shutil.which("perf"):
        sys.exit("perf not found (Debian: apt-get install linux-perf)")
    commands = args.commands or DEFAULT_COMMANDS
    workdir = tempfile.mkdtemp(prefix="rl-sample-")
    results = [sample(os.path.abspath(args.module), c, args, workdir, i) for i, c in enumerate(commands)]
    print("Share of the server's CPU samples (perf cpu-clock, %d Hz), pipelined 16, random keys over %d, %d "
          "requests per command" % (args.frequency, args.keyspace, args.requests))
    names = [c.split()[0] for c in commands]
    width = max(len(n) for n in names) + 2
    print("part".ljust(12) + "".join(n.rjust(width) for n in names))
    dso = re.escape(os.path.basename(args.module))
    for part, pattern in [("the module", dso)] + PARTS:
        shares = [sum(p for p, name in dsos if re.search(pattern, name)) for dsos, _ in results]
        print(part.ljust(12) + "".join(("%.1f%%" % s).rjust(width) for s in shares))
    for name, (_, symbols) in zip(names, results):
        module = [(p, s) for p, s in symbols if re.match(dso, s)][: args.functions]
        print("\n%s, the module's costliest functions:" % name)
        for p, s in module:
            print("  %5.1f%%  %s" % (p, re.sub(dso + r"\s+(\[[.k]\]\s+)?", "", s)))
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
