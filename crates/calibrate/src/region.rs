//! Fits the image region to the moving pixels: a rectangle (linear probe)
//! or a fan (convex or phased probe).
//!
//! Per row, the leftmost and rightmost moving pixel; per column, the
//! topmost and bottommost, within the tallest band of rows that move. The
//! left and right edges are fitted as straight lines (least squares, then
//! again on the rows that agree with the first fit): vertical lines make a
//! rectangle, lines that open downward symmetrically make a fan whose apex
//! is where they meet and whose half angle is their mean slope. A fan's
//! inner radius is read at its centre columns (on some screens the fan's
//! shallow corners are dark: above the skin line nothing echoes), its
//! outer radius along the middle of its bottom arc. The top edge may reach
//! a few still rows above the moving ones where they stand out from the
//! screen above: the bright near field under the probe barely changes.
//!
//! Edge estimates are corner-based and unbiased for a region whose pixels
//! are "inside" when their centre is: the leftmost inside pixel's left edge
//! and the rightmost's right edge straddle the true boundary evenly.

use sonoflow_core::findings::{ImageRegion, Point};

use crate::motion::MotionMap;

const NONE: u32 = u32::MAX;
/// Smaller regions are not an ultrasound image.
const MIN_SIZE: usize = 32;
/// Edge lines this close to vertical (dx per dy) make a rectangle.
const RECT_SLOPE: f64 = 0.03;
/// A fan's edges open at least this much (dx per dy).
const FAN_SLOPE: f64 = 0.05;
/// Columns either side of a fan's centre where its inner radius is read.
const CENTRE_COLUMNS: i64 = 6;
/// Still rows at most this many above the moving ones may belong to the
/// image (its near field)…
const NEAR_FIELD: usize = 3;
/// …when they differ from the screen above by more than this.
const NEAR_FIELD_CONTRAST: u8 = 32;
/// Every this many pixels in x and y, the fit's fill is sampled.
const FILL_STEP: usize = 5;

/// Why no region was fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegionError {
    /// Too few pixels move to make an image.
    NoMotion,
    /// What moves is neither a rectangle nor a fan.
    NoShape,
}

/// A fitted region and what it implies for the ruler.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RegionFit {
    pub region: ImageRegion,
    /// Frame row (corner-based) of depth zero: a rectangle's top, a fan's
    /// inner arc at its centre.
    pub depth_zero: f64,
    /// The image's depth in pixels: a rectangle's height, a fan's r1 - r0.
    pub depth_px: f64,
    /// 0..1: how well the moving pixels fill the region and stay in it,
    /// and how straight its edges are.
    pub quality: f32,
    /// Fraction of the region's pixels that move, for the watch.
    pub fill: f32,
}

/// Buffers reused from fit to fit.
#[derive(Debug, Default)]
pub(crate) struct RegionScratch {
    left: Vec<u32>,
    right: Vec<u32>,
    row_moving: Vec<u32>,
    points: Vec<(f64, f64)>,
    values: Vec<f64>,
}

impl RegionScratch {
    /// Sizes every buffer for a `width × height` frame, so that fits
    /// allocate nothing.
    pub fn reserve(&mut self, width: usize, height: usize) {
        for v in [&mut self.left, &mut self.right, &mut self.row_moving] {
            v.clear();
            v.reserve(height);
        }
        self.points.clear();
        self.points.reserve(height);
        self.values.clear();
        self.values.reserve(width.max(height));
    }
}

/// A line x = a + b·y and how well it fits.
#[derive(Debug, Clone, Copy)]
struct Line {
    a: f64,
    b: f64,
    rms: f64,
}

impl Line {
    fn x(&self, y: f64) -> f64 {
        self.a + self.b * y
    }
}

/// Least squares x = a + b·y over `points` (y, x).
fn least_squares(points: &[(f64, f64)]) -> Option<Line> {
    let n = points.len() as f64;
    if points.len() < 3 {
        return None;
    }
    let (sy, sx) = points
        .iter()
        .fold((0.0, 0.0), |(sy, sx), &(y, x)| (sy + y, sx + x));
    let (my, mx) = (sy / n, sx / n);
    let (syy, syx) = points.iter().fold((0.0, 0.0), |(syy, syx), &(y, x)| {
        (syy + (y - my) * (y - my), syx + (y - my) * (x - mx))
    });
    if syy <= 0.0 {
        return None;
    }
    let b = syx / syy;
    let a = mx - b * my;
    let sq: f64 = points
        .iter()
        .map(|&(y, x)| (x - a - b * y).powi(2))
        .sum::<f64>();
    Some(Line {
        a,
        b,
        rms: (sq / n).sqrt(),
    })
}

/// The median of `values` (reordered), if any.
pub(crate) fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mid = values.len() / 2;
    let (_, m, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
    Some(*m)
}

/// The edge position of a per-row or per-column extreme (NONE: empty),
/// moved by `add` (0 for a leading edge, 1 for a trailing one).
fn edge(v: u32, add: f64) -> Option<f64> {
    (v != NONE).then(|| f64::from(v) + add)
}

/// Fits an edge line to per-row extremes `edges` (moved by `add`): first
/// on rows `seed`, then twice on every row of `band` within 1.5 px of it.
fn edge_line(
    points: &mut Vec<(f64, f64)>,
    edges: &[u32],
    add: f64,
    seed: (usize, usize),
    band: (usize, usize),
) -> Option<Line> {
    let rows = |(a, b): (usize, usize)| {
        (a..=b).filter_map(|y| edge(edges[y], add).map(|x| (y as f64 + 0.5, x)))
    };
    points.clear();
    points.extend(rows(seed));
    let mut line = least_squares(points)?;
    for _ in 0..2 {
        points.clear();
        points.extend(rows(band).filter(|&(y, x)| (x - line.x(y)).abs() < 1.5));
        line = least_squares(points)?;
    }
    Some(line)
}

/// The median of the edges `v[range]` (moved by `add`), reusing `values`.
fn edge_median(
    values: &mut Vec<f64>,
    v: &[u32],
    range: std::ops::Range<usize>,
    add: f64,
) -> Result<f64, RegionError> {
    values.clear();
    values.extend(v[range].iter().filter_map(|&e| edge(e, add)));
    median(values).ok_or(RegionError::NoShape)
}

/// Fits a rectangle or a fan to the pixels `map` says move.
pub(crate) fn fit_region(map: &MotionMap, s: &mut RegionScratch) -> Result<RegionFit, RegionError> {
    let (w, h) = (map.width, map.height);
    let thr = map.threshold();
    let counts = map.counts();
    s.left.clear();
    s.right.clear();
    s.row_moving.clear();
    for y in 0..h {
        let row = &counts[y * w..(y + 1) * w];
        let n = row.iter().map(|&c| u32::from(c >= thr)).sum::<u32>();
        s.row_moving.push(n);
        let (l, r) = if n == 0 {
            (NONE, NONE)
        } else {
            (first_moving(row, thr), last_moving(row, thr))
        };
        s.left.push(l);
        s.right.push(r);
    }
    let widest = s.row_moving.iter().copied().max().unwrap_or(0) as usize;
    if widest < MIN_SIZE {
        return Err(RegionError::NoMotion);
    }
    // The tallest band of rows that move.
    let min_row = (widest as u32 / 50).max(4);
    let (mut best, mut start) = ((0, 0), None);
    for y in 0..=h {
        let moving = y < h && s.row_moving[y] >= min_row;
        match (moving, start) {
            (true, None) => start = Some(y),
            (false, Some(y0)) => {
                if y - y0 > best.1 - best.0 {
                    best = (y0, y);
                }
                start = None;
            }
            _ => {}
        }
    }
    let (ya, yb) = (best.0, best.1.saturating_sub(1));
    let height = best.1 - best.0;
    if height < MIN_SIZE {
        return Err(RegionError::NoMotion);
    }
    let band = Band {
        counts,
        luma: map.luma(),
        width: w,
        thr,
        rows: (ya, yb),
    };
    let frac = |f: f64| ya + (f * height as f64) as usize;
    let seed = (frac(0.15), frac(0.55));
    let left =
        edge_line(&mut s.points, &s.left, 0.0, seed, (ya, yb)).ok_or(RegionError::NoShape)?;
    let right =
        edge_line(&mut s.points, &s.right, 1.0, seed, (ya, yb)).ok_or(RegionError::NoShape)?;
    let (region, depth_zero, depth_px) = if left.b.abs() < RECT_SLOPE && right.b.abs() < RECT_SLOPE
    {
        rect(s, &band)?
    } else if left.b < -FAN_SLOPE
        && right.b > FAN_SLOPE
        && (left.b + right.b).abs() < 0.25 * (right.b - left.b)
    {
        fan(s, &band, left, right)?
    } else {
        return Err(RegionError::NoShape);
    };
    let (fill, outside) = fill(map, &region);
    let straight = 1.0 - ((left.rms + right.rms) / 2.0 - 0.5).clamp(0.0, 1.5) / 1.5;
    let quality = ((f64::from(fill) - 0.5) / 0.4).clamp(0.0, 1.0)
        * (1.0 - f64::from(outside) / 0.1).clamp(0.0, 1.0)
        * straight;
    Ok(RegionFit {
        region,
        depth_zero,
        depth_px,
        quality: quality as f32,
        fill,
    })
}

/// The moving pixels within the band of rows the region spans.
struct Band<'a> {
    counts: &'a [u8],
    /// The last frame, for the near field.
    luma: &'a [u8],
    width: usize,
    thr: u8,
    rows: (usize, usize),
}

impl Band<'_> {
    fn moving(&self, x: usize, y: usize) -> bool {
        self.counts[y * self.width + x] >= self.thr
    }

    /// The topmost row of column `x` that belongs to the image: the
    /// topmost moving row in the band (a short walk: the image starts at or
    /// near the band's top), then up to `NEAR_FIELD` rows more that stand
    /// out from the screen above them: the bright near field right under
    /// the probe changes little from frame to frame.
    fn top(&self, x: usize) -> u32 {
        let Some(top) = (self.rows.0..=self.rows.1).find(|&y| self.moving(x, y)) else {
            return NONE;
        };
        let Some(above) = top.checked_sub(NEAR_FIELD + 2) else {
            return top as u32;
        };
        let background = self.luma[above * self.width + x];
        let mut y = top;
        while y > top - NEAR_FIELD
            && self.luma[(y - 1) * self.width + x].abs_diff(background) > NEAR_FIELD_CONTRAST
        {
            y -= 1;
        }
        y as u32
    }

    /// The bottommost moving row of column `x` in the band.
    fn bottom(&self, x: usize) -> u32 {
        (self.rows.0..=self.rows.1)
            .rev()
            .find(|&y| self.moving(x, y))
            .map_or(NONE, |y| y as u32)
    }
}

/// The first pixel of `row` at or above `thr` (NONE if none); 32 at a time.
fn first_moving(row: &[u8], thr: u8) -> u32 {
    let mut x = 0;
    for chunk in row.chunks(32) {
        if chunk.iter().fold(0, |m, &c| m.max(c)) >= thr {
            let i = chunk.iter().position(|&c| c >= thr).unwrap_or(0);
            return (x + i) as u32;
        }
        x += chunk.len();
    }
    NONE
}

/// The last pixel of `row` at or above `thr` (NONE if none); 32 at a time.
fn last_moving(row: &[u8], thr: u8) -> u32 {
    let mut end = row.len();
    for chunk in row.rchunks(32) {
        end -= chunk.len();
        if chunk.iter().fold(0, |m, &c| m.max(c)) >= thr {
            let i = chunk.iter().rposition(|&c| c >= thr).unwrap_or(0);
            return (end + i) as u32;
        }
    }
    NONE
}

fn rect(s: &mut RegionScratch, band: &Band<'_>) -> Result<(ImageRegion, f64, f64), RegionError> {
    let (ya, yb) = band.rows;
    let inset = (yb - ya) / 10;
    let rows = ya + inset..yb + 1 - inset;
    let x0 = edge_median(&mut s.values, &s.left, rows.clone(), 0.0)?.round();
    let x1 = edge_median(&mut s.values, &s.right, rows, 1.0)?.round();
    if x1 - x0 < MIN_SIZE as f64 {
        return Err(RegionError::NoShape);
    }
    let inset = ((x1 - x0) / 10.0) as usize;
    let cols = x0 as usize + inset..x1 as usize - inset;
    s.values.clear();
    s.values
        .extend(cols.clone().filter_map(|x| edge(band.top(x), 0.0)));
    let y0 = median(&mut s.values).ok_or(RegionError::NoShape)?.round();
    s.values.clear();
    s.values
        .extend(cols.filter_map(|x| edge(band.bottom(x), 1.0)));
    let y1 = median(&mut s.values).ok_or(RegionError::NoShape)?.round();
    let region = ImageRegion::Rect {
        x0: x0 as u32,
        y0: y0 as u32,
        x1: x1 as u32,
        y1: y1 as u32,
    };
    Ok((region, y0, y1 - y0))
}

fn fan(
    s: &mut RegionScratch,
    band: &Band<'_>,
    left: Line,
    right: Line,
) -> Result<(ImageRegion, f64, f64), RegionError> {
    let apex_y = (left.a - right.a) / (right.b - left.b);
    let apex_x = left.x(apex_y);
    let half_angle = (right.b.atan() + (-left.b).atan()) / 2.0;
    let dist = |x: f64, y: f64| ((x - apex_x).powi(2) + (y - apex_y).powi(2)).sqrt();
    let w = band.width as i64;
    // Inner radius: at the centre columns.
    s.values.clear();
    let centre = apex_x.floor() as i64;
    for x in (centre - CENTRE_COLUMNS).max(0)..=(centre + CENTRE_COLUMNS).min(w - 1) {
        if let Some(y) = edge(band.top(x as usize), 0.0) {
            s.values.push(dist(x as f64 + 0.5, y));
        }
    }
    let r0 = median(&mut s.values).ok_or(RegionError::NoShape)?;
    // Outer radius: along the middle of the bottom arc.
    let r1_guess = (band.rows.1 + 1) as f64 - apex_y;
    let reach = 0.6 * r1_guess * half_angle.sin();
    s.values.clear();
    for x in ((apex_x - reach).floor().max(0.0) as i64)..=((apex_x + reach) as i64).min(w - 1) {
        if let Some(y) = edge(band.bottom(x as usize), 1.0) {
            s.values.push(dist(x as f64 + 0.5, y));
        }
    }
    let r1 = median(&mut s.values).ok_or(RegionError::NoShape)?;
    if r1 - r0 < MIN_SIZE as f64 || !(0.05..1.5).contains(&half_angle) {
        return Err(RegionError::NoShape);
    }
    let region = ImageRegion::Fan {
        apex: Point {
            x: apex_x as f32,
            y: apex_y as f32,
        },
        r0: r0 as f32,
        r1: r1 as f32,
        half_angle: half_angle as f32,
    };
    Ok((region, apex_y + r0, r1 - r0))
}

/// `ImageRegion::contains` without a square root or an arc tangent per
/// pixel (the same test: a fan's |angle| <= half angle is |dx| <= dy·tan).
struct Inside {
    region: ImageRegion,
    tan: f32,
}

impl Inside {
    fn new(region: ImageRegion) -> Self {
        let tan = match region {
            ImageRegion::Fan { half_angle, .. } => half_angle.tan(),
            ImageRegion::Rect { .. } => 0.0,
        };
        Self { region, tan }
    }

    #[inline]
    fn contains(&self, x: u32, y: u32) -> bool {
        match self.region {
            ImageRegion::Rect { x0, y0, x1, y1 } => x >= x0 && x < x1 && y >= y0 && y < y1,
            ImageRegion::Fan { apex, r0, r1, .. } => {
                let dx = x as f32 + 0.5 - apex.x;
                let dy = y as f32 + 0.5 - apex.y;
                let r2 = dx * dx + dy * dy;
                dy > 0.0 && r2 >= r0 * r0 && r2 < r1 * r1 && dx.abs() <= dy * self.tan
            }
        }
    }
}

/// On a sparse grid: the fraction of the region's pixels that move, and
/// the fraction of moving pixels outside the region.
fn fill(map: &MotionMap, region: &ImageRegion) -> (f32, f32) {
    let thr = map.threshold();
    let counts = map.counts();
    let inside_test = Inside::new(*region);
    let (mut inside, mut inside_moving, mut outside_moving) = (0u32, 0u32, 0u32);
    for y in (FILL_STEP / 2..map.height).step_by(FILL_STEP) {
        for x in (FILL_STEP / 2..map.width).step_by(FILL_STEP) {
            let moving = counts[y * map.width + x] >= thr;
            if inside_test.contains(x as u32, y as u32) {
                inside += 1;
                inside_moving += u32::from(moving);
            } else {
                outside_moving += u32::from(moving);
            }
        }
    }
    let fill = inside_moving as f32 / inside.max(1) as f32;
    let outside = outside_moving as f32 / (inside_moving + outside_moving).max(1) as f32;
    (fill, outside)
}
