mod common;
use common::*;

#[test]
fn module_loads_and_answers() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let t = now_ms();
    assert_eq!(rl(&mut con, &format!("RL.TOKENBUCKET k 10 1 1000 AT {t}")), [1, 10, 9, -1, 1000]);
}
