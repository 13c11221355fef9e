//! Extreme values against a real redis-server: every parameter at its documented maximum and one
//! past it, costs of 10^15, AT at 0, in the far past, at 10^15 and jumping backwards, and
//! reconfiguration between the extremes on the same key. Replies must stay within their bounds
//! (no overflow), errors must change nothing, and a few sequences are checked against values
//! computed by hand.
//!
//! Bounds (README): units (capacity, limit, refill_tokens, rate, COST) <= 10^15; periods 1..10^13 ms;
//! AT 0..10^15; a token bucket's capacity * refill_ms / refill_tokens <= 10^13 and a GCRA's
//! (burst + 1) * period_ms / rate <= 10^13 (rounded up).

mod common;
use common::*;

use rand::seq::SliceRandom;
use rand::Rng;

const U: i64 = 1_000_000_000_000_000; // 10^15: most units, latest AT
const P: i64 = 10_000_000_000_000; // 10^13: longest period

/// A time a minute ahead of the server clock: keys written at it do not expire under the test.
fn future() -> i64 {
    now_ms() + 60_000
}

/// Runs `"CMD key <rest>"` expecting 5 integers.
fn run(con: &mut Connection, command: &str, key: &str, rest: &str) -> [i64; 5] {
    rl(con, &format!("{command} {key} {rest}"))
}

/// Checks a sequence of `(rest of the line, expected reply)` on one key.
fn script(con: &mut Connection, command: &str, key: &str, steps: &[(String, [i64; 5])]) {
    for (rest, expected) in steps {
        assert_eq!(run(con, command, key, rest), *expected, "{command} {key} {rest}");
    }
}

/// The reply invariants of the contract for a request of `cost` against a limiter of `limit`.
fn assert_in_bounds(reply: [i64; 5], limit: i64, cost: i64, what: &str) {
    let [allowed, l, remaining, retry, reset] = reply;
    assert!(allowed == 0 || allowed == 1, "{what}: {reply:?}");
    assert_eq!(l, limit, "{what}: limit in {reply:?}");
    assert!((0..=limit).contains(&remaining), "{what}: remaining in {reply:?}");
    assert!((0..=P).contains(&reset), "{what}: reset_after in {reply:?}");
    if cost == 0 {
        assert_eq!(allowed, 1, "{what}: COST 0 is always allowed: {reply:?}");
    }
    if allowed == 1 {
        assert_eq!(retry, -1, "{what}: allowed with a retry: {reply:?}");
    } else if cost > limit {
        assert_eq!(retry, -1, "{what}: a cost above the limit never fits: {reply:?}");
    } else {
        assert!((1..=P).contains(&retry), "{what}: retry_after in {reply:?}");
        assert!(remaining < cost, "{what}: rejected although {remaining} remain for cost {cost}");
    }
}

// ---------------------------------------------------------------------------------------------
// Bounds: the maximum is accepted, one past it is an error that changes nothing
// ---------------------------------------------------------------------------------------------

/// For each command: existing-key parameters, accepted parameter sets (with the limit they imply),
/// and refused ones with the argument name the error must contain.
struct Bounds {
    command: &'static str,
    existing: &'static str,
    accepted: &'static [(&'static str, i64)],
    refused: &'static [(&'static str, &'static str)],
}

const BOUNDS: [Bounds; 5] = [
    Bounds {
        command: "RL.TOKENBUCKET",
        existing: "10 1 1000",
        accepted: &[
            ("1000000000000000 1000000000000000 10000000000000", U),
            ("10000000000000 1 1", P),     // refills from empty in exactly 10^13 ms
            ("1000000000000000 100 1", U), // 10^15 * 1 / 100 = 10^13
            ("1 1 10000000000000", 1),
            ("1 1000000000000000 1", 1),
            ("1000000000000000 1000000000000000 1 COST 1000000000000000", U),
            ("10 1 1000 COST 1000000000000000", 10), // can never fit: rejected, retry -1
            ("10 1 1000 AT 1000000000000000", 10),
            ("10 1 1000 COST 0 AT 0", 10),
        ],
        refused: &[
            ("1000000000000001 1000000000000000 10000000000000", "capacity"),
            ("0 1 1", "capacity"),
            ("18446744073709551615 1 1", "capacity"),
            ("18446744073709551616 1 1", "capacity"),
            ("-1 1 1", "capacity"),
            ("10 1000000000000001 1000", "refill_tokens"),
            ("10 0 1000", "refill_tokens"),
            ("10 1 10000000000001", "refill_ms"),
            ("10 1 0", "refill_ms"),
            ("10000000000001 1 1", "capacity * refill_ms / refill_tokens"),
            ("1000000000000000 99 1", "capacity * refill_ms / refill_tokens"), // ceil(10^15 / 99) > 10^13
            ("2 1 10000000000000", "capacity * refill_ms / refill_tokens"),
            ("10 1 1000 COST 1000000000000001", "COST"),
            ("10 1 1000 COST 18446744073709551615", "COST"),
            ("10 1 1000 AT 1000000000000001", "AT"),
            ("10 1 1000 AT 9223372036854775807", "AT"),
            ("10 1 1000 AT 9223372036854775808", "AT"),
            ("10 1 1000 AT -1", "AT"),
        ],
    },
    Bounds {
        command: "RL.FIXED",
        existing: "10 1000",
        accepted: &[
            ("1000000000000000 10000000000000", U),
            ("1 1", 1),
            ("1000000000000000 1", U),
            ("1 10000000000000", 1),
        ],
        refused: &[
            ("1000000000000001 1000", "limit"),
            ("0 1000", "limit"),
            ("10 10000000000001", "window_ms"),
            ("10 0", "window_ms"),
            ("10 18446744073709551616", "window_ms"),
            ("10 1000 COST 1000000000000001", "COST"),
            ("10 1000 AT 1000000000000001", "AT"),
        ],
    },
    Bounds {
        command: "RL.SLIDING",
        existing: "10 1000",
        accepted: &[
            ("1000000000000000 10000000000000", U),
            ("1 1", 1),
            ("1000000000000000 1", U),
            ("1 10000000000000", 1),
        ],
        refused: &[
            ("1000000000000001 1000", "limit"),
            ("0 1000", "limit"),
            ("10 10000000000001", "window_ms"),
            ("10 0", "window_ms"),
            ("10 1000 COST 1000000000000001", "COST"),
            ("10 1000 AT 1000000000000001", "AT"),
        ],
    },
    Bounds {
        command: "RL.GCRA",
        existing: "9 1 1000",
        accepted: &[
            ("999999999999999 1000000000000000 10000000000000", U),
            ("0 1 10000000000000", 1),
            ("1 2 10000000000000", 2), // 2 * 10^13 / 2 = 10^13
            ("9999999999999 1 1", P),  // 10^13 * 1 / 1
            ("0 1000000000000000 1", 1),
            ("999999999999999 1000000000000000 10000000000000 COST 1000000000000000 AT 1000000000000000", U),
        ],
        refused: &[
            ("1000000000000000 1000000000000000 1", "burst"),
            ("0 1000000000000001 1", "rate"),
            ("0 0 1", "rate"),
            ("0 1 10000000000001", "period_ms"),
            ("0 1 0", "period_ms"),
            ("1 1 10000000000000", "(burst + 1) * period_ms / rate"),
            ("10000000000000 1 1", "(burst + 1) * period_ms / rate"),
            ("9 1 1000 COST 1000000000000001", "COST"),
            ("9 1 1000 AT 1000000000000001", "AT"),
        ],
    },
    Bounds {
        command: "CL.THROTTLE",
        existing: "9 1 1",
        accepted: &[
            ("999999999999999 1000000000000000 10000000000", U),
            ("999999999999999 1000000000000000 10000000000 1000000000000000", U),
            ("0 1 10000000000", 1),
            ("0 1 1 0", 1),
            ("9 1 1 1000000000000000", 10),
        ],
        refused: &[
            ("1000000000000000 1 1", "max_burst"),
            ("0 1000000000000001 1", "count_per_period"),
            ("0 0 1", "count_per_period"),
            ("0 1 10000000001", "period_seconds"),
            ("0 1 0", "period_seconds"),
            ("0 1 1 1000000000000001", "quantity"),
            ("1 1 10000000000", "(max_burst + 1) * period_seconds / count_per_period"),
        ],
    },
];

#[test]
fn documented_maximums_are_accepted_and_one_past_is_an_error_that_changes_nothing() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let t = future();
    for b in &BOUNDS {
        let cell = b.command == "CL.THROTTLE";
        let at = if cell { String::new() } else { format!(" AT {t}") };
        // An existing key of this algorithm, with a value and an expiry that must not change.
        let live = format!("live:{}", b.command);
        run(&mut con, b.command, &live, &format!("{}{at}", b.existing));
        let live_before = snapshot(&mut con, &live);
        assert!(live_before.is_some(), "{}: no key", b.command);
        for (rest, name) in b.refused {
            for key in [live.as_str(), "absent"] {
                let line = format!("{} {key} {rest}", b.command);
                let err = rl_err(&mut con, &line);
                assert!(err.starts_with("ERR ") && err.contains(name), "{line}: {err}");
            }
            assert_eq!(snapshot(&mut con, &live), live_before, "{} live {rest}: changed the key", b.command);
            assert!(!exists(&mut con, "absent"), "{} absent {rest}: created the key", b.command);
        }
        for (i, (rest, limit)) in b.accepted.iter().enumerate() {
            let key = format!("ok:{}:{i}", b.command);
            // AT only where the line has none (CL.THROTTLE takes none at all).
            let at = if cell || rest.contains("AT") { String::new() } else { format!(" AT {t}") };
            let reply = run(&mut con, b.command, &key, &format!("{rest}{at}"));
            let cost = rest.split(" COST ").nth(1).map_or_else(
                || if cell { rest.split(' ').nth(3).map_or(1, |q| q.parse().expect("quantity")) } else { 1 },
                |c| c.split(' ').next().and_then(|c| c.parse().ok()).expect("cost"),
            );
            let reply = if cell {
                // [limited, limit, remaining, retry_s, reset_s]: bounds in seconds.
                let [limited, l, remaining, retry, reset] = reply;
                assert!(limited == 0 || limited == 1, "{rest}: {reply:?}");
                assert!((-1..=P / 1000).contains(&retry) && (0..=P / 1000).contains(&reset), "{rest}: {reply:?}");
                [1 - limited, l, remaining, retry, reset]
            } else {
                reply
            };
            if !cell {
                assert_in_bounds(reply, *limit, cost, &format!("{} {rest}", b.command));
            } else {
                assert_eq!(reply[1], *limit, "{rest}: {reply:?}");
                assert!((0..=*limit).contains(&reply[2]), "{rest}: {reply:?}");
            }
        }
    }
    assert_eq!(redis::cmd("PING").query::<String>(&mut con).expect("PING"), "PONG");
}

// ---------------------------------------------------------------------------------------------
// Exact values at the largest parameters, computed by hand
// ---------------------------------------------------------------------------------------------

/// 10^15 units at 10^15 per 10^13 ms (100 per ms, 10^13 ms from empty to full), the same steps
/// for the token bucket and the GCRA of those numbers; `p` holds the command's parameters.
fn largest_rate_steps(p: &str, t: i64) -> Vec<(String, [i64; 5])> {
    vec![
        // Everything at once.
        (format!("{p} COST {U} AT {t}"), [1, U, 0, -1, P]),
        // Empty: one unit takes 1/100 ms, rounded up.
        (format!("{p} AT {t}"), [0, U, 0, 1, P]),
        // 1 ms later: 100 units; take 1. Full again in 10^13 - 0.99 ms, rounded up.
        (format!("{p} AT {}", t + 1), [1, U, 99, -1, P]),
        // 10^15 units need (10^15 - 99) / 100 ms = 10^13 - 0.99 ms: 10^13.
        (format!("{p} COST {U} AT {}", t + 1), [0, U, 99, P, P]),
        // 10^13 - 2 ms after the last take: 99 + (10^13 - 2) * 100 = 10^15 - 101 units, full in 1.01 ms.
        (format!("{p} COST 0 AT {}", t + P - 1), [1, U, U - 101, -1, 2]),
        (format!("{p} COST 0 AT {}", t + P), [1, U, U - 1, -1, 1]),
        (format!("{p} COST 0 AT {}", t + P + 1), [1, U, U, -1, 0]),
    ]
}

/// Capacity 10^15 refilled at 10^15 per 10^13 ms. Tokens are kept in units of 1/10^13 token, so
/// the largest level is 10^28 (needs 128 bits).
#[test]
fn token_bucket_of_capacity_ten_to_the_fifteen_is_exact() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let t = future();
    let steps = largest_rate_steps("1000000000000000 1000000000000000 10000000000000", t);
    script(&mut con, "RL.TOKENBUCKET", "tb", &steps);
    // The last write was at t + 1 with 10^13 ms to full.
    assert_eq!(pexpiretime(&mut con, "tb"), t + 1 + P);
    // The slowest bucket allowed: one token per 10^13 ms.
    script(
        &mut con,
        "RL.TOKENBUCKET",
        "slow",
        &[
            (format!("1 1 {P} AT {t}"), [1, 1, 0, -1, P]),
            (format!("1 1 {P} AT {}", t + P - 1), [0, 1, 0, 1, 1]),
            (format!("1 1 {P} AT {}", t + P), [1, 1, 0, -1, P]),
        ],
    );
    // The largest capacity refilled one token per ms: exactly 10^13 ms from empty.
    script(
        &mut con,
        "RL.TOKENBUCKET",
        "wide",
        &[
            (format!("{P} 1 1 COST {P} AT {t}"), [1, P, 0, -1, P]),
            (format!("{P} 1 1 COST {P} AT {}", t + 5), [0, P, 5, P - 5, P - 5]),
        ],
    );
}

/// The same numbers through the GCRA (burst 10^15 - 1, 10^15 per 10^13 ms: T = 1/100 ms).
#[test]
fn gcra_at_its_largest_parameters_is_exact() {
    let server = Server::start_with_module_args(&["test-clock", "yes"], &[]);
    let mut con = server.conn();
    let t = future();
    let steps = largest_rate_steps("999999999999999 1000000000000000 10000000000000", t);
    script(&mut con, "RL.GCRA", "g", &steps);
    assert_eq!(pexpiretime(&mut con, "g"), t + 1 + P);
    // CL.THROTTLE with the same limiter: max_burst 10^15 - 1, 10^15 per 10^10 s; times in seconds,
    // rounded up. It has no AT: the test clock pins time.
    let cell = "999999999999999 1000000000000000 10000000000";
    let throttle = |con: &mut Connection, clock: i64, quantity: i64| -> [i64; 5] {
        let _: String = redis::cmd("RL.TESTCLOCK").arg(clock).query(con).expect("RL.TESTCLOCK");
        rl(con, &format!("CL.THROTTLE c {cell} {quantity}"))
    };
    assert_eq!(throttle(&mut con, t, U), [0, U, 0, -1, P / 1000]);
    assert_eq!(throttle(&mut con, t, 1), [1, U, 0, 1, P / 1000]);
    assert_eq!(throttle(&mut con, t + 1, 1), [0, U, 99, -1, P / 1000]);
    assert_eq!(throttle(&mut con, t + P + 1, 0), [0, U, U, -1, 0]);
    let _: String = redis::cmd("RL.TESTCLOCK").arg("OFF").query(&mut con).expect("RL.TESTCLOCK OFF");
}

/// Windows of 10^13 ms are aligned to the epoch: the current one is [0, 10^13) (until 2286).
#[test]
fn fixed_window_of_ten_to_the_thirteen_ms_is_exact() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let t = future();
    assert!(t < P);
    let p = format!("{U} {P}");
    script(
        &mut con,
        "RL.FIXED",
        "fw",
        &[
            (format!("{p} COST {U} AT {t}"), [1, U, 0, -1, P - t]),
            (format!("{p} AT {t}"), [0, U, 0, P - t, P - t]),
            (format!("{p} COST 0 AT {}", t + 5), [1, U, 0, -1, P - t - 5]),
            // The next window starts at 10^13.
            (format!("{p} AT {P}"), [1, U, U - 1, -1, P]),
        ],
    );
    assert_eq!(pexpiretime(&mut con, "fw"), 2 * P);
    script(
        &mut con,
        "RL.FIXED",
        "fw",
        &[
            // 10^15 is a multiple of 10^13: a window starts there.
            (format!("{p} COST {U} AT {U}"), [1, U, 0, -1, P]),
            // Back to now: the effective time stays at 10^15.
            (format!("{p} COST 0 AT {t}"), [1, U, 0, -1, P]),
        ],
    );
    assert_eq!(pexpiretime(&mut con, "fw"), U + P);
}

#[test]
fn sliding_log_of_ten_to_the_fifteen_per_ten_to_the_thirteen_ms_is_exact() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let t = future();
    let p = format!("{U} {P}");
    script(
        &mut con,
        "RL.SLIDING",
        "sl",
        &[
            (format!("{p} COST {} AT {t}", U - 1), [1, U, 1, -1, P]),
            (format!("{p} AT {}", t + 1), [1, U, 0, -1, P]),
            // Full: the first entry (10^15 - 1 units) leaves at t + 10^13.
            (format!("{p} AT {}", t + 2), [0, U, 0, P - 2, P - 1]),
            (format!("{p} COST 2 AT {}", t + 2), [0, U, 0, P - 2, P - 1]),
            // At t + 10^13 only the unit taken at t + 1 is left, for 1 ms.
            (format!("{p} COST 0 AT {}", t + P), [1, U, U - 1, -1, 1]),
            (format!("{p} COST {U} AT {}", t + P), [0, U, U - 1, 1, 1]),
            (format!("{p} COST {U} AT {}", t + P + 1), [1, U, 0, -1, P]),
        ],
    );
    assert_eq!(pexpiretime(&mut con, "sl"), t + P + 1 + P);
}

// ---------------------------------------------------------------------------------------------
// AT at 0, in the far past, at 10^15, and backwards
// ---------------------------------------------------------------------------------------------

/// AT 0 decides as of 1970: the key's absolute expiry is in the past for short periods, so it is
/// gone at once and the next call starts afresh; with a 10^13 ms window it lives until 2286.
#[test]
fn at_zero_decides_as_of_the_epoch() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    for _ in 0..2 {
        assert_eq!(rl(&mut con, "RL.TOKENBUCKET tb 10 1 1000 AT 0"), [1, 10, 9, -1, 1000]);
        assert_eq!(rl(&mut con, "RL.FIXED fw 10 1000 AT 0"), [1, 10, 9, -1, 1000]);
        assert_eq!(rl(&mut con, "RL.SLIDING sl 10 1000 AT 0"), [1, 10, 9, -1, 1000]);
        assert_eq!(rl(&mut con, "RL.GCRA gc 9 1 100 AT 0"), [1, 10, 9, -1, 100]);
        assert_eq!(rl(&mut con, "RL.TOKENBUCKET tb 10 1 1000 COST 10 AT 1"), [1, 10, 0, -1, 10_000]);
    }
    for key in ["tb", "fw", "sl", "gc"] {
        assert!(!exists(&mut con, key), "{key} outlived its expiry in 1970");
    }
    // A window of 10^13 ms starting at 0 is still open: the count carries to now.
    assert_eq!(rl(&mut con, &format!("RL.FIXED long 10 {P} AT 0")), [1, 10, 9, -1, P]);
    assert_eq!(pexpiretime(&mut con, "long"), P);
    let t = future();
    assert_eq!(rl(&mut con, &format!("RL.FIXED long 10 {P} AT {t}")), [1, 10, 8, -1, P - t]);
    // The same for a 10^13 ms sliding log and the slowest bucket: their entries are still live.
    assert_eq!(rl(&mut con, &format!("RL.SLIDING slong 1 {P} AT 0")), [1, 1, 0, -1, P]);
    assert_eq!(rl(&mut con, &format!("RL.SLIDING slong 1 {P} AT {t}")), [0, 1, 0, P - t, P - t]);
    assert_eq!(rl(&mut con, &format!("RL.TOKENBUCKET tlong 1 1 {P} AT 0")), [1, 1, 0, -1, P]);
    assert_eq!(rl(&mut con, &format!("RL.TOKENBUCKET tlong 1 1 {P} AT {t}")), [0, 1, 0, P - t, P - t]);
    assert_eq!(rl(&mut con, &format!("RL.GCRA glong 0 1 {P} AT 0")), [1, 1, 0, -1, P]);
    assert_eq!(rl(&mut con, &format!("RL.GCRA glong 0 1 {P} AT {t}")), [0, 1, 0, P - t, P - t]);
}

/// At AT 10^15 with the longest periods, expiries reach 10^15 + 10^13; later calls at the real
/// time are decided at 10^15 (time never runs backwards for a key).
#[test]
fn at_ten_to_the_fifteen_and_back_to_now() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let t = future();
    let cases = [
        ("RL.TOKENBUCKET", format!("1 1 {P}")),
        ("RL.FIXED", format!("1 {P}")),
        ("RL.SLIDING", format!("1 {P}")),
        ("RL.GCRA", format!("0 1 {P}")),
    ];
    for (command, p) in &cases {
        let key = format!("far:{command}");
        assert_eq!(run(&mut con, command, &key, &format!("{p} AT {U}")), [1, 1, 0, -1, P], "{command}");
        assert_eq!(pexpiretime(&mut con, &key), U + P, "{command}");
        let before = snapshot(&mut con, &key);
        for at in [t, 0, 1, U - 1] {
            assert_eq!(run(&mut con, command, &key, &format!("{p} AT {at}")), [0, 1, 0, P, P], "{command} AT {at}");
            assert_eq!(run(&mut con, command, &key, &format!("{p} COST 0 AT {at}")), [1, 1, 0, -1, P]);
        }
        assert_eq!(snapshot(&mut con, &key), before, "{command}: a rejected call changed the key");
        // Without AT (the server clock, far behind): the same.
        assert_eq!(run(&mut con, command, &key, p), [0, 1, 0, P, P], "{command} without AT");
    }
    // Short periods just before 10^15.
    let base = U - 10_000;
    assert_eq!(rl(&mut con, &format!("RL.TOKENBUCKET s 10 1 1000 COST 4 AT {base}")), [1, 10, 6, -1, 4000]);
    assert_eq!(rl(&mut con, &format!("RL.TOKENBUCKET s 10 1 1000 AT {t}")), [1, 10, 5, -1, 5000]);
    assert_eq!(pexpiretime(&mut con, "s"), base + 5000);
    assert_eq!(rl(&mut con, &format!("RL.TOKENBUCKET s 10 1 1000 COST 0 AT {}", base + 2500)), [1, 10, 7, -1, 2500]);
    assert_eq!(rl(&mut con, &format!("RL.TOKENBUCKET s 10 1 1000 COST 0 AT {U}")), [1, 10, 10, -1, 0]);
}

/// A key written at t + 10^6: calls at earlier times (t, 1, 0) are decided at t + 10^6.
#[test]
fn time_jumping_backwards_is_decided_at_the_last_update() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    // A multiple of 1000 so the fixed window's boundaries are known.
    let t = future() / 1000 * 1000 + 1_000_000;
    script(
        &mut con,
        "RL.TOKENBUCKET",
        "tb",
        &[
            (format!("10 1 1000 COST 5 AT {t}"), [1, 10, 5, -1, 5000]),
            ("10 1 1000 AT 0".into(), [1, 10, 4, -1, 6000]),
            (format!("10 1 1000 AT {}", t - 1_000_000), [1, 10, 3, -1, 7000]),
            (format!("10 1 1000 COST 0 AT {}", t + 1000), [1, 10, 4, -1, 6000]),
        ],
    );
    assert_eq!(pexpiretime(&mut con, "tb"), t + 7000);
    script(
        &mut con,
        "RL.FIXED",
        "fw",
        &[
            (format!("3 1000 AT {t}"), [1, 3, 2, -1, 1000]),
            ("3 1000 AT 0".into(), [1, 3, 1, -1, 1000]),
            // The previous window by the request's clock, this one by the key's.
            (format!("3 1000 COST 2 AT {}", t - 1), [0, 3, 1, 1000, 1000]),
        ],
    );
    script(
        &mut con,
        "RL.SLIDING",
        "sl",
        &[
            (format!("3 1000 AT {t}"), [1, 3, 2, -1, 1000]),
            // Merged into the entry at t.
            ("3 1000 AT 0".into(), [1, 3, 1, -1, 1000]),
            (format!("3 1000 COST 2 AT {}", t - 500), [0, 3, 1, 1000, 1000]),
        ],
    );
    script(
        &mut con,
        "RL.GCRA",
        "gc",
        &[
            (format!("2 1 1000 AT {t}"), [1, 3, 2, -1, 1000]),
            ("2 1 1000 AT 0".into(), [1, 3, 1, -1, 2000]),
            (format!("2 1 1000 COST 2 AT {}", t - 1), [0, 3, 1, 1000, 2000]),
        ],
    );
    for key in ["fw", "sl"] {
        assert_eq!(pexpiretime(&mut con, key), t + 1000, "{key}");
    }
    assert_eq!(pexpiretime(&mut con, "gc"), t + 2000);
}

// ---------------------------------------------------------------------------------------------
// Reconfiguration between extremes
// ---------------------------------------------------------------------------------------------

#[test]
fn reconfiguring_between_extremes_on_the_same_key() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let t = future();
    let big = format!("{U} {U} {P}");
    script(
        &mut con,
        "RL.TOKENBUCKET",
        "tb",
        &[
            (format!("{big} COST 10 AT {t}"), [1, U, U - 10, -1, 1]),
            // Capacity 1: 10^15 - 10 tokens clamped to 1.
            (format!("1 1 1 AT {t}"), [1, 1, 0, -1, 1]),
            // Back to 10^15: the empty bucket stays empty. Rejected, but the reconfiguration is
            // written (v2): the bucket of 10^15 refilling at 100 per ms, empty at t.
            (format!("{big} AT {t}"), [0, U, 0, 1, P]),
            // 1 ms at the stored 100 per ms: 100 tokens, one taken.
            (format!("{big} AT {}", t + 1), [1, U, 99, -1, P]),
            // Capacity 1 (one token per 10^13 ms): 99 tokens clamped to 1, full; a peek.
            (format!("1 1 {P} COST 0 AT {}", t + 1), [1, 1, 1, -1, 0]),
            // 1 ms later at the stored 100 per ms: 199, clamped to 1, taken.
            (format!("1 1 {P} AT {}", t + 2), [1, 1, 0, -1, P]),
            // Empty, one token per 10^13 ms: rejected until t + 2 + 10^13.
            (format!("1 1 {P} AT {}", t + 3), [0, 1, 0, P - 1, P - 1]),
        ],
    );
    let fixed_end = P - t % P;
    script(
        &mut con,
        "RL.FIXED",
        "fw",
        &[
            (format!("{U} 1 COST {U} AT {t}"), [1, U, 0, -1, 1]),
            // Another window length: the count restarts.
            (format!("{U} {P} AT {t}"), [1, U, U - 1, -1, fixed_end]),
            (format!("{U} 1 AT {t}"), [1, U, U - 1, -1, 1]),
            // Same window length, lower limit: the count (1) is kept.
            (format!("1 1 AT {t}"), [0, 1, 0, 1, 1]),
            (format!("1 1 COST 0 AT {t}"), [1, 1, 0, -1, 1]),
        ],
    );
    script(
        &mut con,
        "RL.SLIDING",
        "sl",
        &[
            (format!("5 {P} COST 5 AT {t}"), [1, 5, 0, -1, P]),
            // A 1 ms window: the entry at t is out of it at t + 1.
            (format!("5 1 COST 5 AT {}", t + 1), [1, 5, 0, -1, 1]),
            // Back to 10^13 ms: the entry at t was dropped, the one at t + 1 fills the log.
            (format!("5 {P} AT {}", t + 1), [0, 5, 0, P, P]),
            (format!("{U} {P} AT {}", t + 1), [1, U, U - 6, -1, P]),
            (format!("1 1 COST 0 AT {}", t + 2), [1, 1, 1, -1, 0]),
            // 6 units live under 10^13 ms against a limit of 1.
            (format!("1 {P} COST 0 AT {}", t + 2), [1, 1, 0, -1, P - 1]),
        ],
    );
    let big = format!("{} {U} {P}", U - 1);
    script(
        &mut con,
        "RL.GCRA",
        "gc",
        &[
            (format!("0 1 {P} AT {t}"), [1, 1, 0, -1, P]),
            // The debt (10^13 ms) is kept under the new rate: the burst of 10^15 is owed already.
            (format!("{big} AT {t}"), [0, U, 0, 1, P]),
            (format!("{big} AT {}", t + 1), [1, U, 99, -1, P]),
            // TAT t + 10^13 + 1/100 ms, re-expressed at 1 per 10^13 ms: rounded up to t + 10^13 + 1.
            (format!("0 1 {P} COST 0 AT {}", t + 1), [1, 1, 0, -1, P]),
            (format!("0 1 {P} AT {}", t + 1), [0, 1, 0, P, P]),
        ],
    );
}

/// A random walk on one key per algorithm over parameter sets at and around every bound, costs
/// up to 10^15 and times from 0 to 10^15 (backwards too): each call is refused exactly when a
/// documented bound is crossed (naming the first bad argument, changing nothing), else its reply is
/// within bounds; DRYRUN, COST 0 and rejected calls with the stored parameters change nothing;
/// admitted calls and (v2) rejected ones with other parameters write: the key expires at the
/// effective time + reset_after, or is deleted when that is 0 (idle).
#[test]
fn random_walk_over_extreme_parameters_stays_within_bounds() {
    let mut rng = seeded_rng("extremes_walk");
    let server = Server::start(&[]);
    let mut con = server.conn();
    let units = [1, 2, 99, 100, P - 1, P, P + 1, U - 1, U, U + 1];
    let periods = [1, 2, 1000, P - 1, P, P + 1];
    let bursts = [0, 1, 99, P - 1, U - 2, U - 1, U];
    let steps: usize = std::env::var("RL_EXTREME_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(600);
    let t0 = future();
    let drain_ok = |units: i64, period: i64, rate: i64| {
        (units as i128 * period as i128 + rate as i128 - 1) / rate as i128 <= P as i128
    };
    let (mut accepted, mut refused, mut admitted, mut reconfigured) = (0, 0, 0, 0);
    for command in ["RL.TOKENBUCKET", "RL.FIXED", "RL.SLIDING", "RL.GCRA"] {
        let key = format!("walk:{command}");
        let mut now = t0;
        let mut last: Option<i64> = None;
        // The parameters the key holds (None while absent): a call with others reconfigures.
        let mut stored: Option<Vec<i64>> = None;
        for step in 0..steps {
            // Positional parameters, their first out-of-bounds name, and the limit they imply.
            let (params, bad, limit): (Vec<i64>, Option<&str>, i64) = match command {
                "RL.TOKENBUCKET" => {
                    let (c, r, ms) = (
                        *units.choose(&mut rng).unwrap(),
                        *units.choose(&mut rng).unwrap(),
                        *periods.choose(&mut rng).unwrap(),
                    );
                    let bad = if !(1..=U).contains(&c) {
                        Some("capacity")
                    } else if !(1..=U).contains(&r) {
                        Some("refill_tokens")
                    } else if !(1..=P).contains(&ms) {
                        Some("refill_ms")
                    } else if !drain_ok(c, ms, r) {
                        Some("capacity * refill_ms / refill_tokens")
                    } else {
                        None
                    };
                    (vec![c, r, ms], bad, c)
                }
                "RL.GCRA" => {
                    let (b, r, ms) = (
                        *bursts.choose(&mut rng).unwrap(),
                        *units.choose(&mut rng).unwrap(),
                        *periods.choose(&mut rng).unwrap(),
                    );
                    let bad = if b >= U {
                        Some("burst")
                    } else if !(1..=U).contains(&r) {
                        Some("rate")
                    } else if !(1..=P).contains(&ms) {
                        Some("period_ms")
                    } else if !drain_ok(b + 1, ms, r) {
                        Some("(burst + 1) * period_ms / rate")
                    } else {
                        None
                    };
                    (vec![b, r, ms], bad, b + 1)
                }
                _ => {
                    let (l, w) = (*units.choose(&mut rng).unwrap(), *periods.choose(&mut rng).unwrap());
                    let bad = if !(1..=U).contains(&l) {
                        Some("limit")
                    } else if !(1..=P).contains(&w) {
                        Some("window_ms")
                    } else {
                        None
                    };
                    (vec![l, w], bad, l)
                }
            };
            let cost: i64 = match rng.gen_range(0..8) {
                0 => 0,
                1 | 2 => 1,
                3 => rng.gen_range(1..=3),
                4 => limit.clamp(1, U),
                5 => U,
                6 => rng.gen_range(0..=U),
                _ => U + 1,
            };
            // Mostly forward by 0, 1 ms, ~a period or 10^13; sometimes back, to 0, or to 10^15.
            let at: i64 = match rng.gen_range(0..20) {
                0 => 0,
                // Back in time only while the key holds a time after t0: decided at that time.
                1 => match last {
                    Some(l) if l >= t0 => now - rng.gen_range(0..1_000_000),
                    _ => 0,
                },
                2 if step > steps * 9 / 10 => U,
                3 => now + P,
                4..=7 => now + *periods.choose(&mut rng).unwrap() % P,
                8..=12 => now + 1,
                _ => now,
            }
            .clamp(0, U);
            if at >= t0 && at > now {
                now = at;
            }
            let dryrun = rng.gen_ratio(1, 8);
            let mut rest = params.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(" ");
            rest += &format!(" COST {cost} AT {at}");
            if dryrun {
                rest += " DRYRUN";
            }
            let line = format!("{command} {key} {rest}");
            let before = snapshot(&mut con, &key);
            let bad = bad.or((cost > U).then_some("COST"));
            if let Some(name) = bad {
                let err = rl_err(&mut con, &line);
                assert!(err.starts_with("ERR ") && err.contains(name), "{line}: {err} (expected {name})");
                assert_eq!(snapshot(&mut con, &key), before, "{line}: an error changed the key");
                refused += 1;
                continue;
            }
            accepted += 1;
            let reply = rl(&mut con, &line);
            assert_in_bounds(reply, limit, cost, &line);
            let effective = last.map_or(at, |l| l.max(at));
            let reconfigures = stored.as_ref().is_some_and(|s| *s != params);
            if cost > 0 && !dryrun && (reply[0] == 1 || reconfigures) {
                admitted += reply[0];
                reconfigured += 1 - reply[0];
                let expiry = pexpiretime(&mut con, &key);
                if reply[4] == 0 {
                    assert_eq!(expiry, -2, "{line}: a write leaving the limiter idle deletes the key");
                } else if expiry == -2 {
                    // Already expired: only when written at a time long past (AT 0).
                    assert!(effective + reply[4] <= now_ms(), "{line}: the key is gone");
                } else {
                    assert_eq!(expiry, effective + reply[4], "{line}: expiry");
                }
                last = Some(effective);
                stored = Some(params.clone());
            } else {
                assert_eq!(snapshot(&mut con, &key), before, "{line}: changed the key");
            }
            // Idle, or written at a time long past (AT 0, 1970): the key is gone.
            if !exists(&mut con, &key) {
                last = None;
                stored = None;
            }
        }
    }
    println!(
        "extremes walk: {accepted} accepted ({admitted} admitted, {reconfigured} rejected reconfigurations), \
         {refused} refused"
    );
    assert!(admitted > 0 && refused > 0 && reconfigured > 0);
    assert_eq!(redis::cmd("PING").query::<String>(&mut con).expect("PING"), "PONG");
}

/// `rl.max-sliding-entries` at its bounds: 1 (every request joins the newest entry, moved to now:
/// stricter than exact, never more lenient) and 10^15; 0 and 10^15 + 1 are refused.
#[test]
fn max_sliding_entries_at_its_bounds() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let config = |con: &mut Connection, value: &str| -> redis::RedisResult<String> {
        redis::cmd("CONFIG").arg("SET").arg("rl.max-sliding-entries").arg(value).query(con)
    };
    for bad in ["0", "1000000000000001", "-1", "18446744073709551616"] {
        assert!(config(&mut con, bad).is_err(), "max-sliding-entries {bad} accepted");
    }
    config(&mut con, "1000000000000000").expect("max-sliding-entries 10^15");
    config(&mut con, "1").expect("max-sliding-entries 1");
    let t = future();
    script(
        &mut con,
        "RL.SLIDING",
        "capped",
        &[
            (format!("3 1000 AT {t}"), [1, 3, 2, -1, 1000]),
            // Joins the entry at t, which moves to t + 500.
            (format!("3 1000 AT {}", t + 500), [1, 3, 1, -1, 1000]),
            // Exact would have freed the unit taken at t; capped, both live until t + 1500.
            (format!("3 1000 COST 2 AT {}", t + 1000), [0, 3, 1, 500, 500]),
            (format!("3 1000 COST 2 AT {}", t + 1500), [1, 3, 1, -1, 1000]),
        ],
    );
    // A full log at the largest limit and window, one entry.
    script(
        &mut con,
        "RL.SLIDING",
        "capped:max",
        &[
            (format!("{U} {P} COST {} AT {t}", U - 1), [1, U, 1, -1, P]),
            (format!("{U} {P} AT {}", t + P - 1), [1, U, 0, -1, P]),
            (format!("{U} {P} AT {}", t + P), [0, U, 0, P - 1, P - 1]),
        ],
    );
}
