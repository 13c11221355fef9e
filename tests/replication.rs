//! Replicas end in exactly the master's state, whatever their clock or delay.
mod common;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// A master and a replica of it, linked and in sync.
fn pair() -> (Server, Server) {
    let master = Server::start(&[]);
    let replica = start_replica(&master, &[], &[]);
    (master, replica)
}

/// Waits until the replica has applied everything the master sent, then compares digests.
fn assert_in_sync(master: &Server, replica: &Server) {
    let mut mc = master.conn();
    wait_for_replica(&mut mc, &mut replica.conn());
    let on_master = key_states(&mut mc);
    assert!(!on_master.is_empty(), "test wrote nothing");
    assert_same_live_keys(&key_states(&mut replica.conn()), &on_master);
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().expect("kill");
    assert!(status.success());
}

#[test]
fn random_traffic_leaves_replica_identical() {
    let mut rng = seeded_rng("random_traffic_leaves_replica_identical");
    let (master, replica) = pair();
    let mut mc = master.conn();
    for _ in 0..10 {
        traffic::send(&mut mc, &mut rng, 300, 8);
        std::thread::sleep(Duration::from_millis(30)); // let the clock move between batches
    }
    assert_in_sync(&master, &replica);
}

#[test]
fn a_paused_replica_catches_up_to_the_same_state() {
    let mut rng = seeded_rng("a_paused_replica_catches_up_to_the_same_state");
    let (master, replica) = pair();
    let mut mc = master.conn();
    traffic::send(&mut mc, &mut rng, 500, 8);
    signal(replica.pid(), "STOP");
    // Traffic keeps flowing for a few seconds while the replica is frozen: when it resumes,
    // its clock is seconds ahead of the times the master decided at.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        traffic::send(&mut mc, &mut rng, 50, 8);
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(replica.pid(), "CONT");
    traffic::send(&mut mc, &mut rng, 300, 8);
    assert_in_sync(&master, &replica);
}

#[test]
fn rejected_dryrun_and_cost_zero_calls_replicate_nothing() {
    let (master, _replica) = pair();
    let mut mc = master.conn();
    let t = now_ms() + 60_000;
    rl(&mut mc, &format!("RL.FIXED k 1 60000 AT {t}"));
    let offset = info_field(&mut mc, "replication", "master_repl_offset");
    for line in [
        format!("RL.FIXED k 1 60000 AT {t}"),                // rejected
        format!("RL.FIXED k 1 60000 COST 0 AT {t}"),         // peek
        format!("RL.FIXED other 1 60000 DRYRUN AT {t}"),     // dry run
        format!("RL.TOKENBUCKET tb 5 1 1000 COST 0 AT {t}"), // peek on an absent key
    ] {
        rl(&mut mc, &line);
    }
    assert_eq!(info_field(&mut mc, "replication", "master_repl_offset"), offset);
}

#[test]
fn multi_exec_and_eval_replicate_deterministically() {
    let mut rng = seeded_rng("multi_exec_and_eval_replicate_deterministically");
    let (master, replica) = pair();
    let mut mc = master.conn();
    for _ in 0..40 {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for _ in 0..10 {
            pipe.add_command(traffic::command(&mut rng, 4));
        }
        let _: redis::Value = pipe.query(&mut mc).expect("MULTI/EXEC");
        let script = "local r = {} for i = 1, 5 do r[i] = redis.call('RL.SLIDING', KEYS[1], 7, 60000) \
                      r[i+5] = redis.call('RL.TOKENBUCKET', KEYS[2], 3, 1, 100) end return #r";
        let _: i64 = redis::cmd("EVAL").arg(script).arg(2).arg("lua:sl").arg("lua:tb").query(&mut mc).expect("EVAL");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_in_sync(&master, &replica);
}

#[test]
fn idle_keys_expire_on_the_master_and_the_replica_drops_them() {
    let (master, replica) = pair();
    let mut mc = master.conn();
    // Hold the master's active expiry while writing, so a slow machine cannot expire keys before they are counted.
    let _: () = redis::cmd("DEBUG").arg("SET-ACTIVE-EXPIRE").arg(0).query(&mut mc).expect("DEBUG SET-ACTIVE-EXPIRE");
    for i in 0..20 {
        rl(&mut mc, &format!("RL.FIXED fw:{i} 5 50"));
        rl(&mut mc, &format!("RL.SLIDING sl:{i} 5 50"));
        rl(&mut mc, &format!("RL.TOKENBUCKET tb:{i} 5 5 50"));
    }
    let mut rc = replica.conn();
    let _: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut mc).expect("WAIT");
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut rc).expect("DBSIZE"), 60);
    // Past the TTL the replica still holds every key: it never expires keys by its own clock.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut rc).expect("DBSIZE"), 60);
    let _: () = redis::cmd("DEBUG").arg("SET-ACTIVE-EXPIRE").arg(1).query(&mut mc).expect("DEBUG SET-ACTIVE-EXPIRE");
    // Active expiry runs on the master only; the replica keeps keys until the master's DEL.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: i64 = redis::cmd("DBSIZE").query(&mut rc).expect("DBSIZE");
        if left == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "replica still holds {left} keys");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut mc).expect("DBSIZE"), 0);
}

#[test]
fn a_key_taken_over_from_redis_cell_reaches_the_replica_whole() {
    let (master, replica) = pair();
    let mut mc = master.conn();
    set_redis_cell_key(&mut mc, "cell", now_ms() + 20_000);
    let reply: Vec<i64> =
        redis::cmd("CL.THROTTLE").arg("cell").arg(4).arg(1).arg(10).query(&mut mc).expect("CL.THROTTLE");
    assert_eq!(reply[..3], [0, 5, 2]);
    assert_in_sync(&master, &replica);
    let on_replica: String = redis::cmd("TYPE").arg("cell").query(&mut replica.conn()).expect("TYPE");
    assert_eq!(on_replica, "rlLimiter");
}

/// What the README advises for failover: `WAIT` right after the call, on the same connection. Inside
/// MULTI, WAIT does not block, and its answer is not about the call in the transaction: on Redis 7.2+
/// and Valkey it counts the replicas that have the writes before the transaction (which reaches the
/// replica only after EXEC), so it says 1 while the replica is frozen; Redis 7.0 counts those that
/// have the call, which has not been sent yet, so it says 0 whatever the replica does.
#[test]
fn wait_right_after_a_call_covers_it_and_wait_inside_multi_does_not() {
    let (master, replica) = pair();
    let mut mc = master.conn();
    let line = "RL.FIXED k 100 1000000000";
    rl(&mut mc, line);
    assert_eq!(redis::cmd("WAIT").arg(1).arg(20_000).query::<i64>(&mut mc).expect("WAIT"), 1);
    signal(replica.pid(), "STOP");
    let (reply, in_multi): (Vec<i64>, i64) = redis::pipe()
        .atomic()
        .cmd("RL.FIXED")
        .arg(&["k", "100", "1000000000"])
        .cmd("WAIT")
        .arg(1)
        .arg(2000)
        .query(&mut mc)
        .expect("MULTI RL.FIXED WAIT EXEC");
    assert_eq!(reply[..3], [1, 100, 98]);
    let old_redis = master.kind.is_redis() && !master.kind.at_least(7, 2);
    assert_eq!(in_multi, if old_redis { 0 } else { 1 }, "WAIT inside MULTI with a frozen replica on {}", master.kind);
    rl(&mut mc, line);
    let right_after: i64 = redis::cmd("WAIT").arg(1).arg(300).query(&mut mc).expect("WAIT");
    assert_eq!(right_after, 0, "WAIT right after the call with a frozen replica");
    signal(replica.pid(), "CONT");
    assert_in_sync(&master, &replica);
}

/// `min-replicas-to-write 1` with `min-replicas-max-lag`: while no replica has acknowledged within
/// the lag, the master refuses RL.* calls (they are write commands) with NOREPLICAS, changing nothing.
#[test]
fn min_replicas_to_write_refuses_calls_while_no_replica_keeps_up() {
    let (master, replica) = pair();
    let mut mc = master.conn();
    for (name, value) in [("min-replicas-to-write", "1"), ("min-replicas-max-lag", "1")] {
        let _: () = redis::cmd("CONFIG").arg("SET").arg(name).arg(value).query(&mut mc).expect("CONFIG SET");
    }
    let line = "RL.FIXED k 100 1000000000";
    // The master counts a fresh replica as good only once its replication cron has seen an ack.
    let deadline = Instant::now() + Duration::from_secs(30);
    while redis::cmd("RL.FIXED").arg(&["k", "100", "1000000000", "COST", "0"]).query::<Vec<i64>>(&mut mc).is_err() {
        assert!(Instant::now() < deadline, "refused with a healthy replica");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(rl(&mut mc, line)[2], 99);
    let before = digest_value(&mut mc, b"k");
    signal(replica.pid(), "STOP");
    // The replica acknowledges once a second; the master counts it as lagging a second or two later.
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        match redis::cmd("RL.FIXED").arg(&["k", "100", "1000000000", "COST", "0"]).query::<Vec<i64>>(&mut mc) {
            Ok(_) => assert!(Instant::now() < deadline, "never refused with a frozen replica"),
            Err(e) => break error_text(&e),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(refused.starts_with("NOREPLICAS"), "{refused}");
    assert!(rl_err(&mut mc, line).starts_with("NOREPLICAS"));
    assert_eq!(digest_value(&mut mc, b"k"), before, "a refused call changed the limiter");
    signal(replica.pid(), "CONT");
    let deadline = Instant::now() + Duration::from_secs(30);
    while redis::cmd("RL.FIXED").arg(&["k", "100", "1000000000", "COST", "0"]).query::<Vec<i64>>(&mut mc).is_err() {
        assert!(Instant::now() < deadline, "still refused after the replica resumed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(rl(&mut mc, line)[2], 98);
}
