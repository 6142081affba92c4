//! One running GStreamer source pipeline, from launch string to appsink.
//! Built at start, dropped (set to NULL) at stop or before a restart.

use std::time::Duration;

use gst::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;

use std::sync::Arc;

use crate::config::{SourceProperty, SourceSpec, APPSINK_NAME};
use crate::dicom::{self, DICOM_APPSRC};
use crate::feed::{FeedThread, SideQueue};
use crate::images::{self, OpenDataset, IMAGES_APPSRC};
use crate::phantom_feed::{self, PHANTOM_APPSRC};
use crate::{BuildError, BusError, IngestError, PropertyProblem, SourceStatus};

/// What a feed thread needs beside the spec: where each frame's side data
/// goes, the status it counts skipped files in, and an image dataset as
/// listed and checked at start.
pub(crate) struct Feeds {
    pub sides: Arc<SideQueue>,
    pub status: Arc<SourceStatus>,
    pub images: Option<Arc<OpenDataset>>,
}

/// How long, after the appsink saw end of stream, the bus is watched for an
/// error that explains it. A failing element posts its error before the end
/// of stream it causes reaches the appsink; another sink in a user's launch
/// string may still be running, so the pipeline's own EOS can come later.
const EOS_GRACE: Duration = Duration::from_millis(1000);

/// What one poll of the source gave.
pub(crate) enum Pulled {
    Sample(gst::Sample),
    /// Nothing within the timeout.
    Idle,
    EndOfStream,
    Error(BusError),
}

pub(crate) struct RunningSource {
    // Dropped first: the feed thread stops before the pipeline does (and
    // after `drop` set it to NULL, which releases a feed blocked in its appsrc).
    feed: Option<FeedThread>,
    pipeline: gst::Pipeline,
    appsink: gst_app::AppSink,
    bus: gst::Bus,
}

impl RunningSource {
    /// Builds the pipeline in the NULL state.
    pub(crate) fn build(spec: &SourceSpec) -> Result<Self, IngestError> {
        let failed = |cause| IngestError::Launch {
            launch: spec.describe(),
            cause,
        };
        let element =
            gst::parse::launch(&spec.launch_string()).map_err(|e| failed(BuildError::Parse(e)))?;
        let pipeline = element
            .downcast::<gst::Pipeline>()
            .map_err(|_| failed(BuildError::NotAPipeline))?;
        let appsink = pipeline
            .by_name(APPSINK_NAME)
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or_else(|| {
                failed(BuildError::MissingElement {
                    kind: "appsink",
                    name: APPSINK_NAME,
                })
            })?;
        for property in &spec.properties {
            set_property(&pipeline, property).map_err(|problem| {
                failed(BuildError::Property {
                    element: property.element,
                    property: property.property,
                    problem,
                })
            })?;
        }
        // Live: hold one frame and let GStreamer drop older ones so our copy
        // is always of the newest; offline: hold two and push back upstream.
        appsink.set_max_buffers(if spec.live { 1 } else { 2 });
        appsink.set_drop(spec.live);
        let bus = pipeline.bus().ok_or_else(|| failed(BuildError::NoBus))?;
        Ok(Self {
            feed: None,
            pipeline,
            appsink,
            bus,
        })
    }

    /// Builds the pipeline and sets it playing; a source that makes its own
    /// frames (the phantom, DICOM, images) starts its feed thread, which
    /// puts each frame's side data (truth, calibration) into `feeds.sides`.
    pub(crate) fn start(spec: &SourceSpec, feeds: &Feeds) -> Result<Self, IngestError> {
        let mut source = Self::build(spec)?;
        if source.pipeline.set_state(gst::State::Playing).is_err() {
            return Err(IngestError::Start {
                launch: spec.describe(),
                error: source.take_error(),
            });
        }
        let appsrc = |name: &'static str| {
            source
                .pipeline
                .by_name(name)
                .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
                .ok_or_else(|| IngestError::Launch {
                    launch: spec.describe(),
                    cause: BuildError::MissingElement {
                        kind: "appsrc",
                        name,
                    },
                })
        };
        let sides = || Arc::clone(&feeds.sides);
        let feed = if let Some(config) = &spec.phantom {
            Some(phantom_feed::start(
                config.clone(),
                appsrc(PHANTOM_APPSRC)?,
                sides(),
            ))
        } else if let Some(settings) = &spec.dicom {
            Some(dicom::start(
                settings.clone(),
                appsrc(DICOM_APPSRC)?,
                sides(),
                Arc::clone(&feeds.status),
            ))
        } else if let (Some(settings), Some(dataset)) = (&spec.images, &feeds.images) {
            Some(images::start(
                settings.clone(),
                Arc::clone(dataset),
                appsrc(IMAGES_APPSRC)?,
                sides(),
                Arc::clone(&feeds.status),
            ))
        } else {
            None
        };
        source.feed = feed;
        Ok(source)
    }

    fn take_error(&self) -> Option<BusError> {
        let msg = self.bus.pop_filtered(&[gst::MessageType::Error])?;
        match msg.view() {
            gst::MessageView::Error(err) => Some(BusError::from_message(&msg, err)),
            _ => None,
        }
    }

    /// Waits up to `timeout` for the next sample. An error on the bus wins
    /// over end of stream: a source that fails mid-stream also ends its
    /// stream, and that end is reported as the error that caused it.
    pub(crate) fn next(&self, timeout: Duration) -> Pulled {
        if let Some(msg) = self
            .bus
            .pop_filtered(&[gst::MessageType::Error, gst::MessageType::Eos])
        {
            match msg.view() {
                gst::MessageView::Error(err) => {
                    return Pulled::Error(BusError::from_message(&msg, err))
                }
                gst::MessageView::Eos(_) => return self.end_of_stream(Duration::ZERO),
                _ => {}
            }
        }
        let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        match self
            .appsink
            .try_pull_sample(gst::ClockTime::from_nseconds(nanos))
        {
            Some(sample) => Pulled::Sample(sample),
            None if self.appsink.is_eos() => self.end_of_stream(EOS_GRACE),
            None => Pulled::Idle,
        }
    }

    /// The stream ended: an error on the bus (now, or until the pipeline
    /// posts its own EOS, at most `grace`) is why; without one it is a
    /// normal end of stream.
    fn end_of_stream(&self, grace: Duration) -> Pulled {
        let nanos = u64::try_from(grace.as_nanos()).unwrap_or(u64::MAX);
        let mut waited_for_eos = grace.is_zero();
        loop {
            let msg = if waited_for_eos {
                self.bus.pop_filtered(&[gst::MessageType::Error])
            } else {
                self.bus.timed_pop_filtered(
                    gst::ClockTime::from_nseconds(nanos),
                    &[gst::MessageType::Error, gst::MessageType::Eos],
                )
            };
            match msg.as_ref().map(|m| (m, m.view())) {
                Some((msg, gst::MessageView::Error(err))) => {
                    return Pulled::Error(BusError::from_message(msg, err))
                }
                // The pipeline's EOS: every sink is done; look once more for
                // an error posted beside it.
                Some((_, gst::MessageView::Eos(_))) if !waited_for_eos => waited_for_eos = true,
                _ => return Pulled::EndOfStream,
            }
        }
    }
}

/// Sets one value from the definition on its element, as a typed string
/// property (never through the launch-string parser).
fn set_property(
    pipeline: &gst::Pipeline,
    property: &SourceProperty,
) -> Result<(), PropertyProblem> {
    let element = pipeline
        .by_name(property.element)
        .ok_or(PropertyProblem::NoElement)?;
    let spec = element
        .find_property(property.property)
        .ok_or(PropertyProblem::NoProperty)?;
    if spec.value_type() != String::static_type() {
        return Err(PropertyProblem::NotAString);
    }
    element.set_property(property.property, &property.value);
    Ok(())
}

impl Drop for RunningSource {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
