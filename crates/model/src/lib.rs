//! sonoflow-model: the model contract. A model is a directory with a
//! manifest (`sonoflow-model.toml`, see [`Manifest`]) naming its ONNX graphs
//! with their SHA-256 and every input and output, the preprocessing, the task
//! tokens and what each drives, the vocabularies, the tokenizer and the
//! default kernels. [`ModelDir::open`] validates all of it that can be
//! checked without ONNX Runtime; `sonoflow-inference` then checks the graphs
//! against the sessions. Every error names the file, the tensor or key, and
//! what was expected versus found.
//!
//! This crate must not depend on ONNX Runtime, GStreamer or tokio.

mod manifest;
pub mod onnx_file;

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

pub use manifest::*;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: cannot read: {cause}")]
    Read { path: String, cause: String },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error(
        "{path}: manifest format {found} is not supported; this build reads format {expected}"
    )]
    Format {
        path: String,
        expected: u32,
        found: u32,
    },
    #[error("{path}: key `{key}`: {problem}")]
    Invalid {
        path: String,
        key: String,
        problem: String,
    },
    #[error("{file}: sha256 {found} does not match the manifest's {expected}. Fix: re-export the file or update its sha256 in the manifest")]
    Hash {
        file: String,
        expected: String,
        found: String,
    },
    #[error("{file}: tensor `{tensor}`: expected {expected}, found {found}")]
    Tensor {
        file: String,
        tensor: String,
        expected: String,
        found: String,
    },
    #[error("{path}: task token `{token}` in `{key}` is not declared in [[tasks]]. Fix: declare it with what it drives, or remove it")]
    UnknownTaskToken {
        path: String,
        key: String,
        token: String,
    },
    #[error("{path}: key `{key}`: \"{file}\" {why}, outside the model directory. Fix: put the file in the model directory (a copy, not a link that leads out of it) and name it relative to the directory, without `..`")]
    OutsideModelDir {
        path: String,
        key: String,
        file: String,
        why: String,
    },
    #[error("{file}: {count} of {total} default kernel values are not finite (NaN or infinity), the first in row {row} ({token}). Fix: re-export the default kernels from a model whose kernel projector writes finite values")]
    NonFiniteKernels {
        file: String,
        count: usize,
        total: usize,
        row: usize,
        token: String,
    },
}

/// A model directory whose manifest has been read and checked.
#[derive(Debug, Clone)]
pub struct ModelDir {
    pub root: PathBuf,
    pub manifest: Manifest,
    /// `default_kernels.tokens.len() x default_kernels.size` values, row-major.
    pub default_kernels: Vec<f32>,
}

/// SHA-256 of a file, as lowercase hex.
pub fn sha256_hex(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

impl ModelDir {
    pub fn manifest_path(root: &Path) -> PathBuf {
        root.join(MANIFEST_FILE)
    }

    /// Reads and checks a model directory.
    pub fn open(root: &Path) -> Result<Self, ModelError> {
        let path = Self::manifest_path(root);
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::Read {
            path: shown.clone(),
            cause: e.to_string(),
        })?;
        let manifest: Manifest = toml::from_str(&text).map_err(|e| ModelError::Parse {
            path: shown.clone(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let checker = Checker {
            root,
            manifest_path: shown,
            manifest: &manifest,
        };
        let default_kernels = checker.check()?;
        Ok(Self {
            root: root.to_owned(),
            manifest,
            default_kernels,
        })
    }

    /// The tokenizer file the manifest names (None: it names none), checked
    /// like every other file: inside the directory, present, its SHA-256
    /// matching. Only the reasoning head reads it, so [`ModelDir::open`]
    /// checks no more than where it points: a missing or broken tokenizer
    /// disables the head, never the per-frame path. The head and
    /// `sonoflow model check` call this.
    pub fn tokenizer_file(&self) -> Result<Option<PathBuf>, ModelError> {
        let Some(tokenizer) = &self.manifest.tokenizer else {
            return Ok(None);
        };
        let checker = Checker {
            root: &self.root,
            manifest_path: Self::manifest_path(&self.root).display().to_string(),
            manifest: &self.manifest,
        };
        checker
            .check_file("tokenizer.file", &tokenizer.file, &tokenizer.sha256)
            .map(Some)
    }

    /// Path of a graph's ONNX file.
    pub fn graph_path(&self, role: &str) -> Option<PathBuf> {
        self.manifest
            .graphs
            .get(role)
            .map(|g| self.root.join(&g.file))
    }

    /// Size in bytes of a graph's ONNX file.
    pub fn graph_bytes(&self, role: &str) -> Option<u64> {
        self.graph_path(role)
            .and_then(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
    }
}

struct Checker<'a> {
    root: &'a Path,
    manifest_path: String,
    manifest: &'a Manifest,
}

impl Checker<'_> {
    fn invalid(&self, key: impl Into<String>, problem: impl Into<String>) -> ModelError {
        ModelError::Invalid {
            path: self.manifest_path.clone(),
            key: key.into(),
            problem: problem.into(),
        }
    }

    fn check(&self) -> Result<Vec<f32>, ModelError> {
        let m = self.manifest;
        if m.format != MANIFEST_FORMAT {
            return Err(ModelError::Format {
                path: self.manifest_path.clone(),
                expected: MANIFEST_FORMAT,
                found: m.format,
            });
        }
        for role in m.graphs.keys() {
            if !GRAPH_ROLES.contains(&role.as_str()) {
                return Err(self.invalid(
                    format!("graphs.{role}"),
                    format!("is not a graph role; use one of {GRAPH_ROLES:?}"),
                ));
            }
        }
        for role in [VISION_ENCODER, MASK_DECODER] {
            if !m.graphs.contains_key(role) {
                return Err(self.invalid(
                    format!("graphs.{role}"),
                    "is missing; every model needs a vision encoder and a mask decoder",
                ));
            }
        }
        for (role, graph) in &m.graphs {
            self.check_file(&format!("graphs.{role}.file"), &graph.file, &graph.sha256)?;
        }
        if let Some(tok) = &m.tokenizer {
            // Only where it points: the head checks the file itself (see
            // ModelDir::tokenizer_file).
            self.inside("tokenizer.file", &tok.file)?;
        }
        self.check_positions()?;
        self.check_preprocess()?;
        self.check_decoder_io()?;
        self.check_tasks()?;
        self.load_default_kernels()
    }

    /// `file` (as the manifest writes it under `key`) joined to the model
    /// directory, refused unless it stays inside: relative, without `..`,
    /// and not a link that resolves outside.
    fn inside(&self, key: &str, file: &str) -> Result<PathBuf, ModelError> {
        let outside = |why: String| ModelError::OutsideModelDir {
            path: self.manifest_path.clone(),
            key: key.to_owned(),
            file: file.to_owned(),
            why,
        };
        let relative = Path::new(file);
        if relative.has_root() || relative.is_absolute() {
            return Err(outside("is an absolute path".into()));
        }
        if relative
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::Prefix(_)))
        {
            return Err(outside("climbs out with `..`".into()));
        }
        let path = self.root.join(relative);
        // A path that does not resolve (missing) is reported as missing by
        // the caller; one that does must resolve under the directory.
        if let (Ok(real), Ok(root)) = (path.canonicalize(), self.root.canonicalize()) {
            if !real.starts_with(&root) {
                return Err(outside(format!("is a link to {}", real.display())));
            }
        }
        Ok(path)
    }

    fn check_file(&self, key: &str, file: &str, sha256: &str) -> Result<PathBuf, ModelError> {
        let path = self.inside(key, file)?;
        let shown = path.display().to_string();
        if !path.is_file() {
            return Err(self.invalid(key, format!("names {shown}, which does not exist")));
        }
        let found = sha256_hex(&path).map_err(|e| ModelError::Read {
            path: shown.clone(),
            cause: e.to_string(),
        })?;
        if !found.eq_ignore_ascii_case(sha256) {
            return Err(ModelError::Hash {
                file: shown,
                expected: sha256.to_owned(),
                found,
            });
        }
        Ok(path)
    }

    /// `max_positions`: on the decoder (required there) and nowhere else,
    /// with room for the image tokens and at least one more position.
    fn check_positions(&self) -> Result<(), ModelError> {
        let m = self.manifest;
        for (role, graph) in &m.graphs {
            let key = format!("graphs.{role}.max_positions");
            match (role.as_str(), graph.max_positions) {
                (DECODER, None) => {
                    return Err(self.invalid(
                        key,
                        "is missing. Fix: add the size of the decoder's position table, e.g. max_positions = 160 \
                         (onnx/umind/export.py writes it); generation never goes past it",
                    ))
                }
                (DECODER, Some(limit)) => {
                    let image = m.image_token_count().unwrap_or(0);
                    if limit <= image {
                        return Err(self.invalid(
                            key,
                            format!(
                                "is {limit}, which leaves no room after the encoder's {image} image tokens. \
                                 Fix: write the size of the decoder's position table"
                            ),
                        ));
                    }
                }
                (_, Some(_)) => {
                    return Err(self.invalid(
                        key,
                        "only the decoder has a position table. Fix: remove it",
                    ))
                }
                (_, None) => {}
            }
        }
        Ok(())
    }

    fn graph(&self, role: &str) -> &GraphSpec {
        &self.manifest.graphs[role]
    }

    fn graph_file(&self, role: &str) -> String {
        self.root.join(&self.graph(role).file).display().to_string()
    }

    fn check_preprocess(&self) -> Result<(), ModelError> {
        let p = &self.manifest.preprocess;
        if p.layout != "nchw" {
            return Err(self.invalid(
                "preprocess.layout",
                format!("\"{}\" is not supported; use \"nchw\"", p.layout),
            ));
        }
        if !(p.channels == 1 || p.channels == 3) {
            return Err(self.invalid(
                "preprocess.channels",
                format!("is {}; use 1 (gray) or 3 (RGB)", p.channels),
            ));
        }
        if p.mean.len() != p.channels as usize
            || p.std.len() != p.channels as usize
            || p.std.iter().any(|s| *s <= 0.0)
        {
            return Err(self.invalid(
                "preprocess.mean",
                format!("mean and std need {} values each, std > 0", p.channels),
            ));
        }
        let encoder = self.graph(VISION_ENCODER);
        let input = encoder.input(&p.input).ok_or_else(|| ModelError::Tensor {
            file: self.graph_file(VISION_ENCODER),
            tensor: p.input.clone(),
            expected: "an input named by preprocess.input".into(),
            found: format!(
                "inputs {:?}",
                encoder.inputs.iter().map(|t| &t.name).collect::<Vec<_>>()
            ),
        })?;
        let expected = [
            Dim::Fixed(i64::from(p.channels)),
            Dim::Fixed(i64::from(p.height)),
            Dim::Fixed(i64::from(p.width)),
        ];
        if input.shape.len() != 4
            || input.shape[1..] != expected
            || !matches!(input.dtype, DType::Float32 | DType::Float16)
        {
            return Err(ModelError::Tensor {
                file: self.graph_file(VISION_ENCODER),
                tensor: p.input.clone(),
                expected: format!(
                    "float [batch, {}, {}, {}] (from [preprocess])",
                    p.channels, p.height, p.width
                ),
                found: format!("{} {}", input.dtype.name(), shape_text(&input.shape)),
            });
        }
        Ok(())
    }

    fn check_decoder_io(&self) -> Result<(), ModelError> {
        let io = &self.manifest.decoder_io;
        let (encoder, decoder) = (self.graph(VISION_ENCODER), self.graph(MASK_DECODER));
        let missing = |role: &str, tensor: &str, what: &str| ModelError::Tensor {
            file: self.graph_file(role),
            tensor: tensor.to_owned(),
            expected: what.to_owned(),
            found: "no such tensor in the manifest".into(),
        };
        let produced = encoder.output(&io.features).ok_or_else(|| {
            missing(
                VISION_ENCODER,
                &io.features,
                "an output (decoder_io.features)",
            )
        })?;
        let consumed = decoder
            .input(&io.features)
            .ok_or_else(|| missing(MASK_DECODER, &io.features, "an input (decoder_io.features)"))?;
        if produced.dtype != consumed.dtype || produced.shape != consumed.shape {
            return Err(ModelError::Tensor {
                file: self.graph_file(MASK_DECODER),
                tensor: io.features.clone(),
                expected: format!(
                    "{} {} (the encoder's output)",
                    produced.dtype.name(),
                    shape_text(&produced.shape)
                ),
                found: format!("{} {}", consumed.dtype.name(), shape_text(&consumed.shape)),
            });
        }
        let kernels = decoder
            .input(&io.kernels)
            .ok_or_else(|| missing(MASK_DECODER, &io.kernels, "an input (decoder_io.kernels)"))?;
        let size = self.manifest.default_kernels.size as i64;
        if kernels.shape.len() != 3 || kernels.shape[2] != Dim::Fixed(size) {
            return Err(ModelError::Tensor {
                file: self.graph_file(MASK_DECODER),
                tensor: io.kernels.clone(),
                expected: format!("[batch, tasks, {size}] (default_kernels.size)"),
                found: shape_text(&kernels.shape),
            });
        }
        decoder.output(&io.mask_logits).ok_or_else(|| {
            missing(
                MASK_DECODER,
                &io.mask_logits,
                "an output (decoder_io.mask_logits)",
            )
        })?;
        if let Some(scores) = &io.scores {
            decoder
                .output(scores)
                .ok_or_else(|| missing(MASK_DECODER, scores, "an output (decoder_io.scores)"))?;
        }
        if let Some(projector) = self.manifest.graphs.get(KERNEL_PROJECTOR) {
            let out = projector.output(&io.kernels).ok_or_else(|| {
                missing(
                    KERNEL_PROJECTOR,
                    &io.kernels,
                    "an output named like decoder_io.kernels",
                )
            })?;
            if out.shape.last() != Some(&Dim::Fixed(size)) {
                return Err(ModelError::Tensor {
                    file: self.graph_file(KERNEL_PROJECTOR),
                    tensor: io.kernels.clone(),
                    expected: format!("last dimension {size} (the decoder's kernel size)"),
                    found: shape_text(&out.shape),
                });
            }
        }
        Ok(())
    }

    fn check_tasks(&self) -> Result<(), ModelError> {
        let tasks = &self.manifest.tasks;
        for (i, t) in tasks.iter().enumerate() {
            if tasks[..i].iter().any(|o| o.token == t.token) {
                return Err(self.invalid(
                    format!("tasks[{i}].token"),
                    format!("{} is declared twice", t.token),
                ));
            }
        }
        for (i, token) in self.manifest.default_kernels.tokens.iter().enumerate() {
            if !tasks.iter().any(|t| &t.token == token) {
                return Err(ModelError::UnknownTaskToken {
                    path: self.manifest_path.clone(),
                    key: format!("default_kernels.tokens[{i}]"),
                    token: token.clone(),
                });
            }
        }
        Ok(())
    }

    fn load_default_kernels(&self) -> Result<Vec<f32>, ModelError> {
        let k = &self.manifest.default_kernels;
        let path = self.check_file("default_kernels.file", &k.file, &k.sha256)?;
        let bytes = std::fs::read(&path).map_err(|e| ModelError::Read {
            path: path.display().to_string(),
            cause: e.to_string(),
        })?;
        // Checked: `size` is the manifest's and may be any integer.
        let expected = k
            .tokens
            .len()
            .checked_mul(k.size)
            .and_then(|n| n.checked_mul(4));
        if expected != Some(bytes.len()) || k.tokens.is_empty() {
            return Err(ModelError::Tensor {
                file: path.display().to_string(),
                tensor: "default kernels".into(),
                expected: format!(
                    "{} x {} float32 ({} bytes)",
                    k.tokens.len(),
                    k.size,
                    expected.map_or_else(|| "more than memory holds".to_owned(), |n| n.to_string())
                ),
                found: format!("{} bytes", bytes.len()),
            });
        }
        let values: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        // The decoder would turn them into NaN masks that read as "nothing in view".
        let count = values.iter().filter(|v| !v.is_finite()).count();
        if let Some(first) = values.iter().position(|v| !v.is_finite()) {
            let row = first / k.size.max(1);
            return Err(ModelError::NonFiniteKernels {
                file: path.display().to_string(),
                count,
                total: values.len(),
                row,
                token: k.tokens.get(row).cloned().unwrap_or_default(),
            });
        }
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-model")
    }

    /// A copy of the tiny model with its manifest edited by `edit`.
    fn broken(
        edit: impl Fn(String) -> String,
    ) -> (tempfile::TempDir, Result<ModelDir, ModelError>) {
        let dir = tempfile::tempdir().expect("tempdir");
        for entry in std::fs::read_dir(fixture()).expect("fixture") {
            let path = entry.expect("entry").path();
            std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
        }
        let manifest = dir.path().join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&manifest).expect("manifest");
        let edited = edit(text.clone());
        assert_ne!(edited, text, "the edit changed the manifest");
        std::fs::write(&manifest, edited).expect("write");
        let result = ModelDir::open(dir.path());
        (dir, result)
    }

    #[test]
    fn the_tiny_model_is_valid() {
        let model = ModelDir::open(&fixture()).expect("valid model");
        assert_eq!(model.manifest.tasks.len(), 2);
        assert_eq!(
            model.default_kernels.len(),
            2 * model.manifest.default_kernels.size
        );
        assert!(model.graph_bytes(VISION_ENCODER).expect("size") > 0);
    }

    #[test]
    fn the_finding_name_is_the_detection_target_from_the_manifest() {
        let model = ModelDir::open(&umind_nano()).expect("umind-nano");
        assert_eq!(model.manifest.finding_name(), "lesion");
        let mut m = model.manifest.clone();
        for task in &mut m.tasks {
            task.target = match task.drives {
                TaskKind::Detection => Some("nodule".into()),
                _ => Some("thyroid".into()),
            };
        }
        assert_eq!(m.finding_name(), "nodule");
        m.tasks.retain(|t| t.drives != TaskKind::Detection);
        assert_eq!(m.finding_name(), "thyroid");
        for task in &mut m.tasks {
            task.target = None;
        }
        assert_eq!(m.finding_name(), "finding");
    }

    #[test]
    fn the_default_prompt_is_the_models_diagnosis_task() {
        let model = ModelDir::open(&umind_nano()).expect("umind-nano");
        assert_eq!(model.manifest.default_prompt(), Some("[DIAG]"));
        let mut m = model.manifest.clone();
        m.prompts = vec!["[SEG] cyst".into(), "[DIAG]".into()];
        assert_eq!(m.default_prompt(), Some("[DIAG]"));
        m.prompts = vec!["[SEG] cyst".into()];
        assert_eq!(m.default_prompt(), Some("[SEG] cyst"), "not taught alone");
    }

    #[test]
    fn wrong_hash_names_the_file_and_both_hashes() {
        let (_d, r) = broken(|t| t.replacen("sha256 = \"", "sha256 = \"00", 1));
        let err = r.expect_err("wrong hash").to_string();
        assert!(
            err.contains("vision_encoder.onnx") && err.contains("does not match the manifest's 00"),
            "{err}"
        );
    }

    #[test]
    fn missing_tensor_is_named() {
        let (_d, r) = broken(|t| {
            t.replace(
                "features = \"image_features\"",
                "features = \"dense_features\"",
            )
        });
        let err = r.expect_err("missing tensor").to_string();
        assert!(
            err.contains("vision_encoder.onnx: tensor `dense_features`"),
            "{err}"
        );
    }

    #[test]
    fn shape_mismatch_between_graphs_says_expected_and_found() {
        let (_d, r) = broken(|t| {
            let at = t.find("[graphs.mask_decoder]").expect("decoder section");
            let (head, tail) = t.split_at(at);
            format!(
                "{head}{}",
                tail.replacen("\"batch\", 8, 16, 16", "\"batch\", 8, 32, 32", 1)
            )
        });
        let err = r.expect_err("mismatch").to_string();
        assert!(
            err.contains("mask_decoder.onnx: tensor `image_features`: expected float32 [batch, 8, 16, 16] (the encoder's output), found float32 [batch, 8, 32, 32]"),
            "{err}"
        );
    }

    #[test]
    fn unknown_task_token_is_refused() {
        let (_d, r) = broken(|t| {
            t.replace(
                "tokens = [\"[SEG]\", \"[DET]\"]",
                "tokens = [\"[SEG]\", \"[KPT]\"]",
            )
        });
        let err = r.expect_err("unknown token").to_string();
        assert!(
            err.contains(
                "task token `[KPT]` in `default_kernels.tokens[1]` is not declared in [[tasks]]"
            ),
            "{err}"
        );
    }

    #[test]
    fn kernel_size_disagreeing_with_the_decoder_is_refused() {
        let (_d, r) = broken(|t| t.replace("size = 41", "size = 40"));
        let err = r.expect_err("size").to_string();
        assert!(
            err.contains("tensor `kernels`: expected [batch, tasks, 40]"),
            "{err}"
        );
    }

    /// A copy of the model directory `from` (by file; no links).
    fn copy_of(from: &Path) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for entry in std::fs::read_dir(from).expect("model directory") {
            let path = entry.expect("entry").path();
            std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
        }
        dir
    }

    fn umind_nano() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../onnx/umind-nano")
    }

    #[test]
    fn files_outside_the_model_directory_are_refused_naming_the_key() {
        let (_d, r) = broken(|t| {
            t.replace(
                "file = \"mask_decoder.onnx\"",
                "file = \"../mask_decoder.onnx\"",
            )
        });
        let err = r.expect_err("..").to_string();
        assert!(
            err.contains("key `graphs.mask_decoder.file`: \"../mask_decoder.onnx\" climbs out with `..`, outside the model directory. Fix:"),
            "{err}"
        );
        let (_d, r) =
            broken(|t| t.replace("file = \"default_kernels.f32\"", "file = \"/etc/passwd\""));
        let err = r.expect_err("absolute").to_string();
        assert!(
            err.contains("key `default_kernels.file`: \"/etc/passwd\" is an absolute path"),
            "{err}"
        );
        // A link inside the directory that resolves outside it.
        let elsewhere = tempfile::tempdir().expect("tempdir");
        let dir = copy_of(&fixture());
        let outside = elsewhere.path().join("vision_encoder.onnx");
        std::fs::rename(dir.path().join("vision_encoder.onnx"), &outside).expect("move");
        std::os::unix::fs::symlink(&outside, dir.path().join("vision_encoder.onnx")).expect("link");
        let err = ModelDir::open(dir.path())
            .expect_err("link out")
            .to_string();
        assert!(
            err.contains("key `graphs.vision_encoder.file`: \"vision_encoder.onnx\" is a link to ")
                && err.contains("outside the model directory"),
            "{err}"
        );
        // A link that stays inside is fine.
        std::fs::rename(&outside, dir.path().join("encoder-v1.onnx")).expect("move back");
        std::fs::remove_file(dir.path().join("vision_encoder.onnx")).expect("unlink");
        std::os::unix::fs::symlink("encoder-v1.onnx", dir.path().join("vision_encoder.onnx"))
            .expect("link");
        ModelDir::open(dir.path()).expect("a link inside the directory");
        // The tokenizer is held to the same rule.
        let (_d, r) = broken(|t| {
            format!("{t}\n[tokenizer]\nfile = \"../../tokenizer.json\"\nsha256 = \"00\"\n")
        });
        let err = r.expect_err("tokenizer ..").to_string();
        assert!(err.contains("key `tokenizer.file`"), "{err}");
    }

    #[test]
    fn non_finite_default_kernels_fail_at_load_naming_the_file() {
        let fixture = fixture().with_file_name("tiny-model-nan-kernels");
        let err = ModelDir::open(&fixture)
            .expect_err("NaN kernels")
            .to_string();
        assert!(
            err.contains("tiny-model-nan-kernels/default_kernels.f32: 2 of 82 default kernel values are not finite (NaN or infinity), the first in row 0 ([SEG])"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_tokenizer_is_left_to_the_head() {
        let dir = copy_of(&umind_nano());
        std::fs::remove_file(dir.path().join("tokenizer.json")).expect("remove");
        let model = ModelDir::open(dir.path()).expect("the per-frame parts are fine");
        let err = model.tokenizer_file().expect_err("missing").to_string();
        assert!(
            err.contains("key `tokenizer.file`: names ")
                && err.contains("tokenizer.json, which does not exist"),
            "{err}"
        );
        std::fs::write(dir.path().join("tokenizer.json"), "{}").expect("write");
        let err = model.tokenizer_file().expect_err("hash").to_string();
        assert!(err.contains("tokenizer.json: sha256 "), "{err}");
        let good = ModelDir::open(&umind_nano()).expect("umind-nano");
        assert!(good.tokenizer_file().expect("ok").is_some());
    }

    #[test]
    fn max_positions_belongs_to_the_decoder_and_must_fit_the_image_tokens() {
        let model = ModelDir::open(&umind_nano()).expect("umind-nano");
        assert_eq!(model.manifest.max_positions(), Some(160));
        assert_eq!(model.manifest.image_token_count(), Some(68));
        let (_d, r) = broken(|t| {
            t.replace(
                "[graphs.mask_decoder]\n",
                "[graphs.mask_decoder]\nmax_positions = 64\n",
            )
        });
        let err = r.expect_err("not a decoder").to_string();
        assert!(
            err.contains(
                "key `graphs.mask_decoder.max_positions`: only the decoder has a position table"
            ),
            "{err}"
        );
        let edit = |from: &str, to: &str| {
            let dir = copy_of(&umind_nano());
            let manifest = dir.path().join(MANIFEST_FILE);
            let text = std::fs::read_to_string(&manifest).expect("manifest");
            assert!(text.contains(from), "{from}");
            std::fs::write(&manifest, text.replace(from, to)).expect("write");
            let err = ModelDir::open(dir.path()).expect_err("refused").to_string();
            err
        };
        let err = edit("max_positions = 160\n", "");
        assert!(
            err.contains("key `graphs.decoder.max_positions`: is missing"),
            "{err}"
        );
        let err = edit("max_positions = 160\n", "max_positions = 68\n");
        assert!(
            err.contains("is 68, which leaves no room after the encoder's 68 image tokens"),
            "{err}"
        );
    }

    #[test]
    fn unsupported_format_and_unknown_keys_are_refused() {
        let (_d, r) = broken(|t| t.replace("format = 1", "format = 2"));
        assert!(r
            .expect_err("format")
            .to_string()
            .contains("format 2 is not supported"));
        let (_d, r) = broken(|t| t.replace("labels = [", "lables = ["));
        assert!(r
            .expect_err("key")
            .to_string()
            .contains("unknown field `lables`"));
    }
}

#[cfg(test)]
mod onnx_file_tests {
    use super::onnx_file::summarize;
    use std::path::Path;

    #[test]
    fn counts_the_tiny_encoder_parameters() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/tiny-model/vision_encoder.onnx");
        let s = summarize(&path).expect("onnx");
        // conv 8x1x4x4 + 8, token projection 8x16, reshape shape 3.
        assert_eq!(s.parameters, 128 + 8 + 128 + 3);
        assert_eq!(s.opsets, vec![("ai.onnx".to_owned(), 17)]);
        assert_eq!(s.nodes, 6);
    }
}
