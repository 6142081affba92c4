//! The latency HUD's numbers: frames per second and latency percentiles
//! over the last [`WINDOW`] frames drawn, from a fixed ring (no allocation).

use std::time::Duration;

use sonoflow_core::Timestamp;

/// Frames the HUD's figures cover (about 4 s at 30 fps).
pub const WINDOW: usize = 120;

/// The HUD's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HudSummary {
    pub fps: f32,
    pub p50_ms: f32,
    pub p99_ms: f32,
}

/// The last frames' draw times and latencies (capture to drawn).
#[derive(Debug, Clone)]
pub struct Hud {
    at: [Timestamp; WINDOW],
    latency_ms: [f32; WINDOW],
    next: usize,
    filled: usize,
}

impl Default for Hud {
    fn default() -> Self {
        Self {
            at: [Timestamp::default(); WINDOW],
            latency_ms: [0.0; WINDOW],
            next: 0,
            filled: 0,
        }
    }
}

impl Hud {
    pub fn add(&mut self, at: Timestamp, latency: Duration) {
        self.at[self.next] = at;
        self.latency_ms[self.next] = latency.as_secs_f32() * 1000.0;
        self.next = (self.next + 1) % WINDOW;
        self.filled = (self.filled + 1).min(WINDOW);
    }

    pub fn summary(&self) -> HudSummary {
        if self.filled == 0 {
            return HudSummary::default();
        }
        let newest = self.at[(self.next + WINDOW - 1) % WINDOW];
        let oldest = self.at[(self.next + WINDOW - self.filled) % WINDOW];
        let span = newest.saturating_since(oldest).as_secs_f32();
        let fps = if span > 0.0 {
            (self.filled - 1) as f32 / span
        } else {
            0.0
        };
        let mut sorted = [0.0f32; WINDOW];
        let window = &mut sorted[..self.filled];
        window.copy_from_slice(&self.latency_ms[..self.filled]);
        window.sort_unstable_by(f32::total_cmp);
        let at =
            |q: f32| window[((q * self.filled as f32).ceil() as usize).clamp(1, self.filled) - 1];
        HudSummary {
            fps,
            p50_ms: at(0.5),
            p99_ms: at(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirty_frames_a_second_and_their_latency_percentiles() {
        let mut hud = Hud::default();
        assert_eq!(hud.summary(), HudSummary::default());
        for k in 0..200u64 {
            let ms = if k % 50 == 0 { 90 } else { 20 + k % 10 };
            hud.add(Timestamp(k * 33_333_333), Duration::from_millis(ms));
        }
        let s = hud.summary();
        assert!((s.fps - 30.0).abs() < 0.01, "{s:?}");
        assert_eq!(s.p50_ms, 25.0);
        assert_eq!(s.p99_ms, 90.0);
    }
}
