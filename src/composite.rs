//! Several limits as one (RL.LIMIT, RL.CHECK): one limiter per rule in one value, decided all or
//! nothing at one effective now. Pure like algo/ (no FFI, `now` injected), and it only composes
//! `Limiter::decide`: every rule evolves exactly as the single-rule command would.

use crate::algo::{Decision, MAX_UNITS};
use crate::limiter::{Limiter, Spec};

/// A cost no rule can ever admit (more than any limit): deciding it writes a reconfiguration alone.
const NEVER_ADMITTED: u64 = MAX_UNITS + 1;

/// The rules' limiters, in rule order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composite {
    pub rules: Vec<Limiter>,
}

/// A composite decision: the combined reply (the binding rule's limit and remaining) and each
/// rule's own reply after the call's all-or-nothing outcome (what DETAILS shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub decision: Decision,
    pub rules: Vec<[i64; 5]>,
}

impl Composite {
    /// Idle rules (what an absent key means).
    pub fn new(specs: &[Spec], now: i64) -> Composite {
        Composite { rules: specs.iter().map(|spec| Limiter::new(spec, now)).collect() }
    }

    /// The latest write of any rule: the effective now never goes below it.
    pub fn last_ms(&self) -> i64 {
        self.rules.iter().map(Limiter::last_update_ms).max().unwrap_or(0)
    }

    /// Decides `cost` against every rule at one effective now. Admitted iff every rule admits
    /// it; then every rule takes it. Rules are matched to the stored ones by position: the same
    /// algorithm reconfigures in place, a new position or another algorithm starts idle, positions
    /// past `specs` are dropped. Writes (with `commit` and cost > 0) when admitted or when anything
    /// differs from what is stored: a reconfiguration is a write of its own even when rejected.
    #[inline(never)]
    pub fn decide(&mut self, specs: &[Spec], now: i64, cost: u64, commit: bool, cap: u64) -> Outcome {
        let now = now.max(self.last_ms());
        // Each rule alone, without writing: as if reconfigured, a new position as if idle (which
        // is also how the rules stand after a write that reconfigured them).
        let judge = |rules: &[Limiter], i: usize, spec: &Spec, cost: u64| -> Decision {
            match rules.get(i) {
                Some(stored) => stored.peek(spec, now, cost),
                None => Limiter::new(spec, now).peek(spec, now, cost),
            }
        };
        let alone: Vec<Decision> =
            specs.iter().enumerate().map(|(i, spec)| judge(&self.rules, i, spec, cost)).collect();
        let allowed = alone.iter().all(|d| d.allowed);
        let changed = self.rules.len() != specs.len() || self.rules.iter().zip(specs).any(|(l, s)| l.spec() != *s);
        let wrote = commit && cost > 0 && (allowed || changed);
        if wrote {
            self.rules.truncate(specs.len());
            for (i, spec) in specs.iter().enumerate() {
                if i == self.rules.len() {
                    self.rules.push(Limiter::new(spec, now));
                }
                let Some(stored) = self.rules.get_mut(i) else { continue };
                // Admitted: every rule takes the cost. Rejected: a changed rule writes only its
                // reconfiguration (another algorithm: idle), the others stay as they are but at
                // now: a write (dropping positions alone is one) makes now the key's last update.
                if allowed {
                    stored.decide(spec, now, cost, true, cap);
                } else if stored.spec() != *spec {
                    stored.decide(spec, now, NEVER_ADMITTED, true, cap);
                } else {
                    stored.advance(now);
                }
            }
        }
        // Each rule after the outcome: what it took if admitted, else what it holds now.
        let rules: Vec<[i64; 5]> = if allowed {
            alone.iter().map(Decision::reply).collect()
        } else {
            specs
                .iter()
                .enumerate()
                .map(|(i, spec)| {
                    let held = judge(&self.rules, i, spec, 0);
                    let own = &alone[i];
                    let retry = if own.allowed || cost > own.limit { -1 } else { own.retry_after_ms };
                    [i64::from(own.allowed), own.limit as i64, held.remaining as i64, retry, held.reset_after_ms]
                })
                .collect()
        };
        // The binding rule: least remaining after the call, the first listed on a tie.
        let binding = (0..rules.len()).min_by_key(|&i| (rules[i][2], i)).unwrap_or(0);
        let retry_after_ms = if allowed || alone.iter().any(|d| cost > d.limit) {
            -1
        } else {
            rules.iter().map(|r| r[3]).max().unwrap_or(-1)
        };
        let decision = Decision {
            allowed,
            limit: rules.get(binding).map_or(0, |r| r[1] as u64),
            remaining: rules.get(binding).map_or(0, |r| r[2] as u64),
            retry_after_ms,
            reset_after_ms: rules.iter().map(|r| r[4]).max().unwrap_or(0),
            at_ms: now,
            wrote,
        };
        Outcome { decision, rules }
    }

    /// Heap bytes beyond the value itself, for MEMORY USAGE.
    pub fn heap_bytes(&self) -> usize {
        self.rules.capacity() * std::mem::size_of::<Limiter>()
            + self.rules.iter().map(Limiter::heap_bytes).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::{fixed_window, token_bucket, WindowParams};
    use rand::{rngs::StdRng, Rng, SeedableRng};

    // A whole minute, so fixed windows start at T.
    const T: i64 = 1_700_000_040_000;

    fn bucket(capacity: u64, refill_tokens: u64, refill_ms: u64) -> Spec {
        Spec::TokenBucket(token_bucket::Params { capacity, refill_tokens, refill_ms })
    }

    fn fixed(limit: u64, window_ms: u64) -> Spec {
        Spec::FixedWindow(fixed_window::Params { limit, window_ms })
    }

    #[test]
    fn all_or_nothing_with_the_binding_rule_and_details() {
        let specs = [bucket(10, 1, 1000), fixed(3, 60_000)];
        let mut rules = Composite::new(&specs, T);
        let first = rules.decide(&specs, T, 2, true, u64::MAX);
        // The fixed window binds: 1 left of 3 (the bucket has 8 of 10).
        assert_eq!(first.decision.reply(), [1, 3, 1, -1, 60_000]);
        assert_eq!(first.rules, vec![[1, 10, 8, -1, 2000], [1, 3, 1, -1, 60_000]]);
        // 2 more: the bucket alone would admit, the window would not: nothing is taken from either.
        let second = rules.decide(&specs, T, 2, true, u64::MAX);
        assert_eq!(second.decision.reply(), [0, 3, 1, 60_000, 60_000]);
        assert_eq!(second.rules, vec![[1, 10, 8, -1, 2000], [0, 3, 1, 60_000, 60_000]]);
        assert!(!second.decision.wrote);
        assert_eq!(rules.decide(&specs, T, 0, false, u64::MAX).rules[0][2], 8);
        // More than a rule's limit can never pass: retry -1.
        assert_eq!(rules.decide(&specs, T, 4, true, u64::MAX).decision.retry_after_ms, -1);
    }

    #[test]
    fn a_changed_rule_is_written_even_when_rejected_and_new_positions_start_idle() {
        let specs = [bucket(10, 1, 1000), fixed(3, 60_000)];
        let mut rules = Composite::new(&specs, T);
        rules.decide(&specs, T, 3, true, u64::MAX);
        // The window's limit lowered to 2 (3 used): rejected, but the new limit is stored.
        let lowered = [bucket(10, 1, 1000), fixed(2, 60_000)];
        let d = rules.decide(&lowered, T + 10, 1, true, u64::MAX);
        assert!(!d.decision.allowed && d.decision.wrote);
        assert_eq!(rules.rules[1].spec(), lowered[1]);
        // The bucket took nothing; its last update is the call's time.
        assert_eq!(rules.rules[0].peek(&lowered[0], T + 10, 0).remaining, 7);
        // Another algorithm at position 1 and a third rule: both start idle.
        let reshaped = [bucket(10, 1, 1000), bucket(5, 1, 1000), fixed(1, 1000)];
        let d = rules.decide(&reshaped, T + 10, 1, true, u64::MAX);
        assert_eq!(d.rules, vec![[1, 10, 6, -1, 3990], [1, 5, 4, -1, 1000], [1, 1, 0, -1, 990]]);
        // Dropping positions: one rule left.
        let d = rules.decide(&reshaped[..1], T + 10, 0, false, u64::MAX);
        assert_eq!(d.rules.len(), 1);
        // A rejected call that changes nothing writes nothing.
        let mut idle = Composite::new(&[fixed(1, 1000)], T);
        assert!(!idle.decide(&[fixed(1, 1000)], T, 2, true, u64::MAX).decision.wrote);
    }

    /// One rule decides exactly as the limiter alone, on random schedules with reconfigurations.
    #[test]
    fn one_rule_is_the_limiter_alone() {
        let seed: u64 = rand::random();
        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..100 {
            let mut now = T;
            let random = |rng: &mut StdRng| {
                let window = WindowParams { limit: rng.gen_range(1..20), window_ms: rng.gen_range(1..3000) };
                match rng.gen_range(0..4) {
                    0 => bucket(rng.gen_range(1..20), rng.gen_range(1..5), rng.gen_range(1..3000)),
                    1 => Spec::FixedWindow(window),
                    2 => Spec::SlidingLog(window),
                    _ => Spec::SlidingCounter(window),
                }
            };
            let mut spec = random(&mut rng);
            let mut alone = Limiter::new(&spec, now);
            let mut rules = Composite::new(&[spec], now);
            for _ in 0..200 {
                now += rng.gen_range(-100..700);
                if rng.gen_ratio(1, 20) {
                    let next = random(&mut rng);
                    if next.algorithm() == spec.algorithm() {
                        spec = next;
                    }
                }
                let (cost, commit) = (rng.gen_range(0..6), rng.gen_ratio(9, 10));
                let expected = alone.decide(&spec, now, cost, commit, u64::MAX);
                let got = rules.decide(&[spec], now, cost, commit, u64::MAX);
                assert_eq!(got.decision, expected, "seed {seed}");
                assert_eq!(got.rules, vec![expected.reply()], "seed {seed}");
            }
        }
    }

    #[test]
    fn dropping_a_rule_on_a_rejected_call_keeps_the_key_time() {
        let fixed = Spec::FixedWindow(WindowParams { limit: 1, window_ms: 100_000 });
        let bucket = |capacity| Spec::TokenBucket(token_bucket::Params { capacity, refill_tokens: 1, refill_ms: 1000 });
        let mut c = Composite::new(&[fixed, bucket(5)], 0);
        assert!(c.decide(&[fixed, bucket(5)], 0, 1, true, 10).decision.allowed);
        // Rule 2 alone is reconfigured at 1000 (rejected: the window is used up).
        let d = c.decide(&[fixed, bucket(6)], 1000, 1, true, 10).decision;
        assert!(!d.allowed && d.wrote);
        assert_eq!(c.last_ms(), 1000);
        // Dropping rule 2 on a rejected call is a write at 1000: the key's time stays there.
        let d = c.decide(&[fixed], 10, 1, true, 10).decision;
        assert!(!d.allowed && d.wrote);
        assert_eq!((d.at_ms, c.last_ms()), (1000, 1000));
        assert_eq!(c.decide(&[fixed], 20, 0, true, 10).decision.reset_after_ms, 99_000);
    }

    #[test]
    fn advancing_a_rule_changes_no_later_decision() {
        let specs = [
            Spec::TokenBucket(token_bucket::Params { capacity: 7, refill_tokens: 3, refill_ms: 700 }),
            Spec::FixedWindow(WindowParams { limit: 5, window_ms: 300 }),
            Spec::SlidingLog(WindowParams { limit: 5, window_ms: 300 }),
            Spec::Gcra(crate::algo::gcra::Params { burst: 3, rate: 2, period_ms: 500 }),
            Spec::SlidingCounter(WindowParams { limit: 5, window_ms: 300 }),
        ];
        for spec in specs {
            let mut limiter = Limiter::new(&spec, 1000);
            for (t, cost) in [(1000, 2), (1100, 1), (1250, 2), (1400, 1)] {
                limiter.decide(&spec, t, cost, true, 100);
            }
            for gap in [0, 1, 99, 250, 301, 700, 5000] {
                let mut advanced = limiter.clone();
                advanced.advance(1400 + gap);
                assert_eq!(advanced.last_update_ms(), 1400 + gap);
                for later in [0, 1, 17, 300, 1000, 9000] {
                    for cost in [0, 1, 3, 6] {
                        let t = 1400 + gap + later;
                        assert_eq!(
                            advanced.peek(&spec, t, cost),
                            limiter.peek(&spec, t, cost),
                            "{spec:?} {gap} {later}"
                        );
                    }
                }
            }
        }
    }
}
