//! `[[sinks]] kind = "dicom"`: each keyframe whose report the reasoning head
//! finishes is stored as DICOM files in a folder (sonoflow-dicom-export: the
//! Ultrasound Image and the TID 1500 SR; docs/dicom.md). `kind = "pacs"`:
//! the same objects go into a spool folder, and a sender thread C-STOREs
//! them to the PACS in order, removing each only once the PACS has it; while
//! the PACS cannot be reached it retries with a growing pause (0.5 s to 8 s),
//! and at the end of the run it keeps trying for up to 20 s; what is still
//! spooled then is sent first by the next run.
//!
//! With the overlay on (`[overlay]`), the image stored first is the frame as
//! shown: the store draws it with its own [`Overlay`] (the same options, and
//! its own interpretation board holding the keyframe's finished report, so
//! the panel shows that report whatever the live board shows by then) into
//! RGB, Burned In Annotation YES; the clean frame follows it.
//!
//! A [`FrameTap`] on the output takes only the frames the head was handed as
//! keyframes ([`HeadHandle::latest_keyframe`]: chosen in the process stage,
//! before the frame reaches the output) and copies their pixels, findings and
//! calibration. The store's own thread keeps a few such keyframes until the
//! head has finished that keyframe's report (`ReasoningStats::finished_for`:
//! the head keeps its recent reports, each before it shows it, so a store
//! that looks late still finds it), then writes the objects. When the video
//! ends it waits for a report still being written (the head's timeout). A
//! keyframe whose report never comes (cancelled, unavailable, replaced by a
//! newer keyframe's) is not stored, and counted. The frame path never waits
//! for the store.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam::channel::{unbounded, Receiver, RecvTimeoutError, Sender};
use serde::Serialize;
use sonoflow_core::{
    Clock, Frame, FrameFindings, FrameFormat, FramePool, Interpretation, InterpretationBoard,
    InterpretationState, PixelFormat, Recycled, Recycler,
};
use sonoflow_dicom_export::pacs::{pending, store_pending, PacsTarget, Spool};
use sonoflow_dicom_export::{
    write_part10, DicomFile, ExportError, Exporter, Keyframe, Picture, ReportText, SessionInfo,
    SessionUids, Subject,
};
use sonoflow_ingest::SourceSubject;
use sonoflow_output::DicomSinkSpec;
use sonoflow_output::{SinkKind, SinkSpec};
use sonoflow_overlay::{Overlay, OverlayOptions};
use sonoflow_pipeline::{LatencyRecorder, LatencySummary};
use sonoflow_reasoning::{Finished, HeadHandle, KeyframeReason, ReasoningStats};
use tracing::{error, info, warn};

use crate::error::RunError;
use crate::frame_tap::{Entry, FrameTap};

/// Keyframes waiting for their reports; an older one is given up for a newer.
const PENDING: usize = 4;
/// How often the store looks at the board.
const POLL: Duration = Duration::from_millis(50);
/// How long a keyframe waits for its report before it is given up.
const REPORT_WAIT: Duration = Duration::from_secs(30);
/// The sender's pauses between tries while the PACS cannot be reached.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(8);
/// How long the sender keeps trying after the run ends.
const DRAIN: Duration = Duration::from_secs(20);

/// The `pacs` part of a store's report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PacsReport {
    /// called_ae@host:port.
    pub pacs: String,
    /// Objects the PACS acknowledged, and refused (moved to refused/).
    pub sent: u64,
    pub refused: u64,
    /// Objects still in the spool when the run ended (sent by the next run).
    pub pending_at_end: u64,
    /// Tries that could not reach the PACS or broke off, and the last error.
    pub failed_tries: u64,
    pub last_error: Option<String>,
    /// From an object's spooling to the PACS's acknowledgement.
    pub spool_to_ack_ms: LatencySummary,
    /// From the capture of the keyframe an object shows to the PACS's
    /// acknowledgement (the report's writing, the store, the spool, the send).
    pub keyframe_to_ack_ms: LatencySummary,
}

/// The `dicom` section of the run report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DicomReport {
    pub path: PathBuf,
    pub study_instance_uid: String,
    /// Where the patient and study attributes came from: "source <file>",
    /// "definition", or "none (anonymous, not for clinical use)".
    pub subject_from: String,
    /// Keyframes the tap took.
    pub keyframes: u64,
    /// Keyframes stored (their images and SR written).
    pub stored: u64,
    /// Files written and their bytes.
    pub objects: u64,
    pub bytes: u64,
    /// Keyframes not stored: no finished report came for them.
    pub without_report: u64,
    /// Keyframes not stored because nobody asked for them (`store = "requests"`).
    pub not_requested: u64,
    /// Keyframes the tap could not hand over (the store was behind).
    pub dropped: u64,
    /// Keyframes not stored because writing failed; the last error.
    pub failed: u64,
    pub error: Option<String>,
    /// A `pacs` sink: what reached the PACS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pacs: Option<PacsReport>,
}

/// Where a store's objects go.
enum Destination {
    Folder(PathBuf),
    /// The spool, and the sender told of each object put there (with when
    /// it was spooled and when its keyframe was captured).
    Pacs(Spool, Sender<Spooled>),
}

/// An object put into the spool.
struct Spooled {
    name: String,
    at: Instant,
    keyframe: Instant,
}

impl Destination {
    /// Writes `object` (of a keyframe captured at `keyframe`); its size in bytes.
    fn put(&mut self, object: &DicomFile, keyframe: Instant) -> Result<u64, ExportError> {
        let path = match self {
            Destination::Folder(dir) => write_part10(object, dir)?,
            Destination::Pacs(spool, sender) => {
                let path = spool.put(object)?;
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_owned();
                let _ = sender.send(Spooled {
                    name,
                    at: Instant::now(),
                    keyframe,
                });
                path
            }
        };
        Ok(std::fs::metadata(&path).map_or(0, |m| m.len()))
    }
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
    /// A DICOM source's own patient and study, or why it cannot be used.
    pub source_subject: Result<Option<SourceSubject>, String>,
}

/// The store's thread.
pub(crate) struct DicomStore {
    thread: Option<JoinHandle<DicomReport>>,
    sender: Option<JoinHandle<PacsReport>>,
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
        let (destination, sender) = if spec.kind == SinkKind::Pacs {
            let spool = Spool::open(&dir).map_err(|e| refuse(e.to_string()))?;
            let target = PacsTarget {
                address: format!(
                    "{}:{}",
                    spec.host.as_deref().unwrap_or("127.0.0.1"),
                    spec.port.unwrap_or(104)
                ),
                called_ae: settings.called_ae.clone(),
                calling_ae: settings.calling_ae.clone(),
                timeout: Duration::from_secs(10),
            };
            let (tx, rx) = unbounded();
            let spool_dir = dir.clone();
            let thread = std::thread::Builder::new()
                .name("sonoflow-pacs".into())
                .spawn(move || send_spool(&spool_dir, &target, &rx))
                .map_err(|e| RunError::Thread("pacs", e.to_string()))?;
            (Destination::Pacs(spool, tx), Some(thread))
        } else {
            (Destination::Folder(dir.clone()), None)
        };
        let started = SystemTime::now();
        let salt = format!("{started:?} {} {}", std::process::id(), dir.display());
        let mut uids = SessionUids::new(settings.uid_root.as_deref(), salt.as_bytes())
            .map_err(|e| refuse(e.to_string()))?;
        // The definition's own mistakes stop the run before a frame flows;
        // the source's (its files' attributes) stop only the store, as a
        // scanner's odd file must not stop the video.
        let (exporter, subject_from) = match session_subject(&settings, &inputs.source_subject) {
            Ok(found) => {
                let session = SessionInfo {
                    subject: found.subject,
                    device_name: inputs.device.clone(),
                    software_version: env!("CARGO_PKG_VERSION").into(),
                    station: String::new(),
                    model: inputs.model.clone(),
                    started,
                };
                let joined = match &found.study {
                    Some(study) => uids.join_study(study),
                    None => Ok(()),
                };
                let exporter = joined.and_then(|()| Exporter::new(session, uids));
                match (exporter, &found.file) {
                    (Ok(exporter), _) => (Ok(exporter), found.from),
                    (Err(e), Some(file)) => (
                        Err(format!(
                            "the source file {file}: {e}; nothing is stored as DICOM"
                        )),
                        found.from,
                    ),
                    (Err(e), None) => return Err(refuse(e.to_string())),
                }
            }
            Err(why) => (
                Err(format!("{why}; nothing is stored as DICOM")),
                String::new(),
            ),
        };
        // The painter's own board: it shows the stored keyframe's report,
        // whatever the live board has moved on to.
        let board = Arc::new(InterpretationBoard::empty());
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
                    Arc::clone(&board),
                )
                .map_err(|e| refuse(format!("its overlay could not be built: {e}")))?
                .naming_findings(&inputs.finding_name),
                board,
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
            destination,
            report: DicomReport {
                path: dir,
                subject_from,
                ..DicomReport::default()
            },
            pending: VecDeque::with_capacity(PENDING + 1),
            inputs,
            stats,
            wall: (started, Instant::now()),
            painter,
            requests_only: settings.requests_only,
        };
        let thread = std::thread::Builder::new()
            .name("sonoflow-dicom".into())
            .spawn(move || store.run(&entries))
            .map_err(|e| RunError::Thread("dicom", e.to_string()))?;
        Ok((
            Self {
                thread: Some(thread),
                sender,
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
        // The store is done: its end of the sender's channel is gone, and
        // the sender drains the spool.
        if let Some(sender) = self.sender.take() {
            report.pacs = Some(sender.join().unwrap_or_else(|_| PacsReport {
                last_error: Some("the PACS sender's thread panicked".into()),
                ..PacsReport::default()
            }));
        }
        report
    }
}

/// Who a session's objects are of, and where that came from.
#[derive(Debug)]
struct FoundSubject {
    subject: Subject,
    /// The source's Study Instance UID, to file the objects under.
    study: Option<String>,
    /// The source file the attributes came from (None: the definition).
    file: Option<String>,
    from: String,
}

/// The subject of a store's objects. With `clinical = true`: a DICOM
/// source's own patient and study when its files name one (the objects
/// join that study), else the definition's (`patient_name`, `patient_id`).
/// Without it the objects are anonymous (a source's patient is not carried
/// into objects that are not for clinical use). Err: why the store must
/// not store: the source's files cannot be read for it or are of several
/// patients, or the definition names another patient than they do.
fn session_subject(
    settings: &DicomSinkSpec,
    source: &Result<Option<SourceSubject>, String>,
) -> Result<FoundSubject, String> {
    let defined = Subject {
        patient_name: settings.patient_name.clone(),
        patient_id: settings.patient_id.clone(),
        clinical: settings.clinical,
        ..Subject::default()
    };
    let from_definition = |from: &str| FoundSubject {
        from: if defined.for_clinical_use() {
            "definition".into()
        } else {
            format!("none (anonymous, not for clinical use{from})")
        },
        subject: defined.clone(),
        study: None,
        file: None,
    };
    if !settings.clinical {
        let withheld = match source {
            Ok(Some(s)) => format!(
                "; the source {}'s patient is withheld without clinical = true",
                s.file
            ),
            _ => String::new(),
        };
        return Ok(from_definition(&withheld));
    }
    let Some(s) = source.as_ref().map_err(Clone::clone)? else {
        return Ok(from_definition(""));
    };
    let differs = |defined: &str, source: &str| !defined.is_empty() && defined != source;
    if differs(&settings.patient_name, &s.patient_name)
        || differs(&settings.patient_id, &s.patient_id)
    {
        return Err(format!(
            "the definition names patient \"{}\" (ID \"{}\") but the source file {} is of \
             patient \"{}\" (ID \"{}\"). Fix: leave patient_name and patient_id out of the \
             sink to take the source's, or play that patient's files",
            settings.patient_name, settings.patient_id, s.file, s.patient_name, s.patient_id
        ));
    }
    Ok(FoundSubject {
        subject: Subject {
            patient_name: s.patient_name.clone(),
            patient_id: s.patient_id.clone(),
            patient_birth_date: s.patient_birth_date.clone(),
            patient_sex: s.patient_sex.clone(),
            accession_number: s.accession_number.clone(),
            referring_physician: s.referring_physician.clone(),
            study_id: s.study_id.clone(),
            study_description: s.study_description.clone(),
            clinical: settings.clinical,
        },
        study: Some(s.study_instance_uid.clone()).filter(|u| !u.is_empty()),
        file: Some(s.file.clone()),
        from: format!("source {}", s.file),
    })
}

/// The sender: C-STOREs the spool whenever objects wait, retrying with a
/// growing pause while the PACS cannot be reached; when the store ends,
/// keeps trying for up to [`DRAIN`].
fn send_spool(
    spool: &std::path::Path,
    target: &PacsTarget,
    objects: &Receiver<Spooled>,
) -> PacsReport {
    let mut report = PacsReport {
        pacs: format!("{}@{}", target.called_ae, target.address),
        ..PacsReport::default()
    };
    let (spool_to_ack, keyframe_to_ack) = (LatencyRecorder::new(), LatencyRecorder::new());
    let mut spooled_at = std::collections::HashMap::new();
    let mut pause = RETRY_FIRST;
    let mut draining: Option<Instant> = None;
    loop {
        // Once the store has ended, the channel answers at once: wait here.
        if draining.is_some() {
            std::thread::sleep(pause);
        } else {
            match objects.recv_timeout(pause) {
                Ok(object) => {
                    spooled_at.insert(object.name.clone(), object);
                    // Let the rest of a keyframe's objects arrive first.
                    while let Ok(object) = objects.try_recv() {
                        spooled_at.insert(object.name.clone(), object);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    draining.get_or_insert_with(Instant::now);
                }
            }
        }
        match store_pending(spool, target) {
            Ok(pass) => {
                pause = RETRY_FIRST;
                for name in &pass.stored {
                    if let Some(object) = spooled_at.remove(name) {
                        spool_to_ack.record(object.at.elapsed());
                        keyframe_to_ack.record(object.keyframe.elapsed());
                    }
                }
                report.sent += pass.stored.len() as u64;
                report.refused += pass.refused.len() as u64;
            }
            Err(e) => {
                report.failed_tries += 1;
                if report.last_error.as_deref() != Some(&e.to_string()) {
                    warn!("{e}; the objects stay in the spool and are sent when it answers");
                }
                report.last_error = Some(e.to_string());
                pause = (pause * 2).min(RETRY_MAX);
            }
        }
        let left = pending(spool).map_or(0, |p| p.len());
        if let Some(since) = draining {
            if left == 0 || since.elapsed() > DRAIN {
                report.pending_at_end = left as u64;
                break;
            }
            pause = pause.min(Duration::from_millis(500));
        }
    }
    report.spool_to_ack_ms = spool_to_ack.summary();
    report.keyframe_to_ack_ms = keyframe_to_ack.summary();
    info!(sent = report.sent, pending = report.pending_at_end, pacs = %report.pacs, "PACS sender done");
    report
}

/// Draws a stored keyframe as the overlay shows it.
struct Painter {
    overlay: Overlay,
    /// What the overlay's panel shows: the stored keyframe's report.
    board: Arc<InterpretationBoard>,
    pool: FramePool,
    findings: Recycler<FrameFindings>,
    /// The drawn picture (RGBA), reused.
    rgba: Vec<u8>,
}

impl Painter {
    /// Draws `entry` with the overlay, its panel showing `report`, into
    /// `self.rgba`; false if its pixels do not make a frame.
    fn draw(&mut self, entry: &Entry, report: &Arc<Interpretation>) -> bool {
        self.board.store(Some(Arc::clone(report)));
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
}

struct Store {
    /// Err: why this store stores nothing (the source's subject cannot be
    /// used); keyframes are counted as failed with it.
    exporter: Result<Exporter, String>,
    destination: Destination,
    report: DicomReport,
    pending: VecDeque<Pending>,
    inputs: DicomInputs,
    stats: Arc<ReasoningStats>,
    /// The wall clock and the monotonic clock at the same moment.
    wall: (SystemTime, Instant),
    painter: Option<Painter>,
    /// `store = "requests"`: only keyframes someone asked for.
    requests_only: bool,
}

impl Store {
    fn run(mut self, entries: &Receiver<Recycled<Entry>>) -> DicomReport {
        match &self.exporter {
            Ok(exporter) => {
                self.report.study_instance_uid = exporter.uids().study.clone();
                info!(dir = %self.report.path.display(), study = %self.report.study_instance_uid, from = %self.report.subject_from, "DICOM store on");
            }
            Err(why) => {
                error!(dir = %self.report.path.display(), "DICOM store refused: {why}");
                self.report.error = Some(why.clone());
            }
        }
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
                    });
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.poll(Instant::now());
        }
        // The video ended, the head has not: a report it is still writing
        // is stored when done (every store waits alike, so a folder and a
        // PACS hold the same keyframes).
        let end = Instant::now();
        let wait = (self.inputs.head.report_timeout() + Duration::from_secs(1)).min(REPORT_WAIT);
        if !self.pending.is_empty() {
            info!(
                keyframes = self.pending.len(),
                "the run ended: waiting for the reasoning head's last reports"
            );
        }
        while !self.pending.is_empty() && end.elapsed() < wait {
            std::thread::sleep(POLL);
            self.poll(Instant::now());
        }
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
    /// whose report will not come (the head moved on to a newer keyframe,
    /// could not write it, or it waited too long).
    fn poll(&mut self, now: Instant) {
        // The board first: the head keeps a report before it shows it, so
        // a board that has moved past a keyframe means its report, if any,
        // is already kept.
        let current = self.inputs.board.load_full();
        let mut i = 0;
        while i < self.pending.len() {
            let frame = self.pending[i].entry.frame;
            if let Some(finished) = self.stats.finished_for(frame.0) {
                let Some(p) = self.pending.remove(i) else {
                    continue;
                };
                let asked = finished.report.reason == KeyframeReason::Request;
                if self.requests_only && !asked {
                    self.report.not_requested += 1;
                } else {
                    self.store(&p.entry, &finished);
                }
                continue;
            }
            let gone = current.as_ref().is_some_and(|c| {
                c.frame.0 > frame.0
                    || (c.frame == frame && c.state == InterpretationState::Unavailable)
            });
            let expired = now.duration_since(self.pending[i].since) > REPORT_WAIT;
            if gone || expired {
                self.pending.remove(i);
                self.report.without_report += 1;
            } else {
                i += 1;
            }
        }
    }

    /// Stores `entry` with its finished report.
    fn store(&mut self, entry: &Entry, finished: &Finished) {
        let (text, details) = (finished.shown.text.as_str(), &finished.report);
        if self.exporter.is_err() {
            self.report.failed += 1;
            return;
        }
        let attributes: Vec<(String, String)> = details
            .fields
            .attributes
            .iter()
            .map(|(k, v)| (k.replace('_', " "), v.replace('_', " ")))
            .collect();
        let label = details
            .fields
            .class
            .clone()
            .unwrap_or_else(|| self.inputs.finding_name.clone());
        // How long ago the keyframe was captured: its wall-clock time for
        // the objects, its instant for the acknowledgement latency.
        let age = self
            .inputs
            .clock
            .now()
            .saturating_since(entry.stamps.captured);
        let captured = self.wall_time(age);
        let clean = Picture {
            width: entry.width,
            height: entry.height,
            format: entry.pixel_format.unwrap_or(PixelFormat::Gray8),
            data: &entry.pixels,
            burned_in: false,
        };
        let drawn = self
            .painter
            .as_mut()
            .is_some_and(|p| p.draw(entry, &finished.shown));
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
                long_axis_mm: details.long_axis_mm,
                short_axis_mm: details.short_axis_mm,
            }),
        };
        let destination = &mut self.destination;
        let captured_at = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        let Ok(exporter) = &mut self.exporter else {
            return;
        };
        let written = exporter.keyframe(&keyframe).and_then(|objects| {
            objects
                .all()
                .map(|o| destination.put(o, captured_at))
                .collect::<Result<Vec<_>, _>>()
        });
        match written {
            Ok(sizes) => {
                self.report.stored += 1;
                self.report.objects += sizes.len() as u64;
                self.report.bytes += sizes.iter().sum::<u64>();
            }
            Err(e) => {
                warn!(frame = entry.frame.0, "keyframe not stored as DICOM: {e}");
                self.report.failed += 1;
                self.report.error = Some(e.to_string());
            }
        }
    }

    /// The wall-clock time of a capture `age` ago.
    fn wall_time(&self, age: Duration) -> SystemTime {
        let (wall, at) = self.wall;
        (wall + at.elapsed()).checked_sub(age).unwrap_or(wall)
    }
}
