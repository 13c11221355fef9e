//! Every command the module registers, with its metadata beside it: flags, arity, key spec and
//! the docs COMMAND INFO / COMMAND DOCS show (redis-cli's hints come from them).

use std::ffi::{c_int, CStr};
use std::ptr;

use redis_module::raw::{self, RedisModuleCommandArg as Arg, RedisModuleCommandKeySpec as KeySpec};

use crate::command;

type Handler = unsafe extern "C" fn(*mut raw::RedisModuleCtx, *mut *mut raw::RedisModuleString, c_int) -> c_int;

#[derive(Clone, Copy)]
enum Kind {
    Key,
    Integer,
    Time,
    Text,
    Flag,
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
const OPTIONS: [ArgDoc; 3] = [
    ArgDoc(c"cost", Kind::Integer, Some(c"COST"), true),
    ArgDoc(c"dryrun", Kind::Flag, Some(c"DRYRUN"), true),
    ArgDoc(c"at", Kind::Time, Some(c"AT"), true),
];
const KEY: ArgDoc = ArgDoc(c"key", Kind::Key, None, false);
const fn int(name: &'static CStr) -> ArgDoc {
    ArgDoc(name, Kind::Integer, None, false)
}

const COMMANDS: [CommandDoc; 7] = [
    CommandDoc {
        name: c"RL.TOKENBUCKET",
        handler: command::token_bucket,
        flags: LIMITER_FLAGS,
        arity: -5,
        key_flags: WRITE_KEY,
        summary: c"Takes COST tokens from a bucket of capacity tokens refilled at refill_tokens per refill_ms",
        complexity: c"O(1)",
        args: &[KEY, int(c"capacity"), int(c"refill_tokens"), int(c"refill_ms"), OPTIONS[0], OPTIONS[1], OPTIONS[2]],
    },
    CommandDoc {
        name: c"RL.FIXED",
        handler: command::fixed_window,
        flags: LIMITER_FLAGS,
        arity: -4,
        key_flags: WRITE_KEY,
        summary: c"Counts COST units against limit in epoch-aligned windows of window_ms",
        complexity: c"O(1)",
        args: &[KEY, int(c"limit"), int(c"window_ms"), OPTIONS[0], OPTIONS[1], OPTIONS[2]],
    },
    CommandDoc {
        name: c"RL.SLIDING",
        handler: command::sliding_log,
        flags: LIMITER_FLAGS,
        arity: -4,
        key_flags: WRITE_KEY,
        summary: c"Counts COST units against limit in an exact sliding log of window_ms",
        complexity: c"O(1) amortized; O(N) in the expired or freed entries when rejecting",
        args: &[KEY, int(c"limit"), int(c"window_ms"), OPTIONS[0], OPTIONS[1], OPTIONS[2]],
    },
    CommandDoc {
        name: c"RL.GCRA",
        handler: command::gcra,
        flags: LIMITER_FLAGS,
        arity: -5,
        key_flags: WRITE_KEY,
        summary: c"Generic cell rate algorithm: rate per period_ms with a burst of burst + 1",
        complexity: c"O(1)",
        args: &[KEY, int(c"burst"), int(c"rate"), int(c"period_ms"), OPTIONS[0], OPTIONS[1], OPTIONS[2]],
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
        handler: command::info,
        flags: c"readonly fast",
        arity: 2,
        key_flags: READ_KEY,
        summary: c"Shows a limiter's algorithm, parameters and current state without touching it",
        complexity: c"O(1); O(N) in the entries of a sliding log",
        args: &[KEY],
    },
    CommandDoc {
        name: crate::datatype::LOAD_COMMAND,
        handler: command::load_state,
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
    handler: command::test_clock,
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
    handler: command::test_panic,
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
    arity: 2,
    key_flags: WRITE_KEY,
    summary: c"Benchmarks only: the least a limiter write does through the module API (the floor of bench/run.py)",
    complexity: c"O(1)",
    args: &[KEY],
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
        if unsafe { set_info(ctx, doc) }.is_err() {
            return Err(name);
        }
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
        Kind::Text => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_STRING,
        Kind::Flag => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_PURE_TOKEN,
    };
    arg.key_spec_index = if matches!(kind, Kind::Key) { 0 } else { -1 };
    arg.token = token.map_or(ptr::null(), CStr::as_ptr);
    if optional {
        arg.flags = raw::REDISMODULE_CMD_ARG_OPTIONAL as c_int;
    }
    arg
}
