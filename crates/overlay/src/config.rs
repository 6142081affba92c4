//! `[overlay]` in a pipeline definition.

use std::time::Duration;

use serde::Deserialize;
use sonoflow_core::ConfigIssue;

/// `[overlay]` as written. Every key is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverlayConfig {
    /// Draw the overlay (default: on when the process stage runs a model).
    pub enabled: Option<bool>,
    /// Findings older than this fade and are marked stale (default 250 ms).
    pub stale_after_ms: Option<u64>,
    /// No fresh result for this long: the "AI paused" banner (default 1000 ms).
    pub paused_after_ms: Option<u64>,
    /// Stale findings are no longer drawn after this (default 5000 ms).
    pub forget_after_ms: Option<u64>,
    /// Opacity of the mask fill, 0 to 1 (default 0.3).
    pub mask_opacity: Option<f32>,
    /// Opacity stale findings fade to, 0 to 1 (default 0.4).
    pub stale_opacity: Option<f32>,
    /// Text size in pixels (default: the frame height / 34, 11 to 40).
    pub font_px: Option<f32>,
    /// The latency HUD, top right (default true).
    pub hud: Option<bool>,
    /// The findings and interpretation panel, bottom left (default true).
    pub panel: Option<bool>,
    /// A scale bar (5 mm to 5 cm) beside the image, from the frame's own
    /// calibration; never drawn on an uncalibrated frame (default true).
    pub scale_bar: Option<bool>,
    /// Report clauses (by key) the panel shows first and never cuts
    /// (default ["assessment", "long axis", "short axis"]); the rest follow
    /// and are cut with "…" when the panel's rows run out.
    pub panel_first: Option<Vec<String>>,
}

/// A validated `[overlay]`.
#[derive(Debug, Clone, PartialEq)]
pub struct OverlayOptions {
    pub stale_after: Duration,
    pub paused_after: Duration,
    pub forget_after: Duration,
    pub mask_opacity: f32,
    pub stale_opacity: f32,
    pub font_px: Option<f32>,
    pub hud: bool,
    pub panel: bool,
    pub scale_bar: bool,
    /// Report clauses shown first in the panel and never cut.
    pub panel_first: Vec<String>,
    /// Whether an AI result is expected on every frame (a model runs);
    /// only then can the AI be "paused".
    pub ai_expected: bool,
}

impl Default for OverlayOptions {
    fn default() -> Self {
        Self {
            stale_after: Duration::from_millis(250),
            paused_after: Duration::from_millis(1000),
            forget_after: Duration::from_millis(5000),
            mask_opacity: 0.3,
            stale_opacity: 0.4,
            font_px: None,
            hud: true,
            panel: true,
            scale_bar: true,
            panel_first: ["assessment", "long axis", "short axis"]
                .map(String::from)
                .to_vec(),
            ai_expected: true,
        }
    }
}

impl OverlayConfig {
    /// The options, or None when the overlay is off. `model` says whether
    /// the process stage runs a model (the overlay's default).
    pub fn validate(&self, model: bool) -> Result<Option<OverlayOptions>, ConfigIssue> {
        let d = OverlayOptions::default();
        for (key, v) in [
            ("overlay.mask_opacity", self.mask_opacity),
            ("overlay.stale_opacity", self.stale_opacity),
        ] {
            if v.is_some_and(|v| !(0.0..=1.0).contains(&v)) {
                return Err(ConfigIssue::new(
                    key,
                    format!("is {}", v.unwrap_or_default()),
                    "use a value from 0 (invisible) to 1 (opaque)",
                ));
            }
        }
        if let Some(px) = self.font_px.filter(|px| !(6.0..=96.0).contains(px)) {
            return Err(ConfigIssue::new(
                "overlay.font_px",
                format!("is {px}"),
                "use 6 to 96 pixels, or leave it out to follow the frame height",
            ));
        }
        let ms = |v: Option<u64>, default: Duration| v.map_or(default, Duration::from_millis);
        let options = OverlayOptions {
            stale_after: ms(self.stale_after_ms, d.stale_after),
            paused_after: ms(self.paused_after_ms, d.paused_after),
            forget_after: ms(self.forget_after_ms, d.forget_after),
            mask_opacity: self.mask_opacity.unwrap_or(d.mask_opacity),
            stale_opacity: self.stale_opacity.unwrap_or(d.stale_opacity),
            font_px: self.font_px,
            hud: self.hud.unwrap_or(true),
            panel: self.panel.unwrap_or(true),
            scale_bar: self.scale_bar.unwrap_or(true),
            panel_first: self.panel_first.clone().unwrap_or(d.panel_first),
            ai_expected: model,
        };
        if options.paused_after < options.stale_after {
            return Err(ConfigIssue::new(
                "overlay.paused_after_ms",
                format!("({} ms) is shorter than stale_after_ms ({} ms)", options.paused_after.as_millis(), options.stale_after.as_millis()),
                "findings go stale before the AI counts as paused: make paused_after_ms at least stale_after_ms",
            ));
        }
        // Checked even when off: a bad value is a mistake either way.
        Ok(self.enabled.unwrap_or(model).then_some(options))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_whether_a_model_runs() {
        assert!(OverlayConfig::default()
            .validate(false)
            .expect("valid")
            .is_none());
        let on = OverlayConfig::default()
            .validate(true)
            .expect("valid")
            .expect("on");
        assert_eq!(on, OverlayOptions::default());
        let forced = OverlayConfig {
            enabled: Some(true),
            ..OverlayConfig::default()
        }
        .validate(false)
        .expect("valid")
        .expect("on");
        assert!(!forced.ai_expected);
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = OverlayConfig {
            mask_opacity: Some(1.5),
            ..OverlayConfig::default()
        }
        .validate(true)
        .expect_err("invalid");
        assert_eq!(e.key, "overlay.mask_opacity");
        let e = OverlayConfig {
            stale_after_ms: Some(2000),
            ..OverlayConfig::default()
        }
        .validate(true)
        .expect_err("invalid");
        assert_eq!(e.key, "overlay.paused_after_ms");
        let e = OverlayConfig {
            font_px: Some(2.0),
            ..OverlayConfig::default()
        }
        .validate(true)
        .expect_err("invalid");
        assert_eq!(e.key, "overlay.font_px");
    }
}
