//! The overlay end to end: `sonoflow run` with the demo model draws onto
//! the video it writes (checked by decoding the MP4 with GStreamer and
//! looking for the overlay's colours where the lesion is), and when the
//! model falls behind the video keeps flowing with late findings marked
//! stale and the "AI paused" banner.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(120);

fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../onnx/umind-nano")
}

/// The phantom through umind-nano on the CPU into an MP4. The hand-offs
/// block, so no frame is dropped inside the pipeline on any machine: the
/// counts below are exact, whatever the speed.
fn definition(extra_model: &str, overlay: &str, mp4: &Path) -> String {
    format!(
        "[source]\nkind = \"phantom\"\nprobe = \"linear\"\ndepth_cm = 4\nseed = 424242\nlesions = 1\nfps = 15\n\
         [queues.process]\npolicy = \"block\"\n[queues.output]\npolicy = \"block\"\n\
         [model]\ndir = \"{}\"\nproviders = [\"cpu\"]\nintra_threads = 1\n{extra_model}\n\
         [overlay]\n{overlay}\n\
         [load]\nenabled = false\n\
         [[sinks]]\nkind = \"mp4\"\npath = \"{}\"\n",
        model_dir().display(),
        mp4.display()
    )
}

/// RGB frames of an MP4 (every `step`-th), decoded by GStreamer.
fn rgb_frames(path: &Path, step: usize) -> Vec<(Vec<u8>, usize, usize)> {
    let mut frames = Vec::new();
    decode_with(path, "RGB", |index, w, h, map| {
        if (index + 1) % step != 0 {
            return;
        }
        // RGB rows are padded to 4 bytes.
        let stride = (w * 3 + 3) & !3;
        let rgb = (0..h)
            .flat_map(|y| map[y * stride..y * stride + w * 3].iter().copied())
            .collect();
        frames.push((rgb, w, h));
    });
    frames
}

/// Pixels close to an RGB colour (after H.264: within a tolerance).
fn count_near(rgb: &[u8], colour: [u8; 3], tolerance: u8) -> usize {
    rgb.chunks_exact(3)
        .filter(|p| {
            p.iter()
                .zip(colour)
                .all(|(&a, b)| a.abs_diff(b) <= tolerance)
        })
        .count()
}

/// `--findings-jsonl`: one line per frame out, in order, each its
/// sonoflow.v1.FrameResult in canonical JSON, with the phantom's calibration
/// and (the model waits up to 5 s, so never behind) the frame's own
/// findings, the lesion measured in mm with its ±.
fn assert_findings_log(path: &Path, r: &serde_json::Value) {
    let lines = read_findings_log(path);
    assert_eq!(lines.len() as u64, u64_at(r, "/frames_out"));
    assert_eq!(
        u64_at(r, "/findings_log/lines"),
        lines.len() as u64,
        "{r:#}"
    );
    assert_eq!(u64_at(r, "/findings_log/dropped_lines"), 0, "{r:#}");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(pb_u64_at(line, "/frameId"), i as u64, "{line}");
        assert_eq!(pb_u64_at(line, "/findingsFrameId"), i as u64, "{line}");
        assert!(line.get("findingsFrameId").is_some(), "{line}");
        assert_eq!(str_at(line, "/ai"), "AI_VERDICT_VALID");
        assert_eq!(
            str_at(line, "/calibration/source"),
            "CALIBRATION_SOURCE_PHANTOM"
        );
        let spacing = f64_at(line, "/calibration/regions/0/spacing/xMm");
        let lesion = line["findings"]
            .as_array()
            .and_then(|f| f.iter().find(|f| f["kind"] == "FINDING_KIND_SEGMENT"))
            .unwrap_or_else(|| panic!("the lesion is found: {line}"));
        assert_eq!(str_at(lesion, "/label"), "lesion");
        // x0, y0, x1, y1, ...: at least four points.
        assert!(lesion["contour"].as_array().is_some_and(|c| c.len() >= 8));
        let mm = f64_at(lesion, "/longAxis/lengthMm");
        let (a, b) = (&lesion["longAxis"]["a"], &lesion["longAxis"]["b"]);
        let px = (f64_at(a, "/x") - f64_at(b, "/x")).hypot(f64_at(a, "/y") - f64_at(b, "/y"));
        assert!(
            (mm - px * spacing).abs() < 1e-3 * mm.max(1.0),
            "the caliper's mm is its pixels at the line's spacing: {lesion}"
        );
        assert!(f64_at(lesion, "/longAxis/plusMinusMm") > 0.0);
    }
}

#[test]
fn the_run_draws_the_overlay_onto_its_video() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mp4 = dir.path().join("overlay.mp4");
    let run = run_pipeline(
        dir.path(),
        &definition("stall_after_ms = 5000", "", &mp4),
        &["--frames", "30", "--findings-jsonl", "findings.jsonl"],
        LIMIT,
    );
    let r = run.assert_success();
    assert_eq!(u64_at(r, "/frames_out"), 30, "{r:#}");
    assert_findings_log(&dir.path().join("findings.jsonl"), r);
    assert_eq!(u64_at(r, "/overlay/frames"), 30, "{r:#}");
    assert!(f64_at(r, "/overlay/paint_ms/p50") > 0.0);
    assert_eq!(u64_at(r, "/overlay/paused_frames"), 0, "{r:#}");
    assert_eq!(u64_at(r, "/inference/passed_without_ai"), 0, "{r:#}");
    let frames = rgb_frames(&mp4, 10);
    assert!(frames.len() >= 2, "decoded {} frames", frames.len());
    for (rgb, w, h) in &frames {
        assert_eq!((*w, *h), (640, 480));
        // The lesion's contour (amber), the long-axis caliper (cyan) and the detection box (green).
        let amber = count_near(rgb, [255, 176, 0], 40);
        let cyan = count_near(rgb, [0, 224, 255], 50);
        let green = count_near(rgb, [64, 224, 128], 50);
        assert!(
            amber > 100 && cyan > 30 && green > 100,
            "overlay colours in the video: amber {amber}, cyan {cyan}, green {green}"
        );
    }
}

#[test]
fn a_model_behind_the_video_leaves_it_flowing_with_stale_findings_and_ai_paused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mp4 = dir.path().join("stall.mp4");
    // Frames wait 1 ms for a model that takes far longer on a CPU (about 25
    // ms on a small one): every frame goes on without fresh findings; the
    // model's late findings ride on later frames.
    let run = run_pipeline(
        dir.path(),
        &definition(
            "stall_after_ms = 1",
            "stale_after_ms = 10\npaused_after_ms = 40",
            &mp4,
        ),
        &["--frames", "45"],
        LIMIT,
    );
    let r = run.assert_success();
    assert_eq!(u64_at(r, "/frames_in"), 45, "{r:#}");
    assert_eq!(u64_at(r, "/frames_out"), 45, "no frame was lost: {r:#}");
    // A 1 ms wait for a model that needs far more is missed: frames go on
    // without it (how many is the machine's business, not the test's).
    let passed = u64_at(r, "/inference/passed_without_ai");
    assert!(passed >= 1, "frames went on without the model: {r:#}");
    // Frame 0 has nothing to show yet: "AI paused" from the start. Every
    // frame drawn with findings draws an earlier frame's, at least one frame
    // interval (67 ms) old, past stale_after_ms: stale.
    assert!(u64_at(r, "/overlay/paused_frames") >= 1, "{r:#}");
    let scored = u64_at(r, "/accuracy/frames");
    assert!(
        scored >= 1,
        "the model still scored the frames it saw: {r:#}"
    );
    assert!(
        u64_at(r, "/overlay/stale_frames") >= 1,
        "late findings are drawn as stale: {r:#}"
    );
    assert!(
        u64_at(r, "/overlay/stale_frames") + u64_at(r, "/overlay/paused_frames") >= passed,
        "every frame that went on without the model is drawn stale or says AI paused: {r:#}"
    );
    // The banner: a red bar across the top middle of some frame.
    let banner = rgb_frames(&mp4, 1).iter().any(|(rgb, w, _)| {
        let top: Vec<u8> = (20..60)
            .flat_map(|y| rgb[(y * w + 200) * 3..(y * w + 440) * 3].to_vec())
            .collect();
        count_near(&top, [200, 24, 24], 60) > 1000
    });
    assert!(banner, "an \"AI paused\" banner in the video");
}
