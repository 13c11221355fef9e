//! RL.SLIDINGCOUNTER on a real server: the contract's formulas on hand-checked examples, the
//! retry and reset properties on random states, memory, DUMP/RESTORE, RDB and AOF, replication,
//! RL.INFO, INFO rl, keyspace events, COMMAND DOCS, extremes, and the v1 RDB fixture alongside.
mod common;
use common::*;
use rand::Rng;
use std::time::Duration;

const W: i64 = 1000;

/// A time at the start of a window of `w` ms, far enough ahead that nothing expires during a test.
fn aligned(w: i64) -> i64 {
    (now_ms() + 100_000_000) / w * w
}

#[test]
fn hand_checked_examples() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let s = aligned(W);
    let call =
        |con: &mut Connection, extra: &str, at: i64| rl(con, &format!("RL.SLIDINGCOUNTER k 10 1000 {extra} AT {at}"));
    // 6 at the window's start: estimate 6, idle 2 windows later.
    assert_eq!(call(&mut con, "COST 6", s), [1, 10, 4, -1, 2000]);
    // 250 ms into the next window: prev 6 weighs 6 * 750 / 1000 = 4.5; remaining floor(5.5) = 5.
    assert_eq!(call(&mut con, "COST 0", s + 1250), [1, 10, 5, -1, 750]);
    // 5 more: 6 * 750 + (0 + 5) * 1000 = 9500 <= 10000. Estimate 9.5, idle at s + 3000.
    assert_eq!(call(&mut con, "COST 5", s + 1250), [1, 10, 0, -1, 1750]);
    // 1 more: 4500 + 6000 > 10000. Admitted once 6 * (1000 - e) + 6000 <= 10000: e >= 333.3, so
    // at s + 1334, 84 ms later.
    assert_eq!(call(&mut con, "COST 1", s + 1250), [0, 10, 0, 84, 1750]);
    assert_eq!(call(&mut con, "COST 1 DRYRUN", s + 1333)[0], 0);
    assert_eq!(call(&mut con, "COST 1 DRYRUN", s + 1334)[0], 1);
    // 5 in a window whose previous one is empty: prev 5 at s + 2000, weighing 5 * 1000 / 1000.
    // COST 6 at s + 2000: 5000 + 6000 > 10000; at s + 2200 5 * 800 + 6000 = 10000 passes.
    assert_eq!(call(&mut con, "COST 6", s + 2000), [0, 10, 5, 200, 1000]);
    // More than the limit: never, retry -1.
    assert_eq!(call(&mut con, "COST 11", s + 2000), [0, 10, 5, -1, 1000]);
    // Two windows later everything has gone: the key expired at s + 3000 (its reset).
    let expire: i64 = redis::cmd("PEXPIRETIME").arg("k").query(&mut con).expect("PEXPIRETIME");
    assert_eq!(expire, s + 3000);
    assert_eq!(call(&mut con, "COST 0", s + 3000), [1, 10, 10, -1, 0]);
    // A new limit keeps curr and prev; a new window starts idle. A lowered limit already
    // exceeded: remaining 0, COST 0 still allowed.
    rl(&mut con, &format!("RL.SLIDINGCOUNTER r 10 1000 COST 8 AT {}", s + 5000));
    assert_eq!(rl(&mut con, &format!("RL.SLIDINGCOUNTER r 5 1000 COST 0 AT {}", s + 5100)), [1, 5, 0, -1, 1900]);
    assert_eq!(rl(&mut con, &format!("RL.SLIDINGCOUNTER r 5 2000 COST 0 AT {}", s + 5100)), [1, 5, 5, -1, 0]);
    // The rejected reconfiguration is written: reset describes later calls, the key expires then.
    // Retry: 8 in this window never fit 5; in the next one 8 * (1000 - e) + 1000 <= 5000 from e = 500.
    assert_eq!(rl(&mut con, &format!("RL.SLIDINGCOUNTER r 5 1000 AT {}", s + 5100)), [0, 5, 0, 1400, 1900]);
    let info = info_fields(&mut con, "r");
    assert_eq!(info["limit"], Value::Int(5));
}

/// On random states: the same cost passes at now + retry and not at now + retry - 1; COST 0 at
/// now + reset shows an idle limiter and at now + reset - 1 not yet.
#[test]
fn retry_and_reset_are_the_least_times_that_hold() {
    let mut rng = seeded_rng("retry_and_reset_are_the_least_times_that_hold");
    let server = Server::start(&[]);
    let mut con = server.conn();
    let base = aligned(1);
    for k in 0..150 {
        let limit = rng.gen_range(1..30);
        let w = rng.gen_range(1..5000);
        let params = format!("{limit} {w}");
        let key = format!("k{k}");
        let mut t = base + k * 10_000_000;
        for _ in 0..rng.gen_range(1..20) {
            t += rng.gen_range(0..w);
            rl(&mut con, &format!("RL.SLIDINGCOUNTER {key} {params} COST {} AT {t}", rng.gen_range(1..=limit)));
        }
        t += rng.gen_range(0..w);
        let cost = rng.gen_range(1..=limit);
        let probe = |con: &mut Connection, cost: i64, at: i64| {
            rl(con, &format!("RL.SLIDINGCOUNTER {key} {params} COST {cost} DRYRUN AT {at}"))
        };
        let r = probe(&mut con, cost, t);
        if r[0] == 0 {
            let retry = r[3];
            assert!(retry >= 1, "{key} {params} cost {cost} at {t}: {r:?}");
            assert_eq!(probe(&mut con, cost, t + retry)[0], 1, "{key}: not admitted at now + retry");
            assert_eq!(probe(&mut con, cost, t + retry - 1)[0], 0, "{key}: admitted before now + retry");
        }
        // reset after a COST 0 call: the state as it is (an admitted DRYRUN's reset counts its cost).
        let reset = probe(&mut con, 0, t)[4];
        let idle = probe(&mut con, 0, t + reset);
        assert_eq!((idle[2], idle[4]), (limit, 0), "{key}: not idle at now + reset");
        if reset > 0 {
            let before = probe(&mut con, 0, t + reset - 1);
            assert!(before[4] > 0, "{key} {params} at {t}: reset {reset}, at now + reset - 1: {before:?}");
        }
        // remaining is the largest cost admitted now.
        let remaining = probe(&mut con, 0, t)[2];
        assert_eq!(probe(&mut con, remaining, t)[0], 1);
        assert_eq!(probe(&mut con, remaining + 1, t)[0], 0);
    }
}

#[test]
fn sixty_four_bytes_per_key_whatever_the_rate() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let t = now_ms();
    let usage = |con: &mut Connection, key: &str| -> i64 {
        redis::cmd("MEMORY").arg("USAGE").arg(key).query(con).expect("MEMORY USAGE")
    };
    // No more than a token bucket's, whatever the server counts around a key (64 B on Redis 7.0).
    rl(&mut con, &format!("RL.TOKENBUCKET abd 10 1 1000 AT {t}"));
    let bucket = usage(&mut con, "abd");
    if server.kind.is_redis() && !server.kind.at_least(7, 2) {
        assert_eq!(bucket, 64, "a token bucket on {}", server.kind);
    }
    for (limit, window, cost) in
        [(10, 1000, 1), (1_000_000, 3_600_000, 999_999), (4_294_967_295u64, 4_294_967_295u64, 7)]
    {
        rl(&mut con, &format!("RL.SLIDINGCOUNTER abc {limit} {window} COST {cost} AT {t}"));
        let counter = usage(&mut con, "abc");
        assert!(counter <= bucket, "{limit}/{window}: {counter} B, a token bucket {bucket} B on {}", server.kind);
        let _: i64 = redis::cmd("DEL").arg("abc").query(&mut con).expect("DEL");
    }
}

#[test]
fn dump_restore_and_copy() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let t = aligned(60_000);
    rl(&mut con, &format!("RL.SLIDINGCOUNTER sc 10 60000 COST 4 AT {t}"));
    rl(&mut con, &format!("RL.SLIDINGCOUNTER sc 10 60000 COST 3 AT {}", t + 61_000));
    // A large one (boxed).
    rl(&mut con, &format!("RL.SLIDINGCOUNTER big 1000000000000000 10000000000000 COST 99999999999 AT {t}"));
    for key in ["sc", "big"] {
        let payload: Vec<u8> = redis::cmd("DUMP").arg(key).query(&mut con).expect("DUMP");
        let expire: i64 = redis::cmd("PEXPIRETIME").arg(key).query(&mut con).expect("PEXPIRETIME");
        let copy = format!("{key}:restored");
        let _: String =
            redis::cmd("RESTORE").arg(&copy).arg(expire).arg(&payload).arg("ABSTTL").query(&mut con).expect("RESTORE");
        assert_eq!(digest_value(&mut con, copy.as_bytes()), digest_value(&mut con, key.as_bytes()));
    }
    let a = rl(&mut con, &format!("RL.SLIDINGCOUNTER sc 10 60000 COST 2 DRYRUN AT {}", t + 62_000));
    let b = rl(&mut con, &format!("RL.SLIDINGCOUNTER sc:restored 10 60000 COST 2 DRYRUN AT {}", t + 62_000));
    assert_eq!(a, b);
    // A corrupt payload is refused.
    let mut payload: Vec<u8> = redis::cmd("DUMP").arg("sc").query(&mut con).expect("DUMP");
    let middle = payload.len() / 2;
    payload[middle] ^= 0xff;
    assert!(redis::cmd("RESTORE").arg("bad").arg(0).arg(&payload).query::<Value>(&mut con).is_err());
}

fn traffic(con: &mut Connection, seed_name: &str) {
    let mut rng = seeded_rng(seed_name);
    let base = now_ms() + 100_000;
    for i in 0..400 {
        let key = format!("sc:{}", rng.gen_range(0..20));
        let line = format!(
            "RL.SLIDINGCOUNTER {key} {} {} COST {} AT {}",
            rng.gen_range(5..9),
            if rng.gen_ratio(1, 20) { 120_000 } else { 60_000 },
            rng.gen_range(0..4),
            base + i * rng.gen_range(0..300)
        );
        rl(con, &line);
    }
}

#[test]
fn rdb_and_aof_restore_the_same_state() {
    let mut server = Server::start(&[]);
    traffic(&mut server.conn(), "sliding_counter_rdb");
    let before = key_states(&mut server.conn());
    assert!(!before.is_empty());
    let _: String = redis::cmd("DEBUG").arg("RELOAD").query(&mut server.conn()).expect("DEBUG RELOAD");
    assert_same_live_keys(&key_states(&mut server.conn()), &before);
    let _: String = redis::cmd("SAVE").query(&mut server.conn()).expect("SAVE");
    server.restart("NOSAVE");
    assert_same_live_keys(&key_states(&mut server.conn()), &before);
    for preamble in ["no", "yes"] {
        let mut server =
            Server::start(&["--appendonly", "yes", "--appendfsync", "always", "--aof-use-rdb-preamble", preamble]);
        traffic(&mut server.conn(), "sliding_counter_aof");
        let _: String = redis::cmd("BGREWRITEAOF").query(&mut server.conn()).expect("BGREWRITEAOF");
        wait_for_rewrite(&server);
        traffic(&mut server.conn(), "sliding_counter_aof/after");
        let before = key_states(&mut server.conn());
        server.restart("NOSAVE");
        assert_same_live_keys(&key_states(&mut server.conn()), &before);
    }
}

#[test]
fn a_replica_ends_digest_equal() {
    let master = Server::start(&[]);
    let replica = start_replica(&master, &[], &[]);
    let mut rc = replica.conn();
    let mut mc = master.conn();
    traffic(&mut mc, "sliding_counter_replica");
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(20_000).query(&mut mc).expect("WAIT");
    assert_eq!(acked, 1);
    assert_eq!(digest(&mut rc), digest(&mut mc));
    assert_eq!(key_states(&mut rc), key_states(&mut mc));
}

fn info_fields(con: &mut Connection, key: &str) -> std::collections::HashMap<String, Value> {
    let flat: Vec<Value> = redis::cmd("RL.INFO").arg(key).query(con).expect("RL.INFO");
    flat.chunks(2).map(|p| (redis::from_redis_value::<String>(&p[0]).expect("name"), p[1].clone())).collect()
}

#[test]
fn rl_info_info_rl_events_and_docs() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let _: () =
        redis::cmd("CONFIG").arg("SET").arg("notify-keyspace-events").arg("Kd").query(&mut con).expect("CONFIG");
    let mut sub = server.conn();
    sub.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut pubsub = sub.as_pubsub();
    pubsub.psubscribe("__keyspace@0__:*").expect("PSUBSCRIBE");
    let t = now_ms() + 60_000;
    rl(&mut con, &format!("RL.SLIDINGCOUNTER k 2 60000 COST 2 AT {t}")); // event
    rl(&mut con, &format!("RL.SLIDINGCOUNTER k 2 60000 AT {t}")); // rejected: none
    rl(&mut con, &format!("RL.SLIDINGCOUNTER k 2 60000 DRYRUN AT {t}")); // none
    rl(&mut con, &format!("RL.SLIDINGCOUNTER k 2 60000 COST 0 AT {t}")); // none
    rl(&mut con, &format!("RL.SLIDINGCOUNTER k 3 60000 AT {t}")); // admitted under a new limit: event
    rl(&mut con, &format!("RL.LIMIT l SLIDINGCOUNTER 2 60000 AT {t}")); // rl.limit
    let _: String =
        redis::cmd("RL.POLICY.SET").arg(&["p", "SLIDINGCOUNTER", "2", "60000"]).query(&mut con).expect("SET");
    rl(&mut con, &format!("RL.CHECK c p AT {t}")); // rl.check
    let _: i64 = redis::cmd("PUBLISH").arg("__keyspace@0__:end").arg("end").query(&mut con).expect("PUBLISH");
    let mut events = Vec::new();
    loop {
        let msg = pubsub.get_message().expect("keyspace event");
        let channel = msg.get_channel_name().to_string();
        if channel == "__keyspace@0__:end" {
            break;
        }
        events.push(format!("{channel} {}", msg.get_payload::<String>().expect("payload")));
    }
    assert_eq!(
        events,
        [
            "__keyspace@0__:k rl.slidingcounter",
            "__keyspace@0__:k rl.slidingcounter",
            "__keyspace@0__:l rl.limit",
            "__keyspace@0__:c rl.check"
        ]
    );
    let info = info_fields(&mut con, "k");
    let names: Vec<&str> =
        ["algorithm", "limit", "window_ms", "remaining", "reset_after_ms", "last_update_ms", "ttl_ms"]
            .into_iter()
            .filter(|n| !info.contains_key(*n))
            .collect();
    assert!(names.is_empty(), "missing {names:?} in {info:?}");
    assert_eq!(info["algorithm"], Value::BulkString(b"slidingcounter".to_vec()));
    assert_eq!((info["limit"].clone(), info["remaining"].clone()), (Value::Int(3), Value::Int(0)));
    let stats: String = redis::cmd("INFO").arg("rl").query(&mut con).expect("INFO rl");
    assert!(stats.contains("rl_slidingcounter:admitted=2,rejected=1,peeks=2,errors=0"), "{stats}");
    assert!(stats.contains("rl_limit:admitted=1,"), "{stats}");
    assert!(stats.contains("rl_check:admitted=1,"), "{stats}");
    assert!(stats.contains("rl_policies:1"), "{stats}");
    for name in [
        "rl.slidingcounter",
        "rl.limit",
        "rl.check",
        "rl.policy.set",
        "rl.policy.get",
        "rl.policy.del",
        "rl.policy.list",
    ] {
        let docs: Vec<Value> = redis::cmd("COMMAND").arg("DOCS").arg(name).query(&mut con).expect("DOCS");
        let text = format!("{docs:?}");
        assert!(text.contains("summary"), "{name}: {text}");
        let info: Vec<Value> = redis::cmd("COMMAND").arg("INFO").arg(name).query(&mut con).expect("INFO");
        assert_ne!(info[0], Value::Nil, "{name} not registered");
    }
}

#[test]
fn extremes_at_ten_to_the_fifteen() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let w: i64 = 10_000_000_000_000;
    let l: i64 = 1_000_000_000_000_000;
    let t = 98 * w; // the start of a window, 2 * 10^13 before the last time AT takes
    let call =
        |con: &mut Connection, extra: &str, at: i64| rl(con, &format!("RL.SLIDINGCOUNTER x {l} {w} {extra} AT {at}"));
    assert_eq!(call(&mut con, &format!("COST {l}"), t), [1, l, 0, -1, 2 * w]);
    // The next unit passes 1 ms into the next window: l * (w - 1) + w <= l * w.
    assert_eq!(call(&mut con, "COST 1", t), [0, l, 0, w + 1, 2 * w]);
    assert_eq!(call(&mut con, "COST 1 DRYRUN", t + w)[0], 0);
    // Then the estimate is l * (w - 1) / w + 1 = l - 99: 99 remain.
    assert_eq!(call(&mut con, "COST 1", t + w + 1), [1, l, 99, -1, 2 * w - 1]);
    assert_eq!(call(&mut con, "COST 100", t + w + 1), [0, l, 99, 1, 2 * w - 1]);
    for bad in [
        format!("RL.SLIDINGCOUNTER x {} {w}", l + 1),
        format!("RL.SLIDINGCOUNTER x {l} {}", w + 1),
        format!("RL.SLIDINGCOUNTER x 0 {w}"),
        format!("RL.SLIDINGCOUNTER x {l} 0"),
        format!("RL.SLIDINGCOUNTER x {l} {w} COST {}", l + 1),
        format!("RL.SLIDINGCOUNTER x {l} {w} AT {}", l + 1),
        "RL.SLIDINGCOUNTER x 18446744073709551616 1000".to_string(),
    ] {
        assert!(rl_err(&mut con, &bad).starts_with("ERR "), "{bad}");
    }
}

#[test]
fn the_v1_fixture_loads_beside_new_values() {
    let mut server = Server::start(&[]);
    std::fs::copy("tests/fixtures/rl-encoding-v1.rdb", server.dir.join("dump.rdb")).expect("fixture");
    server.restart("NOSAVE");
    let mut con = server.conn();
    let keys: i64 = redis::cmd("DBSIZE").query(&mut con).expect("DBSIZE");
    assert_eq!(keys, 4);
    let t = 4_000_000_000_000i64;
    rl(&mut con, &format!("RL.SLIDINGCOUNTER sc 10 60000 COST 3 AT {t}"));
    rl(&mut con, &format!("RL.LIMIT lim SLIDINGCOUNTER 10 60000 SLIDING 5 1000 COST 3 AT {t}"));
    let _: String =
        redis::cmd("RL.POLICY.SET").arg(&["p", "SLIDINGCOUNTER", "2", "60000"]).query(&mut con).expect("SET");
    let before = key_states(&mut con);
    let _: String = redis::cmd("SAVE").query(&mut con).expect("SAVE");
    server.restart("NOSAVE");
    let mut con = server.conn();
    assert_eq!(key_states(&mut con), before);
    let p: Value = redis::cmd("RL.POLICY.GET").arg("p").query(&mut con).expect("GET");
    assert_ne!(p, Value::Nil);
}
