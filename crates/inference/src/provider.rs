//! Execution providers, tried in order: TensorRT (FP16 switchable, engine
//! and timing caches), CUDA, then CPU. ort registers providers silently by
//! default (a failed one falls back to CPU without a word); here each is
//! tried on its own with `error_on_failure`, and why any was skipped is kept
//! and reported.

use std::path::PathBuf;

use ort::ep::{self, ExecutionProvider};
use ort::session::builder::SessionBuilder;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    TensorRt,
    Cuda,
    Cpu,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::TensorRt => "tensorrt",
            Provider::Cuda => "cuda",
            Provider::Cpu => "cpu",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "tensorrt" | "trt" => Some(Provider::TensorRt),
            "cuda" => Some(Provider::Cuda),
            "cpu" => Some(Provider::Cpu),
            _ => None,
        }
    }

    /// Whether the loaded ONNX Runtime library was built with this provider.
    pub fn compiled_in(self) -> bool {
        match self {
            Provider::TensorRt => ep::TensorRT::is_available().unwrap_or(false),
            Provider::Cuda => ep::CUDA::is_available().unwrap_or(false),
            Provider::Cpu => true,
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// TensorRT settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRtOptions {
    pub fp16: bool,
    /// Engine and timing caches live here, one subdirectory per cache key.
    pub cache_dir: PathBuf,
}

/// Registers `provider` on `builder`, failing loudly if it cannot be.
pub(crate) fn register(
    provider: Provider,
    builder: SessionBuilder,
    trt: &TensorRtOptions,
    cache_key: &str,
) -> Result<SessionBuilder, String> {
    let dispatch = match provider {
        Provider::TensorRt => {
            let dir = trt.cache_dir.join(cache_key);
            std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create the engine cache {}: {e}", dir.display()))?;
            let dir = dir.display().to_string();
            ep::TensorRT::default()
                .with_fp16(trt.fp16)
                .with_engine_cache(true)
                .with_engine_cache_path(&dir)
                .with_timing_cache(true)
                .with_timing_cache_path(&dir)
                .build()
                .error_on_failure()
        }
        Provider::Cuda => ep::CUDA::default().build().error_on_failure(),
        Provider::Cpu => ep::CPU::default().with_arena_allocator(true).build().error_on_failure(),
    };
    builder.with_execution_providers([dispatch]).map_err(|e| e.to_string())
}

/// Names of the providers the loaded ONNX Runtime library offers.
pub fn available_providers() -> Vec<String> {
    // SAFETY: GetAvailableProviders fills a pointer to `n` C strings that stay
    // valid until ReleaseAvailableProviders, which is called right after copying.
    unsafe {
        let api = ort::api();
        let (mut list, mut n): (*mut *mut std::ffi::c_char, std::ffi::c_int) = (std::ptr::null_mut(), 0);
        if ort::Error::result_from_status((api.GetAvailableProviders)(&mut list, &mut n)).is_err() || list.is_null() {
            return Vec::new();
        }
        let names = (0..n as usize)
            .map(|i| std::ffi::CStr::from_ptr(*list.add(i)).to_string_lossy().into_owned())
            .collect();
        let _ = ort::Error::result_from_status((api.ReleaseAvailableProviders)(list, n));
        names
    }
}
