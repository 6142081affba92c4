//! `sonoflow eval` through the real binary with the shipped demo model
//! (onnx/umind-nano): over a phantom export its figures are exactly those
//! of `sonoflow run` over the same frames from an images source (one
//! pipeline, one self-check), its counts agree with the export's truth and
//! its frames are grouped by the echo pattern the truth records and its
//! lesions counted per long-axis band for recall by size; over a
//! lesion-free export it counts false-positive findings per 100 frames;
//! over a folder of images with masks (phantom frames, and lesion-free ones
//! with empty masks) it prints a row per class with the false-positive
//! column and no echo patterns; a dataset that does not exist fails,
//! naming it.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(300);

fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../onnx/umind-nano")
}

/// `sonoflow phantom export --frames N --seed S --out OUT EXTRA...`.
fn export(out: &Path, frames: u32, seed: u32, extra: &[&str]) {
    let (frames, seed) = (frames.to_string(), seed.to_string());
    let head = [
        "phantom", "export", "--frames", &frames, "--seed", &seed, "--out",
    ];
    let mut args: Vec<&OsStr> = head.iter().map(OsStr::new).collect();
    args.push(out.as_os_str());
    args.extend(extra.iter().map(OsStr::new));
    let (code, _, stderr) = sonoflow(&args);
    assert_eq!(code, Some(0), "export failed:\n{stderr}");
}

/// `sonoflow eval DATASET --model umind-nano ARGS...`: (exit code, stdout, stderr).
fn eval(dataset: &Path, args: &[&OsStr]) -> (Option<i32>, String, String) {
    let model = model_dir();
    let mut all: Vec<&OsStr> = vec![
        OsStr::new("eval"),
        dataset.as_os_str(),
        OsStr::new("--model"),
        model.as_os_str(),
    ];
    all.extend_from_slice(args);
    sonoflow(&all)
}

/// Exports `frames` phantom frames of `seed` (with `extra` export arguments)
/// into `dir`/export and evaluates them with `--json`: the export's folder,
/// the figures and stdout.
fn export_and_eval(
    dir: &Path,
    (frames, seed): (u32, u32),
    extra: &[&str],
    eval_args: &[&OsStr],
) -> (PathBuf, serde_json::Value, String) {
    let data = dir.join("export");
    export(&data, frames, seed, extra);
    let json = dir.join("eval.json");
    let mut args = eval_args.to_vec();
    args.extend([OsStr::new("--json"), json.as_os_str()]);
    let (code, stdout, stderr) = eval(&data, &args);
    assert_eq!(code, Some(0), "{stderr}");
    let figures =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("eval.json")).expect("JSON");
    (data, figures, stdout)
}

/// The echo patterns of the phantom's lexicon, and the group of frames
/// whose lesions differ.
const ECHO_GROUPS: [&str; 7] = [
    "anechoic",
    "hypoechoic",
    "isoechoic",
    "hyperechoic",
    "heterogeneous",
    "complex_cystic_solid",
    "mixed",
];

/// What an export's truth.jsonl says, frame by frame: the number of
/// lesions in view and the echo-pattern group (the pattern all lesions
/// share, "mixed" when they differ, None without a lesion).
fn truth_lines(export: &Path) -> Vec<(u64, Option<String>)> {
    let text = std::fs::read_to_string(export.join("truth.jsonl")).expect("truth.jsonl");
    text.lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).expect("truth line");
            let lesions = record["lesions"].as_array().expect("lesions");
            let mut patterns: Vec<Option<&str>> = lesions
                .iter()
                .map(|l| l["attributes"]["echo_pattern"].as_str())
                .collect();
            patterns.dedup();
            let group = match patterns.as_slice() {
                [] | [None] => None,
                [Some(one)] => Some((*one).to_owned()),
                _ => Some("mixed".to_owned()),
            };
            (lesions.len() as u64, group)
        })
        .collect()
}

/// Checks the figures' own arithmetic: ratios from their counts.
fn assert_consistent(a: &serde_json::Value) {
    let count = |k: &str| a[k].as_u64().unwrap_or_else(|| panic!("{k}: {a:#}"));
    let (tp, fp, fn_) = (
        u64_at(a, "/detection_counts/tp"),
        u64_at(a, "/detection_counts/fp"),
        u64_at(a, "/detection_counts/fn"),
    );
    let ratio = |x: u64, y: u64| (y > 0).then(|| x as f64 / y as f64);
    assert_eq!(
        a["detection_precision"].as_f64(),
        ratio(tp, tp + fp),
        "{a:#}"
    );
    assert_eq!(a["detection_recall"].as_f64(), ratio(tp, tp + fn_), "{a:#}");
    assert!(count("dice_gt_0_5") <= count("dice_frames"), "{a:#}");
    assert!(count("dice_frames") + count("lesion_free_frames") <= count("frames"));
    assert!(count("false_positive_findings") >= count("false_positive_frames"));
    assert_eq!(
        a["fp_per_100_empty_frames"].as_f64(),
        ratio(
            100 * count("false_positive_findings"),
            count("lesion_free_frames")
        ),
        "{a:#}"
    );
    assert_eq!(a["dice_mean"].is_null(), count("dice_frames") == 0, "{a:#}");
}

#[test]
fn eval_of_a_phantom_export_gives_the_figures_of_a_run_over_the_same_frames() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("export");
    export(&data, 40, 3, &[]);
    let json = dir.path().join("eval.json");
    let (code, stdout, stderr) = eval(&data, &[OsStr::new("--json"), json.as_os_str()]);
    assert_eq!(code, Some(0), "{stderr}");
    let figures: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("eval.json")).expect("JSON");
    assert_eq!(u64_at(&figures, "/frames"), 40, "{figures:#}");
    assert!(f64_at(&figures, "/frames_per_s") > 0.0);
    assert!(f64_at(&figures, "/model_ms_p50") > 0.0);
    let dice = f64_at(&figures, "/overall/dice_mean");
    assert!(dice > 0.5, "umind-nano segments the phantom: {figures:#}");
    assert!(stdout.contains("40 images in"), "{stdout}");
    let all = stdout
        .lines()
        .find(|l| l.starts_with("all "))
        .unwrap_or_else(|| panic!("no overall row:\n{stdout}"));
    assert!(all.contains(&format!("{dice:.3}")), "{all}");

    // The same frames through `sonoflow run` and an images source.
    let definition = format!(
        "[source]\nkind = \"images\"\npath = {:?}\nlive = false\n\
         [queues.process]\npolicy = \"block\"\n[queues.output]\npolicy = \"block\"\n\
         [model]\ndir = {:?}\n[reasoning]\nenabled = false\n[overlay]\nenabled = false\n\
         [load]\nenabled = false\n[[sinks]]\nkind = \"fake\"\n",
        data.to_string_lossy(),
        model_dir().to_string_lossy()
    );
    let run = run_pipeline(dir.path(), &definition, &[], LIMIT);
    let r = run.assert_success();
    assert_eq!(u64_at(r, "/frames_out"), 40);
    assert_eq!(
        figures["overall"], r["accuracy"],
        "one pipeline, one self-check: the same numbers"
    );
    assert_eq!(figures["by_class"], r["accuracy_by_class"]);
    assert_eq!(figures["by_echo_pattern"], r["accuracy_by_echo_pattern"]);
    assert_eq!(str_at(r, "/source/calibration/source"), "phantom");
    assert_eq!(u64_at(r, "/source/skipped"), 0);

    // The counts agree with the export's truth, frame by frame.
    let truth = truth_lines(&data);
    let overall = &figures["overall"];
    assert_consistent(overall);
    let with_lesion = truth.iter().filter(|(n, _)| *n > 0).count() as u64;
    assert_eq!(u64_at(overall, "/dice_frames"), with_lesion, "{overall:#}");
    assert_eq!(u64_at(overall, "/lesion_free_frames"), 40 - with_lesion);
    let lesions: u64 = truth.iter().map(|(n, _)| n).sum();
    assert_eq!(
        u64_at(overall, "/detection_counts/tp") + u64_at(overall, "/detection_counts/fn"),
        lesions,
        "every lesion in view is a hit or a miss: {overall:#}"
    );
    assert!(
        u64_at(overall, "/dice_gt_0_5") * 10 >= with_lesion * 8,
        "umind-nano finds most lesions on its own phantom: {overall:#}"
    );
    let long = f64_at(overall, "/long_axis_mae_mm");
    assert!(long > 0.0 && long < 3.0, "{overall:#}");
    assert!(all.contains(&format!(
        "{}/{with_lesion}",
        u64_at(overall, "/dice_gt_0_5")
    )));

    // One row per echo pattern, each holding exactly its frames.
    let groups = figures["by_echo_pattern"]
        .as_object()
        .expect("by_echo_pattern");
    assert!(!groups.is_empty(), "the phantom records echo patterns");
    let mut expected = std::collections::BTreeMap::<&str, u64>::new();
    for (_, group) in &truth {
        if let Some(g) = group {
            *expected.entry(g.as_str()).or_default() += 1;
        }
    }
    let got: std::collections::BTreeMap<&str, u64> = groups
        .iter()
        .map(|(k, v)| (k.as_str(), u64_at(v, "/frames")))
        .collect();
    assert_eq!(got, expected, "{figures:#}");
    let header = stdout
        .lines()
        .position(|l| l.starts_with("echo pattern "))
        .unwrap_or_else(|| panic!("no echo pattern table:\n{stdout}"));
    for (pattern, summary) in groups {
        assert!(ECHO_GROUPS.contains(&pattern.as_str()), "{pattern}");
        assert_consistent(summary);
        assert_eq!(u64_at(summary, "/lesion_free_frames"), 0, "{pattern}");
        let row = stdout
            .lines()
            .skip(header)
            .find(|l| l.split_whitespace().next() == Some(pattern.as_str()))
            .unwrap_or_else(|| panic!("no {pattern} row:\n{stdout}"));
        assert_eq!(
            row.split_whitespace().nth(1),
            Some(u64_at(summary, "/frames").to_string().as_str()),
            "{row}"
        );
    }
    let sum = |k: &str| -> u64 { groups.values().map(|v| u64_at(v, k)).sum() };
    assert_eq!(sum("/frames"), with_lesion);
    assert_eq!(
        sum("/detection_counts/tp"),
        u64_at(overall, "/detection_counts/tp")
    );
    assert_eq!(sum("/dice_gt_0_5"), u64_at(overall, "/dice_gt_0_5"));

    // 40 frames of 30-frame sequences are two scenes: too few for an
    // interval (an export of twelve gets them, below).
    assert_eq!(truth_scenes(&data), 2);
    assert!(overall.get("intervals_95").is_none(), "{overall:#}");
    assert!(!stdout.contains("% intervals"), "{stdout}");

    // Recall by lesion size: every lesion in its long-axis band, the found
    // ones the matched boxes, and a row per band after the tables.
    let per_band = assert_band_table(
        &figures,
        &stdout,
        "recall_by_size",
        "long_axis",
        "lesion long axis",
    );
    assert_eq!(
        per_band.iter().map(|b| b.0).collect::<Vec<_>>(),
        truth_size_bands(&data)
    );
    assert_eq!(
        per_band.iter().map(|b| b.1).sum::<u64>(),
        u64_at(overall, "/detection_counts/tp")
    );
    // Recall by conspicuity: the export measured every lesion (but where its
    // frame had too little tissue to compare with), each in its band.
    let per_band = assert_band_table(
        &figures,
        &stdout,
        "recall_by_conspicuity",
        "conspicuity",
        "lesion conspicuity",
    );
    let (measured, unmeasured) = truth_conspicuity_bands(&data);
    assert_eq!(per_band.iter().map(|b| b.0).collect::<Vec<_>>(), measured);
    assert!(
        unmeasured * 10 <= measured.iter().sum::<u64>(),
        "{unmeasured} lesions without a conspicuity of {measured:?}"
    );
    // The lesions left out of the table are counted under it.
    let total = measured.iter().sum::<u64>() + unmeasured;
    let note = format!("{unmeasured} of {total} lesions have no conspicuity");
    assert_eq!(
        stdout.contains(&note),
        unmeasured > 0,
        "{note:?} in {stdout}"
    );

    // With a faint-lesion cut at a band's edge (10), the lesions under it
    // count neither way: their hits leave the true positives, their misses
    // the false negatives, and a box on one is no false positive either way.
    let cut_json = dir.path().join("cut.json");
    let (code, cut_stdout, stderr) = eval(
        &data,
        &[
            OsStr::new("--json"),
            cut_json.as_os_str(),
            OsStr::new("--ignore-faint-below"),
            OsStr::new("10"),
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let cut: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cut_json).expect("cut.json")).expect("JSON");
    assert_eq!(f64_at(&cut, "/ignore_faint_below"), 10.0);
    let cut_overall = &cut["overall"];
    assert_consistent(cut_overall);
    let (faint, faint_found) = per_band[..4]
        .iter()
        .fold((0, 0), |(l, f), b| (l + b.0, f + b.1));
    assert!(faint > 0, "the export has lesions under 10: {per_band:?}");
    assert_eq!(u64_at(cut_overall, "/faint_lesions_ignored"), faint);
    let count = |a: &serde_json::Value, k: &str| u64_at(a, &format!("/detection_counts/{k}"));
    assert_eq!(count(cut_overall, "tp"), count(overall, "tp") - faint_found);
    assert_eq!(
        count(cut_overall, "fn"),
        count(overall, "fn") - (faint - faint_found)
    );
    assert_eq!(count(cut_overall, "fp"), count(overall, "fp"));
    assert_eq!(
        cut_overall["recall_by_conspicuity"], overall["recall_by_conspicuity"],
        "the table still counts every lesion"
    );
    assert!(
        overall.get("faint_lesions_ignored").is_none(),
        "{overall:#}"
    );
    let note = format!("{faint} of {total} lesions under the faint-lesion cut");
    assert!(cut_stdout.contains(&note), "{note:?} in {cut_stdout}");
}

/// The bands of `key` in `figures["overall"]` as (lesions, found), after
/// checking that the eval's stdout has a table under `header` with a row
/// per band (named by its `field`) showing the same counts.
fn assert_band_table(
    figures: &serde_json::Value,
    stdout: &str,
    key: &str,
    field: &str,
    header: &str,
) -> Vec<(u64, u64)> {
    let bands = figures["overall"][key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {figures:#}"));
    let table = stdout
        .lines()
        .position(|l| l.starts_with(&format!("{header} ")))
        .unwrap_or_else(|| panic!("no {header} table:\n{stdout}"));
    for band in bands {
        let name = str_at(band, &format!("/{field}"));
        let row = stdout
            .lines()
            .skip(table)
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row:\n{stdout}"));
        let counts: Vec<&str> = row[name.len()..].split_whitespace().take(2).collect();
        assert_eq!(
            counts,
            [
                u64_at(band, "/lesions").to_string(),
                u64_at(band, "/found").to_string()
            ],
            "{row}"
        );
    }
    bands
        .iter()
        .map(|b| (u64_at(b, "/lesions"), u64_at(b, "/found")))
        .collect()
}

/// 95 % intervals resampling an export's sequences (its scenes), each
/// holding the figure of all frames, and a line for them after the tables.
#[test]
fn eval_of_an_export_of_twelve_scenes_gives_intervals_that_hold_the_figures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, figures, stdout) =
        export_and_eval(dir.path(), (48, 5), &["--sequence-length", "4"], &[]);
    let overall = &figures["overall"];
    let scenes = truth_scenes(&data);
    assert_eq!(scenes, 12);
    let intervals = &overall["intervals_95"];
    assert_eq!(u64_at(intervals, "/scenes"), scenes, "{intervals:#}");
    // Dice and recall rest on every scene (each holds a lesion); precision
    // and the long axis on those where something was found and measured.
    for figure in [
        "dice_mean",
        "detection_recall",
        "detection_precision",
        "long_axis_mae_mm",
    ] {
        let required = matches!(figure, "dice_mean" | "detection_recall");
        let Some(ends) = intervals[figure].as_array() else {
            assert!(!required, "{figure}: {intervals:#}");
            continue;
        };
        let point = f64_at(overall, &format!("/{figure}"));
        let (lo, hi) = (
            ends[0].as_f64().expect("low"),
            ends[1].as_f64().expect("high"),
        );
        assert!(
            lo <= point && point <= hi,
            "{figure}: {lo} <= {point} <= {hi}"
        );
    }
    // No lesion-free frame: no false-positive interval.
    assert!(
        intervals["fp_per_100_empty_frames"].is_null(),
        "{intervals:#}"
    );
    assert!(
        stdout.contains(&format!("95 % intervals, resampling the {scenes} scenes")),
        "{stdout}"
    );
}

/// `--baseline`: a second model on the same frames and the paired
/// difference. The same model twice gives the same figures, so every
/// difference and its interval are exactly 0, over every scene.
#[test]
fn eval_against_a_baseline_gives_the_paired_difference_over_the_scenes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = model_dir();
    let (data, figures, stdout) = export_and_eval(
        dir.path(),
        (48, 4),
        &["--sequence-length", "4"],
        &[OsStr::new("--baseline"), model.as_os_str()],
    );
    assert_eq!(
        figures["baseline"]["overall"], figures["overall"],
        "{figures:#}"
    );
    assert_eq!(
        figures["baseline"]["by_echo_pattern"],
        figures["by_echo_pattern"]
    );
    let difference = &figures["difference"];
    assert_eq!(
        u64_at(difference, "/scenes"),
        truth_scenes(&data),
        "{difference:#}"
    );
    assert_eq!(u64_at(difference, "/scenes"), 12);
    for figure in ["dice_mean", "detection_recall"] {
        let change = &difference[figure];
        assert_eq!(f64_at(change, "/difference"), 0.0, "{figure}: {change}");
        assert_eq!(
            change["interval"],
            serde_json::json!([0.0, 0.0]),
            "{figure}"
        );
    }
    assert!(stdout.contains("baseline "), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("this minus baseline over 12 scenes"))
        .unwrap_or_else(|| panic!("no difference line:\n{stdout}"));
    assert!(line.contains("Dice +0.000 (+0.000 to +0.000)"), "{line}");

    // A baseline that is not a model fails, naming it.
    let missing = dir.path().join("no-model");
    let (code, _, stderr) = eval(&data, &[OsStr::new("--baseline"), missing.as_os_str()]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("no-model"), "{stderr}");
}

/// `--mirror-average`: `--model` runs each frame mirrored too, the
/// baseline (here the same model) without; the run report says so, and the
/// masks, so the figures, are not the baseline's.
#[test]
fn eval_with_mirroring_against_the_same_model_without_it_reports_both() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = model_dir();
    let (_, figures, stdout) = export_and_eval(
        dir.path(),
        (16, 6),
        &["--sequence-length", "4"],
        &[
            OsStr::new("--mirror-average"),
            OsStr::new("--baseline"),
            model.as_os_str(),
        ],
    );
    assert_eq!(
        figures["run"]["inference"]["mirror_average"],
        serde_json::json!(true),
        "{figures:#}"
    );
    assert_eq!(u64_at(&figures, "/frames"), 16);
    assert_ne!(
        figures["overall"]["iou_mean"], figures["baseline"]["overall"]["iou_mean"],
        "mirroring changes the masks"
    );
    // Side by side, the mirrored run named (four scenes are too few for
    // the paired intervals).
    assert!(
        stdout.lines().any(|l| l.starts_with("this, mirrored "))
            && stdout.lines().any(|l| l.starts_with("baseline ")),
        "{stdout}"
    );
    assert!(stdout.contains("each frame also mirrored"), "{stdout}");
}

/// Sequences (scenes) in an export's truth.
fn truth_scenes(export: &Path) -> u64 {
    let text = std::fs::read_to_string(export.join("truth.jsonl")).expect("truth.jsonl");
    let scenes: std::collections::BTreeSet<u64> = text
        .lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).expect("truth line");
            record["sequence"].as_u64().expect("sequence")
        })
        .collect();
    scenes.len() as u64
}

/// Lesions of an export's truth per conspicuity band (under 2, 2-4, 4-6,
/// 6-10, 10 and over), and the lesions without a conspicuity.
fn truth_conspicuity_bands(export: &Path) -> (Vec<u64>, u64) {
    let text = std::fs::read_to_string(export.join("truth.jsonl")).expect("truth.jsonl");
    let (mut bands, mut unmeasured) = (vec![0; 5], 0);
    for line in text.lines() {
        let record: serde_json::Value = serde_json::from_str(line).expect("truth line");
        for lesion in record["lesions"].as_array().expect("lesions") {
            match lesion["conspicuity"].as_f64() {
                Some(z) => {
                    bands[[2.0, 4.0, 6.0, 10.0]
                        .iter()
                        .filter(|&&edge| z >= edge)
                        .count()] += 1
                }
                None => unmeasured += 1,
            }
        }
    }
    (bands, unmeasured)
}

/// Lesions of an export's truth per long-axis band: under 5 mm, 5-10,
/// 10-20, 20 and over.
fn truth_size_bands(export: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(export.join("truth.jsonl")).expect("truth.jsonl");
    let mut bands = vec![0; 4];
    for line in text.lines() {
        let record: serde_json::Value = serde_json::from_str(line).expect("truth line");
        for lesion in record["lesions"].as_array().expect("lesions") {
            let mm = f64_at(lesion, "/long_axis/length_mm");
            bands[[5.0, 10.0, 20.0].iter().filter(|&&edge| mm >= edge).count()] += 1;
        }
    }
    bands
}

#[test]
fn eval_of_a_lesion_free_export_counts_false_positive_findings_per_100_frames() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, figures, stdout) = export_and_eval(dir.path(), (12, 9), &["--lesions", "0"], &[]);
    let overall = &figures["overall"];
    assert_consistent(overall);
    assert_eq!(u64_at(overall, "/lesion_free_frames"), 12, "{overall:#}");
    assert_eq!(u64_at(overall, "/dice_frames"), 0);
    assert_eq!(u64_at(overall, "/detection_counts/tp"), 0);
    assert_eq!(u64_at(overall, "/detection_counts/fn"), 0);
    let findings = u64_at(overall, "/false_positive_findings");
    assert_eq!(
        f64_at(overall, "/fp_per_100_empty_frames"),
        100.0 * findings as f64 / 12.0
    );
    assert!(
        findings <= 12,
        "umind-nano rarely finds a lesion on normal phantom tissue: {overall:#}"
    );
    assert_eq!(figures["by_class"]["no_lesion"], *overall);
    assert_eq!(figures["by_echo_pattern"], serde_json::json!({}));
    assert!(!stdout.contains("echo pattern"), "{stdout}");
    let all = stdout
        .lines()
        .find(|l| l.starts_with("all "))
        .unwrap_or_else(|| panic!("no overall row:\n{stdout}"));
    let per_100 = format!("{:.1}", 100.0 * findings as f64 / 12.0);
    assert!(all.contains(&per_100), "{all}");
}

/// Writes the phantom export `from`'s frames as images with one mask each
/// (every lesion of its label map) into `to/CLASS/`, CLASS the frame's
/// first lesion's class, or `to/normal/` with an empty mask.
fn images_with_masks(from: &Path, to: &Path) -> usize {
    let truth = std::fs::read_to_string(from.join("truth.jsonl")).expect("truth.jsonl");
    let mut written = 0;
    for line in truth.lines() {
        let record: serde_json::Value = serde_json::from_str(line).expect("truth line");
        let class = record["lesions"][0]["class"].as_str().unwrap_or("normal");
        let folder = to.join(class);
        std::fs::create_dir_all(&folder).expect("mkdir");
        let name = format!(
            "{}-{}",
            from.file_name().and_then(OsStr::to_str).unwrap_or("x"),
            record["index"]
        );
        let image = from.join(record["image"].as_str().expect("image"));
        std::fs::copy(&image, folder.join(format!("{name}.png"))).expect("copy image");
        let labels = image::open(from.join(record["labels"].as_str().expect("labels")))
            .expect("label map")
            .to_luma8();
        // Lesion labels are 10 and up (docs/phantom.md).
        let mask = image::GrayImage::from_fn(labels.width(), labels.height(), |x, y| {
            image::Luma([if labels.get_pixel(x, y)[0] >= 10 {
                255
            } else {
                0
            }])
        });
        mask.save(folder.join(format!("{name}_mask.png")))
            .expect("write mask");
        written += 1;
    }
    written
}

#[test]
fn eval_of_an_image_folder_with_masks_prints_a_row_per_class_with_false_positives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (lesions, clear) = (dir.path().join("lesions"), dir.path().join("clear"));
    export(
        &lesions,
        6,
        5,
        &["--sequence-length", "3", "--lesions", "1"],
    );
    export(&clear, 2, 7, &["--lesions", "0"]);
    let data = dir.path().join("data");
    assert_eq!(images_with_masks(&lesions, &data), 6);
    assert_eq!(images_with_masks(&clear, &data), 2);
    let json = dir.path().join("eval.json");
    let (code, stdout, stderr) = eval(&data, &[OsStr::new("--json"), json.as_os_str()]);
    assert_eq!(code, Some(0), "{stderr}");
    let figures: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("eval.json")).expect("JSON");
    assert_eq!(u64_at(&figures, "/frames"), 8, "{figures:#}");
    let header = stdout
        .lines()
        .find(|l| l.starts_with("class "))
        .unwrap_or_else(|| panic!("no header:\n{stdout}"));
    assert!(header.contains("FP imgs"), "{header}");
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} row:\n{stdout}"))
            .to_owned()
    };
    // Lesion-free images: scored for false positives, out of 2.
    let no_lesion = row("no_lesion");
    assert!(no_lesion.trim_end().ends_with("/2"), "{no_lesion}");
    let fp = u64_at(&figures, "/by_class/no_lesion/false_positive_frames");
    assert_eq!(
        u64_at(&figures, "/by_class/no_lesion/lesion_free_frames"),
        2
    );
    assert!(no_lesion.contains(&format!("{fp}/2")), "{no_lesion}");
    assert!(row("all").trim_end().ends_with(&format!("{fp}/2")));
    // Each lesion class has its row, scored on its own frames.
    let classes = figures["by_class"].as_object().expect("by_class");
    let lesion_classes: Vec<&String> = classes.keys().filter(|k| *k != "no_lesion").collect();
    assert!(!lesion_classes.is_empty(), "{figures:#}");
    let mut lesion_frames = 0;
    for class in lesion_classes {
        assert!(
            data.join(class).is_dir(),
            "{class}: the class sub-folder names it"
        );
        let r = row(class);
        let frames = u64_at(&figures, &format!("/by_class/{class}/frames"));
        assert_eq!(
            r.split_whitespace().nth(1),
            Some(frames.to_string().as_str()),
            "{r}"
        );
        lesion_frames += frames;
    }
    assert_eq!(lesion_frames, 6);
    // No sidecar, no definition calibration: Dice but no millimetres.
    assert!(
        figures["overall"]["long_axis_mae_mm"].is_null(),
        "{figures:#}"
    );
    // ... nor recall by lesion size.
    let bands = figures["overall"]["recall_by_size"]
        .as_array()
        .expect("recall_by_size");
    assert!(
        bands.iter().all(|b| u64_at(b, "/lesions") == 0),
        "{bands:#?}"
    );
    assert!(!stdout.contains("lesion long axis"), "{stdout}");
    // Masks carry no lesion attributes: no echo-pattern rows.
    assert_eq!(figures["by_echo_pattern"], serde_json::json!({}));
    assert!(figures["run"].get("accuracy_by_echo_pattern").is_none());
    // Image files name no scene: no interval, and no line for one.
    assert!(
        figures["overall"].get("intervals_95").is_none(),
        "{figures:#}"
    );
    assert!(!stdout.contains("% intervals"), "{stdout}");
    assert_consistent(&figures["overall"]);
    assert_eq!(
        u64_at(&figures, "/run/source/calibration/uncalibrated_frames"),
        8
    );
}

#[test]
fn eval_of_a_dataset_that_does_not_exist_fails_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-scans");
    let (code, stdout, stderr) = eval(&missing, &[]);
    assert_ne!(code, Some(0), "{stdout}");
    assert!(
        stderr.contains("no-such-scans") && stderr.contains("no such file or folder"),
        "{stderr}"
    );
}
