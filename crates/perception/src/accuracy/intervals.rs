//! How sure the self-check's headline figures are: 95 % confidence
//! intervals by resampling scenes (a cluster bootstrap).
//!
//! Frames of one scene (a phantom export's sequence: one probe sweep over
//! one scene) are not independent: a lesion missed on one frame is missed
//! on its neighbours. So the unit resampled is the scene. Each draw takes
//! as many scenes as were scored, with replacement, adds up their frames'
//! sums and computes the figures from them as [`crate::Accuracy`] does;
//! the interval is the 2.5th to 97.5th percentile over the draws. A figure
//! a draw cannot compute (no lesion-free scene drawn, say) is left out of
//! that draw. The draws are seeded, so a dataset gives the same interval
//! every time.
//!
//! Only frames whose truth names a scene are counted. A figure gets an
//! interval only when at least [`MIN_SCENES`] scenes hold frames it applies
//! to (Dice: frames with a lesion; false positives: lesion-free frames; the
//! long axis: measured lesions): with fewer clusters a percentile bootstrap
//! covers far less than it claims.
//!
//! Two models scored on the same scenes are compared pairwise
//! ([`paired_difference`]): each draw takes the same scenes for both, so
//! what the scenes share (a faint lesion both miss) cancels, and the
//! difference's interval is far narrower than either figure's.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::FrameScore;

/// The intervals' coverage.
pub const LEVEL: f64 = 0.95;
/// Resamples per interval.
pub const DRAWS: u32 = 2000;
/// Scenes a figure must rest on (scenes holding frames it applies to) to
/// get an interval.
pub const MIN_SCENES: usize = 10;
/// Seed of the resampling (any fixed value: the same data, the same interval).
const SEED: u64 = 0x5eed_0f5c_e7e5;

/// The sums one scene's frames add up to: those the headline figures are
/// ratios of.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Totals {
    /// Frames scored (a paired comparison checks both runs scored the same).
    frames: u64,
    dice_sum: f64,
    dice_frames: u64,
    tp: u64,
    fp: u64,
    fn_: u64,
    long_sum: f64,
    measured: u64,
    false_findings: u64,
    lesion_free: u64,
}

/// Figures per draw, in [`Figures`]' order.
const FIGURES: usize = 5;

/// Something about each headline figure (its interval, its change).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Figures<T> {
    pub dice_mean: Option<T>,
    pub detection_precision: Option<T>,
    pub detection_recall: Option<T>,
    pub long_axis_mae_mm: Option<T>,
    pub fp_per_100_empty_frames: Option<T>,
}

impl<T: Copy> Figures<T> {
    fn from_array([dice, precision, recall, long, fp]: [Option<T>; FIGURES]) -> Self {
        Self {
            dice_mean: dice,
            detection_precision: precision,
            detection_recall: recall,
            long_axis_mae_mm: long,
            fp_per_100_empty_frames: fp,
        }
    }

    /// Dice, precision, recall, long-axis MAE, false positives per 100
    /// lesion-free frames.
    pub fn to_array(&self) -> [Option<T>; FIGURES] {
        [
            self.dice_mean,
            self.detection_precision,
            self.detection_recall,
            self.long_axis_mae_mm,
            self.fp_per_100_empty_frames,
        ]
    }
}

impl Totals {
    fn add(&mut self, s: &FrameScore) {
        self.frames += 1;
        if let Some(d) = s.dice {
            self.dice_sum += d;
            self.dice_frames += 1;
        }
        self.tp += u64::from(s.true_positives);
        self.fp += u64::from(s.false_positives);
        self.fn_ += u64::from(s.false_negatives);
        if let Some((long, _)) = s.caliper_errors {
            self.long_sum += long;
            self.measured += 1;
        }
        self.false_findings += u64::from(s.false_positive_findings);
        self.lesion_free += u64::from(s.lesion_free);
    }

    fn merge(&mut self, o: &Self) {
        self.frames += o.frames;
        self.dice_sum += o.dice_sum;
        self.dice_frames += o.dice_frames;
        self.tp += o.tp;
        self.fp += o.fp;
        self.fn_ += o.fn_;
        self.long_sum += o.long_sum;
        self.measured += o.measured;
        self.false_findings += o.false_findings;
        self.lesion_free += o.lesion_free;
    }

    /// The figures in [`Figures`]' order, as [`crate::Accuracy::summary`]
    /// computes them.
    fn figures(&self) -> [Option<f64>; FIGURES] {
        let ratio = |a: f64, b: u64| (b > 0).then(|| a / b as f64);
        [
            ratio(self.dice_sum, self.dice_frames),
            ratio(self.tp as f64, self.tp + self.fp),
            ratio(self.tp as f64, self.tp + self.fn_),
            ratio(self.long_sum, self.measured),
            ratio(100.0 * self.false_findings as f64, self.lesion_free),
        ]
    }
}

/// Which figures rest on [`MIN_SCENES`] scenes or more, given for each
/// scene which figures it holds frames for.
fn rests_on(scenes: impl IntoIterator<Item = [bool; FIGURES]>) -> [bool; FIGURES] {
    let mut counts = [0usize; FIGURES];
    for has in scenes {
        for (count, has) in counts.iter_mut().zip(has) {
            *count += usize::from(has);
        }
    }
    counts.map(|c| c >= MIN_SCENES)
}

/// 95 % intervals [low, high] of the headline figures, each None where the
/// figure itself is (no frame it applies to).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Intervals {
    /// The coverage (0.95).
    pub level: f64,
    /// Scenes resampled (every scene of the group; each figure rests on
    /// those holding frames it applies to, [`MIN_SCENES`] at least).
    pub scenes: u64,
    /// Resamples drawn.
    pub draws: u32,
    #[serde(flatten)]
    pub figures: Figures<[f64; 2]>,
}

/// Frame sums per scene, in the order scenes were first seen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SceneTotals {
    at: HashMap<u64, usize>,
    scenes: Vec<Totals>,
}

impl SceneTotals {
    /// Adds a frame of `scene` (allocates the first time a scene is seen).
    pub fn add(&mut self, scene: u64, s: &FrameScore) {
        let next = self.scenes.len();
        let at = *self.at.entry(scene).or_insert(next);
        if at == next {
            self.scenes.push(Totals::default());
        }
        self.scenes[at].add(s);
    }

    /// Scenes seen.
    pub fn scenes(&self) -> usize {
        self.scenes.len()
    }

    /// The intervals over the scenes so far: None when no figure rests on
    /// [`MIN_SCENES`] scenes.
    pub fn intervals(&self) -> Option<Intervals> {
        let n = self.scenes.len();
        let enough = rests_on(self.scenes.iter().map(|s| s.figures().map(|f| f.is_some())));
        if !enough.contains(&true) {
            return None;
        }
        let mut draws: [Vec<f64>; FIGURES] =
            std::array::from_fn(|_| Vec::with_capacity(DRAWS as usize));
        let mut rng = SplitMix(SEED);
        for _ in 0..DRAWS {
            let mut sum = Totals::default();
            for _ in 0..n {
                sum.merge(&self.scenes[rng.below(n)]);
            }
            for (values, figure) in draws.iter_mut().zip(sum.figures()) {
                values.extend(figure);
            }
        }
        Some(Intervals {
            level: LEVEL,
            scenes: n as u64,
            draws: DRAWS,
            figures: Figures::from_array(std::array::from_fn(|k| {
                enough[k]
                    .then(|| percentile_interval(&mut draws[k]))
                    .flatten()
            })),
        })
    }
}

/// One figure of a paired comparison: `a - b` over the scenes both scored,
/// and its 95 % interval.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Change {
    pub difference: f64,
    pub interval: [f64; 2],
}

/// The headline figures of run `a` minus those of run `b`, over the scenes
/// both scored, each with its 95 % interval (None where either run has no
/// such figure).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Difference {
    pub level: f64,
    /// Scenes both runs scored (the ones compared).
    pub scenes: u64,
    pub draws: u32,
    #[serde(flatten)]
    pub figures: Figures<Change>,
}

/// `a` minus `b` over their common scenes, resampled in pairs: None when
/// no figure rests on [`MIN_SCENES`] common scenes in both runs, or when a
/// common scene's frame count differs between the runs (they did not score
/// the same frames).
pub fn paired_difference(a: &SceneTotals, b: &SceneTotals) -> Option<Difference> {
    let mut common: Vec<(u64, usize, usize)> =
        a.at.iter()
            .filter_map(|(scene, &i)| Some((*scene, i, *b.at.get(scene)?)))
            .collect();
    common.sort_unstable();
    let n = common.len();
    if common
        .iter()
        .any(|&(_, i, j)| a.scenes[i].frames != b.scenes[j].frames)
    {
        return None;
    }
    // A figure rests on the common scenes where both runs have it.
    let enough = rests_on(common.iter().map(|&(_, i, j)| {
        let (fa, fb) = (a.scenes[i].figures(), b.scenes[j].figures());
        std::array::from_fn(|k| fa[k].is_some() && fb[k].is_some())
    }));
    if !enough.contains(&true) {
        return None;
    }
    // Both runs' sums over the scenes `picked` (positions in `common`).
    let pair_sums = |picked: &mut dyn Iterator<Item = usize>| {
        let (mut sa, mut sb) = (Totals::default(), Totals::default());
        for k in picked {
            let (_, i, j) = common[k];
            sa.merge(&a.scenes[i]);
            sb.merge(&b.scenes[j]);
        }
        (sa.figures(), sb.figures())
    };
    let (fa, fb) = pair_sums(&mut (0..n));
    let mut draws: [Vec<f64>; FIGURES] =
        std::array::from_fn(|_| Vec::with_capacity(DRAWS as usize));
    let mut rng = SplitMix(SEED);
    for _ in 0..DRAWS {
        let (da, db) = pair_sums(&mut (0..n).map(|_| rng.below(n)));
        for (k, values) in draws.iter_mut().enumerate() {
            if let (Some(x), Some(y)) = (da[k], db[k]) {
                values.push(x - y);
            }
        }
    }
    Some(Difference {
        level: LEVEL,
        scenes: n as u64,
        draws: DRAWS,
        figures: Figures::from_array(std::array::from_fn(|k| {
            if !enough[k] {
                return None;
            }
            Some(Change {
                difference: fa[k]? - fb[k]?,
                interval: percentile_interval(&mut draws[k])?,
            })
        })),
    })
}

/// Scene sums per group of frames (class, echo pattern), groups made when
/// first seen.
#[derive(Debug, Clone, Default)]
pub struct GroupedSceneTotals {
    groups: Vec<(String, SceneTotals)>,
}

impl GroupedSceneTotals {
    pub fn add(&mut self, group: &str, scene: u64, s: &FrameScore) {
        super::group_slot(&mut self.groups, group).add(scene, s);
    }

    /// Each group's intervals, by name (groups of two scenes or more).
    pub fn intervals(&self) -> BTreeMap<String, Intervals> {
        self.groups
            .iter()
            .filter_map(|(g, t)| Some((g.clone(), t.intervals()?)))
            .collect()
    }
}

/// The central [`LEVEL`] of `values` (sorted here), None if empty.
fn percentile_interval(values: &mut [f64]) -> Option<[f64; 2]> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let tail = (1.0 - LEVEL) / 2.0;
    let at =
        |q: f64| values[((q * (values.len() - 1) as f64).round() as usize).min(values.len() - 1)];
    Some([at(tail), at(1.0 - tail)])
}

/// SplitMix64: small, fast and seeded; plenty for resampling.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Accuracy;

    fn frame(dice: f64, tp: u32, fn_: u32) -> FrameScore {
        FrameScore {
            dice: Some(dice),
            true_positives: tp,
            false_negatives: fn_,
            caliper_errors: (tp > 0).then_some((dice, dice / 2.0)),
            ..FrameScore::default()
        }
    }

    fn lesion_free(findings: u32) -> FrameScore {
        FrameScore {
            lesion_free: true,
            false_alarm: findings > 0,
            false_positive_findings: findings,
            false_positives: findings,
            ..FrameScore::default()
        }
    }

    /// Scenes of four frames each, with Dice spread over scenes.
    fn scenes(n: u64) -> (SceneTotals, Accuracy) {
        scenes_offset(n, 0.0)
    }

    /// The same, with `offset` added to every frame's Dice.
    fn scenes_offset(n: u64, offset: f64) -> (SceneTotals, Accuracy) {
        let (mut totals, mut accuracy) = (SceneTotals::default(), Accuracy::default());
        for scene in 0..n {
            for k in 0..4 {
                let s = if scene % 5 == 4 {
                    lesion_free(u32::from(k == 0 && scene % 10 == 4))
                } else {
                    frame(
                        0.5 + offset + 0.4 * (scene % 7) as f64 / 6.0,
                        1,
                        u32::from(scene % 3 == 0),
                    )
                };
                totals.add(scene, &s);
                accuracy.add(&s);
            }
        }
        (totals, accuracy)
    }

    #[test]
    fn each_interval_holds_the_figure_of_all_frames_and_is_the_same_every_time() {
        let (totals, accuracy) = scenes(60);
        let i = totals.intervals().expect("60 scenes");
        assert_eq!((i.scenes, i.draws, i.level), (60, DRAWS, LEVEL));
        let a = accuracy.summary();
        let pairs = [
            (i.figures.dice_mean, a.dice_mean),
            (i.figures.detection_recall, a.detection_recall),
            (i.figures.detection_precision, a.detection_precision),
            (i.figures.long_axis_mae_mm, a.long_axis_mae_mm),
            (i.figures.fp_per_100_empty_frames, a.fp_per_100_empty_frames),
        ];
        for (interval, point) in pairs {
            let [lo, hi] = interval.expect("every figure applies");
            let point = point.expect("figure");
            assert!(lo <= point && point <= hi, "{lo} <= {point} <= {hi}");
            assert!(lo < hi, "scenes differ, so draws do: {lo} {hi}");
        }
        assert_eq!(totals.intervals(), Some(i), "seeded");
    }

    #[test]
    fn more_scenes_narrow_the_interval() {
        let width = |n| {
            let [lo, hi] = scenes(n)
                .0
                .intervals()
                .and_then(|i| i.figures.dice_mean)
                .expect("Dice");
            hi - lo
        };
        let (few, many) = (width(20), width(500));
        assert!(many < few * 0.5, "{few} -> {many}");
    }

    #[test]
    fn frames_of_a_scene_move_together() {
        // Twenty scenes of 50 frames, half found and half missed: 1000
        // independent frames would pin recall to 0.5 within about 0.03;
        // twenty scenes cannot, and the interval says so.
        let mut totals = SceneTotals::default();
        for k in 0..1000u64 {
            let scene = k % 20;
            let s = if scene % 2 == 0 {
                frame(0.9, 1, 0)
            } else {
                frame(0.0, 0, 1)
            };
            totals.add(scene, &s);
        }
        let i = totals.intervals().expect("twenty scenes");
        let [lo, hi] = i.figures.detection_recall.expect("recall");
        assert!(lo < 0.35 && hi > 0.65, "{lo} {hi}");
        // What does not apply stays empty.
        assert_eq!(i.figures.fp_per_100_empty_frames, None);
    }

    #[test]
    fn a_figure_on_fewer_than_ten_scenes_has_no_interval() {
        let mut totals = SceneTotals::default();
        assert_eq!(totals.intervals(), None);
        for scene in 0..9 {
            totals.add(scene, &frame(0.8, 1, 0));
            totals.add(100 + scene, &lesion_free(0));
        }
        assert_eq!(totals.scenes(), 18);
        assert_eq!(totals.intervals(), None, "each figure rests on nine scenes");
        totals.add(9, &frame(0.7, 1, 0));
        let i = totals.intervals().expect("Dice on ten scenes");
        assert!(i.figures.dice_mean.is_some());
        assert_eq!(
            i.figures.fp_per_100_empty_frames, None,
            "nine lesion-free scenes"
        );
    }

    #[test]
    fn a_paired_difference_is_narrower_than_either_figure_and_sees_a_small_gain() {
        // Model b finds what a finds, with Dice 0.01 higher on every frame:
        // the scenes' spread is shared, so the gain shows clearly.
        let (a, _) = scenes(100);
        let (b, _) = scenes_offset(100, 0.01);
        let d = paired_difference(&b, &a).expect("100 common scenes");
        assert_eq!(d.scenes, 100);
        let dice = d.figures.dice_mean.expect("Dice");
        assert!((dice.difference - 0.01).abs() < 1e-9, "{dice:?}");
        assert!(dice.interval[0] > 0.0, "the gain is resolved: {dice:?}");
        let [lo, hi] = a
            .intervals()
            .and_then(|i| i.figures.dice_mean)
            .expect("Dice");
        assert!(dice.interval[1] - dice.interval[0] < (hi - lo) / 10.0);
        let recall = d.figures.detection_recall.expect("recall");
        assert_eq!((recall.difference, recall.interval), (0.0, [0.0, 0.0]));
        // Scenes only one run scored are left out; under ten common, none.
        let mut lone = SceneTotals::default();
        lone.add(1000, &frame(0.9, 1, 0));
        lone.add(3, &frame(0.9, 1, 0));
        assert_eq!(paired_difference(&lone, &a), None);
        // Runs that did not score the same frames are not compared.
        let mut short = b.clone();
        short.add(0, &frame(0.9, 1, 0));
        assert_eq!(paired_difference(&short, &a), None);
    }

    #[test]
    fn groups_have_their_own_scenes() {
        let mut grouped = GroupedSceneTotals::default();
        for scene in 0..10 {
            grouped.add("anechoic", scene, &frame(0.9, 1, 0));
        }
        grouped.add("isoechoic", 3, &frame(0.2, 0, 1));
        let by_group = grouped.intervals();
        assert_eq!(
            by_group.keys().collect::<Vec<_>>(),
            ["anechoic"],
            "one scene: none"
        );
        assert_eq!(by_group["anechoic"].scenes, 10);
        let [lo, hi] = by_group["anechoic"].figures.dice_mean.expect("Dice");
        assert!((lo - 0.9).abs() < 1e-12 && (hi - 0.9).abs() < 1e-12);
    }
}
