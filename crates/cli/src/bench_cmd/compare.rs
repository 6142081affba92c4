//! `sonoflow bench --compare A.json B.json`: two machines or two builds
//! side by side, scenario by scenario (matched by label), as a markdown
//! table on stdout and `compare.html` in the out folder.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

use super::{read_report, BenchReport, ScenarioResult};

pub fn compare(a: &Path, b: &Path, out: &Path) -> anyhow::Result<()> {
    let (ra, rb) = (read_report(a)?, read_report(b)?);
    let table = table(&ra, &rb);
    println!(
        "A: {} ({})\nB: {} ({})\n",
        a.display(),
        ra.machine.summary(),
        b.display(),
        rb.machine.summary()
    );
    println!("{table}");
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let page = out.join("compare.html");
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>sonoflow bench: compare</title>\
         <style>body{font:14px system-ui,sans-serif;margin:24px}table{border-collapse:collapse;font-size:12px}\
         td,th{border:1px solid #ccc;padding:3px 6px}</style></head><body><h1>sonoflow bench: A against B</h1>",
    );
    let _ = write!(
        html,
        "<p>A: {}<br>B: {}</p><table>",
        super::html::escape(&format!("{} · {}", a.display(), ra.machine.summary())),
        super::html::escape(&format!("{} · {}", b.display(), rb.machine.summary()))
    );
    for (i, row) in table
        .lines()
        .filter(|l| !l.starts_with("| ---"))
        .enumerate()
    {
        let tag = if i == 0 { "th" } else { "td" };
        html.push_str("<tr>");
        for cell in row.trim().trim_matches('|').split('|') {
            let _ = write!(html, "<{tag}>{}</{tag}>", super::html::escape(cell.trim()));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table></body></html>");
    std::fs::write(&page, html).with_context(|| format!("cannot write {}", page.display()))?;
    println!("wrote {}", page.display());
    Ok(())
}

/// One row per scenario in either report (A's order, then B's own).
fn table(a: &BenchReport, b: &BenchReport) -> String {
    let mut t = String::from(
        "| scenario | A p50 / p99 ms | B p50 / p99 ms | B/A p50 | B/A p99 | A ratio to floor p50 / p99 | B ratio to floor p50 / p99 |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    let find = |r: &'_ BenchReport, label: &str| -> Option<ScenarioResult> {
        r.scenarios
            .iter()
            .find(|s| s.label == label && !s.rounds.is_empty())
            .cloned()
    };
    let mut labels: Vec<&str> = a.scenarios.iter().map(|s| s.label.as_str()).collect();
    for s in &b.scenarios {
        if !labels.contains(&s.label.as_str()) {
            labels.push(&s.label);
        }
    }
    let latency = |s: &Option<ScenarioResult>| {
        s.as_ref().map_or("-".to_owned(), |s| {
            format!("{:.2} / {:.2}", s.latency_ms.p50, s.latency_ms.p99)
        })
    };
    let ratio = |s: &Option<ScenarioResult>| {
        s.as_ref()
            .and_then(|s| s.ratio)
            .map_or("-".to_owned(), |r| format!("{:.2} / {:.2}", r.p50, r.p99))
    };
    for label in labels {
        let (sa, sb) = (find(a, label), find(b, label));
        let change = |f: fn(&ScenarioResult) -> f64| match (&sa, &sb) {
            (Some(x), Some(y)) if f(x) > 0.0 => format!("{:.2}", f(y) / f(x)),
            _ => "-".to_owned(),
        };
        let _ = writeln!(
            t,
            "| {label} | {} | {} | {} | {} | {} | {} |",
            latency(&sa),
            latency(&sb),
            change(|s| s.latency_ms.p50),
            change(|s| s.latency_ms.p99),
            ratio(&sa),
            ratio(&sb)
        );
    }
    t
}
