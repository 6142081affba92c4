//! The wire contract of sonoflow.v1: every message round-trips through
//! protobuf binary and canonical JSON; messages written by the first v1
//! (frozen bytes under tests/fixtures/protocol/) still decode to the same
//! values; and a client built on fewer fields (an "old client", its reduced
//! copy of v1 compiled here) decodes messages of the current schema,
//! skipping what it does not know.
//!
//! Refresh the fixtures only for a deliberate, compatible change:
//! `SONOFLOW_UPDATE_GOLDEN=1 cargo test -p sonoflow-protocol --test contract`.

use std::collections::HashMap;
use std::path::PathBuf;

use prost::Message;
use sonoflow_protocol::v1::{self, server_message::Kind};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/protocol")
        .join(name)
}

fn update() -> bool {
    std::env::var_os("SONOFLOW_UPDATE_GOLDEN").is_some_and(|v| v == "1")
}

fn point(x: f32, y: f32) -> Option<v1::Point> {
    Some(v1::Point { x, y })
}

fn frame() -> v1::FrameResult {
    v1::FrameResult {
        frame_id: 42,
        captured_ns: 1_400_000_123,
        pts_ns: Some(1_400_000_000),
        width: 640,
        height: 480,
        calibration: Some(v1::Calibration {
            regions: vec![
                v1::CalibratedRegion {
                    shape: Some(v1::calibrated_region::Shape::Rect(v1::RectRegion {
                        x0: 138,
                        y0: 18,
                        x1: 571,
                        y1: 469,
                    })),
                    spacing: Some(v1::PixelSpacing {
                        x_mm: 0.0887,
                        y_mm: 0.0887,
                    }),
                },
                v1::CalibratedRegion {
                    shape: Some(v1::calibrated_region::Shape::Fan(v1::FanRegion {
                        apex: point(320.0, -40.0),
                        r0: 40.0,
                        r1: 500.0,
                        half_angle: 0.6,
                    })),
                    spacing: None,
                },
            ],
            source: v1::CalibrationSource::Phantom as i32,
            uncertainty: 0.01,
        }),
        kernel_version: Some(3),
        ai: v1::AiVerdict::Valid as i32,
        findings_frame_id: Some(41),
        findings: vec![v1::Finding {
            kind: v1::FindingKind::Segment as i32,
            label: "lesion".into(),
            track: 1,
            score: 0.93,
            r#box: Some(v1::BoundingBox {
                x0: 300.0,
                y0: 200.0,
                x1: 360.0,
                y1: 240.0,
            }),
            area_px: 1900,
            contour: vec![300.0, 220.0, 330.0, 200.0, 360.0, 220.0, 330.0, 240.0],
            long_axis: Some(v1::Caliper {
                a: point(300.0, 220.0),
                b: point(360.0, 220.0),
                length_mm: 5.32,
                plus_minus_mm: 0.12,
            }),
            short_axis: Some(v1::Caliper {
                a: point(330.0, 200.0),
                b: point(330.0, 240.0),
                length_mm: 3.55,
                plus_minus_mm: 0.1,
            }),
            mask: Some(v1::Mask {
                width: 640,
                height: 480,
                counts: vec![144_000, 20, 460, 20, 142_700],
            }),
            ellipse: Some(v1::Ellipse {
                centre: point(330.0, 220.0),
                semi_major_px: 30.0,
                semi_minor_px: 20.0,
                angle: 0.0,
                major_mm: 5.3,
                minor_mm: 3.5,
                circumference_mm: 14.1,
            }),
        }],
        latencies: Some(v1::StageLatencies {
            ingest_ms: 0.4,
            process_ms: 18.5,
            capture_to_output_ms: 20.1,
        }),
    }
}

fn report() -> v1::Report {
    v1::Report {
        keyframe_id: 40,
        state: v1::ReportState::Done as i32,
        reason: v1::KeyframeReason::Request as i32,
        tokens: 23,
        prompt: "[DIAG]".into(),
        fields: Some(v1::ReportFields {
            lesion: true,
            label: "cyst".into(),
            attributes: HashMap::from([("shape".to_owned(), "oval".to_owned())]),
            impression: "benign".into(),
        }),
        text: "oval cyst, long axis 5.3 ± 0.1 mm".into(),
        links: vec![v1::NumberLink {
            axis: v1::Axis::Long as i32,
            length_mm: 5.32,
            frame_id: 40,
        }],
        kernel_version: Some(3),
        truncated: false,
        captured_ns: 1_333_000_000,
    }
}

/// One message of every kind, as v1 first wrote them.
fn messages() -> Vec<v1::ServerMessage> {
    let kinds = vec![
        Kind::Session(v1::SessionInfo {
            protocol: "sonoflow.v1".into(),
            sonoflow_version: "0.1.0".into(),
            pipeline: "default".into(),
            device: "jetson-orin".into(),
            model: Some(v1::ModelInfo {
                dir: "onnx/umind-nano".into(),
                finding_label: "lesion".into(),
                providers: vec!["vision_encoder: cpu".into()],
                prompts: vec!["[DIAG]".into(), "[SEG] cyst".into()],
                reasoning: true,
            }),
            masks: true,
            client_id: 7,
        }),
        Kind::Frame(frame()),
        Kind::Report(report()),
        Kind::Stats(v1::Stats {
            elapsed_s: 12.5,
            frames_in: 375,
            frames_out: 370,
            frames_dropped: 5,
            latency: Some(v1::LatencySummary {
                p50_ms: 20.0,
                p99_ms: 41.0,
                max_ms: 60.0,
            }),
            results_dropped: 1,
            clients: vec![v1::ClientStats {
                client_id: 7,
                transport: "websocket".into(),
                sent: 380,
                dropped: 2,
            }],
        }),
        Kind::Ack(v1::RequestAck {
            id: 9,
            kind: "analyse_now".into(),
            detail: "a report on the next frame is requested".into(),
        }),
        Kind::Error(v1::RequestError {
            id: 10,
            code: v1::ErrorCode::Invalid as i32,
            message: "not in the vocabulary: banana".into(),
        }),
    ];
    kinds
        .into_iter()
        .map(|k| v1::ServerMessage { kind: Some(k) })
        .collect()
}

/// Messages added to v1 after the frozen fixture (never in it: it holds
/// what the first v1 wrote).
fn added_since() -> Vec<v1::ServerMessage> {
    vec![v1::ServerMessage {
        kind: Some(Kind::Video(v1::VideoFrame {
            frame_id: 42,
            captured_ns: 1_400_000_123,
            width: 640,
            height: 480,
            jpeg: vec![0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0xff, 0xd9],
        })),
    }]
}

fn requests() -> Vec<v1::Request> {
    use v1::request::Kind as R;
    vec![
        v1::Request {
            id: 1,
            kind: Some(R::AnalyseNow(v1::AnalyseNow {})),
        },
        v1::Request {
            id: 2,
            kind: Some(R::Prompt(v1::Prompt {
                text: "[SEG] cyst".into(),
            })),
        },
        v1::Request {
            id: 3,
            kind: Some(R::Freeze(v1::Freeze { frozen: true })),
        },
    ]
}

#[test]
fn every_message_round_trips_through_binary_and_json() {
    for m in messages().into_iter().chain(added_since()) {
        let bytes = m.encode_to_vec();
        assert_eq!(
            v1::ServerMessage::decode(bytes.as_slice()).expect("binary"),
            m
        );
        let json = serde_json::to_string(&m).expect("json");
        let back: v1::ServerMessage = serde_json::from_str(&json).expect("from json");
        assert_eq!(back, m, "{json}");
    }
    for r in requests() {
        let bytes = r.encode_to_vec();
        assert_eq!(
            sonoflow_protocol::decode_request(&bytes).expect("binary"),
            r
        );
        let json = serde_json::to_string(&r).expect("json");
        assert_eq!(
            sonoflow_protocol::request_from_json(&json).expect("json"),
            r
        );
    }
}

#[test]
fn json_is_the_canonical_mapping() {
    let json = serde_json::to_value(&messages()[1]).expect("json");
    let f = &json["frame"];
    assert_eq!(f["frameId"], "42", "64-bit integers as strings: {f}");
    assert_eq!(f["ai"], "AI_VERDICT_VALID", "enums by name: {f}");
    assert_eq!(f["calibration"]["source"], "CALIBRATION_SOURCE_PHANTOM");
    assert_eq!(
        f["findings"][0]["longAxis"]["lengthMm"], 5.32,
        "lowerCamelCase: {f}"
    );
    assert!(f.get("frame_id").is_none());
    // Bytes as base64 (what a browser puts in a data: URL).
    let video = serde_json::to_value(&added_since()[0]).expect("json");
    assert_eq!(video["video"]["jpeg"], "/9j/4AAQ/9k=", "{video}");
    assert_eq!(video["video"]["frameId"], "42");
    // Defaults are left out.
    let empty = serde_json::to_value(v1::FrameResult::default()).expect("json");
    assert_eq!(empty, serde_json::json!({}));
}

#[test]
fn the_frozen_v1_messages_still_decode_to_their_values() {
    let (bin, jsonl) = (fixture("v1-messages.bin"), fixture("v1-messages.jsonl"));
    if update() {
        let mut bytes = Vec::new();
        let mut lines = String::new();
        for m in messages() {
            m.encode_length_delimited(&mut bytes).expect("encode");
            lines += &serde_json::to_string(&m).expect("json");
            lines.push('\n');
        }
        std::fs::write(&bin, bytes).expect("write fixture");
        std::fs::write(&jsonl, lines).expect("write fixture");
    }
    let bytes = std::fs::read(&bin).expect("the frozen fixture (see the module docs)");
    let mut buf = bytes.as_slice();
    let mut decoded = Vec::new();
    while !buf.is_empty() {
        decoded
            .push(v1::ServerMessage::decode_length_delimited(&mut buf).expect("v1 bytes decode"));
    }
    assert_eq!(decoded, messages());
    let text = std::fs::read_to_string(&jsonl).expect("the frozen JSON fixture");
    let decoded: Vec<v1::ServerMessage> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("v1 JSON decodes"))
        .collect();
    assert_eq!(decoded, messages());
}

/// The old client: a reduced copy of v1 that knows only some fields.
mod old {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Caliper {
        #[prost(double, tag = "3")]
        pub length_mm: f64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Finding {
        #[prost(string, tag = "2")]
        pub label: String,
        #[prost(message, optional, tag = "8")]
        pub long_axis: Option<Caliper>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FrameResult {
        #[prost(uint64, tag = "1")]
        pub frame_id: u64,
        #[prost(uint64, tag = "2")]
        pub captured_ns: u64,
        #[prost(message, repeated, tag = "10")]
        pub findings: Vec<Finding>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        #[prost(message, tag = "2")]
        Frame(FrameResult),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ServerMessage {
        #[prost(oneof = "Kind", tags = "2")]
        pub kind: Option<Kind>,
    }
}

#[test]
fn an_old_client_skips_the_fields_and_kinds_it_does_not_know() {
    let current = messages();
    let frame_bytes = current[1].encode_to_vec();
    let old = old::ServerMessage::decode(frame_bytes.as_slice()).expect("an old client decodes");
    let Some(old::Kind::Frame(f)) = old.kind else {
        panic!("the frame it knows");
    };
    assert_eq!((f.frame_id, f.captured_ns), (42, 1_400_000_123));
    assert_eq!(f.findings[0].label, "lesion");
    assert_eq!(
        f.findings[0].long_axis.as_ref().map(|c| c.length_mm),
        Some(5.32)
    );
    // A kind it has never heard of: no error, just nothing it knows.
    let report_bytes = current[2].encode_to_vec();
    let old = old::ServerMessage::decode(report_bytes.as_slice()).expect("still decodes");
    assert_eq!(old.kind, None);
    // Nor one added to v1 after it was built (the video).
    let video_bytes = added_since()[0].encode_to_vec();
    let old = old::ServerMessage::decode(video_bytes.as_slice()).expect("still decodes");
    assert_eq!(old.kind, None);
    // And the current code reads what an old client would write.
    let written = old::FrameResult {
        frame_id: 5,
        captured_ns: 9,
        findings: vec![],
    }
    .encode_to_vec();
    let read = v1::FrameResult::decode(written.as_slice()).expect("decodes");
    assert_eq!(
        (read.frame_id, read.captured_ns, read.calibration),
        (5, 9, None)
    );
}
