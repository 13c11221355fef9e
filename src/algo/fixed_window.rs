//! Fixed window counter, windows aligned to the Unix epoch.

use super::{Decision, MAX_TIME_MS, MAX_UNITS};

pub use super::WindowParams as Params;

/// Start of the epoch-aligned window holding `now`.
fn window_start(params: &Params, now: i64) -> i64 {
    now - now.rem_euclid(params.window_ms as i64)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedWindow {
    pub params: Params,
    /// Start of the window `count` belongs to.
    pub window_start_ms: i64,
    pub count: u64,
    /// Time of the last written request; the effective now never goes below it.
    pub last_ms: i64,
}

impl FixedWindow {
    /// An idle limiter: an empty window.
    pub fn new(params: Params, now: i64) -> Self {
        FixedWindow { params, window_start_ms: window_start(&params, now), count: 0, last_ms: now }
    }

    pub fn is_valid(&self) -> bool {
        self.params.validate().is_ok()
            && self.count <= MAX_UNITS
            && (0..=MAX_TIME_MS).contains(&self.last_ms)
            && self.window_start_ms == window_start(&self.params, self.last_ms)
    }

    /// Moves the last update to `now` (when later) without changing any later decision: a count of
    /// a window already over is dropped.
    pub fn advance(&mut self, now: i64) {
        if now > self.last_ms {
            let start = window_start(&self.params, now);
            if start != self.window_start_ms {
                (self.window_start_ms, self.count) = (start, 0);
            }
            self.last_ms = now;
        }
    }

    pub fn decide(&mut self, params: &Params, now: i64, cost: u64, commit: bool) -> Decision {
        let now = now.max(self.last_ms);
        let start = window_start(params, now);
        let end = start + params.window_ms as i64;
        // The count carries over only within the same window of the same length.
        let same_window = start == self.window_start_ms && params.window_ms == self.params.window_ms;
        let mut count = if same_window { self.count } else { 0 };
        // COST 0 is a peek: allowed even when a lowered limit is already exceeded.
        let allowed = cost == 0 || count.checked_add(cost).is_some_and(|total| total <= params.limit);
        if allowed {
            count += cost;
        }
        // A reconfiguration is a write of its own, even when the request is rejected.
        let wrote = commit && cost > 0 && (allowed || *params != self.params);
        if wrote {
            *self = FixedWindow { params: *params, window_start_ms: start, count, last_ms: now };
        }
        Decision {
            allowed,
            limit: params.limit,
            remaining: params.limit.saturating_sub(count),
            retry_after_ms: if allowed || cost > params.limit { -1 } else { end - now },
            reset_after_ms: if count > 0 { end - now } else { 0 },
            at_ms: now,
            wrote,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    #[test]
    fn counts_within_an_aligned_window() {
        let params = Params { limit: 3, window_ms: 1000 };
        let mut w = FixedWindow::new(params, 10_250);
        assert_eq!(w.decide(&params, 10_250, 2, true).reply(), [1, 3, 1, -1, 750]);
        assert_eq!(w.decide(&params, 10_500, 2, true).reply(), [0, 3, 1, 500, 500]);
        assert_eq!(w.decide(&params, 10_500, 4, true).reply(), [0, 3, 1, -1, 500]);
        assert_eq!(w.decide(&params, 11_000, 3, true).reply(), [1, 3, 0, -1, 1000]);
        assert_eq!(w.decide(&params, 11_000, 0, true).reply(), [1, 3, 0, -1, 1000]);
    }

    #[test]
    fn reconfiguring_the_window_resets_the_count_but_a_new_limit_keeps_it() {
        let params = Params { limit: 5, window_ms: 1000 };
        let mut w = FixedWindow::new(params, 0);
        w.decide(&params, 0, 4, true);
        let tighter = Params { limit: 2, window_ms: 1000 };
        assert_eq!(w.decide(&tighter, 10, 1, true).reply(), [0, 2, 0, 990, 990]);
        let longer = Params { limit: 2, window_ms: 2000 };
        assert_eq!(w.decide(&longer, 10, 1, true).reply(), [1, 2, 1, -1, 1990]);
    }

    #[test]
    fn matches_reference_model_on_random_schedules() {
        let seed: u64 = rand::random();
        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..200 {
            let mut params = Params { limit: rng.gen_range(1..20), window_ms: rng.gen_range(1..3000) };
            let mut now: i64 = rng.gen_range(0..1_000_000);
            let mut w = FixedWindow::new(params, now);
            // Model: every admitted (time, cost, window_ms); count = sum of those in now's window.
            // A reconfiguration written without an admission is an entry of cost 0.
            let mut admitted: Vec<(i64, u64, u64)> = Vec::new();
            let mut last = now;
            let mut stored = params;
            for _ in 0..300 {
                now += rng.gen_range(-300..800);
                if rng.gen_ratio(1, 20) {
                    params = Params { limit: rng.gen_range(1..20), window_ms: rng.gen_range(1..3000) };
                }
                let cost = rng.gen_range(0..6);
                let commit = rng.gen_ratio(9, 10);
                let t = now.max(last);
                let ws = params.window_ms as i64;
                let start = t / ws * ws;
                // Entries since the last change of window length, inside this window.
                let count: u64 = admitted
                    .iter()
                    .rev()
                    .take_while(|e| e.2 == params.window_ms)
                    .filter(|e| e.0 >= start)
                    .map(|e| e.1)
                    .sum();
                let allowed = cost == 0 || count + cost <= params.limit;
                let after = if allowed { count + cost } else { count };
                let expect = [
                    i64::from(allowed),
                    params.limit as i64,
                    params.limit.saturating_sub(after) as i64,
                    if allowed || cost > params.limit { -1 } else { start + ws - t },
                    if after > 0 { start + ws - t } else { 0 },
                ];
                let d = w.decide(&params, now, cost, commit);
                assert_eq!(d.reply(), expect, "seed {seed}");
                let wrote = commit && cost > 0 && (allowed || params != stored);
                assert_eq!(d.wrote, wrote, "seed {seed}");
                if wrote {
                    admitted.push((t, if allowed { cost } else { 0 }, params.window_ms));
                    (last, stored) = (t, params);
                }
            }
        }
    }
}
