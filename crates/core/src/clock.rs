//! Time, told to stages rather than asked for: every stage receives an
//! `Arc<dyn Clock>`, so tests can drive timing with a [`ManualClock`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Nanoseconds on a monotonic clock since that clock's origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub fn nanos(self) -> u64 {
        self.0
    }

    /// Time from `earlier` to `self`; zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

/// A monotonic time source.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The real clock: `Instant` since construction.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Timestamp {
        Timestamp(u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }
}

/// A clock that moves only when told to; for tests of timing behaviour.
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock to `at` (tests that replay given timestamps).
    pub fn set(&self, at: Timestamp) {
        self.nanos.store(at.0, Ordering::SeqCst);
    }

    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.nanos.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new();
        let t0 = clock.now();
        assert_eq!(clock.now(), t0);
        clock.advance(Duration::from_millis(5));
        assert_eq!(clock.now().saturating_since(t0), Duration::from_millis(5));
        assert_eq!(t0.saturating_since(clock.now()), Duration::ZERO);
    }

    #[test]
    fn manual_clock_is_set_to_given_timestamps() {
        let clock = ManualClock::new();
        clock.set(Timestamp(7_000_000_000));
        assert_eq!(clock.now(), Timestamp(7_000_000_000));
        clock.advance(Duration::from_nanos(5));
        assert_eq!(clock.now(), Timestamp(7_000_000_005));
        // Replaying an earlier timestamp moves it back: it is told, not asked.
        clock.set(Timestamp(1));
        assert_eq!(clock.now(), Timestamp(1));
    }

    #[test]
    fn monotonic_clock_counts_from_its_own_origin() {
        let early = MonotonicClock::new();
        let gap = Duration::from_millis(20);
        // A sleep lasts at least its duration on any machine: a lower bound only.
        std::thread::sleep(gap);
        let late = MonotonicClock::new();
        let late_now = late.now();
        let early_now = early.now();
        // Each clock's zero is its own construction, so the earlier one reads
        // at least `gap` more (read second, it can only have moved further).
        assert!(
            early_now.saturating_since(late_now) >= gap,
            "{early_now:?} vs {late_now:?}"
        );
        // And it never goes back.
        let mut last = early.now();
        for _ in 0..1000 {
            let now = early.now();
            assert!(now >= last, "{now:?} after {last:?}");
            last = now;
        }
    }
}
