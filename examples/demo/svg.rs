//! Draws a demo run as one SVG: a panel per scenario, the algorithms side by side, offered and admitted units per
//! 100 ms. Every bar is a sum over kept replies ([`series`]); nothing else in the picture is data. Output is
//! deterministic: fixed layout, fixed number formatting, no time or randomness.

use std::fmt::Write as _;

use crate::replay::{Run, Scenario, Trace, ALGORITHMS, SCENARIOS};

/// Units offered and admitted in one bin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bin {
    pub offered: u64,
    pub admitted: u64,
}

/// The bars of one chart: per `bin_ms` of the scenario's view, the units sent and the units the server admitted
/// (a call's cost counts as admitted iff its reply says allowed).
pub fn series(scenario: &Scenario, trace: &Trace) -> Vec<Bin> {
    let (from, to) = scenario.view_ms;
    let mut bins = vec![Bin::default(); (to - from).div_ceil(scenario.bin_ms) as usize];
    for call in &trace.calls {
        let bin = call.at_ms.checked_sub(from).map(|t| (t / scenario.bin_ms) as usize);
        if let Some(bin) = bin.and_then(|i| bins.get_mut(i)) {
            bin.offered += call.cost;
            if call.allowed() {
                bin.admitted += call.cost;
            }
        }
    }
    bins
}

const WIDTH: f64 = 900.0;
const LEFT: f64 = 58.0;
const RIGHT: f64 = 12.0;
const GAP: f64 = 16.0;
const HEADER: f64 = 146.0;
const PANEL: f64 = 214.0;
/// Top of the bars' area within a panel, and its height.
const CHART_TOP: f64 = 80.0;
const CHART_H: f64 = 100.0;

const OFFERED: &str = "#c9ced6";
const ADMITTED: &str = "#1f6fb4";
const GRID: &str = "#e3e6ea";
const WINDOW: &str = "#8c959f";
const INK: &str = "#1b1f24";
const MUTED: &str = "#57606a";
const FONT: &str = "font-family=\"Helvetica, Arial, sans-serif\"";
const MONO: &str = "font-family=\"Menlo, Consolas, monospace\"";

fn n(x: f64) -> String {
    let s = format!("{x:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn chart_width() -> f64 {
    let count = ALGORITHMS.len() as f64;
    (WIDTH - LEFT - RIGHT - GAP * (count - 1.0)) / count
}

fn chart_left(index: usize) -> f64 {
    LEFT + index as f64 * (chart_width() + GAP)
}

/// The y-axis top and tick step for a largest bar of `max` units: about 4 ticks at 1, 2 or 5 times a power of 10.
fn y_scale(max: u64) -> (u64, u64) {
    let mut step = 1;
    loop {
        for m in [1, 2, 5] {
            if max.max(1) <= 4 * step * m {
                let step = step * m;
                return (max.max(1).div_ceil(step) * step, step);
            }
        }
        step *= 10;
    }
}

fn text(out: &mut String, x: f64, y: f64, attrs: &str, content: &str) {
    let _ = writeln!(out, "<text x=\"{}\" y=\"{}\" {attrs}>{}</text>", n(x), n(y), esc(content));
}

fn rect(out: &mut String, x: f64, y: f64, w: f64, h: f64, fill: &str, class: &str) {
    let _ = writeln!(
        out,
        "<rect class=\"{class}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{fill}\"/>",
        n(x),
        n(y),
        n(w),
        n(h)
    );
}

fn line(out: &mut String, x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str) {
    let _ = writeln!(
        out,
        "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{stroke}\" stroke-width=\"1\"/>",
        n(x1),
        n(y1),
        n(x2),
        n(y2)
    );
}

/// The whole picture.
pub fn render(run: &Run) -> String {
    let height = HEADER + PANEL * SCENARIOS.len() as f64 + 8.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" {FONT}>",
        w = n(WIDTH),
        h = n(height)
    );
    rect(&mut out, 0.0, 0.0, WIDTH, height, "#ffffff", "bg");
    header(&mut out);
    for (index, (scenario, traces)) in SCENARIOS.iter().zip(&run.traces).enumerate() {
        panel(&mut out, HEADER + PANEL * index as f64, index, scenario, traces);
    }
    out.push_str("</svg>\n");
    out
}

fn header(out: &mut String) {
    let attrs = format!("font-size=\"20\" font-weight=\"bold\" fill=\"{INK}\"");
    text(out, 16.0, 30.0, &attrs, "rl: what the module decided, request by request");
    let attrs = format!("font-size=\"13\" fill=\"{MUTED}\"");
    text(
        out,
        16.0,
        51.0,
        &attrs,
        "Every bar counts replies of a real redis-server running the module (make demo), each call sent with AT.",
    );
    text(out, 16.0, 69.0, &attrs, "Every limiter below allows 10 per second, in bursts of at most 10.");
    // Legend.
    let attrs = format!("font-size=\"13\" fill=\"{INK}\"");
    rect(out, 16.0, 80.0, 12.0, 12.0, OFFERED, "legend");
    text(out, 33.0, 91.0, &attrs, "offered (the grey part was rejected)");
    rect(out, 300.0, 80.0, 12.0, 12.0, ADMITTED, "legend");
    text(out, 317.0, 91.0, &attrs, "admitted");
    dashed(out, 400.0, 79.0, 400.0, 93.0);
    text(out, 407.0, 91.0, &attrs, "a fixed window starts (every whole second)");
    // The commands, one per column, on up to two lines.
    for (index, algorithm) in ALGORITHMS.iter().enumerate() {
        let x = chart_left(index);
        text(out, x, 113.0, &format!("font-size=\"13\" font-weight=\"bold\" fill=\"{INK}\""), algorithm.label);
        let mut words = vec![algorithm.command, "key"];
        words.extend(algorithm.params);
        let (size, lines) = fit(&words, chart_width());
        for (i, line) in lines.iter().enumerate() {
            let attrs = format!("{MONO} font-size=\"{}\" fill=\"{MUTED}\"", n(size));
            text(out, x, 128.0 + 12.0 * i as f64, &attrs, line);
        }
    }
}

/// The largest monospace font size (11 down to 6) at which `words` fill at most two lines of `width`, and the
/// lines. Monospace glyphs are 0.6 em wide.
fn fit(words: &[&str], width: f64) -> (f64, Vec<String>) {
    let mut size = 11.0;
    loop {
        let columns = (width / (0.6 * size)) as usize;
        let mut lines: Vec<String> = Vec::new();
        for word in words {
            match lines.last_mut() {
                Some(line) if line.len() + 1 + word.len() <= columns => {
                    line.push(' ');
                    line.push_str(word);
                }
                _ => lines.push(word.to_string()),
            }
        }
        if size <= 6.0 || (lines.len() <= 2 && lines.iter().all(|l| l.len() <= columns)) {
            return (size, lines);
        }
        size -= 0.5;
    }
}

fn dashed(out: &mut String, x1: f64, y1: f64, x2: f64, y2: f64) {
    let _ = writeln!(
        out,
        "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{WINDOW}\" stroke-width=\"1\" \
         stroke-dasharray=\"3 2\"/>",
        n(x1),
        n(y1),
        n(x2),
        n(y2)
    );
}

/// "0.5", "1", "1.25": ms as seconds, without trailing zeros.
fn seconds(ms: u64) -> String {
    let text = format!("{}.{:03}", ms / 1000, ms % 1000);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn panel(out: &mut String, top: f64, index: usize, scenario: &Scenario, traces: &[Trace]) {
    line(out, 16.0, top + 4.0, WIDTH - RIGHT, top + 4.0, "#d0d7de");
    let attrs = format!("font-size=\"15\" font-weight=\"bold\" fill=\"{INK}\"");
    text(out, 16.0, top + 24.0, &attrs, &format!("{}. {}", index + 1, scenario.title));
    text(out, 16.0, top + 41.0, &format!("font-size=\"12\" fill=\"{MUTED}\""), scenario.traffic);

    let all: Vec<Vec<Bin>> = traces.iter().map(|t| series(scenario, t)).collect();
    let max = all.iter().flatten().map(|b| b.offered).max().unwrap_or(0);
    let (y_max, y_step) = y_scale(max);
    let weighted = traces.iter().flat_map(|t| &t.calls).any(|c| c.cost != 1);
    let chart_top = top + CHART_TOP;
    let bottom = chart_top + CHART_H;
    let y_of = |units: u64| bottom - CHART_H * units as f64 / y_max as f64;
    let (from, to) = scenario.view_ms;
    let width = chart_width();
    let x_of = |left: f64, ms: u64| left + width * (ms - from) as f64 / (to - from) as f64;

    // The y axis, labelled once per panel.
    let tick_attrs = format!("font-size=\"11\" fill=\"{MUTED}\" text-anchor=\"end\"");
    for tick in (0..=y_max).step_by(y_step as usize) {
        text(out, LEFT - 5.0, y_of(tick) + 4.0, &tick_attrs, &tick.to_string());
    }
    let unit = if weighted { "units" } else { "requests" };
    let _ = writeln!(
        out,
        "<text transform=\"translate({} {}) rotate(-90)\" font-size=\"11\" fill=\"{MUTED}\" \
         text-anchor=\"middle\">{unit} / {} ms</text>",
        n(24.0),
        n(chart_top + CHART_H / 2.0),
        scenario.bin_ms
    );

    for (trace, bins) in traces.iter().zip(&all) {
        let left = chart_left(trace.algorithm);
        let (offered, admitted): (u64, u64) = bins.iter().fold((0, 0), |(o, a), b| (o + b.offered, a + b.admitted));
        let attrs = format!("font-size=\"11.5\" font-weight=\"bold\" fill=\"{INK}\"");
        text(out, left, chart_top - 20.0, &attrs, ALGORITHMS[trace.algorithm].label);
        let counts = format!("admitted {admitted} of {offered}");
        text(out, left, chart_top - 6.0, &format!("font-size=\"11\" fill=\"{INK}\""), &counts);
        for tick in (0..=y_max).step_by(y_step as usize) {
            line(out, left, y_of(tick), left + width, y_of(tick), GRID);
        }
        // Labelled ticks on the time axis; whole seconds, where fixed windows start, dashed.
        for ms in (from.div_ceil(scenario.tick_ms) * scenario.tick_ms..=to).step_by(scenario.tick_ms as usize) {
            let x = x_of(left, ms);
            line(out, x, chart_top, x, bottom, GRID);
            let anchor = if ms == from {
                "start"
            } else if ms == to {
                "end"
            } else {
                "middle"
            };
            let label = if ms == to { format!("{} s", seconds(ms)) } else { seconds(ms) };
            let attrs = format!("font-size=\"11\" fill=\"{MUTED}\" text-anchor=\"{anchor}\"");
            text(out, x, bottom + 14.0, &attrs, &label);
        }
        let bin_w = width / bins.len() as f64;
        let bar_w = if bin_w >= 3.0 { bin_w - 1.0 } else { bin_w };
        for (i, bin) in bins.iter().enumerate() {
            let x = left + bin_w * i as f64 + (bin_w - bar_w) / 2.0;
            if bin.offered > 0 {
                rect(out, x, y_of(bin.offered), bar_w, bottom - y_of(bin.offered), OFFERED, "offered");
            }
            if bin.admitted > 0 {
                rect(out, x, y_of(bin.admitted), bar_w, bottom - y_of(bin.admitted), ADMITTED, "admitted");
            }
        }
        for ms in (from.div_ceil(1000) * 1000..to).step_by(1000).filter(|&ms| ms > from) {
            dashed(out, x_of(left, ms), chart_top, x_of(left, ms), bottom);
        }
        line(out, left, bottom, left + width, bottom, MUTED);
    }
}
