//! `[server]` in a pipeline definition: the results server. Off unless the
//! section is present (or `sonoflow run --serve ADDR`). All keys need a
//! restart; none applies live.
//!
//! ```toml
//! [server]
//! address = "127.0.0.1:8700"   # any other than loopback needs a token
//! token = "a-long-random-string"
//! queue = 64
//! masks = true
//! static_dir = "viewer"         # default: the viewer built into the binary
//! video = true                  # JPEG frames for the viewer
//! video_fps = 10.0
//! video_quality = 70
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use sonoflow_core::ConfigIssue;

/// Where the server listens unless told.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:8700";
/// Messages queued per client before the oldest is dropped.
pub const DEFAULT_QUEUE: usize = 64;
/// Messages a client may miss in a row before it is disconnected.
pub const DEFAULT_DISCONNECT_AFTER_DROPS: u64 = 300;
/// The largest request accepted (bytes); a larger one gets an error.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 4096;
/// Requests per second a client may send on average, and in a burst.
pub const DEFAULT_REQUESTS_PER_S: f64 = 2.0;
pub const DEFAULT_REQUEST_BURST: u32 = 5;
/// Video frames per second at most (JPEG, for the viewer).
pub const DEFAULT_VIDEO_FPS: f64 = 10.0;
/// JPEG quality, 1 to 100.
pub const DEFAULT_VIDEO_QUALITY: u8 = 70;

/// `[server]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// false turns the section off (default true when the section is present).
    pub enabled: Option<bool>,
    /// host:port to listen on (default 127.0.0.1:8700; port 0 picks a free
    /// one, logged). A non-loopback address needs `token`.
    pub address: Option<String>,
    /// A secret every client presents (`?token=...` or `Authorization:
    /// Bearer ...`). Required off loopback; never logged.
    pub token: Option<String>,
    /// Messages queued per client (default 64). Deeper rides out longer
    /// stalls of a client but holds older frames; the oldest is dropped.
    pub queue: Option<usize>,
    /// Messages a client may miss in a row before it is disconnected with
    /// a reason (default 300: about 10 s of a 30 fps stream).
    pub disconnect_after_drops: Option<u64>,
    /// Send each finding's mask (RLE) with its contour (default false:
    /// smaller messages; the contour already outlines it).
    pub masks: Option<bool>,
    /// A folder served as static files at `/` in place of the browser
    /// viewer built into the binary (default: the built-in viewer).
    pub static_dir: Option<PathBuf>,
    /// The largest request accepted, bytes (default 4096).
    pub max_request_bytes: Option<usize>,
    /// Requests per second per client (default 2), and the burst (default 5).
    pub requests_per_s: Option<f64>,
    pub request_burst: Option<u32>,
    /// Send the frames themselves as JPEG (`VideoFrame`) for the viewer
    /// (default true). Encoding runs on its own thread, never on the frame
    /// path; false saves that CPU and the bandwidth (results only).
    pub video: Option<bool>,
    /// Video frames per second at most (default 10): frames in between are
    /// not copied. Higher is smoother and costs CPU and bandwidth per client.
    pub video_fps: Option<f64>,
    /// JPEG quality, 1 to 100 (default 70): higher is sharper speckle and
    /// larger frames (about 48 kB at 70 for a 640x480 phantom frame).
    pub video_quality: Option<u8>,
}

/// A secret whose value is never printed (Debug shows its length only).
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Compares in time independent of where the first difference is.
    pub fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        let mut diff = a.len() ^ b.len();
        for (i, &x) in a.iter().enumerate() {
            diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
        }
        diff == 0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(<{} characters>)", self.0.len())
    }
}

/// The server's validated options.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub address: SocketAddr,
    pub token: Option<Token>,
    pub queue: usize,
    pub disconnect_after_drops: u64,
    pub masks: bool,
    pub static_dir: Option<PathBuf>,
    pub max_request_bytes: usize,
    pub requests_per_s: f64,
    pub request_burst: u32,
    /// JPEG frames, or None (`video = false`).
    pub video: Option<VideoOptions>,
}

/// How the frames are sent as video.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoOptions {
    /// Frames per second at most.
    pub fps: f64,
    /// JPEG quality, 1 to 100.
    pub quality: u8,
}

impl Default for VideoOptions {
    fn default() -> Self {
        Self {
            fps: DEFAULT_VIDEO_FPS,
            quality: DEFAULT_VIDEO_QUALITY,
        }
    }
}

impl VideoOptions {
    /// The shortest time between two video frames.
    pub fn interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(1.0 / self.fps)
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            address: SocketAddr::from(([127, 0, 0, 1], 8700)),
            token: None,
            queue: DEFAULT_QUEUE,
            disconnect_after_drops: DEFAULT_DISCONNECT_AFTER_DROPS,
            masks: false,
            static_dir: None,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            requests_per_s: DEFAULT_REQUESTS_PER_S,
            request_burst: DEFAULT_REQUEST_BURST,
            video: Some(VideoOptions::default()),
        }
    }
}

impl ServerOptions {
    /// The token rule, checked at load and again at start: nothing listens
    /// beyond this machine without a token. `key`: the token's key.
    pub fn check_token(&self, key: &str) -> Result<(), ConfigIssue> {
        if self.token.is_none() && !self.address.ip().is_loopback() {
            return Err(ConfigIssue::new(
                key,
                format!(
                    "is missing while the server listens on {}, which is not a loopback address",
                    self.address
                ),
                "set a token (clients send it as ?token=... or Authorization: Bearer ...), or listen on 127.0.0.1",
            ));
        }
        Ok(())
    }
}

impl ServerConfig {
    /// The options, or None when the section turns the server off.
    /// `prefix`: the section's key ("server").
    pub fn validate(&self, prefix: &str) -> Result<Option<ServerOptions>, ConfigIssue> {
        if self.enabled == Some(false) {
            return Ok(None);
        }
        let d = ServerOptions::default();
        let text = self.address.as_deref().unwrap_or(DEFAULT_ADDRESS);
        let address: SocketAddr = text.parse().map_err(|_| {
            ConfigIssue::new(
                format!("{prefix}.address"),
                format!("is \"{text}\", not an IP address and port"),
                format!("write it as \"{DEFAULT_ADDRESS}\" (host names are not resolved)"),
            )
        })?;
        let token = match self.token.as_deref() {
            Some("") => {
                return Err(ConfigIssue::new(
                    format!("{prefix}.token"),
                    "is empty",
                    "set a long random string, or remove the key on a loopback address",
                ))
            }
            Some(t) => Some(Token::new(t)),
            None => None,
        };
        let queue = self.queue.unwrap_or(d.queue);
        if !(1..=4096).contains(&queue) {
            return Err(ConfigIssue::new(
                format!("{prefix}.queue"),
                format!("is {queue}"),
                format!("use 1 to 4096 messages ({DEFAULT_QUEUE} by default)"),
            ));
        }
        let disconnect_after_drops = self
            .disconnect_after_drops
            .unwrap_or(d.disconnect_after_drops);
        if disconnect_after_drops == 0 {
            return Err(ConfigIssue::new(
                format!("{prefix}.disconnect_after_drops"),
                "is 0",
                format!("use at least 1 ({DEFAULT_DISCONNECT_AFTER_DROPS} by default)"),
            ));
        }
        let max_request_bytes = self.max_request_bytes.unwrap_or(d.max_request_bytes);
        if !(64..=65_536).contains(&max_request_bytes) {
            return Err(ConfigIssue::new(
                format!("{prefix}.max_request_bytes"),
                format!("is {max_request_bytes}"),
                format!("use 64 to 65536 ({DEFAULT_MAX_REQUEST_BYTES} by default)"),
            ));
        }
        let requests_per_s = self.requests_per_s.unwrap_or(d.requests_per_s);
        if !(requests_per_s.is_finite() && requests_per_s > 0.0) {
            return Err(ConfigIssue::new(
                format!("{prefix}.requests_per_s"),
                format!("is {requests_per_s}"),
                format!("use a positive number ({DEFAULT_REQUESTS_PER_S} by default)"),
            ));
        }
        let request_burst = self.request_burst.unwrap_or(d.request_burst).max(1);
        if let Some(dir) = &self.static_dir {
            if !dir.is_dir() {
                return Err(ConfigIssue::new(
                    format!("{prefix}.static_dir"),
                    format!("is {}, which is not a folder", dir.display()),
                    "name an existing folder, or remove the key",
                ));
            }
        }
        let video = if self.video == Some(false) {
            None
        } else {
            let fps = self.video_fps.unwrap_or(DEFAULT_VIDEO_FPS);
            if !(fps.is_finite() && (0.1..=120.0).contains(&fps)) {
                return Err(ConfigIssue::new(
                    format!("{prefix}.video_fps"),
                    format!("is {fps}"),
                    format!("use 0.1 to 120 frames per second ({DEFAULT_VIDEO_FPS} by default), or video = false"),
                ));
            }
            let quality = self.video_quality.unwrap_or(DEFAULT_VIDEO_QUALITY);
            if !(1..=100).contains(&quality) {
                return Err(ConfigIssue::new(
                    format!("{prefix}.video_quality"),
                    format!("is {quality}"),
                    format!("use 1 to 100 ({DEFAULT_VIDEO_QUALITY} by default)"),
                ));
            }
            Some(VideoOptions { fps, quality })
        };
        let options = ServerOptions {
            address,
            token,
            queue,
            disconnect_after_drops,
            masks: self.masks.unwrap_or(d.masks),
            static_dir: self.static_dir.clone(),
            max_request_bytes,
            requests_per_s,
            request_burst,
            video,
        };
        options.check_token(&format!("{prefix}.token"))?;
        Ok(Some(options))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(address: &str, token: Option<&str>) -> ServerConfig {
        ServerConfig {
            address: Some(address.into()),
            token: token.map(Into::into),
            ..ServerConfig::default()
        }
    }

    #[test]
    fn loopback_needs_no_token_and_anything_else_does() {
        let on = config("127.0.0.1:0", None)
            .validate("server")
            .expect("valid");
        assert!(on.is_some_and(|o| o.token.is_none()));
        let err = config("0.0.0.0:8700", None)
            .validate("server")
            .expect_err("refused");
        assert_eq!(err.key, "server.token");
        assert!(err.problem.contains("0.0.0.0:8700"), "{err}");
        assert!(config("0.0.0.0:8700", Some("s3cret"))
            .validate("server")
            .is_ok());
        assert_eq!(
            config("[::1]:0", None)
                .validate("server")
                .map(|o| o.is_some()),
            Ok(true)
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let key = |c: ServerConfig| c.validate("server").expect_err("invalid").key;
        assert_eq!(key(config("localhost:80", None)), "server.address");
        assert_eq!(key(config("127.0.0.1:1", Some(""))), "server.token");
        assert_eq!(
            key(ServerConfig {
                queue: Some(0),
                ..ServerConfig::default()
            }),
            "server.queue"
        );
        assert_eq!(
            key(ServerConfig {
                video_fps: Some(0.0),
                ..ServerConfig::default()
            }),
            "server.video_fps"
        );
        assert_eq!(
            key(ServerConfig {
                video_quality: Some(0),
                ..ServerConfig::default()
            }),
            "server.video_quality"
        );
        let on = ServerConfig::default().validate("server").expect("valid");
        assert_eq!(on.and_then(|o| o.video), Some(VideoOptions::default()));
        let no_video = ServerConfig {
            video: Some(false),
            ..ServerConfig::default()
        };
        assert!(no_video
            .validate("server")
            .expect("valid")
            .is_some_and(|o| o.video.is_none()));
        let off = ServerConfig {
            enabled: Some(false),
            ..ServerConfig::default()
        };
        assert!(off.validate("server").expect("valid").is_none());
    }

    #[test]
    fn a_token_is_compared_whole_and_never_printed() {
        let t = Token::new("abc123");
        assert!(t.matches("abc123"));
        assert!(!t.matches("abc12"));
        assert!(!t.matches("abc1234"));
        assert!(!t.matches(""));
        let shown = format!(
            "{:?}",
            ServerOptions {
                token: Some(t),
                ..ServerOptions::default()
            }
        );
        assert!(!shown.contains("abc123"), "{shown}");
    }
}
