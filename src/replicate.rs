//! What replicas and the AOF receive for a write: the call with its effective time pinned (`AT`),
//! its cost and whatever configuration the decision used (the sliding-log cap, when not the
//! default that a replicated write without CAP stands for), so they reach
//! exactly the master's state whatever their clock, their configuration and however late they
//! apply it. Built with RM_Replicate's `v` format from strings that already exist (the caller's
//! arguments, words created at load, cached numbers), so the common case creates no string:
//! the `l`/`c` formats allocate per argument and dominated a command's cost.

use std::ffi::{c_char, c_longlong, CStr};
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicI64, AtomicPtr, Ordering};

use redis_module::raw::{self, RedisModuleCtx, RedisModuleString};

use crate::limiter::Algorithm;

/// The most words a replicated call has after its name (RL.LIMIT: key, 16 rules of up to 4 words,
/// COST, AT and CAP with their values).
const MAX_WORDS: usize = 1 + 16 * 4 + 6;

/// Words of the replicated forms, created once at load (`create_words`) and kept.
#[derive(Clone, Copy)]
pub enum Word {
    Cost,
    At,
    Cap,
    One,
}

/// The words above, then each algorithm's rule name (RL.LIMIT's rules spelled out).
const WORD_COUNT: usize = 4 + Algorithm::ALL.len();
static WORDS: [AtomicPtr<RedisModuleString>; WORD_COUNT] = [const { AtomicPtr::new(std::ptr::null_mut()) }; WORD_COUNT];

fn word_text(index: usize) -> &'static str {
    match index {
        0 => "COST",
        1 => "AT",
        2 => "CAP",
        3 => "1",
        rule => Algorithm::ALL.get(rule - 4).map_or("", |a| crate::request::rule_name(*a)),
    }
}

/// Creates the words; false if the server could not (the module must not load then: it could
/// not replicate).
pub fn create_words() -> bool {
    let Some(create) = (unsafe { raw::RedisModule_CreateString }) else { return false };
    for (index, word) in WORDS.iter().enumerate() {
        let text = word_text(index);
        let s = unsafe { create(std::ptr::null_mut(), text.as_ptr().cast(), text.len()) };
        if s.is_null() {
            return false;
        }
        word.store(s, Ordering::Relaxed);
    }
    true
}

/// A replicated call being put together; `send` replicates it. Every word is a string that
/// outlives the call (an argument, a word created at load, a cached number). A cached number
/// this form pushed out of the cache may still be one of its own words (two numbers of one form
/// can share a slot), so it is freed only when the form is dropped, after it was sent. The arrays
/// are left uninitialised past their lengths: a write does not clear room for RL.LIMIT's 71 words.
pub struct Form {
    argv: [MaybeUninit<*mut RedisModuleString>; MAX_WORDS],
    len: usize,
    retired: [MaybeUninit<*mut RedisModuleString>; MAX_WORDS],
    retired_len: usize,
}

impl Form {
    pub fn new() -> Form {
        Form {
            argv: [const { MaybeUninit::uninit() }; MAX_WORDS],
            len: 0,
            retired: [const { MaybeUninit::uninit() }; MAX_WORDS],
            retired_len: 0,
        }
    }

    /// A string that outlives the call (a caller's argument, a word).
    pub fn push(&mut self, s: *mut RedisModuleString) {
        if self.len < MAX_WORDS {
            self.argv[self.len] = MaybeUninit::new(s);
            self.len += 1;
        }
    }

    pub fn word(&mut self, word: Word) {
        self.push(WORDS[word as usize].load(Ordering::Relaxed));
    }

    /// A rule's name (`TOKENBUCKET`, ...).
    pub fn rule(&mut self, algorithm: Algorithm) {
        let index = Algorithm::ALL.iter().position(|a| *a == algorithm).unwrap_or(0);
        self.push(WORDS[4 + index].load(Ordering::Relaxed));
    }

    /// A number (at most MAX_UNITS, so it fits an i64): a policy's parameter spelled out,
    /// CL.THROTTLE's period in ms, a COST, a CAP. The same few recur call after call, so each is
    /// kept as a string in a slot picked by a hash of its value.
    pub fn number(&mut self, value: u64) {
        if value == 1 {
            return self.word(Word::One);
        }
        let slot = (value.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - NUMBER_SLOTS.ilog2())) as usize;
        let s = NUMBERS[slot].string(value as i64, self);
        self.push(s);
    }

    /// A cached string replaced while this form is built: freed when the form is dropped.
    fn retire(&mut self, s: *mut RedisModuleString) {
        if self.retired_len < MAX_WORDS {
            self.retired[self.retired_len] = MaybeUninit::new(s);
            self.retired_len += 1;
        }
    }

    /// `COST c AT t` (COST left out when 1, the default: each replicated word costs the replica and
    /// the AOF), and `CAP n` when the decision used a sliding-log cap other than the default.
    pub fn options(&mut self, cost: u64, at_ms: i64, cap: Option<u64>) {
        if cost != 1 {
            self.word(Word::Cost);
            self.number(cost);
        }
        self.word(Word::At);
        let at = AT.string(at_ms, self);
        self.push(at);
        if let Some(cap) = cap {
            self.word(Word::Cap);
            self.number(cap);
        }
    }

    /// Borrows the form: moving it (over a kilobyte of room for RL.LIMIT's words) cost a memcpy per call.
    pub unsafe fn send(&mut self, ctx: *mut RedisModuleCtx, command: &CStr) {
        if let Some(replicate) = raw::RedisModule_Replicate {
            // The first `len` entries are initialised (push), and only those are read.
            replicate(
                ctx,
                command.as_ptr(),
                c"v".as_ptr(),
                self.argv.as_mut_ptr().cast::<*mut RedisModuleString>(),
                self.len,
            );
        }
    }
}

impl Drop for Form {
    fn drop(&mut self) {
        let Some(free) = (unsafe { raw::RedisModule_FreeString }) else { return };
        for s in &self.retired[..self.retired_len] {
            // Initialised by `retire`, the only writer below `retired_len`.
            unsafe { free(std::ptr::null_mut(), s.assume_init()) };
        }
    }
}

/// A key replaced by a state: `DEL`, `RL.LOADSTATE` of the new state, `PEXPIREAT`, which Redis
/// wraps in MULTI/EXEC. Rare (once per string key taken over), so allocating here is fine.
#[cold]
#[inline(never)]
pub unsafe fn replacement(ctx: *mut RedisModuleCtx, key: *mut RedisModuleString, state: &[u8], expire_at: i64) {
    let Some(replicate) = raw::RedisModule_Replicate else { return };
    replicate(ctx, c"DEL".as_ptr(), c"s".as_ptr(), key);
    replicate(
        ctx,
        crate::datatype::LOAD_COMMAND.as_ptr(),
        c"sb".as_ptr(),
        key,
        state.as_ptr().cast::<c_char>(),
        state.len(),
    );
    replicate(ctx, c"PEXPIREAT".as_ptr(), c"sl".as_ptr(), key, expire_at as c_longlong);
}

/// A number replicated again and again, kept as a string while calls replicate the same value.
/// Redis takes its own reference to what it replicates, so a string replaced here is freed as
/// soon as the form that replaced it has been sent.
struct CachedNumber {
    string: AtomicPtr<RedisModuleString>,
    value: AtomicI64,
}

// Only touched from commands, which Redis runs one at a time on its main thread.
/// The effective time: calls under load mostly share their ms.
static AT: CachedNumber = CachedNumber::new();
/// Every other number, in a slot picked by a hash of its value (`Form::number`).
const NUMBER_SLOTS: usize = 8;
static NUMBERS: [CachedNumber; NUMBER_SLOTS] = [const { CachedNumber::new() }; NUMBER_SLOTS];

impl CachedNumber {
    const fn new() -> CachedNumber {
        CachedNumber { string: AtomicPtr::new(std::ptr::null_mut()), value: AtomicI64::new(-1) }
    }

    /// The string of `value`, cached; one it replaces goes to `form` to be freed after sending.
    fn string(&self, value: i64, form: &mut Form) -> *mut RedisModuleString {
        let cached = self.string.load(Ordering::Relaxed);
        if !cached.is_null() && self.value.load(Ordering::Relaxed) == value {
            return cached;
        }
        let Some(from_number) = (unsafe { raw::RedisModule_CreateStringFromLongLong }) else { return cached };
        let fresh = unsafe { from_number(std::ptr::null_mut(), value as c_longlong) };
        if !cached.is_null() {
            form.retire(cached);
        }
        self.string.store(fresh, Ordering::Relaxed);
        self.value.store(value, Ordering::Relaxed);
        fresh
    }
}
