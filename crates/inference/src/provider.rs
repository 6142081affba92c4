//! Execution providers, tried in order: TensorRT (FP16 switchable, engine
//! and timing caches), CUDA, then CPU. ort registers providers silently by
//! default (a failed one falls back to CPU without a word); here each is
//! tried on its own with `error_on_failure`, and why any was skipped is kept
//! and reported.

use std::path::PathBuf;

use ort::ep::{self, ExecutionProvider};
use ort::session::builder::SessionBuilder;
use serde::{Deserialize, Serialize};
use sha2::Digest;

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

/// The directory name of a graph's TensorRT engine and timing caches: an
/// engine is only valid for one model, GPU, TensorRT version, ONNX Runtime
/// version, input shapes and precision, so all of them go into the key
/// (`ROLE-HASH16`); `key.txt` in the directory lists them in words.
pub fn engine_cache_key(
    role: &str,
    graph_sha256: &str,
    inputs: &str,
    fp16: bool,
) -> (String, String) {
    let facts = format!(
        "role: {role}\ngraph sha256: {graph_sha256}\ninputs: {inputs}\nfp16: {fp16}\ngpu: {}\ntensorrt: {}\nonnxruntime: {}\n",
        gpu_name().unwrap_or_else(|| "none found".into()),
        tensorrt_version().unwrap_or_else(|| "not found".into()),
        onnxruntime_library(),
    );
    let digest = sha2::Sha256::digest(facts.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    (format!("{role}-{hex}"), facts)
}

/// The ONNX Runtime library in use (its resolved file name carries the version).
fn onnxruntime_library() -> String {
    std::env::var("ORT_DYLIB_PATH")
        .ok()
        .map(|p| std::fs::canonicalize(&p).map_or(p, |c| c.display().to_string()))
        .map_or_else(
            || format!("api {}", ort::MINOR_VERSION),
            |p| p.rsplit('/').next().unwrap_or_default().to_owned(),
        )
}

/// The first NVIDIA GPU's model name, from the driver's /proc files.
fn gpu_name() -> Option<String> {
    let dir = std::fs::read_dir("/proc/driver/nvidia/gpus").ok()?;
    let mut entries: Vec<_> = dir.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    entries.sort();
    let info = std::fs::read_to_string(entries.first()?.join("information")).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("Model:").map(|m| m.trim().to_owned()))
}

/// TensorRT's version, from the file name of a `libnvinfer.so.X.Y.Z` on the
/// library path (where ONNX Runtime's TensorRT provider will load it from).
fn tensorrt_version() -> Option<String> {
    let mut dirs: Vec<std::path::PathBuf> = std::env::var("LD_LIBRARY_PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|d| !d.is_empty())
        .map(Into::into)
        .collect();
    if let Ok(ort) = std::env::var("ORT_DYLIB_PATH") {
        dirs.extend(std::path::Path::new(&ort).parent().map(Into::into));
    }
    dirs.extend(
        [
            "/usr/lib/x86_64-linux-gnu",
            "/usr/lib/aarch64-linux-gnu",
            "/usr/local/lib",
            "/usr/lib",
        ]
        .map(Into::into),
    );
    dirs.iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| e.ok())
        .find_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("libnvinfer.so.")
                .filter(|v| v.matches('.').count() >= 2)
                .map(str::to_owned)
        })
}

/// Says once per process, at INFO, which GPU providers the loaded ONNX
/// Runtime was built without (the PyPI wheel is CPU-only): that is how the
/// library was built, not a failure, so it is neither repeated per graph
/// nor a warning. Each graph still lists them in its fallbacks; a provider
/// that is built in but fails stays a warning.
pub(crate) fn note_absent_gpu_providers() {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        let absent: Vec<&str> = [Provider::TensorRt, Provider::Cuda]
            .into_iter()
            .filter(|p| !p.compiled_in())
            .map(Provider::name)
            .collect();
        let offered = available_providers();
        let build = if offered == [Provider::Cpu] {
            "CPU only".to_owned()
        } else {
            format!("it offers {}", names(&offered))
        };
        tracing::info!(
            "GPU providers not in this ONNX Runtime build ({build}): {}",
            absent.join(", ")
        );
    });
}

/// Registers `provider` on `builder`, failing loudly if it cannot be.
pub(crate) fn register(
    provider: Provider,
    builder: SessionBuilder,
    trt: &TensorRtOptions,
    cache_key: &(String, String),
) -> Result<SessionBuilder, String> {
    let dispatch = match provider {
        Provider::TensorRt => {
            let dir = trt.cache_dir.join(&cache_key.0);
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create the engine cache {}: {e}", dir.display()))?;
            std::fs::write(dir.join("key.txt"), &cache_key.1)
                .map_err(|e| format!("cannot write {}: {e}", dir.join("key.txt").display()))?;
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
        Provider::Cpu => ep::CPU::default()
            .with_arena_allocator(true)
            .build()
            .error_on_failure(),
    };
    builder
        .with_execution_providers([dispatch])
        .map_err(|e| e.to_string())
}

/// ONNX Runtime's words for a provider that would not start, made short and
/// given the fix: its source-file prefix goes, and a provider library that
/// cannot load for want of another (CUDA, cuDNN, TensorRT) says which one is
/// missing and where it must come from.
pub fn explain_failure(provider: Provider, raw: &str) -> String {
    let text = raw
        .rsplit_once("[ONNXRuntimeError] : ")
        .map_or(raw, |(_, rest)| {
            rest.trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ' || c == ':')
        })
        .trim_start_matches("FAIL : ")
        .trim();
    let Some((_, after)) = text.split_once(" with error: ") else {
        return text.to_owned();
    };
    let Some(missing) =
        after.strip_suffix(": cannot open shared object file: No such file or directory")
    else {
        return text.to_owned();
    };
    let library = text
        .split_once("Failed to load library ")
        .and_then(|(_, rest)| rest.split_once(" with error"))
        .map_or("its provider library", |(path, _)| {
            path.rsplit('/').next().unwrap_or(path)
        });
    let needs = match provider {
        Provider::TensorRt => "TensorRT, CUDA and cuDNN",
        Provider::Cuda => "CUDA and cuDNN",
        Provider::Cpu => "nothing more",
    };
    format!(
        "{library} needs {missing}, which is not on the library path: install the {needs} versions this \
         ONNX Runtime build was made for (system packages, or scripts/check-gpu.sh --cuda-libs for the CUDA \
         and cuDNN wheels) or add their lib folders to LD_LIBRARY_PATH"
    )
}

/// The providers of sonoflow's chain that the loaded ONNX Runtime library
/// was built with, fastest first. ort asks the library itself
/// (`ExecutionProvider::is_available`), so no FFI of our own is needed;
/// providers sonoflow never uses are not listed.
pub fn available_providers() -> Vec<Provider> {
    [Provider::TensorRt, Provider::Cuda, Provider::Cpu]
        .into_iter()
        .filter(|p| p.compiled_in())
        .collect()
}

/// `providers` as words for a message: "tensorrt, cuda, cpu".
pub(crate) fn names(providers: &[Provider]) -> String {
    providers
        .iter()
        .map(|p| p.name())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod cache_key_tests {
    use super::*;

    #[test]
    fn a_provider_library_that_cannot_load_names_what_is_missing() {
        // Word for word what onnxruntime-gpu 1.31.1 says on a machine without CUDA.
        let raw = "/onnxruntime_src/onnxruntime/core/session/provider_bridge_ort.cc:2043 onnxruntime::Provider& \
                   onnxruntime::ProviderLibrary::Get() [ONNXRuntimeError] : 1 : FAIL : Failed to load library \
                   /v/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime_providers_cuda.so with error: \
                   libcublasLt.so.13: cannot open shared object file: No such file or directory";
        let said = explain_failure(Provider::Cuda, raw);
        assert!(said.starts_with("libonnxruntime_providers_cuda.so needs libcublasLt.so.13, which is not on the library path"), "{said}");
        assert!(
            said.contains("CUDA and cuDNN") && said.contains("LD_LIBRARY_PATH"),
            "{said}"
        );
        assert!(!said.contains("onnxruntime_src"), "{said}");
        // Anything else keeps ONNX Runtime's own words, less the source-file prefix.
        let other = "/src/x.cc:12 f() [ONNXRuntimeError] : 1 : FAIL : CUDA failure 100: no CUDA-capable device is detected";
        assert_eq!(
            explain_failure(Provider::Cuda, other),
            "CUDA failure 100: no CUDA-capable device is detected"
        );
        assert_eq!(
            explain_failure(Provider::TensorRt, "plain words"),
            "plain words"
        );
    }

    #[test]
    fn engine_cache_key_changes_with_shapes_precision_and_model() {
        let (a, facts) = engine_cache_key("vision_encoder", "ab12", "x [1, 1, 256, 256]", true);
        assert!(
            a.starts_with("vision_encoder-") && a.len() == "vision_encoder-".len() + 16,
            "{a}"
        );
        assert!(
            facts.contains("gpu: ")
                && facts.contains("tensorrt: ")
                && facts.contains("onnxruntime: "),
            "{facts}"
        );
        assert_ne!(
            a,
            engine_cache_key("vision_encoder", "ab12", "x [1, 1, 320, 320]", true).0
        );
        assert_ne!(
            a,
            engine_cache_key("vision_encoder", "ab12", "x [1, 1, 256, 256]", false).0
        );
        assert_ne!(
            a,
            engine_cache_key("vision_encoder", "cd34", "x [1, 1, 256, 256]", true).0
        );
        assert_eq!(
            a,
            engine_cache_key("vision_encoder", "ab12", "x [1, 1, 256, 256]", true).0
        );
    }
}
