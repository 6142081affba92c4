//! Masks as COCO's uncompressed run-length encoding, the layout of
//! pycocotools' `{"size": [height, width], "counts": [...]}`:
//!
//! - pixels are read in **column-major** order (x outer, y inner: pixel
//!   (x, y) is at index `x * height + y`, numpy's Fortran order);
//! - `counts` alternate runs of 0 and 1, **starting with a run of zeros**
//!   (0 when the first pixel is set), so odd positions count set pixels;
//! - the counts add up to `width * height`.
//!
//! The stream builds a finding's mask from its contour ([`from_polygon`]:
//! a pixel is set when its centre lies inside the closed polygon, even-odd
//! rule), one column at a time, so its cost grows with the finding's width,
//! not with the frame.

use sonoflow_core::findings::Point;

use crate::ProtocolError;

/// Builds counts from runs given in column-major order.
struct Runs<'a> {
    counts: &'a mut Vec<u32>,
    value: bool,
    run: u32,
}

impl<'a> Runs<'a> {
    fn new(counts: &'a mut Vec<u32>) -> Self {
        counts.clear();
        Self {
            counts,
            value: false,
            run: 0,
        }
    }

    fn push(&mut self, value: bool, len: u32) {
        if len == 0 {
            return;
        }
        if value != self.value {
            self.counts.push(self.run);
            self.value = value;
            self.run = 0;
        }
        self.run += len;
    }

    fn finish(self) {
        if self.run > 0 || self.counts.is_empty() {
            self.counts.push(self.run);
        }
    }
}

/// Encodes a row-major mask (`pixels[y * width + x]`, non-zero = set) into
/// `counts` (cleared first).
pub fn encode(pixels: &[u8], width: u32, height: u32, counts: &mut Vec<u32>) {
    let mut runs = Runs::new(counts);
    let (w, h) = (width as usize, height as usize);
    for x in 0..w {
        for y in 0..h {
            let set = pixels.get(y * w + x).is_some_and(|&p| p != 0);
            runs.push(set, 1);
        }
    }
    runs.finish();
}

/// Decodes counts into a row-major mask of 0 and 1 (`pixels[y * width + x]`).
pub fn decode(counts: &[u32], width: u32, height: u32) -> Result<Vec<u8>, ProtocolError> {
    let total = u64::from(width) * u64::from(height);
    let sum: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    if sum != total {
        return Err(ProtocolError::MaskSize { sum, width, height });
    }
    let (w, h) = (width as usize, height as usize);
    let mut pixels = vec![0u8; w * h];
    let mut index = 0usize;
    for (i, &count) in counts.iter().enumerate() {
        if i % 2 == 1 {
            for k in index..index + count as usize {
                let (x, y) = (k / h, k % h);
                pixels[y * w + x] = 1;
            }
        }
        index += count as usize;
    }
    Ok(pixels)
}

/// Set pixels of an encoded mask (the odd runs).
pub fn area(counts: &[u32]) -> u64 {
    counts
        .iter()
        .skip(1)
        .step_by(2)
        .map(|&c| u64::from(c))
        .sum()
}

/// Encodes the pixels of a `width` x `height` frame whose centres lie inside
/// the closed polygon `points` (even-odd rule) into `counts` (cleared first);
/// `crossings` is scratch. A polygon of fewer than three points sets nothing.
pub fn from_polygon(
    points: &[Point],
    width: u32,
    height: u32,
    counts: &mut Vec<u32>,
    crossings: &mut Vec<f64>,
) {
    let mut runs = Runs::new(counts);
    let finite = points.iter().all(|p| p.x.is_finite() && p.y.is_finite());
    if points.len() < 3 || !finite || width == 0 || height == 0 {
        runs.push(false, width.saturating_mul(height));
        runs.finish();
        return;
    }
    let (min_x, max_x) = points.iter().fold((f32::MAX, f32::MIN), |(lo, hi), p| {
        (lo.min(p.x), hi.max(p.x))
    });
    // Columns whose centre can be inside: ceil(min - 0.5) ..= floor(max - 0.5).
    let first = ((min_x - 0.5).ceil().max(0.0) as u32).min(width);
    let last = ((max_x - 0.5).floor().max(-1.0) as i64 + 1).clamp(0, i64::from(width)) as u32;
    runs.push(false, first * height);
    for x in first..last.max(first) {
        let cx = f64::from(x) + 0.5;
        crossings.clear();
        for (i, p) in points.iter().enumerate() {
            let q = points[(i + 1) % points.len()];
            let (px, py, qx, qy) = (
                f64::from(p.x),
                f64::from(p.y),
                f64::from(q.x),
                f64::from(q.y),
            );
            if (px <= cx) != (qx <= cx) {
                crossings.push(py + (cx - px) * (qy - py) / (qx - px));
            }
        }
        crossings.sort_by(f64::total_cmp);
        let mut y = 0u32;
        for pair in crossings.chunks_exact(2) {
            // Rows whose centre y + 0.5 lies in [top, bottom).
            let top = ((pair[0] - 0.5).ceil().max(0.0) as u32).min(height).max(y);
            let bottom = ((pair[1] - 0.5).ceil().max(0.0) as u32)
                .min(height)
                .max(top);
            runs.push(false, top - y);
            runs.push(true, bottom - top);
            y = bottom;
        }
        runs.push(false, height - y);
    }
    runs.push(false, (width - last.max(first)) * height);
    runs.finish();
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn counts_start_with_zeros_and_run_down_the_columns() {
        // pycocotools: mask [[0, 1], [1, 1]] (rows) is 0,1 | 1,1 by columns.
        let mut counts = Vec::new();
        encode(&[0, 1, 1, 1], 2, 2, &mut counts);
        assert_eq!(counts, vec![1, 3]);
        encode(&[1, 0, 0, 0], 2, 2, &mut counts);
        assert_eq!(
            counts,
            vec![0, 1, 3],
            "a set first pixel: an empty zero run"
        );
        encode(&[0; 6], 3, 2, &mut counts);
        assert_eq!(counts, vec![6]);
        assert_eq!(area(&[1, 3]), 3);
    }

    #[test]
    fn a_wrong_size_is_refused() {
        let err = decode(&[1, 2], 2, 2).expect_err("3 of 4 pixels");
        assert!(
            matches!(err, ProtocolError::MaskSize { sum: 3, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_square_polygon_sets_the_pixels_whose_centres_it_holds() {
        let p = |x, y| Point { x, y };
        // Centres 2.5..5.5 in x and 1.5..3.5 in y lie inside [2, 6) x [1, 4).
        let square = [p(2.0, 1.0), p(6.0, 1.0), p(6.0, 4.0), p(2.0, 4.0)];
        let (mut counts, mut scratch) = (Vec::new(), Vec::new());
        from_polygon(&square, 8, 5, &mut counts, &mut scratch);
        let pixels = decode(&counts, 8, 5).expect("decodes");
        for y in 0..5 {
            for x in 0..8 {
                let inside = (2..6).contains(&x) && (1..4).contains(&y);
                assert_eq!(pixels[y * 8 + x] == 1, inside, "({x}, {y})");
            }
        }
        assert_eq!(area(&counts), 12);
    }

    #[test]
    fn a_polygon_partly_outside_the_frame_is_clipped() {
        let p = |x, y| Point { x, y };
        let big = [p(-5.0, -5.0), p(20.0, -5.0), p(20.0, 20.0), p(-5.0, 20.0)];
        let (mut counts, mut scratch) = (Vec::new(), Vec::new());
        from_polygon(&big, 4, 3, &mut counts, &mut scratch);
        assert_eq!(counts, vec![0, 12]);
        from_polygon(&big[..2], 4, 3, &mut counts, &mut scratch);
        assert_eq!(counts, vec![12], "a degenerate polygon sets nothing");
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_the_identity(
            (w, h, pixels) in (1u32..12, 1u32..12).prop_flat_map(|(w, h)| {
                (Just(w), Just(h), proptest::collection::vec(0u8..2, (w * h) as usize))
            })
        ) {
            let mut counts = Vec::new();
            encode(&pixels, w, h, &mut counts);
            prop_assert_eq!(counts.iter().map(|&c| u64::from(c)).sum::<u64>(), u64::from(w * h));
            prop_assert!(counts.iter().skip(1).all(|&c| c > 0), "no empty run after the first");
            prop_assert_eq!(decode(&counts, w, h).expect("decodes"), pixels.clone());
            prop_assert_eq!(area(&counts), pixels.iter().map(|&p| u64::from(p)).sum::<u64>());
        }
    }
}
