//! Ingestion through the real binary: videotestsrc, a generated video file,
//! and a caps change (two resolutions in one run).

mod common;

use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn test_source_delivers_the_requested_frames_in_gray8() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_pipeline(
        dir.path(),
        r#"
        [source]
        kind = "test"
        width = 320
        height = 240
        fps = 60
        [[sinks]]
        kind = "fake"
        "#,
        &["--frames", "90"],
        LIMIT,
    );
    let r = run.assert_success();
    assert_eq!(u64_at(r, "/frames_in"), 90);
    assert_eq!(
        u64_at(r, "/frames_out") + pipeline_dropped(r),
        90,
        "every frame is either out or counted as dropped: {r:#}"
    );
    assert_eq!(str_at(r, "/source/format"), "GRAY8");
    assert_eq!(
        (u64_at(r, "/source/width"), u64_at(r, "/source/height")),
        (320, 240)
    );
    assert!(f64_at(r, "/fps_in") > 30.0, "a 60 fps live source: {r:#}");
    // The report carries every field the issue names.
    for p in [
        "/latency_ms/p50",
        "/latency_ms/p90",
        "/latency_ms/p99",
        "/latency_ms/max",
        "/fps_out",
        "/stages/ingest/p50_ms",
        "/stages/process/p99_ms",
        "/stages/output/p50_ms",
    ] {
        f64_at(r, p);
    }
    // Steady state allocates nothing on the frame path (the binary counts it).
    assert_eq!(f64_at(r, "/allocations_per_frame"), 0.0, "{r:#}");
}

#[test]
fn test_source_can_negotiate_rgba() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_pipeline(
        dir.path(),
        r#"
        [source]
        kind = "test"
        width = 160
        height = 120
        fps = 60
        format = "RGBA"
        [[sinks]]
        kind = "fake"
        "#,
        &["--frames", "20"],
        LIMIT,
    );
    let r = run.assert_success();
    assert_eq!(u64_at(r, "/frames_in"), 20);
    assert_eq!(str_at(r, "/source/format"), "RGBA");
}

#[test]
fn file_source_reads_every_frame_and_ends_at_eos() {
    let dir = tempfile::tempdir().expect("tempdir");
    let video = dir.path().join("scan.mkv");
    gst_run(&format!(
        "videotestsrc num-buffers=48 ! video/x-raw,width=320,height=240,framerate=30/1 ! x264enc speed-preset=ultrafast ! \
         h264parse ! matroskamux ! filesink location=\"{}\"",
        video.display()
    ));
    let run = run_pipeline(
        dir.path(),
        &format!(
            r#"
            [source]
            kind = "file"
            path = "{}"
            [[sinks]]
            kind = "fake"
            "#,
            video.display()
        ),
        &[],
        LIMIT,
    );
    let r = run.assert_success();
    assert_eq!(u64_at(r, "/frames_in"), 48);
    assert_eq!(
        u64_at(r, "/frames_out"),
        48,
        "a file source blocks instead of dropping: {r:#}"
    );
    assert_eq!(total_dropped(r), 0);
    assert_eq!(str_at(r, "/source/state"), "ended");
    assert_eq!(str_at(r, "/source/format"), "GRAY8");
}

#[test]
fn caps_change_mid_stream_keeps_the_pipeline_and_the_output_valid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).expect("mkdir");
    // Ten frames at 320x240, then ten square ones at 360x360: one PNG
    // sequence whose size and aspect ratio change mid-stream.
    gst_run(&format!(
        "videotestsrc num-buffers=10 ! video/x-raw,width=320,height=240 ! pngenc ! multifilesink location=\"{}/f%03d.png\"",
        frames.display()
    ));
    gst_run(&format!(
        "videotestsrc num-buffers=10 pattern=smpte ! video/x-raw,width=360,height=360 ! pngenc ! \
         multifilesink index=10 location=\"{}/f%03d.png\"",
        frames.display()
    ));
    let mp4 = dir.path().join("out.mp4");
    let run = run_pipeline(
        dir.path(),
        &format!(
            r#"
            [source]
            kind = "launch"
            launch = "multifilesrc location={}/f%03d.png stop-index=19 caps=image/png,framerate=30/1 ! pngdec"
            live = false
            [[sinks]]
            kind = "mp4"
            path = "{}"
            "#,
            frames.display(),
            mp4.display()
        ),
        &[],
        LIMIT,
    );
    let r = run.assert_success();
    assert_eq!(u64_at(r, "/frames_in"), 20);
    assert_eq!(u64_at(r, "/frames_out"), 20);
    assert_eq!(u64_at(r, "/source/caps_changes"), 1, "{r:#}");
    assert_eq!(
        (u64_at(r, "/source/width"), u64_at(r, "/source/height")),
        (360, 360)
    );
    let decoded = decode(&mp4);
    assert_eq!(
        decoded.frames, 20,
        "every frame, both sizes, is in the file"
    );
    assert_eq!(
        (decoded.width, decoded.height),
        (320, 240),
        "the output keeps the first size"
    );
}

#[test]
fn unreadable_file_source_ends_the_run_with_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-scan.mp4");
    let run = run_pipeline(
        dir.path(),
        &format!(
            "[source]\nkind = \"file\"\npath = \"{}\"\n[[sinks]]\nkind = \"fake\"\n",
            missing.display()
        ),
        &[],
        LIMIT,
    );
    assert_eq!(run.output.status.code(), Some(1), "{}", run.stderr());
    let r = run.report();
    assert!(str_at(r, "/error").contains("no-such-scan.mp4"), "{r:#}");
    assert_eq!(str_at(r, "/source/state"), "failed");
}
