//! sonoflow's core types to `sonoflow.v1` messages: the one place where a
//! frame's findings, calibration and stamps, or the head's report, become
//! what the stream and `--findings-jsonl` carry.

use std::collections::HashMap;
use std::time::Duration;

use sonoflow_core::annotations::{AiVerdict, FindingKind, FrameFinding, Measurement};
use sonoflow_core::findings::{ImageRegion, Point};
use sonoflow_core::{
    Calibration, CalibrationSource, FrameFindings, FrameId, InterpretationState, Stage,
    StageStamps, Timestamp,
};

use crate::rle;
use crate::v1;

/// What a [`v1::FrameResult`] is made of, borrowed off a frame.
#[derive(Debug, Clone, Copy)]
pub struct FrameParts<'a> {
    pub frame: FrameId,
    pub stamps: &'a StageStamps,
    pub pts: Option<Duration>,
    pub width: u32,
    pub height: u32,
    pub calibration: Option<&'a Calibration>,
    pub kernel_version: Option<u64>,
    /// The findings that rode on the frame (its own or late ones).
    pub findings: Option<&'a FrameFindings>,
}

/// How findings are written.
#[derive(Debug, Clone, Copy)]
pub struct FrameStyle<'a> {
    /// The model's word for a finding ("lesion").
    pub label: &'a str,
    /// Add each finding's mask (RLE from its contour).
    pub masks: bool,
}

/// Reusable buffers for [`frame_result`]'s masks.
#[derive(Debug, Default)]
pub struct Scratch {
    crossings: Vec<f64>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn point(p: Point) -> v1::Point {
    v1::Point { x: p.x, y: p.y }
}

fn caliper(m: &Measurement) -> v1::Caliper {
    v1::Caliper {
        a: Some(point(m.caliper.a)),
        b: Some(point(m.caliper.b)),
        length_mm: m.caliper.length_mm,
        plus_minus_mm: m.uncertainty_mm,
    }
}

/// A frame's calibration as the stream carries it.
pub fn calibration(c: &Calibration) -> v1::Calibration {
    let regions = c
        .regions
        .iter()
        .map(|r| v1::CalibratedRegion {
            shape: Some(match r.region {
                ImageRegion::Rect { x0, y0, x1, y1 } => {
                    v1::calibrated_region::Shape::Rect(v1::RectRegion { x0, y0, x1, y1 })
                }
                ImageRegion::Fan {
                    apex,
                    r0,
                    r1,
                    half_angle,
                } => v1::calibrated_region::Shape::Fan(v1::FanRegion {
                    apex: Some(point(apex)),
                    r0,
                    r1,
                    half_angle,
                }),
            }),
            spacing: r.spacing.map(|s| v1::PixelSpacing {
                x_mm: s.x_mm,
                y_mm: s.y_mm,
            }),
        })
        .collect();
    let source = match c.source {
        CalibrationSource::Phantom => v1::CalibrationSource::Phantom,
        CalibrationSource::Dicom => v1::CalibrationSource::Dicom,
        CalibrationSource::Config => v1::CalibrationSource::Config,
        CalibrationSource::Detected => v1::CalibrationSource::Detected,
    };
    v1::Calibration {
        regions,
        source: source as i32,
        uncertainty: c.uncertainty,
    }
}

fn finding(
    found: &FrameFindings,
    f: &FrameFinding,
    parts: &FrameParts<'_>,
    style: &FrameStyle<'_>,
    scratch: &mut Scratch,
) -> v1::Finding {
    let contour = found.contour(f);
    let mask = (style.masks && contour.len() >= 3).then(|| {
        let mut counts = Vec::new();
        rle::from_polygon(
            contour,
            parts.width,
            parts.height,
            &mut counts,
            &mut scratch.crossings,
        );
        v1::Mask {
            width: parts.width,
            height: parts.height,
            counts,
        }
    });
    v1::Finding {
        kind: match f.kind {
            FindingKind::Segment => v1::FindingKind::Segment,
            FindingKind::Detection => v1::FindingKind::Detection,
        } as i32,
        label: style.label.to_owned(),
        track: f.track,
        score: f.confidence,
        r#box: Some(v1::BoundingBox {
            x0: f.bbox.x0,
            y0: f.bbox.y0,
            x1: f.bbox.x1,
            y1: f.bbox.y1,
        }),
        area_px: f.area_px,
        contour: contour.iter().flat_map(|p| [p.x, p.y]).collect(),
        long_axis: f.long_axis.as_ref().map(caliper),
        short_axis: f.short_axis.as_ref().map(caliper),
        mask,
        ellipse: f.ellipse.map(|e| v1::Ellipse {
            centre: Some(point(e.centre)),
            semi_major_px: e.semi_major_px,
            semi_minor_px: e.semi_minor_px,
            angle: e.angle,
            major_mm: e.major_mm,
            minor_mm: e.minor_mm,
            circumference_mm: e.circumference_mm,
        }),
    }
}

/// One frame and its findings as a [`v1::FrameResult`].
pub fn frame_result(
    parts: &FrameParts<'_>,
    style: &FrameStyle<'_>,
    scratch: &mut Scratch,
) -> v1::FrameResult {
    let stamps = parts.stamps;
    let to_output = stamps
        .entered(Stage::Output)
        .map(|t| t.saturating_since(stamps.captured));
    v1::FrameResult {
        frame_id: parts.frame.0,
        captured_ns: stamps.captured.0,
        pts_ns: parts.pts.map(|d| d.as_nanos() as u64),
        width: parts.width,
        height: parts.height,
        calibration: parts.calibration.map(calibration),
        kernel_version: parts.kernel_version,
        ai: match parts.findings.map(|f| f.verdict) {
            None => v1::AiVerdict::Unspecified,
            Some(AiVerdict::Valid) => v1::AiVerdict::Valid,
            Some(AiVerdict::InvalidOutput) => v1::AiVerdict::InvalidOutput,
        } as i32,
        findings_frame_id: parts.findings.map(|f| f.frame.0),
        findings: parts
            .findings
            .map(|found| {
                found
                    .findings
                    .iter()
                    .map(|f| finding(found, f, parts, style, scratch))
                    .collect()
            })
            .unwrap_or_default(),
        latencies: Some(v1::StageLatencies {
            ingest_ms: stamps.time_in(Stage::Ingest).map_or(0.0, ms),
            process_ms: stamps.time_in(Stage::Process).map_or(0.0, ms),
            capture_to_output_ms: to_output.map_or(0.0, ms),
        }),
    }
}

/// The head's report as a [`v1::Report`] is made of (the reasoning crate's
/// own types stay out of the protocol; the runtime fills this).
#[derive(Debug, Clone, Default)]
pub struct ReportParts<'a> {
    pub keyframe: FrameId,
    pub captured: Timestamp,
    pub state: Option<&'a InterpretationState>,
    pub text: &'a str,
    /// The keyframe reason's name ("request", "still" ...), when known.
    pub reason: Option<&'a str>,
    pub tokens: usize,
    pub prompt: &'a str,
    pub lesion: bool,
    pub label: Option<&'a str>,
    pub attributes: Vec<(&'a str, &'a str)>,
    pub impression: Option<&'a str>,
    /// The keyframe's calipers the text quotes.
    pub long_axis_mm: Option<f64>,
    pub short_axis_mm: Option<f64>,
    pub kernel_version: Option<u64>,
    pub truncated: bool,
}

/// A keyframe reason's name to the enum (unknown names: unspecified).
pub fn keyframe_reason(name: &str) -> v1::KeyframeReason {
    match name {
        "first" => v1::KeyframeReason::First,
        "request" => v1::KeyframeReason::Request,
        "still" => v1::KeyframeReason::Still,
        "scene_change" => v1::KeyframeReason::SceneChange,
        "max_interval" => v1::KeyframeReason::MaxInterval,
        _ => v1::KeyframeReason::Unspecified,
    }
}

/// The head's report (growing, done or unavailable) as a [`v1::Report`].
pub fn report(parts: &ReportParts<'_>) -> v1::Report {
    let state = match parts.state {
        None => v1::ReportState::Unspecified,
        Some(InterpretationState::Writing) => v1::ReportState::Writing,
        Some(InterpretationState::Done) => v1::ReportState::Done,
        Some(InterpretationState::Unavailable) => v1::ReportState::Unavailable,
    };
    let link = |axis: v1::Axis, mm: Option<f64>| {
        mm.map(|length_mm| v1::NumberLink {
            axis: axis as i32,
            length_mm,
            frame_id: parts.keyframe.0,
        })
    };
    let fields = (parts.lesion
        || parts.label.is_some()
        || parts.impression.is_some()
        || !parts.attributes.is_empty())
    .then(|| v1::ReportFields {
        lesion: parts.lesion,
        label: parts.label.unwrap_or_default().to_owned(),
        attributes: parts
            .attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<HashMap<_, _>>(),
        impression: parts.impression.unwrap_or_default().to_owned(),
    });
    v1::Report {
        keyframe_id: parts.keyframe.0,
        state: state as i32,
        reason: parts
            .reason
            .map_or(v1::KeyframeReason::Unspecified, keyframe_reason) as i32,
        tokens: u32::try_from(parts.tokens).unwrap_or(u32::MAX),
        prompt: parts.prompt.to_owned(),
        fields,
        text: parts.text.to_owned(),
        links: link(v1::Axis::Long, parts.long_axis_mm)
            .into_iter()
            .chain(link(v1::Axis::Short, parts.short_axis_mm))
            .collect(),
        kernel_version: parts.kernel_version,
        truncated: parts.truncated,
        captured_ns: parts.captured.0,
    }
}

/// Wraps a message kind in the envelope.
pub fn envelope(kind: v1::server_message::Kind) -> v1::ServerMessage {
    v1::ServerMessage { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonoflow_core::annotations::FrameFinding;
    use sonoflow_core::findings::{BoundingBox, Caliper, PixelSpacing};

    fn findings() -> FrameFindings {
        let p = |x, y| Point { x, y };
        let mut found = FrameFindings {
            frame: FrameId(7),
            points: vec![p(10.0, 10.0), p(30.0, 10.0), p(30.0, 20.0), p(10.0, 20.0)],
            ..FrameFindings::default()
        };
        found.findings.push(FrameFinding {
            track: 1,
            kind: FindingKind::Segment,
            bbox: BoundingBox {
                x0: 10.0,
                y0: 10.0,
                x1: 30.0,
                y1: 20.0,
            },
            area_px: 200,
            confidence: 0.9,
            contour: (0, 4),
            long_axis: Some(Measurement {
                caliper: Caliper {
                    a: p(10.0, 15.0),
                    b: p(30.0, 15.0),
                    length_mm: 2.0,
                },
                uncertainty_mm: 0.1,
            }),
            short_axis: None,
            ellipse: None,
        });
        found
    }

    #[test]
    fn a_frame_carries_its_findings_calipers_and_mask() {
        let found = findings();
        let stamps = StageStamps::new(Timestamp(5_000_000));
        let cal = Calibration::single(
            ImageRegion::Rect {
                x0: 0,
                y0: 0,
                x1: 64,
                y1: 48,
            },
            Some(PixelSpacing::isotropic(0.1)),
            CalibrationSource::Phantom,
            0.0,
        );
        let parts = FrameParts {
            frame: FrameId(9),
            stamps: &stamps,
            pts: Some(Duration::from_millis(300)),
            width: 64,
            height: 48,
            calibration: Some(&cal),
            kernel_version: Some(2),
            findings: Some(&found),
        };
        let style = FrameStyle {
            label: "lesion",
            masks: true,
        };
        let r = frame_result(&parts, &style, &mut Scratch::default());
        assert_eq!((r.frame_id, r.findings_frame_id), (9, Some(7)));
        assert_eq!(r.pts_ns, Some(300_000_000));
        assert_eq!(r.ai(), v1::AiVerdict::Valid);
        let f = &r.findings[0];
        assert_eq!(f.contour.len(), 8);
        assert_eq!(f.long_axis.as_ref().map(|c| c.length_mm), Some(2.0));
        let mask = f.mask.as_ref().expect("a mask");
        assert_eq!(rle::area(&mask.counts), 200, "20 x 10 pixel centres");
        let no_masks = frame_result(
            &parts,
            &FrameStyle {
                masks: false,
                ..style
            },
            &mut Scratch::default(),
        );
        assert!(no_masks.findings[0].mask.is_none());
    }

    #[test]
    fn a_done_report_links_its_numbers_to_the_keyframe() {
        let r = report(&ReportParts {
            keyframe: FrameId(40),
            state: Some(&InterpretationState::Done),
            text: "lesion 12.4 mm",
            reason: Some("request"),
            long_axis_mm: Some(12.4),
            lesion: true,
            ..ReportParts::default()
        });
        assert_eq!(r.reason(), v1::KeyframeReason::Request);
        assert_eq!(r.state(), v1::ReportState::Done);
        assert_eq!(r.links.len(), 1);
        assert_eq!(r.links[0].frame_id, 40);
        assert_eq!(keyframe_reason("bogus"), v1::KeyframeReason::Unspecified);
    }
}
