//! Per-frame cost of automatic calibration on phantom frames (640x480 by
//! default): searching (the change statistic on every frame, a fit of
//! region and ruler every sixth) and locked (the watch alone). Each frame
//! is timed in every round and its fastest round kept, which strips what
//! other processes on the machine add; the table gives the mean and the
//! largest of those over the sequence.
//!
//! ```text
//! cargo run --release -p sonoflow-calibrate --example frame_cost [-- WIDTH HEIGHT]
//! ```

use std::time::Instant;

use sonoflow_calibrate::{AutoCalibrator, AutoOptions, LockState};
use sonoflow_core::FrameFormat;
use sonoflow_phantom::{Phantom, PhantomConfig, ProbeKind};

const FRAMES: u64 = 60;
const ROUNDS: usize = 30;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u32>());
    let width = args.next().transpose()?.unwrap_or(640);
    let height = args.next().transpose()?.unwrap_or(480);
    println!("{width}x{height} GRAY8, {FRAMES} frames, fastest of {ROUNDS} rounds per frame");
    println!(
        "{:<8} {:<22} {:>10} {:>10}",
        "probe", "frames", "mean µs", "max µs"
    );
    for probe in [ProbeKind::Linear, ProbeKind::Convex] {
        let mut phantom = Phantom::new(PhantomConfig {
            probe,
            width,
            height,
            ..PhantomConfig::default()
        })?;
        let format = phantom.format();
        let frames: Vec<Vec<u8>> = (0..FRAMES)
            .map(|i| {
                let mut px = vec![0u8; format.len()];
                phantom.render_image(i, &mut px);
                px
            })
            .collect();
        // A calibrator that never locks: fits every sixth frame.
        let never = AutoOptions {
            min_confidence: 2.0,
            ..AutoOptions::default()
        };
        let searching = fastest(&frames, format, never, |_| true)?;
        let (fit, plain): (Vec<_>, Vec<_>) = searching
            .iter()
            .enumerate()
            .skip(1)
            .partition(|(i, _)| *i >= 6 && i.is_multiple_of(6));
        let values = |v: Vec<(usize, &f64)>| v.into_iter().map(|(_, t)| *t).collect::<Vec<_>>();
        row(probe.name(), "searching, all", &searching[1..]);
        row(probe.name(), "searching, no fit", &values(plain));
        row(probe.name(), "searching, with a fit", &values(fit));
        let locked = fastest(&frames, format, AutoOptions::default(), |s| {
            s == LockState::Locked
        })?;
        let locked: Vec<f64> = locked.into_iter().filter(|t| t.is_finite()).collect();
        row(probe.name(), "locked (watch)", &locked);
    }
    Ok(())
}

/// Per frame, the fastest of the rounds in µs (infinite where `keep` refused
/// the frame's state, or the frame changed the calibration).
fn fastest(
    frames: &[Vec<u8>],
    format: FrameFormat,
    options: AutoOptions,
    keep: impl Fn(LockState) -> bool,
) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    let mut best = vec![f64::INFINITY; frames.len()];
    for _ in 0..ROUNDS {
        let mut auto = AutoCalibrator::new(options);
        for (px, best) in frames.iter().zip(best.iter_mut()) {
            let t = Instant::now();
            let seen = auto.observe(px, format)?;
            let us = t.elapsed().as_secs_f64() * 1e6;
            if keep(seen.state) && !seen.changed {
                *best = best.min(us);
            }
        }
    }
    Ok(best)
}

fn row(probe: &str, what: &str, times: &[f64]) {
    let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
    let max = times.iter().copied().fold(0.0, f64::max);
    println!("{probe:<8} {what:<22} {mean:>10.1} {max:>10.1}");
}
