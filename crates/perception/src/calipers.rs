//! Calipers of a component, the way sonographers place them: the long axis
//! is the largest distance across the finding (maximum Feret diameter), the
//! short axis the longest chord perpendicular to it.
//!
//! On pixels: the long axis is the largest distance between the centres of
//! the component's boundary pixels (over their convex hull); the short axis
//! is the widest spread of pixel centres across the long axis within any
//! 1-pixel slice along it. Each gets half a pixel, because a boundary
//! pixel's centre lies on average a quarter pixel inside the true edge
//! (on the phantom's exact label maps this leaves a mean error of about
//! 0.07 mm on the long axis). onnx/umind/evaluate.py measures the same way.

use sonoflow_core::findings::{Caliper, PixelSpacing, Point};

use crate::components::{Component, Components};

/// Reusable buffers for [`Scratch::measure`].
#[derive(Debug, Default)]
pub struct Scratch {
    points: Vec<(f32, f32)>,
    hull: Vec<(f32, f32)>,
    lo: Vec<f32>,
    hi: Vec<f32>,
}

fn cross(o: (f32, f32), a: (f32, f32), b: (f32, f32)) -> f32 {
    (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0)
}

impl Scratch {
    /// Room to measure any finding of a `width` x `height` frame without
    /// growing: a slice per pixel of the frame's diagonal, and boundary
    /// points for twice the frame's own perimeter (a finding more ragged
    /// than that still grows them, once). Measuring starts when a frame
    /// first has a spacing, which may be long after the first frame (a
    /// screen calibrated automatically, a DICOM file without regions before
    /// one with), so this is sized with the frame, not by the findings.
    pub fn reserve(&mut self, width: u32, height: u32) {
        let slices = f64::from(width).hypot(f64::from(height)) as usize + 2;
        let boundary = 4 * (width as usize + height as usize);
        self.lo.reserve(slices.saturating_sub(self.lo.len()));
        self.hi.reserve(slices.saturating_sub(self.hi.len()));
        self.points
            .reserve(boundary.saturating_sub(self.points.len()));
        self.hull.reserve(boundary.saturating_sub(self.hull.len()));
    }

    /// Long and short axis of component `c` of `parts`, lengths in mm.
    pub fn measure(
        &mut self,
        parts: &Components,
        c: Component,
        spacing: &PixelSpacing,
    ) -> (Caliper, Caliper) {
        self.measure_region(
            (c.x0, c.y0, c.x1, c.y1),
            |x, y| parts.contains(&c, x, y),
            spacing,
        )
    }

    /// Long and short axis of the pixels `inside` says belong to a finding,
    /// all of which lie in `bounds` (x0, y0, x1, y1; the ends exclusive).
    pub fn measure_region(
        &mut self,
        bounds: (u32, u32, u32, u32),
        inside: impl Fn(u32, u32) -> bool,
        spacing: &PixelSpacing,
    ) -> (Caliper, Caliper) {
        let (x0, y0, x1, y1) = bounds;
        let inside_at = |x: i64, y: i64| {
            x >= i64::from(x0)
                && y >= i64::from(y0)
                && x < i64::from(x1)
                && y < i64::from(y1)
                && inside(x as u32, y as u32)
        };
        self.points.clear();
        for y in y0..y1 {
            for x in x0..x1 {
                let (xi, yi) = (i64::from(x), i64::from(y));
                if inside_at(xi, yi)
                    && !(inside_at(xi - 1, yi)
                        && inside_at(xi + 1, yi)
                        && inside_at(xi, yi - 1)
                        && inside_at(xi, yi + 1))
                {
                    self.points.push((x as f32 + 0.5, y as f32 + 0.5));
                }
            }
        }
        self.convex_hull();
        let (mut best, mut a, mut b) = (0.0f32, (0.0, 0.0), (0.0, 0.0));
        for (i, &p) in self.hull.iter().enumerate() {
            for &q in &self.hull[i + 1..] {
                let d = (p.0 - q.0).powi(2) + (p.1 - q.1).powi(2);
                if d > best {
                    (best, a, b) = (d, p, q);
                }
            }
        }
        let length = best.sqrt();
        let pa = Point { x: a.0, y: a.1 };
        let pb = Point { x: b.0, y: b.1 };
        if length == 0.0 {
            let one = Caliper {
                a: pa,
                b: pb,
                length_mm: spacing.length_mm(
                    pa,
                    Point {
                        x: pa.x + 1.0,
                        y: pa.y,
                    },
                ),
            };
            return (one, one);
        }
        let (ux, uy) = ((b.0 - a.0) / length, (b.1 - a.1) / length);
        // Half a pixel more, shared between both ends.
        let extend = |p: Point, s: f32| Point {
            x: p.x + s * 0.25 * ux,
            y: p.y + s * 0.25 * uy,
        };
        let (la, lb) = (extend(pa, -1.0), extend(pb, 1.0));
        let long = Caliper {
            a: la,
            b: lb,
            length_mm: spacing.length_mm(la, lb),
        };

        let slices = length as usize + 1;
        self.lo.clear();
        self.lo.resize(slices, f32::INFINITY);
        self.hi.clear();
        self.hi.resize(slices, f32::NEG_INFINITY);
        for y in y0..y1 {
            for x in x0..x1 {
                if !inside(x, y) {
                    continue;
                }
                let (dx, dy) = (x as f32 + 0.5 - a.0, y as f32 + 0.5 - a.1);
                let t = (dx * ux + dy * uy).max(0.0);
                let w = -dx * uy + dy * ux;
                let k = (t as usize).min(slices - 1);
                self.lo[k] = self.lo[k].min(w);
                self.hi[k] = self.hi[k].max(w);
            }
        }
        let (mut width, mut at) = (0.0f32, 0usize);
        for k in 0..slices {
            if self.hi[k] - self.lo[k] > width {
                (width, at) = (self.hi[k] - self.lo[k], k);
            }
        }
        let t = at as f32 + 0.5;
        let point = |w: f32| Point {
            x: a.0 + t * ux - w * uy,
            y: a.1 + t * uy + w * ux,
        };
        let (sa, sb) = (point(self.lo[at] - 0.25), point(self.hi[at] + 0.25));
        let short = Caliper {
            a: sa,
            b: sb,
            length_mm: spacing.length_mm(sa, sb),
        };
        (long, short)
    }

    /// Andrew's monotone chain over `points` into `hull`.
    fn convex_hull(&mut self) {
        self.points
            .sort_unstable_by(|p, q| p.0.total_cmp(&q.0).then(p.1.total_cmp(&q.1)));
        self.points.dedup();
        self.hull.clear();
        if self.points.len() < 3 {
            self.hull.extend_from_slice(&self.points);
            return;
        }
        for &p in &self.points {
            while self.hull.len() >= 2
                && cross(
                    self.hull[self.hull.len() - 2],
                    self.hull[self.hull.len() - 1],
                    p,
                ) <= 0.0
            {
                self.hull.pop();
            }
            self.hull.push(p);
        }
        let lower = self.hull.len() + 1;
        for &p in self.points.iter().rev().skip(1) {
            while self.hull.len() >= lower
                && cross(
                    self.hull[self.hull.len() - 2],
                    self.hull[self.hull.len() - 1],
                    p,
                ) <= 0.0
            {
                self.hull.pop();
            }
            self.hull.push(p);
        }
        self.hull.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::FrameMask;

    fn ellipse_parts(a: f32, b: f32) -> Components {
        let m = FrameMask::from_logits(200, 120, |x, y| {
            let (dx, dy) = ((x as f32 + 0.5 - 100.0) / a, (y as f32 + 0.5 - 60.0) / b);
            if dx * dx + dy * dy <= 1.0 {
                1.0
            } else {
                -1.0
            }
        });
        let mut parts = Components::default();
        parts.label(&m, 1);
        parts
    }

    #[test]
    fn an_ellipse_measures_its_axes_within_a_pixel() {
        let parts = ellipse_parts(80.0, 30.0);
        let c = parts.iter().next().expect("one component");
        let (long, short) = Scratch::default().measure(&parts, c, &PixelSpacing::isotropic(0.1));
        assert!((long.length_mm - 16.0).abs() < 0.1, "{long:?}");
        assert!((short.length_mm - 6.0).abs() < 0.1, "{short:?}");
    }

    #[test]
    fn a_single_pixel_measures_one_pixel() {
        let m = FrameMask::from_logits(3, 3, |x, y| if (x, y) == (1, 1) { 1.0 } else { -1.0 });
        let mut parts = Components::default();
        parts.label(&m, 1);
        let c = parts.iter().next().expect("one");
        let (long, short) = Scratch::default().measure(&parts, c, &PixelSpacing::isotropic(0.5));
        assert_eq!((long.length_mm, short.length_mm), (0.5, 0.5));
    }
}
