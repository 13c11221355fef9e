//! `make demo`: replays fixed traffic scenarios through every algorithm command of a real redis-server with the
//! module (each call with `AT`, so the run is instant and deterministic), prints what each algorithm admitted and
//! the server's own `INFO rl` counters, and writes the picture (docs/demo.svg).
//!
//! cargo run --example demo -- --module target/release/librl.so [--out docs/demo.svg]

mod replay;
mod svg;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: demo --module path/to/librl.so [--out picture.svg]";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("demo: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let (mut module, mut out) = (None, None);
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--module") => module = args.next().map(PathBuf::from),
            Some("--out") => out = args.next().map(PathBuf::from),
            _ => return Err(format!("unknown argument {arg:?}\n{USAGE}")),
        }
    }
    let module = module.ok_or(USAGE)?;
    let report = replay::run(&module)?;
    let mut summary = replay::summary(&report);
    if let Some(out) = out {
        let picture = svg::render(&report.run);
        std::fs::write(&out, &picture).map_err(|e| format!("{}: {e}", out.display()))?;
        summary += &format!("\nWrote {} ({} bytes).\n", out.display(), picture.len());
    }
    print!("{summary}");
    Ok(())
}
