//! What a finding is: geometry in frame pixels, calipers in millimetres,
//! and the per-frame ground truth the phantom produces. A lesion in the
//! truth is described in the model's own words (class, descriptors and
//! assessment as strings, the vocabulary of the model manifest), so the
//! model's outputs can be scored against the truth directly; the typed
//! lexicon the phantom draws from lives with the phantom
//! (`sonoflow_phantom::lexicon`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A point in frame pixels (x right, y down), sub-pixel.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

impl Point {
    pub fn distance(self, other: Point) -> f32 {
        ((self.x - other.x).powi(2) + (self.y - other.y).powi(2)).sqrt()
    }
}

/// An axis-aligned box in frame pixels; `x1`, `y1` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct BoundingBox {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

/// Physical size of one frame pixel.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PixelSpacing {
    pub x_mm: f64,
    pub y_mm: f64,
}

impl PixelSpacing {
    pub fn isotropic(mm: f64) -> Self {
        Self { x_mm: mm, y_mm: mm }
    }

    /// Length in mm of a segment given in pixels.
    pub fn length_mm(&self, a: Point, b: Point) -> f64 {
        let dx = f64::from(b.x - a.x) * self.x_mm;
        let dy = f64::from(b.y - a.y) * self.y_mm;
        (dx * dx + dy * dy).sqrt()
    }
}

/// One caliper: two end points and the distance between them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Caliper {
    pub a: Point,
    pub b: Point,
    pub length_mm: f64,
}

/// Where the ultrasound image sits in the frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ImageRegion {
    /// A linear probe's rectangle; `x1`, `y1` exclusive.
    Rect { x0: u32, y0: u32, x1: u32, y1: u32 },
    /// A convex probe's fan: points at radius `r0..r1` pixels from `apex`
    /// and angle `-half_angle..half_angle` radians from straight down.
    Fan {
        apex: Point,
        r0: f32,
        r1: f32,
        half_angle: f32,
    },
}

impl ImageRegion {
    /// Whether the pixel centre (x + 0.5, y + 0.5) lies in the image.
    pub fn contains(&self, x: u32, y: u32) -> bool {
        match *self {
            ImageRegion::Rect { x0, y0, x1, y1 } => x >= x0 && x < x1 && y >= y0 && y < y1,
            ImageRegion::Fan {
                apex,
                r0,
                r1,
                half_angle,
            } => {
                let dx = x as f32 + 0.5 - apex.x;
                let dy = y as f32 + 0.5 - apex.y;
                let r = (dx * dx + dy * dy).sqrt();
                r >= r0 && r < r1 && dy > 0.0 && dx.atan2(dy).abs() <= half_angle
            }
        }
    }

    /// The smallest box holding the region.
    pub fn bounds(&self) -> BoundingBox {
        match *self {
            ImageRegion::Rect { x0, y0, x1, y1 } => BoundingBox {
                x0: x0 as f32,
                y0: y0 as f32,
                x1: x1 as f32,
                y1: y1 as f32,
            },
            ImageRegion::Fan {
                apex,
                r0,
                r1,
                half_angle,
            } => {
                let half_width = r1 * half_angle.sin();
                BoundingBox {
                    x0: apex.x - half_width,
                    y0: apex.y + r0 * half_angle.cos(),
                    x1: apex.x + half_width,
                    y1: apex.y + r1,
                }
            }
        }
    }
}

/// Values of a [`LabelMap`] pixel.
pub mod label {
    /// Outside the image, or nothing labelled.
    pub const BACKGROUND: u8 = 0;
    pub const SKIN: u8 = 1;
    pub const FAT: u8 = 2;
    pub const GLAND: u8 = 3;
    pub const MUSCLE: u8 = 4;
    /// Lesion `i` is labelled `LESION_BASE + i`.
    pub const LESION_BASE: u8 = 10;

    /// Names of the tissue labels, for manifests.
    pub const TISSUES: [(u8, &str); 5] = [
        (BACKGROUND, "background"),
        (SKIN, "skin"),
        (FAT, "fat"),
        (GLAND, "gland"),
        (MUSCLE, "muscle"),
    ];
}

/// One byte per frame pixel: which tissue or lesion it shows (see [`label`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelMap {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl LabelMap {
    pub fn get(&self, x: u32, y: u32) -> u8 {
        self.data[(y * self.width + x) as usize]
    }
}

/// A lesion as the phantom drew it in one frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LesionTruth {
    pub id: u32,
    /// Its value in the label map.
    pub label: u8,
    /// Its finding class ("cyst", "mass").
    pub class: String,
    /// Its descriptors: descriptor name → value ("echo_pattern" → "hypoechoic").
    pub attributes: BTreeMap<String, String>,
    /// Its assessment ("probably_benign").
    pub assessment: String,
    pub bbox: BoundingBox,
    /// Pixels of the lesion in this frame.
    pub area_px: u32,
    /// The longest diameter (maximum Feret), edge to edge.
    pub long_axis: Caliper,
    /// The longest chord perpendicular to the long axis.
    pub short_axis: Caliper,
    /// How far the lesion stands out from the tissue around it in this
    /// frame's pixels: |z| of a test that knows its shape and place
    /// (`sonoflow_phantom::conspicuity`; under about 4 a searching observer
    /// can miss it, under 2 it is not in the image). A phantom export
    /// measures it; None elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conspicuity: Option<f32>,
}

/// Everything known about one phantom frame.
#[derive(Debug, Clone, PartialEq)]
pub struct GroundTruth {
    pub frame_index: u64,
    /// The scene the frame shows (a phantom export's `sequence`: frames of
    /// one probe sweep over one scene), when the truth says. Frames of a
    /// scene are not independent samples: confidence intervals resample
    /// scenes, not frames. None: the frame belongs to no recorded scene.
    pub scene: Option<u64>,
    pub pixel_spacing: PixelSpacing,
    pub region: ImageRegion,
    pub lesions: Vec<LesionTruth>,
    pub labels: LabelMap,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fan_region_contains_its_centre_line_but_not_its_corners() {
        let fan = ImageRegion::Fan {
            apex: Point { x: 100.0, y: -50.0 },
            r0: 60.0,
            r1: 300.0,
            half_angle: 0.5,
        };
        assert!(fan.contains(100, 100));
        assert!(!fan.contains(0, 20));
        assert!(!fan.contains(100, 260));
    }

    #[test]
    fn spacing_converts_pixels_to_millimetres() {
        let s = PixelSpacing::isotropic(0.1);
        let mm = s.length_mm(Point { x: 0.0, y: 0.0 }, Point { x: 30.0, y: 40.0 });
        assert!((mm - 5.0).abs() < 1e-9);
    }
}
