//! Model outputs to findings, as pure functions over reusable scratch
//! buffers (no I/O, no clock, nothing allocated per frame once the buffers
//! have their frame size):
//!
//! - [`mask`]: a task's mask logits sampled at every frame pixel through the
//!   exact inverse of the preprocessing, thresholded at logit 0;
//! - [`components`]: 4-connected components with small-component suppression,
//!   their boxes and confidences;
//! - [`calipers`]: the long axis (maximum Feret) and the longest chord
//!   perpendicular to it, in pixels and millimetres;
//! - [`accuracy`]: the self-check of findings against phantom ground truth
//!   (Dice, detection precision/recall at IoU 0.5, caliper errors).
//!
//! [`Perception`] runs them in order for one frame.

pub mod accuracy;
pub mod calipers;
pub mod components;
pub mod mask;

use sonoflow_core::findings::{BoundingBox, Caliper, PixelSpacing};
use sonoflow_core::ModelOutputs;

pub use accuracy::{Accuracy, AccuracySummary, FrameScore};
pub use components::{Component, Components};
pub use mask::FrameMask;

/// Components smaller than this (frame pixels) are noise, not findings.
pub const MIN_COMPONENT_PX: u32 = 30;

/// One finding of a frame: a component of a task's mask.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Finding {
    pub bbox: BoundingBox,
    pub area_px: u32,
    /// Sigmoid of the strongest logit inside the component.
    pub confidence: f32,
    /// Present when the frame's pixel spacing is known.
    pub long_axis: Option<Caliper>,
    pub short_axis: Option<Caliper>,
}

/// Which rows of the decoder's outputs drive what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskRows {
    pub segmentation: usize,
    pub detection: usize,
}

/// Scratch for one frame geometry, reused frame after frame.
#[derive(Debug, Default)]
pub struct Perception {
    seg: FrameMask,
    det: FrameMask,
    seg_parts: Components,
    det_parts: Components,
    measure: calipers::Scratch,
    /// Segmentation findings of the last frame, largest first.
    pub segments: Vec<Finding>,
    /// Detection findings of the last frame, largest first.
    pub detections: Vec<Finding>,
}

impl Perception {
    /// Findings of one frame's outputs (frame `width` x `height`): the
    /// segmentation row's components with calipers, and the detection row's
    /// components with boxes and confidences.
    pub fn perceive(&mut self, outputs: &ModelOutputs, rows: TaskRows, width: u32, height: u32, spacing: Option<PixelSpacing>) {
        self.seg.sample(outputs, rows.segmentation, width, height);
        self.det.sample(outputs, rows.detection, width, height);
        self.seg_parts.label(&self.seg, MIN_COMPONENT_PX);
        self.det_parts.label(&self.det, MIN_COMPONENT_PX);
        self.segments.clear();
        for c in self.seg_parts.iter() {
            let (long_axis, short_axis) = match spacing {
                Some(s) => {
                    let (l, w) = self.measure.measure(&self.seg_parts, c, &s);
                    (Some(l), Some(w))
                }
                None => (None, None),
            };
            self.segments.push(Finding { bbox: c.bbox(), area_px: c.area, confidence: c.confidence(), long_axis, short_axis });
        }
        self.detections.clear();
        for c in self.det_parts.iter() {
            self.detections.push(Finding { bbox: c.bbox(), area_px: c.area, confidence: c.confidence(), long_axis: None, short_axis: None });
        }
    }

    /// The last frame's segmentation mask.
    pub fn segmentation(&self) -> &FrameMask {
        &self.seg
    }
}
