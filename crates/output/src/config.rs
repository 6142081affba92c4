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
    /// Stores keyframes with finished reports as DICOM files in a folder
    /// (Ultrasound Image + TID 1500 SR; docs/dicom.md). Not a video branch:
    /// the run feeds it.
    Dicom,
    /// The same objects sent to a PACS by C-STORE, through a spool folder
    /// that keeps them until the PACS has them.
    Pacs,
}

impl SinkKind {
    pub fn name(self) -> &'static str {
        match self {
            SinkKind::Mp4 => "mp4",
            SinkKind::Mkv => "mkv",
            SinkKind::Display => "display",
            SinkKind::Rtp => "rtp",
            SinkKind::Fake => "fake",
            SinkKind::Dicom => "dicom",
            SinkKind::Pacs => "pacs",
        }
    }

    /// Whether frames go to it as video (a GStreamer branch of the output).
    pub fn is_video(self) -> bool {
        !self.is_dicom()
    }

    /// Whether it stores DICOM objects (a folder, or a PACS through a spool).
    pub fn is_dicom(self) -> bool {
        matches!(self, SinkKind::Dicom | SinkKind::Pacs)
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
    /// mp4/mkv: the file to write (parent directories are created);
    /// dicom: the folder the DICOM files go to; pacs: the spool folder.
    pub path: Option<PathBuf>,
    /// rtp, pacs: destination host (default 127.0.0.1).
    pub host: Option<String>,
    /// rtp, pacs: destination port (pacs: the PACS's DICOM port).
    pub port: Option<u16>,
    /// pacs: the PACS's AE title (default ANY-SCP) and ours (default SONOFLOW).
    pub called_ae: Option<String>,
    pub calling_ae: Option<String>,
    /// dicom, pacs: which keyframes are stored: "keyframes" (each whose
    /// report is done, the default) or "requests" (only those someone asked
    /// for: a store or analyse-now request, a prompt).
    pub store: Option<String>,
    /// mp4/mkv/rtp: H.264 bit rate in kbit/s (default 4000). Higher is sharper and bigger.
    pub bitrate_kbps: Option<u32>,
    /// mp4: length of each fragment in milliseconds (default 1000). A
    /// fragmented file killed mid-run (SIGKILL, power loss, full disk) plays
    /// up to its last complete fragment; 0 writes a classic MP4 whose index
    /// comes at the end, which is unplayable unless the run finishes.
    pub fragment_ms: Option<u32>,
    /// dicom: the root of the UIDs it makes (your organisation's registered
    /// root); default 2.25 (UUID-derived).
    pub uid_root: Option<String>,
    /// dicom: the patient, when the definition knows it (never invented).
    pub patient_name: Option<String>,
    pub patient_id: Option<String>,
    /// dicom: the patient attributes are real and the objects are for
    /// clinical use (default false: anonymous, not for clinical use).
    pub clinical: Option<bool>,
}

/// A `dicom` or `pacs` sink's own settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DicomSinkSpec {
    pub uid_root: Option<String>,
    pub patient_name: String,
    pub patient_id: String,
    pub clinical: bool,
    /// pacs: its AE title and ours.
    pub called_ae: String,
    pub calling_ae: String,
    /// Store only the keyframes someone asked for (`store = "requests"`).
    pub requests_only: bool,
}

/// Default AE titles of a `pacs` sink.
pub const DEFAULT_CALLED_AE: &str = "ANY-SCP";
pub const DEFAULT_CALLING_AE: &str = "SONOFLOW";

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
    /// dicom: its settings.
    pub dicom: Option<DicomSinkSpec>,
}

impl SinkSpec {
    /// A fakesink, named `key`.
    pub fn fake(key: &str) -> Self {
        Self {
            kind: SinkKind::Fake,
            key: key.to_owned(),
            path: None,
            host: None,
            port: None,
            bitrate_kbps: DEFAULT_BITRATE_KBPS,
            fragment_ms: 0,
            dicom: None,
        }
    }

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
                "set kind = \"mp4\", \"mkv\", \"display\", \"rtp\", \"fake\", \"dicom\" or \"pacs\"",
            )
        })?;
        const DICOM: &[SinkKind] = &[SinkKind::Dicom, SinkKind::Pacs];
        let applies: [(&str, bool, &[SinkKind]); 12] = [
            (
                "path",
                self.path.is_some(),
                &[
                    SinkKind::Mp4,
                    SinkKind::Mkv,
                    SinkKind::Dicom,
                    SinkKind::Pacs,
                ],
            ),
            (
                "host",
                self.host.is_some(),
                &[SinkKind::Rtp, SinkKind::Pacs],
            ),
            (
                "port",
                self.port.is_some(),
                &[SinkKind::Rtp, SinkKind::Pacs],
            ),
            ("called_ae", self.called_ae.is_some(), &[SinkKind::Pacs]),
            ("store", self.store.is_some(), DICOM),
            ("calling_ae", self.calling_ae.is_some(), &[SinkKind::Pacs]),
            (
                "bitrate_kbps",
                self.bitrate_kbps.is_some(),
                &[SinkKind::Mp4, SinkKind::Mkv, SinkKind::Rtp],
            ),
            ("fragment_ms", self.fragment_ms.is_some(), &[SinkKind::Mp4]),
            ("uid_root", self.uid_root.is_some(), DICOM),
            ("patient_name", self.patient_name.is_some(), DICOM),
            ("patient_id", self.patient_id.is_some(), DICOM),
            ("clinical", self.clinical.is_some(), DICOM),
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
        if kind.is_file() || kind.is_dicom() {
            let example = if kind == SinkKind::Dicom {
                "out/dicom".to_owned()
            } else if kind == SinkKind::Pacs {
                "out/pacs-spool".to_owned()
            } else {
                format!("out/scan.{}", kind.name())
            };
            match &self.path {
                None => {
                    return Err(ConfigIssue::new(
                        key("path"),
                        format!("is required for kind \"{}\"", kind.name()),
                        format!("add path = \"{example}\""),
                    ))
                }
                Some(path) if path.as_os_str().is_empty() => {
                    return Err(ConfigIssue::new(
                        key("path"),
                        "is empty",
                        format!("give a path such as \"{example}\""),
                    ))
                }
                Some(_) => {}
            }
        }
        if matches!(kind, SinkKind::Rtp | SinkKind::Pacs) {
            if self.port.is_none() {
                return Err(ConfigIssue::new(
                    key("port"),
                    format!("is required for kind \"{}\"", kind.name()),
                    if kind == SinkKind::Rtp {
                        "add port = 5004"
                    } else {
                        "add the PACS's DICOM port, e.g. port = 4242"
                    },
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
        let requests_only = match self.store.as_deref() {
            None | Some("keyframes") => false,
            Some("requests") => true,
            Some(other) => {
                return Err(ConfigIssue::new(
                    key("store"),
                    format!("is \"{other}\""),
                    "use \"keyframes\" (each keyframe whose report is done) or \"requests\" (only those asked for)",
                ))
            }
        };
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
            dicom: kind.is_dicom().then(|| DicomSinkSpec {
                uid_root: self.uid_root.clone(),
                patient_name: self.patient_name.clone().unwrap_or_default(),
                patient_id: self.patient_id.clone().unwrap_or_default(),
                clinical: self.clinical.unwrap_or(false),
                called_ae: self
                    .called_ae
                    .clone()
                    .unwrap_or_else(|| DEFAULT_CALLED_AE.into()),
                calling_ae: self
                    .calling_ae
                    .clone()
                    .unwrap_or_else(|| DEFAULT_CALLING_AE.into()),
                requests_only,
            }),
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
    fn a_dicom_sink_needs_a_folder_and_its_keys_are_its_own() {
        let err = sink("kind = \"dicom\"")
            .validate("sinks[1]")
            .expect_err("no folder");
        assert_eq!(err.key, "sinks[1].path");
        let ok = sink(
            "kind = \"dicom\"\npath = \"out/dicom\"\nuid_root = \"1.2.3\"\npatient_id = \"P1\"",
        )
        .validate("sinks[1]")
        .expect("valid");
        let d = ok.dicom.expect("dicom settings");
        assert_eq!(
            (d.uid_root.as_deref(), d.patient_id.as_str(), d.clinical),
            (Some("1.2.3"), "P1", false)
        );
        assert!(!ok.kind.is_video());
        let err = sink("kind = \"mp4\"\npath = \"a.mp4\"\nuid_root = \"1.2.3\"")
            .validate("sinks[0]")
            .expect_err("uid_root is the dicom sink's");
        assert_eq!(err.key, "sinks[0].uid_root");
    }

    #[test]
    fn a_pacs_sink_needs_a_spool_and_a_port_and_names_its_ae_titles() {
        let err = sink("kind = \"pacs\"\npath = \"out/spool\"")
            .validate("sinks[2]")
            .expect_err("no port");
        assert_eq!(err.key, "sinks[2].port");
        let ok =
            sink("kind = \"pacs\"\npath = \"out/spool\"\nport = 4242\ncalled_ae = \"ORTHANC\"")
                .validate("sinks[2]")
                .expect("valid");
        let d = ok.dicom.expect("dicom settings");
        assert_eq!(
            (d.called_ae.as_str(), d.calling_ae.as_str()),
            ("ORTHANC", DEFAULT_CALLING_AE)
        );
        assert!(ok.kind.is_dicom() && !ok.kind.is_video());
        let err = sink("kind = \"dicom\"\npath = \"out/d\"\ncalled_ae = \"X\"")
            .validate("sinks[1]")
            .expect_err("AE titles are the pacs sink's");
        assert_eq!(err.key, "sinks[1].called_ae");
        let err = sink("kind = \"dicom\"\npath = \"out/d\"\nstore = \"all\"")
            .validate("sinks[1]")
            .expect_err("an unknown policy");
        assert_eq!(err.key, "sinks[1].store");
        let ok = sink("kind = \"dicom\"\npath = \"out/d\"\nstore = \"requests\"")
            .validate("sinks[1]")
            .expect("valid");
        assert!(ok.dicom.is_some_and(|d| d.requests_only));
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
