//! What systemd, `docker stop`, `timeout` and a dropped SSH session do to a
//! run: SIGTERM and SIGHUP stop it like Ctrl-C (drain, finalise, report),
//! and a second signal ends a drain at once.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

const LIMIT: Duration = Duration::from_secs(60);

fn start(dir: &std::path::Path, mp4: &std::path::Path) -> Child {
    let pipeline = write_definition(
        dir,
        &format!(
            "[source]\nkind = \"test\"\nwidth = 320\nheight = 240\nfps = 30\n[[sinks]]\nkind = \"mp4\"\npath = \"{}\"\n",
            mp4.display()
        ),
    );
    run_command(dir, &pipeline, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sonoflow")
}

/// Waits until the run has written frames (its file holds a first
/// fragment); LIMIT is a hang guard, not a speed limit.
fn wait_for_frames(mp4: &std::path::Path) {
    let started = Instant::now();
    while std::fs::metadata(mp4).map_or(0, |m| m.len()) < 4096 {
        assert!(started.elapsed() < LIMIT, "no frames written");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn signal(child: &Child, name: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
}

fn stops_cleanly_on(name: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mp4 = dir.path().join("stopped.mp4");
    let child = start(dir.path(), &mp4);
    wait_for_frames(&mp4);
    signal(&child, name);
    let output = wait_with_limit(child, LIMIT);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "SIG{name}: {}\n{stderr}",
        output.status
    );
    let r = read_report(dir.path()).expect("report written after the signal");
    // The file held a fragment before the signal, so frames were out; how
    // many depends on the machine, that the file holds each of them does not.
    let out = u64_at(&r, "/frames_out");
    assert!(out > 0, "{r:#}");
    assert_eq!(
        out + pipeline_dropped(&r),
        u64_at(&r, "/frames_in"),
        "{r:#}"
    );
    assert_eq!(decode(&mp4).frames, out, "the file was finalised");
}

#[test]
fn ctrl_c_drains_finalises_and_reports() {
    stops_cleanly_on("INT");
}

#[test]
fn sigterm_drains_finalises_and_reports() {
    stops_cleanly_on("TERM");
}

#[test]
fn sighup_drains_finalises_and_reports() {
    stops_cleanly_on("HUP");
}

#[test]
fn a_second_signal_exits_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mp4 = dir.path().join("forced.mp4");
    let child = start(dir.path(), &mp4);
    wait_for_frames(&mp4);
    signal(&child, "TERM");
    signal(&child, "TERM");
    let output = wait_with_limit(child, Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The drain may win the race (exit 0, a full report); else the second
    // signal ends the process with 130 and says so.
    match output.status.code() {
        Some(0) => assert!(read_report(dir.path()).is_some(), "{stderr}"),
        Some(130) => assert!(stderr.contains("second stop signal"), "{stderr}"),
        other => panic!("exit {other:?}: {stderr}"),
    }
}

#[test]
fn an_unwritable_report_path_fails_before_the_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pipeline = write_definition(
        dir.path(),
        "[source]\nkind = \"test\"\n[[sinks]]\nkind = \"fake\"\n",
    );
    let output = std::process::Command::new(BIN)
        .current_dir(dir.path())
        .args(["run", "--frames", "300", "--quiet", "--stats-json"])
        .arg("/proc/no-such-dir/report.json")
        .arg(&pipeline)
        .output()
        .expect("run sonoflow");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--stats-json"), "{stderr}");
    // 300 frames at 30 fps take 10 s; the error comes before any of them.
    assert!(
        !stderr.contains("frames in"),
        "the run went ahead: {stderr}"
    );
}
