//! NRRD (`.nrrd`, or `.nhdr` with detached data), as 3D Slicer writes it:
//! `space` + `space directions` + `space origin` → RAS `world_from_voxel`
//! (LPS negated in x and y), raw or gzip data, either byte order; a first
//! non-spatial axis (vectors, RGB, complex) as components, read and
//! written; ITK's 2D files (`space dimension: 2`) in the z = 0 plane.
//! Reading refuses what it cannot place correctly (bzip2, file lists, a
//! segmentation's layers as an image) with the field named.

use super::rawdata::{
    Encoding, assemble_vector, byte_count, data_file, decode, file_order_bytes, geometry, lps_axes,
    numbers,
};
use crate::volume::{DataType, SourceFormat, Volume};
use std::collections::BTreeMap;
use std::path::Path;

/// Whether a name is an NRRD file.
pub fn is_nrrd_name(lower: &str) -> bool {
    lower.ends_with(".nrrd") || lower.ends_with(".nhdr")
}

fn dtype_of(t: &str) -> Option<DataType> {
    Some(match t.trim() {
        "signed char" | "int8" | "int8_t" => DataType::I8,
        "uchar" | "unsigned char" | "uint8" | "uint8_t" => DataType::U8,
        "short" | "short int" | "signed short" | "signed short int" | "int16" | "int16_t" => {
            DataType::I16
        }
        "ushort" | "unsigned short" | "unsigned short int" | "uint16" | "uint16_t" => DataType::U16,
        "int" | "signed int" | "int32" | "int32_t" => DataType::I32,
        "uint" | "unsigned int" | "uint32" | "uint32_t" => DataType::U32,
        "longlong" | "long long" | "int64" | "int64_t" => DataType::I64,
        "ulonglong" | "unsigned long long" | "uint64" | "uint64_t" => DataType::U64,
        "float" => DataType::F32,
        "double" => DataType::F64,
        _ => return None,
    })
}

fn type_name(d: DataType) -> Option<&'static str> {
    Some(match d {
        DataType::I8 => "int8",
        DataType::U8 => "uint8",
        DataType::I16 => "int16",
        DataType::U16 => "uint16",
        DataType::I32 => "int32",
        DataType::U32 => "uint32",
        DataType::I64 => "int64",
        DataType::U64 => "uint64",
        DataType::F32 => "float",
        DataType::F64 => "double",
        DataType::Rgb24 | DataType::Complex64 => return None,
    })
}

/// Whether an axis kind holds the values of one voxel (NRRD's kinds other
/// than the spatial and temporal ones and `???`/`none`).
fn is_component_kind(kind: &str) -> bool {
    matches!(
        kind,
        "list"
            | "point"
            | "vector"
            | "covariant-vector"
            | "normal"
            | "stub"
            | "scalar"
            | "complex"
            | "2-vector"
            | "3-color"
            | "RGB-color"
            | "HSV-color"
            | "XYZ-color"
            | "4-color"
            | "RGBA-color"
            | "3-vector"
            | "3-gradient"
            | "3-normal"
            | "4-vector"
            | "quaternion"
    ) || kind.starts_with("2D-")
        || kind.starts_with("3D-")
}

/// A vector like `(1.5,0,0)`; a 2-vector (`space dimension: 2`, as ITK
/// writes 2D images) lies in the z = 0 plane.
fn vector(text: &str) -> Result<[f64; 3], String> {
    let inner = text.trim().trim_start_matches('(').trim_end_matches(')');
    let v = numbers(&inner.replace(',', " "))?;
    match v[..] {
        [x, y] => Ok([x, y, 0.0]),
        [x, y, z] => Ok([x, y, z]),
        _ => Err(format!("{text:?} is not a 2- or 3-vector")),
    }
}

/// The header's fields (lower-case names), its `key:=value` pairs (case
/// kept: Slicer's segment metadata), and where the data starts.
type Header = (BTreeMap<String, String>, BTreeMap<String, String>, usize);

fn header(bytes: &[u8]) -> Result<Header, String> {
    if !bytes.starts_with(b"NRRD") {
        return Err("not an NRRD file (no NRRD magic)".into());
    }
    let mut fields = BTreeMap::new();
    let mut keys = BTreeMap::new();
    let mut pos = 0;
    let mut first = true;
    while pos < bytes.len() {
        let end = bytes[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| pos + i);
        let line = String::from_utf8_lossy(&bytes[pos..end]);
        let line = line.trim_end_matches('\r');
        pos = end + 1;
        if first {
            first = false;
            continue;
        }
        if line.is_empty() {
            return Ok((fields, keys, pos.min(bytes.len())));
        }
        if line.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = line.split_once(":=") {
            keys.insert(k.to_string(), v.to_string());
            if keys.len() > 100_000 {
                return Err("header has too many key/value pairs".into());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            fields.insert(k.trim().to_lowercase(), v.trim().to_string());
        }
        if fields.len() > 200 {
            return Err("header has too many fields".into());
        }
    }
    // A detached header may end without a blank line.
    Ok((fields, keys, bytes.len()))
}

/// An NRRD file's voxels and placement, before they become a volume.
pub(super) struct Nrrd {
    /// Axis sizes, fastest first (a layer axis included).
    pub sizes: Vec<usize>,
    /// Voxel type.
    pub dtype: DataType,
    /// Placement of the spatial axes.
    pub geometry: crate::volume::Geometry,
    /// Decoded voxels, little-endian.
    pub voxels: Vec<u8>,
    /// The `key:=value` pairs.
    pub keys: BTreeMap<String, String>,
    /// Whether the first axis is not spatial (vectors, segment layers).
    pub list_first: bool,
}

/// Read an NRRD file; a first non-spatial axis (`kinds: vector …`, RGB,
/// complex, list) holds the components of each voxel.
pub fn load(path: &Path) -> Result<Volume, String> {
    let n = read(path, false)?;
    let (components, dims) = match n.list_first {
        true => (n.sizes[0], &n.sizes[1..]),
        false => (1, &n.sizes[..]),
    };
    assemble_vector(
        dims,
        components,
        n.dtype,
        n.geometry,
        SourceFormat::Nrrd,
        n.voxels,
    )
}

/// Read an NRRD file's voxels, placement and key/value pairs; a first
/// non-spatial axis (segment layers) only when `list_ok`.
pub(super) fn read(path: &Path, list_ok: bool) -> Result<Nrrd, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let (f, keys, data_at) = header(&bytes)?;
    let get = |k: &str| f.get(k).map(String::as_str);
    let dtype = get("type")
        .ok_or("no type field")
        .map_err(str::to_string)
        .and_then(|t| dtype_of(t).ok_or(format!("type {t:?} is not supported")))?;
    let dim: usize = get("dimension")
        .and_then(|d| d.parse().ok())
        .ok_or("no valid dimension field")?;
    let sizes: Vec<usize> = numbers(get("sizes").ok_or("no sizes field")?)?
        .into_iter()
        .map(|x| x as usize)
        .collect();
    // A first axis of components: a kind that names them, or (for `???`,
    // `none` or a kind UME does not know) no space direction.
    let first_direction_none = get("space directions")
        .and_then(|d| d.split_whitespace().next())
        .is_some_and(|d| d == "none");
    let list_first = dim > 1
        && get("kinds").is_some_and(|kinds| {
            let first = kinds.split_whitespace().next().unwrap_or("");
            is_component_kind(first)
                || (!matches!(first, "domain" | "space" | "time") && first_direction_none)
        });
    let spatial = dim - usize::from(list_first);
    if sizes.len() != dim || !(1..=4).contains(&spatial) || sizes.contains(&0) {
        return Err(format!(
            "sizes {sizes:?} do not fit dimension {dim} (1 to 4 axes, and a first axis of components)"
        ));
    }
    let segmentation = keys.keys().any(|k| k.starts_with("Segment0_"));
    if list_first && segmentation && !list_ok {
        return Err(
            "a segmentation's segment layers are not an image: open it as labels (Open labels…, or --labels)"
                .into(),
        );
    }
    let encoding = match get("encoding").unwrap_or("raw") {
        "raw" => Encoding::Raw,
        "gzip" | "gz" => Encoding::Gzip,
        other => {
            return Err(format!(
                "encoding {other:?} is not supported (raw and gzip are)"
            ));
        }
    };
    let big = get("endian") == Some("big");
    // Without a named space (`space dimension` only, or bare `spacings`)
    // the axes are in ITK's physical space, which is LPS: read as ITK and
    // Slicer read them.
    let ras = match get("space") {
        None => false,
        Some("left-posterior-superior" | "LPS" | "left-posterior-superior-time" | "LPST") => false,
        Some(
            "right-anterior-superior"
            | "RAS"
            | "right-anterior-superior-time"
            | "RAST"
            | "scanner-xyz"
            | "3D-right-handed",
        ) => true,
        Some(other) => return Err(format!("space {other:?} is not supported")),
    };
    let mut axes = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    if let Some(dirs) = get("space directions") {
        let parts: Vec<&str> = dirs.split_whitespace().collect();
        let mut k = 0;
        for p in parts {
            if p == "none" {
                continue;
            }
            if k < 3 {
                axes[k] = vector(p)?;
            }
            k += 1;
        }
    } else if let Some(sp) = get("spacings") {
        for (k, s) in numbers(&sp.replace("nan", ""))?
            .into_iter()
            .take(3)
            .enumerate()
        {
            axes[k][k] = s;
        }
    }
    let origin = get("space origin")
        .map(vector)
        .transpose()?
        .unwrap_or([0.0; 3]);
    let needed = byte_count(&sizes, dtype)?;
    let data = match get("data file").or(get("datafile")) {
        None => bytes[data_at..].to_vec(),
        Some(name) => data_file(path, "data file", name)?,
    };
    let skip: usize = get("byte skip").and_then(|s| s.parse().ok()).unwrap_or(0);
    let data = data.get(skip..).unwrap_or(&[]);
    let voxels = decode(data, needed, encoding, big, dtype)?;
    Ok(Nrrd {
        sizes,
        dtype,
        geometry: geometry(axes, origin, ras),
        voxels,
        keys,
        list_first,
    })
}

/// Write a volume as NRRD (gzip-encoded when the name ends in `.nrrd` —
/// Slicer's default — LPS space, little-endian), atomically.
pub fn save(v: &Volume, path: &Path) -> Result<(), String> {
    save_with(v, path, "")
}

/// Write a volume as NRRD with extra `key:=value` lines in the header.
/// Components (vector data) go first, interleaved, on a `vector` axis.
pub(super) fn save_with(v: &Volume, path: &Path, keys: &str) -> Result<(), String> {
    let t = type_name(v.dtype).ok_or(format!("{:?} voxels cannot be written as NRRD", v.dtype))?;
    if !v.scaling.is_identity() {
        return Err("scaled values (slope/intercept) cannot be written as NRRD".into());
    }
    let (axes, origin) = lps_axes(&v.geometry);
    let fmt = |a: [f64; 3]| format!("({},{},{})", a[0], a[1], a[2]);
    let four = v.frames > 1;
    let vector = v.components > 1;
    let mut sizes: Vec<usize> = (0..3)
        .map(|k| v.file_shape.get(k).copied().unwrap_or(1))
        .collect();
    let mut directions = vec![fmt(axes[0]), fmt(axes[1]), fmt(axes[2])];
    let mut kinds = vec!["domain"; 3];
    if four {
        sizes.push(v.frames);
        directions.push("none".into());
        kinds.push("list");
    }
    if vector {
        sizes.insert(0, v.components);
        directions.insert(0, "none".into());
        kinds.insert(0, "vector");
    }
    let join = |v: &[String]| v.join(" ");
    let head = format!(
        "NRRD0004\n# Written by UME\ntype: {t}\ndimension: {}\n\
         space: left-posterior-superior\nsizes: {}\nspace directions: {}\nkinds: {}\n\
         endian: little\nencoding: gzip\nspace origin: {}\n{keys}\n",
        sizes.len(),
        join(&sizes.iter().map(ToString::to_string).collect::<Vec<_>>()),
        join(&directions),
        kinds.join(" "),
        fmt(origin)
    );
    let voxels = file_order_bytes(v);
    let mut bytes = head.into_bytes();
    let mut gz = flate2::write::GzEncoder::new(&mut bytes, flate2::Compression::new(6));
    std::io::Write::write_all(&mut gz, &voxels).map_err(|e| e.to_string())?;
    gz.finish().map_err(|e| e.to_string())?;
    super::write_atomic(path, &bytes).map_err(|e| e.to_string())
}
