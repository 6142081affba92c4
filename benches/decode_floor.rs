//! The bare decode floor of the reasoning head: the language model's graphs
//! (embed_tokens + decoder with its KV cache) in a plain greedy loop through
//! ort, one intra-op thread, no frame path beside it, on the image tokens of
//! a phantom frame. Prints time to first token, decode tokens per second and
//! total time per report: what the head cannot beat.
//! Run: `cargo bench -p sonoflow-benches --bench decode_floor -- [MODEL_DIR] [GENERATIONS]`
//! (defaults: onnx/umind-nano, 200).

use sonoflow_benches::BenchArgs;
use std::ops::ControlFlow;

use hdrhistogram::Histogram;
use sonoflow_core::{FramePool, MonotonicClock};
use sonoflow_inference::{
    argmax, default_dylib, EngineOptions, FrameModel, Generator, Provider, Runtime,
};
use sonoflow_model::ModelDir;
use sonoflow_phantom::{Phantom, PhantomConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = BenchArgs::from_env();
    let root = &args.root;
    let dir = args.path(0, "onnx/umind-nano");
    let generations: usize = args.parsed(1, 200);
    let model = ModelDir::open(&dir)?;
    let runtime = Runtime::load(&default_dylib(root))?;
    let options = EngineOptions {
        providers: vec![Provider::Cpu],
        intra_threads: 1,
        ..EngineOptions::default()
    };

    // Image tokens of a phantom frame, from the vision encoder.
    let config = PhantomConfig {
        seed: 1,
        lesions: 1,
        ..PhantomConfig::default()
    };
    let (frame, _) = Phantom::new(config)?.render_frame(0, &FramePool::new(1));
    let clock = MonotonicClock::new();
    let mut frame_model = FrameModel::load(runtime, &model, &options, None)?;
    let (outputs, _) = frame_model.infer(&frame, &clock)?;
    let tokens = outputs
        .image_tokens
        .as_deref()
        .ok_or("the encoder writes no image tokens")?
        .to_vec();

    let vocab: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer.json"))?)?;
    let id = |w: &str| {
        vocab["model"]["vocab"][w]
            .as_i64()
            .ok_or(format!("no {w} in the vocabulary"))
    };
    let (prompt, eos, tasks) = ([id("[DIAG]")?], id("[EOS]")?, [id("[SEG]")?, id("[DET]")?]);
    let mut generator = Generator::load(runtime, &model, &options)?;
    let mut ttft = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut total = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut decode_tokens, mut decode_s, mut length) = (0usize, 0.0f64, 0usize);
    for i in 0..generations + 5 {
        let g = generator.generate(&tokens, &prompt, eos, &tasks, 96, &mut argmax, &mut |_| {
            ControlFlow::Continue(())
        })?;
        if i < 5 {
            continue; // warm-up
        }
        ttft.saturating_record(g.time_to_first_token.as_micros() as u64);
        total.saturating_record(g.total.as_micros() as u64);
        decode_tokens += g.tokens.len().saturating_sub(1);
        decode_s += g.total.saturating_sub(g.time_to_first_token).as_secs_f64();
        length = g.tokens.len();
    }
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "decode floor {} ({generations} reports of {length} tokens, 1 thread, cpu): ttft p50 {:.2} ms p99 {:.2} ms, {:.0} tokens/s, report p50 {:.1} ms p99 {:.1} ms",
        model.manifest.name,
        ms(&ttft, 0.5),
        ms(&ttft, 0.99),
        decode_tokens as f64 / decode_s.max(1e-9),
        ms(&total, 0.5),
        ms(&total, 0.99)
    );
    Ok(())
}
