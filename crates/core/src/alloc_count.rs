//! Counting heap allocations on the per-frame path.
//!
//! A binary (or bench, or test) installs [`CountingAllocator`] as its
//! `#[global_allocator]`. Code on the per-frame path holds a [`FramePathGuard`]
//! while it handles a frame; allocations made by that thread meanwhile are
//! counted. Allocations inside GStreamer's C code use its own allocator and are
//! not counted: this measures the Rust side of the frame path.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static FRAME_PATH_ALLOCS: AtomicU64 = AtomicU64::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    static ON_FRAME_PATH: Cell<bool> = const { Cell::new(false) };
}

/// The system allocator, counting allocations made under a [`FramePathGuard`].
pub struct CountingAllocator;

impl CountingAllocator {
    #[inline]
    fn note(&self) {
        if !INSTALLED.load(Ordering::Relaxed) {
            INSTALLED.store(true, Ordering::Relaxed);
        }
        if ON_FRAME_PATH.try_with(Cell::get).unwrap_or(false) {
            FRAME_PATH_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; the counting touches only atomics and a const-initialised
// thread-local without a destructor, neither of which allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.note();
        // SAFETY: forwarded unchanged (see above).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.note();
        // SAFETY: forwarded unchanged (see above).
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.note();
        // SAFETY: forwarded unchanged (see above).
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged (see above).
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Marks the current thread as handling a frame until dropped.
#[must_use = "allocations are counted only while the guard lives"]
pub struct FramePathGuard {
    was: bool,
}

impl FramePathGuard {
    pub fn enter() -> Self {
        let was = ON_FRAME_PATH.with(|f| f.replace(true));
        Self { was }
    }
}

impl Drop for FramePathGuard {
    fn drop(&mut self) {
        let was = self.was;
        ON_FRAME_PATH.with(|f| f.set(was));
    }
}

/// Allocations counted on the frame path so far, or `None` when the
/// counting allocator is not this process's global allocator.
pub fn frame_path_allocations() -> Option<u64> {
    INSTALLED
        .load(Ordering::Relaxed)
        .then(|| FRAME_PATH_ALLOCS.load(Ordering::Relaxed))
}
