//! [`check_spacing`]: a spacing a source states (a DICOM file's ultrasound
//! regions) against the depth ruler the scanner drew beside the image, in
//! one frame.
//!
//! The ruler gives the distance between its major ticks in pixels
//! ([`read_ruler`]); what a major tick is worth is not read from the screen
//! (no digit reading). Carts draw one of two kinds of depth ruler: major
//! ticks a centimetre apart, with shorter ones between at 5, 2 or 1 mm (or
//! none: dots every centimetre), or long ticks every 5 cm with a tick every
//! centimetre between (the ALOKA screen of pydicom-data). The check takes
//! whichever of the two ([`MAJOR_STEPS_MM`]) is nearer the stated spacing
//! and says which; so a stated spacing wrong by a factor of 2 or 10 (a
//! resized copy, cm taken for mm) is caught, while one wrong by exactly 5,
//! the ratio of the two kinds, would pass.
//!
//! The verdict is only a check: the stated spacing is what the file says,
//! and stays what frames carry whatever the ruler reads.

use sonoflow_core::findings::ImageRegion;
use sonoflow_core::FrameFormat;

use crate::auto::{read_ruler, AutoOptions, RulerReading};
use crate::view::FrameError;

/// What a major tick of the ruler can be worth, in millimetres: one
/// centimetre, or five (long ticks every 5 cm over ticks every centimetre).
pub const MAJOR_STEPS_MM: [f64; 2] = [10.0, 50.0];

/// How strict the check is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckOptions {
    /// The ruler agrees when its spacing is within this fraction of the
    /// stated one (0.02: 2 %). Tighter flags more files on a ruler's
    /// drawing error (ticks placed to the nearest pixel); looser misses
    /// small rescalings.
    pub tolerance: f64,
    /// Below this ruler quality (0..1: tick count, evenness, stray marks,
    /// pattern) the check cannot tell. Higher says "cannot tell" on more
    /// screens; lower judges on rulers that may be something else.
    pub min_quality: f32,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            tolerance: 0.02,
            min_quality: 0.5,
        }
    }
}

/// What the ruler says about the stated spacing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Within the tolerance.
    Agrees,
    /// Further apart than the tolerance.
    Disagrees,
    /// No ruler, or one too poor to judge by.
    CannotTell,
}

impl Verdict {
    /// "agrees", "disagrees" or "cannot_tell", as in the report.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Agrees => "agrees",
            Verdict::Disagrees => "disagrees",
            Verdict::CannotTell => "cannot_tell",
        }
    }
}

/// Why the check cannot tell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Undecided {
    /// The stated spacing is not a positive number.
    NoStatedSpacing,
    /// No evenly spaced ticks beside the region.
    NoRuler,
    /// A ruler below `min_quality`.
    LowQuality { quality: f32 },
    /// The ruler's own uncertainty (two standard errors, relative) is wider
    /// than the tolerance.
    Uncertain { uncertainty: f64 },
}

/// The outcome of [`check_spacing`].
#[derive(Debug, Clone, PartialEq)]
pub struct SpacingCheck {
    /// The spacing checked, mm per pixel (the region's y, along the ruler).
    pub stated_mm: f64,
    pub verdict: Verdict,
    /// The ruler's spacing, mm per pixel, under the major step nearer the
    /// stated spacing; None when the check cannot tell.
    pub ruler_mm: Option<f64>,
    /// That major step (one of [`MAJOR_STEPS_MM`]); None when it cannot tell.
    pub major_tick_mm: Option<f64>,
    /// `ruler_mm / stated_mm - 1`; None when it cannot tell.
    pub difference: Option<f64>,
    /// The ruler as read, when one was found.
    pub reading: Option<RulerReading>,
    /// Why it cannot tell; None otherwise.
    pub undecided: Option<Undecided>,
}

impl SpacingCheck {
    /// A sentence for logs and the report: what the ruler was read as, or
    /// why the check cannot tell.
    pub fn reason(&self) -> String {
        if let Some(why) = self.undecided {
            return match why {
                Undecided::NoStatedSpacing => "no stated spacing to check".into(),
                Undecided::NoRuler => {
                    "no depth ruler (evenly spaced vertical tick marks) beside the image region"
                        .into()
                }
                Undecided::LowQuality { quality } => {
                    format!("the ruler found is too irregular to judge by (quality {quality:.2})")
                }
                Undecided::Uncertain { uncertainty } => format!(
                    "the ruler's period is too uncertain (±{:.1} %) to tell",
                    uncertainty * 100.0
                ),
            };
        }
        match (self.reading, self.major_tick_mm) {
            (Some(r), Some(step)) if r.per_major == 1 => format!(
                "{} ticks alike, {:.2} px apart, each read as {step} mm",
                r.ticks, r.major_px
            ),
            (Some(r), Some(step)) => format!(
                "{} ticks, one in {} long, the long ones {:.2} px apart, read as {step} mm",
                r.ticks, r.per_major, r.major_px
            ),
            _ => String::new(),
        }
    }
}

/// Checks `stated_mm` (millimetres per pixel along the image's depth) against
/// the depth ruler beside `region` in one frame. Fails only when `pixels` is
/// too short for `format` and `stride`. Reads the ruler with [`read_ruler`]
/// (a frame's worth of buffers): once per file, not per frame.
///
/// ```
/// use sonoflow_calibrate::{check_spacing, CheckOptions, Verdict};
/// use sonoflow_core::findings::ImageRegion;
/// use sonoflow_core::{FrameFormat, PixelFormat};
///
/// let format = FrameFormat::new(PixelFormat::Gray8, 64, 48).unwrap();
/// let frame = vec![0u8; format.len()];
/// let region = ImageRegion::Rect { x0: 8, y0: 4, x1: 56, y1: 44 };
/// let check = check_spacing(&frame, format, 64, &region, 0.2, &CheckOptions::default()).unwrap();
/// assert_eq!(check.verdict, Verdict::CannotTell); // a black screen has no ruler
/// ```
pub fn check_spacing(
    pixels: &[u8],
    format: FrameFormat,
    stride: usize,
    region: &ImageRegion,
    stated_mm: f64,
    options: &CheckOptions,
) -> Result<SpacingCheck, FrameError> {
    let reading = read_ruler(pixels, format, stride, region, &AutoOptions::default())?;
    let undecided = |why| SpacingCheck {
        stated_mm,
        verdict: Verdict::CannotTell,
        ruler_mm: None,
        major_tick_mm: None,
        difference: None,
        reading,
        undecided: Some(why),
    };
    if !(stated_mm.is_finite() && stated_mm > 0.0) {
        return Ok(undecided(Undecided::NoStatedSpacing));
    }
    let Some(r) = reading else {
        return Ok(undecided(Undecided::NoRuler));
    };
    if r.quality < options.min_quality || !(r.major_px.is_finite() && r.major_px > 0.0) {
        return Ok(undecided(Undecided::LowQuality { quality: r.quality }));
    }
    if 2.0 * r.uncertainty > options.tolerance {
        return Ok(undecided(Undecided::Uncertain {
            uncertainty: 2.0 * r.uncertainty,
        }));
    }
    // The major step whose spacing is nearest the stated one (by ratio).
    let (step, ruler_mm) = MAJOR_STEPS_MM
        .iter()
        .map(|&step| (step, step / r.major_px))
        .min_by(|a, b| {
            (a.1 / stated_mm)
                .ln()
                .abs()
                .total_cmp(&(b.1 / stated_mm).ln().abs())
        })
        .unwrap_or((MAJOR_STEPS_MM[0], MAJOR_STEPS_MM[0] / r.major_px));
    let difference = ruler_mm / stated_mm - 1.0;
    let verdict = if difference.abs() <= options.tolerance {
        Verdict::Agrees
    } else {
        Verdict::Disagrees
    };
    Ok(SpacingCheck {
        stated_mm,
        verdict,
        ruler_mm: Some(ruler_mm),
        major_tick_mm: Some(step),
        difference: Some(difference),
        reading,
        undecided: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonoflow_core::PixelFormat;

    const W: usize = 640;
    const H: usize = 480;
    /// The image: x 100..500, y 40..440.
    const REGION: ImageRegion = ImageRegion::Rect {
        x0: 100,
        y0: 40,
        x1: 500,
        y1: 440,
    };

    /// A screen: speckle in x 100..480 (the region's box takes in 20 dark
    /// columns more at the right, as some files' do), and ticks two rows
    /// thick at (row, length), from column `at`.
    fn screen(ticks: &[(usize, usize)], at: usize) -> Vec<u8> {
        let mut px = vec![0u8; W * H];
        let mut seed = 0x2545_f491_u32;
        for y in 40..440 {
            for x in 100..480 {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                px[y * W + x] = (seed >> 24) as u8 / 2 + 20;
            }
        }
        for &(y, len) in ticks {
            for row in [y, y + 1] {
                px[row * W + at..row * W + at + len].fill(230);
            }
        }
        px
    }

    /// A depth ruler from the region's top down: a tick every `period` px,
    /// the long ones every `per_major`-th.
    fn ruler(period: f64, per_major: usize) -> Vec<(usize, usize)> {
        (0..)
            .map(|k| {
                let y = (40.0 + period * k as f64).round() as usize;
                (y, if k % per_major == 0 { 9 } else { 5 })
            })
            .take_while(|&(y, _)| y + 1 < 440)
            .collect()
    }

    fn check(px: &[u8], stated_mm: f64) -> SpacingCheck {
        let format = FrameFormat::new(PixelFormat::Gray8, W as u32, H as u32).expect("format");
        check_spacing(px, format, W, &REGION, stated_mm, &CheckOptions::default()).expect("frame")
    }

    #[test]
    fn a_ruler_at_the_stated_spacing_agrees_and_one_ten_percent_off_disagrees() {
        // Ticks every 5 mm, 25 px apart, long every cm: 0.2 mm/px.
        let px = screen(&ruler(25.0, 2), 504);
        let agrees = check(&px, 0.2);
        assert_eq!(agrees.verdict, Verdict::Agrees, "{}", agrees.reason());
        assert_eq!(agrees.major_tick_mm, Some(10.0));
        let ruler = agrees.ruler_mm.expect("ruler");
        assert!((ruler / 0.2 - 1.0).abs() < 0.005, "{ruler}");
        assert!(
            agrees
                .reason()
                .contains("one in 2 long, the long ones 50.00 px apart, read as 10 mm"),
            "{}",
            agrees.reason()
        );
        // 1.5 % off: still within 2 %.
        assert_eq!(check(&px, 0.2 * 1.015).verdict, Verdict::Agrees);
        let disagrees = check(&px, 0.22);
        assert_eq!(disagrees.verdict, Verdict::Disagrees);
        let d = disagrees.difference.expect("difference");
        assert!((d + 0.0909).abs() < 0.005, "{d}");
        // A spacing read as cm for mm, or of an image at half size.
        assert_eq!(check(&px, 2.0).verdict, Verdict::Disagrees);
        assert_eq!(check(&px, 0.4).verdict, Verdict::Disagrees);
    }

    #[test]
    fn long_ticks_every_five_centimetres_are_read_as_such_when_the_file_says_so() {
        // A tick per cm, 40 px apart, long every 5th: 0.25 mm/px.
        let px = screen(&ruler(40.0, 5), 504);
        let five_cm = check(&px, 0.25);
        assert_eq!(five_cm.verdict, Verdict::Agrees, "{}", five_cm.reason());
        assert_eq!(five_cm.major_tick_mm, Some(50.0));
        let reading = five_cm.reading.expect("ruler");
        assert_eq!(reading.per_major, 5);
    }

    #[test]
    fn a_ruler_just_inside_the_stated_region_is_found() {
        // The region's box takes in the whole ruler, 5 to 14 px inside its
        // right edge.
        let px = screen(&ruler(25.0, 2), 486);
        let seen = check(&px, 0.2);
        assert_eq!(seen.verdict, Verdict::Agrees, "{}", seen.reason());
    }

    #[test]
    fn no_ruler_a_ruler_too_short_or_too_irregular_cannot_tell() {
        let none = check(&screen(&[], 504), 0.2);
        assert_eq!(none.verdict, Verdict::CannotTell);
        assert_eq!(none.undecided, Some(Undecided::NoRuler));
        assert!(none.ruler_mm.is_none() && none.difference.is_none());
        assert!(
            none.reason().contains("no depth ruler"),
            "{}",
            none.reason()
        );
        // Three ticks are no ruler.
        let short = check(&screen(&ruler(150.0, 1), 504), 0.2);
        assert_eq!(short.verdict, Verdict::CannotTell, "{}", short.reason());
        // Ticks all alike, unevenly drawn, with a stray mark among them.
        let uneven = [(40, 5), (123, 5), (197, 5), (250, 5), (283, 5), (357, 5)];
        let poor = check(&screen(&uneven, 504), 0.2);
        assert_eq!(poor.verdict, Verdict::CannotTell, "{}", poor.reason());
        assert!(
            matches!(poor.undecided, Some(Undecided::LowQuality { .. })),
            "{poor:?}"
        );
        assert!(poor.reason().contains("too irregular"), "{}", poor.reason());
        let unstated = check(&screen(&ruler(25.0, 2), 504), 0.0);
        assert_eq!(unstated.undecided, Some(Undecided::NoStatedSpacing));
    }
}
