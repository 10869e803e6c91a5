//! 3D Slicer's segmentation file (`.seg.nrrd`): an NRRD label map whose
//! header carries the segments (`SegmentK_Name`, `_Color`, `_LabelValue`,
//! `_Layer` …). Slicer stores overlapping segments in layers, a first
//! "list" axis; UME's labels hold one id per voxel, so layers are merged
//! (segments get ids 1…n in file order, a later segment wins where two
//! overlap, and the overlap is reported). Written files have one layer and
//! the segment fields Slicer reads.

use super::nrrd;
use crate::volume::{DataType, LabelEntry, LabelTable, LabelVolume, Volume};
use std::collections::BTreeMap;
use std::path::Path;

/// Whether a name is a Slicer segmentation.
pub fn is_seg_nrrd(lower: &str) -> bool {
    lower.ends_with(".seg.nrrd")
}

/// One segment as the header describes it.
struct Segment {
    name: String,
    color: [u8; 3],
    layer: usize,
    value: u32,
}

fn segments(keys: &BTreeMap<String, String>) -> Result<Vec<Segment>, String> {
    let mut out = Vec::new();
    for k in 0.. {
        let get = |f: &str| keys.get(&format!("Segment{k}_{f}"));
        let Some(name) = get("Name").or(get("ID")) else {
            break;
        };
        let color = get("Color")
            .map(|c| {
                let v: Vec<f64> = c
                    .split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect();
                std::array::from_fn(|i| {
                    (v.get(i).copied().unwrap_or(0.5).clamp(0.0, 1.0) * 255.0).round() as u8
                })
            })
            .unwrap_or_else(|| crate::volume::palette(k as u16 + 1));
        let value = get("LabelValue")
            .map_or(Ok(1), |v| v.trim().parse::<u32>())
            .map_err(|_| format!("Segment{k}_LabelValue is not a whole number"))?;
        let layer = get("Layer")
            .map_or(Ok(0), |v| v.trim().parse::<usize>())
            .map_err(|_| format!("Segment{k}_Layer is not a whole number"))?;
        out.push(Segment {
            name: name.clone(),
            color,
            layer,
            value,
        });
        if out.len() > 4096 {
            return Err("more than 4096 segments".into());
        }
    }
    Ok(out)
}

/// Read a `.seg.nrrd`: the label map, its table, and notes (overlaps).
pub fn load(path: &Path) -> Result<(LabelVolume, LabelTable, Vec<String>), String> {
    let n = nrrd::read(path, true)?;
    let segs = segments(&n.keys)?;
    let (layers, dims) = match (n.list_first, n.sizes.as_slice()) {
        (true, [l, x, y, z]) => (*l, [*x, *y, *z]),
        (false, [x, y, z]) => (1, [*x, *y, *z]),
        (false, [x, y]) => (1, [*x, *y, 1]),
        _ => {
            return Err(format!(
                "sizes {:?}: a segmentation is 3D, with an optional first layer axis",
                n.sizes
            ));
        }
    };
    if segs.iter().any(|s| s.layer >= layers) {
        return Err(format!(
            "a segment names a layer beyond the file's {layers}"
        ));
    }
    let width = n.dtype.bytes_per_voxel();
    let value_at = |i: usize| -> u32 {
        let b = &n.voxels[i * width..(i + 1) * width];
        match n.dtype {
            DataType::U8 | DataType::I8 => u32::from(b[0]),
            DataType::U16 | DataType::I16 => u32::from(u16::from_le_bytes([b[0], b[1]])),
            _ => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        }
    };
    if !matches!(
        n.dtype,
        DataType::U8 | DataType::I8 | DataType::U16 | DataType::I16 | DataType::U32 | DataType::I32
    ) {
        return Err(format!(
            "{:?} voxels: a segmentation holds integers",
            n.dtype
        ));
    }
    // Single layer with ids that fit: keep the file's label values as ids.
    let keep_values = layers == 1
        && segs
            .iter()
            .all(|s| (1..=u32::from(u16::MAX)).contains(&s.value));
    let id_of = |k: usize, s: &Segment| {
        if keep_values {
            s.value as u16
        } else {
            k as u16 + 1
        }
    };
    let voxels = dims[0] * dims[1] * dims[2];
    let mut ids = vec![0u16; voxels];
    let mut overlap = 0usize;
    for layer in 0..layers {
        // Label value → id for this layer's segments, one pass over voxels.
        let lut: BTreeMap<u32, u16> = segs
            .iter()
            .enumerate()
            .filter(|(_, s)| s.layer == layer)
            .map(|(k, s)| (s.value, id_of(k, s)))
            .collect();
        if lut.is_empty() {
            continue;
        }
        for (v, out) in ids.iter_mut().enumerate() {
            if let Some(&id) = lut.get(&value_at(v * layers + layer)) {
                if *out != 0 && *out != id {
                    overlap += 1;
                }
                *out = id;
            }
        }
    }
    let mut notes = Vec::new();
    if overlap > 0 {
        notes.push(format!(
            "{overlap} voxels belong to more than one segment (Slicer layers); the later segment is kept"
        ));
    }
    if segs.is_empty() && layers == 1 {
        // An NRRD label map without segment fields: its values are the ids.
        for (v, out) in ids.iter_mut().enumerate() {
            *out =
                u16::try_from(value_at(v)).map_err(|_| "label values above 65535".to_string())?;
        }
    }
    let table = LabelTable {
        name: path
            .file_name()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default(),
        labels: segs
            .iter()
            .enumerate()
            .map(|(k, s)| LabelEntry {
                id: id_of(k, s),
                name: s.name.clone(),
                color: s.color,
            })
            .collect(),
    };
    let v = Volume::from_values(dims.to_vec(), &ids, n.geometry).map_err(|e| e.to_string())?;
    let labels = LabelVolume::from_volume(&v).map_err(|e| e.to_string())?;
    Ok((labels.compacted(), table, notes))
}

/// Write a 3D label map and its table as a single-layer `.seg.nrrd`, on
/// `geometry` (the image's), atomically.
pub fn save(
    labels: &LabelVolume,
    geometry: &crate::volume::Geometry,
    table: &LabelTable,
    path: &Path,
) -> Result<(), String> {
    if labels.frames > 1 {
        return Err("a .seg.nrrd holds one 3D frame; save a cine's labels as NIfTI".into());
    }
    let mut map = labels.compacted();
    map.geometry = geometry.clone();
    let v = map.to_volume();
    let present: Vec<u16> = {
        let counts = map.counts();
        (1..counts.len())
            .filter(|&i| counts[i] > 0)
            .filter_map(|i| u16::try_from(i).ok())
            .collect()
    };
    // Every named label, and any painted id the table does not name.
    let mut entries: Vec<LabelEntry> = table.labels.iter().filter(|l| l.id > 0).cloned().collect();
    for id in present {
        if !entries.iter().any(|e| e.id == id) {
            entries.push(LabelEntry {
                id,
                name: format!("Label {id}"),
                color: crate::volume::palette(id),
            });
        }
    }
    entries.sort_by_key(|e| e.id);
    let [nx, ny, nz] = v.dims;
    let mut keys = String::from(
        "Segmentation_MasterRepresentation:=Binary labelmap\n\
         Segmentation_ContainedRepresentationNames:=Binary labelmap|\n\
         Segmentation_ReferenceImageExtentOffset:=0 0 0\n",
    );
    for (k, e) in entries.iter().enumerate() {
        let c = e.color.map(|x| f64::from(x) / 255.0);
        keys.push_str(&format!(
            "Segment{k}_ID:=Segment_{id}\nSegment{k}_Name:={name}\nSegment{k}_NameAutoGenerated:=0\n\
             Segment{k}_Color:={:.6} {:.6} {:.6}\nSegment{k}_ColorAutoGenerated:=0\n\
             Segment{k}_LabelValue:={id}\nSegment{k}_Layer:=0\n\
             Segment{k}_Extent:=0 {} 0 {} 0 {}\nSegment{k}_Tags:=\n",
            c[0],
            c[1],
            c[2],
            nx.saturating_sub(1),
            ny.saturating_sub(1),
            nz.saturating_sub(1),
            id = e.id,
            name = e.name.replace('\n', " "),
        ));
    }
    nrrd::save_with(&v, path, &keys)
}
