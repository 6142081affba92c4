//! Does the results stream slow the frame path? Runs `sonoflow run PIPELINE
//! --serve` with 0, 1, 8 and 32 WebSocket clients connected (one of them
//! reading nothing: a stalled client), in rounds, and compares each run's
//! per-frame latency p99 (`latency_ms.p99` of its report: capture to
//! output) with the no-client run of the same round. Also prints what the
//! clients received: messages and bytes per frame result, and the server's
//! own counts (drops, disconnects) from the report's `server` section.
//!
//! Run: `cargo bench -p sonoflow-benches --bench stream_clients -- [PIPELINE] [FRAMES] [ROUNDS] [JSON]`
//! (defaults: pipelines/default.toml, 900, 3, none; needs the release
//! binary: `cargo build --release -p sonoflow`). With JSON (a path from the
//! workspace root) the per-run figures and the median ratios are written there.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sonoflow_benches::BenchArgs;
use tokio_tungstenite::tungstenite::Message;

const CLIENTS: [usize; 4] = [0, 1, 8, 32];

/// What the reading clients of one run received.
#[derive(Default)]
struct Received {
    messages: AtomicU64,
    bytes: AtomicU64,
}

struct RunFigures {
    clients: usize,
    p50_ms: f64,
    p99_ms: f64,
    frames_out: u64,
    messages: u64,
    bytes: u64,
    server: serde_json::Value,
}

fn free_port() -> Result<u16, Box<dyn std::error::Error>> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn start(
    bin: &Path,
    pipeline: &Path,
    frames: u64,
    port: u16,
    stats: &Path,
) -> std::io::Result<Child> {
    // Pipelines name their model relative to the workspace root.
    let root = bin.ancestors().nth(3).unwrap_or(Path::new("."));
    Command::new(bin)
        .current_dir(root)
        .arg("run")
        .arg(pipeline)
        .args(["--frames", &frames.to_string(), "--quiet", "--serve"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--stats-json")
        .arg(stats)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// Connects `n` clients once the server listens; the first never reads.
async fn connect_clients(
    port: u16,
    n: usize,
    received: Arc<Received>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, Box<dyn std::error::Error>> {
    let url = format!("ws://127.0.0.1:{port}/ws");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut tasks = Vec::new();
    for i in 0..n {
        let socket = loop {
            match tokio_tungstenite::connect_async(url.as_str()).await {
                Ok((socket, _)) => break socket,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => return Err(format!("connecting to {url}: {e}").into()),
            }
        };
        let received = Arc::clone(&received);
        tasks.push(tokio::spawn(async move {
            if i == 0 {
                // The stalled client: holds its socket open, reads nothing.
                let _socket = socket;
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            let (_, mut read) = socket.split();
            while let Some(Ok(message)) = read.next().await {
                if let Message::Binary(bytes) = message {
                    received.messages.fetch_add(1, Ordering::Relaxed);
                    received
                        .bytes
                        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                }
            }
        }));
    }
    Ok(tasks)
}

fn one_run(
    rt: &tokio::runtime::Runtime,
    bin: &Path,
    pipeline: &Path,
    frames: u64,
    clients: usize,
    stats: &Path,
) -> Result<RunFigures, Box<dyn std::error::Error>> {
    let port = free_port()?;
    let mut child = start(bin, pipeline, frames, port, stats)?;
    let received = Arc::new(Received::default());
    // The clients read on this thread's runtime while another waits for the run.
    let status = rt.block_on(async {
        let tasks = connect_clients(port, clients, Arc::clone(&received)).await?;
        let status = tokio::task::spawn_blocking(move || child.wait()).await??;
        for t in &tasks {
            t.abort();
        }
        Ok::<_, Box<dyn std::error::Error>>(status)
    })?;
    if !status.success() {
        return Err(format!("sonoflow run exited with {status} ({clients} clients)").into());
    }
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(stats)?)?;
    let ms = |key: &str| report["latency_ms"][key].as_f64().unwrap_or(f64::NAN);
    Ok(RunFigures {
        clients,
        p50_ms: ms("p50"),
        p99_ms: ms("p99"),
        frames_out: report["frames_out"].as_u64().unwrap_or(0),
        messages: received.messages.load(Ordering::Relaxed),
        bytes: received.bytes.load(Ordering::Relaxed),
        server: report["server"].clone(),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = BenchArgs::from_env();
    let root = &args.root;
    let pipeline = args.path(0, "pipelines/default.toml");
    let frames: u64 = args.parsed(1, 900);
    let rounds: usize = args.parsed(2, 3);
    let json: Option<PathBuf> = args.get(3).map(|p| root.join(p));
    let bin = root.join("target/release/sonoflow");
    if !bin.exists() {
        return Err(format!(
            "{} is missing: build it with cargo build --release -p sonoflow",
            bin.display()
        )
        .into());
    }
    let out = root.join("out/bench");
    std::fs::create_dir_all(&out)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut runs: Vec<Vec<RunFigures>> = Vec::new();
    for round in 0..rounds {
        let mut this = Vec::new();
        // Alternate the order so a drifting machine does not favour one count.
        let order: Vec<usize> = if round % 2 == 0 {
            CLIENTS.to_vec()
        } else {
            CLIENTS.iter().rev().copied().collect()
        };
        for clients in order {
            let stats = out.join(format!("stream-clients-{clients}.json"));
            let f = one_run(&rt, &bin, &pipeline, frames, clients, &stats)?;
            let reading = clients.saturating_sub(1).max(1) as f64;
            eprintln!(
                "round {round}: {clients:>2} clients: p50 {:.2} ms p99 {:.2} ms, {} frames out, \
                 {:.0} B per message, {:.0} messages per reading client, server {}",
                f.p50_ms,
                f.p99_ms,
                f.frames_out,
                f.bytes as f64 / (f.messages.max(1)) as f64,
                f.messages as f64 / reading,
                f.server
            );
            this.push(f);
        }
        this.sort_by_key(|f| f.clients);
        runs.push(this);
    }
    let mut ratios = serde_json::Map::new();
    println!("clients  p99 ratio against no client (median of {rounds} rounds)");
    for (i, clients) in CLIENTS.iter().enumerate().skip(1) {
        let r = median(
            runs.iter()
                .map(|round| round[i].p99_ms / round[0].p99_ms)
                .collect(),
        );
        println!("{clients:>7}  {r:.3}");
        ratios.insert(clients.to_string(), r.into());
    }
    println!("clients  capture to socket p50 / p99, ms (median of {rounds} rounds; server.capture_to_socket_ms)");
    for (i, clients) in CLIENTS.iter().enumerate().skip(1) {
        let at = |key: &str| {
            median(
                runs.iter()
                    .map(|round| {
                        round[i].server["capture_to_socket_ms"][key]
                            .as_f64()
                            .unwrap_or(f64::NAN)
                    })
                    .collect(),
            )
        };
        println!("{clients:>7}  {:.2} / {:.2}", at("p50"), at("p99"));
    }
    if let Some(path) = json {
        let per_run: Vec<serde_json::Value> = runs
            .iter()
            .flatten()
            .map(|f| {
                serde_json::json!({
                    "clients": f.clients, "p50_ms": f.p50_ms, "p99_ms": f.p99_ms,
                    "frames_out": f.frames_out, "messages": f.messages, "bytes": f.bytes,
                    "server": f.server,
                })
            })
            .collect();
        let doc = serde_json::json!({
            "pipeline": pipeline, "frames": frames, "rounds": rounds,
            "p99_ratio": ratios, "runs": per_run,
        });
        std::fs::write(&path, serde_json::to_string_pretty(&doc)? + "\n")?;
    }
    Ok(())
}
