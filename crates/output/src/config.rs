//! The `[output]` and `[[sinks]]` sections of a pipeline definition.
//!
//! A validated [`SinkSpec`] holds values, never GStreamer launch text: the
//! output builds each branch from elements and sets paths and hosts as
//! properties, so no value from the definition is parsed as pipeline syntax.

use std::path::PathBuf;

use serde::Deserialize;
use sonoflow_core::{reject_foreign_keys, ConfigIssue};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// H.264 in an MP4 file (fragmented by default, see `fragment_ms`).
    Mp4,
    /// H.264 in a Matroska file.
    Mkv,
    /// A window on the local display (X11 or Wayland).
    Display,
    /// RTP/H.264 over UDP (readable by a `udp` source or any RTP client).
    Rtp,
    /// Discards frames; for benchmarks.
    Fake,
}

impl SinkKind {
    pub fn name(self) -> &'static str {
        match self {
            SinkKind::Mp4 => "mp4",
            SinkKind::Mkv => "mkv",
            SinkKind::Display => "display",
            SinkKind::Rtp => "rtp",
            SinkKind::Fake => "fake",
        }
    }

    /// Whether the sink writes a file at `path`.
    pub fn is_file(self) -> bool {
        matches!(self, SinkKind::Mp4 | SinkKind::Mkv)
    }
}

/// Default H.264 bit rate in kbit/s.
pub const DEFAULT_BITRATE_KBPS: u32 = 4000;
/// Default MP4 fragment length: a crash loses at most about this much.
pub const DEFAULT_FRAGMENT_MS: u32 = 1000;

/// One `[[sinks]]` entry as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// mp4, mkv, display, rtp or fake.
    pub kind: Option<SinkKind>,
    /// mp4/mkv: the file to write (parent directories are created).
    pub path: Option<PathBuf>,
    /// rtp: destination host (default 127.0.0.1).
    pub host: Option<String>,
    /// rtp: destination port.
    pub port: Option<u16>,
    /// mp4/mkv/rtp: H.264 bit rate in kbit/s (default 4000). Higher is sharper and bigger.
    pub bitrate_kbps: Option<u32>,
    /// mp4: length of each fragment in milliseconds (default 1000). A
    /// fragmented file killed mid-run (SIGKILL, power loss, full disk) plays
    /// up to its last complete fragment; 0 writes a classic MP4 whose index
    /// comes at the end, which is unplayable unless the run finishes.
    pub fragment_ms: Option<u32>,
}

/// A validated sink.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkSpec {
    pub kind: SinkKind,
    /// The sink's key in the definition (e.g. `sinks[0]`), for errors.
    pub key: String,
    /// mp4/mkv: the file.
    pub path: Option<PathBuf>,
    /// rtp: destination host and port.
    pub host: Option<String>,
    pub port: Option<u16>,
    /// mp4/mkv/rtp: H.264 bit rate in kbit/s.
    pub bitrate_kbps: u32,
    /// mp4: fragment length in milliseconds; 0 is a classic (moov at the end) file.
    pub fragment_ms: u32,
}

impl SinkSpec {
    /// How errors name the sink: `sinks[0] (mp4 "out/run.mp4")`.
    pub fn describe(&self) -> String {
        match (&self.path, &self.host, self.port) {
            (Some(path), _, _) => format!("{} ({} {:?})", self.key, self.kind.name(), path),
            (None, host, Some(port)) => format!(
                "{} ({} to {}:{port})",
                self.key,
                self.kind.name(),
                host.as_deref().unwrap_or("127.0.0.1")
            ),
            _ => format!("{} ({})", self.key, self.kind.name()),
        }
    }
}

impl SinkConfig {
    /// Checks one sink; `prefix` is its key path (e.g. `sinks[0]`).
    pub fn validate(&self, prefix: &str) -> Result<SinkSpec, ConfigIssue> {
        let key = |k: &str| format!("{prefix}.{k}");
        let kind = self.kind.ok_or_else(|| {
            ConfigIssue::new(
                key("kind"),
                "is missing",
                "set kind = \"mp4\", \"mkv\", \"display\", \"rtp\" or \"fake\"",
            )
        })?;
        let applies: [(&str, bool, &[SinkKind]); 5] = [
            ("path", self.path.is_some(), &[SinkKind::Mp4, SinkKind::Mkv]),
            ("host", self.host.is_some(), &[SinkKind::Rtp]),
            ("port", self.port.is_some(), &[SinkKind::Rtp]),
            (
                "bitrate_kbps",
                self.bitrate_kbps.is_some(),
                &[SinkKind::Mp4, SinkKind::Mkv, SinkKind::Rtp],
            ),
            ("fragment_ms", self.fragment_ms.is_some(), &[SinkKind::Mp4]),
        ];
        reject_foreign_keys(prefix, kind, SinkKind::name, &applies)?;
        let bitrate_kbps = self.bitrate_kbps.unwrap_or(DEFAULT_BITRATE_KBPS);
        if bitrate_kbps == 0 {
            return Err(ConfigIssue::new(
                key("bitrate_kbps"),
                "is 0",
                "use a positive bit rate such as 4000",
            ));
        }
        if kind.is_file() {
            match &self.path {
                None => {
                    return Err(ConfigIssue::new(
                        key("path"),
                        format!("is required for kind \"{}\"", kind.name()),
                        format!("add path = \"out/scan.{}\"", kind.name()),
                    ))
                }
                Some(path) if path.as_os_str().is_empty() => {
                    return Err(ConfigIssue::new(
                        key("path"),
                        "is empty",
                        format!("give a file such as \"out/scan.{}\"", kind.name()),
                    ))
                }
                Some(_) => {}
            }
        }
        if kind == SinkKind::Rtp {
            if self.port.is_none() {
                return Err(ConfigIssue::new(
                    key("port"),
                    "is required for kind \"rtp\"",
                    "add port = 5004",
                ));
            }
            if self.host.as_deref().is_some_and(|h| h.trim().is_empty()) {
                return Err(ConfigIssue::new(
                    key("host"),
                    "is empty",
                    "give a host such as \"127.0.0.1\", or remove the key",
                ));
            }
        }
        let fragment_ms = self.fragment_ms.unwrap_or(DEFAULT_FRAGMENT_MS);
        if fragment_ms > 60_000 {
            return Err(ConfigIssue::new(
                key("fragment_ms"),
                format!("is {fragment_ms}: a crash would lose up to that much"),
                "use 0 (classic MP4) or up to 60000; 1000 keeps all but the last second",
            ));
        }
        Ok(SinkSpec {
            kind,
            key: prefix.to_owned(),
            path: self.path.clone(),
            host: self.host.clone(),
            port: self.port,
            bitrate_kbps,
            fragment_ms: if kind == SinkKind::Mp4 {
                fragment_ms
            } else {
                0
            },
        })
    }
}

/// Default `output.max_queued`: frames that may wait in the appsrc.
pub const DEFAULT_MAX_QUEUED: u64 = 4;

/// `[output]`: settings shared by all sinks.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Frames that may wait in the output's appsrc before new ones are
    /// dropped (default [`DEFAULT_MAX_QUEUED`]). More absorbs encoder
    /// hiccups; each adds a frame of latency when the queue is full.
    pub max_queued: Option<u64>,
}

impl OutputConfig {
    /// The appsrc's queue limit ([`crate::OutputOptions::max_queued`]).
    pub fn validate(&self) -> Result<u64, ConfigIssue> {
        let max_queued = self.max_queued.unwrap_or(DEFAULT_MAX_QUEUED);
        if max_queued == 0 {
            return Err(ConfigIssue::new(
                "output.max_queued",
                "is 0",
                format!("use at least 1 ({DEFAULT_MAX_QUEUED} is the default)"),
            ));
        }
        Ok(max_queued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(text: &str) -> SinkConfig {
        toml::from_str(text).expect("test TOML parses")
    }

    #[test]
    fn mp4_needs_a_path_and_is_fragmented_by_default() {
        let err = sink("kind = \"mp4\"")
            .validate("sinks[0]")
            .expect_err("no path");
        assert_eq!(err.key, "sinks[0].path");
        let ok = sink("kind = \"mp4\"\npath = \"out/a.mp4\"")
            .validate("sinks[0]")
            .expect("valid");
        assert_eq!(ok.path, Some(PathBuf::from("out/a.mp4")));
        assert_eq!(ok.fragment_ms, DEFAULT_FRAGMENT_MS);
        assert_eq!(ok.key, "sinks[0]");
        let classic = sink("kind = \"mp4\"\npath = \"a.mp4\"\nfragment_ms = 0")
            .validate("sinks[0]")
            .expect("valid");
        assert_eq!(classic.fragment_ms, 0);
    }

    #[test]
    fn fragment_ms_applies_to_mp4_only() {
        let err = sink("kind = \"mkv\"\npath = \"a.mkv\"\nfragment_ms = 500")
            .validate("sinks[2]")
            .expect_err("mkv has no fragments to set");
        assert_eq!(err.key, "sinks[2].fragment_ms");
        let err = sink("kind = \"mp4\"\npath = \"a.mp4\"\nfragment_ms = 3600000")
            .validate("sinks[0]")
            .expect_err("an hour");
        assert_eq!(err.key, "sinks[0].fragment_ms");
    }

    #[test]
    fn paths_with_quotes_or_backslashes_are_plain_values() {
        for path in [r"out\", r#"a" ! filesink location=/tmp/x"#] {
            let spec = SinkConfig {
                kind: Some(SinkKind::Mkv),
                path: Some(path.into()),
                ..SinkConfig::default()
            }
            .validate("sinks[0]")
            .expect("any file name is valid");
            assert_eq!(spec.path, Some(PathBuf::from(path)));
        }
    }

    #[test]
    fn rtp_keys_do_not_apply_to_files() {
        let err = sink("kind = \"mkv\"\npath = \"a.mkv\"\nport = 5000")
            .validate("sinks[1]")
            .expect_err("foreign key");
        assert_eq!(err.key, "sinks[1].port");
    }

    #[test]
    fn unknown_keys_are_refused_by_the_parser() {
        let err =
            toml::from_str::<SinkConfig>("kind = \"fake\"\npth = \"x\"").expect_err("unknown");
        assert!(err.to_string().contains("unknown field `pth`"), "{err}");
    }

    #[test]
    fn output_max_queued_defaults_once_and_rejects_zero() {
        assert_eq!(OutputConfig::default().validate(), Ok(DEFAULT_MAX_QUEUED));
        let zero = OutputConfig {
            max_queued: Some(0),
        };
        assert_eq!(
            zero.validate().expect_err("0 holds nothing").key,
            "output.max_queued"
        );
    }
}
