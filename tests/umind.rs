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
    let output = std::process::Command::new(BIN)
        .arg("model")
        .arg("check")
        .arg(model_dir())
        .output()
        .expect("run sonoflow");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("model umind-nano"), "{stdout}");
    for role in [
        "vision_encoder",
        "mask_decoder",
        "kernel_projector",
        "embed_tokens",
        "decoder",
    ] {
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
         [model]\ndir = \"{}\"\nintra_threads = 1\nstall_after_ms = 10000\n\
         [load]\nenabled = false\n\
         [[sinks]]\nkind = \"fake\"\n",
        model_dir().display()
    );
    let run = run_pipeline(dir.path(), &definition, &["--frames", "40"], LIMIT);
    run.assert_success().clone()
}

/// What a scene must reach; a little under what it measured when the model
/// was committed (each test's comment gives what it measured).
struct Limits {
    min_dice: f64,
    min_recall: f64,
    max_long_mm: f64,
    max_short_mm: f64,
}

fn check(r: &serde_json::Value, what: &str, l: Limits) {
    let acc = &r["accuracy"];
    eprintln!("{what}: {acc}");
    let frames = acc["frames"].as_u64().unwrap_or(0);
    assert!(frames >= 30, "{what}: most frames scored: {acc:#}");
    let dice = acc["dice_mean"].as_f64().expect("dice");
    let recall = acc["detection_recall"].as_f64().expect("recall");
    let long = acc["long_axis_mae_mm"].as_f64().expect("long axis error");
    let short = acc["short_axis_mae_mm"].as_f64().expect("short axis error");
    assert!(
        dice >= l.min_dice,
        "{what}: Dice {dice:.3} < {}: {acc:#}",
        l.min_dice
    );
    assert!(
        recall >= l.min_recall,
        "{what}: detection recall {recall:.3} < {}: {acc:#}",
        l.min_recall
    );
    assert!(
        long <= l.max_long_mm,
        "{what}: long-axis error {long:.3} mm > {}: {acc:#}",
        l.max_long_mm
    );
    assert!(
        short <= l.max_short_mm,
        "{what}: short-axis error {short:.3} mm > {}: {acc:#}",
        l.max_short_mm
    );
    assert_eq!(r["inference"]["model"], "umind-nano 0.1.0");
}

#[test]
fn held_out_linear_scene_segments_and_measures_within_thresholds() {
    // Measured: Dice 0.992, recall 1.0, long-axis error 0.05 mm, short 0.08 mm
    // (the model before, on the same phantom: 0.992, 0.05 and 0.06 mm).
    let limits = Limits {
        min_dice: 0.97,
        min_recall: 0.95,
        max_long_mm: 0.15,
        max_short_mm: 0.15,
    };
    check(&self_check("linear", 4, 424_242), "linear 4 cm", limits);
}

#[test]
fn held_out_convex_scene_segments_and_measures_within_thresholds() {
    // Measured: Dice 0.934, recall 1.0, long-axis error 0.68 mm, short 0.49 mm.
    // The model before, on the same phantom: 0.941, 0.31 and 0.31 mm; this
    // scene's long axis is worse with this model, the held-out set's better
    // (docs/model-card.md).
    let limits = Limits {
        min_dice: 0.91,
        min_recall: 0.95,
        max_long_mm: 0.8,
        max_short_mm: 0.6,
    };
    check(&self_check("convex", 6, 515_151), "convex 6 cm", limits);
}

/// Token id of each word of the shipped tokenizer.json's vocabulary.
fn vocabulary() -> std::collections::BTreeMap<String, i64> {
    let text = std::fs::read_to_string(model_dir().join("tokenizer.json")).expect("tokenizer.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("tokenizer json");
    json["model"]["vocab"]
        .as_object()
        .expect("word-level vocabulary")
        .iter()
        .map(|(w, id)| (w.clone(), id.as_i64().expect("id")))
        .collect()
}

#[test]
fn the_reasoning_graphs_write_a_grounded_report_and_kernels_for_a_held_out_frame() {
    use sonoflow_core::FramePool;
    use sonoflow_inference::preprocess::{fill_input, ResizePlan};
    use sonoflow_inference::{
        argmax, default_dylib, EngineOptions, Generator, GraphSession, Runtime,
    };
    use sonoflow_phantom::{Phantom, PhantomConfig};

    // A held-out phantom frame, preprocessed as the pipeline does.
    let config = PhantomConfig {
        seed: 424_242,
        lesions: 1,
        ..PhantomConfig::default()
    };
    let mut phantom = Phantom::new(config).expect("phantom");
    let (frame, truth) = phantom.render_frame(0, &FramePool::new(1));
    let model = sonoflow_model::ModelDir::open(&model_dir()).expect("model");
    let p = &model.manifest.preprocess;
    let plan = ResizePlan::new(p, frame.format, frame.image_region().as_ref());
    let mut input = vec![0.0f32; (p.width * p.height) as usize];
    fill_input(&frame, &plan, p, &mut input);

    let runtime = Runtime::load(&default_dylib(std::path::Path::new("."))).expect("onnx runtime");
    let options = EngineOptions::default();
    let mut encoder =
        GraphSession::open(runtime, &model, "vision_encoder", &options).expect("encoder");
    let image_embeds = Generator::image_embeds(&mut encoder, &model, &input).expect("image tokens");

    let vocab = vocabulary();
    let words: std::collections::BTreeMap<i64, &str> =
        vocab.iter().map(|(w, id)| (*id, w.as_str())).collect();
    let mut generator = Generator::load(runtime, &model, &options).expect("reasoning graphs");
    let tasks = [vocab["[SEG]"], vocab["[DET]"]];
    let mut streamed = 0;
    let g = generator
        .generate(
            &image_embeds,
            &[vocab["[DIAG]"]],
            vocab["[EOS]"],
            &tasks,
            80,
            &mut argmax,
            &mut |_| {
                streamed += 1;
                std::ops::ControlFlow::Continue(())
            },
        )
        .expect("generate");
    let text: Vec<&str> = g.tokens.iter().map(|t| words[t]).collect();
    let text = text.join(" ");
    eprintln!(
        "report ({} tokens, first after {:?}, all in {:?}): {text}",
        g.tokens.len(),
        g.time_to_first_token,
        g.total
    );
    assert_eq!(streamed, g.tokens.len(), "every token was streamed");
    assert!(text.starts_with("finding : "), "{text}");
    assert!(
        text.contains("long axis : <long> mm . short axis : <short> mm ."),
        "{text}"
    );
    assert!(
        !text.chars().any(|c| c.is_ascii_digit()),
        "no number comes from the language model: {text}"
    );
    // The report against the phantom's truth for its one lesion: the class
    // and the six descriptors, in the report's words (the truth's words,
    // spaces for underscores).
    let lesion = &truth.lesions[0];
    let said: std::collections::BTreeMap<&str, &str> = text
        .split(" . ")
        .filter_map(|clause| clause.split_once(" : "))
        .collect();
    assert!(
        ["cyst", "mass"].contains(&said.get("finding").copied().unwrap_or_default()),
        "the finding is a class of the vocabulary: {text}"
    );
    let mut expected = vec![("finding", lesion.class.clone())];
    for (field, key) in [
        ("shape", "shape"),
        ("orientation", "orientation"),
        ("margin", "margin"),
        ("echo_pattern", "echo pattern"),
        ("posterior", "posterior features"),
        ("calcifications", "calcifications"),
    ] {
        let word = lesion.attributes.get(field).expect("a named value");
        expected.push((key, word.replace('_', " ")));
    }
    let agree: Vec<&str> = expected
        .iter()
        .filter(|(key, word)| said.get(key) == Some(&word.as_str()))
        .map(|(key, _)| *key)
        .collect();
    eprintln!("truth: {expected:?}; the report agrees on {agree:?}");
    // The model card gives 63-95 % per attribute (class 77 %); this frame's
    // complex cyst is the documented hard case (cyst against mass, its echo
    // pattern). Four of seven is a little under what it says here (five):
    // a broken input, graph or tokenizer agrees on far fewer.
    assert!(
        agree.len() >= 4,
        "the report agrees with the truth on {agree:?} only: {text}; truth {expected:?}"
    );

    // Both task tokens were written; their hidden states become kernels.
    let hidden: Vec<Vec<f32>> = g
        .task_hidden
        .into_iter()
        .map(|h| h.expect("task token written"))
        .collect();
    let kernels = generator.kernels(&hidden).expect("kernels");
    let size = model.manifest.default_kernels.size;
    assert_eq!(kernels.len(), 2 * size);
    assert!(kernels.iter().all(|k| k.is_finite()));
    let defaults = std::fs::read(model_dir().join("default_kernels.f32")).expect("default kernels");
    let first_default = f32::from_le_bytes([defaults[0], defaults[1], defaults[2], defaults[3]]);
    assert_ne!(
        kernels[0], first_default,
        "the image specialises the kernels"
    );
}
