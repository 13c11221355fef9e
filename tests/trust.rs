//! Trust at the edges (contract v2, issues 10 and 16), on real servers: a reconfiguration is a
//! write whose reply later calls keep; calls that write nothing signal nothing (WATCH, client
//! tracking, keyspace events); the sliding-log cap travels with the write; AT is bounded for
//! ordinary clients; load-time arguments are checked; RL.INFO counts live entries; loading is
//! bounded in memory; CL.THROTTLE never copies a big string; refused payloads do not flood the
//! log; ACL categories where the server has them.

mod common;
use common::resp::{Frame, RawClient};
use common::*;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::Rng;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A time a minute ahead of the server clock: keys written at it do not expire under the test.
fn future() -> i64 {
    now_ms() + 60_000
}

/// A field of RL.INFO (RESP2: a flat field/value array) as an integer.
fn info_int(con: &mut Connection, key: &str, field: &str) -> i64 {
    let info: Vec<Value> = redis::cmd("RL.INFO").arg(key).query(con).expect("RL.INFO");
    for pair in info.chunks(2) {
        if let [Value::BulkString(name), Value::Int(value)] = pair {
            if name == field.as_bytes() {
                return *value;
            }
        }
    }
    panic!("RL.INFO {key}: no integer field {field} in {info:?}")
}

fn config_set(con: &mut Connection, name: &str, value: &str) -> redis::RedisResult<()> {
    redis::cmd("CONFIG").arg("SET").arg(name).arg(value).query(con)
}

fn config_get(con: &mut Connection, name: &str) -> String {
    let pair: Vec<String> = redis::cmd("CONFIG").arg("GET").arg(name).query(con).expect("CONFIG GET");
    pair.get(1).cloned().unwrap_or_default()
}

/// A master and a replica of it, linked; the replica is started with `replica_module_args`.
fn pair(master_module_args: &[&str], replica_module_args: &[&str]) -> (Server, Server) {
    let master = Server::start_with_module_args(master_module_args, &[]);
    let replica = start_replica(&master, replica_module_args, &[]);
    (master, replica)
}

/// Waits until the replica has applied everything, then compares every key, value and expiry.
fn assert_in_sync(master: &Server, replica: &Server) {
    let (mut mc, mut rc) = (master.conn(), replica.conn());
    wait_for_replica(&mut mc, &mut rc);
    let on_master = key_states(&mut mc);
    assert!(!on_master.is_empty(), "test wrote nothing");
    assert_same_live_keys(&key_states(&mut rc), &on_master);
    assert_eq!(digest(&mut rc), digest(&mut mc));
}

// ---------------------------------------------------------------------------------------------
// 1. A reconfiguration is a write: the examples
// ---------------------------------------------------------------------------------------------

/// The example: a bucket emptied under 1 token/s, then called at 10 tokens/s. The reply's
/// retry (one token at 10/s: 100 ms) holds because the rejected call stored the new rate.
#[test]
fn a_faster_refill_rate_promised_by_a_rejected_call_is_kept() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let t = future();
    assert_eq!(rl(&mut con, &format!("RL.TOKENBUCKET k 10 1 1000 COST 10 AT {t}")), [1, 10, 0, -1, 10_000]);
    // Empty; at 10 per 1000 ms one token takes 100 ms, a full bucket 1000 ms.
    assert_eq!(rl(&mut con, &format!("RL.TOKENBUCKET k 10 10 1000 AT {t}")), [0, 10, 0, 100, 1000]);
    assert_eq!(pexpiretime(&mut con, "k"), t + 1000);
    // 99 ms: 0.99 tokens.
    assert_eq!(rl(&mut con, &format!("RL.TOKENBUCKET k 10 10 1000 AT {}", t + 99)), [0, 10, 0, 1, 901]);
    assert_eq!(rl(&mut con, &format!("RL.TOKENBUCKET k 10 10 1000 AT {}", t + 100)), [1, 10, 0, -1, 1000]);
    assert_eq!(pexpiretime(&mut con, "k"), t + 1100);
}

/// The other direction: emptied at 10 tokens/s, then called at 1 token/s. The reply says 1000 ms,
/// and the bucket does not refill at the old rate behind it.
#[test]
fn a_slower_refill_rate_promised_by_a_rejected_call_is_kept() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let t = future();
    assert_eq!(rl(&mut con, &format!("RL.TOKENBUCKET k 10 10 1000 COST 10 AT {t}")), [1, 10, 0, -1, 1000]);
    assert_eq!(rl(&mut con, &format!("RL.TOKENBUCKET k 10 1 1000 AT {t}")), [0, 10, 0, 1000, 10_000]);
    assert_eq!(pexpiretime(&mut con, "k"), t + 10_000);
    // Under the old rate 1 token would be there at t+100 (and 9 more by t+999).
    assert_eq!(rl(&mut con, &format!("RL.TOKENBUCKET k 10 1 1000 AT {}", t + 100)), [0, 10, 0, 900, 9900]);
    assert_eq!(rl(&mut con, &format!("RL.TOKENBUCKET k 10 1 1000 AT {}", t + 999)), [0, 10, 0, 1, 9001]);
    assert_eq!(rl(&mut con, &format!("RL.TOKENBUCKET k 10 1 1000 AT {}", t + 1000)), [1, 10, 0, -1, 10_000]);
}

/// The sliding example: a window widened from 1000 to 10000 ms by a rejected call. Its
/// reply (reset 9700) and the key's expiry agree: the key no longer vanishes at t+1000 with
/// the entry the reply still counts.
#[test]
fn a_widened_sliding_window_keeps_the_key_as_long_as_its_reply_says() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let t = future();
    assert_eq!(rl(&mut con, &format!("RL.SLIDING k 1 1000 AT {t}")), [1, 1, 0, -1, 1000]);
    assert_eq!(pexpiretime(&mut con, "k"), t + 1000);
    assert_eq!(rl(&mut con, &format!("RL.SLIDING k 1 10000 AT {}", t + 300)), [0, 1, 0, 9700, 9700]);
    assert_eq!(pexpiretime(&mut con, "k"), t + 10_000);
    assert_eq!(info_int(&mut con, "k", "window_ms"), 10_000);
    // The promise: rejected at t+9999, admitted at t+10000.
    assert_eq!(rl(&mut con, &format!("RL.SLIDING k 1 10000 AT {} DRYRUN", t + 9999))[..4], [0, 1, 0, 1]);
    assert_eq!(rl(&mut con, &format!("RL.SLIDING k 1 10000 AT {}", t + 10_000)), [1, 1, 0, -1, 10_000]);
}

/// DRYRUN and COST 0 answer as if reconfigured and write nothing; the same call without them writes.
#[test]
fn dryrun_and_cost_zero_reply_as_if_reconfigured_and_write_nothing() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let t = future();
    assert_eq!(rl(&mut con, &format!("RL.TOKENBUCKET k 10 1 1000 COST 10 AT {t}")), [1, 10, 0, -1, 10_000]);
    let before = snapshot(&mut con, "k");
    assert_eq!(rl(&mut con, &format!("RL.TOKENBUCKET k 10 10 1000 AT {t} DRYRUN")), [0, 10, 0, 100, 1000]);
    assert_eq!(rl(&mut con, &format!("RL.TOKENBUCKET k 10 10 1000 AT {t} COST 0")), [1, 10, 0, -1, 1000]);
    assert_eq!(snapshot(&mut con, "k"), before);
    assert_eq!(rl(&mut con, &format!("RL.TOKENBUCKET k 10 10 1000 AT {t}")), [0, 10, 0, 100, 1000]);
    assert_ne!(snapshot(&mut con, "k"), before);
}

// ---------------------------------------------------------------------------------------------
// 1b. Property: retry_after and reset_after hold under random reconfigurations
// ---------------------------------------------------------------------------------------------

/// One algorithm's command and a small family of parameter sets, close enough that switching
/// between them happens while the limiter is busy.
struct Family {
    command: &'static str,
    params: Vec<Vec<u64>>,
}

fn families() -> Vec<Family> {
    let mut families = Vec::new();
    let mut tb = Vec::new();
    for capacity in [1, 3, 10, 100] {
        for tokens in [1, 2, 7] {
            for ms in [1, 10, 100, 1000, 3000] {
                tb.push(vec![capacity, tokens, ms]);
            }
        }
    }
    families.push(Family { command: "RL.TOKENBUCKET", params: tb });
    let mut windows = Vec::new();
    for limit in [1, 3, 10, 100] {
        for window in [1, 10, 300, 1000, 7000] {
            windows.push(vec![limit, window]);
        }
    }
    families.push(Family { command: "RL.FIXED", params: windows.clone() });
    families.push(Family { command: "RL.SLIDING", params: windows });
    let mut gcra = Vec::new();
    for burst in [0, 1, 4, 20] {
        for rate in [1, 3, 10] {
            for period in [10, 1000, 3000] {
                gcra.push(vec![burst, rate, period]);
            }
        }
    }
    families.push(Family { command: "RL.GCRA", params: gcra });
    families
}

fn limit_of(command: &str, params: &[u64]) -> u64 {
    if command == "RL.GCRA" {
        params[0] + 1
    } else {
        params[0]
    }
}

fn line(command: &str, key: &str, params: &[u64], cost: u64, at: i64) -> String {
    let params: Vec<String> = params.iter().map(u64::to_string).collect();
    format!("{command} {key} {} COST {cost} AT {at}", params.join(" "))
}

/// For every algorithm, random calls on a few keys with parameters changing at random: after a
/// call whose reply binds later calls (it wrote, or the key holds its parameters), the same call
/// at now + retry_after is admitted and at now + retry_after - 1 it is not, and the key lives at
/// least until now + reset_after (a key left idle is deleted). A replica applying the stream
/// (rejected reconfigurations and deletions included) ends digest-equal.
#[test]
fn retry_and_reset_hold_for_later_calls_under_random_reconfiguration() {
    let mut rng = seeded_rng("retry_and_reset_hold_under_random_reconfiguration");
    let (master, replica) = pair(&[], &[]);
    let mut con = master.conn();
    let steps: usize = std::env::var("RL_TRUST_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(400);
    let (mut checked_retry, mut rejected_reconfigurations, mut deleted) = (0, 0, 0);
    for family in families() {
        let mut at = future();
        // Per key: the parameters it holds (None while absent).
        let mut stored: Vec<Option<Vec<u64>>> = vec![None; 3];
        let mut current: Vec<Vec<u64>> = (0..3).map(|_| family.params.choose(&mut rng).unwrap().clone()).collect();
        for _ in 0..steps {
            let k = rng.gen_range(0..3);
            let key = format!("{}:{k}", family.command);
            if rng.gen_ratio(1, 3) {
                current[k] = family.params.choose(&mut rng).unwrap().clone();
            }
            let params = current[k].clone();
            let limit = limit_of(family.command, &params);
            let cost = match rng.gen_range(0..10) {
                0 => 0,
                1 => limit + 1,
                2 => limit,
                _ => rng.gen_range(1..=limit.min(5)),
            };
            at += [0, 0, 1, 3, 50, 400, 2000][rng.gen_range(0..7)];
            let dryrun = rng.gen_ratio(1, 6);
            let call = line(family.command, &key, &params, cost, at);
            let reply = rl(&mut con, &if dryrun { format!("{call} DRYRUN") } else { call.clone() });
            if std::env::var_os("RL_TRUST_TRACE").is_some() {
                eprintln!(
                    "{call}{} -> {reply:?} exp {}",
                    if dryrun { " DRYRUN" } else { "" },
                    pexpiretime(&mut con, &key)
                );
            }
            let [allowed, _, _, retry, reset] = reply;
            let commit = cost > 0 && !dryrun;
            let reconfigures = stored[k].as_ref().is_some_and(|s| *s != params);
            let wrote = commit && (allowed == 1 || reconfigures);
            if wrote {
                stored[k] = Some(params.clone());
                rejected_reconfigurations += 1 - allowed;
            }
            if !exists(&mut con, &key) {
                deleted += i64::from(wrote && stored[k].is_some());
                stored[k] = None;
            }
            // Only a reply the key now stands behind binds later calls: a DRYRUN or COST 0 with
            // other parameters describes a reconfiguration not written.
            if !(wrote || stored[k].as_ref() == Some(&params)) {
                continue;
            }
            // The key lives at least until now + reset_after; a write sets exactly that, or
            // deletes the key when the limiter is idle (reset_after 0). A key idle as of now
            // (reset_after 0) may still be there, until its expiry on the server clock.
            match snapshot(&mut con, &key) {
                None => assert_eq!(reset, 0, "{call} -> {reply:?}: the key is absent"),
                Some(_) if reset == 0 && !wrote => {}
                // An admitted DRYRUN describes the state after an admission it did not write.
                Some(_) if dryrun && allowed == 1 && cost > 0 => {}
                Some((_, expiry)) => {
                    assert!(expiry >= at + reset, "{call} -> {reply:?}: expires at {expiry} before {}", at + reset);
                    if wrote {
                        assert!(reset > 0, "{call} -> {reply:?}: an idle limiter was kept");
                        assert_eq!(expiry, at + reset, "{call} -> {reply:?}: expiry of a write");
                    }
                }
            }
            if allowed == 0 && retry >= 0 {
                let probe = |con: &mut Connection, when: i64| {
                    rl(con, &format!("{} DRYRUN", line(family.command, &key, &params, cost, when)))[0]
                };
                assert_eq!(probe(&mut con, at + retry), 1, "{call} -> {reply:?}: not admitted at now + retry_after");
                if retry > 0 {
                    assert_eq!(probe(&mut con, at + retry - 1), 0, "{call} -> {reply:?}: admitted before retry_after");
                }
                checked_retry += 1;
            }
        }
    }
    println!(
        "{checked_retry} retries checked, {rejected_reconfigurations} rejected reconfigurations, {deleted} deletions"
    );
    assert!(checked_retry > 50 && rejected_reconfigurations > 10 && deleted > 0);
    assert_in_sync(&master, &replica);
}

// ---------------------------------------------------------------------------------------------
// 2. Calls that write nothing signal nothing: WATCH, client tracking, keyspace events
// ---------------------------------------------------------------------------------------------

/// What the rest of Redis saw of one call.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    watch_aborted: bool,
    /// RESP3 client tracking: an `invalidate` push naming the key.
    invalidated_resp3: bool,
    /// Client tracking with REDIRECT to a RESP2 client subscribed to `__redis__:invalidate`.
    invalidated_redirect: bool,
    /// Keyspace and keyevent notifications, as (channel, message).
    events: Vec<(String, String)>,
}

/// Everyone watching a key: a WATCH-ing client, a RESP3 tracking client, a tracking client
/// redirecting to a subscribed RESP2 client, and a subscriber to every keyspace notification.
struct Observers {
    watcher: Connection,
    resp3: RawClient,
    redirected: RawClient,
    target: RawClient,
    events: RawClient,
}

impl Observers {
    fn new(server: &Server) -> Observers {
        let mut resp3 = RawClient::connect(server.port);
        assert!(matches!(resp3.call(&["HELLO", "3"]), Frame::Map(_)), "HELLO 3");
        assert_eq!(resp3.call(&["CLIENT", "TRACKING", "ON"]), Frame::Simple("OK".into()));
        let mut target = RawClient::connect(server.port);
        let Frame::Int(target_id) = target.call(&["CLIENT", "ID"]) else { panic!("CLIENT ID") };
        let subscribed = target.call(&["SUBSCRIBE", "__redis__:invalidate"]);
        assert_eq!(subscribed.items().first().map(Frame::text).as_deref(), Some("subscribe"));
        let mut redirected = RawClient::connect(server.port);
        let on = redirected.call(&["CLIENT", "TRACKING", "ON", "REDIRECT", &target_id.to_string()]);
        assert_eq!(on, Frame::Simple("OK".into()));
        let mut events = RawClient::connect(server.port);
        let subscribed = events.call(&["PSUBSCRIBE", "__key*@0__:*"]);
        assert_eq!(subscribed.items().first().map(Frame::text).as_deref(), Some("psubscribe"));
        Observers { watcher: server.conn(), resp3, redirected, target, events }
    }

    /// Forgets what was seen so far, then watches `key` and reads it from both tracking clients.
    fn arm(&mut self, key: &str) {
        self.resp3.frames_before_ping();
        self.target.frames_before_ping();
        self.events.frames_before_ping();
        let _: () = redis::cmd("WATCH").arg(key).query(&mut self.watcher).expect("WATCH");
        // PTTL is a read-only command on the key: the server tracks the key for both clients.
        assert!(matches!(self.resp3.call(&["PTTL", key]), Frame::Int(_)));
        assert!(matches!(self.redirected.call(&["PTTL", key]), Frame::Int(_)));
    }

    /// What happened since `arm`.
    fn seen(&mut self, key: &str) -> Seen {
        let _: () = redis::cmd("MULTI").query(&mut self.watcher).expect("MULTI");
        let _: () = redis::cmd("PING").query(&mut self.watcher).expect("PING");
        let exec: Value = redis::cmd("EXEC").query(&mut self.watcher).expect("EXEC");
        let names_key = |frame: &Frame| frame.items().iter().any(|f| f.text() == key);
        let invalidated_resp3 = self.resp3.frames_before_ping().iter().any(|frame| {
            matches!(frame, Frame::Push(items) if items.first().is_some_and(|f| f.text() == "invalidate")
                && items.get(1).is_some_and(names_key))
        });
        let invalidated_redirect = self.target.frames_before_ping().iter().any(|frame| {
            let items = frame.items();
            items.len() == 3 && items[0].text() == "message" && items[2].items().iter().any(|f| f.text() == key)
        });
        let events = self
            .events
            .frames_before_ping()
            .iter()
            .filter_map(|frame| match frame.items() {
                [kind, _pattern, channel, message] if kind.text() == "pmessage" => {
                    Some((channel.text(), message.text()))
                }
                _ => None,
            })
            .collect();
        Seen { watch_aborted: exec == Value::Nil, invalidated_resp3, invalidated_redirect, events }
    }
}

fn nothing_seen() -> Seen {
    Seen { watch_aborted: false, invalidated_resp3: false, invalidated_redirect: false, events: Vec::new() }
}

fn write_seen(key: &str, event: &str) -> Seen {
    Seen {
        watch_aborted: true,
        invalidated_resp3: true,
        invalidated_redirect: true,
        events: vec![
            (format!("__keyspace@0__:{key}"), event.to_string()),
            (format!("__keyevent@0__:{event}"), key.to_string()),
        ],
    }
}

/// The reply of a call given as a line: "ok" for 5 integers, else the error code.
fn outcome(con: &mut Connection, line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    match redis::cmd(words[0]).arg(&words[1..]).query::<Value>(con) {
        Ok(_) => "ok".to_string(),
        Err(e) => error_text(&e).split(' ').next().unwrap_or("").to_string(),
    }
}

/// For every command, each kind of call that writes nothing (DRYRUN, COST 0, with the stored or
/// other parameters; rejected with the stored parameters, within and beyond the limit; another
/// algorithm's key; a plain string; a bad argument; RL.INFO) leaves WATCH, both tracking modes
/// and keyspace events alone; the controls (an admission, a rejected reconfiguration, one that
/// leaves the limiter idle and deletes the key) are each seen once, everywhere.
#[test]
fn calls_that_write_nothing_signal_nothing() {
    let server = Server::start(&["--notify-keyspace-events", "KEd"]);
    let mut con = server.conn();
    let mut observers = Observers::new(&server);
    let t = future();
    // (command, stored parameters, other parameters rejecting COST 8 and keeping the key, other
    // parameters and time leaving the limiter idle, another command's line for WRONGTYPE)
    let algorithms = [
        ("RL.TOKENBUCKET", "10 1 1000", "10 2 1000", ("5 1 1000", 0), "RL.FIXED {k} 10 60000"),
        ("RL.FIXED", "10 60000", "9 60000", ("10 1000", 0), "RL.SLIDING {k} 10 60000"),
        ("RL.SLIDING", "10 60000", "9 60000", ("10 1", 5), "RL.GCRA {k} 9 1 1000"),
        ("RL.GCRA", "9 1 1000", "9 2 1000", ("9 2 1000", 3000), "RL.TOKENBUCKET {k} 10 1 1000"),
    ];
    let mut case = 0;
    let mut check = |con: &mut Connection,
                     observers: &mut Observers,
                     setup: &[String],
                     call: &str,
                     expect_reply: &str,
                     expect: &dyn Fn(&str) -> Seen|
     -> String {
        case += 1;
        let key = format!("k{case}");
        for line in setup {
            let line = line.replace("{k}", &key);
            let words: Vec<&str> = line.split_whitespace().collect();
            let _: Value = redis::cmd(words[0]).arg(&words[1..]).query(con).expect("setup");
        }
        observers.arm(&key);
        let call = call.replace("{k}", &key);
        assert_eq!(outcome(con, &call), expect_reply, "{call}");
        assert_eq!(observers.seen(&key), expect(&key), "{call}");
        key
    };
    for (command, params, other, (idle_params, idle_after), wrong) in algorithms {
        let event = command.to_lowercase();
        let setup = [format!("{command} {{k}} {params} COST 3 AT {t}")];
        let quiet = |_: &str| nothing_seen();
        let written = |key: &str| write_seen(key, &event);
        for (call, reply) in [
            (format!("{command} {{k}} {params} AT {t} DRYRUN"), "ok"),
            (format!("{command} {{k}} {other} COST 8 AT {t} DRYRUN"), "ok"),
            (format!("{command} {{k}} {params} COST 0 AT {t}"), "ok"),
            (format!("{command} {{k}} {other} COST 0 AT {t}"), "ok"),
            (format!("{command} {{k}} {params} COST 8 AT {t}"), "ok"), // rejected
            (format!("{command} {{k}} {params} COST 11 AT {t}"), "ok"), // can never pass
            (format!("{command} {{k}} {params} COST 1 AT {}", MAX_TIME_MS + 1), "ERR"),
            (format!("{command} {{k}} {params} BOGUS"), "ERR"),
            (wrong.to_string(), "WRONGTYPE"),
            ("RL.INFO {k}".to_string(), "ok"),
        ] {
            check(&mut con, &mut observers, &setup, &call, reply, &quiet);
        }
        // A plain string key: WRONGTYPE, and nothing else.
        let string = ["SET {k} x".to_string()];
        for call in [format!("{command} {{k}} {params}"), format!("{command} {{k}} {params} DRYRUN")] {
            check(&mut con, &mut observers, &string, &call, "WRONGTYPE", &quiet);
        }
        // The controls.
        check(&mut con, &mut observers, &setup, &format!("{command} {{k}} {params} AT {t}"), "ok", &written);
        check(&mut con, &mut observers, &setup, &format!("{command} {{k}} {other} COST 8 AT {t}"), "ok", &written);
        let idle = format!("{command} {{k}} {idle_params} COST 11 AT {}", t + idle_after);
        let key = check(&mut con, &mut observers, &setup, &idle, "ok", &written);
        assert!(!exists(&mut con, &key), "{idle}: an idle limiter is an absent key");
    }
    // CL.THROTTLE: a peek, a rejection, a plain string, a 21-byte string; a key redis-cell left
    // (an integer string) peeked and rejected stays as it is; the controls write.
    let cell = |_: &str| nothing_seen();
    let written = |key: &str| write_seen(key, "cl.throttle");
    let setup = ["CL.THROTTLE {k} 4 1 60 5".to_string()];
    check(&mut con, &mut observers, &setup, "CL.THROTTLE {k} 4 1 60 0", "ok", &cell);
    check(&mut con, &mut observers, &setup, "CL.THROTTLE {k} 4 1 60 1", "ok", &cell);
    check(&mut con, &mut observers, &["SET {k} x".to_string()], "CL.THROTTLE {k} 4 1 60", "WRONGTYPE", &cell);
    let long = format!("SET {{k}} {}", "9".repeat(21));
    check(&mut con, &mut observers, &[long], "CL.THROTTLE {k} 4 1 60", "WRONGTYPE", &cell);
    let tat_ns = ((now_ms() + 30_000) as u64 * 1_000_000).to_string();
    let cell_key = [format!("SET {{k}} {tat_ns} PX 600000")];
    check(&mut con, &mut observers, &cell_key, "CL.THROTTLE {k} 4 1 60 0", "ok", &cell);
    check(&mut con, &mut observers, &cell_key, "CL.THROTTLE {k} 0 1 60 1", "ok", &cell);
    check(&mut con, &mut observers, &[], "CL.THROTTLE {k} 4 1 60", "ok", &written);
    check(&mut con, &mut observers, &setup, "CL.THROTTLE {k} 4 1 30 1", "ok", &written);
}

// ---------------------------------------------------------------------------------------------
// 3. The sliding-log cap travels with the write
// ---------------------------------------------------------------------------------------------

/// Five calls with the cap set to `run_cap` at run time on a server loaded with `module_args` and
/// an AOF; checks the log holds `entries`, restarts (the AOF replays under the load-time cap) and
/// checks the load-time cap is back and every key reads the same. Returns the restarted server,
/// its connection and the calls' base time.
fn replay_after_a_run_time_cap(module_args: &[&str], run_cap: &str, entries: i64) -> (Server, Connection, i64) {
    let mut server = Server::start_with_module_args(module_args, &["--appendonly", "yes", "--appendfsync", "always"]);
    let mut con = server.conn();
    let load_cap = config_get(&mut con, "rl.max-sliding-entries");
    config_set(&mut con, "rl.max-sliding-entries", run_cap).expect("CONFIG SET");
    let t = future();
    for i in 0..5 {
        assert_eq!(rl(&mut con, &format!("RL.SLIDING k 10 60000 AT {}", t + i))[..3], [1, 10, 9 - i]);
    }
    assert_eq!(info_int(&mut con, "k", "entries"), entries);
    let before = (digest(&mut con), key_states(&mut con));
    server.restart("NOSAVE");
    let mut con = server.conn();
    assert_eq!(config_get(&mut con, "rl.max-sliding-entries"), load_cap);
    assert_eq!((digest(&mut con), key_states(&mut con)), before);
    assert_eq!(info_int(&mut con, "k", "entries"), entries);
    (server, con, t)
}

/// Five calls under a cap of 2 set at run time: a 2-entry log. The AOF replays under the
/// load-time cap (the default), and still rebuilds the same 2 entries: the cap is in the
/// replicated form.
#[test]
fn the_sliding_cap_set_at_run_time_survives_aof_replay() {
    let (_server, mut con, _) = replay_after_a_run_time_cap(&[], "2", 2);
    assert_eq!(config_get(&mut con, "rl.max-sliding-entries"), "1000000");
}

/// Five calls under the default cap (5 entries), written while the server's setting was changed
/// to the default at run time: the replicated form leaves CAP out (the default), and the AOF
/// replays under the load-time cap of 2 and still rebuilds the same 5 entries.
#[test]
fn a_write_under_the_default_cap_replays_as_such_under_another_load_time_cap() {
    let (_server, mut con, t) = replay_after_a_run_time_cap(&["max-sliding-entries", "2"], "1000000", 5);
    assert_eq!(config_get(&mut con, "rl.max-sliding-entries"), "2");
    // A client's call on this server still decides under its own cap of 2: the log, already past
    // it, does not grow (the new units join its newest entry).
    assert_eq!(rl(&mut con, &format!("RL.SLIDING k 10 60000 AT {}", t + 10))[..3], [1, 10, 4]);
    assert_eq!(info_int(&mut con, "k", "entries"), 5);
}

/// A replica loaded with another cap applies the master's: digest-equal, in both directions.
#[test]
fn a_replica_with_another_sliding_cap_ends_digest_equal() {
    for (master_cap, replica_cap) in [("2", "1000000"), ("1000000", "2")] {
        let (master, replica) = pair(&["max-sliding-entries", master_cap], &["max-sliding-entries", replica_cap]);
        let mut mc = master.conn();
        let t = future();
        for i in 0..5 {
            rl(&mut mc, &format!("RL.SLIDING k 10 60000 AT {}", t + i));
        }
        assert_eq!(info_int(&mut mc, "k", "entries"), master_cap.parse::<i64>().unwrap().min(5));
        assert_in_sync(&master, &replica);
        assert_eq!(info_int(&mut replica.conn(), "k", "entries"), master_cap.parse::<i64>().unwrap().min(5));
    }
}

/// CAP from an ordinary client: at most the server's own cap (it can only be stricter), and it
/// is the cap the decision uses.
#[test]
fn an_ordinary_clients_cap_is_bounded_by_the_servers() {
    let server = Server::start_with_module_args(&["max-sliding-entries", "3"], &[]);
    let mut con = server.conn();
    let t = future();
    let err = rl_err(&mut con, &format!("RL.SLIDING k 10 60000 CAP 4 AT {t}"));
    assert!(err.starts_with("ERR ") && err.contains("CAP") && err.contains("max-sliding-entries"), "{err}");
    assert!(!exists(&mut con, "k"));
    for i in 0..5 {
        rl(&mut con, &format!("RL.SLIDING k 10 60000 CAP 2 AT {}", t + i));
    }
    assert_eq!(info_int(&mut con, "k", "entries"), 2);
    let err = rl_err(&mut con, &format!("RL.FIXED f 10 60000 CAP 2 AT {t}"));
    assert!(err.starts_with("ERR ") && err.contains("CAP"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// 4. AT is bounded for ordinary clients
// ---------------------------------------------------------------------------------------------

#[test]
fn at_far_ahead_of_the_clock_is_refused_and_at_in_the_past_is_not() {
    let server = Server::start_with_module_args(&["max-at-ahead-ms", "300000"], &[]);
    let mut con = server.conn();
    assert_eq!(config_get(&mut con, "rl.max-at-ahead-ms"), "300000");
    let now = now_ms();
    rl(&mut con, &format!("RL.TOKENBUCKET k 10 1 1000 COST 3 AT {now}"));
    let before = snapshot(&mut con, "k");
    for (command, params) in
        [("RL.TOKENBUCKET", "10 1 1000"), ("RL.FIXED", "10 1000"), ("RL.SLIDING", "10 1000"), ("RL.GCRA", "9 1 1000")]
    {
        for at in [now + 600_000, now + 10_000_000, MAX_TIME_MS] {
            for key in ["k", "absent"] {
                let err = rl_err(&mut con, &format!("{command} {key} {params} AT {at}"));
                assert_eq!(err, "ERR AT is more than max-at-ahead-ms (300000 ms) ahead of the server clock");
            }
        }
    }
    assert_eq!(snapshot(&mut con, "k"), before);
    assert!(!exists(&mut con, "absent"));
    // Within the bound, and in the past (decided at the key's last update), it is accepted.
    assert_eq!(rl(&mut con, &format!("RL.TOKENBUCKET k 10 1 1000 AT {}", now + 200_000))[0], 1);
    assert_eq!(rl(&mut con, &format!("RL.FIXED old 10 1000 AT {}", now - 1_000_000_000))[0], 1);
    assert_eq!(rl(&mut con, &format!("RL.TOKENBUCKET k 10 1 1000 COST 0 AT {}", now - 86_400_000))[..3], [1, 10, 9]);
    // The bound is a run-time setting, checked like any config.
    config_set(&mut con, "rl.max-at-ahead-ms", "1000000").expect("CONFIG SET");
    assert_eq!(rl(&mut con, &format!("RL.TOKENBUCKET k 10 1 1000 AT {}", now + 600_000))[0], 1);
    config_set(&mut con, "rl.max-at-ahead-ms", "0").expect("CONFIG SET 0");
    let err = rl_err(&mut con, &format!("RL.GCRA g 9 1 1000 AT {}", now_ms() + 60_000));
    assert!(err.contains("max-at-ahead-ms (0 ms)"), "{err}");
    for bad in ["-1", "1000000000000001", "ten", ""] {
        assert!(config_set(&mut con, "rl.max-at-ahead-ms", bad).is_err(), "max-at-ahead-ms {bad:?} accepted");
    }
    config_set(&mut con, "rl.max-at-ahead-ms", "1000000000000000").expect("CONFIG SET 10^15");
    assert_eq!(config_get(&mut con, "rl.max-at-ahead-ms"), "1000000000000000");
}

/// A replica with the default bound applies whatever AT its master decided at; so does AOF
/// loading under a bound the write would not pass.
#[test]
fn the_master_link_and_aof_loading_accept_any_at() {
    let (master, replica) = pair(&[], &["max-at-ahead-ms", "300000"]);
    let mut mc = master.conn();
    let far = now_ms() + 10_000_000_000; // ~4 months ahead
    rl(&mut mc, &format!("RL.TOKENBUCKET tb 10 1 1000 COST 4 AT {far}"));
    rl(&mut mc, &format!("RL.SLIDING sl 10 60000 COST 4 AT {far}"));
    rl(&mut mc, &format!("RL.GCRA gc 9 1 1000 COST 4 AT {far}"));
    rl(&mut mc, &format!("RL.FIXED fw 10 60000 COST 4 AT {far}"));
    assert_in_sync(&master, &replica);
    let mut rc = replica.conn();
    assert_eq!(config_get(&mut rc, "rl.max-at-ahead-ms"), "300000");
    assert_eq!(info_int(&mut rc, "tb", "last_update_ms"), far);

    let mut server = Server::start_with_module_args(
        &["max-at-ahead-ms", "300000"],
        &["--appendonly", "yes", "--appendfsync", "always"],
    );
    let mut con = server.conn();
    config_set(&mut con, "rl.max-at-ahead-ms", "100000000000").expect("CONFIG SET");
    rl(&mut con, &format!("RL.TOKENBUCKET tb 10 1 1000 COST 4 AT {far}"));
    rl(&mut con, &format!("RL.SLIDING sl 10 60000 COST 4 AT {far}"));
    let before = (digest(&mut con), key_states(&mut con));
    // Restarted with the load-time bound (300000): the AOF still replays the far AT.
    server.restart("NOSAVE");
    let mut con = server.conn();
    assert_eq!(config_get(&mut con, "rl.max-at-ahead-ms"), "300000");
    assert_eq!((digest(&mut con), key_states(&mut con)), before);
}

// ---------------------------------------------------------------------------------------------
// 5. Load-time arguments are checked like CONFIG SET
// ---------------------------------------------------------------------------------------------

/// Starts redis-server with the module and `module_args`; returns whether it exits by itself
/// (the load refused) within 20 s, and its log.
fn load_with(module_args: &[&str]) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!("rl-trust-load-{}-{}", std::process::id(), module_args.join("_")));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let mut child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
        .args(["--dir", dir.to_str().expect("utf-8 dir"), "--logfile", "redis.log"])
        .arg("--loadmodule")
        .arg(module_path())
        .args(module_args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server on PATH");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut exited = false;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            exited = true;
            break;
        }
        // Up and answering: the module loaded (if it is this child answering, not another test's
        // server that took the port).
        if let Ok(mut con) = redis::Client::open(format!("redis://127.0.0.1:{port}/")).and_then(|c| c.get_connection())
        {
            if info_field(&mut con, "server", "process_id") == child.id().to_string() {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    (exited, log)
}

#[test]
fn bad_load_arguments_refuse_the_load_with_a_log_line_naming_them() {
    for (args, named) in [
        (
            &["max-sliding-entries", "-5"][..],
            "'max-sliding-entries' must be an integer from 1 to 1000000000000000, got '-5'",
        ),
        (&["max-sliding-entries", "0"], "'max-sliding-entries' must be an integer from 1"),
        (&["max-sliding-entries", "ten"], "'max-sliding-entries' must be an integer from 1"),
        (&["max-sliding-entries", "1000000000000001"], "'max-sliding-entries' must be an integer from 1"),
        (&["max-at-ahead-ms", "-1"], "'max-at-ahead-ms' must be an integer from 0 to 1000000000000000, got '-1'"),
        (&["max-at-ahead-ms", "1000000000000001"], "'max-at-ahead-ms' must be an integer from 0"),
        (&["bogus", "1"], "unknown module argument 'bogus'"),
        (&["test-clock", "true"], "'test-clock' must be yes or no"),
        (&["max-sliding-entries", "5", "test-clock"], "'test-clock' needs a value"),
        (&["max-at-ahead-ms", "1", "max-at-ahead-ms", "2"], "'max-at-ahead-ms' given more than once"),
    ] {
        let (exited, log) = load_with(args);
        assert!(exited, "{args:?}: the server started");
        let line = log.lines().find(|l| l.contains(named)).unwrap_or_else(|| panic!("{args:?}: no log line in\n{log}"));
        assert!(line.contains("refusing to load"), "{line}");
    }
    // Good arguments load, and are the settings in force.
    let server = Server::start_with_module_args(&["max-sliding-entries", "7", "max-at-ahead-ms", "0"], &[]);
    let mut con = server.conn();
    assert_eq!(config_get(&mut con, "rl.max-sliding-entries"), "7");
    assert_eq!(config_get(&mut con, "rl.max-at-ahead-ms"), "0");
}

#[test]
fn config_set_out_of_range_is_refused_by_redis() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    for (name, bad) in [
        ("rl.max-sliding-entries", "0"),
        ("rl.max-sliding-entries", "-5"),
        ("rl.max-sliding-entries", "1000000000000001"),
        ("rl.max-sliding-entries", "ten"),
        ("rl.max-at-ahead-ms", "-1"),
        ("rl.max-at-ahead-ms", "1000000000000001"),
    ] {
        assert!(config_set(&mut con, name, bad).is_err(), "{name} {bad} accepted");
    }
    assert_eq!(config_get(&mut con, "rl.max-sliding-entries"), "1000000");
    assert!(config_set(&mut con, "rl.test-clock", "yes").is_err(), "test-clock is load-time only");
}

// ---------------------------------------------------------------------------------------------
// 8. RL.INFO counts live entries
// ---------------------------------------------------------------------------------------------

#[test]
fn rl_info_entries_counts_only_live_entries() {
    let server = Server::start_with_module_args(&["test-clock", "yes"], &[]);
    let mut con = server.conn();
    let t = future();
    for i in 0..3 {
        rl(&mut con, &format!("RL.SLIDING k 10 1000 AT {}", t + 100 * i));
    }
    let pin = |con: &mut Connection, at: i64| {
        let _: () = redis::cmd("RL.TESTCLOCK").arg(at).query(con).expect("RL.TESTCLOCK");
    };
    // Each entry lives 1000 ms: at t+1150 only the one at t+200 does; nothing is written.
    for (at, live) in [(t + 200, 3), (t + 999, 3), (t + 1000, 2), (t + 1150, 1), (t + 1199, 1), (t + 1200, 0)] {
        pin(&mut con, at);
        assert_eq!(info_int(&mut con, "k", "entries"), live, "at t+{}", at - t);
        assert_eq!(info_int(&mut con, "k", "remaining"), 10 - live, "at t+{}", at - t);
    }
    let _: () = redis::cmd("RL.TESTCLOCK").arg("OFF").query(&mut con).expect("RL.TESTCLOCK OFF");
}

// ---------------------------------------------------------------------------------------------
// Issue 16: bounded loading, RL.LOADSTATE notifies, CL.THROTTLE never copies a big string,
// refused payloads do not flood the log
// ---------------------------------------------------------------------------------------------

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A sliding-log state (encoding version 2, tag 6) with `entries` entries 1 ms apart, 2 bytes
/// each, the newest at `newest`: `limit window last_ms` then `(delta, cost)` pairs.
fn crafted_sliding_state(entries: u64, newest: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 * entries as usize + 32);
    let first = newest as u64 - (entries - 1);
    for v in [6, 1_000_000_000_000_000, 10_000_000_000_000, newest as u64, first, 1] {
        put_varint(&mut out, v);
    }
    for _ in 1..entries {
        out.extend_from_slice(&[1, 1]);
    }
    out
}

/// A field of /proc/<pid>/status in bytes (VmRSS, VmHWM).
fn proc_status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    let line = status.lines().find(|l| l.starts_with(&format!("{field}:"))).expect("field");
    let kb: u64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("kB");
    kb * 1024
}

/// Resets the peak RSS (VmHWM) of a process we started to its current RSS; false where the
/// kernel does not allow it (then the peak since start is measured, which includes less).
fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Loading a crafted 8 MB sliding-log state (4M entries of 2 bytes) through RL.LOADSTATE and
/// through RESTORE raises the server's peak RSS by a small multiple of the payload (the request
/// buffer and the resulting log), not by 16 bytes per entry for an intermediate list. A log
/// longer than max-sliding-entries is loaded as it was written.
#[test]
fn loading_a_large_sliding_log_needs_memory_proportional_to_the_payload() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("rdbcompression").arg("no").query(&mut con).expect("CONFIG SET");
    let entries = 4_000_000u64;
    let state = crafted_sliding_state(entries, now_ms() + 1000);
    let payload = state.len() as u64;
    let pid = server.pid();
    let resettable = reset_peak_rss(pid);
    let rss_before = proc_status_bytes(pid, "VmRSS");
    let _: () = redis::cmd("RL.LOADSTATE").arg("big").arg(&state).query(&mut con).expect("RL.LOADSTATE");
    let peak = proc_status_bytes(pid, "VmHWM");
    let used: u64 = redis::cmd("MEMORY").arg("USAGE").arg("big").query(&mut con).expect("MEMORY USAGE");
    let grown = peak.saturating_sub(rss_before);
    println!(
        "RL.LOADSTATE: payload {payload} B, value {used} B, peak RSS +{grown} B ({:.2}x the payload; peak reset: {resettable})",
        grown as f64 / payload as f64
    );
    // The request buffer and the value are unavoidable (RESTORE also copies the payload once);
    // 2.5 times that leaves room for the allocator. An intermediate list of 16 bytes per entry
    // would add 64 MB here, over 3.5 times.
    let bound = 5 * (payload + used) / 2;
    assert!(grown <= bound, "peak RSS grew by {grown} B for a {payload} B payload and a {used} B value");
    // Kept as written: more entries than max-sliding-entries (10^6 by default), all live.
    assert_eq!(info_int(&mut con, "big", "entries"), entries as i64);
    assert!(used <= 2 * payload, "the loaded log takes {used} B");
    // Such a log does not grow: a new request joins its newest entry.
    let line = format!("RL.SLIDING big 1000000000000000 10000000000000 AT {}", now_ms() + 5000);
    assert_eq!(rl(&mut con, &line)[0], 1);
    assert_eq!(info_int(&mut con, "big", "entries"), entries as i64);

    // The same through DUMP / RESTORE (the RDB loader, as replicas and restarts use it).
    let dump: Vec<u8> = redis::cmd("DUMP").arg("big").query(&mut con).expect("DUMP");
    let _: () = redis::cmd("DEL").arg("big").query(&mut con).expect("DEL");
    reset_peak_rss(pid);
    let rss_before = proc_status_bytes(pid, "VmRSS");
    let _: () = redis::cmd("RESTORE").arg("copy").arg(0).arg(&dump).query(&mut con).expect("RESTORE");
    let grown = proc_status_bytes(pid, "VmHWM").saturating_sub(rss_before);
    println!("RESTORE: payload {} B, peak RSS +{grown} B ({:.2}x)", dump.len(), grown as f64 / dump.len() as f64);
    let bound = 5 * (dump.len() as u64 + used) / 2;
    assert!(grown <= bound, "peak RSS grew by {grown} B for a {} B payload", dump.len());
    assert_eq!(info_int(&mut con, "copy", "entries"), entries as i64);
}

/// RL.LOADSTATE (the AOF rewrite's command) is a write: it signals the key and sends its event.
#[test]
fn rl_loadstate_is_notified_and_signalled() {
    let server = Server::start(&["--notify-keyspace-events", "KEd"]);
    let mut con = server.conn();
    let mut observers = Observers::new(&server);
    rl(&mut con, &format!("RL.GCRA src 9 1 1000 COST 3 AT {}", future()));
    let state: Vec<u8> = {
        // RL.LOADSTATE takes what encode() writes: a GCRA state by hand (tag 4).
        let mut out = Vec::new();
        let tat = future() as u64;
        for v in [4, 9, 1, 1000, tat, 0, tat - 3000] {
            put_varint(&mut out, v);
        }
        out
    };
    observers.arm("dst");
    let _: () = redis::cmd("RL.LOADSTATE").arg("dst").arg(&state).query(&mut con).expect("RL.LOADSTATE");
    assert_eq!(observers.seen("dst"), write_seen("dst", "rl.loadstate"));
    // A refused state changes nothing and signals nothing.
    observers.arm("dst");
    let err = redis::cmd("RL.LOADSTATE").arg("dst").arg(&b"\x63garbage"[..]).query::<()>(&mut con).unwrap_err();
    assert!(error_text(&err).starts_with("ERR "), "{err}");
    assert_eq!(observers.seen("dst"), nothing_seen());
}

fn command_calls(con: &mut Connection, command: &str) -> i64 {
    let stats: String = redis::cmd("INFO").arg("commandstats").query(con).expect("INFO commandstats");
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .and_then(|calls| calls.parse().ok())
        .unwrap_or(0)
}

/// A string key longer than any TAT redis-cell writes (20 digits) is answered WRONGTYPE without
/// being read: the GET CL.THROTTLE uses on short strings is not issued (INFO commandstats).
#[test]
fn cl_throttle_answers_wrongtype_on_a_big_string_without_reading_it() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    // 64 MB, built on the server.
    let _: i64 =
        redis::cmd("SETRANGE").arg("big").arg(64 * 1024 * 1024 - 1).arg("x").query(&mut con).expect("SETRANGE");
    let _: () = redis::cmd("SET").arg("short").arg("x").query(&mut con).expect("SET");
    let _: () = redis::cmd("SET").arg("digits21").arg("1".repeat(21)).query(&mut con).expect("SET");
    // Control: a short string is read with GET (and is not a TAT either).
    let gets = command_calls(&mut con, "get");
    assert!(rl_err(&mut con, "CL.THROTTLE short 4 1 60").starts_with("WRONGTYPE"));
    assert_eq!(command_calls(&mut con, "get"), gets + 1, "the control: RM_Call's GET shows in commandstats");
    let gets = gets + 1;
    for _ in 0..20 {
        assert!(rl_err(&mut con, "CL.THROTTLE big 4 1 60").starts_with("WRONGTYPE"));
        assert!(rl_err(&mut con, "CL.THROTTLE digits21 4 1 60 0").starts_with("WRONGTYPE"));
    }
    assert_eq!(command_calls(&mut con, "get"), gets, "CL.THROTTLE read a string longer than 20 bytes");
    let len: i64 = redis::cmd("STRLEN").arg("big").query(&mut con).expect("STRLEN");
    assert_eq!(len, 64 * 1024 * 1024);
}

/// RESTORE of corrupt limiter payloads (checksum right, content wrong) is refused each time
/// without a log line at the default level: a client cannot flood the log.
#[test]
fn refused_restore_payloads_do_not_flood_the_log() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    assert_eq!(config_get(&mut con, "loglevel"), "notice");
    rl(&mut con, &format!("RL.TOKENBUCKET tb 100 3 7000 COST 17 AT {}", future()));
    let dump: Vec<u8> = redis::cmd("DUMP").arg("tb").query(&mut con).expect("DUMP");
    // [type][0x81 + 8-byte module id][opcode 5][1-byte length][content][EOF][version][CRC-64]
    let n = dump.len();
    assert!(dump[11] < 64, "a short content");
    let start = 12;
    let mut bad = dump[..n - 10].to_vec();
    bad[start] = 0x63; // no such tag
    bad.extend_from_slice(&dump[n - 10..n - 8]);
    let crc = crc64(&bad);
    bad.extend_from_slice(&crc.to_le_bytes());
    let lines_before = server.log().lines().count();
    for _ in 0..500 {
        let err = redis::cmd("RESTORE").arg("k").arg(0).arg(&bad).query::<()>(&mut con).unwrap_err();
        assert!(error_text(&err).contains("Bad data format"), "{err}");
    }
    let log = server.log();
    let new_lines: Vec<&str> = log.lines().skip(lines_before).collect();
    assert!(new_lines.len() < 5, "{} log lines for 500 refused payloads:\n{}", new_lines.len(), new_lines.join("\n"));
    // The payload itself was fine apart from the tag.
    let _: () = redis::cmd("RESTORE").arg("k").arg(0).arg(&dump).query(&mut con).expect("RESTORE of the original");
}

// ---------------------------------------------------------------------------------------------
// 7. ACL categories
// ---------------------------------------------------------------------------------------------

/// A connection authenticated as a new user with `rules`.
fn user_conn(server: &Server, admin: &mut Connection, name: &str, rules: &[&str]) -> Connection {
    let _: () =
        redis::cmd("ACL").arg("SETUSER").arg(name).arg("on").arg(">pw").arg(rules).query(admin).expect("SETUSER");
    let mut con = server.conn();
    let _: () = redis::cmd("AUTH").arg(name).arg("pw").query(&mut con).expect("AUTH");
    con
}

fn category_lists(con: &mut Connection, category: &str, command: &str) -> bool {
    let commands: redis::RedisResult<Vec<String>> = redis::cmd("ACL").arg("CAT").arg(category).query(con);
    commands.is_ok_and(|c| c.iter().any(|c| c.eq_ignore_ascii_case(command)))
}

/// Where the server lets modules set ACL categories (Redis 7.2+), RL.* are in @write @fast,
/// RL.INFO in @read @fast, and all of them in @ratelimit where modules may add categories
/// (7.4+). On Redis 7.0 there is no such API: users must be granted the commands by name, as the
/// README says; that grant is checked everywhere.
#[test]
fn acl_categories_or_grants_by_name() {
    let server = Server::start(&[]);
    let mut admin = server.conn();
    let t = future();
    let writes = ["RL.TOKENBUCKET k1 10 1 1000", "RL.FIXED k2 10 1000", "RL.SLIDING k3 10 1000", "RL.GCRA k4 9 1 1000"];
    let call = |con: &mut Connection, line: &str| -> Result<(), String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        redis::cmd(words[0]).arg(&words[1..]).query::<Value>(con).map(|_| ()).map_err(|e| error_text(&e))
    };
    // The README's grant for servers without module ACL categories works on every server.
    let mut by_name = user_conn(
        &server,
        &mut admin,
        "by_name",
        &["~*", "+rl.tokenbucket", "+rl.fixed", "+rl.sliding", "+rl.gcra", "+cl.throttle", "+rl.info"],
    );
    for line in writes {
        call(&mut by_name, &format!("{line} AT {t}")).unwrap_or_else(|e| panic!("{line}: {e}"));
    }
    call(&mut by_name, "CL.THROTTLE k5 4 1 60").expect("CL.THROTTLE");
    call(&mut by_name, "RL.INFO k1").expect("RL.INFO");
    assert!(call(&mut by_name, "SET x 1").is_err_and(|e| e.starts_with("NOPERM")));

    if !category_lists(&mut admin, "write", "rl.tokenbucket") {
        println!(
            "note: this server ({}) has no ACL categories for module commands; \
             grant RL.* by name (checked above)",
            info_field(&mut admin, "server", "redis_version")
        );
        let mut writer = user_conn(&server, &mut admin, "writer", &["~*", "+@write"]);
        assert!(call(&mut writer, &format!("{} AT {t}", writes[0])).is_err_and(|e| e.starts_with("NOPERM")));
        return;
    }
    for (category, command) in [
        ("write", "rl.fixed"),
        ("fast", "rl.gcra"),
        ("read", "rl.info"),
        ("fast", "rl.info"),
        ("write", "rl.loadstate"),
    ] {
        assert!(category_lists(&mut admin, category, command), "{command} is not in @{category}");
    }
    assert!(!category_lists(&mut admin, "write", "rl.info"), "RL.INFO in @write");
    let mut writer = user_conn(&server, &mut admin, "writer", &["~*", "+@write"]);
    for line in writes {
        call(&mut writer, &format!("{line} AT {t}")).unwrap_or_else(|e| panic!("+@write: {line}: {e}"));
    }
    call(&mut writer, "CL.THROTTLE k5 4 1 60").expect("+@write: CL.THROTTLE");
    let mut reader = user_conn(&server, &mut admin, "reader", &["~*", "+@read"]);
    call(&mut reader, "RL.INFO k1").expect("+@read: RL.INFO");
    assert!(call(&mut reader, writes[0]).is_err_and(|e| e.starts_with("NOPERM")));
    if category_lists(&mut admin, "ratelimit", "rl.tokenbucket") {
        let mut limited = user_conn(&server, &mut admin, "limited", &["~*", "+@ratelimit"]);
        for line in writes {
            call(&mut limited, &format!("{line} AT {t}")).unwrap_or_else(|e| panic!("+@ratelimit: {line}: {e}"));
        }
        call(&mut limited, "RL.INFO k1").expect("+@ratelimit: RL.INFO");
        assert!(call(&mut limited, "SET x 1").is_err_and(|e| e.starts_with("NOPERM")));
    } else {
        println!("note: this server has no module-defined ACL categories (7.4+): no @ratelimit");
    }
}
