//! Writing NIfTI-1 (`.nii` or `.nii.gz`), atomically: the bytes go to a
//! temporary file in the target folder which is then renamed over the
//! target, so a crash or a full disk never leaves half a file behind.
//!
//! Geometry is preserved: a volume loaded from NIfTI keeps its qform and
//! sform fields (and codes) exactly; a generated one gets an sform and, when
//! its axes are orthogonal, an equivalent qform.

use crate::volume::{LabelVolume, Volume};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The OS refused.
    #[error("{}: {source}", path.display())]
    Io {
        /// Target file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// NIfTI-1 cannot store this shape.
    #[error("{}: dimension {dim} exceeds NIfTI-1's limit of 32767; save as NIfTI-2 is not supported yet", path.display())]
    TooLarge {
        /// Target file.
        path: PathBuf,
        /// Offending dimension.
        dim: usize,
    },
}

/// Build the 348-byte NIfTI-1 header (plus the 4-byte extension flag).
fn header_bytes(v: &Volume) -> Option<Vec<u8>> {
    let mut h = vec![0u8; 352];
    let put = |h: &mut Vec<u8>, at: usize, b: &[u8]| h[at..at + b.len()].copy_from_slice(b);
    put(&mut h, 0, &348i32.to_le_bytes());
    put(
        &mut h,
        40,
        &i16::try_from(v.file_shape.len()).ok()?.to_le_bytes(),
    );
    for (i, &d) in v.file_shape.iter().enumerate() {
        put(&mut h, 42 + 2 * i, &i16::try_from(d).ok()?.to_le_bytes());
    }
    for i in v.file_shape.len()..7 {
        put(&mut h, 42 + 2 * i, &1i16.to_le_bytes());
    }
    // Components on the fifth axis are a vector per voxel
    // (NIFTI_INTENT_VECTOR), which ITK and Slicer read as one image of
    // vectors rather than a 5D image.
    if v.components > 1 && v.file_shape.len() == 5 {
        put(&mut h, 68, &1007i16.to_le_bytes());
    }
    put(&mut h, 70, &v.dtype.nifti_code().to_le_bytes());
    put(
        &mut h,
        72,
        &((v.dtype.bytes_per_voxel() * 8) as i16).to_le_bytes(),
    );

    let g = &v.geometry;
    let mut pixdim = [1.0f64; 8];
    let (qform_code, sform_code, bcd, qoffset, srow);
    let preserved = g.nifti.filter(|s| {
        let (chosen, _) = crate::volume::Geometry::from_nifti(*s, v.dims);
        chosen.world_from_voxel == g.world_from_voxel
    });
    if let Some(s) = preserved {
        pixdim = s.pixdim;
        qform_code = s.qform_code;
        sform_code = s.sform_code;
        bcd = s.quatern_bcd;
        qoffset = s.qoffset;
        srow = s.srow;
    } else {
        let m = g.world_from_voxel;
        srow = [m[0], m[1], m[2]];
        sform_code = 1;
        if let Some((q, off, qfac, spacing)) = g.to_quaternion() {
            qform_code = 1;
            bcd = q;
            qoffset = off;
            pixdim[0] = qfac;
            pixdim[1..4].copy_from_slice(&spacing);
        } else {
            qform_code = 0;
            bcd = [0.0; 3];
            qoffset = [m[0][3], m[1][3], m[2][3]];
            pixdim[1..4].copy_from_slice(&g.spacing_mm());
        }
    }
    if let Some(dt) = g.time_step {
        pixdim[4] = dt;
    }
    for (i, p) in pixdim.iter().enumerate() {
        put(&mut h, 76 + 4 * i, &(*p as f32).to_le_bytes());
    }
    put(&mut h, 108, &352f32.to_le_bytes());
    let s = v.scaling;
    put(&mut h, 112, &(s.slope as f32).to_le_bytes());
    put(&mut h, 116, &(s.inter as f32).to_le_bytes());
    // xyzt_units: mm, and seconds for a time axis.
    h[123] = 2 | if v.frames > 1 { 8 } else { 0 };
    put(&mut h, 148, b"UME");
    put(&mut h, 252, &(qform_code as i16).to_le_bytes());
    put(&mut h, 254, &(sform_code as i16).to_le_bytes());
    for (i, x) in bcd.iter().chain(qoffset.iter()).enumerate() {
        put(&mut h, 256 + 4 * i, &(*x as f32).to_le_bytes());
    }
    for (r, row) in srow.iter().enumerate() {
        for (c, x) in row.iter().enumerate() {
            put(&mut h, 280 + 16 * r + 4 * c, &(*x as f32).to_le_bytes());
        }
    }
    put(&mut h, 344, b"n+1\0");
    Some(h)
}

/// Bytes written between two writeback hints.
const WRITEBACK_CHUNK: usize = 8 << 20;

/// Ask the kernel to start writing a just-written range to disk now, so the
/// closing `fsync` waits for the last chunk only instead of the whole file:
/// copying into the page cache and the disk writing overlap. A hint only
/// (errors ignored); the `fsync` after it is what makes the file durable.
#[cfg(target_os = "linux")]
fn start_writeback(f: &std::fs::File, at: u64, len: usize) {
    use std::os::fd::AsRawFd;
    let (Ok(at), Ok(len)) = (i64::try_from(at), i64::try_from(len)) else {
        return;
    };
    // SAFETY: sync_file_range only reads its integer arguments; `f` keeps
    // the descriptor open for the call.
    #[allow(unsafe_code)]
    unsafe {
        libc::sync_file_range(f.as_raw_fd(), at, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_: &std::fs::File, _: u64, _: usize) {}

/// Write `bytes` to `path` atomically (temp file in the same folder, fsync,
/// rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SaveError> {
    write_atomic_parts(path, &[bytes])
}

/// [`write_atomic`] of several byte slices written one after another (a
/// header and the voxels, without first copying them into one buffer).
pub fn write_atomic_parts(path: &Path, parts: &[&[u8]]) -> Result<(), SaveError> {
    let io = |source| SaveError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    // Unique per write, so two saves to one file never share a temp file.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        let mut at = 0u64;
        for bytes in parts {
            for chunk in bytes.chunks(WRITEBACK_CHUNK) {
                f.write_all(chunk)?;
                start_writeback(&f, at, chunk.len());
                at += chunk.len() as u64;
            }
        }
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Save an image as NIfTI-1; gzipped when the name ends in `.gz`.
pub fn save_volume(v: &Volume, path: &Path) -> Result<(), SaveError> {
    let Some(header) = header_bytes(v) else {
        let dim = v.file_shape.iter().copied().max().unwrap_or(0);
        return Err(SaveError::TooLarge {
            path: path.to_path_buf(),
            dim,
        });
    };
    let gz = path.to_string_lossy().to_lowercase().ends_with(".gz");
    if !gz {
        return write_atomic_parts(path, &[&header, v.raw_bytes()]);
    }
    let mut bytes = header;
    bytes.extend_from_slice(v.raw_bytes());
    // Level 6 is libdeflate's default: ~zlib -9 ratios at several times the speed.
    let lvl = libdeflater::CompressionLvl::new(6).unwrap_or_default();
    let mut c = libdeflater::Compressor::new(lvl);
    let mut out = vec![0u8; c.gzip_compress_bound(bytes.len())];
    let n = c
        .gzip_compress(&bytes, &mut out)
        .map_err(|e| SaveError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })?;
    out.truncate(n);
    write_atomic(path, &out)
}

/// Save a label map (u8 or u16) as NIfTI-1.
pub fn save_labels(labels: &LabelVolume, path: &Path) -> Result<(), SaveError> {
    save_volume(&labels.to_volume(), path)
}

/// Save a label map drawn on an image: the image's header geometry
/// (pixdim, qform and sform with their codes) copied exactly, as ITK-SNAP
/// compares spacing and origin with exact equality; the smallest integer
/// type that holds the ids. `.nrrd` and `.mha` names write those formats
/// (the geometry as their direction vectors and origin).
pub fn save_label_map(
    labels: &LabelVolume,
    image_geometry: &crate::volume::Geometry,
    path: &Path,
) -> Result<(), SaveError> {
    let mut out = labels.compacted();
    out.geometry = image_geometry.clone();
    let lower = path.to_string_lossy().to_lowercase();
    if lower.ends_with(".nrrd") || lower.ends_with(".mha") {
        return super::save_any(&out.to_volume(), path).map_err(|e| SaveError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e.kind.to_string()),
        });
    }
    save_labels(&out, path)
}

/// The label description files written beside a label map: `seg.nii.gz`
/// (or `seg.nrrd`, `seg.mha`…) → `seg_labels.txt` (ITK-SNAP) and
/// `seg_labels.json` (UME's table).
pub fn label_table_paths(map: &Path) -> (PathBuf, PathBuf) {
    let name = map
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let lower = name.to_lowercase();
    let stem = [
        ".nii.gz", ".nii", ".hdr.gz", ".hdr", ".img.gz", ".img", ".nrrd", ".nhdr", ".mha", ".mhd",
        ".gz",
    ]
    .iter()
    .find(|e| lower.ends_with(*e))
    .map_or(name.as_str(), |e| &name[..name.len() - e.len()]);
    (
        map.with_file_name(format!("{stem}_labels.txt")),
        map.with_file_name(format!("{stem}_labels.json")),
    )
}

/// Write a label table beside a label map, as an ITK-SNAP label
/// description file and as JSON (both atomically).
pub fn save_label_table(table: &crate::volume::LabelTable, map: &Path) -> Result<(), SaveError> {
    let (txt, json) = label_table_paths(map);
    write_atomic(&txt, table.to_itksnap().as_bytes())?;
    let text = serde_json::to_vec_pretty(table).map_err(|e| SaveError::Io {
        path: json.clone(),
        source: std::io::Error::other(e),
    })?;
    write_atomic(&json, &text)
}

#[cfg(test)]
mod tests {
    use super::label_table_paths;
    use std::path::{Path, PathBuf};

    #[test]
    fn the_table_files_drop_the_maps_extension_whatever_its_format() {
        for map in [
            "seg.nii.gz",
            "seg.nii",
            "seg.nrrd",
            "seg.mha",
            "seg.mhd",
            "seg.hdr",
        ] {
            assert_eq!(
                label_table_paths(&Path::new("/d").join(map)),
                (
                    PathBuf::from("/d/seg_labels.txt"),
                    PathBuf::from("/d/seg_labels.json")
                ),
                "{map}"
            );
        }
    }
}
