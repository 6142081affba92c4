//! The process stage with a model: preprocess + vision encoder + mask
//! decoder on every frame, raw outputs attached to the frame, each step
//! timed. Built (and warmed up) before the first live frame.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use sonoflow_core::annotations::{AiVerdict, FindingKind};
use sonoflow_core::{
    Clock, ConfigIssue, Frame, FrameFindings, ModelOutputs, MonotonicClock, Recycler,
};
use sonoflow_inference::{
    default_dylib, EngineOptions, Fallback, FrameModel, KernelSlot, Optimization, Provider,
    Runtime, TensorRtOptions,
};
use sonoflow_model::{Dim, ModelDir, TaskKind, DECODER, EMBED_TOKENS, KERNEL_PROJECTOR};
use sonoflow_perception::{
    Accuracy, FrameScore, Perception, PerceptionOptions, Smoothing, TaskRows, ThresholdBand,
};
use sonoflow_pipeline::{LatencyRecorder, LoadLevel, LoadStep};
use sonoflow_reasoning::{Calipers, FrameSignals, HeadHandle, KeyframeOptions, KeyframeSelector};
use tracing::{info, warn};

use crate::run::RunError;

/// `[model]`: which model the process stage runs, and how.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The model directory (holding sonoflow-model.toml).
    pub dir: Option<PathBuf>,
    /// Execution providers to try, in order; CPU is always tried last.
    /// Default ["tensorrt", "cuda", "cpu"].
    pub providers: Option<Vec<String>>,
    /// A graph not running on this provider fails the run instead of falling back.
    pub require_provider: Option<String>,
    /// ONNX Runtime threads inside one operator (default 1: the frame path's
    /// share of a 2-core machine; raise on bigger CPUs).
    pub intra_threads: Option<usize>,
    /// Threads across operators (default 1: sequential execution).
    pub inter_threads: Option<usize>,
    /// Graph optimisation: "disable", "basic", "extended" or "all" (default).
    pub optimization: Option<Optimization>,
    /// Inferences on a blank frame before the first live one (default 3).
    pub warmup_runs: Option<usize>,
    /// TensorRT in FP16 (default true).
    pub tensorrt_fp16: Option<bool>,
    /// Where TensorRT engine and timing caches live (default out/cache).
    pub cache_dir: Option<PathBuf>,
    /// A frame from a live source waits at most this long for the model
    /// (default 250 ms); past it the frame goes on without findings and the
    /// video keeps flowing while the model catches up. Frames from files
    /// wait for the model unless this is set.
    pub stall_after_ms: Option<u64>,
}

/// `[perception]`: how model outputs become findings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerceptionConfig {
    /// Turn model outputs into findings (default true). Off, frames carry the
    /// raw model outputs only: no findings, calipers, self-check or
    /// reasoning (a raw-inference benchmark, or findings made downstream).
    pub enabled: Option<bool>,
    /// Fit an ellipse to each segment and report its circumference (default false).
    pub ellipse: Option<bool>,
    /// Steady calipers across frames (default true).
    pub smoothing: Option<bool>,
    /// Weight of the newest frame in the caliper average, 0 to 1 (default 0.35).
    pub smoothing_alpha: Option<f32>,
    /// Probabilities the mask is re-cut at for a measurement's uncertainty (default [0.3, 0.7]).
    pub uncertainty_thresholds: Option<[f32; 2]>,
}

impl PerceptionConfig {
    /// The options, or `None` when perception is off (`enabled = false`;
    /// the other keys are still checked: a bad value is a mistake either way).
    pub fn validate(&self) -> Result<Option<PerceptionOptions>, ConfigIssue> {
        let d = PerceptionOptions::default();
        let alpha = self.smoothing_alpha.unwrap_or(Smoothing::default().alpha);
        if !(alpha > 0.0 && alpha <= 1.0) {
            return Err(ConfigIssue::new(
                "perception.smoothing_alpha",
                format!("is {alpha}"),
                "use a weight above 0 and at most 1 (1: no smoothing)",
            ));
        }
        let band = match self.uncertainty_thresholds {
            Some([low, high]) if 0.0 < low && low < 0.5 && 0.5 < high && high < 1.0 => {
                ThresholdBand { low, high }
            }
            Some([low, high]) => {
                return Err(ConfigIssue::new(
                    "perception.uncertainty_thresholds",
                    format!("is [{low}, {high}]"),
                    "use a probability below 0.5 and one above it, e.g. [0.3, 0.7]",
                ))
            }
            None => d.band,
        };
        let options = PerceptionOptions {
            ellipse: self.ellipse.unwrap_or(false),
            smoothing: self.smoothing.unwrap_or(true).then_some(Smoothing {
                alpha,
                ..Smoothing::default()
            }),
            band,
            ..d
        };
        Ok(self.enabled.unwrap_or(true).then_some(options))
    }
}

/// A validated `[model]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub dir: PathBuf,
    pub engine: EngineOptions,
    pub warmup_runs: usize,
    /// None: frames always wait for the model (files: nothing is lost).
    pub stall_after: Option<Duration>,
}

fn provider(key: &str, name: &str) -> Result<Provider, ConfigIssue> {
    Provider::parse(name).ok_or_else(|| {
        ConfigIssue::new(
            key,
            format!("\"{name}\" is not a provider"),
            "use \"tensorrt\", \"cuda\" or \"cpu\"",
        )
    })
}

impl ModelConfig {
    /// This config with every unset key taken from `defaults`.
    pub fn or(&self, defaults: &ModelConfig) -> ModelConfig {
        ModelConfig {
            dir: self.dir.clone().or_else(|| defaults.dir.clone()),
            providers: self
                .providers
                .clone()
                .or_else(|| defaults.providers.clone()),
            require_provider: self
                .require_provider
                .clone()
                .or_else(|| defaults.require_provider.clone()),
            intra_threads: self.intra_threads.or(defaults.intra_threads),
            inter_threads: self.inter_threads.or(defaults.inter_threads),
            optimization: self.optimization.or(defaults.optimization),
            warmup_runs: self.warmup_runs.or(defaults.warmup_runs),
            tensorrt_fp16: self.tensorrt_fp16.or(defaults.tensorrt_fp16),
            cache_dir: self
                .cache_dir
                .clone()
                .or_else(|| defaults.cache_dir.clone()),
            stall_after_ms: self.stall_after_ms.or(defaults.stall_after_ms),
        }
    }

    pub fn validate(&self) -> Result<ModelSpec, ConfigIssue> {
        let dir = self.dir.clone().ok_or_else(|| {
            ConfigIssue::new(
                "model.dir",
                "is required when process.kind = \"model\"",
                "add dir = \"onnx/umind-nano\" under [model]",
            )
        })?;
        let defaults = EngineOptions::default();
        let providers = match &self.providers {
            Some(list) => list
                .iter()
                .map(|p| provider("model.providers", p))
                .collect::<Result<Vec<_>, _>>()?,
            None => defaults.providers.clone(),
        };
        let require = self
            .require_provider
            .as_deref()
            .map(|p| provider("model.require_provider", p))
            .transpose()?;
        for (key, v) in [
            ("model.intra_threads", self.intra_threads),
            ("model.inter_threads", self.inter_threads),
        ] {
            if v == Some(0) || v.is_some_and(|n| n > 64) {
                return Err(ConfigIssue::new(
                    key,
                    format!("is {}", v.unwrap_or(0)),
                    "use 1 to 64 threads",
                ));
            }
        }
        let mut engine = EngineOptions {
            providers,
            require: None,
            intra_threads: self.intra_threads.unwrap_or(defaults.intra_threads),
            inter_threads: self.inter_threads.unwrap_or(defaults.inter_threads),
            optimization: self.optimization.unwrap_or_default(),
            tensorrt: TensorRtOptions {
                fp16: self.tensorrt_fp16.unwrap_or(defaults.tensorrt.fp16),
                cache_dir: self
                    .cache_dir
                    .clone()
                    .unwrap_or(defaults.tensorrt.cache_dir),
            },
        };
        if let Some(r) = require {
            engine.require_provider(r);
        }
        if self.stall_after_ms == Some(0) {
            return Err(ConfigIssue::new(
                "model.stall_after_ms",
                "is 0",
                "use at least 1 ms (250 is the default)",
            ));
        }
        let stall_after = Some(Duration::from_millis(self.stall_after_ms.unwrap_or(250)));
        Ok(ModelSpec {
            dir,
            engine,
            warmup_runs: self.warmup_runs.unwrap_or(3),
            stall_after,
        })
    }
}

/// Inference timings and facts, shared between the stage and the report.
pub struct InferenceStats {
    pub model: String,
    pub providers: BTreeMap<String, String>,
    pub fallbacks: BTreeMap<String, Vec<Fallback>>,
    pub warmup: Duration,
    pub preprocess: LatencyRecorder,
    pub encoder: LatencyRecorder,
    pub decoder: LatencyRecorder,
    /// Preprocess + encoder + decoder of each frame: the per-frame inference
    /// path, the figure benches set beside the bare-inference floor.
    pub model_path: LatencyRecorder,
    /// Masks to findings (components, contours, calipers and their
    /// uncertainty, tracking) and the self-check.
    pub postprocess: LatencyRecorder,
    pub failures: AtomicU64,
    /// Of `failures`: outputs with NaN or infinity in them.
    pub invalid_outputs: AtomicU64,
    pub last_kernel_version: AtomicU64,
    /// The self-check against ground truth (phantom frames only).
    pub accuracy: Mutex<Accuracy>,
    /// Frames that went on without waiting for the model: it was still busy
    /// (or past `stall_after_ms`) on an earlier frame.
    pub passed_without_ai: AtomicU64,
    /// Frames the model skipped while the degradation ladder was at `half_rate`.
    pub skipped_under_load: AtomicU64,
}

impl InferenceStats {
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
}

/// The AI's work on one frame: the model, then perception and the
/// self-check. Runs on the AI lane's own thread (see [`crate::ai_lane`]).
pub struct FrameWork {
    model: FrameModel,
    stats: Arc<InferenceStats>,
    clock: Arc<dyn Clock>,
    /// Present when the model has a segmentation and a detection task among its kernel rows.
    perception: Option<(Perception, TaskRows)>,
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
}

/// Chooses keyframes from each frame's outputs and hands them to the head.
struct Keyframing {
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
    fn observe(&mut self, frame: &Frame, outputs: &ModelOutputs, findings: Option<&FrameFindings>) {
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

impl FrameWork {
    /// Loads, checks and warms up the model `spec` names. `in_flight`: how
    /// many frames can be between this stage and the output's overlay.
    pub fn load(
        spec: &ModelSpec,
        perception: Option<PerceptionOptions>,
        in_flight: usize,
        slot: Option<Arc<KernelSlot>>,
    ) -> Result<(Self, Arc<InferenceStats>), RunError> {
        let model_dir = ModelDir::open(&spec.dir)?;
        let runtime = Runtime::load(&default_dylib(Path::new(".")))?;
        let clock: Arc<dyn Clock> = Arc::new(MonotonicClock::new());
        let mut model = FrameModel::load(runtime, &model_dir, &spec.engine, slot)?;
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
        let stats = Arc::new(InferenceStats {
            model: format!("{} {}", model_dir.manifest.name, model_dir.manifest.version),
            providers,
            fallbacks,
            warmup,
            preprocess: LatencyRecorder::new(),
            encoder: LatencyRecorder::new(),
            decoder: LatencyRecorder::new(),
            model_path: LatencyRecorder::new(),
            postprocess: LatencyRecorder::new(),
            failures: AtomicU64::new(0),
            invalid_outputs: AtomicU64::new(0),
            last_kernel_version: AtomicU64::new(0),
            accuracy: Mutex::new(Accuracy::default()),
            passed_without_ai: AtomicU64::new(0),
            skipped_under_load: AtomicU64::new(0),
        });
        let perception = perception
            .zip(task_rows(&model_dir))
            .map(|(options, rows)| (Perception::new(options), rows));
        let m = &model_dir.manifest;
        let reasoning_graphs = [EMBED_TOKENS, DECODER, KERNEL_PROJECTOR]
            .iter()
            .all(|g| m.graphs.contains_key(*g))
            && m.tokenizer.is_some();
        let image_token_values = m.image_tokens().map_or(0, |t| {
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
        });
        let findings = Recycler::new(in_flight);
        // Room for a busy frame up front, so steady frames never grow them.
        findings.prefill(FrameFindings::preallocated);
        let work = Self {
            model,
            stats: Arc::clone(&stats),
            clock,
            perception,
            findings,
            epoch: 0,
            keyframing: None,
            load: LoadLevel::new(),
            reasoning_graphs,
            image_token_values,
        };
        Ok((work, stats))
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

    /// Chooses keyframes on every frame from now on and hands them to `head`.
    pub fn attach_head(&mut self, head: HeadHandle, options: KeyframeOptions) {
        let mask_row = self
            .perception
            .as_ref()
            .map_or(0, |(_, rows)| rows.segmentation);
        self.keyframing = Some(Keyframing {
            selector: KeyframeSelector::new(options),
            head,
            mask_row,
        });
    }

    /// Follows `level`: keyframes stop while the ladder sheds the head.
    pub fn follow_load(&mut self, level: LoadLevel) {
        self.load = level;
    }

    /// The timings and self-check this work records into.
    pub fn stats(&self) -> Arc<InferenceStats> {
        Arc::clone(&self.stats)
    }
}

impl FrameWork {
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
    pub fn run(&mut self, frame: &mut Frame) {
        let (outputs, times) = match self.model.infer(frame, self.clock.as_ref()) {
            Ok(done) => done,
            Err(err) => {
                let failures = self.stats.failures.fetch_add(1, Ordering::Relaxed) + 1;
                if err.is_invalid_output() {
                    let invalid = self.stats.invalid_outputs.fetch_add(1, Ordering::Relaxed) + 1;
                    if invalid == 1 || invalid % 100 == 0 {
                        warn!(
                            frame = frame.id.0,
                            invalid, "AI output invalid; the frame is marked so, never as \"no lesion\": {err}"
                        );
                    }
                    self.mark_invalid(frame);
                } else if failures == 1 || failures % 100 == 0 {
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
        self.stats
            .model_path
            .record(times.preprocess + times.encoder + times.decoder);
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
                frame.pixel_spacing,
                &mut found,
            );
            if let Some(truth) = &frame.truth {
                let score = FrameScore::of(perception.segmentation(), &found, truth);
                if let Ok(mut acc) = self.stats.accuracy.lock() {
                    acc.add(&score);
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perception_keys_are_checked() {
        let ok = PerceptionConfig {
            ellipse: Some(true),
            uncertainty_thresholds: Some([0.2, 0.8]),
            ..PerceptionConfig::default()
        };
        let o = ok.validate().expect("valid").expect("on by default");
        assert!(o.ellipse && o.smoothing.is_some());
        assert_eq!(
            o.band,
            ThresholdBand {
                low: 0.2,
                high: 0.8
            }
        );
        let off = PerceptionConfig {
            smoothing: Some(false),
            ..PerceptionConfig::default()
        }
        .validate()
        .expect("valid")
        .expect("on by default");
        assert!(off.smoothing.is_none());
        let raw = PerceptionConfig {
            enabled: Some(false),
            ..PerceptionConfig::default()
        };
        assert_eq!(raw.validate().expect("valid"), None);
        let raw_but_bad = PerceptionConfig {
            enabled: Some(false),
            smoothing_alpha: Some(2.0),
            ..PerceptionConfig::default()
        };
        assert_eq!(
            raw_but_bad
                .validate()
                .expect_err("checked even when off")
                .key,
            "perception.smoothing_alpha"
        );
        let bad = PerceptionConfig {
            uncertainty_thresholds: Some([0.6, 0.7]),
            ..PerceptionConfig::default()
        };
        assert_eq!(
            bad.validate().expect_err("invalid").key,
            "perception.uncertainty_thresholds"
        );
        let bad = PerceptionConfig {
            smoothing_alpha: Some(0.0),
            ..PerceptionConfig::default()
        };
        assert_eq!(
            bad.validate().expect_err("invalid").key,
            "perception.smoothing_alpha"
        );
    }
}
