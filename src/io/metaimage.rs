//! MetaImage (`.mha`, or `.mhd` with a `.raw`/`.zraw` beside it), as ITK
//! writes it: `Offset`, `ElementSpacing` and `TransformMatrix` (the axes'
//! unit directions, one after another) in ITK's LPS world → RAS
//! `world_from_voxel`; raw or zlib data, either byte order; vector images
//! (`ElementNumberOfChannels`) as components, read and written.

use super::rawdata::{
    Encoding, assemble_vector, byte_count, data_file, decode, file_order_bytes, geometry, lps_axes,
    numbers,
};
use crate::volume::{DataType, SourceFormat, Volume};
use std::collections::BTreeMap;
use std::path::Path;

/// Whether a name is a MetaImage file.
pub fn is_meta_name(lower: &str) -> bool {
    lower.ends_with(".mha") || lower.ends_with(".mhd")
}

fn dtype_of(t: &str) -> Option<DataType> {
    Some(match t {
        "MET_CHAR" => DataType::I8,
        "MET_UCHAR" => DataType::U8,
        "MET_SHORT" => DataType::I16,
        "MET_USHORT" => DataType::U16,
        "MET_INT" | "MET_LONG" => DataType::I32,
        "MET_UINT" | "MET_ULONG" => DataType::U32,
        "MET_LONG_LONG" => DataType::I64,
        "MET_ULONG_LONG" => DataType::U64,
        "MET_FLOAT" => DataType::F32,
        "MET_DOUBLE" => DataType::F64,
        _ => return None,
    })
}

fn type_name(d: DataType) -> Option<&'static str> {
    Some(match d {
        DataType::I8 => "MET_CHAR",
        DataType::U8 => "MET_UCHAR",
        DataType::I16 => "MET_SHORT",
        DataType::U16 => "MET_USHORT",
        DataType::I32 => "MET_INT",
        DataType::U32 => "MET_UINT",
        DataType::I64 => "MET_LONG_LONG",
        DataType::U64 => "MET_ULONG_LONG",
        DataType::F32 => "MET_FLOAT",
        DataType::F64 => "MET_DOUBLE",
        DataType::Rgb24 | DataType::Complex64 => return None,
    })
}

/// The header's `Key = Value` fields up to `ElementDataFile` (the last
/// header line) and where the data starts.
fn header(bytes: &[u8]) -> Result<(BTreeMap<String, String>, usize), String> {
    let mut fields = BTreeMap::new();
    let mut pos = 0;
    while pos < bytes.len() && fields.len() < 200 {
        let end = bytes[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| pos + i);
        let line = String::from_utf8_lossy(&bytes[pos..end]).trim().to_string();
        pos = (end + 1).min(bytes.len());
        let Some((k, v)) = line.split_once('=') else {
            return Err(format!("header line {line:?} is not Key = Value"));
        };
        let key = k.trim().to_string();
        fields.insert(key.clone(), v.trim().to_string());
        if key == "ElementDataFile" {
            return Ok((fields, pos));
        }
    }
    Err("no ElementDataFile line: not a MetaImage header".into())
}

/// Read a MetaImage file.
pub fn load(path: &Path) -> Result<Volume, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let (f, data_at) = header(&bytes)?;
    let get = |k: &str| f.get(k).map(String::as_str);
    let ndims: usize = get("NDims")
        .and_then(|d| d.parse().ok())
        .ok_or("no valid NDims")?;
    let dims: Vec<usize> = numbers(get("DimSize").ok_or("no DimSize")?)?
        .into_iter()
        .map(|x| x as usize)
        .collect();
    if dims.len() != ndims || !(2..=4).contains(&ndims) || dims.contains(&0) {
        return Err(format!(
            "DimSize {dims:?} does not fit NDims {ndims} (2 to 4)"
        ));
    }
    let channels: usize = get("ElementNumberOfChannels")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    if channels == 0 {
        return Err("ElementNumberOfChannels 0".into());
    }
    let et = get("ElementType").ok_or("no ElementType")?;
    let dtype = dtype_of(et).ok_or(format!("ElementType {et} is not supported"))?;
    let spacing = get("ElementSpacing")
        .or(get("ElementSize"))
        .map(numbers)
        .transpose()?;
    let offset = get("Offset")
        .or(get("Position"))
        .or(get("Origin"))
        .map(numbers)
        .transpose()?;
    let matrix = get("TransformMatrix")
        .or(get("Rotation"))
        .or(get("Orientation"))
        .map(numbers)
        .transpose()?;
    let mut axes = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    let n = ndims.min(3);
    if let Some(m) = &matrix {
        if m.len() != ndims * ndims {
            return Err(format!(
                "TransformMatrix has {} numbers, NDims {ndims} needs {}",
                m.len(),
                ndims * ndims
            ));
        }
        for (a, axis) in axes.iter_mut().enumerate().take(n) {
            for r in 0..n {
                axis[r] = m[a * ndims + r];
            }
        }
    }
    if let Some(s) = &spacing {
        for (a, axis) in axes.iter_mut().enumerate().take(n) {
            let sp = s.get(a).copied().unwrap_or(1.0);
            for x in axis.iter_mut() {
                *x *= sp;
            }
        }
    }
    let mut origin = [0.0; 3];
    if let Some(o) = &offset {
        for (k, x) in o.iter().take(3).enumerate() {
            origin[k] = *x;
        }
    }
    let big = matches!(
        get("BinaryDataByteOrderMSB").or(get("ElementByteOrderMSB")),
        Some("True" | "true")
    );
    let compressed = matches!(get("CompressedData"), Some("True" | "true"));
    let encoding = if compressed {
        Encoding::Zlib
    } else {
        Encoding::Raw
    };
    let needed = byte_count(&[dims.as_slice(), &[channels]].concat(), dtype)?;
    let file = get("ElementDataFile").unwrap_or("LOCAL");
    let data = match file {
        "LOCAL" => bytes[data_at..].to_vec(),
        name => data_file(path, "ElementDataFile", name)?,
    };
    let voxels = decode(&data, needed, encoding, big, dtype)?;
    assemble_vector(
        &dims,
        channels,
        dtype,
        geometry(axes, origin, false),
        SourceFormat::MetaImage,
        voxels,
    )
}

/// Write a volume as a single-file `.mha` (zlib-compressed, LPS as ITK
/// expects), atomically.
pub fn save(v: &Volume, path: &Path) -> Result<(), String> {
    let t = type_name(v.dtype).ok_or(format!(
        "{:?} voxels cannot be written as MetaImage",
        v.dtype
    ))?;
    if !v.scaling.is_identity() {
        return Err("scaled values (slope/intercept) cannot be written as MetaImage".into());
    }
    let (axes, origin) = lps_axes(&v.geometry);
    let spacing: Vec<f64> = axes
        .iter()
        .map(|a| (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt())
        .collect();
    let four = v.frames > 1;
    let nd = if four { 4 } else { 3 };
    // Each axis's unit direction, one after another (ITK's order); a time
    // axis is its own unit axis.
    let (axes, spacing_of) = (&axes, &spacing);
    let matrix: Vec<f64> = (0..nd)
        .flat_map(|a| {
            (0..nd).map(move |r| match (axes.get(a), r < 3) {
                (Some(axis), true) => axis[r] / spacing_of[a].max(1e-12),
                _ if a == r => 1.0,
                _ => 0.0,
            })
        })
        .collect();
    let join = |v: &[f64]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut sp = spacing.clone();
    let mut org = origin.to_vec();
    if four {
        sp.push(v.geometry.time_step.unwrap_or(1.0));
        org.push(0.0);
    }
    let dims: Vec<String> = v
        .file_shape
        .iter()
        .take(nd)
        .map(ToString::to_string)
        .collect();
    // Compress first: ITK needs CompressedDataSize in the header.
    let c = v.components;
    let channels = if c > 1 {
        format!("ElementNumberOfChannels = {c}\n")
    } else {
        String::new()
    };
    let voxels = file_order_bytes(v);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    std::io::Write::write_all(&mut z, &voxels).map_err(|e| e.to_string())?;
    let data = z.finish().map_err(|e| e.to_string())?;
    let head = format!(
        "ObjectType = Image\nNDims = {nd}\nBinaryData = True\nBinaryDataByteOrderMSB = False\n\
         CompressedData = True\nCompressedDataSize = {}\nTransformMatrix = {}\nOffset = {}\n\
         AnatomicalOrientation = RAI\nElementSpacing = {}\nDimSize = {}\n{channels}\
         ElementType = {t}\nElementDataFile = LOCAL\n",
        data.len(),
        join(&matrix),
        join(&org),
        join(&sp),
        dims.join(" ")
    );
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&data);
    super::write_atomic(path, &bytes).map_err(|e| e.to_string())
}
