//! `--findings-jsonl PATH`: one JSON line per frame that leaves the
//! pipeline, with its id, timestamps, calibration and findings (class,
//! score, box, contour, calipers in mm with their ±).
//!
//! The output's sink is wrapped: for each frame, what the line needs is
//! copied into a recycled entry (no allocation once warm) and handed to a
//! writer thread, which serialises and writes it; the frame path never
//! touches the file. A live run that outpaces the disk drops lines (counted
//! in the report); a file run blocks instead, so every frame has its line.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::channel::{bounded, Receiver, Sender, TrySendError};
use serde::Serialize;
use sonoflow_core::annotations::{AiVerdict, FindingKind, FrameFinding, Measurement};
use sonoflow_core::findings::Point;
use sonoflow_core::{
    Calibration, Frame, FrameFindings, FrameId, Recycled, Recycler, Reusable, Timestamp,
};
use sonoflow_pipeline::{Delivery, FrameSink, StageError};
use tracing::warn;

use crate::error::RunError;

/// Lines waiting for the writer before a live run starts dropping them.
const QUEUED_LINES: usize = 64;

/// What one line needs, copied off the frame.
#[derive(Default)]
struct Entry {
    frame: FrameId,
    captured: Timestamp,
    pts: Option<Duration>,
    calibration: Option<Arc<Calibration>>,
    /// Whether the frame carried findings (its own or late ones).
    has_findings: bool,
    findings: FrameFindings,
}

impl Reusable for Entry {
    fn reset(&mut self) {
        self.calibration = None;
        self.has_findings = false;
        self.findings.reset();
    }
}

/// The `findings_log` section of the run report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingsLogReport {
    pub path: PathBuf,
    /// Lines written.
    pub lines: u64,
    /// Lines a live run dropped because the writer was behind.
    pub dropped_lines: u64,
    /// Why writing stopped, if it did.
    pub error: Option<String>,
}

/// Counters shared by the sink wrapper and the writer.
#[derive(Debug, Default)]
struct Counters {
    lines: AtomicU64,
    dropped: AtomicU64,
}

/// The writer thread and what it reports.
pub struct FindingsLog {
    path: PathBuf,
    counters: Arc<Counters>,
    writer: Option<JoinHandle<Result<(), String>>>,
    error: Option<String>,
}

impl FindingsLog {
    /// Creates `path` (before any frame flows: a path that cannot be written
    /// fails the run at once) and wraps `inner` so each frame it takes gets
    /// its line. `block`: wait for the writer rather than drop lines.
    pub fn wrap(
        path: &Path,
        finding_name: &str,
        block: bool,
        inner: Box<dyn FrameSink>,
    ) -> Result<(Self, Box<dyn FrameSink>), RunError> {
        let file = File::create(path).map_err(|e| RunError::FindingsLog {
            path: path.display().to_string(),
            cause: e.to_string(),
        })?;
        let (lines, queue) = bounded::<Recycled<Entry>>(QUEUED_LINES);
        let counters = Arc::new(Counters::default());
        let entries = Recycler::new(QUEUED_LINES + 2);
        entries.prefill(|| Entry {
            findings: FrameFindings::preallocated(),
            ..Entry::default()
        });
        let writer = std::thread::Builder::new()
            .name("sonoflow-findings".into())
            .spawn({
                let (counters, class) = (Arc::clone(&counters), finding_name.to_owned());
                move || write_lines(BufWriter::new(file), &queue, &class, &counters)
            })
            .map_err(|e| RunError::Thread("findings log", e.to_string()))?;
        let sink = LoggedSink {
            inner,
            lines: Some(lines),
            entries,
            block,
            counters: Arc::clone(&counters),
        };
        let log = Self {
            path: path.to_owned(),
            counters,
            writer: Some(writer),
            error: None,
        };
        Ok((log, Box::new(sink)))
    }

    /// Waits for the writer (the sink wrapper must be gone: its end of the
    /// queue closes the file) and reports.
    pub fn finish(mut self) -> FindingsLogReport {
        if let Some(writer) = self.writer.take() {
            self.error = match writer.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some("the findings writer panicked".into()),
            };
        }
        if let Some(e) = &self.error {
            warn!("findings log {}: {e}", self.path.display());
        }
        FindingsLogReport {
            path: self.path.clone(),
            lines: self.counters.lines.load(Ordering::Relaxed),
            dropped_lines: self.counters.dropped.load(Ordering::Relaxed),
            error: self.error.clone(),
        }
    }
}

/// The output's sink, copying each frame's line for the writer.
struct LoggedSink {
    inner: Box<dyn FrameSink>,
    /// None after `finish`: the writer then ends.
    lines: Option<Sender<Recycled<Entry>>>,
    entries: Recycler<Entry>,
    block: bool,
    counters: Arc<Counters>,
}

impl LoggedSink {
    fn log(&mut self, frame: &Frame) {
        let Some(lines) = &self.lines else {
            return;
        };
        let mut entry = self.entries.acquire();
        entry.frame = frame.id;
        entry.captured = frame.stamps.captured;
        entry.pts = frame.source_pts;
        entry.calibration = frame.calibration.clone();
        entry.has_findings = frame.findings.is_some();
        if let Some(found) = frame.findings.as_deref() {
            entry.findings.copy_from(found);
        }
        let sent = if self.block {
            lines.send(entry).is_ok()
        } else {
            match lines.try_send(entry) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(TrySendError::Disconnected(_)) => false,
            }
        };
        if !sent {
            // The writer stopped (its error is in the report): stop copying.
            self.lines = None;
        }
    }
}

impl FrameSink for LoggedSink {
    fn push(&mut self, frame: &Frame) -> Result<Delivery, StageError> {
        let delivery = self.inner.push(frame)?;
        self.log(frame);
        Ok(delivery)
    }

    fn finish(&mut self) -> Result<(), StageError> {
        self.lines = None;
        self.inner.finish()
    }
}

/// The writer thread: one line per entry until the queue closes.
fn write_lines(
    mut out: BufWriter<File>,
    queue: &Receiver<Recycled<Entry>>,
    class: &str,
    counters: &Counters,
) -> Result<(), String> {
    for entry in queue.iter() {
        serde_json::to_writer(&mut out, &Line::of(&entry, class))
            .map_err(|e| format!("cannot write a line: {e}"))?;
        out.write_all(b"\n")
            .map_err(|e| format!("cannot write a line: {e}"))?;
        counters.lines.fetch_add(1, Ordering::Relaxed);
    }
    out.flush().map_err(|e| format!("cannot flush: {e}"))
}

/// One line as written.
#[derive(Serialize)]
struct Line<'a> {
    frame: u64,
    /// Capture time on the run's clock, ms.
    captured_ms: f64,
    /// The source's presentation time, ms (null when it gave none).
    pts_ms: Option<f64>,
    /// The frame the findings were computed on (an earlier one when the
    /// model was behind); null: no findings rode on this frame.
    findings_frame: Option<u64>,
    /// "valid", "invalid_output" (findings withheld, never "nothing
    /// there"), or null with no findings.
    ai: Option<AiVerdict>,
    calibration: Option<&'a Calibration>,
    findings: Vec<LineFinding<'a>>,
}

#[derive(Serialize)]
struct LineFinding<'a> {
    kind: FindingKind,
    class: &'a str,
    track: u32,
    score: f32,
    /// x0, y0, x1, y1 in frame pixels.
    #[serde(rename = "box")]
    bbox: [f32; 4],
    area_px: u32,
    contour: Vec<[f32; 2]>,
    long_axis: Option<LineCaliper>,
    short_axis: Option<LineCaliper>,
}

#[derive(Serialize)]
struct LineCaliper {
    a: [f32; 2],
    b: [f32; 2],
    mm: f64,
    plus_minus_mm: f64,
}

fn xy(p: Point) -> [f32; 2] {
    [p.x, p.y]
}

impl LineCaliper {
    fn of(m: &Measurement) -> Self {
        Self {
            a: xy(m.caliper.a),
            b: xy(m.caliper.b),
            mm: m.caliper.length_mm,
            plus_minus_mm: m.uncertainty_mm,
        }
    }
}

impl<'a> Line<'a> {
    fn of(e: &'a Entry, class: &'a str) -> Self {
        let finding = |f: &FrameFinding| LineFinding {
            kind: f.kind,
            class,
            track: f.track,
            score: f.confidence,
            bbox: [f.bbox.x0, f.bbox.y0, f.bbox.x1, f.bbox.y1],
            area_px: f.area_px,
            contour: e.findings.contour(f).iter().map(|p| xy(*p)).collect(),
            long_axis: f.long_axis.as_ref().map(LineCaliper::of),
            short_axis: f.short_axis.as_ref().map(LineCaliper::of),
        };
        Self {
            frame: e.frame.0,
            captured_ms: e.captured.0 as f64 / 1e6,
            pts_ms: e.pts.map(|d| d.as_secs_f64() * 1e3),
            findings_frame: e.has_findings.then_some(e.findings.frame.0),
            ai: e.has_findings.then_some(e.findings.verdict),
            calibration: e.calibration.as_deref(),
            findings: e.findings.findings.iter().map(finding).collect(),
        }
    }
}
