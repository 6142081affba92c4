//! Outputs through the real binary: MP4 and MKV files that decode with the
//! expected frame count, and RTP/UDP that a second sonoflow can receive.

mod common;

use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(60);

fn file_output_round_trip(kind: &str, name: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sub").join(name);
    let run = run_pipeline(
        dir.path(),
        &format!(
            r#"
            [source]
            kind = "test"
            width = 320
            height = 240
            fps = 30
            [[sinks]]
            kind = "{kind}"
            path = "{}"
            "#,
            path.display()
        ),
        &["--frames", "45"],
        LIMIT,
    );
    let r = run.assert_success();
    let out = u64_at(r, "/frames_out");
    assert!(out >= 40, "almost every frame reaches the sink: {r:#}");
    let decoded = decode(&path);
    assert_eq!(
        decoded.frames, out,
        "the file holds exactly the frames handed to the sink"
    );
    assert_eq!((decoded.width, decoded.height), (320, 240));
}

#[test]
fn mp4_output_is_a_valid_file_with_the_expected_frame_count() {
    file_output_round_trip("mp4", "run.mp4");
}

#[test]
fn mkv_output_is_a_valid_file_with_the_expected_frame_count() {
    file_output_round_trip("mkv", "run.mkv");
}

#[test]
fn rtp_output_reaches_a_udp_source() {
    let port = free_udp_port();
    let receiver_dir = tempfile::tempdir().expect("tempdir");
    let receiver = write_definition(
        receiver_dir.path(),
        &format!(
            r#"
            [source]
            kind = "udp"
            port = {port}
            address = "127.0.0.1"
            latency_ms = 20
            [[sinks]]
            kind = "fake"
            "#
        ),
    );
    let receiving = run_command(receiver_dir.path(), &receiver, &["--frames", "30"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start receiver");
    std::thread::sleep(Duration::from_millis(300));
    let sender_dir = tempfile::tempdir().expect("tempdir");
    let sent = run_pipeline(
        sender_dir.path(),
        &format!(
            r#"
            [source]
            kind = "test"
            width = 320
            height = 240
            fps = 30
            [[sinks]]
            kind = "rtp"
            port = {port}
            "#
        ),
        &["--frames", "90"],
        LIMIT,
    );
    sent.assert_success();
    let output = wait_with_limit(receiving, LIMIT);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let r = read_report(receiver_dir.path()).expect("receiver report");
    assert_eq!(u64_at(&r, "/frames_in"), 30);
    assert_eq!(
        (u64_at(&r, "/source/width"), u64_at(&r, "/source/height")),
        (320, 240)
    );
}

#[test]
fn unwritable_output_path_fails_before_any_frame_with_its_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"").expect("write");
    let run = run_pipeline(
        dir.path(),
        &format!(
            "[source]\nkind = \"test\"\n[[sinks]]\nkind = \"mp4\"\npath = \"{}/x.mp4\"\n",
            blocker.display()
        ),
        &["--frames", "10"],
        LIMIT,
    );
    assert_eq!(run.output.status.code(), Some(2), "{}", run.stderr());
    assert!(run.stderr().contains("not-a-dir"), "{}", run.stderr());
}
