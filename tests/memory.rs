//! Memory behaviour against a real redis-server:
//! - under `maxmemory` with `noeviction`, RL.* commands (flagged deny-oom) answer `OOM` once memory
//!   is full, create nothing and leave existing limiters untouched, DRYRUN and COST 0 included;
//! - churn: tens of thousands of limiters of every algorithm (sliding logs with hundreds of entries)
//!   created then removed by DEL, UNLINK, FLUSHALL ASYNC and expiry, round after round: once the
//!   keys are gone `used_memory` is back near its baseline (the module frees what it allocates,
//!   through Redis's allocator, so a leak would show there) and does not grow across rounds;
//! - eviction: with a small `maxmemory` and LRU/LFU/TTL/random policies, limiter keys are evicted
//!   and the server stays healthy;
//! - size: a limiter with everyday numbers packs into 32 bytes; on Redis 7.0 its key takes no more
//!   than a short string key (newer servers store strings in less, see PACKED_USAGE).

mod common;
use common::*;

use std::time::{Duration, Instant};

/// Every algorithm's command with parameters of long periods (keys live through the test).
const LONG: [(&str, &str); 5] = [
    ("RL.TOKENBUCKET", "10 1 1000000000"),
    ("RL.FIXED", "10 10000000000000"),
    ("RL.SLIDING", "1000 1000000000"),
    ("RL.GCRA", "9 1 1000000000"),
    ("CL.THROTTLE", "9 1 1000000"),
];

fn used_memory(con: &mut Connection) -> i64 {
    info_field(con, "memory", "used_memory").parse().expect("used_memory")
}

fn dbsize(con: &mut Connection) -> i64 {
    redis::cmd("DBSIZE").query(con).expect("DBSIZE")
}

/// The line as it would be sent for `key`, with AT where the command takes it. CL.THROTTLE takes
/// `COST n` as its quantity and has no DRYRUN.
fn line(command: &str, key: &str, params: &str, extra: &str, at: i64) -> String {
    if command == "CL.THROTTLE" {
        let quantity = extra.strip_prefix("COST ").unwrap_or("");
        format!("{command} {key} {params} {quantity}")
    } else {
        format!("{command} {key} {params} {extra} AT {at}")
    }
}

/// Sends space-separated command lines pipelined in chunks of 1000, encoded by hand (the redis
/// crate's command builder is slow in debug builds); every reply must be a success.
fn pipelined(con: &mut Connection, lines: impl IntoIterator<Item = String>) {
    use redis::ConnectionLike;
    let mut packed = Vec::new();
    let mut n = 0;
    let mut flush = |packed: &mut Vec<u8>, n: &mut usize| {
        let replies = con.req_packed_commands(packed, 0, *n).expect("pipelined commands");
        if let Some(e) = replies.iter().find(|r| matches!(r, redis::Value::ServerError(_))) {
            panic!("pipelined command failed: {e:?}");
        }
        packed.clear();
        *n = 0;
    };
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        packed.extend_from_slice(format!("*{}\r\n", words.len()).as_bytes());
        for w in words {
            packed.extend_from_slice(format!("${}\r\n{w}\r\n", w.len()).as_bytes());
        }
        n += 1;
        if n == 1000 {
            flush(&mut packed, &mut n);
        }
    }
    if n > 0 {
        flush(&mut packed, &mut n);
    }
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// maxmemory with noeviction
// ---------------------------------------------------------------------------------------------

#[test]
fn at_maxmemory_with_noeviction_rl_commands_answer_oom_and_change_nothing() {
    let server = Server::start(&["--maxmemory", "8mb", "--maxmemory-policy", "noeviction"]);
    let mut con = server.conn();
    let t = now_ms() + 60_000;
    // Existing limiters of every algorithm, some state in each.
    for (command, params) in LONG {
        let key = format!("live:{command}");
        for _ in 0..3 {
            rl(&mut con, &line(command, &key, params, "", t));
        }
    }
    let _: () = redis::cmd("RL.LOADSTATE")
        .arg("live:loaded")
        .arg(b"\x01\x0a\x01\xe8\x07\x05\x00\x00".as_slice())
        .query(&mut con)
        .expect("RL.LOADSTATE");
    // Fill memory with 100 KB strings until SET is refused, then with ever smaller ones: a refused
    // 100 KB SET frees its request buffer, which can leave room for a small command; a refused
    // 10-byte SET leaves none.
    let mut filled = 0;
    let mut oom = String::new();
    for size in [100_000, 10_000, 1000, 100, 10] {
        let value = vec![b'x'; size];
        oom = loop {
            match redis::cmd("SET").arg(format!("fill:{filled}")).arg(&value).query::<()>(&mut con) {
                Ok(()) => filled += 1,
                Err(e) => break error_text(&e),
            }
            assert!(filled < 100_000, "SET never ran out of memory");
        };
    }
    assert!(oom.starts_with("OOM"), "SET at maxmemory: {oom}");
    // The refused SET's 100 KB argument is freed after the call, which can bring used memory back
    // under maxmemory (Valkey 8.1, Redis 8): keep it over by lowering maxmemory under what is used.
    let used = used_memory(&mut con);
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg(used - (1 << 20)).query(&mut con).expect("CONFIG");
    let keys_before = dbsize(&mut con);
    let live: Vec<String> = LONG.iter().map(|(c, _)| format!("live:{c}")).chain(["live:loaded".to_string()]).collect();
    let before: Vec<(String, i64)> =
        live.iter().map(|k| (digest_value(&mut con, k.as_bytes()), pexpiretime(&mut con, k))).collect();
    let mut refused = 0;
    for (command, params) in LONG {
        for key in [format!("live:{command}"), format!("new:{command}")] {
            for extra in ["", "COST 0", "COST 2", "DRYRUN", "COST 1 DRYRUN"] {
                let err = rl_err(&mut con, &line(command, &key, params, extra, t));
                assert!(err.starts_with("OOM"), "{command} {key} {extra}: {err}");
                refused += 1;
            }
        }
    }
    for key in ["new:loaded", "live:loaded"] {
        let err = call(&mut con, &[b"RL.LOADSTATE", key.as_bytes(), b"\x01\x0a\x01\xe8\x07\x05\x00\x00"])
            .expect_err("RL.LOADSTATE at maxmemory");
        assert!(error_text(&err).starts_with("OOM"), "RL.LOADSTATE {key}: {err:?}");
    }
    assert_eq!(dbsize(&mut con), keys_before, "a limiter was created at maxmemory");
    let after: Vec<(String, i64)> =
        live.iter().map(|k| (digest_value(&mut con, k.as_bytes()), pexpiretime(&mut con, k))).collect();
    assert_eq!(after, before, "a limiter changed at maxmemory");
    // Read-only introspection still answers.
    let info: redis::Value =
        redis::cmd("RL.INFO").arg("live:RL.SLIDING").query(&mut con).expect("RL.INFO at maxmemory");
    assert_ne!(info, redis::Value::Nil);
    // Memory freed: the same calls work again.
    let fill_keys: Vec<String> = (0..filled).map(|i| format!("fill:{i}")).collect();
    let _: i64 = redis::cmd("DEL").arg(&fill_keys).query(&mut con).expect("DEL");
    for (command, params) in LONG {
        let reply = rl(&mut con, &line(command, &format!("new:{command}"), params, "", t));
        let admitted = if command == "CL.THROTTLE" { reply[0] == 0 } else { reply[0] == 1 };
        assert!(admitted, "{command} after freeing memory: {reply:?}");
    }
    println!("maxmemory: {filled} x 100 KB filled, {refused} RL calls answered OOM");
}

// ---------------------------------------------------------------------------------------------
// Churn: no leak
// ---------------------------------------------------------------------------------------------

/// Per round: `KEYS_PER_ALGORITHM` limiters of each of the four algorithms plus `LOGS` sliding logs
/// of `ENTRIES` entries each.
const KEYS_PER_ALGORITHM: usize = 5000;
const LOGS: usize = 100;
const ENTRIES: i64 = 300;

/// Creates the round's keys; `short` gives them ~20 ms periods (a few hundred ms for the logs), so
/// they expire by themselves once the caller turns active expiry back on, else periods of days.
/// Their time is a second ahead, so none has expired before the pipeline ends: Redis 8.6 deletes a
/// key whose expiry is already past when it is written.
fn create_round(con: &mut Connection, round: usize, short: bool) {
    let t = now_ms() + if short { 1_000 } else { 60_000 };
    let (tb, fw, sl, gc, log) = if short {
        ("10 1 2", "10 20", "10 20", "9 1 2", "1000 400")
    } else {
        ("10 1 1000000000", "10 1000000000", "10 1000000000", "9 1 1000000000", "1000 1000000000")
    };
    let mut commands = Vec::new();
    for i in 0..KEYS_PER_ALGORITHM {
        for (command, params, prefix) in
            [("RL.TOKENBUCKET", tb, "tb"), ("RL.FIXED", fw, "fw"), ("RL.SLIDING", sl, "sl"), ("RL.GCRA", gc, "gc")]
        {
            commands.push(format!("{command} {prefix}:{round}:{i} {params} COST 2 AT {t}"));
        }
    }
    for i in 0..LOGS {
        for e in 0..ENTRIES {
            commands.push(format!("RL.SLIDING log:{round}:{i} {log} AT {}", t + e));
        }
    }
    pipelined(con, commands);
}

/// DEBUG SET-ACTIVE-EXPIRE: while off, short-lived keys stay countable however slow the machine is.
fn set_active_expire(con: &mut Connection, on: bool) {
    let _: () = redis::cmd("DEBUG").arg("SET-ACTIVE-EXPIRE").arg(u8::from(on)).query(con).expect("SET-ACTIVE-EXPIRE");
}

#[test]
fn churn_of_limiters_frees_their_memory() {
    // hz 100: expired keys and shrinking dictionaries are handled sooner.
    let server = Server::start(&["--hz", "100"]);
    let mut con = server.conn();
    let total = KEYS_PER_ALGORITHM * 4 + LOGS;
    let settle = |con: &mut Connection| {
        // Let cron resize the emptied dictionaries and trim client buffers.
        std::thread::sleep(Duration::from_millis(300));
        used_memory(con)
    };
    let baseline = settle(&mut con);
    let margin = 1 << 20;
    let methods = ["DEL", "UNLINK", "expiry", "FLUSHALL ASYNC", "DEL"];
    let rounds: usize = std::env::var("RL_CHURN_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(methods.len());
    let mut settled = Vec::new();
    for (round, method) in methods.iter().cycle().take(rounds).enumerate() {
        let short = *method == "expiry";
        set_active_expire(&mut con, false);
        create_round(&mut con, round, short);
        let peak = used_memory(&mut con);
        let keys = dbsize(&mut con);
        assert_eq!(keys as usize, total, "round {round}: keys created");
        set_active_expire(&mut con, true);
        if !short {
            // A sliding log of 300 entries is reported as such (about 2 bytes per entry).
            let usage: i64 =
                redis::cmd("MEMORY").arg("USAGE").arg(format!("log:{round}:0")).query(&mut con).expect("MEMORY USAGE");
            assert!(usage > ENTRIES, "MEMORY USAGE of a 300-entry log: {usage}");
        }
        match *method {
            "DEL" | "UNLINK" => {
                let names: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).expect("KEYS");
                pipelined(&mut con, names.chunks(500).map(|chunk| format!("{method} {}", chunk.join(" "))));
            }
            "FLUSHALL ASYNC" => {
                let _: () = redis::cmd("FLUSHALL").arg("ASYNC").query(&mut con).expect("FLUSHALL ASYNC");
            }
            _ => {}
        }
        wait_for(&format!("round {round} ({method}): keys gone"), Duration::from_secs(30), || dbsize(&mut con) == 0);
        let mut after = settle(&mut con);
        let deadline = Instant::now() + Duration::from_secs(10);
        while after >= baseline + margin && Instant::now() < deadline {
            after = settle(&mut con);
        }
        println!(
            "round {round} ({method}): {keys} keys, used_memory {baseline} -> {peak} -> {after} ({:+} bytes; \
             overhead {}, clients {}, dataset {})",
            after - baseline,
            info_field(&mut con, "memory", "used_memory_overhead"),
            info_field(&mut con, "memory", "mem_clients_normal"),
            info_field(&mut con, "memory", "used_memory_dataset"),
        );
        assert!(peak > baseline + 2 * margin, "round {round}: the keys took no memory? {peak}");
        assert!(after < baseline + margin, "round {round} ({method}): {after} bytes used, baseline {baseline}");
        settled.push(after);
    }
    // No growth from round to round. Redis itself keeps ~100 KB more after the first round of
    // 20,000 plain string keys created and deleted, then a few hundred bytes per round; a leak of
    // 8 bytes per key would add 160 KB per round.
    let first = settled[0];
    for (round, after) in settled.iter().enumerate() {
        assert!(*after < first + 160 * 1024, "round {round}: {after} bytes after churn, {first} after the first round");
    }
    assert_eq!(redis::cmd("PING").query::<String>(&mut con).expect("PING"), "PONG");
}

// ---------------------------------------------------------------------------------------------
// Eviction
// ---------------------------------------------------------------------------------------------

#[test]
fn eviction_of_limiter_keys_keeps_the_server_healthy() {
    // FLUSHALL SYNC below: Valkey (lazyfree-lazy-user-flush yes) otherwise frees the flushed keys in
    // the background, and a call right after can still find memory full with nothing to evict.
    let server = Server::start(&["--maxmemory", "4mb", "--maxmemory-policy", "allkeys-lru"]);
    let mut con = server.conn();
    let keys = 40_000;
    for policy in ["allkeys-lru", "allkeys-lfu", "volatile-ttl", "volatile-lru", "allkeys-random"] {
        let _: () = redis::cmd("FLUSHALL").arg("SYNC").query(&mut con).expect("FLUSHALL");
        let _: () =
            redis::cmd("CONFIG").arg("SET").arg("maxmemory-policy").arg(policy).query(&mut con).expect("policy");
        let evicted_before: i64 = info_field(&mut con, "stats", "evicted_keys").parse().expect("evicted_keys");
        let t = now_ms() + 60_000;
        // Every algorithm, with every 100th key a sliding log of 100 entries.
        let mut commands = Vec::new();
        for i in 0..keys {
            let (command, params) = LONG[i % LONG.len()];
            let key = format!("{policy}:{i}");
            commands.push(line(command, &key, params, "", t));
            if i % 100 == 0 {
                for e in 1..100 {
                    commands.push(format!("RL.SLIDING {policy}:{i}:log 1000 1000000000 AT {}", t + e));
                }
            }
        }
        // Under an eviction policy nothing is refused: room is made instead.
        pipelined(&mut con, commands);
        let evicted =
            info_field(&mut con, "stats", "evicted_keys").parse::<i64>().expect("evicted_keys") - evicted_before;
        let left = dbsize(&mut con);
        println!("{policy}: {keys} limiters (+ logs), {evicted} evicted, {left} left");
        assert!(evicted > 0, "{policy}: nothing evicted");
        assert!((left as usize) < keys, "{policy}: {left} keys left");
        assert!(used_memory(&mut con) < 5 << 20, "{policy}: used_memory above maxmemory");
        // The survivors still work, and so do new keys.
        let last = keys - 1;
        let (command, params) = LONG[last % LONG.len()];
        let reply = rl(&mut con, &line(command, &format!("{policy}:{last}"), params, "COST 0", t));
        assert!(reply[1] >= 1, "{policy}: {reply:?}");
        let _ = digest(&mut con);
        assert_eq!(redis::cmd("PING").query::<String>(&mut con).expect("PING"), "PONG");
    }
    // Room again: everything works without eviction.
    let _: () = redis::cmd("FLUSHALL").arg("SYNC").query(&mut con).expect("FLUSHALL");
    assert_eq!(rl(&mut con, &format!("RL.FIXED after 3 1000 AT {}", now_ms() + 60_000))[0], 1);
}

// ---------------------------------------------------------------------------------------------
// Size of a key
// ---------------------------------------------------------------------------------------------

fn memory_usage(con: &mut Connection, key: &str) -> i64 {
    redis::cmd("MEMORY").arg("USAGE").arg(key).query(con).expect("MEMORY USAGE")
}

/// `MEMORY USAGE` of a packed limiter (32 B of state) under a 2-byte key name, as measured on each
/// server: the rest is the server's own cost of a key, which changes between servers and allocators.
/// `SET s1 xxx` takes 64 B on Redis 7.0, 56 on 8.0, 32 on 8.6, 40 on Valkey 8.1 with libc malloc (32 with
/// jemalloc), 24 on Valkey 9.1, so "no more than a short string" is a Redis 7.0 (and Valkey 8.1 jemalloc) fact. On a server not listed, the test checks
/// that every everyday limiter takes the same size and a boxed one more.
const PACKED_USAGE: &[(&str, (u32, u32), &str, i64)] = &[
    ("redis", (7, 0), "jemalloc", 64),
    ("redis", (8, 0), "jemalloc", 64),
    ("redis", (8, 6), "jemalloc", 64),
    ("valkey", (8, 1), "libc", 72),
    ("valkey", (8, 1), "jemalloc", 32),
    ("valkey", (9, 1), "jemalloc", 64),
];

#[test]
fn an_everyday_limiter_takes_32_bytes_of_state_and_no_more_than_a_short_string_on_redis_7_0() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let _: () = redis::cmd("SET").arg("s1").arg("xxx").query(&mut con).expect("SET");
    let string = memory_usage(&mut con, "s1");
    let t = now_ms();
    rl(&mut con, &format!("RL.FIXED k0 100 60000 AT {t}"));
    let packed = memory_usage(&mut con, "k0");
    let kind = &server.kind;
    println!("{kind}: `SET s1 xxx` {string} B, a packed limiter {packed} B");
    let (major, minor, _) = kind.version;
    match PACKED_USAGE.iter().find(|(name, version, allocator, _)| {
        *name == kind.name && *version == (major, minor) && kind.allocator.starts_with(allocator)
    }) {
        Some((.., expected)) => assert_eq!(packed, *expected, "a packed limiter on {kind}"),
        None => println!("{kind}: no measured size to compare with; checking relations only"),
    }
    if kind.is_redis() && !kind.at_least(7, 2) {
        assert!(packed <= string, "on {kind} a packed limiter takes {packed} B, `SET s1 xxx` {string} B");
    }
    for (key, call) in [
        ("k1", "RL.TOKENBUCKET k1 100 10 1000"),
        ("k2", "RL.FIXED k2 100 60000"),
        ("k3", "RL.GCRA k3 99 10 1000"),
        ("k4", "RL.TOKENBUCKET k4 4294967295 4294967295 4294967295"),
    ] {
        rl(&mut con, &format!("{call} AT {t}"));
        assert_eq!(memory_usage(&mut con, key), packed, "{call}");
    }
    rl(&mut con, "CL.THROTTLE k5 15 30 60");
    assert_eq!(memory_usage(&mut con, "k5"), packed);
    // Past 32-bit numbers the limiter is boxed: larger, still exact, and packed again once it fits.
    rl(&mut con, &format!("RL.FIXED k2 4294967296 60000 AT {t}"));
    assert!(memory_usage(&mut con, "k2") > packed);
    assert_eq!(rl(&mut con, &format!("RL.FIXED k2 4294967296 60000 DRYRUN AT {t}"))[2], 4294967293);
    rl(&mut con, &format!("RL.FIXED k2 100 60000 AT {t}"));
    assert_eq!(memory_usage(&mut con, "k2"), packed);
    assert_eq!(rl(&mut con, &format!("RL.FIXED k2 100 60000 DRYRUN AT {t}"))[2], 96);
}
