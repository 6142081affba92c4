//! The frame pipeline's own cost: a pooled 640x480 GRAY8 frame acquired,
//! handed from one thread to another through a drop-oldest hand-off and
//! returned to the pool, against an empty baseline; and the AI lane's one
//! extra cost, the copy of a frame's pixels into a pooled buffer for the
//! model's thread (`ai_lane_copy_*`, at the phantom's and capture cards'
//! sizes; docs/ARCHITECTURE.md sets it beside the model's time). Run:
//! `cargo bench -p sonoflow-benches --bench handoff`.

use std::sync::Arc;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sonoflow_core::{
    Clock, Frame, FrameFormat, FrameId, FramePool, MonotonicClock, PixelFormat, StageStamps,
};
use sonoflow_pipeline::{handoff, DropPolicy};

fn frame(pool: &FramePool, clock: &dyn Clock, id: u64) -> Frame {
    let format = FrameFormat::new(PixelFormat::Gray8, 640, 480).expect("valid format");
    Frame::new(
        FrameId(id),
        format,
        pool.acquire(format.len()),
        StageStamps::new(clock.now()),
    )
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("cpu");
    group.throughput(Throughput::Elements(1));

    group.bench_function("baseline_empty", |b| b.iter(|| black_box(0u64)));

    let pool = FramePool::new(8);
    let clock = MonotonicClock::new();
    group.bench_function("pool_acquire_release_640x480", |b| {
        let mut id = 0;
        b.iter(|| {
            id += 1;
            black_box(frame(&pool, &clock, id));
        })
    });

    group.bench_function("handoff_cross_thread_640x480", |b| {
        let (tx, rx, _) = handoff::<Frame>(4, DropPolicy::DropOldest);
        let (back_tx, back_rx, _) = handoff::<u64>(4, DropPolicy::Block);
        let consumer = std::thread::spawn(move || {
            while let Ok(f) = rx.recv_timeout(Duration::from_secs(5)) {
                if back_tx.send(f.id.0).is_err() {
                    break;
                }
            }
        });
        let clock: Arc<dyn Clock> = Arc::new(MonotonicClock::new());
        let mut id = 0;
        b.iter(|| {
            id += 1;
            let _ = tx.send(frame(&pool, clock.as_ref(), id));
            black_box(back_rx.recv_timeout(Duration::from_secs(5)).ok());
        });
        drop(tx);
        let _ = consumer.join();
    });
    for (name, format, width, height) in [
        ("640x480_gray8", PixelFormat::Gray8, 640, 480),
        ("1280x720_rgba", PixelFormat::Rgba, 1280, 720),
        ("1920x1080_rgba", PixelFormat::Rgba, 1920, 1080),
    ] {
        let format = FrameFormat::new(format, width, height).expect("valid format");
        let copies = FramePool::new(3);
        let source = pool.acquire(format.len());
        group.bench_function(format!("ai_lane_copy_{name}"), |b| {
            b.iter(|| {
                // What `ModelProcessor::copy_of` does to the pixels.
                let mut copy = copies.acquire(source.len());
                copy.copy_from_slice(&source);
                black_box(copy);
            })
        });
    }
    group.finish();
}

criterion_group!(handoff_benches, benches);
criterion_main!(handoff_benches);
