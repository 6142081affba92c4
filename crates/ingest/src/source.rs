//! One running GStreamer source pipeline, from launch string to appsink.
//! Built at start, dropped (set to NULL) at stop or before a restart.

use std::time::Duration;

use gst::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;

use std::sync::Arc;

use crate::config::{SourceSpec, APPSINK_NAME};
use crate::phantom_feed::{PhantomFeed, TruthQueue, PHANTOM_APPSRC};
use crate::IngestError;

/// What one poll of the source gave.
pub(crate) enum Pulled {
    Sample(gst::Sample),
    /// Nothing within the timeout.
    Idle,
    EndOfStream,
    Error(String),
}

pub(crate) struct RunningSource {
    // Dropped first: the phantom thread stops before the pipeline does.
    feed: Option<PhantomFeed>,
    pipeline: gst::Pipeline,
    appsink: gst_app::AppSink,
    bus: gst::Bus,
}

impl RunningSource {
    /// Builds the pipeline in the NULL state.
    pub(crate) fn build(spec: &SourceSpec) -> Result<Self, IngestError> {
        let launch = spec.launch_string();
        let element = gst::parse::launch(&launch).map_err(|e| IngestError::Launch {
            launch: launch.clone(),
            message: e.to_string(),
        })?;
        let pipeline = element
            .downcast::<gst::Pipeline>()
            .map_err(|_| IngestError::Launch {
                launch: launch.clone(),
                message: "did not build a pipeline".into(),
            })?;
        let appsink = pipeline
            .by_name(APPSINK_NAME)
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or_else(|| IngestError::Launch {
                launch: launch.clone(),
                message: format!("no appsink named {APPSINK_NAME}"),
            })?;
        // Live: hold one frame and let GStreamer drop older ones so our copy
        // is always of the newest; offline: hold two and push back upstream.
        appsink.set_max_buffers(if spec.live { 1 } else { 2 });
        appsink.set_drop(spec.live);
        let bus = pipeline.bus().ok_or_else(|| IngestError::Launch {
            launch: launch.clone(),
            message: "pipeline has no bus".into(),
        })?;
        Ok(Self {
            feed: None,
            pipeline,
            appsink,
            bus,
        })
    }

    /// Builds the pipeline and sets it playing; a phantom source starts its
    /// generator, which puts each frame's ground truth into `truths`.
    pub(crate) fn start(spec: &SourceSpec, truths: &Arc<TruthQueue>) -> Result<Self, IngestError> {
        let mut source = Self::build(spec)?;
        if source.pipeline.set_state(gst::State::Playing).is_err() {
            let launch = spec.launch_string();
            let cause = source
                .take_error()
                .unwrap_or_else(|| "state change to PLAYING failed".into());
            return Err(IngestError::Start { launch, cause });
        }
        if let Some(config) = &spec.phantom {
            let appsrc = source
                .pipeline
                .by_name(PHANTOM_APPSRC)
                .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
                .ok_or_else(|| IngestError::Launch {
                    launch: spec.launch_string(),
                    message: format!("no appsrc named {PHANTOM_APPSRC}"),
                })?;
            source.feed = Some(PhantomFeed::start(
                config.clone(),
                appsrc,
                Arc::clone(truths),
            ));
        }
        Ok(source)
    }

    fn take_error(&self) -> Option<String> {
        let msg = self.bus.pop_filtered(&[gst::MessageType::Error])?;
        match msg.view() {
            gst::MessageView::Error(err) => Some(describe_error(&msg, err)),
            _ => None,
        }
    }

    /// Waits up to `timeout` for the next sample, reporting errors and EOS first.
    pub(crate) fn next(&self, timeout: Duration) -> Pulled {
        if let Some(msg) = self
            .bus
            .pop_filtered(&[gst::MessageType::Error, gst::MessageType::Eos])
        {
            match msg.view() {
                gst::MessageView::Error(err) => return Pulled::Error(describe_error(&msg, err)),
                gst::MessageView::Eos(_) => return Pulled::EndOfStream,
                _ => {}
            }
        }
        let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        match self
            .appsink
            .try_pull_sample(gst::ClockTime::from_nseconds(nanos))
        {
            Some(sample) => Pulled::Sample(sample),
            None if self.appsink.is_eos() => Pulled::EndOfStream,
            None => Pulled::Idle,
        }
    }
}

fn describe_error(msg: &gst::Message, err: &gst::message::Error) -> String {
    let from = msg
        .src()
        .map(|s| s.path_string().to_string())
        .unwrap_or_else(|| "pipeline".into());
    match err.debug() {
        Some(debug) => format!("{} (from {from}: {debug})", err.error()),
        None => format!("{} (from {from})", err.error()),
    }
}

impl Drop for RunningSource {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
