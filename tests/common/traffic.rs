//! Random RL.* traffic for replication and persistence tests: every algorithm, reconfiguration,
//! COST 0, DRYRUN, rejections, binary key names, with and without AT.

use rand::{rngs::StdRng, Rng};
use redis::Connection;

/// Sends `calls` random commands (one by one) over `keys_per_algorithm` keys per algorithm.
/// Periods are long enough that no key expires during a test.
pub fn send(con: &mut Connection, rng: &mut StdRng, calls: usize, keys_per_algorithm: u32) {
    for _ in 0..calls {
        let _: redis::Value = command(rng, keys_per_algorithm).query(con).expect("RL command");
    }
}

pub fn command(rng: &mut StdRng, keys_per_algorithm: u32) -> redis::Cmd {
    let k = rng.gen_range(0..keys_per_algorithm);
    let mut cmd;
    if rng.gen_ratio(1, 10) {
        // redis-cell's syntax on the GCRA keys: max_burst count period_s [quantity].
        let mut cmd = redis::cmd("CL.THROTTLE");
        cmd.arg(key(b"gc", k)).arg(rng.gen_range(3..5)).arg(1).arg(60);
        if rng.gen_ratio(1, 2) {
            cmd.arg(rng.gen_range(0..3));
        }
        return cmd;
    }
    match rng.gen_range(0..4) {
        0 => {
            cmd = redis::cmd("RL.TOKENBUCKET");
            cmd.arg(key(b"tb", k)).arg(rng.gen_range(5..8)).arg(rng.gen_range(1..3)).arg(rng.gen_range(60_000..60_003));
        }
        1 => {
            cmd = redis::cmd("RL.FIXED");
            cmd.arg(key(b"fw", k)).arg(rng.gen_range(5..8)).arg(if rng.gen_ratio(1, 20) { 120_000 } else { 60_000 });
        }
        2 => {
            cmd = redis::cmd("RL.GCRA");
            cmd.arg(key(b"gc", k)).arg(rng.gen_range(3..5)).arg(rng.gen_range(1..3)).arg(rng.gen_range(60_000..60_002));
        }
        _ => {
            cmd = redis::cmd("RL.SLIDING");
            cmd.arg(key(b"sl", k)).arg(rng.gen_range(20..23)).arg(rng.gen_range(60_000..60_003));
        }
    }
    if rng.gen_ratio(1, 3) {
        cmd.arg("COST").arg(rng.gen_range(0..4));
    }
    if rng.gen_ratio(1, 10) {
        cmd.arg("DRYRUN");
    }
    if rng.gen_ratio(1, 5) {
        // Explicit time near the clock, sometimes behind a key's last update.
        cmd.arg("AT").arg(super::now_ms() + rng.gen_range(-2_000..2_000));
    }
    cmd
}

/// Key names include a NUL and a non-UTF-8 byte.
fn key(prefix: &[u8], k: u32) -> Vec<u8> {
    let mut name = prefix.to_vec();
    name.extend_from_slice(b":\x00\xff:");
    name.extend_from_slice(k.to_string().as_bytes());
    name
}
