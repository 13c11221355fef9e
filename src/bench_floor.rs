//! `RL.BENCHFLOOR key`: the least a limiter write does through the module API, so bench/run.py can
//! tell what Redis itself costs per call from what the module adds. Registered only when the module
//! is loaded with `bench-floor yes` (commands.rs). Per call it:
//! - opens the key for writing and checks its type (a limiter must not overwrite another type);
//! - stores a 32-byte value of the module's type: a packed fixed window (limit u32::MAX, 60 s
//!   window), its count + 1 in place when the key holds one for the current window, so the value
//!   persists, frees, digests and shows in RL.INFO like any limiter;
//! - sets an absolute expiry 60 s ahead, and signals the key modified (as every write must);
//! - replicates `RL.FIXED key 4294967295 60000 AT <ms>`: as many arguments as an RL.* write
//!   replicates, and a real command a replica applies (it ends with the same window and count; its
//!   TTL is the window's end, as RL.FIXED sets it, not 60 s);
//! - replies with 5 integers, like a limiter.
//!
//! No argument parsing, no algorithm, no stats, no keyspace event: whatever RL.* costs above this
//! is the module's own share.
//!
//! `RL.BENCHFLOOR key BOXED` creates the key's value in the boxed form instead (the 32 bytes point
//! to a 192-byte `Value`, as a sliding log past 3 entries or an RL.LIMIT key is held), and updates
//! its fields in place; `PACKED` is the default spelled out, the same argument count. Together they
//! measure what a value outside the 32-byte size class costs with nothing else changed
//! (bench/log_sizes.py).

use std::ffi::{c_int, CStr};
use std::sync::atomic::{AtomicPtr, Ordering};

use redis_module::raw::{self, RedisModuleCtx, RedisModuleKey, RedisModuleString};

use crate::clock;
use crate::datatype::LIMITER_TYPE;
use crate::ffi::string_bytes;
use crate::limiter::Limiter;
use crate::replicate::Form;
use crate::stored::{StoredLimiter, Value};

const OK: c_int = raw::REDISMODULE_OK as c_int;
const TTL_MS: i64 = 60_000;
const WINDOW_MS: u32 = 60_000;
const LIMIT: u32 = u32::MAX;

/// The replicated limit and window, created at load (`create_words`).
static LIMIT_WORD: AtomicPtr<RedisModuleString> = AtomicPtr::new(std::ptr::null_mut());
static WINDOW_WORD: AtomicPtr<RedisModuleString> = AtomicPtr::new(std::ptr::null_mut());

/// Creates the words of the replicated form; false if the server could not.
pub fn create_words() -> bool {
    let Some(create) = (unsafe { raw::RedisModule_CreateString }) else { return false };
    let limit = LIMIT.to_string();
    let window = WINDOW_MS.to_string();
    for (word, text) in [(&LIMIT_WORD, limit.as_str()), (&WINDOW_WORD, window.as_str())] {
        let s = unsafe { create(std::ptr::null_mut(), text.as_ptr().cast(), text.len()) };
        if s.is_null() {
            return false;
        }
        word.store(s, Ordering::Relaxed);
    }
    true
}

fn window_start(now: i64) -> i64 {
    now - now.rem_euclid(i64::from(WINDOW_MS))
}

/// The count after this call: one more than the floor's window the key holds (count, start) when
/// that is the current one, else 1.
fn next_count(old: Option<(u32, i64)>, now: i64) -> u32 {
    match old {
        Some((count, start)) if start == window_start(now) => count.saturating_add(1),
        _ => 1,
    }
}

fn window(count: u32, now: i64) -> StoredLimiter {
    StoredLimiter::FixedWindow {
        limit: LIMIT,
        window_ms: WINDOW_MS,
        count,
        window_start_ms: window_start(now),
        last_ms: now,
    }
}

pub unsafe extern "C" fn bench_floor(
    ctx: *mut RedisModuleCtx,
    argv: *mut *mut RedisModuleString,
    argc: c_int,
) -> c_int {
    if argv.is_null() || !(2..=3).contains(&argc) {
        return error(ctx, c"ERR wrong number of arguments for 'RL.BENCHFLOOR' command");
    }
    let form = (argc == 3).then(|| string_bytes(*argv.add(2)));
    let boxed = match form {
        None => false,
        Some(word) if word.eq_ignore_ascii_case(b"PACKED") => false,
        Some(word) if word.eq_ignore_ascii_case(b"BOXED") => true,
        Some(_) => return error(ctx, c"ERR the value's form is PACKED or BOXED"),
    };
    let (
        Some(open),
        Some(close),
        Some(key_type),
        Some(get_type),
        Some(get_value),
        Some(set_value),
        Some(set_expire),
        Some(signal),
    ) = (
        raw::RedisModule_OpenKey,
        raw::RedisModule_CloseKey,
        raw::RedisModule_KeyType,
        raw::RedisModule_ModuleTypeGetType,
        raw::RedisModule_ModuleTypeGetValue,
        raw::RedisModule_ModuleTypeSetValue,
        raw::RedisModule_SetAbsExpire,
        raw::RedisModule_SignalModifiedKey,
    )
    else {
        return error(ctx, c"ERR the server lacks a module API RL.BENCHFLOOR needs");
    };
    let name = *argv.add(1);
    let key: *mut RedisModuleKey = open(ctx, name, (raw::REDISMODULE_READ | raw::REDISMODULE_WRITE) as c_int).cast();
    if key.is_null() {
        return error(ctx, c"ERR could not open the key");
    }
    let now = clock::now_ms();
    let limiter_type = *LIMITER_TYPE.raw_type.borrow();
    let mut count = 1;
    if key_type(key) == raw::REDISMODULE_KEYTYPE_EMPTY as c_int {
        let packed = window(count, now);
        let stored = if boxed { StoredLimiter::Boxed(Box::new(packed.value().into_owned())) } else { packed };
        let value = Box::into_raw(Box::new(stored));
        if set_value(key, limiter_type, value.cast()) != OK {
            drop(Box::from_raw(value));
        }
    } else {
        let stored = if get_type(key) == limiter_type { get_value(key).cast::<StoredLimiter>().as_mut() } else { None };
        let Some(stored) = stored else {
            close(key);
            return error(ctx, c"WRONGTYPE Operation against a key holding the wrong kind of value");
        };
        match stored {
            // Whatever this call's form word: a boxed window of the floor's is updated field by
            // field, as an algorithm updates a boxed value; anything else boxed is replaced by the
            // floor's window (no allocation).
            StoredLimiter::Boxed(value) => match &mut **value {
                Value::One(Limiter::FixedWindow(w)) if w.params.window_ms == u64::from(WINDOW_MS) => {
                    count = next_count(u32::try_from(w.count).ok().map(|count| (count, w.window_start_ms)), now);
                    (w.count, w.window_start_ms, w.last_ms) = (count.into(), window_start(now), now);
                }
                other => *other = window(count, now).value().into_owned(),
            },
            packed => {
                let old = match *packed {
                    StoredLimiter::FixedWindow { count, window_start_ms, window_ms: WINDOW_MS, .. } => {
                        Some((count, window_start_ms))
                    }
                    _ => None,
                };
                count = next_count(old, now);
                *packed = window(count, now);
            }
        }
    }
    set_expire(key, now + TTL_MS);
    close(key);
    // A write must be signalled (WATCH, client tracking), as every RL.* write is.
    signal(ctx, name);
    let mut form = Form::new();
    form.push(name);
    form.push(LIMIT_WORD.load(Ordering::Relaxed));
    form.push(WINDOW_WORD.load(Ordering::Relaxed));
    form.options(1, now, None);
    form.send(ctx, c"RL.FIXED");
    raw::reply_with_array(ctx, 5);
    for value in [1, i64::from(LIMIT), i64::from(LIMIT - count), -1, TTL_MS] {
        raw::reply_with_long_long(ctx, value);
    }
    OK
}

unsafe fn error(ctx: *mut RedisModuleCtx, message: &CStr) -> c_int {
    if let Some(reply) = raw::RedisModule_ReplyWithError {
        reply(ctx, message.as_ptr());
    }
    OK
}
