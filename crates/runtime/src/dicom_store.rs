//! `[[sinks]] kind = "dicom"`: each keyframe whose report the reasoning head
//! finishes is stored as DICOM files in a folder (sonoflow-dicom-export: the
//! Ultrasound Image and the TID 1500 SR; docs/dicom.md).
//!
//! With the overlay on (`[overlay]`), the image stored first is the frame as
//! shown: the store draws it with its own [`Overlay`] (the same options and
//! interpretation board, so the report panel shows the keyframe's finished
//! report) into RGB, Burned In Annotation YES; the clean frame follows it.
//!
//! A [`FrameTap`] on the output takes only the frames the head was handed as
//! keyframes ([`HeadHandle::latest_keyframe`]: chosen in the process stage,
//! before the frame reaches the output) and copies their pixels, findings and
//! calibration. The store's own thread keeps a few such keyframes until the
//! interpretation board shows that keyframe's report done, with its details
//! (`ReasoningStats::latest`), then writes the objects. A keyframe whose report
//! never comes (cancelled, replaced by a newer keyframe's, the run ending) is
//! not stored, and counted. The frame path never waits for the store.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam::channel::{Receiver, RecvTimeoutError};
use serde::Serialize;
use sonoflow_core::{
    Clock, Frame, FrameFindings, FrameFormat, FramePool, InterpretationBoard, InterpretationState,
    PixelFormat, Recycled, Recycler,
};
use sonoflow_dicom_export::{
    write_part10, Exporter, Keyframe, Picture, ReportText, SessionInfo, SessionUids, Subject,
};
use sonoflow_output::SinkSpec;
use sonoflow_overlay::{Overlay, OverlayOptions};
use sonoflow_reasoning::{HeadHandle, ReasoningStats};
use tracing::{info, warn};

use crate::error::RunError;
use crate::frame_tap::{Entry, FrameTap};

/// Keyframes waiting for their reports; an older one is given up for a newer.
const PENDING: usize = 4;
/// How often the store looks at the board.
const POLL: Duration = Duration::from_millis(50);
/// How long a keyframe waits for its report before it is given up.
const REPORT_WAIT: Duration = Duration::from_secs(30);
/// How long a finished report waits for the head's details.
const DETAIL_WAIT: Duration = Duration::from_secs(1);

/// The `dicom` section of the run report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DicomReport {
    pub path: PathBuf,
    pub study_instance_uid: String,
    /// Keyframes the tap took.
    pub keyframes: u64,
    /// Keyframes stored (their images and SR written).
    pub stored: u64,
    /// Files written and their bytes.
    pub objects: u64,
    pub bytes: u64,
    /// Keyframes not stored: no finished report came for them.
    pub without_report: u64,
    /// Keyframes the tap could not hand over (the store was behind).
    pub dropped: u64,
    /// Keyframes not stored because writing failed; the last error.
    pub failed: u64,
    pub error: Option<String>,
}

/// What the store needs from the run.
pub(crate) struct DicomInputs {
    pub head: HeadHandle,
    pub board: Arc<InterpretationBoard>,
    pub finding_name: String,
    pub model: String,
    pub device: String,
    pub clock: Arc<dyn Clock>,
    /// The run's overlay, when it draws one: the image as shown is drawn with it.
    pub overlay: Option<OverlayOptions>,
}

/// The store's thread.
pub(crate) struct DicomStore {
    thread: Option<JoinHandle<DicomReport>>,
    dropped: Arc<AtomicU64>,
}

impl DicomStore {
    /// Creates the folder and the session's UIDs (a bad `uid_root` or
    /// patient name fails the run before any frame flows) and returns the
    /// tap that feeds the store.
    pub fn start(spec: &SinkSpec, inputs: DicomInputs) -> Result<(Self, FrameTap), RunError> {
        let settings = spec.dicom.clone().unwrap_or_default();
        let dir = spec.path.clone().unwrap_or_default();
        let refuse = |why: String| RunError::Dicom {
            sink: spec.describe(),
            why,
        };
        std::fs::create_dir_all(&dir)
            .map_err(|e| refuse(format!("cannot create the folder: {e}")))?;
        let started = SystemTime::now();
        let salt = format!("{started:?} {} {}", std::process::id(), dir.display());
        let uids = SessionUids::new(settings.uid_root.as_deref(), salt.as_bytes())
            .map_err(|e| refuse(e.to_string()))?;
        let session = SessionInfo {
            subject: Subject {
                patient_name: settings.patient_name,
                patient_id: settings.patient_id,
                clinical: settings.clinical,
                ..Subject::default()
            },
            device_name: inputs.device.clone(),
            software_version: env!("CARGO_PKG_VERSION").into(),
            station: String::new(),
            model: inputs.model.clone(),
            started,
        };
        let exporter = Exporter::new(session, uids).map_err(|e| refuse(e.to_string()))?;
        let painter = match &inputs.overlay {
            Some(options) => Some(Painter {
                // A stored picture has no live frame rate or latency to show;
                // NOT FOR DIAGNOSIS stays.
                overlay: Overlay::new(
                    OverlayOptions {
                        hud: false,
                        ..options.clone()
                    },
                    Arc::clone(&inputs.clock),
                    Arc::clone(&inputs.board),
                )
                .map_err(|e| refuse(format!("its overlay could not be built: {e}")))?
                .naming_findings(&inputs.finding_name),
                pool: FramePool::new(1),
                findings: Recycler::new(1),
                rgba: Vec::new(),
            }),
            None => None,
        };
        let dropped = Arc::new(AtomicU64::new(0));
        let (tap, entries) = FrameTap::new(2, false, Arc::clone(&dropped));
        let head = inputs.head.clone();
        let tap = tap
            .only(move |frame| head.latest_keyframe() == Some(frame))
            .with_pixels();
        let stats = inputs.head.stats();
        let store = Store {
            exporter,
            dir: dir.clone(),
            report: DicomReport {
                path: dir,
                ..DicomReport::default()
            },
            pending: VecDeque::with_capacity(PENDING + 1),
            inputs,
            stats,
            wall: (started, Instant::now()),
            painter,
        };
        let thread = std::thread::Builder::new()
            .name("sonoflow-dicom".into())
            .spawn(move || store.run(&entries))
            .map_err(|e| RunError::Thread("dicom", e.to_string()))?;
        Ok((
            Self {
                thread: Some(thread),
                dropped,
            },
            tap,
        ))
    }

    /// Waits for the store (the tap must be gone) and reports.
    pub fn finish(mut self) -> DicomReport {
        let mut report = match self.thread.take().map(JoinHandle::join) {
            Some(Ok(report)) => report,
            _ => DicomReport {
                error: Some("the DICOM store's thread panicked".into()),
                ..DicomReport::default()
            },
        };
        report.dropped = self.dropped.load(Ordering::Relaxed);
        report
    }
}

/// Draws a stored keyframe as the overlay shows it.
struct Painter {
    overlay: Overlay,
    pool: FramePool,
    findings: Recycler<FrameFindings>,
    /// The drawn picture (RGBA), reused.
    rgba: Vec<u8>,
}

impl Painter {
    /// Draws `entry` with the overlay into `self.rgba`; false if its
    /// pixels do not make a frame.
    fn draw(&mut self, entry: &Entry) -> bool {
        let Some(pixel) = entry.pixel_format else {
            return false;
        };
        let Ok(format) = FrameFormat::new(pixel, entry.width, entry.height) else {
            return false;
        };
        if entry.pixels.len() < format.len() {
            return false;
        }
        let mut data = self.pool.acquire(format.len());
        data.copy_from_slice(&entry.pixels[..format.len()]);
        let mut frame = Frame::new(entry.frame, format, data, entry.stamps);
        frame.calibration = entry.calibration.clone();
        if entry.has_findings {
            let mut found = self.findings.acquire();
            found.copy_from(&entry.findings);
            frame.findings = Some(found);
        }
        self.rgba.clear();
        self.rgba
            .resize(entry.width as usize * entry.height as usize * 4, 0);
        self.overlay.draw(&frame, &mut self.rgba);
        true
    }
}

/// A keyframe waiting for its report.
struct Pending {
    entry: Recycled<Entry>,
    since: Instant,
    /// When its report was first seen done without the head's details.
    done_without_details: Option<Instant>,
}

struct Store {
    exporter: Exporter,
    dir: PathBuf,
    report: DicomReport,
    pending: VecDeque<Pending>,
    inputs: DicomInputs,
    stats: Arc<ReasoningStats>,
    /// The wall clock and the monotonic clock at the same moment.
    wall: (SystemTime, Instant),
    painter: Option<Painter>,
}

impl Store {
    fn run(mut self, entries: &Receiver<Recycled<Entry>>) -> DicomReport {
        self.report.study_instance_uid = self.exporter.uids().study.clone();
        info!(dir = %self.dir.display(), study = %self.report.study_instance_uid, "DICOM store on");
        loop {
            match entries.recv_timeout(POLL) {
                Ok(entry) => {
                    self.report.keyframes += 1;
                    if self.pending.len() == PENDING {
                        self.pending.pop_front();
                        self.report.without_report += 1;
                    }
                    self.pending.push_back(Pending {
                        entry,
                        since: Instant::now(),
                        done_without_details: None,
                    });
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.poll(Instant::now());
        }
        // The run ended: what has no finished report now never will.
        self.poll(Instant::now() + DETAIL_WAIT);
        self.report.without_report += self.pending.len() as u64;
        info!(
            stored = self.report.stored,
            objects = self.report.objects,
            without_report = self.report.without_report,
            "DICOM store done"
        );
        self.report
    }

    /// Stores each pending keyframe whose report is done; gives up those
    /// whose report will not come.
    fn poll(&mut self, now: Instant) {
        let Some(current) = self.inputs.board.load_full() else {
            return;
        };
        let mut i = 0;
        while i < self.pending.len() {
            let frame = self.pending[i].entry.frame;
            let done = current.frame == frame && current.state == InterpretationState::Done;
            let superseded = current.frame.0 > frame.0;
            let expired = now.duration_since(self.pending[i].since) > REPORT_WAIT;
            if done {
                let details = self
                    .stats
                    .latest
                    .lock()
                    .ok()
                    .and_then(|l| l.clone())
                    .filter(|r| r.keyframe == frame.0);
                let since = *self.pending[i].done_without_details.get_or_insert(now);
                if details.is_none() && now.duration_since(since) < DETAIL_WAIT {
                    i += 1;
                    continue;
                }
                if let Some(p) = self.pending.remove(i) {
                    self.store(&p.entry, &current.text, details.as_ref());
                }
            } else if superseded || expired {
                self.pending.remove(i);
                self.report.without_report += 1;
            } else {
                i += 1;
            }
        }
    }

    fn store(&mut self, entry: &Entry, text: &str, details: Option<&sonoflow_reasoning::Report>) {
        let attributes: Vec<(String, String)> = details
            .map(|d| {
                d.fields
                    .attributes
                    .iter()
                    .map(|(k, v)| (k.replace('_', " "), v.replace('_', " ")))
                    .collect()
            })
            .unwrap_or_default();
        let label = details
            .and_then(|d| d.fields.class.clone())
            .unwrap_or_else(|| self.inputs.finding_name.clone());
        let captured = self.wall_time(entry);
        let clean = Picture {
            width: entry.width,
            height: entry.height,
            format: entry.pixel_format.unwrap_or(PixelFormat::Gray8),
            data: &entry.pixels,
            burned_in: false,
        };
        let drawn = self.painter.as_mut().is_some_and(|p| p.draw(entry));
        let (shown, clean) = match &self.painter {
            Some(p) if drawn => (
                Picture {
                    format: PixelFormat::Rgba,
                    data: &p.rgba,
                    burned_in: true,
                    ..clean
                },
                Some(clean),
            ),
            _ => (clean, None),
        };
        let keyframe = Keyframe {
            frame: entry.frame,
            captured,
            shown,
            clean,
            calibration: entry.calibration.as_deref(),
            findings: &entry.findings,
            finding_label: &label,
            report: Some(ReportText {
                text,
                attributes: &attributes,
                long_axis_mm: details.and_then(|d| d.long_axis_mm),
                short_axis_mm: details.and_then(|d| d.short_axis_mm),
            }),
        };
        let written = self.exporter.keyframe(&keyframe).and_then(|objects| {
            objects
                .all()
                .map(|o| write_part10(o, &self.dir))
                .collect::<Result<Vec<_>, _>>()
        });
        match written {
            Ok(paths) => {
                self.report.stored += 1;
                self.report.objects += paths.len() as u64;
                self.report.bytes += paths
                    .iter()
                    .filter_map(|p| std::fs::metadata(p).ok())
                    .map(|m| m.len())
                    .sum::<u64>();
            }
            Err(e) => {
                warn!(frame = entry.frame.0, "keyframe not stored as DICOM: {e}");
                self.report.failed += 1;
                self.report.error = Some(e.to_string());
            }
        }
    }

    /// The wall-clock time of the keyframe's capture.
    fn wall_time(&self, entry: &Entry) -> SystemTime {
        let age = self
            .inputs
            .clock
            .now()
            .saturating_since(entry.stamps.captured);
        let (wall, at) = self.wall;
        (wall + at.elapsed()).checked_sub(age).unwrap_or(wall)
    }
}
