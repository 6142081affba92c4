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
//!     x264enc speed-preset=ultrafast tune=zerolatency ! h264parse ! mp4mux ! filesink location=out.mp4
//! ```

pub mod config;

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
/// How long [`GstOutput::finish`] waits for the sinks to finalise.
const FINISH_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("GStreamer could not be initialised: {0}")]
    Init(String),
    #[error("the output pipeline `{launch}` could not be built: {message}")]
    Launch { launch: String, message: String },
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
    /// Nominal frame rate written into the caps.
    pub fps: u32,
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
    failed: Option<String>,
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
        let launch = launch_string(sinks);
        let built = |message: String| OutputError::Launch {
            launch: launch.clone(),
            message,
        };
        let pipeline = gst::parse::launch(&launch)
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
        let bus = pipeline
            .bus()
            .ok_or_else(|| built("pipeline has no bus".into()))?;
        appsrc.set_format(gst::Format::Time);
        appsrc.set_is_live(true);
        appsrc.set_max_buffers(options.max_queued.max(1));
        // Bounded by buffers only; the byte limit (200 kB by default) would
        // hold less than one large frame.
        appsrc.set_max_bytes(0);
        // Never block inside appsrc: a sink that fails while we wait would
        // hang the stage. Waiting for room is done in `wait_for_room`.
        appsrc.set_block(false);
        let output = Self {
            pipeline,
            appsrc,
            size_filter,
            bus,
            options,
            negotiated: None,
            origin: None,
            last_pts: None,
            failed: None,
            painter,
        };
        if output.pipeline.set_state(gst::State::Playing).is_err() {
            let cause = output
                .take_error()
                .unwrap_or_else(|| "state change to PLAYING failed".into());
            return Err(OutputError::Start(cause));
        }
        info!("output: {launch}");
        Ok(output)
    }

    fn take_error(&self) -> Option<String> {
        let msg = self.bus.pop_filtered(&[gst::MessageType::Error])?;
        match msg.view() {
            gst::MessageView::Error(err) => {
                let from = msg
                    .src()
                    .map(|s| s.path_string().to_string())
                    .unwrap_or_default();
                Some(format!("{} (from {from})", err.error()))
            }
            _ => None,
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
                gst::Fraction::new(self.options.fps.max(1) as i32, 1),
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

    /// A PTS on the output timeline, strictly increasing. The timeline
    /// (source PTS or capture time) is chosen at the first frame and kept;
    /// a frame without a usable time gets the previous PTS plus one frame.
    fn pts_for(&mut self, frame: &Frame) -> u64 {
        let frame_ns = 1_000_000_000 / u64::from(self.options.fps.max(1));
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
            if let Some(err) = self.take_error() {
                self.failed = Some(err.clone());
                return Err(OutputError::Sink(err));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    fn push_frame(&mut self, frame: &Frame) -> Result<Delivery, OutputError> {
        if let Some(err) = self.take_error() {
            self.failed = Some(err);
        }
        if let Some(err) = &self.failed {
            return Err(OutputError::Sink(err.clone()));
        }
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
            buffer.set_duration(gst::ClockTime::from_nseconds(
                1_000_000_000 / u64::from(self.options.fps.max(1)),
            ));
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
            Ok(_) => Ok(Delivery::Delivered),
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
        if let Some(err) = self.failed.take().or_else(|| self.take_error()) {
            let _ = self.pipeline.set_state(gst::State::Null);
            return Err(OutputError::Sink(err));
        }
        let _ = self.appsrc.end_of_stream();
        let msg = self.bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(FINISH_TIMEOUT.as_secs()),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        let result = match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => Ok(()),
            Some(gst::MessageView::Error(err)) => Err(OutputError::Sink(err.error().to_string())),
            _ => Err(OutputError::FinishTimeout(FINISH_TIMEOUT)),
        };
        let _ = self.pipeline.set_state(gst::State::Null);
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
        if self.pipeline.current_state() != gst::State::Null {
            warn!("output dropped without finish; files may be incomplete");
            let _ = self.pipeline.set_state(gst::State::Null);
        }
    }
}

/// appsrc, conversion and size fix, then a tee with one branch per sink.
pub fn launch_string(sinks: &[SinkSpec]) -> String {
    let mut launch = format!(
        "appsrc name={APPSRC_NAME} ! videoconvert ! videoscale add-borders=true ! capsfilter name={SIZE_FILTER_NAME} ! tee name=sonoflow_tee"
    );
    for sink in sinks {
        launch.push_str(" sonoflow_tee. ! ");
        launch.push_str(&sink.branch);
    }
    launch
}
