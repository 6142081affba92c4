//! Notices, cheaply and on every frame, that a locked calibration no longer
//! fits the screen: the depth knob redraws the ruler, a new layout moves
//! the image, a narrower sector leaves the old edges still.
//!
//! Three checks, a few thousand pixel reads in all:
//! - the ruler strip against its snapshot at lock (ticks moved or gone);
//! - a ring of points just outside the region against their snapshot (the
//!   still screen around the image changed, or the image grew into it);
//! - a ring just inside the region against the frame before, edge by edge,
//!   beside points spread over its interior: when the interior keeps moving
//!   and one edge stops, the image has shrunk (when all stop, the image is
//!   frozen, and a frozen image keeps its calibration).

use sonoflow_core::findings::ImageRegion;

use crate::motion::MotionMap;
use crate::view::FrameView;

/// A still pixel "differs" from its snapshot by more than this (an
/// encoder's flicker stays well below; a tick or an image edge does not).
const DIFFERS: u8 = 40;
/// A moving pixel "changed" from the frame before by more than this.
const CHANGED: u8 = 3;
/// How far outside and inside the region's edge the rings run, in pixels.
const RING_OFFSET: f64 = 3.0;
/// Points per edge of the rings.
const RING_POINTS: usize = 48;
/// Interior points per side of the grid.
const INTERIOR_GRID: usize = 10;
/// Weight of the newest frame in the moving averages.
const EMA: f32 = 0.2;
/// Frames an edge of the inner ring must stay still while the interior moves.
const SHRUNK_AFTER: u32 = 10;
/// Edges with fewer moving ring points than this are not judged.
const MIN_EDGE_POINTS: usize = 8;
/// A region's edges: a rectangle's four sides, a fan's two arcs and two sides.
const EDGES: usize = 4;

/// What changed on the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScreenChange {
    /// The frame's size or pixel format.
    Format,
    /// The depth ruler's ticks.
    Ruler,
    /// The still screen around the image region.
    AroundRegion,
    /// The image stopped moving at its edges while its middle moves.
    RegionShrank,
}

impl ScreenChange {
    pub fn describe(self) -> &'static str {
        match self {
            ScreenChange::Format => "the frame size or pixel format changed",
            ScreenChange::Ruler => "the depth ruler changed (depth or zoom)",
            ScreenChange::AroundRegion => "the screen around the image changed (a new layout)",
            ScreenChange::RegionShrank => "the image's edges stopped moving (a narrower image)",
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Watch {
    strip: [usize; 4],
    strip_ref: Vec<u8>,
    outside: Vec<(u32, u32)>,
    outside_ref: Vec<u8>,
    /// Points of the inner ring and the edge each belongs to.
    inside: Vec<(u32, u32)>,
    inside_edge: Vec<u8>,
    inside_last: Vec<u8>,
    interior: Vec<(u32, u32)>,
    interior_last: Vec<u8>,
    edge_points: [usize; EDGES],
    edge_changed: [usize; EDGES],
    ema_edges: [f32; EDGES],
    ema_interior: f32,
    quiet: u32,
}

impl Watch {
    /// Sizes the point lists, and the ruler strip for a strip of up to 64
    /// columns, for a `width × height` frame.
    pub fn reserve(&mut self, width: usize, height: usize) {
        let ring = EDGES * RING_POINTS;
        self.strip_ref.clear();
        self.strip_ref.reserve(64.min(width) * height);
        for v in [&mut self.outside, &mut self.inside, &mut self.interior] {
            v.clear();
            v.reserve(ring.max(INTERIOR_GRID * INTERIOR_GRID));
        }
        for v in [
            &mut self.outside_ref,
            &mut self.inside_edge,
            &mut self.inside_last,
            &mut self.interior_last,
        ] {
            v.clear();
            v.reserve(ring.max(INTERIOR_GRID * INTERIOR_GRID));
        }
    }

    /// Takes the snapshots for `region` and the ruler's `strip` from the
    /// last frame in `map`; ring and interior points are kept only where
    /// `map` saw them move (or, outside, stay).
    pub fn arm(&mut self, map: &MotionMap, region: &ImageRegion, strip: [usize; 4]) {
        let (w, h) = (map.width, map.height);
        let luma = map.luma();
        let [x0, y0, x1, y1] = strip;
        self.strip = [x0.min(w), y0.min(h), x1.min(w), y1.min(h)];
        self.strip_ref.clear();
        for y in self.strip[1]..self.strip[3] {
            self.strip_ref
                .extend_from_slice(&luma[y * w + self.strip[0]..y * w + self.strip[2]]);
        }
        let in_frame = |p: (f64, f64)| {
            (p.0 >= 0.0 && p.1 >= 0.0 && (p.0 as usize) < w && (p.1 as usize) < h)
                .then_some((p.0 as u32, p.1 as u32))
        };
        let moving = |p: &(u32, u32)| map.is_moving(p.0 as usize, p.1 as usize);
        self.outside.clear();
        self.inside.clear();
        self.inside_edge.clear();
        self.edge_points = [0; EDGES];
        ring(region, RING_OFFSET, |_, p| {
            if let Some(p) = in_frame(p) {
                if !region.contains(p.0, p.1) && !moving(&p) {
                    self.outside.push(p);
                }
            }
        });
        ring(region, -RING_OFFSET, |edge, p| {
            if let Some(p) = in_frame(p) {
                if region.contains(p.0, p.1) && moving(&p) {
                    self.inside.push(p);
                    self.inside_edge.push(edge as u8);
                    self.edge_points[edge] += 1;
                }
            }
        });
        self.interior.clear();
        let b = region.bounds();
        for i in 0..INTERIOR_GRID {
            for j in 0..INTERIOR_GRID {
                let fx = (i as f32 + 0.5) / INTERIOR_GRID as f32;
                let fy = (j as f32 + 0.5) / INTERIOR_GRID as f32;
                let p = (
                    f64::from(b.x0 + fx * (b.x1 - b.x0)),
                    f64::from(b.y0 + fy * (b.y1 - b.y0)),
                );
                if let Some(p) = in_frame(p) {
                    if region.contains(p.0, p.1) && moving(&p) {
                        self.interior.push(p);
                    }
                }
            }
        }
        let at = |p: &(u32, u32)| luma[p.1 as usize * w + p.0 as usize];
        self.outside_ref.clear();
        self.outside_ref.extend(self.outside.iter().map(at));
        self.inside_last.clear();
        self.inside_last.extend(self.inside.iter().map(at));
        self.interior_last.clear();
        self.interior_last.extend(self.interior.iter().map(at));
        self.ema_edges = [1.0; EDGES];
        self.ema_interior = 1.0;
        self.quiet = 0;
    }

    /// Whether `frame` shows a different screen from the one armed.
    pub fn check(&mut self, frame: &FrameView<'_>) -> Option<ScreenChange> {
        let [x0, y0, x1, y1] = self.strip;
        let mut differ = 0usize;
        let mut refs = self.strip_ref.iter();
        for y in y0..y1 {
            for x in x0..x1 {
                let r = refs.next().copied().unwrap_or(0);
                differ += usize::from(frame.luma(x, y).abs_diff(r) > DIFFERS);
            }
        }
        if differ > (self.strip_ref.len() / 200).max(3) {
            return Some(ScreenChange::Ruler);
        }
        let differ = self
            .outside
            .iter()
            .zip(&self.outside_ref)
            .filter(|(p, &r)| frame.luma(p.0 as usize, p.1 as usize).abs_diff(r) > DIFFERS)
            .count();
        if differ > (self.outside.len() / 20).max(3) {
            return Some(ScreenChange::AroundRegion);
        }
        self.edge_changed = [0; EDGES];
        for ((p, l), &e) in self
            .inside
            .iter()
            .zip(&mut self.inside_last)
            .zip(&self.inside_edge)
        {
            let v = frame.luma(p.0 as usize, p.1 as usize);
            self.edge_changed[usize::from(e)] += usize::from(v.abs_diff(*l) > CHANGED);
            *l = v;
        }
        let interior = changed_fraction(frame, &self.interior, &mut self.interior_last);
        self.ema_interior += EMA * (interior - self.ema_interior);
        let mut stillest = f32::INFINITY;
        for e in 0..EDGES {
            let n = self.edge_points[e];
            let f = self.edge_changed[e] as f32 / n.max(1) as f32;
            self.ema_edges[e] += EMA * (f - self.ema_edges[e]);
            if n >= MIN_EDGE_POINTS {
                stillest = stillest.min(self.ema_edges[e]);
            }
        }
        if self.ema_interior > 0.3 && stillest < 0.25 * self.ema_interior {
            self.quiet += 1;
        } else {
            self.quiet = 0;
        }
        (self.quiet >= SHRUNK_AFTER).then_some(ScreenChange::RegionShrank)
    }
}

/// The fraction of `points` whose luma changed since `last` (updated).
fn changed_fraction(frame: &FrameView<'_>, points: &[(u32, u32)], last: &mut [u8]) -> f32 {
    let mut changed = 0usize;
    for (p, l) in points.iter().zip(last.iter_mut()) {
        let v = frame.luma(p.0 as usize, p.1 as usize);
        changed += usize::from(v.abs_diff(*l) > CHANGED);
        *l = v;
    }
    changed as f32 / points.len().max(1) as f32
}

/// Calls `f` with points along the region's edges (edge number, point),
/// moved `offset` pixels outward (negative: inward), at pixel-centre
/// positions.
fn ring(region: &ImageRegion, offset: f64, mut f: impl FnMut(usize, (f64, f64))) {
    let n = RING_POINTS;
    let t = |i: usize| (i as f64 + 0.5) / n as f64;
    match *region {
        ImageRegion::Rect { x0, y0, x1, y1 } => {
            let (x0, y0, x1, y1) = (
                f64::from(x0) + 0.5,
                f64::from(y0) + 0.5,
                f64::from(x1) - 0.5,
                f64::from(y1) - 0.5,
            );
            for i in 0..n {
                let x = x0 + t(i) * (x1 - x0);
                let y = y0 + t(i) * (y1 - y0);
                f(0, (x, y0 - offset));
                f(1, (x, y1 + offset));
                f(2, (x0 - offset, y));
                f(3, (x1 + offset, y));
            }
        }
        ImageRegion::Fan {
            apex,
            r0,
            r1,
            half_angle,
        } => {
            let (ax, ay) = (f64::from(apex.x), f64::from(apex.y));
            let (r0, r1, ha) = (f64::from(r0), f64::from(r1), f64::from(half_angle));
            let at = |r: f64, a: f64| (ax + r * a.sin(), ay + r * a.cos());
            for i in 0..n {
                let a = -ha + 2.0 * ha * t(i);
                f(0, at((r0 - offset).max(0.0), a));
                f(1, at(r1 + offset, a));
                let r = r0 + t(i) * (r1 - r0);
                let da = offset / r.max(1.0);
                f(2, at(r, -ha - da));
                f(3, at(r, ha + da));
            }
        }
    }
}
