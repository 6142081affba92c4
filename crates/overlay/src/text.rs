//! Text in the bundled font (DejaVu Sans Mono Bold, cut down to the
//! characters the overlay writes; assets/LICENSE-DejaVu.txt). Every glyph
//! is rasterised once, at one size, when the overlay is built; drawing is
//! then a blend of cached coverage maps, with no allocation. Characters the
//! font does not hold are drawn as '?'.

use crate::raster::{Canvas, Paint};

const FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono-Bold-subset.ttf");

/// Characters beyond printable ASCII that the subset holds.
const EXTRA: [char; 12] = ['°', '±', 'µ', '·', '×', '–', '—', '…', '←', '↑', '→', '↓'];

#[derive(Debug, thiserror::Error)]
#[error("the bundled font could not be read: {0}")]
pub struct FontError(String);

#[derive(Debug, Clone, Default)]
struct Glyph {
    xmin: i32,
    ymin: i32,
    width: usize,
    height: usize,
    coverage: Vec<u8>,
}

/// The font rasterised at one pixel size.
#[derive(Debug, Clone)]
pub struct Text {
    ascii: Vec<Glyph>,
    extra: Vec<(char, Glyph)>,
    /// Horizontal advance of every glyph (monospace), in pixels.
    pub advance: f32,
    /// Baseline to baseline.
    pub line_height: f32,
    /// Baseline below the top of a line.
    pub ascent: f32,
    pub px: f32,
}

impl Text {
    /// The bundled font at `px` pixels (em size).
    pub fn new(px: f32) -> Result<Self, FontError> {
        let font = fontdue::Font::from_bytes(FONT, fontdue::FontSettings::default())
            .map_err(|e| FontError(e.to_string()))?;
        let raster = |c: char| {
            let (m, coverage) = font.rasterize(c, px);
            Glyph {
                xmin: m.xmin,
                ymin: m.ymin,
                width: m.width,
                height: m.height,
                coverage,
            }
        };
        let lines = font
            .horizontal_line_metrics(px)
            .ok_or_else(|| FontError("no horizontal metrics".into()))?;
        Ok(Self {
            ascii: (32u8..127).map(|b| raster(char::from(b))).collect(),
            extra: EXTRA.iter().map(|&c| (c, raster(c))).collect(),
            advance: font.metrics('0', px).advance_width,
            line_height: lines.new_line_size.ceil(),
            ascent: lines.ascent.ceil(),
            px,
        })
    }

    fn glyph(&self, c: char) -> &Glyph {
        let ascii = |b: u8| &self.ascii[usize::from(b - 32)];
        match c {
            ' '..='~' => ascii(c as u8),
            _ => self
                .extra
                .iter()
                .find(|(e, _)| *e == c)
                .map_or_else(|| ascii(b'?'), |(_, g)| g),
        }
    }

    /// Width in pixels of `s` on one line.
    pub fn width(&self, s: &str) -> f32 {
        s.chars().count() as f32 * self.advance
    }

    /// How many characters fit in `pixels`.
    pub fn fits(&self, pixels: f32) -> usize {
        (pixels / self.advance).max(0.0) as usize
    }

    /// Draws `s` with the top of its line at (x, y).
    pub fn draw(&self, canvas: &mut Canvas<'_>, x: f32, y: f32, s: &str, paint: Paint) {
        let baseline = (y + self.ascent).round() as i32;
        let mut pen = x;
        for c in s.chars() {
            let g = self.glyph(c);
            let left = pen.round() as i32 + g.xmin;
            let top = baseline - g.ymin - g.height as i32;
            for row in 0..g.height {
                for col in 0..g.width {
                    let cov = g.coverage[row * g.width + col];
                    if cov > 0 {
                        canvas.blend(
                            left + col as i32,
                            top + row as i32,
                            paint,
                            f32::from(cov) / 255.0,
                        );
                    }
                }
            }
            pen += self.advance;
        }
    }

    /// Draws `s` on a box of `background` with `pad` pixels around it, the
    /// box's top left at `(x, y)`; returns the box (x0, y0, x1, y1).
    pub fn label(
        &self,
        canvas: &mut Canvas<'_>,
        (x, y): (f32, f32),
        s: &str,
        paint: Paint,
        background: Paint,
        pad: f32,
    ) -> (f32, f32, f32, f32) {
        let (x1, y1) = (
            x + self.width(s) + 2.0 * pad,
            y + self.line_height + 2.0 * pad,
        );
        canvas.fill_rect(
            x.round() as i32,
            y.round() as i32,
            x1.round() as i32,
            y1.round() as i32,
            background,
        );
        self.draw(canvas, x + pad, y + pad, s, paint);
        (x, y, x1, y1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_font_draws_every_character_the_overlay_uses() {
        let text = Text::new(16.0).expect("font");
        assert!(
            text.advance > 8.0 && text.advance < 11.0,
            "{}",
            text.advance
        );
        for c in "12.4 ± 0.3 mm · 3.2 s ago ×"
            .chars()
            .filter(|c| !c.is_whitespace())
        {
            assert!(
                text.glyph(c).coverage.iter().any(|&v| v > 0),
                "{c:?} has no ink"
            );
        }
        // Not in the subset: drawn as '?'.
        assert_eq!(text.glyph('€').coverage, text.glyph('?').coverage);
    }

    #[test]
    fn text_lands_where_it_is_drawn_and_clips() {
        let text = Text::new(14.0).expect("font");
        let (w, h) = (120u32, 30u32);
        let mut data = vec![0u8; (w * h * 4) as usize];
        let mut canvas = Canvas::new(&mut data, w, h).expect("sized");
        text.draw(
            &mut canvas,
            10.0,
            5.0,
            "AI paused",
            Paint::rgb(255, 255, 255),
        );
        text.draw(
            &mut canvas,
            100.0,
            20.0,
            "clipped at the edge",
            Paint::rgb(255, 255, 255),
        );
        let inked: Vec<(u32, u32)> = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .filter(|&(x, y)| data[((y * w + x) * 4) as usize] > 128)
            .collect();
        assert!(!inked.is_empty());
        assert!(inked.iter().all(|&(x, y)| (x >= 10 && y >= 5) || x >= 100));
        let left_text: Vec<_> = inked.iter().filter(|&&(x, _)| x < 100).collect();
        let right = left_text.iter().map(|p| p.0).max().unwrap_or(0) as f32;
        assert!(right <= 10.0 + text.width("AI paused") + 1.0, "{right}");
    }
}
