//! The image-dataset source (`kind = "images"`) through the real binary, on
//! folders written here: PNG, JPEG and BMP frames with masks and a sidecar,
//! an image of another size mid-folder, a corrupt image and a mask of the
//! wrong size. The run ends cleanly with every good frame out, the bad files
//! named on stderr and counted, the size change followed, and the frames'
//! calibration reported; a looping folder allocates nothing per frame; a
//! dataset with nothing playable is refused at start, naming the path.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(120);

/// A grey image whose pixels are a gradient (first pixel `first`).
fn gray(path: &Path, (w, h): (u32, u32), first: u8) {
    image::GrayImage::from_fn(w, h, |x, y| {
        image::Luma([if x == 0 && y == 0 {
            first
        } else {
            (x + y) as u8
        }])
    })
    .save(path)
    .expect("write image");
}

/// A mask with a filled rectangle.
fn mask(path: &Path, (w, h): (u32, u32), [x0, y0, x1, y1]: [u32; 4]) {
    image::GrayImage::from_fn(w, h, |x, y| {
        let inside = (x0..x1).contains(&x) && (y0..y1).contains(&y);
        image::Luma([if inside { 255 } else { 0 }])
    })
    .save(path)
    .expect("write mask");
}

/// f01 PNG + mask + sidecar, f02 JPEG (colour), f03 BMP + two masks,
/// f04 corrupt, f05 of another size, f06 whose mask has the wrong size, f07.
fn dataset(dir: &Path) {
    let size = (96, 64);
    gray(&dir.join("f01.png"), size, 10);
    mask(&dir.join("f01_mask.png"), size, [10, 10, 40, 30]);
    std::fs::write(dir.join("f01.json"), r#"{"spacing_mm": 0.1}"#).expect("sidecar");
    image::RgbImage::from_fn(96, 64, |x, _| image::Rgb([x as u8, 90, 200]))
        .save(dir.join("f02.jpg"))
        .expect("write jpeg");
    gray(&dir.join("f03.bmp"), size, 30);
    mask(&dir.join("f03_mask.png"), size, [5, 5, 25, 25]);
    mask(&dir.join("f03_mask_1.png"), size, [50, 20, 80, 50]);
    std::fs::write(dir.join("f04.png"), b"\x89PNG\r\n\x1a\n cut short").expect("corrupt");
    gray(&dir.join("f05.png"), (128, 96), 50);
    gray(&dir.join("f06.png"), size, 60);
    mask(&dir.join("f06_mask.png"), (32, 32), [0, 0, 8, 8]);
    gray(&dir.join("f07.png"), size, 70);
}

fn images_definition(path: &Path, extra: &str) -> String {
    format!(
        "[source]\nkind = \"images\"\npath = {:?}\n{extra}\n[[sinks]]\nkind = \"fake\"\n",
        path.to_string_lossy()
    )
}

#[test]
fn a_folder_with_bad_items_and_a_size_change_plays_every_good_frame() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    dataset(&data);
    let mp4 = dir.path().join("out.mp4");
    let definition = format!(
        "{}[[sinks]]\nkind = \"mp4\"\npath = {:?}\n",
        images_definition(&data, ""),
        mp4.to_string_lossy()
    );
    let run = run_pipeline(dir.path(), &definition, &[], LIMIT);
    let r = run.assert_success();
    let stderr = run.stderr();
    assert_eq!(str_at(r, "/source/state"), "ended", "{r:#}");
    assert_eq!(u64_at(r, "/frames_in"), 5, "f01, f02, f03, f05, f07: {r:#}");
    assert_eq!(u64_at(r, "/frames_out"), 5);
    assert_eq!(total_dropped(r), 0, "not live: nothing is dropped");
    assert_eq!(u64_at(r, "/source/skipped"), 2, "{r:#}");
    assert_eq!(u64_at(r, "/source/rejected"), 0);
    for (file, why) in [
        ("f04.png", "not a readable image"),
        ("f06_mask.png", "is 32x32 but its image is 96x64"),
    ] {
        let line = stderr
            .lines()
            .find(|l| l.contains(file))
            .unwrap_or_else(|| panic!("{file} is not named:\n{stderr}"));
        assert!(
            line.contains("WARN") && line.contains(why),
            "{file}: {line}"
        );
    }
    // 96x64 to 128x96 (f05) and back (f07): each a caps change.
    assert_eq!(u64_at(r, "/source/caps_changes"), 2, "{r:#}");
    assert_eq!(
        (u64_at(r, "/source/width"), u64_at(r, "/source/height")),
        (96, 64)
    );
    // The source's own calibration: f01's sidecar; the others have none.
    let cal = &r["source"]["calibration"];
    assert_eq!(cal["mode"], "source", "{cal:#}");
    assert_eq!(u64_at(cal, "/uncalibrated_frames"), 4, "{cal:#}");
    assert_eq!(
        u64_at(cal, "/changes"),
        2,
        "f01 calibrated, f02 not: {cal:#}"
    );
    assert!(
        cal["spacing_mm"].is_null(),
        "f07 ends uncalibrated: {cal:#}"
    );
    let decoded = decode(&mp4);
    assert_eq!(decoded.frames, 5, "every frame, both sizes, is in the file");
    assert_eq!((decoded.width, decoded.height), (96, 64));
}

#[test]
fn the_definitions_calibration_fills_in_where_no_sidecar_gives_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    dataset(&data);
    let run = run_pipeline(
        dir.path(),
        &images_definition(&data, "[source.calibration]\nspacing_mm = 0.25\n"),
        &[],
        LIMIT,
    );
    let r = run.assert_success();
    let cal = &r["source"]["calibration"];
    assert_eq!(cal["mode"], "fixed", "{cal:#}");
    assert_eq!(cal["source"], "config");
    assert_eq!(f64_at(cal, "/spacing_mm/x_mm"), 0.25);
    assert_eq!(u64_at(cal, "/uncalibrated_frames"), 0, "{cal:#}");
    // f01's sidecar (0.1), then 0.25 at 96x64, at 128x96, at 96x64 again.
    assert_eq!(u64_at(cal, "/changes"), 4, "{cal:#}");
}

#[test]
fn a_looping_folder_allocates_nothing_per_frame_on_the_frame_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (k, name) in ["a.png", "b.png", "c.png"].iter().enumerate() {
        gray(&dir.path().join(name), (160, 120), k as u8 * 40);
        mask(
            &dir.path().join(name.replace(".png", "_mask.png")),
            (160, 120),
            [20, 20, 60 + k as u32 * 10, 50],
        );
    }
    let run = run_pipeline(
        dir.path(),
        &images_definition(dir.path(), "loop = true"),
        &["--frames", "600"],
        LIMIT,
    );
    let r = run.assert_success();
    assert_eq!(u64_at(r, "/frames_out"), 600, "{r:#}");
    assert_eq!(u64_at(r, "/source/skipped"), 0);
    assert_eq!(f64_at(r, "/allocations_per_frame"), 0.0, "{r:#}");
}

#[test]
fn a_dataset_with_nothing_playable_is_refused_at_start_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-dataset");
    let run = run_pipeline(dir.path(), &images_definition(&missing, ""), &[], LIMIT);
    assert_eq!(run.output.status.code(), Some(2), "{}", run.stderr());
    let stderr = run.stderr();
    assert!(
        stderr.contains("no-such-dataset") && stderr.contains("no such file or folder"),
        "{stderr}"
    );
    assert!(stderr.contains("Fix:"), "{stderr}");

    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).expect("mkdir");
    std::fs::write(broken.join("a.png"), b"not a png").expect("write");
    std::fs::write(broken.join("b.bmp"), b"not a bmp").expect("write");
    let run = run_pipeline(dir.path(), &images_definition(&broken, ""), &[], LIMIT);
    assert_eq!(run.output.status.code(), Some(2), "{}", run.stderr());
    let stderr = run.stderr();
    assert!(
        stderr.contains("no image of") && stderr.contains("a.png") && stderr.contains("b.bmp"),
        "{stderr}"
    );
}
