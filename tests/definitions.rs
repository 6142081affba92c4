//! Pipeline definitions: every shipped file validates; a bad one is refused
//! with the file, the key and the fix.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use sonoflow_runtime::PipelineDefinition;

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn every_shipped_pipeline_definition_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines");
    // Every file in pipelines/, whatever its name: each must be a definition
    // that loads, so a file the loop below skipped fails here.
    let mut shipped: Vec<String> = std::fs::read_dir(&dir)
        .expect("pipelines/ exists")
        .map(|e| e.expect("dir entry"))
        .filter(|e| e.file_type().expect("file type").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    shipped.sort();
    assert!(
        shipped.iter().any(|f| f == "default.toml"),
        "the default definition ships: {shipped:?}"
    );
    let mut checked = Vec::new();
    for name in &shipped {
        let path = dir.join(name);
        if path.extension().is_some_and(|e| e == "toml") {
            PipelineDefinition::load(&path).unwrap_or_else(|e| panic!("{e}"));
            checked.push(name.clone());
        }
    }
    assert_eq!(
        checked, shipped,
        "every file in pipelines/ was loaded and validated"
    );
}

#[test]
fn bad_value_is_refused_naming_file_key_and_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_pipeline(
        dir.path(),
        "[source]\nkind = \"test\"\n[queues.process]\ndepth = 0\n[[sinks]]\nkind = \"fake\"\n",
        &["--frames", "5"],
        LIMIT,
    );
    let stderr = run.stderr();
    assert_eq!(run.output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("pipeline.toml"), "names the file: {stderr}");
    assert!(
        stderr.contains("queues.process.depth"),
        "names the key: {stderr}"
    );
    assert!(stderr.contains("Fix:"), "says how to fix it: {stderr}");
    assert!(run.report.is_none(), "no run, no report");
}

#[test]
fn misspelt_key_is_refused_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_pipeline(
        dir.path(),
        "[source]\nkind = \"test\"\nwidht = 640\n[[sinks]]\nkind = \"fake\"\n",
        &[],
        LIMIT,
    );
    let stderr = run.stderr();
    assert_eq!(run.output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown field `widht`"), "{stderr}");
    assert!(stderr.contains("line 3"), "{stderr}");
}

#[test]
fn missing_definition_file_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = run_command(dir.path(), &dir.path().join("nope.toml"), &[])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("nope.toml") && stderr.contains("cannot read"),
        "{stderr}"
    );
}

#[test]
fn unknown_gstreamer_element_in_a_launch_source_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_pipeline(
        dir.path(),
        "[source]\nkind = \"launch\"\nlaunch = \"nosuchelement\"\n[[sinks]]\nkind = \"fake\"\n",
        &[],
        LIMIT,
    );
    let stderr = run.stderr();
    assert_eq!(run.output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("nosuchelement"), "{stderr}");
}

/// A copy of the binary outside any checkout finds no tree: it says where it
/// looked and how to point it at one (it used to fall back on the build
/// machine's source path, compiled in, which no installed copy has).
#[test]
fn an_installed_binary_finds_its_tree_from_where_it_is_not_where_it_was_built() {
    let root = tempfile::tempdir().expect("tempdir");
    let bin = root.path().join("bin/sonoflow");
    std::fs::create_dir_all(root.path().join("bin")).expect("bin dir");
    std::fs::copy(BIN, &bin).expect("copy the binary");
    let work = root.path().join("work");
    std::fs::create_dir_all(&work).expect("work dir");
    let run = |home: Option<&Path>| {
        let mut cmd = std::process::Command::new(&bin);
        cmd.current_dir(&work)
            .args(["run", "--frames", "3", "--quiet"])
            .env("ORT_DYLIB_PATH", ort_dylib())
            .env_remove("SONOFLOW_HOME");
        if let Some(home) = home {
            cmd.env("SONOFLOW_HOME", home);
        }
        cmd.output().expect("run the copy")
    };
    let lost = run(None);
    let stderr = String::from_utf8_lossy(&lost.stderr);
    assert_eq!(lost.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("SONOFLOW_HOME"), "{stderr}");
    assert!(
        stderr.contains(&root.path().join("bin").display().to_string()),
        "{stderr}"
    );
    // Pointed at the checkout, the built-in default runs with its model.
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let found = run(Some(&checkout));
    let stderr = String::from_utf8_lossy(&found.stderr);
    assert!(found.status.success(), "{stderr}");
}

/// `--quiet` keeps warnings and errors only.
#[test]
fn quiet_runs_print_no_info_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_pipeline(
        dir.path(),
        "[source]\nkind = \"test\"\n[[sinks]]\nkind = \"fake\"\n",
        &["--frames", "10"],
        LIMIT,
    );
    run.assert_success();
    let stderr = run.stderr();
    assert!(!stderr.contains(" INFO "), "{stderr}");
}
