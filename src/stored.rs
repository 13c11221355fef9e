//! A key's value as it is held in memory. A token bucket, fixed window, GCRA or sliding counter
//! whose counts and periods fit in 32 bits (times keep 64), and a sliding log of up to 3 small
//! entries, packs into 32 bytes: one jemalloc size class, so its key costs what a short string key
//! does (64 B with a short name on Redis 7.0). Anything larger, a longer log and every set of
//! rules (RL.LIMIT) is boxed. Packing is lossless, so the algorithms and the RDB encoding only
//! see `Value`.

use crate::algo::{fixed_window, gcra, sliding_counter, sliding_log, token_bucket};
use crate::composite::Composite;
use crate::limiter::Limiter;
use std::borrow::Cow;

/// What a key holds: one limiter (RL.TOKENBUCKET, ...) or the rules of RL.LIMIT / RL.CHECK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    One(Limiter),
    Rules(Composite),
}

impl Value {
    /// What it is, as WRONGTYPE errors name it: "a token bucket limiter", "RL.LIMIT rules".
    pub fn description(&self) -> String {
        match self {
            Value::One(limiter) => format!("{} limiter", limiter.algorithm().description()),
            Value::Rules(_) => "RL.LIMIT rules".to_string(),
        }
    }

    /// Heap bytes beyond the value itself, for MEMORY USAGE.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Value::One(limiter) => limiter.heap_bytes(),
            Value::Rules(rules) => rules.heap_bytes(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredLimiter {
    TokenBucket {
        capacity: u32,
        refill_tokens: u32,
        refill_ms: u32,
        tokens: u32,
        fraction: u32,
        last_ms: i64,
    },
    FixedWindow {
        limit: u32,
        window_ms: u32,
        count: u32,
        window_start_ms: i64,
        last_ms: i64,
    },
    /// The TAT's whole ms are kept relative to the last write, which leaves room for the fraction.
    Gcra {
        burst: u32,
        rate: u32,
        period_ms: u32,
        tat_fraction: u32,
        tat_offset_ms: i32,
        last_ms: i64,
    },
    /// The current window's start is that of the window holding `last_ms`.
    SlidingCounter {
        limit: u32,
        window_ms: u32,
        curr: u32,
        prev: u32,
        last_ms: i64,
    },
    /// A sliding log of at most SMALL_LOG entries, oldest first: each `ms_before_last` before the
    /// last update, with a cost below 256; a cost of 0 is an empty slot.
    SlidingLog {
        limit: u32,
        window_ms: u32,
        last_ms: i64,
        ms_before_last: [u32; SMALL_LOG],
        costs: [u8; SMALL_LOG],
    },
    Boxed(Box<Value>),
}

/// The most entries a packed sliding log holds.
const SMALL_LOG: usize = 3;

// The point of packing: the tag shares the first word with the 32-bit fields.
const _: () = assert!(std::mem::size_of::<StoredLimiter>() == 32);
// A boxed value fills jemalloc's 192-byte class, a sliding log's inline entries included
// (sliding_log::INLINE_BYTES is as large as this allows).
const _: () = assert!(std::mem::size_of::<Value>() == 192);

impl StoredLimiter {
    #[inline]
    pub fn pack(value: Value) -> Self {
        Self::try_pack_value(&value).unwrap_or_else(|| StoredLimiter::Boxed(Box::new(value)))
    }

    /// The packed form of `value`, when it has one (a single limiter whose numbers fit).
    #[inline]
    fn try_pack_value(value: &Value) -> Option<Self> {
        match value {
            Value::One(limiter) => Self::try_pack(limiter),
            Value::Rules(_) => None,
        }
    }

    #[inline]
    fn try_pack(limiter: &Limiter) -> Option<Self> {
        let small = |v: u64| u32::try_from(v).ok();
        Some(match limiter {
            Limiter::TokenBucket(b) => StoredLimiter::TokenBucket {
                capacity: small(b.params.capacity)?,
                refill_tokens: small(b.params.refill_tokens)?,
                refill_ms: small(b.params.refill_ms)?,
                tokens: small(b.tokens)?,
                fraction: small(b.fraction)?,
                last_ms: b.last_ms,
            },
            Limiter::FixedWindow(w) => StoredLimiter::FixedWindow {
                limit: small(w.params.limit)?,
                window_ms: small(w.params.window_ms)?,
                count: small(w.count)?,
                window_start_ms: w.window_start_ms,
                last_ms: w.last_ms,
            },
            Limiter::Gcra(g) => StoredLimiter::Gcra {
                burst: small(g.params.burst)?,
                rate: small(g.params.rate)?,
                period_ms: small(g.params.period_ms)?,
                tat_fraction: small(g.tat_fraction)?,
                tat_offset_ms: i32::try_from(g.tat_ms.checked_sub(g.last_ms)?).ok()?,
                last_ms: g.last_ms,
            },
            Limiter::SlidingCounter(c) => {
                let window = c.params.window_ms as i64;
                if c.window_start_ms != c.last_ms - c.last_ms.rem_euclid(window) {
                    return None;
                }
                StoredLimiter::SlidingCounter {
                    limit: small(c.params.limit)?,
                    window_ms: small(c.params.window_ms)?,
                    curr: small(c.curr)?,
                    prev: small(c.prev)?,
                    last_ms: c.last_ms,
                }
            }
            Limiter::SlidingLog(log) => {
                if log.len() > SMALL_LOG {
                    return None;
                }
                let (mut ms_before_last, mut costs) = ([0u32; SMALL_LOG], [0u8; SMALL_LOG]);
                for (i, (time, cost)) in log.entries().enumerate() {
                    ms_before_last[i] = u32::try_from(log.last_ms().checked_sub(time)?).ok()?;
                    costs[i] = u8::try_from(cost).ok()?;
                }
                StoredLimiter::SlidingLog {
                    limit: small(log.params.limit)?,
                    window_ms: small(log.params.window_ms)?,
                    last_ms: log.last_ms(),
                    ms_before_last,
                    costs,
                }
            }
        })
    }

    /// The value, borrowed when boxed, rebuilt (a few words) when packed.
    #[inline]
    pub fn value(&self) -> Cow<'_, Value> {
        match self {
            StoredLimiter::Boxed(value) => Cow::Borrowed(value),
            packed => Cow::Owned(packed.unpack()),
        }
    }

    /// The value, by value: rebuilt when packed (built in place, no copy of the whole `Value`),
    /// cloned when boxed.
    #[inline]
    fn unpack(&self) -> Value {
        let limiter = match *self {
            StoredLimiter::Boxed(ref value) => return (**value).clone(),
            StoredLimiter::TokenBucket { capacity, refill_tokens, refill_ms, tokens, fraction, last_ms } => {
                Limiter::TokenBucket(token_bucket::TokenBucket {
                    params: token_bucket::Params {
                        capacity: capacity.into(),
                        refill_tokens: refill_tokens.into(),
                        refill_ms: refill_ms.into(),
                    },
                    tokens: tokens.into(),
                    fraction: fraction.into(),
                    last_ms,
                })
            }
            StoredLimiter::FixedWindow { limit, window_ms, count, window_start_ms, last_ms } => {
                Limiter::FixedWindow(fixed_window::FixedWindow {
                    params: fixed_window::Params { limit: limit.into(), window_ms: window_ms.into() },
                    window_start_ms,
                    count: count.into(),
                    last_ms,
                })
            }
            StoredLimiter::Gcra { burst, rate, period_ms, tat_fraction, tat_offset_ms, last_ms } => {
                Limiter::Gcra(gcra::Gcra {
                    params: gcra::Params { burst: burst.into(), rate: rate.into(), period_ms: period_ms.into() },
                    tat_ms: last_ms + i64::from(tat_offset_ms),
                    tat_fraction: tat_fraction.into(),
                    last_ms,
                })
            }
            StoredLimiter::SlidingCounter { limit, window_ms, curr, prev, last_ms } => {
                Limiter::SlidingCounter(sliding_counter::SlidingCounter {
                    params: sliding_counter::Params { limit: limit.into(), window_ms: window_ms.into() },
                    curr: curr.into(),
                    prev: prev.into(),
                    window_start_ms: last_ms - last_ms.rem_euclid(i64::from(window_ms)),
                    last_ms,
                })
            }
            StoredLimiter::SlidingLog { limit, window_ms, last_ms, ms_before_last, costs } => {
                let params = sliding_log::Params { limit: limit.into(), window_ms: window_ms.into() };
                let entries = ms_before_last
                    .into_iter()
                    .zip(costs)
                    .filter(|(_, cost)| *cost > 0)
                    .map(|(before, cost)| (last_ms - i64::from(before), u64::from(cost)));
                // Packed from a valid log, so it rebuilds; with no entry it is an idle log.
                Limiter::SlidingLog(
                    sliding_log::SlidingLog::from_entries(params, Some(last_ms), entries)
                        .unwrap_or_else(|| sliding_log::SlidingLog::new(params, last_ms)),
                )
            }
        };
        Value::One(limiter)
    }

    /// Runs `change` on the value and, when `wrote` says it changed it, stores the result in the
    /// form it now needs, so a key's memory depends only on its state (a boxed bucket lowered to
    /// small numbers packs again). A call that changed nothing stores nothing: a rejected request
    /// neither repacks nor writes to the key's memory (which a fork saving the RDB would copy).
    #[inline]
    pub fn update<R>(&mut self, change: impl FnOnce(&mut Value) -> R, wrote: impl FnOnce(&R) -> bool) -> R {
        if let StoredLimiter::Boxed(value) = self {
            let result = change(value);
            if !wrote(&result) {
                return result;
            }
            if let Some(packed) = Self::try_pack_value(value) {
                *self = packed;
            }
            return result;
        }
        let mut value = self.unpack();
        let result = change(&mut value);
        if !wrote(&result) {
            return result;
        }
        // Not `pack(value)`: moving the whole Value into it costs a copy when it packs.
        *self = Self::try_pack_value(&value).unwrap_or_else(|| StoredLimiter::Boxed(Box::new(value)));
        result
    }

    /// Bytes this value holds, for MEMORY USAGE.
    pub fn mem_usage(&self) -> usize {
        let boxed = match self {
            StoredLimiter::Boxed(value) => std::mem::size_of::<Value>() + value.heap_bytes(),
            _ => 0,
        };
        std::mem::size_of::<Self>() + boxed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::Spec;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    const T0: i64 = 1_700_000_000_000;

    fn is_packed(stored: &StoredLimiter) -> bool {
        !matches!(stored, StoredLimiter::Boxed(_))
    }

    /// Parameters around the 32-bit edge, so both forms and the switches between them occur.
    fn random_spec(rng: &mut StdRng) -> Spec {
        let mut n = |low: u64| {
            let edge = u64::from(u32::MAX);
            match rng.gen_range(0..4) {
                0 => rng.gen_range(low..=20),
                1 => rng.gen_range(edge - 3..=edge + 3),
                2 => rng.gen_range(low..=1_000_000),
                _ => rng.gen_range(low..=crate::algo::MAX_PERIOD_MS),
            }
        };
        let spec = match n(0) % 5 {
            0 => Spec::TokenBucket(token_bucket::Params { capacity: n(1), refill_tokens: n(1), refill_ms: n(1) }),
            1 => Spec::FixedWindow(fixed_window::Params { limit: n(1), window_ms: n(1) }),
            2 => Spec::Gcra(gcra::Params { burst: n(0), rate: n(1), period_ms: n(1) }),
            3 => Spec::SlidingLog(sliding_log::Params { limit: n(1), window_ms: n(1) }),
            _ => Spec::SlidingCounter(sliding_counter::Params { limit: n(1), window_ms: n(1) }),
        };
        if spec.validate().is_ok() {
            spec
        } else {
            Spec::FixedWindow(fixed_window::Params { limit: 3, window_ms: 10 })
        }
    }

    #[test]
    fn packing_is_lossless_and_used_whenever_the_numbers_fit() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..300 {
            let first = random_spec(&mut rng);
            let mut model = Limiter::new(&first, T0);
            let mut stored = StoredLimiter::pack(Value::One(model.clone()));
            let mut now = T0;
            for _ in 0..60 {
                // Same algorithm, sometimes reconfigured; time mostly forward, sometimes back.
                let spec = match random_spec(&mut rng) {
                    s if s.algorithm() == first.algorithm() && rng.gen_ratio(1, 4) => s,
                    _ => first,
                };
                now += rng.gen_range(-1_000..100_000_000);
                let cost = rng.gen_range(0..=3) * rng.gen_range(1..=u64::from(u32::MAX) + 9);
                let expected = model.decide(&spec, now, cost, true, u64::MAX);
                let decided = stored.update(
                    |v| match v {
                        Value::One(l) => Some(l.decide(&spec, now, cost, true, u64::MAX)),
                        Value::Rules(_) => None,
                    },
                    |d| d.is_some_and(|d| d.wrote),
                );
                assert_eq!(decided, Some(expected));
                assert_eq!(*stored.value(), Value::One(model.clone()));
                assert_eq!(is_packed(&stored), StoredLimiter::try_pack(&model).is_some());
            }
        }
    }

    #[test]
    fn small_limiters_take_32_bytes_and_large_ones_are_boxed() {
        let small = [
            Spec::TokenBucket(token_bucket::Params { capacity: 100, refill_tokens: 10, refill_ms: 1000 }),
            Spec::FixedWindow(fixed_window::Params { limit: 100, window_ms: 60_000 }),
            Spec::Gcra(gcra::Params { burst: 99, rate: 10, period_ms: 1000 }),
            Spec::SlidingCounter(sliding_counter::Params { limit: 100, window_ms: 60_000 }),
        ];
        for spec in small {
            let stored = StoredLimiter::pack(Value::One(Limiter::new(&spec, T0)));
            assert!(is_packed(&stored), "{spec:?}");
            assert_eq!(stored.mem_usage(), 32);
        }
        let large = Spec::FixedWindow(fixed_window::Params { limit: 1 << 40, window_ms: 60_000 });
        let stored = StoredLimiter::pack(Value::One(Limiter::new(&large, T0)));
        assert!(!is_packed(&stored));
        assert!(stored.mem_usage() > 32);
        // A sliding log packs while it holds at most 3 entries of costs below 256.
        let log = Spec::SlidingLog(sliding_log::Params { limit: 1000, window_ms: 60_000 });
        let mut limiter = Limiter::new(&log, T0);
        for (t, cost, packed) in [(0, 1, true), (5, 255, true), (9, 2, true), (9, 1, true), (12, 1, false)] {
            limiter.decide(&log, T0 + t, cost, true, u64::MAX);
            let stored = StoredLimiter::pack(Value::One(limiter.clone()));
            assert_eq!(is_packed(&stored), packed, "after t={t}");
            assert_eq!(*stored.value(), Value::One(limiter.clone()));
        }
        let mut heavy = Limiter::new(&log, T0);
        heavy.decide(&log, T0, 256, true, u64::MAX);
        assert!(!is_packed(&StoredLimiter::pack(Value::One(heavy))));
    }
}
