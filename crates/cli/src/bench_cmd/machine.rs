//! What a bench ran on, so that two machines' figures can be told apart:
//! read from /proc, `nvidia-smi` where there is one, the ONNX Runtime
//! library, git and the model's manifest. A fact that cannot be read is
//! "unknown", never guessed.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};
use sonoflow_model::ModelDir;

const UNKNOWN: &str = "unknown";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    /// Logical CPUs this process may use.
    pub cores: usize,
    pub memory_gib: f64,
    /// "NVIDIA H200, driver 580.xx" per GPU; empty without one.
    pub gpus: Vec<String>,
    pub onnxruntime: String,
    /// Providers the loaded ONNX Runtime offers, fastest first.
    pub providers: Vec<String>,
    pub sonoflow_version: String,
    /// `git rev-parse --short HEAD` of the tree, "+dirty" when it has changes.
    pub commit: String,
    pub model: String,
    /// SHA-256 of the model's manifest (which holds every file's hash).
    pub model_sha256: String,
    pub os: String,
}

impl Machine {
    /// Reads the machine; `root` is the sonoflow tree, `model` the model
    /// benched, `dylib` the ONNX Runtime library.
    pub fn read(root: &Path, model: &ModelDir, dylib: &Path, providers: &[String]) -> Self {
        let manifest = ModelDir::manifest_path(&model.root);
        let model_name = format!("{} {}", model.manifest.name, model.manifest.version);
        Self {
            cpu_model: cpu_model(),
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_gib: memory_gib(),
            gpus: gpus(),
            onnxruntime: onnxruntime(dylib),
            providers: providers.to_vec(),
            sonoflow_version: env!("CARGO_PKG_VERSION").to_owned(),
            commit: commit(root),
            model: model_name,
            model_sha256: sonoflow_model::sha256_hex(&manifest)
                .unwrap_or_else(|_| UNKNOWN.to_owned()),
            os: std::fs::read_to_string("/etc/os-release")
                .ok()
                .and_then(|t| field(&t, "PRETTY_NAME=").map(|v| v.trim_matches('"').to_owned()))
                .unwrap_or_else(|| std::env::consts::OS.to_owned()),
        }
    }

    /// One line: "Intel Xeon ... (2 cores, 8.0 GiB), no GPU, ONNX Runtime 1.31.1".
    pub fn summary(&self) -> String {
        format!(
            "{} ({} cores, {:.1} GiB), {}, {}, sonoflow {} {}, {}",
            self.cpu_model,
            self.cores,
            self.memory_gib,
            if self.gpus.is_empty() {
                "no GPU".to_owned()
            } else {
                self.gpus.join("; ")
            },
            self.onnxruntime,
            self.sonoflow_version,
            self.commit,
            self.model
        )
    }
}

/// The value after `key` on the first line that starts with it.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("Model"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| UNKNOWN.to_owned())
}

fn memory_gib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            field(&t, "MemTotal:")
                .and_then(|v| v.split_whitespace().next())
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / (1024.0 * 1024.0))
}

/// Each GPU nvidia-smi lists, with its driver; none without nvidia-smi.
fn gpus() -> Vec<String> {
    let Ok(out) = Command::new("nvidia-smi")
        .args(["--query-gpu=name,driver_version", "--format=csv,noheader"])
        .output()
    else {
        return Vec::new();
    };
    if !out.status.success() {
        return Vec::new();
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(','))
        .map(|(name, driver)| format!("{}, driver {}", name.trim(), driver.trim()))
        .collect()
}

/// "ONNX Runtime 1.31.1 (libonnxruntime.so.1.31.1)": the version sonoflow
/// is built for, and the library file it loads.
fn onnxruntime(dylib: &Path) -> String {
    let file = std::fs::canonicalize(dylib)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dylib.display().to_string());
    format!("ONNX Runtime {} ({file})", sonoflow_inference::ORT_VERSION)
}

fn commit(root: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(head) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{head}+dirty")
            } else {
                head
            }
        }
        None => UNKNOWN.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_is_read_without_guessing() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let model = ModelDir::open(&root.join("onnx/umind-nano")).expect("umind-nano");
        let m = Machine::read(
            &root,
            &model,
            Path::new("/nonexistent/libonnxruntime.so"),
            &["cpu".to_owned()],
        );
        assert!(m.cores >= 1);
        assert!(m.memory_gib > 0.1, "{m:?}");
        assert!(m.model.starts_with("umind-nano"), "{m:?}");
        assert_eq!(m.model_sha256.len(), 64, "{m:?}");
        assert!(m.summary().contains("ONNX Runtime"), "{}", m.summary());
    }
}
