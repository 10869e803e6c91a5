//! One parser for the three header formats UME reads: NIfTI-1 (348 bytes),
//! NIfTI-2 (540 bytes) and Analyze 7.5 (348 bytes, SPM's extensions), in
//! either byte order.
//!
//! Our own parser rather than the `nifti` crate: that crate cannot read
//! NIfTI-2, streams through a slower inflater, and pulls in ndarray; one
//! table of offsets covers all three formats in a few hundred lines.
//! Everything read from a header is validated here before any voxel
//! allocation, so a header claiming 10^12 voxels is rejected up front.

use crate::volume::{DataType, Geometry, NiftiSpatial, Scaling, SourceFormat, geometry};

/// Problems found in a header (the caller adds the file name).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HeaderError {
    /// Fewer bytes than a header.
    #[error("file too short for a header: {0} bytes (NIfTI-1/Analyze need 348, NIfTI-2 540)")]
    TooShort(usize),
    /// `sizeof_hdr` is neither 348 nor 540 in either byte order.
    #[error("not a NIfTI or Analyze file (sizeof_hdr reads {0}, expected 348 or 540)")]
    NotNifti(i64),
    /// `dim[0]` is not 1..=7.
    #[error("dim[0] = {0}: the number of dimensions must be 1 to 7")]
    BadRank(i64),
    /// A dimension is zero or negative.
    #[error("dim[{axis}] = {value}: dimensions must be at least 1")]
    BadDim {
        /// 1-based axis.
        axis: usize,
        /// Its value.
        value: i64,
    },
    /// Unknown or unsupported `datatype`.
    #[error(
        "unsupported datatype code {0} (supported: 2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1280)"
    )]
    UnknownDatatype(i32),
    /// The voxel count overflows.
    #[error("dims {0:?} describe more voxel bytes than can be addressed")]
    Overflow(Vec<i64>),
    /// `vox_offset` is negative, NaN or not an integer.
    #[error("vox_offset {0} is not a valid byte offset")]
    BadOffset(f64),
}

/// The fields of a header that UME uses, in NIfTI-2 widths.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// Which format.
    pub format: SourceFormat,
    /// Whether the file is big-endian.
    pub big_endian: bool,
    /// 348 or 540.
    pub sizeof_hdr: usize,
    /// Whether the voxels follow the header in the same file (`n+1`/`n+2`).
    pub single_file: bool,
    /// `dim[0..8]`.
    pub dim: [i64; 8],
    /// `datatype` code.
    pub datatype: i32,
    /// `bitpix`.
    pub bitpix: i32,
    /// `pixdim[0..8]`.
    pub pixdim: [f64; 8],
    /// `vox_offset` as stored.
    pub vox_offset: f64,
    /// `scl_slope` (Analyze: SPM `funused1`).
    pub scl_slope: f64,
    /// `scl_inter` (Analyze: SPM2 `funused2`).
    pub scl_inter: f64,
    /// `cal_min`.
    pub cal_min: f64,
    /// `cal_max`.
    pub cal_max: f64,
    /// Analyze `glmin`.
    pub glmin: i64,
    /// Analyze `glmax`.
    pub glmax: i64,
    /// `qform_code` (0 for Analyze).
    pub qform_code: i32,
    /// `sform_code` (0 for Analyze).
    pub sform_code: i32,
    /// `quatern_b, c, d`.
    pub quatern_bcd: [f64; 3],
    /// `qoffset_x, y, z`.
    pub qoffset: [f64; 3],
    /// `srow_x, srow_y, srow_z`.
    pub srow: [[f64; 4]; 3],
    /// `intent_code`.
    pub intent_code: i32,
    /// `xyzt_units`.
    pub xyzt_units: i32,
    /// `descrip`, trimmed.
    pub descrip: String,
    /// SPM origin (1-based voxel of the world origin) from Analyze `originator`.
    pub spm_origin: [i16; 3],
}

/// Where the voxels are and how to read them, derived from a valid header.
#[derive(Debug, Clone, PartialEq)]
pub struct DataLayout {
    /// Dims in file order.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: DataType,
    /// Byte offset of the first voxel in the data file.
    pub offset: usize,
    /// Voxel byte count.
    pub nbytes: usize,
}

struct Reader<'a> {
    b: &'a [u8],
    be: bool,
}

impl Reader<'_> {
    fn arr<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.b[at..at + N]);
        if self.be {
            a.reverse();
        }
        a
    }
    fn i16(&self, at: usize) -> i16 {
        i16::from_le_bytes(self.arr(at))
    }
    fn i32(&self, at: usize) -> i32 {
        i32::from_le_bytes(self.arr(at))
    }
    fn i64(&self, at: usize) -> i64 {
        i64::from_le_bytes(self.arr(at))
    }
    fn f32(&self, at: usize) -> f64 {
        f64::from(f32::from_le_bytes(self.arr(at)))
    }
    fn f64(&self, at: usize) -> f64 {
        f64::from_le_bytes(self.arr(at))
    }
    fn text(&self, at: usize, len: usize) -> String {
        let raw = &self.b[at..at + len];
        let end = raw.iter().position(|&c| c == 0).unwrap_or(len);
        String::from_utf8_lossy(&raw[..end]).trim_end().to_string()
    }
}

/// Parse a header from the first bytes of a file (at least 348, or 540 for
/// NIfTI-2).
pub fn parse(bytes: &[u8]) -> Result<Header, HeaderError> {
    if bytes.len() < 4 {
        return Err(HeaderError::TooShort(bytes.len()));
    }
    let le = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let be = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let (size, big_endian) = match (le, be) {
        (348 | 540, _) => (le as usize, false),
        (_, 348 | 540) => (be as usize, true),
        _ => return Err(HeaderError::NotNifti(i64::from(le))),
    };
    if bytes.len() < size {
        return Err(HeaderError::TooShort(bytes.len()));
    }
    let r = Reader {
        b: bytes,
        be: big_endian,
    };
    if size == 540 {
        Ok(parse_nifti2(&r, big_endian))
    } else {
        Ok(parse_348(&r, big_endian))
    }
}

fn parse_348(r: &Reader<'_>, big_endian: bool) -> Header {
    let magic = &r.b[344..348];
    let (format, single_file) = match magic {
        b"n+1\0" => (SourceFormat::Nifti1, true),
        b"ni1\0" => (SourceFormat::Nifti1, false),
        _ => (SourceFormat::Analyze, false),
    };
    let nifti = format == SourceFormat::Nifti1;
    let dim = std::array::from_fn(|i| i64::from(r.i16(40 + 2 * i)));
    let pixdim = std::array::from_fn(|i| r.f32(76 + 4 * i));
    let srow = std::array::from_fn(|row| {
        std::array::from_fn(|c| {
            if nifti {
                r.f32(280 + 16 * row + 4 * c)
            } else {
                0.0
            }
        })
    });
    // Analyze `originator` is 10 bytes at 253 (unaligned); SPM keeps its
    // origin in the first three 16-bit values.
    let spm_origin = if nifti {
        [0; 3]
    } else {
        std::array::from_fn(|i| r.i16(253 + 2 * i))
    };
    Header {
        format,
        big_endian,
        sizeof_hdr: 348,
        single_file,
        dim,
        datatype: i32::from(r.i16(70)),
        bitpix: i32::from(r.i16(72)),
        pixdim,
        vox_offset: r.f32(108),
        scl_slope: r.f32(112),
        scl_inter: r.f32(116),
        cal_max: r.f32(124),
        cal_min: r.f32(128),
        glmax: i64::from(r.i32(140)),
        glmin: i64::from(r.i32(144)),
        qform_code: if nifti { i32::from(r.i16(252)) } else { 0 },
        sform_code: if nifti { i32::from(r.i16(254)) } else { 0 },
        quatern_bcd: if nifti {
            [r.f32(256), r.f32(260), r.f32(264)]
        } else {
            [0.0; 3]
        },
        qoffset: if nifti {
            [r.f32(268), r.f32(272), r.f32(276)]
        } else {
            [0.0; 3]
        },
        srow,
        intent_code: if nifti { i32::from(r.i16(68)) } else { 0 },
        xyzt_units: if nifti { i32::from(r.b[123]) } else { 0 },
        descrip: r.text(148, 80),
        spm_origin,
    }
}

fn parse_nifti2(r: &Reader<'_>, big_endian: bool) -> Header {
    let single_file = &r.b[4..8] == b"n+2\0";
    Header {
        format: SourceFormat::Nifti2,
        big_endian,
        sizeof_hdr: 540,
        single_file,
        dim: std::array::from_fn(|i| r.i64(16 + 8 * i)),
        datatype: i32::from(r.i16(12)),
        bitpix: i32::from(r.i16(14)),
        pixdim: std::array::from_fn(|i| r.f64(104 + 8 * i)),
        vox_offset: r.i64(168) as f64,
        scl_slope: r.f64(176),
        scl_inter: r.f64(184),
        cal_max: r.f64(192),
        cal_min: r.f64(200),
        glmax: 0,
        glmin: 0,
        qform_code: r.i32(344),
        sform_code: r.i32(348),
        quatern_bcd: [r.f64(352), r.f64(360), r.f64(368)],
        qoffset: [r.f64(376), r.f64(384), r.f64(392)],
        srow: std::array::from_fn(|row| std::array::from_fn(|c| r.f64(400 + 32 * row + 8 * c))),
        intent_code: r.i32(504),
        xyzt_units: r.i32(500),
        descrip: r.text(240, 80),
        spm_origin: [0; 3],
    }
}

impl Header {
    /// Validate dims, datatype and offset; compute the voxel byte layout.
    /// `warnings` collects fixes applied on the way.
    pub fn layout(&self, warnings: &mut Vec<String>) -> Result<DataLayout, HeaderError> {
        let ndim = self.dim[0];
        if !(1..=7).contains(&ndim) {
            return Err(HeaderError::BadRank(ndim));
        }
        let dims = &self.dim[1..=ndim as usize];
        let mut shape = Vec::with_capacity(dims.len());
        for (axis, &d) in dims.iter().enumerate() {
            if d < 1 {
                return Err(HeaderError::BadDim {
                    axis: axis + 1,
                    value: d,
                });
            }
            shape.push(usize::try_from(d).map_err(|_| HeaderError::Overflow(dims.to_vec()))?);
        }
        let dtype = DataType::from_nifti_code(self.datatype)
            .ok_or(HeaderError::UnknownDatatype(self.datatype))?;
        let nbytes = shape
            .iter()
            .try_fold(dtype.bytes_per_voxel(), |acc, &d| acc.checked_mul(d))
            .filter(|&n| n < (1usize << 48))
            .ok_or_else(|| HeaderError::Overflow(dims.to_vec()))?;
        if self.bitpix != 0 && self.bitpix as usize != dtype.bytes_per_voxel() * 8 {
            warnings.push(format!(
                "bitpix {} does not match {dtype}; using the datatype",
                self.bitpix
            ));
        }
        let off = self.vox_offset;
        if !(0.0..=1e15).contains(&off) {
            return Err(HeaderError::BadOffset(off));
        }
        let mut offset = off as usize;
        if off.fract() != 0.0 {
            warnings.push(format!(
                "vox_offset {off} is not an integer; using {offset}"
            ));
        }
        if self.single_file {
            let min = self.sizeof_hdr + 4;
            if offset < min {
                warnings.push(format!(
                    "vox_offset {offset} is inside the header; using {min}"
                ));
                offset = min;
            }
        }
        Ok(DataLayout {
            shape,
            dtype,
            offset,
            nbytes,
        })
    }

    /// Intensity scaling by the format's rules: NIfTI slope 0/NaN means none;
    /// Analyze follows SPM2 (`funused1` scale, `funused2` intercept, else the
    /// `cal`/`gl` ranges), as nibabel reads it.
    pub fn scaling(&self) -> Scaling {
        if self.format != SourceFormat::Analyze {
            return Scaling::from_nifti(self.scl_slope, self.scl_inter);
        }
        if self.scl_slope.is_finite() && self.scl_slope != 0.0 {
            return Scaling::from_nifti(self.scl_slope, self.scl_inter);
        }
        let unscaled = (self.glmax - self.glmin) as f64;
        let scaled = self.cal_max - self.cal_min;
        if unscaled != 0.0 && scaled != 0.0 && scaled.is_finite() {
            let slope = scaled / unscaled;
            return Scaling {
                slope,
                inter: self.cal_min - slope * self.glmin as f64,
            };
        }
        Scaling::IDENTITY
    }

    /// The NIfTI spatial fields.
    pub fn spatial(&self) -> NiftiSpatial {
        NiftiSpatial {
            qform_code: self.qform_code,
            sform_code: self.sform_code,
            quatern_bcd: self.quatern_bcd,
            qoffset: self.qoffset,
            pixdim: self.pixdim,
            srow: self.srow,
        }
    }

    /// World placement. NIfTI: sform, else qform, else centred pixdim.
    /// Analyze: SPM's origin field if plausible, else centred (nibabel's
    /// `Spm2AnalyzeImage` rule), x flipped.
    pub fn geometry(&self, shape: &[usize]) -> (Geometry, Vec<String>) {
        let d = |i: usize| shape.get(i).copied().unwrap_or(1);
        let dims = [d(0), d(1), d(2)];
        let (mut g, w) = if self.format == SourceFormat::Analyze {
            let zooms = [self.pixdim[1], self.pixdim[2], self.pixdim[3]];
            let o = self.spm_origin.map(f64::from);
            let df = dims.map(|x| x as f64);
            let use_origin =
                o.iter().any(|&x| x != 0.0) && (0..3).all(|i| o[i] > -df[i] && o[i] < df[i] * 2.0);
            let origin = if use_origin {
                o.map(|x| x - 1.0)
            } else {
                df.map(|x| (x - 1.0) / 2.0)
            };
            let mut g = Geometry::from_affine(geometry::centered_affine(zooms, origin));
            g.nifti = None;
            (g, Vec::new())
        } else {
            Geometry::from_nifti(self.spatial(), dims)
        };
        if shape.len() >= 4 && self.pixdim[4] > 0.0 && self.pixdim[4].is_finite() {
            // xyzt_units bits 3..5: 8 s, 16 ms, 24 µs.
            let scale = match self.xyzt_units & 0x38 {
                16 => 1e-3,
                24 => 1e-6,
                _ => 1.0,
            };
            g.time_step = Some(self.pixdim[4] * scale);
        }
        (g, w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nifti1(dims: &[i16], datatype: i16) -> Vec<u8> {
        let mut h = vec![0u8; 352];
        h[0..4].copy_from_slice(&348i32.to_le_bytes());
        h[40..42].copy_from_slice(&(dims.len() as i16).to_le_bytes());
        for (i, d) in dims.iter().enumerate() {
            h[42 + 2 * i..44 + 2 * i].copy_from_slice(&d.to_le_bytes());
        }
        h[70..72].copy_from_slice(&datatype.to_le_bytes());
        h[108..112].copy_from_slice(&352f32.to_le_bytes());
        h[344..348].copy_from_slice(b"n+1\0");
        h
    }

    #[test]
    fn rejects_bad_dims_before_allocating() {
        let h = parse(&nifti1(&[10000, 10000, 10000, 1000], 16)).unwrap();
        // 10^15 floats: refused by the size cap, not by an allocation failure.
        assert!(matches!(
            h.layout(&mut vec![]),
            Err(HeaderError::Overflow(_))
        ));
        let h = parse(&nifti1(&[4, 0, 4], 2)).unwrap();
        assert_eq!(
            h.layout(&mut vec![]),
            Err(HeaderError::BadDim { axis: 2, value: 0 })
        );
        let h = parse(&nifti1(&[4, -3, 4], 2)).unwrap();
        assert_eq!(
            h.layout(&mut vec![]),
            Err(HeaderError::BadDim { axis: 2, value: -3 })
        );
        let h = parse(&nifti1(&[4, 4], 7)).unwrap();
        assert_eq!(h.layout(&mut vec![]), Err(HeaderError::UnknownDatatype(7)));
    }

    #[test]
    fn detects_byte_order_and_format() {
        let mut h = nifti1(&[2, 3, 4], 4);
        let p = parse(&h).unwrap();
        assert!(!p.big_endian);
        assert_eq!(p.format, SourceFormat::Nifti1);
        assert!(p.single_file);
        h[0..4].copy_from_slice(&348i32.to_be_bytes());
        assert!(parse(&h).unwrap().big_endian);
        h[344..348].copy_from_slice(b"abcd");
        assert_eq!(parse(&h).unwrap().format, SourceFormat::Analyze);
        assert_eq!(parse(&[0u8; 400]).unwrap_err(), HeaderError::NotNifti(0));
        assert_eq!(parse(&h[..100]).unwrap_err(), HeaderError::TooShort(100));
    }
}
