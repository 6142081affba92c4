//! `sonoflow run --trace PATH`: the run's spans as a Chrome trace (the
//! Trace Event Format's JSON array) that ui.perfetto.dev and chrome://tracing
//! open; see docs/tracing.md.
//!
//! While the run goes, tracing-chrome's layer ([`layer`]) writes a "B"/"E"
//! pair for each span on its thread's track, and each thread's name as "M"
//! metadata. After the run, [`add_flows`] reads the file once, event by
//! event, and writes it anew with flow events ("s", "t", "f"; `id` = the
//! frame id) joining each frame's spans across threads, so that one frame
//! can be followed from ingest to output; the new file replaces the old with
//! a rename.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::de::{Deserializer as _, SeqAccess, Visitor};
use serde_json::{json, Value};
use tracing::{Level, Metadata, Subscriber};
use tracing_chrome::{ChromeLayerBuilder, FlushGuard, TraceStyle};
use tracing_subscriber::filter::FilterFn;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The flow events' name and category: Perfetto joins v1 flow events by
/// (id, category, name), so all three must be the same along one frame.
const FLOW: &str = "frame";

/// Creates (or truncates) the trace file before the run starts, so that an
/// unwritable path fails in the first second, naming the path and the fix.
pub fn create(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| {
            format!(
                "--trace {}: cannot create the folder {}; choose a writable path",
                path.display(),
                dir.display()
            )
        })?;
    }
    File::create(path).with_context(|| {
        format!(
            "--trace {}: the trace cannot be written there; choose a writable path",
            path.display()
        )
    })
}

/// What the trace records: every span of sonoflow's own crates, the
/// per-frame stage spans (at TRACE) among them, and whatever else is at
/// INFO or above (the run's log lines become instant events). Other
/// crates' debug and trace output stays out; RUST_LOG does not apply.
fn recorded(meta: &Metadata<'_>) -> bool {
    (meta.is_span() && meta.target().starts_with("sonoflow")) || *meta.level() <= Level::INFO
}

/// The layer that writes the trace to `file`, one track per thread, with
/// each span's fields (the frame id among them) as its args. Keep the guard
/// until the run has finished; dropping it completes the file.
pub fn layer<S>(file: File) -> (impl Layer<S>, FlushGuard)
where
    S: Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
{
    let (chrome, guard) = ChromeLayerBuilder::new()
        .writer(file)
        .include_args(true)
        .include_locations(false)
        .trace_style(TraceStyle::Threaded)
        .build();
    (chrome.with_filter(FilterFn::new(recorded)), guard)
}

/// What [`add_flows`] found and added.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FlowSummary {
    /// Events read from the trace.
    pub events: u64,
    /// Frames with at least two spans, each now one flow.
    pub frames: u64,
    /// Flow events added (one per span of those frames).
    pub flow_events: u64,
    /// Spans still open when the trace ended, closed at its last timestamp.
    pub closed: u64,
}

/// Rewrites the trace at `path` with flow events joining each frame's spans
/// (spans whose args carry `frame`): "s" on the first, "t" on each one
/// between, "f" on the last, in time order. Threads are renumbered from 1,
/// the process is named, and spans left open (a thread still inside one
/// when the run ended) are closed at the trace's last timestamp, so every
/// "B" has its "E". Reads one event at a time; what it keeps is a few
/// numbers per frame span. The file is replaced only once the new one is
/// complete.
pub fn add_flows(path: &Path) -> Result<FlowSummary> {
    let input = File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let temp = temp_path(path);
    let written = (|| {
        let out = File::create(&temp).with_context(|| format!("creating {}", temp.display()))?;
        let mut rewrite = Rewrite::new(BufWriter::new(out));
        rewrite.begin()?;
        let mut events = serde_json::Deserializer::from_reader(BufReader::new(input));
        let read = (&mut events)
            .deserialize_seq(EventStream(&mut rewrite))
            .and_then(|()| events.end());
        if let Some(err) = rewrite.failed.take() {
            return Err(err.context(format!("writing {}", temp.display())));
        }
        read.with_context(|| format!("{} is not a JSON array of trace events", path.display()))?;
        let summary = rewrite.finish()?;
        std::fs::rename(&temp, path)
            .with_context(|| format!("replacing {} with {}", path.display(), temp.display()))?;
        Ok(summary)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// A hidden file beside `path`, so that the rename stays on one file system.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "trace.json".to_owned());
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Feeds the array's events to a [`Rewrite`] one at a time.
struct EventStream<'a, W: Write>(&'a mut Rewrite<W>);

impl<'de, W: Write> Visitor<'de> for EventStream<'_, W> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of trace events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(event) = seq.next_element::<Value>()? {
            if let Err(err) = self.0.event(event) {
                // Not the input's fault: kept for `add_flows` to report.
                self.0.failed = Some(err);
                return Err(serde::de::Error::custom(
                    "the rewritten trace could not be written",
                ));
            }
        }
        Ok(())
    }
}

/// A span that has begun and not yet ended on its thread.
struct Open {
    name: String,
    /// Its index in [`Rewrite::spans`] when it is a frame's span.
    frame_span: Option<usize>,
}

/// One span of one frame: where its flow event goes.
struct FrameSpan {
    frame: u64,
    pid: u64,
    tid: u64,
    begin: f64,
    /// Where the span's own time first stops: its end, or the start of its
    /// first child, whichever comes first.
    own_until: Option<f64>,
}

impl FrameSpan {
    /// The middle of the span's own first stretch. Flow events bind to the
    /// slice open on their thread at their timestamp; at the span's very
    /// start the viewer could still see its parent (events at one
    /// timestamp have no order), and later a child could be open.
    fn flow_ts(&self, trace_end: f64) -> f64 {
        let until = self.own_until.unwrap_or(trace_end).max(self.begin);
        self.begin + (until - self.begin) / 2.0
    }
}

struct Rewrite<W: Write> {
    out: W,
    written: u64,
    read: u64,
    /// Open spans per (pid, tid), innermost last.
    open: HashMap<(u64, u64), Vec<Open>>,
    spans: Vec<FrameSpan>,
    named: Vec<u64>,
    last_ts: f64,
    /// A write that failed while the input was being read.
    failed: Option<anyhow::Error>,
}

impl<W: Write> Rewrite<W> {
    fn new(out: W) -> Self {
        Self {
            out,
            written: 0,
            read: 0,
            open: HashMap::new(),
            spans: Vec::new(),
            named: Vec::new(),
            last_ts: 0.0,
            failed: None,
        }
    }

    fn begin(&mut self) -> Result<()> {
        self.out.write_all(b"[\n")?;
        Ok(())
    }

    fn write(&mut self, event: &Value) -> Result<()> {
        if self.written > 0 {
            self.out.write_all(b",\n")?;
        }
        serde_json::to_writer(&mut self.out, event)?;
        self.written += 1;
        Ok(())
    }

    fn event(&mut self, mut event: Value) -> Result<()> {
        self.read += 1;
        // tracing-chrome numbers threads from 0; Perfetto has merged thread
        // 0 into thread 1 (tracing-chrome issue #32), so start at 1.
        if let Some(tid) = event.get("tid").and_then(Value::as_u64) {
            event["tid"] = json!(tid + 1);
        }
        let pid = event.get("pid").and_then(Value::as_u64);
        let tid = event.get("tid").and_then(Value::as_u64);
        let ts = event.get("ts").and_then(Value::as_f64);
        if let Some(pid) = pid.filter(|p| !self.named.contains(p)) {
            // On the first thread seen in it: a thread of its own would be
            // a track of its own.
            self.named.push(pid);
            self.write(&json!({
                "name": "process_name", "ph": "M", "pid": pid, "tid": tid.unwrap_or(1),
                "args": { "name": "sonoflow" },
            }))?;
        }
        if let Some(ts) = ts {
            self.last_ts = self.last_ts.max(ts);
        }
        match (event.get("ph").and_then(Value::as_str), pid, tid, ts) {
            (Some("B"), Some(pid), Some(tid), Some(ts)) => {
                let frame = event
                    .get("args")
                    .and_then(|a| a.get("frame"))
                    .and_then(frame_id);
                let frame_span = frame.map(|frame| {
                    self.spans.push(FrameSpan {
                        frame,
                        pid,
                        tid,
                        begin: ts,
                        own_until: None,
                    });
                    self.spans.len() - 1
                });
                let stack = self.open.entry((pid, tid)).or_default();
                if let Some(parent) = stack.last().and_then(|o| o.frame_span) {
                    let parent = &mut self.spans[parent];
                    parent.own_until.get_or_insert(ts);
                }
                let name = event.get("name").and_then(Value::as_str).unwrap_or("");
                stack.push(Open {
                    name: name.to_owned(),
                    frame_span,
                });
            }
            (Some("E"), Some(pid), Some(tid), Some(ts)) => {
                let closed = self.open.get_mut(&(pid, tid)).and_then(Vec::pop);
                if let Some(index) = closed.and_then(|o| o.frame_span) {
                    self.spans[index].own_until.get_or_insert(ts);
                }
            }
            _ => {}
        }
        self.write(&event)
    }

    fn finish(mut self) -> Result<FlowSummary> {
        let end = self.last_ts;
        let mut summary = FlowSummary {
            events: self.read,
            ..FlowSummary::default()
        };
        // Spans still open: innermost first, at the last timestamp.
        let mut open: Vec<_> = std::mem::take(&mut self.open).into_iter().collect();
        open.sort_by_key(|(thread, _)| *thread);
        for ((pid, tid), stack) in open {
            for span in stack.iter().rev() {
                self.write(&json!({
                    "name": span.name, "ph": "E", "ts": end, "pid": pid, "tid": tid,
                }))?;
                summary.closed += 1;
            }
        }
        let mut order: Vec<(u64, f64, usize)> = self
            .spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.frame, s.flow_ts(end), i))
            .collect();
        order.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        for group in order.chunk_by(|a, b| a.0 == b.0) {
            if group.len() < 2 {
                continue;
            }
            summary.frames += 1;
            for (at, &(frame, ts, index)) in group.iter().enumerate() {
                let span = &self.spans[index];
                let ph = match at {
                    0 => "s",
                    n if n + 1 == group.len() => "f",
                    _ => "t",
                };
                let mut flow = json!({
                    "name": FLOW, "cat": FLOW, "ph": ph, "id": frame,
                    "ts": ts, "pid": span.pid, "tid": span.tid,
                });
                if ph == "f" {
                    // Bind to the enclosing slice, not the next one to start.
                    flow["bp"] = json!("e");
                }
                self.write(&flow)?;
                summary.flow_events += 1;
            }
        }
        self.out.write_all(b"\n]\n")?;
        self.out.flush()?;
        Ok(summary)
    }
}

/// A frame id from a span's args: tracing-chrome writes field values as
/// their `Debug` text ("12"); a number is taken as it is.
fn frame_id(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn args(event: &Value) -> &Map<String, Value> {
        event["args"].as_object().expect("args")
    }

    fn rewrite(events: &[Value]) -> (Vec<Value>, FlowSummary) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("trace.json");
        std::fs::write(&path, serde_json::to_string(events).expect("json")).expect("write");
        let summary = add_flows(&path).expect("add flows");
        let text = std::fs::read_to_string(&path).expect("read");
        let leftovers = std::fs::read_dir(dir.path()).expect("dir").count();
        assert_eq!(leftovers, 1, "the temporary file is gone");
        (serde_json::from_str(&text).expect("still JSON"), summary)
    }

    fn b(name: &str, tid: u64, ts: f64, frame: Option<u64>) -> Value {
        let mut e = json!({"ph": "B", "pid": 1, "tid": tid, "ts": ts, "name": name});
        if let Some(frame) = frame {
            e["args"] = json!({ "frame": frame.to_string() });
        }
        e
    }

    fn e(name: &str, tid: u64, ts: f64) -> Value {
        json!({"ph": "E", "pid": 1, "tid": tid, "ts": ts, "name": name})
    }

    fn flows(events: &[Value]) -> Vec<(&str, u64, f64, u64)> {
        events
            .iter()
            .filter(|e| e["cat"] == FLOW)
            .map(|e| {
                (
                    e["ph"].as_str().expect("ph"),
                    e["id"].as_u64().expect("id"),
                    e["ts"].as_f64().expect("ts"),
                    e["tid"].as_u64().expect("tid"),
                )
            })
            .collect()
    }

    #[test]
    fn a_frame_is_joined_across_threads_in_time_order() {
        let events = [
            json!({"ph": "M", "pid": 1, "tid": 0, "name": "thread_name", "args": {"name": "main"}}),
            b("ingest", 0, 10.0, Some(7)),
            e("ingest", 0, 20.0),
            b("process", 1, 30.0, Some(7)),
            // A child span: the flow stays in the parent's own time before it.
            b("model", 1, 34.0, Some(7)),
            e("model", 1, 50.0),
            e("process", 1, 60.0),
            b("output", 2, 70.0, Some(7)),
            e("output", 2, 80.0),
            b("ingest", 0, 90.0, Some(8)),
            e("ingest", 0, 100.0),
        ];
        let (out, summary) = rewrite(&events);
        assert_eq!(summary.events, events.len() as u64);
        assert_eq!(summary.frames, 1, "frame 8 has one span: no flow");
        assert_eq!(
            flows(&out),
            [
                ("s", 7, 15.0, 1),
                ("t", 7, 32.0, 2),
                ("t", 7, 42.0, 2),
                ("f", 7, 75.0, 3),
            ]
        );
        let end = out.iter().find(|e| e["ph"] == "f").expect("f");
        assert_eq!(end["bp"], "e");
        assert_eq!(end["name"], FLOW);
        // Threads start at 1; the thread's name moved with it.
        let thread = out.iter().find(|e| e["name"] == "thread_name").expect("M");
        assert_eq!(
            (thread["tid"].as_u64(), &args(thread)["name"]),
            (Some(1), &json!("main"))
        );
        let process = out
            .iter()
            .find(|e| e["name"] == "process_name")
            .expect("named");
        assert_eq!(args(process)["name"], "sonoflow");
    }

    #[test]
    fn spans_left_open_are_closed_at_the_end() {
        let events = [
            b("run", 0, 1.0, None),
            b("ingest", 0, 2.0, Some(1)),
            b("process", 1, 3.0, Some(1)),
            e("process", 1, 9.0),
        ];
        let (out, summary) = rewrite(&events);
        assert_eq!(summary.closed, 2);
        let ends: Vec<_> = out
            .iter()
            .filter(|e| e["ph"] == "E" && e["tid"] == 1)
            .map(|e| (e["name"].as_str().expect("name"), e["ts"].as_f64()))
            .collect();
        assert_eq!(ends, [("ingest", Some(9.0)), ("run", Some(9.0))]);
        assert_eq!(
            flows(&out),
            [("s", 1, 5.5, 1), ("f", 1, 6.0, 2)],
            "the open span's own time runs to the trace's end"
        );
    }

    #[test]
    fn what_is_not_a_trace_is_left_as_it_was() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("trace.json");
        std::fs::write(&path, "{\"not\": \"an array\"}").expect("write");
        let err = add_flows(&path).expect_err("not a trace");
        assert!(format!("{err:#}").contains("not a JSON array"), "{err:#}");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text, "{\"not\": \"an array\"}");
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
    }
}
