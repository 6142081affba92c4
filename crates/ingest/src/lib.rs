//! sonoflow-ingest: live video from any GStreamer source into [`Frame`]s.
//!
//! A [`SourceConfig`] (the `[source]` section of a pipeline definition)
//! validates into a [`SourceSpec`]: a launch string (a named preset or the
//! user's own) followed by sonoflow's tail, `videoconvert ! videoscale !
//! video/x-raw,format=GRAY8 ! appsink`. [`Ingest::run`] pulls samples, copies
//! them once into pooled, tightly packed frames with a capture timestamp,
//! follows caps changes, and restarts a live source that fails, stalls or
//! ends, with exponential backoff. The phantom, DICOM files and image
//! datasets are fed by a thread of ours into an appsrc, each frame's ground
//! truth and calibration beside it (`feed`).
//!
//! Each frame leaves with its calibration ([`Frame::calibration`]), by the
//! rule `[source] calibration` sets ([`CalibrationMode`]): the source's own
//! (the phantom, DICOM regions, a sidecar); else the definition's fixed one,
//! made for the frame size (the phantom's own is replaced by it); or, with
//! `"auto"`, what an [`AutoCalibrator`] run on every frame finds, none while
//! it searches. With `[source] stamp` (phantom, test) each frame's number
//! and capture time are written into its corner right after the copy
//! (`sonoflow_core::stamp`), for glass-to-glass latency. Try the tail by hand:
//!
//! ```text
//! gst-launch-1.0 videotestsrc is-live=true ! videoconvert ! videoscale ! \
//!     video/x-raw,format=GRAY8,width=640,height=480 ! fakesink
//! ```

mod backoff;
pub mod config;
mod dicom;
mod error;
mod feed;
mod images;
mod phantom_feed;
mod source;
mod status;

use std::sync::Arc;
use std::time::Duration;

use gst_video::prelude::*;
use gstreamer as gst;
use gstreamer_video as gst_video;
use sonoflow_calibrate::{AutoCalibrator, CalibrationSetting, FixedCalibration};
use sonoflow_core::alloc_count::FramePathGuard;
use sonoflow_core::stamp::{self, MachineClock, Stamp, StampImage};
use sonoflow_core::{
    Calibration, Clock, Frame, FrameFormat, FrameId, FramePool, PixelFormat, Stage, StageStamps,
    Timestamp,
};
use tracing::{info, info_span, warn};

pub use backoff::Backoff;
pub use config::{RestartConfig, SourceConfig, SourceKind, SourceSpec};
pub use dicom::{source_subject, DicomSettings, SourceSubject, SubjectError};
pub use error::{
    BuildError, BusError, DicomError, IngestError, PropertyProblem, Rejections, SampleError,
};
pub use images::ImageSettings;
pub use status::{
    AutoCalibrationReport, CalibrationMode, CalibrationReport, RulerCheckReport, SourceReport,
    SourceState, SourceStatus,
};

use feed::SideQueue;
use images::OpenDataset;
use source::{Feeds, Pulled, RunningSource};

/// The largest frame a source may deliver or be scaled to (8K UHD); beyond
/// it the frame pool and every per-frame copy would be unreasonably large.
pub const MAX_WIDTH: u32 = 7680;
/// See [`MAX_WIDTH`].
pub const MAX_HEIGHT: u32 = 4320;

/// How long one poll of the appsink waits before checking for stop.
const POLL: Duration = Duration::from_millis(100);

/// Whether the consumer wants more frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// Why [`Ingest::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestEnd {
    /// A non-live source reached its end.
    EndOfStream,
    /// The consumer or the stop check asked to stop.
    Stopped,
}

/// The negotiated format, re-read only when the caps object changes.
struct Negotiated {
    caps: gst::Caps,
    info: gst_video::VideoInfo,
    format: FrameFormat,
}

/// Pulls frames from one source for the whole run, restarting it as needed.
pub struct Ingest {
    spec: SourceSpec,
    clock: Arc<dyn Clock>,
    pool: FramePool,
    status: Arc<SourceStatus>,
    next_id: u64,
    epoch: u32,
    negotiated: Option<Negotiated>,
    last_offset: Option<u64>,
    /// Side data from a feed (the phantom's truth, a DICOM file's
    /// calibration), waiting for its frame.
    sides: Arc<SideQueue>,
    /// An image dataset, listed and checked at start.
    images: Option<Arc<OpenDataset>>,
    /// The calibration frames carry now: kept for frames that arrive
    /// without side data, and shared by every frame until it changes (a new
    /// depth, a new file, a lock).
    calibration: Option<Arc<Calibration>>,
    /// Where it comes from.
    rule: CalibrationRule,
    /// A frame too small for `[source] stamp` was warned about.
    stamp_warned: bool,
}

/// How a frame's calibration is chosen (`[source] calibration`).
enum CalibrationRule {
    /// The source's own, else none.
    Source,
    /// The source's own where it gives one, else the definition's (the
    /// phantom's own is replaced), made for the frame size at each caps
    /// change; `for_caps` None: it does not fit this size (warned).
    Fixed {
        setting: FixedCalibration,
        for_caps: Option<Arc<Calibration>>,
    },
    /// Found in the frames; the source's own is not used.
    Auto(Box<AutoCalibrator>),
}

impl CalibrationRule {
    fn of(setting: Option<&CalibrationSetting>) -> Self {
        match setting {
            None => CalibrationRule::Source,
            Some(CalibrationSetting::Fixed(setting)) => CalibrationRule::Fixed {
                setting: setting.clone(),
                for_caps: None,
            },
            Some(CalibrationSetting::Auto(options)) => {
                CalibrationRule::Auto(Box::new(AutoCalibrator::new(*options)))
            }
        }
    }

    fn mode(&self) -> CalibrationMode {
        match self {
            CalibrationRule::Source => CalibrationMode::Source,
            CalibrationRule::Fixed { .. } => CalibrationMode::Fixed,
            CalibrationRule::Auto(_) => CalibrationMode::Auto,
        }
    }
}

/// Initialises GStreamer once per process; safe to call again.
pub fn init_gstreamer() -> Result<(), IngestError> {
    gst::init().map_err(IngestError::Init)
}

impl Ingest {
    /// Builds the source pipeline once (without starting it), so a launch
    /// string with an unknown element or a bad property fails here, before
    /// any thread starts.
    pub fn new(
        spec: SourceSpec,
        clock: Arc<dyn Clock>,
        pool: FramePool,
    ) -> Result<Self, IngestError> {
        init_gstreamer()?;
        RunningSource::build(&spec)?;
        if let Some(settings) = &spec.dicom {
            dicom::check_playable(settings)?;
        }
        let status = Arc::new(SourceStatus::new());
        let images = spec
            .images
            .as_ref()
            .map(|settings| images::open(settings, &status))
            .transpose()?;
        let rule = CalibrationRule::of(spec.calibration.as_ref());
        status.set_calibration_mode(rule.mode());
        Ok(Self {
            spec,
            clock,
            pool,
            status,
            next_id: 0,
            epoch: 0,
            negotiated: None,
            last_offset: None,
            sides: Arc::new(SideQueue::default()),
            images,
            calibration: None,
            rule,
            stamp_warned: false,
        })
    }

    /// Live status, readable from other threads while [`Ingest::run`] runs.
    pub fn status(&self) -> Arc<SourceStatus> {
        Arc::clone(&self.status)
    }

    /// Delivers frames to `emit` until the source ends (non-live), `emit`
    /// returns [`Flow::Stop`], or `should_stop` says so. A live source that
    /// fails, stalls or ends is restarted with backoff and the run goes on.
    pub fn run(
        &mut self,
        should_stop: &dyn Fn() -> bool,
        emit: &mut dyn FnMut(Frame) -> Flow,
    ) -> Result<IngestEnd, IngestError> {
        let _span = info_span!("ingest", kind = ?self.spec.kind).entered();
        let restart = self.spec.restart;
        let mut backoff = Backoff::new(
            Duration::from_millis(restart.initial_backoff_ms),
            Duration::from_millis(restart.max_backoff_ms),
        );
        let feeds = Feeds {
            sides: Arc::clone(&self.sides),
            status: Arc::clone(&self.status),
            images: self.images.clone(),
        };
        loop {
            let outcome = match RunningSource::start(&self.spec, &feeds) {
                Ok(source) => {
                    self.status.set_state(SourceState::Running);
                    self.pump(&source, should_stop, emit, &mut backoff)
                }
                Err(err) => Err(err),
            };
            let reason = match outcome {
                Ok(end) => {
                    let state = if end == IngestEnd::EndOfStream {
                        SourceState::Ended
                    } else {
                        SourceState::Stopped
                    };
                    self.status.set_state(state);
                    return Ok(end);
                }
                Err(err) if self.spec.live && err.is_transient() => err,
                Err(err) => {
                    self.status.set_state(SourceState::Failed);
                    self.status.set_error(err.to_string());
                    return Err(err);
                }
            };
            let delay = backoff.next_delay();
            self.status.note_restart(reason.to_string());
            self.status.set_state(SourceState::Restarting);
            warn!(
                restarts = self.status.restarts(),
                "live source lost ({reason}); restarting in {delay:?}"
            );
            if sleep_unless_stopped(delay, should_stop) {
                self.status.set_state(SourceState::Stopped);
                return Ok(IngestEnd::Stopped);
            }
            self.epoch += 1;
            self.last_offset = None;
            // A new epoch: what the calibrator saw belongs to the old stream.
            if let CalibrationRule::Auto(auto) = &mut self.rule {
                auto.reset();
            }
        }
    }

    /// Moves frames from one running source until it ends, fails or stalls.
    fn pump(
        &mut self,
        source: &RunningSource,
        should_stop: &dyn Fn() -> bool,
        emit: &mut dyn FnMut(Frame) -> Flow,
        backoff: &mut Backoff,
    ) -> Result<IngestEnd, IngestError> {
        // Only frames that could be used count as signs of life: a source
        // whose every sample is rejected is stalled, not running.
        let mut last_frame_at = self.clock.now();
        let mut seen_frame = false;
        let mut rejections = Rejections::default();
        let mut rejected = 0u64;
        loop {
            if should_stop() {
                return Ok(IngestEnd::Stopped);
            }
            let _guard = FramePathGuard::enter();
            match source.next(POLL) {
                Pulled::Sample(sample) => {
                    let captured = self.clock.now();
                    // The copy into a pooled frame, not the wait for the
                    // sample nor the hand-off. A sample that is rejected
                    // takes no id: its span names the id the next frame gets.
                    let made = {
                        let _span = tracing::trace_span!("ingest", frame = self.next_id).entered();
                        self.frame_from_sample(&sample, captured)
                    };
                    match made {
                        Ok(frame) => {
                            last_frame_at = captured;
                            seen_frame = true;
                            rejections = Rejections::default();
                            backoff.reset();
                            if emit(frame) == Flow::Stop {
                                return Ok(IngestEnd::Stopped);
                            }
                        }
                        Err(err) => {
                            rejected += 1;
                            self.status.note_rejected();
                            if rejected == 1 || rejected.is_multiple_of(100) {
                                warn!(rejected, "skipping frame: {err}");
                            }
                            rejections.note(err);
                        }
                    }
                }
                Pulled::Idle => {}
                Pulled::EndOfStream if self.spec.live && !self.spec.finite => {
                    return Err(IngestError::LiveEnded { rejections });
                }
                Pulled::EndOfStream => {
                    // A finite source that never gave a usable frame failed.
                    return match rejections.last {
                        Some(last) if self.next_id == 0 => Err(IngestError::Unusable {
                            rejected: rejections.count,
                            last,
                        }),
                        _ => Ok(IngestEnd::EndOfStream),
                    };
                }
                Pulled::Error(error) => return Err(IngestError::Failed(error)),
            }
            // Samples that were all rejected do not hold off the stall timer.
            let quiet = self.clock.now().saturating_since(last_frame_at);
            let limit = if seen_frame {
                self.spec.stall_timeout()
            } else {
                self.spec.startup_timeout()
            };
            if self.spec.live && quiet >= limit {
                return Err(IngestError::Stalled {
                    quiet_ms: u64::try_from(quiet.as_millis()).unwrap_or(u64::MAX),
                    limit_ms: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
                    rejections,
                });
            }
        }
    }

    /// Copies one sample into a pooled, tightly packed frame.
    fn frame_from_sample(
        &mut self,
        sample: &gst::Sample,
        captured: Timestamp,
    ) -> Result<Frame, SampleError> {
        let caps = sample.caps().ok_or(SampleError::NoCaps)?;
        self.follow_caps(caps)?;
        let buffer = sample.buffer().ok_or(SampleError::NoBuffer)?;
        self.count_lost(buffer.offset());
        // `follow_caps` has just set it; a sample is never read without its caps.
        let Some(negotiated) = self.negotiated.as_ref() else {
            return Err(SampleError::NoCaps);
        };

        let format = negotiated.format;
        let info = &negotiated.info;
        let video =
            gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info).map_err(|cause| {
                SampleError::Unmappable {
                    buffer_bytes: buffer.size(),
                    width: format.width,
                    height: format.height,
                    format: format.pixel.gst_name(),
                    expected_bytes: info.size(),
                    stride: info.stride()[0],
                    cause,
                }
            })?;
        let stride = video.plane_stride()[0];
        let src_stride =
            usize::try_from(stride).map_err(|_| SampleError::NegativeStride { stride })?;
        let src = video.plane_data(0).map_err(SampleError::Plane)?;
        let row = format.stride();
        let needed = src_stride * (format.height as usize - 1) + row;
        if src_stride < row || src.len() < needed {
            return Err(SampleError::TooSmall {
                buffer_bytes: src.len(),
                stride: src_stride,
                width: format.width,
                height: format.height,
                needed_bytes: src_stride.max(row) * (format.height as usize - 1) + row,
            });
        }
        let mut data = self.pool.acquire(format.len());
        for (dst, src_row) in data.chunks_exact_mut(row).zip(src.chunks(src_stride)) {
            dst.copy_from_slice(&src_row[..row]);
        }
        let id = FrameId(self.next_id);
        self.next_id += 1;
        let fed =
            self.spec.phantom.is_some() || self.spec.dicom.is_some() || self.spec.images.is_some();
        let side = if fed {
            self.sides.take(buffer.offset())
        } else {
            None
        };
        // What the source says: `None` when a fed frame came without side
        // data (keep what frames carry now), `Some(None)` when the source
        // gives no calibration (an image without a sidecar, a DICOM file
        // without usable regions, a camera).
        let from_source = if fed {
            side.as_deref().map(|s| s.calibration.as_ref())
        } else {
            Some(None)
        };
        let wanted = match &mut self.rule {
            CalibrationRule::Source => from_source.map(|own| own.cloned()),
            CalibrationRule::Fixed { for_caps, .. } if self.spec.kind == SourceKind::Phantom => {
                Some(for_caps.clone())
            }
            CalibrationRule::Fixed { for_caps, .. } => {
                from_source.map(|own| own.or(for_caps.as_ref()).cloned())
            }
            CalibrationRule::Auto(auto) => match auto.observe(&data, format) {
                Ok(seen) => {
                    self.status.note_auto(&seen);
                    Some(seen.calibration)
                }
                // Only a buffer too short for its format, which the copy
                // above rules out: uncalibrated, never a stale spacing.
                Err(_) => Some(None),
            },
        };
        // Compared by pointer: nothing is built unless it changed.
        if let Some(calibration) = wanted {
            let same = match (&self.calibration, &calibration) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
            if !same {
                self.change_calibration(id, calibration);
            }
        }
        if self.spec.stamp {
            self.stamp(&mut data[..], format, id, captured);
        }
        let mut stamps = StageStamps::new(captured);
        stamps.enter(Stage::Ingest, captured);
        stamps.leave(Stage::Ingest, self.clock.now());
        let mut frame = Frame::new(id, format, data, stamps);
        frame.source_pts = buffer.pts().map(|t| Duration::from_nanos(t.nseconds()));
        frame.source_epoch = self.epoch;
        frame.calibration = self.calibration.clone();
        if frame.pixel_spacing().is_none() {
            self.status.note_uncalibrated();
        }
        frame.truth = side.and_then(|s| s.truth.clone());
        Ok(frame)
    }

    /// Writes frame `id`'s number and capture time into its pixels
    /// (`[source] stamp`): the time on [`MachineClock`], read now and set
    /// back by what the run's clock says has passed since `captured` (the
    /// copy), so that glass-to-glass latency and the run's own latency start
    /// at the same instant. After the calibration has seen the frame, so the
    /// stamp is not taken for a moving image.
    fn stamp(&mut self, data: &mut [u8], format: FrameFormat, id: FrameId, captured: Timestamp) {
        let since = self.clock.now().saturating_since(captured);
        let since_us = u64::try_from(since.as_micros()).unwrap_or(u64::MAX);
        let at = MachineClock::micros().saturating_sub(since_us);
        if let Err(err) = stamp::write(data, StampImage::packed(format), Stamp::new(id.0, at)) {
            if !self.stamp_warned {
                warn!("frames go unstamped: {err}");
                self.stamp_warned = true;
            }
        }
    }

    /// Uses `calibration` from frame `from` on (a new depth, a new file);
    /// `None`: uncalibrated from then on.
    fn change_calibration(&mut self, from: FrameId, calibration: Option<Arc<Calibration>>) {
        match calibration.as_deref() {
            Some(c) => info!(
                source = c.source.name(),
                spacing = ?c.spacing(),
                "calibration from frame {} on",
                from.0
            ),
            None => info!("uncalibrated (no mm) from frame {} on", from.0),
        }
        self.calibration = calibration;
        self.status.set_calibration(self.calibration.clone());
    }

    /// Re-reads the format when the caps change; a new frame size or pixel
    /// format is a caps change (counted, logged, the pool refilled, the
    /// definition's calibration made for the new size).
    fn follow_caps(&mut self, caps: &gst::CapsRef) -> Result<(), SampleError> {
        if let Some(n) = &self.negotiated {
            if n.caps.as_ref() == caps {
                return Ok(());
            }
        }
        let info =
            gst_video::VideoInfo::from_caps(caps).map_err(|cause| SampleError::UnreadableCaps {
                caps: caps.to_string(),
                cause,
            })?;
        let pixel = match info.format() {
            gst_video::VideoFormat::Gray8 => PixelFormat::Gray8,
            gst_video::VideoFormat::Rgba => PixelFormat::Rgba,
            other => {
                return Err(SampleError::PixelFormat {
                    format: other.to_str().to_string(),
                })
            }
        };
        let format = FrameFormat::new(pixel, info.width(), info.height())?;
        if let Some(old) = self.negotiated.as_mut().filter(|n| n.format == format) {
            // New caps for the same frames (another colorimetry, as a
            // colour image converted to grey brings): read, not counted.
            old.caps = caps.to_owned();
            old.info = info;
            return Ok(());
        }
        match &self.negotiated {
            Some(old) => {
                self.status.note_caps_change();
                info!(
                    "caps changed: {}x{} {} -> {}x{} {}",
                    old.format.width,
                    old.format.height,
                    old.format.pixel.gst_name(),
                    format.width,
                    format.height,
                    format.pixel.gst_name()
                );
            }
            None => info!(
                "negotiated {}x{} {}",
                format.width,
                format.height,
                format.pixel.gst_name()
            ),
        }
        self.status.set_format(format);
        self.pool.prefill(format.len());
        if let CalibrationRule::Fixed { setting, for_caps } = &mut self.rule {
            *for_caps = match setting.for_frame(format.width, format.height) {
                Ok(calibration) => Some(Arc::new(calibration)),
                Err(issue) => {
                    warn!(
                        "{issue}; frames of {}x{} get none from the definition (uncalibrated \
                         unless the source gives one)",
                        format.width, format.height
                    );
                    None
                }
            };
        }
        self.negotiated = Some(Negotiated {
            caps: caps.to_owned(),
            info,
            format,
        });
        Ok(())
    }

    /// Raw sources number their buffers; a gap means frames lost before us.
    fn count_lost(&mut self, offset: u64) {
        if !matches!(
            self.spec.kind,
            SourceKind::Test
                | SourceKind::V4l2
                | SourceKind::Phantom
                | SourceKind::Dicom
                | SourceKind::Images
        ) || offset == gst::ffi::GST_BUFFER_OFFSET_NONE
        {
            return;
        }
        if let Some(last) = self.last_offset {
            if offset > last + 1 {
                self.status.note_lost(offset - last - 1);
            }
        }
        self.last_offset = Some(offset);
    }
}

/// Sleeps for `total` in short steps; true if asked to stop meanwhile.
fn sleep_unless_stopped(total: Duration, should_stop: &dyn Fn() -> bool) -> bool {
    let step = Duration::from_millis(20);
    let mut slept = Duration::ZERO;
    while slept < total {
        if should_stop() {
            return true;
        }
        std::thread::sleep(step.min(total - slept));
        slept += step;
    }
    should_stop()
}
