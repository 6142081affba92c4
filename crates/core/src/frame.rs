//! A video frame on its way through the pipeline.
//!
//! Memory layout: pixels are stored tightly packed, row after row, with no
//! row padding (`stride == width * bytes_per_pixel`). Ingest copies GStreamer's
//! possibly padded rows into this layout once; every later stage can rely on it.

use std::sync::Arc;
use std::time::Duration;

use crate::findings::{GroundTruth, ImageRegion, PixelSpacing};
use crate::{Calibration, FrameFindings, FrameId, Pooled, PooledBuffer, Recycled, Timestamp};

/// The pixel formats frames are negotiated into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum PixelFormat {
    /// 8-bit luminance: the natural format for B-mode.
    Gray8,
    /// 8-bit red, green, blue, alpha: where colour matters (Doppler, overlays).
    Rgba,
}

impl PixelFormat {
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Gray8 => 1,
            PixelFormat::Rgba => 4,
        }
    }

    /// The GStreamer video format name (as in `video/x-raw,format=...`).
    pub fn gst_name(self) -> &'static str {
        match self {
            PixelFormat::Gray8 => "GRAY8",
            PixelFormat::Rgba => "RGBA",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameFormatError {
    #[error("frame size {width}x{height} is empty")]
    Empty { width: u32, height: u32 },
    #[error("frame size {width}x{height} is too large for this machine's address space")]
    TooLarge { width: u32, height: u32 },
}

/// Size and pixel format of a tightly packed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct FrameFormat {
    pub pixel: PixelFormat,
    pub width: u32,
    pub height: u32,
}

impl FrameFormat {
    pub fn new(pixel: PixelFormat, width: u32, height: u32) -> Result<Self, FrameFormatError> {
        if width == 0 || height == 0 {
            return Err(FrameFormatError::Empty { width, height });
        }
        let format = Self {
            pixel,
            width,
            height,
        };
        (width as usize)
            .checked_mul(height as usize)
            .and_then(|n| n.checked_mul(pixel.bytes_per_pixel()))
            .ok_or(FrameFormatError::TooLarge { width, height })?;
        Ok(format)
    }

    /// Bytes per row (no padding).
    pub fn stride(&self) -> usize {
        self.width as usize * self.pixel.bytes_per_pixel()
    }

    /// Bytes in the whole frame.
    pub fn len(&self) -> usize {
        self.stride() * self.height as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The stages a frame passes through, in order. Each has an index into
/// [`StageStamps`]; later issues add stages (encode, decode, post, overlay).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Ingest,
    Process,
    Output,
}

impl Stage {
    pub const ALL: [Stage; 3] = [Stage::Ingest, Stage::Process, Stage::Output];
    pub const COUNT: usize = Self::ALL.len();

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Process => "process",
            Stage::Output => "output",
        }
    }
}

/// When the frame entered and left each stage. Fixed size: no allocation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageStamps {
    /// Taken at the appsink (or the phantom's hand-off): the frame's birth.
    pub captured: Timestamp,
    entered: [Option<Timestamp>; Stage::COUNT],
    left: [Option<Timestamp>; Stage::COUNT],
}

impl StageStamps {
    pub fn new(captured: Timestamp) -> Self {
        Self {
            captured,
            ..Self::default()
        }
    }

    pub fn enter(&mut self, stage: Stage, at: Timestamp) {
        self.entered[stage.index()] = Some(at);
    }

    pub fn leave(&mut self, stage: Stage, at: Timestamp) {
        self.left[stage.index()] = Some(at);
    }

    pub fn entered(&self, stage: Stage) -> Option<Timestamp> {
        self.entered[stage.index()]
    }

    pub fn left(&self, stage: Stage) -> Option<Timestamp> {
        self.left[stage.index()]
    }

    /// Time spent inside `stage` (enter to leave), if both were stamped.
    pub fn time_in(&self, stage: Stage) -> Option<Duration> {
        Some(self.left(stage)?.saturating_since(self.entered(stage)?))
    }

    /// Capture to leaving `stage`.
    pub fn since_capture(&self, stage: Stage) -> Option<Duration> {
        Some(self.left(stage)?.saturating_since(self.captured))
    }
}

/// One video frame: tightly packed pixels plus where and when it came from.
#[derive(Debug)]
pub struct Frame {
    pub id: FrameId,
    /// Presentation timestamp given by the source, if it gave one.
    pub source_pts: Option<Duration>,
    /// Incremented each time the source is restarted; frames of one epoch
    /// share one continuous source timeline.
    pub source_epoch: u32,
    pub format: FrameFormat,
    pub stamps: StageStamps,
    pub data: PooledBuffer,
    /// Where the ultrasound image sits in the frame and the size of its
    /// pixels, when the source knows them (phantom, DICOM regions, the
    /// definition, detection); shared by the frames it holds for. None:
    /// the whole frame is the image, and nothing is measured in mm.
    pub calibration: Option<Arc<Calibration>>,
    /// What the frame really shows, when the source is the phantom.
    pub truth: Option<Arc<GroundTruth>>,
    /// Raw model outputs, once the process stage has run the model.
    pub outputs: Option<ModelOutputs>,
    /// What perception found on this frame (or, when the AI path is behind,
    /// on the frame the findings name).
    pub findings: Option<Recycled<FrameFindings>>,
}

/// How model-input coordinates map back to frame pixels (the inverse of the
/// preprocessing's crop and resize): a model coordinate (u, v), corner-based,
/// is frame position x = crop_x + (u - pad_x) / scale_x, y = crop_y + (v - pad_y) / scale_y.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ModelGeometry {
    /// The model input's size in pixels.
    pub input_width: u32,
    pub input_height: u32,
    /// The crop in frame pixels: x, y, width, height.
    pub crop: (u32, u32, u32, u32),
    pub scale_x: f32,
    pub scale_y: f32,
    pub pad_x: f32,
    pub pad_y: f32,
}

impl ModelGeometry {
    /// Frame coordinates of a model coordinate (both corner-based, sub-pixel).
    pub fn to_frame(&self, u: f32, v: f32) -> (f32, f32) {
        (
            self.crop.0 as f32 + (u - self.pad_x) / self.scale_x,
            self.crop.1 as f32 + (v - self.pad_y) / self.scale_y,
        )
    }

    /// Model coordinates of a frame coordinate (the inverse of [`Self::to_frame`]).
    pub fn to_model(&self, x: f32, y: f32) -> (f32, f32) {
        (
            (x - self.crop.0 as f32) * self.scale_x + self.pad_x,
            (y - self.crop.1 as f32) * self.scale_y + self.pad_y,
        )
    }
}

/// Raw per-frame outputs of the mask decoder, in model coordinates.
#[derive(Debug)]
pub struct ModelOutputs {
    /// How the outputs' coordinates map back to the frame.
    pub geometry: ModelGeometry,
    /// The version of the kernels that produced these outputs.
    pub kernel_version: u64,
    /// Task tokens (rows), then mask height and width.
    pub tasks: usize,
    pub height: usize,
    pub width: usize,
    /// `tasks x height x width` logits, row-major.
    pub mask_logits: Pooled<f32>,
    /// One confidence per task (empty when the model has none).
    pub scores: Pooled<f32>,
    /// The encoder's image tokens for the language model ([tokens x width],
    /// row-major), when the encoder writes them: the reasoning head reads
    /// a keyframe's, and keyframe choice compares them across frames.
    pub image_tokens: Option<Pooled<f32>>,
}

impl Frame {
    /// A frame with nothing known about it yet beyond its pixels: no source
    /// PTS, pixel spacing, image region, ground truth or model outputs.
    pub fn new(id: FrameId, format: FrameFormat, data: PooledBuffer, stamps: StageStamps) -> Self {
        Self {
            id,
            source_pts: None,
            source_epoch: 0,
            format,
            stamps,
            data,
            calibration: None,
            truth: None,
            outputs: None,
            findings: None,
        }
    }

    /// The pixel size of the frame's primary image region; None: uncalibrated.
    pub fn pixel_spacing(&self) -> Option<PixelSpacing> {
        self.calibration.as_deref().and_then(Calibration::spacing)
    }

    /// The frame's primary image region; None: the whole frame.
    pub fn image_region(&self) -> Option<ImageRegion> {
        self.calibration.as_deref().and_then(Calibration::region)
    }

    /// Row `y` of the frame. Panics only on a bug (y out of range).
    pub fn row(&self, y: u32) -> &[u8] {
        let stride = self.format.stride();
        let start = y as usize * stride;
        &self.data[start..start + stride]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_sizes() {
        let f = FrameFormat::new(PixelFormat::Rgba, 640, 480).expect("valid");
        assert_eq!(f.stride(), 2560);
        assert_eq!(f.len(), 2560 * 480);
        assert_eq!(
            FrameFormat::new(PixelFormat::Gray8, 0, 480),
            Err(FrameFormatError::Empty {
                width: 0,
                height: 480
            })
        );
    }

    #[test]
    fn stamps_measure_stage_time_and_latency() {
        let mut s = StageStamps::new(Timestamp(1_000));
        s.enter(Stage::Process, Timestamp(2_000));
        s.leave(Stage::Process, Timestamp(5_000));
        assert_eq!(s.time_in(Stage::Process), Some(Duration::from_nanos(3_000)));
        assert_eq!(
            s.since_capture(Stage::Process),
            Some(Duration::from_nanos(4_000))
        );
        assert_eq!(s.time_in(Stage::Output), None);
    }

    #[test]
    fn stage_indices_are_dense() {
        for (i, stage) in Stage::ALL.iter().enumerate() {
            assert_eq!(stage.index(), i);
        }
    }
}
