//! Procedural phantoms with exact ground truth, written in the real dataset
//! layouts (BraTS, ACDC, TotalSegmentator), because no patient data can be
//! downloaded where UME is built and tested.
//!
//! Every phantom is a pure function of (seed, case number, size): anatomy is
//! defined analytically in millimetres, each voxel centre is classified,
//! and noise comes from a counter-based hash of the voxel index, so output is
//! identical whatever the thread count. Shapes live in world space (RAS mm)
//! for BraTS and TotalSegmentator, so cases stored LPS or RAS show the same
//! anatomy; the cardiac phantom lives in its scanner's oblique frame, as
//! short-axis cine does.

mod acdc;
mod brats;
mod rng;
mod totalseg;

pub use acdc::{ACDC_NOISE_SD, AcdcPhantom, acdc_case, acdc_case_with_noise};
pub use brats::{BratsPhantom, brats_case};
pub use totalseg::{TotalSegPhantom, ct_volume, totalseg_case};

use crate::io::SaveError;
use std::path::{Path, PathBuf};

/// Which phantom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Brain MR, 4 modalities, tumour labels (BraTS layout).
    Brats,
    /// Cardiac cine, ED/ES labels (ACDC layout).
    Acdc,
    /// CT torso, per-structure masks (TotalSegmentator layout).
    TotalSeg,
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Kind, String> {
        match s {
            "brats" => Ok(Kind::Brats),
            "acdc" => Ok(Kind::Acdc),
            "totalseg" => Ok(Kind::TotalSeg),
            other => Err(format!(
                "unknown phantom kind {other:?} (brats, acdc, totalseg)"
            )),
        }
    }
}

/// Grid size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// Small grids for tests and quick training on 2 cores.
    Small,
    /// The real datasets' sizes (BraTS 240×240×155, ...).
    Full,
}

impl std::str::FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Size, String> {
        match s {
            "small" => Ok(Size::Small),
            "full" => Ok(Size::Full),
            other => Err(format!("unknown size {other:?} (small, full)")),
        }
    }
}

/// Errors writing phantoms.
#[derive(Debug, thiserror::Error)]
pub enum PhantomError {
    /// A file could not be written.
    #[error(transparent)]
    Save(#[from] SaveError),
    /// A folder could not be made.
    #[error("{}: {source}", path.display())]
    Io {
        /// Folder.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

pub(crate) fn mkdir(path: &Path) -> Result<(), PhantomError> {
    std::fs::create_dir_all(path).map_err(|source| PhantomError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Write `cases` phantom cases of `kind` under `out` (case numbers start at
/// 1), calling `progress(done, total)` after each. Returns the case folders.
pub fn generate(
    kind: Kind,
    size: Size,
    seed: u64,
    cases: usize,
    out: &Path,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<PathBuf>, PhantomError> {
    mkdir(out)?;
    let mut dirs = Vec::with_capacity(cases);
    for n in 1..=cases {
        let dir = match kind {
            Kind::Brats => brats_case(seed, n, size).write(out)?,
            Kind::Acdc => acdc_case(seed, n, size).write(out)?,
            Kind::TotalSeg => totalseg_case(seed, n, size).write(out)?,
        };
        dirs.push(dir);
        progress(n, cases);
    }
    Ok(dirs)
}

/// Evaluate `f(i, j, k)` at every voxel of a grid, x fastest, on parallel
/// named threads (slabs of z). Deterministic: each voxel is a pure function.
pub(crate) fn sample_grid<T: Send + Copy + Default>(
    dims: [usize; 3],
    f: impl Fn(usize, usize, usize) -> T + Sync,
) -> Vec<T> {
    let [nx, ny, nz] = dims;
    let plane = nx * ny;
    let mut out = vec![T::default(); plane * nz];
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .clamp(1, nz.max(1));
    let per = nz.div_ceil(workers).max(1);
    std::thread::scope(|s| {
        let f = &f;
        let mut handles = Vec::new();
        for (w, slab) in out.chunks_mut(per * plane).enumerate() {
            let fill = move || {
                for (dk, sl) in slab.chunks_mut(plane).enumerate() {
                    let k = w * per + dk;
                    for j in 0..ny {
                        for i in 0..nx {
                            sl[i + nx * j] = f(i, j, k);
                        }
                    }
                }
            };
            // Spawning fails only when the OS is out of threads: nothing to recover.
            let h = std::thread::Builder::new()
                .name(format!("ume-phantom-{w}"))
                .spawn_scoped(s, fill)
                .expect("start a phantom worker thread");
            handles.push(h);
        }
        for h in handles {
            if let Err(panic) = h.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
    out
}

/// A well-mixed hash of a 3D cell index (for synthetic label layouts).
pub fn mix_cell(i: usize, j: usize, k: usize) -> u64 {
    rng::mix(rng::mix(rng::mix(i as u64) ^ j as u64) ^ k as u64)
}

/// World position of voxel (i, j, k) under an affine.
#[inline]
pub(crate) fn world(m: &crate::volume::geometry::Mat4, i: usize, j: usize, k: usize) -> [f64; 3] {
    let (x, y, z) = (i as f64, j as f64, k as f64);
    std::array::from_fn(|r| m[r][0] * x + m[r][1] * y + m[r][2] * z + m[r][3])
}
