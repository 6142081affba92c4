//! `[perception]` of a pipeline definition: how model outputs become
//! findings. Unset keys take [`PerceptionOptions::default`]; perception is
//! on unless `enabled = false`.

use serde::Deserialize;
use sonoflow_core::ConfigIssue;

use crate::{PerceptionOptions, Smoothing, ThresholdBand};

/// `[perception]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerceptionConfig {
    /// Turn model outputs into findings (default true). Off, frames carry the
    /// raw model outputs only: no findings, calipers, self-check or
    /// reasoning (a raw-inference benchmark, or findings made downstream).
    pub enabled: Option<bool>,
    /// Fit an ellipse to each segment and report its circumference (default
    /// [`PerceptionOptions::default`]: off; it costs a fit per segment).
    pub ellipse: Option<bool>,
    /// Steady calipers across frames (default on): smoothed calipers lag a
    /// moving probe slightly but do not flicker.
    pub smoothing: Option<bool>,
    /// Weight of the newest frame in the caliper average, above 0 and at most
    /// 1 (default [`Smoothing::default`]'s alpha): higher follows faster, lower is steadier.
    pub smoothing_alpha: Option<f32>,
    /// Probabilities the mask is re-cut at for a measurement's uncertainty
    /// (default [`ThresholdBand::default`]): a wider band gives larger "±".
    pub uncertainty_thresholds: Option<[f32; 2]>,
    /// Findings under this area in mm² are not shown on a calibrated frame
    /// (default [`crate::MIN_FINDING_AREA_MM2`]; 0 shows them all).
    pub min_finding_area_mm2: Option<f32>,
    /// The self-check counts lesions whose truth conspicuity is under this
    /// neither as found nor as missed (default: none; every lesion counts).
    /// A lesion under about 4 is one no searching observer could find in its
    /// frame (docs/phantom.md); `sonoflow eval --ignore-faint-below`.
    pub ignore_faint_below: Option<f32>,
    /// The probability the segmentation and detection masks are cut at
    /// (default [`crate::MASK_THRESHOLD`]), strictly inside
    /// `uncertainty_thresholds`: lower grows findings, higher shrinks them.
    pub mask_threshold: Option<f32>,
}

impl PerceptionConfig {
    /// The options, or `None` when perception is off (`enabled = false`;
    /// the other keys are still checked: a bad value is a mistake either way).
    pub fn validate(&self) -> Result<Option<PerceptionOptions>, ConfigIssue> {
        let defaults = PerceptionOptions::default();
        let alpha = self.smoothing_alpha.unwrap_or(Smoothing::default().alpha);
        if !(alpha > 0.0 && alpha <= 1.0) {
            return Err(ConfigIssue::new(
                "perception.smoothing_alpha",
                format!("is {alpha}"),
                "use a weight above 0 and at most 1 (1: no smoothing)",
            ));
        }
        let band = match self.uncertainty_thresholds {
            Some([low, high]) if 0.0 < low && low < 0.5 && 0.5 < high && high < 1.0 => {
                ThresholdBand { low, high }
            }
            Some([low, high]) => {
                let d = ThresholdBand::default();
                return Err(ConfigIssue::new(
                    "perception.uncertainty_thresholds",
                    format!("is [{low}, {high}]"),
                    format!(
                        "use a probability below 0.5 and one above it, e.g. [{}, {}]",
                        d.low, d.high
                    ),
                ));
            }
            None => defaults.band,
        };
        let min_finding_area_mm2 = self
            .min_finding_area_mm2
            .unwrap_or(defaults.min_finding_area_mm2);
        if !(min_finding_area_mm2.is_finite() && min_finding_area_mm2 >= 0.0) {
            return Err(ConfigIssue::new(
                "perception.min_finding_area_mm2",
                format!("is {min_finding_area_mm2}"),
                format!(
                    "use an area in mm² of 0 or more (0 shows every finding; default {})",
                    crate::MIN_FINDING_AREA_MM2
                ),
            ));
        }
        if let Some(z) = self.ignore_faint_below {
            if !(z.is_finite() && z > 0.0) {
                return Err(ConfigIssue::new(
                    "perception.ignore_faint_below",
                    format!("is {z}"),
                    "use a conspicuity above 0, e.g. 4 (lesions under it count neither as found nor as missed), or leave it out to count every lesion",
                ));
            }
        }
        let mask_threshold = self.mask_threshold.unwrap_or(defaults.mask_threshold);
        if !(band.low < mask_threshold && mask_threshold < band.high) {
            return Err(ConfigIssue::new(
                "perception.mask_threshold",
                format!("is {mask_threshold}"),
                format!(
                    "use a probability strictly between the uncertainty_thresholds [{}, {}] (default {})",
                    band.low,
                    band.high,
                    crate::MASK_THRESHOLD
                ),
            ));
        }
        let smoothing = self
            .smoothing
            .unwrap_or(defaults.smoothing.is_some())
            .then_some(Smoothing {
                alpha,
                ..defaults.smoothing.unwrap_or_default()
            });
        let options = PerceptionOptions {
            ellipse: self.ellipse.unwrap_or(defaults.ellipse),
            smoothing,
            band,
            min_finding_area_mm2,
            ignore_faint_below: self.ignore_faint_below,
            mask_threshold,
            ..defaults
        };
        Ok(self.enabled.unwrap_or(true).then_some(options))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perception_keys_are_checked() {
        let ok = PerceptionConfig {
            ellipse: Some(true),
            uncertainty_thresholds: Some([0.2, 0.8]),
            ..PerceptionConfig::default()
        };
        let o = ok.validate().expect("valid").expect("on by default");
        assert!(o.ellipse && o.smoothing.is_some());
        assert_eq!(
            o.band,
            ThresholdBand {
                low: 0.2,
                high: 0.8
            }
        );
        let off = PerceptionConfig {
            smoothing: Some(false),
            ..PerceptionConfig::default()
        }
        .validate()
        .expect("valid")
        .expect("on by default");
        assert!(off.smoothing.is_none());
        let raw = PerceptionConfig {
            enabled: Some(false),
            ..PerceptionConfig::default()
        };
        assert_eq!(raw.validate().expect("valid"), None);
        let raw_but_bad = PerceptionConfig {
            enabled: Some(false),
            smoothing_alpha: Some(2.0),
            ..PerceptionConfig::default()
        };
        assert_eq!(
            raw_but_bad
                .validate()
                .expect_err("checked even when off")
                .key,
            "perception.smoothing_alpha"
        );
        let bad = PerceptionConfig {
            uncertainty_thresholds: Some([0.6, 0.7]),
            ..PerceptionConfig::default()
        };
        assert_eq!(
            bad.validate().expect_err("invalid").key,
            "perception.uncertainty_thresholds"
        );
        let bad = PerceptionConfig {
            min_finding_area_mm2: Some(-1.0),
            ..PerceptionConfig::default()
        };
        assert_eq!(
            bad.validate().expect_err("invalid").key,
            "perception.min_finding_area_mm2"
        );
        let bad = PerceptionConfig {
            smoothing_alpha: Some(0.0),
            ..PerceptionConfig::default()
        };
        assert_eq!(
            bad.validate().expect_err("invalid").key,
            "perception.smoothing_alpha"
        );
        for z in [0.0, -2.0, f32::NAN] {
            let bad = PerceptionConfig {
                ignore_faint_below: Some(z),
                ..PerceptionConfig::default()
            };
            assert_eq!(
                bad.validate().expect_err("invalid").key,
                "perception.ignore_faint_below"
            );
        }
        let cut = PerceptionConfig {
            ignore_faint_below: Some(4.0),
            ..PerceptionConfig::default()
        };
        let options = cut.validate().expect("valid").expect("on");
        assert_eq!(options.ignore_faint_below, Some(4.0));
        for t in [0.3, 0.7, 0.9, f32::NAN] {
            let bad = PerceptionConfig {
                mask_threshold: Some(t),
                ..PerceptionConfig::default()
            };
            assert_eq!(
                bad.validate().expect_err("invalid").key,
                "perception.mask_threshold",
                "{t}"
            );
        }
        let lower = PerceptionConfig {
            mask_threshold: Some(0.4),
            ..PerceptionConfig::default()
        };
        assert_eq!(
            lower.validate().expect("valid").expect("on").mask_threshold,
            0.4
        );
    }

    #[test]
    fn unset_keys_are_the_options_defaults() {
        let o = PerceptionConfig::default()
            .validate()
            .expect("valid")
            .expect("on by default");
        assert_eq!(o, PerceptionOptions::default());
    }
}
