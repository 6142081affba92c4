//! The frame pipeline's own cost: a pooled 640x480 GRAY8 frame acquired,
//! handed from one thread to another through a drop-oldest hand-off and
//! returned to the pool, against an empty baseline. Run:
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
    group.finish();
}

criterion_group!(handoff_benches, benches);
criterion_main!(handoff_benches);
