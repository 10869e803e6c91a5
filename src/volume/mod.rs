//! The in-memory volume: voxels kept in their native dtype (so memory stays
//! at about the raw byte count), intensity scaling applied on access, and the
//! geometry that places them in RAS+ millimetre world space.
//!
//! Voxel bytes are stored little-endian in file order (x fastest), whatever
//! the file's endianness: big-endian files are byte-swapped once at load.
//! Element reads use `from_le_bytes` on byte chunks, which the compiler turns
//! into plain loads, and avoids any alignment requirement on the buffer (the
//! voxels start at `vox_offset` inside the decompressed file buffer, which we
//! keep instead of copying).

mod dtype;
pub(crate) mod geometry;
mod labels;
mod stats;

pub use dtype::DataType;
pub use geometry::{Geometry, NiftiSpatial, axcodes, mat4_inverse, mat4_mul};
pub use labels::{LabelData, LabelEntry, LabelError, LabelTable, LabelVolume, palette};
pub use stats::Stats;

use std::sync::Arc;

/// Linear intensity scaling `value = raw * slope + inter` (NIfTI `scl_slope`,
/// `scl_inter`; SPM's `funused1` for Analyze).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scaling {
    /// Multiplier applied to raw values.
    pub slope: f64,
    /// Offset added after the multiplication.
    pub inter: f64,
}

impl Scaling {
    /// No scaling.
    pub const IDENTITY: Scaling = Scaling {
        slope: 1.0,
        inter: 0.0,
    };

    /// Scaling as the NIfTI-1 standard reads it: a slope of 0 or a non-finite
    /// slope means "no scaling"; a non-finite intercept counts as 0.
    pub fn from_nifti(slope: f64, inter: f64) -> Scaling {
        if slope == 0.0 || !slope.is_finite() {
            return Scaling::IDENTITY;
        }
        Scaling {
            slope,
            inter: if inter.is_finite() { inter } else { 0.0 },
        }
    }

    /// Whether applying it changes values.
    pub fn is_identity(&self) -> bool {
        self.slope == 1.0 && self.inter == 0.0
    }

    /// Apply to one raw value.
    #[inline]
    pub fn apply(&self, raw: f64) -> f64 {
        raw * self.slope + self.inter
    }
}

/// Voxel bytes: a buffer and the range of it that holds voxels. Keeping the
/// whole decompressed file and an offset avoids copying the voxels out.
#[derive(Debug, Clone)]
pub struct VoxelBytes {
    buf: Arc<Vec<u8>>,
    start: usize,
    len: usize,
}

impl VoxelBytes {
    /// Wrap `buf[start..start + len]`. Panics if the range is out of bounds
    /// (callers validate sizes against the file first).
    pub fn new(buf: Vec<u8>, start: usize, len: usize) -> VoxelBytes {
        assert!(start.checked_add(len).is_some_and(|end| end <= buf.len()));
        VoxelBytes {
            buf: Arc::new(buf),
            start,
            len,
        }
    }

    /// Wrap a buffer that holds only voxels.
    pub fn from_vec(buf: Vec<u8>) -> VoxelBytes {
        let len = buf.len();
        VoxelBytes::new(buf, 0, len)
    }

    /// The voxel bytes, little-endian, file order.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }

    /// Number of voxel bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no voxel bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held in memory for these voxels (the whole buffer).
    pub fn allocated_bytes(&self) -> usize {
        self.buf.len()
    }
}

/// Where a volume came from, for `ume info` and for writing it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    /// NIfTI-1 (`n+1` / `ni1`).
    Nifti1,
    /// NIfTI-2 (`n+2` / `ni2`).
    Nifti2,
    /// Analyze 7.5 (with SPM extensions).
    Analyze,
    /// Made in memory (phantoms, model outputs).
    Generated,
    /// NRRD (`.nrrd`, `.nhdr`).
    Nrrd,
    /// MetaImage (`.mha`, `.mhd`).
    MetaImage,
    /// A DICOM series or file.
    Dicom,
}

impl SourceFormat {
    /// Short name as printed by `ume info`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceFormat::Nifti1 => "nifti1",
            SourceFormat::Nifti2 => "nifti2",
            SourceFormat::Analyze => "analyze",
            SourceFormat::Generated => "generated",
            SourceFormat::Nrrd => "nrrd",
            SourceFormat::MetaImage => "metaimage",
            SourceFormat::Dicom => "dicom",
        }
    }
}

/// A 3D or 4D image with an optional component axis (vector data such as
/// NIfTI dim 5, or the intrinsic channels of RGB24 / complex64 voxels).
#[derive(Debug, Clone)]
pub struct Volume {
    /// Dimensions as stored in the file (`dim[1..=dim[0]]`), for reporting.
    pub file_shape: Vec<usize>,
    /// Spatial size `[nx, ny, nz]` (x fastest in memory).
    pub dims: [usize; 3],
    /// Number of time frames (NIfTI dim 4), at least 1.
    pub frames: usize,
    /// Number of stored components per voxel along NIfTI dims 5..7 (vector
    /// data), at least 1. RGB/complex channels are part of the dtype instead.
    pub components: usize,
    /// Native element type.
    pub dtype: DataType,
    /// Scaling applied on access.
    pub scaling: Scaling,
    /// Placement in world space.
    pub geometry: Geometry,
    /// Where it came from.
    pub format: SourceFormat,
    /// Non-fatal oddities found while loading (oblique axes, fixed fields).
    pub warnings: Vec<String>,
    data: VoxelBytes,
}

/// Errors constructing a volume from parts.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The byte count does not match dims × dtype size.
    #[error("voxel buffer holds {got} bytes but the shape {shape:?} of {dtype} needs {expected}")]
    SizeMismatch {
        /// Bytes given.
        got: usize,
        /// Bytes required.
        expected: usize,
        /// Shape asked for.
        shape: Vec<usize>,
        /// Element type asked for.
        dtype: DataType,
    },
}

impl Volume {
    /// Assemble a volume; `file_shape` gives the dims in file order (trailing
    /// dims beyond the 4th are folded into `components`).
    pub fn new(
        file_shape: Vec<usize>,
        dtype: DataType,
        scaling: Scaling,
        geometry: Geometry,
        format: SourceFormat,
        data: VoxelBytes,
    ) -> Result<Volume, VolumeError> {
        let get = |i: usize| file_shape.get(i).copied().unwrap_or(1);
        let dims = [get(0), get(1), get(2)];
        let frames = get(3);
        let components: usize = file_shape.iter().skip(4).product();
        let expected = file_shape
            .iter()
            .try_fold(dtype.bytes_per_voxel(), |acc, &d| acc.checked_mul(d))
            .unwrap_or(usize::MAX);
        if expected != data.len() {
            return Err(VolumeError::SizeMismatch {
                got: data.len(),
                expected,
                shape: file_shape,
                dtype,
            });
        }
        Ok(Volume {
            file_shape,
            dims,
            frames,
            components,
            dtype,
            scaling,
            geometry,
            format,
            warnings: Vec::new(),
            data,
        })
    }

    /// A volume built from native values (phantoms, model outputs).
    pub fn from_values<T: dtype::Element>(
        file_shape: Vec<usize>,
        values: &[T],
        geometry: Geometry,
    ) -> Result<Volume, VolumeError> {
        let mut bytes = Vec::with_capacity(std::mem::size_of_val(values));
        for v in values {
            v.write_le(&mut bytes);
        }
        Volume::new(
            file_shape,
            T::DTYPE,
            Scaling::IDENTITY,
            geometry,
            SourceFormat::Generated,
            VoxelBytes::from_vec(bytes),
        )
    }

    /// Voxel bytes, little-endian, file order.
    pub fn raw_bytes(&self) -> &[u8] {
        self.data.as_slice()
    }

    /// Bytes held in memory for the voxels.
    pub fn allocated_bytes(&self) -> usize {
        self.data.allocated_bytes()
    }

    /// Number of voxels in one frame of one component.
    pub fn voxels_per_frame(&self) -> usize {
        self.dims[0] * self.dims[1] * self.dims[2]
    }

    /// Total number of stored elements (all frames and components).
    pub fn element_count(&self) -> usize {
        self.voxels_per_frame() * self.frames * self.components
    }

    /// Spacing in mm along the three voxel axes.
    pub fn spacing_mm(&self) -> [f64; 3] {
        self.geometry.spacing_mm()
    }

    /// Flat element index for `(i, j, k, t, c)`; `None` when out of range.
    pub fn flat_index(&self, i: usize, j: usize, k: usize, t: usize, c: usize) -> Option<usize> {
        let [nx, ny, nz] = self.dims;
        if i >= nx || j >= ny || k >= nz || t >= self.frames || c >= self.components {
            return None;
        }
        Some(i + nx * (j + ny * (k + nz * (t + self.frames * c))))
    }

    /// Flat element index for an index given in file order (any length up to
    /// the file's dims; missing trailing indices are 0).
    pub fn flat_index_of(&self, index: &[usize]) -> Option<usize> {
        let mut flat = 0usize;
        let mut stride = 1usize;
        for (axis, &n) in self.file_shape.iter().enumerate() {
            let ix = index.get(axis).copied().unwrap_or(0);
            if ix >= n {
                return None;
            }
            flat += ix * stride;
            stride *= n;
        }
        if index.len() > self.file_shape.len()
            && index[self.file_shape.len()..].iter().any(|&x| x != 0)
        {
            return None;
        }
        Some(flat)
    }

    /// Scaled value of element `flat` in channel `ch` (RGB: 0..3, complex:
    /// 0 real / 1 imaginary; scalar types: 0).
    #[inline]
    pub fn value_at(&self, flat: usize, ch: usize) -> f64 {
        let raw = self.dtype.read_channel(self.data.as_slice(), flat, ch);
        if self.dtype.is_scalable() {
            self.scaling.apply(raw)
        } else {
            raw
        }
    }

    /// Scaled scalar value at `(i, j, k)` of frame `t` (channel 0).
    pub fn get(&self, i: usize, j: usize, k: usize, t: usize) -> Option<f64> {
        self.flat_index(i, j, k, t, 0).map(|f| self.value_at(f, 0))
    }

    /// A view of one frame (component 0 for vector data) without copying.
    pub fn frame(&self, t: usize) -> Option<Frame<'_>> {
        (t < self.frames).then_some(Frame { volume: self, t })
    }

    /// Per-channel statistics over all scaled elements (one entry for scalar
    /// types, three for RGB, real/imaginary/magnitude for complex).
    pub fn stats(&self) -> Vec<Stats> {
        stats::compute(self)
    }

    /// Scaled values of frame `t` as `f32`, in file order (what models and
    /// texture uploads consume). Channel 0 of multi-channel types.
    pub fn frame_f32(&self, t: usize) -> Option<Vec<f32>> {
        let frame = self.frame(t)?;
        Some(frame.to_f32())
    }
}

/// One time frame of a volume, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    volume: &'a Volume,
    t: usize,
}

impl<'a> Frame<'a> {
    /// The frame's index in the volume.
    pub fn index(&self) -> usize {
        self.t
    }

    /// Spatial size.
    pub fn dims(&self) -> [usize; 3] {
        self.volume.dims
    }

    /// The raw bytes of this frame (component 0).
    pub fn raw_bytes(&self) -> &'a [u8] {
        let n = self.volume.voxels_per_frame() * self.volume.dtype.bytes_per_voxel();
        &self.volume.raw_bytes()[self.t * n..(self.t + 1) * n]
    }

    /// Scaled value at `(i, j, k)`.
    pub fn get(&self, i: usize, j: usize, k: usize) -> Option<f64> {
        self.volume.get(i, j, k, self.t)
    }

    /// Scaled values as `f32`.
    pub fn to_f32(&self) -> Vec<f32> {
        let v = self.volume;
        let dtype = v.dtype;
        let bytes = self.raw_bytes();
        let n = v.voxels_per_frame();
        let scaling = if dtype.is_scalable() {
            v.scaling
        } else {
            Scaling::IDENTITY
        };
        let mut out = Vec::with_capacity(n);
        dtype.for_each_f64(bytes, |raw| out.push(scaling.apply(raw) as f32));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_zero_or_nan_slope_means_none() {
        assert!(Scaling::from_nifti(0.0, 5.0).is_identity());
        assert!(Scaling::from_nifti(f64::NAN, 5.0).is_identity());
        let s = Scaling::from_nifti(2.0, f64::NAN);
        assert_eq!((s.slope, s.inter), (2.0, 0.0));
    }

    #[test]
    fn flat_index_is_x_fastest() {
        let vals: Vec<i16> = (0..2 * 3 * 4 * 2).map(|v| v as i16).collect();
        let v = Volume::from_values(vec![2, 3, 4, 2], &vals, Geometry::identity()).unwrap();
        assert_eq!(v.flat_index(1, 2, 3, 1, 0), Some(1 + 2 * (2 + 3 * (3 + 4))));
        assert_eq!(v.get(1, 0, 0, 0), Some(1.0));
        assert_eq!(v.get(0, 1, 0, 0), Some(2.0));
        assert_eq!(v.get(0, 0, 0, 1), Some(24.0));
        assert_eq!(v.get(2, 0, 0, 0), None);
        let f = v.frame(1).unwrap();
        assert_eq!(f.to_f32()[0], 24.0);
        assert_eq!(f.raw_bytes().len(), 24 * 2);
    }

    #[test]
    fn size_mismatch_is_an_error() {
        let err = Volume::new(
            vec![2, 2, 2],
            DataType::I16,
            Scaling::IDENTITY,
            Geometry::identity(),
            SourceFormat::Generated,
            VoxelBytes::from_vec(vec![0; 15]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("needs 16"));
    }
}
