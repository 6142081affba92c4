//! Renders one 480x360 phantom frame to a PNG: `cargo run --release -p sonoflow-phantom --example render -- OUT.png [linear|convex] [depth_cm] [seed] [kind]`.
use sonoflow_phantom::{export::write_png, LesionKind, Phantom, PhantomConfig, ProbeKind};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let out = args.get(1).map(String::as_str).unwrap_or("frame.png");
    let probe = if args.get(2).map(String::as_str) == Some("convex") {
        ProbeKind::Convex
    } else {
        ProbeKind::Linear
    };
    let depth_cm = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(4);
    let seed = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(1);
    let lesion_kind = match args.get(5).map(String::as_str) {
        Some("cyst") => Some(LesionKind::SimpleCyst),
        Some("complex") => Some(LesionKind::ComplexCyst),
        Some("benign") => Some(LesionKind::BenignSolid),
        Some("malignant") => Some(LesionKind::MalignantSolid),
        _ => None,
    };
    let (width, height) = (480, 360);
    let config = PhantomConfig {
        probe,
        depth_cm,
        seed,
        lesion_kind,
        width,
        height,
        ..PhantomConfig::default()
    };
    let mut phantom = Phantom::new(config)?;
    let mut pixels = vec![0u8; (width * height) as usize];
    let truth = phantom.render(0, &mut pixels);
    write_png(std::path::Path::new(out), width, height, &pixels)?;
    for l in &truth.lesions {
        println!(
            "{} {:?} long {:.2} mm short {:.2} mm",
            l.class, l.attributes, l.long_axis.length_mm, l.short_axis.length_mm
        );
    }
    Ok(())
}
