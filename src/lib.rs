//! `rl`: native, exact, atomic rate limiting commands for Redis.
//! This file only registers things; see command.rs (glue), request.rs (arguments),
//! limiter.rs + stored.rs + datatype.rs (the stored value) and algo/ (the pure algorithms).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod algo;
mod bench_floor;
mod command;
mod commands;
mod config;
mod datatype;
mod limiter;
mod request;
mod stats;
mod stored;
mod varint;

use std::ffi::CString;
use std::sync::atomic::Ordering;

use redis_module::configuration::ConfigurationFlags;
use redis_module::{raw, redis_module, Context, RedisString, Status};

use datatype::LIMITER_TYPE;

fn init(ctx: &Context, _args: &[RedisString]) -> Status {
    install_panic_hook();
    // A short read in rdb_load (a truncated RESTORE payload) must fail that load, not panic Redis.
    if let Some(set_options) = unsafe { raw::RedisModule_SetModuleOptions } {
        unsafe { set_options(ctx.ctx, raw::REDISMODULE_OPTIONS_HANDLE_IO_ERRORS as std::ffi::c_int) };
    }
    if !command::create_replication_words() {
        ctx.log_warning("rl: could not create the strings of the replicated form");
        return Status::Err;
    }
    let bench_floor = config::BENCH_FLOOR.load(Ordering::Relaxed);
    if bench_floor && !bench_floor::create_words() {
        ctx.log_warning("rl: could not create the strings of RL.BENCHFLOOR's replicated form");
        return Status::Err;
    }
    if let Err(name) = commands::register(
        ctx.ctx,
        config::TEST_CLOCK.load(Ordering::Relaxed),
        config::TEST_PANIC.load(Ordering::Relaxed),
        bench_floor,
    ) {
        ctx.log_warning(&format!("rl: could not register {name}"));
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
        if let (Ok(message), Some(log)) =
            (CString::new(format!("rl panicked: {info}").replace('\0', " ")), unsafe { raw::RedisModule_Log })
        {
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
    configurations: [
        i64: [
            [
                "max-sliding-entries",
                &config::MAX_SLIDING_ENTRIES,
                config::DEFAULT_MAX_SLIDING_ENTRIES,
                1,
                algo::MAX_UNITS as i64,
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
        module_args_as_configuration: true,
    ]
}
