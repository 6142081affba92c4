//! Calibration as data on every frame: where the ultrasound image sits in
//! the frame (one or more regions: a rectangle or a sector) and how many
//! millimetres one pixel is in x and y, with where that came from and how
//! far to trust it. Post-processing, calipers, the overlay and the report
//! read the frame's own calibration, so a change of depth mid-stream changes
//! the spacing from that frame on. A frame without a spacing still gets
//! masks and boxes but no millimetres ("uncalibrated").
//!
//! A calibration changes rarely (a depth knob), so frames share it through
//! an `Arc`: carrying it costs one reference count per frame, no allocation.

use serde::{Deserialize, Serialize};

use crate::findings::{GroundTruth, ImageRegion, PixelSpacing, Point};

/// Where a frame's calibration came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationSource {
    /// The phantom drew the frame and knows its geometry exactly.
    Phantom,
    /// A DICOM file's Sequence of Ultrasound Regions.
    Dicom,
    /// The pipeline definition (a fixed region and spacing, or a ruler).
    Config,
    /// Found in the image itself (the moving region, the depth ruler's ticks).
    Detected,
}

impl CalibrationSource {
    pub fn name(self) -> &'static str {
        match self {
            CalibrationSource::Phantom => "phantom",
            CalibrationSource::Dicom => "dicom",
            CalibrationSource::Config => "config",
            CalibrationSource::Detected => "detected",
        }
    }
}

/// One image region of a frame and the size of its pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CalibratedRegion {
    pub region: ImageRegion,
    /// None: the region is known but not its scale (no millimetres in it).
    pub spacing: Option<PixelSpacing>,
}

/// A frame's calibration: its image regions (the first is the primary one,
/// the model's input) and how far to trust their spacing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub regions: Vec<CalibratedRegion>,
    pub source: CalibrationSource,
    /// Relative standard uncertainty of the spacing (0.01: 1 %); calipers
    /// add `uncertainty × length` to their own uncertainty, in quadrature.
    pub uncertainty: f64,
}

impl Calibration {
    /// One region with a known spacing.
    pub fn single(
        region: ImageRegion,
        spacing: Option<PixelSpacing>,
        source: CalibrationSource,
        uncertainty: f64,
    ) -> Self {
        Self {
            regions: vec![CalibratedRegion { region, spacing }],
            source,
            uncertainty,
        }
    }

    /// The phantom's exact geometry for a frame it drew.
    pub fn of_truth(truth: &GroundTruth) -> Self {
        Self::single(
            truth.region,
            Some(truth.pixel_spacing),
            CalibrationSource::Phantom,
            0.0,
        )
    }

    /// Whether this is [`Calibration::of_truth`] of `truth` (checked
    /// without building one: no allocation per frame).
    pub fn is_of_truth(&self, truth: &GroundTruth) -> bool {
        self.source == CalibrationSource::Phantom
            && self.uncertainty == 0.0
            && self.regions.len() == 1
            && self.region() == Some(truth.region)
            && self.spacing() == Some(truth.pixel_spacing)
    }

    /// The primary region (the model's input), if any.
    pub fn primary(&self) -> Option<&CalibratedRegion> {
        self.regions.first()
    }

    /// The primary region's spacing: None means "uncalibrated".
    pub fn spacing(&self) -> Option<PixelSpacing> {
        self.primary().and_then(|r| r.spacing)
    }

    /// The primary region.
    pub fn region(&self) -> Option<ImageRegion> {
        self.primary().map(|r| r.region)
    }

    /// The region holding frame position `p` (first match), if any.
    pub fn region_at(&self, p: Point) -> Option<&CalibratedRegion> {
        let (x, y) = (p.x.max(0.0) as u32, p.y.max(0.0) as u32);
        self.regions.iter().find(|r| r.region.contains(x, y))
    }

    /// The spacing for a caliper from `a` to `b`: both ends must lie in one
    /// region with a known spacing (a caliper across two views, or reaching
    /// outside the image, has no length in mm).
    pub fn spacing_between(&self, a: Point, b: Point) -> Option<PixelSpacing> {
        let ra = self.region_at(a)?;
        let rb = self.region_at(b)?;
        (ra == rb).then_some(ra.spacing).flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x0: u32, x1: u32) -> ImageRegion {
        ImageRegion::Rect {
            x0,
            y0: 0,
            x1,
            y1: 100,
        }
    }

    #[test]
    fn the_first_region_is_primary_and_calipers_stay_inside_one_region() {
        let cal = Calibration {
            regions: vec![
                CalibratedRegion {
                    region: rect(0, 100),
                    spacing: Some(PixelSpacing::isotropic(0.1)),
                },
                CalibratedRegion {
                    region: rect(100, 200),
                    spacing: Some(PixelSpacing::isotropic(0.2)),
                },
            ],
            source: CalibrationSource::Dicom,
            uncertainty: 0.0,
        };
        assert_eq!(cal.spacing(), Some(PixelSpacing::isotropic(0.1)));
        let p = |x: f32| Point { x, y: 50.0 };
        assert_eq!(
            cal.spacing_between(p(120.0), p(180.0)),
            Some(PixelSpacing::isotropic(0.2))
        );
        assert_eq!(cal.spacing_between(p(50.0), p(150.0)), None);
        assert_eq!(cal.spacing_between(p(50.0), p(250.0)), None);
    }

    #[test]
    fn a_region_without_spacing_is_uncalibrated() {
        let cal = Calibration::single(rect(0, 100), None, CalibrationSource::Config, 0.0);
        assert_eq!(cal.spacing(), None);
        assert_eq!(cal.region(), Some(rect(0, 100)));
        assert_eq!(CalibrationSource::Detected.name(), "detected");
    }
}
