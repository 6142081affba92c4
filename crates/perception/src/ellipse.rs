//! An ellipse fitted to a finding by its second moments: the ellipse with
//! the same centroid and covariance as the finding's pixels. For a filled
//! ellipse this recovers its axes exactly (a semi-axis is twice the square
//! root of the covariance's eigenvalue); it is what biometry of round
//! structures (a fetal head's circumference) measures. The circumference is
//! Ramanujan's second approximation, in mm.

use sonoflow_core::annotations::Ellipse;
use sonoflow_core::findings::{PixelSpacing, Point};

/// Fits an ellipse to the pixels `inside` says belong to a finding, all in
/// `bounds` (x0, y0, x1, y1; the ends exclusive). None for an empty finding.
pub fn fit(
    bounds: (u32, u32, u32, u32),
    inside: impl Fn(u32, u32) -> bool,
    spacing: &PixelSpacing,
) -> Option<Ellipse> {
    let (x0, y0, x1, y1) = bounds;
    let (mut n, mut sx, mut sy) = (0.0f64, 0.0f64, 0.0f64);
    for y in y0..y1 {
        for x in x0..x1 {
            if inside(x, y) {
                n += 1.0;
                sx += f64::from(x) + 0.5;
                sy += f64::from(y) + 0.5;
            }
        }
    }
    if n == 0.0 {
        return None;
    }
    let (cx, cy) = (sx / n, sy / n);
    // A pixel is a unit square: its own variance (1/12) is added on each axis.
    let (mut mxx, mut myy, mut mxy) = (1.0 / 12.0, 1.0 / 12.0, 0.0);
    for y in y0..y1 {
        for x in x0..x1 {
            if inside(x, y) {
                let (dx, dy) = (f64::from(x) + 0.5 - cx, f64::from(y) + 0.5 - cy);
                mxx += dx * dx / n;
                myy += dy * dy / n;
                mxy += dx * dy / n;
            }
        }
    }
    let mean = (mxx + myy) / 2.0;
    let spread = (((mxx - myy) / 2.0).powi(2) + mxy * mxy).sqrt();
    let (l1, l2) = (mean + spread, (mean - spread).max(0.0));
    let angle = 0.5 * (2.0 * mxy).atan2(mxx - myy);
    let (a, b) = (2.0 * l1.sqrt(), 2.0 * l2.sqrt());
    // A semi-axis in mm along its own direction.
    let mm = |len: f64, theta: f64| {
        len * ((theta.cos() * spacing.x_mm).powi(2) + (theta.sin() * spacing.y_mm).powi(2)).sqrt()
    };
    let (am, bm) = (mm(a, angle), mm(b, angle + std::f64::consts::FRAC_PI_2));
    Some(Ellipse {
        centre: Point {
            x: cx as f32,
            y: cy as f32,
        },
        semi_major_px: a as f32,
        semi_minor_px: b as f32,
        angle: angle as f32,
        major_mm: 2.0 * am,
        minor_mm: 2.0 * bm,
        circumference_mm: circumference(am, bm),
    })
}

/// Ramanujan's second approximation of an ellipse's perimeter from its semi-axes.
pub fn circumference(a: f64, b: f64) -> f64 {
    if a + b == 0.0 {
        return 0.0;
    }
    let h = ((a - b) / (a + b)).powi(2);
    std::f64::consts::PI * (a + b) * (1.0 + 3.0 * h / (10.0 + (4.0 - 3.0 * h).sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tilted_filled_ellipse_gives_back_its_axes_angle_and_circumference() {
        let (a, b, theta) = (60.0f32, 25.0f32, 0.5f32);
        let inside = |x: u32, y: u32| {
            let (dx, dy) = (x as f32 + 0.5 - 100.0, y as f32 + 0.5 - 80.0);
            let (u, v) = (
                dx * theta.cos() + dy * theta.sin(),
                -dx * theta.sin() + dy * theta.cos(),
            );
            (u / a).powi(2) + (v / b).powi(2) <= 1.0
        };
        let e = fit((0, 0, 200, 160), inside, &PixelSpacing::isotropic(0.1)).expect("non-empty");
        assert!(
            (e.semi_major_px - a).abs() < 0.3 && (e.semi_minor_px - b).abs() < 0.3,
            "{e:?}"
        );
        assert!((e.angle - theta).abs() < 0.01, "{e:?}");
        assert!(
            (e.major_mm - 12.0).abs() < 0.06 && (e.minor_mm - 5.0).abs() < 0.06,
            "{e:?}"
        );
        assert!(
            (e.circumference_mm - circumference(6.0, 2.5)).abs() < 0.2,
            "{e:?}"
        );
    }

    #[test]
    fn a_circle_has_circumference_two_pi_r_and_nothing_fits_nothing() {
        assert!((circumference(5.0, 5.0) - 10.0 * std::f64::consts::PI).abs() < 1e-9);
        assert!(fit((0, 0, 4, 4), |_, _| false, &PixelSpacing::isotropic(1.0)).is_none());
        assert_eq!(circumference(0.0, 0.0), 0.0);
    }
}
