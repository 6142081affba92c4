//! sonoflow-output: processed frames back into GStreamer.
//!
//! [`GstOutput`] is the output stage's [`FrameSink`]: an `appsrc` feeding a
//! `tee` with one branch per configured sink (MP4/MKV file, display, RTP/UDP,
//! fakesink). The output size is fixed by the first frame (rounded down to
//! even for H.264); frames of another size after a caps change are scaled
//! into it, so files stay valid. Buffers come from a GStreamer buffer pool
//! and are reused. The shape of the pipeline, runnable by hand:
//!
//! ```text
//! gst-launch-1.0 videotestsrc num-buffers=60 ! video/x-raw,format=GRAY8 ! videoconvert ! \
//!     videoscale add-borders=true ! tee name=t  t. ! queue ! videoconvert ! video/x-raw,format=I420 ! \
//!     x264enc speed-preset=ultrafast tune=zerolatency ! h264parse ! mp4mux fragment-duration=1000 ! \
//!     filesink location=out.mp4 buffer-mode=unbuffered
//! ```
//!
//! Each sink's branch is built from elements, not from launch text: a path
//! or host from the definition is set as a property and never parsed.
//! Files are crash-safe by default: MP4 is fragmented (`fragment_ms`) and
//! the filesink writes unbuffered, so a killed run leaves a file that plays
//! up to its last fragment. The first sink error is the one reported (a full
//! disk, not the multiplexer that failed after it), and a file that received
//! no frame at all is removed rather than left unplayable.

pub mod config;

use std::path::PathBuf;
use std::time::Duration;

use gst::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;
use sonoflow_core::{Frame, FrameFormat, Stage};
use sonoflow_pipeline::{Delivery, FrameSink, Painter, StageError};
use tracing::{debug, info, warn};

pub use config::{DicomSinkSpec, SinkConfig, SinkKind, SinkSpec};

const APPSRC_NAME: &str = "sonoflow_appsrc";
const SIZE_FILTER_NAME: &str = "sonoflow_size";
const TEE_NAME: &str = "sonoflow_tee";
/// appsrc, conversion and size fix, then the tee the sink branches hang on:
/// sonoflow's own text only.
const HEAD: &str = "appsrc name=sonoflow_appsrc ! videoconvert ! videoscale add-borders=true ! \
                    capsfilter name=sonoflow_size ! tee name=sonoflow_tee";
/// How long [`GstOutput::finish`] waits for the sinks to finalise.
const FINISH_TIMEOUT: Duration = Duration::from_secs(20);
/// Frames a file branch's queue holds before it holds the appsrc back.
const FILE_QUEUE_BUFFERS: u32 = 8;

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("GStreamer could not be initialised: {0}")]
    Init(#[source] gst::glib::Error),
    #[error("the output pipeline `{launch}` could not be built: {cause}")]
    Launch {
        launch: &'static str,
        cause: HeadError,
    },
    #[error("{sink}: the GStreamer element `{factory}` is not available. Fix: {fix}")]
    Element {
        sink: String,
        factory: &'static str,
        fix: &'static str,
    },
    #[error("{sink}: its branch could not be built: {problem}")]
    Branch { sink: String, problem: BranchError },
    #[error(
        "{sink}: there is no display to show video on (neither DISPLAY nor WAYLAND_DISPLAY is set). \
         Fix: run inside a graphical session, or replace the sink with kind = \"rtp\" (watch it from \
         another machine) or kind = \"mp4\" (record it)"
    )]
    NoDisplay { sink: String },
    #[error(
        "{sink}: none of the video sinks for this display is installed (tried {tried}). \
         Fix: install gstreamer1.0-x (xvimagesink, ximagesink), gstreamer1.0-gl (glimagesink) \
         or gstreamer1.0-plugins-bad (waylandsink)"
    )]
    NoVideoSink { sink: String, tried: String },
    #[error("could not create the directory {path} for a sink: {cause}")]
    Directory {
        path: String,
        #[source]
        cause: std::io::Error,
    },
    #[error("the output pipeline could not start: {}", describe_start(.error))]
    Start {
        /// The first error GStreamer posted while the state change failed, if any.
        error: Option<Box<SinkFailure>>,
    },
    /// A sink's element posted an error: the first of the run, the root cause.
    #[error("a sink failed: {0}")]
    Sink(Box<SinkFailure>),
    #[error("a frame of {bytes} bytes is larger than a GStreamer buffer can hold")]
    FrameTooLarge { bytes: usize },
    #[error("the output buffer pool could not be {step}: {cause}")]
    Pool {
        /// "configured" or "activated".
        step: &'static str,
        #[source]
        cause: gst::glib::BoolError,
    },
    #[error("the output buffer pool gave no buffer: {0}")]
    NoBuffer(#[source] gst::FlowError),
    #[error("a buffer from the output pool is shared and cannot be written")]
    SharedBuffer,
    #[error("an output buffer could not be mapped for writing: {0}")]
    Map(#[source] gst::glib::BoolError),
    #[error("an output buffer of {buffer_bytes} bytes for a {frame_bytes}-byte frame")]
    BufferTooSmall {
        buffer_bytes: usize,
        frame_bytes: usize,
    },
    #[error("a frame of {data_bytes} bytes where its format needs {format_bytes}")]
    FrameTooShort {
        data_bytes: usize,
        format_bytes: usize,
    },
    #[error("the appsrc refused a buffer: {0}")]
    Push(#[source] gst::FlowError),
    #[error("the sinks did not finish within {0:?}")]
    FinishTimeout(Duration),
}

fn describe_start(error: &Option<Box<SinkFailure>>) -> String {
    match error {
        Some(error) => error.to_string(),
        None => "the state change to PLAYING failed".into(),
    }
}

/// Why sonoflow's own head of the output pipeline could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("{0}")]
    Parse(#[source] gst::glib::Error),
    #[error("it built a single element, not a pipeline")]
    NotAPipeline,
    #[error("it has no {kind} named {name}")]
    MissingElement {
        kind: &'static str,
        name: &'static str,
    },
    #[error("the pipeline has no bus")]
    NoBus,
}

/// Why one sink's branch could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BranchError {
    #[error("a file sink without a path")]
    NoPath,
    #[error("an rtp sink without a port")]
    NoPort,
    #[error("{factory} has no property {property}")]
    NoProperty {
        factory: &'static str,
        property: String,
    },
    #[error("{factory} has no string property {property}")]
    NotAString { factory: String, property: String },
    #[error("no element to set {property} on")]
    NoElement { property: String },
    #[error("an empty branch")]
    Empty,
    #[error("its elements could not be added to the pipeline: {0}")]
    Add(#[source] gst::glib::BoolError),
    #[error("its elements could not be linked: {0}")]
    Link(#[source] gst::glib::BoolError),
    #[error("it could not be linked to the tee: {0}")]
    Tee(#[source] gst::glib::BoolError),
}

/// An error a sink's element posted on the bus, in its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkFailure {
    /// The sink it belongs to (`sinks[0] (mp4 out.mp4)`), if it came from a sink's branch.
    pub sink: Option<String>,
    /// The element that posted it, less the sink's name prefix (`filesink`).
    pub element: String,
    /// The GLib error domain (`gst-resource-error-quark`, ...).
    pub domain: String,
    /// GStreamer's message ("No space left on the resource.").
    pub message: String,
    /// The element's debug detail, if it gave one.
    pub debug: Option<String>,
}

impl std::fmt::Display for SinkFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(sink) = &self.sink {
            write!(f, "{sink}: ")?;
        }
        write!(f, "{} (from {})", self.message, self.element)
    }
}

/// How output buffers are timestamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputTiming {
    /// From the capture timestamp: live sources, real time preserved.
    Capture,
    /// From the source PTS: files, their own timeline preserved.
    SourcePts,
}

/// Output settings that are not per sink.
#[derive(Debug, Clone)]
pub struct OutputOptions {
    pub timing: OutputTiming,
    /// Nominal frame rate written into the caps, as (numerator, denominator):
    /// (30, 1), or (30000, 1001) for NTSC's 29.97.
    pub fps: (u32, u32),
    /// Frames that may wait in the appsrc before new ones are dropped.
    pub max_queued: u64,
    /// Wait for room instead of dropping (offline runs that must keep every frame).
    pub block: bool,
}

/// What the output is showing now.
struct Negotiated {
    format: FrameFormat,
    pool: gst::BufferPool,
}

/// The output stage's GStreamer side.
pub struct GstOutput {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    size_filter: gst::Element,
    bus: gst::Bus,
    options: OutputOptions,
    negotiated: Option<Negotiated>,
    /// Timeline chosen at the first frame, its origin (ns), and the last
    /// PTS given, to keep PTS monotonic.
    origin: Option<(OutputTiming, u64)>,
    last_pts: Option<u64>,
    /// The first sink error: the root cause; later ones follow from it.
    failed: Option<SinkFailure>,
    /// How errors name each sink, by the prefix of its elements' names.
    sinks: Vec<(String, String)>,
    /// The files the sinks write, removed at the end if no frame reached them.
    files: Vec<PathBuf>,
    /// Frames handed to the appsrc.
    frames_written: u64,
    finished: bool,
    /// Draws each frame into its output buffer (the overlay); without one
    /// the frame's pixels are copied as they are.
    painter: Option<Box<dyn Painter>>,
}

impl GstOutput {
    /// Builds the output pipeline and starts it; file sinks open their
    /// files here, so an unwritable path fails before any frame flows.
    pub fn new(
        sinks: &[SinkSpec],
        options: OutputOptions,
        painter: Option<Box<dyn Painter>>,
    ) -> Result<Self, OutputError> {
        gst::init().map_err(OutputError::Init)?;
        // The DICOM store is fed by the run, not by this pipeline; with no
        // video sink left, frames go to a fakesink.
        let mut video: Vec<SinkSpec> = sinks
            .iter()
            .filter(|s| s.kind.is_video())
            .cloned()
            .collect();
        if video.is_empty() {
            video.push(SinkSpec::fake("sinks (no video sink)"));
        }
        let sinks = &video[..];
        for sink in sinks {
            if let Some(dir) = sink
                .path
                .as_ref()
                .and_then(|p| p.parent())
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|cause| OutputError::Directory {
                    path: dir.display().to_string(),
                    cause,
                })?;
            }
        }
        let built = |cause| OutputError::Launch {
            launch: HEAD,
            cause,
        };
        let missing = |kind, name| built(HeadError::MissingElement { kind, name });
        let pipeline = gst::parse::launch(HEAD)
            .map_err(|e| built(HeadError::Parse(e)))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| built(HeadError::NotAPipeline))?;
        let appsrc = pipeline
            .by_name(APPSRC_NAME)
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or_else(|| missing("appsrc", APPSRC_NAME))?;
        let size_filter = pipeline
            .by_name(SIZE_FILTER_NAME)
            .ok_or_else(|| missing("capsfilter", SIZE_FILTER_NAME))?;
        let tee = pipeline
            .by_name(TEE_NAME)
            .ok_or_else(|| missing("tee", TEE_NAME))?;
        let bus = pipeline.bus().ok_or_else(|| built(HeadError::NoBus))?;
        let mut shapes = Vec::with_capacity(sinks.len());
        for (index, sink) in sinks.iter().enumerate() {
            shapes.push(Branch::new(&pipeline, index, sink).build(&tee)?);
        }
        appsrc.set_format(gst::Format::Time);
        appsrc.set_is_live(true);
        appsrc.set_max_buffers(options.max_queued.max(1));
        // Bounded by buffers only; the byte limit (200 kB by default) would
        // hold less than one large frame.
        appsrc.set_max_bytes(0);
        // Never block inside appsrc: a sink that fails while we wait would
        // hang the stage. Waiting for room is done in `wait_for_room`.
        appsrc.set_block(false);
        let mut output = Self {
            pipeline,
            appsrc,
            size_filter,
            bus,
            options,
            negotiated: None,
            origin: None,
            last_pts: None,
            failed: None,
            sinks: sinks
                .iter()
                .enumerate()
                .map(|(i, s)| (element_prefix(i), s.describe()))
                .collect(),
            files: sinks
                .iter()
                .filter(|s| s.kind.is_file())
                .filter_map(|s| s.path.clone())
                .collect(),
            frames_written: 0,
            finished: false,
            painter,
        };
        if output.pipeline.set_state(gst::State::Playing).is_err() {
            output.collect_errors();
            let error = output.failed.take().map(Box::new);
            output.shut_down();
            return Err(OutputError::Start { error });
        }
        info!("output: {HEAD} with {}", shapes.join("; "));
        Ok(output)
    }

    /// Takes every error waiting on the bus; the first one of the run is
    /// kept as the cause, later ones (a multiplexer failing because its
    /// file could not be written) are logged only.
    fn collect_errors(&mut self) {
        while let Some(msg) = self.bus.pop_filtered(&[gst::MessageType::Error]) {
            self.note_error(&msg);
        }
    }

    fn note_error(&mut self, msg: &gst::Message) {
        let gst::MessageView::Error(err) = msg.view() else {
            return;
        };
        let element = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
        let debug = err.debug().map(|d| d.to_string());
        if let Some(details) = &debug {
            debug!("output error from {element}: {details}");
        }
        let error = err.error();
        let (sink, element) = match self
            .sinks
            .iter()
            .find(|(prefix, _)| element.starts_with(prefix.as_str()))
        {
            Some((prefix, sink)) => (
                Some(sink.clone()),
                element.trim_start_matches(prefix.as_str()).to_owned(),
            ),
            None => (None, element),
        };
        let failure = SinkFailure {
            sink,
            element,
            domain: error.domain().as_str().to_string(),
            message: error.message().to_owned(),
            debug,
        };
        match &self.failed {
            None => self.failed = Some(failure),
            Some(first) => debug!("after the first sink error ({first}): {failure}"),
        }
    }

    /// The first sink error so far, if any.
    fn check(&mut self) -> Result<(), OutputError> {
        self.collect_errors();
        match &self.failed {
            Some(err) => Err(OutputError::Sink(Box::new(err.clone()))),
            None => Ok(()),
        }
    }

    /// Stops the pipeline; files that received no frame are removed (an
    /// MP4 without a frame does not play, and would pass for a recording).
    fn shut_down(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
        self.finished = true;
        if self.frames_written > 0 {
            return;
        }
        for path in &self.files {
            // Only a regular file the sink made (never a device such as /dev/full).
            if std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
                match std::fs::remove_file(path) {
                    Ok(()) => info!("removed {}: no frame was written to it", path.display()),
                    Err(err) => warn!(
                        "{} holds no frame but could not be removed: {err}",
                        path.display()
                    ),
                }
            }
        }
    }

    /// Sets caps and a buffer pool for a new frame format; returns the pool.
    fn negotiate(&mut self, format: FrameFormat) -> Result<gst::BufferPool, OutputError> {
        if self.negotiated.is_none() {
            // The first frame fixes the output size for the whole run.
            let (w, h) = ((format.width & !1).max(2), (format.height & !1).max(2));
            // Square pixels: a later frame of another shape is scaled with borders.
            let size = gst::Caps::builder("video/x-raw")
                .field("width", w as i32)
                .field("height", h as i32)
                .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
                .build();
            self.size_filter.set_property("caps", &size);
            info!("output size {w}x{h}");
        } else {
            info!(
                "output input changed to {}x{}; scaling into the output size",
                format.width, format.height
            );
        }
        let caps = gst::Caps::builder("video/x-raw")
            .field("format", format.pixel.gst_name())
            .field("width", format.width as i32)
            .field("height", format.height as i32)
            .field(
                "framerate",
                gst::Fraction::new(
                    i32::try_from(self.options.fps.0.max(1)).unwrap_or(i32::MAX),
                    i32::try_from(self.options.fps.1.max(1)).unwrap_or(i32::MAX),
                ),
            )
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build();
        let size = u32::try_from(format.len()).map_err(|_| OutputError::FrameTooLarge {
            bytes: format.len(),
        })?;
        let pool = gst::BufferPool::new();
        let mut config = pool.config();
        // Every buffer the output can have in flight, allocated now and never
        // more: the appsrc's queue, each branch's queue and one in each
        // converter. An unbounded pool would grow (and keep) one frame at each
        // new high-water mark of a slow encoder, a ratchet in RSS.
        let branches = u32::try_from(self.sinks.len().max(1)).unwrap_or(u32::MAX);
        let buffers = u32::try_from(self.options.max_queued)
            .unwrap_or(u32::MAX)
            .saturating_add((FILE_QUEUE_BUFFERS + 4).saturating_mul(branches));
        config.set_params(Some(&caps), size, buffers, buffers);
        pool.set_config(config).map_err(|cause| OutputError::Pool {
            step: "configured",
            cause,
        })?;
        pool.set_active(true).map_err(|cause| OutputError::Pool {
            step: "activated",
            cause,
        })?;
        if let Some(old) = self.negotiated.take() {
            let _ = old.pool.set_active(false);
        }
        self.appsrc.set_caps(Some(&caps));
        self.negotiated = Some(Negotiated {
            format,
            pool: pool.clone(),
        });
        Ok(pool)
    }

    /// One frame's duration at the nominal rate.
    fn frame_ns(&self) -> u64 {
        let (numer, denom) = self.options.fps;
        1_000_000_000 * u64::from(denom.max(1)) / u64::from(numer.max(1))
    }

    /// A PTS on the output timeline, strictly increasing. The timeline
    /// (source PTS or capture time) is chosen at the first frame and kept;
    /// a frame without a usable time gets the previous PTS plus one frame.
    fn pts_for(&mut self, frame: &Frame) -> u64 {
        let frame_ns = self.frame_ns();
        let time_on = |timing: OutputTiming| match (timing, frame.source_pts) {
            (OutputTiming::SourcePts, Some(pts)) => {
                Some(u64::try_from(pts.as_nanos()).unwrap_or(u64::MAX))
            }
            (OutputTiming::SourcePts, None) => None,
            (OutputTiming::Capture, _) => Some(frame.stamps.captured.nanos()),
        };
        let (timing, origin) = *self.origin.get_or_insert_with(|| {
            let timing =
                if self.options.timing == OutputTiming::SourcePts && frame.source_pts.is_some() {
                    OutputTiming::SourcePts
                } else {
                    OutputTiming::Capture
                };
            (timing, time_on(timing).unwrap_or(0))
        });
        let next = self.last_pts.map_or(0, |last| last + frame_ns);
        let pts = match (time_on(timing), self.last_pts) {
            (Some(t), Some(last)) if t.saturating_sub(origin) > last => t - origin,
            (Some(t), None) => t.saturating_sub(origin),
            _ => next,
        };
        self.last_pts = Some(pts);
        pts
    }

    /// Waits until the appsrc has room (block mode), watching for sink errors.
    fn wait_for_room(&mut self) -> Result<(), OutputError> {
        while self.appsrc.current_level_buffers() >= self.options.max_queued {
            self.check()?;
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    fn push_frame(&mut self, frame: &Frame) -> Result<Delivery, OutputError> {
        self.check()?;
        let format = self
            .painter
            .as_ref()
            .map_or(frame.format, |p| p.format_for(frame.format));
        // The pool is a reference-counted GStreamer object: cloning it allocates nothing.
        let pool = match &self.negotiated {
            Some(n) if n.format == format => n.pool.clone(),
            _ => self.negotiate(format)?,
        };
        if self.options.block {
            self.wait_for_room()?;
        } else if self.appsrc.current_level_buffers() >= self.options.max_queued {
            return Ok(Delivery::Dropped);
        }
        let mut buffer = pool.acquire_buffer(None).map_err(OutputError::NoBuffer)?;
        let pts = self.pts_for(frame);
        {
            let buffer = buffer.get_mut().ok_or(OutputError::SharedBuffer)?;
            buffer.set_pts(gst::ClockTime::from_nseconds(pts));
            buffer.set_duration(gst::ClockTime::from_nseconds(self.frame_ns()));
            let mut map = buffer.map_writable().map_err(OutputError::Map)?;
            let len = format.len();
            if map.len() < len {
                return Err(OutputError::BufferTooSmall {
                    buffer_bytes: map.len(),
                    frame_bytes: len,
                });
            }
            match self.painter.as_mut() {
                Some(painter) => painter.paint(frame, &mut map[..len]),
                None => {
                    let pixels =
                        frame
                            .data
                            .get(..len)
                            .ok_or_else(|| OutputError::FrameTooShort {
                                data_bytes: frame.data.len(),
                                format_bytes: len,
                            })?;
                    map[..len].copy_from_slice(pixels);
                }
            }
        }
        match self.appsrc.push_buffer(buffer) {
            Ok(_) => {
                self.frames_written += 1;
                Ok(Delivery::Delivered)
            }
            Err(gst::FlowError::Flushing) => Ok(Delivery::Dropped),
            Err(flow) => Err(OutputError::Push(flow)),
        }
    }

    /// Sends end-of-stream and waits until every sink has finalised.
    fn finish_pipeline(&mut self) -> Result<(), OutputError> {
        if self.negotiated.is_none() {
            debug!("output: no frame was ever pushed");
        }
        if let Err(err) = self.check() {
            self.shut_down();
            return Err(err);
        }
        let _ = self.appsrc.end_of_stream();
        let msg = self.bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(FINISH_TIMEOUT.as_secs()),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        let result = match msg {
            Some(msg) if msg.type_() == gst::MessageType::Eos => Ok(()),
            Some(msg) => {
                // An error message (the filter lets only EOS and errors
                // through): `check` reports the run's first sink failure.
                self.note_error(&msg);
                self.check()
            }
            None => Err(OutputError::FinishTimeout(FINISH_TIMEOUT)),
        };
        self.shut_down();
        result
    }
}

impl FrameSink for GstOutput {
    fn push(&mut self, frame: &Frame) -> Result<Delivery, StageError> {
        self.push_frame(frame)
            .map_err(|e| StageError::new(Stage::Output, e))
    }

    fn finish(&mut self) -> Result<(), StageError> {
        self.finish_pipeline()
            .map_err(|e| StageError::new(Stage::Output, e))
    }
}

impl Drop for GstOutput {
    fn drop(&mut self) {
        if !self.finished {
            warn!("output dropped without finish; files may be incomplete");
            self.shut_down();
        }
    }
}

/// Names of sink `index`'s elements start with this.
fn element_prefix(index: usize) -> String {
    format!("sonoflow-sink{index}-")
}

/// One sink's branch after the tee, built element by element.
struct Branch<'a> {
    pipeline: &'a gst::Pipeline,
    sink: &'a SinkSpec,
    prefix: String,
    elements: Vec<gst::Element>,
    /// The branch as a launch-like line, for the log.
    shape: Vec<String>,
}

impl<'a> Branch<'a> {
    fn new(pipeline: &'a gst::Pipeline, index: usize, sink: &'a SinkSpec) -> Self {
        Self {
            pipeline,
            sink,
            prefix: element_prefix(index),
            elements: Vec::new(),
            shape: Vec::new(),
        }
    }

    /// Adds `factory` with fixed settings (sonoflow's own, known-good values).
    fn push(
        &mut self,
        factory: &'static str,
        settings: &[(&str, &str)],
        fix: &'static str,
    ) -> Result<gst::Element, OutputError> {
        let element = gst::ElementFactory::make(factory)
            .name(format!("{}{factory}", self.prefix))
            .build()
            .map_err(|_| OutputError::Element {
                sink: self.sink.describe(),
                factory,
                fix,
            })?;
        let mut shape = factory.to_owned();
        for (name, value) in settings {
            if element.find_property(name).is_none() {
                return Err(self.error(BranchError::NoProperty {
                    factory,
                    property: (*name).to_owned(),
                }));
            }
            element.set_property_from_str(name, value);
            shape.push_str(&format!(" {name}={value}"));
        }
        self.shape.push(shape);
        self.elements.push(element.clone());
        Ok(element)
    }

    /// Sets a value from the definition (a path, a host) as a string property.
    fn set_value(&mut self, name: &str, value: &str) -> Result<(), OutputError> {
        let element = self.elements.last().ok_or_else(|| {
            self.error(BranchError::NoElement {
                property: name.to_owned(),
            })
        })?;
        match element.find_property(name) {
            Some(spec) if spec.value_type() == String::static_type() => {
                element.set_property(name, value);
                if let Some(shape) = self.shape.last_mut() {
                    shape.push_str(&format!(" {name}={value:?}"));
                }
                Ok(())
            }
            _ => Err(self.error(BranchError::NotAString {
                factory: element
                    .factory()
                    .map_or_else(|| element.name().to_string(), |f| f.name().to_string()),
                property: name.to_owned(),
            })),
        }
    }

    fn error(&self, problem: BranchError) -> OutputError {
        OutputError::Branch {
            sink: self.sink.describe(),
            problem,
        }
    }

    fn caps(&mut self, caps: gst::Caps) -> Result<(), OutputError> {
        let shown = caps.to_string();
        self.push("capsfilter", &[], BASE)?
            .set_property("caps", &caps);
        if let Some(shape) = self.shape.last_mut() {
            *shape = shown;
        }
        Ok(())
    }

    fn h264(&mut self) -> Result<(), OutputError> {
        self.push("videoconvert", &[], BASE)?;
        self.caps(
            gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .build(),
        )?;
        let bitrate = self.sink.bitrate_kbps.to_string();
        self.push(
            "x264enc",
            &[
                ("speed-preset", "ultrafast"),
                ("tune", "zerolatency"),
                ("bitrate", &bitrate),
                ("key-int-max", "60"),
            ],
            "install gstreamer1.0-plugins-ugly (x264enc)",
        )?;
        Ok(())
    }

    /// Builds the sink's elements, links them and hangs them on the tee.
    /// Returns the branch's shape for the log.
    fn build(mut self, tee: &gst::Element) -> Result<String, OutputError> {
        // Live views drop rather than hold the pipeline back; files keep every frame.
        let leaky: &[(&str, &str)] = &[("leaky", "downstream"), ("max-size-buffers", "4")];
        match self.sink.kind {
            SinkKind::Mp4 | SinkKind::Mkv => {
                let path = self
                    .sink
                    .path
                    .clone()
                    .ok_or_else(|| self.error(BranchError::NoPath))?;
                // Bounded in frames (a byte limit would hold one 4K frame or
                // dozens of small ones); full, it holds the appsrc back.
                let depth = FILE_QUEUE_BUFFERS.to_string();
                self.push(
                    "queue",
                    &[
                        ("max-size-buffers", depth.as_str()),
                        ("max-size-bytes", "0"),
                        ("max-size-time", "0"),
                    ],
                    BASE,
                )?;
                self.h264()?;
                self.push("h264parse", &[], BAD)?;
                if self.sink.kind == SinkKind::Mp4 {
                    let fragment = self.sink.fragment_ms.to_string();
                    self.push("mp4mux", &[("fragment-duration", &fragment)], GOOD)?;
                } else {
                    self.push("matroskamux", &[], GOOD)?;
                }
                // Unbuffered: what the muxer wrote is in the kernel's hands,
                // not lost with the process.
                self.push("filesink", &[("buffer-mode", "unbuffered")], BASE)?;
                self.set_value("location", &path.to_string_lossy())?;
            }
            SinkKind::Display => {
                let video_sink =
                    display_sink(env_set("WAYLAND_DISPLAY"), env_set("DISPLAY"), |f| {
                        gst::ElementFactory::find(f).is_some()
                    })
                    .map_err(|problem| problem.into_error(self.sink.describe()))?;
                self.push("queue", leaky, BASE)?;
                self.push("videoconvert", &[], BASE)?;
                self.push(video_sink, &[("sync", "false")], BASE)?;
            }
            SinkKind::Rtp => {
                let host = self.sink.host.clone().unwrap_or_else(|| "127.0.0.1".into());
                let port = self
                    .sink
                    .port
                    .ok_or_else(|| self.error(BranchError::NoPort))?
                    .to_string();
                self.push("queue", leaky, BASE)?;
                self.h264()?;
                self.push(
                    "rtph264pay",
                    &[("config-interval", "1"), ("pt", "96")],
                    GOOD,
                )?;
                self.push(
                    "udpsink",
                    &[("port", &port), ("sync", "false"), ("async", "false")],
                    GOOD,
                )?;
                self.set_value("host", &host)?;
            }
            // A DICOM store is not a video branch: GstOutput::new leaves it out.
            SinkKind::Fake | SinkKind::Dicom | SinkKind::Pacs => {
                self.push("queue", leaky, BASE)?;
                self.push("fakesink", &[("sync", "false"), ("async", "false")], BASE)?;
            }
        }
        self.pipeline
            .add_many(&self.elements)
            .map_err(|e| self.error(BranchError::Add(e)))?;
        gst::Element::link_many(&self.elements).map_err(|e| self.error(BranchError::Link(e)))?;
        let first = self
            .elements
            .first()
            .ok_or_else(|| self.error(BranchError::Empty))?;
        tee.link(first)
            .map_err(|e| self.error(BranchError::Tee(e)))?;
        Ok(format!("{}: {}", self.sink.key, self.shape.join(" ! ")))
    }
}

const BASE: &str = "install gstreamer1.0-plugins-base";
const GOOD: &str = "install gstreamer1.0-plugins-good";
const BAD: &str = "install gstreamer1.0-plugins-bad";

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// Why a display branch cannot be built.
#[derive(Debug, PartialEq, Eq)]
enum DisplayProblem {
    NoDisplay,
    NoVideoSink(Vec<&'static str>),
}

impl DisplayProblem {
    fn into_error(self, sink: String) -> OutputError {
        match self {
            DisplayProblem::NoDisplay => OutputError::NoDisplay { sink },
            DisplayProblem::NoVideoSink(tried) => OutputError::NoVideoSink {
                sink,
                tried: tried.join(", "),
            },
        }
    }
}

/// A video sink known to work with the display that is there. Never
/// `autovideosink`: on a host without X11 or Wayland it picks whatever is
/// installed, DirectFB included, which crashes the process.
fn display_sink(
    wayland: bool,
    x11: bool,
    installed: impl Fn(&str) -> bool,
) -> Result<&'static str, DisplayProblem> {
    let mut candidates: Vec<&'static str> = Vec::new();
    let fitting = [
        (wayland, &["waylandsink", "glimagesink"][..]),
        (x11, &["xvimagesink", "ximagesink", "glimagesink"][..]),
    ];
    for (present, sinks) in fitting {
        for sink in sinks.iter().filter(|_| present) {
            if !candidates.contains(sink) {
                candidates.push(sink);
            }
        }
    }
    if candidates.is_empty() {
        return Err(DisplayProblem::NoDisplay);
    }
    candidates
        .iter()
        .copied()
        .find(|f| installed(f))
        .ok_or(DisplayProblem::NoVideoSink(candidates))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_sink_the_element_and_the_sizes() {
        let failure = SinkFailure {
            sink: Some("sinks[0] (mp4 \"/dev/full\")".into()),
            element: "filesink".into(),
            domain: "gst-resource-error-quark".into(),
            message: "No space left on the resource.".into(),
            debug: Some("gstfilesink.c(700): error while writing".into()),
        };
        assert_eq!(
            OutputError::Sink(Box::new(failure.clone())).to_string(),
            "a sink failed: sinks[0] (mp4 \"/dev/full\"): No space left on the resource. (from filesink)"
        );
        assert_eq!(
            OutputError::Start {
                error: Some(Box::new(SinkFailure {
                    sink: None,
                    ..failure
                }))
            }
            .to_string(),
            "the output pipeline could not start: No space left on the resource. (from filesink)"
        );
        assert_eq!(
            OutputError::Start { error: None }.to_string(),
            "the output pipeline could not start: the state change to PLAYING failed"
        );
        assert_eq!(
            OutputError::BufferTooSmall {
                buffer_bytes: 76_800,
                frame_bytes: 307_200
            }
            .to_string(),
            "an output buffer of 76800 bytes for a 307200-byte frame"
        );
    }

    #[test]
    fn display_sink_needs_a_display_and_picks_one_that_fits_it() {
        let all = |_: &str| true;
        assert_eq!(
            display_sink(false, false, all),
            Err(DisplayProblem::NoDisplay)
        );
        assert_eq!(display_sink(true, false, all), Ok("waylandsink"));
        assert_eq!(display_sink(false, true, all), Ok("xvimagesink"));
        assert_eq!(
            display_sink(false, true, |f| f == "ximagesink"),
            Ok("ximagesink")
        );
        assert_eq!(
            display_sink(false, true, |f| f == "dfbvideosink"),
            Err(DisplayProblem::NoVideoSink(vec![
                "xvimagesink",
                "ximagesink",
                "glimagesink"
            ]))
        );
    }
}
