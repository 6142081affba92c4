//! Per-frame inference on the tiny contract model through a real ONNX
//! Runtime: kernel swaps take effect on the next frame and never tear; the
//! model pipeline allocates nothing per frame and reports where it runs.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use sonoflow_core::findings::ImageRegion;
use sonoflow_core::{
    Frame, FrameFormat, FrameId, FramePool, MonotonicClock, PixelFormat, StageStamps,
};
use sonoflow_inference::{EngineOptions, FrameModel, Provider, Runtime};
use sonoflow_model::ModelDir;

fn model() -> (ModelDir, FrameModel) {
    let dir = ModelDir::open(&tiny_model()).expect("tiny model");
    let runtime = Runtime::load(&ort_dylib()).expect("onnxruntime");
    let options = EngineOptions {
        providers: vec![Provider::Cpu],
        ..EngineOptions::default()
    };
    let fm = FrameModel::load(runtime, &dir, &options, None).expect("model loads");
    (dir, fm)
}

fn test_frame(pool: &FramePool) -> Frame {
    let format = FrameFormat::new(PixelFormat::Gray8, 320, 240).expect("format");
    let mut data = pool.acquire(format.len());
    for (i, p) in data.iter_mut().enumerate() {
        *p = ((i * 7) % 251) as u8;
    }
    let mut frame = Frame::new(FrameId(0), format, data, StageStamps::default());
    let region = ImageRegion::Rect {
        x0: 40,
        y0: 20,
        x1: 280,
        y1: 220,
    };
    let config = sonoflow_core::CalibrationSource::Config;
    let calibration = sonoflow_core::Calibration::single(region, None, config, 0.0);
    frame.calibration = Some(std::sync::Arc::new(calibration));
    frame
}

#[test]
fn a_kernel_swap_changes_the_next_frames_and_never_tears() {
    let (dir, mut fm) = model();
    let clock = MonotonicClock::new();
    let pool = FramePool::new(2);
    let frame = test_frame(&pool);
    let slot = fm.kernel_slot();
    let tokens = dir.manifest.default_kernels.tokens.clone();
    let defaults = dir.default_kernels.clone();
    let other: Vec<f32> = defaults.iter().map(|k| -k * 1.5 + 0.1).collect();

    let (before, _) = fm.infer(&frame, &clock).expect("infer");
    assert_eq!(before.kernel_version, 0);
    let reference_a = before.mask_logits.to_vec();
    let v = slot
        .publish(tokens.clone(), other.clone())
        .expect("publish");
    let (after, _) = fm.infer(&frame, &clock).expect("infer");
    assert_eq!(
        after.kernel_version, v,
        "the very next frame uses the new kernels"
    );
    let reference_b = after.mask_logits.to_vec();
    assert_ne!(
        reference_a, reference_b,
        "other kernels segment differently"
    );

    // A publisher alternates the two sets as fast as it can; every result
    // must equal exactly the reference of the set its version names.
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (slot, stop, tokens) = (Arc::clone(&slot), Arc::clone(&stop), tokens.clone());
        std::thread::spawn(move || {
            let mut published = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let data = if i.is_multiple_of(2) {
                    defaults.clone()
                } else {
                    other.clone()
                };
                let version = slot.publish(tokens.clone(), data).expect("publish");
                published.push((version, i.is_multiple_of(2)));
                i += 1;
            }
            published
        })
    };
    // Infer until many versions have gone by (bounded, so a starved
    // publisher thread on a loaded machine cannot hang the test).
    let mut results = Vec::new();
    let mut distinct = std::collections::HashSet::new();
    while distinct.len() < 20 && results.len() < 5000 {
        let (out, _) = fm.infer(&frame, &clock).expect("infer");
        distinct.insert(out.kernel_version);
        results.push((out.kernel_version, out.mask_logits.to_vec()));
    }
    stop.store(true, Ordering::Relaxed);
    let mut published = publisher.join().expect("publisher");
    published.extend([(0, true), (v, false)]);
    let mut seen_versions = std::collections::HashSet::new();
    for (version, logits) in &results {
        let is_default = published
            .iter()
            .find(|(v, _)| v == version)
            .map(|(_, d)| *d)
            .expect("a published version");
        let expected = if is_default {
            &reference_a
        } else {
            &reference_b
        };
        assert!(
            logits == expected,
            "version {version}: outputs match exactly the kernels of that version"
        );
        seen_versions.insert(*version);
    }
    assert!(
        seen_versions.len() >= 3,
        "kernels changed during the run ({} versions seen)",
        seen_versions.len()
    );
}

fn model_pipeline(dir: &Path, extra: &str) -> std::path::PathBuf {
    model_pipeline_at(dir, 60, extra)
}

/// The tiny model's pipeline on a phantom of `fps` frames a second.
fn model_pipeline_at(dir: &Path, fps: u32, extra: &str) -> std::path::PathBuf {
    pipeline_of(dir, &tiny_model(), fps, extra)
}

/// `model`'s pipeline on a phantom of `fps` frames a second, with `extra`
/// keys under `[model]`.
fn pipeline_of(dir: &Path, model: &Path, fps: u32, extra: &str) -> std::path::PathBuf {
    write_definition(
        dir,
        &format!(
            "[source]\nkind = \"phantom\"\nfps = {fps}\n[load]\nenabled = false\n[model]\ndir = \"{}\"\n{extra}\n[[sinks]]\nkind = \"fake\"\n",
            model.display()
        ),
    )
}

/// Runs `pipeline` for 90 frames; checks it succeeded, allocated nothing
/// per frame and failed on no frame; returns its report.
fn run_without_allocations(dir: &Path, pipeline: &Path) -> serde_json::Value {
    let output = run_command(dir, pipeline, &["--frames", "90"])
        .env("ORT_DYLIB_PATH", ort_dylib())
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let r = read_report(dir).expect("report");
    assert_eq!(f64_at(&r, "/allocations_per_frame"), 0.0, "{r:#}");
    assert_eq!(u64_at(&r, "/inference/failures"), 0);
    r
}

#[test]
fn the_model_pipeline_allocates_nothing_per_frame_and_says_where_it_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 20 fps: at 60 a busy machine (a debug build's post-processing took 84 ms
    // a frame under the full suite) dropped every frame after the 30 of
    // warm-up, leaving none to count allocations on.
    let pipeline = model_pipeline_at(dir.path(), 20, "");
    let child = run_command(dir.path(), &pipeline, &["--frames", "120"])
        .env("ORT_DYLIB_PATH", ort_dylib())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start");
    let output = wait_with_limit(child, Duration::from_secs(60));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let r = read_report(dir.path()).expect("report");
    assert_eq!(u64_at(&r, "/frames_in"), 120);
    assert_eq!(f64_at(&r, "/allocations_per_frame"), 0.0, "{r:#}");
    let inference = &r["inference"];
    assert_eq!(str_at(inference, "/model"), "tiny-test-model 0.1.0");
    for graph in ["vision_encoder", "mask_decoder"] {
        let provider = str_at(inference, &format!("/providers/{graph}"));
        let chain = ["tensorrt", "cuda", "cpu"];
        let at = chain
            .iter()
            .position(|p| *p == provider)
            .unwrap_or_else(|| panic!("{graph} on {provider}"));
        // Every provider ahead of the one it runs on says why not (on a
        // CPU-only build: tensorrt and cuda).
        let fallbacks = inference["fallbacks"][graph]
            .as_array()
            .map_or(0, |f| f.len());
        assert_eq!(fallbacks, at, "{graph}: {inference:#}");
    }
    for step in ["preprocess_ms", "encoder_ms", "decoder_ms"] {
        assert!(
            f64_at(inference, &format!("/{step}/p50")) > 0.0,
            "{inference:#}"
        );
        f64_at(inference, &format!("/{step}/p99"));
    }
    // Present (reading a tiny model's outputs can take under the
    // histogram's resolution, so no lower bound).
    f64_at(inference, "/readout_ms/p99");
    // The per-frame path as one figure: never less than its slowest step.
    let path = |q: &str| f64_at(inference, &format!("/model_ms/{q}"));
    assert!(
        path("p50") >= f64_at(inference, "/encoder_ms/p50"),
        "{inference:#}"
    );
    assert!(
        path("p50") <= path("p99") && path("p99") <= path("max"),
        "{inference:#}"
    );
    f64_at(inference, "/warmup_ms");
}

#[test]
fn require_provider_on_a_run_runs_on_it_or_fails_before_any_frame_without_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pipeline = model_pipeline(dir.path(), "");
    let output = run_command(
        dir.path(),
        &pipeline,
        &["--frames", "10", "--require-provider", "tensorrt"],
    )
    .env("ORT_DYLIB_PATH", ort_dylib())
    .output()
    .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Whether TensorRT is built in, asked here, not of the binary under test.
    let built_in = Runtime::load(&ort_dylib()).is_ok() && Provider::TensorRt.compiled_in();
    if output.status.success() {
        // Accepted: every graph of the run is on TensorRT.
        assert!(built_in, "ran without TensorRT built in: {stderr}");
        let r = read_report(dir.path()).expect("report");
        for graph in ["vision_encoder", "mask_decoder"] {
            assert_eq!(
                str_at(&r, &format!("/inference/providers/{graph}")),
                "tensorrt",
                "{r:#}"
            );
        }
        return;
    }
    // Refused (always so without TensorRT): before any frame, saying why.
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the required provider tensorrt cannot run it"),
        "{stderr}"
    );
    // --stats-json is created (empty) before the run to check the path; no report follows.
    let written = std::fs::read_to_string(dir.path().join("report.json")).unwrap_or_default();
    assert!(written.is_empty(), "no frame ran: {written}");
}

#[test]
fn a_model_section_with_a_bad_provider_names_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pipeline = model_pipeline(dir.path(), "providers = [\"tpu\"]");
    let output = run_command(dir.path(), &pipeline, &[])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("key `model.providers`: \"tpu\" is not a provider"),
        "{stderr}"
    );
}

/// A 256x256 frame (umind-nano's input size, so preprocessing moves no
/// pixel) with a dark oval left of centre in a textured field, and the same
/// frame mirrored left to right.
fn frame_and_mirror(pool: &FramePool) -> (Frame, Frame) {
    let format = FrameFormat::new(PixelFormat::Gray8, 256, 256).expect("format");
    let pixel = |x: usize, y: usize| {
        let (dx, dy) = (x as f32 - 90.0, y as f32 - 120.0);
        let inside = (dx / 30.0).powi(2) + (dy / 20.0).powi(2) < 1.0;
        let texture = ((x * 37 + y * 91 + x * y) % 61) as u8;
        if inside {
            10 + texture / 4
        } else {
            90 + texture
        }
    };
    let make = |mirrored: bool| {
        let mut data = pool.acquire(format.len());
        for (i, p) in data.iter_mut().enumerate() {
            let (x, y) = (i % 256, i / 256);
            *p = pixel(if mirrored { 255 - x } else { x }, y);
        }
        Frame::new(FrameId(0), format, data, StageStamps::default())
    };
    (make(false), make(true))
}

/// Test-time mirroring is what it says: the mean of the frame's logits and
/// the mirrored frame's mirrored back, on the shipped umind-nano; the
/// image tokens stay the unmirrored pass's.
#[test]
fn mirror_average_is_the_mean_of_the_frame_and_its_mirror_mirrored_back() {
    let dir = ModelDir::open(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../onnx/umind-nano"),
    )
    .expect("umind-nano");
    let runtime = Runtime::load(&ort_dylib()).expect("onnxruntime");
    let mut fm = FrameModel::load(runtime, &dir, &cpu(), None).expect("loads");
    let clock = MonotonicClock::new();
    let pool = FramePool::new(4);
    let (frame, mirror) = frame_and_mirror(&pool);
    let (plain, _) = fm.infer(&frame, &clock).expect("plain");
    let (of_mirror, _) = fm.infer(&mirror, &clock).expect("mirrored frame");
    fm.set_mirror_average(true);
    let (averaged, times) = fm.infer(&frame, &clock).expect("averaged");
    assert!(times.encoder > Duration::ZERO);
    let width = averaged.width;
    assert_eq!(
        (averaged.tasks, averaged.height, width),
        (plain.tasks, plain.height, plain.width)
    );
    let mut worst = 0f32;
    let mut asymmetry = 0f32;
    for (i, value) in averaged.mask_logits.iter().enumerate() {
        let mirrored = i - i % width + (width - 1 - i % width);
        let mean = 0.5 * (plain.mask_logits[i] + of_mirror.mask_logits[mirrored]);
        worst = worst.max((value - mean).abs());
        asymmetry = asymmetry.max((plain.mask_logits[i] - of_mirror.mask_logits[mirrored]).abs());
    }
    assert!(worst < 1e-4, "averaged logits off the mean by {worst}");
    // The two passes differ, so the mean is not the plain pass.
    assert!(
        asymmetry > 1e-3,
        "the model alone is mirror-symmetric to {asymmetry}"
    );
    let plane = averaged.height * width;
    for (task, score) in averaged.scores.iter().enumerate() {
        let strongest = averaged.mask_logits[task * plane..(task + 1) * plane]
            .iter()
            .fold(f32::NEG_INFINITY, |m, v| m.max(*v));
        let expected = 1.0 / (1.0 + (-strongest).exp());
        assert!(
            (score - expected).abs() < 1e-6,
            "task {task}: {score} vs {expected}"
        );
    }
    assert_eq!(
        averaged.image_tokens.as_deref(),
        plain.image_tokens.as_deref(),
        "the reasoning head reads the unmirrored frame's tokens"
    );
    // Off again: the plain pass, exactly.
    fm.set_mirror_average(false);
    let (again, _) = fm.infer(&frame, &clock).expect("plain again");
    assert_eq!(&again.mask_logits[..], &plain.mask_logits[..]);
}

fn fp16_model() -> std::path::PathBuf {
    tiny_model().with_file_name("tiny-model-fp16")
}

#[test]
fn an_fp16_model_runs_and_agrees_with_its_float32_twin() {
    let runtime = Runtime::load(&ort_dylib()).expect("onnxruntime");
    let options = EngineOptions {
        providers: vec![Provider::Cpu],
        ..EngineOptions::default()
    };
    let clock = MonotonicClock::new();
    let pool = FramePool::new(2);
    let frame = test_frame(&pool);
    let mut outputs = Vec::new();
    for dir in [tiny_model(), fp16_model()] {
        let model = ModelDir::open(&dir).expect("model");
        let mut fm = FrameModel::load(runtime, &model, &options, None).expect("loads");
        let (out, _) = fm.infer(&frame, &clock).expect("infer");
        outputs.push((out.mask_logits.to_vec(), out.scores.to_vec()));
    }
    let (f32_out, f16_out) = (&outputs[0], &outputs[1]);
    assert_eq!(f32_out.0.len(), f16_out.0.len());
    let scale = f32_out.0.iter().fold(0f32, |m, v| m.max(v.abs())).max(1.0);
    let worst = f32_out
        .0
        .iter()
        .zip(&f16_out.0)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        worst < 0.02 * scale,
        "fp16 logits within half-precision error: worst {worst}, scale {scale}"
    );
    for (a, b) in f32_out.1.iter().zip(&f16_out.1) {
        assert!((a - b).abs() < 0.01, "scores {a} vs {b}");
    }
}

#[test]
fn the_fp16_model_pipeline_also_allocates_nothing_per_frame() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 15 fps: half precision runs slowly on a CPU, and a busy machine that
    // drops most frames would leave too few after warm-up to count on.
    let pipeline = pipeline_of(dir.path(), &fp16_model(), 15, "");
    let r = run_without_allocations(dir.path(), &pipeline);
    assert_eq!(str_at(&r, "/inference/model"), "tiny-test-model-fp16 0.1.0");
}

#[test]
fn the_mirrored_model_pipeline_also_allocates_nothing_per_frame() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 15 fps: each frame runs the graphs twice.
    let pipeline = model_pipeline_at(dir.path(), 15, "mirror_average = true");
    let r = run_without_allocations(dir.path(), &pipeline);
    assert_eq!(
        r["inference"]["mirror_average"],
        serde_json::json!(true),
        "{r:#}"
    );
}

fn cpu() -> EngineOptions {
    EngineOptions {
        providers: vec![Provider::Cpu],
        ..EngineOptions::default()
    }
}

#[test]
fn a_model_that_writes_nan_on_a_real_frame_fails_that_frame_naming_graph_and_tensor() {
    let runtime = Runtime::load(&ort_dylib()).expect("onnxruntime");
    let model = ModelDir::open(&tiny_model().with_file_name("tiny-model-nan")).expect("model");
    let mut fm = FrameModel::load(runtime, &model, &cpu(), None).expect("loads");
    let clock = MonotonicClock::new();
    fm.warm_up(2, &clock)
        .expect("finite on the blank warm-up input");
    let pool = FramePool::new(2);
    let err = fm
        .infer(&test_frame(&pool), &clock)
        .expect_err("NaN is not a result");
    assert!(err.is_invalid_output(), "{err}");
    let said = err.to_string();
    assert!(
        said.contains("vision_encoder.onnx: output `image_features` of the vision_encoder: ")
            && said.contains("values are not finite (NaN or infinity)"),
        "{said}"
    );
}

#[test]
fn nan_default_kernels_stop_the_frame_path_at_load() {
    let err = ModelDir::open(&tiny_model().with_file_name("tiny-model-nan-kernels"))
        .expect_err("refused at load");
    assert!(
        err.to_string()
            .contains("default_kernels.f32: 2 of 82 default kernel values are not finite"),
        "{err}"
    );
}

#[test]
fn kernels_that_overflow_the_decoder_make_the_frame_invalid_and_nan_kernels_are_refused() {
    let (dir, mut fm) = model();
    let clock = MonotonicClock::new();
    let pool = FramePool::new(2);
    let frame = test_frame(&pool);
    let slot = fm.kernel_slot();
    let tokens = dir.manifest.default_kernels.tokens.clone();
    let (good, _) = fm.infer(&frame, &clock).expect("default kernels");
    let good_logits = good.mask_logits.to_vec();
    drop(good);

    // Finite kernels whose products overflow float32, as FP16 overflows under TensorRT.
    let huge = vec![1e30f32; dir.default_kernels.len()];
    let v = slot.publish(tokens.clone(), huge).expect("finite kernels");
    let err = fm.infer(&frame, &clock).expect_err("infinite logits");
    assert!(err.is_invalid_output(), "{err}");
    assert!(
        err.to_string()
            .contains("mask_decoder.onnx: output `mask_logits` of the mask_decoder: "),
        "{err}"
    );

    // NaN kernels never reach the decoder: the slot keeps the last good ones.
    let restored = slot
        .publish(tokens.clone(), dir.default_kernels.clone())
        .expect("defaults");
    assert!(restored > v);
    let mut nan = dir.default_kernels.clone();
    nan[5] = f32::NAN;
    let refused = slot.publish(tokens, nan).expect_err("refused");
    assert!(refused.is_invalid_output(), "{refused}");
    let (out, _) = fm.infer(&frame, &clock).expect("the last good kernels");
    assert_eq!(out.kernel_version, restored);
    assert_eq!(out.mask_logits.to_vec(), good_logits);
}
