//! The structured report of one keyframe.

use serde::Serialize;

use crate::grounding::{GroundedText, ReportFields};
use crate::keyframes::KeyframeReason;

/// What the head wrote for one keyframe, every number grounded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The keyframe (frame id) it describes.
    pub keyframe: u64,
    pub reason: KeyframeReason,
    /// The task prompt it answered.
    pub prompt: String,
    #[serde(flatten)]
    pub fields: ReportFields,
    /// The keyframe's calipers the text quotes (mm).
    pub long_axis_mm: Option<f64>,
    pub short_axis_mm: Option<f64>,
    /// The text for the reader (grounded), and as generated (placeholders).
    pub text: String,
    pub generated: String,
    pub grounding: GroundingCounts,
    pub tokens: usize,
    /// Cut short: `max_new_tokens` or the decoder's position table
    /// (`graphs.decoder.max_positions`) ended it before the end token.
    pub truncated: bool,
    pub ttft_ms: f64,
    pub total_ms: f64,
    /// The kernel version published from its task tokens (None: it wrote
    /// no complete set, the decoder kept its kernels).
    pub kernel_version: Option<u64>,
}

/// How the report's numbers were accounted for.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GroundingCounts {
    pub filled: usize,
    pub replaced: Vec<String>,
    pub unverified: Vec<String>,
}

impl From<&GroundedText> for GroundingCounts {
    fn from(g: &GroundedText) -> Self {
        Self {
            filled: g.filled,
            replaced: g.replaced.clone(),
            unverified: g.unverified.clone(),
        }
    }
}
