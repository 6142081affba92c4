//! What perception found on one frame, in frame pixels and millimetres:
//! the findings with their contours, boxes and measurements. It travels
//! with the frame (in a [`Recycled`](crate::Recycled) object, so steady
//! frames allocate nothing) to the overlay and the results stream, and it
//! always names the frame it was computed on.

use serde::Serialize;

use crate::findings::{BoundingBox, Caliper, Point};
use crate::{FrameId, Reusable, Timestamp};

/// Which mask a finding came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A component of the segmentation task's mask: contour and calipers.
    Segment,
    /// A component of the detection task's mask: box and confidence.
    Detection,
}

/// A caliper and how far to trust it. `uncertainty_mm` combines the pixel
/// size (half a pixel at each end) with how far the length moves when the
/// mask's probability threshold moves (0.3 to 0.7 by default), in quadrature.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Measurement {
    pub caliper: Caliper,
    pub uncertainty_mm: f64,
}

/// An ellipse fitted to a finding (for round structures: the circumference).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ellipse {
    pub centre: Point,
    /// Semi-axes in pixels.
    pub semi_major_px: f32,
    pub semi_minor_px: f32,
    /// Angle of the major axis from the x axis, radians (y down).
    pub angle: f32,
    /// Both diameters and the circumference in mm.
    pub major_mm: f64,
    pub minor_mm: f64,
    pub circumference_mm: f64,
}

/// One finding of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FrameFinding {
    /// Stable across frames while the finding is tracked (colours, smoothing).
    pub track: u32,
    pub kind: FindingKind,
    pub bbox: BoundingBox,
    pub area_px: u32,
    /// Sigmoid of the strongest logit inside the finding.
    pub confidence: f32,
    /// Range of this finding's contour in [`FrameFindings::points`] (start, length).
    pub contour: (u32, u32),
    /// Present when the frame's pixel spacing is known.
    pub long_axis: Option<Measurement>,
    pub short_axis: Option<Measurement>,
    pub ellipse: Option<Ellipse>,
}

/// Whether the model's outputs for a frame could be used at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AiVerdict {
    /// The outputs were checked and read; an empty finding list means nothing was found.
    #[default]
    Valid,
    /// The outputs held non-finite values (NaN, infinity): nothing can be
    /// said about the frame, and above all not "no lesion".
    InvalidOutput,
}

/// Everything perception found on one frame.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FrameFindings {
    /// The frame these were computed on.
    pub frame: FrameId,
    /// Whether the model's output was usable; when it was not, `findings` is empty
    /// and means "unknown", never "nothing there".
    pub verdict: AiVerdict,
    /// When that frame was captured.
    pub captured: Timestamp,
    /// Segments first (largest first), then detections.
    pub findings: Vec<FrameFinding>,
    /// All contours, closed polygons in frame pixels, back to back.
    pub points: Vec<Point>,
}

impl FrameFindings {
    /// The closed contour of `f` (empty for a finding without one).
    pub fn contour(&self, f: &FrameFinding) -> &[Point] {
        let (start, len) = (f.contour.0 as usize, f.contour.1 as usize);
        self.points.get(start..start + len).unwrap_or(&[])
    }

    pub fn segments(&self) -> impl Iterator<Item = &FrameFinding> {
        self.findings
            .iter()
            .filter(|f| f.kind == FindingKind::Segment)
    }

    pub fn detections(&self) -> impl Iterator<Item = &FrameFinding> {
        self.findings
            .iter()
            .filter(|f| f.kind == FindingKind::Detection)
    }

    /// Findings a busy frame may hold without growing a preallocated set.
    pub const ROOM_FINDINGS: usize = 64;
    /// Contour points a busy frame may hold without growing a preallocated set.
    pub const ROOM_POINTS: usize = 16_384;

    /// Empty, with room for `findings` findings and `points` contour points.
    pub fn with_capacity(findings: usize, points: usize) -> Self {
        Self {
            findings: Vec::with_capacity(findings),
            points: Vec::with_capacity(points),
            ..Self::default()
        }
    }

    /// Empty, with room for a busy frame ([`Self::ROOM_FINDINGS`],
    /// [`Self::ROOM_POINTS`]), so that steady frames never grow it.
    pub fn preallocated() -> Self {
        Self::with_capacity(Self::ROOM_FINDINGS, Self::ROOM_POINTS)
    }

    /// Becomes a copy of `other`, reusing this one's allocations (the
    /// derived `clone_from` would allocate afresh).
    pub fn copy_from(&mut self, other: &FrameFindings) {
        self.frame = other.frame;
        self.verdict = other.verdict;
        self.captured = other.captured;
        self.findings.clone_from(&other.findings);
        self.points.clone_from(&other.points);
    }
}

impl Reusable for FrameFindings {
    fn reset(&mut self) {
        self.frame = FrameId::default();
        self.verdict = AiVerdict::Valid;
        self.captured = Timestamp::default();
        self.findings.clear();
        self.points.clear();
    }
}
