//! One run of a pipeline definition: builds the output, spawns the ingest,
//! process and output threads joined by hand-offs, reports live status to
//! the caller, and returns the report when the run drains.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sonoflow_core::alloc_count::frame_path_allocations;
use sonoflow_core::{Clock, FramePool, MonotonicClock, Stage};
use sonoflow_ingest::{Flow, Ingest, IngestEnd, SourceStatus};
use sonoflow_output::{GstOutput, OutputOptions, OutputTiming};
use sonoflow_overlay::{Overlay, OverlayStats};
use sonoflow_pipeline::{
    handoff, run_output_stage, run_process_stage, DropPolicy, FrameSink, Ladder, LoadLevel,
    MetricsSnapshot, PipelineMetrics, StopFlag,
};
use sonoflow_protocol::v1;
use sonoflow_reasoning::ReasoningStats;
use sonoflow_server::ServerOptions;
use tracing::{error, info, info_span, warn};

use crate::definition::PipelineDefinition;
use crate::dicom_store::{DicomInputs, DicomStore};
use crate::error::RunError;
use crate::findings_log::FindingsLog;
use crate::frame_analysis::InferenceStats;
use crate::frame_tap::TappedSink;
use crate::load_governor::GovernedSink;
use crate::process_stage::ProcessStage;
use crate::report::{
    CpuReport, InferenceReport, LoadReport, OverlayReport, ReportExtras, RunReport,
};
use crate::result_stream::{model_words, ResultStream, StreamInputs};
use crate::usage;

/// Frames out before allocations per frame are counted (pools fill, caps settle).
const WARMUP_FRAMES: u64 = 30;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Stop after this many frames have been ingested (then drain).
    pub frames: Option<u64>,
    /// Set to stop early (Ctrl-C); the run drains and finalises its files.
    pub stop: StopFlag,
    /// How often the status callback is called.
    pub status_every: Duration,
    /// Write one JSON line per frame that leaves (`--findings-jsonl`).
    pub findings_jsonl: Option<PathBuf>,
    /// Serve the results stream with these options, whatever the
    /// definition's `[server]` says (`--serve ADDR`).
    pub serve: Option<ServerOptions>,
    /// Set (by SIGUSR1) to ask for a keyframe now, which a `dicom` or
    /// `pacs` sink stores once its report is done; the run clears it.
    pub store: Option<Arc<AtomicBool>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            frames: None,
            stop: StopFlag::new(),
            status_every: Duration::from_millis(500),
            findings_jsonl: None,
            serve: None,
            store: None,
        }
    }
}

/// What the status callback sees while the run goes on.
pub struct LiveStatus<'a> {
    pub elapsed: Duration,
    pub metrics: &'a MetricsSnapshot,
    pub source: &'a SourceStatus,
    pub inference: Option<&'a InferenceStats>,
    pub reasoning: Option<&'a ReasoningStats>,
    /// The degradation ladder's step, when the ladder runs.
    pub load: Option<&'a LoadLevel>,
}

/// Runs `def` with `processor` as its process stage. Errors that stop the
/// run before any frame flows (a sink that cannot open, a source that cannot
/// be built) are returned; errors later end the run and are in the report.
pub fn run(
    def: &PipelineDefinition,
    stage: ProcessStage,
    options: &RunOptions,
    on_status: &mut dyn FnMut(&LiveStatus<'_>),
) -> Result<RunReport, RunError> {
    let _span = info_span!("run", pipeline = %def.name).entered();
    let started = Instant::now();
    let cpu_before = usage::cpu_seconds();
    let clock: Arc<dyn Clock> = Arc::new(MonotonicClock::new());
    let metrics = Arc::new(PipelineMetrics::new());
    // Every frame in flight holds one buffer.
    let pool = FramePool::new(def.frames_in_flight());

    // The source is checked first: a bad one must not leave an empty file behind.
    let mut ingest = Ingest::new(def.source.clone(), Arc::clone(&clock), pool.clone())?;
    let (painter, overlay_stats): (
        Option<Box<dyn sonoflow_pipeline::Painter>>,
        Option<Arc<OverlayStats>>,
    ) = match &def.overlay {
        Some(options) => {
            let overlay = Overlay::new(
                options.clone(),
                Arc::clone(&clock),
                Arc::clone(&stage.interpretations),
            )?
            .following_load(stage.load.clone())
            .naming_findings(&stage.finding_name);
            let stats = overlay.stats();
            (Some(Box::new(overlay)), Some(stats))
        }
        None => (None, None),
    };
    let output = GstOutput::new(
        &def.sinks,
        OutputOptions {
            timing: if def.source.live {
                OutputTiming::Capture
            } else {
                OutputTiming::SourcePts
            },
            fps: def
                .source
                .framerate
                .map_or((def.source.fps.unwrap_or(30), 1), |r| (r.numer, r.denom)),
            max_queued: def.max_queued,
            block: def.output_queue.policy == DropPolicy::Block,
        },
        painter,
    )?;
    let source = ingest.status();

    let (to_process, process_in, process_stats) =
        handoff(def.process_queue.depth, def.process_queue.policy);
    let (to_output, output_in, output_stats) =
        handoff(def.output_queue.depth, def.output_queue.policy);
    metrics.attach_inbound(Stage::Process, process_stats);
    metrics.attach_inbound(Stage::Output, output_stats);

    let mut taps = Vec::new();
    let findings_log = match &options.findings_jsonl {
        Some(path) => {
            let block = def.output_queue.policy == DropPolicy::Block;
            let (log, tap) = FindingsLog::start(path, &stage.finding_name, block)?;
            taps.push(tap);
            Some(log)
        }
        None => None,
    };
    let results = match options.serve.as_ref().or(def.server.as_ref()) {
        Some(server) => {
            let (stream, tap) = ResultStream::start(
                server.clone(),
                stream_inputs(def, &stage, server, &metrics, &clock),
            )?;
            taps.push(tap);
            Some(stream)
        }
        None => None,
    };
    let mut dicom = Vec::new();
    // A DICOM source's own patient and study, read once for every store.
    let source_subject = match (
        &def.source.dicom,
        def.sinks.iter().any(|s| s.kind.is_dicom()),
    ) {
        (Some(settings), true) => {
            sonoflow_ingest::source_subject(settings).map_err(|e| e.to_string())
        }
        _ => Ok(None),
    };
    for spec in def.sinks.iter().filter(|s| s.kind.is_dicom()) {
        let head = stage.reasoning.as_ref().map(|h| h.handle()).ok_or_else(|| RunError::Dicom {
            sink: spec.describe(),
            why: "stores keyframes with finished reports, and no reasoning head runs here. Fix: a [model] whose directory has the reasoning graphs, with [reasoning] enabled".into(),
        })?;
        let (store, tap) = DicomStore::start(
            spec,
            DicomInputs {
                head,
                board: Arc::clone(&stage.interpretations),
                finding_name: stage.finding_name.clone(),
                model: stage
                    .inference
                    .as_deref()
                    .map(|i| i.model.clone())
                    .unwrap_or_default(),
                device: def.device.clone().unwrap_or_else(|| "sonoflow".into()),
                clock: Arc::clone(&clock),
                overlay: def.overlay.clone(),
                source_subject: source_subject.clone(),
            },
        )?;
        taps.push(tap);
        dicom.push(store);
    }
    // SIGUSR1's store requests go to the head when something stores DICOM.
    let store_head = if dicom.is_empty() {
        None
    } else {
        stage.reasoning.as_ref().map(|h| h.handle())
    };
    let output = TappedSink::wrap(Box::new(output), taps);
    let output_thread = spawn("output", {
        let (metrics, clock, stop) = (
            Arc::clone(&metrics),
            Arc::clone(&clock),
            options.stop.clone(),
        );
        let sink: Box<dyn FrameSink> = Box::new(GovernedSink::new(
            output,
            def.load
                .map(|options| Ladder::new(options, stage.load.clone())),
            Arc::clone(&clock),
            stage.activity.clone(),
            stage.reasoning.as_ref().map(|h| h.handle()),
        ));
        move || run_output_stage(output_in, sink, metrics, clock, None, stop)
    })?;
    let inference = stage.inference;
    let head = stage.reasoning;
    let load = def.load.map(|options| (options, stage.load.clone()));
    let reasoning: Option<Arc<ReasoningStats>> = head.as_ref().map(|h| h.handle().stats());
    if let Some(r) = &reasoning {
        metrics.split_latency_by(Arc::clone(&r.frame_latency));
    }
    let process_thread = spawn("process", {
        let (metrics, clock, processor) =
            (Arc::clone(&metrics), Arc::clone(&clock), stage.processor);
        move || run_process_stage(process_in, to_output, processor, metrics, clock)
    })?;
    let ingest_thread = spawn("ingest", {
        let (metrics, stop, limit) = (Arc::clone(&metrics), options.stop.clone(), options.frames);
        move || {
            let mut count = 0u64;
            ingest.run(&|| stop.is_stopped(), &mut |frame| {
                metrics.frame_in(frame.stamps.captured);
                if let Some(t) = frame.stamps.time_in(Stage::Ingest) {
                    metrics.stage_time(Stage::Ingest, t);
                }
                count += 1;
                if to_process.send(frame).is_err() {
                    return Flow::Stop;
                }
                if limit.is_some_and(|n| count >= n) {
                    Flow::Stop
                } else {
                    Flow::Continue
                }
            })
        }
    })?;

    let mut status = |snap: &MetricsSnapshot| {
        on_status(&LiveStatus {
            elapsed: started.elapsed(),
            metrics: snap,
            source: &source,
            inference: inference.as_deref(),
            reasoning: reasoning.as_deref(),
            load: load.as_ref().map(|(_, level)| level),
        })
    };
    let mut baseline: Option<(u64, u64)> = None;
    let mut next_status = Instant::now() + options.status_every;
    let store_request = || {
        if !options
            .store
            .as_ref()
            .is_some_and(|f| f.swap(false, Ordering::AcqRel))
        {
            return;
        }
        match &store_head {
            Some(head) => {
                head.request();
                info!("store requested (SIGUSR1): the next frame's report and images are stored as DICOM when done");
            }
            None => warn!("store requested (SIGUSR1), but nothing stores DICOM here: add [[sinks]] kind = \"dicom\" or \"pacs\""),
        }
    };
    while !(ingest_thread.is_finished()
        && process_thread.is_finished()
        && output_thread.is_finished())
    {
        std::thread::sleep(Duration::from_millis(20));
        store_request();
        // Polling reads one counter; the histograms are read only when a
        // status line is due.
        if baseline.is_none() {
            let frames_out = metrics.frames_out();
            if frames_out >= WARMUP_FRAMES {
                baseline = frame_path_allocations().map(|a| (a, frames_out));
            }
        }
        if Instant::now() >= next_status {
            next_status += options.status_every;
            status(&metrics.snapshot());
        }
    }

    let mut errors = Vec::new();
    match ingest_thread.join() {
        Ok(Ok(IngestEnd::EndOfStream)) => info!("source reached its end"),
        Ok(Ok(IngestEnd::Stopped)) => info!("source stopped"),
        Ok(Err(err)) => errors.push(err.to_string()),
        Err(_) => errors.push("the ingest thread panicked".into()),
    }
    if process_thread.join().is_err() {
        errors.push("the process thread panicked".into());
    }
    match output_thread.join() {
        Ok(Ok(())) => {}
        Ok(Err(err)) => errors.push(err.to_string()),
        Err(_) => errors.push("the output thread panicked".into()),
    }
    // The output's sink is gone: the log's queue is closed, its writer ends.
    let findings_log = findings_log.map(FindingsLog::finish);
    let server = results.map(ResultStream::finish);
    let dicom: Vec<_> = dicom.into_iter().map(DicomStore::finish).collect();
    for err in &errors {
        error!("{err}");
    }
    // The head stops at its next token; its counters are final after this.
    drop(head);

    let snap = metrics.snapshot();
    let duration = started.elapsed().as_secs_f64();
    // Measured after warm-up only; a run too short to warm up reports null.
    let allocations_per_frame = match (frame_path_allocations(), baseline) {
        (Some(now), Some((base_allocs, base_frames))) if snap.frames_out > base_frames => {
            Some((now - base_allocs) as f64 / (snap.frames_out - base_frames) as f64)
        }
        _ => None,
    };
    let cpu = match (cpu_before, usage::cpu_seconds()) {
        (Some((u0, s0)), Some((u1, s1))) if duration > 0.0 => Some(CpuReport {
            user_s: u1 - u0,
            system_s: s1 - s0,
            percent: 100.0 * ((u1 - u0) + (s1 - s0)) / duration,
        }),
        _ => None,
    };
    status(&snap);
    Ok(RunReport::new(
        &snap,
        ReportExtras {
            pipeline: def.name.clone(),
            latency_cdf_ms: metrics.latency_cdf(),
            allocations_per_frame,
            duration_s: duration,
            source: source.report(),
            cpu,
            max_rss_mib: usage::max_rss_mib(),
            frame_pool: pool.counters(),
            device: def.device.clone(),
            inference: inference.as_deref().map(InferenceReport::from_stats),
            accuracy: inference
                .as_deref()
                .map(InferenceStats::accuracy)
                .filter(|a| a.frames > 0),
            accuracy_by_class: inference
                .as_deref()
                .map(InferenceStats::accuracy_by_class)
                .unwrap_or_default(),
            accuracy_by_echo_pattern: inference
                .as_deref()
                .map(InferenceStats::accuracy_by_echo_pattern)
                .unwrap_or_default(),
            scene_totals: inference
                .as_deref()
                .map(InferenceStats::scene_totals)
                .filter(|s| s.scenes() > 0),
            overlay: overlay_stats.as_deref().map(OverlayReport::from_stats),
            reasoning: reasoning.as_deref().map(|r| r.report(duration)),
            load: load
                .as_ref()
                .map(|(options, level)| LoadReport::new(options, level)),
            findings_log,
            server,
            dicom,
            error: (!errors.is_empty()).then(|| errors.join("; ")),
        },
    ))
}

/// What the results stream needs: the session clients are told first, the
/// board reports come from, and the head requests go to.
fn stream_inputs(
    def: &PipelineDefinition,
    stage: &ProcessStage,
    server: &ServerOptions,
    metrics: &Arc<PipelineMetrics>,
    clock: &Arc<dyn Clock>,
) -> StreamInputs {
    let head = stage.reasoning.as_ref().map(|h| h.handle());
    let model_dir = def.model.as_ref().map(|m| {
        def.reasoning
            .as_ref()
            .and_then(|r| r.model.clone())
            .filter(|_| head.is_some())
            .unwrap_or_else(|| m.dir.clone())
    });
    let (prompts, codec) = match (&model_dir, &head) {
        (Some(dir), Some(_)) => model_words(dir),
        (Some(dir), None) => (model_words(dir).0, Err("no reasoning head runs".into())),
        _ => (Vec::new(), Err("no model".into())),
    };
    let model = def.model.as_ref().map(|m| v1::ModelInfo {
        dir: m.dir.display().to_string(),
        finding_label: stage.finding_name.clone(),
        providers: stage
            .inference
            .as_deref()
            .map(|s| {
                s.providers
                    .iter()
                    .map(|(graph, p)| format!("{graph}: {p}"))
                    .collect()
            })
            .unwrap_or_default(),
        prompts,
        reasoning: head.is_some(),
    });
    let (codec, why_no_codec) = match codec {
        Ok(c) => (Some(c), None),
        Err(e) => (None, Some(e)),
    };
    StreamInputs {
        session: v1::SessionInfo {
            protocol: sonoflow_protocol::PROTOCOL.into(),
            sonoflow_version: env!("CARGO_PKG_VERSION").into(),
            pipeline: def.name.clone(),
            device: def.device.clone().unwrap_or_default(),
            model,
            masks: server.masks,
            client_id: 0,
        },
        label: stage.finding_name.clone(),
        board: Arc::clone(&stage.interpretations),
        head,
        codec,
        why_no_codec,
        metrics: Arc::clone(metrics),
        clock: Arc::clone(clock),
        stores: def.sinks.iter().any(|s| s.kind.is_dicom()),
    }
}

fn spawn<T: Send + 'static>(
    name: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, RunError> {
    std::thread::Builder::new()
        .name(format!("sonoflow-{name}"))
        .spawn(f)
        .map_err(|e| RunError::Thread(name, e.to_string()))
}
