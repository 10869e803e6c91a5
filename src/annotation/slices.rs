//! Which slices of a label map are labelled. A user who paints 6 slices of
//! a 300-slice scan has not said the other 294 are background: training
//! must take its targets from the labelled slices only (their neighbours
//! still serve as 2.5D context). Slices are counted along the 2D models'
//! slicing axis, the third voxel axis ([`AXIS`]).
//!
//! On disk a label map `case_seg.nii.gz` may carry
//! `case_seg.nii.gz.slices.json` beside it (`case_seg.slices.json` is read
//! too):
//! `{"axis": 2, "slices": [12, 30, 31]}` (0-based indices; a bare array
//! `[12, 30, 31]` is accepted). Without it every slice counts.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The voxel axis slices are counted along (z: the 2D U-Net's and the
/// encoder's slicing axis).
pub const AXIS: usize = 2;

/// A `.slices.json` that cannot be used, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct SlicesError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub problem: String,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum OnDisk {
    Listed {
        #[serde(default = "default_axis")]
        axis: usize,
        slices: Vec<usize>,
    },
    Bare(Vec<usize>),
}

fn default_axis() -> usize {
    AXIS
}

/// The file name stem of a label map: `case_seg` for `case_seg.nii.gz`,
/// `.seg.nrrd`, `.nii`, `.nrrd`, `.mha`, `.mhd`, `.hdr`, `.img`.
fn stem(labels: &Path) -> String {
    let name = labels
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    for ext in [
        ".nii.gz",
        ".seg.nrrd",
        ".nii",
        ".nrrd",
        ".nhdr",
        ".mha",
        ".mhd",
        ".hdr",
        ".img",
        ".gz",
    ] {
        if lower.ends_with(ext) && lower.len() > ext.len() {
            return name[..name.len() - ext.len()].to_string();
        }
    }
    name
}

/// Where the labelled-slice list of a label map is written:
/// `<file name>.slices.json` beside it (`seg.nii.gz.slices.json`), so
/// `seg.nii.gz` and `seg.nrrd` never share one.
pub fn sidecar_path(labels: &Path) -> PathBuf {
    let mut name = labels
        .file_name()
        .map(std::ffi::OsStr::to_os_string)
        .unwrap_or_default();
    name.push(".slices.json");
    labels.with_file_name(name)
}

/// The stem form `<stem>.slices.json` (`seg.slices.json`), read too.
pub fn stem_sidecar_path(labels: &Path) -> PathBuf {
    labels.with_file_name(format!("{}.slices.json", stem(labels)))
}

/// The labelled-slice list beside a label map, if there is one
/// (`<file name>.slices.json`, else `<stem>.slices.json`).
pub fn find_sidecar(labels: &Path) -> Option<PathBuf> {
    [sidecar_path(labels), stem_sidecar_path(labels)]
        .into_iter()
        .find(|p| p.is_file())
}

/// Read a labelled-slice list for a map with `nz` slices: sorted, without
/// repeats. An index past the map, another axis or malformed JSON is an
/// error naming the file.
pub fn read(path: &Path, nz: usize) -> Result<Vec<usize>, SlicesError> {
    let err = |problem: String| SlicesError {
        path: path.to_path_buf(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let (axis, mut slices) = match serde_json::from_str::<OnDisk>(&text) {
        Ok(OnDisk::Listed { axis, slices }) => (axis, slices),
        Ok(OnDisk::Bare(slices)) => (AXIS, slices),
        Err(_) => {
            return Err(err(
                "not a slice list: expected {\"axis\": 2, \"slices\": [i, …]} or [i, …]".into(),
            ));
        }
    };
    if axis != AXIS {
        return Err(err(format!(
            "slices along axis {axis}: UME's models slice along axis {AXIS} (z)"
        )));
    }
    if let Some(bad) = slices.iter().find(|&&k| k >= nz) {
        return Err(err(format!(
            "slice {bad} is past the label map's {nz} slices"
        )));
    }
    slices.sort_unstable();
    slices.dedup();
    Ok(slices)
}

/// The labelled slices of the map at `labels` with `nz` slices: the
/// sidecar's list, or `None` (every slice) without one.
pub fn for_labels(labels: &Path, nz: usize) -> Result<Option<Vec<usize>>, SlicesError> {
    find_sidecar(labels).map(|p| read(&p, nz)).transpose()
}

/// The JSON written for `slices`.
pub fn to_json(slices: &[usize]) -> Vec<u8> {
    let on_disk = OnDisk::Listed {
        axis: AXIS,
        slices: slices.to_vec(),
    };
    serde_json::to_vec(&on_disk).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_names_and_forms() {
        let dir = tempfile::tempdir().unwrap();
        let labels = dir.path().join("case_seg.nii.gz");
        let full = dir.path().join("case_seg.nii.gz.slices.json");
        assert_eq!(sidecar_path(&labels), full);
        assert_eq!(for_labels(&labels, 10).unwrap(), None);
        std::fs::write(stem_sidecar_path(&labels), "[4, 1, 4]").unwrap();
        assert_eq!(for_labels(&labels, 10).unwrap(), Some(vec![1, 4]));
        std::fs::write(&full, to_json(&[2, 7])).unwrap();
        assert_eq!(
            for_labels(&labels, 10).unwrap(),
            Some(vec![2, 7]),
            "full name first"
        );
        let e = for_labels(&labels, 5).unwrap_err().to_string();
        assert!(
            e.contains("case_seg.nii.gz.slices.json") && e.contains("slice 7"),
            "{e}"
        );
        std::fs::write(&full, r#"{"axis": 0, "slices": [1]}"#).unwrap();
        assert!(
            for_labels(&labels, 10)
                .unwrap_err()
                .to_string()
                .contains("axis 0")
        );
        std::fs::write(&full, "{oops").unwrap();
        assert!(for_labels(&labels, 10).is_err());
    }
}
