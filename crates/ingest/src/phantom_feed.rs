//! The phantom as a live GStreamer source: a thread renders frames at the
//! requested frame rate and pushes them into an appsrc; each frame's ground
//! truth travels beside it, keyed by the buffer offset (the frame index).
//!
//! Buffers are laid out as GStreamer lays out raw video of the appsrc's caps:
//! GRAY8 rows padded to a multiple of 4 bytes. The phantom renders tightly
//! packed rows, so a width that is not a multiple of 4 is rendered into a
//! scratch image (allocated once) and copied row by row into the buffer.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use sonoflow_core::findings::GroundTruth;
use sonoflow_phantom::{Phantom, PhantomConfig};
use tracing::warn;

/// Name of the appsrc the phantom feeds.
pub const PHANTOM_APPSRC: &str = "sonoflow_phantom";

/// Ground truth waiting for its frame; old entries fall off the front.
#[derive(Default)]
pub struct TruthQueue {
    entries: Mutex<VecDeque<(u64, Arc<GroundTruth>)>>,
}

impl TruthQueue {
    const CAPACITY: usize = 64;

    fn push(&self, index: u64, truth: Arc<GroundTruth>) {
        if let Ok(mut q) = self.entries.lock() {
            if q.len() == Self::CAPACITY {
                q.pop_front();
            }
            q.push_back((index, truth));
        }
    }

    /// The truth of frame `index`, discarding older entries (their frames were dropped).
    pub fn take(&self, index: u64) -> Option<Arc<GroundTruth>> {
        let mut q = self.entries.lock().ok()?;
        while let Some((i, _)) = q.front() {
            if *i < index {
                q.pop_front();
            } else {
                break;
            }
        }
        match q.front() {
            Some((i, _)) if *i == index => q.pop_front().map(|(_, t)| t),
            _ => None,
        }
    }
}

/// The running generator thread; stops and joins on drop.
pub struct PhantomFeed {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PhantomFeed {
    pub fn start(config: PhantomConfig, appsrc: gst_app::AppSrc, truths: Arc<TruthQueue>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("sonoflow-phantom".into())
                .spawn(move || feed(config, &appsrc, &truths, &stop))
                .ok()
        };
        if thread.is_none() {
            warn!("could not start the phantom thread");
        }
        Self { stop, thread }
    }
}

impl Drop for PhantomFeed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn feed(config: PhantomConfig, appsrc: &gst_app::AppSrc, truths: &TruthQueue, stop: &AtomicBool) {
    let fps = u64::from(config.fps.max(1));
    let mut phantom = match Phantom::new(config) {
        Ok(p) => p,
        Err(err) => {
            warn!("phantom: {err}");
            let _ = appsrc.end_of_stream();
            return;
        }
    };
    let format = phantom.format();
    let row = format.stride();
    let layout = match gst_video::VideoInfo::builder(
        gst_video::VideoFormat::Gray8,
        format.width,
        format.height,
    )
    .build()
    {
        Ok(info) => info,
        Err(err) => {
            warn!(
                "phantom: no GStreamer layout for {}x{}: {err}",
                format.width, format.height
            );
            let _ = appsrc.end_of_stream();
            return;
        }
    };
    let (len, stride) = (
        layout.size(),
        usize::try_from(layout.stride()[0]).unwrap_or(row),
    );
    // Rows padded by GStreamer: render tightly packed here, then copy.
    let mut scratch = if stride == row {
        Vec::new()
    } else {
        vec![0u8; format.len()]
    };
    let period = Duration::from_nanos(1_000_000_000 / fps);
    let start = Instant::now();
    let mut index = 0u64;
    while !stop.load(Ordering::Acquire) {
        // Live timing: frame k is due at start + k / fps; a late frame is
        // sent at once, and a generator that falls behind skips ahead.
        let due = start + period * index as u32;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else if now - due > period * 4 {
            index = ((now - start).as_nanos() / period.as_nanos()) as u64;
        }
        let Ok(mut buffer) = gst::Buffer::with_size(len) else {
            warn!("phantom: no buffer of {len} bytes");
            break;
        };
        let truth = {
            let Some(buf) = buffer.get_mut() else { break };
            buf.set_pts(gst::ClockTime::from_nseconds(index * 1_000_000_000 / fps));
            buf.set_duration(gst::ClockTime::from_nseconds(1_000_000_000 / fps));
            buf.set_offset(index);
            let Ok(mut map) = buf.map_writable() else {
                break;
            };
            if scratch.is_empty() {
                phantom.render(index, &mut map)
            } else {
                let truth = phantom.render(index, &mut scratch);
                for (dst, src) in map.chunks_mut(stride).zip(scratch.chunks_exact(row)) {
                    if let Some(dst) = dst.get_mut(..row) {
                        dst.copy_from_slice(src);
                    }
                }
                truth
            }
        };
        truths.push(index, Arc::new(truth));
        if appsrc.push_buffer(buffer).is_err() {
            break; // flushing or stopped: the pipeline is going away
        }
        index += 1;
    }
}
