//! The reasoning head on the shipped model, umind-nano: a task prompt
//! changes what the per-frame decoder segments (through the kernels the
//! head publishes); a default run writes grounded reports, swaps kernels
//! and shows the interpretation; a missing model or a timeout leaves the
//! frame path running with the interpretation marked unavailable.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use sonoflow_core::findings::{GroundTruth, LesionTruth};
use sonoflow_core::{Frame, FramePool, ModelOutputs, MonotonicClock};
use sonoflow_inference::{EngineOptions, FrameModel, Generator, KernelSlot, Runtime};
use sonoflow_model::ModelDir;
use sonoflow_phantom::{FindingClass, Phantom, PhantomConfig};
use sonoflow_reasoning::grounding::ground;
use sonoflow_reasoning::prompt::PromptCodec;
use sonoflow_reasoning::stream::{ReportStream, PUBLISH_EVERY};
use sonoflow_reasoning::{Calipers, Sampler, Sampling};

const LIMIT: Duration = Duration::from_secs(120);

fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../onnx/umind-nano")
}

/// The first phantom scene (by seed) whose first frame shows a cyst and a
/// mass, both well in view.
fn cyst_and_mass_frame() -> (Frame, GroundTruth) {
    for seed in 1..400 {
        let config = PhantomConfig {
            seed,
            lesions: 2,
            ..PhantomConfig::default()
        };
        let mut phantom = Phantom::new(config).expect("phantom");
        let (frame, truth) = phantom.render_frame(0, &FramePool::new(1));
        let has = |c: FindingClass| {
            truth
                .lesions
                .iter()
                .any(|l| l.class == c.name() && l.area_px > 3000)
        };
        if has(FindingClass::Cyst) && has(FindingClass::Mass) {
            eprintln!(
                "seed {seed}: {:?}",
                truth
                    .lesions
                    .iter()
                    .map(|l| (l.class.as_str(), l.area_px))
                    .collect::<Vec<_>>()
            );
            return (frame, truth);
        }
    }
    panic!("no phantom seed below 400 shows a cyst and a mass");
}

/// Share of `lesion`'s pixels where the segmentation row says "lesion".
fn coverage(outputs: &ModelOutputs, truth: &GroundTruth, lesion: &LesionTruth) -> f64 {
    let g = outputs.geometry;
    let (cells_x, cells_y) = (
        outputs.width as f32 / g.input_width as f32,
        outputs.height as f32 / g.input_height as f32,
    );
    let (mut inside, mut on) = (0u32, 0u32);
    let b = lesion.bbox;
    for y in b.y0.max(0.0) as u32..(b.y1 as u32).min(truth.labels.height) {
        for x in b.x0.max(0.0) as u32..(b.x1 as u32).min(truth.labels.width) {
            if truth.labels.get(x, y) != lesion.label {
                continue;
            }
            inside += 1;
            let (u, v) = g.to_model(x as f32 + 0.5, y as f32 + 0.5);
            let (cx, cy) = ((u * cells_x) as usize, (v * cells_y) as usize);
            if cx < outputs.width
                && cy < outputs.height
                && outputs.mask_logits[cy * outputs.width + cx] > 0.0
            {
                on += 1;
            }
        }
    }
    on as f64 / inside.max(1) as f64
}

#[test]
fn a_task_prompt_changes_what_the_per_frame_decoder_segments() {
    let (frame, truth) = cyst_and_mass_frame();
    let model = ModelDir::open(&model_dir()).expect("model");
    let runtime = Runtime::load(&ort_dylib()).expect("onnx runtime");
    let options = EngineOptions::default();
    let clock = MonotonicClock::new();
    let k = &model.manifest.default_kernels;
    let slot = KernelSlot::new(k.tokens.clone(), k.size, model.default_kernels.clone());
    let mut frame_model =
        FrameModel::load(runtime, &model, &options, Some(Arc::clone(&slot))).expect("frame model");
    let mut generator = Generator::load(runtime, &model, &options).expect("reasoning graphs");
    let codec = PromptCodec::load(&model).expect("tokenizer");
    let (before, _) = frame_model.infer(&frame, &clock).expect("infer");
    let image_tokens = before
        .image_tokens
        .as_deref()
        .expect("the encoder writes image tokens")
        .to_vec();
    let lesion = |c: FindingClass| {
        truth
            .lesions
            .iter()
            .filter(|l| l.class == c.name())
            .max_by_key(|l| l.area_px)
            .expect("lesion")
    };
    let (cyst, mass) = (lesion(FindingClass::Cyst), lesion(FindingClass::Mass));
    let cover = |o: &ModelOutputs| (coverage(o, &truth, cyst), coverage(o, &truth, mass));
    eprintln!(
        "default kernels: cyst {:.2}, mass {:.2}",
        cover(&before).0,
        cover(&before).1
    );

    let mut segment = |prompt: &str| {
        let ids = codec.encode(prompt).expect("prompt in the vocabulary");
        let mut sampler = Sampler::new(Sampling::Greedy, 0);
        let g = generator
            .generate(
                &image_tokens,
                &ids,
                codec.eos,
                &codec.task_ids,
                16,
                &mut |l| sampler.pick(l),
                &mut |_| std::ops::ControlFlow::Continue(()),
            )
            .expect("generate");
        eprintln!("{prompt}: wrote {:?}", codec.decode(&g.tokens));
        let hidden: Vec<Vec<f32>> = g
            .task_hidden
            .into_iter()
            .map(|h| h.expect("every task token written"))
            .collect();
        let kernels = generator.kernels(&hidden).expect("kernels");
        let version = slot
            .publish(codec.task_tokens.clone(), kernels)
            .expect("publish");
        let (outputs, _) = frame_model.infer(&frame, &clock).expect("infer");
        assert_eq!(
            outputs.kernel_version, version,
            "the next frame uses the published kernels"
        );
        let c = cover(&outputs);
        eprintln!("{prompt}: cyst covered {:.2}, mass covered {:.2}", c.0, c.1);
        c
    };
    let (cyst_asked, mass_asked, all_asked) = (
        segment("[SEG] cyst"),
        segment("[SEG] mass"),
        segment("[SEG] lesion"),
    );
    // Asked for cysts, the decoder drops the mass it segments for every other
    // prompt and keeps part of the cyst (measured with the shipped model:
    // cyst 0.35, mass 0.01; "[SEG] lesion" 0.96 and 0.98; on the validation
    // frames holding both, "[SEG] cyst" Dice is 0.80, docs/model-card.md).
    assert!(
        cyst_asked.0 > 0.3 && cyst_asked.1 < 0.2,
        "asked for cysts: {cyst_asked:?}"
    );
    assert!(
        all_asked.0 > 0.5 && all_asked.1 > 0.5,
        "asked for every lesion: {all_asked:?}"
    );
    // Asked for masses it keeps the mass; it does not yet drop every cyst
    // (measured: cyst 0.69, mass 0.98; validation Dice of "[SEG] mass" on
    // frames holding both is 0.61, docs/model-card.md).
    assert!(mass_asked.1 > 0.5, "asked for masses: {mass_asked:?}");
    assert!(
        all_asked.1 - cyst_asked.1 > 0.5,
        "the prompt, not the image, decides: {cyst_asked:?} vs {all_asked:?}"
    );
}

/// A live phantom run with the head; returns the run.
fn run_with_head(dir: &std::path::Path, reasoning: &str, frames: u32) -> Run {
    run_with_head_on(dir, &model_dir(), reasoning, frames)
}

/// [`run_with_head`] with the model in `model`.
fn run_with_head_on(
    dir: &std::path::Path,
    model: &std::path::Path,
    reasoning: &str,
    frames: u32,
) -> Run {
    let definition = format!(
        "name = \"reasoning\"\n\
         [source]\nkind = \"phantom\"\nseed = 1\nlesions = 1\nfps = 30\n\
         [process]\nkind = \"model\"\n\
         [model]\ndir = \"{}\"\nintra_threads = 1\nstall_after_ms = 10000\n\
         [reasoning]\n{reasoning}\n\
         [load]\nenabled = false\n\
         [[sinks]]\nkind = \"fake\"\n",
        model.display()
    );
    run_pipeline(dir, &definition, &["--frames", &frames.to_string()], LIMIT)
}

#[test]
fn a_run_writes_grounded_reports_and_swaps_the_decoders_kernels() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_with_head(
        dir.path(),
        "min_interval_ms = 500\nmax_interval_ms = 1000",
        240,
    );
    let r = run.assert_success();
    let s = &r["reasoning"];
    eprintln!("{}", serde_json::to_string_pretty(s).unwrap_or_default());
    assert!(
        u64_at(s, "/keyframes") >= 3,
        "keyframes at least every second over 8 s"
    );
    // How many reports fit in 8 s is the machine's business; one must finish
    // (after a report cancelled for its age the next runs to its end, so a
    // loaded machine still gets one)
    // and swap the decoder's kernels.
    assert!(
        u64_at(s, "/reports") >= 1 && u64_at(s, "/kernel_swaps") >= 1,
        "{s:#}"
    );
    assert!(f64_at(s, "/ttft_ms/p50") > 0.0 && f64_at(s, "/tokens_per_s") > 0.0);
    assert_eq!(
        u64_at(s, "/frames_head_idle") + u64_at(s, "/frames_head_busy"),
        u64_at(r, "/frames_out")
    );
    assert!(
        u64_at(r, "/inference/kernel_version") >= 1,
        "the decoder ran on published kernels: {}",
        r["inference"]
    );

    // The latest report: structured, and every number from the calipers.
    let latest = &s["latest"];
    assert_eq!(str_at(latest, "/prompt"), "[DIAG]");
    assert!(latest["lesion"].as_bool().unwrap_or(false), "{latest}");
    assert!(
        ["cyst", "mass"].contains(&str_at(latest, "/class")),
        "{latest}"
    );
    assert!(
        latest["attributes"]["shape"].is_string() && latest["impression"].is_string(),
        "{latest}"
    );
    let generated = str_at(latest, "/generated");
    assert!(
        !generated.chars().any(|c| c.is_ascii_digit()),
        "the model writes no number itself: {generated}"
    );
    let text = str_at(latest, "/text");
    let long = f64_at(latest, "/long_axis_mm");
    assert!(
        text.contains(&format!("long axis: {long:.1} ± ")),
        "the text quotes the keyframe's caliper: {text} / {long}"
    );
    assert_eq!(u64_at(latest, "/grounding/filled"), 2, "{latest}");
    assert_eq!(
        latest["grounding"]["unverified"].as_array().map(Vec::len),
        Some(0),
        "{latest}"
    );
    assert!(u64_at(latest, "/keyframe") < u64_at(r, "/frames_in"));
}

#[test]
fn a_missing_reasoning_model_leaves_the_frame_path_running_and_says_why_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_with_head(dir.path(), "model = \"/nonexistent/umind\"", 60);
    let r = run.assert_success();
    assert!(u64_at(r, "/frames_out") >= 10, "frames went through");
    assert!(u64_at(r, "/accuracy/frames") > 0, "the per-frame model ran");
    let s = &r["reasoning"];
    assert!(
        str_at(s, "/error").contains("/nonexistent/umind"),
        "the cause names the path: {s}"
    );
    assert_eq!((u64_at(s, "/reports"), u64_at(s, "/kernel_swaps")), (0, 0));
    assert_eq!(
        u64_at(r, "/inference/kernel_version"),
        0,
        "the decoder kept its default kernels"
    );
    let log = run.stderr();
    assert_eq!(
        log.matches("the reasoning head is unavailable").count(),
        1,
        "logged once: {log}"
    );
}

#[test]
fn a_generation_past_its_timeout_is_stopped_counted_and_logged_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_with_head(
        dir.path(),
        "timeout_ms = 1\nmin_interval_ms = 300\nmax_interval_ms = 400",
        90,
    );
    let r = run.assert_success();
    assert!(u64_at(r, "/frames_out") >= 10, "frames went through");
    let s = &r["reasoning"];
    assert!(u64_at(s, "/timeouts") >= 2, "{s}");
    assert_eq!(
        (u64_at(s, "/reports"), u64_at(s, "/kernel_swaps")),
        (0, 0),
        "{s}"
    );
    let log = run.stderr();
    assert_eq!(
        log.matches("the reasoning head failed on a keyframe")
            .count(),
        1,
        "logged once: {log}"
    );
    assert!(log.contains("timed out after 1 ms"), "{log}");
}

#[test]
fn a_prompt_outside_the_vocabulary_is_refused_naming_the_words() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_with_head(dir.path(), "prompt = \"[SEG] thyroid nodule\"", 30);
    let r = run.assert_success();
    let error = str_at(&r["reasoning"], "/error");
    assert!(
        error.contains("thyroid, nodule") && error.contains("[SEG] cyst"),
        "{error}"
    );
}

/// A copy of umind-nano (files, not links) that `change` may alter.
fn umind_copy(change: impl Fn(&std::path::Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(model_dir()).expect("umind-nano") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
    }
    change(dir.path());
    dir
}

#[test]
fn generation_stops_at_the_decoders_position_table_and_says_it_was_cut_short() {
    let model = ModelDir::open(&model_dir()).expect("model");
    let limit = model
        .manifest
        .max_positions()
        .expect("graphs.decoder.max_positions");
    let runtime = Runtime::load(&ort_dylib()).expect("onnx runtime");
    let options = EngineOptions::default();
    let clock = MonotonicClock::new();
    let mut frame_model = FrameModel::load(runtime, &model, &options, None).expect("frame model");
    let mut generator = Generator::load(runtime, &model, &options).expect("reasoning graphs");
    let codec = PromptCodec::load(&model).expect("tokenizer");
    let (frame, _) = Phantom::new(PhantomConfig::default())
        .expect("phantom")
        .render_frame(0, &FramePool::new(1));
    let (outputs, _) = frame_model.infer(&frame, &clock).expect("infer");
    let image_tokens = outputs
        .image_tokens
        .as_deref()
        .expect("image tokens")
        .to_vec();
    let image = model
        .manifest
        .image_token_count()
        .expect("image token count");
    let prompt = codec.encode("[DIAG]").expect("prompt");
    // A model that never writes its end token (the best token other than it).
    let eos = codec.eos;
    let mut never_ends = |logits: &[f32]| {
        logits
            .iter()
            .enumerate()
            .filter(|(i, _)| *i as i64 != eos)
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i as i64)
    };
    let g = generator
        .generate(
            &image_tokens,
            &prompt,
            eos,
            &codec.task_ids,
            1024,
            &mut never_ends,
            &mut |_| std::ops::ControlFlow::Continue(()),
        )
        .expect("cut short, not an ONNX Runtime error");
    assert!(g.truncated && !g.stopped);
    // Every fed position is below the limit; the last token comes from the last position.
    assert_eq!(g.tokens.len(), limit + 1 - image - prompt.len());

    // A limit of its own ends it the same way.
    let g = generator
        .generate(
            &image_tokens,
            &prompt,
            eos,
            &codec.task_ids,
            5,
            &mut never_ends,
            &mut |_| std::ops::ControlFlow::Continue(()),
        )
        .expect("generate");
    assert!(g.truncated && g.tokens.len() == 5);

    // A prompt that cannot fit is refused before anything runs, saying why.
    let long = vec![prompt[0]; limit];
    let err = generator
        .generate(
            &image_tokens,
            &long,
            eos,
            &codec.task_ids,
            8,
            &mut never_ends,
            &mut |_| std::ops::ControlFlow::Continue(()),
        )
        .expect_err("too long");
    assert!(
        err.to_string().contains(&format!(
            "more than the decoder's {limit} (graphs.decoder.max_positions)"
        )),
        "{err}"
    );
}

#[test]
fn a_missing_tokenizer_disables_the_head_not_the_run() {
    let model = umind_copy(|d| std::fs::remove_file(d.join("tokenizer.json")).expect("rm"));
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_with_head_on(dir.path(), model.path(), "", 60);
    let r = run.assert_success();
    assert!(u64_at(r, "/frames_out") >= 10, "frames went through");
    assert!(u64_at(r, "/accuracy/frames") > 0, "the per-frame model ran");
    let s = &r["reasoning"];
    assert!(
        str_at(s, "/error").contains("tokenizer.json, which does not exist"),
        "the cause names the file: {s}"
    );
    assert_eq!(u64_at(s, "/reports"), 0);
    let log = run.stderr();
    assert_eq!(
        log.matches("the reasoning head is unavailable").count(),
        1,
        "logged once: {log}"
    );
}

#[test]
fn nan_kernels_from_the_head_are_refused_counted_and_the_decoder_keeps_its_own() {
    let model = umind_copy(|d| {
        let projector = d.join("kernel_projector.onnx");
        std::fs::copy(
            model_dir().join("../../tests/fixtures/umind-nan-projector/kernel_projector.onnx"),
            &projector,
        )
        .expect("swap the projector");
        let manifest = d.join("sonoflow-model.toml");
        let text = std::fs::read_to_string(&manifest).expect("manifest");
        let old =
            sonoflow_model::sha256_hex(&model_dir().join("kernel_projector.onnx")).expect("hash");
        let new = sonoflow_model::sha256_hex(&projector).expect("hash");
        std::fs::write(&manifest, text.replace(&old, &new)).expect("write");
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_with_head_on(
        dir.path(),
        model.path(),
        "min_interval_ms = 500\nmax_interval_ms = 1000",
        240,
    );
    let r = run.assert_success();
    let s = &r["reasoning"];
    assert!(u64_at(s, "/reports") >= 1, "the reports stand: {s}");
    assert!(u64_at(s, "/rejected_kernels") >= 1, "{s}");
    assert_eq!(u64_at(s, "/kernel_swaps"), 0, "{s}");
    assert_eq!(
        u64_at(r, "/inference/kernel_version"),
        0,
        "the decoder kept its default kernels"
    );
    assert!(s["latest"]["kernel_version"].is_null(), "{s}");
    let log = run.stderr();
    assert_eq!(
        log.matches("kernels refused").count(),
        1,
        "logged once: {log}"
    );
}

#[test]
fn a_long_report_streams_at_the_same_cost_per_token_with_the_models_tokenizer() {
    let model = ModelDir::open(&model_dir()).expect("model");
    let codec = PromptCodec::load(&model).expect("tokenizer");
    let report =
        "finding : mass . shape : oval . orientation : parallel . margin : circumscribed . \
        echo pattern : hypoechoic . posterior features : none . calcifications : none . \
        assessment : probably benign . long axis : <long> mm . short axis : <short> mm .";
    // Forty reports' worth of tokens, ending with the task tokens.
    let text = format!("{} [SEG] [DET]", vec![report; 40].join(" "));
    let ids = codec.encode(&text).expect("every word in the vocabulary");
    let calipers = Calipers::default();
    let mut stream = ReportStream::new(&codec, &model.manifest.report, calipers);
    let (t0, step) = (std::time::Instant::now(), Duration::from_micros(400));
    let mut work = Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        stream.push(id, t0 + step * i as u32);
        work.push(stream.work());
    }
    let last = *work.last().expect("tokens");
    assert_eq!(
        last.decoded,
        ids.len(),
        "one decode step a token, never the whole text"
    );
    // The last tenth of the tokens cost what the first tenth did: nothing
    // grows with the text so far (the longest word is "microlobulated").
    let tenth = ids.len() / 10;
    let bytes = |from: usize, to: usize| work[to].grounded_bytes - work[from].grounded_bytes;
    let (early, late) = (bytes(0, tenth), bytes(ids.len() - 1 - tenth, ids.len() - 1));
    assert!(
        late <= early + 64,
        "grounded bytes: first tenth {early}, last tenth {late}"
    );
    assert!(last.max_token_bytes <= "microlobulated".len(), "{last:?}");
    // The board got a text at most once per PUBLISH_EVERY, not per token.
    let written = step * ids.len() as u32;
    assert!(
        last.published <= (written.as_micros() / PUBLISH_EVERY.as_micros()) as usize + 1,
        "{} texts for {} tokens",
        last.published,
        ids.len()
    );
    // And the result is the tokenizer's text, grounded as a whole.
    let (generated, grounded) = stream.finish();
    assert_eq!(generated, codec.decode(&ids));
    assert_eq!(
        grounded,
        ground(&generated, &calipers, &model.manifest.report)
    );
    assert_eq!(
        grounded.text.matches("long axis: not measured.").count(),
        40
    );
}

#[test]
fn prompt_examples_and_report_placeholders_come_from_the_manifest() {
    let manifest = |d: &std::path::Path| d.join("sonoflow-model.toml");
    let edit = |from: &'static str, to: &'static str| {
        move |d: &std::path::Path| {
            let text = std::fs::read_to_string(manifest(d)).expect("manifest");
            assert!(text.contains(from), "{from}");
            std::fs::write(manifest(d), text.replacen(from, to, 1)).expect("write");
        }
    };
    let refusal = |dir: &std::path::Path| {
        let model = ModelDir::open(dir).expect("model");
        let codec = PromptCodec::load(&model).expect("tokenizer");
        codec
            .encode("[SEG] thyroid")
            .expect_err("not a word of the model")
            .to_string()
    };
    // The manifest's prompts, as umind-nano ships them.
    let error = refusal(&model_dir());
    assert!(
        error.contains(r#""[DIAG]", "[SEG] cyst", "[SEG] mass", "[SEG] lesion""#),
        "{error}"
    );
    // Without them, the task tokens.
    let plain = umind_copy(edit(
        "prompts = [\"[DIAG]\", \"[SEG] cyst\", \"[SEG] mass\", \"[SEG] lesion\"]\n",
        "",
    ));
    let error = refusal(plain.path());
    assert!(
        error.contains(r#""[SEG]", "[DET]", "[MEAS]", "[DIAG]""#),
        "{error}"
    );
    // A placeholder the tokenizer does not know is refused when the head (or model check) loads it.
    let unknown = umind_copy(edit(
        "placeholder = \"<long>\"",
        "placeholder = \"<length>\"",
    ));
    let model = ModelDir::open(unknown.path()).expect("model");
    let error = PromptCodec::load(&model)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(error.contains("no `<length>`"), "{error}");
}
