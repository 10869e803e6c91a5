//! Dataset folders as people have them: BraTS, ACDC, TotalSegmentator, MSD
//! and nnU-Net. `open` detects the layout and lists cases without reading
//! voxels; `load_case` reads one case (images in parallel), checks that
//! images and labels share one grid, and merges per-structure masks into a
//! single label map one small batch at a time.

mod layouts;

pub use layouts::{AcdcInfo, parse_acdc_info};

use crate::io::{self, LoadError};
use crate::volume::{Geometry, LabelTable, LabelVolume, Volume};
use std::path::{Path, PathBuf};

/// Errors opening or loading a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The OS refused.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A file of the case failed to load.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// No layout recognised.
    #[error("{}: no known dataset layout (expected BraTS *_t1/_t1ce/_t2/_flair[/_seg], ACDC patientNNN_4d + Info.cfg, TotalSegmentator ct + segmentations/, MSD/nnU-Net dataset.json + imagesTr/)", path.display())]
    NoLayout {
        /// The folder.
        path: PathBuf,
    },
    /// Image and labels (or two images) are not on one grid.
    #[error("{} and {} are not on the same grid: {what}", a.display(), b.display())]
    GridMismatch {
        /// First file.
        a: PathBuf,
        /// Second file.
        b: PathBuf,
        /// How they differ.
        what: String,
    },
    /// A metadata file is malformed.
    #[error("{}: {problem}", path.display())]
    BadMetadata {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// Case index out of range.
    #[error("case {index} does not exist (the dataset has {count})")]
    NoSuchCase {
        /// Asked for.
        index: usize,
        /// Available.
        count: usize,
    },
}

/// A recognised folder layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// BraTS (2017–2021 `_t1/_t1ce/_t2/_flair/_seg`, 2023 `-t1n/-t1c/-t2w/-t2f/-seg`).
    Brats,
    /// ACDC cardiac cine.
    Acdc,
    /// TotalSegmentator (`ct.nii.gz` + `segmentations/<name>.nii.gz`).
    #[serde(rename = "totalsegmentator")]
    TotalSegmentator,
    /// Medical Segmentation Decathlon.
    Msd,
    /// nnU-Net raw dataset (`_0000` channel suffixes).
    #[serde(rename = "nnunet")]
    NnUnet,
}

impl Layout {
    /// Display name.
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Brats => "brats",
            Layout::Acdc => "acdc",
            Layout::TotalSegmentator => "totalsegmentator",
            Layout::Msd => "msd",
            Layout::NnUnet => "nnunet",
        }
    }
}

/// Where a case's labels are.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelSource {
    /// No labels.
    None,
    /// One label map.
    File(PathBuf),
    /// One binary mask per named structure (TotalSegmentator).
    Masks(Vec<(String, PathBuf)>),
    /// Label maps of some frames of a 4D image: (0-based frame, file) (ACDC).
    Frames(Vec<(usize, PathBuf)>),
}

/// A case as listed (no voxels read).
#[derive(Debug, Clone, PartialEq)]
pub struct CaseSpec {
    /// Case id (e.g. "BraTS20_Training_001", "patient001", "s0011").
    pub id: String,
    /// (modality or channel name, file).
    pub images: Vec<(String, PathBuf)>,
    /// Labels.
    pub labels: LabelSource,
    /// ACDC metadata.
    pub acdc: Option<AcdcInfo>,
}

/// A detected dataset.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The folder opened.
    pub root: PathBuf,
    /// Its layout.
    pub layout: Layout,
    /// Cases, sorted by id.
    pub cases: Vec<CaseSpec>,
    /// Names and colours of the label ids.
    pub labels: LabelTable,
}

/// A loaded case.
#[derive(Debug, Clone)]
pub struct Case {
    /// Case id.
    pub id: String,
    /// Layout it came from.
    pub layout: Layout,
    /// (modality, image), all on one grid.
    pub images: Vec<(String, Volume)>,
    /// The label map on the image grid (3D cases), if any.
    pub labels: Option<LabelVolume>,
    /// Labelled frames of a 4D case: (0-based frame, labels).
    pub frame_labels: Vec<(usize, LabelVolume)>,
    /// The labelled slices of `labels` (from its `.slices.json`, see
    /// [`crate::annotation::slices`]); `None`: every slice.
    pub labelled_slices: Option<Vec<usize>>,
    /// The labelled slices of the frames in `frame_labels` that carry a
    /// `.slices.json`: (frame, slices).
    pub frame_slices: Vec<(usize, Vec<usize>)>,
    /// Label names (extended with any mask names not in the built-in table).
    pub table: LabelTable,
    /// ACDC metadata.
    pub acdc: Option<AcdcInfo>,
    /// Non-fatal notes (overlapping masks, oblique axes...).
    pub warnings: Vec<String>,
}

/// Detect the layout of a folder and list its cases.
pub fn open(path: &Path) -> Result<Dataset, DatasetError> {
    if !path.is_dir() {
        return Err(DatasetError::NoLayout {
            path: path.to_path_buf(),
        });
    }
    layouts::detect(path)
}

/// Compare two grids: same spatial dims and affines within 1e-3 mm.
pub fn check_same_grid(
    a_path: &Path,
    a_dims: [usize; 3],
    a: &Geometry,
    b_path: &Path,
    b_dims: [usize; 3],
    b: &Geometry,
) -> Result<(), DatasetError> {
    let mismatch = |what: String| DatasetError::GridMismatch {
        a: a_path.to_path_buf(),
        b: b_path.to_path_buf(),
        what,
    };
    if a_dims != b_dims {
        return Err(mismatch(format!("dims {a_dims:?} vs {b_dims:?}")));
    }
    let worst = (0..3)
        .flat_map(|r| (0..4).map(move |c| (r, c)))
        .map(|(r, c)| (a.world_from_voxel[r][c] - b.world_from_voxel[r][c]).abs())
        .fold(0.0, f64::max);
    if worst > 1e-3 || worst.is_nan() {
        return Err(mismatch(format!("affines differ by up to {worst:.4} mm")));
    }
    Ok(())
}

impl Dataset {
    /// Load case `index` (see [`load_case`]).
    pub fn load_case(&self, index: usize) -> Result<Case, DatasetError> {
        let spec = self.cases.get(index).ok_or(DatasetError::NoSuchCase {
            index,
            count: self.cases.len(),
        })?;
        load_case(self.layout, spec, &self.labels)
    }
}

/// Load a listed case: its images in parallel, then its labels, checking
/// every file against the first image's grid.
pub fn load_case(
    layout: Layout,
    spec: &CaseSpec,
    table: &LabelTable,
) -> Result<Case, DatasetError> {
    let paths: Vec<PathBuf> = spec.images.iter().map(|(_, p)| p.clone()).collect();
    let mut images = Vec::with_capacity(paths.len());
    let mut warnings = Vec::new();
    for ((name, path), v) in spec.images.iter().zip(io::load_many(&paths)) {
        let v = v?;
        if let Some((_, first)) = images.first() {
            let first: &Volume = first;
            check_same_grid(
                &paths[0],
                first.dims,
                &first.geometry,
                path,
                v.dims,
                &v.geometry,
            )?;
        }
        warnings.extend(
            v.warnings
                .iter()
                .map(|w| format!("{}: {w}", path.display())),
        );
        images.push((name.clone(), v));
    }
    let (ref_path, ref_dims, ref_geom) = match images.first() {
        Some((_, v)) => (paths[0].clone(), v.dims, v.geometry.clone()),
        None => {
            return Err(DatasetError::BadMetadata {
                path: PathBuf::from(&spec.id),
                problem: "case has no image".into(),
            });
        }
    };
    let check = |p: &Path, l: &LabelVolume| {
        check_same_grid(&ref_path, ref_dims, &ref_geom, p, l.dims, &l.geometry)
    };
    let mut table = table.clone();
    let mut labels = None;
    let mut frame_labels = Vec::new();
    let mut labelled_slices = None;
    let mut frame_slices = Vec::new();
    let listed = |p: &Path, nz: usize| {
        crate::annotation::slices::for_labels(p, nz).map_err(|e| DatasetError::BadMetadata {
            path: e.path,
            problem: e.problem,
        })
    };
    match &spec.labels {
        LabelSource::None => {}
        LabelSource::File(p) => {
            let l = io::load_labels(p)?;
            check(p, &l)?;
            labelled_slices = listed(p, l.dims[2])?;
            labels = Some(l);
        }
        LabelSource::Frames(frames) => {
            for (t, p) in frames {
                let l = io::load_labels(p)?;
                check(p, &l)?;
                if let Some(ks) = listed(p, l.dims[2])? {
                    frame_slices.push((*t, ks));
                }
                frame_labels.push((*t, l));
            }
        }
        LabelSource::Masks(masks) => {
            let (l, notes) = merge_masks(masks, &mut table, (&ref_path, ref_dims, &ref_geom))?;
            warnings.extend(notes);
            labels = Some(l);
        }
    }
    Ok(Case {
        id: spec.id.clone(),
        layout,
        images,
        labels,
        frame_labels,
        labelled_slices,
        frame_slices,
        table,
        acdc: spec.acdc.clone(),
        warnings,
    })
}

/// Merge binary masks into one label map, a batch (one file per core) at a
/// time so that 117 full-size masks are never in memory together. Names
/// missing from `table` get the next free ids. Where masks overlap the later
/// id wins, and the overlap is reported.
fn merge_masks(
    masks: &[(String, PathBuf)],
    table: &mut LabelTable,
    reference: (&Path, [usize; 3], &Geometry),
) -> Result<(LabelVolume, Vec<String>), DatasetError> {
    let (ref_path, dims, geometry) = reference;
    let mut out = LabelVolume::zeros(dims, 1, geometry.clone());
    let mut notes = Vec::new();
    let batch = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut overlaps = 0usize;
    for chunk in masks.chunks(batch) {
        let paths: Vec<PathBuf> = chunk.iter().map(|(_, p)| p.clone()).collect();
        for ((name, path), v) in chunk.iter().zip(io::load_many(&paths)) {
            let v = v?;
            check_same_grid(ref_path, dims, geometry, path, v.dims, &v.geometry)?;
            let id = match table.id_of(name) {
                Some(id) => id,
                None => {
                    let id = table.labels.iter().map(|l| l.id).max().unwrap_or(0) + 1;
                    table.labels.push(crate::volume::LabelEntry {
                        id,
                        name: name.clone(),
                        color: crate::volume::palette(id),
                    });
                    id
                }
            };
            // Masks are u8 0/1 in practice; other integer or float masks
            // count as "on" wherever the (scaled) value is non-zero.
            let n = v.voxels_per_frame();
            let on: Vec<bool> = if v.dtype == crate::volume::DataType::U8 && v.scaling.is_identity()
            {
                v.raw_bytes()[..n].iter().map(|&x| x != 0).collect()
            } else {
                (0..n).map(|f| v.value_at(f, 0) != 0.0).collect()
            };
            for (flat, _) in on.iter().enumerate().filter(|(_, on)| **on) {
                if out.get(flat) != 0 {
                    overlaps += 1;
                }
                out.set(flat, id);
            }
        }
    }
    if overlaps > 0 {
        notes.push(format!(
            "{overlaps} voxels belong to more than one mask; the later structure was kept"
        ));
    }
    Ok((out, notes))
}
