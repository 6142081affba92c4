//! Reusable buffers (pixels, model outputs). A [`Pooled`] buffer returns its
//! memory to the pool when dropped, so steady-state frames allocate nothing:
//! the pool only allocates while it warms up or when the size grows (a caps
//! change).

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam::queue::ArrayQueue;

/// A bounded, lock-free pool of buffers of `T`.
pub struct BufferPool<T> {
    inner: Arc<PoolInner<T>>,
}

impl<T> Clone for BufferPool<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// The pool of pixel buffers.
pub type FramePool = BufferPool<u8>;
/// Pixels borrowed from a [`FramePool`].
pub type PooledBuffer = Pooled<u8>;

struct PoolInner<T> {
    free: ArrayQueue<Vec<T>>,
    fresh: AtomicU64,
    reused: AtomicU64,
}

/// How the pool has served requests so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct PoolCounters {
    /// Buffers newly allocated (or grown) because none free was big enough.
    pub fresh: u64,
    /// Buffers served from the free list without allocating.
    pub reused: u64,
}

impl<T: Copy + Default> BufferPool<T> {
    /// A pool that keeps at most `capacity` free buffers (at least 1).
    /// Set it to the number of frames that can be in flight at once.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(PoolInner {
                free: ArrayQueue::new(capacity.max(1)),
                fresh: AtomicU64::new(0),
                reused: AtomicU64::new(0),
            }),
        }
    }

    /// A buffer of exactly `len` bytes. Its contents are unspecified (a
    /// previous frame's pixels); callers overwrite all of it.
    pub fn acquire(&self, len: usize) -> Pooled<T> {
        let buf = match self.inner.free.pop() {
            Some(mut buf) if buf.capacity() >= len => {
                self.inner.reused.fetch_add(1, Ordering::Relaxed);
                buf.resize(len, T::default());
                buf
            }
            _ => {
                self.inner.fresh.fetch_add(1, Ordering::Relaxed);
                vec![T::default(); len]
            }
        };
        Pooled {
            buf,
            pool: Arc::clone(&self.inner),
        }
    }

    /// Fills the free list to capacity with buffers of `len`, so that however
    /// many buffers are later in flight (up to the capacity) none has to be
    /// allocated. Call it when the buffer size becomes known (caps, model output).
    pub fn prefill(&self, len: usize) {
        while !self.inner.free.is_full() {
            if self.inner.free.push(vec![T::default(); len]).is_err() {
                break;
            }
        }
    }

    pub fn counters(&self) -> PoolCounters {
        PoolCounters {
            fresh: self.inner.fresh.load(Ordering::Relaxed),
            reused: self.inner.reused.load(Ordering::Relaxed),
        }
    }

    /// Free buffers waiting to be reused.
    pub fn idle(&self) -> usize {
        self.inner.free.len()
    }
}

/// A buffer borrowed from a [`BufferPool`]; goes back to the pool on drop.
pub struct Pooled<T> {
    buf: Vec<T>,
    pool: Arc<PoolInner<T>>,
}

impl<T> std::fmt::Debug for Pooled<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pooled")
            .field("len", &self.buf.len())
            .finish()
    }
}

impl<T> Deref for Pooled<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.buf
    }
}

impl<T> DerefMut for Pooled<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.buf
    }
}

impl<T> Drop for Pooled<T> {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        // A full free list means more buffers were in flight than the pool
        // keeps; this one is simply freed.
        let _ = self.pool.free.push(buf);
    }
}

/// An object that can be emptied for reuse, keeping its allocations
/// (cleared `Vec`s keep their capacity).
pub trait Reusable: Default + Send {
    fn reset(&mut self);
}

/// A bounded, lock-free pool of reusable objects (per-frame findings):
/// like [`BufferPool`] for structures rather than flat buffers.
pub struct Recycler<T> {
    free: Arc<ArrayQueue<Box<T>>>,
}

impl<T> Clone for Recycler<T> {
    fn clone(&self) -> Self {
        Self {
            free: Arc::clone(&self.free),
        }
    }
}

impl<T: Reusable> Recycler<T> {
    /// A pool that keeps at most `capacity` free objects (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            free: Arc::new(ArrayQueue::new(capacity.max(1))),
        }
    }

    /// Fills the free list to capacity with objects from `make` (e.g. with
    /// their buffers reserved), so none is allocated or grown later.
    pub fn prefill(&self, make: impl Fn() -> T) {
        while !self.free.is_full() {
            if self.free.push(Box::new(make())).is_err() {
                break;
            }
        }
    }

    /// An emptied object: a reused one when one is free.
    pub fn acquire(&self) -> Recycled<T> {
        let mut item = self.free.pop().unwrap_or_default();
        item.reset();
        Recycled {
            item: Some(item),
            free: Arc::clone(&self.free),
        }
    }
}

/// An object borrowed from a [`Recycler`]; goes back to it on drop.
pub struct Recycled<T> {
    item: Option<Box<T>>,
    free: Arc<ArrayQueue<Box<T>>>,
}

impl<T: std::fmt::Debug> std::fmt::Debug for Recycled<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.item.fmt(f)
    }
}

impl<T> Deref for Recycled<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // Only `drop` takes the item.
        self.item
            .as_deref()
            .expect("a recycled object is present until dropped")
    }
}

impl<T> DerefMut for Recycled<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.item
            .as_deref_mut()
            .expect("a recycled object is present until dropped")
    }
}

impl<T> Drop for Recycled<T> {
    fn drop(&mut self) {
        if let Some(item) = self.item.take() {
            let _ = self.free.push(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Notes(Vec<u32>);
    impl Reusable for Notes {
        fn reset(&mut self) {
            self.0.clear();
        }
    }

    #[test]
    fn recycled_objects_come_back_emptied_with_their_capacity() {
        let pool = Recycler::<Notes>::new(2);
        let mut a = pool.acquire();
        a.0.extend([1, 2, 3]);
        let cap = a.0.capacity();
        drop(a);
        let b = pool.acquire();
        assert!(b.0.is_empty());
        assert_eq!(b.0.capacity(), cap);
    }

    #[test]
    fn buffers_are_reused_after_drop() {
        let pool = FramePool::new(2);
        let a = pool.acquire(100);
        drop(a);
        let b = pool.acquire(100);
        assert_eq!(b.len(), 100);
        assert_eq!(
            pool.counters(),
            PoolCounters {
                fresh: 1,
                reused: 1
            }
        );
    }

    #[test]
    fn smaller_request_reuses_larger_buffer_and_larger_allocates() {
        let pool = FramePool::new(2);
        drop(pool.acquire(100));
        let small = pool.acquire(50);
        assert_eq!(small.len(), 50);
        drop(small);
        let big = pool.acquire(200);
        assert_eq!(big.len(), 200);
        assert_eq!(
            pool.counters(),
            PoolCounters {
                fresh: 2,
                reused: 1
            }
        );
    }

    #[test]
    fn prefilled_pool_serves_its_capacity_without_allocating() {
        let pool = FramePool::new(3);
        pool.prefill(64);
        assert_eq!(pool.idle(), 3);
        let held: Vec<_> = (0..3).map(|_| pool.acquire(64)).collect();
        assert_eq!(
            pool.counters(),
            PoolCounters {
                fresh: 0,
                reused: 3
            }
        );
        drop(held);
        assert_eq!(pool.idle(), 3);
    }

    #[test]
    fn pool_keeps_at_most_capacity_free_buffers() {
        let pool = FramePool::new(1);
        let a = pool.acquire(8);
        let b = pool.acquire(8);
        drop(a);
        drop(b);
        assert_eq!(pool.idle(), 1);
    }
}
