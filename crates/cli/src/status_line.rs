//! The live status line on stderr: rewritten in place on a terminal,
//! printed as a plain line at a slower pace when stderr is a log.

use std::io::Write;
use std::time::Duration;

use sonoflow_runtime::{LiveStatus, LoadStep};

pub struct StatusLine {
    interactive: bool,
    quiet: bool,
    last: Option<(Duration, u64, u64)>,
    drawn: bool,
}

impl StatusLine {
    pub fn new(interactive: bool, quiet: bool) -> Self {
        Self {
            interactive,
            quiet,
            last: None,
            drawn: false,
        }
    }

    pub fn update(&mut self, s: &LiveStatus<'_>) {
        let m = s.metrics;
        // Rates over the last interval, not the whole run, so changes show;
        // an interval too short to measure (the final line) uses the run's.
        let (fps_in, fps_out) = match self.last {
            Some((t, fin, fout)) if s.elapsed > t + Duration::from_millis(500) => {
                let dt = (s.elapsed - t).as_secs_f64();
                (
                    (m.frames_in - fin) as f64 / dt,
                    (m.frames_out - fout) as f64 / dt,
                )
            }
            _ => (m.fps_in, m.fps_out),
        };
        self.last = Some((s.elapsed, m.frames_in, m.frames_out));
        if self.quiet {
            return;
        }
        let model = s
            .inference
            .map(|i| format!(" | model on {}{}", i.provider_summary(), self_check(i)))
            .unwrap_or_default();
        let load = s
            .load
            .map(|l| l.step())
            .filter(|step| *step != LoadStep::Full)
            .map(|step| format!(" | load: {}", step.shown()))
            .unwrap_or_default();
        let line = format!(
            "[{:6.1}s] source {} | in {:5.1} fps  out {:5.1} fps | frames {} | dropped {} | latency p50 {:.1} ms  p99 {:.1} ms | restarts {}{model}{load}",
            s.elapsed.as_secs_f64(),
            s.source.state().name(),
            fps_in,
            fps_out,
            m.frames_out,
            m.total_dropped() + s.source.ingest_losses(),
            m.latency.p50,
            m.latency.p99,
            s.source.restarts(),
        );
        let mut err = std::io::stderr().lock();
        let _ = if self.interactive {
            write!(err, "\r\x1b[2K{line}")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
        self.drawn = true;
    }

    /// Ends the in-place line so later output starts on a fresh line.
    pub fn finish(&mut self) {
        if self.interactive && self.drawn {
            eprintln!();
        }
    }
}

/// " | vs phantom truth: Dice 0.93, long-axis error 0.41 mm" once frames with
/// ground truth were scored (an error against the truth, not an uncertainty).
fn self_check(i: &sonoflow_runtime::InferenceStats) -> String {
    let acc = i.accuracy();
    match (acc.dice_mean, acc.long_axis_mae_mm) {
        (Some(d), Some(l)) => {
            format!(" | vs phantom truth: Dice {d:.2}, long-axis error {l:.2} mm")
        }
        (Some(d), None) => format!(" | vs phantom truth: Dice {d:.2}"),
        _ => String::new(),
    }
}
