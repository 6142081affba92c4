//! JPEG frames for the viewer (`[server] video`): a frame's pixels, copied
//! off the frame path by the run, become a `VideoFrame` here, on the video
//! thread. Baseline JPEG by `jpeg-encoder` (pure Rust): grey for GRAY8
//! frames (one channel: about a third of the bytes of colour), colour for
//! RGBA (alpha dropped). Frames are tightly packed (`FrameFormat::stride`),
//! so the pixels are read as `width * height * bytes_per_pixel` bytes.

use jpeg_encoder::{ColorType, Encoder};
use sonoflow_core::{FrameFormat, PixelFormat};
use sonoflow_protocol::v1;

/// Why a frame could not be sent as video.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("a {width}x{height} frame is larger than JPEG allows (65535 pixels a side)")]
    TooLarge { width: u32, height: u32 },
    #[error("a {width}x{height} frame has {got} bytes of pixels, not {expected}")]
    Short {
        width: u32,
        height: u32,
        expected: usize,
        got: usize,
    },
    #[error("the JPEG encoder failed: {0}")]
    Encode(String),
}

/// Encodes frames at one quality.
#[derive(Debug, Clone)]
pub struct VideoEncoder {
    quality: u8,
}

impl VideoEncoder {
    /// `quality`: 1 to 100 (clamped).
    pub fn new(quality: u8) -> Self {
        Self {
            quality: quality.clamp(1, 100),
        }
    }

    /// The frame `frame_id`, captured at `captured_ns`, as a `VideoFrame`.
    pub fn encode(
        &self,
        frame_id: u64,
        captured_ns: u64,
        format: FrameFormat,
        pixels: &[u8],
    ) -> Result<v1::VideoFrame, VideoError> {
        let (width, height) = (format.width, format.height);
        let (Ok(w), Ok(h)) = (u16::try_from(width), u16::try_from(height)) else {
            return Err(VideoError::TooLarge { width, height });
        };
        let expected = format.len();
        if pixels.len() < expected {
            return Err(VideoError::Short {
                width,
                height,
                expected,
                got: pixels.len(),
            });
        }
        let color = match format.pixel {
            PixelFormat::Gray8 => ColorType::Luma,
            PixelFormat::Rgba => ColorType::Rgba,
        };
        // Grey speckle compresses to about a tenth of its raw size.
        let mut jpeg = Vec::with_capacity(expected / 8);
        Encoder::new(&mut jpeg, self.quality)
            .encode(&pixels[..expected], w, h, color)
            .map_err(|e| VideoError::Encode(e.to_string()))?;
        Ok(v1::VideoFrame {
            frame_id,
            captured_ns,
            width,
            height,
            jpeg,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_and_colour_frames_become_jpegs_of_their_size() {
        let grey = FrameFormat::new(PixelFormat::Gray8, 64, 48).expect("format");
        let pixels: Vec<u8> = (0..grey.len()).map(|i| (i % 251) as u8).collect();
        let v = VideoEncoder::new(70)
            .encode(7, 99, grey, &pixels)
            .expect("encodes");
        assert_eq!(
            (v.frame_id, v.captured_ns, v.width, v.height),
            (7, 99, 64, 48)
        );
        assert_eq!(&v.jpeg[..2], &[0xff, 0xd8], "a JPEG starts with SOI");
        assert_eq!(
            &v.jpeg[v.jpeg.len() - 2..],
            &[0xff, 0xd9],
            "and ends with EOI"
        );
        let rgba = FrameFormat::new(PixelFormat::Rgba, 16, 8).expect("format");
        let v = VideoEncoder::new(200)
            .encode(1, 0, rgba, &vec![128; rgba.len()])
            .expect("encodes");
        assert_eq!(&v.jpeg[..2], &[0xff, 0xd8]);
    }

    #[test]
    fn short_or_huge_frames_are_errors_not_panics() {
        let f = FrameFormat::new(PixelFormat::Gray8, 8, 8).expect("format");
        assert!(matches!(
            VideoEncoder::new(70).encode(0, 0, f, &[0; 10]),
            Err(VideoError::Short { expected: 64, .. })
        ));
        let huge = FrameFormat::new(PixelFormat::Gray8, 70_000, 1).expect("format");
        assert!(matches!(
            VideoEncoder::new(70).encode(0, 0, huge, &[]),
            Err(VideoError::TooLarge { .. })
        ));
    }
}
