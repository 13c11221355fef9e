#!/usr/bin/env python3
"""Where a call's instructions go: callgrind on a redis-server running the module.

Starts redis-server under `valgrind --tool=callgrind` (instrumentation off), and for each scenario:
creates --calls distinct keys (so every measured call updates a live key, as in the benchmark's
random-key mode once warm), switches instrumentation on, sends the same calls again pipelined 16 at a
time on one connection (like `redis-benchmark -P 16`), dumps the counters, and switches it off. The
dump's call graph is split into Redis's parts and the module's:

  read + parse         readQueryFromClient up to processCommand (socket read, RESP parsing, argv objects)
  processCommand       processCommand outside call() (command lookup, ACL, OOM and cluster checks)
  call()               call() outside the command and propagation (stats, slowlog, latency, dirty)
  propagation          propagatePendingCommands (feeds the AOF buffer and replicas; little without them)
  module dispatch      RedisModuleCommandDispatcher outside the handler (context set-up and teardown)
  command              SET's setCommand, or the module handler, split into:
    module code          the module's own instructions (parsing, algorithm, packing, stats), libc it calls
    RM_* groups          the Redis module API it calls, by group (key open/close, value, expire, replicate
                         with its command lookup and argv, reply, strings, keyspace event, allocations, clock)
  write replies        handleClientsWithPendingWritesUsingThreads (socket writes)
  event loop, rest     everything else (aeProcessEvents, beforeSleep's other work, serverCron)

Counts are user-space instructions (Ir) per call: the kernel's share (socket read/write) is not counted.
Every number comes from one run on one machine, but instruction counts barely vary between runs or
with load, unlike time.

    python3 bench/profile.py                    # the table (about 1-2 minutes)
    python3 bench/profile.py --calls 500        # quicker
    python3 bench/profile.py --functions 12     # also the module's costliest functions per scenario
    python3 bench/profile.py --cache-sim        # also cache misses per call (simulated; a few minutes)
    python3 bench/profile.py --aof-replica      # with appendonly everysec and a replica attached
"""

import argparse
import glob
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

# (name, command words after the key, the reply's first integer when admitted/rejected, or None)
SCENARIOS = [
    ("PING", None, None),
    ("SET", ["SET", "{k}", "xxx"], None),
    ("SET PX", ["SET", "{k}", "xxx", "PX", "60000"], None),
    ("RL.BENCHFLOOR", ["RL.BENCHFLOOR", "{k}"], 1),
    ("RL.FIXED admitted", ["RL.FIXED", "{k}", "1000", "86400000"], 1),
    ("RL.FIXED rejected", ["RL.FIXED", "{k}", "1", "86400000"], 0),
    ("RL.SLIDING admitted", ["RL.SLIDING", "{k}", "1000", "3600000"], 1),
    ("RL.SLIDING rejected", ["RL.SLIDING", "{k}", "1", "3600000"], 0),
    # A log past the 3 entries a packed value holds (boxed), as the benchmark's random keys are once warm.
    ("RL.SLIDING admitted, 10 entries", ["RL.SLIDING", "{k}", "1000", "3600000"], 1),
    ("RL.TOKENBUCKET admitted", ["RL.TOKENBUCKET", "{k}", "1000", "1", "3600000"], 1),
    ("RL.GCRA admitted", ["RL.GCRA", "{k}", "999", "1", "3600000"], 1),
    ("CL.THROTTLE admitted", ["CL.THROTTLE", "{k}", "999", "1", "3600"], 0),   # redis-cell: 0 = not limited
]

# Scenarios whose keys are set up with several calls: name -> calls per key, each with its own AT (1 s
# apart, in the last minute) so that each leaves an entry of its own.
SETUP_CALLS = {"RL.SLIDING admitted, 10 entries": 9}

# Module API functions by group (everything else named RM_* is "other RM_*").
RM_GROUPS = [
    ("RM_OpenKey + RM_CloseKey", ("RM_OpenKey", "RM_CloseKey")),
    ("RM key type, get/set value", ("RM_KeyType", "RM_ModuleTypeGetType", "RM_ModuleTypeGetValue",
                                    "RM_ModuleTypeSetValue")),
    ("RM_SetAbsExpire / GetExpire", ("RM_SetAbsExpire", "RM_GetExpire", "RM_SetExpire", "RM_GetAbsExpire")),
    ("RM_Replicate", ("RM_Replicate",)),
    ("RM_ReplyWith*", ("RM_ReplyWithArray", "RM_ReplyWithLongLong", "RM_ReplyWithError",
                       "RM_ReplyWithSimpleString")),
    ("RM strings (create/free/ptr)", ("RM_CreateStringFromLongLong", "RM_FreeString", "RM_StringPtrLen",
                                      "RM_CreateString")),
    ("RM_NotifyKeyspaceEvent", ("RM_NotifyKeyspaceEvent",)),
    ("RM_Alloc/Free (module heap)", ("RM_Alloc", "RM_Free", "RM_Realloc", "RM_Calloc", "RM_TryAlloc")),
    ("RM clock", ("RM_Milliseconds", "RM_CachedMicroseconds", "RM_Microseconds")),
]
REPLICATE_PARTS = [("lookupCommandByCString", "  of which command lookup (lookupCommandByCString)"),
                   ("moduleCreateArgvFromUserFormat", "  of which argv (moduleCreateArgvFromUserFormat)"),
                   ("alsoPropagate", "  of which alsoPropagate")]


# --------------------------------------------------------------------------- callgrind output

class Profile:
    """Self costs and call edges (inclusive cost per caller/callee) of one callgrind dump, by function name."""

    def __init__(self, path):
        self.self_cost = {}     # fn -> Ir
        self.calls = {}         # (caller, callee) -> inclusive Ir of those calls
        self.object = {}        # fn -> object file
        self.total = 0
        names, objs = {}, {}
        fn = cfn = None
        ob = None
        pending_call = False

        def name(table, value):
            m = re.match(r"\((\d+)\)(?: (.*))?$", value)
            if not m:
                return value
            if m.group(2) is not None:
                table[m.group(1)] = m.group(2)
            return table.get(m.group(1), value)

        with open(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if not line:
                    continue
                c = line[0]
                if c.isdigit() or c in "+-*":
                    parts = line.split()
                    ir = int(parts[1]) if len(parts) > 1 else 0
                    if pending_call:
                        key = (fn, cfn)
                        self.calls[key] = self.calls.get(key, 0) + ir
                        pending_call = False
                    else:
                        self.self_cost[fn] = self.self_cost.get(fn, 0) + ir
                        self.total += ir
                    continue
                if line.startswith("fn="):
                    fn = name(names, line[3:])
                    self.object.setdefault(fn, ob)
                elif line.startswith("cfn="):
                    cfn = name(names, line[4:])
                elif line.startswith("cob="):
                    name(objs, line[4:])   # defines a name id; the callee's object comes from its own fn= block
                elif line.startswith("ob="):
                    ob = name(objs, line[3:])
                elif line.startswith("calls="):
                    pending_call = True

    def inclusive(self, fn):
        return self.self_cost.get(fn, 0) + sum(self.callees(fn).values())

    def callees(self, fn):
        return {b: v for (a, b), v in self.calls.items() if a == fn and b != fn}

    def is_module(self, fn):
        return "librl" in (self.object.get(fn) or "")

    def reaches(self, start, target, depth=4):
        if depth == 0:
            return False
        for b in self.callees(start):
            if b == target or self.reaches(b, target, depth - 1):
                return True
        return False


def breakdown(p, calls):
    """[(part, Ir per call)] for one scenario; parts add up to the total."""
    per = lambda v: v / calls
    rows = []
    total = p.total
    read = p.inclusive("readQueryFromClient")
    process = p.inclusive("processCommand")
    call = p.inclusive("call")
    writes = p.inclusive("handleClientsWithPendingWritesUsingThreads")
    prop = p.inclusive("propagatePendingCommands") if p.reaches("call", "propagatePendingCommands") else 0
    call_children = p.callees("call")
    dispatcher = "RedisModuleCommandDispatcher"
    if dispatcher in call_children:
        proc = dispatcher
    else:   # SET, PING: the command's own function (the costliest callee that is not propagation)
        cands = {k: v for k, v in call_children.items() if k not in ("propagatePendingCommands", "afterCommand")}
        proc = max(cands, key=cands.get) if cands else None
    proc_cost = call_children.get(proc, 0) if proc else 0
    rows.append(("read + parse", per(read - process)))
    rows.append(("processCommand (lookup, ACL, checks)", per(process - call)))
    rows.append(("call() bookkeeping", per(call - proc_cost - prop)))
    rows.append(("propagation (propagatePendingCommands)", per(prop)))
    module_total = 0
    if proc == dispatcher:
        handlers = {k: v for k, v in p.callees(dispatcher).items() if p.is_module(k)}
        handler_cost = sum(handlers.values())
        rows.append(("module dispatch (context set-up/teardown)", per(p.inclusive(dispatcher) - handler_cost)))
        # The handler's subtree: module functions (self) and what they call outside the module.
        module_fns = [f for f in p.self_cost if p.is_module(f)] + [f for f in p.object if p.is_module(f)]
        module_fns = sorted(set(module_fns))
        own = sum(p.self_cost.get(f, 0) for f in module_fns)
        outside = {}
        for f in module_fns:
            for callee, v in p.callees(f).items():
                if not p.is_module(callee):
                    outside[callee] = outside.get(callee, 0) + v
        grouped = set()
        group_rows = []
        for label, names in RM_GROUPS:
            v = sum(outside.get(n, 0) for n in names)
            grouped.update(names)
            group_rows.append((label, v))
            if label == "RM_Replicate" and v:
                parts = p.callees("RM_Replicate")
                scale = outside.get("RM_Replicate", 0) / max(p.inclusive("RM_Replicate"), 1)
                for fn, sub in REPLICATE_PARTS:
                    group_rows.append((sub, parts.get(fn, 0) * scale))
        other_rm = sum(v for n, v in outside.items() if n.startswith("RM_") and n not in grouped)
        libc = sum(v for n, v in outside.items() if not n.startswith("RM_") and n not in grouped)
        rows.append(("module code (librl.so, + libc it calls)", per(own + libc)))
        for label, v in group_rows:
            rows.append((label, per(v)))
        rows.append(("other RM_*", per(other_rm)))
        module_total = own + libc
    else:
        rows.append(("command (%s)" % (proc or "-"), per(proc_cost)))
    rows.append(("write replies (socket)", per(writes)))
    accounted = read + writes
    rows.append(("event loop, rest", per(total - accounted)))
    rows.append(("TOTAL", per(total)))
    return rows, per(module_total)


def top_module_functions(p, calls, count):
    fns = sorted(((v, f) for f, v in p.self_cost.items() if p.is_module(f)), reverse=True)[:count]
    return [(f, v / calls) for v, f in fns]


# --------------------------------------------------------------------------- server under callgrind

def cache_misses(path, calls):
    """With --cache-sim: (I1 misses, D1 misses, LL data misses) per call from a dump's totals line (callgrind's
    simulated caches: first-level I and D, and one last level)."""
    events = totals = None
    with open(path) as f:
        for line in f:
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("totals:") or line.startswith("summary:"):
                totals = [int(x) for x in line.split()[1:]]
    if not events or not totals or "I1mr" not in events:
        return None
    v = dict(zip(events, totals))
    return tuple(x / calls for x in (v["I1mr"], v["D1mr"] + v["D1mw"], v["DLmr"] + v["DLmw"]))


def start_valgrind(module, outdir, extra, cache_sim=False):
    port = run.free_port()
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no"] + (["--cache-sim=yes"] if cache_sim else [])
    cmd += ["--callgrind-out-file=%s/cg.out" % outdir,
            "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", outdir,
            "--logfile", os.path.join(outdir, "redis.log")] + extra + ["--loadmodule", module, "bench-floor", "yes"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(outdir, "valgrind.log"), "w"))
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            r = run.Redis(port, timeout=120)
            if r.call("PING") == "PONG":
                return proc, r, port
        except (OSError, run.ReplyError):
            time.sleep(0.3)
    proc.kill()
    sys.exit("redis-server under valgrind did not start; see %s" % outdir)


def control(pid, *flags):
    subprocess.run(["callgrind_control"] + list(flags) + [str(pid)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=300)


def send(r, commands, batch=16):
    return r.pipeline(commands, batch=batch)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--module", default=os.environ.get("RL_MODULE", os.path.join(ROOT, "target/release/librl.so")))
    ap.add_argument("--calls", type=int, default=2000, help="measured calls per scenario (distinct keys)")
    ap.add_argument("--only", default=None, help="regex: only scenarios whose name matches")
    ap.add_argument("--functions", type=int, default=0, help="also list the module's N costliest functions")
    ap.add_argument("--aof-replica", action="store_true",
                    help="appendonly yes (everysec) and a replica attached (not under valgrind)")
    ap.add_argument("--cache-sim", action="store_true",
                    help="also simulate the caches: instruction and data misses per call (slower)")
    ap.add_argument("--keep", action="store_true", help="keep the callgrind files (their directory is printed)")
    args = ap.parse_args()
    for exe in ("valgrind", "callgrind_control", "redis-server"):
        if not shutil.which(exe):
            sys.exit("%s not found" % exe)
    module = os.path.abspath(args.module)
    if not os.path.exists(module):
        sys.exit("module not found: %s (run `make build`)" % module)

    outdir = tempfile.mkdtemp(prefix="rl-profile-")
    extra = []
    if args.aof_replica:
        extra = ["--appendonly", "yes", "--appendfsync", "everysec", "--auto-aof-rewrite-percentage", "0"]
    proc, r, port = start_valgrind(module, outdir, extra, args.cache_sim)
    replica = None
    try:
        if args.aof_replica:
            replica = run.Server(module, module_args=["bench-floor", "yes"],
                                 extra=["--replicaof", "127.0.0.1", str(port)])
            rr = replica.start()
            deadline = time.time() + 120
            while "master_link_status:up" not in rr.call("INFO", "replication"):
                if time.time() > deadline:
                    sys.exit("the replica did not link")
                time.sleep(0.2)
        scenarios = [s for s in SCENARIOS if not args.only or re.search(args.only, s[0])]
        results, misses = [], {}
        for i, (name, words, expect) in enumerate(scenarios):
            keys = ["prof%d:%06d" % (i, j) for j in range(args.calls)]
            if words is None:
                commands = [["PING"] for _ in keys]
            else:
                commands = [[w.replace("{k}", k) for w in words] for k in keys]
                setup = commands   # creates the keys (not measured)
                if name in SETUP_CALLS:
                    now_ms, n = int(time.time() * 1000), SETUP_CALLS[name]
                    setup = [c + ["AT", str(now_ms - 1000 * (n - j))] for c in commands for j in range(n)]
                setup = send(r, setup, batch=200)
                bad = [x for x in setup if isinstance(x, run.ReplyError)]
                if bad:
                    sys.exit("%s: %s" % (name, bad[0]))
            before = set(glob.glob(os.path.join(outdir, "cg.out*")))
            control(proc.pid, "-z")
            control(proc.pid, "-i", "on")
            replies = send(r, commands)
            if replica is not None:
                r.call("WAIT", 1, 60000)
            control(proc.pid, "-d", name.replace(" ", "_"))
            control(proc.pid, "-i", "off")
            if expect is not None:
                wrong = [x for x in replies if not (isinstance(x, list) and x[0] == expect)]
                if wrong:
                    sys.exit("%s: %d replies not %s, e.g. %r" % (name, len(wrong), expect, wrong[0]))
            new = sorted(set(glob.glob(os.path.join(outdir, "cg.out*"))) - before, key=os.path.getmtime)
            if not new:
                sys.exit("no callgrind dump for %s in %s" % (name, outdir))
            p = Profile(new[-1])
            rows, module_ir = breakdown(p, args.calls)
            results.append((name, rows, module_ir, top_module_functions(p, args.calls, args.functions)))
            misses[name] = cache_misses(new[-1], args.calls)
            print("%-24s %8.0f Ir/call (module code %.0f)" % (name, rows[-1][1], module_ir), file=sys.stderr)
    finally:
        try:
            r.call("SHUTDOWN", "NOSAVE")
        except (OSError, run.ReplyError, ConnectionError):
            pass
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        if replica is not None:
            replica.cleanup()
        if args.keep:
            print("callgrind files: %s" % outdir, file=sys.stderr)
        else:
            shutil.rmtree(outdir, ignore_errors=True)

    # One table: parts as rows, scenarios as columns (Ir per call); parts no scenario uses are left out.
    names = [n for n, _, _, _ in results]
    labels = ["read + parse", "processCommand (lookup, ACL, checks)", "call() bookkeeping",
              "propagation (propagatePendingCommands)", "module dispatch (context set-up/teardown)",
              "command (setCommand, pingCommand)", "module code (librl.so, + libc it calls)"]
    labels += [label for label, _ in RM_GROUPS[:4]] + [sub for _, sub in REPLICATE_PARTS]
    labels += [label for label, _ in RM_GROUPS[4:]] + ["other RM_*", "write replies (socket)", "event loop, rest",
                                                        "TOTAL"]
    table = []
    for label in labels:
        cells = []
        for _, rows, _, _ in results:
            d = dict(rows)
            if label.startswith("command ("):
                v = next((v for l, v in rows if l.startswith("command (")), None)
            else:
                v = d.get(label)
            cells.append("%.0f" % v if v is not None else "")
        if any(c not in ("", "0") for c in cells):
            table.append([label] + cells)
    title = "Instructions (Ir) per call, callgrind, %d calls per scenario, pipelined 16, existing keys%s" % (
        args.calls, ", appendonly everysec + 1 replica" if args.aof_replica else ", no AOF, no replica")
    print(title)
    print(run.fmt_table(["part"] + names, table, "l" + "r" * len(names)))
    if args.cache_sim:
        print("\nCache misses per call (callgrind --cache-sim: first-level caches the host's size, one last level),"
              " same calls")
        cache_rows = [[n] + ["%.1f" % x for x in misses[n]] for n in names if misses.get(n)]
        print(run.fmt_table(["scenario", "I1 misses", "D1 misses", "LL data misses"], cache_rows, "lrrr"))
    if args.functions:
        for name, _, _, fns in results:
            if fns:
                print("\nmodule functions by own instructions per call, %s:" % name)
                for f, v in fns:
                    print("  %8.0f  %s" % (v, f))
    return 0


if __name__ == "__main__":
    sys.exit(main())
