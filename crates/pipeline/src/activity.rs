//! Whether the frame path is working on a frame right now, for work that
//! should run only in its gaps (the reasoning head yields between tokens
//! while a frame is in the model or being drawn). One atomic counter: the
//! frame path never waits on it, readers never lock.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Sections of frame work in progress (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct FrameActivity(Arc<AtomicU32>);

impl FrameActivity {
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks frame work in progress until the guard drops.
    pub fn enter(&self) -> ActivityGuard<'_> {
        self.0.fetch_add(1, Ordering::AcqRel);
        ActivityGuard(self)
    }

    /// Whether any frame work is in progress.
    pub fn busy(&self) -> bool {
        self.0.load(Ordering::Acquire) > 0
    }
}

/// Frame work in progress; ends on drop.
pub struct ActivityGuard<'a>(&'a FrameActivity);

impl Drop for ActivityGuard<'_> {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_while_any_guard_lives() {
        let a = FrameActivity::new();
        let seen_elsewhere = a.clone();
        assert!(!seen_elsewhere.busy());
        let g1 = a.enter();
        let g2 = a.enter();
        assert!(seen_elsewhere.busy());
        drop(g1);
        assert!(seen_elsewhere.busy());
        drop(g2);
        assert!(!seen_elsewhere.busy());
    }
}
