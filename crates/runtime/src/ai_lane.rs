//! The model's own lane beside the frame path, so a slow or stuck model
//! never stops the video.
//!
//! The process stage hands each frame's copy to the AI thread (when it is
//! free) and waits for the findings up to `stall_after`
//! ([`crate::model_config::DEFAULT_STALL_AFTER`] by default). In time, the
//! frame goes on with its outputs and findings, as if the model ran inline.
//! Too late, or the AI thread still busy with an earlier frame: the frame
//! goes on without waiting, and the newest late findings (naming the frame
//! they were computed on) ride on it, so the overlay can show them with
//! their age, mark them stale, and raise "AI paused" while nothing fresh
//! comes. A copy costs one memcpy of the frame from a pool (about 0.03 ms
//! at 640x480).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::channel::{bounded, Receiver, RecvTimeoutError, Sender};
use sonoflow_core::alloc_count::FramePathGuard;
use sonoflow_core::{Frame, FramePool};
use sonoflow_inference::KernelSlot;
use sonoflow_pipeline::{FrameActivity, LoadLevel, LoadStep, Processor, StageError};
use tracing::{debug, warn};

use crate::error::RunError;
use crate::frame_analysis::{FrameAnalysis, InferenceStats};
use crate::recording::RecordTap;

/// The model process stage: frames in order on the frame path, the model on its lane.
pub struct ModelProcessor {
    /// None once dropped: the AI thread then ends its loop.
    jobs: Option<Sender<Frame>>,
    /// Joined on drop, so the run's report is taken only after the model's
    /// last frame is recorded and its sessions are gone.
    worker: Option<JoinHandle<()>>,
    done: Receiver<Frame>,
    /// The AI thread has a frame it has not given back yet.
    busy: bool,
    stall_after: Option<Duration>,
    copies: FramePool,
    stats: Arc<InferenceStats>,
    slot: Arc<KernelSlot>,
    /// The degradation ladder's step; on `half_rate` the model skips every other frame.
    load: LoadLevel,
    /// Whether this frame is the model's; flips each frame at half rate.
    model_turn: bool,
}

impl ModelProcessor {
    /// Starts `analysis` (a loaded, warmed-up model) on its own thread. A
    /// frame waits for it at most `stall_after` (None: always). The model's
    /// work on each frame is marked in `activity`; `load` is the ladder's step.
    /// With `record`, every frame the model ran on is also handed to a
    /// session recorder ([`crate::recording`]), with the kernels it used.
    pub fn start(
        mut analysis: FrameAnalysis,
        stall_after: Option<Duration>,
        load: LoadLevel,
        activity: FrameActivity,
        record: Option<RecordTap>,
    ) -> Result<Self, RunError> {
        analysis.follow_load(load.clone());
        let (stats, slot) = (analysis.stats(), analysis.kernel_slot());
        let (jobs, job_in) = bounded::<Frame>(1);
        let (done_out, done) = bounded::<Frame>(2);
        let kernels = Arc::clone(&slot);
        let worker = std::thread::Builder::new()
            .name("sonoflow-ai".into())
            .spawn(move || {
                for mut frame in job_in.iter() {
                    let _guard = FramePathGuard::enter();
                    let _working = activity.enter();
                    let _span = tracing::trace_span!("ai", frame = frame.id.0).entered();
                    // The kernels the model is about to use (a newer version
                    // published meanwhile shows in the outputs' version).
                    let used = record.as_ref().map(|_| Arc::clone(&*kernels.load()));
                    analysis.analyse(&mut frame);
                    if let (Some(tap), Some(used)) = (&record, used) {
                        tap.record(&frame, used);
                    }
                    if done_out.send(frame).is_err() {
                        break;
                    }
                }
                debug!("AI lane: the process stage has stopped");
            })
            .map_err(|e| RunError::Thread("ai", e.to_string()))?;
        Ok(Self {
            jobs: Some(jobs),
            worker: Some(worker),
            done,
            busy: false,
            stall_after,
            copies: FramePool::new(3),
            stats,
            slot,
            load,
            model_turn: true,
        })
    }

    pub fn kernel_slot(&self) -> Arc<KernelSlot> {
        Arc::clone(&self.slot)
    }

    /// A copy of `frame` for the AI thread: pixels from the pool, and
    /// what the model and the self-check read.
    fn copy_of(&self, frame: &Frame) -> Frame {
        if self.copies.idle() == 0 && self.copies.counters() == Default::default() {
            // The first frame: every copy the lane can hold, now, so the
            // pool never grows later (a slow model holds more of them).
            self.copies.prefill(frame.data.len());
        }
        let mut data = self.copies.acquire(frame.data.len());
        data.copy_from_slice(&frame.data);
        let mut copy = Frame::new(frame.id, frame.format, data, frame.stamps);
        copy.source_pts = frame.source_pts;
        copy.source_epoch = frame.source_epoch;
        copy.calibration = frame.calibration.clone();
        copy.truth = frame.truth.clone();
        copy
    }

    /// Takes what the AI thread finished: its own results when `frame` is
    /// the one it worked on, else the findings alone (they name their frame).
    fn attach(frame: &mut Frame, mut done: Frame) {
        if done.id == frame.id {
            frame.outputs = done.outputs.take();
        }
        if done.findings.is_some() {
            frame.findings = done.findings.take();
        }
    }

    /// Newest finished frame not yet collected, if any.
    fn collect_late(&mut self) -> Option<Frame> {
        let mut newest = None;
        while let Ok(done) = self.done.try_recv() {
            self.busy = false;
            newest = Some(done);
        }
        newest
    }
}

impl ModelProcessor {
    /// Hands a copy of `frame` to the AI thread and waits for it (up to
    /// `stall_after`); None when it did not come back in time.
    fn submit_and_wait(&mut self, frame: &Frame) -> Option<Frame> {
        let sent = match &self.jobs {
            Some(jobs) => jobs.send(self.copy_of(frame)).is_ok(),
            None => false,
        };
        if !sent {
            // The AI thread is gone (it panicked): frames pass without it.
            self.stats.failures.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.busy = true;
        let waited = match self.stall_after {
            Some(limit) => self.done.recv_timeout(limit),
            None => self.done.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match waited {
            Ok(done) => {
                self.busy = false;
                Some(done)
            }
            Err(RecvTimeoutError::Timeout) => {
                let n = self.stats.passed_without_ai.fetch_add(1, Ordering::Relaxed) + 1;
                if n == 1 || n.is_multiple_of(100) {
                    warn!(
                        frame = frame.id.0,
                        "the model took over {:?}; frames go on without it until it catches up",
                        self.stall_after.unwrap_or_default()
                    );
                }
                None
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

impl Processor for ModelProcessor {
    fn process(&mut self, frame: &mut Frame) -> Result<(), StageError> {
        let late = self.collect_late();
        self.model_turn = !self.load.sheds(LoadStep::HalfRate) || !self.model_turn;
        let fresh = if !self.model_turn {
            // Shedding load: this frame goes on with the last findings.
            self.stats
                .skipped_under_load
                .fetch_add(1, Ordering::Relaxed);
            None
        } else if self.busy {
            // Still on an earlier frame: this one goes on now.
            self.stats.passed_without_ai.fetch_add(1, Ordering::Relaxed);
            None
        } else {
            self.submit_and_wait(frame)
        };
        // This frame's own results, else the newest late findings.
        if let Some(done) = fresh.or(late) {
            Self::attach(frame, done);
        }
        Ok(())
    }
}

impl Drop for ModelProcessor {
    fn drop(&mut self) {
        // Closing the job channel ends the AI thread after its current frame.
        self.jobs.take();
        if let Some(worker) = self.worker.take() {
            if worker.join().is_err() {
                warn!("the AI thread panicked");
            }
        }
    }
}
