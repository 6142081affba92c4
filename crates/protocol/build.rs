//! Compiles proto/sonoflow/v1/*.proto with protoc (Debian's
//! `protobuf-compiler`, installed by scripts/bootstrap.sh; nothing is
//! downloaded) into prost types, and generates their canonical protobuf
//! JSON mapping with pbjson.

use std::path::{Path, PathBuf};

const FILES: [&str; 7] = [
    "geometry.proto",
    "frame.proto",
    "report.proto",
    "session.proto",
    "requests.proto",
    "video.proto",
    "stream.proto",
];

fn protoc() -> PathBuf {
    if let Some(path) = std::env::var_os("PROTOC") {
        return PathBuf::from(path);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("protoc"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "protoc was not found on PATH (nor in $PROTOC); sonoflow-protocol compiles proto/sonoflow/v1 \
             with it. Fix: install Debian's `protobuf-compiler` package (apt-get install protobuf-compiler; \
             scripts/bootstrap.sh does it), or set PROTOC to a protoc binary"
        )
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files: Vec<PathBuf> = FILES
        .iter()
        .map(|f| root.join("sonoflow/v1").join(f))
        .collect();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    println!("cargo:rerun-if-env-changed=PROTOC");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptors = out.join("sonoflow_v1_descriptors.bin");
    prost_build::Config::new()
        .protoc_executable(protoc())
        .file_descriptor_set_path(&descriptors)
        .compile_protos(&files, &[&root])?;
    let set = std::fs::read(&descriptors)?;
    pbjson_build::Builder::new()
        .register_descriptors(&set)?
        .build(&[".sonoflow.v1"])?;
    Ok(())
}
