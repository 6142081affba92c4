//! sonoflow-phantom: a real-time B-mode ultrasound simulator with ground
//! truth. It is the default live source of `sonoflow run`, the fixture of
//! every test that needs ultrasound frames, and the generator of the demo
//! model's training data (`sonoflow phantom export`).
//!
//! Start with [`Phantom::new`] and [`Phantom::render`]. The physics is in
//! [`render`] (point-spread function, attenuation, TGC, log compression,
//! scan conversion) and [`scene`] (tissue, lesions, scatterers); the cart's
//! screen in [`screen`]; the ground truth in [`truth`]; the lesion vocabulary
//! (after the BI-RADS ultrasound lexicon) in [`lexicon`]. A seed makes every
//! sequence exactly reproducible: time is the frame index over the frame
//! rate, never the clock.

pub mod appearance;
pub mod config;
pub mod conspicuity;
pub mod export;
pub mod ideal;
pub mod lexicon;
pub mod motion;
pub mod probe;
pub mod render;
mod rng;
pub mod scene;
pub mod screen;
pub mod truth;

#[cfg(test)]
mod tests;

use sonoflow_core::findings::GroundTruth;
use sonoflow_core::{
    Calibration, ConfigIssue, Frame, FrameFormat, FrameId, FramePool, PixelFormat, StageStamps,
};

pub use appearance::{Anatomy, Imaging, Look, Variation};
pub use config::{LesionKind, PhantomConfig, ProbeKind, SceneKind, DEPTH_PRESETS_CM};
pub use lexicon::{Assessment, FindingClass, LesionAttributes};
pub use motion::{MotionModel, Pose};
pub use probe::{Layout, ProbeGeometry};

#[derive(Debug, thiserror::Error)]
pub enum PhantomError {
    #[error("phantom settings: {0}")]
    Config(#[from] ConfigIssue),
}

/// One phantom sequence: a scene seen through a moving probe.
pub struct Phantom {
    config: PhantomConfig,
    geometry: ProbeGeometry,
    layout: Layout,
    scene: scene::Scene,
    motion: MotionModel,
    renderer: render::Renderer,
}

impl Phantom {
    /// A phantom of `config`; with `config.variation` set, its look and
    /// scene knobs are drawn from the seed first (see [`Phantom::config`]).
    pub fn new(config: PhantomConfig) -> Result<Self, PhantomError> {
        config.validate("phantom")?;
        let config = config.resolved();
        let geometry = ProbeGeometry::new(&config);
        let layout = Layout::new(&config, &geometry);
        let background = screen::draw_background(&config, &geometry, &layout);
        let renderer = render::Renderer::new(&config, &geometry, &layout, background);
        let scene = scene::Scene::new(&config);
        let motion = MotionModel::new(config.seed, config.motion);
        Ok(Self {
            config,
            geometry,
            layout,
            scene,
            motion,
            renderer,
        })
    }

    /// The settings in force: with a variation, the drawn ones.
    pub fn config(&self) -> &PhantomConfig {
        &self.config
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn geometry(&self) -> &ProbeGeometry {
        &self.geometry
    }

    pub fn scene(&self) -> &scene::Scene {
        &self.scene
    }

    pub fn format(&self) -> FrameFormat {
        FrameFormat {
            pixel: PixelFormat::Gray8,
            width: self.config.width,
            height: self.config.height,
        }
    }

    /// The probe's pose at frame `index`.
    pub fn pose(&self, index: u64) -> Pose {
        Pose {
            depth_offset_mm: f64::from(self.config.imaging.depth_offset_mm),
            ..self
                .motion
                .pose_at(index as f64 / f64::from(self.config.fps))
        }
    }

    /// Renders frame `index` into `out` (GRAY8, width x height) without ground truth.
    pub fn render_image(&mut self, index: u64, out: &mut [u8]) {
        let pose = self.pose(index);
        self.renderer.render(&self.scene, &pose, index, out);
    }

    /// Frame `index` as the pipeline carries it (GRAY8 pixels from `pool`,
    /// its calibration set), beside its ground truth: for
    /// tests and benches that hand a model single frames.
    pub fn render_frame(&mut self, index: u64, pool: &FramePool) -> (Frame, GroundTruth) {
        let format = self.format();
        let mut data = pool.acquire(format.len());
        let truth = self.render(index, &mut data);
        let mut frame = Frame::new(FrameId(index), format, data, StageStamps::default());
        frame.calibration = Some(std::sync::Arc::new(Calibration::of_truth(&truth)));
        (frame, truth)
    }

    /// Renders frame `index` into `out` and returns its ground truth.
    pub fn render(&mut self, index: u64, out: &mut [u8]) -> GroundTruth {
        let pose = self.pose(index);
        self.renderer.render(&self.scene, &pose, index, out);
        self.truth_for(index, &pose)
    }

    fn truth_for(&self, index: u64, pose: &Pose) -> GroundTruth {
        let labels = truth::label_map(
            &self.scene,
            &self.layout,
            pose,
            self.renderer.region_pixels(),
        );
        let lesions = truth::lesions(&self.scene, &self.layout, pose, &labels);
        // A live run is one scene seen frame after frame: no scene to
        // resample (an export records its sequences in truth.jsonl).
        GroundTruth {
            frame_index: index,
            scene: None,
            pixel_spacing: self.layout.pixel_spacing(),
            region: self.layout.region,
            lesions,
            labels,
        }
    }

    /// The detected envelope of the last rendered frame, [sample][beam],
    /// before attenuation, TGC and log compression.
    pub fn envelope(&self) -> &[f32] {
        self.renderer.envelope()
    }
}

/// Speckle calibration: mean / standard deviation of the detected envelope
/// over the middle of a uniform phantom (fully developed speckle is
/// Rayleigh distributed, for which the ratio is 1.913).
pub fn speckle_ratio(probe: ProbeKind, seed: u64) -> Result<f64, PhantomError> {
    use probe::{BEAMS, SAMPLES};
    let config = PhantomConfig {
        probe,
        scene: SceneKind::Uniform,
        seed,
        motion: false,
        ..PhantomConfig::default()
    };
    let mut phantom = Phantom::new(config)?;
    let mut pixels = vec![0u8; phantom.format().len()];
    phantom.render_image(0, &mut pixels);
    let env = phantom.envelope();
    let (mut n, mut sum, mut sq) = (0f64, 0f64, 0f64);
    for s in SAMPLES / 8..SAMPLES * 7 / 8 {
        for b in BEAMS / 8..BEAMS * 7 / 8 {
            let v = f64::from(env[s * BEAMS + b]);
            n += 1.0;
            sum += v;
            sq += v * v;
        }
    }
    let mean = sum / n;
    Ok(mean / (sq / n - mean * mean).sqrt())
}
