//! Parses and validates a command's arguments into a typed `Request`: the one place that
//! knows the syntax. Every error names the bad argument and is raised before anything is touched.

use crate::algo::{fixed_window, sliding_log, token_bucket, MAX_TIME_MS, MAX_UNITS};
use crate::limiter::{Algorithm, Spec};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub spec: Spec,
    pub cost: u64,
    pub dryrun: bool,
    /// Explicit time (`AT`), else the server clock is used.
    pub at_ms: Option<i64>,
}

/// Parses `args` = everything after the command name, the key first.
pub fn parse(algorithm: Algorithm, args: &[&[u8]]) -> Result<Request, String> {
    let names: &[&str] = match algorithm {
        Algorithm::TokenBucket => &["capacity", "refill_tokens", "refill_ms"],
        Algorithm::FixedWindow | Algorithm::SlidingLog => &["limit", "window_ms"],
    };
    if args.len() < 1 + names.len() {
        return Err(format!("ERR wrong number of arguments for '{}' command", algorithm.command()));
    }
    let mut values = [0u64; 3];
    for (i, name) in names.iter().enumerate() {
        values[i] = parse_u64(args[1 + i]).ok_or_else(|| format!("ERR {name} must be a positive integer"))?;
    }
    let spec = match algorithm {
        Algorithm::TokenBucket => Spec::TokenBucket(token_bucket::Params {
            capacity: values[0],
            refill_tokens: values[1],
            refill_ms: values[2],
        }),
        Algorithm::FixedWindow => Spec::FixedWindow(fixed_window::Params { limit: values[0], window_ms: values[1] }),
        Algorithm::SlidingLog => Spec::SlidingLog(sliding_log::Params { limit: values[0], window_ms: values[1] }),
    };
    validate(&spec)?;

    let mut request = Request { spec, cost: 1, dryrun: false, at_ms: None };
    const OPTIONS: [&str; 3] = ["COST", "AT", "DRYRUN"];
    let mut seen = [false; OPTIONS.len()];
    let mut options = args[1 + names.len()..].iter();
    while let Some(option) = options.next() {
        let index = OPTIONS
            .iter()
            .position(|name| option.eq_ignore_ascii_case(name.as_bytes()))
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
        } else {
            let at = value.and_then(|v| i64::try_from(v).ok()).filter(|v| *v <= MAX_TIME_MS);
            request.at_ms = Some(at.ok_or_else(|| format!("ERR AT must be a Unix time in ms from 0 to {MAX_TIME_MS}"))?);
        }
    }
    Ok(request)
}

fn validate(spec: &Spec) -> Result<(), String> {
    let checked = match spec {
        Spec::TokenBucket(p) => p.validate(),
        Spec::FixedWindow(p) => p.validate(),
        Spec::SlidingLog(p) => p.validate(),
    };
    checked.map_err(|name| match name {
        "refill_ms" | "window_ms" => format!("ERR {name} must be an integer from 1 to {}", crate::algo::MAX_PERIOD_MS),
        "capacity * refill_ms / refill_tokens" => format!(
            "ERR capacity * refill_ms / refill_tokens (the time to refill from empty) must be at most {} ms",
            crate::algo::MAX_PERIOD_MS
        ),
        _ => format!("ERR {name} must be an integer from 1 to {MAX_UNITS}"),
    })
}

/// Strict unsigned decimal: digits only (no sign, spaces or fraction), fits u64.
fn parse_u64(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 20 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    bytes.iter().try_fold(0u64, |acc, d| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

/// An argument echoed in an error: printable ASCII only, so the reply stays one valid line.
fn printable(bytes: &[u8]) -> String {
    let shown: String = bytes
        .iter()
        .take(32)
        .map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '?' })
        .collect();
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
            ("k 1000000000000000 1 1000000", "time to refill"),
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
    }

    #[test]
    fn binary_options_are_echoed_printably() {
        let args: Vec<&[u8]> = vec![b"k", b"1", b"1", b"\xff\r\n\0x"];
        assert_eq!(parse(Algorithm::FixedWindow, &args).unwrap_err(), "ERR unknown option '????x'");
    }
}
