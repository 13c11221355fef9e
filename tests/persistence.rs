//! RDB, AOF (plain, rewritten by the module, with an RDB preamble), DUMP/RESTORE and COPY
//! all bring back exactly the state and absolute expiry that was saved.
mod common;
use common::*;
use std::time::Duration;

/// What must survive: every key's value and absolute expiry.
fn snapshot(server: &Server) -> KeyStates {
    let states = key_states(&mut server.conn());
    assert!(!states.is_empty(), "the test saved nothing");
    states
}

/// The server holds exactly what was saved (`assert_same_live_keys`).
fn assert_restored(server: &Server, before: &KeyStates) {
    assert_same_live_keys(&key_states(&mut server.conn()), before);
}

/// Traffic, a pause so the clock moves on, more traffic: a replay that recomputed with the
/// restart's clock would refill buckets and slide windows, and differ.
fn traffic_with_pause(server: &Server, test: &str) {
    let mut rng = seeded_rng(test);
    let mut con = server.conn();
    traffic::send(&mut con, &mut rng, 600, 6);
    std::thread::sleep(Duration::from_secs(2));
    traffic::send(&mut con, &mut rng, 600, 6);
}

#[test]
fn aof_replay_restores_state_and_expiry_not_recomputed() {
    let mut server = Server::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    traffic_with_pause(&server, "aof_replay");
    let before = snapshot(&server);
    std::thread::sleep(Duration::from_secs(2));
    server.restart("NOSAVE");
    assert_restored(&server, &before);
}

#[test]
fn aof_replay_of_a_key_taken_over_from_redis_cell() {
    let mut server = Server::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut con = server.conn();
    set_redis_cell_key(&mut con, "cell", now_ms() + 20_000);
    let _: Vec<i64> = redis::cmd("CL.THROTTLE").arg("cell").arg(4).arg(1).arg(10).query(&mut con).expect("CL.THROTTLE");
    let before = snapshot(&server);
    server.restart("NOSAVE");
    assert_restored(&server, &before);
    let kind: String = redis::cmd("TYPE").arg("cell").query(&mut server.conn()).expect("TYPE");
    assert_eq!(kind, "rlLimiter");
}

#[test]
fn aof_rewrite_without_preamble_uses_the_module_rewrite() {
    let mut server = Server::start(&["--appendonly", "yes", "--appendfsync", "always", "--aof-use-rdb-preamble", "no"]);
    traffic_with_pause(&server, "aof_rewrite_without_preamble");
    let _: String = redis::cmd("BGREWRITEAOF").query(&mut server.conn()).expect("BGREWRITEAOF");
    wait_for_rewrite(&server);
    // Traffic after the rewrite lands in the new incremental file.
    let mut rng = seeded_rng("aof_rewrite_without_preamble/after");
    traffic::send(&mut server.conn(), &mut rng, 200, 6);
    let before = snapshot(&server);
    let base = std::fs::read_dir(server.dir.join("appendonlydir"))
        .expect("appendonlydir")
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().contains(".base.aof"))
        .map(|e| std::fs::read(e.path()).expect("read base"))
        .expect("base AOF");
    assert!(base.windows(12).any(|w| w == b"RL.LOADSTATE"), "rewrite did not use RL.LOADSTATE");
    server.restart("NOSAVE");
    assert_restored(&server, &before);
}

#[test]
fn aof_rewrite_with_rdb_preamble() {
    let mut server =
        Server::start(&["--appendonly", "yes", "--appendfsync", "always", "--aof-use-rdb-preamble", "yes"]);
    traffic_with_pause(&server, "aof_rewrite_with_rdb_preamble");
    let _: String = redis::cmd("BGREWRITEAOF").query(&mut server.conn()).expect("BGREWRITEAOF");
    wait_for_rewrite(&server);
    let before = snapshot(&server);
    server.restart("NOSAVE");
    assert_restored(&server, &before);
}

#[test]
fn rdb_save_restart_and_debug_reload_are_identical() {
    let mut server = Server::start(&[]);
    traffic_with_pause(&server, "rdb_save_restart");
    let before = snapshot(&server);
    let _: String = redis::cmd("DEBUG").arg("RELOAD").query(&mut server.conn()).expect("DEBUG RELOAD");
    assert_restored(&server, &before);
    let _: String = redis::cmd("SAVE").query(&mut server.conn()).expect("SAVE");
    std::thread::sleep(Duration::from_millis(1500));
    server.restart("NOSAVE");
    assert_restored(&server, &before);
}

/// Keys written by encoding version 1 with AT in 2096 (so they do not expire), created by
/// `write_rdb_fixture`. A later encoding must keep loading this file unchanged.
const FIXTURE: &str = "tests/fixtures/rl-encoding-v1.rdb";
const FIXTURE_AT: i64 = 4_000_000_000_000;

fn fixture_calls() -> Vec<String> {
    let t = FIXTURE_AT;
    let mut calls = vec![
        format!("RL.TOKENBUCKET tb 10 3 1000 COST 7 AT {t}"),
        format!("RL.TOKENBUCKET tb 10 3 1000 COST 1 AT {}", t + 1500),
        format!("RL.FIXED fw 5 60000 COST 2 AT {t}"),
        format!("RL.SLIDING sl 100 60000 AT {t}"),
        format!("RL.GCRA gc 4 3 10000 COST 2 AT {t}"),
        format!("RL.GCRA gc 4 3 10000 AT {}", t + 1234),
    ];
    for i in 1..40 {
        calls.push(format!("RL.SLIDING sl 100 60000 COST {} AT {}", i % 3 + 1, t + i * i));
    }
    calls
}

/// The replies a DRYRUN at FIXTURE_AT + 5000 gives on the fixture's keys.
fn fixture_probe(con: &mut Connection) -> Vec<[i64; 5]> {
    let at = FIXTURE_AT + 5000;
    ["RL.TOKENBUCKET tb 10 3 1000", "RL.FIXED fw 5 60000", "RL.SLIDING sl 100 60000", "RL.GCRA gc 4 3 10000"]
        .iter()
        .map(|c| rl(con, &format!("{c} COST 2 DRYRUN AT {at}")))
        .collect()
}

#[test]
#[ignore = "run by hand to regenerate the fixture: cargo test --test persistence write_rdb_fixture -- --ignored"]
fn write_rdb_fixture() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    for call in fixture_calls() {
        rl(&mut con, &call);
    }
    let _: String = redis::cmd("SAVE").query(&mut con).expect("SAVE");
    std::fs::copy(server.dir.join("dump.rdb"), FIXTURE).expect("copy fixture");
}

#[test]
fn an_rdb_written_by_encoding_v1_still_loads() {
    // What the same calls produce live, against what the committed file loads into.
    let live = Server::start(&[]);
    let mut lc = live.conn();
    for call in fixture_calls() {
        rl(&mut lc, &call);
    }
    let mut server = Server::start(&[]);
    std::fs::copy(FIXTURE, server.dir.join("dump.rdb")).expect("fixture present");
    server.restart("NOSAVE");
    let mut con = server.conn();
    assert_eq!(digest(&mut con), digest(&mut lc));
    assert_eq!(expiries(&mut con), expiries(&mut lc));
    assert_eq!(fixture_probe(&mut con), fixture_probe(&mut lc));
}

#[test]
fn dump_restore_and_copy_carry_the_limiter() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let t = now_ms() + 60_000;
    for (name, call) in
        [("tb", "RL.TOKENBUCKET tb 10 1 1000"), ("fw", "RL.FIXED fw 10 60000"), ("sl", "RL.SLIDING sl 10 60000")]
    {
        rl(&mut con, &format!("{call} COST 3 AT {t}"));
        rl(&mut con, &format!("{call} COST 2 AT {}", t + 7));
        let original = digest_value(&mut con, name.as_bytes());
        let expire: i64 = redis::cmd("PEXPIRETIME").arg(name).query(&mut con).expect("PEXPIRETIME");
        let payload: Vec<u8> = redis::cmd("DUMP").arg(name).query(&mut con).expect("DUMP");
        let restored = format!("{name}:restored");
        let _: String = redis::cmd("RESTORE")
            .arg(&restored)
            .arg(expire)
            .arg(&payload)
            .arg("ABSTTL")
            .query(&mut con)
            .expect("RESTORE");
        // DIGEST-VALUE covers the value and whether the key has an expiry.
        assert_eq!(digest_value(&mut con, restored.as_bytes()), original);
        let copied = format!("{name}:copy");
        let n: i64 = redis::cmd("COPY").arg(name).arg(&copied).query(&mut con).expect("COPY");
        assert_eq!(n, 1);
        assert_eq!(digest_value(&mut con, copied.as_bytes()), original);
        let copy_expire: i64 = redis::cmd("PEXPIRETIME").arg(&copied).query(&mut con).expect("PEXPIRETIME");
        assert_eq!(copy_expire, expire);
        // The copy is independent: using it leaves the original alone.
        let c = call.replacen(name, &copied, 1);
        rl(&mut con, &format!("{c} AT {}", t + 9));
        assert_eq!(digest_value(&mut con, name.as_bytes()), original);
        assert_ne!(digest_value(&mut con, copied.as_bytes()), original);
        // Behaves like the original.
        let restored_call = call.replacen(name, &restored, 1);
        assert_eq!(
            rl(&mut con, &format!("{restored_call} COST 4 DRYRUN AT {}", t + 100)),
            rl(&mut con, &format!("{call} COST 4 DRYRUN AT {}", t + 100))
        );
    }
}

#[test]
fn loadstate_refuses_garbage_and_foreign_keys() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let garbage: [&[u8]; 5] = [b"", b"\x00", b"\x01\x05\x01\x01\x06\x00\x00", b"\xff\xff\xff", b"\x03\x01\x01"];
    for state in garbage {
        let err = call(&mut con, &[b"RL.LOADSTATE", b"k", state]).expect_err("garbage accepted");
        assert!(error_text(&err).starts_with("ERR "), "{err:?}");
    }
    assert_eq!(redis::cmd("EXISTS").arg("k").query::<i64>(&mut con).expect("EXISTS"), 0);
    let _: () = redis::cmd("SET").arg("s").arg("x").query(&mut con).expect("SET");
    rl(&mut con, "RL.FIXED src 5 60000");
    let payload: Vec<u8> = redis::cmd("DUMP").arg("src").query(&mut con).expect("DUMP");
    assert!(!payload.is_empty());
    let err = call(&mut con, &[b"RL.LOADSTATE", b"s", b"\x02\x05\x01\x00\x00\x00"]).expect_err("wrong type");
    assert!(error_text(&err).starts_with("WRONGTYPE"), "{err:?}");
}
