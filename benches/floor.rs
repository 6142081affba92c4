//! The bare-inference floor: a model's vision encoder + mask decoder in a
//! tight loop on a preloaded input, through ort, on one provider; prints
//! per-frame latency p50/p99/max. The pipeline cannot beat it.
//! Run: `cargo bench -p sonoflow-benches --bench floor -- [MODEL_DIR] [ITERATIONS] [PROVIDER] [FPS] [JSON] [mirror]`
//! (defaults: tests/fixtures/tiny-model, 2000, cpu, unpaced, none, off;
//! `mirror`: each run also goes through the graphs mirrored, as `[model]
//! mirror_average`; a JSON of `-` writes none). With FPS
//! (0: unpaced) the loop sleeps between inferences like a live source does,
//! so caches are as cold as in a live pipeline: the floor a live pipeline is
//! measured against. With JSON (a path from the workspace root) the figures are also written there as
//! `{"provider", "intra_threads", "paced_fps", "iterations", "p50", "p90", "p99", "max"}` (ms).

use sonoflow_benches::BenchArgs;

use hdrhistogram::Histogram;
use sonoflow_core::{Clock, MonotonicClock};
use sonoflow_inference::{default_dylib, EngineOptions, FrameModel, Provider, Runtime};
use sonoflow_model::ModelDir;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = BenchArgs::from_env();
    let root = &args.root;
    let dir = args.path(0, "tests/fixtures/tiny-model");
    let iterations: u64 = args.parsed(1, 2000);
    let provider = args
        .get(2)
        .and_then(Provider::parse)
        .unwrap_or(Provider::Cpu);
    let period = Some(args.parsed(3, 0.0_f64))
        .filter(|fps| *fps > 0.0)
        .map(|fps| std::time::Duration::from_secs_f64(1.0 / fps));
    let model = ModelDir::open(&dir)?;
    let runtime = Runtime::load(&default_dylib(root))?;
    let options = EngineOptions {
        providers: vec![provider],
        require: Some(provider),
        ..EngineOptions::default()
    };
    let mut fm = FrameModel::load(runtime, &model, &options, None)?;
    fm.set_mirror_average(args.get(5) == Some("mirror"));
    let clock = MonotonicClock::new();
    fm.warm_up(20, &clock)?;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for _ in 0..iterations {
        let t0 = clock.now();
        fm.run_preloaded(&clock)?;
        let spent = clock.now().saturating_since(t0);
        hist.saturating_record(spent.as_micros() as u64);
        if let Some(period) = period {
            std::thread::sleep(period.saturating_sub(spent));
        }
    }
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    if let Some(path) = args.get(4).filter(|p| *p != "-").map(|p| root.join(p)) {
        let figures = serde_json::json!({
            "provider": provider.to_string(),
            "intra_threads": options.intra_threads,
            "paced_fps": period.map(|p| 1.0 / p.as_secs_f64()),
            "mirror_average": fm.mirror_average(),
            "iterations": iterations,
            "p50": ms(0.5),
            "p90": ms(0.9),
            "p99": ms(0.99),
            "max": hist.max() as f64 / 1000.0,
        });
        std::fs::write(&path, serde_json::to_string_pretty(&figures)?).map_err(|e| {
            format!(
                "cannot write the floor's figures to {}: {e}",
                path.display()
            )
        })?;
    }
    println!(
        "bare floor (rust/ort, {provider}, intra_threads {}, {}{}): {} iterations, encoder+decoder p50 {:.3} ms p99 {:.3} ms max {:.3} ms",
        options.intra_threads,
        period.map_or_else(|| "tight loop".to_owned(), |p| format!("paced at {:.0} fps", 1.0 / p.as_secs_f64())),
        if fm.mirror_average() { ", mirrored too" } else { "" },
        iterations,
        ms(0.5),
        ms(0.99),
        hist.max() as f64 / 1000.0
    );
    Ok(())
}
