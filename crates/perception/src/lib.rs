//! Model outputs to findings, as pure functions over reusable scratch
//! buffers (no I/O, no clock, nothing allocated per frame once the buffers
//! have their frame size):
//!
//! - [`mask`]: a task's mask logits sampled at every frame pixel through the
//!   exact inverse of the preprocessing, thresholded at logit 0;
//! - [`components`]: 4-connected components with small-component suppression,
//!   their boxes and confidences;
//! - [`contour`]: each finding's outline (marching squares, sub-pixel,
//!   simplified for drawing);
//! - [`calipers`]: the long axis (maximum Feret) and the longest chord
//!   perpendicular to it, in pixels and millimetres;
//! - [`uncertainty`]: how far each caliper moves when the mask threshold
//!   moves, with the pixel size, as a "± mm";
//! - [`ellipse`]: an ellipse fit and its circumference, where asked for;
//! - [`keypoints`]: heatmaps to sub-pixel points, for models with a keypoint output;
//! - [`tracking`]: track ids across frames and caliper smoothing;
//! - [`accuracy`]: the self-check of findings against phantom ground truth
//!   (Dice, detection precision/recall at IoU 0.5, caliper errors, false
//!   positives on lesion-free frames; per class and per echo pattern);
//!   [`accuracy::intervals`] gives them 95 % confidence intervals by
//!   resampling scenes (frames of one probe sweep move together);
//! - [`config`]: `[perception]` of a pipeline definition, validated into
//!   [`PerceptionOptions`].
//!
//! [`Perception`] runs them in order for one frame.

pub mod accuracy;
pub mod calipers;
pub mod components;
pub mod config;
pub mod contour;
pub mod ellipse;
pub mod keypoints;
pub mod mask;
pub mod tracking;
pub mod uncertainty;

use sonoflow_core::annotations::{FindingKind, FrameFinding, FrameFindings, Measurement};
use sonoflow_core::findings::{BoundingBox, Caliper, PixelSpacing, Point};
use sonoflow_core::{Calibration, ModelOutputs};

pub use accuracy::intervals::{
    paired_difference, Change, Difference, Figures, GroupedSceneTotals, Intervals, SceneTotals,
};
pub use accuracy::{
    frame_class, frame_echo_pattern, Accuracy, AccuracySummary, ConspicuityRecall, DetectionCounts,
    FrameScore, GroupedAccuracy, SizeRecall, CONSPICUITY_BANDS, ECHO_PATTERN, MIXED_ECHO,
    NO_LESION, SIZE_BANDS,
};
pub use components::{Component, Components};
pub use config::PerceptionConfig;
pub use mask::FrameMask;
pub use tracking::{Smoothing, Tracker};
pub use uncertainty::ThresholdBand;

/// Components smaller than this (frame pixels) are noise, not findings.
pub const MIN_COMPONENT_PX: u32 = 30;

/// Findings smaller than this (mm²) on a calibrated frame are not shown:
/// under the area of a 2 mm circle, smaller than any lesion the product
/// describes (3 mm long and up), and on held-out phantom frames most such
/// findings are false (docs/configuration.md, `[perception]`).
pub const MIN_FINDING_AREA_MM2: f32 = 3.0;

/// The probability the masks are cut at by default (`[perception]
/// mask_threshold`; docs/configuration.md).
pub const MASK_THRESHOLD: f32 = 0.5;

/// Which rows of the decoder's outputs drive what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskRows {
    pub segmentation: usize,
    pub detection: usize,
}

/// What to compute beyond boxes, contours and calipers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerceptionOptions {
    /// Fit an ellipse to each segment (circumference of round structures).
    pub ellipse: bool,
    /// Steady calipers across frames (None: show each frame's own).
    pub smoothing: Option<Smoothing>,
    /// Probabilities the mask is re-cut at for the uncertainty.
    pub band: ThresholdBand,
    /// Contour simplification tolerance in pixels.
    pub contour_tolerance_px: f32,
    /// Components under this area (mm²) are dropped where the frame is
    /// calibrated (0: keep them); without a calibration only
    /// [`MIN_COMPONENT_PX`] applies.
    pub min_finding_area_mm2: f32,
    /// The self-check's faint-lesion cut: lesions of conspicuity under it
    /// count neither way ([`accuracy::FrameScore::scored`]); None counts all.
    pub ignore_faint_below: Option<f32>,
    /// The probability the segmentation and detection masks are cut at
    /// (inside `band`).
    pub mask_threshold: f32,
}

impl Default for PerceptionOptions {
    fn default() -> Self {
        Self {
            ellipse: false,
            smoothing: Some(Smoothing::default()),
            band: ThresholdBand::default(),
            contour_tolerance_px: contour::SIMPLIFY_PX,
            min_finding_area_mm2: MIN_FINDING_AREA_MM2,
            ignore_faint_below: None,
            mask_threshold: MASK_THRESHOLD,
        }
    }
}

/// Scratch for one frame geometry, reused frame after frame, and the
/// tracks of the previous frame.
#[derive(Debug, Default)]
pub struct Perception {
    pub options: PerceptionOptions,
    seg: FrameMask,
    det: FrameMask,
    seg_parts: Components,
    det_parts: Components,
    measure: calipers::Scratch,
    recut: uncertainty::Recut,
    tracer: contour::Tracer,
    tracker: Tracker,
    /// Frame pixels the scratch buffers have room for.
    reserved_for: usize,
}

impl Perception {
    pub fn new(options: PerceptionOptions) -> Self {
        let mut p = Self {
            options,
            ..Self::default()
        };
        p.recut.reserve(1 << 17);
        p.tracer.reserve(8192);
        p.tracker.reserve(FrameFindings::ROOM_FINDINGS);
        p
    }

    /// Findings of one frame's outputs (frame `width` x `height`) into
    /// `out` (its `frame` and `captured` are the caller's): the
    /// segmentation row's components with contours and calipers, then the
    /// detection row's components with boxes and confidences. Calipers
    /// are measured with the spacing of the calibrated region holding the
    /// finding's centre, and their uncertainty includes the calibration's
    /// own; without a spacing there are no millimetres.
    pub fn perceive(
        &mut self,
        outputs: &ModelOutputs,
        rows: TaskRows,
        width: u32,
        height: u32,
        calibration: Option<&Calibration>,
        out: &mut FrameFindings,
    ) {
        out.findings.clear();
        out.points.clear();
        let pixels = width as usize * height as usize;
        if self.reserved_for < pixels {
            // Once per frame size: room to re-cut a finding as large as the
            // frame, so scratch never grows (and memory never creeps) later.
            self.recut.reserve(pixels);
            self.recut.reserve_calipers(width, height);
            self.measure.reserve(width, height);
            self.reserved_for = pixels;
        }
        // Below the lowest threshold the uncertainty re-cuts at, nothing matters.
        let cut = uncertainty::logit(self.options.mask_threshold);
        let floor = uncertainty::logit(self.options.band.low).min(cut) - 1.0;
        self.seg.cut = cut;
        self.det.cut = cut;
        self.seg
            .sample_above(outputs, rows.segmentation, width, height, floor);
        self.det
            .sample_above(outputs, rows.detection, width, height, floor);
        self.seg_parts.label(&self.seg, MIN_COMPONENT_PX);
        self.det_parts.label(&self.det, MIN_COMPONENT_PX);
        let min_mm2 = self.options.min_finding_area_mm2;
        for c in self.seg_parts.iter() {
            let spacing = spacing_at(calibration, &c.bbox());
            if too_small(&c, spacing.as_ref(), min_mm2) {
                continue;
            }
            let start = out.points.len() as u32;
            let len = self.tracer.trace(
                &self.seg,
                &self.seg_parts,
                &c,
                self.options.contour_tolerance_px,
                &mut out.points,
            ) as u32;
            let mut f = finding(FindingKind::Segment, &c, (start, len));
            if let Some((s, relative)) = spacing {
                let (long, short) = self.measure.measure(&self.seg_parts, c, &s);
                let (ul, us) = self.recut.uncertainty(
                    &self.seg,
                    &self.seg_parts,
                    &c,
                    (&long, &short),
                    self.options.band,
                    &s,
                );
                let with_scale = |u: f64, c: &Caliper| u.hypot(relative * c.length_mm);
                f.long_axis = Some(Measurement {
                    caliper: long,
                    uncertainty_mm: with_scale(ul, &long),
                });
                f.short_axis = Some(Measurement {
                    caliper: short,
                    uncertainty_mm: with_scale(us, &short),
                });
                if self.options.ellipse {
                    let parts = &self.seg_parts;
                    f.ellipse = ellipse::fit(
                        (c.x0, c.y0, c.x1, c.y1),
                        |x, y| parts.contains(&c, x, y),
                        &s,
                    );
                }
            }
            out.findings.push(f);
        }
        for c in self.det_parts.iter() {
            if too_small(&c, spacing_at(calibration, &c.bbox()).as_ref(), min_mm2) {
                continue;
            }
            out.findings
                .push(finding(FindingKind::Detection, &c, (0, 0)));
        }
        let spacing = calibration.and_then(Calibration::spacing);
        self.tracker
            .update(out, spacing.as_ref(), self.options.smoothing.as_ref());
    }

    /// The last frame's segmentation mask.
    pub fn segmentation(&self) -> &FrameMask {
        &self.seg
    }

    /// Forgets the tracks (a source restart: the next frame is a new scene).
    pub fn forget(&mut self) {
        self.tracker.clear();
    }
}

/// The spacing (and its relative uncertainty) of the calibrated region
/// holding `f`'s centre; None: no millimetres for it.
fn spacing_at(
    calibration: Option<&Calibration>,
    bbox: &BoundingBox,
) -> Option<(PixelSpacing, f64)> {
    let calibration = calibration?;
    let centre = Point {
        x: (bbox.x0 + bbox.x1) / 2.0,
        y: (bbox.y0 + bbox.y1) / 2.0,
    };
    let spacing = calibration.region_at(centre)?.spacing?;
    Some((spacing, calibration.uncertainty))
}

/// A component under `min_mm2`, given the spacing of the calibrated region
/// it sits in ([`spacing_at`]); never without a spacing or with `min_mm2` 0.
fn too_small(c: &Component, spacing: Option<&(PixelSpacing, f64)>, min_mm2: f32) -> bool {
    min_mm2 > 0.0
        && spacing.is_some_and(|(s, _)| f64::from(c.area) * s.x_mm * s.y_mm < f64::from(min_mm2))
}

fn finding(kind: FindingKind, c: &Component, contour: (u32, u32)) -> FrameFinding {
    FrameFinding {
        track: 0,
        kind,
        bbox: c.bbox(),
        area_px: c.area,
        confidence: c.confidence(),
        contour,
        long_axis: None,
        short_axis: None,
        ellipse: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonoflow_core::{BufferPool, ModelGeometry};

    /// Two task rows of `side` x `side` logits over a `side`-pixel model input
    /// covering a whole `side` x `side` frame.
    fn outputs(side: usize, logit: impl Fn(usize, usize) -> f32) -> ModelOutputs {
        let pool = BufferPool::new(2);
        let mut mask_logits = pool.acquire(2 * side * side);
        for row in 0..2 {
            for y in 0..side {
                for x in 0..side {
                    mask_logits[row * side * side + y * side + x] = logit(x, y);
                }
            }
        }
        let geometry = ModelGeometry {
            input_width: side as u32,
            input_height: side as u32,
            crop: (0, 0, side as u32, side as u32),
            scale_x: 1.0,
            scale_y: 1.0,
            pad_x: 0.0,
            pad_y: 0.0,
        };
        ModelOutputs {
            geometry,
            kernel_version: 0,
            tasks: 2,
            height: side,
            width: side,
            mask_logits,
            scores: pool.acquire(0),
            image_tokens: None,
        }
    }

    /// A 64 x 64 frame, all image, at 0.1 mm per pixel, trusted to `relative`.
    fn calibrated(relative: f64) -> Calibration {
        let whole = sonoflow_core::findings::ImageRegion::Rect {
            x0: 0,
            y0: 0,
            x1: 64,
            y1: 64,
        };
        let config = sonoflow_core::CalibrationSource::Config;
        Calibration::single(whole, Some(PixelSpacing::isotropic(0.1)), config, relative)
    }

    fn perceive(o: &ModelOutputs) -> FrameFindings {
        perceive_with(o, Some(&calibrated(0.0)))
    }

    fn perceive_with(o: &ModelOutputs, calibration: Option<&Calibration>) -> FrameFindings {
        let options = PerceptionOptions {
            ellipse: true,
            min_finding_area_mm2: 0.0,
            ..PerceptionOptions::default()
        };
        perceive_using(options, o, calibration)
    }

    fn perceive_using(
        options: PerceptionOptions,
        o: &ModelOutputs,
        calibration: Option<&Calibration>,
    ) -> FrameFindings {
        let mut p = Perception::new(options);
        let mut out = FrameFindings::default();
        p.perceive(
            o,
            TaskRows {
                segmentation: 0,
                detection: 1,
            },
            64,
            64,
            calibration,
            &mut out,
        );
        out
    }

    #[test]
    fn findings_under_the_minimum_area_are_dropped_only_where_calibrated() {
        // A 12 x 12 px square at 0.1 mm a pixel: 1.44 mm², under the default 3.
        let small = outputs(64, |x, y| if x < 12 && y < 12 { 3.0 } else { -3.0 });
        let defaults = PerceptionOptions::default;
        let calibration = calibrated(0.0);
        assert!(perceive_using(defaults(), &small, Some(&calibration))
            .findings
            .is_empty());
        // Without a calibration nobody knows its size: it is shown (in pixels).
        assert_eq!(perceive_using(defaults(), &small, None).findings.len(), 2);
        // The minimum off: shown with its calipers.
        assert_eq!(perceive(&small).segments().count(), 1);
        // A 20 x 20 px square (4 mm²) stays.
        let kept = outputs(64, |x, y| if x < 20 && y < 20 { 3.0 } else { -3.0 });
        assert_eq!(
            perceive_using(defaults(), &kept, Some(&calibration))
                .findings
                .len(),
            2
        );
    }

    #[test]
    fn empty_nan_and_speckled_masks_give_no_findings() {
        assert!(perceive(&outputs(64, |_, _| -3.0)).findings.is_empty());
        assert!(perceive(&outputs(64, |_, _| f32::NAN)).findings.is_empty());
        // A checkerboard: thousands of one-pixel components, all under the minimum.
        let specks = perceive(&outputs(
            64,
            |x, y| if (x + y) % 2 == 0 { 3.0 } else { -3.0 },
        ));
        assert!(specks.findings.is_empty(), "{:?}", specks.findings.len());
    }

    #[test]
    fn a_full_mask_is_one_finding_the_size_of_the_frame_with_units() {
        let found = perceive(&outputs(64, |_, _| 3.0));
        let seg: Vec<_> = found.segments().collect();
        assert_eq!(seg.len(), 1);
        assert_eq!(seg[0].area_px, 64 * 64);
        let long = seg[0].long_axis.expect("measured");
        // The diagonal of 6.4 mm x 6.4 mm.
        assert!(
            (long.caliper.length_mm - 6.4 * 2f64.sqrt()).abs() < 0.1,
            "{long:?}"
        );
        assert!(long.uncertainty_mm > 0.0 && long.uncertainty_mm.is_finite());
        assert!(found.contour(seg[0]).len() >= 4);
        assert_eq!(found.detections().count(), 1);
    }

    #[test]
    fn calipers_follow_the_frames_calibration_and_its_uncertainty() {
        let disc = outputs(64, |x, y| {
            let (dx, dy) = (x as f32 - 32.0, y as f32 - 32.0);
            if dx * dx + dy * dy < 400.0 {
                3.0
            } else {
                -3.0
            }
        });
        let long = |f: &FrameFindings| f.segments().next().and_then(|s| s.long_axis);
        let exact = long(&perceive_with(&disc, Some(&calibrated(0.0)))).expect("mm");
        let loose = long(&perceive_with(&disc, Some(&calibrated(0.05)))).expect("mm");
        assert_eq!(exact.caliper, loose.caliper);
        let scale = 0.05 * exact.caliper.length_mm;
        assert!(
            (loose.uncertainty_mm - exact.uncertainty_mm.hypot(scale)).abs() < 1e-9,
            "{exact:?} {loose:?}"
        );
        // Uncalibrated, or a region that does not hold the finding: masks
        // and boxes, never millimetres.
        let uncalibrated = perceive_with(&disc, None);
        assert_eq!(uncalibrated.segments().count(), 1);
        assert!(long(&uncalibrated).is_none());
        let elsewhere = Calibration::single(
            sonoflow_core::findings::ImageRegion::Rect {
                x0: 0,
                y0: 0,
                x1: 10,
                y1: 10,
            },
            Some(PixelSpacing::isotropic(0.1)),
            sonoflow_core::CalibrationSource::Config,
            0.0,
        );
        assert!(long(&perceive_with(&disc, Some(&elsewhere))).is_none());
    }
}
