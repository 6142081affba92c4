//! Keypoint heatmaps to sub-pixel points: local maxima of the heatmap
//! (3x3 neighbourhood, above a floor), each refined by fitting a parabola
//! through the peak and its two neighbours along x and along y (the peak
//! of the parabola is within half a cell of the maximum). Coordinates are
//! on the heatmap grid, cell centres at integer + 0.5; [`to_frame`] maps
//! them through the model geometry like the masks. NaN cells are ignored.

use sonoflow_core::findings::Point;
use sonoflow_core::ModelGeometry;

/// One keypoint: where on the heatmap grid and how strong.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peak {
    pub x: f32,
    pub y: f32,
    pub value: f32,
}

/// The offset (-0.5..0.5) of a parabola's vertex through (-1, l), (0, c), (1, r).
fn vertex(l: f32, c: f32, r: f32) -> f32 {
    let curvature = l - 2.0 * c + r;
    if curvature < 0.0 && curvature.is_finite() {
        (0.5 * (l - r) / curvature).clamp(-0.5, 0.5)
    } else {
        0.0
    }
}

/// The local maxima of a `width` x `height` heatmap above `floor`,
/// strongest first, into `out` (cleared first).
pub fn peaks(heatmap: &[f32], width: usize, height: usize, floor: f32, out: &mut Vec<Peak>) {
    out.clear();
    if heatmap.len() < width * height {
        return;
    }
    let at = |x: i64, y: i64| -> f32 {
        if x < 0 || y < 0 || x >= width as i64 || y >= height as i64 {
            return f32::NEG_INFINITY;
        }
        let v = heatmap[y as usize * width + x as usize];
        if v.is_nan() {
            f32::NEG_INFINITY
        } else {
            v
        }
    };
    for y in 0..height as i64 {
        for x in 0..width as i64 {
            let c = at(x, y);
            // Only cells above the floor (never NaN: `at` reads NaN as -inf).
            if c.partial_cmp(&floor) != Some(std::cmp::Ordering::Greater) {
                continue;
            }
            // Ties go to the first cell in scan order.
            let is_max = (-1..=1i64).all(|dy| {
                (-1..=1i64).all(|dx| {
                    let v = at(x + dx, y + dy);
                    (dx, dy) == (0, 0) || v < c || (v == c && (dy, dx) > (0, 0))
                })
            });
            if !is_max {
                continue;
            }
            let fill = |v: f32| if v.is_finite() { v } else { c };
            let ox = vertex(fill(at(x - 1, y)), c, fill(at(x + 1, y)));
            let oy = vertex(fill(at(x, y - 1)), c, fill(at(x, y + 1)));
            out.push(Peak {
                x: x as f32 + 0.5 + ox,
                y: y as f32 + 0.5 + oy,
                value: c,
            });
        }
    }
    out.sort_by(|a, b| b.value.total_cmp(&a.value));
}

/// Frame coordinates of a heatmap-grid point, for a `width` x `height`
/// heatmap covering the model input.
pub fn to_frame(geometry: &ModelGeometry, p: Peak, width: usize, height: usize) -> Point {
    let u = p.x / width.max(1) as f32 * geometry.input_width as f32;
    let v = p.y / height.max(1) as f32 * geometry.input_height as f32;
    let (x, y) = geometry.to_frame(u, v);
    Point { x, y }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaussian(width: usize, height: usize, centres: &[(f32, f32, f32)]) -> Vec<f32> {
        let mut h = vec![0.0; width * height];
        for y in 0..height {
            for x in 0..width {
                for &(cx, cy, peak) in centres {
                    let d2 = (x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2);
                    h[y * width + x] += peak * (-d2 / (2.0 * 1.5f32.powi(2))).exp();
                }
            }
        }
        h
    }

    #[test]
    fn gaussian_blobs_give_their_sub_pixel_centres_strongest_first() {
        let h = gaussian(32, 24, &[(10.3, 8.8, 0.6), (22.7, 15.2, 0.9)]);
        let mut out = Vec::new();
        peaks(&h, 32, 24, 0.1, &mut out);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(
            (out[0].x - 22.7).abs() < 0.1 && (out[0].y - 15.2).abs() < 0.1,
            "{out:?}"
        );
        assert!(
            (out[1].x - 10.3).abs() < 0.1 && (out[1].y - 8.8).abs() < 0.1,
            "{out:?}"
        );
    }

    #[test]
    fn flat_nan_and_short_heatmaps_give_no_points() {
        let mut out = vec![Peak {
            x: 0.0,
            y: 0.0,
            value: 1.0,
        }];
        peaks(&[0.0; 16], 4, 4, 0.1, &mut out);
        assert!(out.is_empty());
        peaks(&[f32::NAN; 16], 4, 4, 0.1, &mut out);
        assert!(out.is_empty());
        peaks(&[1.0; 3], 4, 4, 0.1, &mut out);
        assert!(out.is_empty());
        // A plateau is one peak, not four.
        let mut plateau = vec![0.0; 16];
        for i in [5, 6, 9, 10] {
            plateau[i] = 1.0;
        }
        peaks(&plateau, 4, 4, 0.1, &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn grid_points_map_to_the_frame_through_the_geometry() {
        let g = ModelGeometry {
            input_width: 64,
            input_height: 64,
            crop: (10, 20, 128, 128),
            scale_x: 0.5,
            scale_y: 0.5,
            pad_x: 0.0,
            pad_y: 0.0,
        };
        let p = to_frame(
            &g,
            Peak {
                x: 16.0,
                y: 8.0,
                value: 1.0,
            },
            32,
            32,
        );
        assert_eq!((p.x, p.y), (10.0 + 64.0, 20.0 + 32.0));
    }
}
