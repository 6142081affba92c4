//! sonoflow-runtime: pipeline definitions and the run that executes them.
//!
//! Start at [`PipelineDefinition::load`] (a TOML file from pipelines/,
//! validated with errors that name the file, the key and the fix) and
//! [`run`], which wires [`sonoflow_ingest`] → process → [`sonoflow_output`]
//! with [`sonoflow_pipeline`] hand-offs and returns a [`RunReport`] (the
//! `--stats-json` document).
//!
//! Modules, from the bottom up (each imports only from those above it;
//! `scripts/check-architecture.sh` keeps them free of cycles):
//!
//! - `error`: [`RunError`], [`DefinitionError`]; imports nothing of this crate;
//! - `usage`: CPU time and peak memory from /proc;
//! - `model_config`: `[model]` ([`ModelConfig`] → [`ModelSpec`]);
//! - [`device`]: device profiles, the `[model]` defaults of a class of computer;
//! - `definition`: the definition file, assembling every section's config;
//! - `frame_analysis`: the AI's work on one frame ([`FrameAnalysis`]) and
//!   what it records ([`InferenceStats`]);
//! - [`recording`]: `--record`, the session bundle the AI lane hands analysed frames to;
//! - `ai_lane`: [`ModelProcessor`], the model's thread beside the frame path;
//! - `load_governor`: the output's sink, feeding the degradation ladder;
//! - `frame_tap`: what results consumers need of each frame, copied off the frame path;
//! - `findings_log`: `--findings-jsonl`, one `FrameResult` JSON line per frame, written off the frame path;
//! - `result_stream`: the results server (`[server]`, `--serve`) and its publisher thread;
//! - `process_stage`: [`ProcessStage`], the process stage a definition asks for;
//! - [`replay`]: a recorded session through the model again, its findings compared;
//! - `report`: [`RunReport`], the `--stats-json` document;
//! - `run`: [`run`], the composition root that wires the stages.

mod ai_lane;
mod definition;
pub mod device;
mod dicom_store;
mod error;
mod findings_log;
mod frame_analysis;
mod frame_tap;
mod load_governor;
mod model_config;
mod process_stage;
pub mod recording;
pub mod replay;
mod report;
mod result_stream;
mod run;
mod usage;

pub use ai_lane::ModelProcessor;
pub use definition::{
    DefinitionFile, PipelineDefinition, ProcessConfig, ProcessKind, QueueConfig, QueueSpec,
    QueuesConfig, DEFAULT_QUEUE_DEPTH,
};
pub use dicom_store::DicomReport;
pub use error::{DefinitionError, RunError};
pub use findings_log::FindingsLogReport;
pub use frame_analysis::{AnalysisError, FrameAnalysis, InferenceStats};
pub use model_config::{ModelConfig, ModelSpec, DEFAULT_STALL_AFTER, DEFAULT_WARMUP_RUNS};
pub use process_stage::ProcessStage;
pub use report::{
    CpuReport, InferenceReport, LatencyMs, LoadReport, OverlayReport, Percentiles, RunReport,
    StageMs,
};
pub use result_stream::ServerRunReport;
pub use run::{run, LiveStatus, RunOptions};
pub use sonoflow_output::config::OutputConfig;
pub use sonoflow_perception::PerceptionConfig;
pub use sonoflow_pipeline::{LoadLevel, LoadStep, PassThrough, Processor, StageError, StopFlag};
pub use sonoflow_server::{ServerConfig, ServerOptions, Token as ServerToken};
