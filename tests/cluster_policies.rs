//! Policies on a cluster: `redis-cli --cluster call` sets a policy on every master, RL.CHECK works
//! on whichever node owns the key (the others answer MOVED: the key spec routes it), and a node
//! lacking the policy answers `ERR no such policy` and changes nothing.
mod common;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

fn redis_cli(args: &[String]) -> String {
    let out = Command::new("redis-cli").args(args).output().expect("redis-cli on PATH");
    assert!(out.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The reply of the node that owns `key` (the others answer MOVED).
fn on_owner(nodes: &[Server], line: &str) -> Result<Vec<i64>, String> {
    for node in nodes {
        let words: Vec<&str> = line.split_whitespace().collect();
        match redis::cmd(words[0]).arg(&words[1..]).query::<Vec<i64>>(&mut node.conn()) {
            Ok(reply) => return Ok(reply),
            Err(e) if e.code() == Some("MOVED") => continue,
            Err(e) => return Err(error_text(&e)),
        }
    }
    panic!("no node owns the key of {line}");
}

#[test]
fn a_policy_set_on_every_master_serves_rl_check_across_the_cluster() {
    let cluster = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"];
    let nodes: Vec<Server> = (0..3).map(|_| Server::start(&cluster)).collect();
    let mut create = vec!["--cluster".to_string(), "create".to_string()];
    create.extend(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)));
    create.push("--cluster-yes".to_string());
    redis_cli(&create);
    let deadline = Instant::now() + Duration::from_secs(30);
    for node in &nodes {
        while info_field(&mut node.conn(), "cluster", "cluster_enabled") != "1"
            || !redis::cmd("CLUSTER")
                .arg("INFO")
                .query::<String>(&mut node.conn())
                .expect("CLUSTER INFO")
                .contains("cluster_state:ok")
        {
            assert!(Instant::now() < deadline, "cluster never became ok");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let entry = format!("127.0.0.1:{}", nodes[0].port);
    let call = |args: &[&str]| {
        let mut all = vec!["--cluster".to_string(), "call".to_string(), entry.clone()];
        all.extend(args.iter().map(|a| a.to_string()));
        all.push("--cluster-only-masters".to_string());
        redis_cli(&all)
    };
    call(&["RL.POLICY.SET", "per-user", "TOKENBUCKET", "10", "10", "1000", "FIXED", "1000", "86400000"]);
    for node in &nodes {
        let names: Vec<String> = redis::cmd("RL.POLICY.LIST").query(&mut node.conn()).expect("LIST");
        assert_eq!(names, ["per-user"]);
    }
    let t = now_ms() + 60_000;
    for user in 0..30 {
        let reply = on_owner(&nodes, &format!("RL.CHECK user:{user} per-user COST 3 AT {t}")).expect("RL.CHECK");
        assert_eq!(reply[..4], [1, 10, 7, -1]);
    }
    // Every node owns some of the keys.
    for node in &nodes {
        assert!(redis::cmd("DBSIZE").query::<i64>(&mut node.conn()).expect("DBSIZE") > 0);
    }
    // One master loses the policy: its keys answer the error and stay as they are; the others still work.
    let _: i64 = redis::cmd("RL.POLICY.DEL").arg("per-user").query(&mut nodes[1].conn()).expect("DEL");
    let before: Vec<String> = nodes.iter().map(|n| digest(&mut n.conn())).collect();
    let (mut refused, mut served) = (0, 0);
    for user in 0..30 {
        match on_owner(&nodes, &format!("RL.CHECK user:{user} per-user COST 0 AT {t}")) {
            Ok(reply) => {
                assert_eq!(reply[..3], [1, 10, 7]);
                served += 1;
            }
            Err(e) => {
                assert_eq!(e, "ERR no such policy 'per-user'");
                refused += 1;
            }
        }
    }
    assert!(refused > 0 && served > 0, "{refused} refused, {served} served");
    let after: Vec<String> = nodes.iter().map(|n| digest(&mut n.conn())).collect();
    assert_eq!(before, after);
}
