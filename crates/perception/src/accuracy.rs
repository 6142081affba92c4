//! The self-check against ground truth (the phantom's, or a dataset's
//! masks): each frame that carries truth is scored, and the scores add up
//! over the run, overall, per class and per echo pattern
//! ([`GroupedAccuracy`]). `sonoflow eval` reports the same sums.
//!
//! - Dice and IoU of the segmentation mask against the union of the
//!   lesions' labels (frames with a lesion in view only), and how many of
//!   those frames reach Dice > 0.5;
//! - false alarms: frames without a lesion on which anything was found,
//!   and the findings on them ([`lesion_free_findings`]), per 100
//!   lesion-free frames;
//! - detection: each detection box matched to the unmatched truth box of
//!   highest IoU, a hit at IoU >= 0.5; precision and recall over the run;
//! - calipers: the largest segmented finding against the largest lesion,
//!   when their boxes overlap at IoU >= 0.5: absolute error of the long and
//!   short axis in mm;
//! - recall by lesion size: the lesions of each long-axis band
//!   ([`SIZE_BANDS`]) and how many a detection box matched, so that a miss
//!   of small lesions shows apart from a miss of faint ones;
//! - recall by conspicuity: the same by how far each lesion stands out from
//!   the tissue around it in the frame's pixels ([`CONSPICUITY_BANDS`], a
//!   phantom export's truth), so that a miss of a lesion no observer could
//!   see shows apart from a miss of a plain one.
//!
//! Scored with a faint-lesion cut ([`FrameScore::scored`], `[perception]
//! ignore_faint_below`), a lesion whose conspicuity is under the cut counts
//! neither way: not as missed, a box on it not as a false positive, its
//! pixels neither in nor out of the mask's Dice, the way detection
//! benchmarks treat "ignore" regions (a box is matched to a counted lesion
//! first, then to a faint one; one matching neither stays false). The band
//! tables still count it.
//!
//! A frame is grouped under its largest lesion's class ([`frame_class`])
//! and under the echo pattern of its lesions ([`frame_echo_pattern`]).

pub mod intervals;

use serde::Serialize;
use sonoflow_core::findings::{label, BoundingBox, GroundTruth, LesionTruth};

use sonoflow_core::FrameFindings;

use crate::FrameMask;

pub const MATCH_IOU: f32 = 0.5;

pub fn iou(a: &BoundingBox, b: &BoundingBox) -> f32 {
    let ix = (a.x1.min(b.x1) - a.x0.max(b.x0)).max(0.0);
    let iy = (a.y1.min(b.y1) - a.y0.max(b.y0)).max(0.0);
    let inter = ix * iy;
    let union = (a.x1 - a.x0) * (a.y1 - a.y0) + (b.x1 - b.x0) * (b.y1 - b.y0) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// Dice and IoU of `mask` against the lesion pixels of `truth` (None: no
/// lesion in view, or a label map of another size).
pub fn lesion_overlap(mask: &FrameMask, truth: &GroundTruth) -> Option<(f64, f64)> {
    lesion_overlap_ignoring(mask, truth, &[])
}

/// [`lesion_overlap`] leaving out the pixels labelled with any of `ignored`
/// (lesions that count neither way).
pub fn lesion_overlap_ignoring(
    mask: &FrameMask,
    truth: &GroundTruth,
    ignored: &[u8],
) -> Option<(f64, f64)> {
    if truth.labels.width != mask.width || truth.labels.height != mask.height {
        return None;
    }
    let (mut both, mut pred, mut real) = (0u64, 0u64, 0u64);
    for (&m, &t) in mask.inside.iter().zip(&truth.labels.data) {
        if !ignored.is_empty() && ignored.contains(&t) {
            continue;
        }
        let (m, t) = (m != 0, t >= label::LESION_BASE);
        both += u64::from(m && t);
        pred += u64::from(m);
        real += u64::from(t);
    }
    (real > 0).then(|| {
        let dice = 2.0 * both as f64 / (pred + real) as f64;
        let iou = both as f64 / (pred + real - both) as f64;
        (dice, iou)
    })
}

/// The class a frame is scored under: its largest lesion's, or
/// [`NO_LESION`] when none is in view.
pub fn frame_class(truth: &GroundTruth) -> &str {
    truth
        .lesions
        .iter()
        .max_by_key(|l| l.area_px)
        .map_or(NO_LESION, |l| l.class.as_str())
}

/// The class of frames without a lesion.
pub const NO_LESION: &str = "no_lesion";

/// The truth attribute naming a lesion's echo pattern ("anechoic",
/// "hypoechoic", "isoechoic", "hyperechoic", "heterogeneous",
/// "complex_cystic_solid"), as a phantom export's `truth.jsonl` records it.
pub const ECHO_PATTERN: &str = "echo_pattern";

/// The echo-pattern group of frames whose lesions differ in echo pattern.
pub const MIXED_ECHO: &str = "mixed";

/// The echo pattern a frame is scored under: the one all its lesions in
/// view share, [`MIXED_ECHO`] when they differ (or only some have one), and
/// None when no lesion is in view or none has an echo pattern (a dataset
/// of masks). Each pattern's figures are then about lesions of that pattern
/// alone; lesion-free frames are scored under [`NO_LESION`] by class.
pub fn frame_echo_pattern(truth: &GroundTruth) -> Option<&str> {
    let mut patterns = truth
        .lesions
        .iter()
        .map(|l| l.attributes.get(ECHO_PATTERN).map(String::as_str));
    let first = patterns.next()?;
    if patterns.all(|p| p == first) {
        first
    } else {
        Some(MIXED_ECHO)
    }
}

/// The findings a clinician sees on a frame, each counted once: every
/// detection box, and every segment that no detection box matches at an
/// IoU of 0.5 or more (a lesion usually shows as a contour and a box). On a
/// lesion-free frame, each is a false positive.
pub fn lesion_free_findings(findings: &FrameFindings) -> u32 {
    let boxes = findings.detections().count();
    let lone_segments = findings
        .segments()
        .filter(|s| {
            !findings
                .detections()
                .any(|d| iou(&s.bbox, &d.bbox) >= MATCH_IOU)
        })
        .count();
    (boxes + lone_segments) as u32
}

/// The long-axis bands lesions are counted in for recall by size (truth
/// lengths in mm; a lesion without one, from an uncalibrated dataset, is
/// in none): each band's name and upper bound, the last unbounded.
pub const SIZE_BANDS: [(&str, f64); 4] = [
    ("under 5 mm", 5.0),
    ("5-10 mm", 10.0),
    ("10-20 mm", 20.0),
    ("20 mm and over", f64::INFINITY),
];

/// The band of [`SIZE_BANDS`] a lesion of this long axis falls in (None
/// without a length).
pub fn size_band(long_axis_mm: f64) -> Option<usize> {
    band_of(long_axis_mm, &SIZE_BANDS)
}

/// The conspicuity bands lesions are counted in for recall by conspicuity
/// (the truth's |z|, see `sonoflow_phantom::conspicuity`): under 2 the
/// lesion is not in the image, under about 4 a searching observer misses
/// it at a few false findings per 100 frames, from about 6 it finds nearly
/// every one.
pub const CONSPICUITY_BANDS: [(&str, f64); 5] = [
    ("under 2", 2.0),
    ("2-4", 4.0),
    ("4-6", 6.0),
    ("6-10", 10.0),
    ("10 and over", f64::INFINITY),
];

/// The band of `bands` (each a name and an exclusive upper bound, in
/// rising order) that `value` falls in; None for a negative or non-finite one.
fn band_of(value: f64, bands: &[(&str, f64)]) -> Option<usize> {
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    bands.iter().position(|&(_, below)| value < below)
}

/// Counts a frame's lesions into bands: `band` places a lesion (None: in
/// none), `found` says whether a detection box matched it.
fn count_bands<const N: usize>(
    lesions: &[LesionTruth],
    band: impl Fn(&LesionTruth) -> Option<usize>,
    found: impl Fn(usize) -> bool,
) -> [LesionsFound; N] {
    let mut counts = [LesionsFound::default(); N];
    for (i, lesion) in lesions.iter().enumerate() {
        if let Some(slot) = band(lesion).and_then(|b| counts.get_mut(b)) {
            slot.lesions += 1;
            slot.found += u32::from(found(i));
        }
    }
    counts
}

/// Lesions of one size band and how many of them a detection box matched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LesionsFound {
    pub lesions: u32,
    pub found: u32,
}

/// How one frame scored.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FrameScore {
    pub dice: Option<f64>,
    pub iou: Option<f64>,
    /// The truth has no lesion in view.
    pub lesion_free: bool,
    /// ... and something was found anyway.
    pub false_alarm: bool,
    /// ... and this many findings ([`lesion_free_findings`]); 0 on a frame
    /// with a lesion, whose extra boxes count in `false_positives`.
    pub false_positive_findings: u32,
    pub true_positives: u32,
    pub false_positives: u32,
    pub false_negatives: u32,
    /// Absolute long- and short-axis errors in mm, when the largest finding matched.
    pub caliper_errors: Option<(f64, f64)>,
    /// The frame's lesions per [`SIZE_BANDS`] band, and those matched.
    pub by_size: [LesionsFound; SIZE_BANDS.len()],
    /// The same per [`CONSPICUITY_BANDS`] band (lesions whose truth has a
    /// conspicuity).
    pub by_conspicuity: [LesionsFound; CONSPICUITY_BANDS.len()],
    /// Lesions under the faint-lesion cut, counted neither way.
    pub faint_ignored: u32,
}

/// Whether a lesion falls under the faint-lesion cut `faint_below` (a lesion
/// without a conspicuity never does).
fn is_faint(lesion: &LesionTruth, faint_below: Option<f32>) -> bool {
    matches!((lesion.conspicuity, faint_below), (Some(c), Some(z)) if c < z)
}

/// The most lesions a frame's truth can name (their labels are a byte from
/// [`label::LESION_BASE`] up).
const MAX_LESIONS: usize = 256 - label::LESION_BASE as usize;

impl FrameScore {
    /// Scores a frame's segmentation `mask` and `findings` against `truth`.
    pub fn of(mask: &FrameMask, findings: &FrameFindings, truth: &GroundTruth) -> Self {
        Self::scored(mask, findings, truth, None)
    }

    /// [`FrameScore::of`] with lesions of conspicuity under `faint_below`
    /// counted neither way (see the module's notes). A frame whose lesions
    /// are all faint is neither lesion-free nor in the Dice mean.
    pub fn scored(
        mask: &FrameMask,
        findings: &FrameFindings,
        truth: &GroundTruth,
        faint_below: Option<f32>,
    ) -> Self {
        let mut faint = [false; MAX_LESIONS];
        let mut ignored_labels = [0u8; MAX_LESIONS];
        let mut ignored = 0usize;
        for (i, lesion) in truth.lesions.iter().enumerate().take(MAX_LESIONS) {
            if is_faint(lesion, faint_below) {
                faint[i] = true;
                ignored_labels[ignored] = lesion.label;
                ignored += 1;
            }
        }
        let counted = truth.lesions.len() - ignored;
        let overlap = lesion_overlap_ignoring(mask, truth, &ignored_labels[..ignored]);
        let lesion_free = truth.lesions.is_empty();
        let mut score = FrameScore {
            dice: overlap.map(|o| o.0),
            iou: overlap.map(|o| o.1),
            lesion_free,
            false_alarm: lesion_free && !findings.findings.is_empty(),
            false_positive_findings: if lesion_free {
                lesion_free_findings(findings)
            } else {
                0
            },
            ..Self::default()
        };
        let mut matched = [false; MAX_LESIONS];
        for d in findings.detections() {
            // The unmatched lesion of highest IoU, among the counted lesions
            // (`faint_ones` false) or the faint ones.
            let best = |faint_ones: bool, matched: &[bool; MAX_LESIONS]| {
                truth
                    .lesions
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !matched.get(*i).copied().unwrap_or(true))
                    .filter(|(i, _)| faint.get(*i).copied().unwrap_or(false) == faint_ones)
                    .map(|(i, l)| (i, iou(&d.bbox, &l.bbox)))
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .filter(|&(_, v)| v >= MATCH_IOU)
            };
            // A counted lesion first (as detection benchmarks match ignore
            // regions last); a box matching only a faint lesion is neither a
            // hit nor a false one.
            if let Some((i, _)) = best(false, &matched) {
                matched[i] = true;
                score.true_positives += 1;
            } else if let Some((i, _)) = best(true, &matched) {
                matched[i] = true;
            } else {
                score.false_positives += 1;
            }
        }
        score.faint_ignored = ignored as u32;
        score.false_negatives = counted as u32 - score.true_positives.min(counted as u32);
        let found = |i: usize| matched.get(i).copied().unwrap_or(false);
        score.by_size = count_bands(&truth.lesions, |l| size_band(l.long_axis.length_mm), found);
        score.by_conspicuity = count_bands(
            &truth.lesions,
            |l| band_of(f64::from(l.conspicuity?), &CONSPICUITY_BANDS),
            found,
        );
        let largest = truth
            .lesions
            .iter()
            .enumerate()
            .filter(|(i, _)| !faint.get(*i).copied().unwrap_or(false))
            .map(|(_, l)| l)
            .max_by_key(|l| l.area_px);
        if let (Some(lesion), Some(found)) = (largest, findings.segments().next()) {
            // Truth without a scale (an uncalibrated dataset image) has no
            // lengths in mm to compare with.
            let truth_in_mm =
                lesion.long_axis.length_mm.is_finite() && lesion.short_axis.length_mm.is_finite();
            if let (Some(long), Some(short), true) =
                (found.long_axis, found.short_axis, truth_in_mm)
            {
                if iou(&found.bbox, &lesion.bbox) >= MATCH_IOU {
                    score.caliper_errors = Some((
                        (long.caliper.length_mm - lesion.long_axis.length_mm).abs(),
                        (short.caliper.length_mm - lesion.short_axis.length_mm).abs(),
                    ));
                }
            }
        }
        score
    }
}

/// Caliper errors in 0.01 mm bins up to 20 mm (the last bin holds the rest),
/// for percentiles without keeping every error.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ErrorHistogram {
    counts: Vec<u32>,
    total: u64,
}

const BIN_MM: f64 = 0.01;
const BINS: usize = 2001;

impl ErrorHistogram {
    /// With its bins allocated up front, so that adding never allocates.
    pub fn preallocated() -> Self {
        Self {
            counts: vec![0; BINS],
            total: 0,
        }
    }

    pub fn add(&mut self, error_mm: f64) {
        if self.counts.is_empty() {
            self.counts.resize(BINS, 0);
        }
        let bin = if error_mm.is_finite() {
            ((error_mm.max(0.0) / BIN_MM).round() as usize).min(BINS - 1)
        } else {
            BINS - 1
        };
        self.counts[bin] += 1;
        self.total += 1;
    }

    /// The error at quantile `q` (0..1), to the bin (0.01 mm).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (bin, &n) in self.counts.iter().enumerate() {
            seen += u64::from(n);
            if seen >= rank {
                return Some(bin as f64 * BIN_MM);
            }
        }
        Some((BINS - 1) as f64 * BIN_MM)
    }
}

/// Scores added up over a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Accuracy {
    pub frames: u64,
    dice_sum: f64,
    iou_sum: f64,
    dice_frames: u64,
    dice_over_half: u64,
    lesion_free: u64,
    false_alarms: u64,
    false_findings: u64,
    tp: u64,
    fp: u64,
    fn_: u64,
    long_sum: f64,
    short_sum: f64,
    measured: u64,
    long_errors: ErrorHistogram,
    short_errors: ErrorHistogram,
    by_size: [(u64, u64); SIZE_BANDS.len()],
    by_conspicuity: [(u64, u64); CONSPICUITY_BANDS.len()],
    faint_ignored: u64,
}

/// Detection boxes matched (IoU >= 0.5) and not, over the frames scored.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct DetectionCounts {
    /// Boxes matched to a lesion.
    pub tp: u64,
    /// Boxes matched to none (on any frame, lesion-free ones included).
    pub fp: u64,
    /// Lesions no box matched.
    #[serde(rename = "fn")]
    pub fn_: u64,
}

/// The report's `accuracy` section.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AccuracySummary {
    /// Frames scored (frames that carried ground truth).
    pub frames: u64,
    /// Mean Dice of the segmentation, on frames with a lesion.
    pub dice_mean: Option<f64>,
    /// Mean IoU of the segmentation, on frames with a lesion.
    pub iou_mean: Option<f64>,
    /// Frames with a lesion in view: the ones Dice and IoU are means over.
    pub dice_frames: u64,
    /// Of those, frames whose Dice is above 0.5 (the lesion was found
    /// rather than grazed).
    pub dice_gt_0_5: u64,
    pub detection_recall: Option<f64>,
    pub detection_precision: Option<f64>,
    pub detection_counts: DetectionCounts,
    pub long_axis_mae_mm: Option<f64>,
    pub short_axis_mae_mm: Option<f64>,
    /// 95th percentiles of the caliper errors (to 0.01 mm).
    pub long_axis_p95_mm: Option<f64>,
    pub short_axis_p95_mm: Option<f64>,
    /// Frames whose largest finding was matched and measured.
    pub measured: u64,
    /// Frames without a lesion in view, and of those, frames on which
    /// something was found anyway (false positives per image).
    pub lesion_free_frames: u64,
    pub false_positive_frames: u64,
    /// Findings on lesion-free frames ([`lesion_free_findings`]), and
    /// the same per 100 lesion-free frames (None without one).
    pub false_positive_findings: u64,
    pub fp_per_100_empty_frames: Option<f64>,
    /// Detection recall per lesion long-axis band ([`SIZE_BANDS`]), every
    /// band listed; lesions without a length in mm are in none.
    pub recall_by_size: [SizeRecall; SIZE_BANDS.len()],
    /// Detection recall per conspicuity band ([`CONSPICUITY_BANDS`]), every
    /// band listed; lesions whose truth has no conspicuity (anything but a
    /// phantom export) are in none.
    pub recall_by_conspicuity: [ConspicuityRecall; CONSPICUITY_BANDS.len()],
    /// Lesions under the faint-lesion cut (`[perception]
    /// ignore_faint_below`), counted neither as found nor as missed; absent
    /// when none was (the figures then count every lesion).
    #[serde(skip_serializing_if = "is_zero")]
    pub faint_lesions_ignored: u64,
    /// 95 % intervals of the headline figures, resampling scenes
    /// ([`intervals`]); set once, at the end of a run, when the
    /// frames named two scenes or more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intervals_95: Option<crate::Intervals>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One band of [`AccuracySummary::recall_by_conspicuity`].
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct ConspicuityRecall {
    /// The band, by the lesion's conspicuity ("under 2", "2-4", "4-6",
    /// "6-10", "10 and over").
    pub conspicuity: &'static str,
    pub lesions: u64,
    /// Of those, lesions a detection box matched (IoU >= 0.5).
    pub found: u64,
    /// found / lesions (None without a lesion in the band).
    pub recall: Option<f64>,
}

/// One band of [`AccuracySummary::recall_by_size`].
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct SizeRecall {
    /// The band, by the lesion's true long axis ("under 5 mm", "5-10 mm",
    /// "10-20 mm", "20 mm and over").
    pub long_axis: &'static str,
    pub lesions: u64,
    /// Of those, lesions a detection box matched (IoU >= 0.5).
    pub found: u64,
    /// found / lesions (None without a lesion in the band).
    pub recall: Option<f64>,
}

impl Accuracy {
    /// With its error histograms allocated up front, so that adding never
    /// allocates (the self-check on the frame path).
    pub fn preallocated() -> Self {
        Self {
            long_errors: ErrorHistogram::preallocated(),
            short_errors: ErrorHistogram::preallocated(),
            ..Self::default()
        }
    }

    pub fn add(&mut self, s: &FrameScore) {
        self.frames += 1;
        if let Some(d) = s.dice {
            self.dice_sum += d;
            self.iou_sum += s.iou.unwrap_or(0.0);
            self.dice_frames += 1;
            self.dice_over_half += u64::from(d > 0.5);
        }
        self.lesion_free += u64::from(s.lesion_free);
        self.false_alarms += u64::from(s.false_alarm);
        self.false_findings += u64::from(s.false_positive_findings);
        self.tp += u64::from(s.true_positives);
        self.fp += u64::from(s.false_positives);
        self.fn_ += u64::from(s.false_negatives);
        if let Some((l, w)) = s.caliper_errors {
            self.long_sum += l;
            self.short_sum += w;
            self.measured += 1;
            self.long_errors.add(l);
            self.short_errors.add(w);
        }
        add_bands(&mut self.by_size, &s.by_size);
        add_bands(&mut self.by_conspicuity, &s.by_conspicuity);
        self.faint_ignored += u64::from(s.faint_ignored);
    }

    /// Mean Dice so far (None before a frame with a lesion).
    pub fn dice_mean(&self) -> Option<f64> {
        (self.dice_frames > 0).then(|| self.dice_sum / self.dice_frames as f64)
    }

    pub fn long_axis_mae_mm(&self) -> Option<f64> {
        (self.measured > 0).then(|| self.long_sum / self.measured as f64)
    }

    pub fn summary(&self) -> AccuracySummary {
        let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
        AccuracySummary {
            frames: self.frames,
            dice_mean: self.dice_mean(),
            iou_mean: (self.dice_frames > 0).then(|| self.iou_sum / self.dice_frames as f64),
            dice_frames: self.dice_frames,
            dice_gt_0_5: self.dice_over_half,
            detection_recall: ratio(self.tp, self.tp + self.fn_),
            detection_precision: ratio(self.tp, self.tp + self.fp),
            detection_counts: DetectionCounts {
                tp: self.tp,
                fp: self.fp,
                fn_: self.fn_,
            },
            long_axis_mae_mm: self.long_axis_mae_mm(),
            short_axis_mae_mm: (self.measured > 0).then(|| self.short_sum / self.measured as f64),
            long_axis_p95_mm: self.long_errors.quantile(0.95),
            short_axis_p95_mm: self.short_errors.quantile(0.95),
            measured: self.measured,
            lesion_free_frames: self.lesion_free,
            false_positive_frames: self.false_alarms,
            false_positive_findings: self.false_findings,
            fp_per_100_empty_frames: ratio(100 * self.false_findings, self.lesion_free),
            recall_by_size: std::array::from_fn(|band| {
                let (lesions, found) = self.by_size[band];
                SizeRecall {
                    long_axis: SIZE_BANDS[band].0,
                    lesions,
                    found,
                    recall: ratio(found, lesions),
                }
            }),
            recall_by_conspicuity: std::array::from_fn(|band| {
                let (lesions, found) = self.by_conspicuity[band];
                ConspicuityRecall {
                    conspicuity: CONSPICUITY_BANDS[band].0,
                    lesions,
                    found,
                    recall: ratio(found, lesions),
                }
            }),
            faint_lesions_ignored: self.faint_ignored,
            intervals_95: None,
        }
    }
}

/// Adds one frame's band counts to a run's.
fn add_bands(sums: &mut [(u64, u64)], frame: &[LesionsFound]) {
    for (sum, band) in sums.iter_mut().zip(frame) {
        sum.0 += u64::from(band.lesions);
        sum.1 += u64::from(band.found);
    }
}

/// The sums of group `name`, made (with `T::default()`) the first time it is seen.
fn group_slot<'a, T: Default>(groups: &'a mut Vec<(String, T)>, name: &str) -> &'a mut T {
    let at = match groups.iter().position(|(g, _)| g == name) {
        Some(at) => at,
        None => {
            groups.push((name.to_owned(), T::default()));
            groups.len() - 1
        }
    };
    &mut groups[at].1
}

/// Scores added up per group of frames: per class (the class each frame is
/// scored under, see [`frame_class`]) or per echo pattern (see
/// [`frame_echo_pattern`]). The groups named up front
/// ([`GroupedAccuracy::with_groups`]: the model's labels, its echo
/// patterns) are ready before the first frame, so adding to them never
/// allocates; any other group's slot is made the first time it is seen.
/// Groups without a frame are left out of the summaries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupedAccuracy {
    classes: Vec<(String, Accuracy)>,
}

impl GroupedAccuracy {
    /// With a preallocated slot for each of `names`.
    pub fn with_groups<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        let mut grouped = Self::default();
        for name in names {
            let name = name.into();
            if !grouped.classes.iter().any(|(c, _)| *c == name) {
                grouped.classes.push((name, Accuracy::preallocated()));
            }
        }
        grouped
    }

    pub fn add(&mut self, class: &str, s: &FrameScore) {
        group_slot(&mut self.classes, class).add(s);
    }

    /// Each group's summary, by name (groups that scored a frame).
    pub fn summaries(&self) -> std::collections::BTreeMap<String, AccuracySummary> {
        self.classes
            .iter()
            .filter(|(_, a)| a.frames > 0)
            .map(|(c, a)| (c.clone(), a.summary()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonoflow_core::annotations::{FindingKind, FrameFinding};
    use sonoflow_core::findings::{
        Caliper, ImageRegion, LabelMap, LesionTruth, PixelSpacing, Point,
    };

    #[test]
    fn iou_of_identical_disjoint_and_half_overlapping_boxes() {
        let a = BoundingBox {
            x0: 0.0,
            y0: 0.0,
            x1: 10.0,
            y1: 10.0,
        };
        assert_eq!(iou(&a, &a), 1.0);
        assert_eq!(
            iou(
                &a,
                &BoundingBox {
                    x0: 20.0,
                    y0: 0.0,
                    x1: 30.0,
                    y1: 10.0
                }
            ),
            0.0
        );
        let half = BoundingBox {
            x0: 5.0,
            y0: 0.0,
            x1: 15.0,
            y1: 10.0,
        };
        assert!((iou(&a, &half) - 1.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn accuracy_adds_frames_up() {
        let mut acc = Accuracy::default();
        let lesion = FrameScore {
            dice: Some(0.8),
            iou: Some(0.8 / 1.2),
            true_positives: 1,
            false_positives: 1,
            false_negatives: 0,
            caliper_errors: Some((0.2, 0.4)),
            ..FrameScore::default()
        };
        let missed = FrameScore {
            false_negatives: 1,
            ..FrameScore::default()
        };
        let false_alarm = FrameScore {
            false_positives: 1,
            lesion_free: true,
            false_alarm: true,
            false_positive_findings: 2,
            ..FrameScore::default()
        };
        let grazed = FrameScore {
            dice: Some(0.4),
            iou: Some(0.25),
            false_negatives: 1,
            ..FrameScore::default()
        };
        let mut by_class = GroupedAccuracy::default();
        for (class, score) in [
            ("mass", &lesion),
            ("cyst", &missed),
            (NO_LESION, &false_alarm),
            ("mass", &grazed),
        ] {
            acc.add(score);
            by_class.add(class, score);
        }
        let s = acc.summary();
        assert_eq!((s.frames, s.measured), (4, 1));
        assert!((s.dice_mean.expect("dice") - 0.6).abs() < 1e-12);
        assert!((s.iou_mean.expect("iou") - (0.8 / 1.2 + 0.25) / 2.0).abs() < 1e-12);
        assert_eq!((s.dice_frames, s.dice_gt_0_5), (2, 1));
        assert_eq!((s.lesion_free_frames, s.false_positive_frames), (1, 1));
        assert_eq!(s.false_positive_findings, 2);
        assert_eq!(s.fp_per_100_empty_frames, Some(200.0));
        let classes = by_class.summaries();
        assert_eq!(classes.len(), 3);
        assert_eq!(classes["mass"].detection_recall, Some(0.5));
        assert_eq!(classes["mass"].dice_gt_0_5, 1);
        assert_eq!(classes["cyst"].detection_recall, Some(0.0));
        assert_eq!(classes["cyst"].fp_per_100_empty_frames, None);
        assert_eq!(classes[NO_LESION].false_positive_frames, 1);
        assert_eq!(classes[NO_LESION].dice_mean, None);
        assert_eq!(
            s.detection_counts,
            DetectionCounts {
                tp: 1,
                fp: 2,
                fn_: 2
            }
        );
        assert_eq!(s.detection_recall, Some(1.0 / 3.0));
        assert_eq!(s.detection_precision, Some(1.0 / 3.0));
        assert_eq!(s.long_axis_mae_mm, Some(0.2));
        assert_eq!(s.long_axis_p95_mm, Some(0.2));
    }

    fn bbox(x0: f32, y0: f32, x1: f32, y1: f32) -> BoundingBox {
        BoundingBox { x0, y0, x1, y1 }
    }

    fn lesion(echo: Option<&str>) -> LesionTruth {
        let caliper = Caliper {
            a: Point::default(),
            b: Point::default(),
            length_mm: f64::NAN,
        };
        LesionTruth {
            id: 0,
            label: label::LESION_BASE,
            class: "mass".to_owned(),
            attributes: echo
                .map(|e| (ECHO_PATTERN.to_owned(), e.to_owned()))
                .into_iter()
                .collect(),
            assessment: "probably_benign".to_owned(),
            bbox: bbox(0.0, 0.0, 4.0, 4.0),
            area_px: 16,
            long_axis: caliper,
            short_axis: caliper,
            conspicuity: None,
        }
    }

    fn truth(lesions: Vec<LesionTruth>) -> GroundTruth {
        GroundTruth {
            frame_index: 0,
            scene: None,
            pixel_spacing: PixelSpacing::isotropic(0.1),
            region: ImageRegion::Rect {
                x0: 0,
                y0: 0,
                x1: 8,
                y1: 8,
            },
            lesions,
            labels: LabelMap {
                width: 8,
                height: 8,
                data: vec![label::BACKGROUND; 64],
            },
        }
    }

    #[test]
    fn a_frame_is_grouped_under_the_echo_pattern_its_lesions_share() {
        assert_eq!(frame_echo_pattern(&truth(vec![])), None);
        assert_eq!(frame_echo_pattern(&truth(vec![lesion(None)])), None);
        let hypo = || lesion(Some("hypoechoic"));
        assert_eq!(
            frame_echo_pattern(&truth(vec![hypo(), hypo()])),
            Some("hypoechoic")
        );
        assert_eq!(
            frame_echo_pattern(&truth(vec![hypo(), lesion(Some("anechoic"))])),
            Some(MIXED_ECHO)
        );
        assert_eq!(
            frame_echo_pattern(&truth(vec![lesion(None), hypo()])),
            Some(MIXED_ECHO)
        );
    }

    fn found(kind: FindingKind, b: BoundingBox) -> FrameFinding {
        FrameFinding {
            track: 0,
            kind,
            bbox: b,
            area_px: 16,
            confidence: 0.9,
            contour: (0, 0),
            long_axis: None,
            short_axis: None,
            ellipse: None,
        }
    }

    #[test]
    fn findings_on_a_lesion_free_frame_count_a_contour_and_its_box_once() {
        let mask = FrameMask::default();
        let mut findings = FrameFindings::with_capacity(4, 0);
        let clear = truth(vec![]);
        let score = FrameScore::of(&mask, &findings, &clear);
        assert!(score.lesion_free && !score.false_alarm);
        assert_eq!(score.false_positive_findings, 0);
        // One lesion-like blob shown as a contour and its box, one box
        // elsewhere, one contour elsewhere: three findings.
        findings.findings.extend([
            found(FindingKind::Segment, bbox(0.0, 0.0, 4.0, 4.0)),
            found(FindingKind::Segment, bbox(0.0, 5.0, 2.0, 8.0)),
            found(FindingKind::Detection, bbox(0.0, 0.0, 4.0, 4.2)),
            found(FindingKind::Detection, bbox(5.0, 5.0, 8.0, 8.0)),
        ]);
        assert_eq!(lesion_free_findings(&findings), 3);
        let score = FrameScore::of(&mask, &findings, &clear);
        assert!(score.false_alarm);
        assert_eq!(score.false_positive_findings, 3);
        assert_eq!(score.false_positives, 2, "unmatched boxes, as before");
        // With a lesion in view, extra boxes are detection false positives only.
        let score = FrameScore::of(&mask, &findings, &truth(vec![lesion(None)]));
        assert_eq!(score.false_positive_findings, 0);
        assert_eq!((score.true_positives, score.false_positives), (1, 1));
    }

    /// A lesion of `long_mm` (NaN: no length) with its box at `x0`.
    fn sized_lesion(long_mm: f64, x0: f32) -> LesionTruth {
        let mut l = lesion(None);
        l.long_axis.length_mm = long_mm;
        l.bbox = bbox(x0, 0.0, x0 + 4.0, 4.0);
        l
    }

    #[test]
    fn recall_is_counted_per_lesion_size_band() {
        assert_eq!(size_band(0.0), Some(0));
        assert_eq!(size_band(4.99), Some(0));
        assert_eq!(size_band(5.0), Some(1));
        assert_eq!(size_band(19.9), Some(2));
        assert_eq!(size_band(30.0), Some(3));
        assert_eq!(size_band(f64::NAN), None);
        // Two 3 mm lesions (one found), a 12 mm one (found), one without a
        // length (in no band), and a box on nothing.
        let t = truth(vec![
            sized_lesion(3.0, 0.0),
            sized_lesion(3.0, 10.0),
            sized_lesion(12.0, 20.0),
            sized_lesion(f64::NAN, 30.0),
        ]);
        let mut findings = FrameFindings::with_capacity(4, 0);
        findings.findings.extend([
            found(FindingKind::Detection, bbox(0.0, 0.0, 4.0, 4.0)),
            found(FindingKind::Detection, bbox(20.0, 0.0, 24.0, 4.0)),
            found(FindingKind::Detection, bbox(50.0, 0.0, 54.0, 4.0)),
        ]);
        let score = FrameScore::of(&FrameMask::default(), &findings, &t);
        assert_eq!((score.true_positives, score.false_negatives), (2, 2));
        let counts = |lesions, found| LesionsFound { lesions, found };
        assert_eq!(
            score.by_size,
            [counts(2, 1), counts(0, 0), counts(1, 1), counts(0, 0)]
        );
        let mut acc = Accuracy::default();
        acc.add(&score);
        acc.add(&score);
        let bands = acc.summary().recall_by_size;
        assert_eq!(
            bands.map(|b| (b.long_axis, b.lesions, b.found)),
            [
                ("under 5 mm", 4, 2),
                ("5-10 mm", 0, 0),
                ("10-20 mm", 2, 2),
                ("20 mm and over", 0, 0)
            ]
        );
        assert_eq!(bands[0].recall, Some(0.5));
        assert_eq!(bands[1].recall, None);
    }

    #[test]
    fn recall_is_counted_per_conspicuity_band() {
        // A faint lesion (missed), a plain one (found), and one without a
        // conspicuity (a dataset's truth: in no band).
        let with = |z: Option<f32>, x0: f32| LesionTruth {
            conspicuity: z,
            ..sized_lesion(8.0, x0)
        };
        let t = truth(vec![
            with(Some(1.5), 0.0),
            with(Some(12.0), 10.0),
            with(None, 20.0),
        ]);
        let mut findings = FrameFindings::with_capacity(4, 0);
        findings.findings.extend([
            found(FindingKind::Detection, bbox(10.0, 0.0, 14.0, 4.0)),
            found(FindingKind::Detection, bbox(20.0, 0.0, 24.0, 4.0)),
        ]);
        let score = FrameScore::of(&FrameMask::default(), &findings, &t);
        let mut acc = Accuracy::default();
        acc.add(&score);
        let bands = acc.summary().recall_by_conspicuity;
        assert_eq!(
            bands.map(|b| (b.conspicuity, b.lesions, b.found)),
            [
                ("under 2", 1, 0),
                ("2-4", 0, 0),
                ("4-6", 0, 0),
                ("6-10", 0, 0),
                ("10 and over", 1, 1)
            ]
        );
        assert_eq!(bands[4].recall, Some(1.0));
    }

    #[test]
    fn a_faint_lesion_under_the_cut_counts_neither_way() {
        // A faint lesion (label 10, top left quarter) under a box and the
        // mask, and a plain one (label 11, bottom right) half covered by the
        // mask and missed by the boxes.
        let with = |z: Option<f32>, label_offset: u8, x0: f32| LesionTruth {
            conspicuity: z,
            label: label::LESION_BASE + label_offset,
            bbox: bbox(x0, x0, x0 + 4.0, x0 + 4.0),
            ..lesion(None)
        };
        let mut t = truth(vec![with(Some(2.0), 0, 0.0), with(Some(12.0), 1, 4.0)]);
        let mut mask = FrameMask::default();
        (mask.width, mask.height) = (8, 8);
        mask.inside = vec![0; 64];
        for y in 0..8 {
            for x in 0..8 {
                let at = y * 8 + x;
                if x < 4 && y < 4 {
                    t.labels.data[at] = label::LESION_BASE;
                    mask.inside[at] = 1;
                } else if x >= 4 && y >= 4 {
                    t.labels.data[at] = label::LESION_BASE + 1;
                    mask.inside[at] = u8::from(y < 6);
                }
            }
        }
        let mut findings = FrameFindings::with_capacity(4, 0);
        findings
            .findings
            .push(found(FindingKind::Detection, bbox(0.0, 0.0, 4.0, 4.0)));

        let all = FrameScore::scored(&mask, &findings, &t, None);
        assert_eq!(all, FrameScore::of(&mask, &findings, &t));
        assert_eq!(all.dice, Some(48.0 / 56.0));
        assert_eq!(
            (all.true_positives, all.false_positives, all.false_negatives),
            (1, 0, 1)
        );
        assert_eq!(all.faint_ignored, 0);

        let cut = FrameScore::scored(&mask, &findings, &t, Some(4.0));
        assert_eq!(
            cut.dice,
            Some(16.0 / 24.0),
            "the faint lesion's pixels are out"
        );
        assert_eq!(
            (cut.true_positives, cut.false_positives, cut.false_negatives),
            (0, 0, 1)
        );
        assert_eq!(cut.faint_ignored, 1);
        assert_eq!(
            cut.by_conspicuity, all.by_conspicuity,
            "the bands count it still"
        );
        let mut acc = Accuracy::default();
        acc.add(&cut);
        let s = acc.summary();
        assert_eq!(s.faint_lesions_ignored, 1);
        assert_eq!(s.detection_precision, None);
        assert_eq!(s.detection_recall, Some(0.0));

        // A frame whose only lesion is faint: not lesion-free, no Dice, and
        // its box is no false alarm.
        let only = truth(vec![with(Some(2.0), 0, 0.0)]);
        let mut only = GroundTruth {
            labels: t.labels.clone(),
            ..only
        };
        only.labels
            .data
            .iter_mut()
            .filter(|l| **l == label::LESION_BASE + 1)
            .for_each(|l| *l = label::BACKGROUND);
        let score = FrameScore::scored(&mask, &findings, &only, Some(4.0));
        assert_eq!(score.dice, None);
        assert!(!score.lesion_free && !score.false_alarm);
        assert_eq!(
            (
                score.true_positives,
                score.false_positives,
                score.false_negatives
            ),
            (0, 0, 0)
        );

        // A box matching a faint lesion best and a counted one too goes to
        // the counted one.
        let overlapping = truth(vec![with(Some(2.0), 0, 0.0), with(Some(12.0), 1, 0.5)]);
        let mut near_both = FrameFindings::with_capacity(4, 0);
        near_both
            .findings
            .push(found(FindingKind::Detection, bbox(0.1, 0.1, 4.1, 4.1)));
        let score = FrameScore::scored(&mask, &near_both, &overlapping, Some(4.0));
        assert_eq!(
            (
                score.true_positives,
                score.false_positives,
                score.false_negatives
            ),
            (1, 0, 0)
        );
        let score = FrameScore::scored(&mask, &near_both, &overlapping, None);
        assert_eq!(
            (score.true_positives, score.false_negatives),
            (1, 1),
            "uncut: the best IoU wins"
        );

        // A lesion without a conspicuity (a dataset's truth) always counts.
        let unmeasured = truth(vec![with(None, 0, 0.0)]);
        let score = FrameScore::scored(&mask, &findings, &unmeasured, Some(4.0));
        assert_eq!((score.true_positives, score.faint_ignored), (1, 0));
    }

    #[test]
    fn named_groups_are_ready_up_front_and_summarised_once_scored() {
        let mut groups = GroupedAccuracy::with_groups(["anechoic", "hypoechoic", "anechoic"]);
        assert!(groups.summaries().is_empty(), "no frame scored yet");
        let hit = FrameScore {
            dice: Some(0.9),
            caliper_errors: Some((0.1, 0.1)),
            ..FrameScore::default()
        };
        groups.add("hypoechoic", &hit);
        groups.add(MIXED_ECHO, &hit);
        let summaries = groups.summaries();
        assert_eq!(
            summaries.keys().collect::<Vec<_>>(),
            ["hypoechoic", MIXED_ECHO]
        );
        assert_eq!(summaries["hypoechoic"].long_axis_p95_mm, Some(0.1));
        assert_eq!(
            Accuracy::preallocated().summary(),
            Accuracy::default().summary()
        );
    }

    #[test]
    fn error_percentiles_come_from_the_histogram() {
        let mut h = ErrorHistogram::default();
        assert_eq!(h.quantile(0.95), None);
        for k in 1..=100 {
            h.add(k as f64 * 0.01);
        }
        h.add(f64::NAN);
        assert_eq!(h.quantile(0.5), Some(0.51));
        assert_eq!(h.quantile(0.95), Some(0.96));
        assert_eq!(h.quantile(1.0), Some(20.0));
    }
}
