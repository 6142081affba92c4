//! Debian's Orthanc as a PACS for tests: started on free loopback ports with
//! its own storage folder, killed on drop; its REST API read with a plain
//! HTTP/1.0 GET. Shared by crates/dicom-export/tests/pacs.rs and the
//! workspace's tests/dicom_export.rs (through `#[path]`).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Orthanc on `http` and `dicom`, storing under `dir`; killed on drop.
pub struct Orthanc(Child);

impl Orthanc {
    pub fn start(dir: &Path, http: u16, dicom: u16) -> Self {
        let config = dir.join("orthanc.json");
        let storage = dir.join("storage");
        std::fs::write(
            &config,
            format!(
                r#"{{"Name": "sonoflow-test", "StorageDirectory": "{s}", "IndexDirectory": "{s}",
                "HttpPort": {http}, "DicomPort": {dicom}, "DicomAet": "ORTHANC",
                "RemoteAccessAllowed": false, "AuthenticationEnabled": false,
                "DicomCheckCalledAet": true, "HttpServerEnabled": true, "DicomServerEnabled": true}}"#,
                s = storage.display()
            ),
        )
        .expect("write Orthanc's configuration");
        let child = Command::new("Orthanc")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("Orthanc (Debian package orthanc, installed by scripts/bootstrap.sh) could not start: {e}")
            });
        let orthanc = Self(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while get(http, "/system").is_none() {
            assert!(
                Instant::now() < deadline,
                "Orthanc did not answer on port {http}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        orthanc
    }
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The body of GET `path` on Orthanc's REST API, if it answered 200.
pub fn get(port: u16, path: &str) -> Option<serde_json::Value> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    (head.split_whitespace().nth(1) == Some("200")).then_some(())?;
    serde_json::from_str(body).ok()
}
