//! The `[source]` section of a pipeline definition, and its validation into
//! a [`SourceSpec`] that knows how to build its GStreamer pipeline.
//!
//! Values from the definition that name things (a file path, a URL, a device,
//! an address) never pass through GStreamer's launch-string parser: the
//! launch string holds only sonoflow's own text and names the element, and
//! the value is set on it as a property ([`SourceProperty`]). A path ending in
//! a backslash or holding quotes is then just a path.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use sonoflow_calibrate::{CalibrationConfig, CalibrationSetting};
use sonoflow_core::{reject_foreign_keys, ConfigIssue, PixelFormat};
use sonoflow_phantom::{
    Anatomy, Imaging, LesionKind, PhantomConfig, ProbeKind, SceneKind, Variation,
};

use crate::dicom::{DicomSettings, DICOM_APPSRC};
use crate::images::{ImageSettings, IMAGES_APPSRC};
use crate::phantom_feed::PHANTOM_APPSRC;

/// The `udp` source's socket receive buffer (bytes).
const UDP_BUFFER_BYTES: u32 = 2 * 1024 * 1024;

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
    /// A DICOM file, or a folder of them, calibrated from its ultrasound regions.
    Dicom,
    /// An image dataset: a folder (class sub-folders), a pattern, one image,
    /// or a phantom export, with masks and sidecars as ground truth and
    /// calibration.
    Images,
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
            SourceKind::Dicom => "dicom",
            SourceKind::Images => "images",
        }
    }
}

/// `[source]` as written in the file. Which keys apply depends on `kind`;
/// [`SourceConfig::validate`] rejects keys that do not apply.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Which source: phantom, test, file, dicom, images, v4l2, rtsp, udp or launch.
    pub kind: Option<SourceKind>,
    /// Output width in pixels; frames are scaled to it. Unset: the source's own.
    pub width: Option<u32>,
    /// Output height in pixels; frames are scaled to it. Unset: the source's own.
    pub height: Option<u32>,
    /// Frame rate: a number (30, 29.97) or a fraction ("30000/1001"); the
    /// test source produces it, others are rate-converted. Unset: the source's own.
    pub fps: Option<FpsSetting>,
    /// GRAY8 (B-mode, default) or RGBA (where colour matters).
    pub format: Option<PixelFormat>,
    /// test: the videotestsrc pattern (e.g. "ball", "smpte", "snow").
    pub pattern: Option<String>,
    /// file: path of the video file; dicom: a DICOM file, or a folder whose
    /// files play in name order; images: a folder of images (class
    /// sub-folders too), a pattern such as `data/*.png`, one image, or a
    /// phantom export folder.
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
    /// test/launch: whether the source is live (restarted when it stops).
    /// dicom: paced at the file's frame time, dropping frames the pipeline
    /// cannot take, as a scanner would (true), or as fast as ingest takes
    /// them with none dropped, for evaluation (false). Default true.
    /// images: paced at `fps` (true), or as fast as the pipeline takes
    /// them, every frame kept (false, the default: evaluation).
    pub live: Option<bool>,
    /// dicom, images: start again from the first file after the last
    /// (default false: the run ends with the last frame).
    #[serde(rename = "loop")]
    pub looping: Option<bool>,
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
    /// phantom: the scanner's look ([source.imaging]; docs/phantom.md).
    pub imaging: Option<Imaging>,
    /// phantom: lesion contrast, size, position, shadows ([source.anatomy]).
    pub anatomy: Option<Anatomy>,
    /// phantom: draw the look and scene variety from the seed within these
    /// bands ([source.variation]; `{}` for the defaults).
    pub variation: Option<Variation>,
    /// Every kind: the frames' calibration when the source gives none (a
    /// fixed region and spacing, or a ruler), or `"auto"`: found in the
    /// frames themselves. Unset: the source's own, if any (docs/sources.md).
    pub calibration: Option<CalibrationConfig>,
    /// phantom, test: write each frame's number and capture time (on
    /// `CLOCK_MONOTONIC`) as a block code into its bottom-right corner at
    /// ingest, for glass-to-glass latency (`sonoflow bench glass`; layout in
    /// `sonoflow_core::stamp`). It draws over the picture the model sees:
    /// for measurement runs only. Default false.
    pub stamp: Option<bool>,
    /// Restart behaviour for live sources.
    #[serde(default)]
    pub restart: RestartConfig,
}

pub use crate::{MAX_HEIGHT, MAX_WIDTH};
/// rtsp/udp: the jitter buffer's latency when `latency_ms` is unset. Lower
/// shows frames sooner; packets that come later than it are lost.
pub const DEFAULT_LATENCY_MS: u32 = 100;
/// The highest frame rate a source may ask for.
pub const MAX_FPS: f64 = 1000.0;

/// A frame rate as GStreamer carries it, a fraction: NTSC's 29.97 is 30000/1001.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framerate {
    pub numer: u32,
    pub denom: u32,
}

impl Framerate {
    pub fn as_f64(self) -> f64 {
        f64::from(self.numer) / f64::from(self.denom)
    }

    /// The nearest whole rate (29.97 gives 30), at least 1.
    pub fn nearest_whole(self) -> u32 {
        let (n, d) = (u64::from(self.numer), u64::from(self.denom).max(1));
        u32::try_from((n + d / 2) / d).unwrap_or(u32::MAX).max(1)
    }

    pub fn is_whole(self) -> bool {
        self.denom == 1
    }

    fn reduced(numer: u64, denom: u64) -> Option<Self> {
        let (mut a, mut b) = (numer, denom);
        while b != 0 {
            (a, b) = (b, a % b);
        }
        let g = a.max(1);
        Some(Self {
            numer: u32::try_from(numer / g).ok()?,
            denom: u32::try_from(denom / g).ok()?,
        })
    }

    /// A decimal rate as a fraction: whole rates over 1, the NTSC family
    /// (23.976, 29.97, 59.94: k/1.001) over 1001, anything else in thousandths.
    fn from_decimal(fps: f64) -> Option<Self> {
        if fps.fract() == 0.0 {
            return Self::reduced(fps as u64, 1);
        }
        let k = (fps * 1.001).round();
        if k >= 1.0 && (fps - k / 1.001).abs() < 0.005 {
            return Self::reduced(k as u64 * 1000, 1001);
        }
        Self::reduced((fps * 1000.0).round() as u64, 1000)
    }
}

impl fmt::Display for Framerate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_whole() {
            write!(f, "{}", self.numer)
        } else {
            write!(f, "{}/{}", self.numer, self.denom)
        }
    }
}

/// `fps` as written: a number (`30`, `29.97`) or a string holding a
/// fraction (`"30000/1001"`).
#[derive(Debug, Clone, PartialEq)]
pub enum FpsSetting {
    Number(f64),
    Text(String),
}

impl<'de> Deserialize<'de> for FpsSetting {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = FpsSetting;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a frame rate: a number such as 30 or 29.97, or a fraction such as \"30000/1001\"")
            }
            fn visit_i64<E>(self, v: i64) -> Result<FpsSetting, E> {
                Ok(FpsSetting::Number(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<FpsSetting, E> {
                Ok(FpsSetting::Number(v as f64))
            }
            fn visit_f64<E>(self, v: f64) -> Result<FpsSetting, E> {
                Ok(FpsSetting::Number(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<FpsSetting, E> {
                Ok(FpsSetting::Text(v.to_owned()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl FpsSetting {
    /// The rate as a fraction; `key` names the setting in the issue.
    pub fn framerate(&self, key: &str) -> Result<Framerate, ConfigIssue> {
        let invalid = |shown: String| {
            ConfigIssue::new(
                key,
                format!("{shown} is not a frame rate from 0 to {MAX_FPS}"),
                "give a positive rate such as 30, 29.97 or \"30000/1001\", or remove the key",
            )
        };
        let rate = match self {
            FpsSetting::Number(fps) if fps.is_finite() && *fps > 0.0 && *fps <= MAX_FPS => {
                Framerate::from_decimal(*fps)
            }
            FpsSetting::Number(fps) => return Err(invalid(fps.to_string())),
            FpsSetting::Text(text) => match text.split_once('/') {
                Some((n, d)) => match (n.trim().parse::<u32>(), d.trim().parse::<u32>()) {
                    (Ok(n), Ok(d)) if n > 0 && d > 0 => Framerate::reduced(n.into(), d.into()),
                    _ => None,
                },
                None => text
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && *f > 0.0)
                    .and_then(Framerate::from_decimal),
            },
        };
        rate.filter(|r| r.numer > 0 && r.as_f64() <= MAX_FPS)
            .ok_or_else(|| invalid(format!("{self}")))
    }
}

impl fmt::Display for FpsSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FpsSetting::Number(fps) => write!(f, "{fps}"),
            FpsSetting::Text(text) => write!(f, "\"{text}\""),
        }
    }
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

/// A value from the definition set on an element of the source pipeline
/// after the launch string is parsed, so it is never parsed as launch syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceProperty {
    /// The `name=` of the element in the launch string.
    pub element: &'static str,
    /// A string property of that element (`location`, `device`, `address`).
    pub property: &'static str,
    pub value: String,
}

/// Name of the element of the head that [`SourceProperty`]s are set on.
pub const SOURCE_ELEMENT: &str = "sonoflow_source";

impl RestartConfig {
    /// Checks the table; `prefix` is its key path (e.g. `source.restart`),
    /// and each problem names the one key to change.
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigIssue> {
        let key = |k: &str| format!("{prefix}.{k}");
        let defaults = Self::default();
        for (name, value, default) in [
            (
                "initial_backoff_ms",
                self.initial_backoff_ms,
                defaults.initial_backoff_ms,
            ),
            (
                "stall_timeout_ms",
                self.stall_timeout_ms,
                defaults.stall_timeout_ms,
            ),
            (
                "startup_timeout_ms",
                self.startup_timeout_ms,
                defaults.startup_timeout_ms,
            ),
        ] {
            if value == 0 {
                return Err(ConfigIssue::new(
                    key(name),
                    "is 0",
                    format!("give a positive time in milliseconds (default {default})"),
                ));
            }
        }
        if self.max_backoff_ms < self.initial_backoff_ms {
            return Err(ConfigIssue::new(
                key("max_backoff_ms"),
                format!(
                    "is {}, below initial_backoff_ms ({})",
                    self.max_backoff_ms, self.initial_backoff_ms
                ),
                format!(
                    "use at least {} (default {})",
                    self.initial_backoff_ms, defaults.max_backoff_ms
                ),
            ));
        }
        Ok(())
    }
}

/// A validated source: what to launch and how to treat it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSpec {
    pub kind: SourceKind,
    /// The launch string up to (not including) sonoflow's conversion tail;
    /// sonoflow's own text only, never a value from the definition.
    pub head: String,
    /// Values from the definition, set on the head's elements after parsing.
    pub properties: Vec<SourceProperty>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// The frame rate asked for, rounded to whole frames per second
    /// (29.97 gives 30): for what counts in whole frames.
    pub fps: Option<u32>,
    /// The frame rate asked for, exactly (what the caps carry).
    pub framerate: Option<Framerate>,
    pub format: PixelFormat,
    /// Live sources drop frames rather than wait, and are restarted when
    /// they fail, stall or end (unless `finite`).
    pub live: bool,
    /// The stream has an end that ends the run even when it is paced live
    /// (a DICOM file played at its frame time): its end is not a loss to
    /// restart from.
    pub finite: bool,
    /// Whether the appsink paces frames at their timestamps.
    pub sync: bool,
    pub restart: RestartConfig,
    /// The phantom's settings, when the source is the phantom.
    pub phantom: Option<PhantomConfig>,
    /// What to play, when the source is DICOM.
    pub dicom: Option<DicomSettings>,
    /// What to play, when the source is an image dataset.
    pub images: Option<ImageSettings>,
    /// `[source] calibration`, validated: None means the source's own only.
    pub calibration: Option<CalibrationSetting>,
    /// `[source] stamp`: each frame's number and capture time written into
    /// its pixels at ingest (`sonoflow_core::stamp`).
    pub stamp: bool,
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
    /// The launch string with the [`SourceProperty`]s shown beside it, for
    /// logs and errors (not for parsing).
    pub fn describe(&self) -> String {
        let mut text = self.launch_string();
        for p in &self.properties {
            text.push_str(&format!(" [{}.{} = {:?}]", p.element, p.property, p.value));
        }
        if let Some(dicom) = &self.dicom {
            text.push_str(&format!(" [dicom path = {:?}]", dicom.path));
        }
        if let Some(images) = &self.images {
            text.push_str(&format!(" [images path = {:?}]", images.path));
        }
        text
    }

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
        if let Some(rate) = self.framerate {
            // The test source, the phantom and an image dataset produce the
            // rate themselves; videorate would invent duplicate frames when
            // they fall behind.
            if !matches!(
                self.kind,
                SourceKind::Test | SourceKind::Phantom | SourceKind::Images
            ) {
                tail.push_str(" ! videorate");
            }
            caps.push_str(&format!(",framerate={}/{}", rate.numer, rate.denom));
        }
        format!(
            "{head} ! {tail} ! {caps} ! appsink name={APPSINK_NAME} sync={sync}",
            head = self.head,
            sync = self.sync
        )
    }
}

/// The appsrc a file feed (DICOM, images) pushes into. The feed paces a
/// live source itself and the appsrc drops the oldest frame when ingest is
/// behind; otherwise the appsrc blocks the feed until ingest takes the frame
/// (nothing dropped).
fn feed_appsrc(name: &str, live: bool) -> String {
    if live {
        format!("appsrc name={name} is-live=true format=time max-buffers=2 leaky-type=downstream")
    } else {
        format!("appsrc name={name} is-live=false format=time max-buffers=2 block=true")
    }
}

impl SourceConfig {
    /// `width` or `height` set for a source whose frames must keep their
    /// own size: the first one set, as an issue saying `why` and `fix`.
    fn refuse_scaling(
        &self,
        key: &dyn Fn(&str) -> String,
        why: &str,
        fix: &str,
    ) -> Result<(), ConfigIssue> {
        match [("width", self.width), ("height", self.height)]
            .iter()
            .find_map(|(name, v)| v.map(|_| *name))
        {
            Some(name) => Err(ConfigIssue::new(key(name), why, fix)),
            None => Ok(()),
        }
    }

    /// Checks the section; `prefix` is the section's key path (e.g. `source`).
    pub fn validate(&self, prefix: &str) -> Result<SourceSpec, ConfigIssue> {
        let key = |k: &str| format!("{prefix}.{k}");
        let kind = self.kind.ok_or_else(|| {
            ConfigIssue::new(key("kind"), "is missing", "set kind = \"phantom\", \"test\", \"file\", \"dicom\", \"images\", \"v4l2\", \"rtsp\", \"udp\" or \"launch\"")
        })?;
        self.reject_foreign_keys(kind, prefix)?;
        for (name, value) in [("width", self.width), ("height", self.height)] {
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
        // Every kind: a size GStreamer would accept can still be far too big
        // for the frame pool (a 100000x100000 frame is 10 GB).
        for (name, value, max) in [
            ("width", self.width, MAX_WIDTH),
            ("height", self.height, MAX_HEIGHT),
        ] {
            if let Some(v) = value.filter(|v| *v > max) {
                return Err(ConfigIssue::new(
                    key(name),
                    format!("is {v}, above the largest {name} sonoflow takes ({max}; frames up to {MAX_WIDTH}x{MAX_HEIGHT})"),
                    format!("use at most {max} (e.g. width = 1920, height = 1080), or remove width and height to keep the source's own size"),
                ));
            }
        }
        let framerate = self
            .fps
            .as_ref()
            .map(|f| f.framerate(&key("fps")))
            .transpose()?;
        self.restart.validate(&key("restart"))?;
        let calibration = self
            .calibration
            .as_ref()
            .map(|c| c.validate(&key("calibration")))
            .transpose()?;
        let required = |name: &str, v: Option<&str>, example: &str| {
            v.map(str::to_owned).ok_or_else(|| {
                ConfigIssue::new(
                    key(name),
                    format!("is required for kind \"{}\"", kind.name()),
                    format!("add {name} = {example}"),
                )
            })
        };
        let latency = self.latency_ms.unwrap_or(DEFAULT_LATENCY_MS);
        let mut phantom = None;
        let mut dicom = None;
        let mut images = None;
        let mut properties = Vec::new();
        let mut set = |property: &'static str, value: String| {
            properties.push(SourceProperty {
                element: SOURCE_ELEMENT,
                property,
                value,
            })
        };
        let (head, live, sync) = match kind {
            SourceKind::Phantom => {
                if let Some(rate) = framerate.filter(|r| !r.is_whole()) {
                    return Err(ConfigIssue::new(
                        key("fps"),
                        format!(
                            "is {rate} ({:.3}); the phantom renders whole frame rates",
                            rate.as_f64()
                        ),
                        format!("use a whole number such as fps = {}", rate.nearest_whole()),
                    ));
                }
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
                    fps: framerate.map_or(defaults.fps, Framerate::nearest_whole),
                    gain_db: self.gain_db.unwrap_or(defaults.gain_db),
                    dynamic_range_db: self.dynamic_range_db.unwrap_or(defaults.dynamic_range_db),
                    motion: self.motion.unwrap_or(defaults.motion),
                    imaging: self.imaging.clone().unwrap_or(defaults.imaging),
                    anatomy: self.anatomy.clone().unwrap_or(defaults.anatomy),
                    variation: self.variation.clone(),
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
                set("location", path.to_string_lossy().into_owned());
                (
                    format!("filesrc name={SOURCE_ELEMENT} ! decodebin"),
                    false,
                    self.realtime.unwrap_or(false),
                )
            }
            SourceKind::Dicom => {
                let path = self.path.as_ref().ok_or_else(|| {
                    ConfigIssue::new(
                        key("path"),
                        "is required for kind \"dicom\"",
                        "add path = \"scans/cine.dcm\" (a DICOM file, or a folder of them)",
                    )
                })?;
                self.refuse_scaling(
                    &key,
                    "cannot be set for kind \"dicom\": the file's calibration is in its own pixels, \
                     and scaling the frames would make its millimetres wrong",
                    "remove width and height; frames keep the file's size",
                )?;
                let live = self.live.unwrap_or(true);
                let head = feed_appsrc(DICOM_APPSRC, live);
                dicom = Some(DicomSettings {
                    path: path.clone(),
                    live,
                    looping: self.looping.unwrap_or(false),
                });
                (head, live, false)
            }
            SourceKind::Images => {
                let path = self.path.as_ref().ok_or_else(|| {
                    ConfigIssue::new(
                        key("path"),
                        "is required for kind \"images\"",
                        "add path = \"data/scans\" (a folder of images, a pattern such as \
                         \"data/*.png\", one image, or a phantom export folder)",
                    )
                })?;
                self.refuse_scaling(
                    &key,
                    "cannot be set for kind \"images\": masks and sidecar calibrations are \
                     in the images' own pixels, and scaling the frames would move them off \
                     their images",
                    "remove width and height; frames keep each image's size",
                )?;
                let live = self.live.unwrap_or(false);
                let head = feed_appsrc(IMAGES_APPSRC, live);
                images = Some(ImageSettings {
                    path: path.clone(),
                    live,
                    looping: self.looping.unwrap_or(false),
                    framerate: framerate
                        .map_or(ImageSettings::DEFAULT_FRAMERATE, |r| (r.numer, r.denom)),
                    fixed: match &calibration {
                        Some(CalibrationSetting::Fixed(fixed)) => Some(fixed.clone()),
                        _ => None,
                    },
                });
                (head, live, false)
            }
            SourceKind::V4l2 => {
                let device = self.device.as_deref().unwrap_or("/dev/video0");
                set("device", device.to_owned());
                (format!("v4l2src name={SOURCE_ELEMENT}"), true, false)
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
                set("location", url);
                (
                    format!("rtspsrc name={SOURCE_ELEMENT} latency={latency} ! decodebin"),
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
                set("address", address.to_owned());
                let caps =
                    "application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96";
                // A socket buffer of about 4 s at 4 Mbit/s (the kernel caps it
                // at net.core.rmem_max): a receiver starved of CPU for a moment
                // loses no packet, where one lost packet spoils every frame
                // up to the next key frame.
                (
                    format!(
                        "udpsrc name={SOURCE_ELEMENT} port={port} buffer-size={UDP_BUFFER_BYTES} caps=\"{caps}\" ! rtpjitterbuffer latency={latency} ! rtph264depay ! h264parse ! decodebin"
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
        // An image dataset stamps its frames at its rate (default 30).
        let framerate = images.as_ref().map_or(framerate, |i| {
            Some(Framerate {
                numer: i.framerate.0,
                denom: i.framerate.1,
            })
        });
        Ok(SourceSpec {
            kind,
            head,
            properties,
            width: self.width,
            height: self.height,
            fps: framerate.map(Framerate::nearest_whole),
            framerate,
            format: self.format.unwrap_or(PixelFormat::Gray8),
            live,
            finite: match kind {
                SourceKind::File => true,
                SourceKind::Dicom | SourceKind::Images => !self.looping.unwrap_or(false),
                _ => false,
            },
            sync,
            restart: self.restart,
            phantom,
            dicom,
            images,
            calibration,
            stamp: self.stamp.unwrap_or(false),
        })
    }

    fn reject_foreign_keys(&self, kind: SourceKind, prefix: &str) -> Result<(), ConfigIssue> {
        use SourceKind::*;
        let keys: [(&str, bool, &[SourceKind]); 24] = [
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
            ("imaging", self.imaging.is_some(), &[Phantom]),
            ("anatomy", self.anatomy.is_some(), &[Phantom]),
            ("variation", self.variation.is_some(), &[Phantom]),
            ("pattern", self.pattern.is_some(), &[Test]),
            ("path", self.path.is_some(), &[File, Dicom, Images]),
            ("realtime", self.realtime.is_some(), &[File]),
            ("device", self.device.is_some(), &[V4l2]),
            ("url", self.url.is_some(), &[Rtsp]),
            ("latency_ms", self.latency_ms.is_some(), &[Rtsp, Udp]),
            ("port", self.port.is_some(), &[Udp]),
            ("address", self.address.is_some(), &[Udp]),
            ("launch", self.launch.is_some(), &[Launch]),
            ("live", self.live.is_some(), &[Test, Launch, Dicom, Images]),
            ("loop", self.looping.is_some(), &[Dicom, Images]),
            // Synthetic pictures only: it draws over the image.
            ("stamp", self.stamp.is_some(), &[Phantom, Test]),
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
            "filesrc name=sonoflow_source ! decodebin ! videoconvert ! videoscale ! videorate ! "
        ));
    }

    #[test]
    fn values_that_name_things_are_properties_never_launch_text() {
        // A trailing backslash would escape a closing quote; a quote would end it.
        for path in [r"scans\", r#"a" ! filesink location=/tmp/x"#] {
            let config = SourceConfig {
                kind: Some(SourceKind::File),
                path: Some(path.into()),
                ..SourceConfig::default()
            };
            let spec = config.validate("source").expect("any path is valid");
            assert!(
                !spec.launch_string().contains(path),
                "{}",
                spec.launch_string()
            );
            assert_eq!(
                spec.properties,
                vec![SourceProperty {
                    element: SOURCE_ELEMENT,
                    property: "location",
                    value: path.to_owned(),
                }]
            );
        }
        let rtsp = parse("kind = \"rtsp\"\nurl = 'rtsp://cam/\\'")
            .validate("source")
            .expect("valid");
        assert_eq!(rtsp.properties[0].value, r"rtsp://cam/\");
        let udp = parse("kind = \"udp\"\nport = 5004\naddress = '1.2.3.4\" ! fakesink'")
            .validate("source")
            .expect("valid");
        assert!(!udp.launch_string().contains("fakesink"));
        assert_eq!(udp.properties[0].property, "address");
    }

    #[test]
    fn fractional_frame_rates_become_exact_fractions() {
        let rate = |text: &str| {
            parse(&format!("kind = \"test\"\nfps = {text}"))
                .validate("source")
                .map(|s| (s.framerate.map(|r| (r.numer, r.denom)), s.fps))
        };
        assert_eq!(rate("29.97"), Ok((Some((30000, 1001)), Some(30))));
        assert_eq!(rate("59.94"), Ok((Some((60000, 1001)), Some(60))));
        assert_eq!(rate("23.976"), Ok((Some((24000, 1001)), Some(24))));
        assert_eq!(rate("\"30000/1001\""), Ok((Some((30000, 1001)), Some(30))));
        assert_eq!(rate("12.5"), Ok((Some((25, 2)), Some(13))));
        assert_eq!(rate("25"), Ok((Some((25, 1)), Some(25))));
        assert_eq!(rate("25.0"), Ok((Some((25, 1)), Some(25))));
        // Near the top of u32 the rounding must not overflow.
        assert_eq!(rate("\"4294967000/4294967\"").map(|r| r.1), Ok(Some(1000)));
        for bad in [
            "0",
            "-30",
            "0.0",
            "1e-9",
            "\"1e-300\"",
            "\"30/0\"",
            "\"0/1\"",
            "\"4294967295/4294967\"",
            "\"fast\"",
            "5000",
            "nan",
            "inf",
        ] {
            let err = rate(bad).expect_err(bad);
            assert_eq!(err.key, "source.fps", "{bad}");
        }
        let spec = parse("kind = \"v4l2\"\nfps = 29.97")
            .validate("source")
            .expect("valid");
        assert!(
            spec.launch_string()
                .contains("videorate ! video/x-raw,format=GRAY8,framerate=30000/1001 !"),
            "{}",
            spec.launch_string()
        );
        let err = parse("kind = \"phantom\"\nfps = 29.97")
            .validate("source")
            .expect_err("the phantom renders whole rates");
        assert_eq!(err.key, "source.fps");
        assert!(err.fix.contains("fps = 30"), "{err}");
    }

    #[test]
    fn frame_size_is_limited_for_every_kind() {
        for kind in [
            "kind = \"test\"",
            "kind = \"file\"\npath = \"a.mp4\"",
            "kind = \"v4l2\"",
            "kind = \"rtsp\"\nurl = \"rtsp://cam/probe\"",
            "kind = \"udp\"\nport = 5004",
            "kind = \"launch\"\nlaunch = \"videotestsrc\"",
            "kind = \"phantom\"",
        ] {
            let err = parse(&format!("{kind}\nwidth = 100000\nheight = 100000"))
                .validate("source")
                .expect_err(kind);
            assert_eq!(err.key, "source.width", "{kind}: {err}");
            let err = parse(&format!("{kind}\nwidth = 640\nheight = 100000"))
                .validate("source")
                .expect_err(kind);
            assert_eq!(err.key, "source.height", "{kind}: {err}");
        }
        parse("kind = \"test\"\nwidth = 7680\nheight = 4320")
            .validate("source")
            .expect("8K is allowed");
    }

    #[test]
    fn restart_problems_name_the_key() {
        for (table, key) in [
            (
                "{ initial_backoff_ms = 0 }",
                "source.restart.initial_backoff_ms",
            ),
            (
                "{ stall_timeout_ms = 0 }",
                "source.restart.stall_timeout_ms",
            ),
            (
                "{ startup_timeout_ms = 0 }",
                "source.restart.startup_timeout_ms",
            ),
            (
                "{ initial_backoff_ms = 500, max_backoff_ms = 100 }",
                "source.restart.max_backoff_ms",
            ),
        ] {
            let err = parse(&format!("kind = \"test\"\nrestart = {table}"))
                .validate("source")
                .expect_err(table);
            assert_eq!(err.key, key, "{err}");
        }
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
    fn stamping_is_off_by_default_and_only_for_synthetic_pictures() {
        for kind in ["phantom", "test"] {
            let plain = parse(&format!("kind = \"{kind}\""))
                .validate("source")
                .expect("valid");
            assert!(!plain.stamp, "{kind}: the model sees the picture as it is");
            let stamped = parse(&format!("kind = \"{kind}\"\nstamp = true"))
                .validate("source")
                .expect("valid");
            assert!(stamped.stamp, "{kind}");
        }
        for other in ["kind = \"v4l2\"", "kind = \"udp\"\nport = 5004"] {
            let err = parse(&format!("{other}\nstamp = true"))
                .validate("source")
                .expect_err("a stamp would draw over a real picture");
            assert_eq!(err.key, "source.stamp", "{other}");
        }
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
    fn phantom_look_and_variety_tables_parse_validate_and_name_their_keys() {
        let spec = parse(
            "kind = \"phantom\"\n[imaging]\nlook = \"harmonic\"\ndepth_offset_mm = 6\n\
             [anatomy]\ncontrast_bands_db = [[3, 9]]\nshadows = 1\n",
        )
        .validate("source")
        .expect("valid");
        let phantom = spec.phantom.expect("phantom config");
        assert_eq!(phantom.imaging.look, sonoflow_phantom::Look::Harmonic);
        assert_eq!(phantom.anatomy.contrast_bands_db, vec![[3.0, 9.0]]);
        let varied = parse("kind = \"phantom\"\n[variation]\nlooks = [\"plane_wave\"]\n")
            .validate("source")
            .expect("valid");
        assert!(varied.phantom.expect("phantom").variation.is_some());
        let bad = |text: &str| parse(text).validate("source").expect_err("invalid").key;
        assert_eq!(
            bad("kind = \"phantom\"\n[imaging]\ngamma = 12\n"),
            "source.imaging.gamma"
        );
        assert_eq!(
            bad("kind = \"phantom\"\n[variation]\nlooks = []\n"),
            "source.variation.looks"
        );
        assert_eq!(
            bad("kind = \"test\"\n[anatomy]\nshadows = 1\n"),
            "source.anatomy"
        );
    }

    #[test]
    fn dicom_is_live_and_finite_by_default_and_keeps_its_own_size() {
        let spec = parse("kind = \"dicom\"\npath = \"scans\"")
            .validate("source")
            .expect("valid");
        assert!(
            spec.live && spec.finite,
            "paced at its frame time, and it ends"
        );
        assert!(spec.head.contains("is-live=true") && spec.head.contains("leaky-type=downstream"));
        assert!(
            spec.properties.is_empty(),
            "the path is the feed's, not an element's"
        );
        assert!(spec.describe().contains("[dicom path = \"scans\"]"));
        let settings = spec.dicom.expect("dicom settings");
        assert_eq!(
            settings,
            DicomSettings {
                path: "scans".into(),
                live: true,
                looping: false
            }
        );
        let eval = parse("kind = \"dicom\"\npath = \"a.dcm\"\nlive = false\nloop = true")
            .validate("source")
            .expect("valid");
        assert!(!eval.live && !eval.finite && eval.head.contains("block=true"));
        for (text, key) in [
            ("kind = \"dicom\"", "source.path"),
            (
                "kind = \"dicom\"\npath = \"a.dcm\"\nwidth = 320\nheight = 240",
                "source.width",
            ),
            ("kind = \"test\"\nloop = true", "source.loop"),
            (
                "kind = \"file\"\npath = \"a.mp4\"\nlive = true",
                "source.live",
            ),
        ] {
            let err = parse(text).validate("source").expect_err(text);
            assert_eq!(err.key, key, "{err}");
        }
        let err = parse("kind = \"dicom\"\npath = \"a.dcm\"\nwidth = 320\nheight = 240")
            .validate("source")
            .expect_err("scaled");
        assert!(err.problem.contains("millimetres"), "{err}");
    }

    #[test]
    fn images_are_not_live_finite_and_keep_their_own_size_by_default() {
        let spec = parse("kind = \"images\"\npath = \"data\"")
            .validate("source")
            .expect("valid");
        assert!(!spec.live && spec.finite, "every frame kept, and it ends");
        assert!(spec
            .head
            .starts_with("appsrc name=sonoflow_images is-live=false"));
        assert!(spec.head.contains("block=true"));
        assert!(
            !spec.launch_string().contains("videorate"),
            "the feed stamps its own rate: {}",
            spec.launch_string()
        );
        assert_eq!(spec.fps, Some(30));
        assert!(spec.describe().contains("[images path = \"data\"]"));
        let settings = spec.images.expect("image settings");
        assert_eq!(
            settings,
            ImageSettings {
                path: "data".into(),
                live: false,
                looping: false,
                framerate: (30, 1),
                fixed: None,
            }
        );
        let live =
            parse("kind = \"images\"\npath = \"d/*.png\"\nlive = true\nloop = true\nfps = 29.97")
                .validate("source")
                .expect("valid");
        assert!(live.live && !live.finite && live.head.contains("leaky-type=downstream"));
        let settings = live.images.expect("image settings");
        assert_eq!(
            (settings.framerate, settings.looping),
            ((30000, 1001), true)
        );
        for (text, key) in [
            ("kind = \"images\"", "source.path"),
            (
                "kind = \"images\"\npath = \"d\"\nwidth = 320\nheight = 240",
                "source.width",
            ),
            (
                "kind = \"images\"\npath = \"d\"\nrealtime = true",
                "source.realtime",
            ),
            ("kind = \"images\"\npath = \"d\"\nseed = 1", "source.seed"),
        ] {
            let err = parse(text).validate("source").expect_err(text);
            assert_eq!(err.key, key, "{err}");
        }
    }

    #[test]
    fn calibration_applies_to_every_kind_and_names_its_key() {
        for kind in [
            "kind = \"test\"",
            "kind = \"file\"\npath = \"a.mp4\"",
            "kind = \"v4l2\"",
            "kind = \"rtsp\"\nurl = \"rtsp://cam/probe\"",
            "kind = \"udp\"\nport = 5004",
            "kind = \"launch\"\nlaunch = \"videotestsrc\"",
            "kind = \"phantom\"",
            "kind = \"dicom\"\npath = \"a.dcm\"",
            "kind = \"images\"\npath = \"d\"",
        ] {
            let auto = parse(&format!("{kind}\ncalibration = \"auto\""))
                .validate("source")
                .expect(kind);
            assert!(
                matches!(auto.calibration, Some(CalibrationSetting::Auto(_))),
                "{kind}"
            );
            let fixed = parse(&format!(
                "{kind}\n[calibration]\nregion = [10, 10, 100, 100]\nspacing_mm = 0.1"
            ))
            .validate("source")
            .expect(kind);
            assert!(
                matches!(fixed.calibration, Some(CalibrationSetting::Fixed(_))),
                "{kind}"
            );
            let plain = parse(kind).validate("source").expect(kind);
            assert_eq!(plain.calibration, None, "{kind}: the source's own");
        }
        // The images feed gets the fixed one for its truth's millimetres.
        let images = parse("kind = \"images\"\npath = \"d\"\n[calibration]\nspacing_mm = 0.2")
            .validate("source")
            .expect("valid");
        let fixed = images.images.and_then(|i| i.fixed).expect("fixed");
        assert_eq!(fixed.spacing().x_mm, 0.2);
        for (table, key) in [
            (
                "[calibration]\nregion = [0, 0, 10, 10]",
                "source.calibration",
            ),
            (
                "[calibration]\nruler = [[0, 0], [0, 100]]",
                "source.calibration.ruler_mm",
            ),
            (
                "[calibration]\nspacing_mm = -1.0",
                "source.calibration.spacing_mm",
            ),
            (
                "[calibration]\nmode = \"auto\"\nspacing_mm = 0.1",
                "source.calibration.spacing_mm",
            ),
            (
                "[calibration]\nmode = \"auto\"\nmin_confidence = 2.0",
                "source.calibration.min_confidence",
            ),
        ] {
            let err = parse(&format!("kind = \"test\"\n{table}"))
                .validate("source")
                .expect_err(table);
            assert_eq!(err.key, key, "{table}: {err}");
        }
        let unknown: Result<SourceConfig, _> =
            toml::from_str("kind = \"test\"\ncalibration = \"manual\"");
        assert!(unknown.is_err(), "only \"auto\" or a table");
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
