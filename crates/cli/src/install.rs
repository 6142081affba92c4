//! Where the sonoflow tree (pipelines/, firmware-config/, models/) is found
//! when the working directory is not a checkout: `$SONOFLOW_HOME`, else the
//! folders above the running binary (a checkout's target/release/sonoflow),
//! else `share/sonoflow` beside the binary's prefix (an installed copy).
//! Nothing is compiled in from the build machine.

use std::path::{Path, PathBuf};

/// The file that marks a sonoflow tree.
const MARKER: &str = "pipelines/default.toml";
/// How many folders above the binary are searched.
const LEVELS_UP: usize = 4;

/// The first tree found, if any.
pub fn home() -> Option<PathBuf> {
    candidates()
        .into_iter()
        .find(|dir| dir.join(MARKER).is_file())
}

/// The places [`home`] looks, for an error message.
pub fn searched() -> String {
    let shown: Vec<String> = candidates()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    format!("looked in {}", shown.join(", "))
}

fn candidates() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(home) = std::env::var_os("SONOFLOW_HOME") {
        dirs.push(PathBuf::from(home));
    }
    if let Some(exe) = std::env::current_exe()
        .ok()
        .and_then(|p| p.canonicalize().ok())
    {
        dirs.extend(above(&exe));
    }
    dirs
}

/// `binary`'s folders upwards, then each one's share/sonoflow.
fn above(binary: &Path) -> Vec<PathBuf> {
    let ups: Vec<&Path> = binary.ancestors().skip(1).take(LEVELS_UP).collect();
    let shares = ups.iter().map(|d| d.join("share/sonoflow"));
    ups.iter().map(|d| d.to_path_buf()).chain(shares).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkouts_binary_finds_the_checkout() {
        let root = tempfile::tempdir().expect("temp dir");
        let exe = root.path().join("target/release/sonoflow");
        let found: Vec<PathBuf> = above(&exe);
        assert_eq!(found[0], root.path().join("target/release"));
        assert!(found.contains(&root.path().to_path_buf()));
        assert!(found.contains(&root.path().join("share/sonoflow")));
    }

    #[test]
    fn the_installed_layout_is_searched() {
        let found = above(Path::new("/usr/local/bin/sonoflow"));
        assert!(found.contains(&PathBuf::from("/usr/local/share/sonoflow")));
    }
}
