//! Files to pixels, with the `image` crate (PNG, JPEG, BMP; the format is
//! read from the file's first bytes, not its name).
//!
//! - A frame: a grey image (with or without alpha, 8 or 16 bits) becomes
//!   GRAY8, anything else RGBA; 16-bit samples are scaled to 8 bits.
//!   Pixels are tightly packed rows, as `sonoflow_core::Frame` holds them.
//! - A mask: must be a PNG (JPEG blurs its edges); a pixel is inside when
//!   any of its colour channels is non-zero, whatever the colour type
//!   (public datasets store masks as grey, RGB or RGBA PNGs), alpha ignored.
//! - A label map (phantom export): an 8-bit grey PNG, read as is.

use std::path::Path;

use image::{DynamicImage, ImageFormat, ImageReader};
use sonoflow_core::findings::LabelMap;
use sonoflow_core::{FrameFormat, PixelFormat};

use crate::error::ItemError;

fn open(path: &Path) -> Result<ImageReader<std::io::BufReader<std::fs::File>>, ItemError> {
    let io = |e: std::io::Error| ItemError::Io {
        path: path.to_path_buf(),
        cause: e.to_string(),
    };
    ImageReader::open(path)
        .map_err(io)?
        .with_guessed_format()
        .map_err(io)
}

/// A frame's pixels and format.
pub fn frame(path: &Path) -> Result<(Vec<u8>, FrameFormat), ItemError> {
    let bad = |cause: String| ItemError::Image {
        path: path.to_path_buf(),
        cause,
    };
    let image = open(path)?.decode().map_err(|e| bad(e.to_string()))?;
    let (width, height) = (image.width(), image.height());
    let (pixel, pixels) = if image.color().has_color() {
        (PixelFormat::Rgba, image.into_rgba8().into_raw())
    } else {
        (PixelFormat::Gray8, image.into_luma8().into_raw())
    };
    let format = FrameFormat::new(pixel, width, height).map_err(|e| bad(e.to_string()))?;
    Ok((pixels, format))
}

/// A decoded PNG, or why it is not one.
fn png(path: &Path, what: &str, fix: &'static str) -> Result<DynamicImage, ItemError> {
    let reader = open(path)?;
    if reader.format() != Some(ImageFormat::Png) {
        return Err(ItemError::Mask {
            path: path.to_path_buf(),
            problem: format!("{what} is not a PNG file"),
            fix,
        });
    }
    reader.decode().map_err(|e| ItemError::Mask {
        path: path.to_path_buf(),
        problem: e.to_string(),
        fix,
    })
}

/// A mask: (width, height, 1 inside / 0 outside per pixel).
pub fn mask(path: &Path) -> Result<(u32, u32, Vec<u8>), ItemError> {
    let image = png(
        path,
        "a mask",
        "save masks as PNG (lossless): black outside, anything else inside",
    )?;
    let (width, height) = (image.width(), image.height());
    let on = |any: bool| u8::from(any);
    let inside: Vec<u8> = match &image {
        DynamicImage::ImageLuma8(b) => b.as_raw().iter().map(|&v| on(v != 0)).collect(),
        DynamicImage::ImageLumaA8(b) => b.pixels().map(|p| on(p.0[0] != 0)).collect(),
        DynamicImage::ImageLuma16(b) => b.as_raw().iter().map(|&v| on(v != 0)).collect(),
        DynamicImage::ImageLumaA16(b) => b.pixels().map(|p| on(p.0[0] != 0)).collect(),
        DynamicImage::ImageRgb8(b) => b.pixels().map(|p| on(p.0 != [0; 3])).collect(),
        DynamicImage::ImageRgba8(b) => b.pixels().map(|p| on(p.0[..3] != [0; 3])).collect(),
        DynamicImage::ImageRgb16(b) => b.pixels().map(|p| on(p.0 != [0; 3])).collect(),
        DynamicImage::ImageRgba16(b) => b.pixels().map(|p| on(p.0[..3] != [0; 3])).collect(),
        other => other
            .to_rgb32f()
            .pixels()
            .map(|p| on(p.0.iter().any(|&c| c > 0.0)))
            .collect(),
    };
    Ok((width, height, inside))
}

/// A phantom export's label map.
pub fn label_map(path: &Path) -> Result<LabelMap, ItemError> {
    const FIX: &str = "label maps hold one label value per pixel as an 8-bit grey PNG; export \
                       the dataset again with `sonoflow phantom export`";
    match png(path, "a label map", FIX)? {
        DynamicImage::ImageLuma8(b) => Ok(LabelMap {
            width: b.width(),
            height: b.height(),
            data: b.into_raw(),
        }),
        other => Err(ItemError::Mask {
            path: path.to_path_buf(),
            problem: format!(
                "a label map must be 8-bit grey, this one is {:?}",
                other.color()
            ),
            fix: FIX,
        }),
    }
}
