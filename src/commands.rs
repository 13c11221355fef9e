//! Every command the module registers, with its metadata beside it: flags, arity, key spec and
//! the docs COMMAND INFO / COMMAND DOCS show (redis-cli's hints come from them).

use std::ffi::{c_int, CStr};
use std::ptr;

use redis_module::raw::{self, RedisModuleCommandArg as Arg, RedisModuleCommandKeySpec as KeySpec};

use crate::{admin, command};

type Handler = unsafe extern "C" fn(*mut raw::RedisModuleCtx, *mut *mut raw::RedisModuleString, c_int) -> c_int;

#[derive(Clone, Copy)]
enum Kind {
    Key,
    Integer,
    Time,
    Text,
    Flag,
    /// Rule words (name and parameters), one or more.
    Rules,
}

/// One argument: name, kind, the token before it (options), and whether it may be left out.
#[derive(Clone, Copy)]
struct ArgDoc(&'static CStr, Kind, Option<&'static CStr>, bool);

struct CommandDoc {
    name: &'static CStr,
    handler: Handler,
    flags: &'static CStr,
    /// Redis arity: positive = exact, negative = at least.
    arity: c_int,
    /// Key spec flags for the key at argv[1]; 0 when the command takes no key.
    key_flags: u32,
    summary: &'static CStr,
    complexity: &'static CStr,
    args: &'static [ArgDoc],
}

const WRITE_KEY: u32 = raw::REDISMODULE_CMD_KEY_RW | raw::REDISMODULE_CMD_KEY_UPDATE;
const READ_KEY: u32 = raw::REDISMODULE_CMD_KEY_RO | raw::REDISMODULE_CMD_KEY_ACCESS;
const LIMITER_FLAGS: &CStr = c"write deny-oom fast";
const OPTIONS: [ArgDoc; 6] = [
    ArgDoc(c"cost", Kind::Integer, Some(c"COST"), true),
    ArgDoc(c"dryrun", Kind::Flag, Some(c"DRYRUN"), true),
    ArgDoc(c"at", Kind::Time, Some(c"AT"), true),
    ArgDoc(c"upto", Kind::Flag, Some(c"UPTO"), true),
    ArgDoc(c"details", Kind::Flag, Some(c"DETAILS"), true),
    ArgDoc(c"cap", Kind::Integer, Some(c"CAP"), true),
];
/// Every option of a single-algorithm command (RL.SLIDING adds CAP).
const SINGLE: [ArgDoc; 4] = [OPTIONS[0], OPTIONS[1], OPTIONS[2], OPTIONS[3]];
const KEY: ArgDoc = ArgDoc(c"key", Kind::Key, None, false);
const fn int(name: &'static CStr) -> ArgDoc {
    ArgDoc(name, Kind::Integer, None, false)
}

const COMMANDS: [CommandDoc; 14] = [
    CommandDoc {
        name: c"RL.TOKENBUCKET",
        handler: command::token_bucket,
        flags: LIMITER_FLAGS,
        arity: -5,
        key_flags: WRITE_KEY,
        summary: c"Takes COST tokens from a bucket of capacity tokens refilled at refill_tokens per refill_ms",
        complexity: c"O(1)",
        args: &[KEY, int(c"capacity"), int(c"refill_tokens"), int(c"refill_ms"), SINGLE[0], SINGLE[1], SINGLE[2], SINGLE[3]],
    },
    CommandDoc {
        name: c"RL.FIXED",
        handler: command::fixed_window,
        flags: LIMITER_FLAGS,
        arity: -4,
        key_flags: WRITE_KEY,
        summary: c"Counts COST units against limit in epoch-aligned windows of window_ms",
        complexity: c"O(1)",
        args: &[KEY, int(c"limit"), int(c"window_ms"), SINGLE[0], SINGLE[1], SINGLE[2], SINGLE[3]],
    },
    CommandDoc {
        name: c"RL.SLIDING",
        handler: command::sliding_log,
        flags: LIMITER_FLAGS,
        arity: -4,
        key_flags: WRITE_KEY,
        summary: c"Counts COST units against limit in an exact sliding log of window_ms",
        complexity: c"O(log N) in the entries, plus amortized pruning of expired ones",
        args: &[KEY, int(c"limit"), int(c"window_ms"), SINGLE[0], SINGLE[1], SINGLE[2], SINGLE[3], OPTIONS[5]],
    },
    CommandDoc {
        name: c"RL.SLIDINGCOUNTER",
        handler: command::sliding_counter,
        flags: LIMITER_FLAGS,
        arity: -4,
        key_flags: WRITE_KEY,
        summary: c"Approximate sliding window: the previous fixed window weighted by its overlap, in O(1) memory",
        complexity: c"O(1)",
        args: &[KEY, int(c"limit"), int(c"window_ms"), SINGLE[0], SINGLE[1], SINGLE[2], SINGLE[3]],
    },
    CommandDoc {
        name: c"RL.LIMIT",
        handler: command::limit,
        flags: LIMITER_FLAGS,
        arity: -5,
        key_flags: WRITE_KEY,
        summary: c"Several rules in one key, all or nothing: TOKENBUCKET c r ms | FIXED l ms | SLIDING l ms | GCRA b r ms | SLIDINGCOUNTER l ms",
        complexity: c"O(R) in the rules (each as its own command)",
        args: &[KEY, ArgDoc(c"rule", Kind::Rules, None, false), OPTIONS[0], OPTIONS[1], OPTIONS[2], OPTIONS[3], OPTIONS[4], OPTIONS[5]],
    },
    CommandDoc {
        name: c"RL.CHECK",
        handler: command::check,
        flags: LIMITER_FLAGS,
        arity: -3,
        key_flags: WRITE_KEY,
        summary: c"RL.LIMIT with the current rules of a stored policy",
        complexity: c"O(R) in the policy's rules",
        args: &[KEY, ArgDoc(c"policy", Kind::Text, None, false), OPTIONS[0], OPTIONS[1], OPTIONS[2], OPTIONS[3], OPTIONS[4], OPTIONS[5]],
    },
    CommandDoc {
        name: c"RL.POLICY.SET",
        handler: admin::policy_set,
        flags: c"write deny-oom",
        arity: -5,
        key_flags: 0,
        summary: c"Creates or replaces a named list of rules (server state, not a key)",
        complexity: c"O(log P + R)",
        args: &[ArgDoc(c"name", Kind::Text, None, false), ArgDoc(c"rule", Kind::Rules, None, false)],
    },
    CommandDoc {
        name: c"RL.POLICY.GET",
        handler: admin::policy_get,
        flags: c"readonly fast",
        arity: 2,
        key_flags: 0,
        summary: c"A policy's rules as arrays, or nil",
        complexity: c"O(log P + R)",
        args: &[ArgDoc(c"name", Kind::Text, None, false)],
    },
    CommandDoc {
        name: c"RL.POLICY.DEL",
        handler: admin::policy_del,
        flags: c"write",
        arity: 2,
        key_flags: 0,
        summary: c"Deletes a policy: 1 if it existed, else 0",
        complexity: c"O(log P)",
        args: &[ArgDoc(c"name", Kind::Text, None, false)],
    },
    CommandDoc {
        name: c"RL.POLICY.LIST",
        handler: admin::policy_list,
        flags: c"readonly",
        arity: 1,
        key_flags: 0,
        summary: c"Every policy name, sorted bytewise",
        complexity: c"O(P)",
        args: &[],
    },
    CommandDoc {
        name: c"RL.GCRA",
        handler: command::gcra,
        flags: LIMITER_FLAGS,
        arity: -5,
        key_flags: WRITE_KEY,
        summary: c"Generic cell rate algorithm: rate per period_ms with a burst of burst + 1",
        complexity: c"O(1)",
        args: &[KEY, int(c"burst"), int(c"rate"), int(c"period_ms"), SINGLE[0], SINGLE[1], SINGLE[2], SINGLE[3]],
    },
    CommandDoc {
        name: c"CL.THROTTLE",
        handler: command::cl_throttle,
        flags: LIMITER_FLAGS,
        arity: -5,
        key_flags: WRITE_KEY,
        summary: c"redis-cell compatible GCRA throttle (limited, limit, remaining, retry_after_s, reset_after_s)",
        complexity: c"O(1)",
        args: &[
            KEY,
            int(c"max_burst"),
            int(c"count_per_period"),
            int(c"period_seconds"),
            ArgDoc(c"quantity", Kind::Integer, None, true),
        ],
    },
    CommandDoc {
        name: c"RL.INFO",
        handler: admin::info,
        flags: c"readonly fast",
        arity: 2,
        key_flags: READ_KEY,
        summary: c"Shows a limiter's algorithm, parameters and current state without touching it",
        complexity: c"O(1); O(N) in the entries of a sliding log",
        args: &[KEY],
    },
    CommandDoc {
        name: crate::datatype::LOAD_COMMAND,
        handler: admin::load_state,
        flags: c"write deny-oom",
        arity: 3,
        key_flags: raw::REDISMODULE_CMD_KEY_OW | raw::REDISMODULE_CMD_KEY_UPDATE,
        summary: c"Internal: recreates a limiter from its serialized state (emitted by the AOF rewrite)",
        complexity: c"O(N) in the size of the state",
        args: &[KEY, ArgDoc(c"state", Kind::Text, None, false)],
    },
];

/// Registered only when the module is loaded with `test-clock yes`.
const TEST_CLOCK: CommandDoc = CommandDoc {
    name: c"RL.TESTCLOCK",
    handler: admin::test_clock,
    flags: c"admin",
    arity: 2,
    key_flags: 0,
    summary: c"Tests only: pins the module clock to a Unix time in ms, or OFF",
    complexity: c"O(1)",
    args: &[ArgDoc(c"ms", Kind::Text, None, false)],
};

/// Registered only when the module is loaded with `test-panic yes`.
const TEST_PANIC: CommandDoc = CommandDoc {
    name: c"RL.TESTPANIC",
    handler: admin::test_panic,
    flags: c"admin",
    arity: 1,
    key_flags: 0,
    summary: c"Tests only: panics inside a command to show the panic reaches the log (aborts Redis)",
    complexity: c"O(1)",
    args: &[],
};

/// Registered only when the module is loaded with `bench-floor yes`: bench/run.py's floor.
const BENCH_FLOOR: CommandDoc = CommandDoc {
    name: c"RL.BENCHFLOOR",
    handler: crate::bench_floor::bench_floor,
    flags: LIMITER_FLAGS,
    arity: -2,
    key_flags: WRITE_KEY,
    summary: c"Benchmarks only: the least a limiter write does through the module API (the floor of bench/run.py)",
    complexity: c"O(1)",
    args: &[
        KEY,
        ArgDoc(c"packed", Kind::Flag, Some(c"PACKED"), true),
        ArgDoc(c"boxed", Kind::Flag, Some(c"BOXED"), true),
    ],
};

/// Creates every command; Err names the one that failed.
pub fn register(
    ctx: *mut raw::RedisModuleCtx,
    test_clock: bool,
    test_panic: bool,
    bench_floor: bool,
) -> Result<(), &'static str> {
    let extra =
        [test_clock.then_some(&TEST_CLOCK), test_panic.then_some(&TEST_PANIC), bench_floor.then_some(&BENCH_FLOOR)];
    // Newer servers (7.4+) take module-defined ACL categories: `+@ratelimit` grants every RL.*.
    let custom_category = unsafe {
        raw::RedisModule_AddACLCategory.is_some_and(|add| add(ctx, RATELIMIT.as_ptr()) == raw::REDISMODULE_OK as c_int)
    };
    for doc in COMMANDS.iter().chain(extra.into_iter().flatten()) {
        let name = doc.name.to_str().unwrap_or("?");
        let key = if doc.key_flags == 0 { 0 } else { 1 };
        let created = unsafe {
            raw::RedisModule_CreateCommand.map_or(raw::REDISMODULE_ERR as c_int, |create| {
                create(ctx, doc.name.as_ptr(), Some(doc.handler), doc.flags.as_ptr(), key, key, key)
            })
        };
        if created != raw::REDISMODULE_OK as c_int {
            return Err(name);
        }
        if unsafe { set_info(ctx, doc) }.is_err() || unsafe { set_acl_categories(ctx, doc, custom_category) }.is_err() {
            return Err(name);
        }
    }
    Ok(())
}

const RATELIMIT: &CStr = c"ratelimit";

/// ACL categories from the command's flags (`@write`/`@read`, `@fast`) and `@ratelimit` where the
/// server has it, so `+@write` or `+@fast` users may call RL.*. Redis 7.2+; 7.0 has no such API
/// (there, grant the commands by name).
unsafe fn set_acl_categories(ctx: *mut raw::RedisModuleCtx, doc: &CommandDoc, custom: bool) -> Result<(), ()> {
    let (Some(get_command), Some(set_categories)) =
        (raw::RedisModule_GetCommand, raw::RedisModule_SetCommandACLCategories)
    else {
        return Ok(());
    };
    let flags = doc.flags.to_str().unwrap_or("");
    let has = |flag: &str| flags.split(' ').any(|f| f == flag);
    if has("admin") {
        return Ok(()); // tests-only commands: Redis puts admin commands in @admin and @dangerous
    }
    let mut categories = Vec::new();
    categories.push(if has("write") { "write" } else { "read" });
    if has("fast") {
        categories.push("fast");
    }
    if custom {
        categories.push("ratelimit");
    }
    let categories = std::ffi::CString::new(categories.join(" ")).map_err(|_| ())?;
    let command = get_command(ctx, doc.name.as_ptr());
    if command.is_null() || set_categories(command, categories.as_ptr()) != raw::REDISMODULE_OK as c_int {
        return Err(());
    }
    Ok(())
}

/// RM_SetCommandInfo copies everything it is given, so the structures here live only for the call.
unsafe fn set_info(ctx: *mut raw::RedisModuleCtx, doc: &CommandDoc) -> Result<(), ()> {
    let (Some(get_command), Some(set_command_info)) = (raw::RedisModule_GetCommand, raw::RedisModule_SetCommandInfo)
    else {
        return Ok(()); // an older server: commands work, without docs
    };
    let command = get_command(ctx, doc.name.as_ptr());
    if command.is_null() {
        return Err(());
    }
    let mut version = raw::RedisModuleCommandInfoVersion {
        version: 1,
        sizeof_historyentry: std::mem::size_of::<raw::RedisModuleCommandHistoryEntry>(),
        sizeof_keyspec: std::mem::size_of::<KeySpec>(),
        sizeof_arg: std::mem::size_of::<Arg>(),
    };
    let mut key_specs: Vec<KeySpec> = Vec::new();
    if doc.key_flags != 0 {
        let mut spec: KeySpec = std::mem::zeroed();
        spec.flags = u64::from(doc.key_flags);
        spec.begin_search_type = raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_INDEX;
        spec.bs.index.pos = 1;
        spec.find_keys_type = raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_RANGE;
        spec.fk.range.lastkey = 0;
        spec.fk.range.keystep = 1;
        spec.fk.range.limit = 0;
        // Zeroed terminator.
        key_specs = vec![spec, std::mem::zeroed()];
    }
    let mut args: Vec<Arg> = doc.args.iter().map(|a| arg(a)).collect();
    args.push(std::mem::zeroed());
    let mut info: raw::RedisModuleCommandInfo = std::mem::zeroed();
    info.version = &mut version;
    info.summary = doc.summary.as_ptr();
    info.complexity = doc.complexity.as_ptr();
    info.since = c"0.1.0".as_ptr();
    info.arity = doc.arity;
    info.key_specs = if key_specs.is_empty() { ptr::null_mut() } else { key_specs.as_mut_ptr() };
    info.args = args.as_mut_ptr();
    if set_command_info(command, &info) == raw::REDISMODULE_OK as c_int {
        Ok(())
    } else {
        Err(())
    }
}

unsafe fn arg(doc: &ArgDoc) -> Arg {
    let ArgDoc(name, kind, token, optional) = *doc;
    let mut arg: Arg = std::mem::zeroed();
    arg.name = name.as_ptr();
    arg.type_ = match kind {
        Kind::Key => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_KEY,
        Kind::Integer => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_INTEGER,
        Kind::Time => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_UNIX_TIME,
        Kind::Text | Kind::Rules => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_STRING,
        Kind::Flag => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_PURE_TOKEN,
    };
    arg.key_spec_index = if matches!(kind, Kind::Key) { 0 } else { -1 };
    arg.token = token.map_or(ptr::null(), CStr::as_ptr);
    if optional {
        arg.flags |= raw::REDISMODULE_CMD_ARG_OPTIONAL as c_int;
    }
    if matches!(kind, Kind::Rules) {
        arg.flags |= raw::REDISMODULE_CMD_ARG_MULTIPLE as c_int;
    }
    arg
}
