//! Reading a command's arguments in place and replying: the raw helpers every handler shares.

use std::ffi::{c_int, CString};
use std::slice;

use redis_module::raw::{self, RedisModuleCtx, RedisModuleString};

pub const OK: c_int = raw::REDISMODULE_OK as c_int;
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

pub unsafe fn reply_ok(ctx: *mut RedisModuleCtx) -> c_int {
    raw::RedisModule_ReplyWithSimpleString.map_or(OK, |f| f(ctx, c"OK".as_ptr()))
}

pub unsafe fn arguments<'a>(argv: *mut *mut RedisModuleString, argc: c_int) -> &'a [*mut RedisModuleString] {
    if argv.is_null() || argc <= 0 {
        return &[];
    }
    slice::from_raw_parts(argv, argc as usize)
}

pub unsafe fn string_bytes<'a>(s: *mut RedisModuleString) -> &'a [u8] {
    let mut len = 0;
    let ptr = raw::string_ptr_len(s, &mut len);
    if ptr.is_null() {
        return &[];
    }
    slice::from_raw_parts(ptr.cast::<u8>(), len)
}

pub unsafe fn reply_error(ctx: *mut RedisModuleCtx, message: &str) -> c_int {
    // Messages are ASCII built by this module; anything else is replaced rather than risk a NUL.
    let clean: Vec<u8> = message.bytes().map(|b| if b.is_ascii_graphic() || b == b' ' { b } else { b'?' }).collect();
    if let (Ok(text), Some(reply)) = (CString::new(clean), raw::RedisModule_ReplyWithError) {
        reply(ctx, text.as_ptr());
    }
    OK
}
