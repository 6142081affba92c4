//! sonoflow-core: the types every stage of the frame pipeline shares.
//!
//! Start with [`Frame`]: pixels in a [`PooledBuffer`] (reused, never freed per
//! frame), a [`FrameFormat`], the source PTS and one [`Timestamp`] per
//! [`Stage`] boundary, all taken from an injected [`Clock`].
//! [`alloc_count`] measures heap allocations on the per-frame path.
//!
//! [`Calibration`] rides on every frame: its image regions, pixel spacing in
//! mm, where they came from and how far to trust them.
//!
//! [`annotations`] is what perception found on a frame (contours, boxes,
//! measurements with uncertainty), carried to the overlay.
//!
//! [`findings`] holds the geometry and ground-truth types shared by the
//! phantom, post-processing and the model; a lesion's class, descriptors and
//! assessment are strings in the model's vocabulary (the phantom's typed
//! lexicon lives in `sonoflow_phantom::lexicon`).
//!
//! [`stamp`] writes a frame counter and its capture time into a corner of
//! the pixels, and reads them back from decoded video: glass-to-glass
//! latency across processes, on [`stamp::MachineClock`].
//!
//! This crate must not depend on GStreamer, ONNX Runtime or tokio.

pub mod alloc_count;
pub mod annotations;
mod calibration;
mod clock;
mod config_issue;
pub mod findings;
mod frame;
mod frame_id;
mod interpretation;
mod pool;
pub mod priority;
pub mod stamp;

pub use annotations::FrameFindings;
pub use calibration::{CalibratedRegion, Calibration, CalibrationSource};
pub use clock::{Clock, ManualClock, MonotonicClock, Timestamp};
pub use config_issue::{reject_foreign_keys, ConfigIssue};
pub use frame::{
    Frame, FrameFormat, FrameFormatError, ModelGeometry, ModelOutputs, PixelFormat, Stage,
    StageStamps,
};
pub use frame_id::FrameId;
pub use interpretation::{Interpretation, InterpretationBoard, InterpretationState};
pub use pool::{
    BufferPool, FramePool, PoolCounters, Pooled, PooledBuffer, Recycled, Recycler, Reusable,
};
