//! Device profiles: `firmware-config/devices/NAME.toml` holds the inference
//! settings that fit one class of cart computer (execution providers,
//! thread budgets, graph optimisation, TensorRT precision and cache), so a
//! pipeline definition names its device (`device = "jetson-orin"`) instead
//! of repeating them. Keys the pipeline's own `[model]` sets win over the
//! profile's.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sonoflow_core::ConfigIssue;
use sonoflow_reasoning::ReasoningConfig;

use crate::error::DefinitionError;
use crate::model_config::ModelConfig;

/// A device profile file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    description: Option<String>,
    #[serde(default)]
    model: ModelConfig,
    /// The reasoning head's thread budget on this device.
    #[serde(default)]
    reasoning: ReasoningBudget,
}

/// A profile's `[reasoning]`: only the thread budget (the pipeline sets the rest).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasoningBudget {
    intra_threads: Option<usize>,
    nice: Option<i32>,
}

/// A loaded profile.
#[derive(Debug, Clone)]
pub struct DeviceProfile {
    pub name: String,
    pub path: PathBuf,
    pub description: Option<String>,
    pub model: ModelConfig,
    pub reasoning: ReasoningConfig,
}

/// Where profiles are looked for: `firmware-config/devices/` under the
/// working directory, then beside the definition's folder (pipelines/../).
pub fn search_dirs(definition_dir: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("firmware-config/devices")];
    if let Some(dir) = definition_dir {
        dirs.push(dir.join("../firmware-config/devices"));
    }
    dirs
}

fn available(dirs: &[PathBuf]) -> Vec<String> {
    let mut names: Vec<String> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| {
            e.ok()?
                .path()
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Loads profile `name` from the first of `dirs` that has it.
pub fn load(name: &str, dirs: &[PathBuf], shown: &str) -> Result<DeviceProfile, DefinitionError> {
    let invalid = |issue: ConfigIssue| DefinitionError::Invalid {
        path: shown.to_owned(),
        issue,
    };
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(invalid(ConfigIssue::new(
            "device",
            format!("\"{name}\" is not a profile name"),
            "name a file of firmware-config/devices/ without .toml, e.g. device = \"cpu-2core\"",
        )));
    }
    let Some(path) = dirs
        .iter()
        .map(|d| d.join(format!("{name}.toml")))
        .find(|p| p.is_file())
    else {
        let known = available(dirs);
        return Err(invalid(ConfigIssue::new(
            "device",
            format!(
                "no profile \"{name}\" in {}",
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
            if known.is_empty() {
                "run from the repository root, or remove the key".to_owned()
            } else {
                format!("use one of {}", known.join(", "))
            },
        )));
    };
    let file_shown = path.display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|e| DefinitionError::Read {
        path: file_shown.clone(),
        cause: e.to_string(),
    })?;
    let file: ProfileFile = toml::from_str(&text).map_err(|e| DefinitionError::Parse {
        path: file_shown.clone(),
        message: e.to_string().trim_end().to_owned(),
    })?;
    if file.model.dir.is_some() {
        return Err(DefinitionError::Invalid {
            path: file_shown,
            issue: ConfigIssue::new(
                "model.dir",
                "is set in a device profile",
                "remove it: the pipeline definition chooses the model",
            ),
        });
    }
    let reasoning = ReasoningConfig {
        intra_threads: file.reasoning.intra_threads,
        nice: file.reasoning.nice,
        ..ReasoningConfig::default()
    };
    Ok(DeviceProfile {
        name: name.to_owned(),
        path,
        description: file.description,
        model: file.model,
        reasoning,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_dirs() -> Vec<PathBuf> {
        vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../../firmware-config/devices")]
    }

    #[test]
    fn shipped_profiles_load_and_validate() {
        let dirs = repo_dirs();
        let names = available(&dirs);
        assert!(
            names.contains(&"cpu-2core".to_owned()) && names.contains(&"jetson-orin".to_owned()),
            "{names:?}"
        );
        for name in names {
            let p = load(&name, &dirs, "p.toml").unwrap_or_else(|e| panic!("{e}"));
            let merged = ModelConfig {
                dir: Some("m".into()),
                ..ModelConfig::default()
            }
            .or(&p.model);
            merged.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
            ReasoningConfig::default()
                .or(&p.reasoning)
                .validate(true)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn unknown_profile_names_the_key_and_the_choices() {
        let err = load("pdp-11", &repo_dirs(), "p.toml").expect_err("unknown");
        let text = err.to_string();
        assert_eq!(err.key(), Some("device"));
        assert!(text.contains("cpu-2core"), "{text}");
    }
}
