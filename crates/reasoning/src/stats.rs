//! What the head did over a run, shared with the report and the live status.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;
use sonoflow_core::Interpretation;
use sonoflow_pipeline::{LatencyRecorder, LatencySplit};

use crate::keyframes::KeyframeReason;
use crate::report::Report;

pub struct ReasoningStats {
    /// Keyframes the per-frame path chose and handed over.
    pub keyframes: AtomicU64,
    pub by_reason: [AtomicU64; KeyframeReason::ALL.len()],
    /// Keyframes replaced by a newer one before the head started them (latest wins).
    pub superseded: AtomicU64,
    /// Generations that ran to the end.
    pub reports: AtomicU64,
    /// Generations stopped because a newer keyframe made theirs stale.
    pub cancelled_stale: AtomicU64,
    /// Generations cancelled or keyframes dropped while the run shed load.
    pub cancelled_under_load: AtomicU64,
    /// Time generations waited between tokens for the frame path (ns).
    pub yielded_ns: AtomicU64,
    pub timeouts: AtomicU64,
    pub failures: AtomicU64,
    /// Kernel sets published to the per-frame decoder.
    pub kernel_swaps: AtomicU64,
    /// Kernel sets refused because a value was NaN or infinite (the decoder
    /// kept its last good kernels).
    pub rejected_kernels: AtomicU64,
    /// Numbers the model wrote that no measurement backed (marked unverified).
    pub unverified_numbers: AtomicU64,
    /// Numbers the model wrote that were replaced by measured values.
    pub replaced_numbers: AtomicU64,
    pub ttft: LatencyRecorder,
    pub total: LatencyRecorder,
    /// Tokens after the first, and the time they took (the decode rate).
    pub decode_tokens: AtomicU64,
    pub decode_ns: AtomicU64,
    /// Set while the head generates; frame latency is split by it.
    pub busy: Arc<AtomicBool>,
    pub frame_latency: Arc<LatencySplit>,
    /// The last [`RECENT_REPORTS`] finished reports, oldest first.
    recent: Mutex<VecDeque<Finished>>,
    /// Why the head is not running (its model could not be loaded, ...).
    pub error: Mutex<Option<String>>,
    /// `backend = "remote"`: the server (url, model), once set.
    pub remote: OnceLock<(String, String)>,
    /// Reports the server generated.
    pub remote_reports: AtomicU64,
    /// Reports written with the local graphs because the server failed
    /// (or was being left alone after failing).
    pub remote_fallbacks: AtomicU64,
    /// Keyframes shown "interpretation unavailable (server)" (no fallback).
    pub remote_unavailable: AtomicU64,
    pub remote_last_error: Mutex<Option<String>>,
    /// Keyframe to report from the server (the round trip and the generation).
    pub remote_latency: LatencyRecorder,
    /// Protobuf bytes sent and received for the server's reports.
    pub remote_bytes_sent: AtomicU64,
    pub remote_bytes_received: AtomicU64,
}

impl ReasoningStats {
    pub(crate) fn set_remote(&self, url: &str, model: &str) {
        let _ = self.remote.set((url.to_owned(), model.to_owned()));
    }

    pub(crate) fn note_remote_error(&self, error: String) {
        if let Ok(mut last) = self.remote_last_error.lock() {
            *last = Some(error);
        }
    }

    fn remote_report(&self) -> Option<RemoteReport> {
        let (url, model) = self.remote.get()?.clone();
        let reports = self.remote_reports.load(Ordering::Relaxed);
        let per = |total: &AtomicU64| {
            total
                .load(Ordering::Relaxed)
                .checked_div(reports)
                .unwrap_or(0)
        };
        let latency = self.remote_latency.summary();
        Some(RemoteReport {
            url,
            model,
            latency_ms: Percentiles {
                p50: latency.p50,
                p99: latency.p99,
            },
            bytes_sent_per_report: per(&self.remote_bytes_sent),
            bytes_received_per_report: per(&self.remote_bytes_received),
            reports,
            fallbacks: self.remote_fallbacks.load(Ordering::Relaxed),
            unavailable: self.remote_unavailable.load(Ordering::Relaxed),
            last_error: self.remote_last_error.lock().ok().and_then(|e| e.clone()),
        })
    }
}

/// `reasoning.remote` in the run report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoteReport {
    pub url: String,
    pub model: String,
    /// Reports the server generated.
    pub reports: u64,
    /// Request to response of the server's reports.
    pub latency_ms: Percentiles,
    /// Protobuf payload per report: the image tokens and prompt out, the
    /// tokens and kernels back.
    pub bytes_sent_per_report: u64,
    pub bytes_received_per_report: u64,
    /// Reports written locally while the server failed.
    pub fallbacks: u64,
    /// Keyframes without a report because the server failed and there is no fallback.
    pub unavailable: u64,
    pub last_error: Option<String>,
}

impl Default for ReasoningStats {
    fn default() -> Self {
        let busy = Arc::new(AtomicBool::new(false));
        Self {
            keyframes: AtomicU64::new(0),
            by_reason: std::array::from_fn(|_| AtomicU64::new(0)),
            superseded: AtomicU64::new(0),
            reports: AtomicU64::new(0),
            cancelled_stale: AtomicU64::new(0),
            cancelled_under_load: AtomicU64::new(0),
            yielded_ns: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            kernel_swaps: AtomicU64::new(0),
            rejected_kernels: AtomicU64::new(0),
            unverified_numbers: AtomicU64::new(0),
            replaced_numbers: AtomicU64::new(0),
            ttft: LatencyRecorder::new(),
            total: LatencyRecorder::new(),
            decode_tokens: AtomicU64::new(0),
            decode_ns: AtomicU64::new(0),
            frame_latency: Arc::new(LatencySplit::new(Arc::clone(&busy))),
            busy,
            recent: Mutex::new(VecDeque::with_capacity(RECENT_REPORTS)),
            error: Mutex::new(None),
            remote: OnceLock::new(),
            remote_reports: AtomicU64::new(0),
            remote_fallbacks: AtomicU64::new(0),
            remote_unavailable: AtomicU64::new(0),
            remote_last_error: Mutex::new(None),
            remote_latency: LatencyRecorder::new(),
            remote_bytes_sent: AtomicU64::new(0),
            remote_bytes_received: AtomicU64::new(0),
        }
    }
}

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
}

/// The `reasoning` section of the run report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReasoningReport {
    pub keyframes: u64,
    pub reports: u64,
    pub cancelled_stale: u64,
    /// Reports cancelled (or keyframes dropped) while the run shed load.
    pub cancelled_under_load: u64,
    /// Time the head waited between tokens for the frame path, in total.
    pub yielded_ms: f64,
    pub kernel_swaps: u64,
    /// Kernel sets refused for NaN or infinite values.
    pub rejected_kernels: u64,
    pub ttft_ms: Percentiles,
    pub tokens_per_s: f64,
    /// Per-frame end-to-end latency p99 while the head was idle / generating.
    pub frame_p99_ms_head_idle: f64,
    pub frame_p99_ms_head_busy: f64,
    pub frame_p50_ms_head_idle: f64,
    pub frame_p50_ms_head_busy: f64,
    /// Frames behind each figure.
    pub frames_head_idle: u64,
    pub frames_head_busy: u64,
    /// busy p99 / idle p99 (null until both have frames).
    pub frame_p99_ratio: Option<f64>,
    pub keyframes_per_min: f64,
    pub keyframes_by_reason: std::collections::BTreeMap<&'static str, u64>,
    /// Keyframes replaced by a newer one before the head got to them.
    pub superseded: u64,
    pub timeouts: u64,
    pub failures: u64,
    pub total_ms: Percentiles,
    pub unverified_numbers: u64,
    pub replaced_numbers: u64,
    pub latest: Option<Report>,
    pub error: Option<String>,
    /// `backend = "remote"`: what the server did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteReport>,
}

/// How many finished reports the head keeps for those who look them up by
/// keyframe (a DICOM store polls every 50 ms; a report takes far longer).
pub const RECENT_REPORTS: usize = 16;

/// A finished report: the interpretation the board showed for it, and the
/// head's details.
#[derive(Debug, Clone)]
pub struct Finished {
    pub shown: Arc<Interpretation>,
    pub report: Report,
}

impl ReasoningStats {
    /// Keeps a finished report. The head calls this before it shows the
    /// report on the board, so whoever sees it there finds it here.
    pub(crate) fn record(&self, shown: Arc<Interpretation>, report: Report) {
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() == RECENT_REPORTS {
                recent.pop_front();
            }
            recent.push_back(Finished { shown, report });
        }
    }

    /// Keyframe `keyframe`'s finished report, if it is one of the recent ones.
    pub fn finished_for(&self, keyframe: u64) -> Option<Finished> {
        let recent = self.recent.lock().ok()?;
        recent
            .iter()
            .rev()
            .find(|f| f.report.keyframe == keyframe)
            .cloned()
    }

    /// Keyframe `keyframe`'s report details, if it is one of the recent ones.
    pub fn latest_for(&self, keyframe: u64) -> Option<Report> {
        self.finished_for(keyframe).map(|f| f.report)
    }

    /// The last finished report's details.
    pub fn latest(&self) -> Option<Report> {
        let recent = self.recent.lock().ok()?;
        recent.back().map(|f| f.report.clone())
    }

    pub fn report(&self, duration_s: f64) -> ReasoningReport {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (idle, busy) = (
            self.frame_latency.when_clear.summary(),
            self.frame_latency.when_set.summary(),
        );
        let (ttft, total) = (self.ttft.summary(), self.total.summary());
        let decode_s = n(&self.decode_ns) as f64 / 1e9;
        ReasoningReport {
            keyframes: n(&self.keyframes),
            reports: n(&self.reports),
            cancelled_stale: n(&self.cancelled_stale),
            cancelled_under_load: n(&self.cancelled_under_load),
            yielded_ms: n(&self.yielded_ns) as f64 / 1e6,
            kernel_swaps: n(&self.kernel_swaps),
            rejected_kernels: n(&self.rejected_kernels),
            ttft_ms: Percentiles {
                p50: ttft.p50,
                p99: ttft.p99,
            },
            tokens_per_s: if decode_s > 0.0 {
                n(&self.decode_tokens) as f64 / decode_s
            } else {
                0.0
            },
            frame_p99_ms_head_idle: idle.p99,
            frame_p99_ms_head_busy: busy.p99,
            frame_p50_ms_head_idle: idle.p50,
            frame_p50_ms_head_busy: busy.p50,
            frames_head_idle: idle.count,
            frames_head_busy: busy.count,
            frame_p99_ratio: (idle.count > 0 && busy.count > 0 && idle.p99 > 0.0)
                .then(|| busy.p99 / idle.p99),
            keyframes_per_min: if duration_s > 0.0 {
                n(&self.keyframes) as f64 * 60.0 / duration_s
            } else {
                0.0
            },
            keyframes_by_reason: KeyframeReason::ALL
                .iter()
                .map(|r| (r.name(), n(&self.by_reason[r.index()])))
                .collect(),
            superseded: n(&self.superseded),
            timeouts: n(&self.timeouts),
            failures: n(&self.failures),
            total_ms: Percentiles {
                p50: total.p50,
                p99: total.p99,
            },
            unverified_numbers: n(&self.unverified_numbers),
            replaced_numbers: n(&self.replaced_numbers),
            latest: self.latest(),
            error: self.error.lock().ok().and_then(|e| e.clone()),
            remote: self.remote_report(),
        }
    }
}

#[cfg(test)]
mod tests {
    use sonoflow_core::{FrameId, Timestamp};

    use super::*;

    fn finished(keyframe: u64) -> (Arc<Interpretation>, Report) {
        let text = format!("report of {keyframe}");
        let shown = Arc::new(Interpretation::done(
            text.clone(),
            FrameId(keyframe),
            Timestamp(keyframe),
        ));
        let report = Report {
            keyframe,
            reason: KeyframeReason::Still,
            prompt: "[DIAG]".into(),
            fields: Default::default(),
            long_axis_mm: None,
            short_axis_mm: None,
            text: text.clone(),
            generated: text,
            grounding: Default::default(),
            tokens: 3,
            truncated: false,
            ttft_ms: 1.0,
            total_ms: 2.0,
            kernel_version: None,
        };
        (shown, report)
    }

    #[test]
    fn a_finished_report_is_found_by_its_keyframe_after_newer_ones() {
        let stats = ReasoningStats::default();
        assert!(stats.latest().is_none());
        for keyframe in [10, 20, 30] {
            let (shown, report) = finished(keyframe);
            stats.record(shown, report);
        }
        // A store that looks late still finds keyframe 20's report and the
        // text the board showed for it, though the board shows 30 now.
        let found = stats.finished_for(20).expect("kept");
        assert_eq!(found.shown.text, "report of 20");
        assert_eq!(found.report.keyframe, 20);
        assert_eq!(stats.latest().map(|r| r.keyframe), Some(30));
        assert!(stats.finished_for(25).is_none());
    }

    #[test]
    fn only_the_recent_reports_are_kept() {
        let stats = ReasoningStats::default();
        for keyframe in 0..(RECENT_REPORTS as u64 + 5) {
            let (shown, report) = finished(keyframe);
            stats.record(shown, report);
        }
        assert!(stats.finished_for(4).is_none());
        assert!(stats.finished_for(5).is_some());
        assert_eq!(stats.report(1.0).latest.map(|r| r.keyframe), Some(20));
    }
}
