//! Per-command counters for `INFO rl`: plain atomics, bumped on the hot path without allocating.

use std::ffi::c_int;
use std::sync::atomic::{AtomicU64, Ordering};

use redis_module::raw;

use crate::request::Command;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Admitted,
    Rejected,
    /// DRYRUN or COST 0: answered, nothing written.
    Peek,
    Error,
}

const OUTCOMES: [(Kind, &str); 4] =
    [(Kind::Admitted, "admitted"), (Kind::Rejected, "rejected"), (Kind::Peek, "peeks"), (Kind::Error, "errors")];

static COUNTERS: [[AtomicU64; OUTCOMES.len()]; Command::ALL.len()] =
    [const { [const { AtomicU64::new(0) }; OUTCOMES.len()] }; Command::ALL.len()];

/// Only commands call it, on Redis's main thread, one at a time: a plain load and store (no locked
/// add) is exact.
pub fn record(command: Command, kind: Kind) {
    let counter = &COUNTERS[command as usize][kind as usize];
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

pub fn count(command: Command, kind: Kind) -> u64 {
    COUNTERS[command as usize][kind as usize].load(Ordering::Relaxed)
}

/// The `INFO rl` section: one line per command, e.g.
/// `rl_sliding:admitted=10,rejected=2,peeks=1,errors=0` (`rl_cl_throttle` for CL.THROTTLE).
pub unsafe extern "C" fn info(ctx: *mut raw::RedisModuleInfoCtx, _for_crash_report: c_int) {
    if raw::add_info_section(ctx, None) != raw::Status::Ok {
        return;
    }
    for command in Command::ALL {
        let name = command.name().trim_start_matches("RL.").replace('.', "_").to_ascii_lowercase();
        raw::add_info_begin_dict_field(ctx, &name);
        for (outcome, field) in OUTCOMES {
            raw::add_info_field_unsigned_long_long(ctx, field, count(command, outcome));
        }
        raw::add_info_end_dict_field(ctx);
    }
    raw::add_info_field_long_long(ctx, "policies", crate::policy::count() as i64);
}
