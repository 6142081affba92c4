//! The run report written by `--stats-json`. Field names are a contract
//! (CI, benches and users read them): add fields, do not rename them.

use std::collections::BTreeMap;

use sonoflow_core::{PoolCounters, Stage};
use sonoflow_ingest::SourceReport;
use sonoflow_pipeline::{LadderOptions, LatencySummary, LoadLevel, LoadStep, MetricsSnapshot};

use crate::findings_log::FindingsLogReport;
use crate::frame_analysis::InferenceStats;

/// Capture to hand-off to the sink, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LatencyMs {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// Time spent inside one stage, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct StageMs {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub frames: u64,
}

/// CPU used by the whole process during the run.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CpuReport {
    pub user_s: f64,
    pub system_s: f64,
    /// (user + system) / wall time; 100 is one core busy.
    pub percent: f64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunReport {
    pub pipeline: String,
    pub frames_in: u64,
    pub frames_out: u64,
    /// Frames dropped per stage. "process" and "output" count frames that
    /// entered the pipeline (are in `frames_in`) and were evicted from the
    /// hand-off in front of the stage or given up by it, so
    /// `frames_in = frames_out + dropped.process + dropped.output` once a run
    /// has drained. "ingest" counts frames lost before they became frames:
    /// numbered by a raw source but never delivered, or rejected samples.
    pub dropped: BTreeMap<&'static str, u64>,
    pub fps_in: f64,
    pub fps_out: f64,
    pub latency_ms: LatencyMs,
    /// The same latency's distribution: `[quantile, ms]` points from the
    /// fastest frame (0) to the slowest (1), for plots (`sonoflow bench`).
    pub latency_cdf_ms: Vec<[f64; 2]>,
    pub stages: BTreeMap<&'static str, StageMs>,
    /// Rust heap allocations per frame on the path from appsink to sink,
    /// after warm-up; null when the counting allocator is not installed.
    pub allocations_per_frame: Option<f64>,
    pub duration_s: f64,
    pub source: SourceReport,
    pub cpu: Option<CpuReport>,
    pub max_rss_mib: Option<f64>,
    pub frame_pool: PoolCounters,
    /// The device profile the model settings came from (firmware-config/devices/).
    pub device: Option<String>,
    /// The model, when the process stage runs one.
    pub inference: Option<InferenceReport>,
    /// The self-check against ground truth, when frames carried it (the phantom).
    pub accuracy: Option<sonoflow_perception::AccuracySummary>,
    /// The self-check per class (the largest lesion's, or "no_lesion").
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub accuracy_by_class: BTreeMap<String, sonoflow_perception::AccuracySummary>,
    /// The self-check per echo pattern of the frame's lesions (the one they
    /// share, or "mixed"), when the truth records it (a phantom export, the
    /// phantom source); lesion-free frames are under `accuracy_by_class`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub accuracy_by_echo_pattern: BTreeMap<String, sonoflow_perception::AccuracySummary>,
    /// The self-check's sums per scene, when frames named scenes (a phantom
    /// export): what `sonoflow eval --baseline` compares two runs on. Not
    /// in the JSON (the intervals in `accuracy` summarise them).
    #[serde(skip)]
    pub scene_totals: Option<std::sync::Arc<sonoflow_perception::SceneTotals>>,
    /// The overlay, when it is on.
    pub overlay: Option<OverlayReport>,
    /// The reasoning head, when it runs.
    pub reasoning: Option<sonoflow_reasoning::ReasoningReport>,
    /// The degradation ladder, when it runs (live sources with a model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadReport>,
    /// `--findings-jsonl`: lines written and dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub findings_log: Option<FindingsLogReport>,
    /// The results server: clients, their sent and dropped messages, bytes per frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<crate::result_stream::ServerRunReport>,
    /// Each `dicom` sink: keyframes taken and stored, files and bytes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dicom: Vec<crate::dicom_store::DicomReport>,
    /// Why the run ended early, if it did.
    pub error: Option<String>,
}

/// p50 and p99 of one timing, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
}

impl From<LatencySummary> for Percentiles {
    fn from(s: LatencySummary) -> Self {
        Self {
            p50: s.p50,
            p99: s.p99,
        }
    }
}

/// The `inference` section.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct InferenceReport {
    pub model: String,
    /// The provider each graph actually runs on.
    pub providers: BTreeMap<String, String>,
    /// Providers tried and not used, per graph, with why.
    pub fallbacks: BTreeMap<String, Vec<sonoflow_inference::Fallback>>,
    pub warmup_ms: f64,
    /// Each frame also ran mirrored left to right, the two passes' mask
    /// logits averaged (`[model] mirror_average`; `encoder_ms` and
    /// `decoder_ms` are both passes').
    pub mirror_average: bool,
    pub preprocess_ms: Percentiles,
    pub encoder_ms: Percentiles,
    pub decoder_ms: Percentiles,
    /// Reading the outputs (finite checks, one copy each), apart from the
    /// graph runs that `encoder_ms` and `decoder_ms` time.
    pub readout_ms: Percentiles,
    /// Preprocess + encoder + decoder + readout, per frame (not the sum of the
    /// percentiles above): what `scripts/bench.sh` sets beside the bare floor.
    pub model_ms: LatencyMs,
    /// Masks to findings: components, boxes, calipers (and the self-check).
    pub postprocess_ms: Percentiles,
    /// Frames the model failed on (passed on without findings), invalid outputs included.
    pub failures: u64,
    /// Of `failures`, frames whose outputs held NaN or infinity (shown as
    /// "AI output invalid", never as "no lesion").
    pub invalid_outputs: u64,
    /// Frames that went on without waiting for the model (it was busy on an
    /// earlier frame, or past `model.stall_after_ms`).
    pub passed_without_ai: u64,
    /// Frames the model skipped while the degradation ladder ran it at half rate.
    pub skipped_under_load: u64,
    /// The kernel version of the last frame's outputs (0 = the model's defaults).
    pub kernel_version: u64,
}

impl InferenceReport {
    pub(crate) fn from_stats(s: &InferenceStats) -> Self {
        use std::sync::atomic::Ordering;
        Self {
            model: s.model.clone(),
            providers: s.providers.clone(),
            fallbacks: s.fallbacks.clone(),
            warmup_ms: s.warmup.as_secs_f64() * 1e3,
            mirror_average: s.mirror_average,
            preprocess_ms: s.preprocess.summary().into(),
            encoder_ms: s.encoder.summary().into(),
            decoder_ms: s.decoder.summary().into(),
            readout_ms: s.readout.summary().into(),
            model_ms: LatencyMs::from_summary(&s.model_path.summary()),
            postprocess_ms: s.postprocess.summary().into(),
            failures: s.failures.load(Ordering::Relaxed),
            invalid_outputs: s.invalid_outputs.load(Ordering::Relaxed),
            passed_without_ai: s.passed_without_ai.load(Ordering::Relaxed),
            skipped_under_load: s.skipped_under_load.load(Ordering::Relaxed),
            kernel_version: s.last_kernel_version.load(Ordering::Relaxed),
        }
    }
}

/// The `load` section: the degradation ladder over the run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LoadReport {
    pub budget_ms: f64,
    /// The step at the end of the run, and the highest reached.
    pub step: LoadStep,
    pub highest: LoadStep,
    /// Steps climbed (work shed) and descended (work restored).
    pub climbs: u64,
    pub descents: u64,
    /// Frames that left while each step was in force.
    pub frames_at: BTreeMap<&'static str, u64>,
}

impl LoadReport {
    pub(crate) fn new(options: &LadderOptions, level: &LoadLevel) -> Self {
        Self {
            budget_ms: options.budget.as_secs_f64() * 1e3,
            step: level.step(),
            highest: level.highest(),
            climbs: level.climbs(),
            descents: level.descents(),
            frames_at: LoadStep::ALL
                .iter()
                .map(|s| (s.name(), level.frames_at(*s)))
                .collect(),
        }
    }
}

/// The `overlay` section.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OverlayReport {
    pub frames: u64,
    /// Time to draw one frame (copy to RGBA included).
    pub paint_ms: Percentiles,
    /// Frames drawn with findings older than `stale_after_ms`.
    pub stale_frames: u64,
    /// Frames drawn with the "AI paused" banner.
    pub paused_frames: u64,
    /// Frames drawn with the "AI output invalid" banner.
    pub invalid_frames: u64,
}

impl OverlayReport {
    pub(crate) fn from_stats(s: &sonoflow_overlay::OverlayStats) -> Self {
        use std::sync::atomic::Ordering;
        Self {
            frames: s.frames.load(Ordering::Relaxed),
            paint_ms: s.paint.summary().into(),
            stale_frames: s.stale_frames.load(Ordering::Relaxed),
            paused_frames: s.paused_frames.load(Ordering::Relaxed),
            invalid_frames: s.invalid_frames.load(Ordering::Relaxed),
        }
    }
}

impl LatencyMs {
    fn from_summary(s: &LatencySummary) -> Self {
        Self {
            p50: s.p50,
            p90: s.p90,
            p99: s.p99,
            max: s.max,
        }
    }
}

/// The parts of a report that are not pipeline counters.
pub(crate) struct ReportExtras {
    pub pipeline: String,
    pub latency_cdf_ms: Vec<[f64; 2]>,
    pub allocations_per_frame: Option<f64>,
    pub duration_s: f64,
    pub source: SourceReport,
    pub cpu: Option<CpuReport>,
    pub max_rss_mib: Option<f64>,
    pub frame_pool: PoolCounters,
    pub device: Option<String>,
    pub inference: Option<InferenceReport>,
    pub accuracy: Option<sonoflow_perception::AccuracySummary>,
    pub accuracy_by_class: BTreeMap<String, sonoflow_perception::AccuracySummary>,
    pub accuracy_by_echo_pattern: BTreeMap<String, sonoflow_perception::AccuracySummary>,
    pub scene_totals: Option<std::sync::Arc<sonoflow_perception::SceneTotals>>,
    pub overlay: Option<OverlayReport>,
    pub reasoning: Option<sonoflow_reasoning::ReasoningReport>,
    pub load: Option<LoadReport>,
    pub findings_log: Option<FindingsLogReport>,
    pub server: Option<crate::result_stream::ServerRunReport>,
    pub dicom: Vec<crate::dicom_store::DicomReport>,
    pub error: Option<String>,
}

impl RunReport {
    pub(crate) fn new(snap: &MetricsSnapshot, extras: ReportExtras) -> Self {
        let mut dropped: BTreeMap<&'static str, u64> = Stage::ALL
            .iter()
            .map(|s| (s.name(), snap.dropped[s.index()]))
            .collect();
        *dropped.entry(Stage::Ingest.name()).or_default() +=
            extras.source.lost_before_ingest + extras.source.rejected;
        let stages = Stage::ALL
            .iter()
            .map(|s| {
                let t = &snap.stages[s.index()];
                (
                    s.name(),
                    StageMs {
                        p50_ms: t.p50,
                        p99_ms: t.p99,
                        max_ms: t.max,
                        frames: t.count,
                    },
                )
            })
            .collect();
        Self {
            pipeline: extras.pipeline,
            frames_in: snap.frames_in,
            frames_out: snap.frames_out,
            dropped,
            fps_in: snap.fps_in,
            fps_out: snap.fps_out,
            latency_ms: LatencyMs::from_summary(&snap.latency),
            latency_cdf_ms: extras.latency_cdf_ms,
            stages,
            allocations_per_frame: extras.allocations_per_frame,
            duration_s: extras.duration_s,
            source: extras.source,
            cpu: extras.cpu,
            max_rss_mib: extras.max_rss_mib,
            frame_pool: extras.frame_pool,
            device: extras.device,
            inference: extras.inference,
            accuracy: extras.accuracy,
            accuracy_by_class: extras.accuracy_by_class,
            accuracy_by_echo_pattern: extras.accuracy_by_echo_pattern,
            scene_totals: extras.scene_totals,
            overlay: extras.overlay,
            reasoning: extras.reasoning,
            load: extras.load,
            findings_log: extras.findings_log,
            server: extras.server,
            dicom: extras.dicom,
            error: extras.error,
        }
    }
}
