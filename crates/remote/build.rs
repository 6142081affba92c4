//! Compiles proto/kserve/grpc_predict_v2.proto (the KServe v2 protocol's
//! gRPC messages and service) with protoc (Debian's `protobuf-compiler`,
//! installed by scripts/bootstrap.sh; nothing is downloaded) into prost
//! types and a tonic client (no server).

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto");
    let file = root.join("kserve/grpc_predict_v2.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    println!("cargo:rerun-if-env-changed=PROTOC");
    if std::env::var_os("PROTOC").is_none() {
        let found = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("protoc"))
                .find(|p| p.is_file())
        });
        let protoc: PathBuf = found.ok_or(
            "protoc was not found on PATH (nor in $PROTOC); sonoflow-remote compiles the KServe v2 \
             protocol with it. Fix: apt-get install protobuf-compiler (scripts/bootstrap.sh does it), \
             or set PROTOC",
        )?;
        // prost-build reads PROTOC.
        std::env::set_var("PROTOC", protoc);
    }
    tonic_prost_build::configure()
        .build_server(false)
        .compile_protos(&[file], &[root])?;
    Ok(())
}
