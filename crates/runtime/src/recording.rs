//! `sonoflow run --record DIR`: a session bundle that `sonoflow replay`
//! runs again, frame for frame.
//!
//! What is recorded is what the model analysed: each frame the AI lane ran
//! the model and perception on, in order (a frame that passed without the
//! model, the lane busy or shedding load, produced no findings of its own
//! and is not part of the session's results). The AI lane hands each such
//! frame to the recorder's thread and waits for room (the bundle is
//! lossless; the video never waits for the AI lane beyond `stall_after`).
//!
//! ```text
//! DIR/bundle.json        format, model (name, directory, manifest SHA-256),
//!                        sonoflow version, frames, kernels, when
//! DIR/pipeline.toml      the definition the run was given
//! DIR/frames.jsonl       one line per frame: index, frame id, source pts and
//!                        epoch, capture time, size and format, calibration,
//!                        the kernel version the model used, the findings,
//!                        the phantom's truth (lesions) when there is one
//! DIR/frames/NNNNNN.png  the frame, lossless (GRAY8 or RGBA)
//! DIR/labels/NNNNNN.png  the phantom's label map, when there is one
//! DIR/kernels/V.json     each kernel version the model used (tokens, values)
//! ```

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam::channel::{bounded, Receiver, Sender};
use serde::{Deserialize, Serialize};
use sonoflow_core::findings::{GroundTruth, LesionTruth};
use sonoflow_core::{Calibration, Frame, FrameFindings, FrameFormat, PixelFormat};
use sonoflow_inference::Kernels;
use tracing::{info, warn};

/// The bundle's layout version.
pub const BUNDLE_FORMAT: u32 = 1;
pub const BUNDLE_FILE: &str = "bundle.json";
pub const FRAMES_FILE: &str = "frames.jsonl";
pub const DEFINITION_FILE: &str = "pipeline.toml";

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("--record {path}: {why}. Fix: give an empty or new folder that can be written")]
    Folder { path: PathBuf, why: String },
    #[error("the recording in {path} could not be written: {cause}")]
    Write { path: PathBuf, cause: String },
    #[error("the recorder's thread could not start: {0}")]
    Thread(String),
}

/// What `bundle.json` says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BundleInfo {
    pub format: u32,
    pub pipeline: String,
    /// "umind-nano 0.1.0".
    pub model: String,
    pub model_dir: PathBuf,
    /// SHA-256 of the model's manifest (which holds every file's hash).
    pub model_sha256: String,
    pub sonoflow_version: String,
    pub frames: u64,
    pub kernel_versions: Vec<u64>,
    /// Frames that could not be written (the run's disk failed).
    pub failed: u64,
    pub error: Option<String>,
    /// Seconds since the epoch.
    pub created: u64,
}

/// One line of `frames.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FrameLine {
    pub index: u64,
    pub frame_id: u64,
    pub source_pts_ns: Option<u64>,
    pub source_epoch: u32,
    /// Capture time on the run's clock.
    pub captured_ns: u64,
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
    pub calibration: Option<Calibration>,
    pub kernel_version: u64,
    /// The findings as `FrameFindings` serialises them (None: the model failed).
    pub findings: Option<serde_json::Value>,
    /// The phantom's lesions in this frame, when the source is the phantom.
    pub truth: Option<Vec<LesionTruth>>,
}

/// A kernel version's values (`kernels/V.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KernelFile {
    pub version: u64,
    pub tokens: Vec<String>,
    pub size: usize,
    pub data: Vec<f32>,
}

/// What the AI lane hands over: an analysed frame's pixels, what came with
/// it, its findings, and the kernels the model used on it (None when they
/// changed while it ran).
struct Recorded {
    frame_id: u64,
    source_pts_ns: Option<u64>,
    source_epoch: u32,
    captured_ns: u64,
    format: FrameFormat,
    pixels: Vec<u8>,
    calibration: Option<Arc<Calibration>>,
    truth: Option<Arc<GroundTruth>>,
    kernel_version: u64,
    findings: Option<FrameFindings>,
    kernels: Option<Arc<Kernels>>,
}

/// The AI lane's end: hands analysed frames to the recorder.
#[derive(Clone)]
pub struct RecordTap {
    frames: Sender<Recorded>,
}

impl RecordTap {
    /// Hands a copy of `frame` (analysed with `kernels`, loaded just before
    /// the model ran) to the recorder; waits while it is behind. A frame the
    /// model did not run on is not recorded. False once the recorder is gone.
    pub fn record(&self, frame: &Frame, kernels: Arc<Kernels>) -> bool {
        let Some(outputs) = &frame.outputs else {
            return true;
        };
        let recorded = Recorded {
            frame_id: frame.id.0,
            source_pts_ns: frame.source_pts.map(|d| d.as_nanos() as u64),
            source_epoch: frame.source_epoch,
            captured_ns: frame.stamps.captured.nanos(),
            format: frame.format,
            pixels: frame.data.to_vec(),
            calibration: frame.calibration.clone(),
            truth: frame.truth.clone(),
            kernel_version: outputs.kernel_version,
            findings: frame.findings.as_deref().cloned(),
            kernels: (kernels.version == outputs.kernel_version).then_some(kernels),
        };
        self.frames.send(recorded).is_ok()
    }
}

/// The recorder's thread.
pub struct Recorder {
    thread: Option<JoinHandle<BundleInfo>>,
    dir: PathBuf,
}

impl Recorder {
    /// Creates the bundle's folders and writes `definition` (the run's
    /// definition text); `info` is completed and written as the run ends.
    pub fn start(
        dir: &Path,
        definition: &str,
        info: BundleInfo,
    ) -> Result<(Self, RecordTap), RecordError> {
        let folder = |why: String| RecordError::Folder {
            path: dir.to_path_buf(),
            why,
        };
        if dir.join(BUNDLE_FILE).exists() || dir.join(FRAMES_FILE).exists() {
            return Err(folder("it already holds a recording".into()));
        }
        for sub in ["frames", "labels", "kernels"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(|e| folder(format!("cannot create {sub}/: {e}")))?;
        }
        std::fs::write(dir.join(DEFINITION_FILE), definition)
            .map_err(|e| folder(format!("cannot write {DEFINITION_FILE}: {e}")))?;
        let lines = File::create(dir.join(FRAMES_FILE))
            .map_err(|e| folder(format!("cannot write {FRAMES_FILE}: {e}")))?;
        // A few frames of slack; then the AI lane waits for the disk.
        let (tx, rx) = bounded(4);
        let writer = Writer {
            dir: dir.to_path_buf(),
            lines: BufWriter::new(lines),
            kernels: BTreeSet::new(),
            info,
        };
        let thread = std::thread::Builder::new()
            .name("sonoflow-record".into())
            .spawn(move || writer.run(&rx))
            .map_err(|e| RecordError::Thread(e.to_string()))?;
        Ok((
            Self {
                thread: Some(thread),
                dir: dir.to_path_buf(),
            },
            RecordTap { frames: tx },
        ))
    }

    /// Waits for the last frame (every tap must be gone: the run ended) and
    /// writes bundle.json; what it says.
    pub fn finish(mut self) -> Result<BundleInfo, RecordError> {
        let info = self
            .thread
            .take()
            .map(JoinHandle::join)
            .and_then(Result::ok)
            .ok_or_else(|| RecordError::Write {
                path: self.dir.clone(),
                cause: "the recorder's thread panicked".into(),
            })?;
        let path = self.dir.join(BUNDLE_FILE);
        let text = serde_json::to_string_pretty(&info).map_err(|e| RecordError::Write {
            path: path.clone(),
            cause: e.to_string(),
        })?;
        std::fs::write(&path, text).map_err(|e| RecordError::Write {
            path,
            cause: e.to_string(),
        })?;
        info!(frames = info.frames, dir = %self.dir.display(), "recording written");
        Ok(info)
    }
}

struct Writer {
    dir: PathBuf,
    lines: BufWriter<File>,
    /// Kernel versions already written.
    kernels: BTreeSet<u64>,
    info: BundleInfo,
}

impl Writer {
    fn run(mut self, frames: &Receiver<Recorded>) -> BundleInfo {
        for recorded in frames.iter() {
            let _span = tracing::trace_span!("record", frame = recorded.frame_id).entered();
            if let Err(e) = self.write(&recorded) {
                self.info.failed += 1;
                if self.info.error.is_none() {
                    warn!("recording: {e}; the frames that fail are counted in bundle.json");
                }
                self.info.error = Some(e.to_string());
            }
        }
        if let Err(e) = self.lines.flush() {
            self.info.error = Some(format!("{FRAMES_FILE}: {e}"));
        }
        self.info.kernel_versions = self.kernels.iter().copied().collect();
        self.info.created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.info
    }

    fn write(&mut self, r: &Recorded) -> Result<(), RecordError> {
        let index = self.info.frames;
        let failed = |path: &Path, cause: String| RecordError::Write {
            path: path.to_path_buf(),
            cause,
        };
        let image = self.dir.join(format!("frames/{index:06}.png"));
        write_png(
            &image,
            r.format.width,
            r.format.height,
            r.format.pixel,
            &r.pixels,
        )
        .map_err(|cause| failed(&image, cause))?;
        if let Some(truth) = &r.truth {
            let labels = self.dir.join(format!("labels/{index:06}.png"));
            let map = &truth.labels;
            write_png(
                &labels,
                map.width,
                map.height,
                PixelFormat::Gray8,
                &map.data,
            )
            .map_err(|cause| failed(&labels, cause))?;
        }
        if let Some(k) = &r.kernels {
            if self.kernels.insert(k.version) {
                let path = self.dir.join(format!("kernels/{}.json", k.version));
                let file = KernelFile {
                    version: k.version,
                    tokens: k.tokens.clone(),
                    size: k.size,
                    data: k.data.clone(),
                };
                let text =
                    serde_json::to_string(&file).map_err(|e| failed(&path, e.to_string()))?;
                std::fs::write(&path, text).map_err(|e| failed(&path, e.to_string()))?;
            }
        }
        let line = FrameLine {
            index,
            frame_id: r.frame_id,
            source_pts_ns: r.source_pts_ns,
            source_epoch: r.source_epoch,
            captured_ns: r.captured_ns,
            width: r.format.width,
            height: r.format.height,
            format: r.format.pixel,
            calibration: r.calibration.as_deref().cloned(),
            kernel_version: r.kernel_version,
            findings: r.findings.as_ref().map(findings_value),
            truth: r.truth.as_ref().map(|t| t.lesions.clone()),
        };
        let path = self.dir.join(FRAMES_FILE);
        serde_json::to_writer(&mut self.lines, &line).map_err(|e| failed(&path, e.to_string()))?;
        self.lines
            .write_all(b"\n")
            .map_err(|e| failed(&path, e.to_string()))?;
        self.info.frames += 1;
        Ok(())
    }
}

/// A frame's findings as recorded and compared: everything but the frame
/// id and capture time (which a replay gives anew).
pub fn findings_value(findings: &FrameFindings) -> serde_json::Value {
    let mut value = serde_json::to_value(findings).unwrap_or(serde_json::Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.remove("frame");
        map.remove("captured");
    }
    value
}

/// Writes tightly packed `data` as an 8-bit grey or RGBA PNG.
fn write_png(
    path: &Path,
    width: u32,
    height: u32,
    pixel: PixelFormat,
    data: &[u8],
) -> Result<(), String> {
    let file = File::create(path).map_err(|e| e.to_string())?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), width, height);
    encoder.set_color(match pixel {
        PixelFormat::Gray8 => png::ColorType::Grayscale,
        PixelFormat::Rgba => png::ColorType::Rgba,
    });
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    let len = (width * height) as usize * pixel.bytes_per_pixel();
    let pixels = data
        .get(..len)
        .ok_or_else(|| format!("{} bytes for a {width}x{height} frame", data.len()))?;
    writer.write_image_data(pixels).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())
}
