//! Helpers shared by the integration tests: run the real `sonoflow` binary
//! on a pipeline definition, read its report, and make or decode real media
//! with GStreamer.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;

pub const BIN: &str = env!("CARGO_BIN_EXE_sonoflow");

/// A finished `sonoflow run` and its report.
pub struct Run {
    pub output: Output,
    pub report: Option<serde_json::Value>,
}

impl Run {
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    pub fn report(&self) -> &serde_json::Value {
        self.report
            .as_ref()
            .unwrap_or_else(|| panic!("no report; stderr:\n{}", self.stderr()))
    }

    pub fn assert_success(&self) -> &serde_json::Value {
        assert!(
            self.output.status.success(),
            "sonoflow failed ({}):\n{}",
            self.output.status,
            self.stderr()
        );
        self.report()
    }
}

/// Writes `definition` to `dir/pipeline.toml` and returns its path.
pub fn write_definition(dir: &Path, definition: &str) -> PathBuf {
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, definition).expect("write pipeline definition");
    path
}

/// The command for `sonoflow run PIPELINE ARGS --stats-json dir/report.json --quiet`.
pub fn run_command(dir: &Path, pipeline: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .arg("run")
        .arg(pipeline)
        .args(args)
        .arg("--stats-json")
        .arg(dir.join("report.json"))
        .arg("--quiet")
        .stdin(Stdio::null());
    cmd
}

/// Reads `dir/report.json` if the run wrote one (the file is created empty
/// before a run starts, so a run that failed to start leaves it empty).
pub fn read_report(dir: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("report.json")).ok()?;
    if text.trim().is_empty() {
        return None;
    }
    Some(serde_json::from_str(&text).expect("report is JSON"))
}

/// The lines of a `--findings-jsonl` log, one JSON value per frame out, in
/// order (a line that is not JSON fails the test).
pub fn read_findings_log(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("findings log {}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Runs `sonoflow` on `definition` to completion (at most `limit`).
pub fn run_pipeline(dir: &Path, definition: &str, args: &[&str], limit: Duration) -> Run {
    let pipeline = write_definition(dir, definition);
    let child = run_command(dir, &pipeline, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sonoflow");
    let output = wait_with_limit(child, limit);
    Run {
        output,
        report: read_report(dir),
    }
}

/// Waits for `child`, killing it (and failing the test) after `limit`:
/// a run that does not end is a deadlock. Its piped stdout and stderr are
/// read while it runs, so a chatty child never blocks on a full pipe.
pub fn wait_with_limit(mut child: Child, limit: Duration) -> Output {
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        match child.try_wait().expect("poll child") {
            Some(status) => break status,
            None if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                let err = stderr.join().unwrap_or_default();
                panic!(
                    "sonoflow did not finish within {limit:?}:\n{}",
                    String::from_utf8_lossy(&err)
                );
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

pub fn u64_at(v: &serde_json::Value, pointer: &str) -> u64 {
    v.pointer(pointer)
        .and_then(|x| x.as_u64())
        .unwrap_or_else(|| panic!("no integer at {pointer} in {v:#}"))
}

/// A 64-bit integer of protobuf's canonical JSON (a string; absent: 0, the default).
pub fn pb_u64_at(v: &serde_json::Value, pointer: &str) -> u64 {
    match v.pointer(pointer) {
        None => 0,
        Some(x) => x
            .as_str()
            .and_then(|s| s.parse().ok())
            .or_else(|| x.as_u64())
            .unwrap_or_else(|| panic!("no 64-bit integer at {pointer} in {v:#}")),
    }
}

pub fn f64_at(v: &serde_json::Value, pointer: &str) -> f64 {
    v.pointer(pointer)
        .and_then(|x| x.as_f64())
        .unwrap_or_else(|| panic!("no number at {pointer} in {v:#}"))
}

pub fn str_at<'a>(v: &'a serde_json::Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(|x| x.as_str())
        .unwrap_or_else(|| panic!("no string at {pointer} in {v:#}"))
}

/// Frames that entered the pipeline and were dropped inside it.
pub fn pipeline_dropped(report: &serde_json::Value) -> u64 {
    u64_at(report, "/dropped/process") + u64_at(report, "/dropped/output")
}

/// Every dropped frame, including those lost before ingest.
pub fn total_dropped(report: &serde_json::Value) -> u64 {
    report["dropped"]
        .as_object()
        .expect("dropped is an object")
        .values()
        .filter_map(|v| v.as_u64())
        .sum()
}

/// Runs a GStreamer launch line to EOS (to make test media).
pub fn gst_run(launch: &str) {
    gst::init().expect("GStreamer init");
    let pipeline = gst::parse::launch(launch).unwrap_or_else(|e| panic!("{launch}: {e}"));
    pipeline.set_state(gst::State::Playing).expect("play");
    let bus = pipeline.bus().expect("bus");
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("pipeline finished within 60 s");
    pipeline.set_state(gst::State::Null).expect("stop");
    if let gst::MessageView::Error(err) = msg.view() {
        panic!("{launch}: {}", err.error());
    }
}

/// Decoded frames of a media file, and the size of the last one.
pub struct Decoded {
    pub frames: u64,
    pub width: i32,
    pub height: i32,
}

/// Decodes `path` completely with GStreamer (an independent check of a file sonoflow wrote).
pub fn decode(path: &Path) -> Decoded {
    let mut decoded = Decoded {
        frames: 0,
        width: 0,
        height: 0,
    };
    decode_with(path, "GRAY8", |_, width, height, _| {
        decoded.frames += 1;
        decoded.width = width as i32;
        decoded.height = height as i32;
    });
    decoded
}

/// Decodes `path` completely to `format` (e.g. "GRAY8", "RGB"), calling
/// `on_frame(index, width, height, mapped sample)` for each frame; panics
/// if decoding fails.
pub fn decode_with(
    path: &Path,
    format: &str,
    mut on_frame: impl FnMut(usize, usize, usize, &[u8]),
) {
    let (pipeline, sink) = decoder(path, format);
    let mut index = 0;
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(10)) {
        let size = sample.caps().and_then(|c| {
            c.structure(0).map(|s| {
                (
                    s.get::<i32>("width").unwrap_or(0),
                    s.get::<i32>("height").unwrap_or(0),
                )
            })
        });
        let (width, height) = size.unwrap_or((0, 0));
        let buffer = sample.buffer().expect("buffer");
        let map = buffer.map_readable().expect("map");
        on_frame(index, width.max(0) as usize, height.max(0) as usize, &map);
        index += 1;
    }
    let bus = pipeline.bus().expect("bus");
    let error = bus.pop_filtered(&[gst::MessageType::Error]);
    pipeline.set_state(gst::State::Null).expect("stop");
    if let Some(msg) = error {
        if let gst::MessageView::Error(err) = msg.view() {
            panic!("decoding {} failed: {}", path.display(), err.error());
        }
    }
}

/// A playing pipeline that decodes `path` to `format` into an appsink.
fn decoder(path: &Path, format: &str) -> (gst::Pipeline, gst_app::AppSink) {
    gst::init().expect("GStreamer init");
    // The path is set as a property, never quoted into the launch text.
    let launch = format!(
        "filesrc name=src ! decodebin ! videoconvert ! video/x-raw,format={format} ! appsink name=out sync=false"
    );
    let pipeline = gst::parse::launch(&launch)
        .expect("decode pipeline")
        .downcast::<gst::Pipeline>()
        .expect("pipeline");
    pipeline
        .by_name("src")
        .expect("filesrc")
        .set_property("location", path.to_string_lossy().as_ref());
    let sink = pipeline
        .by_name("out")
        .expect("appsink")
        .downcast::<gst_app::AppSink>()
        .expect("appsink type");
    pipeline.set_state(gst::State::Playing).expect("play");
    (pipeline, sink)
}

/// The frame rate a media file's decoded caps declare, as (numerator,
/// denominator): what a player shows, read independently of sonoflow.
pub fn decoded_framerate(path: &Path) -> (i32, i32) {
    let (pipeline, sink) = decoder(path, "GRAY8");
    let sample = sink
        .try_pull_sample(gst::ClockTime::from_seconds(10))
        .unwrap_or_else(|| panic!("{}: no frame decodes", path.display()));
    pipeline.set_state(gst::State::Null).expect("stop");
    let rate = sample
        .caps()
        .and_then(|c| c.structure(0))
        .and_then(|s| s.get::<gst::Fraction>("framerate").ok())
        .unwrap_or_else(|| panic!("{}: caps without a frame rate", path.display()));
    (rate.numer(), rate.denom())
}

/// A UDP port on loopback that was free a moment ago.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The onnxruntime library the bootstrap installed (or ORT_DYLIB_PATH).
pub fn ort_dylib() -> PathBuf {
    std::env::var_os("ORT_DYLIB_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/libonnxruntime.so.1.31.1")
        })
}

/// The tiny contract-test model (written by onnx/make_test_models.py).
pub fn tiny_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-model")
}

/// A copy of the tiny model with its manifest edited by `edit`.
pub fn edited_tiny_model(edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(tiny_model()).expect("fixture") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
    }
    let manifest = dir.path().join("sonoflow-model.toml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    std::fs::write(&manifest, edit(text)).expect("write manifest");
    dir
}

/// Runs `sonoflow ARGS` with the onnxruntime library set; (exit code, stdout, stderr).
pub fn sonoflow(args: &[&std::ffi::OsStr]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("ORT_DYLIB_PATH", ort_dylib())
        .output()
        .expect("run sonoflow");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
