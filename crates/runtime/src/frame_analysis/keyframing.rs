//! Keyframe choice for the reasoning head: two vector comparisons per frame
//! on data the analysis already has; a keyframe's image tokens and calipers
//! are copied into a pooled keyframe and dropped into the head's mailbox.

use sonoflow_core::annotations::FindingKind;
use sonoflow_core::{Frame, FrameFindings, ModelOutputs};
use sonoflow_reasoning::{Calipers, FrameSignals, HeadHandle, KeyframeOptions, KeyframeSelector};

/// Chooses keyframes from each frame's outputs and hands them to the head.
pub struct Keyframing {
    selector: KeyframeSelector,
    head: HeadHandle,
    /// The decoder row whose mask tells whether the finding is stable.
    mask_row: usize,
}

/// The calipers of the largest segmented finding (what the report quotes).
fn primary_calipers(findings: &FrameFindings) -> Calipers {
    findings
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::Segment)
        .max_by_key(|f| f.area_px)
        .map_or_else(Calipers::default, |f| Calipers {
            long: f.long_axis,
            short: f.short_axis,
        })
}

impl Keyframing {
    pub fn new(head: HeadHandle, options: KeyframeOptions, mask_row: usize) -> Self {
        Self {
            selector: KeyframeSelector::new(options),
            head,
            mask_row,
        }
    }

    /// Looks at one analysed frame; submits it to the head if it is a keyframe.
    pub fn observe(
        &mut self,
        frame: &Frame,
        outputs: &ModelOutputs,
        findings: Option<&FrameFindings>,
    ) {
        if !self.head.is_open() {
            return;
        }
        let Some(tokens) = outputs.image_tokens.as_deref() else {
            return;
        };
        let plane = outputs.height * outputs.width;
        let mask = outputs
            .mask_logits
            .get(self.mask_row * plane..(self.mask_row + 1) * plane)
            .unwrap_or(&[]);
        let signals = FrameSignals {
            now: frame.stamps.captured,
            image_tokens: tokens,
            mask_logits: mask,
        };
        let requested = self.head.take_request();
        let Some(reason) = self.selector.observe(&signals, requested) else {
            return;
        };
        let o = self.selector.observation();
        tracing::debug!(
            frame = frame.id.0,
            reason = reason.name(),
            motion = o.motion,
            drift = o.drift,
            iou = o.mask_iou,
            "keyframe"
        );
        let mut keyframe = self.head.blank_keyframe();
        keyframe.frame = frame.id;
        keyframe.captured = frame.stamps.captured;
        keyframe.reason = reason;
        keyframe.image_tokens.extend_from_slice(tokens);
        keyframe.calipers = findings.map(primary_calipers).unwrap_or_default();
        self.head.submit(keyframe);
    }
}
