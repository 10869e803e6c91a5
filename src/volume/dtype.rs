//! Voxel element types, their NIfTI codes, and fast little-endian decoding.
//!
//! Decoding goes through `from_le_bytes` on exact-size chunks so that loops
//! over whole frames vectorise and never need aligned buffers.

use std::fmt;

/// A voxel element type as stored in NIfTI/Analyze files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// Unsigned 8-bit.
    U8,
    /// Signed 8-bit.
    I8,
    /// Unsigned 16-bit.
    U16,
    /// Signed 16-bit.
    I16,
    /// Unsigned 32-bit.
    U32,
    /// Signed 32-bit.
    I32,
    /// Unsigned 64-bit.
    U64,
    /// Signed 64-bit.
    I64,
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
    /// Three unsigned bytes R, G, B per voxel.
    Rgb24,
    /// Two 32-bit floats (real, imaginary) per voxel.
    Complex64,
}

impl DataType {
    /// From a NIfTI/Analyze `datatype` code; `None` for codes we do not read.
    pub fn from_nifti_code(code: i32) -> Option<DataType> {
        Some(match code {
            2 => DataType::U8,
            4 => DataType::I16,
            8 => DataType::I32,
            16 => DataType::F32,
            32 => DataType::Complex64,
            64 => DataType::F64,
            128 => DataType::Rgb24,
            256 => DataType::I8,
            512 => DataType::U16,
            768 => DataType::U32,
            1024 => DataType::I64,
            1280 => DataType::U64,
            _ => return None,
        })
    }

    /// The NIfTI `datatype` code.
    pub fn nifti_code(self) -> i16 {
        match self {
            DataType::U8 => 2,
            DataType::I16 => 4,
            DataType::I32 => 8,
            DataType::F32 => 16,
            DataType::Complex64 => 32,
            DataType::F64 => 64,
            DataType::Rgb24 => 128,
            DataType::I8 => 256,
            DataType::U16 => 512,
            DataType::U32 => 768,
            DataType::I64 => 1024,
            DataType::U64 => 1280,
        }
    }

    /// Bytes per voxel.
    pub fn bytes_per_voxel(self) -> usize {
        match self {
            DataType::U8 | DataType::I8 => 1,
            DataType::U16 | DataType::I16 => 2,
            DataType::Rgb24 => 3,
            DataType::U32 | DataType::I32 | DataType::F32 => 4,
            DataType::U64 | DataType::I64 | DataType::F64 | DataType::Complex64 => 8,
        }
    }

    /// Size of one scalar of this type (the unit of endian swapping).
    pub fn swap_unit(self) -> usize {
        match self {
            DataType::Rgb24 => 1,
            DataType::Complex64 => 4,
            other => other.bytes_per_voxel(),
        }
    }

    /// Channels per voxel (RGB 3, complex 2, others 1).
    pub fn channels(self) -> usize {
        match self {
            DataType::Rgb24 => 3,
            DataType::Complex64 => 2,
            _ => 1,
        }
    }

    /// Whether `scl_slope`/`scl_inter` apply (NIfTI: not to RGB; nibabel
    /// does not scale complex data either).
    pub fn is_scalable(self) -> bool {
        !matches!(self, DataType::Rgb24 | DataType::Complex64)
    }

    /// Whether values can be NaN.
    pub fn is_float(self) -> bool {
        matches!(self, DataType::F32 | DataType::F64 | DataType::Complex64)
    }

    /// Name as numpy spells it ("int16", "float32", ...).
    pub fn name(self) -> &'static str {
        match self {
            DataType::U8 => "uint8",
            DataType::I8 => "int8",
            DataType::U16 => "uint16",
            DataType::I16 => "int16",
            DataType::U32 => "uint32",
            DataType::I32 => "int32",
            DataType::U64 => "uint64",
            DataType::I64 => "int64",
            DataType::F32 => "float32",
            DataType::F64 => "float64",
            DataType::Rgb24 => "rgb24",
            DataType::Complex64 => "complex64",
        }
    }

    /// Channel `ch` of element `flat` as f64 (raw, unscaled).
    #[inline]
    pub fn read_channel(self, bytes: &[u8], flat: usize, ch: usize) -> f64 {
        let b = self.bytes_per_voxel();
        let at = flat * b;
        match self {
            DataType::Rgb24 => f64::from(bytes[at + ch]),
            DataType::Complex64 => {
                let o = at + 4 * ch;
                f64::from(f32::from_le_bytes([
                    bytes[o],
                    bytes[o + 1],
                    bytes[o + 2],
                    bytes[o + 3],
                ]))
            }
            _ => {
                let mut out = 0.0;
                self.for_each_f64(&bytes[at..at + b], |v| out = v);
                out
            }
        }
    }

    /// Call `f` with every element of a scalar-typed byte slice as f64, in
    /// order. For RGB/complex, channel 0 of each voxel.
    #[inline]
    pub fn for_each_f64(self, bytes: &[u8], mut f: impl FnMut(f64)) {
        macro_rules! each {
            ($t:ty, $n:expr) => {
                for c in bytes.chunks_exact($n) {
                    let mut a = [0u8; $n];
                    a.copy_from_slice(c);
                    f(<$t>::from_le_bytes(a) as f64);
                }
            };
        }
        match self {
            DataType::U8 => bytes.iter().for_each(|&v| f(f64::from(v))),
            DataType::I8 => bytes.iter().for_each(|&v| f(f64::from(v as i8))),
            DataType::U16 => each!(u16, 2),
            DataType::I16 => each!(i16, 2),
            DataType::U32 => each!(u32, 4),
            DataType::I32 => each!(i32, 4),
            DataType::U64 => each!(u64, 8),
            DataType::I64 => each!(i64, 8),
            DataType::F32 => each!(f32, 4),
            DataType::F64 => each!(f64, 8),
            DataType::Rgb24 => bytes.chunks_exact(3).for_each(|c| f(f64::from(c[0]))),
            DataType::Complex64 => {
                for c in bytes.chunks_exact(8) {
                    f(f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
                }
            }
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A native element type that can build a volume.
pub trait Element: Copy {
    /// Its data type.
    const DTYPE: DataType;
    /// Append the little-endian bytes.
    fn write_le(self, out: &mut Vec<u8>);
}

macro_rules! element {
    ($t:ty, $d:expr) => {
        impl Element for $t {
            const DTYPE: DataType = $d;
            fn write_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    };
}
element!(u8, DataType::U8);
element!(i8, DataType::I8);
element!(u16, DataType::U16);
element!(i16, DataType::I16);
element!(u32, DataType::U32);
element!(i32, DataType::I32);
element!(u64, DataType::U64);
element!(i64, DataType::I64);
element!(f32, DataType::F32);
element!(f64, DataType::F64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in [2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1280] {
            let d = DataType::from_nifti_code(code).unwrap();
            assert_eq!(i32::from(d.nifti_code()), code);
        }
        assert_eq!(DataType::from_nifti_code(1536), None); // float128: not read
        assert_eq!(DataType::from_nifti_code(7), None);
    }

    #[test]
    fn decodes_little_endian() {
        let bytes = (-2i16).to_le_bytes();
        assert_eq!(DataType::I16.read_channel(&bytes, 0, 0), -2.0);
        let c = [1.5f32.to_le_bytes(), (-3.0f32).to_le_bytes()].concat();
        assert_eq!(DataType::Complex64.read_channel(&c, 0, 1), -3.0);
        assert_eq!(DataType::Rgb24.read_channel(&[1, 2, 3, 4, 5, 6], 1, 2), 6.0);
    }
}
