//! A sidecar `NAME.json` beside an image: its calibration.
//!
//! ```json
//! {"spacing_mm": 0.1, "region": [x0, y0, x1, y1]}
//! ```
//!
//! - `spacing_mm`: mm per pixel, one number (square pixels) or `[x, y]`;
//! - `region`: where the ultrasound image lies in the frame, in pixels,
//!   `x1` and `y1` exclusive; the whole image when absent.
//!
//! At least one of them must be there; other keys are refused (a typo would
//! otherwise silently leave the image uncalibrated). The calibration's
//! source is `Config` and its uncertainty 0: a declared spacing carries no
//! error of its own (as a DICOM file's), and the half pixel each caliper
//! end may be off is already in every caliper's own uncertainty.

use std::path::Path;

use serde_json::Value;
use sonoflow_core::findings::{ImageRegion, PixelSpacing};
use sonoflow_core::{Calibration, CalibrationSource, ConfigIssue};

use crate::error::ItemError;

const KEYS: [&str; 2] = ["spacing_mm", "region"];

/// The calibration a sidecar gives a `width` x `height` image.
pub fn read(path: &Path, width: u32, height: u32) -> Result<Calibration, ItemError> {
    let text = std::fs::read_to_string(path).map_err(|e| ItemError::Io {
        path: path.to_path_buf(),
        cause: e.to_string(),
    })?;
    let issue = |issue: ConfigIssue| ItemError::Sidecar {
        path: path.to_path_buf(),
        issue,
    };
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        issue(ConfigIssue::new(
            "(the file)",
            format!("not valid JSON ({e})"),
            r#"write one object, e.g. {"spacing_mm": 0.1, "region": [0, 0, 640, 480]}"#,
        ))
    })?;
    parse(&value, width, height).map_err(issue)
}

fn parse(value: &Value, width: u32, height: u32) -> Result<Calibration, ConfigIssue> {
    let Value::Object(map) = value else {
        return Err(ConfigIssue::new(
            "(the file)",
            "is not a JSON object",
            r#"write one object, e.g. {"spacing_mm": 0.1}"#,
        ));
    };
    if let Some(key) = map.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(ConfigIssue::new(
            key.as_str(),
            "is not a sidecar key",
            "use `spacing_mm` (mm per pixel) and `region` ([x0, y0, x1, y1])",
        ));
    }
    let spacing = map.get("spacing_mm").map(spacing).transpose()?;
    let region = map
        .get("region")
        .map(|r| region(r, width, height))
        .transpose()?;
    if spacing.is_none() && region.is_none() {
        return Err(ConfigIssue::new(
            "spacing_mm",
            "is missing (and so is `region`): the sidecar says nothing",
            r#"add e.g. "spacing_mm": 0.1, or delete the sidecar"#,
        ));
    }
    let region = region.unwrap_or(ImageRegion::Rect {
        x0: 0,
        y0: 0,
        x1: width,
        y1: height,
    });
    Ok(Calibration::single(
        region,
        spacing,
        CalibrationSource::Config,
        0.0,
    ))
}

fn spacing(value: &Value) -> Result<PixelSpacing, ConfigIssue> {
    let positive = |v: &Value| v.as_f64().filter(|mm| mm.is_finite() && *mm > 0.0);
    let found = match value {
        Value::Array(xy) if xy.len() == 2 => positive(&xy[0]).zip(positive(&xy[1])),
        v => positive(v).map(|mm| (mm, mm)),
    };
    found
        .map(|(x_mm, y_mm)| PixelSpacing { x_mm, y_mm })
        .ok_or_else(|| {
            ConfigIssue::new(
                "spacing_mm",
                format!("{value} is not a positive size in mm, nor a pair [x, y] of them"),
                r#"give mm per pixel, e.g. "spacing_mm": 0.1 or [0.1, 0.12]"#,
            )
        })
}

fn region(value: &Value, width: u32, height: u32) -> Result<ImageRegion, ConfigIssue> {
    let corners: Option<Vec<u32>> = value.as_array().and_then(|a| {
        a.iter()
            .map(|v| v.as_u64().and_then(|n| u32::try_from(n).ok()))
            .collect()
    });
    match corners.as_deref() {
        Some(&[x0, y0, x1, y1]) if x0 < x1 && y0 < y1 && x1 <= width && y1 <= height => {
            Ok(ImageRegion::Rect { x0, y0, x1, y1 })
        }
        _ => Err(ConfigIssue::new(
            "region",
            format!("{value} is not a rectangle inside the {width}x{height} image"),
            "give [x0, y0, x1, y1] in whole pixels, x1 and y1 exclusive",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(text: &str) -> Result<Calibration, ConfigIssue> {
        parse(&serde_json::from_str(text).expect("test JSON"), 64, 48)
    }

    #[test]
    fn spacing_and_region_make_a_config_calibration() {
        let c = of(r#"{"spacing_mm": [0.1, 0.12], "region": [2, 3, 60, 40]}"#).expect("valid");
        assert_eq!(c.source, CalibrationSource::Config);
        assert_eq!(c.uncertainty, 0.0);
        assert_eq!(
            c.spacing(),
            Some(PixelSpacing {
                x_mm: 0.1,
                y_mm: 0.12
            })
        );
        assert_eq!(
            c.region(),
            Some(ImageRegion::Rect {
                x0: 2,
                y0: 3,
                x1: 60,
                y1: 40
            })
        );
        let whole = of(r#"{"spacing_mm": 0.2}"#).expect("valid");
        assert_eq!(whole.spacing(), Some(PixelSpacing::isotropic(0.2)));
        assert_eq!(
            whole.region(),
            Some(ImageRegion::Rect {
                x0: 0,
                y0: 0,
                x1: 64,
                y1: 48
            })
        );
        let region_only = of(r#"{"region": [0, 0, 10, 10]}"#).expect("valid");
        assert_eq!(region_only.spacing(), None);
    }

    #[test]
    fn each_bad_sidecar_names_its_key() {
        for (text, key) in [
            (r#"{"spacing": 0.1}"#, "spacing"),
            (r#"{"spacing_mm": -0.1}"#, "spacing_mm"),
            (r#"{"spacing_mm": "0.1"}"#, "spacing_mm"),
            (r#"{"spacing_mm": [0.1]}"#, "spacing_mm"),
            (r#"{"spacing_mm": 0.1, "region": [0, 0, 65, 48]}"#, "region"),
            (r#"{"spacing_mm": 0.1, "region": [5, 0, 5, 48]}"#, "region"),
            (
                r#"{"spacing_mm": 0.1, "region": [0, 0, 10.5, 48]}"#,
                "region",
            ),
            (r#"{}"#, "spacing_mm"),
            (r#"[0.1]"#, "(the file)"),
        ] {
            let issue = of(text).expect_err(text);
            assert_eq!(issue.key, key, "{text}: {issue}");
        }
    }
}
