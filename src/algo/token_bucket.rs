//! Token bucket with exact fractional refill.
//!
//! Tokens are kept in "scaled" units of 1/refill_ms token, so `(now - last) * refill_tokens`
//! accrues exactly with integers. Stored as whole tokens + a fraction in 1/refill_ms, which keeps
//! the struct 8-byte aligned and the whole-token count directly readable.

use super::{ceil_div, within, Decision, MAX_PERIOD_MS, MAX_UNITS};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub capacity: u64,
    pub refill_tokens: u64,
    pub refill_ms: u64,
}

impl Params {
    /// Checks the bounds that make every computation below overflow-free; the message names the culprit.
    pub fn validate(&self) -> Result<(), &'static str> {
        within(self.capacity, 1, MAX_UNITS, "capacity")?;
        within(self.refill_tokens, 1, MAX_UNITS, "refill_tokens")?;
        within(self.refill_ms, 1, MAX_PERIOD_MS, "refill_ms")?;
        // The ms to refill an empty bucket, ceil(capacity * refill_ms / refill_tokens), must be at
        // most MAX_PERIOD_MS: compared without a 128-bit division (every call validates).
        if self.scaled_capacity() > u128::from(MAX_PERIOD_MS) * u128::from(self.refill_tokens) {
            return Err("capacity * refill_ms / refill_tokens");
        }
        Ok(())
    }

    fn scaled_capacity(&self) -> u128 {
        u128::from(self.capacity) * u128::from(self.refill_ms)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    pub params: Params,
    /// Whole tokens at `last_ms`.
    pub tokens: u64,
    /// Fraction of a token at `last_ms`, in units of 1/refill_ms (always < refill_ms).
    pub fraction: u64,
    pub last_ms: i64,
}

impl TokenBucket {
    /// A new bucket starts full.
    pub fn new(params: Params, now: i64) -> Self {
        TokenBucket { params, tokens: params.capacity, fraction: 0, last_ms: now }
    }

    /// Whether stored fields are consistent (used when loading untrusted RDB data).
    pub fn is_valid(&self) -> bool {
        self.params.validate().is_ok()
            && self.tokens <= self.params.capacity
            && self.fraction < self.params.refill_ms
            && (self.tokens < self.params.capacity || self.fraction == 0)
            && (0..=super::MAX_TIME_MS).contains(&self.last_ms)
    }

    /// Level in scaled units at `now` under the stored parameters, then re-expressed under `params`
    /// (fraction floored to the new 1/refill_ms, clamped to the new capacity).
    fn level_at(&self, params: &Params, now: i64) -> u128 {
        let old = &self.params;
        let elapsed = u128::from(now.saturating_sub(self.last_ms).max(0) as u64);
        let old_full = old.scaled_capacity();
        let old_level = u128::from(self.tokens) * u128::from(old.refill_ms) + u128::from(self.fraction);
        let old_level = old_level.saturating_add(elapsed * u128::from(old.refill_tokens)).min(old_full);
        if old == params {
            return old_level;
        }
        let whole = old_level / u128::from(old.refill_ms);
        if whole >= u128::from(params.capacity) {
            return params.scaled_capacity();
        }
        let frac = old_level % u128::from(old.refill_ms);
        whole * u128::from(params.refill_ms) + frac * u128::from(params.refill_ms) / u128::from(old.refill_ms)
    }

    /// Moves the last update to `now` (when later) without changing any later decision: the level
    /// accrued up to now, kept exactly.
    pub fn advance(&mut self, now: i64) {
        if now > self.last_ms {
            let level = self.level_at(&self.params, now);
            let scale = u128::from(self.params.refill_ms);
            (self.tokens, self.fraction) = ((level / scale) as u64, (level % scale) as u64);
            self.last_ms = now;
        }
    }

    /// Decides a request of `cost` at `now` under `params`; see `Limiter::decide` for when it writes
    /// (the level accrued to now at the old rate, re-expressed under `params`, less an admitted cost).
    pub fn decide(&mut self, params: &Params, now: i64, cost: u64, commit: bool) -> Decision {
        let now = now.max(self.last_ms);
        let reconfigure = *params != self.params;
        let scale = u128::from(params.refill_ms);
        let rate = u128::from(params.refill_tokens);
        let full = params.scaled_capacity();
        let mut level = self.level_at(params, now);
        let needed = u128::from(cost) * scale;
        let allowed = level >= needed;
        let retry_after_ms = if allowed || cost > params.capacity { -1 } else { ceil_div(needed - level, rate) };
        if allowed {
            level -= needed;
        }
        let wrote = commit && cost > 0 && (allowed || reconfigure);
        if wrote {
            self.params = *params;
            self.tokens = (level / scale) as u64;
            self.fraction = (level % scale) as u64;
            self.last_ms = now;
        }
        Decision {
            allowed,
            limit: params.capacity,
            remaining: (level / scale) as u64,
            retry_after_ms,
            reset_after_ms: ceil_div(full - level, rate),
            at_ms: now,
            wrote,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    fn p(capacity: u64, refill_tokens: u64, refill_ms: u64) -> Params {
        Params { capacity, refill_tokens, refill_ms }
    }

    #[test]
    fn starts_full_and_refills_fractionally() {
        let params = p(10, 1, 1000);
        let mut b = TokenBucket::new(params, 0);
        let d = b.decide(&params, 0, 10, true);
        assert_eq!(d.reply(), [1, 10, 0, -1, 10_000]);
        // 1500 ms later: 1.5 tokens.
        let d = b.decide(&params, 1500, 2, true);
        assert_eq!(d.reply(), [0, 10, 1, 500, 8500]);
        let d = b.decide(&params, 1500, 1, true);
        assert_eq!(d.reply(), [1, 10, 0, -1, 9500]);
        assert_eq!(b.fraction, 500);
    }

    #[test]
    fn cost_above_capacity_never_retries() {
        let params = p(5, 1, 10);
        let mut b = TokenBucket::new(params, 0);
        assert_eq!(b.decide(&params, 0, 6, true).reply(), [0, 5, 5, -1, 0]);
    }

    #[test]
    fn dryrun_and_rejection_write_nothing() {
        let params = p(3, 1, 100);
        let mut b = TokenBucket::new(params, 0);
        let before = b;
        assert!(b.decide(&params, 5, 1, false).allowed);
        assert_eq!(b, before);
        b.decide(&params, 5, 3, true);
        let before = b;
        assert!(!b.decide(&params, 6, 3, true).allowed);
        assert_eq!(b, before);
    }

    #[test]
    fn time_never_runs_backwards() {
        let params = p(2, 1, 1000);
        let mut b = TokenBucket::new(params, 10_000);
        b.decide(&params, 10_000, 2, true);
        let d = b.decide(&params, 0, 1, false);
        assert_eq!(d.at_ms, 10_000);
        assert_eq!(d.retry_after_ms, 1000);
    }

    #[test]
    fn reconfiguration_clamps_and_rescales() {
        let old = p(10, 1, 1000);
        let mut b = TokenBucket::new(old, 0);
        b.decide(&old, 0, 10, true);
        // 2.5 tokens at t=2500, then refill_ms 10: fraction 0.5 -> 5/10.
        let new = p(2, 1, 10);
        let d = b.decide(&new, 2500, 1, true);
        assert_eq!(d.reply(), [1, 2, 1, -1, 10]);
        assert_eq!((b.tokens, b.fraction), (1, 0));
        let d = b.decide(&p(10, 3, 7), 2500, 0, true);
        assert_eq!(d.remaining, 1);
    }

    #[test]
    fn extreme_parameters_do_not_overflow() {
        let params = p(MAX_UNITS, MAX_UNITS, MAX_PERIOD_MS);
        assert!(params.validate().is_ok());
        let mut b = TokenBucket::new(params, 0);
        let d = b.decide(&params, super::super::MAX_TIME_MS, MAX_UNITS, true);
        assert!(d.allowed);
        assert_eq!(d.reset_after_ms, MAX_PERIOD_MS as i64);
        assert_eq!(p(MAX_UNITS, 1, MAX_PERIOD_MS).validate(), Err("capacity * refill_ms / refill_tokens"));
        assert_eq!(p(MAX_UNITS + 1, 1, 1).validate(), Err("capacity"));
    }

    /// Reference model: the level as an exact rational (numerator over the stored refill_ms),
    /// computed with the contract's formulas; its state only changes on a written admit.
    #[derive(Clone, Copy)]
    struct Model {
        params: Params,
        num: u128,
        last: i64,
    }

    impl Model {
        fn decide(&self, params: &Params, now: i64, cost: u64) -> ([i64; 5], Model) {
            let t = now.max(self.last);
            let old = self.params;
            let den = u128::from(old.refill_ms);
            let mut num = (self.num + (t - self.last) as u128 * u128::from(old.refill_tokens))
                .min(u128::from(old.capacity) * den);
            let nden = u128::from(params.refill_ms);
            if old != *params {
                let whole = num / den;
                num = if whole >= u128::from(params.capacity) {
                    u128::from(params.capacity) * nden
                } else {
                    whole * nden + (num % den) * nden / den
                };
            }
            let need = u128::from(cost) * nden;
            let allowed = num >= need;
            let after = if allowed { num - need } else { num };
            let rate = u128::from(params.refill_tokens);
            let retry = if allowed || cost > params.capacity { -1 } else { (need - num).div_ceil(rate) as i64 };
            let reset = (u128::from(params.capacity) * nden - after).div_ceil(rate) as i64;
            let reply = [i64::from(allowed), params.capacity as i64, (after / nden) as i64, retry, reset];
            (reply, Model { params: *params, num: after, last: t })
        }
    }

    #[test]
    fn matches_reference_model_on_random_schedules() {
        let seed: u64 = rand::random();
        let mut rng = StdRng::seed_from_u64(seed);
        let random_params = |rng: &mut StdRng| p(rng.gen_range(1..50), rng.gen_range(1..20), rng.gen_range(1..5000));
        for _ in 0..200 {
            let mut params = random_params(&mut rng);
            let mut now: i64 = rng.gen_range(0..1_000_000);
            let mut bucket = TokenBucket::new(params, now);
            let mut model =
                Model { params, num: u128::from(params.capacity) * u128::from(params.refill_ms), last: now };
            for _ in 0..300 {
                now += rng.gen_range(-500..3000); // time may go backwards
                if rng.gen_ratio(1, 30) {
                    params = random_params(&mut rng);
                }
                let cost = rng.gen_range(0..8);
                let commit = rng.gen_ratio(9, 10);
                let (expected, next) = model.decide(&params, now, cost);
                let d = bucket.decide(&params, now, cost, commit);
                assert_eq!(d.reply(), expected, "seed {seed}");
                // A reconfiguration is written even when the request is rejected.
                let wrote = commit && cost > 0 && (d.allowed || params != model.params);
                assert_eq!(d.wrote, wrote, "seed {seed}");
                if wrote {
                    model = next;
                }
            }
        }
    }
}
