//! The running per-pixel change statistic: in how many of the frames seen
//! since the last restart each pixel differed from the first of them (the
//! reference). Speckle changes as tissue and probe move, and the longer
//! since the reference the more it has changed (a slow probe still moves
//! it past the threshold within a few frames, where frame-to-frame
//! differences stay below it); the screen's UI (text, rulers, markers)
//! never does. One pass per frame, branch-free over each row so that it
//! vectorises; three bytes of state per pixel.

use crate::view::FrameView;

/// A pixel "changed" when its luma differs by more than this from the
/// reference: above the flicker of a video encoder's quantisation, far
/// below what moving speckle does.
const CHANGE_THRESHOLD: u8 = 3;

/// A pixel is "moving" when it differed in at least this fraction of the
/// comparisons, and in two at least (speckle in most, a still UI in none).
const MOVING_FRACTION: f32 = 0.3;

#[derive(Debug, Default)]
pub(crate) struct MotionMap {
    pub width: usize,
    pub height: usize,
    /// The last frame's luma, row after row (no padding).
    luma: Vec<u8>,
    /// The luma of the frame the counts compare with.
    reference: Vec<u8>,
    /// Per pixel: comparisons in which it differed from the reference.
    count: Vec<u8>,
    /// Comparisons made since the restart.
    comparisons: u32,
    has_frame: bool,
    /// One row of luma for RGBA frames.
    row: Vec<u8>,
}

impl MotionMap {
    /// Forgets everything; sizes the buffers for `width × height` (this
    /// allocates only when the size grows).
    pub fn restart(&mut self, width: usize, height: usize) {
        self.width = width;
        self.height = height;
        let n = width * height;
        self.luma.clear();
        self.luma.resize(n, 0);
        self.reference.clear();
        self.reference.resize(n, 0);
        self.count.clear();
        self.count.resize(n, 0);
        self.row.clear();
        self.row.resize(width, 0);
        self.comparisons = 0;
        self.has_frame = false;
    }

    /// Forgets the counts; the last frame becomes the reference.
    pub fn restart_from_last(&mut self) {
        self.count.fill(0);
        self.reference.copy_from_slice(&self.luma);
        self.comparisons = 0;
    }

    /// Compares `frame` with the reference (or makes it the reference, the
    /// first time) and keeps it as the last frame.
    pub fn update(&mut self, frame: &FrameView<'_>) {
        let w = self.width;
        let compare = self.has_frame;
        for y in 0..self.height {
            let cur = frame.luma_row(y, &mut self.row);
            let rows = y * w..(y + 1) * w;
            let last = &mut self.luma[rows.clone()];
            if compare {
                let count = &mut self.count[rows.clone()];
                let reference = &self.reference[rows];
                for (((n, l), &r), &c) in count
                    .iter_mut()
                    .zip(last.iter_mut())
                    .zip(reference)
                    .zip(cur)
                {
                    *n = n.saturating_add(u8::from(c.abs_diff(r) > CHANGE_THRESHOLD));
                    *l = c;
                }
            } else {
                last.copy_from_slice(cur);
                self.reference[rows].copy_from_slice(cur);
            }
        }
        if compare {
            self.comparisons += 1;
        }
        self.has_frame = true;
    }

    pub fn comparisons(&self) -> u32 {
        self.comparisons
    }

    /// The count at or above which a pixel is moving.
    pub fn threshold(&self) -> u8 {
        ((self.comparisons as f32 * MOVING_FRACTION).ceil() as u32).clamp(2, 255) as u8
    }

    /// The per-pixel counts, row after row.
    pub fn counts(&self) -> &[u8] {
        &self.count
    }

    /// The last frame's luma, row after row.
    pub fn luma(&self) -> &[u8] {
        &self.luma
    }

    #[inline]
    pub fn is_moving(&self, x: usize, y: usize) -> bool {
        self.count[y * self.width + x] >= self.threshold()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonoflow_core::{FrameFormat, PixelFormat};

    #[test]
    fn what_changes_is_moving_and_what_stays_is_not() {
        let format = FrameFormat::new(PixelFormat::Gray8, 4, 1).expect("format");
        let mut map = MotionMap::default();
        map.restart(4, 1);
        for i in 0..10u8 {
            // A still pixel, a moving one, one that flickers by two levels.
            let px = [9, 9, i * 20, if i % 2 == 0 { 100 } else { 102 }];
            map.update(&FrameView::new(&px, format, 4).expect("view"));
        }
        assert_eq!(map.comparisons(), 9);
        assert!(!map.is_moving(0, 0));
        assert!(map.is_moving(2, 0));
        // A flicker of two levels is not motion.
        assert!(!map.is_moving(3, 0));
        assert_eq!(map.luma(), &[9, 9, 180, 102]);
    }
}
