//! Gzip inflate sized from the header: peek the first bytes with a small
//! streaming inflate, compute how many bytes the file must hold, allocate
//! that once, and inflate the whole member with libdeflate (about twice as
//! fast as streaming zlib-rs here). Anything libdeflate cannot finish
//! (multi-member files, damaged or short streams) goes through the streaming
//! decoder, which also tells how far the data got.

use super::LoadErrorKind;
use std::fs::File;
use std::io::Read;

/// Deflate's best case is about 1032:1, so no gzip stream of `n` bytes
/// inflates beyond this.
fn max_inflated(compressed: usize) -> usize {
    compressed.saturating_mul(1032).saturating_add(1 << 16)
}

/// Inflate a gzip file through a read-only memory map (the compressed bytes
/// stay in the page cache instead of a heap copy).
pub(super) fn inflate_file(
    file: &File,
    len: usize,
    needed: impl Fn(&[u8]) -> Result<usize, LoadErrorKind>,
) -> Result<Vec<u8>, LoadErrorKind> {
    if len < 18 {
        return Err(LoadErrorKind::Gzip(format!(
            "only {len} bytes, shorter than any gzip member"
        )));
    }
    // SAFETY: a private read-only mapping of a file we opened. The one hazard
    // of mapping is another process truncating the file while we read it;
    // every mmap-based reader accepts that, and we never write through it.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::Mmap::map(file) }?;
    inflate(&map, needed)
}

/// Inflate a gzip buffer into exactly what `needed` asks for (at least).
pub(super) fn inflate(
    compressed: &[u8],
    needed: impl Fn(&[u8]) -> Result<usize, LoadErrorKind>,
) -> Result<Vec<u8>, LoadErrorKind> {
    let mut head = Vec::with_capacity(540);
    let peek = flate2::read::GzDecoder::new(compressed)
        .take(540)
        .read_to_end(&mut head);
    if let Err(e) = peek {
        // Fewer bytes than the smallest header: the stream itself is broken.
        if head.len() < 348 {
            return Err(LoadErrorKind::Gzip(e.to_string()));
        }
    }
    let need = needed(&head)?;
    let max = max_inflated(compressed.len());
    if need > max {
        return Err(LoadErrorKind::ImpossibleSize {
            needed: need,
            compressed: compressed.len(),
            max,
        });
    }
    // ISIZE (last 4 bytes) is the inflated size mod 2^32: the smallest size
    // >= need that agrees with it, unless that is implausible.
    let tail: [u8; 4] = compressed[compressed.len() - 4..]
        .try_into()
        .unwrap_or([0; 4]);
    let isize = u32::from_le_bytes(tail);
    let mut cap = need + isize.wrapping_sub(need as u32) as usize;
    if cap > max {
        cap = need;
    }
    let mut out = vec![0u8; cap];
    let mut d = libdeflater::Decompressor::new();
    if let Ok(n) = d.gzip_decompress(compressed, &mut out)
        && n >= need
    {
        out.truncate(n);
        return Ok(out);
    }
    drop(out);
    stream(compressed, need)
}

/// Streaming fallback: handles multi-member files and reports how much of a
/// damaged stream was readable.
fn stream(compressed: &[u8], need: usize) -> Result<Vec<u8>, LoadErrorKind> {
    let mut out = Vec::with_capacity(need);
    let mut dec = flate2::read::MultiGzDecoder::new(compressed);
    match dec.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(e) if out.len() < need => Err(LoadErrorKind::Gzip(format!(
            "{e} after {} of the {need} bytes the header requires",
            out.len()
        ))),
        Err(_) => Ok(out), // all needed bytes arrived; trailing damage is ignored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut c = libdeflater::Compressor::new(libdeflater::CompressionLvl::default());
        let mut out = vec![0; c.gzip_compress_bound(data.len())];
        let n = c.gzip_compress(data, &mut out).unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn inflates_single_and_multi_member() {
        let a: Vec<u8> = (0..5000u32).map(|x| (x % 251) as u8).collect();
        let one = gz(&a);
        assert_eq!(inflate(&one, |_| Ok(a.len())).unwrap(), a);
        let two = [gz(&a[..1000]), gz(&a[1000..])].concat();
        assert_eq!(inflate(&two, |_| Ok(a.len())).unwrap(), a);
    }

    #[test]
    fn truncated_stream_reports_progress() {
        let a: Vec<u8> = (0..200_000u32)
            .map(|x| (x.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let z = gz(&a);
        let cut = &z[..z.len() / 2];
        let e = inflate(cut, |_| Ok(a.len())).unwrap_err().to_string();
        assert!(e.contains("of the 200000 bytes"), "{e}");
    }

    #[test]
    fn impossible_size_is_refused_before_allocating() {
        let z = gz(&[0u8; 600]);
        let e = inflate(&z, |_| Ok(1 << 40)).unwrap_err();
        assert!(matches!(e, LoadErrorKind::ImpossibleSize { .. }));
    }
}
