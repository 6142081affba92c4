//! What the `harness = false` benches share; each bench file is one stage
//! (see docs/performance.md).

use std::path::PathBuf;
use std::str::FromStr;

/// A bench's positional arguments (cargo's own `--bench` and other flags
/// left out), with paths taken from the workspace root: cargo runs benches
/// in benches/.
pub struct BenchArgs {
    /// The workspace root: `SONOFLOW_ROOT` when set (a bench binary run
    /// outside the tree it was built in, as scripts/check-gpu.sh --prebuilt
    /// does), else the tree it was built in.
    pub root: PathBuf,
    args: Vec<String>,
}

impl BenchArgs {
    pub fn from_env() -> Self {
        Self {
            root: std::env::var_os("SONOFLOW_ROOT")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")),
            args: std::env::args()
                .skip(1)
                .filter(|a| !a.starts_with("--"))
                .collect(),
        }
    }

    /// Argument `i` as given.
    pub fn get(&self, i: usize) -> Option<&str> {
        self.args.get(i).map(String::as_str)
    }

    /// Argument `i` parsed, or `default` when it is absent or does not parse.
    pub fn parsed<T: FromStr>(&self, i: usize, default: T) -> T {
        self.get(i).and_then(|s| s.parse().ok()).unwrap_or(default)
    }

    /// Argument `i` (or `default`) as a path from the workspace root.
    pub fn path(&self, i: usize, default: &str) -> PathBuf {
        self.root.join(self.get(i).unwrap_or(default))
    }
}
