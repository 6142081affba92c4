//! The two kinds of failure: [`DatasetError`] means there is nothing to
//! play at all; [`ItemError`] is one item that cannot be used (the caller
//! warns, skips it and goes on with the next).

use std::path::{Path, PathBuf};

use sonoflow_core::ConfigIssue;

/// The dataset as a whole cannot be played.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DatasetError {
    #[error(
        "{path}: no such file or folder. Fix: give a folder of images, a pattern such as \
         `data/*.png`, or a phantom export folder (the one holding truth.jsonl)"
    )]
    NotFound { path: PathBuf },
    #[error(
        "{pattern}: only the last part of a pattern may hold `*` or `?`. Fix: name the folder \
         itself, e.g. `data/benign/*.png`, or give the folder `data` to take every sub-folder"
    )]
    Pattern { pattern: PathBuf },
    #[error("{path}: cannot be read: {cause}")]
    Io { path: PathBuf, cause: String },
    #[error("{path}: nothing to play: found {looked_for}. Fix: {fix}")]
    Empty {
        path: PathBuf,
        /// What was looked for and not found, in words.
        looked_for: String,
        fix: String,
    },
}

/// One item of a dataset cannot be used; the others still can.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ItemError {
    #[error("{path}: cannot be read: {cause}")]
    Io { path: PathBuf, cause: String },
    #[error(
        "{path}: not a readable image: {cause}. Fix: check the file is complete, or re-save it \
         as PNG, JPEG or BMP"
    )]
    Image { path: PathBuf, cause: String },
    #[error("{path}: not a usable mask: {problem}. Fix: {fix}")]
    Mask {
        path: PathBuf,
        problem: String,
        fix: &'static str,
    },
    #[error(
        "{path}: is {width}x{height} but its image is {image_width}x{image_height}. Fix: a mask \
         (or label map) must have its image's size; re-export it at {image_width}x{image_height}"
    )]
    MaskSize {
        path: PathBuf,
        width: u32,
        height: u32,
        image_width: u32,
        image_height: u32,
    },
    #[error(
        "{image}: has {count} masks; at most {max} fit the label map. Fix: merge some of its \
         masks"
    )]
    TooManyMasks {
        image: PathBuf,
        count: usize,
        max: usize,
    },
    #[error("{path}: {issue}")]
    Sidecar { path: PathBuf, issue: ConfigIssue },
    #[error("{path}, line {line}: {cause}. Fix: {fix}")]
    TruthLine {
        path: PathBuf,
        /// 1-based.
        line: usize,
        cause: String,
        fix: &'static str,
    },
}

impl ItemError {
    /// The file at fault.
    pub fn path(&self) -> &Path {
        match self {
            ItemError::Io { path, .. }
            | ItemError::Image { path, .. }
            | ItemError::Mask { path, .. }
            | ItemError::MaskSize { path, .. }
            | ItemError::Sidecar { path, .. }
            | ItemError::TruthLine { path, .. } => path,
            ItemError::TooManyMasks { image, .. } => image,
        }
    }
}
