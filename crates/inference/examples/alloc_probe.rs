//! Counts heap allocations of each per-frame step on the tiny model:
//! `cargo run -p sonoflow-inference --example alloc_probe`.
use std::path::Path;

use sonoflow_core::alloc_count::{frame_path_allocations, CountingAllocator, FramePathGuard};
use sonoflow_core::{
    Frame, FrameFormat, FrameId, FramePool, MonotonicClock, PixelFormat, StageStamps,
};
use sonoflow_inference::{default_dylib, EngineOptions, FrameModel, Provider, Runtime};
use sonoflow_model::ModelDir;

#[global_allocator]
static A: CountingAllocator = CountingAllocator;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let model = ModelDir::open(Path::new("tests/fixtures/tiny-model"))?;
    let runtime = Runtime::load(&default_dylib(Path::new(".")))?;
    let options = EngineOptions {
        providers: vec![Provider::Cpu],
        ..EngineOptions::default()
    };
    let mut fm = FrameModel::load(runtime, &model, &options, None)?;
    let clock = MonotonicClock::new();
    let format = FrameFormat::new(PixelFormat::Gray8, 640, 480)?;
    let pool = FramePool::new(2);
    let frame = Frame::new(
        FrameId(0),
        format,
        pool.acquire(format.len()),
        StageStamps::default(),
    );
    for _ in 0..20 {
        let _ = fm.infer(&frame, &clock)?;
    }
    let before = frame_path_allocations().unwrap_or(0);
    {
        let _g = FramePathGuard::enter();
        for _ in 0..100 {
            let out = fm.infer(&frame, &clock)?;
            drop(out);
        }
    }
    let after = frame_path_allocations().unwrap_or(0);
    println!("allocations per infer: {}", (after - before) as f64 / 100.0);
    Ok(())
}
