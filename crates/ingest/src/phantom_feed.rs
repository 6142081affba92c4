//! The phantom as a live GStreamer source: a feed thread renders frames at
//! the requested frame rate and pushes them into an appsrc; each frame's
//! ground truth and its exact calibration (one `Arc` while the geometry
//! stays the same) travel beside it through the [`SideQueue`], keyed by the
//! buffer offset (the frame index).
//!
//! The phantom renders tightly packed rows; GStreamer pads GRAY8 rows to a
//! multiple of 4 bytes, so a width that is not a multiple of 4 is rendered
//! into a scratch image (allocated once) and copied row by row into the
//! buffer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer_app as gst_app;
use sonoflow_core::{Calibration, PixelFormat};
use sonoflow_phantom::{Phantom, PhantomConfig};
use tracing::warn;

use crate::feed::{self, BufferError, FeedThread, FrameSide, RawLayout, SideQueue};

/// Name of the appsrc the phantom feeds.
pub const PHANTOM_APPSRC: &str = "sonoflow_phantom";

/// Starts the phantom's feed thread; it stops and joins on drop.
pub(crate) fn start(
    config: PhantomConfig,
    appsrc: gst_app::AppSrc,
    sides: Arc<SideQueue>,
) -> FeedThread {
    FeedThread::start("sonoflow-phantom", move |stop| {
        feed(config, &appsrc, &sides, stop)
    })
}

fn feed(config: PhantomConfig, appsrc: &gst_app::AppSrc, sides: &SideQueue, stop: &AtomicBool) {
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
    let framerate = (i32::try_from(fps).unwrap_or(i32::MAX), 1);
    let layout = match RawLayout::new(PixelFormat::Gray8, format.width, format.height, framerate) {
        Ok(layout) => layout,
        Err(err) => {
            warn!(
                "phantom: no GStreamer layout for {}x{}: {err}",
                format.width, format.height
            );
            let _ = appsrc.end_of_stream();
            return;
        }
    };
    let row = layout.row;
    // Rows padded by GStreamer: render tightly packed here, then copy.
    let mut scratch = if layout.stride == row {
        Vec::new()
    } else {
        vec![0u8; format.len()]
    };
    let period = Duration::from_nanos(1_000_000_000 / fps);
    let start = Instant::now();
    let mut index = 0u64;
    // The truth's geometry as a calibration, built again only when it changes.
    let mut calibration: Option<Arc<Calibration>> = None;
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
        let mut truth = None;
        let made = layout.buffer(
            Duration::from_nanos(index * 1_000_000_000 / fps),
            period,
            index,
            |map, stride| {
                truth = Some(if scratch.is_empty() {
                    phantom.render(index, map)
                } else {
                    let truth = phantom.render(index, &mut scratch);
                    for (dst, src) in map.chunks_mut(stride).zip(scratch.chunks_exact(row)) {
                        if let Some(dst) = dst.get_mut(..row) {
                            dst.copy_from_slice(src);
                        }
                    }
                    truth
                });
                Ok::<(), ()>(())
            },
        );
        let buffer = match made {
            Ok(buffer) => buffer,
            Err(BufferError::Alloc | BufferError::Fill(())) => {
                warn!("phantom: no buffer of {} bytes", layout.size);
                break;
            }
        };
        // The truth names its frame (`frame_index`), the buffer's offset.
        let truth = truth.map(Arc::new);
        if let Some(t) = &truth {
            if !calibration.as_deref().is_some_and(|c| c.is_of_truth(t)) {
                calibration = Some(Arc::new(Calibration::of_truth(t)));
            }
        }
        let side = FrameSide {
            frame_index: index,
            truth,
            calibration: calibration.clone(),
        };
        if !feed::push(appsrc, sides, side, buffer) {
            break; // flushing or stopped: the pipeline is going away
        }
        index += 1;
    }
}
