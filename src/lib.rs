//! `rl`: native, exact, atomic rate limiting commands for Redis.
//! This file only registers things (command metadata in commands.rs). The rate-limit commands'
//! glue is command.rs, with key.rs (the open key), replicate.rs (the replicated form), clock.rs
//! (now) and ffi.rs (arguments and replies); admin.rs holds the commands that decide nothing;
//! request.rs parses; limiter.rs + composite.rs + stored.rs + datatype.rs are the stored value;
//! policy.rs the policy table; algo/ the pure algorithms.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod admin;
pub mod algo;
mod bench_floor;
mod clock;
mod command;
mod commands;
mod composite;
mod config;
mod datatype;
mod ffi;
mod key;
mod limiter;
mod log;
mod policy;
mod replicate;
mod request;
mod small_bytes;
mod stats;
mod stored;
mod varint;

use std::sync::atomic::Ordering;

use redis_module::configuration::ConfigurationFlags;
use redis_module::{raw, redis_module, Context, RedisString, Status};

use datatype::LIMITER_TYPE;

fn init(ctx: &Context, args: &[RedisString]) -> Status {
    install_panic_hook();
    // Checked and applied here rather than by the crate, which clamps or ignores what is wrong.
    let args: Vec<String> = args.iter().map(|a| a.to_string_lossy()).collect();
    if let Err(problem) = config::apply_module_args(&args.iter().map(String::as_str).collect::<Vec<_>>()) {
        log::log(ctx.ctx, c"warning", &format!("rl: {problem}; refusing to load"));
        return Status::Err;
    }
    // A short read in rdb_load (a truncated RESTORE payload) must fail that load, not panic Redis;
    // and a key opened for writing is signalled modified only when a command really writes it
    // (key.rs), so calls that write nothing leave WATCH and client-side caching alone.
    let options = raw::REDISMODULE_OPTIONS_HANDLE_IO_ERRORS | raw::REDISMODULE_OPTION_NO_IMPLICIT_SIGNAL_MODIFIED;
    match unsafe { raw::RedisModule_SetModuleOptions } {
        Some(set_options) => unsafe { set_options(ctx.ctx, options as std::ffi::c_int) },
        None => {
            log::log(ctx.ctx, c"warning", "rl: the server cannot set module options");
            return Status::Err;
        }
    }
    if !policy::subscribe(ctx.ctx) {
        log::log(ctx.ctx, c"warning", "rl: could not subscribe to fork events (policies in AOF rewrites)");
        return Status::Err;
    }
    if !replicate::create_words() {
        log::log(ctx.ctx, c"warning", "rl: could not create the strings of the replicated form");
        return Status::Err;
    }
    let bench_floor = config::BENCH_FLOOR.load(Ordering::Relaxed);
    if bench_floor && !bench_floor::create_words() {
        log::log(ctx.ctx, c"warning", "rl: could not create the strings of RL.BENCHFLOOR's replicated form");
        return Status::Err;
    }
    if let Err(name) = commands::register(
        ctx.ctx,
        config::TEST_CLOCK.load(Ordering::Relaxed),
        config::TEST_PANIC.load(Ordering::Relaxed),
        bench_floor,
    ) {
        log::log(ctx.ctx, c"warning", &format!("rl: could not register {name}"));
        return Status::Err;
    }
    // Replaces the crate's default INFO handler with the module's counters.
    unsafe { raw::RedisModule_RegisterInfoFunc.map(|register| register(ctx.ctx, Some(stats::info))) };
    Status::Ok
}

/// A panic inside a command aborts redis-server; make sure the reason reaches the Redis log first.
fn install_panic_hook() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        log::log(std::ptr::null_mut(), c"warning", &format!("rl panicked: {info}"));
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
    configurations: [
        i64: [
            [
                "max-sliding-entries",
                &config::MAX_SLIDING_ENTRIES,
                config::DEFAULT_MAX_SLIDING_ENTRIES,
                1,
                config::MAX_SLIDING_ENTRIES_RANGE.1,
                ConfigurationFlags::DEFAULT,
                None
            ],
            [
                "max-at-ahead-ms",
                &config::MAX_AT_AHEAD_MS,
                config::DEFAULT_MAX_AT_AHEAD_MS,
                config::MAX_AT_AHEAD_MS_RANGE.0,
                config::MAX_AT_AHEAD_MS_RANGE.1,
                ConfigurationFlags::DEFAULT,
                None
            ],
        ],
        string: [],
        bool: [
            ["test-clock", &config::TEST_CLOCK, false, ConfigurationFlags::IMMUTABLE, None],
            ["test-panic", &config::TEST_PANIC, false, ConfigurationFlags::IMMUTABLE, None],
            ["bench-floor", &config::BENCH_FLOOR, false, ConfigurationFlags::IMMUTABLE, None],
        ],
        enum: [],
        module_args_as_configuration: false,
    ]
}
