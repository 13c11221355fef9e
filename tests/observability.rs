//! INFO rl, keyspace events, RL.INFO, command metadata, ACL key patterns and module configs.
mod common;
use common::*;
use std::collections::HashMap;
use std::time::Duration;

fn info_rl(con: &mut Connection) -> HashMap<String, String> {
    let info: String = redis::cmd("INFO").arg("rl").query(con).expect("INFO rl");
    info.lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k.to_string(), v.trim().to_string())).collect()
}

#[test]
fn info_counts_admitted_rejected_peeks_and_errors_per_command() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let t = now_ms() + 60_000;
    rl(&mut con, &format!("RL.FIXED f 1 60000 AT {t}")); // admitted
    rl(&mut con, &format!("RL.FIXED f 1 60000 AT {t}")); // rejected
    rl(&mut con, &format!("RL.FIXED f 1 60000 DRYRUN AT {t}")); // peek
    rl(&mut con, &format!("RL.FIXED f 1 60000 COST 0 AT {t}")); // peek
    rl_err(&mut con, "RL.FIXED f 0 60000"); // error
    let _: Vec<i64> = redis::cmd("CL.THROTTLE").arg("g").arg(1).arg(1).arg(60).query(&mut con).expect("CL");
    let info = info_rl(&mut con);
    assert_eq!(info["rl_fixed"], "admitted=1,rejected=1,peeks=2,errors=1");
    assert_eq!(info["rl_cl_throttle"], "admitted=1,rejected=0,peeks=0,errors=0");
    assert_eq!(info["rl_sliding"], "admitted=0,rejected=0,peeks=0,errors=0");
    for name in ["rl_tokenbucket", "rl_gcra"] {
        assert!(info.contains_key(name), "{name} missing from INFO rl");
    }
}

#[test]
fn keyspace_events_for_admitted_writes_only() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let _: () =
        redis::cmd("CONFIG").arg("SET").arg("notify-keyspace-events").arg("Kd").query(&mut con).expect("CONFIG");
    let mut sub = server.conn();
    sub.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut pubsub = sub.as_pubsub();
    pubsub.psubscribe("__keyspace@0__:*").expect("PSUBSCRIBE");
    let t = now_ms() + 60_000;
    rl(&mut con, &format!("RL.SLIDING k 1 60000 AT {t}")); // admitted: event
    rl(&mut con, &format!("RL.SLIDING k 1 60000 AT {t}")); // rejected: none
    rl(&mut con, &format!("RL.SLIDING k 1 60000 DRYRUN AT {t}")); // none
    rl(&mut con, &format!("RL.TOKENBUCKET tb 5 1 1000 AT {t}")); // event
                                                                 // A message published after the calls marks the end: everything before it has arrived.
    let _: i64 = redis::cmd("PUBLISH").arg("__keyspace@0__:end").arg("end").query(&mut con).expect("PUBLISH");
    let mut events = Vec::new();
    loop {
        let msg = pubsub.get_message().expect("keyspace event");
        let channel = msg.get_channel_name().to_string();
        if channel == "__keyspace@0__:end" {
            break;
        }
        events.push((channel, msg.get_payload::<String>().expect("payload")));
    }
    assert_eq!(
        events,
        vec![
            ("__keyspace@0__:k".to_string(), "rl.sliding".to_string()),
            ("__keyspace@0__:tb".to_string(), "rl.tokenbucket".to_string())
        ]
    );
}

fn info_map(con: &mut Connection, key: &str) -> HashMap<String, redis::Value> {
    let flat: Vec<redis::Value> = redis::cmd("RL.INFO").arg(key).query(con).expect("RL.INFO");
    flat.chunks(2)
        .map(|pair| (redis::from_redis_value::<String>(&pair[0]).expect("field name"), pair[1].clone()))
        .collect()
}

fn int(v: &redis::Value) -> i64 {
    redis::from_redis_value(v).expect("integer")
}

#[test]
fn rl_info_shows_parameters_and_state_without_touching_the_key() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let t = now_ms() + 60_000;
    rl(&mut con, &format!("RL.TOKENBUCKET tb 10 1 1000 COST 4 AT {t}"));
    rl(&mut con, &format!("RL.SLIDING sl 10 60000 COST 3 AT {t}"));
    rl(&mut con, &format!("RL.SLIDING sl 10 60000 COST 2 AT {}", t + 5));
    rl(&mut con, &format!("RL.GCRA gc 4 1 10000 AT {t}"));
    rl(&mut con, &format!("RL.FIXED fw 5 60000 AT {t}"));
    let before = digest(&mut con);
    let expiries_before = expiries(&mut con);

    let tb = info_map(&mut con, "tb");
    assert_eq!(redis::from_redis_value::<String>(&tb["algorithm"]).expect("text"), "tokenbucket");
    assert_eq!((int(&tb["capacity"]), int(&tb["refill_tokens"]), int(&tb["refill_ms"])), (10, 1, 1000));
    // The key's last update is ahead of the clock (AT in the future): seen from there.
    assert_eq!((int(&tb["limit"]), int(&tb["remaining"]), int(&tb["reset_after_ms"])), (10, 6, 4000));
    assert_eq!(int(&tb["last_update_ms"]), t);
    let ttl = int(&tb["ttl_ms"]);
    assert!(ttl > 60_000 && ttl <= t + 4000 - now_ms() + 5, "{ttl}");

    let sl = info_map(&mut con, "sl");
    assert_eq!(
        (int(&sl["limit"]), int(&sl["window_ms"]), int(&sl["entries"]), int(&sl["remaining"])),
        (10, 60000, 2, 5)
    );
    let gc = info_map(&mut con, "gc");
    assert_eq!((int(&gc["burst"]), int(&gc["rate"]), int(&gc["period_ms"]), int(&gc["limit"])), (4, 1, 10000, 5));
    assert_eq!(int(&gc["remaining"]), 4);
    let fw = info_map(&mut con, "fw");
    assert_eq!((int(&fw["limit"]), int(&fw["window_ms"]), int(&fw["remaining"])), (5, 60000, 4));

    assert_eq!(redis::cmd("RL.INFO").arg("absent").query::<redis::Value>(&mut con).expect("nil"), redis::Value::Nil);
    let _: () = redis::cmd("SET").arg("s").arg("x").query(&mut con).expect("SET");
    assert!(rl_err(&mut con, "RL.INFO s").starts_with("WRONGTYPE"));
    assert!(rl_err(&mut con, "RL.INFO").starts_with("ERR wrong number of arguments"));
    let _: () = redis::cmd("DEL").arg("s").query(&mut con).expect("DEL");
    assert_eq!(digest(&mut con), before);
    assert_eq!(expiries(&mut con), expiries_before);
}

#[test]
fn rl_info_is_a_map_in_resp3() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    rl(&mut con, "RL.FIXED fw 5 60000");
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/?protocol=resp3", server.port)).expect("client");
    let mut resp3 = client.get_connection().expect("RESP3 connection");
    let reply: redis::Value = redis::cmd("RL.INFO").arg("fw").query(&mut resp3).expect("RL.INFO");
    let redis::Value::Map(fields) = reply else { panic!("RL.INFO in RESP3 is not a map: {reply:?}") };
    let names: Vec<String> = fields.iter().map(|(k, _)| redis::from_redis_value(k).expect("field name")).collect();
    assert_eq!(names, ["algorithm", "limit", "window_ms", "remaining", "reset_after_ms", "last_update_ms", "ttl_ms"]);
    assert_eq!(fields[0].1, redis::Value::BulkString(b"fixed".to_vec()));
}

#[test]
fn command_info_and_docs_describe_every_command() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    for (name, arity, flags) in [
        ("rl.tokenbucket", -5, vec!["write", "denyoom", "module", "fast"]),
        ("rl.fixed", -4, vec!["write", "denyoom", "module", "fast"]),
        ("rl.sliding", -4, vec!["write", "denyoom", "module", "fast"]),
        ("rl.gcra", -5, vec!["write", "denyoom", "module", "fast"]),
        ("cl.throttle", -5, vec!["write", "denyoom", "module", "fast"]),
        ("rl.info", 2, vec!["readonly", "module", "fast"]),
    ] {
        let info: Vec<Vec<redis::Value>> = redis::cmd("COMMAND").arg("INFO").arg(name).query(&mut con).expect("INFO");
        let entry = &info[0];
        assert_eq!(redis::from_redis_value::<String>(&entry[0]).expect("name").to_lowercase(), name);
        assert_eq!(int(&entry[1]), arity, "{name}");
        let got: Vec<String> = redis::from_redis_value(&entry[2]).expect("flags");
        assert_eq!(got, flags, "{name}");
        assert_eq!((int(&entry[3]), int(&entry[4]), int(&entry[5])), (1, 1, 1), "{name} key positions");
        let mut getkeys = redis::cmd("COMMAND");
        getkeys.arg("GETKEYS").arg(name).arg("the:key");
        for _ in 2..arity.abs() {
            getkeys.arg(1);
        }
        let keys: Vec<String> = getkeys.query(&mut con).expect("GETKEYS");
        assert_eq!(keys, vec!["the:key"]);
        let docs: Vec<redis::Value> = redis::cmd("COMMAND").arg("DOCS").arg(name).query(&mut con).expect("DOCS");
        let text = format!("{docs:?}");
        assert!(text.contains("summary") && text.contains("arguments"), "{name}: {text}");
    }
    // Arity is checked by Redis before the module runs.
    assert!(rl_err(&mut con, "RL.FIXED k 1").starts_with("ERR wrong number of arguments"));
}

#[test]
fn acl_key_patterns_apply_to_rl_commands() {
    let server = Server::start(&[]);
    let mut admin = server.conn();
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("alice")
        .arg("on")
        .arg(">secret")
        .arg("~user:*")
        .arg("+@all")
        .query(&mut admin)
        .expect("ACL SETUSER");
    let mut con = server.conn();
    let _: () = redis::cmd("AUTH").arg("alice").arg("secret").query(&mut con).expect("AUTH");
    rl(&mut con, "RL.FIXED user:1 5 60000");
    rl(&mut con, "RL.GCRA user:2 1 1 1000");
    for line in [
        "RL.FIXED other 5 60000",
        "RL.SLIDING other 5 60000",
        "RL.TOKENBUCKET x 1 1 1",
        "CL.THROTTLE x 1 1 1",
        "RL.INFO x",
    ] {
        let err = rl_err(&mut con, line);
        assert!(err.starts_with("NOPERM"), "{line}: {err}");
    }
    assert_eq!(redis::cmd("EXISTS").arg("other").query::<i64>(&mut admin).expect("EXISTS"), 0);
}

#[test]
fn configs_are_set_at_load_and_with_config_set() {
    let server = Server::start_with_module_args(&["max-sliding-entries", "3"], &[]);
    let mut con = server.conn();
    let get = |con: &mut Connection, name: &str| -> String {
        let v: Vec<String> = redis::cmd("CONFIG").arg("GET").arg(name).query(con).expect("CONFIG GET");
        v[1].clone()
    };
    assert_eq!(get(&mut con, "rl.max-sliding-entries"), "3");
    assert_eq!(get(&mut con, "rl.test-clock"), "no");
    let t = now_ms() + 60_000;
    for i in 0..10 {
        rl(&mut con, &format!("RL.SLIDING s 100 60000 AT {}", t + i));
    }
    assert_eq!(int(&info_map(&mut con, "s")["entries"]), 3);
    let _: () = redis::cmd("CONFIG").arg("SET").arg("rl.max-sliding-entries").arg(1000).query(&mut con).expect("SET");
    assert_eq!(get(&mut con, "rl.max-sliding-entries"), "1000");
    for bad in ["0", "-1", "abc", "1000000000000001"] {
        let err = redis::cmd("CONFIG").arg("SET").arg("rl.max-sliding-entries").arg(bad).query::<()>(&mut con);
        assert!(err.is_err(), "{bad} accepted");
    }
    assert!(redis::cmd("CONFIG").arg("SET").arg("rl.test-clock").arg("yes").query::<()>(&mut con).is_err());
}
