//! The scaling suite's curves: how the whole product's latency grows with
//! the frame size, the frame rate, the lesions per frame and the streams
//! run at once, each against the baseline (640x480, 30 fps, one lesion, one
//! stream), as four small charts (p50 and p99; frames dropped named at each
//! point), inline SVG like the rest of the report.

use std::fmt::Write as _;

use super::scenario::{Kind, Scenario, VGA};
use super::ScenarioResult;

const CHART_W: f64 = 430.0;
const CHART_H: f64 = 220.0;
const PAD_L: f64 = 50.0;
const PAD_B: f64 = 40.0;
const PAD_T: f64 = 28.0;

/// One curve: its title, the x axis' name, and (x, p50, p99, dropped) points.
struct Series {
    title: &'static str,
    axis: &'static str,
    points: Vec<(f64, f64, f64, u64)>,
}

/// Whether `s` is the baseline except for what `varies` lets differ.
fn baseline_but(s: &Scenario, varies: &str) -> bool {
    s.kind == Kind::Product
        && (varies == "size" || (s.width, s.height) == VGA)
        && (varies == "fps" || s.fps == 30)
        && (varies == "lesions" || s.lesions == 1)
        && (varies == "streams" || s.streams == 1)
}

fn series(results: &[ScenarioResult]) -> Vec<Series> {
    let ran: Vec<&ScenarioResult> = results.iter().filter(|r| !r.rounds.is_empty()).collect();
    let curve = |title, axis, varies: &str, x: fn(&Scenario) -> f64| {
        let mut points: Vec<(f64, f64, f64, u64)> = ran
            .iter()
            .filter(|r| baseline_but(&r.scenario, varies))
            .map(|r| {
                (
                    x(&r.scenario),
                    r.latency_ms.p50,
                    r.latency_ms.p99,
                    r.dropped,
                )
            })
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        Series {
            title,
            axis,
            points,
        }
    };
    vec![
        curve("frame size", "megapixels", "size", |s| {
            f64::from(s.width * s.height) / 1e6
        }),
        curve("frame rate", "frames per second", "fps", |s| {
            f64::from(s.fps)
        }),
        curve("lesions per frame", "lesions", "lesions", |s| {
            f64::from(s.lesions)
        }),
        curve(
            "concurrent streams (processes)",
            "streams",
            "streams",
            |s| f64::from(s.streams),
        ),
    ]
}

/// The four charts, or None when the suite ran no scaling series.
pub fn charts(results: &[ScenarioResult]) -> Option<String> {
    let all = series(results);
    if all.iter().all(|s| s.points.len() < 2) {
        return None;
    }
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">",
        w = CHART_W * 2.0,
        h = CHART_H * 2.0
    );
    for (i, s) in all.iter().enumerate() {
        let (ox, oy) = ((i % 2) as f64 * CHART_W, (i / 2) as f64 * CHART_H);
        chart(&mut svg, s, ox, oy);
    }
    svg.push_str("</svg>");
    Some(svg)
}

fn chart(svg: &mut String, s: &Series, ox: f64, oy: f64) {
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"13\" font-weight=\"bold\">{}</text>",
        ox + PAD_L,
        oy + 18.0,
        s.title
    );
    if s.points.len() < 2 {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">not run</text>",
            ox + PAD_L,
            oy + 60.0
        );
        return;
    }
    let (x_lo, x_hi) = (s.points[0].0, s.points[s.points.len() - 1].0);
    let y_hi = s.points.iter().map(|p| p.2).fold(1.0, f64::max) * 1.15;
    let (w, h) = (CHART_W - PAD_L - 20.0, CHART_H - PAD_T - PAD_B);
    let px = |x: f64| ox + PAD_L + (x - x_lo) / (x_hi - x_lo).max(1e-9) * w;
    let py = |y: f64| oy + PAD_T + h - y / y_hi * h;
    let _ = write!(
        svg,
        "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"none\" stroke=\"#ccc\"/>",
        ox + PAD_L,
        oy + PAD_T
    );
    for frac in [0.0, 0.5, 1.0] {
        let y = y_hi / 1.15 * frac;
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{y:.0}</text>",
            ox + PAD_L - 4.0,
            py(y) + 3.0
        );
    }
    for &(x, _, _, _) in &s.points {
        let label = if x.fract() == 0.0 {
            format!("{x:.0}")
        } else {
            format!("{x:.2}")
        };
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{label}</text>",
            px(x),
            oy + PAD_T + h + 13.0
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{} (latency, ms: blue p50, red p99)</text>",
        ox + PAD_L + w / 2.0,
        oy + PAD_T + h + 30.0,
        s.axis
    );
    for (colour, pick) in [("#1f77b4", 1usize), ("#d62728", 2)] {
        let points: Vec<String> = s
            .points
            .iter()
            .map(|p| {
                let y = if pick == 1 { p.1 } else { p.2 };
                format!("{:.1},{:.1}", px(p.0), py(y))
            })
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
            points.join(" ")
        );
    }
    for &(x, p50, p99, dropped) in &s.points {
        let _ = write!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#1f77b4\"><title>p50 {p50:.1} ms</title></circle>\
             <circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#d62728\"><title>p99 {p99:.1} ms</title></circle>",
            px(x),
            py(p50),
            px(x),
            py(p99)
        );
        if dropped > 0 {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"middle\" fill=\"#555\">{dropped} dropped</text>",
                px(x),
                py(p99) - 6.0
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonoflow_inference::Provider;

    #[test]
    fn the_scaling_suite_makes_four_curves_through_the_baseline() {
        let scenarios = super::super::scenario::suite("scaling", &[Provider::Cpu]).expect("suite");
        let results: Vec<ScenarioResult> = scenarios
            .into_iter()
            .map(|s| ScenarioResult::for_test(s, 10.0))
            .collect();
        let all = series(&results);
        let lengths: Vec<usize> = all.iter().map(|s| s.points.len()).collect();
        // Sizes 3; rates 15/30/60/90/120; lesions 0-3; streams 1/2/4.
        assert_eq!(lengths, vec![3, 5, 4, 3]);
        assert!(charts(&results).is_some_and(|svg| svg.matches("<polyline").count() == 8));
    }
}
