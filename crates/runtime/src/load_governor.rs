//! The degradation ladder on a run: the output stage's sink is wrapped so
//! that each frame's end-to-end latency reaches the [`Ladder`] as the frame
//! leaves; the step it sets is read lock-free by the AI lane (keyframes,
//! every other frame), the reasoning head (paused) and the overlay (lean).
//! Each change is logged once and counted for the report.

use std::sync::Arc;

use sonoflow_core::{Clock, Frame};
use sonoflow_pipeline::{Delivery, FrameSink, Ladder, StageError};
use tracing::{info, warn};

/// The output's sink, telling the ladder how late each frame leaves.
pub struct GovernedSink {
    inner: Box<dyn FrameSink>,
    ladder: Ladder,
    clock: Arc<dyn Clock>,
}

impl GovernedSink {
    pub fn new(
        inner: Box<dyn FrameSink>,
        ladder: Ladder,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            inner,
            ladder,
            clock,
        }
    }
}

impl FrameSink for GovernedSink {
    fn push(&mut self, frame: &Frame) -> Result<Delivery, StageError> {
        let now = self.clock.now();
        let latency = now.saturating_since(frame.stamps.captured);
        if let Some(change) = self.ladder.observe(now, latency) {
            let budget = self.ladder.options().budget;
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
        }
        self.inner.push(frame)
    }

    fn finish(&mut self) -> Result<(), StageError> {
        self.inner.finish()
    }
}
