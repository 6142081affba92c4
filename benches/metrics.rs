//! What the run statistics cost the frame path: one latency recorded, one
//! frame counted out (counters, rate span, end-to-end latency and its split),
//! the same from two threads at once into one recorder, against an empty
//! baseline; and, off the frame path, one summary and one full snapshot as the
//! status line takes them. Run: `cargo bench -p sonoflow-benches --bench metrics`.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sonoflow_core::{Stage, Timestamp};
use sonoflow_pipeline::{LatencyRecorder, LatencySplit, PipelineMetrics};

/// Latencies spread over 50 µs .. 5 ms, as a frame path sees them.
fn latency(i: u64) -> Duration {
    Duration::from_nanos(50_000 + (i.wrapping_mul(2_654_435_761) % 4_950_000))
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("cpu");
    group.throughput(Throughput::Elements(1));

    group.bench_function("baseline_empty", |b| b.iter(|| black_box(0u64)));

    let recorder = LatencyRecorder::new();
    group.bench_function("latency_recorder_record", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            recorder.record(black_box(latency(i)));
        })
    });

    let metrics = PipelineMetrics::new();
    metrics.split_latency_by(Arc::new(LatencySplit::new(Arc::new(AtomicBool::new(
        false,
    )))));
    group.bench_function("pipeline_metrics_frame_out", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            metrics.frame_out(Timestamp(i * 33_333_333), black_box(latency(i)));
        })
    });
    group.bench_function("pipeline_metrics_stage_time", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            metrics.stage_time(Stage::Process, black_box(latency(i)));
        })
    });

    // Two threads record into one recorder at once; the time is per record
    // of the thread that the clock follows.
    group.bench_function("latency_recorder_record_2_threads", |b| {
        b.iter_custom(|iters| {
            let recorder = Arc::new(LatencyRecorder::new());
            let barrier = Arc::new(Barrier::new(2));
            let other = {
                let (recorder, barrier) = (Arc::clone(&recorder), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    for i in 0..iters {
                        recorder.record(latency(i));
                    }
                })
            };
            barrier.wait();
            let start = Instant::now();
            for i in 0..iters {
                recorder.record(black_box(latency(i)));
            }
            let elapsed = start.elapsed();
            let _ = other.join();
            elapsed
        })
    });

    for i in 0..100_000 {
        metrics.frame_in(Timestamp(i * 33_333_333));
        metrics.frame_out(Timestamp(i * 33_333_333), latency(i));
        metrics.stage_time(Stage::Ingest, latency(i));
        metrics.stage_time(Stage::Output, latency(i));
        recorder.record(latency(i));
    }
    group.bench_function("latency_recorder_summary", |b| {
        b.iter(|| black_box(recorder.summary()))
    });
    group.bench_function("pipeline_metrics_snapshot", |b| {
        b.iter(|| black_box(metrics.snapshot()))
    });
    group.finish();
}

criterion_group! {
    name = metrics_benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(metrics_benches);
