//! `rl`: native, exact, atomic rate limiting commands for Redis.
//! This file only registers things; see command.rs (glue), request.rs (arguments),
//! limiter.rs + datatype.rs (the stored value) and algo/ (the pure algorithms).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod algo;
mod command;
mod datatype;
mod limiter;
mod request;
mod varint;

use std::ffi::{c_int, CString};

use redis_module::{raw, redis_module, Context, RedisString, Status};

use datatype::LIMITER_TYPE;

type Handler = unsafe extern "C" fn(*mut raw::RedisModuleCtx, *mut *mut raw::RedisModuleString, c_int) -> c_int;

/// name, handler, flags, key position (0: no key).
const COMMANDS: [(&str, Handler, &str, c_int); 6] = [
    ("RL.TOKENBUCKET", command::token_bucket, "write deny-oom fast", 1),
    ("RL.FIXED", command::fixed_window, "write deny-oom fast", 1),
    ("RL.SLIDING", command::sliding_log, "write deny-oom fast", 1),
    ("RL.GCRA", command::gcra, "write deny-oom fast", 1),
    ("CL.THROTTLE", command::cl_throttle, "write deny-oom fast", 1),
    (datatype::LOAD_COMMAND, command::load_state, "write deny-oom", 1),
];

/// Registered only when loaded with `test-clock yes`: pins the clock for tests.
const TEST_CLOCK_COMMAND: (&str, Handler, &str, c_int) = ("RL.TESTCLOCK", command::test_clock, "admin", 0);

fn init(ctx: &Context, args: &[RedisString]) -> Status {
    install_panic_hook();
    let words: Vec<String> = args.iter().map(|a| a.to_string_lossy().to_ascii_lowercase()).collect();
    let test_clock = words.windows(2).any(|w| w[0] == "test-clock" && w[1] == "yes");
    let extra = test_clock.then_some(TEST_CLOCK_COMMAND);
    for (name, handler, flags, key) in COMMANDS.into_iter().chain(extra) {
        let (Ok(name), Ok(flags)) = (CString::new(name), CString::new(flags)) else {
            return Status::Err;
        };
        let created = unsafe {
            raw::RedisModule_CreateCommand.map_or(raw::REDISMODULE_ERR as c_int, |create| {
                create(ctx.ctx, name.as_ptr(), Some(handler), flags.as_ptr(), key, key, key)
            })
        };
        if created != raw::REDISMODULE_OK as c_int {
            ctx.log_warning(&format!("rl: could not register {}", name.to_string_lossy()));
            return Status::Err;
        }
    }
    Status::Ok
}

/// A panic inside a command aborts redis-server; make sure the reason reaches the Redis log first.
fn install_panic_hook() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let (Ok(message), Some(log)) = (CString::new(format!("rl panicked: {info}").replace('\0', " ")), unsafe {
            raw::RedisModule_Log
        }) {
            unsafe { log(std::ptr::null_mut(), c"warning".as_ptr(), c"%s".as_ptr(), message.as_ptr()) };
        }
        default_hook(info);
    }));
}

#[cfg(not(test))]
macro_rules! allocator {
    () => {
        redis_module::alloc::RedisAlloc
    };
}

#[cfg(test)]
macro_rules! allocator {
    () => {
        std::alloc::System
    };
}

redis_module! {
    name: "rl",
    version: 1,
    allocator: (allocator!(), allocator!()),
    data_types: [LIMITER_TYPE],
    init: init,
    commands: [],
}
