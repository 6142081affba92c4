//! The Comprehensive SR measurement report (TID 1500) of a keyframe.
//!
//! ```text
//! CONTAINER Imaging Measurement Report (TID 1500)
//!   HAS CONCEPT MOD  CODE Language = English
//!   HAS OBS CONTEXT  CODE Observer Type = Device; UIDREF Device Observer UID; TEXT name
//!   HAS CONCEPT MOD  CODE Procedure reported = Ultrasonography
//!   CONTAINS CONTAINER Image Library > Image Library Group > IMAGE (each image)
//!   CONTAINS CONTAINER Imaging Measurements
//!     CONTAINS CONTAINER Measurement Group (one per segment)
//!       HAS OBS CONTEXT TEXT Tracking Identifier; UIDREF Tracking Unique Identifier
//!       CONTAINS CODE Finding = Lesion | Cyst | Mass
//!       CONTAINS SCOORD Image Region (closed POLYLINE: the contour) > SELECTED FROM IMAGE
//!       CONTAINS NUM Long Axis, Short Axis (mm)            [calibrated frames only]
//!         HAS PROPERTIES NUM Caliper uncertainty (plus or minus, mm)
//!         INFERRED FROM SCOORD (POLYLINE: the caliper's ends) > SELECTED FROM IMAGE
//!       CONTAINS CODE descriptor = value                   [the report's, first group]
//!   CONTAINS TEXT Impression: the reasoning head's report
//!     INFERRED FROM (by reference) each NUM whose value the text quotes
//!   CONTAINS TEXT Comment: AI output invalid / uncalibrated, when so
//!   CONTAINS TEXT Not for diagnosis
//! ```

use std::collections::HashMap;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use sonoflow_core::annotations::{AiVerdict, FindingKind, FrameFinding};
use sonoflow_core::findings::Point;

use crate::codes::{self, Code};
use crate::elements::{
    code_item, common, ds, owned_code_item, sequence, text, with_meta, NOT_FOR_DIAGNOSIS,
};
use crate::image::US_IMAGE_STORAGE;
use crate::{DicomFile, ExportError, Instance, Keyframe, SessionUids};

/// Comprehensive SR Storage.
pub const COMPREHENSIVE_SR_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.88.33";
/// How close a number in the text must be to a caliper to be that caliper's.
const QUOTE_TOLERANCE_MM: f64 = 0.051;
const COMMENT: Code = Code {
    value: "121106",
    scheme: "DCM",
    meaning: "Comment",
};

/// An image of the keyframe that the SR references.
#[derive(Debug, Clone)]
pub(crate) struct ImageRef {
    pub sop_instance_uid: String,
    pub burned_in: bool,
}

/// A concept name, standard or ours.
#[derive(Debug, Clone)]
struct Concept {
    value: String,
    scheme: String,
    meaning: String,
}

impl From<Code> for Concept {
    fn from(c: Code) -> Self {
        Self {
            value: c.value.into(),
            scheme: c.scheme.into(),
            meaning: c.meaning.into(),
        }
    }
}

#[derive(Debug, Clone)]
enum Value {
    Container,
    Text(String),
    Code(Concept),
    /// mm.
    Num(f64),
    UidRef(String),
    /// Graphic type and (column, row) pairs (the image it is on is its
    /// SELECTED FROM child).
    Scoord(&'static str, Vec<f32>),
    Image(String),
    /// Points at the item labelled so.
    ByReference(usize),
}

#[derive(Debug, Clone)]
struct Item {
    relationship: &'static str,
    concept: Option<Concept>,
    value: Value,
    children: Vec<Item>,
    /// A label other items can reference.
    label: Option<usize>,
}

impl Item {
    fn new(relationship: &'static str, concept: impl Into<Concept>, value: Value) -> Self {
        Self {
            relationship,
            concept: Some(concept.into()),
            value,
            children: Vec::new(),
            label: None,
        }
    }

    fn container(relationship: &'static str, concept: Code, children: Vec<Item>) -> Self {
        Self {
            children,
            ..Self::new(relationship, concept, Value::Container)
        }
    }

    fn with(mut self, children: Vec<Item>) -> Self {
        self.children = children;
        self
    }
}

/// The SR of `p`'s keyframe; `images` its images, `tracking_uids` one per segment.
pub(crate) fn measurement_report(
    p: &Instance<'_>,
    images: &[ImageRef],
    tracking_uids: &[String],
) -> Result<DicomFile, ExportError> {
    let k = p.keyframe;
    // The shown image (overlay burned in) is what coordinates refer to;
    // the clean one has the same geometry.
    let image_uid = images
        .iter()
        .find(|i| i.burned_in)
        .or(images.first())
        .map(|i| i.sop_instance_uid.clone())
        .unwrap_or_default();
    let mut labels = Labels::default();
    let mut groups = Vec::new();
    let mut quoted = Vec::new();
    let calibrated = k.calibration.and_then(|c| c.spacing()).is_some();
    let valid = k.findings.verdict == AiVerdict::Valid;
    if valid {
        // Segments: a detection's box repeats a segment's lesion without
        // its measurements (docs/dicom.md).
        let segments = k
            .findings
            .findings
            .iter()
            .filter(|f| f.kind == FindingKind::Segment);
        for (i, f) in segments.enumerate() {
            let uid = tracking_uids.get(i).cloned().unwrap_or_default();
            let (group, nums) = measurement_group(k, f, i, &uid, &image_uid, &mut labels);
            if i == 0 {
                quoted = nums;
            }
            groups.push(group);
        }
        // The report's descriptors describe the primary finding.
        if let (Some(first), Some(report)) = (groups.first_mut(), k.report) {
            for (name, value) in report.attributes {
                let (concept, meaning) = codes::descriptor(name);
                let (code, meaning_v) = codes::descriptor(value);
                first.children.push(Item::new(
                    "CONTAINS",
                    Concept {
                        value: concept,
                        scheme: codes::PRIVATE_SCHEME.into(),
                        meaning,
                    },
                    Value::Code(Concept {
                        value: code,
                        scheme: codes::PRIVATE_SCHEME.into(),
                        meaning: meaning_v,
                    }),
                ));
            }
        }
    }

    let mut content = vec![
        Item::new(
            "HAS CONCEPT MOD",
            codes::LANGUAGE,
            Value::Code(codes::ENGLISH.into()),
        ),
        Item::new(
            "HAS OBS CONTEXT",
            codes::OBSERVER_TYPE,
            Value::Code(codes::DEVICE.into()),
        ),
        Item::new(
            "HAS OBS CONTEXT",
            codes::DEVICE_OBSERVER_UID,
            Value::UidRef(p.uids.device.clone()),
        ),
        Item::new(
            "HAS OBS CONTEXT",
            codes::DEVICE_OBSERVER_NAME,
            Value::Text(format!("sonoflow ({})", p.session.model)),
        ),
        Item::new(
            "HAS CONCEPT MOD",
            codes::PROCEDURE_REPORTED,
            Value::Code(codes::ULTRASONOGRAPHY.into()),
        ),
        Item::container(
            "CONTAINS",
            codes::IMAGE_LIBRARY,
            vec![Item::container(
                "CONTAINS",
                codes::IMAGE_LIBRARY_GROUP,
                images
                    .iter()
                    .map(|i| {
                        Item::new(
                            "CONTAINS",
                            codes::IMAGE_REGION,
                            Value::Image(i.sop_instance_uid.clone()),
                        )
                    })
                    .map(|mut i| {
                        // IMAGE items of a library carry no concept name.
                        i.concept = None;
                        i
                    })
                    .collect(),
            )],
        ),
        Item::container("CONTAINS", codes::IMAGING_MEASUREMENTS, groups),
    ];
    if let Some(report) = k.report.filter(|_| valid) {
        let mut impression = Item::new(
            "CONTAINS",
            codes::IMPRESSION,
            Value::Text(report.text.to_owned()),
        );
        // Each number the text quotes points at the caliper it came from.
        let refs: Vec<usize> = [report.long_axis_mm, report.short_axis_mm]
            .into_iter()
            .zip(quoted.iter())
            .filter_map(|(said, (mm, label))| {
                let said = said?;
                (text_quotes(report.text, said) && (said - mm).abs() <= QUOTE_TOLERANCE_MM)
                    .then_some(*label)
            })
            .collect();
        impression.children = refs
            .into_iter()
            .map(|label| Item {
                relationship: "INFERRED FROM",
                concept: None,
                value: Value::ByReference(label),
                children: Vec::new(),
                label: None,
            })
            .collect();
        content.push(impression);
    }
    if !valid {
        content.push(Item::new(
            "CONTAINS",
            COMMENT,
            Value::Text(
                "AI output invalid on this frame: nothing can be said about it (no findings, no measurements)".into(),
            ),
        ));
    } else if !calibrated {
        content.push(Item::new(
            "CONTAINS",
            COMMENT,
            Value::Text("uncalibrated frame: no measurements in mm".into()),
        ));
    }
    content.push(Item::new(
        "CONTAINS",
        codes::NOT_FOR_DIAGNOSIS,
        Value::Text(NOT_FOR_DIAGNOSIS.into()),
    ));

    let paths = labels.resolve(&content);
    let ascii = k.finding_label.is_ascii()
        && k.report.is_none_or(|r| {
            r.text.is_ascii()
                && r.attributes
                    .iter()
                    .all(|(n, v)| n.is_ascii() && v.is_ascii())
        });
    let mut e = common(
        p.session,
        p.uids,
        COMPREHENSIVE_SR_STORAGE,
        p.instance_uid,
        k.captured,
        ascii,
    );
    e.extend([
        text(tags::MODALITY, VR::CS, "SR"),
        text(tags::SERIES_INSTANCE_UID, VR::UI, &p.uids.sr_series),
        text(tags::SERIES_NUMBER, VR::IS, "2"),
        text(
            tags::SERIES_DESCRIPTION,
            VR::LO,
            "sonoflow measurement reports",
        ),
        sequence(
            tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE,
            Vec::new(),
        ),
        text(
            tags::INSTANCE_NUMBER,
            VR::IS,
            &p.instance_number.to_string(),
        ),
        text(tags::COMPLETION_FLAG, VR::CS, "COMPLETE"),
        // No person has verified it.
        text(tags::VERIFICATION_FLAG, VR::CS, "UNVERIFIED"),
        sequence(tags::PERFORMED_PROCEDURE_CODE_SEQUENCE, Vec::new()),
        sequence(
            tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE,
            vec![evidence(p.uids, images)],
        ),
        text(tags::VALUE_TYPE, VR::CS, "CONTAINER"),
        sequence(
            tags::CONCEPT_NAME_CODE_SEQUENCE,
            vec![code_item(codes::IMAGING_MEASUREMENT_REPORT)],
        ),
        text(tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE"),
        sequence(
            tags::CONTENT_TEMPLATE_SEQUENCE,
            vec![InMemDicomObject::from_element_iter([
                text(tags::MAPPING_RESOURCE, VR::CS, "DCMR"),
                text(tags::TEMPLATE_IDENTIFIER, VR::CS, "1500"),
            ])],
        ),
        sequence(
            tags::CONTENT_SEQUENCE,
            content.iter().map(|i| dataset(i, &paths)).collect(),
        ),
    ]);
    with_meta(
        InMemDicomObject::from_element_iter(e),
        COMPREHENSIVE_SR_STORAGE,
        p.instance_uid,
    )
}

/// The measurement group of finding `f` (index `i`), and the (mm, label)
/// of its long and short axis NUMs, in that order.
fn measurement_group(
    k: &Keyframe<'_>,
    f: &FrameFinding,
    i: usize,
    tracking_uid: &str,
    image_uid: &str,
    labels: &mut Labels,
) -> (Item, Vec<(f64, usize)>) {
    let mut children = vec![
        Item::new(
            "HAS OBS CONTEXT",
            codes::TRACKING_IDENTIFIER,
            Value::Text(format!("{} {} (track {})", k.finding_label, i + 1, f.track)),
        ),
        Item::new(
            "HAS OBS CONTEXT",
            codes::TRACKING_UID,
            Value::UidRef(tracking_uid.to_owned()),
        ),
        Item::new(
            "CONTAINS",
            codes::FINDING,
            Value::Code(codes::finding(k.finding_label).into()),
        ),
    ];
    let region = closed(k.findings.contour(f));
    if region.len() >= 8 {
        children.push(
            Item::new(
                "CONTAINS",
                codes::IMAGE_REGION,
                Value::Scoord("POLYLINE", region),
            )
            .with(vec![selected_from(image_uid)]),
        );
    }
    let mut nums = Vec::new();
    for (axis, m) in [
        (codes::LONG_AXIS, f.long_axis),
        (codes::SHORT_AXIS, f.short_axis),
    ] {
        // A measurement exists only where the frame was calibrated.
        let Some(m) = m.filter(|m| m.caliper.length_mm.is_finite()) else {
            continue;
        };
        let c = m.caliper;
        let label = labels.next();
        let mut num = Item::new("CONTAINS", axis, Value::Num(c.length_mm)).with(vec![
            Item::new(
                "HAS PROPERTIES",
                codes::CALIPER_UNCERTAINTY,
                Value::Num(m.uncertainty_mm),
            ),
            Item::new(
                "INFERRED FROM",
                codes::IMAGE_REGION,
                Value::Scoord("POLYLINE", vec![c.a.x, c.a.y, c.b.x, c.b.y]),
            )
            .with(vec![selected_from(image_uid)]),
        ]);
        num.label = Some(label);
        nums.push((c.length_mm, label));
        children.push(num);
    }
    (
        Item::container("CONTAINS", codes::MEASUREMENT_GROUP, children),
        nums,
    )
}

fn selected_from(image_uid: &str) -> Item {
    Item {
        relationship: "SELECTED FROM",
        concept: None,
        value: Value::Image(image_uid.to_owned()),
        children: Vec::new(),
        label: None,
    }
}

/// A closed polygon's (column, row) pairs, the first point repeated last.
fn closed(points: &[Point]) -> Vec<f32> {
    let mut v: Vec<f32> = points.iter().flat_map(|p| [p.x, p.y]).collect();
    if let Some(first) = points.first() {
        if points.last() != Some(first) {
            v.extend([first.x, first.y]);
        }
    }
    v
}

/// Whether `text` quotes `mm` as the report writes it (one decimal).
fn text_quotes(text: &str, mm: f64) -> bool {
    text.contains(&format!("{mm:.1}"))
}

/// Labels for items that others reference, and their paths once built.
#[derive(Default)]
struct Labels {
    next: usize,
}

impl Labels {
    fn next(&mut self) -> usize {
        self.next += 1;
        self.next
    }

    /// Each label's Referenced Content Item Identifier: the positions
    /// (1-based) from the root, the root being 1.
    fn resolve(&self, content: &[Item]) -> HashMap<usize, Vec<u32>> {
        fn walk(items: &[Item], path: &mut Vec<u32>, out: &mut HashMap<usize, Vec<u32>>) {
            for (i, item) in items.iter().enumerate() {
                path.push(i as u32 + 1);
                if let Some(label) = item.label {
                    out.insert(label, path.clone());
                }
                walk(&item.children, path, out);
                path.pop();
            }
        }
        let mut out = HashMap::new();
        walk(content, &mut vec![1], &mut out);
        out
    }
}

/// One content item as a dataset.
fn dataset(item: &Item, paths: &HashMap<usize, Vec<u32>>) -> InMemDicomObject {
    let mut e = vec![text(tags::RELATIONSHIP_TYPE, VR::CS, item.relationship)];
    if let Value::ByReference(label) = &item.value {
        let ids = paths.get(label).cloned().unwrap_or_default();
        e.push(DataElement::new(
            tags::REFERENCED_CONTENT_ITEM_IDENTIFIER,
            VR::UL,
            PrimitiveValue::U32(ids.into()),
        ));
        return InMemDicomObject::from_element_iter(e);
    }
    let value_type = match &item.value {
        Value::Container => "CONTAINER",
        Value::Text(_) => "TEXT",
        Value::Code(_) => "CODE",
        Value::Num(_) => "NUM",
        Value::UidRef(_) => "UIDREF",
        Value::Scoord(..) => "SCOORD",
        Value::Image(_) => "IMAGE",
        Value::ByReference(_) => unreachable!("handled above"),
    };
    e.push(text(tags::VALUE_TYPE, VR::CS, value_type));
    if let Some(c) = &item.concept {
        e.push(sequence(
            tags::CONCEPT_NAME_CODE_SEQUENCE,
            vec![owned_code_item(&c.value, &c.scheme, &c.meaning)],
        ));
    }
    match &item.value {
        Value::Container => e.push(text(tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE")),
        Value::Text(t) => e.push(text(tags::TEXT_VALUE, VR::UT, t)),
        Value::Code(c) => e.push(sequence(
            tags::CONCEPT_CODE_SEQUENCE,
            vec![owned_code_item(&c.value, &c.scheme, &c.meaning)],
        )),
        Value::Num(v) => e.push(sequence(
            tags::MEASURED_VALUE_SEQUENCE,
            vec![InMemDicomObject::from_element_iter([
                sequence(
                    tags::MEASUREMENT_UNITS_CODE_SEQUENCE,
                    vec![code_item(codes::MILLIMETRE)],
                ),
                text(tags::NUMERIC_VALUE, VR::DS, &ds(*v)),
            ])],
        )),
        Value::UidRef(uid) => e.push(text(tags::UID, VR::UI, uid)),
        Value::Scoord(kind, points) => {
            e.push(text(tags::GRAPHIC_TYPE, VR::CS, kind));
            e.push(DataElement::new(
                tags::GRAPHIC_DATA,
                VR::FL,
                PrimitiveValue::F32(points.iter().copied().collect()),
            ));
        }
        Value::Image(uid) => e.push(sequence(
            tags::REFERENCED_SOP_SEQUENCE,
            vec![InMemDicomObject::from_element_iter([
                text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, US_IMAGE_STORAGE),
                text(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, uid),
            ])],
        )),
        Value::ByReference(_) => {}
    }
    if !item.children.is_empty() {
        e.push(sequence(
            tags::CONTENT_SEQUENCE,
            item.children.iter().map(|c| dataset(c, paths)).collect(),
        ));
    }
    InMemDicomObject::from_element_iter(e)
}

/// The images this report is about, as Current Requested Procedure Evidence.
fn evidence(uids: &SessionUids, images: &[ImageRef]) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        text(tags::STUDY_INSTANCE_UID, VR::UI, &uids.study),
        sequence(
            tags::REFERENCED_SERIES_SEQUENCE,
            vec![InMemDicomObject::from_element_iter([
                text(tags::SERIES_INSTANCE_UID, VR::UI, &uids.image_series),
                sequence(
                    tags::REFERENCED_SOP_SEQUENCE,
                    images
                        .iter()
                        .map(|i| {
                            InMemDicomObject::from_element_iter([
                                text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, US_IMAGE_STORAGE),
                                text(
                                    tags::REFERENCED_SOP_INSTANCE_UID,
                                    VR::UI,
                                    &i.sop_instance_uid,
                                ),
                            ])
                        })
                        .collect(),
                ),
            ])],
        ),
    ])
}
