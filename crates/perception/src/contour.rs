//! The outline of a component, for drawing: marching squares over the
//! component's pixel centres, with each crossing placed where the logit
//! crosses zero between the two pixel centres (sub-pixel), then simplified
//! (Ramer-Douglas-Peucker) to within a tolerance in pixels.
//!
//! Only the outer boundary is traced (a lesion with a hole is outlined
//! once). Inside pixels that touch only diagonally are separate
//! (4-connectivity, as the components are), so saddle cells split.

use sonoflow_core::findings::Point;

use crate::components::{Component, Components};
use crate::mask::FrameMask;

/// Simplification tolerance for drawing, in pixels.
pub const SIMPLIFY_PX: f32 = 0.5;

/// Logits are clamped to this magnitude for interpolation (the mask holds
/// -inf outside the crop).
const LOGIT_CLAMP: f32 = 8.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edge {
    Top,
    Right,
    Bottom,
    Left,
}

/// The edge a line entering a cell through `entry` leaves by, for marching
/// squares case `case` (corner bits: top-left 8, top-right 4, bottom-right
/// 2, bottom-left 1).
fn exit(case: u8, entry: Edge) -> Option<Edge> {
    use Edge::*;
    let pairs: &[(Edge, Edge)] = match case {
        1 | 14 => &[(Left, Bottom)],
        2 | 13 => &[(Bottom, Right)],
        3 | 12 => &[(Left, Right)],
        4 | 11 => &[(Top, Right)],
        5 => &[(Left, Bottom), (Top, Right)],
        6 | 9 => &[(Top, Bottom)],
        7 | 8 => &[(Left, Top)],
        10 => &[(Left, Top), (Bottom, Right)],
        _ => &[],
    };
    pairs.iter().find_map(|&(a, b)| {
        if a == entry {
            Some(b)
        } else if b == entry {
            Some(a)
        } else {
            None
        }
    })
}

/// Reusable buffers for tracing and simplifying.
#[derive(Debug, Default)]
pub struct Tracer {
    raw: Vec<Point>,
    keep: Vec<bool>,
    stack: Vec<(usize, usize)>,
}

impl Tracer {
    /// Room for contours of up to `points` raw points.
    pub fn reserve(&mut self, points: usize) {
        self.raw.reserve(points);
        self.keep.reserve(points);
        self.stack.reserve(points);
    }

    /// Appends the simplified outer contour of component `c` (a closed
    /// polygon, first point not repeated) to `out`; returns how many points.
    pub fn trace(
        &mut self,
        mask: &FrameMask,
        parts: &Components,
        c: &Component,
        tolerance: f32,
        out: &mut Vec<Point>,
    ) -> usize {
        self.trace_raw(mask, parts, c);
        self.simplify(tolerance, out)
    }

    fn trace_raw(&mut self, mask: &FrameMask, parts: &Components, c: &Component) {
        self.raw.clear();
        let (w, h) = (i64::from(parts.width), i64::from(parts.height));
        let member = |x: i64, y: i64| {
            x >= 0 && y >= 0 && x < w && y < h && parts.contains(c, x as u32, y as u32)
        };
        // Logit over the mask's cut at a pixel centre, signed by
        // membership, never zero (the outline crosses where it is 0).
        let value = |x: i64, y: i64| -> f32 {
            let l = if x >= 0 && y >= 0 && x < w && y < h {
                mask.logits[(y * w + x) as usize] - mask.cut
            } else {
                -1.0
            };
            let l = if l.is_nan() { 0.0 } else { l };
            if member(x, y) {
                l.clamp(1e-3, LOGIT_CLAMP)
            } else {
                l.clamp(-LOGIT_CLAMP, -1e-3)
            }
        };
        let case = |i: i64, j: i64| -> u8 {
            u8::from(member(i, j)) << 3
                | u8::from(member(i + 1, j)) << 2
                | u8::from(member(i + 1, j + 1)) << 1
                | u8::from(member(i, j + 1))
        };
        let crossing = |(ax, ay): (i64, i64), (bx, by): (i64, i64)| {
            let (va, vb) = (value(ax, ay), value(bx, by));
            let t = va / (va - vb);
            Point {
                x: ax as f32 + 0.5 + t * (bx - ax) as f32,
                y: ay as f32 + 0.5 + t * (by - ay) as f32,
            }
        };
        // The top row's leftmost pixel: the cell above-left of it has only
        // its bottom-right corner inside.
        let y0 = i64::from(c.y0);
        let Some(x0) = (c.x0..c.x1).map(i64::from).find(|&x| member(x, y0)) else {
            return;
        };
        let start = (x0 - 1, y0 - 1);
        let (mut cell, mut entry) = (start, Edge::Bottom);
        let limit = 4 * (w + 2) * (h + 2);
        for _ in 0..limit {
            let (i, j) = cell;
            let Some(out_edge) = exit(case(i, j), entry) else {
                return;
            };
            let (p, next, next_entry) = match out_edge {
                Edge::Top => (crossing((i, j), (i + 1, j)), (i, j - 1), Edge::Bottom),
                Edge::Right => (crossing((i + 1, j), (i + 1, j + 1)), (i + 1, j), Edge::Left),
                Edge::Bottom => (crossing((i, j + 1), (i + 1, j + 1)), (i, j + 1), Edge::Top),
                Edge::Left => (crossing((i, j), (i, j + 1)), (i - 1, j), Edge::Right),
            };
            self.raw.push(p);
            (cell, entry) = (next, next_entry);
            if cell == start && entry == Edge::Bottom {
                return;
            }
        }
    }

    /// Ramer-Douglas-Peucker over the closed `raw` polygon into `out`.
    fn simplify(&mut self, tolerance: f32, out: &mut Vec<Point>) -> usize {
        let n = self.raw.len();
        if n < 4 {
            out.extend_from_slice(&self.raw);
            return n;
        }
        self.keep.clear();
        self.keep.resize(n, false);
        // Split the ring at point 0 and the point farthest from it.
        let far = (1..n)
            .max_by(|&a, &b| {
                self.raw[0]
                    .distance(self.raw[a])
                    .total_cmp(&self.raw[0].distance(self.raw[b]))
            })
            .unwrap_or(n / 2);
        self.keep[0] = true;
        self.keep[far] = true;
        self.stack.clear();
        self.stack.push((0, far));
        self.stack.push((far, n));
        while let Some((a, b)) = self.stack.pop() {
            let (pa, pb) = (self.raw[a], self.raw[b % n]);
            let mut best = (0.0f32, 0usize);
            for k in a + 1..b {
                let d = distance_to_segment(self.raw[k], pa, pb);
                if d > best.0 {
                    best = (d, k);
                }
            }
            if best.0 > tolerance {
                self.keep[best.1] = true;
                self.stack.push((a, best.1));
                self.stack.push((best.1, b));
            }
        }
        let before = out.len();
        out.extend(
            self.raw
                .iter()
                .zip(&self.keep)
                .filter(|(_, &k)| k)
                .map(|(p, _)| *p),
        );
        out.len() - before
    }
}

fn distance_to_segment(p: Point, a: Point, b: Point) -> f32 {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let len2 = dx * dx + dy * dy;
    if len2 == 0.0 {
        return p.distance(a);
    }
    let t = (((p.x - a.x) * dx + (p.y - a.y) * dy) / len2).clamp(0.0, 1.0);
    p.distance(Point {
        x: a.x + t * dx,
        y: a.y + t * dy,
    })
}

/// Area of a closed polygon (shoelace), in square pixels.
pub fn polygon_area(points: &[Point]) -> f32 {
    let n = points.len();
    let twice: f32 = (0..n)
        .map(|i| {
            let (p, q) = (points[i], points[(i + 1) % n]);
            p.x * q.y - q.x * p.y
        })
        .sum();
    twice.abs() / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts_of(m: &FrameMask) -> Components {
        let mut parts = Components::default();
        parts.label(m, 1);
        parts
    }

    fn contour_of(m: &FrameMask, tolerance: f32) -> Vec<Vec<Point>> {
        let parts = parts_of(m);
        let mut tracer = Tracer::default();
        parts
            .iter()
            .map(|c| {
                let mut out = Vec::new();
                tracer.trace(m, &parts, &c, tolerance, &mut out);
                out
            })
            .collect()
    }

    #[test]
    fn a_disc_traces_to_a_closed_polygon_of_its_area_and_radius() {
        // Logits are the signed distance to a circle of radius 20 at (50, 40).
        let m = FrameMask::from_logits(100, 80, |x, y| {
            20.0 - ((x as f32 + 0.5 - 50.0).powi(2) + (y as f32 + 0.5 - 40.0).powi(2)).sqrt()
        });
        let contours = contour_of(&m, 0.0);
        assert_eq!(contours.len(), 1);
        let ring = &contours[0];
        let area = polygon_area(ring);
        let expected = std::f32::consts::PI * 400.0;
        assert!(
            (area - expected).abs() / expected < 0.01,
            "area {area} vs {expected}"
        );
        for p in ring {
            let r = ((p.x - 50.0).powi(2) + (p.y - 40.0).powi(2)).sqrt();
            assert!((r - 20.0).abs() < 0.05, "point {p:?} at radius {r}");
        }
        let simplified = contour_of(&m, SIMPLIFY_PX);
        assert!(
            simplified[0].len() < ring.len() / 2 && simplified[0].len() >= 8,
            "{} of {}",
            simplified[0].len(),
            ring.len()
        );
    }

    #[test]
    fn a_square_at_the_frame_edge_and_a_full_mask_close() {
        let m = FrameMask::from_logits(10, 10, |x, y| if x < 4 && y < 3 { 1.0 } else { -1.0 });
        let ring = &contour_of(&m, 0.01)[0];
        // Crossings halfway between centres: a 4 x 3 box, corners cut.
        assert!(
            (polygon_area(ring) - 11.5).abs() < 1e-3,
            "{}",
            polygon_area(ring)
        );
        let full = FrameMask::from_logits(6, 5, |_, _| 1.0);
        let ring = &contour_of(&full, 0.0)[0];
        assert!(ring
            .iter()
            .all(|p| p.x >= -0.01 && p.y >= -0.01 && p.x <= 6.01 && p.y <= 5.01));
        assert!(ring.len() >= 4);
    }

    #[test]
    fn diagonal_neighbours_are_separate_contours_and_nan_logits_do_not_panic() {
        let m = FrameMask::from_logits(6, 6, |x, y| {
            if (x, y) == (1, 1) || (x, y) == (2, 2) {
                f32::NAN.max(1.0)
            } else {
                f32::NAN
            }
        });
        let contours = contour_of(&m, 0.0);
        assert_eq!(contours.len(), 2);
        for ring in contours {
            assert_eq!(ring.len(), 4, "{ring:?}");
            assert!(ring.iter().all(|p| p.x.is_finite() && p.y.is_finite()));
        }
    }
}
