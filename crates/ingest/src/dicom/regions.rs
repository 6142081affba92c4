//! Calibration from a file's Sequence of Ultrasound Regions (0018,6011).
//!
//! Rules (docs/sources.md says the same):
//! - Only 2-D regions (Region Spatial Format 1, "tissue or flow") are image
//!   regions; M-mode, spectral Doppler strips, waveforms and graphics are
//!   ignored. A 2-D region lying wholly inside another (a colour box drawn
//!   within the B-mode image) is not a region of its own.
//! - The bounds are inclusive pixel positions and must lie inside the image;
//!   a bound exactly one past the last column or row (some scanners write the
//!   exclusive end) is taken as the image edge. A region that does not fit is
//!   refused, never trusted: its spacing describes some other image.
//! - Physical Delta X/Y are cm per pixel when Physical Units X/Y are 3 (cm);
//!   the spacing in mm is ten times that. A delta that is zero, negative or
//!   not a number refuses the region; other units keep the region without a
//!   spacing (no mm in it).
//! - Regions keep the sequence's order: the first is primary. Several B-mode
//!   views side by side are each a region.

use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, Tag};
use sonoflow_core::findings::{ImageRegion, PixelSpacing};
use sonoflow_core::{CalibratedRegion, Calibration, CalibrationSource};

/// Region Spatial Format 1: 2-D (tissue or flow).
const SPATIAL_2D: u32 = 1;
/// Physical Units 3: cm.
const UNITS_CM: u32 = 3;

/// What a file's regions gave: its calibration and what was set aside.
#[derive(Debug, Clone, Default)]
pub(crate) struct Regions {
    /// `None`: uncalibrated (no regions, or none usable).
    pub calibration: Option<Calibration>,
    /// Whether the file has a Sequence of Ultrasound Regions at all.
    pub present: bool,
    /// Regions refused, each with why (logged as warnings).
    pub refused: Vec<String>,
    /// Regions kept without a spacing, or passed over (logged as information).
    pub notes: Vec<String>,
}

impl Regions {
    /// One line for the log: what frames of this file carry.
    pub(crate) fn summary(&self) -> String {
        match &self.calibration {
            None if !self.present => {
                "no Sequence of Ultrasound Regions: frames are uncalibrated (no mm)".into()
            }
            None => "no usable 2-D region: frames are uncalibrated (no mm)".into(),
            Some(c) => {
                let n = c.regions.len();
                let plural = if n == 1 { "" } else { "s" };
                match c.spacing() {
                    Some(s) => format!(
                        "{n} region{plural}, primary {:.4} x {:.4} mm/px",
                        s.x_mm, s.y_mm
                    ),
                    None => format!(
                        "{n} region{plural} without spacing: frames are uncalibrated (no mm)"
                    ),
                }
            }
        }
    }
}

/// Reads the regions of a `width`x`height` image.
pub(crate) fn read(obj: &InMemDicomObject, width: u32, height: u32) -> Regions {
    let mut out = Regions::default();
    let Some(items) = obj
        .get(tags::SEQUENCE_OF_ULTRASOUND_REGIONS)
        .and_then(|e| e.items())
    else {
        return out;
    };
    out.present = true;
    let total = items.len();
    let mut kept: Vec<CalibratedRegion> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let name = format!("region {} of {total}", i + 1);
        match region(item, width, height) {
            Outcome::Kept(r, note) => {
                if let Some(note) = note {
                    out.notes.push(format!("{name}: {note}"));
                }
                kept.push(r);
            }
            Outcome::Ignored(what) => out.notes.push(format!("{name} ({what}): ignored")),
            Outcome::Refused(why) => out.refused.push(format!("{name}: {why}; refused")),
        }
    }
    // A 2-D region wholly inside another is a box drawn within that image.
    let inside = |a: &ImageRegion, b: &ImageRegion| match (a, b) {
        (
            ImageRegion::Rect { x0, y0, x1, y1 },
            ImageRegion::Rect {
                x0: bx0,
                y0: by0,
                x1: bx1,
                y1: by1,
            },
        ) => x0 >= bx0 && y0 >= by0 && x1 <= bx1 && y1 <= by1,
        _ => false,
    };
    let mut regions: Vec<CalibratedRegion> = Vec::new();
    for (i, r) in kept.iter().enumerate() {
        let within = kept.iter().enumerate().any(|(j, other)| {
            j != i && inside(&r.region, &other.region) && (r.region != other.region || j < i)
        });
        if within {
            out.notes.push(format!(
                "a 2-D region lies inside another ({}): not a region of its own",
                describe(&r.region)
            ));
        } else {
            regions.push(*r);
        }
    }
    if !regions.is_empty() {
        out.calibration = Some(Calibration {
            regions,
            source: CalibrationSource::Dicom,
            // The scanner drew the image at this spacing; its own error is
            // not declared in the file.
            uncertainty: 0.0,
        });
    }
    out
}

enum Outcome {
    Kept(CalibratedRegion, Option<String>),
    Ignored(String),
    Refused(String),
}

fn region(item: &InMemDicomObject, width: u32, height: u32) -> Outcome {
    let uint = |tag: Tag| item.get(tag).and_then(|e| e.to_int::<u32>().ok());
    let float = |tag: Tag| item.get(tag).and_then(|e| e.to_float64().ok());
    let format = uint(tags::REGION_SPATIAL_FORMAT);
    if format != Some(SPATIAL_2D) {
        let what = match format {
            Some(2) => "M-mode",
            Some(3) => "spectral",
            Some(4) => "waveform",
            Some(5) => "graphics",
            _ => "not a 2-D image",
        };
        return Outcome::Ignored(match uint(tags::REGION_DATA_TYPE).and_then(data_type) {
            Some(data) => format!("{what}, {data}"),
            None => what.into(),
        });
    }
    let bounds = [
        uint(tags::REGION_LOCATION_MIN_X0),
        uint(tags::REGION_LOCATION_MIN_Y0),
        uint(tags::REGION_LOCATION_MAX_X1),
        uint(tags::REGION_LOCATION_MAX_Y1),
    ];
    let [Some(x0), Some(y0), Some(x1), Some(y1)] = bounds else {
        return Outcome::Refused("2-D, without its location (Region Location Min/Max)".into());
    };
    let shown = format!("2-D, x {x0}..={x1}, y {y0}..={y1}");
    // Inclusive bounds; one past the end is read as the image edge.
    let fits = |lo: u32, hi: u32, size: u32| lo <= hi && hi <= size && lo < size;
    if !fits(x0, x1, width) || !fits(y0, y1, height) {
        return Outcome::Refused(format!(
            "{shown} does not fit the {width}x{height} image (its spacing describes another image)"
        ));
    }
    let rect = ImageRegion::Rect {
        x0,
        y0,
        x1: (x1 + 1).min(width),
        y1: (y1 + 1).min(height),
    };
    let units = (
        uint(tags::PHYSICAL_UNITS_X_DIRECTION),
        uint(tags::PHYSICAL_UNITS_Y_DIRECTION),
    );
    let deltas = (float(tags::PHYSICAL_DELTA_X), float(tags::PHYSICAL_DELTA_Y));
    if units != (Some(UNITS_CM), Some(UNITS_CM)) {
        let note = format!(
            "{shown}: Physical Units X/Y are {}/{}, not cm (3): kept without a spacing (no mm)",
            shown_opt(units.0),
            shown_opt(units.1)
        );
        return Outcome::Kept(
            CalibratedRegion {
                region: rect,
                spacing: None,
            },
            Some(note),
        );
    }
    let valid = |d: Option<f64>| d.filter(|d| d.is_finite() && *d > 0.0);
    let (Some(dx), Some(dy)) = (valid(deltas.0), valid(deltas.1)) else {
        return Outcome::Refused(format!(
            "{shown}: Physical Delta X/Y are {}/{} cm, not positive numbers",
            shown_f(deltas.0),
            shown_f(deltas.1)
        ));
    };
    Outcome::Kept(
        CalibratedRegion {
            region: rect,
            spacing: Some(PixelSpacing {
                x_mm: dx * 10.0,
                y_mm: dy * 10.0,
            }),
        },
        None,
    )
}

/// Region Data Type (0018,6014), for the log.
fn data_type(code: u32) -> Option<&'static str> {
    Some(match code {
        1 => "tissue",
        2 => "colour flow",
        3 => "PW spectral Doppler",
        4 => "CW spectral Doppler",
        5..=7 => "Doppler trace",
        8 | 9 => "volume trace",
        10 => "ECG trace",
        11 => "pulse trace",
        12 => "phonocardiogram trace",
        13 => "grey bar",
        14 => "colour bar",
        15 => "integrated backscatter",
        16 => "area trace",
        17 => "d(area)/dt trace",
        18 => "other physiological input",
        _ => return None,
    })
}

fn describe(r: &ImageRegion) -> String {
    match r {
        ImageRegion::Rect { x0, y0, x1, y1 } => format!("x {x0}..{x1}, y {y0}..{y1}"),
        ImageRegion::Fan { .. } => "a fan".into(),
    }
}

fn shown_opt(v: Option<u32>) -> String {
    v.map_or_else(|| "missing".into(), |v| v.to_string())
}

fn shown_f(v: Option<f64>) -> String {
    v.map_or_else(|| "missing".into(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::{DataElement, PrimitiveValue, VR};
    /// One region item: spatial format, inclusive bounds, units, deltas (cm).
    fn item(format: u16, bounds: [u32; 4], units: [u16; 2], deltas: [f64; 2]) -> InMemDicomObject {
        let us = |tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
        let ul = |tag, v: u32| DataElement::new(tag, VR::UL, PrimitiveValue::from(v));
        let fd = |tag, v: f64| DataElement::new(tag, VR::FD, PrimitiveValue::from(v));
        InMemDicomObject::from_element_iter([
            us(tags::REGION_SPATIAL_FORMAT, format),
            ul(tags::REGION_LOCATION_MIN_X0, bounds[0]),
            ul(tags::REGION_LOCATION_MIN_Y0, bounds[1]),
            ul(tags::REGION_LOCATION_MAX_X1, bounds[2]),
            ul(tags::REGION_LOCATION_MAX_Y1, bounds[3]),
            us(tags::PHYSICAL_UNITS_X_DIRECTION, units[0]),
            us(tags::PHYSICAL_UNITS_Y_DIRECTION, units[1]),
            fd(tags::PHYSICAL_DELTA_X, deltas[0]),
            fd(tags::PHYSICAL_DELTA_Y, deltas[1]),
        ])
    }

    fn with_regions(items: Vec<InMemDicomObject>) -> InMemDicomObject {
        InMemDicomObject::from_element_iter([DataElement::new(
            tags::SEQUENCE_OF_ULTRASOUND_REGIONS,
            VR::SQ,
            dicom_core::value::DataSetSequence::from(items),
        )])
    }

    fn rect(x0: u32, y0: u32, x1: u32, y1: u32) -> ImageRegion {
        ImageRegion::Rect { x0, y0, x1, y1 }
    }

    #[test]
    fn side_by_side_b_mode_views_are_two_regions_and_a_doppler_strip_is_ignored() {
        let obj = with_regions(vec![
            item(1, [32, 24, 335, 415], [3, 3], [0.038, 0.038]),
            item(1, [336, 24, 639, 415], [3, 3], [0.038, 0.038]),
            item(3, [176, 420, 600, 470], [4, 7], [0.01, 0.0]),
            item(4, [176, 522, 600, 570], [4, 0], [0.01, 0.0]),
        ]);
        let r = read(&obj, 640, 480);
        let cal = r.calibration.expect("calibrated");
        assert_eq!(cal.source, CalibrationSource::Dicom);
        assert_eq!(cal.regions.len(), 2);
        assert_eq!(cal.regions[0].region, rect(32, 24, 336, 416));
        assert_eq!(cal.regions[1].region, rect(336, 24, 640, 416));
        let s = cal.spacing().expect("spacing");
        assert!((s.x_mm - 0.38).abs() < 1e-12 && (s.y_mm - 0.38).abs() < 1e-12);
        assert!(r.refused.is_empty(), "{:?}", r.refused);
        assert_eq!(
            r.notes,
            [
                "region 3 of 4 (spectral): ignored",
                "region 4 of 4 (waveform): ignored"
            ]
        );
    }

    #[test]
    fn a_region_that_does_not_fit_the_image_is_refused() {
        // The full-size cine's region on a half-size copy of it.
        let obj = with_regions(vec![item(1, [84, 31, 595, 414], [3, 3], [0.051, 0.051])]);
        let r = read(&obj, 320, 240);
        assert!(r.calibration.is_none());
        assert_eq!(r.refused.len(), 1);
        assert!(
            r.refused[0].contains("does not fit the 320x240 image"),
            "{:?}",
            r.refused
        );
        assert!(r.summary().contains("uncalibrated"), "{}", r.summary());
    }

    #[test]
    fn a_bound_one_past_the_edge_is_the_edge() {
        let obj = with_regions(vec![item(1, [120, 60, 800, 518], [3, 3], [0.026, 0.026])]);
        let cal = read(&obj, 800, 600).calibration.expect("calibrated");
        assert_eq!(cal.regions[0].region, rect(120, 60, 800, 519));
        let obj = with_regions(vec![item(1, [120, 60, 801, 518], [3, 3], [0.026, 0.026])]);
        assert!(
            read(&obj, 800, 600).calibration.is_none(),
            "two past is refused"
        );
    }

    #[test]
    fn bad_deltas_refuse_and_other_units_give_no_mm() {
        for deltas in [
            [0.0, 0.01],
            [-0.01, 0.01],
            [f64::NAN, 0.01],
            [0.01, f64::INFINITY],
        ] {
            let obj = with_regions(vec![item(1, [0, 0, 99, 99], [3, 3], deltas)]);
            let r = read(&obj, 100, 100);
            assert!(r.calibration.is_none(), "{deltas:?}");
            assert!(
                r.refused[0].contains("not positive numbers"),
                "{:?}",
                r.refused
            );
        }
        let obj = with_regions(vec![item(1, [0, 0, 99, 99], [0, 0], [0.01, 0.01])]);
        let r = read(&obj, 100, 100);
        let cal = r.calibration.as_ref().expect("a region");
        assert_eq!(cal.spacing(), None);
        assert!(r.summary().contains("uncalibrated"), "{}", r.summary());
    }

    #[test]
    fn a_colour_box_inside_the_b_mode_image_is_not_a_region() {
        let obj = with_regions(vec![
            item(1, [0, 0, 399, 299], [3, 3], [0.02, 0.02]),
            item(1, [100, 50, 200, 150], [3, 3], [0.02, 0.02]),
        ]);
        let cal = read(&obj, 400, 300).calibration.expect("calibrated");
        assert_eq!(cal.regions.len(), 1);
    }

    #[test]
    fn no_sequence_means_uncalibrated_and_says_so() {
        let r = read(&InMemDicomObject::new_empty(), 100, 100);
        assert!(r.calibration.is_none() && !r.present);
        assert!(r.summary().contains("no Sequence of Ultrasound Regions"));
    }
}
