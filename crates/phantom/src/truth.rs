//! Ground truth per frame: the label map of what each pixel shows, and for
//! each visible lesion its box, area and the calipers a sonographer would
//! place (longest diameter edge to edge, then the longest chord
//! perpendicular to it), measured on the lesion's exact boundary mapped
//! into the frame. A lesion's class, descriptors and assessment go into the
//! truth as words, the serde names of the [`crate::lexicon`] types.

use sonoflow_core::findings::{
    label, BoundingBox, Caliper, LabelMap, LesionTruth, PixelSpacing, Point,
};

use crate::motion::Pose;
use crate::probe::Layout;
use crate::scene::Scene;

/// Boundary points per lesion used for calipers.
const POLYGON_POINTS: usize = 256;

/// Labels every pixel of the image region (`region` yields (index, x, y)).
pub fn label_map(
    scene: &Scene,
    layout: &Layout,
    pose: &Pose,
    region: impl Iterator<Item = (u32, u32, u32)>,
) -> LabelMap {
    let mut data = vec![label::BACKGROUND; (layout.width * layout.height) as usize];
    // Pixel to tissue is affine: tissue = origin + x * dx + y * dy.
    let (ox, oz) = {
        let (px, pz) = layout.to_probe(0, 0);
        pose.to_tissue(px, pz)
    };
    let sp = layout.spacing_mm;
    let (dxx, dxz) = pose.direction_to_tissue(sp, 0.0);
    let (dyx, dyz) = pose.direction_to_tissue(0.0, sp);
    for (pixel, x, y) in region {
        let (x, y) = (f64::from(x), f64::from(y));
        let (tx, tz) = (ox + x * dxx + y * dyx, oz + x * dxz + y * dyz);
        if let Some(cell) = scene.grid.cell(tx, tz) {
            data[pixel as usize] = scene.grid.labels[cell];
        }
    }
    LabelMap {
        width: layout.width,
        height: layout.height,
        data,
    }
}

/// The visible lesions of one frame.
pub fn lesions(scene: &Scene, layout: &Layout, pose: &Pose, labels: &LabelMap) -> Vec<LesionTruth> {
    let spacing = layout.pixel_spacing();
    let extents = extents(labels);
    scene
        .lesions
        .iter()
        .filter_map(|lesion| {
            let value = label::LESION_BASE + lesion.id as u8;
            let (bbox, area) = extents
                .get(usize::from(value - label::LESION_BASE))
                .copied()
                .flatten()?;
            let polygon: Vec<Point> = lesion
                .polygon(POLYGON_POINTS)
                .into_iter()
                .map(|(x, z)| {
                    let (px, pz) = pose.to_probe(x, z);
                    layout.to_pixel(px, pz)
                })
                .collect();
            let (long_axis, short_axis) = calipers(&polygon, &spacing);
            Some(LesionTruth {
                id: lesion.id,
                label: value,
                class: lesion.class.name(),
                attributes: lesion.attributes.describe(),
                assessment: lesion.attributes.assessment().name(),
                bbox,
                area_px: area,
                long_axis,
                short_axis,
                conspicuity: None,
            })
        })
        .collect()
}

/// Pixel bounds (`x1`, `y1` exclusive) and pixel count of one label.
#[derive(Debug, Clone, Copy)]
struct Extent {
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
    pixels: u32,
}

/// Bounding box and pixel count of every lesion label, in one pass.
fn extents(labels: &LabelMap) -> Vec<Option<(BoundingBox, u32)>> {
    let mut found: Vec<Option<Extent>> = Vec::new();
    for (i, &v) in labels.data.iter().enumerate() {
        if v < label::LESION_BASE {
            continue;
        }
        let k = usize::from(v - label::LESION_BASE);
        if found.len() <= k {
            found.resize(k + 1, None);
        }
        let (x, y) = (i as u32 % labels.width, i as u32 / labels.width);
        let e = found[k].get_or_insert(Extent {
            x0: x,
            y0: y,
            x1: x + 1,
            y1: y + 1,
            pixels: 0,
        });
        e.x0 = e.x0.min(x);
        e.y0 = e.y0.min(y);
        e.x1 = e.x1.max(x + 1);
        e.y1 = e.y1.max(y + 1);
        e.pixels += 1;
    }
    found
        .into_iter()
        .map(|e| {
            e.map(|e| {
                (
                    BoundingBox {
                        x0: e.x0 as f32,
                        y0: e.y0 as f32,
                        x1: e.x1 as f32,
                        y1: e.y1 as f32,
                    },
                    e.pixels,
                )
            })
        })
        .collect()
}

/// The longest diameter of a closed polygon and the longest chord
/// perpendicular to it.
pub fn calipers(polygon: &[Point], spacing: &PixelSpacing) -> (Caliper, Caliper) {
    let n = polygon.len();
    let (mut best_sq, mut a, mut b) = (0.0f32, Point::default(), Point::default());
    for i in 0..n {
        let p = polygon[i];
        for q in &polygon[i + 1..] {
            let d = (p.x - q.x) * (p.x - q.x) + (p.y - q.y) * (p.y - q.y);
            if d > best_sq {
                (best_sq, a, b) = (d, p, *q);
            }
        }
    }
    let best = best_sq.sqrt();
    let long = Caliper {
        a,
        b,
        length_mm: spacing.length_mm(a, b),
    };
    if best <= 0.0 {
        return (long, long);
    }
    // In the long axis' frame: t along it, w across it.
    let (ux, uy) = ((b.x - a.x) / best, (b.y - a.y) / best);
    let to_frame = |p: Point| {
        (
            (p.x - a.x) * ux + (p.y - a.y) * uy,
            -(p.x - a.x) * uy + (p.y - a.y) * ux,
        )
    };
    let local: Vec<(f32, f32)> = polygon.iter().map(|&p| to_frame(p)).collect();
    let (mut best_chord, mut short) = (0.0f32, (0.0f32, 0.0f32, 0.0f32));
    let steps = 200;
    for k in 1..steps {
        let t = best * k as f32 / steps as f32;
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for i in 0..n {
            let (p, q) = (local[i], local[(i + 1) % n]);
            if (p.0 - t) * (q.0 - t) <= 0.0 && p.0 != q.0 {
                let w = p.1 + (q.1 - p.1) * (t - p.0) / (q.0 - p.0);
                lo = lo.min(w);
                hi = hi.max(w);
            }
        }
        if hi - lo > best_chord {
            best_chord = hi - lo;
            short = (t, lo, hi);
        }
    }
    let from_frame = |t: f32, w: f32| Point {
        x: a.x + t * ux - w * uy,
        y: a.y + t * uy + w * ux,
    };
    let (sa, sb) = (from_frame(short.0, short.1), from_frame(short.0, short.2));
    (
        long,
        Caliper {
            a: sa,
            b: sb,
            length_mm: spacing.length_mm(sa, sb),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calipers_of_an_ellipse_are_its_axes() {
        let poly: Vec<Point> = (0..360)
            .map(|i| {
                let t = (i as f32).to_radians();
                Point {
                    x: 100.0 + 40.0 * t.cos(),
                    y: 80.0 + 15.0 * t.sin(),
                }
            })
            .collect();
        let (long, short) = calipers(&poly, &PixelSpacing::isotropic(0.1));
        assert!((long.length_mm - 8.0).abs() < 0.01, "{long:?}");
        assert!((short.length_mm - 3.0).abs() < 0.02, "{short:?}");
    }
}
