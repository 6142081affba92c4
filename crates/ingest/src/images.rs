//! An image dataset as a source (`kind = "images"`): a feed thread loads
//! one item at a time with sonoflow-dataset (a folder of PNG, JPEG or BMP
//! images with their masks and sidecars, a pattern, one image, or a phantom
//! export) and pushes its pixels into an appsrc, each frame's ground truth
//! and calibration beside it through the [`SideQueue`]. The usual
//! `videoconvert ! videoscale ! appsink` tail follows, so an image reaches
//! ingest like any other frame. Try it with `sonoflow eval DATASET`, or
//! `sonoflow run` and a `[source] kind = "images"` section (docs/sources.md).
//!
//! - Order: the dataset's (natural order of the path; a phantom export's
//!   `truth.jsonl`).
//! - Timing: frame `i` is stamped `i / fps`. Not live (the default), the
//!   appsrc blocks until ingest takes the frame: every image is kept, as
//!   fast as the pipeline goes. Live, frames are due at their stamp; one
//!   more than 4 frame times late is skipped unloaded (counted as lost
//!   before ingest).
//! - Sizes: an image of another size or pixel format than the one before
//!   it is announced as new caps before its buffer, a caps change for
//!   ingest.
//! - Calibration: the sidecar's, else the definition's fixed one made for
//!   the image's size, else none; a phantom export's frames carry the
//!   phantom's exact geometry. The truth's millimetres use the same one.
//! - Bad items: an image that cannot be decoded, a mask of the wrong size,
//!   a bad sidecar (and a line of `truth.jsonl` that does not parse) is
//!   skipped with a warning naming the file and why, counted once in
//!   `source.skipped` however often the dataset loops, and the stream goes
//!   on. A dataset with no item that loads fails at start.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer_app as gst_app;
use sonoflow_calibrate::FixedCalibration;
use sonoflow_core::{Calibration, FrameFormat};
use sonoflow_dataset::{Dataset, Item, ItemError};
use tracing::{info, warn};

use crate::feed::{self, BufferError, FeedThread, FrameSide, RawLayout, SideQueue};
use crate::{IngestError, SourceStatus};

/// Name of the appsrc the image feed pushes into.
pub const IMAGES_APPSRC: &str = "sonoflow_images";

/// A late live frame more than this many frame times behind is skipped.
const LATE_FRAMES: u32 = 4;

/// What a `kind = "images"` source plays, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSettings {
    /// A folder, a pattern, one image, or a phantom export.
    pub path: PathBuf,
    /// Paced at `framerate` (true), or as fast as ingest takes frames,
    /// nothing dropped (false: evaluation).
    pub live: bool,
    /// Start again from the first item after the last.
    pub looping: bool,
    /// Frames per second as numerator and denominator: the stamps, and
    /// the pace when live.
    pub framerate: (u32, u32),
    /// The definition's fixed calibration, for images without a sidecar.
    pub fixed: Option<FixedCalibration>,
}

impl ImageSettings {
    /// 30 frames per second, as a cart's video.
    pub const DEFAULT_FRAMERATE: (u32, u32) = (30, 1);

    /// Running time of frame `index`.
    fn stamp(&self, index: u64) -> Duration {
        let (numer, denom) = (
            u128::from(self.framerate.0.max(1)),
            u128::from(self.framerate.1),
        );
        let nanos = u128::from(index) * denom * 1_000_000_000 / numer;
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// A dataset listed and checked at start, shared by every start of the
/// feed (a live source's restarts, loops).
pub(crate) struct OpenDataset {
    dataset: Dataset,
    /// Whether item `i`'s failure was already reported (warned, counted).
    reported: Vec<AtomicBool>,
}

impl OpenDataset {
    /// Warns about and counts item `index`'s failure, the first time only.
    fn report(&self, index: usize, why: &ItemError, status: &SourceStatus) {
        let first = self
            .reported
            .get(index)
            .is_some_and(|r| !r.swap(true, Ordering::Relaxed));
        if first {
            warn!("images: skipped: {why}");
            status.note_skipped();
        }
    }
}

/// Lists the dataset and checks, before the run starts, that at least one
/// of its items loads: items are tried in order until one does. Items that
/// failed on the way, and lines of a phantom export's `truth.jsonl` that
/// do not parse, are warned about and counted as skipped here, once.
pub(crate) fn open(
    settings: &ImageSettings,
    status: &SourceStatus,
) -> Result<Arc<OpenDataset>, IngestError> {
    let dataset = Dataset::open(&settings.path).map_err(IngestError::Dataset)?;
    let open = OpenDataset {
        reported: dataset
            .items()
            .iter()
            .map(|_| AtomicBool::new(false))
            .collect(),
        dataset,
    };
    let items = open.dataset.items();
    let mut failed = Vec::new();
    for item in items {
        match item.load(0, None) {
            Ok(_) => break,
            Err(why) => failed.push(why),
        }
    }
    if failed.len() == items.len() {
        return Err(IngestError::NoPlayableImage {
            path: settings.path.display().to_string(),
            unplayable: failed,
        });
    }
    for skipped in open.dataset.skipped() {
        warn!("images: skipped: {skipped}");
        status.note_skipped();
    }
    for (index, why) in failed.iter().enumerate() {
        open.report(index, why, status);
    }
    info!(
        "images: {} ({}): {} item{}",
        settings.path.display(),
        open.dataset.kind().name(),
        items.len(),
        if items.len() == 1 { "" } else { "s" }
    );
    Ok(Arc::new(open))
}

/// Starts the feed thread; it stops and joins on drop.
pub(crate) fn start(
    settings: ImageSettings,
    dataset: Arc<OpenDataset>,
    appsrc: gst_app::AppSrc,
    sides: Arc<SideQueue>,
    status: Arc<SourceStatus>,
) -> FeedThread {
    FeedThread::start("sonoflow-images", move |stop| {
        Feed {
            settings: &settings,
            open: &dataset,
            appsrc: &appsrc,
            sides: &sides,
            status: &status,
            stop,
            next_index: 0,
            anchor: None,
            layout: None,
            fixed: None,
            shared: None,
        }
        .run();
    })
}

/// The feed's running state across items and passes.
struct Feed<'a> {
    settings: &'a ImageSettings,
    open: &'a OpenDataset,
    appsrc: &'a gst_app::AppSrc,
    sides: &'a SideQueue,
    status: &'a SourceStatus,
    stop: &'a AtomicBool,
    /// Buffer offset of the next frame (a late frame skipped leaves a gap).
    next_index: u64,
    /// Live: the instant running time 0 was due.
    anchor: Option<Instant>,
    /// The layout (and caps) the appsrc announces now, and its format.
    layout: Option<(FrameFormat, RawLayout)>,
    /// The definition's calibration made for the last image size (None
    /// inside: it does not fit that size; ingest says so).
    fixed: Option<((u32, u32), Option<Calibration>)>,
    /// The calibration the last calibrated frame carried: shared by the
    /// frames after it while it stays the same, so ingest sees no change.
    shared: Option<Arc<Calibration>>,
}

/// What became of one item.
enum Played {
    Pushed,
    Skipped,
    /// The pipeline is going away.
    Stop,
}

impl Feed<'_> {
    fn run(&mut self) {
        let open = self.open;
        let items = open.dataset.items();
        let period = self.settings.stamp(1);
        for _pass in 0u64.. {
            // Items loaded or failed in this pass (not skipped as late), and pushed.
            let (mut tried, mut pushed) = (0u64, 0u64);
            let mut index = 0;
            while index < items.len() {
                if self.stop.load(Ordering::Acquire) {
                    return;
                }
                if self.settings.live {
                    let anchor = *self.anchor.get_or_insert_with(Instant::now);
                    let due = anchor + self.settings.stamp(self.next_index);
                    let now = Instant::now();
                    if now > due && now - due > period * LATE_FRAMES {
                        // Behind: skip, unloaded, to the frame due now.
                        let behind = (now - due).as_nanos() / period.as_nanos().max(1);
                        let skip = usize::try_from(behind)
                            .unwrap_or(usize::MAX)
                            .min(items.len() - index);
                        index += skip;
                        self.next_index += skip as u64;
                        continue;
                    }
                }
                tried += 1;
                match self.play(index, &items[index]) {
                    Played::Pushed => pushed += 1,
                    Played::Skipped => {}
                    Played::Stop => return,
                }
                index += 1;
            }
            if !self.settings.looping {
                break;
            }
            if pushed == 0 && tried > 0 {
                warn!(
                    "images: no item of {} could be played; the stream ends",
                    self.settings.path.display()
                );
                break;
            }
        }
        let _ = self.appsrc.end_of_stream();
    }

    /// Loads item `index` and pushes it.
    fn play(&mut self, index: usize, item: &Item) -> Played {
        let (fixed_setting, fixed) = (self.settings.fixed.as_ref(), &mut self.fixed);
        let loaded = item.load_with(self.next_index, |width, height| {
            let setting = fixed_setting?;
            match fixed {
                Some((size, made)) if *size == (width, height) => made.clone(),
                _ => {
                    let made = setting.for_frame(width, height).ok();
                    *fixed = Some(((width, height), made.clone()));
                    made
                }
            }
        });
        let sample = match loaded {
            Ok(sample) => sample,
            Err(why) => {
                self.open.report(index, &why, self.status);
                return Played::Skipped;
            }
        };
        let format = sample.format;
        if self.layout.as_ref().map(|(f, _)| *f) != Some(format) {
            let (numer, denom) = self.settings.framerate;
            let rate = (
                i32::try_from(numer).unwrap_or(i32::MAX),
                i32::try_from(denom).unwrap_or(i32::MAX),
            );
            match RawLayout::new(format.pixel, format.width, format.height, rate) {
                Ok(layout) => {
                    self.appsrc.set_caps(Some(&layout.caps));
                    self.layout = Some((format, layout));
                }
                Err(err) => {
                    let why = ItemError::Image {
                        path: item.image.clone(),
                        cause: format!(
                            "GStreamer has no layout for {}x{}: {err}",
                            format.width, format.height
                        ),
                    };
                    self.open.report(index, &why, self.status);
                    return Played::Skipped;
                }
            }
        }
        let Some((_, layout)) = &self.layout else {
            return Played::Skipped;
        };
        let pts = self.settings.stamp(self.next_index);
        let duration = self.settings.stamp(self.next_index + 1) - pts;
        // Tightly packed rows are GStreamer's layout unless GRAY8 rows need
        // padding: then the decoded pixels become the buffer as they are.
        let buffer = match layout.wrap(sample.pixels, pts, duration, self.next_index) {
            Ok(buffer) => buffer,
            Err(pixels) => {
                let row = layout.row;
                let made = layout.buffer(pts, duration, self.next_index, |map, stride| {
                    for (dst, src) in map.chunks_mut(stride).zip(pixels.chunks_exact(row)) {
                        if let Some(dst) = dst.get_mut(..row) {
                            dst.copy_from_slice(src);
                        }
                    }
                    Ok::<(), ()>(())
                });
                match made {
                    Ok(buffer) => buffer,
                    Err(BufferError::Alloc | BufferError::Fill(())) => {
                        warn!(
                            "images: no buffer of {} bytes; the stream ends",
                            layout.size
                        );
                        return Played::Stop;
                    }
                }
            }
        };
        let calibration = self.share(sample.calibration);
        let side = FrameSide {
            frame_index: self.next_index,
            truth: sample.truth.map(Arc::new),
            calibration,
        };
        if self.settings.live {
            // Loaded ahead of time; pushed when due.
            if let Some(anchor) = self.anchor {
                let due = anchor + pts;
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
            }
        }
        if !feed::push(self.appsrc, self.sides, side, buffer) {
            return Played::Stop; // flushing or stopped: the pipeline is going away
        }
        self.next_index += 1;
        Played::Pushed
    }

    /// `calibration` as an `Arc`, the last one's if they are equal.
    fn share(&mut self, calibration: Option<Calibration>) -> Option<Arc<Calibration>> {
        let calibration = calibration?;
        if let Some(last) = self.shared.as_ref().filter(|last| ***last == calibration) {
            return Some(Arc::clone(last));
        }
        let shared = Arc::new(calibration);
        self.shared = Some(Arc::clone(&shared));
        Some(shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn settings(path: &Path) -> ImageSettings {
        ImageSettings {
            path: path.to_path_buf(),
            live: false,
            looping: false,
            framerate: ImageSettings::DEFAULT_FRAMERATE,
            fixed: None,
        }
    }

    fn png(path: &Path, width: u32, height: u32) {
        image::GrayImage::from_fn(width, height, |x, y| image::Luma([(x * 7 + y * 3) as u8]))
            .save(path)
            .expect("write png");
    }

    #[test]
    fn frames_are_stamped_at_the_rate_without_drift() {
        let mut s = settings(Path::new("d"));
        assert_eq!(s.stamp(0), Duration::ZERO);
        assert_eq!(s.stamp(3), Duration::from_millis(100));
        s.framerate = (30000, 1001);
        assert_eq!(s.stamp(30_000), Duration::from_secs(1001));
    }

    #[test]
    fn items_that_fail_before_the_first_good_one_are_skipped_once_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.png"), b"not a png").expect("write");
        png(&dir.path().join("b.png"), 8, 6);
        png(&dir.path().join("b_mask.png"), 4, 4);
        png(&dir.path().join("c.png"), 8, 6);
        let status = SourceStatus::new();
        let open = open(&settings(dir.path()), &status).expect("c.png plays");
        assert_eq!(
            status.skipped(),
            2,
            "a.png (corrupt) and b.png (its mask's size)"
        );
        let reported: Vec<bool> = open
            .reported
            .iter()
            .map(|r| r.load(Ordering::Relaxed))
            .collect();
        assert_eq!(reported, [true, true, false]);
        // Met again by the feed (a loop, a restart): not counted twice.
        let why = open.dataset.items()[0].load(0, None).expect_err("corrupt");
        open.report(0, &why, &status);
        assert_eq!(status.skipped(), 2);
        let why = open.dataset.items()[2].load(0, None).map(|_| ());
        assert!(why.is_ok());
    }

    #[test]
    fn a_dataset_with_nothing_playable_fails_at_start_naming_each_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.png"), b"not a png").expect("write");
        std::fs::write(dir.path().join("b.jpg"), b"nor a jpeg").expect("write");
        let status = SourceStatus::new();
        let err = open(&settings(dir.path()), &status)
            .err()
            .expect("nothing plays");
        assert!(matches!(err, IngestError::NoPlayableImage { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("a.png") && text.contains("b.jpg"), "{text}");
        assert!(text.contains("fix:"), "{text}");
        assert_eq!(status.skipped(), 0, "the error says it all");

        let missing = dir.path().join("no-such-folder");
        let err = open(&settings(&missing), &status)
            .err()
            .expect("no such path");
        assert!(matches!(err, IngestError::Dataset(_)), "{err}");
        assert!(err.to_string().contains("no-such-folder"), "{err}");
        assert!(err.to_string().contains("Fix:"), "{err}");
    }

    #[test]
    fn equal_calibrations_share_one_arc() {
        gstreamer::init().expect("GStreamer init");
        let dir = tempfile::tempdir().expect("tempdir");
        png(&dir.path().join("a.png"), 8, 6);
        let status = SourceStatus::new();
        let dataset = open(&settings(dir.path()), &status).expect("plays");
        let appsrc = gstreamer_app::AppSrc::builder().build();
        let sides = SideQueue::default();
        let stop = AtomicBool::new(false);
        let mut feed = Feed {
            settings: &settings(dir.path()),
            open: &dataset,
            appsrc: &appsrc,
            sides: &sides,
            status: &status,
            stop: &stop,
            next_index: 0,
            anchor: None,
            layout: None,
            fixed: None,
            shared: None,
        };
        let make = |spacing: f64| {
            Calibration::single(
                sonoflow_core::findings::ImageRegion::Rect {
                    x0: 0,
                    y0: 0,
                    x1: 8,
                    y1: 6,
                },
                Some(sonoflow_core::findings::PixelSpacing::isotropic(spacing)),
                sonoflow_core::CalibrationSource::Config,
                0.0,
            )
        };
        let a = feed.share(Some(make(0.1))).expect("some");
        let b = feed.share(Some(make(0.1))).expect("some");
        assert!(Arc::ptr_eq(&a, &b), "no change seen by ingest");
        assert!(feed.share(None).is_none());
        let c = feed.share(Some(make(0.1))).expect("some");
        assert!(
            Arc::ptr_eq(&a, &c),
            "an uncalibrated frame between keeps it"
        );
        let d = feed.share(Some(make(0.2))).expect("some");
        assert!(!Arc::ptr_eq(&a, &d));
    }
}
