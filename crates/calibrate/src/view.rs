//! Read access to one frame's luminance, whatever its pixel format and row
//! stride: GRAY8 is read as is, RGBA as an integer luma
//! `(77 R + 150 G + 29 B) / 256` (BT.601 weights). Nothing is copied.

use sonoflow_core::{FrameFormat, PixelFormat};

/// Why a frame could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("row stride {stride} is shorter than a row of {row} bytes")]
    ShortStride { stride: usize, row: usize },
    #[error("{got} bytes hold fewer than the {need} a {width}x{height} frame needs")]
    ShortBuffer {
        got: usize,
        need: usize,
        width: u32,
        height: u32,
    },
}

/// One frame's pixels, checked once against their format and stride.
#[derive(Clone, Copy)]
pub(crate) struct FrameView<'a> {
    pixels: &'a [u8],
    pixel: PixelFormat,
    pub width: usize,
    pub height: usize,
    stride: usize,
}

impl<'a> FrameView<'a> {
    pub fn new(pixels: &'a [u8], format: FrameFormat, stride: usize) -> Result<Self, FrameError> {
        let (width, height) = (format.width as usize, format.height as usize);
        let row = width * format.pixel.bytes_per_pixel();
        if stride < row {
            return Err(FrameError::ShortStride { stride, row });
        }
        // The last row need not be padded.
        let need = if height == 0 {
            0
        } else {
            stride * (height - 1) + row
        };
        if pixels.len() < need {
            return Err(FrameError::ShortBuffer {
                got: pixels.len(),
                need,
                width: format.width,
                height: format.height,
            });
        }
        Ok(Self {
            pixels,
            pixel: format.pixel,
            width,
            height,
            stride,
        })
    }

    /// The bytes of row `y` (`width × bytes per pixel`).
    #[inline]
    fn row_bytes(&self, y: usize) -> &'a [u8] {
        let start = y * self.stride;
        &self.pixels[start..start + self.width * self.pixel.bytes_per_pixel()]
    }

    /// Row `y` as luma: borrowed for GRAY8, converted into `scratch` for RGBA.
    #[inline]
    pub fn luma_row<'s>(&self, y: usize, scratch: &'s mut [u8]) -> &'s [u8]
    where
        'a: 's,
    {
        let bytes = self.row_bytes(y);
        match self.pixel {
            PixelFormat::Gray8 => bytes,
            PixelFormat::Rgba => {
                for (out, px) in scratch.iter_mut().zip(bytes.chunks_exact(4)) {
                    *out = rgba_luma(px);
                }
                &scratch[..self.width]
            }
        }
    }

    /// The luma of pixel (x, y); both must be inside the frame.
    #[inline]
    pub fn luma(&self, x: usize, y: usize) -> u8 {
        match self.pixel {
            PixelFormat::Gray8 => self.pixels[y * self.stride + x],
            PixelFormat::Rgba => {
                let i = y * self.stride + 4 * x;
                rgba_luma(&self.pixels[i..i + 4])
            }
        }
    }
}

#[inline]
fn rgba_luma(px: &[u8]) -> u8 {
    ((77 * u32::from(px[0]) + 150 * u32::from(px[1]) + 29 * u32::from(px[2])) >> 8) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgba_is_read_as_luma_and_padding_is_skipped() {
        let format = FrameFormat::new(PixelFormat::Rgba, 2, 2).expect("format");
        // Stride 12: two pixels and 4 bytes of padding per row.
        let mut px = vec![0u8; 12 + 8];
        px[12..16].copy_from_slice(&[255, 255, 255, 255]);
        let view = FrameView::new(&px, format, 12).expect("view");
        assert_eq!(view.luma(0, 1), 255);
        assert_eq!(view.luma(1, 1), 0);
        let mut scratch = [0u8; 2];
        assert_eq!(view.luma_row(1, &mut scratch), &[255, 0]);
    }

    #[test]
    fn short_buffers_and_strides_are_refused() {
        let format = FrameFormat::new(PixelFormat::Gray8, 4, 2).expect("format");
        assert!(matches!(
            FrameView::new(&[0; 8], format, 3),
            Err(FrameError::ShortStride { .. })
        ));
        assert!(matches!(
            FrameView::new(&[0; 7], format, 4),
            Err(FrameError::ShortBuffer { .. })
        ));
        assert!(FrameView::new(&[0; 8], format, 4).is_ok());
    }
}
