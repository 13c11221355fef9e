//! The commands that decide nothing: RL.INFO (introspection), RL.POLICY.* (the policy table),
//! RL.LOADSTATE (the AOF rewrite's form of a value) and the tests-only RL.TESTCLOCK / RL.TESTPANIC.

use std::ffi::c_int;

use redis_module::raw::{self, RedisModuleCtx, RedisModuleString};

use crate::clock;
use crate::datatype;
use crate::ffi::{arguments, reply_error, reply_ok, string_bytes, OK, WRONGTYPE};
use crate::key::Key;
use crate::limiter::Field;
use crate::policy;
use crate::stored::{StoredLimiter, Value};

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
    let now = clock::now_ms();
    let mut fields = match stored.value().as_ref() {
        Value::One(limiter) => limiter.describe(now),
        Value::Rules(rules) => vec![
            ("algorithm", Field::Text("rules")),
            ("rules", Field::Rules(rules.rules.iter().map(|rule| rule.describe(now)).collect())),
        ],
    };
    fields.push(("ttl_ms", Field::Int(ttl_ms)));
    reply_fields(ctx, &fields);
    OK
}

/// Fields as a map (a flat array in RESP2); a rule list as an array of maps.
unsafe fn reply_fields(ctx: *mut RedisModuleCtx, fields: &[(&str, Field)]) {
    raw::reply_with_map(ctx, fields.len() as i64);
    for (name, value) in fields {
        raw::reply_with_string_buffer(ctx, name.as_ptr().cast(), name.len());
        match value {
            Field::Int(v) => raw::reply_with_long_long(ctx, *v),
            Field::Text(t) => raw::reply_with_string_buffer(ctx, t.as_ptr().cast(), t.len()),
            Field::Rules(rules) => {
                raw::reply_with_array(ctx, rules.len() as i64);
                for rule in rules {
                    reply_fields(ctx, rule);
                }
                raw::Status::Ok
            }
        };
    }
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

/// `RL.POLICY.SET name rule [rule ...]` -> OK.
pub unsafe extern "C" fn policy_set(ctx: *mut RedisModuleCtx, argv: *mut *mut RedisModuleString, argc: c_int) -> c_int {
    let args = arguments(argv, argc);
    let words: Vec<&[u8]> = args.iter().skip(1).map(|&a| string_bytes(a)).collect();
    if let Err(message) = policy::set(&words) {
        return reply_error(ctx, &message);
    }
    raw::RedisModule_ReplicateVerbatim.map(|f| f(ctx));
    reply_ok(ctx)
}

/// `RL.POLICY.GET name` -> the rules as arrays (`["TOKENBUCKET", 10, 1, 1000]`, ...) or nil.
pub unsafe extern "C" fn policy_get(ctx: *mut RedisModuleCtx, argv: *mut *mut RedisModuleString, argc: c_int) -> c_int {
    let args = arguments(argv, argc);
    if args.len() != 2 {
        return reply_error(ctx, "ERR wrong number of arguments for 'RL.POLICY.GET' command");
    }
    let Some(specs) = policy::rules(string_bytes(args[1])) else {
        raw::reply_with_null(ctx);
        return OK;
    };
    raw::reply_with_array(ctx, specs.len() as i64);
    for spec in &specs {
        let (name, values) = policy::describe(spec);
        raw::reply_with_array(ctx, 1 + values.len() as i64);
        raw::reply_with_string_buffer(ctx, name.as_ptr().cast(), name.len());
        for value in values {
            raw::reply_with_long_long(ctx, value as i64);
        }
    }
    OK
}

/// `RL.POLICY.DEL name` -> 1 or 0; replicated when it deleted one.
pub unsafe extern "C" fn policy_del(ctx: *mut RedisModuleCtx, argv: *mut *mut RedisModuleString, argc: c_int) -> c_int {
    let args = arguments(argv, argc);
    if args.len() != 2 {
        return reply_error(ctx, "ERR wrong number of arguments for 'RL.POLICY.DEL' command");
    }
    let deleted = policy::delete(string_bytes(args[1]));
    if deleted {
        raw::RedisModule_ReplicateVerbatim.map(|f| f(ctx));
    }
    raw::reply_with_long_long(ctx, i64::from(deleted));
    OK
}

/// `RL.POLICY.LIST` -> the names, sorted bytewise.
pub unsafe extern "C" fn policy_list(
    ctx: *mut RedisModuleCtx,
    argv: *mut *mut RedisModuleString,
    argc: c_int,
) -> c_int {
    if arguments(argv, argc).len() != 1 {
        return reply_error(ctx, "ERR wrong number of arguments for 'RL.POLICY.LIST' command");
    }
    let names = policy::names();
    raw::reply_with_array(ctx, names.len() as i64);
    for name in names {
        raw::reply_with_string_buffer(ctx, name.as_ptr().cast(), name.len());
    }
    OK
}
