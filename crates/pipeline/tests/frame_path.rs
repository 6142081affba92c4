//! The run statistics on the frame path: recording allocates nothing, from
//! several threads at once, and the code that records holds no lock.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use sonoflow_core::alloc_count::{frame_path_allocations, CountingAllocator, FramePathGuard};
use sonoflow_core::{Stage, Timestamp};
use sonoflow_pipeline::{LatencySplit, PipelineMetrics};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

#[test]
fn recording_from_several_threads_allocates_nothing_and_loses_nothing() {
    const THREADS: u64 = 3;
    const FRAMES: u64 = 20_000;
    let metrics = Arc::new(PipelineMetrics::new());
    metrics.split_latency_by(Arc::new(LatencySplit::new(Arc::new(AtomicBool::new(true)))));
    // Installs the counter (it notes its first allocation).
    drop(Box::new(0u8));
    let before = frame_path_allocations().expect("counting allocator installed");
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            let metrics = Arc::clone(&metrics);
            scope.spawn(move || {
                let _frame_path = FramePathGuard::enter();
                for i in 0..FRAMES {
                    let at = Timestamp(1 + i * 16_666_667);
                    metrics.frame_in(at);
                    metrics.stage_time(Stage::Ingest, Duration::from_micros(50 + i % 100));
                    metrics.stage_time(Stage::Process, Duration::from_micros(200 + i % 300));
                    if i.is_multiple_of(100) {
                        metrics.dropped_by(Stage::Output);
                    } else {
                        metrics.stage_time(Stage::Output, Duration::from_micros(80));
                        metrics.frame_out(at, Duration::from_millis(1 + i % 40));
                    }
                }
            });
        }
    });
    let after = frame_path_allocations().expect("counting allocator installed");
    assert_eq!(after - before, 0, "allocations while recording");

    let snap = metrics.snapshot();
    let out = THREADS * (FRAMES - FRAMES / 100);
    assert_eq!(snap.frames_in, THREADS * FRAMES);
    assert_eq!(snap.frames_out, out);
    assert_eq!(snap.latency.count, out);
    assert_eq!(snap.stages[Stage::Output.index()].count, out);
    assert_eq!(snap.dropped[Stage::Output.index()], THREADS * FRAMES / 100);
    assert_eq!(snap.latency.max, 40.0);
}

/// The absence, checked: the recording code names no lock. (Reading the
/// source is the only way to see a lock that is never contended in a test.)
#[test]
fn the_recording_code_takes_no_lock() {
    let sources = [
        ("metrics.rs", include_str!("../src/metrics.rs")),
        (
            "metrics/histogram.rs",
            include_str!("../src/metrics/histogram.rs"),
        ),
        ("handoff.rs", include_str!("../src/handoff.rs")),
    ];
    let locks = [
        ["Mu", "tex"],
        ["Rw", "Lock"],
        ["Cond", "var"],
        [".lock", "()"],
    ]
    .map(|[a, b]| format!("{a}{b}"));
    for (file, text) in sources {
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for lock in &locks {
                assert!(
                    !code.contains(lock.as_str()),
                    "crates/pipeline/src/{file}:{}: {lock} on the frame path",
                    n + 1
                );
            }
        }
    }
}
