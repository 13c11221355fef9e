//! RL.GCRA and redis-cell's CL.THROTTLE on a real server.
mod common;
use common::*;

/// redis-cell's published GCRA sequence (limit 5) at 1 request per 10 s:
/// (ms after start, quantity, RL.GCRA reply in ms).
const SEQUENCE: [(i64, u64, [i64; 5]); 15] = [
    (0, 6, [0, 5, 5, -1, 0]), // more than the limit: can never pass
    (0, 1, [1, 5, 4, -1, 10_000]),
    (0, 1, [1, 5, 3, -1, 20_000]),
    (0, 1, [1, 5, 2, -1, 30_000]),
    (0, 1, [1, 5, 1, -1, 40_000]),
    (0, 1, [1, 5, 0, -1, 50_000]),
    (0, 1, [0, 5, 0, 10_000, 50_000]),  // full
    (30_000, 1, [1, 5, 2, -1, 30_000]), // partial recovery
    (31_000, 1, [1, 5, 1, -1, 39_000]),
    (40_000, 1, [1, 5, 1, -1, 40_000]),
    (80_000, 1, [1, 5, 4, -1, 10_000]),
    (95_000, 1, [1, 5, 4, -1, 10_000]),
    (95_000, 0, [1, 5, 4, -1, 10_000]), // peek
    (95_000, 2, [1, 5, 2, -1, 30_000]), // multi-quantity
    (95_000, 5, [0, 5, 2, 30_000, 30_000]),
];

#[test]
fn rl_gcra_reproduces_the_published_sequence_step_by_step() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let start = now_ms() + 60_000;
    for (i, (offset, cost, reply)) in SEQUENCE.into_iter().enumerate() {
        let got = rl(&mut con, &format!("RL.GCRA user 4 1 10000 COST {cost} AT {}", start + offset));
        assert_eq!(got, reply, "step {i}");
        if reply[0] == 1 && cost > 0 {
            let expire: i64 = redis::cmd("PEXPIRETIME").arg("user").query(&mut con).expect("PEXPIRETIME");
            assert_eq!(expire, start + offset + reply[4], "step {i}");
        }
    }
}

#[test]
fn cl_throttle_replies_like_redis_cell_with_a_pinned_clock() {
    let server = Server::start_with_module_args(&["test-clock", "yes"], &[]);
    let mut con = server.conn();
    let start = now_ms() + 60_000;
    for (i, (offset, quantity, reply)) in SEQUENCE.into_iter().enumerate() {
        let _: String = redis::cmd("RL.TESTCLOCK").arg(start + offset).query(&mut con).expect("RL.TESTCLOCK");
        let got: Vec<i64> = redis::cmd("CL.THROTTLE")
            .arg("user")
            .arg(4)
            .arg(1)
            .arg(10)
            .arg(quantity)
            .query(&mut con)
            .expect("CL.THROTTLE");
        // limited = !allowed; seconds rounded up; -1 stays -1.
        let secs = |ms: i64| if ms < 0 { -1 } else { (ms + 999) / 1000 };
        let want = vec![1 - reply[0], reply[1], reply[2], secs(reply[3]), secs(reply[4])];
        assert_eq!(got, want, "step {i}");
    }
    // Seconds round up: 1 per 3 s leaves 2.5 s to wait after 0.5 s, reported as 3.
    let _: String = redis::cmd("RL.TESTCLOCK").arg(start).query(&mut con).expect("RL.TESTCLOCK");
    let first: Vec<i64> = redis::cmd("CL.THROTTLE").arg("r").arg(0).arg(1).arg(3).query(&mut con).expect("CL");
    assert_eq!(first, vec![0, 1, 0, -1, 3]);
    let _: String = redis::cmd("RL.TESTCLOCK").arg(start + 500).query(&mut con).expect("RL.TESTCLOCK");
    let second: Vec<i64> = redis::cmd("CL.THROTTLE").arg("r").arg(0).arg(1).arg(3).query(&mut con).expect("CL");
    assert_eq!(second, vec![1, 1, 0, 3, 3]);
}

#[test]
fn cl_throttle_without_the_test_clock_module_option_has_no_clock_command() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let err = rl_err(&mut con, "RL.TESTCLOCK 5");
    assert!(err.contains("unknown command"), "{err}");
    // redis-cell's README example: 15 burst, 30 per 60 s.
    let reply: Vec<i64> =
        redis::cmd("CL.THROTTLE").arg("user123").arg(15).arg(30).arg(60).arg(1).query(&mut con).expect("CL");
    assert_eq!(reply, vec![0, 16, 15, -1, 2]);
}

#[test]
fn cl_throttle_quantity_zero_peeks_and_is_shared_with_rl_gcra() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let reply: Vec<i64> = redis::cmd("CL.THROTTLE").arg("k").arg(1).arg(1).arg(60).arg(0).query(&mut con).expect("CL");
    assert_eq!(reply, vec![0, 2, 2, -1, 0]);
    assert_eq!(redis::cmd("EXISTS").arg("k").query::<i64>(&mut con).expect("EXISTS"), 0);
    let _: Vec<i64> = redis::cmd("CL.THROTTLE").arg("k").arg(1).arg(1).arg(60).query(&mut con).expect("CL");
    // The same key through RL.GCRA with the same parameters in ms.
    let got = rl(&mut con, "RL.GCRA k 1 1 60000 DRYRUN");
    assert_eq!(&got[..3], &[1, 2, 0]);
}

#[test]
fn exact_at_high_rates_where_a_truncated_interval_over_admits() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let t = now_ms() + 60_000;
    // 3 per second, no burst: T = 333.33.. ms.
    let admitted =
        (0..=3333).filter(|dt| rl(&mut con, &format!("RL.GCRA fast 0 3 1000 AT {}", t + dt))[0] == 1).count();
    // Admits at 0, 334, 667, 1000, 1334, 1667, 2000, 2334, 2667, 3000. An interval truncated
    // to 333 ms (as redis-cell's float-to-int does at such rates) admits an 11th at 3330.
    assert_eq!(admitted, 10);
}

#[test]
fn errors_start_with_err_and_foreign_keys_are_wrongtype() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    for (line, expected) in [
        ("CL.THROTTLE k 1 1", "ERR wrong number of arguments"),
        ("CL.THROTTLE k -1 1 60", "ERR max_burst"),
        ("CL.THROTTLE k 1 0 60", "ERR count_per_period"),
        ("CL.THROTTLE k 1 1 0", "ERR period_seconds"),
        ("CL.THROTTLE k 1 1 60 -2", "ERR quantity"),
        ("CL.THROTTLE k 1 1 99999999999999999999", "ERR period_seconds"),
        ("RL.GCRA k 1 1", "ERR wrong number of arguments"),
        ("RL.GCRA k 1000000000000000 1 1", "ERR burst"),
        ("RL.GCRA k 1 0 1000", "ERR rate"),
        ("RL.GCRA k 1 1 0", "ERR period_ms"),
        ("RL.GCRA k 999999 1 10000000000000", "ERR (burst + 1) * period_ms / rate"),
        ("RL.GCRA k 1 1 1000 COST 1 COST 1", "ERR COST given more than once"),
    ] {
        let err = rl_err(&mut con, line);
        assert!(err.starts_with(expected), "{line}: {err}");
    }
    assert_eq!(redis::cmd("EXISTS").arg("k").query::<i64>(&mut con).expect("EXISTS"), 0);
    let _: () = redis::cmd("SET").arg("s").arg("x").query(&mut con).expect("SET");
    assert!(rl_err(&mut con, "CL.THROTTLE s 1 1 60").starts_with("WRONGTYPE"));
    rl(&mut con, "RL.FIXED f 5 60000");
    let err = rl_err(&mut con, "CL.THROTTLE f 1 1 60");
    assert!(err.starts_with("WRONGTYPE") && err.contains("fixed window"), "{err}");
}

#[test]
fn cl_throttle_takes_over_the_string_keys_redis_cell_left() {
    let server = Server::start_with_module_args(&["test-clock", "yes"], &[]);
    let mut con = server.conn();
    let now = now_ms() + 60_000;
    let _: String = redis::cmd("RL.TESTCLOCK").arg(now).query(&mut con).expect("RL.TESTCLOCK");
    let type_of = |con: &mut Connection, key: &str| -> String { redis::cmd("TYPE").arg(key).query(con).expect("TYPE") };
    let set = |con: &mut Connection, key: &str, value: &str| {
        let _: () = redis::cmd("SET").arg(key).arg(value).query(con).expect("SET");
    };
    // What redis-cell leaves after 2 of a burst of 5 (burst 4, 1 per 10 s): the TAT 20 s ahead.
    let tat_ns = set_redis_cell_key(&mut con, "cell", now + 20_000);
    let throttle = |con: &mut Connection, quantity: u64| -> Vec<i64> {
        redis::cmd("CL.THROTTLE").arg("cell").arg(4).arg(1).arg(10).arg(quantity).query(con).expect("CL.THROTTLE")
    };
    // A peek and a rejected call read the state and leave the string as it is.
    assert_eq!(throttle(&mut con, 0), vec![0, 5, 3, -1, 20]);
    assert_eq!(throttle(&mut con, 4), vec![1, 5, 3, 10, 20]);
    assert_eq!(type_of(&mut con, "cell"), "string");
    let value: String = redis::cmd("GET").arg("cell").query(&mut con).expect("GET");
    assert_eq!(value, tat_ns);
    // The first admitted call continues from redis-cell's state and stores a limiter.
    assert_eq!(throttle(&mut con, 1), vec![0, 5, 2, -1, 30]);
    assert_eq!(type_of(&mut con, "cell"), "rlLimiter");
    assert_eq!(rl(&mut con, &format!("RL.GCRA cell 4 1 10000 COST 0 AT {now}")), [1, 5, 2, -1, 30_000]);
    let expire: i64 = redis::cmd("PEXPIRETIME").arg("cell").query(&mut con).expect("PEXPIRETIME");
    assert_eq!(expire, now + 30_000);
    // Only an integer is redis-cell's, and only CL.THROTTLE reads one: RL.GCRA keeps WRONGTYPE.
    set(&mut con, "text", "12x");
    assert!(rl_err(&mut con, "CL.THROTTLE text 4 1 10").starts_with("WRONGTYPE"));
    set(&mut con, "number", "12");
    assert!(rl_err(&mut con, "RL.GCRA number 4 1 10000").starts_with("WRONGTYPE"));
    assert_eq!(type_of(&mut con, "number"), "string");
}
