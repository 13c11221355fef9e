//! Sliding window counter (RL.SLIDINGCOUNTER): two epoch-aligned fixed windows, the previous one weighted by the
//! share of it the sliding window still overlaps. O(1) memory, approximate with respect to the exact sliding log.
//!
//! With w = window_ms, start = now - now % w and e = now - start, the estimate is `prev * (w - e) / w + curr`, an
//! exact fraction kept as its numerator over w: `prev * (w - e) + curr * w`. Every product fits in a u128 (counts up
//! to 10^15, or even u64::MAX, times w up to 10^13).
//!
//! retry_after (rejected, 0 < cost <= limit) is computed in O(1). Let lhs(t) = the admission numerator of the same
//! cost at time t with no other call. lhs never increases with t: inside a window it loses `prev` per ms; at a window
//! boundary curr becomes prev with full weight w and the old prev (whose weight was down to 1) is gone, so lhs drops
//! by prev; two windows after `start` it is `cost * w <= limit * w`. So the admitted times form [t*, ∞) and
//! retry = t* - now:
//! - in this window, admitted iff `prev * (w - e_t) <= (limit - curr - cost) * w`, i.e. (when the slack is >= 0)
//!   `w - e_t <= floor(slack * w / prev) =: reach`: t* = start + w - reach if reach >= 1 (it is > now because the
//!   call was rejected at now; reach = 0 means only e_t = w, the next window, would do);
//! - otherwise in the next window, where prev' = curr and curr' = 0: admitted iff
//!   `curr * (w - e') <= (limit - cost) * w`, i.e. `w - e' <= reach' := floor((limit - cost) * w / curr)` (∞ when
//!   curr = 0): t* = start + w + (w - min(reach', w)), which is start + 2w (both windows empty) when reach' = 0.

use super::{Decision, MAX_TIME_MS, MAX_UNITS};

pub use super::WindowParams as Params;

/// Start of the epoch-aligned window of length `window_ms` holding `now`.
fn window_start(window_ms: u64, now: i64) -> i64 {
    now - now.rem_euclid(window_ms as i64)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingCounter {
    pub params: Params,
    /// Units counted in the window starting at `window_start_ms`.
    pub curr: u64,
    /// Units counted in the window before it.
    pub prev: u64,
    /// Start of the epoch-aligned window holding `last_ms`.
    pub window_start_ms: i64,
    /// Time of the last write; the effective now never goes below it.
    pub last_ms: i64,
}

impl SlidingCounter {
    /// An idle limiter: both windows empty.
    pub fn new(params: Params, now: i64) -> Self {
        SlidingCounter { params, curr: 0, prev: 0, window_start_ms: window_start(params.window_ms, now), last_ms: now }
    }

    /// Whether stored fields are consistent (used when loading untrusted data): only states a write can produce.
    pub fn is_valid(&self) -> bool {
        self.params.validate().is_ok()
            && self.curr <= MAX_UNITS
            && self.prev <= MAX_UNITS
            && (0..=MAX_TIME_MS).contains(&self.last_ms)
            && self.window_start_ms == window_start(self.params.window_ms, self.last_ms)
            // The window before the epoch's first one never counted anything (times are >= 0).
            && (self.prev == 0 || self.window_start_ms > 0)
    }

    /// `(curr, prev, window start)` at `now` (>= last_ms) under `params`: the stored counts rolled forward to the
    /// window holding `now`, or idle when the window length differs from the stored one.
    fn counts_at(&self, params: &Params, now: i64) -> (u64, u64, i64) {
        let start = window_start(params.window_ms, now);
        if params.window_ms != self.params.window_ms {
            return (0, 0, start);
        }
        if start == self.window_start_ms {
            (self.curr, self.prev, start)
        } else if start == self.window_start_ms.saturating_add(params.window_ms as i64) {
            (0, self.curr, start)
        } else {
            (0, 0, start)
        }
    }

    /// Moves the last update to `now` (when later) without changing any later decision: the counts
    /// rolled forward to the window holding now.
    pub fn advance(&mut self, now: i64) {
        if now > self.last_ms {
            (self.curr, self.prev, self.window_start_ms) = self.counts_at(&self.params, now);
            self.last_ms = now;
        }
    }

    /// Decides a request of `cost` at `now` under `params`. Writes (adopting `params`, rolling the windows to the
    /// effective now) only when `commit` and cost > 0 and the request is admitted or `params` differ from the
    /// stored ones (a reconfiguration is written even when the request is rejected; its units are not counted).
    pub fn decide(&mut self, params: &Params, now: i64, cost: u64, commit: bool) -> Decision {
        let now = now.max(self.last_ms);
        let (curr, prev, start) = self.counts_at(params, now);
        let w = u128::from(params.window_ms);
        let capacity = u128::from(params.limit) * w;
        // 0 <= now - start < w.
        let weighted_prev = u128::from(prev) * (w - (now - start) as u128);
        let needed = weighted_prev + (u128::from(curr) + u128::from(cost)) * w;
        // COST 0 is a peek: allowed even when a lowered limit is already exceeded.
        let allowed = cost == 0 || needed <= capacity;
        let retry_after_ms = if allowed || cost > params.limit {
            -1
        } else {
            retry_after(params, u128::from(curr), u128::from(prev), u128::from(cost), start, now)
        };
        // When admitted, curr + cost <= limit (or cost = 0): no overflow.
        let curr = if allowed { curr + cost } else { curr };
        let estimate = weighted_prev + u128::from(curr) * w;
        let reset_after_ms = if curr > 0 {
            start + 2 * params.window_ms as i64 - now
        } else if prev > 0 {
            start + params.window_ms as i64 - now
        } else {
            0
        };
        let wrote = commit && cost > 0 && (allowed || *params != self.params);
        if wrote {
            *self = SlidingCounter { params: *params, curr, prev, window_start_ms: start, last_ms: now };
        }
        Decision {
            allowed,
            limit: params.limit,
            // <= limit, so the cast is lossless.
            remaining: (capacity.saturating_sub(estimate) / w) as u64,
            retry_after_ms,
            reset_after_ms,
            at_ms: now,
            wrote,
        }
    }
}

/// The least d >= 1 such that `cost` is admitted at now + d with no other call, for a request rejected at `now`
/// with 0 < cost <= limit, `curr` and `prev` being the counts at `now` (see the module's documentation).
fn retry_after(params: &Params, curr: u128, prev: u128, cost: u128, start: i64, now: i64) -> i64 {
    let w = u128::from(params.window_ms);
    let limit = u128::from(params.limit);
    let window = params.window_ms as i64;
    // This window: prev * (w - e) <= (limit - curr - cost) * w. A rejection with slack >= 0 implies prev > 0 and
    // reach < w - e_now, so the time found is after now.
    if let Some(slack) = limit.checked_sub(curr + cost) {
        if let Some(reach) = (slack * w).checked_div(prev).filter(|&reach| reach >= 1) {
            return (start + window - reach.min(w) as i64 - now).max(1);
        }
    }
    // Next window: prev' = curr, curr' = 0: curr * (w - e') <= (limit - cost) * w; start + 2w at the latest.
    let reach = (limit.saturating_sub(cost) * w).checked_div(curr).map_or(w, |reach| reach.min(w));
    start + 2 * window - reach as i64 - now
}

#[cfg(test)]
mod tests {
    use super::super::MAX_PERIOD_MS;
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    fn p(limit: u64, window_ms: u64) -> Params {
        Params { limit, window_ms }
    }

    #[test]
    fn weights_the_previous_window_by_its_overlap() {
        let params = p(10, 1000);
        let mut c = SlidingCounter::new(params, 1000);
        assert_eq!(c.decide(&params, 1000, 4, true).reply(), [1, 10, 6, -1, 2000]);
        // t = 2250: prev = 4 weighted 750/1000 = 3; 3 + 7 = 10 fits exactly.
        assert_eq!(c.decide(&params, 2250, 7, true).reply(), [1, 10, 0, -1, 1750]);
        assert_eq!((c.curr, c.prev, c.window_start_ms, c.last_ms), (7, 4, 2000, 2250));
        let before = c;
        // 1 more: 4 * (1000 - e) + 8000 <= 10000 from e = 500.
        let d = c.decide(&params, 2250, 1, true);
        assert_eq!(d.reply(), [0, 10, 0, 250, 1750]);
        assert!(!d.wrote);
        assert_eq!(c, before);
        // 4 more: not in this window (7 + 4 > 10); next window 7 * (1000 - e') + 4000 <= 10000 from e' = 143.
        assert_eq!(c.decide(&params, 2250, 4, true).reply(), [0, 10, 0, 893, 1750]);
        // The whole limit: only once both windows are empty, at 4000.
        assert_eq!(c.decide(&params, 2250, 10, true).reply(), [0, 10, 0, 1750, 1750]);
        assert_eq!(c.decide(&params, 2250, 11, true).reply(), [0, 10, 0, -1, 1750]);
        assert_eq!(c.decide(&params, 2250, 0, true).reply(), [1, 10, 0, -1, 1750]);
        // t = 2600: estimate 4 * 0.4 + 7 = 8.6, one whole unit left.
        assert_eq!(c.decide(&params, 2600, 0, true).reply(), [1, 10, 1, -1, 1400]);
        // t = 3500: prev = 7 weighted 0.5 = 3.5, curr = 0; reset at 4000.
        assert_eq!(c.decide(&params, 3500, 0, true).reply(), [1, 10, 6, -1, 500]);
        assert_eq!(c.decide(&params, 4000, 0, true).reply(), [1, 10, 10, -1, 0]);
        assert_eq!(c, before);
    }

    #[test]
    fn time_never_runs_backwards() {
        let params = p(2, 100);
        let mut c = SlidingCounter::new(params, 0);
        c.decide(&params, 150, 2, true);
        // Answered at 150: admitted from 2 * (100 - e') + 100 <= 200 in the next window, e' >= 50 (at 250).
        let d = c.decide(&params, 10, 1, true);
        assert_eq!((d.at_ms, d.reply()), (150, [0, 2, 0, 100, 150]));
    }

    #[test]
    fn a_reconfiguration_is_written_even_when_rejected() {
        let params = p(10, 1000);
        let mut c = SlidingCounter { params, curr: 7, prev: 4, window_start_ms: 2000, last_ms: 2250 };
        // A lowered limit keeps the counts: 4 * 0.4 + 7 + 1 > 5, and stays rejected until the next window's
        // 7 * (1000 - e') + 1000 <= 5000, e' >= 429 (at 3429).
        let lower = p(5, 1000);
        let dry = c.decide(&lower, 2600, 1, false);
        assert_eq!((dry.reply(), dry.wrote), ([0, 5, 0, 829, 1400], false));
        assert_eq!(c.params, params);
        let peek = c.decide(&lower, 2600, 0, true);
        assert_eq!((peek.reply(), peek.wrote), ([1, 5, 0, -1, 1400], false));
        let d = c.decide(&lower, 2600, 1, true);
        assert_eq!((d.reply(), d.wrote), ([0, 5, 0, 829, 1400], true));
        assert_eq!(c, SlidingCounter { params: lower, curr: 7, prev: 4, window_start_ms: 2000, last_ms: 2600 });
        // A cost above the limit still writes a reconfiguration: prev = 7 weighted 0.9, reset at 4000.
        let higher = p(20, 1000);
        let d = c.decide(&higher, 3100, 21, true);
        assert_eq!((d.reply(), d.wrote), ([0, 20, 13, -1, 900], true));
        assert_eq!(c, SlidingCounter { params: higher, curr: 0, prev: 7, window_start_ms: 3000, last_ms: 3100 });
        // A new window length starts idle.
        let shorter = p(20, 500);
        let d = c.decide(&shorter, 3200, 1, true);
        assert_eq!((d.reply(), d.wrote), ([1, 20, 19, -1, 800], true));
        assert_eq!(c, SlidingCounter { params: shorter, curr: 1, prev: 0, window_start_ms: 3000, last_ms: 3200 });
        // No reconfiguration, rejected: nothing written.
        let before = c;
        let d = c.decide(&shorter, 3200, 20, true);
        assert_eq!((d.reply(), d.wrote), ([0, 20, 19, 800, 800], false));
        assert_eq!(c, before);
    }

    #[test]
    fn is_valid_refuses_what_no_write_produces() {
        let params = p(10, 1000);
        let ok = SlidingCounter { params, curr: 3, prev: 4, window_start_ms: 5000, last_ms: 5999 };
        assert!(ok.is_valid());
        assert!(SlidingCounter::new(params, 0).is_valid());
        assert!(SlidingCounter { curr: MAX_UNITS, prev: MAX_UNITS, ..ok }.is_valid());
        assert!(!SlidingCounter { curr: MAX_UNITS + 1, ..ok }.is_valid());
        assert!(!SlidingCounter { prev: MAX_UNITS + 1, ..ok }.is_valid());
        assert!(!SlidingCounter { window_start_ms: 4000, ..ok }.is_valid());
        assert!(!SlidingCounter { window_start_ms: 5500, ..ok }.is_valid());
        assert!(!SlidingCounter { last_ms: -1, window_start_ms: -1000, ..ok }.is_valid());
        assert!(!SlidingCounter { last_ms: MAX_TIME_MS + 1, window_start_ms: MAX_TIME_MS + 1, ..ok }.is_valid());
        assert!(!SlidingCounter { params: p(0, 1000), ..ok }.is_valid());
        assert!(!SlidingCounter { params: p(10, MAX_PERIOD_MS + 1), ..ok }.is_valid());
        // A previous window before the epoch.
        assert!(!SlidingCounter { prev: 1, window_start_ms: 0, last_ms: 10, ..ok }.is_valid());
        assert!(SlidingCounter { prev: 0, window_start_ms: 0, last_ms: 10, ..ok }.is_valid());
    }

    #[test]
    fn extreme_parameters_do_not_overflow() {
        let params = p(MAX_UNITS, MAX_PERIOD_MS);
        let mut c = SlidingCounter::new(params, MAX_TIME_MS - 1);
        let d = c.decide(&params, MAX_TIME_MS - 1, MAX_UNITS, true);
        assert_eq!(d.reply(), [1, MAX_UNITS as i64, 0, -1, MAX_PERIOD_MS as i64 + 1]);
        // At the next window's start prev weighs fully; 1 unit fits 1 ms later (slack (L - 1) * w / L = w - 1).
        let d = c.decide(&params, MAX_TIME_MS, 1, true);
        assert_eq!(d.reply(), [0, MAX_UNITS as i64, 0, 1, MAX_PERIOD_MS as i64]);
        let d = c.decide(&params, MAX_TIME_MS, MAX_UNITS, true);
        assert_eq!(d.reply(), [0, MAX_UNITS as i64, 0, MAX_PERIOD_MS as i64, MAX_PERIOD_MS as i64]);
        // Even from states no write produces, nothing overflows.
        let mut wild = SlidingCounter { params, curr: u64::MAX, prev: u64::MAX, window_start_ms: 0, last_ms: 0 };
        for (now, cost) in [(0, MAX_UNITS), (0, 1), (1, 0), (MAX_PERIOD_MS as i64, MAX_UNITS), (MAX_TIME_MS, 1)] {
            let d = wild.decide(&params, now, cost, false);
            assert!(d.retry_after_ms >= -1 && d.reset_after_ms >= 0);
        }
    }

    /// Reference model, independent of the rolling logic: the list of admitted (time, cost) since the window length
    /// last changed, counts summed per epoch-aligned window, retry and reset found by brute-force search.
    #[derive(Clone, Debug)]
    struct Model {
        params: Params,
        admitted: Vec<(i64, u64)>,
        last: i64,
    }

    impl Model {
        /// Numerator (over w) of the admission test of `cost` at `t` under `params`, after reconfiguration.
        fn needed(&self, params: &Params, t: i64, cost: u64) -> u128 {
            let w = params.window_ms as i64;
            let start = t.div_euclid(w) * w;
            let kept = params.window_ms == self.params.window_ms;
            let sum = |from: i64, to: i64| -> u64 {
                self.admitted.iter().filter(|e| kept && from <= e.0 && e.0 < to).map(|e| e.1).sum()
            };
            let curr = sum(start, start + w);
            let prev = sum(start - w, start);
            u128::from(prev) * (w - (t - start)) as u128 + u128::from(curr + cost) * w as u128
        }

        fn admits(&self, params: &Params, t: i64, cost: u64) -> bool {
            cost == 0 || self.needed(params, t, cost) <= u128::from(params.limit) * u128::from(params.window_ms)
        }

        /// The expected reply, and the model after a written call.
        fn decide(&self, params: &Params, now: i64, cost: u64, commit: bool) -> ([i64; 5], bool, Model) {
            let t = now.max(self.last);
            let allowed = self.admits(params, t, cost);
            let reconfigured = *params != self.params;
            let wrote = commit && cost > 0 && (allowed || reconfigured);
            // The state after the outcome (whether written or not).
            let mut after = self.clone();
            if params.window_ms != self.params.window_ms {
                after.admitted.clear();
            }
            after.params = *params;
            after.last = t;
            if allowed && cost > 0 {
                after.admitted.push((t, cost));
            }
            // Windows are shorter than 300 ms and time never runs backwards: older entries never count again.
            after.admitted.retain(|e| e.0 > t - 600);
            let w = params.window_ms as i64;
            let limit = params.limit;
            let retry = if allowed || cost > limit {
                -1
            } else {
                (1..=2 * w + 1).find(|&d| after.admits(params, t + d, cost)).expect("admitted within 2w")
            };
            let zero = |d: i64| after.needed(params, t + d, 0) == 0;
            let reset = (0..=2 * w + 1).find(|&d| zero(d)).expect("idle within 2w");
            let estimate = after.needed(params, t, 0);
            let cap = u128::from(limit) * w as u128;
            let remaining = (0..=limit).rev().find(|&r| estimate + u128::from(r) * w as u128 <= cap).unwrap_or(0);
            let reply = [i64::from(allowed), limit as i64, remaining as i64, retry, reset];
            (reply, wrote, if wrote { after } else { self.clone() })
        }
    }

    /// Random small parameters; half the time keeping `window_ms` when given (a change of limit only).
    fn random_params(rng: &mut StdRng, window_ms: Option<u64>) -> Params {
        let limit = rng.gen_range(1..20);
        match window_ms {
            Some(w) if rng.gen_ratio(1, 2) => p(limit, w),
            _ => p(limit, rng.gen_range(1..300)),
        }
    }

    #[test]
    fn matches_reference_model_on_random_schedules() {
        let seed: u64 = rand::random();
        println!("seed {seed}");
        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..150 {
            let mut params = random_params(&mut rng, None);
            let mut now: i64 = if rng.gen_ratio(1, 4) { rng.gen_range(0..600) } else { rng.gen_range(0..1_000_000) };
            let mut counter = SlidingCounter::new(params, now);
            let mut model = Model { params, admitted: Vec::new(), last: now };
            for step in 0..300 {
                now = match rng.gen_range(0..20) {
                    0 => now - rng.gen_range(0..2000), // backwards
                    1 => now + rng.gen_range(0..2000), // several windows ahead
                    _ => now + rng.gen_range(-20..60),
                }
                .max(0);
                if rng.gen_ratio(1, 15) {
                    // Sometimes only the limit, sometimes the window too.
                    params = random_params(&mut rng, Some(params.window_ms));
                }
                let cost = if rng.gen_ratio(1, 8) { 0 } else { rng.gen_range(1..25) };
                let commit = rng.gen_ratio(9, 10);
                let before = counter;
                let (expected, wrote, next) = model.decide(&params, now, cost, commit);
                let d = counter.decide(&params, now, cost, commit);
                let ctx =
                    format!("seed {seed} step {step}: {params:?} now {now} cost {cost} commit {commit} {before:?}");
                assert_eq!((d.reply(), d.wrote), (expected, wrote), "{ctx}");
                assert_eq!(d.at_ms, now.max(before.last_ms), "{ctx}");
                assert!(counter.is_valid(), "{ctx}");
                if !wrote {
                    assert_eq!(counter, before, "{ctx}");
                } else {
                    assert_eq!((counter.params, counter.last_ms), (params, d.at_ms), "{ctx}");
                }
                model = next;
            }
        }
    }

    /// Checks, on one state and one call (never written), the three properties the contract's reply owes.
    fn check_properties(c: &SlidingCounter, params: &Params, now: i64, cost: u64, ctx: &str) {
        let mut probe = *c;
        let d = probe.decide(params, now, cost, false);
        assert_eq!(probe, *c, "{ctx}");
        let at = d.at_ms;
        let call = |state: &SlidingCounter, t: i64, cost: u64| {
            let mut copy = *state;
            copy.decide(params, t, cost, false)
        };
        let admits = |t: i64, cost: u64| call(c, t, cost).allowed;
        // retry: the same call is admitted at now + retry and not at now + retry - 1.
        if d.retry_after_ms >= 0 {
            assert!(!d.allowed && d.retry_after_ms >= 1 && cost <= params.limit, "{ctx} {d:?}");
            assert!(admits(at + d.retry_after_ms, cost), "{ctx} {d:?}");
            assert!(!admits(at + d.retry_after_ms - 1, cost), "{ctx} {d:?}");
        } else {
            assert!(d.allowed || cost > params.limit, "{ctx} {d:?}");
        }
        // reset: after this call's outcome, the estimate is 0 at now + reset and not at now + reset - 1
        // (a peek's remaining is the limit exactly when the estimate is 0).
        let mut after = *c;
        let written = after.decide(params, now, cost, true);
        assert_eq!((written.reply(), written.at_ms), (d.reply(), at), "{ctx}");
        let peek = |t: i64| call(&after, t, 0);
        let idle = peek(at + d.reset_after_ms);
        assert_eq!((idle.remaining, idle.reset_after_ms), (params.limit, 0), "{ctx} {d:?}");
        if d.reset_after_ms > 0 {
            assert!(peek(at + d.reset_after_ms - 1).remaining < params.limit, "{ctx} {d:?}");
        }
        // remaining of a peek == the largest cost admitted now.
        let r = call(c, now, 0).remaining;
        assert!(r == 0 || admits(now, r), "{ctx} remaining {r}");
        assert!(!admits(now, r + 1), "{ctx} remaining {r}");
    }

    #[test]
    fn properties_hold_on_random_states() {
        let seed: u64 = rand::random();
        println!("seed {seed}");
        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..200 {
            // Small and huge scales alike.
            let huge = rng.gen_ratio(1, 2);
            let random_params = |rng: &mut StdRng| {
                if huge {
                    p(rng.gen_range(1..=MAX_UNITS), rng.gen_range(1..=MAX_PERIOD_MS))
                } else {
                    p(rng.gen_range(1..30), rng.gen_range(1..500))
                }
            };
            let mut params = random_params(&mut rng);
            let mut now: i64 = rng.gen_range(0..=MAX_TIME_MS);
            let mut c = SlidingCounter::new(params, now);
            for step in 0..200 {
                let w = params.window_ms as i64;
                now = match rng.gen_range(0..10) {
                    0 => rng.gen_range(0..=MAX_TIME_MS), // anywhere, backwards included
                    1 => now + rng.gen_range(0..3 * w),
                    _ => now + rng.gen_range(0..=w / 4 + 1),
                }
                .min(MAX_TIME_MS);
                if rng.gen_ratio(1, 10) {
                    params = if rng.gen_ratio(1, 2) {
                        p(random_params(&mut rng).limit, params.window_ms)
                    } else {
                        random_params(&mut rng)
                    };
                }
                let limit = params.limit;
                let cost = match rng.gen_range(0..6) {
                    0 => 0,
                    1 => rng.gen_range(1..=limit),
                    2 => rng.gen_range(0..=MAX_UNITS),
                    _ => rng.gen_range(1..=limit / 8 + 1),
                };
                let ctx = format!("seed {seed} step {step}: {params:?} now {now} cost {cost} {c:?}");
                check_properties(&c, &params, now, cost, &ctx);
                c.decide(&params, now, cost, rng.gen_ratio(9, 10));
                assert!(c.is_valid(), "{ctx}");
            }
        }
    }
}
