//! Image formation, per frame:
//!
//! 1. sample the scatterer field along each beam at the current pose
//!    (bilinear, energy-normalised), mixing the two elevation slices, and
//!    accumulate round-trip attenuation along the beam (dB/cm/MHz);
//! 2. convolve with the pulse-echo point-spread function in baseband:
//!    axially a Gaussian pulse envelope one wavelength wide (FWHM), then
//!    laterally a Gaussian beam profile whose width depends on depth around
//!    the focus;
//! 3. detect the envelope, apply attenuation, time-gain compensation and
//!    gain, add receiver noise, and log-compress to the dynamic range;
//! 4. scan-convert the beam image onto the screen's image region.
//!
//! All buffers are allocated once; rendering a frame allocates nothing.

use crate::appearance::{Imaging, Look};
use crate::config::PhantomConfig;
use crate::motion::Pose;
use crate::probe::{Layout, ProbeGeometry, BEAMS, SAMPLES};
use crate::rng::Rng;
use crate::scene::{Scene, GRID_MM, NOMINAL_ATTENUATION};

/// Receiver noise amplitude relative to glandular tissue echoes (-70 dB):
/// visible only where time-gain compensation is highest, deep in the image.
const NOISE_AMPLITUDE: f32 = 3.0e-4;
/// Gray level of glandular tissue (echogenicity 1) at 0 dB gain.
const TISSUE_GRAY: f32 = 150.0;

/// One screen pixel of the image region and where it reads the beam image.
#[derive(Debug, Clone, Copy)]
struct ScanPixel {
    pixel: u32,
    x: u16,
    y: u16,
    /// Index of the top-left of the 2x2 neighbourhood in the [sample][beam] image.
    index: u32,
    fb: f32,
    fs: f32,
}

/// A symmetric convolution kernel.
#[derive(Debug, Clone)]
struct Kernel {
    taps: Vec<f32>,
    half: usize,
}

impl Kernel {
    /// A Gaussian with standard deviation `sigma` (in samples), unit energy
    /// (sum of squares 1), so speckle power is kept.
    fn gaussian(sigma: f64, max_half: usize) -> Self {
        let sigma = sigma.max(0.5);
        let half = ((3.0 * sigma).ceil() as usize).clamp(1, max_half);
        let mut taps: Vec<f32> = (0..=2 * half)
            .map(|i| {
                let k = i as f64 - half as f64;
                (-(k * k) / (2.0 * sigma * sigma)).exp() as f32
            })
            .collect();
        let energy: f32 = taps.iter().map(|t| t * t).sum::<f32>().sqrt();
        taps.iter_mut().for_each(|t| *t /= energy);
        Self { taps, half }
    }
}

pub struct Renderer {
    geometry: ProbeGeometry,
    axial: Kernel,
    lateral: Vec<Kernel>,
    /// Time-gain compensation per sample row, as a power factor.
    tgc_power: Vec<f32>,
    noise_power: Vec<f32>,
    noise: Vec<f32>,
    scan: Vec<ScanPixel>,
    background: Vec<u8>,
    db_floor: f32,
    gray_per_db: f32,
    frequency: f32,
    /// Beam samples with attenuation applied, [beam][sample], complex.
    iq: Vec<[f32; 2]>,
    /// After the axial PSF, [beam][sample].
    axial_out: Vec<[f32; 2]>,
    /// The same, transposed to [sample][beam] for the lateral PSF.
    rows: Vec<[f32; 2]>,
    /// Detected envelope after TGC, before log compression, [sample][beam].
    envelope: Vec<f32>,
    /// Log-compressed beam image, [sample][beam].
    image: Vec<u8>,
    /// Post-processing of the beam image (speckle reduction, grey map);
    /// `None` for the plain look, which leaves the image as compressed.
    post: Option<PostProcess>,
}

/// What the scanner does to the log-compressed image before display.
struct PostProcess {
    /// Weight of the 3x3 mean in each pixel (0: none).
    smoothing: f32,
    /// Grey map: compressed level to displayed level.
    grey_map: [u8; 256],
    scratch: Vec<u8>,
}

impl PostProcess {
    fn new(imaging: &Imaging) -> Option<Self> {
        let compounding = if imaging.look == Look::PlaneWave {
            0.35
        } else {
            0.0
        };
        let smoothing = (imaging.smoothing + compounding).min(1.0);
        if smoothing == 0.0 && imaging.gamma == 1.0 {
            return None;
        }
        let mut grey_map = [0u8; 256];
        for (level, out) in grey_map.iter_mut().enumerate() {
            let v = 255.0 * (level as f32 / 255.0).powf(imaging.gamma);
            *out = v.round().clamp(0.0, 255.0) as u8;
        }
        Some(Self {
            smoothing,
            grey_map,
            scratch: vec![0; BEAMS * SAMPLES],
        })
    }

    /// Smooths and grey-maps a [sample][beam] image in place.
    fn apply(&mut self, image: &mut [u8]) {
        if self.smoothing > 0.0 {
            self.scratch.copy_from_slice(image);
            let src = &self.scratch;
            let keep = 1.0 - self.smoothing;
            let share = self.smoothing / 9.0;
            for s in 1..SAMPLES - 1 {
                for b in 1..BEAMS - 1 {
                    let mut sum = 0u32;
                    for row in [s - 1, s, s + 1] {
                        let at = row * BEAMS + b;
                        sum += u32::from(src[at - 1]) + u32::from(src[at]) + u32::from(src[at + 1]);
                    }
                    let v = keep * f32::from(src[s * BEAMS + b]) + share * sum as f32;
                    image[s * BEAMS + b] = v.round().clamp(0.0, 255.0) as u8;
                }
            }
        }
        for v in image.iter_mut() {
            *v = self.grey_map[usize::from(*v)];
        }
    }
}

/// Time-gain compensation error (dB) at `t` (0 top of the image, 1 bottom),
/// interpolated between the four slider values.
fn tgc_error_db(sliders: &[f32; 4], t: f64) -> f64 {
    let x = t.clamp(0.0, 1.0) * 3.0;
    let i = (x.floor() as usize).min(2);
    let f = x - i as f64;
    f64::from(sliders[i]) * (1.0 - f) + f64::from(sliders[i + 1]) * f
}

impl Renderer {
    pub fn new(
        config: &PhantomConfig,
        geometry: &ProbeGeometry,
        layout: &Layout,
        background: Vec<u8>,
    ) -> Self {
        let dz = geometry.sample_mm();
        let axial = Kernel::gaussian(geometry.axial_width_mm() / 2.355 / dz, 16);
        let lateral = (0..SAMPLES)
            .map(|s| {
                let r = geometry.range_mm(s as f64);
                Kernel::gaussian(
                    geometry.beam_width_mm(r) / 2.355 / geometry.beam_spacing_mm(r),
                    24,
                )
            })
            .collect();
        let f = geometry.frequency_mhz;
        let imaging = &config.imaging;
        let tgc_power: Vec<f32> = (0..SAMPLES)
            .map(|s| {
                let r = geometry.range_mm(s as f64);
                let error_db = tgc_error_db(&imaging.tgc_db, r / geometry.depth_mm);
                let mut power =
                    10f64.powf(2.0 * f * NOMINAL_ATTENUATION * r / 100.0 + error_db / 10.0);
                if imaging.look == Look::Harmonic {
                    // The second harmonic builds up over the first centimetre or so.
                    power *= (1.0 - (-r / 6.0).exp()).powi(2).max(0.02);
                }
                power as f32
            })
            .collect();
        // Clutter is acoustic: it sits on the image after TGC, like tissue.
        let clutter = if imaging.clutter_db > -99.0 {
            10f32.powf(imaging.clutter_db / 10.0)
        } else {
            0.0
        };
        let noise_power = tgc_power
            .iter()
            .map(|g| NOISE_AMPLITUDE * NOISE_AMPLITUDE * g + clutter)
            .collect();
        let mut rng = Rng::fork(config.seed, 6);
        let noise = (0..BEAMS * SAMPLES + 8192)
            .map(|_| -(rng.uniform().max(1e-12).ln()) as f32)
            .collect();
        let dr = config.dynamic_range_db;
        // Mean log power of unit-power speckle is -2.51 dB (Euler's constant).
        let db_floor = -2.51 - TISSUE_GRAY * dr / 255.0 - config.gain_db;
        Self {
            geometry: geometry.clone(),
            axial,
            lateral,
            tgc_power,
            noise_power,
            noise,
            scan: scan_table(geometry, layout),
            background,
            db_floor,
            gray_per_db: 255.0 / dr,
            frequency: f as f32,
            iq: vec![[0.0; 2]; BEAMS * SAMPLES],
            axial_out: vec![[0.0; 2]; BEAMS * SAMPLES],
            rows: vec![[0.0; 2]; BEAMS * SAMPLES],
            envelope: vec![0.0; BEAMS * SAMPLES],
            image: vec![0; BEAMS * SAMPLES],
            post: PostProcess::new(imaging),
        }
    }

    /// The detected envelope of the last frame, [sample][beam], after
    /// attenuation and TGC, before log compression.
    pub fn envelope(&self) -> &[f32] {
        &self.envelope
    }

    /// Pixels of the image region: (frame index, x, y).
    pub fn region_pixels(&self) -> impl Iterator<Item = (u32, u32, u32)> + '_ {
        self.scan
            .iter()
            .map(|p| (p.pixel, u32::from(p.x), u32::from(p.y)))
    }

    /// Renders one frame into `out` (width x height GRAY8, tightly packed).
    pub fn render(&mut self, scene: &Scene, pose: &Pose, frame_index: u64, out: &mut [u8]) {
        self.sample_beams(scene, pose);
        self.axial_psf();
        transpose(&self.axial_out, &mut self.rows);
        self.lateral_psf_and_compress(frame_index);
        if let Some(post) = &mut self.post {
            post.apply(&mut self.image);
        }
        out.copy_from_slice(&self.background);
        self.scan_convert(out);
    }

    fn sample_beams(&mut self, scene: &Scene, pose: &Pose) {
        let grid = &scene.grid;
        let (ce, se) = (
            pose.elevation_rad.cos() as f32,
            pose.elevation_rad.sin() as f32,
        );
        let dz = self.geometry.sample_mm();
        // Round-trip loss per sample and unit attenuation, as a log2 amplitude factor.
        let loss_per_att =
            2.0 * self.frequency * (dz / 10.0) as f32 / 20.0 * std::f32::consts::LOG2_10;
        let inv_h = 1.0 / GRID_MM;
        for b in 0..BEAMS {
            let ((ox, oz), (dx, dzr)) = self.geometry.beam(b);
            let r0 = self.geometry.range_mm(0.0);
            let (tx, tz) = pose.to_tissue(ox + dx * r0, oz + dzr * r0);
            let (sx, sz) = pose.direction_to_tissue(dx * dz, dzr * dz);
            // Grid coordinates relative to cell centres.
            let (mut gx, mut gz) = ((tx - grid.x_min) * inv_h - 0.5, tz * inv_h - 0.5);
            let (step_x, step_z) = (sx * inv_h, sz * inv_h);
            let mut loss = 0.0f32;
            let row = &mut self.iq[b * SAMPLES..(b + 1) * SAMPLES];
            for out in row.iter_mut() {
                let (fx, fz) = (gx.floor(), gz.floor());
                if fx >= 0.0
                    && fz >= 0.0
                    && (fx as usize + 1) < grid.nx
                    && (fz as usize + 1) < grid.nz
                {
                    let i = fx as usize * grid.nz + fz as usize;
                    let (wx, wz) = ((gx - fx) as f32, (gz - fz) as f32);
                    let w = [
                        (1.0 - wx) * (1.0 - wz),
                        (1.0 - wx) * wz,
                        wx * (1.0 - wz),
                        wx * wz,
                    ];
                    let cells = [i, i + 1, i + grid.nz, i + grid.nz + 1];
                    let (mut re, mut im) = (0.0f32, 0.0f32);
                    for (wk, &ck) in w.iter().zip(&cells) {
                        let c = grid.scatterers[ck];
                        re += wk * (c.a_re * ce + c.b_re * se);
                        im += wk * (c.a_im * ce + c.b_im * se);
                    }
                    // Interpolation must not change speckle power with position.
                    // The echo from here is attenuated by the path so far.
                    let norm =
                        (w.iter().map(|x| x * x).sum::<f32>()).sqrt().recip() * (-loss).exp2();
                    *out = [re * norm, im * norm];
                    let nearest = if wx < 0.5 { 0 } else { 2 } + usize::from(wz >= 0.5);
                    loss += loss_per_att * grid.attenuation[cells[nearest]];
                } else {
                    *out = [0.0, 0.0];
                }
                gx += step_x;
                gz += step_z;
            }
        }
    }

    fn axial_psf(&mut self) {
        let k = &self.axial;
        for b in 0..BEAMS {
            let beam = &self.iq[b * SAMPLES..(b + 1) * SAMPLES];
            for s in 0..SAMPLES {
                let lo = s.saturating_sub(k.half);
                let hi = (s + k.half).min(SAMPLES - 1);
                let (mut re, mut im) = (0.0f32, 0.0f32);
                for (j, v) in beam[lo..=hi].iter().enumerate() {
                    let t = k.taps[lo + j + k.half - s];
                    re += t * v[0];
                    im += t * v[1];
                }
                self.axial_out[b * SAMPLES + s] = [re, im];
            }
        }
    }

    fn lateral_psf_and_compress(&mut self, frame_index: u64) {
        let offset = (frame_index.wrapping_mul(7919) % 8192) as usize;
        // gray = (10 log10(p) - floor) * gray_per_db, with log10 via log2.
        let gray_per_log2 = 10.0 * std::f32::consts::LOG10_2 * self.gray_per_db;
        let gray_offset = -self.db_floor * self.gray_per_db;
        for s in 0..SAMPLES {
            let k = &self.lateral[s];
            let row = &self.rows[s * BEAMS..(s + 1) * BEAMS];
            let tgc = self.tgc_power[s];
            let noise_power = self.noise_power[s];
            let noise = &self.noise[offset + s * BEAMS..offset + (s + 1) * BEAMS];
            let envelope = &mut self.envelope[s * BEAMS..(s + 1) * BEAMS];
            let image = &mut self.image[s * BEAMS..(s + 1) * BEAMS];
            for b in 0..BEAMS {
                let lo = b.saturating_sub(k.half);
                let hi = (b + k.half).min(BEAMS - 1);
                let taps = &k.taps[lo + k.half - b..];
                let (mut re, mut im) = (0.0f32, 0.0f32);
                for (t, v) in taps.iter().zip(&row[lo..=hi]) {
                    re += t * v[0];
                    im += t * v[1];
                }
                let power = (re * re + im * im) * tgc;
                envelope[b] = power.sqrt();
                let p = power + noise_power * noise[b];
                image[b] =
                    (p.max(1e-20).log2() * gray_per_log2 + gray_offset).clamp(0.0, 255.0) as u8;
            }
        }
    }

    fn scan_convert(&self, out: &mut [u8]) {
        for p in &self.scan {
            let i = p.index as usize;
            let (a, b) = (f32::from(self.image[i]), f32::from(self.image[i + 1]));
            let (c, d) = (
                f32::from(self.image[i + BEAMS]),
                f32::from(self.image[i + BEAMS + 1]),
            );
            let top = a + (b - a) * p.fb;
            let bottom = c + (d - c) * p.fb;
            out[p.pixel as usize] = (top + (bottom - top) * p.fs + 0.5) as u8;
        }
    }
}

/// [beam][sample] to [sample][beam], in cache-sized blocks.
fn transpose(from: &[[f32; 2]], to: &mut [[f32; 2]]) {
    const BLOCK: usize = 16;
    for b0 in (0..BEAMS).step_by(BLOCK) {
        for s0 in (0..SAMPLES).step_by(BLOCK) {
            for b in b0..(b0 + BLOCK).min(BEAMS) {
                for s in s0..(s0 + BLOCK).min(SAMPLES) {
                    to[s * BEAMS + b] = from[b * SAMPLES + s];
                }
            }
        }
    }
}

/// For every pixel in the image region: where it reads the beam image.
fn scan_table(geometry: &ProbeGeometry, layout: &Layout) -> Vec<ScanPixel> {
    let mut table = Vec::new();
    for y in 0..layout.height {
        for x in 0..layout.width {
            if !layout.region.contains(x, y) {
                continue;
            }
            let (px, pz) = layout.to_probe(x, y);
            let Some((b, s)) = geometry.beam_sample(px, pz) else {
                continue;
            };
            let (b, s) = (
                b.clamp(0.0, (BEAMS - 1) as f64 - 1e-6),
                s.clamp(0.0, (SAMPLES - 1) as f64 - 1e-6),
            );
            let (b0, s0) = (
                (b.floor() as usize).min(BEAMS - 2),
                (s.floor() as usize).min(SAMPLES - 2),
            );
            table.push(ScanPixel {
                pixel: y * layout.width + x,
                // Frames are at most 3840x2160 (checked by the config).
                x: x as u16,
                y: y as u16,
                index: (s0 * BEAMS + b0) as u32,
                fb: (b - b0 as f64) as f32,
                fs: (s - s0 as f64) as f32,
            });
        }
    }
    table
}
