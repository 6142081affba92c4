//! How far to trust a caliper. Two sources, combined in quadrature:
//!
//! - the pixel: each end is placed to within half a pixel, so a length is
//!   good to about half a pixel along its direction (in mm, from the
//!   frame's pixel spacing);
//! - the threshold: the mask is cut at probability 0.5 (`[perception]
//!   mask_threshold`); the finding is
//!   re-cut at a lower and a higher probability (0.3 and 0.7 by default)
//!   around its box and re-measured, and the larger change in length is
//!   how much the model's own doubt about the edge moves the caliper.
//!
//! At the low threshold the finding may grow into a neighbour (counted:
//! that is real doubt); at the high one it may split (the largest piece
//! that overlaps the finding is measured) or vanish (then the whole length
//! is in doubt).

use sonoflow_core::findings::{Caliper, PixelSpacing};

use crate::calipers;
use crate::components::{Component, Components};
use crate::mask::FrameMask;

/// The probability band a finding is re-cut at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThresholdBand {
    pub low: f32,
    pub high: f32,
}

impl Default for ThresholdBand {
    fn default() -> Self {
        Self {
            low: 0.3,
            high: 0.7,
        }
    }
}

/// The logit of probability `p`.
pub fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-4, 1.0 - 1e-4);
    (p / (1.0 - p)).ln()
}

/// Half a pixel along the caliper's direction, in mm.
pub fn pixel_term_mm(c: &Caliper, spacing: &PixelSpacing) -> f64 {
    let (dx, dy) = (f64::from(c.b.x - c.a.x), f64::from(c.b.y - c.a.y));
    let len = (dx * dx + dy * dy).sqrt();
    if len == 0.0 {
        return 0.5 * spacing.x_mm.max(spacing.y_mm);
    }
    0.5 * ((dx / len * spacing.x_mm).powi(2) + (dy / len * spacing.y_mm).powi(2)).sqrt()
}

/// Reusable buffers for re-cutting findings.
#[derive(Debug, Default)]
pub struct Recut {
    /// Piece label per pixel of the region (0: none).
    labels: Vec<u32>,
    stack: Vec<u32>,
    measure: calipers::Scratch,
}

impl Recut {
    /// Room for re-cutting findings of up to `pixels` (box and margin).
    pub fn reserve(&mut self, pixels: usize) {
        self.labels.reserve(pixels);
        self.stack.reserve(pixels);
    }

    /// Room to measure the re-cut pieces of a `width` x `height` frame
    /// ([`calipers::Scratch::reserve`]).
    pub fn reserve_calipers(&mut self, width: u32, height: u32) {
        self.measure.reserve(width, height);
    }

    /// Uncertainties (mm) of the long and short axis `measured` on
    /// component `c` of `parts`.
    pub fn uncertainty(
        &mut self,
        mask: &FrameMask,
        parts: &Components,
        c: &Component,
        measured: (&Caliper, &Caliper),
        band: ThresholdBand,
        spacing: &PixelSpacing,
    ) -> (f64, f64) {
        let (mut long_dev, mut short_dev) = (0.0f64, 0.0f64);
        for p in [band.low, band.high] {
            let (l, s) = match self.measure_at(mask, parts, c, logit(p), spacing) {
                Some((l, s)) => (l.length_mm, s.length_mm),
                None => (0.0, 0.0),
            };
            long_dev = long_dev.max((l - measured.0.length_mm).abs());
            short_dev = short_dev.max((s - measured.1.length_mm).abs());
        }
        let combine =
            |dev: f64, c: &Caliper| (dev * dev + pixel_term_mm(c, spacing).powi(2)).sqrt();
        (
            combine(long_dev, measured.0),
            combine(short_dev, measured.1),
        )
    }

    /// Calipers of the finding cut at logit `threshold` inside its box
    /// grown by a margin; None when nothing of it is left.
    fn measure_at(
        &mut self,
        mask: &FrameMask,
        parts: &Components,
        c: &Component,
        threshold: f32,
        spacing: &PixelSpacing,
    ) -> Option<(Caliper, Caliper)> {
        let margin = 8u32.max((c.x1 - c.x0).max(c.y1 - c.y0) / 4);
        let (cx0, cy0, cw, ch) = mask.crop;
        let x0 = c.x0.saturating_sub(margin).max(cx0);
        let y0 = c.y0.saturating_sub(margin).max(cy0);
        let x1 = (c.x1 + margin).min(cx0 + cw);
        let y1 = (c.y1 + margin).min(cy0 + ch);
        let (rw, rh) = (x1.checked_sub(x0)?, y1.checked_sub(y0)?);
        self.labels.clear();
        self.labels.resize((rw * rh) as usize, 0);
        let above = |x: u32, y: u32| mask.logits[(y * mask.width + x) as usize] > threshold;
        let (mut best, mut best_area, mut next) = (0u32, 0u32, 1u32);
        // Pieces seeded from the finding's own pixels, so only what overlaps it counts.
        for y in c.y0..c.y1 {
            for x in c.x0..c.x1 {
                let i = ((y - y0) * rw + (x - x0)) as usize;
                if !parts.contains(c, x, y) || !above(x, y) || self.labels[i] != 0 {
                    continue;
                }
                let area = self.fill(x - x0, y - y0, (x0, y0, rw, rh), next, &above);
                if area > best_area {
                    (best, best_area) = (next, area);
                }
                next += 1;
            }
        }
        if best == 0 {
            return None;
        }
        let labels = &self.labels;
        let inside = |x: u32, y: u32| labels[((y - y0) * rw + (x - x0)) as usize] == best;
        Some(
            self.measure
                .measure_region((x0, y0, x1, y1), inside, spacing),
        )
    }

    /// 4-connected flood fill of region pixels above the threshold; returns the area.
    fn fill(
        &mut self,
        x: u32,
        y: u32,
        region: (u32, u32, u32, u32),
        label: u32,
        above: &impl Fn(u32, u32) -> bool,
    ) -> u32 {
        let (x0, y0, rw, rh) = region;
        self.stack.clear();
        self.stack.push(y * rw + x);
        self.labels[(y * rw + x) as usize] = label;
        let mut area = 0;
        while let Some(p) = self.stack.pop() {
            area += 1;
            let (px, py) = (p % rw, p / rw);
            let neighbours = [
                (px > 0).then(|| p - 1),
                (px + 1 < rw).then(|| p + 1),
                (py > 0).then(|| p - rw),
                (py + 1 < rh).then(|| p + rw),
            ];
            for q in neighbours.into_iter().flatten() {
                if self.labels[q as usize] == 0 && above(x0 + q % rw, y0 + q / rw) {
                    self.labels[q as usize] = label;
                    self.stack.push(q);
                }
            }
        }
        area
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_mask_threshold_cuts_at_logit_zero_exactly() {
        // The masks were cut at `logit > 0.0` before the cut became a
        // setting; the default must give the same masks bit for bit.
        assert_eq!(logit(crate::MASK_THRESHOLD), 0.0);
    }

    /// A disc of radius `r` whose logit falls off over `soft` pixels at the edge.
    fn soft_disc(r: f32, soft: f32) -> FrameMask {
        FrameMask::from_logits(120, 100, |x, y| {
            let d = ((x as f32 + 0.5 - 60.0).powi(2) + (y as f32 + 0.5 - 50.0).powi(2)).sqrt();
            (r - d) / soft
        })
    }

    fn uncertainty_of(m: &FrameMask) -> ((Caliper, Caliper), (f64, f64)) {
        let mut parts = Components::default();
        parts.label(m, 1);
        let c = parts.iter().next().expect("one finding");
        let spacing = PixelSpacing::isotropic(0.1);
        let (l, s) = calipers::Scratch::default().measure(&parts, c, &spacing);
        let u = Recut::default().uncertainty(
            m,
            &parts,
            &c,
            (&l, &s),
            ThresholdBand::default(),
            &spacing,
        );
        ((l, s), u)
    }

    #[test]
    fn a_soft_edge_is_less_certain_than_a_sharp_one() {
        let (_, sharp) = uncertainty_of(&soft_disc(20.0, 0.05));
        let (_, soft) = uncertainty_of(&soft_disc(20.0, 4.0));
        // Sharp: only the pixel term (half of 0.1 mm).
        assert!((sharp.0 - 0.05).abs() < 0.011, "{sharp:?}");
        // Soft: logit 0.85 is 3.4 px in from the edge, both ends: ~0.7 mm.
        assert!(soft.0 > 0.5 && soft.0 < 0.9, "{soft:?}");
        assert!(soft.1 > 0.5 && soft.1 < 0.9, "{soft:?}");
    }

    #[test]
    fn a_finding_that_vanishes_at_the_high_threshold_is_wholly_uncertain() {
        let ((l, _), u) = uncertainty_of(&FrameMask::from_logits(40, 40, |x, y| {
            if (10..20).contains(&x) && (10..20).contains(&y) {
                0.2
            } else {
                -5.0
            }
        }));
        assert!(u.0 >= l.length_mm, "{u:?} vs {l:?}");
    }
}
