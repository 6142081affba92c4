//! What a perfect model would output for a phantom frame: mask logits on a
//! model's grid, computed from the ground truth. Post-processing tests and
//! benches feed these through the same path as real model outputs, so
//! their calipers can be checked against the phantom's own.
//!
//! The model input is the image region letterboxed into a square of
//! `input` pixels; the logits grid (`grid` x `grid`) covers it; each cell
//! holds the signed distance (frame pixels over 2, positive inside) from
//! its centre to the nearest lesion edge. Segmentation and detection rows
//! are the same.

use sonoflow_core::findings::{label, GroundTruth};
use sonoflow_core::{BufferPool, ModelGeometry, ModelOutputs};

/// The letterbox of `truth`'s image region (in a `width` x `height` frame)
/// into a square model input of `input` pixels.
pub fn letterbox(truth: &GroundTruth, width: u32, height: u32, input: u32) -> ModelGeometry {
    let b = truth.region.bounds();
    let x0 = (b.x0.max(0.0).floor() as u32).min(width.saturating_sub(1));
    let y0 = (b.y0.max(0.0).floor() as u32).min(height.saturating_sub(1));
    let x1 = (b.x1.ceil().max(0.0) as u32).clamp(x0 + 1, width.max(x0 + 1));
    let y1 = (b.y1.ceil().max(0.0) as u32).clamp(y0 + 1, height.max(y0 + 1));
    let (w, h) = (x1 - x0, y1 - y0);
    let scale = (input as f32 / w as f32).min(input as f32 / h as f32);
    ModelGeometry {
        input_width: input,
        input_height: input,
        crop: (x0, y0, w, h),
        scale_x: scale,
        scale_y: scale,
        pad_x: (input as f32 - w as f32 * scale) / 2.0,
        pad_y: (input as f32 - h as f32 * scale) / 2.0,
    }
}

/// Two rows (segmentation, detection) of ideal logits on a `grid` x `grid` grid.
pub fn outputs(truth: &GroundTruth, geometry: ModelGeometry, grid: usize) -> ModelOutputs {
    let labels = &truth.labels;
    let lesion = |x: i64, y: i64| {
        x >= 0
            && y >= 0
            && (x as u32) < labels.width
            && (y as u32) < labels.height
            && labels.get(x as u32, y as u32) >= label::LESION_BASE
    };
    let mut edges = Vec::new();
    for y in 0..i64::from(labels.height) {
        for x in 0..i64::from(labels.width) {
            if lesion(x, y) != lesion(x + 1, y) {
                edges.push((x as f32 + 1.0, y as f32 + 0.5));
            }
            if lesion(x, y) != lesion(x, y + 1) {
                edges.push((x as f32 + 0.5, y as f32 + 1.0));
            }
        }
    }
    let pool = BufferPool::new(2);
    let plane = grid * grid;
    let mut logits = pool.acquire(2 * plane);
    for gy in 0..grid {
        for gx in 0..grid {
            let u = (gx as f32 + 0.5) / grid as f32 * geometry.input_width as f32;
            let v = (gy as f32 + 0.5) / grid as f32 * geometry.input_height as f32;
            let (x, y) = geometry.to_frame(u, v);
            let d = edges
                .iter()
                .map(|&(ex, ey)| (ex - x).powi(2) + (ey - y).powi(2))
                .fold(f32::MAX, f32::min)
                .sqrt();
            let l = match (edges.is_empty(), lesion(x.floor() as i64, y.floor() as i64)) {
                (true, _) => -8.0,
                (false, true) => d / 2.0,
                (false, false) => -d / 2.0,
            };
            logits[gy * grid + gx] = l;
            logits[plane + gy * grid + gx] = l;
        }
    }
    ModelOutputs {
        geometry,
        kernel_version: 0,
        tasks: 2,
        height: grid,
        width: grid,
        mask_logits: logits,
        scores: pool.acquire(0),
        image_tokens: None,
    }
}
