//! Every number a clinician reads comes from the measurement pipeline. The
//! language model writes placeholders (umind-nano: `<long>`, `<short>`)
//! where a caliper value belongs; they are filled from the keyframe's
//! calipers, with the uncertainty and unit. A number the model wrote itself
//! is never shown as generated: in a measurement clause it is replaced by
//! the measured value; anywhere else it is marked "(unverified)".
//!
//! Then the structured fields are read from the report's `key : value .`
//! clauses. Which keys are measurements, the finding, the assessment and
//! the attributes is the model's, from its manifest ([`ReportGrammar`],
//! `[report]`; umind-nano's is onnx/umind/report.py's).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use sonoflow_core::annotations::Measurement;
use sonoflow_model::{CaliperAxis, MeasurementClause, ReportGrammar};

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

fn measured(c: &Calipers, axis: CaliperAxis) -> Option<Measurement> {
    match axis {
        CaliperAxis::Long => c.long,
        CaliperAxis::Short => c.short,
    }
}

/// Writes "15.9 ± 0.3" (the unit follows in the text).
fn write_value(out: &mut String, m: &Measurement) {
    let _ = write!(out, "{:.1} ± {:.1}", m.caliper.length_mm, m.uncertainty_mm);
}

/// "15.9 ± 0.3".
fn value(m: &Measurement) -> String {
    let mut s = String::new();
    write_value(&mut s, m);
    s
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

/// What one word did to the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WordEffect {
    /// Nothing for the reader (a special token, a unit after "not measured").
    Hidden,
    /// The text grew.
    Shown,
    /// The text grew by the end of a clause (".").
    ClauseEnd,
}

/// Grounds a report word by word as it is written: the state is the current
/// clause's key, so each word costs the same however long the report already
/// is, and the text only grows (`text()` is always the grounding of the
/// words so far). [`ground`] is this over a whole text.
#[derive(Debug, Clone)]
pub struct Grounder<'g> {
    grammar: &'g ReportGrammar,
    calipers: Calipers,
    out: GroundedText,
    /// The current clause's key (the words before its ":").
    key: String,
    /// Past the current clause's ":".
    in_value: bool,
    /// A unit to drop if it comes next ("not measured" has none).
    skip_unit: Option<&'g str>,
    /// Bytes of words grounded so far (the work done).
    bytes: usize,
}

impl<'g> Grounder<'g> {
    pub fn new(grammar: &'g ReportGrammar, calipers: Calipers) -> Self {
        Self {
            grammar,
            calipers,
            out: GroundedText::default(),
            key: String::new(),
            in_value: false,
            skip_unit: None,
            bytes: 0,
        }
    }

    /// The measurement clause whose placeholder `word` is.
    fn placeholder(&self, word: &str) -> Option<&'g MeasurementClause> {
        let grammar: &'g ReportGrammar = self.grammar;
        grammar.measurements.iter().find(|m| m.placeholder == word)
    }

    /// The measurement of the current clause, if it is a measurement clause
    /// and its caliper was measured.
    fn clause_measurement(&self) -> Option<Measurement> {
        let m = self
            .grammar
            .measurements
            .iter()
            .find(|m| m.key == self.key)?;
        measured(&self.calipers, m.caliper)
    }

    /// The grounded text so far.
    pub fn text(&self) -> &str {
        &self.out.text
    }

    /// Bytes of words grounded so far.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The grounded report.
    pub fn finish(self) -> GroundedText {
        self.out
    }

    /// Starts the next item of the text: "finding : mass ." reads
    /// "finding: mass." (no space before "." and ":").
    fn next_item(&mut self, tight: bool) -> &mut String {
        let text = &mut self.out.text;
        if !(tight || text.is_empty()) {
            text.push(' ');
        }
        text
    }

    /// Grounds the next word (no whitespace in it).
    pub fn word(&mut self, word: &str) -> WordEffect {
        self.bytes += word.len();
        if self.skip_unit.take() == Some(word) {
            return WordEffect::Hidden;
        }
        if word == "." {
            self.key.clear();
            self.in_value = false;
            self.next_item(true).push('.');
            return WordEffect::ClauseEnd;
        }
        if word == ":" {
            self.in_value = true;
            self.next_item(true).push(':');
        } else if let Some(clause) = self.placeholder(word) {
            match measured(&self.calipers, clause.caliper) {
                Some(m) => {
                    self.out.filled += 1;
                    write_value(self.next_item(false), &m);
                }
                None => {
                    self.skip_unit = Some(&clause.unit);
                    self.next_item(false).push_str("not measured");
                }
            }
        } else if is_special(word) {
            return WordEffect::Hidden;
        } else if is_number(word) {
            match self.clause_measurement() {
                Some(m) => {
                    self.out.replaced.push(word.to_owned());
                    write_value(self.next_item(false), &m);
                }
                None => {
                    self.out.unverified.push(word.to_owned());
                    let t = self.next_item(false);
                    t.push_str(word);
                    t.push_str(" (unverified)");
                }
            }
        } else {
            if !self.in_value {
                if !self.key.is_empty() {
                    self.key.push(' ');
                }
                self.key.push_str(word);
            }
            self.next_item(false).push_str(word);
        }
        WordEffect::Shown
    }
}

/// Grounds `raw` (the generated text, words separated by spaces) in
/// `calipers`, reading it with `grammar`.
pub fn ground(raw: &str, calipers: &Calipers, grammar: &ReportGrammar) -> GroundedText {
    let mut g = Grounder::new(grammar, *calipers);
    for word in raw.split_whitespace() {
        g.word(word);
    }
    g.finish()
}

/// The structured fields of a report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReportFields {
    /// False for a report of no finding ("no focal lesion").
    pub lesion: bool,
    /// The finding class ("cyst", "mass").
    pub class: Option<String>,
    /// Descriptor attributes by name (shape, orientation, margin, echo_pattern, posterior, calcifications).
    pub attributes: BTreeMap<String, String>,
    /// The impression: the assessment category ("probably_benign", ...).
    pub impression: Option<String>,
}

/// Reads the `key : value .` clauses of `raw` with `grammar`.
/// `vocabulary` (the model's attribute vocabularies) says which keys are
/// attributes; values outside it are kept as written.
pub fn fields(
    raw: &str,
    vocabulary: &BTreeMap<String, Vec<String>>,
    grammar: &ReportGrammar,
) -> ReportFields {
    let words: Vec<&str> = raw.split_whitespace().filter(|w| !is_special(w)).collect();
    let text = words.join(" ");
    let mut out = ReportFields {
        lesion: !text.is_empty() && !text.starts_with(grammar.no_finding.as_str()),
        ..ReportFields::default()
    };
    for clause in text.split(" .") {
        let Some((key, value)) = clause.split_once(" : ") else {
            continue;
        };
        let key = key.trim();
        let value = value.trim().trim_end_matches('.').trim().replace(' ', "_");
        if value.is_empty() {
            continue;
        }
        if key == grammar.finding {
            out.class = Some(value);
        } else if key == grammar.assessment {
            out.impression = Some(value);
        } else {
            let attribute = grammar
                .attribute_keys
                .get(key)
                .cloned()
                .unwrap_or_else(|| key.replace(' ', "_"));
            if vocabulary.contains_key(&attribute) {
                out.attributes.insert(attribute, value);
            }
        }
    }
    out
}

/// A one-line summary for logs: "mass, probably benign; L 15.9 ± 0.3 mm".
pub fn summary(fields: &ReportFields, calipers: &Calipers, grammar: &ReportGrammar) -> String {
    let mut s = String::new();
    if !fields.lesion {
        return grammar.no_finding.clone();
    }
    let _ = write!(s, "{}", fields.class.as_deref().unwrap_or("finding"));
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

    fn umind() -> ReportGrammar {
        ReportGrammar::default()
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
        let g = ground(REPORT, &calipers(), &umind());
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
            &umind(),
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
        let g = ground("long axis : <long> mm .", &Calipers::default(), &umind());
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
        let f = fields(REPORT, &vocabulary, &umind());
        assert!(f.lesion);
        assert_eq!(f.class.as_deref(), Some("mass"));
        assert_eq!(f.impression.as_deref(), Some("probably_benign"));
        assert_eq!(f.attributes["shape"], "oval");
        assert_eq!(f.attributes["echo_pattern"], "hypoechoic");
        assert_eq!(f.attributes["posterior"], "none");
        assert!(!f.attributes.contains_key("long_axis"));
        let none = fields("no focal lesion . [SEG] [DET]", &vocabulary, &umind());
        assert!(!none.lesion && none.class.is_none());
        assert_eq!(
            summary(&f, &calipers(), &umind()),
            "mass, probably benign; L 15.9 ± 0.3 mm"
        );
    }

    #[test]
    fn another_models_grammar_from_its_manifest_is_read_the_same_way() {
        let manifest = r#"
            finding = "nodule"
            assessment = "category"
            no_finding = "normal study"
            attribute_keys = { "echo" = "echogenicity" }
            measurements = [
                { key = "length", placeholder = "<L>", caliper = "long" },
                { key = "width", placeholder = "<W>", caliper = "short", unit = "cm" },
            ]
        "#;
        let grammar: ReportGrammar = toml::from_str(manifest).expect("grammar");
        let raw = "nodule : solid . echo : hypoechoic . category : tr4 . length : <L> mm . \
                   width : <W> cm . depth : 3 mm . long axis : 9 mm . [SEG]";
        let g = ground(
            raw,
            &Calipers {
                long: Some(mm(15.94, 0.31)),
                short: None,
            },
            &grammar,
        );
        assert_eq!(
            g.text,
            "nodule: solid. echo: hypoechoic. category: tr4. length: 15.9 ± 0.3 mm. \
             width: not measured. depth: 3 (unverified) mm. long axis: 9 (unverified) mm."
        );
        assert_eq!((g.filled, g.unverified.len()), (1, 2), "{g:?}");
        let vocabulary: BTreeMap<String, Vec<String>> =
            [("echogenicity".to_owned(), vec!["hypoechoic".to_owned()])].into();
        let f = fields(raw, &vocabulary, &grammar);
        assert_eq!(f.class.as_deref(), Some("solid"));
        assert_eq!(f.impression.as_deref(), Some("tr4"));
        assert_eq!(f.attributes["echogenicity"], "hypoechoic");
        assert!(!fields("normal study .", &vocabulary, &grammar).lesion);
    }
}
