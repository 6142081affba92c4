//! `sonoflow run --record DIR` (the bundle's set-up) and `sonoflow replay
//! DIR [--model DIR] [--diff] [--json PATH]` (sonoflow_runtime::replay).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use sonoflow_runtime::recording::{BundleInfo, RecordTap, Recorder, BUNDLE_FORMAT};
use sonoflow_runtime::replay::{replay, ReplayOptions, ReplayReport};
use sonoflow_runtime::PipelineDefinition;

/// `sonoflow replay` arguments.
#[derive(clap::Args)]
pub struct ReplayArgs {
    /// A folder `sonoflow run --record DIR` wrote.
    bundle: PathBuf,
    /// Replay with this model directory instead of the recorded one.
    #[arg(long)]
    model: Option<PathBuf>,
    /// List every finding that changed, and by how much.
    #[arg(long)]
    diff: bool,
    /// Write the replay's report (every change) as JSON.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
}

/// Starts recording `def`'s run into `dir` (`definition_text`: the file it
/// was read from, as given).
pub fn start_recording(
    dir: &Path,
    def: &PipelineDefinition,
    definition_text: &str,
) -> Result<(Recorder, RecordTap)> {
    let spec = def.model.as_ref().context(
        "--record records what the model analyses: the pipeline needs [process] kind = \"model\"",
    )?;
    let model_dir = std::fs::canonicalize(&spec.dir)
        .with_context(|| format!("--record: the model directory {}", spec.dir.display()))?;
    let model = sonoflow_model::ModelDir::open(&model_dir)
        .with_context(|| format!("--record: the model directory {}", model_dir.display()))?;
    let manifest = sonoflow_model::ModelDir::manifest_path(&model_dir);
    let info = BundleInfo {
        format: BUNDLE_FORMAT,
        pipeline: def.name.clone(),
        model: format!("{} {}", model.manifest.name, model.manifest.version),
        model_sha256: sonoflow_model::sha256_hex(&manifest)
            .with_context(|| format!("--record: cannot read {}", manifest.display()))?,
        model_dir,
        sonoflow_version: env!("CARGO_PKG_VERSION").to_owned(),
        frames: 0,
        kernel_versions: Vec::new(),
        failed: 0,
        error: None,
        created: 0,
    };
    Ok(Recorder::start(dir, definition_text, info)?)
}

pub fn replay_command(args: ReplayArgs) -> Result<ExitCode> {
    let options = ReplayOptions {
        model: args.model.clone(),
    };
    let report = replay(&args.bundle, &options)
        .with_context(|| format!("replay of {}", args.bundle.display()))?;
    print_report(&report, args.diff);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("--json: cannot write {}", path.display()))?;
    }
    // Like diff(1): 0 the same, 1 changed.
    Ok(if report.is_identical() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The summary line, and with `diff` every change (stdout; a closed pipe,
/// as `| head` makes, ends the listing quietly).
fn print_report(r: &ReplayReport, diff: bool) {
    let model = if r.model_sha256 == r.recorded_model_sha256 {
        format!("{} (as recorded)", r.model)
    } else {
        format!(
            "{} from {} (manifest sha256 {}; recorded {} {})",
            r.model,
            r.model_dir.display(),
            short(&r.model_sha256),
            r.recorded_model,
            short(&r.recorded_model_sha256)
        )
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "replayed {} frames of {} with {model}, {} recorded kernel version(s) at their frames: {} identical, {} changed",
        r.frames,
        r.bundle.display(),
        r.kernels_replayed.len(),
        r.identical,
        r.changed.len()
    );
    if !diff {
        if !r.changed.is_empty() {
            let _ = writeln!(out, "(--diff lists every change)");
        }
        return;
    }
    for change in &r.changed {
        let _ = writeln!(out, "frame {} (id {}):", change.index, change.frame_id);
        for line in &change.changes {
            if writeln!(out, "  {line}").is_err() {
                return;
            }
        }
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}
