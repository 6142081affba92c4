//! The `[source]` section of a pipeline definition, and its validation into
//! a [`SourceSpec`] that knows how to build its GStreamer launch string.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use sonoflow_core::{launch_quoted, reject_foreign_keys, ConfigIssue, PixelFormat};
use sonoflow_phantom::{LesionKind, PhantomConfig, ProbeKind, SceneKind};

use crate::phantom_feed::PHANTOM_APPSRC;

/// The source kinds a definition may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// GStreamer's `videotestsrc`.
    Test,
    /// Any file GStreamer can decode.
    File,
    /// A V4L2 capture device (a cart's HDMI/SDI grabber).
    V4l2,
    /// An RTSP stream.
    Rtsp,
    /// RTP/H.264 over UDP (what sonoflow's own `rtp` sink sends).
    Udp,
    /// A raw GStreamer launch string, ending where sonoflow's appsink starts.
    Launch,
    /// The built-in B-mode phantom probe, with ground truth.
    Phantom,
}

impl SourceKind {
    fn name(self) -> &'static str {
        match self {
            SourceKind::Test => "test",
            SourceKind::File => "file",
            SourceKind::V4l2 => "v4l2",
            SourceKind::Rtsp => "rtsp",
            SourceKind::Udp => "udp",
            SourceKind::Launch => "launch",
            SourceKind::Phantom => "phantom",
        }
    }
}

/// `[source]` as written in the file. Which keys apply depends on `kind`;
/// [`SourceConfig::validate`] rejects keys that do not apply.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Which source: test, file, v4l2, rtsp, udp or launch.
    pub kind: Option<SourceKind>,
    /// Output width in pixels; frames are scaled to it. Unset: the source's own.
    pub width: Option<u32>,
    /// Output height in pixels; frames are scaled to it. Unset: the source's own.
    pub height: Option<u32>,
    /// Frame rate; the test source produces it, others are rate-converted. Unset: the source's own.
    pub fps: Option<u32>,
    /// GRAY8 (B-mode, default) or RGBA (where colour matters).
    pub format: Option<PixelFormat>,
    /// test: the videotestsrc pattern (e.g. "ball", "smpte", "snow").
    pub pattern: Option<String>,
    /// file: path of the video file.
    pub path: Option<PathBuf>,
    /// file: play at the file's own frame rate instead of as fast as possible.
    pub realtime: Option<bool>,
    /// v4l2: the device node.
    pub device: Option<String>,
    /// rtsp: the stream URL.
    pub url: Option<String>,
    /// rtsp/udp: jitter-buffer latency in milliseconds (default 100).
    pub latency_ms: Option<u32>,
    /// udp: the port to listen on.
    pub port: Option<u16>,
    /// udp: the address to listen on (default 0.0.0.0).
    pub address: Option<String>,
    /// launch: the GStreamer launch string, without the final appsink.
    pub launch: Option<String>,
    /// test/launch: whether the source is live (restarted when it stops). Default true.
    pub live: Option<bool>,
    /// phantom: "linear" (default) or "convex".
    pub probe: Option<ProbeKind>,
    /// phantom: "breast" (default) or "uniform" (speckle calibration).
    pub scene: Option<SceneKind>,
    /// phantom: imaging depth in cm, one of 3, 4, 5, 6, 8 (default 4).
    pub depth_cm: Option<u32>,
    /// phantom: the seed that fixes the scene and its motion (default 1).
    pub seed: Option<u64>,
    /// phantom: lesions in the scene, 0 to 3 (default 1).
    pub lesions: Option<u32>,
    /// phantom: only this lesion kind (simple_cyst, complex_cyst, benign_solid, malignant_solid).
    pub lesion_kind: Option<LesionKind>,
    /// phantom: gain in dB after time-gain compensation (default 0).
    pub gain_db: Option<f32>,
    /// phantom: log-compression dynamic range in dB (default 55).
    pub dynamic_range_db: Option<f32>,
    /// phantom: probe motion, breathing and elevation drift (default true).
    pub motion: Option<bool>,
    /// Restart behaviour for live sources.
    #[serde(default)]
    pub restart: RestartConfig,
}

/// `[source.restart]`: how a live source that fails or stalls is restarted.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RestartConfig {
    /// First wait before a restart; doubles on each failure in a row.
    pub initial_backoff_ms: u64,
    /// Longest wait between restarts.
    pub max_backoff_ms: u64,
    /// A live source that delivers nothing for this long is restarted.
    pub stall_timeout_ms: u64,
    /// Grace before the first frame after a (re)start (e.g. an RTSP handshake).
    pub startup_timeout_ms: u64,
}

impl Default for RestartConfig {
    fn default() -> Self {
        Self {
            initial_backoff_ms: 100,
            max_backoff_ms: 5_000,
            stall_timeout_ms: 2_000,
            startup_timeout_ms: 10_000,
        }
    }
}

/// A validated source: what to launch and how to treat it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSpec {
    pub kind: SourceKind,
    /// The launch string up to (not including) sonoflow's conversion tail.
    pub head: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<u32>,
    pub format: PixelFormat,
    /// Live sources are restarted when they fail, stall or end.
    pub live: bool,
    /// Whether the appsink paces frames at their timestamps.
    pub sync: bool,
    pub restart: RestartConfig,
    /// The phantom's settings, when the source is the phantom.
    pub phantom: Option<PhantomConfig>,
}

impl SourceSpec {
    pub fn stall_timeout(&self) -> Duration {
        Duration::from_millis(self.restart.stall_timeout_ms)
    }

    pub fn startup_timeout(&self) -> Duration {
        Duration::from_millis(
            self.restart
                .startup_timeout_ms
                .max(self.restart.stall_timeout_ms),
        )
    }
}

/// Name of the appsink element at the end of every source pipeline.
pub const APPSINK_NAME: &str = "sonoflow_appsink";

impl SourceSpec {
    /// The full launch string: head, conversion to the negotiated format and
    /// size, and the appsink.
    pub fn launch_string(&self) -> String {
        let mut caps = format!("video/x-raw,format={}", self.format.gst_name());
        let mut tail = String::from("videoconvert ! videoscale");
        if let Some(w) = self.width {
            caps.push_str(&format!(",width={w}"));
        }
        if let Some(h) = self.height {
            caps.push_str(&format!(",height={h}"));
        }
        if let Some(fps) = self.fps {
            // The test source and the phantom produce the rate themselves;
            // videorate would invent duplicate frames when they fall behind.
            if !matches!(self.kind, SourceKind::Test | SourceKind::Phantom) {
                tail.push_str(" ! videorate");
            }
            caps.push_str(&format!(",framerate={fps}/1"));
        }
        format!(
            "{head} ! {tail} ! {caps} ! appsink name={APPSINK_NAME} sync={sync}",
            head = self.head,
            sync = self.sync
        )
    }
}

impl SourceConfig {
    /// Checks the section; `prefix` is the section's key path (e.g. `source`).
    pub fn validate(&self, prefix: &str) -> Result<SourceSpec, ConfigIssue> {
        let key = |k: &str| format!("{prefix}.{k}");
        let kind = self.kind.ok_or_else(|| {
            ConfigIssue::new(key("kind"), "is missing", "set kind = \"phantom\", \"test\", \"file\", \"v4l2\", \"rtsp\", \"udp\" or \"launch\"")
        })?;
        self.reject_foreign_keys(kind, prefix)?;
        for (name, value) in [
            ("width", self.width),
            ("height", self.height),
            ("fps", self.fps),
        ] {
            if value == Some(0) {
                return Err(ConfigIssue::new(
                    key(name),
                    "is 0",
                    format!("give a positive {name} or remove the key"),
                ));
            }
        }
        if self.width.is_some() != self.height.is_some() {
            return Err(ConfigIssue::new(
                key(if self.width.is_some() {
                    "height"
                } else {
                    "width"
                }),
                "is missing while the other dimension is set",
                "set both width and height, or neither",
            ));
        }
        let r = self.restart;
        if r.initial_backoff_ms == 0
            || r.max_backoff_ms < r.initial_backoff_ms
            || r.stall_timeout_ms == 0
            || r.startup_timeout_ms == 0
        {
            return Err(ConfigIssue::new(
                key("restart"),
                format!(
                    "needs 0 < initial_backoff_ms ({}) <= max_backoff_ms ({}), stall_timeout_ms ({}) > 0 and startup_timeout_ms ({}) > 0",
                    r.initial_backoff_ms, r.max_backoff_ms, r.stall_timeout_ms, r.startup_timeout_ms
                ),
                "use e.g. { initial_backoff_ms = 100, max_backoff_ms = 5000, stall_timeout_ms = 2000, startup_timeout_ms = 10000 }",
            ));
        }
        let required = |name: &str, v: Option<&str>, example: &str| {
            v.map(str::to_owned).ok_or_else(|| {
                ConfigIssue::new(
                    key(name),
                    format!("is required for kind \"{}\"", kind.name()),
                    format!("add {name} = {example}"),
                )
            })
        };
        let latency = self.latency_ms.unwrap_or(100);
        let mut phantom = None;
        let (head, live, sync) = match kind {
            SourceKind::Phantom => {
                let defaults = PhantomConfig::default();
                let config = PhantomConfig {
                    probe: self.probe.unwrap_or(defaults.probe),
                    scene: self.scene.unwrap_or(defaults.scene),
                    depth_cm: self.depth_cm.unwrap_or(defaults.depth_cm),
                    seed: self.seed.unwrap_or(defaults.seed),
                    lesions: self.lesions.unwrap_or(defaults.lesions),
                    lesion_kind: self.lesion_kind,
                    width: self.width.unwrap_or(defaults.width),
                    height: self.height.unwrap_or(defaults.height),
                    fps: self.fps.unwrap_or(defaults.fps),
                    gain_db: self.gain_db.unwrap_or(defaults.gain_db),
                    dynamic_range_db: self.dynamic_range_db.unwrap_or(defaults.dynamic_range_db),
                    motion: self.motion.unwrap_or(defaults.motion),
                };
                config.validate(prefix)?;
                let head = format!(
                    "appsrc name={PHANTOM_APPSRC} is-live=true format=time max-buffers=2 leaky-type=downstream \
                     caps=\"video/x-raw,format=GRAY8,width={},height={},framerate={}/1\"",
                    config.width, config.height, config.fps
                );
                phantom = Some(config);
                (head, true, false)
            }
            SourceKind::Test => {
                let pattern = self.pattern.as_deref().unwrap_or("ball");
                if !pattern
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
                {
                    return Err(ConfigIssue::new(
                        key("pattern"),
                        format!("\"{pattern}\" is not a pattern name"),
                        "use a videotestsrc pattern such as \"ball\", \"smpte\" or \"snow\"",
                    ));
                }
                let live = self.live.unwrap_or(true);
                (
                    format!("videotestsrc is-live={live} pattern={pattern}"),
                    live,
                    false,
                )
            }
            SourceKind::File => {
                let path = self.path.as_ref().ok_or_else(|| {
                    ConfigIssue::new(
                        key("path"),
                        "is required for kind \"file\"",
                        "add path = \"videos/scan.mp4\"",
                    )
                })?;
                let location = launch_quoted(&key("path"), &path.to_string_lossy())?;
                (
                    format!("filesrc location={location} ! decodebin"),
                    false,
                    self.realtime.unwrap_or(false),
                )
            }
            SourceKind::V4l2 => {
                let device = self.device.as_deref().unwrap_or("/dev/video0");
                (
                    format!("v4l2src device={}", launch_quoted(&key("device"), device)?),
                    true,
                    false,
                )
            }
            SourceKind::Rtsp => {
                let url = required(
                    "url",
                    self.url.as_deref(),
                    "\"rtsp://cart.local:8554/probe\"",
                )?;
                if !url.starts_with("rtsp://") && !url.starts_with("rtsps://") {
                    return Err(ConfigIssue::new(
                        key("url"),
                        format!("\"{url}\" is not an rtsp:// URL"),
                        "give a URL starting with rtsp://",
                    ));
                }
                (
                    format!(
                        "rtspsrc location={} latency={latency} ! decodebin",
                        launch_quoted(&key("url"), &url)?
                    ),
                    true,
                    false,
                )
            }
            SourceKind::Udp => {
                let port = self.port.ok_or_else(|| {
                    ConfigIssue::new(
                        key("port"),
                        "is required for kind \"udp\"",
                        "add port = 5004",
                    )
                })?;
                let address = self.address.as_deref().unwrap_or("0.0.0.0");
                let caps =
                    "application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96";
                (
                    format!(
                        "udpsrc address={} port={port} caps=\"{caps}\" ! rtpjitterbuffer latency={latency} ! rtph264depay ! h264parse ! decodebin",
                        launch_quoted(&key("address"), address)?
                    ),
                    true,
                    false,
                )
            }
            SourceKind::Launch => {
                let launch = required(
                    "launch",
                    self.launch.as_deref(),
                    "\"videotestsrc is-live=true\"",
                )?;
                let head = launch.trim().trim_end_matches('!').trim().to_owned();
                if head.is_empty() {
                    return Err(ConfigIssue::new(
                        key("launch"),
                        "is empty",
                        "give a GStreamer launch string such as \"videotestsrc is-live=true\"",
                    ));
                }
                if head.contains("appsink") {
                    return Err(ConfigIssue::new(
                        key("launch"),
                        "contains an appsink",
                        "end the string before the sink; sonoflow adds its own appsink",
                    ));
                }
                (head, self.live.unwrap_or(true), false)
            }
        };
        Ok(SourceSpec {
            kind,
            head,
            width: self.width,
            height: self.height,
            fps: self.fps,
            format: self.format.unwrap_or(PixelFormat::Gray8),
            live,
            sync,
            restart: self.restart,
            phantom,
        })
    }

    fn reject_foreign_keys(&self, kind: SourceKind, prefix: &str) -> Result<(), ConfigIssue> {
        use SourceKind::*;
        let keys: [(&str, bool, &[SourceKind]); 19] = [
            ("probe", self.probe.is_some(), &[Phantom]),
            ("scene", self.scene.is_some(), &[Phantom]),
            ("depth_cm", self.depth_cm.is_some(), &[Phantom]),
            ("seed", self.seed.is_some(), &[Phantom]),
            ("lesions", self.lesions.is_some(), &[Phantom]),
            ("lesion_kind", self.lesion_kind.is_some(), &[Phantom]),
            ("gain_db", self.gain_db.is_some(), &[Phantom]),
            (
                "dynamic_range_db",
                self.dynamic_range_db.is_some(),
                &[Phantom],
            ),
            ("motion", self.motion.is_some(), &[Phantom]),
            ("pattern", self.pattern.is_some(), &[Test]),
            ("path", self.path.is_some(), &[File]),
            ("realtime", self.realtime.is_some(), &[File]),
            ("device", self.device.is_some(), &[V4l2]),
            ("url", self.url.is_some(), &[Rtsp]),
            ("latency_ms", self.latency_ms.is_some(), &[Rtsp, Udp]),
            ("port", self.port.is_some(), &[Udp]),
            ("address", self.address.is_some(), &[Udp]),
            ("launch", self.launch.is_some(), &[Launch]),
            ("live", self.live.is_some(), &[Test, Launch]),
        ];
        reject_foreign_keys(prefix, kind, SourceKind::name, &keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> SourceConfig {
        toml::from_str(text).expect("test TOML parses")
    }

    #[test]
    fn test_source_launch_string() {
        let spec = parse("kind = \"test\"\nwidth = 640\nheight = 480\nfps = 60")
            .validate("source")
            .expect("valid");
        assert_eq!(
            spec.launch_string(),
            "videotestsrc is-live=true pattern=ball ! videoconvert ! videoscale ! \
             video/x-raw,format=GRAY8,width=640,height=480,framerate=60/1 ! appsink name=sonoflow_appsink sync=false"
        );
        assert!(spec.live);
    }

    #[test]
    fn file_source_is_not_live_and_rate_converts() {
        let spec = parse("kind = \"file\"\npath = \"a b.mp4\"\nfps = 30")
            .validate("source")
            .expect("valid");
        assert!(!spec.live);
        assert!(spec.launch_string().starts_with(
            "filesrc location=\"a b.mp4\" ! decodebin ! videoconvert ! videoscale ! videorate ! "
        ));
    }

    #[test]
    fn missing_kind_names_the_key() {
        let err = SourceConfig::default()
            .validate("source")
            .expect_err("invalid");
        assert_eq!(err.key, "source.kind");
    }

    #[test]
    fn key_of_another_kind_is_rejected() {
        let err = parse("kind = \"test\"\npath = \"x.mp4\"")
            .validate("source")
            .expect_err("invalid");
        assert_eq!(err.key, "source.path");
        assert!(err.problem.contains("only to file"), "{err}");
    }

    #[test]
    fn zero_size_and_half_size_are_rejected() {
        assert_eq!(
            parse("kind = \"test\"\nwidth = 0\nheight = 4")
                .validate("source")
                .expect_err("0")
                .key,
            "source.width"
        );
        assert_eq!(
            parse("kind = \"test\"\nwidth = 4")
                .validate("source")
                .expect_err("half")
                .key,
            "source.height"
        );
    }

    #[test]
    fn launch_must_not_bring_its_own_appsink() {
        let err = parse("kind = \"launch\"\nlaunch = \"videotestsrc ! appsink\"")
            .validate("source")
            .expect_err("invalid");
        assert_eq!(err.key, "source.launch");
        let ok = parse("kind = \"launch\"\nlaunch = \"videotestsrc ! \"")
            .validate("source")
            .expect("valid");
        assert_eq!(ok.head, "videotestsrc");
    }

    #[test]
    fn phantom_settings_are_validated_and_foreign_to_other_kinds() {
        let spec = parse("kind = \"phantom\"\nprobe = \"convex\"\ndepth_cm = 8\nfps = 60")
            .validate("source")
            .expect("valid");
        assert!(spec.live && spec.head.starts_with("appsrc name=sonoflow_phantom"));
        assert!(
            !spec.launch_string().contains("videorate"),
            "the phantom paces itself: no invented frames"
        );
        assert_eq!(spec.phantom.expect("phantom config").depth_cm, 8);
        assert_eq!(
            parse("kind = \"phantom\"\ndepth_cm = 7")
                .validate("source")
                .expect_err("7")
                .key,
            "source.depth_cm"
        );
        assert_eq!(
            parse("kind = \"test\"\nseed = 3")
                .validate("source")
                .expect_err("foreign")
                .key,
            "source.seed"
        );
    }

    #[test]
    fn udp_needs_a_port() {
        assert_eq!(
            parse("kind = \"udp\"")
                .validate("source")
                .expect_err("no port")
                .key,
            "source.port"
        );
        let spec = parse("kind = \"udp\"\nport = 5004")
            .validate("source")
            .expect("valid");
        assert!(spec.head.contains("port=5004"));
    }
}
