//! The finite-output guard: a model that writes NaN or infinity (an FP16
//! overflow under TensorRT, a broken export) would otherwise read as "no
//! lesion in view". Every output sonoflow reads is counted as it is read or
//! copied (no extra buffer), and a non-finite value is a model failure
//! ([`InferenceError::NonFinite`]), never a result.

use std::path::Path;

use ort::value::{DynValue, TensorElementType};

use crate::InferenceError;

/// Values in `data` that are NaN or infinite.
pub(crate) fn count(data: &[f32]) -> usize {
    data.iter().filter(|v| !v.is_finite()).count()
}

/// Non-finite values in a float32 or float16 tensor and its length, read
/// in place (other element types hold no such values: (0, 0)).
pub(crate) fn in_value(value: &DynValue) -> Result<(usize, usize), ort::Error> {
    match value.data_type() {
        TensorElementType::Float32 => {
            let (_, data) = value.try_extract_tensor::<f32>()?;
            Ok((count(data), data.len()))
        }
        TensorElementType::Float16 => {
            let (_, data) = value.try_extract_tensor::<half::f16>()?;
            Ok((data.iter().filter(|v| !v.is_finite()).count(), data.len()))
        }
        _ => Ok((0, 0)),
    }
}

/// `Err(NonFinite)` naming the graph and tensor when `count` > 0.
pub(crate) fn ensure(
    file: &Path,
    graph: &str,
    tensor: &str,
    count: usize,
    total: usize,
) -> Result<(), InferenceError> {
    if count == 0 {
        return Ok(());
    }
    Err(InferenceError::NonFinite {
        file: file.display().to_string(),
        graph: graph.to_owned(),
        tensor: tensor.to_owned(),
        count,
        total,
    })
}

/// [`ensure`] over values already read.
pub(crate) fn ensure_slice(
    file: &Path,
    graph: &str,
    tensor: &str,
    data: &[f32],
) -> Result<(), InferenceError> {
    ensure(file, graph, tensor, count(data), data.len())
}
