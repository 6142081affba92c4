//! The cart's screen around the image: a banner, a panel of settings and a
//! depth scale in centimetres with tick marks, so that downstream code has
//! to find the image region, as it would on a real cart's video output.
//! Drawn once per configuration; frames copy it and paint the image over it.

use crate::config::{PhantomConfig, ProbeKind};
use crate::probe::{Layout, ProbeGeometry};

/// Gray level of text and scale marks.
pub const INK: u8 = 200;

/// A 5x7 bitmap font: seven rows per glyph, bit 4 is the leftmost pixel.
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'A' => [0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '.' => [0, 0, 0, 0, 0, 0x0C, 0x0C],
        ':' => [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0],
        '-' => [0, 0, 0, 0x1F, 0, 0, 0],
        '/' => [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0],
        '+' => [0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0],
        _ => [0; 7],
    }
}

/// A canvas over a GRAY8 frame.
pub struct Canvas<'a> {
    pub pixels: &'a mut [u8],
    pub width: u32,
    pub height: u32,
}

impl Canvas<'_> {
    pub fn set(&mut self, x: i64, y: i64, value: u8) {
        if x >= 0 && y >= 0 && (x as u32) < self.width && (y as u32) < self.height {
            self.pixels[(y as u32 * self.width + x as u32) as usize] = value;
        }
    }

    pub fn hline(&mut self, x0: i64, x1: i64, y: i64, value: u8) {
        for x in x0..=x1 {
            self.set(x, y, value);
        }
    }

    pub fn vline(&mut self, x: i64, y0: i64, y1: i64, value: u8) {
        for y in y0..=y1 {
            self.set(x, y, value);
        }
    }

    /// Draws `text` with its top-left at (x, y), `scale` pixels per font pixel.
    pub fn text(&mut self, x: i64, y: i64, text: &str, scale: u32, value: u8) {
        let s = i64::from(scale);
        for (i, c) in text.chars().enumerate() {
            let gx = x + i as i64 * 6 * s;
            for (row, bits) in glyph(c).iter().enumerate() {
                for col in 0..5 {
                    if bits & (0x10 >> col) != 0 {
                        for dy in 0..s {
                            for dx in 0..s {
                                self.set(gx + col * s + dx, y + row as i64 * s + dy, value);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The screen without the image: banner, settings panel, depth scale.
pub fn draw_background(
    config: &PhantomConfig,
    geometry: &ProbeGeometry,
    layout: &Layout,
) -> Vec<u8> {
    let mut pixels = vec![0u8; (layout.width * layout.height) as usize];
    let mut c = Canvas {
        pixels: &mut pixels,
        width: layout.width,
        height: layout.height,
    };
    let s = layout.text_scale;
    let line = i64::from(10 * s);
    let probe = match config.probe {
        ProbeKind::Linear => format!("L{:.1}", geometry.frequency_mhz),
        ProbeKind::Convex => format!("C{:.1}", geometry.frequency_mhz),
    };
    c.text(
        6,
        4,
        &format!("SONOFLOW PHANTOM  {probe}  BREAST  - NOT FOR DIAGNOSIS"),
        s,
        INK,
    );
    c.hline(
        0,
        i64::from(layout.width) - 1,
        i64::from(layout.banner_height) - 3,
        90,
    );
    let fields = [
        format!("PRESET {probe}"),
        format!("DEPTH {:.1}CM", geometry.depth_mm / 10.0),
        format!("GAIN {:+.0}DB", config.gain_db),
        format!("DR {:.0}DB", config.dynamic_range_db),
        format!("FPS {}", config.fps),
        format!("FOCUS {:.1}CM", geometry.focus_mm / 10.0),
        format!("FREQ {:.1}MHZ", geometry.frequency_mhz),
    ];
    let top = i64::from(layout.image_top) + 8;
    for (i, f) in fields.iter().enumerate() {
        c.text(6, top + i as i64 * (line + 4), f, s, INK);
    }
    draw_depth_scale(&mut c, geometry, layout);
    // The orientation marker, top left of the image, as carts show it.
    let mx = i64::from(layout.region_left()) - 2;
    for d in 0..4 * i64::from(s) {
        c.hline(
            mx - 4 * i64::from(s),
            mx - 4 * i64::from(s) + d,
            i64::from(layout.image_top) + d,
            INK,
        );
    }
    pixels
}

/// Ticks every 5 mm (long at each cm, with its number) and the focus mark.
fn draw_depth_scale(c: &mut Canvas<'_>, geometry: &ProbeGeometry, layout: &Layout) {
    let s = i64::from(layout.text_scale);
    let x = i64::from(layout.scale_x());
    let top = i64::from(layout.image_top);
    c.vline(x, top, top + i64::from(layout.image_height) - 1, INK);
    let mut mm = 0u32;
    while f64::from(mm) <= geometry.depth_mm + 1e-9 {
        let y = layout
            .depth_row(f64::from(mm))
            .min(top + i64::from(layout.image_height) - 1);
        if mm.is_multiple_of(10) {
            c.hline(x, x + 6 * s, y, INK);
            c.text(
                x + 8 * s,
                (y - 3 * s).max(top),
                &(mm / 10).to_string(),
                s as u32,
                INK,
            );
        } else {
            c.hline(x, x + 3 * s, y, INK);
        }
        mm += 5;
    }
    let fy = layout.depth_row(geometry.focus_mm);
    for d in 0..=3 * s {
        c.vline(x - 2 - d, fy - (3 * s - d), fy + (3 * s - d), INK);
    }
}

impl Layout {
    /// Column of the depth scale's vertical line.
    pub fn scale_x(&self) -> u32 {
        let bounds = self.region.bounds();
        (bounds.x1.ceil() as u32 + 6).min(self.width.saturating_sub(20))
    }

    /// Left edge of the image region.
    pub fn region_left(&self) -> u32 {
        self.region.bounds().x0.max(0.0) as u32
    }

    /// Pixel row of depth `mm` below the skin line: the image's top row is
    /// depth 0, and each row is exactly `spacing_mm` deeper.
    pub fn depth_row(&self, mm: f64) -> i64 {
        i64::from(self.image_top) + (mm / self.spacing_mm).round() as i64
    }
}
