//! The source's live state, shared with the status line and the report.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use sonoflow_calibrate::{LockState, Observation, ScreenChange, SpacingCheck, Unlocked, Verdict};
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

/// Counters and state of the source, updated by the ingest thread (and a
/// feed thread's skips).
#[derive(Debug)]
pub struct SourceStatus {
    state: AtomicU8,
    restarts: AtomicU64,
    caps_changes: AtomicU64,
    lost: AtomicU64,
    rejected: AtomicU64,
    skipped: AtomicU64,
    last_error: Mutex<Option<String>>,
    format: Mutex<Option<FrameFormat>>,
    /// The calibration frames carry now (None: uncalibrated).
    calibration: ArcSwapOption<Calibration>,
    calibration_changes: AtomicU64,
    uncalibrated_frames: AtomicU64,
    calibration_mode: AtomicU8,
    auto: AutoStatus,
    /// A DICOM feed's checks of each file's stated spacing against the
    /// ruler on its screen: once per file, from the feed thread, never on
    /// the frame path.
    ruler_checks: Mutex<Vec<RulerCheckReport>>,
}

/// Where frames' calibration comes from (`[source] calibration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CalibrationMode {
    /// No `[source] calibration`: the source's own (the phantom, DICOM
    /// regions, a sidecar), else none.
    Source,
    /// A region and spacing (or ruler) from the definition, where the
    /// source gives none.
    Fixed,
    /// Found in the frames by the automatic calibrator.
    Auto,
}

impl CalibrationMode {
    const ALL: [CalibrationMode; 3] = [
        CalibrationMode::Source,
        CalibrationMode::Fixed,
        CalibrationMode::Auto,
    ];
}

/// The automatic calibrator's last word, kept in atomics (written once a
/// frame by the ingest thread, without a lock or an allocation).
#[derive(Debug, Default)]
struct AutoStatus {
    /// `f32` bits.
    confidence: AtomicU32,
    /// 0 searching, 1 locked, 2 lost.
    state: AtomicU8,
    /// 0: none; else 1 + the index in [`REASONS`].
    reason: AtomicU8,
    locked_frames: AtomicU64,
    searching_frames: AtomicU64,
}

/// Every reason a frame can be uncalibrated under `calibration = "auto"`,
/// so that one byte names it.
const REASONS: [Unlocked; 10] = [
    Unlocked::Gathering,
    Unlocked::NoMotion,
    Unlocked::NoRegion,
    Unlocked::NoRuler,
    Unlocked::Unsettled,
    Unlocked::LowConfidence,
    Unlocked::ScreenChanged(ScreenChange::Format),
    Unlocked::ScreenChanged(ScreenChange::Ruler),
    Unlocked::ScreenChanged(ScreenChange::AroundRegion),
    Unlocked::ScreenChanged(ScreenChange::RegionShrank),
];

const LOCK_STATES: [LockState; 3] = [LockState::Searching, LockState::Locked, LockState::Lost];

fn lock_state_name(state: LockState) -> &'static str {
    match state {
        LockState::Searching => "searching",
        LockState::Locked => "locked",
        LockState::Lost => "lost",
    }
}

/// `source.calibration` in the run report: where the calibration comes
/// from, the one in use at the end, how often it changed, and how many
/// frames had no mm.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CalibrationReport {
    /// "source" (the source's own), "fixed" (the definition's, where the
    /// source gives none) or "auto" (found in the frames).
    pub mode: CalibrationMode,
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
    /// DICOM sources: each file with a stated spacing, checked once (first
    /// pass) against the depth ruler drawn on its first frame; empty for
    /// other sources.
    pub ruler_checks: Vec<RulerCheckReport>,
    /// Mode "auto" only: the calibrator's state at the end.
    #[serde(flatten)]
    pub auto: Option<AutoCalibrationReport>,
}

/// One file's stated spacing against the ruler on its screen
/// (`source.calibration.ruler_checks`). The stated spacing is what frames
/// carry, whatever the verdict.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RulerCheckReport {
    /// The file's name.
    pub file: String,
    /// The primary region's stated spacing along the ruler (y), mm/px.
    pub declared_mm: f64,
    /// The ruler's, mm/px; null when the check cannot tell.
    pub ruler_mm: Option<f64>,
    /// `(ruler / declared - 1) × 100`; null when the check cannot tell.
    pub difference_pct: Option<f64>,
    /// What a major tick was read as, mm (10 or 50); null when it cannot tell.
    pub major_tick_mm: Option<f64>,
    /// "agrees" (within 2 %), "disagrees" or "cannot_tell".
    pub verdict: Verdict,
    /// What the ruler was read as, or why the check cannot tell.
    pub reason: String,
}

impl RulerCheckReport {
    /// The report line for `file`'s check.
    pub(crate) fn new(file: &str, check: &SpacingCheck) -> Self {
        Self {
            file: file.to_owned(),
            declared_mm: check.stated_mm,
            ruler_mm: check.ruler_mm,
            difference_pct: check.difference.map(|d| d * 100.0),
            major_tick_mm: check.major_tick_mm,
            verdict: check.verdict,
            reason: check.reason(),
        }
    }
}

/// The automatic calibrator in the report (`calibration = "auto"`), beside
/// the fields of [`CalibrationReport`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AutoCalibrationReport {
    /// 0..1: how far its last fit is to be trusted (0 when nothing fits).
    pub confidence: f32,
    /// "searching", "locked" or "lost" (the screen changed; searching again).
    pub state: &'static str,
    /// Why the last frame had no calibration; null when locked.
    pub reason: Option<&'static str>,
    /// Frames that left ingest with the calibrator locked (calibrated).
    pub locked_frames: u64,
    /// Frames that left ingest while it searched (uncalibrated).
    pub searching_frames: u64,
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
    /// Files or dataset items the source passed over, each warned by name
    /// with why (an image that cannot be read, a mask of the wrong size, a
    /// bad sidecar or truth line, a DICOM file that cannot play): never
    /// samples, so not `rejected`, and no frame is missing for them.
    pub skipped: u64,
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
            skipped: AtomicU64::new(0),
            last_error: Mutex::new(None),
            format: Mutex::new(None),
            calibration: ArcSwapOption::empty(),
            calibration_changes: AtomicU64::new(0),
            uncalibrated_frames: AtomicU64::new(0),
            calibration_mode: AtomicU8::new(CalibrationMode::Source as u8),
            auto: AutoStatus::default(),
            ruler_checks: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn set_calibration_mode(&self, mode: CalibrationMode) {
        self.calibration_mode.store(mode as u8, Ordering::Relaxed);
    }

    fn calibration_mode(&self) -> CalibrationMode {
        let v = self.calibration_mode.load(Ordering::Relaxed);
        CalibrationMode::ALL
            .into_iter()
            .find(|m| *m as u8 == v)
            .unwrap_or(CalibrationMode::Source)
    }

    /// What the automatic calibrator said about one frame.
    pub(crate) fn note_auto(&self, seen: &Observation) {
        let auto = &self.auto;
        auto.confidence
            .store(seen.confidence.to_bits(), Ordering::Relaxed);
        let state = LOCK_STATES.iter().position(|s| *s == seen.state);
        auto.state
            .store(state.unwrap_or(0) as u8, Ordering::Relaxed);
        let reason = seen
            .reason
            .and_then(|r| REASONS.iter().position(|known| *known == r))
            .map_or(0, |i| i as u8 + 1);
        auto.reason.store(reason, Ordering::Relaxed);
        let counter = if seen.calibration.is_some() {
            &auto.locked_frames
        } else {
            &auto.searching_frames
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// One file's ruler check (once per file, off the frame path).
    pub(crate) fn note_ruler_check(&self, check: RulerCheckReport) {
        if let Ok(mut checks) = self.ruler_checks.lock() {
            checks.push(check);
        }
    }

    pub(crate) fn note_skipped(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// Files or dataset items passed over so far.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
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
            skipped: self.skipped(),
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
            width: format.map(|f| f.width),
            height: format.map(|f| f.height),
            format: format.map(|f| f.pixel.gst_name()),
            calibration: self.calibration_report(),
        }
    }

    fn calibration_report(&self) -> CalibrationReport {
        let now = self.calibration();
        let mode = self.calibration_mode();
        CalibrationReport {
            mode,
            source: now.as_deref().map(|c| c.source.name()),
            spacing_mm: now.as_deref().and_then(Calibration::spacing),
            regions: now.as_deref().map_or_else(Vec::new, |c| c.regions.clone()),
            uncertainty: now.as_deref().map(|c| c.uncertainty),
            changes: self.calibration_changes.load(Ordering::Relaxed),
            uncalibrated_frames: self.uncalibrated_frames.load(Ordering::Relaxed),
            ruler_checks: self
                .ruler_checks
                .lock()
                .map(|c| c.clone())
                .unwrap_or_default(),
            auto: (mode == CalibrationMode::Auto).then(|| self.auto_report()),
        }
    }

    fn auto_report(&self) -> AutoCalibrationReport {
        let auto = &self.auto;
        let state = LOCK_STATES
            .get(usize::from(auto.state.load(Ordering::Relaxed)))
            .copied()
            .unwrap_or(LockState::Searching);
        let reason = usize::from(auto.reason.load(Ordering::Relaxed))
            .checked_sub(1)
            .and_then(|i| REASONS.get(i))
            .map(|r| r.describe());
        AutoCalibrationReport {
            confidence: f32::from_bits(auto.confidence.load(Ordering::Relaxed)),
            state: lock_state_name(state),
            reason,
            locked_frames: auto.locked_frames.load(Ordering::Relaxed),
            searching_frames: auto.searching_frames.load(Ordering::Relaxed),
        }
    }
}

impl Default for SourceStatus {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_and_state_survives_the_round_trip_through_one_byte() {
        let status = SourceStatus::new();
        status.set_calibration_mode(CalibrationMode::Auto);
        for reason in REASONS {
            status.note_auto(&Observation {
                calibration: None,
                confidence: 0.25,
                state: LockState::Lost,
                changed: false,
                reason: Some(reason),
            });
            let report = status.report().calibration;
            let auto = report.auto.expect("mode auto reports the calibrator");
            assert_eq!(auto.reason, Some(reason.describe()));
            assert_eq!((auto.state, auto.confidence), ("lost", 0.25));
        }
        let auto = status.report().calibration.auto.expect("auto");
        assert_eq!(
            (auto.locked_frames, auto.searching_frames),
            (0, REASONS.len() as u64)
        );
    }

    #[test]
    fn the_report_names_the_mode_and_keeps_its_field_names() {
        let status = SourceStatus::new();
        let json = serde_json::to_value(status.report()).expect("json");
        let calibration = &json["calibration"];
        assert_eq!(calibration["mode"], "source");
        for key in [
            "source",
            "spacing_mm",
            "regions",
            "uncertainty",
            "changes",
            "uncalibrated_frames",
            "ruler_checks",
        ] {
            assert!(calibration.get(key).is_some(), "{key}: {calibration}");
        }
        assert!(
            calibration.get("state").is_none(),
            "auto fields only for mode auto"
        );
        assert_eq!(json["skipped"], 0);
        status.set_calibration_mode(CalibrationMode::Auto);
        let json = serde_json::to_value(status.report()).expect("json");
        let calibration = &json["calibration"];
        assert_eq!(calibration["mode"], "auto");
        assert_eq!(calibration["state"], "searching");
        assert!(calibration["reason"].is_null(), "{calibration}");
        assert_eq!(calibration["locked_frames"], 0);
    }
}
