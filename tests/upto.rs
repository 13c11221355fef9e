//! UPTO (partial grants) on every algorithm command and on RL.LIMIT / RL.CHECK, RESP2 and RESP3:
//! g is the largest cost admitted now, the call is exactly an ordinary call with COST g (a rejected
//! COST 1 call when g = 0), DRYRUN writes nothing, replication and the AOF carry COST g, INFO rl
//! counts it admitted iff g >= 1.
mod common;
use common::*;
use rand::rngs::StdRng;
use rand::Rng;

fn ints(value: Value) -> Vec<i64> {
    redis::from_redis_value(&value).unwrap_or_else(|e| panic!("not integers: {value:?}: {e}"))
}

fn query(con: &mut Connection, line: &str) -> Value {
    let words: Vec<&str> = line.split_whitespace().collect();
    redis::cmd(words[0]).arg(&words[1..]).query(con).unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// A command with a key placeholder `{}` and random small parameters of one algorithm.
fn random_call(rng: &mut StdRng) -> String {
    let rule = match rng.gen_range(0..7) {
        0 => format!("RL.TOKENBUCKET {{}} {} {} {}", rng.gen_range(1..20), rng.gen_range(1..4), rng.gen_range(1..3000)),
        1 => format!("RL.FIXED {{}} {} {}", rng.gen_range(1..20), rng.gen_range(1..3000)),
        2 => format!("RL.SLIDING {{}} {} {}", rng.gen_range(1..20), rng.gen_range(1..3000)),
        3 => format!("RL.GCRA {{}} {} {} {}", rng.gen_range(0..20), rng.gen_range(1..4), rng.gen_range(1..3000)),
        4 => format!("RL.SLIDINGCOUNTER {{}} {} {}", rng.gen_range(1..20), rng.gen_range(1..3000)),
        5 => format!(
            "RL.LIMIT {{}} TOKENBUCKET {} 1 500 SLIDINGCOUNTER {} 2000",
            rng.gen_range(5..20),
            rng.gen_range(5..30)
        ),
        _ => "RL.CHECK {} pol".to_string(),
    };
    rule
}

/// Runs `UPTO COST n` on key a and the ordinary call with COST max(g, 1) on twin key b, both in
/// the same state before, and checks that replies, values and expiries agree.
#[test]
fn upto_is_an_ordinary_call_with_cost_g_on_every_command() {
    let mut rng = seeded_rng("upto_is_an_ordinary_call_with_cost_g_on_every_command");
    let server = Server::start(&[]);
    let mut con = server.conn();
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/?protocol=resp3", server.port)).expect("client");
    let mut resp3 = client.get_connection().expect("RESP3");
    let _: String = redis::cmd("RL.POLICY.SET")
        .arg("pol")
        .arg(&["FIXED", "12", "1000", "GCRA", "3", "2", "700"])
        .query(&mut con)
        .expect("POLICY.SET");
    let base = now_ms() + 1_000_000_000;
    let mut seen = [0usize; 2]; // g = 0, g >= 1
    for round in 0..60 {
        let template = random_call(&mut rng);
        let (a, b) = (format!("a{round}"), format!("b{round}"));
        let mut clock = base + round * 100_000;
        for _ in 0..25 {
            clock += rng.gen_range(0..400);
            let n = rng.gen_range(1..25);
            let dryrun = if rng.gen_ratio(1, 6) { " DRYRUN" } else { "" };
            let details = template.starts_with("RL.LIMIT") || template.starts_with("RL.CHECK");
            let details = if details && rng.gen_ratio(1, 2) { " DETAILS" } else { "" };
            let call_a = format!("{} COST {n} UPTO AT {clock}{dryrun}{details}", template.replace("{}", &a));
            let con = if rng.gen_ratio(1, 2) { &mut resp3 } else { &mut con };
            let Value::Array(items) = query(con, &call_a) else { panic!("{call_a}: not an array") };
            let granted = match items[5] {
                Value::Int(g) => g,
                ref other => panic!("{call_a}: 6th item {other:?}"),
            };
            assert!((0..=n as i64).contains(&granted), "{call_a}: g = {granted}");
            seen[usize::from(granted >= 1)] += 1;
            // The largest: g + 1 (if <= n) is not admitted now; g is.
            if granted < n as i64 {
                let more = format!("{} COST {} DRYRUN AT {clock}", template.replace("{}", &b), granted + 1);
                assert_eq!(ints(query(con, &more))[0], 0, "{call_a}: g + 1 admitted");
            }
            let cost = granted.max(1);
            let call_b = format!("{} COST {cost} AT {clock}{dryrun}{details}", template.replace("{}", &b));
            let Value::Array(twin) = query(con, &call_b) else { panic!("{call_b}: not an array") };
            assert_eq!(items[..5], twin[..5], "{call_a} vs {call_b}");
            assert_eq!(items[6..], twin[5..], "{call_a} vs {call_b}: DETAILS");
            let reply = ints(Value::Array(items[..5].to_vec()));
            assert_eq!(reply[0], i64::from(granted >= 1), "{call_a}");
            if granted == 0 {
                assert!(reply[3] >= 0, "{call_a}: retry of a g = 0 call is when 1 unit is admitted");
            } else {
                assert_eq!(reply[3], -1);
            }
            let mut con2 = server.conn();
            assert_eq!(digest_value(&mut con2, a.as_bytes()), digest_value(&mut con2, b.as_bytes()), "{call_a}");
            let ea: i64 = redis::cmd("PEXPIRETIME").arg(&a).query(&mut con2).expect("PEXPIRETIME");
            let eb: i64 = redis::cmd("PEXPIRETIME").arg(&b).query(&mut con2).expect("PEXPIRETIME");
            assert_eq!(ea, eb, "{call_a}");
        }
    }
    assert!(seen[0] > 10 && seen[1] > 10, "both outcomes exercised: {seen:?}");
}

#[test]
fn upto_hand_checked_examples() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let t = (now_ms() / 60_000 + 10) * 60_000;
    // A fixed window of 10: ask 4 of up to 7, then up to 7 (6 left), then up to 7 (nothing left).
    assert_eq!(ints(query(&mut con, &format!("RL.FIXED f 10 60000 COST 4 AT {t}")))[2], 6);
    assert_eq!(ints(query(&mut con, &format!("RL.FIXED f 10 60000 COST 7 UPTO AT {t}"))), [1, 10, 0, -1, 60_000, 6]);
    assert_eq!(
        ints(query(&mut con, &format!("RL.FIXED f 10 60000 COST 7 UPTO AT {}", t + 1000))),
        [0, 10, 0, 59_000, 59_000, 0]
    );
    // A token bucket refilling 1 per second: 2.5 s after emptying, 2 whole tokens.
    rl(&mut con, &format!("RL.TOKENBUCKET tb 5 1 1000 COST 5 AT {t}"));
    assert_eq!(
        ints(query(&mut con, &format!("RL.TOKENBUCKET tb 5 1 1000 COST 100 UPTO AT {}", t + 2500))),
        [1, 5, 0, -1, 4500, 2]
    );
    // g = 0 on a GCRA: retry is when 1 unit passes (not -1 though COST 100 could never pass).
    let r = ints(query(&mut con, &format!("RL.GCRA g 0 1 1000 COST 100 UPTO AT {t}")));
    assert_eq!(r, [1, 1, 0, -1, 1000, 1]);
    let r = ints(query(&mut con, &format!("RL.GCRA g 0 1 1000 COST 100 UPTO AT {}", t + 400)));
    assert_eq!(r, [0, 1, 0, 600, 600, 0]);
    // RL.LIMIT: the least of the rules, DETAILS after the 6th integer.
    let r = query(&mut con, &format!("RL.LIMIT l FIXED 10 60000 SLIDING 3 1000 COST 5 UPTO DETAILS AT {t}"));
    let Value::Array(items) = r else { panic!() };
    assert_eq!(ints(Value::Array(items[..6].to_vec())), [1, 3, 0, -1, 60_000, 3]);
    assert_eq!(ints(items[6].clone()), [1, 10, 7, -1, 60_000]);
    assert_eq!(ints(items[7].clone()), [1, 3, 0, -1, 1000]);
    // UPTO DRYRUN writes nothing.
    let before = digest(&mut con);
    let r = ints(query(&mut con, &format!("RL.SLIDINGCOUNTER sc 10 1000 COST 4 UPTO DRYRUN AT {t}")));
    assert_eq!(r, [1, 10, 6, -1, 2000, 4]);
    assert_eq!(digest(&mut con), before);
}

#[test]
fn upto_needs_cost_n_of_at_least_1_everywhere() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let _: String = redis::cmd("RL.POLICY.SET").arg("p").arg(&["FIXED", "1", "1000"]).query(&mut con).expect("SET");
    for command in [
        "RL.TOKENBUCKET k 5 1 1000",
        "RL.FIXED k 5 1000",
        "RL.SLIDING k 5 1000",
        "RL.GCRA k 5 1 1000",
        "RL.SLIDINGCOUNTER k 5 1000",
        "RL.LIMIT k FIXED 5 1000",
        "RL.CHECK k p",
    ] {
        for options in ["UPTO", "UPTO COST 0", "COST 0 UPTO", "UPTO COST 1 UPTO"] {
            let e = rl_err(&mut con, &format!("{command} {options}"));
            assert!(e.starts_with("ERR "), "{command} {options}: {e}");
            assert!(e.contains("UPTO"), "{command} {options}: {e}");
        }
        // Any case, any order.
        let r = ints(query(&mut con, &format!("{command} upto cost 2 DRYRUN")));
        assert_eq!(r.len(), 6);
    }
    // CL.THROTTLE keeps redis-cell's syntax.
    assert!(rl_err(&mut con, "CL.THROTTLE c 1 1 1 UPTO").starts_with("ERR"));
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut con).expect("DBSIZE"), 0);
}

#[test]
fn info_counts_upto_admitted_iff_something_was_granted() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let t = now_ms() + 60_000;
    query(&mut con, &format!("RL.FIXED f 3 60000 COST 5 UPTO AT {t}")); // g = 3: admitted
    query(&mut con, &format!("RL.FIXED f 3 60000 COST 5 UPTO AT {t}")); // g = 0: rejected
    query(&mut con, &format!("RL.FIXED f 3 60000 COST 5 UPTO DRYRUN AT {t}")); // peek
    query(&mut con, &format!("RL.LIMIT l FIXED 3 60000 COST 2 UPTO AT {t}"));
    let info: String = redis::cmd("INFO").arg("rl").query(&mut con).expect("INFO");
    assert!(info.contains("rl_fixed:admitted=1,rejected=1,peeks=1,errors=0"), "{info}");
    assert!(info.contains("rl_limit:admitted=1,rejected=0,peeks=0,errors=0"), "{info}");
}

/// A master with appendonly and a replica: UPTO calls reach both as COST g, never UPTO.
#[test]
fn upto_replicates_and_persists_as_cost_g() {
    let master = Server::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let replica = start_replica(&master, &[], &[]);
    let mut rc = replica.conn();
    let mut mc = master.conn();
    let mut rng = seeded_rng("upto_replicates_and_persists_as_cost_g");
    let _: String = redis::cmd("RL.POLICY.SET")
        .arg("pol")
        .arg(&["FIXED", "12", "1000", "GCRA", "3", "2", "700"])
        .query(&mut mc)
        .expect("POLICY.SET");
    let t = now_ms() + 100_000;
    assert_eq!(ints(query(&mut mc, &format!("RL.SLIDING s 10 60000 COST 13 UPTO AT {t}")))[5], 10);
    for i in 0..400 {
        let template = random_call(&mut rng);
        // Each command on keys of its own (another algorithm on a key would be WRONGTYPE).
        let key = format!("{}:k{}", template.split(' ').next().unwrap_or(""), rng.gen_range(0..10));
        let line = template.replace("{}", &key);
        let n = rng.gen_range(1..30);
        query(&mut mc, &format!("{line} COST {n} UPTO AT {}", t + i * 37));
    }
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(20_000).query(&mut mc).expect("WAIT");
    assert_eq!(acked, 1);
    assert_eq!(digest(&mut rc), digest(&mut mc));
    let aof_dir = master.dir.join("appendonlydir");
    let aof: Vec<u8> = std::fs::read_dir(&aof_dir)
        .expect("appendonlydir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".incr.aof"))
        .flat_map(|e| std::fs::read(e.path()).expect("read AOF"))
        .collect();
    let has = |needle: &[u8]| aof.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle));
    assert!(!has(b"UPTO"), "UPTO reached the AOF");
    assert!(has(b"$10\r\nRL.SLIDING\r\n$1\r\ns\r\n$2\r\n10\r\n$5\r\n60000\r\n$4\r\nCOST\r\n$2\r\n10\r\n"));
}
