//! Which frames the reasoning head looks at, chosen from what the per-frame
//! path already computed: the encoder's image tokens (how much the view
//! moves) and the segmentation mask (whether the finding holds still).
//!
//! A frame becomes a keyframe when, at least `min_interval` after the last:
//! - `max_interval` has passed (the interpretation must not grow old);
//! - the view drifted far from the last keyframe's (a new scene deserves a
//!   new look: image-token change above `scene_change_above`);
//! - the probe moved since the last keyframe and has now been held still,
//!   with a stable finding, for `still_frames` frames (image-token change
//!   below `still_below` and mask IoU at least `stable_iou` frame to frame).
//!
//! The first frame is a keyframe, and so is any frame after an explicit
//! request (a freeze, a question), whatever the interval.

use std::time::Duration;

use serde::Serialize;
use sonoflow_core::Timestamp;

/// Why a frame became a keyframe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyframeReason {
    #[default]
    First,
    Request,
    Still,
    SceneChange,
    MaxInterval,
}

impl KeyframeReason {
    pub const ALL: [KeyframeReason; 5] = [
        KeyframeReason::First,
        KeyframeReason::Request,
        KeyframeReason::Still,
        KeyframeReason::SceneChange,
        KeyframeReason::MaxInterval,
    ];

    pub fn name(self) -> &'static str {
        match self {
            KeyframeReason::First => "first",
            KeyframeReason::Request => "request",
            KeyframeReason::Still => "still",
            KeyframeReason::SceneChange => "scene_change",
            KeyframeReason::MaxInterval => "max_interval",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// The thresholds of keyframe choice.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyframeOptions {
    pub min_interval: Duration,
    pub max_interval: Duration,
    /// Image-token change (relative L2) frame to frame below which the probe counts as still.
    pub still_below: f32,
    /// Still frames in a row (with a stable finding) that make a keyframe.
    pub still_frames: usize,
    /// Mask IoU frame to frame at or above which the finding counts as stable.
    pub stable_iou: f32,
    /// Image-token change from the last keyframe above which the scene is new.
    pub scene_change_above: f32,
}

impl Default for KeyframeOptions {
    fn default() -> Self {
        Self {
            min_interval: Duration::from_millis(1000),
            max_interval: Duration::from_millis(6000),
            still_below: 0.08,
            still_frames: 8,
            stable_iou: 0.8,
            scene_change_above: 0.45,
        }
    }
}

/// What the per-frame path computed on one frame.
#[derive(Debug, Clone, Copy)]
pub struct FrameSignals<'a> {
    pub now: Timestamp,
    /// The encoder's image tokens.
    pub image_tokens: &'a [f32],
    /// The segmentation task's mask logits (compared cell by cell).
    pub mask_logits: &'a [f32],
}

/// The measures behind the last decision (for logs and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Observation {
    /// Image-token change from the previous frame.
    pub motion: f32,
    /// Image-token change from the last keyframe.
    pub drift: f32,
    /// Mask IoU with the previous frame (1 when both are empty).
    pub mask_iou: f32,
    /// Frames in a row that were still with a stable finding.
    pub steady_frames: usize,
}

/// Keyframe choice over a stream of frames. Allocates only on the first
/// frame (and when the token or mask size changes).
pub struct KeyframeSelector {
    options: KeyframeOptions,
    last: Option<Timestamp>,
    keyframe_tokens: Vec<f32>,
    previous_tokens: Vec<f32>,
    previous_mask: Vec<bool>,
    steady_frames: usize,
    moved_since_keyframe: bool,
    observation: Observation,
}

/// ||a - b|| / ||b||; infinite when the sizes differ (nothing to compare).
pub fn relative_change(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() || a.is_empty() {
        return f32::INFINITY;
    }
    let (mut diff, mut norm) = (0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let d = f64::from(x - y);
        diff += d * d;
        norm += f64::from(*y) * f64::from(*y);
    }
    (diff.sqrt() / norm.sqrt().max(1e-6)) as f32
}

/// IoU of `logits > 0` with `previous`, which then becomes this mask.
fn mask_iou_and_keep(logits: &[f32], previous: &mut Vec<bool>) -> f32 {
    let comparable = previous.len() == logits.len();
    let (mut inter, mut union) = (0u32, 0u32);
    if comparable {
        for (l, p) in logits.iter().zip(previous.iter()) {
            let on = *l > 0.0;
            inter += u32::from(on && *p);
            union += u32::from(on || *p);
        }
    }
    previous.clear();
    previous.extend(logits.iter().map(|l| *l > 0.0));
    match (comparable, union) {
        (false, _) => 0.0,
        (true, 0) => 1.0,
        (true, u) => inter as f32 / u as f32,
    }
}

impl KeyframeSelector {
    pub fn new(options: KeyframeOptions) -> Self {
        Self {
            options,
            last: None,
            keyframe_tokens: Vec::new(),
            previous_tokens: Vec::new(),
            previous_mask: Vec::new(),
            steady_frames: 0,
            moved_since_keyframe: false,
            observation: Observation::default(),
        }
    }

    pub fn options(&self) -> &KeyframeOptions {
        &self.options
    }

    /// The measures of the last frame observed.
    pub fn observation(&self) -> Observation {
        self.observation
    }

    /// Looks at one frame; `requested`: a freeze or a question is waiting.
    /// Returns why this frame is a keyframe, if it is one.
    pub fn observe(
        &mut self,
        signals: &FrameSignals<'_>,
        requested: bool,
    ) -> Option<KeyframeReason> {
        let motion = relative_change(signals.image_tokens, &self.previous_tokens);
        self.previous_tokens.clear();
        self.previous_tokens.extend_from_slice(signals.image_tokens);
        let mask_iou = mask_iou_and_keep(signals.mask_logits, &mut self.previous_mask);
        let drift = relative_change(signals.image_tokens, &self.keyframe_tokens);
        if motion < self.options.still_below && mask_iou >= self.options.stable_iou {
            self.steady_frames += 1;
        } else {
            self.steady_frames = 0;
        }
        if motion >= self.options.still_below {
            self.moved_since_keyframe = true;
        }
        self.observation = Observation {
            motion,
            drift,
            mask_iou,
            steady_frames: self.steady_frames,
        };
        let reason = self.decide(signals.now, drift, requested)?;
        self.last = Some(signals.now);
        self.keyframe_tokens.clear();
        self.keyframe_tokens.extend_from_slice(signals.image_tokens);
        self.moved_since_keyframe = false;
        Some(reason)
    }

    fn decide(&self, now: Timestamp, drift: f32, requested: bool) -> Option<KeyframeReason> {
        let Some(last) = self.last else {
            return Some(KeyframeReason::First);
        };
        if requested {
            return Some(KeyframeReason::Request);
        }
        let since = now.saturating_since(last);
        let o = &self.options;
        if since < o.min_interval {
            None
        } else if since >= o.max_interval {
            Some(KeyframeReason::MaxInterval)
        } else if drift > o.scene_change_above {
            Some(KeyframeReason::SceneChange)
        } else if self.moved_since_keyframe && self.steady_frames >= o.still_frames {
            Some(KeyframeReason::Still)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Timestamp {
        Timestamp(ms * 1_000_000)
    }

    struct Feed {
        selector: KeyframeSelector,
        ms: u64,
        mask: Vec<f32>,
    }

    impl Feed {
        fn new(options: KeyframeOptions) -> Self {
            Self {
                selector: KeyframeSelector::new(options),
                ms: 0,
                mask: vec![-1.0; 16],
            }
        }

        /// One frame 33 ms after the last, with image tokens `tokens`.
        fn frame(&mut self, tokens: &[f32], requested: bool) -> Option<KeyframeReason> {
            self.ms += 33;
            let s = FrameSignals {
                now: at(self.ms),
                image_tokens: tokens,
                mask_logits: &self.mask,
            };
            self.selector.observe(&s, requested)
        }
    }

    fn options() -> KeyframeOptions {
        KeyframeOptions {
            min_interval: Duration::from_millis(500),
            max_interval: Duration::from_millis(3000),
            ..KeyframeOptions::default()
        }
    }

    #[test]
    fn the_first_frame_is_a_keyframe_then_a_steady_view_waits_for_max_interval() {
        let mut feed = Feed::new(options());
        let still = [1.0f32, 2.0, 3.0, 4.0];
        assert_eq!(feed.frame(&still, false), Some(KeyframeReason::First));
        let mut reasons = Vec::new();
        for _ in 0..200 {
            if let Some(r) = feed.frame(&still, false) {
                reasons.push((feed.ms, r));
            }
        }
        // Never moved: no "still" keyframe, only the interval ones (every ~3 s).
        assert!(
            reasons
                .iter()
                .all(|(_, r)| *r == KeyframeReason::MaxInterval),
            "{reasons:?}"
        );
        assert_eq!(reasons.len(), 2, "{reasons:?}");
    }

    #[test]
    fn moving_then_holding_still_makes_one_still_keyframe() {
        let mut feed = Feed::new(options());
        feed.frame(&[1.0, 1.0, 1.0, 1.0], false);
        // The probe slides: each frame differs from the last by ~10%, but
        // stays close to the last keyframe (no scene change).
        let mut reasons = Vec::new();
        for i in 0..20 {
            let v = if i % 2 == 0 { 1.4 } else { 1.0 };
            reasons.extend(feed.frame(&[v, 1.0, 1.0, 1.0], false));
        }
        assert!(reasons.is_empty(), "moving: {reasons:?}");
        // Then it is held still.
        for _ in 0..20 {
            reasons.extend(feed.frame(&[1.2, 1.0, 1.0, 1.0], false));
        }
        assert_eq!(reasons, vec![KeyframeReason::Still]);
        assert!(feed.selector.observation().steady_frames >= 8);
    }

    #[test]
    fn a_new_scene_is_looked_at_after_min_interval_and_a_request_at_once() {
        let mut feed = Feed::new(options());
        feed.frame(&[1.0, 0.0, 0.0, 0.0], false);
        assert_eq!(
            feed.frame(&[0.0, 1.0, 0.0, 0.0], false),
            None,
            "within min_interval"
        );
        let mut got = None;
        for _ in 0..20 {
            if let Some(r) = feed.frame(&[0.0, 1.0, 0.0, 0.0], false) {
                got = Some((feed.ms, r));
                break;
            }
        }
        let (ms, r) = got.expect("a keyframe");
        assert_eq!(r, KeyframeReason::SceneChange);
        assert!(ms >= 33 + 500, "{ms}");
        assert_eq!(
            feed.frame(&[0.0, 1.0, 0.0, 0.0], true),
            Some(KeyframeReason::Request)
        );
    }

    #[test]
    fn an_unstable_finding_blocks_still_keyframes() {
        let mut feed = Feed::new(options());
        feed.frame(&[1.0, 1.0], false);
        feed.frame(&[1.3, 1.0], false); // moved
        let mut reasons = Vec::new();
        for i in 0..40 {
            // Same tokens, but the mask flickers between two disjoint halves.
            feed.mask = (0..16)
                .map(|c| if (c < 8) == (i % 2 == 0) { 1.0 } else { -1.0 })
                .collect();
            reasons.extend(feed.frame(&[1.3, 1.0], false));
        }
        assert!(reasons.is_empty(), "{reasons:?}");
        assert_eq!(feed.selector.observation().mask_iou, 0.0);
    }

    #[test]
    fn relative_change_is_scale_free_and_refuses_mismatched_sizes() {
        assert!((relative_change(&[2.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-6);
        assert_eq!(relative_change(&[1.0], &[1.0]), 0.0);
        assert!(relative_change(&[1.0], &[1.0, 2.0]).is_infinite());
    }
}
