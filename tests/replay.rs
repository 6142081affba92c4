//! `sonoflow run --record DIR` and `sonoflow replay DIR` on the real
//! binary: a phantom session through umind-nano with its reasoning head
//! (whose kernels swap during the run) is recorded and replayed with the
//! same model and build: every frame's findings come back identical and the
//! head's kernel versions are replayed at their frames. Replayed with a
//! changed model (the same graphs, another input normalisation), `--diff`
//! lists the changed findings and the exit status says so. A folder that
//! already holds a recording, and a folder that is none, are refused naming
//! them. Deadlines are hang guards, never speed limits: the head runs at the
//! frame path's priority with no timeout and no cancellation, and the probe
//! at 15 fps, so that a loaded machine still sees it publish kernels.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{run_pipeline, wait_with_limit, BIN};

const LIMIT: Duration = Duration::from_secs(300);

fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../onnx/umind-nano")
}

fn definition() -> String {
    format!(
        "name = \"recorded\"\n\
         [source]\nkind = \"phantom\"\nprobe = \"linear\"\ndepth_cm = 4\nseed = 77\nlesions = 1\nfps = 15\n\
         [process]\nkind = \"model\"\n\
         [model]\ndir = '{}'\nproviders = [\"cpu\"]\nintra_threads = 1\n\
         [reasoning]\nmin_interval_ms = 500\nnice = 0\ntimeout_ms = 60000\nstale_after_ms = 60000\n\
         [[sinks]]\nkind = \"fake\"\n",
        model_dir().display()
    )
}

fn replay(bundle: &Path, args: &[&str]) -> std::process::Output {
    let child = Command::new(BIN)
        .arg("replay")
        .arg(bundle)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sonoflow replay");
    wait_with_limit(child, LIMIT)
}

#[test]
fn a_recorded_session_replays_identically_and_a_changed_model_shows_in_the_diff() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bundle = dir.path().join("session");
    let run = run_pipeline(
        dir.path(),
        &definition(),
        &[
            "--frames",
            "210",
            "--record",
            bundle.to_str().expect("utf-8"),
        ],
        LIMIT,
    );
    let report = run.assert_success();
    let info: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(bundle.join("bundle.json")).expect("bundle.json"),
    )
    .expect("JSON");
    let frames = info["frames"].as_u64().unwrap_or(0);
    assert!(frames >= 100, "the analysed frames were recorded: {info}");
    assert!(frames <= report["frames_out"].as_u64().unwrap_or(0));
    assert_eq!(info["failed"].as_u64(), Some(0), "{info}");
    let kernels = info["kernel_versions"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    assert!(
        kernels >= 2,
        "the head swapped kernels during the run: {info}"
    );
    assert_eq!(info["model_sha256"].as_str().map(str::len), Some(64));
    assert!(bundle.join("frames/000000.png").is_file());
    assert!(
        bundle.join("labels/000000.png").is_file(),
        "the phantom's truth"
    );
    assert!(bundle.join("pipeline.toml").is_file());

    // The same model and build: every frame's findings again.
    let json = dir.path().join("replay.json");
    let output = replay(&bundle, &["--json", json.to_str().expect("utf-8")]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("{frames} identical, 0 changed")),
        "{stdout}"
    );
    let replayed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("replay.json")).expect("JSON");
    assert_eq!(replayed["frames"].as_u64(), Some(frames));
    assert_eq!(
        replayed["kernels_replayed"].as_array().map(Vec::len),
        Some(kernels - 1),
        "each kernel version the head published, at its frames: {replayed}"
    );

    // A changed model: the same graphs, another input normalisation.
    let changed = dir.path().join("changed-model");
    std::fs::create_dir_all(&changed).expect("folder");
    for entry in std::fs::read_dir(model_dir()).expect("model dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::copy(&path, changed.join(path.file_name().expect("name"))).expect("copy");
        }
    }
    let manifest = changed.join("sonoflow-model.toml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    assert!(
        text.contains("mean = [0.5]"),
        "the manifest's normalisation"
    );
    std::fs::write(&manifest, text.replace("mean = [0.5]", "mean = [0.53]")).expect("write");
    let output = replay(
        &bundle,
        &["--model", changed.to_str().expect("utf-8"), "--diff"],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "changed findings: {stdout}");
    assert!(stdout.contains("recorded umind-nano"), "{stdout}");
    assert!(stdout.contains("frame 0 (id"), "{stdout}");
    assert!(
        stdout.contains(" -> ") && stdout.contains("findings"),
        "each change with its old and new value: {stdout}"
    );

    // A second recording into the same folder is refused; so is a folder that holds none.
    let run = run_pipeline(
        dir.path(),
        &definition(),
        &[
            "--frames",
            "10",
            "--record",
            bundle.to_str().expect("utf-8"),
        ],
        LIMIT,
    );
    assert!(!run.output.status.success());
    assert!(
        run.stderr().contains("already holds a recording"),
        "{}",
        run.stderr()
    );
    let output = replay(dir.path(), &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.contains("bundle.json") && stderr.contains("--record"),
        "{stderr}"
    );
}
