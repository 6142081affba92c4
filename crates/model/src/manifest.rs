//! `sonoflow-model.toml`: what a model directory holds and what each part means.
//! Tensor names follow the conventions exported vision-language models already
//! use (input_ids / inputs_embeds, attention_mask, position_ids,
//! past_key_values.N.key/value -> logits, present.N.key/value), so a model
//! exported by ordinary tools fits with a manifest and no code change.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The manifest format this build reads.
pub const MANIFEST_FORMAT: u32 = 1;
/// The manifest's file name inside a model directory.
pub const MANIFEST_FILE: &str = "sonoflow-model.toml";

/// Graph roles a model may have. The first two are required.
pub const VISION_ENCODER: &str = "vision_encoder";
pub const MASK_DECODER: &str = "mask_decoder";
pub const EMBED_TOKENS: &str = "embed_tokens";
pub const DECODER: &str = "decoder";
pub const KERNEL_PROJECTOR: &str = "kernel_projector";
pub const GRAPH_ROLES: [&str; 5] = [
    VISION_ENCODER,
    MASK_DECODER,
    EMBED_TOKENS,
    DECODER,
    KERNEL_PROJECTOR,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    Float32,
    Float16,
    Int64,
    Int32,
    Bool,
}

impl DType {
    pub fn name(self) -> &'static str {
        match self {
            DType::Float32 => "float32",
            DType::Float16 => "float16",
            DType::Int64 => "int64",
            DType::Int32 => "int32",
            DType::Bool => "bool",
        }
    }
}

/// One dimension: a fixed size, or a symbolic name (e.g. "batch").
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Dim {
    Fixed(i64),
    Named(String),
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Named(s) => write!(f, "{s}"),
        }
    }
}

/// Formats a shape as `[batch, 1, 256, 256]`.
pub fn shape_text(shape: &[Dim]) -> String {
    let dims: Vec<String> = shape.iter().map(Dim::to_string).collect();
    format!("[{}]", dims.join(", "))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<Dim>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphSpec {
    /// ONNX file, relative to the model directory.
    pub file: String,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    /// The decoder only (required there): the size of its position table.
    /// Image tokens, prompt and generated tokens together never take a
    /// position at or past it; generation is cut short there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_positions: Option<usize>,
}

impl GraphSpec {
    pub fn input(&self, name: &str) -> Option<&TensorSpec> {
        self.inputs.iter().find(|t| t.name == name)
    }
    pub fn output(&self, name: &str) -> Option<&TensorSpec> {
        self.outputs.iter().find(|t| t.name == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Crop {
    /// Only the ultrasound image region (rectangle or the fan's bounding box).
    ImageRegion,
    /// The whole frame.
    FullFrame,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resize {
    /// Keep the aspect ratio; pad the short side (centred) with `pad_value`.
    Letterbox,
    /// Scale each axis to fit.
    Stretch,
}

/// How a frame becomes the encoder's input tensor, and how model
/// coordinates map back: crop the region, resize (letterbox or stretch) to
/// width x height, then value' = (value / 255 - mean) / std per channel.
/// A model pixel (u, v) maps back to the frame by undoing the resize's
/// scale and padding, then adding the crop's origin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    /// The encoder input the image goes into.
    pub input: String,
    pub width: u32,
    pub height: u32,
    /// 1 (gray) or 3 (RGB).
    pub channels: u32,
    /// Only "nchw" for now.
    pub layout: String,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub crop: Crop,
    pub resize: Resize,
    /// Value of letterbox padding, before normalisation (0 = black).
    #[serde(default)]
    pub pad_value: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    Segmentation,
    Detection,
    Keypoints,
    Diagnosis,
}

/// A task token and what it drives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskToken {
    /// As it appears in the tokenizer, e.g. "[SEG]".
    pub token: String,
    pub drives: TaskKind,
    /// What the task looks for (e.g. "lesion", "fat").
    #[serde(default)]
    pub target: Option<String>,
}

/// The kernels the mask decoder uses before any reasoning has happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultKernels {
    /// Raw little-endian float32 values, `tokens.len() x size`.
    pub file: String,
    pub sha256: String,
    /// The task token of each row, in order.
    pub tokens: Vec<String>,
    /// Parameters per kernel.
    pub size: usize,
}

/// Names of the mask decoder's inputs and outputs by meaning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecoderIo {
    /// Encoder output fed to the decoder (same name on both graphs).
    pub features: String,
    /// The dynamic kernels input, [batch, tasks, size].
    pub kernels: String,
    /// Mask logits output, [batch, tasks, h, w].
    pub mask_logits: String,
    /// Per-task confidence output, [batch, tasks] (optional).
    #[serde(default)]
    pub scores: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    pub file: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct License {
    /// Licence of the weights (SPDX id).
    pub weights: String,
    /// Where the weights come from and how they were made.
    pub provenance: String,
}

/// Which caliper a measurement clause quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaliperAxis {
    /// The longest diameter.
    Long,
    /// The longest diameter perpendicular to it.
    Short,
}

/// A report clause whose value is a caliper measurement, e.g.
/// `long axis : <long> mm .`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasurementClause {
    /// The clause's key as written ("long axis"): a number the model writes
    /// in this clause is replaced by the measurement.
    pub key: String,
    /// The token the model writes where the value belongs ("<long>").
    pub placeholder: String,
    /// The caliper whose length (with its uncertainty) fills it.
    pub caliper: CaliperAxis,
    /// The unit the model writes after the value ("mm"); dropped where no
    /// caliper was measured ("not measured").
    #[serde(default = "millimetres")]
    pub unit: String,
}

fn millimetres() -> String {
    "mm".into()
}

/// The grammar of the reports the language model writes: `key : value .`
/// clauses, words separated by spaces. The reasoning head grounds them
/// (every number from the calipers) and reads their fields with it. Every
/// key is optional; the defaults are umind-nano's reports
/// (onnx/umind/report.py).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportGrammar {
    /// The clause whose value is the finding's class (default "finding").
    pub finding: String,
    /// The clause whose value is the assessment, the report's impression
    /// (default "assessment").
    pub assessment: String,
    /// How a report of no finding begins (default "no focal lesion").
    pub no_finding: String,
    /// Clause keys of descriptor attributes whose name is not the key with
    /// `_` for spaces: key as written -> `[attributes]` name (default
    /// "posterior features" -> "posterior").
    pub attribute_keys: BTreeMap<String, String>,
    /// The clauses filled from the calipers (default: "long axis" with
    /// `<long>` and "short axis" with `<short>`, in mm).
    pub measurements: Vec<MeasurementClause>,
}

impl Default for ReportGrammar {
    fn default() -> Self {
        let clause = |key: &str, placeholder: &str, caliper| MeasurementClause {
            key: key.into(),
            placeholder: placeholder.into(),
            caliper,
            unit: millimetres(),
        };
        Self {
            finding: "finding".into(),
            assessment: "assessment".into(),
            no_finding: "no focal lesion".into(),
            attribute_keys: [("posterior features".to_owned(), "posterior".to_owned())]
                .into_iter()
                .collect(),
            measurements: vec![
                clause("long axis", "<long>", CaliperAxis::Long),
                clause("short axis", "<short>", CaliperAxis::Short),
            ],
        }
    }
}

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
    pub license: License,
    pub graphs: BTreeMap<String, GraphSpec>,
    pub preprocess: Preprocess,
    pub decoder_io: DecoderIo,
    pub tasks: Vec<TaskToken>,
    pub default_kernels: DefaultKernels,
    /// Finding classes the model knows, e.g. ["cyst", "mass"].
    #[serde(default)]
    pub labels: Vec<String>,
    /// Attribute vocabularies, e.g. shape = ["oval", "round", "irregular"].
    #[serde(default)]
    pub attributes: BTreeMap<String, Vec<String>>,
    /// The tokenizer (tokenizers' tokenizer.json), for the reasoning head.
    #[serde(default)]
    pub tokenizer: Option<FileRef>,
    /// The task prompts the language model was taught, e.g. `["[DIAG]",
    /// "[SEG] cyst"]` (default: each `[[tasks]]` token alone; see
    /// [`Manifest::task_prompts`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<String>,
    /// The grammar of its reports (default: umind-nano's).
    #[serde(default)]
    pub report: ReportGrammar,
}

impl Manifest {
    /// The word for what the model finds, as the overlay labels it: the
    /// detection task's target (else the segmentation task's), e.g.
    /// "lesion"; "finding" when the manifest names neither.
    pub fn finding_name(&self) -> &str {
        [TaskKind::Detection, TaskKind::Segmentation]
            .iter()
            .find_map(|kind| {
                self.tasks
                    .iter()
                    .find(|t| t.drives == *kind)
                    .and_then(|t| t.target.as_deref())
            })
            .unwrap_or("finding")
    }

    /// The vision encoder's output that is not the decoder's features: the
    /// language model's image tokens (None when the encoder writes none).
    pub fn image_tokens(&self) -> Option<&TensorSpec> {
        self.graphs
            .get(VISION_ENCODER)?
            .outputs
            .iter()
            .find(|t| t.name != self.decoder_io.features)
    }

    /// How many image tokens prefix the language model's input (the fixed
    /// second dimension of [`Manifest::image_tokens`]).
    pub fn image_token_count(&self) -> Option<usize> {
        match self.image_tokens()?.shape.get(1)? {
            Dim::Fixed(n) => usize::try_from(*n).ok(),
            Dim::Named(_) => None,
        }
    }

    /// The task prompts the model answers: `prompts`, or else each task token.
    pub fn task_prompts(&self) -> Vec<&str> {
        if self.prompts.is_empty() {
            self.tasks.iter().map(|t| t.token.as_str()).collect()
        } else {
            self.prompts.iter().map(String::as_str).collect()
        }
    }

    /// The prompt the reasoning head asks by default: the diagnosis task's
    /// token when the model was taught it alone, else its first task prompt.
    pub fn default_prompt(&self) -> Option<&str> {
        let prompts = self.task_prompts();
        self.tasks
            .iter()
            .find(|t| t.drives == TaskKind::Diagnosis)
            .map(|t| t.token.as_str())
            .filter(|token| prompts.contains(token))
            .or_else(|| prompts.first().copied())
    }

    /// The size of the decoder's position table (`graphs.decoder.max_positions`).
    pub fn max_positions(&self) -> Option<usize> {
        self.graphs.get(DECODER)?.max_positions
    }
}
