//! Command glue, one generic path for every algorithm: parse, open the key, check its type,
//! decide, write back with an absolute expiry, replicate a deterministic form, reply.
//! Handlers are registered raw (see commands.rs): arguments are read in place, with no
//! RedisString wrapper (retain + free) per argument.

use std::ffi::{c_int, c_void, CString};
use std::os::raw::{c_char, c_longlong};
use std::slice;
use std::sync::atomic::{AtomicI64, AtomicPtr, Ordering};

use redis_module::raw::{self, RedisModuleCtx, RedisModuleKey, RedisModuleString};

use crate::algo::Decision;
use crate::datatype::{self, LIMITER_TYPE};
use crate::limiter::{Field, Limiter};
use crate::request::{Command, ReplyFormat, Request};
use crate::stats::{self, Outcome};
use crate::stored::StoredLimiter;

const OK: c_int = raw::REDISMODULE_OK as c_int;
const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

pub unsafe extern "C" fn token_bucket(
    ctx: *mut RedisModuleCtx,
    argv: *mut *mut RedisModuleString,
    argc: c_int,
) -> c_int {
    run(ctx, argv, argc, Command::TokenBucket)
}

pub unsafe extern "C" fn fixed_window(
    ctx: *mut RedisModuleCtx,
    argv: *mut *mut RedisModuleString,
    argc: c_int,
) -> c_int {
    run(ctx, argv, argc, Command::Fixed)
}

pub unsafe extern "C" fn sliding_log(
    ctx: *mut RedisModuleCtx,
    argv: *mut *mut RedisModuleString,
    argc: c_int,
) -> c_int {
    run(ctx, argv, argc, Command::Sliding)
}

pub unsafe extern "C" fn gcra(ctx: *mut RedisModuleCtx, argv: *mut *mut RedisModuleString, argc: c_int) -> c_int {
    run(ctx, argv, argc, Command::Gcra)
}

/// redis-cell's CL.THROTTLE on the same GCRA code; replicated as RL.GCRA with AT.
pub unsafe extern "C" fn cl_throttle(
    ctx: *mut RedisModuleCtx,
    argv: *mut *mut RedisModuleString,
    argc: c_int,
) -> c_int {
    run(ctx, argv, argc, Command::ClThrottle)
}

/// `RL.INFO key`: the stored algorithm, parameters and state as a map (flat array in RESP2);
/// nil for an absent key. Read-only: opened without touching the key's LRU/LFU.
pub unsafe extern "C" fn info(ctx: *mut RedisModuleCtx, argv: *mut *mut RedisModuleString, argc: c_int) -> c_int {
    let args = arguments(argv, argc);
    if args.len() != 2 {
        return reply_error(ctx, "ERR wrong number of arguments for 'RL.INFO' command");
    }
    let key = Key::open_read(ctx, args[1]);
    if key.is_empty() {
        raw::reply_with_null(ctx);
        return OK;
    }
    let Some(stored) = key.stored_limiter() else {
        return reply_error(ctx, WRONGTYPE);
    };
    let mut fields = stored.limiter().describe(clock_ms());
    fields.push(("ttl_ms", Field::Int(key.ttl_ms())));
    raw::reply_with_map(ctx, fields.len() as i64);
    for (name, value) in fields {
        raw::reply_with_string_buffer(ctx, name.as_ptr().cast(), name.len());
        match value {
            Field::Int(v) => raw::reply_with_long_long(ctx, v),
            Field::Text(t) => raw::reply_with_string_buffer(ctx, t.as_ptr().cast(), t.len()),
        };
    }
    OK
}

/// The clock pinned by `RL.TESTCLOCK` (tests only), or -1 for the server clock.
static PINNED_CLOCK_MS: AtomicI64 = AtomicI64::new(-1);

/// `RL.TESTCLOCK <ms> | OFF`: pins the module's clock, for testing commands without AT
/// (CL.THROTTLE). Registered only when the module is loaded with `test-clock yes`.
pub unsafe extern "C" fn test_clock(ctx: *mut RedisModuleCtx, argv: *mut *mut RedisModuleString, argc: c_int) -> c_int {
    let args = arguments(argv, argc);
    let value = match args.get(1).map(|&a| string_bytes(a)) {
        Some(v) if args.len() == 2 && v.eq_ignore_ascii_case(b"OFF") => -1,
        Some(v) if args.len() == 2 => match std::str::from_utf8(v).ok().and_then(|v| v.parse::<i64>().ok()) {
            Some(ms) if (0..=crate::algo::MAX_TIME_MS).contains(&ms) => ms,
            _ => return reply_error(ctx, "ERR RL.TESTCLOCK takes a Unix time in ms or OFF"),
        },
        _ => return reply_error(ctx, "ERR wrong number of arguments for 'RL.TESTCLOCK' command"),
    };
    PINNED_CLOCK_MS.store(value, Ordering::Relaxed);
    raw::RedisModule_ReplyWithSimpleString.map_or(OK, |f| f(ctx, c"OK".as_ptr()))
}

/// `RL.TESTPANIC`: panics, so tests can check the panic hook logs before Redis aborts.
/// Registered only when the module is loaded with `test-panic yes`.
#[allow(clippy::panic)]
pub unsafe extern "C" fn test_panic(
    _ctx: *mut RedisModuleCtx,
    _argv: *mut *mut RedisModuleString,
    _argc: c_int,
) -> c_int {
    panic!("RL.TESTPANIC was called");
}

/// `RL.LOADSTATE key state`: replaces the key's value with a serialized limiter. Emitted by the
/// AOF rewrite; the state is validated like an RDB value, so a bad payload is an error, never a crash.
pub unsafe extern "C" fn load_state(ctx: *mut RedisModuleCtx, argv: *mut *mut RedisModuleString, argc: c_int) -> c_int {
    let args = arguments(argv, argc);
    if args.len() != 3 {
        return reply_error(
            ctx,
            &format!("ERR wrong number of arguments for '{}' command", datatype::LOAD_COMMAND.to_string_lossy()),
        );
    }
    let Some(limiter) = datatype::decode(string_bytes(args[2])) else {
        return reply_error(ctx, "ERR state is not a valid rl limiter encoding");
    };
    let key = Key::open(ctx, args[1]);
    if !key.is_empty() && key.stored_limiter().is_none() {
        return reply_error(ctx, WRONGTYPE);
    }
    key.set_limiter(limiter);
    notify(ctx, c"rl.loadstate", args[1]);
    raw::RedisModule_ReplicateVerbatim.map(|f| f(ctx));
    raw::RedisModule_ReplyWithSimpleString.map_or(OK, |f| f(ctx, c"OK".as_ptr()))
}

unsafe fn run(ctx: *mut RedisModuleCtx, argv: *mut *mut RedisModuleString, argc: c_int, command: Command) -> c_int {
    let args = arguments(argv, argc);
    // A valid call has at most 9 arguments after the name: no allocation for those.
    let mut on_stack: [&[u8]; 12] = [&[]; 12];
    let on_heap: Vec<&[u8]>;
    let bytes: &[&[u8]] = if args.len() <= on_stack.len() {
        for (slot, &arg) in on_stack.iter_mut().zip(args.iter().skip(1)) {
            *slot = string_bytes(arg);
        }
        &on_stack[..args.len().saturating_sub(1)]
    } else {
        on_heap = args.iter().skip(1).map(|&arg| string_bytes(arg)).collect();
        &on_heap
    };
    let outcome = match command.parse(bytes) {
        // parse() requires the key, so args[1] exists.
        Ok(request) if args.len() > 1 => execute(ctx, args, command, &request).map(|decision| (request, decision)),
        Ok(_) => Err("ERR wrong number of arguments".into()),
        Err(message) => Err(message),
    };
    match outcome {
        Ok((request, decision)) => {
            let kind = match (decision.allowed, request.dryrun || request.cost == 0) {
                (true, false) => Outcome::Admitted,
                (false, false) => Outcome::Rejected,
                (_, true) => Outcome::Peek,
            };
            stats::record(command, kind);
            if kind == Outcome::Admitted {
                notify(ctx, command.event(), args[1]);
            }
            reply_decision(ctx, request.reply, &decision)
        }
        Err(message) => {
            stats::record(command, Outcome::Error);
            reply_error(ctx, &message)
        }
    }
}

/// A keyspace event of the module class for an admitted write (`notify-keyspace-events` with `d`).
unsafe fn notify(ctx: *mut RedisModuleCtx, event: &std::ffi::CStr, key: *mut RedisModuleString) {
    if let Some(notify) = raw::RedisModule_NotifyKeyspaceEvent {
        notify(ctx, raw::REDISMODULE_NOTIFY_MODULE as c_int, event.as_ptr(), key);
    }
}

/// Decides `request` on the key at args[1]; writes, expires and replicates an admitted write.
unsafe fn execute(
    ctx: *mut RedisModuleCtx,
    args: &[*mut RedisModuleString],
    command: Command,
    request: &Request,
) -> Result<Decision, String> {
    let key = Key::open(ctx, args[1]);
    let now = request.at_ms.unwrap_or_else(clock_ms);
    let cost = request.cost;
    let commit = !request.dryrun && cost > 0;
    let max_entries = crate::config::max_sliding_entries();
    let algorithm = request.spec.algorithm();
    // A limiter redis-cell left in a string key, for CL.THROTTLE: taken over on the first write.
    let cell_tat_ns = if command.adopts_cell_keys() { key.string_integer(ctx, args[1]) } else { None };
    // The state that replaces such a string, replicated as a whole (a replica's RL.GCRA would
    // refuse the string).
    let mut taken_over: Option<Vec<u8>> = None;
    let decision = if key.is_empty() || cell_tat_ns.is_some() {
        let mut limiter = match cell_tat_ns {
            Some(tat_ns) => Limiter::from_cell(&request.spec, tat_ns, now),
            None => Some(Limiter::new(&request.spec, now)),
        }
        .ok_or("ERR time out of range")?;
        let decision =
            limiter.decide(&request.spec, now, cost, commit, max_entries).ok_or("ERR internal algorithm mismatch")?;
        if decision.allowed && commit {
            taken_over = cell_tat_ns.map(|_| datatype::encode(&limiter));
            key.set_limiter(limiter);
        }
        decision
    } else {
        let stored = key.stored_limiter().ok_or(WRONGTYPE)?;
        stored.update(|limiter| limiter.decide(&request.spec, now, cost, commit, max_entries)).ok_or_else(|| {
            format!(
                "WRONGTYPE key holds {} limiter; {} needs {} limiter",
                stored.algorithm().description(),
                algorithm.command(),
                algorithm.description()
            )
        })?
    };
    if decision.allowed && commit {
        let expire_at = decision.at_ms + decision.reset_after_ms;
        key.set_abs_expire(expire_at);
        match taken_over {
            Some(state) => replicate_replacement(ctx, args[1], &state, expire_at),
            None => replicate(ctx, args, command, request, decision.at_ms),
        }
    }
    Ok(decision)
}

/// Replicas and the AOF get the same call with the effective time pinned by AT, so they reach
/// exactly the master's state whatever their clock and however late they apply it.
/// Built from strings that already exist (the caller's arguments, the words below) with the `v`
/// format, so the common case creates no string (the AT value is reused while the ms repeats):
/// RM_Replicate's `l`/`c` formats allocate per argument and dominated the command's cost.
unsafe fn replicate(
    ctx: *mut RedisModuleCtx,
    args: &[*mut RedisModuleString],
    command: Command,
    request: &Request,
    at_ms: i64,
) {
    let (Some(replicate), Some(from_number), Some(free)) =
        (raw::RedisModule_Replicate, raw::RedisModule_CreateStringFromLongLong, raw::RedisModule_FreeString)
    else {
        return;
    };
    // Created at load, which fails without them (`create_replication_words`).
    let [cost_word, at_word, one] = [&COST_WORD, &AT_WORD, &ONE_WORD].map(|w| w.load(Ordering::Relaxed));
    // Strings created here (at most 3 parameters and the cost), freed after replicating.
    let mut owned: [*mut RedisModuleString; 4] = [std::ptr::null_mut(); 4];
    let mut owned_count = 0;
    let mut number = |value: u64| {
        let s = from_number(std::ptr::null_mut(), value as c_longlong);
        owned[owned_count] = s;
        owned_count += 1;
        s
    };
    let mut argv: [*mut RedisModuleString; 8] = [std::ptr::null_mut(); 8];
    argv[0] = args[1];
    let (values, count) = request.spec.positional();
    for i in 0..count {
        // RL.* parameters replicate as sent (parsed strictly, so they read back identically);
        // CL.THROTTLE's are converted (seconds to ms), so they are spelled out.
        argv[1 + i] = if command.replicates_own_parameters() { args[2 + i] } else { number(values[i]) };
    }
    argv[1 + count] = cost_word;
    argv[2 + count] = if request.cost == 1 { one } else { number(request.cost) };
    argv[3 + count] = at_word;
    argv[4 + count] = at_string(at_ms, from_number, free);
    replicate(ctx, request.spec.algorithm().command_cstr().as_ptr(), c"v".as_ptr(), argv.as_mut_ptr(), 5 + count);
    for s in owned.into_iter().filter(|s| !s.is_null()) {
        free(std::ptr::null_mut(), s);
    }
}

/// A string key replaced by a limiter: `DEL`, `RL.LOADSTATE` of the new state, `PEXPIREAT`, which
/// Redis wraps in MULTI/EXEC. Rare (once per key taken over), so allocating here is fine.
unsafe fn replicate_replacement(ctx: *mut RedisModuleCtx, key: *mut RedisModuleString, state: &[u8], expire_at: i64) {
    let Some(replicate) = raw::RedisModule_Replicate else { return };
    replicate(ctx, c"DEL".as_ptr(), c"s".as_ptr(), key);
    replicate(ctx, datatype::LOAD_COMMAND.as_ptr(), c"sb".as_ptr(), key, state.as_ptr().cast::<c_char>(), state.len());
    replicate(ctx, c"PEXPIREAT".as_ptr(), c"sl".as_ptr(), key, expire_at as c_longlong);
}

/// The replicated AT value as a string, reused while calls share the same ms (most do under load).
/// Redis takes its own reference to what it replicates, so replacing the cached one is safe.
pub(crate) unsafe fn at_string(
    at_ms: i64,
    from_number: unsafe extern "C" fn(*mut RedisModuleCtx, c_longlong) -> *mut RedisModuleString,
    free: unsafe extern "C" fn(*mut RedisModuleCtx, *mut RedisModuleString),
) -> *mut RedisModuleString {
    let cached = LAST_AT.load(Ordering::Relaxed);
    if cached.is_null() || LAST_AT_MS.load(Ordering::Relaxed) != at_ms {
        let fresh = from_number(std::ptr::null_mut(), at_ms as c_longlong);
        if !cached.is_null() {
            free(std::ptr::null_mut(), cached);
        }
        LAST_AT.store(fresh, Ordering::Relaxed);
        LAST_AT_MS.store(at_ms, Ordering::Relaxed);
        return fresh;
    }
    cached
}

// Only touched from commands, which Redis runs one at a time on its main thread.
static LAST_AT: AtomicPtr<RedisModuleString> = AtomicPtr::new(std::ptr::null_mut());
static LAST_AT_MS: AtomicI64 = AtomicI64::new(-1);

/// Words of the replicated form, created once at load (`create_replication_words`) and kept.
pub(crate) static COST_WORD: AtomicPtr<RedisModuleString> = AtomicPtr::new(std::ptr::null_mut());
pub(crate) static AT_WORD: AtomicPtr<RedisModuleString> = AtomicPtr::new(std::ptr::null_mut());
pub(crate) static ONE_WORD: AtomicPtr<RedisModuleString> = AtomicPtr::new(std::ptr::null_mut());

/// Creates the words; false if the server could not (the module must not load then: it could
/// not replicate).
pub fn create_replication_words() -> bool {
    let Some(create) = (unsafe { raw::RedisModule_CreateString }) else { return false };
    for (word, text) in [(&COST_WORD, "COST"), (&AT_WORD, "AT"), (&ONE_WORD, "1")] {
        let s = unsafe { create(std::ptr::null_mut(), text.as_ptr().cast(), text.len()) };
        if s.is_null() {
            return false;
        }
        word.store(s, Ordering::Relaxed);
    }
    true
}

/// Server time in ms: the per-command cached clock where the server has it (7.2+), else the live one.
pub(crate) fn clock_ms() -> i64 {
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

unsafe fn arguments<'a>(argv: *mut *mut RedisModuleString, argc: c_int) -> &'a [*mut RedisModuleString] {
    if argv.is_null() || argc <= 0 {
        return &[];
    }
    slice::from_raw_parts(argv, argc as usize)
}

unsafe fn string_bytes<'a>(s: *mut RedisModuleString) -> &'a [u8] {
    let mut len = 0;
    let ptr = raw::string_ptr_len(s, &mut len);
    if ptr.is_null() {
        return &[];
    }
    slice::from_raw_parts(ptr.cast::<u8>(), len)
}

unsafe fn reply_decision(ctx: *mut RedisModuleCtx, format: ReplyFormat, decision: &Decision) -> c_int {
    let values = match format {
        ReplyFormat::Contract => decision.reply(),
        ReplyFormat::CellThrottle => {
            // redis-cell: limited flag, and times in whole seconds rounded up.
            let seconds = |ms: i64| if ms < 0 { -1 } else { (ms + 999) / 1000 };
            let [allowed, limit, remaining, retry, reset] = decision.reply();
            [1 - allowed, limit, remaining, seconds(retry), seconds(reset)]
        }
    };
    raw::reply_with_array(ctx, 5);
    for value in values {
        raw::reply_with_long_long(ctx, value);
    }
    OK
}

unsafe fn reply_error(ctx: *mut RedisModuleCtx, message: &str) -> c_int {
    // Messages are ASCII built by this module; anything else is replaced rather than risk a NUL.
    let clean: Vec<u8> = message.bytes().map(|b| if b.is_ascii_graphic() || b == b' ' { b } else { b'?' }).collect();
    if let (Ok(text), Some(reply)) = (CString::new(clean), raw::RedisModule_ReplyWithError) {
        reply(ctx, text.as_ptr());
    }
    OK
}

/// An open key, closed on drop.
struct Key {
    inner: *mut RedisModuleKey,
}

impl Key {
    unsafe fn open(ctx: *mut RedisModuleCtx, name: *mut RedisModuleString) -> Key {
        Key::open_mode(ctx, name, raw::REDISMODULE_READ | raw::REDISMODULE_WRITE)
    }

    /// Read-only, and without updating the key's LRU/LFU (for introspection).
    unsafe fn open_read(ctx: *mut RedisModuleCtx, name: *mut RedisModuleString) -> Key {
        Key::open_mode(ctx, name, raw::REDISMODULE_READ | raw::REDISMODULE_OPEN_KEY_NOTOUCH)
    }

    unsafe fn open_mode(ctx: *mut RedisModuleCtx, name: *mut RedisModuleString, mode: u32) -> Key {
        let inner = raw::RedisModule_OpenKey.map_or(std::ptr::null_mut(), |open| open(ctx, name, mode as c_int).cast());
        Key { inner }
    }

    /// Remaining time to live in ms, -1 without expiry.
    unsafe fn ttl_ms(&self) -> i64 {
        raw::RedisModule_GetExpire.map_or(-1, |get| get(self.inner))
    }

    unsafe fn is_empty(&self) -> bool {
        self.inner.is_null()
            || raw::RedisModule_KeyType.is_none_or(|f| f(self.inner) == raw::REDISMODULE_KEYTYPE_EMPTY as c_int)
    }

    /// The decimal integer a string key holds; None for anything else. Read with GET because
    /// RM_StringDMA would re-encode an int-encoded string, a change on a call that may write nothing.
    unsafe fn string_integer(&self, ctx: *mut RedisModuleCtx, name: *mut RedisModuleString) -> Option<u64> {
        let (Some(key_type), Some(call), Some(string_ptr), Some(free_reply)) = (
            raw::RedisModule_KeyType,
            raw::RedisModule_Call,
            raw::RedisModule_CallReplyStringPtr,
            raw::RedisModule_FreeCallReply,
        ) else {
            return None;
        };
        if self.inner.is_null() || key_type(self.inner) != raw::REDISMODULE_KEYTYPE_STRING as c_int {
            return None;
        }
        let reply = call(ctx, c"GET".as_ptr(), c"s".as_ptr(), name);
        if reply.is_null() {
            return None;
        }
        let mut len = 0;
        let ptr = string_ptr(reply, &mut len);
        let value =
            if ptr.is_null() { None } else { crate::request::parse_u64(slice::from_raw_parts(ptr.cast::<u8>(), len)) };
        free_reply(reply);
        value
    }

    /// The limiter stored here, or None when the key holds anything else.
    #[allow(clippy::mut_from_ref)]
    unsafe fn stored_limiter(&self) -> Option<&mut StoredLimiter> {
        let (Some(get_type), Some(get_value)) =
            (raw::RedisModule_ModuleTypeGetType, raw::RedisModule_ModuleTypeGetValue)
        else {
            return None;
        };
        if self.inner.is_null() || get_type(self.inner) != *LIMITER_TYPE.raw_type.borrow() {
            return None;
        }
        get_value(self.inner).cast::<StoredLimiter>().as_mut()
    }

    unsafe fn set_limiter(&self, limiter: Limiter) {
        if let Some(set_value) = raw::RedisModule_ModuleTypeSetValue {
            let value = Box::into_raw(Box::new(StoredLimiter::pack(limiter)));
            if set_value(self.inner, *LIMITER_TYPE.raw_type.borrow(), value.cast::<c_void>()) != OK {
                drop(Box::from_raw(value));
            }
        }
    }

    unsafe fn set_abs_expire(&self, at_ms: i64) {
        if let Some(set) = raw::RedisModule_SetAbsExpire {
            set(self.inner, at_ms);
        }
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        if !self.inner.is_null() {
            unsafe { raw::RedisModule_CloseKey.map(|close| close(self.inner)) };
        }
    }
}
