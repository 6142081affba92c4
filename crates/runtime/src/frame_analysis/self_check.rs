//! The self-check against ground truth, kept off any lock: the AI thread
//! owns the running [`Accuracy`] and publishes its summary through an
//! `ArcSwap` every [`PUBLISH_EVERY`] scored frames and once more at the end.
//!
//! Publishing allocates nothing: two summaries take turns. The one not on
//! show (the spare) is refilled in place and swapped in; the one that comes
//! back becomes the spare. If a reader (the status line) still holds the
//! spare, the publish waits for the next frame instead of allocating.
//!
//! The per-class sums ([`ClassAccuracy`]) are published once, at the end.

use std::sync::Arc;

use arc_swap::ArcSwap;
use std::collections::BTreeMap;

use sonoflow_perception::{Accuracy, AccuracySummary, ClassAccuracy, FrameScore};

/// Scored frames between publishes: about twice a second at 30 fps, the
/// status line's pace.
pub const PUBLISH_EVERY: u32 = 15;

/// The running self-check, owned by the AI thread.
pub struct SelfCheck {
    accuracy: Accuracy,
    by_class: ClassAccuracy,
    /// The summary not on show; None only inside [`SelfCheck::try_publish`].
    spare: Option<Arc<AccuracySummary>>,
    /// Frames scored since the last publish.
    unpublished: u32,
}

impl SelfCheck {
    pub fn new() -> Self {
        Self {
            accuracy: Accuracy::default(),
            by_class: ClassAccuracy::default(),
            spare: Some(Arc::new(Accuracy::default().summary())),
            unpublished: 0,
        }
    }

    /// Adds one frame's score under `class`; publishes into `board` when it is time.
    pub fn add(&mut self, score: &FrameScore, class: &str, board: &ArcSwap<AccuracySummary>) {
        self.accuracy.add(score);
        self.by_class.add(class, score);
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
    pub fn finish(
        &mut self,
        board: &ArcSwap<AccuracySummary>,
        classes: &ArcSwap<BTreeMap<String, AccuracySummary>>,
    ) {
        if self.unpublished > 0 && !self.try_publish(board) {
            board.store(Arc::new(self.accuracy.summary()));
            self.unpublished = 0;
        }
        classes.store(Arc::new(self.by_class.summaries()));
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

    #[test]
    fn publishes_every_n_frames_and_at_the_end() {
        let board = ArcSwap::from_pointee(Accuracy::default().summary());
        let classes = ArcSwap::from_pointee(BTreeMap::new());
        let mut check = SelfCheck::new();
        for _ in 0..PUBLISH_EVERY - 1 {
            check.add(&hit(), "mass", &board);
        }
        assert_eq!(board.load().frames, 0, "not yet");
        check.add(&hit(), "mass", &board);
        assert_eq!(board.load().frames, u64::from(PUBLISH_EVERY));
        check.add(&hit(), "mass", &board);
        check.finish(&board, &classes);
        assert_eq!(board.load().frames, u64::from(PUBLISH_EVERY) + 1);
        assert_eq!(board.load().dice_mean, Some(0.5));
        assert_eq!(classes.load()["mass"].frames, u64::from(PUBLISH_EVERY) + 1);
    }

    #[test]
    fn a_held_summary_delays_the_publish_and_the_end_still_publishes() {
        let board = ArcSwap::from_pointee(Accuracy::default().summary());
        let classes = ArcSwap::from_pointee(BTreeMap::new());
        let mut check = SelfCheck::new();
        for _ in 0..PUBLISH_EVERY {
            check.add(&hit(), "mass", &board);
        }
        // A reader holds what is now the spare (the first summary shown).
        let held = Arc::clone(check.spare.as_ref().expect("spare"));
        for _ in 0..PUBLISH_EVERY {
            check.add(&hit(), "mass", &board);
        }
        assert_eq!(board.load().frames, u64::from(PUBLISH_EVERY), "waits");
        assert_eq!(
            held.frames, 0,
            "a held summary never changes under its reader"
        );
        check.finish(&board, &classes);
        assert_eq!(board.load().frames, 2 * u64::from(PUBLISH_EVERY));
        drop(held);
    }
}
