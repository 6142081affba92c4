//! Shared by the parser property tests (`crates/*/tests/parse_props.rs`,
//! included with `#[path]`): structure-aware mutations of real input files
//! and a runner that is bounded in CI and can run for minutes under
//! `scripts/fuzz.sh`.
//!
//! A mutated input is a base file plus a short list of [`Edit`]s, so a
//! failure shrinks to the few edits that matter and prints as a recipe.
//!
//! Environment:
//! - `SONOFLOW_FUZZ_CASES`: cases per batch (default 256).
//! - `SONOFLOW_FUZZ_SECONDS`: keep running fresh batches until this many
//!   seconds have passed (default: one batch).
//! - `SONOFLOW_FUZZ_SEED`: the first batch's seed (default: random; printed).
//!
//! Each target prints `fuzz-stats target=NAME executions=N failures=F seed=S`
//! to stderr (seen with `--nocapture`).
#![allow(dead_code)]

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

/// Values that break parsers and validators: integer and float extremes,
/// NaN, negatives, empty and escaping paths, quotes, control characters.
pub const EXTREMES: &[&str] = &[
    "0",
    "-1",
    "1",
    "-9223372036854775808",
    "9223372036854775807",
    "4611686018427387904",
    "18446744073709551615",
    "4294967295",
    "4294967296",
    "65535",
    "65536",
    "2147483648",
    "99999999999999999999999999999",
    "1e308",
    "-1e308",
    "1e-320",
    "3.5e38",
    "0.5",
    "-0.0",
    "nan",
    "-nan",
    "inf",
    "-inf",
    "true",
    "false",
    "\"\"",
    "\" \"",
    "\"..\"",
    "\"../../..\"",
    "\"../../../../etc/passwd\"",
    "\"/\"",
    "\"/nonexistent/a\"",
    "\"a/../../b\"",
    "\"\\u0000\"",
    "\"a\\\"b\"",
    "\"a\\nb\"",
    "\"\\u202e\\u00e9\"",
    "\"[SEG]\"",
    "\"float16\"",
    "\"batch\"",
    "[]",
    "[[]]",
    "{}",
    "[1, \"a\", 2.5]",
    "[nan, inf]",
    "1979-05-27T07:32:00Z",
    "'''\n'''",
];

/// A value written into a file by an edit.
#[derive(Clone)]
pub enum Value {
    /// One of [`EXTREMES`].
    Extreme(Index),
    Int(i64),
    Float(f64),
    /// A TOML string with these characters (escaped as needed).
    Str(String),
    /// A string of this many bytes.
    Huge(u32),
}

impl Value {
    pub fn render(&self) -> String {
        match self {
            Value::Extreme(i) => EXTREMES[i.index(EXTREMES.len())].to_owned(),
            Value::Int(n) => n.to_string(),
            Value::Float(f) => toml_float(*f),
            Value::Str(s) => toml_string(s),
            Value::Huge(n) => format!("\"{}\"", "A".repeat(*n as usize)),
        }
    }
}

/// The numbers of [`EXTREMES`], for [`Value::render_like`].
const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "-9223372036854775808",
    "9223372036854775807",
    "4611686018427387904",
    "4294967296",
    "65536",
    "1e308",
    "-1e308",
    "nan",
    "-inf",
    "inf",
    "0.5",
];

impl Value {
    /// The value rendered as the same kind as `literal`: a string where it
    /// is a string (a number becomes its text in quotes), a number where it
    /// is a number (a string becomes one of the extreme numbers).
    pub fn render_like(&self, literal: &str) -> String {
        let rendered = self.render();
        let is_number = |t: &str| {
            t.starts_with(|c: char| c.is_ascii_digit() || "+-ni".contains(c)) && !t.contains('"')
        };
        if literal.starts_with('"') {
            if rendered.starts_with('"') {
                rendered
            } else {
                toml_string(&rendered)
            }
        } else if is_number(literal) && !is_number(&rendered) {
            NUMBERS[rendered.len() % NUMBERS.len()].to_owned()
        } else {
            rendered
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Huge(n) => write!(f, "Huge({n} bytes)"),
            other => write!(f, "{}", other.render()),
        }
    }
}

fn toml_float(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f.is_infinite() {
        if f > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{f:?}")
    }
}

/// `s` as a TOML basic string.
pub fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => any::<Index>().prop_map(Value::Extreme),
        2 => any::<i64>().prop_map(Value::Int),
        1 => any::<f64>().prop_map(Value::Float),
        2 => ".{0,40}".prop_map(Value::Str),
        1 => (1u32..(1 << 16)).prop_map(Value::Huge),
    ]
}

/// One change to a file.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Flip one bit of one byte.
    FlipBit(Index, u8),
    /// Cut the file at a point.
    Truncate(Index),
    /// Insert bytes at a point.
    Insert(Index, Vec<u8>),
    /// Remove up to this many bytes from a point.
    Delete(Index, u16),
    /// Copy a chunk of the file to another point.
    Splice(Index, u16, Index),
    /// Overwrite bytes at a point with a protobuf varint (a length or tag
    /// that may be far larger than what follows).
    Varint(Index, u64),
    /// Remove one line.
    DropLine(Index),
    /// Repeat one line.
    DuplicateLine(Index),
    /// Swap two lines.
    SwapLines(Index, Index),
    /// Replace what follows `=` on one line.
    ReplaceValue(Index, Value),
    /// Replace one literal (number, string, boolean).
    ReplaceLiteral(Index, Value),
    /// Replace one literal with a value of the same kind (a number with a
    /// number, a string with a string), so the file still parses and the
    /// value reaches the validators.
    ReplaceLiteralSameKind(Index, Value),
    /// Replace every copy of one literal with a value of the same kind, so
    /// values that must agree (a size written in several places) change
    /// together.
    ReplaceEveryLiteral(Index, Value),
    /// Add `key = value` after a line, the key taken from another line.
    InsertKey(Index, Index, Value),
    /// Nest arrays or inline tables this deep on a new line.
    Nest(Index, u16, bool),
}

/// Edits for text formats (TOML): line- and literal-aware plus raw bytes.
pub fn text_edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        2 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Edit::FlipBit(i, b)),
        1 => any::<Index>().prop_map(Edit::Truncate),
        2 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        1 => (any::<Index>(), 1u16..64).prop_map(|(i, n)| Edit::Delete(i, n)),
        3 => any::<Index>().prop_map(Edit::DropLine),
        3 => any::<Index>().prop_map(Edit::DuplicateLine),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        5 => (any::<Index>(), value()).prop_map(|(i, v)| Edit::ReplaceValue(i, v)),
        3 => (any::<Index>(), value()).prop_map(|(i, v)| Edit::ReplaceLiteral(i, v)),
        8 => (any::<Index>(), value()).prop_map(|(i, v)| Edit::ReplaceLiteralSameKind(i, v)),
        3 => (any::<Index>(), value()).prop_map(|(i, v)| Edit::ReplaceEveryLiteral(i, v)),
        2 => (any::<Index>(), any::<Index>(), value())
            .prop_map(|(a, b, v)| Edit::InsertKey(a, b, v)),
        1 => (any::<Index>(), 1u16..4000, any::<bool>())
            .prop_map(|(i, d, arrays)| Edit::Nest(i, d, arrays)),
    ]
}

/// Edits for binary formats (protobuf).
pub fn byte_edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Edit::FlipBit(i, b)),
        3 => any::<Index>().prop_map(Edit::Truncate),
        2 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..32))
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        2 => (any::<Index>(), 1u16..512).prop_map(|(i, n)| Edit::Delete(i, n)),
        1 => (any::<Index>(), 1u16..512, any::<Index>())
            .prop_map(|(a, n, b)| Edit::Splice(a, n, b)),
        4 => (any::<Index>(), varint_value()).prop_map(|(i, v)| Edit::Varint(i, v)),
    ]
}

fn varint_value() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(u64::MAX),
        Just(i64::MAX as u64),
        Just(u32::MAX as u64),
        Just(1 << 31),
        Just(1 << 40),
        any::<u64>(),
        0u64..300,
    ]
}

/// Protobuf varint encoding.
pub fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn at(i: &Index, len: usize) -> usize {
    i.index(len + 1)
}

/// Applies edits to bytes (line and literal edits work on the bytes as text).
pub fn apply(base: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut b = base.to_vec();
    for edit in edits {
        match edit {
            Edit::FlipBit(i, bit) if !b.is_empty() => {
                let p = i.index(b.len());
                b[p] ^= 1 << bit;
            }
            Edit::Truncate(i) => b.truncate(at(i, b.len())),
            Edit::Insert(i, bytes) => {
                let p = at(i, b.len());
                b.splice(p..p, bytes.iter().copied());
            }
            Edit::Delete(i, n) => {
                let p = at(i, b.len());
                let end = (p + *n as usize).min(b.len());
                b.drain(p..end);
            }
            Edit::Splice(i, n, to) => {
                let p = at(i, b.len());
                let chunk: Vec<u8> = b[p..(p + *n as usize).min(b.len())].to_vec();
                let q = at(to, b.len());
                b.splice(q..q, chunk);
            }
            Edit::Varint(i, v) => {
                let p = at(i, b.len());
                let bytes = varint(*v);
                let end = (p + bytes.len()).min(b.len());
                b.splice(p..end, bytes);
            }
            Edit::FlipBit(..) => {}
            text => b = apply_text(&String::from_utf8_lossy(&b), text).into_bytes(),
        }
    }
    b
}

/// Applies edits to text.
pub fn apply_str(base: &str, edits: &[Edit]) -> String {
    String::from_utf8_lossy(&apply(base.as_bytes(), edits)).into_owned()
}

fn apply_text(text: &str, edit: &Edit) -> String {
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    let n = lines.len();
    match edit {
        Edit::DropLine(i) => {
            lines.remove(i.index(n));
        }
        Edit::DuplicateLine(i) => {
            let p = i.index(n);
            lines.insert(p, lines[p].clone());
        }
        Edit::SwapLines(a, b) => lines.swap(a.index(n), b.index(n)),
        Edit::ReplaceValue(i, v) => {
            let assigned: Vec<usize> = (0..n).filter(|&l| lines[l].contains('=')).collect();
            if let Some(&l) = assigned.get(i.index(assigned.len().max(1))) {
                let key = lines[l].split('=').next().unwrap_or_default().to_owned();
                lines[l] = format!("{key}= {}", v.render());
            }
        }
        Edit::InsertKey(line, from, v) => {
            let keys: Vec<String> = lines
                .iter()
                .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_owned()))
                .filter(|k| !k.is_empty() && !k.starts_with('#'))
                .collect();
            if let Some(key) = keys.get(from.index(keys.len().max(1))) {
                lines.insert(line.index(n + 1), format!("{key} = {}", v.render()));
            }
        }
        Edit::Nest(i, depth, arrays) => {
            let d = *depth as usize;
            let nested = if *arrays {
                format!("{}{}", "[".repeat(d), "]".repeat(d))
            } else {
                format!("{}1{}", "{ a = ".repeat(d), " }".repeat(d))
            };
            lines.insert(i.index(n + 1), format!("deep = {nested}"));
        }
        Edit::ReplaceLiteral(i, v) => {
            let spans = literals(text);
            if spans.is_empty() {
                return text.to_owned();
            }
            let (s, e) = spans[i.index(spans.len())];
            return format!("{}{}{}", &text[..s], v.render(), &text[e..]);
        }
        Edit::ReplaceLiteralSameKind(i, v) => {
            let spans = literals(text);
            if spans.is_empty() {
                return text.to_owned();
            }
            let (s, e) = spans[i.index(spans.len())];
            return format!("{}{}{}", &text[..s], v.render_like(&text[s..e]), &text[e..]);
        }
        Edit::ReplaceEveryLiteral(i, v) => {
            let spans = literals(text);
            if spans.is_empty() {
                return text.to_owned();
            }
            let (s, e) = spans[i.index(spans.len())];
            let target = &text[s..e];
            let rendered = v.render_like(target);
            let mut out = String::with_capacity(text.len());
            let mut last = 0;
            for &(s, e) in spans.iter().filter(|(s, e)| &text[*s..*e] == target) {
                out.push_str(&text[last..s]);
                out.push_str(&rendered);
                last = e;
            }
            out.push_str(&text[last..]);
            return out;
        }
        _ => unreachable!("byte edits are applied to bytes"),
    }
    lines.join("\n")
}

/// Byte spans of the literals in TOML text: basic strings, numbers,
/// booleans. Comments are skipped; keys in `key = ` are not literals.
pub fn literals(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' && b[i] != b'\n' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(b.len());
                spans.push((start, i));
            }
            c if c.is_ascii_digit()
                || ((c == b'-' || c == b'+') && b.get(i + 1).is_some_and(u8::is_ascii_digit)) =>
            {
                let start = i;
                let word_before =
                    start > 0 && (b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'_');
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b"._+-:".contains(&b[i])) {
                    i += 1;
                }
                let rest = text[i..].trim_start_matches([' ', '\t']);
                if !word_before && !rest.starts_with('=') {
                    spans.push((start, i));
                }
            }
            _ if text[i..].starts_with("true") || text[i..].starts_with("false") => {
                let len = if b[i] == b't' { 4 } else { 5 };
                if !text[i + len..]
                    .trim_start_matches([' ', '\t'])
                    .starts_with('=')
                {
                    spans.push((i, i + len));
                }
                i += len;
            }
            _ => i += 1,
        }
        // Stay on char boundaries: skip continuation bytes.
        while i < b.len() && !text.is_char_boundary(i) {
            i += 1;
        }
    }
    spans
}

/// Up to `max` text edits.
pub fn text_edits(max: usize) -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(text_edit(), 1..=max)
}

/// Up to `max` edits that keep TOML well-formed (same-kind values,
/// duplicated or dropped lines): these reach the validators behind the parser.
pub fn value_edits(max: usize) -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        6 => (any::<Index>(), value()).prop_map(|(i, v)| Edit::ReplaceLiteralSameKind(i, v)),
        3 => (any::<Index>(), value()).prop_map(|(i, v)| Edit::ReplaceEveryLiteral(i, v)),
        1 => any::<Index>().prop_map(Edit::DropLine),
    ];
    prop::collection::vec(edit, 1..=max)
}

/// Up to `max` byte edits.
pub fn byte_edits(max: usize) -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(byte_edit(), 1..=max)
}

/// Text made of TOML-ish fragments: section headers, `key = value` lines
/// with keys seen in real files, raw noise. Reaches the validators more
/// often than random characters do.
pub fn toml_soup(keys: Vec<String>, sections: Vec<String>) -> impl Strategy<Value = String> {
    let line = prop_oneof![
        4 => (prop::sample::select(keys), value()).prop_map(|(k, v)| format!("{k} = {}", v.render())),
        2 => prop::sample::select(sections).prop_map(|s| s),
        1 => "[^\n]{0,30}",
    ];
    prop::collection::vec(line, 0..30).prop_map(|lines| lines.join("\n"))
}

/// Keys and section headers written in real TOML files.
pub fn keys_and_sections(texts: &[String]) -> (Vec<String>, Vec<String>) {
    let mut keys = Vec::new();
    let mut sections = Vec::new();
    for text in texts {
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                sections.push(line.to_owned());
            } else if let Some((k, _)) = line.split_once('=') {
                let k = k.trim();
                if !k.is_empty() && !k.starts_with('#') && !k.contains(['{', '"', ' ']) {
                    keys.push(k.to_owned());
                }
            }
        }
    }
    for list in [&mut keys, &mut sections] {
        list.sort();
        list.dedup();
    }
    (keys, sections)
}

thread_local! {
    /// How the cases of the target running on this thread ended (see [`note`]).
    static OUTCOMES: std::cell::RefCell<std::collections::BTreeMap<String, u64>> =
        const { std::cell::RefCell::new(std::collections::BTreeMap::new()) };
}

/// Counts one case's outcome (e.g. "ok", or an error's kind) for the
/// target's summary line: it shows how deep the inputs reach.
pub fn note(outcome: impl Into<String>) {
    OUTCOMES.with(|o| *o.borrow_mut().entry(outcome.into()).or_default() += 1);
}

/// The kind of an error from its `Debug` text: the variant's name.
pub fn variant(debug: &str) -> String {
    debug
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Runs `test` over `strategy`: one batch of `SONOFLOW_FUZZ_CASES` cases,
/// or fresh batches until `SONOFLOW_FUZZ_SECONDS` have passed. Panics
/// inside `test` are failures; every failure is shrunk and reported with
/// its minimal input.
pub fn check<S>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: fmt::Debug,
{
    let env = |key: &str| std::env::var(key).ok().and_then(|v| v.parse::<f64>().ok());
    let cases = env("SONOFLOW_FUZZ_CASES").map_or(256, |c| c.max(1.0) as u32);
    let deadline =
        env("SONOFLOW_FUZZ_SECONDS").map(|s| Instant::now() + Duration::from_secs_f64(s));
    let first_seed = std::env::var("SONOFLOW_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(random_seed);
    OUTCOMES.with(|o| o.borrow_mut().clear());
    let executions = AtomicU64::new(0);
    let mut failures = Vec::new();
    let mut batch = 0u64;
    loop {
        let seed = first_seed.wrapping_add(batch);
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(seed),
            max_shrink_iters: 4096,
            ..Config::default()
        });
        let result = runner.run(&strategy, |v| {
            executions.fetch_add(1, Ordering::Relaxed);
            test(v)
        });
        if let Err(e) = result {
            failures.push(format!("seed {seed}: {e}"));
        }
        batch += 1;
        match deadline {
            Some(d) if Instant::now() < d && failures.len() < 3 => continue,
            _ => break,
        }
    }
    let mut outcomes: Vec<(String, u64)> = OUTCOMES.with(|o| o.take().into_iter().collect());
    outcomes.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    let mut shown: Vec<String> = outcomes
        .iter()
        .take(8)
        .map(|(k, n)| format!("{k}:{n}"))
        .collect();
    if outcomes.len() > 8 {
        let rest: u64 = outcomes[8..].iter().map(|(_, n)| n).sum();
        shown.push(format!("other:{rest}"));
    }
    eprintln!(
        "fuzz-stats target={name} executions={} failures={} seed={first_seed} batches={batch} outcomes={}",
        executions.load(Ordering::Relaxed),
        failures.len(),
        shown.join(","),
    );
    assert!(failures.is_empty(), "{name}:\n{}", failures.join("\n\n"));
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}

/// The error message contract shared by all parsers: a failure says something.
pub fn check_message(message: &str) -> Result<(), TestCaseError> {
    prop_assert!(!message.trim().is_empty(), "empty error message");
    Ok(())
}
