//! Golden files for post-processing and the overlay, on fixed phantom
//! frames with known ground truth.
//!
//! Each frame's ground-truth label map becomes mask logits the way a model
//! would give them (`sonoflow_phantom::ideal`): a 64x64 grid over a 256x256
//! letterboxed model input (as umind-nano), each cell holding the signed
//! distance from its centre to the lesion edge. Post-processing then has to map
//! them back through the inverse of that letterbox, trace, measure and
//! track, and its calipers must land within [`CALIPER_TOLERANCE_MM`] of
//! the phantom's own calipers. The findings are also compared with
//! tests/golden/findings-*.json, and the overlay drawn on the first frame
//! with tests/golden/overlay-*.png (per-pixel, with a tolerance).
//!
//! Refresh the golden files after an intended change with
//! `SONOFLOW_UPDATE_GOLDEN=1 cargo test -p sonoflow --test perception`,
//! then look at the PNGs before committing them.

use std::path::PathBuf;
use std::sync::Arc;

use sonoflow_core::annotations::FindingKind;
use sonoflow_core::findings::GroundTruth;
use sonoflow_core::{
    BufferPool, Calibration, Clock, Frame, FrameFindings, FrameId, ManualClock, StageStamps,
    Timestamp,
};
use sonoflow_overlay::{Interpretation, InterpretationBoard, Overlay, OverlayOptions};
use sonoflow_perception::contour::polygon_area;
use sonoflow_perception::{accuracy::iou, Perception, PerceptionOptions, TaskRows};
use sonoflow_phantom::{Phantom, PhantomConfig, ProbeKind};

/// How close the calipers must come to the phantom's (grid cells are
/// about 6 frame pixels, 0.5 mm, wide; the edge is interpolated inside them).
const CALIPER_TOLERANCE_MM: f64 = 0.3;
const INPUT: u32 = 256;
const GRID: usize = 64;

struct Scene {
    name: &'static str,
    probe: ProbeKind,
    depth_cm: u32,
    seed: u64,
    lesions: u32,
    frame: u64,
}

const SCENES: [Scene; 3] = [
    Scene {
        name: "linear-4cm",
        probe: ProbeKind::Linear,
        depth_cm: 4,
        seed: 424242,
        lesions: 1,
        frame: 12,
    },
    Scene {
        name: "convex-6cm",
        probe: ProbeKind::Convex,
        depth_cm: 6,
        seed: 515151,
        lesions: 1,
        frame: 30,
    },
    Scene {
        name: "linear-two-lesions",
        probe: ProbeKind::Linear,
        depth_cm: 5,
        seed: 77,
        lesions: 2,
        frame: 5,
    },
];

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden")
        .join(name)
}

fn updating() -> bool {
    std::env::var_os("SONOFLOW_UPDATE_GOLDEN").is_some_and(|v| v == "1")
}

/// A phantom frame (grey pixels) and its truth.
fn phantom_frame(s: &Scene) -> (Vec<u8>, GroundTruth, u32, u32) {
    let config = PhantomConfig {
        probe: s.probe,
        depth_cm: s.depth_cm,
        seed: s.seed,
        lesions: s.lesions,
        ..PhantomConfig::default()
    };
    let mut phantom = Phantom::new(config).expect("phantom config");
    let format = phantom.format();
    let mut pixels = vec![0u8; format.len()];
    let truth = phantom.render(s.frame, &mut pixels);
    (pixels, truth, format.width, format.height)
}

/// Post-processing of one scene's frame, calibrated as the phantom drew it.
fn findings_of(s: &Scene) -> (Vec<u8>, GroundTruth, u32, u32, FrameFindings) {
    findings_with(s, true)
}

/// Post-processing of one scene's frame, with or without its calibration.
fn findings_with(s: &Scene, calibrated: bool) -> (Vec<u8>, GroundTruth, u32, u32, FrameFindings) {
    let (pixels, truth, w, h) = phantom_frame(s);
    let outputs = sonoflow_phantom::ideal::outputs(
        &truth,
        sonoflow_phantom::ideal::letterbox(&truth, w, h, INPUT),
        GRID,
    );
    let mut perception = Perception::new(PerceptionOptions {
        ellipse: true,
        ..PerceptionOptions::default()
    });
    let mut found = FrameFindings {
        frame: FrameId(s.frame),
        ..FrameFindings::default()
    };
    perception.perceive(
        &outputs,
        TaskRows {
            segmentation: 0,
            detection: 1,
        },
        w,
        h,
        calibrated.then(|| Calibration::of_truth(&truth)).as_ref(),
        &mut found,
    );
    (pixels, truth, w, h, found)
}

#[test]
fn phantom_frames_through_post_processing_match_the_truth_and_the_golden_files() {
    for s in &SCENES {
        let (_, truth, _, _, found) = findings_of(s);
        let segments: Vec<_> = found.segments().collect();
        assert_eq!(
            segments.len(),
            truth.lesions.len(),
            "{}: one segment per visible lesion: {found:#?}",
            s.name
        );
        assert_eq!(
            found.detections().count(),
            truth.lesions.len(),
            "{}",
            s.name
        );
        for lesion in &truth.lesions {
            let f = segments
                .iter()
                .find(|f| iou(&f.bbox, &lesion.bbox) >= 0.7)
                .unwrap_or_else(|| panic!("{}: lesion {} found: {found:#?}", s.name, lesion.id));
            let (long, short) = (
                f.long_axis.expect("long axis"),
                f.short_axis.expect("short axis"),
            );
            let (dl, ds) = (
                long.caliper.length_mm - lesion.long_axis.length_mm,
                short.caliper.length_mm - lesion.short_axis.length_mm,
            );
            eprintln!(
                "{}: lesion {} long {:.2} mm (truth {:.2}, ± {:.2}) short {:.2} mm (truth {:.2}, ± {:.2})",
                s.name, lesion.id, long.caliper.length_mm, lesion.long_axis.length_mm, long.uncertainty_mm, short.caliper.length_mm, lesion.short_axis.length_mm, short.uncertainty_mm
            );
            assert!(
                dl.abs() <= CALIPER_TOLERANCE_MM,
                "{}: long axis off by {dl:.3} mm",
                s.name
            );
            assert!(
                ds.abs() <= CALIPER_TOLERANCE_MM,
                "{}: short axis off by {ds:.3} mm",
                s.name
            );
            assert!(
                long.uncertainty_mm > 0.0 && long.uncertainty_mm < 1.5,
                "{long:?}"
            );
            let contour = found.contour(f);
            assert!(contour.len() >= 8, "{}: a drawable contour", s.name);
            let area = polygon_area(contour);
            assert!(
                (area - lesion.area_px as f32).abs() / lesion.area_px as f32 <= 0.05,
                "{}: contour area {area} vs {} px",
                s.name,
                lesion.area_px
            );
            let e = f.ellipse.expect("ellipse asked for");
            assert!(
                (e.major_mm - lesion.long_axis.length_mm).abs() < 1.0,
                "{}: {e:?}",
                s.name
            );
        }
        compare_findings(s.name, &found);
    }
}

/// The findings as the golden file keeps them (rounded to what matters).
fn summary(found: &FrameFindings) -> serde_json::Value {
    let r = |v: f64, step: f64| ((v / step).round() * step * 1e6).round() / 1e6;
    let list: Vec<serde_json::Value> = found
        .findings
        .iter()
        .map(|f| {
            serde_json::json!({
                "kind": if f.kind == FindingKind::Segment { "segment" } else { "detection" },
                "track": f.track,
                "bbox": [f.bbox.x0, f.bbox.y0, f.bbox.x1, f.bbox.y1],
                "area_px": f.area_px,
                "confidence": r(f64::from(f.confidence), 0.001),
                "contour_points": f.contour.1,
                "contour_area_px": r(f64::from(polygon_area(found.contour(f))), 0.1),
                "long_mm": f.long_axis.map(|m| r(m.caliper.length_mm, 0.001)),
                "long_uncertainty_mm": f.long_axis.map(|m| r(m.uncertainty_mm, 0.001)),
                "short_mm": f.short_axis.map(|m| r(m.caliper.length_mm, 0.001)),
                "short_uncertainty_mm": f.short_axis.map(|m| r(m.uncertainty_mm, 0.001)),
                "circumference_mm": f.ellipse.map(|e| r(e.circumference_mm, 0.001)),
            })
        })
        .collect();
    serde_json::Value::Array(list)
}

/// Numbers within a small tolerance of the golden file; the same shape.
fn close(a: &serde_json::Value, b: &serde_json::Value, path: &str) -> Result<(), String> {
    use serde_json::Value::*;
    match (a, b) {
        (Number(x), Number(y)) => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            let tolerance = if path.ends_with("contour_points") {
                3.0
            } else {
                0.02 * y.abs().max(1.0)
            };
            if (x - y).abs() <= tolerance {
                Ok(())
            } else {
                Err(format!("{path}: {x} vs golden {y}"))
            }
        }
        (Array(x), Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .try_for_each(|(i, (p, q))| close(p, q, &format!("{path}[{i}]"))),
        (Object(x), Object(y)) if x.len() == y.len() => x
            .iter()
            .try_for_each(|(k, v)| close(v, y.get(k).unwrap_or(&Null), &format!("{path}.{k}"))),
        _ if a == b => Ok(()),
        _ => Err(format!("{path}: {a} vs golden {b}")),
    }
}

fn compare_findings(name: &str, found: &FrameFindings) {
    let path = golden(&format!("findings-{name}.json"));
    let now = summary(found);
    if updating() {
        std::fs::create_dir_all(path.parent().expect("golden dir")).expect("golden dir");
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&now).expect("json") + "\n",
        )
        .expect("write golden");
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with SONOFLOW_UPDATE_GOLDEN=1",
            path.display()
        )
    });
    let want: serde_json::Value = serde_json::from_str(&text).expect("golden json");
    if let Err(diff) = close(&now, &want, name) {
        panic!(
            "{name} differs from {}: {diff}\nnow: {now:#}",
            path.display()
        );
    }
}

/// The overlay of scene 0 at a fixed time, as RGBA; uncalibrated frames
/// carry no calibration (their findings have no mm).
fn overlay_image(paused: bool, calibrated: bool) -> (Vec<u8>, u32, u32) {
    let s = &SCENES[0];
    let (pixels, truth, w, h, mut found) = findings_with(s, calibrated);
    let calibration = calibrated.then(|| Arc::new(Calibration::of_truth(&truth)));
    let clock = Arc::new(ManualClock::new());
    let board = Arc::new(InterpretationBoard::empty());
    board.store(Some(Arc::new(Interpretation::done("Oval, parallel, circumscribed hypoechoic mass with posterior enhancement; no calcifications. BI-RADS 3: probably benign, short-interval follow-up.", FrameId(300), Timestamp(6_800_000_000)))));
    let options = OverlayOptions {
        font_px: Some(14.0),
        ..OverlayOptions::default()
    };
    // The word umind-nano's manifest gives its detection task's target.
    let mut overlay = Overlay::new(options, clock.clone() as Arc<dyn Clock>, board)
        .expect("overlay")
        .naming_findings("lesion");
    let pool = BufferPool::new(2);
    let format =
        sonoflow_core::FrameFormat::new(sonoflow_core::PixelFormat::Gray8, w, h).expect("format");
    let mut target = vec![0u8; (w * h * 4) as usize];
    // 30 frames at 30 fps, 25 ms from capture to drawn; the last is kept.
    let frames = 30u64;
    for k in 0..frames {
        let captured = Timestamp(10_000_000_000 + k * 33_333_333);
        let mut data = pool.acquire(pixels.len());
        data.copy_from_slice(&pixels);
        let mut frame = Frame::new(FrameId(300 + k), format, data, StageStamps::new(captured));
        frame.truth = Some(Arc::new(truth.clone()));
        frame.calibration = calibration.clone();
        // Paused: fresh findings only on the first frame, then none for a second.
        let fresh = !paused || k == 0;
        if fresh {
            let recycler = sonoflow_core::Recycler::<FrameFindings>::new(1);
            let mut f = recycler.acquire();
            found.frame = frame.id;
            found.captured = captured;
            f.copy_from(&found);
            frame.findings = Some(f);
        }
        let t = if paused && k > 0 {
            Timestamp(captured.0 + 1_200_000_000)
        } else {
            captured
        };
        frame.stamps = StageStamps::new(t);
        clock.set(Timestamp(t.0 + 25_000_000));
        overlay.draw(&frame, &mut target);
    }
    (target, w, h)
}

fn write_png(path: &std::path::Path, rgba: &[u8], w: u32, h: u32) {
    std::fs::create_dir_all(path.parent().expect("dir")).expect("dir");
    let file = std::fs::File::create(path).expect("create png");
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()
        .expect("png header")
        .write_image_data(rgba)
        .expect("png data");
}

fn read_png(path: &std::path::Path) -> (Vec<u8>, u32, u32) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with SONOFLOW_UPDATE_GOLDEN=1",
            path.display()
        )
    });
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .expect("png");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("png frame");
    buf.truncate(info.buffer_size());
    (buf, info.width, info.height)
}

fn compare_overlay(name: &str, paused: bool, calibrated: bool) {
    let (now, w, h) = overlay_image(paused, calibrated);
    let path = golden(&format!("overlay-{name}.png"));
    if updating() {
        write_png(&path, &now, w, h);
        return;
    }
    let (want, gw, gh) = read_png(&path);
    assert_eq!((gw, gh), (w, h), "{}", path.display());
    let differing = now
        .chunks_exact(4)
        .zip(want.chunks_exact(4))
        .filter(|(a, b)| a.iter().zip(b.iter()).any(|(x, y)| x.abs_diff(*y) > 24))
        .count();
    let share = differing as f64 / (w * h) as f64;
    if share > 0.002 {
        let seen = std::env::temp_dir().join(format!("sonoflow-overlay-{name}.png"));
        write_png(&seen, &now, w, h);
        panic!(
            "{:.3}% of pixels differ from {} (drawn now: {})",
            share * 100.0,
            path.display(),
            seen.display()
        );
    }
}

#[test]
fn the_overlay_of_a_live_frame_matches_its_golden_png() {
    compare_overlay("live", false, true);
}

#[test]
fn an_uncalibrated_frame_shows_masks_and_boxes_but_no_millimetres() {
    let (_, _, _, _, found) = findings_with(&SCENES[0], false);
    assert!(found.segments().count() > 0, "masks still found");
    assert!(
        found
            .segments()
            .all(|f| f.long_axis.is_none() && f.short_axis.is_none()),
        "no calipers without a calibration"
    );
    // The golden shows "uncalibrated, no mm", no calipers and no scale bar.
    compare_overlay("uncalibrated", false, false);
}

#[test]
fn the_overlay_of_a_paused_ai_matches_its_golden_png() {
    compare_overlay("paused", true, true);
}
