//! sonoflow-overlay: what the sonographer sees, drawn onto the outgoing
//! frame on the CPU (the [`Painter`] the output stage calls; a GPU painter
//! can replace it behind the same trait).
//!
//! Layers, bottom to top: the frame itself (grey expanded to RGBA); each
//! segment's semi-transparent fill and contour, in a colour per class; each
//! detection's box with label and confidence; calipers with "+" end marks
//! and their length ("L 12.4 ± 0.3 mm"); a findings panel with the latest
//! interpretation text and its age ("3.2 s ago"); a latency HUD (fps,
//! p50/p99). Every layer knows the frame it was computed on. When a frame
//! comes without findings of its own, the last findings are drawn instead;
//! once they are older than `stale_after_ms` they fade and are marked
//! stale, and after `paused_after_ms` without a fresh result a red "AI
//! paused" banner says the video is passing through without the AI.
//!
//! Text uses the bundled font ([`text`]); nothing is allocated per frame
//! once the overlay has seen its first findings.

pub mod config;
pub mod hud;
pub mod panel_text;
pub mod placement;
pub mod raster;
pub mod text;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sonoflow_core::annotations::{
    AiVerdict, FindingKind, FrameFinding, FrameFindings, Measurement,
};
use sonoflow_core::findings::{BoundingBox, ImageRegion, PixelSpacing, Point};
use sonoflow_core::{CalibratedRegion, Clock, Frame, FrameFormat, PixelFormat, Timestamp};
use sonoflow_pipeline::{LatencyRecorder, LoadLevel, LoadStep, Painter};

pub use config::{OverlayConfig, OverlayOptions};
use hud::Hud;
use panel_text::PanelText;
use placement::{least_covering, Corner};
use raster::{Canvas, Paint};
pub use text::{FontError, Text};

pub use sonoflow_core::{Interpretation, InterpretationBoard, InterpretationState};

/// What the overlay did over a run, for the report.
#[derive(Default)]
pub struct OverlayStats {
    /// Time to draw one frame.
    pub paint: LatencyRecorder,
    pub frames: AtomicU64,
    /// Frames drawn with findings older than `stale_after_ms`.
    pub stale_frames: AtomicU64,
    /// Frames drawn with the "AI paused" banner.
    pub paused_frames: AtomicU64,
    /// Frames drawn with the "AI output invalid" banner (the model's output
    /// was not finite; no findings, and never "no lesion").
    pub invalid_frames: AtomicU64,
}

const LESION: Paint = Paint::rgb(255, 176, 0);
const DETECTION: Paint = Paint::rgb(64, 224, 128);
const LONG_AXIS: Paint = Paint::rgb(0, 224, 255);
const SHORT_AXIS: Paint = Paint::rgb(255, 96, 208);
const WHITE: Paint = Paint::rgb(255, 255, 255);
const SHADE: Paint = Paint {
    rgb: [0, 0, 0],
    alpha: 0.6,
};
const BANNER: Paint = Paint {
    rgb: [200, 24, 24],
    alpha: 0.85,
};
const MUTED: Paint = Paint::rgb(170, 170, 170);

/// The CPU overlay.
pub struct Overlay {
    options: OverlayOptions,
    /// The font at the size for the current frame height.
    text: Text,
    text_for_height: Option<u32>,
    clock: Arc<dyn Clock>,
    board: Arc<InterpretationBoard>,
    stats: Arc<OverlayStats>,
    hud: Hud,
    /// The findings last drawn (copied, so a frame without its own can show them).
    last: FrameFindings,
    have_last: bool,
    /// When the newest frame with fresh findings was captured.
    last_fresh: Option<Timestamp>,
    line: String,
    part: String,
    crossings: Vec<f32>,
    /// The interpretation laid out for the panel (reused rows).
    panel_text: PanelText,
    /// The degradation ladder's step: extras are dropped from `overlay_lean` on.
    load: LoadLevel,
    /// What the model finds, in its manifest's word (e.g. "lesion").
    finding_name: String,
    /// "no {finding_name} in view", written once.
    nothing_in_view: String,
}

fn age(now: Timestamp, then: Timestamp) -> Duration {
    now.saturating_since(then)
}

fn secs(d: Duration) -> f32 {
    d.as_secs_f32()
}

impl Overlay {
    /// An overlay; the font size follows the frame height (set at the
    /// first frame) unless the options fix one. Fails only if the bundled
    /// font cannot be read.
    pub fn new(
        options: OverlayOptions,
        clock: Arc<dyn Clock>,
        board: Arc<InterpretationBoard>,
    ) -> Result<Self, FontError> {
        Ok(Self {
            text: Text::new(options.font_px.unwrap_or(16.0))?,
            text_for_height: None,
            options,
            clock,
            board,
            stats: Arc::new(OverlayStats::default()),
            hud: Hud::default(),
            // Copies of the findings land here: room for a busy frame up front.
            last: FrameFindings::preallocated(),
            have_last: false,
            last_fresh: None,
            line: String::with_capacity(256),
            part: String::with_capacity(64),
            crossings: Vec::with_capacity(64),
            panel_text: PanelText::default(),
            load: LoadLevel::new(),
            finding_name: String::new(),
            nothing_in_view: String::new(),
        }
        .naming_findings("finding"))
    }

    /// Labels findings with `name`: the model's own word for what it finds
    /// (`Manifest::finding_name`, e.g. "lesion"), so another model's
    /// overlay says "nodule" without a rebuild.
    pub fn naming_findings(mut self, name: &str) -> Self {
        self.finding_name = name.to_owned();
        self.nothing_in_view = format!("no {name} in view");
        self
    }

    /// Follows the run's degradation ladder: from `overlay_lean` on, the
    /// mask fill and the interpretation's text are left out, and the HUD
    /// says what is being shed.
    pub fn following_load(mut self, level: LoadLevel) -> Self {
        self.load = level;
        self
    }

    pub fn stats(&self) -> Arc<OverlayStats> {
        Arc::clone(&self.stats)
    }

    /// The text size for frames `height` pixels high.
    pub fn font_px_for(&self, height: u32) -> f32 {
        self.options
            .font_px
            .unwrap_or_else(|| (height as f32 / 34.0).clamp(11.0, 40.0).round())
    }

    /// Draws `frame` (its pixels and overlays) into `target` (RGBA, frame size).
    pub fn draw(&mut self, frame: &Frame, target: &mut [u8]) {
        let t0 = self.clock.now();
        if self.text_for_height != Some(frame.format.height) {
            // Once per frame size (the first frame, a caps change).
            match Text::new(self.font_px_for(frame.format.height)) {
                Ok(text) => self.text = text,
                Err(err) => tracing::warn!("overlay keeps its {} px font: {err}", self.text.px),
            }
            self.text_for_height = Some(frame.format.height);
        }
        copy_as_rgba(frame, target);
        let Some(mut canvas) = Canvas::new(target, frame.format.width, frame.format.height) else {
            return;
        };
        let now = frame.stamps.captured;
        if let Some(found) = frame.findings.as_deref() {
            self.last.copy_from(found);
            self.have_last = true;
            self.last_fresh = Some(found.captured);
        }
        let findings_age = self.have_last.then(|| age(now, self.last.captured));
        let stale = findings_age.is_some_and(|a| a > self.options.stale_after);
        let since_fresh = self.last_fresh.map_or(Duration::MAX, |t| age(now, t));
        let paused = self.options.ai_expected
            && since_fresh > self.options.paused_after
            && frame.findings.is_none();
        if self.have_last && !(paused && since_fresh > self.options.forget_after) {
            let fade = if stale {
                self.options.stale_opacity
            } else {
                1.0
            };
            self.draw_findings(&mut canvas, fade);
        }
        let spacing = frame.pixel_spacing();
        if let (true, Some(spacing)) = (self.options.scale_bar, spacing) {
            let region = frame.image_region();
            self.draw_scale_bar(&mut canvas, spacing, region);
        }
        let regions: &[CalibratedRegion] = match frame.calibration.as_deref() {
            Some(c) => &c.regions,
            None => &[],
        };
        let panel = self.options.panel.then(|| {
            let calibrated = spacing.is_some();
            self.draw_panel(&mut canvas, now, findings_age, stale, calibrated, regions)
        });
        if self.output_invalid() {
            self.draw_invalid_banner(&mut canvas);
            self.stats.invalid_frames.fetch_add(1, Ordering::Relaxed);
        } else if paused {
            self.draw_banner(&mut canvas, since_fresh);
            self.stats.paused_frames.fetch_add(1, Ordering::Relaxed);
        }
        let painted = self.clock.now();
        self.hud.add(painted, age(painted, frame.stamps.captured));
        self.draw_hud(&mut canvas, regions, panel);
        if stale {
            self.stats.stale_frames.fetch_add(1, Ordering::Relaxed);
        }
        self.stats.frames.fetch_add(1, Ordering::Relaxed);
        self.stats
            .paint
            .record(self.clock.now().saturating_since(t0));
    }

    fn draw_findings(&mut self, canvas: &mut Canvas<'_>, fade: f32) {
        let lean = self.load.sheds(LoadStep::OverlayLean);
        let thick = (self.text.px / 7.0).round().max(2.0);
        for f in self
            .last
            .findings
            .iter()
            .filter(|f| f.kind == FindingKind::Segment)
        {
            let contour = self.last.contour(f);
            if !lean {
                canvas.fill_polygon(
                    contour,
                    LESION.with_alpha(self.options.mask_opacity * fade),
                    &mut self.crossings,
                );
            }
            canvas.polyline(contour, thick, LESION.with_alpha(0.9 * fade));
        }
        for f in self
            .last
            .findings
            .iter()
            .filter(|f| f.kind == FindingKind::Detection)
        {
            let b = f.bbox;
            canvas.stroke_rect(
                b.x0.floor() as i32,
                b.y0.floor() as i32,
                b.x1.ceil() as i32,
                b.y1.ceil() as i32,
                thick as i32,
                DETECTION.with_alpha(fade),
            );
            self.line.clear();
            let _ = write!(self.line, "{} {:.2}", self.finding_name, f.confidence);
            let y = (b.y0 - self.text.line_height - 4.0).max(0.0);
            self.text.label(
                canvas,
                (b.x0, y),
                &self.line,
                Paint::rgb(0, 0, 0).with_alpha(fade),
                DETECTION.with_alpha(0.85 * fade),
                2.0,
            );
        }
        for i in 0..self.last.findings.len() {
            let f = self.last.findings[i];
            for (m, paint, tag) in [
                (f.long_axis, LONG_AXIS, "L"),
                (f.short_axis, SHORT_AXIS, "S"),
            ] {
                if let Some(m) = m {
                    self.draw_caliper(canvas, &m, paint.with_alpha(fade), tag);
                }
            }
        }
    }

    /// A vertical bar of a round length (5 mm to 5 cm, the longest that
    /// fits in a quarter of the image's height) at the image's right edge,
    /// with its length written beside it: what the calibration in use says
    /// a centimetre is, for the sonographer to check against the scanner's
    /// own ruler.
    fn draw_scale_bar(
        &mut self,
        canvas: &mut Canvas<'_>,
        spacing: PixelSpacing,
        region: Option<ImageRegion>,
    ) {
        let (w, h) = (canvas.width as f32, canvas.height as f32);
        let bounds = region.map_or(
            BoundingBox {
                x0: 0.0,
                y0: 0.0,
                x1: w,
                y1: h,
            },
            |r| r.bounds(),
        );
        let Some(mm) = scale_bar_mm(spacing.y_mm, (bounds.y1 - bounds.y0) / 4.0) else {
            return;
        };
        let length = (mm / spacing.y_mm) as f32;
        let thick = (self.text.px / 8.0).round().max(2.0);
        // Outside the image when the frame leaves room, else just inside it.
        let room = self.text.advance * 6.0;
        let x = if bounds.x1 + room < w {
            bounds.x1 + thick * 2.0
        } else {
            (bounds.x1 - room).max(0.0)
        };
        let y0 = (bounds.y0 + self.text.line_height).max(0.0);
        let (top, bottom) = (Point { x, y: y0 }, Point { x, y: y0 + length });
        canvas.line(top, bottom, thick, WHITE);
        for end in [top, bottom] {
            let tick = Point {
                x: end.x + thick * 3.0,
                y: end.y,
            };
            canvas.line(end, tick, thick, WHITE);
        }
        self.line.clear();
        if mm >= 10.0 {
            let _ = write!(self.line, "{} cm", mm / 10.0);
        } else {
            let _ = write!(self.line, "{mm} mm");
        }
        let label_y = y0 + length / 2.0 - self.text.line_height / 2.0;
        self.text.label(
            canvas,
            (x + thick * 4.0, label_y),
            &self.line,
            WHITE,
            SHADE,
            2.0,
        );
    }

    fn draw_caliper(&mut self, canvas: &mut Canvas<'_>, m: &Measurement, paint: Paint, tag: &str) {
        let (a, b) = (m.caliper.a, m.caliper.b);
        let thick = (self.text.px / 10.0).round().max(1.0);
        canvas.dashed(a, b, 4.0, thick, paint);
        let mark = (self.text.px / 3.0).max(4.0);
        canvas.cross(a, mark, thick + 1.0, paint);
        canvas.cross(b, mark, thick + 1.0, paint);
        self.line.clear();
        let _ = write!(self.line, "{tag} {}", Millimetres(m));
        // Beside end b, away from the finding's middle.
        let (dx, dy) = (b.x - a.x, b.y - a.y);
        let x = if dx >= 0.0 {
            b.x + mark + 2.0
        } else {
            b.x - mark - 2.0 - self.text.width(&self.line) - 4.0
        };
        let y = if dy >= 0.0 {
            b.y + 2.0
        } else {
            b.y - self.text.line_height - 6.0
        };
        let x = x.clamp(
            0.0,
            (canvas.width as f32 - self.text.width(&self.line) - 4.0).max(0.0),
        );
        let y = y.clamp(
            0.0,
            (canvas.height as f32 - self.text.line_height - 4.0).max(0.0),
        );
        // Stale labels fade less than the shapes: still readable, visibly old.
        let ink = paint.with_alpha(paint.alpha.max(0.75));
        self.text.label(canvas, (x, y), &self.line, ink, SHADE, 2.0);
    }

    fn draw_panel(
        &mut self,
        canvas: &mut Canvas<'_>,
        now: Timestamp,
        findings_age: Option<Duration>,
        stale: bool,
        calibrated: bool,
        regions: &[CalibratedRegion],
    ) -> Corner {
        let lh = self.text.line_height;
        let pad = 4.0;
        let width = (canvas.width as f32 - 2.0 * pad)
            .min(self.text.advance * 56.0)
            .max(self.text.advance * 20.0);
        let chars = self.text.fits(width - 2.0 * pad);
        let segments = self
            .last
            .findings
            .iter()
            .filter(|f| f.kind == FindingKind::Segment)
            .count()
            .min(3);
        let interpretation = self.board.load();
        let text_lines = match interpretation.as_deref() {
            Some(_) if self.load.sheds(LoadStep::OverlayLean) => 0,
            Some(i) => {
                self.panel_text
                    .layout(&i.text, &self.options.panel_first, chars);
                self.panel_text.rows().count()
            }
            None => 0,
        };
        let lines = 1 + segments.max(usize::from(self.have_last)) + 1 + text_lines;
        let height = lines as f32 * lh + 2.0 * pad;
        let frame_size = (canvas.width as f32, canvas.height as f32);
        let corner = least_covering(
            frame_size,
            (width, height),
            pad,
            regions,
            &Corner::PANEL,
            None,
        );
        let (x0, y0) = corner.origin(frame_size, (width, height), pad);
        canvas.fill_rect(
            x0 as i32,
            y0 as i32,
            (x0 + width) as i32,
            (y0 + height) as i32,
            SHADE,
        );
        let (x, mut y) = (x0 + pad, y0 + pad);

        self.line.clear();
        match findings_age {
            Some(a) => {
                let _ = write!(self.line, "Findings · frame {}", self.last.frame.0);
                if stale {
                    let _ = write!(self.line, " · STALE {:.1} s", secs(a));
                }
            }
            None => {
                let _ = write!(self.line, "Findings · none yet");
            }
        }
        if !calibrated {
            // Masks and boxes only: nothing on this frame is in mm.
            let _ = write!(self.line, " · uncalibrated, no mm");
        }
        self.text
            .draw(canvas, x, y, &self.line, if stale { MUTED } else { WHITE });
        y += lh;
        let shown = self
            .last
            .findings
            .iter()
            .filter(|f| f.kind == FindingKind::Segment)
            .take(3)
            .copied();
        let mut any = false;
        for f in shown {
            any = true;
            self.line.clear();
            finding_line(
                &mut self.line,
                &mut self.part,
                &self.finding_name,
                &f,
                chars,
            );
            self.text.draw(
                canvas,
                x,
                y,
                &self.line,
                LESION.with_alpha(if stale { 0.6 } else { 1.0 }),
            );
            y += lh;
        }
        if self.output_invalid() {
            self.text
                .draw(canvas, x, y, "AI output invalid · findings withheld", WHITE);
            y += lh;
        } else if !any && self.have_last {
            self.text.draw(canvas, x, y, &self.nothing_in_view, MUTED);
            y += lh;
        }

        self.line.clear();
        match interpretation.as_deref() {
            Some(i) => match i.state {
                InterpretationState::Done => {
                    let _ = write!(
                        self.line,
                        "Interpretation · frame {} · {:.1} s ago",
                        i.frame.0,
                        secs(age(now, i.captured))
                    );
                }
                InterpretationState::Writing => {
                    let _ = write!(self.line, "Interpretation · frame {} · writing…", i.frame.0);
                }
                InterpretationState::Unavailable => {
                    let _ = write!(self.line, "Interpretation unavailable");
                }
            },
            None => {
                let _ = write!(self.line, "Interpretation · none yet");
            }
        }
        truncate(&mut self.line, chars);
        self.text.draw(canvas, x, y, &self.line, WHITE);
        y += lh;
        if let Some(i) = interpretation.as_deref() {
            let ink = if i.state == InterpretationState::Unavailable {
                MUTED
            } else {
                Paint::rgb(220, 220, 220)
            };
            for row in self.panel_text.rows() {
                self.text.draw(canvas, x, y, row, ink);
                y += lh;
            }
        }
        corner
    }

    /// The newest result the model gave was unusable (non-finite outputs).
    fn output_invalid(&self) -> bool {
        self.have_last && self.last.verdict == AiVerdict::InvalidOutput
    }

    fn draw_invalid_banner(&mut self, canvas: &mut Canvas<'_>) {
        let line = "AI output invalid · not for diagnosis";
        let w = self.text.width(line) + 16.0;
        let x = ((canvas.width as f32 - w) / 2.0).max(0.0);
        self.text.label(
            canvas,
            (x, self.text.line_height + 16.0),
            line,
            WHITE,
            BANNER,
            8.0,
        );
    }

    fn draw_banner(&mut self, canvas: &mut Canvas<'_>, since_fresh: Duration) {
        self.line.clear();
        if since_fresh == Duration::MAX {
            let _ = write!(self.line, "AI paused · no result yet");
        } else {
            let _ = write!(
                self.line,
                "AI paused · last result {:.1} s ago",
                secs(since_fresh)
            );
        }
        let w = self.text.width(&self.line) + 16.0;
        let x = ((canvas.width as f32 - w) / 2.0).max(0.0);
        // Below the HUD's line, so both stay readable on a narrow frame.
        self.text.label(
            canvas,
            (x, self.text.line_height + 16.0),
            &self.line,
            WHITE,
            BANNER,
            8.0,
        );
    }

    /// "NOT FOR DIAGNOSIS" (always), the latency HUD (when on) and, while
    /// work is shed, what is shed: one line, top right unless another
    /// corner covers clearly less of the image.
    fn draw_hud(
        &mut self,
        canvas: &mut Canvas<'_>,
        regions: &[CalibratedRegion],
        panel: Option<Corner>,
    ) {
        self.line.clear();
        // Always there, HUD or not: nothing sonoflow draws is for diagnosis.
        self.line.push_str("NOT FOR DIAGNOSIS");
        if self.options.hud {
            let s = self.hud.summary();
            let _ = write!(
                self.line,
                " · {:.1} fps · p50 {:.0} ms · p99 {:.0} ms",
                s.fps, s.p50_ms, s.p99_ms
            );
        }
        let step = self.load.step();
        if step != LoadStep::Full {
            if !self.line.is_empty() {
                self.line.push_str(" · ");
            }
            let _ = write!(self.line, "load: {}", step.shown());
        }
        if self.line.is_empty() {
            return;
        }
        // The label's box: text plus its padding.
        let size = (
            self.text.width(&self.line) + 8.0,
            self.text.line_height + 8.0,
        );
        let frame_size = (canvas.width as f32, canvas.height as f32);
        let corner = least_covering(frame_size, size, 4.0, regions, &Corner::HUD, panel);
        let (x, y) = corner.origin(frame_size, size, 4.0);
        self.text
            .label(canvas, (x, y), &self.line, WHITE, SHADE, 4.0);
    }
}

/// "12.4 ± 0.3 mm": a caliper is never written without its uncertainty and unit.
pub struct Millimetres<'a>(pub &'a Measurement);

impl std::fmt::Display for Millimetres<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1} ± {:.1} mm",
            self.0.caliper.length_mm,
            self.0.uncertainty_mm.max(0.05)
        )
    }
}

/// The scale bar's length in mm: the longest of 5 mm, 1, 2 and 5 cm that
/// spans at most `max_px` pixels at `mm_per_px`; None when not even 5 mm fits.
fn scale_bar_mm(mm_per_px: f64, max_px: f32) -> Option<f64> {
    if !(mm_per_px.is_finite() && mm_per_px > 0.0) {
        return None;
    }
    [50.0, 20.0, 10.0, 5.0]
        .into_iter()
        .find(|mm| mm / mm_per_px <= f64::from(max_px))
}

/// One finding's panel line, with only whole measurements (never a
/// number cut from its unit): parts that do not fit in `chars` are left out.
fn finding_line(line: &mut String, part: &mut String, name: &str, f: &FrameFinding, chars: usize) {
    let _ = write!(line, "#{} {name} {:.2}", f.track, f.confidence);
    for (tag, m) in [('L', f.long_axis), ('S', f.short_axis)] {
        if let Some(m) = m {
            part.clear();
            let _ = write!(part, "  {tag} {}", Millimetres(&m));
            push_if_fits(line, part, chars);
        }
    }
    if let Some(e) = f.ellipse {
        part.clear();
        let _ = write!(part, "  C {:.1} mm", e.circumference_mm);
        push_if_fits(line, part, chars);
    }
}

fn push_if_fits(line: &mut String, part: &str, chars: usize) {
    if line.chars().count() + part.chars().count() <= chars {
        line.push_str(part);
    }
}

/// Cuts `line` to at most `chars` characters.
fn truncate(line: &mut String, chars: usize) {
    if let Some((i, _)) = line.char_indices().nth(chars) {
        line.truncate(i);
    }
}

/// The frame's pixels into `target` as RGBA.
fn copy_as_rgba(frame: &Frame, target: &mut [u8]) {
    match frame.format.pixel {
        PixelFormat::Rgba => {
            let n = target.len().min(frame.data.len());
            target[..n].copy_from_slice(&frame.data[..n]);
        }
        PixelFormat::Gray8 => {
            for (px, &g) in target.chunks_exact_mut(4).zip(frame.data.iter()) {
                px.copy_from_slice(&[g, g, g, 255]);
            }
        }
    }
}

impl Painter for Overlay {
    fn format_for(&self, input: FrameFormat) -> FrameFormat {
        FrameFormat {
            pixel: PixelFormat::Rgba,
            ..input
        }
    }

    fn paint(&mut self, frame: &Frame, target: &mut [u8]) {
        let _span = tracing::trace_span!("overlay", frame = frame.id.0).entered();
        self.draw(frame, target);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonoflow_core::findings::{BoundingBox, Caliper, Point};

    fn finding() -> FrameFinding {
        let m = |mm: f64| Measurement {
            caliper: Caliper {
                a: Point::default(),
                b: Point::default(),
                length_mm: mm,
            },
            uncertainty_mm: 0.31,
        };
        FrameFinding {
            track: 3,
            kind: FindingKind::Segment,
            bbox: BoundingBox::default(),
            area_px: 100,
            confidence: 0.97,
            contour: (0, 0),
            long_axis: Some(m(12.44)),
            short_axis: Some(m(8.06)),
            ellipse: None,
        }
    }

    #[test]
    fn panel_lines_keep_whole_measurements_with_their_units() {
        let (mut line, mut part) = (String::new(), String::new());
        finding_line(&mut line, &mut part, "lesion", &finding(), 80);
        assert_eq!(line, "#3 lesion 0.97  L 12.4 ± 0.3 mm  S 8.1 ± 0.3 mm");
        line.clear();
        finding_line(&mut line, &mut part, "nodule", &finding(), 34);
        assert_eq!(line, "#3 nodule 0.97  L 12.4 ± 0.3 mm");
    }

    #[test]
    fn the_scale_bar_is_the_longest_round_length_that_fits() {
        // 0.1 mm per pixel over a 480-pixel image: 120 px allowed, 1 cm is 100 px.
        assert_eq!(scale_bar_mm(0.1, 120.0), Some(10.0));
        assert_eq!(scale_bar_mm(0.1, 600.0), Some(50.0));
        assert_eq!(scale_bar_mm(0.1, 40.0), None);
        assert_eq!(scale_bar_mm(0.0, 400.0), None);
        assert_eq!(scale_bar_mm(f64::NAN, 400.0), None);
    }

    #[test]
    fn truncation_respects_characters() {
        let mut s = String::from("±±±±");
        truncate(&mut s, 2);
        assert_eq!(s, "±±");
    }
}
