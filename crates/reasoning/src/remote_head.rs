//! The head's generation on a KServe v2 server (`[reasoning] backend =
//! "remote"`): one request per keyframe (the image tokens and the prompt
//! in; the report's tokens and the kernels out; the loop runs on the
//! server, serve/umind_head.py), greedy, as the local head decodes.
//!
//! At start the server's model is checked against the contract (names,
//! datatypes, shapes): a wrong model name, a contract mismatch or refused
//! credentials stop the run with what to fix. A server that cannot be
//! reached at start, or that fails later, is left alone for a growing pause
//! ([`Backoff`], from `retry_ms` to 8 s) while the head writes its reports
//! with the local graphs (or says "interpretation unavailable (server)"
//! without a fallback), and is tried again after it.

use std::time::{Duration, Instant};

use sonoflow_remote::{Backoff, Client, Contract, DataType, RemoteError, Tensor, TensorSpec};
use tracing::{info, warn};

use crate::config::RemoteSpec;

/// The longest pause between tries of a failed server.
const RETRY_CAP: Duration = Duration::from_secs(8);

/// What the server generated for one keyframe.
pub(crate) struct RemoteGeneration {
    pub tokens: Vec<i64>,
    /// Protobuf bytes sent and received for it.
    pub bytes: (usize, usize),
    /// `tasks x size` values, when the report wrote every task token.
    pub kernels: Option<Vec<f32>>,
    pub total: Duration,
}

/// Why a keyframe was not generated remotely.
pub(crate) enum NotRemote {
    /// The server failed a moment ago: it is left alone until the pause ends.
    BackingOff,
    /// This request failed (the server is then left alone for a while).
    Failed(RemoteError),
}

pub(crate) struct RemoteHead {
    spec: RemoteSpec,
    contract: Contract,
    client: Option<Client>,
    backoff: Backoff,
    /// Whether the last try failed (to log the return once).
    down: bool,
}

impl RemoteHead {
    /// Connects and checks the served model against the contract of a
    /// model with `image_tokens` x `width` image tokens and kernels of
    /// `kernel_size` values a task. A server that cannot be reached is not
    /// an error here (it is tried again later); anything else is.
    pub fn start(
        spec: RemoteSpec,
        image_tokens: usize,
        width: usize,
        kernel_size: usize,
    ) -> Result<Self, RemoteError> {
        let contract = Contract {
            model: spec.model.clone(),
            inputs: vec![
                TensorSpec::new(
                    "image_embeds",
                    DataType::Fp32,
                    &[1, image_tokens as i64, width as i64],
                ),
                TensorSpec::new("prompt_ids", DataType::Int64, &[1, -1]),
            ],
            outputs: vec![
                TensorSpec::new("tokens", DataType::Int64, &[1, -1]),
                TensorSpec::new("kernels", DataType::Fp32, &[1, -1, kernel_size as i64]),
            ],
        };
        let mut head = Self {
            backoff: Backoff::new(spec.retry, RETRY_CAP),
            spec,
            contract,
            client: None,
            down: false,
        };
        match head.connect() {
            Ok(()) => {
                info!(url = %head.spec.options.url, model = %head.spec.model, "remote reasoning head: the server's model matches")
            }
            Err(e) if e.is_transient() => {
                warn!(
                    "remote reasoning head: {e}; reports are written {} until it answers",
                    head.meanwhile()
                );
                head.down = true;
                head.backoff.failed(Instant::now());
            }
            Err(e) => return Err(e),
        }
        Ok(head)
    }

    pub fn url(&self) -> &str {
        &self.spec.options.url
    }

    pub fn model(&self) -> &str {
        &self.spec.model
    }

    pub fn fallback(&self) -> bool {
        self.spec.fallback
    }

    fn meanwhile(&self) -> &'static str {
        if self.spec.fallback {
            "with the local graphs"
        } else {
            "nowhere (\"interpretation unavailable (server)\")"
        }
    }

    fn connect(&mut self) -> Result<(), RemoteError> {
        let mut client = Client::connect(self.spec.options.clone())?;
        client.check(&self.contract)?;
        self.client = Some(client);
        Ok(())
    }

    /// Generates for one keyframe on the server, unless it is being left alone.
    pub fn generate(
        &mut self,
        image_embeds: &[f32],
        prompt: &[i64],
        max_new: usize,
    ) -> Result<RemoteGeneration, NotRemote> {
        let now = Instant::now();
        if !self.backoff.ready(now) {
            return Err(NotRemote::BackingOff);
        }
        let started = Instant::now();
        let outcome = self.request(image_embeds, prompt, max_new);
        match outcome {
            Ok(generation) => {
                if std::mem::replace(&mut self.down, false) {
                    info!(url = %self.spec.options.url, "remote reasoning head: the server answers again");
                }
                self.backoff.succeeded();
                Ok(RemoteGeneration {
                    total: started.elapsed(),
                    ..generation
                })
            }
            Err(e) => {
                if !std::mem::replace(&mut self.down, true) {
                    warn!(
                        "remote reasoning head: {e}; reports are written {} until it answers",
                        self.meanwhile()
                    );
                }
                self.backoff.failed(Instant::now());
                if !e.is_transient() {
                    // A new connection is checked again before it is used.
                    self.client = None;
                }
                Err(NotRemote::Failed(e))
            }
        }
    }

    fn request(
        &mut self,
        image_embeds: &[f32],
        prompt: &[i64],
        max_new: usize,
    ) -> Result<RemoteGeneration, RemoteError> {
        if self.client.is_none() {
            self.connect()?;
        }
        let Some(client) = self.client.as_mut() else {
            return Err(RemoteError::Runtime("no connection".into()));
        };
        let image = &self.contract.inputs[0].shape;
        let inputs = vec![
            Tensor::fp32("image_embeds", image, image_embeds.to_vec()),
            Tensor::int64("prompt_ids", &[1, prompt.len() as i64], prompt.to_vec()),
            Tensor::int64("max_new_tokens", &[1], vec![max_new as i64]),
        ];
        let outputs = client.infer(&self.spec.model, inputs, &["tokens", "kernels"])?;
        let bad = |name: &str, why: &str| RemoteError::Output {
            url: self.spec.options.url.clone(),
            model: self.spec.model.clone(),
            name: name.to_owned(),
            why: why.to_owned(),
        };
        let tokens = outputs[0]
            .as_i64()
            .ok_or_else(|| bad("tokens", "not INT64"))?
            .to_vec();
        let kernels = outputs[1]
            .as_f32()
            .ok_or_else(|| bad("kernels", "not FP32"))?;
        Ok(RemoteGeneration {
            bytes: client.last_bytes(),
            tokens,
            kernels: (!kernels.is_empty()).then(|| kernels.to_vec()),
            total: Duration::ZERO,
        })
    }
}
