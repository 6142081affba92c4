//! The objects of a keyframe, written as Part 10 files and read back: by
//! dicom-rs (every type 1 attribute of the IODs' modules present and not
//! empty; the SR's numbers equal the calipers; the references resolve) and
//! by dcmtk's `dsrdump` (parses the SR without a warning or an error;
//! scripts/bootstrap.sh installs Debian's `dcmtk`: without it this test
//! fails saying so).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::{open_file, InMemDicomObject};
mod common;

use common::{calibration, findings, session, H, W};
use sonoflow_core::annotations::AiVerdict;
use sonoflow_core::{FrameId, PixelFormat};
use sonoflow_dicom_export::{
    write_part10, Exporter, Keyframe, Picture, ReportText, SessionUids, Subject,
    COMPREHENSIVE_SR_STORAGE, US_IMAGE_STORAGE,
};

fn text(o: &InMemDicomObject, tag: Tag) -> String {
    o.element(tag)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_owned())
        .unwrap_or_default()
}

fn items(o: &InMemDicomObject, tag: Tag) -> Vec<InMemDicomObject> {
    o.element(tag)
        .ok()
        .and_then(|e| e.items().map(<[_]>::to_vec))
        .unwrap_or_default()
}

/// Every type 1 attribute of the modules this crate writes: present, not empty.
fn assert_type1(o: &InMemDicomObject, list: &[(Tag, &str)], what: &str) {
    for (tag, name) in list {
        let value = text(o, *tag);
        let present = o.element(*tag).is_ok();
        let is_sequence = o.element(*tag).ok().and_then(|e| e.items()).is_some();
        assert!(
            present && (is_sequence || !value.is_empty()),
            "{what}: type 1 attribute {name} {tag} missing or empty"
        );
    }
}

const COMMON_TYPE1: &[(Tag, &str)] = &[
    (tags::SOP_CLASS_UID, "SOP Class UID"),
    (tags::SOP_INSTANCE_UID, "SOP Instance UID"),
    (tags::STUDY_INSTANCE_UID, "Study Instance UID"),
    (tags::MODALITY, "Modality"),
    (tags::SERIES_INSTANCE_UID, "Series Instance UID"),
];
const IMAGE_TYPE1: &[(Tag, &str)] = &[
    (tags::SAMPLES_PER_PIXEL, "Samples per Pixel"),
    (
        tags::PHOTOMETRIC_INTERPRETATION,
        "Photometric Interpretation",
    ),
    (tags::ROWS, "Rows"),
    (tags::COLUMNS, "Columns"),
    (tags::BITS_ALLOCATED, "Bits Allocated"),
    (tags::BITS_STORED, "Bits Stored"),
    (tags::HIGH_BIT, "High Bit"),
    (tags::PIXEL_REPRESENTATION, "Pixel Representation"),
    (tags::PIXEL_DATA, "Pixel Data"),
    (tags::PLANAR_CONFIGURATION, "Planar Configuration (RGB)"),
    (
        tags::SEQUENCE_OF_ULTRASOUND_REGIONS,
        "Sequence of Ultrasound Regions",
    ),
];
const SR_TYPE1: &[(Tag, &str)] = &[
    (tags::INSTANCE_NUMBER, "Instance Number"),
    (tags::COMPLETION_FLAG, "Completion Flag"),
    (tags::VERIFICATION_FLAG, "Verification Flag"),
    (tags::CONTENT_DATE, "Content Date"),
    (tags::CONTENT_TIME, "Content Time"),
    (tags::VALUE_TYPE, "Value Type"),
    (
        tags::CONCEPT_NAME_CODE_SEQUENCE,
        "Concept Name Code Sequence",
    ),
    (tags::CONTINUITY_OF_CONTENT, "Continuity Of Content"),
    (tags::CONTENT_SEQUENCE, "Content Sequence"),
    (
        tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE,
        "Current Requested Procedure Evidence Sequence",
    ),
];

/// Every NUM in the content tree: (concept meaning, value, path).
fn nums(items_: &[InMemDicomObject], path: &mut Vec<u32>, out: &mut Vec<(String, f64, Vec<u32>)>) {
    for (i, item) in items_.iter().enumerate() {
        path.push(i as u32 + 1);
        if text(item, tags::VALUE_TYPE) == "NUM" {
            let concept = items(item, tags::CONCEPT_NAME_CODE_SEQUENCE)
                .first()
                .map(|c| text(c, tags::CODE_MEANING))
                .unwrap_or_default();
            let value = items(item, tags::MEASURED_VALUE_SEQUENCE)
                .first()
                .map(|m| text(m, tags::NUMERIC_VALUE))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(f64::NAN);
            out.push((concept, value, path.clone()));
        }
        nums(&items(item, tags::CONTENT_SEQUENCE), path, out);
        path.pop();
    }
}

fn dsrdump(path: &Path) -> String {
    let out = Command::new("dsrdump")
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!("dsrdump (Debian package dcmtk, installed by scripts/bootstrap.sh) could not run: {e}")
        });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "dsrdump failed on {}:\n{stderr}",
        path.display()
    );
    assert!(
        !stderr.contains("W:") && !stderr.contains("E:"),
        "dsrdump complained about {}:\n{stderr}",
        path.display()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_keyframe_becomes_a_us_image_pair_and_a_tid1500_report_that_dcmtk_reads() {
    let dir = tempfile::tempdir().expect("temp dir");
    let f = findings();
    let cal = calibration();
    let rgba: Vec<u8> = (0..W * H * 4).map(|i| (i % 251) as u8).collect();
    let gray: Vec<u8> = (0..W * H).map(|i| (i % 253) as u8).collect();
    let attributes = vec![
        ("shape".to_owned(), "oval".to_owned()),
        ("echo pattern".to_owned(), "hypoechoic".to_owned()),
    ];
    let text_ =
        "An oval, circumscribed, hypoechoic mass measuring 12.4 x 8.1 mm. Assessment: BI-RADS 3.";
    let keyframe = Keyframe {
        frame: FrameId(42),
        captured: UNIX_EPOCH + Duration::from_secs(1_796_000_100),
        shown: Picture {
            width: W,
            height: H,
            format: PixelFormat::Rgba,
            data: &rgba,
            burned_in: true,
        },
        clean: Some(Picture {
            width: W,
            height: H,
            format: PixelFormat::Gray8,
            data: &gray,
            burned_in: false,
        }),
        calibration: Some(&cal),
        findings: &f,
        finding_label: "mass",
        report: Some(ReportText {
            text: text_,
            attributes: &attributes,
            long_axis_mm: Some(12.4),
            short_axis_mm: Some(8.1),
        }),
    };
    let uids = SessionUids::new(None, b"test session").expect("uids");
    let mut exporter = Exporter::new(session(Subject::default()), uids).expect("exporter");
    let objects = exporter.keyframe(&keyframe).expect("objects");
    assert_eq!(objects.images.len(), 2);
    let paths: Vec<_> = objects
        .all()
        .map(|o| write_part10(o, dir.path()).expect("write"))
        .collect();

    // The images: US Image Storage, the shown one RGB with the overlay.
    let shown = open_file(&paths[0]).expect("read the shown image");
    let clean = open_file(&paths[1]).expect("read the clean image");
    for (o, what) in [(&*shown, "shown image"), (&*clean, "clean image")] {
        assert_eq!(text(o, tags::SOP_CLASS_UID), US_IMAGE_STORAGE);
        assert_type1(o, COMMON_TYPE1, what);
        let list: Vec<_> = IMAGE_TYPE1
            .iter()
            .copied()
            .filter(|(t, _)| *t != tags::PLANAR_CONFIGURATION || o == &*shown)
            .collect();
        assert_type1(o, &list, what);
        assert!(text(o, tags::IMAGE_COMMENTS).starts_with("NOT FOR DIAGNOSIS"));
        assert_eq!(text(o, tags::PATIENT_IDENTITY_REMOVED), "YES", "anonymous");
        assert_eq!(text(o, tags::PATIENT_NAME), "");
        let region = &items(o, tags::SEQUENCE_OF_ULTRASOUND_REGIONS)[0];
        let delta = region
            .element(tags::PHYSICAL_DELTA_X)
            .expect("delta")
            .to_float64()
            .expect("number");
        assert!((delta - 0.05).abs() < 1e-12, "0.5 mm/px is 0.05 cm/px");
    }
    assert_eq!(text(&shown, tags::PHOTOMETRIC_INTERPRETATION), "RGB");
    assert_eq!(text(&shown, tags::BURNED_IN_ANNOTATION), "YES");
    assert_eq!(
        text(&clean, tags::PHOTOMETRIC_INTERPRETATION),
        "MONOCHROME2"
    );
    assert_eq!(
        text(&shown, tags::STUDY_INSTANCE_UID),
        text(&clean, tags::STUDY_INSTANCE_UID)
    );

    // The SR: one study with the images, its numbers the calipers'.
    let sr = open_file(&paths[2]).expect("read the SR");
    assert_eq!(text(&sr, tags::SOP_CLASS_UID), COMPREHENSIVE_SR_STORAGE);
    assert_type1(&sr, COMMON_TYPE1, "SR");
    assert_type1(&sr, SR_TYPE1, "SR");
    assert_eq!(text(&sr, tags::VERIFICATION_FLAG), "UNVERIFIED");
    assert_eq!(
        text(&sr, tags::STUDY_INSTANCE_UID),
        text(&shown, tags::STUDY_INSTANCE_UID)
    );
    assert_ne!(
        text(&sr, tags::SERIES_INSTANCE_UID),
        text(&shown, tags::SERIES_INSTANCE_UID)
    );
    let mut found = Vec::new();
    nums(
        &items(&sr, tags::CONTENT_SEQUENCE),
        &mut vec![1],
        &mut found,
    );
    let long = found
        .iter()
        .find(|n| n.0 == "Long Axis")
        .expect("long axis");
    let short = found
        .iter()
        .find(|n| n.0 == "Short Axis")
        .expect("short axis");
    assert_eq!((long.1, short.1), (12.4, 8.1), "the calipers' mm");
    assert!(found
        .iter()
        .any(|n| n.0.starts_with("Caliper uncertainty") && n.1 == 0.3));

    // The impression's numbers point at those NUMs.
    let dump = dsrdump(&paths[2]);
    assert!(dump.contains("Imaging Measurement Report"), "{dump}");
    assert!(dump.contains("12.4"), "{dump}");
    fn refs(items_: &[InMemDicomObject], out: &mut Vec<Vec<u32>>) {
        for item in items_ {
            if let Ok(e) = item.element(tags::REFERENCED_CONTENT_ITEM_IDENTIFIER) {
                out.push(e.to_multi_int::<u32>().expect("UL path"));
            }
            refs(&items(item, tags::CONTENT_SEQUENCE), out);
        }
    }
    let mut by_ref = Vec::new();
    refs(&items(&sr, tags::CONTENT_SEQUENCE), &mut by_ref);
    assert_eq!(by_ref, vec![long.2.clone(), short.2.clone()], "{dump}");
}

#[test]
fn invalid_ai_output_and_an_uncalibrated_frame_store_no_numbers_and_say_why() {
    let dir = tempfile::tempdir().expect("temp dir");
    let gray = vec![0u8; (W * H) as usize];
    let shown = Picture {
        width: W,
        height: H,
        format: PixelFormat::Gray8,
        data: &gray,
        burned_in: true,
    };
    let mut invalid = findings();
    invalid.verdict = AiVerdict::InvalidOutput;
    invalid.findings.clear();
    let mut uncalibrated = findings();
    for f in &mut uncalibrated.findings {
        f.long_axis = None;
        f.short_axis = None;
    }
    let subject = Subject {
        patient_name: "Doe^Jane".into(),
        patient_id: "P-1".into(),
        clinical: true,
        ..Subject::default()
    };
    let mut exporter = Exporter::new(
        session(subject),
        SessionUids::new(Some("1.2.826.0.1.3680043.10.999"), b"s").expect("uids"),
    )
    .expect("exporter");
    for (f, says) in [
        (&invalid, "AI output invalid"),
        (&uncalibrated, "uncalibrated frame"),
    ] {
        let keyframe = Keyframe {
            frame: FrameId(7),
            captured: UNIX_EPOCH,
            shown,
            clean: None,
            calibration: None,
            findings: f,
            finding_label: "lesion",
            report: None,
        };
        let objects = exporter.keyframe(&keyframe).expect("objects");
        let path = write_part10(&objects.sr, dir.path()).expect("write");
        let dump = dsrdump(&path);
        assert!(dump.contains(says), "{dump}");
        let sr = open_file(&path).expect("read");
        let mut found = Vec::new();
        nums(
            &items(&sr, tags::CONTENT_SEQUENCE),
            &mut vec![1],
            &mut found,
        );
        assert!(found.is_empty(), "no numbers: {found:?}");
        assert_eq!(
            text(&sr, tags::PATIENT_NAME),
            "Doe^Jane",
            "a given patient is kept"
        );
        assert!(text(&sr, tags::SOP_INSTANCE_UID).starts_with("1.2.826.0.1.3680043.10.999."));
        let image = write_part10(&objects.images[0], dir.path()).expect("write");
        let image = open_file(&image).expect("read");
        assert!(
            image.element(tags::SEQUENCE_OF_ULTRASOUND_REGIONS).is_err(),
            "no calibration, no regions"
        );
    }
    let err = Exporter::new(
        session(Subject {
            patient_name: "Doe\u{1b}^Jane".into(),
            ..Subject::default()
        }),
        SessionUids::new(None, b"s").expect("uids"),
    )
    .expect_err("control characters");
    assert!(err.to_string().contains("patient name"), "{err}");
}
