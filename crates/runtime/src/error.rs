//! The runtime's errors: a definition that cannot be used, and a run that
//! cannot start. A leaf: it names other crates' errors and nothing of this
//! crate, so every module can return these without importing upward.

use sonoflow_core::ConfigIssue;

/// A pipeline definition (or the device profile it names) that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    #[error("{path}: cannot read the pipeline definition: {cause}")]
    Read { path: String, cause: String },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {issue}")]
    Invalid { path: String, issue: ConfigIssue },
}

impl DefinitionError {
    /// The offending key, for errors that name one.
    pub fn key(&self) -> Option<&str> {
        match self {
            DefinitionError::Invalid { issue, .. } => Some(&issue.key),
            _ => None,
        }
    }
}

/// Why a run could not start (later errors end the run and are in its report).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Ingest(#[from] sonoflow_ingest::IngestError),
    #[error(transparent)]
    Model(#[from] sonoflow_model::ModelError),
    #[error(transparent)]
    Inference(#[from] sonoflow_inference::InferenceError),
    #[error(transparent)]
    Output(#[from] sonoflow_output::OutputError),
    #[error("could not start the {0} thread: {1}")]
    Thread(&'static str, String),
    #[error("the overlay could not be built: {0}")]
    Overlay(#[from] sonoflow_overlay::FontError),
    #[error(transparent)]
    Reasoning(#[from] sonoflow_reasoning::ReasoningError),
    #[error("the results server could not start: {0}")]
    Server(#[from] sonoflow_server::ServerError),
    #[error("cannot create the findings log {path}: {cause}. Fix: give --findings-jsonl a path in a writable directory")]
    FindingsLog { path: String, cause: String },
    #[error("{sink}: {why}")]
    Dicom { sink: String, why: String },
}
