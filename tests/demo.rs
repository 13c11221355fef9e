//! The demo (`make demo`, examples/demo): run against a real server, the picture is well formed and drawn from the
//! server's replies only, the demo's counts equal the server's `INFO rl` counters, and docs/demo.svg is what the
//! demo draws now.
#![allow(dead_code)]
mod common;
#[path = "../examples/demo/replay.rs"]
mod replay;
#[path = "../examples/demo/svg.rs"]
mod svg;

use common::*;
use replay::{Run, ALGORITHMS, SCENARIOS};

fn replay_on(server: &Server) -> Run {
    let mut con = server.conn();
    let base = replay::base_after_server_clock(&mut con).expect("base");
    replay::replay(&mut con, base).expect("replay")
}

#[test]
fn the_demo_counts_what_the_server_counts() {
    let server = Server::start(&[]);
    let mut con = server.conn();
    let (before, _) = replay::info_rl(&mut con).expect("INFO rl");
    let run = replay_on(&server);
    let (after, _) = replay::info_rl(&mut con).expect("INFO rl");

    assert_eq!(run.traces.len(), SCENARIOS.len());
    for (index, algorithm) in ALGORITHMS.iter().enumerate() {
        let (mut admitted, mut rejected) = (0, 0);
        for row in &run.traces {
            assert_eq!(row.len(), ALGORITHMS.len());
            for call in &row[index].calls {
                assert!(call.reply[0] == 0 || call.reply[0] == 1, "{}: {:?}", algorithm.command, call);
                // Every algorithm runs at the same rate: a limit of 10.
                assert_eq!(call.reply[1], 10, "{}: {:?}", algorithm.command, call);
                if call.reply[0] == 1 {
                    admitted += 1;
                } else {
                    rejected += 1;
                }
            }
        }
        assert!(admitted > 0 && rejected > 0, "{}: every algorithm admits and rejects", algorithm.command);
        let field = algorithm.info_field;
        let delta = |name: &str| after[field][name] - before.get(field).map_or(0, |b| b[name]);
        assert_eq!(
            (delta("admitted"), delta("rejected"), delta("peeks"), delta("errors")),
            (admitted, rejected, 0, 0),
            "{field}"
        );
    }
    replay::check_info(&run, &before, &after).expect("the demo's own check agrees");
}

#[test]
fn the_replies_do_not_depend_on_the_clock() {
    // Two runs at different bases (one minute apart, fresh keys) get exactly the same replies: the picture holds
    // no wall-clock time.
    let server = Server::start(&[]);
    let mut con = server.conn();
    let base = replay::base_after_server_clock(&mut con).expect("base");
    let first = replay::replay(&mut con, base).expect("replay");
    let second = replay::replay(&mut con, base + 60_000).expect("replay");
    assert_eq!(first, second);
}

#[test]
fn every_bar_is_a_sum_of_replies() {
    let server = Server::start(&[]);
    let run = replay_on(&server);
    let (mut offered_bars, mut admitted_bars) = (0, 0);
    for (scenario, row) in SCENARIOS.iter().zip(&run.traces) {
        for trace in row {
            let (from, to) = scenario.view_ms;
            let mut expected = vec![svg::Bin::default(); ((to - from) / scenario.bin_ms) as usize];
            for call in &trace.calls {
                assert!(from <= call.at_ms && call.at_ms < to, "{}: a call outside the picture", scenario.slug);
                let bin = &mut expected[((call.at_ms - from) / scenario.bin_ms) as usize];
                bin.offered += call.cost;
                if call.reply[0] == 1 {
                    bin.admitted += call.cost;
                }
            }
            assert_eq!(svg::series(scenario, trace), expected, "{} {}", scenario.slug, trace.algorithm);
            offered_bars += expected.iter().filter(|b| b.offered > 0).count();
            admitted_bars += expected.iter().filter(|b| b.admitted > 0).count();
        }
    }
    let picture = svg::render(&run);
    assert_eq!(picture.matches("class=\"offered\"").count(), offered_bars);
    assert_eq!(picture.matches("class=\"admitted\"").count(), admitted_bars);

    // Change the replies and the picture changes with them: with every reply a rejection, no bar is admitted.
    let mut rejected = run.clone();
    rejected.traces.iter_mut().flatten().flat_map(|t| &mut t.calls).for_each(|c| c.reply[0] = 0);
    let picture = svg::render(&rejected);
    assert_eq!(picture.matches("class=\"admitted\"").count(), 0);
    assert_eq!(picture.matches("class=\"offered\"").count(), offered_bars);
    // One reply flipped changes the picture.
    let mut flipped = run.clone();
    let call = &mut flipped.traces[0][0].calls[0];
    call.reply[0] = 1 - call.reply[0];
    assert_ne!(svg::render(&flipped), svg::render(&run));
}

#[test]
fn the_picture_is_well_formed_svg() {
    let server = Server::start(&[]);
    let picture = svg::render(&replay_on(&server));
    assert!(picture.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"900\""), "{}", &picture[..80]);
    assert!(!picture.contains("NaN") && !picture.contains("inf"), "a coordinate is not a number");
    check_well_formed(&picture);
    for text in SCENARIOS.iter().map(|s| s.title).chain(ALGORITHMS.iter().map(|a| a.label)) {
        let escaped = text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
        assert!(picture.contains(&escaped), "{text} missing from the picture");
    }
}

/// A small XML well-formedness check: tags nest and close, attribute values are quoted, text holds no raw `<`
/// and every `&` starts an entity.
fn check_well_formed(xml: &str) {
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = xml;
    let mut roots = 0;
    while let Some(open) = rest.find('<') {
        check_text(&rest[..open]);
        let close = rest[open..].find('>').expect("an unclosed tag") + open;
        let tag = &rest[open + 1..close];
        rest = &rest[close + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop(), Some(name.trim()), "mismatched </{name}>");
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let name = tag.split_whitespace().next().expect("a tag name");
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric()), "bad tag name {name:?}");
        check_attributes(&tag[name.len()..]);
        if stack.is_empty() {
            roots += 1;
        }
        if !self_closing {
            stack.push(name);
        }
    }
    check_text(rest);
    assert!(stack.is_empty(), "unclosed elements {stack:?}");
    assert_eq!(roots, 1, "one root element");
}

fn check_attributes(mut attrs: &str) {
    loop {
        attrs = attrs.trim_start();
        if attrs.is_empty() {
            return;
        }
        let (name, after) = attrs.split_once("=\"").unwrap_or_else(|| panic!("unquoted attribute in {attrs:?}"));
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':'), "bad attribute {name:?}");
        let (value, after) = after.split_once('"').expect("an unterminated attribute value");
        check_text(value);
        attrs = after;
    }
}

fn check_text(text: &str) {
    assert!(!text.contains('<') && !text.contains('>'), "raw < or > in {text:?}");
    for (i, _) in text.match_indices('&') {
        let entity = &text[i..];
        assert!(["&amp;", "&lt;", "&gt;", "&quot;"].iter().any(|e| entity.starts_with(e)), "a bare & in {text:?}");
    }
}

#[test]
fn the_committed_picture_is_what_the_demo_draws_now() {
    // The whole demo as `make demo` runs it: its own server, its INFO rl check, its summary.
    let report = replay::run(&module_path()).expect("the demo runs and its counts match INFO rl");
    let summary = replay::summary(&report);
    for algorithm in ALGORITHMS {
        assert!(summary.contains(&format!("  {}:admitted=", algorithm.info_field)), "{summary}");
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/demo.svg");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == svg::render(&report.run),
        "docs/demo.svg is not what the demo draws now: run `make demo` and commit docs/demo.svg"
    );
}
