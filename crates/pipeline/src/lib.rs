//! sonoflow-pipeline: the frame pipeline's scheduling, without any I/O.
//!
//! Stage threads are joined by [`handoff`]s: bounded, lock-free, with a
//! stated [`DropPolicy`] and a drop counter each. [`stage`] holds the stage
//! loops and the [`Processor`] / [`FrameSink`] traits that inference and
//! outputs implement; [`metrics`] counts frames, drops and latency.
//!
//! This crate must not depend on GStreamer, ONNX Runtime or tokio.

pub mod activity;
pub mod handoff;
pub mod ladder;
pub mod metrics;
pub mod stage;

pub use activity::{ActivityGuard, FrameActivity};
pub use handoff::{handoff, DropPolicy, HandoffStats, Receiver, RecvError, Sender, Sent};
pub use ladder::{Ladder, LadderOptions, LoadConfig, LoadLevel, LoadStep, StepChange};
pub use metrics::{
    LatencyRecorder, LatencySplit, LatencySummary, MetricsSnapshot, PipelineMetrics, CDF_QUANTILES,
};
pub use stage::{
    run_output_stage, run_process_stage, Delivery, FrameSink, Painter, PassThrough, Processor,
    StageError, StopFlag,
};
