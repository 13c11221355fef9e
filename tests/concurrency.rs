//! Many clients at once on one key: 64 threads, each with its own connection, hammer a limiter of
//! each algorithm with long periods (nothing refills during the test), with costs of 1 to 3.
//! Demand (about 9,000 units, peeks aside) far exceeds the limit (1,000), so exactly the limit must be admitted,
//! every rejected request must really not have fit, and the admissions must be serializable: each
//! admitted request of cost c that left r units claims the units [r, r + c), and those claims
//! never overlap and cover [0, limit) exactly (for cost 1: every `remaining` is distinct).

mod common;
use common::*;

use std::sync::{Arc, Barrier};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const THREADS: usize = 64;
const REQUESTS: usize = 100;
const LIMIT: i64 = 1000;

/// One limiter under test: how to build a request of a given cost, and how to read the reply.
#[derive(Clone)]
struct Target {
    name: &'static str,
    /// The command line without the cost.
    line: String,
    /// CL.THROTTLE: quantity as the last argument and `[limited, ...]` replies; else `COST n` and `[allowed, ...]`.
    cell: bool,
}

impl Target {
    fn rl(name: &'static str, command: &str, key: &str, params: &str, at: Option<i64>) -> Target {
        let at = at.map_or(String::new(), |t| format!(" AT {t}"));
        Target { name, line: format!("{command} {key} {params}{at}"), cell: false }
    }

    fn request(&self, cost: i64) -> String {
        if self.cell {
            format!("{} {cost}", self.line)
        } else {
            format!("{} COST {cost}", self.line)
        }
    }

    /// A peek that must take nothing: DRYRUN with a cost, or COST 0 (CL.THROTTLE has no DRYRUN).
    fn peek(&self, cost: i64) -> String {
        if self.cell {
            format!("{} 0", self.line)
        } else if cost % 2 == 0 {
            format!("{} COST 0", self.line)
        } else {
            format!("{} COST {cost} DRYRUN", self.line)
        }
    }

    /// (admitted, remaining, retry_after) from a reply.
    fn read(&self, reply: [i64; 5]) -> (bool, i64, i64) {
        let allowed = if self.cell { reply[0] == 0 } else { reply[0] == 1 };
        assert_eq!(reply[1], LIMIT, "{}: limit in {reply:?}", self.name);
        (allowed, reply[2], reply[3])
    }
}

/// One request as sent: its cost, whether it was a peek (DRYRUN or cost 0), and the reply.
#[derive(Clone, Copy, Debug)]
struct Call {
    cost: i64,
    peek: bool,
    reply: [i64; 5],
}

/// Every request one thread made on one target, in order.
type Log = Vec<Call>;

/// The five limiters of 1,000 units that do not refill within the test.
/// With `at`, every request is pinned to that time; without, the server clock decides.
fn targets(prefix: &str, at: Option<i64>) -> Vec<Target> {
    let key = |name: &str| format!("{prefix}:{name}");
    let mut targets = vec![
        // 1 token per 10^9 ms (11.6 days).
        Target::rl("token bucket", "RL.TOKENBUCKET", &key("tb"), "1000 1 1000000000", at),
        Target::rl("sliding log", "RL.SLIDING", &key("sl"), "1000 1000000000", at),
        Target::rl("gcra", "RL.GCRA", &key("gc"), "999 1 1000000000", at),
    ];
    // Epoch-aligned windows: with AT pinned any window works; on the clock use 10^13 ms, whose
    // current window [0, 10^13) ends in 2286.
    let window = if at.is_some() { "1000000000" } else { "10000000000000" };
    targets.push(Target::rl("fixed window", "RL.FIXED", &key("fw"), &format!("1000 {window}"), at));
    if at.is_none() {
        // redis-cell's syntax has no AT: 999 + 1 per 10^6 s.
        targets.push(Target {
            name: "CL.THROTTLE",
            line: format!("CL.THROTTLE {} 999 1 1000000", key("cl")),
            cell: true,
        });
    }
    targets
}

/// Costs for `count` requests of one thread: mostly 1, some 2 and 3; the last `tail` are 1 so that
/// the final requests on every key are of cost 1 and the last units get taken.
fn costs(rng: &mut StdRng, count: usize, tail: usize) -> Vec<i64> {
    (0..count).map(|i| if i + tail >= count { 1 } else { [1, 1, 1, 2, 3][rng.gen_range(0..5)] }).collect()
}

/// Runs THREADS clients at once; thread k sends REQUESTS requests per target, round-robin over `targets`
/// (starting at target k, so every key is hit by all threads at the same time).
/// Returns logs[target][thread].
fn hammer(server: &Server, targets: &[Target], rng: &mut StdRng) -> Vec<Vec<Log>> {
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|k| {
            let mut con = server.conn();
            let targets = targets.to_vec();
            let barrier = Arc::clone(&barrier);
            let mut thread_rng = StdRng::seed_from_u64(rng.gen());
            std::thread::spawn(move || {
                let costs = costs(&mut thread_rng, REQUESTS * targets.len(), 3 * targets.len());
                let mut logs: Vec<Log> = vec![Vec::new(); targets.len()];
                barrier.wait();
                let count = costs.len();
                for (i, cost) in costs.into_iter().enumerate() {
                    let t = (k + i) % targets.len();
                    // One in ten is a peek (never among the final cost-1 requests).
                    let peek = i + 3 * targets.len() < count && thread_rng.gen_ratio(1, 10);
                    let line = if peek { targets[t].peek(cost) } else { targets[t].request(cost) };
                    let reply = rl(&mut con, &line);
                    let cost = if line.ends_with(" 0") { 0 } else { cost };
                    logs[t].push(Call { cost, peek, reply });
                }
                logs
            })
        })
        .collect();
    let mut by_target: Vec<Vec<Log>> = vec![Vec::new(); targets.len()];
    for handle in handles {
        let logs = handle.join().expect("client thread");
        for (t, log) in logs.into_iter().enumerate() {
            by_target[t].push(log);
        }
    }
    by_target
}

/// The checks of the file's header on one target's logs.
fn check(con: &mut Connection, target: &Target, logs: &[Log]) {
    let name = target.name;
    let mut claimed: Vec<(i64, i64)> = Vec::new();
    let (mut admitted_units, mut admitted, mut rejected, mut demand, mut peeks) = (0, 0, 0, 0, 0);
    let mut threads_admitted = 0;
    for log in logs {
        // What this client last saw as left: nothing refills, so it only ever goes down.
        let mut left = LIMIT;
        for &Call { cost, peek, reply } in log {
            let (allowed, remaining, retry) = target.read(reply);
            assert!((0..=LIMIT).contains(&remaining), "{name}: {reply:?}");
            // Units available when the call was decided.
            let before = if allowed && !(peek && cost == 0) { remaining + cost } else { remaining };
            assert!(before <= left, "{name}: {before} units left after this client saw {left}: {log:?}");
            if allowed {
                assert_eq!(retry, -1, "{name}: {reply:?}");
            } else {
                // A rejected request really did not fit, and may fit later (cost <= limit).
                assert!(remaining < cost, "{name}: cost {cost} rejected with {remaining} remaining: {reply:?}");
                assert!(retry > 0, "{name}: rejected without a retry time: {reply:?}");
            }
            if peek {
                peeks += 1;
                left = before;
                continue;
            }
            demand += cost;
            if allowed {
                admitted += 1;
                admitted_units += cost;
                claimed.push((remaining, remaining + cost));
                left = remaining;
            } else {
                rejected += 1;
                left = remaining;
            }
        }
    }
    assert!(demand > 5 * LIMIT, "{name}: demand {demand}");
    assert_eq!(
        admitted_units, LIMIT,
        "{name}: admitted {admitted_units} units of {LIMIT} ({admitted} admitted, {rejected} rejected)"
    );
    // Serializable: the admitted claims tile [0, LIMIT) without overlap.
    claimed.sort();
    let mut next = 0;
    for &(from, to) in &claimed {
        assert_eq!(from, next, "{name}: claims overlap or leave a gap at {next}: {claimed:?}");
        next = to;
    }
    assert_eq!(next, LIMIT, "{name}: claims end at {next}");
    // The limiter agrees: nothing left.
    let peek = rl(con, &target.request(0));
    let (allowed, remaining, _) = target.read(peek);
    assert!(allowed && remaining == 0, "{name}: after the test {peek:?}");
    threads_admitted += logs.iter().filter(|log| log.iter().any(|c| !c.peek && target.read(c.reply).0)).count();
    // The clients really ran at the same time: the limit was shared among many of them.
    assert!(threads_admitted >= 8, "{name}: only {threads_admitted} clients got admissions");
    println!(
        "{name}: {admitted} admitted ({admitted_units} units) to {threads_admitted} clients, {rejected} rejected, {peeks} peeks"
    );
}

/// Calls of each command counted by INFO rl: (admitted, rejected) for `rl_<name>`.
fn counters(con: &mut Connection, name: &str) -> (i64, i64) {
    let line = info_field(con, "rl", name);
    let field = |f: &str| {
        line.split(',')
            .find_map(|kv| kv.strip_prefix(f).and_then(|v| v.strip_prefix('=')))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("INFO rl {name}: no {f} in {line:?}"))
    };
    (field("admitted"), field("rejected"))
}

fn run_targets(prefix: &str, at: Option<i64>, seed_name: &str) {
    let mut rng = seeded_rng(seed_name);
    let server = Server::start(&[]);
    let mut con = server.conn();
    let targets = targets(prefix, at);
    let logs = hammer(&server, &targets, &mut rng);
    for (target, logs) in targets.iter().zip(&logs) {
        assert_eq!(logs.len(), THREADS);
        check(&mut con, target, logs);
    }
    assert_eq!(redis::cmd("PING").query::<String>(&mut con).expect("PING"), "PONG");
}

/// All threads on all five keys at once, every request pinned to one time with AT.
#[test]
fn sixty_four_clients_admit_exactly_the_limit_with_at_pinned() {
    run_targets("pinned", Some(now_ms() + 60_000), "concurrency_pinned");
}

/// The same on the server clock (no AT), CL.THROTTLE included.
#[test]
fn sixty_four_clients_admit_exactly_the_limit_on_the_server_clock() {
    run_targets("clock", None, "concurrency_clock");
}

/// One key per algorithm hammered alone by all threads, and INFO rl counting every call exactly once.
#[test]
fn each_algorithm_alone_and_the_counters_add_up() {
    let mut rng = seeded_rng("concurrency_alone");
    let server = Server::start(&[]);
    let mut con = server.conn();
    let at = now_ms() + 60_000;
    let counter_names = ["rl_tokenbucket", "rl_sliding", "rl_gcra", "rl_fixed"];
    for (target, counter) in targets("alone", Some(at)).into_iter().zip(counter_names) {
        let before = counters(&mut con, counter);
        let logs = hammer(&server, std::slice::from_ref(&target), &mut rng);
        check(&mut con, &target, &logs[0]);
        let after = counters(&mut con, counter);
        let calls: Vec<Call> = logs[0].iter().flatten().copied().filter(|c| !c.peek).collect();
        let admitted = calls.iter().filter(|c| target.read(c.reply).0).count() as i64;
        // Peeks (and the final one in `check`) are neither admitted nor rejected.
        assert_eq!((after.0 - before.0, after.1 - before.1), (admitted, calls.len() as i64 - admitted), "{counter}");
    }
}
