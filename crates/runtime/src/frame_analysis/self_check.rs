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
//! published once, at the end.

use std::sync::Arc;

use arc_swap::ArcSwap;
use std::collections::BTreeMap;

use sonoflow_perception::{
    Accuracy, AccuracySummary, FrameScore, GroupedAccuracy, MIXED_ECHO, NO_LESION,
};

/// Where the grouped summaries are published at the end of a run.
pub struct GroupBoards<'a> {
    pub classes: &'a ArcSwap<BTreeMap<String, AccuracySummary>>,
    pub echo_patterns: &'a ArcSwap<BTreeMap<String, AccuracySummary>>,
}

/// Scored frames between publishes: about twice a second at 30 fps, the
/// status line's pace.
pub const PUBLISH_EVERY: u32 = 15;

/// The running self-check, owned by the AI thread.
pub struct SelfCheck {
    accuracy: Accuracy,
    by_class: GroupedAccuracy,
    by_echo_pattern: GroupedAccuracy,
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
            spare: Some(Arc::new(Accuracy::default().summary())),
            unpublished: 0,
        }
    }

    /// Adds one frame's score under `class` and its `echo_pattern` (if its
    /// lesions have one); publishes into `board` when it is time.
    pub fn add(
        &mut self,
        score: &FrameScore,
        class: &str,
        echo_pattern: Option<&str>,
        board: &ArcSwap<AccuracySummary>,
    ) {
        self.accuracy.add(score);
        self.by_class.add(class, score);
        if let Some(pattern) = echo_pattern {
            self.by_echo_pattern.add(pattern, score);
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
        if self.unpublished > 0 && !self.try_publish(board) {
            board.store(Arc::new(self.accuracy.summary()));
            self.unpublished = 0;
        }
        groups.classes.store(Arc::new(self.by_class.summaries()));
        groups
            .echo_patterns
            .store(Arc::new(self.by_echo_pattern.summaries()));
    }
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

    fn boards() -> [ArcSwap<BTreeMap<String, AccuracySummary>>; 2] {
        [
            ArcSwap::from_pointee(BTreeMap::new()),
            ArcSwap::from_pointee(BTreeMap::new()),
        ]
    }

    #[test]
    fn publishes_every_n_frames_and_at_the_end() {
        let board = ArcSwap::from_pointee(Accuracy::default().summary());
        let [classes, echo_patterns] = boards();
        let mut check = SelfCheck::new(&["mass".to_owned()], &["hypoechoic".to_owned()]);
        for _ in 0..PUBLISH_EVERY - 1 {
            check.add(&hit(), "mass", Some("hypoechoic"), &board);
        }
        assert_eq!(board.load().frames, 0, "not yet");
        check.add(&hit(), "mass", None, &board);
        assert_eq!(board.load().frames, u64::from(PUBLISH_EVERY));
        check.add(&hit(), "mass", Some("hyperechoic"), &board);
        check.finish(
            &board,
            GroupBoards {
                classes: &classes,
                echo_patterns: &echo_patterns,
            },
        );
        assert_eq!(board.load().frames, u64::from(PUBLISH_EVERY) + 1);
        assert_eq!(board.load().dice_mean, Some(0.5));
        assert_eq!(classes.load()["mass"].frames, u64::from(PUBLISH_EVERY) + 1);
        let echo = echo_patterns.load();
        assert_eq!(echo.len(), 2, "frames without a pattern are left out");
        assert_eq!(echo["hypoechoic"].frames, u64::from(PUBLISH_EVERY) - 1);
        assert_eq!(echo["hyperechoic"].frames, 1);
    }

    #[test]
    fn a_held_summary_delays_the_publish_and_the_end_still_publishes() {
        let board = ArcSwap::from_pointee(Accuracy::default().summary());
        let [classes, echo_patterns] = boards();
        let mut check = SelfCheck::new(&["mass".to_owned()], &["hypoechoic".to_owned()]);
        for _ in 0..PUBLISH_EVERY {
            check.add(&hit(), "mass", None, &board);
        }
        // A reader holds what is now the spare (the first summary shown).
        let held = Arc::clone(check.spare.as_ref().expect("spare"));
        for _ in 0..PUBLISH_EVERY {
            check.add(&hit(), "mass", None, &board);
        }
        assert_eq!(board.load().frames, u64::from(PUBLISH_EVERY), "waits");
        assert_eq!(
            held.frames, 0,
            "a held summary never changes under its reader"
        );
        check.finish(
            &board,
            GroupBoards {
                classes: &classes,
                echo_patterns: &echo_patterns,
            },
        );
        assert_eq!(board.load().frames, 2 * u64::from(PUBLISH_EVERY));
        drop(held);
    }
}
