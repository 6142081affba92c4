//! sonoflow-protocol: the results stream's wire protocol, `sonoflow.v1`.
//!
//! The messages are compiled at build time from `proto/sonoflow/v1/*.proto`
//! (prost; protoc from Debian's `protobuf-compiler`) into [`v1`], with the
//! canonical protobuf JSON mapping (pbjson: lowerCamelCase names, enums as
//! their names, 64-bit integers as strings) as their serde impls. This is
//! the only crate that knows prost. Start at [`v1::ServerMessage`], the
//! envelope every stream message travels in, and [`convert`], which builds
//! messages from sonoflow's core types (the one place that does).
//! [`rle`] holds the masks' COCO run-length encoding. docs/protocol.md has
//! the field tables and the compatibility rule.

pub mod convert;
pub mod rle;

/// The generated messages of package `sonoflow.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/sonoflow.v1.rs"));
    include!(concat!(env!("OUT_DIR"), "/sonoflow.v1.serde.rs"));
}

pub use prost::Message;

/// The protocol's name and version, as [`v1::SessionInfo::protocol`] says it.
pub const PROTOCOL: &str = "sonoflow.v1";

/// Why bytes or text could not be read as a message.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("not a {message} in protobuf binary: {cause}")]
    Binary {
        message: &'static str,
        cause: prost::DecodeError,
    },
    #[error("not a {message} in protobuf JSON: {cause}")]
    Json {
        message: &'static str,
        cause: serde_json::Error,
    },
    #[error("a mask's counts add up to {sum} pixels, not {width}x{height}")]
    MaskSize { sum: u64, width: u32, height: u32 },
}

/// Reads a `Request` a client sent as protobuf binary.
pub fn decode_request(bytes: &[u8]) -> Result<v1::Request, ProtocolError> {
    v1::Request::decode(bytes).map_err(|cause| ProtocolError::Binary {
        message: "sonoflow.v1.Request",
        cause,
    })
}

/// Reads a `Request` a client sent as canonical protobuf JSON.
pub fn request_from_json(text: &str) -> Result<v1::Request, ProtocolError> {
    serde_json::from_str(text).map_err(|cause| ProtocolError::Json {
        message: "sonoflow.v1.Request",
        cause,
    })
}

/// A message as one line of canonical JSON (no newline).
pub fn to_json<T: serde::Serialize>(message: &T) -> Result<String, serde_json::Error> {
    serde_json::to_string(message)
}
