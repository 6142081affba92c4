//! What every source that makes its own frames shares (the phantom, DICOM
//! files, an image dataset): a thread that pushes raw video into an
//! appsrc ([`FeedThread`]), the buffer layout GStreamer expects for it
//! ([`RawLayout`]), and each frame's side data, its ground truth and its
//! calibration, travelling beside the buffer and keyed by the buffer offset
//! (the frame index) through a fixed ring of atomic slots ([`SideQueue`])
//! that neither thread locks.
//!
//! Buffers are laid out as GStreamer lays out raw video of the appsrc's
//! caps: GRAY8 rows padded to a multiple of 4 bytes, RGBA rows of 4 bytes a
//! pixel (never padded).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use gst::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use sonoflow_core::findings::GroundTruth;
use sonoflow_core::{Calibration, PixelFormat};
use tracing::warn;

/// What travels beside one frame of a feed.
#[derive(Debug)]
pub struct FrameSide {
    /// The buffer offset of the frame it belongs to.
    pub frame_index: u64,
    /// The frame's ground truth, for the self-check: the phantom's, a
    /// dataset image's masks, a phantom export's label map.
    pub truth: Option<Arc<GroundTruth>>,
    /// The frame's calibration as the source knows it (the phantom's exact
    /// geometry, a DICOM file's regions, a sidecar), `None` meaning the
    /// source gives none (ingest may then use the definition's). One `Arc`
    /// shared by every frame until it changes, so ingest sees a change by
    /// pointer and allocates nothing.
    pub calibration: Option<Arc<Calibration>>,
}

impl FrameSide {
    /// Side data that is only a calibration (or the lack of one).
    pub fn calibrated(frame_index: u64, calibration: Option<Arc<Calibration>>) -> Self {
        Self {
            frame_index,
            truth: None,
            calibration,
        }
    }
}

/// Side data waiting for its frame: a ring of [`Self::SLOTS`] slots, the
/// side of frame `i` in slot `i % SLOTS` (each side names its frame). The
/// feed thread stores, the ingest thread takes; both are a few atomic
/// operations, never a lock or a wait. A side is dropped when its frame takes
/// it, when a later frame is taken first (its own frame was dropped on the
/// way), or at the latest when the side `SLOTS` frames later replaces it.
pub struct SideQueue {
    slots: [ArcSwapOption<FrameSide>; Self::SLOTS],
    /// The index of the last frame taken (`u64::MAX` before the first).
    last_taken: AtomicU64,
}

impl SideQueue {
    /// Far more frames than are ever between a feed and ingest (the appsrc
    /// holds two, the appsink one or two).
    const SLOTS: usize = 64;

    fn slot(&self, index: u64) -> &ArcSwapOption<FrameSide> {
        &self.slots[(index % Self::SLOTS as u64) as usize]
    }

    /// Stores the side of frame `side.frame_index`, replacing whatever its
    /// slot held (a side `SLOTS` frames older, or of a restarted feed).
    pub fn push(&self, side: Arc<FrameSide>) {
        self.slot(side.frame_index).store(Some(side));
    }

    /// Empties `index`'s slot if it holds a side `wanted` accepts; returns it.
    fn remove_if(&self, index: u64, wanted: impl Fn(u64) -> bool) -> Option<Arc<FrameSide>> {
        let slot = self.slot(index);
        let current = slot.load_full().filter(|t| wanted(t.frame_index))?;
        // If the feed replaced it meanwhile, the newer side stays; this one
        // was already out of the ring, so it is ours either way.
        let _ = slot.compare_and_swap(&current, None::<Arc<FrameSide>>);
        Some(current)
    }

    /// The side of frame `index`, discarding older entries (their frames were dropped).
    pub fn take(&self, index: u64) -> Option<Arc<FrameSide>> {
        // Frames since the last one taken never came: their sides go. (Before
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

impl Default for SideQueue {
    fn default() -> Self {
        Self {
            slots: std::array::from_fn(|_| ArcSwapOption::empty()),
            last_taken: AtomicU64::new(u64::MAX),
        }
    }
}

/// A running feed thread; asked to stop and joined on drop. The pipeline
/// must leave PLAYING first (as `RunningSource` does), so that a feed
/// blocked in a full appsrc is released.
pub(crate) struct FeedThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FeedThread {
    /// Runs `feed(stop)` on a thread called `name`; `feed` returns when
    /// `stop` is set, when its appsrc refuses a buffer, or when it is done.
    pub(crate) fn start(name: &str, feed: impl FnOnce(&AtomicBool) + Send + 'static) -> FeedThread {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || feed(&stop))
                .ok()
        };
        if thread.is_none() {
            warn!("could not start the {name} thread");
        }
        FeedThread { stop, thread }
    }
}

impl Drop for FeedThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Buffers a feed's pool holds at most: far more than are ever between a
/// feed and ingest (the appsrc's queue, the converters, the appsink), so a
/// feed only waits for one when the pipeline is stuck.
const FEED_POOL_BUFFERS: u32 = 16;

/// How GStreamer lays out one raw frame of a format and size, the caps that
/// announce it, and the pool its buffers come from: allocated as the feed
/// first needs them, then reused, so a long run's memory does not ratchet
/// up each time the pipeline holds one more frame than before.
pub(crate) struct RawLayout {
    pub caps: gst::Caps,
    /// Bytes of a tightly packed row.
    pub row: usize,
    /// Bytes from one row to the next in the buffer (`row` or more).
    pub stride: usize,
    /// Bytes of the whole buffer.
    pub size: usize,
    pool: gst::BufferPool,
}

impl Drop for RawLayout {
    fn drop(&mut self) {
        // Buffers still in the pipeline are freed as they come back.
        let _ = self.pool.set_active(false);
    }
}

impl RawLayout {
    /// The layout of `width`x`height` `format` at `framerate` (numerator,
    /// denominator; 0/1 for a still image).
    pub(crate) fn new(
        format: PixelFormat,
        width: u32,
        height: u32,
        framerate: (i32, i32),
    ) -> Result<Self, gst::glib::BoolError> {
        let video_format = match format {
            PixelFormat::Gray8 => gst_video::VideoFormat::Gray8,
            PixelFormat::Rgba => gst_video::VideoFormat::Rgba,
        };
        let info = gst_video::VideoInfo::builder(video_format, width, height)
            .fps(gst::Fraction::new(framerate.0, framerate.1))
            .build()?;
        let caps = info.to_caps()?;
        let row = width as usize * format.bytes_per_pixel();
        let stride = usize::try_from(info.stride()[0]).unwrap_or(row).max(row);
        let size = info.size();
        let pool = gst::BufferPool::new();
        let mut config = pool.config();
        let bytes = u32::try_from(size)
            .map_err(|_| gst::glib::bool_error!("a {size}-byte frame is too large"))?;
        config.set_params(Some(&caps), bytes, 0, FEED_POOL_BUFFERS);
        pool.set_config(config)?;
        pool.set_active(true)?;
        Ok(Self {
            caps,
            row,
            stride,
            size,
            pool,
        })
    }

    /// A buffer of this layout stamped with `pts`, `duration` and `offset`,
    /// filled by `fill(mapped bytes, stride)`; `None` if GStreamer could not
    /// give or map one, or `fill` said no (it gives the reason).
    pub(crate) fn buffer<E>(
        &self,
        pts: Duration,
        duration: Duration,
        offset: u64,
        fill: impl FnOnce(&mut [u8], usize) -> Result<(), E>,
    ) -> Result<gst::Buffer, BufferError<E>> {
        let mut buffer = self
            .pool
            .acquire_buffer(None)
            .map_err(|_| BufferError::Alloc)?;
        {
            let buf = buffer.get_mut().ok_or(BufferError::Alloc)?;
            buf.set_pts(clock_time(pts));
            buf.set_duration(clock_time(duration));
            buf.set_offset(offset);
            let mut map = buf.map_writable().map_err(|_| BufferError::Alloc)?;
            fill(&mut map, self.stride).map_err(BufferError::Fill)?;
        }
        Ok(buffer)
    }
}

impl RawLayout {
    /// `pixels`, tightly packed rows, as a buffer of this layout without a
    /// copy, stamped like [`RawLayout::buffer`]; the pixels back when this
    /// layout pads its rows or their size is not the layout's.
    pub(crate) fn wrap(
        &self,
        pixels: Vec<u8>,
        pts: Duration,
        duration: Duration,
        offset: u64,
    ) -> Result<gst::Buffer, Vec<u8>> {
        if self.stride != self.row || pixels.len() != self.size {
            return Err(pixels);
        }
        let mut buffer = gst::Buffer::from_mut_slice(pixels);
        if let Some(buf) = buffer.get_mut() {
            buf.set_pts(clock_time(pts));
            buf.set_duration(clock_time(duration));
            buf.set_offset(offset);
        }
        Ok(buffer)
    }
}

/// Why [`RawLayout::buffer`] gave no buffer.
pub(crate) enum BufferError<E> {
    /// GStreamer gave no writable buffer of the size.
    Alloc,
    /// The frame could not be made.
    Fill(E),
}

pub(crate) fn clock_time(d: Duration) -> gst::ClockTime {
    gst::ClockTime::from_nseconds(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Pushes `side` then `buffer`; false when the appsrc refuses (flushing or
/// stopped: the pipeline is going away).
pub(crate) fn push(
    appsrc: &gst_app::AppSrc,
    sides: &SideQueue,
    side: FrameSide,
    buffer: gst::Buffer,
) -> bool {
    sides.push(Arc::new(side));
    appsrc.push_buffer(buffer).is_ok()
}

/// The files a `path` names, in the order they play: the file itself, or
/// the regular files of a folder (not its subfolders, not hidden files) in
/// name order.
pub(crate) fn playlist(path: &Path) -> io::Result<Vec<PathBuf>> {
    if !std::fs::metadata(path)?.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        // Follows links: a link to a file is a file.
        if !hidden && std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// A file's name for logs and errors (not its folder).
pub(crate) fn file_name(path: &Path) -> String {
    path.file_name()
        .unwrap_or(path.as_os_str())
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonoflow_core::findings::{ImageRegion, LabelMap, PixelSpacing};

    fn side(frame_index: u64) -> Arc<FrameSide> {
        Arc::new(FrameSide {
            frame_index,
            truth: Some(Arc::new(GroundTruth {
                frame_index,
                scene: None,
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
            })),
            calibration: None,
        })
    }

    fn held(q: &SideQueue) -> usize {
        q.slots.iter().filter(|s| s.load().is_some()).count()
    }

    fn taken(q: &SideQueue, index: u64) -> Option<u64> {
        q.take(index).map(|t| t.frame_index)
    }

    #[test]
    fn side_is_matched_to_its_frame_by_offset() {
        let q = SideQueue::default();
        for i in 0..5 {
            q.push(side(i));
        }
        assert_eq!(taken(&q, 2), Some(2));
        assert_eq!(taken(&q, 2), None, "taken once");
        assert_eq!(taken(&q, 4), Some(4));
        assert_eq!(taken(&q, 3), None, "dropped when frame 4 came first");
        assert_eq!(held(&q), 0);
    }

    #[test]
    fn sides_of_dropped_frames_are_discarded() {
        let q = SideQueue::default();
        for i in 0..10 {
            q.push(side(i));
        }
        q.push(side(10));
        assert_eq!(taken(&q, 9), Some(9));
        assert_eq!(held(&q), 1, "only the side of frame 10 is left");
        assert_eq!(taken(&q, 10), Some(10));
    }

    #[test]
    fn a_frame_ahead_of_its_side_gets_none_and_leaves_newer_sides() {
        let q = SideQueue::default();
        q.push(side(5));
        assert_eq!(taken(&q, 3), None);
        assert_eq!(taken(&q, 5), Some(5));
        // A side one ring later in the slot of an earlier frame stays too.
        q.push(side(70));
        assert_eq!(taken(&q, 6), None);
        assert_eq!(taken(&q, 70), Some(70));
    }

    #[test]
    fn bounded_when_nothing_is_taken() {
        let q = SideQueue::default();
        for i in 0..1000 {
            q.push(side(i));
        }
        assert_eq!(held(&q), SideQueue::SLOTS);
        assert_eq!(taken(&q, 999), Some(999));
        assert_eq!(taken(&q, 900), None);
        assert_eq!(held(&q), 0);
    }

    #[test]
    fn a_restarted_feed_is_matched_from_its_first_frame() {
        let q = SideQueue::default();
        for i in 0..100 {
            q.push(side(i));
        }
        assert_eq!(taken(&q, 99), Some(99));
        q.push(side(0));
        q.push(side(1));
        assert_eq!(taken(&q, 0), Some(0));
        assert_eq!(taken(&q, 1), Some(1));
    }

    /// The feed and ingest threads at once, the feed up to 16 frames ahead
    /// (as the appsrc and appsink let it be): every frame that reaches
    /// ingest gets its own side, and the sides of dropped frames go.
    #[test]
    fn concurrent_push_and_take_match_every_frame() {
        const FRAMES: u64 = 20_000;
        const AHEAD: u64 = 16;
        let q = SideQueue::default();
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
                    q.push(side(i));
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
        assert!(held(&q) <= 1, "stale sides left: {}", held(&q));
    }

    /// The absence, checked: the side path names no lock.
    #[test]
    fn the_side_path_takes_no_lock() {
        for (name, source) in [
            ("feed.rs", include_str!("feed.rs")),
            ("phantom_feed.rs", include_str!("phantom_feed.rs")),
            ("images.rs", include_str!("images.rs")),
        ] {
            for lock in
                [["Mu", "tex"], ["Rw", "Lock"], [".lock", "()"]].map(|[a, b]| format!("{a}{b}"))
            {
                let hit = source.lines().position(|l| {
                    l.split("//")
                        .next()
                        .is_some_and(|c| c.contains(lock.as_str()))
                });
                assert_eq!(hit, None, "{lock} in {name} (line index)");
            }
        }
    }

    #[test]
    fn gray8_rows_are_padded_to_four_bytes_and_rgba_rows_are_not() {
        gst::init().expect("GStreamer init");
        let gray = RawLayout::new(PixelFormat::Gray8, 642, 3, (30, 1)).expect("layout");
        assert_eq!((gray.row, gray.stride, gray.size), (642, 644, 644 * 3));
        let rgba = RawLayout::new(PixelFormat::Rgba, 641, 3, (0, 1)).expect("layout");
        assert_eq!((rgba.row, rgba.stride, rgba.size), (2564, 2564, 2564 * 3));
    }

    #[test]
    fn a_folder_plays_its_files_in_name_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["b.dcm", "a.dcm", ".hidden", "c"] {
            std::fs::write(dir.path().join(name), b"x").expect("write");
        }
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        let names: Vec<String> = playlist(dir.path())
            .expect("list")
            .iter()
            .map(|p| file_name(p))
            .collect();
        assert_eq!(names, ["a.dcm", "b.dcm", "c"]);
        let one = dir.path().join("b.dcm");
        assert_eq!(playlist(&one).expect("file"), vec![one.clone()]);
        assert!(playlist(&dir.path().join("missing")).is_err());
    }
}
