//! The phantom simulator alone, one thread, 640x480: image only, and image
//! plus ground truth (label map, boxes, calipers), for each probe. Run:
//! `cargo bench -p sonoflow-benches --bench phantom`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sonoflow_phantom::{Phantom, PhantomConfig, ProbeKind};

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("cpu_1thread");
    group.throughput(Throughput::Elements(1));
    for (name, probe, depth_cm) in [
        ("linear_4cm", ProbeKind::Linear, 4),
        ("convex_8cm", ProbeKind::Convex, 8),
    ] {
        let config = PhantomConfig {
            probe,
            depth_cm,
            lesions: 2,
            ..PhantomConfig::default()
        };
        let mut phantom = Phantom::new(config).expect("valid phantom config");
        let mut pixels = vec![0u8; phantom.format().len()];
        let mut index = 0u64;
        group.bench_function(format!("phantom_image_{name}_640x480"), |b| {
            b.iter(|| {
                index += 1;
                phantom.render_image(index, &mut pixels);
            })
        });
        group.bench_function(format!("phantom_image_and_truth_{name}_640x480"), |b| {
            b.iter(|| {
                index += 1;
                criterion::black_box(phantom.render(index, &mut pixels));
            })
        });
    }
    group.finish();
}

criterion_group!(phantom_benches, benches);
criterion_main!(phantom_benches);
