//! Drawing on an RGBA frame, on the CPU: alpha-blended fills, thick lines,
//! polygons (even-odd scanline fill), caliper end marks. Everything clips
//! to the frame, so findings at the edge (or garbage coordinates: NaN,
//! infinities) never write out of bounds.

use sonoflow_core::findings::Point;

/// An RGB colour with an opacity (0 transparent, 1 opaque).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Paint {
    pub rgb: [u8; 3],
    pub alpha: f32,
}

impl Paint {
    pub const fn rgb(r: u8, g: u8, b: u8) -> Self {
        Self {
            rgb: [r, g, b],
            alpha: 1.0,
        }
    }

    pub fn with_alpha(self, alpha: f32) -> Self {
        Self {
            alpha: alpha.clamp(0.0, 1.0),
            ..self
        }
    }
}

/// A tightly packed RGBA frame to draw on.
pub struct Canvas<'a> {
    pub data: &'a mut [u8],
    pub width: u32,
    pub height: u32,
}

impl<'a> Canvas<'a> {
    /// None when `data` is too short for `width` x `height` RGBA pixels.
    pub fn new(data: &'a mut [u8], width: u32, height: u32) -> Option<Self> {
        (data.len() >= width as usize * height as usize * 4).then_some(Self {
            data,
            width,
            height,
        })
    }

    /// Blends `paint` at `coverage` (0..1) into pixel (x, y), if on the frame.
    #[inline]
    pub fn blend(&mut self, x: i32, y: i32, paint: Paint, coverage: f32) {
        if x < 0 || y < 0 || x as u32 >= self.width || y as u32 >= self.height {
            return;
        }
        let a = paint.alpha * coverage;
        if a <= 0.0 {
            return;
        }
        let i = (y as usize * self.width as usize + x as usize) * 4;
        let px = &mut self.data[i..i + 3];
        for (c, &p) in px.iter_mut().zip(&paint.rgb) {
            *c = (f32::from(*c) + (f32::from(p) - f32::from(*c)) * a.min(1.0) + 0.5) as u8;
        }
    }

    /// Fills the rectangle [x0, x1) x [y0, y1).
    pub fn fill_rect(&mut self, x0: i32, y0: i32, x1: i32, y1: i32, paint: Paint) {
        let (x0, x1) = (x0.max(0), x1.min(self.width as i32));
        let (y0, y1) = (y0.max(0), y1.min(self.height as i32));
        for y in y0..y1 {
            for x in x0..x1 {
                self.blend(x, y, paint, 1.0);
            }
        }
    }

    /// The outline of a rectangle, `thickness` pixels inward.
    pub fn stroke_rect(
        &mut self,
        x0: i32,
        y0: i32,
        x1: i32,
        y1: i32,
        thickness: i32,
        paint: Paint,
    ) {
        let t = thickness.max(1);
        self.fill_rect(x0, y0, x1, y0 + t, paint);
        self.fill_rect(x0, y1 - t, x1, y1, paint);
        self.fill_rect(x0, y0 + t, x0 + t, y1 - t, paint);
        self.fill_rect(x1 - t, y0 + t, x1, y1 - t, paint);
    }

    /// A line `thickness` pixels wide: a square brush along the segment.
    pub fn line(&mut self, a: Point, b: Point, thickness: f32, paint: Paint) {
        if !(a.x.is_finite() && a.y.is_finite() && b.x.is_finite() && b.y.is_finite()) {
            return;
        }
        let limit = (self.width + self.height) as f32 * 4.0;
        if a.x.abs().max(a.y.abs()).max(b.x.abs()).max(b.y.abs()) > limit {
            return;
        }
        let steps = (b.x - a.x).abs().max((b.y - a.y).abs()).ceil().max(1.0) as i32;
        let r = (thickness.max(1.0) / 2.0) as i32;
        let lo = -r;
        let hi = thickness.max(1.0) as i32 - r;
        let (mut last_x, mut last_y) = (i32::MIN, i32::MIN);
        for s in 0..=steps {
            let t = s as f32 / steps as f32;
            let x = (a.x + (b.x - a.x) * t).floor() as i32;
            let y = (a.y + (b.y - a.y) * t).floor() as i32;
            if (x, y) == (last_x, last_y) {
                continue;
            }
            // Pixels the brush covered at the previous step are not blended
            // again, so a half-transparent line stays even.
            for dy in lo..hi {
                for dx in lo..hi {
                    let (px, py) = (x + dx, y + dy);
                    let (ox, oy) = (px.wrapping_sub(last_x), py.wrapping_sub(last_y));
                    let covered_before = ox >= lo && ox < hi && oy >= lo && oy < hi;
                    if !covered_before {
                        self.blend(px, py, paint, 1.0);
                    }
                }
            }
            (last_x, last_y) = (x, y);
        }
    }

    /// A closed polyline.
    pub fn polyline(&mut self, points: &[Point], thickness: f32, paint: Paint) {
        for (i, &p) in points.iter().enumerate() {
            self.line(p, points[(i + 1) % points.len()], thickness, paint);
        }
    }

    /// Fills a closed polygon (even-odd rule), sampling pixel centres.
    /// `crossings` is scratch.
    pub fn fill_polygon(&mut self, points: &[Point], paint: Paint, crossings: &mut Vec<f32>) {
        if points.len() < 3 || points.iter().any(|p| !p.x.is_finite() || !p.y.is_finite()) {
            return;
        }
        let (mut y_min, mut y_max) = (f32::MAX, f32::MIN);
        for p in points {
            y_min = y_min.min(p.y);
            y_max = y_max.max(p.y);
        }
        let y0 = (y_min.floor() as i64).max(0) as i32;
        let y1 = (y_max.ceil() as i64).min(i64::from(self.height)) as i32;
        for y in y0..y1 {
            let sy = y as f32 + 0.5;
            crossings.clear();
            for (i, &p) in points.iter().enumerate() {
                let q = points[(i + 1) % points.len()];
                if (p.y <= sy) != (q.y <= sy) {
                    crossings.push(p.x + (sy - p.y) / (q.y - p.y) * (q.x - p.x));
                }
            }
            crossings.sort_unstable_by(f32::total_cmp);
            for pair in crossings.chunks_exact(2) {
                let x0 = ((pair[0] - 0.5).ceil() as i64).max(0) as i32;
                let x1 = ((pair[1] - 0.5).ceil() as i64).min(i64::from(self.width)) as i32;
                for x in x0..x1 {
                    self.blend(x, y, paint, 1.0);
                }
            }
        }
    }

    /// A caliper end mark: a "+" of `size` pixels each way.
    pub fn cross(&mut self, at: Point, size: f32, thickness: f32, paint: Paint) {
        self.line(
            Point {
                x: at.x - size,
                y: at.y,
            },
            Point {
                x: at.x + size,
                y: at.y,
            },
            thickness,
            paint,
        );
        self.line(
            Point {
                x: at.x,
                y: at.y - size,
            },
            Point {
                x: at.x,
                y: at.y + size,
            },
            thickness,
            paint,
        );
    }

    /// A dashed line (dash and gap `dash` pixels).
    pub fn dashed(&mut self, a: Point, b: Point, dash: f32, thickness: f32, paint: Paint) {
        let len = a.distance(b);
        if !len.is_finite() || len == 0.0 {
            return;
        }
        let (ux, uy) = ((b.x - a.x) / len, (b.y - a.y) / len);
        let mut t = 0.0;
        while t < len {
            let e = (t + dash).min(len);
            self.line(
                Point {
                    x: a.x + ux * t,
                    y: a.y + uy * t,
                },
                Point {
                    x: a.x + ux * e,
                    y: a.y + uy * e,
                },
                thickness,
                paint,
            );
            t += 2.0 * dash;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canvas_data(w: u32, h: u32) -> Vec<u8> {
        vec![0; (w * h * 4) as usize]
    }

    fn red_at(data: &[u8], w: u32, x: u32, y: u32) -> u8 {
        data[((y * w + x) * 4) as usize]
    }

    #[test]
    fn a_polygon_fills_its_inside_only() {
        let mut data = canvas_data(20, 20);
        let mut c = Canvas::new(&mut data, 20, 20).expect("sized");
        let square = [
            Point { x: 5.0, y: 5.0 },
            Point { x: 15.0, y: 5.0 },
            Point { x: 15.0, y: 15.0 },
            Point { x: 5.0, y: 15.0 },
        ];
        c.fill_polygon(&square, Paint::rgb(255, 0, 0), &mut Vec::new());
        let filled = (0..20)
            .flat_map(|y| (0..20).map(move |x| (x, y)))
            .filter(|&(x, y)| red_at(&data, 20, x, y) == 255)
            .count();
        assert_eq!(filled, 100);
        assert_eq!(red_at(&data, 20, 4, 4), 0);
    }

    #[test]
    fn drawing_off_the_frame_or_with_nan_clips_without_panic() {
        let mut data = canvas_data(10, 10);
        let mut c = Canvas::new(&mut data, 10, 10).expect("sized");
        let far = Point { x: -1e9, y: 5.0 };
        c.line(far, Point { x: 5.0, y: 5.0 }, 3.0, Paint::rgb(255, 0, 0));
        c.line(
            Point {
                x: f32::NAN,
                y: 0.0,
            },
            Point { x: 5.0, y: 5.0 },
            3.0,
            Paint::rgb(255, 0, 0),
        );
        c.fill_polygon(
            &[
                Point { x: -5.0, y: -5.0 },
                Point { x: 50.0, y: -5.0 },
                Point { x: 50.0, y: 50.0 },
            ],
            Paint::rgb(0, 255, 0),
            &mut Vec::new(),
        );
        c.fill_rect(-10, -10, 100, 100, Paint::rgb(0, 0, 255).with_alpha(0.5));
        c.cross(
            Point { x: 0.0, y: 0.0 },
            4.0,
            2.0,
            Paint::rgb(255, 255, 255),
        );
        assert!(Canvas::new(&mut [0u8; 10], 10, 10).is_none());
    }

    #[test]
    fn blending_half_way_mixes_colours() {
        let mut data = canvas_data(2, 1);
        let mut c = Canvas::new(&mut data, 2, 1).expect("sized");
        c.blend(0, 0, Paint::rgb(200, 100, 0).with_alpha(0.5), 1.0);
        assert_eq!(&data[0..3], &[100, 50, 0]);
    }

    #[test]
    fn a_line_is_as_thick_as_asked() {
        let mut data = canvas_data(20, 20);
        let mut c = Canvas::new(&mut data, 20, 20).expect("sized");
        c.line(
            Point { x: 2.0, y: 10.0 },
            Point { x: 17.0, y: 10.0 },
            3.0,
            Paint::rgb(255, 0, 0),
        );
        let column: Vec<u32> = (0..20)
            .filter(|&y| red_at(&data, 20, 10, y) == 255)
            .collect();
        assert_eq!(column, vec![9, 10, 11]);
    }
}
