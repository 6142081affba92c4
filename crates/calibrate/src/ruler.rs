//! Finds the depth ruler beside the image region and its tick period.
//!
//! Carts draw the depth scale as evenly spaced tick marks (or dots) in a
//! column beside the image, bright on a dark background, usually every
//! centimetre with shorter ticks between (every 5, 2 or 1 mm) or longer,
//! numbered ones every 5 cm. The search looks at each still column within
//! reach of the region's left and right edges, over the region's rows:
//! the column's bright runs no thicker than a tick are tick candidates;
//! their period comes from the median gap, refined by least squares of
//! tick row against tick number (missing ticks are skipped, stray marks
//! dropped). The column with the most evenly spaced ticks wins. Each of
//! its ticks is then measured along its row: when the ticks come in two
//! lengths and the long ones fall on every n-th tick, the long ones are the
//! major ticks (n minor steps each); when all are alike, each is a major
//! tick. What a major step is in millimetres is not read from the screen
//! (no digit reading): the options say it (10 mm on nearly every cart).

use sonoflow_core::findings::BoundingBox;

use crate::motion::MotionMap;

/// A tick column's darkest and brightest pixels differ by at least this.
const MIN_CONTRAST: u8 = 48;
/// Ticks closer than this many pixels cannot be told apart.
const MIN_PERIOD: f64 = 4.0;
/// At least this many evenly spaced ticks make a ruler.
const MIN_TICKS: usize = 4;
/// Columns within this fraction of the frame width of the region are searched.
const REACH: f64 = 1.0 / 6.0;

/// A ruler found beside the region.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RulerFit {
    /// Pixels from one tick to the next.
    pub period_px: f64,
    /// Standard error of `period_px` from the fit.
    pub period_sigma_px: f64,
    /// Ticks per major step: n for a two-length ruler whose long ticks fall
    /// on every n-th tick, 1 when all ticks are alike.
    pub per_major: u32,
    /// Whether the ticks come in two lengths in a regular pattern.
    pub two_level: bool,
    /// Ticks that fit the period.
    pub ticks: usize,
    /// Frame rows (corner-based) of the first and last tick's centre.
    pub first: f64,
    pub last: f64,
    /// Where the ticks are: x0, y0, x1, y1 (exclusive), for the watch.
    pub strip: [usize; 4],
    /// Ticks go on past the region's top or bottom (the region is short).
    pub extends_past: bool,
    /// 0..1: tick count, evenness, stray marks, pattern.
    pub quality: f32,
}

impl RulerFit {
    /// Pixels from one major tick to the next.
    pub fn major_px(&self) -> f64 {
        self.period_px * f64::from(self.per_major)
    }

    /// Relative standard uncertainty of the period.
    pub fn relative_sigma(&self) -> f64 {
        self.period_sigma_px / self.period_px
    }
}

/// Evenly spaced ticks found in one column.
#[derive(Debug, Clone, Copy)]
struct PeriodFit {
    period: f64,
    sigma: f64,
    /// Row of tick number 0.
    origin: f64,
    rms: f64,
    inliers: usize,
    runs: usize,
}

/// Buffers reused from search to search.
#[derive(Debug, Default)]
pub(crate) struct RulerScratch {
    centres: Vec<f64>,
    best_centres: Vec<f64>,
    gaps: Vec<f64>,
    ticks: Vec<(i64, f64)>,
    lengths: Vec<(i64, usize)>,
    columns: Vec<Column>,
}

impl RulerScratch {
    /// Sizes every buffer for a `width × height` frame, so that searches
    /// allocate nothing.
    pub fn reserve(&mut self, width: usize, height: usize) {
        let ticks = height / 2 + 1;
        for v in [&mut self.centres, &mut self.best_centres, &mut self.gaps] {
            v.clear();
            v.reserve(ticks);
        }
        self.ticks.clear();
        self.ticks.reserve(ticks);
        self.lengths.clear();
        self.lengths.reserve(ticks);
        self.columns.clear();
        self.columns.reserve(width);
    }
}

/// A candidate column: its frame x, darkest and brightest pixel, and how
/// many of its pixels move.
#[derive(Debug, Clone, Copy)]
struct Column {
    x: usize,
    lo: u8,
    hi: u8,
    moves: u32,
}

/// Searches beside `bounds` (the region's box) for a ruler spanning at
/// least 60 % of `depth_px` rows, then looks past the box's top and bottom
/// for more of it. `map` holds the last frame's luma and what moves.
/// `inset`: columns this far inside the box's left and right edges are
/// searched too (0 for a box fitted to what moves, which ends where the
/// image does; more for a box a file states, which may take in the ruler
/// drawn at the image's edge).
pub(crate) fn find_ruler(
    map: &MotionMap,
    bounds: BoundingBox,
    depth_px: f64,
    inset: usize,
    s: &mut RulerScratch,
) -> Option<RulerFit> {
    let (w, h) = (map.width, map.height);
    let luma = map.luma();
    let counts = map.counts();
    let moving = map.threshold();
    let y_lo = (bounds.y0.floor() as i64 - 4).max(0) as usize;
    let y_hi = ((bounds.y1.ceil() as i64 + 4).max(0) as usize).min(h);
    if y_hi <= y_lo + 8 {
        return None;
    }
    let max_thick = (h / 120).max(3);
    let reach = ((w as f64 * REACH) as i64).max(40);
    let inset = inset.min(w) as i64;
    let right0 = (bounds.x1.ceil() as i64).max(0);
    let left0 = bounds.x0.floor() as i64 - 1;
    // Each candidate column's darkest and brightest pixel and its moving
    // pixels, gathered row by row (a walk down each column would miss the
    // cache on every pixel); only columns with contrast that stay still
    // are then walked.
    let right = (
        (right0 - inset).clamp(0, w as i64) as usize,
        (right0 + reach).min(w as i64) as usize,
    );
    let left = (
        (left0 - reach).max(0) as usize,
        (left0 + 1 + inset).clamp(0, w as i64) as usize,
    );
    s.columns.clear();
    for &(x0, x1) in &[right, left] {
        let first = s.columns.len();
        s.columns.extend((x0..x1).map(|x| Column {
            x,
            lo: u8::MAX,
            hi: 0,
            moves: 0,
        }));
        let cols = &mut s.columns[first..];
        for y in y_lo..y_hi {
            let l = &luma[y * w + x0..y * w + x1];
            let c = &counts[y * w + x0..y * w + x1];
            for ((col, &v), &n) in cols.iter_mut().zip(l).zip(c) {
                col.lo = col.lo.min(v);
                col.hi = col.hi.max(v);
                col.moves += u32::from(n >= moving);
            }
        }
    }
    // Nearest the region first: the right side outward, then the left.
    let n_right = right.1.saturating_sub(right.0);
    let order = (0..n_right).chain((n_right..s.columns.len()).rev());
    // (fit, column, threshold, on the right)
    let mut best: Option<(PeriodFit, usize, u8, bool)> = None;
    for i in order {
        let Column { x, lo, hi, moves } = s.columns[i];
        if hi - lo < MIN_CONTRAST || moves > 2 {
            continue;
        }
        let thr = lo + (hi - lo) / 2;
        s.centres.clear();
        let mut start = None;
        for y in y_lo..=y_hi {
            let bright = y < y_hi && luma[y * w + x] > thr;
            match (bright, start) {
                (true, None) => start = Some(y),
                (false, Some(y0)) => {
                    if y - y0 <= max_thick {
                        s.centres.push((y0 + y) as f64 / 2.0);
                    }
                    start = None;
                }
                _ => {}
            }
        }
        let Some(fit) = fit_period(&s.centres, &mut s.gaps, &mut s.ticks) else {
            continue;
        };
        let span = (fit.inliers.saturating_sub(1)) as f64 * fit.period;
        if fit.inliers * 4 < fit.runs * 3 || span < 0.6 * depth_px {
            continue;
        }
        let better = match &best {
            None => true,
            Some((b, ..)) => {
                fit.inliers > b.inliers || (fit.inliers == b.inliers && fit.rms < b.rms - 0.05)
            }
        };
        if better {
            best = Some((fit, x, thr, i < n_right));
            s.best_centres.clear();
            s.best_centres.extend_from_slice(&s.centres);
        }
    }
    let (fit, x, thr, on_right) = best?;
    // The winning column's ticks again, then each tick's length along its row.
    fit_period(&s.best_centres, &mut s.gaps, &mut s.ticks)?;
    s.lengths.clear();
    let (mut sx0, mut sx1) = (x, x + 1);
    for &(m, c) in &s.ticks {
        let row = (c.floor() as usize).min(h - 1) * w;
        let mut left = x;
        while left > 0 && luma[row + left - 1] > thr {
            left -= 1;
        }
        let mut right = x;
        while right + 1 < w && luma[row + right + 1] > thr {
            right += 1;
        }
        sx0 = sx0.min(left);
        sx1 = sx1.max(right + 1);
        s.lengths.push((m, right + 1 - left));
    }
    // The strip stays outside where the search began (the image's edge when
    // `inset` is 0), whatever the walk touched.
    if on_right {
        sx0 = sx0.max(right.0);
    } else {
        sx1 = sx1.min(left.1);
    }
    let (per_major, two_level) = pattern(&s.lengths);
    let (first, last) = (
        s.ticks.first().map_or(0.0, |t| t.1),
        s.ticks.last().map_or(0.0, |t| t.1),
    );
    // Does the ruler go on past the box? Two more ticks where the period
    // puts them, above the first or below the last, say it does.
    let bright_near = |y: f64| {
        let y = y.round() as i64;
        (y - 1..=y + 1).any(|r| r >= 0 && (r as usize) < h && luma[r as usize * w + x] > thr)
    };
    let extends_past = (bright_near(first - fit.period) && bright_near(first - 2.0 * fit.period))
        || (bright_near(last + fit.period) && bright_near(last + 2.0 * fit.period));
    let half = (fit.period / 2.0).ceil() as usize;
    let strip = [
        sx0,
        (first as usize).saturating_sub(half),
        sx1,
        (last as usize + half + 1).min(h),
    ];
    // 4 ticks (the fewest): 0.85; 6 or more: 1.
    let q_count = (0.55 + 0.075 * fit.inliers as f64).min(1.0);
    let q_even = 1.0 - 0.5 * (fit.rms / (0.1 * fit.period)).clamp(0.0, 1.0);
    let q_stray = fit.inliers as f64 / fit.runs as f64;
    let q_pattern = match (two_level, per_major) {
        (true, 2 | 5 | 10) => 1.0,
        (false, _) => 0.7,
        (true, _) => 0.5,
    };
    Some(RulerFit {
        period_px: fit.period,
        period_sigma_px: fit.sigma,
        per_major,
        two_level,
        ticks: fit.inliers,
        first,
        last,
        strip,
        extends_past,
        quality: (q_count * q_even * q_stray * q_pattern) as f32,
    })
}

/// Evenly spaced ticks among `centres` (sorted rows): the period from the
/// median gap, each centre numbered from the anchor that agrees with most
/// others, then tick row = origin + period × number by least squares,
/// twice, dropping ticks more than a pixel (or a tenth of the period) off.
/// Leaves the ticks used, (number, row), in `ticks`.
fn fit_period(
    centres: &[f64],
    gaps: &mut Vec<f64>,
    ticks: &mut Vec<(i64, f64)>,
) -> Option<PeriodFit> {
    if centres.len() < MIN_TICKS {
        return None;
    }
    gaps.clear();
    gaps.extend(centres.windows(2).map(|p| p[1] - p[0]));
    let p0 = crate::region::median(gaps)?;
    if p0 < MIN_PERIOD {
        return None;
    }
    let near = |d: f64| (d / p0 - (d / p0).round()).abs() < 0.2;
    let anchor = (0..centres.len())
        .max_by_key(|&a| centres.iter().filter(|&&c| near(c - centres[a])).count())?;
    let a = centres[anchor];
    ticks.clear();
    for &c in centres {
        if near(c - a) {
            let m = ((c - a) / p0).round() as i64;
            if ticks.last().is_some_and(|t| t.0 == m) {
                continue;
            }
            ticks.push((m, c));
        }
    }
    let mut fit = line(ticks)?;
    for _ in 0..2 {
        let tolerance = (0.1 * fit.1).max(1.0);
        ticks.retain(|&(m, c)| (c - fit.0 - fit.1 * m as f64).abs() <= tolerance);
        fit = line(ticks)?;
    }
    let (origin, period, rms, sigma) = fit;
    Some(PeriodFit {
        period,
        sigma,
        origin,
        rms,
        inliers: ticks.len(),
        runs: centres.len(),
    })
    .filter(|f| f.inliers >= MIN_TICKS && f.period >= MIN_PERIOD && f.origin.is_finite())
}

/// Least squares row = origin + period × number: (origin, period, rms,
/// standard error of the period). The residual scatter is taken as at
/// least that of rounding to whole pixels (1/√12), so a ruler drawn
/// exactly on the pixel grid does not claim a perfect period.
fn line(ticks: &[(i64, f64)]) -> Option<(f64, f64, f64, f64)> {
    let n = ticks.len() as f64;
    if ticks.len() < 3 {
        return None;
    }
    let mm = ticks.iter().map(|t| t.0 as f64).sum::<f64>() / n;
    let mc = ticks.iter().map(|t| t.1).sum::<f64>() / n;
    let (smm, smc) = ticks.iter().fold((0.0, 0.0), |(smm, smc), &(m, c)| {
        let dm = m as f64 - mm;
        (smm + dm * dm, smc + dm * (c - mc))
    });
    if smm <= 0.0 {
        return None;
    }
    let period = smc / smm;
    let origin = mc - period * mm;
    let ss: f64 = ticks
        .iter()
        .map(|&(m, c)| (c - origin - period * m as f64).powi(2))
        .sum();
    let rms = (ss / n).sqrt();
    let scatter = (ss / (n - 2.0)).sqrt().max(1.0 / 12f64.sqrt());
    Some((origin, period, rms, scatter / smm.sqrt()))
}

/// From each tick's (number, length): ticks per major step and whether
/// the ruler has two tick lengths in a regular pattern.
fn pattern(lengths: &[(i64, usize)]) -> (u32, bool) {
    let lo = lengths.iter().map(|l| l.1).min().unwrap_or(0);
    let hi = lengths.iter().map(|l| l.1).max().unwrap_or(0);
    if hi < lo + 2 || (hi as f64) < 1.3 * lo as f64 {
        return (1, false);
    }
    let long = |len: usize| 2 * len >= lo + hi;
    let mut first = None;
    let mut step = 0i64;
    for &(m, len) in lengths {
        if long(len) {
            match first {
                None => first = Some(m),
                Some(f) => step = gcd(step, m - f),
            }
        }
    }
    let Some(first) = first else {
        return (1, false);
    };
    if step < 2 {
        return (1, false);
    }
    let mismatches = lengths
        .iter()
        .filter(|&&(m, len)| long(len) != ((m - first).rem_euclid(step) == 0))
        .count();
    if mismatches > 1 {
        return (1, false);
    }
    (step as u32, true)
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a.abs()
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_period_survives_a_missing_tick_and_a_stray_mark() {
        let mut centres: Vec<f64> = (0..10).map(|k| 20.5 + 30.4 * k as f64).collect();
        centres.remove(4);
        centres.push(100.0);
        centres.sort_by(f64::total_cmp);
        let fit = fit_period(&centres, &mut Vec::new(), &mut Vec::new()).expect("fit");
        assert!((fit.period - 30.4).abs() < 0.01, "{}", fit.period);
        assert_eq!(fit.inliers, 9);
        assert_eq!(fit.runs, 10);
    }

    #[test]
    fn long_ticks_every_second_make_two_levels() {
        let halves: Vec<(i64, usize)> = (0..9)
            .map(|m| (m, if m % 2 == 0 { 7 } else { 4 }))
            .collect();
        assert_eq!(pattern(&halves), (2, true));
        let alike: Vec<(i64, usize)> = (0..9).map(|m| (m, 5)).collect();
        assert_eq!(pattern(&alike), (1, false));
        let fifths: Vec<(i64, usize)> = (0..11)
            .map(|m| (m, if m % 5 == 0 { 9 } else { 3 }))
            .collect();
        assert_eq!(pattern(&fifths), (5, true));
    }
}
