//! Automatic calibration against the phantom's exact ground truth. The
//! phantom draws a cart's screen (banner, settings panel, depth ruler with
//! ticks every 5 mm and numbers every cm) around its image; the calibrator
//! gets the pixels only, never the truth.
//!
//! The per-preset error table (docs/calibration.md) comes from:
//! `cargo test -p sonoflow-calibrate --release --test phantom -- --nocapture --test-threads 1`

use std::sync::Arc;

use sonoflow_calibrate::{
    read_ruler, region_distance, AutoCalibrator, AutoOptions, LockState, Observation, ScreenChange,
    Unlocked,
};
use sonoflow_core::findings::{GroundTruth, ImageRegion};
use sonoflow_core::{Calibration, FrameFormat, PixelFormat};
use sonoflow_phantom::{Phantom, PhantomConfig, ProbeKind, DEPTH_PRESETS_CM};

/// The goal: spacing within 1 %, region within 2 px, re-lock within 1 s.
const SPACING_TOLERANCE: f64 = 0.01;
const REGION_TOLERANCE_PX: f64 = 2.0;
const RELOCK_FRAMES: u64 = 30;

fn phantom(probe: ProbeKind, depth_cm: u32, seed: u64) -> Phantom {
    Phantom::new(PhantomConfig {
        probe,
        depth_cm,
        seed,
        ..PhantomConfig::default()
    })
    .expect("phantom config")
}

/// Relative spacing error and region error (px) of `cal` against `truth`.
fn errors(cal: &Calibration, truth: &GroundTruth) -> (f64, f64) {
    let spacing = cal.spacing().expect("a detected calibration has a spacing");
    let rel = spacing.y_mm / truth.pixel_spacing.y_mm - 1.0;
    assert_eq!(spacing.x_mm, spacing.y_mm, "square pixels");
    let region = cal.region().expect("region");
    let px = region_distance(&region, &truth.region).unwrap_or(f64::INFINITY);
    (rel, px)
}

#[test]
fn every_depth_preset_of_both_probes_is_found_within_1_percent_and_2_px() {
    eprintln!("\nauto-calibration error per depth preset (640x480 phantom screen, 45 frames)");
    eprintln!(
        "| probe  | depth | true mm/px | found mm/px | spacing error | region error | locked at frame | confidence | stated uncertainty |"
    );
    eprintln!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut worst: (f64, f64) = (0.0, 0.0);
    for probe in [ProbeKind::Linear, ProbeKind::Convex] {
        for depth in DEPTH_PRESETS_CM {
            let mut phantom = phantom(probe, depth, 7 + u64::from(depth));
            let format = phantom.format();
            let mut px = vec![0u8; format.len()];
            let mut auto = AutoCalibrator::new(AutoOptions::default());
            let mut locked_at = None;
            let mut last: Option<(Observation, GroundTruth)> = None;
            for i in 0..45 {
                let truth = phantom.render(i, &mut px);
                let seen = auto.observe(&px, format).expect("frame");
                if seen.calibration.is_some() && locked_at.is_none() {
                    locked_at = Some(i);
                }
                if locked_at.is_some() {
                    assert_eq!(
                        seen.state,
                        LockState::Locked,
                        "{probe:?} {depth} cm: lost at {i}"
                    );
                }
                last = Some((seen, truth));
            }
            let (seen, truth) = last.expect("frames");
            let cal = seen
                .calibration
                .unwrap_or_else(|| panic!("{probe:?} {depth} cm: no lock: {:?}", seen.reason));
            let (rel, region_px) = errors(&cal, &truth);
            eprintln!(
                "| {:<6} | {depth} cm | {:.5} | {:.5} | {:+.3} % | {:.2} px | {} | {:.2} | {:.2} % |",
                probe.name(),
                truth.pixel_spacing.y_mm,
                cal.spacing().map_or(0.0, |s| s.y_mm),
                100.0 * rel,
                region_px,
                locked_at.unwrap_or(0),
                seen.confidence,
                100.0 * cal.uncertainty,
            );
            assert!(
                rel.abs() <= SPACING_TOLERANCE,
                "{probe:?} {depth} cm: spacing off by {:.3} %",
                100.0 * rel
            );
            assert!(
                region_px <= REGION_TOLERANCE_PX,
                "{probe:?} {depth} cm: region off by {region_px:.2} px: {:?} vs {:?}",
                cal.region(),
                truth.region
            );
            assert!(locked_at.is_some_and(|f| f < RELOCK_FRAMES));
            assert_eq!(cal.source, sonoflow_core::CalibrationSource::Detected);
            // The stated uncertainty covers the error it makes (within 3 σ).
            assert!(
                rel.abs() <= 3.0 * cal.uncertainty + 1e-3,
                "{rel} vs {}",
                cal.uncertainty
            );
            worst = (worst.0.max(rel.abs()), worst.1.max(region_px));
        }
    }
    eprintln!(
        "worst: spacing {:.3} %, region {:.2} px",
        100.0 * worst.0,
        worst.1
    );
}

/// One segment of a stream: a screen shown from frame `from` on.
struct Segment {
    probe: ProbeKind,
    depth_cm: u32,
    from: u64,
}

#[test]
fn a_depth_change_drops_the_old_spacing_at_once_and_relocks_within_a_second() {
    let segments = [
        Segment {
            probe: ProbeKind::Linear,
            depth_cm: 4,
            from: 0,
        },
        Segment {
            probe: ProbeKind::Linear,
            depth_cm: 6,
            from: 45,
        },
        Segment {
            probe: ProbeKind::Linear,
            depth_cm: 3,
            from: 90,
        },
        Segment {
            probe: ProbeKind::Convex,
            depth_cm: 5,
            from: 135,
        },
        Segment {
            probe: ProbeKind::Convex,
            depth_cm: 8,
            from: 180,
        },
    ];
    let end = 225;
    let mut phantoms: Vec<Phantom> = segments
        .iter()
        .map(|s| phantom(s.probe, s.depth_cm, 3))
        .collect();
    let format = phantoms[0].format();
    let mut px = vec![0u8; format.len()];
    let mut auto = AutoCalibrator::new(AutoOptions::default());
    let mut held: Option<Arc<Calibration>> = None;
    eprintln!("\nswitch                   | dropped after | re-locked after | spacing error | region error");
    for (k, seg) in segments.iter().enumerate() {
        let to = segments.get(k + 1).map_or(end, |s| s.from);
        let mut dropped_at = None;
        let mut locked_at = None;
        for i in seg.from..to {
            // Frame numbers run on across switches: the probe keeps moving.
            let truth = phantoms[k].render(i, &mut px);
            let seen = auto.observe(&px, format).expect("frame");
            let old = held.clone();
            if k > 0 && dropped_at.is_none() {
                assert!(
                    seen.changed,
                    "frame {i}: the switch at {} went unseen",
                    seg.from
                );
                assert!(seen.calibration.is_none());
                assert!(matches!(
                    seen.reason,
                    Some(Unlocked::ScreenChanged(
                        ScreenChange::Ruler | ScreenChange::AroundRegion
                    ))
                ));
                assert_eq!(seen.state, LockState::Lost);
                dropped_at = Some(i);
            }
            // Never the old spacing after the switch.
            if let (Some(now), Some(old)) = (&seen.calibration, &old) {
                if k > 0 && locked_at.is_none() {
                    assert!(
                        !Arc::ptr_eq(now, old),
                        "frame {i}: the old calibration came back"
                    );
                }
            }
            if let Some(cal) = &seen.calibration {
                if locked_at.is_none() {
                    locked_at = Some(i);
                }
                let (rel, region_px) = errors(cal, &truth);
                assert!(
                    rel.abs() <= SPACING_TOLERANCE,
                    "frame {i}: {:.3} %",
                    100.0 * rel
                );
                assert!(
                    region_px <= REGION_TOLERANCE_PX,
                    "frame {i}: {region_px:.2} px"
                );
                held = Some(cal.clone());
            } else {
                held = None;
            }
        }
        let locked_at = locked_at
            .unwrap_or_else(|| panic!("{} {} cm never locked", seg.probe.name(), seg.depth_cm));
        assert!(
            locked_at - seg.from < RELOCK_FRAMES,
            "locked {} frames after the switch",
            locked_at - seg.from
        );
        let cal = held.as_ref().expect("locked at the end");
        let truth = phantoms[k].render(to - 1, &mut px);
        let (rel, region_px) = errors(cal, &truth);
        eprintln!(
            "{:<24} | {:>13} | {:>15} | {:+12.3} % | {:.2} px",
            format!("→ {} {} cm at {}", seg.probe.name(), seg.depth_cm, seg.from),
            dropped_at.map_or("-".into(), |d| format!("{} frames", d - seg.from)),
            format!("{} frames", locked_at - seg.from),
            100.0 * rel,
            region_px
        );
        if let Some(d) = dropped_at {
            assert_eq!(
                d,
                seg.from,
                "the switch was seen {} frames late",
                d - seg.from
            );
        }
    }
}

#[test]
fn a_screen_without_a_ruler_stays_uncalibrated_and_says_why() {
    let mut phantom = phantom(ProbeKind::Linear, 4, 5);
    let format = phantom.format();
    let ImageRegion::Rect { x1, .. } = phantom.layout().region else {
        panic!("linear is a rectangle");
    };
    let mut px = vec![0u8; format.len()];
    let mut auto = AutoCalibrator::new(AutoOptions::default());
    let mut seen = None;
    for i in 0..60 {
        phantom.render_image(i, &mut px);
        // Blank everything right of the image: the ruler is gone.
        for row in px.chunks_exact_mut(format.width as usize) {
            row[x1 as usize + 2..].fill(0);
        }
        let s = auto.observe(&px, format).expect("frame");
        assert!(
            s.calibration.is_none(),
            "frame {i} calibrated without a ruler"
        );
        assert_eq!(s.state, LockState::Searching);
        seen = Some(s);
    }
    let seen = seen.expect("frames");
    assert_eq!(seen.reason, Some(Unlocked::NoRuler));
    assert_eq!(seen.confidence, 0.0);
    assert!(seen.reason.expect("reason").to_string().contains("ruler"));
}

#[test]
fn a_still_screen_is_never_calibrated_and_a_frozen_image_keeps_its_lock() {
    let mut phantom = phantom(ProbeKind::Convex, 6, 9);
    let format = phantom.format();
    let mut px = vec![0u8; format.len()];
    phantom.render_image(0, &mut px);
    let mut auto = AutoCalibrator::new(AutoOptions::default());
    for _ in 0..20 {
        let seen = auto.observe(&px, format).expect("frame");
        assert!(seen.calibration.is_none());
    }
    assert_eq!(
        auto.observe(&px, format).expect("frame").reason,
        Some(Unlocked::NoMotion)
    );
    // A probe held still: only the receiver noise deep down flickers. No
    // lock on a part of the image (this seed once locked on the bottom half).
    let mut still = Phantom::new(PhantomConfig {
        probe: ProbeKind::Linear,
        depth_cm: 8,
        seed: 101,
        lesions: 1,
        motion: false,
        ..PhantomConfig::default()
    })
    .expect("phantom");
    let mut auto = AutoCalibrator::new(AutoOptions::default());
    for i in 0..90 {
        let truth = still.render(i, &mut px);
        let seen = auto.observe(&px, format).expect("frame");
        if let Some(cal) = &seen.calibration {
            let (rel, region_px) = errors(cal, &truth);
            assert!(rel.abs() <= SPACING_TOLERANCE && region_px <= REGION_TOLERANCE_PX);
        }
    }
    // Lock on a moving image, then freeze it: the lock and its Arc stay.
    let mut auto = AutoCalibrator::new(AutoOptions::default());
    let mut locked = None;
    let mut changes = 0;
    for i in 0..30 {
        phantom.render_image(i, &mut px);
        let seen = auto.observe(&px, format).expect("frame");
        changes += usize::from(seen.changed);
        locked = seen.calibration.or(locked);
    }
    let locked = locked.expect("locked");
    assert_eq!(changes, 1, "one change: the lock");
    for _ in 0..60 {
        let seen = auto.observe(&px, format).expect("frame");
        assert!(!seen.changed);
        assert!(Arc::ptr_eq(
            seen.calibration.as_ref().expect("kept"),
            &locked
        ));
    }
}

#[test]
fn a_narrower_image_under_the_same_ruler_is_noticed_and_refitted() {
    let mut phantom = phantom(ProbeKind::Linear, 5, 11);
    let format = phantom.format();
    let ImageRegion::Rect { x0, y0, x1, y1 } = phantom.layout().region else {
        panic!("linear is a rectangle");
    };
    let mut px = vec![0u8; format.len()];
    let mut auto = AutoCalibrator::new(AutoOptions::default());
    let narrow = 40;
    let mut narrowed_at = None;
    let mut relocked = None;
    for i in 0..120 {
        phantom.render_image(i, &mut px);
        if i >= 40 {
            // The outer 40 columns either side go dark and still.
            for row in px
                .chunks_exact_mut(format.width as usize)
                .take(y1 as usize)
                .skip(y0 as usize)
            {
                row[x0 as usize..(x0 + narrow) as usize].fill(0);
                row[(x1 - narrow) as usize..x1 as usize].fill(0);
            }
        }
        let seen = auto.observe(&px, format).expect("frame");
        if i == 39 {
            assert_eq!(seen.state, LockState::Locked);
        }
        if i >= 40 && narrowed_at.is_none() && seen.state != LockState::Locked {
            assert_eq!(
                seen.reason,
                Some(Unlocked::ScreenChanged(ScreenChange::RegionShrank))
            );
            narrowed_at = Some(i);
        }
        if narrowed_at.is_some() && relocked.is_none() {
            relocked = seen.calibration.clone();
        }
    }
    let noticed = narrowed_at.expect("the narrower image was noticed") - 40;
    eprintln!("narrower image noticed after {noticed} frames");
    assert!(noticed <= 20, "noticed after {noticed} frames");
    let cal = relocked.expect("re-locked");
    assert_eq!(
        cal.region(),
        Some(ImageRegion::Rect {
            x0: x0 + narrow,
            y0,
            x1: x1 - narrow,
            y1
        })
    );
}

#[test]
fn rgba_with_padded_rows_reads_as_gray() {
    let mut phantom = phantom(ProbeKind::Convex, 4, 2);
    let gray = phantom.format();
    let (w, h) = (gray.width as usize, gray.height as usize);
    let rgba = FrameFormat::new(PixelFormat::Rgba, gray.width, gray.height).expect("format");
    let stride = w * 4 + 64;
    let mut px = vec![0u8; gray.len()];
    let mut wide = vec![0u8; stride * h];
    let (mut a, mut b) = (
        AutoCalibrator::new(AutoOptions::default()),
        AutoCalibrator::new(AutoOptions::default()),
    );
    let (mut ga, mut gb) = (None, None);
    for i in 0..30 {
        phantom.render_image(i, &mut px);
        for (y, row) in px.chunks_exact(w).enumerate() {
            for (x, &v) in row.iter().enumerate() {
                wide[y * stride + 4 * x..y * stride + 4 * x + 4].copy_from_slice(&[v, v, v, 255]);
            }
            // Padding holds garbage.
            wide[y * stride + 4 * w..(y + 1) * stride].fill(0xA5);
        }
        ga = a.observe(&px, gray).expect("gray").calibration;
        gb = b
            .observe_strided(&wide, rgba, stride)
            .expect("rgba")
            .calibration;
    }
    let (ga, gb) = (ga.expect("gray locks"), gb.expect("rgba locks"));
    assert_eq!(ga.region(), gb.region());
    assert_eq!(ga.spacing(), gb.spacing());
}

#[test]
fn ten_seconds_of_a_moving_probe_keep_one_lock() {
    for (probe, depth, seed) in [
        (ProbeKind::Linear, 3, 21),
        (ProbeKind::Linear, 8, 22),
        (ProbeKind::Convex, 3, 23),
        (ProbeKind::Convex, 8, 24),
    ] {
        let mut phantom = phantom(probe, depth, seed);
        let format = phantom.format();
        let mut px = vec![0u8; format.len()];
        let mut auto = AutoCalibrator::new(AutoOptions::default());
        let mut changes = 0;
        for i in 0..300 {
            phantom.render_image(i, &mut px);
            let seen = auto.observe(&px, format).expect("frame");
            changes += usize::from(seen.changed);
            assert!(
                i < RELOCK_FRAMES || seen.state == LockState::Locked,
                "{probe:?} {depth} cm, frame {i}: {:?}",
                seen.reason
            );
        }
        assert_eq!(
            changes, 1,
            "{probe:?} {depth} cm: the lock, and nothing else"
        );
    }
}

#[test]
fn the_ruler_beside_a_known_region_is_read_from_a_single_frame() {
    for probe in [ProbeKind::Linear, ProbeKind::Convex] {
        for depth in DEPTH_PRESETS_CM {
            let mut phantom = phantom(probe, depth, 4);
            let format = phantom.format();
            let mut px = vec![0u8; format.len()];
            let truth = phantom.render(0, &mut px);
            let reading = read_ruler(
                &px,
                format,
                format.stride(),
                &truth.region,
                &AutoOptions::default(),
            )
            .expect("frame")
            .unwrap_or_else(|| panic!("{probe:?} {depth} cm: no ruler"));
            let rel = reading.spacing_mm / truth.pixel_spacing.y_mm - 1.0;
            assert!(
                rel.abs() <= SPACING_TOLERANCE,
                "{probe:?} {depth} cm: {rel}"
            );
            assert_eq!(reading.per_major, 2, "ticks every 5 mm, long ones every cm");
        }
    }
}

#[test]
fn a_switch_while_searching_never_locks_onto_a_mix_of_two_screens() {
    let pairs = [
        ((ProbeKind::Linear, 8), (ProbeKind::Linear, 3)),
        ((ProbeKind::Linear, 3), (ProbeKind::Linear, 8)),
        ((ProbeKind::Convex, 3), (ProbeKind::Linear, 8)),
        ((ProbeKind::Linear, 4), (ProbeKind::Convex, 6)),
        ((ProbeKind::Convex, 8), (ProbeKind::Convex, 4)),
    ];
    for ((pa, da), (pb, db)) in pairs {
        for switch in [5u64, 7, 8] {
            let mut a = phantom(pa, da, 1);
            let mut b = phantom(pb, db, 2);
            let format = a.format();
            let mut px = vec![0u8; format.len()];
            let mut auto = AutoCalibrator::new(AutoOptions::default());
            let mut locked_at = None;
            for i in 0..60 {
                let truth = if i < switch {
                    a.render(i, &mut px)
                } else {
                    b.render(i, &mut px)
                };
                let seen = auto.observe(&px, format).expect("frame");
                if let Some(cal) = &seen.calibration {
                    let (rel, region_px) = errors(cal, &truth);
                    let case = format!("{pa:?} {da} → {pb:?} {db} at {switch}, frame {i}");
                    assert!(rel.abs() <= SPACING_TOLERANCE, "{case}: {rel}");
                    assert!(region_px <= REGION_TOLERANCE_PX, "{case}: {region_px} px");
                    locked_at.get_or_insert(i);
                }
            }
            assert!(locked_at.is_some_and(|f| f < switch + RELOCK_FRAMES));
        }
    }
}

#[test]
fn a_reset_drops_the_calibration_and_says_so() {
    let mut phantom = phantom(ProbeKind::Linear, 5, 6);
    let format = phantom.format();
    let mut px = vec![0u8; format.len()];
    let mut auto = AutoCalibrator::new(AutoOptions::default());
    for i in 0..20 {
        phantom.render_image(i, &mut px);
        auto.observe(&px, format).expect("frame");
    }
    phantom.render_image(20, &mut px);
    assert_eq!(
        auto.observe(&px, format).expect("frame").state,
        LockState::Locked
    );
    auto.reset();
    phantom.render_image(21, &mut px);
    let seen = auto.observe(&px, format).expect("frame");
    assert!(seen.changed && seen.calibration.is_none());
    assert_eq!(seen.state, LockState::Searching);
    phantom.render_image(22, &mut px);
    assert!(!auto.observe(&px, format).expect("frame").changed);
}

/// Phantom frames with the phantom's own ruler erased and another drawn:
/// `ruler(px, layout)` draws it on each frame.
fn with_other_ruler(
    depth_cm: u32,
    draw: impl Fn(&mut [u8], usize, &sonoflow_phantom::Layout),
) -> (Observation, GroundTruth) {
    let mut phantom = phantom(ProbeKind::Linear, depth_cm, 12);
    let format = phantom.format();
    let w = format.width as usize;
    let ImageRegion::Rect { x1, .. } = phantom.layout().region else {
        panic!("linear is a rectangle");
    };
    let mut px = vec![0u8; format.len()];
    let mut auto = AutoCalibrator::new(AutoOptions::default());
    let mut last = None;
    for i in 0..30 {
        let truth = phantom.render(i, &mut px);
        for row in px.chunks_exact_mut(w) {
            row[x1 as usize + 2..].fill(0);
        }
        draw(&mut px, w, phantom.layout());
        last = Some((auto.observe(&px, format).expect("frame"), truth));
    }
    last.expect("frames")
}

#[test]
fn other_rulers_dots_every_centimetre_or_millimetre_ticks_on_the_left() {
    // Dots (3x3) every centimetre, right of the image: one tick kind, so
    // each is taken as a centimetre, with less confidence.
    let (dots, truth) = with_other_ruler(6, |px, w, layout| {
        let x = layout.image_right as usize + 8;
        for cm in 0..=6 {
            let y = layout.depth_row(f64::from(cm) * 10.0) as usize;
            for yy in y.saturating_sub(1)
                ..=(y + 1).min(layout.image_top as usize + layout.image_height as usize - 1)
            {
                px[yy * w + x..yy * w + x + 3].fill(220);
            }
        }
    });
    let cal = dots.calibration.expect("dots lock");
    let (rel, _) = errors(&cal, &truth);
    assert!(rel.abs() <= SPACING_TOLERANCE, "dots: {rel}");
    assert!(
        dots.confidence < 0.75,
        "one tick kind is less sure: {}",
        dots.confidence
    );
    // Ticks every 2 mm, long ones every centimetre, left of the image.
    let (fifths, truth) = with_other_ruler(5, |px, w, layout| {
        let ImageRegion::Rect { x0, .. } = layout.region else {
            return;
        };
        let x = x0 as usize - 4;
        for mm in (0..=50).step_by(2) {
            let y = layout
                .depth_row(f64::from(mm))
                .min(i64::from(layout.image_top + layout.image_height) - 1)
                as usize;
            let len = if mm % 10 == 0 { 9 } else { 4 };
            px[y * w + x - len..=y * w + x].fill(200);
        }
    });
    let cal = fifths.calibration.expect("left ruler locks");
    let (rel, region_px) = errors(&cal, &truth);
    assert!(rel.abs() <= SPACING_TOLERANCE, "fifths: {rel}");
    assert!(region_px <= REGION_TOLERANCE_PX);
    assert!(fifths.confidence > 0.8, "{}", fifths.confidence);
}
