//! One graph of a model in an ONNX Runtime session: created through the
//! provider chain, checked against the manifest, run once with zeros.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ndarray::{ArrayD, IxDyn};
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::Session;
use ort::value::{DynValue, Tensor, TensorElementType, ValueType};
use serde::{Deserialize, Serialize};
use sonoflow_model::{shape_text, DType, Dim, GraphSpec, ModelDir, TensorSpec};
use tracing::{info, warn};

use crate::provider::{register, Provider, TensorRtOptions};
use crate::InferenceError;

/// Graph optimisation level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Optimization {
    Disable,
    Basic,
    Extended,
    #[default]
    All,
}

impl Optimization {
    fn level(self) -> GraphOptimizationLevel {
        match self {
            Optimization::Disable => GraphOptimizationLevel::Disable,
            Optimization::Basic => GraphOptimizationLevel::Level1,
            Optimization::Extended => GraphOptimizationLevel::Level2,
            Optimization::All => GraphOptimizationLevel::All,
        }
    }
}

/// How sessions are made.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineOptions {
    /// Providers to try, in order; CPU is always tried last.
    pub providers: Vec<Provider>,
    /// A graph not running on this provider is an error, not a fallback.
    pub require: Option<Provider>,
    pub intra_threads: usize,
    pub inter_threads: usize,
    pub optimization: Optimization,
    pub tensorrt: TensorRtOptions,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            providers: vec![Provider::TensorRt, Provider::Cuda, Provider::Cpu],
            require: None,
            intra_threads: 1,
            inter_threads: 1,
            optimization: Optimization::All,
            tensorrt: TensorRtOptions {
                fp16: true,
                cache_dir: PathBuf::from("out/cache"),
            },
        }
    }
}

impl EngineOptions {
    /// Makes a fallback from `provider` an error, putting it first in the
    /// chain if the chain does not try it.
    pub fn require_provider(&mut self, provider: Provider) {
        self.require = Some(provider);
        if !self.chain().contains(&provider) {
            self.providers.insert(0, provider);
        }
    }

    /// The chain actually tried: the configured order with CPU last.
    pub fn chain(&self) -> Vec<Provider> {
        let mut chain: Vec<Provider> = self
            .providers
            .iter()
            .copied()
            .filter(|p| *p != Provider::Cpu)
            .collect();
        chain.push(Provider::Cpu);
        chain
    }
}

/// A provider that was tried for a graph and not used, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fallback {
    pub provider: Provider,
    pub reason: String,
}

/// A graph in a live session.
pub struct GraphSession {
    pub role: String,
    pub file: PathBuf,
    pub spec: GraphSpec,
    pub provider: Provider,
    pub fallbacks: Vec<Fallback>,
    pub load_time: Duration,
    pub session: Session,
}

fn dtype_of(ty: TensorElementType) -> Option<DType> {
    match ty {
        TensorElementType::Float32 => Some(DType::Float32),
        TensorElementType::Float16 => Some(DType::Float16),
        TensorElementType::Int64 => Some(DType::Int64),
        TensorElementType::Int32 => Some(DType::Int32),
        TensorElementType::Bool => Some(DType::Bool),
        _ => None,
    }
}

/// The session's view of a tensor, written like the manifest's.
fn session_text(ty: TensorElementType, shape: &[i64], symbols: &[String]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .zip(
            symbols
                .iter()
                .map(String::as_str)
                .chain(std::iter::repeat("")),
        )
        .map(|(d, s)| {
            if *d >= 0 {
                d.to_string()
            } else if s.is_empty() {
                "?".into()
            } else {
                s.to_owned()
            }
        })
        .collect();
    let ty = dtype_of(ty).map_or_else(|| format!("{ty:?}"), |d| d.name().to_owned());
    format!("{ty} [{}]", dims.join(", "))
}

impl GraphSession {
    /// Opens `role` of `model` through the provider chain.
    pub fn open(
        runtime: &crate::Runtime,
        model: &ModelDir,
        role: &str,
        options: &EngineOptions,
    ) -> Result<Self, InferenceError> {
        let spec = model
            .manifest
            .graphs
            .get(role)
            .ok_or_else(|| InferenceError::MissingGraph {
                role: role.to_owned(),
            })?
            .clone();
        let file = model.root.join(&spec.file);
        let inputs: Vec<String> = spec
            .inputs
            .iter()
            .map(|t| format!("{} {}", t.name, sonoflow_model::shape_text(&t.shape)))
            .collect();
        let cache_key = crate::provider::engine_cache_key(
            role,
            &spec.sha256,
            &inputs.join("; "),
            options.tensorrt.fp16,
        );
        let mut fallbacks = Vec::new();
        for provider in options.chain() {
            let started = Instant::now();
            let compiled_in = provider.compiled_in();
            let attempt = if compiled_in {
                builder(runtime, options)
                    .and_then(|b| register(provider, b, &options.tensorrt, &cache_key))
                    .and_then(|mut b| b.commit_from_file(&file).map_err(|e| e.to_string()))
            } else {
                Err(format!(
                    "not in this ONNX Runtime build (of sonoflow's providers it offers {})",
                    crate::provider::names(&crate::provider::available_providers())
                ))
            };
            match attempt {
                Ok(session) => {
                    if let Some(required) = options.require.filter(|r| *r != provider) {
                        let reason = fallbacks
                            .iter()
                            .find(|f: &&Fallback| f.provider == required)
                            .map_or_else(
                                || "not in the provider chain".to_owned(),
                                |f| f.reason.clone(),
                            );
                        return Err(InferenceError::RequiredProvider {
                            provider: required,
                            file: file.display().to_string(),
                            reason,
                        });
                    }
                    info!(graph = role, %provider, "session ready in {:?}", started.elapsed());
                    let graph = Self {
                        role: role.to_owned(),
                        file,
                        spec,
                        provider,
                        fallbacks,
                        load_time: started.elapsed(),
                        session,
                    };
                    graph.check_against_manifest()?;
                    return Ok(graph);
                }
                Err(raw) => {
                    let reason = crate::provider::explain_failure(provider, &raw);
                    if compiled_in {
                        warn!(graph = role, %provider, "provider not used: {reason}");
                    } else {
                        // How the library was built, not a failure: said once per run.
                        crate::provider::note_absent_gpu_providers();
                    }
                    if options.require == Some(provider) {
                        return Err(InferenceError::RequiredProvider {
                            provider,
                            file: file.display().to_string(),
                            reason,
                        });
                    }
                    fallbacks.push(Fallback { provider, reason });
                }
            }
        }
        let reasons: Vec<String> = fallbacks
            .iter()
            .map(|f| format!("{}: {}", f.provider, f.reason))
            .collect();
        Err(InferenceError::NoProvider {
            file: file.display().to_string(),
            reasons: reasons.join("; "),
        })
    }

    /// Every manifest tensor exists in the graph with its dtype and shape,
    /// and the graph has no tensor the manifest does not declare.
    fn check_against_manifest(&self) -> Result<(), InferenceError> {
        let file = self.file.display().to_string();
        for (kind, declared, actual) in [
            ("input", &self.spec.inputs, self.session.inputs()),
            ("output", &self.spec.outputs, self.session.outputs()),
        ] {
            let names: Vec<&str> = actual.iter().map(|o| o.name()).collect();
            for t in declared {
                let outlet = actual.iter().find(|o| o.name() == t.name).ok_or_else(|| {
                    InferenceError::Tensor {
                        file: file.clone(),
                        tensor: t.name.clone(),
                        expected: format!("an {kind} of the graph (the manifest declares it)"),
                        found: format!("{kind}s {names:?}"),
                    }
                })?;
                check_tensor(&file, t, outlet.dtype())?;
            }
            for name in &names {
                if !declared.iter().any(|t| t.name == *name) {
                    return Err(InferenceError::Tensor {
                        file: file.clone(),
                        tensor: (*name).to_owned(),
                        expected: format!("to be declared in the manifest's {kind}s"),
                        found: "an undeclared graph tensor".into(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Runs the graph once on zeros (symbolic dims bound by `dims`, else 1)
    /// and checks the outputs' fixed dimensions and that every value is
    /// finite. Returns the run time.
    pub fn dummy_run(&mut self, dims: &dyn Fn(&str) -> usize) -> Result<Duration, InferenceError> {
        let file = self.file.display().to_string();
        let err = |e: ort::Error| InferenceError::Run {
            file: file.clone(),
            message: e.to_string(),
        };
        let mut inputs: Vec<(String, DynValue)> = Vec::new();
        for t in &self.spec.inputs {
            let shape: Vec<usize> = t
                .shape
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) => (*n).max(0) as usize,
                    Dim::Named(name) => dims(name),
                })
                .collect();
            let value: DynValue = match t.dtype {
                DType::Float32 => Tensor::from_array(ArrayD::<f32>::zeros(IxDyn(&shape)))
                    .map_err(err)?
                    .into_dyn(),
                DType::Float16 => Tensor::from_array(ArrayD::<half::f16>::from_elem(
                    IxDyn(&shape),
                    half::f16::ZERO,
                ))
                .map_err(err)?
                .into_dyn(),
                DType::Int64 => Tensor::from_array(ArrayD::<i64>::zeros(IxDyn(&shape)))
                    .map_err(err)?
                    .into_dyn(),
                DType::Int32 => Tensor::from_array(ArrayD::<i32>::zeros(IxDyn(&shape)))
                    .map_err(err)?
                    .into_dyn(),
                DType::Bool => Tensor::from_array(ArrayD::<bool>::from_elem(IxDyn(&shape), false))
                    .map_err(err)?
                    .into_dyn(),
            };
            inputs.push((t.name.clone(), value));
        }
        let started = Instant::now();
        let outputs = self.session.run(inputs).map_err(err)?;
        let elapsed = started.elapsed();
        for t in &self.spec.outputs {
            let value = outputs
                .get(t.name.as_str())
                .ok_or_else(|| InferenceError::Tensor {
                    file: file.clone(),
                    tensor: t.name.clone(),
                    expected: "an output of the dummy run".into(),
                    found: "nothing".into(),
                })?;
            let shape: &[i64] = value.shape();
            let fits = shape.len() == t.shape.len()
                && t.shape.iter().zip(shape).all(|(d, n)| match d {
                    Dim::Fixed(f) => f == n,
                    Dim::Named(name) => *n as usize == dims(name),
                });
            if !fits {
                return Err(InferenceError::Tensor {
                    file: file.clone(),
                    tensor: t.name.clone(),
                    expected: shape_text(&t.shape),
                    found: format!("{shape:?} from a dummy run"),
                });
            }
            let (bad, total) = crate::finite::in_value(value).map_err(err)?;
            crate::finite::ensure(&self.file, &self.role, &t.name, bad, total)?;
        }
        Ok(elapsed)
    }
}

fn builder(env: &crate::Runtime, options: &EngineOptions) -> Result<SessionBuilder, String> {
    let text = |e: ort::Error<SessionBuilder>| e.to_string();
    Session::builder(env.environment())
        .map_err(|e| e.to_string())?
        .with_optimization_level(options.optimization.level())
        .map_err(text)?
        .with_intra_threads(options.intra_threads)
        .map_err(text)?
        .with_inter_threads(options.inter_threads)
        .map_err(text)?
        .with_parallel_execution(options.inter_threads > 1)
        .map_err(text)
}

fn check_tensor(
    file: &str,
    declared: &TensorSpec,
    actual: &ValueType,
) -> Result<(), InferenceError> {
    let mismatch = |found: String| InferenceError::Tensor {
        file: file.to_owned(),
        tensor: declared.name.clone(),
        expected: format!("{} {}", declared.dtype.name(), shape_text(&declared.shape)),
        found,
    };
    let ValueType::Tensor {
        ty,
        shape,
        dimension_symbols,
    } = actual
    else {
        return Err(mismatch(format!("{actual}")));
    };
    let found = || session_text(*ty, shape, dimension_symbols);
    if dtype_of(*ty) != Some(declared.dtype) || shape.len() != declared.shape.len() {
        return Err(mismatch(found()));
    }
    for (i, (d, n)) in declared.shape.iter().zip(shape.iter()).enumerate() {
        let ok = match d {
            Dim::Fixed(f) => f == n,
            Dim::Named(name) => {
                *n < 0
                    && dimension_symbols
                        .get(i)
                        .is_none_or(|s| s.is_empty() || s == name)
            }
        };
        if !ok {
            return Err(mismatch(found()));
        }
    }
    Ok(())
}

/// Resolves the ONNX Runtime library: `ORT_DYLIB_PATH`, else the bootstrap's
/// `.venv/libonnxruntime.so.<version>` under `root`.
pub fn default_dylib(root: &Path) -> PathBuf {
    std::env::var_os("ORT_DYLIB_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            root.join(".venv")
                .join(format!("libonnxruntime.so.{}", crate::ORT_VERSION))
        })
}
