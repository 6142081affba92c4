//! The `[[sinks]]` sections of a pipeline definition.

use std::path::PathBuf;

use serde::Deserialize;
use sonoflow_core::{launch_quoted, reject_foreign_keys, ConfigIssue};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// H.264 in an MP4 file.
    Mp4,
    /// H.264 in a Matroska file.
    Mkv,
    /// A window on the local display (autovideosink).
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
}

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
}

/// A validated sink.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkSpec {
    pub kind: SinkKind,
    pub path: Option<PathBuf>,
    /// The GStreamer branch after the tee, starting with its queue.
    pub branch: String,
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
        let applies: [(&str, bool, &[SinkKind]); 4] = [
            ("path", self.path.is_some(), &[SinkKind::Mp4, SinkKind::Mkv]),
            ("host", self.host.is_some(), &[SinkKind::Rtp]),
            ("port", self.port.is_some(), &[SinkKind::Rtp]),
            (
                "bitrate_kbps",
                self.bitrate_kbps.is_some(),
                &[SinkKind::Mp4, SinkKind::Mkv, SinkKind::Rtp],
            ),
        ];
        reject_foreign_keys(prefix, kind, SinkKind::name, &applies)?;
        let bitrate = self.bitrate_kbps.unwrap_or(4000);
        if bitrate == 0 {
            return Err(ConfigIssue::new(
                key("bitrate_kbps"),
                "is 0",
                "use a positive bit rate such as 4000",
            ));
        }
        let h264 = format!(
            "videoconvert ! video/x-raw,format=I420 ! x264enc speed-preset=ultrafast tune=zerolatency bitrate={bitrate} key-int-max=60"
        );
        let branch = match kind {
            SinkKind::Mp4 | SinkKind::Mkv => {
                let path = self.path.as_ref().ok_or_else(|| {
                    ConfigIssue::new(key("path"), format!("is required for kind \"{}\"", kind.name()), "add path = \"out/scan.mp4\"")
                })?;
                let mux = if kind == SinkKind::Mp4 { "mp4mux" } else { "matroskamux" };
                let location = launch_quoted(&key("path"), &path.to_string_lossy())?;
                // Files keep every frame: a plain queue, no leaking.
                format!("queue ! {h264} ! h264parse ! {mux} ! filesink location={location}")
            }
            SinkKind::Display => "queue leaky=downstream max-size-buffers=4 ! videoconvert ! autovideosink sync=false".into(),
            SinkKind::Rtp => {
                let port = self.port.ok_or_else(|| ConfigIssue::new(key("port"), "is required for kind \"rtp\"", "add port = 5004"))?;
                let host = launch_quoted(&key("host"), self.host.as_deref().unwrap_or("127.0.0.1"))?;
                format!(
                    "queue leaky=downstream max-size-buffers=4 ! {h264} ! rtph264pay config-interval=1 pt=96 ! udpsink host={host} port={port} sync=false async=false"
                )
            }
            SinkKind::Fake => "queue leaky=downstream max-size-buffers=4 ! fakesink sync=false async=false".into(),
        };
        Ok(SinkSpec {
            kind,
            path: self.path.clone(),
            branch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(text: &str) -> SinkConfig {
        toml::from_str(text).expect("test TOML parses")
    }

    #[test]
    fn mp4_needs_a_path() {
        let err = sink("kind = \"mp4\"")
            .validate("sinks[0]")
            .expect_err("no path");
        assert_eq!(err.key, "sinks[0].path");
        let ok = sink("kind = \"mp4\"\npath = \"out/a.mp4\"")
            .validate("sinks[0]")
            .expect("valid");
        assert!(
            ok.branch
                .ends_with("mp4mux ! filesink location=\"out/a.mp4\""),
            "{}",
            ok.branch
        );
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
}
