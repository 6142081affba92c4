//! Per-client state: a bounded queue that drops its oldest message when a
//! new one comes to a full queue (the publisher never waits for a client),
//! the client's counters, its freeze, and its request rate limit. Lock-free
//! on the publishing side: one `force_push` per client and message.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;
use crossbeam::queue::ArrayQueue;
use serde::Serialize;
use sonoflow_core::Timestamp;
use tokio::sync::Notify;

/// One message, encoded once for every client.
#[derive(Debug)]
pub struct Encoded {
    /// Protobuf binary (WebSocket clients).
    pub binary: Bytes,
    /// Canonical JSON and a newline (HTTP stream clients), when one listens.
    pub json: Option<Bytes>,
    /// A frame result or video frame: held from a frozen client.
    pub frame: bool,
    /// When its frame was captured (the pipeline's clock), for the capture
    /// to socket latency; frame results only.
    pub captured: Option<Timestamp>,
}

/// How a client reads the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// `GET /ws`: binary protobuf messages.
    Websocket,
    /// `GET /ws?format=json`: canonical JSON text messages (the viewer).
    WebsocketJson,
    Ndjson,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Websocket => "websocket",
            Transport::WebsocketJson => "websocket_json",
            Transport::Ndjson => "ndjson",
        }
    }

    /// Whether it reads canonical JSON rather than protobuf binary.
    pub fn json(self) -> bool {
        matches!(self, Transport::WebsocketJson | Transport::Ndjson)
    }
}

/// What happened to a message offered to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    Queued,
    /// Queued; the oldest waiting message was dropped.
    DroppedOldest,
    /// The client missed too many in a row: it is being disconnected.
    Disconnect,
    /// Not queued: the client froze its frames (counted as held, not dropped).
    Held,
}

/// One connected client.
#[derive(Debug)]
pub struct Client {
    pub id: u64,
    pub transport: Transport,
    pub peer: SocketAddr,
    queue: ArrayQueue<std::sync::Arc<Encoded>>,
    /// Answers to its requests: never dropped for frames (small, bounded).
    answers: ArrayQueue<std::sync::Arc<Encoded>>,
    /// Wakes its writer: a message or an answer waits, or it is disconnected.
    pub wake: Notify,
    sent: AtomicU64,
    dropped: AtomicU64,
    /// Messages dropped since it last took one.
    behind: AtomicU64,
    disconnect_after: u64,
    closing: AtomicBool,
    reason: Mutex<Option<String>>,
    /// It asked for no frames for now (a Freeze request).
    frozen: AtomicBool,
    /// Frame messages not sent to it while frozen.
    held: AtomicU64,
}

impl Client {
    pub fn new(
        id: u64,
        transport: Transport,
        peer: SocketAddr,
        queue: usize,
        disconnect_after: u64,
    ) -> Self {
        Self {
            id,
            transport,
            peer,
            queue: ArrayQueue::new(queue.max(1)),
            answers: ArrayQueue::new(16),
            wake: Notify::new(),
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            behind: AtomicU64::new(0),
            disconnect_after,
            closing: AtomicBool::new(false),
            reason: Mutex::new(None),
            frozen: AtomicBool::new(false),
            held: AtomicU64::new(0),
        }
    }

    /// Freezes (true) or resumes (false) its frame results and video;
    /// whether that changed anything.
    pub fn freeze(&self, frozen: bool) -> bool {
        self.frozen.swap(frozen, Ordering::AcqRel) != frozen
    }

    pub fn is_frozen(&self) -> bool {
        self.frozen.load(Ordering::Acquire)
    }

    /// Offers a stream message: queued, dropping the oldest when full; a
    /// client behind by more than its limit is told to go.
    pub fn offer(&self, message: std::sync::Arc<Encoded>) -> Offer {
        if message.frame && self.is_frozen() {
            self.held.fetch_add(1, Ordering::Relaxed);
            return Offer::Held;
        }
        let offer = match self.queue.force_push(message) {
            None => Offer::Queued,
            Some(_oldest) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                let behind = self.behind.fetch_add(1, Ordering::Relaxed) + 1;
                // Told once: until the server drops it, a closing client's
                // further drops are not new disconnections.
                if behind > self.disconnect_after && !self.is_closing() {
                    self.close(format!(
                        "behind: {behind} messages dropped in a row (more than {}); reconnect when ready",
                        self.disconnect_after
                    ));
                    Offer::Disconnect
                } else {
                    Offer::DroppedOldest
                }
            }
        };
        self.wake.notify_one();
        offer
    }

    /// Queues an answer to one of its requests (dropped only if 16 wait).
    pub fn answer(&self, message: std::sync::Arc<Encoded>) {
        if self.answers.push(message).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.wake.notify_one();
    }

    /// The next message to send: answers first. Taking one means the client
    /// keeps up again.
    pub fn next(&self) -> Option<std::sync::Arc<Encoded>> {
        let m = self.answers.pop().or_else(|| self.queue.pop())?;
        self.behind.store(0, Ordering::Relaxed);
        Some(m)
    }

    pub fn sent_one(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Asks its writer to close the connection with `reason` (first reason wins).
    pub fn close(&self, reason: String) {
        if let Ok(mut r) = self.reason.lock() {
            r.get_or_insert(reason);
        }
        self.closing.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Why it was closed by the server, if it was.
    pub fn reason(&self) -> Option<String> {
        self.reason.lock().ok().and_then(|r| r.clone())
    }

    pub fn report(&self) -> ClientReport {
        ClientReport {
            id: self.id,
            transport: self.transport,
            sent: self.sent.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            held: self.held.load(Ordering::Relaxed),
            closed_by_server: self.reason(),
        }
    }
}

/// One client's line in the run report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientReport {
    pub id: u64,
    pub transport: Transport,
    pub sent: u64,
    /// Messages dropped because it was behind.
    pub dropped: u64,
    /// Frame results and video frames not sent while it was frozen.
    pub held: u64,
    /// Why the server disconnected it (None: it left, or is still there).
    pub closed_by_server: Option<String>,
}

/// A token bucket: `per_s` requests a second on average, `burst` at once.
/// Told the time, so tests replay any timing.
#[derive(Debug)]
pub struct RateLimit {
    per_s: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl RateLimit {
    pub fn new(per_s: f64, burst: u32) -> Self {
        Self {
            per_s,
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: None,
        }
    }

    /// Whether a request at `now` is allowed (and takes its token).
    pub fn allow(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last).as_secs_f64() * self.per_s;
            self.tokens = (self.tokens + refill).min(self.burst);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn message(n: u8) -> Arc<Encoded> {
        Arc::new(Encoded {
            binary: Bytes::from(vec![n]),
            json: None,
            frame: true,
            captured: None,
        })
    }

    fn client(queue: usize, disconnect_after: u64) -> Client {
        let peer = SocketAddr::from(([127, 0, 0, 1], 1));
        Client::new(1, Transport::Websocket, peer, queue, disconnect_after)
    }

    #[test]
    fn a_full_queue_drops_its_oldest_and_counts_it() {
        let c = client(2, 100);
        assert_eq!(c.offer(message(1)), Offer::Queued);
        assert_eq!(c.offer(message(2)), Offer::Queued);
        assert_eq!(c.offer(message(3)), Offer::DroppedOldest);
        assert_eq!(c.report().dropped, 1);
        let got: Vec<u8> = std::iter::from_fn(|| c.next())
            .map(|m| m.binary[0])
            .collect();
        assert_eq!(got, vec![2, 3], "the newest two remain, in order");
    }

    #[test]
    fn answers_go_first_and_a_client_that_stays_behind_is_told_to_go() {
        let c = client(1, 2);
        c.offer(message(1));
        c.answer(message(9));
        assert_eq!(c.next().map(|m| m.binary[0]), Some(9));
        assert_eq!(c.offer(message(2)), Offer::DroppedOldest);
        assert_eq!(c.offer(message(3)), Offer::DroppedOldest);
        assert!(!c.is_closing());
        assert_eq!(c.offer(message(4)), Offer::Disconnect);
        assert!(c.is_closing());
        // Told once: the offers that follow before it is gone are drops.
        assert_eq!(c.offer(message(5)), Offer::DroppedOldest);
        assert_eq!(c.offer(message(6)), Offer::DroppedOldest);
        assert!(
            c.reason().is_some_and(|r| r.contains("behind: 3")),
            "{:?}",
            c.reason()
        );
        // Taking a message resets the run of drops.
        let c = client(1, 2);
        for n in 0..10 {
            c.offer(message(n));
            assert!(c.next().is_some());
        }
        assert!(!c.is_closing());
    }

    #[test]
    fn a_frozen_client_is_sent_no_frames_and_nothing_counts_as_dropped() {
        let c = client(1, 2);
        assert!(c.freeze(true), "frozen now");
        assert!(!c.freeze(true), "already frozen");
        for n in 0..5 {
            assert_eq!(c.offer(message(n)), Offer::Held);
        }
        let report = Arc::new(Encoded {
            binary: Bytes::from(vec![42]),
            json: None,
            frame: false,
            captured: None,
        });
        assert_eq!(c.offer(report), Offer::Queued, "reports still come");
        assert_eq!(c.next().map(|m| m.binary[0]), Some(42));
        assert!(c.next().is_none());
        assert!(!c.is_closing(), "holding frames is not falling behind");
        assert!(c.freeze(false));
        assert_eq!(c.offer(message(7)), Offer::Queued);
        let r = c.report();
        assert_eq!((r.held, r.dropped), (5, 0));
    }

    #[test]
    fn the_rate_limit_allows_a_burst_then_the_average() {
        let mut limit = RateLimit::new(2.0, 3);
        let t0 = Instant::now();
        assert!((0..3).all(|_| limit.allow(t0)), "the burst");
        assert!(!limit.allow(t0), "then no more at once");
        assert!(!limit.allow(t0 + Duration::from_millis(400)));
        assert!(
            limit.allow(t0 + Duration::from_millis(600)),
            "2 per second refill"
        );
        assert!(!limit.allow(t0 + Duration::from_millis(700)));
    }
}
