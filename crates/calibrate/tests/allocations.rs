//! No heap allocation per frame once warmed up: neither while searching
//! (after the first fit has sized its buffers) nor while locked. Only a
//! lock allocates (its `Arc<Calibration>`).

use sonoflow_calibrate::{AutoCalibrator, AutoOptions, LockState};
use sonoflow_core::alloc_count::{frame_path_allocations, CountingAllocator, FramePathGuard};
use sonoflow_phantom::{Phantom, PhantomConfig, ProbeKind};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

fn counted(f: impl FnOnce()) -> u64 {
    let before = frame_path_allocations().unwrap_or(0);
    {
        let _guard = FramePathGuard::enter();
        f();
    }
    frame_path_allocations().expect("the counting allocator is installed") - before
}

#[test]
fn frames_after_warm_up_allocate_nothing() {
    for probe in [ProbeKind::Linear, ProbeKind::Convex] {
        let mut phantom = Phantom::new(PhantomConfig {
            probe,
            ..PhantomConfig::default()
        })
        .expect("phantom");
        let format = phantom.format();
        let frames: Vec<Vec<u8>> = (0..60)
            .map(|i| {
                let mut px = vec![0u8; format.len()];
                phantom.render_image(i, &mut px);
                px
            })
            .collect();
        // Searching (never locks): the first fits size the buffers.
        let mut searching = AutoCalibrator::new(AutoOptions {
            min_confidence: 2.0,
            ..AutoOptions::default()
        });
        for px in &frames[..12] {
            searching.observe(px, format).expect("frame");
        }
        let n = counted(|| {
            for px in &frames[12..] {
                let seen = searching.observe(px, format).expect("frame");
                assert_eq!(seen.state, LockState::Searching);
            }
        });
        assert_eq!(n, 0, "{probe:?}: searching allocated {n} times");
        // Locked: the watch alone.
        let mut auto = AutoCalibrator::new(AutoOptions::default());
        for px in &frames[..30] {
            auto.observe(px, format).expect("frame");
        }
        let n = counted(|| {
            for px in &frames[30..] {
                let seen = auto.observe(px, format).expect("frame");
                assert_eq!(seen.state, LockState::Locked);
            }
        });
        assert_eq!(n, 0, "{probe:?}: locked frames allocated {n} times");
    }
}
