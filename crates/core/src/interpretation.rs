//! The clinical interpretation the reasoning head writes for a keyframe, as
//! the overlay and the results stream show it: growing while tokens stream
//! in, whole when generation ends, or unavailable with its cause.

use arc_swap::ArcSwapOption;

use crate::{FrameId, Timestamp};

/// Where an interpretation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterpretationState {
    /// Tokens are still streaming in; `text` grows.
    Writing,
    /// Generation ended; `text` is the grounded report.
    Done,
    /// The head failed, timed out or has no model; `text` says why.
    Unavailable,
}

/// The latest clinical interpretation, published by the reasoning head.
#[derive(Debug, Clone, PartialEq)]
pub struct Interpretation {
    pub text: String,
    /// The keyframe it was written for, and when that frame was captured.
    pub frame: FrameId,
    pub captured: Timestamp,
    pub state: InterpretationState,
}

impl Interpretation {
    /// A finished interpretation of keyframe `frame`.
    pub fn done(text: impl Into<String>, frame: FrameId, captured: Timestamp) -> Self {
        Self {
            text: text.into(),
            frame,
            captured,
            state: InterpretationState::Done,
        }
    }
}

/// Where the reasoning head publishes and the overlay reads (lock-free).
pub type InterpretationBoard = ArcSwapOption<Interpretation>;
