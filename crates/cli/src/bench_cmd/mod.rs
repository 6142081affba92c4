//! `sonoflow bench [SUITE]`: the latency suite anyone can run on any box
//! and compare (docs/performance.md).
//!
//! Each scenario (a part of the product at a frame size, rate and provider;
//! [`scenario`]) runs as the real binary in alternating rounds with the
//! bare-inference floor of the same model on the same provider at the same
//! rate, measured in this process just before and after: on a shared
//! machine whose speed drifts, a scenario is set against the mean of the
//! floors around it, and the median over rounds is the figure to quote
//! (the spread over rounds is kept). The suite writes `bench.json` (the
//! machine, every round, the medians) and `report.html` (self-contained
//! plots: latency CDF per scenario, per-stage waterfall, one second of
//! frames on a timeline from a trace, ratio to the floor with its spread)
//! into `--out`. `--compare A.json B.json` sets two such files side by side.
//! `glass` (alone, and after `standard`) measures glass-to-glass latency
//! through the rtp and mp4 sinks beside the run's own ([`glass`]).

mod compare;
mod glass;
mod html;
mod machine;
mod measure;
mod scaling;
mod scenario;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use sonoflow_inference::{available_providers, default_dylib, Provider, Runtime};
use sonoflow_model::ModelDir;

use machine::Machine;
use measure::{Floor, Quantiles, RunFigures};
use scenario::{Kind, Scenario};

/// `sonoflow bench` arguments.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// standard (every part of the product at 640x480 and 1920x1080, 30 and
    /// 60 fps, and the head busy, then glass), quick (three scenarios at
    /// 640x480@30), scaling (resolution, frame rate, lesions, concurrent
    /// streams), or glass (capture to decoded pixels through the rtp and
    /// mp4 sinks, beside the run's own latency).
    #[arg(default_value = "standard")]
    suite: String,
    /// Frames per scenario run (and inferences per floor).
    #[arg(long, default_value_t = 300)]
    frames: u64,
    /// Alternating rounds of floor and scenarios.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Where bench.json, report.html and every run's files go.
    #[arg(long, default_value = "out/bench/suite")]
    out: PathBuf,
    /// Providers to bench (comma-separated; default: every one this ONNX
    /// Runtime offers).
    #[arg(long, value_delimiter = ',')]
    providers: Vec<String>,
    /// The model directory (default onnx/umind-nano).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Also write the traced run's Chrome trace here (it is always taken
    /// for the timeline, into the out folder).
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Set two bench.json files side by side instead of running.
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    compare: Option<Vec<PathBuf>>,
    /// Write report.html again from a bench.json (into --out) instead of running.
    #[arg(long, value_name = "BENCH_JSON")]
    render: Option<PathBuf>,
}

/// One scenario's rounds and medians.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub label: String,
    pub scenario: Scenario,
    pub rounds: Vec<Round>,
    /// Medians over rounds.
    pub latency_ms: Quantiles,
    /// Scenario over floor, median over rounds, and the rounds' extremes.
    pub ratio: Option<Ratio>,
    pub cdf_ms: Vec<[f64; 2]>,
    pub stages_ms: Vec<(String, f64)>,
    pub fps_out: f64,
    pub dropped: u64,
    pub cpu_ms_per_frame: f64,
    /// Why a round failed, if one did (the others are kept).
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Round {
    pub figures: RunFigures,
    /// The mean of the floors before and after it (model scenarios).
    pub floor_ms: Option<Quantiles>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Ratio {
    pub p50: f64,
    pub p99: f64,
    pub p50_range: [f64; 2],
    pub p99_range: [f64; 2],
}

/// The floor of one provider at one rate, each round and after the last.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FloorResult {
    pub provider: String,
    pub fps: u32,
    pub rounds: Vec<Quantiles>,
    pub median_ms: Quantiles,
}

/// What `sonoflow bench` writes as bench.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchReport {
    pub suite: String,
    /// Seconds since the epoch when it ran.
    pub created: u64,
    pub frames: u64,
    pub rounds: u32,
    pub machine: Machine,
    pub floors: Vec<FloorResult>,
    pub scenarios: Vec<ScenarioResult>,
    /// The Chrome trace the timeline is drawn from.
    pub trace: Option<PathBuf>,
    /// Capture to decoded pixels through the real sinks (suites glass and
    /// standard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glass_to_glass: Option<glass::GlassToGlass>,
}

pub fn bench_command(args: BenchArgs) -> anyhow::Result<()> {
    if let Some(files) = &args.compare {
        return compare::compare(&files[0], &files[1], &args.out);
    }
    if let Some(json) = &args.render {
        let report = read_report(json)?;
        std::fs::create_dir_all(&args.out)
            .with_context(|| format!("cannot create {}", args.out.display()))?;
        let page = args.out.join("report.html");
        std::fs::write(&page, html::page(&report))
            .with_context(|| format!("cannot write {}", page.display()))?;
        println!("wrote {}", page.display());
        return Ok(());
    }
    let root = std::env::current_dir()?;
    let model_dir = args
        .model
        .clone()
        .unwrap_or_else(|| root.join("onnx/umind-nano"));
    let model_dir = std::fs::canonicalize(&model_dir).with_context(|| {
        format!(
            "no model directory at {}: run from the sonoflow tree or pass --model DIR",
            model_dir.display()
        )
    })?;
    let model = ModelDir::open(&model_dir)?;
    let dylib = default_dylib(&root);
    let runtime = Runtime::load(&dylib)
        .context("the bench needs ONNX Runtime: run scripts/bootstrap.sh, or set ORT_DYLIB_PATH")?;
    let providers = providers(&args.providers)?;
    let scenarios = scenario::suite(&args.suite, &providers).with_context(|| {
        format!(
            "no suite \"{}\": the suites are {}",
            args.suite,
            scenario::SUITES
        )
    })?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let exe = std::env::current_exe().context("cannot find the sonoflow binary")?;
    let names: Vec<String> = providers.iter().map(|p| p.name().to_owned()).collect();
    let machine = Machine::read(&root, &model, &dylib, &names);
    eprintln!("bench {}: {}", args.suite, machine.summary());

    // The floor of each provider at each rate the suite runs.
    let mut groups: BTreeMap<(String, u32), Vec<usize>> = BTreeMap::new();
    for (i, s) in scenarios.iter().enumerate() {
        groups
            .entry((s.provider.clone(), s.fps))
            .or_default()
            .push(i);
    }
    let mut floors: BTreeMap<String, Floor> = BTreeMap::new();
    for p in providers.iter().filter(|_| !scenarios.is_empty()) {
        floors.insert(p.name().to_owned(), Floor::load(runtime, &model, *p)?);
    }
    let floor_frames = args.frames.min(300);
    let peer_frames = args.out.join("peer-frames");
    if scenarios
        .iter()
        .any(|s| matches!(s.kind, Kind::SameFrames | Kind::Peer))
    {
        eprintln!("exporting the phantom frames the peer and sonoflow-png play");
        measure::peer_frames(&exe, &peer_frames, scenario::VGA)?;
    }
    let with_glass = scenario::has_glass(&args.suite);
    let steps = u64::from(args.rounds) * (groups.len() + scenarios.len()) as u64
        + groups.len() as u64
        + 1
        + u64::from(with_glass);
    let bar = Progress::new(steps);
    let mut floor_rounds: BTreeMap<(String, u32), Vec<Quantiles>> = BTreeMap::new();
    let mut runs: Vec<Vec<Result<RunFigures, String>>> = vec![Vec::new(); scenarios.len()];
    for round in 1..=args.rounds {
        for ((provider, fps), members) in &groups {
            bar.step(format!("round {round}: floor {provider} @{fps}"));
            measure_floor(&mut floors, &mut floor_rounds, provider, *fps, floor_frames)?;
            bar.inc(1);
            for &i in members {
                let s = &scenarios[i];
                bar.step(format!("round {round}: {}", s.label()));
                let figures = measure::run_scenario(
                    &exe,
                    s,
                    &model_dir,
                    args.frames,
                    &args.out,
                    &format!("r{round}"),
                    &peer_frames,
                    None,
                )
                .map_err(|e| format!("round {round}: {e:#}"));
                if let Err(e) = &figures {
                    bar.warn(format!("warning: {e}"));
                }
                runs[i].push(figures);
                bar.inc(1);
            }
        }
    }
    // The closing floors, so that every round has one after it.
    for (provider, fps) in groups.keys() {
        bar.step(format!("closing floor {provider} @{fps}"));
        measure_floor(&mut floors, &mut floor_rounds, provider, *fps, floor_frames)?;
        bar.inc(1);
    }
    // One traced run of the first model scenario, for the timeline.
    let traced = scenarios
        .iter()
        .find(|s| s.kind == Kind::Product && s.streams == 1)
        .or_else(|| scenarios.first());
    let trace_path = args.out.join("trace.json");
    let trace = match traced {
        Some(s) => {
            bar.step(format!("traced run: {}", s.label()));
            let frames = args.frames.min(u64::from(s.fps) * 4).max(60);
            match measure::run_scenario(
                &exe,
                s,
                &model_dir,
                frames,
                &args.out,
                "trace",
                &peer_frames,
                Some(&trace_path),
            ) {
                Ok(_) => Some(trace_path.clone()),
                Err(e) => {
                    bar.warn(format!("warning: the traced run failed: {e:#}"));
                    None
                }
            }
        }
        None => None,
    };
    bar.inc(1);
    // Glass to glass: the product at 640x480@30 through the real sinks, on
    // the CPU where it is asked for (the sink path does not use the model's
    // provider).
    let glass = with_glass.then(|| {
        let provider = providers
            .iter()
            .copied()
            .find(|p| *p == Provider::Cpu)
            .or(providers.first().copied())
            .unwrap_or(Provider::Cpu);
        let s = Scenario::new(Kind::Product, scenario::VGA, 30, provider);
        bar.step(format!("glass to glass: {}", s.label()));
        let glass = glass::measure(&exe, &s, &model_dir, args.frames, &args.out);
        for e in &glass.errors {
            bar.warn(format!("warning: glass to glass, {e}"));
        }
        bar.inc(1);
        glass
    });
    bar.finish_and_clear();
    if let (Some(from), Some(to)) = (&trace, &args.trace) {
        std::fs::copy(from, to).with_context(|| format!("cannot write {}", to.display()))?;
    }

    let report = BenchReport {
        suite: args.suite.clone(),
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        frames: args.frames,
        rounds: args.rounds,
        machine,
        floors: floor_rounds
            .iter()
            .map(|((provider, fps), rounds)| FloorResult {
                provider: provider.clone(),
                fps: *fps,
                median_ms: median_quantiles(rounds),
                rounds: rounds.clone(),
            })
            .collect(),
        scenarios: scenarios
            .iter()
            .zip(runs)
            .map(|(s, runs)| summarise(s, runs, &floor_rounds))
            .collect(),
        trace,
        glass_to_glass: glass,
    };
    let json = args.out.join("bench.json");
    std::fs::write(&json, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("cannot write {}", json.display()))?;
    let page = args.out.join("report.html");
    std::fs::write(&page, html::page(&report))
        .with_context(|| format!("cannot write {}", page.display()))?;
    println!("{}", summary_table(&report));
    println!("wrote {} and {}", json.display(), page.display());
    if !report.scenarios.is_empty() && report.scenarios.iter().all(|s| s.rounds.is_empty()) {
        bail!("no scenario ran; see the warnings above");
    }
    if let Some(g) = report
        .glass_to_glass
        .as_ref()
        .filter(|_| scenarios.is_empty())
    {
        if g.rtp.is_none() && g.mp4.is_none() {
            bail!("glass to glass measured nothing; see the warnings above");
        }
    }
    Ok(())
}

/// The suite's progress: a bar on a terminal; otherwise (a log, CI) one
/// line a step, so that a long run shows where it is. Warnings are printed
/// either way.
struct Progress {
    bar: ProgressBar,
    plain: bool,
}

impl Progress {
    fn new(steps: u64) -> Self {
        let plain = !std::io::IsTerminal::is_terminal(&std::io::stderr());
        let bar = ProgressBar::new(steps).with_style(
            ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self { bar, plain }
    }

    /// The step now under way.
    fn step(&self, message: String) {
        if self.plain {
            eprintln!(
                "[bench {}/{}] {message}",
                self.bar.position() + 1,
                self.bar.length().unwrap_or(0)
            );
        }
        self.bar.set_message(message);
    }

    fn warn(&self, message: String) {
        if self.plain {
            eprintln!("{message}");
        } else {
            self.bar.println(message);
        }
    }

    fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    fn finish_and_clear(&self) {
        self.bar.finish_and_clear();
    }
}

/// One floor of `provider` at `fps`, added to its rounds.
fn measure_floor(
    floors: &mut BTreeMap<String, Floor>,
    rounds: &mut BTreeMap<(String, u32), Vec<Quantiles>>,
    provider: &str,
    fps: u32,
    frames: u64,
) -> anyhow::Result<()> {
    let floor = floors
        .get_mut(provider)
        .context("a provider without its floor")?;
    let q = floor.measure(frames, fps)?;
    rounds
        .entry((provider.to_owned(), fps))
        .or_default()
        .push(q);
    Ok(())
}

/// The providers asked for, or every one available; an unknown or
/// unavailable one is an error naming what there is.
fn providers(asked: &[String]) -> anyhow::Result<Vec<Provider>> {
    let available = available_providers();
    let shown = || {
        available
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if asked.is_empty() {
        return Ok(available);
    }
    asked
        .iter()
        .map(|name| {
            let provider = Provider::parse(name).with_context(|| {
                format!("--providers: no provider \"{name}\" (tensorrt, cuda, cpu)")
            })?;
            if !available.contains(&provider) {
                bail!(
                    "--providers: {name} is not in this ONNX Runtime build (it offers {})",
                    shown()
                );
            }
            Ok(provider)
        })
        .collect()
}

/// Medians of each quantile over rounds.
fn median_quantiles(rounds: &[Quantiles]) -> Quantiles {
    let median = |f: fn(&Quantiles) -> f64| {
        let mut v: Vec<f64> = rounds.iter().map(f).collect();
        measure::quantiles(&mut v).p50
    };
    Quantiles {
        p50: median(|q| q.p50),
        p99: median(|q| q.p99),
        max: median(|q| q.max),
    }
}

/// A scenario's rounds against the floors around each.
fn summarise(
    s: &Scenario,
    runs: Vec<Result<RunFigures, String>>,
    floors: &BTreeMap<(String, u32), Vec<Quantiles>>,
) -> ScenarioResult {
    let floor = floors.get(&(s.provider.clone(), s.fps));
    let mut rounds = Vec::new();
    let mut errors = Vec::new();
    for (i, run) in runs.into_iter().enumerate() {
        match run {
            Ok(figures) => {
                let floor_ms = floor
                    .filter(|_| s.kind.uses_model())
                    .and_then(|f| Some((f.get(i)?, f.get(i + 1)?)))
                    .map(|(a, b)| Quantiles {
                        p50: (a.p50 + b.p50) / 2.0,
                        p99: (a.p99 + b.p99) / 2.0,
                        max: (a.max + b.max) / 2.0,
                    });
                rounds.push(Round { figures, floor_ms });
            }
            Err(e) => errors.push(e),
        }
    }
    let latency: Vec<Quantiles> = rounds.iter().map(|r| r.figures.latency_ms).collect();
    let ratios: Vec<(f64, f64)> = rounds
        .iter()
        .filter_map(|r| {
            let f = r.floor_ms?;
            (f.p50 > 0.0 && f.p99 > 0.0).then(|| {
                (
                    r.figures.latency_ms.p50 / f.p50,
                    r.figures.latency_ms.p99 / f.p99,
                )
            })
        })
        .collect();
    let ratio = (!ratios.is_empty()).then(|| {
        let mut p50: Vec<f64> = ratios.iter().map(|r| r.0).collect();
        let mut p99: Vec<f64> = ratios.iter().map(|r| r.1).collect();
        let (q50, q99) = (measure::quantiles(&mut p50), measure::quantiles(&mut p99));
        Ratio {
            p50: q50.p50,
            p99: q99.p50,
            p50_range: [p50[0], q50.max],
            p99_range: [p99[0], q99.max],
        }
    });
    // The figures drawn (CDF, stages) come from the median round by p50.
    let middle = {
        let mut order: Vec<usize> = (0..rounds.len()).collect();
        order.sort_by(|&a, &b| {
            rounds[a]
                .figures
                .latency_ms
                .p50
                .total_cmp(&rounds[b].figures.latency_ms.p50)
        });
        order.get(order.len() / 2).map(|&i| &rounds[i].figures)
    };
    let per_round = |f: fn(&RunFigures) -> f64| {
        let mut v: Vec<f64> = rounds.iter().map(|r| f(&r.figures)).collect();
        measure::quantiles(&mut v).p50
    };
    ScenarioResult {
        label: s.label(),
        scenario: s.clone(),
        latency_ms: median_quantiles(&latency),
        ratio,
        cdf_ms: middle.map(|f| f.cdf_ms.clone()).unwrap_or_default(),
        stages_ms: middle.map(|f| f.stages_ms.clone()).unwrap_or_default(),
        fps_out: per_round(|f| f.fps_out),
        dropped: rounds.iter().map(|r| r.figures.dropped).sum(),
        cpu_ms_per_frame: per_round(|f| f.cpu_ms_per_frame),
        rounds,
        errors,
    }
}

/// The suite as a markdown table.
pub fn summary_table(report: &BenchReport) -> String {
    let mut t = String::from(
        "| scenario | latency p50 / p99 ms | floor p50 / p99 ms | ratio to floor p50 / p99 (range over rounds) | fps out | dropped | CPU ms/frame |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for s in &report.scenarios {
        let floor = report
            .floors
            .iter()
            .find(|f| f.provider == s.scenario.provider && f.fps == s.scenario.fps)
            .filter(|_| s.scenario.kind.uses_model())
            .map_or("-".to_owned(), |f| {
                format!("{:.2} / {:.2}", f.median_ms.p50, f.median_ms.p99)
            });
        let ratio = s.ratio.map_or("-".to_owned(), |r| {
            format!(
                "{:.2} / {:.2} ({:.2}-{:.2} / {:.2}-{:.2})",
                r.p50, r.p99, r.p50_range[0], r.p50_range[1], r.p99_range[0], r.p99_range[1]
            )
        });
        let latency = if s.rounds.is_empty() {
            format!("failed: {}", s.errors.first().map_or("", |e| e.as_str()))
        } else {
            format!("{:.2} / {:.2}", s.latency_ms.p50, s.latency_ms.p99)
        };
        t.push_str(&format!(
            "| {} | {latency} | {floor} | {ratio} | {:.1} | {} | {:.1} |\n",
            s.label, s.fps_out, s.dropped, s.cpu_ms_per_frame
        ));
    }
    if let Some(line) = peer_line(report) {
        t.push('\n');
        t.push_str(&line);
        t.push('\n');
    }
    for line in report
        .glass_to_glass
        .as_ref()
        .map(glass::sentences)
        .unwrap_or_default()
    {
        t.push('\n');
        t.push_str(&line);
        t.push('\n');
    }
    t
}

/// sonoflow against the Python peer on the same frames, in one sentence.
fn peer_line(report: &BenchReport) -> Option<String> {
    let find = |kind: Kind| {
        report
            .scenarios
            .iter()
            .find(|s| s.scenario.kind == kind && !s.rounds.is_empty())
    };
    let (ours, peer) = (find(Kind::SameFrames)?, find(Kind::Peer)?);
    let times = |peer: f64, ours: f64| {
        if ours > 0.0 {
            format!("{:.2}x", peer / ours)
        } else {
            "-".to_owned()
        }
    };
    Some(format!(
        "On the same frames the Python peer takes {} sonoflow's latency at p50 ({:.2} against {:.2} ms), \
         {} at p99 ({:.2} against {:.2} ms), and {} its CPU per frame ({:.1} against {:.1} ms).",
        times(peer.latency_ms.p50, ours.latency_ms.p50),
        peer.latency_ms.p50,
        ours.latency_ms.p50,
        times(peer.latency_ms.p99, ours.latency_ms.p99),
        peer.latency_ms.p99,
        ours.latency_ms.p99,
        times(peer.cpu_ms_per_frame, ours.cpu_ms_per_frame),
        peer.cpu_ms_per_frame,
        ours.cpu_ms_per_frame
    ))
}

/// Reads a bench.json.
pub fn read_report(path: &Path) -> anyhow::Result<BenchReport> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a bench.json written by `sonoflow bench`",
            path.display()
        )
    })
}

#[cfg(test)]
impl ScenarioResult {
    /// A scenario that ran one round at `ms` (p50; p99 twice that).
    pub(crate) fn for_test(scenario: Scenario, ms: f64) -> Self {
        let latency = Quantiles {
            p50: ms,
            p99: 2.0 * ms,
            max: 3.0 * ms,
        };
        Self {
            label: scenario.label(),
            rounds: vec![Round {
                figures: RunFigures {
                    latency_ms: latency,
                    ..RunFigures::default()
                },
                floor_ms: None,
            }],
            scenario,
            latency_ms: latency,
            ratio: None,
            cdf_ms: Vec::new(),
            stages_ms: Vec::new(),
            fps_out: 0.0,
            dropped: 0,
            cpu_ms_per_frame: 0.0,
            errors: Vec::new(),
        }
    }
}
