//! What a finding is: the lesion descriptor vocabulary sonographers use
//! (after the ACR BI-RADS ultrasound lexicon), geometry in frame pixels,
//! calipers in millimetres, and the per-frame ground truth the phantom
//! produces. The model's outputs use the same types, so they can be scored
//! against the truth directly.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    Oval,
    Round,
    Irregular,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Orientation {
    /// Wider than tall.
    Parallel,
    /// Taller than wide.
    NotParallel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Margin {
    Circumscribed,
    Indistinct,
    Angular,
    Microlobulated,
    Spiculated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EchoPattern {
    Anechoic,
    Hypoechoic,
    /// Same echo level as subcutaneous fat.
    Isoechoic,
    Hyperechoic,
    Heterogeneous,
    ComplexCysticSolid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PosteriorFeatures {
    None,
    Enhancement,
    Shadowing,
    Combined,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Calcifications {
    None,
    InMass,
    OutsideMass,
}

/// The descriptors of one lesion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LesionAttributes {
    pub shape: Shape,
    pub orientation: Orientation,
    pub margin: Margin,
    pub echo_pattern: EchoPattern,
    pub posterior: PosteriorFeatures,
    pub calcifications: Calcifications,
}

/// Assessment category, BI-RADS style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Assessment {
    /// 2: e.g. a simple cyst.
    Benign,
    /// 3: oval, circumscribed, parallel solid mass.
    ProbablyBenign,
    /// 4: one suspicious feature.
    Suspicious,
    /// 5: several suspicious features together.
    HighlySuggestive,
}

impl Assessment {
    pub fn category(self) -> u8 {
        match self {
            Assessment::Benign => 2,
            Assessment::ProbablyBenign => 3,
            Assessment::Suspicious => 4,
            Assessment::HighlySuggestive => 5,
        }
    }
}

impl LesionAttributes {
    /// A simplified, deterministic mapping from descriptors to a category,
    /// good for phantom data only (it is not the clinical BI-RADS process):
    /// each of irregular shape, a non-circumscribed margin, not-parallel
    /// orientation, shadowing and calcifications in a mass counts as one
    /// suspicious feature; three or more give 5, one or two give 4; none
    /// gives 2 for an anechoic lesion with posterior enhancement (a simple
    /// cyst) and 3 otherwise.
    pub fn assessment(&self) -> Assessment {
        let suspicious = [
            self.shape == Shape::Irregular,
            self.margin != Margin::Circumscribed,
            self.orientation == Orientation::NotParallel,
            matches!(
                self.posterior,
                PosteriorFeatures::Shadowing | PosteriorFeatures::Combined
            ),
            self.calcifications == Calcifications::InMass,
        ]
        .into_iter()
        .filter(|&s| s)
        .count();
        match suspicious {
            0 if self.echo_pattern == EchoPattern::Anechoic
                && self.posterior == PosteriorFeatures::Enhancement =>
            {
                Assessment::Benign
            }
            0 => Assessment::ProbablyBenign,
            1 | 2 => Assessment::Suspicious,
            _ => Assessment::HighlySuggestive,
        }
    }
}

/// What a finding is, for segmentation and detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingClass {
    Cyst,
    Mass,
}

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
    pub class: FindingClass,
    pub attributes: LesionAttributes,
    pub assessment: Assessment,
    pub bbox: BoundingBox,
    /// Pixels of the lesion in this frame.
    pub area_px: u32,
    /// The longest diameter (maximum Feret), edge to edge.
    pub long_axis: Caliper,
    /// The longest chord perpendicular to the long axis.
    pub short_axis: Caliper,
}

/// Everything known about one phantom frame.
#[derive(Debug, Clone, PartialEq)]
pub struct GroundTruth {
    pub frame_index: u64,
    pub pixel_spacing: PixelSpacing,
    pub region: ImageRegion,
    pub lesions: Vec<LesionTruth>,
    pub labels: LabelMap,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(
        shape: Shape,
        margin: Margin,
        orientation: Orientation,
        echo: EchoPattern,
        posterior: PosteriorFeatures,
    ) -> LesionAttributes {
        LesionAttributes {
            shape,
            orientation,
            margin,
            echo_pattern: echo,
            posterior,
            calcifications: Calcifications::None,
        }
    }

    #[test]
    fn simplified_assessment_follows_the_stated_rules() {
        use EchoPattern::*;
        use Margin::*;
        use Orientation::*;
        use PosteriorFeatures as P;
        use Shape::*;
        assert_eq!(
            attrs(Oval, Circumscribed, Parallel, Anechoic, P::Enhancement).assessment(),
            Assessment::Benign
        );
        assert_eq!(
            attrs(Oval, Circumscribed, Parallel, Hypoechoic, P::None).assessment(),
            Assessment::ProbablyBenign
        );
        assert_eq!(
            attrs(Oval, Indistinct, Parallel, Hypoechoic, P::None).assessment(),
            Assessment::Suspicious
        );
        assert_eq!(
            attrs(Irregular, Spiculated, NotParallel, Hypoechoic, P::Shadowing).assessment(),
            Assessment::HighlySuggestive
        );
        assert_eq!(Assessment::HighlySuggestive.category(), 5);
    }

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
