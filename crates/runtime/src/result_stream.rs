//! The results stream of a run (`[server]`, `--serve ADDR`): the results
//! server (sonoflow-server), fed by its own thread. A [`FrameTap`] on the
//! output's sink hands each frame's entry over a bounded channel that never
//! blocks (a full channel drops the entry and counts it in
//! `results_dropped`); the publisher thread turns entries into
//! `FrameResult`s, watches the interpretation board for reports, and sends
//! a `Stats` message twice a second. With `[server] video` (the default) a
//! [`VideoTap`] on the same tap copies a frame's pixels every
//! `1 / video_fps` to a video thread that encodes them as JPEG
//! (`VideoFrame`) for the viewer: JPEG never delays a frame or its results.
//! Requests from clients go to the reasoning head through [`HeadRequests`].
//! Each frame result written to a client's socket is timed from its frame's
//! capture ([`SocketLatency`]: `capture_to_socket_ms` in the run report).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, RecvTimeoutError};
use serde::Serialize;
use sonoflow_core::{Clock, Interpretation, InterpretationBoard, Recycled, Timestamp};
use sonoflow_model::ModelDir;
use sonoflow_pipeline::{LatencyRecorder, LatencySummary, PipelineMetrics};
use sonoflow_protocol::convert::{
    envelope, frame_result, report, FrameStyle, ReportParts, Scratch,
};
use sonoflow_protocol::v1::{self, server_message::Kind, ErrorCode};
use sonoflow_reasoning::prompt::PromptCodec;
use sonoflow_reasoning::{HeadHandle, ReasoningStats};
use sonoflow_server::{
    FrameSent, NoHead, Publisher, Refusal, RequestHandler, Server, ServerOptions, ServerReport,
    VideoEncoder,
};
use tracing::{info, warn};

use crate::error::RunError;
use crate::frame_tap::{Entry, FrameTap, Picture, VideoTap};

/// Frame entries waiting for the publisher before they are dropped.
const QUEUED_RESULTS: usize = 8;
/// How often the publisher looks at the board when no frame comes.
const POLL: Duration = Duration::from_millis(50);
/// How often a `Stats` message goes out.
const STATS_EVERY: Duration = Duration::from_millis(500);

/// The `server` section of the run report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerRunReport {
    #[serde(flatten)]
    pub server: ServerReport,
    /// Frame results the pipeline could not hand to the server (it was behind).
    pub results_dropped: u64,
    /// Video frames not copied because the video thread was still encoding.
    pub video_dropped: u64,
    /// From a frame's capture to its result written to a client's socket
    /// (WebSocket) or handed to the HTTP stream (ndjson): one sample per
    /// frame and client.
    pub capture_to_socket_ms: LatencySummary,
}

/// Times frame results as they are written to clients, on the pipeline's clock.
struct SocketLatency {
    clock: Arc<dyn Clock>,
    latency: LatencyRecorder,
}

impl FrameSent for SocketLatency {
    fn frame_sent(&self, captured: Timestamp) {
        self.latency
            .record(self.clock.now().saturating_since(captured));
    }
}

/// What the stream needs from the run.
pub(crate) struct StreamInputs {
    pub session: v1::SessionInfo,
    pub label: String,
    pub board: Arc<InterpretationBoard>,
    pub head: Option<HeadHandle>,
    /// The model's tokenizer, for checking prompts (None: no head, or it
    /// could not be loaded: prompts are refused with `why_no_codec`).
    pub codec: Option<PromptCodec>,
    pub why_no_codec: Option<String>,
    pub metrics: Arc<PipelineMetrics>,
    /// The pipeline's clock (frames' capture times are on it).
    pub clock: Arc<dyn Clock>,
    /// Whether a `dicom` or `pacs` sink stores keyframes (store requests).
    pub stores: bool,
}

/// The server and its publisher thread.
pub(crate) struct ResultStream {
    server: Server,
    socket_latency: Arc<SocketLatency>,
    dropped: Arc<AtomicU64>,
    video_dropped: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
    video: Option<JoinHandle<()>>,
}

impl ResultStream {
    pub fn start(
        options: ServerOptions,
        inputs: StreamInputs,
    ) -> Result<(Self, FrameTap), RunError> {
        let handler: Arc<dyn RequestHandler> = match &inputs.head {
            Some(head) => Arc::new(HeadRequests {
                head: head.clone(),
                codec: inputs.codec,
                why_no_codec: inputs.why_no_codec.unwrap_or_default(),
                stores: inputs.stores,
            }),
            None => Arc::new(NoHead),
        };
        let server = Server::start(options, inputs.session, handler)?;
        let socket_latency = Arc::new(SocketLatency {
            clock: inputs.clock,
            latency: LatencyRecorder::new(),
        });
        server.observe_frames_sent(Arc::clone(&socket_latency) as Arc<dyn FrameSent>);
        let dropped = Arc::new(AtomicU64::new(0));
        let (mut tap, entries) = FrameTap::new(QUEUED_RESULTS, false, Arc::clone(&dropped));
        let publisher = server.publisher();
        let video_dropped = Arc::new(AtomicU64::new(0));
        let video = match publisher.video() {
            Some(v) => {
                let (video_tap, pictures) = VideoTap::new(v.interval(), Arc::clone(&video_dropped));
                tap = tap.with_video(video_tap);
                let (publisher, encoder) = (publisher.clone(), VideoEncoder::new(v.quality));
                let thread = std::thread::Builder::new()
                    .name("sonoflow-video".into())
                    .spawn(move || {
                        sonoflow_server::lower_priority();
                        send_video(&pictures, &publisher, &encoder)
                    })
                    .map_err(|e| RunError::Thread("video", e.to_string()))?;
                Some(thread)
            }
            None => None,
        };
        let stats = inputs.head.as_ref().map(HeadHandle::stats);
        let thread = std::thread::Builder::new()
            .name("sonoflow-results".into())
            .spawn({
                let dropped = Arc::clone(&dropped);
                move || {
                    sonoflow_server::lower_priority();
                    publish(
                        &entries,
                        &publisher,
                        &inputs.label,
                        &inputs.board,
                        stats.as_deref(),
                        &inputs.metrics,
                        &dropped,
                    )
                }
            })
            .map_err(|e| RunError::Thread("results", e.to_string()))?;
        info!(address = %server.address(), "results stream on");
        Ok((
            Self {
                server,
                socket_latency,
                dropped,
                video_dropped,
                thread: Some(thread),
                video,
            },
            tap,
        ))
    }

    /// Waits for the publisher (the tap must be gone), closes every client
    /// and reports.
    pub fn finish(mut self) -> ServerRunReport {
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                warn!("the results publisher panicked");
            }
        }
        if let Some(thread) = self.video.take() {
            if thread.join().is_err() {
                warn!("the video thread panicked");
            }
        }
        ServerRunReport {
            server: self.server.finish("the run ended"),
            results_dropped: self.dropped.load(Ordering::Relaxed),
            video_dropped: self.video_dropped.load(Ordering::Relaxed),
            capture_to_socket_ms: self.socket_latency.latency.summary(),
        }
    }
}

/// The video thread: each picture as JPEG to every client; ends when the
/// tap closes. A frame that cannot be encoded is skipped (said once).
fn send_video(
    pictures: &Receiver<Recycled<Picture>>,
    publisher: &Publisher,
    encoder: &VideoEncoder,
) {
    let mut said = false;
    for picture in pictures {
        if publisher.clients() == 0 {
            continue;
        }
        match encoder.encode(
            picture.frame.0,
            picture.captured.nanos(),
            picture.format,
            &picture.pixels,
        ) {
            Ok(frame) => {
                drop(picture);
                publisher.publish(&envelope(Kind::Video(frame)));
            }
            Err(e) if !said => {
                said = true;
                warn!("frames are not sent as video: {e}");
            }
            Err(_) => {}
        }
    }
}

/// The publisher thread: frames as they come, reports when the board
/// changes, stats on a timer; ends when the tap closes.
fn publish(
    entries: &Receiver<Recycled<Entry>>,
    publisher: &Publisher,
    label: &str,
    board: &InterpretationBoard,
    stats: Option<&ReasoningStats>,
    metrics: &PipelineMetrics,
    dropped: &AtomicU64,
) {
    let style = FrameStyle {
        label,
        masks: publisher.masks(),
    };
    let mut scratch = Scratch::default();
    let mut reports = ReportWatch::default();
    let started = Instant::now();
    let mut next_stats = started + STATS_EVERY;
    loop {
        match entries.recv_timeout(POLL) {
            Ok(entry) => {
                let result = frame_result(&entry.parts(), &style, &mut scratch);
                let captured = entry.stamps.captured;
                drop(entry);
                publisher.publish_frame(&envelope(Kind::Frame(result)), captured);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if let Some(r) = reports.poll(board, stats) {
            publisher.publish(&envelope(Kind::Report(r)));
        }
        if Instant::now() >= next_stats {
            next_stats += STATS_EVERY;
            let snap = metrics.snapshot();
            publisher.publish_stats(v1::Stats {
                elapsed_s: started.elapsed().as_secs_f64(),
                frames_in: snap.frames_in,
                frames_out: snap.frames_out,
                frames_dropped: snap.total_dropped(),
                latency: Some(v1::LatencySummary {
                    p50_ms: snap.latency.p50,
                    p99_ms: snap.latency.p99,
                    max_ms: snap.latency.max,
                }),
                results_dropped: dropped.load(Ordering::Relaxed),
                clients: Vec::new(),
            });
        }
    }
}

/// Turns changes of the interpretation board into `Report` messages, with
/// the head's details (reason, tokens, fields, links) once it is done.
#[derive(Default)]
struct ReportWatch {
    last: Option<Arc<Interpretation>>,
}

impl ReportWatch {
    fn poll(
        &mut self,
        board: &InterpretationBoard,
        stats: Option<&ReasoningStats>,
    ) -> Option<v1::Report> {
        let current = board.load_full()?;
        if self.last.as_ref().is_some_and(|l| Arc::ptr_eq(l, &current)) {
            return None;
        }
        // The head keeps a report's details before it shows its text.
        let latest = stats.and_then(|s| s.latest_for(current.frame.0));
        self.last = Some(Arc::clone(&current));
        let mut parts = ReportParts {
            keyframe: current.frame,
            captured: current.captured,
            state: Some(&current.state),
            text: &current.text,
            ..ReportParts::default()
        };
        if let Some(r) = &latest {
            parts.reason = Some(r.reason.name());
            parts.tokens = r.tokens;
            parts.prompt = &r.prompt;
            parts.lesion = r.fields.lesion;
            parts.label = r.fields.class.as_deref();
            parts.attributes = r
                .fields
                .attributes
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            parts.impression = r.fields.impression.as_deref();
            parts.long_axis_mm = r.long_axis_mm;
            parts.short_axis_mm = r.short_axis_mm;
            parts.kernel_version = r.kernel_version;
            parts.truncated = r.truncated;
        }
        Some(report(&parts))
    }
}

/// Requests to the reasoning head: "analyse now" asks for a keyframe (its
/// reason: request), a prompt is checked against the model's vocabulary and
/// becomes the task; freezing is not supported yet.
struct HeadRequests {
    head: HeadHandle,
    codec: Option<PromptCodec>,
    why_no_codec: String,
    /// A `dicom` or `pacs` sink stores keyframes.
    stores: bool,
}

impl HeadRequests {
    fn open(&self) -> Result<(), Refusal> {
        if self.head.is_open() {
            Ok(())
        } else {
            let cause = self
                .head
                .stats()
                .error
                .lock()
                .ok()
                .and_then(|e| e.clone())
                .unwrap_or_else(|| "it stopped".into());
            Err(Refusal::new(
                ErrorCode::Unavailable,
                format!("the reasoning head is unavailable: {cause}"),
            ))
        }
    }
}

impl RequestHandler for HeadRequests {
    fn analyse_now(&self) -> Result<String, Refusal> {
        self.open()?;
        self.head.request();
        Ok("a report on the next frame is requested (keyframe reason: request)".into())
    }

    fn prompt(&self, prompt: &str) -> Result<String, Refusal> {
        self.open()?;
        let codec = self.codec.as_ref().ok_or_else(|| {
            Refusal::new(
                ErrorCode::Unavailable,
                format!(
                    "prompts cannot be checked: the model's tokenizer did not load ({})",
                    self.why_no_codec
                ),
            )
        })?;
        codec
            .encode(prompt)
            .map_err(|e| Refusal::new(ErrorCode::Invalid, e.to_string()))?;
        self.head.ask(prompt);
        Ok(format!(
            "the task is now \"{prompt}\"; a report on the next frame is requested"
        ))
    }

    fn store(&self) -> Result<String, Refusal> {
        self.open()?;
        if !self.stores {
            return Err(Refusal::new(
                ErrorCode::Unavailable,
                "nothing stores DICOM in this pipeline: add [[sinks]] kind = \"dicom\" (a folder) or \"pacs\"",
            ));
        }
        self.head.request();
        Ok("a report on the next frame is requested; its images and report are stored as DICOM when it is done".into())
    }
}

/// The model's task prompts and tokenizer (for the session and for checking
/// prompts), or why they could not be read.
pub(crate) fn model_words(dir: &std::path::Path) -> (Vec<String>, Result<PromptCodec, String>) {
    match ModelDir::open(dir) {
        Ok(model) => {
            let prompts = model
                .manifest
                .task_prompts()
                .into_iter()
                .map(str::to_owned)
                .collect();
            (
                prompts,
                PromptCodec::load(&model).map_err(|e| e.to_string()),
            )
        }
        Err(e) => (Vec::new(), Err(e.to_string())),
    }
}
