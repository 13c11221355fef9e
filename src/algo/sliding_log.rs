//! Exact sliding log with a compact encoding and a sparse index.
//!
//! Entries are `(time_ms, cost)`, strictly increasing in time (same-ms requests merge).
//! All but the newest entry live in a byte buffer as LEB128 varint pairs
//! `(ms since the previous entry, cost)`: a busy key costs ~2 bytes per entry instead of the
//! ~100 of a sorted-set member. The newest entry is kept unencoded so same-ms merges are O(1).
//!
//! Every `BLOCK`-th encoded entry gets a `Cursor` in `blocks` (its byte offset, the time before it,
//! the running sum of costs before it): finding the first live entry, or how far the log must drain
//! for a cost to fit, is a binary search over the blocks plus a scan of at most one block, so no
//! call costs more than O(log n) whatever the log size or the COST. Dropping expired entries
//! advances `head`; the buffer is compacted when the dead prefix outgrows the live part.

use std::collections::VecDeque;

use super::{Decision, MAX_TIME_MS, MAX_UNITS};
use crate::small_bytes::SmallBytes;
use crate::varint;

pub use super::WindowParams as Params;

/// Encoded entries between two index points.
const BLOCK: u64 = 256;

/// Bytes of encoded entries kept inside the log itself (some 23 entries a second apart, 35 entries
/// 100 ms apart): as many as fit while a boxed value stays in jemalloc's 192-byte class.
const INLINE_BYTES: usize = 70;

/// The index of a log too short to have one.
static NO_BLOCKS: VecDeque<Cursor> = VecDeque::new();

/// A position in the encoded entries: the entry at logical byte `offset` (bytes ever written,
/// drained ones included), the time its delta is relative to, the sum of the costs of every
/// entry before it (wrapping: only differences are used, and those are at most MAX_UNITS), and
/// its sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    offset: u64,
    before_ms: i64,
    cum: u64,
    seq: u64,
}

#[derive(Debug, Clone)]
pub struct SlidingLog {
    pub params: Params,
    /// Time of the last write (an admitted request or a reconfiguration): the effective now never
    /// goes below it.
    last_ms: i64,
    /// Encoded entries from logical byte `drained` on: inline while short, so that the usual log
    /// is one block of memory.
    encoded: SmallBytes<INLINE_BYTES>,
    drained: u64,
    /// The oldest stored encoded entry, and where the next one goes.
    head: Cursor,
    tail: Cursor,
    /// A cursor at every BLOCK-th encoded entry after `head`, oldest first; None until the log
    /// needs one (boxed: most logs never do, and it would widen every log by 24 bytes).
    #[allow(clippy::box_collection)] // deliberate: 8 bytes in every log instead of 32
    blocks: Option<Box<VecDeque<Cursor>>>,
    /// Newest entry, unencoded; `newest_cost == 0` means the log is empty.
    newest_ms: i64,
    newest_cost: u64,
}

/// Two logs are equal when they hold the same parameters, last update and entries, however their
/// buffers and indexes happen to be laid out.
impl PartialEq for SlidingLog {
    fn eq(&self, other: &Self) -> bool {
        self.params == other.params && self.last_ms == other.last_ms && self.entries().eq(other.entries())
    }
}

impl Eq for SlidingLog {}

/// Iterates entries oldest first without changing the log.
pub struct Entries<'a> {
    log: &'a SlidingLog,
    at: Cursor,
    newest: Option<(i64, u64)>,
}

impl Iterator for Entries<'_> {
    type Item = (i64, u64);
    fn next(&mut self) -> Option<(i64, u64)> {
        match self.log.read(&self.at) {
            Some((time, cost, next)) => {
                self.at = next;
                Some((time, cost))
            }
            None => self.newest.take(),
        }
    }
}

impl SlidingLog {
    pub fn new(params: Params, now: i64) -> Self {
        let origin = Cursor { offset: 0, before_ms: now, cum: 0, seq: 0 };
        SlidingLog {
            params,
            last_ms: now,
            encoded: SmallBytes::new(),
            drained: 0,
            head: origin,
            tail: origin,
            blocks: None,
            newest_ms: now,
            newest_cost: 0,
        }
    }

    pub fn entries(&self) -> Entries<'_> {
        Entries {
            log: self,
            at: self.head,
            newest: (self.newest_cost > 0).then_some((self.newest_ms, self.newest_cost)),
        }
    }

    /// Number of stored entries (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        (self.tail.seq - self.head.seq + u64::from(!self.is_empty())) as usize
    }

    /// Number of entries still counting at `now` under the stored window (what RL.INFO shows).
    pub fn live_len(&self, now: i64) -> u64 {
        let cutoff = now.max(self.last_ms) - self.params.window_ms as i64;
        let first = self.first_after(cutoff);
        self.tail.seq - first.seq + u64::from(!self.is_empty() && self.newest_ms > cutoff)
    }

    pub fn is_empty(&self) -> bool {
        self.newest_cost == 0
    }

    /// Heap bytes held by the encoded entries and the index (for MEMORY USAGE).
    pub fn heap_bytes(&self) -> usize {
        let index = self.blocks.as_ref().map_or(0, |blocks| {
            std::mem::size_of::<VecDeque<Cursor>>() + blocks.capacity() * std::mem::size_of::<Cursor>()
        });
        self.encoded.heap_bytes() + index
    }

    fn blocks(&self) -> &VecDeque<Cursor> {
        self.blocks.as_deref().unwrap_or(&NO_BLOCKS)
    }

    /// The time of the last write, below which the effective now never goes.
    pub fn last_ms(&self) -> i64 {
        self.last_ms
    }

    /// Rebuilds a log from entries (oldest first) as they are read, e.g. when loading: memory
    /// grows with the log, never with an intermediate copy. `last_ms` None means the newest
    /// entry's time (the encoding before reconfigurations were writes). Returns None unless times
    /// strictly increase, costs are positive and everything fits the bounds.
    pub fn from_entries(
        params: Params,
        last_ms: Option<i64>,
        entries: impl IntoIterator<Item = (i64, u64)>,
    ) -> Option<Self> {
        let mut log: Option<SlidingLog> = None;
        let mut used = 0u64;
        for (time, cost) in entries {
            let log = log.get_or_insert_with(|| SlidingLog::new(params, time));
            let in_order = log.is_empty() || time > log.newest_ms;
            if !in_order || cost == 0 || !(0..=MAX_TIME_MS).contains(&time) {
                return None;
            }
            used = used.checked_add(cost).filter(|used| *used <= MAX_UNITS)?;
            log.push(time, cost);
        }
        let mut log = log?;
        log.last_ms = last_ms.unwrap_or(log.newest_ms);
        (log.newest_ms..=MAX_TIME_MS).contains(&log.last_ms).then_some(log)
    }

    /// Decides a request; see `Limiter::decide` for when it writes. A reconfiguration first
    /// drops the entries already dead under the old window at now; the rest are judged by the new
    /// one. A log already holding `max_entries` entries does not grow: the new cost joins the
    /// newest entry, moved to `now`, which makes those units live longer (stricter, never more
    /// lenient) and bounds memory.
    pub fn decide(&mut self, params: &Params, now: i64, cost: u64, commit: bool, max_entries: u64) -> Decision {
        let (mut decision, cutoff) = self.judge(params, now, cost);
        decision.wrote = commit && cost > 0 && (decision.allowed || *params != self.params);
        if decision.wrote {
            let now = decision.at_ms;
            self.prune(cutoff);
            self.params = *params;
            self.last_ms = now;
            if decision.allowed {
                if self.len() as u64 >= max_entries && !self.is_empty() {
                    (self.newest_ms, self.newest_cost) = (now, self.newest_cost + cost);
                } else {
                    self.push(now, cost);
                }
            }
        }
        decision
    }

    /// Moves the last update to `now` (when later) without changing any later decision (entries
    /// keep their absolute times).
    pub fn advance(&mut self, now: i64) {
        self.last_ms = self.last_ms.max(now);
    }

    /// The reply `decide` would give without writing, from a shared reference (no copy of the log).
    pub fn peek(&self, params: &Params, now: i64, cost: u64) -> Decision {
        self.judge(params, now, cost).0
    }

    /// Judges a request (as if reconfigured, nothing written); also returns the cutoff at or before
    /// which entries no longer count.
    fn judge(&self, params: &Params, now: i64, cost: u64) -> (Decision, i64) {
        let now = now.max(self.last_ms);
        let window = params.window_ms as i64;
        let kept_window = if *params != self.params { window.min(self.params.window_ms as i64) } else { window };
        let cutoff = now - kept_window;
        let first = self.first_after(cutoff);
        let newest_live = !self.is_empty() && self.newest_ms > cutoff;
        let newest_cost = if newest_live { self.newest_cost } else { 0 };
        let used = self.tail.cum.wrapping_sub(first.cum) + newest_cost;
        // COST 0 is a peek: allowed even when a lowered limit is already exceeded.
        let allowed = cost == 0 || used.checked_add(cost).is_some_and(|total| total <= params.limit);
        let retry_after_ms = if allowed || cost > params.limit {
            -1
        } else {
            self.time_freeing(&first, used + cost - params.limit) + window - now
        };
        let used_after = if allowed { used + cost } else { used };
        // The newest live entry after this call decides when the log is idle again.
        let newest = if allowed && cost > 0 { Some(now) } else { newest_live.then_some(self.newest_ms) };
        let decision = Decision {
            allowed,
            limit: params.limit,
            remaining: params.limit.saturating_sub(used_after),
            retry_after_ms,
            reset_after_ms: newest.map_or(0, |t| t + window - now),
            at_ms: now,
            wrote: false,
        };
        (decision, cutoff)
    }

    /// The entry at `at` with the cursor after it; None at the end of the encoded entries.
    fn read(&self, at: &Cursor) -> Option<(i64, u64, Cursor)> {
        if at.offset >= self.tail.offset {
            return None;
        }
        let mut pos = (at.offset - self.drained) as usize;
        // The buffer is only written by `push`, so it always decodes; stop rather than panic if not.
        let bytes = self.encoded.as_slice();
        let delta = varint::read(bytes, &mut pos)?;
        let cost = varint::read(bytes, &mut pos)?;
        let time = at.before_ms.saturating_add(delta as i64);
        let next = Cursor {
            offset: self.drained + pos as u64,
            before_ms: time,
            cum: at.cum.wrapping_add(cost),
            seq: at.seq + 1,
        };
        Some((time, cost, next))
    }

    /// The first encoded entry after `cutoff` (or the end): a binary search over the blocks,
    /// then a scan of at most one block.
    fn first_after(&self, cutoff: i64) -> Cursor {
        // Every stored time is at least the one the oldest entry is relative to: when that one
        // still counts, so does everything, and the entries' memory is not touched.
        if self.head.before_ms > cutoff {
            return self.head;
        }
        let blocks = self.blocks();
        let i = blocks.partition_point(|b| b.before_ms <= cutoff);
        let from = if i > 0 { blocks[i - 1] } else { self.head };
        self.scan(from, |time, _| time <= cutoff).0
    }

    /// Steps from `at` over the entries for which `passes(time, running sum after it)` holds, and
    /// returns the cursor at the first one that does not, with its time (or the end, and None).
    /// The hot loop of every search: at most one block long, decoded in place.
    fn scan(&self, mut at: Cursor, mut passes: impl FnMut(i64, u64) -> bool) -> (Cursor, Option<i64>) {
        let bytes = self.encoded.as_slice();
        let mut pos = (at.offset - self.drained) as usize;
        let end = (self.tail.offset - self.drained) as usize;
        while pos < end {
            let entry_start = pos;
            // The buffer is only written by `push`, so it always decodes; stop rather than panic if not.
            let (Some(delta), Some(cost)) = (varint::read(bytes, &mut pos), varint::read(bytes, &mut pos)) else {
                break;
            };
            let time = at.before_ms.saturating_add(delta as i64);
            let cum = at.cum.wrapping_add(cost);
            if !passes(time, cum) {
                at.offset = self.drained + entry_start as u64;
                return (at, Some(time));
            }
            at = Cursor { offset: self.drained + pos as u64, before_ms: time, cum, seq: at.seq + 1 };
        }
        (at, None)
    }

    /// The time of the oldest entry from `first` on whose expiry frees `to_free` units (the
    /// newest entry when the encoded ones do not suffice): a binary search on the running sums.
    fn time_freeing(&self, first: &Cursor, to_free: u64) -> i64 {
        // Blocks up to `first`, then those after it whose preceding entries do not free enough.
        let blocks = self.blocks();
        let j = blocks.partition_point(|b| b.offset <= first.offset || b.cum.wrapping_sub(first.cum) < to_free);
        let from = if j > 0 && blocks[j - 1].offset > first.offset { blocks[j - 1] } else { *first };
        self.scan(from, |_, cum| cum.wrapping_sub(first.cum) < to_free).1.unwrap_or(self.newest_ms)
    }

    /// Drops entries with time <= `cutoff` (they no longer count).
    fn prune(&mut self, cutoff: i64) {
        self.head = self.first_after(cutoff);
        if let Some(blocks) = &mut self.blocks {
            while blocks.front().is_some_and(|b| b.offset <= self.head.offset) {
                blocks.pop_front();
            }
            if blocks.is_empty() {
                self.blocks = None;
            } else if blocks.capacity() > 8 && blocks.len() * 4 < blocks.capacity() {
                blocks.shrink_to(blocks.len() * 2);
            }
        }
        if self.head.offset == self.tail.offset && !self.is_empty() && self.newest_ms <= cutoff {
            self.newest_cost = 0;
        }
        // Compact once the dead prefix is at least as large as the live part.
        let dead = (self.head.offset - self.drained) as usize;
        if dead > 0 && dead * 2 >= self.encoded.len() {
            // Shrinks a heap buffer left mostly empty, or moves it back inline.
            self.encoded.drain_front(dead);
            self.drained = self.head.offset;
        }
    }

    /// Appends an entry at `time` >= the newest.
    fn push(&mut self, time: i64, cost: u64) {
        if self.is_empty() {
            // Nothing stored: restart the buffer and the index here.
            self.drained = self.tail.offset;
            self.encoded.clear();
            self.blocks = None;
            self.tail.before_ms = time;
            self.head = self.tail;
            (self.newest_ms, self.newest_cost) = (time, cost);
        } else if time == self.newest_ms {
            self.newest_cost += cost;
        } else {
            // Block 0 would only repeat `head`: a short log has no index at all.
            if self.tail.seq > 0 && self.tail.seq.is_multiple_of(BLOCK) {
                self.blocks.get_or_insert_with(Box::default).push_back(self.tail);
            }
            self.encoded.push_varint((self.newest_ms - self.tail.before_ms) as u64);
            self.encoded.push_varint(self.newest_cost);
            self.tail = Cursor {
                offset: self.drained + self.encoded.len() as u64,
                before_ms: self.newest_ms,
                cum: self.tail.cum.wrapping_add(self.newest_cost),
                seq: self.tail.seq + 1,
            };
            (self.newest_ms, self.newest_cost) = (time, cost);
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

    fn stored_units(log: &SlidingLog) -> u64 {
        log.entries().map(|e| e.1).sum()
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
            let d = log.decide(&params, t, 1, true, u64::MAX);
            assert!(!d.allowed && !d.wrote);
        }
        assert_eq!(log, before);
        assert!(log.decide(&params, 1000, 1, true, u64::MAX).allowed);
    }

    #[test]
    fn a_reconfiguration_is_written_even_when_rejected() {
        let narrow = p(1, 1000);
        let mut log = SlidingLog::new(narrow, 0);
        log.decide(&narrow, 0, 1, true, u64::MAX);
        log.decide(&narrow, 700, 0, true, u64::MAX);
        // Widened to 10 s at 300: rejected, but the log now expires under the new window.
        let wide = p(1, 10_000);
        let d = log.decide(&wide, 300, 1, true, u64::MAX);
        assert_eq!((d.reply(), d.wrote), ([0, 1, 0, 9700, 9700], true));
        assert_eq!((log.params, log.last_ms()), (wide, 300));
        // The same call again is not a reconfiguration: nothing written.
        let d = log.decide(&wide, 400, 1, true, u64::MAX);
        assert_eq!((d.reply(), d.wrote), ([0, 1, 0, 9600, 9600], false));
        // DRYRUN and COST 0 reply as if reconfigured and write nothing.
        let before = log.clone();
        assert_eq!(log.decide(&narrow, 500, 1, false, u64::MAX).reply(), [0, 1, 0, 500, 500]);
        assert_eq!(log.decide(&narrow, 500, 0, true, u64::MAX).reply(), [1, 1, 0, -1, 500]);
        assert_eq!(log, before);
    }

    #[test]
    fn widening_drops_what_the_old_window_already_let_go() {
        let narrow = p(2, 1000);
        let mut log = SlidingLog::new(narrow, 0);
        log.decide(&narrow, 0, 1, true, u64::MAX);
        log.decide(&narrow, 1500, 1, true, u64::MAX);
        // At 1800 the entry at 0 is dead under 1000 ms: a 10 s window does not revive it.
        let wide = p(2, 10_000);
        assert_eq!(log.decide(&wide, 1800, 0, false, u64::MAX).reply(), [1, 2, 1, -1, 9700]);
        assert_eq!(log.decide(&wide, 1800, 1, true, u64::MAX).reply(), [1, 2, 0, -1, 10_000]);
        assert_eq!(log.entries().collect::<Vec<_>>(), vec![(1500, 1), (1800, 1)]);
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
        assert_eq!(stored_units(&log), 2000);
        // One byte of delta and one of cost per entry.
        assert_eq!(log.encoded.len(), 999 * 2);
        // The index adds a small fraction of that.
        assert!(log.heap_bytes() < 1000 * 5 / 2, "{}", log.heap_bytes());
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
        assert_eq!(log.live_len(1030), 1);
    }

    #[test]
    fn from_entries_rejects_inconsistent_logs() {
        let params = p(10, 100);
        assert!(SlidingLog::from_entries(params, None, [(5, 1), (5, 1)]).is_none());
        assert!(SlidingLog::from_entries(params, None, [(5, 0)]).is_none());
        assert!(SlidingLog::from_entries(params, None, [(-1, 1)]).is_none());
        assert!(SlidingLog::from_entries(params, None, [(1, MAX_UNITS), (2, 1)]).is_none());
        assert!(SlidingLog::from_entries(params, None, []).is_none());
        assert!(SlidingLog::from_entries(params, Some(4), [(5, 1)]).is_none());
        let log = SlidingLog::from_entries(params, Some(100_001), [(1, 2), (300, 1), (100_000, 7)]);
        assert_eq!(log.as_ref().map(|l| l.entries().collect::<Vec<_>>()), Some(vec![(1, 2), (300, 1), (100_000, 7)]));
        assert_eq!(log.map(|l| l.last_ms()), Some(100_001));
    }

    /// A huge COST rejected on a long log finds its retry through the index, and agrees with a
    /// plain scan of the entries.
    #[test]
    fn retry_and_expiry_searches_agree_with_a_scan_on_long_logs() {
        let mut rng = StdRng::seed_from_u64(11);
        let params = p(MAX_UNITS, 3_000_000);
        let mut log = SlidingLog::new(params, 0);
        let mut t = 0;
        for _ in 0..20_000 {
            t += rng.gen_range(1..100);
            assert!(log.decide(&params, t, rng.gen_range(1..1000), true, u64::MAX).allowed);
        }
        let entries: Vec<(i64, u64)> = log.entries().collect();
        for _ in 0..200 {
            let now = t + rng.gen_range(0..3_000_000);
            let live: Vec<&(i64, u64)> = entries.iter().filter(|e| e.0 + 3_000_000 > now).collect();
            let used: u64 = live.iter().map(|e| e.1).sum();
            let tight = p(used.max(1), 3_000_000);
            let cost = rng.gen_range(1..=used.max(1));
            let mut to_free = (used + cost).saturating_sub(tight.limit);
            let expected_retry = if to_free == 0 {
                -1
            } else {
                live.iter()
                    .find(|e| {
                        to_free = to_free.saturating_sub(e.1);
                        to_free == 0
                    })
                    .map_or(-1, |e| e.0 + 3_000_000 - now)
            };
            // Same window, a lower limit: judged without writing (a DRYRUN).
            let d = log.decide(&tight, now, cost, false, u64::MAX);
            assert_eq!(d.retry_after_ms, expected_retry, "now {now} cost {cost}");
            assert_eq!(log.live_len(now), live.len() as u64);
        }
    }

    /// Reference model: a plain list of every stored (time, cost), judged from scratch, with the
    /// contract's reconfiguration (entries dead under the old window dropped, a write of its own).
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
            let mut stored = params;
            let mut last_write = now;
            // Some rounds are dense (many same-ms merges, several index blocks), some sparse.
            let (max_gap, steps) = if round % 2 == 0 { (5, 1500) } else { (600, 400) };
            for _ in 0..steps {
                now += rng.gen_range(-50..max_gap);
                if rng.gen_ratio(1, 40) {
                    params = random_params(&mut rng);
                }
                let cost = rng.gen_range(0..5);
                let commit = rng.gen_ratio(9, 10);
                let t = now.max(last_write);
                let w = params.window_ms as i64;
                let reconfigure = params != stored;
                let kept = if reconfigure { w.min(stored.window_ms as i64) } else { w };
                let live: Vec<(i64, u64)> = model.iter().copied().filter(|e| e.0 + kept > t).collect();
                let used: u64 = live.iter().map(|e| e.1).sum();
                let allowed = cost == 0 || used + cost <= params.limit;
                let retry = if allowed || cost > params.limit {
                    -1
                } else {
                    // The usage only drops when an entry expires: try those instants, earliest first.
                    let mut instants: Vec<i64> = live.iter().map(|e| (e.0 + w - t).max(0)).collect();
                    instants.sort();
                    instants
                        .into_iter()
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
                let d = log.decide(&params, now, cost, commit, u64::MAX);
                assert_eq!(d.reply(), expect, "seed {seed}");
                let wrote = commit && cost > 0 && (allowed || reconfigure);
                assert_eq!(d.wrote, wrote, "seed {seed}");
                if wrote {
                    (last_write, stored, model) = (t, params, live);
                    if allowed {
                        match model.last_mut() {
                            Some(last) if last.0 == t => last.1 += cost,
                            _ => model.push((t, cost)),
                        }
                    }
                    assert_eq!(log.entries().collect::<Vec<_>>(), model, "seed {seed}");
                }
            }
        }
    }
}
