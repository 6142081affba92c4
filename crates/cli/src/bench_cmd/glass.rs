//! Glass-to-glass latency: from a frame's capture to its pixels decoded
//! after the real sink path, set beside the same run's own latency (capture
//! to the hand-off to the sinks), so that what the run's report cannot see
//! is counted: the encoder, the packetiser or muxer, the socket or file, the
//! jitter buffer and the decoder.
//!
//! The product scenario runs as the real binary with `[source] stamp =
//! true`: ingest writes each frame's number and capture time
//! (`CLOCK_MONOTONIC`) into its bottom-right corner (`sonoflow_core::stamp`).
//! This process takes what the sink sends, decodes it and reads the stamps
//! against the same clock:
//!
//! - **rtp**: an `rtp` sink to 127.0.0.1, received here by sonoflow's own
//!   `udp` source (`sonoflow_ingest`: `rtpjitterbuffer` at its default
//!   latency, depayloader, `decodebin`); a frame has arrived when its sample
//!   reaches that source's appsink.
//! - **mp4**: an `mp4` sink (fragmented at its default `fragment_ms`), and
//!   here a reader that tails the file as it grows into `decodebin`; a frame
//!   has arrived when it is decoded from the file: how long a recording takes
//!   to hold a frame that someone else can read, mostly the wait for its
//!   fragment to be written.
//!
//! Each path has a run of its own (one encoder each). A stamp that does not
//! read is counted as unreadable; one that reads but cannot be right (from
//! the future, or older than [`PLAUSIBLE`]) as rejected; one of a frame
//! already shown, or older than one shown (the decoder concealing a lost
//! packet with an earlier picture), as stale; none of them is in the figures. Frames captured in the stream's first second ([`WARMUP`])
//! are its start-up and are reported apart: over RTP the first frames leave
//! the receiver together, the first one the jitter buffer's latency and the
//! decoder's setup later (first frame 170 ms with a 20 ms jitter buffer, 435
//! ms with 300 ms, against 23 ms from the eighth frame on).

use std::fs::File;
use std::io::Read;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use gst::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use serde::{Deserialize, Serialize};
use sonoflow_core::stamp::{self, MachineClock, Stamp, StampImage};
use sonoflow_core::{FramePool, PixelFormat};
use sonoflow_ingest::config::DEFAULT_LATENCY_MS;
use sonoflow_ingest::{Flow, Ingest, RestartConfig, SourceConfig, SourceKind, SourceState};
use sonoflow_output::config::{DEFAULT_BITRATE_KBPS, DEFAULT_FRAGMENT_MS};

use super::measure::{self, Quantiles, RunFigures};
use super::scenario::Scenario;

/// A stamp older than this when it arrives cannot be right.
const PLAUSIBLE: Duration = Duration::from_secs(10);
/// Frames captured in the stream's first second are its start-up (the
/// jitter buffer's first wait, the decoder being set up: the first frames
/// leave together): reported as `first_frame_ms`, not in the quantiles.
const WARMUP: Duration = Duration::from_secs(1);
/// How long a receiver waits after the run for frames still on their way.
const DRAIN: Duration = Duration::from_secs(1);
/// How often the MP4 reader looks for new bytes (an upper bound on what
/// the polling adds to a frame's time).
const TAIL_POLL: Duration = Duration::from_millis(2);
/// How long the receiver may take to start, and the MP4 reader to finish.
const HANG_GUARD: Duration = Duration::from_secs(20);

/// Glass-to-glass latency of one scenario through each sink path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GlassToGlass {
    /// The scenario's label ("product 640x480@30 cpu").
    pub scenario: String,
    pub rtp: Option<GlassPath>,
    pub mp4: Option<GlassPath>,
    /// Why a path was not measured.
    pub errors: Vec<String>,
}

/// One sink path's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GlassPath {
    /// What was measured, in words.
    pub path: String,
    /// Capture to the decoded frame at the receiver, over the frames read
    /// after the first second.
    pub latency_ms: Quantiles,
    /// The first frame read: the start-up.
    pub first_frame_ms: f64,
    /// The same run's own latency: capture to the hand-off to the sinks
    /// (its report's `latency_ms`).
    pub internal_ms: Quantiles,
    /// Frames the run handed to its sink.
    pub frames_sent: u64,
    /// Frames the receiver decoded.
    pub frames_decoded: u64,
    /// Decoded frames whose stamp read and was kept.
    pub frames: u64,
    /// Of those, the ones captured in the stream's first second (not in
    /// `latency_ms`).
    pub warmup_frames: u64,
    /// Decoded frames whose stamp did not read.
    pub unreadable: u64,
    /// Why the first unreadable one did not.
    pub unreadable_why: Option<String>,
    /// Stamps that read but cannot be right: from the future, or older
    /// than 10 s (not in the figures).
    pub rejected: u64,
    /// Stamps of a frame already shown or older than one shown: an earlier
    /// picture shown again (not in the figures).
    pub stale: u64,
    /// H.264 bit rate of the sink.
    pub bitrate_kbps: u32,
    /// rtp: the receiver's jitter-buffer latency.
    pub jitter_buffer_ms: Option<u32>,
    /// mp4: the fragment length (a frame is readable once its fragment is written).
    pub fragment_ms: Option<u32>,
    /// The run's report.
    pub report: Option<PathBuf>,
}

/// Measures `scenario` (a phantom or test source) through the rtp and the
/// mp4 path, `frames` frames each, its files in `dir`; a path that fails is
/// named in `errors` and the other still measured.
pub fn measure(
    exe: &Path,
    scenario: &Scenario,
    model: &Path,
    frames: u64,
    dir: &Path,
) -> GlassToGlass {
    let mut glass = GlassToGlass {
        scenario: scenario.label(),
        ..GlassToGlass::default()
    };
    match rtp(exe, scenario, model, frames, dir) {
        Ok(path) => glass.rtp = Some(path),
        Err(e) => glass.errors.push(format!("rtp: {e:#}")),
    }
    match mp4(exe, scenario, model, frames, dir) {
        Ok(path) => glass.mp4 = Some(path),
        Err(e) => glass.errors.push(format!("mp4: {e:#}")),
    }
    glass
}

fn rtp(
    exe: &Path,
    scenario: &Scenario,
    model: &Path,
    frames: u64,
    dir: &Path,
) -> anyhow::Result<GlassPath> {
    let port = free_udp_port()?;
    let receiver = RtpReceiver::start(port)?;
    let sinks = format!("[[sinks]]\nkind = \"rtp\"\nhost = \"127.0.0.1\"\nport = {port}\n");
    let definition = scenario.stamped_definition(model, &sinks);
    let name = format!("glass-rtp-{}", scenario.slug());
    let run = measure::run_definition(exe, scenario, &name, &definition, frames, dir, None);
    let tally = receiver.finish();
    let (run, tally) = (run?, tally?);
    Ok(tally.into_path(
        format!("rtp sink to a udp source on 127.0.0.1 (jitter buffer {DEFAULT_LATENCY_MS} ms)"),
        &run,
        GlassPath {
            jitter_buffer_ms: Some(DEFAULT_LATENCY_MS),
            ..GlassPath::default()
        },
    ))
}

fn mp4(
    exe: &Path,
    scenario: &Scenario,
    model: &Path,
    frames: u64,
    dir: &Path,
) -> anyhow::Result<GlassPath> {
    let name = format!("glass-mp4-{}", scenario.slug());
    let file = std::path::absolute(dir.join(format!("{name}.mp4")))?;
    // A file from an earlier bench would be read as this run's.
    match std::fs::remove_file(&file) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("cannot remove {}", file.display()))
        }
        _ => {}
    }
    let reader = Mp4Reader::start(file.clone())?;
    let sinks = format!("[[sinks]]\nkind = \"mp4\"\npath = '{}'\n", file.display());
    let definition = scenario.stamped_definition(model, &sinks);
    let run = measure::run_definition(exe, scenario, &name, &definition, frames, dir, None);
    let tally = reader.finish();
    let (run, tally) = (run?, tally?);
    Ok(tally.into_path(
        format!("mp4 sink to a reader tailing the file (fragments of {DEFAULT_FRAGMENT_MS} ms)"),
        &run,
        GlassPath {
            fragment_ms: Some(DEFAULT_FRAGMENT_MS),
            ..GlassPath::default()
        },
    ))
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_udp_port() -> anyhow::Result<u16> {
    let socket = UdpSocket::bind(("127.0.0.1", 0)).context("no free UDP port on 127.0.0.1")?;
    Ok(socket.local_addr()?.port())
}

/// What a receiver saw.
#[derive(Debug, Default)]
struct Tally {
    decoded: u64,
    ms: Vec<f64>,
    unreadable: u64,
    why: Option<String>,
    rejected: u64,
    stale: u64,
    last: Option<u16>,
    /// The first stamp kept: its capture time and latency.
    first: Option<(u32, f64)>,
    warmup: u64,
}

impl Tally {
    /// One decoded frame, its stamp as read and the time it arrived.
    fn note(&mut self, read: Result<Stamp, String>, now_micros: u64) {
        self.decoded += 1;
        let stamp = match read {
            Ok(stamp) => stamp,
            Err(why) => {
                self.unreadable += 1;
                self.why.get_or_insert(why);
                return;
            }
        };
        let age = stamp.age(now_micros);
        if age > PLAUSIBLE {
            self.rejected += 1;
            return;
        }
        // Frames may be dropped on the way; one that is not newer than the
        // last is an earlier picture shown again.
        let newer = self.last.is_none_or(|last| {
            let step = stamp.counter.wrapping_sub(last);
            step != 0 && step < 0x8000
        });
        if !newer {
            self.stale += 1;
            return;
        }
        self.last = Some(stamp.counter);
        let ms = age.as_secs_f64() * 1e3;
        let (start, _) = *self.first.get_or_insert((stamp.micros, ms));
        let since_start = Duration::from_micros(u64::from(stamp.micros.wrapping_sub(start)));
        if since_start < WARMUP {
            self.warmup += 1;
        } else {
            self.ms.push(ms);
        }
    }

    fn into_path(mut self, path: String, run: &RunFigures, rest: GlassPath) -> GlassPath {
        GlassPath {
            path,
            latency_ms: measure::quantiles(&mut self.ms),
            first_frame_ms: self.first.map_or(0.0, |(_, ms)| ms),
            internal_ms: run.latency_ms,
            frames_sent: run.frames_out,
            frames_decoded: self.decoded,
            frames: self.ms.len() as u64 + self.warmup,
            warmup_frames: self.warmup,
            unreadable: self.unreadable,
            unreadable_why: self.why,
            rejected: self.rejected,
            stale: self.stale,
            bitrate_kbps: DEFAULT_BITRATE_KBPS,
            report: run.reports.first().cloned(),
            ..rest
        }
    }
}

/// sonoflow's own `udp` source on a thread of its own, reading each
/// frame's stamp against the clock it is told ([`MachineClock`]).
struct RtpReceiver {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<anyhow::Result<Tally>>,
}

impl RtpReceiver {
    fn start(port: u16) -> anyhow::Result<Self> {
        let config = SourceConfig {
            kind: Some(SourceKind::Udp),
            port: Some(port),
            address: Some("127.0.0.1".to_owned()),
            // The run loads its model before it sends: no restarts meanwhile.
            restart: RestartConfig {
                stall_timeout_ms: 60_000,
                startup_timeout_ms: 120_000,
                ..RestartConfig::default()
            },
            ..SourceConfig::default()
        };
        let spec = config
            .validate("glass.receiver")
            .map_err(|issue| anyhow!("the receiver's source: {issue}"))?;
        let mut ingest = Ingest::new(spec, Arc::new(MachineClock), FramePool::new(4))
            .context("the receiver's udp source")?;
        let status = ingest.status();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name("glass-rtp".into()).spawn(
            move || -> anyhow::Result<Tally> {
                let mut tally = Tally::default();
                ingest.run(&|| stopped.load(Ordering::Acquire), &mut |frame| {
                    let read = stamp::read(&frame.data, StampImage::packed(frame.format));
                    tally.note(
                        read.map_err(|e| e.to_string()),
                        frame.stamps.captured.nanos() / 1_000,
                    );
                    Flow::Continue
                })?;
                Ok(tally)
            },
        )?;
        // The port is bound once the source runs; nothing may be sent before.
        let started = Instant::now();
        while status.state() != SourceState::Running {
            if thread.is_finished() || started.elapsed() > HANG_GUARD {
                stop.store(true, Ordering::Release);
                return Err(match thread.join() {
                    Ok(Err(e)) => e.context("the receiver's udp source failed"),
                    _ => anyhow!("the receiver's udp source did not start"),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(Self { stop, thread })
    }

    fn finish(self) -> anyhow::Result<Tally> {
        std::thread::sleep(DRAIN);
        self.stop.store(true, Ordering::Release);
        self.thread
            .join()
            .map_err(|_| anyhow!("the receiver's thread panicked"))?
    }
}

/// A reader of an MP4 file that is still being written: a thread feeds
/// its new bytes into `decodebin` as they appear, another takes the
/// decoded frames.
struct Mp4Reader {
    pipeline: gst::Pipeline,
    writer_done: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    tail: JoinHandle<anyhow::Result<()>>,
    frames: JoinHandle<Tally>,
}

impl Mp4Reader {
    fn start(file: PathBuf) -> anyhow::Result<Self> {
        sonoflow_ingest::init_gstreamer()?;
        let pipeline = gst::parse::launch(
            "appsrc name=file format=bytes ! decodebin ! videoconvert ! \
             video/x-raw,format=GRAY8 ! appsink name=frames sync=false",
        )
        .context("the MP4 reader's pipeline (gstreamer1.0-plugins-base, -good, -libav)")?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow!("the MP4 reader is not a pipeline"))?;
        let appsrc = pipeline
            .by_name("file")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .context("the MP4 reader has no appsrc")?;
        let appsink = pipeline
            .by_name("frames")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .context("the MP4 reader has no appsink")?;
        pipeline
            .set_state(gst::State::Playing)
            .context("the MP4 reader does not start")?;
        let writer_done = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::clone(&writer_done);
        let tail = std::thread::Builder::new()
            .name("glass-mp4-tail".into())
            .spawn(move || tail(&file, &appsrc, &done))?;
        let stopped = Arc::clone(&stop);
        let frames = std::thread::Builder::new()
            .name("glass-mp4-frames".into())
            .spawn(move || {
                let mut tally = Tally::default();
                loop {
                    match appsink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
                        Some(sample) => {
                            let now = MachineClock::micros();
                            tally.note(read_sample(&sample), now);
                        }
                        None if appsink.is_eos() || stopped.load(Ordering::Acquire) => break,
                        None => {}
                    }
                }
                tally
            })?;
        Ok(Self {
            pipeline,
            writer_done,
            stop,
            tail,
            frames,
        })
    }

    /// Reads what the writer left, then the decoder's last frames.
    fn finish(self) -> anyhow::Result<Tally> {
        self.writer_done.store(true, Ordering::Release);
        let fed = self
            .tail
            .join()
            .map_err(|_| anyhow!("the MP4 reader's tail panicked"))?;
        let bus = self.pipeline.bus().context("the MP4 reader has no bus")?;
        let end = bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(HANG_GUARD.as_secs()),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        self.stop.store(true, Ordering::Release);
        let tally = self
            .frames
            .join()
            .map_err(|_| anyhow!("the MP4 reader's frames thread panicked"));
        let _ = self.pipeline.set_state(gst::State::Null);
        match end.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Error(e)) => bail!(
                "reading the file back: {} ({})",
                e.error(),
                e.debug().map(|d| d.to_string()).unwrap_or_default()
            ),
            Some(_) => {}
            None => bail!("the MP4 reader did not finish within {HANG_GUARD:?}"),
        }
        fed?;
        tally
    }
}

/// Feeds `file`'s bytes into `appsrc` as they are written, until the
/// writer is done and nothing more came; then ends the stream.
fn tail(file: &Path, appsrc: &gst_app::AppSrc, writer_done: &AtomicBool) -> anyhow::Result<()> {
    let mut open: Option<File> = None;
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        // Looked at before reading: once the writer is done, one more read
        // takes everything it wrote.
        let done = writer_done.load(Ordering::Acquire);
        if open.is_none() {
            open = File::open(file).ok();
        }
        let mut fed = false;
        if let Some(f) = open.as_mut() {
            loop {
                let n = f
                    .read(&mut chunk)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                if n == 0 {
                    break;
                }
                appsrc
                    .push_buffer(gst::Buffer::from_slice(chunk[..n].to_vec()))
                    .map_err(|e| anyhow!("the MP4 reader stopped taking bytes: {e:?}"))?;
                fed = true;
            }
        }
        if done && !fed {
            break;
        }
        if !fed {
            std::thread::sleep(TAIL_POLL);
        }
    }
    appsrc
        .end_of_stream()
        .map_err(|e| anyhow!("the MP4 reader did not take the end: {e:?}"))?;
    Ok(())
}

/// The stamp of a decoded GRAY8 sample (rows as GStreamer pads them).
fn read_sample(sample: &gst::Sample) -> Result<Stamp, String> {
    let caps = sample.caps().ok_or("a sample without caps")?;
    let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| e.to_string())?;
    let buffer = sample.buffer().ok_or("a sample without a buffer")?;
    let map = buffer.map_readable().map_err(|e| e.to_string())?;
    let image = StampImage {
        pixel: PixelFormat::Gray8,
        width: info.width(),
        height: info.height(),
        stride: usize::try_from(info.stride()[0]).map_err(|e| e.to_string())?,
    };
    stamp::read(&map, image).map_err(|e| e.to_string())
}

/// The figures in sentences, one per path (the summary's, the page's).
pub fn sentences(glass: &GlassToGlass) -> Vec<String> {
    let mut lines = Vec::new();
    for (name, path) in [("RTP", &glass.rtp), ("MP4", &glass.mp4)] {
        let Some(p) = path else { continue };
        lines.push(format!(
            "Glass to glass over {name} ({}; {}): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms \
             after the first second (first frame {:.0} ms), {} of {} frames sent read ({} \
             unreadable, {} stale, {} rejected); the same run's own latency (capture to the \
             sink) p50 {:.1} ms, p99 {:.1} ms.",
            p.path,
            glass.scenario,
            p.latency_ms.p50,
            p.latency_ms.p99,
            p.latency_ms.max,
            p.first_frame_ms,
            p.frames,
            p.frames_sent,
            p.unreadable,
            p.stale,
            p.rejected,
            p.internal_ms.p50,
            p.internal_ms.p99,
        ));
    }
    for e in &glass.errors {
        lines.push(format!("Glass to glass not measured: {e}"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(counter: u16, micros: u32) -> Result<Stamp, String> {
        Ok(Stamp { counter, micros })
    }

    #[test]
    fn a_tally_keeps_new_plausible_stamps_only() {
        let mut t = Tally::default();
        // The start-up: its own figure, not in the quantiles.
        t.note(stamp(1, 1_000), 21_000);
        t.note(Err("no stamp".into()), 22_000);
        // Frame 2 dropped on the way: a gap is fine.
        t.note(stamp(3, 1_040_000), 1_070_000);
        // A repeat and a counter going back (stale), a stamp from the future.
        t.note(stamp(3, 1_040_000), 1_071_000);
        t.note(stamp(2, 1_040_000), 1_072_000);
        t.note(stamp(4, 1_090_000), 1_080_000);
        t.note(stamp(5, 1_100_000), 1_140_000);
        // The counter wraps.
        let mut w = Tally {
            last: Some(u16::MAX),
            ..Tally::default()
        };
        w.note(stamp(0, 5), 10);
        assert_eq!((w.warmup, w.stale, w.rejected), (1, 0, 0), "kept");

        let run = RunFigures {
            latency_ms: Quantiles {
                p50: 10.0,
                p99: 12.0,
                max: 13.0,
            },
            frames_out: 9,
            ..RunFigures::default()
        };
        let p = t.into_path("rtp".into(), &run, GlassPath::default());
        assert_eq!(
            (
                p.frames_decoded,
                p.frames,
                p.warmup_frames,
                p.unreadable,
                p.stale,
                p.rejected
            ),
            (7, 3, 1, 1, 2, 1)
        );
        assert_eq!(p.first_frame_ms, 20.0);
        assert_eq!(p.latency_ms.p50, 30.0);
        assert_eq!(p.latency_ms.max, 40.0);
        assert_eq!(p.internal_ms.p50, 10.0);
        assert_eq!(p.frames_sent, 9);
        assert_eq!(p.unreadable_why.as_deref(), Some("no stamp"));
    }

    #[test]
    fn sentences_name_each_path_and_each_failure() {
        let glass = GlassToGlass {
            scenario: "product 640x480@30 cpu".into(),
            rtp: Some(GlassPath {
                path: "rtp sink".into(),
                latency_ms: Quantiles {
                    p50: 40.0,
                    p99: 60.0,
                    max: 70.0,
                },
                frames: 140,
                frames_sent: 150,
                ..GlassPath::default()
            }),
            mp4: None,
            errors: vec!["mp4: no muxer".into()],
        };
        let lines = sentences(&glass);
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].starts_with(
                "Glass to glass over RTP (rtp sink; product 640x480@30 cpu): p50 40.0 ms"
            ),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains("140 of 150 frames sent read"));
        assert_eq!(lines[1], "Glass to glass not measured: mp4: no muxer");
    }
}
