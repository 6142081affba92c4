//! A task's mask logits (model resolution) sampled at every frame pixel
//! centre through the inverse of the preprocessing: frame pixel (x, y) has
//! model coordinate (u, v) = geometry.to_model(x + 0.5, y + 0.5); the
//! logits grid of `width` x `height` covers the model input, so the logit
//! is read bilinearly at ((u / input_width) * width - 0.5, likewise v),
//! clamped to the grid. Pixels outside the crop are outside the mask.
//! NaN logits count as outside.

use sonoflow_core::ModelOutputs;

/// Per-pixel logits and the thresholded mask of one task over a whole frame.
#[derive(Debug, Default)]
pub struct FrameMask {
    pub width: u32,
    pub height: u32,
    /// Logit per frame pixel (`f32::NEG_INFINITY` outside the crop).
    pub logits: Vec<f32>,
    /// 1 where the logit is above `cut`.
    pub inside: Vec<u8>,
    /// The logit the mask is cut at (0: probability 0.5; `[perception]
    /// mask_threshold`).
    pub cut: f32,
    /// The crop in frame pixels (x, y, width, height): nothing lies outside it.
    pub crop: (u32, u32, u32, u32),
    /// Per-column and per-row sampling tables, rebuilt when the geometry changes.
    cols: Vec<(u32, u32, f32)>,
    /// Per grid row: any logit above the floor (scratch).
    live_rows: Vec<bool>,
    rows: Vec<(u32, u32, f32)>,
    key: Option<(sonoflow_core::ModelGeometry, usize, usize, u32, u32)>,
}

impl FrameMask {
    /// Samples row `task` of `outputs` over a `width` x `height` frame.
    /// Frame rows whose grid rows (and their neighbours) hold no logit
    /// above `floor` are not interpolated: their logits are set to `floor`
    /// (they are below every threshold anyone cuts at, `cut` included),
    /// which keeps mostly empty masks cheap on large frames.
    pub fn sample_above(
        &mut self,
        outputs: &ModelOutputs,
        task: usize,
        width: u32,
        height: u32,
        floor: f32,
    ) {
        let g = outputs.geometry;
        let key = (g, outputs.width, outputs.height, width, height);
        let n = (width * height) as usize;
        if self.key != Some(key) {
            self.width = width;
            self.height = height;
            // Outside the crop nothing is ever written: cleared once per geometry.
            self.logits.clear();
            self.logits.resize(n, f32::NEG_INFINITY);
            self.inside.clear();
            self.inside.resize(n, 0);
            let x1 = (g.crop.0 + g.crop.2).min(width);
            let y1 = (g.crop.1 + g.crop.3).min(height);
            self.crop = (
                g.crop.0.min(x1),
                g.crop.1.min(y1),
                x1 - g.crop.0.min(x1),
                y1 - g.crop.1.min(y1),
            );
            self.cols.clear();
            for x in self.crop.0..self.crop.0 + self.crop.2 {
                let (u, _) = g.to_model(x as f32 + 0.5, 0.0);
                self.cols.push(tap(
                    u / g.input_width.max(1) as f32 * outputs.width as f32 - 0.5,
                    outputs.width,
                ));
            }
            self.rows.clear();
            for y in self.crop.1..self.crop.1 + self.crop.3 {
                let (_, v) = g.to_model(0.0, y as f32 + 0.5);
                self.rows.push(tap(
                    v / g.input_height.max(1) as f32 * outputs.height as f32 - 0.5,
                    outputs.height,
                ));
            }
            self.key = Some(key);
        }
        let plane = outputs.width * outputs.height;
        let Some(grid) = outputs.mask_logits.get(task * plane..(task + 1) * plane) else {
            self.logits.fill(f32::NEG_INFINITY);
            self.inside.fill(0);
            return;
        };
        let (cx, cy) = (self.crop.0 as usize, self.crop.1 as usize);
        // Grid rows with a logit above the floor, widened by one row each way.
        self.live_rows.clear();
        self.live_rows.extend(
            grid.chunks_exact(outputs.width.max(1))
                .map(|row| row.iter().any(|&l| l > floor)),
        );
        let gh = self.live_rows.len();
        for (j, &(r0, r1, wy)) in self.rows.iter().enumerate() {
            let live = (r0.saturating_sub(1) as usize
                ..=(r1 as usize + 1).min(gh.saturating_sub(1)))
                .any(|r| self.live_rows[r]);
            if !live {
                let at = (cy + j) * width as usize + cx;
                self.logits[at..at + self.cols.len()].fill(floor);
                self.inside[at..at + self.cols.len()].fill(0);
                continue;
            }
            let row0 = &grid[r0 as usize * outputs.width..][..outputs.width];
            let row1 = &grid[r1 as usize * outputs.width..][..outputs.width];
            let at = (cy + j) * width as usize + cx;
            for (i, &(c0, c1, wx)) in self.cols.iter().enumerate() {
                let top = row0[c0 as usize] * (1.0 - wx) + row0[c1 as usize] * wx;
                let bottom = row1[c0 as usize] * (1.0 - wx) + row1[c1 as usize] * wx;
                let l = top * (1.0 - wy) + bottom * wy;
                self.logits[at + i] = l;
                self.inside[at + i] = u8::from(l > self.cut);
            }
        }
    }

    /// Samples every pixel of row `task` (no floor).
    pub fn sample(&mut self, outputs: &ModelOutputs, task: usize, width: u32, height: u32) {
        self.sample_above(outputs, task, width, height, f32::NEG_INFINITY);
    }

    /// A mask over a whole `width` x `height` frame from a logit per pixel
    /// (hand-made masks, tests).
    pub fn from_logits(width: u32, height: u32, logit: impl Fn(u32, u32) -> f32) -> Self {
        let mut m = FrameMask {
            width,
            height,
            crop: (0, 0, width, height),
            ..FrameMask::default()
        };
        for y in 0..height {
            for x in 0..width {
                let l = logit(x, y);
                m.logits.push(l);
                m.inside.push(u8::from(l > 0.0));
            }
        }
        m
    }

    pub fn get(&self, x: u32, y: u32) -> bool {
        self.inside[(y * self.width + x) as usize] != 0
    }

    /// Pixels inside the mask.
    pub fn count(&self) -> u32 {
        self.inside.iter().map(|&v| u32::from(v)).sum()
    }
}

/// The two grid indices and the weight of the second for coordinate `f`.
fn tap(f: f32, len: usize) -> (u32, u32, f32) {
    let last = len.saturating_sub(1) as f32;
    let f = if f.is_nan() { 0.0 } else { f.clamp(0.0, last) };
    let lo = f.floor();
    (lo as u32, (lo as u32 + 1).min(last as u32), f - lo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonoflow_core::{BufferPool, ModelGeometry};

    /// Outputs of one task over a 4x4 grid for an 8x8 model input that is a
    /// 16x16 crop at (10, 20) of the frame.
    pub(crate) fn outputs(values: &[f32], side: usize) -> ModelOutputs {
        let pool = BufferPool::new(2);
        let mut mask_logits = pool.acquire(values.len());
        mask_logits.copy_from_slice(values);
        let scores = pool.acquire(0);
        ModelOutputs {
            geometry: ModelGeometry {
                input_width: 8,
                input_height: 8,
                crop: (10, 20, 16, 16),
                scale_x: 0.5,
                scale_y: 0.5,
                pad_x: 0.0,
                pad_y: 0.0,
            },
            kernel_version: 0,
            tasks: values.len() / (side * side),
            height: side,
            width: side,
            mask_logits,
            scores,
            image_tokens: None,
        }
    }

    #[test]
    fn a_positive_cell_maps_to_its_frame_pixels_and_nothing_outside_the_crop() {
        let mut v = vec![-5.0; 16];
        v[5] = 5.0; // grid (1, 1): model 2..4, frame 14..18 and 24..28
        let mut m = FrameMask::default();
        m.sample(&outputs(&v, 4), 0, 40, 40);
        assert!(m.get(15, 25) && m.get(16, 26));
        assert!(!m.get(11, 21) && !m.get(5, 5) && !m.get(30, 30));
        assert!(m.count() > 4 && m.count() < 36, "{}", m.count());
    }

    #[test]
    fn rows_far_below_the_floor_are_skipped_and_the_rest_sampled_exactly() {
        let mut v = vec![-5.0; 16];
        v[5] = 5.0;
        let (mut full, mut fast) = (FrameMask::default(), FrameMask::default());
        full.sample(&outputs(&v, 4), 0, 40, 40);
        fast.sample_above(&outputs(&v, 4), 0, 40, 40, -2.0);
        assert_eq!(full.inside, fast.inside);
        for (a, b) in full.logits.iter().zip(&fast.logits) {
            assert!(a == b || (*a <= -2.0 && *b == -2.0), "{a} vs {b}");
        }
    }

    #[test]
    fn a_lower_cut_grows_the_mask_and_keeps_what_the_higher_one_had() {
        // A logit falling from the centre outwards (4 at grid (1, 1), 1 next
        // to it): cut at 0 and at -1 (probability 0.27).
        let mut v = vec![-3.0; 16];
        v[5] = 4.0;
        for at in [1, 4, 6, 9] {
            v[at] = 1.0;
        }
        let (mut half, mut lower) = (FrameMask::default(), FrameMask::default());
        lower.cut = -1.0;
        half.sample(&outputs(&v, 4), 0, 40, 40);
        lower.sample(&outputs(&v, 4), 0, 40, 40);
        assert_eq!(half.logits, lower.logits, "the cut moves no logit");
        assert!(
            lower.count() > half.count(),
            "{} vs {}",
            lower.count(),
            half.count()
        );
        assert!(half.inside.iter().zip(&lower.inside).all(|(&h, &l)| h <= l));
    }

    #[test]
    fn nan_logits_and_a_missing_task_give_an_empty_mask() {
        let mut m = FrameMask::default();
        m.sample(&outputs(&[f32::NAN; 16], 4), 0, 40, 40);
        assert_eq!(m.count(), 0);
        m.sample(&outputs(&[5.0; 16], 4), 3, 40, 40);
        assert_eq!(m.count(), 0);
    }
}
