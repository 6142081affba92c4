//! `sonoflow eval DATASET`: a model over a labelled dataset (a folder of
//! images with masks, or a phantom export) as fast as the machine allows,
//! through the same pipeline `sonoflow run` builds (an `images` source,
//! unpaced, blocking hand-offs, the model with its perception and
//! self-check, no overlay, a fake sink). The figures are the run's own
//! self-check, overall, per class and, when the truth records lesion
//! attributes (a phantom export), per echo pattern, then detection recall
//! per lesion size when the truth has lengths in mm; nothing is scored
//! twice.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use sonoflow_perception::AccuracySummary;
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
    #[arg(long, value_name = "MM2")]
    min_finding_area_mm2: Option<f32>,
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
    overall: Option<&'a AccuracySummary>,
    by_class: &'a BTreeMap<String, AccuracySummary>,
    /// Frames grouped by the echo pattern their lesions share ("mixed" when
    /// they differ); empty when the truth has no lesion attributes.
    by_echo_pattern: &'a BTreeMap<String, AccuracySummary>,
    run: &'a RunReport,
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

/// The pipeline an evaluation runs: what `sonoflow run` would run for it.
fn definition(args: &EvalArgs) -> String {
    let providers = if args.providers.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = args.providers.iter().map(|p| toml_string(p)).collect();
        format!("providers = [{}]\n", list.join(", "))
    };
    format!(
        "[source]\nkind = \"images\"\npath = {dataset}\nlive = false\n\
         [queues.process]\npolicy = \"block\"\n[queues.output]\npolicy = \"block\"\n\
         [model]\ndir = {model}\n{providers}\
         [reasoning]\nenabled = false\n\
         [overlay]\nenabled = false\n\
         [load]\nenabled = false\n\
         {perception}\
         [[sinks]]\nkind = \"fake\"\n",
        dataset = toml_string(&args.dataset.display().to_string()),
        model = toml_string(&args.model.display().to_string()),
        perception = args
            .min_finding_area_mm2
            .map(|a| format!("[perception]\nmin_finding_area_mm2 = {a:?}\n"))
            .unwrap_or_default(),
    )
}

pub fn eval_command(args: EvalArgs) -> Result<()> {
    let text = definition(&args);
    let def = PipelineDefinition::parse(&text, "sonoflow eval", "eval")
        .with_context(|| format!("evaluating {}", args.dataset.display()))?;
    if let Some(path) = &args.json {
        crate::check_report_path(path)?;
    }
    let stop = StopFlag::new();
    crate::install_stop_handler(stop.clone())?;
    let stage = ProcessStage::for_definition(&def)
        .with_context(|| format!("model {}", args.model.display()))?;
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {pos} images  {per_sec}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let options = RunOptions {
        frames: args.frames,
        stop,
        status_every: Duration::from_millis(250),
        findings_jsonl: args.findings_jsonl.clone(),
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
        overall: report.accuracy.as_ref(),
        by_class: &report.accuracy_by_class,
        by_echo_pattern: &report.accuracy_by_echo_pattern,
        run: &report,
    };
    print!("{}", table(&output));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&output).context("serialising the figures")?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The figures as a text table: one row per class, then all, then one row
/// per echo pattern when there are any.
fn table(o: &EvalOutput<'_>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} images in {:.1} s: {:.1} images/s (model p50 {})",
        o.frames,
        o.run.duration_s,
        o.frames_per_s,
        o.model_ms_p50
            .map_or_else(|| "n/a".to_owned(), |ms| format!("{ms:.2} ms"))
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
    }
    s
}

/// Detection recall per lesion long-axis band, when any lesion had a length
/// in mm (a calibrated truth).
fn size_table(s: &mut String, a: &AccuracySummary) {
    if a.recall_by_size.iter().all(|b| b.lesions == 0) {
        return;
    }
    let _ = writeln!(
        s,
        "{:<20} {:>7} {:>6} {:>6}",
        "lesion long axis", "lesions", "found", "det R"
    );
    for band in &a.recall_by_size {
        let recall = band
            .recall
            .map_or_else(|| "-".to_owned(), |r| format!("{r:.3}"));
        let _ = writeln!(
            s,
            "{:<20} {:>7} {:>6} {:>6}",
            band.long_axis, band.lesions, band.found, recall
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        }
    }

    #[test]
    fn the_minimum_finding_area_reaches_the_pipeline_and_is_checked() {
        assert!(!definition(&args(None)).contains("[perception]"));
        let text = definition(&args(Some(0.0)));
        assert!(text.contains("min_finding_area_mm2 = 0.0"), "{text}");
        PipelineDefinition::parse(&text, "sonoflow eval", "eval").expect("0 is valid");
        let bad = definition(&args(Some(-1.0)));
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
