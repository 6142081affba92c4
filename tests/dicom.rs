//! The DICOM source through the real binary on real scanner files (the
//! ultrasound files of pydicom-data, and pydicom's half-size copy of the
//! SonoSite cine, installed into the venv by scripts/bootstrap.sh): each
//! streams with the spacing its regions declare, or with its regions refused
//! and the frames uncalibrated, saying why; none panics. Each declared
//! spacing is checked against the depth ruler on the file's screen: it
//! agrees within 2 % or the check says it cannot tell, never disagrees (the
//! test prints the table of docs/calibration.md). The cine plays live
//! at its frame rate through umind-nano into an MP4 with the overlay, and as
//! fast as possible with every frame in the MP4. A corrupt file beside a good
//! one is skipped by name; a folder with nothing playable fails at start.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(120);

/// Where the bootstrap links the test files; fails (never skips) without them.
fn samples() -> PathBuf {
    let venv = std::env::var_os("SONOFLOW_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv"));
    let dir = venv.join("dicom-samples");
    assert!(
        dir.join("pydicom-data/color3d_jpeg_baseline.dcm").is_file()
            && dir.join("pydicom/examples_ybr_color.dcm").is_file(),
        "the DICOM test files (pydicom-data, pydicom) are not installed under {}: run scripts/bootstrap.sh",
        dir.display()
    );
    dir
}

/// What a file must give: size, frames, and its regions' declared spacing.
struct Expect {
    /// `pydicom-data` or `pydicom`, then the file name.
    dir: &'static str,
    file: &'static str,
    size: (u64, u64),
    frames: u64,
    /// Image regions kept, and Physical Delta X = Y in cm (None: uncalibrated).
    regions: usize,
    delta_cm: Option<f64>,
    /// The ruler check's verdict on the declared spacing (None: nothing
    /// declared, no check).
    ruler: Option<&'static str>,
    /// Said on stderr (besides the file's name).
    says: &'static [&'static str],
}

const AGREES: Option<&str> = Some("agrees");
const CANNOT_TELL: Option<&str> = Some("cannot_tell");

const NO_REGIONS: &[&str] = &["no Sequence of Ultrasound Regions: frames are uncalibrated (no mm)"];
/// Philips: a 2-D region and an ECG waveform strip, which is ignored.
const PHILIPS: &[&str] = &["region 2 of 2 (waveform, ECG trace): ignored"];
/// ALOKA: two B-mode views side by side, and a grey bar, which is ignored.
const ALOKA: &[&str] = &["region 3 of 3 (not a 2-D image, grey bar): ignored"];
const PHILIPS_CM: f64 = 0.02622878766196998;
const ALOKA_CM: f64 = 0.03826530650258064;

const EXPECTED: &[Expect] = &[
    Expect {
        dir: "pydicom-data",
        file: "JPGLosslessP14SV1_1s_1f_8b.dcm",
        size: (1024, 768),
        frames: 1,
        regions: 1,
        delta_cm: Some(0.025476696592378157),
        ruler: CANNOT_TELL,
        says: &[],
    },
    Expect {
        dir: "pydicom-data",
        file: "OBXXXX1A.dcm",
        size: (800, 600),
        frames: 1,
        regions: 1,
        delta_cm: Some(PHILIPS_CM),
        ruler: AGREES,
        says: PHILIPS,
    },
    Expect {
        dir: "pydicom-data",
        file: "OBXXXX1A_2frame.dcm",
        size: (800, 600),
        frames: 2,
        regions: 1,
        delta_cm: Some(PHILIPS_CM),
        ruler: AGREES,
        says: PHILIPS,
    },
    Expect {
        dir: "pydicom-data",
        file: "OBXXXX1A_expb.dcm",
        size: (800, 600),
        frames: 1,
        regions: 1,
        delta_cm: Some(PHILIPS_CM),
        ruler: AGREES,
        says: PHILIPS,
    },
    Expect {
        dir: "pydicom-data",
        file: "OBXXXX1A_expb_2frame.dcm",
        size: (800, 600),
        frames: 2,
        regions: 1,
        delta_cm: Some(PHILIPS_CM),
        ruler: AGREES,
        says: PHILIPS,
    },
    Expect {
        dir: "pydicom-data",
        file: "OBXXXX1A_rle.dcm",
        size: (800, 600),
        frames: 1,
        regions: 1,
        delta_cm: Some(PHILIPS_CM),
        ruler: AGREES,
        says: PHILIPS,
    },
    Expect {
        dir: "pydicom-data",
        file: "OBXXXX1A_rle_2frame.dcm",
        size: (800, 600),
        frames: 2,
        regions: 1,
        delta_cm: Some(PHILIPS_CM),
        ruler: AGREES,
        says: PHILIPS,
    },
    Expect {
        dir: "pydicom-data",
        file: "US1_J2KI.dcm",
        size: (640, 480),
        frames: 1,
        regions: 0,
        delta_cm: None,
        ruler: None,
        says: NO_REGIONS,
    },
    Expect {
        dir: "pydicom-data",
        file: "US1_J2KR.dcm",
        size: (640, 480),
        frames: 1,
        regions: 0,
        delta_cm: None,
        ruler: None,
        says: NO_REGIONS,
    },
    Expect {
        dir: "pydicom-data",
        file: "US1_UNCI.dcm",
        size: (640, 480),
        frames: 1,
        regions: 0,
        delta_cm: None,
        ruler: None,
        says: NO_REGIONS,
    },
    Expect {
        dir: "pydicom-data",
        file: "US1_UNCR.dcm",
        size: (640, 480),
        frames: 1,
        regions: 0,
        delta_cm: None,
        ruler: None,
        says: NO_REGIONS,
    },
    Expect {
        dir: "pydicom-data",
        file: "color-pl.dcm",
        size: (256, 120),
        frames: 1,
        regions: 0,
        delta_cm: None,
        ruler: None,
        says: NO_REGIONS,
    },
    Expect {
        dir: "pydicom-data",
        file: "color-px.dcm",
        size: (256, 120),
        frames: 1,
        regions: 0,
        delta_cm: None,
        ruler: None,
        says: NO_REGIONS,
    },
    Expect {
        dir: "pydicom-data",
        file: "color3d_jpeg_baseline.dcm",
        size: (640, 480),
        frames: 120,
        regions: 1,
        delta_cm: Some(0.05104970559477806),
        ruler: AGREES,
        says: &["120 frames at 30.00 fps (Frame Time)"],
    },
    Expect {
        dir: "pydicom-data",
        file: "gdcm-US-ALOKA-16.dcm",
        size: (640, 480),
        frames: 1,
        regions: 2,
        delta_cm: Some(ALOKA_CM),
        ruler: AGREES,
        says: ALOKA,
    },
    Expect {
        dir: "pydicom-data",
        file: "gdcm-US-ALOKA-16_big.dcm",
        size: (640, 480),
        frames: 1,
        regions: 2,
        delta_cm: Some(ALOKA_CM),
        ruler: AGREES,
        says: ALOKA,
    },
    // A half-size copy of the SonoSite cine whose region still describes
    // the full-size image: refused, frames uncalibrated.
    Expect {
        dir: "pydicom",
        file: "examples_ybr_color.dcm",
        size: (320, 240),
        frames: 30,
        regions: 0,
        delta_cm: None,
        ruler: None,
        says: &[
            "region 1 of 1: 2-D, x 84..=595, y 31..=414 does not fit the 320x240 image",
            "no usable 2-D region: frames are uncalibrated (no mm)",
        ],
    },
    // The Philips image cut to 350 rows, its region left as it was.
    Expect {
        dir: "pydicom",
        file: "examples_palette.dcm",
        size: (800, 350),
        frames: 1,
        regions: 0,
        delta_cm: None,
        ruler: None,
        says: &[
            "does not fit the 800x350 image",
            "frames are uncalibrated (no mm)",
        ],
    },
];

/// The ultrasound files (Modality US) of pydicom-data, as pydicom reads them.
fn ultrasound_files(dir: &Path) -> Vec<String> {
    let python = samples().join("../bin/python");
    let script = "import os, sys, warnings, pydicom\n\
                  warnings.simplefilter('ignore')\n\
                  d = sys.argv[1]\n\
                  for f in sorted(os.listdir(d)):\n\
                  \x20   try:\n\
                  \x20       ds = pydicom.dcmread(os.path.join(d, f), stop_before_pixels=True)\n\
                  \x20   except Exception:\n\
                  \x20       continue\n\
                  \x20   if ds.get('Modality') == 'US':\n\
                  \x20       print(f)\n";
    let out = Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/bootstrap.sh", python.display()));
    assert!(
        out.status.success(),
        "listing pydicom-data failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Runs `definition` like [`run_pipeline`], logging at INFO (the per-file
/// lines: size, timing, regions kept and ignored) as well as warnings.
fn run_logged(dir: &Path, definition: &str) -> Run {
    let pipeline = write_definition(dir, definition);
    let child = run_command(dir, &pipeline, &[])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start sonoflow");
    let output = wait_with_limit(child, LIMIT);
    Run {
        output,
        report: read_report(dir),
    }
}

/// A `kind = "dicom"` source section for `path`.
fn source(path: &Path, extra: &str) -> String {
    format!(
        "[source]\nkind = \"dicom\"\npath = '{}'\n{extra}\n",
        path.display()
    )
}

/// Checks one file; its ruler check as a row of the table (None: no
/// declared spacing, nothing checked).
fn check(expect: &Expect, samples: &Path) -> Option<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = samples.join(expect.dir).join(expect.file);
    let run = run_logged(
        dir.path(),
        &format!(
            "{}[[sinks]]\nkind = \"fake\"\n",
            source(&path, "live = false")
        ),
    );
    let file = expect.file;
    let stderr = run.stderr();
    assert!(!stderr.contains("panicked"), "{file}: {stderr}");
    let r = run.assert_success();
    assert_eq!(str_at(r, "/source/state"), "ended", "{file}: {r:#}");
    assert_eq!(u64_at(r, "/frames_in"), expect.frames, "{file}: {r:#}");
    assert_eq!(
        (u64_at(r, "/source/width"), u64_at(r, "/source/height")),
        expect.size,
        "{file}"
    );
    let cal = &r["source"]["calibration"];
    let regions = cal["regions"].as_array().map_or(0, Vec::len);
    assert_eq!(regions, expect.regions, "{file}: {cal:#}");
    match expect.delta_cm {
        Some(delta) => {
            assert_eq!(str_at(cal, "/source"), "dicom", "{file}: {cal:#}");
            for axis in ["x_mm", "y_mm"] {
                let mm = f64_at(cal, &format!("/spacing_mm/{axis}"));
                assert!(
                    (mm - delta * 10.0).abs() <= 1e-12 * mm,
                    "{file}: {axis} {mm} is not the declared {delta} cm x 10"
                );
            }
            assert_eq!(u64_at(cal, "/uncalibrated_frames"), 0, "{file}");
        }
        None => {
            assert!(cal["spacing_mm"].is_null(), "{file}: no mm: {cal:#}");
            assert_eq!(
                u64_at(cal, "/uncalibrated_frames"),
                expect.frames,
                "{file}: counted as uncalibrated"
            );
        }
    }
    for says in expect.says {
        let line = stderr
            .lines()
            .find(|l| l.contains(says))
            .unwrap_or_else(|| panic!("{file}: {says:?} not said:\n{stderr}"));
        assert!(line.contains(file), "the message names the file: {line}");
    }
    check_ruler(expect, cal, &stderr)
}

/// The declared spacing against the ruler on the screen: one check per
/// file that declares one, with the verdict expected (never "disagrees":
/// these files are consistent), said on stderr by file name.
fn check_ruler(expect: &Expect, cal: &serde_json::Value, stderr: &str) -> Option<String> {
    let file = expect.file;
    let checks = cal["ruler_checks"]
        .as_array()
        .unwrap_or_else(|| panic!("{file}: ruler_checks is a list: {cal:#}"));
    let (Some(delta), Some(verdict)) = (expect.delta_cm, expect.ruler) else {
        assert!(
            checks.is_empty(),
            "{file}: nothing declared, nothing checked: {cal:#}"
        );
        return None;
    };
    assert_eq!(checks.len(), 1, "{file}: checked once: {cal:#}");
    let c = &checks[0];
    assert_eq!(str_at(c, "/file"), file, "{c:#}");
    assert_ne!(str_at(c, "/verdict"), "disagrees", "{file}: {c:#}");
    assert_eq!(str_at(c, "/verdict"), verdict, "{file}: {c:#}");
    let declared = f64_at(c, "/declared_mm");
    assert!(
        (declared - delta * 10.0).abs() <= 1e-12 * declared,
        "{file}: {c:#}"
    );
    let reason = str_at(c, "/reason");
    let (ruler, difference) = if verdict == "agrees" {
        let ruler = f64_at(c, "/ruler_mm");
        let pct = f64_at(c, "/difference_pct");
        assert!(pct.abs() <= 2.0, "{file}: {c:#}");
        assert!(
            ((ruler / declared - 1.0) * 100.0 - pct).abs() < 1e-9,
            "{file}: {c:#}"
        );
        (format!("{ruler:.4}"), format!("{pct:+.2} %"))
    } else {
        assert!(
            c["ruler_mm"].is_null() && c["difference_pct"].is_null(),
            "{c:#}"
        );
        ("—".to_owned(), "—".to_owned())
    };
    let said = if verdict == "agrees" {
        "the ruler on the screen agrees with the stated spacing"
    } else {
        "cannot check the stated spacing"
    };
    assert!(
        stderr.lines().any(|l| l.contains(file) && l.contains(said)),
        "{file}: {said:?} not said:\n{stderr}"
    );
    Some(format!(
        "| `{file}` | {declared:.4} | {ruler} | {difference} | {verdict} | {reason} |"
    ))
}

#[test]
fn every_ultrasound_file_streams_with_its_declared_spacing_or_says_why_not() {
    let samples = samples();
    let listed = ultrasound_files(&samples.join("pydicom-data"));
    let mut covered: Vec<String> = EXPECTED
        .iter()
        .filter(|e| e.dir == "pydicom-data")
        .map(|e| e.file.to_owned())
        .collect();
    covered.sort();
    assert_eq!(
        listed, covered,
        "every ultrasound file of pydicom-data has an expectation here"
    );
    // Two at a time: each run is its own process.
    let rows: Vec<Option<String>> = std::thread::scope(|scope| {
        let halves: Vec<_> = EXPECTED
            .chunks(EXPECTED.len().div_ceil(2))
            .map(|half| {
                let samples = &samples;
                scope.spawn(move || {
                    half.iter()
                        .map(|expect| check(expect, samples))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        halves
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    // The table of docs/calibration.md ("DICOM files against their rulers").
    eprintln!("| file | declared mm/px | ruler mm/px | difference | verdict | ruler read as |");
    eprintln!("| --- | --- | --- | --- | --- | --- |");
    for row in rows.into_iter().flatten() {
        eprintln!("{row}");
    }
}

/// The shipped example with its paths made absolute and its MP4 in `dir`.
fn cine_definition(dir: &Path, live: bool) -> String {
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../pipelines/dicom-cine.toml");
    let text = std::fs::read_to_string(&shipped).expect("pipelines/dicom-cine.toml");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cine = samples().join("pydicom-data/color3d_jpeg_baseline.dcm");
    let replace = |text: String, from: &str, to: String| {
        assert!(text.contains(from), "{from} in the shipped example");
        text.replace(from, &to)
    };
    let text = replace(
        text,
        "path = \".venv/dicom-samples/pydicom-data/color3d_jpeg_baseline.dcm\"",
        format!("path = '{}'", cine.display()),
    );
    let text = replace(
        text,
        "dir = \"onnx/umind-nano\"",
        format!("dir = '{}'", root.join("onnx/umind-nano").display()),
    );
    let text = replace(
        text,
        "providers = [\"tensorrt\", \"cuda\", \"cpu\"]",
        "providers = [\"cpu\"]".into(),
    );
    let text = replace(
        text,
        "path = \"out/dicom-cine.mp4\"",
        format!("path = '{}'", dir.join("cine.mp4").display()),
    );
    replace(text, "live = true", format!("live = {live}"))
}

fn assert_cine_calibration(r: &serde_json::Value) {
    let cal = &r["source"]["calibration"];
    assert_eq!(str_at(cal, "/source"), "dicom");
    let mm = f64_at(cal, "/spacing_mm/x_mm");
    assert!((mm - 0.5104970559477806).abs() < 1e-12, "{cal:#}");
    assert_eq!(u64_at(cal, "/uncalibrated_frames"), 0);
}

#[test]
fn the_cine_plays_live_at_its_frame_rate_through_the_model_into_an_mp4_with_the_overlay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_pipeline(dir.path(), &cine_definition(dir.path(), true), &[], LIMIT);
    let r = run.assert_success();
    // Live: a machine slower than 30 fps drops frames, counted, never hidden.
    assert_eq!(
        u64_at(r, "/frames_in") + u64_at(r, "/source/lost_before_ingest"),
        120,
        "{r:#}"
    );
    assert_eq!(
        u64_at(r, "/frames_out") + pipeline_dropped(r),
        u64_at(r, "/frames_in"),
        "{r:#}"
    );
    let fps = f64_at(r, "/fps_in");
    assert!(
        fps > 0.0 && fps <= 30.0 * 1.25,
        "at the file's 30 fps, never faster: {r:#}"
    );
    assert_eq!(
        u64_at(r, "/overlay/frames"),
        u64_at(r, "/frames_out"),
        "{r:#}"
    );
    assert_cine_calibration(r);
    let decoded = decode(&dir.path().join("cine.mp4"));
    assert_eq!(decoded.frames, u64_at(r, "/frames_out"));
    assert_eq!((decoded.width, decoded.height), (640, 480));
}

#[test]
fn the_cine_played_for_evaluation_puts_all_120_frames_into_the_mp4() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_pipeline(dir.path(), &cine_definition(dir.path(), false), &[], LIMIT);
    let r = run.assert_success();
    assert_eq!(u64_at(r, "/frames_in"), 120, "{r:#}");
    assert_eq!(u64_at(r, "/frames_out"), 120, "{r:#}");
    assert_eq!(u64_at(r, "/overlay/frames"), 120, "{r:#}");
    assert_cine_calibration(r);
    let decoded = decode(&dir.path().join("cine.mp4"));
    assert_eq!(decoded.frames, 120);
}

#[test]
fn a_corrupt_file_is_skipped_by_name_and_a_folder_of_nothing_playable_fails() {
    let samples = samples();
    let dir = tempfile::tempdir().expect("tempdir");
    let scans = dir.path().join("scans");
    std::fs::create_dir(&scans).expect("mkdir");
    // A truncated copy of the cine (cut inside its pixel data), before a good file.
    let cine = std::fs::read(samples.join("pydicom-data/color3d_jpeg_baseline.dcm")).expect("read");
    std::fs::write(scans.join("a-truncated.dcm"), &cine[..cine.len() / 2]).expect("write");
    std::fs::copy(
        samples.join("pydicom-data/OBXXXX1A_2frame.dcm"),
        scans.join("b-philips.dcm"),
    )
    .expect("copy");
    let run = run_pipeline(
        dir.path(),
        &format!(
            "{}[[sinks]]\nkind = \"fake\"\n",
            source(&scans, "live = false")
        ),
        &[],
        LIMIT,
    );
    let r = run.assert_success();
    assert_eq!(u64_at(r, "/frames_in"), 2, "{r:#}");
    let stderr = run.stderr();
    assert!(
        stderr.lines().any(|l| l
            .contains("a-truncated.dcm skipped: its pixel data holds 60 fragments for 120 frames")),
        "{stderr}"
    );

    std::fs::remove_file(scans.join("b-philips.dcm")).expect("remove");
    std::fs::write(scans.join("c-notes.txt"), "not DICOM").expect("write");
    let run = run_pipeline(
        dir.path(),
        &format!(
            "{}[[sinks]]\nkind = \"fake\"\n",
            source(&scans, "live = false")
        ),
        &[],
        LIMIT,
    );
    assert!(!run.output.status.success(), "nothing playable is an error");
    // Refused before the run starts, as a source that cannot be built is.
    assert_eq!(run.output.status.code(), Some(2), "{}", run.stderr());
    let stderr = run.stderr();
    for needle in [
        "no file in",
        "a-truncated.dcm: its pixel data holds 60 fragments for 120 frames",
        "c-notes.txt: not a readable DICOM file",
        "fix:",
    ] {
        assert!(stderr.contains(needle), "{needle:?} in:\n{stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}
