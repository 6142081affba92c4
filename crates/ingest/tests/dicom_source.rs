//! The DICOM source over its real GStreamer pipeline, on files written here
//! (no test data needed): frames at the file's frame time with the file's
//! calibration, every supported photometric interpretation decoded to the
//! right pixels, row padding, folders played in name order with bad files
//! skipped, a source with nothing playable refused at start, loops, and a
//! transfer syntax this build cannot decode refused by name. The
//! real-scanner files of pydicom-data are run through the binary in the
//! workspace's tests/dicom.rs.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dicom_core::value::{DataSetSequence, PixelFragmentSequence};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject, Tag};
use sonoflow_core::findings::PixelSpacing;
use sonoflow_core::Calibration;
use sonoflow_ingest::{IngestEnd, SourceReport};

/// A hang guard, not a speed limit: a test that reaches it has failed.
const GUARD: Duration = Duration::from_secs(30);

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const JPEG_LS: &str = "1.2.840.10008.1.2.4.80";
const US_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.6.1";

/// A small DICOM file to write: pixels as stored, and what describes them.
struct Spec {
    width: u16,
    height: u16,
    frames: u32,
    photometric: &'static str,
    samples: u16,
    bits: u16,
    bits_stored: u16,
    planar: Option<u16>,
    /// Bytes for 8-bit samples; ignored when `words` is set.
    bytes: Vec<u8>,
    words: Option<Vec<u16>>,
    frame_time_ms: Option<&'static str>,
    /// (inclusive bounds, delta cm) of 2-D regions in cm.
    regions: Vec<([u32; 4], f64)>,
    extra: Vec<DataElement<InMemDicomObject>>,
}

impl Spec {
    fn mono(width: u16, height: u16, frames: u32, bytes: Vec<u8>) -> Self {
        Self {
            width,
            height,
            frames,
            photometric: "MONOCHROME2",
            samples: 1,
            bits: 8,
            bits_stored: 8,
            planar: None,
            bytes,
            words: None,
            frame_time_ms: None,
            regions: Vec::new(),
            extra: Vec::new(),
        }
    }

    fn write(self, path: &Path) {
        let us = |tag: Tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
        let mut elements = vec![
            DataElement::new(
                tags::SOP_CLASS_UID,
                VR::UI,
                PrimitiveValue::from(US_IMAGE_STORAGE),
            ),
            DataElement::new(
                tags::SOP_INSTANCE_UID,
                VR::UI,
                PrimitiveValue::from("2.25.1234"),
            ),
            DataElement::new(tags::MODALITY, VR::CS, PrimitiveValue::from("US")),
            us(tags::SAMPLES_PER_PIXEL, self.samples),
            DataElement::new(
                tags::PHOTOMETRIC_INTERPRETATION,
                VR::CS,
                PrimitiveValue::from(self.photometric),
            ),
            DataElement::new(
                tags::NUMBER_OF_FRAMES,
                VR::IS,
                PrimitiveValue::from(self.frames.to_string()),
            ),
            us(tags::ROWS, self.height),
            us(tags::COLUMNS, self.width),
            us(tags::BITS_ALLOCATED, self.bits),
            us(tags::BITS_STORED, self.bits_stored),
            us(tags::HIGH_BIT, self.bits_stored - 1),
            us(tags::PIXEL_REPRESENTATION, 0),
        ];
        if let Some(p) = self.planar {
            elements.push(us(tags::PLANAR_CONFIGURATION, p));
        }
        if let Some(ms) = self.frame_time_ms {
            elements.push(DataElement::new(
                tags::FRAME_TIME,
                VR::DS,
                PrimitiveValue::from(ms),
            ));
        }
        if !self.regions.is_empty() {
            let items: Vec<InMemDicomObject> = self
                .regions
                .iter()
                .map(|(b, delta)| region(1, *b, *delta))
                .collect();
            elements.push(DataElement::new(
                tags::SEQUENCE_OF_ULTRASOUND_REGIONS,
                VR::SQ,
                DataSetSequence::from(items),
            ));
        }
        elements.extend(self.extra);
        elements.push(match self.words {
            Some(words) => {
                DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(words.into()))
            }
            None => DataElement::new(
                tags::PIXEL_DATA,
                VR::OB,
                PrimitiveValue::U8(self.bytes.into()),
            ),
        });
        InMemDicomObject::from_element_iter(elements)
            .with_meta(FileMetaTableBuilder::new().transfer_syntax(EXPLICIT_LE))
            .expect("meta")
            .write_to_file(path)
            .expect("write DICOM");
    }
}

fn region(format: u16, b: [u32; 4], delta_cm: f64) -> InMemDicomObject {
    let us = |tag: Tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
    let ul = |tag: Tag, v: u32| DataElement::new(tag, VR::UL, PrimitiveValue::from(v));
    let fd = |tag: Tag, v: f64| DataElement::new(tag, VR::FD, PrimitiveValue::from(v));
    InMemDicomObject::from_element_iter([
        us(tags::REGION_SPATIAL_FORMAT, format),
        us(tags::REGION_DATA_TYPE, 1),
        ul(tags::REGION_LOCATION_MIN_X0, b[0]),
        ul(tags::REGION_LOCATION_MIN_Y0, b[1]),
        ul(tags::REGION_LOCATION_MAX_X1, b[2]),
        ul(tags::REGION_LOCATION_MAX_Y1, b[3]),
        us(tags::PHYSICAL_UNITS_X_DIRECTION, 3),
        us(tags::PHYSICAL_UNITS_Y_DIRECTION, 3),
        fd(tags::PHYSICAL_DELTA_X, delta_cm),
        fd(tags::PHYSICAL_DELTA_Y, delta_cm),
    ])
}

/// One frame as ingest delivered it.
struct Got {
    rows: Vec<Vec<u8>>,
    pts: Option<Duration>,
    calibration: Option<Arc<Calibration>>,
}

/// Plays `path` to its end (or `limit` frames), with `extra` source keys.
fn play(path: &Path, extra: &str, limit: usize) -> (Vec<Got>, IngestEnd, SourceReport) {
    let definition = format!(
        "kind = \"dicom\"\npath = {:?}\n{extra}",
        path.to_string_lossy()
    );
    common::play(&definition, limit, GUARD, |frame| Got {
        rows: (0..frame.format.height)
            .map(|y| frame.row(y).to_vec())
            .collect(),
        pts: frame.source_pts,
        calibration: frame.calibration.clone(),
    })
}

const NOT_LIVE: &str = "live = false";

#[test]
fn a_cine_plays_every_frame_at_its_frame_time_with_one_shared_calibration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cine.dcm");
    // 13 columns: GStreamer pads GRAY8 rows to 16 bytes; ingest packs them.
    let (w, h) = (13u16, 4u16);
    let value = |k: usize, x: usize, y: usize| (k * 50 + y * 13 + x) as u8;
    let bytes = (0..3)
        .flat_map(|k| (0..4).flat_map(move |y| (0..13).map(move |x| value(k, x, y))))
        .collect();
    let mut spec = Spec::mono(w, h, 3, bytes);
    spec.frame_time_ms = Some("50");
    spec.regions = vec![([0, 1, 12, 3], 0.01)];
    spec.write(&path);

    let (got, end, report) = play(&path, NOT_LIVE, usize::MAX);
    assert_eq!(end, IngestEnd::EndOfStream);
    assert_eq!(got.len(), 3);
    for (k, frame) in got.iter().enumerate() {
        for (y, row) in frame.rows.iter().enumerate() {
            let want: Vec<u8> = (0..13).map(|x| value(k, x, y)).collect();
            assert_eq!(row, &want, "frame {k} row {y}");
        }
        assert_eq!(frame.pts, Some(Duration::from_millis(50) * k as u32));
    }
    let cal = got[0].calibration.as_ref().expect("calibrated");
    assert!(
        got.iter()
            .all(|f| f.calibration.as_ref().is_some_and(|c| Arc::ptr_eq(c, cal))),
        "one Arc per file, not one per frame"
    );
    let spacing = cal.spacing().expect("spacing");
    assert!((spacing.x_mm - 0.1).abs() < 1e-12 && (spacing.y_mm - 0.1).abs() < 1e-12);
    assert_eq!(report.calibration.source, Some("dicom"));
    assert_eq!(report.calibration.uncalibrated_frames, 0);
    assert_eq!((report.width, report.height), (Some(13), Some(4)));
    assert_eq!(report.format, Some("GRAY8"));
}

#[test]
fn every_supported_photometric_interpretation_decodes_to_its_pixels() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rgba = |frame: &Got| -> Vec<[u8; 4]> {
        frame
            .rows
            .iter()
            .flat_map(|r| r.chunks_exact(4).map(|p| [p[0], p[1], p[2], p[3]]))
            .collect()
    };
    // MONOCHROME1: white is the lowest value.
    let path = dir.path().join("mono1.dcm");
    let mut spec = Spec::mono(2, 1, 1, vec![0, 200]);
    spec.photometric = "MONOCHROME1";
    spec.write(&path);
    let (got, ..) = play(&path, NOT_LIVE, usize::MAX);
    assert_eq!(got[0].rows, vec![vec![255, 55]]);

    // 16-bit MONOCHROME2 with 12 stored bits: the top 8 of them.
    let path = dir.path().join("mono16.dcm");
    let mut spec = Spec::mono(3, 1, 1, Vec::new());
    (spec.bits, spec.bits_stored) = (16, 12);
    spec.words = Some(vec![0, 2048, 4095]);
    spec.write(&path);
    let (got, ..) = play(&path, NOT_LIVE, usize::MAX);
    assert_eq!(got[0].rows, vec![vec![0, 128, 255]]);

    // RGB, both planar configurations, to RGBA.
    for planar in [0, 1] {
        let path = dir.path().join(format!("rgb{planar}.dcm"));
        let mut spec = Spec::mono(3, 1, 1, (1..=9).collect());
        (spec.photometric, spec.samples, spec.planar) = ("RGB", 3, Some(planar));
        spec.write(&path);
        let (got, _, report) = play(&path, "live = false\nformat = \"RGBA\"", usize::MAX);
        assert_eq!(report.format, Some("RGBA"));
        let want = if planar == 0 {
            [[1, 2, 3, 255], [4, 5, 6, 255], [7, 8, 9, 255]]
        } else {
            // Red plane 1 2 3, green 4 5 6, blue 7 8 9.
            [[1, 4, 7, 255], [2, 5, 8, 255], [3, 6, 9, 255]]
        };
        assert_eq!(rgba(&got[0]), want, "planar {planar}");
    }

    // YBR_FULL, uncompressed: grey stays grey, a strong Cr is red.
    let path = dir.path().join("ybr.dcm");
    let mut spec = Spec::mono(2, 1, 1, vec![128, 128, 128, 76, 85, 255]);
    (spec.photometric, spec.samples, spec.planar) = ("YBR_FULL", 3, Some(0));
    spec.write(&path);
    let (got, ..) = play(&path, "live = false\nformat = \"RGBA\"", usize::MAX);
    let px = rgba(&got[0]);
    assert_eq!(px[0], [128, 128, 128, 255]);
    assert!(px[1][0] >= 250 && px[1][1] <= 4 && px[1][2] <= 4, "{px:?}");

    // PALETTE COLOR with 16-bit entries: value v maps to entry v - first.
    let path = dir.path().join("palette.dcm");
    let mut spec = Spec::mono(3, 1, 1, vec![10, 11, 200]);
    spec.photometric = "PALETTE COLOR";
    let descriptor =
        |tag: Tag| DataElement::new(tag, VR::US, PrimitiveValue::U16(vec![4u16, 10, 16].into()));
    let table = |tag: Tag, t: [u16; 4]| {
        DataElement::new(tag, VR::OW, PrimitiveValue::U16(t.to_vec().into()))
    };
    spec.extra = vec![
        descriptor(tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR),
        descriptor(tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR),
        descriptor(tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR),
        table(
            tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            [0xFF00, 0, 0, 0x1000],
        ),
        table(
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            [0, 0xFF00, 0, 0x2000],
        ),
        table(
            tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            [0, 0, 0xFF00, 0x3000],
        ),
    ];
    spec.write(&path);
    let (got, ..) = play(&path, "live = false\nformat = \"RGBA\"", usize::MAX);
    assert_eq!(
        rgba(&got[0]),
        [[255, 0, 0, 255], [0, 255, 0, 255], [16, 32, 48, 255]],
        "200 is past the table: its last entry"
    );
}

#[test]
fn a_folder_plays_in_name_order_skipping_what_cannot_play_and_calibration_follows_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = |name: &str, value: u8, delta: Option<f64>| {
        let mut spec = Spec::mono(4, 2, 2, vec![value; 16]);
        if let Some(d) = delta {
            spec.regions = vec![([0, 0, 3, 1], d)];
        }
        spec.write(&dir.path().join(name));
    };
    good("a.dcm", 10, Some(0.02));
    good("c.dcm", 30, None);
    good("e.dcm", 50, Some(0.04));
    // A corrupt copy: cut short inside its pixel data.
    let bytes = std::fs::read(dir.path().join("a.dcm")).expect("read");
    std::fs::write(dir.path().join("b.dcm"), &bytes[..bytes.len() - 10]).expect("write");
    std::fs::write(dir.path().join("d.txt"), "not DICOM").expect("write");

    let (got, end, report) = play(dir.path(), NOT_LIVE, usize::MAX);
    assert_eq!(end, IngestEnd::EndOfStream);
    let values: Vec<u8> = got.iter().map(|f| f.rows[0][0]).collect();
    assert_eq!(values, [10, 10, 30, 30, 50, 50], "b.dcm and d.txt skipped");
    let spacing: Vec<Option<f64>> = got
        .iter()
        .map(|f| f.calibration.as_deref().and_then(Calibration::spacing))
        .map(|s| s.map(|s: PixelSpacing| (s.x_mm * 1e6).round() / 1e6))
        .collect();
    assert_eq!(
        spacing,
        [Some(0.2), Some(0.2), None, None, Some(0.4), Some(0.4)]
    );
    let pts: Vec<u128> = got
        .iter()
        .map(|f| f.pts.expect("pts").as_millis())
        .collect();
    assert_eq!(
        pts,
        [0, 33, 66, 99, 133, 166],
        "30 fps when none is declared"
    );
    assert_eq!(report.calibration.changes, 3);
    assert_eq!(report.calibration.uncalibrated_frames, 2);
}

#[test]
fn the_definitions_calibration_fills_in_for_a_file_without_regions_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = |name: &str, delta: Option<f64>| {
        let mut spec = Spec::mono(4, 2, 2, vec![7; 16]);
        if let Some(d) = delta {
            spec.regions = vec![([0, 0, 3, 1], d)];
        }
        spec.write(&dir.path().join(name));
    };
    file("a.dcm", Some(0.02));
    file("b.dcm", None);
    std::fs::write(dir.path().join("c.txt"), "not DICOM").expect("write");
    let (got, _, report) = play(
        dir.path(),
        "live = false\n[calibration]\nspacing_mm = 0.5",
        usize::MAX,
    );
    let sources: Vec<(&str, f64)> = got
        .iter()
        .map(|f| {
            let c = f.calibration.as_deref().expect("calibrated");
            (c.source.name(), c.spacing().expect("spacing").x_mm)
        })
        .collect();
    assert_eq!(sources.len(), 4);
    assert_eq!(
        [sources[0].0, sources[1].0, sources[2].0, sources[3].0],
        ["dicom", "dicom", "config", "config"]
    );
    assert!((sources[0].1 - 0.2).abs() < 1e-12 && sources[2].1 == 0.5);
    assert_eq!(report.calibration.uncalibrated_frames, 0);
    assert_eq!(report.skipped, 1, "c.txt, warned by name");
}

#[test]
fn a_source_with_nothing_playable_fails_at_start_naming_each_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("a.dcm");
    Spec::mono(4, 2, 1, vec![1; 8]).write(&path);
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("truncate");
    std::fs::write(dir.path().join("b.dcm"), "not DICOM").expect("write");
    let err = common::ingest(&format!(
        "kind = \"dicom\"\npath = {:?}",
        dir.path().to_string_lossy()
    ))
    .err()
    .expect("nothing to play is an error at start");
    assert!(!err.is_transient());
    let text = err.to_string();
    for needle in ["a.dcm: ", "b.dcm: ", "not a readable DICOM file", "fix:"] {
        assert!(text.contains(needle), "{needle:?} in {text}");
    }
    let empty = tempfile::tempdir().expect("tempdir");
    let err = common::ingest(&format!(
        "kind = \"dicom\"\npath = {:?}",
        empty.path().to_string_lossy()
    ))
    .err()
    .expect("an empty folder");
    assert!(err.to_string().contains("holds no files"), "{err}");
    let err = common::ingest("kind = \"dicom\"\npath = \"/nonexistent/scan.dcm\"")
        .err()
        .expect("a missing path");
    assert!(err.to_string().contains("cannot be read"), "{err}");
}

#[test]
fn a_transfer_syntax_this_build_cannot_decode_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jpegls.dcm");
    let us = |tag: Tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
    InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::SOP_CLASS_UID,
            VR::UI,
            PrimitiveValue::from(US_IMAGE_STORAGE),
        ),
        DataElement::new(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from("2.25.99"),
        ),
        us(tags::SAMPLES_PER_PIXEL, 1),
        DataElement::new(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            PrimitiveValue::from("MONOCHROME2"),
        ),
        us(tags::ROWS, 2),
        us(tags::COLUMNS, 2),
        us(tags::BITS_ALLOCATED, 8),
        us(tags::BITS_STORED, 8),
        us(tags::HIGH_BIT, 7),
        us(tags::PIXEL_REPRESENTATION, 0),
        DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            PixelFragmentSequence::new(Vec::<u32>::new(), vec![vec![0xFF, 0xD8, 0xFF, 0xD9]]),
        ),
    ])
    .with_meta(FileMetaTableBuilder::new().transfer_syntax(JPEG_LS))
    .expect("meta")
    .write_to_file(&path)
    .expect("write");
    let err = common::ingest(&format!(
        "kind = \"dicom\"\npath = {:?}",
        path.to_string_lossy()
    ))
    .err()
    .expect("refused");
    let text = err.to_string();
    assert!(
        text.contains("jpegls.dcm: transfer syntax JPEG-LS")
            && text.contains("cannot be decoded by this build"),
        "{text}"
    );
}

#[test]
fn loop_starts_again_after_the_last_frame_and_time_runs_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cine.dcm");
    let mut spec = Spec::mono(4, 1, 3, (0..12).collect());
    spec.frame_time_ms = Some("10");
    spec.write(&path);
    let (got, end, _) = play(&path, "live = false\nloop = true", 7);
    assert_eq!(end, IngestEnd::Stopped);
    let firsts: Vec<u8> = got.iter().map(|f| f.rows[0][0]).collect();
    assert_eq!(firsts, [0, 4, 8, 0, 4, 8, 0]);
    assert_eq!(got[6].pts, Some(Duration::from_millis(60)));
}

#[test]
fn a_live_file_is_never_played_faster_than_its_frame_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cine.dcm");
    let mut spec = Spec::mono(8, 8, 6, vec![7; 6 * 64]);
    spec.frame_time_ms = Some("40");
    spec.write(&path);
    let started = Instant::now();
    let (got, end, report) = play(&path, "", usize::MAX);
    assert_eq!(end, IngestEnd::EndOfStream, "a live file still ends");
    assert!(
        got.len() as u64 + report.lost_before_ingest == 6,
        "every frame delivered or counted lost: {report:?}"
    );
    // Six frames 40 ms apart span at least 200 ms of their own time.
    assert!(started.elapsed() >= Duration::from_millis(190));
    assert_eq!(report.restarts, 0, "its end is not a loss to restart from");
}

/// A 320x240 screen: speckle in x 40..260, y 20..220, and (`ruler`) a depth
/// ruler beside it at x 266: a tick every 20 px from row 20, long ones every
/// second (ticks every 5 mm, long every cm: 0.25 mm/px).
fn screen(ruler: bool) -> Vec<u8> {
    let (w, h) = (320usize, 240usize);
    let mut px = vec![0u8; w * h];
    let mut seed = 0x9e37_79b9_u32;
    for y in 20..220 {
        for x in 40..260 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            px[y * w + x] = (seed >> 24) as u8 / 2 + 16;
        }
    }
    if ruler {
        for k in 0..10 {
            let y = 20 + 20 * k;
            let len = if k % 2 == 0 { 8 } else { 4 };
            for row in [y, y + 1] {
                px[row * w + 266..row * w + 266 + len].fill(220);
            }
        }
    }
    px
}

#[test]
fn each_files_stated_spacing_is_checked_once_against_its_ruler_and_still_carried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = |name: &str, ruler: bool, delta_cm: Option<f64>| {
        let mut spec = Spec::mono(320, 240, 1, screen(ruler));
        if let Some(d) = delta_cm {
            spec.regions = vec![([40, 20, 259, 219], d)];
        }
        spec.write(&dir.path().join(name));
    };
    file("a-agrees.dcm", true, Some(0.025));
    file("b-disagrees.dcm", true, Some(0.03));
    file("c-no-ruler.dcm", false, Some(0.025));
    file("d-no-regions.dcm", true, None);
    // Twice round the folder: checked on the first pass only.
    let (got, _, report) = play(dir.path(), "live = false\nloop = true", 8);
    assert_eq!(got.len(), 8);
    let checks = &report.calibration.ruler_checks;
    let seen: Vec<(&str, &str)> = checks
        .iter()
        .map(|c| (c.file.as_str(), c.verdict.name()))
        .collect();
    assert_eq!(
        seen,
        [
            ("a-agrees.dcm", "agrees"),
            ("b-disagrees.dcm", "disagrees"),
            ("c-no-ruler.dcm", "cannot_tell"),
        ]
    );
    let pct = |i: usize| checks[i].difference_pct.expect("a difference");
    assert!(pct(0).abs() < 0.5, "{:?}", checks[0]);
    assert!((pct(1) + 16.67).abs() < 0.5, "{:?}", checks[1]);
    assert!((checks[1].declared_mm - 0.3).abs() < 1e-12);
    assert!((checks[1].ruler_mm.expect("ruler") - 0.25).abs() < 0.002);
    assert!(checks[2].ruler_mm.is_none() && checks[2].difference_pct.is_none());
    assert!(
        checks[2].reason.contains("no depth ruler"),
        "{:?}",
        checks[2]
    );
    // The stated spacing is what frames carry, whatever the ruler says.
    let carried = got[1].calibration.as_deref().and_then(Calibration::spacing);
    assert!((carried.expect("calibrated").y_mm - 0.3).abs() < 1e-12);
    let json = serde_json::to_value(&report).expect("json");
    let first = &json["calibration"]["ruler_checks"][0];
    for key in [
        "file",
        "declared_mm",
        "ruler_mm",
        "difference_pct",
        "major_tick_mm",
        "verdict",
        "reason",
    ] {
        assert!(first.get(key).is_some(), "{key}: {first}");
    }
    assert_eq!(first["verdict"], "agrees");
}
