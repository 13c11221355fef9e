//! Module configuration: set with `--loadmodule librl.so <name> <value> ...` or
//! `CONFIG SET rl.<name> <value>`, read with `CONFIG GET rl.*`. Registered in lib.rs.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

/// `max-sliding-entries`: the most entries one sliding log keeps (memory bound per key).
pub static MAX_SLIDING_ENTRIES: AtomicI64 = AtomicI64::new(DEFAULT_MAX_SLIDING_ENTRIES);
pub const DEFAULT_MAX_SLIDING_ENTRIES: i64 = 1_000_000;

/// `test-clock` (immutable, load time only): registers RL.TESTCLOCK for tests.
pub static TEST_CLOCK: AtomicBool = AtomicBool::new(false);

/// `test-panic` (immutable, load time only): registers RL.TESTPANIC, which panics inside a
/// command, to prove the panic hook logs before Redis aborts. Never in production.
pub static TEST_PANIC: AtomicBool = AtomicBool::new(false);

/// `bench-floor` (immutable, load time only): registers RL.BENCHFLOOR, the least a limiter write
/// does through the module API, which bench/run.py measures as the floor. Never in production.
pub static BENCH_FLOOR: AtomicBool = AtomicBool::new(false);

pub fn max_sliding_entries() -> u64 {
    MAX_SLIDING_ENTRIES.load(Ordering::Relaxed).max(1) as u64
}
