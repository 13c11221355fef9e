//! How close RL.SLIDINGCOUNTER (two fixed windows, the previous one weighted) comes to the exact
//! RL.SLIDING on the same traffic, measured on a real server: `make accuracy`.
//!
//! For each traffic shape (steady and Poisson at a load relative to the limit, bursty), limit and window, the same arrival times
//! (cost 1 each, pinned with AT, so the run takes seconds whatever the window) are sent to one
//! RL.SLIDING key and one RL.SLIDINGCOUNTER key, and the decisions are compared:
//!
//! - differ: the share of requests one admits and the other rejects;
//! - admitted: units the counter admitted per unit the exact log admitted;
//! - worst window: the most units the counter admitted within any sliding window (the exact
//!   log's own definition: a unit admitted at t counts while now < t + window), as a multiple of
//!   the limit; 1.000 means never over the limit.
//!
//! Options: `--requests N` per row (default 20,000), `--seed S`. The module is $RL_MODULE or
//! target/release/librl.so.
#[path = "../tests/common/mod.rs"]
mod common;
use common::*;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::ConnectionLike;

#[derive(Clone, Copy)]
enum Shape {
    /// Evenly spaced, at `load` times the limit per window.
    Steady(f64),
    /// Exponential gaps, at `load` times the limit per window on average.
    Poisson(f64),
    /// Bursts of 1.5 times the limit within a twentieth of a window, one every 0.5 to 2 windows.
    Bursty,
}

impl Shape {
    fn name(self) -> String {
        match self {
            Shape::Steady(load) => format!("steady {load}x"),
            Shape::Poisson(load) => format!("Poisson {load}x"),
            Shape::Bursty => "bursty".to_string(),
        }
    }

    /// `n` arrival times in ms from 0, non-decreasing (several may share a ms).
    fn arrivals(self, rng: &mut StdRng, n: usize, limit: u64, window: u64) -> Vec<i64> {
        let load = match self {
            Shape::Steady(load) | Shape::Poisson(load) => load,
            Shape::Bursty => 1.0,
        };
        let mean_gap = window as f64 / (load * limit as f64);
        let mut t = 0f64;
        let mut out = Vec::with_capacity(n);
        match self {
            Shape::Steady(_) => {
                for i in 0..n {
                    out.push((i as f64 * mean_gap) as i64);
                }
            }
            Shape::Poisson(_) => {
                for _ in 0..n {
                    let u: f64 = rng.gen_range(f64::EPSILON..1.0);
                    t += -u.ln() * mean_gap;
                    out.push(t as i64);
                }
            }
            Shape::Bursty => {
                let burst = (1.5 * limit as f64).ceil() as usize;
                while out.len() < n {
                    let span = window as f64 / 20.0;
                    for i in 0..burst.min(n - out.len()) {
                        out.push((t + span * i as f64 / burst as f64) as i64);
                    }
                    t += window as f64 * rng.gen_range(0.5..2.0);
                }
            }
        }
        out
    }
}

/// Sends every arrival to `command key limit window AT base+t`, pipelined; the decisions.
fn decisions(
    con: &mut Connection,
    command: &str,
    key: &str,
    limit: u64,
    window: u64,
    base: i64,
    times: &[i64],
) -> Vec<bool> {
    let mut out = Vec::with_capacity(times.len());
    for chunk in times.chunks(2000) {
        let mut pipe = redis::pipe();
        for t in chunk {
            pipe.cmd(command).arg(key).arg(limit).arg(window).arg("AT").arg(base + t);
        }
        let replies = con.req_packed_commands(&pipe.get_packed_pipeline(), 0, chunk.len()).expect("pipeline");
        for reply in replies {
            let reply: Vec<i64> = redis::from_redis_value(&reply).unwrap_or_else(|e| panic!("{command}: {e}"));
            out.push(reply[0] == 1);
        }
    }
    out
}

/// The most admitted units within any sliding window (t - window, t].
fn worst_window(times: &[i64], admitted: &[bool], window: i64) -> usize {
    let kept: Vec<i64> = times.iter().zip(admitted).filter(|(_, a)| **a).map(|(t, _)| *t).collect();
    let mut worst = 0;
    let mut first = 0;
    for (i, t) in kept.iter().enumerate() {
        while kept[first] <= t - window {
            first += 1;
        }
        worst = worst.max(i + 1 - first);
    }
    worst
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let option = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let requests: usize = option("--requests").and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let seed: u64 = option("--seed").and_then(|v| v.parse().ok()).unwrap_or(1);
    let server = Server::start(&[]);
    let mut con = server.conn();
    println!("requests per row: {requests}, seed {seed}; cost 1 per request; times pinned with AT\n");
    println!("| traffic | limit / window | differ | admitted (counter / exact) | worst window, counter | worst window, exact |");
    println!("|---|---|---:|---:|---:|---:|");
    let mut row = 0;
    for shape in [Shape::Steady(1.25), Shape::Poisson(0.9), Shape::Poisson(1.25), Shape::Poisson(2.0), Shape::Bursty] {
        for (limit, window) in [(10u64, 1_000u64), (100, 60_000), (1000, 60_000), (1000, 3_600_000)] {
            row += 1;
            let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(1000) + row);
            let times = shape.arrivals(&mut rng, requests, limit, window);
            // A random phase against the epoch-aligned windows of the counter.
            // (The base is a multiple of every window, so a seed gives the same table on any day.)
            let hour = 3_600_000;
            let base = (now_ms() + 1_000_000_000) / hour * hour + row as i64 * 10_000 * hour;
            let base = base + rng.gen_range(0..window as i64);
            let exact = decisions(&mut con, "RL.SLIDING", &format!("exact:{row}"), limit, window, base, &times);
            let approx =
                decisions(&mut con, "RL.SLIDINGCOUNTER", &format!("approx:{row}"), limit, window, base, &times);
            let differ = exact.iter().zip(&approx).filter(|(a, b)| a != b).count();
            let (n_exact, n_approx) = (exact.iter().filter(|a| **a).count(), approx.iter().filter(|a| **a).count());
            let worst_approx = worst_window(&times, &approx, window as i64);
            let worst_exact = worst_window(&times, &exact, window as i64);
            assert!(worst_exact as u64 <= limit, "the exact log over-admitted");
            println!(
                "| {} | {limit} / {} | {:.2}% | {:.4} | {:.3}x ({worst_approx}) | {:.3}x |",
                shape.name(),
                human_ms(window),
                100.0 * differ as f64 / requests as f64,
                n_approx as f64 / n_exact as f64,
                worst_approx as f64 / limit as f64,
                worst_exact as f64 / limit as f64,
            );
        }
    }
}

fn human_ms(ms: u64) -> String {
    match ms {
        ms if ms % 3_600_000 == 0 => format!("{} h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{} min", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{} s", ms / 1000),
        ms => format!("{ms} ms"),
    }
}
