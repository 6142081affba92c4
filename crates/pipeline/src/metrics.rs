//! Run statistics: frame counters, drops per stage, per-stage time and
//! end-to-end latency (capture to hand-off to the sink).
//!
//! Recording takes no lock and allocates nothing: counters are atomics and
//! each latency histogram is a fixed array of atomic buckets, allocated once
//! ([`histogram`]); any number of stage threads record at once. Percentiles
//! are computed from the buckets by the reader ([`LatencyRecorder::summary`],
//! [`PipelineMetrics::snapshot`]), off the frame path.

mod histogram;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sonoflow_core::{Stage, Timestamp};
use tracing::warn;

use crate::handoff::HandoffStats;
use histogram::AtomicHistogram;

/// Latency percentiles in milliseconds. `count` and `max` are exact; the
/// percentiles (nearest-rank) and `mean` are within 0.4 % of the exact ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// A latency histogram shared between the recording stages and readers:
/// nanosecond resolution up to about 137 s (longer latencies are clamped).
pub struct LatencyRecorder {
    hist: AtomicHistogram,
}

impl LatencyRecorder {
    /// Allocates the histogram (about 31 KiB) once.
    pub fn new() -> Self {
        Self {
            hist: AtomicHistogram::new(),
        }
    }

    /// Lock-free, allocation-free; safe to call from several threads at once.
    pub fn record(&self, latency: Duration) {
        self.hist
            .record(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Reads the histogram (about ten microseconds): not for the frame path.
    pub fn summary(&self) -> LatencySummary {
        let Some(r) = self.hist.read([0.50, 0.90, 0.99]) else {
            return LatencySummary::default();
        };
        let ms = |ns: f64| ns / 1e6;
        let [p50, p90, p99] = r.quantiles.map(ms);
        LatencySummary {
            count: r.count,
            p50,
            p90,
            p99,
            max: ms(r.max as f64),
            mean: ms(r.mean),
        }
    }
}

/// The quantiles [`LatencyRecorder::cdf`] reads: enough points to draw a
/// latency distribution, its tail included.
pub const CDF_QUANTILES: [f64; 19] = [
    0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995,
    0.999, 1.0,
];

impl LatencyRecorder {
    /// The distribution as `[quantile, ms]` points at [`CDF_QUANTILES`]
    /// (empty when nothing was recorded): not for the frame path.
    pub fn cdf(&self) -> Vec<[f64; 2]> {
        let Some(r) = self.hist.read(CDF_QUANTILES) else {
            return Vec::new();
        };
        CDF_QUANTILES
            .iter()
            .zip(r.quantiles)
            .map(|(&q, ns)| [q, ns / 1e6])
            .collect()
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
        // A plain load first: after the first event no read-modify-write.
        if self.first.load(Ordering::Relaxed) == Self::NONE {
            let _ =
                self.first
                    .compare_exchange(Self::NONE, at.0, Ordering::Relaxed, Ordering::Relaxed);
        }
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

/// Hand-offs [`PipelineMetrics::attach_inbound`] can hold.
const INBOUND_SLOTS: usize = 8;

/// Everything the pipeline counts while it runs; shared by all stage threads.
/// Every per-frame method (`frame_in`, `frame_out`, `stage_time`,
/// `dropped_by`) is a handful of relaxed atomic operations: no lock, no
/// allocation.
pub struct PipelineMetrics {
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    in_span: Span,
    out_span: Span,
    /// Drops a stage counted itself (e.g. a full sink).
    own_drops: [AtomicU64; Stage::COUNT],
    /// The hand-off in front of each stage; its evictions count for that stage.
    /// Set while the run is wired, read only by [`Self::snapshot`].
    inbound: [OnceLock<(Stage, HandoffStats)>; INBOUND_SLOTS],
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
            inbound: std::array::from_fn(|_| OnceLock::new()),
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
        let mut entry = (stage, handoff);
        for slot in &self.inbound {
            match slot.set(entry) {
                Ok(()) => return,
                Err(taken) => entry = taken,
            }
        }
        warn!(
            ?stage,
            "more than {INBOUND_SLOTS} hand-offs attached; this one's drops are not counted"
        );
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

    /// Frames handed to the sink so far: one atomic load, cheap to poll.
    pub fn frames_out(&self) -> u64 {
        self.frames_out.load(Ordering::Relaxed)
    }

    /// Reads every counter and histogram (tens of microseconds): take it when
    /// a status line or report needs it, not to poll.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let frames_in = self.frames_in.load(Ordering::Relaxed);
        let frames_out = self.frames_out.load(Ordering::Relaxed);
        let mut dropped: [u64; Stage::COUNT] =
            std::array::from_fn(|i| self.own_drops[i].load(Ordering::Relaxed));
        for (stage, handoff) in self.inbound.iter().filter_map(OnceLock::get) {
            dropped[stage.index()] += handoff.dropped();
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

impl PipelineMetrics {
    /// The end-to-end latency's distribution ([`LatencyRecorder::cdf`]).
    pub fn latency_cdf(&self) -> Vec<[f64; 2]> {
        self.end_to_end.cdf()
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

    fn assert_close(what: &str, got: f64, exact: f64, relative: f64) {
        assert!(
            (got - exact).abs() <= relative * exact.abs(),
            "{what}: {got} against exact {exact}"
        );
    }

    #[test]
    fn percentiles_of_known_latencies() {
        let rec = LatencyRecorder::new();
        for ms in 1..=100 {
            rec.record(Duration::from_millis(ms));
        }
        let s = rec.summary();
        assert_eq!(s.count, 100);
        assert_close("p50", s.p50, 50.0, 0.01);
        assert_close("p90", s.p90, 90.0, 0.01);
        assert_close("p99", s.p99, 99.0, 0.01);
        assert_eq!(s.max, 100.0);
        assert_close("mean", s.mean, 50.5, 0.01);
    }

    /// Against the exact nearest-rank quantiles of 200 000 latencies spread
    /// log-uniformly from 1 µs to 60 s (a seeded generator, no dependency).
    #[test]
    fn percentiles_within_one_percent_of_exact_quantiles() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let (low_ns, high_ns) = (1e3_f64, 60e9_f64);
        let mut sample: Vec<u64> = (0..200_000)
            .map(|_| (low_ns * (high_ns / low_ns).powf(next())) as u64)
            .collect();
        let rec = LatencyRecorder::new();
        for &ns in &sample {
            rec.record(Duration::from_nanos(ns));
        }
        sample.sort_unstable();
        let exact_ms = |q: f64| {
            let rank = ((q * sample.len() as f64).ceil() as usize).clamp(1, sample.len());
            sample[rank - 1] as f64 / 1e6
        };
        let s = rec.summary();
        assert_eq!(s.count, sample.len() as u64);
        assert_close("p50", s.p50, exact_ms(0.50), 0.01);
        assert_close("p90", s.p90, exact_ms(0.90), 0.01);
        assert_close("p99", s.p99, exact_ms(0.99), 0.01);
        assert_eq!(s.max, exact_ms(1.0));
        let mean = sample.iter().sum::<u64>() as f64 / sample.len() as f64 / 1e6;
        assert_close("mean", s.mean, mean, 0.01);
        // And over a narrow, frame-like band, where a bucket holds many values.
        let rec = LatencyRecorder::new();
        let mut band: Vec<u64> = (0..50_000)
            .map(|_| 150_000 + (next() * 2_000_000.0) as u64)
            .collect();
        for &ns in &band {
            rec.record(Duration::from_nanos(ns));
        }
        band.sort_unstable();
        let s = rec.summary();
        for (what, q, got) in [
            ("p50", 0.5, s.p50),
            ("p90", 0.9, s.p90),
            ("p99", 0.99, s.p99),
        ] {
            let rank = (q * band.len() as f64).ceil() as usize;
            assert_close(what, got, band[rank - 1] as f64 / 1e6, 0.01);
        }
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        assert_eq!(LatencyRecorder::new().summary(), LatencySummary::default());
    }

    /// Several threads record into the same recorders at once; nothing is
    /// lost or counted twice (the old `Mutex` also gave this; the atomics must too).
    #[test]
    fn concurrent_recording_counts_every_frame() {
        const THREADS: u64 = 4;
        const FRAMES: u64 = 50_000;
        let busy = Arc::new(AtomicBool::new(false));
        let split = Arc::new(LatencySplit::new(Arc::clone(&busy)));
        let m = Arc::new(PipelineMetrics::new());
        m.split_latency_by(Arc::clone(&split));
        std::thread::scope(|scope| {
            for t in 0..THREADS {
                let (m, busy) = (Arc::clone(&m), Arc::clone(&busy));
                scope.spawn(move || {
                    for i in 0..FRAMES {
                        let at = Timestamp(1 + i * 1_000_000);
                        m.frame_in(at);
                        // Below 256 ns every value has a bucket of its own: exact sums.
                        m.stage_time(Stage::Ingest, Duration::from_nanos(i % 256));
                        m.stage_time(Stage::Process, Duration::from_micros(t + 1));
                        if i.is_multiple_of(10) {
                            m.dropped_by(Stage::Output);
                            continue;
                        }
                        if i.is_multiple_of(1000) {
                            busy.store(t.is_multiple_of(2), Ordering::Relaxed);
                        }
                        m.frame_out(at, Duration::from_micros(100 + i % 900));
                    }
                });
            }
        });
        let out = THREADS * (FRAMES - FRAMES / 10);
        let snap = m.snapshot();
        assert_eq!(snap.frames_in, THREADS * FRAMES);
        assert_eq!(snap.frames_out, out);
        assert_eq!(snap.latency.count, out);
        assert_eq!(snap.dropped[Stage::Output.index()], THREADS * FRAMES / 10);
        assert_eq!(snap.stages[Stage::Ingest.index()].count, THREADS * FRAMES);
        assert_eq!(snap.stages[Stage::Process.index()].count, THREADS * FRAMES);
        assert_eq!(
            snap.stages[Stage::Process.index()].max,
            THREADS as f64 / 1e3
        );
        assert_eq!(
            split.when_set.summary().count + split.when_clear.summary().count,
            out
        );
        // Exact buckets, so an exact mean: every record landed once, in its bucket.
        let mean_ns = (0..FRAMES).map(|i| i % 256).sum::<u64>() as f64 / FRAMES as f64;
        assert_eq!(snap.stages[Stage::Ingest.index()].mean, mean_ns / 1e6);
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

    #[test]
    fn inbound_hand_offs_past_the_slots_are_ignored_not_fatal() {
        let m = PipelineMetrics::new();
        let mut senders = Vec::new();
        for _ in 0..INBOUND_SLOTS + 2 {
            let (tx, rx, stats) = handoff::<u8>(1, DropPolicy::DropOldest);
            m.attach_inbound(Stage::Output, stats);
            tx.send(0).expect("receiver alive");
            tx.send(1).expect("receiver alive");
            senders.push((tx, rx));
        }
        assert_eq!(
            m.snapshot().dropped[Stage::Output.index()],
            INBOUND_SLOTS as u64
        );
    }
}
