//! 4-connected components of a [`FrameMask`], by flood fill over a label
//! image; components under a minimum area are dropped (their pixels keep
//! label 0).

use sonoflow_core::findings::BoundingBox;

use crate::mask::FrameMask;

/// At most this many components per frame are kept (a mask this noisy is
/// not a finding list anyone can read; the rest are dropped).
pub const MAX_COMPONENTS: usize = 256;

/// One component: its label in [`Components::labels`], pixel count, box and strongest logit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Component {
    pub label: u32,
    pub area: u32,
    /// Pixel bounds; `x1`, `y1` exclusive.
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
    pub max_logit: f32,
}

impl Component {
    pub fn bbox(&self) -> BoundingBox {
        BoundingBox {
            x0: self.x0 as f32,
            y0: self.y0 as f32,
            x1: self.x1 as f32,
            y1: self.y1 as f32,
        }
    }

    /// Sigmoid of the strongest logit.
    pub fn confidence(&self) -> f32 {
        1.0 / (1.0 + (-self.max_logit).exp())
    }
}

/// The components of the last labelled mask, largest first.
#[derive(Debug, Default)]
pub struct Components {
    pub width: u32,
    pub height: u32,
    /// Component label per pixel (0: none).
    pub labels: Vec<u32>,
    found: Vec<Component>,
    stack: Vec<u32>,
    /// Rows the last labelling wrote to (all else is 0 already).
    dirty_rows: (u32, u32),
}

impl Components {
    /// Labels the mask's components of at least `min_area` pixels.
    pub fn label(&mut self, mask: &FrameMask, min_area: u32) {
        let (w, h) = (mask.width, mask.height);
        let n = (w * h) as usize;
        if self.labels.len() != n || self.width != w {
            self.labels.clear();
            self.labels.resize(n, 0);
            self.stack.reserve(n);
            self.found.reserve(MAX_COMPONENTS);
            self.dirty_rows = (0, 0);
        }
        self.width = w;
        self.height = h;
        let (d0, d1) = self.dirty_rows;
        self.labels[(d0 * w) as usize..(d1 * w) as usize].fill(0);
        self.dirty_rows = (u32::MAX, 0);
        self.found.clear();
        let (cx, cy, cw, ch) = mask.crop;
        let mut next = 1u32;
        for y in cy..cy + ch {
            for x in cx..cx + cw {
                let i = (y * w + x) as usize;
                if mask.inside[i] == 0 || self.labels[i] != 0 {
                    continue;
                }
                let c = self.fill(mask, x, y, next);
                self.dirty_rows = (self.dirty_rows.0.min(c.y0), self.dirty_rows.1.max(c.y1));
                if c.area >= min_area && self.found.len() < MAX_COMPONENTS {
                    self.found.push(c);
                    next += 1;
                } else {
                    self.clear(c);
                }
            }
        }
        if self.dirty_rows.0 > self.dirty_rows.1 {
            self.dirty_rows = (0, 0);
        }
        self.found
            .sort_unstable_by(|a, b| b.area.cmp(&a.area).then(a.label.cmp(&b.label)));
    }

    fn fill(&mut self, mask: &FrameMask, x: u32, y: u32, label: u32) -> Component {
        let w = self.width;
        let mut c = Component {
            label,
            area: 0,
            x0: x,
            y0: y,
            x1: x + 1,
            y1: y + 1,
            max_logit: f32::NEG_INFINITY,
        };
        self.stack.clear();
        self.stack.push(y * w + x);
        self.labels[(y * w + x) as usize] = label;
        while let Some(p) = self.stack.pop() {
            let (px, py) = (p % w, p / w);
            c.area += 1;
            c.x0 = c.x0.min(px);
            c.y0 = c.y0.min(py);
            c.x1 = c.x1.max(px + 1);
            c.y1 = c.y1.max(py + 1);
            c.max_logit = c.max_logit.max(mask.logits[p as usize]);
            let neighbours = [
                (px > 0).then(|| p - 1),
                (px + 1 < w).then(|| p + 1),
                (py > 0).then(|| p - w),
                (py + 1 < self.height).then(|| p + w),
            ];
            for q in neighbours.into_iter().flatten() {
                if mask.inside[q as usize] != 0 && self.labels[q as usize] == 0 {
                    self.labels[q as usize] = label;
                    self.stack.push(q);
                }
            }
        }
        c
    }

    /// Marks a dropped component's pixels as visited-but-unlabelled
    /// (u32::MAX), so the scan does not flood it again.
    fn clear(&mut self, c: Component) {
        for y in c.y0..c.y1 {
            for x in c.x0..c.x1 {
                let i = (y * self.width + x) as usize;
                if self.labels[i] == c.label {
                    self.labels[i] = u32::MAX;
                }
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = Component> + '_ {
        self.found.iter().copied()
    }

    pub fn len(&self) -> usize {
        self.found.len()
    }

    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// Whether pixel (x, y) belongs to component `c`.
    pub fn contains(&self, c: &Component, x: u32, y: u32) -> bool {
        self.labels[(y * self.width + x) as usize] == c.label
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(w: u32, h: u32, on: impl Fn(u32, u32) -> bool) -> FrameMask {
        FrameMask::from_logits(w, h, |x, y| if on(x, y) { 2.0 } else { -2.0 })
    }

    #[test]
    fn two_blobs_and_specks_give_two_components_largest_first() {
        let m = mask(40, 20, |x, y| {
            (2..12).contains(&x) && (2..8).contains(&y)
                || (20..26).contains(&x) && (10..16).contains(&y)
                || (x == 35 && y == 3)
        });
        let mut c = Components::default();
        c.label(&m, 5);
        let found: Vec<Component> = c.iter().collect();
        assert_eq!(found.len(), 2);
        assert_eq!(
            (
                found[0].area,
                found[0].x0,
                found[0].y0,
                found[0].x1,
                found[0].y1
            ),
            (60, 2, 2, 12, 8)
        );
        assert_eq!(found[1].area, 36);
        assert!(!c.contains(&found[0], 35, 3));
        assert!((found[0].confidence() - 0.8808).abs() < 1e-3);
    }

    #[test]
    fn empty_and_full_masks() {
        let mut c = Components::default();
        c.label(&mask(8, 8, |_, _| false), 1);
        assert!(c.is_empty());
        c.label(&mask(8, 8, |_, _| true), 1);
        assert_eq!(c.iter().map(|c| c.area).collect::<Vec<_>>(), vec![64]);
    }
}
