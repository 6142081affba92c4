//! Tests of the phantom as a whole: speckle statistics, geometry, ground
//! truth against what is drawn, determinism, and the dataset export.

use sonoflow_core::findings::{label, GroundTruth, ImageRegion, LesionTruth};

use crate::export::{export, read_png, sequence_config, ExportOptions};
use crate::lexicon::{EchoPattern, LesionAttributes, Margin, PosteriorFeatures};
use crate::screen::INK;
use crate::{
    speckle_ratio, Anatomy, Imaging, LesionKind, Look, Phantom, PhantomConfig, ProbeKind,
    Variation, DEPTH_PRESETS_CM,
};

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

/// Mean and standard deviation (NaN of nothing, which callers skip).
fn mean_std(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let values: Vec<f64> = values.collect();
    crate::conspicuity::mean_and_sd(&values).unwrap_or((f64::NAN, f64::NAN))
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

/// Mean grey level of a lesion's core (pixels farther than `margin_mm` from
/// its boundary) and of its margin band (pixels within `margin_mm` of it).
fn lesion_core_and_margin(
    pixels: &[u8],
    truth: &GroundTruth,
    value: u8,
    margin_mm: f64,
) -> (f64, f64) {
    let (w, h) = (truth.labels.width as i64, truth.labels.height as i64);
    let reach = (margin_mm / truth.pixel_spacing.x_mm).round().max(1.0) as i64;
    let at = |x: i64, y: i64| truth.labels.data[(y * w + x) as usize];
    let (mut core, mut margin) = (Vec::new(), Vec::new());
    for y in 0..h {
        for x in 0..w {
            if at(x, y) != value {
                continue;
            }
            let near_edge = (-reach..=reach).any(|dy| {
                (-reach..=reach).any(|dx| {
                    let (nx, ny) = (x + dx, y + dy);
                    dx * dx + dy * dy <= reach * reach
                        && (nx < 0 || ny < 0 || nx >= w || ny >= h || at(nx, ny) != value)
                })
            });
            let grey = f64::from(pixels[(y * w + x) as usize]);
            if near_edge {
                margin.push(grey);
            } else {
                core.push(grey);
            }
        }
    }
    (mean_std(core.into_iter()).0, mean_std(margin.into_iter()).0)
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
    let (ma, sa) = mean_std(pairs.iter().map(|p| p.0));
    let (mb, sb) = mean_std(pairs.iter().map(|p| p.1));
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

/// Every file of an export folder, by name, with its bytes.
fn folder_files(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    for sub in ["", "images", "labels"] {
        for entry in std::fs::read_dir(dir.join(sub)).expect("export folder") {
            let path = entry.expect("entry").path();
            if path.is_file() {
                let name = path
                    .strip_prefix(dir)
                    .expect("inside")
                    .display()
                    .to_string();
                files.insert(name, std::fs::read(&path).expect("file"));
            }
        }
    }
    files
}

#[test]
fn an_export_on_several_threads_writes_the_same_files_as_on_one() {
    let one = tempfile::tempdir().expect("tempdir");
    let many = tempfile::tempdir().expect("tempdir");
    let options = |out: &std::path::Path, threads| ExportOptions {
        frames: 7,
        seed: 31,
        out: out.to_owned(),
        sequence_length: 2,
        width: 320,
        height: 240,
        fixed_size: true,
        variation: Some(Variation::default()),
        threads,
        ..ExportOptions::default()
    };
    let mut seen = Vec::new();
    export(&options(one.path(), 1), &mut |_, _| {}).expect("one thread");
    let summary = export(&options(many.path(), 3), &mut |done, total| {
        seen.push((done, total));
    })
    .expect("three threads");
    assert_eq!(summary.sequences.len(), 4, "7 frames in sequences of 2");
    assert_eq!(
        seen,
        (1..=7).map(|d| (d, 7)).collect::<Vec<_>>(),
        "progress once per frame, in order"
    );
    let (a, b) = (folder_files(one.path()), folder_files(many.path()));
    assert_eq!(
        a.len(),
        2 + 2 * 7,
        "truth, manifest, 7 images and 7 label maps"
    );
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "the same files"
    );
    for (name, bytes) in &a {
        assert!(
            bytes == &b[name],
            "{name} differs between one thread and three"
        );
    }
}

#[test]
fn a_frame_that_cannot_be_written_stops_a_threaded_export_naming_its_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Frame 3's image path is taken by a folder: its PNG cannot be created.
    let blocked = dir.path().join("images/000003.png");
    std::fs::create_dir_all(&blocked).expect("folder");
    let options = ExportOptions {
        frames: 8,
        seed: 5,
        out: dir.path().to_owned(),
        sequence_length: 1,
        width: 320,
        height: 240,
        fixed_size: true,
        threads: 3,
        ..ExportOptions::default()
    };
    let err = export(&options, &mut |_, _| {}).expect_err("frame 3 cannot be written");
    assert!(
        err.to_string().contains("images/000003.png"),
        "names the file: {err}"
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
        let (_, pixels, mut truth) = render(sequence_config(&options, seq), k);
        // The export measures each lesion's conspicuity in the frame it wrote.
        crate::conspicuity::measure_lesions(&pixels, &mut truth);
        assert!(truth.lesions.iter().all(|l| l.conspicuity.is_some()));
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

/// A randomised scene with one lesion of `kind` whose contrast comes from `band`.
fn varied(seed: u64, kind: LesionKind, band: [f32; 2]) -> PhantomConfig {
    PhantomConfig {
        seed,
        lesion_kind: Some(kind),
        motion: false,
        anatomy: Anatomy {
            contrast_bands_db: vec![band],
            ..Anatomy::default()
        },
        ..PhantomConfig::default()
    }
}

#[test]
fn drawn_contrast_sets_the_echo_pattern_and_the_echo_level_follows_it() {
    // (band, the pattern it must name, inside minus ring: at least, at most)
    let cases: [([f32; 2], EchoPattern, f64, f64); 3] = [
        ([6.0, 12.0], EchoPattern::Hyperechoic, 8.0, 200.0),
        ([-20.0, -8.0], EchoPattern::Hypoechoic, -200.0, -12.0),
        ([-1.0, 1.0], EchoPattern::Isoechoic, -16.0, 16.0),
    ];
    for (band, pattern, lo, hi) in cases {
        for seed in 1..5u64 {
            let (phantom, pixels, truth) = render(varied(seed, LesionKind::BenignSolid, band), 0);
            let spec = phantom.scene().lesions[0].spec();
            let contrast = spec.contrast_db.expect("drawn");
            assert!(
                (band[0]..=band[1]).contains(&contrast),
                "{contrast} outside {band:?}"
            );
            let lesion = &truth.lesions[0];
            assert_eq!(attributes_of(lesion).echo_pattern, pattern, "{band:?}");
            // The echo level is the core's: a rim (capsule or halo) is not.
            let (_, ring) = lesion_and_ring(&pixels, &truth, lesion.label);
            let (core, margin) = lesion_core_and_margin(&pixels, &truth, lesion.label, 1.6);
            let d = core - ring;
            assert!(
                (lo..=hi).contains(&d),
                "{pattern:?} seed {seed}: core {core:.0} ring {ring:.0}"
            );
            // An isoechoic lesion shows only by its rim, so the rim must show.
            if pattern == EchoPattern::Isoechoic {
                assert!(spec.rim, "isoechoic lesions always have a rim");
                // No outline would show an irregular margin.
                assert_eq!(attributes_of(lesion).margin, Margin::Circumscribed);
                assert!(
                    (margin - ring).abs() >= 12.0,
                    "seed {seed}: an isoechoic lesion's margin ({margin:.0}) must stand out from the tissue around it ({ring:.0})"
                );
            }
        }
    }
}

#[test]
fn a_standoff_moves_the_skin_line_out_of_the_image_and_keeps_truth_aligned() {
    let plain = PhantomConfig {
        lesions: 0,
        motion: false,
        ..PhantomConfig::default()
    };
    let (_, _, truth) = render(plain.clone(), 0);
    assert!(
        truth.labels.data.contains(&label::SKIN),
        "no standoff: skin in view"
    );
    let standoff = PhantomConfig {
        imaging: Imaging {
            depth_offset_mm: 8.0,
            ..Imaging::default()
        },
        ..plain
    };
    let (_, _, truth) = render(standoff, 0);
    assert!(
        !truth.labels.data.contains(&label::SKIN),
        "8 mm standoff: no skin"
    );
    // Lesions placed under a standoff stay in the image and their truth box
    // holds their label.
    for seed in 1..6 {
        let config = PhantomConfig {
            seed,
            lesions: 2,
            imaging: Imaging {
                depth_offset_mm: 12.0,
                ..Imaging::default()
            },
            anatomy: Anatomy {
                anywhere: true,
                lesion_size_mm: Some([3.0, 30.0]),
                ..Anatomy::default()
            },
            ..PhantomConfig::default()
        };
        let (phantom, _, truth) = render(config, 0);
        assert_eq!(
            truth.lesions.len(),
            phantom.scene().lesions.len(),
            "seed {seed}"
        );
        for lesion in &truth.lesions {
            let b = lesion.bbox;
            let cx = ((b.x0 + b.x1) / 2.0) as u32;
            let cy = ((b.y0 + b.y1) / 2.0) as u32;
            assert!(
                truth.region.contains(cx, cy),
                "seed {seed}: lesion centre outside the image"
            );
        }
    }
}

#[test]
fn sparse_scatterers_give_spikier_speckle_than_fully_developed() {
    let ratio = |density: f32| {
        let config = PhantomConfig {
            scene: crate::SceneKind::Uniform,
            motion: false,
            imaging: Imaging {
                scatterer_density: density,
                ..Imaging::default()
            },
            ..PhantomConfig::default()
        };
        let (phantom, _, _) = render(config, 0);
        let env = phantom.envelope();
        let (mean, std) = mean_std(env.iter().map(|&v| f64::from(v)));
        mean / std
    };
    let (full, sparse) = (ratio(1.0), ratio(0.03));
    assert!((full - 1.913).abs() < 0.1, "fully developed {full:.2}");
    assert!(sparse < full - 0.3, "sparse {sparse:.2} vs full {full:.2}");
}

#[test]
fn a_rib_shadows_tissue_with_no_lesion_in_the_truth() {
    let mut darkened = 0;
    for seed in 1..8 {
        let config = PhantomConfig {
            seed,
            lesions: 0,
            motion: false,
            anatomy: Anatomy {
                shadows: 2,
                ..Anatomy::default()
            },
            ..PhantomConfig::default()
        };
        let (_, shadowed, truth) = render(config.clone(), 0);
        assert!(truth.lesions.is_empty());
        assert!(truth.labels.data.iter().all(|&v| v < label::LESION_BASE));
        let (_, clear, _) = render(
            PhantomConfig {
                anatomy: Anatomy::default(),
                ..config
            },
            0,
        );
        // Count image pixels at least 40 gray levels darker with the shadows.
        let darker = shadowed
            .iter()
            .zip(&clear)
            .filter(|(s, c)| i32::from(**s) + 40 < i32::from(**c))
            .count();
        if darker > 2000 {
            darkened += 1;
        }
    }
    assert!(
        darkened >= 3,
        "only {darkened} of 7 scenes had a visible shadow"
    );
}

#[test]
fn every_look_renders_and_a_randomised_export_records_and_reproduces_its_draws() {
    for look in Look::ALL {
        let config = PhantomConfig {
            imaging: Imaging {
                look,
                gamma: 1.3,
                smoothing: 0.4,
                clutter_db: -30.0,
                tgc_db: [2.0, -1.0, 0.0, 3.0],
                ..Imaging::default()
            },
            ..PhantomConfig::default()
        };
        let (_, pixels, truth) = render(config, 3);
        let (mean, std) = mean_std(
            pixels
                .iter()
                .zip(&truth.labels.data)
                .filter(|(_, &l)| l != label::BACKGROUND)
                .map(|(&p, _)| f64::from(p)),
        );
        assert!(
            mean > 30.0 && mean < 220.0 && std > 5.0,
            "{look:?}: mean {mean:.0} std {std:.0}"
        );
    }
    let dir = std::env::temp_dir().join(format!("sonoflow-varied-{}", std::process::id()));
    let options = ExportOptions {
        frames: 12,
        seed: 42,
        sequence_length: 2,
        out: dir.clone(),
        variation: Some(Variation::default()),
        ..ExportOptions::default()
    };
    let summary = export(&options, &mut |_, _| {}).expect("export");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary.manifest).expect("manifest"))
            .expect("json");
    let sequences = manifest["sequences"].as_array().expect("sequences");
    assert_eq!(sequences.len(), 6);
    for s in sequences {
        assert!(s["config"]["imaging"]["look"].is_string());
        assert!(s["lesions"].is_array());
        let (w, h) = (
            s["config"]["width"].as_u64(),
            s["config"]["height"].as_u64(),
        );
        let first = s["first_frame"].as_u64().expect("first");
        let (pw, ph, _) = read_png(&dir.join(format!("images/{first:06}.png"))).expect("png");
        assert_eq!((Some(u64::from(pw)), Some(u64::from(ph))), (w, h));
    }
    // The same options give the same sequences, knob for knob.
    for seq in 0..6 {
        assert_eq!(
            sequence_config(&options, seq),
            sequence_config(&options, seq)
        );
    }
    let looks: std::collections::HashSet<String> = (0..60)
        .map(|i| sequence_config(&options, i).imaging.look.name().to_owned())
        .collect();
    assert_eq!(looks.len(), 3, "every look drawn: {looks:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
