//! How varied the phantom is: the scanner's look ([`Imaging`]: beamforming,
//! point-spread function, speckle regime, gain, TGC, grey map, a standoff
//! that starts the image below the skin) and the scene's variety
//! ([`Anatomy`]: lesion echogenicity, size and position, shadows without a
//! lesion). The defaults are the original phantom exactly; [`Variation`]
//! draws both from a seed, within bands that a training set and a held-out
//! stress set can keep apart (a look or a contrast band never trained on).
//!
//! Every knob is plain data in [`crate::PhantomConfig`], so a drawn scene
//! is recorded in full in an export's manifest and reproduced by its seed.

use serde::{Deserialize, Serialize};
use sonoflow_core::ConfigIssue;

use crate::rng::Rng;

/// How the scanner forms its image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Look {
    /// Line-by-line focused transmit: sharpest at the focus, widening away from it.
    #[default]
    Focused,
    /// Plane-wave compounding: a beam almost as wide at every depth, smoother
    /// speckle (incoherent compounding) and more clutter.
    PlaneWave,
    /// Tissue harmonic imaging: a narrower beam, a longer pulse, less clutter,
    /// a darker near field (the harmonic builds up with depth).
    Harmonic,
}

impl Look {
    pub const ALL: [Look; 3] = [Look::Focused, Look::PlaneWave, Look::Harmonic];

    pub fn name(self) -> &'static str {
        match self {
            Look::Focused => "focused",
            Look::PlaneWave => "plane_wave",
            Look::Harmonic => "harmonic",
        }
    }

    pub fn parse(s: &str) -> Option<Look> {
        Look::ALL.into_iter().find(|l| l.name() == s)
    }
}

/// The scanner's settings and image formation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Imaging {
    pub look: Look,
    /// Share of grid cells (0.1 mm) that hold a scatterer: 1 is fully
    /// developed speckle; lower is sparser, spikier speckle.
    pub scatterer_density: f32,
    /// Lateral beam width as a multiple of the probe's own.
    pub lateral_scale: f32,
    /// Pulse length (axial resolution) as a multiple of one wavelength.
    pub axial_scale: f32,
    /// Transmit focus as a fraction of the image depth; unset: the probe's own.
    pub focus_fraction: Option<f32>,
    /// Centre frequency as a multiple of the probe's nominal one.
    pub frequency_scale: f32,
    /// Image width (linear footprint, convex fan angle) as a multiple of the probe's.
    pub aperture_scale: f32,
    /// Time-gain compensation error in dB at the top, a third, two thirds
    /// and the bottom of the image (interpolated between): the sliders.
    pub tgc_db: [f32; 4],
    /// Acoustic clutter (reverberation, side lobes) power relative to
    /// glandular tissue, in dB: it greys out anechoic regions.
    pub clutter_db: f32,
    /// Grey map exponent applied to the log-compressed image (1: linear).
    pub gamma: f32,
    /// Speckle-reduction filter strength, 0 (off) to 1.
    pub smoothing: f32,
    /// The image starts this far below the skin (a standoff or a crop that
    /// leaves the skin line out), in mm.
    pub depth_offset_mm: f32,
}

impl Default for Imaging {
    fn default() -> Self {
        Self {
            look: Look::Focused,
            scatterer_density: 1.0,
            lateral_scale: 1.0,
            axial_scale: 1.0,
            focus_fraction: None,
            frequency_scale: 1.0,
            aperture_scale: 1.0,
            tgc_db: [0.0; 4],
            clutter_db: -100.0,
            gamma: 1.0,
            smoothing: 0.0,
            depth_offset_mm: 0.0,
        }
    }
}

/// What the scene may hold beyond the layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Anatomy {
    /// Solid lesions draw their echogenicity (dB against glandular tissue)
    /// from these bands; the echo pattern follows from the value (below
    /// -25 dB anechoic, to -3 hypoechoic, to +3 isoechoic, above
    /// hyperechoic). Empty: each lesion kind's fixed echogenicity.
    pub contrast_bands_db: Vec<[f32; 2]>,
    /// Lesion long axis range in mm; unset: 6 mm to 40 % of the depth.
    pub lesion_size_mm: Option<[f32; 2]>,
    /// Lesions anywhere in the image, not only in the gland.
    pub anywhere: bool,
    /// Shadowing structures without a lesion (ribs, thick Cooper's
    /// ligaments), 0 to 3.
    pub shadows: u32,
}

/// Contrast (dB against glandular tissue) where the echo patterns meet.
pub const ANECHOIC_BELOW_DB: f32 = -25.0;
pub const HYPOECHOIC_BELOW_DB: f32 = -3.0;
pub const ISOECHOIC_BELOW_DB: f32 = 3.0;

impl Imaging {
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigIssue> {
        let checks: [(&str, f32, f32, f32); 9] = [
            ("scatterer_density", self.scatterer_density, 0.01, 1.0),
            ("lateral_scale", self.lateral_scale, 0.3, 4.0),
            ("axial_scale", self.axial_scale, 0.3, 4.0),
            ("frequency_scale", self.frequency_scale, 0.5, 2.0),
            ("aperture_scale", self.aperture_scale, 0.5, 1.5),
            ("clutter_db", self.clutter_db, -100.0, 0.0),
            ("gamma", self.gamma, 0.3, 3.0),
            ("smoothing", self.smoothing, 0.0, 1.0),
            ("depth_offset_mm", self.depth_offset_mm, 0.0, 40.0),
        ];
        for (name, value, lo, hi) in checks {
            in_range(prefix, name, value, lo, hi)?;
        }
        if let Some(f) = self.focus_fraction {
            in_range(prefix, "focus_fraction", f, 0.05, 1.0)?;
        }
        for db in self.tgc_db {
            in_range(prefix, "tgc_db", db, -20.0, 20.0)?;
        }
        Ok(())
    }
}

impl Anatomy {
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigIssue> {
        for &[lo, hi] in &self.contrast_bands_db {
            if !(lo <= hi && lo >= -60.0 && hi <= 30.0) {
                return Err(ConfigIssue::new(
                    format!("{prefix}.contrast_bands_db"),
                    format!("[{lo}, {hi}] is not a band within -60 to 30 dB"),
                    "give [low, high] pairs, e.g. [[-40, 12]]",
                ));
            }
        }
        if let Some([lo, hi]) = self.lesion_size_mm {
            if !(lo <= hi && lo >= 1.0 && hi <= 60.0) {
                return Err(ConfigIssue::new(
                    format!("{prefix}.lesion_size_mm"),
                    format!("[{lo}, {hi}] is not a range within 1 to 60 mm"),
                    "give [shortest, longest], e.g. [3, 30]",
                ));
            }
        }
        if self.shadows > 3 {
            return Err(ConfigIssue::new(
                format!("{prefix}.shadows"),
                format!("is {}", self.shadows),
                "use 0 to 3",
            ));
        }
        Ok(())
    }

    /// Whether any band reaches into [lo, hi].
    pub fn reaches(&self, lo: f32, hi: f32) -> bool {
        self.contrast_bands_db
            .iter()
            .any(|&[a, b]| a.max(lo) <= b.min(hi))
    }

    /// A contrast drawn uniformly from the union of the bands clipped to
    /// [lo, hi]; `None` when no band reaches into [lo, hi].
    pub(crate) fn draw_contrast(&self, lo: f32, hi: f32, rng: &mut Rng) -> Option<f32> {
        let clipped: Vec<(f32, f32)> = self
            .contrast_bands_db
            .iter()
            .map(|&[a, b]| (a.max(lo), b.min(hi)))
            .filter(|(a, b)| a <= b)
            .collect();
        let total: f32 = clipped.iter().map(|(a, b)| b - a).sum();
        if clipped.is_empty() {
            return None;
        }
        let mut t = rng.uniform() as f32 * total;
        for &(a, b) in &clipped {
            if t <= b - a {
                return Some(a + t);
            }
            t -= b - a;
        }
        clipped.last().map(|&(_, b)| b)
    }
}

fn in_range(prefix: &str, name: &str, value: f32, lo: f32, hi: f32) -> Result<(), ConfigIssue> {
    if (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(ConfigIssue::new(
            format!("{prefix}.{name}"),
            format!("is {value}"),
            format!("use {lo} to {hi}"),
        ))
    }
}

/// The bands a randomised phantom draws its look and scene from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Variation {
    /// Beamforming looks to draw from.
    pub looks: Vec<Look>,
    /// Lesion contrast bands in dB (solid lesions draw from their union).
    pub contrast_bands_db: Vec<[f32; 2]>,
}

impl Default for Variation {
    fn default() -> Self {
        Self {
            looks: Look::ALL.to_vec(),
            contrast_bands_db: vec![[-40.0, 12.0]],
        }
    }
}

/// One drawn look and scene variety.
#[derive(Debug, Clone, PartialEq)]
pub struct Drawn {
    pub imaging: Imaging,
    pub anatomy: Anatomy,
    /// Lesions in the scene, 0 to 3.
    pub lesions: u32,
    /// Frame size.
    pub width: u32,
    pub height: u32,
    pub gain_db: f32,
    pub dynamic_range_db: f32,
}

/// Frame sizes a randomised export draws from (4:3, 16:10, 16:9, 5:4 and
/// one portrait-ish cart screen).
const FRAME_SIZES: [(u32, u32); 7] = [
    (640, 480),
    (480, 360),
    (800, 600),
    (768, 480),
    (854, 480),
    (640, 512),
    (512, 600),
];

impl Variation {
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigIssue> {
        if self.looks.is_empty() {
            return Err(ConfigIssue::new(
                format!("{prefix}.looks"),
                "is empty",
                "name at least one of focused, plane_wave, harmonic",
            ));
        }
        Anatomy {
            contrast_bands_db: self.contrast_bands_db.clone(),
            ..Anatomy::default()
        }
        .validate(prefix)
    }

    /// Draws every knob from `seed`.
    pub fn draw(&self, seed: u64) -> Drawn {
        self.draw_from(&mut Rng::fork(seed, 7))
    }

    pub(crate) fn draw_from(&self, rng: &mut Rng) -> Drawn {
        let look = rng.pick(&self.looks);
        let (lateral, axial, clutter) = match look {
            Look::Focused => (
                rng.range(0.7, 2.2),
                rng.range(0.8, 1.8),
                rng.range(-45.0, -22.0),
            ),
            Look::PlaneWave => (
                rng.range(1.0, 2.5),
                rng.range(0.8, 1.6),
                rng.range(-35.0, -18.0),
            ),
            Look::Harmonic => (
                rng.range(0.55, 1.4),
                rng.range(1.1, 2.2),
                rng.range(-55.0, -30.0),
            ),
        };
        // Sparse to fully developed speckle, most of the mass near full.
        let density = if rng.chance(0.3) {
            rng.range(0.03, 0.4)
        } else {
            rng.range(0.4, 1.0)
        };
        let slope = rng.range(-4.0, 4.0);
        let tgc_db =
            [0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0].map(|t| (slope * t + rng.range(-2.5, 2.5)) as f32);
        let depth_offset_mm = if rng.chance(0.35) {
            rng.range(0.5, 15.0)
        } else {
            0.0
        };
        let imaging = Imaging {
            look,
            scatterer_density: density as f32,
            lateral_scale: lateral as f32,
            axial_scale: axial as f32,
            focus_fraction: Some(rng.range(0.2, 0.8) as f32),
            frequency_scale: rng.range(0.75, 1.35) as f32,
            aperture_scale: rng.range(0.7, 1.3) as f32,
            tgc_db,
            clutter_db: clutter as f32,
            gamma: rng.range(0.6, 1.6) as f32,
            smoothing: if rng.chance(0.5) {
                rng.range(0.0, 0.9) as f32
            } else {
                0.0
            },
            depth_offset_mm: depth_offset_mm as f32,
        };
        let anatomy = Anatomy {
            contrast_bands_db: self.contrast_bands_db.clone(),
            lesion_size_mm: Some([3.0, 30.0]),
            anywhere: rng.chance(0.5),
            shadows: rng.pick(&[0, 0, 0, 1, 1, 2]),
        };
        let lesions = rng.pick(&[0, 1, 1, 1, 1, 2, 2, 3]);
        let (width, height) = rng.pick(&FRAME_SIZES);
        Drawn {
            imaging,
            anatomy,
            lesions,
            width,
            height,
            gain_db: rng.range(-9.0, 9.0).round() as f32,
            dynamic_range_db: rng.range(40.0, 75.0).round() as f32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        Imaging::default()
            .validate("source.imaging")
            .expect("valid");
        Anatomy::default()
            .validate("source.anatomy")
            .expect("valid");
        let bad = Imaging {
            gamma: 9.0,
            ..Imaging::default()
        };
        assert_eq!(
            bad.validate("source.imaging").expect_err("gamma").key,
            "source.imaging.gamma"
        );
    }

    #[test]
    fn contrast_draws_stay_in_the_clipped_bands() {
        let anatomy = Anatomy {
            contrast_bands_db: vec![[-40.0, 5.0], [8.0, 12.0]],
            ..Anatomy::default()
        };
        let mut rng = Rng::new(3);
        for _ in 0..2000 {
            let c = anatomy
                .draw_contrast(-25.0, 30.0, &mut rng)
                .expect("overlaps");
            assert!(
                (-25.0..=5.0).contains(&c) || (8.0..=12.0).contains(&c),
                "{c}"
            );
        }
        assert_eq!(anatomy.draw_contrast(6.0, 7.0, &mut rng), None);
    }

    #[test]
    fn drawn_looks_stay_within_the_variation_and_validate() {
        let variation = Variation {
            looks: vec![Look::PlaneWave],
            ..Variation::default()
        };
        for seed in 0..200 {
            let d = variation.draw(seed);
            assert_eq!(d.imaging.look, Look::PlaneWave);
            d.imaging.validate("x").expect("drawn imaging valid");
            d.anatomy.validate("x").expect("drawn anatomy valid");
            assert!(d.lesions <= 3);
        }
    }
}
