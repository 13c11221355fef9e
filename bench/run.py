#!/usr/bin/env python3
"""Benchmark the rl module against SET, INCR and the Lua scripts a user would write instead.

Starts its own redis-server (free loopback port, no persistence) with the module loaded (with
`bench-floor yes`: RL.BENCHFLOOR, the least a limiter write does through the module API), runs
redis-benchmark for every row in every mode, then does the same pipelined with random keys on a
production configuration (appendonly everysec, one replica attached), and prints:
  1. a throughput table: ops/s, p99 latency, ratio to SET and to the floor of the same mode in the same
     run, the server's CPU time per operation (from /proc: schedstat, else stat) and its ratio to SET's and the
     floor's (with a 90% range from resampling the runs, where the floor is the reference), and the targets
     (RL.* >= 0.9x SET; RL.* CPU/op <= 1.15x the floor's, pipelined random keys);
  2. a memory table from MEMORY USAGE: bytes per key, and bytes per entry of a 1,000-entry sliding log.

  python3 bench/run.py            full run (a few minutes on 2 cores)
  python3 bench/run.py --smoke    every row with tiny -n, a few seconds (CI)

Modes: unpipelined (-P 1) and pipelined (-P 16), 50 clients, random keys (-r 100000) or one hot
key; plus "pipelined full": random keys over a small key space whose sliding logs are all full.
In the hot and full modes every sliding-log key (RL.SLIDING and the Lua ZSET log) is pre-filled
with `limit` entries at distinct milliseconds in a 1 h window, so each benchmarked call sees a full
window (and is rejected). Each row runs --repeat times (interleaved); the median run is reported.
Every run is bracketed by runs of the mode's reference row, and its ratios are taken against those
two neighbours, so a drift in the machine's speed during the run does not skew the ratios. The
reference is SET, except in the modes whose target is stated against the floor (pipelined random
keys): there it is the floor, so that ratio is measured directly, not as a quotient of two ratios
to SET (which doubled its noise); x SET is then the row's ratio over SET's ratio to the floor. A run
during which other processes used more than 0.15 CPU is repeated (--retries) after waiting for quiet.

On a machine with 2+ CPUs the server is pinned to CPU 0 and redis-benchmark to CPU 1 (taskset),
so they do not fight over one core. stdlib only.

RL_SERVER and RL_BENCHMARK name another server and benchmark binary (e.g. valkey-server and
valkey-benchmark), as a path or a name on PATH.
"""

import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Throughput targets (ratio to SET in the same mode of the same run).
TARGET_RL = 0.9
TARGET_SLIDING_FULL_10000 = 0.8
# Server CPU per operation of every RL.* row, pipelined with random keys, relative to the floor (RL.BENCHFLOOR)
# in the same mode of the same run.
TARGET_CPU_FLOOR = 1.15
# Memory targets.
TARGET_BYTES_PER_KEY = 64      # token bucket and fixed window, short key name
TARGET_BYTES_PER_ENTRY = 2.5   # sliding log at 1,000 entries (issue 15)

SLIDING_WINDOW_MS = 3_600_000  # long enough that pre-filled logs stay full for the whole run
SLIDING_LIMITS = (10, 1000, 10000)
# Module commands that are not limiters (internal or read-only inspection), so not expected in the table.
NOT_LIMITERS = {"RL.LOADSTATE", "RL.TESTCLOCK", "RL.TESTPANIC", "RL.INFO", "RL.POLICY.SET", "RL.POLICY.GET",
                "RL.POLICY.DEL", "RL.POLICY.LIST"}
FLOOR = "RL.BENCHFLOOR"   # registered with the module option `bench-floor yes` (src/bench_floor.rs)


# --------------------------------------------------------------------------- minimal RESP client

class ReplyError(Exception):
    pass


class Redis:
    def __init__(self, port, host="127.0.0.1", timeout=60):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = self.sock.makefile("rb")

    def close(self):
        try:
            self.rfile.close()
            self.sock.close()
        except OSError:
            pass

    @staticmethod
    def encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, bytes):
                b = a
            else:
                b = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        return b"".join(out)

    def read(self):
        line = self.rfile.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return ReplyError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.rfile.read(n + 2)
            return data[:-2].decode(errors="replace")
        if t == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self.read() for _ in range(n)]
        raise ConnectionError("bad RESP line %r" % line)

    def call(self, *args):
        self.sock.sendall(self.encode(args))
        r = self.read()
        if isinstance(r, ReplyError):
            raise r
        return r

    def pipeline(self, commands, batch=1000):
        """Send commands in batches; return the replies (errors as ReplyError objects)."""
        replies = []
        for i in range(0, len(commands), batch):
            chunk = commands[i:i + batch]
            self.sock.sendall(b"".join(self.encode(c) for c in chunk))
            replies.extend(self.read() for _ in chunk)
        return replies


# --------------------------------------------------------------------------- server

def median_of(values):
    v = sorted(values)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def median_range(values, level=0.9, resamples=2000):
    """Where the median of runs like these falls `level` of the time: a bootstrap interval (the runs
    resampled with replacement, a fixed seed so a report reads the same twice). None under 3 runs."""
    if len(values) < 3:
        return None
    rng = random.Random(1)
    medians = sorted(median_of([rng.choice(values) for _ in values]) for _ in range(resamples))
    return medians[int((1 - level) / 2 * resamples)], medians[int((1 + level) / 2 * resamples) - 1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A redis-server with the module. module_args go after --loadmodule; extra are server options."""

    def __init__(self, module, pin_cpu=None, module_args=(), extra=()):
        self.module = module
        self.pin_cpu = pin_cpu
        self.module_args = list(module_args)
        self.extra = list(extra)
        self.dir = tempfile.mkdtemp(prefix="rl-bench-")
        self.proc = None
        self.port = None

    def start(self, must=True):
        """Starts the server and returns a client; None if it did not start and must is False."""
        exe = tool("RL_SERVER", "redis-server")
        if not exe:
            sys.exit("redis-server not found (make deps installs it; RL_SERVER names another server)")
        for _ in range(5):
            self.port = free_port()
            cmd = [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                   "--dir", self.dir, "--logfile", os.path.join(self.dir, "redis.log")] + self.extra + \
                  ["--loadmodule", self.module] + self.module_args
            if self.pin_cpu is not None:
                cmd = ["taskset", "-c", str(self.pin_cpu)] + cmd
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            deadline = time.time() + 10
            while time.time() < deadline and self.proc.poll() is None:
                try:
                    r = Redis(self.port, timeout=2)
                    if r.call("PING") == "PONG":
                        return r
                    r.close()
                except (OSError, ReplyError):
                    time.sleep(0.05)
            log = self.log_tail()
            self.stop()
            if "already in use" not in log:
                break       # e.g. the module failed to load: retrying will not help
            # the port was taken between free_port() and the bind: retry on another
        if not must:
            return None
        sys.exit("redis-server did not start; log:\n" + self.log_tail())

    def log_tail(self):
        try:
            with open(os.path.join(self.dir, "redis.log")) as f:
                return "".join(f.readlines()[-30:])
        except OSError:
            return "(no log)"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------- rows and modes

class Mode:
    def __init__(self, name, pipeline, keyspace, full, rows, cpu_target=False):
        self.name = name
        self.cpu_target = cpu_target   # RL.* rows must stay within TARGET_CPU_FLOOR of the floor's CPU/op
        self.pipeline = pipeline
        self.keyspace = keyspace   # None: one hot key
        self.full = full           # sliding-log keys pre-filled to `limit` entries
        self.rows = rows           # which rows run in this mode: "all", "sliding" or "native" (no Lua)
        self.probe = False         # keys "probe:<prefix>" (reply check before benchmarking)


class Row:
    def __init__(self, name, kind, command, make_args, limit=None, ttl_ms=None):
        self.name = name
        self.kind = kind            # "ref", "floor", "rl" or "lua"
        self.command = command      # the Redis/module command the row needs (presence check)
        self.make_args = make_args  # (key_template, mode, shas) -> argv
        self.limit = limit          # sliding-log limit (pre-fill size), else None
        self.ttl_ms = ttl_ms        # a TTL shorter than a run: random keys are warmed again before each run

    def label(self, mode):
        if self.limit is not None and mode.full:
            return self.name + " full"
        return self.name

    def target(self, mode):
        if self.kind != "rl":
            return None
        if self.command == "RL.SLIDING" and self.limit == 10000 and mode.full:
            return TARGET_SLIDING_FULL_10000
        return TARGET_RL


LIMIT2 = "RL.LIMIT 2 rules"


def limit_against_two_calls(records):
    """RL.LIMIT of 2 rules against the RL.TOKENBUCKET and RL.FIXED calls it replaces, per mode: server CPU
    per op of the one call over the sum of the two. Returns (table rows, passes, fails)."""
    rows, passes, fails = [], 0, []
    by = {(r["mode"], r["row"]): r for r in records}
    for (mode, name), rec in by.items():
        bucket, fixed = by.get((mode, "RL.TOKENBUCKET")), by.get((mode, "RL.FIXED"))
        if name != LIMIT2 or not bucket or not fixed:
            continue
        two = bucket["server_cpu_us_per_op"] + fixed["server_cpu_us_per_op"]
        ratio = rec["server_cpu_us_per_op"] / two if two > 0 else None
        ok = ratio is not None and ratio < 1
        passes += ok
        if not ok:
            fails.append("%s [%s] costs %s of the two calls it replaces" % (LIMIT2, mode, ratio))
        rows.append([mode, "%.2f" % rec["server_cpu_us_per_op"], "%.2f" % two,
                     "%.2fx" % ratio if ratio is not None else "-", "PASS" if ok else "FAIL"])
    return rows, passes, fails


def key(prefix, mode):
    """Key for a row in a mode: random (__rand_int__, expanded by redis-benchmark -r) or hot."""
    if mode.probe:
        return "probe:" + prefix
    if mode.keyspace is None:
        return prefix + ":hot"
    if mode.full:
        return "full" + prefix + ":__rand_int__"
    return prefix + ":__rand_int__"


def sliding_rows():
    rows = []
    for lim in SLIDING_LIMITS:
        rows.append(Row("RL.SLIDING %d" % lim, "rl", "RL.SLIDING",
                        lambda m, s, lim=lim: ["RL.SLIDING", key("sl%d" % lim, m), lim, SLIDING_WINDOW_MS],
                        limit=lim))
    for lim in SLIDING_LIMITS:
        rows.append(Row("Lua sliding log (ZSET) %d" % lim, "lua", "EVALSHA",
                        lambda m, s, lim=lim: ["EVALSHA", s["sliding_log"], 1, key("lsl%d" % lim, m), lim,
                                               SLIDING_WINDOW_MS,
                                               "__rand_int__" if m.keyspace else "h"],
                        limit=lim))
    return rows


# Parameters: 1,000 at once, then 1 per hour (the fixed window: 1,000 per day, aligned to UTC midnight). Under
# them a key stays alive for the whole run (each admitted call leaves at least an hour of TTL), so random keys
# are updates of live limiters, not creations and expiries (with "100 at once, 10 per s" a key was idle again
# 100 ms after a call, and most calls created a key). With one hot key the bucket and GCRA run dry after 1,000
# calls (rejections from then on), the fixed window admits.
ROWS = [
    Row("PING", "ref", "PING", lambda m, s: ["PING"]),
    Row("SET", "ref", "SET", lambda m, s: ["SET", key("set", m), "xxx"]),
    # SET with a TTL: every RL.* key carries an expiry (kept in a second dict), plain SET does not.
    Row("SET PX", "ref", "SET", lambda m, s: ["SET", key("setpx", m), "xxx", "PX", 60000], ttl_ms=60000),
    Row("INCR", "ref", "INCR", lambda m, s: ["INCR", key("incr", m)]),
    # The floor: the least a limiter write does through the module API (src/bench_floor.rs): open the key,
    # store a 32-byte limiter value, expire 60 s ahead, replicate a 6-word RL.FIXED (with AT), reply 5 integers.
    Row(FLOOR, "floor", FLOOR, lambda m, s: [FLOOR, key("floor", m)], ttl_ms=60000),
    # The same write with the value boxed (the 32 bytes point to a 192-byte value, as a sliding log's past 3
    # entries do): what a value outside the 32-byte size class costs with nothing else changed. No target.
    Row(FLOOR + " BOXED", "floor", FLOOR, lambda m, s: [FLOOR, key("floorbox", m), "BOXED"], ttl_ms=60000),
    Row("RL.TOKENBUCKET", "rl", "RL.TOKENBUCKET",
        lambda m, s: ["RL.TOKENBUCKET", key("tb", m), 1000, 1, 3600000]),
    Row("RL.FIXED", "rl", "RL.FIXED", lambda m, s: ["RL.FIXED", key("fw", m), 1000, 86400000]),
    # GCRA with the same shape as the token bucket above: 1,000 at once, 1 per hour.
    Row("RL.GCRA", "rl", "RL.GCRA", lambda m, s: ["RL.GCRA", key("gcra", m), 999, 1, 3600000]),
    Row("CL.THROTTLE", "rl", "CL.THROTTLE", lambda m, s: ["CL.THROTTLE", key("cell", m), 999, 1, 3600]),
    Row("RL.SLIDINGCOUNTER", "rl", "RL.SLIDINGCOUNTER",
        lambda m, s: ["RL.SLIDINGCOUNTER", key("sc", m), 1000, 86400000]),
    # The two rules above in one key, all or nothing: it replaces an RL.TOKENBUCKET and an RL.FIXED call.
    Row(LIMIT2, "rl", "RL.LIMIT",
        lambda m, s: ["RL.LIMIT", key("lim", m), "TOKENBUCKET", 1000, 1, 3600000, "FIXED", 1000, 86400000]),
    # The same rules stored as a policy (load_scripts sets it): RL.LIMIT plus the policy lookup.
    Row("RL.CHECK 2 rules", "rl", "RL.CHECK", lambda m, s: ["RL.CHECK", key("chk", m), BENCH_POLICY]),
    Row("Lua token bucket (HASH)", "lua", "EVALSHA",
        lambda m, s: ["EVALSHA", s["token_bucket"], 1, key("ltb", m), 1000, 1, 3600000]),
    Row("Lua fixed window (INCR)", "lua", "EVALSHA",
        lambda m, s: ["EVALSHA", s["fixed_window"], 1, key("lfw", m), 1000, 86400000]),
] + sliding_rows()
# Order in the table: references, RL.* rows, then Lua rows.
ROWS.sort(key=lambda r: {"ref": 0, "floor": 1, "rl": 2, "lua": 3}[r.kind])


def make_modes(full_keys):
    return [
        Mode("unpipelined random", 1, 100000, False, "all"),
        Mode("pipelined random", 16, 100000, False, "all", cpu_target=True),
        Mode("unpipelined hot", 1, None, True, "all"),
        Mode("pipelined hot", 16, None, True, "all"),
        Mode("pipelined full%d" % full_keys, 16, full_keys, True, "sliding"),
    ]


# The production configuration: appendonly yes (everysec) and one replica attached, so SET pays for
# propagation too. Native rows only (the Lua rows would take most of the time).
PROD_NAME = "aof+replica"


def make_prod_modes():
    return [Mode("%s pipelined random" % PROD_NAME, 16, 100000, False, "native", cpu_target=True)]


def reference(mode, mode_rows):
    """The row every run of a mode is bracketed by: the floor where the target is stated against the floor's
    CPU per op (so that ratio is taken directly against the floor runs seconds away), else SET."""
    by_name = {r.name: r for r in mode_rows}
    return by_name[FLOOR] if mode.cpu_target and FLOOR in by_name else by_name["SET"]


def rows_for(mode, rows):
    if mode.rows == "sliding":
        return [r for r in rows if r.name == "SET" or r.limit is not None]
    if mode.rows == "native":
        return [r for r in rows if r.kind != "lua" and r.name != "PING"]
    return rows


# --------------------------------------------------------------------------- setup helpers

PREFILL_RL = """
local n, window, t0 = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 1, n do redis.call('RL.SLIDING', KEYS[1], n, window, 'AT', t0 + i) end
return n
"""

# Same member format as bench/sliding_log.lua: "<sec><usec, 6 digits>:<request id>".
PREFILL_ZSET = """
local n, window, t0 = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 1, n do
  local ms = t0 + i
  redis.call('ZADD', KEYS[1], ms, math.floor(ms / 1000) .. string.format('%06d', (ms % 1000) * 1000) .. ':p' .. i)
end
redis.call('PEXPIRE', KEYS[1], window)
return n
"""


def server_ms(r):
    sec, usec = r.call("TIME")
    return int(sec) * 1000 + int(usec) // 1000


def full_keys_for(mode, prefix):
    if mode.keyspace is None:
        return [prefix + ":hot"]
    return ["full%s:%012d" % (prefix, i) for i in range(mode.keyspace)]


def prefill(r, modes, have_sliding):
    """Fill every sliding-log key used by the hot/full modes with `limit` entries at distinct ms."""
    t0 = server_ms(r) - max(SLIDING_LIMITS) - 1000   # all entries in the recent past
    for mode in modes:
        if not mode.full:
            continue
        for lim in SLIDING_LIMITS:
            if have_sliding:
                for k in full_keys_for(mode, "sl%d" % lim):
                    r.call("DEL", k)
                    r.call("EVAL", PREFILL_RL, 1, k, lim, SLIDING_WINDOW_MS, t0)
            for k in full_keys_for(mode, "lsl%d" % lim):
                r.call("DEL", k)
                r.call("EVAL", PREFILL_ZSET, 1, k, lim, SLIDING_WINDOW_MS, t0)


def check_full(r, modes, have_sliding):
    """Every pre-filled log must still be full (each benchmarked call was a rejection on a full window)."""
    bad = []
    for mode in modes:
        if not mode.full:
            continue
        for lim in SLIDING_LIMITS:
            keys = full_keys_for(mode, "sl%d" % lim)
            if have_sliding:
                reps = r.pipeline([["RL.SLIDING", k, lim, SLIDING_WINDOW_MS, "DRYRUN"] for k in keys])
                bad += [k for k, x in zip(keys, reps) if not (isinstance(x, list) and x[0] == 0 and x[2] == 0)]
            keys = full_keys_for(mode, "lsl%d" % lim)
            reps = r.pipeline([["ZCARD", k] for k in keys])
            bad += [k for k, x in zip(keys, reps) if x != lim]
    return bad


def probe_all(r, modes, rows, shas, errors):
    """Probes every row of every mode; raises with all the failures if any row's reply is wrong."""
    for mode in modes:
        for row in rows_for(mode, rows):
            e = probe(r, row, mode, shas)
            if e:
                errors.append("%s [%s]: %s" % (row.label(mode), mode.name, e))
    if errors:
        raise RuntimeError("\n".join(errors))


def probe(r, row, mode, shas):
    """Run the row's command once on a throwaway key; redis-benchmark does not check replies."""
    pm = Mode("probe", 1, None, False, "all")
    pm.probe = True
    reply = r.pipeline([row.make_args(pm, shas)])[0]
    if isinstance(reply, ReplyError):
        return "error reply: %s" % reply
    if row.kind in ("rl", "lua", "floor"):
        if not (isinstance(reply, list) and len(reply) == 5 and all(isinstance(x, int) for x in reply)):
            return "unexpected reply: %r" % (reply,)
    return None


NOISE_CPU = 0.15   # CPUs used by other processes during a run above which the run is repeated


def proc_cpu(pid):
    """CPU time of a process (all its threads), in s: the sum of /proc/<pid>/task/*/schedstat's first field
    (ns on CPU), else utime + stime from /proc/<pid>/stat (the same quantity in 10 ms ticks: a 0.3 s run
    would be 30 ticks, too coarse for ratios near 1). A thread that exited between runs is not counted in
    either snapshot, which is fine: redis-server's threads live as long as the server. 0 if unreadable."""
    try:
        total = 0
        for task in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/schedstat" % (pid, task)) as f:
                total += int(f.read().split()[0])
        return total / 1e9
    except (OSError, IndexError, ValueError):
        pass
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read().rsplit(")", 1)[1].split()
        return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def cpu_snapshot(server_pids):
    """(wall s, busy CPU s of the whole machine, CPU s of the servers + this process + its children,
    [CPU s of each server])."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    busy = (sum(v[:8]) - v[3] - v[4]) / hz          # all but idle and iowait (guest is counted in user)
    servers = [proc_cpu(pid) for pid in server_pids]
    t = os.times()
    ours = sum(servers) + t.user + t.system + t.children_user + t.children_system
    return time.monotonic(), busy, ours, servers


def other_cpu(a, b):
    """CPUs (0..nproc) used by processes other than ours between two snapshots."""
    wall = b[0] - a[0]
    if wall <= 0:
        return 0.0
    return max(0.0, ((b[1] - a[1]) - (b[2] - a[2])) / wall)


def wait_quiet(server_pids, budget):
    """Wait (at most budget s) until other processes use <= NOISE_CPU over half a second. Returns the time waited."""
    start = time.monotonic()
    while True:
        a = cpu_snapshot(server_pids)
        time.sleep(0.5)
        if other_cpu(a, cpu_snapshot(server_pids)) <= NOISE_CPU or time.monotonic() - start >= budget:
            return time.monotonic() - start


def error_replies(r):
    info = r.call("INFO", "stats")
    m = re.search(r"total_error_replies:(\d+)", info)
    return int(m.group(1)) if m else 0


# --------------------------------------------------------------------------- redis-benchmark

def tool(env, name):
    """The binary named by the environment variable env (a path or a name on PATH), else name on PATH."""
    return shutil.which(os.environ.get(env) or name)


def run_benchmark(port, argv, clients, requests, pipeline, keyspace, pin_cpu):
    exe = tool("RL_BENCHMARK", "redis-benchmark")
    cmd = [exe, "-h", "127.0.0.1", "-p", str(port), "-c", str(clients), "-n", str(requests),
           "-P", str(pipeline), "--csv"]
    if keyspace:
        cmd += ["-r", str(keyspace)]
    cmd += [str(a) for a in argv]
    if pin_cpu is not None:
        cmd = ["taskset", "-c", str(pin_cpu)] + cmd
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise RuntimeError("redis-benchmark failed (%d): %s" % (p.returncode, p.stderr.strip()[-500:]))
    # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    lines = [l for l in p.stdout.splitlines() if l.startswith('"') and not l.startswith('"test"')]
    if not lines:
        raise RuntimeError("no CSV line from redis-benchmark: %r" % p.stdout[-500:])
    f = [x.strip('"') for x in lines[-1].split('","')]
    return {"rps": float(f[1]), "avg": float(f[2]), "p50": float(f[4]), "p95": float(f[5]),
            "p99": float(f[6]), "max": float(f[7])}


# --------------------------------------------------------------------------- cost per call

COST_LOG_ENTRIES = 100_000
# Throughput of a rejected huge COST against COST 1 on the same full log. A scan of the log (the
# bug this row guards against) gives ~0.02x at 100,000 entries; the O(log n) search still scans up
# to one 256-entry index block where COST 1 reads a few entries (run 8: 0.93-0.94x).
TARGET_COST_RATIO = 0.5


def sliding_cost_per_call(r, port, requests, pin_cpu):
    """Rejected RL.SLIDING calls on one full 100,000-entry log (redis-benchmark, 50 clients, -P 16):
    COST 1 against COST limit/2 and COST limit, whose retry_after needs half or all of the log gone,
    and a COST above the limit. Every call must cost O(log n) in the log size, so their throughput
    stays near COST 1's (the mean of the COST 1 runs before and after). Also shows the command's own
    server time (INFO commandstats usec_per_call). Returns (table rows, passes, fails)."""
    n, key = COST_LOG_ENTRIES, "costlog"
    r.call("DEL", key)
    t0 = server_ms(r) - n - 1000   # n entries at distinct ms in the recent past, live for an hour
    r.pipeline([("RL.SLIDING", key, n, SLIDING_WINDOW_MS, "AT", t0 + i) for i in range(n)])

    def run(cost):
        cmd = ["RL.SLIDING", key, n, SLIDING_WINDOW_MS, "COST", cost]
        reply = r.call(*cmd)
        if reply[0] != 0 or reply[2] != 0:
            raise RuntimeError("%s: expected a rejection on a full log, got %r" % (" ".join(map(str, cmd)), reply))
        r.call("CONFIG", "RESETSTAT")
        res = run_benchmark(port, cmd, 50, requests, 16, None, pin_cpu)
        stats = r.call("INFO", "commandstats")
        res["usec"] = float(re.search(r"(?i)cmdstat_rl\.sliding:calls=\d+,usec=\d+,usec_per_call=([0-9.]+)",
                                      stats).group(1))
        return res

    rows, passes, fails = [], 0, []
    before = run(1)
    for cost in (n // 2, n, 10 ** 15):
        res = run(cost)
        after = run(1)
        ratio = res["rps"] / ((before["rps"] + after["rps"]) / 2)
        ok = ratio >= TARGET_COST_RATIO
        passes += ok
        if not ok:
            fails.append("rejected RL.SLIDING COST %d on a %d-entry log: %.2fx COST 1 < %.1fx"
                         % (cost, n, ratio, TARGET_COST_RATIO))
        rows.append(["COST 1", "%.0f" % before["rps"], "%.2f" % before["usec"], "", "", ""])
        rows.append(["COST %d" % cost, "%.0f" % res["rps"], "%.2f" % res["usec"], "%.2fx" % ratio,
                     ">=%.1fx" % TARGET_COST_RATIO, "PASS" if ok else "FAIL"])
        before = after
    rows.append(["COST 1", "%.0f" % before["rps"], "%.2f" % before["usec"], "", "", ""])
    r.call("DEL", key)
    return rows, passes, fails


# --------------------------------------------------------------------------- UPTO batches

UPTO_BATCHES = (1, 10, 100)


def upto_batches(r, port, requests, pin_cpu):
    """Admitted units per second through one Redis core when an edge proxy takes batches with UPTO:
    RL.TOKENBUCKET on random keys whose bucket never runs dry, COST b UPTO (pipelined, 50 clients). Every
    call grants b, so units/s = calls/s * b. Returns table rows."""
    rows, base = [], None
    for batch in UPTO_BATCHES:
        cmd = ["RL.TOKENBUCKET", "upto%d:__rand_int__" % batch, 10 ** 12, 10 ** 12, 1000, "COST", batch, "UPTO"]
        probe = r.call(*[a if a != "upto%d:__rand_int__" % batch else "upto:probe" for a in cmd])
        if len(probe) != 6 or probe[5] != batch:
            raise RuntimeError("%s: expected a grant of %d, got %r" % (" ".join(map(str, cmd)), batch, probe))
        res = run_benchmark(port, cmd, 50, requests, 16, 100000, pin_cpu)
        units = res["rps"] * batch
        base = base or units
        rows.append(["%d" % batch, "%.0f" % res["rps"], "%.0f" % units, "%.1fx" % (units / base)])
    return rows


# --------------------------------------------------------------------------- memory table

def memory_table(r, shas, have):
    """MEMORY USAGE of keys with a short name, created by each command / script."""
    rows = []   # (name, bytes, unit, target)

    def usage(k):
        return r.call("MEMORY", "USAGE", k, "SAMPLES", "0")

    def one(name, argv, target=None, need=None):
        if need and need not in have:
            rows.append((name, None, "B/key", target, "%s not loaded" % need))
            return
        r.call("DEL", "k1")
        r.call(*argv)
        rows.append((name, usage("k1"), "B/key", target, ""))

    one("SET k1 xxx (reference)", ["SET", "k1", "xxx"])
    one("INCR k1 (reference)", ["INCR", "k1"])
    one("RL.TOKENBUCKET", ["RL.TOKENBUCKET", "k1", 100, 10, 1000], TARGET_BYTES_PER_KEY, "RL.TOKENBUCKET")
    one("RL.FIXED", ["RL.FIXED", "k1", 100, 60000], TARGET_BYTES_PER_KEY, "RL.FIXED")
    one("RL.GCRA", ["RL.GCRA", "k1", 99, 10, 1000], None, "RL.GCRA")
    one("CL.THROTTLE", ["CL.THROTTLE", "k1", 99, 10, 1], None, "CL.THROTTLE")
    one("RL.SLIDING (1 entry)", ["RL.SLIDING", "k1", 100, 60000], None, "RL.SLIDING")
    one("Lua token bucket (HASH)", ["EVALSHA", shas["token_bucket"], 1, "k1", 100, 10, 1000])
    one("Lua fixed window (INCR)", ["EVALSHA", shas["fixed_window"], 1, "k1", 100, 60000])
    one("Lua sliding log (ZSET, 1 entry)", ["EVALSHA", shas["sliding_log"], 1, "k1", 100, 60000, "1"])

    n = 1000
    logs = []   # (name, at 1 entry, at n entries, entries actually stored)
    if "RL.SLIDING" in have:
        r.call("DEL", "k1")
        t = server_ms(r)
        r.call("RL.SLIDING", "k1", 100000, SLIDING_WINDOW_MS, "AT", t)
        m1 = usage("k1")
        reps = r.pipeline([["RL.SLIDING", "k1", 100000, SLIDING_WINDOW_MS, "AT", t + i] for i in range(1, n)])
        assert all(isinstance(x, list) and x[0] == 1 for x in reps), reps[:3]
        logs.append(("RL.SLIDING log", m1, usage("k1"), n))
    r.call("DEL", "k1")
    r.call("EVALSHA", shas["sliding_log"], 1, "k1", 100000, SLIDING_WINDOW_MS, "0")
    m1 = usage("k1")
    r.pipeline([["EVALSHA", shas["sliding_log"], 1, "k1", 100000, SLIDING_WINDOW_MS, str(i)] for i in range(1, n)])
    logs.append(("Lua sliding log (ZSET)", m1, usage("k1"), r.call("ZCARD", "k1")))
    r.call("DEL", "k1")
    return rows, logs


# --------------------------------------------------------------------------- output

def fmt_table(headers, rows, align):
    widths = [max(len(str(h)), *(len(str(row[i])) for row in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    def line(cells):
        return "  ".join(str(c).rjust(w) if a == "r" else str(c).ljust(w)
                         for c, w, a in zip(cells, widths, align)).rstrip()
    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    return "\n".join(out)


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def machine_info(r, module):
    info = {}
    info["date"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    info["nproc"] = os.cpu_count()
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for l in f:
                if l.startswith("model name"):
                    cpu = l.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info["cpu"] = cpu or platform.processor()
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        info["memory"] = "%.1f GiB" % (kb / 1024 / 1024)
    except (OSError, ValueError, IndexError):
        info["memory"] = "?"
    info["kernel"] = platform.release()
    m = re.search(r"redis_version:(\S+)", r.call("INFO", "server"))
    info["redis"] = m.group(1) if m else "?"
    m = re.search(r"mem_allocator:(\S+)", r.call("INFO", "memory"))
    info["allocator"] = m.group(1) if m else "?"
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "src", "Cargo.toml"],
                               capture_output=True, text=True).stdout.strip()
        info["commit"] = head + (" (src modified)" if dirty else "")
    except OSError:
        info["commit"] = "?"
    info["module"] = module
    return info


class Runner:
    """Runs rows on one server configuration: runs bracketed by a reference row, noise control, warm-up, CPU
    per op."""

    def __init__(self, args, config, server, r, shas, base_n, bench_cpu, errors, state, replica=None, rr=None):
        self.args, self.config, self.server, self.r, self.shas = args, config, server, r, shas
        self.base_n, self.bench_cpu, self.errors, self.state = base_n, bench_cpu, errors, state
        self.replica, self.rr = replica, rr
        self.results = {}     # (mode name, row name) -> list of runs
        self.warmed = {}   # (row name, keyspace) whose random keys exist -> when they were last created

    def pids(self):
        return [self.server.proc.pid] + ([self.replica.proc.pid] if self.replica else [])

    def requests_for(self, row, mode):
        n = self.base_n
        if row.kind == "lua":
            n //= 3
        if mode.pipeline == 1:
            n //= 3
        return max(n, 10 * self.args.clients)

    def warm(self, row, mode):
        """Random keys: create the row's keys before it is measured, so a run updates live limiters (about 98%
        of the keys exist after 4 calls per key) rather than creating them. A row whose keys live less than a
        run's spacing (the floor and SET PX: 60 s) is warmed again before a run when its last warm-up is more than half
that TTL ago (the floor, the reference of some modes, runs every few seconds). Not measured."""
        if mode.keyspace is None or mode.full or row.name == "PING":
            return
        last = self.warmed.get((row.name, mode.keyspace))
        if last is not None and (row.ttl_ms is None or time.time() - last < row.ttl_ms / 2000):
            return
        n = min(mode.keyspace, self.base_n) * (1 if row.kind == "lua" or self.args.smoke else 4)
        run_benchmark(self.server.port, row.make_args(mode, self.shas), self.args.clients, n, 16, mode.keyspace,
                      self.bench_cpu)
        self.drain()
        self.warmed[(row.name, mode.keyspace)] = time.time()

    def drain(self):
        """With a replica: wait until it has everything, and until the AOF's once-a-second fsync of what was
        written has run (it runs in a thread of the server, after the writes), so both are counted in the
        run that caused them, not in the next one."""
        if self.replica:
            self.r.call("WAIT", 1, 60000)
            if self.args.smoke:   # numbers are not meaningful there: do not wait a second per run
                return
            time.sleep(1.1)
            deadline = time.time() + 10
            while re.search(r"aof_pending_bio_fsync:([1-9])", self.r.call("INFO", "persistence")) \
                    and time.time() < deadline:
                time.sleep(0.05)

    def measure(self, row, mode):
        """One redis-benchmark run of a row, with the CPU used by other processes, by the server (and replica)
        per operation, and error replies."""
        self.warm(row, mode)
        n = self.requests_for(row, mode)
        before = error_replies(self.r)
        snap = cpu_snapshot(self.pids())
        res = run_benchmark(self.server.port, row.make_args(mode, self.shas), self.args.clients, n, mode.pipeline,
                            mode.keyspace, self.bench_cpu)
        self.drain()
        after = cpu_snapshot(self.pids())
        res["other_cpu"] = other_cpu(snap, after)
        res["n"] = n
        res["cpu_us"] = (after[3][0] - snap[3][0]) / n * 1e6
        if self.replica:
            res["replica_cpu_us"] = (after[3][1] - snap[3][1]) / n * 1e6
        errs = error_replies(self.r) - before
        if errs:
            self.errors.append("%s [%s]: %d error replies during the run" % (row.label(mode), mode.name, errs))
        return res

    def quiet_again(self):
        self.state["retried"] += 1
        if self.state["wait"] > 0:
            self.state["wait"] -= wait_quiet(self.pids(), self.state["wait"])

    def measure_reference(self, ref_row, mode):
        """A run of the mode's reference row, repeated (up to --retries) while other processes are busy."""
        for attempt in range(1 + self.args.retries):
            if attempt:
                self.quiet_again()
            res = self.measure(ref_row, mode)
            res["attempts"] = attempt + 1
            if res["other_cpu"] <= NOISE_CPU:
                break
        self.results.setdefault((mode.name, ref_row.name), []).append(res)
        return res

    def run_mode(self, mode, rows):
        """One repetition of every row of a mode. Every row run is bracketed by runs of the mode's reference
        row (REF, A, REF, B, REF, ...: SET, or the floor where the target is stated against the floor), and its
        ratios are taken over the mean of the two reference runs around it: the machine's speed drifts (other
        guests, other processes), and the runs seconds away see the same drift."""
        mode_rows = rows_for(mode, rows)
        ref_row = reference(mode, mode_rows)
        before = self.measure_reference(ref_row, mode)
        for row in mode_rows:
            if row is ref_row:
                continue
            best = None
            for attempt in range(1 + self.args.retries):
                if attempt:   # the last run was noisy: wait for quiet, re-measure the reference before it
                    self.quiet_again()
                    before = self.measure_reference(ref_row, mode)
                res = self.measure(row, mode)
                res["attempts"] = attempt + 1
                res["ref_before"] = before["rps"]
                res["ref_cpu_before"] = before["cpu_us"]
                if best is None or res["other_cpu"] < best["other_cpu"]:
                    best = res
                if res["other_cpu"] <= NOISE_CPU:
                    break
            after = self.measure_reference(ref_row, mode)
            best["ref_after"] = after["rps"]
            best["ratio"] = best["rps"] / ((best["ref_before"] + best["ref_after"]) / 2)
            ref_cpu = (best["ref_cpu_before"] + after["cpu_us"]) / 2
            best["cpu_ratio"] = best["cpu_us"] / ref_cpu if ref_cpu > 0 else None
            self.results.setdefault((mode.name, row.name), []).append(best)
            before = after


def start_production(module, pin, module_args):
    """A master with appendonly yes (everysec) and a replica attached, both with the module. The master is
    pinned like the default server (CPU 0); the replica shares CPU 1 with redis-benchmark, so the master's
    CPU is its own. Automatic AOF rewrites are off (a rewrite forks a child onto the master's CPU mid-run)
    and the replica's output buffer is unlimited (a slow replica must not be disconnected and resynced)."""
    master = Server(module, pin_cpu=0 if pin else None, module_args=module_args,
                    extra=["--appendonly", "yes", "--appendfsync", "everysec", "--auto-aof-rewrite-percentage", "0",
                           "--client-output-buffer-limit", "replica 0 0 0"])
    r = master.start()
    replica = Server(module, pin_cpu=1 if pin else None, module_args=module_args,
                     extra=["--replicaof", "127.0.0.1", str(master.port)])
    rr = replica.start()
    deadline = time.time() + 30
    while "master_link_status:up" not in rr.call("INFO", "replication"):
        if time.time() > deadline:
            raise RuntimeError("the replica did not link to the master:\n" + replica.log_tail())
        time.sleep(0.1)
    return master, r, replica, rr


BENCH_POLICY = "bench-2-rules"


def load_scripts(r):
    """Loads the Lua scripts (returns their SHAs) and, with the module's policies, the RL.CHECK row's policy."""
    if "rl.policy.set" in {c.lower() for c in r.call("COMMAND", "LIST", "FILTERBY", "MODULE", "rl") or []}:
        r.call("RL.POLICY.SET", BENCH_POLICY, "TOKENBUCKET", 1000, 1, 3600000, "FIXED", 1000, 86400000)
    shas = {}
    for name in ("token_bucket", "fixed_window", "sliding_log"):
        with open(os.path.join(HERE, name + ".lua")) as f:
            shas[name] = r.call("SCRIPT", "LOAD", f.read())
    return shas


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny -n, one repeat, few full keys: seconds")
    ap.add_argument("--module", default=os.environ.get("RL_MODULE", os.path.join(ROOT, "target/release/librl.so")))
    ap.add_argument("--repeat", type=int, default=None, help="runs per row, median reported (default 3, smoke 1)")
    ap.add_argument("--requests", type=int, default=None,
                    help="-n for native pipelined rows (others scale from it; default 200000, smoke 10000)")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--full-keys", type=int, default=None, help="keys in the 'pipelined full' mode (default 100)")
    ap.add_argument("--only", default=None, help="regex: only rows whose name matches (SET and the floor always run)")
    ap.add_argument("--modes", default=None, help="regex: only modes whose name matches")
    ap.add_argument("--no-production", action="store_true",
                    help="skip the production configuration (appendonly everysec + one replica)")
    ap.add_argument("--retries", type=int, default=None,
                    help="repeat a run up to this many times while other processes use > %.2f CPU "
                         "(default 2, smoke 0)" % NOISE_CPU)
    ap.add_argument("--wait", type=float, default=None,
                    help="total seconds the run may wait for other processes to go quiet before runs "
                         "(default 300, smoke 0)")
    ap.add_argument("--no-pin", action="store_true", help="do not pin server/benchmark to CPUs 0/1")
    ap.add_argument("--json", default=None, help="also write all results to this file")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed (errors always exit 1)")
    args = ap.parse_args()

    repeat = args.repeat or (1 if args.smoke else 3)
    if args.retries is None:
        args.retries = 0 if args.smoke else 2
    base_n = args.requests or (10000 if args.smoke else 200000)
    full_keys = args.full_keys or (5 if args.smoke else 100)
    if not os.path.exists(args.module):
        sys.exit("module not found: %s (run `make build`)" % args.module)
    for env, exe in (("RL_SERVER", "redis-server"), ("RL_BENCHMARK", "redis-benchmark")):
        if not tool(env, exe):
            sys.exit("%s not found (make deps installs it; or set %s)" % (os.environ.get(env) or exe, env))

    pin = not args.no_pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    module = os.path.abspath(args.module)
    module_args = ["bench-floor", "yes"]
    server = Server(module, pin_cpu=0 if pin else None, module_args=module_args)
    bench_cpu = 1 if pin else None
    prod = []   # servers of the production configuration, stopped in `finally`

    def on_signal(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    errors = []
    try:
        r = server.start(must=False)
        if r is None:   # a module without the bench-floor option: no floor row
            module_args = []
            server.cleanup()
            server = Server(module, pin_cpu=0 if pin else None)
            r = server.start()
        info = machine_info(r, server.module)
        listed = r.call("COMMAND", "LIST", "FILTERBY", "MODULE", "rl") or []
        have = {c.upper() for c in listed} | {"PING", "SET", "INCR", "EVALSHA"}
        shas = load_scripts(r)

        rows = [x for x in ROWS if x.command in have]
        skipped = sorted({x.command for x in ROWS if x.command not in have})
        if args.only:
            rows = [x for x in rows if x.name in ("SET", FLOOR) or re.search(args.only, x.name)]
        unbenched = sorted(c.upper() for c in listed
                           if c.upper() not in {x.command for x in ROWS} | NOT_LIMITERS)
        have_floor = FLOOR in have

        print("rl benchmark%s: %s" % (" (smoke)" if args.smoke else "", info["date"]))
        print("machine: %s CPUs, %s, %s RAM, Linux %s" % (info["nproc"], info["cpu"], info["memory"], info["kernel"]))
        print("server: Redis %s (%s), port %d, %s; module %s at %s" % (
            info["redis"], info["allocator"], server.port,
            "server on CPU 0, redis-benchmark on CPU 1" if pin else "not pinned", info["module"], info["commit"]))
        print("redis-benchmark -c %d; -n %d pipelined native rows (Lua /3, unpipelined /3); %d run(s) per row, median"
              % (args.clients, base_n, repeat))
        if args.smoke:
            print("SMOKE RUN: request counts are tiny, so ops/s, ratios, CPU/op and PASS/FAIL are NOT meaningful")
        for c in skipped:
            print("note: %s is not loaded; its rows are skipped" % c)
        if not have_floor:
            print("note: the module has no `bench-floor` option (RL.BENCHFLOOR): no floor row, no x floor ratios")
        for c in unbenched:
            print("note: %s is loaded but has no row yet: add it to ROWS in bench/run.py" % c)
        print("load average at start: %s (other processes on these CPUs skew the numbers)" % loadavg())
        sys.stdout.flush()

        # Memory first, on an almost empty server.
        mem_rows, mem_logs = memory_table(r, shas, have)

        modes = make_modes(full_keys)
        prod_modes = [] if args.no_production else make_prod_modes()
        if args.modes:
            modes = [m for m in modes if re.search(args.modes, m.name)]
            prod_modes = [m for m in prod_modes if re.search(args.modes, m.name)]
        r.call("FLUSHALL")
        t = time.time()
        prefill(r, modes, "RL.SLIDING" in have)
        print("pre-filled full sliding logs in %.1fs" % (time.time() - t))
        sys.stdout.flush()

        # Refuse to benchmark a command whose reply is an error or malformed.
        probe_all(r, modes, rows, shas, errors)

        state = {"retried": 0, "wait": args.wait if args.wait is not None else (0 if args.smoke else 300)}
        runner = Runner(args, "default", server, r, shas, base_n, bench_cpu, errors, state)
        t = time.time()
        for rep in range(repeat):
            for mode in modes:
                runner.run_mode(mode, rows)
            print("run %d/%d done (%.0fs, %d noisy runs repeated so far, %.0fs of waiting for quiet left)"
                  % (rep + 1, repeat, time.time() - t, state["retried"], state["wait"]))
            sys.stdout.flush()
        if not server.alive():
            raise RuntimeError("redis-server died during the run:\n" + server.log_tail())
        bad = check_full(r, modes, "RL.SLIDING" in have)
        if bad:
            errors.append("sliding logs not full after the run: %s" % ", ".join(bad[:5]))
        results = dict(runner.results)
        # Cost per call of the sliding log, on this server before it stops.
        cost = None
        if "RL.SLIDING" in have and (not args.only or re.search(args.only, "RL.SLIDING COST")):
            cost = sliding_cost_per_call(r, server.port, base_n, bench_cpu)
        upto = None
        if "RL.TOKENBUCKET" in have and (not args.only or re.search(args.only, "UPTO")):
            upto = upto_batches(r, server.port, base_n, bench_cpu)
        server.stop()   # frees its memory (and CPU 0) for the production configuration

        if prod_modes:
            master, pr, replica, rr = start_production(module, pin, module_args)
            prod += [master, replica]
            pshas = load_scripts(pr)
            probe_all(pr, prod_modes, rows, pshas, errors)
            prunner = Runner(args, PROD_NAME, master, pr, pshas, base_n, bench_cpu, errors, state, replica, rr)
            t = time.time()
            for rep in range(repeat):
                for mode in prod_modes:
                    prunner.run_mode(mode, rows)
                print("%s run %d/%d done (%.0fs, %d noisy runs repeated so far)"
                      % (PROD_NAME, rep + 1, repeat, time.time() - t, state["retried"]))
                sys.stdout.flush()
            if not (master.alive() and replica.alive()):
                raise RuntimeError("a server of the production configuration died:\n" + master.log_tail() +
                                   replica.log_tail())
            if "master_link_status:up" not in rr.call("INFO", "replication"):
                errors.append("the replica lost its link to the master during the run")
            results.update(prunner.results)

        # ------------------------------------------------------------------ throughput table
        table, records, fails, passes, noisy_rows, undecided = [], [], [], 0, 0, []
        for mode in modes + prod_modes:
            mode_rows = rows_for(mode, rows)
            ref_name = reference(mode, mode_rows).name

            def to_reference(name):
                """(ops/s, CPU per op) of a row relative to the mode's reference row: 1 for the reference
                itself, else the median over its runs of each run's ratio to the reference runs around it."""
                if name == ref_name:
                    return 1.0, 1.0
                runs = results.get((mode.name, name))
                if not runs:
                    return None, None
                cpu = [x["cpu_ratio"] for x in runs if x["cpu_ratio"]]
                return median_of([x["ratio"] for x in runs]), median_of(cpu) if cpu else None

            set_ratio, set_cpu = to_reference("SET")
            floor_ratio, floor_cpu = to_reference(FLOOR)
            for row in mode_rows:
                runs = sorted(results[(mode.name, row.name)], key=lambda x: x["rps"])
                med = runs[len(runs) // 2]   # the median run (upper median for an even count)
                rps = med["rps"]
                row_ratio, row_cpu = to_reference(row.name)
                ratio = row_ratio / set_ratio
                cpu_ratio = row_cpu / set_cpu if row_cpu and set_cpu else 0
                cpu_us = median_of([x["cpu_us"] for x in runs])
                x_floor = row_ratio / floor_ratio if floor_ratio else None
                cpu_x_floor = row_cpu / floor_cpu if floor_cpu and row_cpu else None
                target = row.target(mode)
                verdict = ""
                if target is not None and ratio is not None:
                    ok = ratio >= target
                    verdict = "PASS" if ok else "FAIL"
                    if ok:
                        passes += 1
                    else:
                        fails.append("%s [%s] %.3fx SET < %.1fx" % (row.label(mode), mode.name, ratio, target))
                # Where the floor is the reference, each run has its own ratio to it: how far the median
                # could move is then known, and a target inside that range is not decided by this run.
                cpu_range = None
                if ref_name == FLOOR and row.name != FLOOR:
                    cpu_range = median_range([x["cpu_ratio"] for x in runs if x["cpu_ratio"]])
                cpu_verdict = ""
                if row.kind == "rl" and mode.cpu_target and cpu_x_floor is not None:
                    if cpu_range and cpu_range[0] <= TARGET_CPU_FLOOR <= cpu_range[1]:
                        undecided.append("%s [%s]" % (row.label(mode), mode.name))
                    ok = cpu_x_floor <= TARGET_CPU_FLOOR
                    cpu_verdict = "PASS" if ok else "FAIL"
                    if ok:
                        passes += 1
                    else:
                        fails.append("%s [%s] CPU/op %.3fx floor > %.2fx"
                                     % (row.label(mode), mode.name, cpu_x_floor, TARGET_CPU_FLOOR))
                noisy = med["other_cpu"] > NOISE_CPU
                noisy_rows += noisy
                replica_us = median_of([x["replica_cpu_us"] for x in runs]) if "replica_cpu_us" in med else None
                table.append([row.label(mode), mode.name, "%.0f" % rps, "%.3f" % med["p99"],
                              "%.2fx" % ratio, verdict,
                              "%.2fx" % x_floor if x_floor is not None else "-",
                              "%.2f" % cpu_us, "%.2fx" % cpu_ratio,
                              "%.2fx" % cpu_x_floor if cpu_x_floor is not None else "-",
                              "%.2f-%.2f" % cpu_range if cpu_range else "", cpu_verdict,
                              "%.2f" % replica_us if replica_us is not None else "",
                              "%.2f%s" % (med["other_cpu"], " !" if noisy else "")])
                records.append({"row": row.label(mode), "mode": mode.name, "rps": rps, "p50_ms": med["p50"],
                                "p99_ms": med["p99"], "other_cpu": med["other_cpu"], "ratio_to_set": ratio,
                                "target": target, "pass": (verdict == "PASS") if verdict else None,
                                "ratio_to_floor": x_floor, "server_cpu_us_per_op": cpu_us,
                                "cpu_ratio_to_set": cpu_ratio, "cpu_ratio_to_floor": cpu_x_floor,
                                "cpu_ratio_to_floor_range": list(cpu_range) if cpu_range else None,
                                "cpu_target": TARGET_CPU_FLOOR if cpu_verdict else None,
                                "cpu_pass": (cpu_verdict == "PASS") if cpu_verdict else None,
                                "replica_cpu_us_per_op": replica_us, "runs": runs})
        print()
        print("Throughput: ops/s and p99 of the median of %d runs per row (the reference: of all its bracketing runs).\n"
              "Every run is bracketed by runs of its mode's reference row: the floor (%s) in the modes with a CPU\n"
              "target, else SET. A row's ratio to the reference = median over its runs of its ops/s (or CPU per op)\n"
              "over the mean of the two reference runs around it. x SET = that ratio over SET's, target >=%.1fx;\n"
              "x floor = that ratio over the floor's (directly measured where the floor is the reference).\n"
              "CPU us/op = the server's CPU time (all threads; /proc/<pid>/task/*/schedstat in ns, else\n"
              "utime+stime of /proc/<pid>/stat) during the run / requests, median; CPU x SET and CPU x floor as\n"
              "above, target CPU x floor <=%.2fx for RL.* pipelined with random keys; 90%% range = where the\n"
              "median of CPU x floor falls 90%% of the time, by resampling the runs (where the floor is the\n"
              "reference). replica = the replica's CPU us/op (%s). other = CPUs used by other processes during\n"
              "the median run."
              % (repeat, FLOOR, TARGET_RL, TARGET_CPU_FLOOR, PROD_NAME))
        print(fmt_table(["command", "mode", "ops/s", "p99 ms", "x SET", ">=%.1f" % TARGET_RL, "x floor",
                         "CPU us/op", "CPU x SET", "CPU x floor", "90% range", "<=%.2f" % TARGET_CPU_FLOOR,
                         "replica", "other"],
                        table, "llrrrlrrrrrlrl"))
        if undecided:
            print("%d rows' 90%% range holds the %.2fx target, so their PASS or FAIL is not decided by this run: %s"
                  % (len(undecided), TARGET_CPU_FLOOR, ", ".join(undecided)))
        if noisy_rows:
            print("! %d rows were measured while other processes used > %.2f CPU: their numbers are suspect"
                  % (noisy_rows, NOISE_CPU))
        # ------------------------------------------------------------------ memory table
        mt = []
        for name, b, unit, target, note in mem_rows:
            verdict = ""
            if target is not None and b is not None:
                verdict = "PASS" if b <= target else "FAIL"
                if verdict == "PASS":
                    passes += 1
                else:
                    fails.append("%s %d B/key > %d" % (name, b, target))
            mt.append([name, b if b is not None else "-", "per key", "<=%d" % target if target else "", verdict or note])
        for name, m1, mn, entries in mem_logs:
            per = mn / entries
            marginal = (mn - m1) / (entries - 1)
            target = TARGET_BYTES_PER_ENTRY if name.startswith("RL.") else None
            verdict = ""
            if target is not None:
                verdict = "PASS" if per <= target else "FAIL"
                if verdict == "PASS":
                    passes += 1
                else:
                    fails.append("%s %.2f B/entry > %g" % (name, per, target))
            mt.append(["%s, %d entries" % (name, entries), mn, "total", "", ""])
            mt.append(["", "%.2f" % per, "per entry (total/%d)" % entries, "<=%g" % target if target else "", verdict])
            mt.append(["", "%.2f" % marginal, "per added entry (%d - 1 entry)/%d" % (entries, entries - 1), "", ""])
        print()
        print("Memory (MEMORY USAGE <key> SAMPLES 0, key name \"k1\")")
        print(fmt_table(["structure", "bytes", "", "target", ""], mt, "lrlll"))

        limit_rows, limit_passes, limit_fails = limit_against_two_calls(records)
        if limit_rows:
            passes += limit_passes
            fails += limit_fails
            print()
            print("RL.LIMIT of 2 rules (TOKENBUCKET + FIXED) against the two single calls it replaces: server CPU\n"
                  "us per op, target < 1x")
            print(fmt_table(["mode", "RL.LIMIT", "TOKENBUCKET + FIXED", "x", ""], limit_rows, "lrrrl"))
        if upto:
            print()
            print("UPTO: admitted units per second through one Redis core, batches of b units per call\n"
                  "(RL.TOKENBUCKET COST b UPTO on random keys that never run dry, pipelined)")
            print(fmt_table(["b", "calls/s", "units/s", "x b=1"], upto, "rrrr"))
        if cost:
            cost_rows, cost_passes, cost_fails = cost
            passes += cost_passes
            fails += cost_fails
            print()
            print("Cost per call: rejected RL.SLIDING on one full %d-entry log, pipelined (x = ops/s over the mean\n"
                  "of the COST 1 runs around it; usec = the command's own server time, INFO commandstats)"
                  % COST_LOG_ENTRIES)
            print(fmt_table(["call", "ops/s", "usec", "x COST 1", "target", ""], cost_rows, "lrrrll"))

        print()
        print("load average at end: %s" % loadavg())
        print("targets: %d pass, %d fail%s" % (passes, len(fails),
                                              " (smoke run: throughput verdicts not meaningful)" if args.smoke else ""))
        for f in fails:
            print("  FAIL " + f)
        for e in errors:
            print("ERROR " + e)

        if args.json:
            with open(args.json, "w") as f:
                json.dump({"machine": info, "smoke": args.smoke, "repeat": repeat, "clients": args.clients,
                           "throughput": records,
                           "memory": [dict(zip(["name", "bytes", "unit", "target", "note"], x)) for x in mem_rows],
                           "sliding_log_memory": [dict(zip(["name", "bytes_1", "bytes_n", "entries"], x))
                                                  for x in mem_logs],
                           "fails": fails, "errors": errors}, f, indent=1)
        if errors:
            return 1
        if args.strict and fails:
            return 1
        return 0
    except (RuntimeError, ReplyError, ConnectionError, subprocess.TimeoutExpired) as e:
        print("ERROR: %s" % e, file=sys.stderr)
        if server.proc is not None and not server.alive():
            print(server.log_tail(), file=sys.stderr)
        return 1
    finally:
        server.cleanup()
        for s in prod:
            s.cleanup()


if __name__ == "__main__":
    sys.exit(main())
