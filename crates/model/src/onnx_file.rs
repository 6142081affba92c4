//! Reads what `sonoflow model info` shows from an ONNX file itself: opsets,
//! node count and parameter count. Only the few fields needed are declared;
//! prost skips the rest (weights included) while decoding.

use std::path::Path;

use prost::Message;

#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(int64, tag = "1")]
    ir_version: i64,
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "8")]
    opset_import: Vec<OperatorSetIdProto>,
}

#[derive(Clone, PartialEq, Message)]
struct OperatorSetIdProto {
    #[prost(string, tag = "1")]
    domain: String,
    #[prost(int64, tag = "2")]
    version: i64,
}

#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
}

#[derive(Clone, PartialEq, Message)]
struct NodeProto {
    #[prost(string, tag = "4")]
    op_type: String,
}

#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    dims: Vec<i64>,
}

/// Facts about one ONNX file.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxSummary {
    pub ir_version: i64,
    /// (domain, version); the default domain is "ai.onnx".
    pub opsets: Vec<(String, i64)>,
    pub nodes: usize,
    /// Elements in all initializers (weights).
    pub parameters: u64,
}

/// Reads `path`'s header facts.
pub fn summarize(path: &Path) -> Result<OnnxSummary, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let model = ModelProto::decode(bytes.as_slice())
        .map_err(|e| format!("{}: not an ONNX model: {e}", path.display()))?;
    let graph = model.graph.unwrap_or_default();
    // Saturating: the dims are the file's and may be any integers.
    let parameters = graph
        .initializer
        .iter()
        .map(|t| {
            t.dims
                .iter()
                .fold(1u64, |n, d| n.saturating_mul((*d).max(0) as u64))
        })
        .fold(0u64, u64::saturating_add);
    Ok(OnnxSummary {
        ir_version: model.ir_version,
        opsets: model
            .opset_import
            .into_iter()
            .map(|o| {
                (
                    if o.domain.is_empty() {
                        "ai.onnx".to_owned()
                    } else {
                        o.domain
                    },
                    o.version,
                )
            })
            .collect(),
        nodes: graph.node.len(),
        parameters,
    })
}
