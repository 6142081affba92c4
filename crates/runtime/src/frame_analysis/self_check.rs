//! The self-check against ground truth, kept off any lock: the AI thread
//! owns the running [`Accuracy`] and publishes its summary through an
//! `ArcSwap` every [`PUBLISH_EVERY`] scored frames and once more at the end.
//!
//! Publishing allocates nothing: two summaries take turns. The one not on
//! show (the spare) is refilled in place and swapped in; the one that comes
//! back becomes the spare. If a reader (the status line) still holds the
//! spare, the publish waits for the next frame instead of allocating.
//!
//! The per-class and per-echo-pattern sums ([`GroupedAccuracy`]) are
//! published once, at the end, with the 95 % intervals of every summary
//! when the frames' truth names scenes (a phantom export's sequences; see
//! `sonoflow_perception::accuracy::intervals`). Those scene sums allocate once per new
//! scene, so only datasets that name scenes pay for them; live sources name
//! none.

use std::sync::Arc;

use arc_swap::ArcSwap;
use std::collections::BTreeMap;

use sonoflow_perception::{
    Accuracy, AccuracySummary, FrameScore, GroupedAccuracy, GroupedSceneTotals, Intervals,
    SceneTotals, MIXED_ECHO, NO_LESION,
};

/// Where the grouped summaries are published at the end of a run.
pub struct GroupBoards<'a> {
    pub classes: &'a ArcSwap<BTreeMap<String, AccuracySummary>>,
    pub echo_patterns: &'a ArcSwap<BTreeMap<String, AccuracySummary>>,
    pub scenes: &'a ArcSwap<SceneTotals>,
}

/// Scored frames between publishes: about twice a second at 30 fps, the
/// status line's pace.
pub const PUBLISH_EVERY: u32 = 15;

/// The running self-check, owned by the AI thread.
pub struct SelfCheck {
    accuracy: Accuracy,
    by_class: GroupedAccuracy,
    by_echo_pattern: GroupedAccuracy,
    /// The same sums per scene, for the intervals.
    scenes: SceneTotals,
    scenes_by_class: GroupedSceneTotals,
    scenes_by_echo_pattern: GroupedSceneTotals,
    /// The summary not on show; None only inside [`SelfCheck::try_publish`].
    spare: Option<Arc<AccuracySummary>>,
    /// Frames scored since the last publish.
    unpublished: u32,
}

impl SelfCheck {
    /// Ready for frames of the model's `classes` (and lesion-free ones) and
    /// lesions of its `echo_patterns` (and frames of mixed patterns), so
    /// that scoring them never allocates; other groups are made when seen.
    pub fn new(classes: &[String], echo_patterns: &[String]) -> Self {
        let classes = classes.iter().map(String::as_str).chain([NO_LESION]);
        let echo_patterns = echo_patterns.iter().map(String::as_str).chain([MIXED_ECHO]);
        Self {
            accuracy: Accuracy::preallocated(),
            by_class: GroupedAccuracy::with_groups(classes),
            by_echo_pattern: GroupedAccuracy::with_groups(echo_patterns),
            scenes: SceneTotals::default(),
            scenes_by_class: GroupedSceneTotals::default(),
            scenes_by_echo_pattern: GroupedSceneTotals::default(),
            spare: Some(Arc::new(Accuracy::default().summary())),
            unpublished: 0,
        }
    }

    /// Adds one frame's score under `class` and its `echo_pattern` (if its
    /// lesions have one), and under its `scene` (if the truth names one);
    /// publishes into `board` when it is time.
    pub fn add(
        &mut self,
        score: &FrameScore,
        class: &str,
        echo_pattern: Option<&str>,
        scene: Option<u64>,
        board: &ArcSwap<AccuracySummary>,
    ) {
        self.accuracy.add(score);
        self.by_class.add(class, score);
        if let Some(pattern) = echo_pattern {
            self.by_echo_pattern.add(pattern, score);
        }
        if let Some(scene) = scene {
            self.scenes.add(scene, score);
            self.scenes_by_class.add(class, scene, score);
            if let Some(pattern) = echo_pattern {
                self.scenes_by_echo_pattern.add(pattern, scene, score);
            }
        }
        self.unpublished += 1;
        if self.unpublished >= PUBLISH_EVERY {
            self.try_publish(board);
        }
    }

    /// Publishes the summary so far unless a reader still holds the spare.
    fn try_publish(&mut self, board: &ArcSwap<AccuracySummary>) -> bool {
        let Some(mut spare) = self.spare.take() else {
            return false;
        };
        let published = match Arc::get_mut(&mut spare) {
            Some(summary) => {
                *summary = self.accuracy.summary();
                spare = board.swap(spare);
                self.unpublished = 0;
                true
            }
            None => false,
        };
        self.spare = Some(spare);
        published
    }

    /// Publishes whatever is not yet shown (the end of the run; off the
    /// frame path, so it may allocate when a reader holds the spare).
    pub fn finish(&mut self, board: &ArcSwap<AccuracySummary>, groups: GroupBoards<'_>) {
        if let Some(intervals) = self.scenes.intervals() {
            let mut summary = self.accuracy.summary();
            summary.intervals_95 = Some(intervals);
            board.store(Arc::new(summary));
            self.unpublished = 0;
        } else if self.unpublished > 0 && !self.try_publish(board) {
            board.store(Arc::new(self.accuracy.summary()));
            self.unpublished = 0;
        }
        groups.classes.store(Arc::new(with_intervals(
            self.by_class.summaries(),
            self.scenes_by_class.intervals(),
        )));
        groups.echo_patterns.store(Arc::new(with_intervals(
            self.by_echo_pattern.summaries(),
            self.scenes_by_echo_pattern.intervals(),
        )));
        // The end of the run: the sums move to the board.
        groups
            .scenes
            .store(Arc::new(std::mem::take(&mut self.scenes)));
    }
}

/// Each group's summary with its intervals, where it has them.
fn with_intervals(
    mut summaries: BTreeMap<String, AccuracySummary>,
    mut intervals: BTreeMap<String, Intervals>,
) -> BTreeMap<String, AccuracySummary> {
    for (group, summary) in &mut summaries {
        summary.intervals_95 = intervals.remove(group);
    }
    summaries
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit() -> FrameScore {
        FrameScore {
            dice: Some(0.5),
            true_positives: 1,
            ..FrameScore::default()
        }
    }

    /// Where a self-check publishes, and one to publish there.
    struct Boards {
        board: ArcSwap<AccuracySummary>,
        classes: ArcSwap<BTreeMap<String, AccuracySummary>>,
        echo_patterns: ArcSwap<BTreeMap<String, AccuracySummary>>,
        scenes: ArcSwap<SceneTotals>,
    }

    fn boards() -> (Boards, SelfCheck) {
        let boards = Boards {
            board: ArcSwap::from_pointee(Accuracy::default().summary()),
            classes: ArcSwap::from_pointee(BTreeMap::new()),
            echo_patterns: ArcSwap::from_pointee(BTreeMap::new()),
            scenes: ArcSwap::from_pointee(SceneTotals::default()),
        };
        let check = SelfCheck::new(&["mass".to_owned()], &["hypoechoic".to_owned()]);
        (boards, check)
    }

    impl Boards {
        fn finish(&self, check: &mut SelfCheck) {
            check.finish(
                &self.board,
                GroupBoards {
                    classes: &self.classes,
                    echo_patterns: &self.echo_patterns,
                    scenes: &self.scenes,
                },
            );
        }
    }

    #[test]
    fn publishes_every_n_frames_and_at_the_end() {
        let (boards, mut check) = boards();
        let Boards {
            board,
            classes,
            echo_patterns,
            ..
        } = &boards;
        for _ in 0..PUBLISH_EVERY - 1 {
            check.add(&hit(), "mass", Some("hypoechoic"), None, board);
        }
        assert_eq!(board.load().frames, 0, "not yet");
        check.add(&hit(), "mass", None, None, board);
        assert_eq!(board.load().frames, u64::from(PUBLISH_EVERY));
        check.add(&hit(), "mass", Some("hyperechoic"), None, board);
        boards.finish(&mut check);
        assert_eq!(board.load().frames, u64::from(PUBLISH_EVERY) + 1);
        assert_eq!(board.load().dice_mean, Some(0.5));
        assert_eq!(classes.load()["mass"].frames, u64::from(PUBLISH_EVERY) + 1);
        let echo = echo_patterns.load();
        assert_eq!(echo.len(), 2, "frames without a pattern are left out");
        assert_eq!(echo["hypoechoic"].frames, u64::from(PUBLISH_EVERY) - 1);
        assert_eq!(echo["hyperechoic"].frames, 1);
        assert_eq!(
            board.load().intervals_95,
            None,
            "no scene named: no interval"
        );
    }

    #[test]
    fn frames_that_name_scenes_get_intervals_at_the_end() {
        let (boards, mut check) = boards();
        let Boards {
            board,
            classes,
            echo_patterns,
            scenes,
        } = &boards;
        for k in 0..48u64 {
            let score = FrameScore {
                dice: Some(0.2 + 0.02 * (k / 4) as f64),
                true_positives: 1,
                ..FrameScore::default()
            };
            // Twelve scenes of four frames; hyperechoic in one scene only.
            let pattern = if k < 4 { "hyperechoic" } else { "hypoechoic" };
            check.add(&score, "mass", Some(pattern), Some(k / 4), board);
            assert_eq!(board.load().intervals_95, None, "only at the end");
        }
        boards.finish(&mut check);
        let overall = board.load();
        let intervals = overall.intervals_95.expect("twelve scenes");
        assert_eq!(intervals.scenes, 12);
        let [lo, hi] = intervals.figures.dice_mean.expect("Dice");
        let dice = overall.dice_mean.expect("Dice");
        assert!(lo < dice && dice < hi, "{lo} {dice} {hi}");
        assert_eq!(classes.load()["mass"].intervals_95, Some(intervals));
        let echo = echo_patterns.load();
        assert_eq!(echo["hypoechoic"].intervals_95.map(|i| i.scenes), Some(11));
        assert_eq!(echo["hyperechoic"].intervals_95, None, "one scene");
        assert_eq!(
            scenes.load().scenes(),
            12,
            "published for a paired comparison"
        );
    }

    #[test]
    fn a_held_summary_delays_the_publish_and_the_end_still_publishes() {
        let (boards, mut check) = boards();
        let board = &boards.board;
        for _ in 0..PUBLISH_EVERY {
            check.add(&hit(), "mass", None, None, board);
        }
        // A reader holds what is now the spare (the first summary shown).
        let held = Arc::clone(check.spare.as_ref().expect("spare"));
        for _ in 0..PUBLISH_EVERY {
            check.add(&hit(), "mass", None, None, board);
        }
        assert_eq!(board.load().frames, u64::from(PUBLISH_EVERY), "waits");
        assert_eq!(
            held.frames, 0,
            "a held summary never changes under its reader"
        );
        boards.finish(&mut check);
        assert_eq!(board.load().frames, 2 * u64::from(PUBLISH_EVERY));
        drop(held);
    }
}
