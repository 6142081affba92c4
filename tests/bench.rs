//! `sonoflow bench` on the real binary: the quick suite (pass-through, raw
//! model path, whole product at 640x480@30 on the CPU, and sonoflow beside
//! the Python peer, benches/peer.py, on the same phantom frames) for one
//! short round writes bench.json (the machine, the floors before and after the round,
//! each scenario with its ratio to the floor) and a self-contained
//! report.html with its four plots; `--compare` sets two reports side by
//! side; an unknown suite or provider fails naming what there is. Nothing
//! here asserts a speed: deadlines are hang guards.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{wait_with_limit, BIN};

const LIMIT: Duration = Duration::from_secs(600);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bench(args: &[&str]) -> std::process::Output {
    let child = Command::new(BIN)
        .current_dir(root())
        .arg("bench")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sonoflow bench");
    wait_with_limit(child, LIMIT)
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("JSON")
}

#[test]
fn the_quick_suite_writes_its_json_and_html_and_compares() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("suite");
    let trace = dir.path().join("trace.json");
    let output = bench(&[
        "quick",
        "--frames",
        "60",
        "--rounds",
        "1",
        "--providers",
        "cpu",
        "--out",
        out.to_str().expect("utf-8"),
        "--trace",
        trace.to_str().expect("utf-8"),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("| raw 640x480@30 cpu |"), "{stdout}");
    assert!(
        stdout.contains("On the same frames the Python peer takes"),
        "the peer ran beside sonoflow: {stdout}\n{stderr}"
    );

    let report = read_json(&out.join("bench.json"));
    let machine = &report["machine"];
    for key in [
        "cpu_model",
        "onnxruntime",
        "commit",
        "model",
        "model_sha256",
    ] {
        assert!(
            machine[key].as_str().is_some_and(|v| !v.is_empty()),
            "machine.{key}: {machine}"
        );
    }
    assert!(machine["cores"].as_u64() >= Some(1));
    assert_eq!(machine["providers"][0], "cpu");
    // One round: a floor before it and one after.
    let floor = &report["floors"][0];
    assert_eq!(floor["rounds"].as_array().map(Vec::len), Some(2), "{floor}");
    assert!(floor["median_ms"]["p50"].as_f64() > Some(0.0), "{floor}");
    let scenarios = report["scenarios"].as_array().expect("scenarios");
    assert_eq!(scenarios.len(), 5);
    for s in scenarios {
        let label = s["label"].as_str().unwrap_or_default();
        assert_eq!(
            s["rounds"].as_array().map(Vec::len),
            Some(1),
            "{label}: {s}"
        );
        assert!(s["latency_ms"]["p99"].as_f64() > Some(0.0), "{label}");
        assert!(
            s["cdf_ms"].as_array().map(Vec::len) > Some(10),
            "{label}: a distribution to draw"
        );
        let model = !label.starts_with("passthrough");
        assert_eq!(
            s["ratio"].is_object(),
            model,
            "{label}: a ratio only where the model runs"
        );
        if model {
            let r = s["ratio"]["p50"].as_f64().unwrap_or(0.0);
            assert!(r > 0.0, "{label}: {s}");
            let stages: Vec<&str> = s["stages_ms"]
                .as_array()
                .map(|a| a.iter().filter_map(|st| st[0].as_str()).collect())
                .unwrap_or_default();
            let expected = if label.starts_with("python-peer") {
                "model"
            } else {
                "encoder"
            };
            assert!(stages.contains(&expected), "{label}: {stages:?}");
        }
    }

    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html");
    assert_eq!(html.matches("<svg").count(), 4, "four plots");
    assert!(!html.contains("<script"), "self-contained, no script");
    assert!(html.contains("product 640x480@30 cpu"));
    assert!(
        html.contains("frame "),
        "the timeline drew the trace's frames"
    );
    let copied = read_json(&trace);
    assert!(copied.as_array().is_some_and(|a| !a.is_empty()) || copied["traceEvents"].is_array());

    // The report against itself: every scenario unchanged.
    let json = out.join("bench.json");
    let json = json.to_str().expect("utf-8");
    let output = bench(&[
        "--compare",
        json,
        json,
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("| product 640x480@30 cpu |") && stdout.contains("| 1.00 | 1.00 |"),
        "{stdout}"
    );
    assert!(out.join("compare.html").is_file());
}

#[test]
fn an_unknown_suite_or_provider_fails_naming_what_there_is() {
    let output = bench(&["fastest", "--out", "/tmp/sonoflow-bench-never"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("standard, quick, scaling"), "{stderr}");
    let output = bench(&["quick", "--providers", "gpu9000"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("gpu9000") && stderr.contains("cpu"),
        "{stderr}"
    );
}
