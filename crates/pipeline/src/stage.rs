//! Stage threads. Each stage pops a frame from its inbound hand-off, stamps
//! it on entry and exit with the injected clock, does its work and passes it
//! on. A stage ends when its inbound hand-off is closed and drained; ending
//! closes its outbound hand-off in turn, so a run drains front to back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sonoflow_core::alloc_count::FramePathGuard;
use sonoflow_core::{Clock, Frame, FrameFormat, Stage};
use tracing::{debug, warn};

use crate::handoff::{Receiver, RecvError, Sender};
use crate::metrics::PipelineMetrics;

/// How long a stage waits for a frame before checking whether to stop.
const POLL: Duration = Duration::from_millis(100);

/// An error inside a stage, with the stage's own cause.
#[derive(Debug, thiserror::Error)]
#[error("{stage} stage: {source}")]
pub struct StageError {
    pub stage: &'static str,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl StageError {
    pub fn new(stage: Stage, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            stage: stage.name(),
            source: source.into(),
        }
    }
}

/// The per-frame work of the process stage (inference goes here).
pub trait Processor: Send {
    /// Works on one frame in place. An error drops this frame only.
    fn process(&mut self, frame: &mut Frame) -> Result<(), StageError>;
}

/// Does nothing: the foundation's process stage.
#[derive(Debug, Default, Clone, Copy)]
pub struct PassThrough;

impl Processor for PassThrough {
    fn process(&mut self, _frame: &mut Frame) -> Result<(), StageError> {
        Ok(())
    }
}

/// What a sink did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    /// The sink was full and dropped the frame rather than wait.
    Dropped,
}

/// Where finished frames go (the output crate's GStreamer appsrc).
pub trait FrameSink: Send {
    fn push(&mut self, frame: &Frame) -> Result<Delivery, StageError>;
    /// No more frames: flush and finalise (e.g. write the MP4 index).
    fn finish(&mut self) -> Result<(), StageError>;
}

/// Draws a frame for the sinks (the overlay): the frame's own pixels,
/// converted to the painter's format, with whatever it adds on top.
/// Runs on the output thread, once per frame the sinks take.
pub trait Painter: Send {
    /// The format frames of `input` are drawn in.
    fn format_for(&self, input: FrameFormat) -> FrameFormat;
    /// Draws `frame` into `target`, which holds `format_for(frame.format).len()` bytes.
    fn paint(&mut self, frame: &Frame, target: &mut [u8]);
}

/// Asks the stages of a run to stop early (Ctrl-C, frame limit).
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn stop(&self) {
        self.0.store(true, Ordering::Release);
    }
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Runs the process stage until its input closes. Frames whose processing
/// fails are dropped and counted; the stage goes on.
pub fn run_process_stage(
    input: Receiver<Frame>,
    output: Sender<Frame>,
    mut processor: Box<dyn Processor>,
    metrics: Arc<PipelineMetrics>,
    clock: Arc<dyn Clock>,
) {
    let mut failures = 0u64;
    loop {
        let mut frame = match input.recv_timeout(POLL) {
            Ok(frame) => frame,
            Err(RecvError::Timeout) => continue,
            Err(RecvError::Closed) => break,
        };
        let _guard = FramePathGuard::enter();
        let _span = tracing::trace_span!("process", frame = frame.id.0).entered();
        frame.stamps.enter(Stage::Process, clock.now());
        if let Err(err) = processor.process(&mut frame) {
            failures += 1;
            metrics.dropped_by(Stage::Process);
            // Log the first failure and then every hundredth, not every frame.
            if failures == 1 || failures.is_multiple_of(100) {
                warn!(frame = frame.id.0, failures, "dropping frame: {err}");
            }
            continue;
        }
        let left = clock.now();
        frame.stamps.leave(Stage::Process, left);
        if let Some(t) = frame.stamps.time_in(Stage::Process) {
            metrics.stage_time(Stage::Process, t);
        }
        if output.send(frame).is_err() {
            debug!("process stage: output stage has stopped");
            break;
        }
    }
}

/// Runs the output stage until its input closes or `limit` frames are out,
/// then finishes the sink. A sink error stops the run (through `stop`);
/// the error is returned by the sink's `finish`.
pub fn run_output_stage(
    input: Receiver<Frame>,
    mut sink: Box<dyn FrameSink>,
    metrics: Arc<PipelineMetrics>,
    clock: Arc<dyn Clock>,
    limit: Option<u64>,
    stop: StopFlag,
) -> Result<(), StageError> {
    let mut sink_failures = 0u64;
    loop {
        let mut frame = match input.recv_timeout(POLL) {
            Ok(frame) => frame,
            Err(RecvError::Timeout) => continue,
            Err(RecvError::Closed) => break,
        };
        let _guard = FramePathGuard::enter();
        let _span = tracing::trace_span!("output", frame = frame.id.0).entered();
        frame.stamps.enter(Stage::Output, clock.now());
        match sink.push(&frame) {
            Ok(Delivery::Delivered) => {
                let handed = clock.now();
                frame.stamps.leave(Stage::Output, handed);
                if let Some(t) = frame.stamps.time_in(Stage::Output) {
                    metrics.stage_time(Stage::Output, t);
                }
                let latency = handed.saturating_since(frame.stamps.captured);
                metrics.frame_out(handed, latency);
            }
            Ok(Delivery::Dropped) => metrics.dropped_by(Stage::Output),
            Err(err) => {
                // A failed sink does not come back: stop the run (it drains,
                // counting what it drops) and report the failure at finish.
                sink_failures += 1;
                metrics.dropped_by(Stage::Output);
                if sink_failures == 1 {
                    warn!(frame = frame.id.0, "sink failed, stopping the run: {err}");
                    stop.stop();
                }
            }
        }
        if limit.is_some_and(|n| metrics.frames_out() >= n) {
            stop.stop();
        }
    }
    sink.finish()
}
