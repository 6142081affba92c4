//! A live source that dies comes back; a slow stage drops (counted) instead
//! of blocking; nothing deadlocks; a recording killed mid-run still plays.

mod common;
mod salvage;

use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Duration;

use common::*;
use gst::prelude::*;
use gstreamer as gst;
use sonoflow_core::{Frame, Stage};
use sonoflow_runtime::{
    run, LiveStatus, PipelineDefinition, ProcessStage, Processor, RunOptions, StageError,
};

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
            # Nothing is dropped inside the pipeline, on any machine: every
            # frame that came in must come out.
            [queues.process]
            policy = "block"
            [queues.output]
            policy = "block"
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
    assert_eq!(
        u64_at(r, "/frames_out"),
        40,
        "frames kept flowing across restarts: {r:#}"
    );
    assert_eq!(pipeline_dropped(r), 0, "{r:#}");
    assert_eq!(decode(&mp4).frames, 40, "one valid file spans the restarts");
    // 15 frames per life at most: 40 frames took at least three.
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

/// A process stage stuck on its first frame until the run has ingested
/// `open_at` frames (the test opens the gate from the run's status
/// callback): a stage slower than the source by construction, on any machine.
struct Stuck {
    gate: Arc<(Mutex<bool>, Condvar)>,
    seen: Arc<Mutex<Vec<u64>>>,
}

impl Processor for Stuck {
    fn process(&mut self, frame: &mut Frame) -> Result<(), StageError> {
        let first = {
            let mut seen = self.seen.lock().expect("seen");
            seen.push(frame.id.0);
            seen.len() == 1
        };
        if first {
            let (open, opened) = &*self.gate;
            let guard = open.lock().expect("gate");
            // LIMIT is a hang guard: a run that never ingests past a stuck stage fails below.
            let _ = opened
                .wait_timeout_while(guard, LIMIT, |open| !*open)
                .expect("gate");
        }
        Ok(())
    }
}

#[test]
fn slow_stage_drops_counted_frames_instead_of_holding_the_source_back() {
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
    let open_at = 20;
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let stage = Stuck {
        gate: Arc::clone(&gate),
        seen: Arc::clone(&seen),
    };
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let options = RunOptions {
            frames: Some(120),
            status_every: Duration::from_millis(10),
            ..RunOptions::default()
        };
        let mut on_status = |status: &LiveStatus<'_>| {
            if status.metrics.frames_in >= open_at {
                let (open, opened) = &*gate;
                *open.lock().expect("gate") = true;
                opened.notify_all();
            }
        };
        let _ = done_tx.send(run(
            &def,
            ProcessStage::custom(Box::new(stage)),
            &options,
            &mut on_status,
        ));
    });
    let report = done_rx
        .recv_timeout(LIMIT)
        .expect("the run finished: no deadlock")
        .expect("the run started");
    assert_eq!(report.error, None);
    assert_eq!(report.frames_in, 120);
    // The source went on while the stage held its first frame: `open_at`
    // frames or more came in, and of those behind it only the queue's 2 were
    // kept (frames before the held one, if any, were dropped too).
    let dropped = report.dropped[Stage::Process.name()];
    assert!(
        dropped >= open_at - 1 - 2,
        "a stuck stage behind a 2-deep drop-oldest queue drops, counted: {report:#?}"
    );
    let inside = dropped + report.dropped[Stage::Output.name()];
    assert_eq!(
        report.frames_out + inside,
        120,
        "every frame accounted for: {report:#?}"
    );
    let seen = seen.lock().expect("seen");
    assert_eq!(
        seen.len() as u64,
        120 - dropped,
        "the stage saw every frame not counted as dropped before it: {report:#?}"
    );
    // Drop-oldest: frames keep their order, and the newest is never the one dropped.
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert_eq!(seen.last(), Some(&119), "{seen:?}");
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
