//! What the frame analysis records for the report and the status line:
//! the model's facts, per-step timings, counters, and the self-check's
//! latest published summary.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use arc_swap::ArcSwap;
use sonoflow_inference::Fallback;
use sonoflow_perception::{Accuracy, AccuracySummary, SceneTotals};
use sonoflow_pipeline::LatencyRecorder;

/// Inference timings and facts, shared between the AI lane, the status
/// line and the report. Written by the AI thread, read by anyone, no locks.
pub struct InferenceStats {
    pub model: String,
    pub providers: BTreeMap<String, String>,
    pub fallbacks: BTreeMap<String, Vec<Fallback>>,
    pub warmup: Duration,
    /// Each frame also runs mirrored and the mask logits are averaged
    /// (`[model] mirror_average`).
    pub mirror_average: bool,
    pub preprocess: LatencyRecorder,
    pub encoder: LatencyRecorder,
    pub decoder: LatencyRecorder,
    /// Reading the graphs' outputs: finite checks and the one copy of each
    /// output into its pooled buffer (not in `encoder` or `decoder`).
    pub readout: LatencyRecorder,
    /// Preprocess + encoder + decoder + readout of each frame: the per-frame
    /// inference path, the figure benches set beside the bare-inference floor.
    pub model_path: LatencyRecorder,
    /// Masks to findings (components, contours, calipers and their
    /// uncertainty, tracking) and the self-check.
    pub postprocess: LatencyRecorder,
    pub failures: AtomicU64,
    /// Of `failures`: outputs with NaN or infinity in them.
    pub invalid_outputs: AtomicU64,
    pub last_kernel_version: AtomicU64,
    /// Frames that went on without waiting for the model: it was still busy
    /// (or past `stall_after_ms`) on an earlier frame.
    pub passed_without_ai: AtomicU64,
    /// Frames the model skipped while the degradation ladder was at `half_rate`.
    pub skipped_under_load: AtomicU64,
    /// The self-check against ground truth as the AI thread last published
    /// it (see the `self_check` module); read with [`InferenceStats::accuracy`].
    pub(super) published_accuracy: ArcSwap<AccuracySummary>,
    /// The self-check per class, published once, when the AI thread ends.
    pub(super) published_classes: ArcSwap<BTreeMap<String, AccuracySummary>>,
    /// The self-check per echo pattern, published with the classes.
    pub(super) published_echo_patterns: ArcSwap<BTreeMap<String, AccuracySummary>>,
    /// The self-check's sums per scene, published with the classes (empty
    /// when no frame's truth named a scene).
    pub(super) published_scenes: ArcSwap<SceneTotals>,
}

impl InferenceStats {
    pub(super) fn new(
        model: String,
        providers: BTreeMap<String, String>,
        fallbacks: BTreeMap<String, Vec<Fallback>>,
        warmup: Duration,
        mirror_average: bool,
    ) -> Self {
        Self {
            model,
            providers,
            fallbacks,
            warmup,
            mirror_average,
            preprocess: LatencyRecorder::new(),
            encoder: LatencyRecorder::new(),
            decoder: LatencyRecorder::new(),
            readout: LatencyRecorder::new(),
            model_path: LatencyRecorder::new(),
            postprocess: LatencyRecorder::new(),
            failures: AtomicU64::new(0),
            invalid_outputs: AtomicU64::new(0),
            last_kernel_version: AtomicU64::new(0),
            passed_without_ai: AtomicU64::new(0),
            skipped_under_load: AtomicU64::new(0),
            published_accuracy: ArcSwap::from_pointee(Accuracy::default().summary()),
            published_classes: ArcSwap::from_pointee(BTreeMap::new()),
            published_echo_patterns: ArcSwap::from_pointee(BTreeMap::new()),
            published_scenes: ArcSwap::from_pointee(SceneTotals::default()),
        }
    }

    /// "cpu", or e.g. "tensorrt" when all graphs agree, else "graph=provider,...".
    pub fn provider_summary(&self) -> String {
        let mut unique: Vec<&String> = self.providers.values().collect();
        unique.dedup();
        if unique.len() == 1 {
            unique[0].clone()
        } else {
            self.providers
                .iter()
                .map(|(g, p)| format!("{g}={p}"))
                .collect::<Vec<_>>()
                .join(",")
        }
    }

    /// The self-check against ground truth (phantom frames) as last
    /// published: a few times a second while frames are scored, and in full
    /// when the AI thread ends. `frames` is 0 until a frame was scored.
    pub fn accuracy(&self) -> AccuracySummary {
        AccuracySummary::clone(&self.published_accuracy.load())
    }

    /// The self-check per class (the largest lesion's class, or
    /// "no_lesion"), complete once the AI thread has ended; empty before.
    pub fn accuracy_by_class(&self) -> BTreeMap<String, AccuracySummary> {
        BTreeMap::clone(&self.published_classes.load())
    }

    /// The self-check per echo pattern of the frame's lesions (see
    /// `sonoflow_perception::frame_echo_pattern`; frames whose lesions carry
    /// no echo pattern, and lesion-free frames, are not in it), complete
    /// once the AI thread has ended; empty before, and for datasets whose
    /// truth has no lesion attributes.
    pub fn accuracy_by_echo_pattern(&self) -> BTreeMap<String, AccuracySummary> {
        BTreeMap::clone(&self.published_echo_patterns.load())
    }

    /// The self-check's sums per scene (for a paired comparison of two
    /// runs over the same scenes), complete once the AI thread has ended.
    pub fn scene_totals(&self) -> std::sync::Arc<SceneTotals> {
        self.published_scenes.load_full()
    }
}
