//! Fuzzing the v2 commands against a real redis-server: RL.LIMIT, RL.CHECK, RL.POLICY.SET / GET /
//! DEL / LIST and RL.SLIDINGCOUNTER, with random argument vectors: 0 to 20 rules of any algorithm
//! in any case, garbage and binary words, numbers at and past the bounds and the integer limits,
//! repeated and unknown options, UPTO and DETAILS anywhere, binary policy names, keys of every
//! kind (strings, lists, single limiters, rules).
//!
//! The server must stay alive (PING after every pipelined batch) and every reply must be well
//! formed: the 5 integers within the contract's ranges, UPTO's 6th integer, at most 16 DETAILS
//! arrays of 5 integers, OK / nil / 0 / 1 / arrays as each policy command returns, or an error
//! starting with `ERR ` or `WRONGTYPE `.
//!
//! `RL_FUZZ_VECTORS` sets the number of vectors (default 10,000: seconds); `RL_SEED` replays a run.
mod common;
use common::*;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use redis::ConnectionLike;

const MAX_UNITS: i64 = 1_000_000_000_000_000;
const BATCH: usize = 500;

fn number(rng: &mut StdRng) -> Vec<u8> {
    let n: String = match rng.gen_range(0..16) {
        0 => "0".into(),
        1 => "1".into(),
        2 => MAX_UNITS.to_string(),
        3 => (MAX_UNITS + 1).to_string(),
        4 => "10000000000000".into(),
        5 => "10000000000001".into(),
        6 => u64::MAX.to_string(),
        7 => "18446744073709551616".into(),
        8 => i64::MAX.to_string(),
        9 => "-1".into(),
        10 => "1.5".into(),
        11 => "".into(),
        12 => " 7".into(),
        13 => rng.gen_range(0..100_000_000u64).to_string(),
        _ => rng.gen_range(1..50u64).to_string(),
    };
    n.into_bytes()
}

fn garbage(rng: &mut StdRng) -> Vec<u8> {
    match rng.gen_range(0..4) {
        0 => (0..rng.gen_range(0..12)).map(|_| rng.gen()).collect(),
        1 => vec![b'x'; rng.gen_range(250..10_000)],
        2 => b"\x00".to_vec(),
        _ => ["COST", "AT", "DRYRUN", "UPTO", "DETAILS", "CAP", "TOKENBUCKET", "rules"]
            .choose(rng)
            .map(|w| w.as_bytes().to_vec())
            .unwrap_or_default(),
    }
}

fn any_case(rng: &mut StdRng, word: &str) -> Vec<u8> {
    word.bytes().map(|b| if rng.gen_ratio(1, 3) { b.to_ascii_lowercase() } else { b }).collect()
}

const RULES: [(&str, usize); 5] =
    [("TOKENBUCKET", 3), ("FIXED", 2), ("SLIDING", 2), ("GCRA", 3), ("SLIDINGCOUNTER", 2)];

fn rules(rng: &mut StdRng, words: &mut Vec<Vec<u8>>) {
    let count = if rng.gen_ratio(1, 10) { rng.gen_range(0..=20) } else { rng.gen_range(1..=4) };
    for _ in 0..count {
        let (name, params) = RULES[rng.gen_range(0..RULES.len())];
        words.push(any_case(rng, name));
        // Mostly valid small parameters, sometimes anything, sometimes one too few.
        let params = if rng.gen_ratio(1, 30) { params - 1 } else { params };
        for _ in 0..params {
            words.push(if rng.gen_ratio(1, 8) {
                number(rng)
            } else {
                rng.gen_range(1..2000u64).to_string().into_bytes()
            });
        }
    }
}

fn options(rng: &mut StdRng, words: &mut Vec<Vec<u8>>, now: i64) {
    for _ in 0..rng.gen_range(0..5) {
        match rng.gen_range(0..10) {
            0 | 1 => {
                words.push(any_case(rng, "COST"));
                words.push(if rng.gen_ratio(1, 4) {
                    number(rng)
                } else {
                    rng.gen_range(0..30u64).to_string().into_bytes()
                });
            }
            2 => {
                words.push(any_case(rng, "AT"));
                let at = if rng.gen_ratio(1, 4) {
                    number(rng)
                } else {
                    (now + rng.gen_range(-5000..5000)).to_string().into_bytes()
                };
                words.push(at);
            }
            3 => words.push(any_case(rng, "DRYRUN")),
            4 | 5 => words.push(any_case(rng, "UPTO")),
            6 => words.push(any_case(rng, "DETAILS")),
            7 => {
                words.push(any_case(rng, "CAP"));
                words.push(number(rng));
            }
            8 => words.push(garbage(rng)),
            _ => {}
        }
    }
}

const KEYS: [&[u8]; 8] = [b"r1", b"r2", b"sc", b"str", b"list", b"tb", b"\x00bin\xff", b"fresh"];
const POLICIES: [&[u8]; 4] = [b"p1", b"p2", b"\x00\xff", b"gone"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Limit,
    Check,
    Counter,
    Set,
    Get,
    Del,
    List,
}

fn vector(rng: &mut StdRng, now: i64) -> (Kind, Vec<Vec<u8>>) {
    let key = |rng: &mut StdRng| -> Vec<u8> { KEYS[rng.gen_range(0..KEYS.len())].to_vec() };
    let policy = |rng: &mut StdRng| -> Vec<u8> {
        if rng.gen_ratio(1, 5) {
            garbage(rng)
        } else {
            POLICIES[rng.gen_range(0..POLICIES.len())].to_vec()
        }
    };
    let mut words: Vec<Vec<u8>>;
    let kind = match rng.gen_range(0..10) {
        0..=3 => {
            words = vec![any_case(rng, "RL.LIMIT"), key(rng)];
            rules(rng, &mut words);
            options(rng, &mut words, now);
            Kind::Limit
        }
        4 | 5 => {
            words = vec![any_case(rng, "RL.CHECK"), key(rng), policy(rng)];
            options(rng, &mut words, now);
            Kind::Check
        }
        6 => {
            words = vec![any_case(rng, "RL.SLIDINGCOUNTER"), key(rng)];
            for _ in 0..rng.gen_range(0..3) {
                words.push(if rng.gen_ratio(1, 4) {
                    number(rng)
                } else {
                    rng.gen_range(1..100u64).to_string().into_bytes()
                });
            }
            options(rng, &mut words, now);
            Kind::Counter
        }
        7 => {
            words = vec![any_case(rng, "RL.POLICY.SET"), policy(rng)];
            rules(rng, &mut words);
            if rng.gen_ratio(1, 10) {
                options(rng, &mut words, now);
            }
            Kind::Set
        }
        8 => {
            let which = rng.gen_range(0..3);
            words = vec![any_case(rng, ["RL.POLICY.GET", "RL.POLICY.DEL", "RL.POLICY.LIST"][which])];
            if which < 2 || rng.gen_ratio(1, 10) {
                words.push(policy(rng));
            }
            [Kind::Get, Kind::Del, Kind::List][which]
        }
        _ => {
            // Anything after the key.
            let name = ["RL.LIMIT", "RL.CHECK", "RL.SLIDINGCOUNTER"][rng.gen_range(0..3)];
            words = vec![any_case(rng, name), key(rng)];
            for _ in 0..rng.gen_range(0..12) {
                words.push(if rng.gen_ratio(1, 2) { garbage(rng) } else { number(rng) });
            }
            Kind::Limit
        }
    };
    if rng.gen_ratio(1, 50) {
        // Too few words.
        words.truncate(rng.gen_range(1..=2));
    }
    (kind, words)
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

fn check_decision(items: &[Value], words: &[Vec<u8>]) -> Result<(), String> {
    let ints: Vec<i64> = items.iter().map_while(int).collect();
    if ints.len() != 5 && ints.len() != 6 {
        return Err(format!("{} leading integers", ints.len()));
    }
    let [allowed, limit, remaining, retry, reset] = [ints[0], ints[1], ints[2], ints[3], ints[4]];
    let ok = (0..=1).contains(&allowed)
        && (1..=MAX_UNITS).contains(&limit)
        && (0..=limit).contains(&remaining)
        && (retry == -1 || retry >= 0)
        && (allowed == 0 || retry == -1)
        && reset >= 0;
    if !ok {
        return Err(format!("out of range: {ints:?}"));
    }
    // After the key (and RL.CHECK's policy name, which may be any word).
    let skip = if words[0].eq_ignore_ascii_case(b"RL.CHECK") { 3 } else { 2 };
    let upto = words.iter().skip(skip).any(|w| w.eq_ignore_ascii_case(b"UPTO"));
    if upto != (ints.len() == 6) {
        return Err(format!("UPTO {upto} but {} integers", ints.len()));
    }
    if let Some(&g) = ints.get(5) {
        if !(0..=MAX_UNITS).contains(&g) || (g >= 1) != (allowed == 1) {
            return Err(format!("grant {g} with allowed {allowed}"));
        }
    }
    let details = &items[ints.len()..];
    if details.len() > 16 {
        return Err(format!("{} DETAILS arrays", details.len()));
    }
    for rule in details {
        let Value::Array(rule) = rule else { return Err(format!("DETAILS item {rule:?}")) };
        let rule: Vec<i64> = rule.iter().map_while(int).collect();
        if rule.len() != 5 || !(0..=1).contains(&rule[0]) || rule[1] < 1 || !(0..=rule[1]).contains(&rule[2]) {
            return Err(format!("DETAILS {rule:?}"));
        }
        if rule[3] < -1 || rule[4] < 0 {
            return Err(format!("DETAILS {rule:?}"));
        }
        // The binding rule has the least remaining.
        if rule[2] < remaining {
            return Err(format!("a rule with less remaining ({}) than the binding one ({remaining})", rule[2]));
        }
    }
    Ok(())
}

fn check(kind: Kind, words: &[Vec<u8>], reply: &Value) -> Result<(), String> {
    if let Value::ServerError(e) = reply {
        let code = e.code();
        return if (code == "ERR" || code == "WRONGTYPE") && !e.details().unwrap_or("").trim().is_empty() {
            Ok(())
        } else {
            Err(format!("error {code:?} {:?}", e.details()))
        };
    }
    match (kind, reply) {
        (Kind::Limit | Kind::Check | Kind::Counter, Value::Array(items)) => check_decision(items, words),
        (Kind::Set, Value::Okay) => Ok(()),
        (Kind::Set, Value::SimpleString(s)) if s == "OK" => Ok(()),
        (Kind::Del, Value::Int(0 | 1)) => Ok(()),
        (Kind::Get, Value::Nil) => Ok(()),
        (Kind::Get, Value::Array(rules)) if (1..=16).contains(&rules.len()) => {
            for rule in rules {
                let Value::Array(items) = rule else { return Err(format!("GET item {rule:?}")) };
                let name_ok = matches!(items.first(), Some(Value::BulkString(n))
                    if RULES.iter().any(|(r, _)| r.as_bytes() == n.as_slice()));
                let numbers_ok = items.iter().skip(1).all(|v| int(v).is_some_and(|v| (0..=MAX_UNITS).contains(&v)));
                if !name_ok || !numbers_ok || !(3..=4).contains(&items.len()) {
                    return Err(format!("GET rule {items:?}"));
                }
            }
            Ok(())
        }
        (Kind::List, Value::Array(names)) => {
            let names: Vec<&Vec<u8>> = names
                .iter()
                .map(|n| if let Value::BulkString(n) = n { Ok(n) } else { Err(format!("LIST item {n:?}")) })
                .collect::<Result<_, _>>()?;
            if names.windows(2).all(|w| w[0] < w[1]) && names.iter().all(|n| (1..=256).contains(&n.len())) {
                Ok(())
            } else {
                Err("LIST not sorted or a name out of bounds".into())
            }
        }
        (kind, reply) => Err(format!("{kind:?}: unexpected reply {reply:?}")),
    }
}

fn describe(words: &[Vec<u8>]) -> String {
    words
        .iter()
        .map(|w| {
            let shown: String =
                w.iter().take(40).flat_map(|&b| std::ascii::escape_default(b)).map(char::from).collect();
            if w.len() > 40 {
                format!("'{shown}...'({})", w.len())
            } else {
                format!("'{shown}'")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every policy with its rules.
fn table(con: &mut Connection) -> Vec<(Vec<u8>, Value)> {
    let names: Vec<Vec<u8>> = redis::cmd("RL.POLICY.LIST").query(con).expect("LIST");
    names
        .into_iter()
        .map(|n| {
            let rules: Value = redis::cmd("RL.POLICY.GET").arg(&n).query(con).expect("GET");
            (n, rules)
        })
        .collect()
}

fn fixtures(con: &mut Connection, now: i64) {
    let mut pipe = redis::pipe();
    pipe.cmd("SET").arg("str").arg("x").ignore();
    pipe.cmd("RPUSH").arg("list").arg("a").ignore();
    pipe.cmd("RL.TOKENBUCKET").arg("tb").arg(10).arg(1).arg(1000).arg("AT").arg(now).ignore();
    pipe.cmd("RL.SLIDINGCOUNTER").arg("sc").arg(10).arg(60000).arg("AT").arg(now).ignore();
    pipe.cmd("RL.LIMIT").arg("r1").arg(&["FIXED", "5", "60000", "SLIDING", "3", "1000"]).arg("AT").arg(now).ignore();
    pipe.cmd("RL.POLICY.SET").arg("p1").arg(&["GCRA", "3", "1", "1000", "SLIDINGCOUNTER", "9", "5000"]).ignore();
    pipe.cmd("RL.POLICY.SET").arg("p2").arg(&["TOKENBUCKET", "5", "1", "100"]).ignore();
    pipe.query::<()>(con).expect("fixtures");
}

#[test]
fn random_vectors_for_the_v2_commands_never_crash_and_replies_are_well_formed() {
    let mut rng = seeded_rng("fuzz_rules");
    let total: usize = std::env::var("RL_FUZZ_VECTORS").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(10_000);
    let server = Server::start(&[]);
    let mut con = server.conn();
    let now = now_ms() + 10_000;
    fixtures(&mut con, now);
    let mut sent = 0;
    let mut errors = 0;
    while sent < total {
        let batch: Vec<(Kind, Vec<Vec<u8>>)> = (0..BATCH.min(total - sent)).map(|_| vector(&mut rng, now)).collect();
        let mut pipe = redis::pipe();
        for (_, words) in &batch {
            let mut cmd = redis::Cmd::new();
            for w in words {
                cmd.arg(w.as_slice());
            }
            pipe.add_command(cmd);
        }
        let replies = con
            .req_packed_commands(&pipe.get_packed_pipeline(), 0, batch.len())
            .unwrap_or_else(|e| panic!("the connection broke in the batch after {sent} vectors: {e}"));
        for ((kind, words), reply) in batch.iter().zip(&replies) {
            errors += usize::from(matches!(reply, Value::ServerError(_)));
            if let Err(problem) = check(*kind, words, reply) {
                panic!("{}: {problem}", describe(words));
            }
        }
        sent += batch.len();
        let pong: String = redis::cmd("PING").query(&mut con).expect("server alive");
        assert_eq!(pong, "PONG");
        if rng.gen_ratio(1, 5) {
            // Persistence of whatever the vectors left: every value and the policy table reload.
            let (keys, policies) = (key_states(&mut con), table(&mut con));
            let _: String = redis::cmd("DEBUG").arg("RELOAD").query(&mut con).expect("DEBUG RELOAD");
            assert_same_live_keys(&key_states(&mut con), &keys);
            assert_eq!(table(&mut con), policies);
        }
    }
    eprintln!("fuzz_rules: {sent} vectors, {errors} errors");
    assert!(errors < sent, "every vector was an error");
}
