//! DICOM files as a source (`kind = "dicom"`): a feed thread decodes one
//! frame at a time with dicom-pixeldata and pushes it into an appsrc, stamped
//! at the file's frame time, with the file's calibration (from its Sequence
//! of Ultrasound Regions) beside each frame through the [`SideQueue`]. The
//! usual `videoconvert ! videoscale ! appsink` tail follows, so a DICOM file
//! reaches ingest like any other source. Try a file's frames by hand with
//! `sonoflow run` and a `[source] kind = "dicom"` section (docs/sources.md).
//!
//! Once per file (first pass), a file that states a spacing has it checked
//! against the depth ruler the scanner drew on its first frame
//! ([`sonoflow_calibrate::check_spacing`], on this thread, on the frame
//! just decoded): it agrees (within 2 %), disagrees (a warning naming the
//! file and both figures; the stated spacing is still the one frames
//! carry), or cannot tell (no ruler, or one too poor), recorded in
//! `source.calibration.ruler_checks`.
//!
//! A folder plays its files in name order. A file that is not DICOM, or that
//! this build cannot decode, is skipped with a warning naming it and why
//! (and counted in `source.skipped`, on the first pass); only a source with
//! no playable file at all fails, at start.

mod file;
mod regions;
mod subject;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer_app as gst_app;
use sonoflow_calibrate::{check_spacing, CheckOptions, SpacingCheck, Verdict};
use sonoflow_core::findings::ImageRegion;
use sonoflow_core::FrameFormat;
use tracing::{info, warn};

use crate::feed::{self, BufferError, FeedThread, FrameSide, RawLayout, SideQueue};
use crate::{DicomError, IngestError, RulerCheckReport, SourceStatus};
use file::DicomFile;
pub use subject::{source_subject, SourceSubject, SubjectError};

/// Name of the appsrc the DICOM feed pushes into.
pub const DICOM_APPSRC: &str = "sonoflow_dicom";

/// A late live frame more than this many frame times behind is skipped
/// (counted as lost before ingest), as a scanner that cannot keep up would.
const LATE_FRAMES: u32 = 4;

/// What a `kind = "dicom"` source plays, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DicomSettings {
    /// A DICOM file, or a folder whose files play in name order.
    pub path: PathBuf,
    /// Paced at each file's frame time (true), or as fast as ingest takes
    /// frames, nothing dropped (false: evaluation).
    pub live: bool,
    /// Start again from the first file after the last.
    pub looping: bool,
}

/// Checks, before the run starts, that at least one file of the source can
/// be played: opened, understood and its first frame decoded. Files are
/// tried in order until one plays; the others are left to the feed, which
/// skips those that cannot play with a warning.
pub(crate) fn check_playable(settings: &DicomSettings) -> Result<(), IngestError> {
    let path_name = settings.path.display().to_string();
    let nothing = |unplayable| IngestError::NothingPlayable {
        path: path_name.clone(),
        unplayable,
    };
    let files = feed::playlist(&settings.path)
        .map_err(|e| nothing(vec![(path_name.clone(), DicomError::Path(e))]))?;
    if files.is_empty() {
        return Err(nothing(vec![(path_name.clone(), DicomError::EmptyFolder)]));
    }
    let mut unplayable = Vec::new();
    for path in &files {
        let first_frame = DicomFile::open(path).and_then(|file| {
            let layout = RawLayout::new(file.format, file.width, file.height, (0, 1));
            let Ok(layout) = layout else {
                return Err(DicomError::Attribute {
                    name: "Columns",
                    value: file.width.to_string(),
                    expected: "GStreamer has no layout for the frame size",
                });
            };
            let mut scratch = vec![0u8; layout.size];
            file.decode_into(0, &mut scratch, layout.stride)
        });
        match first_frame {
            Ok(()) => return Ok(()),
            Err(why) => unplayable.push((feed::file_name(path), why)),
        }
    }
    Err(nothing(unplayable))
}

/// Starts the feed thread; it stops and joins on drop.
pub(crate) fn start(
    settings: DicomSettings,
    appsrc: gst_app::AppSrc,
    sides: Arc<SideQueue>,
    status: Arc<SourceStatus>,
) -> FeedThread {
    FeedThread::start("sonoflow-dicom", move |stop| {
        Feed {
            settings: &settings,
            appsrc: &appsrc,
            sides: &sides,
            status: &status,
            stop,
            next_pts: Duration::ZERO,
            next_index: 0,
            anchor: None,
            caps: None,
        }
        .run();
    })
}

/// The feed's running state across files and passes.
struct Feed<'a> {
    settings: &'a DicomSettings,
    appsrc: &'a gst_app::AppSrc,
    sides: &'a SideQueue,
    /// Where skipped files are counted.
    status: &'a SourceStatus,
    stop: &'a AtomicBool,
    /// Running time of the next frame (continuous across files).
    next_pts: Duration,
    /// Buffer offset of the next frame (a skipped frame leaves a gap).
    next_index: u64,
    /// Live: the instant running time 0 was due.
    anchor: Option<Instant>,
    /// The caps the appsrc announces now.
    caps: Option<gstreamer::Caps>,
}

/// Whether the feed goes on after a file.
enum Next {
    Continue,
    Stop,
}

impl Feed<'_> {
    fn run(&mut self) {
        let files = match feed::playlist(&self.settings.path) {
            Ok(files) => files,
            Err(err) => {
                warn!(
                    "dicom: {} cannot be read: {err}",
                    self.settings.path.display()
                );
                let _ = self.appsrc.end_of_stream();
                return;
            }
        };
        for pass in 0u64.. {
            let mut played = 0u64;
            for path in &files {
                if self.stop.load(Ordering::Acquire) {
                    return;
                }
                let name = feed::file_name(path);
                let file = match DicomFile::open(path) {
                    Ok(file) => file,
                    Err(why) => {
                        if pass == 0 {
                            warn!("dicom: {name} skipped: {why}");
                            self.status.note_skipped();
                        }
                        continue;
                    }
                };
                if pass == 0 {
                    log_file(&name, &file);
                }
                let (frames, next) = self.play(&name, &file, pass == 0);
                played += frames;
                if let Next::Stop = next {
                    return;
                }
            }
            if !self.settings.looping {
                break;
            }
            if played == 0 {
                warn!(
                    "dicom: no frame of {} could be played; the stream ends",
                    self.settings.path.display()
                );
                break;
            }
        }
        let _ = self.appsrc.end_of_stream();
    }

    /// Plays every frame of `file`; returns how many were pushed.
    fn play(&mut self, name: &str, file: &DicomFile, first_pass: bool) -> (u64, Next) {
        let period = file.frame_period;
        let micros = i32::try_from(period.as_micros()).unwrap_or(i32::MAX).max(1);
        let layout = match RawLayout::new(file.format, file.width, file.height, (1_000_000, micros))
        {
            Ok(layout) => layout,
            Err(err) => {
                warn!(
                    "dicom: {name} skipped: no GStreamer layout for {}x{}: {err}",
                    file.width, file.height
                );
                if first_pass {
                    self.status.note_skipped();
                }
                return (0, Next::Continue);
            }
        };
        if self.caps.as_ref() != Some(&layout.caps) {
            self.appsrc.set_caps(Some(&layout.caps));
            self.caps = Some(layout.caps.clone());
        }
        // Live: a new file starts now, however long opening it took.
        if self.settings.live {
            let now = Instant::now();
            let anchor = *self.anchor.get_or_insert(now);
            if anchor + self.next_pts < now {
                self.anchor = Some(now.checked_sub(self.next_pts).unwrap_or(now));
            }
        }
        // Checked on the first frame decoded (first pass only).
        let mut to_check = if first_pass { stated(file) } else { None };
        let mut pushed = 0u64;
        let mut frame = 0u32;
        while frame < file.frames {
            if self.stop.load(Ordering::Acquire) {
                return (pushed, Next::Stop);
            }
            if let Some(anchor) = self.anchor.filter(|_| self.settings.live) {
                let due = anchor + self.next_pts;
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                } else if now - due > period * LATE_FRAMES {
                    // Behind: skip to the frame due now.
                    let behind = (now - due).as_nanos() / period.as_nanos().max(1);
                    let skip = u32::try_from(behind)
                        .unwrap_or(u32::MAX)
                        .min(file.frames - frame);
                    frame += skip;
                    self.next_pts += period * skip;
                    self.next_index += u64::from(skip);
                    continue;
                }
            }
            let mut checked = None;
            let made = layout.buffer(self.next_pts, period, self.next_index, |map, stride| {
                file.decode_into(frame, map, stride)?;
                if let Some((format, region, stated_mm)) = to_check.take() {
                    let options = CheckOptions::default();
                    checked = Some(check_spacing(
                        map, format, stride, &region, stated_mm, &options,
                    ));
                }
                Ok::<(), DicomError>(())
            });
            match checked {
                Some(Ok(check)) => self.note_ruler_check(name, &check),
                Some(Err(err)) => {
                    warn!("dicom: {name}: the ruler check could not read the frame: {err}")
                }
                None => {}
            }
            let buffer = match made {
                Ok(buffer) => buffer,
                Err(BufferError::Fill(why)) => {
                    if first_pass {
                        warn!("dicom: {name}: {why}; the rest of the file is skipped");
                        self.status.note_skipped();
                    }
                    return (pushed, Next::Continue);
                }
                Err(BufferError::Alloc) => {
                    warn!("dicom: no buffer of {} bytes; the stream ends", layout.size);
                    return (pushed, Next::Stop);
                }
            };
            let side = FrameSide::calibrated(self.next_index, file.calibration.clone());
            if !feed::push(self.appsrc, self.sides, side, buffer) {
                return (pushed, Next::Stop); // flushing or stopped: the pipeline is going away
            }
            pushed += 1;
            frame += 1;
            self.next_pts += period;
            self.next_index += 1;
        }
        (pushed, Next::Continue)
    }

    /// Logs one file's ruler check and records it in the report.
    fn note_ruler_check(&self, name: &str, check: &SpacingCheck) {
        let pct = check.difference.map_or(0.0, |d| d * 100.0);
        match (check.verdict, check.ruler_mm) {
            (Verdict::Agrees, Some(ruler)) => info!(
                "dicom: {name}: the ruler on the screen agrees with the stated spacing: \
                 stated {:.4} mm/px, ruler {ruler:.4} mm/px ({pct:+.2} %; {})",
                check.stated_mm,
                check.reason()
            ),
            (Verdict::Disagrees, Some(ruler)) => warn!(
                "dicom: {name}: the ruler on the screen disagrees with the stated spacing: \
                 stated {:.4} mm/px, ruler {ruler:.4} mm/px ({pct:+.2} %; {}); \
                 the stated spacing is kept (it is what the file says)",
                check.stated_mm,
                check.reason()
            ),
            _ => info!(
                "dicom: {name}: cannot check the stated spacing ({:.4} mm/px) against a ruler: {}",
                check.stated_mm,
                check.reason()
            ),
        }
        self.status
            .note_ruler_check(RulerCheckReport::new(name, check));
    }
}

/// What a file's ruler check needs: the frame's format, and the primary
/// region with its stated spacing along the depth axis (y); None when the
/// file states none.
fn stated(file: &DicomFile) -> Option<(FrameFormat, ImageRegion, f64)> {
    let primary = file.calibration.as_deref()?.regions.first()?;
    let spacing = primary.spacing?;
    let format = FrameFormat::new(file.format, file.width, file.height).ok()?;
    Some((format, primary.region, spacing.y_mm))
}

/// What a file is and what its frames carry, once per file.
fn log_file(name: &str, file: &DicomFile) {
    info!(
        "dicom: {name}: {}x{} {} ({}), {} frame{} at {:.2} fps ({}); {}",
        file.width,
        file.height,
        file.photometric,
        file.transfer_syntax,
        file.frames,
        if file.frames == 1 { "" } else { "s" },
        1.0 / file.frame_period.as_secs_f64(),
        file.timing,
        file.regions.summary()
    );
    for refused in &file.regions.refused {
        warn!("dicom: {name}: {refused}");
    }
    for note in &file.regions.notes {
        info!("dicom: {name}: {note}");
    }
    if file.calibration.is_none() {
        warn!("dicom: {name}: {}", file.regions.summary());
    }
}
