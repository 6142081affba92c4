//! Property tests of the model crate's parsers of outside input: the
//! manifest (`sonoflow-model.toml`, read and statically checked by
//! [`ModelDir::open`]) and the ONNX reader ([`summarize`]). Each is fed
//! arbitrary input and mutations of the real files (the test fixtures, the
//! committed umind-nano) and must return `Ok` or an error that says
//! something; never panic, and never allocate far beyond its input.
//!
//! `cargo test -p sonoflow-model --test parse_props` runs 256 cases per
//! target; `scripts/fuzz.sh` runs them for minutes (see tests/props/support.rs).

#[path = "../../../tests/props/support.rs"]
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use sonoflow_model::onnx_file::{summarize, OnnxSummary};
use sonoflow_model::{sha256_hex, ModelDir, MANIFEST_FILE};
use support::{byte_edits, check, check_message, text_edits, value_edits, Edit};

// ---------------------------------------------------------------------------
// Peak memory of one call, per thread.

/// Counts the bytes a thread holds while `ARMED`, to catch a reader that
/// trusts a length field and allocates what the input does not contain.
struct PeakCounter;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn track(delta: i64) {
    // The cells are const-initialised and have no destructor, so this
    // neither allocates nor fails during thread teardown.
    if ARMED.with(Cell::get) {
        let live = LIVE.with(|l| {
            l.set(l.get() + delta);
            l.get()
        });
        PEAK.with(|p| p.set(p.get().max(live)));
    }
}

// SAFETY: every call forwards to `System` with the caller's own arguments;
// the counter only reads sizes.
unsafe impl GlobalAlloc for PeakCounter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        track(layout.size() as i64);
        // SAFETY: the caller upholds `alloc`'s contract; passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        track(layout.size() as i64);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        track(-(layout.size() as i64));
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        track(new_size as i64 - layout.size() as i64);
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: PeakCounter = PeakCounter;

/// Runs `f` and returns its result with the most bytes it held at once.
fn peak_bytes<T>(f: impl FnOnce() -> T) -> (T, i64) {
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    ARMED.with(|a| a.set(true));
    let out = f();
    ARMED.with(|a| a.set(false));
    (out, PEAK.with(Cell::get))
}

#[test]
fn the_peak_counter_sees_allocations() {
    let (len, peak) = peak_bytes(|| std::hint::black_box(vec![1u8; 10 << 20]).len());
    assert!(peak >= len as i64, "peak {peak} for a {len}-byte vector");
}

// ---------------------------------------------------------------------------
// ONNX files.

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every committed ONNX file, read once.
fn real_onnx_files() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for dir in [
        "tests/fixtures/tiny-model",
        "tests/fixtures/tiny-model-fp16",
        "onnx/umind-nano",
    ] {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
            .expect("model folder")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
            .collect();
        paths.sort();
        for path in paths {
            let bytes = std::fs::read(&path).expect("onnx file");
            files.push((format!("{dir}/{}", file_name(&path)), bytes));
        }
    }
    assert!(files.len() >= 8, "expected the fixtures and umind-nano");
    files
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Writes `bytes` to `path`, summarizes it, and checks the reader's
/// contract: no panic (the runner catches it), an error that names the
/// file, and memory bounded by the input's size.
fn summarize_bytes(path: &Path, bytes: &[u8]) -> Result<Option<OnnxSummary>, TestCaseError> {
    std::fs::write(path, bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let (result, peak) = peak_bytes(|| summarize(path));
    // Decoded structs are at most a few dozen bytes per input byte
    // (a one-byte node becomes a String); never gigabytes from a length field.
    let bound = 32 * bytes.len() as i64 + (1 << 20);
    prop_assert!(
        peak <= bound,
        "held {peak} bytes for a {}-byte file",
        bytes.len()
    );
    match result {
        Ok(s) => {
            support::note("ok");
            Ok(Some(s))
        }
        Err(message) => {
            support::note("err");
            check_message(&message)?;
            prop_assert!(
                message.contains(&path.display().to_string()),
                "error does not name the file: {message}"
            );
            Ok(None)
        }
    }
}

#[test]
fn onnx_reader_reads_every_committed_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, bytes) in real_onnx_files() {
        let path = dir.path().join("case.onnx");
        let summary = summarize_bytes(&path, &bytes)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .unwrap_or_else(|| panic!("{name}: not read"));
        assert!(
            summary.nodes > 0 && !summary.opsets.is_empty(),
            "{name}: {summary:?}"
        );
    }
}

#[test]
fn onnx_reader_survives_arbitrary_bytes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("case.onnx");
    // Raw noise, and noise behind a plausible header (ir_version, then a
    // graph field whose length is whatever the noise says).
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2048),
        prop::collection::vec(any::<u8>(), 0..2048).prop_map(|tail| {
            let mut b = vec![0x08, 0x08, 0x3a];
            b.extend(tail);
            b
        }),
    ];
    check("onnx/arbitrary-bytes", bytes, |b| {
        summarize_bytes(&path, &b).map(drop)
    });
}

/// A committed file and the edits made to it.
#[derive(Debug, Clone)]
struct MutatedFile {
    base: String,
    edits: Vec<Edit>,
}

#[test]
fn onnx_reader_survives_mutated_real_files() {
    let files = real_onnx_files();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("case.onnx");
    let names: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    let cases = (prop::sample::select(names), byte_edits(6))
        .prop_map(|(base, edits)| MutatedFile { base, edits });
    check("onnx/mutated-real-files", cases, |case| {
        let base = &files
            .iter()
            .find(|(n, _)| *n == case.base)
            .expect("base file")
            .1;
        summarize_bytes(&path, &support::apply(base, &case.edits)).map(drop)
    });
}

// A ModelProto written field by field, so the reader's answer can be
// checked against what was written.

#[derive(Debug, Clone)]
struct GenModel {
    ir_version: i64,
    opsets: Vec<(String, i64)>,
    nodes: Vec<String>,
    initializers: Vec<(Vec<i64>, bool)>,
    /// An unknown field (tag, payload) the reader must skip.
    unknown: Option<(u32, Vec<u8>)>,
}

fn key(field: u32, wire: u8) -> Vec<u8> {
    support::varint(u64::from(field) << 3 | u64::from(wire))
}

fn len_field(field: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = key(field, 2);
    out.extend(support::varint(payload.len() as u64));
    out.extend_from_slice(payload);
    out
}

fn int_field(field: u32, v: i64) -> Vec<u8> {
    let mut out = key(field, 0);
    out.extend(support::varint(v as u64));
    out
}

impl GenModel {
    fn encode(&self) -> Vec<u8> {
        let mut graph = Vec::new();
        for op in &self.nodes {
            graph.extend(len_field(1, &len_field(4, op.as_bytes())));
        }
        for (dims, packed) in &self.initializers {
            let tensor = if *packed {
                let payload: Vec<u8> = dims
                    .iter()
                    .flat_map(|d| support::varint(*d as u64))
                    .collect();
                len_field(1, &payload)
            } else {
                dims.iter().flat_map(|d| int_field(1, *d)).collect()
            };
            graph.extend(len_field(5, &tensor));
        }
        let mut out = int_field(1, self.ir_version);
        if let Some((field, payload)) = &self.unknown {
            out.extend(len_field(*field, payload));
        }
        out.extend(len_field(7, &graph));
        for (domain, version) in &self.opsets {
            let mut opset = len_field(1, domain.as_bytes());
            opset.extend(int_field(2, *version));
            out.extend(len_field(8, &opset));
        }
        out
    }

    /// What `summarize` should say, or None where the true count does not fit a u64.
    fn expected(&self) -> Option<OnnxSummary> {
        let mut parameters: u64 = 0;
        for (dims, _) in &self.initializers {
            let count = dims
                .iter()
                .try_fold(1u64, |acc, d| acc.checked_mul((*d).max(0) as u64))?;
            parameters = parameters.checked_add(count)?;
        }
        Some(OnnxSummary {
            ir_version: self.ir_version,
            opsets: self
                .opsets
                .iter()
                .map(|(d, v)| {
                    let d = if d.is_empty() { "ai.onnx" } else { d.as_str() };
                    (d.to_owned(), *v)
                })
                .collect(),
            nodes: self.nodes.len(),
            parameters,
        })
    }
}

fn gen_model(dim: BoxedStrategy<i64>) -> impl Strategy<Value = GenModel> {
    let unknown_field = prop_oneof![9u32..20, 100u32..536_870_911];
    (
        any::<i64>(),
        prop::collection::vec(("[a-z.]{0,12}", any::<i64>()), 0..4),
        prop::collection::vec("[A-Za-z]{0,10}", 0..8),
        prop::collection::vec((prop::collection::vec(dim, 0..5), any::<bool>()), 0..6),
        prop::option::of((unknown_field, prop::collection::vec(any::<u8>(), 0..16))),
    )
        .prop_map(
            |(ir_version, opsets, nodes, initializers, unknown)| GenModel {
                ir_version,
                opsets,
                nodes,
                initializers,
                unknown,
            },
        )
}

fn check_generated(path: &Path, model: &GenModel) -> Result<(), TestCaseError> {
    let summary = summarize_bytes(path, &model.encode())?;
    prop_assert_eq!(summary, model.expected());
    Ok(())
}

#[test]
fn onnx_reader_reads_what_was_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("case.onnx");
    // Dims whose products and sums fit a u64 (see the next test for the rest).
    let dim = prop_oneof![-3i64..70_000, Just(-1), Just(0)].boxed();
    check("onnx/generated-models", gen_model(dim), |m| {
        check_generated(&path, &m)
    });
}

/// Found by this test (issue 15): initializer dims whose product overflows
/// a u64 (e.g. [4294967296, 4294967296]) made `onnx_file::summarize` panic;
/// it now saturates.
#[test]
fn onnx_parameter_count_survives_any_dims() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("case.onnx");
    let dim = prop_oneof![any::<i64>(), Just(i64::MAX), Just(1i64 << 32)].boxed();
    check("onnx/any-dims", gen_model(dim), |m| {
        let summary = summarize_bytes(&path, &m.encode())?;
        // Overflowing counts may saturate or fail; the rest must be exact.
        if let Some(expected) = m.expected() {
            prop_assert_eq!(summary, Some(expected));
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// Manifests.

/// A model directory in a temp folder whose manifest each case rewrites.
struct Sandbox {
    _dir: tempfile::TempDir,
    root: PathBuf,
    manifest: String,
}

impl Sandbox {
    /// A copy of a model directory (small files only).
    fn copy_of(dir: &str) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let root = temp.path().join("model");
        std::fs::create_dir(&root).expect("model dir");
        for entry in std::fs::read_dir(repo().join(dir)).expect("model folder") {
            let path = entry.expect("entry").path();
            std::fs::copy(&path, root.join(file_name(&path))).expect("copy");
        }
        let manifest = std::fs::read_to_string(root.join(MANIFEST_FILE)).expect("manifest");
        Self {
            _dir: temp,
            root,
            manifest,
        }
    }

    /// umind-nano with each graph replaced by a small stand-in file and its
    /// sha256 updated: the manifest checks never read a graph's contents,
    /// and hashing 16 MB per case would make each case slow.
    fn umind_nano_stand_in() -> Self {
        let source = repo().join("onnx/umind-nano");
        let temp = tempfile::tempdir().expect("temp dir");
        let root = temp.path().join("model");
        std::fs::create_dir(&root).expect("model dir");
        let mut manifest =
            std::fs::read_to_string(source.join(MANIFEST_FILE)).expect("umind-nano manifest");
        for entry in std::fs::read_dir(&source).expect("umind-nano") {
            let path = entry.expect("entry").path();
            let name = file_name(&path);
            let target = root.join(&name);
            if name.ends_with(".onnx") {
                let real = sha256_hex(&path).expect("hash");
                std::fs::write(&target, format!("stand-in for {name}")).expect("stand-in");
                let stand_in = sha256_hex(&target).expect("hash");
                manifest = manifest.replace(&real, &stand_in);
            } else {
                std::fs::copy(&path, &target).expect("copy");
            }
        }
        std::fs::write(root.join(MANIFEST_FILE), &manifest).expect("manifest");
        Self {
            _dir: temp,
            root,
            manifest,
        }
    }

    /// Writes `text` as the manifest and opens the directory.
    fn open(&self, text: &[u8]) -> Result<Result<ModelDir, String>, TestCaseError> {
        std::fs::write(self.root.join(MANIFEST_FILE), text)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        Ok(ModelDir::open(&self.root).map_err(|e| {
            support::note(support::variant(&format!("{e:?}")));
            e.to_string()
        }))
    }
}

/// The manifest contract: `Ok`, or an error that says something.
fn open_checked(sandbox: &Sandbox, text: &[u8]) -> Result<Option<ModelDir>, TestCaseError> {
    match sandbox.open(text)? {
        Ok(model) => {
            support::note("ok");
            Ok(Some(model))
        }
        Err(message) => {
            check_message(&message)?;
            Ok(None)
        }
    }
}

#[test]
fn every_base_manifest_is_valid() {
    for sandbox in [
        Sandbox::copy_of("tests/fixtures/tiny-model"),
        Sandbox::copy_of("tests/fixtures/tiny-model-fp16"),
        Sandbox::umind_nano_stand_in(),
    ] {
        let text = sandbox.manifest.clone();
        sandbox
            .open(text.as_bytes())
            .expect("write")
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn manifest_survives_arbitrary_text() {
    let sandbox = Sandbox::copy_of("tests/fixtures/tiny-model");
    let umind = std::fs::read_to_string(repo().join("onnx/umind-nano").join(MANIFEST_FILE))
        .expect("umind-nano manifest");
    let (keys, sections) = support::keys_and_sections(&[sandbox.manifest.clone(), umind]);
    let text = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..1024),
        ".{0,512}".prop_map(String::into_bytes),
        support::toml_soup(keys, sections).prop_map(String::into_bytes),
    ];
    check("manifest/arbitrary-text", text, |t| {
        open_checked(&sandbox, &t).map(drop)
    });
}

/// A mutated manifest: which base, and its edits.
#[derive(Debug, Clone)]
struct MutatedManifest {
    base: Index,
    edits: Vec<Edit>,
}

fn mutated_manifests(name: &str, sandboxes: &[Sandbox], edits: impl Strategy<Value = Vec<Edit>>) {
    let cases = (any::<Index>(), edits).prop_map(|(base, edits)| MutatedManifest { base, edits });
    check(name, cases, |case| {
        let sandbox = &sandboxes[case.base.index(sandboxes.len())];
        let text = support::apply(sandbox.manifest.as_bytes(), &case.edits);
        open_checked(sandbox, &text).map(drop)
    });
}

fn fixtures() -> [Sandbox; 2] {
    [
        Sandbox::copy_of("tests/fixtures/tiny-model"),
        Sandbox::copy_of("tests/fixtures/tiny-model-fp16"),
    ]
}

#[test]
fn manifest_survives_mutated_fixtures() {
    mutated_manifests("manifest/mutated-fixtures", &fixtures(), text_edits(4));
}

#[test]
fn manifest_survives_extreme_values_in_fixtures() {
    mutated_manifests("manifest/values-in-fixtures", &fixtures(), value_edits(3));
}

#[test]
fn manifest_survives_mutated_umind_nano() {
    mutated_manifests(
        "manifest/mutated-umind-nano",
        &[Sandbox::umind_nano_stand_in()],
        text_edits(4),
    );
}

#[test]
fn manifest_survives_extreme_values_in_umind_nano() {
    mutated_manifests(
        "manifest/values-in-umind-nano",
        &[Sandbox::umind_nano_stand_in()],
        value_edits(3),
    );
}

/// Found by this test (issue 15): a kernel size whose product with the
/// task count overflows (e.g. 4611686018427387904) made `ModelDir::open`
/// panic; the arithmetic is checked now.
#[test]
fn manifest_kernel_size_may_be_any_integer() {
    let sandbox = Sandbox::copy_of("tests/fixtures/tiny-model");
    let size = prop_oneof![
        0u64..100,
        Just(i64::MAX as u64),
        Just(1 << 62),
        0..=i64::MAX as u64
    ];
    check("manifest/any-kernel-size", size, |size| {
        // The tiny model's kernel size, 41, everywhere it is written.
        let text = sandbox
            .manifest
            .replace("\"tasks\", 41]", &format!("\"tasks\", {size}]"))
            .replace("size = 41", &format!("size = {size}"));
        open_checked(&sandbox, text.as_bytes()).map(drop)
    });
}

/// A manifest's file paths are relative to the model directory and stay
/// in it: `..`, absolute paths and links that lead out are refused.
#[test]
fn manifest_files_stay_inside_the_model_dir() {
    let sandbox = Sandbox::copy_of("tests/fixtures/tiny-model");
    let outside = sandbox.root.join("../outside.onnx");
    std::fs::copy(sandbox.root.join("vision_encoder.onnx"), &outside).expect("copy");
    let absolute = outside
        .canonicalize()
        .expect("absolute")
        .display()
        .to_string();
    std::os::unix::fs::symlink(&absolute, sandbox.root.join("link.onnx")).expect("link");
    std::fs::create_dir(sandbox.root.join("sub")).expect("sub dir");
    let forms = prop::sample::select(vec![
        "../outside.onnx".to_owned(),
        "./../outside.onnx".to_owned(),
        "sub/../../outside.onnx".to_owned(),
        "link.onnx".to_owned(),
        absolute,
    ]);
    check("manifest/escaping-paths", forms, |form| {
        let text = sandbox.manifest.replacen(
            "file = \"vision_encoder.onnx\"",
            &format!("file = \"{form}\""),
            1,
        );
        let opened = sandbox.open(text.as_bytes())?;
        prop_assert!(opened.is_err(), "{form} was accepted");
        Ok(())
    });
}
