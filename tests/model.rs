//! `sonoflow model check` and `sonoflow model info` through the real binary
//! and a real ONNX Runtime, on the tiny contract model and broken copies.

mod common;

use std::ffi::OsStr;

use common::*;
use sonoflow_inference::{Provider, Runtime};

fn check(dir: &std::path::Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let mut args: Vec<&OsStr> = vec![OsStr::new("model"), OsStr::new("check"), dir.as_os_str()];
    args.extend(extra.iter().map(OsStr::new));
    sonoflow(&args)
}

#[test]
fn a_good_model_checks_out_and_says_where_each_graph_runs() {
    let (code, stdout, stderr) = check(&tiny_model(), &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    for graph in ["vision_encoder", "mask_decoder", "kernel_projector"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(graph))
            .unwrap_or_else(|| panic!("{graph} in {stdout}"));
        assert!(
            line.contains(" ok ") && line.contains("dummy run"),
            "{line}"
        );
    }
    assert!(
        stdout.contains("model tiny-test-model 0.1.0: ok"),
        "{stdout}"
    );
}

/// Whether the ONNX Runtime the tests use was built with `provider`, asked
/// here directly, independently of what the binary under test says.
fn built_with(provider: Provider) -> bool {
    Runtime::load(&ort_dylib()).expect("onnxruntime");
    provider.compiled_in()
}

/// Each graph of `model check` output: (role, provider it runs on, the
/// providers it says it was not put on).
fn placements(stdout: &str) -> Vec<(String, String, Vec<String>)> {
    let mut graphs: Vec<(String, String, Vec<String>)> = Vec::new();
    for line in stdout.lines() {
        if let Some((role, rest)) = line.split_once(" ok  on ") {
            let provider = rest.split_whitespace().next().unwrap_or_default();
            graphs.push((role.trim().to_owned(), provider.to_owned(), Vec::new()));
        } else if let Some((_, rest)) = line.split_once("     not on ") {
            let provider = rest.split(':').next().unwrap_or_default();
            if let Some(graph) = graphs.last_mut() {
                graph.2.push(provider.to_owned());
            }
        }
    }
    graphs
}

#[test]
fn absent_gpu_providers_are_reported_as_fallbacks_never_silently() {
    let (code, stdout, stderr) = check(&tiny_model(), &["--providers", "tensorrt,cuda,cpu"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let chain = ["tensorrt", "cuda", "cpu"];
    let graphs = placements(&stdout);
    assert_eq!(graphs.len(), 3, "{stdout}");
    for (role, provider, skipped) in &graphs {
        // Whatever this machine has: every provider ahead of the one a graph
        // runs on says why not, in order, and no other does.
        let at = chain
            .iter()
            .position(|p| p == provider)
            .unwrap_or_else(|| panic!("{role} on {provider}: {stdout}"));
        assert_eq!(skipped, &chain[..at], "{role}: {stdout}");
    }
    if !built_with(Provider::TensorRt) && !built_with(Provider::Cuda) {
        // A CPU-only ONNX Runtime: every graph is on the CPU.
        assert!(graphs.iter().all(|g| g.1 == "cpu"), "{stdout}");
    }
}

#[test]
fn require_provider_tensorrt_runs_on_it_or_fails_cleanly_without_it() {
    let (code, stdout, stderr) = check(&tiny_model(), &["--require-provider", "tensorrt"]);
    if code == Some(0) {
        // Accepted: then every graph really is on TensorRT, which this
        // ONNX Runtime must have been built with.
        assert!(built_with(Provider::TensorRt), "{stdout}{stderr}");
        for graph in ["vision_encoder", "mask_decoder", "kernel_projector"] {
            let line = stdout
                .lines()
                .find(|l| l.starts_with(graph))
                .unwrap_or_else(|| panic!("{graph} in {stdout}"));
            assert!(line.contains(" ok  on tensorrt"), "{line}");
        }
        return;
    }
    // Refused: cleanly, saying why (always so where TensorRT is not built in).
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("the required provider tensorrt cannot run it"),
        "{stderr}"
    );
}

#[test]
fn a_tensor_the_graph_does_not_have_is_named_with_what_it_has() {
    // Hashes and the manifest's own cross-checks stay valid; only the real graph disagrees.
    let dir = edited_tiny_model(|t| {
        t.replace("name = \"scores\"", "name = \"confidence\"")
            .replace("scores = \"scores\"", "scores = \"confidence\"")
    });
    let (code, _, stderr) = check(dir.path(), &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("mask_decoder.onnx: tensor `confidence`: expected an output of the graph (the manifest declares it), found outputs [\"mask_logits\", \"scores\"]"),
        "{stderr}"
    );
}

#[test]
fn a_shape_the_graph_does_not_have_says_expected_and_found() {
    let dir = edited_tiny_model(|t| {
        t.replace(
            "shape = [\"batch\", \"tasks\"] }",
            "shape = [\"batch\", 2] }",
        )
    });
    let (code, _, stderr) = check(dir.path(), &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr
            .contains("tensor `scores`: expected float32 [batch, 2], found float32 [batch, tasks]"),
        "{stderr}"
    );
}

#[test]
fn broken_directories_fail_before_onnx_runtime_with_the_file_named() {
    let dir = edited_tiny_model(|t| t.replacen("sha256 = \"", "sha256 = \"ff", 1));
    let (code, _, stderr) = check(dir.path(), &[]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("does not match the manifest's ff"),
        "{stderr}"
    );
    let (code, _, stderr) = check(std::path::Path::new("/nonexistent/model"), &[]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("/nonexistent/model/sonoflow-model.toml: cannot read"),
        "{stderr}"
    );
}

#[test]
fn info_prints_graphs_parameters_opsets_and_task_tokens() {
    let (code, stdout, stderr) = sonoflow(&[
        OsStr::new("model"),
        OsStr::new("info"),
        tiny_model().as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let encoder = stdout
        .lines()
        .find(|l| l.starts_with("vision_encoder"))
        .expect("encoder row");
    assert!(
        encoder.contains(" 267 ") && encoder.contains("ai.onnx:17"),
        "{encoder}"
    );
    assert!(
        stdout.contains("task token [SEG]    drives Segmentation (lesion)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("total") && stdout.contains(" 997"),
        "{stdout}"
    );
}

#[test]
fn an_fp16_model_checks_out() {
    let (code, stdout, stderr) = check(
        &tiny_model().with_file_name("tiny-model-fp16"),
        &["--providers", "cpu"],
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("model tiny-test-model-fp16 0.1.0: ok"),
        "{stdout}"
    );
}

fn fixture(name: &str) -> std::path::PathBuf {
    tiny_model().with_file_name(name)
}

fn umind_nano() -> std::path::PathBuf {
    tiny_model().join("../../../onnx/umind-nano")
}

/// A copy of umind-nano (files, not links) that `change` may alter.
fn umind_copy(change: impl Fn(&std::path::Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(umind_nano()).expect("umind-nano") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
    }
    change(dir.path());
    dir
}

/// Points `file`'s sha256 in the manifest of `dir` at the file as it is now.
fn rehash(dir: &std::path::Path, file: &str) {
    let manifest = dir.join("sonoflow-model.toml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    let at = text
        .find(&format!("file = \"{file}\"\nsha256 = \""))
        .expect("file in the manifest");
    let start = at + format!("file = \"{file}\"\nsha256 = \"").len();
    let digest = sonoflow_model::sha256_hex(&dir.join(file)).expect("hash");
    let updated = format!("{}{digest}{}", &text[..start], &text[start + 64..]);
    std::fs::write(&manifest, updated).expect("write manifest");
}

#[test]
fn the_shipped_model_checks_out_on_a_real_frame_with_its_tokenizer() {
    let (code, stdout, stderr) = check(&umind_nano(), &["--providers", "cpu"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("tokenizer          ok  "), "{stdout}");
    assert!(
        stdout
            .contains("sample frame       ok  a phantom frame 640x480 through the per-frame path"),
        "{stdout}"
    );
    assert!(
        stdout.contains("sample reasoning   ok  4 tokens after its image tokens"),
        "{stdout}"
    );
    assert!(stdout.contains("model umind-nano 0.1.0: ok"), "{stdout}");
}

#[test]
fn nan_default_kernels_with_a_matching_hash_fail_the_check_naming_the_file() {
    let (code, stdout, stderr) = check(&fixture("tiny-model-nan-kernels"), &[]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("tiny-model-nan-kernels/default_kernels.f32: 2 of 82 default kernel values are not finite (NaN or infinity)"),
        "{stderr}"
    );
    assert!(!stdout.contains(": ok"), "{stdout}");
}

#[test]
fn a_model_that_writes_nan_on_real_frames_fails_the_check_naming_graph_and_tensor() {
    // Finite on zeros (a dummy run alone said "ok"), NaN on a phantom frame.
    let (code, stdout, stderr) = check(&fixture("tiny-model-nan"), &["--providers", "cpu"]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("vision_encoder.onnx: output `image_features` of the vision_encoder: ")
            && stderr.contains("values are not finite (NaN or infinity)"),
        "{stderr}"
    );
}

#[test]
fn a_kernel_projector_that_writes_nan_fails_the_check() {
    let dir = umind_copy(|d| {
        std::fs::copy(
            fixture("umind-nan-projector").join("kernel_projector.onnx"),
            d.join("kernel_projector.onnx"),
        )
        .expect("swap the projector");
        rehash(d, "kernel_projector.onnx");
    });
    let (code, stdout, stderr) = check(dir.path(), &["--providers", "cpu"]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("kernel_projector.onnx: output `kernels` of the kernel_projector: 722 of 722 values are not finite"),
        "{stderr}"
    );
}

#[test]
fn the_check_reads_the_tokenizer_and_names_it_when_it_is_missing_or_broken() {
    let missing = umind_copy(|d| std::fs::remove_file(d.join("tokenizer.json")).expect("rm"));
    let (code, stdout, stderr) = check(missing.path(), &["--providers", "cpu"]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("key `tokenizer.file`: names ")
            && stderr.contains("tokenizer.json, which does not exist"),
        "{stderr}"
    );
    // Not JSON a tokenizer can be read from, though its hash matches.
    let broken = umind_copy(|d| {
        std::fs::write(d.join("tokenizer.json"), "{\"model\": 12}").expect("write");
        rehash(d, "tokenizer.json");
    });
    let (code, stdout, stderr) = check(broken.path(), &["--providers", "cpu"]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("tokenizer.json"), "{stderr}");
}

#[test]
fn manifest_files_outside_the_directory_are_refused_naming_the_key() {
    let dir = edited_tiny_model(|t| {
        t.replace(
            "file = \"mask_decoder.onnx\"",
            "file = \"../tiny-model/mask_decoder.onnx\"",
        )
    });
    let (code, _, stderr) = check(dir.path(), &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("key `graphs.mask_decoder.file`: \"../tiny-model/mask_decoder.onnx\" climbs out with `..`, outside the model directory. Fix:"),
        "{stderr}"
    );
}

#[test]
fn gpu_providers_missing_from_the_build_are_said_once_at_info_not_warned_per_graph() {
    let (code, stdout, stderr) = check(&umind_nano(), &["--providers", "tensorrt,cuda,cpu"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let said: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("not in this ONNX Runtime build"))
        .collect();
    assert!(
        said.iter().all(|l| !l.contains("WARN")),
        "a build without GPU providers is not a failure: {stderr}"
    );
    if built_with(Provider::TensorRt) {
        assert!(
            !stdout.contains("not on tensorrt: not in this ONNX Runtime build"),
            "TensorRT is built in: {stdout}"
        );
    } else {
        assert!(
            stdout.contains("not on tensorrt: not in this ONNX Runtime build"),
            "{stdout}"
        );
        assert_eq!(said.len(), 1, "once per run: {stderr}");
        assert!(
            said[0].contains("INFO")
                && said[0].contains("GPU providers not in this ONNX Runtime build")
                && said[0].contains("tensorrt"),
            "{}",
            said[0]
        );
        // Still reported per graph, in the check's output and a run's fallbacks.
        assert_eq!(stdout.matches("not on tensorrt:").count(), 5, "{stdout}");
    }
}
