//! Cardiac cine phantom in the ACDC layout: a short-axis stack (10 mm
//! slices) through a beating heart. The left ventricle is a half-ellipsoid
//! cavity whose cross-section shrinks from end-diastole (frame 0) to
//! end-systole and refills; the myocardium keeps its area (so it thickens
//! as the cavity shrinks); the right ventricle is a crescent beside it that
//! contracts with a smaller ejection fraction. ED and ES are therefore known
//! exactly. Labels: 1 RV, 2 MYO, 3 LV. Odd cases are stored with an
//! oblique affine, as scanner short-axis planes are.

use super::rng::{Rng, gauss, mix};
use super::{PhantomError, Size, mkdir, sample_grid};
use crate::dataset::AcdcInfo;
use crate::io::{save_labels, save_volume, write_atomic};
use crate::volume::{Geometry, LabelData, LabelVolume, Volume};
use std::path::{Path, PathBuf};

/// One generated cardiac case.
#[derive(Debug, Clone)]
pub struct AcdcPhantom {
    /// Case folder name, e.g. "patient001".
    pub id: String,
    /// The 4D cine (x, y, slice, frame), int16.
    pub cine: Volume,
    /// Ground truth for every frame (ACDC ships only ED and ES; the phantom
    /// knows them all).
    pub frame_labels: Vec<LabelVolume>,
    /// Info.cfg contents (ED/ES 1-based as in ACDC).
    pub info: AcdcInfo,
}

struct Heart {
    centre: [f64; 2],
    r_endo: f64,
    wall: f64,
    base_z: f64,
    apex_len: f64,
    ef_lv: f64,
    ef_rv: f64,
    rv_axes: [f64; 2],
    es: usize,
    frames: usize,
}

impl Heart {
    /// Contraction in [0, 1]: 0 at ED (frame 0), 1 at ES; cosine systole and
    /// diastole, so the cycle is smooth and periodic.
    fn contraction(&self, t: usize) -> f64 {
        let (t, e, n) = (t as f64, self.es as f64, self.frames as f64);
        if t <= e {
            0.5 * (1.0 - (std::f64::consts::PI * t / e).cos())
        } else {
            0.5 * (1.0 + (std::f64::consts::PI * (t - e) / (n - e)).cos())
        }
    }

    /// Label at local millimetre position `p` in frame `t`.
    fn label(&self, p: [f64; 3], t: usize) -> u8 {
        if p[2] > self.base_z || p[2] < self.base_z - self.apex_len - 60.0 {
            return 0;
        }
        // Taper towards the apex (half-ellipsoid below the base plane).
        let below = (self.base_z - 25.0 - p[2]).max(0.0) / self.apex_len;
        if below >= 1.0 {
            return 0;
        }
        let taper = (1.0 - below * below).sqrt();
        let c = self.contraction(t);
        let r_endo = self.r_endo * (1.0 - self.ef_lv * c).sqrt() * taper;
        let wall_area = ((self.r_endo + self.wall).powi(2) - self.r_endo.powi(2)) * taper * taper;
        let r_epi = (r_endo * r_endo + wall_area).sqrt();
        let dx = p[0] - self.centre[0];
        let dy = p[1] - self.centre[1];
        let r = (dx * dx + dy * dy).sqrt();
        if r < r_endo {
            return 3;
        }
        if r < r_epi {
            return 2;
        }
        // RV crescent on the -x side, wrapping the septum.
        let rv_scale = (1.0 - self.ef_rv * c).sqrt() * taper;
        let rc = [
            self.centre[0] - (self.r_endo + self.wall) * 0.9,
            self.centre[1] + 6.0,
        ];
        let (a, b) = (self.rv_axes[0] * rv_scale, self.rv_axes[1] * taper);
        let e = ((p[0] - rc[0]) / a).powi(2) + ((p[1] - rc[1]) / b).powi(2);
        let r_epi_ed = (self.r_endo + self.wall) * taper;
        if e < 1.0 && r > r_epi.max(r_epi_ed * 0.95) + 2.0 {
            return 1;
        }
        0
    }
}

/// Standard deviation of the phantom's Gaussian noise (drawn anew for every
/// voxel of every frame), on a scale where blood is 620 and muscle 140.
pub const ACDC_NOISE_SD: f64 = 15.0;

/// Generate case `n` (1-based) of seed `seed`.
pub fn acdc_case(seed: u64, n: usize, size: Size) -> AcdcPhantom {
    acdc_case_with_noise(seed, n, size, ACDC_NOISE_SD)
}

/// Case `n` of seed `seed` with noise of standard deviation `noise_sd`; the
/// same heart, motion and geometry whatever the noise, so `0.0` gives the
/// noise-free truth of [`acdc_case`]'s cine (what a reconstruction that
/// does not reproduce the noise can at best return).
pub fn acdc_case_with_noise(seed: u64, n: usize, size: Size, noise_sd: f64) -> AcdcPhantom {
    let mut rng = Rng::new(seed, n, 0xACDC);
    let (dims, s, frames) = match size {
        Size::Full => ([216usize, 256, 10], 1.5625, 30usize),
        Size::Small => ([64, 64, 8], 4.0, 20),
    };
    let es = ((frames as f64) * rng.range(0.30, 0.42)).round() as usize;
    let heart = Heart {
        centre: [rng.range(-6.0, 6.0) + 8.0, rng.range(-6.0, 6.0)],
        r_endo: rng.range(22.0, 28.0),
        wall: rng.range(8.0, 11.0),
        base_z: 30.0,
        apex_len: rng.range(40.0, 50.0),
        ef_lv: rng.range(0.45, 0.65),
        ef_rv: rng.range(0.35, 0.5),
        rv_axes: [rng.range(22.0, 28.0), rng.range(32.0, 40.0)],
        es,
        frames,
    };
    let sz = 10.0;
    let half = [
        s * (dims[0] as f64 - 1.0) / 2.0,
        s * (dims[1] as f64 - 1.0) / 2.0,
        sz * (dims[2] as f64 - 1.0) / 2.0,
    ];
    // Scanner frame → world: identity for even cases, double-oblique for odd.
    let rot = if n % 2 == 1 {
        let (a, b) = (0.35f64, 0.5f64);
        let rx = [
            [1.0, 0.0, 0.0],
            [0.0, a.cos(), -a.sin()],
            [0.0, a.sin(), a.cos()],
        ];
        let rz = [
            [b.cos(), -b.sin(), 0.0],
            [b.sin(), b.cos(), 0.0],
            [0.0, 0.0, 1.0],
        ];
        std::array::from_fn(|r| {
            std::array::from_fn(|c| (0..3).map(|k| rz[r][k] * rx[k][c]).sum::<f64>())
        })
    } else {
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    };
    let spacing = [s, s, sz];
    let mut m = [[0.0; 4]; 4];
    m[3][3] = 1.0;
    for r in 0..3 {
        for c in 0..3 {
            m[r][c] = rot[r][c] * spacing[c];
        }
        m[r][3] = -(0..3).map(|c| rot[r][c] * half[c]).sum::<f64>();
    }
    let mut geometry = Geometry::from_affine(m);
    let key = mix(seed ^ mix(n as u64 ^ 0xC1E));
    let plane = dims[0] * dims[1] * dims[2];
    let mut cine_values = Vec::with_capacity(plane * frames);
    let mut frame_labels = Vec::with_capacity(frames);
    for t in 0..frames {
        let frame = sample_grid(dims, |i, j, k| {
            let p = [
                i as f64 * s - half[0],
                j as f64 * s - half[1],
                k as f64 * sz - half[2],
            ];
            let label = heart.label(p, t);
            let body = (p[0] / 150.0).powi(2) + (p[1] / 110.0).powi(2) < 1.0;
            let lung = [-1.0, 1.0].iter().any(|sx| {
                ((p[0] - sx * 85.0) / 45.0).powi(2) + ((p[1] + 5.0) / 70.0).powi(2) < 1.0
            });
            let base = match label {
                3 | 1 => 620.0,
                2 => 140.0,
                _ if !body => 0.0,
                _ if lung => 40.0,
                _ => 250.0,
            };
            let flat = i + dims[0] * (j + dims[1] * (k + dims[2] * t));
            let v = (base + noise_sd * gauss(key, flat)).abs();
            (label, v.round().min(32767.0) as i16)
        });
        cine_values.extend(frame.iter().map(|&(_, v)| v));
        frame_labels.push(LabelVolume {
            dims,
            frames: 1,
            geometry: geometry.clone(),
            data: LabelData::U8(frame.iter().map(|&(l, _)| l).collect()),
        });
    }
    geometry.time_step = Some(0.9 / frames as f64);
    let mut shape = dims.to_vec();
    shape.push(frames);
    let cine = Volume::from_values(shape, &cine_values, geometry).expect("shape matches values");
    let groups = ["NOR", "MINF", "DCM", "HCM", "RV"];
    let info = AcdcInfo {
        ed: 1,
        es: es + 1,
        group: groups[(rng.unit() * groups.len() as f64) as usize % groups.len()].to_string(),
        height_cm: (rng.range(155.0, 190.0) * 10.0).round() / 10.0,
        weight_kg: (rng.range(50.0, 100.0) * 10.0).round() / 10.0,
        nb_frame: frames,
    };
    AcdcPhantom {
        id: format!("patient{n:03}"),
        cine,
        frame_labels,
        info,
    }
}

impl AcdcPhantom {
    /// One frame of the cine as a 3D volume.
    pub fn frame_volume(&self, t: usize) -> Volume {
        let v = &self.cine;
        let values = v.frame_f32(t).unwrap_or_default();
        let ints: Vec<i16> = values.iter().map(|&x| x as i16).collect();
        let mut g = v.geometry.clone();
        g.time_step = None;
        Volume::from_values(v.dims.to_vec(), &ints, g).expect("frame shape matches")
    }

    /// Write `patientNNN/` with the 4D cine, the ED and ES frames and their
    /// `_gt` labels, and `Info.cfg`; returns the folder.
    pub fn write(&self, out: &Path) -> Result<PathBuf, PhantomError> {
        let dir = out.join(&self.id);
        mkdir(&dir)?;
        save_volume(&self.cine, &dir.join(format!("{}_4d.nii.gz", self.id)))?;
        for frame in [self.info.ed, self.info.es] {
            let t = frame - 1;
            let stem = format!("{}_frame{frame:02}", self.id);
            save_volume(&self.frame_volume(t), &dir.join(format!("{stem}.nii.gz")))?;
            save_labels(
                &self.frame_labels[t],
                &dir.join(format!("{stem}_gt.nii.gz")),
            )?;
        }
        let i = &self.info;
        let cfg = format!(
            "ED: {}\nES: {}\nGroup: {}\nHeight: {:.1}\nNbFrame: {}\nWeight: {:.1}\n",
            i.ed, i.es, i.group, i.height_cm, i.nb_frame, i.weight_kg
        );
        write_atomic(&dir.join("Info.cfg"), cfg.as_bytes())?;
        Ok(dir)
    }
}
