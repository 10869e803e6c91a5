//! The image size a compressed frame declares (JPEG's SOF segment, JPEG
//! 2000's SIZ marker), checked against the DICOM header before a decoder
//! sees the frame. The decoders allocate what the stream declares, so a few
//! changed bytes could ask for gigabytes: fuzzing found a 6 KB file whose
//! JPEG 2000 stream declared 9 million × 64 pixels for a 64 × 64 image
//! (2.5 GB and 8 s in the decoder). A frame whose stream disagrees with
//! Rows, Columns or SamplesPerPixel is refused, as dcmtk and GDCM refuse it.

/// Width, height and components a codestream declares.
type Declared = (u64, u64, u64);

/// Check every fragment that opens a codestream (SOI; SOC and SIZ, bare or
/// in a JP2 file) of a JPEG or JPEG 2000 syntax against the header's image
/// size. Other syntaxes, fragments that continue a frame, and frame headers
/// a fragment does not hold whole pass unchecked.
pub(super) fn check<'a>(
    syntax: &str,
    fragments: impl IntoIterator<Item = &'a [u8]>,
    rows: usize,
    cols: usize,
    samples: usize,
) -> Result<(), String> {
    let read: fn(&[u8]) -> Option<Result<Declared, String>> = if is_jpeg2000(syntax) {
        jpeg2000_size
    } else if is_jpeg(syntax) {
        jpeg_size
    } else {
        return Ok(());
    };
    for (k, frag) in fragments.into_iter().enumerate() {
        let Some(declared) = read(frag) else {
            continue;
        };
        let (w, h, c) = declared.map_err(|e| format!("fragment {k}: {e}"))?;
        if (w, h, c) != (cols as u64, rows as u64, samples as u64) {
            return Err(format!(
                "fragment {k}: the compressed stream declares {w} × {h} pixels with {c} component(s), \
                 the header {cols} × {rows} with {samples} (Columns × Rows, SamplesPerPixel)"
            ));
        }
    }
    Ok(())
}

fn is_jpeg2000(syntax: &str) -> bool {
    matches!(
        syntax,
        "1.2.840.10008.1.2.4.90"
            | "1.2.840.10008.1.2.4.91"
            | "1.2.840.10008.1.2.4.92"
            | "1.2.840.10008.1.2.4.93"
            | "1.2.840.10008.1.2.4.201"
            | "1.2.840.10008.1.2.4.202"
            | "1.2.840.10008.1.2.4.203"
    )
}

fn is_jpeg(syntax: &str) -> bool {
    matches!(
        syntax,
        "1.2.840.10008.1.2.4.50"
            | "1.2.840.10008.1.2.4.51"
            | "1.2.840.10008.1.2.4.57"
            | "1.2.840.10008.1.2.4.70"
    )
}

fn be16(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from(u16::from_be_bytes(
        b.get(at..at + 2)?.try_into().ok()?,
    )))
}

fn be32(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from(u32::from_be_bytes(
        b.get(at..at + 4)?.try_into().ok()?,
    )))
}

/// A JPEG 2000 codestream (or a JP2 file around one) at the start of the
/// fragment: its SIZ image size. `None` when the fragment does not open
/// with SOC and SIZ (a fragment continuing a frame) or ends inside SIZ: the
/// decoder is left to judge what cannot be read here.
fn jpeg2000_size(frag: &[u8]) -> Option<Result<Declared, String>> {
    const SOC_SIZ: [u8; 4] = [0xFF, 0x4F, 0xFF, 0x51];
    let stream = if frag.starts_with(&SOC_SIZ) {
        frag
    } else if frag.starts_with(&[0, 0, 0, 12, b'j', b'P', b' ', b' ']) {
        jp2_codestream(frag).filter(|s| s.starts_with(&SOC_SIZ))?
    } else {
        return None;
    };
    // Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz XTOsiz YTOsiz Csiz after
    // the markers (ISO/IEC 15444-1 A.5.1).
    let siz = |i: usize| be32(stream, 8 + 4 * i);
    let (x, y, xo, yo) = (siz(0)?, siz(1)?, siz(2)?, siz(3)?);
    let (xt, yt) = (siz(4)?, siz(5)?);
    let c = be16(stream, 40)?;
    if xo >= x || yo >= y || xt == 0 || yt == 0 {
        return Some(Err(format!(
            "the JPEG 2000 SIZ marker is invalid (size {x} × {y}, offset {xo} × {yo}, tile {xt} × {yt})"
        )));
    }
    Some(Ok((x - xo, y - yo, c)))
}

/// The contents of a JP2 file's contiguous-codestream box (`jp2c`), as far
/// as this fragment holds it.
fn jp2_codestream(file: &[u8]) -> Option<&[u8]> {
    let mut at = 0usize;
    while at + 8 <= file.len() {
        let len = be32(file, at)?;
        let kind = file.get(at + 4..at + 8)?;
        let (header, len) = match len {
            0 => (8, (file.len() - at) as u64),
            1 => (16, be32(file, at + 8)? << 32 | be32(file, at + 12)?),
            n => (8, n),
        };
        if len < header as u64 {
            return None;
        }
        // The box may run on into the frame's next fragment.
        let end = at
            .saturating_add(usize::try_from(len).unwrap_or(usize::MAX))
            .min(file.len());
        if kind == b"jp2c" {
            return file.get(at + header..end);
        }
        at = end;
    }
    None
}

/// A JPEG stream at the start of the fragment: its frame header's size
/// (the first SOF segment). `None` when the fragment does not open with
/// SOI, or no whole frame header comes before the scan or the fragment's
/// end: the decoder is left to judge what cannot be read here.
fn jpeg_size(frag: &[u8]) -> Option<Result<Declared, String>> {
    if !frag.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut at = 2usize;
    loop {
        // Markers may be padded with any number of 0xFF bytes.
        while frag.get(at) == Some(&0xFF) && frag.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        if frag.get(at) != Some(&0xFF) {
            return None;
        }
        let m = *frag.get(at + 1)?;
        at += 2;
        match m {
            0xD0..=0xD7 | 0x01 => {}
            0xD9 | 0xDA => return None,
            0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                // Lf P Y X Nf (ITU T.81 B.2.2).
                let (y, x) = (be16(frag, at + 3)?, be16(frag, at + 5)?);
                return Some(Ok((x, y, u64::from(*frag.get(at + 7)?))));
            }
            _ => at += usize::try_from(be16(frag, at)?).ok()?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j2k(x: u32, y: u32, c: u16) -> Vec<u8> {
        let mut s = vec![0xFF, 0x4F, 0xFF, 0x51, 0, 41, 0, 0];
        for v in [x, y, 0, 0, x, y, 0, 0] {
            s.extend(v.to_be_bytes());
        }
        s.extend(c.to_be_bytes());
        s
    }

    fn jpeg(x: u16, y: u16, c: u8) -> Vec<u8> {
        // SOI, an APP0 segment to skip, SOF0.
        let mut s = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 1, 2, 0xFF, 0xC0, 0, 11, 8];
        s.extend(y.to_be_bytes());
        s.extend(x.to_be_bytes());
        s.push(c);
        s
    }

    #[test]
    fn declared_sizes_are_read_and_compared() {
        const J2K: &str = "1.2.840.10008.1.2.4.90";
        const JPEG: &str = "1.2.840.10008.1.2.4.70";
        let ok = j2k(64, 32, 1);
        assert!(check(J2K, [ok.as_slice()], 32, 64, 1).is_ok());
        let huge = j2k(9_044_032, 64, 1);
        let e = check(J2K, [huge.as_slice()], 64, 64, 1).unwrap_err();
        assert!(e.contains("9044032 × 64") && e.contains("64 × 64"), "{e}");
        // A frame continued in a second fragment: only the first is read.
        assert!(check(J2K, [ok.as_slice(), &[1, 2, 3][..]], 32, 64, 1).is_ok());
        // The same stream inside a JP2 file.
        let mut jp2 = vec![0, 0, 0, 12, b'j', b'P', b' ', b' ', 13, 10, 0x87, 10];
        jp2.extend(((ok.len() + 8) as u32).to_be_bytes());
        jp2.extend(b"jp2c");
        jp2.extend(&ok);
        assert!(check(J2K, [jp2.as_slice()], 32, 64, 1).is_ok());
        assert!(check(J2K, [jp2.as_slice()], 64, 64, 1).is_err());

        let ok = jpeg(640, 480, 1);
        assert!(check(JPEG, [ok.as_slice()], 480, 640, 1).is_ok());
        assert!(check(JPEG, [ok.as_slice()], 480, 640, 3).is_err());
        // A frame header the fragment does not hold whole: left to the
        // decoder, not refused here.
        assert!(check(JPEG, [&ok[..14]], 480, 640, 1).is_ok());
        // A continuation fragment that happens to start with SOC alone.
        assert!(check(J2K, [&[0xFF, 0x4F, 1, 2][..]], 32, 64, 1).is_ok());
        // Other syntaxes are not looked at.
        assert!(check("1.2.840.10008.1.2.5", [huge.as_slice()], 1, 1, 1).is_ok());
    }
}
