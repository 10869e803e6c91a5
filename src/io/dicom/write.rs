//! A minimal DICOM series writer: one single-frame file per slice (and time
//! point), greyscale 16-bit, with the geometry of the volume (RAS → LPS).
//! It exists so benchmarks and tests can make series of any size with exact
//! ground truth (positions, spacing, InstanceNumber order, time points),
//! uncompressed or RLE Lossless. It is not a DICOM export for clinical use:
//! it writes no patient or study module beyond the UIDs.

use crate::io::rawdata::lps_axes;
use crate::volume::{DataType, Volume};
use dicom_core::value::{PixelFragmentSequence, PrimitiveValue};
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use std::path::{Path, PathBuf};

/// How the pixel data is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// Explicit VR Little Endian.
    Explicit,
    /// RLE Lossless (encapsulated, one fragment per frame).
    Rle,
}

/// Options of [`write_series`].
#[derive(Debug, Clone)]
pub struct SeriesOptions {
    /// SeriesInstanceUID.
    pub uid: String,
    /// Modality.
    pub modality: String,
    /// Number the files' InstanceNumber in reverse slice order (to test
    /// that readers sort by position).
    pub reverse_instances: bool,
    /// Pixel data syntax.
    pub syntax: Syntax,
}

/// PackBits (the RLE Lossless segment encoding) of one byte plane, padded
/// to an even length.
fn packbits(src: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    let mut i = 0;
    while i < src.len() {
        let mut run = 1;
        while i + run < src.len() && run < 128 && src[i + run] == src[i] {
            run += 1;
        }
        if run >= 2 {
            out.push((257 - run) as u8);
            out.push(src[i]);
            i += run;
            continue;
        }
        // A literal stretch until the next run of at least 3.
        let lit_start = i;
        while i < src.len() && i - lit_start < 128 {
            if i + 2 < src.len() && src[i] == src[i + 1] && src[i] == src[i + 2] {
                break;
            }
            i += 1;
        }
        out.push((i - lit_start - 1) as u8);
        out.extend_from_slice(&src[lit_start..i]);
    }
    if (out.len() - start) % 2 == 1 {
        out.push(0);
    }
}

/// One frame of little-endian 16-bit samples as an RLE Lossless fragment:
/// the most significant byte plane first.
fn rle_frame(samples: &[u8]) -> Vec<u8> {
    let planes: [Vec<u8>; 2] = [
        samples.iter().skip(1).step_by(2).copied().collect(),
        samples.iter().step_by(2).copied().collect(),
    ];
    let mut out = vec![0u8; 64];
    out[0..4].copy_from_slice(&2u32.to_le_bytes());
    for (k, plane) in planes.iter().enumerate() {
        let at = out.len() as u32;
        out[4 + 4 * k..8 + 4 * k].copy_from_slice(&at.to_le_bytes());
        packbits(plane, &mut out);
    }
    out
}

fn ds(values: &[f64]) -> PrimitiveValue {
    PrimitiveValue::from(
        values
            .iter()
            .map(|v| format!("{v:.6}"))
            .collect::<Vec<_>>()
            .join("\\"),
    )
}

/// Write `v` (int16 or uint16; 3D, or 4D as time points) as a series, one
/// file per slice and time point, named `IM00001.dcm` …; atomically per
/// file.
pub fn write_series(v: &Volume, dir: &Path, o: &SeriesOptions) -> Result<Vec<PathBuf>, String> {
    let signed = match v.dtype {
        DataType::I16 => true,
        DataType::U16 => false,
        d => {
            return Err(format!(
                "{d:?} voxels: the series writer takes int16 or uint16"
            ));
        }
    };
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let [nx, ny, nz] = v.dims;
    let (axes, origin) = lps_axes(&v.geometry);
    let len = |a: [f64; 3]| (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt();
    let (sx, sy) = (len(axes[0]), len(axes[1]));
    let iop: Vec<f64> = axes[0]
        .iter()
        .map(|x| x / sx)
        .chain(axes[1].iter().map(|x| x / sy))
        .collect();
    let slice_bytes = nx * ny * 2;
    let bytes = v.raw_bytes();
    let mut paths = Vec::new();
    for t in 0..v.frames {
        for z in 0..nz {
            let k = t * nz + z;
            let pos: Vec<f64> = (0..3).map(|r| origin[r] + axes[2][r] * z as f64).collect();
            let instance = if o.reverse_instances { nz - z } else { z + 1 } + t * nz;
            let pixels = &bytes[k * slice_bytes..(k + 1) * slice_bytes];
            let sop = format!("{}.{}", o.uid, k + 1);
            let pixel_value = match o.syntax {
                Syntax::Explicit => DataElement::new(
                    tags::PIXEL_DATA,
                    VR::OW,
                    PrimitiveValue::U16(
                        pixels
                            .chunks_exact(2)
                            .map(|c| u16::from_le_bytes([c[0], c[1]]))
                            .collect(),
                    ),
                ),
                Syntax::Rle => DataElement::new(
                    tags::PIXEL_DATA,
                    VR::OB,
                    PixelFragmentSequence::new(vec![], vec![rle_frame(pixels)]),
                ),
            };
            let str_el = |tag, vr, s: &str| DataElement::new(tag, vr, PrimitiveValue::from(s));
            let u16_el = |tag, x: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(x));
            let mut elements = vec![
                str_el(tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE),
                str_el(tags::SOP_INSTANCE_UID, VR::UI, &sop),
                str_el(tags::MODALITY, VR::CS, &o.modality),
                str_el(tags::SERIES_INSTANCE_UID, VR::UI, &o.uid),
                str_el(tags::INSTANCE_NUMBER, VR::IS, &instance.to_string()),
                DataElement::new(tags::IMAGE_POSITION_PATIENT, VR::DS, ds(&pos)),
                DataElement::new(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, ds(&iop)),
                DataElement::new(tags::PIXEL_SPACING, VR::DS, ds(&[sy, sx])),
                DataElement::new(tags::SLICE_THICKNESS, VR::DS, ds(&[len(axes[2])])),
                u16_el(tags::SAMPLES_PER_PIXEL, 1),
                str_el(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
                u16_el(tags::ROWS, ny as u16),
                u16_el(tags::COLUMNS, nx as u16),
                u16_el(tags::BITS_ALLOCATED, 16),
                u16_el(tags::BITS_STORED, 16),
                u16_el(tags::HIGH_BIT, 15),
                u16_el(tags::PIXEL_REPRESENTATION, u16::from(signed)),
                DataElement::new(tags::RESCALE_INTERCEPT, VR::DS, ds(&[v.scaling.inter])),
                DataElement::new(tags::RESCALE_SLOPE, VR::DS, ds(&[v.scaling.slope])),
                pixel_value,
            ];
            if v.frames > 1 {
                elements.push(str_el(
                    tags::TEMPORAL_POSITION_IDENTIFIER,
                    VR::IS,
                    &(t + 1).to_string(),
                ));
            }
            let ts = match o.syntax {
                Syntax::Explicit => uids::EXPLICIT_VR_LITTLE_ENDIAN,
                Syntax::Rle => uids::RLE_LOSSLESS,
            };
            let meta = FileMetaTableBuilder::new()
                .transfer_syntax(ts)
                .media_storage_sop_class_uid(uids::CT_IMAGE_STORAGE)
                .media_storage_sop_instance_uid(&sop)
                .build()
                .map_err(|e| e.to_string())?;
            let obj = InMemDicomObject::from_element_iter(elements).with_exact_meta(meta);
            let mut buf = Vec::with_capacity(slice_bytes + 1024);
            obj.write_all(&mut buf).map_err(|e| e.to_string())?;
            let path = dir.join(format!("IM{:05}.dcm", k + 1));
            crate::io::write_atomic(&path, &buf).map_err(|e| e.to_string())?;
            paths.push(path);
        }
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PackBits decoding, as the RLE Lossless decoder does it.
    fn unpack(mut s: &[u8], n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while out.len() < n {
            let h = s[0] as i8;
            if h >= 0 {
                let k = h as usize + 1;
                out.extend_from_slice(&s[1..1 + k]);
                s = &s[1 + k..];
            } else if h != -128 {
                out.extend(std::iter::repeat_n(s[1], (1 - h as isize) as usize));
                s = &s[2..];
            } else {
                s = &s[1..];
            }
        }
        out
    }

    #[test]
    fn packbits_round_trips_runs_and_literals() {
        let mut src: Vec<u8> = (0..300).map(|i| (i * 7 % 13) as u8).collect();
        src.extend(std::iter::repeat_n(9u8, 400));
        src.extend([1, 2, 2, 3, 3, 3, 4]);
        let mut enc = Vec::new();
        packbits(&src, &mut enc);
        assert_eq!(unpack(&enc, src.len()), src);
        assert!(enc.len() < src.len(), "runs compress");
    }
}
