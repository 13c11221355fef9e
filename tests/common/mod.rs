//! Test harness: real redis-server processes with the module loaded, on free loopback ports,
//! each in its own temporary directory, killed on drop.
#![allow(dead_code)]

pub mod resp;
pub mod traffic;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use redis::{Connection, Value};

/// The server binary the tests run: `RL_SERVER` (a path or a name on PATH), default `redis-server`.
/// Valkey's `valkey-server` works the same way.
pub fn server_binary() -> PathBuf {
    std::env::var_os("RL_SERVER").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("redis-server"))
}

/// The command-line client that goes with it: `RL_CLI`, else `<prefix>-cli` next to a server named
/// `<prefix>-server` given as a path (e.g. `valkey-cli` beside `valkey-server`), else `redis-cli`.
pub fn cli_binary() -> PathBuf {
    if let Some(cli) = std::env::var_os("RL_CLI") {
        return PathBuf::from(cli);
    }
    let server = server_binary();
    let sibling = server
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix("-server"))
        .map(|prefix| server.with_file_name(format!("{prefix}-cli")));
    match sibling {
        Some(cli) if server.components().count() > 1 && cli.exists() => cli,
        _ => PathBuf::from("redis-cli"),
    }
}

/// Which server the suite runs against, from `INFO server`: Valkey reports `server_name:valkey`
/// and `valkey_version` (its `redis_version` is a fixed compatibility number).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerKind {
    pub name: String,
    pub version: (u32, u32, u32),
    /// `mem_allocator` (jemalloc-x.y.z or libc): MEMORY USAGE depends on it.
    pub allocator: String,
}

impl ServerKind {
    pub fn is_valkey(&self) -> bool {
        self.name == "valkey"
    }

    pub fn is_redis(&self) -> bool {
        self.name == "redis"
    }

    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.version.0, self.version.1) >= (major, minor)
    }

    pub fn jemalloc(&self) -> bool {
        self.allocator.starts_with("jemalloc")
    }

    fn from_info(info: &str) -> ServerKind {
        let field = |name: &str| {
            info.lines().find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':'))).map(|v| v.trim())
        };
        let name = field("server_name").unwrap_or("redis").to_string();
        let version = field(&format!("{name}_version")).or_else(|| field("redis_version")).unwrap_or("0.0.0");
        let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let mut next = || parts.next().unwrap_or(0);
        let version = (next(), next(), next());
        ServerKind { name, version, allocator: field("mem_allocator").unwrap_or("").to_string() }
    }
}

impl std::fmt::Display for ServerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (a, b, c) = self.version;
        write!(f, "{} {a}.{b}.{c} ({})", self.name, self.allocator)
    }
}

pub fn module_path() -> PathBuf {
    std::env::var_os("RL_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/librl.so"))
}

pub struct Server {
    pub port: u16,
    pub dir: PathBuf,
    /// What `INFO server` says this server is.
    pub kind: ServerKind,
    /// The cluster bus port of a cluster node.
    pub bus_port: Option<u16>,
    module_args: Vec<String>,
    extra: Vec<String>,
    child: Option<Child>,
}

/// The latest time the module accepts (10^15 ms).
pub const MAX_TIME_MS: i64 = 1_000_000_000_000_000;

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

impl Server {
    /// A fresh server with the module, DEBUG enabled, no persistence unless `extra` asks for it.
    pub fn start(extra: &[&str]) -> Server {
        Server::start_with_module_args(&[], extra)
    }

    /// Same, passing `module_args` to the module (`--loadmodule path args...`).
    pub fn start_with_module_args(module_args: &[&str], extra: &[&str]) -> Server {
        Server::start_inner(module_args, extra, false)
    }

    /// A node of a Redis Cluster (`cluster-enabled yes`, its own `nodes.conf` in its directory),
    /// its cluster bus on a free port of its own (`cluster-port`), not yet joined to any cluster.
    pub fn start_cluster_node(extra: &[&str]) -> Server {
        let mut args = vec!["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"];
        args.extend_from_slice(extra);
        Server::start_inner(&[], &args, true)
    }

    fn start_inner(module_args: &[&str], extra: &[&str], cluster: bool) -> Server {
        let dir = std::env::temp_dir().join(format!(
            "rl-test-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let owned = |args: &[&str]| args.iter().map(|s| s.to_string()).collect::<Vec<String>>();
        // Tests pin far times with AT: raise the bound, unless a test sets it itself.
        let mut module_args = owned(module_args);
        if !module_args.iter().any(|a| a == "max-at-ahead-ms") {
            module_args.extend(["max-at-ahead-ms".to_string(), MAX_TIME_MS.to_string()]);
        }
        let kind = ServerKind { name: String::new(), version: (0, 0, 0), allocator: String::new() };
        let mut server = Server { port: 0, bus_port: None, dir, kind, module_args, extra: owned(extra), child: None };
        // A port found free can be taken before redis binds it: try another one then.
        for _attempt in 0..20 {
            if cluster {
                server.bus_port = Some(free_port());
            }
            if server.launch(free_port()) {
                return server;
            }
        }
        panic!("{} did not start; see {}", server_binary().display(), server.dir.join("redis.log").display());
    }

    /// Starts redis-server on `port` and waits until it answers PING (after loading its data).
    fn launch(&mut self, port: u16) -> bool {
        assert!(module_path().exists(), "module not built: {} (run make test)", module_path().display());
        self.port = port;
        let mut child = Command::new(server_binary())
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--dir", self.dir.to_str().expect("utf-8 dir")])
            .args(["--save", "", "--appendonly", "no", "--enable-debug-command", "yes"])
            .args(["--logfile", "redis.log"])
            .arg("--loadmodule")
            .arg(module_path())
            .args(&self.module_args)
            .args(&self.extra)
            .args(self.bus_port.iter().flat_map(|p| ["--cluster-port".to_string(), p.to_string()]))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} (set RL_SERVER to a server binary): {e}", server_binary().display()));
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            // The server answering must be this child: another test's server may have taken the
            // port first (this child then fails to bind and exits).
            if let Ok(mut con) = self.try_connect() {
                if redis::cmd("PING").query::<String>(&mut con).is_ok()
                    && info_field(&mut con, "server", "process_id") == child.id().to_string()
                {
                    if let Ok(info) = redis::cmd("INFO").arg("server").arg("memory").query::<String>(&mut con) {
                        self.kind = ServerKind::from_info(&info);
                    }
                    self.child = Some(child);
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    fn try_connect(&self) -> redis::RedisResult<Connection> {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))?.get_connection()
    }

    pub fn conn(&self) -> Connection {
        self.try_connect().expect("connect")
    }

    /// Stops the server with `SHUTDOWN <mode>` ("NOSAVE", "SAVE") and starts it again on the same
    /// port and directory with the same options, so it reloads whatever it persisted.
    pub fn restart(&mut self, mode: &str) {
        let _ = redis::cmd("SHUTDOWN").arg(mode).query::<Value>(&mut self.conn());
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        assert!(self.launch(self.port), "redis-server did not restart; see {}", self.dir.join("redis.log").display());
    }

    /// Whether the server process exits within `timeout` (after a crash, say).
    pub fn exits_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// `kill -9`: the process dies at once, nothing flushed or handed over; waits until it is gone.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Wall clock in ms; tests pin time with AT near it so keys do not expire under them.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64
}

/// Runs a command given as words, returning the raw reply (errors as Err).
pub fn call(con: &mut Connection, args: &[&[u8]]) -> redis::RedisResult<Value> {
    let mut cmd = redis::cmd(std::str::from_utf8(args[0]).expect("ascii command"));
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query(con)
}

/// Runs an RL command from a space-separated line and returns its 5 integers.
pub fn rl(con: &mut Connection, line: &str) -> [i64; 5] {
    let words: Vec<&str> = line.split_whitespace().collect();
    let reply: Vec<i64> = redis::cmd(words[0]).arg(&words[1..]).query(con).unwrap_or_else(|e| panic!("{line}: {e}"));
    reply.try_into().unwrap_or_else(|r| panic!("{line}: expected 5 integers, got {r:?}"))
}

/// Runs a line expected to fail and returns the error text (code included).
pub fn rl_err(con: &mut Connection, line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    match redis::cmd(words[0]).arg(&words[1..]).query::<Value>(con) {
        Ok(v) => panic!("{line}: expected an error, got {v:?}"),
        Err(e) => error_text(&e),
    }
}

/// "CODE detail" as the server sent it.
pub fn error_text(e: &redis::RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_string(),
        _ => e.to_string(),
    }
}

pub fn digest(con: &mut Connection) -> String {
    redis::cmd("DEBUG").arg("DIGEST").query(con).expect("DEBUG DIGEST")
}

pub fn digest_value(con: &mut Connection, key: &[u8]) -> String {
    let v: Vec<String> = redis::cmd("DEBUG").arg("DIGEST-VALUE").arg(key).query(con).expect("DIGEST-VALUE");
    v.into_iter().next().unwrap_or_default()
}

/// Every key with its absolute expiry (ms, -1 for none), sorted: what a restart must preserve.
pub fn expiries(con: &mut Connection) -> Vec<(Vec<u8>, i64)> {
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(con).expect("KEYS");
    let mut out: Vec<(Vec<u8>, i64)> = keys
        .into_iter()
        .map(|k| {
            let at: i64 = redis::cmd("PEXPIRETIME").arg(&k).query(con).expect("PEXPIRETIME");
            (k, at)
        })
        .collect();
    out.sort();
    out
}

/// Every key with its value's digest (DEBUG DIGEST-VALUE) and absolute expiry, sorted by key.
pub type KeyStates = Vec<(Vec<u8>, String, i64)>;

pub fn key_states(con: &mut Connection) -> KeyStates {
    expiries(con)
        .into_iter()
        .filter(|(_, at)| *at != -2) // expired between KEYS and PEXPIRETIME
        .map(|(key, at)| (key.clone(), digest_value(con, &key), at))
        .collect()
}

/// The same keys, values and absolute expiries, leaving out keys whose expiry has passed by now:
/// a fixed window ends on a clock boundary, which can fall between two snapshots, and one side
/// may have dropped such a key while the other has not yet. A recomputed expiry still shows: the
/// key is live on at least one side with a different expiry.
pub fn assert_same_live_keys(left: &KeyStates, right: &KeyStates) {
    let now = now_ms();
    let live = |states: &KeyStates| -> KeyStates {
        states.iter().filter(|(_, _, at)| *at == -1 || *at > now).cloned().collect()
    };
    assert_eq!(live(left), live(right));
}

/// A string key as redis-cell leaves it: its TAT in ns since the epoch (here `tat_ms` in ns), with
/// a TTL. Returns the value stored.
pub fn set_redis_cell_key(con: &mut Connection, key: &str, tat_ms: i64) -> String {
    let tat_ns = (tat_ms as u64 * 1_000_000).to_string();
    let _: () = redis::cmd("SET").arg(key).arg(&tat_ns).arg("PX").arg(600_000).query(con).expect("SET");
    tat_ns
}

pub fn exists(con: &mut Connection, key: impl AsRef<[u8]>) -> bool {
    redis::cmd("EXISTS").arg(key.as_ref()).query::<i64>(con).expect("EXISTS") == 1
}

pub fn pexpiretime(con: &mut Connection, key: impl AsRef<[u8]>) -> i64 {
    redis::cmd("PEXPIRETIME").arg(key.as_ref()).query(con).expect("PEXPIRETIME")
}

/// Everything observable about a key: None when absent, else (DIGEST-VALUE, PEXPIRETIME).
pub fn snapshot(con: &mut Connection, key: impl AsRef<[u8]>) -> Option<(String, i64)> {
    let key = key.as_ref();
    exists(con, key).then(|| (digest_value(con, key), pexpiretime(con, key)))
}

/// Redis's CRC-64 (Jones polynomial, reflected, init 0), the checksum at the end of a DUMP payload.
pub fn crc64(bytes: &[u8]) -> u64 {
    const POLY: u64 = 0x95ac_9329_ac4b_c9b5; // 0xad93d23594c935a9 bit-reversed
    let mut crc = 0u64;
    for &b in bytes {
        crc ^= u64::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ POLY } else { crc >> 1 };
        }
    }
    crc
}

/// A field of INFO (e.g. "master_repl_offset"), as text.
pub fn info_field(con: &mut Connection, section: &str, field: &str) -> String {
    let info: String = redis::cmd("INFO").arg(section).query(con).expect("INFO");
    info.lines()
        .find_map(|line| line.strip_prefix(field).and_then(|rest| rest.strip_prefix(':')))
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Waits (up to 20 s) until no AOF rewrite runs or is scheduled.
pub fn wait_for_rewrite(server: &Server) {
    let mut con = server.conn();
    let deadline = Instant::now() + Duration::from_secs(20);
    while info_field(&mut con, "persistence", "aof_rewrite_in_progress") == "1"
        || info_field(&mut con, "persistence", "aof_rewrite_scheduled") == "1"
    {
        assert!(Instant::now() < deadline, "AOF rewrite did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A replica of `master` (module arguments and server options as `Server::start_with_module_args`
/// takes them), returned once its link to the master is up (waiting up to 20 s).
pub fn start_replica(master: &Server, module_args: &[&str], extra: &[&str]) -> Server {
    let port = master.port.to_string();
    let options: Vec<&str> = ["--replicaof", "127.0.0.1", &port].into_iter().chain(extra.iter().copied()).collect();
    let replica = Server::start_with_module_args(module_args, &options);
    let mut rc = replica.conn();
    let deadline = Instant::now() + Duration::from_secs(20);
    while info_field(&mut rc, "replication", "master_link_status") != "up" {
        assert!(Instant::now() < deadline, "replica never linked");
        std::thread::sleep(Duration::from_millis(50));
    }
    replica
}

/// Waits (up to 20 s) until the replica has applied the master's whole replication stream. WAIT
/// alone does not do it from a connection that wrote nothing: it waits for that connection's own
/// last write, and a fresh connection has none.
pub fn wait_for_replica(master: &mut Connection, replica: &mut Connection) {
    let target: i64 = info_field(master, "replication", "master_repl_offset").parse().expect("master offset");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let applied: i64 = info_field(replica, "replication", "master_repl_offset").parse().unwrap_or(-1);
        if applied >= target {
            return;
        }
        assert!(Instant::now() < deadline, "the replica applied up to offset {applied} of {target}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Seeded RNG for randomized tests; the seed is printed so a failure can be replayed with RL_SEED.
pub fn seeded_rng(test: &str) -> rand::rngs::StdRng {
    use rand::SeedableRng;
    let seed = std::env::var("RL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random::<u64>);
    eprintln!("{test}: RL_SEED={seed}");
    rand::rngs::StdRng::seed_from_u64(seed)
}
