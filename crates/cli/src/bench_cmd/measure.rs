//! The two measurements a bench makes: the bare-inference floor (the
//! model's encoder and decoder in a loop on a preloaded input, in this
//! process, paced like a live source) and a scenario run (the real binary,
//! `sonoflow run`, on the scenario's definition; several at once for
//! several streams), each read into the figures the suite keeps.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sonoflow_core::{Clock, MonotonicClock};
use sonoflow_inference::{EngineOptions, FrameModel, Provider, Runtime};
use sonoflow_model::ModelDir;

use super::scenario::{Kind, Scenario};

/// The peer's script, from the sonoflow tree.
const PEER: &str = "benches/peer.py";

/// Latency quantiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// The floor's model, loaded once per provider and reused across rounds.
pub struct Floor {
    model: FrameModel,
    clock: MonotonicClock,
}

impl Floor {
    pub fn load(runtime: &Runtime, model: &ModelDir, provider: Provider) -> anyhow::Result<Self> {
        let options = EngineOptions {
            providers: vec![provider],
            require: Some(provider),
            ..EngineOptions::default()
        };
        let mut model = FrameModel::load(runtime, model, &options, None)
            .with_context(|| format!("the floor's model on {provider}"))?;
        let clock = MonotonicClock::new();
        model.warm_up(20, &clock)?;
        Ok(Self { model, clock })
    }

    /// `iterations` inferences paced at `fps` (a live source's rate, so
    /// caches are as cold as in the pipeline).
    pub fn measure(&mut self, iterations: u64, fps: u32) -> anyhow::Result<Quantiles> {
        let period = Duration::from_secs_f64(1.0 / f64::from(fps.max(1)));
        let mut ms = Vec::with_capacity(iterations as usize);
        for _ in 0..iterations {
            let t0 = self.clock.now();
            self.model.run_preloaded(&self.clock)?;
            let spent = self.clock.now().saturating_since(t0);
            ms.push(spent.as_secs_f64() * 1e3);
            std::thread::sleep(period.saturating_sub(spent));
        }
        Ok(quantiles(&mut ms))
    }
}

/// Nearest-rank p50, p99 and the maximum of `ms` (sorted in place).
pub fn quantiles(ms: &mut [f64]) -> Quantiles {
    if ms.is_empty() {
        return Quantiles::default();
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
    Quantiles {
        p50: at(0.5),
        p99: at(0.99),
        max: ms[ms.len() - 1],
    }
}

/// What one run of a scenario gave (several streams: the slowest stream's
/// tail, the streams' median).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunFigures {
    pub latency_ms: Quantiles,
    /// `[quantile, ms]` of the run's latency (the first stream's).
    pub cdf_ms: Vec<[f64; 2]>,
    /// Median time a frame spends in each stage, in frame order.
    pub stages_ms: Vec<(String, f64)>,
    pub frames_out: u64,
    pub fps_out: f64,
    pub dropped: u64,
    /// CPU of the whole process, % of one core (summed over streams).
    pub cpu_percent: f64,
    pub cpu_ms_per_frame: f64,
    /// The run reports, one per stream.
    pub reports: Vec<PathBuf>,
}

/// Runs `scenario` with the binary at `exe` for `frames` frames, its files
/// under `dir` named for the scenario and `tag` (the round: "r2"), so that
/// every round keeps its own report (`peer_frames`: the phantom export the
/// peer scenarios play); `trace`: also write a Chrome trace there (one stream).
#[allow(clippy::too_many_arguments)]
pub fn run_scenario(
    exe: &Path,
    scenario: &Scenario,
    model: &Path,
    frames: u64,
    dir: &Path,
    tag: &str,
    peer_frames: &Path,
    trace: Option<&Path>,
) -> anyhow::Result<RunFigures> {
    let name = format!("{}-{tag}", scenario.slug());
    if scenario.kind == Kind::Peer {
        return run_peer(scenario, &name, model, frames, dir, peer_frames);
    }
    let definition = scenario.definition(model, peer_frames);
    run_definition(exe, scenario, &name, &definition, frames, dir, trace)
}

/// Runs `definition` (written to `dir/NAME.toml`) as `scenario`'s streams
/// with the binary at `exe` for `frames` frames, each stream's report and
/// log beside it; `trace`: also write a Chrome trace there (one stream).
pub fn run_definition(
    exe: &Path,
    scenario: &Scenario,
    name: &str,
    definition: &str,
    frames: u64,
    dir: &Path,
    trace: Option<&Path>,
) -> anyhow::Result<RunFigures> {
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, definition)
        .with_context(|| format!("cannot write {}", file.display()))?;
    let definition = file;
    let mut children: Vec<(Child, PathBuf, PathBuf)> = Vec::new();
    for stream in 0..scenario.streams.max(1) {
        let stem = format!("{name}-s{stream}");
        let report = dir.join(format!("{stem}.json"));
        let log = dir.join(format!("{stem}.log"));
        let mut command = Command::new(exe);
        command
            .arg("run")
            .arg(&definition)
            .args(["--frames", &frames.to_string(), "--quiet", "--stats-json"])
            .arg(&report);
        if let (Some(trace), 0) = (trace, stream) {
            command.arg("--trace").arg(trace);
        }
        let stderr = std::fs::File::create(&log)
            .with_context(|| format!("cannot write {}", log.display()))?;
        let child = command
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        children.push((child, report, log));
    }
    let mut reports = Vec::new();
    for (mut child, report, log) in children {
        let status = child.wait()?;
        if !status.success() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(6).collect();
            bail!(
                "{} failed ({status}); its log {}:\n{}",
                scenario.label(),
                log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        let text = std::fs::read_to_string(&report)
            .with_context(|| format!("cannot read {}", report.display()))?;
        let value: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a run report", report.display()))?;
        reports.push((report, value));
    }
    Ok(figures(reports))
}

/// Makes the phantom export the peer scenarios play (once: kept in `dir`):
/// the scene of pipelines/bench-umind.toml, 300 frames.
pub fn peer_frames(exe: &Path, dir: &Path, (width, height): (u32, u32)) -> anyhow::Result<()> {
    if dir.join("truth.jsonl").is_file() {
        return Ok(());
    }
    let status = Command::new(exe)
        .args([
            "phantom",
            "export",
            "--frames",
            "300",
            "--sequence-length",
            "300",
        ])
        .args([
            "--seed",
            "1",
            "--probe",
            "linear",
            "--depth-cm",
            "4",
            "--lesions",
            "1",
        ])
        .args([
            "--width",
            &width.to_string(),
            "--height",
            &height.to_string(),
        ])
        .arg("--out")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    if !status.success() {
        bail!(
            "the peer's frames could not be exported into {} ({status})",
            dir.display()
        );
    }
    Ok(())
}

/// The Python peer (benches/peer.py, with .venv's interpreter) on the
/// phantom export, read into the same figures as a sonoflow run.
fn run_peer(
    scenario: &Scenario,
    name: &str,
    model: &Path,
    frames: u64,
    dir: &Path,
    peer_frames: &Path,
) -> anyhow::Result<RunFigures> {
    let root = std::env::current_dir()?;
    let venv = std::env::var_os("SONOFLOW_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv"));
    let python = venv.join("bin/python");
    let script = root.join(PEER);
    if !script.is_file() {
        bail!(
            "no {} here: run the bench from the sonoflow tree",
            script.display()
        );
    }
    let report = dir.join(format!("{name}.json"));
    let log = dir.join(format!("{name}.log"));
    let output = Command::new(&python)
        .arg(&script)
        .arg("--model")
        .arg(model)
        .args([
            "--frames",
            &frames.to_string(),
            "--fps",
            &scenario.fps.to_string(),
        ])
        .args([
            "--width",
            &scenario.width.to_string(),
            "--height",
            &scenario.height.to_string(),
        ])
        .arg("--phantom")
        .arg(peer_frames)
        .arg("--json")
        .arg(&report)
        .output()
        .with_context(|| {
            format!(
                "cannot start {} (scripts/bootstrap.sh makes .venv)",
                python.display()
            )
        })?;
    let _ = std::fs::write(&log, [&output.stdout[..], &output.stderr[..]].concat());
    if !output.status.success() {
        bail!(
            "the Python peer failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let text = std::fs::read_to_string(&report)
        .with_context(|| format!("cannot read {}", report.display()))?;
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not the peer's report", report.display()))?;
    let num = |path: &str| v.pointer(path).and_then(Value::as_f64).unwrap_or(0.0);
    Ok(RunFigures {
        latency_ms: Quantiles {
            p50: num("/latency_ms/p50"),
            p99: num("/latency_ms/p99"),
            max: num("/latency_ms/max"),
        },
        cdf_ms: v
            .get("cdf_ms")
            .and_then(|c| serde_json::from_value(c.clone()).ok())
            .unwrap_or_default(),
        stages_ms: [
            ("model", "/model_ms/p50"),
            ("postprocess", "/postprocess_ms/p50"),
        ]
        .into_iter()
        .map(|(name, path)| (name.to_owned(), num(path)))
        .collect(),
        frames_out: num("/frames") as u64,
        fps_out: f64::from(scenario.fps),
        dropped: num("/dropped") as u64,
        cpu_percent: num("/cpu_ms_per_frame") * f64::from(scenario.fps) / 10.0,
        cpu_ms_per_frame: num("/cpu_ms_per_frame"),
        reports: vec![report],
    })
}

/// The figures of one run from its streams' reports.
fn figures(reports: Vec<(PathBuf, Value)>) -> RunFigures {
    let num = |v: &Value, path: &str| v.pointer(path).and_then(Value::as_f64).unwrap_or(0.0);
    let mut p50s: Vec<f64> = reports
        .iter()
        .map(|(_, r)| num(r, "/latency_ms/p50"))
        .collect();
    let first = reports
        .first()
        .map(|(_, r)| r.clone())
        .unwrap_or(Value::Null);
    let cdf_ms = first
        .get("latency_cdf_ms")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let frames_out: u64 = reports
        .iter()
        .map(|(_, r)| num(r, "/frames_out") as u64)
        .sum();
    let cpu_percent: f64 = reports.iter().map(|(_, r)| num(r, "/cpu/percent")).sum();
    let cpu_s: f64 = reports
        .iter()
        .map(|(_, r)| num(r, "/cpu/user_s") + num(r, "/cpu/system_s"))
        .sum();
    RunFigures {
        latency_ms: Quantiles {
            p50: quantiles(&mut p50s).p50,
            p99: reports
                .iter()
                .map(|(_, r)| num(r, "/latency_ms/p99"))
                .fold(0.0, f64::max),
            max: reports
                .iter()
                .map(|(_, r)| num(r, "/latency_ms/max"))
                .fold(0.0, f64::max),
        },
        cdf_ms,
        stages_ms: stages(&first),
        frames_out,
        fps_out: reports.iter().map(|(_, r)| num(r, "/fps_out")).sum(),
        dropped: reports
            .iter()
            .filter_map(|(_, r)| r.get("dropped").and_then(Value::as_object))
            .flat_map(|d| d.values().filter_map(Value::as_u64))
            .sum(),
        cpu_percent,
        cpu_ms_per_frame: if frames_out > 0 {
            cpu_s * 1e3 / frames_out as f64
        } else {
            0.0
        },
        reports: reports.into_iter().map(|(path, _)| path).collect(),
    }
}

/// The stages a frame passes, in order, with their median times; those
/// the run did not have are left out.
fn stages(report: &Value) -> Vec<(String, f64)> {
    [
        ("ingest", "/stages/ingest/p50_ms"),
        ("preprocess", "/inference/preprocess_ms/p50"),
        ("encoder", "/inference/encoder_ms/p50"),
        ("decoder", "/inference/decoder_ms/p50"),
        ("readout", "/inference/readout_ms/p50"),
        ("postprocess", "/inference/postprocess_ms/p50"),
        ("overlay", "/overlay/paint_ms/p50"),
        ("output", "/stages/output/p50_ms"),
    ]
    .into_iter()
    .filter_map(|(name, path)| {
        report
            .pointer(path)
            .and_then(Value::as_f64)
            .filter(|ms| *ms > 0.0)
            .map(|ms| (name.to_owned(), ms))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let mut ms: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let q = quantiles(&mut ms);
        assert_eq!((q.p50, q.p99, q.max), (50.0, 99.0, 100.0));
        assert_eq!(quantiles(&mut []), Quantiles::default());
    }

    #[test]
    fn two_streams_report_the_median_and_the_worst_tail() {
        let report = |p50: f64, p99: f64| {
            serde_json::json!({
                "latency_ms": {"p50": p50, "p99": p99, "max": p99 + 1.0},
                "frames_out": 100, "fps_out": 30.0, "dropped": {"process": 2},
                "cpu": {"percent": 50.0, "user_s": 1.0, "system_s": 0.0},
                "stages": {"ingest": {"p50_ms": 0.5}},
                "inference": {"encoder_ms": {"p50": 10.0}},
            })
        };
        let f = figures(vec![
            (PathBuf::from("a.json"), report(10.0, 20.0)),
            (PathBuf::from("b.json"), report(12.0, 30.0)),
        ]);
        assert_eq!(f.latency_ms.p99, 30.0);
        assert_eq!(f.frames_out, 200);
        assert_eq!(f.dropped, 4);
        assert_eq!(f.cpu_ms_per_frame, 10.0);
        assert_eq!(
            f.stages_ms,
            vec![("ingest".to_owned(), 0.5), ("encoder".to_owned(), 10.0)]
        );
    }
}
