//! The per-frame half of the model: preprocess, vision encoder, mask
//! decoder with the current kernels. Inputs live in tensors allocated once
//! and refilled in place; the kernels tensor is refilled only when the slot's
//! version changes; outputs are copied once, straight from ONNX Runtime's
//! tensors into pooled buffers (float16 converted on the way), and travel
//! with the frame. Every output the frame path reads is checked finite as it is
//! read or copied (see [`crate::finite`]): NaN masks are a model failure
//! ([`InferenceError::NonFinite`]), never "nothing in view".

use std::sync::Arc;
use std::time::Duration;

use ort::memory::Allocator;
use ort::session::{HasSelectedOutputs, OutputSelector, RunOptions};
use ort::value::Tensor;
use sonoflow_core::findings::ImageRegion;
use sonoflow_core::{BufferPool, Clock, Frame, FrameFormat, ModelGeometry, ModelOutputs, Pooled};
use sonoflow_model::{DType, Dim, GraphSpec, ModelDir, MASK_DECODER, VISION_ENCODER};

use crate::graph::{EngineOptions, GraphSession};
use crate::kernels::KernelSlot;
use crate::preprocess::{fill_input, ResizePlan};
use crate::{InferenceError, Runtime};

/// Time spent in each step of one frame. `encoder` and `decoder` are the
/// graph runs alone; `readout` is everything between and after them that
/// reads their outputs: the finite checks and the one copy of each output
/// into its pooled buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepTimes {
    pub preprocess: Duration,
    pub encoder: Duration,
    pub decoder: Duration,
    pub readout: Duration,
}

impl StepTimes {
    /// The whole per-frame model path.
    pub fn total(&self) -> Duration {
        self.preprocess + self.encoder + self.decoder + self.readout
    }
}

/// A host tensor of the dtype a graph declares. Float16 models get their
/// float32 values converted on the way in and out (models exported in FP16).
enum HostTensor {
    F32(Tensor<f32>),
    F16 {
        tensor: Tensor<half::f16>,
        scratch: Vec<f32>,
    },
}

impl HostTensor {
    fn zeros(dtype: DType, shape: &[usize]) -> Result<Self, ort::Error> {
        let n: usize = shape.iter().product();
        match dtype {
            DType::Float16 => Ok(HostTensor::F16 {
                tensor: Tensor::from_array(ndarray::ArrayD::from_elem(
                    ndarray::IxDyn(shape),
                    half::f16::ZERO,
                ))?,
                scratch: vec![0.0; n],
            }),
            _ => Ok(HostTensor::F32(Tensor::from_array(
                ndarray::ArrayD::<f32>::zeros(ndarray::IxDyn(shape)),
            )?)),
        }
    }

    fn rows(&self) -> i64 {
        match self {
            HostTensor::F32(t) => t.shape()[1],
            HostTensor::F16 { tensor, .. } => tensor.shape()[1],
        }
    }

    /// Lets `fill` write float32 values, then stores them in the tensor's dtype.
    fn fill(&mut self, fill: impl FnOnce(&mut [f32])) {
        match self {
            HostTensor::F32(t) => fill(t.extract_tensor_mut().1),
            HostTensor::F16 { tensor, scratch } => {
                fill(scratch);
                for (d, s) in tensor.extract_tensor_mut().1.iter_mut().zip(scratch.iter()) {
                    *d = half::f16::from_f32(*s);
                }
            }
        }
    }

    fn input(&self) -> ort::session::SessionInputValue<'_> {
        match self {
            HostTensor::F32(t) => t.into(),
            HostTensor::F16 { tensor, .. } => tensor.into(),
        }
    }
}

/// Copies a float32 or float16 tensor value into a buffer from `pool`, as
/// float32 (the one copy an output gets); returns it and how many of its
/// values are not finite. The pool is filled on its first use, when the
/// output's size becomes known, so later frames never allocate.
fn read_pooled(
    value: &ort::value::DynValue,
    pool: &BufferPool<f32>,
) -> Result<(Pooled<f32>, usize), ort::Error> {
    let fill = |len: usize| {
        if pool.counters() == Default::default() {
            pool.prefill(len);
        }
        pool.acquire(len)
    };
    let out = match value.data_type() {
        ort::value::TensorElementType::Float16 => {
            let (_, data) = value.try_extract_tensor::<half::f16>()?;
            let mut out = fill(data.len());
            for (d, s) in out.iter_mut().zip(data) {
                *d = s.to_f32();
            }
            out
        }
        _ => {
            let (_, data) = value.try_extract_tensor::<f32>()?;
            let mut out = fill(data.len());
            out.copy_from_slice(data);
            out
        }
    };
    let bad = crate::finite::count(&out);
    Ok((out, bad))
}

pub struct FrameModel {
    pub encoder: GraphSession,
    pub decoder: GraphSession,
    model: ModelDir,
    input: HostTensor,
    kernels: HostTensor,
    kernels_dtype: DType,
    /// The encoder output holding the language model's image tokens, if any.
    image_tokens: Option<String>,
    kernels_version: Option<u64>,
    slot: Arc<KernelSlot>,
    plan: Option<(FrameFormat, Option<ImageRegion>, ResizePlan)>,
    features_first: bool,
    /// One pool per output kind, so every buffer fits the next request.
    mask_pool: BufferPool<f32>,
    score_pool: BufferPool<f32>,
    token_pool: BufferPool<f32>,
    /// Output tensors allocated once and reused by every run (None: a graph
    /// with an output whose size is only known at run time).
    encoder_run: Option<RunOptions<HasSelectedOutputs>>,
    decoder_run: Option<(usize, RunOptions<HasSelectedOutputs>)>,
    /// Also run the graphs on the left-right mirrored input and average the
    /// mask logits ([`FrameModel::set_mirror_average`]).
    mirror_average: bool,
}

/// What one encoder + decoder pass read from the graphs.
struct Pass {
    tasks: usize,
    height: usize,
    width: usize,
    mask_logits: Pooled<f32>,
    scores: Pooled<f32>,
    image_tokens: Option<Pooled<f32>>,
    times: StepTimes,
}

/// Run options whose outputs are preallocated: "batch" is 1, "tasks" is
/// `tasks`, other symbolic dimensions make preallocation impossible.
fn preallocated(
    spec: &GraphSpec,
    tasks: usize,
) -> Result<Option<RunOptions<HasSelectedOutputs>>, ort::Error> {
    let mut selector = OutputSelector::default();
    for t in &spec.outputs {
        let mut shape = Vec::with_capacity(t.shape.len());
        for d in &t.shape {
            shape.push(match d {
                Dim::Fixed(n) => (*n).max(0) as usize,
                Dim::Named(name) if name == "batch" => 1,
                Dim::Named(name) if name == "tasks" => tasks,
                Dim::Named(_) => return Ok(None),
            });
        }
        selector = match t.dtype {
            DType::Float32 => selector.preallocate(
                t.name.clone(),
                Tensor::<f32>::new(&Allocator::default(), shape)?,
            ),
            DType::Float16 => selector.preallocate(
                t.name.clone(),
                Tensor::<half::f16>::new(&Allocator::default(), shape)?,
            ),
            _ => return Ok(None),
        };
    }
    Ok(Some(RunOptions::new()?.with_outputs(selector)))
}

fn run_error(file: &std::path::Path) -> impl Fn(ort::Error) -> InferenceError + '_ {
    move |e| InferenceError::Run {
        file: file.display().to_string(),
        message: e.to_string(),
    }
}

impl FrameModel {
    /// Opens the encoder and decoder of `model`. Kernels come from `slot`
    /// (shared with the reasoning head) or start as the model's defaults.
    pub fn load(
        runtime: &Runtime,
        model: &ModelDir,
        options: &EngineOptions,
        slot: Option<Arc<KernelSlot>>,
    ) -> Result<Self, InferenceError> {
        let encoder = GraphSession::open(runtime, model, VISION_ENCODER, options)?;
        let decoder = GraphSession::open(runtime, model, MASK_DECODER, options)?;
        Self::with_sessions(model, encoder, decoder, slot)
    }

    /// The per-frame model on sessions already open (`model check` opens
    /// every graph first).
    pub fn with_sessions(
        model: &ModelDir,
        encoder: GraphSession,
        decoder: GraphSession,
        slot: Option<Arc<KernelSlot>>,
    ) -> Result<Self, InferenceError> {
        let m = &model.manifest;
        let p = &m.preprocess;
        if encoder.spec.inputs.len() != 1 {
            return Err(InferenceError::Tensor {
                file: encoder.file.display().to_string(),
                tensor: p.input.clone(),
                expected: "the image as the encoder's only input".into(),
                found: format!("{} inputs", encoder.spec.inputs.len()),
            });
        }
        let decoder_inputs: Vec<&str> = decoder.session.inputs().iter().map(|o| o.name()).collect();
        if decoder_inputs.len() != 2 {
            return Err(InferenceError::Tensor {
                file: decoder.file.display().to_string(),
                tensor: m.decoder_io.kernels.clone(),
                expected: "two decoder inputs: features and kernels".into(),
                found: format!("{decoder_inputs:?}"),
            });
        }
        let features_first = decoder_inputs[0] == m.decoder_io.features;
        let file = encoder.file.clone();
        let input_dtype = encoder.spec.inputs[0].dtype;
        let input = HostTensor::zeros(
            input_dtype,
            &[1, p.channels as usize, p.height as usize, p.width as usize],
        )
        .map_err(run_error(&file))?;
        let k = &m.default_kernels;
        let slot = slot.unwrap_or_else(|| {
            KernelSlot::new(k.tokens.clone(), k.size, model.default_kernels.clone())
        });
        let kernels_dtype = decoder
            .spec
            .input(&m.decoder_io.kernels)
            .map_or(DType::Float32, |t| t.dtype);
        let kernels = HostTensor::zeros(kernels_dtype, &[1, k.tokens.len(), k.size])
            .map_err(run_error(&file))?;
        let encoder_run = preallocated(&encoder.spec, k.tokens.len()).map_err(run_error(&file))?;
        let image_tokens = m.image_tokens().map(|t| t.name.clone());
        Ok(Self {
            encoder,
            decoder,
            model: model.clone(),
            input,
            kernels,
            kernels_dtype,
            image_tokens,
            kernels_version: None,
            slot,
            plan: None,
            features_first,
            mask_pool: BufferPool::new(16),
            score_pool: BufferPool::new(16),
            token_pool: BufferPool::new(16),
            encoder_run,
            decoder_run: None,
            mirror_average: false,
        })
    }

    /// Test-time mirroring: each frame also runs through the encoder and
    /// decoder mirrored left to right, and the mask logits are the mean of
    /// the two passes (the second one's mirrored back), the scores the
    /// sigmoid of that mean's strongest logit. Ultrasound images have no
    /// preferred lateral direction (the probe's beam runs down, shadows fall
    /// down), and the model was trained on random left-right flips, so the
    /// mirrored pass is a second, independent look. It doubles the graphs'
    /// time per frame; the image tokens stay those of the unmirrored pass.
    pub fn set_mirror_average(&mut self, on: bool) {
        self.mirror_average = on;
    }

    /// Whether frames run twice, mirrored ([`FrameModel::set_mirror_average`]).
    pub fn mirror_average(&self) -> bool {
        self.mirror_average
    }

    /// The kernels this model reads each frame.
    pub fn kernel_slot(&self) -> Arc<KernelSlot> {
        Arc::clone(&self.slot)
    }

    /// Copies the current kernels into the kernels tensor if they changed.
    fn refresh_kernels(&mut self) -> Result<u64, InferenceError> {
        let current = self.slot.load();
        if self.kernels_version != Some(current.version) {
            let rows = current.tokens.len();
            if self.kernels.rows() != rows as i64 {
                self.kernels = HostTensor::zeros(self.kernels_dtype, &[1, rows, current.size])
                    .map_err(run_error(&self.decoder.file))?;
            }
            self.kernels
                .fill(|data| data.copy_from_slice(&current.data));
            self.kernels_version = Some(current.version);
        }
        Ok(current.version)
    }

    /// Runs encoder and decoder on the current input tensor and reads
    /// their outputs (mirrored a second time when
    /// [`FrameModel::set_mirror_average`] is on); the step times leave
    /// preprocessing at zero.
    fn run_graphs(
        &mut self,
        clock: &dyn Clock,
    ) -> Result<(ModelOutputs, StepTimes), InferenceError> {
        let kernel_version = self.refresh_kernels()?;
        let tasks = self.kernels.rows().max(0) as usize;
        if self.decoder_run.as_ref().map(|(t, _)| *t) != Some(tasks) {
            self.decoder_run = preallocated(&self.decoder.spec, tasks)
                .map_err(run_error(&self.decoder.file))?
                .map(|options| (tasks, options));
        }
        let mut pass = self.pass(clock, true)?;
        if self.mirror_average {
            let width = self.model.manifest.preprocess.width as usize;
            self.input.fill(|data| mirror_rows(data, width));
            let second = self.pass(clock, false);
            // Back as it was, whatever the second pass did: the floor reruns it.
            self.input.fill(|data| mirror_rows(data, width));
            let second = second?;
            let t0 = clock.now();
            average_mirrored(&mut pass, &second);
            pass.times = StepTimes {
                preprocess: Duration::ZERO,
                encoder: pass.times.encoder + second.times.encoder,
                decoder: pass.times.decoder + second.times.decoder,
                readout: pass.times.readout
                    + second.times.readout
                    + clock.now().saturating_since(t0),
            };
        }
        let outputs = ModelOutputs {
            geometry: ModelGeometry::default(),
            kernel_version,
            tasks: pass.tasks,
            height: pass.height,
            width: pass.width,
            mask_logits: pass.mask_logits,
            scores: pass.scores,
            image_tokens: pass.image_tokens,
        };
        Ok((outputs, pass.times))
    }

    /// One encoder + decoder run on the current input tensor and kernels,
    /// every output it reads checked finite; the image tokens are read only
    /// when `tokens` is set.
    fn pass(&mut self, clock: &dyn Clock, tokens: bool) -> Result<Pass, InferenceError> {
        let io = &self.model.manifest.decoder_io;
        let t0 = clock.now();
        let encoded = match &self.encoder_run {
            Some(options) => self
                .encoder
                .session
                .run_with_options(ort::inputs![self.input.input()], options),
            None => self.encoder.session.run(ort::inputs![self.input.input()]),
        }
        .map_err(run_error(&self.encoder.file))?;
        let t1 = clock.now();
        let features = encoded
            .get(io.features.as_str())
            .ok_or_else(|| InferenceError::Tensor {
                file: self.encoder.file.display().to_string(),
                tensor: io.features.clone(),
                expected: "an encoder output".into(),
                found: "nothing".into(),
            })?;
        // Read in place (the decoder takes them as they are): the decoder's
        // outputs would carry a NaN on, but the encoder must be named.
        let (bad, total) =
            crate::finite::in_value(features).map_err(run_error(&self.encoder.file))?;
        crate::finite::ensure(
            &self.encoder.file,
            &self.encoder.role,
            &io.features,
            bad,
            total,
        )?;
        let image_tokens = match self
            .image_tokens
            .as_deref()
            .filter(|_| tokens)
            .and_then(|name| encoded.get(name).map(|v| (name, v)))
        {
            Some((name, value)) => {
                let (tokens, bad) =
                    read_pooled(value, &self.token_pool).map_err(run_error(&self.encoder.file))?;
                crate::finite::ensure(
                    &self.encoder.file,
                    &self.encoder.role,
                    name,
                    bad,
                    tokens.len(),
                )?;
                Some(tokens)
            }
            None => None,
        };
        let t2 = clock.now();
        let inputs = if self.features_first {
            ort::inputs![features, self.kernels.input()]
        } else {
            ort::inputs![self.kernels.input(), features]
        };
        let decoded = match &self.decoder_run {
            Some((_, options)) => self.decoder.session.run_with_options(inputs, options),
            None => self.decoder.session.run(inputs),
        }
        .map_err(run_error(&self.decoder.file))?;
        let t3 = clock.now();
        let logits_value =
            decoded
                .get(io.mask_logits.as_str())
                .ok_or_else(|| InferenceError::Tensor {
                    file: self.decoder.file.display().to_string(),
                    tensor: io.mask_logits.clone(),
                    expected: "a decoder output".into(),
                    found: "nothing".into(),
                })?;
        let shape = logits_value.shape();
        let [_, tasks, height, width] = shape[..] else {
            return Err(InferenceError::Tensor {
                file: self.decoder.file.display().to_string(),
                tensor: io.mask_logits.clone(),
                expected: "[batch, tasks, height, width]".into(),
                found: format!("{:?}", &shape[..]),
            });
        };
        let (tasks, height, width) = (
            tasks.max(0) as usize,
            height.max(0) as usize,
            width.max(0) as usize,
        );
        let (mask_logits, bad) =
            read_pooled(logits_value, &self.mask_pool).map_err(run_error(&self.decoder.file))?;
        crate::finite::ensure(
            &self.decoder.file,
            &self.decoder.role,
            &io.mask_logits,
            bad,
            mask_logits.len(),
        )?;
        let scores = match io
            .scores
            .as_deref()
            .and_then(|name| decoded.get(name).map(|v| (name, v)))
        {
            Some((name, value)) => {
                let (scores, bad) =
                    read_pooled(value, &self.score_pool).map_err(run_error(&self.decoder.file))?;
                crate::finite::ensure(
                    &self.decoder.file,
                    &self.decoder.role,
                    name,
                    bad,
                    scores.len(),
                )?;
                scores
            }
            None => self.score_pool.acquire(0),
        };
        let t4 = clock.now();
        Ok(Pass {
            tasks,
            height,
            width,
            mask_logits,
            scores,
            image_tokens,
            times: StepTimes {
                preprocess: Duration::ZERO,
                encoder: t1.saturating_since(t0),
                decoder: t3.saturating_since(t2),
                readout: t2.saturating_since(t1) + t4.saturating_since(t3),
            },
        })
    }

    /// Encoder + decoder on the input already in place, outputs read (the
    /// bare-inference floor: no preprocessing); returns the step times.
    pub fn run_preloaded(&mut self, clock: &dyn Clock) -> Result<StepTimes, InferenceError> {
        let (_, times) = self.run_graphs(clock)?;
        Ok(times)
    }

    /// Runs the model `runs` times on a blank input (sessions allocate and
    /// optimise on first use); returns the total time.
    pub fn warm_up(&mut self, runs: usize, clock: &dyn Clock) -> Result<Duration, InferenceError> {
        let start = clock.now();
        for _ in 0..runs {
            self.run_graphs(clock)?;
        }
        Ok(clock.now().saturating_since(start))
    }

    /// Preprocesses `frame` and runs the model on it.
    pub fn infer(
        &mut self,
        frame: &Frame,
        clock: &dyn Clock,
    ) -> Result<(ModelOutputs, StepTimes), InferenceError> {
        let _span = tracing::trace_span!("model", frame = frame.id.0).entered();
        let t0 = clock.now();
        let region = frame.image_region();
        let stale = !matches!(&self.plan, Some((f, r, _)) if *f == frame.format && *r == region);
        if stale {
            let plan = ResizePlan::new(
                &self.model.manifest.preprocess,
                frame.format,
                region.as_ref(),
            );
            self.plan = Some((frame.format, region, plan));
        }
        if let Some((_, _, plan)) = &self.plan {
            let preprocess = &self.model.manifest.preprocess;
            self.input
                .fill(|data| fill_input(frame, plan, preprocess, data));
        }
        let preprocess = clock.now().saturating_since(t0);
        let (mut outputs, times) = self.run_graphs(clock)?;
        if let Some((_, _, plan)) = &self.plan {
            outputs.geometry = plan.geometry();
        }
        Ok((
            outputs,
            StepTimes {
                preprocess,
                ..times
            },
        ))
    }

    /// How model coordinates map back to the last frame's pixels.
    pub fn plan(&self) -> Option<&ResizePlan> {
        self.plan.as_ref().map(|(_, _, p)| p)
    }
}

/// Mirrors each row of `width` values left to right, in place (a [1, C, H,
/// W] tensor's rows).
fn mirror_rows(data: &mut [f32], width: usize) {
    if width == 0 {
        return;
    }
    for row in data.chunks_exact_mut(width) {
        row.reverse();
    }
}

/// `pass`'s mask logits become the mean of its own and `mirrored`'s
/// mirrored back (both [1, tasks, height, width], `mirrored` from the
/// mirrored input); its scores, where the decoder gives one per task, the
/// sigmoid of each task's strongest mean logit.
fn average_mirrored(pass: &mut Pass, mirrored: &Pass) {
    let width = pass.width;
    if width == 0 || pass.mask_logits.len() != mirrored.mask_logits.len() {
        return;
    }
    for (row, other) in pass
        .mask_logits
        .chunks_exact_mut(width)
        .zip(mirrored.mask_logits.chunks_exact(width))
    {
        for (a, b) in row.iter_mut().zip(other.iter().rev()) {
            *a = 0.5 * (*a + *b);
        }
    }
    let plane = pass.height * width;
    if plane == 0 || pass.scores.len() != pass.tasks {
        return;
    }
    for (score, logits) in pass
        .scores
        .iter_mut()
        .zip(pass.mask_logits.chunks_exact(plane))
    {
        let strongest = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        *score = 1.0 / (1.0 + (-strongest).exp());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(tasks: usize, height: usize, width: usize, logits: &[f32]) -> Pass {
        let pool = BufferPool::new(4);
        let mut mask_logits = pool.acquire(logits.len());
        mask_logits.copy_from_slice(logits);
        let mut scores = pool.acquire(tasks);
        scores.fill(0.0);
        Pass {
            tasks,
            height,
            width,
            mask_logits,
            scores,
            image_tokens: None,
            times: StepTimes::default(),
        }
    }

    #[test]
    fn rows_are_mirrored_in_place_and_back() {
        let mut data = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        mirror_rows(&mut data, 3);
        assert_eq!(data, [3.0, 2.0, 1.0, 6.0, 5.0, 4.0]);
        mirror_rows(&mut data, 3);
        assert_eq!(data, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn the_mirrored_pass_is_mirrored_back_before_the_mean() {
        // Two tasks of 2x2. The mirrored pass saw the lesion on the other
        // side: mirrored back it lands on the first pass's cells.
        let mut first = pass(
            2,
            2,
            2,
            &[
                4.0, -4.0, 0.0, -2.0, /* task 2 */ -1.0, -1.0, -1.0, -3.0,
            ],
        );
        let second = pass(
            2,
            2,
            2,
            &[
                -4.0, 2.0, -2.0, 0.0, /* task 2 */ -1.0, -1.0, -5.0, -1.0,
            ],
        );
        average_mirrored(&mut first, &second);
        assert_eq!(
            &first.mask_logits[..],
            &[3.0, -4.0, 0.0, -2.0, -1.0, -1.0, -1.0, -4.0]
        );
        let sigmoid = |x: f32| 1.0 / (1.0 + (-x).exp());
        assert_eq!(&first.scores[..], &[sigmoid(3.0), sigmoid(-1.0)]);
    }
}
