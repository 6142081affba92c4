//! sonoflow-calibrate: the calibration of a screen source, where the
//! ultrasound image sits in the frame and how many millimetres one of its
//! pixels spans, for sources that do not say (a cart's video output, a
//! screen capture).
//!
//! Two ways, both ending in a [`sonoflow_core::Calibration`]:
//! - by hand, in the definition's `[source.calibration]` ([`config`]): a
//!   fixed region and spacing, or a two-point ruler (source `Config`);
//! - automatically, `calibration = "auto"`: an [`AutoCalibrator`] fed every
//!   frame finds the image region from what moves (speckle changes from
//!   frame to frame, the screen around it does not) and the spacing from
//!   the depth ruler's tick marks beside it, reports how far to trust that
//!   (confidence), and drops it on the frame where the screen changes (the
//!   depth knob) until it has found the new one (source `Detected`).
//!
//! Start with [`AutoCalibrator::observe`] (module `auto`); its steps are
//! the modules `motion` (the per-pixel change statistic), `region` (a
//! rectangle or a fan fitted to what moves), `ruler` (the tick period) and
//! `watch` (the per-frame check for a changed screen). For a source that
//! states its calibration (a DICOM file), [`check_spacing`] checks the
//! stated spacing against the ruler the scanner drew, in one frame (module
//! `check`). docs/calibration.md has the measured accuracy on the phantom,
//! the per-frame cost, and the check on the pydicom-data files.
//!
//! A pure library: no GStreamer, no ONNX Runtime, no clock (time is counted
//! in frames observed).

mod auto;
mod check;
pub mod config;
mod motion;
mod region;
mod ruler;
mod view;
mod watch;

pub use auto::{
    read_ruler, region_distance, AutoCalibrator, AutoOptions, LockState, Observation, RulerReading,
    Unlocked,
};
pub use check::{check_spacing, CheckOptions, SpacingCheck, Undecided, Verdict, MAJOR_STEPS_MM};
pub use config::{CalibrationConfig, CalibrationSetting, FixedCalibration};
pub use view::FrameError;
pub use watch::ScreenChange;
