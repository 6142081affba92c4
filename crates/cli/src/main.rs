//! `sonoflow`: the command line. Thin by design: it parses arguments, sets
//! up logging and the counting allocator, prints the live status line and
//! writes the report; everything else is in the library crates.

mod bench_cmd;
mod eval_cmd;
mod install;
mod model_cmd;
mod replay_cmd;
mod status_line;
mod trace;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sonoflow_core::alloc_count::CountingAllocator;
use sonoflow_phantom::export::{export, ExportOptions};
use sonoflow_phantom::ProbeKind;
use sonoflow_phantom::{Look, Variation};
use sonoflow_runtime::{run, PipelineDefinition, ProcessStage, RunOptions, RunReport, StopFlag};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// The default pipeline, used when pipelines/default.toml is not in the working directory.
const DEFAULT_PIPELINE: &str = include_str!("../../../pipelines/default.toml");
const DEFAULT_PIPELINE_PATH: &str = "pipelines/default.toml";
/// Exit status of a run cut short by a second stop signal (128 + SIGINT).
const FORCED_EXIT: i32 = 130;

#[derive(Parser)]
#[command(
    name = "sonoflow",
    version,
    about = "Real-time ultrasound vision-language pipeline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline definition (default: pipelines/default.toml).
    Run(RunArgs),
    /// The built-in phantom probe.
    #[command(subcommand)]
    Phantom(PhantomCommand),
    /// Model directories: validate or describe them.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Score a model on a labelled dataset (images with masks, or a
    /// phantom export) as fast as the machine allows: Dice, IoU, detection
    /// precision and recall, caliper errors, false positives, per class.
    Eval(eval_cmd::EvalArgs),
    /// The latency suite: every part of the product against the
    /// bare-inference floor in alternating rounds, at each size, rate and
    /// provider; writes bench.json and a self-contained report.html
    /// (docs/performance.md). --compare A.json B.json sets two side by side.
    Bench(bench_cmd::BenchArgs),
    /// Run a recorded session (`run --record DIR`) again through the model:
    /// the same frames, order and kernels; exit 0 when every frame's
    /// findings are the same, 1 when some changed (--diff lists them).
    Replay(replay_cmd::ReplayArgs),
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Validate a model directory: manifest, files and hashes, every graph
    /// loaded in ONNX Runtime and checked against the manifest, a dummy
    /// inference through each.
    Check(model_cmd::CheckArgs),
    /// Print the manifest as a table: graphs, sizes, parameters, opsets, task tokens.
    Info(model_cmd::InfoArgs),
}

#[derive(Subcommand)]
enum PhantomCommand {
    /// Write phantom frames (PNG), label maps (PNG), ground truth (JSONL) and a manifest.
    Export(ExportArgs),
}

#[derive(clap::Args)]
struct ExportArgs {
    /// Frames to write.
    #[arg(long)]
    frames: u64,
    /// Seed of the dataset; each sequence derives its own from it.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Frames per sequence (one scene seen by a moving probe).
    #[arg(long, default_value_t = 30)]
    sequence_length: u64,
    /// Only this probe (linear or convex); default alternates.
    #[arg(long, value_parser = parse_probe)]
    probe: Option<ProbeKind>,
    /// Only this depth in cm (3, 4, 5, 6, 8); default draws from the presets.
    #[arg(long)]
    depth_cm: Option<u32>,
    /// Lesions per scene (0 to 3); default 1 or 2.
    #[arg(long)]
    lesions: Option<u32>,
    /// Frame size; with --randomise each sequence draws its own unless given.
    #[arg(long)]
    width: Option<u32>,
    #[arg(long)]
    height: Option<u32>,
    /// Draw each sequence's look (beamforming, PSF, speckle, TGC, grey map,
    /// standoff), lesion contrast, size and position, shadows, frame size,
    /// gain and lesion count from its seed (docs/phantom.md).
    #[arg(long)]
    randomise: bool,
    /// With --randomise: the beamforming looks to draw from
    /// (focused, plane_wave, harmonic).
    #[arg(long, value_delimiter = ',', value_parser = parse_look)]
    looks: Vec<Look>,
    /// With --randomise: lesion contrast bands in dB, LOW:HIGH, comma separated
    /// (default -40:12).
    #[arg(long, value_delimiter = ',', value_parser = parse_band, allow_hyphen_values = true)]
    contrast_bands: Vec<[f32; 2]>,
    /// Sequences rendered at once (0: one per core); the files are the same
    /// whatever the count.
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

fn parse_look(s: &str) -> Result<Look, String> {
    Look::parse(s).ok_or_else(|| format!("unknown look {s:?}; use focused, plane_wave or harmonic"))
}

fn parse_band(s: &str) -> Result<[f32; 2], String> {
    let bad = || format!("{s:?} is not a band; write LOW:HIGH in dB, e.g. -40:12");
    let (lo, hi) = s.split_once(':').ok_or_else(bad)?;
    let lo: f32 = lo.trim().parse().map_err(|_| bad())?;
    let hi: f32 = hi.trim().parse().map_err(|_| bad())?;
    if lo > hi {
        return Err(bad());
    }
    Ok([lo, hi])
}

fn parse_probe(s: &str) -> Result<ProbeKind, String> {
    match s {
        "linear" => Ok(ProbeKind::Linear),
        "convex" => Ok(ProbeKind::Convex),
        other => Err(format!("unknown probe {other:?}; use linear or convex")),
    }
}

#[derive(clap::Args)]
struct RunArgs {
    /// Pipeline definition (TOML). Default: pipelines/default.toml.
    pipeline: Option<PathBuf>,
    /// Stop after this many frames have been ingested.
    #[arg(long)]
    frames: Option<u64>,
    /// Keep a session bundle in DIR (a new folder): every frame the model
    /// analysed, losslessly, with its timestamps, calibration, truth,
    /// findings and the kernels used, the definition and the model's hash,
    /// for `sonoflow replay DIR`.
    #[arg(long, value_name = "DIR")]
    record: Option<PathBuf>,
    /// Write the run report (JSON) here at the end.
    #[arg(long, value_name = "PATH")]
    stats_json: Option<PathBuf>,
    /// Write one JSON line per frame that leaves the pipeline here: its
    /// sonoflow.v1.FrameResult in protobuf's canonical JSON (frame id,
    /// timestamps, calibration, findings with label, score, box, contour,
    /// calipers in mm with ±; see docs/protocol.md).
    #[arg(long, value_name = "PATH")]
    findings_jsonl: Option<PathBuf>,
    /// Serve the results stream on ADDR (host:port; port 0 picks one):
    /// WebSocket at /ws, newline-delimited JSON at /stream.ndjson, /session.
    /// The definition's other [server] keys still apply. An address other
    /// than loopback needs a token: [server] token, or SONOFLOW_SERVER_TOKEN.
    #[arg(long, value_name = "ADDR")]
    serve: Option<String>,
    /// No live status line.
    #[arg(long)]
    quiet: bool,
    /// Fail instead of falling back unless every graph runs on this provider
    /// (tensorrt, cuda or cpu); overrides the definition's model.require_provider.
    #[arg(long)]
    require_provider: Option<String>,
    /// Write a trace of the run here: Chrome trace JSON with one track per
    /// thread, every frame's stage spans (ingest, process, ai, model,
    /// postprocess, output, overlay) and flow arrows joining each frame's
    /// spans. Open it in ui.perfetto.dev or chrome://tracing (docs/tracing.md).
    /// Tracing costs time and allocations on every frame: don't benchmark with it.
    #[arg(long, value_name = "PATH")]
    trace: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (quiet, trace_path) = match &cli.command {
        Command::Run(args) => (args.quiet, args.trace.clone()),
        _ => (false, None),
    };
    // The trace file is opened before anything runs: a path that cannot be
    // written fails now, not after the run.
    let trace_file = match trace_path.as_deref().map(trace::create).transpose() {
        Ok(file) => file,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::from(2);
        }
    };
    let trace_guard = init_logging(quiet, trace_file);
    let outcome = match cli.command {
        Command::Run(args) => run_command(args),
        Command::Phantom(PhantomCommand::Export(args)) => export_command(args),
        Command::Model(ModelCommand::Check(args)) => model_cmd::check(args),
        Command::Model(ModelCommand::Info(args)) => model_cmd::info(args),
        Command::Eval(args) => eval_cmd::eval_command(args).map(|()| ExitCode::SUCCESS),
        Command::Bench(args) => bench_cmd::bench_command(args).map(|()| ExitCode::SUCCESS),
        Command::Replay(args) => replay_cmd::replay_command(args),
    };
    // Dropping the guard writes the rest of the trace and closes it; the
    // run's threads have all been joined by now.
    drop(trace_guard);
    let outcome = match (outcome, trace_path) {
        (Ok(code), Some(path)) => finish_trace(&path).map(|()| code),
        (outcome, Some(path)) => {
            // The run's error is the one to report; the trace is still worth having.
            if let Err(err) = finish_trace(&path) {
                tracing::warn!("{err:#}");
            }
            outcome
        }
        (outcome, None) => outcome,
    };
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Logs to stderr (INFO, or WARN with --quiet; RUST_LOG wins when set) and,
/// with `--trace`, records the trace into `trace_file` through its own
/// filter. The guard, when there is one, must live until the run is over.
fn init_logging(
    quiet: bool,
    trace_file: Option<std::fs::File>,
) -> Option<tracing_chrome::FlushGuard> {
    let default_level = if quiet { "warn" } else { "info" };
    let env = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(env);
    let logging = tracing_subscriber::registry().with(stderr);
    match trace_file {
        None => {
            logging.init();
            None
        }
        Some(file) => {
            let (chrome, guard) = trace::layer(file);
            logging.with(chrome).init();
            Some(guard)
        }
    }
}

/// Adds the flow events to a finished trace and says where it is.
fn finish_trace(path: &Path) -> Result<()> {
    let summary = trace::add_flows(path)
        .with_context(|| format!("--trace {}: adding the frames' flow events", path.display()))?;
    tracing::info!(
        frames = summary.frames,
        "trace written to {}: open it in ui.perfetto.dev or chrome://tracing",
        path.display()
    );
    Ok(())
}

fn load_definition(path: Option<&Path>) -> Result<PipelineDefinition> {
    match path {
        Some(path) => Ok(PipelineDefinition::load(path)?),
        None if Path::new(DEFAULT_PIPELINE_PATH).exists() => {
            Ok(PipelineDefinition::load(Path::new(DEFAULT_PIPELINE_PATH))?)
        }
        None => {
            // Outside a checkout: the installed tree beside the binary (or
            // $SONOFLOW_HOME) holds the device profiles and the demo model.
            let home = install::home().with_context(|| {
                format!(
                    "no {DEFAULT_PIPELINE_PATH} in the working directory and no sonoflow tree found \
                     ({}); run from a checkout, name a pipeline file, or set SONOFLOW_HOME",
                    install::searched()
                )
            })?;
            let mut def = PipelineDefinition::parse_at(
                DEFAULT_PIPELINE,
                "<built-in default pipeline>",
                "default",
                Some(&home.join("pipelines")),
            )?;
            if let Some(model) = def
                .model
                .as_mut()
                .filter(|m| m.dir.is_relative() && !m.dir.exists())
            {
                model.dir = home.join(&model.dir);
            }
            Ok(def)
        }
    }
}

/// SIGUSR1 asks for a keyframe now that a `dicom` or `pacs` sink stores (the
/// keystroke-free way to store, e.g. from a foot switch's script).
fn store_signal() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&flag))
        .context("installing the SIGUSR1 (store) handler")?;
    Ok(flag)
}

/// Stops the run on SIGINT, SIGTERM or SIGHUP (drain, finalise, report);
/// a second signal exits at once, for a drain that is stuck.
fn install_stop_handler(stop: StopFlag) -> Result<()> {
    let signals = AtomicU32::new(0);
    ctrlc::set_handler(move || {
        if signals.fetch_add(1, Ordering::SeqCst) == 0 {
            tracing::warn!(
                "stop requested (SIGINT/SIGTERM/SIGHUP): draining and finalising; send it again to exit at once"
            );
            stop.stop();
        } else {
            tracing::error!(
                "second stop signal: exiting now without draining (fragmented recordings keep everything up to their last fragment)"
            );
            std::process::exit(FORCED_EXIT);
        }
    })
    .context("installing the SIGINT/SIGTERM/SIGHUP handler")
}

/// Creates (or truncates) the report file before the run, so that an
/// unwritable path is found in the first second, not after the whole run.
fn check_report_path(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("--stats-json: creating the folder {}", dir.display()))?;
    }
    std::fs::File::create(path).with_context(|| {
        format!(
            "--stats-json {}: the report cannot be written there; choose a writable path",
            path.display()
        )
    })?;
    Ok(())
}

fn run_command(args: RunArgs) -> Result<ExitCode> {
    let mut def = load_definition(args.pipeline.as_deref())?;
    if let Some(name) = &args.require_provider {
        let provider = sonoflow_inference::Provider::parse(name)
            .with_context(|| format!("--require-provider {name:?}: use tensorrt, cuda or cpu"))?;
        let model = def
            .model
            .as_mut()
            .context("--require-provider needs a pipeline whose process stage runs a model")?;
        model.engine.require_provider(provider);
    }
    if let Some(path) = &args.stats_json {
        check_report_path(path)?;
    }
    let stop = StopFlag::new();
    install_stop_handler(stop.clone())?;
    let interactive = std::io::stderr().is_terminal();
    let options = RunOptions {
        frames: args.frames,
        stop,
        status_every: if interactive {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(2)
        },
        findings_jsonl: args.findings_jsonl.clone(),
        serve: serve_options(args.serve.as_deref(), def.server.as_ref())?,
        store: Some(store_signal()?),
    };
    let mut line = status_line::StatusLine::new(interactive, args.quiet);
    let recording = match &args.record {
        Some(dir) => {
            let text = match &def.path {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("--record: cannot read {}", path.display()))?,
                None => DEFAULT_PIPELINE.to_owned(),
            };
            Some(replay_cmd::start_recording(dir, &def, &text)?)
        }
        None => None,
    };
    let (recorder, tap) = recording.unzip();
    let stage =
        ProcessStage::recording(&def, tap).with_context(|| format!("pipeline {}", def.name))?;
    let report = run(&def, stage, &options, &mut |status| line.update(status))
        .with_context(|| format!("pipeline {}", def.name))?;
    line.finish();
    if let Some(recorder) = recorder {
        let info = recorder.finish()?;
        eprintln!(
            "recorded {} frames into {}{}",
            info.frames,
            args.record
                .as_deref()
                .map(Path::display)
                .map(|d| d.to_string())
                .unwrap_or_default(),
            info.error
                .map(|e| format!(" ({} failed: {e})", info.failed))
                .unwrap_or_default()
        );
    }
    print_summary(&report);
    if let Some(path) = &args.stats_json {
        write_report(path, &report)?;
    }
    Ok(match &report.error {
        Some(_) => ExitCode::from(1),
        None => ExitCode::SUCCESS,
    })
}

/// `--serve ADDR`: the definition's `[server]` (or the defaults) at ADDR,
/// with the token from SONOFLOW_SERVER_TOKEN when the environment sets one.
fn serve_options(
    address: Option<&str>,
    configured: Option<&sonoflow_runtime::ServerOptions>,
) -> Result<Option<sonoflow_runtime::ServerOptions>> {
    let Some(address) = address else {
        return Ok(None);
    };
    let mut options = configured.cloned().unwrap_or_default();
    options.address = address.parse().with_context(|| {
        format!("--serve {address:?}: write an IP address and port, e.g. 127.0.0.1:8700")
    })?;
    if let Some(token) = std::env::var("SONOFLOW_SERVER_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
    {
        options.token = Some(sonoflow_runtime::ServerToken::new(token));
    }
    options
        .check_token("server.token (or SONOFLOW_SERVER_TOKEN with --serve)")
        .with_context(|| format!("--serve {address}"))?;
    Ok(Some(options))
}

fn export_command(args: ExportArgs) -> Result<ExitCode> {
    let options = ExportOptions {
        frames: args.frames,
        seed: args.seed,
        out: args.out,
        sequence_length: args.sequence_length,
        probe: args.probe,
        depth_cm: args.depth_cm,
        lesions: args.lesions,
        lesion_kind: None,
        width: args.width.unwrap_or(640),
        height: args.height.unwrap_or(480),
        variation: args.randomise.then(|| {
            let default = Variation::default();
            Variation {
                looks: if args.looks.is_empty() {
                    default.looks
                } else {
                    args.looks.clone()
                },
                contrast_bands_db: if args.contrast_bands.is_empty() {
                    default.contrast_bands_db
                } else {
                    args.contrast_bands.clone()
                },
            }
        }),
        fixed_size: args.width.is_some() || args.height.is_some(),
        threads: args.threads,
        ..ExportOptions::default()
    };
    if !args.randomise && (!args.looks.is_empty() || !args.contrast_bands.is_empty()) {
        anyhow::bail!("--looks and --contrast-bands only apply with --randomise; add --randomise");
    }
    let bar = ProgressBar::new(options.frames).with_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:40}] {pos}/{len} frames, {per_sec}, eta {eta}",
        )
        .context("progress bar template")?
        .progress_chars("=> "),
    );
    bar.set_prefix("phantom export");
    let summary = export(&options, &mut |done, _| bar.set_position(done))
        .with_context(|| format!("exporting the phantom to {}", options.out.display()))?;
    bar.finish();
    eprintln!(
        "wrote {} frames in {} sequences to {} (manifest {})",
        summary.frames,
        summary.sequences.len(),
        options.out.display(),
        summary.manifest.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn write_report(path: &Path, report: &RunReport) -> Result<()> {
    let json = serde_json::to_string_pretty(report).context("serialising the report")?;
    std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
}

fn print_summary(r: &RunReport) {
    let dropped: u64 = r.dropped.values().sum();
    eprintln!(
        "{}: {} frames in ({:.1} fps), {} out ({:.1} fps), {} dropped, latency p50 {:.2} ms p99 {:.2} ms max {:.2} ms{}",
        r.pipeline,
        r.frames_in,
        r.fps_in,
        r.frames_out,
        r.fps_out,
        dropped,
        r.latency_ms.p50,
        r.latency_ms.p99,
        r.latency_ms.max,
        r.error.as_deref().map(|e| format!("; ended with error: {e}")).unwrap_or_default()
    );
}
