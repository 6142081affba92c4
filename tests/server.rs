//! The results server on the real binary: `sonoflow run --serve` streams
//! sonoflow.v1 messages over WebSocket (frame results with calipers, a
//! report after "analyse now" whose keyframe reason is `request`), answers
//! bad requests with errors while frames keep flowing, refuses a
//! non-loopback bind without a token at start-up, and refuses clients with
//! a wrong or missing token without logging it. Deadlines here are hang
//! guards, never speed limits.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use sonoflow_protocol::v1::{self, server_message::Kind};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const LIMIT: Duration = Duration::from_secs(180);

fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../onnx/umind-nano")
}

/// A port free a moment ago on loopback.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

fn spawn(dir: &Path, definition: &str, args: &[&str]) -> Child {
    let pipeline = write_definition(dir, definition);
    run_command(dir, &pipeline, args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sonoflow")
}

/// SIGINT (the run drains and writes its report), then its output.
fn stop(child: Child) -> std::process::Output {
    let _ = std::process::Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status();
    wait_with_limit(child, LIMIT)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects once the server listens (the model loads first).
async fn connect(url: &str) -> Socket {
    let started = Instant::now();
    loop {
        match tokio_tungstenite::connect_async(url).await {
            Ok((socket, _)) => return socket,
            Err(e) => {
                assert!(started.elapsed() < LIMIT, "no server at {url}: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// The next server message (hang guard: LIMIT).
async fn next(socket: &mut Socket) -> v1::ServerMessage {
    loop {
        let m = tokio::time::timeout(LIMIT, socket.next())
            .await
            .expect("a message before the hang guard")
            .expect("the stream goes on")
            .expect("a readable message");
        match m {
            Message::Binary(bytes) => {
                return v1::ServerMessage::decode(bytes.as_ref()).expect("a ServerMessage")
            }
            Message::Close(frame) => panic!("closed by the server: {frame:?}"),
            _ => continue,
        }
    }
}

async fn send(socket: &mut Socket, request: v1::Request) {
    socket
        .send(Message::Binary(request.encode_to_vec().into()))
        .await
        .expect("send");
}

/// Reads until `want` matches, counting the frames seen on the way.
async fn until<T>(
    socket: &mut Socket,
    frames: &mut u64,
    mut want: impl FnMut(&Kind) -> Option<T>,
) -> T {
    loop {
        let m = next(socket).await;
        let kind = m.kind.expect("a kind");
        if matches!(kind, Kind::Frame(_)) {
            *frames += 1;
        }
        if let Some(t) = want(&kind) {
            return t;
        }
    }
}

fn phantom_with_model(extra: &str) -> String {
    format!(
        "[source]\nkind = \"phantom\"\nprobe = \"linear\"\ndepth_cm = 4\nseed = 1\n\
         [model]\ndir = {:?}\nintra_threads = 1\n[load]\nenabled = false\n{extra}\n\
         [[sinks]]\nkind = \"fake\"\n",
        model_dir().to_string_lossy()
    )
}

#[test]
fn the_stream_carries_frames_with_calipers_answers_requests_and_reports_on_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let child = spawn(
        dir.path(),
        &phantom_with_model("[server]\nmasks = true"),
        &["--serve", &address, "--frames", "6000"],
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    runtime.block_on(async {
        let mut socket = connect(&format!("ws://{address}/ws")).await;
        // The session first: the model's prompts, masks on.
        let Some(Kind::Session(session)) = next(&mut socket).await.kind else {
            panic!("the session comes first");
        };
        assert_eq!(session.protocol, "sonoflow.v1");
        assert!(session.masks);
        let model = session.model.expect("a model");
        assert!(model.reasoning, "{model:?}");
        assert!(!model.prompts.is_empty(), "{model:?}");

        // Frame results whose lesion is measured in finite millimetres, with a mask.
        let mut frames = 0u64;
        let lesion = until(&mut socket, &mut frames, |k| match k {
            Kind::Frame(f) => f.findings.iter().find(|x| x.long_axis.is_some()).cloned(),
            _ => None,
        })
        .await;
        let caliper = lesion.long_axis.expect("a caliper");
        assert!(caliper.length_mm.is_finite() && caliper.length_mm > 0.0);
        assert!(caliper.plus_minus_mm.is_finite() && caliper.plus_minus_mm > 0.0);
        let mask = lesion.mask.expect("masks = true");
        assert_eq!(
            mask.counts.iter().map(|&c| u64::from(c)).sum::<u64>(),
            u64::from(mask.width * mask.height)
        );

        // Garbage bytes: an error naming what was wrong, and frames go on.
        socket
            .send(Message::Binary(vec![0xff, 0x13, 0x37, 0x00].into()))
            .await
            .expect("send");
        let error = until(&mut socket, &mut frames, |k| match k {
            Kind::Error(e) => Some(e.clone()),
            _ => None,
        })
        .await;
        assert_eq!(error.code(), v1::ErrorCode::Malformed, "{error:?}");
        assert!(error.message.contains("sonoflow.v1.Request"), "{error:?}");
        let mut after = 0u64;
        until(&mut socket, &mut frames, |k| {
            after += u64::from(matches!(k, Kind::Frame(_)));
            (after >= 3).then_some(())
        })
        .await;

        // A prompt word outside the vocabulary: refused, naming it.
        send(
            &mut socket,
            v1::Request {
                id: 5,
                kind: Some(v1::request::Kind::Prompt(v1::Prompt {
                    text: "[SEG] banana".into(),
                })),
            },
        )
        .await;
        let error = until(&mut socket, &mut frames, |k| match k {
            Kind::Error(e) => Some(e.clone()),
            _ => None,
        })
        .await;
        assert_eq!((error.id, error.code()), (5, v1::ErrorCode::Invalid));
        assert!(error.message.contains("banana"), "{error:?}");

        // Freeze holds this client's frames; unfreeze brings them back.
        for (id, frozen, said) in [(6, true, "frozen"), (61, false, "unfrozen")] {
            send(
                &mut socket,
                v1::Request {
                    id,
                    kind: Some(v1::request::Kind::Freeze(v1::Freeze { frozen })),
                },
            )
            .await;
            let ack = until(&mut socket, &mut frames, |k| match k {
                Kind::Ack(a) => Some(a.clone()),
                Kind::Error(e) => panic!("freeze refused: {e:?}"),
                _ => None,
            })
            .await;
            assert_eq!((ack.id, ack.kind.as_str()), (id, "freeze"));
            assert!(ack.detail.starts_with(said), "{ack:?}");
        }

        // Store: nothing stores DICOM in this pipeline, and the answer says what would.
        send(
            &mut socket,
            v1::Request {
                id: 62,
                kind: Some(v1::request::Kind::Store(v1::Store {})),
            },
        )
        .await;
        let error = until(&mut socket, &mut frames, |k| match k {
            Kind::Error(e) => Some(e.clone()),
            _ => None,
        })
        .await;
        assert_eq!((error.id, error.code()), (62, v1::ErrorCode::Unavailable));
        assert!(error.message.contains("kind = \"dicom\""), "{error:?}");

        // Analyse now: an ack, then a finished report whose reason is request.
        send(
            &mut socket,
            v1::Request {
                id: 7,
                kind: Some(v1::request::Kind::AnalyseNow(v1::AnalyseNow {})),
            },
        )
        .await;
        let ack = until(&mut socket, &mut frames, |k| match k {
            Kind::Ack(a) => Some(a.clone()),
            Kind::Error(e) => panic!("analyse now refused: {e:?}"),
            _ => None,
        })
        .await;
        assert_eq!((ack.id, ack.kind.as_str()), (7, "analyse_now"));
        let report = until(&mut socket, &mut frames, |k| match k {
            Kind::Report(r)
                if r.state() == v1::ReportState::Done
                    && r.reason() == v1::KeyframeReason::Request =>
            {
                Some(r.clone())
            }
            _ => None,
        })
        .await;
        assert!(report.tokens > 0, "{report:?}");
        assert!(!report.text.is_empty(), "{report:?}");
        // Past the report's 30 warm-up frames, so it counts allocations.
        let mut more = frames;
        until(&mut socket, &mut frames, |k| {
            more += u64::from(matches!(k, Kind::Frame(_)));
            (more >= 90).then_some(())
        })
        .await;
        let _ = socket.close(None).await;
    });
    let output = stop(child);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let r = read_report(dir.path()).unwrap_or_else(|| panic!("no report:\n{stderr}"));
    let server = &r["server"];
    assert!(u64_at(server, "/frames") > 0, "{server:#}");
    assert!(u64_at(server, "/clients") >= 1, "{server:#}");
    // The garbage, the unknown prompt word and the store nothing serves.
    assert!(u64_at(server, "/request_errors") >= 3, "{server:#}");
    // The stream's tap copies into pooled entries: the frame path still allocates nothing.
    assert_eq!(f64_at(&r, "/allocations_per_frame"), 0.0, "{r:#}");
    eprintln!(
        "frame results with masks: {:.0} bytes on average, {} at most",
        f64_at(server, "/frame_bytes_mean"),
        u64_at(server, "/frame_bytes_max")
    );
}

#[test]
fn a_non_loopback_address_without_a_token_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let definition = "[source]\nkind = \"test\"\n[[sinks]]\nkind = \"fake\"\n";
    let pipeline = write_definition(dir.path(), definition);
    let output = run_command(
        dir.path(),
        &pipeline,
        &["--serve", "0.0.0.0:0", "--frames", "10"],
    )
    .env_remove("SONOFLOW_SERVER_TOKEN")
    .output()
    .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("server.token"), "{stderr}");
    // The same rule in the definition itself.
    let run = run_pipeline(
        dir.path(),
        &format!("{definition}[server]\naddress = \"0.0.0.0:0\"\n"),
        &["--frames", "10"],
        LIMIT,
    );
    assert!(!run.output.status.success());
    assert!(run.stderr().contains("server.token"), "{}", run.stderr());
}

#[test]
fn clients_without_the_token_are_refused_and_the_token_is_never_logged() {
    const TOKEN: &str = "s3cret-token-for-the-test";
    const WRONG: &str = "not-the-token-at-all";
    let dir = tempfile::tempdir().expect("tempdir");
    let address = format!("127.0.0.1:{}", free_port());
    let child = spawn(
        dir.path(),
        &format!(
            "[source]\nkind = \"test\"\nwidth = 160\nheight = 120\nfps = 30\nlive = true\n\
             [server]\naddress = \"{address}\"\ntoken = \"{TOKEN}\"\n[[sinks]]\nkind = \"fake\"\n"
        ),
        &["--frames", "100000"],
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    runtime.block_on(async {
        // With the token (Authorization header): in, the session first.
        let mut request = format!("ws://{address}/ws")
            .into_client_request()
            .expect("request");
        request.headers_mut().insert(
            "Authorization",
            format!("Bearer {TOKEN}").parse().expect("header"),
        );
        let started = Instant::now();
        let mut socket = loop {
            match tokio_tungstenite::connect_async(request.clone()).await {
                Ok((s, _)) => break s,
                Err(e) => {
                    assert!(started.elapsed() < LIMIT, "no server: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        assert!(matches!(
            next(&mut socket).await.kind,
            Some(Kind::Session(_))
        ));
        // The query parameter works too.
        let url = format!("ws://{address}/ws?token={TOKEN}");
        assert!(tokio_tungstenite::connect_async(url).await.is_ok());
        // Wrong and missing tokens: 401.
        for url in [
            format!("ws://{address}/ws?token={WRONG}"),
            format!("ws://{address}/ws"),
        ] {
            match tokio_tungstenite::connect_async(url.as_str()).await {
                Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                    assert_eq!(response.status(), 401, "{url}")
                }
                other => panic!("{url}: expected a refusal, got {:?}", other.map(|_| ())),
            }
        }
        let _ = socket.close(None).await;
    });
    let output = stop(child);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refused a client with a wrong token"),
        "{stderr}"
    );
    assert!(
        stderr.contains("refused a client with no token"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(TOKEN) && !stderr.contains(WRONG),
        "{stderr}"
    );
    let r = read_report(dir.path()).unwrap_or_else(|| panic!("no report:\n{stderr}"));
    assert_eq!(u64_at(&r, "/server/refused"), 2, "{r:#}");
}
