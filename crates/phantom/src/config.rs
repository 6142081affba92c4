//! What to simulate: probe, depth preset, scene and display settings.

use serde::{Deserialize, Serialize};
use sonoflow_core::ConfigIssue;

use crate::appearance::{Anatomy, Imaging, Variation};

/// Probe geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    /// Rectangular image, 7.5 MHz, 38 mm footprint: breast, thyroid, vessels.
    Linear,
    /// A fan from a 40 mm radius array, 3.5 MHz, 60 degrees: abdomen.
    Convex,
}

impl ProbeKind {
    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Linear => "linear",
            ProbeKind::Convex => "convex",
        }
    }
}

/// Depth presets in centimetres; each gives an exact pixel spacing.
pub const DEPTH_PRESETS_CM: [u32; 5] = [3, 4, 5, 6, 8];

/// Which kinds of lesion a scene may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LesionKind {
    /// Anechoic, circumscribed, posterior enhancement.
    SimpleCyst,
    /// A cyst with a solid component.
    ComplexCyst,
    /// Oval, circumscribed, parallel, hypo- or isoechoic (fibroadenoma-like).
    BenignSolid,
    /// Irregular, not circumscribed, often not parallel, shadowing (carcinoma-like).
    MalignantSolid,
}

impl LesionKind {
    pub const ALL: [LesionKind; 4] = [
        LesionKind::SimpleCyst,
        LesionKind::ComplexCyst,
        LesionKind::BenignSolid,
        LesionKind::MalignantSolid,
    ];
}

/// What the probe looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SceneKind {
    /// Skin, fat, gland and muscle layers with lesions.
    #[default]
    Breast,
    /// One homogeneous tissue, no lesions: a speckle calibration phantom.
    Uniform,
}

/// Everything that defines a phantom sequence. The same config and seed
/// give the same frames and ground truth, bit for bit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PhantomConfig {
    pub probe: ProbeKind,
    pub scene: SceneKind,
    /// Imaging depth in cm; one of 3, 4, 5, 6, 8.
    pub depth_cm: u32,
    pub seed: u64,
    /// Lesions in the scene (0 to 3).
    pub lesions: u32,
    /// Restrict lesions to one kind; unset draws each kind at random.
    pub lesion_kind: Option<LesionKind>,
    /// Frame size in pixels (the cart's whole screen, not just the image).
    pub width: u32,
    pub height: u32,
    /// Frames per second of the cine; motion is defined in seconds.
    pub fps: u32,
    /// Overall gain in dB added after time-gain compensation.
    pub gain_db: f32,
    /// Dynamic range of the log compression, in dB.
    pub dynamic_range_db: f32,
    /// Probe motion, tissue breathing and elevation drift (false: a still probe).
    pub motion: bool,
    /// The scanner's look (beamforming, PSF, speckle, TGC, grey map, standoff).
    pub imaging: Imaging,
    /// Lesion echogenicity, size and position; shadows without a lesion.
    pub anatomy: Anatomy,
    /// Draw `imaging` and `anatomy` from the seed within these bands
    /// instead of taking them as given (a varied live source).
    pub variation: Option<Variation>,
}

impl Default for PhantomConfig {
    fn default() -> Self {
        Self {
            probe: ProbeKind::Linear,
            scene: SceneKind::Breast,
            depth_cm: 4,
            seed: 1,
            lesions: 1,
            lesion_kind: None,
            width: 640,
            height: 480,
            fps: 30,
            gain_db: 0.0,
            dynamic_range_db: 55.0,
            motion: true,
            imaging: Imaging::default(),
            anatomy: Anatomy::default(),
            variation: None,
        }
    }
}

impl PhantomConfig {
    /// Checks the settings; `prefix` is the key path of the section.
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigIssue> {
        let key = |k: &str| format!("{prefix}.{k}");
        if !DEPTH_PRESETS_CM.contains(&self.depth_cm) {
            return Err(ConfigIssue::new(
                key("depth_cm"),
                format!("{} is not a depth preset", self.depth_cm),
                format!("use one of {DEPTH_PRESETS_CM:?}"),
            ));
        }
        if self.lesions > 3 {
            return Err(ConfigIssue::new(
                key("lesions"),
                format!("is {}", self.lesions),
                "use 0 to 3",
            ));
        }
        if self.width < 320 || self.height < 240 || self.width > 3840 || self.height > 2160 {
            return Err(ConfigIssue::new(
                key("width"),
                format!(
                    "{}x{} is outside 320x240 to 3840x2160",
                    self.width, self.height
                ),
                "use e.g. width = 640, height = 480",
            ));
        }
        if self.fps == 0 || self.fps > 240 {
            return Err(ConfigIssue::new(
                key("fps"),
                format!("is {}", self.fps),
                "use 1 to 240",
            ));
        }
        if !(20.0..=100.0).contains(&self.dynamic_range_db) {
            return Err(ConfigIssue::new(
                key("dynamic_range_db"),
                format!("is {}", self.dynamic_range_db),
                "use 20 to 100 (55 is typical)",
            ));
        }
        if !(-30.0..=30.0).contains(&self.gain_db) {
            return Err(ConfigIssue::new(
                key("gain_db"),
                format!("is {}", self.gain_db),
                "use -30 to 30",
            ));
        }
        self.imaging.validate(&key("imaging"))?;
        self.anatomy.validate(&key("anatomy"))?;
        if let Some(v) = &self.variation {
            v.validate(&key("variation"))?;
        }
        Ok(())
    }

    /// The settings with `variation` applied: `imaging` and `anatomy` drawn
    /// from the seed (the frame size, gain and lesion count stay as set).
    pub fn resolved(&self) -> PhantomConfig {
        let Some(variation) = &self.variation else {
            return self.clone();
        };
        let drawn = variation.draw(self.seed);
        PhantomConfig {
            imaging: drawn.imaging,
            anatomy: drawn.anatomy,
            variation: None,
            ..self.clone()
        }
    }

    /// Centre frequency of the probe in MHz.
    pub fn frequency_mhz(&self) -> f64 {
        let nominal = match self.probe {
            ProbeKind::Linear => 7.5,
            ProbeKind::Convex => 3.5,
        };
        nominal * f64::from(self.imaging.frequency_scale)
    }

    pub fn depth_mm(&self) -> f64 {
        f64::from(self.depth_cm) * 10.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_bad_depth_names_the_key() {
        PhantomConfig::default()
            .validate("source")
            .expect("default valid");
        let bad = PhantomConfig {
            depth_cm: 7,
            ..PhantomConfig::default()
        };
        assert_eq!(
            bad.validate("source").expect_err("7 cm").key,
            "source.depth_cm"
        );
    }
}
