//! Parses and validates a command's arguments into a typed `Request`: the one place that
//! knows the syntax. Every error names the bad argument and is raised before anything is touched.

use crate::algo::{gcra, MAX_PERIOD_MS, MAX_TIME_MS, MAX_UNITS};
use crate::limiter::{Algorithm, Spec};

/// The most rules one RL.LIMIT call or policy holds.
pub const MAX_RULES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub target: Target<'a>,
    pub cost: u64,
    pub dryrun: bool,
    /// Explicit time (`AT`), else the server clock is used.
    pub at_ms: Option<i64>,
    /// The sliding-log cap the decision uses (`CAP`, sent by the master with its own setting),
    /// else the server's `max-sliding-entries`.
    pub cap: Option<u64>,
    /// `UPTO`: grant the most of `cost` admitted now (a partial grant), replied as a 6th integer.
    pub upto: bool,
    /// `DETAILS` (RL.LIMIT / RL.CHECK): one 5-integer array per rule after the reply.
    pub details: bool,
    pub reply: ReplyFormat,
}

/// What a call is decided against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    /// One limiter of one algorithm (RL.TOKENBUCKET, ..., CL.THROTTLE).
    One(Spec),
    /// Several rules in one key, all or nothing (RL.LIMIT).
    Rules(Vec<Spec>),
    /// The rules of a stored policy, by name (RL.CHECK).
    Policy(&'a [u8]),
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
    SlidingCounter,
    ClThrottle,
    Limit,
    Check,
}

impl Command {
    pub const ALL: [Command; 8] = [
        Command::TokenBucket,
        Command::Fixed,
        Command::Sliding,
        Command::Gcra,
        Command::SlidingCounter,
        Command::ClThrottle,
        Command::Limit,
        Command::Check,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Command::ClThrottle => "CL.THROTTLE",
            Command::Limit => "RL.LIMIT",
            Command::Check => "RL.CHECK",
            other => other.algorithm().map_or("", Algorithm::command),
        }
    }

    /// The algorithm of a single-algorithm command.
    pub fn algorithm(self) -> Option<Algorithm> {
        Some(match self {
            Command::TokenBucket => Algorithm::TokenBucket,
            Command::Fixed => Algorithm::FixedWindow,
            Command::Sliding => Algorithm::SlidingLog,
            Command::Gcra | Command::ClThrottle => Algorithm::Gcra,
            Command::SlidingCounter => Algorithm::SlidingCounter,
            Command::Limit | Command::Check => return None,
        })
    }

    /// Whether the command's own positional arguments are the replicated command's (RL.*), or
    /// must be spelled out (CL.THROTTLE's are converted to ms; RL.CHECK's come from a policy).
    pub fn replicates_own_parameters(self) -> bool {
        !matches!(self, Command::ClThrottle | Command::Check)
    }

    /// Whether a string key holding an integer is taken for a limiter redis-cell left (its TAT in
    /// ns), as redis-cell itself reads it. RL.* commands answer WRONGTYPE on any string.
    pub fn adopts_cell_keys(self) -> bool {
        self == Command::ClThrottle
    }

    /// Keyspace event name sent for a write.
    pub fn event(self) -> &'static std::ffi::CStr {
        match self {
            Command::TokenBucket => c"rl.tokenbucket",
            Command::Fixed => c"rl.fixed",
            Command::Sliding => c"rl.sliding",
            Command::Gcra => c"rl.gcra",
            Command::SlidingCounter => c"rl.slidingcounter",
            Command::ClThrottle => c"cl.throttle",
            Command::Limit => c"rl.limit",
            Command::Check => c"rl.check",
        }
    }

    /// Parses `args` = everything after the command name, the key first.
    pub fn parse<'a>(self, args: &[&'a [u8]]) -> Result<Request<'a>, String> {
        parse_command(self, args)
    }
}

fn parse_command<'a>(command: Command, args: &[&'a [u8]]) -> Result<Request<'a>, String> {
    let wrong_arity = || format!("ERR wrong number of arguments for '{}' command", command.name());
    let (target, options) = match command {
        Command::ClThrottle => return parse_throttle(args),
        Command::Limit => {
            let (rules, used) = parse_rules(args.get(1..).ok_or_else(wrong_arity)?)?;
            (Target::Rules(rules), &args[1 + used..])
        }
        Command::Check => {
            let name = args.get(1).ok_or_else(wrong_arity)?;
            (Target::Policy(name), &args[2..])
        }
        single => {
            let algorithm = single.algorithm().ok_or_else(wrong_arity)?;
            let count = algorithm.parameter_names().len();
            let parameters = args.get(1..1 + count).ok_or_else(wrong_arity)?;
            let spec = parse_spec(algorithm, parameters).map_err(|name| format!("ERR {}", bound_error(name)))?;
            (Target::One(spec), &args[1 + count..])
        }
    };
    let mut request = Request {
        target,
        cost: 1,
        dryrun: false,
        at_ms: None,
        cap: None,
        upto: false,
        details: false,
        reply: ReplyFormat::Contract,
    };
    parse_options(&mut request, options)?;
    Ok(request)
}

/// Options in any order and any case, each at most once. CAP only where there can be a log to
/// cap; DETAILS only with several rules.
fn parse_options(request: &mut Request, options: &[&[u8]]) -> Result<(), String> {
    const OPTIONS: [&str; 6] = ["COST", "AT", "DRYRUN", "CAP", "UPTO", "DETAILS"];
    let may_have_log = match &request.target {
        Target::One(spec) => spec.algorithm().has_log(),
        _ => true,
    };
    let several = !matches!(request.target, Target::One(_));
    let mut seen = [false; OPTIONS.len()];
    let mut options = options.iter();
    while let Some(option) = options.next() {
        let index = OPTIONS
            .iter()
            .position(|name| option.eq_ignore_ascii_case(name.as_bytes()))
            .filter(|&i| match OPTIONS[i] {
                "CAP" => may_have_log,
                "DETAILS" => several,
                _ => true,
            })
            .ok_or_else(|| format!("ERR unknown option '{}'", printable(option)))?;
        let name = OPTIONS[index];
        if std::mem::replace(&mut seen[index], true) {
            return Err(format!("ERR {name} given more than once"));
        }
        match name {
            "DRYRUN" => request.dryrun = true,
            "UPTO" => request.upto = true,
            "DETAILS" => request.details = true,
            _ => {
                let value = options.next().ok_or_else(|| format!("ERR {name} needs a value"))?;
                let value = parse_u64(value);
                match name {
                    "COST" => {
                        request.cost = value
                            .filter(|v| *v <= MAX_UNITS)
                            .ok_or_else(|| format!("ERR COST must be an integer from 0 to {MAX_UNITS}"))?;
                    }
                    "CAP" => {
                        let cap = value.filter(|v| (1..=MAX_UNITS).contains(v));
                        request.cap =
                            Some(cap.ok_or_else(|| format!("ERR CAP must be an integer from 1 to {MAX_UNITS}"))?);
                    }
                    _ => {
                        let at = value.and_then(|v| i64::try_from(v).ok()).filter(|v| *v <= MAX_TIME_MS);
                        request.at_ms = Some(
                            at.ok_or_else(|| format!("ERR AT must be a Unix time in ms from 0 to {MAX_TIME_MS}"))?,
                        );
                    }
                }
            }
        }
    }
    if request.upto && (!seen[0] || request.cost == 0) {
        return Err("ERR UPTO needs COST n with n >= 1".into());
    }
    Ok(())
}

/// One algorithm's positional parameters; Err names the parameter out of bounds.
fn parse_spec(algorithm: Algorithm, parameters: &[&[u8]]) -> Result<Spec, &'static str> {
    let names = algorithm.parameter_names();
    let mut values = [0u64; 3];
    for (i, name) in names.iter().enumerate() {
        values[i] = parameters.get(i).and_then(|p| parse_u64(p)).ok_or(*name)?;
    }
    Spec::from_positional(algorithm, values)
}

/// The rule names, as RL.LIMIT and RL.POLICY.SET take them (any case) and RL.POLICY.GET returns them.
pub fn rule_name(algorithm: Algorithm) -> &'static str {
    algorithm.command().trim_start_matches("RL.")
}

/// Rules from the start of `args` (`TOKENBUCKET c r ms`, `FIXED l ms`, ...): 1 to 16 of them, up
/// to the first word that names no rule. Returns them with the count of words they took.
pub fn parse_rules(args: &[&[u8]]) -> Result<(Vec<Spec>, usize), String> {
    let mut rules = Vec::new();
    let mut at = 0;
    while let Some(word) = args.get(at) {
        let Some(algorithm) = Algorithm::ALL.into_iter().find(|a| word.eq_ignore_ascii_case(rule_name(*a).as_bytes()))
        else {
            break;
        };
        let number = rules.len() + 1;
        if number > MAX_RULES {
            return Err(format!("ERR at most {MAX_RULES} rules"));
        }
        let count = algorithm.parameter_names().len();
        let parameters = &args[at + 1..(at + 1 + count).min(args.len())];
        let spec = parse_spec(algorithm, parameters)
            .map_err(|name| format!("ERR rule {number} ({}): {}", rule_name(algorithm), bound_error(name)))?;
        rules.push(spec);
        at += 1 + count;
    }
    if rules.is_empty() {
        let found = args.first().map_or(String::from("nothing"), |w| format!("'{}'", printable(w)));
        return Err(format!(
            "ERR expected a rule (TOKENBUCKET, FIXED, SLIDING, GCRA or SLIDINGCOUNTER with its parameters), got {found}"
        ));
    }
    Ok((rules, at))
}

/// `CL.THROTTLE key max_burst count_per_period period_seconds [quantity]`, redis-cell's syntax,
/// decided by the GCRA with the period in ms.
fn parse_throttle<'a>(args: &[&'a [u8]]) -> Result<Request<'a>, String> {
    if args.len() != 4 && args.len() != 5 {
        return Err("ERR wrong number of arguments for 'CL.THROTTLE' command".into());
    }
    let number = |i: usize, name: &str, max: u64| {
        parse_u64(args[i]).filter(|v| *v <= max).ok_or_else(|| format!("ERR {}", bound_error(name)))
    };
    let burst = number(1, "max_burst", MAX_UNITS - 1)?;
    let rate = number(2, "count_per_period", MAX_UNITS)?;
    let period_seconds = number(3, "period_seconds", MAX_PERIOD_MS / 1000)?;
    let cost = if args.len() == 5 { number(4, "quantity", MAX_UNITS)? } else { 1 };
    let spec = Spec::Gcra(gcra::Params { burst, rate, period_ms: period_seconds * 1000 });
    spec.validate().map_err(|name| {
        let name = match name {
            "rate" => "count_per_period",
            "period_ms" => "period_seconds",
            _ => "(max_burst + 1) * period_seconds / count_per_period",
        };
        format!("ERR {}", bound_error(name))
    })?;
    Ok(Request {
        target: Target::One(spec),
        cost,
        dryrun: false,
        at_ms: None,
        cap: None,
        upto: false,
        details: false,
        reply: ReplyFormat::CellThrottle,
    })
}

/// What an argument out of its documented bounds (or not a number at all) must be.
fn bound_error(name: &str) -> String {
    match name {
        "capacity" | "limit" | "refill_tokens" | "rate" | "count_per_period" => {
            format!("{name} must be an integer from 1 to {MAX_UNITS}")
        }
        "burst" | "max_burst" => format!("{name} must be an integer from 0 to {}", MAX_UNITS - 1),
        "quantity" => format!("{name} must be an integer from 0 to {MAX_UNITS}"),
        "refill_ms" | "window_ms" | "period_ms" => format!("{name} must be an integer from 1 to {MAX_PERIOD_MS}"),
        "period_seconds" => format!("{name} must be an integer from 1 to {}", MAX_PERIOD_MS / 1000),
        // A cross-parameter bound: the time a full limiter takes to drain.
        expression => format!("{expression} (the time to drain a full limiter) must be at most {MAX_PERIOD_MS} ms"),
    }
}

/// Strict unsigned decimal: digits only (no sign, spaces or fraction), fits u64.
pub fn parse_u64(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    // Up to 19 digits cannot overflow; only a 20-digit number needs checked arithmetic.
    let mut value = 0u64;
    for &byte in bytes {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = if bytes.len() < 20 {
            value * 10 + u64::from(digit)
        } else {
            value.checked_mul(10)?.checked_add(u64::from(digit))?
        };
    }
    Some(value)
}

/// An argument echoed in an error: printable ASCII only, so the reply stays one valid line.
pub fn printable(bytes: &[u8]) -> String {
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

    fn parse_line(command: Command, line: &str) -> Result<Request<'_>, String> {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        command.parse(&args)
    }

    fn parse_str(algorithm: Algorithm, line: &str) -> Result<Request<'_>, String> {
        let command = Command::ALL.into_iter().find(|c| c.algorithm() == Some(algorithm)).unwrap();
        parse_line(command, line)
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
        let throttle = |line: &'static str| {
            let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
            parse_throttle(&args)
        };
        let r = throttle("k 15 30 60").unwrap();
        assert_eq!(r.target, Target::One(Spec::Gcra(gcra::Params { burst: 15, rate: 30, period_ms: 60_000 })));
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
        assert_eq!(Command::Fixed.parse(&args).unwrap_err(), "ERR unknown option '????x'");
    }

    #[test]
    fn rules_come_first_then_options() {
        let r = parse_line(Command::Limit, "k tokenbucket 10 1 1000 FIXED 100 60000 details COST 3 UPTO").unwrap();
        let window = crate::algo::WindowParams { limit: 100, window_ms: 60_000 };
        let bucket = crate::algo::token_bucket::Params { capacity: 10, refill_tokens: 1, refill_ms: 1000 };
        assert_eq!(r.target, Target::Rules(vec![Spec::TokenBucket(bucket), Spec::FixedWindow(window)]));
        assert!(r.details && r.upto && !r.dryrun);
        assert_eq!(r.cost, 3);
        let sixteen = " FIXED 1 1".repeat(16);
        assert!(parse_line(Command::Limit, &format!("k{sixteen}")).is_ok());
        for (line, expected) in [
            ("k", "expected a rule"),
            ("k COST 1", "expected a rule"),
            ("k BOGUS 1 2", "expected a rule"),
            ("k FIXED 10", "rule 1 (FIXED): window_ms must be"),
            ("k FIXED 10 1000 GCRA 1 0 1000", "rule 2 (GCRA): rate must be"),
            ("k FIXED 10 1000 BOGUS", "unknown option 'BOGUS'"),
            ("k FIXED 10 1000 UPTO", "UPTO needs COST"),
            ("k FIXED 10 1000 UPTO COST 0", "UPTO needs COST"),
        ] {
            let err = parse_line(Command::Limit, line).unwrap_err();
            assert!(err.starts_with("ERR ") && err.contains(expected), "{line}: {err}");
        }
        let err = parse_line(Command::Limit, &format!("k{sixteen} FIXED 1 1")).unwrap_err();
        assert!(err.contains("at most 16 rules"), "{err}");
        let r = parse_line(Command::Check, "k my-policy DRYRUN DETAILS").unwrap();
        assert_eq!(r.target, Target::Policy(b"my-policy"));
        assert!(r.dryrun && r.details);
        // DETAILS and CAP only where they mean something.
        assert!(parse_line(Command::Fixed, "k 10 1000 DETAILS").is_err());
        assert!(parse_line(Command::Fixed, "k 10 1000 CAP 5").is_err());
        assert_eq!(parse_line(Command::Sliding, "k 10 1000 CAP 5").unwrap().cap, Some(5));
        assert!(parse_line(Command::SlidingCounter, "k 10 1000 UPTO COST 5").unwrap().upto);
    }
}
