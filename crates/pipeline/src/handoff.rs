//! A bounded single-producer, single-consumer hand-off between two stage
//! threads. The queue is a lock-free `ArrayQueue`; waiting threads park
//! (no spinning) and are unparked by the other side.
//!
//! Two policies:
//! - [`DropPolicy::DropOldest`] (real time): a full queue evicts its oldest
//!   frame to make room; the producer never waits, every eviction is counted.
//! - [`DropPolicy::Block`] (offline, e.g. a file): a full queue makes the
//!   producer wait, so no frame is lost.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::queue::ArrayQueue;
use crossbeam::sync::{Parker, Unparker};

/// What a full hand-off does with a new item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DropPolicy {
    /// Evict the oldest queued item (bounded latency; for live sources).
    #[default]
    DropOldest,
    /// Wait for room (no loss; for files and offline work).
    Block,
}

struct Shared<T> {
    queue: ArrayQueue<T>,
    policy: DropPolicy,
    dropped: AtomicU64,
    sender_gone: AtomicBool,
    receiver_gone: AtomicBool,
}

/// Counters readable while the hand-off is in use.
#[derive(Clone)]
pub struct HandoffStats {
    shared: Arc<dyn HandoffCounters>,
}

trait HandoffCounters: Send + Sync {
    fn dropped(&self) -> u64;
    fn queued(&self) -> usize;
}

impl<T: Send> HandoffCounters for Shared<T> {
    fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
    fn queued(&self) -> usize {
        self.queue.len()
    }
}

impl HandoffStats {
    /// Items evicted by [`DropPolicy::DropOldest`] so far.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped()
    }

    /// Items waiting now.
    pub fn queued(&self) -> usize {
        self.shared.queued()
    }
}

/// The producing end. Dropping it closes the hand-off: the receiver drains
/// what is queued and then sees [`RecvError::Closed`].
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
    wake_receiver: Unparker,
    parker: Parker,
}

/// The consuming end.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    wake_sender: Unparker,
    parker: Parker,
}

/// What happened to a sent item.
#[derive(Debug)]
pub enum Sent<T> {
    /// Queued without loss.
    Queued,
    /// Queued; the returned oldest item was evicted to make room.
    EvictedOldest(T),
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("the receiving stage has stopped")]
    ReceiverGone,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    #[error("nothing arrived in time")]
    Timeout,
    #[error("the sending stage has stopped and the queue is drained")]
    Closed,
}

/// A hand-off holding at most `depth` items (at least 1).
pub fn handoff<T: Send + 'static>(
    depth: usize,
    policy: DropPolicy,
) -> (Sender<T>, Receiver<T>, HandoffStats) {
    let shared = Arc::new(Shared {
        queue: ArrayQueue::new(depth.max(1)),
        policy,
        dropped: AtomicU64::new(0),
        sender_gone: AtomicBool::new(false),
        receiver_gone: AtomicBool::new(false),
    });
    let sender_parker = Parker::new();
    let receiver_parker = Parker::new();
    let sender = Sender {
        shared: Arc::clone(&shared),
        wake_receiver: receiver_parker.unparker().clone(),
        parker: sender_parker,
    };
    let receiver = Receiver {
        wake_sender: sender.parker.unparker().clone(),
        shared: Arc::clone(&shared),
        parker: receiver_parker,
    };
    let stats = HandoffStats { shared };
    (sender, receiver, stats)
}

impl<T> Sender<T> {
    /// Hands `item` over according to the policy. Never blocks under
    /// [`DropPolicy::DropOldest`].
    pub fn send(&self, item: T) -> Result<Sent<T>, SendError> {
        if self.shared.receiver_gone.load(Ordering::Acquire) {
            return Err(SendError::ReceiverGone);
        }
        let sent = match self.shared.policy {
            DropPolicy::DropOldest => match self.shared.queue.force_push(item) {
                None => Sent::Queued,
                Some(evicted) => {
                    self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                    Sent::EvictedOldest(evicted)
                }
            },
            DropPolicy::Block => {
                let mut item = item;
                loop {
                    match self.shared.queue.push(item) {
                        Ok(()) => break Sent::Queued,
                        Err(back) => {
                            if self.shared.receiver_gone.load(Ordering::Acquire) {
                                return Err(SendError::ReceiverGone);
                            }
                            item = back;
                            // The receiver unparks us after every pop; the
                            // timeout only guards against a vanished receiver.
                            self.parker.park_timeout(Duration::from_millis(50));
                        }
                    }
                }
            }
        };
        self.wake_receiver.unpark();
        Ok(sent)
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.shared.sender_gone.store(true, Ordering::Release);
        self.wake_receiver.unpark();
    }
}

impl<T> Receiver<T> {
    /// The next item, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(item) = self.shared.queue.pop() {
                self.wake_sender.unpark();
                return Ok(item);
            }
            // Checked after an empty pop: a sender that queued its last item
            // and then left is drained before Closed is reported.
            if self.shared.sender_gone.load(Ordering::Acquire) {
                return match self.shared.queue.pop() {
                    Some(item) => Ok(item),
                    None => Err(RecvError::Closed),
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(RecvError::Timeout);
            }
            self.parker.park_timeout(deadline - now);
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.shared.receiver_gone.store(true, Ordering::Release);
        self.wake_sender.unpark();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(1);

    #[test]
    fn drop_oldest_evicts_and_counts() {
        let (tx, rx, stats) = handoff::<u32>(2, DropPolicy::DropOldest);
        assert!(matches!(tx.send(1), Ok(Sent::Queued)));
        assert!(matches!(tx.send(2), Ok(Sent::Queued)));
        assert!(matches!(tx.send(3), Ok(Sent::EvictedOldest(1))));
        assert_eq!(stats.dropped(), 1);
        assert_eq!(rx.recv_timeout(T), Ok(2));
        assert_eq!(rx.recv_timeout(T), Ok(3));
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(1)),
            Err(RecvError::Timeout)
        );
    }

    #[test]
    fn receiver_drains_before_closed() {
        let (tx, rx, _) = handoff::<u32>(4, DropPolicy::DropOldest);
        tx.send(7).expect("receiver alive");
        drop(tx);
        assert_eq!(rx.recv_timeout(T), Ok(7));
        assert_eq!(rx.recv_timeout(T), Err(RecvError::Closed));
    }

    #[test]
    fn block_waits_for_room_and_loses_nothing() {
        let (tx, rx, stats) = handoff::<u32>(1, DropPolicy::Block);
        let producer = std::thread::spawn(move || {
            for i in 0..1000 {
                tx.send(i).expect("receiver alive");
            }
        });
        let mut got = Vec::new();
        while let Ok(v) = rx.recv_timeout(T) {
            got.push(v);
        }
        producer.join().expect("producer thread");
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
        assert_eq!(stats.dropped(), 0);
    }

    #[test]
    fn blocked_sender_is_released_when_receiver_leaves() {
        let (tx, rx, _) = handoff::<u32>(1, DropPolicy::Block);
        tx.send(1).expect("room for one");
        let producer = std::thread::spawn(move || tx.send(2));
        std::thread::sleep(Duration::from_millis(20));
        drop(rx);
        let outcome = producer.join().expect("producer thread");
        assert_eq!(outcome.err(), Some(SendError::ReceiverGone));
    }

    #[test]
    fn wakes_a_parked_receiver_promptly() {
        let (tx, rx, _) = handoff::<u32>(1, DropPolicy::DropOldest);
        let consumer = std::thread::spawn(move || rx.recv_timeout(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        let sent_at = Instant::now();
        tx.send(5).expect("receiver alive");
        assert_eq!(consumer.join().expect("consumer thread"), Ok(5));
        assert!(sent_at.elapsed() < Duration::from_secs(5));
    }
}
