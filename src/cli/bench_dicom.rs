//! `ume bench dicom`: loading a 512×512×300 int16 CT series (written by
//! UME's series writer, uncompressed and RLE Lossless) against pydicom
//! reading and stacking it, and converting it to NIfTI against dcm2niix
//! (PyPI `dcm2niix`), in the same run. Each reference is skipped, with the
//! reason printed, when it is not installed.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::io::dicom::{self, write};
use crate::volume::{Geometry, Volume};

/// pydicom: read every file, sort by position along the normal, stack, and
/// apply the rescale (what any Python pipeline does before using the CT).
const PYDICOM: &str = r#"
import sys, time, glob, numpy as np, pydicom
files = sorted(glob.glob(sys.argv[1] + "/*.dcm"))
best = 1e9
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    ds = [pydicom.dcmread(f) for f in files]
    o = np.asarray(ds[0].ImageOrientationPatient, float)
    n = np.cross(o[:3], o[3:])
    ds.sort(key=lambda d: float(np.dot(np.asarray(d.ImagePositionPatient, float), n)))
    vol = np.stack([d.pixel_array for d in ds], axis=-1).astype(np.float32)
    vol = vol * float(ds[0].RescaleSlope) + float(ds[0].RescaleIntercept)
    best = min(best, time.perf_counter() - t)
print(best)
"#;

/// A CT-like int16 volume: air, an elliptic body with noise, a bone ring.
fn ct(dims: [usize; 3]) -> Volume {
    let [nx, ny, nz] = dims;
    let mut vals = Vec::with_capacity(nx * ny * nz);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let (u, v) = (
                    (x as f64 - nx as f64 / 2.0) / (nx as f64 * 0.42),
                    (y as f64 - ny as f64 / 2.0) / (ny as f64 * 0.34),
                );
                let r = (u * u + v * v).sqrt() * (1.0 + 0.05 * (z as f64 / 40.0).sin());
                let noise = (seed % 41) as i16 - 20;
                let hu: i16 = if r > 1.0 {
                    -1000
                } else if r > 0.93 {
                    700 + noise
                } else {
                    40 + noise
                };
                // Stored = HU + 1024 (intercept −1024), as scanners do.
                vals.push(hu + 1024);
            }
        }
    }
    let g = Geometry::from_affine([
        [-0.7, 0.0, 0.0, 180.0],
        [0.0, -0.7, 0.0, 180.0],
        [0.0, 0.0, 1.0, -150.0],
        [0.0, 0.0, 0.0, 1.0],
    ]);
    let mut v = Volume::from_values(vec![nx, ny, nz], &vals, g).expect("sizes match");
    v.scaling = crate::volume::Scaling::from_nifti(1.0, -1024.0);
    v
}

fn best_of(repeat: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

fn pydicom_secs(python: &str, dir: &Path, repeat: usize) -> Result<f64, String> {
    let out = Command::new(python)
        .args(["-c", PYDICOM, &dir.to_string_lossy(), &repeat.to_string()])
        .output()
        .map_err(|e| format!("{python}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err.lines().last().unwrap_or("failed").to_string());
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| "no timing printed".into())
}

/// dcm2niix converting the series to an uncompressed .nii: as it runs, and
/// with its output then flushed to disk as UME's atomic write does.
fn dcm2niix_secs(dir: &Path, out: &Path, repeat: usize) -> Result<(f64, f64), String> {
    std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
    let (mut best, mut best_synced) = (f64::INFINITY, f64::INFINITY);
    let written = out.join("ref.nii");
    for _ in 0..repeat.max(1) {
        // dcm2niix adds a suffix rather than overwrite (refa.nii, …): each
        // run writes a fresh ref.nii, the file flushed below.
        match std::fs::remove_file(&written) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("{}: {e}", written.display()));
            }
            _ => {}
        }
        let t = Instant::now();
        let o = Command::new("dcm2niix")
            .args(["-z", "n", "-b", "n", "-f", "ref", "-o"])
            .arg(out)
            .arg(dir)
            .output()
            .map_err(|e| format!("dcm2niix: {e} (pip install dcm2niix)"))?;
        if !o.status.success() {
            return Err(String::from_utf8_lossy(&o.stderr).trim().to_string());
        }
        best = best.min(t.elapsed().as_secs_f64());
        std::fs::File::open(&written)
            .and_then(|f| f.sync_all())
            .map_err(|e| format!("dcm2niix output: {e}"))?;
        best_synced = best_synced.min(t.elapsed().as_secs_f64());
    }
    Ok((best, best_synced))
}

fn ratio(name: &str, ours: f64, theirs: Result<f64, String>, what: &str) {
    match theirs {
        Ok(t) => say!(
            "  {name:<28} {t:>8.3} s   UME is {:.2}× faster ({what})",
            t / ours
        ),
        Err(e) => say!("  {name:<28} not measured: {e}"),
    }
}

/// Run the benchmark; series are written under `dir` (reused).
pub(super) fn run(dir: &Path, dims: [usize; 3], repeat: usize, python: &str) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    say!(
        "DICOM series {}×{}×{} int16, best of {repeat}, {cores} core(s) for UME",
        dims[0],
        dims[1],
        dims[2]
    );
    let v = ct(dims);
    for (name, syntax) in [
        ("explicit", write::Syntax::Explicit),
        ("rle", write::Syntax::Rle),
    ] {
        let series = dir.join(format!("ct_{}x{}x{}_{name}", dims[0], dims[1], dims[2]));
        if !series.join(format!("IM{:05}.dcm", dims[2])).is_file() {
            let o = write::SeriesOptions {
                uid: format!("1.2.826.0.1.3680043.10.7734.{}", syntax as u8 + 1),
                modality: "CT".into(),
                reverse_instances: true,
                syntax,
            };
            write::write_series(&v, &series, &o).map_err(anyhow::Error::msg)?;
        }
        let loaded = dicom::load(&series, None)?;
        anyhow::ensure!(loaded.raw_bytes() == v.raw_bytes(), "{name}: voxels differ");
        let ours = best_of(repeat, || {
            dicom::load(&series, None)?;
            Ok(())
        })?;
        let out: PathBuf = dir.join(format!("out_{name}"));
        std::fs::create_dir_all(&out).context("output folder")?;
        let convert = best_of(repeat, || {
            let v = dicom::load(&series, None)?;
            crate::io::save_any(&v, &out.join("ume.nii"))?;
            Ok(())
        })?;
        say!("{name} ({} files)", dims[2]);
        say!("  UME load                     {ours:>8.3} s");
        ratio(
            "pydicom read + stack",
            ours,
            pydicom_secs(python, &series, repeat),
            "load",
        );
        say!("  UME convert to .nii          {convert:>8.3} s   (atomic write, flushed to disk)");
        match dcm2niix_secs(&series, &out, repeat) {
            Ok((plain, synced)) => {
                ratio(
                    "dcm2niix to .nii",
                    convert,
                    Ok(plain),
                    "dcm2niix does not flush",
                );
                ratio("dcm2niix + flush", convert, Ok(synced), "both flushed");
            }
            Err(e) => ratio("dcm2niix to .nii", convert, Err(e), ""),
        }
    }
    Ok(())
}
