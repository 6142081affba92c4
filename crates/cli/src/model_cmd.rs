//! `sonoflow model check` and `sonoflow model info`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use sonoflow_core::FramePool;
use sonoflow_inference::{check_model, default_dylib, EngineOptions, Provider, Runtime};
use sonoflow_model::onnx_file::summarize;
use sonoflow_model::{shape_text, ModelDir, TensorSpec};
use sonoflow_phantom::{Phantom, PhantomConfig};
use sonoflow_reasoning::prompt::PromptCodec;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The model directory (holding sonoflow-model.toml).
    dir: PathBuf,
    /// Providers to try, in order (CPU is always tried last).
    #[arg(long, value_delimiter = ',', default_value = "tensorrt,cuda,cpu")]
    providers: Vec<String>,
    /// Fail unless every graph runs on this provider.
    #[arg(long)]
    require_provider: Option<String>,
}

#[derive(clap::Args)]
pub struct InfoArgs {
    /// The model directory (holding sonoflow-model.toml).
    dir: PathBuf,
}

fn provider(name: &str) -> Result<Provider> {
    Provider::parse(name)
        .with_context(|| format!("unknown provider {name:?}; use tensorrt, cuda or cpu"))
}

pub fn check(args: CheckArgs) -> Result<ExitCode> {
    let model = ModelDir::open(&args.dir)?;
    let mut options = EngineOptions {
        providers: args
            .providers
            .iter()
            .map(|p| provider(p))
            .collect::<Result<_>>()?,
        ..EngineOptions::default()
    };
    if let Some(name) = &args.require_provider {
        options.require_provider(provider(name)?);
    }
    let tokenizer = check_tokenizer(&model)?;
    // A real frame, so that the model sees what it will see in a run
    // (zeros hide a model that writes NaN on real images).
    let (sample, _) = Phantom::new(PhantomConfig::default())
        .context("the sample frame (the phantom) could not be made")?
        .render_frame(0, &FramePool::new(1));
    let runtime = Runtime::load(&default_dylib(Path::new(".")))?;
    let checks = check_model(runtime, &model, &options, &sample)?;
    println!(
        "{}: manifest, files and hashes ok",
        ModelDir::manifest_path(&args.dir).display()
    );
    if let Some(said) = &tokenizer {
        println!("{:<18} ok  {said}", "tokenizer");
    }
    for c in &checks.graphs {
        println!(
            "{:<18} ok  on {:<8} loaded in {:>7.1} ms, dummy run {:>7.2} ms",
            c.role,
            c.provider.name(),
            c.load_time.as_secs_f64() * 1e3,
            c.dummy_run.as_secs_f64() * 1e3
        );
        for f in &c.fallbacks {
            println!("{:<18}     not on {}: {}", "", f.provider, f.reason);
        }
    }
    println!(
        "{:<18} ok  a phantom frame {}x{} through the per-frame path in {:.1} ms, every output finite",
        "sample frame",
        sample.format.width,
        sample.format.height,
        checks.sample_run.as_secs_f64() * 1e3
    );
    if let Some(tokens) = checks.sample_tokens {
        println!(
            "{:<18} ok  {tokens} tokens after its image tokens, kernels from their hidden states, every output finite",
            "sample reasoning"
        );
    }
    println!(
        "model {} {}: ok",
        model.manifest.name, model.manifest.version
    );
    Ok(ExitCode::SUCCESS)
}

/// The tokenizer the manifest names, read as the reasoning head reads it
/// (None: it names none). It is the head's alone (a broken one disables the
/// head, not the run), so `ModelDir::open` leaves it to the head and to this.
fn check_tokenizer(model: &ModelDir) -> Result<Option<String>> {
    if model.manifest.tokenizer.is_none() {
        return Ok(None);
    }
    let codec = PromptCodec::load(model)?;
    Ok(Some(format!(
        "{} tokens, the end and task tokens among them",
        codec.vocabulary_size()
    )))
}

fn tensors(ts: &[TensorSpec]) -> String {
    ts.iter()
        .map(|t| format!("{} {} {}", t.name, t.dtype.name(), shape_text(&t.shape)))
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn info(args: InfoArgs) -> Result<ExitCode> {
    let model = ModelDir::open(&args.dir)?;
    let m = &model.manifest;
    println!("{} {} (manifest format {})", m.name, m.version, m.format);
    if !m.description.is_empty() {
        println!("{}", m.description);
    }
    println!(
        "licence: {}; provenance: {}",
        m.license.weights, m.license.provenance
    );
    println!();
    println!(
        "{:<18} {:<24} {:>10} {:>12} {:>8} {:<12}",
        "graph", "file", "size", "parameters", "nodes", "opsets"
    );
    let mut total = 0u64;
    for (role, g) in &m.graphs {
        let path = model.root.join(&g.file);
        let s = summarize(&path).map_err(anyhow::Error::msg)?;
        let size = model
            .graph_bytes(role)
            .with_context(|| format!("cannot read the size of {}", path.display()))?;
        total += s.parameters;
        let opsets: Vec<String> = s.opsets.iter().map(|(d, v)| format!("{d}:{v}")).collect();
        println!(
            "{:<18} {:<24} {:>10} {:>12} {:>8} {:<12}",
            role,
            g.file,
            human_bytes(size),
            s.parameters,
            s.nodes,
            opsets.join(",")
        );
        println!("{:<18}   in:  {}", "", tensors(&g.inputs));
        println!("{:<18}   out: {}", "", tensors(&g.outputs));
    }
    println!("{:<18} {:<24} {:>10} {:>12}", "total", "", "", total);
    println!();
    let p = &m.preprocess;
    println!(
        "preprocess: {:?} crop, {:?} to {}x{}x{} {}, mean {:?}, std {:?} -> `{}`",
        p.crop, p.resize, p.channels, p.height, p.width, p.layout, p.mean, p.std, p.input
    );
    for t in &m.tasks {
        println!(
            "task token {:<8} drives {:?}{}",
            t.token,
            t.drives,
            t.target
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default()
        );
    }
    println!(
        "default kernels: {} x {} ({})",
        m.default_kernels.tokens.len(),
        m.default_kernels.size,
        m.default_kernels.tokens.join(", ")
    );
    if !m.labels.is_empty() {
        println!("labels: {}", m.labels.join(", "));
    }
    for (name, values) in &m.attributes {
        println!("attribute {name}: {}", values.join(", "));
    }
    if let Some(t) = &m.tokenizer {
        println!("tokenizer: {}", t.file);
    }
    Ok(ExitCode::SUCCESS)
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}
