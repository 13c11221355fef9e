//! The module's notion of now, and who may pin it: server time in ms (or the test clock), and
//! whether a call comes from the master link or AOF loading, which always may use `AT`.

use std::ffi::c_int;
use std::sync::atomic::{AtomicI64, Ordering};

use redis_module::raw::{self, RedisModuleCtx};

/// The clock pinned by `RL.TESTCLOCK` (tests only), or -1 for the server clock.
static PINNED_CLOCK_MS: AtomicI64 = AtomicI64::new(-1);

pub fn pin(ms: Option<i64>) {
    PINNED_CLOCK_MS.store(ms.unwrap_or(-1), Ordering::Relaxed);
}

/// Server time in ms: the per-command cached clock where the server has it (7.2+), else the live one.
pub fn now_ms() -> i64 {
    let pinned = PINNED_CLOCK_MS.load(Ordering::Relaxed);
    if pinned >= 0 {
        return pinned;
    }
    unsafe {
        if let Some(cached) = raw::RedisModule_CachedMicroseconds {
            return cached() / 1000;
        }
        raw::RedisModule_Milliseconds.map_or(0, |ms| ms())
    }
}

/// Whether the call is replayed from the master link or the AOF: its AT and CAP are the master's
/// decision and are taken as they are.
pub unsafe fn from_master_or_aof(ctx: *mut RedisModuleCtx) -> bool {
    let flags = raw::RedisModule_GetContextFlags.map_or(0, |get| get(ctx));
    flags & (raw::REDISMODULE_CTX_FLAGS_REPLICATED | raw::REDISMODULE_CTX_FLAGS_LOADING) as c_int != 0
}
