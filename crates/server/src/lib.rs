//! sonoflow-server: the results server. It streams `sonoflow.v1`
//! [`ServerMessage`](sonoflow_protocol::v1::ServerMessage)s (frame results,
//! reports, stats) to WebSocket clients as binary protobuf (`GET /ws`) and to
//! HTTP clients as newline-delimited canonical JSON (`GET /stream.ndjson`,
//! for `curl`) or as canonical JSON text messages (`GET /ws?format=json`,
//! what the viewer reads); answers `GET /session`; serves the browser viewer
//! built into the binary at `/` (crates/server/viewer/, or a folder of your
//! own: `static_dir`); encodes frames as JPEG for it ([`video`]); and takes
//! [`requests`] back over the socket.
//!
//! Start at [`Server::start`]; the pipeline side holds a [`Publisher`].
//! The server runs its own small tokio runtime on its own thread; the
//! pipeline never waits for it: the run hands results over through a
//! non-blocking bounded channel (see sonoflow-runtime), and here each
//! client has a bounded queue that drops its oldest message ([`clients`]),
//! counted per client; a client that stays behind is disconnected with a
//! reason. Off loopback, every client presents the token.

pub mod clients;
pub mod config;
pub mod requests;
mod routes;
pub mod video;
mod viewer;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use serde::Serialize;
use sonoflow_core::Timestamp;
use sonoflow_protocol::v1::{self, server_message::Kind};
use tracing::{info, warn};

pub use clients::{Client, ClientReport, Encoded, Offer, Transport};
pub use config::{ServerConfig, ServerOptions, Token, VideoOptions};
pub use requests::{NoHead, Refusal, RequestHandler};
pub use video::{VideoEncoder, VideoError};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] sonoflow_core::ConfigIssue),
    #[error("could not start the server's runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot listen on {address}: {cause}. Fix: pick a free port (or port 0 for any), or stop what holds it")]
    Bind {
        address: SocketAddr,
        cause: std::io::Error,
    },
}

/// Counters of the whole server.
#[derive(Debug, Default)]
struct Counters {
    connected: AtomicU64,
    refused: AtomicU64,
    requests: AtomicU64,
    request_errors: AtomicU64,
    messages: AtomicU64,
    frames: AtomicU64,
    frame_bytes: AtomicU64,
    frame_bytes_max: AtomicU64,
    disconnected_behind: AtomicU64,
    video_frames: AtomicU64,
    video_bytes: AtomicU64,
}

/// Told each time a frame result has been written to a client's socket,
/// with the frame's capture time on the pipeline's clock: the run measures
/// capture to socket latency with it (one sample per frame and client).
pub trait FrameSent: Send + Sync + 'static {
    fn frame_sent(&self, captured: Timestamp);
}

/// What the server and its connections share.
struct Shared {
    options: ServerOptions,
    session: v1::SessionInfo,
    handler: Arc<dyn RequestHandler>,
    clients: Mutex<Vec<Arc<Client>>>,
    gone: Mutex<Vec<ClientReport>>,
    next_id: AtomicU64,
    counters: Counters,
    frame_sent: OnceLock<Arc<dyn FrameSent>>,
}

impl Shared {
    fn register(&self, transport: Transport, peer: SocketAddr) -> Arc<Client> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let client = Arc::new(Client::new(
            id,
            transport,
            peer,
            self.options.queue,
            self.options.disconnect_after_drops,
        ));
        if let Ok(mut clients) = self.clients.lock() {
            clients.push(Arc::clone(&client));
        }
        self.counters.connected.fetch_add(1, Ordering::Relaxed);
        info!(client = id, %peer, transport = transport.name(), "client connected");
        client
    }

    fn unregister(&self, client: &Client) {
        if let Ok(mut clients) = self.clients.lock() {
            clients.retain(|c| c.id != client.id);
        }
        let report = client.report();
        info!(
            client = client.id,
            sent = report.sent,
            dropped = report.dropped,
            reason = report.closed_by_server.as_deref().unwrap_or("left"),
            "client disconnected"
        );
        if let Ok(mut gone) = self.gone.lock() {
            gone.push(report);
        }
    }

    fn session_for(&self, client_id: u64) -> v1::SessionInfo {
        v1::SessionInfo {
            client_id,
            ..self.session.clone()
        }
    }

    /// Encodes `message` (and its JSON when `json`); `captured`: its
    /// frame's capture time, for a frame result.
    fn encode(message: &v1::ServerMessage, json: bool, captured: Option<Timestamp>) -> Encoded {
        Encoded {
            binary: Bytes::from(message.encode_to_vec()),
            json: json.then(|| {
                let mut line = serde_json::to_vec(message).unwrap_or_default();
                line.push(b'\n');
                Bytes::from(line)
            }),
            frame: matches!(message.kind, Some(Kind::Frame(_) | Kind::Video(_))),
            captured,
        }
    }

    /// A message has been written to a client: a frame result's capture to
    /// socket latency is recorded.
    fn sent(&self, client: &Client, message: &Encoded) {
        client.sent_one();
        if let (Some(captured), Some(observer)) = (message.captured, self.frame_sent.get()) {
            observer.frame_sent(captured);
        }
    }

    fn snapshot(&self) -> Vec<Arc<Client>> {
        self.clients.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

/// The pipeline side's handle: publishes messages to every client.
/// Cheap to clone; never waits for a client.
#[derive(Clone)]
pub struct Publisher {
    shared: Arc<Shared>,
}

impl Publisher {
    /// Encodes `message` once and offers it to every client.
    pub fn publish(&self, message: &v1::ServerMessage) {
        self.offer(message, None);
    }

    /// Publishes a frame result whose frame was captured at `captured`
    /// (the pipeline's clock): its capture to socket latency is measured.
    pub fn publish_frame(&self, message: &v1::ServerMessage, captured: Timestamp) {
        self.offer(message, Some(captured));
    }

    fn offer(&self, message: &v1::ServerMessage, captured: Option<Timestamp>) {
        let shared = &self.shared;
        let c = &shared.counters;
        c.messages.fetch_add(1, Ordering::Relaxed);
        match &message.kind {
            Some(Kind::Frame(_)) => {
                let len = message.encoded_len() as u64;
                c.frames.fetch_add(1, Ordering::Relaxed);
                c.frame_bytes.fetch_add(len, Ordering::Relaxed);
                c.frame_bytes_max.fetch_max(len, Ordering::Relaxed);
            }
            Some(Kind::Video(_)) => {
                c.video_frames.fetch_add(1, Ordering::Relaxed);
                c.video_bytes
                    .fetch_add(message.encoded_len() as u64, Ordering::Relaxed);
            }
            _ => {}
        }
        let clients = shared.snapshot();
        if clients.is_empty() {
            return;
        }
        let json = clients.iter().any(|c| c.transport.json());
        let encoded = Arc::new(Shared::encode(message, json, captured));
        for client in &clients {
            if client.offer(Arc::clone(&encoded)) == Offer::Disconnect {
                c.disconnected_behind.fetch_add(1, Ordering::Relaxed);
                warn!(client = client.id, peer = %client.peer, "disconnecting a client that stays behind");
            }
        }
    }

    /// Publishes `stats` with every client's counters filled in.
    pub fn publish_stats(&self, mut stats: v1::Stats) {
        stats.clients = self
            .shared
            .snapshot()
            .iter()
            .map(|c| {
                let r = c.report();
                v1::ClientStats {
                    client_id: r.id,
                    transport: r.transport.name().into(),
                    sent: r.sent,
                    dropped: r.dropped,
                }
            })
            .collect();
        self.publish(&sonoflow_protocol::convert::envelope(Kind::Stats(stats)));
    }

    /// Whether frame results should carry masks (`[server] masks`).
    pub fn masks(&self) -> bool {
        self.shared.options.masks
    }

    /// Whether, and how, frames go out as JPEG video (`[server] video`).
    pub fn video(&self) -> Option<VideoOptions> {
        self.shared.options.video
    }

    /// Clients connected now.
    pub fn clients(&self) -> usize {
        self.shared.clients.lock().map_or(0, |c| c.len())
    }
}

/// The `server` section of the run report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerReport {
    pub address: String,
    /// Connections accepted, and refused (wrong or missing token).
    pub clients: u64,
    pub refused: u64,
    pub requests: u64,
    pub request_errors: u64,
    pub messages: u64,
    pub frames: u64,
    /// Encoded size of a frame result (protobuf binary), mean and max.
    pub frame_bytes_mean: f64,
    pub frame_bytes_max: u64,
    /// Clients disconnected for staying behind.
    pub disconnected_behind: u64,
    /// Video frames sent (JPEG) and their mean encoded size.
    pub video_frames: u64,
    pub video_bytes_mean: f64,
    /// Every client of the run, with its sent and dropped messages.
    pub per_client: Vec<ClientReport>,
}

/// The running server.
pub struct Server {
    shared: Arc<Shared>,
    address: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Arc<tokio::sync::Notify>,
}

impl Server {
    /// Listens on `options.address` (refused off loopback without a token)
    /// and serves until [`Server::finish`]. `session`: what clients are told
    /// first; `handler`: what requests do.
    pub fn start(
        options: ServerOptions,
        session: v1::SessionInfo,
        handler: Arc<dyn RequestHandler>,
    ) -> Result<Self, ServerError> {
        options.check_token("server.token")?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .on_thread_start(lower_priority)
            .thread_name("sonoflow-server")
            .enable_all()
            .build()
            .map_err(ServerError::Runtime)?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(options.address))
            .map_err(|cause| ServerError::Bind {
                address: options.address,
                cause,
            })?;
        let address = listener.local_addr().map_err(|cause| ServerError::Bind {
            address: options.address,
            cause,
        })?;
        let shared = Arc::new(Shared {
            options,
            session,
            handler,
            clients: Mutex::new(Vec::new()),
            gone: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
            counters: Counters::default(),
            frame_sent: OnceLock::new(),
        });
        let stop = Arc::new(tokio::sync::Notify::new());
        let app = routes::router(Arc::clone(&shared));
        let stopped = Arc::clone(&stop);
        runtime.spawn(async move {
            let serve = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move { stopped.notified().await });
            if let Err(e) = serve.await {
                warn!("the results server stopped: {e}");
            }
        });
        info!(%address, token = shared.options.token.is_some(), "results server listening (ws: /ws, ndjson: /stream.ndjson, /session)");
        Ok(Self {
            shared,
            address,
            runtime: Some(runtime),
            stop,
        })
    }

    /// The address it listens on (the port chosen, with port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Tells `observer` of every frame result written to a client (set once).
    pub fn observe_frames_sent(&self, observer: Arc<dyn FrameSent>) {
        if self.shared.frame_sent.set(observer).is_err() {
            warn!("frames sent are already observed: the second observer is ignored");
        }
    }

    pub fn publisher(&self) -> Publisher {
        Publisher {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Closes every connection with `reason`, stops, and reports.
    pub fn finish(mut self, reason: &str) -> ServerReport {
        for client in self.shared.snapshot() {
            client.close(reason.to_owned());
        }
        // Writers send their close frames; then the runtime goes.
        let deadline = std::time::Instant::now() + Duration::from_millis(500);
        while self.publisher().clients() > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop.notify_one();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_millis(500));
        }
        self.report()
    }

    pub fn report(&self) -> ServerReport {
        let c = &self.shared.counters;
        let frames = c.frames.load(Ordering::Relaxed);
        let mut per_client = self
            .shared
            .gone
            .lock()
            .map(|g| g.clone())
            .unwrap_or_default();
        per_client.extend(self.shared.snapshot().iter().map(|c| c.report()));
        per_client.sort_by_key(|c| c.id);
        ServerReport {
            address: self.address.to_string(),
            clients: c.connected.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            request_errors: c.request_errors.load(Ordering::Relaxed),
            messages: c.messages.load(Ordering::Relaxed),
            frames,
            frame_bytes_mean: if frames > 0 {
                c.frame_bytes.load(Ordering::Relaxed) as f64 / frames as f64
            } else {
                0.0
            },
            frame_bytes_max: c.frame_bytes_max.load(Ordering::Relaxed),
            disconnected_behind: c.disconnected_behind.load(Ordering::Relaxed),
            video_frames: c.video_frames.load(Ordering::Relaxed),
            video_bytes_mean: {
                let n = c.video_frames.load(Ordering::Relaxed);
                if n > 0 {
                    c.video_bytes.load(Ordering::Relaxed) as f64 / n as f64
                } else {
                    0.0
                }
            },
            per_client,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.notify_one();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Scheduling niceness of the server's threads and the results stream's
/// publisher and video encoder: on a small machine the frame path wins the
/// CPU when clients and the pipeline both want it.
pub const SERVER_NICE: i32 = 5;

/// Lowers the calling thread to [`SERVER_NICE`] (logged when it cannot).
pub fn lower_priority() {
    if let Err(e) = sonoflow_core::priority::lower_this_thread(SERVER_NICE) {
        warn!("could not lower a results-server thread to nice {SERVER_NICE}: {e}");
    }
}
