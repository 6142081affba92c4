//! `sonoflow model check` and `sonoflow model info` through the real binary
//! and a real ONNX Runtime, on the tiny contract model and broken copies.

mod common;

use std::ffi::OsStr;

use common::*;

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

#[test]
fn absent_gpu_providers_are_reported_as_fallbacks_never_silently() {
    let (code, stdout, _) = check(&tiny_model(), &["--providers", "tensorrt,cuda,cpu"]);
    assert_eq!(code, Some(0));
    let compiled_gpu = stdout.contains("on tensorrt") || stdout.contains("on cuda");
    if !compiled_gpu {
        // A CPU-only ONNX Runtime: every graph says why TensorRT and CUDA were skipped.
        assert_eq!(stdout.matches("not on tensorrt:").count(), 3, "{stdout}");
        assert_eq!(stdout.matches("not on cuda:").count(), 3, "{stdout}");
        assert_eq!(stdout.matches(" ok  on cpu").count(), 3, "{stdout}");
    }
}

#[test]
fn require_provider_tensorrt_fails_cleanly_without_it() {
    let (code, stdout, stderr) = check(&tiny_model(), &["--require-provider", "tensorrt"]);
    if stdout.contains("on tensorrt") {
        return; // a machine with TensorRT: nothing to refuse
    }
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
