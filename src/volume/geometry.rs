//! Placement of voxels in world space: NIfTI RAS+ millimetres.
//!
//! The transform is chosen exactly as nibabel does (decided here once):
//! the sform when `sform_code > 0`, else the qform (quaternion + qfac) when
//! `qform_code > 0`, else a diagonal affine from pixdim centred on the volume
//! with x flipped (Analyze convention). Everything is f64; the GPU gets f32
//! copies. Oblique or sheared axes are reported as warnings, never errors.

// Matrix code reads best with explicit row/column indices.
#![allow(clippy::needless_range_loop)]

/// A 4×4 row-major matrix.
pub type Mat4 = [[f64; 4]; 4];

/// The spatial fields of a NIfTI header, kept so that writing a volume back
/// preserves both its sform and qform exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NiftiSpatial {
    /// `qform_code` (0 unknown, 1 scanner, 2 aligned, 3 talairach, 4 mni, 5 template).
    pub qform_code: i32,
    /// `sform_code`.
    pub sform_code: i32,
    /// `quatern_b, quatern_c, quatern_d`.
    pub quatern_bcd: [f64; 3],
    /// `qoffset_x, qoffset_y, qoffset_z`.
    pub qoffset: [f64; 3],
    /// `pixdim[0..8]`; `pixdim[0]` is qfac.
    pub pixdim: [f64; 8],
    /// `srow_x, srow_y, srow_z`.
    pub srow: [[f64; 4]; 3],
}

/// NIfTI qform parameters: `(quatern_bcd, qoffset, qfac, spacing_mm)`.
pub type QformParams = ([f64; 3], [f64; 3], f64, [f64; 3]);

/// Where a volume's voxels are in the world.
#[derive(Debug, Clone, PartialEq)]
pub struct Geometry {
    /// Voxel index (i, j, k) → RAS+ mm.
    pub world_from_voxel: Mat4,
    /// The header fields it came from, when loaded from NIfTI.
    pub nifti: Option<NiftiSpatial>,
    /// Spacing of the 4th axis (seconds for cine, from `pixdim[4]`), if any.
    pub time_step: Option<f64>,
}

impl Geometry {
    /// Identity placement (1 mm isotropic, RAS).
    pub fn identity() -> Geometry {
        Geometry::from_affine(IDENTITY)
    }

    /// A geometry from an affine alone.
    pub fn from_affine(world_from_voxel: Mat4) -> Geometry {
        Geometry {
            world_from_voxel,
            nifti: None,
            time_step: None,
        }
    }

    /// Pick the affine from NIfTI header fields by nibabel's rule. `dims` are
    /// the first three dims. Returns warnings for odd fields.
    pub fn from_nifti(spatial: NiftiSpatial, dims: [usize; 3]) -> (Geometry, Vec<String>) {
        let mut warnings = Vec::new();
        let world_from_voxel = if spatial.sform_code > 0 {
            let s = spatial.srow;
            [s[0], s[1], s[2], [0.0, 0.0, 0.0, 1.0]]
        } else if spatial.qform_code > 0 {
            quaternion_affine(&spatial, &mut warnings)
        } else {
            let zooms = [spatial.pixdim[1], spatial.pixdim[2], spatial.pixdim[3]];
            base_affine(dims, zooms)
        };
        let geometry = Geometry {
            world_from_voxel,
            nifti: Some(spatial),
            time_step: None,
        };
        warnings.extend(geometry.axis_warnings());
        (geometry, warnings)
    }

    /// Voxel spacing in mm: lengths of the affine's columns.
    pub fn spacing_mm(&self) -> [f64; 3] {
        let m = &self.world_from_voxel;
        std::array::from_fn(|c| (m[0][c].powi(2) + m[1][c].powi(2) + m[2][c].powi(2)).sqrt())
    }

    /// Orientation code such as "LAS": the world direction each voxel axis
    /// increases towards.
    pub fn orientation(&self) -> String {
        axcodes(&self.world_from_voxel)
    }

    /// World (RAS mm) position of a voxel centre (fractional indices allowed).
    pub fn world_from_index(&self, ijk: [f64; 3]) -> [f64; 3] {
        let m = &self.world_from_voxel;
        std::array::from_fn(|r| m[r][0] * ijk[0] + m[r][1] * ijk[1] + m[r][2] * ijk[2] + m[r][3])
    }

    /// Continuous voxel coordinates of a world point, the inverse of
    /// [`Geometry::world_from_index`] (`None` for a singular geometry).
    pub fn index_from_world(&self, world: [f64; 3]) -> Option<[f64; 3]> {
        let m = self.voxel_from_world()?;
        Some(std::array::from_fn(|r| {
            m[r][0] * world[0] + m[r][1] * world[1] + m[r][2] * world[2] + m[r][3]
        }))
    }

    /// The inverse transform (RAS mm → voxel), `None` if singular.
    pub fn voxel_from_world(&self) -> Option<Mat4> {
        mat4_inverse(&self.world_from_voxel)
    }

    /// Largest angle (radians) between a voxel axis and its nearest world axis.
    pub fn obliquity_rad(&self) -> f64 {
        let m = &self.world_from_voxel;
        (0..3)
            .map(|c| {
                let col = [m[0][c], m[1][c], m[2][c]];
                let n = norm(col);
                if n == 0.0 {
                    return 0.0;
                }
                let cos = col.iter().map(|v| v.abs()).fold(0.0, f64::max) / n;
                cos.clamp(-1.0, 1.0).acos()
            })
            .fold(0.0, f64::max)
    }

    /// Largest |cos| between two voxel axes (0 when orthogonal; shear otherwise).
    pub fn shear(&self) -> f64 {
        let m = &self.world_from_voxel;
        let col = |c: usize| [m[0][c], m[1][c], m[2][c]];
        let mut worst: f64 = 0.0;
        for (a, b) in [(0, 1), (0, 2), (1, 2)] {
            let (u, v) = (col(a), col(b));
            let d = norm(u) * norm(v);
            if d > 0.0 {
                worst = worst.max((u[0] * v[0] + u[1] * v[1] + u[2] * v[2]).abs() / d);
            }
        }
        worst
    }

    fn axis_warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        let m = &self.world_from_voxel;
        let det = det3(m);
        if det == 0.0 || !det.is_finite() {
            w.push("affine is singular or not finite; world coordinates are meaningless".into());
            return w;
        }
        let ob = self.obliquity_rad();
        if ob > 1e-3 {
            w.push(format!(
                "oblique axes: up to {:.2}° from the nearest world axis",
                ob.to_degrees()
            ));
        }
        let sh = self.shear();
        if sh > 1e-4 {
            w.push(format!(
                "sheared axes (e.g. gantry tilt): axes {:.2}° from orthogonal",
                90.0 - sh.acos().to_degrees()
            ));
        }
        w
    }

    /// NIfTI qform parameters representing this affine, if it has no shear:
    /// `(quatern_bcd, qoffset, qfac, spacing_mm)`.
    pub fn to_quaternion(&self) -> Option<QformParams> {
        if self.shear() > 1e-4 {
            return None;
        }
        let m = &self.world_from_voxel;
        let spacing = self.spacing_mm();
        if spacing.iter().any(|&s| s == 0.0 || !s.is_finite()) {
            return None;
        }
        let mut r = [[0.0; 3]; 3];
        for (c, s) in spacing.iter().enumerate() {
            for (row, rr) in r.iter_mut().enumerate() {
                rr[c] = m[row][c] / s;
            }
        }
        let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1])
            - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
            + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
        let qfac = if det < 0.0 { -1.0 } else { 1.0 };
        if qfac < 0.0 {
            for rr in &mut r {
                rr[2] = -rr[2];
            }
        }
        // Rotation matrix → unit quaternion with a >= 0 (NIfTI reference algorithm).
        let trace = r[0][0] + r[1][1] + r[2][2] + 1.0;
        let (mut a, mut b, mut c, mut d);
        if trace > 0.5 {
            a = 0.5 * trace.sqrt();
            b = 0.25 * (r[2][1] - r[1][2]) / a;
            c = 0.25 * (r[0][2] - r[2][0]) / a;
            d = 0.25 * (r[1][0] - r[0][1]) / a;
        } else {
            let xd = 1.0 + r[0][0] - (r[1][1] + r[2][2]);
            let yd = 1.0 + r[1][1] - (r[0][0] + r[2][2]);
            let zd = 1.0 + r[2][2] - (r[0][0] + r[1][1]);
            if xd > 1.0 {
                b = 0.5 * xd.sqrt();
                c = 0.25 * (r[0][1] + r[1][0]) / b;
                d = 0.25 * (r[0][2] + r[2][0]) / b;
                a = 0.25 * (r[2][1] - r[1][2]) / b;
            } else if yd > 1.0 {
                c = 0.5 * yd.sqrt();
                b = 0.25 * (r[0][1] + r[1][0]) / c;
                d = 0.25 * (r[1][2] + r[2][1]) / c;
                a = 0.25 * (r[0][2] - r[2][0]) / c;
            } else {
                d = 0.5 * zd.sqrt();
                b = 0.25 * (r[0][2] + r[2][0]) / d;
                c = 0.25 * (r[1][2] + r[2][1]) / d;
                a = 0.25 * (r[1][0] - r[0][1]) / d;
            }
            if a < 0.0 {
                a = -a;
                b = -b;
                c = -c;
                d = -d;
            }
        }
        let _ = a;
        Some(([b, c, d], [m[0][3], m[1][3], m[2][3]], qfac, spacing))
    }
}

const IDENTITY: Mat4 = [
    [1.0, 0.0, 0.0, 0.0],
    [0.0, 1.0, 0.0, 0.0],
    [0.0, 0.0, 1.0, 0.0],
    [0.0, 0.0, 0.0, 1.0],
];

fn norm(v: [f64; 3]) -> f64 {
    (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
}

fn det3(m: &Mat4) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

/// The qform affine: rotation from the quaternion (a recovered as
/// `sqrt(1 - b² - c² - d²)`), times pixdim with the last axis scaled by qfac.
fn quaternion_affine(s: &NiftiSpatial, warnings: &mut Vec<String>) -> Mat4 {
    let [b, c, d] = s.quatern_bcd;
    let w2 = 1.0 - (b * b + c * c + d * d);
    let a = if w2 < 0.0 {
        // nibabel tolerates tiny negatives (float32 rounding) as 0.
        if w2 < -1e-6 {
            warnings.push("qform quaternion has |bcd| > 1; normalised".into());
        }
        0.0
    } else {
        w2.sqrt()
    };
    let nq = a * a + b * b + c * c + d * d;
    let r: [[f64; 3]; 3] = if nq < f64::EPSILON {
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    } else {
        let s2 = 2.0 / nq;
        let (x, y, z, w) = (b, c, d, a);
        let (xs, ys, zs) = (x * s2, y * s2, z * s2);
        let (wx, wy, wz) = (w * xs, w * ys, w * zs);
        let (xx, xy, xz) = (x * xs, x * ys, x * zs);
        let (yy, yz, zz) = (y * ys, y * zs, z * zs);
        [
            [1.0 - (yy + zz), xy - wz, xz + wy],
            [xy + wz, 1.0 - (xx + zz), yz - wx],
            [xz - wy, yz + wx, 1.0 - (xx + yy)],
        ]
    };
    let mut vox = [s.pixdim[1].abs(), s.pixdim[2].abs(), s.pixdim[3].abs()];
    if s.pixdim[1..4].iter().any(|&p| p < 0.0) {
        warnings.push("negative pixdim in a qform header; using absolute values".into());
    }
    // qfac is pixdim[0]; anything but -1 reads as 1 (nibabel fixes it so).
    let qfac = if s.pixdim[0] == -1.0 { -1.0 } else { 1.0 };
    vox[2] *= qfac;
    let mut out = IDENTITY;
    for row in 0..3 {
        for col in 0..3 {
            out[row][col] = r[row][col] * vox[col];
        }
        out[row][3] = s.qoffset[row];
    }
    out
}

/// Analyze-style affine: diagonal zooms with x flipped, centred on the volume
/// (nibabel `shape_zoom_affine(..., x_flip=True)`).
pub(crate) fn base_affine(dims: [usize; 3], zooms: [f64; 3]) -> Mat4 {
    let origin = dims.map(|d| (d as f64 - 1.0) / 2.0);
    centered_affine(zooms, origin)
}

/// Diagonal affine with x flipped and the given (0-based) origin voxel at
/// world 0 (the SPM/Analyze convention).
pub(crate) fn centered_affine(zooms: [f64; 3], origin: [f64; 3]) -> Mat4 {
    let z = [-zooms[0], zooms[1], zooms[2]];
    let mut m = IDENTITY;
    for a in 0..3 {
        m[a][a] = z[a];
        m[a][3] = -origin[a] * z[a];
    }
    m
}

/// Orientation letters (RAS+ world) of the voxel axes of an affine, as
/// nibabel's `aff2axcodes`: each voxel axis is assigned the world axis it is
/// most aligned with, largest alignments first, so no world axis repeats.
pub fn axcodes(m: &Mat4) -> String {
    let mut cols = [[0.0f64; 3]; 3];
    for (c, col) in cols.iter_mut().enumerate() {
        let v = [m[0][c], m[1][c], m[2][c]];
        let n = norm(v);
        if n > 0.0 {
            *col = v.map(|x| x / n);
        }
    }
    let mut assigned = [None::<(usize, f64)>; 3];
    let mut used_world = [false; 3];
    for _ in 0..3 {
        let mut best: Option<(usize, usize, f64)> = None;
        for (c, col) in cols.iter().enumerate() {
            if assigned[c].is_some() {
                continue;
            }
            for (w, &v) in col.iter().enumerate() {
                if used_world[w] {
                    continue;
                }
                if best.is_none_or(|(_, _, bv)| v.abs() > bv.abs()) {
                    best = Some((c, w, v));
                }
            }
        }
        if let Some((c, w, v)) = best {
            assigned[c] = Some((w, v));
            used_world[w] = true;
        }
    }
    assigned
        .iter()
        .map(|a| match a {
            Some((0, v)) => {
                if *v >= 0.0 {
                    'R'
                } else {
                    'L'
                }
            }
            Some((1, v)) => {
                if *v >= 0.0 {
                    'A'
                } else {
                    'P'
                }
            }
            Some((_, v)) => {
                if *v >= 0.0 {
                    'S'
                } else {
                    'I'
                }
            }
            None => '?',
        })
        .collect()
}

/// Product of two 4×4 matrices.
pub fn mat4_mul(a: &Mat4, b: &Mat4) -> Mat4 {
    let mut out = [[0.0; 4]; 4];
    for (r, row) in out.iter_mut().enumerate() {
        for (c, v) in row.iter_mut().enumerate() {
            *v = (0..4).map(|k| a[r][k] * b[k][c]).sum();
        }
    }
    out
}

/// Inverse of an affine 4×4 (last row 0 0 0 1); `None` if singular.
pub fn mat4_inverse(m: &Mat4) -> Option<Mat4> {
    let det = det3(m);
    if det == 0.0 || !det.is_finite() {
        return None;
    }
    let mut inv = IDENTITY;
    let c = |r: usize, k: usize| m[r][k];
    inv[0][0] = (c(1, 1) * c(2, 2) - c(1, 2) * c(2, 1)) / det;
    inv[0][1] = (c(0, 2) * c(2, 1) - c(0, 1) * c(2, 2)) / det;
    inv[0][2] = (c(0, 1) * c(1, 2) - c(0, 2) * c(1, 1)) / det;
    inv[1][0] = (c(1, 2) * c(2, 0) - c(1, 0) * c(2, 2)) / det;
    inv[1][1] = (c(0, 0) * c(2, 2) - c(0, 2) * c(2, 0)) / det;
    inv[1][2] = (c(0, 2) * c(1, 0) - c(0, 0) * c(1, 2)) / det;
    inv[2][0] = (c(1, 0) * c(2, 1) - c(1, 1) * c(2, 0)) / det;
    inv[2][1] = (c(0, 1) * c(2, 0) - c(0, 0) * c(2, 1)) / det;
    inv[2][2] = (c(0, 0) * c(1, 1) - c(0, 1) * c(1, 0)) / det;
    for r in 0..3 {
        inv[r][3] = -(0..3).map(|k| inv[r][k] * m[k][3]).sum::<f64>();
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spatial() -> NiftiSpatial {
        NiftiSpatial {
            qform_code: 0,
            sform_code: 0,
            quatern_bcd: [0.0; 3],
            qoffset: [0.0; 3],
            pixdim: [1.0, 2.0, 3.0, 4.0, 1.0, 1.0, 1.0, 1.0],
            srow: [[0.0; 4]; 3],
        }
    }

    #[test]
    fn sform_wins_over_qform() {
        let mut s = spatial();
        s.sform_code = 2;
        s.qform_code = 1;
        s.srow = [
            [5.0, 0.0, 0.0, 1.0],
            [0.0, 6.0, 0.0, 2.0],
            [0.0, 0.0, 7.0, 3.0],
        ];
        let (g, w) = Geometry::from_nifti(s, [2, 2, 2]);
        assert_eq!(g.world_from_voxel[0], [5.0, 0.0, 0.0, 1.0]);
        assert!(w.is_empty());
    }

    #[test]
    fn qform_180_about_y_with_qfac() {
        // b,c,d = 0,1,0: rotation of 180° about y → x and z flip; qfac -1 flips z again.
        let mut s = spatial();
        s.qform_code = 1;
        s.quatern_bcd = [0.0, 1.0, 0.0];
        s.pixdim[0] = -1.0;
        let (g, _) = Geometry::from_nifti(s, [2, 2, 2]);
        assert_eq!(g.world_from_voxel[0][0], -2.0);
        assert_eq!(g.world_from_voxel[1][1], 3.0);
        assert_eq!(g.world_from_voxel[2][2], 4.0);
        assert_eq!(g.orientation(), "LAS");
    }

    #[test]
    fn fallback_is_centred_with_x_flip() {
        let (g, _) = Geometry::from_nifti(spatial(), [3, 5, 7]);
        // nibabel: shape_zoom_affine((3,5,7), (2,3,4), True)
        assert_eq!(g.world_from_voxel[0], [-2.0, 0.0, 0.0, 2.0]);
        assert_eq!(g.world_from_voxel[1], [0.0, 3.0, 0.0, -6.0]);
        assert_eq!(g.world_from_voxel[2], [0.0, 0.0, 4.0, -12.0]);
    }

    #[test]
    fn quaternion_round_trip() {
        for code in ["RAS", "LPS", "PIL", "SRA", "IPR", "AIL"] {
            let mut m = IDENTITY;
            for (c, ch) in code.chars().enumerate() {
                let (w, sign) = match ch {
                    'R' => (0, 1.0),
                    'L' => (0, -1.0),
                    'A' => (1, 1.0),
                    'P' => (1, -1.0),
                    'S' => (2, 1.0),
                    _ => (2, -1.0),
                };
                for row in 0..3 {
                    m[row][c] = if row == w {
                        sign * (c as f64 + 1.5)
                    } else {
                        0.0
                    };
                }
            }
            m[0][3] = 10.0;
            let g = Geometry::from_affine(m);
            assert_eq!(g.orientation(), code);
            let (bcd, off, qfac, sp) = g.to_quaternion().unwrap();
            let s = NiftiSpatial {
                qform_code: 1,
                sform_code: 0,
                quatern_bcd: bcd,
                qoffset: off,
                pixdim: [qfac, sp[0], sp[1], sp[2], 1.0, 1.0, 1.0, 1.0],
                srow: [[0.0; 4]; 3],
            };
            let (back, _) = Geometry::from_nifti(s, [2, 2, 2]);
            for r in 0..3 {
                for c in 0..4 {
                    assert!(
                        (back.world_from_voxel[r][c] - m[r][c]).abs() < 1e-12,
                        "{code}"
                    );
                }
            }
        }
    }

    #[test]
    fn inverse_and_oblique_warning() {
        let t = 0.2f64;
        let m = [
            [t.cos() * 2.0, -t.sin(), 0.0, 5.0],
            [t.sin() * 2.0, t.cos(), 0.0, -3.0],
            [0.0, 0.0, 3.0, 1.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let inv = mat4_inverse(&m).unwrap();
        let id = mat4_mul(&m, &inv);
        for (r, row) in id.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                assert!((v - if r == c { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
        let g = Geometry::from_affine(m);
        assert!((g.obliquity_rad() - t).abs() < 1e-12);
        assert!(g.axis_warnings()[0].contains("oblique"));
    }
}
