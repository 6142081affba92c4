//! The phantom probe through the real binary and pipeline: the default run
//! writes a decodable MP4, the exporter writes a dataset, every frame
//! carries its ground truth and pixel spacing, and in screen mode
//! (`calibration = "auto"`) the pipeline gets only the spacing found in the
//! frames, within 1 % of the phantom's, after 12 uncalibrated frames.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use sonoflow_core::Frame;
use sonoflow_runtime::{run, PipelineDefinition, ProcessStage, Processor, RunOptions, StageError};

#[test]
fn default_run_is_the_phantom_and_writes_a_decodable_mp4() {
    // An empty directory: the built-in default pipeline is used.
    let dir = tempfile::tempdir().expect("tempdir");
    let output = std::process::Command::new(BIN)
        .current_dir(dir.path())
        .args([
            "run",
            "--frames",
            "45",
            "--quiet",
            "--stats-json",
            "report.json",
        ])
        .output()
        .expect("run sonoflow");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let r = read_report(dir.path()).expect("report");
    assert_eq!(str_at(&r, "/pipeline"), "default");
    assert_eq!(u64_at(&r, "/frames_in"), 45);
    assert_eq!(
        u64_at(&r, "/frames_out") + pipeline_dropped(&r),
        45,
        "every frame is out or counted as dropped: {r:#}"
    );
    // Live at 30 fps: never faster than its clock (slower machines drop, counted).
    let fps = f64_at(&r, "/fps_in");
    assert!(
        fps > 0.0 && fps <= 30.0 * 1.25,
        "the phantom runs live at 30 fps: {r:#}"
    );
    let decoded = decode(&dir.path().join("out/default.mp4"));
    assert_eq!(decoded.frames, u64_at(&r, "/frames_out"));
    assert_eq!((decoded.width, decoded.height), (640, 480));
}

#[test]
fn export_command_writes_a_dataset_with_a_manifest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("dataset");
    let output = std::process::Command::new(BIN)
        .args([
            "phantom",
            "export",
            "--frames",
            "4",
            "--seed",
            "3",
            "--sequence-length",
            "2",
            "--out",
        ])
        .arg(&out)
        .output()
        .expect("run sonoflow");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("wrote 4 frames in 2 sequences"), "{stderr}");
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("manifest.json")).expect("manifest"),
    )
    .expect("json");
    assert_eq!(manifest["frames"], 4);
    let lines = std::fs::read_to_string(out.join("truth.jsonl")).expect("truth");
    assert_eq!(lines.lines().count(), 4);
    for line in lines.lines() {
        let record: serde_json::Value = serde_json::from_str(line).expect("json line");
        for key in ["image", "labels"] {
            assert!(
                out.join(record[key].as_str().expect("path")).is_file(),
                "{record}"
            );
        }
        assert!(record["pixel_spacing"]["x_mm"].as_f64().expect("spacing") > 0.0);
    }
}

/// What one frame carried: ground truth, its pixel spacing (mm), its lesions.
#[derive(Debug)]
struct Carried {
    has_truth: bool,
    spacing_mm: Option<f64>,
    lesions: usize,
}

/// Records what each frame carries.
struct Inspect(Arc<Mutex<Vec<Carried>>>);

impl Processor for Inspect {
    fn process(&mut self, frame: &mut Frame) -> Result<(), StageError> {
        let lesions = frame.truth.as_ref().map_or(0, |t| t.lesions.len());
        if let Ok(mut seen) = self.0.lock() {
            seen.push(Carried {
                has_truth: frame.truth.is_some(),
                spacing_mm: frame.pixel_spacing().map(|s| s.x_mm),
                lesions,
            });
        }
        Ok(())
    }
}

#[test]
fn phantom_frames_carry_ground_truth_and_pixel_spacing() {
    let def = PipelineDefinition::parse(
        "[source]\nkind = \"phantom\"\nprobe = \"convex\"\ndepth_cm = 8\nlesions = 2\nseed = 5\n[[sinks]]\nkind = \"fake\"\n",
        "phantom.toml",
        "phantom",
    )
    .expect("valid definition");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let options = RunOptions {
        frames: Some(20),
        ..RunOptions::default()
    };
    let report = run(
        &def,
        ProcessStage::custom(Box::new(Inspect(Arc::clone(&seen)))),
        &options,
        &mut |_| {},
    )
    .expect("run");
    assert_eq!(report.error, None);
    assert_eq!(report.frames_in, 20, "{report:#?}");
    let seen = seen.lock().expect("lock");
    // The stage saw every frame that entered except those dropped before it
    // (counted): how many that is depends on the machine, the sum does not.
    assert_eq!(
        seen.len() as u64,
        report.frames_in - report.dropped[sonoflow_core::Stage::Process.name()],
        "{report:#?}"
    );
    assert!(!seen.is_empty(), "{report:#?}");
    for carried in seen.iter() {
        assert!(carried.has_truth, "{carried:?}");
        // 8 cm over the image's rows: a quarter of a millimetre per pixel, give or take.
        let mm = carried.spacing_mm.expect("spacing");
        assert!((0.15..0.35).contains(&mm), "{mm}");
        assert_eq!(carried.lesions, 2, "{carried:?}");
    }
    // The report names the calibration in use: the phantom's own, one
    // sector, exact; no frame without mm.
    let calibration = &report.source.calibration;
    assert_eq!(calibration.source, Some("phantom"), "{calibration:?}");
    assert_eq!(calibration.regions.len(), 1, "{calibration:?}");
    assert!(matches!(
        calibration.regions[0].region,
        sonoflow_core::findings::ImageRegion::Fan { .. }
    ));
    let spacing = calibration.spacing_mm.expect("spacing");
    assert_eq!(Some(spacing.x_mm), seen[0].spacing_mm);
    assert_eq!(calibration.changes, 1, "one depth, one calibration");
    assert_eq!(calibration.uncalibrated_frames, 0, "{calibration:?}");
}

/// `sonoflow run` of the phantom at `probe`/`depth_cm`, `extra` source keys,
/// `frames` frames, the load ladder off and a fake sink; with the per-frame
/// findings log.
fn run_phantom(
    dir: &std::path::Path,
    probe: &str,
    depth_cm: u32,
    extra: &str,
    frames: u32,
) -> (serde_json::Value, Vec<serde_json::Value>) {
    let log = dir.join("frames.jsonl");
    let run = run_pipeline(
        dir,
        &format!(
            "[source]\nkind = \"phantom\"\nprobe = \"{probe}\"\ndepth_cm = {depth_cm}\n{extra}\n\
             [load]\nenabled = false\n[[sinks]]\nkind = \"fake\"\n"
        ),
        &[
            "--frames",
            &frames.to_string(),
            "--findings-jsonl",
            &log.to_string_lossy(),
        ],
        std::time::Duration::from_secs(120),
    );
    let report = run.assert_success().clone();
    (report, read_findings_log(&log))
}

#[test]
fn screen_mode_gives_the_pipeline_only_the_spacing_found_in_the_frames() {
    for (probe, depth_cm) in [("linear", 3), ("convex", 5), ("linear", 8)] {
        let case = format!("{probe} {depth_cm} cm");
        let dir = tempfile::tempdir().expect("tempdir");
        // The phantom's own calibration: the truth.
        let (own, _) = run_phantom(dir.path(), probe, depth_cm, "", 5);
        let truth_mm = f64_at(&own, "/source/calibration/spacing_mm/x_mm");
        assert_eq!(str_at(&own, "/source/calibration/mode"), "source");

        let (r, lines) = run_phantom(dir.path(), probe, depth_cm, "calibration = \"auto\"", 60);
        let cal = &r["source"]["calibration"];
        assert_eq!(cal["mode"], "auto", "{case}: {cal:#}");
        assert_eq!(cal["source"], "detected", "{case}: {cal:#}");
        assert_eq!(cal["state"], "locked", "{case}: {cal:#}");
        assert!(cal["reason"].is_null(), "{case}: {cal:#}");
        assert!(f64_at(cal, "/confidence") >= 0.5, "{case}: {cal:#}");
        let found_mm = f64_at(cal, "/spacing_mm/x_mm");
        let error = (found_mm - truth_mm).abs() / truth_mm;
        assert!(error < 0.01, "{case}: {found_mm} mm against {truth_mm} mm");
        // Frames are counted as ingest numbers them (drops before ingest
        // are not frames): the first 12 search, the rest are locked.
        assert_eq!(u64_at(cal, "/uncalibrated_frames"), 12, "{case}: {cal:#}");
        assert_eq!(u64_at(cal, "/searching_frames"), 12, "{case}: {cal:#}");
        assert_eq!(u64_at(cal, "/locked_frames"), u64_at(&r, "/frames_in") - 12);
        assert_eq!(u64_at(cal, "/changes"), 1, "{case}: one lock, never lost");
        // Per frame, as the pipeline's output saw it: none before the lock,
        // then the detected spacing; never the phantom's own.
        assert!(!lines.is_empty());
        for line in &lines {
            let frame = pb_u64_at(line, "/frameId");
            let c = &line["calibration"];
            if frame < 12 {
                assert!(c.is_null(), "{case}: frame {frame} {c}");
            } else {
                assert_eq!(
                    c["source"], "CALIBRATION_SOURCE_DETECTED",
                    "{case}: frame {frame} {c}"
                );
            }
        }
        assert_eq!(f64_at(&r, "/allocations_per_frame"), 0.0, "{case}: {r:#}");
    }
}

/// Screen mode with the demo model: calipers get millimetres only from the
/// lock on (frame 12), and measuring that starts late still allocates
/// nothing per frame once warm (perception sizes its caliper scratch with
/// the frame, not with the first finding it measures).
#[test]
fn screen_mode_with_the_model_measures_in_the_found_spacing_without_allocating() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../onnx/umind-nano");
    let extra = format!(
        "calibration = \"auto\"\n[model]\ndir = {:?}\n[reasoning]\nenabled = false",
        model.to_string_lossy()
    );
    let (r, lines) = run_phantom(dir.path(), "linear", 4, &extra, 120);
    assert_eq!(f64_at(&r, "/allocations_per_frame"), 0.0, "{r:#}");
    assert_eq!(str_at(&r, "/source/calibration/source"), "detected");
    assert!(u64_at(&r, "/accuracy/measured") > 0, "{r:#}");
    let mae = f64_at(&r, "/accuracy/long_axis_mae_mm");
    assert!(mae < 2.0, "calipers in the found spacing: {r:#}");
    for line in &lines {
        // Canonical JSON leaves out an empty list.
        let measured = line["findings"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| !f["longAxis"].is_null()));
        if pb_u64_at(line, "/frameId") < 12 {
            assert!(!measured, "no mm before the lock: {line}");
        }
    }
}
