//! Tensors as the protocol carries them: sent in the typed contents
//! (`fp32_contents`, `int64_contents`), read from the typed contents or
//! from `raw_output_contents` (little-endian), whichever the server used.

use crate::proto::model_infer_request::InferInputTensor;
#[cfg(test)]
use crate::proto::InferTensorContents;
use crate::proto::ModelInferResponse;

/// A tensor's values.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Fp32(Vec<f32>),
    Int64(Vec<i64>),
}

/// A named tensor with its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<i64>,
    pub data: TensorData,
}

impl Tensor {
    pub fn fp32(name: &str, shape: &[i64], data: Vec<f32>) -> Self {
        Self {
            name: name.to_owned(),
            shape: shape.to_vec(),
            data: TensorData::Fp32(data),
        }
    }

    pub fn int64(name: &str, shape: &[i64], data: Vec<i64>) -> Self {
        Self {
            name: name.to_owned(),
            shape: shape.to_vec(),
            data: TensorData::Int64(data),
        }
    }

    /// The values as f32 (None for another datatype).
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::Fp32(v) => Some(v),
            TensorData::Int64(_) => None,
        }
    }

    /// The values as i64 (None for another datatype).
    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            TensorData::Int64(v) => Some(v),
            TensorData::Fp32(_) => None,
        }
    }

    /// The tensor's header and its values as raw little-endian bytes (sent
    /// in `raw_input_contents`, which every v2 server reads and which makes
    /// MLServer answer in raw bytes too).
    pub(crate) fn into_input(self) -> (InferInputTensor, Vec<u8>) {
        let (datatype, raw) = match self.data {
            TensorData::Fp32(v) => ("FP32", v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            TensorData::Int64(v) => ("INT64", v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        };
        let header = InferInputTensor {
            name: self.name,
            datatype: datatype.to_owned(),
            shape: self.shape,
            ..Default::default()
        };
        (header, raw)
    }

    /// Output `name` of `response`; why not, when it is missing or unreadable.
    pub(crate) fn from_response(response: &ModelInferResponse, name: &str) -> Result<Self, String> {
        let (index, out) = response
            .outputs
            .iter()
            .enumerate()
            .find(|(_, o)| o.name == name)
            .ok_or_else(|| "it is not in the response".to_owned())?;
        let count: i64 = out.shape.iter().product();
        let count = usize::try_from(count).map_err(|_| format!("shape {:?}", out.shape))?;
        let raw = response.raw_output_contents.get(index);
        let data = match out.datatype.as_str() {
            "FP32" => TensorData::Fp32(match raw {
                Some(bytes) => words(bytes, 4)?
                    .map(|w| f32::from_le_bytes([w[0], w[1], w[2], w[3]]))
                    .collect(),
                None => out
                    .contents
                    .as_ref()
                    .map(|c| c.fp32_contents.clone())
                    .unwrap_or_default(),
            }),
            "INT64" => TensorData::Int64(match raw {
                Some(bytes) => words(bytes, 8)?
                    .map(|w| i64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]))
                    .collect(),
                None => out
                    .contents
                    .as_ref()
                    .map(|c| c.int64_contents.clone())
                    .unwrap_or_default(),
            }),
            other => return Err(format!("datatype {other} (sonoflow reads FP32 and INT64)")),
        };
        let len = match &data {
            TensorData::Fp32(v) => v.len(),
            TensorData::Int64(v) => v.len(),
        };
        if len != count {
            return Err(format!("{len} values for shape {:?}", out.shape));
        }
        Ok(Self {
            name: name.to_owned(),
            shape: out.shape.clone(),
            data,
        })
    }
}

fn words(bytes: &[u8], size: usize) -> Result<std::slice::ChunksExact<'_, u8>, String> {
    if !bytes.len().is_multiple_of(size) {
        return Err(format!(
            "{} raw bytes are not whole {size}-byte values",
            bytes.len()
        ));
    }
    Ok(bytes.chunks_exact(size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::model_infer_response::InferOutputTensor;

    #[test]
    fn outputs_are_read_from_raw_or_typed_contents() {
        let response = ModelInferResponse {
            outputs: vec![
                InferOutputTensor {
                    name: "tokens".into(),
                    datatype: "INT64".into(),
                    shape: vec![1, 2],
                    ..Default::default()
                },
                InferOutputTensor {
                    name: "kernels".into(),
                    datatype: "FP32".into(),
                    shape: vec![2],
                    contents: Some(InferTensorContents {
                        fp32_contents: vec![0.5, -1.0],
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ],
            raw_output_contents: vec![[7i64.to_le_bytes(), 9i64.to_le_bytes()].concat()],
            ..Default::default()
        };
        let tokens = Tensor::from_response(&response, "tokens").expect("raw");
        assert_eq!(tokens.as_i64(), Some(&[7, 9][..]));
        let kernels = Tensor::from_response(&response, "kernels").expect("typed");
        assert_eq!(kernels.as_f32(), Some(&[0.5, -1.0][..]));
        assert!(Tensor::from_response(&response, "hidden").is_err());
    }
}
