//! Brain MR phantom in the BraTS layout: scalp, skull, CSF, grey and white
//! matter, two lateral ventricles, and a lumpy tumour (necrotic core,
//! enhancing rim, surrounding edema), imaged as T1, T1ce, T2 and FLAIR with
//! their characteristic contrasts, a smooth bias field and noise. Stored LPS
//! like BraTS files (affine diag(-1, -1, 1)). Labels use BraTS 2017–2021
//! ids: 1 necrosis, 2 edema, 4 enhancing.

use super::rng::{Rng, gauss, mix};
use super::{PhantomError, Size, mkdir, sample_grid, world};
use crate::io::{save_labels, save_volume};
use crate::volume::{Geometry, LabelData, LabelVolume, Volume};
use std::path::{Path, PathBuf};

/// Tissue classes, in the order of the intensity tables.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
#[repr(u8)]
enum Tissue {
    #[default]
    Air = 0,
    Scalp,
    Skull,
    Csf,
    Grey,
    White,
    Necrosis,
    Enhancing,
    Edema,
}

/// Modality names in BraTS order and their tissue intensities
/// (air, scalp, skull, CSF, GM, WM, necrosis, enhancing, edema).
const MODALITIES: [(&str, [f64; 9]); 4] = [
    (
        "t1",
        [0.0, 700.0, 80.0, 150.0, 450.0, 650.0, 200.0, 450.0, 350.0],
    ),
    (
        "t1ce",
        [0.0, 720.0, 80.0, 160.0, 470.0, 660.0, 180.0, 980.0, 360.0],
    ),
    (
        "t2",
        [0.0, 400.0, 60.0, 950.0, 600.0, 400.0, 820.0, 650.0, 850.0],
    ),
    (
        "flair",
        [0.0, 450.0, 60.0, 110.0, 560.0, 450.0, 480.0, 650.0, 920.0],
    ),
];

/// One generated brain case.
#[derive(Debug, Clone)]
pub struct BratsPhantom {
    /// Case folder name, e.g. "BraTS20_Training_001".
    pub id: String,
    /// (modality, image), int16.
    pub images: Vec<(String, Volume)>,
    /// Tumour labels (1, 2, 4).
    pub labels: LabelVolume,
}

struct Anatomy {
    head: [f64; 3],
    tumour: [f64; 3],
    r_core: f64,
    r_rim: f64,
    r_edema: f64,
    lobes: [f64; 4],
}

impl Anatomy {
    fn new(rng: &mut Rng) -> Anatomy {
        let head = [
            rng.range(68.0, 74.0),
            rng.range(88.0, 96.0),
            rng.range(74.0, 80.0),
        ];
        // Tumour centre inside the brain, off the midline, away from the skull.
        let side = if rng.unit() < 0.5 { -1.0 } else { 1.0 };
        let tumour = [
            side * rng.range(18.0, 32.0),
            rng.range(-35.0, 35.0),
            rng.range(-10.0, 30.0),
        ];
        let r_core = rng.range(4.0, 9.0);
        let r_rim = r_core + rng.range(3.0, 5.0);
        let r_edema = r_rim + rng.range(8.0, 16.0);
        let lobes = [
            rng.range(0.0, 6.3),
            rng.range(0.0, 6.3),
            rng.range(0.0, 6.3),
            rng.range(0.0, 6.3),
        ];
        Anatomy {
            head,
            tumour,
            r_core,
            r_rim,
            r_edema,
            lobes,
        }
    }

    fn tissue(&self, p: [f64; 3]) -> Tissue {
        let [a, b, c] = self.head;
        let r = ((p[0] / a).powi(2) + (p[1] / b).powi(2) + (p[2] / c).powi(2)).sqrt();
        if r > 1.0 {
            return Tissue::Air;
        }
        if r > 0.95 {
            return Tissue::Scalp;
        }
        if r > 0.88 {
            return Tissue::Skull;
        }
        if r > 0.855 {
            return Tissue::Csf;
        }
        // Tumour (inside the brain only), lumpy radii from a few harmonics.
        let d = [
            p[0] - self.tumour[0],
            p[1] - self.tumour[1],
            p[2] - self.tumour[2],
        ];
        let dist = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
        if dist < self.r_edema * 1.3 && r < 0.83 {
            let theta = d[1].atan2(d[0]);
            let phi = (d[2] / dist.max(1e-9)).acos();
            let l = &self.lobes;
            let lump = 1.0 + 0.15 * (3.0 * theta + l[0]).sin() * (2.0 * phi + l[1]).cos();
            let lump_edema = 1.0 + 0.25 * (2.0 * theta + l[2]).sin() * (3.0 * phi + l[3]).sin();
            if dist < self.r_core * lump {
                return Tissue::Necrosis;
            }
            if dist < self.r_rim * lump {
                return Tissue::Enhancing;
            }
            if dist < self.r_edema * lump_edema {
                return Tissue::Edema;
            }
        }
        for sx in [-1.0, 1.0] {
            let v = [
                (p[0] - sx * 11.0) / 6.0,
                (p[1] - 4.0) / 24.0,
                (p[2] - 8.0) / 10.0,
            ];
            if v[0] * v[0] + v[1] * v[1] + v[2] * v[2] < 1.0 {
                return Tissue::Csf;
            }
        }
        // Cortex: grey matter shell with gyral folding.
        let fold = 0.035 * (p[0] * 0.25).sin() * (p[1] * 0.2).sin() * (p[2] * 0.22).cos();
        if r > 0.74 + fold {
            Tissue::Grey
        } else {
            Tissue::White
        }
    }
}

/// Generate case `n` (1-based) of seed `seed`.
pub fn brats_case(seed: u64, n: usize, size: Size) -> BratsPhantom {
    let mut rng = Rng::new(seed, n, 0xB7A7);
    let anatomy = Anatomy::new(&mut rng);
    let (dims, s) = match size {
        Size::Full => ([240usize, 240, 155], 1.0),
        Size::Small => ([96, 96, 62], 2.5),
    };
    // LPS storage as BraTS files: x towards Left, y towards Posterior; centred.
    let m = [
        [-s, 0.0, 0.0, s * (dims[0] as f64 - 1.0) / 2.0],
        [0.0, -s, 0.0, s * (dims[1] as f64 - 1.0) / 2.0],
        [0.0, 0.0, s, -s * (dims[2] as f64 - 1.0) / 2.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let tissue = sample_grid(dims, |i, j, k| anatomy.tissue(world(&m, i, j, k)));
    let geometry = Geometry::from_affine(m);
    let shape = dims.to_vec();
    let bias_phase = [rng.range(0.0, 6.3), rng.range(0.0, 6.3)];
    let images = MODALITIES
        .iter()
        .enumerate()
        .map(|(mi, (name, table))| {
            let key = mix(seed ^ mix(n as u64) ^ mix(0x5EED + mi as u64));
            let values = sample_grid(dims, |i, j, k| {
                let flat = i + dims[0] * (j + dims[1] * k);
                let t = tissue[flat];
                if t == Tissue::Air {
                    return 0i16;
                }
                let p = world(&m, i, j, k);
                let bias = 1.0
                    + 0.08 * (p[0] / 90.0 + bias_phase[0] + mi as f64).sin()
                    + 0.06 * (p[2] / 70.0 + bias_phase[1]).cos();
                let v = table[t as usize] * bias + 18.0 * gauss(key, flat);
                v.round().clamp(0.0, 32767.0) as i16
            });
            let v = Volume::from_values(shape.clone(), &values, geometry.clone())
                .expect("shape matches values");
            ((*name).to_string(), v)
        })
        .collect();
    let labels: Vec<u8> = tissue
        .iter()
        .map(|t| match t {
            Tissue::Necrosis => 1,
            Tissue::Edema => 2,
            Tissue::Enhancing => 4,
            _ => 0,
        })
        .collect();
    BratsPhantom {
        id: format!("BraTS20_Training_{n:03}"),
        images,
        labels: LabelVolume {
            dims,
            frames: 1,
            geometry,
            data: LabelData::U8(labels),
        },
    }
}

impl BratsPhantom {
    /// Write the case folder under `out` (`<id>/<id>_<modality>.nii.gz`,
    /// `<id>_seg.nii.gz`); returns the folder.
    pub fn write(&self, out: &Path) -> Result<PathBuf, PhantomError> {
        let dir = out.join(&self.id);
        mkdir(&dir)?;
        for (name, v) in &self.images {
            save_volume(v, &dir.join(format!("{}_{name}.nii.gz", self.id)))?;
        }
        save_labels(&self.labels, &dir.join(format!("{}_seg.nii.gz", self.id)))?;
        Ok(dir)
    }
}
