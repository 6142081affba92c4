//! `--findings-jsonl PATH`: one line per frame that leaves the pipeline,
//! the frame's `sonoflow.v1.FrameResult` in the canonical protobuf JSON
//! mapping (docs/protocol.md): id, timestamps, calibration and findings
//! (label, score, box, contour, calipers in mm with their ±), without masks.
//!
//! A [`FrameTap`] copies what the line needs off each frame; this module's
//! writer thread converts, serialises and writes it, so the frame path never
//! touches the file. A live run that outpaces the disk drops lines (counted
//! in the report); a file run blocks instead, so every frame has its line.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam::channel::Receiver;
use serde::Serialize;
use sonoflow_core::Recycled;
use sonoflow_protocol::convert::{frame_result, FrameStyle, Scratch};
use tracing::warn;

use crate::error::RunError;
use crate::frame_tap::{Entry, FrameTap};

/// Lines waiting for the writer before a live run starts dropping them.
const QUEUED_LINES: usize = 64;

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

/// The writer thread and what it reports.
pub struct FindingsLog {
    path: PathBuf,
    lines: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    writer: Option<JoinHandle<Result<(), String>>>,
}

impl FindingsLog {
    /// Creates `path` (before any frame flows: a path that cannot be written
    /// fails the run at once) and returns the tap that feeds its writer.
    /// `block`: wait for the writer rather than drop lines.
    pub(crate) fn start(
        path: &Path,
        finding_name: &str,
        block: bool,
    ) -> Result<(Self, FrameTap), RunError> {
        let file = File::create(path).map_err(|e| RunError::FindingsLog {
            path: path.display().to_string(),
            cause: e.to_string(),
        })?;
        let dropped = Arc::new(AtomicU64::new(0));
        let (tap, queue) = FrameTap::new(QUEUED_LINES, block, Arc::clone(&dropped));
        let lines = Arc::new(AtomicU64::new(0));
        let writer = std::thread::Builder::new()
            .name("sonoflow-findings".into())
            .spawn({
                let (lines, label) = (Arc::clone(&lines), finding_name.to_owned());
                move || write_lines(BufWriter::new(file), &queue, &label, &lines)
            })
            .map_err(|e| RunError::Thread("findings log", e.to_string()))?;
        let log = Self {
            path: path.to_owned(),
            lines,
            dropped,
            writer: Some(writer),
        };
        Ok((log, tap))
    }

    /// Waits for the writer (the tap must be gone: its end of the queue
    /// closes the file) and reports.
    pub fn finish(mut self) -> FindingsLogReport {
        let error = self.writer.take().and_then(|writer| match writer.join() {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some("the findings writer panicked".into()),
        });
        if let Some(e) = &error {
            warn!("findings log {}: {e}", self.path.display());
        }
        FindingsLogReport {
            path: self.path.clone(),
            lines: self.lines.load(Ordering::Relaxed),
            dropped_lines: self.dropped.load(Ordering::Relaxed),
            error,
        }
    }
}

/// The writer thread: one line per entry until the queue closes.
fn write_lines(
    mut out: BufWriter<File>,
    queue: &Receiver<Recycled<Entry>>,
    label: &str,
    lines: &AtomicU64,
) -> Result<(), String> {
    let style = FrameStyle {
        label,
        masks: false,
    };
    let mut scratch = Scratch::default();
    for entry in queue.iter() {
        let result = frame_result(&entry.parts(), &style, &mut scratch);
        serde_json::to_writer(&mut out, &result)
            .map_err(|e| format!("cannot write a line: {e}"))?;
        out.write_all(b"\n")
            .map_err(|e| format!("cannot write a line: {e}"))?;
        lines.fetch_add(1, Ordering::Relaxed);
    }
    out.flush().map_err(|e| format!("cannot flush: {e}"))
}
