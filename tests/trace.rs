//! `sonoflow run --trace PATH` on the real binary: a 300-frame run of the
//! phantom through the tiny model writes a trace that holds to the Chrome
//! Trace Event Format (what ui.perfetto.dev and chrome://tracing read):
//! every event has its fields, begin and end pair up on each thread in time
//! order, each thread is one named track, every stage of a frame is there,
//! and flow events join nearly every frame's spans from ingest to output,
//! each bound inside a span of its own frame. A path that cannot be written
//! fails before the run, naming it. Nothing here measures speed.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A hang guard, not a speed limit.
const LIMIT: Duration = Duration::from_secs(240);
const FRAMES: u64 = 300;
/// The per-frame spans of a model pipeline, one per stage.
const STAGES: [&str; 7] = [
    "ingest",
    "process",
    "ai",
    "model",
    "postprocess",
    "output",
    "overlay",
];

/// The phantom through the tiny model; queues that block, so every frame
/// ingested reaches the output, and no load shedding.
fn definition() -> String {
    format!(
        "[source]\nkind = \"phantom\"\nfps = 60\n\
         [queues.process]\ndepth = 4\npolicy = \"block\"\n\
         [queues.output]\ndepth = 4\npolicy = \"block\"\n\
         [load]\nenabled = false\n\
         [model]\ndir = \"{}\"\nproviders = [\"cpu\"]\nintra_threads = 1\nwarmup_runs = 1\n\
         [[sinks]]\nkind = \"fake\"\n",
        tiny_model().display()
    )
}

fn num(event: &Value, key: &str) -> Option<f64> {
    event.get(key).and_then(Value::as_f64)
}

fn text<'a>(event: &'a Value, key: &str) -> &'a str {
    event.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The frame id a span's args carry (tracing-chrome writes it as text).
fn frame_of(event: &Value) -> Option<u64> {
    match event.get("args")?.get("frame")? {
        Value::String(s) => s.parse().ok(),
        v => v.as_u64(),
    }
}

/// A slice: one "B" and its "E" on one thread.
struct Slice {
    name: String,
    frame: Option<u64>,
    begin: f64,
    end: f64,
}

/// What a trace holds, once checked against the Trace Event Format.
struct Trace {
    /// Slices per (pid, tid).
    slices: HashMap<(u64, u64), Vec<Slice>>,
    /// Thread names per (pid, tid), from "M" thread_name events.
    threads: HashMap<(u64, u64), String>,
    /// Flow events: (ph, id, ts, pid, tid).
    flows: Vec<(String, u64, f64, u64, u64)>,
}

/// Checks `events` against the format; panics naming the first event that breaks it.
fn check_format(events: &[Value]) -> Trace {
    let mut trace = Trace {
        slices: HashMap::new(),
        threads: HashMap::new(),
        flows: Vec::new(),
    };
    let mut open: HashMap<(u64, u64), Vec<Slice>> = HashMap::new();
    let mut last_ts: HashMap<(u64, u64), f64> = HashMap::new();
    for (at, event) in events.iter().enumerate() {
        let ph = text(event, "ph");
        assert!(!ph.is_empty(), "event {at} has no ph: {event}");
        assert!(
            event.get("name").is_some_and(Value::is_string),
            "event {at} has no name: {event}"
        );
        let pid = event.get("pid").and_then(Value::as_u64);
        let tid = event.get("tid").and_then(Value::as_u64);
        let (Some(pid), Some(tid)) = (pid, tid) else {
            panic!("event {at} has no numeric pid and tid: {event}");
        };
        let thread = (pid, tid);
        if ph == "M" {
            // Metadata carries no timestamp (Perfetto rejects negative ones).
            if text(event, "name") == "thread_name" {
                let name = event["args"]["name"].as_str().expect("thread name");
                trace.threads.insert(thread, name.to_owned());
            }
            continue;
        }
        let ts = num(event, "ts").unwrap_or_else(|| panic!("event {at} has no ts: {event}"));
        match ph {
            "B" | "E" => {
                let last = last_ts.entry(thread).or_insert(f64::MIN);
                assert!(
                    ts >= *last,
                    "event {at} goes back in time on {thread:?}: {event}"
                );
                *last = ts;
                let stack = open.entry(thread).or_default();
                if ph == "B" {
                    stack.push(Slice {
                        name: text(event, "name").to_owned(),
                        frame: frame_of(event),
                        begin: ts,
                        end: f64::NAN,
                    });
                } else {
                    let mut slice = stack.pop().unwrap_or_else(|| {
                        panic!("event {at} ends nothing on {thread:?}: {event}")
                    });
                    assert_eq!(
                        slice.name,
                        text(event, "name"),
                        "event {at} ends another span"
                    );
                    slice.end = ts;
                    trace.slices.entry(thread).or_default().push(slice);
                }
            }
            "X" => assert!(num(event, "dur").is_some(), "event {at}: X without dur"),
            "s" | "t" | "f" => {
                let id = event["id"].as_u64().expect("a flow event's id");
                assert_eq!(text(event, "cat"), "frame", "event {at}");
                trace.flows.push((ph.to_owned(), id, ts, pid, tid));
            }
            _ => {}
        }
    }
    for (thread, stack) in &open {
        let names: Vec<_> = stack.iter().map(|s| &s.name).collect();
        assert!(stack.is_empty(), "{thread:?} leaves {names:?} open");
    }
    trace
}

#[test]
fn a_traced_run_shows_every_stage_and_follows_each_frame_across_threads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace_path = dir.path().join("traces/run.json");
    let pipeline = write_definition(dir.path(), &definition());
    let child = run_command(
        dir.path(),
        &pipeline,
        &[
            "--frames",
            &FRAMES.to_string(),
            "--trace",
            trace_path.to_str().expect("utf-8 path"),
        ],
    )
    .env("ORT_DYLIB_PATH", ort_dylib())
    .env_remove("RUST_LOG")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("start sonoflow");
    let output = wait_with_limit(child, LIMIT);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report = read_report(dir.path()).expect("report");
    assert_eq!(u64_at(&report, "/frames_in"), FRAMES);

    let bytes = std::fs::read(&trace_path).expect("the trace is written");
    eprintln!("a {FRAMES}-frame trace: {} bytes", bytes.len());
    let json: Value = serde_json::from_slice(&bytes).expect("the trace is JSON");
    let events = match &json {
        Value::Array(events) => events,
        Value::Object(o) => o["traceEvents"].as_array().expect("traceEvents"),
        other => panic!("neither an array nor traceEvents: {other}"),
    };
    let trace = check_format(events);
    let leftovers: Vec<_> = std::fs::read_dir(trace_path.parent().expect("folder"))
        .expect("folder")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");

    // Every stage, each on its own named thread's track.
    let mut stage_threads: HashMap<&str, BTreeSet<String>> = HashMap::new();
    let mut frames: BTreeSet<u64> = BTreeSet::new();
    for (thread, slices) in &trace.slices {
        let name = trace.threads.get(thread).cloned().unwrap_or_default();
        for s in slices {
            if let (Some(stage), Some(frame)) = (STAGES.iter().find(|st| **st == s.name), s.frame) {
                stage_threads.entry(stage).or_default().insert(name.clone());
                frames.insert(frame);
            }
        }
    }
    for stage in STAGES {
        assert!(
            stage_threads.contains_key(stage),
            "no {stage:?} span with a frame id; stages seen: {stage_threads:?}"
        );
    }
    let only = |stage: &str, thread: &str| {
        assert_eq!(
            stage_threads[stage],
            BTreeSet::from([thread.to_owned()]),
            "{stage} runs on {thread}"
        );
    };
    only("ingest", "sonoflow-ingest");
    only("process", "sonoflow-process");
    only("ai", "sonoflow-ai");
    only("model", "sonoflow-ai");
    only("postprocess", "sonoflow-ai");
    only("output", "sonoflow-output");
    only("overlay", "sonoflow-output");
    let names: BTreeSet<_> = trace.threads.values().collect();
    assert_eq!(
        names.len(),
        trace.threads.len(),
        "one track per thread: {names:?}"
    );
    assert!(
        frames.len() as u64 >= FRAMES,
        "{} frames have spans",
        frames.len()
    );

    // Flows: one start and one end per frame, each bound inside a span of
    // that frame on the thread it names.
    let mut starts: HashMap<u64, u32> = HashMap::new();
    let mut ends: HashMap<u64, u32> = HashMap::new();
    for (ph, id, ts, pid, tid) in &trace.flows {
        match ph.as_str() {
            "s" => *starts.entry(*id).or_default() += 1,
            "f" => *ends.entry(*id).or_default() += 1,
            _ => {}
        }
        let inside = trace.slices[&(*pid, *tid)]
            .iter()
            .any(|s| s.frame == Some(*id) && s.begin < *ts && *ts < s.end);
        assert!(
            inside,
            "flow {ph} of frame {id} at {ts} is in none of its spans"
        );
    }
    let followed = frames
        .iter()
        .filter(|f| starts.get(f) == Some(&1) && ends.get(f) == Some(&1))
        .count();
    assert!(
        followed * 10 >= frames.len() * 9,
        "{followed} of {} frames can be followed from start to end",
        frames.len()
    );
    assert!(
        starts.values().chain(ends.values()).all(|n| *n == 1),
        "a frame's flow starts and ends once"
    );
}

#[test]
fn a_trace_path_that_cannot_be_written_fails_before_the_run_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A file where a folder should be: unwritable even for root.
    let blocker = dir.path().join("not-a-folder");
    std::fs::write(&blocker, "").expect("write");
    let trace_path = blocker.join("trace.json");
    let pipeline = write_definition(dir.path(), &definition());
    let child = run_command(
        dir.path(),
        &pipeline,
        &[
            "--frames",
            "5",
            "--trace",
            trace_path.to_str().expect("utf-8 path"),
        ],
    )
    .env("ORT_DYLIB_PATH", ort_dylib())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("start sonoflow");
    let output = wait_with_limit(child, LIMIT);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("--trace {}", trace_path.display())),
        "names the path: {stderr}"
    );
    assert!(
        stderr.contains("choose a writable path"),
        "says the fix: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Before the run: no report was written, not even the empty one made
    // when the run starts.
    assert!(!dir.path().join("report.json").exists(), "{stderr}");
}
