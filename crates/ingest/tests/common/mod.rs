//! What the ingest crate's integration tests share: a source built from a
//! `[source]` definition, and played until it ends. Each test target uses
//! what it needs of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use sonoflow_core::{Frame, FramePool, MonotonicClock};
use sonoflow_ingest::{Flow, Ingest, IngestEnd, IngestError, SourceConfig, SourceReport};

/// The source a `[source]` definition (TOML) describes.
pub fn ingest(definition: &str) -> Result<Ingest, IngestError> {
    let config: SourceConfig = toml::from_str(definition).expect("test TOML parses");
    let spec = config.validate("source").expect("valid source");
    Ingest::new(spec, Arc::new(MonotonicClock::new()), FramePool::new(8))
}

/// Plays `definition` until it ends or `limit` frames came, keeping what
/// `keep` takes of each frame; `guard` is a hang guard, not a speed limit:
/// a test that reaches it has failed.
pub fn play<T>(
    definition: &str,
    limit: usize,
    guard: Duration,
    mut keep: impl FnMut(&Frame) -> T,
) -> (Vec<T>, IngestEnd, SourceReport) {
    let mut ingest = ingest(definition).expect("source builds");
    let status = ingest.status();
    let started = Instant::now();
    let mut got = Vec::new();
    let end = ingest
        .run(&|| started.elapsed() > guard, &mut |frame| {
            got.push(keep(&frame));
            if got.len() >= limit {
                Flow::Stop
            } else {
                Flow::Continue
            }
        })
        .expect("plays");
    assert!(started.elapsed() < guard, "the source never ended");
    (got, end, status.report())
}
