//! Run statistics: frame counters, drops per stage, per-stage time and
//! end-to-end latency (capture to hand-off to the sink) as HDR histograms.
//! Recording never allocates: histograms are sized once, up front.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use hdrhistogram::Histogram;
use sonoflow_core::{Stage, Timestamp};

use crate::handoff::HandoffStats;

/// Highest latency the histograms resolve (longer values are clamped).
const MAX_LATENCY_US: u64 = 120_000_000;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// A latency histogram shared between the recording stage and readers.
pub struct LatencyRecorder {
    hist: Mutex<Histogram<u64>>,
}

impl LatencyRecorder {
    pub fn new() -> Self {
        let hist = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
            .expect("constant histogram bounds are valid");
        Self {
            hist: Mutex::new(hist),
        }
    }

    pub fn record(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_LATENCY_US);
        if let Ok(mut hist) = self.hist.lock() {
            hist.saturating_record(us);
        }
    }

    pub fn summary(&self) -> LatencySummary {
        let Ok(hist) = self.hist.lock() else {
            return LatencySummary::default();
        };
        if hist.is_empty() {
            return LatencySummary::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        LatencySummary {
            count: hist.len(),
            p50: ms(hist.value_at_quantile(0.50)),
            p90: ms(hist.value_at_quantile(0.90)),
            p99: ms(hist.value_at_quantile(0.99)),
            max: ms(hist.max()),
        }
    }
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self::new()
    }
}

/// First and last time something happened, for rates.
struct Span {
    first: AtomicU64,
    last: AtomicU64,
}

impl Span {
    const NONE: u64 = u64::MAX;

    fn new() -> Self {
        Self {
            first: AtomicU64::new(Self::NONE),
            last: AtomicU64::new(Self::NONE),
        }
    }

    fn mark(&self, at: Timestamp) {
        let _ = self
            .first
            .compare_exchange(Self::NONE, at.0, Ordering::Relaxed, Ordering::Relaxed);
        self.last.store(at.0, Ordering::Relaxed);
    }

    /// Events per second over the span, counting `n` events.
    fn rate(&self, n: u64) -> f64 {
        let (first, last) = (
            self.first.load(Ordering::Relaxed),
            self.last.load(Ordering::Relaxed),
        );
        if n < 2 || first == Self::NONE || last <= first {
            return 0.0;
        }
        (n - 1) as f64 / ((last - first) as f64 / 1e9)
    }
}

/// End-to-end latency split by a condition another part of the program
/// sets (e.g. "the reasoning head is generating"), read as each frame leaves.
pub struct LatencySplit {
    pub condition: Arc<AtomicBool>,
    pub when_set: LatencyRecorder,
    pub when_clear: LatencyRecorder,
}

impl LatencySplit {
    pub fn new(condition: Arc<AtomicBool>) -> Self {
        Self {
            condition,
            when_set: LatencyRecorder::new(),
            when_clear: LatencyRecorder::new(),
        }
    }
}

/// Everything the pipeline counts while it runs; shared by all stage threads.
pub struct PipelineMetrics {
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    in_span: Span,
    out_span: Span,
    /// Drops a stage counted itself (e.g. a full sink).
    own_drops: [AtomicU64; Stage::COUNT],
    /// The hand-off in front of each stage; its evictions count for that stage.
    inbound: Mutex<Vec<(Stage, HandoffStats)>>,
    end_to_end: LatencyRecorder,
    stage_time: [LatencyRecorder; Stage::COUNT],
    split: OnceLock<Arc<LatencySplit>>,
}

/// A point-in-time copy of [`PipelineMetrics`].
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSnapshot {
    pub frames_in: u64,
    pub frames_out: u64,
    pub fps_in: f64,
    pub fps_out: f64,
    pub dropped: [u64; Stage::COUNT],
    pub latency: LatencySummary,
    pub stages: [LatencySummary; Stage::COUNT],
}

impl MetricsSnapshot {
    pub fn total_dropped(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

impl PipelineMetrics {
    pub fn new() -> Self {
        Self {
            frames_in: AtomicU64::new(0),
            frames_out: AtomicU64::new(0),
            in_span: Span::new(),
            out_span: Span::new(),
            own_drops: std::array::from_fn(|_| AtomicU64::new(0)),
            inbound: Mutex::new(Vec::new()),
            end_to_end: LatencyRecorder::new(),
            stage_time: std::array::from_fn(|_| LatencyRecorder::new()),
            split: OnceLock::new(),
        }
    }

    /// Also records each frame's end-to-end latency into `split` (one split per run).
    pub fn split_latency_by(&self, split: Arc<LatencySplit>) {
        let _ = self.split.set(split);
    }

    /// Counts the evictions of `handoff` as drops of `stage` (its consumer).
    pub fn attach_inbound(&self, stage: Stage, handoff: HandoffStats) {
        if let Ok(mut inbound) = self.inbound.lock() {
            inbound.push((stage, handoff));
        }
    }

    pub fn frame_in(&self, at: Timestamp) {
        self.frames_in.fetch_add(1, Ordering::Relaxed);
        self.in_span.mark(at);
    }

    pub fn frame_out(&self, at: Timestamp, latency: Duration) {
        self.frames_out.fetch_add(1, Ordering::Relaxed);
        self.out_span.mark(at);
        self.end_to_end.record(latency);
        if let Some(split) = self.split.get() {
            let into = if split.condition.load(Ordering::Relaxed) {
                &split.when_set
            } else {
                &split.when_clear
            };
            into.record(latency);
        }
    }

    pub fn stage_time(&self, stage: Stage, time: Duration) {
        self.stage_time[stage.index()].record(time);
    }

    pub fn dropped_by(&self, stage: Stage) {
        self.own_drops[stage.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn frames_out(&self) -> u64 {
        self.frames_out.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let frames_in = self.frames_in.load(Ordering::Relaxed);
        let frames_out = self.frames_out.load(Ordering::Relaxed);
        let mut dropped: [u64; Stage::COUNT] =
            std::array::from_fn(|i| self.own_drops[i].load(Ordering::Relaxed));
        if let Ok(inbound) = self.inbound.lock() {
            for (stage, handoff) in inbound.iter() {
                dropped[stage.index()] += handoff.dropped();
            }
        }
        MetricsSnapshot {
            frames_in,
            frames_out,
            fps_in: self.in_span.rate(frames_in),
            fps_out: self.out_span.rate(frames_out),
            dropped,
            latency: self.end_to_end.summary(),
            stages: std::array::from_fn(|i| self.stage_time[i].summary()),
        }
    }
}

impl Default for PipelineMetrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handoff::{handoff, DropPolicy};

    #[test]
    fn percentiles_of_known_latencies() {
        let rec = LatencyRecorder::new();
        for ms in 1..=100 {
            rec.record(Duration::from_millis(ms));
        }
        let s = rec.summary();
        assert_eq!(s.count, 100);
        assert!((s.p50 - 50.0).abs() < 0.1, "p50 {}", s.p50);
        assert!((s.p99 - 99.0).abs() < 0.1, "p99 {}", s.p99);
        assert!((s.max - 100.0).abs() < 0.1, "max {}", s.max);
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        assert_eq!(LatencyRecorder::new().summary(), LatencySummary::default());
    }

    #[test]
    fn rates_and_drops() {
        let m = PipelineMetrics::new();
        for i in 0..31u64 {
            m.frame_in(Timestamp(i * 1_000_000_000 / 30));
        }
        let snap = m.snapshot();
        assert_eq!(snap.frames_in, 31);
        assert!((snap.fps_in - 30.0).abs() < 0.01, "fps {}", snap.fps_in);

        let (tx, _rx, stats) = handoff::<u8>(1, DropPolicy::DropOldest);
        m.attach_inbound(Stage::Process, stats);
        for i in 0..3 {
            tx.send(i).expect("receiver alive");
        }
        m.dropped_by(Stage::Output);
        let snap = m.snapshot();
        assert_eq!(snap.dropped[Stage::Process.index()], 2);
        assert_eq!(snap.dropped[Stage::Output.index()], 1);
        assert_eq!(snap.total_dropped(), 3);
    }
}
