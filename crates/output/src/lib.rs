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

pub use config::{SinkConfig, SinkKind, SinkSpec};

const APPSRC_NAME: &str = "sonoflow_appsrc";
const SIZE_FILTER_NAME: &str = "sonoflow_size";
const TEE_NAME: &str = "sonoflow_tee";
/// appsrc, conversion and size fix, then the tee the sink branches hang on:
/// sonoflow's own text only.
const HEAD: &str = "appsrc name=sonoflow_appsrc ! videoconvert ! videoscale add-borders=true ! \
                    capsfilter name=sonoflow_size ! tee name=sonoflow_tee";
/// How long [`GstOutput::finish`] waits for the sinks to finalise.
const FINISH_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("GStreamer could not be initialised: {0}")]
    Init(String),
    #[error("the output pipeline `{launch}` could not be built: {message}")]
    Launch { launch: String, message: String },
    #[error("{sink}: the GStreamer element `{factory}` is not available. Fix: {fix}")]
    Element {
        sink: String,
        factory: &'static str,
        fix: &'static str,
    },
    #[error("{sink}: its branch could not be built: {message}")]
    Branch { sink: String, message: String },
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
    Directory { path: String, cause: String },
    #[error("the output pipeline could not start: {0}")]
    Start(String),
    #[error("a sink failed: {0}")]
    Sink(String),
    #[error("the sinks did not finish within {0:?}")]
    FinishTimeout(Duration),
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
    failed: Option<String>,
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
        gst::init().map_err(|e| OutputError::Init(e.to_string()))?;
        for sink in sinks {
            if let Some(dir) = sink
                .path
                .as_ref()
                .and_then(|p| p.parent())
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|e| OutputError::Directory {
                    path: dir.display().to_string(),
                    cause: e.to_string(),
                })?;
            }
        }
        let built = |message: String| OutputError::Launch {
            launch: HEAD.into(),
            message,
        };
        let pipeline = gst::parse::launch(HEAD)
            .map_err(|e| built(e.to_string()))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| built("did not build a pipeline".into()))?;
        let appsrc = pipeline
            .by_name(APPSRC_NAME)
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or_else(|| built(format!("no appsrc named {APPSRC_NAME}")))?;
        let size_filter = pipeline
            .by_name(SIZE_FILTER_NAME)
            .ok_or_else(|| built(format!("no capsfilter named {SIZE_FILTER_NAME}")))?;
        let tee = pipeline
            .by_name(TEE_NAME)
            .ok_or_else(|| built(format!("no tee named {TEE_NAME}")))?;
        let bus = pipeline
            .bus()
            .ok_or_else(|| built("pipeline has no bus".into()))?;
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
            let cause = output
                .failed
                .clone()
                .unwrap_or_else(|| "state change to PLAYING failed".into());
            output.shut_down();
            return Err(OutputError::Start(cause));
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
        if let Some(details) = err.debug() {
            debug!("output error from {element}: {details}");
        }
        let text = match self
            .sinks
            .iter()
            .find(|(prefix, _)| element.starts_with(prefix.as_str()))
        {
            Some((prefix, sink)) => format!(
                "{sink}: {} (from {})",
                err.error(),
                element.trim_start_matches(prefix.as_str())
            ),
            None => format!("{} (from {element})", err.error()),
        };
        match &self.failed {
            None => self.failed = Some(text),
            Some(first) => debug!("after the first sink error ({first}): {text}"),
        }
    }

    /// The first sink error so far, if any.
    fn check(&mut self) -> Result<(), OutputError> {
        self.collect_errors();
        match &self.failed {
            Some(err) => Err(OutputError::Sink(err.clone())),
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

    /// Sets caps and a buffer pool for a new frame format.
    fn negotiate(&mut self, format: FrameFormat) -> Result<(), OutputError> {
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
        let size =
            u32::try_from(format.len()).map_err(|_| OutputError::Sink("frame too large".into()))?;
        let pool = gst::BufferPool::new();
        let mut config = pool.config();
        config.set_params(Some(&caps), size, 2, 0);
        pool.set_config(config)
            .map_err(|e| OutputError::Sink(format!("buffer pool config: {e}")))?;
        pool.set_active(true)
            .map_err(|e| OutputError::Sink(format!("buffer pool: {e}")))?;
        if let Some(old) = self.negotiated.take() {
            let _ = old.pool.set_active(false);
        }
        self.appsrc.set_caps(Some(&caps));
        self.negotiated = Some(Negotiated { format, pool });
        Ok(())
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
        if self.negotiated.as_ref().map(|n| n.format) != Some(format) {
            self.negotiate(format)?;
        }
        if self.options.block {
            self.wait_for_room()?;
        } else if self.appsrc.current_level_buffers() >= self.options.max_queued {
            return Ok(Delivery::Dropped);
        }
        let pool = &self
            .negotiated
            .as_ref()
            .ok_or_else(|| OutputError::Sink("not negotiated".into()))?
            .pool;
        let mut buffer = pool
            .acquire_buffer(None)
            .map_err(|e| OutputError::Sink(format!("no buffer from the pool: {e:?}")))?;
        let pts = self.pts_for(frame);
        {
            let buffer = buffer
                .get_mut()
                .ok_or_else(|| OutputError::Sink("pooled buffer is shared".into()))?;
            buffer.set_pts(gst::ClockTime::from_nseconds(pts));
            buffer.set_duration(gst::ClockTime::from_nseconds(self.frame_ns()));
            let mut map = buffer
                .map_writable()
                .map_err(|e| OutputError::Sink(format!("cannot map buffer: {e}")))?;
            let len = format.len();
            if map.len() < len {
                return Err(OutputError::Sink(format!(
                    "pool buffer of {} bytes for a {len}-byte frame",
                    map.len()
                )));
            }
            match self.painter.as_mut() {
                Some(painter) => painter.paint(frame, &mut map[..len]),
                None => {
                    let pixels = frame.data.get(..len).ok_or_else(|| {
                        OutputError::Sink(format!(
                            "a {}-byte frame for a {len}-byte format",
                            frame.data.len()
                        ))
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
            Err(flow) => Err(OutputError::Sink(format!(
                "appsrc refused a buffer: {flow:?}"
            ))),
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
                self.note_error(&msg);
                self.collect_errors();
                Err(OutputError::Sink(self.failed.clone().unwrap_or_default()))
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
                return Err(self.error(format!("{factory} has no property {name}")));
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
        let element = self
            .elements
            .last()
            .ok_or_else(|| self.error("no element to set a value on".into()))?;
        match element.find_property(name) {
            Some(spec) if spec.value_type() == String::static_type() => {
                element.set_property(name, value);
                if let Some(shape) = self.shape.last_mut() {
                    shape.push_str(&format!(" {name}={value:?}"));
                }
                Ok(())
            }
            _ => Err(self.error(format!("no string property {name}"))),
        }
    }

    fn error(&self, message: String) -> OutputError {
        OutputError::Branch {
            sink: self.sink.describe(),
            message,
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
                    .ok_or_else(|| self.error("a file sink without a path".into()))?;
                self.push("queue", &[], BASE)?;
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
                    .ok_or_else(|| self.error("an rtp sink without a port".into()))?
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
            SinkKind::Fake => {
                self.push("queue", leaky, BASE)?;
                self.push("fakesink", &[("sync", "false"), ("async", "false")], BASE)?;
            }
        }
        self.pipeline
            .add_many(&self.elements)
            .map_err(|e| self.error(e.to_string()))?;
        gst::Element::link_many(&self.elements).map_err(|e| self.error(e.to_string()))?;
        let first = self
            .elements
            .first()
            .ok_or_else(|| self.error("an empty branch".into()))?;
        tee.link(first).map_err(|e| self.error(e.to_string()))?;
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
