//! The HTTP side: routes, the token check in front of all of them, the
//! WebSocket connection (a writer draining the client's queue, a reader
//! answering requests; protobuf binary, or canonical JSON text with
//! `?format=json`) and the newline-delimited JSON stream.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use sonoflow_protocol::convert::envelope;
use sonoflow_protocol::v1::server_message::Kind;
use tracing::{debug, info_span, warn, Instrument};

use crate::clients::{Client, Transport};
use crate::requests::{Incoming, RequestGate};
use crate::Shared;

/// The largest WebSocket message read at all; past it the connection is
/// closed (1009). Requests over `max_request_bytes` but under this get an
/// error and the stream goes on.
const MAX_WS_MESSAGE: usize = 1 << 20;
/// The longest a close frame may take to leave.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// WebSocket close codes: going away (the run ended), policy (behind).
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_POLICY: u16 = 1008;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let mut app = Router::new()
        .route("/ws", get(websocket))
        .route("/stream.ndjson", get(ndjson))
        .route("/session", get(session));
    app = match &shared.options.static_dir {
        Some(dir) => app.fallback_service(tower_http::services::ServeDir::new(dir)),
        None => crate::viewer::routes(app),
    };
    app.layer(middleware::from_fn_with_state(
        Arc::clone(&shared),
        authorise,
    ))
    .with_state(shared)
}

/// The token a request presents: `?token=` or `Authorization: Bearer`.
fn presented(req: &Request) -> Option<String> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    bearer.or_else(|| {
        Query::<HashMap<String, String>>::try_from_uri(req.uri())
            .ok()
            .and_then(|Query(mut q)| q.remove("token"))
    })
}

/// With a token configured, refuses requests without it. The refusal is
/// logged with the peer and the path, never the token or the query.
async fn authorise(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let Some(token) = &shared.options.token else {
        return next.run(req).await;
    };
    let why = match presented(&req) {
        Some(t) if token.matches(&t) => return next.run(req).await,
        Some(_) => "a wrong token",
        None => "no token",
    };
    shared.counters.refused.fetch_add(1, Ordering::Relaxed);
    warn!(%peer, path = req.uri().path(), "refused a client with {why}");
    (
        StatusCode::UNAUTHORIZED,
        "a token is required: ?token=... or Authorization: Bearer ...\n",
    )
        .into_response()
}

async fn session(State(shared): State<Arc<Shared>>) -> Response {
    match serde_json::to_vec(&shared.session_for(0)) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Unregisters its client when the connection ends, however it ends.
struct Registered {
    shared: Arc<Shared>,
    client: Arc<Client>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.shared.unregister(&self.client);
    }
}

async fn websocket(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let transport = match query.get("format").map(String::as_str) {
        None | Some("protobuf" | "binary") => Transport::Websocket,
        Some("json") => Transport::WebsocketJson,
        Some(other) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("format={other} is not a stream format: use format=json, or leave it out for protobuf binary\n"),
            )
                .into_response()
        }
    };
    upgrade
        .max_message_size(MAX_WS_MESSAGE)
        .max_frame_size(MAX_WS_MESSAGE)
        .on_upgrade(move |socket| async move {
            let client = shared.register(transport, peer);
            let span = info_span!("client", id = client.id, %peer);
            let guard = Registered {
                shared: Arc::clone(&shared),
                client: Arc::clone(&client),
            };
            serve_socket(socket, shared, client).instrument(span).await;
            drop(guard);
        })
}

/// The session first, then the client's queue; requests answered as they come.
async fn serve_socket(socket: WebSocket, shared: Arc<Shared>, client: Arc<Client>) {
    let (mut tx, mut rx) = socket.split();
    let json = client.transport.json();
    let hello = envelope(Kind::Session(shared.session_for(client.id)));
    client.answer(Arc::new(Shared::encode(&hello, json, None)));

    let reader = {
        let (shared, client) = (Arc::clone(&shared), Arc::clone(&client));
        async move {
            let o = &shared.options;
            let mut gate = RequestGate::new(o.max_request_bytes, o.requests_per_s, o.request_burst);
            while let Some(message) = rx.next().await {
                let incoming = match &message {
                    Ok(Message::Binary(b)) => Incoming::Binary(b),
                    Ok(Message::Text(t)) => Incoming::Text(t.as_str()),
                    Ok(Message::Close(_)) => break,
                    Ok(_) => continue,
                    Err(e) => {
                        debug!("the client's socket failed: {e}");
                        break;
                    }
                };
                shared.counters.requests.fetch_add(1, Ordering::Relaxed);
                let answer =
                    gate.answer(incoming, Instant::now(), shared.handler.as_ref(), &client);
                if let Kind::Error(e) = &answer {
                    shared
                        .counters
                        .request_errors
                        .fetch_add(1, Ordering::Relaxed);
                    debug!(
                        code = e.code().as_str_name(),
                        "request refused: {}", e.message
                    );
                }
                client.answer(Arc::new(Shared::encode(&envelope(answer), json, None)));
            }
        }
    };
    let writer = async {
        loop {
            while let Some(m) = client.next() {
                if client.is_closing() {
                    break;
                }
                let message = if json {
                    // Messages queued before the first JSON client came have no JSON.
                    let Some(text) = m.json.as_ref().and_then(|line| {
                        let line = line.slice(..line.len().saturating_sub(1));
                        Utf8Bytes::try_from(line).ok()
                    }) else {
                        continue;
                    };
                    Message::Text(text)
                } else {
                    Message::Binary(m.binary.clone())
                };
                if tx.send(message).await.is_err() {
                    return;
                }
                shared.sent(&client, &m);
            }
            if client.is_closing() {
                let reason = client.reason().unwrap_or_default();
                let code = if reason.starts_with("behind") {
                    CLOSE_POLICY
                } else {
                    CLOSE_GOING_AWAY
                };
                let close = Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                }));
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, tx.send(close)).await;
                return;
            }
            client.wake.notified().await;
        }
    };
    // Either side ending ends the connection; a writer stuck on a client
    // that reads nothing is cut when the client is told to go.
    let kicked = async {
        while !client.is_closing() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(CLOSE_TIMEOUT * 2).await;
    };
    tokio::select! {
        () = reader => {}
        () = writer => {}
        () = kicked => {}
    }
}

/// The stream as newline-delimited canonical JSON: the session, then every
/// message; ends when the server tells the client to go.
async fn ndjson(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    let client = shared.register(Transport::Ndjson, peer);
    let hello = envelope(Kind::Session(shared.session_for(client.id)));
    client.answer(Arc::new(Shared::encode(&hello, true, None)));
    let guard = Registered {
        shared: Arc::clone(&shared),
        client,
    };
    let lines = futures_util::stream::unfold(guard, |guard| async move {
        loop {
            let client = &guard.client;
            if client.is_closing() {
                return None;
            }
            if let Some(m) = client.next() {
                // Messages queued before the first JSON client came have no JSON.
                if let Some(line) = m.json.clone() {
                    guard.shared.sent(client, &m);
                    return Some((Ok::<_, std::io::Error>(line), guard));
                }
                continue;
            }
            client.wake.notified().await;
        }
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response()
}
