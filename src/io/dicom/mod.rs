//! DICOM: folders and file lists of Part 10 files → series → volumes in
//! NIfTI's RAS world space.
//!
//! Three steps, each in its own module: [`meta`] reads every file's header
//! (in parallel, stopping before the pixel data), [`series`] groups the
//! images and lays a series out (sorting by position, spacing, 4D time
//! points, the affine), and [`pixels`] reads the chosen series' pixel data
//! straight into the volume. Listing a folder of several series therefore
//! reads no pixel data at all.
//!
//! Refused on purpose, each with an error naming the file: colour and
//! palette images (UME reads greyscale), 1-bit images (DICOM SEG,
//! overlays), transfer syntaxes without a pure-Rust codec (JPEG-LS), files
//! without the Part 10 header, and series whose positions do not make a
//! regular grid of slices × time points.

mod codestream;
mod guard;
mod meta;
mod pixels;
mod series;
pub mod write;

pub use series::Series;

use super::{LoadError, LoadErrorKind};
use crate::volume::Volume;
use std::path::{Path, PathBuf};

/// Series found in a set of files, and the files passed over.
#[derive(Debug, Default)]
pub struct Scan {
    /// Series, in SeriesNumber order.
    pub series: Vec<Series>,
    /// Files that are not DICOM images, with why.
    pub skipped: Vec<(PathBuf, String)>,
}

impl Scan {
    /// The series with this id (a SeriesInstanceUID, or `UID#k` for a part
    /// set apart), or the only one when `id` is `None`.
    pub fn pick(&self, root: &Path, id: Option<&str>) -> Result<&Series, LoadError> {
        let fail = |m: String| Err(super::err(root, LoadErrorKind::Format(m)));
        match id {
            Some(id) => match self.series.iter().find(|s| s.id == id) {
                Some(s) => Ok(s),
                None => fail(format!("no series {id}; found: {}", self.ids())),
            },
            None => match self.series.as_slice() {
                [one] => Ok(one),
                [] => fail(self.nothing()),
                _ => fail(format!(
                    "{} series found; choose one with --series UID: {}",
                    self.series.len(),
                    self.ids()
                )),
            },
        }
    }

    fn ids(&self) -> String {
        self.series
            .iter()
            .map(|s| {
                format!(
                    "{} ({} {}, {} images)",
                    s.id, s.modality, s.description, s.images
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Why nothing was found.
    fn nothing(&self) -> String {
        match self.skipped.first() {
            Some((p, why)) => format!(
                "no DICOM image series found ({} file(s) passed over; {}: {why})",
                self.skipped.len(),
                p.display()
            ),
            None => "no DICOM files found".into(),
        }
    }
}

/// Whether a path is a DICOM Part 10 file.
pub fn is_dicom_file(path: &Path) -> bool {
    path.is_file() && meta::has_magic(path)
}

/// Whether a folder holds DICOM files (looks at up to 4096 entries, depth
/// first), so a folder of DICOM can be told from a dataset folder.
pub fn folder_has_dicom(dir: &Path) -> bool {
    let mut budget = 4096usize;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            budget = budget.saturating_sub(1);
            if budget == 0 {
                return false;
            }
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if meta::has_magic(&p) {
                return true;
            }
        }
    }
    false
}

/// Every file under the inputs (folders searched recursively), sorted.
fn list_files(inputs: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = inputs.to_vec();
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&p) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Find the series in folders and files (headers only, read in parallel).
pub fn scan(inputs: &[PathBuf]) -> Scan {
    let files = list_files(inputs);
    let infos = super::par::par_map(files.len(), "ume-dicom-scan", |i| {
        let p = &files[i];
        if !meta::has_magic(p) {
            return Err("not a DICOM Part 10 file (no DICM header)".to_string());
        }
        meta::read(p)
    });
    let mut scan = Scan::default();
    let mut good = Vec::new();
    for (p, r) in files.into_iter().zip(infos) {
        match r {
            Ok(info) => good.push(info),
            Err(why) => scan.skipped.push((p, why)),
        }
    }
    scan.series = series::group(good);
    // DICOM files that could not be read may belong to any series: say so
    // wherever a series is opened, rather than show it as complete.
    let broken: Vec<&(PathBuf, String)> = scan
        .skipped
        .iter()
        .filter(|(p, _)| meta::has_magic(p))
        .collect();
    if let Some((p, why)) = broken.first() {
        let note = format!(
            "{} DICOM file(s) here could not be read and are left out (e.g. {}: {why})",
            broken.len(),
            p.display()
        );
        for s in &mut scan.series {
            s.notes.push(note.clone());
        }
    }
    scan
}

/// The series beside a file: its folder's files (not below), with the id
/// of the series holding the file. Opening one slice opens its series, as
/// in ITK-SNAP and Slicer.
pub fn scan_beside(file: &Path) -> (Scan, Option<String>) {
    let dir = file.parent().unwrap_or(Path::new("."));
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    let scan = scan(&files);
    let id = scan
        .series
        .iter()
        .find(|s| s.contains(file))
        .map(|s| s.id.clone());
    (scan, id)
}

/// Load one series as a volume (pixel data read in parallel).
pub fn load_series(root: &Path, s: &Series) -> Result<Volume, LoadError> {
    let plan = series::plan(s).map_err(|m| super::err(root, LoadErrorKind::Format(m)))?;
    pixels::read(plan)
        .map_err(|(p, m)| super::err(p.as_deref().unwrap_or(root), LoadErrorKind::Format(m)))
}

/// Load a DICOM folder or file: its only series, or the one named.
pub fn load(path: &Path, id: Option<&str>) -> Result<Volume, LoadError> {
    let scan = scan(&[path.to_path_buf()]);
    if path.is_file() && scan.series.is_empty() {
        let why = scan
            .skipped
            .first()
            .map_or("not a DICOM image".to_string(), |s| s.1.clone());
        return Err(super::err(path, LoadErrorKind::Format(why)));
    }
    let s = scan.pick(path, id)?;
    load_series(path, s)
}
