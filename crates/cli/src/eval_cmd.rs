//! `sonoflow eval DATASET`: a model over a labelled dataset (a folder of
//! images with masks, or a phantom export) as fast as the machine allows,
//! through the same pipeline `sonoflow run` builds (an `images` source,
//! unpaced, blocking hand-offs, the model with its perception and
//! self-check, no overlay, a fake sink). The figures are the run's own
//! self-check, overall, per class and, when the truth records lesion
//! attributes (a phantom export), per echo pattern, then detection recall
//! per lesion size when the truth has lengths in mm, and, when the truth
//! names scenes (a phantom export's sequences), 95 % intervals of the
//! figures that resample scenes; nothing is scored twice.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use sonoflow_perception::{paired_difference, AccuracySummary, Change, Difference, Intervals};
use sonoflow_runtime::{run, PipelineDefinition, ProcessStage, RunOptions, RunReport, StopFlag};

#[derive(clap::Args)]
pub struct EvalArgs {
    /// A folder of images (PNG, JPEG, BMP) with `NAME_mask.png` masks (class
    /// sub-folders allowed), a glob such as `data/*.png`, or a phantom export.
    dataset: PathBuf,
    /// The model directory.
    #[arg(long, default_value = "onnx/umind-nano")]
    model: PathBuf,
    /// Write the figures (and the run report) as JSON here.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Also write one JSON line per frame, as `sonoflow run --findings-jsonl`.
    #[arg(long, value_name = "PATH")]
    findings_jsonl: Option<PathBuf>,
    /// Stop after this many images.
    #[arg(long)]
    frames: Option<u64>,
    /// Execution providers to try, in order (default: the model's defaults).
    #[arg(long, value_delimiter = ',')]
    providers: Vec<String>,
    /// Findings under this area (mm², calibrated frames) are not shown, as
    /// `[perception] min_finding_area_mm2` (default 3; 0 keeps all).
    #[arg(long, value_name = "MM2", value_parser = finite)]
    min_finding_area_mm2: Option<f32>,
    /// Count lesions whose conspicuity (a phantom export's truth) is under
    /// this neither as found nor as missed: a box matching one is no false
    /// positive, its pixels are out of Dice (as `[perception]
    /// ignore_faint_below`). Under about 4 no searcher finds a lesion.
    #[arg(long, value_name = "Z", value_parser = finite)]
    ignore_faint_below: Option<f32>,
    /// Cut the masks at this probability, as `[perception] mask_threshold`
    /// (default 0.5).
    #[arg(long, value_name = "P", value_parser = finite)]
    mask_threshold: Option<f32>,
    /// Also score this model directory on the same frames and give the
    /// difference of the figures (`--model` minus this one) with 95 %
    /// intervals that resample the scenes in pairs (phantom exports).
    #[arg(long, value_name = "MODEL")]
    baseline: Option<PathBuf>,
    /// Run `--model` with test-time mirroring, as `[model] mirror_average`
    /// (each frame also mirrored left to right, the mask logits averaged).
    /// `--baseline` runs without it, so `--baseline` naming the same model
    /// directory measures what the mirroring changes.
    #[arg(long)]
    mirror_average: bool,
}

/// A finite number from the command line (a NaN or infinity would reach
/// the pipeline's TOML as a word it cannot read).
fn finite(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(v) => Err(format!("{v} is not a finite number")),
        Err(e) => Err(format!("{text:?} is not a number: {e}")),
    }
}

/// What `--json` holds.
#[derive(Serialize)]
struct EvalOutput<'a> {
    dataset: &'a Path,
    model: &'a Path,
    frames: u64,
    /// Images per second through the whole pipeline (decode, model,
    /// perception, self-check), unpaced.
    frames_per_s: f64,
    /// The model's own per-frame time (`inference.model_ms` of the run).
    model_ms_p50: Option<f64>,
    /// `--ignore-faint-below`: lesions of conspicuity under it counted
    /// neither way (each summary's `faint_lesions_ignored` says how many).
    #[serde(skip_serializing_if = "Option::is_none")]
    ignore_faint_below: Option<f32>,
    overall: Option<&'a AccuracySummary>,
    by_class: &'a BTreeMap<String, AccuracySummary>,
    /// Frames grouped by the echo pattern their lesions share ("mixed" when
    /// they differ); empty when the truth has no lesion attributes.
    by_echo_pattern: &'a BTreeMap<String, AccuracySummary>,
    run: &'a RunReport,
    /// With `--baseline`: that model's figures on the same frames.
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline: Option<BaselineOutput<'a>>,
    /// With `--baseline`: `--model`'s figures minus the baseline's, over the
    /// scenes both scored, with 95 % intervals (None when the dataset names
    /// fewer than two scenes).
    #[serde(skip_serializing_if = "Option::is_none")]
    difference: Option<Difference>,
}

/// The baseline model's figures in `--json`.
#[derive(Serialize)]
struct BaselineOutput<'a> {
    model: &'a Path,
    overall: Option<&'a AccuracySummary>,
    by_class: &'a BTreeMap<String, AccuracySummary>,
    by_echo_pattern: &'a BTreeMap<String, AccuracySummary>,
}

/// A TOML basic string holding `s` (quotes and backslashes escaped).
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The pipeline an evaluation of `model` runs: what `sonoflow run` would
/// run for it (`mirror`: with `[model] mirror_average`).
fn definition(args: &EvalArgs, model: &Path, mirror: bool) -> String {
    let providers = if args.providers.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = args.providers.iter().map(|p| toml_string(p)).collect();
        format!("providers = [{}]\n", list.join(", "))
    };
    format!(
        "[source]\nkind = \"images\"\npath = {dataset}\nlive = false\n\
         [queues.process]\npolicy = \"block\"\n[queues.output]\npolicy = \"block\"\n\
         [model]\ndir = {model}\n{providers}{mirror}\
         [reasoning]\nenabled = false\n\
         [overlay]\nenabled = false\n\
         [load]\nenabled = false\n\
         {perception}\
         [[sinks]]\nkind = \"fake\"\n",
        dataset = toml_string(&args.dataset.display().to_string()),
        model = toml_string(&model.display().to_string()),
        mirror = if mirror {
            "mirror_average = true\n"
        } else {
            ""
        },
        perception = perception_section(args),
    )
}

/// The `[perception]` keys the arguments set (nothing when none does).
fn perception_section(args: &EvalArgs) -> String {
    let mut keys = String::new();
    if let Some(a) = args.min_finding_area_mm2 {
        let _ = writeln!(keys, "min_finding_area_mm2 = {a:?}");
    }
    if let Some(z) = args.ignore_faint_below {
        let _ = writeln!(keys, "ignore_faint_below = {z:?}");
    }
    if let Some(p) = args.mask_threshold {
        let _ = writeln!(keys, "mask_threshold = {p:?}");
    }
    if keys.is_empty() {
        keys
    } else {
        format!("[perception]\n{keys}")
    }
}

pub fn eval_command(args: EvalArgs) -> Result<()> {
    if let Some(path) = &args.json {
        crate::check_report_path(path)?;
    }
    let stop = StopFlag::new();
    crate::install_stop_handler(stop.clone())?;
    let report = score(
        &args,
        &args.model,
        args.mirror_average,
        args.findings_jsonl.as_deref(),
        &stop,
    )?;
    let baseline = match &args.baseline {
        Some(model) => {
            if stop.is_stopped() {
                anyhow::bail!(
                    "stopped before the baseline model {} was scored",
                    model.display()
                );
            }
            // `--findings-jsonl` is `--model`'s: the baseline writes none.
            let b = score(&args, model, false, None, &stop)
                .with_context(|| format!("the baseline model {}", model.display()))?;
            if b.frames_out != report.frames_out {
                anyhow::bail!(
                    "the baseline model {} scored {} frames and {} scored {}: no comparison \
                     (was the run stopped, or did the dataset change?)",
                    model.display(),
                    b.frames_out,
                    args.model.display(),
                    report.frames_out
                );
            }
            Some(b)
        }
        None => None,
    };
    let difference = baseline.as_ref().and_then(|b| {
        paired_difference(report.scene_totals.as_deref()?, b.scene_totals.as_deref()?)
    });
    let frames = report.frames_out;
    let output = EvalOutput {
        dataset: &args.dataset,
        model: &args.model,
        frames,
        frames_per_s: if report.duration_s > 0.0 {
            frames as f64 / report.duration_s
        } else {
            0.0
        },
        model_ms_p50: report.inference.as_ref().map(|i| i.model_ms.p50),
        ignore_faint_below: args.ignore_faint_below,
        overall: report.accuracy.as_ref(),
        by_class: &report.accuracy_by_class,
        by_echo_pattern: &report.accuracy_by_echo_pattern,
        run: &report,
        baseline: baseline
            .as_ref()
            .zip(args.baseline.as_deref())
            .map(|(b, model)| BaselineOutput {
                model,
                overall: b.accuracy.as_ref(),
                by_class: &b.accuracy_by_class,
                by_echo_pattern: &b.accuracy_by_echo_pattern,
            }),
        difference,
    };
    print!("{}", table(&output));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&output).context("serialising the figures")?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// One model over the dataset: the run's report.
fn score(
    args: &EvalArgs,
    model: &Path,
    mirror: bool,
    findings_jsonl: Option<&Path>,
    stop: &StopFlag,
) -> Result<RunReport> {
    let text = definition(args, model, mirror);
    let def = PipelineDefinition::parse(&text, "sonoflow eval", "eval")
        .with_context(|| format!("evaluating {}", args.dataset.display()))?;
    let stage =
        ProcessStage::for_definition(&def).with_context(|| format!("model {}", model.display()))?;
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {pos} images  {per_sec}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let options = RunOptions {
        frames: args.frames,
        stop: stop.clone(),
        status_every: Duration::from_millis(250),
        findings_jsonl: findings_jsonl.map(Path::to_path_buf),
        serve: None,
        store: None,
    };
    let report = run(&def, stage, &options, &mut |status| {
        bar.set_position(status.metrics.frames_out);
        if let Some(dice) = status.inference.and_then(|i| i.accuracy().dice_mean) {
            bar.set_message(format!("Dice so far {dice:.3}"));
        }
    })
    .with_context(|| format!("evaluating {}", args.dataset.display()))?;
    bar.finish_and_clear();
    if let Some(err) = &report.error {
        anyhow::bail!("the evaluation stopped: {err}");
    }
    Ok(report)
}

/// The figures as a text table: one row per class, then all, then one row
/// per echo pattern when there are any.
fn table(o: &EvalOutput<'_>) -> String {
    let mut s = String::new();
    let mirrored = o.run.inference.as_ref().is_some_and(|i| i.mirror_average);
    let _ = writeln!(
        s,
        "{} images in {:.1} s: {:.1} images/s (model p50 {}{})",
        o.frames,
        o.run.duration_s,
        o.frames_per_s,
        o.model_ms_p50
            .map_or_else(|| "n/a".to_owned(), |ms| format!("{ms:.2} ms")),
        if mirrored {
            ", each frame also mirrored"
        } else {
            ""
        }
    );
    let header = |s: &mut String, first: &str| {
        let _ = writeln!(
            s,
            "{:<20} {:>6} {:>6} {:>6} {:>8} {:>6} {:>6} {:>9} {:>9} {:>6} {:>8}",
            first,
            "frames",
            "Dice",
            "IoU",
            "Dice>.5",
            "det P",
            "det R",
            "long MAE",
            "short MAE",
            "FP/100",
            "FP imgs"
        );
    };
    let row = |s: &mut String, name: &str, a: &AccuracySummary| {
        let num = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"));
        let mm = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2} mm"));
        let out_of = |n: u64, of: u64| {
            if of > 0 {
                format!("{n}/{of}")
            } else {
                "-".to_owned()
            }
        };
        let _ = writeln!(
            s,
            "{:<20} {:>6} {:>6} {:>6} {:>8} {:>6} {:>6} {:>9} {:>9} {:>6} {:>8}",
            name,
            a.frames,
            num(a.dice_mean),
            num(a.iou_mean),
            out_of(a.dice_gt_0_5, a.dice_frames),
            num(a.detection_precision),
            num(a.detection_recall),
            mm(a.long_axis_mae_mm),
            mm(a.short_axis_mae_mm),
            a.fp_per_100_empty_frames
                .map_or_else(|| "-".to_owned(), |v| format!("{v:.1}")),
            out_of(a.false_positive_frames, a.lesion_free_frames)
        );
    };
    header(&mut s, "class");
    for (class, a) in o.by_class {
        row(&mut s, class, a);
    }
    match o.overall {
        Some(a) => row(&mut s, "all", a),
        None => {
            let _ = writeln!(
                s,
                "no image carried ground truth (no masks): nothing scored"
            );
        }
    }
    if !o.by_echo_pattern.is_empty() {
        header(&mut s, "echo pattern");
        for (pattern, a) in o.by_echo_pattern {
            row(&mut s, pattern, a);
        }
    }
    if let Some(a) = o.overall {
        size_table(&mut s, a);
        conspicuity_table(&mut s, a);
        if let Some(i) = &a.intervals_95 {
            intervals_line(&mut s, i);
        }
    }
    if let Some(b) = &o.baseline {
        let _ = writeln!(s, "baseline {}:", b.model.display());
        header(&mut s, "model");
        if let Some(a) = o.overall {
            row(&mut s, if mirrored { "this, mirrored" } else { "this" }, a);
        }
        if let Some(a) = b.overall {
            row(&mut s, "baseline", a);
        }
        match &o.difference {
            Some(d) => difference_line(&mut s, d),
            None => {
                let _ = writeln!(
                    s,
                    "no paired difference: no figure rests on {} scenes both runs scored alike",
                    sonoflow_perception::accuracy::intervals::MIN_SCENES
                );
            }
        }
    }
    s
}

/// The headline figures as the lines below the tables name them: label,
/// unit, decimals (in the order of `sonoflow_perception::Figures::to_array`).
const FIGURES: [(&str, &str, usize); 5] = [
    ("Dice", "", 3),
    ("det P", "", 3),
    ("det R", "", 3),
    ("long MAE", " mm", 2),
    ("FP/100", "", 1),
];

/// "Dice ..., det P ..., ...": each figure that has a value, shown by `show`
/// (the value, its unit, its decimals).
fn figures_text<T>(values: [Option<T>; 5], show: impl Fn(T, &str, usize) -> String) -> String {
    FIGURES
        .iter()
        .zip(values)
        .filter_map(|(&(name, unit, places), v)| {
            v.map(|v| format!("{name} {}", show(v, unit, places)))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// This model minus the baseline, each figure with its paired interval.
fn difference_line(s: &mut String, d: &Difference) {
    let text = figures_text(d.figures.to_array(), |c: Change, unit, places| {
        let [lo, hi] = c.interval;
        format!(
            "{:+.places$}{unit} ({lo:+.places$} to {hi:+.places$})",
            c.difference
        )
    });
    let _ = writeln!(
        s,
        "this minus baseline over {} scenes, {:.0} % paired intervals ({} draws): {text}",
        d.scenes,
        d.level * 100.0,
        d.draws,
    );
}

/// The overall figures' intervals, when the dataset named scenes.
fn intervals_line(s: &mut String, i: &Intervals) {
    let text = figures_text(i.figures.to_array(), |[lo, hi]: [f64; 2], unit, places| {
        format!("{lo:.places$}-{hi:.places$}{unit}")
    });
    let _ = writeln!(
        s,
        "{:.0} % intervals, resampling the {} scenes ({} draws): {text}",
        i.level * 100.0,
        i.scenes,
        i.draws,
    );
}

/// Detection recall per lesion long-axis band, when any lesion had a length
/// in mm (a calibrated truth).
fn size_table(s: &mut String, a: &AccuracySummary) {
    let rows = a
        .recall_by_size
        .iter()
        .map(|b| (b.long_axis, b.lesions, b.found, b.recall));
    band_table(s, "lesion long axis", rows);
}

/// Detection recall per conspicuity band, when any lesion's truth had one
/// (a phantom export).
fn conspicuity_table(s: &mut String, a: &AccuracySummary) {
    let rows = a
        .recall_by_conspicuity
        .iter()
        .map(|b| (b.conspicuity, b.lesions, b.found, b.recall));
    band_table(s, "lesion conspicuity", rows);
    let measured: u64 = a.recall_by_conspicuity.iter().map(|b| b.lesions).sum();
    let lesions = a.detection_counts.tp + a.detection_counts.fn_ + a.faint_lesions_ignored;
    if measured > 0 && lesions > measured {
        let _ = writeln!(
            s,
            "{} of {lesions} lesions have no conspicuity (too little lesion-free tissue beside them to compare with)",
            lesions - measured
        );
    }
    if a.faint_lesions_ignored > 0 {
        let _ = writeln!(
            s,
            "{} of {lesions} lesions under the faint-lesion cut count neither as found nor as missed (the figures above leave them out; the table counts them)",
            a.faint_lesions_ignored
        );
    }
}

/// A table of lesions, found and recall per band (nothing when no lesion
/// fell in any band).
fn band_table<'a>(
    s: &mut String,
    header: &str,
    rows: impl Iterator<Item = (&'a str, u64, u64, Option<f64>)> + Clone,
) {
    if rows.clone().all(|(_, lesions, _, _)| lesions == 0) {
        return;
    }
    let _ = writeln!(
        s,
        "{header:<20} {:>7} {:>6} {:>6}",
        "lesions", "found", "det R"
    );
    for (band, lesions, found, recall) in rows {
        let recall = recall.map_or_else(|| "-".to_owned(), |r| format!("{r:.3}"));
        let _ = writeln!(s, "{band:<20} {lesions:>7} {found:>6} {recall:>6}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_from_the_command_line_must_be_finite() {
        assert_eq!(finite("4"), Ok(4.0));
        assert_eq!(finite("0.45"), Ok(0.45));
        for bad in ["NaN", "inf", "-inf", "four"] {
            assert!(finite(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_are_quoted_as_toml_strings() {
        assert_eq!(toml_string(r#"a "b"\c"#), r#""a \"b\"\\c""#);
        let parsed: toml_probe::Probe =
            toml_probe::parse(&format!("v = {}", toml_string("dir\\with \"quotes\"\n")));
        assert_eq!(parsed.v, "dir\\with \"quotes\"\n");
    }

    fn args(min_area: Option<f32>) -> EvalArgs {
        EvalArgs {
            dataset: PathBuf::from("data"),
            model: PathBuf::from("onnx/umind-nano"),
            json: None,
            findings_jsonl: None,
            frames: None,
            providers: Vec::new(),
            min_finding_area_mm2: min_area,
            ignore_faint_below: None,
            mask_threshold: None,
            baseline: None,
            mirror_average: false,
        }
    }

    #[test]
    fn mirroring_reaches_the_model_section_only_when_asked() {
        let model = Path::new("onnx/umind-nano");
        assert!(!definition(&args(None), model, false).contains("mirror_average"));
        let text = definition(&args(None), model, true);
        let def = PipelineDefinition::parse(&text, "sonoflow eval", "eval").expect("valid");
        assert!(def.model.is_some_and(|m| m.mirror_average), "{text}");
    }

    #[test]
    fn the_minimum_finding_area_reaches_the_pipeline_and_is_checked() {
        assert!(
            !definition(&args(None), Path::new("onnx/umind-nano"), false).contains("[perception]")
        );
        let text = definition(&args(Some(0.0)), Path::new("onnx/umind-nano"), false);
        assert!(text.contains("min_finding_area_mm2 = 0.0"), "{text}");
        PipelineDefinition::parse(&text, "sonoflow eval", "eval").expect("0 is valid");
        let bad = definition(&args(Some(-1.0)), Path::new("onnx/umind-nano"), false);
        let err = PipelineDefinition::parse(&bad, "sonoflow eval", "eval").expect_err("negative");
        assert!(
            format!("{err:#}").contains("min_finding_area_mm2"),
            "{err:#}"
        );
    }

    mod toml_probe {
        #[derive(serde::Deserialize)]
        pub struct Probe {
            pub v: String,
        }
        pub fn parse(text: &str) -> Probe {
            toml::from_str(text).expect("valid TOML")
        }
    }
}
