//! `sonoflow bench glass` on the real binary: the product scenario
//! (phantom 640x480@30, umind-nano on the CPU) runs with its frames stamped
//! at capture, once into an `rtp` sink received by sonoflow's own `udp`
//! source on 127.0.0.1 and once into an `mp4` sink read back while it is
//! written; bench.json carries glass-to-glass latency beside each run's own
//! latency, and the summary and report.html say it. Nothing here asserts a
//! speed: the deadline is a hang guard, and the only comparison is that the
//! path after the sink adds time.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{wait_with_limit, BIN};

const LIMIT: Duration = Duration::from_secs(300);

#[test]
fn glass_to_glass_is_measured_through_rtp_and_mp4_beside_the_internal_latency() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("glass");
    let child = Command::new(BIN)
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .args(["bench", "glass", "--frames", "150", "--providers", "cpu"])
        .arg("--out")
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sonoflow bench glass");
    let output = wait_with_limit(child, LIMIT);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Glass to glass over RTP"), "{stdout}");

    let text = std::fs::read_to_string(out.join("bench.json")).expect("bench.json");
    let report: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(report["suite"], "glass");
    assert_eq!(
        report["scenarios"].as_array().map(Vec::len),
        Some(0),
        "glass alone"
    );
    let glass = &report["glass_to_glass"];
    assert_eq!(glass["scenario"], "product 640x480@30 cpu", "{glass}");
    assert_eq!(glass["errors"].as_array().map(Vec::len), Some(0), "{glass}");
    for path in ["rtp", "mp4"] {
        let p = &glass[path];
        let n = |key: &str| {
            p[key]
                .as_u64()
                .unwrap_or_else(|| panic!("{path}.{key}: {p}"))
        };
        let ms = |pointer: &str| p.pointer(pointer).and_then(serde_json::Value::as_f64);
        let sent = n("frames_sent");
        assert!(sent > 0, "{path}: {p}");
        assert!(n("frames") * 2 > sent, "{path}: most frames read: {p}");
        // A stamp that does not survive H.264 would make nearly every frame
        // unreadable; a busy machine may still lose a packet at the
        // receiver, and every frame up to the next key frame (2 s) then
        // decodes with blocks of others and is refused.
        assert!(
            n("unreadable") * 2 <= n("frames_decoded"),
            "{path}: few unreadable: {p}"
        );
        assert_eq!(n("rejected"), 0, "{path}: no stamp read wrong: {p}");
        assert!(
            n("warmup_frames") < n("frames"),
            "{path}: frames after the first second: {p}"
        );
        let (p50, p99, max) = (
            ms("/latency_ms/p50"),
            ms("/latency_ms/p99"),
            ms("/latency_ms/max"),
        );
        let internal = ms("/internal_ms/p50");
        assert!(internal > Some(0.0), "{path}: {p}");
        assert!(
            p50 > internal,
            "{path}: glass to glass counts what comes after the sink: {p}"
        );
        assert!(p50 <= p99 && p99 <= max, "{path}: {p}");
        assert!(ms("/first_frame_ms") > Some(0.0), "{path}: {p}");
        let report = p["report"].as_str().expect("the run's report");
        assert!(std::path::Path::new(report).is_file(), "{report}");
    }
    assert_eq!(glass["rtp"]["jitter_buffer_ms"], 100, "{glass}");
    assert_eq!(glass["mp4"]["fragment_ms"], 1000, "{glass}");

    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html");
    assert!(
        html.contains("<p>Glass to glass over RTP") && html.contains("<p>Glass to glass over MP4"),
        "a paragraph each"
    );
    assert!(!html.contains("<script"), "self-contained, no script");
}
