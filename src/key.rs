//! An open Redis key, as the commands use it: type checks, the stored limiter, writes with an
//! absolute expiry. The module loads with NO_IMPLICIT_SIGNAL_MODIFIED, so opening a key for
//! writing signals nothing by itself; a write is signalled (WATCH, client tracking) and notified
//! (keyspace events) only through `close_written`, which closes the key first: no callback can
//! run while the key is still open.

use std::ffi::{c_int, c_void, CStr};

use redis_module::raw::{self, RedisModuleCtx, RedisModuleKey, RedisModuleString};

use crate::datatype::LIMITER_TYPE;
use crate::stored::StoredLimiter;

const OK: c_int = raw::REDISMODULE_OK as c_int;

/// The longest decimal a string key redis-cell left can hold (a u64 TAT in ns).
const MAX_CELL_DIGITS: usize = 20;

/// An open key, closed on drop.
pub struct Key {
    inner: *mut RedisModuleKey,
}

impl Key {
    pub unsafe fn open(ctx: *mut RedisModuleCtx, name: *mut RedisModuleString) -> Key {
        Key::open_mode(ctx, name, raw::REDISMODULE_READ | raw::REDISMODULE_WRITE)
    }

    /// Read-only, and without updating the key's LRU/LFU (for introspection).
    pub unsafe fn open_read(ctx: *mut RedisModuleCtx, name: *mut RedisModuleString) -> Key {
        Key::open_mode(ctx, name, raw::REDISMODULE_READ | raw::REDISMODULE_OPEN_KEY_NOTOUCH)
    }

    unsafe fn open_mode(ctx: *mut RedisModuleCtx, name: *mut RedisModuleString, mode: u32) -> Key {
        let inner = raw::RedisModule_OpenKey.map_or(std::ptr::null_mut(), |open| open(ctx, name, mode as c_int).cast());
        Key { inner }
    }

    /// Remaining time to live in ms, -1 without expiry.
    pub unsafe fn ttl_ms(&self) -> i64 {
        raw::RedisModule_GetExpire.map_or(-1, |get| get(self.inner))
    }

    pub unsafe fn is_empty(&self) -> bool {
        self.inner.is_null()
            || raw::RedisModule_KeyType.is_none_or(|f| f(self.inner) == raw::REDISMODULE_KEYTYPE_EMPTY as c_int)
    }

    /// The decimal integer a string key holds, as redis-cell leaves it; None for anything else.
    /// The length is checked first, so a large string is never copied. Read with GET because
    /// RM_StringDMA would re-encode an int-encoded string, a change on a call that may write nothing.
    #[inline(never)]
    pub unsafe fn cell_integer(&self, ctx: *mut RedisModuleCtx, name: *mut RedisModuleString) -> Option<u64> {
        let (Some(key_type), Some(length), Some(call), Some(string_ptr), Some(free_reply)) = (
            raw::RedisModule_KeyType,
            raw::RedisModule_ValueLength,
            raw::RedisModule_Call,
            raw::RedisModule_CallReplyStringPtr,
            raw::RedisModule_FreeCallReply,
        ) else {
            return None;
        };
        if self.inner.is_null()
            || key_type(self.inner) != raw::REDISMODULE_KEYTYPE_STRING as c_int
            || length(self.inner) > MAX_CELL_DIGITS
        {
            return None;
        }
        let reply = call(ctx, c"GET".as_ptr(), c"s".as_ptr(), name);
        if reply.is_null() {
            return None;
        }
        let mut len = 0;
        let ptr = string_ptr(reply, &mut len);
        let value = if ptr.is_null() {
            None
        } else {
            crate::request::parse_u64(std::slice::from_raw_parts(ptr.cast::<u8>(), len))
        };
        free_reply(reply);
        value
    }

    /// The limiter stored here, or None when the key holds anything else. Borrowed from the key,
    /// so no second reference to the value can exist while it is changed.
    pub unsafe fn stored_limiter(&mut self) -> Option<&mut StoredLimiter> {
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

    /// Replaces the value (and with it any TTL: set the expiry after).
    pub unsafe fn set_value(&mut self, value: StoredLimiter) {
        if let Some(set_value) = raw::RedisModule_ModuleTypeSetValue {
            let value = Box::into_raw(Box::new(value));
            if set_value(self.inner, *LIMITER_TYPE.raw_type.borrow(), value.cast::<c_void>()) != OK {
                drop(Box::from_raw(value));
            }
        }
    }

    pub unsafe fn set_abs_expire(&mut self, at_ms: i64) {
        if let Some(set) = raw::RedisModule_SetAbsExpire {
            set(self.inner, at_ms);
        }
    }

    /// Deletes the key (a limiter back to idle is an absent key).
    pub unsafe fn delete(&mut self) {
        if !self.is_empty() {
            raw::RedisModule_DeleteKey.map(|delete| delete(self.inner));
        }
    }

    /// Closes the key, then signals it modified and sends the keyspace event `event` (module
    /// class): the order that keeps a notification callback from seeing a key still open.
    pub unsafe fn close_written(self, ctx: *mut RedisModuleCtx, name: *mut RedisModuleString, event: &CStr) {
        drop(self);
        raw::RedisModule_SignalModifiedKey.map(|signal| signal(ctx, name));
        // Sent even when notify-keyspace-events leaves module events out: modules subscribed to
        // keyspace events get them regardless of that setting.
        if let Some(notify) = raw::RedisModule_NotifyKeyspaceEvent {
            notify(ctx, raw::REDISMODULE_NOTIFY_MODULE as c_int, event.as_ptr(), name);
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
