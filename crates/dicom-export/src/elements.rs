//! Building blocks: typed element constructors, dates and times, and the
//! modules every object carries (SOP Common, Patient, General Study,
//! General Equipment).

use std::time::{SystemTime, UNIX_EPOCH};

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

use crate::codes::Code;
use crate::{DicomFile, ExportError, SessionInfo, SessionUids};

/// Explicit VR Little Endian: what the files are written in.
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
/// Implicit VR Little Endian: DIMSE command sets, and the fallback offered to a PACS.
pub const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
/// Written in every object.
pub const NOT_FOR_DIAGNOSIS: &str =
    "NOT FOR DIAGNOSIS: sonoflow demonstration output (phantom-trained model), not verified by a person";

pub type Element = DataElement<InMemDicomObject>;

pub fn text(tag: Tag, vr: VR, value: &str) -> Element {
    DataElement::new(tag, vr, PrimitiveValue::from(value))
}

pub fn us(tag: Tag, value: u16) -> Element {
    DataElement::new(tag, VR::US, PrimitiveValue::from(value))
}

pub fn ul(tag: Tag, value: u32) -> Element {
    DataElement::new(tag, VR::UL, PrimitiveValue::from(value))
}

pub fn fd(tag: Tag, value: f64) -> Element {
    DataElement::new(tag, VR::FD, PrimitiveValue::from(value))
}

pub fn sequence(tag: Tag, items: Vec<InMemDicomObject>) -> Element {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

/// A decimal string (DS: at most 16 characters).
pub fn ds(value: f64) -> String {
    let s = format!("{value:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.').to_owned();
    if s.len() <= 16 {
        s
    } else {
        format!("{value:.6e}")
    }
}

/// A code sequence item: (0008,0100) value, (0008,0102) scheme, (0008,0104) meaning.
pub fn code_item(code: Code) -> InMemDicomObject {
    owned_code_item(code.value, code.scheme, code.meaning)
}

pub fn owned_code_item(value: &str, scheme: &str, meaning: &str) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        text(tags::CODE_VALUE, VR::SH, value),
        text(tags::CODING_SCHEME_DESIGNATOR, VR::SH, scheme),
        text(tags::CODE_MEANING, VR::LO, meaning),
    ])
}

/// DICOM DA and TM (UTC) of `t`.
pub fn date_time(t: SystemTime) -> (String, String) {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let micros = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_micros());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    (
        format!("{y:04}{m:02}{d:02}"),
        format!(
            "{:02}{:02}{:02}.{micros:06}",
            rem / 3600,
            (rem / 60) % 60,
            rem % 60
        ),
    )
}

/// Days since 1970-01-01 to (year, month, day) (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Why `name` is not a DICOM PN value, if it is not.
pub fn check_person_name(name: &str) -> Result<(), String> {
    if name.chars().any(|c| c.is_control()) {
        return Err("it holds control characters".into());
    }
    if name.contains('\\') {
        return Err("it holds a backslash (a PN has one value)".into());
    }
    let groups: Vec<&str> = name.split('=').collect();
    if groups.len() > 3 {
        return Err("more than three component groups (=)".into());
    }
    for g in groups {
        if g.chars().count() > 64 {
            return Err("a component group is over 64 characters".into());
        }
        if g.split('^').count() > 5 {
            return Err("more than five components (^)".into());
        }
    }
    Ok(())
}

/// The elements of SOP Common, Patient, General Study and General
/// Equipment, and the not-for-diagnosis notice. `ascii`: whether every
/// text of the object is ASCII (the default repertoire); otherwise the
/// object declares UTF-8 (ISO_IR 192).
pub fn common(
    session: &SessionInfo,
    uids: &SessionUids,
    sop_class: &str,
    instance_uid: &str,
    content: SystemTime,
    ascii: bool,
) -> Vec<Element> {
    let s = &session.subject;
    let (study_date, study_time) = date_time(session.started);
    let (content_date, content_time) = date_time(content);
    let anonymous = !s.for_clinical_use();
    let mut e = Vec::with_capacity(32);
    if !(ascii && session.is_ascii()) {
        // UTF-8: patient names from a source may be in any script.
        e.push(text(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192"));
    }
    e.extend([
        text(tags::SOP_CLASS_UID, VR::UI, sop_class),
        text(tags::SOP_INSTANCE_UID, VR::UI, instance_uid),
        text(tags::STUDY_DATE, VR::DA, &study_date),
        text(tags::STUDY_TIME, VR::TM, &study_time),
        text(tags::CONTENT_DATE, VR::DA, &content_date),
        text(tags::CONTENT_TIME, VR::TM, &content_time),
        text(tags::TIMEZONE_OFFSET_FROM_UTC, VR::SH, "+0000"),
        text(tags::ACCESSION_NUMBER, VR::SH, &s.accession_number),
        text(tags::MANUFACTURER, VR::LO, "sonoflow"),
        text(tags::STATION_NAME, VR::SH, &session.station),
        text(tags::STUDY_DESCRIPTION, VR::LO, &s.study_description),
        text(tags::MANUFACTURER_MODEL_NAME, VR::LO, &session.device_name),
        text(
            tags::SOFTWARE_VERSIONS,
            VR::LO,
            &format!(
                "sonoflow {}; model {}",
                session.software_version, session.model
            ),
        ),
        text(
            tags::REFERRING_PHYSICIAN_NAME,
            VR::PN,
            &s.referring_physician,
        ),
        text(
            tags::PATIENT_NAME,
            VR::PN,
            if anonymous { "" } else { &s.patient_name },
        ),
        text(
            tags::PATIENT_ID,
            VR::LO,
            if anonymous { "" } else { &s.patient_id },
        ),
        text(
            tags::PATIENT_BIRTH_DATE,
            VR::DA,
            if anonymous { "" } else { &s.patient_birth_date },
        ),
        text(
            tags::PATIENT_SEX,
            VR::CS,
            if anonymous { "" } else { &s.patient_sex },
        ),
        text(tags::STUDY_INSTANCE_UID, VR::UI, &uids.study),
        text(tags::STUDY_ID, VR::SH, &s.study_id),
    ]);
    if anonymous {
        // PS3.15 E: the identity is absent; say how.
        e.push(text(tags::PATIENT_IDENTITY_REMOVED, VR::CS, "YES"));
        e.push(text(
            tags::DEIDENTIFICATION_METHOD,
            VR::LO,
            "no patient given to sonoflow: anonymous, not for clinical use",
        ));
    }
    e
}

/// `object` with its Part 10 file meta (Explicit VR Little Endian).
pub fn with_meta(
    object: InMemDicomObject,
    sop_class: &str,
    instance_uid: &str,
) -> Result<DicomFile, ExportError> {
    object
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(EXPLICIT_VR_LE)
                .media_storage_sop_class_uid(sop_class)
                .media_storage_sop_instance_uid(instance_uid)
                .implementation_version_name("SONOFLOW"),
        )
        .map_err(|e| ExportError::Meta(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_and_times_are_utc_dicom() {
        let t = UNIX_EPOCH + Duration::from_secs(1_796_000_000) + Duration::from_micros(250);
        // 2026-11-30T00:53:20Z
        assert_eq!(date_time(t), ("20261130".into(), "005320.000250".into()));
        assert_eq!(date_time(UNIX_EPOCH).0, "19700101");
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn decimal_strings_fit_sixteen_characters() {
        assert_eq!(ds(12.5), "12.5");
        assert_eq!(ds(0.123_456_789), "0.123457");
        assert_eq!(ds(3.0), "3");
        assert!(ds(1.0e20).len() <= 16, "{}", ds(1.0e20));
    }

    #[test]
    fn person_names_are_checked() {
        assert!(check_person_name("Doe^Jane").is_ok());
        assert!(check_person_name("").is_ok());
        assert!(check_person_name("Doe\u{7}^Jane").is_err());
        assert!(check_person_name("a^b^c^d^e^f").is_err());
        assert!(check_person_name(&"x".repeat(65)).is_err());
    }
}
