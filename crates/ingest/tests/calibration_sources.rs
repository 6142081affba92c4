//! [`Ingest`] over real GStreamer pipelines: the image-dataset source
//! (`kind = "images"`, a folder written here: frames in order with their
//! truth, bad items skipped by name, sizes changing mid-folder, loops) and
//! the frame calibration rules of `[source] calibration`: the source's own
//! (a sidecar, the phantom), the definition's where the source gives none
//! (or in place of the phantom's), and `"auto"`, found in the frames (the
//! phantom in screen mode). The binary runs them end to end in the
//! workspace's tests/images.rs and tests/phantom.rs.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sonoflow_core::findings::GroundTruth;
use sonoflow_core::Calibration;
use sonoflow_ingest::{CalibrationMode, IngestEnd, SourceReport};

/// A hang guard, not a speed limit: a test that reaches it has failed.
const GUARD: Duration = Duration::from_secs(60);

/// One frame as ingest delivered it.
struct Got {
    size: (u32, u32),
    first_pixel: u8,
    pts: Option<Duration>,
    calibration: Option<Arc<Calibration>>,
    truth: Option<Arc<GroundTruth>>,
}

/// Runs `definition` until it ends or `limit` frames came.
fn play(definition: &str, limit: usize) -> (Vec<Got>, IngestEnd, SourceReport) {
    common::play(definition, limit, GUARD, |frame| Got {
        size: (frame.format.width, frame.format.height),
        first_pixel: frame.row(0)[0],
        pts: frame.source_pts,
        calibration: frame.calibration.clone(),
        truth: frame.truth.clone(),
    })
}

fn spacing(got: &Got) -> Option<f64> {
    got.calibration
        .as_deref()
        .and_then(Calibration::spacing)
        .map(|s| (s.x_mm * 1e9).round() / 1e9)
}

/// A grey image whose first pixel is `first`.
fn gray(path: &Path, (w, h): (u32, u32), first: u8) {
    image::GrayImage::from_fn(w, h, |x, y| {
        image::Luma([if x == 0 && y == 0 {
            first
        } else {
            (x + y) as u8
        }])
    })
    .save(path)
    .expect("write image");
}

/// A mask with a filled rectangle.
fn mask(path: &Path, (w, h): (u32, u32), [x0, y0, x1, y1]: [u32; 4]) {
    image::GrayImage::from_fn(w, h, |x, y| {
        image::Luma([if (x0..x1).contains(&x) && (y0..y1).contains(&y) {
            255
        } else {
            0
        }])
    })
    .save(path)
    .expect("write mask");
}

/// A folder of frames: PNG, JPEG and BMP, masks, a sidecar, an image of
/// another size, a corrupt image and a mask of the wrong size.
fn dataset(dir: &Path) {
    let size = (64, 48);
    gray(&dir.join("f01.png"), size, 10);
    mask(&dir.join("f01_mask.png"), size, [10, 10, 30, 20]);
    std::fs::write(dir.join("f01.json"), r#"{"spacing_mm": 0.1}"#).expect("sidecar");
    image::RgbImage::from_pixel(64, 48, image::Rgb([200, 200, 200]))
        .save(dir.join("f02.jpg"))
        .expect("write jpeg");
    gray(&dir.join("f03.bmp"), size, 30);
    mask(&dir.join("f03_mask.png"), size, [5, 5, 15, 15]);
    mask(&dir.join("f03_mask_1.png"), size, [40, 20, 60, 40]);
    std::fs::write(dir.join("f04.png"), b"\x89PNG\r\n\x1a\n truncated").expect("corrupt");
    gray(&dir.join("f05.png"), (80, 60), 50);
    gray(&dir.join("f06.png"), size, 60);
    mask(&dir.join("f06_mask.png"), (32, 32), [0, 0, 8, 8]);
    gray(&dir.join("f07.png"), size, 70);
}

#[test]
fn an_image_folder_plays_in_order_with_truth_skipping_bad_items_and_following_sizes() {
    let dir = tempfile::tempdir().expect("tempdir");
    dataset(dir.path());
    let definition = format!(
        "kind = \"images\"\npath = {:?}\n[calibration]\nspacing_mm = 0.2\n",
        dir.path().to_string_lossy()
    );
    let (got, end, report) = play(&definition, usize::MAX);
    assert_eq!(end, IngestEnd::EndOfStream);
    let firsts: Vec<u8> = got.iter().map(|g| g.first_pixel).collect();
    // f02 is a JPEG of 200 grey; f04 (corrupt) and f06 (its mask's size) are skipped.
    assert_eq!(firsts.len(), 5, "{firsts:?}");
    assert_eq!(
        [firsts[0], firsts[2], firsts[3], firsts[4]],
        [10, 30, 50, 70]
    );
    assert!(firsts[1].abs_diff(200) <= 2, "{firsts:?}");
    let sizes: Vec<(u32, u32)> = got.iter().map(|g| g.size).collect();
    assert_eq!(sizes, [(64, 48), (64, 48), (64, 48), (80, 60), (64, 48)]);
    let pts: Vec<u128> = got
        .iter()
        .map(|g| g.pts.expect("pts").as_millis())
        .collect();
    assert_eq!(
        pts,
        [0, 33, 66, 100, 133],
        "stamped at 30 fps, skips leave no gap"
    );

    // The sidecar wins; else the definition's, made for each size.
    let spacings: Vec<Option<f64>> = got.iter().map(spacing).collect();
    assert_eq!(
        spacings,
        [Some(0.1), Some(0.2), Some(0.2), Some(0.2), Some(0.2)]
    );
    assert!(
        Arc::ptr_eq(
            got[1].calibration.as_ref().expect("f02"),
            got[2].calibration.as_ref().expect("f03")
        ),
        "equal calibrations are one Arc: no change for ingest"
    );
    assert_eq!(
        got[3].calibration.as_deref().and_then(Calibration::region),
        Some(sonoflow_core::findings::ImageRegion::Rect {
            x0: 0,
            y0: 0,
            x1: 80,
            y1: 60
        })
    );
    assert!(got.iter().all(|g| g
        .calibration
        .as_ref()
        .is_some_and(|c| c.source.name() == "config")));

    // Truth from the masks, in the frame's millimetres; none without masks.
    let lesions: Vec<Option<usize>> = got
        .iter()
        .map(|g| g.truth.as_ref().map(|t| t.lesions.len()))
        .collect();
    assert_eq!(lesions, [Some(1), None, Some(2), None, None]);
    let first = &got[0].truth.as_ref().expect("truth").lesions[0].long_axis;
    let px = f64::from((first.b.x - first.a.x).hypot(first.b.y - first.a.y));
    assert!(
        (first.length_mm - 0.1 * px).abs() < 1e-3,
        "{first:?}: in the sidecar's millimetres"
    );
    let third = got[2].truth.as_ref().expect("truth");
    assert!(third.pixel_spacing.x_mm == 0.2);

    assert_eq!(report.skipped, 2, "{report:?}");
    assert_eq!(report.rejected, 0);
    assert_eq!(
        report.caps_changes, 2,
        "64x48 -> 80x60 -> 64x48: {report:?}"
    );
    assert_eq!(report.lost_before_ingest, 0);
    assert_eq!(report.calibration.mode, CalibrationMode::Fixed);
    assert_eq!(report.calibration.changes, 4, "{report:?}");
    assert_eq!(report.calibration.uncalibrated_frames, 0);
}

#[test]
fn an_image_dataset_loops_and_reports_a_bad_item_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    gray(&dir.path().join("a.png"), (16, 8), 1);
    std::fs::write(dir.path().join("b.png"), b"junk").expect("corrupt");
    gray(&dir.path().join("c.png"), (16, 8), 3);
    let definition = format!(
        "kind = \"images\"\npath = {:?}\nloop = true\nfps = 10",
        dir.path().to_string_lossy()
    );
    let (got, end, report) = play(&definition, 7);
    assert_eq!(end, IngestEnd::Stopped);
    let firsts: Vec<u8> = got.iter().map(|g| g.first_pixel).collect();
    assert_eq!(firsts, [1, 3, 1, 3, 1, 3, 1]);
    assert_eq!(
        got[6].pts,
        Some(Duration::from_millis(600)),
        "time runs on across passes"
    );
    assert_eq!(
        report.skipped, 1,
        "b.png is reported once, not on every pass"
    );
    assert_eq!(report.calibration.mode, CalibrationMode::Source);
    assert_eq!(report.calibration.uncalibrated_frames, 7);
}

#[test]
fn a_live_image_folder_is_paced_at_its_frame_rate() {
    let dir = tempfile::tempdir().expect("tempdir");
    for k in 0..6u8 {
        gray(&dir.path().join(format!("f{k}.png")), (32, 24), k);
    }
    let definition = format!(
        "kind = \"images\"\npath = {:?}\nlive = true\nfps = 20",
        dir.path().to_string_lossy()
    );
    let started = Instant::now();
    let (got, end, report) = play(&definition, usize::MAX);
    let took = started.elapsed();
    assert_eq!(end, IngestEnd::EndOfStream, "finite without loop");
    assert_eq!(got.len() as u64 + report.lost_before_ingest, 6);
    assert!(
        took >= Duration::from_millis(250),
        "6 frames at 20 fps take 250 ms at least: {took:?}"
    );
}

#[test]
fn a_fixed_calibration_calibrates_a_source_that_gives_none_when_it_fits() {
    let fits = "kind = \"test\"\nlive = false\nwidth = 320\nheight = 240\n\
                [calibration]\nregion = [20, 10, 300, 230]\nspacing_mm = [0.1, 0.12]";
    let (got, _, report) = play(fits, 5);
    assert_eq!(got.len(), 5);
    let cal = got[0].calibration.as_ref().expect("calibrated");
    assert!(got
        .iter()
        .all(|g| g.calibration.as_ref().is_some_and(|c| Arc::ptr_eq(c, cal))));
    let s = cal.spacing().expect("spacing");
    assert_eq!((s.x_mm, s.y_mm), (0.1, 0.12));
    assert_eq!(report.calibration.source, Some("config"));
    assert_eq!(report.calibration.changes, 1);
    assert_eq!(report.calibration.uncalibrated_frames, 0);

    // A region that does not fit the frames: refused, never trusted.
    let too_big = fits.replace("[20, 10, 300, 230]", "[20, 10, 700, 230]");
    let (got, _, report) = play(&too_big, 5);
    assert!(got.iter().all(|g| g.calibration.is_none()));
    assert_eq!(report.calibration.uncalibrated_frames, 5);
    assert_eq!(report.calibration.mode, CalibrationMode::Fixed);
}

#[test]
fn a_fixed_calibration_replaces_the_phantoms_own() {
    let (got, _, report) = play(
        "kind = \"phantom\"\nfps = 60\n[calibration]\nspacing_mm = 0.3",
        10,
    );
    assert!(got.iter().all(|g| spacing(g) == Some(0.3)));
    assert!(
        got.iter().all(|g| g.truth.is_some()),
        "the truth still rides along"
    );
    assert_eq!(report.calibration.source, Some("config"));
    assert_eq!(report.calibration.changes, 1);
}

/// Screen mode: the phantom's frames with `calibration = "auto"`: no
/// spacing until the calibrator locks (12 frames), then the one it found,
/// within 1 % of the phantom's own; the truth keeps its exact spacing.
#[test]
fn the_phantom_in_screen_mode_is_calibrated_only_by_what_is_found_in_its_frames() {
    for (probe, depth) in [("linear", 4), ("convex", 6)] {
        let (got, _, report) = play(
            &format!(
                "kind = \"phantom\"\nprobe = \"{probe}\"\ndepth_cm = {depth}\ncalibration = \"auto\""
            ),
            30,
        );
        let locked_at = got
            .iter()
            .position(|g| g.calibration.is_some())
            .unwrap_or_else(|| panic!("{probe} {depth} cm never locked: {report:?}"));
        assert_eq!(locked_at, 12, "{probe} {depth} cm: {report:?}");
        assert!(
            got[locked_at..].iter().all(|g| g.calibration.is_some()),
            "stays locked on a steady screen"
        );
        let truth = got[locked_at].truth.as_ref().expect("truth rides along");
        let found = spacing(&got[locked_at]).expect("spacing");
        let error = (found - truth.pixel_spacing.x_mm).abs() / truth.pixel_spacing.x_mm;
        assert!(
            error < 0.01,
            "{probe} {depth} cm: {found} against {truth:?}"
        );
        let cal = got[locked_at].calibration.as_ref().expect("calibration");
        assert_eq!(cal.source.name(), "detected");
        let auto = report.calibration.auto.as_ref().expect("auto figures");
        assert_eq!(auto.state, "locked");
        assert_eq!(auto.reason, None);
        assert!(auto.confidence >= 0.5, "{auto:?}");
        assert_eq!(
            (auto.searching_frames, auto.locked_frames),
            (12, got.len() as u64 - 12)
        );
        assert_eq!(report.calibration.mode, CalibrationMode::Auto);
        assert_eq!(report.calibration.source, Some("detected"));
        assert_eq!(report.calibration.uncalibrated_frames, 12);
        assert_eq!(report.calibration.changes, 1);
    }
}
