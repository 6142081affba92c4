//! The phantom as a live GStreamer source: a thread renders frames at the
//! requested frame rate and pushes them into an appsrc; each frame's ground
//! truth travels beside it, keyed by the buffer offset (the frame index),
//! through a fixed ring of atomic slots ([`TruthQueue`]) that neither thread
//! locks.
//!
//! Buffers are laid out as GStreamer lays out raw video of the appsrc's caps:
//! GRAY8 rows padded to a multiple of 4 bytes. The phantom renders tightly
//! packed rows, so a width that is not a multiple of 4 is rendered into a
//! scratch image (allocated once) and copied row by row into the buffer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use gstreamer as gst;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use sonoflow_core::findings::GroundTruth;
use sonoflow_phantom::{Phantom, PhantomConfig};
use tracing::warn;

/// Name of the appsrc the phantom feeds.
pub const PHANTOM_APPSRC: &str = "sonoflow_phantom";

/// Ground truth waiting for its frame: a ring of [`Self::SLOTS`] slots, the
/// truth of frame `i` in slot `i % SLOTS` (each truth names its frame). The
/// phantom thread stores, the ingest thread takes; both are a few atomic
/// operations, never a lock or a wait. A truth is dropped when its frame takes
/// it, when a later frame is taken first (its own frame was dropped on the
/// way), or at the latest when the truth `SLOTS` frames later replaces it.
pub struct TruthQueue {
    slots: [ArcSwapOption<GroundTruth>; Self::SLOTS],
    /// The index of the last frame taken (`u64::MAX` before the first).
    last_taken: AtomicU64,
}

impl TruthQueue {
    /// Far more frames than are ever between the phantom and ingest (the
    /// appsrc holds two, the appsink one).
    const SLOTS: usize = 64;

    fn slot(&self, index: u64) -> &ArcSwapOption<GroundTruth> {
        &self.slots[(index % Self::SLOTS as u64) as usize]
    }

    /// Stores the truth of frame `truth.frame_index`, replacing whatever its
    /// slot held (a truth `SLOTS` frames older, or of a restarted feed).
    fn push(&self, truth: Arc<GroundTruth>) {
        self.slot(truth.frame_index).store(Some(truth));
    }

    /// Empties `index`'s slot if it holds a truth `wanted` accepts; returns it.
    fn remove_if(&self, index: u64, wanted: impl Fn(u64) -> bool) -> Option<Arc<GroundTruth>> {
        let slot = self.slot(index);
        let current = slot.load_full().filter(|t| wanted(t.frame_index))?;
        // If the phantom replaced it meanwhile, the newer truth stays; this
        // one was already out of the ring, so it is ours either way.
        let _ = slot.compare_and_swap(&current, None::<Arc<GroundTruth>>);
        Some(current)
    }

    /// The truth of frame `index`, discarding older entries (their frames were dropped).
    pub fn take(&self, index: u64) -> Option<Arc<GroundTruth>> {
        // Frames since the last one taken never came: their truths go. (Before
        // the first frame, or after a restart renumbered them, all the ring.)
        let last = self.last_taken.swap(index, Ordering::Relaxed);
        let ring_start = index.saturating_sub(Self::SLOTS as u64 - 1);
        let first = match last {
            u64::MAX => ring_start,
            last if last >= index => ring_start,
            last => (last + 1).max(ring_start),
        };
        for skipped in first..index {
            drop(self.remove_if(skipped, |i| i < index));
        }
        self.remove_if(index, |i| i == index)
    }
}

impl Default for TruthQueue {
    fn default() -> Self {
        Self {
            slots: std::array::from_fn(|_| ArcSwapOption::empty()),
            last_taken: AtomicU64::new(u64::MAX),
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
        // The truth names its frame (`frame_index`), the buffer's offset.
        truths.push(Arc::new(truth));
        if appsrc.push_buffer(buffer).is_err() {
            break; // flushing or stopped: the pipeline is going away
        }
        index += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonoflow_core::findings::{ImageRegion, LabelMap, PixelSpacing};

    fn truth(frame_index: u64) -> Arc<GroundTruth> {
        Arc::new(GroundTruth {
            frame_index,
            pixel_spacing: PixelSpacing::isotropic(0.1),
            region: ImageRegion::Rect {
                x0: 0,
                y0: 0,
                x1: 1,
                y1: 1,
            },
            lesions: Vec::new(),
            labels: LabelMap {
                width: 1,
                height: 1,
                data: vec![0],
            },
        })
    }

    fn held(q: &TruthQueue) -> usize {
        q.slots.iter().filter(|s| s.load().is_some()).count()
    }

    fn taken(q: &TruthQueue, index: u64) -> Option<u64> {
        q.take(index).map(|t| t.frame_index)
    }

    #[test]
    fn truth_is_matched_to_its_frame_by_offset() {
        let q = TruthQueue::default();
        for i in 0..5 {
            q.push(truth(i));
        }
        assert_eq!(taken(&q, 2), Some(2));
        assert_eq!(taken(&q, 2), None, "taken once");
        assert_eq!(taken(&q, 4), Some(4));
        assert_eq!(taken(&q, 3), None, "dropped when frame 4 came first");
        assert_eq!(held(&q), 0);
    }

    #[test]
    fn truths_of_dropped_frames_are_discarded() {
        let q = TruthQueue::default();
        for i in 0..10 {
            q.push(truth(i));
        }
        q.push(truth(10));
        assert_eq!(taken(&q, 9), Some(9));
        assert_eq!(held(&q), 1, "only the truth of frame 10 is left");
        assert_eq!(taken(&q, 10), Some(10));
    }

    #[test]
    fn a_frame_ahead_of_its_truth_gets_none_and_leaves_newer_truths() {
        let q = TruthQueue::default();
        q.push(truth(5));
        assert_eq!(taken(&q, 3), None);
        assert_eq!(taken(&q, 5), Some(5));
        // A truth one ring later in the slot of an earlier frame stays too.
        q.push(truth(70));
        assert_eq!(taken(&q, 6), None);
        assert_eq!(taken(&q, 70), Some(70));
    }

    #[test]
    fn bounded_when_nothing_is_taken() {
        let q = TruthQueue::default();
        for i in 0..1000 {
            q.push(truth(i));
        }
        assert_eq!(held(&q), TruthQueue::SLOTS);
        assert_eq!(taken(&q, 999), Some(999));
        assert_eq!(taken(&q, 900), None);
        assert_eq!(held(&q), 0);
    }

    #[test]
    fn a_restarted_feed_is_matched_from_its_first_frame() {
        let q = TruthQueue::default();
        for i in 0..100 {
            q.push(truth(i));
        }
        assert_eq!(taken(&q, 99), Some(99));
        q.push(truth(0));
        q.push(truth(1));
        assert_eq!(taken(&q, 0), Some(0));
        assert_eq!(taken(&q, 1), Some(1));
    }

    /// The phantom and ingest threads at once, the phantom up to 16 frames
    /// ahead (as the appsrc and appsink let it be): every frame that reaches
    /// ingest gets its own truth, and the truths of dropped frames go.
    #[test]
    fn concurrent_push_and_take_match_every_frame() {
        const FRAMES: u64 = 20_000;
        const AHEAD: u64 = 16;
        let q = TruthQueue::default();
        let (pushed, reached) = (AtomicU64::new(0), AtomicU64::new(0));
        let wait_for = |counter: &AtomicU64, n: u64| {
            while counter.load(Ordering::Acquire) < n {
                std::thread::yield_now();
            }
        };
        let (matched, expected) = std::thread::scope(|scope| {
            scope.spawn(|| {
                for i in 0..FRAMES {
                    wait_for(&reached, i.saturating_sub(AHEAD));
                    q.push(truth(i));
                    pushed.store(i + 1, Ordering::Release);
                }
            });
            let (mut matched, mut expected) = (0u64, 0u64);
            for i in 0..FRAMES {
                wait_for(&pushed, i + 1);
                // Every third frame is dropped before ingest, as a busy appsink does.
                if i % 3 != 1 {
                    expected += 1;
                    if let Some(t) = q.take(i) {
                        assert_eq!(t.frame_index, i);
                        matched += 1;
                    }
                }
                reached.store(i + 1, Ordering::Release);
            }
            (matched, expected)
        });
        assert_eq!(matched, expected);
        assert!(held(&q) <= 1, "stale truths left: {}", held(&q));
    }

    /// The absence, checked: the truth path names no lock.
    #[test]
    fn the_truth_path_takes_no_lock() {
        let source = include_str!("phantom_feed.rs");
        for lock in [["Mu", "tex"], ["Rw", "Lock"], [".lock", "()"]].map(|[a, b]| format!("{a}{b}"))
        {
            let hit = source.lines().position(|l| {
                l.split("//")
                    .next()
                    .is_some_and(|c| c.contains(lock.as_str()))
            });
            assert_eq!(hit, None, "{lock} in phantom_feed.rs (line index)");
        }
    }
}
