//! How far a lesion stands out from the tissue around it in the pixels of
//! one rendered frame: a model-free test that knows the lesion's exact shape
//! and place, so that a label without an image shows as one.
//!
//! Two templates are cut from the lesion's own label: its interior and a
//! band just inside its boundary ([`RIM_MM`] wide, where an isoechoic
//! lesion's rim is its only sign), each weighed against a ring just outside
//! it. The statistic of a template is the mean grey level under it minus
//! the mean under the ring. Its value at the lesion is set against the same
//! template placed on lesion-free tissue of the same frame at about the
//! same depth, where speckle, anatomy and the depth's gain alone make it
//! vary: z = (lesion - mean of placements) / their standard deviation.
//! The lesion's conspicuity is the larger |z| of the two templates.
//!
//! An observer who knows the shape and the place cannot tell the lesion from
//! tissue better than this; one who must also search the frame needs more
//! (about z 4 to 6 at a few false findings per 100 frames), so a lesion under
//! about 4 can be missed by any model, and one under 2 is not in the image.

use sonoflow_core::findings::{label, BoundingBox, GroundTruth, LabelMap};

/// Width of the band inside the boundary that the rim template covers (mm):
/// the phantom's isoechoic rims are about this wide.
pub const RIM_MM: f64 = 1.1;
/// Fewest placements on tissue for a z (fewer: no conspicuity).
const MIN_PLACEMENTS: usize = 30;
/// Most placements scored (on a grid spread over the depth band).
const MAX_PLACEMENTS: usize = 400;
/// Most pixels of a template or ring that are summed (an even subsample of
/// a larger one), so that a 30 mm lesion costs what a 5 mm one does.
const MAX_TEMPLATE_PIXELS: usize = 2048;

/// Sets the conspicuity of every lesion of `truth`, measured in `pixels`
/// (GRAY8, the frame `truth` belongs to).
pub fn measure_lesions(pixels: &[u8], truth: &mut GroundTruth) {
    let spacing = truth.pixel_spacing.x_mm;
    let frame = Frame::new(pixels, &truth.labels);
    for lesion in &mut truth.lesions {
        lesion.conspicuity = frame
            .as_ref()
            .and_then(|f| f.conspicuity(lesion.label, &lesion.bbox, spacing));
    }
}

/// The conspicuity (|z|, see the module) of the lesion labelled `value`
/// whose box is `bbox`, in `pixels` (GRAY8, the frame as rendered) with its
/// label map; `spacing_mm` is the frame's pixel size. None when the lesion
/// is under 4 pixels or the frame has too little lesion-free tissue to place
/// its templates on.
pub fn conspicuity(
    pixels: &[u8],
    labels: &LabelMap,
    value: u8,
    bbox: &BoundingBox,
    spacing_mm: f64,
) -> Option<f32> {
    Frame::new(pixels, labels)?.conspicuity(value, bbox, spacing_mm)
}

impl Frame<'_> {
    /// [`conspicuity`] in this frame.
    fn conspicuity(&self, value: u8, bbox: &BoundingBox, spacing_mm: f64) -> Option<f32> {
        let (width, height) = (self.width, self.height);
        if spacing_mm <= 0.0 {
            return None;
        }
        let (bx0, by0) = (bbox.x0.max(0.0) as i64, bbox.y0.max(0.0) as i64);
        let (bw, bh) = (
            (bbox.x1 as i64).min(width) - bx0,
            (bbox.y1 as i64).min(height) - by0,
        );
        if bw <= 0 || bh <= 0 {
            return None;
        }
        let radius = 0.5 * bw.min(bh) as f64;
        let ring_px = ((1.0 / spacing_mm).round().max((0.3 * radius).round()) as i64).max(2);
        let rim_px = ((RIM_MM / spacing_mm).round() as i64).max(1);
        let pad = ring_px + 1;
        let mut shape = Grid::new(bw + 2 * pad, bh + 2 * pad);
        for y in 0..bh {
            for x in 0..bw {
                let v = self.labels.data[((by0 + y) * width + bx0 + x) as usize];
                shape.set(x + pad, y + pad, v == value);
            }
        }
        if shape.count() < 4 {
            return None;
        }
        let outer = shape.dilated(ring_px);
        let ring = outer.and_not(&shape);
        let inner = shape.eroded(rim_px);
        let rim = shape.and_not(&inner);
        let interior = if inner.count() >= 4 { inner } else { shape };
        // The crop's top-left corner in the frame.
        let (ox, oy) = (bx0 - pad, by0 - pad);
        let places = self.tissue_places(&outer, oy, bh, spacing_mm);
        if places.len() < MIN_PLACEMENTS {
            return None;
        }
        let ring_cells = ring.cells();
        [interior, rim]
            .iter()
            .filter(|t| t.count() >= 4)
            .filter_map(|t| {
                let cells = t.cells();
                let own = self.mean(&cells, ox, oy, |_| true)?
                    - self.mean(&ring_cells, ox, oy, is_tissue)?;
                let null: Vec<f64> = places
                    .iter()
                    .filter_map(|&(x, y)| {
                        Some(
                            self.mean(&cells, x, y, |_| true)?
                                - self.mean(&ring_cells, x, y, |_| true)?,
                        )
                    })
                    .collect();
                let (mean, sd) = mean_and_sd(&null)?;
                (sd > 0.0).then(|| ((own - mean) / sd).abs())
            })
            .max_by(f64::total_cmp)
            .map(|z| z as f32)
    }
}

/// Tissue the templates are compared on: fat, gland or muscle (not skin,
/// not a lesion, not outside the image), for the lesion's ring and for the
/// places alike.
fn is_tissue(v: u8) -> bool {
    (label::FAT..label::LESION_BASE).contains(&v)
}

/// The mean and the (population) standard deviation; None when empty.
pub(crate) fn mean_and_sd(values: &[f64]) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    Some((mean, var.sqrt()))
}

/// The frame's pixels and labels, read at signed coordinates, with the
/// counts of what is not tissue ([`is_tissue`]) that every lesion's places
/// are chosen by.
struct Frame<'a> {
    pixels: &'a [u8],
    labels: &'a LabelMap,
    width: i64,
    height: i64,
    not_tissue: SummedArea,
}

impl<'a> Frame<'a> {
    /// None when the pixels and the label map are not of the map's size.
    fn new(pixels: &'a [u8], labels: &'a LabelMap) -> Option<Self> {
        let pixel_count = labels.width as usize * labels.height as usize;
        if pixels.len() != pixel_count || labels.data.len() != pixel_count {
            return None;
        }
        let (width, height) = (i64::from(labels.width), i64::from(labels.height));
        Some(Self {
            pixels,
            labels,
            width,
            height,
            not_tissue: SummedArea::new(width, height, |i| !is_tissue(labels.data[i])),
        })
    }

    /// Mean grey level of `cells` shifted by (x, y), over those inside the
    /// frame whose label `keep` accepts (None: none).
    fn mean(&self, cells: &[(i64, i64)], x: i64, y: i64, keep: impl Fn(u8) -> bool) -> Option<f64> {
        let (mut sum, mut n) = (0.0, 0u32);
        for &(cx, cy) in cells {
            let (px, py) = (cx + x, cy + y);
            if px < 0 || py < 0 || px >= self.width || py >= self.height {
                continue;
            }
            let i = (py * self.width + px) as usize;
            if keep(self.labels.data[i]) {
                sum += f64::from(self.pixels[i]);
                n += 1;
            }
        }
        (n > 0).then(|| sum / f64::from(n))
    }

    /// Top-left corners where `footprint` lies wholly on fat, gland or
    /// muscle (no skin, no lesion, nothing outside the image), at most
    /// [`MAX_PLACEMENTS`] of them on a grid: in the depth band of a lesion
    /// whose crop starts at `y0` and which is `lesion_h` high
    /// (`max(lesion_h, 5 mm)` either way), or anywhere when the band holds
    /// too few.
    fn tissue_places(
        &self,
        footprint: &Grid,
        y0: i64,
        lesion_h: i64,
        spacing_mm: f64,
    ) -> Vec<(i64, i64)> {
        let bad = &self.not_tissue;
        let (w, h) = (footprint.width, footprint.height);
        let runs = footprint.runs();
        // Its box clear, or (a round lesion's corners over skin) every one
        // of its own pixels, a row run at a time.
        let free = |x: i64, y: i64| {
            bad.sum(x, y, w, h) == 0
                || runs
                    .iter()
                    .all(|&(dy, x0, x1)| bad.sum(x + x0, y + dy, x1 - x0, 1) == 0)
        };
        // Corners closer than a sixteenth of the lesion add nothing but time.
        let finest = (w.min(h) / 16).max(1) as usize;
        let reach = lesion_h.max((5.0 / spacing_mm).round() as i64);
        let band = (y0 - reach).max(0)..=(y0 + reach).min(self.height - h);
        let anywhere = 0..=(self.height - h);
        for rows in [band, anywhere] {
            let (area, cols) = (
                (rows.end() - rows.start() + 1).max(0),
                (self.width - w + 1).max(0),
            );
            let coarsest = ((area * cols) as f64 / MAX_PLACEMENTS as f64)
                .sqrt()
                .ceil()
                .max(1.0) as usize;
            // Finer grids until enough corners are free (a large lesion
            // leaves few), then an even pick of at most MAX_PLACEMENTS.
            let mut stride = coarsest.max(finest);
            loop {
                let places: Vec<(i64, i64)> = rows
                    .clone()
                    .step_by(stride)
                    .flat_map(|y| (0..cols).step_by(stride).map(move |x| (x, y)))
                    .filter(|&(x, y)| free(x, y))
                    .collect();
                if places.len() >= MIN_PLACEMENTS {
                    let every = places.len().div_ceil(MAX_PLACEMENTS);
                    return places.into_iter().step_by(every).collect();
                }
                if stride <= finest {
                    break;
                }
                stride = stride.div_ceil(2).max(finest);
            }
        }
        Vec::new()
    }
}

/// Counts of a condition over any rectangle in constant time.
struct SummedArea {
    width: i64,
    table: Vec<u32>,
}

impl SummedArea {
    fn new(width: i64, height: i64, on: impl Fn(usize) -> bool) -> Self {
        let stride = width + 1;
        let mut table = vec![0u32; ((width + 1) * (height + 1)) as usize];
        for y in 0..height {
            let mut row = 0u32;
            for x in 0..width {
                row += u32::from(on((y * width + x) as usize));
                table[((y + 1) * stride + x + 1) as usize] =
                    table[(y * stride + x + 1) as usize] + row;
            }
        }
        Self { width, table }
    }

    /// How many pixels of the `w` x `h` box at (x, y) are on.
    fn sum(&self, x: i64, y: i64, w: i64, h: i64) -> u32 {
        let s = self.width + 1;
        let at = |x: i64, y: i64| self.table[(y * s + x) as usize];
        at(x + w, y + h) + at(x, y) - at(x + w, y) - at(x, y + h)
    }
}

/// A binary image of one lesion's crop.
#[derive(Clone)]
struct Grid {
    width: i64,
    height: i64,
    on: Vec<bool>,
}

impl Grid {
    fn new(width: i64, height: i64) -> Self {
        Self {
            width,
            height,
            on: vec![false; (width * height) as usize],
        }
    }

    fn set(&mut self, x: i64, y: i64, v: bool) {
        self.on[(y * self.width + x) as usize] = v;
    }

    fn count(&self) -> usize {
        self.on.iter().filter(|&&v| v).count()
    }

    /// Grown by `steps` pixels, one 4-neighbour step at a time (a diamond).
    fn dilated(&self, steps: i64) -> Self {
        let mut grid = self.clone();
        for _ in 0..steps {
            let prev = grid.on.clone();
            let w = self.width as usize;
            for (i, cell) in grid.on.iter_mut().enumerate() {
                let (x, y) = (i % w, i / w);
                *cell = prev[i]
                    || (x > 0 && prev[i - 1])
                    || (x + 1 < w && prev[i + 1])
                    || (y > 0 && prev[i - w])
                    || (i + w < prev.len() && prev[i + w]);
            }
        }
        grid
    }

    /// Shrunk by `steps` pixels (the complement grown).
    fn eroded(&self, steps: i64) -> Self {
        let mut inverse = self.clone();
        inverse.on.iter_mut().for_each(|v| *v = !*v);
        let mut grown = inverse.dilated(steps);
        grown.on.iter_mut().for_each(|v| *v = !*v);
        grown
    }

    fn and_not(&self, other: &Self) -> Self {
        let mut grid = self.clone();
        for (v, &o) in grid.on.iter_mut().zip(&other.on) {
            *v &= !o;
        }
        grid
    }

    /// Its pixels as row runs: (row, first column, column past the last).
    fn runs(&self) -> Vec<(i64, i64, i64)> {
        let mut runs = Vec::new();
        for y in 0..self.height {
            let row = &self.on[(y * self.width) as usize..((y + 1) * self.width) as usize];
            let mut x = 0;
            while x < self.width {
                if row[x as usize] {
                    let start = x;
                    while x < self.width && row[x as usize] {
                        x += 1;
                    }
                    runs.push((y, start, x));
                } else {
                    x += 1;
                }
            }
        }
        runs
    }

    /// The coordinates of its pixels, at most [`MAX_TEMPLATE_PIXELS`] of
    /// them (every k-th, k the smallest that fits).
    fn cells(&self) -> Vec<(i64, i64)> {
        let every = self.count().div_ceil(MAX_TEMPLATE_PIXELS).max(1);
        self.on
            .iter()
            .enumerate()
            .filter(|(_, &v)| v)
            .step_by(every)
            .map(|(i, _)| (i as i64 % self.width, i as i64 / self.width))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 200x160 frame of gland with speckle-like noise from a fixed
    /// sequence, and one round lesion of radius 12 at (100, 80) whose
    /// interior is offset by `interior` grey levels and whose 2-pixel rim
    /// by `rim`.
    fn frame(interior: f64, rim: f64) -> (Vec<u8>, LabelMap, BoundingBox) {
        let (w, h) = (200u32, 160u32);
        let mut state = 12345u64;
        let mut noise = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) % 41) as f64 - 20.0
        };
        let mut pixels = vec![0u8; (w * h) as usize];
        let mut data = vec![label::GLAND; (w * h) as usize];
        for y in 0..h {
            for x in 0..w {
                let d = ((f64::from(x) - 100.0).powi(2) + (f64::from(y) - 80.0).powi(2)).sqrt();
                let i = (y * w + x) as usize;
                let mut v = 120.0 + noise();
                if d <= 12.0 {
                    data[i] = label::LESION_BASE;
                    v += if d > 10.0 { rim } else { interior };
                }
                pixels[i] = v.clamp(0.0, 255.0) as u8;
            }
        }
        let bbox = BoundingBox {
            x0: 88.0,
            y0: 68.0,
            x1: 113.0,
            y1: 93.0,
        };
        (
            pixels,
            LabelMap {
                width: w,
                height: h,
                data,
            },
            bbox,
        )
    }

    fn z(interior: f64, rim: f64) -> f32 {
        let (pixels, labels, bbox) = frame(interior, rim);
        conspicuity(&pixels, &labels, label::LESION_BASE, &bbox, 0.5).expect("a z")
    }

    #[test]
    fn a_dark_lesion_stands_out_and_an_unmarked_one_does_not() {
        assert!(z(-60.0, -60.0) > 10.0, "{}", z(-60.0, -60.0));
        assert!(z(0.0, 0.0) < 3.0, "{}", z(0.0, 0.0));
    }

    #[test]
    fn an_isoechoic_lesion_shows_by_its_rim_alone() {
        let rim_only = z(0.0, 50.0);
        assert!(rim_only > 6.0, "{rim_only}");
    }

    #[test]
    fn more_contrast_is_more_conspicuous() {
        assert!(z(-10.0, -10.0) < z(-25.0, -25.0));
    }

    #[test]
    fn places_lie_wholly_on_tissue_even_where_their_box_does_not() {
        // Skin every 7th column: a box is never clear, so every place
        // must pass the footprint's own pixels, a row run at a time.
        let (pixels, mut labels, _) = frame(0.0, 0.0);
        let w = labels.width as usize;
        for (i, v) in labels.data.iter_mut().enumerate() {
            if (i % w).is_multiple_of(7) {
                *v = label::SKIN;
            }
        }
        let mut footprint = Grid::new(9, 9);
        for (x, y) in [
            (4, 0),
            (3, 1),
            (4, 1),
            (5, 1),
            (4, 2),
            (1, 4),
            (2, 4),
            (3, 4),
        ] {
            footprint.set(x, y, true);
        }
        assert_eq!(
            footprint.runs(),
            [(0, 4, 5), (1, 3, 6), (2, 4, 5), (4, 1, 4)]
        );
        let frame = Frame::new(&pixels, &labels).expect("sizes agree");
        let places = frame.tissue_places(&footprint, 60, 20, 0.5);
        assert!(places.len() >= MIN_PLACEMENTS, "{}", places.len());
        for (x, y) in places {
            for (dy, x0, x1) in footprint.runs() {
                for px in x + x0..x + x1 {
                    let v = labels.get(px as u32, (y + dy) as u32);
                    assert!(
                        is_tissue(v),
                        "place ({x}, {y}) covers label {v} at ({px}, {})",
                        y + dy
                    );
                }
            }
        }
    }

    #[test]
    fn no_tissue_to_compare_with_gives_none() {
        let (pixels, mut labels, bbox) = frame(-60.0, -60.0);
        for v in labels.data.iter_mut().filter(|v| **v == label::GLAND) {
            *v = label::SKIN;
        }
        assert_eq!(
            conspicuity(&pixels, &labels, label::LESION_BASE, &bbox, 0.5),
            None
        );
    }
}
