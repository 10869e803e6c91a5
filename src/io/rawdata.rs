//! What the NRRD and MetaImage readers and writers share: voxel bytes
//! decoded to UME's little-endian layout (byte order swapped, gzip or zlib
//! inflated with the output bounded by what the header declares, so a tiny
//! file claiming huge dims is refused before allocating), and LPS ↔ RAS.

use crate::volume::{DataType, Geometry, Scaling, SourceFormat, Volume, VoxelBytes};
use std::io::Read;
use std::path::Path;

/// How voxel bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// As they are.
    Raw,
    /// A gzip stream (NRRD `gzip`).
    Gzip,
    /// A zlib stream (MetaImage `CompressedData = True`).
    Zlib,
}

/// `needed` voxel bytes of `dtype` from `data`, decoded: inflated, checked
/// for length, byte order swapped to little-endian.
pub fn decode(
    data: &[u8],
    needed: usize,
    encoding: Encoding,
    big_endian: bool,
    dtype: DataType,
) -> Result<Vec<u8>, String> {
    let mut out = match encoding {
        Encoding::Raw => {
            if data.len() < needed {
                return Err(format!(
                    "truncated: the header needs {needed} voxel bytes, the file holds {}",
                    data.len()
                ));
            }
            data[..needed].to_vec()
        }
        Encoding::Gzip | Encoding::Zlib => {
            // Deflate expands at most 1032:1: refuse impossible claims first.
            if needed / 1032 > data.len() + 64 {
                return Err(format!(
                    "the header claims {needed} voxel bytes, more than {} compressed bytes can hold",
                    data.len()
                ));
            }
            let mut out = Vec::with_capacity(needed);
            let limit = needed as u64 + 1;
            let read = if encoding == Encoding::Gzip {
                flate2::read::MultiGzDecoder::new(data)
                    .take(limit)
                    .read_to_end(&mut out)
            } else {
                flate2::read::ZlibDecoder::new(data)
                    .take(limit)
                    .read_to_end(&mut out)
            };
            read.map_err(|e| format!("compressed voxel data: {e}"))?;
            if out.len() < needed {
                return Err(format!(
                    "truncated: the header needs {needed} voxel bytes, the compressed data holds {}",
                    out.len()
                ));
            }
            out.truncate(needed);
            out
        }
    };
    let width = dtype.bytes_per_voxel();
    if big_endian && width > 1 {
        for chunk in out.chunks_exact_mut(width) {
            chunk.reverse();
        }
    }
    Ok(out)
}

/// Product of dims times the voxel width, refusing overflow.
pub fn byte_count(dims: &[usize], dtype: DataType) -> Result<usize, String> {
    dims.iter()
        .try_fold(dtype.bytes_per_voxel(), |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("sizes {dims:?} overflow"))
}

/// A geometry from per-axis direction vectors (spacing included) and an
/// origin, both in LPS (ITK's and Slicer's world) — or in RAS when `ras`.
pub fn geometry(axes: [[f64; 3]; 3], origin: [f64; 3], ras: bool) -> Geometry {
    let s = if ras {
        [1.0, 1.0, 1.0]
    } else {
        [-1.0, -1.0, 1.0]
    };
    let mut m = Geometry::identity().world_from_voxel;
    for r in 0..3 {
        for (c, axis) in axes.iter().enumerate() {
            m[r][c] = s[r] * axis[r];
        }
        m[r][3] = s[r] * origin[r];
    }
    Geometry::from_affine(m)
}

/// Per-axis direction vectors (spacing included) and the origin of a
/// geometry, in LPS.
pub fn lps_axes(g: &Geometry) -> ([[f64; 3]; 3], [f64; 3]) {
    let m = &g.world_from_voxel;
    let s = [-1.0, -1.0, 1.0];
    let axes = std::array::from_fn(|c| std::array::from_fn(|r| s[r] * m[r][c]));
    let origin = std::array::from_fn(|r| s[r] * m[r][3]);
    (axes, origin)
}

/// The numbers of a whitespace-separated list.
pub fn numbers(text: &str) -> Result<Vec<f64>, String> {
    text.split_whitespace()
        .map(|t| {
            t.parse::<f64>()
                .map_err(|_| format!("{t:?} is not a number"))
        })
        .collect()
}

/// A volume of `dims` (at least 3 given as 1) with `components` values per
/// voxel, from voxels decoded in the file's order (components interleaved,
/// fastest): they become UME's (and NIfTI's) planar layout, one whole image
/// per component on the fifth axis.
pub fn assemble_vector(
    dims: &[usize],
    components: usize,
    dtype: DataType,
    geometry: Geometry,
    format: SourceFormat,
    voxels: Vec<u8>,
) -> Result<Volume, String> {
    let mut shape = dims.to_vec();
    while shape.len() < 3 {
        shape.push(1);
    }
    let voxels = if components > 1 {
        while shape.len() < 4 {
            shape.push(1);
        }
        shape.push(components);
        planar(&voxels, components, dtype.bytes_per_voxel())
    } else {
        voxels
    };
    Volume::new(
        shape,
        dtype,
        Scaling::IDENTITY,
        geometry,
        format,
        VoxelBytes::from_vec(voxels),
    )
    .map_err(|e| e.to_string())
}

/// Interleaved elements (`components` consecutive values per voxel) to
/// planar ones (all of component 0, then all of component 1, …).
pub fn planar(interleaved: &[u8], components: usize, width: usize) -> Vec<u8> {
    let n = interleaved.len() / (components * width).max(1);
    let mut out = vec![0u8; interleaved.len()];
    for (i, voxel) in interleaved.chunks_exact(components * width).enumerate() {
        for (c, value) in voxel.chunks_exact(width).enumerate() {
            let at = (c * n + i) * width;
            out[at..at + width].copy_from_slice(value);
        }
    }
    out
}

/// A volume's voxel bytes in the order NRRD and MetaImage store them:
/// components interleaved (fastest) when there are several.
pub fn file_order_bytes(v: &Volume) -> std::borrow::Cow<'_, [u8]> {
    if v.components > 1 {
        std::borrow::Cow::Owned(interleaved(
            v.raw_bytes(),
            v.components,
            v.dtype.bytes_per_voxel(),
        ))
    } else {
        std::borrow::Cow::Borrowed(v.raw_bytes())
    }
}

/// Planar elements back to interleaved ones: the inverse of [`planar`].
pub fn interleaved(planar: &[u8], components: usize, width: usize) -> Vec<u8> {
    let n = planar.len() / (components * width).max(1);
    let mut out = vec![0u8; planar.len()];
    for (i, voxel) in out.chunks_exact_mut(components * width).enumerate() {
        for (c, value) in voxel.chunks_exact_mut(width).enumerate() {
            let at = (c * n + i) * width;
            value.copy_from_slice(&planar[at..at + width]);
        }
    }
    out
}

/// The bytes of a detached data file named in the header of `header`
/// (relative to its folder); file lists are refused, naming `field`.
pub fn data_file(header: &Path, field: &str, name: &str) -> Result<Vec<u8>, String> {
    if name.starts_with("LIST") || name.contains('%') {
        return Err(format!("{field} {name:?}: file lists are not supported"));
    }
    let p = header.parent().unwrap_or(Path::new(".")).join(name);
    std::fs::read(&p).map_err(|e| format!("{field} {}: {e}", p.display()))
}
