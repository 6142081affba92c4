//! Findings followed from frame to frame, and their calipers steadied.
//!
//! Tracking: each finding takes the id of the previous frame's finding of
//! the same kind whose box overlaps it most (IoU at least 0.3); otherwise
//! it gets a new id. A finding not seen in a frame is forgotten.
//!
//! Smoothing, per tracked caliper: where the caliper sits follows the
//! finding's box in the current frame exactly (no lag for a moving
//! target); its shape (length, direction, offset from the box centre) is
//! an exponential average over frames (weight `alpha` for the new frame),
//! as long as the new shape is within `reset_sigmas` uncertainties of the
//! average. A bigger change is real (the probe moved to another section)
//! and is taken at once. So a still finding's calipers stop jittering and
//! a changing one is at most one frame behind.

use sonoflow_core::annotations::{FindingKind, FrameFindings, Measurement};
use sonoflow_core::findings::{BoundingBox, Caliper, PixelSpacing, Point};

use crate::accuracy::iou;

/// Boxes overlapping at least this much are the same finding.
pub const TRACK_IOU: f32 = 0.3;

/// How much smoothing, and when to let go of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Smoothing {
    /// Weight of the newest frame in the average (1: no smoothing).
    pub alpha: f32,
    /// A change beyond this many uncertainties resets the average.
    pub reset_sigmas: f64,
    /// A turn beyond this many degrees resets the average.
    pub reset_degrees: f32,
}

impl Default for Smoothing {
    fn default() -> Self {
        Self {
            alpha: 0.35,
            reset_sigmas: 2.0,
            reset_degrees: 12.0,
        }
    }
}

/// A caliper's shape relative to its finding's box centre.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Shape {
    /// Caliper midpoint minus box centre.
    offset: (f32, f32),
    /// Half the caliper, from its midpoint to end `b`.
    half: (f32, f32),
}

impl Shape {
    fn of(c: &Caliper, centre: (f32, f32)) -> Self {
        let mid = ((c.a.x + c.b.x) / 2.0, (c.a.y + c.b.y) / 2.0);
        Self {
            offset: (mid.0 - centre.0, mid.1 - centre.1),
            half: ((c.b.x - c.a.x) / 2.0, (c.b.y - c.a.y) / 2.0),
        }
    }

    fn at(&self, centre: (f32, f32), spacing: &PixelSpacing) -> Caliper {
        let mid = (centre.0 + self.offset.0, centre.1 + self.offset.1);
        let a = Point {
            x: mid.0 - self.half.0,
            y: mid.1 - self.half.1,
        };
        let b = Point {
            x: mid.0 + self.half.0,
            y: mid.1 + self.half.1,
        };
        Caliper {
            a,
            b,
            length_mm: spacing.length_mm(a, b),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Track {
    id: u32,
    kind: FindingKind,
    bbox: BoundingBox,
    long: Option<Shape>,
    short: Option<Shape>,
}

/// The tracks of the last frame.
#[derive(Debug, Default)]
pub struct Tracker {
    tracks: Vec<Track>,
    next: Vec<Track>,
    taken: Vec<bool>,
    next_id: u32,
}

fn centre(b: &BoundingBox) -> (f32, f32) {
    ((b.x0 + b.x1) / 2.0, (b.y0 + b.y1) / 2.0)
}

fn length(h: (f32, f32)) -> f32 {
    (h.0 * h.0 + h.1 * h.1).sqrt()
}

/// The steadied measurement and the shape to remember.
fn steady(
    previous: Option<Shape>,
    m: Measurement,
    centre: (f32, f32),
    spacing: &PixelSpacing,
    s: &Smoothing,
) -> (Measurement, Shape) {
    let mut new = Shape::of(&m.caliper, centre);
    let Some(old) = previous else {
        return (m, new);
    };
    // Ends are unordered: point the new half the way the old one points.
    if new.half.0 * old.half.0 + new.half.1 * old.half.1 < 0.0 {
        new.half = (-new.half.0, -new.half.1);
    }
    let old_mm = old.at(centre, spacing).length_mm;
    let (lo, ln) = (length(old.half), length(new.half));
    let cos = if lo > 0.0 && ln > 0.0 {
        (old.half.0 * new.half.0 + old.half.1 * new.half.1) / (lo * ln)
    } else {
        1.0
    };
    let turned = cos.clamp(-1.0, 1.0).acos().to_degrees() > s.reset_degrees;
    let jumped = (m.caliper.length_mm - old_mm).abs() > s.reset_sigmas * m.uncertainty_mm;
    if turned || jumped {
        return (m, new);
    }
    let mix = |o: f32, n: f32| o + s.alpha * (n - o);
    let shape = Shape {
        offset: (
            mix(old.offset.0, new.offset.0),
            mix(old.offset.1, new.offset.1),
        ),
        half: (mix(old.half.0, new.half.0), mix(old.half.1, new.half.1)),
    };
    (
        Measurement {
            caliper: shape.at(centre, spacing),
            uncertainty_mm: m.uncertainty_mm,
        },
        shape,
    )
}

impl Tracker {
    /// Makes room for `findings` tracks, so that frames with up to that
    /// many findings never grow the tracker.
    pub fn reserve(&mut self, findings: usize) {
        for v in [&mut self.tracks, &mut self.next] {
            v.reserve(findings.saturating_sub(v.len()));
        }
        self.taken
            .reserve(findings.saturating_sub(self.taken.len()));
    }

    /// Gives `found`'s findings their track ids and, with `smoothing`,
    /// steadies their calipers against the previous frame's.
    pub fn update(
        &mut self,
        found: &mut FrameFindings,
        spacing: Option<&PixelSpacing>,
        smoothing: Option<&Smoothing>,
    ) {
        self.taken.clear();
        self.taken.resize(self.tracks.len(), false);
        self.next.clear();
        for f in found.findings.iter_mut() {
            let matched = self
                .tracks
                .iter()
                .enumerate()
                .filter(|(i, t)| t.kind == f.kind && !self.taken[*i])
                .map(|(i, t)| (i, iou(&t.bbox, &f.bbox)))
                .filter(|&(_, v)| v >= TRACK_IOU)
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(i, _)| i);
            let previous = matched.map(|i| {
                self.taken[i] = true;
                self.tracks[i]
            });
            let id = previous.map_or_else(
                || {
                    self.next_id += 1;
                    self.next_id
                },
                |t| t.id,
            );
            f.track = id;
            let mut track = Track {
                id,
                kind: f.kind,
                bbox: f.bbox,
                long: None,
                short: None,
            };
            let c = centre(&f.bbox);
            for (measured, old, keep) in [
                (
                    &mut f.long_axis,
                    previous.and_then(|t| t.long),
                    &mut track.long,
                ),
                (
                    &mut f.short_axis,
                    previous.and_then(|t| t.short),
                    &mut track.short,
                ),
            ] {
                let Some(m) = *measured else { continue };
                let (shown, shape) = match (spacing, smoothing) {
                    (Some(sp), Some(s)) => steady(old, m, c, sp, s),
                    _ => (m, Shape::of(&m.caliper, c)),
                };
                *measured = Some(shown);
                *keep = Some(shape);
            }
            self.next.push(track);
        }
        std::mem::swap(&mut self.tracks, &mut self.next);
    }

    /// Forgets every track (a new scan, a source restart).
    pub fn clear(&mut self) {
        self.tracks.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonoflow_core::annotations::FrameFinding;

    /// A segment with calipers, as the tracker sees it.
    fn segment(
        bbox: BoundingBox,
        long: Caliper,
        short: Caliper,
        uncertainty_mm: f64,
    ) -> FrameFinding {
        FrameFinding {
            track: 0,
            kind: FindingKind::Segment,
            bbox,
            area_px: 0,
            confidence: 1.0,
            contour: (0, 0),
            long_axis: Some(Measurement {
                caliper: long,
                uncertainty_mm,
            }),
            short_axis: Some(Measurement {
                caliper: short,
                uncertainty_mm,
            }),
            ellipse: None,
        }
    }

    fn caliper(x0: f32, y0: f32, x1: f32, y1: f32, spacing: &PixelSpacing) -> Caliper {
        let (a, b) = (Point { x: x0, y: y0 }, Point { x: x1, y: y1 });
        Caliper {
            a,
            b,
            length_mm: spacing.length_mm(a, b),
        }
    }

    fn frame(shift: f32, long_px: f32, spacing: &PixelSpacing) -> FrameFindings {
        let bbox = BoundingBox {
            x0: 100.0 + shift,
            y0: 100.0,
            x1: 100.0 + shift + long_px,
            y1: 140.0,
        };
        let mid = 100.0 + shift + long_px / 2.0;
        let long = caliper(
            mid - long_px / 2.0,
            120.0,
            mid + long_px / 2.0,
            120.0,
            spacing,
        );
        let short = caliper(mid, 100.0, mid, 140.0, spacing);
        FrameFindings {
            findings: vec![segment(bbox, long, short, 0.3)],
            ..FrameFindings::default()
        }
    }

    #[test]
    fn a_reserved_tracker_takes_a_second_finding_without_growing() {
        let sp = PixelSpacing::isotropic(0.1);
        let mut t = Tracker::default();
        t.reserve(4);
        let room = (t.tracks.capacity(), t.next.capacity(), t.taken.capacity());
        let mut one = frame(0.0, 60.0, &sp);
        t.update(&mut one, Some(&sp), None);
        // A second finding appears (a false positive, a second lesion).
        let mut two = frame(0.0, 60.0, &sp);
        two.findings.push(frame(300.0, 40.0, &sp).findings[0]);
        t.update(&mut two, Some(&sp), None);
        t.update(&mut two, Some(&sp), None);
        assert_eq!((two.findings[0].track, two.findings[1].track), (1, 2));
        assert_eq!(
            (t.tracks.capacity(), t.next.capacity(), t.taken.capacity()),
            room
        );
    }

    #[test]
    fn jitter_within_the_uncertainty_is_averaged_away() {
        let sp = PixelSpacing::isotropic(0.1);
        let mut t = Tracker::default();
        let mut shown = Vec::new();
        for k in 0..40 {
            // 60 px (6 mm) +- 2 px (0.2 mm) of noise.
            let mut f = frame(0.0, 60.0 + if k % 2 == 0 { 2.0 } else { -2.0 }, &sp);
            t.update(&mut f, Some(&sp), Some(&Smoothing::default()));
            shown.push(f.findings[0].long_axis.expect("measured").caliper.length_mm);
            assert_eq!(f.findings[0].track, 1);
        }
        let late = &shown[20..];
        let spread = late.iter().cloned().fold(f64::MIN, f64::max)
            - late.iter().cloned().fold(f64::MAX, f64::min);
        assert!(
            spread < 0.2,
            "shown lengths still swing {spread} mm: {late:?}"
        );
    }

    #[test]
    fn a_moving_finding_is_followed_without_lag_and_a_real_change_is_taken_at_once() {
        let sp = PixelSpacing::isotropic(0.1);
        let mut t = Tracker::default();
        for k in 0..10 {
            let shift = 5.0 * k as f32;
            let mut f = frame(shift, 60.0, &sp);
            t.update(&mut f, Some(&sp), Some(&Smoothing::default()));
            let long = f.findings[0].long_axis.expect("measured").caliper;
            assert!(
                (long.a.x - (100.0 + shift)).abs() < 1e-3,
                "frame {k}: {long:?}"
            );
        }
        // The section changes: 6 mm to 9 mm, well beyond 2 x 0.3 mm.
        let mut f = frame(45.0, 90.0, &sp);
        t.update(&mut f, Some(&sp), Some(&Smoothing::default()));
        assert!((f.findings[0].long_axis.expect("measured").caliper.length_mm - 9.0).abs() < 1e-6);
    }

    #[test]
    fn unmatched_findings_get_new_ids() {
        let sp = PixelSpacing::isotropic(0.1);
        let mut t = Tracker::default();
        let mut a = frame(0.0, 60.0, &sp);
        t.update(&mut a, Some(&sp), None);
        let mut b = frame(300.0, 60.0, &sp);
        t.update(&mut b, Some(&sp), None);
        assert_ne!(a.findings[0].track, b.findings[0].track);
    }
}
