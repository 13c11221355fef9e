//! Robustness fuzzing against a real redis-server: random argument vectors for every command the
//! module registers (RL.TOKENBUCKET, RL.FIXED, RL.SLIDING, RL.GCRA, CL.THROTTLE, RL.LOADSTATE and
//! the test-only RL.TESTCLOCK), in every case, on keys of every Redis type, with numbers at and
//! beyond the integer limits, binary and huge strings, repeated and unknown options, and random or
//! mutated RL.LOADSTATE / RESTORE payloads.
//!
//! Every reply must be well formed (5 integers within the contract's ranges, or OK) or an error
//! starting with `ERR ` / `WRONGTYPE `, and the server must stay alive: after every pipelined batch
//! the process is checked and must answer PING.
//!
//! `RL_FUZZ_VECTORS` sets the number of vectors (default 20,000: a few seconds); `RL_SEED` replays a
//! run (the seed is printed at the start, so a failing run shows it).

mod common;
use common::*;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use redis::ConnectionLike;

const MAX_UNITS: u64 = 1_000_000_000_000_000; // 10^15
const MAX_PERIOD_MS: u64 = 10_000_000_000_000; // 10^13
const MAX_TIME_MS: u64 = 1_000_000_000_000_000; // 10^15

/// Vectors per pipelined batch; the server is checked between batches.
const BATCH: usize = 1000;

fn vector_count(default: usize) -> usize {
    std::env::var("RL_FUZZ_VECTORS").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// Command vectors
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    TokenBucket,
    Fixed,
    Sliding,
    Gcra,
    Throttle,
    LoadState,
    Info,
    TestClock,
    /// `CONFIG SET rl.max-sliding-entries <value>` or `rl.max-at-ahead-ms` (the word after CONFIG SET is the "name").
    Config,
}

const KINDS: [(Kind, &str); 9] = [
    (Kind::TokenBucket, "RL.TOKENBUCKET"),
    (Kind::Fixed, "RL.FIXED"),
    (Kind::Sliding, "RL.SLIDING"),
    (Kind::Gcra, "RL.GCRA"),
    (Kind::Throttle, "CL.THROTTLE"),
    (Kind::LoadState, "RL.LOADSTATE"),
    (Kind::Info, "RL.INFO"),
    (Kind::TestClock, "RL.TESTCLOCK"),
    (Kind::Config, "CONFIG"),
];

/// One command: its kind and every word, the command name first, all binary.
#[derive(Clone, Debug)]
struct Vector {
    kind: Kind,
    words: Vec<Vec<u8>>,
}

impl Vector {
    fn cmd(&self) -> redis::Cmd {
        let mut cmd = redis::Cmd::new();
        for word in &self.words {
            cmd.arg(word.as_slice());
        }
        cmd
    }

    /// A replayable description: every word quoted, non-printable bytes as \xNN, long words abbreviated.
    fn describe(&self) -> String {
        self.words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
    }
}

fn quote(word: &[u8]) -> String {
    let shown = |bytes: &[u8]| -> String {
        bytes
            .iter()
            .map(|&b| match b {
                b'"' => "\\\"".to_string(),
                b'\\' => "\\\\".to_string(),
                b if b.is_ascii_graphic() || b == b' ' => (b as char).to_string(),
                b => format!("\\x{b:02x}"),
            })
            .collect()
    };
    if word.len() > 48 {
        let same = word.iter().all(|&b| b == word[0]);
        if same {
            format!("\"{}\"x{}", shown(&word[..1]), word.len())
        } else {
            format!("\"{}...\"({} bytes)", shown(&word[..32]), word.len())
        }
    } else {
        format!("\"{}\"", shown(word))
    }
}

/// The command name as sent: canonical, lowercase, or in random case.
fn name_variant(rng: &mut StdRng, name: &str) -> Vec<u8> {
    match rng.gen_range(0..10) {
        0..=4 => name.as_bytes().to_vec(),
        5..=7 => name.to_ascii_lowercase().into_bytes(),
        _ => random_case(rng, name),
    }
}

fn random_case(rng: &mut StdRng, word: &str) -> Vec<u8> {
    word.bytes().map(|b| if rng.gen() { b.to_ascii_lowercase() } else { b.to_ascii_uppercase() }).collect()
}

/// Numbers at and beyond every limit that matters, and things that only look like numbers.
const SPECIAL_NUMBERS: &[&str] = &[
    "9223372036854775807",   // i64::MAX
    "9223372036854775808",   // i64::MAX + 1
    "-9223372036854775808",  // i64::MIN
    "-9223372036854775809",  // i64::MIN - 1
    "18446744073709551615",  // u64::MAX
    "18446744073709551616",  // u64::MAX + 1
    "99999999999999999999",  // 20 digits, above u64::MAX
    "100000000000000000000", // 21 digits
    "1000000000000000",      // 10^15
    "1000000000000001",      // 10^15 + 1
    "999999999999999",       // 10^15 - 1
    "10000000000000",        // 10^13
    "10000000000001",        // 10^13 + 1
    "9999999999999",         // 10^13 - 1
    "10000000000",           // 10^10 (CL.THROTTLE's largest period_seconds)
    "10000000001",
    "4294967295",
    "4294967296",
    "-1",
    "0",
    "1",
    "2",
    "-0",
    "+1",
    "1.5",
    "1e3",
    "1E3",
    "0x10",
    " 1",
    "1 ",
    "00000000000000000001",  // 20 digits, value 1
    "000000000000000000001", // 21 digits, value 1
    "1_000",
    "\u{0661}", // ARABIC-INDIC DIGIT ONE
    "nan",
    "inf",
    "-inf",
];

const OPTIONS: &[&str] = &["COST", "AT", "DRYRUN"];
const UNKNOWN_OPTIONS: &[&str] = &["BURST", "COSTS", "DRY", "RUN", "ATT", "LIMIT", "OFF", "NX", "PX", "COST\0", "AT "];

/// Binary and odd strings.
fn binary_word(rng: &mut StdRng) -> Vec<u8> {
    match rng.gen_range(0..12) {
        0 => Vec::new(),
        1 => b"\0".to_vec(),
        2 => b"\xff".to_vec(),
        3 => b"\r\n".to_vec(),
        4 => b"\r\n*1\r\n$4\r\nPING\r\n".to_vec(),
        5 => b"\xc3\x28\xa0\xa1".to_vec(), // invalid UTF-8
        6 => vec![b'x'; 1024],
        7 => (0..1024).map(|_| rng.gen()).collect(),
        8 => b"1\0".to_vec(),
        9 => b"\x001".to_vec(),
        10 => vec![b'9'; rng.gen_range(19..40)],
        _ => (0..rng.gen_range(1..17)).map(|_| rng.gen()).collect(),
    }
}

/// Any word at all: numbers (valid or not), option names, unknown words, binary.
fn token(rng: &mut StdRng) -> Vec<u8> {
    match rng.gen_range(0..9) {
        0 | 1 => SPECIAL_NUMBERS.choose(rng).map_or_else(Vec::new, |s| s.as_bytes().to_vec()),
        2 => rng.gen::<u64>().to_string().into_bytes(),
        3 => rng.gen::<i64>().to_string().into_bytes(),
        4 => rng.gen_range(0..100u32).to_string().into_bytes(),
        5 => {
            let option = OPTIONS.choose(rng).copied().unwrap_or("COST");
            random_case(rng, option)
        }
        6 => UNKNOWN_OPTIONS.choose(rng).map_or_else(Vec::new, |s| random_case(rng, s)),
        _ => binary_word(rng),
    }
}

/// A positional parameter that is usually within bounds.
fn good_param(rng: &mut StdRng) -> u64 {
    match rng.gen_range(0..12) {
        0..=3 => rng.gen_range(1..=10),
        4..=5 => rng.gen_range(1..=1000),
        6 => rng.gen_range(1000..=1_000_000_000),
        7 => MAX_PERIOD_MS,
        8 => MAX_UNITS,
        9 => MAX_UNITS - 1,
        10 => 1_000_000_000,
        _ => rng.gen_range(1..=MAX_UNITS),
    }
}

fn good_cost(rng: &mut StdRng) -> u64 {
    match rng.gen_range(0..10) {
        0..=6 => rng.gen_range(0..=5),
        7 => rng.gen_range(0..=1000),
        8 => MAX_UNITS,
        _ => rng.gen_range(0..=MAX_UNITS),
    }
}

/// An AT value: mostly near (after) the clock, sometimes at the ends of the range.
fn good_at(rng: &mut StdRng, now: i64) -> u64 {
    let now = now as u64;
    match rng.gen_range(0..12) {
        0..=6 => now + rng.gen_range(0..1_000_000),
        7 => 0,
        8 => MAX_TIME_MS,
        9 => now.saturating_sub(rng.gen_range(0..1_000_000_000)),
        10 => now + rng.gen_range(0..MAX_PERIOD_MS),
        _ => rng.gen_range(0..=MAX_TIME_MS),
    }
}

fn number_or_token(rng: &mut StdRng, good: u64, good_ratio: u32) -> Vec<u8> {
    if rng.gen_ratio(good_ratio, 10) {
        good.to_string().into_bytes()
    } else {
        token(rng)
    }
}

/// Keys created by `fixtures` (one of every Redis type and every limiter), and names that are absent.
const FIXTURE_KEYS: &[&[u8]] = &[
    b"str", b"list", b"set", b"zset", b"hash", b"stream", b"tb", b"fw", b"sl", b"gc", b"cl", b"loaded", b"cell",
    b"cellmax", b"cellneg",
];

/// Half the time a key only this kind of command creates (so it mostly finds its own algorithm there),
/// else any key.
fn key_for(rng: &mut StdRng, kind: Kind) -> Vec<u8> {
    if rng.gen() {
        format!("{kind:?}:{}", rng.gen_range(0..4)).into_bytes()
    } else {
        key(rng)
    }
}

fn key(rng: &mut StdRng) -> Vec<u8> {
    match rng.gen_range(0..20) {
        0..=8 => FIXTURE_KEYS.choose(rng).map_or_else(Vec::new, |k| k.to_vec()),
        9..=14 => format!("new:{}", rng.gen_range(0..8)).into_bytes(),
        15 => Vec::new(),
        16 => b"\0\xff\r\n".to_vec(),
        17 => vec![b'k'; 1024],
        _ => binary_word(rng),
    }
}

/// Options after the positional parameters. Clean: each valid option at most once, in random
/// order and case. Otherwise anything: repeated and unknown options, bad or missing values.
fn options(rng: &mut StdRng, now: i64, words: &mut Vec<Vec<u8>>, clean: bool) {
    if clean {
        let mut chosen: Vec<&str> = OPTIONS.iter().copied().filter(|_| rng.gen()).collect();
        chosen.shuffle(rng);
        for option in chosen {
            words.push(random_case_sometimes(rng, option));
            match option {
                "COST" => words.push(good_cost(rng).to_string().into_bytes()),
                "AT" => words.push(good_at(rng, now).to_string().into_bytes()),
                _ => {}
            }
        }
        return;
    }
    for _ in 0..rng.gen_range(0..=4) {
        match rng.gen_range(0..10) {
            0..=2 => {
                words.push(random_case_sometimes(rng, "COST"));
                let cost = good_cost(rng);
                words.push(number_or_token(rng, cost, 8));
            }
            3..=5 => {
                words.push(random_case_sometimes(rng, "AT"));
                let at = good_at(rng, now);
                words.push(number_or_token(rng, at, 8));
            }
            6 | 7 => words.push(random_case_sometimes(rng, "DRYRUN")),
            8 => words.push(token(rng)),
            // An option name with its value missing (when last).
            _ => {
                let option = OPTIONS.choose(rng).copied().unwrap_or("AT");
                words.push(random_case_sometimes(rng, option));
            }
        }
    }
}

/// Positional parameters within every documented bound (the cross-parameter ones included).
fn valid_params(rng: &mut StdRng, kind: Kind) -> Vec<u64> {
    for _ in 0..20 {
        let (a, b) = (good_param(rng), good_param(rng));
        let period = good_param(rng).min(MAX_PERIOD_MS);
        let ok = |units: u128, rate: u64| {
            (units * u128::from(period)).div_ceil(u128::from(rate)) <= u128::from(MAX_PERIOD_MS)
        };
        match kind {
            Kind::TokenBucket if ok(u128::from(a), b) => return vec![a, b, period],
            Kind::Gcra => {
                let burst = if rng.gen_ratio(1, 4) { 0 } else { a - 1 };
                if ok(u128::from(burst) + 1, b) {
                    return vec![burst, b, period];
                }
            }
            Kind::Fixed | Kind::Sliding => return vec![a, period],
            _ => {}
        }
    }
    match kind {
        Kind::Fixed | Kind::Sliding => vec![10, 1000],
        _ => vec![10, 1, 1000],
    }
}

/// Parameters from a small set per algorithm, extremes included, so that calls on one key keep
/// switching between them while the limiter is busy.
fn reconfigured_params(rng: &mut StdRng, kind: Kind) -> Vec<u64> {
    let sets: &[[u64; 3]] = match kind {
        Kind::TokenBucket => &[[10, 1, 1000], [10, 10, 1000], [3, 1, 100], [100, 7, 3000], [MAX_UNITS, MAX_UNITS, 1]],
        Kind::Gcra => &[[9, 1, 1000], [9, 2, 1000], [0, 1, 100], [20, 3, 3000], [MAX_UNITS - 1, MAX_UNITS, 1]],
        _ => &[[10, 1000, 0], [3, 1000, 0], [10, 10_000, 0], [1, 1, 0], [MAX_UNITS, MAX_PERIOD_MS, 0]],
    };
    let set = sets.choose(rng).copied().unwrap_or([10, 1000, 0]);
    let count = if matches!(kind, Kind::TokenBucket | Kind::Gcra) { 3 } else { 2 };
    set[..count].to_vec()
}

fn random_case_sometimes(rng: &mut StdRng, word: &str) -> Vec<u8> {
    if rng.gen_ratio(1, 3) {
        random_case(rng, word)
    } else {
        word.as_bytes().to_vec()
    }
}

fn vector(rng: &mut StdRng, now: i64) -> Vector {
    let pick = rng.gen_range(0..100);
    let index = match pick {
        0..=15 => 0,
        16..=31 => 1,
        32..=47 => 2,
        48..=63 => 3,
        64..=74 => 4,
        75..=89 => 5,
        90..=97 => 6,
        _ if rng.gen() => 7,
        _ => 8,
    };
    let (kind, name) = KINDS[index];
    let mut words = vec![name_variant(rng, name)];
    if kind == Kind::Config {
        words.push(b"SET".to_vec());
        if rng.gen_ratio(1, 4) {
            // A bound on AT: calls beyond it are refused until the next batch restores 10^15.
            words.push(b"rl.max-at-ahead-ms".to_vec());
            words.push(match rng.gen_range(0..4) {
                0 => b"300000".to_vec(),
                1 => rng.gen_range(0..=MAX_TIME_MS).to_string().into_bytes(),
                2 => MAX_TIME_MS.to_string().into_bytes(),
                _ => token(rng),
            });
            return Vector { kind, words };
        }
        // Small caps make sliding logs hit max-sliding-entries (merging into the newest entry).
        words.push(b"rl.max-sliding-entries".to_vec());
        words.push(match rng.gen_range(0..4) {
            0 | 1 => rng.gen_range(1..=5u64).to_string().into_bytes(),
            2 => rng.gen_range(1..=MAX_UNITS).to_string().into_bytes(),
            _ => token(rng),
        });
        return Vector { kind, words };
    }
    // A fully random vector: 0 to 12 words of anything.
    if rng.gen_ratio(1, 5) {
        for i in 0..rng.gen_range(0..=12) {
            words.push(if i == 0 && rng.gen() { key(rng) } else { token(rng) });
        }
        return Vector { kind, words };
    }
    match kind {
        Kind::TokenBucket | Kind::Fixed | Kind::Sliding | Kind::Gcra if rng.gen_ratio(1, 4) => {
            // The same key, parameters changing between calls: reconfigurations, rejected ones
            // (which write) included.
            words.push(format!("{kind:?}:reconfigured").into_bytes());
            for value in reconfigured_params(rng, kind) {
                words.push(value.to_string().into_bytes());
            }
            options(rng, now, &mut words, true);
        }
        Kind::TokenBucket | Kind::Fixed | Kind::Sliding | Kind::Gcra => {
            words.push(key_for(rng, kind));
            if rng.gen() {
                // Entirely valid: reaches the algorithms (and WRONGTYPE on keys of other types).
                for value in valid_params(rng, kind) {
                    words.push(value.to_string().into_bytes());
                }
                options(rng, now, &mut words, true);
                return Vector { kind, words };
            }
            let positional = if matches!(kind, Kind::TokenBucket | Kind::Gcra) { 3 } else { 2 };
            let count = match rng.gen_range(0..20) {
                0 => positional - 1,
                1 => positional + 1,
                _ => positional,
            };
            for i in 0..count {
                // GCRA's burst may be 0.
                let good = if kind == Kind::Gcra && i == 0 && rng.gen_ratio(1, 4) { 0 } else { good_param(rng) };
                words.push(number_or_token(rng, good, 9));
            }
            options(rng, now, &mut words, false);
        }
        Kind::Throttle => {
            words.push(key_for(rng, Kind::Gcra));
            let burst = if rng.gen() { rng.gen_range(0..20) } else { good_param(rng) - 1 };
            let count = if rng.gen() { rng.gen_range(1..100) } else { good_param(rng) };
            let period = match rng.gen_range(0..4) {
                0 => 10_000_000_000,
                1 => rng.gen_range(1..=10_000_000_000),
                _ => rng.gen_range(1..100),
            };
            words.push(number_or_token(rng, burst, 9));
            words.push(number_or_token(rng, count, 9));
            words.push(number_or_token(rng, period, 9));
            if rng.gen() {
                let cost = good_cost(rng);
                words.push(number_or_token(rng, cost, 8));
            }
            if rng.gen_ratio(1, 10) {
                words.push(token(rng));
            }
        }
        Kind::LoadState => {
            let target = [Kind::TokenBucket, Kind::Fixed, Kind::Sliding, Kind::Gcra].choose(rng).copied();
            words.push(key_for(rng, target.unwrap_or(Kind::Gcra)));
            words.push(state_blob(rng, now));
            if rng.gen_ratio(1, 20) {
                words.push(token(rng));
            }
        }
        Kind::Info => {
            let target = [Kind::TokenBucket, Kind::Fixed, Kind::Sliding, Kind::Gcra].choose(rng).copied();
            words.push(key_for(rng, target.unwrap_or(Kind::Gcra)));
            if rng.gen_ratio(1, 20) {
                words.push(token(rng));
            }
        }
        Kind::Config => {}
        Kind::TestClock => {
            words.push(match rng.gen_range(0..4) {
                0 => random_case(rng, "off"),
                1 => good_at(rng, now).to_string().into_bytes(),
                _ => token(rng),
            });
            if rng.gen_ratio(1, 10) {
                words.push(token(rng));
            }
        }
    }
    Vector { kind, words }
}

// ---------------------------------------------------------------------------------------------
// RL.LOADSTATE payloads: varint sequences, valid states and their mutations
// ---------------------------------------------------------------------------------------------

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn varints(values: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    for &v in values {
        put_varint(&mut out, v);
    }
    out
}

/// A time for a stored state: near the clock mostly, else at the ends of the range.
fn state_time(rng: &mut StdRng, now: i64) -> u64 {
    match rng.gen_range(0..8) {
        0..=4 => now as u64 + rng.gen_range(0..1_000_000),
        5 => 0,
        6 => MAX_TIME_MS,
        _ => rng.gen_range(0..=MAX_TIME_MS),
    }
}

/// A state RL.LOADSTATE should accept (the encoding of src/datatype.rs).
fn valid_state(rng: &mut StdRng, now: i64) -> Vec<u8> {
    let last = state_time(rng, now);
    match rng.gen_range(1..=4u64) {
        1 => {
            let (capacity, refill_tokens, refill_ms) = if rng.gen_ratio(1, 5) {
                (MAX_UNITS, MAX_UNITS, MAX_PERIOD_MS)
            } else {
                (rng.gen_range(1..=100), rng.gen_range(1..=10), rng.gen_range(1..=100_000))
            };
            let tokens = rng.gen_range(0..=capacity);
            let fraction = if tokens == capacity { 0 } else { rng.gen_range(0..refill_ms) };
            varints(&[1, capacity, refill_tokens, refill_ms, tokens, fraction, last])
        }
        2 => {
            let limit = if rng.gen_ratio(1, 5) { MAX_UNITS } else { rng.gen_range(1..=100) };
            let window = if rng.gen_ratio(1, 5) { MAX_PERIOD_MS } else { rng.gen_range(1..=1_000_000) };
            let start = last - last % window;
            let count = rng.gen_range(0..=limit.saturating_mul(2).min(MAX_UNITS));
            varints(&[2, limit, window, start, count, last])
        }
        3 => {
            let limit = if rng.gen_ratio(1, 5) { MAX_UNITS } else { rng.gen_range(1..=100) };
            let window = if rng.gen_ratio(1, 5) { MAX_PERIOD_MS } else { rng.gen_range(1..=1_000_000) };
            let mut values = vec![3, limit, window];
            let mut time = last.min(MAX_TIME_MS - 100_000);
            let mut previous = 0;
            for _ in 0..rng.gen_range(1..=50) {
                values.push(time - previous);
                values.push(rng.gen_range(1..=3));
                previous = time;
                time += rng.gen_range(1..=1000);
            }
            varints(&values)
        }
        _ => {
            let (burst, rate, period) = if rng.gen_ratio(1, 5) {
                (MAX_UNITS - 1, MAX_UNITS, MAX_PERIOD_MS)
            } else {
                (rng.gen_range(0..=20), rng.gen_range(1..=10), rng.gen_range(1..=100_000))
            };
            let owed = (burst + 1) * (period / rate);
            let tat = last + rng.gen_range(0..=owed);
            let fraction = rng.gen_range(0..rate);
            varints(&[4, burst, rate, period, tat, fraction, last])
        }
    }
}

fn mutate(rng: &mut StdRng, bytes: &mut Vec<u8>) {
    for _ in 0..rng.gen_range(1..=3) {
        match rng.gen_range(0..7) {
            0 if !bytes.is_empty() => {
                let i = rng.gen_range(0..bytes.len());
                bytes[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if !bytes.is_empty() => bytes.truncate(rng.gen_range(0..bytes.len())),
            2 => bytes.extend((0..rng.gen_range(1..=8)).map(|_| rng.gen::<u8>())),
            3 => {
                let i = rng.gen_range(0..=bytes.len());
                bytes.insert(i, rng.gen());
            }
            4 => put_varint(bytes, *[u64::MAX, i64::MAX as u64, MAX_TIME_MS + 1, 0].choose(rng).unwrap_or(&0)),
            5 if !bytes.is_empty() => {
                let i = rng.gen_range(0..bytes.len());
                bytes[i] |= 0x80; // a continuation bit: the varint swallows the next one
            }
            _ if !bytes.is_empty() => {
                let i = rng.gen_range(0..bytes.len());
                bytes[i] = rng.gen();
            }
            _ => bytes.push(rng.gen()),
        }
    }
}

fn state_blob(rng: &mut StdRng, now: i64) -> Vec<u8> {
    match rng.gen_range(0..10) {
        0..=5 => {
            let mut state = valid_state(rng, now);
            if rng.gen() {
                mutate(rng, &mut state);
            }
            state
        }
        6 | 7 => {
            // A tag then random small varints (or huge ones).
            let mut out = varints(&[rng.gen_range(0..=5)]);
            for _ in 0..rng.gen_range(0..=12) {
                let v = match rng.gen_range(0..6) {
                    0 => u64::MAX,
                    1 => rng.gen(),
                    2 => now as u64 + rng.gen_range(0..1000),
                    _ => rng.gen_range(0..200),
                };
                put_varint(&mut out, v);
            }
            out
        }
        8 => (0..rng.gen_range(0..64)).map(|_| rng.gen()).collect(),
        _ => match rng.gen_range(0..5) {
            0 => Vec::new(),
            1 => vec![0],
            2 => vec![0xff; 10],
            3 => vec![0x80; 11],
            _ => binary_word(rng),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------------------------

#[derive(Default, Debug)]
struct Stats {
    vectors: u64,
    errors: u64,
    replies: u64,
    /// Successful replies per kind, and admitted (allowed) ones per kind.
    ok: [u64; KINDS.len()],
    admitted: [u64; KINDS.len()],
    err: [u64; KINDS.len()],
}

fn kind_index(kind: Kind) -> usize {
    KINDS.iter().position(|(k, _)| *k == kind).unwrap_or(0)
}

/// Checks one reply against the contract; Err(explanation) if it is malformed.
fn check_reply(vector: &Vector, reply: &redis::Value, stats: &mut Stats) -> Result<(), String> {
    use redis::Value;
    stats.vectors += 1;
    let index = kind_index(vector.kind);
    if let Value::ServerError(e) = reply {
        stats.errors += 1;
        stats.err[index] += 1;
        let code = e.code();
        let detail = e.details().unwrap_or("");
        if !(code == "ERR" || code == "WRONGTYPE") || detail.trim().is_empty() {
            return Err(format!("unexpected error {code:?} {detail:?}"));
        }
        return Ok(());
    }
    stats.replies += 1;
    stats.ok[index] += 1;
    match vector.kind {
        Kind::LoadState | Kind::TestClock | Kind::Config => match reply {
            Value::SimpleString(s) if s == "OK" => Ok(()),
            Value::Okay => Ok(()),
            other => Err(format!("expected OK, got {other:?}")),
        },
        Kind::Info => check_info(reply),
        kind => {
            let Value::Array(items) = reply else {
                return Err(format!("expected an array, got {reply:?}"));
            };
            let ints: Vec<i64> = items
                .iter()
                .map(|v| match v {
                    Value::Int(i) => Ok(*i),
                    other => Err(format!("non-integer {other:?} in {reply:?}")),
                })
                .collect::<Result<_, _>>()?;
            let [first, limit, remaining, retry, reset] =
                <[i64; 5]>::try_from(ints.as_slice()).map_err(|_| format!("expected 5 integers, got {ints:?}"))?;
            // CL.THROTTLE answers `limited` (1 = rejected) where RL.* answer `allowed`.
            let allowed = if kind == Kind::Throttle { 1 - first } else { first };
            // Times are bounded by the longest period (10^13 ms), whatever state was loaded: loading
            // refuses a GCRA owing more than its tolerance. CL.THROTTLE answers in seconds.
            let max_time = if kind == Kind::Throttle { (MAX_PERIOD_MS / 1000) as i64 } else { MAX_PERIOD_MS as i64 };
            let ok = (first == 0 || first == 1)
                && (1..=MAX_UNITS as i64).contains(&limit)
                && (0..=limit).contains(&remaining)
                && (-1..=max_time).contains(&retry)
                && (0..=max_time).contains(&reset)
                && (allowed == 0 || retry == -1);
            if !ok {
                return Err(format!("reply out of bounds: {ints:?}"));
            }
            if allowed == 1 {
                stats.admitted[index] += 1;
            }
            Ok(())
        }
    }
}

/// RL.INFO: nil, or field/value pairs (a map in RESP3, a flat array in RESP2) naming a known
/// algorithm, with integer fields in range; an RL.LIMIT key's `rules` hold one such map per rule.
fn check_info(reply: &redis::Value) -> Result<(), String> {
    if let redis::Value::Nil = reply {
        return Ok(());
    }
    let fields = info_fields(reply)?;
    if !matches!(fields.get("ttl_ms"), Some(redis::Value::Int(t)) if *t >= -1) {
        return Err(format!("RL.INFO: no ttl_ms in range in {reply:?}"));
    }
    check_limiter_fields(&fields, reply)
}

fn info_fields(reply: &redis::Value) -> Result<std::collections::HashMap<String, redis::Value>, String> {
    use redis::Value;
    let pairs: Vec<(&Value, &Value)> = match reply {
        Value::Map(map) => map.iter().map(|(k, v)| (k, v)).collect(),
        Value::Array(items) if items.len() % 2 == 0 => items.chunks(2).map(|c| (&c[0], &c[1])).collect(),
        other => return Err(format!("RL.INFO: unexpected reply {other:?}")),
    };
    let mut fields = std::collections::HashMap::new();
    for (name, value) in pairs {
        let name = match name {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            Value::SimpleString(s) => s.clone(),
            other => return Err(format!("RL.INFO: field name {other:?} in {reply:?}")),
        };
        fields.insert(name, value.clone());
    }
    Ok(fields)
}

/// One limiter's fields (a whole key's, or one rule's of an RL.LIMIT key).
fn check_limiter_fields(
    fields: &std::collections::HashMap<String, redis::Value>,
    reply: &redis::Value,
) -> Result<(), String> {
    use redis::Value;
    let text = |v: Option<&Value>| match v {
        Some(Value::BulkString(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        Some(Value::SimpleString(s)) => Some(s.clone()),
        _ => None,
    };
    let algorithm = text(fields.get("algorithm")).ok_or_else(|| format!("RL.INFO: no algorithm in {reply:?}"))?;
    if algorithm == "rules" {
        let Some(Value::Array(rules)) = fields.get("rules") else {
            return Err(format!("RL.INFO: rules without a list in {reply:?}"));
        };
        if !(1..=16).contains(&rules.len()) {
            return Err(format!("RL.INFO: {} rules in {reply:?}", rules.len()));
        }
        for rule in rules {
            check_limiter_fields(&info_fields(rule)?, reply)?;
        }
        return Ok(());
    }
    if !["tokenbucket", "fixed", "sliding", "gcra", "slidingcounter"].contains(&algorithm.as_str()) {
        return Err(format!("RL.INFO: unknown algorithm {algorithm:?}"));
    }
    let int = |name: &str| match fields.get(name) {
        Some(Value::Int(i)) => Some(*i),
        _ => None,
    };
    for (name, value) in fields {
        if name != "algorithm" && !matches!(value, Value::Int(_)) {
            return Err(format!("RL.INFO: non-integer {name} in {reply:?}"));
        }
    }
    let (limit, remaining) = (int("limit"), int("remaining"));
    let in_range = limit.is_some_and(|l| (1..=MAX_UNITS as i64).contains(&l))
        && remaining.is_some_and(|r| r >= 0 && Some(r) <= limit)
        && int("reset_after_ms").is_some_and(|r| r >= 0)
        && int("last_update_ms").is_some_and(|t| (0..=MAX_TIME_MS as i64).contains(&t));
    if !in_range {
        return Err(format!("RL.INFO: fields out of range in {reply:?}"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Server handling
// ---------------------------------------------------------------------------------------------

/// Whether the server process still runs (not exited, not a zombie waiting to be reaped).
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // "pid (comm) state ...": the state follows the last ')'.
            let state = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}

fn assert_alive(server: &Server, con: &mut Connection, context: &str) {
    assert!(process_alive(server.pid()), "{context}: redis-server exited\n{}", log_tail(server));
    let pong: redis::RedisResult<String> = redis::cmd("PING").query(con);
    assert_eq!(pong.as_deref().ok(), Some("PONG"), "{context}: no PONG ({pong:?})\n{}", log_tail(server));
}

/// The lines of redis.log telling why it died, then its last lines.
fn log_tail(server: &Server) -> String {
    let log = server.log();
    let lines: Vec<&str> = log.lines().collect();
    let why: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| {
            l.contains("Guru Meditation") || l.contains("panicked") || l.contains("ASSERTION") || l.contains("crashed")
        })
        .collect();
    format!("--- redis.log ---\n{}\n...\n{}", why.join("\n"), lines[lines.len().saturating_sub(30)..].join("\n"))
}

/// One key of every Redis type and a limiter of every algorithm, on an empty database.
/// Limiters use long periods so they live through a batch.
fn fixtures(con: &mut Connection, now: i64) {
    let mut pipe = redis::pipe();
    pipe.cmd("FLUSHALL").ignore();
    pipe.cmd("CONFIG").arg("SET").arg("rl.max-sliding-entries").arg(1_000_000).ignore();
    pipe.cmd("CONFIG").arg("SET").arg("rl.max-at-ahead-ms").arg(MAX_TIME_MS).ignore();
    pipe.cmd("SET").arg("str").arg("value").ignore();
    // Strings as redis-cell leaves them (its TAT in ns), which CL.THROTTLE takes over.
    pipe.cmd("SET").arg("cell").arg((now as u64 + 5_000) * 1_000_000).ignore();
    pipe.cmd("SET").arg("cellmax").arg(u64::MAX.to_string()).ignore();
    pipe.cmd("SET").arg("cellneg").arg(-5).ignore();
    pipe.cmd("RPUSH").arg("list").arg("a").arg("b").ignore();
    pipe.cmd("SADD").arg("set").arg("a").arg("b").ignore();
    pipe.cmd("ZADD").arg("zset").arg(1).arg("a").ignore();
    pipe.cmd("HSET").arg("hash").arg("f").arg("v").ignore();
    pipe.cmd("XADD").arg("stream").arg("*").arg("f").arg("v").ignore();
    pipe.cmd("RL.TOKENBUCKET")
        .arg("tb")
        .arg(10)
        .arg(1)
        .arg(1_000_000_000)
        .arg("COST")
        .arg(3)
        .arg("AT")
        .arg(now)
        .ignore();
    pipe.cmd("RL.FIXED").arg("fw").arg(10).arg(MAX_PERIOD_MS).arg("COST").arg(3).arg("AT").arg(now).ignore();
    for i in 0..20 {
        pipe.cmd("RL.SLIDING").arg("sl").arg(100).arg(1_000_000_000).arg("AT").arg(now + i).ignore();
    }
    pipe.cmd("RL.GCRA").arg("gc").arg(10).arg(1).arg(1_000_000_000).arg("COST").arg(3).arg("AT").arg(now).ignore();
    pipe.cmd("CL.THROTTLE").arg("cl").arg(10).arg(1).arg(1_000_000).ignore();
    let state = varints(&[1, 10, 1, 1000, 5, 7, now as u64]);
    pipe.cmd("RL.LOADSTATE").arg("loaded").arg(state).ignore();
    pipe.query::<()>(con).expect("fixtures");
}

/// Sends a batch pipelined; the replies in order (errors included), or Err if the connection broke.
fn send_batch(con: &mut Connection, batch: &[Vector]) -> redis::RedisResult<Vec<redis::Value>> {
    let mut pipe = redis::pipe();
    for v in batch {
        pipe.add_command(v.cmd());
    }
    con.req_packed_commands(&pipe.get_packed_pipeline(), 0, batch.len())
}

/// Sends one command; its reply, errors included as `Value::ServerError`.
fn send_one(con: &mut Connection, v: &Vector) -> redis::RedisResult<redis::Value> {
    let mut replies = con.req_packed_commands(&v.cmd().get_packed_command(), 0, 1)?;
    Ok(replies.pop().unwrap_or(redis::Value::Nil))
}

/// After a batch broke the server: replays it one command at a time on a fresh server to name the
/// command that kills it.
fn find_killer(batch: &[Vector], now: i64) -> String {
    let server = Server::start_with_module_args(&["test-clock", "yes"], &[]);
    let mut con = server.conn();
    fixtures(&mut con, now);
    for v in batch {
        let reply = v.cmd().query::<redis::Value>(&mut con);
        let dead = !process_alive(server.pid())
            || matches!(&reply, Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error());
        if dead {
            return format!("the server dies on: {}\n{}", v.describe(), log_tail(&server));
        }
    }
    "replaying the batch one by one did not kill a fresh server".to_string()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// Random argument vectors for every command, pipelined in batches; the server must answer each
/// with a well-formed reply or an ERR/WRONGTYPE error, and stay alive.
#[test]
fn random_argument_vectors_never_crash_and_replies_are_well_formed() {
    let total = vector_count(20_000);
    let mut rng = seeded_rng("fuzz");
    let server = Server::start_with_module_args(&["test-clock", "yes"], &[]);
    let mut resp2 = server.conn();
    let mut resp3 = redis::Client::open(format!("redis://127.0.0.1:{}/?protocol=resp3", server.port))
        .and_then(|c| c.get_connection())
        .expect("RESP3 connection");
    let mut stats = Stats::default();
    let started = std::time::Instant::now();
    let mut sent = 0;
    let mut round = 0;
    while sent < total {
        let now = now_ms();
        let size = BATCH.min(total - sent);
        // Odd batches over RESP3: the replies must be the same shapes.
        let con = if round % 2 == 0 { &mut resp2 } else { &mut resp3 };
        fixtures(con, now);
        let batch: Vec<Vector> = (0..size).map(|_| vector(&mut rng, now)).collect();
        let replies = match send_batch(con, &batch) {
            Ok(replies) => replies,
            Err(e) => {
                panic!("batch {round}: connection broke ({e}); {}\n{}", find_killer(&batch, now), log_tail(&server))
            }
        };
        assert_eq!(replies.len(), batch.len(), "batch {round}: reply count");
        for (v, reply) in batch.iter().zip(&replies) {
            if let Err(problem) = check_reply(v, reply, &mut stats) {
                panic!("batch {round}: {problem}\n  command: {}", v.describe());
            }
        }
        // Back to the server clock for the next batch's fixtures.
        let _: redis::Value = redis::cmd("RL.TESTCLOCK").arg("OFF").query(con).expect("RL.TESTCLOCK OFF");
        assert_alive(&server, con, &format!("after batch {round}"));
        sent += size;
        round += 1;
    }
    println!(
        "fuzz: {} vectors, {} errors, {} replies ({:.1} s)",
        stats.vectors,
        stats.errors,
        stats.replies,
        started.elapsed().as_secs_f64()
    );
    for (i, (_, name)) in KINDS.iter().enumerate() {
        println!("  {name}: {} replies ({} admitted), {} errors", stats.ok[i], stats.admitted[i], stats.err[i]);
    }
    assert_eq!(stats.vectors as usize, total);
    // The generator must reach the deep paths, not only the argument checks.
    if total >= 10_000 {
        for (i, (kind, name)) in KINDS.iter().enumerate() {
            if !matches!(kind, Kind::TestClock | Kind::Config) {
                assert!(stats.ok[i] > 0 && stats.err[i] > 0, "{name}: {stats:?}");
            }
            if matches!(kind, Kind::TokenBucket | Kind::Fixed | Kind::Sliding | Kind::Gcra | Kind::Throttle) {
                assert!(stats.admitted[i] > 0, "{name} never admitted: {stats:?}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// DUMP / RESTORE payloads
// ---------------------------------------------------------------------------------------------

/// A limiter's DUMP payload taken apart: `[type 7][0x81 + 8-byte module id][opcode 5 = string]
/// [length][content][opcode 0 = EOF][2-byte RDB version][8-byte CRC-64]`.
#[derive(Clone, Debug)]
struct Dump {
    /// Everything before the string length: type, module id, string opcode.
    head: Vec<u8>,
    content: Vec<u8>,
    /// The RDB version bytes.
    version: [u8; 2],
}

impl Dump {
    fn parse(payload: &[u8]) -> Dump {
        let n = payload.len();
        assert!(n > 22, "short payload {payload:?}");
        let crc = u64::from_le_bytes(payload[n - 8..].try_into().expect("8 bytes"));
        assert_eq!(crc64(&payload[..n - 8]), crc, "the test's CRC-64 disagrees with the server's");
        assert_eq!(payload[0], 7, "RDB_TYPE_MODULE_2");
        assert_eq!(payload[1], 0x81, "64-bit module id");
        assert_eq!(payload[10], 5, "RDB_MODULE_OPCODE_STRING");
        let (len, header) = match payload[11] {
            b if b >> 6 == 0 => (usize::from(b & 0x3f), 1),
            b if b >> 6 == 1 => ((usize::from(b & 0x3f) << 8) | usize::from(payload[12]), 2),
            0x80 => (u32::from_be_bytes(payload[12..16].try_into().expect("4 bytes")) as usize, 5),
            b => panic!("unexpected string encoding {b:#x} (rdbcompression must be off)"),
        };
        let start = 11 + header;
        assert_eq!(start + len + 1 + 2 + 8, n, "payload layout");
        assert_eq!(payload[start + len], 0, "RDB_MODULE_OPCODE_EOF");
        Dump {
            head: payload[..11].to_vec(),
            content: payload[start..start + len].to_vec(),
            version: [payload[n - 10], payload[n - 9]],
        }
    }

    /// A well-formed payload (length, EOF, version and CRC all right) around `content`.
    fn build(&self, content: &[u8]) -> Vec<u8> {
        let mut out = self.head.clone();
        rdb_length(&mut out, content.len());
        out.extend_from_slice(content);
        out.push(0);
        self.seal(out)
    }

    /// Appends the version and a correct CRC to `body`.
    fn seal(&self, mut body: Vec<u8>) -> Vec<u8> {
        body.extend_from_slice(&self.version);
        let crc = crc64(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        body
    }
}

fn rdb_length(out: &mut Vec<u8>, len: usize) {
    if len < 64 {
        out.push(len as u8);
    } else if len < 16384 {
        out.push(0x40 | (len >> 8) as u8);
        out.push(len as u8);
    } else {
        out.push(0x80);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

fn restore(con: &mut Connection, key: &str, payload: &[u8]) -> Result<(), String> {
    call(con, &[b"RESTORE", key.as_bytes(), b"0", payload, b"REPLACE"]).map(|_| ()).map_err(|e| error_text(&e))
}

/// Limiters of every algorithm, a sliding log with hundreds of entries among them; returns their DUMPs.
fn dumped_limiters(con: &mut Connection) -> Vec<Dump> {
    let t = now_ms() + 60_000;
    let mut lines = vec![
        format!("RL.TOKENBUCKET tb 100 3 7000 COST 17 AT {t}"),
        format!("RL.TOKENBUCKET tbmax 1000000000000000 1000000000000000 10000000000000 COST 999 AT {t}"),
        format!("RL.FIXED fw 10 60000 COST 4 AT {t}"),
        format!("RL.GCRA gc 9 3 1000 COST 2 AT {t}"),
        format!("RL.SLIDING sl1 10 60000 COST 2 AT {t}"),
    ];
    for i in 0..300 {
        lines.push(format!("RL.SLIDING sl 1000 600000 COST {} AT {}", 1 + i % 3, t + i * 7));
    }
    for line in &lines {
        rl(con, line);
    }
    ["tb", "tbmax", "fw", "gc", "sl1", "sl"]
        .iter()
        .map(|name| {
            let payload: Vec<u8> = redis::cmd("DUMP").arg(*name).query(con).expect("DUMP");
            Dump::parse(&payload)
        })
        .collect()
}

/// Uses a restored key every way the module allows; replies must stay well formed.
fn exercise(con: &mut Connection, key: &str, rng: &mut StdRng, stats: &mut Stats) -> Result<(), String> {
    let _ = digest_value(con, key.as_bytes());
    let usage: i64 = redis::cmd("MEMORY").arg("USAGE").arg(key).query(con).map_err(|e| error_text(&e))?;
    if usage <= 0 {
        return Err(format!("MEMORY USAGE {usage}"));
    }
    // DUMP of what was restored must restore again to the same value.
    let again: Vec<u8> = redis::cmd("DUMP").arg(key).query(con).map_err(|e| error_text(&e))?;
    restore(con, "again", &again)?;
    if digest_value(con, b"again") != digest_value(con, key.as_bytes()) {
        return Err("DUMP of a restored value restores differently".into());
    }
    let now = now_ms();
    for kind in [Kind::TokenBucket, Kind::Fixed, Kind::Sliding, Kind::Gcra] {
        let name = KINDS[kind_index(kind)].1;
        let mut words = vec![name.as_bytes().to_vec(), key.as_bytes().to_vec()];
        words.extend(valid_params(rng, kind).into_iter().map(|v| v.to_string().into_bytes()));
        options(rng, now, &mut words, true);
        let v = Vector { kind, words };
        let reply = send_one(con, &v).map_err(|e| format!("{e}: {}", v.describe()))?;
        check_reply(&v, &reply, stats).map_err(|p| format!("{p}\n  command: {}", v.describe()))?;
    }
    Ok(())
}

/// DUMP payloads of limiters, mutated: without a valid checksum RESTORE refuses them; with the
/// checksum fixed (so the module's loader sees the bytes), in the limiter's bytes or in the framing
/// around them (module id, opcodes, lengths), the loader must refuse anything it could not have
/// written without taking the server down, and what it accepts must work like any limiter.
#[test]
fn restore_of_mutated_dump_payloads_never_crashes() {
    let iterations = (vector_count(20_000) / 50).max(1000);
    let mut rng = seeded_rng("restore_fuzz");
    // Uncompressed strings, so the limiter's bytes are visible in the payload.
    let server = Server::start(&["--rdbcompression", "no"]);
    let mut con = server.conn();
    let dumps = dumped_limiters(&mut con);
    let (mut refused, mut accepted) = (0, 0);
    let mut stats = Stats::default();
    for i in 0..iterations {
        let dump = dumps.choose(&mut rng).expect("dumps").clone();
        let original = dump.build(&dump.content);
        let payload = match rng.gen_range(0..10) {
            // Anywhere, checksum left stale: RESTORE's own check refuses them (nearly always).
            0 | 1 => {
                let mut p = original.clone();
                mutate_payload(&mut p, &mut rng);
                if p == original {
                    continue;
                }
                p
            }
            // The limiter's bytes mutated in place, same length, checksum fixed.
            2..=4 => {
                let mut content = dump.content.clone();
                for _ in 0..rng.gen_range(1..=3) {
                    let at = rng.gen_range(0..content.len());
                    if rng.gen() {
                        content[at] ^= 1 << rng.gen_range(0..8);
                    } else {
                        content[at] = rng.gen();
                    }
                }
                dump.build(&content)
            }
            // Any mutation of the limiter's bytes (length changes too), framing rebuilt around it.
            5 | 6 => {
                let mut content = dump.content.clone();
                mutate_payload(&mut content, &mut rng);
                dump.build(&content)
            }
            // A fresh state blob (valid or not) in a well-formed payload.
            7 => dump.build(&state_blob(&mut rng, now_ms())),
            // Anything after the type byte (module id, opcodes, lengths, EOF), checksum fixed: the
            // loader must handle short reads and bad opcodes (REDISMODULE_OPTIONS_HANDLE_IO_ERRORS).
            _ => {
                let body = &original[..original.len() - 10];
                let mut rest = body[1..].to_vec();
                mutate_payload(&mut rest, &mut rng);
                let mut body = vec![body[0]];
                body.extend(rest);
                dump.seal(body)
            }
        };
        match restore(&mut con, "target", &payload) {
            Ok(()) => {
                // A stale checksum can still pass: CRC-64 with init 0 ignores leading zero bytes, so a
                // 0x00 put in front checks (and loads as some other type). That is Redis's business;
                // whatever got restored must work.
                accepted += 1;
                if let Err(problem) = exercise(&mut con, "target", &mut rng, &mut stats) {
                    panic!("iteration {i}: restored {} then: {problem}", quote(&payload));
                }
            }
            Err(e) => {
                assert!(e.starts_with("ERR "), "iteration {i}: RESTORE answered {e:?}");
                refused += 1;
            }
        }
        if i % 100 == 0 {
            assert_alive(&server, &mut con, &format!("iteration {i}"));
        }
    }
    assert_alive(&server, &mut con, "the end");
    println!("restore fuzz: {iterations} payloads, {refused} refused, {accepted} restored");
}

/// Mutates the bytes in place (a `mutate` taking the RNG second, for call sites holding both).
fn mutate_payload(bytes: &mut Vec<u8>, rng: &mut StdRng) {
    mutate(rng, bytes)
}

/// Checksum-valid payloads whose framing around the limiter's bytes is broken, one per server:
/// each RESTORE must answer an error and leave the server running.
fn broken_framing_cases(dump: &Dump) -> Vec<(&'static str, Vec<u8>)> {
    let content = &dump.content;
    let mut cases = Vec::new();
    // The string is shorter than its declared length: the payload ends inside it.
    let mut body = dump.head.clone();
    rdb_length(&mut body, content.len());
    body.extend_from_slice(&content[..content.len() / 2]);
    cases.push(("string cut short", dump.seal(body)));
    // The string's length claims far more than there is.
    let mut body = dump.head.clone();
    rdb_length(&mut body, 1 << 20);
    body.extend_from_slice(content);
    body.push(0);
    cases.push(("string length too large", dump.seal(body)));
    // The module opcode says "unsigned" where the loader expects a string.
    let mut body = dump.head.clone();
    body[10] = 2;
    rdb_length(&mut body, content.len());
    body.extend_from_slice(content);
    body.push(0);
    cases.push(("wrong opcode", dump.seal(body)));
    // No EOF opcode after the value.
    let mut body = dump.head.clone();
    rdb_length(&mut body, content.len());
    body.extend_from_slice(content);
    cases.push(("EOF opcode missing", dump.seal(body)));
    // Another opcode where EOF belongs.
    let mut body = dump.head.clone();
    rdb_length(&mut body, content.len());
    body.extend_from_slice(content);
    body.push(5);
    cases.push(("trailing string opcode", dump.seal(body)));
    // Encoding version 3 in the module id (the low 10 bits; the loader knows 1 and 2).
    let mut head = dump.head.clone();
    head[9] |= 0x03;
    let other = Dump { head, ..dump.clone() };
    cases.push(("unknown encoding version", other.build(content)));
    // A module id no module registered.
    let mut head = dump.head.clone();
    head[2] ^= 0x55;
    let other = Dump { head, ..dump.clone() };
    cases.push(("unknown module id", other.build(content)));
    // Nothing after the module id.
    cases.push(("value missing", dump.seal(dump.head[..10].to_vec())));
    cases
}

fn restore_broken_framing(filter: impl Fn(&str) -> bool) {
    let source = Server::start(&["--rdbcompression", "no"]);
    let dumps = dumped_limiters(&mut source.conn());
    let mut failures = Vec::new();
    for (name, payload) in broken_framing_cases(&dumps[0]) {
        if !filter(name) {
            continue;
        }
        let server = Server::start(&[]);
        let mut con = server.conn();
        let result = restore(&mut con, "k", &payload);
        let alive = process_alive(server.pid()) && redis::cmd("PING").query::<String>(&mut con).is_ok();
        match (alive, &result) {
            (true, Err(e)) if e.starts_with("ERR ") => {}
            _ => failures.push(format!(
                "{name}: RESTORE k 0 {} -> {result:?}, server alive: {alive}\n{}",
                quote(&payload),
                log_tail(&server)
                    .lines()
                    .filter(|l| l.contains("Guru") || l.contains("anic"))
                    .collect::<Vec<_>>()
                    .join("\n")
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Framing errors Redis itself catches before the module's loader runs, and the loader refusing
/// an unknown encoding version.
#[test]
fn restore_with_broken_framing_outside_the_value_is_refused() {
    restore_broken_framing(|name| {
        matches!(
            name,
            "unknown encoding version" | "unknown module id" | "EOF opcode missing" | "trailing string opcode"
        )
    });
}

/// A short read inside the module's value (RedisModule_LoadStringBuffer failing) makes Redis 7.0
/// panic ("Error loading data from RDB (short read or EOF)") unless the module declares
/// REDISMODULE_OPTIONS_HANDLE_IO_ERRORS: before that, a checksum-valid RESTORE payload whose
/// string was cut short, e.g. RESTORE k 0 "\x07\x81\xaeR\xe2\x9a+^\xac\x01\x0a\x00\x1a\x87s\xd6\x16\xeft\x83",
/// aborted the whole server.
#[test]
fn restore_with_a_short_read_inside_the_value_is_refused() {
    restore_broken_framing(|name| {
        matches!(name, "string cut short" | "string length too large" | "wrong opcode" | "value missing")
    });
}

// ---------------------------------------------------------------------------------------------
// RL.LOADSTATE: targeted cases
// ---------------------------------------------------------------------------------------------

/// A valid state of each algorithm loads and is read back exactly as encoded.
#[test]
fn loadstate_of_valid_states_reads_back_exactly() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let t = now_ms() + 60_000;
    let tu = t as u64;
    let start = tu - tu % 1000;
    let cases: [(Vec<u64>, String, [i64; 5]); 4] = [
        // 5 tokens of 10 and 7/1000 of a token, 1 per second.
        (vec![1, 10, 1, 1000, 5, 7, tu], format!("RL.TOKENBUCKET k1 10 1 1000 COST 0 AT {t}"), [1, 10, 5, -1, 4993]),
        // 4 of 10 taken in the window starting at `start`.
        (
            vec![2, 10, 1000, start, 4, tu],
            format!("RL.FIXED k2 10 1000 COST 0 AT {t}"),
            [1, 10, 6, -1, (start + 1000 - tu) as i64],
        ),
        // Entries (t - 10, 2) and (t, 1) in a 60 s window.
        (
            vec![3, 10, 60_000, tu - 10, 2, 10, 1],
            format!("RL.SLIDING k3 10 60000 COST 0 AT {t}"),
            [1, 10, 7, -1, 60_000],
        ),
        // TAT 2 s ahead: 2 of 5 owed.
        (vec![4, 4, 1, 1000, tu + 2000, 0, tu], format!("RL.GCRA k4 4 1 1000 COST 0 AT {t}"), [1, 5, 3, -1, 2000]),
    ];
    for (i, (state, line, expected)) in cases.into_iter().enumerate() {
        let key = format!("k{}", i + 1);
        let reply = call(&mut con, &[b"RL.LOADSTATE", key.as_bytes(), &varints(&state)]);
        assert!(matches!(reply, Ok(redis::Value::Okay)), "{state:?}: {reply:?}");
        assert_eq!(rl(&mut con, &line), expected, "{line}");
    }
}

/// Every state the module writes owes at most the GCRA's tolerance ((burst + 1) * period_ms / rate
/// after the last update). The loader once bounded the TAT only by 10^15 + 10^13, so a loaded state
/// could owe ~31,000 years and replies reported retry/reset times far above the documented 10^13 ms:
/// RL.LOADSTATE g <varints 4 0 1 1000 1010000000000000 0 <now>> then RL.GCRA g 0 1 1000 AT <now>
/// answered [0, 1, 0, ~10^15, ~10^15].
#[test]
fn loadstate_refuses_a_gcra_state_owing_more_than_its_tolerance() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let t = now_ms();
    let state = varints(&[4, 0, 1, 1000, MAX_TIME_MS + MAX_PERIOD_MS, 0, t as u64]);
    match call(&mut con, &[b"RL.LOADSTATE", b"g", &state]) {
        Err(e) => assert!(error_text(&e).starts_with("ERR "), "{e:?}"),
        Ok(_) => {
            let reply = rl(&mut con, &format!("RL.GCRA g 0 1 1000 AT {t}"));
            assert!(reply[3] <= 1000 && reply[4] <= 1000, "a limiter of tolerance 1000 ms answers {reply:?}");
        }
    }
}
