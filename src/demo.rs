//! The built-in demo scan: a real T1 brain MRI, the MNI ICBM152 2009a
//! template with grey/white-matter labels (from the nilearn package; see
//! `assets/demo/NOTICE.md`, shown in Help → About), carried inside the
//! binary so the first start needs no download, and written into the cache
//! folder on first use. The phantoms (exact ground truth) stay under File
//! → Demo cases.

use std::path::{Path, PathBuf};

/// The data notices of the demo scan and the bundled models.
pub const NOTICE: &str = include_str!("../assets/demo/NOTICE.md");

const T1: &[u8] = include_bytes!("../assets/demo/icbm152_2009a_t1.nii.gz");
const TISSUE: &[u8] = include_bytes!("../assets/demo/icbm152_2009a_tissue.nii.gz");
const TABLE: &[u8] = include_bytes!("../assets/demo/icbm152_2009a_tissue_labels.json");

/// The demo brain's files in `dir`: (T1, tissue labels), each written
/// atomically when missing; the T1 also when it is not the bundled bytes
/// (a damaged cache). The labels are never overwritten once there: the
/// app opens the demo without a save target (Save asks where), but a user
/// may still have saved over them.
pub fn brain(dir: &Path) -> Result<(PathBuf, PathBuf), crate::io::SaveError> {
    let dir = dir.join("icbm152");
    let files = [
        ("icbm152_2009a_t1.nii.gz", T1, true),
        ("icbm152_2009a_tissue.nii.gz", TISSUE, false),
        ("icbm152_2009a_tissue_labels.json", TABLE, false),
    ];
    for (name, bytes, check) in files {
        let path = dir.join(name);
        let current =
            std::fs::metadata(&path).is_ok_and(|m| !check || m.len() == bytes.len() as u64);
        if !current {
            std::fs::create_dir_all(&dir).map_err(|source| crate::io::SaveError::Io {
                path: dir.clone(),
                source,
            })?;
            crate::io::write_atomic(&path, bytes)?;
        }
    }
    Ok((dir.join(files[0].0), dir.join(files[1].0)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_demo_brain_is_a_real_t1_with_two_tissues() {
        let tmp = tempfile::tempdir().unwrap();
        let (t1, tissue) = super::brain(tmp.path()).unwrap();
        let v = crate::io::load(&t1).unwrap();
        assert_eq!(v.geometry.spacing_mm().map(f64::round), [1.0, 1.0, 1.0]);
        assert!(v.dims.iter().all(|&d| d > 140), "{:?}", v.dims);
        let l = crate::io::load_labels(&tissue).unwrap();
        assert_eq!(l.dims, v.dims);
        let counts = l.counts();
        // Grey and white matter, each hundreds of millilitres at 1 mm³.
        assert!(counts[1] > 300_000 && counts[2] > 300_000, "{counts:?}");
        // Written again when damaged.
        std::fs::write(&t1, b"truncated").unwrap();
        super::brain(tmp.path()).unwrap();
        assert!(crate::io::load(&t1).is_ok());
    }
}
