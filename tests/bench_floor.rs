//! RL.BENCHFLOOR (bench/run.py's floor): registered only with `bench-floor yes`; writes a real
//! limiter value with a 60 s expiry and replicates an RL.FIXED a replica applies to the same state.
mod common;
use common::*;

fn info_fields(con: &mut Connection, key: &str) -> Vec<String> {
    let v: Vec<Value> = redis::cmd("RL.INFO").arg(key).query(con).expect("RL.INFO");
    v.iter()
        .map(|x| match x {
            Value::Int(i) => i.to_string(),
            other => redis::from_redis_value::<String>(other).expect("text"),
        })
        .collect()
}

/// RL.INFO's first fields for the floor's window.
const FLOOR_FIELDS: [&str; 6] = ["algorithm", "fixed", "limit", "4294967295", "window_ms", "60000"];

fn memory_usage(con: &mut Connection, key: &str) -> i64 {
    redis::cmd("MEMORY").arg("USAGE").arg(key).arg("SAMPLES").arg(0).query(con).expect("MEMORY")
}

/// Two floor calls on `key`, each with its form word (or none): the first creates the floor's window,
/// the second counts on in it; RL.INFO shows that window.
fn call_twice(con: &mut Connection, key: &str, first: &str, then: &str) {
    let limit = i64::from(u32::MAX);
    assert_eq!(rl(con, &format!("RL.BENCHFLOOR {key} {first}")), [1, limit, limit - 1, -1, 60_000]);
    let second = rl(con, &format!("RL.BENCHFLOOR {key} {then}"));
    // The count goes on within the minute's window and starts again in the next one.
    assert!(second == [1, limit, limit - 2, -1, 60_000] || second == [1, limit, limit - 1, -1, 60_000]);
    assert_eq!(info_fields(con, key)[..6], FLOOR_FIELDS);
}

#[test]
fn not_registered_without_the_module_option() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    assert!(rl_err(&mut con, "RL.BENCHFLOOR k").starts_with("ERR unknown command"));
}

#[test]
fn writes_a_limiter_with_a_60_s_expiry() {
    let server = Server::start_with_module_args(&["bench-floor", "yes"], &[]);
    let mut con = server.conn();
    call_twice(&mut con, "k", "", "");
    let kind: String = redis::cmd("TYPE").arg("k").query(&mut con).expect("TYPE");
    assert_eq!(kind, "rlLimiter");
    let ttl: i64 = redis::cmd("PTTL").arg("k").query(&mut con).expect("PTTL");
    assert!((55_000..=60_000).contains(&ttl), "{ttl}");
    rl(&mut con, "RL.FIXED f 100 60000");
    assert_eq!(
        memory_usage(&mut con, "k"),
        memory_usage(&mut con, "f"),
        "the floor's value is the size of a packed limiter"
    );
    let _: () = redis::cmd("SET").arg("s").arg("x").query(&mut con).expect("SET");
    assert_eq!(
        rl_err(&mut con, "RL.BENCHFLOOR s"),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    assert_eq!(rl_err(&mut con, "RL.BENCHFLOOR k extra"), "ERR the value's form is PACKED or BOXED");
    assert!(rl_err(&mut con, "RL.BENCHFLOOR k boxed extra").starts_with("ERR wrong number of arguments"));
}

/// BOXED creates the same limiter behind a pointer (as a long sliding log is held): the same replies
/// and count, only more memory; PACKED is the default spelled out. A call's form word only matters
/// when it creates the key.
#[test]
fn boxed_holds_the_same_window_behind_a_pointer() {
    let server = Server::start_with_module_args(&["bench-floor", "yes"], &[]);
    let mut con = server.conn();
    for (key, first, then) in [("p", "PACKED", "boxed"), ("b", "BOXED", "packed"), ("d", "", "BOXED")] {
        call_twice(&mut con, key, first, then);
    }
    assert_eq!(memory_usage(&mut con, "p"), memory_usage(&mut con, "d"));
    let (boxed, packed) = (memory_usage(&mut con, "b"), memory_usage(&mut con, "p"));
    assert!(boxed >= packed + 192, "{boxed} {packed}");
    // A boxed key holding another limiter is replaced by the floor's window, as a packed one is.
    rl(&mut con, "RL.FIXED big 1099511627776 1000");
    let limit = i64::from(u32::MAX);
    assert_eq!(rl(&mut con, "RL.BENCHFLOOR big"), [1, limit, limit - 1, -1, 60_000]);
    assert_eq!(info_fields(&mut con, "big")[..6], FLOOR_FIELDS);
}

#[test]
fn a_replica_applies_the_replicated_fixed_window() {
    let master = Server::start_with_module_args(&["bench-floor", "yes"], &[]);
    let replica = start_replica(&master, &[], &[]);
    let mut rc = replica.conn();
    let mut mc = master.conn();
    for key in ["a", "b", "a", "c", "a", "x BOXED", "x", "x BOXED"] {
        rl(&mut mc, &format!("RL.BENCHFLOOR {key}"));
    }
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(20_000).query(&mut mc).expect("WAIT");
    assert_eq!(acked, 1);
    for key in ["a", "b", "c", "x"] {
        // The same value (algorithm, parameters, count, last write); only the TTL differs: RL.FIXED
        // sets the window's end.
        assert_eq!(digest_value(&mut rc, key.as_bytes()), digest_value(&mut mc, key.as_bytes()), "{key}");
    }
}
