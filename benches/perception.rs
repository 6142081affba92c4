//! Post-processing (masks to findings: sampling, components, contours,
//! calipers with uncertainty, tracking) and the overlay (grey to RGBA plus
//! every layer), one thread, per frame at 640x480 and 1920x1080, on a
//! phantom frame with one lesion and the ideal logits of a 64x64 grid (as
//! umind-nano gives). Run: `cargo bench -p sonoflow-benches --bench perception`.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sonoflow_core::{
    BufferPool, Clock, Frame, FrameFindings, FrameFormat, FrameId, ManualClock, PixelFormat,
    Recycler, StageStamps, Timestamp,
};
use sonoflow_overlay::{Interpretation, InterpretationBoard, Overlay, OverlayOptions};
use sonoflow_perception::{Perception, PerceptionOptions, TaskRows};
use sonoflow_phantom::{ideal, Phantom, PhantomConfig};

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("cpu_1thread");
    group.throughput(Throughput::Elements(1));
    for (w, h) in [(640u32, 480u32), (1920, 1080)] {
        let config = PhantomConfig {
            width: w,
            height: h,
            seed: 424242,
            lesions: 1,
            ..PhantomConfig::default()
        };
        let mut phantom = Phantom::new(config).expect("valid phantom config");
        let mut pixels = vec![0u8; phantom.format().len()];
        let truth = phantom.render(12, &mut pixels);
        let outputs = ideal::outputs(&truth, ideal::letterbox(&truth, w, h, 256), 64);
        let rows = TaskRows {
            segmentation: 0,
            detection: 1,
        };
        let mut perception = Perception::new(PerceptionOptions::default());
        let mut found = FrameFindings::with_capacity(64, 16_384);
        let calibration = sonoflow_core::Calibration::of_truth(&truth);
        group.bench_function(format!("postprocess_{w}x{h}"), |b| {
            b.iter(|| perception.perceive(&outputs, rows, w, h, Some(&calibration), &mut found))
        });

        let clock = Arc::new(ManualClock::new());
        let board = Arc::new(InterpretationBoard::empty());
        board.store(Some(Arc::new(Interpretation::done(
            "Oval, parallel, circumscribed hypoechoic mass with posterior enhancement. BI-RADS 3.",
            FrameId(1),
            Timestamp(0),
        ))));
        let mut overlay = Overlay::new(
            OverlayOptions::default(),
            clock.clone() as Arc<dyn Clock>,
            board,
        )
        .expect("overlay");
        let pool = BufferPool::new(2);
        let mut data = pool.acquire(pixels.len());
        data.copy_from_slice(&pixels);
        let format = FrameFormat::new(PixelFormat::Gray8, w, h).expect("format");
        let mut frame = Frame::new(
            FrameId(2),
            format,
            data,
            StageStamps::new(Timestamp(1_000_000_000)),
        );
        let findings = Recycler::<FrameFindings>::new(1);
        let mut attached = findings.acquire();
        attached.copy_from(&found);
        attached.captured = Timestamp(1_000_000_000);
        frame.findings = Some(attached);
        let mut target = vec![0u8; (w * h * 4) as usize];
        group.bench_function(format!("overlay_{w}x{h}"), |b| {
            b.iter(|| {
                clock.advance(std::time::Duration::from_millis(33));
                overlay.draw(&frame, &mut target)
            })
        });
    }
    group.finish();
}

criterion_group!(perception_benches, benches);
criterion_main!(perception_benches);
