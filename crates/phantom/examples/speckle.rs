//! Prints the speckle calibration (envelope mean/std in a uniform phantom;
//! Rayleigh gives 1.913): `cargo run --release -p sonoflow-phantom --example speckle`.
use sonoflow_phantom::{speckle_ratio, ProbeKind};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for probe in [ProbeKind::Linear, ProbeKind::Convex] {
        let ratios: Vec<f64> = (1..=5)
            .map(|seed| speckle_ratio(probe, seed))
            .collect::<Result<_, _>>()?;
        let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
        println!(
            "{}: envelope mean/std {mean:.3} over 5 seeds (Rayleigh 1.913)",
            probe.name()
        );
    }
    Ok(())
}
