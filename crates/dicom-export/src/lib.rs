//! sonoflow-dicom-export: the DICOM objects of a stored keyframe.
//!
//! For each keyframe stored, [`Exporter::keyframe`] makes:
//! - an **Ultrasound Image** (US Image Storage) of the frame as shown, the
//!   overlay burned in (Burned In Annotation YES), and optionally one of the
//!   clean frame; each carries the frame's calibration as a Sequence of
//!   Ultrasound Regions, so a PACS viewer's own ruler agrees with ours;
//! - a **Comprehensive SR** measurement report (TID 1500): per finding its
//!   class, long and short axis in mm with their uncertainty, the calipers
//!   and the contour as SCOORDs on the image, the report's descriptors, and
//!   the reasoning head's text, whose numbers reference the measurements
//!   they quote.
//!
//! One session is one Study with an image Series and an SR Series
//! ([`uids::SessionUids`]); patient and study attributes come from the
//! source or the definition ([`Subject`]), never invented: without them the
//! patient is anonymous and every object says it is not for clinical use.
//! Every object says NOT FOR DIAGNOSIS and the SR is UNVERIFIED: no person
//! has checked it. A keyframe whose AI output was invalid has no
//! measurements and says so; a frame without a calibration has no mm.

pub mod codes;
mod elements;
mod image;
pub mod pacs;
mod sr;
pub mod uids;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use dicom_object::{FileDicomObject, InMemDicomObject};
use sonoflow_core::{Calibration, FrameFindings, FrameId, PixelFormat};

pub use image::US_IMAGE_STORAGE;
pub use sr::COMPREHENSIVE_SR_STORAGE;
pub use uids::SessionUids;

/// A finished DICOM object, its file meta included.
pub type DicomFile = FileDicomObject<InMemDicomObject>;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("dicom.uid_root \"{root}\" is not a usable UID root: {why}. Fix: use digits and dots (e.g. your organisation's registered root), at most about 40 characters, or leave it out for 2.25 UUID-derived UIDs")]
    UidRoot { root: String, why: String },
    #[error("the frame's pixels are {got} bytes; a {width}x{height} {format:?} frame has {want}")]
    Pixels {
        width: u32,
        height: u32,
        format: PixelFormat,
        got: usize,
        want: usize,
    },
    #[error("the source's Study Instance UID \"{uid}\" is not a valid UID: {why}. Fix: correct the source files' Study Instance UID (0020,000D), or play files without one (the session then makes its own study)")]
    StudyUid { uid: String, why: String },
    #[error("patient name \"{name}\" cannot be written: {why}. Fix: the source's or the definition's patient name must be DICOM PN (family^given^middle^prefix^suffix, at most 64 characters a group, no control characters)")]
    PatientName { name: String, why: String },
    #[error("could not build the DICOM file meta: {0}")]
    Meta(String),
    #[error("could not write {path}: {cause}")]
    Write { path: PathBuf, cause: String },
}

/// Who and what the objects are about: from the source (a DICOM source's
/// own attributes) or the definition. Empty fields stay empty (type 2),
/// never invented.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Subject {
    /// DICOM PN: "Family^Given".
    pub patient_name: String,
    pub patient_id: String,
    /// YYYYMMDD.
    pub patient_birth_date: String,
    /// M, F, O or empty.
    pub patient_sex: String,
    pub accession_number: String,
    pub referring_physician: String,
    pub study_id: String,
    pub study_description: String,
    /// Whether someone said these are real clinical attributes; when false
    /// (the default, and always when no patient is given) the patient is
    /// anonymous and the objects are marked not for clinical use.
    pub clinical: bool,
}

impl Subject {
    /// Whether the objects are for clinical use: a patient was named by
    /// the source or the definition, and the definition says so.
    pub fn for_clinical_use(&self) -> bool {
        self.clinical && !self.patient_id.trim().is_empty()
    }
}

/// Session-wide settings and identity.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub subject: Subject,
    /// Written as Manufacturer's Model Name and the SR's device observer.
    pub device_name: String,
    pub software_version: String,
    /// Station Name (0008,1010), e.g. the cart's name.
    pub station: String,
    /// The model's name and version ("umind-nano 0.1.0").
    pub model: String,
    /// When the session started (Study Date and Time).
    pub started: SystemTime,
}

impl SessionInfo {
    /// Whether every text it puts into an object is ASCII.
    pub fn is_ascii(&self) -> bool {
        let s = &self.subject;
        [
            &s.patient_name,
            &s.patient_id,
            &s.accession_number,
            &s.referring_physician,
            &s.study_id,
            &s.study_description,
            &self.device_name,
            &self.software_version,
            &self.station,
            &self.model,
        ]
        .iter()
        .all(|t| t.is_ascii())
    }
}

/// The pixels of one picture of a keyframe.
#[derive(Debug, Clone, Copy)]
pub struct Picture<'a> {
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
    /// Tightly packed rows.
    pub data: &'a [u8],
    /// Whether the overlay (contours, calipers, text) is drawn into it.
    pub burned_in: bool,
}

/// The reasoning head's finished report on the keyframe.
#[derive(Debug, Clone, Copy)]
pub struct ReportText<'a> {
    pub text: &'a str,
    /// Descriptors the report names ("shape" = "oval", ...).
    pub attributes: &'a [(String, String)],
    /// The calipers the text quotes, in mm (from the keyframe's calipers).
    pub long_axis_mm: Option<f64>,
    pub short_axis_mm: Option<f64>,
}

/// One keyframe to store.
#[derive(Debug, Clone, Copy)]
pub struct Keyframe<'a> {
    pub frame: FrameId,
    /// When it was captured (Content and Acquisition Date and Time).
    pub captured: SystemTime,
    /// The frame as shown (overlay burned in) and, optionally, clean.
    pub shown: Picture<'a>,
    pub clean: Option<Picture<'a>>,
    pub calibration: Option<&'a Calibration>,
    pub findings: &'a FrameFindings,
    /// The model's word for a finding ("lesion", "cyst", "mass").
    pub finding_label: &'a str,
    pub report: Option<ReportText<'a>>,
}

/// The objects of one keyframe, images first, then the SR.
#[derive(Debug)]
pub struct KeyframeObjects {
    pub images: Vec<DicomFile>,
    pub sr: DicomFile,
}

impl KeyframeObjects {
    /// Every object, in the order they are to be stored (images before the
    /// SR that references them).
    pub fn all(&self) -> impl Iterator<Item = &DicomFile> {
        self.images.iter().chain(std::iter::once(&self.sr))
    }
}

/// What every object of a keyframe is made with: the session, its UIDs,
/// the object's own UID and number, the keyframe.
pub(crate) struct Instance<'a> {
    pub session: &'a SessionInfo,
    pub uids: &'a SessionUids,
    pub instance_uid: &'a str,
    pub instance_number: u32,
    pub keyframe: &'a Keyframe<'a>,
}

/// Makes the objects of a session's keyframes.
#[derive(Debug)]
pub struct Exporter {
    session: SessionInfo,
    uids: SessionUids,
    /// Instance numbers within each series.
    images: u32,
    reports: u32,
}

impl Exporter {
    /// Checks the subject (a patient name that is not valid DICOM PN is
    /// refused, naming it) and draws the session's UIDs.
    pub fn new(session: SessionInfo, uids: SessionUids) -> Result<Self, ExportError> {
        elements::check_person_name(&session.subject.patient_name).map_err(|why| {
            ExportError::PatientName {
                name: session.subject.patient_name.clone(),
                why,
            }
        })?;
        Ok(Self {
            session,
            uids,
            images: 0,
            reports: 0,
        })
    }

    pub fn uids(&self) -> &SessionUids {
        &self.uids
    }

    /// The image(s) and the SR of `keyframe`.
    pub fn keyframe(&mut self, keyframe: &Keyframe<'_>) -> Result<KeyframeObjects, ExportError> {
        let mut images = Vec::new();
        let mut refs = Vec::new();
        for picture in std::iter::once(keyframe.shown).chain(keyframe.clean) {
            self.images += 1;
            let uid = self.uids.next_uid()?;
            let instance = Instance {
                session: &self.session,
                uids: &self.uids,
                instance_uid: &uid,
                instance_number: self.images,
                keyframe,
            };
            let object = image::us_image(&instance, picture)?;
            refs.push(sr::ImageRef {
                sop_instance_uid: uid,
                burned_in: picture.burned_in,
            });
            images.push(object);
        }
        self.reports += 1;
        let uid = self.uids.next_uid()?;
        let tracking = (0..keyframe.findings.findings.len())
            .map(|_| self.uids.next_uid())
            .collect::<Result<Vec<_>, _>>()?;
        let instance = Instance {
            session: &self.session,
            uids: &self.uids,
            instance_uid: &uid,
            instance_number: self.reports,
            keyframe,
        };
        let sr = sr::measurement_report(&instance, &refs, &tracking)?;
        Ok(KeyframeObjects { images, sr })
    }
}

/// Writes `object` into `dir` as `<SOP Instance UID>.dcm` (Part 10); its path.
pub fn write_part10(object: &DicomFile, dir: &Path) -> Result<PathBuf, ExportError> {
    let name = format!("{}.dcm", object.meta().media_storage_sop_instance_uid());
    let path = dir.join(name.trim_end_matches('\0'));
    object
        .write_to_file(&path)
        .map_err(|e| ExportError::Write {
            path: path.clone(),
            cause: causes(&e),
        })?;
    Ok(path)
}

/// An error with its causes ("Could not print data set: ...: No space
/// left on device"): the innermost one is what a user can act on.
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
