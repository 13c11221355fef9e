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
    /// Name of the command that drives this algorithm.
    pub fn command(self) -> &'static str {
        match self {
            Algorithm::TokenBucket => "RL.TOKENBUCKET",
            Algorithm::FixedWindow => "RL.FIXED",
            Algorithm::SlidingLog => "RL.SLIDING",
            Algorithm::Gcra => "RL.GCRA",
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

    /// The positional parameters, in command order (as they are replicated).
    pub fn positional(&self) -> Vec<u64> {
        match self {
            Spec::TokenBucket(p) => vec![p.capacity, p.refill_tokens, p.refill_ms],
            Spec::FixedWindow(p) => vec![p.limit, p.window_ms],
            Spec::SlidingLog(p) => vec![p.limit, p.window_ms],
            Spec::Gcra(p) => vec![p.burst, p.rate, p.period_ms],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limiter {
    TokenBucket(TokenBucket),
    FixedWindow(FixedWindow),
    // Boxed: the log is larger than the other two and would widen every key.
    SlidingLog(Box<SlidingLog>),
    Gcra(Gcra),
}

impl Limiter {
    /// An idle limiter (what an absent key means).
    pub fn new(spec: &Spec, now: i64) -> Limiter {
        match spec {
            Spec::TokenBucket(p) => Limiter::TokenBucket(TokenBucket::new(*p, now)),
            Spec::FixedWindow(p) => Limiter::FixedWindow(FixedWindow::new(*p, now)),
            Spec::SlidingLog(p) => Limiter::SlidingLog(Box::new(SlidingLog::new(*p, now))),
            Spec::Gcra(p) => Limiter::Gcra(Gcra::new(*p, now)),
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

    /// Decides a request; `None` when the spec is for another algorithm than the one stored.
    /// Writes only when `commit` and the request is admitted with cost > 0.
    pub fn decide(&mut self, spec: &Spec, now: i64, cost: u64, commit: bool) -> Option<Decision> {
        Some(match (self, spec) {
            (Limiter::TokenBucket(b), Spec::TokenBucket(p)) => b.decide(p, now, cost, commit),
            (Limiter::FixedWindow(w), Spec::FixedWindow(p)) => w.decide(p, now, cost, commit),
            (Limiter::SlidingLog(l), Spec::SlidingLog(p)) => l.decide(p, now, cost, commit),
            (Limiter::Gcra(g), Spec::Gcra(p)) => g.decide(p, now, cost, commit),
            _ => return None,
        })
    }

    /// Bytes this value holds, for MEMORY USAGE.
    pub fn mem_usage(&self) -> usize {
        let heap = match self {
            Limiter::SlidingLog(log) => std::mem::size_of::<SlidingLog>() + log.heap_bytes(),
            _ => 0,
        };
        std::mem::size_of::<Limiter>() + heap
    }
}
