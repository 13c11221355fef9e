//! Redis Cluster, for real: six nodes on loopback (three masters, three replicas), each loading the
//! module, joined with `redis-cli --cluster create`. Checks, in one cluster, one phase after another:
//! - routing: every RL.* command goes to the master of its key's slot (hash tags included); a node
//!   that does not own the slot answers MOVED, which a small client-side router follows; a
//!   transaction over keys of one hash tag runs on one node, one over two slots is CROSSSLOT;
//! - resharding: a slot holding limiters of every algorithm moves to another master (CLUSTER
//!   SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE), ASK followed while it moves, and each
//!   limiter arrives with the same state (DEBUG DIGEST-VALUE, RL.INFO) and expiry (PEXPIRETIME);
//! - failover: `kill -9` of a master under traffic, its replica promoted, and every admission the
//!   client saw acknowledged by `WAIT 1 <ms>` (sent right after the call, same connection) present
//!   on the promoted replica; once with a healthy replica, once with one paused under the traffic
//!   (lagging) until the kill. Prints the failover time and the admissions lost with and without WAIT.

mod common;
use common::*;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

/// Lower than the default 15 s so a failover takes seconds; high enough for a loaded machine.
const NODE_TIMEOUT_MS: &str = "1500";
const SLOTS: usize = 16384;

// ---------------------------------------------------------------------------------------------
// Slots and a router that follows MOVED and ASK
// ---------------------------------------------------------------------------------------------

/// CRC16/XMODEM, the cluster's key hash.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= (byte as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// The slot of a key: only the part between the first `{` and the next `}` is hashed, if non-empty.
fn key_slot(key: &[u8]) -> usize {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter().position(|&b| b == b'}').filter(|&close| close > 0).map(|close| &rest[..close])
        })
        .unwrap_or(key);
    crc16(hashed) as usize % SLOTS
}

fn query(con: &mut Connection, words: &[String]) -> redis::RedisResult<Value> {
    redis::cmd(&words[0]).arg(&words[1..]).query(con)
}

fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}

fn connect(port: u16) -> redis::RedisResult<Connection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let con = client.get_connection_with_timeout(Duration::from_secs(5))?;
    con.set_read_timeout(Some(Duration::from_secs(30)))?;
    Ok(con)
}

/// A client-side router: a slot map (slot -> master port), one connection per node, MOVED updates
/// the map and retries there, ASK retries once on the named node after ASKING, a dead node makes
/// it reload the map from any node that answers.
struct Router {
    owner: Vec<u16>,
    seeds: Vec<u16>,
    conns: HashMap<u16, Connection>,
    moved: usize,
    asked: usize,
}

impl Router {
    /// A router whose map sends every slot to `port`: the cluster corrects it with MOVED.
    fn stale(port: u16, seeds: Vec<u16>) -> Router {
        Router { owner: vec![port; SLOTS], seeds, conns: HashMap::new(), moved: 0, asked: 0 }
    }

    fn con(&mut self, port: u16) -> redis::RedisResult<&mut Connection> {
        Ok(match self.conns.entry(port) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => entry.insert(connect(port)?),
        })
    }

    /// Reloads the slot map with CLUSTER SLOTS from the first node that answers.
    fn refresh(&mut self) {
        for port in self.seeds.clone() {
            let Ok(mut con) = connect(port) else { continue };
            let Ok(ranges) = redis::cmd("CLUSTER").arg("SLOTS").query::<Vec<Value>>(&mut con) else { continue };
            for range in ranges {
                let Value::Array(fields) = range else { continue };
                let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
                    (fields.first(), fields.get(1), fields.get(2))
                else {
                    continue;
                };
                if let Some(Value::Int(master_port)) = master.get(1) {
                    for slot in *start..=*end {
                        self.owner[slot as usize] = *master_port as u16;
                    }
                }
            }
            return;
        }
    }

    /// Runs a command whose key is its second word on the master of the key's slot.
    fn query(&mut self, words: &[String]) -> redis::RedisResult<Value> {
        let slot = key_slot(words[1].as_bytes());
        let mut port = self.owner[slot];
        let mut asking = false;
        let mut last = None;
        for _attempt in 0..10 {
            let con = match self.con(port) {
                Ok(con) => con,
                Err(e) => {
                    // A dead node: ask the others who owns the slot now.
                    self.conns.remove(&port);
                    last = Some(e);
                    std::thread::sleep(Duration::from_millis(100));
                    self.refresh();
                    port = self.owner[slot];
                    continue;
                }
            };
            if asking {
                let _: () = redis::cmd("ASKING").query(con)?;
            }
            match query(con, words) {
                Err(e) if e.kind() == redis::ErrorKind::Moved => {
                    let (addr, moved_slot) = e.redirect_node().expect("MOVED slot host:port");
                    assert_eq!(moved_slot as usize, slot, "MOVED for another slot: {e:?}");
                    port = addr.rsplit(':').next().and_then(|p| p.parse().ok()).expect("MOVED port");
                    self.owner[slot] = port;
                    self.moved += 1;
                    asking = false;
                }
                Err(e) if e.kind() == redis::ErrorKind::Ask => {
                    let (addr, _) = e.redirect_node().expect("ASK slot host:port");
                    port = addr.rsplit(':').next().and_then(|p| p.parse().ok()).expect("ASK port");
                    self.asked += 1;
                    asking = true;
                }
                Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() => {
                    self.conns.remove(&port);
                    last = Some(e);
                    std::thread::sleep(Duration::from_millis(100));
                    self.refresh();
                    port = self.owner[slot];
                }
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| (redis::ErrorKind::ClientError, "too many redirections").into()))
    }

    fn rl(&mut self, line: &str) -> [i64; 5] {
        let reply = self.query(&words(line)).unwrap_or_else(|e| panic!("{line}: {e}"));
        let ints: Vec<i64> = redis::from_redis_value(&reply).unwrap_or_else(|e| panic!("{line}: {e}"));
        ints.try_into().unwrap_or_else(|r| panic!("{line}: expected 5 integers, got {r:?}"))
    }
}

// ---------------------------------------------------------------------------------------------
// The cluster
// ---------------------------------------------------------------------------------------------

struct Cluster {
    nodes: Vec<Server>,
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

fn cluster_info(con: &mut Connection, field: &str) -> String {
    let info: String = redis::cmd("CLUSTER").arg("INFO").query(con).unwrap_or_default();
    info.lines().find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(':'))).unwrap_or("").trim().to_string()
}

fn role(con: &mut Connection) -> String {
    match redis::cmd("ROLE").query::<Vec<Value>>(con) {
        Ok(fields) => fields.first().and_then(|r| redis::from_redis_value::<String>(r).ok()).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

fn my_id(con: &mut Connection) -> String {
    redis::cmd("CLUSTER").arg("MYID").query(con).expect("CLUSTER MYID")
}

impl Cluster {
    fn start() -> Cluster {
        let nodes: Vec<Server> =
            (0..6).map(|_| Server::start_cluster_node(&["--cluster-node-timeout", NODE_TIMEOUT_MS])).collect();
        println!("cluster of {}", nodes[0].kind);
        let started = Instant::now();
        let output = Command::new(cli_binary())
            .arg("--cluster")
            .arg("create")
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .unwrap_or_else(|e| panic!("{} (set RL_CLI): {e}", cli_binary().display()));
        let text = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success() && text.contains("All 16384 slots covered"), "cluster create:\n{text}");
        let cluster = Cluster { nodes };
        // Every node sees a healthy cluster of six, every replica is linked to its master.
        for node in &cluster.nodes {
            let mut con = node.conn();
            wait_for("cluster_state:ok on every node", Duration::from_secs(60), || {
                cluster_info(&mut con, "cluster_state") == "ok" && cluster_info(&mut con, "cluster_known_nodes") == "6"
            });
            if role(&mut con) == "slave" {
                wait_for("replicas linked", Duration::from_secs(60), || {
                    info_field(&mut con, "replication", "master_link_status") == "up"
                });
            }
        }
        println!("cluster up in {:?}", started.elapsed());
        cluster
    }

    fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    fn node(&self, port: u16) -> &Server {
        self.nodes.iter().find(|n| n.port == port).expect("node on that port")
    }

    /// The live masters.
    fn masters(&self) -> Vec<u16> {
        self.ports()
            .into_iter()
            .filter(|&p| connect(p).map(|mut con| role(&mut con) == "master").unwrap_or(false))
            .collect()
    }

    /// The master port owning a slot, as node `port` sees it.
    fn owner_seen_by(port: u16, slot: usize) -> Option<u16> {
        let mut router = Router::stale(0, vec![port]);
        router.refresh();
        Some(router.owner[slot]).filter(|&p| p != 0)
    }

    /// The replica of the master on `port`, if it has one (a dead node is nobody's replica).
    fn replica_of(&self, port: u16) -> Option<u16> {
        self.ports().into_iter().find(|&p| {
            let Ok(mut con) = connect(p) else { return false };
            role(&mut con) == "slave" && info_field(&mut con, "replication", "master_port") == port.to_string()
        })
    }
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().expect("kill");
    assert!(status.success(), "kill -{sig} {pid}");
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

#[test]
fn cluster_routes_reshards_and_fails_over_without_losing_acknowledged_admissions() {
    let mut cluster = Cluster::start();
    routing(&cluster);
    resharding(&cluster);
    failover(&mut cluster, ReplicaAtTheKill::Healthy);
    failover(&mut cluster, ReplicaAtTheKill::Paused);
}

/// The same calls with a stale slot map: MOVED corrects it and every key lands on its slot's master.
fn routing(cluster: &Cluster) {
    let ports = cluster.ports();
    let masters = cluster.masters();
    assert_eq!(masters.len(), 3, "three masters");
    let t = now_ms() + 60_000;
    let mut router = Router::stale(masters[0], ports.clone());
    let calls = [
        ("RL.TOKENBUCKET", "10 1 1000", 10),
        ("RL.FIXED", "10 1000000", 10),
        ("RL.SLIDING", "10 1000000", 10),
        ("RL.GCRA", "9 1 1000", 10),
    ];
    let mut keys = Vec::new();
    for i in 0..40 {
        let (command, params, limit) = calls[i % calls.len()];
        let key = format!("user:{i}:{}", command.to_lowercase());
        for n in 1..=3 {
            let reply = router.rl(&format!("{command} {key} {params} AT {t}"));
            assert_eq!(reply, [1, limit, limit - n, -1, reply[4]], "{command} {key} call {n}");
        }
        keys.push(key);
    }
    // CL.THROTTLE has no AT: a fresh key, one call.
    let reply = router.rl("CL.THROTTLE user:cl 9 1 1 1");
    assert_eq!(reply[..3], [0, 10, 9]);
    assert!(router.moved > 0, "a stale map and no MOVED?");
    // Each key is where its slot says, and nowhere else among the masters.
    let mut con = cluster.node(masters[0]).conn();
    for key in &keys {
        let slot: i64 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query(&mut con).expect("KEYSLOT");
        assert_eq!(slot as usize, key_slot(key.as_bytes()), "{key}: slot");
        let owner = router.owner[slot as usize];
        for &master in &masters {
            let mut con = cluster.node(master).conn();
            let count: i64 = redis::cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot).query(&mut con).expect("COUNT");
            assert_eq!(count >= 1, master == owner, "slot {slot} of {key} on {master} (owner {owner})");
        }
        // The key spec is what cluster clients route by.
        let got: Vec<String> = redis::cmd("COMMAND")
            .arg("GETKEYS")
            .arg("RL.FIXED")
            .arg(key)
            .arg("10")
            .arg("1000")
            .query(&mut con)
            .expect("COMMAND GETKEYS");
        assert_eq!(got, std::slice::from_ref(key));
    }
    // A node that does not own the slot answers MOVED with the slot and its owner.
    let key = &keys[0];
    let slot = key_slot(key.as_bytes());
    let owner = router.owner[slot];
    let other = *masters.iter().find(|&&m| m != owner).expect("another master");
    let err = query(&mut cluster.node(other).conn(), &words(&format!("RL.TOKENBUCKET {key} 10 1 1000 AT {t}")))
        .expect_err("MOVED");
    assert_eq!(err.kind(), redis::ErrorKind::Moved, "{err:?}");
    assert_eq!(err.redirect_node(), Some((format!("127.0.0.1:{owner}").as_str(), slot as u16)));
    // Hash tags: one slot, one node, one transaction.
    let tagged = ["{tenant:7}:tb", "{tenant:7}:fixed", "{tenant:7}:sliding", "{tenant:7}:gcra"];
    let slot = key_slot(b"tenant:7");
    assert!(tagged.iter().all(|k| key_slot(k.as_bytes()) == slot));
    router.rl(&format!("RL.FIXED {} 5 1000000 AT {t}", tagged[1])); // learn the owner
    let mut tcon = connect(router.owner[slot]).expect("owner");
    let replies: Vec<Vec<i64>> = redis::pipe()
        .atomic()
        .cmd("RL.TOKENBUCKET")
        .arg(tagged[0])
        .arg("5 1 1000".split(' ').collect::<Vec<_>>())
        .arg("AT")
        .arg(t)
        .cmd("RL.FIXED")
        .arg(tagged[1])
        .arg("5 1000000".split(' ').collect::<Vec<_>>())
        .arg("AT")
        .arg(t)
        .cmd("RL.SLIDING")
        .arg(tagged[2])
        .arg("5 1000000".split(' ').collect::<Vec<_>>())
        .arg("AT")
        .arg(t)
        .cmd("RL.GCRA")
        .arg(tagged[3])
        .arg("4 1 1000".split(' ').collect::<Vec<_>>())
        .arg("AT")
        .arg(t)
        .query(&mut tcon)
        .expect("MULTI over one hash tag");
    assert_eq!(replies.iter().map(|r| r[2]).collect::<Vec<_>>(), [4, 3, 4, 4]);
    // Two slots of one node in one transaction: refused.
    let fixed: Vec<&String> = keys.iter().filter(|k| k.ends_with(":rl.fixed")).collect();
    let (a, b) = fixed
        .iter()
        .flat_map(|a| fixed.iter().map(move |b| (*a, *b)))
        .find(|(a, b)| {
            let (sa, sb) = (key_slot(a.as_bytes()), key_slot(b.as_bytes()));
            sa != sb && router.owner[sa] == router.owner[sb]
        })
        .expect("two keys of one master in two slots");
    let mut acon = connect(router.owner[key_slot(a.as_bytes())]).expect("owner");
    let _: () = redis::cmd("MULTI").query(&mut acon).expect("MULTI");
    for key in [a, b] {
        let queued =
            call(&mut acon, &[b"RL.FIXED", key.as_bytes(), b"10", b"1000000", b"AT", t.to_string().as_bytes()]);
        assert!(queued.is_ok(), "{key} in MULTI: {queued:?}");
    }
    let err = redis::cmd("EXEC").query::<Value>(&mut acon).map(|v| format!("{v:?}")).unwrap_or_else(|e| error_text(&e));
    assert!(err.contains("CROSSSLOT"), "EXEC over two slots: {err}");
    let mut probe = Router::stale(ports[0], ports.clone());
    assert_eq!(probe.rl(&format!("RL.FIXED {a} 10 1000000 COST 0 AT {t}"))[2], 7, "{a} changed by a refused EXEC");
    println!("routing: {} keys over 3 masters, {} MOVED followed", keys.len() + tagged.len() + 1, router.moved);
}

/// The RL.INFO fields that do not move with the clock (ttl_ms does), as text.
fn info_fixed_fields(con: &mut Connection, key: &str) -> Vec<String> {
    let fields: Vec<Value> = redis::cmd("RL.INFO").arg(key).query(con).unwrap_or_else(|e| panic!("RL.INFO {key}: {e}"));
    let text: Vec<String> = fields.iter().map(|v| format!("{v:?}")).collect();
    text.chunks(2).filter(|pair| !pair[0].contains("ttl_ms")).flat_map(|pair| pair.to_vec()).collect()
}

/// A slot with a limiter of every algorithm moves to another master, ASK followed half-way.
fn resharding(cluster: &Cluster) {
    let ports = cluster.ports();
    let t = now_ms() + 60_000;
    let mut router = Router::stale(ports[0], ports.clone());
    let lines = [
        ("{mig}:tb", "RL.TOKENBUCKET {mig}:tb 100 1 1000"),
        ("{mig}:fixed", "RL.FIXED {mig}:fixed 100 1000000"),
        ("{mig}:sliding", "RL.SLIDING {mig}:sliding 100 1000000"),
        ("{mig}:gcra", "RL.GCRA {mig}:gcra 99 1 1000"),
    ];
    for (_, line) in lines {
        for cost in [1, 5, 7] {
            router.rl(&format!("{line} COST {cost} AT {}", t + cost));
        }
    }
    let slot = key_slot(b"mig");
    let source = router.owner[slot];
    let target = *cluster.masters().iter().find(|&&m| m != source).expect("another master");
    let mut src = cluster.node(source).conn();
    let mut dst = cluster.node(target).conn();
    let keys: Vec<&str> = lines.iter().map(|(k, _)| *k).collect();
    let on_source: Vec<(String, i64, Vec<String>)> = keys
        .iter()
        .map(|k| {
            let at: i64 = redis::cmd("PEXPIRETIME").arg(k).query(&mut src).expect("PEXPIRETIME");
            (digest_value(&mut src, k.as_bytes()), at, info_fixed_fields(&mut src, k))
        })
        .collect();
    let dry: Vec<[i64; 5]> = lines.iter().map(|(_, l)| router.rl(&format!("{l} DRYRUN AT {}", t + 10))).collect();
    let (src_id, dst_id) = (my_id(&mut src), my_id(&mut dst));
    let setslot = |con: &mut Connection, state: &str, id: &str| {
        let _: () = redis::cmd("CLUSTER").arg("SETSLOT").arg(slot).arg(state).arg(id).query(con).expect("SETSLOT");
    };
    setslot(&mut dst, "IMPORTING", &src_id);
    setslot(&mut src, "MIGRATING", &dst_id);
    let in_slot: Vec<String> =
        redis::cmd("CLUSTER").arg("GETKEYSINSLOT").arg(slot).arg(100).query(&mut src).expect("GETKEYSINSLOT");
    assert_eq!(in_slot.len(), keys.len(), "{in_slot:?}");
    let migrate = |con: &mut Connection, keys: &[&str]| -> Duration {
        let started = Instant::now();
        let reply: String = redis::cmd("MIGRATE")
            .arg("127.0.0.1")
            .arg(target)
            .arg("")
            .arg(0)
            .arg(10_000)
            .arg("KEYS")
            .arg(keys)
            .query(con)
            .expect("MIGRATE");
        assert_eq!(reply, "OK");
        started.elapsed()
    };
    // Half the keys first: a call on a moved key is redirected with ASK, the others stay served.
    let mut took = migrate(&mut src, &keys[..2]);
    for (i, (_, line)) in lines.iter().enumerate() {
        let asked = router.asked;
        assert_eq!(router.rl(&format!("{line} DRYRUN AT {}", t + 10)), dry[i], "{line} while migrating");
        assert_eq!(router.asked > asked, i < 2, "{line}: ASK only for a key already moved");
    }
    took += migrate(&mut src, &keys[2..]);
    for port in cluster.masters() {
        setslot(&mut cluster.node(port).conn(), "NODE", &dst_id);
    }
    for (key, (digest, expiry, info)) in keys.iter().zip(&on_source) {
        assert_eq!(&digest_value(&mut dst, key.as_bytes()), digest, "{key}: state after MIGRATE");
        assert_eq!(&info_fixed_fields(&mut dst, key), info, "{key}: RL.INFO after MIGRATE");
        let at: i64 = redis::cmd("PEXPIRETIME").arg(key).query(&mut dst).expect("PEXPIRETIME");
        // MIGRATE sends the time to live, not the expiry: the target adds it to its own clock
        // when it restores, so the expiry can only move later, by at most the MIGRATE call.
        assert!(
            at >= *expiry && at <= *expiry + took.as_millis() as i64 + 1,
            "{key}: expiry {at} after MIGRATE, {expiry} before ({took:?} migrating)"
        );
        println!("reshard: {key} expiry moved by {} ms", at - expiry);
    }
    let left: i64 = redis::cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot).query(&mut src).expect("COUNT");
    assert_eq!(left, 0, "keys of slot {slot} left on the source");
    // The next calls go to the new owner (MOVED from the old one) and continue from the same state;
    // each write sets the absolute expiry again from the call's own time.
    let moved = router.moved;
    for (i, (key, line)) in lines.iter().enumerate() {
        let reply = router.rl(&format!("{line} AT {}", t + 10));
        assert_eq!(reply[2], dry[i][2], "{line} after the move");
        let at: i64 = redis::cmd("PEXPIRETIME").arg(key).query(&mut dst).expect("PEXPIRETIME");
        assert_eq!(at, t + 10 + reply[4], "{key}: expiry set by the call after the move");
    }
    assert!(router.moved > moved, "no MOVED after the slot changed owner");
    assert_eq!(Cluster::owner_seen_by(ports[0], slot), Some(target));
    println!("reshard: slot {slot} with {} limiters moved {source} -> {target} in {took:?}", keys.len());
}

/// Traffic on one master's slot, `kill -9` of that master, its replica promoted.
/// Which replica state a failover meets.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ReplicaAtTheKill {
    /// Linked and keeping up.
    Healthy,
    /// Paused (SIGSTOP) for 1.5 s under the traffic and resumed right after the kill: a replica
    /// lagging behind, as a busy or distant one does.
    Paused,
}

fn failover(cluster: &mut Cluster, at_the_kill: ReplicaAtTheKill) {
    let ports = cluster.ports();
    let mut router = Router::stale(ports[0], ports.clone());
    router.refresh();
    // A hash tag on a master that still has a replica (an earlier failover leaves one without).
    let tag = (0..1000)
        .map(|i| format!("fo{i}"))
        .find(|tag| cluster.replica_of(router.owner[key_slot(tag.as_bytes())]).is_some())
        .expect("a master with a replica");
    let slot = key_slot(tag.as_bytes());
    let master = router.owner[slot];
    let replica = cluster.replica_of(master).expect("its replica");
    let (wait_key, nowait_key) = (format!("{{{tag}}}:wait"), format!("{{{tag}}}:nowait"));
    // A window of 10^12 ms (about 31 years) and a limit nobody reaches: every call is admitted,
    // and the count is the number of admissions the master applied.
    let (limit, window) = (1_000_000_000_000i64, 1_000_000_000_000i64);
    let fixed = |key: &str| format!("RL.FIXED {key} {limit} {window}");
    // One client calls and then `WAIT 1 1000` on the same connection, one after the other.
    let with_wait = {
        let call = words(&fixed(&wait_key));
        std::thread::spawn(move || {
            let (mut admitted, mut acknowledged) = (0i64, 0i64);
            let Ok(mut con) = connect(master) else { return (admitted, acknowledged) };
            // Until the kill breaks the connection.
            while let Ok(reply) = query(&mut con, &call) {
                let reply: Vec<i64> = redis::from_redis_value(&reply).expect("5 integers");
                assert_eq!(reply[0], 1);
                admitted += 1;
                match redis::cmd("WAIT").arg(1).arg(1000).query::<i64>(&mut con) {
                    Ok(n) if n >= 1 => acknowledged += 1,
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            (admitted, acknowledged)
        })
    };
    // Another one pipelines batches of 200 calls and never waits.
    let without_wait = {
        let call = words(&fixed(&nowait_key));
        std::thread::spawn(move || {
            let mut admitted = 0i64;
            let Ok(mut con) = connect(master) else { return admitted };
            let mut pipe = redis::pipe();
            for _ in 0..200 {
                pipe.cmd(&call[0]).arg(&call[1..]);
            }
            while let Ok(replies) = pipe.query::<Vec<Vec<i64>>>(&mut con) {
                admitted += replies.iter().filter(|r| r[0] == 1).count() as i64;
            }
            admitted
        })
    };
    // Let the traffic run, then kill the master in the middle of it.
    let mut mcon = cluster.node(master).conn();
    wait_for("traffic on the master", Duration::from_secs(30), || {
        redis::cmd("EXISTS").arg(&wait_key).arg(&nowait_key).query::<i64>(&mut mcon).unwrap_or(0) == 2
    });
    let replica_pid = cluster.node(replica).pid();
    if at_the_kill == ReplicaAtTheKill::Paused {
        std::thread::sleep(Duration::from_millis(500));
        signal(replica_pid, "STOP");
        std::thread::sleep(Duration::from_millis(1500));
    } else {
        std::thread::sleep(Duration::from_millis(1000));
    }
    let killed = Instant::now();
    let victim = cluster.nodes.iter_mut().find(|n| n.port == master).expect("master node");
    victim.kill9();
    if at_the_kill == ReplicaAtTheKill::Paused {
        signal(replica_pid, "CONT");
    }
    let (admitted_wait, acknowledged) = with_wait.join().expect("WAIT client");
    let admitted_nowait = without_wait.join().expect("pipelining client");
    // The replica becomes a master, and the other nodes route the slot to it.
    let mut rcon = cluster.node(replica).conn();
    wait_for("the replica promoted", Duration::from_secs(60), || role(&mut rcon) == "master");
    let promoted = killed.elapsed();
    let survivor =
        *ports.iter().find(|&&p| p != master && p != replica && connect(p).is_ok()).expect("another live node");
    wait_for("the cluster routing the slot to the promoted replica", Duration::from_secs(60), || {
        Cluster::owner_seen_by(survivor, slot) == Some(replica)
    });
    let routed = killed.elapsed();
    let count = |con: &mut Connection, key: &str| -> i64 {
        let reply: Vec<i64> = redis::cmd("RL.FIXED")
            .arg(key)
            .arg(limit)
            .arg(window)
            .arg("COST")
            .arg(0)
            .query(con)
            .unwrap_or_else(|e| panic!("{key} on the promoted replica: {e}"));
        limit - reply[2]
    };
    // The replica holds a prefix of the master's writes, and each acknowledged WAIT covers every
    // earlier call: no acknowledged admission is lost exactly when the count is at least theirs.
    let kept_wait = count(&mut rcon, &wait_key);
    let kept_nowait = count(&mut rcon, &nowait_key);
    println!(
        "failover ({at_the_kill:?} replica): master {master} killed; replica {replica} promoted after {promoted:?}, slot routed to it after \
         {routed:?} (cluster-node-timeout {NODE_TIMEOUT_MS} ms)"
    );
    println!(
        "failover ({at_the_kill:?} replica): with WAIT: {admitted_wait} admitted, {acknowledged} acknowledged, {kept_wait} on the new master \
         ({} acknowledged lost, {} unacknowledged lost)",
        (acknowledged - kept_wait).max(0),
        admitted_wait - kept_wait
    );
    println!(
        "failover ({at_the_kill:?} replica): without WAIT: {admitted_nowait} admitted, {kept_nowait} on the new master ({} lost)",
        admitted_nowait - kept_nowait
    );
    assert!(acknowledged > 0, "no acknowledged admission before the kill");
    assert!(kept_wait >= acknowledged, "lost acknowledged admissions: {kept_wait} kept, {acknowledged} acknowledged");
    // The replica only applies what the master admitted; a reply lost with the connection may
    // still have been admitted, at most one call (or one batch) per client.
    assert!(kept_wait <= admitted_wait + 1, "{kept_wait} kept, {admitted_wait} admitted");
    assert!(kept_nowait <= admitted_nowait + 200, "{kept_nowait} kept, {admitted_nowait} admitted");
    // Clients carry on against the new master: the router finds it.
    let reply = router.rl(&fixed(&wait_key));
    assert_eq!(reply[..3], [1, limit, limit - kept_wait - 1]);
    assert_eq!(router.owner[slot], replica);
}
