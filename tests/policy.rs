//! Stored policies: RL.POLICY.SET/GET/DEL/LIST, RL.CHECK, hot reload, and policies as server
//! state: RDB, AOF with and without the RDB preamble, DEBUG RELOAD, full sync and the command
//! stream to replicas, read-only replicas, invisible to FLUSHALL/DBSIZE/SCAN.
mod common;
use common::*;
use rand::Rng;

fn set(con: &mut Connection, name: &[u8], rules: &str) {
    let mut cmd = redis::cmd("RL.POLICY.SET");
    cmd.arg(name);
    for word in rules.split_whitespace() {
        cmd.arg(word);
    }
    let ok: String = cmd.query(con).unwrap_or_else(|e| panic!("RL.POLICY.SET {rules}: {e}"));
    assert_eq!(ok, "OK");
}

fn get(con: &mut Connection, name: &[u8]) -> Value {
    redis::cmd("RL.POLICY.GET").arg(name).query(con).expect("RL.POLICY.GET")
}

fn list(con: &mut Connection) -> Vec<Vec<u8>> {
    redis::cmd("RL.POLICY.LIST").query(con).expect("RL.POLICY.LIST")
}

fn del(con: &mut Connection, name: &[u8]) -> i64 {
    redis::cmd("RL.POLICY.DEL").arg(name).query(con).expect("RL.POLICY.DEL")
}

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

/// The whole table: every name with its rules as GET returns them.
fn table(con: &mut Connection) -> Vec<(Vec<u8>, Value)> {
    list(con).into_iter().map(|name| (name.clone(), get(con, &name))).collect()
}

fn some_policies(con: &mut Connection) {
    set(con, b"per-user", "tokenbucket 10 1 100 fixed 1000 86400000");
    set(con, b"tenant", "GCRA 99 100 1000");
    set(con, b"bin\x00\xff name", "SlidingCounter 5 60000 sliding 3 1000");
}

/// Everything the server's incremental AOF files hold (the commands written since the last rewrite).
fn incremental_aof(server: &Server) -> Vec<u8> {
    std::fs::read_dir(server.dir.join("appendonlydir"))
        .expect("appendonlydir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".incr.aof"))
        .flat_map(|e| std::fs::read(e.path()).expect("read AOF"))
        .collect()
}

/// WAIT on the connection that wrote: WAIT waits for that client's own last write (a fresh
/// connection has none and returns at once).
fn wait_acked(writer: &mut Connection) {
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(20_000).query(writer).expect("WAIT");
    assert_eq!(acked, 1, "replica did not acknowledge");
}

#[test]
fn set_get_del_list() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    assert_eq!(list(&mut con), Vec::<Vec<u8>>::new());
    assert_eq!(get(&mut con, b"nope"), Value::Nil);
    some_policies(&mut con);
    assert_eq!(
        get(&mut con, b"per-user"),
        Value::Array(vec![
            Value::Array(vec![bulk("TOKENBUCKET"), Value::Int(10), Value::Int(1), Value::Int(100)]),
            Value::Array(vec![bulk("FIXED"), Value::Int(1000), Value::Int(86_400_000)]),
        ])
    );
    assert_eq!(
        get(&mut con, b"bin\x00\xff name"),
        Value::Array(vec![
            Value::Array(vec![bulk("SLIDINGCOUNTER"), Value::Int(5), Value::Int(60_000)]),
            Value::Array(vec![bulk("SLIDING"), Value::Int(3), Value::Int(1000)]),
        ])
    );
    assert_eq!(list(&mut con), [b"bin\x00\xff name".to_vec(), b"per-user".to_vec(), b"tenant".to_vec()]);
    // Names are case-sensitive bytes; replacing keeps one entry.
    assert_eq!(get(&mut con, b"TENANT"), Value::Nil);
    set(&mut con, b"tenant", "fixed 1 1000");
    assert_eq!(
        get(&mut con, b"tenant"),
        Value::Array(vec![Value::Array(vec![bulk("FIXED"), Value::Int(1), Value::Int(1000)])])
    );
    assert_eq!(del(&mut con, b"tenant"), 1);
    assert_eq!(del(&mut con, b"tenant"), 0);
    assert_eq!(list(&mut con).len(), 2);
    // RESP3: the same shape.
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/?protocol=resp3", server.port)).expect("client");
    let mut resp3 = client.get_connection().expect("RESP3");
    assert_eq!(get(&mut resp3, b"per-user"), get(&mut con, b"per-user"));
    assert_eq!(get(&mut resp3, b"none"), Value::Nil);
    let info: String = redis::cmd("INFO").arg("rl").query(&mut con).expect("INFO");
    assert!(info.contains("rl_policies:2"), "{info}");
}

#[test]
fn names_of_1_and_256_bytes_any_bytes_257_refused() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    set(&mut con, &all_bytes, "FIXED 1 1000");
    set(&mut con, b"\x00", "FIXED 2 1000");
    set(&mut con, b"a", "FIXED 3 1000");
    let refuse = |con: &mut Connection, name: &[u8], rules: &[&str]| {
        let e = redis::cmd("RL.POLICY.SET").arg(name).arg(rules).query::<Value>(con).expect_err("refused");
        error_text(&e)
    };
    assert_eq!(refuse(&mut con, &[b'x'; 257], &["FIXED", "1", "1000"]), "ERR a policy name is 1 to 256 bytes");
    assert_eq!(refuse(&mut con, b"", &["FIXED", "1", "1000"]), "ERR a policy name is 1 to 256 bytes");
    for (rules, expected) in [
        (&["FIXED", "0", "1000"][..], "ERR rule 1 (FIXED): limit must be"),
        (&[][..], "ERR wrong number of arguments"),
        (&["NOPE", "1", "1000"][..], "ERR expected a rule"),
        (&["FIXED", "1", "1000", "COST", "1"][..], "ERR unexpected 'COST' after the rules"),
        (&["FIXED", "1", "1000", "DETAILS"][..], "ERR unexpected 'DETAILS' after the rules"),
    ] {
        let e = refuse(&mut con, b"bad", rules);
        assert!(e.starts_with(expected), "{rules:?}: {e}");
    }
    assert_eq!(list(&mut con), [b"\x00".to_vec(), all_bytes.clone(), b"a".to_vec()]);
    assert_eq!(get(&mut con, b"bad"), Value::Nil);
    // RL.CHECK with a binary name.
    let r: Vec<i64> = redis::cmd("RL.CHECK").arg("k").arg(&all_bytes).query(&mut con).expect("RL.CHECK");
    assert_eq!(r[..3], [1, 1, 0]);
    assert_eq!(rl_err(&mut con, "RL.CHECK k nope"), "ERR no such policy 'nope'");
    assert_eq!(rl_err(&mut con, "RL.CHECK k A"), "ERR no such policy 'A'");
    // Arity errors.
    assert!(rl_err(&mut con, "RL.POLICY.GET").starts_with("ERR wrong number of arguments"));
    assert!(rl_err(&mut con, "RL.POLICY.GET a b").starts_with("ERR wrong number of arguments"));
    assert!(rl_err(&mut con, "RL.POLICY.DEL a b").starts_with("ERR wrong number of arguments"));
    assert!(rl_err(&mut con, "RL.POLICY.LIST a").starts_with("ERR wrong number of arguments"));
}

#[test]
fn ten_thousand_policies_listed_sorted_bytewise() {
    let mut rng = seeded_rng("ten_thousand_policies_listed_sorted_bytewise");
    let server = Server::start(&[]);
    let mut con = server.conn();
    let mut names = std::collections::BTreeSet::new();
    while names.len() < 10_000 {
        let len = rng.gen_range(1..=24);
        names.insert((0..len).map(|_| rng.gen::<u8>()).collect::<Vec<u8>>());
    }
    let mut pipe = redis::pipe();
    for name in &names {
        pipe.cmd("RL.POLICY.SET").arg(name).arg(&["FIXED", "5", "1000"]).ignore();
    }
    let _: () = pipe.query(&mut con).expect("pipelined SET");
    let expected: Vec<Vec<u8>> = names.iter().cloned().collect();
    assert_eq!(list(&mut con), expected);
    let _: String = redis::cmd("DEBUG").arg("RELOAD").query(&mut con).expect("DEBUG RELOAD");
    assert_eq!(list(&mut con), expected);
    let some = expected[4321].clone();
    let r: Vec<i64> = redis::cmd("RL.CHECK").arg("k").arg(&some).query(&mut con).expect("RL.CHECK");
    assert_eq!(r[..3], [1, 5, 4]);
}

#[test]
fn a_changed_policy_applies_from_each_keys_next_call() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let t = (now_ms() / 60_000 + 10) * 60_000;
    set(&mut con, b"p", "FIXED 5 60000 TOKENBUCKET 10 1 1000");
    rl(&mut con, &format!("RL.CHECK a p COST 3 AT {t}"));
    rl(&mut con, &format!("RL.CHECK b p COST 4 AT {t}"));
    // Lower the window's limit: the counts are kept, judged by the new limit.
    set(&mut con, b"p", "FIXED 4 60000 TOKENBUCKET 10 1 1000");
    assert_eq!(rl(&mut con, &format!("RL.CHECK a p AT {}", t + 10)), [1, 4, 0, -1, 59_990]);
    // b is over the new limit: rejected, but the reconfiguration is written (a later call with
    // the old rules is a reconfiguration again).
    assert_eq!(rl(&mut con, &format!("RL.CHECK b p AT {}", t + 10)), [0, 4, 0, 59_990, 59_990]);
    let as_limit = rl(&mut con, &format!("RL.LIMIT b FIXED 4 60000 TOKENBUCKET 10 1 1000 COST 0 AT {}", t + 10));
    assert_eq!(as_limit, [1, 4, 0, -1, 59_990]);
    // Another algorithm at a position starts idle; a dropped position is forgotten.
    set(&mut con, b"p", "SLIDING 2 1000");
    assert_eq!(rl(&mut con, &format!("RL.CHECK a p AT {}", t + 20)), [1, 2, 1, -1, 1000]);
    // A deleted policy: the error, and the keys stay as they are.
    let before = digest(&mut con);
    assert_eq!(del(&mut con, b"p"), 1);
    assert_eq!(rl_err(&mut con, "RL.CHECK a p"), "ERR no such policy 'p'");
    assert_eq!(digest(&mut con), before);
}

#[test]
fn flushall_dbsize_and_scan_do_not_see_policies() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    some_policies(&mut con);
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut con).expect("DBSIZE"), 0);
    let (cursor, keys): (i64, Vec<Vec<u8>>) = redis::cmd("SCAN").arg(0).query(&mut con).expect("SCAN");
    assert_eq!((cursor, keys), (0, vec![]));
    let before = table(&mut con);
    let _: String = redis::cmd("FLUSHALL").query(&mut con).expect("FLUSHALL");
    assert_eq!(table(&mut con), before);
    assert_eq!(before.len(), 3);
}

#[test]
fn policies_survive_debug_reload_and_rdb_restart() {
    let mut server = Server::start(&[]);
    let mut con = server.conn();
    some_policies(&mut con);
    let before = table(&mut con);
    let _: String = redis::cmd("DEBUG").arg("RELOAD").query(&mut con).expect("DEBUG RELOAD");
    assert_eq!(table(&mut con), before);
    let _: String = redis::cmd("SAVE").query(&mut con).expect("SAVE");
    server.restart("NOSAVE");
    assert_eq!(table(&mut server.conn()), before);
    // A deletion saved too: the table is replaced on load, not merged.
    let mut con = server.conn();
    del(&mut con, b"tenant");
    let after = table(&mut con);
    server.restart("SAVE");
    assert_eq!(table(&mut server.conn()), after);
}

fn aof_restart(preamble: &str, rewrite: bool) {
    let mut server =
        Server::start(&["--appendonly", "yes", "--appendfsync", "always", "--aof-use-rdb-preamble", preamble]);
    let mut con = server.conn();
    let t = now_ms() + 100_000;
    some_policies(&mut con);
    set(&mut con, b"gone", "FIXED 1 1000");
    rl(&mut con, &format!("RL.CHECK k per-user COST 3 AT {t}"));
    if rewrite {
        let _: String = redis::cmd("BGREWRITEAOF").query(&mut con).expect("BGREWRITEAOF");
        wait_for_rewrite(&server);
    }
    // Changes after the rewrite land in the new incremental file.
    del(&mut con, b"gone");
    set(&mut con, b"after", "GCRA 0 1 1000");
    rl(&mut con, &format!("RL.CHECK k tenant COST 2 AT {}", t + 5));
    let before = table(&mut con);
    let keys = key_states(&mut con);
    // RL.CHECK reaches the AOF as RL.LIMIT with its rules spelled out.
    let aof = incremental_aof(&server);
    let has = |needle: &[u8]| aof.windows(needle.len()).any(|w| w == needle);
    assert!(!has(b"RL.CHECK"), "RL.CHECK in the AOF");
    assert!(has(
        b"$8\r\nRL.LIMIT\r\n$1\r\nk\r\n$4\r\nGCRA\r\n$2\r\n99\r\n$3\r\n100\r\n$4\r\n1000\r\n$4\r\nCOST\r\n$1\r\n2\r\n"
    ));
    server.restart("NOSAVE");
    let mut con = server.conn();
    assert_eq!(table(&mut con), before, "preamble {preamble}, rewrite {rewrite}");
    assert_eq!(key_states(&mut con), keys);
    // And once more, with no change in between (a rewrite of a rewrite).
    if rewrite {
        wait_for_rewrite(&server);
        let _: String = redis::cmd("BGREWRITEAOF").query(&mut con).expect("BGREWRITEAOF");
        wait_for_rewrite(&server);
        server.restart("NOSAVE");
        assert_eq!(table(&mut server.conn()), before);
    }
}

#[test]
fn policies_survive_an_aof_restart_without_preamble() {
    aof_restart("no", false);
}

#[test]
fn policies_survive_an_aof_rewrite_without_preamble() {
    aof_restart("no", true);
}

#[test]
fn policies_survive_an_aof_rewrite_with_preamble() {
    aof_restart("yes", true);
}

/// The replicated form spells a policy's numbers out from strings the module caches by value, a
/// few slots for all numbers: 16 rules of 40 distinct numbers share those slots many times over in
/// one call, and every number must still reach the AOF as it is (a string replaced in the cache
/// must outlive the call that replaced it).
#[test]
fn every_number_of_a_16_rule_policy_reaches_the_aof_as_it_is() {
    let server = Server::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut con = server.conn();
    let rules: Vec<String> = (0..16u64)
        .map(|i| match i % 3 {
            0 => format!("TOKENBUCKET {} {} {}", 1000 + i, 2 + i, 60_000 + i),
            1 => format!("FIXED {} {}", 3000 + i, 70_000 + i),
            _ => format!("GCRA {} {} {}", 5000 + i, 7 + i, 80_000 + i),
        })
        .collect();
    let rules = rules.join(" ");
    set(&mut con, b"many", &rules);
    let t = now_ms() + 100_000;
    for cost in [2, 3] {
        rl(&mut con, &format!("RL.CHECK k many COST {cost} AT {t}"));
    }
    let aof = incremental_aof(&server);
    for cost in [2, 3] {
        let words: Vec<String> = ["RL.LIMIT", "k"]
            .into_iter()
            .map(str::to_string)
            .chain(rules.split(' ').map(str::to_string))
            .chain(["COST".to_string(), cost.to_string(), "AT".to_string(), t.to_string()])
            .collect();
        let mut expected = format!("*{}\r\n", words.len()).into_bytes();
        for word in &words {
            expected.extend_from_slice(format!("${}\r\n{word}\r\n", word.len()).as_bytes());
        }
        assert!(aof.windows(expected.len()).any(|w| w == expected.as_slice()), "COST {cost}: not in the AOF as sent");
    }
}

#[test]
fn replicas_get_policies_by_full_sync_and_by_the_stream() {
    let master = Server::start(&[]);
    let mut mc = master.conn();
    some_policies(&mut mc);
    let replica = start_replica(&master, &[], &[]);
    let mut rc = replica.conn();
    // Full sync.
    assert_eq!(table(&mut rc), table(&mut mc));
    // The stream: set, replace, delete; deleting nothing is not sent.
    set(&mut mc, b"new", "FIXED 9 1000");
    set(&mut mc, b"per-user", "FIXED 8 1000");
    assert_eq!(del(&mut mc, b"tenant"), 1);
    assert_eq!(del(&mut mc, b"tenant"), 0);
    wait_acked(&mut mc);
    assert_eq!(table(&mut rc), table(&mut mc));
    // GET and LIST work on a read-only replica; SET and DEL do not.
    assert_eq!(get(&mut rc, b"new"), get(&mut mc, b"new"));
    let e = redis::cmd("RL.POLICY.SET").arg(&["x", "FIXED", "1", "1000"]).query::<Value>(&mut rc).expect_err("ro");
    assert!(error_text(&e).starts_with("READONLY"), "{e:?}");
    let e = redis::cmd("RL.POLICY.DEL").arg("new").query::<Value>(&mut rc).expect_err("ro");
    assert!(error_text(&e).starts_with("READONLY"), "{e:?}");
    // RL.CHECK on the master reaches the replica as RL.LIMIT.
    let t = now_ms() + 100_000;
    rl(&mut mc, &format!("RL.CHECK k new COST 2 AT {t}"));
    wait_acked(&mut mc);
    assert_eq!(digest(&mut rc), digest(&mut mc));
}

#[test]
fn replicas_are_digest_equal_after_random_check_and_limit_traffic_whatever_their_policies() {
    let mut rng = seeded_rng("replicas_are_digest_equal_after_random_check_and_limit_traffic");
    let master = Server::start(&[]);
    let mut mc = master.conn();
    // The replica takes writes of its own, so its policy table can differ from the master's.
    let replica = start_replica(&master, &[], &["--replica-read-only", "no"]);
    let mut rc = replica.conn();
    let policies = ["FIXED 5 60000 TOKENBUCKET 3 1 700", "SLIDINGCOUNTER 4 3000 GCRA 2 1 500", "SLIDING 6 5000"];
    for (i, rules) in policies.iter().enumerate() {
        set(&mut mc, format!("p{i}").as_bytes(), rules);
    }
    wait_acked(&mut mc);
    // The replica loses one policy and has another one's rules changed.
    assert_eq!(del(&mut rc, b"p0"), 1);
    set(&mut rc, b"p1", "FIXED 1 1");
    let base = now_ms() + 100_000;
    for i in 0..600 {
        let key = format!("k{}", rng.gen_range(0..12));
        let at = base + i * rng.gen_range(0..50);
        let cost = rng.gen_range(0..4);
        let line = if rng.gen_ratio(1, 2) {
            format!("RL.CHECK {key} p{} COST {cost} AT {at}", rng.gen_range(0..3))
        } else {
            format!("RL.LIMIT {key} {} COST {cost} AT {at}", policies[rng.gen_range(0..3)])
        };
        let line = if rng.gen_ratio(1, 5) { format!("{line} UPTO DETAILS") } else { line };
        let line = if cost == 0 { line.replace(" UPTO", "") } else { line };
        let words: Vec<&str> = line.split_whitespace().collect();
        let _: Value = redis::cmd(words[0]).arg(&words[1..]).query(&mut mc).unwrap_or_else(|e| panic!("{line}: {e}"));
        if i % 100 == 0 {
            // Policy changes on the master during the traffic (hot reload).
            set(&mut mc, b"p2", &format!("SLIDING {} 5000", rng.gen_range(3..9)));
        }
    }
    wait_acked(&mut mc);
    assert_eq!(digest(&mut rc), digest(&mut mc));
    assert_eq!(key_states(&mut rc), key_states(&mut mc));
    assert!(redis::cmd("DBSIZE").query::<i64>(&mut mc).expect("DBSIZE") > 0);
}
