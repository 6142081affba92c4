//! A live source that dies comes back; a slow stage drops (counted) instead
//! of blocking; nothing deadlocks; a recording killed mid-run still plays.

mod common;
mod salvage;

use std::sync::mpsc;
use std::time::Duration;

use common::*;
use gst::prelude::*;
use gstreamer as gst;
use sonoflow_core::{Frame, Stage};
use sonoflow_runtime::{run, PipelineDefinition, ProcessStage, Processor, RunOptions, StageError};

const LIMIT: Duration = Duration::from_secs(90);

#[test]
fn live_source_that_ends_is_restarted_and_the_run_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mp4 = dir.path().join("across.mp4");
    // A "live" source that stops after 15 frames, like a cable pulled out.
    let run = run_pipeline(
        dir.path(),
        &format!(
            r#"
            [source]
            kind = "launch"
            launch = "videotestsrc is-live=true num-buffers=15 ! video/x-raw,width=160,height=120,framerate=60/1"
            restart = {{ initial_backoff_ms = 50, max_backoff_ms = 200, stall_timeout_ms = 1000 }}
            [[sinks]]
            kind = "mp4"
            path = "{}"
            "#,
            mp4.display()
        ),
        &["--frames", "40"],
        LIMIT,
    );
    let r = run.assert_success();
    assert_eq!(u64_at(r, "/frames_in"), 40);
    assert_eq!(u64_at(r, "/frames_out") + pipeline_dropped(r), 40, "{r:#}");
    assert!(
        u64_at(r, "/frames_out") >= 30,
        "frames kept flowing across restarts: {r:#}"
    );
    assert_eq!(
        decode(&mp4).frames,
        u64_at(r, "/frames_out"),
        "one valid file spans the restarts"
    );
    assert!(u64_at(r, "/source/restarts") >= 2, "{r:#}");
    assert!(str_at(r, "/source/last_error").contains("ended"), "{r:#}");
    assert!(
        run.stderr().contains("restarting"),
        "the log says so:\n{}",
        run.stderr()
    );
}

/// An RTP/H.264 sender on loopback, like a network probe.
struct Sender(gst::Element);

impl Sender {
    fn start(port: u16) -> Self {
        gst::init().expect("GStreamer init");
        let launch = format!(
            "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! \
             x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 ! rtph264pay config-interval=1 pt=96 ! \
             udpsink host=127.0.0.1 port={port}"
        );
        let pipeline = gst::parse::launch(&launch).expect("sender pipeline");
        pipeline
            .set_state(gst::State::Playing)
            .expect("sender plays");
        Self(pipeline)
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}

#[test]
fn network_source_that_dies_and_comes_back_is_picked_up_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_udp_port();
    let pipeline = write_definition(
        dir.path(),
        &format!(
            r#"
            [source]
            kind = "udp"
            port = {port}
            address = "127.0.0.1"
            latency_ms = 20
            restart = {{ initial_backoff_ms = 50, max_backoff_ms = 300, stall_timeout_ms = 700 }}
            [[sinks]]
            kind = "fake"
            "#
        ),
    );
    let sender = Sender::start(port);
    let child = run_command(dir.path(), &pipeline, &["--frames", "75"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start sonoflow");
    std::thread::sleep(Duration::from_millis(1500));
    drop(sender); // the source dies...
    std::thread::sleep(Duration::from_millis(2000));
    let _sender = Sender::start(port); // ...and comes back.
    let output = wait_with_limit(child, LIMIT);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let r = read_report(dir.path()).expect("report");
    assert_eq!(u64_at(&r, "/frames_in"), 75, "{r:#}");
    assert!(u64_at(&r, "/source/restarts") >= 1, "{r:#}");
    assert!(
        str_at(&r, "/source/last_error").contains("no frame"),
        "{r:#}"
    );
}

/// A process stage far slower than the source.
struct Slow(Duration);

impl Processor for Slow {
    fn process(&mut self, _frame: &mut Frame) -> Result<(), StageError> {
        std::thread::sleep(self.0);
        Ok(())
    }
}

#[test]
fn slow_stage_drops_counted_frames_and_keeps_latency_bounded() {
    let def = PipelineDefinition::parse(
        r#"
        [source]
        kind = "test"
        width = 160
        height = 120
        fps = 60
        [queues.process]
        depth = 2
        [[sinks]]
        kind = "fake"
        "#,
        "slow.toml",
        "slow",
    )
    .expect("valid definition");
    let work = Duration::from_millis(40);
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let options = RunOptions {
            frames: Some(120),
            ..RunOptions::default()
        };
        let _ = done_tx.send(run(
            &def,
            ProcessStage::custom(Box::new(Slow(work))),
            &options,
            &mut |_| {},
        ));
    });
    let report = done_rx
        .recv_timeout(LIMIT)
        .expect("the run finished: no deadlock")
        .expect("the run started");
    assert_eq!(report.error, None);
    assert_eq!(report.frames_in, 120);
    let dropped = report.dropped[Stage::Process.name()];
    assert!(
        dropped > 30,
        "a 40 ms stage on a 60 fps source must drop: {report:#?}"
    );
    let inside = report.dropped[Stage::Process.name()] + report.dropped[Stage::Output.name()];
    assert_eq!(
        report.frames_out + inside,
        120,
        "every frame accounted for: {report:#?}"
    );
    // Queue depth 2 in front of a 40 ms stage: a frame waits at most ~3 stage
    // times. 400 ms is far above that and far below an unbounded queue (2 s).
    assert!(
        report.latency_ms.max < 400.0,
        "latency stays bounded: {report:#?}"
    );
}

#[test]
fn ctrl_c_stops_cleanly_with_a_valid_file_and_a_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mp4 = dir.path().join("interrupted.mp4");
    let pipeline = write_definition(
        dir.path(),
        &format!(
            "[source]\nkind = \"test\"\nwidth = 320\nheight = 240\nfps = 30\n[[sinks]]\nkind = \"mp4\"\npath = \"{}\"\n",
            mp4.display()
        ),
    );
    let child = run_command(dir.path(), &pipeline, &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start sonoflow");
    std::thread::sleep(Duration::from_millis(1500));
    let status = std::process::Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
    let output = wait_with_limit(child, LIMIT);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let r = read_report(dir.path()).expect("report written after Ctrl-C");
    let out = u64_at(&r, "/frames_out");
    assert!(out > 10, "{r:#}");
    assert_eq!(decode(&mp4).frames, out, "the file was finalised");
}

/// Runs the phantom into `sink` (a `[[sinks]]` body), kills the process
/// with SIGKILL once the file has grown past a few fragments, and returns
/// the frames that decode from what it left.
fn frames_left_after_sigkill(dir: &std::path::Path, file: &std::path::Path, sink: &str) -> u64 {
    let pipeline = write_definition(
        dir,
        &format!(
            "[source]\nkind = \"phantom\"\nwidth = 320\nheight = 240\nfps = 30\n[[sinks]]\n{sink}\npath = \"{}\"\n",
            file.display()
        ),
    );
    let mut child = run_command(dir, &pipeline, &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start sonoflow");
    // Not a speed check: wait (at most LIMIT) until something sizeable is on disk.
    let started = std::time::Instant::now();
    while std::fs::metadata(file).map_or(0, |m| m.len()) < 60_000 {
        assert!(
            started.elapsed() < LIMIT,
            "the recording never grew: {:?}",
            std::fs::metadata(file)
        );
        assert!(
            child.try_wait().expect("poll").is_none(),
            "sonoflow exited early"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    salvage::decodable_frames(file)
}

#[test]
fn sigkilled_mp4_recording_plays_up_to_its_last_fragment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mp4 = dir.path().join("killed.mp4");
    let frames = frames_left_after_sigkill(dir.path(), &mp4, "kind = \"mp4\"");
    assert!(frames > 0, "a fragmented MP4 survives SIGKILL");
}

#[test]
fn sigkilled_mkv_recording_plays_up_to_where_it_was_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mkv = dir.path().join("killed.mkv");
    let frames = frames_left_after_sigkill(dir.path(), &mkv, "kind = \"mkv\"");
    assert!(frames > 0, "Matroska survives SIGKILL");
}
