//! `sonoflow replay DIR`: a recorded session ([`crate::recording`]) run
//! again through the model and perception, deterministically: the same
//! frames in the same order, with the same calibration, and the same
//! kernels at the same frames (each kernel version the head published is
//! published again before the first frame that used it; version 0 is the
//! model's own defaults). Each frame's findings are set against the
//! recorded ones; [`FrameChange`] says what changed and by how much.
//!
//! The frame path around the model (queues, overlay, sinks) is not
//! replayed: it does not make findings. The model is the recorded one
//! (bundle.json's directory) unless another is given, which is how a new
//! model is checked against a session.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use sonoflow_core::{Frame, FrameFormat, FrameId, FramePool, StageStamps, Timestamp};
use sonoflow_inference::Kernels;

use crate::definition::PipelineDefinition;
use crate::error::DefinitionError;
use crate::frame_analysis::{AnalysisError, FrameAnalysis};
use crate::recording::{
    findings_value, BundleInfo, FrameLine, KernelFile, BUNDLE_FILE, BUNDLE_FORMAT, DEFINITION_FILE,
    FRAMES_FILE,
};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{path}: {why}. Fix: give the folder `sonoflow run --record DIR` wrote")]
    Bundle { path: PathBuf, why: String },
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    #[error("the recorded pipeline runs no model ([process] kind = \"model\"): there is nothing to replay")]
    NoModel,
    #[error("the model could not be loaded: {0}")]
    Model(#[from] AnalysisError),
    #[error("frame {index} ({path}): {why}")]
    Frame {
        index: u64,
        path: PathBuf,
        why: String,
    },
    #[error("kernel version {version} ({path}) cannot be used with this model: {why}")]
    Kernel {
        version: u64,
        path: PathBuf,
        why: String,
    },
}

/// What to replay with.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Another model directory than the recorded one.
    pub model: Option<PathBuf>,
}

/// One frame whose findings differ from the recording.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FrameChange {
    pub index: u64,
    pub frame_id: u64,
    /// "findings[0].long_axis.caliper.length_mm: 6.532 -> 6.611 (+0.079)".
    pub changes: Vec<String>,
}

/// What a replay found.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReplayReport {
    pub bundle: PathBuf,
    pub frames: u64,
    pub identical: u64,
    pub changed: Vec<FrameChange>,
    pub recorded_model: String,
    pub recorded_model_sha256: String,
    pub model: String,
    pub model_dir: PathBuf,
    pub model_sha256: String,
    /// Kernel versions replayed from the recording (0, the defaults, not counted).
    pub kernels_replayed: Vec<u64>,
}

impl ReplayReport {
    pub fn is_identical(&self) -> bool {
        self.changed.is_empty()
    }
}

/// Replays the bundle in `dir`.
pub fn replay(dir: &Path, options: &ReplayOptions) -> Result<ReplayReport, ReplayError> {
    let _span = tracing::info_span!("replay", bundle = %dir.display()).entered();
    let bad = |path: PathBuf, why: String| ReplayError::Bundle { path, why };
    let info_path = dir.join(BUNDLE_FILE);
    let info: BundleInfo = read_json(&info_path).map_err(|why| bad(info_path.clone(), why))?;
    if info.format != BUNDLE_FORMAT {
        return Err(bad(
            info_path,
            format!(
                "bundle format {} (this sonoflow reads {BUNDLE_FORMAT})",
                info.format
            ),
        ));
    }
    let def_path = dir.join(DEFINITION_FILE);
    let text =
        std::fs::read_to_string(&def_path).map_err(|e| bad(def_path.clone(), e.to_string()))?;
    let def = PipelineDefinition::parse(&text, &def_path.display().to_string(), &info.pipeline)?;
    let mut spec = def.model.clone().ok_or(ReplayError::NoModel)?;
    spec.dir = options
        .model
        .clone()
        .unwrap_or_else(|| info.model_dir.clone());
    // Every frame waits for the model: nothing passes without it.
    spec.stall_after = None;
    let manifest = sonoflow_model::ModelDir::manifest_path(&spec.dir);
    let model_sha256 = sonoflow_model::sha256_hex(&manifest).map_err(|e| {
        bad(
            manifest.clone(),
            format!("cannot read the model's manifest: {e}"),
        )
    })?;
    let (mut analysis, stats) = FrameAnalysis::load(&spec, def.perception, 2, None)?;
    // Before anything is published the slot holds the model's own defaults.
    let defaults = Arc::clone(&*analysis.kernel_slot().load());
    let lines_path = dir.join(FRAMES_FILE);
    let lines =
        std::fs::read_to_string(&lines_path).map_err(|e| bad(lines_path.clone(), e.to_string()))?;
    let pool = FramePool::new(2);
    let mut report = ReplayReport {
        bundle: dir.to_path_buf(),
        frames: 0,
        identical: 0,
        changed: Vec::new(),
        recorded_model: info.model.clone(),
        recorded_model_sha256: info.model_sha256.clone(),
        model: stats.model.clone(),
        model_dir: spec.dir.clone(),
        model_sha256,
        kernels_replayed: Vec::new(),
    };
    // Recorded kernel version -> the version the slot gave it here.
    let mut applied = 0u64;
    for (n, text) in lines.lines().enumerate() {
        let line: FrameLine = serde_json::from_str(text)
            .map_err(|e| bad(lines_path.clone(), format!("line {}: {e}", n + 1)))?;
        if line.kernel_version != applied {
            publish_kernels(dir, line.kernel_version, &analysis, &defaults)?;
            applied = line.kernel_version;
            if applied != 0 && !report.kernels_replayed.contains(&applied) {
                report.kernels_replayed.push(applied);
            }
        }
        let mut frame = load_frame(dir, &line, &pool)?;
        analysis.analyse(&mut frame);
        let replayed = frame.findings.as_deref().map(findings_value);
        report.frames += 1;
        let changes = diff(line.findings.as_ref(), replayed.as_ref());
        if changes.is_empty() {
            report.identical += 1;
        } else {
            report.changed.push(FrameChange {
                index: line.index,
                frame_id: line.frame_id,
                changes,
            });
        }
    }
    Ok(report)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

/// Puts kernel version `version` of the recording into the model's slot
/// (version 0: the model's own default kernels).
fn publish_kernels(
    dir: &Path,
    version: u64,
    analysis: &FrameAnalysis,
    defaults: &Kernels,
) -> Result<(), ReplayError> {
    let path = dir.join(format!("kernels/{version}.json"));
    let slot = analysis.kernel_slot();
    let (tokens, data) = if version == 0 {
        (defaults.tokens.clone(), defaults.data.clone())
    } else {
        let file: KernelFile = read_json(&path).map_err(|why| ReplayError::Kernel {
            version,
            path: path.clone(),
            why: format!("the recording lacks it ({why})"),
        })?;
        (file.tokens, file.data)
    };
    slot.publish(tokens, data)
        .map(|_| ())
        .map_err(|e| ReplayError::Kernel {
            version,
            path,
            why: e.to_string(),
        })
}

/// A recorded frame as the model first saw it.
fn load_frame(dir: &Path, line: &FrameLine, pool: &FramePool) -> Result<Frame, ReplayError> {
    let path = dir.join(format!("frames/{:06}.png", line.index));
    let failed = |why: String| ReplayError::Frame {
        index: line.index,
        path: path.clone(),
        why,
    };
    let format = FrameFormat::new(line.format, line.width, line.height)
        .map_err(|e| failed(e.to_string()))?;
    let pixels = read_png(&path).map_err(failed)?;
    if pixels.len() != format.len() {
        return Err(failed(format!(
            "{} bytes of pixels, a {}x{} {:?} frame has {}",
            pixels.len(),
            line.width,
            line.height,
            line.format,
            format.len()
        )));
    }
    let mut data = pool.acquire(format.len());
    data.copy_from_slice(&pixels);
    let mut frame = Frame::new(
        FrameId(line.frame_id),
        format,
        data,
        StageStamps::new(Timestamp(line.captured_ns)),
    );
    frame.source_pts = line.source_pts_ns.map(Duration::from_nanos);
    frame.source_epoch = line.source_epoch;
    frame.calibration = line.calibration.clone().map(Arc::new);
    Ok(frame)
}

/// The 8-bit pixels of a PNG the recorder wrote.
fn read_png(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .map_err(|e| e.to_string())?;
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).map_err(|e| e.to_string())?;
    pixels.truncate(info.buffer_size());
    Ok(pixels)
}

/// What differs between recorded and replayed findings, leaf by leaf
/// ("path: old -> new (delta)"); contours are summed up per finding.
pub fn diff(recorded: Option<&Value>, replayed: Option<&Value>) -> Vec<String> {
    let mut out = Vec::new();
    match (recorded, replayed) {
        (Some(a), Some(b)) => walk("", a, b, &mut out),
        (None, None) => {}
        (Some(_), None) => out.push("the model failed on the frame this time (no findings)".into()),
        (None, Some(_)) => out.push("findings this time where the model had failed".into()),
    }
    out
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    if a == b {
        return;
    }
    let at = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (key, va) in x {
                match y.get(key) {
                    Some(vb) => walk(&at(key), va, vb, out),
                    None => out.push(format!("{}: {va} -> (absent)", at(key))),
                }
            }
            for (key, vb) in y.iter().filter(|(k, _)| !x.contains_key(*k)) {
                out.push(format!("{}: (absent) -> {vb}", at(key)));
            }
        }
        (Value::Array(x), Value::Array(y)) if path.ends_with("points") => {
            let moved = x.iter().zip(y).filter(|(p, q)| p != q).count();
            out.push(format!(
                "{path}: {} -> {} contour points, {moved} moved",
                x.len(),
                y.len()
            ));
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                out.push(format!("{path}: {} -> {} entries", x.len(), y.len()));
            }
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                walk(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(p), Some(q)) => out.push(format!("{path}: {p} -> {q} ({:+})", q - p)),
            _ => out.push(format!("{path}: {x} -> {y}")),
        },
        _ => out.push(format!("{path}: {a} -> {b}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_diff_names_each_changed_leaf_and_by_how_much() {
        let a = json!({"verdict": "valid", "findings": [{"area_px": 100, "long_axis": {"uncertainty_mm": 0.1}}], "points": [[1, 2], [3, 4]]});
        let b = json!({"verdict": "valid", "findings": [{"area_px": 104, "long_axis": {"uncertainty_mm": 0.1}}, {"area_px": 7}], "points": [[1, 2], [3, 5]]});
        let changes = diff(Some(&a), Some(&b));
        assert_eq!(
            changes,
            vec![
                "findings: 1 -> 2 entries",
                "findings[0].area_px: 100 -> 104 (+4)",
                "points: 2 -> 2 contour points, 1 moved",
            ]
        );
        assert!(diff(Some(&a), Some(&a)).is_empty());
        assert_eq!(diff(Some(&a), None).len(), 1);
    }
}
