//! Exact sliding log with a compact encoding.
//!
//! Entries are `(time_ms, cost)`, strictly increasing in time (same-ms requests merge).
//! All but the newest entry live in a byte buffer as LEB128 varint pairs
//! `(ms since the previous entry, cost)`: a busy key costs ~2 bytes per entry instead of the
//! ~100 of a sorted-set member. The newest entry is kept unencoded so same-ms merges are O(1).
//! Expired entries are dropped from the front by advancing `start`; the buffer is compacted
//! when the dead prefix outgrows the live part.

use super::{Decision, MAX_TIME_MS, MAX_UNITS};
use crate::varint;

pub use super::WindowParams as Params;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlidingLog {
    pub params: Params,
    /// Sum of the costs of every stored entry (live or not yet pruned).
    used: u64,
    /// Time the first encoded entry's delta is relative to.
    base_ms: i64,
    /// Time of the last encoded entry (`base_ms` when none): the next encoded delta is relative to it.
    encoded_end_ms: i64,
    /// Encoded entries; bytes before `start` are already dropped.
    encoded: Vec<u8>,
    start: usize,
    /// Newest entry, unencoded; `newest_cost == 0` means the log is empty.
    newest_ms: i64,
    newest_cost: u64,
    /// Number of entries (encoded ones after `start`, plus the newest).
    count: u64,
}

/// Iterates entries oldest first without changing the log.
pub struct Entries<'a> {
    bytes: &'a [u8],
    pos: usize,
    time: i64,
    newest: Option<(i64, u64)>,
}

impl Iterator for Entries<'_> {
    type Item = (i64, u64);
    fn next(&mut self) -> Option<(i64, u64)> {
        if self.pos < self.bytes.len() {
            // The buffer is only written by `push`, so it always decodes; stop rather than panic if not.
            let delta = varint::read(self.bytes, &mut self.pos)?;
            let cost = varint::read(self.bytes, &mut self.pos)?;
            self.time = self.time.saturating_add(delta as i64);
            return Some((self.time, cost));
        }
        self.newest.take()
    }
}

impl SlidingLog {
    pub fn new(params: Params, now: i64) -> Self {
        SlidingLog {
            params,
            used: 0,
            base_ms: now,
            encoded_end_ms: now,
            encoded: Vec::new(),
            start: 0,
            newest_ms: now,
            newest_cost: 0,
            count: 0,
        }
    }

    pub fn entries(&self) -> Entries<'_> {
        Entries {
            bytes: &self.encoded[self.start..],
            pos: 0,
            time: self.base_ms,
            newest: (self.newest_cost > 0).then_some((self.newest_ms, self.newest_cost)),
        }
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.newest_cost == 0
    }

    /// Heap bytes held by the encoded entries (for MEMORY USAGE).
    pub fn heap_bytes(&self) -> usize {
        self.encoded.capacity()
    }

    /// Rebuilds a log from entries (oldest first), e.g. when loading from RDB.
    /// Returns None unless times strictly increase, costs are positive and fit the bounds.
    pub fn from_entries(params: Params, entries: impl IntoIterator<Item = (i64, u64)>) -> Option<Self> {
        let mut log = SlidingLog::new(params, 0);
        let mut first = true;
        for (time, cost) in entries {
            let in_order = first || time > log.newest_ms;
            if !in_order || cost == 0 || !(0..=MAX_TIME_MS).contains(&time) {
                return None;
            }
            if first {
                log = SlidingLog::new(params, time);
                first = false;
            }
            log.used = log.used.checked_add(cost).filter(|used| *used <= MAX_UNITS)?;
            log.push(time, cost);
        }
        Some(log)
    }

    /// The time of the last write (the newest entry), below which the effective now never goes.
    pub fn last_ms(&self) -> i64 {
        self.newest_ms
    }

    /// Decides a request; writes only when `commit` and admitted with cost > 0. A log already
    /// holding `max_entries` entries does not grow: the new cost joins the newest entry, moved to
    /// `now`, which makes those units live longer (stricter, never more lenient) and bounds memory.
    pub fn decide(&mut self, params: &Params, now: i64, cost: u64, commit: bool, max_entries: u64) -> Decision {
        let now = now.max(self.newest_ms);
        let window = params.window_ms as i64;
        let is_live = |time: i64| time + window > now;
        let expired: u64 = self.entries().take_while(|e| !is_live(e.0)).map(|e| e.1).sum();
        let mut used = self.used - expired;
        // COST 0 is a peek: allowed even when a lowered limit is already exceeded.
        let allowed = cost == 0 || used.checked_add(cost).is_some_and(|total| total <= params.limit);
        let retry_after_ms = if allowed || cost > params.limit {
            -1
        } else {
            // Drop live entries oldest first until the rest leaves room for cost.
            let mut to_free = used + cost - params.limit;
            let mut retry = 0;
            for (time, c) in self.entries().skip_while(|e| !is_live(e.0)) {
                retry = time + window - now;
                to_free = to_free.saturating_sub(c);
                if to_free == 0 {
                    break;
                }
            }
            retry
        };
        if allowed && cost > 0 {
            used += cost;
            if commit {
                self.prune(now - window);
                self.params = *params;
                self.used = used;
                if self.count >= max_entries && !self.is_empty() {
                    (self.newest_ms, self.newest_cost) = (now, self.newest_cost + cost);
                } else {
                    self.push(now, cost);
                }
            }
        }
        // The newest live entry after this call decides when the log is idle again.
        let newest = if allowed && cost > 0 { Some(now) } else { self.newest_live(now, window) };
        Decision {
            allowed,
            limit: params.limit,
            remaining: params.limit.saturating_sub(used),
            retry_after_ms,
            reset_after_ms: newest.map_or(0, |t| t + window - now),
            at_ms: now,
        }
    }

    fn newest_live(&self, now: i64, window: i64) -> Option<i64> {
        (!self.is_empty() && self.newest_ms + window > now).then_some(self.newest_ms)
    }

    /// Drops entries with time <= `cutoff` (they no longer count).
    fn prune(&mut self, cutoff: i64) {
        let mut pos = self.start;
        let mut time = self.base_ms;
        while pos < self.encoded.len() {
            let mut next = pos;
            let (Some(delta), Some(cost)) =
                (varint::read(&self.encoded, &mut next), varint::read(&self.encoded, &mut next))
            else {
                break;
            };
            if time + delta as i64 > cutoff {
                break;
            }
            time += delta as i64;
            self.used -= cost;
            self.count -= 1;
            pos = next;
        }
        self.start = pos;
        self.base_ms = time;
        if self.start == self.encoded.len() && !self.is_empty() && self.newest_ms <= cutoff {
            self.used -= self.newest_cost;
            self.newest_cost = 0;
            self.count = 0;
        }
        // Compact once the dead prefix is at least as large as the live part.
        if self.start > 0 && self.start * 2 >= self.encoded.len() {
            self.encoded.drain(..self.start);
            self.start = 0;
            if self.encoded.capacity() > 64 && self.encoded.len() * 4 < self.encoded.capacity() {
                self.encoded.shrink_to(self.encoded.len() * 2);
            }
        }
    }

    /// Appends an entry at `time` >= the newest; the caller has already added `cost` to `used`.
    fn push(&mut self, time: i64, cost: u64) {
        if self.is_empty() {
            (self.newest_ms, self.newest_cost) = (time, cost);
            self.count = 1;
            if self.encoded.len() == self.start {
                // Nothing encoded: restart deltas from here.
                self.encoded.clear();
                self.start = 0;
                self.base_ms = time;
                self.encoded_end_ms = time;
            }
        } else if time == self.newest_ms {
            self.newest_cost += cost;
        } else {
            varint::write(&mut self.encoded, (self.newest_ms - self.encoded_end_ms) as u64);
            varint::write(&mut self.encoded, self.newest_cost);
            self.encoded_end_ms = self.newest_ms;
            (self.newest_ms, self.newest_cost) = (time, cost);
            self.count += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    fn p(limit: u64, window_ms: u64) -> Params {
        Params { limit, window_ms }
    }

    #[test]
    fn slides_and_reports_retry_for_the_cost() {
        let params = p(3, 1000);
        let mut log = SlidingLog::new(params, 0);
        assert_eq!(log.decide(&params, 0, 1, true, u64::MAX).reply(), [1, 3, 2, -1, 1000]);
        assert_eq!(log.decide(&params, 100, 1, true, u64::MAX).reply(), [1, 3, 1, -1, 1000]);
        assert_eq!(log.decide(&params, 200, 1, true, u64::MAX).reply(), [1, 3, 0, -1, 1000]);
        // Needs two units free: the entries at 0 and 100 must expire.
        assert_eq!(log.decide(&params, 500, 2, true, u64::MAX).reply(), [0, 3, 0, 600, 700]);
        assert_eq!(log.decide(&params, 500, 4, true, u64::MAX).reply(), [0, 3, 0, -1, 700]);
        assert_eq!(log.decide(&params, 1000, 1, true, u64::MAX).reply(), [1, 3, 0, -1, 1000]);
        assert_eq!(log.len(), 3);
    }

    #[test]
    fn rejected_requests_are_not_recorded() {
        let params = p(1, 1000);
        let mut log = SlidingLog::new(params, 0);
        log.decide(&params, 0, 1, true, u64::MAX);
        let before = log.clone();
        for t in (10..1000).step_by(10) {
            assert!(!log.decide(&params, t, 1, true, u64::MAX).allowed);
        }
        assert_eq!(log, before);
        assert!(log.decide(&params, 1000, 1, true, u64::MAX).allowed);
    }

    #[test]
    fn same_ms_requests_merge_and_a_full_window_is_compact() {
        let params = p(10_000, 60_000);
        let mut log = SlidingLog::new(params, 0);
        for i in 0..1000 {
            log.decide(&params, i * 60, 1, true, u64::MAX);
            log.decide(&params, i * 60, 1, true, u64::MAX);
        }
        assert_eq!(log.len(), 1000);
        assert_eq!(log.used, 2000);
        // One byte of delta and one of cost per entry.
        assert_eq!(log.encoded.len() - log.start, 999 * 2);
    }

    #[test]
    fn buffer_stays_bounded_under_steady_traffic() {
        let params = p(100, 1000);
        let mut log = SlidingLog::new(params, 0);
        for t in 0..200_000 {
            log.decide(&params, t * 10, 1, true, u64::MAX);
        }
        assert_eq!(log.len(), 100);
        assert!(log.heap_bytes() <= 1024, "{}", log.heap_bytes());
    }

    #[test]
    fn a_full_log_merges_into_its_newest_entry_and_never_over_admits() {
        let params = p(100, 1000);
        let mut log = SlidingLog::new(params, 0);
        for t in 0..10 {
            assert!(log.decide(&params, t * 10, 1, true, 4).allowed);
        }
        // Entries at 0, 10, 20 and the rest merged into one at 90.
        assert_eq!(log.entries().collect::<Vec<_>>(), vec![(0, 1), (10, 1), (20, 1), (90, 7)]);
        assert_eq!(log.len(), 4);
        // Units expire no earlier than they would have: at 1030 only the first three are gone.
        assert_eq!(log.decide(&params, 1030, 0, false, 4).remaining, 100 - 7);
    }

    #[test]
    fn from_entries_rejects_inconsistent_logs() {
        let params = p(10, 100);
        assert!(SlidingLog::from_entries(params, [(5, 1), (5, 1)]).is_none());
        assert!(SlidingLog::from_entries(params, [(5, 0)]).is_none());
        assert!(SlidingLog::from_entries(params, [(-1, 1)]).is_none());
        assert!(SlidingLog::from_entries(params, [(1, MAX_UNITS), (2, 1)]).is_none());
        let log = SlidingLog::from_entries(params, [(1, 2), (300, 1), (100_000, 7)]);
        assert_eq!(log.map(|l| l.entries().collect::<Vec<_>>()), Some(vec![(1, 2), (300, 1), (100_000, 7)]));
    }

    /// Reference model: a plain list of every admitted (time, cost), judged from scratch.
    #[test]
    fn matches_reference_model_on_random_schedules() {
        let seed: u64 = rand::random();
        let mut rng = StdRng::seed_from_u64(seed);
        for round in 0..300 {
            let random_params = |rng: &mut StdRng| p(rng.gen_range(1..30), rng.gen_range(1..2000));
            let mut params = random_params(&mut rng);
            let mut now: i64 = rng.gen_range(0..1_000_000);
            let mut log = SlidingLog::new(params, now);
            let mut model: Vec<(i64, u64)> = Vec::new();
            let mut last_write = now;
            // Some rounds are dense (many same-ms merges), some sparse.
            let max_gap = if round % 2 == 0 { 5 } else { 600 };
            for _ in 0..400 {
                now += rng.gen_range(-50..max_gap);
                if rng.gen_ratio(1, 40) {
                    params = random_params(&mut rng);
                }
                let cost = rng.gen_range(0..5);
                let commit = rng.gen_ratio(9, 10);
                let t = now.max(last_write);
                let w = params.window_ms as i64;
                let live: Vec<(i64, u64)> = model.iter().copied().filter(|e| e.0 + w > t).collect();
                let used: u64 = live.iter().map(|e| e.1).sum();
                let allowed = cost == 0 || used + cost <= params.limit;
                let retry = if allowed || cost > params.limit {
                    -1
                } else {
                    (0..)
                        .find(|d| {
                            let still: u64 = live.iter().filter(|e| e.0 + w > t + d).map(|e| e.1).sum();
                            still + cost <= params.limit
                        })
                        .unwrap_or(-1)
                };
                let after = if allowed { used + cost } else { used };
                let newest = if allowed && cost > 0 { Some(t) } else { live.last().map(|e| e.0) };
                let expect = [
                    i64::from(allowed),
                    params.limit as i64,
                    params.limit.saturating_sub(after) as i64,
                    retry,
                    newest.map_or(0, |n| n + w - t),
                ];
                assert_eq!(log.decide(&params, now, cost, commit, u64::MAX).reply(), expect, "seed {seed}");
                if allowed && commit && cost > 0 {
                    last_write = t;
                    model.retain(|e| e.0 + w > t);
                    match model.last_mut() {
                        Some(last) if last.0 == t => last.1 += cost,
                        _ => model.push((t, cost)),
                    }
                    assert_eq!(log.entries().collect::<Vec<_>>(), model, "seed {seed}");
                }
            }
        }
    }
}
