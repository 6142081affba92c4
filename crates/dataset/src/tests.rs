//! Datasets written into a temporary folder with the `image` crate, listed
//! and loaded.

use std::path::Path;

use image::{GrayImage, ImageBuffer, Luma, Rgb, RgbImage, Rgba, RgbaImage};
use sonoflow_core::annotations::{FindingKind, FrameFinding};
use sonoflow_core::findings::{label, GroundTruth, ImageRegion, PixelSpacing};
use sonoflow_core::{CalibrationSource, FrameFindings, PixelFormat};
use sonoflow_perception::accuracy::{Accuracy, FrameScore};
use sonoflow_perception::FrameMask;
use tempfile::TempDir;

use super::*;

fn grey(path: &Path, width: u32, height: u32, value: impl Fn(u32, u32) -> u8) {
    GrayImage::from_fn(width, height, |x, y| Luma([value(x, y)]))
        .save(path)
        .expect("write a test image");
}

/// A plain 8x6 grey PNG (or JPEG, BMP: by extension).
fn image(dir: &Path, name: &str) {
    grey(&dir.join(name), 8, 6, |x, y| (x * 10 + y) as u8);
}

fn disc(cx: f32, cy: f32, r: f32) -> impl Fn(u32, u32) -> u8 {
    move |x, y| {
        let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
        if dx * dx + dy * dy <= r * r {
            255
        } else {
            0
        }
    }
}

fn names(dataset: &Dataset) -> Vec<String> {
    dataset
        .items()
        .iter()
        .map(|i| listing::display_relative(&i.relative))
        .collect()
}

fn file_names(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|p| {
            p.file_name()
                .expect("a file")
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

#[test]
fn images_play_in_natural_name_order_and_masks_are_never_images() {
    let dir = TempDir::new().expect("tempdir");
    for name in [
        "frame_10.png",
        "frame_2.PNG",
        "frame_1.jpg",
        "frame_1_mask.png",
        "b.bmp",
        "a.jpeg",
        ".hidden.png",
    ] {
        image(dir.path(), name);
    }
    std::fs::write(dir.path().join("notes.txt"), "not an image").expect("write");
    let dataset = Dataset::open(dir.path()).expect("a dataset");
    assert_eq!(dataset.kind(), DatasetKind::Images);
    assert_eq!(dataset.root(), dir.path());
    assert_eq!(
        names(&dataset),
        [
            "a.jpeg",
            "b.bmp",
            "frame_1.jpg",
            "frame_2.PNG",
            "frame_10.png"
        ]
    );
    assert_eq!(file_names(&dataset.items()[2].masks), ["frame_1_mask.png"]);
    assert!(dataset.items().iter().all(|i| i.class.is_none()));
}

#[test]
fn masks_are_ordered_unnumbered_first_then_by_number() {
    let dir = TempDir::new().expect("tempdir");
    for name in [
        "a.png",
        "a_mask_2.png",
        "a_mask.png",
        "a_mask_10.png",
        "a_mask_1.png",
        "b.png",
        "c_mask.png",
    ] {
        image(dir.path(), name);
    }
    let dataset = Dataset::open(dir.path()).expect("a dataset");
    assert_eq!(names(&dataset), ["a.png", "b.png"]);
    assert_eq!(
        file_names(&dataset.items()[0].masks),
        [
            "a_mask.png",
            "a_mask_1.png",
            "a_mask_2.png",
            "a_mask_10.png"
        ]
    );
    assert!(dataset.items()[1].masks.is_empty());
}

#[test]
fn class_sub_folders_name_the_class_of_everything_below_them() {
    let dir = TempDir::new().expect("tempdir");
    for sub in ["benign", "malignant", "benign/2019", ".trash"] {
        std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
    }
    for name in [
        "root.png",
        "benign/benign (1).png",
        "benign/benign (1)_mask.png",
        "benign/2019/old.png",
        "malignant/malignant (1).png",
        ".trash/gone.png",
    ] {
        image(dir.path(), name);
    }
    let dataset = Dataset::open(dir.path()).expect("a dataset");
    let classes: Vec<(String, Option<String>)> = dataset
        .items()
        .iter()
        .map(|i| (listing::display_relative(&i.relative), i.class.clone()))
        .collect();
    let class = |s: &str| Some(s.to_owned());
    assert_eq!(
        classes,
        [
            ("benign/2019/old.png".to_owned(), class("benign")),
            ("benign/benign (1).png".to_owned(), class("benign")),
            ("malignant/malignant (1).png".to_owned(), class("malignant")),
            ("root.png".to_owned(), None),
        ]
    );
    assert_eq!(dataset.items()[1].masks.len(), 1);
}

#[test]
fn a_pattern_takes_matching_images_of_one_folder_with_their_masks() {
    let dir = TempDir::new().expect("tempdir");
    std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
    for name in [
        "a1.png",
        "a2.png",
        "a2_mask.png",
        "a10.jpg",
        "b1.png",
        "sub/a3.png",
    ] {
        image(dir.path(), name);
    }
    let open = |p: &str| Dataset::open(&dir.path().join(p));
    let star = open("a*.png").expect("matches");
    assert_eq!(names(&star), ["a1.png", "a2.png"]);
    assert_eq!(file_names(&star.items()[1].masks), ["a2_mask.png"]);
    assert_eq!(star.root(), dir.path());
    assert_eq!(names(&open("a?.*").expect("matches")), ["a1.png", "a2.png"]);
    assert_eq!(names(&open("*").expect("matches")).len(), 4);
    match open("z*.png") {
        Err(DatasetError::Empty { looked_for, .. }) => assert!(looked_for.contains("z*.png")),
        other => panic!("expected Empty, got {other:?}"),
    }
    assert!(matches!(
        open("*/a3.png"),
        Err(DatasetError::Pattern { .. })
    ));
    assert!(matches!(
        open("missing/*.png"),
        Err(DatasetError::NotFound { .. })
    ));
    assert!(matches!(
        open("nothing.png"),
        Err(DatasetError::NotFound { .. })
    ));
    let one = open("a2.png").expect("one image");
    assert_eq!(names(&one), ["a2.png"]);
    assert_eq!(one.items()[0].masks.len(), 1);
    assert!(matches!(
        open("a2_mask.png"),
        Err(DatasetError::Empty { .. })
    ));
}

#[test]
fn an_empty_folder_or_one_of_masks_only_is_an_error_naming_what_was_looked_for() {
    let dir = TempDir::new().expect("tempdir");
    let err = Dataset::open(dir.path()).expect_err("empty");
    let text = err.to_string();
    assert!(text.contains(&dir.path().display().to_string()), "{text}");
    assert!(text.contains(".png, .jpg, .jpeg or .bmp"), "{text}");
    image(dir.path(), "x_mask.png");
    std::fs::write(dir.path().join("readme.txt"), "hello").expect("write");
    assert!(matches!(
        Dataset::open(dir.path()),
        Err(DatasetError::Empty { .. })
    ));
}

#[test]
fn frames_decode_to_gray8_or_rgba_and_16_bits_become_8() {
    let dir = TempDir::new().expect("tempdir");
    let d = dir.path();
    ImageBuffer::<Luma<u16>, Vec<u16>>::from_fn(4, 3, |x, _| {
        Luma([[0, 257 * 100, 65535, 1][x as usize]])
    })
    .save(d.join("a_deep.png"))
    .expect("write");
    RgbImage::from_fn(5, 2, |x, _| Rgb([x as u8, 0, 200]))
        .save(d.join("b_colour.png"))
        .expect("write");
    grey(&d.join("c_grey.jpg"), 16, 8, |_, _| 128);
    RgbImage::from_fn(3, 3, |_, _| Rgb([10, 20, 30]))
        .save(d.join("d_colour.bmp"))
        .expect("write");
    let dataset = Dataset::open(d).expect("a dataset");
    let samples: Vec<Sample> = dataset
        .items()
        .iter()
        .map(|i| i.load(0, None).expect("loads"))
        .collect();
    let format = |s: &Sample| (s.format.pixel, s.format.width, s.format.height);
    assert_eq!(format(&samples[0]), (PixelFormat::Gray8, 4, 3));
    assert_eq!(&samples[0].pixels[..4], &[0, 100, 255, 0]);
    assert_eq!(format(&samples[1]), (PixelFormat::Rgba, 5, 2));
    assert_eq!(&samples[1].pixels[4..8], &[1, 0, 200, 255]);
    assert_eq!(format(&samples[2]), (PixelFormat::Gray8, 16, 8));
    assert!(samples[2].pixels.iter().all(|&v| v.abs_diff(128) <= 2));
    assert_eq!(format(&samples[3]), (PixelFormat::Rgba, 3, 3));
    assert_eq!(&samples[3].pixels[..4], &[10, 20, 30, 255]);
    for s in &samples {
        assert_eq!(s.pixels.len(), s.format.len());
        assert_eq!((&s.calibration, &s.truth), (&None, &None));
    }
}

#[test]
fn a_corrupt_image_fails_alone_and_names_its_file() {
    let dir = TempDir::new().expect("tempdir");
    image(dir.path(), "a.png");
    std::fs::write(dir.path().join("b.png"), b"\x89PNG\r\n\x1a\nnot really").expect("write");
    image(dir.path(), "c.png");
    let dataset = Dataset::open(dir.path()).expect("a dataset");
    let loaded: Vec<_> = dataset.items().iter().map(|i| i.load(0, None)).collect();
    assert!(loaded[0].is_ok() && loaded[2].is_ok());
    let err = loaded[1].as_ref().expect_err("corrupt");
    assert!(matches!(err, ItemError::Image { .. }), "{err}");
    assert_eq!(err.path(), dir.path().join("b.png"));
    assert!(err.to_string().contains("Fix:"), "{err}");
}

#[test]
fn a_sidecar_gives_spacing_and_region_and_wins_over_the_fixed_calibration() {
    let dir = TempDir::new().expect("tempdir");
    for name in ["a.png", "b.png", "c.png", "d.png"] {
        grey(&dir.path().join(name), 40, 30, |_, _| 50);
    }
    let write =
        |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("write");
    write(
        "a.json",
        r#"{"spacing_mm": [0.1, 0.12], "region": [2, 3, 38, 28]}"#,
    );
    write("c.json", r#"{"spacing_mm": 0.1, "regoin": [0, 0, 10, 10]}"#);
    write("d.json", r#"{"spacing_mm": 0.1,"#);
    let fixed = Calibration::single(
        ImageRegion::Rect {
            x0: 0,
            y0: 0,
            x1: 40,
            y1: 30,
        },
        Some(PixelSpacing::isotropic(0.3)),
        CalibrationSource::Config,
        0.01,
    );
    let dataset = Dataset::open(dir.path()).expect("a dataset");
    let items = dataset.items();
    let a = items[0].load(0, Some(&fixed)).expect("a loads");
    let cal = a.calibration.expect("a sidecar calibration");
    assert_eq!(
        cal.spacing(),
        Some(PixelSpacing {
            x_mm: 0.1,
            y_mm: 0.12
        })
    );
    assert_eq!(
        cal.region(),
        Some(ImageRegion::Rect {
            x0: 2,
            y0: 3,
            x1: 38,
            y1: 28
        })
    );
    assert_eq!(
        items[1].load(0, Some(&fixed)).expect("b").calibration,
        Some(fixed.clone())
    );
    assert_eq!(items[1].load(0, None).expect("b").calibration, None);
    match items[2].load(0, Some(&fixed)) {
        Err(ItemError::Sidecar { path, issue }) => {
            assert_eq!(path, dir.path().join("c.json"));
            assert_eq!(issue.key, "regoin");
        }
        other => panic!("expected a sidecar error, got {other:?}"),
    }
    let d = items[3].load(0, None).expect_err("bad JSON");
    assert!(d.to_string().contains("not valid JSON"), "{d}");
}

#[test]
fn masks_become_truth_with_calipers_measured_as_the_product_measures() {
    let dir = TempDir::new().expect("tempdir");
    let d = dir.path();
    grey(&d.join("a.png"), 100, 80, |_, _| 60);
    grey(&d.join("a_mask.png"), 100, 80, disc(50.0, 40.0, 20.0));
    // A second lesion overlapping the first: the first keeps the overlap.
    grey(&d.join("a_mask_1.png"), 100, 80, |x, y| {
        u8::from((65..90).contains(&x) && (30..50).contains(&y)) * 255
    });
    std::fs::write(d.join("a.json"), r#"{"spacing_mm": 0.1}"#).expect("write");
    let sample = Dataset::open(d).expect("a dataset").items()[0]
        .load(7, None)
        .expect("loads");
    let truth = sample.truth.expect("truth from masks");
    assert_eq!(truth.frame_index, 7);
    assert_eq!(truth.pixel_spacing, PixelSpacing::isotropic(0.1));
    assert_eq!(truth.lesions.len(), 2);
    let (disc, bar) = (&truth.lesions[0], &truth.lesions[1]);
    assert_eq!((disc.id, disc.label), (0, label::LESION_BASE));
    assert_eq!((bar.id, bar.label), (1, label::LESION_BASE + 1));
    assert_eq!(disc.class, DEFAULT_CLASS);
    assert_eq!(disc.assessment, UNASSESSED);
    assert!(disc.attributes.is_empty());
    // A 40-pixel disc: 4 mm across at 0.1 mm, within a pixel both ways.
    for axis in [disc.long_axis, disc.short_axis] {
        assert!((axis.length_mm - 4.0).abs() <= 0.1, "{axis:?}");
        assert!((f64::from(axis.a.distance(axis.b)) * 0.1 - axis.length_mm).abs() < 1e-6);
    }
    assert_eq!(
        (disc.bbox.x0, disc.bbox.y0, disc.bbox.x1, disc.bbox.y1),
        (30.0, 20.0, 70.0, 60.0)
    );
    let area = (std::f64::consts::PI * 400.0) as i64;
    assert!(
        (i64::from(disc.area_px) - area).abs() < 30,
        "{}",
        disc.area_px
    );
    // The bar's own area and box, though the disc took part of it in the map.
    assert_eq!(bar.area_px, 25 * 20);
    assert_eq!((bar.bbox.x0, bar.bbox.x1), (65.0, 90.0));
    assert_eq!(truth.labels.get(50, 40), label::LESION_BASE);
    assert_eq!(truth.labels.get(66, 40), label::LESION_BASE);
    assert_eq!(truth.labels.get(80, 40), label::LESION_BASE + 1);
    assert_eq!(truth.labels.get(5, 5), label::BACKGROUND);
    assert!((bar.long_axis.length_mm - 0.1 * (25f64.hypot(20.0))).abs() <= 0.1);
}

#[test]
fn without_a_spacing_the_truth_has_no_millimetres_but_scores_dice_and_detection() {
    let dir = TempDir::new().expect("tempdir");
    let d = dir.path();
    grey(&d.join("a.png"), 60, 40, |_, _| 60);
    grey(&d.join("a_mask.png"), 60, 40, disc(30.0, 20.0, 10.0));
    let sample = Dataset::open(d).expect("a dataset").items()[0]
        .load(0, None)
        .expect("loads");
    assert_eq!(sample.calibration, None);
    let truth = sample.truth.expect("truth");
    assert!(truth.pixel_spacing.x_mm.is_nan() && truth.pixel_spacing.y_mm.is_nan());
    assert_eq!(
        truth.region,
        ImageRegion::Rect {
            x0: 0,
            y0: 0,
            x1: 60,
            y1: 40
        }
    );
    let lesion = &truth.lesions[0];
    assert!(lesion.long_axis.length_mm.is_nan());
    assert!((lesion.long_axis.a.distance(lesion.long_axis.b) - 20.0).abs() <= 1.0);

    // A perfect, uncalibrated prediction: a segment without calipers and a box.
    let mask = FrameMask::from_logits(60, 40, |x, y| {
        if truth.labels.get(x, y) >= label::LESION_BASE {
            1.0
        } else {
            -1.0
        }
    });
    let found = |kind| FrameFinding {
        track: 1,
        kind,
        bbox: lesion.bbox,
        area_px: lesion.area_px,
        confidence: 0.9,
        contour: (0, 0),
        long_axis: None,
        short_axis: None,
        ellipse: None,
    };
    let findings = FrameFindings {
        findings: vec![found(FindingKind::Segment), found(FindingKind::Detection)],
        ..FrameFindings::default()
    };
    let score = FrameScore::of(&mask, &findings, &truth);
    assert_eq!(score.dice, Some(1.0));
    assert_eq!((score.true_positives, score.false_negatives), (1, 0));
    assert_eq!(score.caliper_errors, None);
    let mut accuracy = Accuracy::default();
    accuracy.add(&score);
    let summary = accuracy.summary();
    assert_eq!(summary.dice_mean, Some(1.0));
    assert_eq!(summary.detection_recall, Some(1.0));
    assert_eq!((summary.measured, summary.long_axis_mae_mm), (0, None));
}

#[test]
fn empty_masks_make_a_lesion_free_frame_and_no_masks_no_truth() {
    let dir = TempDir::new().expect("tempdir");
    let d = dir.path();
    std::fs::create_dir(d.join("normal")).expect("mkdir");
    grey(&d.join("normal/n.png"), 20, 10, |_, _| 60);
    grey(&d.join("normal/n_mask.png"), 20, 10, |_, _| 0);
    grey(&d.join("plain.png"), 20, 10, |_, _| 60);
    let dataset = Dataset::open(d).expect("a dataset");
    let n = dataset.items()[0].load(0, None).expect("n");
    let truth = n.truth.expect("truth");
    assert!(truth.lesions.is_empty());
    assert!(truth.labels.data.iter().all(|&v| v == label::BACKGROUND));
    assert_eq!(dataset.items()[1].load(0, None).expect("plain").truth, None);
}

#[test]
fn colour_masks_count_any_non_black_pixel_and_bad_masks_fail_alone() {
    let dir = TempDir::new().expect("tempdir");
    let d = dir.path();
    for name in ["a.png", "b.png", "c.png"] {
        grey(&d.join(name), 20, 10, |_, _| 60);
    }
    RgbImage::from_fn(20, 10, |x, _| Rgb(if x < 5 { [0, 255, 0] } else { [0; 3] }))
        .save(d.join("a_mask.png"))
        .expect("write");
    RgbaImage::from_fn(20, 10, |x, _| {
        Rgba(if x >= 15 { [255; 4] } else { [0, 0, 0, 255] })
    })
    .save(d.join("a_mask_1.png"))
    .expect("write");
    grey(&d.join("b_mask.png"), 21, 10, |_, _| 255);
    grey(&d.join("c_mask.jpg"), 20, 10, |_, _| 255);
    let dataset = Dataset::open(d).expect("a dataset");
    let items = dataset.items();
    let truth = items[0].load(0, None).expect("a").truth.expect("truth");
    let areas: Vec<u32> = truth.lesions.iter().map(|l| l.area_px).collect();
    assert_eq!(areas, [50, 50]);
    match items[1].load(0, None) {
        Err(ItemError::MaskSize {
            path,
            width,
            image_width,
            ..
        }) => {
            assert_eq!(path, d.join("b_mask.png"));
            assert_eq!((width, image_width), (21, 20));
        }
        other => panic!("expected a mask size error, got {other:?}"),
    }
    let c = items[2].load(0, None).expect_err("a JPEG mask");
    assert!(matches!(c, ItemError::Mask { .. }), "{c}");
    assert!(c.to_string().contains("not a PNG"), "{c}");
}

#[test]
fn a_phantom_export_loads_with_the_phantoms_own_truth() {
    use sonoflow_phantom::export::{export, sequence_config, ExportOptions};
    let dir = TempDir::new().expect("tempdir");
    let options = ExportOptions {
        frames: 2,
        seed: 5,
        out: dir.path().join("export"),
        sequence_length: 2,
        lesions: Some(1),
        width: 320,
        height: 240,
        ..ExportOptions::default()
    };
    export(&options, &mut |_, _| {}).expect("export");
    let dataset = Dataset::open(&options.out).expect("a phantom export");
    assert_eq!(dataset.kind(), DatasetKind::PhantomExport);
    assert_eq!(dataset.items().len(), 2);
    assert!(dataset.skipped().is_empty());
    let mut phantom =
        sonoflow_phantom::Phantom::new(sequence_config(&options, 0)).expect("a phantom");
    let mut pixels = vec![0u8; 320 * 240];
    for (k, item) in dataset.items().iter().enumerate() {
        assert_eq!(item.class, None);
        let sample = item.load(k as u64, None).expect("loads");
        let mut expected = phantom.render(k as u64, &mut pixels);
        sonoflow_phantom::conspicuity::measure_lesions(&pixels, &mut expected);
        assert_eq!(sample.format.pixel, PixelFormat::Gray8);
        assert_eq!(sample.pixels, pixels);
        let truth = sample.truth.expect("truth");
        // The export's one sequence is the frames' scene; the live
        // phantom's truth names none.
        assert_eq!(truth.scene, Some(0));
        assert_eq!(expected.scene, None);
        assert_eq!(
            GroundTruth {
                scene: None,
                ..truth.clone()
            },
            expected
        );
        assert!(!truth.lesions.is_empty());
        assert_eq!(sample.calibration, Some(Calibration::of_truth(&expected)));
    }
    // The truth file itself opens the same export.
    let by_file = Dataset::open(&options.out.join(TRUTH_FILE)).expect("by file");
    assert_eq!(by_file.items(), dataset.items());
}

#[test]
fn a_bad_truth_line_is_skipped_with_its_number_and_a_missing_label_map_fails_alone() {
    use sonoflow_phantom::export::{export, ExportOptions};
    let dir = TempDir::new().expect("tempdir");
    let options = ExportOptions {
        frames: 2,
        out: dir.path().join("export"),
        width: 320,
        height: 240,
        ..ExportOptions::default()
    };
    export(&options, &mut |_, _| {}).expect("export");
    let truth_path = options.out.join(TRUTH_FILE);
    let mut text = std::fs::read_to_string(&truth_path).expect("read");
    text.push_str("\n{\"image\": 3}\n");
    std::fs::write(&truth_path, text).expect("write");
    std::fs::remove_file(options.out.join("labels/000001.png")).expect("remove");
    let dataset = Dataset::open(&options.out).expect("a phantom export");
    assert_eq!(dataset.items().len(), 2);
    match dataset.skipped() {
        [ItemError::TruthLine { line, path, .. }] => {
            assert_eq!((*line, path), (4, &truth_path));
        }
        other => panic!("expected one bad line, got {other:?}"),
    }
    assert!(dataset.items()[0].load(0, None).is_ok());
    let err = dataset.items()[1].load(1, None).expect_err("no label map");
    assert!(err.path().ends_with("labels/000001.png"), "{err}");

    std::fs::write(&truth_path, "not json\n").expect("write");
    let err = Dataset::open(&options.out).expect_err("nothing readable");
    assert!(err.to_string().contains("line 1"), "{err}");
}
