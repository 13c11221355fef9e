//! Stored policies: named lists of rules that RL.CHECK applies, changed without a deploy.
//! They are server state, like Redis functions, not keys: kept in RDB (aux data, so also in the
//! AOF's RDB preamble and a replica's full sync), sent to replicas and the AOF as the commands
//! that change them, and re-emitted when an AOF rewrite starts (a rewrite without the RDB preamble
//! has no hook for module data: the RL.POLICY.SET lines go to the new incremental file).

use std::collections::BTreeMap;
use std::ffi::{c_int, c_void};
use std::sync::{Mutex, MutexGuard};

use redis_module::raw::{self, RedisModuleCtx, RedisModuleIO, RedisModuleString};

use crate::limiter::{Algorithm, Spec};
use crate::request::{self, MAX_RULES};
use crate::varint;

/// The longest policy name, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// Names (any bytes) to rules, sorted bytewise as RL.POLICY.LIST returns them. Only commands and
/// persistence callbacks touch it, all on Redis's main thread (a fork child has its own copy).
static POLICIES: Mutex<BTreeMap<Vec<u8>, Vec<Spec>>> = Mutex::new(BTreeMap::new());

fn table() -> MutexGuard<'static, BTreeMap<Vec<u8>, Vec<Spec>>> {
    POLICIES.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The rules of policy `name`, as they are now.
pub fn rules(name: &[u8]) -> Option<Vec<Spec>> {
    table().get(name).cloned()
}

pub fn count() -> usize {
    table().len()
}

/// `ERR no such policy '<name>'`, the error RL.CHECK gives for an unknown policy.
pub fn unknown(name: &[u8]) -> String {
    format!("ERR no such policy '{}'", request::printable(name))
}

/// `RL.POLICY.SET name rule [rule ...]`: creates or replaces a policy (rules checked as RL.LIMIT
/// checks them). Replicated as it was sent.
pub fn set(args: &[&[u8]]) -> Result<(), String> {
    let [name, rules @ ..] = args else {
        return Err("ERR wrong number of arguments for 'RL.POLICY.SET' command".into());
    };
    check_name(name)?;
    let (specs, used) = request::parse_rules(rules)?;
    if let Some(extra) = rules.get(used) {
        return Err(format!("ERR unexpected '{}' after the rules", request::printable(extra)));
    }
    table().insert(name.to_vec(), specs);
    Ok(())
}

/// `RL.POLICY.DEL name`: whether it existed.
pub fn delete(name: &[u8]) -> bool {
    table().remove(name).is_some()
}

pub fn names() -> Vec<Vec<u8>> {
    table().keys().cloned().collect()
}

fn check_name(name: &[u8]) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(format!("ERR a policy name is 1 to {MAX_NAME_BYTES} bytes"));
    }
    Ok(())
}

/// A rule as RL.POLICY.GET returns it: its name, then its parameters in command order.
pub fn describe(spec: &Spec) -> (&'static str, Vec<u64>) {
    let (values, count) = spec.positional();
    (request::rule_name(spec.algorithm()), values[..count].to_vec())
}

/// The whole table as one buffer: `count`, then per policy `name length, name, rule count`, then
/// per rule `algorithm index, parameters...` (varints).
fn encode_table(policies: &BTreeMap<Vec<u8>, Vec<Spec>>) -> Vec<u8> {
    let mut out = Vec::new();
    varint::write(&mut out, policies.len() as u64);
    for (name, specs) in policies {
        varint::write(&mut out, name.len() as u64);
        out.extend_from_slice(name);
        varint::write(&mut out, specs.len() as u64);
        for spec in specs {
            let index = Algorithm::ALL.iter().position(|a| *a == spec.algorithm()).unwrap_or(0);
            varint::write(&mut out, index as u64);
            let (values, count) = spec.positional();
            for value in &values[..count] {
                varint::write(&mut out, *value);
            }
        }
    }
    out
}

/// Inverse of `encode_table`, every rule checked as RL.POLICY.SET checks it; None if anything is off.
fn decode_table(bytes: &[u8]) -> Option<BTreeMap<Vec<u8>, Vec<Spec>>> {
    let mut pos = 0;
    let next = |pos: &mut usize| varint::read(bytes, pos);
    let mut policies = BTreeMap::new();
    for _ in 0..next(&mut pos)? {
        let len = usize::try_from(next(&mut pos)?).ok()?;
        let name = bytes.get(pos..pos.checked_add(len)?)?.to_vec();
        pos += len;
        check_name(&name).ok()?;
        let count = usize::try_from(next(&mut pos)?).ok()?;
        if !(1..=MAX_RULES).contains(&count) {
            return None;
        }
        let mut specs = Vec::with_capacity(count);
        for _ in 0..count {
            let algorithm = *Algorithm::ALL.get(usize::try_from(next(&mut pos)?).ok()?)?;
            let mut values = [0u64; 3];
            for value in values.iter_mut().take(algorithm.parameter_names().len()) {
                *value = next(&mut pos)?;
            }
            specs.push(Spec::from_positional(algorithm, values).ok()?);
        }
        policies.insert(name, specs);
    }
    (pos == bytes.len()).then_some(policies)
}

/// RDB aux data (before the keys): the whole table.
pub unsafe extern "C" fn aux_save(rdb: *mut RedisModuleIO, _when: c_int) {
    raw::save_slice(rdb, &encode_table(&table()));
}

/// Replaces the table with the one saved (a restart, DEBUG RELOAD, a replica's full sync).
pub unsafe extern "C" fn aux_load(rdb: *mut RedisModuleIO, encver: c_int, _when: c_int) -> c_int {
    let loaded = (1..=crate::datatype::ENCODING_VERSION)
        .contains(&encver)
        .then(|| raw::load_string_buffer(rdb).ok())
        .flatten()
        .and_then(|buffer| decode_table(buffer.as_ref()));
    match loaded {
        Some(policies) => {
            *table() = policies;
            raw::REDISMODULE_OK as c_int
        }
        None => {
            crate::log::log_io(rdb, c"warning", "rl: refusing to load a corrupt policy table");
            raw::REDISMODULE_ERR as c_int
        }
    }
}

/// Subscribed to fork events: when the child just born rewrites the AOF, a timer is set to
/// propagate every policy as RL.POLICY.SET into the new incremental AOF file (and to the replicas,
/// where setting a policy to what it already is changes nothing). Not from here: the fork often
/// happens inside a client's command (BGREWRITEAOF, CONFIG SET appendonly yes), and what is
/// replicated here would be propagated together with that command.
pub unsafe extern "C" fn on_fork(
    ctx: *mut RedisModuleCtx,
    _event: raw::RedisModuleEvent,
    subevent: u64,
    _: *mut c_void,
) {
    if subevent != raw::REDISMODULE_SUBEVENT_FORK_CHILD_BORN || count() == 0 || !aof_rewrite_in_progress(ctx) {
        return;
    }
    if let Some(create_timer) = raw::RedisModule_CreateTimer {
        create_timer(ctx, 0, Some(emit_policies), std::ptr::null_mut());
    }
}

/// The timer set by `on_fork`, run outside any command: the table as it is now (a policy changed
/// since the fork is already in the new file, and is written again with its latest rules).
unsafe extern "C" fn emit_policies(ctx: *mut RedisModuleCtx, _: *mut c_void) {
    let Some(replicate) = raw::RedisModule_Replicate else { return };
    let policies = table().clone();
    for (name, specs) in &policies {
        let mut words: Vec<Vec<u8>> = vec![name.clone()];
        for spec in specs {
            let (rule, values) = describe(spec);
            words.push(rule.as_bytes().to_vec());
            words.extend(values.iter().map(|v| v.to_string().into_bytes()));
        }
        let mut argv: Vec<*mut RedisModuleString> = words.iter().map(|w| create_string(w)).collect();
        if argv.iter().all(|s| !s.is_null()) {
            replicate(ctx, c"RL.POLICY.SET".as_ptr(), c"v".as_ptr(), argv.as_mut_ptr(), argv.len());
        }
        if let Some(free) = raw::RedisModule_FreeString {
            for s in argv.into_iter().filter(|s| !s.is_null()) {
                free(std::ptr::null_mut(), s);
            }
        }
    }
}

unsafe fn create_string(bytes: &[u8]) -> *mut RedisModuleString {
    raw::RedisModule_CreateString
        .map_or(std::ptr::null_mut(), |create| create(std::ptr::null_mut(), bytes.as_ptr().cast(), bytes.len()))
}

/// Whether an AOF rewrite is running (INFO persistence), asked once per fork.
unsafe fn aof_rewrite_in_progress(ctx: *mut RedisModuleCtx) -> bool {
    let (Some(call), Some(string_ptr), Some(free_reply)) =
        (raw::RedisModule_Call, raw::RedisModule_CallReplyStringPtr, raw::RedisModule_FreeCallReply)
    else {
        return false;
    };
    let reply = call(ctx, c"INFO".as_ptr(), c"c".as_ptr(), c"persistence".as_ptr());
    if reply.is_null() {
        return false;
    }
    let mut len = 0;
    let ptr = string_ptr(reply, &mut len);
    let info = if ptr.is_null() { &[][..] } else { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
    let running = info.split(|&b| b == b'\n').any(|line| line.trim_ascii() == b"aof_rewrite_in_progress:1");
    free_reply(reply);
    running
}

/// Subscribes `on_fork`; false if the server cannot.
pub fn subscribe(ctx: *mut RedisModuleCtx) -> bool {
    let event = raw::RedisModuleEvent { id: raw::REDISMODULE_EVENT_FORK_CHILD, dataver: 1 };
    unsafe {
        raw::RedisModule_SubscribeToServerEvent
            .is_some_and(|subscribe| subscribe(ctx, event, Some(on_fork)) == raw::REDISMODULE_OK as c_int)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_round_trips_and_garbage_is_refused() {
        let mut policies = BTreeMap::new();
        let rules: Vec<&[u8]> = vec![b"TOKENBUCKET", b"10", b"1", b"1000", b"slidingcounter", b"5", b"60000"];
        let (specs, _) = request::parse_rules(&rules).unwrap();
        policies.insert(b"per-user".to_vec(), specs.clone());
        policies.insert(vec![0, 255, b' '], specs[..1].to_vec());
        let bytes = encode_table(&policies);
        assert_eq!(decode_table(&bytes), Some(policies));
        for cut in 0..bytes.len() {
            assert!(decode_table(&bytes[..cut]).is_none(), "cut {cut}");
        }
        assert_eq!(decode_table(&[0]), Some(BTreeMap::new()));
        // An empty name, no rules, an unknown algorithm, a parameter out of bounds.
        for bad in [&[1, 0, 1, 1, 10, 1][..], &[1, 1, b'a', 0], &[1, 1, b'a', 1, 9, 1, 1], &[1, 1, b'a', 1, 1, 0, 1]] {
            assert!(decode_table(bad).is_none(), "{bad:?}");
        }
    }
}
