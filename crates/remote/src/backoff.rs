//! How long to leave a server alone after it failed: doubling from a first
//! pause to a cap, reset by a success. The caller asks [`Backoff::ready`]
//! before trying; meanwhile it uses its fallback.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
    pause: Duration,
    until: Option<Instant>,
}

impl Backoff {
    pub fn new(first: Duration, cap: Duration) -> Self {
        Self {
            first,
            cap,
            pause: first,
            until: None,
        }
    }

    /// Whether a try may be made now.
    pub fn ready(&self, now: Instant) -> bool {
        self.until.is_none_or(|until| now >= until)
    }

    /// A try failed at `now`: wait the pause, then twice as long next time.
    pub fn failed(&mut self, now: Instant) {
        self.until = Some(now + self.pause);
        self.pause = (self.pause * 2).min(self.cap);
    }

    /// A try succeeded: the next failure starts from the first pause.
    pub fn succeeded(&mut self) {
        self.pause = self.first;
        self.until = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_to_the_cap_and_a_success_resets_them() {
        let t0 = Instant::now();
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(2));
        assert!(b.ready(t0));
        b.failed(t0);
        assert!(!b.ready(t0 + Duration::from_millis(499)));
        assert!(b.ready(t0 + Duration::from_millis(500)));
        b.failed(t0);
        b.failed(t0);
        b.failed(t0);
        assert!(!b.ready(t0 + Duration::from_millis(1999)));
        assert!(b.ready(t0 + Duration::from_secs(2)), "capped at 2 s");
        b.succeeded();
        assert!(b.ready(t0));
    }
}
