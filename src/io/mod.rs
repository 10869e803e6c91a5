//! Reading and writing image files: NIfTI-1, NIfTI-2 and Analyze 7.5, as
//! `.nii`, `.nii.gz` or `.hdr/.img` pairs (either half may be gzipped).
//!
//! Speed comes from whole-buffer inflate with libdeflate into a buffer sized
//! once from the header (the header is peeked with a tiny streaming inflate),
//! reading the compressed file through a memory map, and decoding several
//! files of a case on parallel threads. Safety comes from validating the
//! header against what the file can physically hold before allocating:
//! deflate cannot expand more than 1032:1, so a 1 kB `.nii.gz` that claims a
//! terabyte of voxels is refused without touching memory.

pub mod dicom;
mod gz;
pub mod header;
pub mod metaimage;
pub mod nrrd;
mod par;
mod rawdata;
pub mod segnrrd;
mod write;

pub use header::{DataLayout, Header, HeaderError};
pub use write::{
    SaveError, label_table_paths, save_label_map, save_label_table, save_labels, save_volume,
    write_atomic, write_atomic_parts,
};

use crate::volume::{LabelVolume, Volume, VolumeError, VoxelBytes};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A file could not be loaded; says which file and why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct LoadError {
    /// The file.
    pub path: PathBuf,
    /// The problem.
    pub kind: LoadErrorKind,
}

/// What went wrong loading a file.
#[derive(Debug, thiserror::Error)]
pub enum LoadErrorKind {
    /// The OS refused.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A directory was given where a file was expected.
    #[error("is a directory, not an image file (open it as a dataset folder)")]
    IsDirectory,
    /// The header is invalid.
    #[error("{0}")]
    Header(#[from] HeaderError),
    /// A `.hdr` without its `.img`.
    #[error("image file of the .hdr/.img pair not found (looked for {0})")]
    MissingImage(String),
    /// An `.img` without its `.hdr`.
    #[error("header file of the .hdr/.img pair not found (looked for {0})")]
    MissingHeader(String),
    /// A single-file name holding a pair header.
    #[error("header says the voxels are in a separate .img file, but this is a single file")]
    PairHeaderInSingleFile,
    /// Fewer voxel bytes than the header requires.
    #[error(
        "truncated: the header needs {needed} voxel bytes from offset {offset}, but only {available} are there"
    )]
    Truncated {
        /// Bytes required.
        needed: usize,
        /// Where voxels start.
        offset: usize,
        /// Bytes present after the offset.
        available: usize,
    },
    /// `vox_offset` beyond the data.
    #[error("vox_offset {offset} is past the end of the data ({len} bytes)")]
    OffsetPastEnd {
        /// The offset.
        offset: usize,
        /// Data length.
        len: usize,
    },
    /// The gzip stream is damaged.
    #[error("corrupt or truncated gzip stream: {0}")]
    Gzip(String),
    /// Header asks for more than the compressed file can expand to.
    #[error(
        "header needs {needed} bytes but a {compressed}-byte gzip file can hold at most {max}: truncated file or corrupt dims"
    )]
    ImpossibleSize {
        /// Bytes required.
        needed: usize,
        /// Compressed size.
        compressed: usize,
        /// Most it can inflate to.
        max: usize,
    },
    /// The voxels do not make a volume.
    #[error("{0}")]
    Volume(#[from] VolumeError),
    /// The voxels do not make a label map.
    #[error("{0}")]
    Labels(#[from] crate::volume::LabelError),
    /// An NRRD or MetaImage file UME cannot read (the field is named).
    #[error("{0}")]
    Format(String),
    /// A format UME cannot write to this name.
    #[error("cannot write this kind of file ({0}); use .nii, .nii.gz, .nrrd or .mha")]
    UnknownOutput(String),
}

fn err(path: &Path, kind: impl Into<LoadErrorKind>) -> LoadError {
    LoadError {
        path: path.to_path_buf(),
        kind: kind.into(),
    }
}

/// How a path names an image.
enum FileKind {
    /// `.nii` / `.nii.gz` / anything else: header and voxels in one file.
    Single,
    /// Header file of a pair, with the image file found beside it.
    Pair { header: PathBuf, image: PathBuf },
}

fn lower_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default()
}

/// The stem of a pair file name and whether it is the header half.
fn pair_stem(path: &Path) -> Option<(String, bool)> {
    let name = path.file_name()?.to_string_lossy().to_string();
    let lower = name.to_lowercase();
    for (ext, is_header) in [
        (".hdr.gz", true),
        (".hdr", true),
        (".img.gz", false),
        (".img", false),
    ] {
        if lower.ends_with(ext) {
            return Some((name[..name.len() - ext.len()].to_string(), is_header));
        }
    }
    None
}

fn classify(path: &Path) -> Result<FileKind, LoadError> {
    let Some((stem, is_header)) = pair_stem(path) else {
        return Ok(FileKind::Single);
    };
    let dir = path.parent().unwrap_or(Path::new(""));
    let candidates: [&str; 4] = if is_header {
        ["img", "img.gz", "IMG", "IMG.GZ"]
    } else {
        ["hdr", "hdr.gz", "HDR", "HDR.GZ"]
    };
    let found = candidates
        .iter()
        .map(|e| dir.join(format!("{stem}.{e}")))
        .find(|p| p.is_file());
    match (found, is_header) {
        (Some(image), true) => Ok(FileKind::Pair {
            header: path.to_path_buf(),
            image,
        }),
        (Some(header), false) => Ok(FileKind::Pair {
            header,
            image: path.to_path_buf(),
        }),
        (None, true) => Err(err(
            path,
            LoadErrorKind::MissingImage(format!("{stem}.img[.gz]")),
        )),
        (None, false) => Err(err(
            path,
            LoadErrorKind::MissingHeader(format!("{stem}.hdr[.gz]")),
        )),
    }
}

/// Whether a file name looks like an image UME reads.
pub fn is_image_file_name(path: &Path) -> bool {
    let n = lower_name(path);
    n.ends_with(".nii")
        || n.ends_with(".nii.gz")
        || n.ends_with(".hdr")
        || n.ends_with(".hdr.gz")
        || nrrd::is_nrrd_name(&n)
        || metaimage::is_meta_name(&n)
        || n.ends_with(".dcm")
}

/// Load an image file (any supported format: NIfTI-1/2, Analyze, NRRD,
/// MetaImage, a single DICOM file).
pub fn load(path: &Path) -> Result<Volume, LoadError> {
    if path.is_dir() {
        return Err(err(path, LoadErrorKind::IsDirectory));
    }
    let n = lower_name(path);
    if nrrd::is_nrrd_name(&n) {
        return nrrd::load(path).map_err(|e| err(path, LoadErrorKind::Format(e)));
    }
    if metaimage::is_meta_name(&n) {
        return metaimage::load(path).map_err(|e| err(path, LoadErrorKind::Format(e)));
    }
    if n.ends_with(".dcm") || dicom::is_dicom_file(path) {
        return dicom::load(path, None);
    }
    match classify(path)? {
        FileKind::Single => load_single(path),
        FileKind::Pair { header, image } => load_pair(&header, &image),
    }
}

/// Load an image file, or a DICOM folder or file with the series chosen by
/// its id (needed when there are several).
pub fn load_with(path: &Path, series: Option<&str>) -> Result<Volume, LoadError> {
    if (path.is_dir() && dicom::folder_has_dicom(path))
        || (series.is_some() && dicom::is_dicom_file(path))
    {
        return dicom::load(path, series);
    }
    load(path)
}

/// Write an image in the format its name asks for: `.nii`/`.nii.gz`
/// (NIfTI-1), `.nrrd` or `.mha`; atomically.
pub fn save_any(v: &Volume, path: &Path) -> Result<(), LoadError> {
    let n = lower_name(path);
    if n.ends_with(".nrrd") {
        nrrd::save(v, path).map_err(|e| err(path, LoadErrorKind::Format(e)))
    } else if n.ends_with(".mha") {
        metaimage::save(v, path).map_err(|e| err(path, LoadErrorKind::Format(e)))
    } else if n.ends_with(".nii") || n.ends_with(".nii.gz") {
        save_volume(v, path).map_err(|e| err(path, LoadErrorKind::Format(e.to_string())))
    } else {
        Err(err(path, LoadErrorKind::UnknownOutput(n)))
    }
}

/// Load a label map (integer ids) from an image file or a Slicer
/// `.seg.nrrd`.
pub fn load_labels(path: &Path) -> Result<LabelVolume, LoadError> {
    load_labels_and_table(path).map(|(l, _)| l)
}

/// Load a label map and, when the file names its labels (a `.seg.nrrd`'s
/// segments), their table.
pub fn load_labels_and_table(
    path: &Path,
) -> Result<(LabelVolume, Option<crate::volume::LabelTable>), LoadError> {
    if segnrrd::is_seg_nrrd(&lower_name(path)) {
        let (l, t, _) = segnrrd::load(path).map_err(|e| err(path, LoadErrorKind::Format(e)))?;
        return Ok((l, Some(t)));
    }
    let v = load(path)?;
    Ok((
        LabelVolume::from_volume(&v).map_err(|e| err(path, e))?,
        None,
    ))
}

/// Load several files on parallel threads (at most one per core), results
/// in the order given.
pub fn load_many(paths: &[PathBuf]) -> Vec<Result<Volume, LoadError>> {
    load_many_then(paths, |v| v)
}

/// Load several files on parallel threads and process each volume on the
/// thread that loaded it (e.g. statistics or window levels of every
/// modality of a case), results in the order given.
pub fn load_many_then<T: Send>(
    paths: &[PathBuf],
    then: impl Fn(Volume) -> T + Sync,
) -> Vec<Result<T, LoadError>> {
    par::par_map(paths.len(), "ume-load", |i| load(&paths[i]).map(&then))
}

/// Read a whole file: compressed files through a memory map (no heap copy
/// of the compressed bytes), inflated to the size `needed` computes from
/// the first decompressed bytes.
fn read_maybe_gz(
    path: &Path,
    needed: impl Fn(&[u8]) -> Result<usize, LoadErrorKind>,
) -> Result<Vec<u8>, LoadError> {
    let mut file = File::open(path).map_err(|e| err(path, e))?;
    let len = file.metadata().map_err(|e| err(path, e))?.len();
    let mut magic = [0u8; 2];
    let is_gz = len >= 2 && file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    if !is_gz {
        let mut head = vec![0u8; 540.min(len as usize)];
        let mut file = File::open(path).map_err(|e| err(path, e))?;
        file.read_exact(&mut head).map_err(|e| err(path, e))?;
        let need = needed(&head).map_err(|k| err(path, k))?;
        if (len as usize) < need {
            return Err(err(path, short_data(need, len as usize, &head)));
        }
        return std::fs::read(path).map_err(|e| err(path, e));
    }
    gz::inflate_file(&file, len as usize, needed).map_err(|k| err(path, k))
}

/// The error for data shorter than required, telling offset and voxel bytes
/// apart when the header can be parsed.
fn short_data(need_total: usize, have: usize, head: &[u8]) -> LoadErrorKind {
    let offset = header::parse(head)
        .ok()
        .and_then(|h| h.layout(&mut Vec::new()).ok())
        .map_or(0, |l| l.offset);
    if have < offset {
        LoadErrorKind::OffsetPastEnd { offset, len: have }
    } else {
        LoadErrorKind::Truncated {
            needed: need_total - offset,
            offset,
            available: have.saturating_sub(offset),
        }
    }
}

fn parse_layout(head: &[u8]) -> Result<(Header, DataLayout, Vec<String>), LoadErrorKind> {
    let h = header::parse(head)?;
    let mut warnings = Vec::new();
    let layout = h.layout(&mut warnings)?;
    Ok((h, layout, warnings))
}

/// Single-file NIfTI: header and voxels in one (maybe gzipped) file.
fn load_single(path: &Path) -> Result<Volume, LoadError> {
    let buf = read_maybe_gz(path, |head| {
        let (h, l, _) = parse_layout(head)?;
        if !h.single_file {
            return Err(LoadErrorKind::PairHeaderInSingleFile);
        }
        l.offset
            .checked_add(l.nbytes)
            .ok_or(LoadErrorKind::Header(HeaderError::Overflow(vec![])))
    })?;
    volume_from_buffer(path, buf)
}

/// Parse a whole single-file NIfTI already in memory (uncompressed or
/// gzipped). `path` only names the source in errors. Used by the fuzz
/// target and by tests.
pub fn load_from_bytes(path: &Path, bytes: &[u8]) -> Result<Volume, LoadError> {
    let buf = if bytes.starts_with(&[0x1f, 0x8b]) {
        gz::inflate(bytes, |head| {
            let (_, l, _) = parse_layout(head)?;
            Ok(l.offset.saturating_add(l.nbytes))
        })
        .map_err(|k| err(path, k))?
    } else {
        bytes.to_vec()
    };
    volume_from_buffer(path, buf)
}

fn volume_from_buffer(path: &Path, buf: Vec<u8>) -> Result<Volume, LoadError> {
    let (h, layout, warnings) = parse_layout(&buf).map_err(|k| err(path, k))?;
    if !h.single_file {
        return Err(err(path, LoadErrorKind::PairHeaderInSingleFile));
    }
    assemble(path, &h, layout, warnings, buf)
}

/// Check the voxel span, fix the byte order and build the volume; errors
/// name `data_path`, the file holding the voxels.
fn assemble(
    data_path: &Path,
    h: &Header,
    layout: DataLayout,
    mut warnings: Vec<String>,
    mut buf: Vec<u8>,
) -> Result<Volume, LoadError> {
    check_span(data_path, &layout, buf.len())?;
    swap_to_le(h, &layout, &mut buf);
    let (geometry, gw) = h.geometry(&layout.shape);
    warnings.extend(gw);
    let mut v = Volume::new(
        layout.shape,
        layout.dtype,
        h.scaling(),
        geometry,
        h.format,
        VoxelBytes::new(buf, layout.offset, layout.nbytes),
    )
    .map_err(|e| err(data_path, e))?;
    v.warnings = warnings;
    Ok(v)
}

fn check_span(path: &Path, layout: &DataLayout, len: usize) -> Result<(), LoadError> {
    if layout.offset > len {
        return Err(err(
            path,
            LoadErrorKind::OffsetPastEnd {
                offset: layout.offset,
                len,
            },
        ));
    }
    if len - layout.offset < layout.nbytes {
        return Err(err(
            path,
            LoadErrorKind::Truncated {
                needed: layout.nbytes,
                offset: layout.offset,
                available: len - layout.offset,
            },
        ));
    }
    Ok(())
}

/// Byte-swap big-endian voxels in place so storage is always little-endian.
fn swap_to_le(h: &Header, layout: &DataLayout, buf: &mut [u8]) {
    let unit = layout.dtype.swap_unit();
    if h.big_endian && unit > 1 {
        buf[layout.offset..layout.offset + layout.nbytes]
            .chunks_exact_mut(unit)
            .for_each(<[u8]>::reverse);
    }
}

/// A `.hdr/.img` pair (NIfTI-1/2 `ni1`/`ni2` or Analyze 7.5).
fn load_pair(header_path: &Path, image_path: &Path) -> Result<Volume, LoadError> {
    let head = read_maybe_gz(header_path, |head| {
        let h = header::parse(head)?;
        Ok(h.sizeof_hdr)
    })?;
    let (h, layout, warnings) = parse_layout(&head).map_err(|k| err(header_path, k))?;
    let need = layout.offset + layout.nbytes;
    let buf = read_maybe_gz(image_path, |_| Ok(need))?;
    assemble(image_path, &h, layout, warnings, buf)
}

/// Read just the header of a file (for quick listings).
pub fn read_header(path: &Path) -> Result<Header, LoadError> {
    if path.is_dir() {
        return Err(err(path, LoadErrorKind::IsDirectory));
    }
    let header_path = match classify(path)? {
        FileKind::Single => path.to_path_buf(),
        FileKind::Pair { header, .. } => header,
    };
    let file = File::open(&header_path).map_err(|e| err(&header_path, e))?;
    let mut head = Vec::with_capacity(540);
    let mut magic = [0u8; 2];
    (&file)
        .read_exact(&mut magic)
        .map_err(|e| err(&header_path, e))?;
    let file = File::open(&header_path).map_err(|e| err(&header_path, e))?;
    if magic == [0x1f, 0x8b] {
        flate2::read::MultiGzDecoder::new(file)
            .take(540)
            .read_to_end(&mut head)
            .map_err(|e| err(&header_path, LoadErrorKind::Gzip(e.to_string())))?;
    } else {
        file.take(540)
            .read_to_end(&mut head)
            .map_err(|e| err(&header_path, e))?;
    }
    header::parse(&head).map_err(|e| err(&header_path, e))
}
