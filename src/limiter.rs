//! The value stored in a key: one limiter of one algorithm, and the request-side `Spec`
//! (parameters sent with a call). The one place that dispatches on the algorithm.

use crate::algo::{fixed_window, gcra, sliding_log, token_bucket, Decision};
use fixed_window::FixedWindow;
use gcra::Gcra;
use sliding_log::SlidingLog;
use token_bucket::TokenBucket;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    TokenBucket,
    FixedWindow,
    SlidingLog,
    Gcra,
}

impl Algorithm {
    /// Name of the command that drives this algorithm (and replicates its writes).
    pub fn command(self) -> &'static str {
        self.command_cstr().to_str().unwrap_or_default()
    }

    pub fn command_cstr(self) -> &'static std::ffi::CStr {
        match self {
            Algorithm::TokenBucket => c"RL.TOKENBUCKET",
            Algorithm::FixedWindow => c"RL.FIXED",
            Algorithm::SlidingLog => c"RL.SLIDING",
            Algorithm::Gcra => c"RL.GCRA",
        }
    }

    /// The positional parameters' names, in command order (errors and RL.INFO use them).
    pub fn parameter_names(self) -> &'static [&'static str] {
        match self {
            Algorithm::TokenBucket => &["capacity", "refill_tokens", "refill_ms"],
            Algorithm::FixedWindow | Algorithm::SlidingLog => &["limit", "window_ms"],
            Algorithm::Gcra => &["burst", "rate", "period_ms"],
        }
    }

    /// Whether its state is a log of entries, whose length the sliding-log cap bounds.
    pub fn has_log(self) -> bool {
        self == Algorithm::SlidingLog
    }

    /// Short name, as RL.INFO reports it.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::TokenBucket => "tokenbucket",
            Algorithm::FixedWindow => "fixed",
            Algorithm::SlidingLog => "sliding",
            Algorithm::Gcra => "gcra",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Algorithm::TokenBucket => "a token bucket",
            Algorithm::FixedWindow => "a fixed window",
            Algorithm::SlidingLog => "a sliding log",
            Algorithm::Gcra => "a GCRA",
        }
    }
}

/// A value in RL.INFO's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Int(i64),
    Text(&'static str),
}

/// Validated parameters of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spec {
    TokenBucket(token_bucket::Params),
    FixedWindow(fixed_window::Params),
    SlidingLog(sliding_log::Params),
    Gcra(gcra::Params),
}

impl Spec {
    /// The bounds check of the algorithm's parameters; Err names the offending parameter.
    pub fn validate(&self) -> Result<(), &'static str> {
        match self {
            Spec::TokenBucket(p) => p.validate(),
            Spec::FixedWindow(p) => p.validate(),
            Spec::SlidingLog(p) => p.validate(),
            Spec::Gcra(p) => p.validate(),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            Spec::TokenBucket(_) => Algorithm::TokenBucket,
            Spec::FixedWindow(_) => Algorithm::FixedWindow,
            Spec::SlidingLog(_) => Algorithm::SlidingLog,
            Spec::Gcra(_) => Algorithm::Gcra,
        }
    }

    /// The positional parameters in command order (as they are replicated): values and count.
    pub fn positional(&self) -> ([u64; 3], usize) {
        match self {
            Spec::TokenBucket(p) => ([p.capacity, p.refill_tokens, p.refill_ms], 3),
            Spec::FixedWindow(p) => ([p.limit, p.window_ms, 0], 2),
            Spec::SlidingLog(p) => ([p.limit, p.window_ms, 0], 2),
            Spec::Gcra(p) => ([p.burst, p.rate, p.period_ms], 3),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limiter {
    TokenBucket(TokenBucket),
    FixedWindow(FixedWindow),
    SlidingLog(SlidingLog),
    Gcra(Gcra),
}

impl Limiter {
    /// An idle limiter (what an absent key means).
    pub fn new(spec: &Spec, now: i64) -> Limiter {
        match spec {
            Spec::TokenBucket(p) => Limiter::TokenBucket(TokenBucket::new(*p, now)),
            Spec::FixedWindow(p) => Limiter::FixedWindow(FixedWindow::new(*p, now)),
            Spec::SlidingLog(p) => Limiter::SlidingLog(SlidingLog::new(*p, now)),
            Spec::Gcra(p) => Limiter::Gcra(Gcra::new(*p, now)),
        }
    }

    /// A GCRA taken over from a string key redis-cell left (`Gcra::from_cell_tat`); None for
    /// another algorithm.
    pub fn from_cell(spec: &Spec, tat_ns: u64, now: i64) -> Option<Limiter> {
        match spec {
            Spec::Gcra(p) => Gcra::from_cell_tat(*p, tat_ns, now).map(Limiter::Gcra),
            _ => None,
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            Limiter::TokenBucket(_) => Algorithm::TokenBucket,
            Limiter::FixedWindow(_) => Algorithm::FixedWindow,
            Limiter::SlidingLog(_) => Algorithm::SlidingLog,
            Limiter::Gcra(_) => Algorithm::Gcra,
        }
    }

    /// Decides a request at the effective now (max of `now` and the last write); `None` when the
    /// spec is for another algorithm than the one stored. Parameters other than the stored ones
    /// reconfigure the limiter in place. It writes (`Decision::wrote`) only when `commit` and
    /// cost > 0, and then when the request is admitted (cost taken) or reconfigures (a write of
    /// its own, even when rejected: the reply's retry and reset then hold for the next calls).
    /// Without writing it replies as if reconfigured. A sliding log never grows past
    /// `max_log_entries` (see `SlidingLog::decide`).
    pub fn decide(&mut self, spec: &Spec, now: i64, cost: u64, commit: bool, max_log_entries: u64) -> Option<Decision> {
        Some(match (self, spec) {
            (Limiter::TokenBucket(b), Spec::TokenBucket(p)) => b.decide(p, now, cost, commit),
            (Limiter::FixedWindow(w), Spec::FixedWindow(p)) => w.decide(p, now, cost, commit),
            (Limiter::SlidingLog(l), Spec::SlidingLog(p)) => l.decide(p, now, cost, commit, max_log_entries),
            (Limiter::Gcra(g), Spec::Gcra(p)) => g.decide(p, now, cost, commit),
            _ => return None,
        })
    }

    /// The parameters stored with this limiter (those of its last write).
    pub fn spec(&self) -> Spec {
        match self {
            Limiter::TokenBucket(b) => Spec::TokenBucket(b.params),
            Limiter::FixedWindow(w) => Spec::FixedWindow(w.params),
            Limiter::SlidingLog(l) => Spec::SlidingLog(l.params),
            Limiter::Gcra(g) => Spec::Gcra(g.params),
        }
    }

    /// What RL.INFO shows: the algorithm, its stored parameters, and its state seen at `now`
    /// (a COST 0 peek, so nothing changes).
    pub fn describe(&self, now: i64) -> Vec<(&'static str, Field)> {
        let spec = self.spec();
        let peek = self.clone().decide(&spec, now, 0, false, u64::MAX);
        let mut fields = vec![("algorithm", Field::Text(self.algorithm().name()))];
        let names = self.algorithm().parameter_names();
        let (values, _) = spec.positional();
        fields.extend(names.iter().zip(values).map(|(name, v)| (*name, Field::Int(v as i64))));
        if let Limiter::SlidingLog(log) = self {
            fields.push(("entries", Field::Int(log.live_len(now) as i64)));
        }
        if let Some(d) = peek {
            if !names.contains(&"limit") {
                fields.push(("limit", Field::Int(d.limit as i64)));
            }
            fields.push(("remaining", Field::Int(d.remaining as i64)));
            fields.push(("reset_after_ms", Field::Int(d.reset_after_ms)));
            fields.push(("last_update_ms", Field::Int(self.last_update_ms())));
        }
        fields
    }

    /// Time of the last written request.
    pub fn last_update_ms(&self) -> i64 {
        match self {
            Limiter::TokenBucket(b) => b.last_ms,
            Limiter::FixedWindow(w) => w.last_ms,
            Limiter::SlidingLog(l) => l.last_ms(),
            Limiter::Gcra(g) => g.last_ms,
        }
    }

    /// Heap bytes owned beyond the value itself (a sliding log's encoded entries), for MEMORY USAGE.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Limiter::SlidingLog(log) => log.heap_bytes(),
            _ => 0,
        }
    }
}
