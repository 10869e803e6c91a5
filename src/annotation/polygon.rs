//! A closed outline drawn in a slice (polygon by clicks, lasso by a drag),
//! filled: the voxels of the slice whose centres lie inside it (even-odd
//! rule), measured in the slice's own voxel coordinates so any storage
//! orientation works.

use super::brush::voxel_of;
use crate::volume::Geometry;

/// Flat indices of the voxels of slice `index` along voxel `axis` inside
/// the polygon whose vertices are world points (at least three).
pub fn inside(
    geometry: &Geometry,
    dims: [usize; 3],
    axis: usize,
    index: usize,
    polygon_world: &[[f64; 3]],
) -> Vec<usize> {
    if polygon_world.len() < 3 || axis > 2 || index >= dims[axis] {
        return Vec::new();
    }
    let (u, v) = match axis {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    };
    let pts: Vec<[f64; 2]> = polygon_world
        .iter()
        .filter_map(|w| voxel_of(geometry, *w))
        .map(|p| [p[u], p[v]])
        .collect();
    if pts.len() < 3 {
        return Vec::new();
    }
    let lo = |k: usize| pts.iter().map(|p| p[k]).fold(f64::INFINITY, f64::min);
    let hi = |k: usize| pts.iter().map(|p| p[k]).fold(f64::NEG_INFINITY, f64::max);
    let range = |k: usize, n: usize| {
        let a = lo(k).ceil().max(0.0) as usize;
        let b = (hi(k).floor().max(-1.0) as i64).min(n as i64 - 1);
        (a, b)
    };
    let (a0, a1) = range(0, dims[u]);
    let (b0, b1) = range(1, dims[v]);
    let mut out = Vec::new();
    for b in b0 as i64..=b1 {
        let y = b as f64;
        // Crossings of this row with the edges (even-odd rule).
        let mut xs: Vec<f64> = Vec::new();
        for (i, p) in pts.iter().enumerate() {
            let q = pts[(i + 1) % pts.len()];
            if (p[1] <= y && q[1] > y) || (q[1] <= y && p[1] > y) {
                xs.push(p[0] + (y - p[1]) / (q[1] - p[1]) * (q[0] - p[0]));
            }
        }
        xs.sort_by(f64::total_cmp);
        for pair in xs.chunks(2) {
            let [x0, x1] = [pair[0], pair.get(1).copied().unwrap_or(pair[0])];
            let from = x0.ceil().max(a0 as f64) as i64;
            let to = (x1.floor() as i64).min(a1);
            for a in from..=to {
                let mut p = [0usize; 3];
                p[u] = a as usize;
                p[v] = b as usize;
                p[axis] = index;
                out.push(p[0] + dims[0] * (p[1] + dims[1] * p[2]));
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_square_and_a_triangle_fill_their_area() {
        let g = Geometry::identity();
        let dims = [20, 20, 5];
        let sq = [
            [2.0, 2.0, 3.0],
            [11.0, 2.0, 3.0],
            [11.0, 11.0, 3.0],
            [2.0, 11.0, 3.0],
        ];
        let v = inside(&g, dims, 2, 3, &sq);
        // Half-open in y (the usual rasterisation rule, so two polygons
        // sharing an edge never both take its voxels): rows 2..11, x 2..=11.
        assert_eq!(v.len(), 90);
        assert!(v.iter().all(|f| f / 400 == 3));
        let tri = [[0.0, 0.0, 1.0], [10.0, 0.0, 1.0], [0.0, 10.0, 1.0]];
        let n = inside(&g, dims, 2, 1, &tri).len();
        assert!((55..=66).contains(&n), "about half of 11×11: {n}");
        assert!(inside(&g, dims, 2, 1, &tri[..2]).is_empty());
    }
}
