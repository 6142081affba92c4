//! Probe geometry (beams and samples in probe coordinates) and the cart
//! screen layout (where the image sits in the frame, and its exact pixel
//! spacing).
//!
//! Probe coordinates: x lateral, z depth, in mm; z = 0 is the skin line
//! under the centre of the probe. A linear probe's beams are vertical lines
//! across its footprint; a convex probe's beams fan out from the centre of
//! its curved array (the apex, at z = -radius).

use sonoflow_core::findings::{ImageRegion, PixelSpacing, Point};

use crate::appearance::Look;
use crate::config::{PhantomConfig, ProbeKind};

/// Beams per frame and samples per beam.
pub const BEAMS: usize = 192;
pub const SAMPLES: usize = 352;

#[derive(Debug, Clone)]
pub struct ProbeGeometry {
    pub kind: ProbeKind,
    pub depth_mm: f64,
    /// Linear: width of the array.
    pub footprint_mm: f64,
    /// Convex: radius of the array.
    pub radius_mm: f64,
    /// Convex: half the fan angle (radians).
    pub half_angle: f64,
    pub frequency_mhz: f64,
    /// Transmit focus depth.
    pub focus_mm: f64,
    /// Lateral beam width (FWHM) at the focus.
    pub focal_width_mm: f64,
    /// Pulse length (axial FWHM) in wavelengths.
    pub axial_wavelengths: f64,
    pub look: Look,
}

impl ProbeGeometry {
    pub fn new(config: &PhantomConfig) -> Self {
        let depth = config.depth_mm();
        let im = &config.imaging;
        let aperture = f64::from(im.aperture_scale);
        let (footprint_mm, radius_mm, half_angle, focus, focal_width_mm) = match config.probe {
            ProbeKind::Linear => (38.4 * aperture, 0.0, 0.0, 0.45, 0.35),
            ProbeKind::Convex => (0.0, 40.0, 30f64.to_radians() * aperture, 0.5, 1.0),
        };
        let focus = im.focus_fraction.map_or(focus, f64::from);
        Self {
            kind: config.probe,
            depth_mm: depth,
            footprint_mm,
            radius_mm,
            half_angle,
            frequency_mhz: config.frequency_mhz(),
            focus_mm: depth * focus,
            focal_width_mm: focal_width_mm * f64::from(im.lateral_scale),
            axial_wavelengths: f64::from(im.axial_scale),
            look: im.look,
        }
    }

    /// Wavelength in mm at the centre frequency (c = 1540 m/s).
    pub fn wavelength_mm(&self) -> f64 {
        1.54 / self.frequency_mhz
    }

    /// Axial distance between samples along a beam.
    pub fn sample_mm(&self) -> f64 {
        self.depth_mm / SAMPLES as f64
    }

    /// Where beam `b` starts (sample 0 at range 0) and its unit direction.
    pub fn beam(&self, b: usize) -> ((f64, f64), (f64, f64)) {
        let t = (b as f64 + 0.5) / BEAMS as f64;
        match self.kind {
            ProbeKind::Linear => ((self.footprint_mm * (t - 0.5), 0.0), (0.0, 1.0)),
            ProbeKind::Convex => {
                let phi = self.half_angle * (2.0 * t - 1.0);
                let (s, c) = phi.sin_cos();
                (
                    (self.radius_mm * s, self.radius_mm * c - self.radius_mm),
                    (s, c),
                )
            }
        }
    }

    /// Depth below the array of sample `s` (mm).
    pub fn range_mm(&self, s: f64) -> f64 {
        (s + 0.5) * self.sample_mm()
    }

    /// Fractional (beam, sample) of a probe point, if it lies in the image.
    pub fn beam_sample(&self, x: f64, z: f64) -> Option<(f64, f64)> {
        let (b, s) = match self.kind {
            ProbeKind::Linear => (
                (x / self.footprint_mm + 0.5) * BEAMS as f64 - 0.5,
                z / self.sample_mm() - 0.5,
            ),
            ProbeKind::Convex => {
                let zc = z + self.radius_mm;
                let r = (x * x + zc * zc).sqrt();
                let phi = x.atan2(zc);
                (
                    (phi / self.half_angle + 1.0) / 2.0 * BEAMS as f64 - 0.5,
                    (r - self.radius_mm) / self.sample_mm() - 0.5,
                )
            }
        };
        let inside =
            (-0.5..BEAMS as f64 - 0.5).contains(&b) && (-0.5..SAMPLES as f64 - 0.5).contains(&s);
        inside.then_some((b, s))
    }

    /// Spacing between neighbouring beams at range `r` (mm).
    pub fn beam_spacing_mm(&self, r: f64) -> f64 {
        match self.kind {
            ProbeKind::Linear => self.footprint_mm / BEAMS as f64,
            ProbeKind::Convex => (self.radius_mm + r) * 2.0 * self.half_angle / BEAMS as f64,
        }
    }

    /// Lateral beam width (FWHM, mm) at range `r`: a focused beam is
    /// narrowest at the focus and widens away from it; a compounded plane
    /// wave is nearly as wide at every depth; a harmonic beam is narrower.
    pub fn beam_width_mm(&self, r: f64) -> f64 {
        let off = (r - self.focus_mm) / (0.6 * self.focus_mm);
        match self.look {
            Look::Focused => self.focal_width_mm * (1.0 + off * off).sqrt(),
            Look::PlaneWave => self.focal_width_mm * 1.3 * (1.0 + 0.08 * off * off).sqrt(),
            Look::Harmonic => self.focal_width_mm * 0.7 * (1.0 + 0.7 * off * off).sqrt(),
        }
    }

    /// Axial resolution (FWHM, mm): half a two-cycle pulse, one wavelength
    /// (times the look's pulse-length scale).
    pub fn axial_width_mm(&self) -> f64 {
        self.wavelength_mm() * self.axial_wavelengths
    }

    /// Width of the image and how far it reaches above depth 0, in mm: a
    /// convex array curves toward the patient, so the fan's top corners sit
    /// above the skin line under its centre.
    fn extent_mm(&self) -> (f64, f64) {
        match self.kind {
            ProbeKind::Linear => (self.footprint_mm, 0.0),
            ProbeKind::Convex => (
                2.0 * (self.radius_mm + self.depth_mm) * self.half_angle.sin(),
                self.radius_mm * (1.0 - self.half_angle.cos()),
            ),
        }
    }
}

/// Where everything sits on the cart's screen.
#[derive(Debug, Clone)]
pub struct Layout {
    pub width: u32,
    pub height: u32,
    /// Millimetres per pixel, the same in x and y; exactly depth / image height.
    pub spacing_mm: f64,
    /// Pixel position of the probe origin (x = 0, z = 0).
    pub origin: (f64, f64),
    pub region: ImageRegion,
    /// Pixel rows of the image's top and bottom (depth 0 and full depth).
    pub image_top: u32,
    pub image_height: u32,
    /// Left edge of the text panel's free area, right edge of the image.
    pub panel_right: u32,
    pub image_right: u32,
    pub text_scale: u32,
    pub banner_height: u32,
}

impl Layout {
    pub fn new(config: &PhantomConfig, geometry: &ProbeGeometry) -> Self {
        let (w, h) = (config.width, config.height);
        let text_scale = (h / 400).max(1);
        let banner_height = 12 * text_scale + 6;
        let panel = (w as f64 * 0.19) as u32;
        let scale_area = (w as f64 * 0.08) as u32;
        let bottom = (h as f64 * 0.02) as u32 + 2;
        let (avail_w, avail_h) = (w - panel - scale_area, h - banner_height - bottom);
        let (ext_w, above) = geometry.extent_mm();
        let depth = geometry.depth_mm;
        // The image is as large as fits; the spacing is exactly depth / rows.
        let mut image_height = (f64::from(avail_h) * depth / (depth + above)).floor() as u32;
        if ext_w / (depth / f64::from(image_height)) > f64::from(avail_w) {
            image_height = (f64::from(avail_w) * depth / ext_w).floor() as u32;
        }
        let spacing_mm = depth / f64::from(image_height);
        let image_width = (ext_w / spacing_mm).round() as u32;
        let image_left = panel + (avail_w - image_width) / 2;
        let image_top = banner_height + (above / spacing_mm).ceil() as u32;
        let origin_x = f64::from(image_left) + f64::from(image_width) / 2.0;
        let origin_y = f64::from(image_top);
        let region = match geometry.kind {
            ProbeKind::Linear => ImageRegion::Rect {
                x0: image_left,
                y0: image_top,
                x1: image_left + image_width,
                y1: image_top + image_height,
            },
            ProbeKind::Convex => ImageRegion::Fan {
                apex: Point {
                    x: origin_x as f32,
                    y: (origin_y - geometry.radius_mm / spacing_mm) as f32,
                },
                r0: (geometry.radius_mm / spacing_mm) as f32,
                r1: ((geometry.radius_mm + geometry.depth_mm) / spacing_mm) as f32,
                half_angle: geometry.half_angle as f32,
            },
        };
        Self {
            width: w,
            height: h,
            spacing_mm,
            origin: (origin_x, origin_y),
            region,
            image_top,
            image_height,
            panel_right: panel,
            image_right: image_left + image_width,
            text_scale,
            banner_height,
        }
    }

    pub fn pixel_spacing(&self) -> PixelSpacing {
        PixelSpacing::isotropic(self.spacing_mm)
    }

    /// Probe coordinates (mm) of a pixel centre.
    #[inline]
    pub fn to_probe(&self, px: u32, py: u32) -> (f64, f64) {
        (
            (f64::from(px) + 0.5 - self.origin.0) * self.spacing_mm,
            (f64::from(py) + 0.5 - self.origin.1) * self.spacing_mm,
        )
    }

    /// Pixel position (sub-pixel, corner-based) of a probe point.
    pub fn to_pixel(&self, x: f64, z: f64) -> Point {
        Point {
            x: (self.origin.0 + x / self.spacing_mm) as f32,
            y: (self.origin.1 + z / self.spacing_mm) as f32,
        }
    }
}
