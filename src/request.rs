//! Parses and validates a command's arguments into a typed `Request`: the one place that
//! knows the syntax. Every error names the bad argument and is raised before anything is touched.

use crate::algo::{fixed_window, gcra, sliding_log, token_bucket, MAX_PERIOD_MS, MAX_TIME_MS, MAX_UNITS};
use crate::limiter::{Algorithm, Spec};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub spec: Spec,
    pub cost: u64,
    pub dryrun: bool,
    /// Explicit time (`AT`), else the server clock is used.
    pub at_ms: Option<i64>,
    /// The sliding-log cap the decision uses (`CAP`, sent by the master with its own setting),
    /// else the server's `max-sliding-entries`.
    pub cap: Option<u64>,
    pub reply: ReplyFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyFormat {
    /// The contract's `[allowed, limit, remaining, retry_after_ms, reset_after_ms]`.
    Contract,
    /// redis-cell's `[limited, limit, remaining, retry_after_s, reset_after_s]`.
    CellThrottle,
}

/// The rate-limit commands (each parses into a `Request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    TokenBucket,
    Fixed,
    Sliding,
    Gcra,
    ClThrottle,
}

impl Command {
    pub const ALL: [Command; 5] =
        [Command::TokenBucket, Command::Fixed, Command::Sliding, Command::Gcra, Command::ClThrottle];

    pub fn name(self) -> &'static str {
        match self {
            Command::ClThrottle => "CL.THROTTLE",
            other => other.algorithm().command(),
        }
    }

    pub fn algorithm(self) -> Algorithm {
        match self {
            Command::TokenBucket => Algorithm::TokenBucket,
            Command::Fixed => Algorithm::FixedWindow,
            Command::Sliding => Algorithm::SlidingLog,
            Command::Gcra | Command::ClThrottle => Algorithm::Gcra,
        }
    }

    /// Whether the command's own positional arguments are the replicated command's (RL.*), or
    /// must be converted (CL.THROTTLE replicates as RL.GCRA with the period in ms).
    pub fn replicates_own_parameters(self) -> bool {
        self != Command::ClThrottle
    }

    /// Whether a string key holding an integer is taken for a limiter redis-cell left (its TAT in
    /// ns), as redis-cell itself reads it. RL.* commands answer WRONGTYPE on any string.
    pub fn adopts_cell_keys(self) -> bool {
        self == Command::ClThrottle
    }

    /// Keyspace event name sent for an admitted write.
    pub fn event(self) -> &'static std::ffi::CStr {
        match self {
            Command::TokenBucket => c"rl.tokenbucket",
            Command::Fixed => c"rl.fixed",
            Command::Sliding => c"rl.sliding",
            Command::Gcra => c"rl.gcra",
            Command::ClThrottle => c"cl.throttle",
        }
    }

    /// Parses `args` = everything after the command name, the key first.
    pub fn parse(self, args: &[&[u8]]) -> Result<Request, String> {
        match self {
            Command::ClThrottle => parse_throttle(args),
            other => parse(other.algorithm(), args),
        }
    }
}

/// Parses an RL.* algorithm command's `args` (everything after the command name, the key first).
fn parse(algorithm: Algorithm, args: &[&[u8]]) -> Result<Request, String> {
    let names = algorithm.parameter_names();
    if args.len() < 1 + names.len() {
        return Err(format!("ERR wrong number of arguments for '{}' command", algorithm.command()));
    }
    let mut values = [0u64; 3];
    for (i, name) in names.iter().enumerate() {
        values[i] = parse_u64(args[1 + i]).ok_or_else(|| bound_error(name))?;
    }
    let spec = match algorithm {
        Algorithm::TokenBucket => Spec::TokenBucket(token_bucket::Params {
            capacity: values[0],
            refill_tokens: values[1],
            refill_ms: values[2],
        }),
        Algorithm::FixedWindow => Spec::FixedWindow(fixed_window::Params { limit: values[0], window_ms: values[1] }),
        Algorithm::SlidingLog => Spec::SlidingLog(sliding_log::Params { limit: values[0], window_ms: values[1] }),
        Algorithm::Gcra => Spec::Gcra(gcra::Params { burst: values[0], rate: values[1], period_ms: values[2] }),
    };
    spec.validate().map_err(bound_error)?;

    let mut request = Request { spec, cost: 1, dryrun: false, at_ms: None, cap: None, reply: ReplyFormat::Contract };
    // CAP only where there is a log to cap.
    const OPTIONS: [&str; 4] = ["COST", "AT", "DRYRUN", "CAP"];
    let mut seen = [false; OPTIONS.len()];
    let mut options = args[1 + names.len()..].iter();
    while let Some(option) = options.next() {
        let index = OPTIONS
            .iter()
            .position(|name| option.eq_ignore_ascii_case(name.as_bytes()))
            .filter(|&i| OPTIONS[i] != "CAP" || algorithm == Algorithm::SlidingLog)
            .ok_or_else(|| format!("ERR unknown option '{}'", printable(option)))?;
        let name = OPTIONS[index];
        if std::mem::replace(&mut seen[index], true) {
            return Err(format!("ERR {name} given more than once"));
        }
        if name == "DRYRUN" {
            request.dryrun = true;
            continue;
        }
        let value = options.next().ok_or_else(|| format!("ERR {name} needs a value"))?;
        let value = parse_u64(value);
        if name == "COST" {
            request.cost = value
                .filter(|v| *v <= MAX_UNITS)
                .ok_or_else(|| format!("ERR COST must be an integer from 0 to {MAX_UNITS}"))?;
        } else if name == "CAP" {
            let cap = value.filter(|v| (1..=MAX_UNITS).contains(v));
            request.cap = Some(cap.ok_or_else(|| format!("ERR CAP must be an integer from 1 to {MAX_UNITS}"))?);
        } else {
            let at = value.and_then(|v| i64::try_from(v).ok()).filter(|v| *v <= MAX_TIME_MS);
            request.at_ms =
                Some(at.ok_or_else(|| format!("ERR AT must be a Unix time in ms from 0 to {MAX_TIME_MS}"))?);
        }
    }
    Ok(request)
}

/// `CL.THROTTLE key max_burst count_per_period period_seconds [quantity]`, redis-cell's syntax,
/// decided by the GCRA with the period in ms.
fn parse_throttle(args: &[&[u8]]) -> Result<Request, String> {
    if args.len() != 4 && args.len() != 5 {
        return Err("ERR wrong number of arguments for 'CL.THROTTLE' command".into());
    }
    let number =
        |i: usize, name: &str, max: u64| parse_u64(args[i]).filter(|v| *v <= max).ok_or_else(|| bound_error(name));
    let burst = number(1, "max_burst", MAX_UNITS - 1)?;
    let rate = number(2, "count_per_period", MAX_UNITS)?;
    let period_seconds = number(3, "period_seconds", MAX_PERIOD_MS / 1000)?;
    let cost = if args.len() == 5 { number(4, "quantity", MAX_UNITS)? } else { 1 };
    let spec = Spec::Gcra(gcra::Params { burst, rate, period_ms: period_seconds * 1000 });
    spec.validate().map_err(|name| match name {
        "rate" => bound_error("count_per_period"),
        "period_ms" => bound_error("period_seconds"),
        _ => bound_error("(max_burst + 1) * period_seconds / count_per_period"),
    })?;
    Ok(Request { spec, cost, dryrun: false, at_ms: None, cap: None, reply: ReplyFormat::CellThrottle })
}

/// The error for an argument out of its documented bounds (or not a number at all).
fn bound_error(name: &str) -> String {
    match name {
        "capacity" | "limit" | "refill_tokens" | "rate" | "count_per_period" => {
            format!("ERR {name} must be an integer from 1 to {MAX_UNITS}")
        }
        "burst" | "max_burst" => format!("ERR {name} must be an integer from 0 to {}", MAX_UNITS - 1),
        "quantity" => format!("ERR {name} must be an integer from 0 to {MAX_UNITS}"),
        "refill_ms" | "window_ms" | "period_ms" => format!("ERR {name} must be an integer from 1 to {MAX_PERIOD_MS}"),
        "period_seconds" => format!("ERR {name} must be an integer from 1 to {}", MAX_PERIOD_MS / 1000),
        // A cross-parameter bound: the time a full limiter takes to drain.
        expression => format!("ERR {expression} (the time to drain a full limiter) must be at most {MAX_PERIOD_MS} ms"),
    }
}

/// Strict unsigned decimal: digits only (no sign, spaces or fraction), fits u64.
pub fn parse_u64(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 20 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    bytes.iter().try_fold(0u64, |acc, d| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

/// An argument echoed in an error: printable ASCII only, so the reply stays one valid line.
fn printable(bytes: &[u8]) -> String {
    let shown: String =
        bytes.iter().take(32).map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '?' }).collect();
    if bytes.len() > 32 {
        shown + "..."
    } else {
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(algorithm: Algorithm, line: &str) -> Result<Request, String> {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        parse(algorithm, &args)
    }

    #[test]
    fn parses_options_in_any_order_and_case() {
        let r = parse_str(Algorithm::TokenBucket, "k 10 1 1000 dryrun AT 5 cost 0").unwrap();
        assert_eq!(r.cost, 0);
        assert!(r.dryrun);
        assert_eq!(r.at_ms, Some(5));
        let r = parse_str(Algorithm::SlidingLog, "k 10 1000").unwrap();
        assert_eq!((r.cost, r.dryrun, r.at_ms), (1, false, None));
    }

    #[test]
    fn every_malformed_argument_is_named() {
        let cases = [
            ("k 10 1", "wrong number of arguments"),
            ("k 0 1 1", "capacity must be"),
            ("k -1 1 1", "capacity must be"),
            ("k 1.5 1 1", "capacity must be"),
            ("k 99999999999999999999999 1 1", "capacity must be"),
            ("k 1000000000000001 1 1", "capacity must be"),
            ("k 10 0 1", "refill_tokens must be"),
            ("k 10 1 0", "refill_ms must be"),
            ("k 10 1 abc", "refill_ms must be"),
            ("k 1000000000000000 1 1000000", "time to drain"),
            ("k 10 1 1 COST", "COST needs a value"),
            ("k 10 1 1 COST -1", "COST must be"),
            ("k 10 1 1 COST 1000000000000001", "COST must be"),
            ("k 10 1 1 COST 1 COST 1", "COST given more than once"),
            ("k 10 1 1 AT 1 at 1", "AT given more than once"),
            ("k 10 1 1 AT 1000000000000001", "AT must be"),
            ("k 10 1 1 AT +5", "AT must be"),
            ("k 10 1 1 DRYRUN DRYRUN", "DRYRUN given more than once"),
            ("k 10 1 1 BOGUS", "unknown option 'BOGUS'"),
            ("k 10 1 1 ", "unknown option ''"),
        ];
        for (line, expected) in cases {
            let err = parse_str(Algorithm::TokenBucket, line).unwrap_err();
            assert!(err.starts_with("ERR "), "{line}: {err}");
            assert!(err.contains(expected), "{line}: {err}");
        }
        let err = parse_str(Algorithm::FixedWindow, "k 10 0").unwrap_err();
        assert!(err.contains("window_ms must be"), "{err}");
        assert!(parse_str(Algorithm::Gcra, "k 0 1 1").is_ok());
        let err = parse_str(Algorithm::Gcra, "k 0 0 1").unwrap_err();
        assert!(err.contains("rate must be"), "{err}");
    }

    #[test]
    fn parses_cl_throttle_like_redis_cell() {
        let throttle = |line: &str| {
            let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
            parse_throttle(&args)
        };
        let r = throttle("k 15 30 60").unwrap();
        assert_eq!(r.spec, Spec::Gcra(gcra::Params { burst: 15, rate: 30, period_ms: 60_000 }));
        assert_eq!((r.cost, r.reply), (1, ReplyFormat::CellThrottle));
        assert_eq!(throttle("k 15 30 60 0").unwrap().cost, 0);
        for (line, expected) in [
            ("k 15 30", "wrong number of arguments"),
            ("k 15 30 60 1 1", "wrong number of arguments"),
            ("k -1 30 60", "max_burst must be"),
            ("k 15 0 60", "count_per_period must be"),
            ("k 15 30 0", "period_seconds must be"),
            ("k 15 30 60 x", "quantity must be"),
        ] {
            let err = throttle(line).unwrap_err();
            assert!(err.starts_with("ERR ") && err.contains(expected), "{line}: {err}");
        }
    }

    #[test]
    fn binary_options_are_echoed_printably() {
        let args: Vec<&[u8]> = vec![b"k", b"1", b"1", b"\xff\r\n\0x"];
        assert_eq!(parse(Algorithm::FixedWindow, &args).unwrap_err(), "ERR unknown option '????x'");
    }
}
