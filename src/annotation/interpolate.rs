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

/// An annotated slice: its index, its in-plane mask and the mask's box
/// (min u, min v, max u, max v).
type Slice = (usize, Vec<bool>, [usize; 4]);

/// Blend the signed distances of two annotated slices (index, mask, box)
/// for the slices between them; `inside(a, b, k)` is called for each
/// in-plane pixel (a, b) of slice k inside the blend.
fn fill_gap(
    s0: &Slice,
    s1: &Slice,
    nu: usize,
    nv: usize,
    spacing: [f64; 3],
    inside: &mut dyn FnMut(usize, usize, usize),
) {
    let (k0, m0, b0) = s0;
    let (k1, m1, b1) = s1;
    let a0 = b0[0].min(b1[0]).saturating_sub(1);
    let c0 = b0[1].min(b1[1]).saturating_sub(1);
    let a1 = (b0[2].max(b1[2]) + 1).min(nu - 1);
    let c1 = (b0[3].max(b1[3]) + 1).min(nv - 1);
    let (w, h) = (a1 - a0 + 1, c1 - c0 + 1);
    let crop = |m: &[bool]| -> Vec<bool> {
        let mut out = Vec::with_capacity(w * h);
        for b in c0..=c1 {
            out.extend_from_slice(&m[a0 + nu * b..=a1 + nu * b]);
        }
        out
    };
    let d0 = signed_distance(&crop(m0), [w, h, 1], spacing);
    let d1 = signed_distance(&crop(m1), [w, h, 1], spacing);
    for k in k0 + 1..*k1 {
        let t = (k - k0) as f64 / (k1 - k0) as f64;
        for b in 0..h {
            for a in 0..w {
                let i = a + w * b;
                if (1.0 - t) * d0[i] + t * d1[i] < 0.0 {
                    inside(a0 + a, c0 + b, k);
                }
            }
        }
    }
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
    // Each annotated slice's mask and its bounding box (in-plane).
    let slices: Vec<Slice> = (0..dims[axis])
        .filter_map(|k| {
            let m = mask_of(k);
            let mut bb = [usize::MAX, usize::MAX, 0, 0];
            for (i, &x) in m.iter().enumerate() {
                if x {
                    let (a, b) = (i % nu, i / nu);
                    bb = [bb[0].min(a), bb[1].min(b), bb[2].max(a), bb[3].max(b)];
                }
            }
            (bb[0] != usize::MAX).then_some((k, m, bb))
        })
        .collect();
    let sp = [spacing_mm[u], spacing_mm[v], 1.0];
    // Gaps between consecutive annotated slices, filled on scoped threads
    // (the cores the machine has); each works in the two masks' joint box
    // with a one-pixel margin: outside it both distances are positive, so
    // nothing there is inside the blend.
    let gaps: Vec<(&Slice, &Slice)> = slices
        .windows(2)
        .filter(|w| w[1].0 - w[0].0 >= 2)
        .map(|w| (&w[0], &w[1]))
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let per = gaps.len().div_ceil(threads.max(1)).max(1);
    let parts: Vec<Vec<usize>> = std::thread::scope(|scope| {
        let handles: Vec<_> = gaps
            .chunks(per)
            .map(|chunk| {
                scope.spawn(move || {
                    let mut out = Vec::new();
                    for (s0, s1) in chunk {
                        fill_gap(s0, s1, nu, nv, sp, &mut |a, b, k| {
                            let f = flat(a, b, k);
                            if labels.get(off + f) != label {
                                out.push(f);
                            }
                        });
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut out: Vec<usize> = parts.into_iter().flatten().collect();
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
