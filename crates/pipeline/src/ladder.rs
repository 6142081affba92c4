//! The degradation ladder: when the frame path falls behind its latency
//! budget, work is shed in a fixed order and restored when load falls.
//!
//! | step | what is shed | who reads it |
//! | --- | --- | --- |
//! | 0 `full` | nothing | |
//! | 1 `head_paused` | the reasoning head: no new keyframes, the running report cancelled | the AI lane |
//! | 2 `overlay_lean` | overlay extras: mask fill and the interpretation's text | the overlay |
//! | 3 `half_rate` | the model runs on every other frame; the last findings are drawn between | the AI lane |
//!
//! [`Ladder`] is told each frame's end-to-end latency and the time (it reads
//! no clock); it climbs one step when more than a tenth of the last
//! [`WINDOW`] frames were over budget, and comes down one step when the
//! window stayed quiet (none over budget, all but one frame under
//! [`RESTORE_FRACTION`] of it) for `restore_after`. Each step is held at least `hold` before the next climb,
//! so one slow frame never sheds anything. The step is published through a
//! [`LoadLevel`] (an atomic: readers on other threads never lock).

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sonoflow_core::{ConfigIssue, Timestamp};

/// Frames the ladder looks back over.
pub const WINDOW: usize = 30;
/// More than this many frames of the window over budget: climb.
const OVER_LIMIT: usize = WINDOW / 10;
/// The window under this fraction of the budget (all but [`QUIET_BUSY`]
/// frames, and none over budget): step down.
pub const RESTORE_FRACTION: f64 = 0.6;
/// Frames of a quiet window allowed past the restore mark (one hiccup).
const QUIET_BUSY: usize = 1;

/// One step of the ladder, in the order work is shed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadStep {
    Full = 0,
    HeadPaused = 1,
    OverlayLean = 2,
    HalfRate = 3,
}

impl LoadStep {
    pub const ALL: [LoadStep; 4] = [
        LoadStep::Full,
        LoadStep::HeadPaused,
        LoadStep::OverlayLean,
        LoadStep::HalfRate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            LoadStep::Full => "full",
            LoadStep::HeadPaused => "head_paused",
            LoadStep::OverlayLean => "overlay_lean",
            LoadStep::HalfRate => "half_rate",
        }
    }

    /// What the person at the cart reads (status line, overlay).
    pub fn shown(self) -> &'static str {
        match self {
            LoadStep::Full => "full",
            LoadStep::HeadPaused => "interpretation paused",
            LoadStep::OverlayLean => "interpretation paused, overlay reduced",
            LoadStep::HalfRate => "interpretation paused, overlay reduced, AI every 2nd frame",
        }
    }

    fn from_index(i: u8) -> Self {
        Self::ALL[usize::from(i).min(Self::ALL.len() - 1)]
    }

    fn up(self) -> Self {
        Self::from_index(self as u8 + 1)
    }

    fn down(self) -> Self {
        Self::from_index((self as u8).saturating_sub(1))
    }
}

/// The ladder's current step and its counters, shared with every reader.
#[derive(Debug, Default)]
pub struct LoadShared {
    step: AtomicU8,
    highest: AtomicU8,
    climbs: AtomicU64,
    descents: AtomicU64,
    frames_at: [AtomicU64; 4],
}

/// A cheap, lock-free view of the ladder's step (clone it into each reader).
#[derive(Debug, Clone, Default)]
pub struct LoadLevel(Arc<LoadShared>);

impl LoadLevel {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn step(&self) -> LoadStep {
        LoadStep::from_index(self.0.step.load(Ordering::Relaxed))
    }

    /// Whether `step`'s work is being shed now.
    pub fn sheds(&self, step: LoadStep) -> bool {
        self.step() >= step
    }

    pub fn highest(&self) -> LoadStep {
        LoadStep::from_index(self.0.highest.load(Ordering::Relaxed))
    }

    pub fn climbs(&self) -> u64 {
        self.0.climbs.load(Ordering::Relaxed)
    }

    pub fn descents(&self) -> u64 {
        self.0.descents.load(Ordering::Relaxed)
    }

    /// Frames that left while each step was in force.
    pub fn frames_at(&self, step: LoadStep) -> u64 {
        self.0.frames_at[step as usize].load(Ordering::Relaxed)
    }

    fn set(&self, step: LoadStep) {
        self.0.step.store(step as u8, Ordering::Relaxed);
        self.0.highest.fetch_max(step as u8, Ordering::Relaxed);
    }
}

/// How the ladder judges load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LadderOptions {
    /// End-to-end latency (capture to output) a frame should stay within.
    pub budget: Duration,
    /// Least time on a step before climbing further.
    pub hold: Duration,
    /// Time the window must stay quiet before stepping down.
    pub restore_after: Duration,
}

impl Default for LadderOptions {
    fn default() -> Self {
        Self {
            budget: Duration::from_millis(66),
            hold: Duration::from_millis(1000),
            restore_after: Duration::from_millis(3000),
        }
    }
}

/// `[load]` in a pipeline definition: the degradation ladder.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadConfig {
    /// Shed work under load (default: on for live sources with a model; files
    /// wait for every frame instead, so latency is not theirs to keep).
    pub enabled: Option<bool>,
    /// End-to-end latency per frame, capture to output (default 66 ms, two
    /// frames at 30 fps). Lower sheds sooner; higher keeps more work under load.
    pub budget_ms: Option<u64>,
    /// Least time on a step before the next climb (default 1000 ms).
    pub hold_ms: Option<u64>,
    /// Quiet time before a step is restored (default 3000 ms).
    pub restore_after_ms: Option<u64>,
}

impl LoadConfig {
    /// The ladder's options, or None when it is off. `default_on`: the
    /// source is live and a model runs.
    pub fn validate(&self, default_on: bool) -> Result<Option<LadderOptions>, ConfigIssue> {
        let d = LadderOptions::default();
        for (key, v) in [
            ("load.budget_ms", self.budget_ms),
            ("load.hold_ms", self.hold_ms),
            ("load.restore_after_ms", self.restore_after_ms),
        ] {
            if v == Some(0) || v.is_some_and(|v| v > 60_000) {
                return Err(ConfigIssue::new(
                    key,
                    format!("is {}", v.unwrap_or_default()),
                    "use 1 to 60000 ms, or leave it out for the default",
                ));
            }
        }
        let ms = |v: Option<u64>, default: Duration| v.map_or(default, Duration::from_millis);
        let options = LadderOptions {
            budget: ms(self.budget_ms, d.budget),
            hold: ms(self.hold_ms, d.hold),
            restore_after: ms(self.restore_after_ms, d.restore_after),
        };
        Ok(self.enabled.unwrap_or(default_on).then_some(options))
    }
}

/// A step change, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepChange {
    pub from: LoadStep,
    pub to: LoadStep,
    /// Frames of the window over budget when it changed.
    pub over: usize,
}

/// The ladder's judge; lives on the thread that sees each frame leave.
#[derive(Debug)]
pub struct Ladder {
    options: LadderOptions,
    level: LoadLevel,
    /// Per window slot: (over budget, over the restore mark).
    window: [(bool, bool); WINDOW],
    next: usize,
    seen: usize,
    over: usize,
    busy: usize,
    changed_at: Option<Timestamp>,
    quiet_since: Option<Timestamp>,
}

impl Ladder {
    /// A ladder publishing its step through `level`.
    pub fn new(options: LadderOptions, level: LoadLevel) -> Self {
        Self {
            options,
            level,
            window: [(false, false); WINDOW],
            next: 0,
            seen: 0,
            over: 0,
            busy: 0,
            changed_at: None,
            quiet_since: None,
        }
    }

    pub fn level(&self) -> LoadLevel {
        self.level.clone()
    }

    pub fn options(&self) -> LadderOptions {
        self.options
    }

    /// One frame left at `now` after `latency`; returns the change it caused.
    pub fn observe(&mut self, now: Timestamp, latency: Duration) -> Option<StepChange> {
        let step = self.level.step();
        self.level.0.frames_at[step as usize].fetch_add(1, Ordering::Relaxed);
        let over = latency > self.options.budget;
        let busy = latency.as_secs_f64() > self.options.budget.as_secs_f64() * RESTORE_FRACTION;
        let (old_over, old_busy) = std::mem::replace(&mut self.window[self.next], (over, busy));
        if self.seen == WINDOW {
            self.over -= usize::from(old_over);
            self.busy -= usize::from(old_busy);
        } else {
            self.seen += 1;
        }
        self.over += usize::from(over);
        self.busy += usize::from(busy);
        self.next = (self.next + 1) % WINDOW;
        let held = |since: Option<Timestamp>, d: Duration| {
            since.is_none_or(|t| now.saturating_since(t) >= d)
        };
        // Quiet: nothing over budget and at most one frame past the restore mark.
        if self.over > 0 || self.busy > QUIET_BUSY {
            self.quiet_since = None;
        } else if self.quiet_since.is_none() {
            self.quiet_since = Some(now);
        }
        let to = if self.over > OVER_LIMIT
            && step < LoadStep::HalfRate
            && held(self.changed_at, self.options.hold)
        {
            step.up()
        } else if step > LoadStep::Full
            && self.seen == WINDOW
            && self.quiet_since.is_some()
            && held(self.quiet_since, self.options.restore_after)
            && held(self.changed_at, self.options.restore_after)
        {
            step.down()
        } else {
            return None;
        };
        self.level.set(to);
        if to > step {
            self.level.0.climbs.fetch_add(1, Ordering::Relaxed);
        } else {
            self.level.0.descents.fetch_add(1, Ordering::Relaxed);
            // The next step down needs its own quiet spell.
            self.quiet_since = Some(now);
        }
        self.changed_at = Some(now);
        Some(StepChange {
            from: step,
            to,
            over: self.over,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// Feeds `frames` frames at 30 fps from `start_ms` with `latency_ms` each.
    fn feed(l: &mut Ladder, start_ms: u64, frames: u64, latency_ms: u64) -> u64 {
        for i in 0..frames {
            l.observe(
                Timestamp((start_ms + i * 33) * MS),
                Duration::from_millis(latency_ms),
            );
        }
        start_ms + frames * 33
    }

    #[test]
    fn config_defaults_and_errors_name_the_key() {
        assert!(LoadConfig::default()
            .validate(false)
            .expect("valid")
            .is_none());
        let on = LoadConfig::default().validate(true).expect("valid");
        assert_eq!(on, Some(LadderOptions::default()));
        let e = LoadConfig {
            budget_ms: Some(0),
            ..LoadConfig::default()
        }
        .validate(true)
        .expect_err("zero budget");
        assert_eq!(e.key, "load.budget_ms");
    }

    #[test]
    fn one_slow_frame_sheds_nothing() {
        let mut l = Ladder::new(LadderOptions::default(), LoadLevel::new());
        let t = feed(&mut l, 0, 100, 20);
        let t = feed(&mut l, t, 1, 500);
        feed(&mut l, t, 100, 20);
        assert_eq!(l.level().highest(), LoadStep::Full);
    }

    #[test]
    fn sustained_overload_climbs_one_step_per_hold_in_order() {
        let mut l = Ladder::new(LadderOptions::default(), LoadLevel::new());
        let level = l.level();
        let mut t = feed(&mut l, 0, 30, 20);
        let mut seen = vec![level.step()];
        for _ in 0..4 {
            t = feed(&mut l, t, 31, 120);
            seen.push(level.step());
        }
        assert_eq!(
            seen,
            vec![
                LoadStep::Full,
                LoadStep::HeadPaused,
                LoadStep::OverlayLean,
                LoadStep::HalfRate,
                LoadStep::HalfRate
            ]
        );
        assert_eq!(level.climbs(), 3);
    }

    #[test]
    fn quiet_load_restores_one_step_at_a_time() {
        let mut l = Ladder::new(LadderOptions::default(), LoadLevel::new());
        let level = l.level();
        let mut t = 0;
        for _ in 0..4 {
            t = feed(&mut l, t, 31, 120);
        }
        assert_eq!(level.step(), LoadStep::HalfRate);
        // Just under the budget is not quiet: nothing comes back.
        t = feed(&mut l, t, 200, 60);
        assert_eq!(level.step(), LoadStep::HalfRate);
        // The window clears (1 s), then stays quiet for restore_after (3 s).
        t = feed(&mut l, t, 100, 10);
        assert_eq!(level.step(), LoadStep::HalfRate);
        t = feed(&mut l, t, 30, 10);
        assert_eq!(level.step(), LoadStep::OverlayLean);
        feed(&mut l, t, 400, 10);
        assert_eq!(level.step(), LoadStep::Full);
        assert_eq!(level.descents(), 3);
        assert!(level.frames_at(LoadStep::HalfRate) > 0);
        assert_eq!(level.highest(), LoadStep::HalfRate);
    }
}
