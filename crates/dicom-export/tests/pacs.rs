//! C-STORE to a real PACS: Debian's Orthanc, started by the test on free
//! loopback ports with its own storage folder (scripts/bootstrap.sh installs
//! `orthanc`; without it this test fails saying so). Objects are spooled
//! while the PACS is down (nothing is sent, nothing lost), sent in order once
//! it is up, never twice, and Orthanc's REST API then holds the one study
//! with its images and SR. Deadlines here are hang guards.

mod common;

use std::time::{Duration, UNIX_EPOCH};

use common::orthanc::{free_port, get, Orthanc};
use common::{calibration, findings, session, H, W};
use sonoflow_core::{FrameId, PixelFormat};
use sonoflow_dicom_export::pacs::{pending, store_pending, PacsError, PacsTarget, Spool};
use sonoflow_dicom_export::{Exporter, Keyframe, Picture, ReportText, SessionUids, Subject};

/// One keyframe's objects (the image as shown, the clean one, the SR) into the spool.
fn spool_keyframe(exporter: &mut Exporter, spool: &mut Spool, frame: u64) -> usize {
    let f = findings();
    let cal = calibration();
    let rgba: Vec<u8> = (0..W * H * 4).map(|i| (i % 251) as u8).collect();
    let gray: Vec<u8> = (0..W * H).map(|i| (i % 253) as u8).collect();
    let picture = |format, data, burned_in| Picture {
        width: W,
        height: H,
        format,
        data,
        burned_in,
    };
    let keyframe = Keyframe {
        frame: FrameId(frame),
        captured: UNIX_EPOCH + Duration::from_secs(1_796_000_100 + frame),
        shown: picture(PixelFormat::Rgba, &rgba, true),
        clean: Some(picture(PixelFormat::Gray8, &gray, false)),
        calibration: Some(&cal),
        findings: &f,
        finding_label: "mass",
        report: Some(ReportText {
            text: "an oval mass measuring 12.4 x 8.1 mm.",
            attributes: &[],
            long_axis_mm: Some(12.4),
            short_axis_mm: Some(8.1),
        }),
    };
    let objects = exporter.keyframe(&keyframe).expect("objects");
    objects
        .all()
        .map(|o| spool.put(o).expect("spooled"))
        .count()
}

#[test]
fn spooled_objects_reach_orthanc_once_it_is_up_in_order_and_never_twice() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (http, dicom) = (free_port(), free_port());
    let target = PacsTarget {
        address: format!("127.0.0.1:{dicom}"),
        called_ae: "ORTHANC".into(),
        calling_ae: "SONOFLOW".into(),
        timeout: Duration::from_secs(10),
    };
    let spool_dir = dir.path().join("spool");
    let mut spool = Spool::open(&spool_dir).expect("spool");
    let mut exporter = Exporter::new(
        session(Subject::default()),
        SessionUids::new(None, b"pacs test").expect("uids"),
    )
    .expect("exporter");

    // The PACS is down: the objects wait in the spool, all of them.
    let mut spooled = spool_keyframe(&mut exporter, &mut spool, 1);
    match store_pending(&spool_dir, &target) {
        Err(PacsError::Unreachable { .. }) => {}
        other => panic!("expected the PACS to be unreachable, got {other:?}"),
    }
    spooled += spool_keyframe(&mut exporter, &mut spool, 2);
    let waiting = pending(&spool_dir).expect("spool listing");
    assert_eq!(
        waiting.len(),
        spooled,
        "nothing lost while the PACS was down"
    );

    // It comes up: everything goes, oldest first, and the spool empties.
    let _orthanc = Orthanc::start(dir.path(), http, dicom);
    let pass = store_pending(&spool_dir, &target).expect("stored");
    let names: Vec<String> = waiting
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
        .collect();
    assert_eq!(pass.stored, names, "in spool order");
    assert!(pass.refused.is_empty(), "{:?}", pass.refused);
    assert!(pending(&spool_dir).expect("listing").is_empty());
    // Nothing left to send: a second pass sends nothing again.
    assert_eq!(
        store_pending(&spool_dir, &target)
            .expect("pass")
            .stored
            .len(),
        0
    );

    // Orthanc holds one study: its images and SRs, each once.
    let instances = get(http, "/instances").expect("instances");
    assert_eq!(
        instances.as_array().map(Vec::len),
        Some(spooled),
        "{instances}"
    );
    let studies = get(http, "/studies").expect("studies");
    assert_eq!(
        studies.as_array().map(Vec::len),
        Some(1),
        "one study per session"
    );
    let series = get(http, "/series?expand").expect("series");
    let mut modalities: Vec<String> = series
        .as_array()
        .expect("series list")
        .iter()
        .filter_map(|s| s["MainDicomTags"]["Modality"].as_str().map(str::to_owned))
        .collect();
    modalities.sort();
    assert_eq!(
        modalities,
        vec!["SR", "US"],
        "an image series and an SR series"
    );

    // A PACS that refuses the association (wrong called AE title) is an error, and the spool stays.
    spool_keyframe(&mut exporter, &mut spool, 3);
    let wrong = PacsTarget {
        called_ae: "NOT-ORTHANC".into(),
        ..target.clone()
    };
    let err = store_pending(&spool_dir, &wrong).expect_err("refused association");
    assert!(err.to_string().contains("NOT-ORTHANC"), "{err}");
    assert_eq!(
        pending(&spool_dir).expect("listing").len(),
        3,
        "kept for later"
    );
}

/// dcmtk's `storescp` accepting Ultrasound Image Storage only (an
/// association profile), as a PACS that refuses a SOP class.
struct UsOnlyScp(std::process::Child);

impl Drop for UsOnlyScp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_sop_class_the_pacs_refuses_goes_to_refused_with_its_reason_and_the_rest_is_sent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let profile = dir.path().join("us-only.cfg");
    std::fs::write(
        &profile,
        "[[TransferSyntaxes]]\n[Uncompressed]\nTransferSyntax1 = LittleEndianExplicit\n\
         TransferSyntax2 = LittleEndianImplicit\n\n[[PresentationContexts]]\n[USOnly]\n\
         PresentationContext1 = UltrasoundImageStorage\\Uncompressed\n\n[[Profiles]]\n[Default]\n\
         PresentationContexts = USOnly\n",
    )
    .expect("profile");
    let received = dir.path().join("received");
    std::fs::create_dir_all(&received).expect("folder");
    let port = free_port();
    let _scp = UsOnlyScp(
        std::process::Command::new("storescp")
            .arg("-xf")
            .arg(&profile)
            .arg("Default")
            .arg("-od")
            .arg(&received)
            .arg(port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("storescp (Debian package dcmtk, installed by scripts/bootstrap.sh) could not start: {e}")
            }),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "storescp did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let spool_dir = dir.path().join("spool");
    let mut spool = Spool::open(&spool_dir).expect("spool");
    let mut exporter = Exporter::new(
        session(Subject::default()),
        SessionUids::new(None, b"refusing pacs").expect("uids"),
    )
    .expect("exporter");
    assert_eq!(spool_keyframe(&mut exporter, &mut spool, 1), 3);
    let target = PacsTarget {
        address: format!("127.0.0.1:{port}"),
        called_ae: "ANY-SCP".into(),
        calling_ae: "SONOFLOW".into(),
        timeout: Duration::from_secs(10),
    };
    let pass = store_pending(&spool_dir, &target).expect("a pass");
    assert_eq!(pass.stored.len(), 2, "both images: {pass:?}");
    assert_eq!(pass.refused.len(), 1, "the SR: {pass:?}");
    assert!(
        pass.refused[0].1.contains("1.2.840.10008.5.1.4.1.1.88.33"),
        "{pass:?}"
    );
    assert!(
        pending(&spool_dir).expect("listing").is_empty(),
        "nothing blocks the queue"
    );
    let refused = spool_dir.join("refused").join(&pass.refused[0].0);
    assert!(refused.exists(), "kept in refused/");
    let why = std::fs::read_to_string(refused.with_extension("why.txt")).expect("its reason");
    assert!(why.contains("no presentation context"), "{why}");
    let got = std::fs::read_dir(&received).expect("received").count();
    assert_eq!(got, 2, "the PACS has the two images");
}
