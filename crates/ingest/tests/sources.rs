//! [`Ingest`] over real GStreamer pipelines: how a source that delivers
//! nothing usable, or fails, ends; and phantom frames of any width.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sonoflow_ingest::{Flow, Ingest, IngestEnd, IngestError, SampleError, SourceState};

/// A hang guard, not a speed limit: a test that reaches it has failed.
const GUARD: Duration = Duration::from_secs(30);

fn ingest(definition: &str) -> Ingest {
    common::ingest(definition).expect("source builds")
}

/// Runs until `frames` frames came, `done` says so, the source ends, or the guard.
fn run(
    ingest: &mut Ingest,
    frames: u64,
    done: impl Fn() -> bool,
) -> (Result<IngestEnd, IngestError>, u64) {
    let started = Instant::now();
    let mut count = 0u64;
    let end = ingest.run(&|| done() || started.elapsed() > GUARD, &mut |_frame| {
        count += 1;
        if count >= frames {
            Flow::Stop
        } else {
            Flow::Continue
        }
    });
    assert!(
        started.elapsed() < GUARD,
        "the source neither delivered nor failed"
    );
    (end, count)
}

#[test]
fn phantom_at_a_width_that_is_not_a_multiple_of_four_delivers_every_frame() {
    let mut ingest = ingest("kind = \"phantom\"\nwidth = 642\nheight = 480\nfps = 60");
    let status = ingest.status();
    let (end, frames) = run(&mut ingest, 20, || false);
    assert_eq!(end.expect("runs"), IngestEnd::Stopped);
    assert_eq!(frames, 20);
    let report = status.report();
    assert_eq!(report.rejected, 0, "{report:?}");
    assert_eq!((report.width, report.height), (Some(642), Some(480)));
}

/// Buffers of 640x480 GRAY8 labelled 642x480: every sample is too small for its caps.
const MISLABELLED: &str = "videotestsrc is-live=true num-buffers=40 ! \
     video/x-raw,format=GRAY8,width=640,height=480,framerate=30/1 ! capssetter caps=video/x-raw,width=642";

#[test]
fn live_source_whose_every_sample_is_rejected_stalls_and_restarts_with_the_cause() {
    let mut ingest = ingest(&format!(
        "kind = \"launch\"\nlaunch = \"{}\"\n\
         restart = {{ initial_backoff_ms = 20, max_backoff_ms = 50, stall_timeout_ms = 300, startup_timeout_ms = 300 }}",
        MISLABELLED.replace("is-live=true num-buffers=40", "is-live=true")
    ));
    let status = ingest.status();
    let watched = Arc::clone(&status);
    let (end, frames) = run(&mut ingest, 1, move || watched.restarts() >= 1);
    assert_eq!(
        end.expect("a live source is never fatal"),
        IngestEnd::Stopped
    );
    assert_eq!(frames, 0);
    let report = status.report();
    assert!(report.restarts >= 1, "{report:?}");
    let cause = report.last_error.expect("the restart's cause");
    assert!(
        cause.contains("no frame for") && cause.contains("rejected") && cause.contains("642x480"),
        "{cause}"
    );
}

#[test]
fn finite_source_whose_every_sample_is_rejected_fails_instead_of_ending() {
    let mut ingest = ingest(&format!(
        "kind = \"launch\"\nlive = false\nlaunch = \"{MISLABELLED}\""
    ));
    let status = ingest.status();
    let (end, frames) = run(&mut ingest, 1, || false);
    assert_eq!(frames, 0);
    let err = end.expect_err("nothing usable is an error, not an end");
    // The cause as facts: the buffer's size against what its caps promise.
    match &err {
        IngestError::Unusable { rejected: 40, last } => match last.as_ref() {
            SampleError::Unmappable {
                buffer_bytes,
                width: 642,
                height: 480,
                expected_bytes,
                ..
            } => assert!(buffer_bytes < expected_bytes, "{err}"),
            other => panic!("not an unmappable buffer: {other}"),
        },
        other => panic!("not Unusable after 40 samples: {other}"),
    }
    assert!(err.to_string().contains("642x480"), "{err}");
    let report = status.report();
    assert_eq!(report.state, SourceState::Failed);
    assert!(report
        .last_error
        .is_some_and(|e| e.contains("none could be used")));
}

#[test]
fn error_that_comes_just_after_the_end_of_stream_is_the_outcome() {
    // The appsink's branch ends at once; a sibling branch of the same source
    // fails a moment later. The pipeline never ended cleanly: that is an error.
    let mut ingest = ingest(
        "kind = \"launch\"\nlive = false\nlaunch = \"videotestsrc num-buffers=10 ! video/x-raw,width=160,height=120 ! \
         tee name=t t. ! queue ! identity error-after=10 sleep-time=20000 ! fakesink async=false t. ! queue\"",
    );
    let status = ingest.status();
    let (end, frames) = run(&mut ingest, 100, || false);
    assert_eq!(frames, 10);
    let err = end.expect_err("a failed source is not an end of stream");
    assert!(err.to_string().contains("Failed after iterations"), "{err}");
    assert_eq!(status.report().state, SourceState::Failed);
}

#[test]
fn streaming_error_is_reported_as_the_error_not_as_an_end_of_stream() {
    // The element posts its error and the stream then ends; whichever the
    // ingest loop sees first, the outcome is the error (racy before: repeat).
    for attempt in 0..5 {
        let mut ingest = ingest(
            "kind = \"launch\"\nlive = false\nlaunch = \"videotestsrc num-buffers=100 ! video/x-raw,width=160,height=120 ! \
             identity error-after=8 sleep-time=10000\"",
        );
        let (end, _) = run(&mut ingest, 1000, || false);
        let err = end.expect_err("the source failed");
        assert!(
            err.to_string().contains("Failed after iterations"),
            "attempt {attempt}: {err}"
        );
        // GStreamer's error in its parts: which element, which domain.
        let IngestError::Failed(bus) = &err else {
            panic!("attempt {attempt}: not a bus error: {err}");
        };
        assert!(bus.element.contains("identity"), "{bus:?}");
        assert_eq!(bus.domain, "gst-core-error-quark", "{bus:?}");
    }
}

#[test]
fn live_source_error_names_the_error_rather_than_an_end() {
    let mut ingest = ingest(
        "kind = \"launch\"\nlaunch = \"videotestsrc is-live=true num-buffers=100 ! video/x-raw,width=160,height=120,framerate=60/1 ! \
         identity error-after=5\"\n\
         restart = { initial_backoff_ms = 20, max_backoff_ms = 50 }",
    );
    let status = ingest.status();
    let watched = Arc::clone(&status);
    let (end, _) = run(&mut ingest, 1000, move || watched.restarts() >= 2);
    assert_eq!(end.expect("restarted, then stopped"), IngestEnd::Stopped);
    let cause = status.report().last_error.expect("cause");
    assert!(cause.contains("Failed after iterations"), "{cause}");
}

#[test]
fn a_stamped_phantom_frame_reads_back_and_is_otherwise_the_same_picture() {
    use sonoflow_core::stamp::{self, MachineClock, StampImage};

    let keep = |frame: &sonoflow_core::Frame| {
        let image = StampImage::packed(frame.format);
        let read = stamp::read(&frame.data, image);
        (
            frame.id.0,
            frame.source_pts,
            frame.data.to_vec(),
            image,
            read,
            MachineClock::micros(),
        )
    };
    let phantom = "kind = \"phantom\"\nwidth = 320\nheight = 240\nfps = 30";
    let (plain, _, _) = common::play(phantom, 5, GUARD, keep);
    let (stamped, _, _) = common::play(&format!("{phantom}\nstamp = true"), 5, GUARD, keep);
    for (id, _, _, _, read, now) in &stamped {
        let s = read.as_ref().expect("a stamp ingest wrote reads back");
        assert_eq!(s.counter, *id as u16, "the frame's number");
        // Captured before it was handed over: a past time, and a recent one
        // (a hang guard, not a speed limit).
        assert!(s.age(*now) < GUARD, "{:?}", s.age(*now));
    }
    for (_, _, _, _, read, _) in &plain {
        assert!(read.is_err(), "off by default: the picture as rendered");
    }
    // The same rendered frame with and without: only the corner differs.
    let mut compared = 0;
    for (_, pts, with, image, _, _) in &stamped {
        let Some((_, _, without, _, _, _)) = plain.iter().find(|p| p.1 == *pts) else {
            continue;
        };
        let (x0, y0, w, h) = image.region().expect("320x240 holds a stamp");
        for (i, (a, b)) in with.iter().zip(without).enumerate() {
            let (x, y) = ((i % image.stride) as u32, (i / image.stride) as u32);
            let inside = (x0..x0 + w).contains(&x) && (y0..y0 + h).contains(&y);
            assert!(inside || a == b, "({x}, {y}) changed outside the stamp");
        }
        assert_ne!(with, without);
        compared += 1;
    }
    assert!(compared > 0, "the first frame at least comes in both runs");

    // The test source takes a stamp the same way, in RGBA too.
    let test = "kind = \"test\"\nwidth = 320\nheight = 240\nformat = \"RGBA\"\nstamp = true";
    let (frames, _, _) = common::play(test, 3, GUARD, keep);
    for (id, _, _, _, read, _) in &frames {
        assert_eq!(read.as_ref().map(|s| s.counter), Ok(*id as u16));
    }
}
