//! Fill between annotated slices by shape-based interpolation, as
//! ITK-SNAP's and Slicer's "fill between slices": along a voxel axis, each
//! pair of consecutive slices holding the label with unlabelled slices
//! between them gets those slices from the linear blend of the two slices'
//! signed distance maps (in mm, so anisotropic pixels are handled), the
//! label where the blend is negative (inside).

use crate::metrics::edt::squared_edt;
use crate::volume::LabelVolume;

/// Signed distance (mm) of a slice mask: negative inside, positive
/// outside, zero half-way between a boundary pixel and its neighbour.
fn signed_distance(mask: &[bool], dims: [usize; 3], spacing: [f64; 3]) -> Vec<f64> {
    let to_mask = squared_edt(mask, dims, spacing);
    let outside: Vec<bool> = mask.iter().map(|m| !m).collect();
    let to_outside = squared_edt(&outside, dims, spacing);
    let half = 0.5 * spacing[0].min(spacing[1]);
    mask.iter()
        .enumerate()
        .map(|(i, &m)| {
            if m {
                -(to_outside[i].sqrt() - half)
            } else {
                to_mask[i].sqrt() - half
            }
        })
        .collect()
}

/// The voxels (flat indices of the 3D map) to give `label` so the slices
/// between annotated slices along voxel `axis` are filled; voxels already
/// holding `label` are not listed. `spacing_mm` is the voxel size.
pub fn between_slices(
    labels: &LabelVolume,
    frame: usize,
    label: u16,
    axis: usize,
    spacing_mm: [f64; 3],
) -> Vec<usize> {
    let dims = labels.dims;
    let off = labels.frame_offset(frame.min(labels.frames.saturating_sub(1)));
    // The two in-plane axes, in storage order.
    let (u, v) = match axis {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    };
    let flat = |a: usize, b: usize, k: usize| {
        let mut p = [0usize; 3];
        p[u] = a;
        p[v] = b;
        p[axis] = k;
        p[0] + dims[0] * (p[1] + dims[1] * p[2])
    };
    let (nu, nv) = (dims[u], dims[v]);
    let mask_of = |k: usize| -> Vec<bool> {
        let mut m = Vec::with_capacity(nu * nv);
        for b in 0..nv {
            for a in 0..nu {
                m.push(labels.get(off + flat(a, b, k)) == label);
            }
        }
        m
    };
    let annotated: Vec<usize> = (0..dims[axis])
        .filter(|&k| mask_of(k).iter().any(|&x| x))
        .collect();
    let plane = [nu, nv, 1];
    let sp = [spacing_mm[u], spacing_mm[v], 1.0];
    let mut out = Vec::new();
    for pair in annotated.windows(2) {
        let (k0, k1) = (pair[0], pair[1]);
        if k1 - k0 < 2 {
            continue;
        }
        let s0 = signed_distance(&mask_of(k0), plane, sp);
        let s1 = signed_distance(&mask_of(k1), plane, sp);
        for k in k0 + 1..k1 {
            let t = (k - k0) as f64 / (k1 - k0) as f64;
            for b in 0..nv {
                for a in 0..nu {
                    let i = a + nu * b;
                    let d = (1.0 - t) * s0[i] + t * s1[i];
                    let f = flat(a, b, k);
                    if d < 0.0 && labels.get(off + f) != label {
                        out.push(f);
                    }
                }
            }
        }
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::Geometry;

    #[test]
    fn a_cone_between_two_discs_is_filled_in_proportion() {
        // Discs of radius 10 at z = 0 and radius 4 at z = 6: the slices
        // between get discs of radius ~9, 8, 7, 6, 5.
        let dims = [41, 41, 7];
        let mut l = LabelVolume::zeros(dims, 1, Geometry::identity());
        let disc = |l: &mut LabelVolume, z: usize, r: f64| {
            for j in 0..41 {
                for i in 0..41 {
                    let (x, y) = (i as f64 - 20.0, j as f64 - 20.0);
                    if x * x + y * y <= r * r {
                        l.set(i + 41 * (j + 41 * z), 3);
                    }
                }
            }
        };
        disc(&mut l, 0, 10.0);
        disc(&mut l, 6, 4.0);
        let fill = between_slices(&l, 0, 3, 2, [1.0; 3]);
        for z in 1..6 {
            let n = fill.iter().filter(|&&f| f / (41 * 41) == z).count() as f64;
            let r = 10.0 - z as f64;
            let want = std::f64::consts::PI * r * r;
            assert!((n - want).abs() / want < 0.15, "z {z}: {n} vs {want}");
        }
        // Nothing outside the annotated range, nothing for other labels.
        assert!(between_slices(&l, 0, 2, 2, [1.0; 3]).is_empty());
    }
}
