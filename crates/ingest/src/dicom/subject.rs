//! Whom a DICOM source's frames show: the patient and study attributes of
//! its files, read from their headers only (nothing is decoded), so that
//! what sonoflow stores of them (a `dicom` or `pacs` sink) files under the
//! same patient and study, never under invented ones.
//!
//! A folder whose files are of more than one patient or study is refused:
//! one session stores one patient's study, and a keyframe of one patient
//! must never be filed under another's name. Files that cannot be read are
//! left out here as they are skipped when played.

use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, OpenFileOptions, Tag};

use super::DicomSettings;
use crate::feed;

/// The patient and study attributes of a DICOM source, as its files give
/// them (empty where a file has none); `file` names the file they were
/// read from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceSubject {
    pub file: String,
    /// DICOM PN as the file has it (not checked here).
    pub patient_name: String,
    pub patient_id: String,
    pub patient_birth_date: String,
    pub patient_sex: String,
    pub accession_number: String,
    pub referring_physician: String,
    pub study_id: String,
    pub study_description: String,
    pub study_instance_uid: String,
}

impl SourceSubject {
    /// Whether the file names a patient or a study at all.
    pub fn names_anyone(&self) -> bool {
        !(self.patient_name.is_empty()
            && self.patient_id.is_empty()
            && self.study_instance_uid.is_empty())
    }

    /// The attributes that say who and which study, for comparing files.
    fn identity(&self) -> (&str, &str, &str) {
        (
            &self.patient_name,
            &self.patient_id,
            &self.study_instance_uid,
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SubjectError {
    #[error("the DICOM source {path} cannot be read: {cause}")]
    Path { path: String, cause: std::io::Error },
    #[error(
        "the DICOM source's files are of more than one patient or study: {} is patient \
         \"{}\" (ID \"{}\", study {}) but {} is patient \"{}\" (ID \"{}\", study {}); a \
         session stores one patient's study. Fix: play one patient's study per run (a folder \
         holding only its files)",
        .first.file, .first.patient_name, .first.patient_id, .first.study_instance_uid,
        .other.file, .other.patient_name, .other.patient_id, .other.study_instance_uid
    )]
    Mixed {
        first: Box<SourceSubject>,
        other: Box<SourceSubject>,
    },
}

/// The subject of the DICOM source `settings` plays: None when no readable
/// file names a patient or study (then the stored objects are anonymous).
pub fn source_subject(settings: &DicomSettings) -> Result<Option<SourceSubject>, SubjectError> {
    let _span = tracing::info_span!("dicom_subject").entered();
    let files = feed::playlist(&settings.path).map_err(|cause| SubjectError::Path {
        path: settings.path.display().to_string(),
        cause,
    })?;
    let mut first: Option<SourceSubject> = None;
    for path in &files {
        let Some(subject) = read(path) else {
            continue;
        };
        match &first {
            None => first = Some(subject),
            Some(seen) if seen.identity() == subject.identity() => {}
            Some(seen) => return Err(mixed(seen, &subject)),
        }
    }
    Ok(first.filter(SourceSubject::names_anyone))
}

/// One file's attributes; None when it is not a readable DICOM file.
fn read(path: &Path) -> Option<SourceSubject> {
    let obj = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .ok()?;
    let text = |tag: Tag| text(&obj, tag);
    Some(SourceSubject {
        file: feed::file_name(path),
        patient_name: text(tags::PATIENT_NAME),
        patient_id: text(tags::PATIENT_ID),
        patient_birth_date: text(tags::PATIENT_BIRTH_DATE),
        patient_sex: text(tags::PATIENT_SEX),
        accession_number: text(tags::ACCESSION_NUMBER),
        referring_physician: text(tags::REFERRING_PHYSICIAN_NAME),
        study_id: text(tags::STUDY_ID),
        study_description: text(tags::STUDY_DESCRIPTION),
        study_instance_uid: text(tags::STUDY_INSTANCE_UID),
    })
}

/// An attribute's text with DICOM's padding removed; empty when absent.
fn text(obj: &InMemDicomObject, tag: Tag) -> String {
    obj.element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).trim_start().to_owned())
        .unwrap_or_default()
}

fn mixed(first: &SourceSubject, other: &SourceSubject) -> SubjectError {
    SubjectError::Mixed {
        first: Box::new(first.clone()),
        other: Box::new(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(file: &str, name: &str, id: &str, study: &str) -> SourceSubject {
        SourceSubject {
            file: file.into(),
            patient_name: name.into(),
            patient_id: id.into(),
            study_instance_uid: study.into(),
            ..SourceSubject::default()
        }
    }

    #[test]
    fn a_file_that_names_nobody_is_anonymous() {
        assert!(!subject("a.dcm", "", "", "").names_anyone());
        assert!(subject("a.dcm", "", "", "1.2.3").names_anyone());
        assert!(subject("a.dcm", "Doe^Jane", "", "").names_anyone());
    }

    #[test]
    fn two_patients_are_named_with_their_files_in_the_refusal() {
        let a = subject("a.dcm", "Doe^Jane", "42", "1.2.3");
        let b = subject("b.dcm", "Roe^Rick", "43", "1.2.3");
        let text = mixed(&a, &b).to_string();
        for part in ["a.dcm", "b.dcm", "Doe^Jane", "Roe^Rick", "\"42\"", "Fix:"] {
            assert!(text.contains(part), "{part} missing from: {text}");
        }
    }
}
