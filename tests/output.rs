//! Outputs through the real binary: MP4 and MKV files that decode with the
//! expected frame count, and RTP/UDP that a second sonoflow can receive;
//! file names taken literally, a full disk named as the cause with what was
//! written still playable, no empty files, and no display sink without a display.

mod common;
mod salvage;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use salvage::decodable_frames;

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
    assert!(out > 0, "{r:#}");
    assert_eq!(
        out + pipeline_dropped(r),
        45,
        "every frame reaches the sink or is counted as dropped: {r:#}"
    );
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
fn classic_mp4_output_is_a_valid_file_with_the_expected_frame_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("classic.mp4");
    let run = run_pipeline(
        dir.path(),
        &format!(
            "[source]\nkind = \"test\"\nwidth = 320\nheight = 240\nfps = 30\n\
             [[sinks]]\nkind = \"mp4\"\npath = \"{}\"\nfragment_ms = 0\n",
            path.display()
        ),
        &["--frames", "30"],
        LIMIT,
    );
    let r = run.assert_success();
    assert_eq!(decode(&path).frames, u64_at(r, "/frames_out"));
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
    // The sender runs until the receiver has its frames, however long the
    // receiver takes to start: no race between the two.
    let sender_dir = tempfile::tempdir().expect("tempdir");
    let sender = write_definition(
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
    );
    let mut sending = Running(Some(
        run_command(sender_dir.path(), &sender, &[])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start sender"),
    ));
    let output = wait_with_limit(receiving, LIMIT);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let sender = sending.0.take().expect("the sender");
    let status = std::process::Command::new("kill")
        .arg("-INT")
        .arg(sender.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
    let sent = wait_with_limit(sender, LIMIT);
    assert!(
        sent.status.success(),
        "the sender stops cleanly: {}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let r = read_report(receiver_dir.path()).expect("receiver report");
    assert_eq!(u64_at(&r, "/frames_in"), 30);
    assert_eq!(
        (u64_at(&r, "/source/width"), u64_at(&r, "/source/height")),
        (320, 240)
    );
}

/// A child process killed if the test ends before it is taken out.
struct Running(Option<std::process::Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn unwritable_output_path_fails_before_any_frame_with_its_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"").expect("write");
    let output = run_without_report(
        dir.path(),
        &format!(
            "[source]\nkind = \"test\"\n[[sinks]]\nkind = \"mp4\"\npath = \"{}/x.mp4\"\n",
            blocker.display()
        ),
        &["--frames", "10"],
        &[],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not-a-dir"), "{stderr}");
}

/// Runs a definition that stops before any frame (exit 2: no report is
/// written), without the variables in `unset`.
fn run_without_report(
    dir: &Path,
    definition: &str,
    args: &[&str],
    unset: &[&str],
) -> std::process::Output {
    let pipeline = write_definition(dir, definition);
    let mut command = run_command(dir, &pipeline, args);
    for name in unset {
        command.env_remove(name);
    }
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start sonoflow");
    wait_with_limit(child, LIMIT)
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
fn sink_paths_are_file_names_never_pipeline_syntax() {
    // A path ending in a backslash escaped the launch string's closing quote
    // and the next sink's path was parsed as elements; a quote did the same.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let first = PathBuf::from(format!(r"{}/scan\", out.display()));
    let second = PathBuf::from(format!(
        r#"{}/b" ! filesink location={}/x"#,
        out.display(),
        out.display()
    ));
    let run = run_pipeline(
        dir.path(),
        &format!(
            "[source]\nkind = \"test\"\nwidth = 160\nheight = 120\nfps = 30\n\
             [[sinks]]\nkind = \"mp4\"\npath = '{}'\n[[sinks]]\nkind = \"mkv\"\npath = '{}'\n",
            first.display(),
            second.display()
        ),
        &["--frames", "20"],
        LIMIT,
    );
    let r = run.assert_success();
    let mut expected = vec![first.clone(), second.clone()];
    expected.sort();
    assert_eq!(files_under(&out), expected, "exactly these two files");
    // (common::decode quotes its path into a launch string: the same bug.)
    assert_eq!(decodable_frames(&first), u64_at(r, "/frames_out"));
    assert_eq!(decodable_frames(&second), u64_at(r, "/frames_out"));
}

#[test]
fn a_run_that_fails_before_any_frame_leaves_no_empty_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let not_video = dir.path().join("notes.txt");
    std::fs::write(&not_video, "not a video").expect("write");
    let mp4 = dir.path().join("never.mp4");
    let run = run_pipeline(
        dir.path(),
        &format!(
            "[source]\nkind = \"file\"\npath = \"{}\"\n[[sinks]]\nkind = \"mp4\"\npath = \"{}\"\n",
            not_video.display(),
            mp4.display()
        ),
        &[],
        LIMIT,
    );
    assert_eq!(run.output.status.code(), Some(1), "{}", run.stderr());
    assert_eq!(u64_at(run.report(), "/frames_out"), 0);
    assert!(
        !mp4.exists(),
        "an MP4 without a frame is removed, not left unplayable"
    );
}

#[test]
fn display_sink_on_a_headless_host_fails_at_start_naming_the_sink() {
    // autovideosink picked DirectFB here, which crashed the process.
    let dir = tempfile::tempdir().expect("tempdir");
    let output = run_without_report(
        dir.path(),
        "[source]\nkind = \"test\"\n[[sinks]]\nkind = \"fake\"\n[[sinks]]\nkind = \"display\"\n",
        &["--frames", "10"],
        &["DISPLAY", "WAYLAND_DISPLAY"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("sinks[1]") && stderr.contains("DISPLAY") && stderr.contains("Fix"),
        "{stderr}"
    );
}

#[test]
fn full_device_is_reported_as_no_space_not_as_a_muxer_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_pipeline(
        dir.path(),
        "[source]\nkind = \"test\"\nwidth = 640\nheight = 480\nfps = 30\npattern = \"snow\"\n\
         [[sinks]]\nkind = \"mp4\"\npath = \"/dev/full\"\n",
        &["--frames", "60"],
        LIMIT,
    );
    assert_eq!(run.output.status.code(), Some(1), "{}", run.stderr());
    let error = str_at(run.report(), "/error");
    assert!(error.contains("No space left"), "{error}");
    assert!(error.contains("sinks[0]"), "{error}");
}

/// A small tmpfs, unmounted on drop; None where mounting is not permitted.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> Option<Self> {
        let mount = dir.join("disk");
        std::fs::create_dir(&mount).ok()?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(Self(mount))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_disk_names_its_cause_and_keeps_what_was_written_playable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(disk) = SmallDisk::mount(dir.path(), "600k") else {
        eprintln!("skipped: mounting a tmpfs is not permitted here");
        return;
    };
    let mp4 = disk.0.join("scan.mp4");
    let run = run_pipeline(
        dir.path(),
        &format!(
            "[source]\nkind = \"test\"\nwidth = 320\nheight = 240\nfps = 30\npattern = \"snow\"\n\
             [[sinks]]\nkind = \"mp4\"\npath = \"{}\"\nfragment_ms = 200\n",
            mp4.display()
        ),
        &["--frames", "600"],
        LIMIT,
    );
    assert_eq!(run.output.status.code(), Some(1), "{}", run.stderr());
    let error = str_at(run.report(), "/error");
    assert!(error.contains("No space left"), "{error}");
    assert!(
        decodable_frames(&mp4) > 0,
        "the fragments written before the disk filled play"
    );
}
