//! Ingestion through the real binary: videotestsrc, a generated video file,
//! and a caps change (two resolutions in one run); a file or launch source
//! that fails mid-stream ends the run with its error; the phantom at any
//! width; file paths taken literally; fractional rates, size limits and
//! restart settings checked with the key named.

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
    // Live: the source keeps its clock's pace, never faster (a slower
    // machine delivers fewer, counted as drops: speed is the benches' job).
    let fps = f64_at(r, "/fps_in");
    assert!(
        fps > 0.0 && fps <= 60.0 * 1.25,
        "a 60 fps live source: {r:#}"
    );
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
    // A plain video says nothing of its scale: every frame is uncalibrated.
    assert_eq!(u64_at(r, "/source/calibration/uncalibrated_frames"), 48);
    assert!(
        r.pointer("/source/calibration/spacing_mm")
            .is_some_and(|v| v.is_null()),
        "{r:#}"
    );
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

#[test]
fn phantom_at_a_width_not_divisible_by_four_runs_instead_of_hanging() {
    // GStreamer pads GRAY8 rows to 4 bytes; 642-byte rows pushed tightly
    // packed were all rejected, and the run hung at 0 frames.
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_pipeline(
        dir.path(),
        "[source]\nkind = \"phantom\"\nwidth = 642\nheight = 480\n[[sinks]]\nkind = \"fake\"\n",
        &["--frames", "30"],
        LIMIT,
    );
    let r = run.assert_success();
    assert_eq!(u64_at(r, "/frames_in"), 30, "{r:#}");
    assert_eq!(u64_at(r, "/source/rejected"), 0, "{r:#}");
    assert_eq!(
        (u64_at(r, "/source/width"), u64_at(r, "/source/height")),
        (642, 480)
    );
}

/// An MP4 whose 41st sample claims 2 GB: the demuxer fails mid-file.
fn mp4_that_fails_mid_stream(dir: &std::path::Path) -> std::path::PathBuf {
    let good = dir.join("good.mp4");
    gst_run(&format!(
        "videotestsrc num-buffers=90 ! video/x-raw,width=320,height=240,framerate=30/1 ! \
         x264enc speed-preset=ultrafast key-int-max=30 ! h264parse ! mp4mux faststart=true ! filesink location=\"{}\"",
        good.display()
    ));
    let mut bytes = std::fs::read(&good).expect("read");
    let stsz = bytes
        .windows(4)
        .position(|w| w == b"stsz")
        .expect("an stsz box");
    // size, 'stsz', version/flags, sample size, count, then one u32 per sample.
    let entry = stsz + 12 + 4 * 40;
    bytes[entry..entry + 4].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
    let bad = dir.join("broken.mp4");
    std::fs::write(&bad, bytes).expect("write");
    bad
}

#[test]
fn file_that_fails_mid_stream_ends_the_run_with_its_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = mp4_that_fails_mid_stream(dir.path());
    let run = run_pipeline(
        dir.path(),
        &format!(
            "[source]\nkind = \"file\"\npath = \"{}\"\n[[sinks]]\nkind = \"fake\"\n",
            broken.display()
        ),
        &[],
        LIMIT,
    );
    assert_eq!(run.output.status.code(), Some(1), "{}", run.stderr());
    let r = run.report();
    assert!(
        u64_at(r, "/frames_in") > 0,
        "frames before the break: {r:#}"
    );
    assert!(str_at(r, "/error").contains("invalid"), "{r:#}");
    assert_eq!(str_at(r, "/source/state"), "failed");
    assert!(str_at(r, "/source/last_error").contains("invalid"), "{r:#}");
}

#[test]
fn launch_source_whose_failure_follows_its_end_of_stream_is_an_error() {
    // The appsink's branch ends first; the source's other branch fails just
    // after. Reported as a clean end before: exit 0, state "ended".
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_pipeline(
        dir.path(),
        r#"
        [source]
        kind = "launch"
        live = false
        launch = "videotestsrc num-buffers=10 ! video/x-raw,width=160,height=120 ! tee name=t t. ! queue ! identity error-after=10 sleep-time=20000 ! fakesink async=false t. ! queue"
        [[sinks]]
        kind = "fake"
        "#,
        &[],
        LIMIT,
    );
    assert_eq!(run.output.status.code(), Some(1), "{}", run.stderr());
    let r = run.report();
    assert_eq!(str_at(r, "/source/state"), "failed", "{r:#}");
    assert!(
        str_at(r, "/source/last_error").contains("Failed after iterations"),
        "{r:#}"
    );
}

#[test]
fn file_source_path_is_taken_literally() {
    // A trailing backslash escaped the launch string's closing quote.
    let dir = tempfile::tempdir().expect("tempdir");
    let video = dir.path().join(r#"scan " ! fakesink \"#);
    gst_run(&format!(
        "videotestsrc num-buffers=12 ! video/x-raw,width=160,height=120,framerate=30/1 ! x264enc speed-preset=ultrafast ! \
         h264parse ! matroskamux ! filesink location=\"{}\"",
        dir.path().join("made.mkv").display()
    ));
    std::fs::rename(dir.path().join("made.mkv"), &video).expect("rename");
    let run = run_pipeline(
        dir.path(),
        &format!(
            "[source]\nkind = \"file\"\npath = '{}'\n[[sinks]]\nkind = \"fake\"\n",
            video.display()
        ),
        &[],
        LIMIT,
    );
    let r = run.assert_success();
    assert_eq!(u64_at(r, "/frames_in"), 12, "{r:#}");
}

#[test]
fn ntsc_frame_rate_can_be_written_as_a_decimal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mkv = dir.path().join("ntsc.mkv");
    let run = run_pipeline(
        dir.path(),
        &format!(
            "[source]\nkind = \"test\"\nwidth = 320\nheight = 240\nfps = 29.97\n\
             [[sinks]]\nkind = \"mkv\"\npath = \"{}\"\n",
            mkv.display()
        ),
        &["--frames", "30"],
        LIMIT,
    );
    let r = run.assert_success();
    assert_eq!(u64_at(r, "/frames_in"), 30, "{r:#}");
    // 29.97 is NTSC's 30000/1001 exactly, not 30 and not a rounded 2997/100:
    // as the recording says to a player that reads it.
    assert_eq!(decoded_framerate(&mkv), (30000, 1001), "{r:#}");
    let fps = f64_at(r, "/fps_in");
    assert!(
        fps > 0.0 && fps <= 29.97 * 1.25,
        "a 29.97 fps live source: {r:#}"
    );
}

#[test]
fn oversized_frames_are_refused_for_every_source_kind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_pipeline(
        dir.path(),
        "[source]\nkind = \"test\"\nwidth = 100000\nheight = 100000\n[[sinks]]\nkind = \"fake\"\n",
        &["--frames", "5"],
        LIMIT,
    );
    assert_eq!(run.output.status.code(), Some(2), "{}", run.stderr());
    assert!(run.stderr().contains("source.width"), "{}", run.stderr());
    assert!(run.stderr().contains("7680"), "{}", run.stderr());
}

#[test]
fn restart_problems_name_the_dotted_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_pipeline(
        dir.path(),
        "[source]\nkind = \"test\"\nrestart = { initial_backoff_ms = 500, max_backoff_ms = 100 }\n[[sinks]]\nkind = \"fake\"\n",
        &["--frames", "5"],
        LIMIT,
    );
    assert_eq!(run.output.status.code(), Some(2), "{}", run.stderr());
    assert!(
        run.stderr().contains("source.restart.max_backoff_ms"),
        "{}",
        run.stderr()
    );
}
