//! The browser viewer on the real binary, in a real browser: `sonoflow run
//! --serve` on the phantom pipeline, Debian's headless Chromium driven over
//! the DevTools protocol (its WebSocket, flattened sessions) opens the
//! viewer at `/`, sees frames and video, and draws the very caliper text the
//! stream carries for the same frame (checked against a second, binary
//! protobuf client); a real mouse click on "analyse now" brings a report
//! whose keyframe reason is `request`; "freeze" stops the page's frames
//! until "unfreeze"; a prompt from the model's own vocabulary is
//! acknowledged. The screenshot
//! is kept as target/test-artefacts/viewer.png (SONOFLOW_UPDATE_GOLDEN=1
//! also copies it to docs/img/viewer.png, the README's picture).
//!
//! Needs Chromium: scripts/bootstrap.sh installs Debian's `chromium` (and
//! `chromium-driver`); without it this test fails saying so. Deadlines here
//! are hang guards, never speed limits.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use serde_json::{json, Value};
use sonoflow_protocol::v1::{self, server_message::Kind};
use tokio_tungstenite::tungstenite::Message;

const LIMIT: Duration = Duration::from_secs(180);
const WIDTH: u32 = 1400;
const HEIGHT: u32 = 900;

fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../onnx/umind-nano")
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// Chromium as Debian installs it (or SONOFLOW_CHROMIUM).
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("SONOFLOW_CHROMIUM") {
        return PathBuf::from(path);
    }
    let names = ["chromium", "chromium-browser", "google-chrome"];
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "Chromium was not found on PATH (chromium, chromium-browser, google-chrome; or set \
                 SONOFLOW_CHROMIUM). This test drives a real browser. Fix: run scripts/bootstrap.sh, \
                 which installs Debian's chromium and chromium-driver"
            )
        })
}

/// A process killed when the test ends, however it ends (unless taken).
struct Killed(Option<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Headless Chromium with a fresh profile; its DevTools WebSocket address.
fn launch_chromium(profile: &Path) -> (Killed, String) {
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--mute-audio",
            "--hide-scrollbars",
            "--remote-debugging-port=0",
            "--remote-debugging-address=127.0.0.1",
            &format!("--window-size={WIDTH},{HEIGHT}"),
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    // Reads the address, then keeps the pipe drained.
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line
                .split_once("DevTools listening on ")
                .map(|(_, u)| u.trim().to_owned())
            {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(url);
                }
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("Chromium says where DevTools listens (\"DevTools listening on ws://...\")");
    (Killed(Some(child)), url)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A DevTools protocol client on the browser's socket, one page session.
struct Cdp {
    socket: Socket,
    next_id: u64,
    session: Option<String>,
}

impl Cdp {
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = &self.session {
            message["sessionId"] = json!(s);
        }
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("send to DevTools");
        loop {
            let m = tokio::time::timeout(LIMIT, self.socket.next())
                .await
                .expect("DevTools answers before the hang guard")
                .expect("the DevTools socket stays open")
                .expect("a readable DevTools message");
            let Message::Text(text) = m else { continue };
            let v: Value = serde_json::from_str(&text).expect("DevTools speaks JSON");
            if v["id"] == json!(id) {
                assert!(v.get("error").is_none(), "{method} failed: {v}");
                return v["result"].clone();
            }
        }
    }

    /// `expression`'s value (JSON-serialisable) in the page.
    async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        assert!(r.get("exceptionDetails").is_none(), "{expression}: {r}");
        r["result"]["value"].clone()
    }

    /// `expression`'s value once it is truthy in the page, or None after `limit`.
    async fn within(&mut self, limit: Duration, expression: &str) -> Option<Value> {
        let started = Instant::now();
        while started.elapsed() < limit {
            let v = self.eval(expression).await;
            if !(v.is_null() || v == json!(false)) {
                return Some(v);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// Waits until `expression` is truthy in the page; its value.
    async fn until(&mut self, what: &str, expression: &str) -> Value {
        let started = Instant::now();
        loop {
            let v = self.eval(expression).await;
            if !(v.is_null() || v == json!(false)) {
                return v;
            }
            assert!(
                started.elapsed() < LIMIT,
                "the viewer never showed {what}; its state: {}",
                self.eval("JSON.stringify({...window.sonoflowViewer, caliperTexts: undefined})")
                    .await
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// A real mouse click (pressed and released) in the middle of `#id`.
    async fn click(&mut self, id: &str) {
        let rect = self
            .eval(&format!(
                "(() => {{ const r = document.getElementById('{id}').getBoundingClientRect(); \
                 return {{ x: r.x + r.width / 2, y: r.y + r.height / 2 }}; }})()"
            ))
            .await;
        let (x, y) = (rect["x"].clone(), rect["y"].clone());
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            )
            .await;
        }
    }
}

/// The text the viewer must draw for a caliper: the overlay's own words.
fn caliper_text(axis: &str, c: &v1::Caliper) -> String {
    format!(
        "{axis} {:.1} ± {:.1} mm",
        c.length_mm,
        c.plus_minus_mm.max(0.05)
    )
}

/// What a binary protobuf client read: caliper texts by frame id, video frames.
#[derive(Default)]
struct Seen {
    calipers: HashMap<u64, Vec<String>>,
    video: u64,
    jpeg_ok: bool,
}

async fn watch_stream(url: String, seen: Arc<Mutex<Seen>>) {
    let started = Instant::now();
    let mut socket = loop {
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((s, _)) => break s,
            Err(e) => {
                assert!(started.elapsed() < LIMIT, "no server at {url}: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    while let Some(Ok(m)) = socket.next().await {
        let Message::Binary(bytes) = m else { continue };
        let Ok(message) = v1::ServerMessage::decode(bytes.as_ref()) else {
            continue;
        };
        let mut seen = seen.lock().expect("lock");
        match message.kind {
            Some(Kind::Frame(f)) => {
                let texts = f
                    .findings
                    .iter()
                    .flat_map(|x| {
                        [("L", &x.long_axis), ("S", &x.short_axis)]
                            .into_iter()
                            .filter_map(|(a, c)| c.as_ref().map(|c| caliper_text(a, c)))
                    })
                    .collect();
                seen.calipers.insert(f.frame_id, texts);
            }
            Some(Kind::Video(v)) => {
                seen.video += 1;
                seen.jpeg_ok = v.jpeg.starts_with(&[0xff, 0xd8])
                    && v.jpeg.ends_with(&[0xff, 0xd9])
                    && (v.width, v.height) == (640, 480);
            }
            _ => {}
        }
    }
}

async fn wait_for_server(address: &str) {
    let started = Instant::now();
    while tokio::net::TcpStream::connect(address).await.is_err() {
        assert!(started.elapsed() < LIMIT, "no server at {address}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn artefacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/")
        .join("test-artefacts");
    std::fs::create_dir_all(&dir).expect("target/test-artefacts");
    dir
}

#[test]
fn the_viewer_draws_the_streams_calipers_and_asks_for_a_report() {
    let browser = chromium();
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let definition = format!(
        "name = \"phantom-linear\"\n[source]\nkind = \"phantom\"\nprobe = \"linear\"\ndepth_cm = 4\nseed = 1\nlesions = 1\n\
         [model]\ndir = {:?}\nintra_threads = 1\n[load]\nenabled = false\n\
         [server]\nmasks = true\n\n[[sinks]]\nkind = \"fake\"\n",
        model_dir().to_string_lossy()
    );
    let pipeline = write_definition(dir.path(), &definition);
    let run = run_command(
        dir.path(),
        &pipeline,
        &["--serve", &address, "--frames", "6000"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn sonoflow");
    let mut run = Killed(Some(run));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let screenshot = runtime.block_on(async {
        wait_for_server(&address).await;
        tokio::spawn(watch_stream(format!("ws://{address}/ws"), Arc::clone(&seen)));

        assert!(browser.is_file());
        let (_chromium, devtools) = launch_chromium(profile.path());
        let (socket, _) = tokio_tungstenite::connect_async(devtools.as_str())
            .await
            .expect("connect to DevTools");
        let mut cdp = Cdp {
            socket,
            next_id: 0,
            session: None,
        };
        let target = cdp
            .call("Target.createTarget", json!({ "url": "about:blank" }))
            .await;
        let attached = cdp
            .call(
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await;
        cdp.session = Some(
            attached["sessionId"]
                .as_str()
                .expect("a session")
                .to_owned(),
        );
        cdp.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await;
        cdp.call("Page.enable", json!({})).await;
        cdp.call("Page.navigate", json!({ "url": format!("http://{address}/") }))
            .await;

        // The viewer, built into the binary, is at /, with the warning.
        cdp.until(
            "the page",
            "document.readyState === 'complete' && !!window.sonoflowViewer",
        )
        .await;
        let warning = cdp
            .eval("document.getElementById('not-for-diagnosis').innerText")
            .await;
        assert_eq!(warning, json!("NOT FOR DIAGNOSIS"));

        // Frames, video and a caliper drawn.
        cdp.until(
            "frames, video and a caliper",
            "(() => { const s = window.sonoflowViewer; return s.connected && s.framesSeen > 10 \
             && s.videoFramesSeen > 3 && s.lastCaliperText !== null; })()",
        )
        .await;
        let prompts = cdp
            .eval("[...document.getElementById('prompt').options].map(o => o.value)")
            .await;
        let calibration = cdp
            .eval("document.getElementById('calibration').innerText")
            .await;
        assert!(
            calibration.as_str().is_some_and(|c| c.contains("mm/px") && c.contains("phantom")),
            "the calibration in use: {calibration}"
        );

        // The caliper text the page drew equals the stream's for the same frame.
        let drawn = cdp
            .until(
                "a drawn frame the binary client also read",
                "JSON.stringify(window.sonoflowViewer.caliperTexts)",
            )
            .await;
        let drawn: HashMap<String, Vec<String>> =
            serde_json::from_str(drawn.as_str().expect("JSON text")).expect("caliper texts");
        let compared = {
            let seen = seen.lock().expect("lock");
            let mut compared = 0;
            for (id, texts) in &drawn {
                let id: u64 = id.parse().expect("a frame id");
                if let Some(stream) = seen.calipers.get(&id) {
                    assert_eq!(texts, stream, "frame {id}: drawn vs the stream");
                    compared += usize::from(!texts.is_empty());
                }
            }
            compared
        };
        assert!(
            compared > 0,
            "no frame with a caliper both drawn and read: {drawn:?}"
        );
        let last = cdp
            .eval("[window.sonoflowViewer.lastCaliperFrameId, window.sonoflowViewer.lastCaliperText]")
            .await;
        let last_id: u64 = last[0].as_str().expect("an id").parse().expect("a number");
        let expected = seen.lock().expect("lock").calipers.get(&last_id).cloned();
        if let Some(expected) = expected {
            assert_eq!(last[1], json!(expected[0]), "the last caliper drawn");
        }
        assert!(
            last[1]
                .as_str()
                .is_some_and(|t| t.starts_with("L ") && t.contains(" ± ") && t.ends_with(" mm")),
            "{last}"
        );

        // "analyse now", clicked: a report whose reason is `request`.
        // A real mouse click. The page's layout moves while reports stream
        // in, so a click at coordinates read a moment earlier can land beside
        // the button: click again (at most three times) until it is answered.
        let answered = "window.sonoflowViewer.lastAck && window.sonoflowViewer.lastAck.kind";
        let mut ack = None;
        for _ in 0..3 {
            cdp.click("analyse-now").await;
            ack = cdp.within(Duration::from_secs(4), answered).await;
            if ack.is_some() {
                break;
            }
        }
        let ack = match ack {
            Some(a) => a,
            None => cdp.until("the acknowledgement of analyse now", answered).await,
        };
        assert_eq!(ack, json!("analyse_now"));
        let report = cdp
            .until(
                "a report whose reason is request",
                "window.sonoflowViewer.reports.find(r => r.reason === 'KEYFRAME_REASON_REQUEST' \
                 && r.state === 'REPORT_STATE_DONE') || null",
            )
            .await;
        assert!(
            report["text"].as_str().is_some_and(|t| !t.is_empty()),
            "{report}"
        );
        // The panel showed that report (or has since moved on to a later
        // keyframe, whose reason is only known once it is written).
        let requested: u64 = report["keyframeId"]
            .as_str()
            .and_then(|k| k.parse().ok())
            .or_else(|| report["keyframeId"].as_u64())
            .unwrap_or(0);
        let meta = cdp
            .until(
                "the report panel naming the request (or a later keyframe)",
                &format!(
                    "(() => {{ const m = document.getElementById('report-meta').innerText; \
                     const k = parseInt((m.match(/keyframe (\\d+)/) || [])[1] || '0'); \
                     return (m.includes('reason: request') || k > {requested}) ? m : null; }})()"
                ),
            )
            .await;
        assert!(meta.as_str().is_some_and(|m| m.contains("keyframe")), "{meta}");

        // Freeze: this page's frames stop (the pipeline goes on), then come
        // back on unfreeze.
        cdp.eval("document.getElementById('freeze').click(); true")
            .await;
        cdp.until("the page frozen (acknowledged)", "window.sonoflowViewer.frozen === true")
            .await;
        let shown = cdp.eval("document.getElementById('answer').innerText").await;
        assert!(
            shown.as_str().is_some_and(|s| s.starts_with("freeze: frozen")),
            "{shown}"
        );
        // Frames already queued for the page may still land: let them, then
        // a second at 30 fps brings none.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let held = cdp.eval("window.sonoflowViewer.framesSeen").await;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(
            cdp.eval("window.sonoflowViewer.framesSeen").await,
            held,
            "no frame results reach a frozen page"
        );
        cdp.eval("document.getElementById('freeze').click(); true")
            .await;
        cdp.until(
            "frames again after unfreeze",
            &format!(
                "window.sonoflowViewer.frozen === false && window.sonoflowViewer.framesSeen > {held} + 3"
            ),
        )
        .await;

        // A prompt chosen from the model's own vocabulary.
        // "[SEG] lesion" where the model has it: the phantom's lesion is
        // then what is segmented (a cyst prompt on a mass finds little).
        let menu: Vec<&str> = prompts
            .as_array()
            .map(|p| p.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let prompt = menu
            .iter()
            .find(|p| **p == "[SEG] lesion")
            .or_else(|| menu.iter().find(|p| p.starts_with("[SEG]")))
            .or(menu.first())
            .map(|p| json!(p))
            .unwrap_or_else(|| panic!("the model's prompts in the menu: {prompts}"));
        cdp.eval(&format!(
            "document.getElementById('prompt').value = {prompt}; true"
        ))
        .await;
        // A DOM click: the report panel above grows while it streams, so a
        // mouse event at coordinates read a moment earlier can miss.
        cdp.eval("document.getElementById('send-prompt').click(); true")
            .await;
        cdp.until(
            "the acknowledgement of the prompt",
            "window.sonoflowViewer.lastAck && window.sonoflowViewer.lastAck.kind === 'prompt'",
        )
        .await;
        cdp.until(
            "the request report on screen",
            "document.getElementById('report-meta').innerText.includes('reason: request')",
        )
        .await;

        // A layer toggled off: frames drawn without calipers; back on.
        cdp.click("layer-calipers").await;
        let n = cdp.eval("window.sonoflowViewer.framesDrawn").await;
        cdp.until(
            "frames drawn without the calipers layer",
            &format!(
                "(() => {{ const s = window.sonoflowViewer; return s.framesDrawn > {n} + 2 \
                 && s.caliperTexts[s.lastDrawnFrameId].length === 0; }})()"
            ),
        )
        .await;
        cdp.click("layer-calipers").await;
        assert_eq!(
            cdp.eval("document.getElementById('layer-calipers').checked")
                .await,
            json!(true)
        );

        // Let a few more frames draw, then the screenshot.
        let drawn_before = cdp.eval("window.sonoflowViewer.framesDrawn").await;
        cdp.until(
            "more frames drawn",
            &format!("window.sonoflowViewer.framesDrawn > {drawn_before} + 5 && window.sonoflowViewer.lastCaliperText !== null"),
        )
        .await;
        let shot = cdp
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("PNG data"))
            .expect("base64")
    });

    let path = artefacts().join("viewer.png");
    std::fs::write(&path, &screenshot).expect("write the screenshot");
    let decoder = png::Decoder::new(std::io::Cursor::new(&screenshot));
    let reader = decoder.read_info().expect("a PNG");
    let info = reader.info();
    assert_eq!((info.width, info.height), (WIDTH, HEIGHT));
    if std::env::var_os("SONOFLOW_UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/img/viewer.png");
        std::fs::copy(&path, docs).expect("copy to docs/img");
    }

    {
        let seen = seen.lock().expect("lock");
        assert!(
            seen.video > 0 && seen.jpeg_ok,
            "JPEG video frames on the socket"
        );
    }
    let output = {
        let child = run.0.take().expect("the run");
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(child.id().to_string())
            .status();
        wait_with_limit(child, LIMIT)
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "sonoflow failed:\n{stderr}");
    let report = read_report(dir.path()).expect("the run report");
    let server = &report["server"];
    assert!(server["video_frames"].as_u64() > Some(0), "{server}");
    let transports: Vec<&str> = server["per_client"]
        .as_array()
        .expect("clients")
        .iter()
        .filter_map(|c| c["transport"].as_str())
        .collect();
    assert!(
        transports.contains(&"websocket_json") && transports.contains(&"websocket"),
        "{transports:?}"
    );
    let held = server["per_client"]
        .as_array()
        .expect("clients")
        .iter()
        .filter(|c| c["transport"] == "websocket_json")
        .filter_map(|c| c["held"].as_u64())
        .sum::<u64>();
    assert!(held > 0, "the page's frames held while frozen: {server}");
    let to_socket = &server["capture_to_socket_ms"];
    assert!(
        to_socket["count"].as_u64() > Some(0) && to_socket["p50"].as_f64() > Some(0.0),
        "capture to socket latency measured: {to_socket}"
    );
    eprintln!(
        "screenshot: {}; video: {} frames, {:.0} bytes each on average",
        path.display(),
        server["video_frames"],
        server["video_bytes_mean"].as_f64().unwrap_or(0.0)
    );
}
