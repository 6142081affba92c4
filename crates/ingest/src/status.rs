//! The source's live state, shared with the status line and the report.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use sonoflow_core::findings::PixelSpacing;
use sonoflow_core::{CalibratedRegion, Calibration, FrameFormat};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceState {
    Starting,
    Running,
    Restarting,
    Ended,
    Stopped,
    Failed,
}

impl SourceState {
    const ALL: [SourceState; 6] = [
        SourceState::Starting,
        SourceState::Running,
        SourceState::Restarting,
        SourceState::Ended,
        SourceState::Stopped,
        SourceState::Failed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SourceState::Starting => "starting",
            SourceState::Running => "running",
            SourceState::Restarting => "restarting",
            SourceState::Ended => "ended",
            SourceState::Stopped => "stopped",
            SourceState::Failed => "failed",
        }
    }
}

/// Counters and state of the source, updated by the ingest thread.
#[derive(Debug)]
pub struct SourceStatus {
    state: AtomicU8,
    restarts: AtomicU64,
    caps_changes: AtomicU64,
    lost: AtomicU64,
    rejected: AtomicU64,
    last_error: Mutex<Option<String>>,
    format: Mutex<Option<FrameFormat>>,
    /// The calibration frames carry now (None: uncalibrated).
    calibration: ArcSwapOption<Calibration>,
    calibration_changes: AtomicU64,
    uncalibrated_frames: AtomicU64,
}

/// `source.calibration` in the run report: the calibration in use at the
/// end, how often it changed, and how many frames had no mm.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CalibrationReport {
    /// "phantom", "dicom", "config", "detected"; null: never calibrated.
    pub source: Option<&'static str>,
    /// The primary region's pixel size; null: uncalibrated (no mm).
    pub spacing_mm: Option<PixelSpacing>,
    pub regions: Vec<CalibratedRegion>,
    /// Relative uncertainty of the spacing.
    pub uncertainty: Option<f64>,
    /// Times the calibration changed (a new depth, a new file).
    pub changes: u64,
    /// Frames delivered without a spacing: masks and boxes, no mm.
    pub uncalibrated_frames: u64,
}

/// The `source` section of the run report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SourceReport {
    pub state: SourceState,
    pub restarts: u64,
    pub caps_changes: u64,
    /// Frames the source numbered but never delivered (raw sources only).
    pub lost_before_ingest: u64,
    /// Samples ingest could not turn into frames (unmappable buffers, odd caps).
    pub rejected: u64,
    pub last_error: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub format: Option<&'static str>,
    pub calibration: CalibrationReport,
}

impl SourceStatus {
    pub fn new() -> Self {
        Self {
            state: AtomicU8::new(SourceState::Starting as u8),
            restarts: AtomicU64::new(0),
            caps_changes: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            last_error: Mutex::new(None),
            format: Mutex::new(None),
            calibration: ArcSwapOption::empty(),
            calibration_changes: AtomicU64::new(0),
            uncalibrated_frames: AtomicU64::new(0),
        }
    }

    pub(crate) fn set_calibration(&self, calibration: Option<Arc<Calibration>>) {
        self.calibration_changes.fetch_add(1, Ordering::Relaxed);
        self.calibration.store(calibration);
    }

    pub(crate) fn note_uncalibrated(&self) {
        self.uncalibrated_frames.fetch_add(1, Ordering::Relaxed);
    }

    /// The calibration frames carry now.
    pub fn calibration(&self) -> Option<Arc<Calibration>> {
        self.calibration.load_full()
    }

    pub fn state(&self) -> SourceState {
        let v = self.state.load(Ordering::Relaxed);
        SourceState::ALL
            .into_iter()
            .find(|s| *s as u8 == v)
            .unwrap_or(SourceState::Failed)
    }

    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    pub(crate) fn set_state(&self, state: SourceState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }

    pub(crate) fn note_restart(&self, cause: String) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
        self.set_error(cause);
    }

    pub(crate) fn set_error(&self, cause: String) {
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some(cause);
        }
    }

    pub(crate) fn note_caps_change(&self) {
        self.caps_changes.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn note_rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Frames the ingest stage lost: never delivered by the source, or rejected.
    pub fn ingest_losses(&self) -> u64 {
        self.lost() + self.rejected.load(Ordering::Relaxed)
    }

    pub(crate) fn note_lost(&self, n: u64) {
        self.lost.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn set_format(&self, format: FrameFormat) {
        if let Ok(mut f) = self.format.lock() {
            *f = Some(format);
        }
    }

    pub fn report(&self) -> SourceReport {
        let format = self.format.lock().ok().and_then(|f| *f);
        SourceReport {
            state: self.state(),
            restarts: self.restarts(),
            caps_changes: self.caps_changes.load(Ordering::Relaxed),
            lost_before_ingest: self.lost(),
            rejected: self.rejected.load(Ordering::Relaxed),
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
            width: format.map(|f| f.width),
            height: format.map(|f| f.height),
            format: format.map(|f| f.pixel.gst_name()),
            calibration: self.calibration_report(),
        }
    }

    fn calibration_report(&self) -> CalibrationReport {
        let now = self.calibration();
        CalibrationReport {
            source: now.as_deref().map(|c| c.source.name()),
            spacing_mm: now.as_deref().and_then(Calibration::spacing),
            regions: now.as_deref().map_or_else(Vec::new, |c| c.regions.clone()),
            uncertainty: now.as_deref().map(|c| c.uncertainty),
            changes: self.calibration_changes.load(Ordering::Relaxed),
            uncalibrated_frames: self.uncalibrated_frames.load(Ordering::Relaxed),
        }
    }
}

impl Default for SourceStatus {
    fn default() -> Self {
        Self::new()
    }
}
