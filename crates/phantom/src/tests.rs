//! Tests of the phantom as a whole: speckle statistics, geometry, ground
//! truth against what is drawn, determinism, and the dataset export.

use sonoflow_core::findings::{label, GroundTruth, ImageRegion, LesionTruth};

use crate::export::{export, read_png, sequence_config, ExportOptions};
use crate::lexicon::{EchoPattern, LesionAttributes, PosteriorFeatures};
use crate::screen::INK;
use crate::{speckle_ratio, LesionKind, Phantom, PhantomConfig, ProbeKind, DEPTH_PRESETS_CM};

fn render(config: PhantomConfig, index: u64) -> (Phantom, Vec<u8>, GroundTruth) {
    let mut phantom = Phantom::new(config).expect("valid config");
    let mut pixels = vec![0u8; (phantom.config().width * phantom.config().height) as usize];
    let truth = phantom.render(index, &mut pixels);
    (phantom, pixels, truth)
}

/// The lexicon values a lesion's truth names (it holds them as words).
fn attributes_of(lesion: &LesionTruth) -> LesionAttributes {
    let words = serde_json::to_value(&lesion.attributes).expect("words");
    serde_json::from_value(words).expect("the truth names lexicon values")
}

fn mean_std(values: impl Iterator<Item = f64>) -> (f64, f64, usize) {
    let (mut n, mut sum, mut sq) = (0usize, 0.0, 0.0);
    for v in values {
        n += 1;
        sum += v;
        sq += v * v;
    }
    let mean = sum / n as f64;
    (mean, (sq / n as f64 - mean * mean).max(0.0).sqrt(), n)
}

#[test]
fn fully_developed_speckle_is_rayleigh() {
    for probe in [ProbeKind::Linear, ProbeKind::Convex] {
        let ratio = speckle_ratio(probe, 11).expect("valid phantom");
        assert!(
            (ratio - 1.913).abs() < 0.08,
            "{probe:?}: mean/std {ratio:.3}, Rayleigh is 1.913"
        );
    }
}

#[test]
fn pixel_spacing_is_exact_for_every_depth_preset_and_the_scale_shows_it() {
    for probe in [ProbeKind::Linear, ProbeKind::Convex] {
        for depth_cm in DEPTH_PRESETS_CM {
            let config = PhantomConfig {
                probe,
                depth_cm,
                lesions: 0,
                ..PhantomConfig::default()
            };
            let (phantom, pixels, truth) = render(config, 0);
            let layout = phantom.layout();
            let depth_mm = f64::from(depth_cm) * 10.0;
            // Exact by construction: spacing is depth / rows (to float rounding).
            assert!(
                (layout.spacing_mm * f64::from(layout.image_height) - depth_mm).abs() < 1e-9,
                "{probe:?} {depth_cm} cm"
            );
            assert_eq!(truth.pixel_spacing.x_mm, layout.spacing_mm);
            assert_eq!(truth.pixel_spacing.y_mm, layout.spacing_mm);
            // Every centimetre tick sits exactly depth / spacing rows below depth 0.
            let x = layout.scale_x() + 2;
            for cm in 0..=depth_cm {
                let row = layout.image_top as f64 + f64::from(cm) * 10.0 / layout.spacing_mm;
                let y = (row.round() as u32).min(layout.image_top + layout.image_height - 1);
                assert_eq!(
                    pixels[(y * layout.width + x) as usize],
                    INK,
                    "{probe:?} {depth_cm} cm: tick {cm} at row {y}"
                );
            }
        }
    }
}

#[test]
fn convex_fan_is_dark_outside_and_linear_image_is_a_rectangle() {
    let (_, pixels, truth) = render(
        PhantomConfig {
            probe: ProbeKind::Convex,
            depth_cm: 8,
            ..PhantomConfig::default()
        },
        0,
    );
    let ImageRegion::Fan { .. } = truth.region else {
        panic!("convex gives a fan")
    };
    let b = truth.region.bounds();
    // The bottom corners of the fan's bounding box lie outside the fan: black.
    let (x, y) = (b.x0 as u32 + 2, b.y1 as u32 - 2);
    assert!(!truth.region.contains(x, y));
    assert_eq!(pixels[(y * 640 + x) as usize], 0);
    let inside: Vec<u8> = (0..640 * 480u32)
        .filter(|&i| truth.labels.data[i as usize] != label::BACKGROUND)
        .map(|i| pixels[i as usize])
        .collect();
    assert!(inside.len() > 50_000 && inside.iter().filter(|&&v| v > 20).count() > inside.len() / 2);
    let (_, _, truth) = render(
        PhantomConfig {
            probe: ProbeKind::Linear,
            ..PhantomConfig::default()
        },
        0,
    );
    assert!(matches!(truth.region, ImageRegion::Rect { .. }));
}

/// Mean gray of the lesion and of a ring of tissue around it.
fn lesion_and_ring(pixels: &[u8], truth: &GroundTruth, value: u8) -> (f64, f64) {
    let (w, h) = (truth.labels.width as i64, truth.labels.height as i64);
    let ring_px = (2.0 / truth.pixel_spacing.x_mm).round() as i64;
    let at = |x: i64, y: i64| truth.labels.data[(y * w + x) as usize];
    let (mut inside, mut ring) = (Vec::new(), Vec::new());
    for y in 0..h {
        for x in 0..w {
            let v = at(x, y);
            if v == value {
                inside.push(f64::from(pixels[(y * w + x) as usize]));
            } else if v != label::BACKGROUND && v < label::LESION_BASE {
                let near = (-ring_px..=ring_px).step_by(2).any(|dy| {
                    (-ring_px..=ring_px).step_by(2).any(|dx| {
                        let (nx, ny) = (x + dx, y + dy);
                        nx >= 0 && ny >= 0 && nx < w && ny < h && at(nx, ny) == value
                    })
                });
                if near {
                    ring.push(f64::from(pixels[(y * w + x) as usize]));
                }
            }
        }
    }
    (mean_std(inside.into_iter()).0, mean_std(ring.into_iter()).0)
}

#[test]
fn ground_truth_mask_matches_the_echo_level_its_attributes_name() {
    let mut seen = std::collections::HashSet::new();
    for seed in 1..16u64 {
        for kind in [
            LesionKind::SimpleCyst,
            LesionKind::BenignSolid,
            LesionKind::MalignantSolid,
        ] {
            let config = PhantomConfig {
                seed,
                lesion_kind: Some(kind),
                ..PhantomConfig::default()
            };
            let (_, pixels, truth) = render(config, 0);
            for lesion in &truth.lesions {
                let (inside, ring) = lesion_and_ring(&pixels, &truth, lesion.label);
                let echo = attributes_of(lesion).echo_pattern;
                match echo {
                    EchoPattern::Anechoic => {
                        assert!(inside + 60.0 < ring, "anechoic {inside:.0} vs {ring:.0}")
                    }
                    EchoPattern::Hypoechoic => {
                        assert!(inside + 25.0 < ring, "hypoechoic {inside:.0} vs {ring:.0}")
                    }
                    EchoPattern::Hyperechoic => {
                        assert!(inside > ring + 5.0, "hyperechoic {inside:.0} vs {ring:.0}")
                    }
                    _ => continue,
                }
                seen.insert(format!("{echo:?}"));
            }
        }
    }
    assert!(
        seen.len() == 3,
        "anechoic, hypoechoic and hyperechoic lesions were all checked: {seen:?}"
    );
}

/// Mean gray in a column band of `width_mm` centred at `x`, from `z0` to `z1` mm below the lesion.
fn band_mean(pixels: &[u8], truth: &GroundTruth, x: f32, y0: f32, y1: f32, half: f32) -> f64 {
    let mut v = Vec::new();
    let (w, h) = (truth.labels.width as f32, truth.labels.height as f32);
    for y in y0.max(0.0) as u32..y1.min(h) as u32 {
        for xx in (x - half).max(0.0) as u32..(x + half).min(w) as u32 {
            if truth.labels.get(xx, y) != label::BACKGROUND
                && truth.labels.get(xx, y) < label::LESION_BASE
            {
                v.push(f64::from(pixels[(y * truth.labels.width + xx) as usize]));
            }
        }
    }
    mean_std(v.into_iter()).0
}

#[test]
fn cysts_enhance_and_shadowing_masses_darken_what_lies_behind_them() {
    let mut checked = 0;
    for seed in 1..16u64 {
        for kind in [LesionKind::SimpleCyst, LesionKind::MalignantSolid] {
            let config = PhantomConfig {
                seed,
                depth_cm: 5,
                lesion_kind: Some(kind),
                motion: false,
                ..PhantomConfig::default()
            };
            let (_, pixels, truth) = render(config, 0);
            let Some(lesion) = truth.lesions.first() else {
                continue;
            };
            let b = lesion.bbox;
            let half = (b.x1 - b.x0) / 4.0;
            let (cx, below0, below1) = ((b.x0 + b.x1) / 2.0, b.y1 + 4.0, (b.y1 + 40.0).min(470.0));
            let side = if cx > 320.0 {
                cx - (b.x1 - b.x0) * 1.5
            } else {
                cx + (b.x1 - b.x0) * 1.5
            };
            let behind = band_mean(&pixels, &truth, cx, below0, below1, half);
            let beside = band_mean(&pixels, &truth, side, below0, below1, half);
            if behind.is_nan() || beside.is_nan() {
                continue; // no tissue beside the lesion at that depth in this scene
            }
            match attributes_of(lesion).posterior {
                PosteriorFeatures::Enhancement => assert!(
                    behind > beside + 8.0,
                    "enhancement {behind:.0} vs {beside:.0}"
                ),
                PosteriorFeatures::Shadowing => assert!(
                    behind + 15.0 < beside,
                    "shadowing {behind:.0} vs {beside:.0}"
                ),
                _ => continue,
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 10,
        "enough lesions with posterior features were checked ({checked})"
    );
}

#[test]
fn a_seed_reproduces_the_sequence_exactly_and_another_does_not() {
    let config = PhantomConfig {
        seed: 21,
        lesions: 2,
        ..PhantomConfig::default()
    };
    let (mut a, mut b) = (
        Phantom::new(config.clone()).expect("valid"),
        Phantom::new(config.clone()).expect("valid"),
    );
    let (mut pa, mut pb) = (vec![0u8; 640 * 480], vec![0u8; 640 * 480]);
    for i in [0, 1, 17] {
        let (ta, tb) = (a.render(i, &mut pa), b.render(i, &mut pb));
        assert!(pa == pb, "frame {i} differs");
        assert_eq!(ta, tb);
    }
    let mut c = Phantom::new(PhantomConfig { seed: 22, ..config }).expect("valid");
    c.render(17, &mut pb);
    assert!(pa != pb);
}

fn correlation(a: &[u8], b: &[u8], mask: &[u8]) -> f64 {
    let pairs: Vec<(f64, f64)> = a
        .iter()
        .zip(b)
        .zip(mask)
        .filter(|(_, &m)| m == label::GLAND)
        .map(|((&x, &y), _)| (f64::from(x), f64::from(y)))
        .collect();
    let (ma, sa, _) = mean_std(pairs.iter().map(|p| p.0));
    let (mb, sb, _) = mean_std(pairs.iter().map(|p| p.1));
    pairs.iter().map(|(x, y)| (x - ma) * (y - mb)).sum::<f64>() / pairs.len() as f64 / (sa * sb)
}

#[test]
fn speckle_decorrelates_partially_from_frame_to_frame() {
    let mut phantom = Phantom::new(PhantomConfig {
        seed: 4,
        lesions: 0,
        ..PhantomConfig::default()
    })
    .expect("valid");
    let mut frames = vec![vec![0u8; 640 * 480]; 3];
    let truth = phantom.render(0, &mut frames[0]);
    phantom.render_image(1, &mut frames[1]);
    phantom.render_image(60, &mut frames[2]);
    let next = correlation(&frames[0], &frames[1], &truth.labels.data);
    let later = correlation(&frames[0], &frames[2], &truth.labels.data);
    assert!(
        next > 0.6 && next < 0.995,
        "consecutive frames are alike but not identical: {next:.3}"
    );
    assert!(
        later < next - 0.2,
        "two seconds later the speckle has moved on: {later:.3} vs {next:.3}"
    );
}

#[test]
fn export_writes_files_that_parse_and_match_the_frames() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = ExportOptions {
        frames: 5,
        seed: 9,
        out: dir.path().to_owned(),
        sequence_length: 3,
        ..ExportOptions::default()
    };
    let mut calls = 0;
    let summary = export(&options, &mut |done, total| {
        calls += 1;
        assert!(done <= total);
    })
    .expect("export");
    assert_eq!(calls, 5);
    assert_eq!(summary.sequences.len(), 2);
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("manifest.json")).expect("manifest"),
    )
    .expect("json");
    assert_eq!(manifest["frames"], 5);
    assert_eq!(manifest["sequences"][1]["config"]["probe"], "convex");
    let lines = std::fs::read_to_string(dir.path().join("truth.jsonl")).expect("truth");
    let records: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(records.len(), 5);
    for record in &records {
        let seq = record["sequence"].as_u64().expect("sequence");
        let k = record["frame_in_sequence"].as_u64().expect("frame");
        let (_, pixels, truth) = render(sequence_config(&options, seq), k);
        let (w, h, image) =
            read_png(&dir.path().join(record["image"].as_str().expect("image"))).expect("png");
        assert_eq!((w, h), (640, 480));
        assert!(
            image == pixels,
            "exported image {} matches a fresh render",
            record["image"]
        );
        let (_, _, labels) =
            read_png(&dir.path().join(record["labels"].as_str().expect("labels"))).expect("png");
        assert!(labels == truth.labels.data);
        let lesions: Vec<LesionTruth> =
            serde_json::from_value(record["lesions"].clone()).expect("lesions parse");
        assert_eq!(lesions, truth.lesions);
        assert_eq!(
            record["pixel_spacing"]["x_mm"].as_f64(),
            Some(truth.pixel_spacing.x_mm)
        );
    }
}
