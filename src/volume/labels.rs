//! Label maps and label tables.
//!
//! A `LabelVolume` is an integer map on the same grid as an image (u8 when
//! every id fits, else u16), with one value per voxel per frame. A
//! `LabelTable` names ids and gives them colours; the shipped tables live in
//! `assets/` and are compiled in so the binary needs no data folder.

use super::{DataType, Geometry, Volume};
use serde::{Deserialize, Serialize};

/// Errors turning an image into labels or reading a label table.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    /// Label images must hold integers.
    #[error("label image has {0} voxels, which cannot hold label ids (need an integer type)")]
    NotInteger(DataType),
    /// Ids must lie in 0..=65535.
    #[error("label value {value} at voxel {index} is not an id in 0..=65535")]
    OutOfRange {
        /// Offending value.
        value: f64,
        /// Its flat index.
        index: usize,
    },
    /// A label table did not parse.
    #[error("label table: {0}")]
    Table(#[from] serde_json::Error),
    /// A line of an ITK-SNAP label description file did not parse.
    #[error(
        "ITK-SNAP label description line {line}: expected IDX R G B A VIS MSH \"LABEL\", found {text:?}"
    )]
    ItkSnap {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// No built-in table by that name.
    #[error("no built-in label table named {0:?} (known: totalseg, brats, brats2023, acdc)")]
    UnknownTable(String),
}

/// Label ids per voxel.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelData {
    /// Ids up to 255.
    U8(Vec<u8>),
    /// Ids up to 65535.
    U16(Vec<u16>),
}

/// A label map on an image grid.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelVolume {
    /// Spatial size `[nx, ny, nz]`.
    pub dims: [usize; 3],
    /// Frames (1 for a 3D label map).
    pub frames: usize,
    /// Placement (must match the image it labels).
    pub geometry: Geometry,
    /// The ids, file order.
    pub data: LabelData,
}

impl LabelVolume {
    /// An all-background label map.
    pub fn zeros(dims: [usize; 3], frames: usize, geometry: Geometry) -> LabelVolume {
        LabelVolume {
            dims,
            frames,
            geometry,
            data: LabelData::U8(vec![0; dims[0] * dims[1] * dims[2] * frames]),
        }
    }

    /// Read ids from an integer image (scaling applied; values must be
    /// integral ids in 0..=65535).
    pub fn from_volume(v: &Volume) -> Result<LabelVolume, LabelError> {
        if v.dtype.is_float() || v.dtype == DataType::Rgb24 {
            // Float label files exist in the wild; accept them only when every
            // value is an integral id.
            if v.dtype == DataType::Rgb24 || v.dtype == DataType::Complex64 {
                return Err(LabelError::NotInteger(v.dtype));
            }
        }
        let n = v.voxels_per_frame() * v.frames;
        let mut ids = Vec::with_capacity(n);
        let mut max = 0u16;
        let bytes = &v.raw_bytes()[..n * v.dtype.bytes_per_voxel()];
        let s = v.scaling;
        let mut bad = None;
        let mut index = 0usize;
        v.dtype.for_each_f64(bytes, |raw| {
            let x = s.apply(raw);
            if bad.is_none() && !((0.0..=65535.0).contains(&x) && x.fract() == 0.0) {
                bad = Some((x, index));
            }
            let id = x as u16;
            max = max.max(id);
            ids.push(id);
            index += 1;
        });
        if let Some((value, index)) = bad {
            return Err(LabelError::OutOfRange { value, index });
        }
        let data = if max <= 255 {
            LabelData::U8(ids.iter().map(|&x| x as u8).collect())
        } else {
            LabelData::U16(ids)
        };
        Ok(LabelVolume {
            dims: v.dims,
            frames: v.frames,
            geometry: v.geometry.clone(),
            data,
        })
    }

    /// Number of voxels (all frames).
    pub fn len(&self) -> usize {
        match &self.data {
            LabelData::U8(d) => d.len(),
            LabelData::U16(d) => d.len(),
        }
    }

    /// Whether the map has no voxels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Id at a flat index.
    #[inline]
    pub fn get(&self, flat: usize) -> u16 {
        match &self.data {
            LabelData::U8(d) => u16::from(d[flat]),
            LabelData::U16(d) => d[flat],
        }
    }

    /// Set the id at a flat index, widening to u16 storage when needed.
    pub fn set(&mut self, flat: usize, id: u16) {
        if let LabelData::U8(d) = &mut self.data {
            if let Ok(small) = u8::try_from(id) {
                d[flat] = small;
                return;
            }
            let wide = d.iter().map(|&x| u16::from(x)).collect();
            self.data = LabelData::U16(wide);
        }
        if let LabelData::U16(d) = &mut self.data {
            d[flat] = id;
        }
    }

    /// Voxels in one frame.
    pub fn frame_len(&self) -> usize {
        self.dims[0] * self.dims[1] * self.dims[2]
    }

    /// Flat index of the first voxel of frame `t` (clamped to the last
    /// frame, so 3D maps serve every frame).
    pub fn frame_offset(&self, t: usize) -> usize {
        self.frame_len() * t.min(self.frames.saturating_sub(1))
    }

    /// Frame `t` as a 3D label map (a copy of that frame only).
    pub fn frame(&self, t: usize) -> LabelVolume {
        let r = self.frame_offset(t)..self.frame_offset(t) + self.frame_len();
        LabelVolume {
            dims: self.dims,
            frames: 1,
            geometry: self.geometry.clone(),
            data: match &self.data {
                LabelData::U8(d) => LabelData::U8(d[r].to_vec()),
                LabelData::U16(d) => LabelData::U16(d[r].to_vec()),
            },
        }
    }

    /// Voxel count per id (index = id), over all frames.
    pub fn counts(&self) -> Vec<usize> {
        self.count_range(0..self.len())
    }

    /// Voxel count per id in frame `t`.
    pub fn frame_counts(&self, t: usize) -> Vec<usize> {
        let start = self.frame_offset(t);
        self.count_range(start..start + self.frame_len())
    }

    fn count_range(&self, r: std::ops::Range<usize>) -> Vec<usize> {
        let mut counts = vec![0usize; 256];
        match &self.data {
            LabelData::U8(d) => d[r].iter().for_each(|&x| counts[usize::from(x)] += 1),
            LabelData::U16(d) => {
                counts.resize(65536, 0);
                d[r].iter().for_each(|&x| counts[usize::from(x)] += 1);
            }
        }
        while counts.len() > 1 && counts.last() == Some(&0) {
            counts.pop();
        }
        counts
    }

    /// The same map stored in the smallest integer type that holds its ids
    /// (u8 when every id is at most 255).
    pub fn compacted(&self) -> LabelVolume {
        match &self.data {
            LabelData::U16(d) if d.iter().all(|&x| x <= 255) => LabelVolume {
                data: LabelData::U8(d.iter().map(|&x| x as u8).collect()),
                ..self.clone()
            },
            _ => self.clone(),
        }
    }

    /// As a volume (for writing), u8 or u16.
    pub fn to_volume(&self) -> Volume {
        let mut shape = self.dims.to_vec();
        if self.frames > 1 {
            shape.push(self.frames);
        }
        let v = match &self.data {
            LabelData::U8(d) => Volume::from_values(shape, d, self.geometry.clone()),
            LabelData::U16(d) => Volume::from_values(shape, d, self.geometry.clone()),
        };
        v.expect("label data length matches its dims")
    }
}

/// One named label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelEntry {
    /// Voxel value.
    pub id: u16,
    /// Structure name (e.g. "liver", "LV").
    pub name: String,
    /// Display colour, sRGB.
    pub color: [u8; 3],
}

/// Names and colours of label ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LabelTable {
    /// What the table is (e.g. "ACDC cardiac").
    pub name: String,
    /// The labels, background excluded.
    pub labels: Vec<LabelEntry>,
}

impl LabelTable {
    /// A built-in table: "totalseg" (TotalSegmentator v2, 117 classes),
    /// "brats" (1/2/4), "brats2023" (1/2/3), "acdc" (1 RV, 2 MYO, 3 LV).
    pub fn builtin(name: &str) -> Result<LabelTable, LabelError> {
        let text = match name {
            "totalseg" => include_str!("../../assets/labels_totalseg.json"),
            "brats" => include_str!("../../assets/labels_brats.json"),
            "brats2023" => include_str!("../../assets/labels_brats2023.json"),
            "acdc" => include_str!("../../assets/labels_acdc.json"),
            other => return Err(LabelError::UnknownTable(other.to_string())),
        };
        Ok(serde_json::from_str(text)?)
    }

    /// Parse a table from JSON text.
    pub fn from_json(text: &str) -> Result<LabelTable, LabelError> {
        Ok(serde_json::from_str(text)?)
    }

    /// Name of an id, if listed.
    pub fn name_of(&self, id: u16) -> Option<&str> {
        self.labels
            .iter()
            .find(|l| l.id == id)
            .map(|l| l.name.as_str())
    }

    /// The table as an ITK-SNAP label description file (`IDX R G B A VIS
    /// MSH "LABEL"`, background first as ITK-SNAP writes it).
    pub fn to_itksnap(&self) -> String {
        let mut out = String::from(
            "################################################\n\
             # ITK-SnAP Label Description File\n\
             # File format:\n\
             # IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL\n\
             # Fields:\n\
             #    IDX:   Zero-based index\n\
             #    -R-:   Red color component (0..255)\n\
             #    -G-:   Green color component (0..255)\n\
             #    -B-:   Blue color component (0..255)\n\
             #    -A-:   Label transparency (0.00 .. 1.00)\n\
             #    VIS:   Label visibility (0 or 1)\n\
             #    MSH:   Label mesh visibility (0 or 1)\n\
             #  LABEL:   Label description\n\
             ################################################\n",
        );
        out.push_str("    0     0    0    0        0  0  0    \"Clear Label\"\n");
        for l in &self.labels {
            let [r, g, b] = l.color;
            let name = l.name.replace('"', "'");
            out.push_str(&format!(
                "{:>5} {r:>5} {g:>4} {b:>4}        1  1  1    \"{name}\"\n",
                l.id
            ));
        }
        out
    }

    /// Parse an ITK-SNAP label description file (id 0, "Clear Label", is
    /// background and left out).
    pub fn from_itksnap(text: &str) -> Result<LabelTable, LabelError> {
        let mut labels = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || LabelError::ItkSnap {
                line: n + 1,
                text: line.to_string(),
            };
            let (fields, name) = line.split_once('"').ok_or_else(bad)?;
            let name = name.trim_end().strip_suffix('"').ok_or_else(bad)?;
            let f: Vec<&str> = fields.split_whitespace().collect();
            if f.len() != 7 {
                return Err(bad());
            }
            let id: u16 = f[0].parse().map_err(|_| bad())?;
            let mut color = [0u8; 3];
            for (c, t) in color.iter_mut().zip(&f[1..4]) {
                *c = t.parse().map_err(|_| bad())?;
            }
            f[4].parse::<f64>().map_err(|_| bad())?;
            if id != 0 {
                labels.push(LabelEntry {
                    id,
                    name: name.to_string(),
                    color,
                });
            }
        }
        Ok(LabelTable {
            name: "ITK-SNAP labels".into(),
            labels,
        })
    }

    /// Id of a name, if listed.
    pub fn id_of(&self, name: &str) -> Option<u16> {
        self.labels.iter().find(|l| l.name == name).map(|l| l.id)
    }

    /// Names and colours for predicted ids: the built-in table that knows
    /// all of them (BraTS, TotalSegmentator, ACDC), narrowed to them, when
    /// there are at least two; else "label N".
    pub fn for_ids(ids: &[u16]) -> LabelTable {
        // One id fits every table ("1" is BraTS's necrotic core and ACDC's
        // RV alike): a single-label model (a brain mask) gets a generic name.
        let named = ids.iter().filter(|&&id| id != 0).count() >= 2;
        ["brats", "totalseg", "acdc"]
            .iter()
            .filter(|_| named)
            .filter_map(|name| LabelTable::builtin(name).ok())
            .find(|t| ids.iter().all(|&id| t.name_of(id).is_some()))
            .map(|mut t| {
                t.labels.retain(|l| ids.contains(&l.id));
                t
            })
            .unwrap_or_else(|| LabelTable::generic(ids.iter().copied()))
    }

    /// A table naming ids 1..=max as "label N" (for label files with no table).
    pub fn generic(ids: impl IntoIterator<Item = u16>) -> LabelTable {
        LabelTable {
            name: "labels".into(),
            labels: ids
                .into_iter()
                .filter(|&id| id != 0)
                .map(|id| LabelEntry {
                    id,
                    name: format!("label {id}"),
                    color: palette(id),
                })
                .collect(),
        }
    }
}

/// A distinct, stable colour for an id (golden-ratio hue walk).
pub fn palette(id: u16) -> [u8; 3] {
    let h = (f64::from(id) * 0.618_033_988_749_895).fract() * 6.0;
    let (s, v) = (0.7, 0.95);
    let c = v * s;
    let x = c * (1.0 - ((h % 2.0) - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    [r, g, b].map(|u| ((u + m) * 255.0).round() as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_tables() {
        let ts = LabelTable::builtin("totalseg").unwrap();
        assert_eq!(ts.labels.len(), 117);
        assert_eq!(ts.id_of("liver"), Some(5));
        assert_eq!(ts.id_of("costal_cartilages"), Some(117));
        assert_eq!(
            LabelTable::builtin("brats").unwrap().name_of(4),
            Some("enhancing_tumor")
        );
        assert_eq!(
            LabelTable::builtin("brats2023").unwrap().name_of(3),
            Some("enhancing_tumor")
        );
        let acdc = LabelTable::builtin("acdc").unwrap();
        assert_eq!(
            (acdc.name_of(1), acdc.name_of(2), acdc.name_of(3)),
            (Some("RV"), Some("MYO"), Some("LV"))
        );
        assert!(LabelTable::builtin("nope").is_err());
        // Predicted ids get a built-in table's names when it knows them
        // all, but one id alone is no evidence (a brain mask's 1 is not
        // BraTS's necrotic core).
        assert_eq!(
            LabelTable::for_ids(&[1, 2, 4]).name_of(4),
            Some("enhancing_tumor")
        );
        assert_eq!(LabelTable::for_ids(&[1]).name_of(1), Some("label 1"));
    }

    #[test]
    fn labels_from_volume_widen_and_reject() {
        let v = Volume::from_values(vec![3], &[0i32, 2, 300], Geometry::identity()).unwrap();
        let l = LabelVolume::from_volume(&v).unwrap();
        assert!(matches!(l.data, LabelData::U16(_)));
        assert_eq!(l.get(2), 300);
        let bad = Volume::from_values(vec![2], &[0.0f32, 1.5], Geometry::identity()).unwrap();
        assert!(
            LabelVolume::from_volume(&bad)
                .unwrap_err()
                .to_string()
                .contains("1.5")
        );
        let mut l8 = LabelVolume::zeros([2, 1, 1], 1, Geometry::identity());
        l8.set(1, 1000);
        assert_eq!((l8.get(0), l8.get(1)), (0, 1000));
        assert_eq!(l8.counts()[1000], 1);
        let mut four_d = LabelVolume::zeros([2, 1, 1], 3, Geometry::identity());
        four_d.set(2 * 2 + 1, 5); // frame 2, voxel 1
        assert_eq!(four_d.frame(2).data, LabelData::U8(vec![0, 5]));
        assert_eq!(
            four_d.frame(9).data,
            LabelData::U8(vec![0, 5]),
            "clamped to the last frame"
        );
        assert_eq!(four_d.frame_counts(2), vec![1, 0, 0, 0, 0, 1]);
        assert_eq!(four_d.frame_counts(0), vec![2]);
    }
}
