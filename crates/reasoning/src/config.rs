//! `[reasoning]` in a pipeline definition (and the thread budget in a
//! device profile's `[reasoning]`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use sonoflow_core::ConfigIssue;

use crate::keyframes::KeyframeOptions;
use crate::sampling::Sampling;

/// `[reasoning]` as written. Every key is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasoningConfig {
    /// Run the head (default: when the model has reasoning graphs).
    pub enabled: Option<bool>,
    /// "local" (default): the head's graphs run on this machine. "remote":
    /// on a KServe v2 server (`[reasoning.remote]`; docs/scale-out.md).
    pub backend: Option<String>,
    pub remote: Option<RemoteConfig>,
    /// The model directory of the language model (default: model.dir).
    pub model: Option<PathBuf>,
    /// The task prompt (default: the model's own, `Manifest::default_prompt`,
    /// for umind-nano "[DIAG]", the diagnostic report).
    pub prompt: Option<String>,
    /// Tokens after which generation stops (default 96); it stops earlier
    /// where the model's position table (`graphs.decoder.max_positions`)
    /// is full. Either way the report is marked `truncated`.
    pub max_new_tokens: Option<usize>,
    /// 0 (default): greedy. Above 0: sampling at this temperature.
    pub temperature: Option<f32>,
    /// The nucleus of sampling (default 0.9).
    pub top_p: Option<f32>,
    /// The sampling seed (default 0), mixed with each keyframe's id.
    pub seed: Option<u64>,
    /// ONNX Runtime threads of the head's sessions (default 1).
    pub intra_threads: Option<usize>,
    /// Scheduling niceness of the head's thread, 0 to 19 (default 10): the
    /// frame path wins when both want a core.
    pub nice: Option<i32>,
    /// A generation running longer is stopped (default 5000 ms).
    pub timeout_ms: Option<u64>,
    /// A running generation whose keyframe is older than this is cancelled
    /// when a newer keyframe waits (default 2000 ms).
    pub stale_after_ms: Option<u64>,
    /// Keyframes at most this often (default 1000 ms) ...
    pub min_interval_ms: Option<u64>,
    /// ... and at least this often (default 6000 ms).
    pub max_interval_ms: Option<u64>,
    /// Image-token change frame to frame below which the probe is still (default 0.08).
    pub still_below: Option<f32>,
    /// Still frames in a row, finding stable, that make a keyframe (default 8).
    pub still_frames: Option<usize>,
    /// Mask IoU frame to frame for a stable finding (default 0.8).
    pub stable_iou: Option<f32>,
    /// Image-token change from the last keyframe that makes a new scene (default 0.45).
    pub scene_change_above: Option<f32>,
}

/// A validated `[reasoning]`.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadSpec {
    /// None: model.dir.
    pub model: Option<PathBuf>,
    /// Whether the definition asked for the head explicitly (then a model
    /// without reasoning graphs is an error shown as "unavailable").
    pub required: bool,
    /// None: the model's default prompt (its diagnosis task).
    pub prompt: Option<String>,
    pub max_new_tokens: usize,
    pub sampling: Sampling,
    pub intra_threads: usize,
    pub nice: i32,
    pub timeout: Duration,
    pub stale_after: Duration,
    pub keyframes: KeyframeOptions,
    /// `backend = "remote"`: the server and how to use it.
    pub remote: Option<RemoteSpec>,
}

/// `[reasoning.remote]` as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    /// `http://host:port` or `https://host:port` (the server's gRPC port).
    pub url: Option<String>,
    /// The served model (default "reasoning_head", as serve/ names it).
    pub model: Option<String>,
    /// A bearer token (default: $SONOFLOW_REMOTE_TOKEN when set).
    pub token: Option<String>,
    /// With https: a PEM CA file to trust instead of the system's roots.
    pub ca: Option<PathBuf>,
    /// Each request's deadline (default 3000 ms).
    pub deadline_ms: Option<u64>,
    /// After the server failed, the first pause before trying it again
    /// (default 1000 ms, doubling to 8 s).
    pub retry_ms: Option<u64>,
    /// Meanwhile, write the report with the local graphs (default true);
    /// false: the overlay says "interpretation unavailable (server)".
    pub fallback: Option<bool>,
}

/// A validated `[reasoning.remote]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteSpec {
    pub options: sonoflow_remote::RemoteOptions,
    pub model: String,
    pub retry: Duration,
    pub fallback: bool,
}

impl RemoteConfig {
    fn validate(&self, sampling: Sampling) -> Result<RemoteSpec, ConfigIssue> {
        let url = self.url.clone().ok_or_else(|| {
            ConfigIssue::new(
                "reasoning.remote.url",
                "is missing (backend = \"remote\")",
                "give the server's gRPC address, e.g. url = \"http://gpu-server:8081\"",
            )
        })?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigIssue::new(
                "reasoning.remote.url",
                format!("is \"{url}\""),
                "write http://HOST:PORT, or https://HOST:PORT for TLS",
            ));
        }
        if sampling != Sampling::Greedy {
            return Err(ConfigIssue::new(
                "reasoning.temperature",
                "is above 0 with backend = \"remote\"",
                "the served head decodes greedily: drop temperature (or set it to 0)",
            ));
        }
        for (key, v) in [
            ("reasoning.remote.deadline_ms", self.deadline_ms),
            ("reasoning.remote.retry_ms", self.retry_ms),
        ] {
            if v == Some(0) {
                return Err(ConfigIssue::new(key, "is 0", "use at least 1 ms"));
            }
        }
        let token = self.token.clone().or_else(|| {
            std::env::var("SONOFLOW_REMOTE_TOKEN")
                .ok()
                .filter(|t| !t.is_empty())
        });
        Ok(RemoteSpec {
            options: sonoflow_remote::RemoteOptions {
                url,
                token,
                ca: self.ca.clone(),
                deadline: Duration::from_millis(self.deadline_ms.unwrap_or(3000)),
                connect_timeout: Duration::from_secs(2),
            },
            model: self
                .model
                .clone()
                .unwrap_or_else(|| "reasoning_head".into()),
            retry: Duration::from_millis(self.retry_ms.unwrap_or(1000)),
            fallback: self.fallback.unwrap_or(true),
        })
    }
}

impl ReasoningConfig {
    /// This config with every unset key taken from `defaults` (a device profile).
    pub fn or(&self, defaults: &ReasoningConfig) -> ReasoningConfig {
        macro_rules! pick {
            ($($f:ident),*) => { ReasoningConfig { $($f: self.$f.clone().or_else(|| defaults.$f.clone())),* } };
        }
        pick!(
            enabled,
            backend,
            remote,
            model,
            prompt,
            max_new_tokens,
            temperature,
            top_p,
            seed,
            intra_threads,
            nice,
            timeout_ms,
            stale_after_ms,
            min_interval_ms,
            max_interval_ms,
            still_below,
            still_frames,
            stable_iou,
            scene_change_above
        )
    }

    /// The head's spec, or None when it is off. `model`: whether the
    /// process stage runs a model (the head needs one).
    pub fn validate(&self, model: bool) -> Result<Option<HeadSpec>, ConfigIssue> {
        let d = KeyframeOptions::default();
        let ms = |v: Option<u64>, default: Duration| v.map_or(default, Duration::from_millis);
        let keyframes = KeyframeOptions {
            min_interval: ms(self.min_interval_ms, d.min_interval),
            max_interval: ms(self.max_interval_ms, d.max_interval),
            still_below: self.still_below.unwrap_or(d.still_below),
            still_frames: self.still_frames.unwrap_or(d.still_frames),
            stable_iou: self.stable_iou.unwrap_or(d.stable_iou),
            scene_change_above: self.scene_change_above.unwrap_or(d.scene_change_above),
        };
        if keyframes.max_interval < keyframes.min_interval {
            return Err(ConfigIssue::new(
                "reasoning.max_interval_ms",
                format!(
                    "({} ms) is shorter than min_interval_ms ({} ms)",
                    keyframes.max_interval.as_millis(),
                    keyframes.min_interval.as_millis()
                ),
                "make max_interval_ms at least min_interval_ms",
            ));
        }
        if !(0.0..=1.0).contains(&keyframes.stable_iou) {
            return Err(ConfigIssue::new(
                "reasoning.stable_iou",
                format!("is {}", keyframes.stable_iou),
                "use an IoU from 0 to 1",
            ));
        }
        for (key, v) in [
            ("reasoning.still_below", keyframes.still_below),
            ("reasoning.scene_change_above", keyframes.scene_change_above),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(ConfigIssue::new(
                    key,
                    format!("is {v}"),
                    "use a relative change above 0, e.g. 0.08 (still) or 0.45 (new scene)",
                ));
            }
        }
        let max_new_tokens = self.max_new_tokens.unwrap_or(96);
        if !(1..=1024).contains(&max_new_tokens) {
            return Err(ConfigIssue::new(
                "reasoning.max_new_tokens",
                format!("is {max_new_tokens}"),
                "use 1 to 1024 tokens",
            ));
        }
        let temperature = self.temperature.unwrap_or(0.0);
        let top_p = self.top_p.unwrap_or(0.9);
        if !(0.0..=5.0).contains(&temperature) {
            return Err(ConfigIssue::new(
                "reasoning.temperature",
                format!("is {temperature}"),
                "use 0 (greedy) or a temperature up to 5",
            ));
        }
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(ConfigIssue::new(
                "reasoning.top_p",
                format!("is {top_p}"),
                "use a probability mass above 0 and at most 1",
            ));
        }
        let sampling = if temperature > 0.0 {
            Sampling::Nucleus {
                temperature,
                top_p,
                seed: self.seed.unwrap_or(0),
            }
        } else {
            Sampling::Greedy
        };
        let intra_threads = self.intra_threads.unwrap_or(1);
        if !(1..=64).contains(&intra_threads) {
            return Err(ConfigIssue::new(
                "reasoning.intra_threads",
                format!("is {intra_threads}"),
                "use 1 to 64 threads",
            ));
        }
        let nice = self.nice.unwrap_or(10);
        if !(0..=19).contains(&nice) {
            return Err(ConfigIssue::new(
                "reasoning.nice",
                format!("is {nice}"),
                "use 0 (same priority as the frame path) to 19 (lowest)",
            ));
        }
        let prompt = self.prompt.clone();
        if prompt.as_deref().is_some_and(|p| p.trim().is_empty()) {
            return Err(ConfigIssue::new(
                "reasoning.prompt",
                "is empty",
                "write one of the model's task prompts (its manifest's `prompts`), or drop the key for the model's own default (its diagnosis task)",
            ));
        }
        for (key, v) in [
            ("reasoning.timeout_ms", self.timeout_ms),
            ("reasoning.stale_after_ms", self.stale_after_ms),
        ] {
            if v == Some(0) {
                return Err(ConfigIssue::new(key, "is 0", "use at least 1 ms"));
            }
        }
        if self.enabled == Some(true) && !model {
            return Err(ConfigIssue::new(
                "reasoning.enabled",
                "is true but the process stage runs no model",
                "set process.kind = \"model\" with a [model], or drop [reasoning]",
            ));
        }
        let remote = match self.backend.as_deref() {
            None | Some("local") => None,
            Some("remote") => Some(self.remote.clone().unwrap_or_default().validate(sampling)?),
            Some(other) => {
                return Err(ConfigIssue::new(
                    "reasoning.backend",
                    format!("is \"{other}\""),
                    "use \"local\" (the head's graphs here) or \"remote\" (a KServe v2 server, [reasoning.remote])",
                ))
            }
        };
        let spec = HeadSpec {
            remote,
            model: self.model.clone(),
            required: self.enabled == Some(true),
            prompt,
            max_new_tokens,
            sampling,
            intra_threads,
            nice,
            timeout: ms(self.timeout_ms, Duration::from_millis(5000)),
            stale_after: ms(self.stale_after_ms, Duration::from_millis(2000)),
            keyframes,
        };
        Ok((self.enabled.unwrap_or(true) && model).then_some(spec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_greedy_on_one_nice_thread_and_follow_the_model() {
        let spec = ReasoningConfig::default()
            .validate(true)
            .expect("valid")
            .expect("on");
        assert_eq!(spec.sampling, Sampling::Greedy);
        assert_eq!(
            (spec.intra_threads, spec.nice, spec.prompt.as_deref()),
            (1, 10, None)
        );
        assert!(!spec.required);
        assert!(ReasoningConfig::default()
            .validate(false)
            .expect("valid")
            .is_none());
        let sampled = ReasoningConfig {
            temperature: Some(0.7),
            seed: Some(3),
            ..Default::default()
        }
        .validate(true)
        .expect("valid")
        .expect("on");
        assert_eq!(
            sampled.sampling,
            Sampling::Nucleus {
                temperature: 0.7,
                top_p: 0.9,
                seed: 3
            }
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let key = |c: ReasoningConfig, model: bool| c.validate(model).expect_err("invalid").key;
        assert_eq!(
            key(
                ReasoningConfig {
                    min_interval_ms: Some(5000),
                    max_interval_ms: Some(1000),
                    ..Default::default()
                },
                true
            ),
            "reasoning.max_interval_ms"
        );
        assert_eq!(
            key(
                ReasoningConfig {
                    top_p: Some(0.0),
                    ..Default::default()
                },
                true
            ),
            "reasoning.top_p"
        );
        assert_eq!(
            key(
                ReasoningConfig {
                    nice: Some(-5),
                    ..Default::default()
                },
                true
            ),
            "reasoning.nice"
        );
        assert_eq!(
            key(
                ReasoningConfig {
                    prompt: Some(" ".into()),
                    ..Default::default()
                },
                true
            ),
            "reasoning.prompt"
        );
        assert_eq!(
            key(
                ReasoningConfig {
                    enabled: Some(true),
                    ..Default::default()
                },
                false
            ),
            "reasoning.enabled"
        );
    }

    #[test]
    fn a_profile_fills_only_what_the_pipeline_left_out() {
        let profile = ReasoningConfig {
            intra_threads: Some(2),
            nice: Some(5),
            ..Default::default()
        };
        let merged = ReasoningConfig {
            nice: Some(12),
            ..Default::default()
        }
        .or(&profile);
        assert_eq!((merged.intra_threads, merged.nice), (Some(2), Some(12)));
    }
}
