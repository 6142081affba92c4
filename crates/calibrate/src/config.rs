//! `[source.calibration]` in a pipeline definition: where the image sits on
//! a screen source and how large its pixels are.
//!
//! ```toml
//! [source]
//! calibration = "auto"                    # find both in the frames
//!
//! [source.calibration]                    # or: a fixed region and spacing
//! region = [120, 18, 588, 383]            #   x0, y0, x1, y1 (x1, y1 exclusive)
//! spacing_mm = 0.082                      #   or [x, y]
//!
//! [source.calibration]                    # or: a ruler on the screen
//! ruler = [[594, 18], [594, 383]]         #   two pixel positions…
//! ruler_mm = 30.0                         #   …this many mm apart
//! region = { apex = [354.5, -212.7], r0 = 266.7, r1 = 466.7, half_angle_deg = 30 }
//! ```
//!
//! Without `region`, the whole frame is the image. A ruler gives a square
//! pixel (the same spacing in x and y). `mode = "auto"` is the long form of
//! `calibration = "auto"` and takes `major_tick_mm` and `min_confidence`.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use sonoflow_core::findings::{ImageRegion, PixelSpacing, Point};
use sonoflow_core::{Calibration, CalibrationSource, ConfigIssue};

use crate::auto::AutoOptions;

/// Rulers shorter than this (in pixels) are refused: half a pixel at each
/// end would already be a 7 % uncertainty.
pub const MIN_RULER_PX: f64 = 10.0;

/// Spacings above this many mm per pixel are not an ultrasound screen.
const MAX_SPACING_MM: f64 = 10.0;

/// `[source.calibration]` as written. Deserialises from the string
/// `"auto"` or from a table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CalibrationConfig {
    /// `"auto"`: find the region and spacing in the frames.
    pub mode: Option<CalibrationMode>,
    /// The image region; the whole frame when unset.
    pub region: Option<RegionConfig>,
    /// Millimetres per pixel, one number (square pixels) or `[x, y]`.
    pub spacing_mm: Option<SpacingConfig>,
    /// Two pixel positions on the screen's own ruler (or any known length).
    pub ruler: Option<[[f64; 2]; 2]>,
    /// The distance in mm between the two `ruler` positions.
    pub ruler_mm: Option<f64>,
    /// Auto: millimetres between the ruler's major ticks (default 10).
    pub major_tick_mm: Option<f64>,
    /// Auto: the confidence (0..1) needed to lock (default 0.5).
    pub min_confidence: Option<f32>,
}

/// The calibration modes other than by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CalibrationMode {
    Auto,
}

/// `region` as written: `[x0, y0, x1, y1]` or a fan table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RegionConfig {
    /// Corners in pixels; `x1`, `y1` exclusive.
    Rect([i64; 4]),
    /// `{ apex = [x, y], r0, r1, half_angle_deg }`, radii in pixels.
    Fan(FanConfig),
}

/// A sector: pixels between `r0` and `r1` from `apex`, within
/// `half_angle_deg` of straight down.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FanConfig {
    pub apex: [f64; 2],
    pub r0: f64,
    pub r1: f64,
    pub half_angle_deg: f64,
}

/// `spacing_mm` as written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SpacingConfig {
    Square(f64),
    PerAxis([f64; 2]),
}

/// A validated `[source.calibration]`.
#[derive(Debug, Clone, PartialEq)]
pub enum CalibrationSetting {
    /// The definition gives region and spacing.
    Fixed(FixedCalibration),
    /// Found in the frames by an [`crate::AutoCalibrator`] with these options.
    Auto(AutoOptions),
}

/// A calibration given by the definition (source `Config`).
#[derive(Debug, Clone, PartialEq)]
pub struct FixedCalibration {
    key: String,
    region: Option<ImageRegion>,
    spacing: PixelSpacing,
    uncertainty: f64,
    ruler: Option<[[f64; 2]; 2]>,
}

impl FixedCalibration {
    pub fn spacing(&self) -> PixelSpacing {
        self.spacing
    }

    /// Relative standard uncertainty of the spacing: 0 for a spacing given
    /// as a number (it is what the scanner says), half a pixel at each end
    /// of a ruler (in quadrature) over its length.
    pub fn uncertainty(&self) -> f64 {
        self.uncertainty
    }

    /// The calibration for frames of `width × height`: the configured
    /// region (or the whole frame) must lie in the frame, and so must the
    /// ruler.
    pub fn for_frame(&self, width: u32, height: u32) -> Result<Calibration, ConfigIssue> {
        let region = match self.region {
            None => ImageRegion::Rect {
                x0: 0,
                y0: 0,
                x1: width,
                y1: height,
            },
            Some(region) => {
                let b = region.bounds();
                let slack = 1.0;
                if b.x0 < -slack
                    || b.y0 < -slack
                    || b.x1 > width as f32 + slack
                    || b.y1 > height as f32 + slack
                {
                    return Err(ConfigIssue::new(
                        format!("{}.region", self.key),
                        format!(
                            "reaches outside the {width}x{height} frame (it spans x {:.0}..{:.0}, y {:.0}..{:.0})",
                            b.x0, b.x1, b.y0, b.y1
                        ),
                        "measure the region on a frame of this source, or remove it to use the whole frame",
                    ));
                }
                region
            }
        };
        if let Some(ruler) = self.ruler {
            let outside = ruler.iter().any(|p| {
                p[0] < 0.0 || p[1] < 0.0 || p[0] > f64::from(width) || p[1] > f64::from(height)
            });
            if outside {
                return Err(ConfigIssue::new(
                    format!("{}.ruler", self.key),
                    format!("a point lies outside the {width}x{height} frame"),
                    "measure the ruler on a frame of this source",
                ));
            }
        }
        Ok(Calibration::single(
            region,
            Some(self.spacing),
            CalibrationSource::Config,
            self.uncertainty,
        ))
    }
}

impl CalibrationConfig {
    /// `calibration = "auto"`.
    pub fn auto() -> Self {
        Self {
            mode: Some(CalibrationMode::Auto),
            ..Self::default()
        }
    }

    /// Checks the section; `prefix` is its key path (`source.calibration`).
    pub fn validate(&self, prefix: &str) -> Result<CalibrationSetting, ConfigIssue> {
        let key = |k: &str| format!("{prefix}.{k}");
        let hand = [
            ("region", self.region.is_some()),
            ("spacing_mm", self.spacing_mm.is_some()),
            ("ruler", self.ruler.is_some()),
            ("ruler_mm", self.ruler_mm.is_some()),
        ];
        if self.mode == Some(CalibrationMode::Auto) {
            if let Some((k, _)) = hand.iter().find(|(_, set)| *set) {
                return Err(ConfigIssue::new(
                    key(k),
                    "does not apply to mode \"auto\", which finds the region and spacing itself",
                    format!("remove {k}, or remove mode = \"auto\" to calibrate by hand"),
                ));
            }
            return self.auto_options(prefix).map(CalibrationSetting::Auto);
        }
        for (k, set) in [
            ("major_tick_mm", self.major_tick_mm.is_some()),
            ("min_confidence", self.min_confidence.is_some()),
        ] {
            if set {
                return Err(ConfigIssue::new(
                    key(k),
                    "applies only to mode = \"auto\"",
                    format!("add mode = \"auto\", or remove {k}"),
                ));
            }
        }
        let region = self
            .region
            .map(|r| r.validate(&key("region")))
            .transpose()?;
        let (spacing, uncertainty, ruler) =
            match (self.spacing_mm, self.ruler, self.ruler_mm) {
                (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                    let k = if self.ruler.is_some() {
                        "ruler"
                    } else {
                        "ruler_mm"
                    };
                    return Err(ConfigIssue::new(
                        key(k),
                        "is set together with spacing_mm: the spacing would be given twice",
                        "keep spacing_mm or the ruler (ruler and ruler_mm), not both",
                    ));
                }
                (Some(s), None, None) => (s.validate(&key("spacing_mm"))?, 0.0, None),
                (None, Some(ruler), Some(mm)) => {
                    let (spacing, uncertainty) = ruler_spacing(prefix, ruler, mm)?;
                    (spacing, uncertainty, Some(ruler))
                }
                (None, Some(_), None) => {
                    return Err(ConfigIssue::new(
                        key("ruler_mm"),
                        "is missing: the ruler's two points need the distance between them",
                        "set ruler_mm to the distance in mm between the two points (e.g. 40.0)",
                    ))
                }
                (None, None, Some(_)) => {
                    return Err(ConfigIssue::new(
                        key("ruler"),
                        "is missing: ruler_mm needs the two points it measures",
                        "set ruler = [[x0, y0], [x1, y1]], the pixel positions of its two ends",
                    ))
                }
                (None, None, None) => return Err(ConfigIssue::new(
                    prefix,
                    "gives no pixel spacing",
                    "set spacing_mm = 0.1 (mm per pixel), or ruler = [[x0, y0], [x1, y1]] with \
                     ruler_mm = 40.0, or write calibration = \"auto\"",
                )),
            };
        Ok(CalibrationSetting::Fixed(FixedCalibration {
            key: prefix.to_string(),
            region,
            spacing,
            uncertainty,
            ruler,
        }))
    }

    fn auto_options(&self, prefix: &str) -> Result<AutoOptions, ConfigIssue> {
        let defaults = AutoOptions::default();
        let major_tick_mm = self.major_tick_mm.unwrap_or(defaults.major_tick_mm);
        if !(major_tick_mm > 0.0 && major_tick_mm <= 100.0) {
            return Err(ConfigIssue::new(
                format!("{prefix}.major_tick_mm"),
                format!("is {major_tick_mm}"),
                format!(
                    "use the millimetres between the ruler's longest ticks, above 0 and at most \
                     100 (default {})",
                    defaults.major_tick_mm
                ),
            ));
        }
        let min_confidence = self.min_confidence.unwrap_or(defaults.min_confidence);
        if !(0.0..=1.0).contains(&min_confidence) {
            return Err(ConfigIssue::new(
                format!("{prefix}.min_confidence"),
                format!("is {min_confidence}"),
                format!("use 0 to 1 (default {})", defaults.min_confidence),
            ));
        }
        Ok(AutoOptions {
            major_tick_mm,
            min_confidence,
        })
    }
}

/// Square spacing and its relative uncertainty from a two-point ruler.
fn ruler_spacing(
    prefix: &str,
    ruler: [[f64; 2]; 2],
    mm: f64,
) -> Result<(PixelSpacing, f64), ConfigIssue> {
    if !(mm.is_finite() && mm > 0.0) {
        return Err(ConfigIssue::new(
            format!("{prefix}.ruler_mm"),
            format!("is {mm}"),
            "use the distance in mm between the ruler's two points, above 0 (e.g. 40.0)",
        ));
    }
    let [a, b] = ruler;
    let finite = a.iter().chain(&b).all(|v| v.is_finite() && *v >= 0.0);
    let length = ((b[0] - a[0]).powi(2) + (b[1] - a[1]).powi(2)).sqrt();
    if !finite || length < MIN_RULER_PX {
        let problem = if finite {
            format!(
                "its points are {length:.1} px apart; half a pixel at each end would make the \
                 spacing uncertain by {:.0} % or more",
                100.0 * 0.5f64.hypot(0.5) / length.max(f64::MIN_POSITIVE)
            )
        } else {
            "a coordinate is negative or not a number".to_string()
        };
        return Err(ConfigIssue::new(
            format!("{prefix}.ruler"),
            problem,
            format!(
                "pick two pixel positions at least {MIN_RULER_PX} px apart, the farther the \
                 better (e.g. the ruler's 0 and its deepest centimetre mark)"
            ),
        ));
    }
    let spacing = mm / length;
    if spacing > MAX_SPACING_MM {
        return Err(ConfigIssue::new(
            format!("{prefix}.ruler_mm"),
            format!("makes {spacing:.2} mm per pixel, more than {MAX_SPACING_MM}"),
            "check ruler_mm is in millimetres and the points are in pixels",
        ));
    }
    Ok((PixelSpacing::isotropic(spacing), 0.5f64.hypot(0.5) / length))
}

impl SpacingConfig {
    fn validate(self, key: &str) -> Result<PixelSpacing, ConfigIssue> {
        let (x, y) = match self {
            SpacingConfig::Square(s) => (s, s),
            SpacingConfig::PerAxis([x, y]) => (x, y),
        };
        for v in [x, y] {
            if !(v.is_finite() && v > 0.0 && v <= MAX_SPACING_MM) {
                return Err(ConfigIssue::new(
                    key,
                    format!("is {v}"),
                    format!(
                        "use the millimetres one pixel spans, above 0 and at most \
                         {MAX_SPACING_MM} (e.g. 0.1, or [0.1, 0.12] for x and y)"
                    ),
                ));
            }
        }
        Ok(PixelSpacing { x_mm: x, y_mm: y })
    }
}

impl RegionConfig {
    fn validate(self, key: &str) -> Result<ImageRegion, ConfigIssue> {
        match self {
            RegionConfig::Rect([x0, y0, x1, y1]) => {
                let fits = |v: i64| (0..=i64::from(u32::MAX)).contains(&v);
                if !(fits(x0) && fits(y0) && fits(x1) && fits(y1)) || x0 >= x1 || y0 >= y1 {
                    return Err(ConfigIssue::new(
                        key,
                        format!("[{x0}, {y0}, {x1}, {y1}] is not a rectangle of pixels"),
                        "write [x0, y0, x1, y1]: the top-left pixel and one past the \
                         bottom-right, with x0 < x1 and y0 < y1, none negative",
                    ));
                }
                Ok(ImageRegion::Rect {
                    x0: x0 as u32,
                    y0: y0 as u32,
                    x1: x1 as u32,
                    y1: y1 as u32,
                })
            }
            RegionConfig::Fan(fan) => {
                let finite = fan.apex.iter().all(|v| v.is_finite())
                    && fan.r0.is_finite()
                    && fan.r1.is_finite();
                let problem = if !finite {
                    Some("a number is not finite".to_string())
                } else if fan.r0 < 0.0 || fan.r1 <= fan.r0 {
                    Some(format!(
                        "r0 = {}, r1 = {}: need 0 <= r0 < r1",
                        fan.r0, fan.r1
                    ))
                } else if !(fan.half_angle_deg > 0.0 && fan.half_angle_deg <= 90.0) {
                    Some(format!("half_angle_deg = {}", fan.half_angle_deg))
                } else {
                    None
                };
                if let Some(problem) = problem {
                    return Err(ConfigIssue::new(
                        key,
                        problem,
                        "write { apex = [x, y], r0 = .., r1 = .., half_angle_deg = .. }: radii \
                         in pixels from the apex, 0 <= r0 < r1, half angle above 0 and at \
                         most 90 degrees",
                    ));
                }
                Ok(ImageRegion::Fan {
                    apex: Point {
                        x: fan.apex[0] as f32,
                        y: fan.apex[1] as f32,
                    },
                    r0: fan.r0 as f32,
                    r1: fan.r1 as f32,
                    half_angle: fan.half_angle_deg.to_radians() as f32,
                })
            }
        }
    }
}

/// The table form, key by key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    mode: Option<CalibrationMode>,
    region: Option<RegionConfig>,
    spacing_mm: Option<SpacingConfig>,
    ruler: Option<[[f64; 2]; 2]>,
    ruler_mm: Option<f64>,
    major_tick_mm: Option<f64>,
    min_confidence: Option<f32>,
}

impl<'de> Deserialize<'de> for CalibrationConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CalibrationConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"auto\" or a table (region, spacing_mm or ruler and ruler_mm)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "auto" => Ok(CalibrationConfig::auto()),
                    other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let t = Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(CalibrationConfig {
                    mode: t.mode,
                    region: t.region,
                    spacing_mm: t.spacing_mm,
                    ruler: t.ruler,
                    ruler_mm: t.ruler_mm,
                    major_tick_mm: t.major_tick_mm,
                    min_confidence: t.min_confidence,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for RegionConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RegionConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "[x0, y0, x1, y1] or { apex = [x, y], r0 = .., r1 = .., half_angle_deg = .. }",
                )
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut v = [0i64; 4];
                for (i, slot) in v.iter_mut().enumerate() {
                    *slot = seq
                        .next_element()?
                        .ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(5, &self));
                }
                Ok(RegionConfig::Rect(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                FanConfig::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RegionConfig::Fan)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for SpacingConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SpacingConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("mm per pixel: a number, or [x, y]")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(SpacingConfig::Square(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(SpacingConfig::Square(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(SpacingConfig::Square(v as f64))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let x = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let y = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(3, &self));
                }
                Ok(SpacingConfig::PerAxis([x, y]))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Source {
        calibration: CalibrationConfig,
    }

    fn parse(text: &str) -> Result<CalibrationConfig, String> {
        toml::from_str::<Source>(text)
            .map(|s| s.calibration)
            .map_err(|e| e.to_string())
    }

    fn setting(text: &str) -> Result<CalibrationSetting, ConfigIssue> {
        parse(text).expect("parses").validate("source.calibration")
    }

    fn fixed(text: &str) -> FixedCalibration {
        match setting(text).expect("valid") {
            CalibrationSetting::Fixed(f) => f,
            other => panic!("not fixed: {other:?}"),
        }
    }

    #[test]
    fn auto_is_a_word_or_a_table_with_its_options() {
        assert_eq!(
            setting("calibration = \"auto\"").expect("valid"),
            CalibrationSetting::Auto(AutoOptions::default())
        );
        let long = "[calibration]\nmode = \"auto\"\nmajor_tick_mm = 50\nmin_confidence = 0.7";
        assert_eq!(
            setting(long).expect("valid"),
            CalibrationSetting::Auto(AutoOptions {
                major_tick_mm: 50.0,
                min_confidence: 0.7,
            })
        );
    }

    #[test]
    fn a_fixed_region_and_spacing_make_a_config_calibration() {
        let f = fixed("[calibration]\nregion = [10, 20, 110, 220]\nspacing_mm = 0.1");
        let cal = f.for_frame(640, 480).expect("fits");
        assert_eq!(cal.source, CalibrationSource::Config);
        assert_eq!(cal.uncertainty, 0.0);
        assert_eq!(cal.spacing(), Some(PixelSpacing::isotropic(0.1)));
        assert_eq!(
            cal.region(),
            Some(ImageRegion::Rect {
                x0: 10,
                y0: 20,
                x1: 110,
                y1: 220
            })
        );
        let per_axis = fixed("[calibration]\nspacing_mm = [0.1, 0.2]");
        assert_eq!(
            per_axis.spacing(),
            PixelSpacing {
                x_mm: 0.1,
                y_mm: 0.2
            }
        );
        // No region: the whole frame.
        assert_eq!(
            per_axis.for_frame(64, 48).expect("fits").region(),
            Some(ImageRegion::Rect {
                x0: 0,
                y0: 0,
                x1: 64,
                y1: 48
            })
        );
    }

    #[test]
    fn a_ruler_gives_square_pixels_and_half_a_pixel_at_each_end() {
        let f = fixed(
            "[calibration]\nruler = [[594, 18], [594, 418]]\nruler_mm = 40\n\
             region = { apex = [354.5, -212.7], r0 = 266.7, r1 = 466.7, half_angle_deg = 30 }",
        );
        assert!((f.spacing().x_mm - 0.1).abs() < 1e-12);
        assert_eq!(f.spacing().x_mm, f.spacing().y_mm);
        assert!((f.uncertainty() - 0.5f64.hypot(0.5) / 400.0).abs() < 1e-12);
        let cal = f.for_frame(640, 480).expect("fits");
        assert!(matches!(cal.region(), Some(ImageRegion::Fan { .. })));
        assert!(f.for_frame(320, 240).is_err());
    }

    #[test]
    fn bad_configs_name_their_key() {
        let cases: [(&str, &str); 14] = [
            ("[calibration]\nregion = [0, 0, 10, 10]", "source.calibration"),
            (
                "[calibration]\nspacing_mm = 0.1\nruler = [[0, 0], [0, 100]]\nruler_mm = 10",
                "source.calibration.ruler",
            ),
            (
                "[calibration]\nruler = [[0, 0], [0, 100]]",
                "source.calibration.ruler_mm",
            ),
            ("[calibration]\nruler_mm = 10", "source.calibration.ruler"),
            (
                "[calibration]\nruler = [[0, 0], [0, 4]]\nruler_mm = 10",
                "source.calibration.ruler",
            ),
            (
                "[calibration]\nruler = [[0, 0], [0, 100]]\nruler_mm = -1",
                "source.calibration.ruler_mm",
            ),
            ("[calibration]\nspacing_mm = 0", "source.calibration.spacing_mm"),
            (
                "[calibration]\nspacing_mm = [0.1, 50]",
                "source.calibration.spacing_mm",
            ),
            (
                "[calibration]\nspacing_mm = 0.1\nregion = [10, 0, 5, 10]",
                "source.calibration.region",
            ),
            (
                "[calibration]\nspacing_mm = 0.1\nregion = { apex = [0, 0], r0 = 50, r1 = 40, half_angle_deg = 30 }",
                "source.calibration.region",
            ),
            (
                "[calibration]\nmode = \"auto\"\nspacing_mm = 0.1",
                "source.calibration.spacing_mm",
            ),
            (
                "[calibration]\nspacing_mm = 0.1\nmajor_tick_mm = 10",
                "source.calibration.major_tick_mm",
            ),
            (
                "[calibration]\nmode = \"auto\"\nmajor_tick_mm = 0",
                "source.calibration.major_tick_mm",
            ),
            (
                "[calibration]\nmode = \"auto\"\nmin_confidence = 1.5",
                "source.calibration.min_confidence",
            ),
        ];
        for (text, key) in cases {
            let issue = setting(text).expect_err(text);
            assert_eq!(issue.key, key, "{text}: {issue}");
            assert!(!issue.fix.is_empty());
        }
    }

    #[test]
    fn misspellings_are_refused_when_parsed() {
        for (text, says) in [
            ("calibration = \"automatic\"", "auto"),
            ("[calibration]\nspacing = 0.1", "spacing"),
            ("[calibration]\nmode = \"manual\"", "auto"),
            ("[calibration]\nregion = [1, 2, 3]", "x0, y0, x1, y1"),
            ("[calibration]\nspacing_mm = [0.1, 0.2, 0.3]", "[x, y]"),
            (
                "[calibration]\nregion = { apex = [0, 0], r0 = 1, r1 = 2, angle = 3 }",
                "angle",
            ),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
