//! The dynamic kernels the mask decoder applies, behind an atomic pointer
//! swap: the reasoning head publishes new ones at any moment without
//! blocking the frame path, and each frame's result records which version
//! produced it. A reader sees one whole version, never a mix of two.
//! Kernels with a NaN or an infinity are refused at the door: the decoder
//! keeps the last good ones.

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

/// Why kernels were not published (the slot keeps its current ones).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KernelError {
    #[error("kernels need {tokens} x {size} values, got {got}")]
    Shape {
        tokens: usize,
        size: usize,
        got: usize,
    },
    #[error("{count} of {total} kernel values are not finite (NaN or infinity); the decoder keeps kernel version {kept}")]
    NonFinite {
        count: usize,
        total: usize,
        /// The version that stays in use.
        kept: u64,
    },
}

impl KernelError {
    /// The kernels were a model output that is not a result (NaN or infinity).
    pub fn is_invalid_output(&self) -> bool {
        matches!(self, KernelError::NonFinite { .. })
    }
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
    /// `tokens.len() x size` values, every one finite; otherwise nothing
    /// changes.
    pub fn publish(&self, tokens: Vec<String>, data: Vec<f32>) -> Result<u64, KernelError> {
        let current = self.current.load();
        let size = current.size;
        if data.len() != tokens.len() * size || tokens.is_empty() {
            return Err(KernelError::Shape {
                tokens: tokens.len(),
                size,
                got: data.len(),
            });
        }
        let count = crate::finite::count(&data);
        if count > 0 {
            return Err(KernelError::NonFinite {
                count,
                total: data.len(),
                kept: current.version,
            });
        }
        drop(current);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_with_nan_or_infinity_are_refused_and_the_last_good_ones_stay() {
        let tokens = vec!["[SEG]".to_owned(), "[DET]".to_owned()];
        let slot = KernelSlot::new(tokens.clone(), 3, vec![0.5; 6]);
        let good = slot.publish(tokens.clone(), vec![1.0; 6]).expect("finite");
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut data = vec![2.0; 6];
            data[4] = bad;
            let err = slot.publish(tokens.clone(), data).expect_err("refused");
            assert_eq!(
                err,
                KernelError::NonFinite {
                    count: 1,
                    total: 6,
                    kept: good
                }
            );
            assert!(err.is_invalid_output());
            let current = slot.load();
            assert_eq!(
                (current.version, current.data.as_slice()),
                (good, &[1.0; 6][..])
            );
        }
        let err = slot.publish(tokens, vec![1.0; 5]).expect_err("short");
        assert!(!err.is_invalid_output(), "{err}");
        assert_eq!(
            slot.publish(vec!["[SEG]".into()], vec![3.0; 3]),
            Ok(good + 1)
        );
    }
}
