//! Reading back a recording cut short (a killed process, a full disk): the
//! frames that decode from the start of the file up to where it breaks.
//! `common::decode` fails on any error; this counts what a player would show.
#![allow(dead_code)]

use std::path::Path;

use gst::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;

/// Frames that decode from `path` before its end or its first error.
pub fn decodable_frames(path: &Path) -> u64 {
    gst::init().expect("GStreamer init");
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("filesrc")
        .property("location", path.to_string_lossy().as_ref())
        .build()
        .expect("filesrc");
    let decode = gst::ElementFactory::make("decodebin")
        .build()
        .expect("decodebin");
    let convert = gst::ElementFactory::make("videoconvert")
        .build()
        .expect("videoconvert");
    let sink = gst_app::AppSink::builder().sync(false).build();
    pipeline
        .add_many([&src, &decode, &convert, sink.upcast_ref()])
        .expect("add");
    src.link(&decode).expect("link");
    convert.link(&sink).expect("link");
    let convert_weak = convert.downgrade();
    decode.connect_pad_added(move |_, pad| {
        if let Some(sink_pad) = convert_weak.upgrade().and_then(|c| c.static_pad("sink")) {
            let _ = pad.link(&sink_pad);
        }
    });
    let _ = pipeline.set_state(gst::State::Playing);
    let mut frames = 0;
    while sink
        .try_pull_sample(gst::ClockTime::from_seconds(5))
        .is_some()
    {
        frames += 1;
    }
    let _ = pipeline.set_state(gst::State::Null);
    frames
}
