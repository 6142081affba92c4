//! Every number a clinician reads comes from the measurement pipeline. The
//! language model writes placeholders (`<long>`, `<short>`) where a caliper
//! value belongs; they are filled from the keyframe's calipers, with the
//! uncertainty and unit. A number the model wrote itself is never shown as
//! generated: in a clause about a measured axis it is replaced by the
//! measured value; anywhere else it is marked "(unverified)".
//!
//! Then the structured fields are read from the report's `key : value .`
//! clauses (the umind-nano report format; see onnx/umind/report.py).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use sonoflow_core::annotations::Measurement;

/// The keyframe's calipers that back the report's numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Calipers {
    pub long: Option<Measurement>,
    pub short: Option<Measurement>,
}

/// A report text with its numbers accounted for.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GroundedText {
    /// For display: placeholders filled, task and special tokens removed.
    pub text: String,
    /// Placeholders filled from the calipers.
    pub filled: usize,
    /// Numbers the model wrote that were replaced by measured values.
    pub replaced: Vec<String>,
    /// Numbers the model wrote that no measurement backs (marked in `text`).
    pub unverified: Vec<String>,
}

/// Which axis a clause is about, from its key ("long axis", "short axis").
#[derive(Debug, Clone, Copy, PartialEq)]
enum Axis {
    Long,
    Short,
}

fn axis_of(key: &str) -> Option<Axis> {
    if key.contains("long") {
        Some(Axis::Long)
    } else if key.contains("short") {
        Some(Axis::Short)
    } else {
        None
    }
}

fn measured(c: &Calipers, axis: Axis) -> Option<Measurement> {
    match axis {
        Axis::Long => c.long,
        Axis::Short => c.short,
    }
}

/// "15.9 ± 0.3" (the unit follows in the text).
fn value(m: &Measurement) -> String {
    format!("{:.1} ± {:.1}", m.caliper.length_mm, m.uncertainty_mm)
}

fn is_number(word: &str) -> bool {
    let w = word.trim_end_matches([',', ';']);
    w.chars().any(|c| c.is_ascii_digit())
        && w.chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == ',')
}

/// Special tokens ([SEG], [EOS], ...) that are for the runtime, not the reader.
fn is_special(word: &str) -> bool {
    word.starts_with('[') && word.ends_with(']') && word.len() > 2
}

/// Grounds `raw` (the generated text, words separated by spaces) in `calipers`.
pub fn ground(raw: &str, calipers: &Calipers) -> GroundedText {
    let mut out = GroundedText::default();
    let mut words: Vec<String> = Vec::new();
    // The current clause's key (the words before its ":") and whether we are past the ":".
    let mut key = String::new();
    let mut in_value = false;
    let mut skip_unit = false;
    for word in raw.split_whitespace() {
        if skip_unit {
            skip_unit = false;
            if word == "mm" {
                continue;
            }
        }
        match word {
            "." => {
                key.clear();
                in_value = false;
                words.push(".".into());
            }
            ":" => {
                in_value = true;
                words.push(":".into());
            }
            "<long>" | "<short>" => {
                let axis = if word == "<long>" {
                    Axis::Long
                } else {
                    Axis::Short
                };
                match measured(calipers, axis) {
                    Some(m) => {
                        out.filled += 1;
                        words.push(value(&m));
                    }
                    None => {
                        words.push("not measured".into());
                        skip_unit = true;
                    }
                }
            }
            w if is_special(w) => {}
            w if is_number(w) => match axis_of(&key).and_then(|a| measured(calipers, a)) {
                Some(m) => {
                    out.replaced.push(w.to_owned());
                    words.push(value(&m));
                }
                None => {
                    out.unverified.push(w.to_owned());
                    words.push(format!("{w} (unverified)"));
                }
            },
            w => {
                if !in_value {
                    if !key.is_empty() {
                        key.push(' ');
                    }
                    key.push_str(w);
                }
                words.push(w.to_owned());
            }
        }
    }
    out.text = tidy(&words);
    out
}

/// "finding : mass . shape : oval ." -> "finding: mass. shape: oval."
fn tidy(words: &[String]) -> String {
    let mut text = String::new();
    for w in words {
        if !(text.is_empty() || w == "." || w == ":") {
            text.push(' ');
        }
        text.push_str(w);
    }
    text
}

/// The structured fields of a report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReportFields {
    /// False for "no focal lesion".
    pub lesion: bool,
    /// The finding class ("cyst", "mass").
    pub class: Option<String>,
    /// Descriptor attributes by name (shape, orientation, margin, echo_pattern, posterior, calcifications).
    pub attributes: BTreeMap<String, String>,
    /// The impression: the assessment category ("probably_benign", ...).
    pub impression: Option<String>,
}

/// Report keys as written, and the field each fills.
fn field_of(key: &str) -> &str {
    match key {
        "finding" => "class",
        "echo_pattern" => "echo_pattern",
        "posterior_features" => "posterior",
        other => other,
    }
}

/// Reads the `key : value .` clauses of `raw`. `vocabulary` (the model's
/// attribute vocabularies) says which keys are attributes; values outside
/// it are kept as written.
pub fn fields(raw: &str, vocabulary: &BTreeMap<String, Vec<String>>) -> ReportFields {
    let words: Vec<&str> = raw.split_whitespace().filter(|w| !is_special(w)).collect();
    let text = words.join(" ");
    let mut out = ReportFields {
        lesion: !text.is_empty() && !text.starts_with("no focal lesion"),
        ..ReportFields::default()
    };
    for clause in text.split(" .") {
        let Some((key, value)) = clause.split_once(" : ") else {
            continue;
        };
        let key = key.trim().replace(' ', "_");
        let value = value.trim().trim_end_matches('.').trim().replace(' ', "_");
        if value.is_empty() {
            continue;
        }
        match field_of(&key) {
            "class" => out.class = Some(value),
            "assessment" => out.impression = Some(value),
            field if vocabulary.contains_key(field) => {
                out.attributes.insert(field.to_owned(), value);
            }
            _ => {}
        }
    }
    out
}

/// A one-line summary for logs: "mass, oval, ..., probably benign; L 15.9 ± 0.3 mm".
pub fn summary(fields: &ReportFields, calipers: &Calipers) -> String {
    let mut s = String::new();
    if !fields.lesion {
        return "no focal lesion".into();
    }
    let _ = write!(s, "{}", fields.class.as_deref().unwrap_or("lesion"));
    if let Some(i) = &fields.impression {
        let _ = write!(s, ", {}", i.replace('_', " "));
    }
    if let Some(m) = calipers.long {
        let _ = write!(s, "; L {} mm", value(&m));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonoflow_core::findings::{Caliper, Point};

    fn mm(length: f64, uncertainty: f64) -> Measurement {
        let p = Point { x: 0.0, y: 0.0 };
        Measurement {
            caliper: Caliper {
                a: p,
                b: p,
                length_mm: length,
            },
            uncertainty_mm: uncertainty,
        }
    }

    fn calipers() -> Calipers {
        Calipers {
            long: Some(mm(15.94, 0.31)),
            short: Some(mm(9.02, 0.24)),
        }
    }

    const REPORT: &str = "finding : mass . shape : oval . echo pattern : hypoechoic . posterior features : none . assessment : probably benign . long axis : <long> mm . short axis : <short> mm . [SEG] [DET]";

    #[test]
    fn placeholders_are_filled_from_the_calipers_with_uncertainty_and_unit() {
        let g = ground(REPORT, &calipers());
        assert_eq!(g.filled, 2);
        assert!(g.text.contains("long axis: 15.9 ± 0.3 mm."), "{}", g.text);
        assert!(g.text.contains("short axis: 9.0 ± 0.2 mm."), "{}", g.text);
        assert!(
            !g.text.contains('['),
            "task tokens are not for the reader: {}",
            g.text
        );
        assert!(g.replaced.is_empty() && g.unverified.is_empty());
    }

    #[test]
    fn a_number_the_model_wrote_is_replaced_by_the_measurement_or_marked_unverified() {
        let raw = "finding : mass . long axis : 23.5 mm . short axis : 7 mm . depth : 12 mm .";
        let g = ground(
            raw,
            &Calipers {
                long: Some(mm(15.94, 0.31)),
                short: None,
            },
        );
        assert_eq!(g.replaced, vec!["23.5"]);
        assert!(g.text.contains("long axis: 15.9 ± 0.3 mm"), "{}", g.text);
        assert!(
            !g.text.contains("23.5"),
            "the free number is gone: {}",
            g.text
        );
        // No short-axis caliper and no measurement for depth: both flagged.
        assert_eq!(g.unverified, vec!["7", "12"]);
        assert!(
            g.text.contains("short axis: 7 (unverified) mm"),
            "{}",
            g.text
        );
        assert!(g.text.contains("depth: 12 (unverified) mm"), "{}", g.text);
    }

    #[test]
    fn a_placeholder_without_a_caliper_says_not_measured() {
        let g = ground("long axis : <long> mm .", &Calipers::default());
        assert_eq!(g.text, "long axis: not measured.");
        assert_eq!(g.filled, 0);
    }

    #[test]
    fn fields_are_read_from_the_clauses() {
        let vocabulary: BTreeMap<String, Vec<String>> = [
            ("shape", vec!["oval"]),
            ("echo_pattern", vec!["hypoechoic"]),
            ("posterior", vec!["none"]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
        .collect();
        let f = fields(REPORT, &vocabulary);
        assert!(f.lesion);
        assert_eq!(f.class.as_deref(), Some("mass"));
        assert_eq!(f.impression.as_deref(), Some("probably_benign"));
        assert_eq!(f.attributes["shape"], "oval");
        assert_eq!(f.attributes["echo_pattern"], "hypoechoic");
        assert_eq!(f.attributes["posterior"], "none");
        assert!(!f.attributes.contains_key("long_axis"));
        let none = fields("no focal lesion . [SEG] [DET]", &vocabulary);
        assert!(!none.lesion && none.class.is_none());
        assert_eq!(
            summary(&f, &calipers()),
            "mass, probably benign; L 15.9 ± 0.3 mm"
        );
    }
}
