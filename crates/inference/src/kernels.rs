//! The dynamic kernels the mask decoder applies, behind an atomic pointer
//! swap: the reasoning head publishes new ones at any moment without
//! blocking the frame path, and each frame's result records which version
//! produced it. A reader sees one whole version, never a mix of two.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

/// One set of kernels: a row per task token.
#[derive(Debug, Clone, PartialEq)]
pub struct Kernels {
    pub version: u64,
    pub tokens: Vec<String>,
    /// Parameters per kernel.
    pub size: usize,
    /// `tokens.len() x size`, row-major.
    pub data: Vec<f32>,
}

/// Where the current kernels live.
pub struct KernelSlot {
    current: ArcSwap<Kernels>,
    next_version: AtomicU64,
}

impl KernelSlot {
    /// Starts with `tokens`/`data` (the model's default kernels) as version 0.
    pub fn new(tokens: Vec<String>, size: usize, data: Vec<f32>) -> Arc<Self> {
        Arc::new(Self {
            current: ArcSwap::from_pointee(Kernels {
                version: 0,
                tokens,
                size,
                data,
            }),
            next_version: AtomicU64::new(1),
        })
    }

    /// Replaces the kernels; returns the new version. `data` must hold
    /// `tokens.len() x size` values.
    pub fn publish(&self, tokens: Vec<String>, data: Vec<f32>) -> Result<u64, String> {
        let size = self.current.load().size;
        if data.len() != tokens.len() * size || tokens.is_empty() {
            return Err(format!(
                "kernels need {} x {size} values, got {}",
                tokens.len(),
                data.len()
            ));
        }
        let version = self.next_version.fetch_add(1, Ordering::Relaxed);
        self.current.store(Arc::new(Kernels {
            version,
            tokens,
            size,
            data,
        }));
        Ok(version)
    }

    /// The current kernels (a cheap, lock-free guard).
    pub fn load(&self) -> arc_swap::Guard<Arc<Kernels>> {
        self.current.load()
    }
}
