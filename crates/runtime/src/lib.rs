//! sonoflow-runtime: pipeline definitions and the run that executes them.
//!
//! Start at [`PipelineDefinition::load`] (a TOML file from pipelines/,
//! validated with errors that name the file, the key and the fix) and
//! [`run`], which wires [`sonoflow_ingest`] → process → [`sonoflow_output`]
//! with [`sonoflow_pipeline`] hand-offs and returns a [`RunReport`] (the
//! `--stats-json` document).

mod ai_lane;
mod definition;
pub mod device;
mod load_governor;
mod model_stage;
mod report;
mod run;
mod usage;

pub use ai_lane::ModelProcessor;
pub use definition::{
    DefinitionError, DefinitionFile, OutputConfig, PipelineDefinition, ProcessConfig, ProcessKind,
    QueueConfig, QueueSpec, QueuesConfig,
};
pub use model_stage::{FrameWork, InferenceStats, ModelConfig, ModelSpec, PerceptionConfig};
pub use report::{
    CpuReport, InferenceReport, LatencyMs, LoadReport, OverlayReport, Percentiles, RunReport,
    StageMs,
};
pub use run::{run, LiveStatus, ProcessStage, RunError, RunOptions};
pub use sonoflow_pipeline::{LoadLevel, LoadStep, PassThrough, Processor, StageError, StopFlag};
