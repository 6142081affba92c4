//! Frame to model input: crop the image region, resize (letterbox or
//! stretch) with bilinear sampling, normalise, written straight into the
//! input tensor's memory. The sampling tables are built once per frame
//! geometry ([`ResizePlan`]); filling an input allocates nothing.
//!
//! Coordinates: a model pixel centre (u + 0.5, v + 0.5) comes from frame
//! position x = x0 + (u + 0.5 - pad_x) / scale_x, y = y0 + (v + 0.5 - pad_y) / scale_y;
//! [`ResizePlan::to_frame`] applies exactly that, so post-processing can
//! map masks and points back to frame pixels.

use sonoflow_core::findings::ImageRegion;
use sonoflow_core::{Frame, FrameFormat, ModelGeometry, PixelFormat};
use sonoflow_model::{Crop, Preprocess, Resize};

/// One axis of the resize: for each model index, two source indices and a weight.
#[derive(Debug, Clone, PartialEq)]
struct Axis {
    lo: Vec<u32>,
    hi: Vec<u32>,
    w: Vec<f32>,
    /// Model indices that fall on padding.
    pad: Vec<bool>,
}

/// How frames of one geometry map onto the model input, and back.
#[derive(Debug, Clone, PartialEq)]
pub struct ResizePlan {
    pub frame: FrameFormat,
    /// The crop in frame pixels: x0, y0, width, height.
    pub crop: (u32, u32, u32, u32),
    pub scale_x: f32,
    pub scale_y: f32,
    pub pad_x: f32,
    pub pad_y: f32,
    x: Axis,
    y: Axis,
}

impl ResizePlan {
    pub fn new(p: &Preprocess, frame: FrameFormat, region: Option<&ImageRegion>) -> Self {
        let crop = match (p.crop, region) {
            (Crop::ImageRegion, Some(r)) => {
                let b = r.bounds();
                let x0 = b.x0.max(0.0).floor() as u32;
                let y0 = b.y0.max(0.0).floor() as u32;
                let x1 = (b.x1.ceil() as u32).clamp(x0 + 1, frame.width);
                let y1 = (b.y1.ceil() as u32).clamp(y0 + 1, frame.height);
                (
                    x0.min(frame.width - 1),
                    y0.min(frame.height - 1),
                    x1 - x0.min(frame.width - 1),
                    y1 - y0.min(frame.height - 1),
                )
            }
            _ => (0, 0, frame.width, frame.height),
        };
        let (cw, ch) = (crop.2 as f32, crop.3 as f32);
        let (mw, mh) = (p.width as f32, p.height as f32);
        let (scale_x, scale_y) = match p.resize {
            Resize::Stretch => (mw / cw, mh / ch),
            Resize::Letterbox => {
                let s = (mw / cw).min(mh / ch);
                (s, s)
            }
        };
        let pad_x = (mw - cw * scale_x) / 2.0;
        let pad_y = (mh - ch * scale_y) / 2.0;
        Self {
            frame,
            crop,
            scale_x,
            scale_y,
            pad_x,
            pad_y,
            x: axis(p.width, crop.0, crop.2, scale_x, pad_x),
            y: axis(p.height, crop.1, crop.3, scale_y, pad_y),
        }
    }

    /// Frame pixel coordinates of a model coordinate (sub-pixel, corner-based).
    pub fn to_frame(&self, u: f32, v: f32) -> (f32, f32) {
        self.geometry().to_frame(u, v)
    }

    /// The mapping as plain numbers, to travel with the model's outputs.
    pub fn geometry(&self) -> ModelGeometry {
        ModelGeometry {
            input_width: self.x.pad.len() as u32,
            input_height: self.y.pad.len() as u32,
            crop: self.crop,
            scale_x: self.scale_x,
            scale_y: self.scale_y,
            pad_x: self.pad_x,
            pad_y: self.pad_y,
        }
    }
}

fn axis(model: u32, start: u32, len: u32, scale: f32, pad: f32) -> Axis {
    let mut a = Axis {
        lo: Vec::new(),
        hi: Vec::new(),
        w: Vec::new(),
        pad: Vec::new(),
    };
    for u in 0..model {
        let src = (u as f32 + 0.5 - pad) / scale - 0.5;
        let inside = (u as f32 + 0.5) >= pad && (u as f32 + 0.5) <= pad + len as f32 * scale;
        let s = src.clamp(0.0, (len - 1) as f32);
        let lo = s.floor() as u32;
        a.lo.push(start + lo);
        a.hi.push(start + (lo + 1).min(len - 1));
        a.w.push(s - lo as f32);
        a.pad.push(!inside);
    }
    a
}

/// Luminance of pixel `i` (in pixels) of a tightly packed frame.
#[inline]
fn luma(frame: &[u8], pixel: PixelFormat, i: usize) -> f32 {
    match pixel {
        PixelFormat::Gray8 => f32::from(frame[i]),
        PixelFormat::Rgba => {
            let p = &frame[i * 4..i * 4 + 3];
            0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2])
        }
    }
}

#[inline]
fn channel(frame: &[u8], pixel: PixelFormat, i: usize, c: usize) -> f32 {
    match pixel {
        PixelFormat::Gray8 => f32::from(frame[i]),
        PixelFormat::Rgba => f32::from(frame[i * 4 + c]),
    }
}

/// Writes `frame` into `out` (NCHW, batch 1) as the plan and preprocessing say.
pub fn fill_input(frame: &Frame, plan: &ResizePlan, p: &Preprocess, out: &mut [f32]) {
    let (w, h) = (p.width as usize, p.height as usize);
    let width = frame.format.width as usize;
    let pixel = frame.format.pixel;
    for c in 0..p.channels as usize {
        let (mean, inv_std) = (p.mean[c], 1.0 / p.std[c]);
        let pad = (f32::from(p.pad_value) / 255.0 - mean) * inv_std;
        let plane = &mut out[c * w * h..(c + 1) * w * h];
        for v in 0..h {
            let row = &mut plane[v * w..(v + 1) * w];
            if plan.y.pad[v] {
                row.fill(pad);
                continue;
            }
            let (y0, y1, wy) = (
                plan.y.lo[v] as usize * width,
                plan.y.hi[v] as usize * width,
                plan.y.w[v],
            );
            for (u, o) in row.iter_mut().enumerate() {
                if plan.x.pad[u] {
                    *o = pad;
                    continue;
                }
                let (x0, x1, wx) = (plan.x.lo[u] as usize, plan.x.hi[u] as usize, plan.x.w[u]);
                let sample = |i: usize| {
                    if p.channels == 1 {
                        luma(&frame.data, pixel, i)
                    } else {
                        channel(&frame.data, pixel, i, c)
                    }
                };
                let top = sample(y0 + x0) * (1.0 - wx) + sample(y0 + x1) * wx;
                let bottom = sample(y1 + x0) * (1.0 - wx) + sample(y1 + x1) * wx;
                *o = ((top * (1.0 - wy) + bottom * wy) / 255.0 - mean) * inv_std;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonoflow_core::{FrameId, FramePool, StageStamps};

    fn preprocess(resize: Resize) -> Preprocess {
        Preprocess {
            input: "x".into(),
            width: 8,
            height: 8,
            channels: 1,
            layout: "nchw".into(),
            mean: vec![0.0],
            std: vec![1.0],
            crop: Crop::ImageRegion,
            resize,
            pad_value: 0,
        }
    }

    fn frame(w: u32, h: u32, f: impl Fn(u32, u32) -> u8) -> Frame {
        let format = FrameFormat::new(PixelFormat::Gray8, w, h).expect("format");
        let mut data = FramePool::new(1).acquire(format.len());
        for y in 0..h {
            for x in 0..w {
                data[(y * w + x) as usize] = f(x, y);
            }
        }
        Frame::new(FrameId(0), format, data, StageStamps::default())
    }

    #[test]
    fn letterbox_pads_the_short_side_and_maps_back_exactly() {
        // A 16x8 crop into 8x8: scale 0.5, 2 rows of padding top and bottom.
        let region = ImageRegion::Rect {
            x0: 4,
            y0: 2,
            x1: 20,
            y1: 10,
        };
        let f = frame(32, 16, |x, _| if x >= 12 { 255 } else { 0 });
        let p = preprocess(Resize::Letterbox);
        let plan = ResizePlan::new(&p, f.format, Some(&region));
        assert_eq!(plan.crop, (4, 2, 16, 8));
        assert_eq!((plan.scale_x, plan.pad_x, plan.pad_y), (0.5, 0.0, 2.0));
        let mut out = vec![9.0; 64];
        fill_input(&f, &plan, &p, &mut out);
        assert!(out[..16].iter().all(|v| *v == 0.0), "top padding");
        // Left half of the crop is black, right half white.
        assert!(
            out[2 * 8] < 0.05 && out[2 * 8 + 7] > 0.95,
            "{:?}",
            &out[16..24]
        );
        // Model (0, 2) (top-left of content) is frame (4, 2); model (8, 6) is frame (20, 10).
        assert_eq!(plan.to_frame(0.0, 2.0), (4.0, 2.0));
        assert_eq!(plan.to_frame(8.0, 6.0), (20.0, 10.0));
    }

    #[test]
    fn stretch_fills_the_input_and_normalises() {
        let mut p = preprocess(Resize::Stretch);
        p.mean = vec![0.5];
        p.std = vec![0.5];
        let f = frame(16, 4, |_, _| 255);
        let plan = ResizePlan::new(&p, f.format, None);
        let mut out = vec![0.0; 64];
        fill_input(&f, &plan, &p, &mut out);
        assert!(out.iter().all(|v| (*v - 1.0).abs() < 1e-6));
    }
}
