//! Pipeline definitions: the TOML files in pipelines/. Each section's
//! config type lives in the crate that uses it (`[source]` in
//! sonoflow-ingest, `[output]` and `[[sinks]]` in sonoflow-output,
//! `[perception]` in sonoflow-perception, `[overlay]`, `[reasoning]`,
//! `[load]` in theirs; `[model]` in this crate's [`crate::model_config`],
//! `[process]` and `[queues]` here); this file assembles them, checks what
//! spans sections, and adds the file's path to every error.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sonoflow_core::ConfigIssue;
use sonoflow_ingest::{SourceConfig, SourceSpec};
use sonoflow_output::config::OutputConfig;
use sonoflow_output::{SinkConfig, SinkSpec};
use sonoflow_overlay::{OverlayConfig, OverlayOptions};
use sonoflow_perception::{PerceptionConfig, PerceptionOptions};
use sonoflow_pipeline::{DropPolicy, LadderOptions, LoadConfig};
use sonoflow_reasoning::{HeadSpec, ReasoningConfig};
use sonoflow_server::{ServerConfig, ServerOptions};

use crate::device;
use crate::error::DefinitionError;
use crate::model_config::{ModelConfig, ModelSpec};

/// A pipeline definition file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefinitionFile {
    /// Shown in logs and the report; defaults to the file name.
    pub name: Option<String>,
    /// A device profile (firmware-config/devices/NAME.toml) giving the
    /// `[model]` defaults for this class of computer.
    pub device: Option<String>,
    /// Where frames come from.
    pub source: Option<SourceConfig>,
    /// The per-frame work.
    #[serde(default)]
    pub process: ProcessConfig,
    /// The hand-offs in front of the process and output stages.
    #[serde(default)]
    pub queues: QueuesConfig,
    /// Settings shared by all sinks.
    #[serde(default)]
    pub output: OutputConfig,
    /// Where processed frames go; at least one.
    #[serde(default)]
    pub sinks: Vec<SinkConfig>,
    /// The model the process stage runs (with process.kind = "model").
    pub model: Option<ModelConfig>,
    /// How model outputs become findings (contours, calipers, smoothing).
    #[serde(default)]
    pub perception: PerceptionConfig,
    /// What is drawn onto the outgoing frames.
    #[serde(default)]
    pub overlay: OverlayConfig,
    /// The asynchronous reasoning head (keyframes, reports, kernels).
    #[serde(default)]
    pub reasoning: ReasoningConfig,
    /// The degradation ladder: what is shed when the frame path falls behind.
    #[serde(default)]
    pub load: LoadConfig,
    /// The results server (off unless the section is present).
    pub server: Option<ServerConfig>,
}

/// `[process]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessConfig {
    /// "passthrough", or "model" (the default when `[model]` is present).
    pub kind: Option<ProcessKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessKind {
    #[default]
    Passthrough,
    /// Vision encoder + mask decoder on every frame (see `[model]`).
    Model,
}

/// `[queues]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueuesConfig {
    /// Ingest to process.
    pub process: Option<QueueConfig>,
    /// Process to output.
    pub output: Option<QueueConfig>,
}

/// Default depth of each hand-off: room for jitter, little latency.
pub const DEFAULT_QUEUE_DEPTH: usize = 2;
/// The deepest hand-off a definition may ask for.
const MAX_QUEUE_DEPTH: usize = 64;

/// One hand-off: `{ depth = 2, policy = "drop-oldest" }`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Frames it holds (default [`DEFAULT_QUEUE_DEPTH`]). Deeper absorbs
    /// jitter but adds latency when full.
    pub depth: Option<usize>,
    /// "drop-oldest" (live default: bounded latency) or "block" (file default: no loss).
    pub policy: Option<DropPolicy>,
}

/// A hand-off after validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSpec {
    pub depth: usize,
    pub policy: DropPolicy,
}

/// A validated definition, ready to run.
#[derive(Debug, Clone)]
pub struct PipelineDefinition {
    pub name: String,
    pub path: Option<PathBuf>,
    /// The device profile the `[model]` defaults came from.
    pub device: Option<String>,
    pub source: SourceSpec,
    pub process: ProcessKind,
    pub process_queue: QueueSpec,
    pub output_queue: QueueSpec,
    pub max_queued: u64,
    pub sinks: Vec<SinkSpec>,
    /// The model, when the process stage runs one.
    pub model: Option<ModelSpec>,
    /// Model outputs to findings, when on (`[perception] enabled`).
    pub perception: Option<PerceptionOptions>,
    /// The overlay, when it is on.
    pub overlay: Option<OverlayOptions>,
    /// The reasoning head, when it is on.
    pub reasoning: Option<HeadSpec>,
    /// The degradation ladder, when it is on.
    pub load: Option<LadderOptions>,
    /// The results server, when it is on.
    pub server: Option<ServerOptions>,
}

impl PipelineDefinition {
    /// Frames that can be in flight at once (each holds a pooled buffer and
    /// may hold findings): both hand-offs, one per stage, spare.
    pub fn frames_in_flight(&self) -> usize {
        self.process_queue.depth + self.output_queue.depth + 4
    }

    /// Reads and validates a definition file.
    pub fn load(path: &Path) -> Result<Self, DefinitionError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| DefinitionError::Read {
            path: shown.clone(),
            cause: e.to_string(),
        })?;
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        let mut def = Self::parse_at(
            &text,
            &shown,
            name.as_deref().unwrap_or("pipeline"),
            path.parent(),
        )?;
        def.path = Some(path.to_owned());
        Ok(def)
    }

    /// Validates definition text; `shown` names it in errors. A device
    /// profile is looked for under the working directory.
    pub fn parse(text: &str, shown: &str, default_name: &str) -> Result<Self, DefinitionError> {
        Self::parse_at(text, shown, default_name, None)
    }

    /// Validates definition text read from folder `dir` (device profiles are
    /// also looked for beside it, in dir/../firmware-config/devices).
    pub fn parse_at(
        text: &str,
        shown: &str,
        default_name: &str,
        dir: Option<&Path>,
    ) -> Result<Self, DefinitionError> {
        let file: DefinitionFile = toml::from_str(text).map_err(|e| DefinitionError::Parse {
            path: shown.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let profile = match &file.device {
            Some(name) => Some(device::load(name, &device::search_dirs(dir), shown)?),
            None => None,
        };
        let (defaults, reasoning) = profile.map(|p| (p.model, p.reasoning)).unwrap_or_default();
        file.validate(&defaults, &reasoning)
            .map_err(|issue| DefinitionError::Invalid {
                path: shown.to_owned(),
                issue,
            })
            .map(|mut def| {
                if def.name.is_empty() {
                    def.name = default_name.to_owned();
                }
                def
            })
    }
}

impl DefinitionFile {
    /// `defaults`, `reasoning`: the device profile's [model] and [reasoning] keys.
    fn validate(
        &self,
        defaults: &ModelConfig,
        reasoning: &ReasoningConfig,
    ) -> Result<PipelineDefinition, ConfigIssue> {
        let source = self
            .source
            .as_ref()
            .ok_or_else(|| {
                ConfigIssue::new(
                    "source",
                    "is missing",
                    "add a [source] section, e.g. kind = \"test\"",
                )
            })?
            .validate("source")?;
        // Live sources drop to stay current; files wait so nothing is lost.
        let default_policy = if source.live {
            DropPolicy::DropOldest
        } else {
            DropPolicy::Block
        };
        let queue = |name: &str, q: Option<QueueConfig>| -> Result<QueueSpec, ConfigIssue> {
            let q = q.unwrap_or_default();
            let depth = q.depth.unwrap_or(DEFAULT_QUEUE_DEPTH);
            if depth == 0 || depth > MAX_QUEUE_DEPTH {
                return Err(ConfigIssue::new(
                    format!("queues.{name}.depth"),
                    format!("is {depth}"),
                    format!(
                        "use a depth from 1 to {MAX_QUEUE_DEPTH} ({DEFAULT_QUEUE_DEPTH} keeps latency low)"
                    ),
                ));
            }
            Ok(QueueSpec {
                depth,
                policy: q.policy.unwrap_or(default_policy),
            })
        };
        if self.sinks.is_empty() {
            return Err(ConfigIssue::new(
                "sinks",
                "is empty",
                "add at least one [[sinks]] section, e.g. kind = \"mp4\" with path = \"out/run.mp4\", or kind = \"fake\"",
            ));
        }
        let sinks = self
            .sinks
            .iter()
            .enumerate()
            .map(|(i, s)| s.validate(&format!("sinks[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let process = match (self.process.kind, &self.model) {
            (Some(kind), _) => kind,
            (None, Some(_)) => ProcessKind::Model,
            (None, None) => ProcessKind::Passthrough,
        };
        let model = match (process, &self.model) {
            (ProcessKind::Model, Some(m)) => {
                let merged = m.or(defaults);
                let mut spec = merged.validate()?;
                // Tested after merging: a device profile's stall_after_ms holds for files too.
                if !source.live && merged.stall_after_ms.is_none() {
                    // Files wait for the model: nothing is lost.
                    spec.stall_after = None;
                }
                Some(spec)
            }
            (ProcessKind::Model, None) => {
                return Err(ConfigIssue::new(
                    "model",
                    "is missing while process.kind = \"model\"",
                    "add a [model] section with dir = \"...\"",
                ))
            }
            (ProcessKind::Passthrough, Some(_)) => {
                return Err(ConfigIssue::new(
                    "process.kind",
                    "is \"passthrough\" but a [model] section is present",
                    "set kind = \"model\", or remove [model]",
                ))
            }
            (ProcessKind::Passthrough, None) => None,
        };
        let max_queued = self.output.validate()?;
        let perception = self.perception.validate()?;
        // The overlay draws findings and the head grounds its report in them.
        let findings = model.is_some() && perception.is_some();
        if model.is_some() && perception.is_none() && self.reasoning.enabled == Some(true) {
            return Err(ConfigIssue::new(
                "reasoning.enabled",
                "is true but [perception] is off (enabled = false)",
                "the head writes its report from the frame's findings and calipers: turn [perception] back on, or set reasoning.enabled = false",
            ));
        }
        let load = self.load.validate(source.live && model.is_some())?;
        Ok(PipelineDefinition {
            name: self.name.clone().unwrap_or_default(),
            path: None,
            device: self.device.clone(),
            source,
            process,
            process_queue: queue("process", self.queues.process)?,
            output_queue: queue("output", self.queues.output)?,
            max_queued,
            sinks,
            perception,
            overlay: self.overlay.validate(findings)?,
            reasoning: self.reasoning.or(reasoning).validate(findings)?,
            load,
            model,
            server: match &self.server {
                Some(s) => s.validate("server")?,
                None => None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[source]\nkind = \"test\"\n[[sinks]]\nkind = \"fake\"\n";

    fn invalid_key(text: &str) -> String {
        match PipelineDefinition::parse(text, "p.toml", "p") {
            Err(DefinitionError::Invalid { issue, .. }) => issue.key,
            other => panic!("expected an invalid key, got {other:?}"),
        }
    }

    #[test]
    fn minimal_definition_gets_live_defaults() {
        let def = PipelineDefinition::parse(MINIMAL, "p.toml", "p").expect("valid");
        assert_eq!(def.name, "p");
        assert_eq!(
            def.process_queue,
            QueueSpec {
                depth: DEFAULT_QUEUE_DEPTH,
                policy: DropPolicy::DropOldest
            }
        );
    }

    #[test]
    fn file_source_defaults_to_blocking_queues() {
        let text = "[source]\nkind = \"file\"\npath = \"a.mp4\"\n[[sinks]]\nkind = \"fake\"\n";
        let def = PipelineDefinition::parse(text, "p.toml", "p").expect("valid");
        assert_eq!(def.output_queue.policy, DropPolicy::Block);
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(invalid_key("[[sinks]]\nkind = \"fake\"\n"), "source");
        assert_eq!(invalid_key("[source]\nkind = \"test\"\n"), "sinks");
        assert_eq!(
            invalid_key(&format!("{MINIMAL}[queues.process]\ndepth = 0\n")),
            "queues.process.depth"
        );
        assert_eq!(
            invalid_key("[source]\nkind = \"test\"\n[[sinks]]\nkind = \"mp4\"\n"),
            "sinks[0].path"
        );
    }

    #[test]
    fn the_overlay_is_on_with_a_model_and_off_without() {
        let def = PipelineDefinition::parse(MINIMAL, "p.toml", "p").expect("valid");
        assert!(def.overlay.is_none());
        let def = PipelineDefinition::parse(
            &format!("{MINIMAL}[overlay]\nenabled = true\nfont_px = 14\n"),
            "p.toml",
            "p",
        )
        .expect("valid");
        assert_eq!(def.overlay.map(|o| o.font_px), Some(Some(14.0)));
        assert_eq!(
            invalid_key(&format!("{MINIMAL}[overlay]\nmask_opacity = 2.0\n")),
            "overlay.mask_opacity"
        );
        assert_eq!(
            invalid_key(&format!("{MINIMAL}[perception]\nsmoothing_alpha = 0\n")),
            "perception.smoothing_alpha"
        );
    }

    #[test]
    fn perception_off_leaves_raw_outputs_without_overlay_or_head() {
        let with_model = format!("{MINIMAL}[model]\ndir = \"m\"\n");
        let def = PipelineDefinition::parse(&with_model, "p.toml", "p").expect("valid");
        assert!(def.perception.is_some() && def.overlay.is_some() && def.reasoning.is_some());
        let raw = format!("{with_model}[perception]\nenabled = false\n");
        let def = PipelineDefinition::parse(&raw, "p.toml", "p").expect("valid");
        assert!(def.model.is_some());
        assert!(def.perception.is_none() && def.overlay.is_none() && def.reasoning.is_none());
        assert_eq!(
            invalid_key(&format!("{raw}[reasoning]\nenabled = true\n")),
            "reasoning.enabled"
        );
    }

    #[test]
    fn a_device_profiles_stall_after_holds_for_file_sources() {
        let root = tempfile::tempdir().expect("temp dir");
        let devices = root.path().join("firmware-config/devices");
        std::fs::create_dir_all(&devices).expect("devices dir");
        std::fs::write(
            devices.join("slow-box.toml"),
            "[model]\nstall_after_ms = 900\n",
        )
        .expect("profile");
        let pipelines = root.path().join("pipelines");
        std::fs::create_dir_all(&pipelines).expect("pipelines dir");
        let text = "device = \"slow-box\"\n[source]\nkind = \"file\"\npath = \"a.mp4\"\n[[sinks]]\nkind = \"fake\"\n[model]\ndir = \"m\"\n";
        let def =
            PipelineDefinition::parse_at(text, "p.toml", "p", Some(&pipelines)).expect("valid");
        let stall = def.model.and_then(|m| m.stall_after);
        assert_eq!(stall, Some(std::time::Duration::from_millis(900)));
        // Without the profile's key, a file source waits for the model.
        let own = text.replace("device = \"slow-box\"\n", "");
        let def =
            PipelineDefinition::parse_at(&own, "p.toml", "p", Some(&pipelines)).expect("valid");
        assert_eq!(def.model.and_then(|m| m.stall_after), None);
    }

    #[test]
    fn unknown_key_is_a_parse_error_with_the_file_and_line() {
        let err = PipelineDefinition::parse(
            &format!("{MINIMAL}[queues.process]\ndepht = 3\n"),
            "p.toml",
            "p",
        )
        .expect_err("unknown key");
        let text = err.to_string();
        assert!(text.starts_with("p.toml: "), "{text}");
        assert!(text.contains("unknown field `depht`"), "{text}");
        assert!(text.contains("line 6"), "{text}");
    }
}
