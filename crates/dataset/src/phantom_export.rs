//! A phantom export (`sonoflow phantom export`, see
//! `sonoflow_phantom::export`): `truth.jsonl` lists the frames in order,
//! one JSON object per line naming the image and its label map (paths
//! relative to the export's folder) with the frame's pixel spacing, image
//! region and lesions. Loaded, a frame's truth is the phantom's own: the
//! same label map, spacing, region and lesions, and its calibration is
//! [`Calibration::of_truth`](sonoflow_core::Calibration::of_truth).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sonoflow_core::findings::{GroundTruth, ImageRegion, LesionTruth, PixelSpacing};

use crate::decode;
use crate::error::{DatasetError, ItemError};
use crate::Item;

/// The file that marks a folder as a phantom export.
pub const TRUTH_FILE: &str = "truth.jsonl";

/// What one line of `truth.jsonl` says (other keys are ignored).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Record {
    /// The export's folder (not in the line).
    #[serde(skip)]
    root: PathBuf,
    image: String,
    labels: String,
    pixel_spacing: PixelSpacing,
    region: ImageRegion,
    lesions: Vec<LesionTruth>,
    /// The probe sweep (scene) the frame belongs to; older exports and
    /// hand-written lines may lack it.
    #[serde(default)]
    sequence: Option<u64>,
}

const LINE_FIX: &str =
    "export the dataset again with `sonoflow phantom export`, or delete the line";

/// The items of the export in folder `root`, in line order, and the lines
/// that could not be read.
pub(crate) fn list(root: &Path) -> Result<(Vec<Item>, Vec<ItemError>), DatasetError> {
    let path = root.join(TRUTH_FILE);
    let io = |e: std::io::Error| DatasetError::Io {
        path: path.clone(),
        cause: e.to_string(),
    };
    let file = std::fs::File::open(&path).map_err(io)?;
    let (mut items, mut skipped) = (Vec::new(), Vec::new());
    for (i, line) in BufReader::new(file).split(b'\n').enumerate() {
        let line = line.map_err(io)?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Record>(&line) {
            Ok(record) => items.push(Item {
                image: root.join(&record.image),
                relative: PathBuf::from(&record.image),
                masks: Vec::new(),
                sidecar: None,
                class: None,
                phantom: Some(Box::new(Record {
                    root: root.to_path_buf(),
                    ..record
                })),
            }),
            Err(e) => skipped.push(ItemError::TruthLine {
                path: path.clone(),
                line: i + 1,
                cause: e.to_string(),
                fix: LINE_FIX,
            }),
        }
    }
    Ok((items, skipped))
}

/// The truth of `record`'s frame, a `width` x `height` image.
pub(crate) fn truth(
    record: &Record,
    (width, height): (u32, u32),
    frame_index: u64,
) -> Result<GroundTruth, ItemError> {
    let path = record.root.join(&record.labels);
    let labels = decode::label_map(&path)?;
    if (labels.width, labels.height) != (width, height) {
        return Err(ItemError::MaskSize {
            path,
            width: labels.width,
            height: labels.height,
            image_width: width,
            image_height: height,
        });
    }
    Ok(GroundTruth {
        frame_index,
        scene: record.sequence,
        pixel_spacing: record.pixel_spacing,
        region: record.region,
        lesions: record.lesions.clone(),
        labels,
    })
}
