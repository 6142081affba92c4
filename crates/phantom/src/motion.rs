//! How the probe and tissue move over time: a slow lateral slide, a slight
//! tilt, breathing that compresses the tissue, and drift out of the imaging
//! plane (elevation) that decorrelates speckle partially from frame to
//! frame. All of it is a function of time and seed, never of the clock.

use std::f64::consts::TAU;

use crate::rng::Rng;
use crate::scene::{MAX_COMPRESSION, MAX_SLIDE_MM};

/// Where the probe is, relative to the tissue, at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pose {
    pub slide_mm: f64,
    pub tilt_rad: f64,
    /// Fraction by which the tissue is compressed in depth.
    pub compression: f64,
    /// Mixing angle between the two elevation slices of scatterers.
    pub elevation_rad: f64,
    /// How far below the skin the probe's image starts (a standoff).
    pub depth_offset_mm: f64,
}

impl Pose {
    pub const STILL: Pose = Pose {
        slide_mm: 0.0,
        tilt_rad: 0.0,
        compression: 0.0,
        elevation_rad: 0.0,
        depth_offset_mm: 0.0,
    };

    /// Tissue coordinates of a probe point.
    #[inline]
    pub fn to_tissue(&self, x: f64, z: f64) -> (f64, f64) {
        let z = z + self.depth_offset_mm;
        let (s, c) = self.tilt_rad.sin_cos();
        (
            self.slide_mm + x * c - z * s,
            (x * s + z * c) / (1.0 - self.compression),
        )
    }

    /// Probe coordinates of a tissue point (the inverse of [`Pose::to_tissue`]).
    pub fn to_probe(&self, x: f64, z: f64) -> (f64, f64) {
        let (s, c) = self.tilt_rad.sin_cos();
        let (dx, zc) = (x - self.slide_mm, z * (1.0 - self.compression));
        (dx * c + zc * s, -dx * s + zc * c - self.depth_offset_mm)
    }

    /// The linear part of [`Pose::to_tissue`] applied to a direction.
    pub fn direction_to_tissue(&self, dx: f64, dz: f64) -> (f64, f64) {
        let (s, c) = self.tilt_rad.sin_cos();
        (
            dx * c - dz * s,
            (dx * s + dz * c) / (1.0 - self.compression),
        )
    }
}

/// The random but fixed parameters of a sequence's motion.
#[derive(Debug, Clone)]
pub struct MotionModel {
    enabled: bool,
    slide: [(f64, f64); 2],
    tilt: (f64, f64),
    breath: (f64, f64),
    elevation_rate: f64,
    elevation_wobble: (f64, f64),
}

impl MotionModel {
    pub fn new(seed: u64, enabled: bool) -> Self {
        let mut r = Rng::fork(seed, 5);
        Self {
            enabled,
            slide: [
                (r.range(7.0, 11.0), r.range(0.0, TAU)),
                (r.range(3.0, 5.0), r.range(0.0, TAU)),
            ],
            tilt: (r.range(6.0, 10.0), r.range(0.0, TAU)),
            breath: (r.range(3.5, 5.0), r.range(0.0, TAU)),
            elevation_rate: r.range(0.25, 0.45),
            elevation_wobble: (r.range(2.0, 4.0), r.range(0.0, TAU)),
        }
    }

    pub fn pose_at(&self, t: f64) -> Pose {
        if !self.enabled {
            return Pose::STILL;
        }
        let wave = |(period, phase): (f64, f64)| (TAU * t / period + phase).sin();
        Pose {
            slide_mm: MAX_SLIDE_MM * (0.6 * wave(self.slide[0]) + 0.4 * wave(self.slide[1])),
            tilt_rad: 0.03 * wave(self.tilt),
            compression: MAX_COMPRESSION * 0.5 * (1.0 - wave(self.breath)),
            elevation_rad: self.elevation_rate * t + 0.2 * wave(self.elevation_wobble),
            depth_offset_mm: 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_probe_inverts_to_tissue() {
        let pose = Pose {
            slide_mm: 1.3,
            tilt_rad: 0.02,
            compression: 0.03,
            elevation_rad: 0.4,
            depth_offset_mm: 6.5,
        };
        let (x, z) = pose.to_tissue(-7.0, 21.0);
        let (px, pz) = pose.to_probe(x, z);
        assert!((px + 7.0).abs() < 1e-9 && (pz - 21.0).abs() < 1e-9);
    }

    #[test]
    fn motion_stays_within_its_bounds_and_still_means_still() {
        let m = MotionModel::new(3, true);
        for i in 0..600 {
            let p = m.pose_at(i as f64 / 30.0);
            assert!(p.slide_mm.abs() <= MAX_SLIDE_MM + 1e-9);
            assert!((0.0..=MAX_COMPRESSION + 1e-9).contains(&p.compression));
        }
        assert_eq!(MotionModel::new(3, false).pose_at(5.0), Pose::STILL);
    }
}
