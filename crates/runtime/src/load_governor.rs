//! The degradation ladder on a run: the output stage's sink is wrapped so
//! that each frame's end-to-end latency reaches the [`Ladder`] as the frame
//! leaves; the step it sets is read lock-free by the AI lane (keyframes,
//! every other frame), the reasoning head (paused) and the overlay (lean).
//! Each change is logged once and counted for the report. The wrapper also
//! marks drawing and handing a frame to the sinks as frame work in progress
//! ([`FrameActivity`]), which the reasoning head yields to.

use std::sync::Arc;

use sonoflow_core::{Clock, Frame};
use sonoflow_pipeline::{Delivery, FrameActivity, FrameSink, Ladder, LoadStep, StageError};
use sonoflow_reasoning::HeadHandle;
use tracing::{info, warn};

/// The output's sink, telling the ladder how late each frame leaves.
pub struct GovernedSink {
    inner: Box<dyn FrameSink>,
    /// None when the ladder is off (`[load] enabled = false`, file sources).
    ladder: Option<Ladder>,
    clock: Arc<dyn Clock>,
    activity: FrameActivity,
    /// Paused while the ladder sheds the head.
    head: Option<HeadHandle>,
}

impl GovernedSink {
    pub fn new(
        inner: Box<dyn FrameSink>,
        ladder: Option<Ladder>,
        clock: Arc<dyn Clock>,
        activity: FrameActivity,
        head: Option<HeadHandle>,
    ) -> Self {
        Self {
            inner,
            ladder,
            clock,
            activity,
            head,
        }
    }
}

impl FrameSink for GovernedSink {
    fn push(&mut self, frame: &Frame) -> Result<Delivery, StageError> {
        let _working = self.activity.enter();
        let now = self.clock.now();
        let latency = now.saturating_since(frame.stamps.captured);
        let Some(ladder) = &mut self.ladder else {
            return self.inner.push(frame);
        };
        if let Some(change) = ladder.observe(now, latency) {
            let budget = ladder.options().budget;
            if change.to > change.from {
                warn!(
                    frame = frame.id.0,
                    over = change.over,
                    "frame path over its {budget:?} budget: shedding work, now {} ({})",
                    change.to.name(),
                    change.to.shown()
                );
            } else {
                info!(
                    frame = frame.id.0,
                    "load fell: restoring work, now {} ({})",
                    change.to.name(),
                    change.to.shown()
                );
            }
            if let Some(head) = &self.head {
                head.set_paused(change.to >= LoadStep::HeadPaused);
            }
        }
        self.inner.push(frame)
    }

    fn finish(&mut self) -> Result<(), StageError> {
        self.inner.finish()
    }
}
