//! CT torso phantom in the TotalSegmentator layout: air, skin fat, muscle
//! wall and soft tissue in Hounsfield units, with lungs split into the five
//! lobes by oblique fissures, heart, aorta, liver, spleen, kidneys (in perirenal fat), spinal
//! cord and thoracolumbar vertebrae (cortical shell, cancellous core), each
//! named exactly as TotalSegmentator v2 names them. Written as `ct.nii.gz`
//! plus one binary mask per structure for all 117 v2 classes (absent ones
//! empty), as TotalSegmentator ships them. Even cases are stored LPS, odd
//! cases RAS.

use super::rng::{Rng, gauss, mix};
use super::{PhantomError, Size, mkdir, sample_grid, world};
use crate::io::{save_labels, save_volume};
use crate::volume::{Geometry, LabelData, LabelTable, LabelVolume, Volume};
use std::path::{Path, PathBuf};

/// Vertebrae modelled, top to bottom.
const VERTEBRAE: [&str; 13] = [
    "vertebrae_T5",
    "vertebrae_T6",
    "vertebrae_T7",
    "vertebrae_T8",
    "vertebrae_T9",
    "vertebrae_T10",
    "vertebrae_T11",
    "vertebrae_T12",
    "vertebrae_L1",
    "vertebrae_L2",
    "vertebrae_L3",
    "vertebrae_L4",
    "vertebrae_L5",
];

/// One generated CT case.
#[derive(Debug, Clone)]
pub struct TotalSegPhantom {
    /// Case folder name, e.g. "s0001".
    pub id: String,
    /// CT in HU, int16.
    pub ct: Volume,
    /// All structures as one label map with TotalSegmentator v2 ids.
    pub labels: LabelVolume,
    /// The v2 label table.
    pub table: LabelTable,
}

struct Ellipsoid {
    c: [f64; 3],
    r: [f64; 3],
}

impl Ellipsoid {
    fn inside(&self, p: [f64; 3]) -> bool {
        self.inside_grown(p, 0.0)
    }

    /// Inside the ellipsoid with every radius grown by `mm`.
    fn inside_grown(&self, p: [f64; 3], mm: f64) -> bool {
        (0..3)
            .map(|a| ((p[a] - self.c[a]) / (self.r[a] + mm)).powi(2))
            .sum::<f64>()
            < 1.0
    }
}

/// Thickness of the perirenal fat around each kidney, mm.
const PERIRENAL_FAT_MM: f64 = 7.0;

struct Torso {
    jitter: [f64; 3],
    scale: f64,
    liver: Ellipsoid,
    spleen: Ellipsoid,
    kidney_r: Ellipsoid,
    kidney_l: Ellipsoid,
    heart: Ellipsoid,
    lung_r: Ellipsoid,
    lung_l: Ellipsoid,
}

struct Ids {
    liver: u16,
    spleen: u16,
    kidney_r: u16,
    kidney_l: u16,
    heart: u16,
    aorta: u16,
    cord: u16,
    lobes: [u16; 5],
    vertebrae: [u16; 13],
}

impl Ids {
    fn new(t: &LabelTable) -> Ids {
        let id = |n: &str| {
            t.id_of(n)
                .expect("TotalSegmentator table names every phantom structure")
        };
        Ids {
            liver: id("liver"),
            spleen: id("spleen"),
            kidney_r: id("kidney_right"),
            kidney_l: id("kidney_left"),
            heart: id("heart"),
            aorta: id("aorta"),
            cord: id("spinal_cord"),
            lobes: [
                id("lung_upper_lobe_left"),
                id("lung_lower_lobe_left"),
                id("lung_upper_lobe_right"),
                id("lung_middle_lobe_right"),
                id("lung_lower_lobe_right"),
            ],
            vertebrae: VERTEBRAE.map(id),
        }
    }
}

impl Torso {
    fn new(rng: &mut Rng) -> Torso {
        let mut j = || rng.range(-6.0, 6.0);
        let jitter = [j(), j(), j()];
        let scale = rng.range(0.92, 1.08);
        let e = |c: [f64; 3], r: [f64; 3]| Ellipsoid {
            c,
            r: r.map(|x| x * scale),
        };
        // RAS+: +x is the patient's right, +y anterior, +z superior.
        Torso {
            jitter,
            scale,
            liver: e([62.0, 15.0, -25.0], [78.0, 70.0, 52.0]),
            spleen: e([-82.0, -25.0, -15.0], [28.0, 42.0, 48.0]),
            kidney_r: e([62.0, -55.0, -85.0], [24.0, 24.0, 48.0]),
            kidney_l: e([-62.0, -55.0, -75.0], [24.0, 24.0, 48.0]),
            heart: e([-15.0, 30.0, 65.0], [52.0, 42.0, 48.0]),
            lung_r: e([72.0, -5.0, 105.0], [52.0, 72.0, 90.0]),
            lung_l: e([-78.0, -5.0, 105.0], [48.0, 72.0, 90.0]),
        }
    }

    /// (label id, HU before noise) at world position `q`.
    fn classify(&self, q: [f64; 3], ids: &Ids) -> (u16, f64) {
        let p = [
            q[0] - self.jitter[0],
            q[1] - self.jitter[1],
            q[2] - self.jitter[2],
        ];
        let body =
            (p[0] / (170.0 * self.scale)).powi(2) + ((p[1] + 10.0) / (125.0 * self.scale)).powi(2);
        if body >= 1.0 || p[2].abs() > 200.0 {
            return (0, -1000.0);
        }
        // Spine: vertebral bodies (24 mm) and discs (6 mm) from z = 180 down,
        // posterior arch around the canal.
        let (sx, sy) = (0.0, -80.0);
        let rb = ((p[0] - sx).powi(2) + (p[1] - sy).powi(2)).sqrt();
        let canal_y = sy - 32.0;
        let rc = ((p[0] - sx).powi(2) + (p[1] - canal_y).powi(2)).sqrt();
        let level = ((180.0 - p[2]) / 30.0).floor();
        if (0.0..13.0).contains(&level) {
            let within = (180.0 - p[2]) - level * 30.0;
            let vid = ids.vertebrae[level as usize];
            if within < 24.0 && rb < 22.0 {
                return (
                    vid,
                    if rb > 19.0 || !(2.0..=22.0).contains(&within) {
                        900.0
                    } else {
                        250.0
                    },
                );
            }
            if within < 24.0 && (8.0..14.0).contains(&rc) && p[1] < sy - 18.0 {
                return (vid, 800.0);
            }
        }
        if rc < 6.0 {
            return (ids.cord, 35.0);
        }
        if rc < 8.0 {
            return (0, 5.0); // CSF around the cord
        }
        // Descending aorta beside the spine, arch over the heart.
        let ra = ((p[0] + 22.0).powi(2) + (p[1] + 48.0).powi(2)).sqrt();
        if ra < 12.0 * self.scale && p[2] < 150.0 && p[2] > -120.0 {
            return (ids.aorta, 220.0);
        }
        if self.heart.inside(p) {
            return (ids.heart, 45.0);
        }
        for (lung, left) in [(&self.lung_l, true), (&self.lung_r, false)] {
            if lung.inside(p) && p[2] > 25.0 {
                // Oblique fissure: posterior-inferior part is the lower lobe.
                let oblique = (p[2] - lung.c[2]) + 0.9 * (p[1] - lung.c[1]) < -5.0;
                let id = if left {
                    if oblique { ids.lobes[1] } else { ids.lobes[0] }
                } else if oblique {
                    ids.lobes[4]
                } else if p[2] < lung.c[2] + 5.0 && p[1] > lung.c[1] - 10.0 {
                    ids.lobes[3] // horizontal fissure: middle lobe anterior-inferior
                } else {
                    ids.lobes[2]
                };
                return (id, -850.0);
            }
        }
        if self.liver.inside(p) && p[2] < 25.0 {
            return (ids.liver, 60.0);
        }
        if self.spleen.inside(p) {
            return (ids.spleen, 48.0);
        }
        if self.kidney_r.inside(p) {
            return (ids.kidney_r, 32.0);
        }
        if self.kidney_l.inside(p) {
            return (ids.kidney_l, 32.0);
        }
        // Perirenal fat: what outlines the kidneys on a CT without contrast
        // (kidney ≈ 30 HU, the soft tissue around ≈ 25 HU).
        if self.kidney_r.inside_grown(p, PERIRENAL_FAT_MM)
            || self.kidney_l.inside_grown(p, PERIRENAL_FAT_MM)
        {
            return (0, -90.0);
        }
        // Body wall: skin fat then muscle, soft tissue inside.
        let depth = 1.0 - body.sqrt();
        if depth < 0.08 {
            (0, -100.0)
        } else if depth < 0.15 {
            (0, 45.0)
        } else {
            (0, 25.0)
        }
    }
}

/// Generate case `n` (1-based) of seed `seed`.
pub fn totalseg_case(seed: u64, n: usize, size: Size) -> TotalSegPhantom {
    let mut rng = Rng::new(seed, n, 0x7074);
    let torso = Torso::new(&mut rng);
    let table = LabelTable::builtin("totalseg").expect("built-in table parses");
    let ids = Ids::new(&table);
    let (dims, s) = match size {
        Size::Full => ([288usize, 224, 256], 1.5),
        Size::Small => ([96, 80, 88], 4.5),
    };
    let sign = if n.is_multiple_of(2) { -1.0 } else { 1.0 }; // even cases LPS, odd RAS
    let m = [
        [sign * s, 0.0, 0.0, -sign * s * (dims[0] as f64 - 1.0) / 2.0],
        [0.0, sign * s, 0.0, -sign * s * (dims[1] as f64 - 1.0) / 2.0],
        [0.0, 0.0, s, -s * (dims[2] as f64 - 1.0) / 2.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let sampled = render(&torso, &ids, seed, n, dims, &m);
    let geometry = Geometry::from_affine(m);
    let hu: Vec<i16> = sampled.iter().map(|&(_, v)| v).collect();
    let ct =
        Volume::from_values(dims.to_vec(), &hu, geometry.clone()).expect("shape matches values");
    let labels = LabelVolume {
        dims,
        frames: 1,
        geometry,
        data: LabelData::U8(sampled.iter().map(|&(l, _)| l as u8).collect()),
    };
    TotalSegPhantom {
        id: format!("s{n:04}"),
        ct,
        labels,
        table,
    }
}

/// Classify every voxel and add noise: (label id, HU).
fn render(
    torso: &Torso,
    ids: &Ids,
    seed: u64,
    n: usize,
    dims: [usize; 3],
    m: &crate::volume::geometry::Mat4,
) -> Vec<(u16, i16)> {
    let key = mix(seed ^ mix(n as u64 ^ 0xC7));
    sample_grid(dims, |i, j, k| {
        let (id, hu) = torso.classify(world(m, i, j, k), ids);
        let flat = i + dims[0] * (j + dims[1] * k);
        let noise = if hu <= -1000.0 { 4.0 } else { 12.0 };
        (
            id,
            (hu + noise * gauss(key, flat))
                .round()
                .clamp(-1024.0, 3071.0) as i16,
        )
    })
}

/// The torso CT alone on any grid (RAS storage, centred), e.g. the
/// 512×512×300 int16 CT of the load benchmark.
pub fn ct_volume(seed: u64, dims: [usize; 3], spacing_mm: [f64; 3]) -> Volume {
    let mut rng = Rng::new(seed, 1, 0x7074);
    let torso = Torso::new(&mut rng);
    let table = LabelTable::builtin("totalseg").expect("built-in table parses");
    let ids = Ids::new(&table);
    let mut m = [[0.0; 4]; 4];
    for a in 0..3 {
        m[a][a] = spacing_mm[a];
        m[a][3] = -spacing_mm[a] * (dims[a] as f64 - 1.0) / 2.0;
    }
    m[3][3] = 1.0;
    let hu: Vec<i16> = render(&torso, &ids, seed, 1, dims, &m)
        .iter()
        .map(|&(_, v)| v)
        .collect();
    Volume::from_values(dims.to_vec(), &hu, Geometry::from_affine(m)).expect("shape matches values")
}

impl TotalSegPhantom {
    /// Write `sNNNN/ct.nii.gz` and `sNNNN/segmentations/<name>.nii.gz` for
    /// every class of the table; returns the folder.
    pub fn write(&self, out: &Path) -> Result<PathBuf, PhantomError> {
        let dir = out.join(&self.id);
        let seg = dir.join("segmentations");
        mkdir(&seg)?;
        save_volume(&self.ct, &dir.join("ct.nii.gz"))?;
        let n = self.labels.len();
        for entry in &self.table.labels {
            let mask: Vec<u8> = (0..n)
                .map(|f| u8::from(self.labels.get(f) == entry.id))
                .collect();
            let mask = LabelVolume {
                dims: self.labels.dims,
                frames: 1,
                geometry: self.labels.geometry.clone(),
                data: LabelData::U8(mask),
            };
            save_labels(&mask, &seg.join(format!("{}.nii.gz", entry.name)))?;
        }
        Ok(dir)
    }
}
