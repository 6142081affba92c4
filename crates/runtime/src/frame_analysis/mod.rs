//! The AI's work on one frame, on the AI lane's thread: the model
//! (preprocess + vision encoder + mask decoder, each step timed), then
//! perception (outputs to findings), the self-check against ground truth
//! where the frame carries it, and keyframe choice for the reasoning head.
//! Built, checked and warmed up before the first live frame.
//!
//! - [`stats`]: [`InferenceStats`], what the report and status line read;
//! - [`self_check`]: the running accuracy, published without locks;
//! - [`keyframing`]: keyframes for the reasoning head.
//!
//! A model that fails on a frame is a per-frame outcome (counted, the frame
//! goes on), never an error; [`AnalysisError`] is only for building it.

mod keyframing;
mod self_check;
mod stats;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use sonoflow_core::annotations::AiVerdict;
use sonoflow_core::{Clock, Frame, FrameFindings, MonotonicClock, Recycler};
use sonoflow_inference::{default_dylib, FrameModel, InferenceError, KernelSlot, Runtime};
use sonoflow_model::{
    Dim, ModelDir, ModelError, TaskKind, DECODER, EMBED_TOKENS, KERNEL_PROJECTOR,
};
use sonoflow_perception::{
    frame_class, frame_echo_pattern, FrameScore, Perception, PerceptionOptions, TaskRows,
    ECHO_PATTERN,
};
use sonoflow_pipeline::{LoadLevel, LoadStep};
use sonoflow_reasoning::{HeadHandle, KeyframeOptions};
use tracing::{info, warn};

use crate::error::RunError;
use crate::model_config::ModelSpec;
use keyframing::Keyframing;
use self_check::{GroupBoards, SelfCheck};
pub use stats::InferenceStats;

/// Why the frame analysis could not be built: the model directory did not
/// open or check, or ONNX Runtime could not load or warm it up.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Inference(#[from] InferenceError),
}

impl From<AnalysisError> for RunError {
    fn from(err: AnalysisError) -> Self {
        match err {
            AnalysisError::Model(e) => RunError::Model(e),
            AnalysisError::Inference(e) => RunError::Inference(e),
        }
    }
}

/// The AI's work on one frame: the model, then perception, the self-check
/// and keyframing. Runs on the AI lane's own thread ([`crate::ModelProcessor`]).
pub struct FrameAnalysis {
    model: FrameModel,
    stats: Arc<InferenceStats>,
    clock: Arc<dyn Clock>,
    /// Present when the model has a segmentation and a detection task among its kernel rows.
    perception: Option<(Perception, TaskRows)>,
    /// The self-check against ground truth (frames that carry it).
    self_check: SelfCheck,
    /// Per-frame findings, reused once they come back from the output.
    findings: Recycler<FrameFindings>,
    /// The source epoch of the last frame: a restart forgets the tracks.
    epoch: u32,
    /// Keyframe choice for the reasoning head, when it runs.
    keyframing: Option<Keyframing>,
    /// The degradation ladder's step (read lock-free per frame).
    load: LoadLevel,
    /// The model has the language-model graphs and tokenizer the head needs.
    reasoning_graphs: bool,
    /// Values in one frame's image tokens (0: the encoder writes none).
    image_token_values: usize,
    /// The model's word for what it finds (`Manifest::finding_name`).
    finding_name: String,
}

/// The decoder rows (default-kernel order) that drive segmentation and detection.
fn task_rows(model: &ModelDir) -> Option<TaskRows> {
    let m = &model.manifest;
    let row = |kind: TaskKind| {
        m.default_kernels.tokens.iter().position(|t| {
            m.tasks
                .iter()
                .any(|task| &task.token == t && task.drives == kind)
        })
    };
    Some(TaskRows {
        segmentation: row(TaskKind::Segmentation)?,
        detection: row(TaskKind::Detection)?,
    })
}

/// Whether the model has the graphs and tokenizer the reasoning head needs.
fn has_reasoning_graphs(model: &ModelDir) -> bool {
    let m = &model.manifest;
    [EMBED_TOKENS, DECODER, KERNEL_PROJECTOR]
        .iter()
        .all(|g| m.graphs.contains_key(*g))
        && m.tokenizer.is_some()
}

/// Values in one frame's image tokens (dynamic dimensions count as 1).
fn image_token_values(model: &ModelDir) -> usize {
    model.manifest.image_tokens().map_or(0, |t| {
        t.shape
            .iter()
            .map(|d| {
                if let Dim::Fixed(n) = d {
                    (*n).max(0) as usize
                } else {
                    1
                }
            })
            .product()
    })
}

impl FrameAnalysis {
    /// Loads, checks and warms up the model `spec` names. `in_flight`: how
    /// many frames can be between this stage and the output's overlay.
    pub fn load(
        spec: &ModelSpec,
        perception: Option<PerceptionOptions>,
        in_flight: usize,
        slot: Option<Arc<KernelSlot>>,
    ) -> Result<(Self, Arc<InferenceStats>), AnalysisError> {
        let model_dir = ModelDir::open(&spec.dir)?;
        let runtime = Runtime::load(&default_dylib(Path::new(".")))?;
        let clock: Arc<dyn Clock> = Arc::new(MonotonicClock::new());
        let mut model = FrameModel::load(runtime, &model_dir, &spec.engine, slot)?;
        model.set_mirror_average(spec.mirror_average);
        let warmup = model.warm_up(spec.warmup_runs, clock.as_ref())?;
        let providers: BTreeMap<String, String> = [&model.encoder, &model.decoder]
            .iter()
            .map(|g| (g.role.clone(), g.provider.name().to_owned()))
            .collect();
        let fallbacks = [&model.encoder, &model.decoder]
            .iter()
            .map(|g| (g.role.clone(), g.fallbacks.clone()))
            .collect();
        info!(model = %model_dir.manifest.name, ?providers, "model ready; warm-up {warmup:?}");
        let stats = Arc::new(InferenceStats::new(
            format!("{} {}", model_dir.manifest.name, model_dir.manifest.version),
            providers,
            fallbacks,
            warmup,
            spec.mirror_average,
        ));
        let perception = perception
            .zip(task_rows(&model_dir))
            .map(|(options, rows)| (Perception::new(options), rows));
        let findings = Recycler::new(in_flight);
        // Room for a busy frame up front, so steady frames never grow them.
        findings.prefill(FrameFindings::preallocated);
        let analysis = Self {
            model,
            stats: Arc::clone(&stats),
            clock,
            perception,
            self_check: SelfCheck::new(
                &model_dir.manifest.labels,
                model_dir
                    .manifest
                    .attributes
                    .get(ECHO_PATTERN)
                    .map_or(&[][..], Vec::as_slice),
            ),
            findings,
            epoch: 0,
            keyframing: None,
            load: LoadLevel::new(),
            reasoning_graphs: has_reasoning_graphs(&model_dir),
            image_token_values: image_token_values(&model_dir),
            finding_name: model_dir.manifest.finding_name().to_owned(),
        };
        Ok((analysis, stats))
    }

    pub fn kernel_slot(&self) -> Arc<KernelSlot> {
        self.model.kernel_slot()
    }

    /// Whether the model has what the reasoning head needs.
    pub fn has_reasoning_graphs(&self) -> bool {
        self.reasoning_graphs
    }

    /// Values in one frame's image tokens.
    pub fn image_token_values(&self) -> usize {
        self.image_token_values
    }

    /// The model's word for what it finds, e.g. "lesion".
    pub fn finding_name(&self) -> &str {
        &self.finding_name
    }

    /// Chooses keyframes on every frame from now on and hands them to `head`.
    pub fn attach_head(&mut self, head: HeadHandle, options: KeyframeOptions) {
        let mask_row = self
            .perception
            .as_ref()
            .map_or(0, |(_, rows)| rows.segmentation);
        self.keyframing = Some(Keyframing::new(head, options, mask_row));
    }

    /// Follows `level`: keyframes stop while the ladder sheds the head.
    pub fn follow_load(&mut self, level: LoadLevel) {
        self.load = level;
    }

    /// The timings and self-check this analysis records into.
    pub fn stats(&self) -> Arc<InferenceStats> {
        Arc::clone(&self.stats)
    }

    /// Gives `frame` empty findings marked [`AiVerdict::InvalidOutput`]: the
    /// overlay says "AI output invalid" instead of drawing nothing as if
    /// nothing were there; the tracker forgets what it followed.
    fn mark_invalid(&mut self, frame: &mut Frame) {
        if let Some((perception, _)) = &mut self.perception {
            perception.forget();
            let mut found = self.findings.acquire();
            found.frame = frame.id;
            found.captured = frame.stamps.captured;
            found.verdict = AiVerdict::InvalidOutput;
            frame.findings = Some(found);
        }
    }

    /// Runs the model and perception on `frame`, attaching the outputs and
    /// findings. A frame the model fails on is left without (the overlay
    /// shows the last findings as stale, then "AI paused"); the failure is counted.
    pub fn analyse(&mut self, frame: &mut Frame) {
        let (outputs, times) = match self.model.infer(frame, self.clock.as_ref()) {
            Ok(done) => done,
            Err(err) => {
                let failures = self.stats.failures.fetch_add(1, Ordering::Relaxed) + 1;
                if err.is_invalid_output() {
                    let invalid = self.stats.invalid_outputs.fetch_add(1, Ordering::Relaxed) + 1;
                    if invalid == 1 || invalid.is_multiple_of(100) {
                        warn!(
                            frame = frame.id.0,
                            invalid, "AI output invalid; the frame is marked so, never as \"no lesion\": {err}"
                        );
                    }
                    self.mark_invalid(frame);
                } else if failures == 1 || failures.is_multiple_of(100) {
                    warn!(
                        frame = frame.id.0,
                        failures, "the model failed; the frame passes without findings: {err}"
                    );
                }
                return;
            }
        };
        self.stats.preprocess.record(times.preprocess);
        self.stats.encoder.record(times.encoder);
        self.stats.decoder.record(times.decoder);
        self.stats.readout.record(times.readout);
        self.stats.model_path.record(times.total());
        self.stats
            .last_kernel_version
            .store(outputs.kernel_version, Ordering::Relaxed);
        if let Some((perception, rows)) = &mut self.perception {
            let _span = tracing::trace_span!("postprocess", frame = frame.id.0).entered();
            let t0 = self.clock.now();
            if frame.source_epoch != self.epoch {
                perception.forget();
                self.epoch = frame.source_epoch;
            }
            let mut found = self.findings.acquire();
            found.frame = frame.id;
            found.captured = frame.stamps.captured;
            perception.perceive(
                &outputs,
                *rows,
                frame.format.width,
                frame.format.height,
                frame.calibration.as_deref(),
                &mut found,
            );
            if let Some(truth) = &frame.truth {
                let score = FrameScore::scored(
                    perception.segmentation(),
                    &found,
                    truth,
                    perception.options.ignore_faint_below,
                );
                self.self_check.add(
                    &score,
                    frame_class(truth),
                    frame_echo_pattern(truth),
                    truth.scene,
                    &self.stats.published_accuracy,
                );
            }
            frame.findings = Some(found);
            self.stats
                .postprocess
                .record(self.clock.now().saturating_since(t0));
        }
        // Under load the head is the first work shed: no new keyframes.
        if let Some(keyframing) = self
            .keyframing
            .as_mut()
            .filter(|_| !self.load.sheds(LoadStep::HeadPaused))
        {
            keyframing.observe(frame, &outputs, frame.findings.as_deref());
        }
        frame.outputs = Some(outputs);
    }
}

impl Drop for FrameAnalysis {
    /// The AI thread ends by dropping its analysis (a panic unwinds through
    /// here too): the self-check's last frames are published for the report.
    fn drop(&mut self) {
        self.self_check.finish(
            &self.stats.published_accuracy,
            GroupBoards {
                classes: &self.stats.published_classes,
                echo_patterns: &self.stats.published_echo_patterns,
                scenes: &self.stats.published_scenes,
            },
        );
    }
}
