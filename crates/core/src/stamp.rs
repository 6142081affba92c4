//! A frame counter and its capture time written into the frame's own
//! pixels, so that a second process that only sees decoded video (an RTP
//! receiver, a reader tailing a recording) can tell how long the frame took
//! from capture to it: glass-to-glass latency (`sonoflow bench glass`).
//!
//! The time is [`MachineClock`]'s: `CLOCK_MONOTONIC`, the same numbers in
//! every process of one machine, in microseconds modulo 2^32 (a window of 71
//! minutes, far beyond any latency).
//!
//! Layout (GRAY8 or RGBA, rows of any stride): a block of [`COLS`] x
//! [`ROWS`] cells of [`CELL`] x [`CELL`] pixels in the bottom-right corner,
//! its origin rounded down to a multiple of [`CELL`] so that each cell is
//! whole 8x8 (and 4x4) transform blocks of H.264 and survives its
//! quantisation. Every cell is black (0) or white (255):
//!
//! ```text
//! row 0       guard: W B W B W B (the reader's black and white levels)
//! rows 1-11   66 cells row by row, left to right: the counter (16 bits),
//!             the time (32 bits), CRC-16/CCITT-FALSE of those six bytes
//!             big-endian (16 bits), most significant bit first, white = 1;
//!             then black, white (an end mark)
//! ```
//!
//! A reader averages each cell's inner pixels (two pixels in from its edges,
//! so blur and chroma bleed at the borders do not count), takes the guard's
//! levels, and rejects the stamp when the guard is missing or faint, when a
//! cell is neither clearly black nor clearly white, when the end mark is
//! wrong, or when the checksum disagrees: a stamp it cannot read for sure is
//! an error, never a wrong number. The CRC detects every error of up to
//! three cells.

use std::time::Duration;

use crate::{Clock, FrameFormat, PixelFormat, Timestamp};

/// A cell's side in pixels.
pub const CELL: u32 = 8;
/// Cells across.
pub const COLS: u32 = 6;
/// Cells down: the guard row and eleven rows of data.
pub const ROWS: u32 = 12;
/// The stamp's width in pixels.
pub const STAMP_WIDTH: u32 = CELL * COLS;
/// The stamp's height in pixels.
pub const STAMP_HEIGHT: u32 = CELL * ROWS;

/// Guard levels closer than this (of 255) are not a stamp.
const MIN_CONTRAST: u8 = 80;
/// Data cells: 64 bits and the two-cell end mark.
const DATA_CELLS: usize = ((ROWS - 1) * COLS) as usize;
const BITS: usize = 64;
const END_MARK: [bool; 2] = [false, true];
/// Pixels left out at each edge of a cell when it is read.
const INSET: u32 = 2;

/// What a stamp says: which frame, and when it was captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp {
    /// The frame's number, modulo 2^16.
    pub counter: u16,
    /// [`MachineClock`] at capture, in microseconds, modulo 2^32.
    pub micros: u32,
}

impl Stamp {
    /// The stamp of frame `frame` captured at `micros` on [`MachineClock`].
    pub fn new(frame: u64, micros: u64) -> Self {
        Self {
            counter: frame as u16,
            micros: micros as u32,
        }
    }

    /// Time from the capture to `now_micros` on [`MachineClock`] (modulo
    /// 2^32 µs, so a clock that wrapped in between still gives the age).
    pub fn age(&self, now_micros: u64) -> Duration {
        Duration::from_micros(u64::from((now_micros as u32).wrapping_sub(self.micros)))
    }

    fn bits(&self) -> [bool; BITS] {
        let mut bytes = [0u8; 8];
        bytes[..2].copy_from_slice(&self.counter.to_be_bytes());
        bytes[2..6].copy_from_slice(&self.micros.to_be_bytes());
        let crc = crc16(&bytes[..6]);
        bytes[6..].copy_from_slice(&crc.to_be_bytes());
        let word = u64::from_be_bytes(bytes);
        std::array::from_fn(|i| (word >> (BITS - 1 - i)) & 1 == 1)
    }
}

/// Where a frame's pixels are: their format, size and bytes per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StampImage {
    pub pixel: PixelFormat,
    pub width: u32,
    pub height: u32,
    /// Bytes from one row to the next (at least `width` pixels).
    pub stride: usize,
}

impl StampImage {
    /// A tightly packed frame of `format` (sonoflow's own frames).
    pub fn packed(format: FrameFormat) -> Self {
        Self {
            pixel: format.pixel,
            width: format.width,
            height: format.height,
            stride: format.stride(),
        }
    }

    /// The stamp's rectangle in this image, `(x, y, width, height)`; None
    /// when the image is smaller than a stamp.
    pub fn region(&self) -> Option<(u32, u32, u32, u32)> {
        if self.width < STAMP_WIDTH || self.height < STAMP_HEIGHT {
            return None;
        }
        let x = (self.width - STAMP_WIDTH) / CELL * CELL;
        let y = (self.height - STAMP_HEIGHT) / CELL * CELL;
        Some((x, y, STAMP_WIDTH, STAMP_HEIGHT))
    }

    fn origin(&self, len: usize) -> Result<(u32, u32), StampError> {
        let (x, y, _, _) = self.region().ok_or(StampError::TooSmall {
            width: self.width,
            height: self.height,
        })?;
        let row = self.width as usize * self.pixel.bytes_per_pixel();
        let needed = self.stride.max(row) * (self.height as usize - 1) + row;
        if self.stride < row || len < needed {
            return Err(StampError::ShortBuffer {
                got: len,
                needed,
                width: self.width,
                height: self.height,
                stride: self.stride,
            });
        }
        Ok((x, y))
    }

    fn offset(&self, x: u32, y: u32) -> usize {
        y as usize * self.stride + x as usize * self.pixel.bytes_per_pixel()
    }
}

/// Why a stamp could not be written or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StampError {
    #[error("a {width}x{height} frame is smaller than a stamp ({STAMP_WIDTH}x{STAMP_HEIGHT} px)")]
    TooSmall { width: u32, height: u32 },
    #[error(
        "{got} bytes are fewer than a {width}x{height} frame with rows of {stride} bytes needs ({needed})"
    )]
    ShortBuffer {
        got: usize,
        needed: usize,
        width: u32,
        height: u32,
        stride: usize,
    },
    #[error("no stamp: its guard row reads white {white} and black {black}")]
    NoGuard { white: u8, black: u8 },
    #[error("cell {cell} of the stamp reads {value}, neither black ({black}) nor white ({white})")]
    Ambiguous {
        cell: usize,
        value: u8,
        black: u8,
        white: u8,
    },
    #[error("the stamp's end mark is wrong")]
    EndMark,
    #[error("the stamp's checksum reads {read:#06x}, its data give {computed:#06x}")]
    Checksum { read: u16, computed: u16 },
}

/// Writes `stamp` into the bottom-right corner of `pixels`.
pub fn write(pixels: &mut [u8], image: StampImage, stamp: Stamp) -> Result<(), StampError> {
    let (x0, y0) = image.origin(pixels.len())?;
    let bits = stamp.bits();
    for row in 0..ROWS {
        for col in 0..COLS {
            let white = if row == 0 {
                col % 2 == 0
            } else {
                let i = ((row - 1) * COLS + col) as usize;
                match bits.get(i) {
                    Some(&bit) => bit,
                    None => END_MARK[i - BITS],
                }
            };
            fill_cell(pixels, image, x0 + col * CELL, y0 + row * CELL, white);
        }
    }
    Ok(())
}

fn fill_cell(pixels: &mut [u8], image: StampImage, x: u32, y: u32, white: bool) {
    let v = if white { 255 } else { 0 };
    let bpp = image.pixel.bytes_per_pixel();
    for dy in 0..CELL {
        let start = image.offset(x, y + dy);
        let row = &mut pixels[start..start + (CELL as usize) * bpp];
        match image.pixel {
            PixelFormat::Gray8 => row.fill(v),
            PixelFormat::Rgba => {
                for px in row.chunks_exact_mut(4) {
                    px.copy_from_slice(&[v, v, v, 255]);
                }
            }
        }
    }
}

/// Reads the stamp in the bottom-right corner of `pixels`.
pub fn read(pixels: &[u8], image: StampImage) -> Result<Stamp, StampError> {
    let (x0, y0) = image.origin(pixels.len())?;
    let cell = |row: u32, col: u32| cell_mean(pixels, image, x0 + col * CELL, y0 + row * CELL);
    let (mut white_sum, mut black_sum) = (0u32, 0u32);
    for col in 0..COLS {
        let v = u32::from(cell(0, col));
        if col % 2 == 0 {
            white_sum += v;
        } else {
            black_sum += v;
        }
    }
    let half = COLS / 2;
    let (white, black) = ((white_sum / half) as u8, (black_sum / half) as u8);
    if white < black.saturating_add(MIN_CONTRAST) {
        return Err(StampError::NoGuard { white, black });
    }
    let mid = (u16::from(white) + u16::from(black)) / 2;
    let margin = u16::from(white - black) / 4;
    let classify = |index: usize, value: u8| {
        let v = u16::from(value);
        if v >= mid + margin {
            Ok(true)
        } else if v + margin <= mid {
            Ok(false)
        } else {
            Err(StampError::Ambiguous {
                cell: index,
                value,
                black,
                white,
            })
        }
    };
    // Each guard cell on its own side, not only on average.
    for col in 0..COLS {
        if classify(col as usize, cell(0, col))? != (col % 2 == 0) {
            return Err(StampError::NoGuard { white, black });
        }
    }
    let mut word = 0u64;
    let mut end = [false; 2];
    for i in 0..DATA_CELLS {
        let (row, col) = (1 + i as u32 / COLS, i as u32 % COLS);
        let bit = classify(COLS as usize + i, cell(row, col))?;
        match i.checked_sub(BITS) {
            None => word = (word << 1) | u64::from(bit),
            Some(j) => end[j] = bit,
        }
    }
    if end != END_MARK {
        return Err(StampError::EndMark);
    }
    let bytes = word.to_be_bytes();
    let computed = crc16(&bytes[..6]);
    let read = u16::from_be_bytes([bytes[6], bytes[7]]);
    if read != computed {
        return Err(StampError::Checksum { read, computed });
    }
    Ok(Stamp {
        counter: u16::from_be_bytes([bytes[0], bytes[1]]),
        micros: u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]),
    })
}

/// The mean luma of a cell's inner pixels.
fn cell_mean(pixels: &[u8], image: StampImage, x: u32, y: u32) -> u8 {
    let mut sum = 0u32;
    let side = CELL - 2 * INSET;
    for dy in INSET..CELL - INSET {
        let start = image.offset(x + INSET, y + dy);
        match image.pixel {
            PixelFormat::Gray8 => {
                sum += pixels[start..start + side as usize]
                    .iter()
                    .map(|&v| u32::from(v))
                    .sum::<u32>();
            }
            PixelFormat::Rgba => {
                sum += pixels[start..start + 4 * side as usize]
                    .chunks_exact(4)
                    .map(|p| (u32::from(p[0]) + 2 * u32::from(p[1]) + u32::from(p[2]) + 2) / 4)
                    .sum::<u32>();
            }
        }
    }
    (sum / (side * side)) as u8
}

/// CRC-16/CCITT-FALSE: polynomial 0x1021, initial value 0xFFFF.
fn crc16(data: &[u8]) -> u16 {
    let mut crc = 0xFFFFu16;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// `CLOCK_MONOTONIC` itself: nanoseconds since the machine started, the
/// same in every process of it, so a stamp written by one process can be
/// read against the clock by another. (`MonotonicClock` counts from its own
/// construction, which only its process knows.)
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineClock;

impl MachineClock {
    /// The time now, in microseconds (what a [`Stamp`] carries).
    pub fn micros() -> u64 {
        machine_nanos() / 1_000
    }
}

impl Clock for MachineClock {
    fn now(&self) -> Timestamp {
        Timestamp(machine_nanos())
    }
}

fn machine_nanos() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `now`, which lives for
    // the call; CLOCK_MONOTONIC is always there, so it cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(now.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAMP: Stamp = Stamp {
        counter: 0xBEEF,
        micros: 0x1234_5678,
    };

    /// A 160x120 image with padded rows, filled with mid-grey speckle.
    fn image(pixel: PixelFormat) -> (Vec<u8>, StampImage) {
        let (width, height) = (160u32, 120u32);
        let stride = width as usize * pixel.bytes_per_pixel() + 12;
        let mut state = 7u32;
        let pixels = (0..stride * height as usize)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 24) as u8 / 2 + 64
            })
            .collect();
        let layout = StampImage {
            pixel,
            width,
            height,
            stride,
        };
        (pixels, layout)
    }

    #[test]
    fn crc_is_ccitt_false() {
        assert_eq!(crc16(b"123456789"), 0x29B1);
    }

    #[test]
    fn a_stamp_reads_back_in_both_formats_with_padded_rows() {
        for pixel in [PixelFormat::Gray8, PixelFormat::Rgba] {
            let (mut pixels, layout) = image(pixel);
            assert!(read(&pixels, layout).is_err(), "speckle is not a stamp");
            write(&mut pixels, layout, STAMP).expect("fits");
            assert_eq!(read(&pixels, layout), Ok(STAMP), "{pixel:?}");
            // Bottom right, on the cell grid.
            assert_eq!(layout.region(), Some((112, 24, 48, 96)));
        }
        let tiny = StampImage::packed(FrameFormat::new(PixelFormat::Gray8, 40, 200).expect("ok"));
        assert_eq!(
            write(&mut [0; 8000], tiny, STAMP),
            Err(StampError::TooSmall {
                width: 40,
                height: 200
            })
        );
        let short = StampImage::packed(FrameFormat::new(PixelFormat::Gray8, 64, 96).expect("ok"));
        assert!(matches!(
            read(&[0; 100], short),
            Err(StampError::ShortBuffer { .. })
        ));
    }

    #[test]
    fn stamps_outside_the_corner_are_left_alone() {
        let (mut pixels, layout) = image(PixelFormat::Gray8);
        let before = pixels.clone();
        write(&mut pixels, layout, STAMP).expect("fits");
        let (x0, y0, w, h) = layout.region().expect("fits");
        for y in 0..layout.height {
            for x in 0..layout.stride as u32 {
                let inside = (x0..x0 + w).contains(&x) && (y0..y0 + h).contains(&y);
                let i = y as usize * layout.stride + x as usize;
                if !inside {
                    assert_eq!(pixels[i], before[i], "({x}, {y})");
                }
            }
        }
    }

    /// Sets data cell `i` (0 is the first counter bit) to `white`.
    fn paint(pixels: &mut [u8], layout: StampImage, i: usize, white: bool) {
        let (x0, y0, _, _) = layout.region().expect("fits");
        let (row, col) = (1 + i as u32 / COLS, i as u32 % COLS);
        fill_cell(pixels, layout, x0 + col * CELL, y0 + row * CELL, white);
    }

    fn cell_is_white(pixels: &[u8], layout: StampImage, i: usize) -> bool {
        let (x0, y0, _, _) = layout.region().expect("fits");
        let (row, col) = (1 + i as u32 / COLS, i as u32 % COLS);
        cell_mean(pixels, layout, x0 + col * CELL, y0 + row * CELL) > 127
    }

    #[test]
    fn any_one_two_or_three_flipped_cells_are_rejected_never_misread() {
        let (mut pixels, layout) = image(PixelFormat::Gray8);
        write(&mut pixels, layout, STAMP).expect("fits");
        let clean = pixels.clone();
        let flip = |pixels: &mut Vec<u8>, cells: &[usize]| {
            pixels.copy_from_slice(&clean);
            for &i in cells {
                let white = cell_is_white(pixels, layout, i);
                paint(pixels, layout, i, !white);
            }
        };
        let mut checked = 0;
        for a in 0..DATA_CELLS {
            for b in a..DATA_CELLS {
                // Three cells: a sample of the triples (every 5th third cell).
                for c in (b..DATA_CELLS).step_by(5) {
                    let mut cells = vec![a, b, c];
                    cells.dedup();
                    flip(&mut pixels, &cells);
                    assert!(read(&pixels, layout).is_err(), "cells {cells:?} misread");
                    checked += 1;
                }
            }
        }
        assert!(checked > 10_000, "{checked}");
    }

    #[test]
    fn a_grey_cell_or_a_faint_guard_is_unreadable() {
        let (mut pixels, layout) = image(PixelFormat::Gray8);
        write(&mut pixels, layout, STAMP).expect("fits");
        let (x0, y0, _, _) = layout.region().expect("fits");
        let mut grey = pixels.clone();
        for dy in 0..CELL {
            let start = layout.offset(x0, y0 + CELL + dy);
            grey[start..start + CELL as usize].fill(128);
        }
        assert!(matches!(
            read(&grey, layout),
            Err(StampError::Ambiguous { cell: 6, .. })
        ));
        // The whole stamp washed out to a third of its contrast.
        let mut faint = pixels.clone();
        for y in y0..y0 + STAMP_HEIGHT {
            let start = layout.offset(x0, y);
            for v in &mut faint[start..start + STAMP_WIDTH as usize] {
                *v = 100 + *v / 4;
            }
        }
        assert!(matches!(
            read(&faint, layout),
            Err(StampError::NoGuard { .. })
        ));
    }

    #[test]
    fn a_stamp_survives_blur_noise_and_a_compressed_range() {
        let (mut pixels, layout) = image(PixelFormat::Gray8);
        for (n, stamp) in [STAMP, Stamp::new(0, 0), Stamp::new(u64::MAX, u64::MAX)]
            .into_iter()
            .enumerate()
        {
            write(&mut pixels, layout, stamp).expect("fits");
            // A 5x5 box blur, then ±40 of noise, then video's 16-235 range.
            let w = layout.width as usize;
            let src = pixels.clone();
            let mut state = 99u32 + n as u32;
            for y in 2..layout.height as usize - 2 {
                for x in 2..w - 2 {
                    let mut sum = 0u32;
                    for dy in 0..5 {
                        for dx in 0..5 {
                            sum += u32::from(src[(y + dy - 2) * layout.stride + x + dx - 2]);
                        }
                    }
                    state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    let noise = (state >> 25) as i32 - 64;
                    let v = (sum / 25) as i32 + noise * 40 / 64;
                    let v = v.clamp(0, 255) * 219 / 255 + 16;
                    pixels[y * layout.stride + x] = v as u8;
                }
            }
            assert_eq!(read(&pixels, layout), Ok(stamp), "stamp {n}");
        }
    }

    #[test]
    fn age_counts_across_the_clock_wrapping() {
        let stamp = Stamp::new(3, u64::from(u32::MAX) - 500);
        let now = (1u64 << 32) + 1_500;
        assert_eq!(stamp.age(now), Duration::from_micros(2_001));
        assert_eq!(Stamp::new(1, 10).age(25), Duration::from_micros(15));
    }

    #[test]
    fn the_machine_clock_counts_microseconds_and_nanoseconds_alike() {
        let a = MachineClock::micros();
        std::thread::sleep(Duration::from_millis(5));
        let b = MachineClock.now().nanos() / 1_000;
        // A sleep lasts at least its duration: a lower bound only.
        assert!(b >= a + 5_000, "{a} then {b}");
    }
}
