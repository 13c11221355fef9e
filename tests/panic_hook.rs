//! A panic inside a command aborts redis-server (Rust cannot unwind into C), so the panic hook
//! must have written the reason to the Redis log first.
mod common;
use common::*;
use std::time::Duration;

#[test]
fn a_panic_is_logged_before_redis_aborts() {
    let mut server = Server::start_with_module_args(&["test-panic", "yes"], &[]);
    let mut con = server.conn();
    assert!(redis::cmd("RL.TESTPANIC").query::<redis::Value>(&mut con).is_err());
    assert!(server.exits_within(Duration::from_secs(10)), "redis-server survived a panic?");
    let log = server.log();
    assert!(log.contains("rl panicked") && log.contains("RL.TESTPANIC was called"), "{log}");
}

#[test]
fn the_panic_command_exists_only_when_asked_for() {
    let server = Server::start(&[]);
    let err = rl_err(&mut server.conn(), "RL.TESTPANIC");
    assert!(err.contains("unknown command"), "{err}");
}
