//! The bench's self-contained HTML report: the machine, the summary table
//! and four plots drawn as inline SVG (no script, no network): latency CDF
//! per scenario, the per-stage waterfall, one second of frames on a
//! timeline (from the traced run's Chrome trace), and each scenario's ratio
//! to the floor with its spread over rounds.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use super::BenchReport;

const PALETTE: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#7f7f7f", "#bcbd22",
];
const WIDTH: f64 = 900.0;
const LEFT: f64 = 230.0;
const RIGHT: f64 = 30.0;

pub fn page(report: &BenchReport) -> String {
    let m = &report.machine;
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>sonoflow bench: {suite}</title><style>\
         body{{font:14px system-ui,sans-serif;margin:24px;max-width:960px;color:#222}}\
         table{{border-collapse:collapse;font-size:12px}}td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}\
         td:first-child,th:first-child{{text-align:left}}h2{{margin-top:32px}}svg{{background:#fff;border:1px solid #ddd}}\
         .note{{color:#555;font-size:12px}}</style></head><body>\
         <h1>sonoflow bench: {suite}</h1>\
         <p>{machine}<br>{frames} frames a run, {rounds} rounds; floor: the model's encoder and decoder \
         alone on a preloaded input, paced at the scenario's rate, before and after each round.</p>\
         <p class=\"note\">Not a clinical device; figures describe this machine only.</p>\
         <h2>Summary</h2>{table}",
        suite = escape(&report.suite),
        machine = escape(&format!(
            "{} · {} · model sha256 {}",
            m.summary(),
            m.os,
            &m.model_sha256.get(..12).unwrap_or("")
        )),
        frames = report.frames,
        rounds = report.rounds,
        table = table(report),
    );
    let _ = write!(
        html,
        "<h2>Latency distribution (capture to hand-off to the sink)</h2>{}\
         <h2>Where a frame's time goes (median per stage)</h2>{}\
         <h2>One second of frames</h2>{}\
         <h2>Ratio to the bare-inference floor</h2>{}{}</body></html>",
        cdf(report),
        waterfall(report),
        timeline(report.trace.as_deref()),
        ratios(report),
        super::scaling::charts(&report.scenarios)
            .map(|svg| format!("<h2>How cost grows with the work</h2>{svg}"))
            .unwrap_or_default()
    );
    html
}

pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn table(report: &BenchReport) -> String {
    let markdown = super::summary_table(report);
    let (markdown, after) = markdown.split_once("\n\n").unwrap_or((&markdown, ""));
    let mut rows = markdown.lines().filter(|l| !l.starts_with("| ---"));
    let mut html = String::from("<table>");
    if let Some(head) = rows.next() {
        html.push_str("<tr>");
        for cell in cells(head) {
            let _ = write!(html, "<th>{}</th>", escape(cell));
        }
        html.push_str("</tr>");
    }
    for row in rows {
        html.push_str("<tr>");
        for cell in cells(row) {
            let _ = write!(html, "<td>{}</td>", escape(cell));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    // The sentences after the table (the peer, glass to glass): a paragraph each.
    for line in after.split("\n\n").map(str::trim).filter(|l| !l.is_empty()) {
        let _ = write!(html, "<p>{}</p>", escape(line));
    }
    html
}

fn cells(row: &str) -> impl Iterator<Item = &str> {
    row.trim().trim_matches('|').split('|').map(str::trim)
}

/// An x axis from `lo` to `hi` (log10 when `log`), drawn between LEFT and WIDTH - RIGHT.
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
}

impl Axis {
    fn x(&self, v: f64) -> f64 {
        let (lo, hi, v) = if self.log {
            (self.lo.log10(), self.hi.log10(), v.max(self.lo).log10())
        } else {
            (self.lo, self.hi, v)
        };
        LEFT + (v - lo) / (hi - lo).max(1e-9) * (WIDTH - LEFT - RIGHT)
    }

    /// Tick values: decades (1, 2, 5 each) on a log axis, about six steps otherwise.
    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let mut t = Vec::new();
            let mut decade = 10f64.powf(self.lo.log10().floor());
            while decade <= self.hi {
                for m in [1.0, 2.0, 5.0] {
                    let v = decade * m;
                    if v >= self.lo && v <= self.hi {
                        t.push(v);
                    }
                }
                decade *= 10.0;
            }
            t
        } else {
            let raw = (self.hi - self.lo) / 6.0;
            let mag = 10f64.powf(raw.log10().floor());
            let step = [1.0, 2.0, 5.0, 10.0]
                .into_iter()
                .map(|m| m * mag)
                .find(|s| *s >= raw)
                .unwrap_or(raw);
            (0..)
                .map(|i| self.lo + f64::from(i) * step)
                .take_while(|v| *v <= self.hi + 1e-9)
                .collect()
        }
    }

    /// Grid lines and labels from `top` to `bottom`, and the axis title.
    fn draw(&self, svg: &mut String, top: f64, bottom: f64, title: &str) {
        for v in self.ticks() {
            let x = self.x(v);
            let _ = write!(
                svg,
                "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{bottom}\" stroke=\"#eee\"/>\
                 <text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
                bottom + 14.0,
                number(v)
            );
        }
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\">{}</text>",
            (LEFT + WIDTH - RIGHT) / 2.0,
            bottom + 30.0,
            escape(title)
        );
    }
}

fn number(v: f64) -> String {
    if v >= 10.0 || v == 0.0 || (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn svg_open(height: f64) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\">"
    )
}

/// A chart of one row per item under an x axis (the waterfall, the
/// timeline, the ratios): its SVG begun with the axis and its grid, room
/// below for a legend, and where each row goes.
struct RowChart {
    svg: String,
    top: f64,
    row_h: f64,
    bottom: f64,
}

impl RowChart {
    fn open(axis: &Axis, rows: usize, row_h: f64, title: &str) -> Self {
        let top = 10.0;
        let bottom = top + row_h * rows as f64;
        let mut svg = svg_open(bottom + 70.0);
        axis.draw(&mut svg, top, bottom, title);
        Self {
            svg,
            top,
            row_h,
            bottom,
        }
    }

    /// The top of row `i`.
    fn row(&self, i: usize) -> f64 {
        self.top + self.row_h * i as f64
    }

    /// Row `i`'s name, left of the axis, centred on the row.
    fn label(&mut self, i: usize, text: &str) {
        let _ = write!(
            self.svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            self.row(i) + self.row_h / 2.0 + 4.0,
            escape(text)
        );
    }

    /// The stage legend under the rows, and the SVG closed.
    fn finish_with_legend(mut self, stages: &BTreeSet<String>) -> String {
        legend(&mut self.svg, stages.iter(), self.bottom + 50.0);
        self.svg.push_str("</svg>");
        self.svg
    }
}

fn empty(why: &str) -> String {
    format!("<p class=\"note\">{}</p>", escape(why))
}

/// Latency CDF: one line per scenario, log time axis.
fn cdf(report: &BenchReport) -> String {
    let lines: Vec<(&str, &[[f64; 2]])> = report
        .scenarios
        .iter()
        .filter(|s| s.cdf_ms.len() > 1)
        .map(|s| (s.label.as_str(), s.cdf_ms.as_slice()))
        .collect();
    if lines.is_empty() {
        return empty("No scenario recorded a latency distribution.");
    }
    let all = lines.iter().flat_map(|(_, c)| c.iter().map(|p| p[1]));
    let (lo, hi) = all.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let axis = Axis {
        lo: (lo * 0.8).max(0.01),
        hi: hi * 1.2,
        log: true,
    };
    let (top, plot_h) = (20.0, 260.0);
    let bottom = top + plot_h;
    let legend_h = 16.0 * lines.len() as f64;
    let mut svg = svg_open(bottom + 45.0 + legend_h);
    axis.draw(&mut svg, top, bottom, "latency per frame, ms (log scale)");
    for q in [0.0, 0.25, 0.5, 0.75, 0.9, 1.0] {
        let y = bottom - q * plot_h;
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{q}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\" \
         transform=\"rotate(-90 {:.1} {:.1})\">fraction of frames at or below</text>",
        LEFT - 40.0,
        top + plot_h / 2.0,
        LEFT - 40.0,
        top + plot_h / 2.0
    );
    for (i, (label, points)) in lines.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        // Past the palette's ten colours, lines are dashed so none look alike.
        let dash = if i < PALETTE.len() { "none" } else { "6 3" };
        let path: Vec<String> = points
            .iter()
            .map(|[q, ms]| format!("{:.1},{:.1}", axis.x(*ms), bottom - q * plot_h))
            .collect();
        let y = bottom + 48.0 + 16.0 * i as f64;
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-dasharray=\"{dash}\" stroke-width=\"2\" points=\"{}\"/>\
             <line x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-dasharray=\"{dash}\" stroke-width=\"3\"/>\
             <text x=\"{:.1}\" y=\"{y:.1}\" font-size=\"12\">{}</text>",
            path.join(" "),
            y - 4.0,
            LEFT + 20.0,
            y - 4.0,
            LEFT + 26.0,
            escape(label)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The stage colours, fixed so that every plot agrees.
fn stage_colour(stage: &str) -> &'static str {
    match stage {
        "ingest" => PALETTE[0],
        "preprocess" => PALETTE[7],
        "encoder" | "model" => PALETTE[1],
        "decoder" => PALETTE[3],
        "readout" => PALETTE[9],
        "postprocess" => PALETTE[2],
        "overlay" => PALETTE[4],
        "output" => PALETTE[5],
        "ai" => PALETTE[6],
        _ => PALETTE[8],
    }
}

/// Per scenario, its stages' medians laid end to end, and the end-to-end
/// median as a mark (the rest is waiting in queues and hand-offs).
fn waterfall(report: &BenchReport) -> String {
    let rows: Vec<_> = report
        .scenarios
        .iter()
        .filter(|s| !s.stages_ms.is_empty())
        .collect();
    if rows.is_empty() {
        return empty("No scenario reported its stages.");
    }
    let hi = rows
        .iter()
        .map(|s| {
            s.stages_ms
                .iter()
                .map(|(_, ms)| ms)
                .sum::<f64>()
                .max(s.latency_ms.p50)
        })
        .fold(0.0, f64::max);
    let axis = Axis {
        lo: 0.0,
        hi: hi * 1.05,
        log: false,
    };
    let row_h = 22.0;
    let mut chart = RowChart::open(
        &axis,
        rows.len(),
        row_h,
        "ms (median of each stage, laid end to end; black mark: end-to-end median)",
    );
    let mut seen = BTreeSet::new();
    for (i, s) in rows.iter().enumerate() {
        chart.label(i, &s.label);
        let y = chart.row(i) + 3.0;
        let mut at = 0.0;
        for (stage, ms) in &s.stages_ms {
            let (x0, x1) = (axis.x(at), axis.x(at + ms));
            seen.insert(stage.clone());
            let _ = write!(
                chart.svg,
                "<rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\">\
                 <title>{stage}: {ms:.2} ms</title></rect>",
                (x1 - x0).max(0.5),
                row_h - 6.0,
                stage_colour(stage)
            );
            at += ms;
        }
        let x = axis.x(s.latency_ms.p50);
        let _ = write!(
            chart.svg,
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#000\" stroke-width=\"2\"/>",
            y - 2.0,
            y + row_h - 4.0
        );
    }
    chart.finish_with_legend(&seen)
}

fn legend<'a>(svg: &mut String, stages: impl Iterator<Item = &'a String>, y: f64) {
    let mut x = 20.0;
    for stage in stages {
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{y:.1}\" font-size=\"12\">{stage}</text>",
            y - 10.0,
            stage_colour(stage),
            x + 16.0
        );
        x += 24.0 + 7.5 * stage.len() as f64;
    }
}

/// A span of the trace: its thread, stage name, frame, start and length (µs).
struct Span {
    tid: u64,
    name: String,
    frame: Option<u64>,
    ts: f64,
    dur: f64,
}

/// The spans of a Chrome trace (complete "X" events, or "B"/"E" pairs),
/// and the thread names its metadata gives.
fn read_trace(path: &Path) -> Option<(Vec<Span>, BTreeMap<u64, String>)> {
    let text = std::fs::read_to_string(path).ok()?;
    let value: Value = serde_json::from_str(&text).ok()?;
    let events = value
        .as_array()
        .or_else(|| value.get("traceEvents").and_then(Value::as_array))?;
    let mut spans = Vec::new();
    let mut names = BTreeMap::new();
    let mut open: BTreeMap<u64, Vec<(String, Option<u64>, f64)>> = BTreeMap::new();
    for e in events {
        let ph = e.get("ph").and_then(Value::as_str).unwrap_or_default();
        let tid = e.get("tid").and_then(Value::as_u64).unwrap_or(0);
        let ts = e.get("ts").and_then(Value::as_f64).unwrap_or(0.0);
        let name = e.get("name").and_then(Value::as_str).unwrap_or_default();
        let frame = e.pointer("/args/frame").and_then(|f| {
            f.as_u64()
                .or_else(|| f.as_str().and_then(|s| s.parse().ok()))
        });
        match ph {
            "M" if name == "thread_name" => {
                if let Some(n) = e.pointer("/args/name").and_then(Value::as_str) {
                    names.insert(tid, n.to_owned());
                }
            }
            "X" => spans.push(Span {
                tid,
                name: name.to_owned(),
                frame,
                ts,
                dur: e.get("dur").and_then(Value::as_f64).unwrap_or(0.0),
            }),
            "B" => open
                .entry(tid)
                .or_default()
                .push((name.to_owned(), frame, ts)),
            "E" => {
                if let Some((name, frame, start)) = open.get_mut(&tid).and_then(Vec::pop) {
                    spans.push(Span {
                        tid,
                        name,
                        frame,
                        ts: start,
                        dur: ts - start,
                    });
                }
            }
            _ => {}
        }
    }
    Some((spans, names))
}

/// One second of the traced run, a lane per thread, a box per stage span.
fn timeline(trace: Option<&Path>) -> String {
    let Some((spans, names)) = trace.and_then(read_trace) else {
        return empty("No trace was taken (the traced run failed or was not asked for).");
    };
    let per_frame: Vec<&Span> = spans.iter().filter(|s| s.frame.is_some()).collect();
    if per_frame.is_empty() {
        return empty("The trace holds no per-frame spans.");
    }
    let (first, last) = per_frame.iter().fold((f64::MAX, 0.0f64), |(a, b), s| {
        (a.min(s.ts), b.max(s.ts + s.dur))
    });
    // A second from the middle of the run (after start-up), or all of a shorter one.
    let start = (first + (last - first) * 0.4).min((last - 1e6).max(first));
    let end = start + 1e6;
    let window: Vec<&&Span> = per_frame
        .iter()
        .filter(|s| s.ts + s.dur >= start && s.ts <= end)
        .collect();
    let mut lanes: Vec<u64> = window.iter().map(|s| s.tid).collect();
    lanes.sort_unstable();
    lanes.dedup();
    let axis = Axis {
        lo: 0.0,
        hi: 1000.0,
        log: false,
    };
    let lane_h = 26.0;
    let mut chart = RowChart::open(
        &axis,
        lanes.len(),
        lane_h,
        "ms into the second shown (hover a box for its frame)",
    );
    let mut seen = BTreeSet::new();
    for (i, tid) in lanes.iter().enumerate() {
        let name = names
            .get(tid)
            .cloned()
            .unwrap_or_else(|| format!("thread {tid}"));
        chart.label(i, &name);
        let y = chart.row(i) + 3.0;
        // Outer spans first, so that nested ones are drawn over them.
        let mut lane: Vec<&&&Span> = window.iter().filter(|s| s.tid == *tid).collect();
        lane.sort_by(|a, b| b.dur.total_cmp(&a.dur));
        for s in lane {
            let x0 = axis.x(((s.ts - start) / 1e3).max(0.0));
            let x1 = axis.x(((s.ts + s.dur - start) / 1e3).min(1000.0));
            seen.insert(s.name.clone());
            let _ = write!(
                chart.svg,
                "<rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\" \
                 fill-opacity=\"0.85\"><title>{} frame {}: {:.2} ms</title></rect>",
                (x1 - x0).max(0.5),
                lane_h - 8.0,
                stage_colour(&s.name),
                escape(&s.name),
                s.frame.unwrap_or(0),
                s.dur / 1e3
            );
        }
    }
    chart.finish_with_legend(&seen)
}

/// Each model scenario's ratio to the floor: the median over rounds (dot)
/// and the rounds' range (bar), p50 and p99.
fn ratios(report: &BenchReport) -> String {
    let rows: Vec<_> = report
        .scenarios
        .iter()
        .filter_map(|s| s.ratio.map(|r| (s, r)))
        .collect();
    if rows.is_empty() {
        return empty("No model scenario has a floor to compare with.");
    }
    let hi = rows
        .iter()
        .map(|(_, r)| r.p50_range[1].max(r.p99_range[1]))
        .fold(1.0, f64::max);
    let axis = Axis {
        lo: 0.0,
        hi: hi * 1.1,
        log: false,
    };
    let mut chart = RowChart::open(
        &axis,
        rows.len(),
        30.0,
        "scenario latency / floor latency (1 = the floor; dot: median over rounds, bar: range)",
    );
    let (top, bottom) = (chart.top, chart.bottom);
    let one = axis.x(1.0);
    let _ = write!(
        chart.svg,
        "<line x1=\"{one:.1}\" y1=\"{top}\" x2=\"{one:.1}\" y2=\"{bottom}\" stroke=\"#000\" stroke-dasharray=\"4 3\"/>"
    );
    for (i, (s, r)) in rows.iter().enumerate() {
        chart.label(i, &s.label);
        let y = chart.row(i);
        for (dy, median, range, colour, what) in [
            (10.0, r.p50, r.p50_range, PALETTE[0], "p50"),
            (21.0, r.p99, r.p99_range, PALETTE[1], "p99"),
        ] {
            let _ = write!(
                chart.svg,
                "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-width=\"2\"/>\
                 <circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{colour}\"><title>{what} {median:.2} ({:.2}-{:.2})</title></circle>",
                axis.x(range[0]),
                y + dy,
                axis.x(range[1]),
                y + dy,
                axis.x(median),
                y + dy,
                range[0],
                range[1]
            );
        }
    }
    let _ = write!(
        chart.svg,
        "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">p50</text>\
         <circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">p99</text>",
        LEFT,
        bottom + 51.0,
        PALETTE[0],
        LEFT + 8.0,
        bottom + 55.0,
        LEFT + 60.0,
        bottom + 51.0,
        PALETTE[1],
        LEFT + 68.0,
        bottom + 55.0
    );
    chart.svg.push_str("</svg>");
    chart.svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_tick_in_readable_steps() {
        let log = Axis {
            lo: 0.3,
            hi: 120.0,
            log: true,
        };
        assert_eq!(
            log.ticks(),
            vec![0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
        );
        let lin = Axis {
            lo: 0.0,
            hi: 33.0,
            log: false,
        };
        assert_eq!(lin.ticks(), vec![0.0, 10.0, 20.0, 30.0]);
        assert!((lin.x(0.0) - LEFT).abs() < 1e-9);
    }

    #[test]
    fn a_trace_of_complete_and_paired_events_gives_spans_and_thread_names() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("t.json");
        std::fs::write(
            &path,
            r#"[{"ph":"M","name":"thread_name","pid":1,"tid":2,"args":{"name":"sonoflow-process"}},
                {"ph":"B","name":"process","pid":1,"tid":2,"ts":10.0,"args":{"frame":7}},
                {"ph":"E","name":"process","pid":1,"tid":2,"ts":30.0},
                {"ph":"X","name":"output","pid":1,"tid":3,"ts":31.0,"dur":5.0,"args":{"frame":"7"}}]"#,
        )
        .expect("write");
        let (spans, names) = read_trace(&path).expect("trace");
        assert_eq!(names.get(&2).map(String::as_str), Some("sonoflow-process"));
        assert_eq!(spans.len(), 2);
        assert!(spans.iter().all(|s| s.frame == Some(7)));
        assert_eq!(spans[0].dur, 20.0);
        assert!(timeline(Some(&path)).contains("frame 7"));
    }
}
