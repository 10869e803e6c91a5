//! What one DICOM file says about its images, read without its pixel data:
//! the series it belongs to, the image size and pixel format, and per frame
//! the plane (position, orientation, spacing), the rescale and the time
//! point. Enhanced multi-frame files keep these per frame in functional
//! groups (per-frame first, then shared); RT dose grids in
//! GridFrameOffsetVector. Everything is in DICOM's LPS millimetres here;
//! the series planner turns it into RAS.

use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, OpenFileOptions};
use std::path::{Path, PathBuf};

/// One file's images.
#[derive(Debug, Clone)]
pub(super) struct FileInfo {
    pub path: PathBuf,
    pub series_uid: String,
    pub description: String,
    pub modality: String,
    pub series_number: Option<i64>,
    pub rows: usize,
    pub cols: usize,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub high_bit: u16,
    pub signed: bool,
    pub samples: u16,
    pub photometric: String,
    pub transfer_syntax: String,
    /// ImageType says LOCALIZER (scout views are set apart from series).
    pub localizer: bool,
    pub file_len: u64,
    pub frames: Vec<FrameInfo>,
}

/// One 2D image: a single-frame file, or one frame of a multi-frame file.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct FrameInfo {
    /// Frame index inside the file.
    pub index: u32,
    /// Row and column direction cosines (ImageOrientationPatient).
    pub orientation: Option<[f64; 6]>,
    /// Centre of the first pixel, LPS mm (ImagePositionPatient).
    pub position: Option<[f64; 3]>,
    /// PixelSpacing: between rows, then between columns.
    pub spacing: Option<[f64; 2]>,
    /// SpacingBetweenSlices, else SliceThickness (for one-slice series).
    pub thickness: Option<f64>,
    /// RescaleSlope, RescaleIntercept.
    pub rescale: (f64, f64),
    /// Time point: TemporalPositionIdentifier / TemporalPositionIndex, else
    /// the trigger time.
    pub temporal: Option<f64>,
    /// TriggerTime / NominalCardiacTriggerDelayTime, ms.
    pub trigger_ms: Option<f64>,
    /// InstanceNumber (only to order images that have no position).
    pub instance: i64,
}

/// A numeric attribute's values; values kept as bytes (VR UN, as some
/// converters write them) are parsed as the decimal strings they hold.
fn floats(obj: &InMemDicomObject, tag: dicom_object::Tag) -> Option<Vec<f64>> {
    let e = obj.get(tag)?;
    let v = if e.vr() == dicom_core::VR::UN {
        let b = e.to_bytes().ok()?;
        let s = std::str::from_utf8(&b).ok()?;
        s.trim_matches(|c: char| c == '\0' || c.is_whitespace())
            .split('\\')
            .map(|t| t.trim().parse::<f64>().ok())
            .collect::<Option<Vec<f64>>>()?
    } else {
        e.to_multi_float64().ok()?
    };
    Some(v).filter(|v| v.iter().all(|x| x.is_finite()))
}

fn float(obj: &InMemDicomObject, tag: dicom_object::Tag) -> Option<f64> {
    floats(obj, tag)?.first().copied()
}

fn int(obj: &InMemDicomObject, tag: dicom_object::Tag) -> Option<i64> {
    obj.get(tag)?.to_int::<i64>().ok()
}

fn text(obj: &InMemDicomObject, tag: dicom_object::Tag) -> String {
    let Some(e) = obj.get(tag) else {
        return String::new();
    };
    let s = if e.vr() == dicom_core::VR::UN {
        e.to_bytes()
            .map(|b| String::from_utf8_lossy(&b).to_string())
            .unwrap_or_default()
    } else {
        e.to_str().map(|s| s.to_string()).unwrap_or_default()
    };
    s.trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_string()
}

fn arr<const N: usize>(v: Option<Vec<f64>>) -> Option<[f64; N]> {
    v.and_then(|v| v.get(..N).and_then(|s| <[f64; N]>::try_from(s).ok()))
}

/// Row and column cosines that are (near) unit vectors; anything else is
/// treated as missing rather than making a degenerate affine.
fn cosines(v: Option<[f64; 6]>) -> Option<[f64; 6]> {
    let unit = |a: &[f64]| (a.iter().map(|x| x * x).sum::<f64>().sqrt() - 1.0).abs() < 0.01;
    v.filter(|o| unit(&o[..3]) && unit(&o[3..]))
}

/// Pixel spacing that is positive.
fn spacing(v: Option<[f64; 2]>) -> Option<[f64; 2]> {
    v.filter(|s| s.iter().all(|x| *x > 0.0))
}

/// The first item of a sequence attribute.
fn item(obj: &InMemDicomObject, seq: dicom_object::Tag) -> Option<&InMemDicomObject> {
    obj.get(seq)?.items()?.first()
}

/// An attribute nested in a functional group: the per-frame item first,
/// then the shared one.
fn grouped<T>(
    groups: [Option<&InMemDicomObject>; 2],
    seq: dicom_object::Tag,
    get: impl Fn(&InMemDicomObject) -> Option<T>,
) -> Option<T> {
    groups
        .into_iter()
        .flatten()
        .find_map(|g| item(g, seq).and_then(&get))
}

/// Whether a file starts like a DICOM Part 10 file ("DICM" after the
/// 128-byte preamble).
pub(super) fn has_magic(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 132];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head[128..] == b"DICM"
}

/// Parse a whole Part 10 file already in memory, after checking that its
/// declared lengths fit (see [`super::guard`]); with `header_only`, stop
/// before the pixel data.
pub(super) fn parse(
    bytes: &[u8],
    header_only: bool,
) -> Result<dicom_object::DefaultDicomObject, String> {
    super::guard::check(bytes)?;
    let mut o = OpenFileOptions::new().read_preamble(dicom_object::file::ReadPreamble::Always);
    if header_only {
        o = o.read_until(tags::PIXEL_DATA);
    }
    o.from_reader(bytes)
        .map_err(|e| format!("not a readable DICOM file: {e}"))
}

/// Read a file's header (everything before the pixel data).
pub(super) fn read(path: &Path) -> Result<FileInfo, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let file_len = bytes.len() as u64;
    let obj = parse(&bytes, true)?;
    let transfer_syntax = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_string();
    from_object(&obj, path, file_len, transfer_syntax)
}

/// The file's images from its parsed header.
pub(super) fn from_object(
    obj: &InMemDicomObject,
    path: &Path,
    file_len: u64,
    transfer_syntax: String,
) -> Result<FileInfo, String> {
    let rows = int(obj, tags::ROWS).ok_or("no Rows: not an image (no pixel data)")?;
    let cols = int(obj, tags::COLUMNS).ok_or("no Columns: not an image")?;
    if !(1..=65535).contains(&rows) || !(1..=65535).contains(&cols) {
        return Err(format!("image size {cols} × {rows} is not valid"));
    }
    let n_frames = int(obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1);
    // Each frame needs at least one byte of the file (even compressed).
    if n_frames as u64 > file_len {
        return Err(format!(
            "NumberOfFrames {n_frames} is more than a {file_len}-byte file can hold"
        ));
    }
    let bits_allocated = int(obj, tags::BITS_ALLOCATED).unwrap_or(16) as u16;
    let bits_stored = int(obj, tags::BITS_STORED).map_or(bits_allocated, |b| b as u16);
    let high_bit = int(obj, tags::HIGH_BIT).map_or(bits_stored.saturating_sub(1), |b| b as u16);
    let image_type = text(obj, tags::IMAGE_TYPE).to_uppercase();
    let per_frame = obj
        .get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .and_then(|e| e.items());
    let shared = item(obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
    // Plain (not enhanced) attributes, used where no functional group says.
    let base = FrameInfo {
        index: 0,
        orientation: cosines(arr(floats(obj, tags::IMAGE_ORIENTATION_PATIENT))),
        position: arr(floats(obj, tags::IMAGE_POSITION_PATIENT)),
        spacing: spacing(arr(floats(obj, tags::PIXEL_SPACING)))
            .or_else(|| spacing(arr(floats(obj, tags::IMAGER_PIXEL_SPACING)))),
        thickness: float(obj, tags::SPACING_BETWEEN_SLICES)
            .or_else(|| float(obj, tags::SLICE_THICKNESS))
            .filter(|t| *t > 0.0),
        rescale: (
            float(obj, tags::RESCALE_SLOPE)
                .or_else(|| float(obj, tags::DOSE_GRID_SCALING))
                .filter(|s| *s != 0.0)
                .unwrap_or(1.0),
            float(obj, tags::RESCALE_INTERCEPT).unwrap_or(0.0),
        ),
        temporal: float(obj, tags::TEMPORAL_POSITION_IDENTIFIER),
        trigger_ms: float(obj, tags::TRIGGER_TIME),
        instance: int(obj, tags::INSTANCE_NUMBER).unwrap_or(0),
    };
    let offsets = floats(obj, tags::GRID_FRAME_OFFSET_VECTOR);
    let frames = (0..n_frames as u32)
        .map(|f| {
            let mut fr = FrameInfo {
                index: f,
                ..base.clone()
            };
            let pf = per_frame.and_then(|items| items.get(f as usize));
            if pf.is_some() || shared.is_some() {
                enhanced(&mut fr, [pf, shared]);
            }
            if let (Some(off), Some(p), Some(o)) = (&offsets, fr.position, fr.orientation) {
                // RT dose: frames at offsets along the plane normal.
                if let Some(d) = off.get(f as usize) {
                    let n = super::series::normal(&o);
                    fr.position = Some(std::array::from_fn(|k| p[k] + d * n[k]));
                }
            }
            fr
        })
        .collect();
    Ok(FileInfo {
        path: path.to_path_buf(),
        series_uid: text(obj, tags::SERIES_INSTANCE_UID),
        description: text(obj, tags::SERIES_DESCRIPTION),
        modality: text(obj, tags::MODALITY),
        series_number: int(obj, tags::SERIES_NUMBER),
        rows: rows as usize,
        cols: cols as usize,
        bits_allocated,
        bits_stored,
        high_bit,
        signed: int(obj, tags::PIXEL_REPRESENTATION) == Some(1),
        samples: int(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1) as u16,
        photometric: text(obj, tags::PHOTOMETRIC_INTERPRETATION).to_uppercase(),
        transfer_syntax,
        localizer: image_type.contains("LOCALIZER"),
        file_len,
        frames,
    })
}

/// Fill a frame from an enhanced file's functional groups.
fn enhanced(fr: &mut FrameInfo, g: [Option<&InMemDicomObject>; 2]) {
    if let Some(p) = grouped(g, tags::PLANE_POSITION_SEQUENCE, |i| {
        arr(floats(i, tags::IMAGE_POSITION_PATIENT))
    }) {
        fr.position = Some(p);
    }
    if let Some(o) = grouped(g, tags::PLANE_ORIENTATION_SEQUENCE, |i| {
        cosines(arr(floats(i, tags::IMAGE_ORIENTATION_PATIENT)))
    }) {
        fr.orientation = Some(o);
    }
    if let Some(s) = grouped(g, tags::PIXEL_MEASURES_SEQUENCE, |i| {
        spacing(arr(floats(i, tags::PIXEL_SPACING)))
    }) {
        fr.spacing = Some(s);
    }
    if let Some(t) = grouped(g, tags::PIXEL_MEASURES_SEQUENCE, |i| {
        float(i, tags::SPACING_BETWEEN_SLICES).or_else(|| float(i, tags::SLICE_THICKNESS))
    }) {
        fr.thickness = Some(t).filter(|t| *t > 0.0);
    }
    if let Some(r) = grouped(g, tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE, |i| {
        Some((
            float(i, tags::RESCALE_SLOPE)
                .filter(|s| *s != 0.0)
                .unwrap_or(1.0),
            float(i, tags::RESCALE_INTERCEPT).unwrap_or(0.0),
        ))
    }) {
        fr.rescale = r;
    }
    if let Some(t) = grouped(g, tags::FRAME_CONTENT_SEQUENCE, |i| {
        float(i, tags::TEMPORAL_POSITION_INDEX)
    }) {
        fr.temporal = Some(t);
    }
    if let Some(t) = grouped(g, tags::CARDIAC_SYNCHRONIZATION_SEQUENCE, |i| {
        float(i, tags::NOMINAL_CARDIAC_TRIGGER_DELAY_TIME)
    }) {
        fr.trigger_ms = Some(t);
    }
}
