//! The reasoning head's language model, run on token ids: image tokens
//! from the vision encoder as a prefix, then the prompt, prefilled in one
//! pass; then one token at a time with the KV cache until the end token, a
//! limit (`max_new` tokens, or the decoder's position table,
//! `graphs.decoder.max_positions`: no position at or past it is ever fed),
//! or the caller stops it. The caller picks each token from the
//! logits (greedy: [`argmax`]; sampling lives with the reasoning head). The hidden state of each task token the model writes
//! ([SEG], [DET], ...) is kept: the kernel projector turns them into the
//! per-frame decoder's kernels. Every output read is checked finite
//! ([`InferenceError::NonFinite`]). Graph roles and tensor names follow the
//! model contract (docs/model-contract.md).
//!
//! Each decode step costs what the graphs cost and little more: the new
//! token's embedding (the embed_tokens output) is fed to the decoder as it
//! is, without a copy; the cache's tensors move from one step's outputs to
//! the next step's inputs (never copied on this side; the decoder graph
//! itself appends to them); the attention mask and position ids are views
//! of tables made once; tensor names are made once. No work on this side
//! grows with the length of the text so far (the graph's own does: it
//! attends over the cache and appends to it).

use std::borrow::Cow;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use ndarray::{Array3, Array4, ArrayD, IxDyn};
use ort::session::SessionInputValue;
use ort::value::{DynValue, Tensor, TensorRef};
use sonoflow_model::{Dim, ModelDir, DECODER, EMBED_TOKENS, KERNEL_PROJECTOR};

use crate::graph::{EngineOptions, GraphSession};
use crate::{InferenceError, Runtime};

/// What one generation produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// Generated token ids, without the end token.
    pub tokens: Vec<i64>,
    /// For each requested task token, its hidden state if the model wrote it.
    pub task_hidden: Vec<Option<Vec<f32>>>,
    pub time_to_first_token: Duration,
    pub total: Duration,
    /// The caller stopped it before the end token or the limit.
    pub stopped: bool,
    /// It was cut short: a limit (`max_new` tokens, or the decoder's
    /// position table was full) ended it before the end token.
    pub truncated: bool,
}

/// The greedy choice: the index of the largest logit.
pub fn argmax(logits: &[f32]) -> i64 {
    logits
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i as i64)
}

/// Runs embed_tokens on `ids` ([1, n]); the output is checked finite.
fn embed_ids(embed: &mut GraphSession, ids: &[i64]) -> Result<DynValue, InferenceError> {
    let err = |e: ort::Error| InferenceError::Run {
        file: embed.file.display().to_string(),
        message: e.to_string(),
    };
    let input = TensorRef::from_array_view(([1, ids.len()], ids)).map_err(err)?;
    let mut out = embed
        .session
        .run(ort::inputs!["input_ids" => input])
        .map_err(err)?;
    let (_, data) = out["inputs_embeds"]
        .try_extract_tensor::<f32>()
        .map_err(err)?;
    crate::finite::ensure_slice(&embed.file, &embed.role, "inputs_embeds", data)?;
    out.remove("inputs_embeds")
        .ok_or_else(|| InferenceError::Tensor {
            file: embed.file.display().to_string(),
            tensor: "inputs_embeds".into(),
            expected: "an embed_tokens output".into(),
            found: "nothing".into(),
        })
}

/// embed_tokens + decoder + kernel_projector sessions of one model.
pub struct Generator {
    pub embed: GraphSession,
    pub decoder: GraphSession,
    pub projector: GraphSession,
    layers: usize,
    heads: usize,
    head_dim: usize,
    width: usize,
    /// The decoder's position table: positions fed are always below it.
    max_positions: usize,
    /// The cache's input and output names, layer by layer (key, value).
    past_names: Vec<String>,
    present_names: Vec<String>,
    /// Ones and 0, 1, 2, ... as long as the position table: the attention
    /// mask and the position ids of every step are views of them.
    ones: Vec<i64>,
    positions: Vec<i64>,
}

fn fixed(dims: &[Dim], i: usize) -> Option<usize> {
    match dims.get(i) {
        Some(Dim::Fixed(n)) if *n > 0 => Some(*n as usize),
        _ => None,
    }
}

impl Generator {
    /// Opens the reasoning graphs of `model` (they must all be present).
    pub fn load(
        runtime: &Runtime,
        model: &ModelDir,
        options: &EngineOptions,
    ) -> Result<Self, InferenceError> {
        let embed = GraphSession::open(runtime, model, EMBED_TOKENS, options)?;
        let decoder = GraphSession::open(runtime, model, DECODER, options)?;
        let projector = GraphSession::open(runtime, model, KERNEL_PROJECTOR, options)?;
        Self::with_sessions(model, embed, decoder, projector)
    }

    /// The generator on sessions already open (`model check` opens every
    /// graph first).
    pub fn with_sessions(
        model: &ModelDir,
        embed: GraphSession,
        decoder: GraphSession,
        projector: GraphSession,
    ) -> Result<Self, InferenceError> {
        let max_positions =
            model
                .manifest
                .max_positions()
                .ok_or_else(|| InferenceError::Tensor {
                    file: decoder.file.display().to_string(),
                    tensor: "position_ids".into(),
                    expected: "the size of the position table in graphs.decoder.max_positions"
                        .into(),
                    found: "none in the manifest".into(),
                })?;
        let past: Vec<_> = decoder
            .spec
            .inputs
            .iter()
            .filter(|t| t.name.starts_with("past_key_values."))
            .collect();
        let layers = past.len() / 2;
        let shape_error = |what: &str| {
            InferenceError::Tensor {
            file: decoder.file.display().to_string(),
            tensor: what.to_owned(),
            expected: "fixed dimensions (past_key_values: [batch, heads, past_sequence, head_dim]; inputs_embeds: [batch, sequence, width])".into(),
            found: "symbolic or missing dimensions".into(),
        }
        };
        let first = past
            .first()
            .ok_or_else(|| shape_error("past_key_values.0.key"))?;
        let heads = fixed(&first.shape, 1).ok_or_else(|| shape_error(&first.name))?;
        let head_dim = fixed(&first.shape, 3).ok_or_else(|| shape_error(&first.name))?;
        let embeds = decoder
            .spec
            .inputs
            .iter()
            .find(|t| t.name == "inputs_embeds")
            .ok_or_else(|| shape_error("inputs_embeds"))?;
        let width = fixed(&embeds.shape, 2).ok_or_else(|| shape_error("inputs_embeds"))?;
        let names = |prefix: &str| -> Vec<String> {
            (0..2 * layers)
                .map(|i| format!("{prefix}.{}.{}", i / 2, ["key", "value"][i % 2]))
                .collect()
        };
        Ok(Self {
            embed,
            decoder,
            projector,
            layers,
            heads,
            head_dim,
            width,
            max_positions,
            past_names: names("past_key_values"),
            present_names: names("present"),
            ones: vec![1; max_positions],
            positions: (0..max_positions as i64).collect(),
        })
    }

    /// The size of the decoder's position table.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// The width of an image token (and of the decoder's hidden state).
    pub fn width(&self) -> usize {
        self.width
    }

    /// Generation after `image_embeds` ([image_tokens x width], row-major)
    /// and `prompt`; `pick` chooses each token from the last position's
    /// logits. Stops at `eos`, after `max_new` tokens, when the decoder's
    /// position table is full (both: `truncated`), or when `on_token`
    /// (which sees each token as it comes) breaks (`stopped`). Image tokens
    /// and prompt that do not fit the position table are refused
    /// ([`InferenceError::Positions`]) before anything runs.
    #[allow(clippy::too_many_arguments)]
    pub fn generate(
        &mut self,
        image_embeds: &[f32],
        prompt: &[i64],
        eos: i64,
        task_ids: &[i64],
        max_new: usize,
        pick: &mut dyn FnMut(&[f32]) -> i64,
        on_token: &mut dyn FnMut(i64) -> ControlFlow<()>,
    ) -> Result<Generation, InferenceError> {
        let started = Instant::now();
        let image_tokens = image_embeds.len() / self.width;
        let (mut tokens, mut hidden) = (Vec::new(), vec![None; task_ids.len()]);
        let (mut first_token, mut stopped, mut truncated) = (None, false, false);
        let file = self.decoder.file.display().to_string();
        let needed = image_tokens + prompt.len();
        if needed > self.max_positions {
            return Err(InferenceError::Positions {
                file,
                image: image_tokens,
                prompt: prompt.len(),
                needed,
                max_positions: self.max_positions,
            });
        }
        if max_new == 0 || needed == 0 {
            return Ok(Generation {
                tokens,
                task_hidden: hidden,
                time_to_first_token: Duration::ZERO,
                total: started.elapsed(),
                stopped,
                truncated: true,
            });
        }
        let err = |e: ort::Error| InferenceError::Run {
            file: file.clone(),
            message: e.to_string(),
        };
        // The prefill: image tokens, then the prompt's embeddings.
        let mut prefill = Vec::with_capacity(needed * self.width);
        prefill.extend_from_slice(&image_embeds[..image_tokens * self.width]);
        {
            let prompt = embed_ids(&mut self.embed, prompt)?;
            let (_, data) = prompt.try_extract_tensor::<f32>().map_err(err)?;
            prefill.extend_from_slice(data);
        }
        let mut embeds = Tensor::from_array(([1, needed, self.width], prefill))
            .map_err(err)?
            .into_dyn();
        // Positions already in the cache; the next step feeds total.. .
        let mut total = 0usize;
        // The cache: empty before the prefill, then each step's presents,
        // moved (not copied) into the next step's inputs.
        let mut past: Vec<DynValue> = (0..2 * self.layers)
            .map(|_| {
                Tensor::from_array(Array4::<f32>::zeros((1, self.heads, 0, self.head_dim)))
                    .map(|t| t.into_dyn())
            })
            .collect::<Result<_, _>>()
            .map_err(err)?;
        loop {
            // The prefill's length, then 1 (never 0: `needed` is not).
            let s = embeds.shape().get(1).map_or(1, |&n| n.max(1) as usize);
            // Both within the tables: total + s <= max_positions (checked above and below).
            let mask = TensorRef::from_array_view(([1, total + s], &self.ones[..total + s]))
                .map_err(err)?;
            let positions = TensorRef::from_array_view(([1, s], &self.positions[total..total + s]))
                .map_err(err)?;
            let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> =
                Vec::with_capacity(3 + past.len());
            inputs.push(("inputs_embeds".into(), embeds.into()));
            inputs.push(("attention_mask".into(), mask.into()));
            inputs.push(("position_ids".into(), positions.into()));
            inputs.extend(
                self.past_names
                    .iter()
                    .zip(past.drain(..))
                    .map(|(name, p)| (Cow::Borrowed(name.as_str()), p.into())),
            );
            let mut out = self.decoder.session.run(inputs).map_err(err)?;
            let next = {
                let (shape, logits) = out["logits"].try_extract_tensor::<f32>().map_err(err)?;
                let vocab = *shape.last().unwrap_or(&1) as usize;
                match logits.get((s - 1) * vocab..s * vocab) {
                    Some(row) => {
                        crate::finite::ensure_slice(
                            &self.decoder.file,
                            &self.decoder.role,
                            "logits",
                            row,
                        )?;
                        pick(row)
                    }
                    None => eos,
                }
            };
            if let Some(k) = tokens
                .last()
                .and_then(|prev| task_ids.iter().position(|t| t == prev))
            {
                let (_, states) = out["hidden_states"]
                    .try_extract_tensor::<f32>()
                    .map_err(err)?;
                let row = &states[(s - 1) * self.width..s * self.width];
                crate::finite::ensure_slice(
                    &self.decoder.file,
                    &self.decoder.role,
                    "hidden_states",
                    row,
                )?;
                hidden[k] = Some(row.to_vec());
            }
            for name in &self.present_names {
                past.push(out.remove(name).ok_or_else(|| InferenceError::Tensor {
                    file: file.clone(),
                    tensor: name.clone(),
                    expected: "a decoder output".into(),
                    found: "nothing".into(),
                })?);
            }
            drop(out);
            total += s;
            first_token.get_or_insert_with(|| started.elapsed());
            if next == eos {
                break;
            }
            tokens.push(next);
            if on_token(next).is_break() {
                stopped = true;
                break;
            }
            // Feeding `next` takes position `total`, which must be in the table.
            if tokens.len() >= max_new || total >= self.max_positions {
                truncated = true;
                break;
            }
            embeds = embed_ids(&mut self.embed, &[next])?;
        }
        Ok(Generation {
            tokens,
            task_hidden: hidden,
            time_to_first_token: first_token.unwrap_or_default(),
            total: started.elapsed(),
            stopped,
            truncated,
        })
    }

    /// The reasoning graphs on real image tokens (`model check`): a short
    /// greedy generation after them (`steps` tokens, the prompt the
    /// vocabulary's first token), then the kernel projector on the hidden
    /// states it wrote, `tasks` rows; every output read is checked finite.
    /// Returns the tokens generated.
    pub fn sample_run(
        &mut self,
        image_embeds: &[f32],
        tasks: usize,
        steps: usize,
    ) -> Result<usize, InferenceError> {
        // Every id counts as a "task token", so each fed token's hidden state is kept.
        let vocab = self
            .decoder
            .spec
            .output("logits")
            .and_then(|t| fixed(&t.shape, 2))
            .unwrap_or(1);
        let ids: Vec<i64> = (0..vocab as i64).collect();
        let generation = self.generate(
            image_embeds,
            &[0],
            -1,
            &ids,
            steps.max(2),
            &mut argmax,
            &mut |_| ControlFlow::Continue(()),
        )?;
        if let Some(state) = generation.task_hidden.into_iter().flatten().last() {
            self.kernels(&vec![state; tasks.max(1)])?;
        }
        Ok(generation.tokens.len())
    }

    /// Image tokens for the language model: runs the vision encoder on a
    /// preprocessed input (`pixels`, the encoder's input shape with batch 1)
    /// and returns its output that is not the decoder's features.
    pub fn image_embeds(
        encoder: &mut GraphSession,
        model: &ModelDir,
        pixels: &[f32],
    ) -> Result<Vec<f32>, InferenceError> {
        let file = encoder.file.display().to_string();
        let err = |e: ort::Error| InferenceError::Run {
            file: file.clone(),
            message: e.to_string(),
        };
        let input = encoder
            .spec
            .inputs
            .first()
            .ok_or_else(|| InferenceError::Tensor {
                file: file.clone(),
                tensor: "pixel input".into(),
                expected: "one input".into(),
                found: "none".into(),
            })?;
        let shape: Vec<usize> = input
            .shape
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => (*n).max(0) as usize,
                Dim::Named(_) => 1,
            })
            .collect();
        let array = ArrayD::from_shape_vec(IxDyn(&shape), pixels.to_vec()).map_err(|e| {
            InferenceError::Run {
                file: file.clone(),
                message: e.to_string(),
            }
        })?;
        let name = input.name.clone();
        let tokens = model
            .manifest
            .image_tokens()
            .map(|t| t.name.clone())
            .ok_or_else(|| InferenceError::Tensor {
                file: file.clone(),
                tensor: "image tokens".into(),
                expected: "an encoder output besides the decoder's features".into(),
                found: "none".into(),
            })?;
        let out = encoder
            .session
            .run(vec![(
                name,
                Tensor::from_array(array).map_err(err)?.into_dyn(),
            )])
            .map_err(err)?;
        let (_, data) = out[tokens.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(err)?;
        crate::finite::ensure_slice(&encoder.file, &encoder.role, &tokens, data)?;
        Ok(data.to_vec())
    }

    /// Kernels [tasks x size] for task hidden states (each `width` long).
    pub fn kernels(&mut self, task_hidden: &[Vec<f32>]) -> Result<Vec<f32>, InferenceError> {
        let file = self.projector.file.display().to_string();
        let err = |e: ort::Error| InferenceError::Run {
            file: file.clone(),
            message: e.to_string(),
        };
        let flat: Vec<f32> = task_hidden.iter().flatten().copied().collect();
        let input =
            Array3::from_shape_vec((1, task_hidden.len(), self.width), flat).map_err(|e| {
                InferenceError::Run {
                    file: file.clone(),
                    message: e.to_string(),
                }
            })?;
        let input_name = self
            .projector
            .spec
            .inputs
            .first()
            .map(|t| t.name.clone())
            .unwrap_or_default();
        let out = self
            .projector
            .session
            .run(vec![(
                input_name,
                Tensor::from_array(input).map_err(err)?.into_dyn(),
            )])
            .map_err(err)?;
        let (_, data) = out[0].try_extract_tensor::<f32>().map_err(err)?;
        let name = self
            .projector
            .spec
            .outputs
            .first()
            .map_or("kernels", |t| t.name.as_str());
        crate::finite::ensure_slice(&self.projector.file, &self.projector.role, name, data)?;
        Ok(data.to_vec())
    }
}
