//! A log-linear histogram of atomic counters: recording is one relaxed
//! `fetch_add` into a bucket fixed at construction (and, rarely, a new
//! minimum or maximum), so any number of threads record at once without a
//! lock and without allocating; quantiles are read from the counters off the
//! frame path.
//!
//! Layout (as in HdrHistogram): values below `2 * SUB` have a bucket each; above,
//! each power of two `[2^e, 2^(e+1))` is cut into `SUB` equal buckets, so a bucket
//! is at most `1 / SUB` of its lowest value wide. A value is read back as its
//! bucket's midpoint, within `1 / (2 * SUB)` (0.4 %) of any value in the bucket.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bits kept below a value's highest set bit: 128 buckets per power of two.
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
/// The highest bit a value may have: values up to 2^37 - 1 (in nanoseconds,
/// about 137 s); larger ones are clamped to it.
const TOP_BIT: u32 = 36;
pub(crate) const MAX_VALUE: u64 = (1 << (TOP_BIT + 1)) - 1;
/// Two linear powers of two, then `SUB` buckets for each higher one.
const BUCKETS: usize = ((TOP_BIT - SUB_BITS + 2) as usize) << SUB_BITS;

/// The bucket of `value` (at most [`MAX_VALUE`]).
fn bucket_of(value: u64) -> usize {
    if value < 2 * SUB {
        return value as usize;
    }
    let shift = (u64::BITS - 1 - value.leading_zeros()) - SUB_BITS;
    ((u64::from(shift) << SUB_BITS) + (value >> shift)) as usize
}

/// The lowest value of bucket `index` and its width.
fn bucket_range(index: usize) -> (u64, u64) {
    let index = index as u64;
    if index < 2 * SUB {
        return (index, 1);
    }
    let shift = (index >> SUB_BITS) - 1;
    let mantissa = index - (shift << SUB_BITS);
    (mantissa << shift, 1 << shift)
}

/// What [`AtomicHistogram::read`] finds; values as recorded (clamped).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Reading<const N: usize> {
    pub count: u64,
    pub min: u64,
    pub max: u64,
    /// Within 0.4 % of the exact mean (from the buckets' midpoints).
    pub mean: f64,
    /// One value per requested quantile, each within 0.4 % of the exact
    /// (nearest-rank) quantile of the recorded values.
    pub quantiles: [f64; N],
}

/// A fixed histogram of `u64` values, shared by the threads that record.
pub(crate) struct AtomicHistogram {
    buckets: Box<[AtomicU64]>,
    min: AtomicU64,
    max: AtomicU64,
}

impl AtomicHistogram {
    /// Allocates all buckets (about 31 KiB) once.
    pub fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
        }
    }

    /// Counts `value` (clamped to [`MAX_VALUE`]). Lock-free and wait-free
    /// but for the rare new minimum or maximum; allocates nothing.
    pub fn record(&self, value: u64) {
        let value = value.min(MAX_VALUE);
        if let Some(bucket) = self.buckets.get(bucket_of(value)) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        // Read first: once warmed up, extremes rarely change, and a plain load
        // keeps the cache line shared between recording threads.
        if value > self.max.load(Ordering::Relaxed) {
            self.max.fetch_max(value, Ordering::Relaxed);
        }
        if value < self.min.load(Ordering::Relaxed) {
            self.min.fetch_min(value, Ordering::Relaxed);
        }
    }

    /// Count, extremes, mean and the values at `quantiles` (ascending, in
    /// `0..=1`), or `None` when nothing was recorded. Reads the buckets up to
    /// the maximum's twice; values recorded meanwhile may or may not count.
    pub fn read<const N: usize>(&self, quantiles: [f64; N]) -> Option<Reading<N>> {
        let (min, max) = (
            self.min.load(Ordering::Relaxed),
            self.max.load(Ordering::Relaxed),
        );
        let used = self.buckets.get(..=bucket_of(max))?;
        let (mut count, mut total) = (0u64, 0.0f64);
        for (index, bucket) in used.iter().enumerate() {
            let n = bucket.load(Ordering::Relaxed);
            if n > 0 {
                count += n;
                total += n as f64 * midpoint(index);
            }
        }
        if count == 0 {
            return None;
        }
        // Never outside what was recorded: min and max are exact (though
        // they may lag a value being recorded this very moment).
        let within = |v: f64| {
            if min <= max {
                v.clamp(min as f64, max as f64)
            } else {
                v
            }
        };
        // Nearest rank: the smallest value with at least q * count values at or below it.
        let ranks = quantiles.map(|q| ((q.clamp(0.0, 1.0) * count as f64).ceil() as u64).max(1));
        let mut values = [max as f64; N];
        let (mut next, mut seen) = (0, 0u64);
        for (index, bucket) in used.iter().enumerate() {
            seen += bucket.load(Ordering::Relaxed);
            while next < N && seen >= ranks[next] {
                values[next] = within(midpoint(index));
                next += 1;
            }
            if next == N {
                break;
            }
        }
        Some(Reading {
            count,
            min,
            max,
            mean: within(total / count as f64),
            quantiles: values,
        })
    }
}

/// The value bucket `index` stands for: its midpoint.
fn midpoint(index: usize) -> f64 {
    let (low, width) = bucket_range(index);
    low as f64 + (width - 1) as f64 / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_tile_the_range_without_gaps() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(MAX_VALUE), BUCKETS - 1);
        let mut expected_low = 0;
        for index in 0..BUCKETS {
            let (low, width) = bucket_range(index);
            assert_eq!(low, expected_low, "bucket {index}");
            assert_eq!(bucket_of(low), index);
            assert_eq!(bucket_of(low + width - 1), index);
            assert!(width == 1 || width * SUB <= low, "bucket {index} too wide");
            expected_low = low + width;
        }
        assert_eq!(expected_low, MAX_VALUE + 1);
    }

    #[test]
    fn a_single_value_reads_back_exactly() {
        let h = AtomicHistogram::new();
        h.record(123_456_789);
        let r = h.read([0.0, 0.5, 1.0]).expect("one value");
        assert_eq!((r.count, r.min, r.max), (1, 123_456_789, 123_456_789));
        assert_eq!((r.mean, r.quantiles), (123_456_789.0, [123_456_789.0; 3]));
    }

    #[test]
    fn values_past_the_top_are_clamped() {
        let h = AtomicHistogram::new();
        h.record(u64::MAX);
        let r = h.read([0.5]).expect("one value");
        assert_eq!((r.count, r.max), (1, MAX_VALUE));
    }
}
