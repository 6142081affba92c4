//! [`AutoCalibrator`]: finds a screen's calibration in its own frames and
//! drops it the moment the screen changes.
//!
//! While searching, each frame updates the per-pixel change statistic
//! (`motion`); every sixth frame fits the image region to what moved in
//! those six (`region`), reads the depth ruler beside it (`ruler`) and
//! starts the statistic afresh (unless nothing moved at all: then the
//! window grows, for a probe held very still). Two fits in a row that
//! agree (spacing within 0.5 %, edges within 1.5 px) and are confident
//! enough lock: from
//! then on every frame gets the same `Arc<Calibration>`, and the only
//! per-frame work is the watch (`watch`), a few thousand pixel reads. When
//! the watch sees the screen change, that frame and every frame after it
//! are uncalibrated until a new lock: a stale spacing is never handed out.
//! Since the two fits see disjoint frames, a screen that changes while
//! searching cannot lock as a mix of the two. Locking takes 12 frames.
//!
//! Time is counted in frames, as observed: the calibrator reads no clock.

use std::sync::Arc;

use sonoflow_core::findings::{ImageRegion, PixelSpacing};
use sonoflow_core::{Calibration, CalibrationSource, FrameFormat};

use crate::motion::MotionMap;
use crate::region::{fit_region, RegionError, RegionFit, RegionScratch};
use crate::ruler::{find_ruler, RulerFit, RulerScratch};
use crate::view::{FrameError, FrameView};
use crate::watch::{ScreenChange, Watch};

/// Frames compared per fit while searching; the change statistic starts
/// afresh after each fit, so two fits that agree saw disjoint frames.
const WINDOW: u32 = 6;
/// While nothing moves, a window grows up to this many frames.
const MAX_WINDOW: u32 = 60;
/// Two fits agree when their spacings are this close (relative)…
const AGREE_SPACING: f64 = 0.005;
/// …and their edges this close (pixels).
const AGREE_EDGE: f64 = 1.5;

/// How the automatic calibration reads the screen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AutoOptions {
    /// Millimetres between the ruler's major ticks: the longest ticks of a
    /// two-length ruler, or every tick of a ruler whose ticks are alike.
    /// 10 on nearly every cart (a tick per centimetre, shorter ones
    /// between); a screen whose major ticks are 5 cm apart needs 50.
    pub major_tick_mm: f64,
    /// Lock only at this confidence or above (0..1). Higher refuses more
    /// screens; lower locks on weaker evidence.
    pub min_confidence: f32,
}

impl Default for AutoOptions {
    fn default() -> Self {
        Self {
            major_tick_mm: 10.0,
            min_confidence: 0.5,
        }
    }
}

/// Where the calibrator stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockState {
    /// No calibration yet.
    Searching,
    /// Calibrated; watching the screen for a change.
    Locked,
    /// Was calibrated, the screen changed; searching again.
    Lost,
}

/// Why a frame has no calibration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlocked {
    /// Too few frames yet to tell what moves.
    Gathering,
    /// Nothing moves: a frozen image, or no ultrasound image.
    NoMotion,
    /// What moves is neither a rectangle nor a fan.
    NoRegion,
    /// No evenly spaced ruler ticks beside the image region.
    NoRuler,
    /// The last two fits disagree; waiting for them to settle.
    Unsettled,
    /// The fit's confidence is below `min_confidence`.
    LowConfidence,
    /// The screen changed on this frame; the calibration was dropped.
    ScreenChanged(ScreenChange),
}

impl Unlocked {
    /// A sentence for logs and the status line.
    pub fn describe(self) -> &'static str {
        match self {
            Unlocked::Gathering => "gathering frames to see what moves",
            Unlocked::NoMotion => "nothing moves: the image is frozen or there is no image",
            Unlocked::NoRegion => "what moves is neither a rectangle nor a fan",
            Unlocked::NoRuler => "no depth ruler (evenly spaced tick marks) beside the image",
            Unlocked::Unsettled => "the fits have not settled yet",
            Unlocked::LowConfidence => "the fit's confidence is below min_confidence",
            Unlocked::ScreenChanged(c) => c.describe(),
        }
    }
}

impl std::fmt::Display for Unlocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// What the calibrator says about one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The frame's calibration (source `Detected`); None: uncalibrated.
    /// The same `Arc` for every frame of one lock.
    pub calibration: Option<Arc<Calibration>>,
    /// 0..1: how far the last fit is to be trusted (0 when nothing fits).
    pub confidence: f32,
    pub state: LockState,
    /// Whether `calibration` differs from the previous frame's (a lock, or
    /// a drop): the moment to tell the rest of the pipeline.
    pub changed: bool,
    /// Why there is no calibration; None when locked.
    pub reason: Option<Unlocked>,
}

/// One fit of region and ruler.
#[derive(Debug, Clone, Copy)]
struct Fit {
    region: ImageRegion,
    spacing_mm: f64,
    uncertainty: f64,
    confidence: f32,
}

/// Finds the image region and the pixel spacing of a scanner's screen in
/// its frames, and keeps them while the screen stays as it is.
///
/// ```
/// use sonoflow_calibrate::{AutoCalibrator, AutoOptions};
/// use sonoflow_core::{FrameFormat, PixelFormat};
///
/// let mut auto = AutoCalibrator::new(AutoOptions::default());
/// let format = FrameFormat::new(PixelFormat::Gray8, 64, 48).unwrap();
/// let frame = vec![0u8; format.len()];
/// let seen = auto.observe(&frame, format).unwrap();
/// assert!(seen.calibration.is_none()); // a black screen has no image
/// ```
#[derive(Debug)]
pub struct AutoCalibrator {
    options: AutoOptions,
    format: Option<(FrameFormat, usize)>,
    motion: MotionMap,
    region_scratch: RegionScratch,
    ruler_scratch: RulerScratch,
    watch: Watch,
    state: LockState,
    locked: Option<Arc<Calibration>>,
    last_fit: Option<Fit>,
    confidence: f32,
    reason: Unlocked,
    /// A reset dropped a calibration the last observation carried.
    dropped_by_reset: bool,
}

impl AutoCalibrator {
    pub fn new(options: AutoOptions) -> Self {
        Self {
            options,
            format: None,
            motion: MotionMap::default(),
            region_scratch: RegionScratch::default(),
            ruler_scratch: RulerScratch::default(),
            watch: Watch::default(),
            state: LockState::Searching,
            locked: None,
            last_fit: None,
            confidence: 0.0,
            reason: Unlocked::Gathering,
            dropped_by_reset: false,
        }
    }

    pub fn options(&self) -> &AutoOptions {
        &self.options
    }

    /// Forgets everything (a new source): the next frame starts a search
    /// (and says `changed` if a calibration was dropped).
    pub fn reset(&mut self) {
        self.dropped_by_reset |= self.locked.is_some();
        self.format = None;
        self.state = LockState::Searching;
        self.locked = None;
        self.last_fit = None;
        self.confidence = 0.0;
        self.reason = Unlocked::Gathering;
    }

    /// Observes one tightly packed frame (rows `format.stride()` apart).
    pub fn observe(
        &mut self,
        pixels: &[u8],
        format: FrameFormat,
    ) -> Result<Observation, FrameError> {
        self.observe_strided(pixels, format, format.stride())
    }

    /// Observes one frame whose rows are `stride` bytes apart. Fails only
    /// when `pixels` is too short for `format` and `stride` (the frame is
    /// not looked at, and nothing changes).
    pub fn observe_strided(
        &mut self,
        pixels: &[u8],
        format: FrameFormat,
        stride: usize,
    ) -> Result<Observation, FrameError> {
        let view = FrameView::new(pixels, format, stride)?;
        let mut changed = std::mem::take(&mut self.dropped_by_reset);
        if self.format != Some((format, stride)) {
            if self.drop_lock(ScreenChange::Format) {
                changed = true;
            } else {
                self.reason = Unlocked::Gathering;
            }
            self.format = Some((format, stride));
            self.motion.restart(view.width, view.height);
            self.region_scratch.reserve(view.width, view.height);
            self.ruler_scratch.reserve(view.width, view.height);
            self.watch.reserve(view.width, view.height);
        }
        if self.state == LockState::Locked {
            match self.watch.check(&view) {
                None => return Ok(self.observation(changed)),
                Some(change) => {
                    changed |= self.drop_lock(change);
                    self.motion.restart(view.width, view.height);
                }
            }
        }
        self.motion.update(&view);
        let n = self.motion.comparisons();
        if n >= WINDOW && n.is_multiple_of(WINDOW) {
            let (lock, grow) = self.try_lock();
            changed |= lock;
            // Each fit sees its own frames, so that a screen that changed
            // within one window cannot lock through the next; only while
            // nothing moves at all does the window grow (a still probe).
            if !grow || n >= MAX_WINDOW {
                self.motion.restart_from_last();
            }
        } else if n > 0 && matches!(self.reason, Unlocked::ScreenChanged(_)) {
            // The frame that saw the change says so; the next ones gather.
            self.reason = Unlocked::Gathering;
        }
        Ok(self.observation(changed))
    }

    fn observation(&self, changed: bool) -> Observation {
        Observation {
            calibration: self.locked.clone(),
            confidence: self.confidence,
            state: self.state,
            changed,
            reason: (self.state != LockState::Locked).then_some(self.reason),
        }
    }

    /// Drops the calibration (if any) because of `change`; whether there was one.
    fn drop_lock(&mut self, change: ScreenChange) -> bool {
        self.last_fit = None;
        if self.state != LockState::Locked {
            return false;
        }
        tracing::info!(change = change.describe(), "screen calibration dropped");
        self.state = LockState::Lost;
        self.locked = None;
        self.confidence = 0.0;
        self.reason = Unlocked::ScreenChanged(change);
        true
    }

    /// Fits; locks when this fit agrees with the last. Whether it locked,
    /// and whether nothing moved (the window may grow).
    fn try_lock(&mut self) -> (bool, bool) {
        let fit = match self.fit() {
            Ok(fit) => fit,
            Err(reason) => {
                self.last_fit = None;
                self.confidence = 0.0;
                self.reason = reason;
                return (false, reason == Unlocked::NoMotion);
            }
        };
        self.confidence = fit.confidence;
        if fit.confidence < self.options.min_confidence {
            self.last_fit = None;
            self.reason = Unlocked::LowConfidence;
            return (false, false);
        }
        let last = self.last_fit.replace(fit);
        if !last.is_some_and(|last| agree(&last, &fit)) {
            self.reason = Unlocked::Unsettled;
            return (false, false);
        }
        let calibration = Calibration::single(
            fit.region,
            Some(PixelSpacing::isotropic(fit.spacing_mm)),
            CalibrationSource::Detected,
            fit.uncertainty,
        );
        tracing::info!(
            spacing_mm = fit.spacing_mm,
            confidence = fit.confidence,
            region = ?fit.region,
            "screen calibration locked"
        );
        self.locked = Some(Arc::new(calibration));
        self.state = LockState::Locked;
        (true, false)
    }

    fn fit(&mut self) -> Result<Fit, Unlocked> {
        let region = fit_region(&self.motion, &mut self.region_scratch).map_err(|e| match e {
            RegionError::NoMotion => Unlocked::NoMotion,
            RegionError::NoShape => Unlocked::NoRegion,
        })?;
        let ruler = find_ruler(
            &self.motion,
            region.region.bounds(),
            region.depth_px,
            0,
            &mut self.ruler_scratch,
        )
        .ok_or(Unlocked::NoRuler)?;
        let spacing_mm = self.options.major_tick_mm / ruler.major_px();
        let confidence = confidence(&region, &ruler, spacing_mm);
        let fit = Fit {
            region: region.region,
            spacing_mm,
            uncertainty: ruler.relative_sigma(),
            confidence,
        };
        // The watch is armed from this frame; it is the one that locks, if any.
        self.watch.arm(&self.motion, &fit.region, ruler.strip);
        Ok(fit)
    }
}

/// How far to trust a fit, 0..1: the region's and the ruler's own quality,
/// times checks between them. The ruler is the image's depth axis: it
/// should start at the image's top (depth zero) and end near its bottom; a
/// ruler reaching past the region means the region missed part of the
/// image (only part of it moved), which nearly rules the fit out; one that
/// starts lower down (an offset or zoomed image) or stops short is merely
/// less sure. The image's depth should be a plausible one (1 to 40 cm).
/// The ruler's quality holds the assumption about its ticks: a ruler with
/// two tick lengths in a 2, 5 or 10 pattern (a centimetre in halves,
/// fifths or tenths) keeps it whole; a ruler whose ticks are all alike
/// (dots) is taken as a tick per major step, at 0.7, since it might as well
/// mark 5 mm.
fn confidence(region: &RegionFit, ruler: &RulerFit, spacing_mm: f64) -> f32 {
    let bottom = region.depth_zero + region.depth_px;
    let past = (region.depth_zero - ruler.first).max(ruler.last - bottom);
    let q_extent = if ruler.extends_past || past > (ruler.period_px / 2.0).max(3.0) {
        0.2
    } else if (ruler.first - region.depth_zero).abs() > 2.0 {
        0.7
    } else if bottom - ruler.last > ruler.period_px.max(2.0) {
        0.8
    } else {
        1.0
    };
    let depth_mm = region.depth_px * spacing_mm;
    let q_depth = if (10.0..=400.0).contains(&depth_mm) {
        1.0
    } else {
        0.3
    };
    region.quality * ruler.quality * (q_extent * q_depth) as f32
}

/// A stated region's box may take in this fraction of the frame's width
/// beyond the image at either side: [`read_ruler`] searches that far inside
/// it too (the Philips and ALOKA screens of pydicom-data draw their rulers
/// 0 to 10 pixels inside the region their files state).
const STATED_INSET: f64 = 1.0 / 32.0;

/// The depth ruler beside a known image region, as read from one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RulerReading {
    /// Millimetres per pixel along the ruler (the image's depth axis),
    /// taking the major ticks to be `major_tick_mm` apart.
    pub spacing_mm: f64,
    /// Pixels from one major tick to the next (what the spacing is read
    /// from: `major_tick_mm / major_px`).
    pub major_px: f64,
    /// Relative standard uncertainty of `spacing_mm` from the tick fit.
    pub uncertainty: f64,
    /// Ticks that fit the period.
    pub ticks: usize,
    /// Ticks per major step (1: all ticks alike, each a major step).
    pub per_major: u32,
    /// 0..1: tick count, evenness, stray marks and pattern.
    pub quality: f32,
}

/// Reads the depth ruler beside `region` in one frame, without looking for
/// motion: for sources that state their calibration (a DICOM file's
/// ultrasound regions) to be checked against the ruler the scanner drew.
/// Since a stated region may take in the ruler at its edge, columns up to
/// a thirty-second of the frame's width inside the region's left and right
/// edges are searched too (no pixel moves in one frame, so the image there
/// is told from ticks only by its runs: speckle is not evenly spaced).
/// None when no ruler is found. Allocates a frame's worth of buffers: not
/// for the per-frame path.
pub fn read_ruler(
    pixels: &[u8],
    format: FrameFormat,
    stride: usize,
    region: &ImageRegion,
    options: &AutoOptions,
) -> Result<Option<RulerReading>, FrameError> {
    let view = FrameView::new(pixels, format, stride)?;
    // One frame: the luma, and no pixel moving.
    let mut still = MotionMap::default();
    still.restart(view.width, view.height);
    still.update(&view);
    let depth_px = match *region {
        ImageRegion::Rect { y0, y1, .. } => f64::from(y1.saturating_sub(y0)),
        ImageRegion::Fan { r0, r1, .. } => f64::from(r1 - r0),
    };
    let inset = (view.width as f64 * STATED_INSET) as usize;
    let mut scratch = RulerScratch::default();
    let reading = find_ruler(&still, region.bounds(), depth_px, inset, &mut scratch).map(|ruler| {
        RulerReading {
            spacing_mm: options.major_tick_mm / ruler.major_px(),
            major_px: ruler.major_px(),
            uncertainty: ruler.relative_sigma(),
            ticks: ruler.ticks,
            per_major: ruler.per_major,
            quality: ruler.quality,
        }
    });
    Ok(reading)
}

/// Whether two fits describe the same screen.
fn agree(a: &Fit, b: &Fit) -> bool {
    if (a.spacing_mm - b.spacing_mm).abs() > AGREE_SPACING * a.spacing_mm {
        return false;
    }
    region_distance(&a.region, &b.region).is_some_and(|d| d <= AGREE_EDGE)
}

/// The largest distance in pixels between corresponding edges of two
/// regions of one kind (None for a rectangle against a fan): a rectangle's
/// four edges; a fan's apex, radii and the arc its half angle sweeps at r1.
pub fn region_distance(a: &ImageRegion, b: &ImageRegion) -> Option<f64> {
    match (*a, *b) {
        (
            ImageRegion::Rect { x0, y0, x1, y1 },
            ImageRegion::Rect {
                x0: bx0,
                y0: by0,
                x1: bx1,
                y1: by1,
            },
        ) => Some(
            [
                x0.abs_diff(bx0),
                y0.abs_diff(by0),
                x1.abs_diff(bx1),
                y1.abs_diff(by1),
            ]
            .into_iter()
            .max()
            .map_or(0.0, f64::from),
        ),
        (
            ImageRegion::Fan {
                apex,
                r0,
                r1,
                half_angle,
            },
            ImageRegion::Fan {
                apex: b_apex,
                r0: br0,
                r1: br1,
                half_angle: bha,
            },
        ) => Some(
            [
                f64::from(apex.distance(b_apex)),
                f64::from((r0 - br0).abs()),
                f64::from((r1 - br1).abs()),
                f64::from((half_angle - bha).abs() * r1.max(br1)),
            ]
            .into_iter()
            .fold(0.0, f64::max),
        ),
        _ => None,
    }
}
