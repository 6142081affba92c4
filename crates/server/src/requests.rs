//! Requests from clients: read (protobuf binary, or its JSON in a text
//! message), checked (size, rate, a kind, a prompt's length), and handed to
//! the [`RequestHandler`] the run gives the server (the reasoning head's
//! side: the vocabulary check and the actions live there). A freeze is the
//! asking client's own: its frame results and video are held until it
//! unfreezes ([`Client::freeze`]); the pipeline and other clients go on.
//! Every request is answered: an ack, or an error naming what was wrong. A
//! bad request never ends the stream.

use std::time::Instant;

use sonoflow_protocol::v1::{self, request::Kind, ErrorCode};
use sonoflow_protocol::{decode_request, request_from_json};

use crate::clients::{Client, RateLimit};

/// The longest prompt accepted, in characters.
pub const MAX_PROMPT_CHARS: usize = 256;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// What the run does with requests. Each method returns the ack's detail
/// or why not; it must not block (it runs on the server's thread).
pub trait RequestHandler: Send + Sync + 'static {
    /// A report on the next frame now (the keyframe reason: request).
    fn analyse_now(&self) -> Result<String, Refusal>;
    /// Checks `prompt` against the model's vocabulary; makes it the task
    /// and analyses now.
    fn prompt(&self, prompt: &str) -> Result<String, Refusal>;
    /// A keyframe now, stored as DICOM once its report is done.
    fn store(&self) -> Result<String, Refusal>;
}

/// The handler of a run without a reasoning head: everything unavailable.
#[derive(Debug, Default)]
pub struct NoHead;

impl NoHead {
    fn refuse() -> Refusal {
        Refusal::new(
            ErrorCode::Unavailable,
            "no reasoning head runs in this pipeline (no [model] with reasoning graphs, or [reasoning] enabled = false)",
        )
    }
}

impl RequestHandler for NoHead {
    fn analyse_now(&self) -> Result<String, Refusal> {
        Err(Self::refuse())
    }
    fn prompt(&self, _: &str) -> Result<String, Refusal> {
        Err(Self::refuse())
    }
    fn store(&self) -> Result<String, Refusal> {
        Err(Self::refuse())
    }
}

/// A client message as it came off the socket.
#[derive(Debug, Clone, Copy)]
pub enum Incoming<'a> {
    Binary(&'a [u8]),
    Text(&'a str),
}

impl Incoming<'_> {
    fn len(&self) -> usize {
        match self {
            Incoming::Binary(b) => b.len(),
            Incoming::Text(t) => t.len(),
        }
    }
}

/// One client's request checks.
#[derive(Debug)]
pub struct RequestGate {
    max_bytes: usize,
    limit: RateLimit,
}

impl RequestGate {
    pub fn new(max_bytes: usize, per_s: f64, burst: u32) -> Self {
        Self {
            max_bytes,
            limit: RateLimit::new(per_s, burst),
        }
    }

    /// Reads, checks and carries out one request of `client` at `now`; the
    /// answer to send.
    pub fn answer(
        &mut self,
        incoming: Incoming<'_>,
        now: Instant,
        handler: &dyn RequestHandler,
        client: &Client,
    ) -> v1::server_message::Kind {
        use v1::server_message::Kind as Out;
        match self.check(incoming, now, handler, client) {
            Ok((id, kind, detail)) => Out::Ack(v1::RequestAck {
                id,
                kind: kind.into(),
                detail,
            }),
            Err((id, refusal)) => Out::Error(v1::RequestError {
                id,
                code: refusal.code as i32,
                message: refusal.message,
            }),
        }
    }

    fn check(
        &mut self,
        incoming: Incoming<'_>,
        now: Instant,
        handler: &dyn RequestHandler,
        client: &Client,
    ) -> Result<(u64, &'static str, String), (u64, Refusal)> {
        if incoming.len() > self.max_bytes {
            return Err((
                0,
                Refusal::new(
                    ErrorCode::TooLarge,
                    format!(
                        "the request is {} bytes; the server takes at most {} (server.max_request_bytes)",
                        incoming.len(),
                        self.max_bytes
                    ),
                ),
            ));
        }
        let request = match incoming {
            Incoming::Binary(bytes) => decode_request(bytes),
            Incoming::Text(text) => request_from_json(text),
        }
        .map_err(|e| (0, Refusal::new(ErrorCode::Malformed, e.to_string())))?;
        let id = request.id;
        if !self.limit.allow(now) {
            return Err((
                id,
                Refusal::new(
                    ErrorCode::RateLimited,
                    "too many requests: wait a moment (server.requests_per_s, server.request_burst)",
                ),
            ));
        }
        let refused = |r: Refusal| (id, r);
        match request.kind {
            None => Err(refused(Refusal::new(
                ErrorCode::Malformed,
                "the request names no kind: set one of analyseNow, prompt, freeze, store",
            ))),
            Some(Kind::AnalyseNow(_)) => handler
                .analyse_now()
                .map(|d| (id, "analyse_now", d))
                .map_err(refused),
            Some(Kind::Prompt(p)) => {
                let text = p.text.trim();
                if text.is_empty() || text.chars().count() > MAX_PROMPT_CHARS {
                    return Err(refused(Refusal::new(
                        ErrorCode::Invalid,
                        format!("a prompt has 1 to {MAX_PROMPT_CHARS} characters"),
                    )));
                }
                handler
                    .prompt(text)
                    .map(|d| (id, "prompt", d))
                    .map_err(refused)
            }
            Some(Kind::Freeze(f)) => Ok((id, "freeze", freeze(client, f.frozen))),
            Some(Kind::Store(_)) => handler.store().map(|d| (id, "store", d)).map_err(refused),
        }
    }
}

/// Freezes or resumes `client`'s frames; the ack's detail.
fn freeze(client: &Client, frozen: bool) -> String {
    let changed = client.freeze(frozen);
    match (frozen, changed) {
        (true, true) => "frozen: frame results and video to this client are held until it unfreezes; reports and stats go on, and the pipeline and other clients are not affected",
        (true, false) => "already frozen",
        (false, true) => "unfrozen: frame results and video come again from the next frame",
        (false, false) => "not frozen",
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonoflow_protocol::Message;
    use v1::server_message::Kind as Out;

    /// Knows the words "[SEG]" and "cyst".
    struct Words;

    impl RequestHandler for Words {
        fn analyse_now(&self) -> Result<String, Refusal> {
            Ok("a keyframe is requested".into())
        }
        fn store(&self) -> Result<String, Refusal> {
            Err(Refusal::new(ErrorCode::Unavailable, "no dicom sink"))
        }
        fn prompt(&self, prompt: &str) -> Result<String, Refusal> {
            let unknown: Vec<&str> = prompt
                .split_whitespace()
                .filter(|w| !["[SEG]", "cyst"].contains(w))
                .collect();
            if unknown.is_empty() {
                Ok(format!("task: {prompt}"))
            } else {
                Err(Refusal::new(
                    ErrorCode::Invalid,
                    format!("not in the vocabulary: {}", unknown.join(", ")),
                ))
            }
        }
    }

    fn client() -> Client {
        let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
        Client::new(1, crate::Transport::Websocket, peer, 4, 100)
    }

    fn request(id: u64, kind: Kind) -> Vec<u8> {
        v1::Request {
            id,
            kind: Some(kind),
        }
        .encode_to_vec()
    }

    fn error(out: Out) -> (u64, ErrorCode, String) {
        match out {
            Out::Error(e) => (e.id, e.code(), e.message),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn each_request_is_acked_or_refused_naming_why() {
        let mut gate = RequestGate::new(4096, 100.0, 100);
        let (now, c) = (Instant::now(), client());
        let analyse = request(1, Kind::AnalyseNow(v1::AnalyseNow {}));
        match gate.answer(Incoming::Binary(&analyse), now, &Words, &c) {
            Out::Ack(a) => assert_eq!((a.id, a.kind.as_str()), (1, "analyse_now")),
            other => panic!("{other:?}"),
        }
        let prompt = |text: &str| {
            request(
                2,
                Kind::Prompt(v1::Prompt {
                    text: text.to_owned(),
                }),
            )
        };
        let good = prompt("[SEG] cyst");
        assert!(matches!(
            gate.answer(Incoming::Binary(&good), now, &Words, &c),
            Out::Ack(_)
        ));
        let bad = prompt("[SEG] banana");
        let (id, code, message) = error(gate.answer(Incoming::Binary(&bad), now, &Words, &c));
        assert_eq!((id, code), (2, ErrorCode::Invalid));
        assert!(message.contains("banana"), "{message}");
        let (_, code, _) = error(gate.answer(Incoming::Binary(&prompt("  ")), now, &Words, &c));
        assert_eq!(code, ErrorCode::Invalid);
        let freeze = |frozen| request(3, Kind::Freeze(v1::Freeze { frozen }));
        match gate.answer(Incoming::Binary(&freeze(true)), now, &Words, &c) {
            Out::Ack(a) => {
                assert_eq!((a.id, a.kind.as_str()), (3, "freeze"));
                assert!(a.detail.starts_with("frozen"), "{}", a.detail);
            }
            other => panic!("{other:?}"),
        }
        assert!(c.is_frozen(), "the asking client is frozen");
        match gate.answer(Incoming::Binary(&freeze(false)), now, &Words, &c) {
            Out::Ack(a) => assert!(a.detail.starts_with("unfrozen"), "{}", a.detail),
            other => panic!("{other:?}"),
        }
        assert!(!c.is_frozen());
        let store = request(5, Kind::Store(v1::Store {}));
        let (id, code, _) = error(gate.answer(Incoming::Binary(&store), now, &Words, &c));
        assert_eq!(
            (id, code),
            (5, ErrorCode::Unavailable),
            "the handler's answer"
        );
        let json = r#"{"id": "4", "analyseNow": {}}"#;
        match gate.answer(Incoming::Text(json), now, &Words, &c) {
            Out::Ack(a) => assert_eq!(a.id, 4),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_huge_and_empty_requests_get_errors() {
        let mut gate = RequestGate::new(64, 100.0, 100);
        let (now, c) = (Instant::now(), client());
        let (_, code, _) =
            error(gate.answer(Incoming::Binary(&[0xff, 0x13, 0x37]), now, &Words, &c));
        assert_eq!(code, ErrorCode::Malformed);
        let (_, code, _) = error(gate.answer(Incoming::Text("{not json"), now, &Words, &c));
        assert_eq!(code, ErrorCode::Malformed);
        let (_, code, message) = error(gate.answer(Incoming::Binary(&[0u8; 65]), now, &Words, &c));
        assert_eq!(code, ErrorCode::TooLarge);
        assert!(message.contains("65 bytes"), "{message}");
        let none = v1::Request { id: 5, kind: None }.encode_to_vec();
        let (id, code, _) = error(gate.answer(Incoming::Binary(&none), now, &Words, &c));
        assert_eq!((id, code), (5, ErrorCode::Malformed));
    }

    #[test]
    fn requests_over_the_rate_are_refused() {
        let mut gate = RequestGate::new(4096, 1.0, 2);
        let (now, c) = (Instant::now(), client());
        let analyse = request(1, Kind::AnalyseNow(v1::AnalyseNow {}));
        let answers: Vec<Out> = (0..3)
            .map(|_| gate.answer(Incoming::Binary(&analyse), now, &Words, &c))
            .collect();
        assert!(matches!(answers[0], Out::Ack(_)) && matches!(answers[1], Out::Ack(_)));
        assert_eq!(error(answers[2].clone()).1, ErrorCode::RateLimited);
        assert!(matches!(
            gate.answer(
                Incoming::Binary(&analyse),
                now + std::time::Duration::from_secs(1),
                &Words,
                &c
            ),
            Out::Ack(_)
        ));
    }
}
