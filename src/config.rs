//! Module configuration: set with `--loadmodule librl.so <name> <value> ...` or
//! `CONFIG SET rl.<name> <value>`, read with `CONFIG GET rl.*`. Registered in lib.rs with the
//! bounds below, which also check the load-time arguments (`check_module_args`).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use crate::algo::{MAX_TIME_MS, MAX_UNITS};

/// `max-sliding-entries`: the most entries one sliding log keeps (memory bound per key).
pub static MAX_SLIDING_ENTRIES: AtomicI64 = AtomicI64::new(DEFAULT_MAX_SLIDING_ENTRIES);
pub const DEFAULT_MAX_SLIDING_ENTRIES: i64 = 1_000_000;
pub const MAX_SLIDING_ENTRIES_RANGE: (i64, i64) = (1, MAX_UNITS as i64);

/// `max-at-ahead-ms`: how far ahead of the server clock an ordinary client's `AT` may be, so no
/// client can pin a key's time far in the future (a key that never refills and never expires).
pub static MAX_AT_AHEAD_MS: AtomicI64 = AtomicI64::new(DEFAULT_MAX_AT_AHEAD_MS);
pub const DEFAULT_MAX_AT_AHEAD_MS: i64 = 300_000;
pub const MAX_AT_AHEAD_MS_RANGE: (i64, i64) = (0, MAX_TIME_MS);

/// `test-clock` (immutable, load time only): registers RL.TESTCLOCK for tests.
pub static TEST_CLOCK: AtomicBool = AtomicBool::new(false);

/// `test-panic` (immutable, load time only): registers RL.TESTPANIC, which panics inside a
/// command, to prove the panic hook logs before Redis aborts. Never in production.
pub static TEST_PANIC: AtomicBool = AtomicBool::new(false);

/// `bench-floor` (immutable, load time only): registers RL.BENCHFLOOR, the least a limiter write
/// does through the module API, which bench/run.py measures as the floor. Never in production.
pub static BENCH_FLOOR: AtomicBool = AtomicBool::new(false);

pub fn max_sliding_entries() -> u64 {
    MAX_SLIDING_ENTRIES.load(Ordering::Relaxed).max(1) as u64
}

pub fn max_at_ahead_ms() -> i64 {
    MAX_AT_AHEAD_MS.load(Ordering::Relaxed).max(0)
}

enum Value {
    Integer(i64, i64),
    YesNo,
}

/// A setting the module takes: its name, what its value must be (as CONFIG SET checks it), and
/// where a load-time value goes.
struct Setting(&'static str, Value, fn(&str));

/// Stores a value `check_module_args` has already checked (an unparsable one leaves it as it is).
fn store_integer(target: &AtomicI64, value: &str) {
    if let Ok(value) = value.parse() {
        target.store(value, Ordering::Relaxed);
    }
}

const SETTINGS: [Setting; 5] = [
    Setting("max-sliding-entries", Value::Integer(MAX_SLIDING_ENTRIES_RANGE.0, MAX_SLIDING_ENTRIES_RANGE.1), |v| {
        store_integer(&MAX_SLIDING_ENTRIES, v)
    }),
    Setting("max-at-ahead-ms", Value::Integer(MAX_AT_AHEAD_MS_RANGE.0, MAX_AT_AHEAD_MS_RANGE.1), |v| {
        store_integer(&MAX_AT_AHEAD_MS, v)
    }),
    Setting("test-clock", Value::YesNo, |v| TEST_CLOCK.store(v == "yes", Ordering::Relaxed)),
    Setting("test-panic", Value::YesNo, |v| TEST_PANIC.store(v == "yes", Ordering::Relaxed)),
    Setting("bench-floor", Value::YesNo, |v| BENCH_FLOOR.store(v == "yes", Ordering::Relaxed)),
];

/// Checks `--loadmodule librl.so name value ...` with the bounds CONFIG SET applies, then applies
/// them; Err says which argument is wrong, and nothing is applied (the module then refuses to
/// load, rather than run on a clamped or ignored setting).
pub fn apply_module_args(args: &[&str]) -> Result<(), String> {
    let checked = check_module_args(args)?;
    for (setting, value) in checked {
        (setting.2)(value);
    }
    Ok(())
}

fn check_module_args<'a>(args: &[&'a str]) -> Result<Vec<(&'static Setting, &'a str)>, String> {
    let mut checked: Vec<(&'static Setting, &str)> = Vec::new();
    for pair in args.chunks(2) {
        let name = pair[0];
        let setting =
            SETTINGS.iter().find(|s| s.0 == name).ok_or_else(|| format!("unknown module argument '{name}'"))?;
        let value = *pair.get(1).ok_or_else(|| format!("module argument '{name}' needs a value"))?;
        if checked.iter().any(|(s, _)| s.0 == name) {
            return Err(format!("module argument '{name}' given more than once"));
        }
        let expected = match setting.1 {
            Value::Integer(min, max) if !value.parse::<i64>().is_ok_and(|v| (min..=max).contains(&v)) => {
                format!("an integer from {min} to {max}")
            }
            Value::YesNo if value != "yes" && value != "no" => "yes or no".to_string(),
            _ => {
                checked.push((setting, value));
                continue;
            }
        };
        return Err(format!("module argument '{name}' must be {expected}, got '{value}'"));
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::check_module_args;

    #[test]
    fn module_arguments_are_checked_like_config_set() {
        assert!(check_module_args(&[]).is_ok());
        assert_eq!(
            check_module_args(&["max-sliding-entries", "5", "max-at-ahead-ms", "0", "test-clock", "yes"])
                .map(|c| c.len()),
            Ok(3)
        );
        for (args, expected) in [
            (&["max-sliding-entries", "-5"][..], "'max-sliding-entries' must be an integer from 1"),
            (&["max-sliding-entries", "0"], "must be an integer"),
            (&["max-sliding-entries", "ten"], "must be an integer"),
            (&["max-at-ahead-ms", "-1"], "'max-at-ahead-ms' must be"),
            (&["bogus", "1"], "unknown module argument 'bogus'"),
            (&["test-clock", "true"], "must be yes or no"),
            (&["test-clock"], "needs a value"),
            (&["test-clock", "yes", "test-clock", "no"], "more than once"),
        ] {
            let err = check_module_args(args).map(|c| c.len()).unwrap_err();
            assert!(err.contains(expected), "{args:?}: {err}");
        }
    }
}
