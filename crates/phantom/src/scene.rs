//! The tissue: layers, lesions and a field of random scatterers, fixed in
//! tissue coordinates (X lateral, Z depth below the skin at rest, in mm).
//!
//! The field lives on a grid (`h` = 0.1 mm). Each cell holds two complex
//! scatterer amplitudes (two elevation slices, mixed per frame to model
//! out-of-plane motion) already scaled by the tissue's echogenicity, the
//! attenuation coefficient (dB/cm/MHz) and the tissue label. Cells are
//! stored column by column (`ix * nz + iz`) so a beam walking down in depth
//! reads memory in order.

use std::f64::consts::{PI, TAU};

use sonoflow_core::findings::label;

use crate::appearance::{Anatomy, ANECHOIC_BELOW_DB, HYPOECHOIC_BELOW_DB, ISOECHOIC_BELOW_DB};
use crate::config::{LesionKind, PhantomConfig, SceneKind};
use crate::lexicon::{
    Calcifications, EchoPattern, FindingClass, LesionAttributes, Margin, Orientation,
    PosteriorFeatures, Shape,
};
use crate::rng::Rng;

/// Grid spacing in mm.
pub const GRID_MM: f64 = 0.1;
/// Largest tissue compression (fraction of depth) the motion model uses.
pub const MAX_COMPRESSION: f64 = 0.04;
/// Largest lateral slide of the probe from its start, in mm.
pub const MAX_SLIDE_MM: f64 = 3.0;
/// Nominal soft-tissue attenuation that time-gain compensation undoes.
pub const NOMINAL_ATTENUATION: f64 = 0.75;

/// Echogenicity (relative scatterer amplitude) and attenuation per tissue.
mod tissue {
    pub const SKIN: (f32, f32) = (1.5, 0.8);
    pub const FAT: (f32, f32) = (0.45, 0.6);
    pub const SEPTUM: (f32, f32) = (1.3, 0.75);
    pub const GLAND: (f32, f32) = (1.0, 0.75);
    pub const FASCIA: (f32, f32) = (2.0, 0.9);
    pub const MUSCLE: (f32, f32) = (0.6, 1.0);
}

/// One lesion in tissue coordinates.
#[derive(Debug, Clone)]
pub struct Lesion {
    pub id: u32,
    pub kind: LesionKind,
    pub class: FindingClass,
    pub attributes: LesionAttributes,
    pub center: (f64, f64),
    /// Semi-axes of the base ellipse (mm) along its own axes.
    pub semi_axes: (f64, f64),
    /// Rotation of the base ellipse (radians, 0 = long axis horizontal).
    pub angle: f64,
    /// Low-order boundary harmonics (irregular shape): (order, amplitude, phase).
    harmonics: Vec<(f64, f64, f64)>,
    /// Spicules: (angle, length as a fraction of the radius, half-width in radians).
    spikes: Vec<(f64, f64, f64)>,
    /// Width of the blurred edge, as a fraction of the radius (indistinct margins).
    edge_blur: f64,
    amplitude: f32,
    attenuation: f32,
    /// Solid component of a complex cyst: centre offset (fraction of radius) and radius fraction.
    nodule: Option<((f64, f64), f64)>,
    calcifications: Vec<(f64, f64)>,
    /// Echogenicity against glandular tissue (dB) when drawn from a band.
    pub contrast_db: Option<f32>,
    /// A rim (capsule or halo) inside the boundary: its width as a fraction
    /// of the radius and its echogenicity as a multiple of the lesion's.
    rim: Option<(f64, f32)>,
}

/// What a lesion was drawn as, for the ground truth of an export.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LesionSpec {
    pub id: u32,
    pub kind: LesionKind,
    pub echo_pattern: EchoPattern,
    pub contrast_db: Option<f32>,
    /// Long axis of the base ellipse before harmonics and spicules (mm).
    pub long_mm: f64,
    /// Centre in tissue coordinates (mm; z below the skin).
    pub center_mm: (f64, f64),
    pub rim: bool,
}

impl Lesion {
    pub fn spec(&self) -> LesionSpec {
        LesionSpec {
            id: self.id,
            kind: self.kind,
            echo_pattern: self.attributes.echo_pattern,
            contrast_db: self.contrast_db,
            long_mm: 2.0 * self.semi_axes.0,
            center_mm: self.center,
            rim: self.rim.is_some(),
        }
    }

    /// Radius of the boundary (in units of the base ellipse) at polar angle `phi`.
    fn boundary(&self, phi: f64) -> f64 {
        let mut r = 1.0;
        for &(order, amp, phase) in &self.harmonics {
            r += amp * (order * phi + phase).sin();
        }
        for &(at, len, half_width) in &self.spikes {
            let d = ((phi - at + PI).rem_euclid(TAU) - PI).abs();
            // Straight flanks: a pointed corner or spicule (a squared
            // falloff made needles thinner than the PSF, that did not show).
            if d < half_width {
                r += len * (1.0 - d / half_width);
            }
        }
        r
    }

    /// The point's normalised radius and polar angle in the lesion's frame.
    fn local(&self, x: f64, z: f64) -> (f64, f64) {
        let (dx, dz) = (x - self.center.0, z - self.center.1);
        let (c, s) = (self.angle.cos(), self.angle.sin());
        let u = (dx * c + dz * s) / self.semi_axes.0;
        let v = (-dx * s + dz * c) / self.semi_axes.1;
        ((u * u + v * v).sqrt(), v.atan2(u))
    }

    /// How much of the lesion is at (x, z): 1 inside, 0 outside, a ramp
    /// across a blurred (indistinct) edge. Also whether it is inside the
    /// nominal boundary (the ground-truth mask).
    fn coverage(&self, x: f64, z: f64) -> (f64, bool) {
        let (rho, phi) = self.local(x, z);
        let edge = self.boundary(phi);
        let inside = rho < edge;
        if self.edge_blur <= 0.0 {
            return (if inside { 1.0 } else { 0.0 }, inside);
        }
        let t = ((edge - rho) / self.edge_blur + 0.5).clamp(0.0, 1.0);
        (t * t * (3.0 - 2.0 * t), inside)
    }

    /// The boundary as a closed polygon in tissue mm.
    pub fn polygon(&self, points: usize) -> Vec<(f64, f64)> {
        let (c, s) = (self.angle.cos(), self.angle.sin());
        (0..points)
            .map(|i| {
                let phi = TAU * i as f64 / points as f64;
                let r = self.boundary(phi);
                let (u, v) = (
                    r * phi.cos() * self.semi_axes.0,
                    r * phi.sin() * self.semi_axes.1,
                );
                (self.center.0 + u * c - v * s, self.center.1 + u * s + v * c)
            })
            .collect()
    }

    /// Echogenicity and attenuation at (x, z) inside the lesion.
    fn material(&self, x: f64, z: f64, texture: f32) -> (f32, f32) {
        if let Some(((ox, oz), radius)) = self.nodule {
            let r = self.semi_axes.0.min(self.semi_axes.1);
            let (nx, nz) = (self.center.0 + ox * r, self.center.1 + oz * r);
            if ((x - nx).powi(2) + (z - nz).powi(2)).sqrt() < radius * r {
                return (0.35 * texture, 0.9);
            }
        }
        let mut amp = match self.attributes.echo_pattern {
            EchoPattern::Heterogeneous => self.amplitude * (0.4 + 1.2 * texture.powi(2)),
            _ => self.amplitude * (0.85 + 0.3 * texture),
        };
        if let Some((width, factor)) = self.rim {
            let (rho, phi) = self.local(x, z);
            if self.boundary(phi) - rho < width {
                amp *= factor;
            }
        }
        (amp, self.attenuation)
    }
}

/// Depths of the tissue layers as functions of X.
#[derive(Debug, Clone)]
struct Layers {
    skin: f64,
    fat: (f64, [f64; 4]),
    gland: (f64, [f64; 2]),
    muscle_thickness: f64,
    septa: (f64, f64, f64),
}

impl Layers {
    fn fat_bottom(&self, x: f64) -> f64 {
        let (d, p) = self.fat;
        d + p[0] * (TAU * x / 35.0 + p[1]).sin() + p[2] * (TAU * x / 13.0 + p[3]).sin()
    }
    fn gland_bottom(&self, x: f64) -> f64 {
        let (d, p) = self.gland;
        d + p[0] * (TAU * x / 50.0 + p[1]).sin()
    }
}

/// A smooth random texture in [0, 1]: value noise on a coarse lattice.
#[derive(Debug, Clone)]
struct Texture {
    cell_mm: f64,
    n: usize,
    values: Vec<f32>,
}

impl Texture {
    fn new(rng: &mut Rng, cell_mm: f64) -> Self {
        let n = 128;
        Self {
            cell_mm,
            n,
            values: (0..n * n).map(|_| rng.uniform() as f32).collect(),
        }
    }

    fn at(&self, x: f64, z: f64) -> f32 {
        let (gx, gz) = (
            (x / self.cell_mm).rem_euclid(self.n as f64),
            (z / self.cell_mm).rem_euclid(self.n as f64),
        );
        let (ix, iz) = (gx as usize % self.n, gz as usize % self.n);
        let (fx, fz) = ((gx - gx.floor()) as f32, (gz - gz.floor()) as f32);
        let (sx, sz) = (fx * fx * (3.0 - 2.0 * fx), fz * fz * (3.0 - 2.0 * fz));
        let v = |i: usize, j: usize| self.values[(j % self.n) * self.n + (i % self.n)];
        let top = v(ix, iz) * (1.0 - sx) + v(ix + 1, iz) * sx;
        let bottom = v(ix, iz + 1) * (1.0 - sx) + v(ix + 1, iz + 1) * sx;
        top * (1.0 - sz) + bottom * sz
    }
}

/// One scatterer cell: two complex amplitudes (elevation slices A and B).
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub struct Scatterers {
    pub a_re: f32,
    pub a_im: f32,
    pub b_re: f32,
    pub b_im: f32,
}

/// The tissue field on its grid.
pub struct TissueGrid {
    pub x_min: f64,
    pub nx: usize,
    pub nz: usize,
    pub scatterers: Vec<Scatterers>,
    pub attenuation: Vec<f32>,
    pub labels: Vec<u8>,
}

impl TissueGrid {
    /// Grid cell of a tissue point, if it is on the grid.
    #[inline]
    pub fn cell(&self, x: f64, z: f64) -> Option<usize> {
        let gx = (x - self.x_min) / GRID_MM;
        let gz = z / GRID_MM;
        if gx < 0.0 || gz < 0.0 {
            return None;
        }
        let (ix, iz) = (gx as usize, gz as usize);
        (ix < self.nx && iz < self.nz).then_some(ix * self.nz + iz)
    }
}

/// A whole scene: what the probe looks at.
pub struct Scene {
    pub lesions: Vec<Lesion>,
    pub grid: TissueGrid,
}

/// Half-width (mm) of tissue the probe can see at depth `z`, before motion.
pub fn visible_half_width(config: &PhantomConfig, z: f64) -> f64 {
    let g = crate::probe::ProbeGeometry::new(config);
    match g.kind {
        crate::config::ProbeKind::Linear => g.footprint_mm / 2.0,
        crate::config::ProbeKind::Convex => (g.radius_mm + z) * g.half_angle.sin(),
    }
}

impl Scene {
    pub fn new(config: &PhantomConfig) -> Self {
        let mut rng = Rng::fork(config.seed, 1);
        let depth = config.depth_mm();
        let layers = Layers {
            skin: rng.range(1.5, 2.2),
            fat: (
                rng.range(4.5, 8.0),
                [
                    rng.range(0.8, 1.6),
                    rng.range(0.0, TAU),
                    rng.range(0.3, 0.8),
                    rng.range(0.0, TAU),
                ],
            ),
            gland: (
                rng.range(20.0, 27.0),
                [rng.range(1.5, 3.5), rng.range(0.0, TAU)],
            ),
            muscle_thickness: rng.range(7.0, 11.0),
            septa: (
                rng.range(0.3, 0.9),
                rng.range(4.0, 7.0),
                rng.range(0.0, TAU),
            ),
        };
        let uniform = config.scene == SceneKind::Uniform;
        let lesions = if uniform {
            Vec::new()
        } else {
            place_lesions(config, &layers, &mut rng)
        };

        let offset = f64::from(config.imaging.depth_offset_mm);
        let half = visible_half_width(config, depth) + MAX_SLIDE_MM + depth * 0.06 + 2.0;
        let nx = (2.0 * half / GRID_MM).ceil() as usize;
        let nz = (((depth + offset) / (1.0 - MAX_COMPRESSION) + 2.0) / GRID_MM).ceil() as usize;
        let density = config.imaging.scatterer_density;
        let mut sparse = (density < 1.0).then(|| Rng::fork(config.seed, 8));
        let texture = Texture::new(&mut Rng::fork(config.seed, 2), 3.0);
        let fine = Texture::new(&mut Rng::fork(config.seed, 3), 0.8);
        let mut speckle = Rng::fork(config.seed, 4);
        let mut grid = TissueGrid {
            x_min: -half,
            nx,
            nz,
            scatterers: Vec::with_capacity(nx * nz),
            attenuation: Vec::with_capacity(nx * nz),
            labels: Vec::with_capacity(nx * nz),
        };
        // Complex Gaussian with E|s|^2 = 1: each part has variance 1/2.
        let scale = std::f32::consts::FRAC_1_SQRT_2;
        for ix in 0..nx {
            let x = -half + (ix as f64 + 0.5) * GRID_MM;
            let fat_bottom = layers.fat_bottom(x);
            let gland_bottom = layers.gland_bottom(x);
            for iz in 0..nz {
                let z = (iz as f64 + 0.5) * GRID_MM;
                let (mut amp, mut att, mut lab) = if uniform {
                    (tissue::GLAND.0, tissue::GLAND.1, label::GLAND)
                } else {
                    base_tissue(&layers, x, z, fat_bottom, gland_bottom, &texture, &fine)
                };
                for lesion in &lesions {
                    let (w, inside) = lesion.coverage(x, z);
                    if w > 0.0 {
                        let (l_amp, l_att) = lesion.material(x, z, fine.at(x, z));
                        let w = w as f32;
                        amp = amp * (1.0 - w) + l_amp * w;
                        att = att * (1.0 - w) + l_att * w;
                    }
                    if inside {
                        lab = label::LESION_BASE + lesion.id as u8;
                    }
                }
                let (ar, ai) = speckle.normal_pair();
                let (br, bi) = speckle.normal_pair();
                let mut a = amp * scale;
                if let Some(rng) = &mut sparse {
                    // Sparse scatterers, same mean power: fewer, stronger.
                    a *= if rng.uniform() < f64::from(density) {
                        density.sqrt().recip()
                    } else {
                        0.0
                    };
                }
                grid.scatterers.push(Scatterers {
                    a_re: ar * a,
                    a_im: ai * a,
                    b_re: br * a,
                    b_im: bi * a,
                });
                grid.attenuation.push(att);
                grid.labels.push(lab);
            }
        }
        for lesion in &lesions {
            for &(cx, cz) in &lesion.calcifications {
                add_calcification(&mut grid, cx, cz);
            }
        }
        if !uniform {
            add_shadows(config, &lesions, &mut grid, &mut Rng::fork(config.seed, 9));
        }
        Self { lesions, grid }
    }
}

/// A bright point reflector that attenuates strongly (a microcalcification).
fn add_calcification(grid: &mut TissueGrid, x: f64, z: f64) {
    for dx in [-0.1, 0.0, 0.1] {
        for dz in [-0.1, 0.0, 0.1] {
            if let Some(i) = grid.cell(x + dx, z + dz) {
                let s = &mut grid.scatterers[i];
                s.a_re = 6.0;
                s.a_im = 2.0;
                s.b_re = 5.0;
                s.b_im = -3.0;
                grid.attenuation[i] = 12.0;
            }
        }
    }
}

/// Shadowing structures without a lesion: a rib (a bright curved cortex
/// over a total shadow) or a thick Cooper's ligament (a bright oblique line
/// with a faint shadow), away from the lesions.
fn add_shadows(config: &PhantomConfig, lesions: &[Lesion], grid: &mut TissueGrid, rng: &mut Rng) {
    let offset = f64::from(config.imaging.depth_offset_mm);
    let depth = config.depth_mm();
    for _ in 0..config.anatomy.shadows {
        for _attempt in 0..20 {
            let z = offset + rng.range(0.15, 0.75) * depth;
            let half = visible_half_width(config, z - offset) - 2.0;
            if half <= 2.0 {
                break;
            }
            let x = rng.range(-half, half);
            let clear = lesions.iter().all(|l| {
                (l.center.0 - x).abs() > l.semi_axes.0 * 1.3 + 6.0 || l.center.1 + l.semi_axes.0 < z
            });
            if !clear {
                continue;
            }
            if rng.chance(0.5) {
                paint_rib(grid, (x, z), rng.range(5.0, 9.0), rng.range(2.5, 4.0));
            } else {
                let angle = rng.range(-0.6, 0.6);
                paint_ligament(
                    grid,
                    (x, z),
                    rng.range(6.0, 16.0),
                    angle,
                    rng.range(0.4, 0.9),
                );
            }
            break;
        }
    }
}

fn paint_rib(grid: &mut TissueGrid, (cx, cz): (f64, f64), a: f64, b: f64) {
    let cells = (a / GRID_MM).ceil() as i64;
    let rows = (b / GRID_MM).ceil() as i64;
    for i in -cells..=cells {
        for j in -rows..=rows {
            let (x, z) = (cx + i as f64 * GRID_MM, cz + j as f64 * GRID_MM);
            let r = ((x - cx) / a).powi(2) + ((z - cz) / b).powi(2);
            if r >= 1.0 {
                continue;
            }
            if let Some(k) = grid.cell(x, z) {
                // The cortex reflects; the bone behind it absorbs.
                let cortex = z < cz && r > 0.7;
                let s = &mut grid.scatterers[k];
                let gain = if cortex { 3.5 } else { 0.15 };
                s.a_re *= gain;
                s.a_im *= gain;
                s.b_re *= gain;
                s.b_im *= gain;
                grid.attenuation[k] = if cortex { 8.0 } else { 40.0 };
            }
        }
    }
}

fn paint_ligament(
    grid: &mut TissueGrid,
    (cx, cz): (f64, f64),
    length: f64,
    angle: f64,
    thick: f64,
) {
    let (c, s) = (angle.cos(), angle.sin());
    let steps = (length / GRID_MM) as i64;
    let across = (thick / GRID_MM).ceil() as i64;
    for i in -steps / 2..=steps / 2 {
        for j in -across / 2..=across / 2 {
            let (u, v) = (i as f64 * GRID_MM, j as f64 * GRID_MM);
            if let Some(k) = grid.cell(cx + u * c - v * s, cz + u * s + v * c) {
                let sc = &mut grid.scatterers[k];
                sc.a_re *= 2.5;
                sc.a_im *= 2.5;
                sc.b_re *= 2.5;
                sc.b_im *= 2.5;
                grid.attenuation[k] = 6.0;
            }
        }
    }
}

fn base_tissue(
    layers: &Layers,
    x: f64,
    z: f64,
    fat_bottom: f64,
    gland_bottom: f64,
    texture: &Texture,
    fine: &Texture,
) -> (f32, f32, u8) {
    if z < layers.skin {
        // The skin line: brightest at the surface.
        let boost = if z < 0.35 { 1.6 } else { 1.0 };
        return (tissue::SKIN.0 * boost, tissue::SKIN.1, label::SKIN);
    }
    if z < fat_bottom {
        // Fat lobules separated by thin, bright, oblique septa (Cooper's ligaments).
        let (tilt, period, phase) = layers.septa;
        let t = (x * tilt.cos() + z * 3.0 * tilt.sin()) / period * TAU
            + phase
            + 2.0 * f64::from(texture.at(x, z));
        let septum = t.sin() > 0.96;
        let (amp, att) = if septum { tissue::SEPTUM } else { tissue::FAT };
        return (amp * (0.85 + 0.3 * fine.at(x, z)), att, label::FAT);
    }
    if z < gland_bottom {
        // Fibroglandular tissue: bright, patchy.
        let patch = texture.at(x, z);
        return (
            tissue::GLAND.0 * (0.65 + 0.6 * patch),
            tissue::GLAND.1,
            label::GLAND,
        );
    }
    let muscle_top = gland_bottom;
    if z < muscle_top + 0.5 {
        return (tissue::FASCIA.0, tissue::FASCIA.1, label::MUSCLE);
    }
    // Muscle: fibres run roughly horizontally, giving striations.
    let stria = 0.6 + 0.8 * ((z * TAU / 1.4 + 0.15 * x).sin().abs() as f32).powi(3);
    let deep = if z > muscle_top + layers.muscle_thickness {
        0.8
    } else {
        1.0
    };
    (
        tissue::MUSCLE.0 * stria * deep,
        tissue::MUSCLE.1,
        label::MUSCLE,
    )
}

fn attributes_for(kind: LesionKind, rng: &mut Rng) -> LesionAttributes {
    use Calcifications as C;
    use PosteriorFeatures as P;
    match kind {
        LesionKind::SimpleCyst => LesionAttributes {
            shape: if rng.chance(0.6) {
                Shape::Oval
            } else {
                Shape::Round
            },
            orientation: Orientation::Parallel,
            margin: Margin::Circumscribed,
            echo_pattern: EchoPattern::Anechoic,
            posterior: P::Enhancement,
            calcifications: C::None,
        },
        LesionKind::ComplexCyst => LesionAttributes {
            shape: if rng.chance(0.7) {
                Shape::Oval
            } else {
                Shape::Round
            },
            orientation: Orientation::Parallel,
            margin: if rng.chance(0.7) {
                Margin::Circumscribed
            } else {
                Margin::Microlobulated
            },
            echo_pattern: EchoPattern::ComplexCysticSolid,
            posterior: P::Enhancement,
            calcifications: C::None,
        },
        LesionKind::BenignSolid => LesionAttributes {
            shape: Shape::Oval,
            orientation: Orientation::Parallel,
            margin: if rng.chance(0.8) {
                Margin::Circumscribed
            } else {
                Margin::Microlobulated
            },
            echo_pattern: rng.pick(&[
                EchoPattern::Hypoechoic,
                EchoPattern::Hypoechoic,
                EchoPattern::Isoechoic,
                EchoPattern::Hyperechoic,
            ]),
            posterior: rng.pick(&[P::None, P::None, P::Enhancement]),
            calcifications: C::None,
        },
        LesionKind::MalignantSolid => LesionAttributes {
            shape: if rng.chance(0.85) {
                Shape::Irregular
            } else {
                Shape::Round
            },
            orientation: if rng.chance(0.6) {
                Orientation::NotParallel
            } else {
                Orientation::Parallel
            },
            margin: rng.pick(&[
                Margin::Spiculated,
                Margin::Angular,
                Margin::Indistinct,
                Margin::Spiculated,
            ]),
            echo_pattern: rng.pick(&[
                EchoPattern::Hypoechoic,
                EchoPattern::Hypoechoic,
                EchoPattern::Heterogeneous,
            ]),
            posterior: rng.pick(&[P::Shadowing, P::Shadowing, P::None, P::Combined]),
            calcifications: if rng.chance(0.4) { C::InMass } else { C::None },
        },
    }
}

/// How far a drawn contrast stays from the thresholds that name its echo
/// pattern (dB).
const GUARD_DB: f32 = 2.0;
/// The least contrast (dB, either way) at which a lesion's outline, and so a
/// margin other than circumscribed, shows through speckle.
const OUTLINE_DB: f32 = 6.0;

/// A drawn contrast for a lesion of `kind` (dB against glandular tissue)
/// and the echo pattern it gives, when the anatomy has contrast bands;
/// the attributes' echo pattern is updated to match.
fn draw_contrast(
    kind: LesionKind,
    attributes: &mut LesionAttributes,
    anatomy: &Anatomy,
    rng: &mut Rng,
) -> Option<f32> {
    if anatomy.contrast_bands_db.is_empty() {
        return None;
    }
    let (lo, hi) = match (kind, attributes.echo_pattern) {
        (LesionKind::SimpleCyst | LesionKind::ComplexCyst, _) => (-45.0, ANECHOIC_BELOW_DB - 1.0),
        (_, EchoPattern::Heterogeneous) if attributes.margin == Margin::Circumscribed => {
            (-20.0, HYPOECHOIC_BELOW_DB - GUARD_DB)
        }
        (_, EchoPattern::Heterogeneous) => (-20.0, -OUTLINE_DB),
        _ => (ANECHOIC_BELOW_DB + 1.0, 30.0),
    };
    let solid = !matches!(
        attributes.echo_pattern,
        EchoPattern::Heterogeneous | EchoPattern::ComplexCysticSolid | EchoPattern::Anechoic
    );
    let contrast = if solid {
        // Each echo pattern the bands reach is as likely as any other, so
        // hyper- and isoechoic solids are not a rare slice of the range.
        // Each band stops GUARD_DB short of the thresholds that name the
        // pattern, so that the image decides the name. A margin other than
        // circumscribed is named only where its outline shows: OUTLINE_DB
        // or more from the tissue either way, never isoechoic.
        let circumscribed = attributes.margin == Margin::Circumscribed;
        let quiet = if circumscribed {
            GUARD_DB
        } else {
            OUTLINE_DB - ISOECHOIC_BELOW_DB
        };
        let mut patterns = vec![
            (lo, HYPOECHOIC_BELOW_DB - quiet),
            (ISOECHOIC_BELOW_DB + quiet, hi),
        ];
        if circumscribed {
            patterns.push((
                HYPOECHOIC_BELOW_DB + GUARD_DB,
                ISOECHOIC_BELOW_DB - GUARD_DB,
            ));
        }
        let reachable: Vec<(f32, f32)> = patterns
            .into_iter()
            .filter(|&(a, b)| a < b && anatomy.reaches(a, b))
            .collect();
        if reachable.is_empty() && !circumscribed {
            // Only isoechoic contrasts are in reach: no outline would show
            // an irregular margin, so the lesion is drawn circumscribed.
            attributes.margin = Margin::Circumscribed;
            return draw_contrast(kind, attributes, anatomy, rng);
        }
        let (a, b) = *reachable.get(rng.below(reachable.len().max(1)))?;
        anatomy.draw_contrast(a, b, rng)?
    } else {
        anatomy.draw_contrast(lo, hi, rng)?
    };
    if solid {
        attributes.echo_pattern = if contrast < HYPOECHOIC_BELOW_DB {
            EchoPattern::Hypoechoic
        } else if contrast < ISOECHOIC_BELOW_DB {
            EchoPattern::Isoechoic
        } else {
            EchoPattern::Hyperechoic
        };
    }
    Some(contrast)
}

fn build_lesion(
    id: u32,
    kind: LesionKind,
    center: (f64, f64),
    long_mm: f64,
    anatomy: &Anatomy,
    rng: &mut Rng,
) -> Lesion {
    let mut attributes = attributes_for(kind, rng);
    let contrast_db = draw_contrast(kind, &mut attributes, anatomy, rng);
    let aspect = match attributes.shape {
        Shape::Round => rng.range(0.85, 1.0),
        Shape::Oval => rng.range(0.5, 0.75),
        Shape::Irregular => rng.range(0.6, 0.9),
    };
    let a = long_mm / 2.0;
    let b = a * aspect;
    let angle = match attributes.orientation {
        Orientation::Parallel => rng.range(-0.2, 0.2),
        Orientation::NotParallel => PI / 2.0 + rng.range(-0.3, 0.3),
    };
    let mut harmonics = Vec::new();
    if attributes.shape == Shape::Irregular {
        harmonics.push((2.0, rng.range(0.06, 0.12), rng.range(0.0, TAU)));
        harmonics.push((3.0, rng.range(0.05, 0.10), rng.range(0.0, TAU)));
    }
    let mut spikes = Vec::new();
    let mut edge_blur = 0.0;
    match attributes.margin {
        Margin::Circumscribed => {}
        // Lobes at least 0.8 mm deep and 2.5 mm apart: shallower or finer
        // ones drown in the point-spread function (up to 2.5 mm wide) and
        // the speckle, and the margin would read circumscribed.
        Margin::Microlobulated => harmonics.push((
            rng.range(6.0, 9.0)
                .round()
                .min((TAU * a / 2.5).floor().max(4.0)),
            rng.range(0.08, 0.12).max(0.8 / a).min(0.3),
            rng.range(0.0, TAU),
        )),
        // Three or four broad corners, evenly spaced: a polygon with
        // straight sides and sharp corners, not a ring of spicules.
        Margin::Angular => {
            let corners = if rng.chance(0.5) { 3 } else { 4 };
            let turn = rng.range(0.0, TAU);
            for i in 0..corners {
                spikes.push((
                    turn + TAU * f64::from(i) / f64::from(corners) + rng.range(-0.15, 0.15),
                    // At least 1.5 mm out, wider than the point-spread function.
                    rng.range(0.4, 0.55).max(1.5 / b).min(1.2),
                    rng.range(0.6, 0.8),
                ));
            }
        }
        // Spicules long and wide enough at their base to show through the
        // speckle: thinner ones vanish and the margin reads circumscribed.
        Margin::Spiculated => {
            for _ in 0..rng.range(10.0, 16.0) as usize {
                spikes.push((
                    rng.range(0.0, TAU),
                    // At least 2.5 mm long, even on a small lesion.
                    rng.range(0.6, 1.0).max(2.5 / b).min(2.5),
                    rng.range(0.12, 0.2),
                ));
            }
        }
        // A ramp at least 1.2 mm wide: a narrower one is only the PSF's own blur.
        Margin::Indistinct => edge_blur = rng.range(0.45, 0.65).max(1.2 / a).min(0.8),
    }
    let (mut amplitude, attenuation) = match attributes.echo_pattern {
        EchoPattern::Anechoic | EchoPattern::ComplexCysticSolid => (0.02, 0.05),
        EchoPattern::Hypoechoic => (0.22, 0.75),
        EchoPattern::Isoechoic => (0.45, 0.75),
        EchoPattern::Hyperechoic => (1.6, 0.9),
        EchoPattern::Heterogeneous => (0.3, 0.75),
    };
    if let Some(db) = contrast_db {
        amplitude = 10f32.powf(db / 20.0);
    }
    // An isoechoic lesion shows only by its margin: a thin capsule or halo.
    // With drawn contrasts, other solids get one at times too.
    // A crisp rim would give an indistinct margin a clear edge: none there
    // (and no such lesion is isoechoic, see `draw_contrast`).
    let rim = match (contrast_db, attributes.echo_pattern) {
        (Some(_), EchoPattern::Isoechoic) => Some(rim_for(a_rim(long_mm), rng)),
        (Some(_), EchoPattern::Hypoechoic | EchoPattern::Hyperechoic) if rng.chance(0.25) => {
            Some(rim_for(a_rim(long_mm), rng))
        }
        _ => None,
    }
    .filter(|_| attributes.margin != Margin::Indistinct);
    // Posterior features follow from attenuation, as in tissue.
    let attenuation = match attributes.posterior {
        PosteriorFeatures::Enhancement if attenuation > 0.1 => 0.25,
        PosteriorFeatures::Shadowing => 3.5,
        PosteriorFeatures::Combined => 2.0,
        _ => attenuation,
    };
    let nodule = (attributes.echo_pattern == EchoPattern::ComplexCysticSolid).then(|| {
        (
            (rng.range(-0.4, 0.4), rng.range(0.1, 0.4)),
            // A radius of at least 1 mm (its unit is the short semi-axis): a
            // smaller nodule cannot be seen, and the cyst would look simple.
            rng.range(0.3, 0.45).max(1.0 / b).min(0.55),
        )
    });
    let class = match kind {
        LesionKind::SimpleCyst => FindingClass::Cyst,
        _ => FindingClass::Mass,
    };
    let calcifications = if attributes.calcifications == Calcifications::InMass {
        (0..rng.range(3.0, 7.0) as usize)
            .map(|_| {
                let (r, t) = (rng.range(0.0, 0.6), rng.range(0.0, TAU));
                (center.0 + r * a * t.cos(), center.1 + r * b * t.sin())
            })
            .collect()
    } else {
        Vec::new()
    };
    Lesion {
        id,
        kind,
        class,
        attributes,
        center,
        semi_axes: (a, b),
        angle,
        harmonics,
        spikes,
        edge_blur,
        amplitude,
        attenuation,
        nodule,
        calcifications,
        contrast_db,
        rim,
    }
}

/// A rim about 1.1 mm wide (at most a third of the lesion's radius), as a
/// fraction of that radius. Narrower than the point-spread function (about
/// a millimetre laterally), a rim drowns in the speckle and the lesion it
/// marks cannot be seen at all.
fn a_rim(long_mm: f64) -> f64 {
    (1.1 / (long_mm / 2.0)).min(0.35)
}

/// An echogenic capsule (+11 to +16 dB) or a dark halo (-20 to -12 dB):
/// strong enough to show through fully developed speckle.
fn rim_for(width: f64, rng: &mut Rng) -> (f64, f32) {
    let factor = if rng.chance(0.6) {
        rng.range(3.5, 6.0)
    } else {
        rng.range(0.1, 0.25)
    };
    (width * rng.range(0.75, 1.25), factor as f32)
}

/// Places lesions in the gland (or, with `anatomy.anywhere`, anywhere in
/// the image), inside the image under any motion, not touching each other.
fn place_lesions(config: &PhantomConfig, layers: &Layers, rng: &mut Rng) -> Vec<Lesion> {
    let depth = config.depth_mm();
    let anatomy = &config.anatomy;
    let offset = f64::from(config.imaging.depth_offset_mm);
    // The tissue depths the image shows, under any compression.
    let (view_top, view_bottom) = (offset, offset + depth * (1.0 - MAX_COMPRESSION));
    let mut lesions: Vec<Lesion> = Vec::new();
    for _ in 0..config.lesions {
        let kind = config
            .lesion_kind
            .unwrap_or_else(|| rng.pick(&LesionKind::ALL));
        for _attempt in 0..50 {
            let long = match anatomy.lesion_size_mm {
                // Log-uniform: as many small lesions as large ones.
                Some([lo, hi]) => {
                    let hi = f64::from(hi).min(0.7 * depth).max(f64::from(lo));
                    (f64::from(lo).ln() + rng.uniform() * (hi.ln() - f64::from(lo).ln())).exp()
                }
                // Sized to the view: at most about 40% of the depth.
                None => rng.range(6.0, (0.4 * depth).clamp(8.0, 22.0)),
            };
            let reach = long * 0.75;
            let (in_view_lo, in_view_hi) = (view_top + reach + 1.0, view_bottom - reach - 1.0);
            let (z_lo, z_hi) = if anatomy.anywhere {
                (in_view_lo, in_view_hi)
            } else {
                let z_lo = (layers.fat.0 + reach * 0.6).max(reach + 3.0);
                let z_hi = (depth * (1.0 - MAX_COMPRESSION) - reach - 2.0)
                    .min(layers.gland.0 + 6.0)
                    .max(z_lo + 0.1);
                if offset > 0.0 {
                    (z_lo.max(in_view_lo), z_hi.min(in_view_hi))
                } else {
                    (z_lo, z_hi)
                }
            };
            if z_hi <= z_lo {
                continue;
            }
            let z = rng.range(z_lo, z_hi);
            let half = visible_half_width(config, z - offset - reach) - MAX_SLIDE_MM - reach - 1.0;
            if half <= 0.0 {
                continue;
            }
            let x = rng.range(-half, half);
            let lesion = build_lesion(lesions.len() as u32, kind, (x, z), long, anatomy, rng);
            let clear = lesions.iter().all(|o| {
                let d = ((o.center.0 - x).powi(2) + (o.center.1 - z).powi(2)).sqrt();
                d > (o.semi_axes.0 + lesion.semi_axes.0) * 1.5
            });
            if clear {
                lesions.push(lesion);
                break;
            }
        }
    }
    lesions
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every lesion kind at sizes from 3 to 30 mm over many draws.
    fn drawn_lesions() -> Vec<Lesion> {
        let anatomy = Anatomy {
            contrast_bands_db: vec![[-40.0, 12.0]],
            ..Anatomy::default()
        };
        let mut rng = Rng::new(17);
        let kinds = [
            LesionKind::SimpleCyst,
            LesionKind::ComplexCyst,
            LesionKind::BenignSolid,
            LesionKind::MalignantSolid,
        ];
        let mut lesions = Vec::new();
        for i in 0..4000u32 {
            let long_mm = 3.0 + f64::from(i % 28);
            let kind = kinds[i as usize % kinds.len()];
            lesions.push(build_lesion(
                i,
                kind,
                (20.0, 15.0),
                long_mm,
                &anatomy,
                &mut rng,
            ));
        }
        lesions
    }

    #[test]
    fn drawn_contrasts_keep_clear_of_the_echo_thresholds_and_irregular_margins_show() {
        let mut solids = 0;
        for lesion in drawn_lesions() {
            let Some(db) = lesion.contrast_db else {
                continue;
            };
            let pattern = lesion.attributes.echo_pattern;
            if !matches!(
                pattern,
                EchoPattern::Hypoechoic | EchoPattern::Isoechoic | EchoPattern::Hyperechoic
            ) {
                continue;
            }
            solids += 1;
            for threshold in [HYPOECHOIC_BELOW_DB, ISOECHOIC_BELOW_DB] {
                assert!(
                    (db - threshold).abs() >= GUARD_DB - 1e-4,
                    "{db} dB is within {GUARD_DB} dB of {threshold} ({pattern:?})"
                );
            }
            if lesion.attributes.margin != Margin::Circumscribed {
                assert!(
                    db.abs() >= OUTLINE_DB - 1e-4,
                    "{:?} margin at {db} dB does not show",
                    lesion.attributes.margin
                );
            }
        }
        assert!(solids > 1000, "{solids}");
    }

    #[test]
    fn the_descriptors_the_truth_names_are_drawn_big_enough_to_be_seen() {
        let (mut lobed, mut blurred, mut nodules, mut cornered) = (0, 0, 0, 0);
        for lesion in drawn_lesions() {
            let (a, b) = lesion.semi_axes;
            match lesion.attributes.margin {
                Margin::Microlobulated if a >= 0.8 / 0.3 => {
                    lobed += 1;
                    let lobes = lesion.harmonics.last().copied().unwrap_or_default();
                    assert!(
                        lobes.0 <= 9.0 && TAU * a / lobes.0 >= 2.5 - 1e-9,
                        "lobes 2.5 mm apart: {lobes:?} a {a}"
                    );
                    assert!(
                        lobes.1 * a >= 0.8 - 1e-9,
                        "lobes 0.8 mm deep: {lobes:?} a {a}"
                    );
                }
                Margin::Angular => {
                    cornered += 1;
                    assert!((3..=4).contains(&lesion.spikes.len()), "3 or 4 corners");
                    if b >= 1.5 / 1.2 {
                        assert!(
                            lesion.spikes.iter().all(|s| s.1 * b >= 1.5 - 1e-9),
                            "corners 1.5 mm out: {:?} b {b}",
                            lesion.spikes
                        );
                    }
                }
                Margin::Indistinct => {
                    // Nothing else would show it: never isoechoic, no crisp rim.
                    assert_ne!(lesion.attributes.echo_pattern, EchoPattern::Isoechoic);
                    assert!(lesion.rim.is_none());
                    if a >= 1.5 {
                        blurred += 1;
                        assert!(
                            lesion.edge_blur * a >= 1.2 - 1e-9,
                            "a 1.2 mm ramp: {}",
                            lesion.edge_blur
                        );
                    }
                }
                Margin::Spiculated => {
                    assert!(lesion.spikes.len() >= 10);
                    assert!(
                        lesion.spikes.iter().all(|s| s.1 >= 0.6 && s.2 >= 0.12),
                        "{:?}",
                        lesion.spikes
                    );
                    if b >= 1.0 {
                        assert!(
                            lesion.spikes.iter().all(|s| s.1 * b >= 2.5 - 1e-9),
                            "spicules 2.5 mm long: {:?} b {b}",
                            lesion.spikes
                        );
                    }
                }
                _ => {}
            }
            if let Some((_, radius)) = lesion.nodule {
                if b >= 1.0 / 0.55 {
                    nodules += 1;
                    assert!(
                        radius * a.min(b) >= 1.0 - 1e-9,
                        "a 1 mm nodule: {radius} of {b}"
                    );
                }
            }
        }
        assert!(
            lobed > 50 && blurred > 50 && nodules > 200 && cornered > 50,
            "{lobed} {blurred} {nodules} {cornered}"
        );
    }
}
