//! Command glue, one generic path for every algorithm: parse, open the key, check its type,
//! decide, write back with an absolute expiry (or delete a limiter back to idle), replicate a
//! deterministic form, signal and notify only a real write, reply.
//! Handlers are registered raw (see commands.rs): arguments are read in place, with no
//! RedisString wrapper (retain + free) per argument.

use std::ffi::{c_int, CString};
use std::slice;

use redis_module::raw::{self, RedisModuleCtx, RedisModuleString};

use crate::algo::Decision;
use crate::clock;
use crate::config;
use crate::datatype;
use crate::key::Key;
use crate::limiter::{Field, Limiter};
use crate::replicate::{self, Form};
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
    let mut key = Key::open_read(ctx, args[1]);
    if key.is_empty() {
        raw::reply_with_null(ctx);
        return OK;
    }
    let ttl_ms = key.ttl_ms();
    let Some(stored) = key.stored_limiter() else {
        return reply_error(ctx, WRONGTYPE);
    };
    let mut fields = stored.limiter().describe(clock::now_ms());
    fields.push(("ttl_ms", Field::Int(ttl_ms)));
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

/// `RL.TESTCLOCK <ms> | OFF`: pins the module's clock, for testing commands without AT
/// (CL.THROTTLE). Registered only when the module is loaded with `test-clock yes`.
pub unsafe extern "C" fn test_clock(ctx: *mut RedisModuleCtx, argv: *mut *mut RedisModuleString, argc: c_int) -> c_int {
    let args = arguments(argv, argc);
    let value = match args.get(1).map(|&a| string_bytes(a)) {
        Some(v) if args.len() == 2 && v.eq_ignore_ascii_case(b"OFF") => None,
        Some(v) if args.len() == 2 => match std::str::from_utf8(v).ok().and_then(|v| v.parse::<i64>().ok()) {
            Some(ms) if (0..=crate::algo::MAX_TIME_MS).contains(&ms) => Some(ms),
            _ => return reply_error(ctx, "ERR RL.TESTCLOCK takes a Unix time in ms or OFF"),
        },
        _ => return reply_error(ctx, "ERR wrong number of arguments for 'RL.TESTCLOCK' command"),
    };
    clock::pin(value);
    reply_ok(ctx)
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
        let name = datatype::LOAD_COMMAND.to_string_lossy();
        return reply_error(ctx, &format!("ERR wrong number of arguments for '{name}' command"));
    }
    let Some(limiter) = datatype::decode(string_bytes(args[2])) else {
        return reply_error(ctx, "ERR state is not a valid rl limiter encoding");
    };
    let mut key = Key::open(ctx, args[1]);
    if !key.is_empty() && key.stored_limiter().is_none() {
        return reply_error(ctx, WRONGTYPE);
    }
    key.set_value(StoredLimiter::pack(limiter));
    key.close_written(ctx, args[1], c"rl.loadstate");
    raw::RedisModule_ReplicateVerbatim.map(|f| f(ctx));
    reply_ok(ctx)
}

unsafe fn run(ctx: *mut RedisModuleCtx, argv: *mut *mut RedisModuleString, argc: c_int, command: Command) -> c_int {
    let args = arguments(argv, argc);
    // A valid call has at most 11 arguments after the name: no allocation for those.
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
            reply_decision(ctx, request.reply, &decision)
        }
        Err(message) => {
            stats::record(command, Outcome::Error);
            reply_error(ctx, &message)
        }
    }
}

/// The time a call is decided at, and the sliding-log cap it uses: an ordinary client's AT may be
/// at most `max-at-ahead-ms` ahead of the clock and its CAP at most the server's own; the master
/// link and AOF loading replay the master's decision as it was.
unsafe fn time_and_cap(ctx: *mut RedisModuleCtx, request: &Request) -> Result<(i64, u64), String> {
    let clock = clock::now_ms();
    let own_cap = config::max_sliding_entries();
    let trusted = || clock::from_master_or_aof(ctx);
    if let Some(at) = request.at_ms {
        let ahead = config::max_at_ahead_ms();
        if at > clock.saturating_add(ahead) && !trusted() {
            return Err(format!("ERR AT is more than max-at-ahead-ms ({ahead} ms) ahead of the server clock"));
        }
    }
    if let Some(cap) = request.cap {
        if cap > own_cap && !trusted() {
            return Err(format!("ERR CAP must be at most max-sliding-entries ({own_cap})"));
        }
    }
    Ok((request.at_ms.unwrap_or(clock), request.cap.unwrap_or(own_cap)))
}

/// Decides `request` on the key at args[1]. A write (an admission, or a reconfiguration even when
/// rejected) is stored with its absolute expiry, or deletes a limiter left idle; it is replicated,
/// and signalled and notified once the key is closed. Anything else touches nothing.
unsafe fn execute(
    ctx: *mut RedisModuleCtx,
    args: &[*mut RedisModuleString],
    command: Command,
    request: &Request,
) -> Result<Decision, String> {
    let (now, cap) = time_and_cap(ctx, request)?;
    let mut key = Key::open(ctx, args[1]);
    let commit = !request.dryrun && request.cost > 0;
    let decide = |limiter: &mut Limiter| limiter.decide(&request.spec, now, request.cost, commit, cap);
    // A limiter redis-cell left in a string key, for CL.THROTTLE: taken over on the first write.
    let cell_tat_ns = if command.adopts_cell_keys() { key.cell_integer(ctx, args[1]) } else { None };
    // The state that replaces such a string, replicated as a whole (a replica's RL.GCRA would
    // refuse the string).
    let mut taken_over: Option<Vec<u8>> = None;
    let decision = if key.is_empty() || cell_tat_ns.is_some() {
        let mut limiter = match cell_tat_ns {
            Some(tat_ns) => Limiter::from_cell(&request.spec, tat_ns, now),
            None => Some(Limiter::new(&request.spec, now)),
        }
        .ok_or("ERR time out of range")?;
        let decision = decide(&mut limiter).ok_or("ERR internal algorithm mismatch")?;
        if decision.wrote {
            taken_over = cell_tat_ns.map(|_| datatype::encode(&limiter));
            key.set_value(StoredLimiter::pack(limiter));
        }
        decision
    } else {
        let algorithm = request.spec.algorithm();
        let stored = key.stored_limiter().ok_or(WRONGTYPE)?;
        let stored_algorithm = stored.algorithm();
        stored.update(decide).ok_or_else(|| {
            format!(
                "WRONGTYPE key holds {} limiter; {} needs {} limiter",
                stored_algorithm.description(),
                algorithm.command(),
                algorithm.description()
            )
        })?
    };
    if !decision.wrote {
        return Ok(decision);
    }
    let expire_at = decision.at_ms + decision.reset_after_ms;
    if decision.reset_after_ms == 0 {
        key.delete();
    } else {
        key.set_abs_expire(expire_at);
    }
    match taken_over {
        Some(state) => replicate::replacement(ctx, args[1], &state, expire_at),
        None => {
            let mut form = Form::new();
            form.push(args[1]);
            let (values, count) = request.spec.positional();
            for (i, &value) in values[..count].iter().enumerate() {
                // RL.* parameters replicate as sent (parsed strictly, so they read back identically);
                // CL.THROTTLE's are converted (seconds to ms), so they are spelled out.
                if command.replicates_own_parameters() {
                    form.push(args[2 + i]);
                } else {
                    form.number(value);
                }
            }
            let uses_cap = request.spec.algorithm().has_log();
            form.options(request.cost, decision.at_ms, uses_cap.then_some(cap));
            form.send(ctx, request.spec.algorithm().command_cstr());
        }
    }
    key.close_written(ctx, args[1], command.event());
    Ok(decision)
}

unsafe fn reply_ok(ctx: *mut RedisModuleCtx) -> c_int {
    raw::RedisModule_ReplyWithSimpleString.map_or(OK, |f| f(ctx, c"OK".as_ptr()))
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
