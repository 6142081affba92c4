//! sonoflow-remote: a client of the KServe v2 inference protocol (the Open
//! Inference Protocol: Triton, KServe, Seldon MLServer, OpenVINO Model
//! Server) over gRPC, for graphs served away from the cart.
//!
//! [`Client::connect`] opens a channel (`http://` or `https://` with TLS,
//! the system's roots or a given CA) with a bearer token when configured;
//! [`Client::check`] asks the server for a model's metadata and sets it
//! against the [`Contract`] sonoflow expects (names, datatypes, shapes),
//! failing with what differs; [`Client::infer`] sends tensors with a
//! deadline per request. The API is blocking: it runs its own small tokio
//! runtime, so a caller's thread (the reasoning head's) simply waits. A
//! channel that breaks is re-established by tonic on the next call; the
//! caller decides how long to wait before trying again ([`Backoff`]).

mod backoff;
mod tensor;

use std::path::PathBuf;
use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request};

pub use backoff::Backoff;
pub use tensor::{Tensor, TensorData};

/// The protocol's generated types and client.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("inference");
}

use proto::grpc_inference_service_client::GrpcInferenceServiceClient;

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("{url} is not a server address: {why}. Fix: write http://HOST:PORT, or https://HOST:PORT for TLS")]
    Address { url: String, why: String },
    #[error("the inference server at {url} cannot be reached: {cause}")]
    Unreachable { url: String, cause: String },
    #[error("the inference server at {url} showed a certificate sonoflow does not trust ({message}). Fix: give the CA that signed it as [reasoning.remote] ca (a PEM file), or give the server a certificate for the URL's host name")]
    Certificate { url: String, message: String },
    #[error("the inference server at {url} refused sonoflow's credentials ({message}). Fix: set the bearer token the server expects ([reasoning.remote] token, or SONOFLOW_REMOTE_TOKEN)")]
    Unauthenticated { url: String, message: String },
    #[error("the inference server at {url} has no ready model \"{model}\" ({message}). Fix: load it there (serve/ in the sonoflow tree has the repository), or correct the model name")]
    NoModel {
        url: String,
        model: String,
        message: String,
    },
    #[error("model \"{model}\" on {url} does not match what sonoflow sends and reads: {what}. Fix: serve the graphs of the model the cart runs (serve/), or point the cart at a server that does")]
    Contract {
        url: String,
        model: String,
        what: String,
    },
    #[error("{} on {url} did not answer within {ms} ms (the request's deadline)", subject(.model))]
    Deadline {
        url: String,
        model: String,
        ms: u128,
    },
    #[error("{} on {url} failed: {code:?}: {message}", subject(.model))]
    Server {
        url: String,
        model: String,
        code: Code,
        message: String,
    },
    #[error("model \"{model}\" on {url} answered without output {name}, or with one that cannot be read: {why}")]
    Output {
        url: String,
        model: String,
        name: String,
        why: String,
    },
    #[error("the client's runtime could not start: {0}")]
    Runtime(String),
}

impl RemoteError {
    /// Whether waiting and trying again may help (the server down or slow),
    /// as against a mistake that stays until someone fixes it.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RemoteError::Unreachable { .. }
                | RemoteError::Deadline { .. }
                | RemoteError::Server {
                    code: Code::Unavailable | Code::ResourceExhausted | Code::Aborted,
                    ..
                }
        )
    }
}

/// Where the server is and how to talk to it.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteOptions {
    /// `http://host:port` or `https://host:port`.
    pub url: String,
    /// Sent as `authorization: Bearer TOKEN` with every call.
    pub token: Option<String>,
    /// With https: a PEM CA to trust instead of the system's roots.
    pub ca: Option<PathBuf>,
    /// Each request's deadline.
    pub deadline: Duration,
    /// How long a connection attempt may take.
    pub connect_timeout: Duration,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8081".into(),
            token: None,
            ca: None,
            deadline: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
        }
    }
}

/// The datatype of a tensor, as the protocol names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    Fp32,
    Int64,
}

impl DataType {
    pub fn name(self) -> &'static str {
        match self {
            DataType::Fp32 => "FP32",
            DataType::Int64 => "INT64",
        }
    }
}

/// One tensor a model takes or gives: its name, datatype and shape (-1: any length).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub datatype: DataType,
    pub shape: Vec<i64>,
}

impl TensorSpec {
    pub fn new(name: &str, datatype: DataType, shape: &[i64]) -> Self {
        Self {
            name: name.to_owned(),
            datatype,
            shape: shape.to_vec(),
        }
    }
}

/// What sonoflow expects of a served model.
#[derive(Debug, Clone, PartialEq)]
pub struct Contract {
    pub model: String,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

/// A connection to one KServe v2 server.
pub struct Client {
    runtime: tokio::runtime::Runtime,
    inner: GrpcInferenceServiceClient<Channel>,
    options: RemoteOptions,
    /// The protobuf bytes of the last inference request and response.
    last_bytes: (usize, usize),
}

impl Client {
    /// Opens the channel and checks that the server is live.
    pub fn connect(options: RemoteOptions) -> Result<Self, RemoteError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RemoteError::Runtime(e.to_string()))?;
        let url = options.url.clone();
        let address = |why: String| RemoteError::Address {
            url: url.clone(),
            why,
        };
        let mut endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| address(e.to_string()))?
            .connect_timeout(options.connect_timeout)
            .timeout(options.deadline);
        if url.starts_with("https://") {
            let mut tls = ClientTlsConfig::new().with_native_roots();
            if let Some(ca) = &options.ca {
                let pem = std::fs::read(ca)
                    .map_err(|e| address(format!("the CA file {}: {e}", ca.display())))?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| address(e.to_string()))?;
        } else if !url.starts_with("http://") {
            return Err(address("it names no scheme".into()));
        }
        let channel = {
            let _context = runtime.enter();
            endpoint.connect_lazy()
        };
        let mut client = Self {
            runtime,
            inner: GrpcInferenceServiceClient::new(channel)
                .max_decoding_message_size(256 << 20)
                .max_encoding_message_size(256 << 20),
            options,
            last_bytes: (0, 0),
        };
        let live = client.call(
            "",
            |mut c, req| async move { c.server_live(req).await.map(|r| r.into_inner().live) },
            proto::ServerLiveRequest {},
        )?;
        if !live {
            return Err(RemoteError::Unreachable {
                url: client.options.url.clone(),
                cause: "it answers but says it is not live".into(),
            });
        }
        Ok(client)
    }

    pub fn url(&self) -> &str {
        &self.options.url
    }

    /// The protobuf bytes of the last inference request and its response
    /// (the payload on the wire, before HTTP/2 framing).
    pub fn last_bytes(&self) -> (usize, usize) {
        self.last_bytes
    }

    /// Checks that `contract.model` is ready and that its metadata names the
    /// contract's inputs and outputs with their datatypes and shapes.
    pub fn check(&mut self, contract: &Contract) -> Result<(), RemoteError> {
        let model = contract.model.clone();
        let request = proto::ModelMetadataRequest {
            name: model.clone(),
            version: String::new(),
        };
        let meta = self.call(
            &model,
            |mut c, req| async move { c.model_metadata(req).await.map(|r| r.into_inner()) },
            request,
        )?;
        let mismatch = |what: String| RemoteError::Contract {
            url: self.options.url.clone(),
            model: model.clone(),
            what,
        };
        for (side, wanted, served) in [
            ("input", &contract.inputs, &meta.inputs),
            ("output", &contract.outputs, &meta.outputs),
        ] {
            for spec in wanted {
                let Some(found) = served.iter().find(|t| t.name == spec.name) else {
                    let names: Vec<&str> = served.iter().map(|t| t.name.as_str()).collect();
                    return Err(mismatch(format!(
                        "no {side} named {} (it has {})",
                        spec.name,
                        names.join(", ")
                    )));
                };
                if found.datatype != spec.datatype.name() {
                    return Err(mismatch(format!(
                        "{side} {} is {} on the server, sonoflow's is {}",
                        spec.name,
                        found.datatype,
                        spec.datatype.name()
                    )));
                }
                if !shapes_agree(&spec.shape, &found.shape) {
                    return Err(mismatch(format!(
                        "{side} {} has shape {:?} on the server, sonoflow's is {:?} (-1: any)",
                        spec.name, found.shape, spec.shape
                    )));
                }
            }
        }
        Ok(())
    }

    /// Runs `model` on `inputs` and returns the outputs named `outputs`.
    pub fn infer(
        &mut self,
        model: &str,
        inputs: Vec<Tensor>,
        outputs: &[&str],
    ) -> Result<Vec<Tensor>, RemoteError> {
        let (headers, raw): (Vec<_>, Vec<_>) = inputs.into_iter().map(Tensor::into_input).unzip();
        let request = proto::ModelInferRequest {
            model_name: model.to_owned(),
            inputs: headers,
            raw_input_contents: raw,
            outputs: outputs
                .iter()
                .map(
                    |name| proto::model_infer_request::InferRequestedOutputTensor {
                        name: (*name).to_owned(),
                        ..Default::default()
                    },
                )
                .collect(),
            ..Default::default()
        };
        let sent = prost::Message::encoded_len(&request);
        let response = self.call(
            model,
            |mut c, req| async move { c.model_infer(req).await.map(|r| r.into_inner()) },
            request,
        )?;
        self.last_bytes = (sent, prost::Message::encoded_len(&response));
        outputs
            .iter()
            .map(|name| {
                Tensor::from_response(&response, name).map_err(|why| RemoteError::Output {
                    url: self.options.url.clone(),
                    model: model.to_owned(),
                    name: (*name).to_owned(),
                    why,
                })
            })
            .collect()
    }

    /// One call with the token and the deadline; errors named for `model`.
    fn call<M, T, F, Fut>(&mut self, model: &str, f: F, message: M) -> Result<T, RemoteError>
    where
        F: FnOnce(GrpcInferenceServiceClient<Channel>, Request<M>) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let mut request = Request::new(message);
        request.set_timeout(self.options.deadline);
        if let Some(token) = &self.options.token {
            let value = MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| {
                RemoteError::Unauthenticated {
                    url: self.options.url.clone(),
                    message: "the token holds characters a header cannot carry".into(),
                }
            })?;
            request.metadata_mut().insert("authorization", value);
        }
        let client = self.inner.clone();
        let deadline = self.options.deadline;
        let outcome = self
            .runtime
            .block_on(async { tokio::time::timeout(deadline, f(client, request)).await });
        let url = self.options.url.clone();
        match outcome {
            Err(_) => Err(RemoteError::Deadline {
                url,
                model: model.to_owned(),
                ms: deadline.as_millis(),
            }),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(status)) => Err(classify(url, model, status, deadline)),
        }
    }
}

/// What a call was for, in an error: a model, or the server itself (its
/// liveness call names no model).
fn subject(model: &str) -> String {
    if model.is_empty() {
        "the server".to_owned()
    } else {
        format!("model \"{model}\"")
    }
}

/// Whether a status carries an HTTP refusal of credentials from something
/// between the cart and the server that does not speak gRPC errors (a proxy
/// answering 401 or 403 with a page: tonic then fails to read the body and
/// names the HTTP status in its message).
fn http_refusal(message: &str) -> bool {
    ["status: 401", "status: 403"]
        .iter()
        .any(|s| message.contains(s))
}

/// A failed call's status as what it means for sonoflow.
fn classify(url: String, model: &str, status: tonic::Status, deadline: Duration) -> RemoteError {
    let message = status.message().to_owned();
    match status.code() {
        // rustls: "invalid peer certificate: UnknownIssuer" (or NotValidForName, Expired...):
        // a setting to fix, not an outage to wait out.
        _ if message.contains("peer certificate") => RemoteError::Certificate { url, message },
        Code::Unavailable => RemoteError::Unreachable {
            url,
            cause: message,
        },
        Code::Unknown if message.contains("transport") || message.contains("connect") => {
            RemoteError::Unreachable {
                url,
                cause: message,
            }
        }
        Code::Unauthenticated | Code::PermissionDenied => {
            RemoteError::Unauthenticated { url, message }
        }
        _ if http_refusal(&message) => RemoteError::Unauthenticated { url, message },
        Code::NotFound => RemoteError::NoModel {
            url,
            model: model.to_owned(),
            message,
        },
        Code::DeadlineExceeded | Code::Cancelled => RemoteError::Deadline {
            url,
            model: model.to_owned(),
            ms: deadline.as_millis(),
        },
        code => {
            // Servers say "model not found" in other codes too (MLServer: 400/INVALID_ARGUMENT).
            let lower = message.to_lowercase();
            if lower.contains("not found")
                || lower.contains("not ready")
                || lower.contains("unknown model")
            {
                RemoteError::NoModel {
                    url,
                    model: model.to_owned(),
                    message,
                }
            } else {
                RemoteError::Server {
                    url,
                    model: model.to_owned(),
                    code,
                    message,
                }
            }
        }
    }
}

/// Whether a served shape fits the expected one (-1 on either side: any length).
fn shapes_agree(expected: &[i64], served: &[i64]) -> bool {
    expected.len() == served.len()
        && expected
            .iter()
            .zip(served)
            .all(|(e, s)| *e == -1 || *s == -1 || e == s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_dimensions_agree_with_any_length() {
        assert!(shapes_agree(&[1, -1, 128], &[-1, 64, 128]));
        assert!(!shapes_agree(&[1, 64, 128], &[1, 64, 256]));
        assert!(!shapes_agree(&[1, 64], &[1, 64, 1]));
    }

    #[test]
    fn a_proxy_refusing_credentials_over_plain_http_reads_as_a_refused_token() {
        let status = tonic::Status::internal(
            "protocol error: received message with invalid compression flag: 60 (valid flags are 0 and 1) \
             while receiving response with status: 401 Unauthorized",
        );
        let err = classify("https://x:1".into(), "", status, Duration::from_secs(1));
        assert!(matches!(err, RemoteError::Unauthenticated { .. }), "{err}");
        assert!(err.to_string().contains("Fix:"), "{err}");
        let untrusted = classify(
            "https://x:1".into(),
            "",
            tonic::Status::unavailable("invalid peer certificate: UnknownIssuer"),
            Duration::from_secs(1),
        );
        assert!(
            matches!(untrusted, RemoteError::Certificate { .. }) && !untrusted.is_transient(),
            "{untrusted}"
        );
        let other = classify(
            "https://x:1".into(),
            "",
            tonic::Status::internal("out of memory"),
            Duration::from_secs(1),
        );
        assert_eq!(
            other.to_string(),
            "the server on https://x:1 failed: Internal: out of memory"
        );
    }

    #[test]
    fn an_address_without_a_scheme_is_refused_with_the_fix() {
        let err = Client::connect(RemoteOptions {
            url: "gpu-server:8081".into(),
            ..RemoteOptions::default()
        })
        .err()
        .expect("refused");
        assert!(err.to_string().contains("http://HOST:PORT"), "{err}");
    }

    #[test]
    fn a_closed_port_is_unreachable_and_transient() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let err = Client::connect(RemoteOptions {
            url: format!("http://127.0.0.1:{port}"),
            deadline: Duration::from_secs(2),
            ..RemoteOptions::default()
        })
        .err()
        .expect("nothing listens");
        assert!(err.is_transient(), "{err}");
        assert!(err.to_string().contains("cannot be reached"), "{err}");
    }
}
