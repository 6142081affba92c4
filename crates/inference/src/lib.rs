//! sonoflow-inference: ONNX Runtime for sonoflow models, and the only crate
//! that knows ort. Start with [`Runtime::load`] (the libonnxruntime the
//! bootstrap installed, loaded dynamically), then [`GraphSession::open`]
//! for each graph of a [`sonoflow_model::ModelDir`]: the session is created
//! through the provider chain (TensorRT, CUDA, CPU; see [`provider`]),
//! checked against the manifest tensor by tensor, and can be run once on
//! zeros ([`GraphSession::dummy_run`]). [`check_model`] does all of that for
//! every graph of a model, then runs the model on a real frame. No output
//! that is NaN or infinite is ever taken for a result
//! ([`InferenceError::is_invalid_output`]).

mod finite;
mod frame_model;
mod generator;
mod graph;
pub mod kernels;
pub mod preprocess;
pub mod provider;

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use sonoflow_core::{Frame, MonotonicClock};
use sonoflow_model::{
    ModelDir, ModelError, DECODER, EMBED_TOKENS, KERNEL_PROJECTOR, MASK_DECODER, VISION_ENCODER,
};

pub use frame_model::{FrameModel, StepTimes};
pub use generator::{argmax, Generation, Generator};
pub use graph::{default_dylib, EngineOptions, Fallback, GraphSession, Optimization};
pub use kernels::{KernelError, KernelSlot, Kernels};
pub use provider::{available_providers, Provider, TensorRtOptions};

/// The ONNX Runtime release the bootstrap installs and ort targets.
pub const ORT_VERSION: &str = "1.31.1";

#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error("cannot load ONNX Runtime from {path}: {cause}. Fix: run scripts/bootstrap.sh, or set ORT_DYLIB_PATH to libonnxruntime.so.{ORT_VERSION}")]
    Load { path: String, cause: String },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("the model has no `{role}` graph")]
    MissingGraph { role: String },
    #[error("{file}: tensor `{tensor}`: expected {expected}, found {found}")]
    Tensor {
        file: String,
        tensor: String,
        expected: String,
        found: String,
    },
    #[error("{file}: the required provider {provider} cannot run it: {reason}")]
    RequiredProvider {
        provider: Provider,
        file: String,
        reason: String,
    },
    #[error("{file}: no execution provider could run it ({reasons})")]
    NoProvider { file: String, reasons: String },
    #[error("{file}: inference failed: {message}")]
    Run { file: String, message: String },
    #[error("{file}: output `{tensor}` of the {graph}: {count} of {total} values are not finite (NaN or infinity), so the model's output is invalid. Fix: check the model on real frames; under TensorRT FP16 values past 65504 overflow (try model.tensorrt_fp16 = false)")]
    NonFinite {
        file: String,
        graph: String,
        tensor: String,
        count: usize,
        total: usize,
    },
    #[error("{file}: {image} image tokens and a {prompt}-token prompt need {needed} positions, more than the decoder's {max_positions} (graphs.decoder.max_positions). Fix: shorten the prompt")]
    Positions {
        file: String,
        image: usize,
        prompt: usize,
        needed: usize,
        max_positions: usize,
    },
}

impl InferenceError {
    /// The model ran but wrote values that are not results (NaN or
    /// infinity): the frame's AI output is invalid, to be shown as such and
    /// counted, never taken for "nothing found".
    pub fn is_invalid_output(&self) -> bool {
        matches!(self, InferenceError::NonFinite { .. })
    }
}

/// The loaded ONNX Runtime: one per process.
pub struct Runtime {
    env: ort::environment::Environment,
}

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

impl Runtime {
    /// Loads libonnxruntime from `dylib` (first call) and returns the
    /// process's runtime; later calls return the same one.
    pub fn load(dylib: &Path) -> Result<&'static Runtime, InferenceError> {
        let shown = dylib.display().to_string();
        RUNTIME
            .get_or_init(|| {
                if !dylib.is_file() {
                    return Err("no such file".to_owned());
                }
                let builder = ort::init_from(dylib).map_err(|e| e.to_string())?;
                let env = builder
                    .with_name("sonoflow")
                    .build()
                    .map_err(|e| e.to_string())?;
                Ok(Runtime { env })
            })
            .as_ref()
            .map_err(|cause| InferenceError::Load {
                path: shown,
                cause: cause.clone(),
            })
    }

    pub fn environment(&self) -> &ort::environment::Environment {
        &self.env
    }
}

/// What `check_model` found for one graph.
#[derive(Debug, Clone)]
pub struct GraphCheck {
    pub role: String,
    pub provider: Provider,
    pub fallbacks: Vec<Fallback>,
    pub load_time: Duration,
    pub dummy_run: Duration,
}

/// The size the dummy run gives a symbolic dimension: "tasks" is the
/// default kernels' rows; a KV-cache decoder gets one past and one new
/// position ("past_sequence" + "sequence" = "total_sequence"); any other
/// dimension ("batch", ...) is 1.
pub fn dummy_dim(name: &str, tasks: usize) -> usize {
    match name {
        "tasks" => tasks,
        "total_sequence" => 2,
        _ => 1,
    }
}

/// What `check_model` found: each graph, and the run on a real frame.
#[derive(Debug, Clone)]
pub struct ModelCheck {
    pub graphs: Vec<GraphCheck>,
    /// Preprocessing, encoder and mask decoder (default kernels) on the sample frame.
    pub sample_run: Duration,
    /// Tokens the reasoning graphs generated after the sample frame's image
    /// tokens (None: the model has no reasoning head).
    pub sample_tokens: Option<usize>,
}

/// Tokens `check_model` generates after the sample frame's image tokens.
const SAMPLE_TOKENS: usize = 4;

/// Opens every graph of `model`, checks it against the manifest and runs it
/// once on zeros (dimensions as [`dummy_dim`] says); then runs the model on
/// `sample`, a real frame (the per-frame path with the default kernels, and
/// the reasoning graphs on its image tokens: a few greedy tokens, then the
/// kernel projector on their hidden states). Every output of every run must
/// be finite: an error names the graph and the tensor.
pub fn check_model(
    runtime: &Runtime,
    model: &ModelDir,
    options: &EngineOptions,
    sample: &Frame,
) -> Result<ModelCheck, InferenceError> {
    let tasks = model.manifest.default_kernels.tokens.len();
    let dims = move |name: &str| dummy_dim(name, tasks);
    let mut graphs = Vec::new();
    let mut sessions = std::collections::BTreeMap::new();
    for role in model.manifest.graphs.keys() {
        let mut graph = GraphSession::open(runtime, model, role, options)?;
        let dummy_run = graph.dummy_run(&dims)?;
        graphs.push(GraphCheck {
            role: role.clone(),
            provider: graph.provider,
            fallbacks: graph.fallbacks.clone(),
            load_time: graph.load_time,
            dummy_run,
        });
        sessions.insert(role.clone(), graph);
    }
    let mut take = |role: &str| {
        sessions
            .remove(role)
            .ok_or_else(|| InferenceError::MissingGraph {
                role: role.to_owned(),
            })
    };
    let mut frame_model =
        FrameModel::with_sessions(model, take(VISION_ENCODER)?, take(MASK_DECODER)?, None)?;
    let (outputs, times) = frame_model.infer(sample, &MonotonicClock::new())?;
    let sample_run = times.total();
    let reasoning = [EMBED_TOKENS, DECODER, KERNEL_PROJECTOR]
        .iter()
        .all(|role| model.manifest.graphs.contains_key(*role));
    let sample_tokens = match (&outputs.image_tokens, reasoning) {
        (Some(image_tokens), true) => {
            let mut generator = Generator::with_sessions(
                model,
                take(EMBED_TOKENS)?,
                take(DECODER)?,
                take(KERNEL_PROJECTOR)?,
            )?;
            Some(generator.sample_run(image_tokens, tasks, SAMPLE_TOKENS)?)
        }
        _ => None,
    };
    Ok(ModelCheck {
        graphs,
        sample_run,
        sample_tokens,
    })
}
