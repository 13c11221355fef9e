//! Pure rate-limit algorithms: no FFI, no clock. Every function takes `now` (ms) from its caller,
//! so the same code runs in Redis, in unit tests and in property tests against a reference model.

pub mod fixed_window;
pub mod gcra;
pub mod sliding_counter;
pub mod sliding_log;
pub mod token_bucket;

/// Largest count of units a limiter holds or a request takes (capacity, limit, refill_tokens, COST).
pub const MAX_UNITS: u64 = 1_000_000_000_000_000; // 10^15
/// Longest duration in ms (refill_ms, window_ms, and a token bucket's time to refill from empty): ~317 years.
pub const MAX_PERIOD_MS: u64 = 10_000_000_000_000; // 10^13
/// Latest timestamp accepted, in Unix ms (AT, and times stored in a limiter): year ~33658.
pub const MAX_TIME_MS: i64 = 1_000_000_000_000_000; // 10^15

/// Parameters of the window algorithms (fixed window and sliding log): `limit` units per `window_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowParams {
    pub limit: u64,
    pub window_ms: u64,
}

impl WindowParams {
    /// Checks the bounds; Err names the offending parameter.
    pub fn validate(&self) -> Result<(), &'static str> {
        within(self.limit, 1, MAX_UNITS, "limit")?;
        within(self.window_ms, 1, MAX_PERIOD_MS, "window_ms")
    }
}

/// Ok when `min <= value <= max`, else Err(name): the building block of every `validate`.
pub(crate) fn within(value: u64, min: u64, max: u64, name: &'static str) -> Result<(), &'static str> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(name)
    }
}

/// The contract's reply: `[allowed, limit, remaining, retry_after_ms, reset_after_ms]`,
/// plus the effective time the decision was taken at (max of the request's now and the key's last update).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u64,
    pub remaining: u64,
    /// -1 when allowed or when the cost can never fit.
    pub retry_after_ms: i64,
    pub reset_after_ms: i64,
    pub at_ms: i64,
    /// Whether this call changed the limiter: an admitted cost, or a reconfiguration (a write of
    /// its own even when the request is rejected). Only a call with cost > 0 and no DRYRUN writes.
    pub wrote: bool,
}

impl Decision {
    pub fn reply(&self) -> [i64; 5] {
        // All values are bounded by MAX_UNITS / MAX_PERIOD_MS, so the casts are lossless.
        [i64::from(self.allowed), self.limit as i64, self.remaining as i64, self.retry_after_ms, self.reset_after_ms]
    }
}

/// Ceiling of a / b for b > 0, as i64 (callers guarantee the result is within MAX_PERIOD_MS).
pub(crate) fn ceil_div(a: u128, b: u128) -> i64 {
    a.div_ceil(b) as i64
}
