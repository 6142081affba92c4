//! The reasoning head against its decode floor, side by side.
//!
//! - floor: the language model's graphs (embed_tokens + decoder with its KV
//!   cache) in a bare greedy ort loop written here: one run of each graph
//!   per token, the cache moved from outputs to inputs, argmax, nothing else;
//! - generator: `Generator::generate` alone (greedy, nothing done with the
//!   tokens): floor to generator is the generator's own cost;
//! - head: the real [`ReasoningHead`] (its thread and sessions, generator,
//!   streaming, grounding, the board, kernels and report) answering
//!   keyframes with no frame path beside it, at the floor's priority:
//!   generator to head is the head's own cost.
//!
//! All three run on one intra-op thread over the image tokens of the same
//! phantom frame, one report each in turn (the order rotating), each on a
//! thread of its own woken for the report and waited for the same way, so a
//! busy machine slows them alike. Decode rate is tokens after the first over the
//! time after the first token (the head's `reasoning.tokens_per_s`). Each
//! round prints the rates, head/floor, and per report the process's CPU time
//! and heap allocations on the Rust side (ONNX Runtime's own are not seen;
//! one side runs at a time): figures a busy machine moves little or not at
//! all. Then the medians, also as one JSON line (`decode-floor-json {...}`)
//! for scripts/bench-reasoning.sh.
//! Run: `cargo bench -p sonoflow-benches --bench decode_floor -- [MODEL_DIR] [REPORTS] [ROUNDS]`
//! (defaults: onnx/umind-nano, 100 reports per side per round, 5 rounds).

use std::alloc::{GlobalAlloc, Layout, System};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ort::value::{DynValue, Tensor};
use sonoflow_benches::BenchArgs;
use sonoflow_core::annotations::Measurement;
use sonoflow_core::findings::{Caliper, Point};
use sonoflow_core::{FrameId, FramePool, InterpretationBoard, MonotonicClock};
use sonoflow_inference::{
    argmax, default_dylib, EngineOptions, FrameModel, Generator, GraphSession, KernelSlot,
    Provider, Runtime,
};
use sonoflow_model::{Dim, ModelDir, DECODER, EMBED_TOKENS};
use sonoflow_phantom::{Phantom, PhantomConfig};
use sonoflow_reasoning::prompt::PromptCodec;
use sonoflow_reasoning::{
    Calipers, HeadHandle, KeyframeReason, ReasoningConfig, ReasoningHead, ReasoningStats,
};

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Tokens a report may have (the head's default `max_new_tokens`).
const MAX_NEW: usize = 96;
/// How often a waiting bench thread looks for the report: seldom, since a
/// waking thread would take the working side's core from it.
const POLL: Duration = Duration::from_millis(2);

/// Every heap allocation of the process, counted.
struct Counting;
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards to `System` unchanged; counting touches one atomic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// CPU time of the whole process so far.
fn cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// What one report took.
struct Report {
    tokens: usize,
    ttft: Duration,
    total: Duration,
}

impl Report {
    /// Tokens after the first, and the seconds they took.
    fn decode(&self) -> (u64, f64) {
        (
            self.tokens.saturating_sub(1) as u64,
            self.total.saturating_sub(self.ttft).as_secs_f64(),
        )
    }
}

/// The bare loop: embed_tokens and decoder sessions, nothing else.
struct Floor {
    embed: GraphSession,
    decoder: GraphSession,
    width: usize,
    heads: usize,
    head_dim: usize,
    max_positions: usize,
    past: Vec<String>,
    present: Vec<String>,
}

impl Floor {
    fn load(runtime: &Runtime, model: &ModelDir, options: &EngineOptions) -> BenchResult<Self> {
        let embed = GraphSession::open(runtime, model, EMBED_TOKENS, options)?;
        let decoder = GraphSession::open(runtime, model, DECODER, options)?;
        let dim = |name: &str, i: usize| -> BenchResult<usize> {
            match decoder.spec.input(name).and_then(|t| t.shape.get(i)) {
                Some(Dim::Fixed(n)) => Ok(*n as usize),
                _ => Err(format!("decoder input {name}: dimension {i} is not fixed").into()),
            }
        };
        let layers = (decoder.spec.inputs.iter())
            .filter(|t| t.name.starts_with("past_key_values."))
            .count()
            / 2;
        let names = |prefix: &str| -> Vec<String> {
            (0..2 * layers)
                .map(|i| format!("{prefix}.{}.{}", i / 2, ["key", "value"][i % 2]))
                .collect()
        };
        Ok(Self {
            width: dim("inputs_embeds", 2)?,
            heads: dim("past_key_values.0.key", 1)?,
            head_dim: dim("past_key_values.0.key", 3)?,
            max_positions: (model.manifest.max_positions())
                .ok_or("no graphs.decoder.max_positions")?,
            past: names("past_key_values"),
            present: names("present"),
            embed,
            decoder,
        })
    }

    fn embed(&mut self, ids: &[i64]) -> BenchResult<Vec<f32>> {
        let input = Tensor::from_array(([1, ids.len()], ids.to_vec()))?;
        let out = self.embed.session.run(ort::inputs!["input_ids" => input])?;
        Ok(out["inputs_embeds"].try_extract_tensor::<f32>()?.1.to_vec())
    }

    fn generate(&mut self, image: &[f32], prompt: &[i64], eos: i64) -> BenchResult<Report> {
        let started = Instant::now();
        let mut embeds = image.to_vec();
        embeds.extend(self.embed(prompt)?);
        let mut past: Vec<DynValue> = (0..self.past.len())
            .map(|_| {
                Tensor::from_array(([1, self.heads, 0, self.head_dim], Vec::<f32>::new()))
                    .map(|t| t.into_dyn())
            })
            .collect::<Result<_, _>>()?;
        let (mut total, mut tokens, mut ttft) = (0usize, 0usize, None);
        loop {
            let s = embeds.len() / self.width;
            let positions: Vec<i64> = (total as i64..(total + s) as i64).collect();
            let mut inputs = ort::inputs![
                "inputs_embeds" => Tensor::from_array(([1, s, self.width], embeds))?.into_dyn(),
                "attention_mask" => Tensor::from_array(([1, total + s], vec![1i64; total + s]))?.into_dyn(),
                "position_ids" => Tensor::from_array(([1, s], positions))?.into_dyn(),
            ];
            for (name, value) in self.past.iter().zip(past.drain(..)) {
                inputs.push((name.as_str().into(), value.into()));
            }
            let mut out = self.decoder.session.run(inputs)?;
            let next = {
                let (shape, logits) = out["logits"].try_extract_tensor::<f32>()?;
                let vocab = *shape.last().unwrap_or(&1) as usize;
                argmax(&logits[(s - 1) * vocab..s * vocab])
            };
            for name in &self.present {
                past.push(out.remove(name).ok_or("no present output")?);
            }
            drop(out);
            total += s;
            ttft.get_or_insert_with(|| started.elapsed());
            if next == eos {
                break;
            }
            tokens += 1;
            // Feeding `next` takes position `total`, which must be in the table.
            if tokens >= MAX_NEW || total >= self.max_positions {
                break;
            }
            embeds = self.embed(&[next])?;
        }
        Ok(Report {
            tokens,
            ttft: ttft.unwrap_or_default(),
            total: started.elapsed(),
        })
    }
}

/// A side on a thread of its own, woken for each report as the head's
/// thread is (sides sharing a thread would share its warm core).
struct Worker {
    jobs: Option<SyncSender<()>>,
    reports: Receiver<Result<Report, String>>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    fn start(
        name: &str,
        mut report: impl FnMut() -> BenchResult<Report> + Send + 'static,
    ) -> BenchResult<Self> {
        let (jobs, job) = sync_channel::<()>(1);
        let (done, reports) = sync_channel(1);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                for () in job {
                    if done.send(report().map_err(|e| e.to_string())).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Self {
            jobs: Some(jobs),
            reports,
            thread: Some(thread),
        })
    }

    fn run(&self) -> BenchResult<Report> {
        self.jobs.as_ref().ok_or("stopped")?.send(())?;
        loop {
            match self.reports.try_recv() {
                Ok(report) => return report.map_err(Into::into),
                Err(TryRecvError::Empty) => std::thread::sleep(POLL),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The head, handed keyframes one at a time.
struct Head {
    _head: ReasoningHead,
    handle: HeadHandle,
    stats: Arc<ReasoningStats>,
    image: Vec<f32>,
    calipers: Calipers,
    keyframes: u64,
}

impl Head {
    fn ended(&self) -> u64 {
        let s = &self.stats;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        n(&s.reports) + n(&s.failures) + n(&s.timeouts) + n(&s.cancelled_stale)
    }

    /// One report; its decode tokens and seconds (the head's own count).
    fn answer(&mut self) -> BenchResult<(u64, f64)> {
        let s = Arc::clone(&self.stats);
        let (tokens, ns, ended, reports) = (
            s.decode_tokens.load(Ordering::Relaxed),
            s.decode_ns.load(Ordering::Relaxed),
            self.ended(),
            s.reports.load(Ordering::Relaxed),
        );
        let mut kf = self.handle.blank_keyframe();
        self.keyframes += 1;
        kf.frame = FrameId(self.keyframes);
        kf.reason = KeyframeReason::Request;
        kf.image_tokens.extend_from_slice(&self.image);
        kf.calipers = self.calipers;
        self.handle.submit(kf);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.ended() == ended {
            if !self.handle.is_open() || Instant::now() > deadline {
                let error = s.error.lock().ok().and_then(|e| e.clone());
                return Err(format!("the head stopped answering: {error:?}").into());
            }
            std::thread::sleep(POLL);
        }
        if s.reports.load(Ordering::Relaxed) != reports + 1 {
            return Err("the head failed, timed out or was cancelled on a keyframe".into());
        }
        Ok((
            s.decode_tokens.load(Ordering::Relaxed) - tokens,
            (s.decode_ns.load(Ordering::Relaxed) - ns) as f64 / 1e9,
        ))
    }
}

/// A side's reports over a round.
#[derive(Default)]
struct Side {
    tokens: u64,
    seconds: f64,
    reports: u64,
    allocations: u64,
    cpu: Duration,
}

impl Side {
    fn add(&mut self, (tokens, seconds): (u64, f64), (allocations, cpu): (u64, Duration)) {
        self.tokens += tokens;
        self.seconds += seconds;
        self.reports += 1;
        self.allocations += allocations;
        self.cpu += cpu;
    }

    fn rate(&self) -> f64 {
        self.tokens as f64 / self.seconds.max(1e-9)
    }

    /// CPU time per report, ms.
    fn cpu_ms(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e3 / self.reports.max(1) as f64
    }

    /// Heap allocations per report.
    fn allocations(&self) -> f64 {
        self.allocations as f64 / self.reports.max(1) as f64
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The image tokens of a phantom frame, from the vision encoder.
fn image_tokens(
    runtime: &Runtime,
    model: &ModelDir,
    options: &EngineOptions,
) -> BenchResult<Vec<f32>> {
    let config = PhantomConfig {
        seed: 1,
        lesions: 1,
        ..PhantomConfig::default()
    };
    let (frame, _) = Phantom::new(config)?.render_frame(0, &FramePool::new(1));
    let mut frame_model = FrameModel::load(runtime, model, options, None)?;
    let (outputs, _) = frame_model.infer(&frame, &MonotonicClock::new())?;
    Ok(outputs
        .image_tokens
        .as_deref()
        .ok_or("the encoder writes no image tokens")?
        .to_vec())
}

fn main() -> BenchResult<()> {
    let args = BenchArgs::from_env();
    let dir = args.path(0, "onnx/umind-nano");
    let reports: usize = args.parsed(1, 100);
    let rounds: usize = args.parsed(2, 5);
    let model = ModelDir::open(&dir)?;
    let runtime = Runtime::load(&default_dylib(&args.root))?;
    let options = EngineOptions {
        providers: vec![Provider::Cpu],
        intra_threads: 1,
        inter_threads: 1,
        ..EngineOptions::default()
    };
    let image = image_tokens(runtime, &model, &options)?;

    let codec = PromptCodec::load(&model)?;
    // The prompt the head asks by default: the model's own.
    let default_prompt = model
        .manifest
        .default_prompt()
        .ok_or("the model names no task prompt")?;
    let (prompt, eos, tasks) = (codec.encode(default_prompt)?, codec.eos, codec.task_ids);
    let mut bare = Floor::load(runtime, &model, &options)?;
    let (bare_image, bare_prompt) = (image.clone(), prompt.clone());
    let floor = Worker::start("bench-floor", move || {
        bare.generate(&bare_image, &bare_prompt, eos)
    })?;
    let mut plain = Generator::load(runtime, &model, &options)?;
    let plain_image = image.clone();
    let generator = Worker::start("bench-generator", move || {
        let g = plain.generate(
            &plain_image,
            &prompt,
            eos,
            &tasks,
            MAX_NEW,
            &mut argmax,
            &mut |_| ControlFlow::Continue(()),
        )?;
        Ok(Report {
            tokens: g.tokens.len(),
            ttft: g.time_to_first_token,
            total: g.total,
        })
    })?;
    // The head: defaults but for the thread budget and priority (the floor's).
    let spec = ReasoningConfig {
        max_new_tokens: Some(MAX_NEW),
        intra_threads: Some(1),
        nice: Some(0),
        ..ReasoningConfig::default()
    }
    .validate(true)
    .map_err(|e| e.to_string())?
    .ok_or("the head is off")?;
    let k = &model.manifest.default_kernels;
    let slot = KernelSlot::new(k.tokens.clone(), k.size, model.default_kernels.clone());
    let head = ReasoningHead::start(
        spec,
        &dir,
        options.clone(),
        runtime,
        slot,
        Arc::new(InterpretationBoard::empty()),
        image.len(),
    )?;
    let measured = |length_mm| {
        let p = Point { x: 0.0, y: 0.0 };
        Some(Measurement {
            caliper: Caliper {
                a: p,
                b: p,
                length_mm,
            },
            uncertainty_mm: 0.3,
        })
    };
    let handle = head.handle();
    let mut head = Head {
        stats: handle.stats(),
        handle,
        _head: head,
        image,
        calipers: Calipers {
            long: measured(15.9),
            short: measured(9.0),
        },
        keyframes: 0,
    };

    // Warm-up, every side.
    for _ in 0..5 {
        floor.run()?;
        generator.run()?;
        head.answer()?;
    }
    println!(
        "decode floor, generator and head, {} ({reports} reports each per round, in turn report by report, 1 thread, cpu):",
        model.manifest.name
    );
    let (mut floor_rates, mut head_rates, mut generator_ratios, mut ratios, mut cpu_ratios) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut floor_ttft, mut length) = (Vec::new(), 0);
    for round in 0..rounds {
        let (mut f, mut g, mut h) = (Side::default(), Side::default(), Side::default());
        for i in 0..reports {
            // Rotate the order, so no side always follows another.
            for k in 0..3 {
                let before = (ALLOCATIONS.load(Ordering::Relaxed), cpu());
                let spent = || {
                    (
                        ALLOCATIONS.load(Ordering::Relaxed) - before.0,
                        cpu().saturating_sub(before.1),
                    )
                };
                match (i + k) % 3 {
                    0 => {
                        let r = floor.run()?;
                        f.add(r.decode(), spent());
                        floor_ttft.push(r.ttft.as_secs_f64() * 1e3);
                        length = r.tokens;
                    }
                    1 => {
                        let r = generator.run()?;
                        g.add(r.decode(), spent());
                    }
                    _ => {
                        let r = head.answer()?;
                        h.add(r, spent());
                    }
                }
            }
        }
        let ratio = h.rate() / f.rate();
        println!(
            "round {round}: tokens/s floor {:.0}, generator {:.0} ({:.3}), head {:.0} ({ratio:.3}); \
             floor / generator / head a report: CPU {:.1} / {:.1} / {:.1} ms, heap allocations {:.0} / {:.0} / {:.0}",
            f.rate(),
            g.rate(),
            g.rate() / f.rate(),
            h.rate(),
            f.cpu_ms(),
            g.cpu_ms(),
            h.cpu_ms(),
            f.allocations(),
            g.allocations(),
            h.allocations(),
        );
        floor_rates.push(f.rate());
        head_rates.push(h.rate());
        generator_ratios.push(g.rate() / f.rate());
        ratios.push(ratio);
        cpu_ratios.push(h.cpu_ms() / f.cpu_ms());
    }
    let head_tokens = head.stats.latest().map_or(0, |r| r.tokens);
    let (lowest, highest) = (
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(0.0, f64::max),
    );
    let summary = serde_json::json!({
        "model": model.manifest.name,
        "rounds": rounds,
        "reports_per_round": reports,
        "tokens_per_report": {"floor": length, "head": head_tokens},
        "floor_tokens_per_s": median(floor_rates),
        "head_tokens_per_s": median(head_rates),
        "generator_over_floor": median(generator_ratios),
        "head_over_floor": median(ratios),
        "head_over_floor_min": lowest,
        "head_over_floor_max": highest,
        "head_over_floor_cpu_per_report": median(cpu_ratios),
        "ttft_p50_ms_floor": median(floor_ttft),
        "ttft_p50_ms_head": head.stats.ttft.summary().p50,
    });
    let at = |key: &str| summary[key].as_f64().unwrap_or(0.0);
    println!(
        "median: floor {:.0} tokens/s, head {:.0} tokens/s ({length} and {head_tokens} tokens a report); \
         generator/floor {:.3}, head/floor {:.3} (rounds {lowest:.3} to {highest:.3}), head/floor CPU a report {:.3}; \
         ttft p50 floor {:.2} ms, head {:.2} ms",
        at("floor_tokens_per_s"),
        at("head_tokens_per_s"),
        at("generator_over_floor"),
        at("head_over_floor"),
        at("head_over_floor_cpu_per_report"),
        at("ttft_p50_ms_floor"),
        at("ttft_p50_ms_head"),
    );
    println!("decode-floor-json {summary}");
    Ok(())
}
