//! Flood fill: the voxels connected to a seed (6 neighbours in 3D, 4 in a
//! slice) that hold the seed's id, bounded by an intensity range and a
//! maximum distance from the seed in mm, as ITK-SNAP's and Slicer's
//! paint-bucket tools are. The caller paints the result as one step.

use crate::volume::{Geometry, LabelVolume};

/// Where a fill may go.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FillBounds {
    /// Stay in one voxel slice: (voxel axis, index). `None`: 3D.
    pub plane: Option<(usize, usize)>,
    /// Only voxels whose image value lies in [low, high].
    pub intensity: Option<(f64, f64)>,
    /// Only voxels within this distance of the seed, mm.
    pub max_distance_mm: Option<f64>,
}

/// The voxels (flat indices within frame `frame`'s 3D grid) connected to
/// `seed` that hold the seed's id and lie within `bounds`; `image(v)` is
/// voxel `v`'s intensity. `cancelled` is polled every few thousand voxels.
pub fn flood(
    labels: &LabelVolume,
    frame: usize,
    geometry: &Geometry,
    seed: [usize; 3],
    bounds: &FillBounds,
    image: impl Fn(usize) -> f64,
    cancelled: impl Fn() -> bool,
) -> Vec<usize> {
    let dims = labels.dims;
    if (0..3).any(|k| seed[k] >= dims[k]) {
        return Vec::new();
    }
    let off = labels.frame_offset(frame.min(labels.frames.saturating_sub(1)));
    let flat = |p: [usize; 3]| p[0] + dims[0] * (p[1] + dims[1] * p[2]);
    let target = labels.get(off + flat(seed));
    let seed_mm = geometry.world_from_index(seed.map(|x| x as f64));
    let max2 = bounds.max_distance_mm.map(|d| d * d);
    let inside = |p: [usize; 3]| -> bool {
        if let Some((axis, index)) = bounds.plane
            && p[axis] != index
        {
            return false;
        }
        let v = flat(p);
        if labels.get(off + v) != target {
            return false;
        }
        if let Some((lo, hi)) = bounds.intensity {
            let x = image(v);
            if !(x >= lo && x <= hi) {
                return false;
            }
        }
        if let Some(m2) = max2 {
            let w = geometry.world_from_index(p.map(|x| x as f64));
            let d2: f64 = (0..3).map(|k| (w[k] - seed_mm[k]).powi(2)).sum();
            if d2 > m2 {
                return false;
            }
        }
        true
    };
    if !inside(seed) {
        return Vec::new();
    }
    let n = dims[0] * dims[1] * dims[2];
    let mut seen = vec![0u64; n.div_ceil(64)];
    let mark = |seen: &mut Vec<u64>, v: usize| -> bool {
        let (w, b) = (v / 64, 1u64 << (v % 64));
        let fresh = seen[w] & b == 0;
        seen[w] |= b;
        fresh
    };
    let mut out = Vec::new();
    let mut stack = vec![seed];
    mark(&mut seen, flat(seed));
    while let Some(p) = stack.pop() {
        out.push(flat(p));
        if out.len() % 4096 == 0 && cancelled() {
            return Vec::new();
        }
        for k in 0..3 {
            for step in [-1i64, 1] {
                let q = p[k] as i64 + step;
                if q < 0 || q >= dims[k] as i64 {
                    continue;
                }
                let mut np = p;
                np[k] = q as usize;
                if inside(np) && mark(&mut seen, flat(np)) {
                    stack.push(np);
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

    #[test]
    fn fill_stops_at_other_labels_intensity_distance_and_the_slice() {
        // A 10×10×3 grid with a wall of label 1 at x = 5.
        let g = Geometry::identity();
        let mut l = LabelVolume::zeros([10, 10, 3], 1, g.clone());
        for k in 0..3 {
            for j in 0..10 {
                l.set(5 + 10 * (j + 10 * k), 1);
            }
        }
        let none = FillBounds::default();
        let all = flood(&l, 0, &g, [0, 0, 1], &none, |_| 0.0, || false);
        assert_eq!(all.len(), 5 * 10 * 3, "the wall bounds it");
        let slice = FillBounds {
            plane: Some((2, 1)),
            ..none
        };
        assert_eq!(
            flood(&l, 0, &g, [0, 0, 1], &slice, |_| 0.0, || false).len(),
            50
        );
        // Image value = x: only x <= 2.
        let dark = FillBounds {
            intensity: Some((0.0, 2.0)),
            ..slice
        };
        let v = flood(&l, 0, &g, [0, 0, 1], &dark, |v| (v % 10) as f64, || false);
        assert_eq!(v.len(), 30);
        let near = FillBounds {
            max_distance_mm: Some(1.0),
            ..slice
        };
        assert_eq!(
            flood(&l, 0, &g, [2, 2, 1], &near, |_| 0.0, || false).len(),
            5,
            "the seed and its four neighbours"
        );
        // Filling the wall itself follows the wall.
        assert_eq!(
            flood(&l, 0, &g, [5, 0, 0], &none, |_| 0.0, || false).len(),
            30
        );
        assert!(flood(&l, 0, &g, [50, 0, 0], &none, |_| 0.0, || false).is_empty());
    }
}
