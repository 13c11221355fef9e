//! Lines for the Redis log. The text always goes through a `%s` format (never as the format
//! itself), NUL bytes are replaced, and nothing here can panic.

use std::ffi::{CStr, CString};

use redis_module::raw;

fn text(message: &str) -> CString {
    CString::new(message.replace('\0', "?")).unwrap_or_default()
}

/// A line at `level` (c"warning", c"notice", c"verbose"); a null `ctx` logs as the module's own.
pub fn log(ctx: *mut raw::RedisModuleCtx, level: &CStr, message: &str) {
    if let Some(log) = unsafe { raw::RedisModule_Log } {
        unsafe { log(ctx, level.as_ptr(), c"%s".as_ptr(), text(message).as_ptr()) };
    }
}

/// A line about a value being loaded (RDB, RESTORE), at `level`.
pub fn log_io(io: *mut raw::RedisModuleIO, level: &CStr, message: &str) {
    if let Some(log) = unsafe { raw::RedisModule_LogIOError } {
        unsafe { log(io, level.as_ptr(), c"%s".as_ptr(), text(message).as_ptr()) };
    }
}
