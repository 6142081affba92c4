//! An image's masks as ground truth, in the shape the phantom gives it, so
//! the self-check scores a dataset frame exactly as a phantom frame.
//!
//! - The label map is the union of the masks: mask k's pixels are
//!   `LESION_BASE + k`; where masks overlap, the first (lowest k) wins.
//! - Each non-empty mask is one lesion (id k), its box, area and calipers
//!   taken from the mask's own pixels; the calipers are measured by the
//!   product's own caliper code (`sonoflow_perception::calipers`), so a
//!   perfect prediction measures exactly as its truth. An empty mask (the
//!   "normal" images of BUSI) adds no lesion: with only empty masks the
//!   frame is lesion-free, which is truth too.
//! - A lesion's class is the item's class (its class sub-folder) or
//!   [`DEFAULT_CLASS`]; it has no descriptors and its assessment is
//!   [`UNASSESSED`].
//! - Millimetres need the frame's spacing. Without one the truth's
//!   `pixel_spacing` is [`NO_SPACING`] (NaN) and every caliper's
//!   `length_mm` NaN, its end points still in pixels: Dice and detection
//!   score as usual, and caliper errors are not scored, since a prediction
//!   only has millimetres when its frame has a spacing, the same one.

use std::collections::BTreeMap;
use std::path::Path;

use sonoflow_core::findings::{
    label, BoundingBox, GroundTruth, ImageRegion, LabelMap, LesionTruth, PixelSpacing,
};
use sonoflow_core::Calibration;
use sonoflow_perception::calipers;

use crate::decode;
use crate::error::ItemError;

/// The class of a mask's lesion when its item has none.
pub const DEFAULT_CLASS: &str = "lesion";

/// The assessment of a mask's lesion: none was made.
pub const UNASSESSED: &str = "";

/// The truth's spacing on a frame without one: no millimetres.
pub const NO_SPACING: PixelSpacing = PixelSpacing {
    x_mm: f64::NAN,
    y_mm: f64::NAN,
};

/// Most masks one image may have (label values `LESION_BASE..=255`).
pub const MAX_MASKS: usize = (u8::MAX - label::LESION_BASE) as usize + 1;

/// The ground truth of a `width` x `height` image from its `masks`.
pub(crate) fn from_masks(
    image: &Path,
    masks: &[std::path::PathBuf],
    class: Option<&str>,
    (width, height): (u32, u32),
    calibration: Option<&Calibration>,
    frame_index: u64,
) -> Result<GroundTruth, ItemError> {
    if masks.len() > MAX_MASKS {
        return Err(ItemError::TooManyMasks {
            image: image.to_path_buf(),
            count: masks.len(),
            max: MAX_MASKS,
        });
    }
    let spacing = calibration.and_then(Calibration::spacing);
    let pixel_spacing = spacing.unwrap_or(NO_SPACING);
    let region = calibration
        .and_then(Calibration::region)
        .unwrap_or(ImageRegion::Rect {
            x0: 0,
            y0: 0,
            x1: width,
            y1: height,
        });
    let mut labels = vec![label::BACKGROUND; width as usize * height as usize];
    let mut lesions = Vec::new();
    let mut scratch = calipers::Scratch::default();
    for (k, path) in masks.iter().enumerate() {
        let (w, h, inside) = decode::mask(path)?;
        if (w, h) != (width, height) {
            return Err(ItemError::MaskSize {
                path: path.clone(),
                width: w,
                height: h,
                image_width: width,
                image_height: height,
            });
        }
        // Fits: k < MAX_MASKS.
        let value = label::LESION_BASE + k as u8;
        let (mut x0, mut y0, mut x1, mut y1, mut area) = (u32::MAX, u32::MAX, 0, 0, 0u32);
        for (i, (&m, l)) in inside.iter().zip(labels.iter_mut()).enumerate() {
            if m == 0 {
                continue;
            }
            let (x, y) = ((i % width as usize) as u32, (i / width as usize) as u32);
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1));
            area += 1;
            if *l == label::BACKGROUND {
                *l = value;
            }
        }
        if area == 0 {
            continue;
        }
        let (long_axis, short_axis) = scratch.measure_region(
            (x0, y0, x1, y1),
            |x, y| inside[y as usize * width as usize + x as usize] != 0,
            &pixel_spacing,
        );
        lesions.push(LesionTruth {
            id: k as u32,
            label: value,
            class: class.unwrap_or(DEFAULT_CLASS).to_owned(),
            attributes: BTreeMap::new(),
            assessment: UNASSESSED.to_owned(),
            bbox: BoundingBox {
                x0: x0 as f32,
                y0: y0 as f32,
                x1: x1 as f32,
                y1: y1 as f32,
            },
            area_px: area,
            long_axis,
            short_axis,
            conspicuity: None,
        });
    }
    Ok(GroundTruth {
        frame_index,
        scene: None,
        pixel_spacing,
        region,
        lesions,
        labels: LabelMap {
            width,
            height,
            data: labels,
        },
    })
}
