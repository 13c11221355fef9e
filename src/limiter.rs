//! The value stored in a key: one limiter of one algorithm, and the request-side `Spec`
//! (parameters sent with a call). The one place that dispatches on the algorithm.

use crate::algo::{fixed_window, gcra, sliding_counter, sliding_log, token_bucket, Decision};
use fixed_window::FixedWindow;
use gcra::Gcra;
use sliding_counter::SlidingCounter;
use sliding_log::SlidingLog;
use token_bucket::TokenBucket;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    TokenBucket,
    FixedWindow,
    SlidingLog,
    Gcra,
    SlidingCounter,
}

impl Algorithm {
    pub const ALL: [Algorithm; 5] = [
        Algorithm::TokenBucket,
        Algorithm::FixedWindow,
        Algorithm::SlidingLog,
        Algorithm::Gcra,
        Algorithm::SlidingCounter,
    ];

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
            Algorithm::SlidingCounter => c"RL.SLIDINGCOUNTER",
        }
    }

    /// The positional parameters' names, in command order (errors and RL.INFO use them).
    pub fn parameter_names(self) -> &'static [&'static str] {
        match self {
            Algorithm::TokenBucket => &["capacity", "refill_tokens", "refill_ms"],
            Algorithm::FixedWindow | Algorithm::SlidingLog | Algorithm::SlidingCounter => &["limit", "window_ms"],
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
            Algorithm::SlidingCounter => "slidingcounter",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Algorithm::TokenBucket => "a token bucket",
            Algorithm::FixedWindow => "a fixed window",
            Algorithm::SlidingLog => "a sliding log",
            Algorithm::Gcra => "a GCRA",
            Algorithm::SlidingCounter => "a sliding counter",
        }
    }
}

/// A value in RL.INFO's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Int(i64),
    Text(&'static str),
    /// Each rule's own fields (RL.LIMIT keys).
    Rules(Vec<Vec<(&'static str, Field)>>),
}

/// Validated parameters of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spec {
    TokenBucket(token_bucket::Params),
    FixedWindow(fixed_window::Params),
    SlidingLog(sliding_log::Params),
    Gcra(gcra::Params),
    SlidingCounter(sliding_counter::Params),
}

impl Spec {
    /// The bounds check of the algorithm's parameters; Err names the offending parameter.
    pub fn validate(&self) -> Result<(), &'static str> {
        match self {
            Spec::TokenBucket(p) => p.validate(),
            Spec::FixedWindow(p) => p.validate(),
            Spec::SlidingLog(p) => p.validate(),
            Spec::Gcra(p) => p.validate(),
            Spec::SlidingCounter(p) => p.validate(),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            Spec::TokenBucket(_) => Algorithm::TokenBucket,
            Spec::FixedWindow(_) => Algorithm::FixedWindow,
            Spec::SlidingLog(_) => Algorithm::SlidingLog,
            Spec::Gcra(_) => Algorithm::Gcra,
            Spec::SlidingCounter(_) => Algorithm::SlidingCounter,
        }
    }

    /// The positional parameters in command order (as they are replicated): values and count.
    pub fn positional(&self) -> ([u64; 3], usize) {
        match self {
            Spec::TokenBucket(p) => ([p.capacity, p.refill_tokens, p.refill_ms], 3),
            Spec::FixedWindow(p) => ([p.limit, p.window_ms, 0], 2),
            Spec::SlidingLog(p) => ([p.limit, p.window_ms, 0], 2),
            Spec::Gcra(p) => ([p.burst, p.rate, p.period_ms], 3),
            Spec::SlidingCounter(p) => ([p.limit, p.window_ms, 0], 2),
        }
    }

    /// The spec of `algorithm` from its positional parameters in command order; Err names the
    /// parameter out of bounds.
    pub fn from_positional(algorithm: Algorithm, v: [u64; 3]) -> Result<Spec, &'static str> {
        let window = crate::algo::WindowParams { limit: v[0], window_ms: v[1] };
        let spec = match algorithm {
            Algorithm::TokenBucket => {
                Spec::TokenBucket(token_bucket::Params { capacity: v[0], refill_tokens: v[1], refill_ms: v[2] })
            }
            Algorithm::FixedWindow => Spec::FixedWindow(window),
            Algorithm::SlidingLog => Spec::SlidingLog(window),
            Algorithm::Gcra => Spec::Gcra(gcra::Params { burst: v[0], rate: v[1], period_ms: v[2] }),
            Algorithm::SlidingCounter => Spec::SlidingCounter(window),
        };
        spec.validate().map(|()| spec)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limiter {
    TokenBucket(TokenBucket),
    FixedWindow(FixedWindow),
    SlidingLog(SlidingLog),
    Gcra(Gcra),
    SlidingCounter(SlidingCounter),
}

impl Limiter {
    /// An idle limiter (what an absent key means).
    pub fn new(spec: &Spec, now: i64) -> Limiter {
        match spec {
            Spec::TokenBucket(p) => Limiter::TokenBucket(TokenBucket::new(*p, now)),
            Spec::FixedWindow(p) => Limiter::FixedWindow(FixedWindow::new(*p, now)),
            Spec::SlidingLog(p) => Limiter::SlidingLog(SlidingLog::new(*p, now)),
            Spec::Gcra(p) => Limiter::Gcra(Gcra::new(*p, now)),
            Spec::SlidingCounter(p) => Limiter::SlidingCounter(SlidingCounter::new(*p, now)),
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
            Limiter::SlidingCounter(_) => Algorithm::SlidingCounter,
        }
    }

    /// Decides a request at the effective now (max of `now` and the last write). Parameters other
    /// than the stored ones reconfigure the limiter in place; a spec of another algorithm starts
    /// idle (RL.LIMIT's rules; the single-algorithm commands answer WRONGTYPE before deciding). It
    /// writes (`Decision::wrote`) only when `commit` and cost > 0, and then when the request is
    /// admitted (cost taken) or reconfigures (a write of its own, even when rejected: the reply's
    /// retry and reset then hold for the next calls). Without writing it replies as if
    /// reconfigured. A sliding log never grows past `max_log_entries` (see `SlidingLog::decide`).
    pub fn decide(&mut self, spec: &Spec, now: i64, cost: u64, commit: bool, max_log_entries: u64) -> Decision {
        match (self, spec) {
            (Limiter::TokenBucket(b), Spec::TokenBucket(p)) => b.decide(p, now, cost, commit),
            (Limiter::FixedWindow(w), Spec::FixedWindow(p)) => w.decide(p, now, cost, commit),
            (Limiter::SlidingLog(l), Spec::SlidingLog(p)) => l.decide(p, now, cost, commit, max_log_entries),
            (Limiter::Gcra(g), Spec::Gcra(p)) => g.decide(p, now, cost, commit),
            (Limiter::SlidingCounter(c), Spec::SlidingCounter(p)) => c.decide(p, now, cost, commit),
            (this, spec) => {
                let now = now.max(this.last_update_ms());
                let mut fresh = Limiter::new(spec, now);
                let mut decision = fresh.decide(spec, now, cost, commit, max_log_entries);
                if commit && cost > 0 {
                    *this = fresh;
                    decision.wrote = true;
                }
                decision
            }
        }
    }

    /// Moves the limiter's last update to `now` (when later) without changing any later decision:
    /// a write of the rules that leaves this one as it is still makes now the key's last update.
    pub fn advance(&mut self, now: i64) {
        match self {
            Limiter::TokenBucket(b) => b.advance(now),
            Limiter::FixedWindow(w) => w.advance(now),
            Limiter::SlidingLog(l) => l.advance(now),
            Limiter::Gcra(g) => g.advance(now),
            Limiter::SlidingCounter(c) => c.advance(now),
        }
    }

    /// The reply `decide` would give without writing (`commit` false), from a shared reference:
    /// a sliding log is judged in place, anything else is a few words to copy.
    pub fn peek(&self, spec: &Spec, now: i64, cost: u64) -> Decision {
        match (self, spec) {
            (Limiter::SlidingLog(log), Spec::SlidingLog(p)) => log.peek(p, now, cost),
            (Limiter::SlidingLog(log), _) => {
                Limiter::new(spec, now.max(log.last_ms())).decide(spec, now, cost, false, 0)
            }
            (this, spec) => this.clone().decide(spec, now, cost, false, 0),
        }
    }

    /// The parameters stored with this limiter (those of its last write).
    pub fn spec(&self) -> Spec {
        match self {
            Limiter::TokenBucket(b) => Spec::TokenBucket(b.params),
            Limiter::FixedWindow(w) => Spec::FixedWindow(w.params),
            Limiter::SlidingLog(l) => Spec::SlidingLog(l.params),
            Limiter::Gcra(g) => Spec::Gcra(g.params),
            Limiter::SlidingCounter(c) => Spec::SlidingCounter(c.params),
        }
    }

    /// What RL.INFO shows: the algorithm, its stored parameters, and its state seen at `now`
    /// (a COST 0 peek, so nothing changes).
    pub fn describe(&self, now: i64) -> Vec<(&'static str, Field)> {
        let spec = self.spec();
        let peek = Some(self.peek(&spec, now, 0));
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
            Limiter::SlidingCounter(c) => c.last_ms,
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
