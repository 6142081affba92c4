//! The keyframe the tests store: a 64x48 frame with one segmented lesion
//! (long axis 12.4 mm, short 8.1 mm), its calibration and session.
#![allow(dead_code)]

pub mod orthanc;

use std::time::{Duration, UNIX_EPOCH};

use sonoflow_core::annotations::{AiVerdict, FindingKind, FrameFinding, Measurement};
use sonoflow_core::findings::{BoundingBox, Caliper, ImageRegion, PixelSpacing, Point};
use sonoflow_core::{Calibration, CalibrationSource, FrameFindings, FrameId};
use sonoflow_dicom_export::{SessionInfo, Subject};

pub const W: u32 = 64;
pub const H: u32 = 48;

pub fn findings() -> FrameFindings {
    let centre = Point { x: 30.0, y: 20.0 };
    let points: Vec<Point> = (0..16)
        .map(|i| {
            let a = i as f32 / 16.0 * std::f32::consts::TAU;
            Point {
                x: centre.x + 12.0 * a.cos(),
                y: centre.y + 8.0 * a.sin(),
            }
        })
        .collect();
    let caliper = |a: Point, b: Point, mm: f64| Measurement {
        caliper: Caliper {
            a,
            b,
            length_mm: mm,
        },
        uncertainty_mm: 0.3,
    };
    FrameFindings {
        frame: FrameId(42),
        verdict: AiVerdict::Valid,
        captured: Default::default(),
        findings: vec![FrameFinding {
            track: 3,
            kind: FindingKind::Segment,
            bbox: BoundingBox {
                x0: 18.0,
                y0: 12.0,
                x1: 42.0,
                y1: 28.0,
            },
            area_px: 300,
            confidence: 0.97,
            contour: (0, points.len() as u32),
            long_axis: Some(caliper(
                Point { x: 18.0, y: 20.0 },
                Point { x: 42.0, y: 20.0 },
                12.4,
            )),
            short_axis: Some(caliper(
                Point { x: 30.0, y: 12.0 },
                Point { x: 30.0, y: 28.0 },
                8.1,
            )),
            ellipse: None,
        }],
        points,
    }
}

pub fn session(subject: Subject) -> SessionInfo {
    SessionInfo {
        subject,
        device_name: "sonoflow test".into(),
        software_version: "0.1.0".into(),
        station: "CART-1".into(),
        model: "umind-nano 0.1.0".into(),
        started: UNIX_EPOCH + Duration::from_secs(1_796_000_000),
    }
}

pub fn calibration() -> Calibration {
    Calibration::single(
        ImageRegion::Rect {
            x0: 0,
            y0: 0,
            x1: W,
            y1: H,
        },
        Some(PixelSpacing {
            x_mm: 0.5,
            y_mm: 0.5,
        }),
        CalibrationSource::Phantom,
        0.0,
    )
}
