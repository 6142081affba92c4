//! [`GstOutput`] over real GStreamer pipelines: file names taken literally,
//! the root cause of a write failure, and no empty files left behind.

use std::path::{Path, PathBuf};

use sonoflow_core::{Frame, FrameFormat, FrameId, FramePool, PixelFormat, StageStamps, Timestamp};
use sonoflow_output::{GstOutput, OutputError, OutputOptions, OutputTiming, SinkConfig, SinkSpec};
use sonoflow_pipeline::{Delivery, FrameSink};

/// Reading back what a recording holds, shared with the workspace's tests.
#[path = "../../../tests/salvage/mod.rs"]
mod salvage;
use salvage::decodable_frames;

fn sinks(toml_sinks: &[&str]) -> Vec<SinkSpec> {
    toml_sinks
        .iter()
        .enumerate()
        .map(|(i, text)| {
            toml::from_str::<SinkConfig>(text)
                .expect("test TOML parses")
                .validate(&format!("sinks[{i}]"))
                .expect("valid sink")
        })
        .collect()
}

fn output(specs: &[SinkSpec]) -> Result<GstOutput, OutputError> {
    GstOutput::new(
        specs,
        OutputOptions {
            timing: OutputTiming::Capture,
            fps: (30, 1),
            max_queued: 4,
            block: true,
        },
        None,
    )
}

/// Pushes `n` GRAY8 frames of 160x120 (a moving gradient); how many were delivered.
fn push_frames(output: &mut GstOutput, n: u64) -> u64 {
    push_sized(output, n, 160, 120, |k, i| (k as u64 + i * 3) as u8)
}

/// Pushes `n` frames of noise, which encodes big: writes start at once.
fn push_noise(output: &mut GstOutput, n: u64) -> u64 {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    push_sized(output, n, 640, 480, move |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    })
}

fn push_sized(
    output: &mut GstOutput,
    n: u64,
    width: u32,
    height: u32,
    mut pixel: impl FnMut(usize, u64) -> u8,
) -> u64 {
    let format = FrameFormat::new(PixelFormat::Gray8, width, height).expect("format");
    let pool = FramePool::new(4);
    let mut delivered = 0;
    for i in 0..n {
        let mut data = pool.acquire(format.len());
        for (k, px) in data.iter_mut().enumerate() {
            *px = pixel(k, i);
        }
        let stamps = StageStamps::new(Timestamp(i * 33_333_333));
        let frame = Frame::new(FrameId(i), format, data, stamps);
        if let Ok(Delivery::Delivered) = output.push(&frame) {
            delivered += 1;
        }
    }
    delivered
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

#[test]
fn file_names_are_taken_literally_never_parsed_as_pipeline_syntax() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    // A trailing backslash escaped the closing quote of a launch string, and
    // a quote ended it: what followed became elements (here, a third file).
    let first = PathBuf::from(format!(r"{d}/scan\"));
    let second = PathBuf::from(format!(r#"{d}/b" ! filesink location={d}/x"#));
    let specs = sinks(&[
        &format!("kind = \"mkv\"\npath = '{}'", first.display()),
        &format!("kind = \"mp4\"\npath = '{}'", second.display()),
    ]);
    let mut out = output(&specs).expect("output starts");
    assert_eq!(push_frames(&mut out, 20), 20);
    out.finish().expect("finishes");
    drop(out);
    let mut expected = vec![first.clone(), second.clone()];
    expected.sort();
    assert_eq!(
        files_under(dir.path()),
        expected,
        "exactly the two files, by their literal names"
    );
    assert_eq!(decodable_frames(&first), 20);
    assert_eq!(decodable_frames(&second), 20);
}

#[test]
fn a_full_disk_is_reported_as_such_not_as_the_multiplexer_that_failed_next() {
    // Every write to /dev/full fails with ENOSPC; mp4mux fails right after
    // its filesink, and the run must name the first.
    let specs = sinks(&["kind = \"mp4\"\npath = \"/dev/full\""]);
    let mut out = output(&specs).expect("output starts");
    // The output stage goes on pushing (and counting drops) after a failure.
    push_noise(&mut out, 60);
    let err = out.finish().expect_err("nothing could be written");
    let text = err.to_string();
    assert!(text.contains("No space left"), "{text}");
    assert!(
        text.contains("sinks[0]") && text.contains("/dev/full"),
        "{text}"
    );
    assert!(!text.contains("multiplex"), "{text}");
    // The same as facts a caller can act on: which sink, which element, which domain.
    let Some(OutputError::Sink(failure)) = err.source.downcast_ref::<OutputError>() else {
        panic!("not a sink failure: {err}");
    };
    assert!(
        failure
            .sink
            .as_deref()
            .is_some_and(|s| s.starts_with("sinks[0]")),
        "{failure:?}"
    );
    assert_eq!(failure.element, "filesink", "{failure:?}");
    assert_eq!(failure.domain, "gst-resource-error-quark", "{failure:?}");
    drop(out);
    assert!(
        Path::new("/dev/full").exists(),
        "a device is never removed as an empty file"
    );
}

#[test]
fn a_file_that_received_no_frame_is_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mp4 = dir.path().join("empty.mp4");
    let mkv = dir.path().join("empty.mkv");
    let specs = sinks(&[
        &format!("kind = \"mp4\"\npath = \"{}\"", mp4.display()),
        &format!("kind = \"mkv\"\npath = \"{}\"", mkv.display()),
    ]);
    let mut out = output(&specs).expect("output starts");
    assert!(mp4.exists(), "the file opens at start");
    out.finish().expect("an empty run finishes");
    drop(out);
    assert!(
        files_under(dir.path()).is_empty(),
        "{:?}",
        files_under(dir.path())
    );

    // Dropped without finish (a run that failed early): removed too.
    let out = output(&specs).expect("output starts");
    drop(out);
    assert!(
        files_under(dir.path()).is_empty(),
        "{:?}",
        files_under(dir.path())
    );
}

#[test]
fn a_display_sink_without_a_display_fails_at_start_naming_the_sink() {
    if std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some() {
        eprintln!("skipped: this host has a display");
        return;
    }
    let specs = sinks(&["kind = \"fake\"", "kind = \"display\""]);
    let err = output(&specs).err().expect("no display, no display sink");
    assert!(matches!(err, OutputError::NoDisplay { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("sinks[1]") && text.contains("DISPLAY"),
        "{text}"
    );
}
