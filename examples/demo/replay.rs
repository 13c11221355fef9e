//! The demo's replay: fixed traffic scenarios sent through every algorithm command of a real redis-server with the
//! module, each call with `AT`, every reply kept. Nothing here decides a request: the server does. `svg.rs` draws
//! from the replies kept here and nothing else.
//!
//! Shared by the `demo` example (examples/demo/main.rs) and its test (tests/demo.rs).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One algorithm command. Adding an algorithm to the demo is one more row in [`ALGORITHMS`].
pub struct Algorithm {
    /// Shown above its column.
    pub label: &'static str,
    /// The command name, sent as the first word.
    pub command: &'static str,
    /// The words sent after the key (before `COST n AT ms`).
    pub params: &'static [&'static str],
    /// Its line in `INFO rl`.
    pub info_field: &'static str,
    /// A command sent once before the replay (RL.CHECK's policy), or empty.
    pub setup: &'static [&'static str],
}

/// Every algorithm command, all at the same rate: 10 per second, bursts of at most 10. RL.LIMIT holds two
/// rules at once, a token bucket and a fixed window, each at that rate: admitted only when both admit;
/// RL.CHECK applies the same two rules stored in Redis as a policy.
/// (CL.THROTTLE is left out: it has no `AT`, and it runs the same GCRA as RL.GCRA.)
pub const ALGORITHMS: &[Algorithm] = &[
    Algorithm {
        label: "token bucket",
        command: "RL.TOKENBUCKET",
        params: &["10", "10", "1000"],
        info_field: "rl_tokenbucket",
        setup: &[],
    },
    Algorithm {
        label: "fixed window",
        command: "RL.FIXED",
        params: &["10", "1000"],
        info_field: "rl_fixed",
        setup: &[],
    },
    Algorithm {
        label: "sliding log",
        command: "RL.SLIDING",
        params: &["10", "1000"],
        info_field: "rl_sliding",
        setup: &[],
    },
    Algorithm { label: "GCRA", command: "RL.GCRA", params: &["9", "10", "1000"], info_field: "rl_gcra", setup: &[] },
    Algorithm {
        label: "sliding counter",
        command: "RL.SLIDINGCOUNTER",
        params: &["10", "1000"],
        info_field: "rl_slidingcounter",
        setup: &[],
    },
    Algorithm {
        label: "RL.LIMIT",
        command: "RL.LIMIT",
        params: &["TOKENBUCKET", "10", "10", "1000", "FIXED", "10", "1000"],
        info_field: "rl_limit",
        setup: &[],
    },
    Algorithm {
        label: "RL.CHECK",
        command: "RL.CHECK",
        params: &["demo-policy"],
        info_field: "rl_check",
        setup: &["RL.POLICY.SET", "demo-policy", "TOKENBUCKET", "10", "10", "1000", "FIXED", "10", "1000"],
    },
];

/// Requests `every_ms` apart from `from_ms` (included) to `to_ms` (excluded), ms from the scenario's start, with
/// costs cycling through `costs`. With `retry_ms`, a rejected request is followed `retry_ms` later instead.
pub struct Phase {
    pub from_ms: u64,
    pub to_ms: u64,
    pub every_ms: u64,
    pub retry_ms: Option<u64>,
    pub costs: &'static [u64],
}

pub struct Scenario {
    pub slug: &'static str,
    pub title: &'static str,
    /// What the client sends, in words.
    pub traffic: &'static str,
    /// The time axis: from, to (ms from the scenario's start; every call falls inside), the width of a bar and
    /// the distance between labelled ticks.
    pub view_ms: (u64, u64),
    pub bin_ms: u64,
    pub tick_ms: u64,
    pub phases: &'static [Phase],
}

const ONE: &[u64] = &[1];

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        slug: "steady",
        title: "Steady traffic over the limit",
        traffic: "20 requests/s (one every 50 ms) for 3 s",
        view_ms: (0, 3000),
        bin_ms: 100,
        tick_ms: 1000,
        phases: &[Phase { from_ms: 0, to_ms: 3000, every_ms: 50, retry_ms: None, costs: ONE }],
    },
    Scenario {
        slug: "boundary",
        title: "A burst across a fixed-window boundary",
        traffic: "20 requests 10 ms apart from 0.9 s to 1.1 s; fixed windows start at every whole second",
        view_ms: (500, 1500),
        bin_ms: 50,
        tick_ms: 500,
        phases: &[Phase { from_ms: 900, to_ms: 1100, every_ms: 10, retry_ms: None, costs: ONE }],
    },
    Scenario {
        slug: "quiet",
        title: "A quiet client, then a burst",
        traffic: "4 requests/s for 2 s, then 30 requests 10 ms apart",
        view_ms: (0, 3000),
        bin_ms: 100,
        tick_ms: 1000,
        phases: &[
            Phase { from_ms: 0, to_ms: 2000, every_ms: 250, retry_ms: None, costs: ONE },
            Phase { from_ms: 2000, to_ms: 2300, every_ms: 10, retry_ms: None, costs: ONE },
        ],
    },
    Scenario {
        slug: "retry",
        title: "A client retrying every 5 ms while rejected",
        traffic: "next request 50 ms after an admission, 5 ms after a rejection; rejections are never counted",
        view_ms: (0, 3000),
        bin_ms: 100,
        tick_ms: 1000,
        phases: &[Phase { from_ms: 0, to_ms: 3000, every_ms: 50, retry_ms: Some(5), costs: ONE }],
    },
    Scenario {
        slug: "weighted",
        title: "Weighted requests (COST > 1)",
        traffic: "one request every 100 ms costing 1, 3, 1, 5, 2 in turn (24 units/s); bars count units",
        view_ms: (0, 3000),
        bin_ms: 100,
        tick_ms: 1000,
        phases: &[Phase { from_ms: 0, to_ms: 3000, every_ms: 100, retry_ms: None, costs: &[1, 3, 1, 5, 2] }],
    },
];

/// One call and the server's reply `[allowed, limit, remaining, retry_after_ms, reset_after_ms]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// ms from the scenario's start (the call was sent with `AT base + at_ms`).
    pub at_ms: u64,
    pub cost: u64,
    pub reply: [i64; 5],
}

impl Call {
    pub fn allowed(&self) -> bool {
        self.reply[0] == 1
    }
}

/// Every call of one scenario through one algorithm, on its own key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub algorithm: usize,
    pub calls: Vec<Call>,
}

impl Trace {
    pub fn offered(&self) -> usize {
        self.calls.len()
    }

    pub fn admitted(&self) -> usize {
        self.calls.iter().filter(|c| c.allowed()).count()
    }

    pub fn rejected(&self) -> usize {
        self.offered() - self.admitted()
    }

    /// The longest run of consecutive rejections: (calls, ms from its first to its last call).
    pub fn longest_rejected_run(&self) -> (usize, u64) {
        let (mut best, mut len, mut first) = ((0, 0), 0, 0);
        for call in &self.calls {
            if call.allowed() {
                len = 0;
                continue;
            }
            if len == 0 {
                first = call.at_ms;
            }
            len += 1;
            if len > best.0 {
                best = (len, call.at_ms - first);
            }
        }
        best
    }
}

/// One trace per scenario and algorithm: `traces[scenario][algorithm]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub traces: Vec<Vec<Trace>>,
}

/// Sends one call, returning the server's 5 integers.
fn call(con: &mut redis::Connection, algorithm: &Algorithm, key: &str, cost: u64, at: u64) -> Result<[i64; 5], String> {
    let mut cmd = redis::cmd(algorithm.command);
    cmd.arg(key).arg(algorithm.params).arg("COST").arg(cost).arg("AT").arg(at);
    let reply: Vec<i64> = cmd.query(con).map_err(|e| format!("{} {key}: {e}", algorithm.command))?;
    reply.try_into().map_err(|r| format!("{} {key}: expected 5 integers, got {r:?}", algorithm.command))
}

/// Replays every scenario through every algorithm, each on a fresh key, at `AT base + t`. `base` must be a
/// multiple of every window (so windows fall on whole seconds of the scenario) and ahead of the server clock
/// (so no key expires during the run): then the replies do not depend on `base`.
pub fn replay(con: &mut redis::Connection, base: u64) -> Result<Run, String> {
    for algorithm in ALGORITHMS.iter().filter(|a| !a.setup.is_empty()) {
        let _: () = redis::cmd(algorithm.setup[0])
            .arg(&algorithm.setup[1..])
            .query(con)
            .map_err(|e| format!("{}: {e}", algorithm.setup.join(" ")))?;
    }
    let mut traces = Vec::new();
    for scenario in SCENARIOS {
        let mut row = Vec::new();
        for (index, algorithm) in ALGORITHMS.iter().enumerate() {
            let key = format!("demo:{}:{}:{}", base, scenario.slug, algorithm.command);
            let mut calls = Vec::new();
            for phase in scenario.phases {
                let (mut t, mut n) = (phase.from_ms, 0);
                while t < phase.to_ms {
                    let cost = phase.costs[n % phase.costs.len()];
                    let reply = call(con, algorithm, &key, cost, base + t)?;
                    let next = match phase.retry_ms {
                        Some(retry) if reply[0] == 0 => retry,
                        _ => phase.every_ms,
                    };
                    calls.push(Call { at_ms: t, cost, reply });
                    t += next;
                    n += 1;
                }
            }
            row.push(Trace { algorithm: index, calls });
        }
        traces.push(row);
    }
    Ok(Run { traces })
}

/// A time `base` for [`replay`]: the next whole minute at least a minute after the server's clock (`TIME`), so no
/// key expires while a slow machine replays, and well within how far ahead of the clock a client may set `AT`.
pub fn base_after_server_clock(con: &mut redis::Connection) -> Result<u64, String> {
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query(con).map_err(|e| format!("TIME: {e}"))?;
    let now_ms = secs * 1000 + micros / 1000;
    Ok((now_ms + 60_000).div_ceil(60_000) * 60_000)
}

/// One `INFO rl` line: `rl_sliding:admitted=10,rejected=2,peeks=1,errors=0`, as field -> value.
pub type Counters = BTreeMap<String, u64>;

/// `INFO rl` as line name -> counters, and the raw lines.
pub fn info_rl(con: &mut redis::Connection) -> Result<(BTreeMap<String, Counters>, Vec<String>), String> {
    let text: String = redis::cmd("INFO").arg("rl").query(con).map_err(|e| format!("INFO rl: {e}"))?;
    let mut parsed = BTreeMap::new();
    let mut lines = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| l.starts_with("rl_")) {
        let (name, values) = line.split_once(':').ok_or_else(|| format!("INFO rl: bad line {line}"))?;
        if !values.contains('=') {
            // A plain field (rl_policies:N), not a command's counters.
            lines.push(line.to_string());
            continue;
        }
        let mut counters = Counters::new();
        for pair in values.split(',') {
            let (field, value) = pair.split_once('=').ok_or_else(|| format!("INFO rl: bad line {line}"))?;
            counters.insert(field.to_string(), value.parse().map_err(|_| format!("INFO rl: bad line {line}"))?);
        }
        parsed.insert(name.to_string(), counters);
        lines.push(line.to_string());
    }
    Ok((parsed, lines))
}

/// What the demo counted for one algorithm, as INFO rl would: calls admitted and rejected (the demo sends no peeks
/// and gets no errors; an error stops it).
pub fn expected_counters(run: &Run, algorithm: usize) -> Counters {
    let traces = run.traces.iter().map(|row| &row[algorithm]);
    let (admitted, rejected) = traces.fold((0, 0), |(a, r), t| (a + t.admitted() as u64, r + t.rejected() as u64));
    [("admitted", admitted), ("rejected", rejected), ("peeks", 0), ("errors", 0)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// For each algorithm, `INFO rl` after minus before, or an error naming the first that differs from the demo's count.
pub fn check_info(
    run: &Run,
    before: &BTreeMap<String, Counters>,
    after: &BTreeMap<String, Counters>,
) -> Result<(), String> {
    for (index, algorithm) in ALGORITHMS.iter().enumerate() {
        let expected = expected_counters(run, index);
        let field = algorithm.info_field;
        let after = after.get(field).ok_or_else(|| format!("INFO rl has no {field}"))?;
        let was = |k: &str| before.get(field).and_then(|b| b.get(k)).copied().unwrap_or(0);
        let delta: Counters = after.iter().map(|(k, v)| (k.clone(), v.saturating_sub(was(k)))).collect();
        if delta != expected {
            return Err(format!("INFO rl {field} counted {delta:?} during the run, the demo counted {expected:?}"));
        }
    }
    Ok(())
}

/// A redis-server with the module on a free loopback port, in a temporary directory, without persistence.
pub struct Server {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Server {
    pub fn start(module: &Path) -> Result<Server, String> {
        // Absolute: redis-server changes to its --dir before it loads modules.
        let module = module.canonicalize().map_err(|e| format!("module {}: {e} (make build)", module.display()))?;
        let dir = std::env::temp_dir().join(format!("rl-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut server = Server { port: 0, dir, child: None };
        // A port found free can be taken before redis binds it: try another one then.
        for _attempt in 0..20 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("no free port: {e}"))?
                .port();
            if server.launch(&module, port)? {
                return Ok(server);
            }
        }
        Err(format!("redis-server did not start; see {}", server.dir.join("redis.log").display()))
    }

    fn launch(&mut self, module: &Path, port: u16) -> Result<bool, String> {
        let mut child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--logfile", "redis.log", "--loadmodule"])
            .arg(module)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-server: {e} (make deps installs it)"))?;
        self.port = port;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return Ok(false);
            }
            if let Ok(mut con) = self.conn() {
                if redis::cmd("PING").query::<String>(&mut con).is_ok() {
                    self.child = Some(child);
                    return Ok(true);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Ok(false)
    }

    pub fn conn(&self) -> Result<redis::Connection, String> {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))
            .and_then(|c| c.get_connection())
            .map_err(|e| format!("connect to 127.0.0.1:{}: {e}", self.port))
    }

    /// `SHUTDOWN NOSAVE`, then waits for the process to exit.
    pub fn stop(mut self) {
        if let Ok(mut con) = self.conn() {
            let _ = redis::cmd("SHUTDOWN").arg("NOSAVE").query::<redis::Value>(&mut con);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A whole demo run: the replies, and the server's `INFO rl` lines at the end.
pub struct Report {
    pub run: Run,
    pub port: u16,
    pub info_lines: Vec<String>,
}

/// Starts a server with `module`, replays every scenario, checks `INFO rl` against the replies, stops the server.
pub fn run(module: &Path) -> Result<Report, String> {
    let server = Server::start(module)?;
    let port = server.port;
    let mut con = server.conn()?;
    let (before, _) = info_rl(&mut con)?;
    let base = base_after_server_clock(&mut con)?;
    let run = replay(&mut con, base)?;
    let (after, info_lines) = info_rl(&mut con)?;
    server.stop();
    check_info(&run, &before, &after)?;
    Ok(Report { run, port, info_lines })
}

fn calls(n: usize) -> String {
    format!("{n} call{}", if n == 1 { "" } else { "s" })
}

/// The terminal summary: per scenario and algorithm offered, admitted, rejected and the longest run of
/// rejections; totals per algorithm; then the server's `INFO rl` lines.
pub fn summary(report: &Report) -> String {
    let mut out = String::new();
    let width = ALGORITHMS.iter().map(|a| a.label.len()).max().unwrap_or(0).max("algorithm".len());
    let header = format!(
        "  {:width$}  {:>7}  {:>8}  {:>8}  longest run of rejections\n",
        "algorithm", "offered", "admitted", "rejected"
    );
    let _ = writeln!(
        out,
        "rl demo: {} scenarios through {} algorithm commands on redis-server 127.0.0.1:{}, every call with AT.",
        SCENARIOS.len(),
        ALGORITHMS.len(),
        report.port
    );
    let _ = writeln!(out, "Counts are calls (a weighted call is one call; the picture counts its units).");
    for (index, (scenario, row)) in SCENARIOS.iter().zip(&report.run.traces).enumerate() {
        let _ = writeln!(out, "\n{}. {}\n  {}", index + 1, scenario.title, scenario.traffic);
        out.push_str(&header);
        for trace in row {
            let (run, span) = trace.longest_rejected_run();
            let _ = writeln!(
                out,
                "  {:width$}  {:>7}  {:>8}  {:>8}  {}",
                ALGORITHMS[trace.algorithm].label,
                trace.offered(),
                trace.admitted(),
                trace.rejected(),
                calls(run) + &if run > 1 { format!(" over {span} ms") } else { String::new() },
            );
        }
    }
    let _ = writeln!(out, "\nAll scenarios");
    out.push_str(&header);
    for (index, algorithm) in ALGORITHMS.iter().enumerate() {
        let traces: Vec<&Trace> = report.run.traces.iter().map(|row| &row[index]).collect();
        let offered: usize = traces.iter().map(|t| t.offered()).sum();
        let admitted: usize = traces.iter().map(|t| t.admitted()).sum();
        let longest = traces.iter().map(|t| t.longest_rejected_run().0).max().unwrap_or(0);
        let _ = writeln!(
            out,
            "  {:width$}  {offered:>7}  {admitted:>8}  {:>8}  {}",
            algorithm.label,
            offered - admitted,
            calls(longest)
        );
    }
    let _ = writeln!(out, "\nThe server's own counters (INFO rl), checked equal to the counts above:");
    for line in &report.info_lines {
        let _ = writeln!(out, "  {line}");
    }
    out
}
