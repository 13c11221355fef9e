//! The `rlLimiter` Redis data type: registration and every callback Redis calls on a value
//! (RDB load/save, AOF rewrite, MEMORY USAGE, DEBUG DIGEST, COPY, free), plus the one
//! serialization they share. Untrusted bytes (RDB, RESTORE, AOF) are fully validated on decode.
//! A key's value is a `StoredLimiter` (stored.rs); the encoding is of the `Limiter` it holds.

use std::ffi::{c_int, c_void};
use std::os::raw::c_char;

use redis_module::{native_types::RedisType, raw};

use crate::algo::fixed_window::{self, FixedWindow};
use crate::algo::gcra::{self, Gcra};
use crate::algo::sliding_counter::{self, SlidingCounter};
use crate::algo::sliding_log::{self, SlidingLog};
use crate::algo::token_bucket::{self, TokenBucket};
use crate::algo::MAX_TIME_MS;
use crate::composite::Composite;
use crate::limiter::Limiter;
use crate::request::MAX_RULES;
use crate::stored::{StoredLimiter, Value};
use crate::varint;

/// RDB encoding version: one string buffer holding `encode(limiter)` in both. Version 2 adds tags
/// (a sliding log with its own last-update time); `decode` reads every tag of every version, so
/// `rdb_load` takes 1 and 2 alike, and an older module refuses a version-2 file cleanly.
pub const ENCODING_VERSION: i32 = 2;

/// Command that recreates a value from its encoding: emitted by the AOF rewrite, replicated when a
/// string is taken over, registered in commands.rs.
pub const LOAD_COMMAND: &std::ffi::CStr = c"RL.LOADSTATE";

pub static LIMITER_TYPE: RedisType = RedisType::new(
    "rlLimiter",
    ENCODING_VERSION,
    raw::RedisModuleTypeMethods {
        version: raw::REDISMODULE_TYPE_METHOD_VERSION as u64,
        rdb_load: Some(rdb_load),
        rdb_save: Some(rdb_save),
        aof_rewrite: Some(aof_rewrite),
        mem_usage: Some(mem_usage),
        digest: Some(digest),
        free: Some(free),
        aux_load: Some(crate::policy::aux_load),
        aux_save: Some(crate::policy::aux_save),
        aux_save_triggers: raw::REDISMODULE_AUX_BEFORE_RDB as i32,
        free_effort: None,
        unlink: None,
        copy: Some(copy),
        defrag: None,
        mem_usage2: None,
        free_effort2: None,
        unlink2: None,
        copy2: None,
        aux_save2: None,
    },
);

const TAG_TOKEN_BUCKET: u64 = 1;
const TAG_FIXED_WINDOW: u64 = 2;
/// Version 1: the last update is the newest entry's time (read, no longer written).
const TAG_SLIDING_LOG_V1: u64 = 3;
const TAG_GCRA: u64 = 4;
/// Version 2: `limit, window_ms, window_start_ms, curr, prev, last_ms`.
const TAG_SLIDING_COUNTER: u64 = 5;
/// Version 2: `limit, window_ms, last_ms, entries...` (a reconfiguration is a write with no entry).
const TAG_SLIDING_LOG: u64 = 6;
/// Version 2: RL.LIMIT's rules: `count`, then each rule's encoding prefixed by its length.
const TAG_RULES: u64 = 7;

/// Canonical bytes of a value: varints `tag, parameters..., state...`; for a sliding log the
/// state is its last update, then its entries as `(ms since the previous entry, cost)` pairs, the
/// first relative to 0. Two values in the same logical state encode identically (DEBUG DIGEST).
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(48);
    match value {
        Value::One(limiter) => encode_limiter(&mut out, limiter),
        Value::Rules(rules) => {
            varint::write(&mut out, TAG_RULES);
            varint::write(&mut out, rules.rules.len() as u64);
            let mut rule = Vec::new();
            for limiter in &rules.rules {
                rule.clear();
                encode_limiter(&mut rule, limiter);
                varint::write(&mut out, rule.len() as u64);
                out.extend_from_slice(&rule);
            }
        }
    }
    out
}

fn encode_limiter(out: &mut Vec<u8>, limiter: &Limiter) {
    let mut put = |value: u64| varint::write(out, value);
    match limiter {
        Limiter::TokenBucket(b) => {
            let p = b.params;
            for v in
                [TAG_TOKEN_BUCKET, p.capacity, p.refill_tokens, p.refill_ms, b.tokens, b.fraction, b.last_ms as u64]
            {
                put(v);
            }
        }
        Limiter::FixedWindow(w) => {
            let p = w.params;
            for v in [TAG_FIXED_WINDOW, p.limit, p.window_ms, w.window_start_ms as u64, w.count, w.last_ms as u64] {
                put(v);
            }
        }
        Limiter::Gcra(g) => {
            let p = g.params;
            for v in [TAG_GCRA, p.burst, p.rate, p.period_ms, g.tat_ms as u64, g.tat_fraction, g.last_ms as u64] {
                put(v);
            }
        }
        Limiter::SlidingCounter(c) => {
            let p = c.params;
            for v in
                [TAG_SLIDING_COUNTER, p.limit, p.window_ms, c.window_start_ms as u64, c.curr, c.prev, c.last_ms as u64]
            {
                put(v);
            }
        }
        Limiter::SlidingLog(log) => {
            for v in [TAG_SLIDING_LOG, log.params.limit, log.params.window_ms, log.last_ms() as u64] {
                put(v);
            }
            let mut previous = 0i64;
            for (time, cost) in log.entries() {
                put((time - previous) as u64);
                put(cost);
                previous = time;
            }
        }
    }
}

/// Inverse of `encode`; None for anything `encode` could not have produced.
pub fn decode(bytes: &[u8]) -> Option<Value> {
    let mut pos = 0;
    if varint::read(bytes, &mut pos)? != TAG_RULES {
        return decode_limiter(bytes, false).map(Value::One);
    }
    let count = varint::read(bytes, &mut pos)?;
    if !(1..=MAX_RULES as u64).contains(&count) {
        return None;
    }
    let mut rules = Vec::new();
    for _ in 0..count {
        let len = usize::try_from(varint::read(bytes, &mut pos)?).ok()?;
        let rule = bytes.get(pos..pos.checked_add(len)?)?;
        pos += len;
        rules.push(decode_limiter(rule, true)?);
    }
    (pos == bytes.len()).then_some(Value::Rules(Composite { rules }))
}

/// One limiter's encoding. `idle_log` accepts a sliding log with no entries (an idle rule of
/// RL.LIMIT; a key holding one limiter is deleted when it is idle).
fn decode_limiter(bytes: &[u8], idle_log: bool) -> Option<Limiter> {
    let mut pos = 0;
    let mut next = || varint::read(bytes, &mut pos);
    let time = |v: u64| i64::try_from(v).ok();
    let limiter = match next()? {
        TAG_TOKEN_BUCKET => {
            let params = token_bucket::Params { capacity: next()?, refill_tokens: next()?, refill_ms: next()? };
            let bucket = TokenBucket { params, tokens: next()?, fraction: next()?, last_ms: time(next()?)? };
            bucket.is_valid().then_some(Limiter::TokenBucket(bucket))?
        }
        TAG_FIXED_WINDOW => {
            let params = fixed_window::Params { limit: next()?, window_ms: next()? };
            let window =
                FixedWindow { params, window_start_ms: time(next()?)?, count: next()?, last_ms: time(next()?)? };
            window.is_valid().then_some(Limiter::FixedWindow(window))?
        }
        TAG_GCRA => {
            let params = gcra::Params { burst: next()?, rate: next()?, period_ms: next()? };
            let g = Gcra { params, tat_ms: time(next()?)?, tat_fraction: next()?, last_ms: time(next()?)? };
            g.is_valid().then_some(Limiter::Gcra(g))?
        }
        TAG_SLIDING_COUNTER => {
            let params = sliding_counter::Params { limit: next()?, window_ms: next()? };
            let (window_start_ms, curr, prev, last_ms) = (time(next()?)?, next()?, next()?, time(next()?)?);
            let counter = SlidingCounter { params, curr, prev, window_start_ms, last_ms };
            counter.is_valid().then_some(Limiter::SlidingCounter(counter))?
        }
        tag @ (TAG_SLIDING_LOG | TAG_SLIDING_LOG_V1) => {
            let params = sliding_log::Params { limit: next()?, window_ms: next()? };
            params.validate().ok()?;
            let last_ms = if tag == TAG_SLIDING_LOG { Some(time(next()?)?) } else { None };
            if pos == bytes.len() {
                // No entries: only an idle rule, which has a last update of its own.
                let last_ms = last_ms.filter(|t| idle_log && (0..=MAX_TIME_MS).contains(t))?;
                return Some(Limiter::SlidingLog(SlidingLog::new(params, last_ms)));
            }
            // Entries go straight into the log as they are read: loading needs memory for the
            // payload and the resulting log, never an intermediate list.
            let mut malformed = false;
            let mut previous = 0i64;
            let entries = std::iter::from_fn(|| {
                if pos == bytes.len() {
                    return None;
                }
                let entry = varint::read(bytes, &mut pos).and_then(|delta| {
                    previous = previous.checked_add(time(delta)?)?;
                    Some((previous, varint::read(bytes, &mut pos)?))
                });
                malformed |= entry.is_none();
                entry
            });
            let log = SlidingLog::from_entries(params, last_ms, entries)?;
            if malformed {
                return None;
            }
            Limiter::SlidingLog(log)
        }
        _ => return None,
    };
    // Trailing bytes mean a corrupt or foreign payload.
    (pos == bytes.len()).then_some(limiter)
}

unsafe extern "C" fn rdb_load(rdb: *mut raw::RedisModuleIO, encver: c_int) -> *mut c_void {
    if !(1..=ENCODING_VERSION).contains(&encver) {
        return std::ptr::null_mut();
    }
    let Ok(buffer) = raw::load_string_buffer(rdb) else {
        return std::ptr::null_mut();
    };
    match decode(buffer.as_ref()) {
        Some(value) => Box::into_raw(Box::new(StoredLimiter::pack(value))).cast(),
        None => {
            // Verbose: a client sending bad RESTORE payloads in a loop must not flood the log.
            crate::log::log_io(rdb, c"verbose", "rl: refusing to load a corrupt limiter value");
            std::ptr::null_mut()
        }
    }
}

unsafe extern "C" fn rdb_save(rdb: *mut raw::RedisModuleIO, value: *mut c_void) {
    raw::save_slice(rdb, &encode(&stored(value).value()));
}

unsafe extern "C" fn aof_rewrite(aof: *mut raw::RedisModuleIO, key: *mut raw::RedisModuleString, value: *mut c_void) {
    let state = encode(&stored(value).value());
    if let Some(emit) = raw::RedisModule_EmitAOF {
        // Redis appends the key's PEXPIREAT itself after this.
        emit(aof, LOAD_COMMAND.as_ptr(), c"sb".as_ptr(), key, state.as_ptr().cast::<c_char>(), state.len());
    }
}

unsafe extern "C" fn mem_usage(value: *const c_void) -> usize {
    stored(value).mem_usage()
}

unsafe extern "C" fn digest(md: *mut raw::RedisModuleDigest, value: *mut c_void) {
    let state = encode(&stored(value).value());
    if let (Some(add), Some(end)) = (raw::RedisModule_DigestAddStringBuffer, raw::RedisModule_DigestEndSequence) {
        add(md, state.as_ptr().cast::<c_char>(), state.len());
        end(md);
    }
}

unsafe extern "C" fn free(value: *mut c_void) {
    drop(Box::from_raw(value.cast::<StoredLimiter>()));
}

unsafe extern "C" fn copy(
    _from: *mut raw::RedisModuleString,
    _to: *mut raw::RedisModuleString,
    value: *const c_void,
) -> *mut c_void {
    Box::into_raw(Box::new(stored(value).clone())).cast()
}

/// The value Redis hands a callback: always one this module created.
unsafe fn stored<'a>(value: *const c_void) -> &'a StoredLimiter {
    &*value.cast::<StoredLimiter>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::Spec;

    #[test]
    fn every_algorithm_round_trips_and_garbage_is_refused() {
        let specs = [
            Spec::TokenBucket(token_bucket::Params { capacity: 10, refill_tokens: 3, refill_ms: 7 }),
            Spec::FixedWindow(fixed_window::Params { limit: 5, window_ms: 1000 }),
            Spec::SlidingLog(sliding_log::Params { limit: 50, window_ms: 1000 }),
            Spec::Gcra(gcra::Params { burst: 9, rate: 3, period_ms: 1000 }),
            Spec::SlidingCounter(sliding_counter::Params { limit: 50, window_ms: 100 }),
        ];
        let mut values = Vec::new();
        for spec in specs {
            let mut limiter = Limiter::new(&spec, 1_700_000_000_000);
            for t in 0..20 {
                limiter.decide(&spec, 1_700_000_000_000 + t * 13, 2, true, u64::MAX);
            }
            values.push(Value::One(limiter));
        }
        // Every rule of RL.LIMIT, one of them idle (a sliding log with no entry).
        let mut rules = Composite::new(&specs, 1_700_000_000_000);
        rules.decide(&specs[..4], 1_700_000_000_000 + 5, 1, true, u64::MAX);
        rules.rules.push(Limiter::new(&specs[2], 1_700_000_000_000 + 9));
        values.push(Value::Rules(rules));
        for limiter in values {
            let spec = limiter.description();
            let bytes = encode(&limiter);
            assert_eq!(decode(&bytes).as_ref(), Some(&limiter));
            for cut in 0..bytes.len() {
                assert!(decode(&bytes[..cut]).is_none_or(|l| encode(&l) == bytes[..cut]), "{spec:?} cut {cut}");
            }
            let mut trailing = bytes.clone();
            trailing.push(0);
            assert!(decode(&trailing).is_none());
        }
        assert!(decode(&[]).is_none());
        assert!(decode(&[9, 1, 1]).is_none());
        // A bucket holding more tokens than its capacity.
        assert!(decode(&[1, 5, 1, 1, 6, 0, 0]).is_none());
        // An idle sliding log stands only as a rule; no rules, or seventeen, are refused.
        assert!(decode(&[6, 5, 1, 9]).is_none());
        assert!(decode(&[7, 1, 4, 6, 5, 1, 9]).is_some());
        assert!(decode(&[7, 0]).is_none());
        let seventeen: Vec<u8> = [7, 17].into_iter().chain((0..17).flat_map(|_| [4, 6, 5, 1, 9])).collect();
        assert!(decode(&seventeen).is_none());
    }
}
