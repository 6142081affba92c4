//! sonoflow-dataset: image datasets as a frame source, read side only.
//! The image-dataset source (`kind = "images"`, frames into an appsrc) and
//! `sonoflow eval` list and load samples through it.
//!
//! Start with [`Dataset::open`]: a folder, a pattern such as
//! `data/*.png`, a single image, or a phantom export folder. It lists the
//! [`Item`]s in play order (see [`listing`] for what counts as an image, a
//! mask and a sidecar, and the order); [`Item::load`] reads one into a
//! [`Sample`]: pixels, their [`FrameFormat`], the calibration and the
//! ground truth (masks as [`truth`] describes, or the phantom's own, see
//! [`phantom_export`]).
//!
//! Errors: [`DatasetError`] when there is nothing to play; [`ItemError`]
//! for one item (an unreadable image, a mask of the wrong size, a bad
//! sidecar, a bad line of `truth.jsonl`): the caller warns and goes on.
//! Images of different sizes in one dataset are not an error here; the
//! pipeline handles the change of size (caps) like any source's.
//!
//! No I/O beyond reading the dataset's files; no GStreamer, no ONNX
//! Runtime, no tokio.

mod decode;
mod error;
pub mod listing;
pub mod phantom_export;
mod sidecar;
pub mod truth;

use std::path::{Path, PathBuf};

use sonoflow_core::findings::GroundTruth;
use sonoflow_core::{Calibration, FrameFormat};

pub use error::{DatasetError, ItemError};
pub use listing::IMAGE_EXTENSIONS;
pub use phantom_export::TRUTH_FILE;
pub use truth::{DEFAULT_CLASS, MAX_MASKS, NO_SPACING, UNASSESSED};

/// What a dataset is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetKind {
    /// Image files, perhaps with masks and sidecars.
    Images,
    /// A `sonoflow phantom export` folder.
    PhantomExport,
}

impl DatasetKind {
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Images => "images",
            DatasetKind::PhantomExport => "phantom export",
        }
    }
}

/// One image of a dataset and the files that go with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub image: PathBuf,
    /// The image's path relative to the dataset's root (for messages and
    /// per-image results).
    pub relative: PathBuf,
    /// Its masks, in order (`NAME_mask.png`, then `NAME_mask_1.png`, ...).
    /// Empty for a phantom export, whose truth is its label map.
    pub masks: Vec<PathBuf>,
    /// Its `NAME.json`, if there is one.
    pub sidecar: Option<PathBuf>,
    /// The top-level sub-folder it lies in ("benign"); None in the root
    /// folder and for a phantom export (whose lesions carry their class).
    pub class: Option<String>,
    /// A phantom export's line for this frame.
    phantom: Option<Box<phantom_export::Record>>,
}

/// One item, loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Tightly packed rows, `format.len()` bytes.
    pub pixels: Vec<u8>,
    /// GRAY8 for grey images, RGBA for colour ones.
    pub format: FrameFormat,
    /// The sidecar's, else the caller's fixed one, else none (see [`Item::load`]).
    pub calibration: Option<Calibration>,
    /// None when the image has no masks (nothing is known about it); with
    /// masks, lesions for the non-empty ones (none: a lesion-free frame).
    pub truth: Option<GroundTruth>,
}

impl Item {
    /// Reads the image and what goes with it. `frame_index` becomes the
    /// truth's frame index. The calibration is the sidecar's when there is
    /// one (it is the most specific), else `fixed` (the definition's),
    /// else none; a phantom export frame always has the phantom's exact
    /// geometry and ignores both. The truth's millimetres use that
    /// calibration's spacing (see [`truth`] for frames without one).
    pub fn load(&self, frame_index: u64, fixed: Option<&Calibration>) -> Result<Sample, ItemError> {
        self.load_with(frame_index, |_, _| fixed.cloned())
    }

    /// [`Item::load`] with the definition's calibration made for the
    /// image's size, `fixed(width, height)` (a region given in pixels must
    /// fit the image); it is asked only when the item has no sidecar and is
    /// not a phantom export frame.
    pub fn load_with(
        &self,
        frame_index: u64,
        fixed: impl FnOnce(u32, u32) -> Option<Calibration>,
    ) -> Result<Sample, ItemError> {
        let _span = tracing::trace_span!("load", image = %self.relative.display()).entered();
        let (pixels, format) = decode::frame(&self.image)?;
        let size = (format.width, format.height);
        if let Some(record) = &self.phantom {
            let truth = phantom_export::truth(record, size, frame_index)?;
            return Ok(Sample {
                pixels,
                format,
                calibration: Some(Calibration::of_truth(&truth)),
                truth: Some(truth),
            });
        }
        let calibration = match &self.sidecar {
            Some(path) => Some(sidecar::read(path, format.width, format.height)?),
            None => fixed(format.width, format.height),
        };
        let truth = if self.masks.is_empty() {
            None
        } else {
            Some(truth::from_masks(
                &self.image,
                &self.masks,
                self.class.as_deref(),
                size,
                calibration.as_ref(),
                frame_index,
            )?)
        };
        Ok(Sample {
            pixels,
            format,
            calibration,
            truth,
        })
    }
}

/// A dataset: its items in play order.
#[derive(Debug, Clone)]
pub struct Dataset {
    root: PathBuf,
    kind: DatasetKind,
    items: Vec<Item>,
    skipped: Vec<ItemError>,
}

const LOOKED_FOR: &str = "no .png, .jpg, .jpeg or .bmp image (files named NAME_mask.png or \
                          NAME_mask_N.png are masks, not images)";

impl Dataset {
    /// Lists the dataset at `path`:
    /// - a folder holding `truth.jsonl` (or that file itself): a phantom export;
    /// - a folder: its images and those of all its sub-folders;
    /// - a pattern with `*` or `?` in its last part: the matching images of
    ///   that folder;
    /// - one image file: just it (with its masks and sidecar).
    ///
    /// Reads no image; a dataset with no item is an error naming what was
    /// looked for.
    pub fn open(path: &Path) -> Result<Dataset, DatasetError> {
        let _span = tracing::debug_span!("dataset", path = %path.display()).entered();
        let dataset = Self::list(path)?;
        tracing::debug!(
            kind = dataset.kind.name(),
            items = dataset.items.len(),
            skipped = dataset.skipped.len(),
            "dataset listed"
        );
        Ok(dataset)
    }

    fn list(path: &Path) -> Result<Dataset, DatasetError> {
        let images = |root: PathBuf, items: Vec<Item>, looked_for: String, fix: &str| {
            if items.is_empty() {
                return Err(DatasetError::Empty {
                    path: path.to_path_buf(),
                    looked_for,
                    fix: fix.to_owned(),
                });
            }
            Ok(Dataset {
                root,
                kind: DatasetKind::Images,
                items,
                skipped: Vec::new(),
            })
        };
        if path.is_dir() {
            if path.join(TRUTH_FILE).is_file() {
                return Self::phantom_export(path);
            }
            let items = listing::list(path, &listing::Select::All)?;
            return images(
                path.to_path_buf(),
                items,
                format!("{LOOKED_FOR} in it or its sub-folders"),
                "point at the folder holding the images (hidden files and folders are skipped)",
            );
        }
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path.is_file() {
            if name == TRUTH_FILE {
                return Self::phantom_export(&parent);
            }
            let items = listing::list(&parent, &listing::Select::Only(&name))?;
            return images(
                parent,
                items,
                format!("{LOOKED_FOR}: this file"),
                "give a .png, .jpg, .jpeg or .bmp image that is not a mask",
            );
        }
        if parent.to_string_lossy().contains(['*', '?']) {
            return Err(DatasetError::Pattern {
                pattern: path.to_path_buf(),
            });
        }
        if name.contains(['*', '?']) {
            if !parent.is_dir() {
                return Err(DatasetError::NotFound { path: parent });
            }
            let items = listing::list(&parent, &listing::Select::Matching(&name))?;
            return images(
                parent,
                items,
                format!("{LOOKED_FOR} whose name matches `{name}`"),
                "check the pattern (`*` matches any run of characters, `?` one; case matters)",
            );
        }
        Err(DatasetError::NotFound {
            path: path.to_path_buf(),
        })
    }

    fn phantom_export(root: &Path) -> Result<Dataset, DatasetError> {
        let (items, skipped) = phantom_export::list(root)?;
        if items.is_empty() {
            let looked_for = match skipped.first() {
                Some(first) => format!(
                    "no readable line in {TRUTH_FILE} ({} could not be read; the first: {first})",
                    skipped.len()
                ),
                None => format!("no line in {TRUTH_FILE}"),
            };
            return Err(DatasetError::Empty {
                path: root.to_path_buf(),
                looked_for,
                fix: "export the dataset again with `sonoflow phantom export`".to_owned(),
            });
        }
        Ok(Dataset {
            root: root.to_path_buf(),
            kind: DatasetKind::PhantomExport,
            items,
            skipped,
        })
    }

    /// The items in play order (never empty).
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    pub fn kind(&self) -> DatasetKind {
        self.kind
    }

    /// The folder item paths are relative to.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// What could not be listed (lines of a phantom export's `truth.jsonl`
    /// that do not parse); each is one frame fewer. Not logged here: the
    /// caller reports them.
    pub fn skipped(&self) -> &[ItemError] {
        &self.skipped
    }
}

#[cfg(test)]
mod tests;
