//! Listing an image folder or pattern into items: which files are images,
//! which are masks of which image, which are sidecars, and the order.
//!
//! - Images: `.png`, `.jpg`, `.jpeg`, `.bmp` (any case).
//! - Masks: `NAME_mask.EXT` and `NAME_mask_N.EXT` (EXT an image extension)
//!   belong to the image `NAME.*` in the same folder and are never images;
//!   an image's masks are ordered `_mask` first, then by N as a number.
//! - Sidecars: `NAME.json` beside the image `NAME.*`.
//! - A folder is searched through all its sub-folders; an item's class is
//!   the name of the top-level sub-folder it lies in (`benign/x.png` and
//!   `benign/2019/x.png` are both "benign"; files in the folder itself have
//!   none). Hidden entries (a leading `.`) are skipped, and symbolic links
//!   to folders are not followed (links to files are).
//! - A pattern matches file names in one folder, `*` any run of characters
//!   and `?` one character; masks are found whether or not they match.
//! - Order: natural order of the path relative to the root (runs of digits
//!   compare as numbers, so `frame_2` comes before `frame_10`), ties broken
//!   by the plain bytes.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::DatasetError;
use crate::Item;

/// File extensions (lower case) of images.
pub const IMAGE_EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];

/// The stem and lower-case extension of a file name (`a.b.PNG` → `a.b`, `png`).
fn split_name(name: &str) -> (&str, Option<String>) {
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem, Some(ext.to_ascii_lowercase())),
        _ => (name, None),
    }
}

fn is_image_extension(ext: Option<&str>) -> bool {
    ext.is_some_and(|e| IMAGE_EXTENSIONS.contains(&e))
}

/// If `stem` is a mask's (`NAME_mask` or `NAME_mask_N`): its image's stem
/// and its rank among that image's masks (0 for `_mask`, N for `_mask_N`).
pub fn mask_of(stem: &str) -> Option<(&str, u32)> {
    if let Some(image) = stem.strip_suffix("_mask") {
        return (!image.is_empty()).then_some((image, 0));
    }
    let (head, digits) = stem.rsplit_once('_')?;
    let image = head.strip_suffix("_mask")?;
    if image.is_empty() || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((image, digits.parse().unwrap_or(u32::MAX)))
}

/// Whether `name` matches `pattern` (`*`: any run of characters, `?`: one).
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut i, mut j) = (0, 0);
    // Where the last `*` was, and the name position it now stands for.
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

/// Natural order: runs of ASCII digits compare as numbers, the rest byte
/// by byte; equal under that, the plain bytes decide.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let run = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
                let (dx, rx) = x.split_at(run(x));
                let (dy, ry) = y.split_at(run(y));
                let strip = |d: &[u8]| d.len() - d.iter().take_while(|&&c| c == b'0').count();
                let (nx, ny) = (&dx[dx.len() - strip(dx)..], &dy[dy.len() - strip(dy)..]);
                match nx.len().cmp(&ny.len()).then_with(|| nx.cmp(ny)) {
                    Ordering::Equal => (x, y) = (rx, ry),
                    other => return other,
                }
            }
            (Some(c), Some(d)) => match c.cmp(d) {
                Ordering::Equal => (x, y) = (&x[1..], &y[1..]),
                other => return other,
            },
        }
    }
}

/// The relative path as sorted and shown: components joined by `/`.
pub fn display_relative(relative: &Path) -> String {
    let parts: Vec<_> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect();
    parts.join("/")
}

/// What to take from a folder.
pub(crate) enum Select<'a> {
    /// Every image, and every sub-folder's.
    All,
    /// Images whose file name matches the pattern; no sub-folders.
    Matching(&'a str),
    /// This one image.
    Only(&'a str),
}

impl Select<'_> {
    fn takes(&self, name: &str) -> bool {
        match self {
            Select::All => true,
            Select::Matching(p) => wildcard_match(p, name),
            Select::Only(n) => *n == name,
        }
    }
}

/// The items of folder `root` (see the module header), in order.
pub(crate) fn list(root: &Path, select: &Select<'_>) -> Result<Vec<Item>, DatasetError> {
    let mut items = Vec::new();
    scan(root, Path::new(""), None, select, &mut items)?;
    items.sort_by(|a, b| {
        natural_cmp(
            &display_relative(&a.relative),
            &display_relative(&b.relative),
        )
    });
    Ok(items)
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DatasetError + '_ {
    move |e| DatasetError::Io {
        path: path.to_path_buf(),
        cause: e.to_string(),
    }
}

/// Lists folder `dir` (`relative` from the root, in `class`) into `items`.
fn scan(
    dir: &Path,
    relative: &Path,
    class: Option<&str>,
    select: &Select<'_>,
    items: &mut Vec<Item>,
) -> Result<(), DatasetError> {
    let mut images: Vec<(String, PathBuf)> = Vec::new();
    let mut image_stems: Vec<String> = Vec::new();
    let mut masks: HashMap<String, Vec<(u32, String, PathBuf)>> = HashMap::new();
    let mut sidecars: HashMap<String, PathBuf> = HashMap::new();
    let mut folders: Vec<(String, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let kind = entry.file_type().map_err(io_error(&path))?;
        let is_file = if kind.is_symlink() {
            // A link to a folder is not followed (it could loop); a broken link is skipped.
            std::fs::metadata(&path).is_ok_and(|m| m.is_file())
        } else {
            kind.is_file()
        };
        if kind.is_dir() {
            if matches!(select, Select::All) {
                folders.push((name, path));
            }
            continue;
        }
        if !is_file {
            continue;
        }
        let (stem, ext) = split_name(&name);
        if is_image_extension(ext.as_deref()) {
            if let Some((image, rank)) = mask_of(stem) {
                masks
                    .entry(image.to_owned())
                    .or_default()
                    .push((rank, name.clone(), path));
            } else {
                image_stems.push(stem.to_owned());
                if select.takes(&name) {
                    images.push((name.clone(), path));
                }
            }
        } else if ext.as_deref() == Some("json") {
            sidecars.insert(stem.to_owned(), path);
        }
    }
    for (image, found) in &masks {
        if !image_stems.contains(image) {
            tracing::debug!(
                folder = %dir.display(),
                image = %image,
                masks = found.len(),
                "masks without an image beside them are ignored"
            );
        }
    }
    for list in masks.values_mut() {
        list.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| natural_cmp(&a.1, &b.1)));
    }
    for (name, path) in images {
        let stem = split_name(&name).0;
        items.push(Item {
            image: path,
            relative: relative.join(&name),
            masks: masks
                .get(stem)
                .map(|m| m.iter().map(|(_, _, p)| p.clone()).collect())
                .unwrap_or_default(),
            sidecar: sidecars.get(stem).cloned(),
            class: class.map(str::to_owned),
            phantom: None,
        });
    }
    for (name, path) in folders {
        let class = class.unwrap_or(&name).to_owned();
        scan(&path, &relative.join(&name), Some(&class), select, items)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_names_give_their_image_and_rank() {
        assert_eq!(mask_of("benign (4)_mask"), Some(("benign (4)", 0)));
        assert_eq!(mask_of("benign (4)_mask_2"), Some(("benign (4)", 2)));
        assert_eq!(mask_of("a_mask_10"), Some(("a", 10)));
        assert_eq!(mask_of("_mask"), None);
        assert_eq!(mask_of("a_mask_"), None);
        assert_eq!(mask_of("a_mask_x"), None);
        assert_eq!(mask_of("a_masks"), None);
        assert_eq!(mask_of("frame_10"), None);
    }

    #[test]
    fn wildcards_match_runs_and_single_characters() {
        assert!(wildcard_match("*.png", "a.png"));
        assert!(wildcard_match("*.png", ".png"));
        assert!(!wildcard_match("*.png", "a.jpg"));
        assert!(wildcard_match("a?c*", "abc"));
        assert!(wildcard_match("a?c*", "abcdef"));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(wildcard_match("*a*b*", "xxaxxbxx"));
        assert!(!wildcard_match("*a*b", "xxaxxbxxc"));
        assert!(wildcard_match("benign (*).png", "benign (12).png"));
        assert!(wildcard_match("exact.png", "exact.png"));
        assert!(!wildcard_match("exact.png", "exact.pngx"));
    }

    #[test]
    fn natural_order_compares_numbers_as_numbers() {
        let mut names = vec![
            "frame_10.png",
            "frame_2.png",
            "frame_1.png",
            "frame_01.png",
            "b/x.png",
            "a.png",
        ];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            [
                "a.png",
                "b/x.png",
                "frame_01.png",
                "frame_1.png",
                "frame_2.png",
                "frame_10.png"
            ]
        );
        assert_eq!(natural_cmp("x", "x"), Ordering::Equal);
    }
}
