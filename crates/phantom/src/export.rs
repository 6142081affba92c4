//! The phantom as a dataset: `sonoflow phantom export` writes frames as PNG,
//! label maps as PNG (one byte per pixel, see `findings::label`), one JSON
//! line of ground truth per frame, and a manifest. Frames come in sequences
//! (a cine of one scene); each sequence has its own seed, probe, depth and
//! lesions, all derived from the export's seed, so a seed reproduces the
//! dataset exactly and different seeds never share a scene.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;

use serde::Serialize;
use sonoflow_core::findings::{label, ImageRegion, LesionTruth, PixelSpacing};

use crate::appearance::{Anatomy, Imaging, Variation};
use crate::config::{LesionKind, PhantomConfig, ProbeKind, SceneKind, DEPTH_PRESETS_CM};
use crate::conspicuity::measure_lesions;
use crate::rng::Rng;
use crate::scene::LesionSpec;
use crate::{Phantom, PhantomError};

/// Format version of the manifest and the JSON lines.
pub const EXPORT_FORMAT: u32 = 1;

#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub frames: u64,
    pub seed: u64,
    pub out: PathBuf,
    /// Frames per sequence (scene).
    pub sequence_length: u64,
    /// Only this probe; unset alternates linear and convex.
    pub probe: Option<ProbeKind>,
    /// Only this depth; unset draws from every preset.
    pub depth_cm: Option<u32>,
    /// Lesions per scene; unset draws 1 or 2.
    pub lesions: Option<u32>,
    pub lesion_kind: Option<LesionKind>,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Draw each sequence's look, scene variety, frame size, gain, dynamic
    /// range and lesion count from these bands (`--randomise`); `lesions`,
    /// `width` and `height` above, when given on the command line, still win.
    pub variation: Option<Variation>,
    /// Keep `width` x `height` for every sequence even with a variation.
    pub fixed_size: bool,
    /// Sequences rendered at once (0: one per core). The files are the same
    /// whatever the count: each sequence draws only from its own seed.
    pub threads: usize,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            frames: 100,
            seed: 1,
            out: PathBuf::from("out/phantom"),
            sequence_length: 30,
            probe: None,
            depth_cm: None,
            lesions: None,
            lesion_kind: None,
            width: 640,
            height: 480,
            fps: 30,
            variation: None,
            fixed_size: false,
            threads: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{path}: {cause}")]
    Io { path: String, cause: String },
    #[error(transparent)]
    Phantom(#[from] PhantomError),
    #[error("--frames and --sequence-length must be at least 1")]
    Empty,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |e| ExportError::Io {
        path: path.display().to_string(),
        cause: e.to_string(),
    }
}

/// One line of `truth.jsonl`.
#[derive(Debug, Serialize)]
pub struct FrameRecord<'a> {
    pub index: u64,
    pub image: String,
    pub labels: String,
    pub sequence: u64,
    pub frame_in_sequence: u64,
    pub probe: ProbeKind,
    pub depth_cm: u32,
    pub pixel_spacing: PixelSpacing,
    pub region: ImageRegion,
    pub lesions: &'a [LesionTruth],
}

#[derive(Debug, Clone, Serialize)]
pub struct SequenceRecord {
    pub index: u64,
    pub first_frame: u64,
    pub frames: u64,
    pub config: PhantomConfig,
    /// Each lesion as drawn (kind, echo pattern, contrast, size, centre).
    pub lesions: Vec<LesionSpec>,
}

#[derive(Debug, Serialize)]
struct Manifest<'a> {
    format: u32,
    generator: String,
    seed: u64,
    frames: u64,
    width: u32,
    height: u32,
    images: &'static str,
    labels: &'static str,
    truth: &'static str,
    label_values: serde_json::Value,
    sequences: &'a [SequenceRecord],
}

/// The scene settings of sequence `index` of an export.
pub fn sequence_config(options: &ExportOptions, index: u64) -> PhantomConfig {
    let mut rng = Rng::fork(options.seed, 1000 + index);
    let probe = options.probe.unwrap_or(if index.is_multiple_of(2) {
        ProbeKind::Linear
    } else {
        ProbeKind::Convex
    });
    let depths: &[u32] = match probe {
        ProbeKind::Linear => &DEPTH_PRESETS_CM[..4],
        ProbeKind::Convex => &DEPTH_PRESETS_CM[2..],
    };
    let mut config = PhantomConfig {
        probe,
        scene: SceneKind::Breast,
        depth_cm: options.depth_cm.unwrap_or_else(|| rng.pick(depths)),
        seed: rng.next_u64(),
        lesions: options.lesions.unwrap_or_else(|| 1 + rng.below(2) as u32),
        lesion_kind: options.lesion_kind,
        width: options.width,
        height: options.height,
        fps: options.fps,
        gain_db: rng.range(-3.0, 3.0).round() as f32,
        dynamic_range_db: rng.pick(&[50.0, 55.0, 60.0]),
        motion: true,
        imaging: Imaging::default(),
        anatomy: Anatomy::default(),
        variation: None,
    };
    if let Some(variation) = &options.variation {
        let drawn = variation.draw_from(&mut rng);
        config.imaging = drawn.imaging;
        config.anatomy = drawn.anatomy;
        config.gain_db = drawn.gain_db;
        config.dynamic_range_db = drawn.dynamic_range_db;
        config.lesions = options.lesions.unwrap_or(drawn.lesions);
        if !options.fixed_size {
            (config.width, config.height) = (drawn.width, drawn.height);
        }
    }
    config
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    pub frames: u64,
    pub sequences: Vec<SequenceRecord>,
    pub manifest: PathBuf,
}

/// A rendered sequence: its record and its frames' lines of `truth.jsonl`
/// (its PNGs are written).
struct SequenceOutput {
    record: SequenceRecord,
    lines: Vec<String>,
}

/// What a worker tells the writer.
enum Done {
    Frame,
    Sequence(u64, Box<Result<SequenceOutput, ExportError>>),
}

/// Writes the dataset; `progress(done, total)` is called after each frame.
/// Sequences are rendered on `options.threads` threads at once; the files
/// are the same as one thread writes (truth.jsonl and the manifest list them
/// in order).
pub fn export(
    options: &ExportOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ExportSummary, ExportError> {
    if options.frames == 0 || options.sequence_length == 0 {
        return Err(ExportError::Empty);
    }
    let images = options.out.join("images");
    let labels = options.out.join("labels");
    for dir in [&images, &labels] {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    }
    let truth_path = options.out.join("truth.jsonl");
    let mut truth = BufWriter::new(File::create(&truth_path).map_err(io_error(&truth_path))?);
    let count = options.frames.div_ceil(options.sequence_length);
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(usize::try_from(count).unwrap_or(usize::MAX));
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel();
    let mut sequences = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut failure = None;
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, stop, images, labels) = (&next, &stop, &images, &labels);
            scope.spawn(move || {
                let mut pixels = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    if seq >= count {
                        break;
                    }
                    let tick = || {
                        let _ = tx.send(Done::Frame);
                    };
                    let out = render_sequence(options, seq, images, labels, &mut pixels, tick);
                    if tx.send(Done::Sequence(seq, Box::new(out))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Lines go out in sequence order, whichever thread finishes first.
        let mut waiting = BTreeMap::new();
        let mut done = 0;
        for message in rx {
            match message {
                Done::Frame => {
                    done += 1;
                    progress(done, options.frames);
                }
                Done::Sequence(seq, out) => match *out {
                    Ok(out) => {
                        waiting.insert(seq, out);
                    }
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        failure.get_or_insert(e);
                    }
                },
            }
            while let Some(out) = waiting.remove(&(sequences.len() as u64)) {
                if failure.is_none() {
                    if let Err(e) = write_lines(&mut truth, &out.lines, &truth_path) {
                        stop.store(true, Ordering::Relaxed);
                        failure = Some(e);
                    }
                }
                sequences.push(out.record);
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    truth.flush().map_err(io_error(&truth_path))?;

    let mut values = serde_json::Map::new();
    for (v, name) in label::TISSUES {
        values.insert(v.to_string(), name.into());
    }
    values.insert(
        format!("{}+i", label::LESION_BASE),
        "lesion i (its id in truth.jsonl)".into(),
    );
    let manifest_path = options.out.join("manifest.json");
    let manifest = Manifest {
        format: EXPORT_FORMAT,
        generator: format!("sonoflow-phantom {}", env!("CARGO_PKG_VERSION")),
        seed: options.seed,
        frames: options.frames,
        width: options.width,
        height: options.height,
        images: "images/NNNNNN.png (GRAY8)",
        labels: "labels/NNNNNN.png (GRAY8 label values)",
        truth: "truth.jsonl (one JSON object per frame)",
        label_values: serde_json::Value::Object(values),
        sequences: &sequences,
    };
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| ExportError::Io {
        path: manifest_path.display().to_string(),
        cause: e.to_string(),
    })?;
    std::fs::write(&manifest_path, text + "\n").map_err(io_error(&manifest_path))?;
    Ok(ExportSummary {
        frames: options.frames,
        sequences,
        manifest: manifest_path,
    })
}

/// Renders sequence `seq` of the export: writes its frames' PNGs and
/// returns its record and lines, calling `tick` after each frame.
fn render_sequence(
    options: &ExportOptions,
    seq: u64,
    images: &Path,
    labels: &Path,
    pixels: &mut Vec<u8>,
    tick: impl Fn(),
) -> Result<SequenceOutput, ExportError> {
    let first = seq * options.sequence_length;
    let config = sequence_config(options, seq);
    let frames = options.sequence_length.min(options.frames - first);
    let mut phantom = Phantom::new(config.clone())?;
    let record = SequenceRecord {
        index: seq,
        first_frame: first,
        frames,
        config: config.clone(),
        lesions: phantom.scene().lesions.iter().map(|l| l.spec()).collect(),
    };
    let (width, height) = (config.width, config.height);
    pixels.resize((width * height) as usize, 0);
    let mut lines = Vec::with_capacity(usize::try_from(frames).unwrap_or(0));
    for k in 0..frames {
        let index = first + k;
        let mut gt = phantom.render(k, pixels);
        measure_lesions(pixels, &mut gt);
        let name = format!("{index:06}.png");
        write_png(&images.join(&name), width, height, pixels)?;
        write_png(&labels.join(&name), width, height, &gt.labels.data)?;
        let line = FrameRecord {
            index,
            image: format!("images/{name}"),
            labels: format!("labels/{name}"),
            sequence: seq,
            frame_in_sequence: k,
            probe: config.probe,
            depth_cm: config.depth_cm,
            pixel_spacing: gt.pixel_spacing,
            region: gt.region,
            lesions: &gt.lesions,
        };
        lines.push(serde_json::to_string(&line).map_err(|e| ExportError::Io {
            path: options.out.join("truth.jsonl").display().to_string(),
            cause: format!("frame {index}: {e}"),
        })?);
        tick();
    }
    Ok(SequenceOutput { record, lines })
}

fn write_lines(truth: &mut impl Write, lines: &[String], path: &Path) -> Result<(), ExportError> {
    for line in lines {
        writeln!(truth, "{line}").map_err(io_error(path))?;
    }
    Ok(())
}

/// Writes a GRAY8 image as PNG.
pub fn write_png(path: &Path, width: u32, height: u32, pixels: &[u8]) -> Result<(), ExportError> {
    let png_error = |e: png::EncodingError| ExportError::Io {
        path: path.display().to_string(),
        cause: e.to_string(),
    };
    let file = File::create(path).map_err(io_error(path))?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().map_err(png_error)?;
    writer.write_image_data(pixels).map_err(png_error)?;
    writer.finish().map_err(png_error)
}

/// Reads a GRAY8 PNG: (width, height, pixels).
pub fn read_png(path: &Path) -> Result<(u32, u32, Vec<u8>), ExportError> {
    let bad = |cause: String| ExportError::Io {
        path: path.display().to_string(),
        cause,
    };
    let decoder = png::Decoder::new(std::io::BufReader::new(
        File::open(path).map_err(io_error(path))?,
    ));
    let mut reader = decoder.read_info().map_err(|e| bad(e.to_string()))?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| bad(e.to_string()))?;
    if info.color_type != png::ColorType::Grayscale || info.bit_depth != png::BitDepth::Eight {
        return Err(bad(format!(
            "expected 8-bit grayscale, found {:?} {:?}",
            info.color_type, info.bit_depth
        )));
    }
    buf.truncate(info.buffer_size());
    Ok((info.width, info.height, buf))
}
