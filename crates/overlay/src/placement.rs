//! Where the panel and the HUD go: in the corner of the frame where they
//! cover the least of the ultrasound image. On a scanner's screen the image
//! (a sector, a rectangle, two views) rarely fills the frame, and its
//! margins are the place for text; a cardiac sector's bottom corners are
//! empty while its bottom centre is not. Coverage is sampled on a coarse
//! grid (every [`STEP`] pixels): no allocation, a few hundred containment
//! tests per corner.

use sonoflow_core::CalibratedRegion;

/// Sampling step in pixels.
const STEP: f32 = 12.0;

/// A corner must cover this much less of the image than the preferred one
/// before the box moves there: a near tie keeps the usual place, which on a
/// scanner's screen is usually clear of its own text (the phantom's header
/// sits top left).
const MOVE_FOR: f32 = 0.6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corner {
    TopLeft,
    TopRight,
    BottomLeft,
    BottomRight,
}

impl Corner {
    /// The panel's corners, the usual place first.
    pub const PANEL: [Corner; 4] = [
        Corner::BottomLeft,
        Corner::BottomRight,
        Corner::TopLeft,
        Corner::TopRight,
    ];
    /// The HUD's corners, the usual place first.
    pub const HUD: [Corner; 4] = [
        Corner::TopRight,
        Corner::TopLeft,
        Corner::BottomRight,
        Corner::BottomLeft,
    ];

    /// The top-left point of a `size` box in this corner of a `canvas`, `pad` from its edges.
    pub fn origin(self, canvas: (f32, f32), size: (f32, f32), pad: f32) -> (f32, f32) {
        let left = pad;
        let right = (canvas.0 - size.0 - pad).max(0.0);
        let top = pad;
        let bottom = (canvas.1 - size.1 - pad).max(0.0);
        match self {
            Corner::TopLeft => (left, top),
            Corner::TopRight => (right, top),
            Corner::BottomLeft => (left, bottom),
            Corner::BottomRight => (right, bottom),
        }
    }
}

/// The share (0 to 1) of the grid points of the box at `origin` that fall in an image region.
fn covered(origin: (f32, f32), size: (f32, f32), regions: &[CalibratedRegion]) -> f32 {
    let (mut inside, mut total) = (0u32, 0u32);
    let mut y = origin.1 + STEP / 2.0;
    while y < origin.1 + size.1 {
        let mut x = origin.0 + STEP / 2.0;
        while x < origin.0 + size.0 {
            total += 1;
            let (px, py) = (x as u32, y as u32);
            inside += u32::from(regions.iter().any(|r| r.region.contains(px, py)));
            x += STEP;
        }
        y += STEP;
    }
    if total == 0 {
        0.0
    } else {
        inside as f32 / total as f32
    }
}

/// The corner of `choices` (in order of preference, `taken` left out)
/// where a `size` box covers the least of `regions`; the first choice
/// unless another covers clearly less ([`MOVE_FOR`]). Without regions,
/// the first choice.
pub fn least_covering(
    canvas: (f32, f32),
    size: (f32, f32),
    pad: f32,
    regions: &[CalibratedRegion],
    choices: &[Corner],
    taken: Option<Corner>,
) -> Corner {
    let mut open = choices.iter().copied().filter(|c| Some(*c) != taken);
    let Some(first) = open.next() else {
        return choices.first().copied().unwrap_or(Corner::BottomLeft);
    };
    if regions.is_empty() {
        return first;
    }
    let cover = |c: Corner| covered(c.origin(canvas, size, pad), size, regions);
    let usual = cover(first);
    let (mut best, mut best_cover) = (first, usual);
    for c in open {
        let v = cover(c);
        if v < best_cover {
            (best, best_cover) = (c, v);
        }
    }
    if best_cover < usual * MOVE_FOR {
        best
    } else {
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonoflow_core::findings::{ImageRegion, Point};

    fn region(region: ImageRegion) -> CalibratedRegion {
        CalibratedRegion {
            region,
            spacing: None,
        }
    }

    const CANVAS: (f32, f32) = (800.0, 600.0);
    const PANEL: (f32, f32) = (300.0, 120.0);

    #[test]
    fn a_sector_keeps_its_bottom_centre_clear_and_the_panel_goes_where_it_is_empty() {
        // A cardiac sector from the top centre: its bottom corners are
        // empty only near the frame's edges, the top corners are wide open.
        let sector = [region(ImageRegion::Fan {
            apex: Point { x: 400.0, y: 20.0 },
            r0: 0.0,
            r1: 560.0,
            half_angle: 0.75,
        })];
        let corner = least_covering(CANVAS, PANEL, 4.0, &sector, &Corner::PANEL, None);
        assert!(
            matches!(corner, Corner::TopLeft | Corner::TopRight),
            "{corner:?}"
        );
        let at = corner.origin(CANVAS, PANEL, 4.0);
        assert!(covered(at, PANEL, &sector) < 0.2);
        // The HUD takes another corner.
        let hud = least_covering(
            CANVAS,
            (200.0, 24.0),
            4.0,
            &sector,
            &Corner::HUD,
            Some(corner),
        );
        assert_ne!(hud, corner);
    }

    #[test]
    fn a_full_frame_or_no_region_keeps_the_usual_corners() {
        let whole = [region(ImageRegion::Rect {
            x0: 0,
            y0: 0,
            x1: 800,
            y1: 600,
        })];
        for regions in [&whole[..], &[]] {
            assert_eq!(
                least_covering(CANVAS, PANEL, 4.0, regions, &Corner::PANEL, None),
                Corner::BottomLeft
            );
            assert_eq!(
                least_covering(CANVAS, (200.0, 24.0), 4.0, regions, &Corner::HUD, None),
                Corner::TopRight
            );
        }
    }

    #[test]
    fn a_near_tie_does_not_move_the_panel() {
        // A rectangle a little closer to the bottom than the top.
        let rect = [region(ImageRegion::Rect {
            x0: 100,
            y0: 20,
            x1: 700,
            y1: 590,
        })];
        assert_eq!(
            least_covering(CANVAS, PANEL, 4.0, &rect, &Corner::PANEL, None),
            Corner::BottomLeft
        );
    }
}
