//! sonoflow-reasoning: the asynchronous half of the model. The frame path
//! picks keyframes ([`keyframes`]) from what it already computed and hands
//! them to the [`ReasoningHead`], which runs the language model on its own
//! thread ([`head`]): prompt ([`prompt`]), generation with the KV cache
//! (greedy or seeded sampling, [`sampling`]), the report streamed to the
//! overlay at a constant cost per token ([`stream`]), task-token hidden
//! states to kernels for the per-frame decoder, and a report whose every
//! number comes from the calipers ([`grounding`]).

pub mod config;
pub mod grounding;
pub mod head;
pub mod keyframes;
pub mod prompt;
mod remote_head;
pub mod report;
pub mod sampling;
pub mod stats;
pub mod stream;

pub use config::{HeadSpec, ReasoningConfig, RemoteConfig, RemoteSpec};
pub use grounding::Calipers;
pub use head::{HeadHandle, Keyframe, ReasoningHead};
pub use keyframes::{FrameSignals, KeyframeOptions, KeyframeReason, KeyframeSelector};
pub use report::Report;
pub use sampling::{Sampler, Sampling};
pub use stats::{Finished, ReasoningReport, ReasoningStats};

#[derive(Debug, thiserror::Error)]
pub enum ReasoningError {
    #[error(transparent)]
    Model(#[from] sonoflow_model::ModelError),
    #[error(transparent)]
    Inference(#[from] sonoflow_inference::InferenceError),
    #[error("{model} names no [tokenizer]; the reasoning head needs one. Fix: add a [tokenizer] file = \"tokenizer.json\" to the manifest, or set [reasoning] enabled = false")]
    NoTokenizer { model: String },
    #[error("tokenizer {path}: {cause}")]
    Tokenizer { path: String, cause: String },
    #[error("the prompt \"{prompt}\" has words outside the model's vocabulary ({unknown}). Fix: use one of the model's task prompts: {examples}")]
    Prompt {
        prompt: String,
        unknown: String,
        /// The model's task prompts (its manifest's `prompts`, else its task tokens), quoted.
        examples: String,
    },
    #[error("the kernels could not be published: {0}")]
    Kernels(#[from] sonoflow_inference::KernelError),
    #[error("could not start the reasoning thread: {0}")]
    Thread(String),
    #[error("[reasoning] backend = \"remote\": {0}")]
    Remote(sonoflow_remote::RemoteError),
}

impl ReasoningError {
    /// A model output that is not a result (NaN or infinity), from a graph
    /// or refused by the kernel slot.
    pub fn is_invalid_output(&self) -> bool {
        match self {
            ReasoningError::Inference(e) => e.is_invalid_output(),
            ReasoningError::Kernels(e) => e.is_invalid_output(),
            _ => false,
        }
    }
}
