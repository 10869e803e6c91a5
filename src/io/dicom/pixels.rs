//! Pixel values of a planned series into one voxel buffer.
//!
//! Files are read in parallel, each straight into its images' slots of the
//! output (no per-slice volume, no second copy). Native syntaxes take the
//! pixel bytes as parsed (dicom-rs swaps big-endian words; 32-bit samples
//! get their word order fixed here); RLE Lossless goes through our own
//! decoder (dicom-rs's takes 8 and 16 bits only, RT dose is 32); the other
//! encapsulated syntaxes through the registry's pure-Rust decoders, with a
//! codec panic on a corrupt stream turned into the file's error. Then per
//! image: the stored bits are masked out of the allocated ones (HighBit,
//! BitsStored) and sign-extended, MONOCHROME1 is inverted to read like
//! MONOCHROME2, and the rescale is kept as the volume's scaling when every
//! image shares it (the voxels stay in their stored type, as dcm2niix
//! writes them) or applied into float32 when images differ.
//!
//! Allocation is bounded by what the files hold: uncompressed files must
//! hold every byte the header claims before anything is allocated.

use super::meta::FileInfo;
use super::series::{Image, Plan};
use crate::volume::{DataType, Scaling, SourceFormat, Volume, VoxelBytes};
use dicom_core::PrimitiveValue;
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::{Codec, TransferSyntaxIndex};
use dicom_object::mem::InMemElement;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A problem with one file (or, with `None`, the series as a whole).
pub(super) type FileError = (Option<PathBuf>, String);

/// How stored samples become voxels.
#[derive(Debug, Clone, Copy)]
struct Format {
    bytes: usize,
    bits_stored: u16,
    shift: u16,
    signed: bool,
    invert: bool,
    out: DataType,
}

impl Format {
    fn of(f: &FileInfo, float_out: bool) -> Result<Format, String> {
        if f.samples != 1 || !f.photometric.starts_with("MONOCHROME") {
            return Err(format!(
                "{} images ({} samples per pixel) are not supported: UME reads greyscale (MONOCHROME1/2) images",
                if f.photometric.is_empty() {
                    "colour"
                } else {
                    &f.photometric
                },
                f.samples
            ));
        }
        let bytes = match f.bits_allocated {
            8 => 1,
            16 => 2,
            32 => 4,
            b => {
                return Err(format!(
                    "BitsAllocated {b} is not supported (8, 16 and 32 are; 1-bit images are DICOM SEG or overlays)"
                ));
            }
        };
        let bits_stored = f.bits_stored.clamp(1, f.bits_allocated);
        if f.high_bit + 1 < bits_stored || f.high_bit >= f.bits_allocated {
            return Err(format!(
                "HighBit {} does not fit BitsStored {} in BitsAllocated {}",
                f.high_bit, f.bits_stored, f.bits_allocated
            ));
        }
        let out = match (float_out, bytes, f.signed) {
            (true, ..) => DataType::F32,
            (_, 1, false) => DataType::U8,
            (_, 1, true) => DataType::I8,
            (_, 2, false) => DataType::U16,
            (_, 2, true) => DataType::I16,
            (_, _, false) => DataType::U32,
            (_, _, true) => DataType::I32,
        };
        Ok(Format {
            bytes,
            bits_stored,
            shift: f.high_bit + 1 - bits_stored,
            signed: f.signed,
            invert: f.photometric == "MONOCHROME1",
            out,
        })
    }

    /// Whether stored samples are already the voxels.
    fn is_plain(&self) -> bool {
        !self.invert
            && self.shift == 0
            && self.bits_stored as usize == self.bytes * 8
            && self.out != DataType::F32
    }

    /// One stored sample to its value (masked, sign-extended, inverted).
    #[inline]
    fn value(&self, raw: u32) -> i64 {
        let bits = u32::from(self.bits_stored);
        let mask = if bits >= 32 {
            u32::MAX
        } else {
            (1 << bits) - 1
        };
        let v = (raw >> self.shift) & mask;
        let (lo, hi, v) = if self.signed {
            let half = 1i64 << (bits - 1);
            let v = i64::from(v);
            let v = if v >= half { v - (half << 1) } else { v };
            (-half, half - 1, v)
        } else {
            (0, i64::from(mask), i64::from(v))
        };
        if self.invert { lo + hi - v } else { v }
    }

    /// Convert one image's stored bytes into its slot.
    fn convert(&self, src: &[u8], dst: &mut [u8], rescale: (f64, f64)) {
        if self.is_plain() {
            dst.copy_from_slice(&src[..dst.len()]);
            return;
        }
        let out_w = self.out.bytes_per_voxel();
        for (s, d) in src
            .chunks_exact(self.bytes)
            .zip(dst.chunks_exact_mut(out_w))
        {
            let raw = match self.bytes {
                1 => u32::from(s[0]),
                2 => u32::from(u16::from_le_bytes([s[0], s[1]])),
                _ => u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
            };
            let v = self.value(raw);
            match self.out {
                DataType::F32 => {
                    d.copy_from_slice(&((v as f64 * rescale.0 + rescale.1) as f32).to_le_bytes());
                }
                // Masked values fit their stored width; write its low bytes.
                _ => d.copy_from_slice(&v.to_le_bytes()[..out_w]),
            }
        }
    }
}

/// Read the planned images into a volume.
pub(super) fn read(plan: Plan) -> Result<Volume, FileError> {
    let first = plan.order[0].file.clone();
    let rescale = plan.order[0].frame.rescale;
    let uniform = plan.order.iter().all(|i| i.frame.rescale == rescale);
    let format = Format::of(&first, !uniform).map_err(|e| (Some(first.path.clone()), e))?;
    for img in &plan.order {
        let f = &img.file;
        if (
            f.bits_allocated,
            f.bits_stored,
            f.high_bit,
            f.signed,
            &f.photometric,
        ) != (
            first.bits_allocated,
            first.bits_stored,
            first.high_bit,
            first.signed,
            &first.photometric,
        ) {
            return Err((
                Some(f.path.clone()),
                format!(
                    "pixel format differs from {} in the same series",
                    first.path.display()
                ),
            ));
        }
    }
    let pixels = plan.dims[0] * plan.dims[1];
    let slot = pixels * format.out.bytes_per_voxel();
    check_sizes(&plan.order, pixels * format.bytes)?;
    let total = slot
        .checked_mul(plan.order.len())
        .ok_or((None, "the series is too large to address".to_string()))?;
    let mut out = vec![0u8; total];
    {
        // Each file takes its images' slots, so threads write disjoint parts.
        let mut by_file: BTreeMap<PathBuf, Vec<(usize, &Image)>> = BTreeMap::new();
        for (k, img) in plan.order.iter().enumerate() {
            by_file
                .entry(img.file.path.clone())
                .or_default()
                .push((k, img));
        }
        let files: Vec<Vec<(usize, &Image)>> = by_file.into_values().collect();
        let slots: Vec<Option<&mut [u8]>> = out.chunks_mut(slot).map(Some).collect();
        let slots = Mutex::new(slots);
        let results = crate::io::par::par_map(files.len(), "ume-dicom", |i| {
            let mine: Vec<(&Image, &mut [u8])> = {
                let Ok(mut guard) = slots.lock() else {
                    return Err((None, "a reader thread failed".to_string()));
                };
                files[i]
                    .iter()
                    .filter_map(|(k, img)| guard[*k].take().map(|s| (*img, s)))
                    .collect()
            };
            read_file(&files[i][0].1.file, mine, &format)
        });
        results
            .into_iter()
            .collect::<Result<Vec<()>, FileError>>()?;
    }
    let mut file_shape = vec![plan.dims[0], plan.dims[1], plan.dims[2]];
    if plan.frames > 1 {
        file_shape.push(plan.frames);
    }
    let scaling = if uniform {
        Scaling::from_nifti(rescale.0, rescale.1)
    } else {
        Scaling::IDENTITY
    };
    let mut v = Volume::new(
        file_shape,
        format.out,
        scaling,
        plan.geometry,
        SourceFormat::Dicom,
        VoxelBytes::from_vec(out),
    )
    .map_err(|e| (None, e.to_string()))?;
    v.warnings = plan.warnings;
    if !uniform {
        v.warnings
            .push("rescale slope/intercept differ between images: values stored as float32".into());
    }
    Ok(v)
}

/// Refuse files that cannot hold the bytes their header claims, before
/// allocating the output.
fn check_sizes(order: &[Image], image_bytes: usize) -> Result<(), FileError> {
    let mut seen = std::collections::BTreeSet::new();
    for img in order {
        let f = &img.file;
        if !seen.insert(f.path.clone()) {
            continue;
        }
        let claimed = (image_bytes as u64).saturating_mul(f.frames.len() as u64);
        let native = is_native(&f.transfer_syntax);
        // Compressed data: bounded at 10,000:1 (a blank JPEG 2000 frame
        // still takes a few hundred bytes), so a small file cannot make a
        // huge allocation.
        let room = if native {
            f.file_len
        } else {
            f.file_len.saturating_mul(10_000)
        };
        if claimed > room {
            return Err((
                Some(f.path.clone()),
                format!(
                    "truncated or corrupt: the header claims {claimed} pixel bytes but the file has {} bytes",
                    f.file_len
                ),
            ));
        }
    }
    Ok(())
}

fn is_native(ts: &str) -> bool {
    matches!(
        ts,
        "1.2.840.10008.1.2" | "1.2.840.10008.1.2.1" | "1.2.840.10008.1.2.2"
    )
}

/// Read one file and convert its images into their slots.
fn read_file(
    file: &Arc<FileInfo>,
    images: Vec<(&Image, &mut [u8])>,
    format: &Format,
) -> Result<(), FileError> {
    let fail = |e: String| (Some(file.path.clone()), e);
    let bytes = std::fs::read(&file.path).map_err(|e| fail(e.to_string()))?;
    let obj = super::meta::parse(&bytes, false)
        .map_err(|e| fail(format!("cannot read the pixel data: {e}")))?;
    let image_bytes = file.rows * file.cols * format.bytes;
    let ts = TransferSyntaxRegistry.get(&file.transfer_syntax);
    let decoded: Vec<u8>;
    let stored: std::borrow::Cow<[u8]> = match ts.map(dicom_encoding::TransferSyntax::codec) {
        // Our own RLE decoder: dicom-rs's takes 8 and 16 bits only.
        _ if file.transfer_syntax == RLE_LOSSLESS => {
            let elem = obj
                .get(tags::PIXEL_DATA)
                .ok_or_else(|| fail("no pixel data".to_string()))?;
            let dicom_core::value::Value::PixelSequence(seq) = elem.value() else {
                return Err(fail("RLE pixel data is not encapsulated".into()));
            };
            let mut buf = Vec::with_capacity(image_bytes * file.frames.len());
            for (f, frag) in seq.fragments().iter().take(file.frames.len()).enumerate() {
                rle_decode(frag, file.rows * file.cols, format.bytes, &mut buf)
                    .map_err(|e| fail(format!("RLE frame {f}: {e}")))?;
            }
            decoded = buf;
            std::borrow::Cow::Borrowed(&decoded)
        }
        Some(Codec::EncapsulatedPixelData(Some(decoder), _)) => {
            if let Some(dicom_core::value::Value::PixelSequence(seq)) =
                obj.get(tags::PIXEL_DATA).map(InMemElement::value)
            {
                let frags = seq.fragments().iter().map(Vec::as_slice);
                super::codestream::check(
                    &file.transfer_syntax,
                    frags,
                    file.rows,
                    file.cols,
                    usize::from(file.samples),
                )
                .map_err(|e| fail(format!("{}: {e}", syntax_name(&file.transfer_syntax))))?;
            }
            let mut buf = Vec::with_capacity(image_bytes * file.frames.len());
            // A corrupt stream can make a codec panic (fuzzing found one in
            // the JPEG 2000 adapter): that is this file's error, not a crash.
            let decoded_ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                decoder.decode(&obj, &mut buf).map_err(|e| e.to_string())
            }))
            .unwrap_or_else(|p| Err(format!("the decoder failed ({})", panic_text(&p))));
            decoded_ok.map_err(|e| {
                fail(format!(
                    "cannot decode {} pixel data: {e}",
                    syntax_name(&file.transfer_syntax)
                ))
            })?;
            decoded = buf;
            std::borrow::Cow::Borrowed(&decoded)
        }
        Some(Codec::EncapsulatedPixelData(None, _)) | None => {
            return Err(fail(format!(
                "transfer syntax {} cannot be decoded (no pure-Rust codec; JPEG-LS is one): convert the series with dcmdjpeg or gdcmconv first",
                syntax_name(&file.transfer_syntax)
            )));
        }
        Some(_) => {
            let elem: &InMemElement = obj
                .get(tags::PIXEL_DATA)
                .ok_or_else(|| fail("no pixel data".to_string()))?;
            let dicom_core::value::Value::Primitive(p) = elem.value() else {
                return Err(fail("pixel data is not a plain value".into()));
            };
            native_bytes(p, format.bytes, &file.transfer_syntax)
        }
    };
    for (img, dst) in images {
        let start = img.frame.index as usize * image_bytes;
        let src = stored.get(start..start + image_bytes).ok_or_else(|| {
            fail(format!(
                "truncated pixel data: frame {} needs bytes {start}..{} but there are {}",
                img.frame.index,
                start + image_bytes,
                stored.len()
            ))
        })?;
        format.convert(src, dst, img.frame.rescale);
    }
    Ok(())
}

const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";

/// Decode one RLE Lossless frame (PS3.5 Annex G: a 64-byte header of
/// segment offsets, one PackBits segment per byte plane, most significant
/// first) into `pixels` little-endian samples of `width` bytes.
fn rle_decode(frag: &[u8], pixels: usize, width: usize, out: &mut Vec<u8>) -> Result<(), String> {
    let word = |i: usize| -> Result<usize, String> {
        frag.get(4 * i..4 * i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| "truncated header".to_string())
    };
    let segments = word(0)?;
    if segments != width {
        return Err(format!("{segments} segments for {width}-byte samples"));
    }
    // PackBits expands at most 64:1 (2 bytes → 128): refuse claims the
    // fragment cannot hold before allocating.
    if pixels * width > frag.len().saturating_mul(64) {
        return Err(format!(
            "{} bytes of RLE data cannot hold {pixels} pixels",
            frag.len()
        ));
    }
    let start = out.len();
    out.resize(start + pixels * width, 0);
    for s in 0..segments {
        let from = word(1 + s)?;
        let to = if s + 1 < segments {
            word(2 + s)?
        } else {
            frag.len()
        };
        let seg = frag
            .get(from..to.min(frag.len()))
            .ok_or_else(|| format!("segment {s} lies outside the fragment"))?;
        let byte = width - 1 - s;
        let (mut i, mut n) = (0, 0);
        let mut put = |b: u8, n: &mut usize| {
            if *n < pixels {
                out[start + *n * width + byte] = b;
            }
            *n += 1;
        };
        while i < seg.len() && n < pixels {
            let h = seg[i] as i8;
            i += 1;
            if h >= 0 {
                let k = h as usize + 1;
                let lit = seg
                    .get(i..i + k)
                    .ok_or("literal run past the segment end")?;
                for &b in lit {
                    put(b, &mut n);
                }
                i += k;
            } else if h != -128 {
                let b = *seg.get(i).ok_or("replicate run past the segment end")?;
                for _ in 0..(1 - isize::from(h)) {
                    put(b, &mut n);
                }
                i += 1;
            }
        }
        if n < pixels {
            return Err(format!("segment {s} holds {n} of {pixels} pixels"));
        }
    }
    Ok(())
}

/// Native pixel bytes, little-endian. dicom-rs parses big-endian OW into
/// 16-bit words; 32-bit samples then still have their words swapped, and
/// 16-bit samples read as OB still have their bytes swapped.
fn native_bytes<'a>(p: &'a PrimitiveValue, sample: usize, ts: &str) -> std::borrow::Cow<'a, [u8]> {
    let mut bytes = p.to_bytes();
    if ts == "1.2.840.10008.1.2.2" {
        match (p, sample) {
            (PrimitiveValue::U16(_), 4) => {
                for c in bytes.to_mut().chunks_exact_mut(4) {
                    c.swap(0, 2);
                    c.swap(1, 3);
                }
            }
            (PrimitiveValue::U8(_), 2 | 4) => {
                for c in bytes.to_mut().chunks_exact_mut(sample) {
                    c.reverse();
                }
            }
            _ => {}
        }
    }
    bytes
}

/// The message of a caught panic.
fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panicked".into())
}

/// A transfer syntax's name (with its UID) for messages.
pub(super) fn syntax_name(uid: &str) -> String {
    match TransferSyntaxRegistry.get(uid) {
        Some(ts) => format!("{} ({uid})", ts.name()),
        None => format!("unknown ({uid})"),
    }
}
