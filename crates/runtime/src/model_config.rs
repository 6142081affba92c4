//! `[model]` of a pipeline definition (and of a device profile): which model
//! the process stage runs, on which engine settings, and how long a frame
//! waits for it.
//!
//! It lives in the runtime, not in sonoflow-inference beside
//! [`EngineOptions`], because two of its keys are the runtime's: the model
//! directory is opened by the AI lane's loader, and `stall_after_ms` is the
//! AI lane's deadline on the frame path, which the inference crate knows
//! nothing of. The engine keys are validated into [`EngineOptions`], whose
//! `Default` is where their defaults are written.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use sonoflow_core::ConfigIssue;
use sonoflow_inference::{EngineOptions, Optimization, Provider, TensorRtOptions};

/// How long a frame from a live source waits for the model by default.
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_millis(250);
/// Inferences on a blank frame before the first live one, by default.
pub const DEFAULT_WARMUP_RUNS: usize = 3;
/// The most ONNX Runtime threads a `[model]` may ask for.
const MAX_THREADS: usize = 64;

/// `[model]` as written: which model the process stage runs, and how.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The model directory (holding sonoflow-model.toml).
    pub dir: Option<PathBuf>,
    /// Execution providers to try, in order; CPU is always tried last
    /// (default: [`EngineOptions::default`]'s, TensorRT, CUDA, CPU).
    pub providers: Option<Vec<String>>,
    /// A graph not running on this provider fails the run instead of falling back.
    pub require_provider: Option<String>,
    /// ONNX Runtime threads inside one operator (default: [`EngineOptions::default`]'s,
    /// 1: the frame path's share of a 2-core machine; raise on bigger CPUs).
    pub intra_threads: Option<usize>,
    /// Threads across operators (default: [`EngineOptions::default`]'s, 1: sequential execution).
    pub inter_threads: Option<usize>,
    /// Graph optimisation: "disable", "basic", "extended" or "all" (default).
    pub optimization: Option<Optimization>,
    /// Inferences on a blank frame before the first live one (default
    /// [`DEFAULT_WARMUP_RUNS`]): the first frames do not pay for lazy allocation.
    pub warmup_runs: Option<usize>,
    /// TensorRT in FP16 (default: [`EngineOptions::default`]'s, on).
    pub tensorrt_fp16: Option<bool>,
    /// Where TensorRT engine and timing caches live (default: [`EngineOptions::default`]'s).
    pub cache_dir: Option<PathBuf>,
    /// A frame from a live source waits at most this long for the model
    /// (default [`DEFAULT_STALL_AFTER`]); past it the frame goes on without
    /// findings and the video keeps flowing while the model catches up.
    /// Frames from files wait for the model unless this is set.
    pub stall_after_ms: Option<u64>,
    /// Each frame also runs mirrored left to right and the two passes' mask
    /// logits are averaged (default off; doubles the model's time per frame;
    /// [`sonoflow_inference::FrameModel::set_mirror_average`]).
    pub mirror_average: Option<bool>,
}

/// A validated `[model]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub dir: PathBuf,
    pub engine: EngineOptions,
    pub warmup_runs: usize,
    /// None: frames always wait for the model (files: nothing is lost).
    pub stall_after: Option<Duration>,
    /// Test-time mirroring (`mirror_average`).
    pub mirror_average: bool,
}

fn provider(key: &str, name: &str) -> Result<Provider, ConfigIssue> {
    Provider::parse(name).ok_or_else(|| {
        ConfigIssue::new(
            key,
            format!("\"{name}\" is not a provider"),
            "use \"tensorrt\", \"cuda\" or \"cpu\"",
        )
    })
}

impl ModelConfig {
    /// This config with every unset key taken from `defaults` (a device profile's).
    pub fn or(&self, defaults: &ModelConfig) -> ModelConfig {
        ModelConfig {
            dir: self.dir.clone().or_else(|| defaults.dir.clone()),
            providers: self
                .providers
                .clone()
                .or_else(|| defaults.providers.clone()),
            require_provider: self
                .require_provider
                .clone()
                .or_else(|| defaults.require_provider.clone()),
            intra_threads: self.intra_threads.or(defaults.intra_threads),
            inter_threads: self.inter_threads.or(defaults.inter_threads),
            optimization: self.optimization.or(defaults.optimization),
            warmup_runs: self.warmup_runs.or(defaults.warmup_runs),
            tensorrt_fp16: self.tensorrt_fp16.or(defaults.tensorrt_fp16),
            cache_dir: self
                .cache_dir
                .clone()
                .or_else(|| defaults.cache_dir.clone()),
            stall_after_ms: self.stall_after_ms.or(defaults.stall_after_ms),
            mirror_average: self.mirror_average.or(defaults.mirror_average),
        }
    }

    /// The spec, with every unset key at its default. `stall_after` is always
    /// set here; the definition clears it for file sources that did not ask.
    pub fn validate(&self) -> Result<ModelSpec, ConfigIssue> {
        let dir = self.dir.clone().ok_or_else(|| {
            ConfigIssue::new(
                "model.dir",
                "is required when process.kind = \"model\"",
                "add dir = \"onnx/umind-nano\" under [model]",
            )
        })?;
        let defaults = EngineOptions::default();
        let providers = match &self.providers {
            Some(list) => list
                .iter()
                .map(|p| provider("model.providers", p))
                .collect::<Result<Vec<_>, _>>()?,
            None => defaults.providers.clone(),
        };
        let require = self
            .require_provider
            .as_deref()
            .map(|p| provider("model.require_provider", p))
            .transpose()?;
        for (key, v) in [
            ("model.intra_threads", self.intra_threads),
            ("model.inter_threads", self.inter_threads),
        ] {
            if let Some(n) = v.filter(|n| *n == 0 || *n > MAX_THREADS) {
                return Err(ConfigIssue::new(
                    key,
                    format!("is {n}"),
                    format!("use 1 to {MAX_THREADS} threads"),
                ));
            }
        }
        let mut engine = EngineOptions {
            providers,
            require: None,
            intra_threads: self.intra_threads.unwrap_or(defaults.intra_threads),
            inter_threads: self.inter_threads.unwrap_or(defaults.inter_threads),
            optimization: self.optimization.unwrap_or(defaults.optimization),
            tensorrt: TensorRtOptions {
                fp16: self.tensorrt_fp16.unwrap_or(defaults.tensorrt.fp16),
                cache_dir: self
                    .cache_dir
                    .clone()
                    .unwrap_or(defaults.tensorrt.cache_dir),
            },
        };
        if let Some(r) = require {
            engine.require_provider(r);
        }
        if self.stall_after_ms == Some(0) {
            return Err(ConfigIssue::new(
                "model.stall_after_ms",
                "is 0",
                format!(
                    "use at least 1 ms ({} is the default)",
                    DEFAULT_STALL_AFTER.as_millis()
                ),
            ));
        }
        let stall_after = self
            .stall_after_ms
            .map_or(DEFAULT_STALL_AFTER, Duration::from_millis);
        Ok(ModelSpec {
            dir,
            engine,
            warmup_runs: self.warmup_runs.unwrap_or(DEFAULT_WARMUP_RUNS),
            stall_after: Some(stall_after),
            mirror_average: self.mirror_average.unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_keys_take_the_written_defaults() {
        let spec = ModelConfig {
            dir: Some("m".into()),
            ..ModelConfig::default()
        }
        .validate()
        .expect("valid");
        assert_eq!(spec.engine, EngineOptions::default());
        assert_eq!(spec.warmup_runs, DEFAULT_WARMUP_RUNS);
        assert_eq!(spec.stall_after, Some(DEFAULT_STALL_AFTER));
        assert!(
            !spec.mirror_average,
            "mirroring doubles the model's time: off unless asked"
        );
    }

    #[test]
    fn bad_keys_are_named() {
        let with = |c: ModelConfig| {
            ModelConfig {
                dir: Some("m".into()),
                ..c
            }
            .validate()
            .expect_err("invalid")
            .key
        };
        assert_eq!(
            with(ModelConfig {
                intra_threads: Some(0),
                ..ModelConfig::default()
            }),
            "model.intra_threads"
        );
        assert_eq!(
            with(ModelConfig {
                providers: Some(vec!["tpu".into()]),
                ..ModelConfig::default()
            }),
            "model.providers"
        );
        assert_eq!(
            with(ModelConfig {
                stall_after_ms: Some(0),
                ..ModelConfig::default()
            }),
            "model.stall_after_ms"
        );
        assert!(ModelConfig::default()
            .validate()
            .is_err_and(|e| e.key == "model.dir"));
    }

    #[test]
    fn pipeline_keys_win_over_the_profile() {
        let profile = ModelConfig {
            intra_threads: Some(4),
            inter_threads: Some(2),
            ..ModelConfig::default()
        };
        let mine = ModelConfig {
            intra_threads: Some(1),
            ..ModelConfig::default()
        };
        let merged = mine.or(&profile);
        assert_eq!(
            (merged.intra_threads, merged.inter_threads),
            (Some(1), Some(2))
        );
    }
}
