//! The Ultrasound Image (US Image Storage) of a keyframe: the frame as shown
//! (overlay burned in) or clean, 8-bit MONOCHROME2 or RGB, with the frame's
//! calibration as a Sequence of Ultrasound Regions.

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use sonoflow_core::findings::ImageRegion;
use sonoflow_core::{Calibration, PixelFormat};

use crate::elements::{self, common, fd, sequence, text, ul, us, with_meta, NOT_FOR_DIAGNOSIS};
use crate::{DicomFile, ExportError, Instance, Picture};

/// US Image Storage.
pub const US_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.6.1";
/// Region Spatial Format 1: 2D (tissue or flow).
const SPATIAL_2D: u16 = 1;
/// Region Data Type 1: tissue.
const DATA_TISSUE: u16 = 1;
/// Physical Units 3: cm.
const UNITS_CM: u16 = 3;

pub(crate) fn us_image(p: &Instance<'_>, picture: Picture<'_>) -> Result<DicomFile, ExportError> {
    let (samples, photometric, pixels) = pixel_data(&picture)?;
    let mut e = common(
        p.session,
        p.uids,
        US_IMAGE_STORAGE,
        p.instance_uid,
        p.keyframe.captured,
        p.keyframe.finding_label.is_ascii(),
    );
    let (date, time) = elements::date_time(p.keyframe.captured);
    e.extend([
        text(tags::MODALITY, VR::CS, "US"),
        text(tags::SERIES_INSTANCE_UID, VR::UI, &p.uids.image_series),
        text(tags::SERIES_NUMBER, VR::IS, "1"),
        text(tags::SERIES_DESCRIPTION, VR::LO, "sonoflow keyframes"),
        text(
            tags::INSTANCE_NUMBER,
            VR::IS,
            &p.instance_number.to_string(),
        ),
        text(tags::PATIENT_ORIENTATION, VR::CS, ""),
        text(
            tags::ACQUISITION_DATE_TIME,
            VR::DT,
            &format!("{date}{time}"),
        ),
        text(
            tags::IMAGE_TYPE,
            VR::CS,
            if picture.burned_in {
                "DERIVED\\PRIMARY"
            } else {
                "ORIGINAL\\PRIMARY"
            },
        ),
        text(
            tags::BURNED_IN_ANNOTATION,
            VR::CS,
            if picture.burned_in { "YES" } else { "NO" },
        ),
        text(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00"),
        text(
            tags::IMAGE_COMMENTS,
            VR::LT,
            &format!(
                "{NOT_FOR_DIAGNOSIS}. Frame {}{}.",
                p.keyframe.frame.0,
                if picture.burned_in {
                    ", as shown with sonoflow's overlay"
                } else {
                    ", clean"
                }
            ),
        ),
        us(tags::SAMPLES_PER_PIXEL, samples),
        text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, photometric),
        us(tags::ROWS, dimension(picture.height)),
        us(tags::COLUMNS, dimension(picture.width)),
        us(tags::BITS_ALLOCATED, 8),
        us(tags::BITS_STORED, 8),
        us(tags::HIGH_BIT, 7),
        us(tags::PIXEL_REPRESENTATION, 0),
    ]);
    if picture.burned_in {
        e.push(text(
            tags::DERIVATION_DESCRIPTION,
            VR::ST,
            "sonoflow overlay drawn in: contours, calipers, boxes, report panel, calibration",
        ));
    }
    if samples == 3 {
        e.push(us(tags::PLANAR_CONFIGURATION, 0));
    }
    if let Some(regions) = p.keyframe.calibration.map(|c| regions(c, &picture)) {
        if !regions.is_empty() {
            e.push(sequence(tags::SEQUENCE_OF_ULTRASOUND_REGIONS, regions));
        }
    }
    e.push(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::U8(pixels.into()),
    ));
    with_meta(
        InMemDicomObject::from_element_iter(e),
        US_IMAGE_STORAGE,
        p.instance_uid,
    )
}

fn dimension(n: u32) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

/// Samples per pixel, photometric interpretation and the pixel bytes
/// (RGBA loses its alpha; an odd length gets the pad byte DICOM asks for).
fn pixel_data(p: &Picture<'_>) -> Result<(u16, &'static str, Vec<u8>), ExportError> {
    let n = p.width as usize * p.height as usize;
    let want = n * p.format.bytes_per_pixel();
    if p.data.len() < want || p.width > u32::from(u16::MAX) || p.height > u32::from(u16::MAX) {
        return Err(ExportError::Pixels {
            width: p.width,
            height: p.height,
            format: p.format,
            got: p.data.len(),
            want,
        });
    }
    let (samples, photometric, mut bytes) = match p.format {
        PixelFormat::Gray8 => (1, "MONOCHROME2", p.data[..want].to_vec()),
        PixelFormat::Rgba => (
            3,
            "RGB",
            p.data[..want]
                .chunks_exact(4)
                .flat_map(|px| [px[0], px[1], px[2]])
                .collect(),
        ),
    };
    if bytes.len() % 2 == 1 {
        bytes.push(0);
    }
    Ok((samples, photometric, bytes))
}

/// One Sequence of Ultrasound Regions item per calibrated region with a
/// spacing (a region without one has no physical delta to give).
fn regions(calibration: &Calibration, picture: &Picture<'_>) -> Vec<InMemDicomObject> {
    calibration
        .regions
        .iter()
        .filter_map(|r| {
            let spacing = r.spacing?;
            let (x0, y0, x1, y1) = bounds(&r.region, picture.width, picture.height)?;
            let mut item = vec![
                us(tags::REGION_SPATIAL_FORMAT, SPATIAL_2D),
                us(tags::REGION_DATA_TYPE, DATA_TISSUE),
                ul(tags::REGION_FLAGS, 0),
                ul(tags::REGION_LOCATION_MIN_X0, x0),
                ul(tags::REGION_LOCATION_MIN_Y0, y0),
                ul(tags::REGION_LOCATION_MAX_X1, x1),
                ul(tags::REGION_LOCATION_MAX_Y1, y1),
                us(tags::PHYSICAL_UNITS_X_DIRECTION, UNITS_CM),
                us(tags::PHYSICAL_UNITS_Y_DIRECTION, UNITS_CM),
                // cm per pixel.
                fd(tags::PHYSICAL_DELTA_X, spacing.x_mm / 10.0),
                fd(tags::PHYSICAL_DELTA_Y, spacing.y_mm / 10.0),
            ];
            if let ImageRegion::Fan { apex, .. } = r.region {
                // The transducer's position: depth and lateral distances are measured from it.
                item.push(DataElement::new(
                    tags::REFERENCE_PIXEL_X0,
                    VR::SL,
                    PrimitiveValue::from(apex.x.round() as i32 - x0 as i32),
                ));
                item.push(DataElement::new(
                    tags::REFERENCE_PIXEL_Y0,
                    VR::SL,
                    PrimitiveValue::from(apex.y.round() as i32 - y0 as i32),
                ));
            }
            Some(InMemDicomObject::from_element_iter(item))
        })
        .collect()
}

/// Inclusive pixel bounds of `region` (its bounding box, exclusive ends),
/// clipped to the picture.
fn bounds(region: &ImageRegion, width: u32, height: u32) -> Option<(u32, u32, u32, u32)> {
    let (w, h) = (width.checked_sub(1)?, height.checked_sub(1)?);
    let b = region.bounds();
    let clip = |v: f32, max: u32| v.round().clamp(0.0, max as f32) as u32;
    let inclusive = (
        clip(b.x0, w),
        clip(b.y0, h),
        clip(b.x1 - 1.0, w),
        clip(b.y1 - 1.0, h),
    );
    (inclusive.0 < inclusive.2 && inclusive.1 < inclusive.3).then_some(inclusive)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonoflow_core::findings::{PixelSpacing, Point};
    use sonoflow_core::CalibrationSource;

    fn picture(data: &[u8], format: PixelFormat) -> Picture<'_> {
        Picture {
            width: 4,
            height: 2,
            format,
            data,
            burned_in: true,
        }
    }

    #[test]
    fn rgba_loses_alpha_and_short_buffers_are_refused() {
        let rgba: Vec<u8> = (0..32).collect();
        let (samples, photometric, bytes) =
            pixel_data(&picture(&rgba, PixelFormat::Rgba)).expect("rgb");
        assert_eq!((samples, photometric, bytes.len()), (3, "RGB", 24));
        assert_eq!(&bytes[..6], &[0, 1, 2, 4, 5, 6]);
        let err = pixel_data(&picture(&rgba[..7], PixelFormat::Gray8)).expect_err("short");
        assert!(err.to_string().contains("7 bytes"), "{err}");
    }

    #[test]
    fn regions_carry_the_spacing_in_cm_and_inclusive_bounds() {
        let c = Calibration::single(
            ImageRegion::Rect {
                x0: 10,
                y0: 20,
                x1: 630,
                y1: 470,
            },
            Some(PixelSpacing {
                x_mm: 0.1,
                y_mm: 0.12,
            }),
            CalibrationSource::Phantom,
            0.0,
        );
        let p = Picture {
            width: 640,
            height: 480,
            ..picture(&[], PixelFormat::Gray8)
        };
        let items = regions(&c, &p);
        assert_eq!(items.len(), 1);
        let get = |tag| {
            items[0]
                .element(tag)
                .expect("present")
                .to_float64()
                .expect("number")
        };
        assert_eq!(get(tags::REGION_LOCATION_MAX_X1), 629.0);
        assert_eq!(get(tags::REGION_LOCATION_MAX_Y1), 469.0);
        assert!((get(tags::PHYSICAL_DELTA_X) - 0.01).abs() < 1e-12);
        assert!((get(tags::PHYSICAL_DELTA_Y) - 0.012).abs() < 1e-12);
        let fan = ImageRegion::Fan {
            apex: Point { x: 320.0, y: -40.0 },
            r0: 60.0,
            r1: 500.0,
            half_angle: 0.6,
        };
        let (x0, y0, x1, y1) = bounds(&fan, 640, 480).expect("bounds");
        assert_eq!((x0, y0, x1, y1), (38, 10, 601, 459), "the fan's box");
    }
}
