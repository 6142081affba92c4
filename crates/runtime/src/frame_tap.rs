//! Taps on the output's sink: for each frame it takes, what a results
//! consumer needs (ids, stamps, calibration, findings) is copied into a
//! recycled [`Entry`] (no allocation once warm) and handed over a bounded
//! channel to that consumer's own thread (the findings log's writer, the
//! results stream's publisher). The frame path never serialises anything and
//! never waits for a consumer unless told to (`block`, for file runs); a
//! full channel drops the entry and counts it.
//!
//! A tap may also carry a [`VideoTap`]: at most one frame per interval
//! (told the time by the frames' capture stamps), its pixels are copied
//! into a recycled [`Picture`] (a memcpy into a buffer that keeps its
//! capacity: no allocation once warm) and offered to the video thread the
//! same way, never waited for.
//!
//! A tap may take only some frames ([`FrameTap::only`]: the DICOM store's
//! keyframes) and copy their pixels into the entry too
//! ([`FrameTap::with_pixels`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam::channel::{bounded, Receiver, Sender, TrySendError};
use sonoflow_core::{
    Calibration, Frame, FrameFindings, FrameFormat, FrameId, PixelFormat, Recycled, Recycler,
    Reusable, StageStamps, Timestamp,
};
use sonoflow_pipeline::{Delivery, FrameSink, StageError};
use sonoflow_protocol::convert::FrameParts;

/// What a consumer needs of one frame, copied off it.
#[derive(Default)]
pub(crate) struct Entry {
    pub frame: FrameId,
    pub stamps: StageStamps,
    pub pts: Option<Duration>,
    pub width: u32,
    pub height: u32,
    pub kernel_version: Option<u64>,
    pub calibration: Option<Arc<Calibration>>,
    /// Whether the frame carried findings (its own or late ones).
    pub has_findings: bool,
    pub findings: FrameFindings,
    /// The frame's pixels (tightly packed rows) and their format, for a
    /// tap that copies them; empty otherwise.
    pub pixels: Vec<u8>,
    pub pixel_format: Option<PixelFormat>,
}

impl Reusable for Entry {
    fn reset(&mut self) {
        self.calibration = None;
        self.kernel_version = None;
        self.has_findings = false;
        self.findings.reset();
        // Keeps its capacity: the next copy of a same-sized frame allocates nothing.
        self.pixels.clear();
        self.pixel_format = None;
    }
}

impl Entry {
    /// The entry as the protocol's conversion reads it.
    pub fn parts(&self) -> FrameParts<'_> {
        FrameParts {
            frame: self.frame,
            stamps: &self.stamps,
            pts: self.pts,
            width: self.width,
            height: self.height,
            calibration: self.calibration.as_deref(),
            kernel_version: self.kernel_version,
            findings: self.has_findings.then_some(&self.findings),
        }
    }
}

/// One frame's pixels, copied off it for the video thread.
pub(crate) struct Picture {
    pub frame: FrameId,
    pub captured: Timestamp,
    pub format: FrameFormat,
    /// Tightly packed rows (`format.stride()` bytes each).
    pub pixels: Vec<u8>,
}

impl Default for Picture {
    fn default() -> Self {
        Self {
            frame: FrameId::default(),
            captured: Timestamp::default(),
            format: FrameFormat {
                pixel: PixelFormat::Gray8,
                width: 0,
                height: 0,
            },
            pixels: Vec::new(),
        }
    }
}

impl Reusable for Picture {
    fn reset(&mut self) {
        // Keeps its capacity: the next copy of a same-sized frame allocates nothing.
        self.pixels.clear();
    }
}

/// Appends `frame`'s pixels (its format's bytes, no more than it holds) to
/// `into`, a recycled buffer: no allocation once it has grown to the size.
fn copy_pixels(frame: &Frame, into: &mut Vec<u8>) {
    let bytes = frame.format.len().min(frame.data.len());
    into.extend_from_slice(&frame.data[..bytes]);
}

/// The frame path's end of the video thread: a frame every `every` at most.
pub(crate) struct VideoTap {
    out: Option<Sender<Recycled<Picture>>>,
    pictures: Recycler<Picture>,
    every: Duration,
    last: Option<Timestamp>,
    dropped: Arc<AtomicU64>,
}

impl VideoTap {
    /// A tap and the video thread's end; `dropped` counts pictures a busy
    /// video thread could not take (it is never waited for).
    pub fn new(every: Duration, dropped: Arc<AtomicU64>) -> (Self, Receiver<Recycled<Picture>>) {
        const DEPTH: usize = 2;
        let (tx, rx) = bounded(DEPTH);
        let tap = Self {
            out: Some(tx),
            pictures: Recycler::new(DEPTH + 2),
            every,
            last: None,
            dropped,
        };
        (tap, rx)
    }

    fn offer(&mut self, frame: &Frame) {
        let Some(out) = &self.out else {
            return;
        };
        let at = frame.stamps.captured;
        if self
            .last
            .is_some_and(|last| at.saturating_since(last) < self.every)
        {
            return;
        }
        self.last = Some(at);
        let mut picture = self.pictures.acquire();
        picture.frame = frame.id;
        picture.captured = at;
        picture.format = frame.format;
        copy_pixels(frame, &mut picture.pixels);
        match out.try_send(picture) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => self.out = None,
        }
    }
}

/// The frame path's end of one consumer.
pub(crate) struct FrameTap {
    /// None once the consumer stopped.
    entries_out: Option<Sender<Recycled<Entry>>>,
    entries: Recycler<Entry>,
    block: bool,
    dropped: Arc<AtomicU64>,
    video: Option<VideoTap>,
    /// Takes only the frames this says yes to (None: every frame).
    only: Option<Box<dyn Fn(FrameId) -> bool + Send>>,
    /// Copies the frame's pixels into the entry.
    pixels: bool,
}

impl FrameTap {
    /// A tap and its consumer's end; `depth` entries wait at most.
    /// `dropped` counts entries a full channel refused.
    pub fn new(
        depth: usize,
        block: bool,
        dropped: Arc<AtomicU64>,
    ) -> (Self, Receiver<Recycled<Entry>>) {
        let (tx, rx) = bounded(depth);
        let entries = Recycler::new(depth + 2);
        entries.prefill(|| Entry {
            findings: FrameFindings::preallocated(),
            ..Entry::default()
        });
        let tap = Self {
            entries_out: Some(tx),
            entries,
            block,
            dropped,
            video: None,
            only: None,
            pixels: false,
        };
        (tap, rx)
    }

    /// The tap that also copies frames for the video thread.
    pub fn with_video(mut self, video: VideoTap) -> Self {
        self.video = Some(video);
        self
    }

    /// The tap that takes only the frames `keep` says yes to.
    pub fn only(mut self, keep: impl Fn(FrameId) -> bool + Send + 'static) -> Self {
        self.only = Some(Box::new(keep));
        self
    }

    /// The tap that copies each frame's pixels into its entry.
    pub fn with_pixels(mut self) -> Self {
        self.pixels = true;
        self
    }

    fn offer(&mut self, frame: &Frame) {
        if let Some(video) = &mut self.video {
            video.offer(frame);
        }
        let Some(out) = &self.entries_out else {
            return;
        };
        if self.only.as_ref().is_some_and(|keep| !keep(frame.id)) {
            return;
        }
        let mut entry = self.entries.acquire();
        entry.frame = frame.id;
        entry.stamps = frame.stamps;
        entry.pts = frame.source_pts;
        entry.width = frame.format.width;
        entry.height = frame.format.height;
        entry.kernel_version = frame.outputs.as_ref().map(|o| o.kernel_version);
        entry.calibration = frame.calibration.clone();
        entry.has_findings = frame.findings.is_some();
        if let Some(found) = frame.findings.as_deref() {
            entry.findings.copy_from(found);
        }
        if self.pixels {
            copy_pixels(frame, &mut entry.pixels);
            entry.pixel_format = Some(frame.format.pixel);
        }
        let sent = if self.block {
            out.send(entry).is_ok()
        } else {
            match out.try_send(entry) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(TrySendError::Disconnected(_)) => false,
            }
        };
        if !sent {
            // The consumer stopped (its error is in the report): stop copying.
            self.entries_out = None;
        }
    }
}

/// The output's sink with its taps.
pub(crate) struct TappedSink {
    inner: Box<dyn FrameSink>,
    taps: Vec<FrameTap>,
}

impl TappedSink {
    pub fn wrap(inner: Box<dyn FrameSink>, taps: Vec<FrameTap>) -> Box<dyn FrameSink> {
        if taps.is_empty() {
            return inner;
        }
        Box::new(Self { inner, taps })
    }
}

impl FrameSink for TappedSink {
    fn push(&mut self, frame: &Frame) -> Result<Delivery, StageError> {
        let delivery = self.inner.push(frame)?;
        for tap in &mut self.taps {
            tap.offer(frame);
        }
        Ok(delivery)
    }

    fn finish(&mut self) -> Result<(), StageError> {
        // Closing the channels ends the consumers.
        self.taps.clear();
        self.inner.finish()
    }
}
