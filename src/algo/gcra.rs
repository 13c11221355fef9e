//! Generic cell rate algorithm (GCRA), as redis-cell computes it but exact.
//!
//! The emission interval T = period_ms / rate is kept as a fraction: times are handled in
//! "scaled" units of 1/rate ms, where T is exactly `period_ms`. The state is the theoretical
//! arrival time (TAT) in the same units, stored as whole ms + a fraction in 1/rate ms.
//! The delay variation tolerance is T * (burst + 1), so a burst of burst + 1 passes at once.

use super::{ceil_div, within, Decision, MAX_PERIOD_MS, MAX_TIME_MS, MAX_UNITS};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub burst: u64,
    pub rate: u64,
    pub period_ms: u64,
}

impl Params {
    pub fn validate(&self) -> Result<(), &'static str> {
        within(self.burst, 0, MAX_UNITS - 1, "burst")?;
        within(self.rate, 1, MAX_UNITS, "rate")?;
        within(self.period_ms, 1, MAX_PERIOD_MS, "period_ms")?;
        // ceil(tolerance / rate) > MAX_PERIOD_MS, without a 128-bit division (every call validates).
        if self.tolerance() > u128::from(MAX_PERIOD_MS) * u128::from(self.rate) {
            return Err("(burst + 1) * period_ms / rate");
        }
        Ok(())
    }

    pub fn limit(&self) -> u64 {
        self.burst + 1
    }

    /// Delay variation tolerance in scaled units: T * (burst + 1).
    fn tolerance(&self) -> u128 {
        u128::from(self.period_ms) * u128::from(self.limit())
    }

    fn scale(&self, ms: i64) -> u128 {
        u128::from(ms.max(0) as u64) * u128::from(self.rate)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    pub params: Params,
    /// Theoretical arrival time: whole ms plus `tat_fraction` / rate ms.
    pub tat_ms: i64,
    pub tat_fraction: u64,
    /// Time of the last written request; the effective now never goes below it.
    pub last_ms: i64,
}

impl Gcra {
    /// An idle limiter: nothing owed.
    pub fn new(params: Params, now: i64) -> Self {
        Gcra { params, tat_ms: now, tat_fraction: 0, last_ms: now }
    }

    /// The limiter redis-cell left in a string key, which holds only its TAT in ns since the epoch.
    /// The TAT is rounded up to 1/rate ms (never more lenient) and capped at the most these
    /// parameters can owe at `now`, the time it is taken over at.
    pub fn from_cell_tat(params: Params, tat_ns: u64, now: i64) -> Option<Self> {
        if !(0..=MAX_TIME_MS).contains(&now) {
            return None;
        }
        let rate = u128::from(params.rate);
        let tat = (u128::from(tat_ns) * rate).div_ceil(1_000_000).min(params.scale(now) + params.tolerance());
        Some(Gcra { params, tat_ms: i64::try_from(tat / rate).ok()?, tat_fraction: (tat % rate) as u64, last_ms: now })
    }

    /// Whether stored fields are consistent (used when loading untrusted data): in particular the
    /// TAT is at most MAX_PERIOD_MS past the last write. An admission leaves it at most one
    /// tolerance ahead; a reconfiguration keeps it as an absolute time, so a lowered burst may
    /// leave it past the new tolerance, but never past the largest one (which bounds every reply).
    pub fn is_valid(&self) -> bool {
        let most_owed = u128::from(MAX_PERIOD_MS) * u128::from(self.params.rate);
        self.params.validate().is_ok()
            && self.tat_fraction < self.params.rate
            && (0..=MAX_TIME_MS).contains(&self.last_ms)
            && self.tat_ms >= 0
            && self.tat_scaled(&self.params) <= self.params.scale(self.last_ms) + most_owed
    }

    /// The TAT in scaled units of `params` (a different rate re-expresses the fraction, rounded up
    /// so a reconfiguration never forgives debt).
    fn tat_scaled(&self, params: &Params) -> u128 {
        let whole = params.scale(self.tat_ms);
        let fraction = u128::from(self.tat_fraction);
        if params.rate == self.params.rate {
            whole + fraction
        } else {
            whole + (fraction * u128::from(params.rate)).div_ceil(u128::from(self.params.rate))
        }
    }

    /// Moves the last update to `now` (when later) without changing any later decision (the TAT
    /// is an absolute time).
    pub fn advance(&mut self, now: i64) {
        self.last_ms = self.last_ms.max(now);
    }

    pub fn decide(&mut self, params: &Params, now: i64, cost: u64, commit: bool) -> Decision {
        let now = now.max(self.last_ms);
        let rate = u128::from(params.rate);
        let now_scaled = params.scale(now);
        let tolerance = params.tolerance();
        let tat = self.tat_scaled(params).max(now_scaled);
        let increment = u128::from(cost) * u128::from(params.period_ms);
        let new_tat = tat + increment;
        // Admitted iff new_tat - tolerance <= now.
        // COST 0 is a peek: allowed even when a lowered burst is already exceeded.
        let allowed = cost == 0 || new_tat <= now_scaled + tolerance;
        let retry_after_ms =
            if allowed || cost > params.limit() { -1 } else { ceil_div(new_tat - tolerance - now_scaled, rate) };
        let tat_after = if allowed { new_tat } else { tat };
        // A reconfiguration is a write of its own, even when the request is rejected.
        let wrote = commit && cost > 0 && (allowed || *params != self.params);
        if wrote {
            self.params = *params;
            self.tat_ms = (tat_after / rate) as i64;
            self.tat_fraction = (tat_after % rate) as u64;
            self.last_ms = now;
        }
        let owed = tat_after - now_scaled;
        Decision {
            allowed,
            limit: params.limit(),
            remaining: (tolerance.saturating_sub(owed) / u128::from(params.period_ms)) as u64,
            retry_after_ms,
            reset_after_ms: ceil_div(owed, rate),
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
    fn a_redis_cell_tat_is_taken_over_exactly_or_stricter() {
        let params = Params { burst: 4, rate: 1, period_ms: 10_000 };
        let now = 1_700_000_000_000;
        let ns = |ms: i64| (ms as u64) * 1_000_000;
        // Two requests of the burst used: 3 remain, the next one leaves 2.
        let mut g = Gcra::from_cell_tat(params, ns(now + 20_000), now).unwrap();
        assert!(g.is_valid());
        assert_eq!(g.decide(&params, now, 1, true).reply(), [1, 5, 2, -1, 30_000]);
        // A TAT in the past is an idle limiter.
        let mut idle = Gcra::from_cell_tat(params, ns(now - 5_000), now).unwrap();
        assert_eq!(idle.decide(&params, now, 0, false).reply(), [1, 5, 5, -1, 0]);
        // A fraction of a ms is rounded up: never more lenient than redis-cell's state.
        let fine = Params { burst: 0, rate: 3, period_ms: 1 };
        let g = Gcra::from_cell_tat(fine, ns(now) + 1, now).unwrap();
        assert_eq!((g.tat_ms, g.tat_fraction), (now, 1));
        // More owed than these parameters allow (a lowered burst) is capped at a full limiter.
        let mut full = Gcra::from_cell_tat(params, ns(now + 3_600_000), now).unwrap();
        assert!(full.is_valid());
        assert_eq!(full.decide(&params, now, 1, false).reply(), [0, 5, 0, 10_000, 50_000]);
        assert!(Gcra::from_cell_tat(params, u64::MAX, now).is_some_and(|g| g.is_valid()));
        assert!(Gcra::from_cell_tat(params, 0, -1).is_none());
    }

    /// redis-cell's published sequence (its `it_rate_limits` test: limit 5, 1 per second),
    /// here with times and periods in ms and scaled by `k` (k = 10: burst 4, 1 per 10 s).
    fn redis_cell_sequence(k: i64) {
        let params = Params { burst: 4, rate: 1, period_ms: 1000 * k as u64 };
        let start = 1_700_000_000_000;
        let mut g = Gcra::new(params, start);
        // (offset ms, cost, [allowed, limit, remaining, retry_after, reset_after])
        let cases: [(i64, u64, [i64; 5]); 15] = [
            (0, 6, [0, 5, 5, -1, 0]), // never fits
            (0, 1, [1, 5, 4, -1, 1000]),
            (0, 1, [1, 5, 3, -1, 2000]),
            (0, 1, [1, 5, 2, -1, 3000]),
            (0, 1, [1, 5, 1, -1, 4000]),
            (0, 1, [1, 5, 0, -1, 5000]),
            (0, 1, [0, 5, 0, 1000, 5000]), // full: retry in one emission interval
            (3000, 1, [1, 5, 2, -1, 3000]),
            (3100, 1, [1, 5, 1, -1, 3900]),
            (4000, 1, [1, 5, 1, -1, 4000]),
            (8000, 1, [1, 5, 4, -1, 1000]),
            (9500, 1, [1, 5, 4, -1, 1000]),
            (9500, 0, [1, 5, 4, -1, 1000]), // peek
            (9500, 2, [1, 5, 2, -1, 3000]), // multi-quantity
            (9500, 5, [0, 5, 2, 3000, 3000]),
        ];
        for (i, (offset, cost, expected)) in cases.into_iter().enumerate() {
            let mut want = expected;
            for v in &mut want[3..] {
                if *v > 0 {
                    *v *= k;
                }
            }
            let d = g.decide(&params, start + offset * k, cost, true);
            assert_eq!(d.reply(), want, "case {i} (k = {k})");
        }
    }

    #[test]
    fn reproduces_redis_cells_sequence() {
        redis_cell_sequence(1);
        redis_cell_sequence(10);
    }

    #[test]
    fn high_rates_are_exact() {
        // 3 per 1000 ms: T = 333.33.. ms, never truncated to 333.
        let params = Params { burst: 0, rate: 3, period_ms: 1000 };
        let mut g = Gcra::new(params, 0);
        assert!(g.decide(&params, 0, 1, true).allowed);
        let d = g.decide(&params, 333, 1, true);
        assert_eq!(d.reply(), [0, 1, 0, 1, 1]);
        assert!(g.decide(&params, 334, 1, true).allowed);
        // Polling every ms until 3333: admits at 667, 1000, 1334, 1667, 2000, 2334, 2667, 3000.
        // A T truncated to 333 ms would admit at 666, 999, ... 3330: one too many.
        let passed = (335..3334).filter(|t| g.decide(&params, *t, 1, true).allowed).count();
        assert_eq!(passed, 8);
    }

    /// Reference model: redis-cell's algorithm on exact rationals (TAT numerator over rate).
    #[test]
    fn matches_reference_model_on_random_schedules() {
        let seed: u64 = rand::random();
        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..200 {
            let random = |rng: &mut StdRng| Params {
                burst: rng.gen_range(0..10),
                rate: rng.gen_range(1..10),
                period_ms: rng.gen_range(1..3000),
            };
            let mut params = random(&mut rng);
            let mut now: i64 = rng.gen_range(0..1_000_000);
            let mut g = Gcra::new(params, now);
            // Model state: TAT as (numerator, denominator) and last write time.
            let (mut num, mut den, mut last, mut stored) = (now as u128, 1u128, now, params);
            for _ in 0..300 {
                now += rng.gen_range(-300..1500);
                if rng.gen_ratio(1, 30) {
                    params = random(&mut rng);
                }
                let cost = rng.gen_range(0..5u64);
                let commit = rng.gen_ratio(9, 10);
                let t = now.max(last);
                let r = u128::from(params.rate);
                // Re-express the TAT over the new rate, rounding up.
                let tat = (num * r).div_ceil(den).max(t as u128 * r);
                let tol = u128::from(params.period_ms) * u128::from(params.burst + 1);
                let new_tat = tat + u128::from(cost) * u128::from(params.period_ms);
                let allowed = cost == 0 || new_tat <= t as u128 * r + tol;
                let after = if allowed { new_tat } else { tat };
                let owed = after - t as u128 * r;
                let expect = [
                    i64::from(allowed),
                    (params.burst + 1) as i64,
                    (tol.saturating_sub(owed) / u128::from(params.period_ms)) as i64,
                    if allowed || cost > params.burst + 1 {
                        -1
                    } else {
                        (new_tat - tol - t as u128 * r).div_ceil(r) as i64
                    },
                    owed.div_ceil(r) as i64,
                ];
                let d = g.decide(&params, now, cost, commit);
                assert_eq!(d.reply(), expect, "seed {seed}");
                // A reconfiguration is written even when the request is rejected.
                let wrote = commit && cost > 0 && (allowed || params != stored);
                assert_eq!(d.wrote, wrote, "seed {seed}");
                if wrote {
                    (num, den, last, stored) = (after, r, t, params);
                }
            }
        }
    }
}
