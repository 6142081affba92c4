//! What the person at the cart is shown when the AI cannot be trusted or
//! the machine is overloaded: a model whose outputs are NaN reads "AI output
//! invalid", never "no lesion"; a frame path over its latency budget sheds
//! work in the documented order and says so in the report.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(120);

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn umind() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../onnx/umind-nano")
}

/// The phantom through `model` into an MP4; `extra` adds sections.
fn phantom_with(model: &Path, extra: &str, mp4: &Path) -> String {
    format!(
        "[source]\nkind = \"phantom\"\nprobe = \"linear\"\ndepth_cm = 4\nseed = 7\nlesions = 1\nfps = 15\n\
         [model]\ndir = \"{}\"\nproviders = [\"cpu\"]\nintra_threads = 1\nstall_after_ms = 5000\n\
         {extra}\n[[sinks]]\nkind = \"mp4\"\npath = \"{}\"\n",
        model.display(),
        mp4.display()
    )
}

/// Pixels of the red banner colour in the top band of an RGB frame.
fn banner_pixels(rgb: &[u8], w: usize) -> usize {
    let band = w * 3 * 60;
    rgb[..band.min(rgb.len())]
        .chunks_exact(3)
        .filter(|p| p[0] > 150 && p[1] < 70 && p[2] < 70)
        .count()
}

#[test]
fn nan_outputs_read_as_ai_output_invalid_never_as_no_lesion() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mp4 = dir.path().join("nan.mp4");
    let run = run_pipeline(
        dir.path(),
        &phantom_with(
            &fixture("tiny-model-nan"),
            // Blocking hand-offs and no load shedding: every frame reaches
            // the model on any machine, so the counts below are exact.
            "[overlay]\nenabled = true\n[load]\nenabled = false\n\
             [queues.process]\npolicy = \"block\"\n[queues.output]\npolicy = \"block\"\n",
            &mp4,
        ),
        &["--frames", "20"],
        LIMIT,
    );
    let r = run.assert_success();
    let frames = u64_at(r, "/frames_out");
    assert_eq!(frames, 20, "{r:#}");
    // Every frame the model ran on is an invalid output, counted as a failure.
    let invalid = u64_at(r, "/inference/invalid_outputs");
    let waited_out = u64_at(r, "/inference/passed_without_ai");
    assert!(invalid >= 1, "{r:#}");
    assert_eq!(
        invalid + waited_out,
        20,
        "every frame went to the model: {r:#}"
    );
    assert_eq!(u64_at(r, "/inference/failures"), invalid, "{r:#}");
    assert_eq!(
        u64_at(r, "/overlay/invalid_frames"),
        20,
        "every frame is drawn as invalid, none as \"no lesion\": {r:#}"
    );
    // No self-check was scored on outputs that mean nothing.
    assert!(r.pointer("/accuracy").is_none_or(|a| a.is_null()), "{r:#}");
    let stderr = run.stderr();
    assert!(stderr.contains("not finite"), "{stderr}");
    // The banner is in the video.
    let mut seen = 0;
    decode_with(&mp4, "RGB", |i, w, h, map| {
        if i == 10 {
            let stride = (w * 3 + 3) & !3;
            let rgb: Vec<u8> = (0..h)
                .flat_map(|y| map[y * stride..y * stride + w * 3].iter().copied())
                .collect();
            seen = banner_pixels(&rgb, w);
        }
    });
    assert!(seen > 500, "red 'AI output invalid' banner pixels: {seen}");
}

#[test]
fn a_valid_model_shows_no_invalid_banner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mp4 = dir.path().join("valid.mp4");
    let run = run_pipeline(
        dir.path(),
        &phantom_with(
            &umind(),
            "[reasoning]\nenabled = false\n[load]\nenabled = false\n",
            &mp4,
        ),
        &["--frames", "20"],
        LIMIT,
    );
    let r = run.assert_success();
    assert_eq!(u64_at(r, "/inference/invalid_outputs"), 0, "{r:#}");
    assert_eq!(u64_at(r, "/overlay/invalid_frames"), 0, "{r:#}");
}

#[test]
fn over_budget_the_ladder_sheds_in_order_and_reports_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mp4 = dir.path().join("load.mp4");
    // A 1 ms budget that no frame through the model can keep: the ladder
    // climbs one step per 200 ms hold, in order, up to half rate.
    let run = run_pipeline(
        dir.path(),
        &phantom_with(
            &umind(),
            "[load]\nbudget_ms = 1\nhold_ms = 200\nrestore_after_ms = 60000\n",
            &mp4,
        ),
        &["--frames", "45"],
        LIMIT,
    );
    let r = run.assert_success();
    assert_eq!(str_at(r, "/load/highest"), "half_rate", "{r:#}");
    assert_eq!(u64_at(r, "/load/climbs"), 3, "{r:#}");
    assert_eq!(u64_at(r, "/load/descents"), 0, "{r:#}");
    let at = |step: &str| u64_at(r, &format!("/load/frames_at/{step}"));
    // The first frames run in full before the first hold is over (how many
    // depends on the machine's pace), the last ones at half rate.
    assert!(at("full") >= 1 && at("half_rate") >= 1, "{r:#}");
    assert_eq!(
        at("full") + at("head_paused") + at("overlay_lean") + at("half_rate"),
        u64_at(r, "/frames_out"),
        "{r:#}"
    );
    // At half rate the model skipped frames, and the video lost none.
    assert!(u64_at(r, "/inference/skipped_under_load") >= 1, "{r:#}");
    assert_eq!(total_dropped(r), 0, "{r:#}");
    let stderr = run.stderr();
    assert!(
        stderr.contains("shedding work, now head_paused"),
        "{stderr}"
    );
    assert!(stderr.contains("now half_rate"), "{stderr}");
}
