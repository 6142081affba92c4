//! The id every frame carries from ingest on, and everything computed on a
//! frame (findings, interpretations) names. A module of its own so that the
//! types that name a frame need not know the frame.

/// Monotonic id of a frame within one run, assigned at ingest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize)]
pub struct FrameId(pub u64);
