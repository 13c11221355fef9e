//! RL.LIMIT (and UPTO on it) against an independent reference model, decision by decision, on a
//! real server; plus its errors: WRONGTYPE both ways, rule counts, bad rules, error order.
//!
//! The model keeps each rule's state on a shadow key of the same server, driven by the
//! single-algorithm command (whose semantics the other tests verify), and implements the
//! composite contract itself: every shadow is judged with DRYRUN at the composite's effective
//! now; only if all admit are they written; a rejected call writes only the reconfiguration of
//! the rules whose parameters changed; the binding rule, retry, reset and DETAILS are computed
//! here from the shadows' replies; the key's expiry and deletion are checked after every call.
mod common;
use common::*;
use rand::rngs::StdRng;
use rand::Rng;

/// A rule as RL.LIMIT takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    name: &'static str,
    params: Vec<u64>,
}

impl Rule {
    fn words(&self) -> String {
        let params: Vec<String> = self.params.iter().map(u64::to_string).collect();
        format!("{} {}", self.name, params.join(" "))
    }
    /// The single-algorithm command line for `key`.
    fn single(&self, key: &str) -> String {
        let params: Vec<String> = self.params.iter().map(u64::to_string).collect();
        format!("RL.{} {key} {}", self.name, params.join(" "))
    }
}

const ALGORITHMS: [&str; 5] = ["TOKENBUCKET", "FIXED", "SLIDING", "GCRA", "SLIDINGCOUNTER"];

/// Small parameters, so that costs of a few units reject often and windows pass quickly.
fn random_rule_of(rng: &mut StdRng, name: &'static str) -> Rule {
    let params = match name {
        "TOKENBUCKET" => vec![rng.gen_range(1..=8), rng.gen_range(1..=3), rng.gen_range(1..=2000)],
        "GCRA" => vec![rng.gen_range(0..=6), rng.gen_range(1..=3), rng.gen_range(1..=3000)],
        _ => vec![rng.gen_range(1..=8), rng.gen_range(1..=3000)],
    };
    Rule { name, params }
}

fn random_rule(rng: &mut StdRng) -> Rule {
    let name = ALGORITHMS[rng.gen_range(0..ALGORITHMS.len())];
    random_rule_of(rng, name)
}

/// A reconfiguration: one changed parameter, another algorithm at a position, a rule added or removed.
fn mutate(rng: &mut StdRng, rules: &mut Vec<Rule>) {
    match rng.gen_range(0..4) {
        0 => {
            let i = rng.gen_range(0..rules.len());
            let name = rules[i].name;
            let fresh = random_rule_of(rng, name);
            let p = rng.gen_range(0..fresh.params.len());
            rules[i].params[p] = fresh.params[p];
        }
        1 => {
            let i = rng.gen_range(0..rules.len());
            rules[i] = random_rule(rng);
        }
        2 if rules.len() < 4 => rules.push(random_rule(rng)),
        _ if rules.len() > 1 => {
            let i = rng.gen_range(0..rules.len());
            rules.remove(i);
        }
        _ => rules.push(random_rule(rng)),
    }
}

/// The reply split into its leading integers and the DETAILS arrays.
fn split_reply(value: Value) -> (Vec<i64>, Vec<[i64; 5]>) {
    let Value::Array(items) = value else { panic!("not an array: {value:?}") };
    let mut ints = Vec::new();
    let mut details = Vec::new();
    for item in items {
        match item {
            Value::Int(v) => {
                assert!(details.is_empty(), "an integer after the DETAILS arrays");
                ints.push(v);
            }
            Value::Array(_) => {
                let rule: Vec<i64> = redis::from_redis_value(&item).expect("5 integers");
                details.push(rule.try_into().expect("5 integers per rule"));
            }
            other => panic!("unexpected reply element {other:?}"),
        }
    }
    (ints, details)
}

fn query(con: &mut Connection, line: &str) -> Value {
    let words: Vec<&str> = line.split_whitespace().collect();
    redis::cmd(words[0]).arg(&words[1..]).query(con).unwrap_or_else(|e| panic!("{line}: {e}"))
}

fn del(con: &mut Connection, key: &str) {
    let _: i64 = redis::cmd("DEL").arg(key).query(con).expect("DEL");
}

/// One composite key as the contract says it stands.
struct Model {
    key: String,
    /// The rules stored with the key (None: the key is absent, an idle limiter).
    stored: Option<Vec<Rule>>,
    /// The key's last update (the effective now of its last write).
    last: i64,
    expire_at: i64,
    /// The last calls on the key, for a failure's message.
    history: Vec<String>,
    /// How often each case came up: rejected writes, deletions, UPTO g = 0 and g >= 1, AT behind the key.
    seen: [usize; 5],
}

const FRESH: &str = "model:fresh";
const TEMP: &str = "model:temp";

impl Model {
    fn new(key: &str) -> Model {
        Model { key: key.to_string(), stored: None, last: 0, expire_at: -2, history: Vec::new(), seen: [0; 5] }
    }

    fn shadow(&self, i: usize) -> String {
        format!("shadow:{}:{i}", self.key)
    }

    /// Where rule i's state is: its shadow when the key holds the same algorithm at i, else an
    /// absent key (a new position or another algorithm starts idle).
    fn target(&self, con: &mut Connection, i: usize, rule: &Rule, t: i64) -> String {
        match self.stored.as_ref().and_then(|s| s.get(i)) {
            Some(stored) if stored.name == rule.name => {
                let shadow = self.shadow(i);
                if exists(con, &shadow) || !self.raises_an_idle_capacity(i, rule) {
                    return shadow;
                }
                // The shadow was deleted as idle (a full bucket) while the key kept the rule.
                del(con, TEMP);
                self.prepare_idle(con, TEMP, i, rule, t);
                TEMP.to_string()
            }
            _ => FRESH.to_string(),
        }
    }

    /// A token bucket full under its stored capacity, raised by `rule`: a single-rule key deleted
    /// as idle would start full at the new capacity, but the rule kept in the key holds the old one.
    fn raises_an_idle_capacity(&self, i: usize, rule: &Rule) -> bool {
        let stored = &self.stored.as_ref().expect("stored")[i];
        rule.name == "TOKENBUCKET" && stored.params[0] < rule.params[0]
    }

    /// Makes `key` (absent) the stored idle bucket reconfigured to `rule` at t: the old capacity.
    fn prepare_idle(&self, con: &mut Connection, key: &str, i: usize, rule: &Rule, t: i64) {
        let stored = &self.stored.as_ref().expect("stored")[i];
        let missing = rule.params[0] - stored.params[0];
        let reply = rl(con, &format!("{} COST {missing} AT {t}", rule.single(key)));
        assert_eq!(reply[0], 1);
    }

    fn judge(&self, con: &mut Connection, i: usize, rule: &Rule, cost: u64, t: i64) -> [i64; 5] {
        let target = self.target(con, i, rule, t);
        rl(con, &format!("{} COST {cost} DRYRUN AT {t}", rule.single(&target)))
    }

    fn drop_shadows(&self, con: &mut Connection) {
        for i in 0..16 {
            del(con, &self.shadow(i));
        }
    }

    /// Sends one RL.LIMIT call to the server and checks its reply and the key against the model.
    fn step(&mut self, con: &mut Connection, rules: &[Rule], cost: u64, upto: bool, dryrun: bool, at: i64) {
        let t = if self.stored.is_some() { at.max(self.last) } else { at };
        // UPTO: the most each rule admits (binary search with DRYRUN; admission is monotone in cost).
        let granted = upto.then(|| {
            rules
                .iter()
                .enumerate()
                .map(|(i, rule)| {
                    let (mut lo, mut hi) = (0, cost);
                    while lo < hi {
                        let mid = (lo + hi).div_ceil(2);
                        if self.judge(con, i, rule, mid, t)[0] == 1 {
                            lo = mid;
                        } else {
                            hi = mid - 1;
                        }
                    }
                    lo
                })
                .min()
                .unwrap_or(0)
        });
        let c = granted.map_or(cost, |g| g.max(1));
        let alone: Vec<[i64; 5]> = rules.iter().enumerate().map(|(i, r)| self.judge(con, i, r, c, t)).collect();
        let held: Vec<[i64; 5]> = rules.iter().enumerate().map(|(i, r)| self.judge(con, i, r, 0, t)).collect();
        let allowed = alone.iter().all(|d| d[0] == 1);
        if let Some(g) = granted {
            assert_eq!(allowed, g >= 1, "UPTO: COST {c} must be admitted iff g >= 1");
        }
        let commit = !dryrun && c > 0;
        let changed = self.stored.as_deref().is_some_and(|s| s != rules);
        let wrote = commit && (allowed || changed);
        let per_rule: Vec<[i64; 5]> = if allowed {
            alone.clone()
        } else {
            (0..rules.len())
                .map(|i| {
                    let [a, limit, _, retry, _] = alone[i];
                    let retry = if a == 1 || c as i64 > limit { -1 } else { retry };
                    [a, limit, held[i][2], retry, held[i][4]]
                })
                .collect()
        };
        let binding = (0..rules.len()).min_by_key(|&i| (per_rule[i][2], i)).expect("a rule");
        let never = alone.iter().any(|d| c as i64 > d[1]);
        let retry = if allowed || never { -1 } else { per_rule.iter().map(|r| r[3]).max().unwrap_or(-1) };
        let reset = per_rule.iter().map(|r| r[4]).max().unwrap_or(0);
        let mut expected = vec![i64::from(allowed), per_rule[binding][1], per_rule[binding][2], retry, reset];
        expected.extend(granted.map(|g| g as i64));

        // The call itself.
        let rule_words: Vec<String> = rules.iter().map(Rule::words).collect();
        let mut line = format!("RL.LIMIT {} {} COST {cost} AT {at} DETAILS", self.key, rule_words.join(" "));
        if upto {
            line.push_str(" UPTO");
        }
        if dryrun {
            line.push_str(" DRYRUN");
        }
        let reply = query(con, &line);
        let (ints, details) = split_reply(reply.clone());
        let context = format!(
            "{line}\n  stored {:?} last {} t {t}\n  after:\n    {}",
            self.stored,
            self.last,
            self.history.join("\n    ")
        );
        assert_eq!(ints, expected, "{context}");
        assert_eq!(details, per_rule, "{context}");

        // The model's write: the shadows, then the key's rules, time and expiry.
        self.seen[0] += usize::from(wrote && !allowed);
        self.seen[1] += usize::from(wrote && reset == 0);
        if let Some(g) = granted {
            self.seen[if g == 0 { 2 } else { 3 }] += 1;
        }
        self.seen[4] += usize::from(self.stored.is_some() && at < self.last);
        if wrote {
            let stored = self.stored.clone().unwrap_or_default();
            for (i, rule) in rules.iter().enumerate() {
                let same_algorithm = stored.get(i).is_some_and(|s| s.name == rule.name);
                if !same_algorithm {
                    del(con, &self.shadow(i));
                } else if !exists(con, self.shadow(i)) && self.raises_an_idle_capacity(i, rule) {
                    self.prepare_idle(con, &self.shadow(i), i, rule, t);
                }
                if allowed {
                    let reply = rl(con, &format!("{} COST {c} AT {t}", rule.single(&self.shadow(i))));
                    assert_eq!(reply, alone[i], "shadow write of rule {i}");
                } else if same_algorithm && stored[i] != *rule {
                    // A reconfiguration alone: a cost no rule admits.
                    let reply = rl(con, &format!("{} COST 1000000000000000 AT {t}", rule.single(&self.shadow(i))));
                    assert_eq!(reply[0], 0);
                }
            }
            for i in rules.len()..16 {
                del(con, &self.shadow(i));
            }
            if reset == 0 {
                self.stored = None;
                self.expire_at = -2;
                self.drop_shadows(con);
            } else {
                self.stored = Some(rules.to_vec());
                self.last = t;
                self.expire_at = t + reset;
            }
        }
        assert_eq!(exists(con, &self.key), self.stored.is_some(), "{context}");
        assert_eq!(pexpiretime(con, &self.key), self.expire_at, "{context}");
        self.history.push(format!("{line} -> {ints:?}"));
        if self.history.len() > 6 {
            self.history.remove(0);
        }
    }
}

#[test]
fn rl_limit_matches_the_reference_model_call_by_call() {
    let mut rng = seeded_rng("rl_limit_matches_the_reference_model_call_by_call");
    let server = Server::start(&[]);
    let mut con = server.conn();
    // Far enough ahead that no key expires by the server's clock during the test.
    let base = now_ms() + 1_000_000_000_000;
    let steps: usize = std::env::var("RL_MODEL_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(1500);
    let mut models: Vec<(Model, Vec<Rule>, i64)> = (0..3)
        .map(|k| {
            let n = rng.gen_range(1..=4);
            (Model::new(&format!("lim:{k}")), (0..n).map(|_| random_rule(&mut rng)).collect(), base)
        })
        .collect();
    for _ in 0..steps {
        let (model, rules, clock) = &mut models[rng.gen_range(0..3)];
        if rng.gen_ratio(1, 12) {
            mutate(&mut rng, rules);
        }
        *clock += match rng.gen_range(0..20) {
            0 => rng.gen_range(3_000..20_000), // long idle: windows pass, buckets refill
            1..=3 => 0,
            _ => rng.gen_range(0..300),
        };
        // Sometimes a time before the key's last update.
        let at = if rng.gen_ratio(1, 10) { *clock - rng.gen_range(0..3_000) } else { *clock };
        let upto = rng.gen_ratio(1, 5);
        let cost = match rng.gen_range(0..10) {
            0 if !upto => 0,
            1 => rng.gen_range(4..12),
            _ => rng.gen_range(1..=3),
        };
        let dryrun = rng.gen_ratio(1, 8);
        let rules = rules.clone();
        model.step(&mut con, &rules, cost, upto, dryrun, at);
    }
    let seen = models.iter().fold([0; 5], |mut sum, (m, _, _)| {
        sum.iter_mut().zip(m.seen).for_each(|(s, n)| *s += n);
        sum
    });
    eprintln!("rejected writes, deletions, UPTO g = 0, UPTO g >= 1, AT behind the key: {seen:?}");
    for (i, n) in seen.iter().enumerate() {
        assert!(i == 1 || *n > 0, "case {i} never came up: {seen:?}");
    }
}

/// A rejected call that only drops positions still writes (a reconfiguration), and the key's
/// time does not run backwards afterwards.
#[test]
fn dropping_a_rule_on_a_rejected_call_keeps_the_key_time() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let t = (now_ms() / 100_000 + 10_000) * 100_000;
    // Rule 2 is written at t + 1000 by a reconfiguration of its own while rule 1 stays at t.
    rl(&mut con, &format!("RL.LIMIT k FIXED 1 100000 TOKENBUCKET 5 1 1000 AT {t}"));
    let r = rl(&mut con, &format!("RL.LIMIT k FIXED 1 100000 TOKENBUCKET 6 1 1000 AT {}", t + 1000));
    assert_eq!(r[0], 0);
    // Dropping rule 2 on a rejected call: a write, made at t + 1000 at the earliest.
    let r = rl(&mut con, &format!("RL.LIMIT k FIXED 1 100000 AT {}", t + 10));
    assert_eq!(r[0], 0);
    // At t + 20 the key is still at t + 1000: the fixed window ends 1000 ms sooner than from t + 20.
    let r = rl(&mut con, &format!("RL.LIMIT k FIXED 1 100000 COST 0 AT {}", t + 20));
    assert_eq!(r, [1, 1, 0, -1, 99_000]);
}

fn words(line: &str) -> Vec<Vec<u8>> {
    line.split_whitespace().map(|w| w.as_bytes().to_vec()).collect()
}

fn err_of(con: &mut Connection, args: &[Vec<u8>]) -> String {
    let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    match call(con, &refs) {
        Ok(v) => panic!("{:?}: expected an error, got {v:?}", String::from_utf8_lossy(&args.concat())),
        Err(e) => error_text(&e),
    }
}

#[test]
fn wrongtype_both_ways_names_what_the_key_holds() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    rl(&mut con, "RL.LIMIT both FIXED 5 60000 GCRA 1 1 1000");
    rl(&mut con, "RL.LIMIT onerule FIXED 5 60000");
    rl(&mut con, "RL.SLIDINGCOUNTER one 5 60000");
    rl(&mut con, "RL.FIXED fw 5 60000");
    let _: () = redis::cmd("SET").arg("str").arg("x").query(&mut con).expect("SET");
    let _: String = redis::cmd("RL.POLICY.SET").arg("p").arg("FIXED").arg(5).arg(60000).query(&mut con).expect("SET");
    let before = digest(&mut con);
    for single in ["RL.FIXED both 5 60000", "RL.SLIDINGCOUNTER both 5 60000", "RL.GCRA both 1 1 1000"] {
        let e = rl_err(&mut con, single);
        let command = single.split(' ').next().unwrap_or_default();
        assert!(e.starts_with("WRONGTYPE key holds RL.LIMIT rules; "), "{single}: {e}");
        assert!(e.contains(command), "{single}: {e}");
    }
    let e = rl_err(&mut con, "RL.LIMIT one FIXED 5 60000");
    assert_eq!(e, "WRONGTYPE key holds a sliding counter limiter; RL.LIMIT needs RL.LIMIT rules");
    let e = rl_err(&mut con, "RL.CHECK fw p");
    assert_eq!(e, "WRONGTYPE key holds a fixed window limiter; RL.LIMIT needs RL.LIMIT rules");
    // A one-rule RL.LIMIT key is still a rules key, not the single algorithm's.
    let e = rl_err(&mut con, "RL.FIXED onerule 5 60000");
    assert_eq!(e, "WRONGTYPE key holds RL.LIMIT rules; RL.FIXED needs a fixed window limiter");
    let e = rl_err(&mut con, "RL.LIMIT str FIXED 5 60000");
    assert!(e.starts_with("WRONGTYPE"), "{e}");
    let e = rl_err(&mut con, "CL.THROTTLE both 1 1 1");
    assert!(e.starts_with("WRONGTYPE key holds RL.LIMIT rules"), "{e}");
    // Even DRYRUN and COST 0 answer WRONGTYPE.
    for line in ["RL.FIXED both 5 60000 DRYRUN", "RL.LIMIT fw FIXED 5 60000 COST 0"] {
        assert!(rl_err(&mut con, line).starts_with("WRONGTYPE"), "{line}");
    }
    assert_eq!(digest(&mut con), before);
}

#[test]
fn rule_count_bad_rules_and_options_are_errors_that_change_nothing() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let t = now_ms() + 60_000;
    rl(&mut con, &format!("RL.LIMIT k FIXED 5 60000 AT {t}"));
    let _: String = redis::cmd("RL.POLICY.SET").arg("p").arg("FIXED").arg(5).arg(60000).query(&mut con).expect("SET");
    let before = digest(&mut con);
    let sixteen = vec!["FIXED 5 60000"; 16].join(" ");
    let seventeen = vec!["FIXED 5 60000"; 17].join(" ");
    let r = rl(&mut con, &format!("RL.LIMIT sixteen {sixteen} DRYRUN"));
    assert_eq!(r, [1, 5, 4, -1, r[4]]);
    let cases = [
        (format!("RL.LIMIT k {seventeen}"), "ERR at most 16 rules".to_string()),
        (format!("RL.POLICY.SET q {seventeen}"), "ERR at most 16 rules".to_string()),
        ("RL.LIMIT k".into(), "ERR wrong number of arguments".into()),
        ("RL.LIMIT k COST 1".into(), "ERR wrong number of arguments".into()),
        ("RL.LIMIT k COST 1 DRYRUN".into(), "ERR expected a rule".into()),
        ("RL.LIMIT k NOPE 5 60000".into(), "ERR expected a rule".into()),
        ("RL.LIMIT k FIXED 5".into(), "ERR wrong number of arguments".into()),
        ("RL.LIMIT k FIXED 5 DRYRUN".into(), "ERR rule 1 (FIXED): window_ms must be".into()),
        ("RL.LIMIT k FIXED 5 60000 SLIDING 0 1000".into(), "ERR rule 2 (SLIDING): limit must be".into()),
        ("RL.LIMIT k FIXED 5 60000 GCRA 1 0 1000".into(), "ERR rule 2 (GCRA): rate must be".into()),
        ("RL.LIMIT k TOKENBUCKET 1000000000000000 1 1000000".into(), "ERR rule 1 (TOKENBUCKET): ".into()),
        ("RL.LIMIT k SLIDINGCOUNTER 5 10000000000001".into(), "ERR rule 1 (SLIDINGCOUNTER): window_ms".into()),
        ("RL.LIMIT k FIXED 5 60000 COST -1".into(), "ERR COST must be".into()),
        ("RL.LIMIT k FIXED 5 60000 COST 1 COST 1".into(), "ERR COST given more than once".into()),
        ("RL.LIMIT k FIXED 5 60000 DETAILS DETAILS".into(), "ERR DETAILS given more than once".into()),
        ("RL.LIMIT k FIXED 5 60000 UPTO".into(), "ERR UPTO needs COST n with n >= 1".into()),
        ("RL.LIMIT k FIXED 5 60000 UPTO COST 0".into(), "ERR UPTO needs COST n with n >= 1".into()),
        ("RL.LIMIT k FIXED 5 60000 FIXED".into(), "ERR rule 2 (FIXED)".into()),
        ("RL.LIMIT k FIXED 5 60000 BOGUS".into(), "ERR unknown option 'BOGUS'".into()),
        ("RL.LIMIT k FIXED 5 60000 AT 1000000000000001".into(), "ERR AT must be".into()),
        ("RL.FIXED k 5 60000 DETAILS".into(), "ERR unknown option 'DETAILS'".into()),
        ("RL.CHECK k".into(), "ERR wrong number of arguments".into()),
        ("RL.CHECK k nope".into(), "ERR no such policy 'nope'".into()),
        ("RL.CHECK k p COST x".into(), "ERR COST must be".into()),
        ("RL.CHECK k p UPTO".into(), "ERR UPTO needs COST n with n >= 1".into()),
    ];
    for (line, expected) in &cases {
        let e = rl_err(&mut con, line);
        assert!(e.starts_with(expected.as_str()), "{line}: {e}");
    }
    assert_eq!(digest(&mut con), before);
    let stats: String = redis::cmd("INFO").arg("rl").query(&mut con).expect("INFO");
    assert!(stats.contains("rl_limit:admitted=1,"), "{stats}");
}

#[test]
fn errors_come_in_order_arguments_then_policy_then_type() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let _: () = redis::cmd("SET").arg("str").arg("x").query(&mut con).expect("SET");
    let _: String = redis::cmd("RL.POLICY.SET").arg("p").arg("FIXED").arg(5).arg(60000).query(&mut con).expect("SET");
    // A bad option beats an unknown policy, which beats the key's type.
    assert!(rl_err(&mut con, "RL.CHECK str nope COST -1").starts_with("ERR COST must be"));
    assert!(rl_err(&mut con, "RL.CHECK str nope UPTO").starts_with("ERR UPTO needs"));
    assert_eq!(rl_err(&mut con, "RL.CHECK str nope"), "ERR no such policy 'nope'");
    assert!(rl_err(&mut con, "RL.CHECK str p").starts_with("WRONGTYPE"));
    // RL.LIMIT: a bad rule beats the type.
    assert!(rl_err(&mut con, "RL.LIMIT str FIXED 0 60000").starts_with("ERR rule 1 (FIXED)"));
    assert!(rl_err(&mut con, "RL.LIMIT str FIXED 5 60000").starts_with("WRONGTYPE"));
    // A binary policy name is shown printable in the error.
    let e = err_of(&mut con, &[b"RL.CHECK".to_vec(), b"str".to_vec(), b"a\x00b\nc".to_vec()]);
    assert_eq!(e, "ERR no such policy 'a?b?c'");
    let mut long = words("RL.CHECK k");
    long.push(vec![b'x'; 256]);
    let e = err_of(&mut con, &long);
    assert!(e.starts_with("ERR no such policy 'xxxxxxxx") && e.ends_with("...'"), "{e}");
}

#[test]
fn rl_info_shows_each_rule() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let t = now_ms() + 60_000;
    rl(&mut con, &format!("RL.LIMIT k TOKENBUCKET 10 1 1000 SLIDINGCOUNTER 100 60000 COST 3 AT {t}"));
    let info: Vec<Value> = redis::cmd("RL.INFO").arg("k").query(&mut con).expect("RL.INFO");
    assert_eq!(info[0], Value::BulkString(b"algorithm".to_vec()));
    assert_eq!(info[1], Value::BulkString(b"rules".to_vec()));
    assert_eq!(info[2], Value::BulkString(b"rules".to_vec()));
    let Value::Array(rules) = &info[3] else { panic!("rules: {:?}", info[3]) };
    assert_eq!(rules.len(), 2);
    let fields = |v: &Value| -> Vec<(String, Value)> {
        let Value::Array(flat) = v else { panic!("rule: {v:?}") };
        flat.chunks(2).map(|p| (redis::from_redis_value::<String>(&p[0]).expect("name"), p[1].clone())).collect()
    };
    let first = fields(&rules[0]);
    assert_eq!(first[0], ("algorithm".into(), Value::BulkString(b"tokenbucket".to_vec())));
    assert!(first.contains(&("capacity".into(), Value::Int(10))), "{first:?}");
    let second = fields(&rules[1]);
    assert_eq!(second[0], ("algorithm".into(), Value::BulkString(b"slidingcounter".to_vec())));
    assert!(second.contains(&("limit".into(), Value::Int(100))), "{second:?}");
    assert_eq!(info[4], Value::BulkString(b"ttl_ms".to_vec()));
}

#[test]
fn details_and_binding_rule_on_a_hand_checked_example() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    // t at the start of a minute, so the fixed window's end is known.
    let t = (now_ms() / 60_000 + 2) * 60_000;
    let line =
        |extra: &str, at: i64| format!("RL.LIMIT u TOKENBUCKET 10 1 1000 FIXED 1000 60000 {extra} AT {at} DETAILS");
    let (ints, details) = split_reply(query(&mut con, &line("COST 4", t)));
    assert_eq!(ints, [1, 10, 6, -1, 60_000]);
    assert_eq!(details, [[1, 10, 6, -1, 4000], [1, 1000, 996, -1, 60_000]]);
    // 7 more: the bucket (6.1 tokens at t + 100) rejects, the window would admit; nothing taken.
    let (ints, details) = split_reply(query(&mut con, &line("COST 7", t + 100)));
    assert_eq!(ints, [0, 10, 6, 900, 59_900]);
    assert_eq!(details, [[0, 10, 6, 900, 3900], [1, 1000, 996, -1, 59_900]]);
    // More than the bucket can ever hold: retry -1 though the window admits.
    let (ints, _) = split_reply(query(&mut con, &line("COST 11", t + 100)));
    assert_eq!(ints, [0, 10, 6, -1, 59_900]);
}
