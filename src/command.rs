//! Command glue of the rate-limit commands, one generic path for every algorithm and for
//! several rules: parse, open the key, check its type, decide, write back with an absolute expiry
//! (or delete a limiter back to idle), replicate a deterministic form, signal and notify only a
//! real write, reply. Handlers are registered raw (see commands.rs): arguments are read in place,
//! with no RedisString wrapper (retain + free) per argument.

use std::borrow::Cow;
use std::ffi::c_int;
use std::slice;

use redis_module::raw::{self, RedisModuleCtx, RedisModuleString};

use crate::clock;
use crate::composite::{Composite, Outcome};
use crate::config;
use crate::datatype;
use crate::ffi::{arguments, reply_error, string_bytes, OK, WRONGTYPE};
use crate::key::Key;
use crate::limiter::{Limiter, Spec};
use crate::policy;
use crate::replicate::{self, Form};
use crate::request::{Command, ReplyFormat, Request, Target};
use crate::stats::{self, Kind};
use crate::stored::{StoredLimiter, Value};

/// One raw handler per command, each the generic path with its `Command`.
macro_rules! handlers {
    ($($(#[$doc:meta])* $name:ident => $command:expr;)*) => {
        $(
            $(#[$doc])*
            pub unsafe extern "C" fn $name(
                ctx: *mut RedisModuleCtx,
                argv: *mut *mut RedisModuleString,
                argc: c_int,
            ) -> c_int {
                run(ctx, argv, argc, $command)
            }
        )*
    };
}

handlers! {
    token_bucket => Command::TokenBucket;
    fixed_window => Command::Fixed;
    sliding_log => Command::Sliding;
    gcra => Command::Gcra;
    sliding_counter => Command::SlidingCounter;
    /// RL.LIMIT: several rules in one key, all or nothing.
    limit => Command::Limit;
    /// RL.CHECK: RL.LIMIT with a stored policy's rules; replicated as RL.LIMIT with them spelled out.
    check => Command::Check;
    /// redis-cell's CL.THROTTLE on the same GCRA code; replicated as RL.GCRA with AT.
    cl_throttle => Command::ClThrottle;
}

/// What a call decided: the reply's decision, each rule's own reply (DETAILS), and with UPTO the
/// units granted.
struct Answer {
    outcome: Outcome,
    granted: Option<u64>,
}

unsafe fn run(ctx: *mut RedisModuleCtx, argv: *mut *mut RedisModuleString, argc: c_int, command: Command) -> c_int {
    let args = arguments(argv, argc);
    // A single-algorithm call has at most 13 arguments after the name: no allocation for those.
    let mut on_stack: [&[u8]; 14] = [&[]; 14];
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
    let request = match command.parse(bytes) {
        // parse() requires the key, so args[1] exists.
        Ok(request) if args.len() > 1 => request,
        Ok(_) => return fail(ctx, command, "ERR wrong number of arguments"),
        Err(message) => return fail(ctx, command, &message),
    };
    match execute(ctx, args, command, &request) {
        Ok(answer) => {
            let kind = match (answer.outcome.decision.allowed, request.dryrun || request.cost == 0) {
                (true, false) => Kind::Admitted,
                (false, false) => Kind::Rejected,
                (_, true) => Kind::Peek,
            };
            stats::record(command, kind);
            reply_answer(ctx, &request, &answer)
        }
        Err(message) => fail(ctx, command, &message),
    }
}

#[cold]
#[inline(never)]
unsafe fn fail(ctx: *mut RedisModuleCtx, command: Command, message: &str) -> c_int {
    stats::record(command, Kind::Error);
    reply_error(ctx, message)
}

/// The time a call is decided at, and the sliding-log cap it uses: an ordinary client's AT may be
/// at most `max-at-ahead-ms` ahead of the clock and its CAP at most the server's own; the master
/// link and AOF loading replay the master's decision as it was. A replicated write carries CAP
/// only when it is not the default (`replicate_write`), so one without CAP from the master or the
/// AOF was decided under the default, whatever this server's own setting.
unsafe fn time_and_cap(ctx: *mut RedisModuleCtx, request: &Request) -> Result<(i64, u64), String> {
    let clock = clock::now_ms();
    let own_cap = config::max_sliding_entries();
    let trusted = || clock::from_master_or_aof(ctx);
    if let Some(at) = request.at_ms {
        let ahead = config::max_at_ahead_ms();
        if at > clock.saturating_add(ahead) && !trusted() {
            return Err(cold_error(format_args!(
                "ERR AT is more than max-at-ahead-ms ({ahead} ms) ahead of the server clock"
            )));
        }
    }
    if let Some(cap) = request.cap {
        if cap > own_cap && !trusted() {
            return Err(cold_error(format_args!("ERR CAP must be at most max-sliding-entries ({own_cap})")));
        }
    }
    let cap = match request.cap {
        Some(cap) => cap,
        None if own_cap == DEFAULT_CAP || !trusted() => own_cap,
        None => DEFAULT_CAP,
    };
    Ok((request.at_ms.unwrap_or(clock), cap))
}

/// The sliding-log cap a replicated write without CAP stands for.
const DEFAULT_CAP: u64 = config::DEFAULT_MAX_SLIDING_ENTRIES as u64;

/// What a call decides against, its rules resolved.
enum Rules<'a> {
    One(&'a Spec),
    Many(Cow<'a, [Spec]>),
}

impl Rules<'_> {
    /// What an absent key means.
    fn idle(&self, now: i64) -> Value {
        match self {
            Rules::One(spec) => Value::One(Limiter::new(spec, now)),
            Rules::Many(specs) => Value::Rules(Composite::new(specs, now)),
        }
    }

    fn has_log(&self) -> bool {
        match self {
            Rules::One(spec) => spec.algorithm().has_log(),
            Rules::Many(specs) => specs.iter().any(|s| s.algorithm().has_log()),
        }
    }

    /// Decides on `value`; Err (WRONGTYPE naming both) when it holds something else.
    fn decide(&self, value: &mut Value, now: i64, cost: u64, commit: bool, cap: u64) -> Result<Outcome, String> {
        match (value, self) {
            (Value::One(limiter), Rules::One(spec)) if limiter.algorithm() == spec.algorithm() => {
                Ok(Outcome { decision: limiter.decide(spec, now, cost, commit, cap), rules: Vec::new() })
            }
            (Value::Rules(rules), Rules::Many(specs)) => Ok(rules.decide(specs, now, cost, commit, cap)),
            (value, wanted) => Err(wanted.wrong_type(value)),
        }
    }

    /// The WRONGTYPE error naming what the key holds and what the call needs.
    #[cold]
    #[inline(never)]
    fn wrong_type(&self, value: &Value) -> String {
        let (command, needs) = match self {
            Rules::One(spec) => (spec.algorithm().command(), format!("{} limiter", spec.algorithm().description())),
            Rules::Many(_) => ("RL.LIMIT", "RL.LIMIT rules".to_string()),
        };
        format!("WRONGTYPE key holds {}; {command} needs {needs}", value.description())
    }

    /// Decides the request: with UPTO, first how much of its cost is admitted now (a COST 0
    /// peek's remaining), then that much (or COST 1 when nothing is, for its retry).
    fn answer(&self, value: &mut Value, now: i64, request: &Request, cap: u64) -> Result<Answer, String> {
        let granted = if request.upto {
            let available = self.decide(value, now, 0, false, cap)?.decision.remaining;
            Some(available.min(request.cost))
        } else {
            None
        };
        let cost = granted.map_or(request.cost, |g| g.max(1));
        let commit = !request.dryrun && cost > 0;
        let outcome = self.decide(value, now, cost, commit, cap)?;
        Ok(Answer { outcome, granted })
    }
}

/// Decides `request` on the key at args[1]. A write (an admission, or a reconfiguration even when
/// rejected) is stored with its absolute expiry, or deletes a limiter left idle; it is replicated,
/// and signalled and notified once the key is closed. Anything else touches nothing. Errors come
/// in the contract's order: arguments, then the policy, then the key's type.
unsafe fn execute(
    ctx: *mut RedisModuleCtx,
    args: &[*mut RedisModuleString],
    command: Command,
    request: &Request,
) -> Result<Answer, String> {
    let (now, cap) = time_and_cap(ctx, request)?;
    let rules = match &request.target {
        Target::One(spec) => Rules::One(spec),
        Target::Rules(specs) => Rules::Many(Cow::Borrowed(specs)),
        Target::Policy(name) => Rules::Many(Cow::Owned(policy::rules(name).ok_or_else(|| policy::unknown(name))?)),
    };
    let mut key = Key::open(ctx, args[1]);
    // A limiter redis-cell left in a string key, for CL.THROTTLE: taken over on the first write.
    let cell_tat_ns = if command.adopts_cell_keys() { key.cell_integer(ctx, args[1]) } else { None };
    // The state that replaces such a string, replicated as a whole (a replica's RL.GCRA would
    // refuse the string).
    let mut taken_over: Option<Vec<u8>> = None;
    let answer = if key.is_empty() || cell_tat_ns.is_some() {
        create(&mut key, &rules, cell_tat_ns, now, request, cap, &mut taken_over)?
    } else {
        let stored = key.stored_limiter().ok_or(WRONGTYPE)?;
        stored.update(
            |value| rules.answer(value, now, request, cap),
            |answer| answer.as_ref().is_ok_and(|a| a.outcome.decision.wrote),
        )?
    };
    let decision = &answer.outcome.decision;
    if !decision.wrote {
        return Ok(answer);
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
            let cost = answer.granted.map_or(request.cost, |g| g.max(1));
            let cap = (rules.has_log() && cap != DEFAULT_CAP).then_some(cap);
            replicate_write(ctx, args, command, &rules, cost, decision.at_ms, cap);
        }
    }
    key.close_written(ctx, args[1], command.event());
    Ok(answer)
}

/// Decides on an absent key (an idle limiter), or on a string key redis-cell left (`cell_tat_ns`:
/// its state in `taken_over` when written). Kept out of line: a busy server mostly updates live
/// limiters, and the common path stays small in the instruction cache.
#[inline(never)]
unsafe fn create(
    key: &mut Key,
    rules: &Rules,
    cell_tat_ns: Option<u64>,
    now: i64,
    request: &Request,
    cap: u64,
    taken_over: &mut Option<Vec<u8>>,
) -> Result<Answer, String> {
    let mut value = match (cell_tat_ns, rules) {
        (Some(tat_ns), Rules::One(spec)) => {
            Value::One(Limiter::from_cell(spec, tat_ns, now).ok_or("ERR time out of range")?)
        }
        _ => rules.idle(now),
    };
    let answer = rules.answer(&mut value, now, request, cap)?;
    if answer.outcome.decision.wrote {
        *taken_over = cell_tat_ns.map(|_| datatype::encode(&value));
        key.set_value(StoredLimiter::pack(value));
    }
    Ok(answer)
}

/// An error message built only when it is sent: the formatting stays off the common path.
#[cold]
#[inline(never)]
fn cold_error(message: std::fmt::Arguments) -> String {
    message.to_string()
}

/// The write as replicas and the AOF apply it: the same command (RL.CHECK as RL.LIMIT, CL.THROTTLE
/// as RL.GCRA) with its rules, the cost taken, the effective time and the cap it used (None: the
/// default, which a replica applies when CAP is absent; see `time_and_cap`).
unsafe fn replicate_write(
    ctx: *mut RedisModuleCtx,
    args: &[*mut RedisModuleString],
    command: Command,
    rules: &Rules,
    cost: u64,
    at_ms: i64,
    cap: Option<u64>,
) {
    let mut form = Form::new();
    form.push(args[1]);
    // RL.* parameters replicate as sent (parsed strictly, so they read back identically);
    // CL.THROTTLE's are converted (seconds to ms) and RL.CHECK's come from a policy: spelled out.
    let own = command.replicates_own_parameters();
    let specs: &[Spec] = match rules {
        Rules::One(spec) => slice::from_ref(*spec),
        Rules::Many(specs) => specs,
    };
    // The caller's words, in the order the parser read them (a rule's name, then its parameters).
    let mut own_words = args.iter().skip(2).filter(|_| own);
    for spec in specs {
        let (values, count) = spec.positional();
        if let Rules::Many(_) = rules {
            match own_words.next() {
                Some(&word) => form.push(word),
                None => form.rule(spec.algorithm()),
            }
        }
        for &value in &values[..count] {
            match own_words.next() {
                Some(&word) => form.push(word),
                None => form.number(value),
            }
        }
    }
    form.options(cost, at_ms, cap);
    let name = match rules {
        Rules::One(spec) => spec.algorithm().command_cstr(),
        Rules::Many(_) => c"RL.LIMIT",
    };
    form.send(ctx, name);
}

unsafe fn reply_answer(ctx: *mut RedisModuleCtx, request: &Request, answer: &Answer) -> c_int {
    let decision = &answer.outcome.decision;
    let values = match request.reply {
        ReplyFormat::Contract => decision.reply(),
        ReplyFormat::CellThrottle => {
            // redis-cell: limited flag, and times in whole seconds rounded up.
            let seconds = |ms: i64| if ms < 0 { -1 } else { (ms + 999) / 1000 };
            let [allowed, limit, remaining, retry, reset] = decision.reply();
            [1 - allowed, limit, remaining, seconds(retry), seconds(reset)]
        }
    };
    let details: &[[i64; 5]] = if request.details { &answer.outcome.rules } else { &[] };
    let len = values.len() + usize::from(answer.granted.is_some()) + details.len();
    raw::reply_with_array(ctx, len as i64);
    for value in values.into_iter().chain(answer.granted.map(|g| g as i64)) {
        raw::reply_with_long_long(ctx, value);
    }
    for rule in details {
        raw::reply_with_array(ctx, 5);
        for &value in rule {
            raw::reply_with_long_long(ctx, value);
        }
    }
    OK
}
